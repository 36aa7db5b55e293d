"""The one checkpoint format (``schema``), its files (``files``), the model rebuilt from
one (``model``) and safetensors weights read as one (``safetensors``). Everything that
reads or writes a checkpoint imports it from here.
"""

from .files import REFUSED_SUFFIXES, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .model import (
    WEIGHTS,
    LoadedModel,
    load_model,
    load_safetensors_model,
    load_weights,
    model_from_state,
    read_state,
    strip_prefixes,
)
from .schema import (
    CHECKPOINT_VERSION,
    MAX_CLASSES,
    MAX_INPUT_SIDE,
    RUN_KEYS,
    check_finite,
    check_model_fields,
    check_model_options,
    check_preprocessing_sizes,
    check_state,
    checkpoint_dict,
    upgrade_state,
    weights_checkpoint,
)

__all__ = [
    "CHECKPOINT_VERSION",
    "MAX_CLASSES",
    "MAX_INPUT_SIDE",
    "REFUSED_SUFFIXES",
    "RUN_KEYS",
    "WEIGHTS",
    "LoadedModel",
    "check_finite",
    "check_model_fields",
    "check_model_options",
    "check_preprocessing_sizes",
    "check_state",
    "checkpoint_dict",
    "load_checkpoint",
    "load_model",
    "load_safetensors_model",
    "load_weights",
    "model_from_state",
    "read_state",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "strip_prefixes",
    "upgrade_state",
    "weights_checkpoint",
]
