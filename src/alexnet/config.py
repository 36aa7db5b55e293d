"""The training configuration: one dataclass, YAML presets, flags on top, all errors at once.

Resolution order (later wins): the dataclass defaults (the paper's values),
the preset named by ``--preset`` (``src/alexnet/configs/<name>.yaml``, also
reachable as ``configs/`` at the repository root), a ``--config FILE``, then the
command-line flags the user actually gave. ``validate()`` reports every invalid
value in one message before any work starts.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from alexnet.errors import UserError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are the paper's (§5)."""

    model: str = "alexnet"
    """create_model() name: alexnet (the paper), alexnet_bn, alexnet_owt."""
    model_kwargs: dict = field(default_factory=dict)
    """Extra create_model() options, e.g. {init: caffe, dropout: 0.5, input_size: 224}."""
    data: str | None = None
    """ImageFolder root (train/, val/), packed store, or cifar10:/imagenet:/imagenette:DIR.
    None: the generated demo dataset."""
    demo: dict = field(default_factory=dict)
    """make_demo_dataset() options used when data is None (seed, train_per_class, ...)."""
    out: str = "runs/alexnet"
    """Run directory: config.yaml, metrics.jsonl, checkpoints/, plots/, summary.json."""
    epochs: int = 90
    batch_size: int = 128
    """Per process (torchrun: each rank loads this many)."""
    lr: float = 0.01
    optimizer: str = "sgd"
    """sgd (the paper) or adamw."""
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "plateau"
    """plateau (÷10 when val error stops improving, §5), step, cosine or constant."""
    lr_factor: float = 0.1
    """Multiplier at each plateau or step decay."""
    patience: int = 2
    """plateau: epochs without a val top-1 improvement before a decay."""
    max_decays: int = 3
    """plateau: the paper divided the learning rate three times."""
    step_epochs: int = 30
    """step: decay every this many epochs (torchvision's recipe: 30)."""
    warmup_epochs: float = 0.0
    """Linear learning-rate warm-up over this many epochs (fractions allowed)."""
    min_improvement: float = 0.0
    """plateau: smallest drop of val top-1 error that counts as an improvement."""
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    """Exponential moving average of the weights (0 = off); validation uses the EMA."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value (0 = off)."""
    amp: str = "auto"
    """auto, off, bf16, fp16 (CUDA only)."""
    channels_last: str = "auto"
    """auto, on or off."""
    compile: bool = False
    input_size: int = 227
    """Crop side: 227 (the paper's arithmetic) or 224."""
    resize: int = 256
    lighting: float = 0.1
    """PCA lighting alphastd (§4.1); 0 disables it."""
    color_jitter: float = 0.0
    """torchvision ColorJitter strength (0 = off), instead of or with lighting."""
    normalize: str = "channel"
    """channel (per-channel mean/std) or pixel (the paper's mean image)."""
    seed: int = 0
    deterministic: bool = False
    """torch.use_deterministic_algorithms (slower on CUDA; CPU runs are repeatable anyway)."""
    workers: int = 2
    device: str = "auto"
    model_parallel: str | None = None
    """"DEV_A,DEV_B": the paper's two-tower split over two devices (§3.2)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs)."""
    eval_batches: int | None = None
    """Evaluate on at most this many validation batches (smoke runs)."""
    skip_bad: bool = False
    """Skip unreadable images (counted and reported) instead of failing."""
    quiet: bool = False
    """No progress bars; one log line per epoch."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise one UserError listing every invalid value."""
        from alexnet.models import list_models

        e = []
        if self.model not in list_models():
            e.append(f"--model {self.model!r} is unknown (choose from {', '.join(list_models())})")
        else:  # model options (--init, --dropout, model_kwargs): build it on the meta device
            import torch

            from alexnet.models import create_model

            kwargs = dict(self.model_kwargs)
            if self.model != "alexnet_owt" and self.input_size in (224, 227):
                kwargs.setdefault("input_size", self.input_size)
            try:
                with torch.device("meta"):
                    create_model(self.model, num_classes=2, **kwargs)
            except (ValueError, TypeError) as err:
                e.append(f"model options: {err}")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                e.append(
                    f"--{name.replace('_', '-')} must be a positive integer, "
                    f"got {getattr(self, name)!r}"
                )
        if not self.lr > 0:
            e.append(f"--lr must be positive, got {self.lr!r}")
        if self.optimizer not in ("sgd", "adamw"):
            e.append(f"--optimizer must be sgd or adamw, got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            e.append(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            e.append(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in ("plateau", "step", "cosine", "constant"):
            e.append(f"--schedule must be plateau, step, cosine or constant, got {self.schedule!r}")
        if not 0 < self.lr_factor < 1:
            e.append(f"lr_factor must be in (0, 1), got {self.lr_factor}")
        if self.patience < 0 or self.max_decays < 0 or self.step_epochs < 1:
            e.append("patience and max_decays must be >= 0 and step_epochs >= 1")
        if self.warmup_epochs < 0:
            e.append(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        if not 0 <= self.label_smoothing < 1:
            e.append(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.ema_decay < 1:
            e.append(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0:
            e.append(f"--grad-clip must be >= 0, got {self.grad_clip}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            e.append(f"--amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.channels_last not in ("auto", "on", "off"):
            e.append(f"--channels-last must be auto, on or off, got {self.channels_last!r}")
        if self.input_size not in (224, 227):
            e.append(f"--input-size must be 227 or 224, got {self.input_size}")
        if self.resize < self.input_size:
            e.append(f"resize ({self.resize}) must be >= input size ({self.input_size})")
        if self.lighting < 0 or self.color_jitter < 0:
            e.append("--lighting and --color-jitter must be >= 0")
        if self.normalize not in ("channel", "pixel"):
            e.append(f"--normalize must be channel or pixel, got {self.normalize!r}")
        if self.workers < 0:
            e.append(f"--workers must be >= 0, got {self.workers}")
        if self.max_steps is not None and self.max_steps < 1:
            e.append(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.eval_batches is not None and self.eval_batches < 1:
            e.append(f"--eval-batches must be >= 1, got {self.eval_batches}")
        if self.data is not None and ":" not in self.data.split(os.sep)[0]:
            p = Path(self.data)
            if not p.exists():
                e.append(f"--data {self.data}: no such directory")
            elif not p.is_dir():
                e.append(f"--data {self.data}: is a file, not a dataset directory")
        if e:
            raise UserError("invalid configuration:\n  " + "\n  ".join(e), exit_code=2)


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


def _apply(cfg: TrainConfig, values: dict, source: str) -> None:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known - {"description"})
    if unknown:
        raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}", exit_code=2)
    for k, v in values.items():
        if k != "description":
            setattr(cfg, k, v)


def resolve_config(
    preset: str | None = None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then the preset, then the file, then ``overrides`` (non-None values)."""
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


def save_config(cfg: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
