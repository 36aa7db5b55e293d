"""What a user does with a trained model (layer 4 of 9, docs/architecture.md).

``loading`` (``alexnet.load``, ``alexnet.transform``), ``inference`` (a checkpoint made
ready to run: device, precision, transforms), ``evaluate`` (error rates of checkpoints,
centre crop or 10-crop, §4.1), ``predict``, ``features`` (activations to ``.npz``,
written by ``npz``) and ``hub`` (``torch.hub`` entry points). Imports the engine and
below.
"""
