"""What every export format needs: a LoadedModel, its input size, JSON-safe metadata."""

from __future__ import annotations

import os

import torch
from torch import nn

from alexnet.checkpoint import LoadedModel, load_model

SIDECAR_FORMAT = "alexnet-safetensors"
SIDECAR_VERSION = 1


def as_loaded(model: LoadedModel | nn.Module | str | os.PathLike) -> LoadedModel:
    """A LoadedModel from a LoadedModel, a bare model (classes numbered) or a checkpoint path."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        n = int(getattr(model, "num_classes", None) or 1000)
        name = "alexnet_owt" if type(model).__name__ == "AlexNetOWT" else "alexnet"
        if getattr(getattr(model, "config", None), "norm", None) == "bn":
            name = "alexnet_bn"
        return LoadedModel(model, name, [str(i) for i in range(n)])
    return load_model(model)


def input_size_of(loaded: LoadedModel) -> int:
    """The square input side the model takes (227 for the paper net, 224 otherwise)."""
    size = loaded.preprocessing.get("input_size") or loaded.model_kwargs.get("input_size")
    if size:
        return int(size)
    cfg = getattr(loaded.model, "config", None)
    return int(getattr(cfg, "input_size", 224))


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
