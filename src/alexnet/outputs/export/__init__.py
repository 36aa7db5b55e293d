"""Export a trained model for other runtimes, and import torchvision's pretrained weights.

Three formats, each built from a checkpoint (``alexnet.engine.checkpoint.LoadedModel``):

* ONNX (``programs.export_onnx``) via the ``torch.export``-based exporter
  (``torch.onnx.export(dynamo=True)``) with a dynamic batch axis; the file is
  checked with onnxruntime against PyTorch on batch sizes other than the one it
  was exported with (the paper model's LRN runs as plain tensor ops under
  export, see ``alexnet.ops.nn``).
* safetensors weights plus a JSON sidecar ``<name>.json`` (``weights``): model
  name and options, class names, preprocessing. ``load_model`` / ``evaluate`` /
  ``predict`` accept it in place of a checkpoint; loading it runs no code.
* a ``torch.export`` program (``.pt2``, ``programs.export_pt2``) for deployment.
  Such files, like TorchScript, can run code when loaded: this project writes
  them but never loads one (``load_checkpoint`` refuses the suffix).

``import_torchvision`` (``torchvision_weights``) turns torchvision's
``alexnet-owt-7be5be79.pth`` into a checkpoint for ``alexnet_owt`` (same
state-dict keys) with the ImageNet class names and torchvision's preprocessing.
``import_caffe`` (``caffe_weights``) turns Caffe's ``bvlc_alexnet.caffemodel`` (or
CaffeNet's) into an ``alexnet`` checkpoint with Caffe's constants and preprocessing,
reading the protobuf file itself (``protowire``, ``caffe_proto``; checks in ``caffe_net``).
"""

from alexnet.engine.checkpoint import load_safetensors_model
from alexnet.engine.checkpoint.safetensors import read_safetensors_state, sidecar_path

from ._common import as_loaded, input_size_of
from .caffe_weights import import_caffe
from .programs import ONNX_TOLERANCE, OnnxReport, check_onnx, export_onnx, export_pt2
from .torchvision_weights import import_torchvision
from .weights import export_safetensors

FORMATS = ("onnx", "safetensors", "pt2")

__all__ = [
    "FORMATS",
    "ONNX_TOLERANCE",
    "OnnxReport",
    "as_loaded",
    "check_onnx",
    "export_onnx",
    "export_pt2",
    "export_safetensors",
    "import_caffe",
    "import_torchvision",
    "input_size_of",
    "load_safetensors_model",
    "read_safetensors_state",
    "sidecar_path",
]
