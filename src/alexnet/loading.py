"""Any weights file -> a model ready to run, and the transform that feeds it.

    model = alexnet.load("runs/demo/checkpoints/best.pt")   # eval mode, on the CPU
    x = alexnet.transform(model)(PIL.Image.open("photo.jpg"))  # (3, S, S), as evaluate feeds it
    probs = model(x[None]).softmax(-1)

Files: an alexnet checkpoint (``.pt``: trained, or written by ``import-torchvision`` /
``import-caffe``), or ``.safetensors`` weights with their JSON sidecar. ``.pt2`` and
TorchScript files run code when loaded and are refused (``checkpoint.REFUSED_SUFFIXES``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from alexnet.checkpoint import LoadedModel, load_checkpoint, model_from_state
from alexnet.errors import UserError

__all__ = ["load", "load_model", "read_state", "transform"]


def read_state(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """The checkpoint dict of a checkpoint or ``.safetensors`` file, without building the
    model (``mmap``: a checkpoint's tensors are mapped, read only when used)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from alexnet.export.weights import read_safetensors_state

        return read_safetensors_state(path)
    return load_checkpoint(path, mmap=mmap)


def load_model(
    path: str | os.PathLike,
    *,
    expect_model: str | None = None,
    expect_num_classes: int | None = None,
    weights: str = "auto",
) -> LoadedModel:
    """The model, class names and preprocessing of a checkpoint or ``.safetensors`` file.

    ``expect_*`` turn a mismatch into a message naming the file's model or class count
    (for commands that know what they need). ``weights``: "auto" (the EMA of the weights
    where the run kept one, as its validation did), "ema" or "raw"; ``.weights`` of the
    result says which when the file holds both. NaN or infinite weights are refused.
    """
    path = Path(path)
    loaded = model_from_state(read_state(path), str(path), weights=weights)
    if expect_model is not None and loaded.model_name != expect_model:
        raise UserError(f"{path} holds model {loaded.model_name!r}, not {expect_model!r}")
    if expect_num_classes is not None and len(loaded.classes) != expect_num_classes:
        raise UserError(
            f"{path} has {len(loaded.classes)} classes, but the data has {expect_num_classes}"
        )
    return loaded


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
