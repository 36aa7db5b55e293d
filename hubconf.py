"""torch.hub entry points for the three registered networks, from a checkout:

    import torch
    model = torch.hub.load("path/to/alexnet", "alexnet", source="local", num_classes=10)
    model = torch.hub.load("path/to/alexnet", "alexnet", source="local", weights="caffe.pt")

``weights``: a file ``alexnet.tasks.loading.load`` reads (a checkpoint, e.g. from
``alexnet import-caffe``, or ``.safetensors``): the model comes back in eval mode with
``classes`` and ``preprocessing`` (``alexnet.transform(model)`` feeds it); the file's
class count and options win, and a given option that differs is a one-line error.
Otherwise ``create_model(name, **model_options)``, freshly initialised. The package
need not be installed: this checkout's ``src/`` goes on ``sys.path``.
"""

import sys
from pathlib import Path

dependencies = ["torch", "torchvision", "numpy", "PIL"]

_SRC = str(Path(__file__).resolve().parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)


def alexnet(weights=None, **model_options):
    """The 2012 paper's network (§3): two towers, LRN, 227x227 input, 60,965,224 parameters
    at 1000 classes. Options: ``alexnet.model_info("alexnet").options``."""
    from alexnet.tasks.hub import hub_model

    return hub_model("alexnet", weights, **model_options)


def alexnet_owt(weights=None, **model_options):
    """torchvision's single-tower AlexNet ("One weird trick"), 224x224 input; torchvision's
    weights load through ``alexnet import-torchvision``."""
    from alexnet.tasks.hub import hub_model

    return hub_model("alexnet_owt", weights, **model_options)


def alexnet_bn(weights=None, **model_options):
    """The paper's network with BatchNorm after every convolution instead of LRN."""
    from alexnet.tasks.hub import hub_model

    return hub_model("alexnet_bn", weights, **model_options)
