"""The training configuration: one dataclass, YAML presets, flags on top, all errors at once.

Every field of :class:`TrainConfig` is a setting: it has a flag (``alexnet train --help``,
generated from the field's type and docstring by ``alexnet.cli.settings``), a YAML key
(presets in ``src/alexnet/engine/configs/``, ``--config FILE``) and a line in the run's
``config.yaml``. Resolution order (later wins): the defaults below (the paper's values),
``--preset``, ``--config FILE``, then the flags the user gave. ``validate()`` reports
every invalid value in one message before any work starts. Model options
(``model_kwargs``) are the registry's (``alexnet.models.model_info(name).options``).

Adding a setting is one field here (with its docstring) plus the code that uses it.
``# ---- group`` comments name the ``--help`` section of the fields below them.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from alexnet.errors import UserError
from alexnet.models import DEFAULT_MODEL

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are the paper's (§5)."""

    # ---- what to train
    model: str = DEFAULT_MODEL
    """Network: alexnet (the paper), alexnet_bn or alexnet_owt (`alexnet summary --list`)."""
    model_kwargs: dict = field(default_factory=dict)
    """create_model() options as a YAML mapping, e.g. '{init: caffe, lrn_k: 1}'; the model
    option flags below set single ones."""
    init_from: str | None = None
    """Start from the weights in this file (checkpoint, .safetensors, an imported file): the
    run fine-tunes them; fc8 is replaced (and said so) when the class count differs."""
    freeze: str | None = None
    """Keep every layer up to and including this one fixed (conv1 .. fc7)."""
    backbone_lr_mult: float = 1.0
    """Learning rate of the layers taken from --init-from (all but a replaced fc8), as a
    multiple of --lr."""

    # ---- data
    data: str | None = None
    """ImageFolder root (train/, val/), a .tar/.tar.gz of one, a packed store, demo[:DIR], or
    cifar10:/imagenet:/imagenette:DIR. None: the generated demo dataset."""
    demo: dict = field(default_factory=dict)
    """Options of the generated demo dataset as YAML (seed, train_per_class, val_per_class,
    num_classes, size), used when --data is demo or not given."""
    input_size: int | None = None
    """Crop side: 227 (the paper's arithmetic) or 224; None: the model's default."""
    resize: int = 256
    """Side the images are resized to before cropping (§2: 256)."""
    resize_mode: Literal["auto", "square", "warp", "shorter"] = "auto"
    """square: shorter side to --resize, central square (§2); warp: the whole image squeezed
    to a square (Caffe); shorter: shorter side, aspect kept (torchvision); auto: the model's."""
    normalize: Literal["auto", "pixel", "channel", "none"] = "auto"
    """pixel: raw 0-255 RGB minus the training set's mean image (§2); channel: (x/255 - mean)
    / std per channel; none: x/255; auto: the model's (pixel for alexnet, channel for owt)."""
    lighting: float = 0.1
    """PCA lighting alphastd (§4.1); 0 disables it."""
    lighting_convention: Literal["eigval", "std"] = "eigval"
    """eigval: offsets eigvec @ (alpha * eigenvalue), the paper's formula on the 0-1 scale;
    std: alpha * sqrt(eigenvalue), cuda-convnet2's."""
    color_jitter: float = 0.0
    """torchvision ColorJitter strength (0 = off), instead of or with lighting."""
    augment_on: Literal["auto", "loader", "device"] = "auto"
    """Where crops, flips, lighting and normalisation run: loader (CPU workers, per image),
    device (batch_augment on whole batches in the training process, on its device, from a
    packed store's uint8 images); auto: device with a packed store, else loader."""
    skip_bad: bool = False
    """Skip unreadable images (counted and reported) instead of failing."""
    val_split: float | None = None
    """Where the data has no val/: hold out this fraction of train/ for validation (seeded
    by --seed, stratified by class; recorded, so a resume validates on the same images)."""

    # ---- optimisation (§5)
    epochs: int = 90
    """Passes over the training set."""
    batch_size: int = 128
    """Images per step per process (torchrun: each rank loads this many)."""
    lr: float = 0.01
    """Learning rate."""
    optimizer: Literal["sgd", "adamw"] = "sgd"
    """sgd (the paper) or adamw."""
    sgd_form: Literal["paper", "torch"] = "paper"
    """paper: §5's update, the velocity holds the learning rate (a decay fades in over the
    next steps); torch: torch.optim.SGD (the step rescales at once)."""
    momentum: float = 0.9
    """SGD momentum (§5: 0.9)."""
    weight_decay: float = 5e-4
    """L2 weight decay (§5: 0.0005)."""
    bias_lr_mult: float = 1.0
    """Learning rate of the biases as a multiple of --lr (Caffe's bvlc_alexnet: 2)."""
    bias_decay_mult: float = 1.0
    """Weight decay of the biases as a multiple of --weight-decay (Caffe's: 0)."""
    schedule: Literal["plateau", "step", "cosine", "constant"] = "plateau"
    """plateau (/10 when val error stops improving, §5), step, cosine or constant."""
    lr_factor: float = 0.1
    """Multiplier at each plateau or step decay."""
    patience: int = 2
    """plateau: epochs without a val top-1 improvement that are tolerated; the next one
    divides (torch's ReduceLROnPlateau patience: 2 flat epochs pass, the 3rd divides)."""
    max_decays: int = 3
    """plateau: the paper divided the learning rate three times."""
    min_improvement: float = 0.0
    """plateau: smallest drop of val top-1 error that counts as an improvement."""
    step_epochs: int = 30
    """step: decay every this many epochs (torchvision's recipe: 30)."""
    step_iterations: int | None = None
    """step: decay every this many optimizer steps instead (Caffe's stepsize: 100000)."""
    warmup_epochs: float = 0.0
    """Linear learning-rate warm-up over this many epochs (fractions allowed)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing (0 = off)."""
    ema_decay: float = 0.0
    """Exponential moving average of the weights (0 = off); validation uses the EMA."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value (0 = off)."""

    # ---- run
    out: str = "runs/alexnet"
    """Run directory: config.yaml, metrics.jsonl, checkpoints/, plots/, summary.json."""
    seed: int = 0
    """Seed of the initial weights, the sampler's order and every augmentation."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms (slower on CUDA; CPU runs are repeatable anyway)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs, iteration budgets)."""
    eval_batches: int | None = None
    """Evaluate on this many validation batches (smoke runs), their images evenly spaced
    through the split so that every class is scored."""
    keep_best: int = 0
    """Also keep the K best epochs' weights by val top-1 error as
    checkpoints/best-epochNNN.pt beside best.pt (one that drops out of the K best is
    deleted); 0: best.pt only."""
    report: bool = True
    """Write report.html at the end of the run (the result, curves, and the best
    checkpoint run on validation images for sample predictions and a confusion matrix);
    --no-report for sweeps and smoke runs (``alexnet report RUN`` writes it later)."""
    quiet: bool = False
    """No progress within an epoch (no bar, no step lines); one log line per epoch."""
    log_interval: int | None = None
    """Where stderr is not a terminal (a log file): a plain line every this many steps
    instead of a progress bar; None: about 20 per epoch (steps per epoch // 20)."""

    # ---- hardware
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda, cuda:1, ..."""
    workers: int | None = None
    """Data loading processes; None: one per CPU core, at most 8 (none for a packed store
    augmented in the step on the CPU, where reading is a copy)."""
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    """Mixed precision; auto: bf16 on CUDA and on CPUs with native bf16, else off."""
    channels_last: Literal["auto", "on", "off"] = "auto"
    """channels_last memory format; auto: on (measured faster on CPU and CUDA)."""
    compile: bool = False
    """torch.compile the model."""
    model_parallel: str | None = None
    """"DEV_A,DEV_B": the paper's two-tower split over two devices (§3.2)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self, extra: list[str] | None = None) -> None:
        """Raise one UserError (exit 2) listing every invalid value of this configuration,
        after ``extra`` (the CLI's own: a missing --resume file)."""
        e = [*(extra or []), *self.problems()]
        if len(e) == 1:
            raise UserError(f"invalid configuration: {e[0]}", exit_code=2)
        if e:
            raise UserError("invalid configuration:\n  " + "\n  ".join(e), exit_code=2)

    def problems(self) -> list[str]:
        """Every invalid value, missing file, and device or data the run cannot have; reads
        no image and creates nothing."""
        e = _type_errors(self)
        e += self._model_errors()
        e += self._range_errors()
        if isinstance(self.init_from, str) and not Path(self.init_from).is_file():
            e.append(f"--init-from {self.init_from}: no such file")
        e += self._data_errors()
        if self.demo:
            from alexnet.data.demo import demo_option_errors

            e += [f"--demo: {m}" for m in demo_option_errors(self.demo)]
        return e + self._device_errors()

    def _data_errors(self) -> list[str]:
        from alexnet.data.sources import check_source
        from alexnet.data.split import split_problems

        if not isinstance(self.data, str) and self.data is not None:
            return []
        problem = check_source(self.data) if self.data is not None else None
        if problem:
            return [f"--data {problem}"]
        split = float(self.val_split) if _is_real(self.val_split) else None
        return split_problems(self.data or "demo", split)

    def _device_errors(self) -> list[str]:
        """--device and --amp as this machine can run them (not --model-parallel's)."""
        from alexnet.runtime import resolve_amp, resolve_device

        if not isinstance(self.device, str) or self.model_parallel:
            return []
        try:
            device = resolve_device(self.device)
        except UserError as err:
            return [str(err)]
        try:
            resolve_amp(self.amp, device, training=True)
        except UserError as err:
            return [str(err)]
        return []

    def _model_errors(self) -> list[str]:
        from alexnet.models import list_models, model_info

        if self.model not in list_models():
            return [f"--model {self.model!r} is unknown (choose from {', '.join(list_models())})"]
        info = model_info(self.model)
        e = []
        if self.input_size is not None and not info.accepts_input_size(self.input_size):
            sizes = ", ".join(map(str, info.input_sizes)) or f">= {info.min_input_size}"
            e.append(f"--input-size {self.input_size}: {self.model} takes {sizes}")
        try:  # the model options: build it on the meta device
            import torch

            from alexnet.models import create_model

            with torch.device("meta"):
                create_model(self.model, num_classes=2, **self.model_kwargs_resolved())
        except (ValueError, TypeError) as err:
            e.append(f"model options: {err}")
        if self.freeze is not None and self.freeze not in list(info.layers)[:-1]:
            e.append(f"--freeze {self.freeze!r}: choose one of {', '.join(list(info.layers)[:-1])}")
        return e

    def _range_errors(self) -> list[str]:
        e = []
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, int) and v < 1:
                e.append(f"--{_flag(name)} must be a positive integer, got {v!r}")
        if isinstance(self.lr, (int, float)) and not self.lr > 0:
            e.append(f"--lr must be positive, got {self.lr!r}")
        for name, lo, hi in (
            ("momentum", 0, 1),
            ("label_smoothing", 0, 1),
            ("ema_decay", 0, 1),
            ("lr_factor", 0, 1),
        ):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not (lo <= v < hi and (name != "lr_factor" or v)):
                e.append(f"--{_flag(name)} must be in [{lo}, {hi}), got {v}")
        nonneg = ("weight_decay", "grad_clip", "warmup_epochs", "lighting", "color_jitter")
        nonneg += ("patience", "max_decays", "min_improvement", "bias_lr_mult", "bias_decay_mult")
        for name in (*nonneg, "backbone_lr_mult"):
            v = getattr(self, name)
            if isinstance(v, (int, float)) and v < 0:
                e.append(f"--{_flag(name)} must be >= 0, got {v}")
        names = ("step_epochs", "step_iterations", "max_steps", "eval_batches", "resize")
        for name in (*names, "log_interval"):
            v = getattr(self, name)
            if isinstance(v, int) and v < 1:
                e.append(f"--{_flag(name)} must be >= 1, got {v}")
        if isinstance(self.keep_best, int) and self.keep_best < 0:
            e.append(f"--keep-best must be >= 0, got {self.keep_best}")
        if _is_real(self.val_split) and not 0 < self.val_split < 1:
            e.append(f"--val-split must be a fraction in (0, 1), got {self.val_split}")
        if isinstance(self.workers, int) and self.workers < 0:
            e.append(f"--workers must be >= 0, got {self.workers}")
        size = self.input_size or 227
        if isinstance(self.resize, int) and isinstance(size, int):
            from alexnet.data.transforms import MAX_RESIZE_FACTOR

            if not size <= self.resize <= MAX_RESIZE_FACTOR * size:
                e.append(
                    f"--resize ({self.resize}) must be between the input size ({size}) and "
                    f"{MAX_RESIZE_FACTOR} x it ({MAX_RESIZE_FACTOR * size}): checkpoints "
                    "asking for more are refused"
                )
        if self.model in _known_models():
            pre = self.preprocessing()
            if pre["normalize"] == "pixel" and pre["resize_mode"] == "shorter":
                e.append(
                    "--normalize pixel subtracts a square mean image: use --resize-mode "
                    "square or warp"
                )
        if self.freeze is not None and self.init_from is None:
            e.append("--freeze keeps pretrained layers fixed: it needs --init-from FILE")
        mult = self.backbone_lr_mult
        if isinstance(mult, (int, float)) and mult != 1.0 and self.init_from is None:
            e.append(
                f"--backbone-lr-mult {mult} scales the layers taken from --init-from: it "
                "needs --init-from FILE (or --backbone-lr-mult 1 to train from scratch)"
            )
        return e

    def preprocessing(self) -> dict:
        """``input_size``, ``resize``, ``resize_mode`` and ``normalize`` with "auto" and
        None resolved from the model's registry entry."""
        from alexnet.models import input_size_for, model_info

        default = model_info(self.model).preprocessing
        auto = {"resize_mode": self.resize_mode, "normalize": self.normalize}
        out = {k: default[k] if v == "auto" else v for k, v in auto.items()}
        size = self.input_size or input_size_for(self.model, self.model_kwargs)
        return {"input_size": size, "resize": self.resize, **out}

    def model_kwargs_resolved(self) -> dict:
        """create_model() options: ``model_kwargs`` plus the input size when the model
        takes one."""
        from alexnet.models import model_info

        kwargs = dict(self.model_kwargs)
        if self.input_size is not None and "input_size" in model_info(self.model).options:
            kwargs.setdefault("input_size", self.input_size)
        return kwargs


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _known_models() -> list[str]:
    from alexnet.models import list_models

    return list_models()


def _flag(name: str) -> str:
    return name.replace("_", "-")


def setting_types() -> dict[str, Any]:
    """Field name -> its resolved type annotation."""
    return typing.get_type_hints(TrainConfig)


def literal_choices(tp: Any) -> tuple | None:
    """The allowed values of a ``Literal[...]`` (or ``Literal[...] | None``) type."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return None


def _accepts(tp: Any, value: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in (str, bool, dict):
        return isinstance(value, tp)
    return True


def _type_errors(cfg: TrainConfig) -> list[str]:
    errors = []
    for name, tp in setting_types().items():
        value = getattr(cfg, name)
        if not _accepts(tp, value):
            choices = literal_choices(tp)
            want = f"one of {', '.join(map(str, choices))}" if choices else _type_name(tp)
            errors.append(f"--{_flag(name)} must be {want}, got {value!r}")
    return errors


def _type_name(tp: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in (typing.get_args(tp) or (tp,))]
    return " or ".join("None" if n == "NoneType" else f"a {n}" for n in names)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path, what: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise UserError(f"{what} {path}: {e.strerror}", exit_code=2) from None
    except yaml.YAMLError as e:
        raise UserError(
            f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}", exit_code=2
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must hold a mapping of settings", exit_code=2)
    return data


NONE_WORDS = ("none", "null")
"""What sets an optional setting to None, in YAML (beside ``null`` and ``~``) and on the
command line (``--max-steps none`` undoes the caffe preset's 450,000)."""


def _nullable(name: str) -> bool:
    return type(None) in typing.get_args(setting_types()[name])


def _apply(cfg: TrainConfig, values: dict, source: str) -> None:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known - {"description"})
    if unknown:
        raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}", exit_code=2)
    for k, v in values.items():
        if isinstance(v, str) and v.lower() in NONE_WORDS and _nullable(k):
            v = None
        if k == "model_kwargs" and isinstance(v, dict):
            cfg.model_kwargs = {**cfg.model_kwargs, **v}
        elif k != "description":
            setattr(cfg, k, v)


def resolve_config(
    preset: str | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then the preset, then the file, then ``overrides`` (non-None values;
    ``model_kwargs`` entries are merged into the earlier ones)."""
    cfg = TrainConfig()
    if preset is not None:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.exists():
            raise UserError(
                f"unknown preset {preset!r} (choose from {', '.join(list_presets())})", exit_code=2
            )
        _apply(cfg, _read_yaml(path, "preset"), f"preset {preset}")
    if config_file is not None:
        _apply(cfg, _read_yaml(Path(config_file), "--config"), str(config_file))
    if overrides:
        _apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "command line")
    return cfg


def config_from_dict(values: dict, source: str = "checkpoint") -> TrainConfig:
    """A TrainConfig from a saved ``config.to_dict()``; settings this version does not
    know are refused, ones it added since keep their defaults."""
    cfg = TrainConfig()
    _apply(cfg, dict(values), source)
    return cfg


def config_yaml(cfg: TrainConfig) -> str:
    """The resolved settings as the YAML document ``config.yaml`` holds."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(config_yaml(cfg))
