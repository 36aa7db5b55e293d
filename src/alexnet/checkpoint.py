"""The one checkpoint format: save atomically, load with ``weights_only``, rebuild the model.

A checkpoint is a plain dict (every value a tensor, number, string, list,
tuple, dict or None, so ``torch.load(path, weights_only=True)`` reads it and no
pickled code can run)::

    format_version  int (CHECKPOINT_VERSION)
    model           the unwrapped model's state dict (no "module." / "_orig_mod." prefixes)
    model_name      a create_model() name
    model_kwargs    create_model() keyword options, without num_classes
    classes         list of class names; num_classes = len(classes)
    preprocessing   {"input_size", "resize", "resize_mode", "normalize", "stats"}: what
                    evaluate/predict feed the model (alexnet.data.transforms)
    optimizer, scheduler, scaler, ema   state dicts or None
    epoch, step     epochs completed / optimizer steps taken
    rng             {"python", "numpy", "torch", "cuda"} generator states
    config          the resolved run configuration (plain dict); for imported weights
                    {"source": ..., "file": ...}
    metrics         last validation metrics or None

Versions: 1 had no ``dropout_form`` (inverted dropout), no ``sgd_form`` (PyTorch's
SGD) and no ``resize_mode`` (the paper's central square; torchvision's for imported
torchvision weights); :func:`upgrade_state` fills those in, so a version-1 checkpoint
loads and resumes as it was trained. A newer version than this code knows is refused.

Writes go to ``<name>.tmp-<pid>`` in the same directory, are fsynced and then
renamed over the target, so a crash or SIGKILL mid-write leaves the previous
checkpoint intact and no partial file under the real name.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alexnet.errors import UserError, check_format_version
from alexnet.models import create_model, model_info

CHECKPOINT_VERSION = 2
_PREFIXES = ("module.", "_orig_mod.")
REFUSED_SUFFIXES = {
    ".pt2": "torch.export program",
    ".ts": "TorchScript file",
    ".torchscript": "TorchScript file",
}


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as e:
        # torch.save's zip writer turns a full disk into a RuntimeError raised while
        # handling the OSError, so look down the exception chain for the errno.
        tmp.unlink(missing_ok=True)
        os_err = _find_os_error(e)
        if os_err is not None and os_err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"disk full while writing checkpoint {path}; the previous checkpoint "
                "(if any) is untouched"
            ) from None
        if os_err is None and isinstance(e, RuntimeError):
            raise
        reason = (os_err.strerror if os_err is not None else None) or str(e)
        raise UserError(f"could not write checkpoint {path}: {reason}") from None
    return path


def _find_os_error(e: BaseException | None) -> OSError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict:
    """Read a checkpoint with ``weights_only=True``, upgraded to this version's format;
    every failure is a one-line UserError. ``mmap``: tensors are mapped from the file
    and read only when used (a cheap look at a 0.5 GB checkpoint)."""
    path = Path(path)
    if path.suffix in REFUSED_SUFFIXES:
        raise UserError(
            f"{path}: refusing to load a {REFUSED_SUFFIXES[path.suffix]}: such files run code; "
            "alexnet loads only its own checkpoints (.pt) and .safetensors weights"
        )
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a directory, not a file")
    if path.stat().st_size == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint {path} was refused: it holds Python objects that safe loading "
            f"(weights_only) does not allow, which could run code ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({msg[:160]})") from None
    if not isinstance(state, dict) or "model" not in state or "model_name" not in state:
        raise UserError(
            f"{path} is not an alexnet checkpoint (no 'model'/'model_name' entries); for "
            "torchvision's weights file use `alexnet import-torchvision`, for Caffe's "
            "`alexnet import-caffe`"
        )
    return upgrade_state(state, str(path))


def upgrade_state(state: dict, source: str = "checkpoint") -> dict:
    """The checkpoint dict in this version's format (module docstring); a newer format
    is refused with both versions named."""
    version = check_format_version(
        state.get("format_version", 1), what="checkpoint", source=source, newest=CHECKPOINT_VERSION
    )
    if version == 1:
        state = dict(state)
        kwargs = dict(state.get("model_kwargs") or {})
        try:
            options = model_info(state["model_name"]).options
        except ValueError:
            options = ()
        if "dropout_form" in options:
            kwargs.setdefault("dropout_form", "inverted")  # version 1 had nn.Dropout only
        state["model_kwargs"] = kwargs
        config = dict(state.get("config") or {})
        if "optimizer" in config:  # a training run's configuration
            config.setdefault("sgd_form", "torch")  # version 1 stepped torch.optim.SGD
            config.setdefault("resize_mode", "square")
            config.setdefault("lighting_convention", "eigval")
        state["config"] = config
        pre = dict(state.get("preprocessing") or {})
        if pre:
            torchvision = config.get("source") == "torchvision"
            pre.setdefault("resize_mode", "shorter" if torchvision else "square")
        state["preprocessing"] = pre
        state["format_version"] = CHECKPOINT_VERSION
    return state


def weights_checkpoint(
    model_name: str,
    model_kwargs: dict,
    weights: dict[str, torch.Tensor],
    classes: list[str],
    preprocessing: dict,
    origin: dict,
) -> dict:
    """A checkpoint that holds weights only (imported or exported files): no optimizer,
    nothing to resume; ``origin`` says where the weights came from (``config``)."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "model": weights,
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "classes": list(classes),
        "preprocessing": dict(preprocessing),
        "optimizer": None,
        "scheduler": None,
        "scaler": None,
        "ema": None,
        "epoch": 0,
        "step": 0,
        "rng": None,
        "config": dict(origin),
        "metrics": None,
    }


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
    """A model rebuilt from a checkpoint or safetensors file, with what it needs to run."""

    model: nn.Module
    model_name: str
    classes: list[str]
    model_kwargs: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    source: str = ""


def model_from_state(state: dict, source: str = "checkpoint") -> LoadedModel:
    """Build the model a checkpoint dict describes and load its weights."""
    name = state["model_name"]
    classes = list(state.get("classes") or [])
    kwargs = dict(state.get("model_kwargs") or {})
    try:
        if not classes:
            bias = strip_prefixes(state["model"]).get(model_info(name).head + ".bias")
            if bias is None:
                raise ValueError("the checkpoint names no classes and has no final layer")
            classes = [str(i) for i in range(int(bias.shape[0]))]
        with torch.device("meta"):  # no memory, no initialisation: the weights replace it
            model = create_model(name, num_classes=len(classes), **kwargs)
    except ValueError as e:
        raise UserError(f"{source}: {e}") from None
    load_weights(model, state["model"], source, name, assign=True)
    return LoadedModel(model, name, classes, kwargs, dict(state.get("preprocessing") or {}), source)


def find_latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete, resumable checkpoint of a run (``--resume auto``), or None.

    Candidates are ``checkpoints/*.pt`` (never ``*.tmp-*`` partial writes) that hold
    optimizer state (``best.pt`` is for evaluation and has none); ``last.pt`` first,
    then the others newest first. Each is opened with its tensors memory-mapped (its
    structure is read, its 0.5 GB of weights are not) to make sure it loads.
    """
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return None
    candidates = sorted(
        d.glob("*.pt"), key=lambda p: (p.name == "last.pt", p.stat().st_mtime), reverse=True
    )
    for p in candidates:
        try:
            state = load_checkpoint(p, mmap=True)
        except UserError:
            continue
        if state.get("optimizer") is not None:
            return p
    return None


# ---- random number generator states (all as weights_only-safe values) ----


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states as weights_only-loadable values."""
    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(gauss),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
