"""Loading checkpoints for inference: device, precision, memory format, transforms, class names.

Shared by ``evaluate``, ``predict`` and the figure commands so a checkpoint is
always run with the preprocessing it was trained with (stored in its
``preprocessing`` entry) and with the measured-fastest settings by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alexnet.checkpoint import LoadedModel, load_model
from alexnet.errors import UserError
from alexnet.runtime import default_channels_last, prepare_model, resolve_amp, resolve_device

_WNID = re.compile(r"^n\d{8}$")


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
) -> InferenceSetup:
    """Load one or more checkpoints (an ensemble must agree on classes and input size)."""
    if not paths:
        raise UserError("no checkpoint given")
    dev = resolve_device(device)
    amp_ = resolve_amp(amp, dev, training=False)
    cl = default_channels_last(dev, False) if channels_last == "auto" else channels_last == "on"
    models = [load_model(p) for p in paths]
    first = models[0]
    for m in models[1:]:
        if m.classes != first.classes:
            raise UserError(
                f"{m.source} has different classes from {first.source}; an ensemble "
                "must be trained on the same classes"
            )
        if _input_size(m) != _input_size(first):
            raise UserError(
                f"{m.source} takes {_input_size(m)} px input, {first.source} "
                f"{_input_size(first)} px; an ensemble needs one input size"
            )
    for m in models:  # bf16 weights under bf16 autocast: nothing to cast per batch
        prepare_model(m.model, dev, cl, inference_amp=amp_).eval()
    return InferenceSetup(models, dev, amp_, cl)


def _input_size(m: LoadedModel) -> int:
    return int(
        m.preprocessing.get("input_size")
        or m.model_kwargs.get("input_size")
        or (224 if m.model_name == "alexnet_owt" else 227)
    )


def eval_transform_for(setup: InferenceSetup, ten_crop: bool = False):
    """The checkpoint's own evaluation transform (centre crop or 10-crop)."""
    from alexnet.data import DatasetStats, eval_transform

    pre = setup.preprocessing
    stats = DatasetStats.from_dict(pre["stats"]) if pre.get("stats") else None
    kw = {}
    if pre.get("resize"):
        kw["resize"] = int(pre["resize"])
    if pre.get("normalize"):
        kw["normalize"] = pre["normalize"]
    return eval_transform(_input_size(setup.models[0]), stats, ten_crop=ten_crop, **kw)


def display_names(classes: list[str]) -> list[str]:
    """Human-readable names: ImageNet WordNet ids (n01440764, ...) become torchvision's
    category names when all 1000 are present in the standard sorted order."""
    if len(classes) == 1000 and all(_WNID.match(c) for c in classes) and classes == sorted(classes):
        try:
            from torchvision.models import AlexNet_Weights

            return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
        except Exception:  # noqa: BLE001 - names are a nicety
            return classes
    return classes
