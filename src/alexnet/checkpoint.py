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
    optimizer, scheduler, scaler, ema   state dicts or None; ema: the AveragedModel of
                    --ema-decay ("module."-prefixed keys, n_averaged), what validation scored
                    and so what evaluate/predict/features load by default (model_from_state)
    epoch, step     epochs completed / optimizer steps taken
    rng             {"python", "numpy", "torch", "cuda"} generator states
    config          the resolved run configuration (plain dict); for imported weights
                    {"source": ..., "file": ...}
    metrics         last validation metrics or None

Versions: 1 had no ``dropout_form`` (inverted dropout), no ``sgd_form`` (PyTorch's
SGD) and no ``resize_mode`` (the paper's central square; torchvision's for imported
torchvision weights); :func:`upgrade_state` fills those in, so a version-1 checkpoint
loads and resumes as it was trained. A newer version than this code knows is refused.

Reading checks every field before use, in one place: :func:`check_state` (types; the
statistics through ``alexnet.data.stats.check_stats_dict``), :func:`check_model_fields`
(options against the model's declared types, the input size the model's own, ``resize``
at most ``MAX_RESIZE_FACTOR`` times it: a file's numbers decide what an image costs) and
:func:`check_finite` (no NaN or infinite weight); each failure is one UserError naming the
file and the field. A file that torch.save did not write is refused by its first bytes.

Writes go to ``<name>.tmp-<pid>`` in the same directory, are fsynced and then
renamed over the target, so a crash or SIGKILL mid-write leaves the previous
checkpoint intact and no partial file under the real name.
"""

from __future__ import annotations

import errno
import math
import os
import pickle
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alexnet.errors import UserError, check_format_version
from alexnet.models import create_model, model_info
from alexnet.runtime import AMP_CHOICES

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
    _check_magic(path)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"checkpoint {path} was refused: it holds Python objects that safe loading "
            f"(weights_only) does not allow, which could run code ({first[:160]})"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch's readers raise KeyError, IndexError, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupt ({msg[:160]})") from None
    if not isinstance(state, dict) or "model" not in state or "model_name" not in state:
        raise UserError(
            f"{path} is not an alexnet checkpoint (no 'model'/'model_name' entries); for "
            "torchvision's weights file use `alexnet import-torchvision`, for Caffe's "
            "`alexnet import-caffe`"
        )
    return upgrade_state(state, str(path))


def upgrade_state(
    state: dict, source: str = "checkpoint", weights_source: str | None = None
) -> dict:
    """The checkpoint dict in this version's format (module docstring), its fields checked
    (:func:`check_state`); a newer format is refused with both versions named."""
    version = check_format_version(
        state.get("format_version", 1), what="checkpoint", source=source, newest=CHECKPOINT_VERSION
    )
    check_state(state, source, weights_source)
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
        f"EMA (decay {decay:g})" if _is_number(decay) else "EMA (decay not recorded)"
    )


# ---- the schema: every field read from a file checked for type and range before use ----

MAX_INPUT_SIDE = 1024  # the largest input side a file may ask for (any-size models)
MAX_CLASSES = 1_000_000
_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64)
_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip; the legacy format's pickle


def _check_magic(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(_MAGIC):
        raise UserError(
            f"{path} is not a checkpoint: torch.save did not write it (it starts with {head!r})"
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _short(v: Any) -> str:
    text = repr(v) if not isinstance(v, torch.Tensor) else f"a {v.dtype} tensor"
    return text if len(text) <= 60 else text[:57] + "..."


def _tensor_dict_problem(d: Any, field_name: str) -> str:
    if not isinstance(d, dict):
        return f"{field_name} must be a mapping of names to tensors, got {_short(d)}"
    for k, v in d.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            got = _short(v)
            return f"{field_name}[{_short(k)}] must be a tensor under a string name, got {got}"
        if v.dtype not in _WEIGHT_DTYPES:
            return (
                f"{field_name}[{k!r}] is {v.dtype}; weights are floating point (float32, "
                "float16, bfloat16 or float64)"
            )
    return ""


def check_state(state: dict, source: str, weights_source: str | None = None) -> None:
    """The checkpoint schema (module docstring): each field that evaluate, predict,
    features, export and resume read has the right type, else one UserError naming the
    file and every wrong field (``weights_source``: the file that holds the tensors, when
    not ``source``: a sidecar's ``.safetensors``). No tensor's values are read here."""
    from alexnet.data.stats import check_stats_dict

    errors = []
    problem = _tensor_dict_problem(state.get("model"), "model")
    if problem:
        raise UserError(f"{weights_source or source}: {problem}")
    if not isinstance(state.get("model_name"), str):
        errors.append(f"model_name must be a string, got {_short(state.get('model_name'))}")
    for key, kind in (("model_kwargs", dict), ("config", dict), ("preprocessing", dict)):
        if state.get(key) is not None and not isinstance(state[key], kind):
            errors.append(f"{key} must be a mapping, got {_short(state[key])}")
    kwargs = state.get("model_kwargs")
    if isinstance(kwargs, dict) and not all(isinstance(k, str) for k in kwargs):
        errors.append(f"model_kwargs names must be strings, got {_short(list(kwargs))}")
    classes = state.get("classes")
    if classes is not None and not (
        isinstance(classes, (list, tuple))
        and len(classes) <= MAX_CLASSES
        and all(isinstance(c, str) for c in classes)
    ):
        got = _short(classes)
        errors.append(f"classes must be a list of at most {MAX_CLASSES} names, got {got}")
    if state.get("ema") is not None:
        errors.append(_tensor_dict_problem(state["ema"], "ema"))
    for key in ("epoch", "step"):
        if key in state and not (_is_int(state[key]) and state[key] >= 0):
            errors.append(f"{key} must be an int >= 0, got {_short(state[key])}")
    pre = state.get("preprocessing")
    if isinstance(pre, dict):
        errors += _preprocessing_problems(pre)
    errors = [e for e in errors if e]
    if errors:
        raise UserError(f"{source}: {'; '.join(errors)}")
    if isinstance(pre, dict) and pre.get("stats") is not None:
        check_stats_dict(pre["stats"], source, prefix="preprocessing.stats.")


def _preprocessing_problems(pre: dict) -> list[str]:
    from alexnet.data.transforms import NORMALIZE_MODES, RESIZE_MODES

    errors = []
    for key in ("input_size", "resize"):
        v = pre.get(key)
        if v is not None and not _is_int(v):
            errors.append(f"preprocessing.{key} must be an int, got {_short(v)}")
    for key, choices in (("resize_mode", RESIZE_MODES), ("normalize", NORMALIZE_MODES)):
        v = pre.get(key)
        if v is not None and v not in choices:
            one_of = ", ".join(choices)
            errors.append(f"preprocessing.{key} must be one of {one_of}, got {_short(v)}")
    stats = pre.get("stats")
    mean_image = isinstance(stats, dict) and stats.get("mean_image") is not None
    if pre.get("normalize") == "pixel" and pre.get("resize_mode") == "shorter" and mean_image:
        errors.append(
            "preprocessing.normalize 'pixel' subtracts a square mean image: it cannot go with "
            "resize_mode 'shorter'"
        )
    return errors


def check_model_fields(state: dict, source: str) -> None:
    """The fields whose ranges depend on the model (:func:`check_model_options`,
    :func:`check_preprocessing_sizes`) of a dict :func:`check_state` passed."""
    name, kwargs = state["model_name"], dict(state.get("model_kwargs") or {})
    try:
        check_model_options(kwargs, name, source)
        check_preprocessing_sizes(state.get("preprocessing") or {}, name, kwargs, source)
    except ValueError as e:  # an unknown model
        raise UserError(f"{source}: {e}") from None


def check_model_options(kwargs: dict, name: str, source: str) -> None:
    """Each ``model_kwargs`` name an option of the model, each value of the type the option
    declares (an int, a finite float, a bool, one of a Literal's choices)."""
    import typing

    from alexnet.models import option_types

    types = option_types(name)
    unknown = [k for k in kwargs if k not in types]
    if unknown:
        raise UserError(
            f"{source}: model_kwargs names {', '.join(map(repr, unknown))}, which model "
            f"{name!r} does not take (its options: {', '.join(types) or 'none'})"
        )
    errors = []
    for key, ann in types.items():
        if key not in kwargs:
            continue
        v = kwargs[key]
        if typing.get_origin(ann) is typing.Literal:
            ok, want = (
                v in typing.get_args(ann) and isinstance(v, str),
                (f"one of {', '.join(map(str, typing.get_args(ann)))}"),
            )
        elif ann is bool:
            ok, want = isinstance(v, bool), "true or false"
        elif ann is int:
            ok, want = _is_int(v) and abs(v) < 2**31, "an int"
        elif ann is float:
            ok, want = _is_number(v), "a finite number"
        else:
            ok, want = True, ""
        if not ok:
            errors.append(f"model_kwargs.{key} must be {want}, got {_short(v)}")
    if errors:
        raise UserError(f"{source}: {'; '.join(errors)}")


def check_preprocessing_sizes(pre: dict, name: str, kwargs: dict, source: str) -> None:
    """The input side one the model takes (its own for fixed-size models, at most
    ``MAX_INPUT_SIDE`` for any-size ones) and ``resize`` between it and
    ``MAX_RESIZE_FACTOR`` times it: a file's numbers decide how much memory an image takes."""
    from alexnet.data.transforms import MAX_RESIZE_FACTOR
    from alexnet.models import input_size_for

    info = model_info(name)
    own = input_size_for(name, kwargs)
    size = pre.get("input_size") or own  # (check_state: ints or None)
    if info.input_sizes and size != own:
        raise UserError(
            f"{source}: preprocessing.input_size is {size}, but model {name!r} with these "
            f"options takes {own}x{own} inputs"
        )
    if not info.accepts_input_size(size) or size > MAX_INPUT_SIDE:
        raise UserError(
            f"{source}: preprocessing.input_size is {size}; model {name!r} takes sides "
            f"{info.min_input_size}..{MAX_INPUT_SIDE}"
        )
    resize = pre.get("resize") or 256
    if not size <= resize <= MAX_RESIZE_FACTOR * size:
        raise UserError(
            f"{source}: preprocessing.resize is {resize}; it must be between the input size "
            f"{size} and {MAX_RESIZE_FACTOR} x {size} = {MAX_RESIZE_FACTOR * size}"
        )


def check_finite(state_dict: dict[str, torch.Tensor], source: str, which: str = "") -> None:
    """Refuse weights that hold NaN or infinity, naming the first such tensor."""
    for k, v in state_dict.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            bad = int((~torch.isfinite(v)).sum())
            kind = "NaN" if bool(torch.isnan(v).any()) else "infinite values"
            what = f"{which} weights" if which else "weights"
            raise UserError(
                f"{source}: the {what} are unusable: tensor {k} holds {kind} ({bad} of "
                f"{v.numel()} values)"
            )


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
