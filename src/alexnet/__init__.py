"""alexnet: the 2012 paper's network and method in PyTorch."""

from importlib.metadata import PackageNotFoundError, version

from .models import AlexNet, AlexNetConfig, AlexNetOWT, create_model, list_models, model_info
from .ops.nn import Dropout, LocalResponseNorm
from .tasks.features import features
from .tasks.loading import load, transform

try:
    __version__ = version("alexnet")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = [
    "AlexNet",
    "AlexNetConfig",
    "AlexNetOWT",
    "Dropout",
    "LocalResponseNorm",
    "__version__",
    "create_model",
    "features",
    "list_models",
    "load",
    "model_info",
    "transform",
]
