"""Any weights file -> a model ready to run, and the transform that feeds it.

    model = alexnet.load("runs/demo/checkpoints/best.pt")   # eval mode, on the CPU
    x = alexnet.transform(model)(PIL.Image.open("photo.jpg"))  # (3, S, S), as evaluate feeds it
    probs = model(x[None]).softmax(-1)

Files: an alexnet checkpoint (``.pt``: trained, or written by ``import-torchvision`` /
``import-caffe``), or ``.safetensors`` weights with their JSON sidecar. ``.pt2`` and
TorchScript files run code when loaded and are refused (``checkpoint.REFUSED_SUFFIXES``).
``load_model`` and ``read_state`` are ``alexnet.engine.checkpoint``'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from alexnet.engine.checkpoint import load_model, read_state
from alexnet.errors import UserError

__all__ = ["load", "load_model", "read_state", "transform"]


def load(path: str | os.PathLike, *, weights: str = "auto") -> nn.Module:
    """The model in a weights file, in eval mode on the CPU, with ``classes`` (list of
    names) and ``preprocessing`` (dict) attributes for :func:`transform` (``weights``: as
    :func:`load_model`)."""
    loaded = load_model(path, weights=weights)
    model = loaded.model.eval()
    model.classes = list(loaded.classes)
    model.preprocessing = dict(loaded.preprocessing)
    return model


def transform(model: Any, *, ten_crop: bool = False) -> Callable[[Any], Tensor]:
    """The callable that turns a PIL image (or a uint8 (3, H, W) tensor) into ``model``'s
    input exactly as ``evaluate``/``predict`` do: (3, S, S), or (10, 3, S, S) with
    ``ten_crop``. ``model``: what :func:`load` returned, a ``LoadedModel``, or a
    preprocessing dict."""
    from alexnet.data.transforms import transform_from_preprocessing

    pre = model if isinstance(model, dict) else getattr(model, "preprocessing", None)
    if pre is None:
        raise UserError(
            "this model carries no preprocessing: pass one from alexnet.load(), a LoadedModel, "
            "or a preprocessing dict"
        )
    return transform_from_preprocessing(pre, ten_crop=ten_crop)
