"""The networks and their registry. Modules here import only torch."""

from ._registry import (
    DEFAULT_MODEL,
    PAPER_LAYERS,
    ModelInfo,
    create_model,
    input_size_for,
    list_models,
    model_info,
    option_types,
    register_model,
)
from .owt import AlexNetOWT
from .paper import AlexNet, AlexNetConfig, tower_slices

__all__ = [
    "DEFAULT_MODEL",
    "PAPER_LAYERS",
    "AlexNet",
    "AlexNetConfig",
    "AlexNetOWT",
    "ModelInfo",
    "create_model",
    "input_size_for",
    "list_models",
    "model_info",
    "option_types",
    "register_model",
    "tower_slices",
]
