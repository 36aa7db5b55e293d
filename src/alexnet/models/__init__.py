"""The networks and their registry. Modules here import only torch."""

from ._registry import create_model, list_models, register_model
from .owt import AlexNetOWT
from .paper import AlexNet, AlexNetConfig, tower_slices

__all__ = [
    "AlexNet",
    "AlexNetConfig",
    "AlexNetOWT",
    "create_model",
    "list_models",
    "register_model",
    "tower_slices",
]
