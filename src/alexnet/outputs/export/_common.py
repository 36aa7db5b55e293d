"""What every export format needs: a LoadedModel, its input size, JSON-safe metadata."""

from __future__ import annotations

import torch
from torch import nn

from alexnet.engine.checkpoint import LoadedModel
from alexnet.engine.checkpoint.safetensors import SIDECAR_FORMAT, SIDECAR_VERSION
from alexnet.errors import UserError
from alexnet.models import input_size_for


def as_loaded(model: LoadedModel | nn.Module) -> LoadedModel:
    """A LoadedModel from a LoadedModel or a model built by ``create_model`` (classes
    numbered); files are loaded by ``alexnet.tasks.loading.load_model`` first."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module) and hasattr(model, "model_name"):
        n = int(getattr(model, "num_classes", None) or 1000)
        kwargs = dict(getattr(model, "model_kwargs", {}))
        return LoadedModel(model, model.model_name, [str(i) for i in range(n)], kwargs)
    raise UserError(
        f"cannot export a {type(model).__name__}: pass a model from create_model() or a "
        "LoadedModel (alexnet.tasks.loading.load_model(path))"
    )


def input_size_of(loaded: LoadedModel) -> int:
    """The square input side the model takes."""
    size = loaded.preprocessing.get("input_size")
    return int(size) if size else input_size_for(loaded.model_name, loaded.model_kwargs)


def jsonable(value):
    """Tensors and tuples inside ``value`` as lists, so ``json.dumps`` takes it."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def describe(loaded: LoadedModel, weights: str | None = None) -> dict:
    """The sidecar: everything besides the weights that rebuilds and feeds the model."""
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "weights": weights,
        "model_name": loaded.model_name,
        "model_kwargs": jsonable(loaded.model_kwargs),
        "classes": list(loaded.classes),
        "preprocessing": jsonable(loaded.preprocessing),
    }
