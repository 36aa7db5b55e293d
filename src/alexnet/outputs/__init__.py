"""What the project writes for people and other tools (layer 3 of 9, docs/architecture.md).

``export/`` (ONNX, TorchScript, safetensors out; Caffe and torchvision weights in),
``viz/`` (figures), ``report`` (a run's HTML report), ``runner`` (a training run with the
progress bars, plots and report attached), ``summary`` (parameters and FLOPs per layer)
and ``bench`` (speed against torchvision). Imports tasks and below.
"""
