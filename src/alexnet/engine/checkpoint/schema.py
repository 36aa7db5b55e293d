"""The one checkpoint format: its keys, written by :func:`checkpoint_dict` (training runs,
imported and exported weights, safetensors sidecars), checked and upgraded on reading.

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
    batch_in_epoch, partial, best_error, records, init_from, data_fingerprint,
    data_changes    a training run's own state for ``--resume`` (RUN_KEYS; absent from
                    weights-only files): where in the epoch, the epoch's running sums, the
                    best validation error, metrics.jsonl's records, where --init-from's
                    weights came from, the data's fingerprints and accepted changes

Versions: 1 had no ``dropout_form`` (inverted dropout), no ``sgd_form`` (PyTorch's
SGD) and no ``resize_mode`` (the paper's central square; torchvision's for imported
torchvision weights); :func:`upgrade_state` fills those in, so a version-1 checkpoint
loads and resumes as it was trained. A newer version than this code knows is refused.

Reading checks every field before use, in one place: :func:`check_state` (types; the
statistics through ``alexnet.data.stats.check_stats_dict``), :func:`check_model_fields`
(options against the model's declared types, the input size the model's own, ``resize``
at most ``MAX_RESIZE_FACTOR`` times it: a file's numbers decide what an image costs) and
:func:`check_finite` (no NaN or infinite weight); each failure is one UserError naming the
file and the field. Files: ``files`` (atomic writes, ``weights_only`` reads), the model
rebuilt: ``model``, safetensors weights: ``safetensors``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from alexnet.errors import UserError, check_format_version
from alexnet.models import model_info

CHECKPOINT_VERSION = 2


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


def checkpoint_dict(
    *,
    model: dict[str, torch.Tensor],
    model_name: str,
    model_kwargs: dict,
    classes: list[str],
    preprocessing: dict,
    config: dict,
    optimizer: dict | None = None,
    scheduler: dict | None = None,
    scaler: dict | None = None,
    ema: dict | None = None,
    epoch: int = 0,
    step: int = 0,
    rng: dict | None = None,
    metrics: dict | None = None,
    run: dict | None = None,
) -> dict:
    """A checkpoint of this version (module docstring): the one place its keys are written
    (``run``: the RUN_KEYS of a training run, for ``--resume``). Values are kept as given:
    a file's fields are checked by :func:`check_state` when read."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "model": model,
        "model_name": model_name,
        "model_kwargs": model_kwargs,
        "classes": classes,
        "preprocessing": preprocessing,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "ema": ema,
        "epoch": epoch,
        "step": step,
        "rng": rng,
        "config": config,
        "metrics": metrics,
        **_run_fields(run),
    }


RUN_KEYS = (
    "batch_in_epoch",
    "partial",
    "best_error",
    "records",
    "init_from",
    "data_fingerprint",
    "data_changes",
)


def _run_fields(run: dict | None) -> dict:
    if run is None:
        return {}
    if set(run) != set(RUN_KEYS):
        raise ValueError(f"a run's checkpoint fields are {RUN_KEYS}, got {sorted(run)}")
    return {k: run[k] for k in RUN_KEYS}


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
    return checkpoint_dict(
        model=weights,
        model_name=model_name,
        model_kwargs=dict(model_kwargs),
        classes=list(classes),
        preprocessing=dict(preprocessing),
        config=dict(origin),
    )


# ---- the schema: every field read from a file checked for type and range before use ----

MAX_INPUT_SIDE = 1024  # the largest input side a file may ask for (any-size models)
MAX_CLASSES = 1_000_000
_WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
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
            ok, want = is_number(v), "a finite number"
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
