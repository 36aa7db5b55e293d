"""Loading checkpoints for inference: device, precision, memory format, transforms, class names.

Shared by ``evaluate``, ``predict`` and the figure commands so a checkpoint is
always run with the preprocessing it was trained with (stored in its
``preprocessing`` entry) and with the measured-fastest settings by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alexnet.engine.checkpoint import LoadedModel
from alexnet.errors import UserError
from alexnet.runtime import default_channels_last, prepare_model, resolve_amp, resolve_device
from alexnet.tasks.loading import load_model


@dataclass
class InferenceSetup:
    models: list[LoadedModel]
    device: torch.device
    amp: str
    channels_last: bool

    @property
    def classes(self) -> list[str]:
        return self.models[0].classes

    @property
    def preprocessing(self) -> dict:
        return self.models[0].preprocessing

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [m.model for m in self.models]


def load_for_inference(
    paths: Sequence[str],
    *,
    device: str = "auto",
    amp: str = "auto",
    channels_last: str = "auto",
    weights: str = "auto",
) -> InferenceSetup:
    """Load one or more checkpoints (an ensemble must agree on classes and input size);
    ``weights``: as ``loading.load_model`` (EMA where the run kept one). ``amp`` "auto":
    float32 where every file was trained with ``--amp off`` (``--preset paper``/``caffe``),
    else the device's default."""
    if not paths:
        raise UserError("no checkpoint given")
    dev = resolve_device(device)
    models = [load_model(p, weights=weights) for p in paths]
    if amp == "auto" and all(m.train_amp == "off" for m in models):
        amp = "off"
    amp_ = resolve_amp(amp, dev, training=False)
    cl = default_channels_last(dev, False) if channels_last == "auto" else channels_last == "on"
    first = models[0]
    for m in models[1:]:
        if m.classes != first.classes:
            raise UserError(
                f"{m.source} has different classes from {first.source}; an ensemble "
                "must be trained on the same classes"
            )
    for m in models:  # bf16 weights under bf16 autocast: nothing to cast per batch
        prepare_model(m.model, dev, cl, inference_amp=amp_).eval()
    return InferenceSetup(models, dev, amp_, cl)


def weights_line(setup: InferenceSetup) -> str | None:
    """ "weights: EMA (decay 0.999)" where a file holds an EMA beside its weights (which
    of the two runs), None where each file holds one set."""
    chosen = [m for m in setup.models if m.weights]
    if not chosen:
        return None
    if len(setup.models) == 1:
        return f"weights: {chosen[0].weights}"
    return "weights: " + ", ".join(f"{m.source} {m.weights}" for m in chosen)


def add_inference_arguments(p, *, amp: str = "auto", channels_last: bool = True) -> None:
    """``--device``, ``--amp`` (default ``amp``), ``--channels-last`` and ``--weights``:
    how evaluate, predict and features run a checkpoint."""
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    p.add_argument(
        "--amp",
        default=amp,
        choices=["auto", "off", "bf16", "fp16"],
        help="auto: float32 for a run trained in float32 (--preset paper, caffe), else bf16 "
        "where the device has it natively"
        if amp == "auto"
        else f"autocast precision (default {amp}; off: float32)",
    )
    if channels_last:
        p.add_argument(
            "--channels-last",
            default="auto",
            choices=["auto", "on", "off"],
            help="NHWC memory format (auto: where measured faster)",
        )
    add_weights_argument(p)


def add_weights_argument(p) -> None:
    """The ``--weights`` option of evaluate, predict and features."""
    p.add_argument(
        "--weights",
        default="auto",
        choices=["auto", "ema", "raw"],
        help="auto: the EMA of the weights where the run kept one (--ema-decay; what its "
        "validation scored), else the weights; raw: the optimizer's weights",
    )


def preprocessing_of(m: LoadedModel) -> dict:
    """The model's preprocessing, with its input size filled in from the registry."""
    from alexnet.models import input_size_for

    pre = dict(m.preprocessing)
    pre.setdefault("input_size", input_size_for(m.model_name, m.model_kwargs))
    return pre


def eval_transform_for(setup: InferenceSetup, ten_crop: bool = False, index: int = 0):
    """Model ``index``'s own evaluation transform (centre crop or 10-crop)."""
    from alexnet.data.transforms import transform_from_preprocessing

    return transform_from_preprocessing(preprocessing_of(setup.models[index]), ten_crop=ten_crop)


class EnsembleTransform:
    """One input per distinct preprocessing of an ensemble: a tuple of tensors, and
    ``groups[i]`` lists the models that take input ``i`` (§6's models may have been
    trained at different input sizes or normalisations)."""

    def __init__(self, setup: InferenceSetup, ten_crop: bool = False) -> None:
        keys, self.transforms, self.groups = [], [], []
        for i, m in enumerate(setup.models):
            key = repr(sorted(preprocessing_of(m).items()))
            if key not in keys:
                keys.append(key)
                self.transforms.append(eval_transform_for(setup, ten_crop, i))
                self.groups.append([])
            self.groups[keys.index(key)].append(i)

    def __call__(self, img) -> tuple:
        return tuple(t(img) for t in self.transforms)
