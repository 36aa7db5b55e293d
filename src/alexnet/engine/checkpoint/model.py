"""A model rebuilt from a checkpoint dict: ``model_from_state`` (raw or EMA weights),
``read_state``/``load_model`` for a checkpoint or ``.safetensors`` file, and the
state-dict helpers (``strip_prefixes``, ``load_weights``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from alexnet.errors import UserError
from alexnet.models import create_model, model_info
from alexnet.runtime import AMP_CHOICES

from .files import load_checkpoint
from .schema import check_finite, check_model_fields, is_number

_PREFIXES = ("module.", "_orig_mod.")


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP's ``module.`` and torch.compile's ``_orig_mod.`` key prefixes."""
    out = {}
    for k, v in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        out[k] = v
    return out


def load_weights(
    model: nn.Module, state_dict: dict, source: str, model_name: str, *, assign: bool = False
) -> None:
    """``load_state_dict(strict=True)`` with a message that says what does not match;
    ``assign``: the model's tensors become the state dict's (a model built on the meta
    device), as float32 CPU copies."""
    sd = strip_prefixes(state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise UserError(
            f"{source}: weights do not fit model {model_name!r} ("
            f"{len(missing)} missing keys e.g. {missing[:2]}, {len(unexpected)} unexpected "
            f"e.g. {unexpected[:2]}); it was saved from another model"
        )
    head = model_info(model_name).head
    for k, v in sd.items():
        if v.is_floating_point() != own[k].is_floating_point():
            raise UserError(
                f"{source}: {k} is {v.dtype}, but model {model_name!r} holds {own[k].dtype} there"
            )
        if tuple(v.shape) != tuple(own[k].shape):
            raise UserError(
                f"{source}: {k} has shape {tuple(v.shape)} but model {model_name!r} expects "
                f"{tuple(own[k].shape)}"
                + (" (a different number of classes)" if k.startswith(head + ".") else "")
            )
    if assign:
        sd = {k: v.detach().to("cpu").clone() for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=assign)


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint or safetensors file, with what it needs to run.
    ``weights``: which of the file's weights it holds, "EMA (decay 0.999)" or "raw ..."
    when the file has both, "" when it has one set."""

    model: nn.Module
    model_name: str
    classes: list[str]
    model_kwargs: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    source: str = ""
    weights: str = ""
    train_amp: str = ""  # the run's --amp ("off" for --preset paper/caffe); "" when unrecorded


WEIGHTS = ("auto", "ema", "raw")  # model_from_state's choice; auto: EMA when kept


def model_from_state(
    state: dict, source: str = "checkpoint", *, weights: str = "auto"
) -> LoadedModel:
    """Build the model a checkpoint dict (checked by :func:`check_state`) describes and
    load its weights: with ``weights`` "auto" the EMA of the weights where the run kept
    one (``--ema-decay``: the weights its validation, and so best.pt's choice, used),
    else (or with "raw") the weights the optimizer stepped. Options, input sizes and
    values are checked first."""
    name = state["model_name"]
    classes = list(state.get("classes") or [])
    kwargs = dict(state.get("model_kwargs") or {})
    sd, which = _chosen_weights(state, source, weights)
    check_model_fields(state, source)
    try:
        info = model_info(name)
        if not classes:
            bias = strip_prefixes(sd).get(info.head + ".bias")
            if bias is None:
                raise ValueError("the checkpoint names no classes and has no final layer")
            classes = [str(i) for i in range(int(bias.shape[0]))]
        with torch.device("meta"):  # no memory, no initialisation: the weights replace it
            model = create_model(name, num_classes=len(classes), **kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"{source}: {e}") from None
    load_weights(model, sd, source, name, assign=True)
    check_finite(model.state_dict(), source, which)
    pre = dict(state.get("preprocessing") or {})
    amp = (state.get("config") or {}).get("amp")
    amp = amp if amp in AMP_CHOICES else ""
    return LoadedModel(model, name, classes, kwargs, pre, source, which, amp)


def _chosen_weights(state: dict, source: str, weights: str) -> tuple[dict, str]:
    """(state dict, description) of the weights ``weights`` asks for."""
    if weights not in WEIGHTS:
        raise UserError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    ema = state.get("ema")
    if ema is None:
        if weights == "ema":
            raise UserError(f"{source} holds no EMA weights (the run had no --ema-decay)")
        return state["model"], ""
    if weights == "raw":
        return state["model"], "raw (not the EMA kept beside them)"
    decay = (state.get("config") or {}).get("ema_decay")
    return {k: v for k, v in ema.items() if k != "n_averaged"}, (
        f"EMA (decay {decay:g})" if is_number(decay) else "EMA (decay not recorded)"
    )


def read_state(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """The checkpoint dict of a checkpoint or ``.safetensors`` file, without building the
    model (``mmap``: a checkpoint's tensors are mapped, read only when used)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from .safetensors import read_safetensors_state

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


def load_safetensors_model(path: str | os.PathLike, *, weights: str = "auto") -> LoadedModel:
    """Rebuild a model from ``.safetensors`` weights and their JSON sidecar (no code runs)."""
    from .safetensors import read_safetensors_state

    return model_from_state(read_safetensors_state(path), str(path), weights=weights)
