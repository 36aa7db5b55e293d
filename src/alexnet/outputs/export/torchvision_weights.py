"""torchvision's AlexNet weights (``alexnet-owt-7be5be79.pth``) as an ``alexnet_owt`` checkpoint.

``alexnet_owt`` has exactly torchvision's state-dict keys, so the weights load
unchanged; the checkpoint adds the ImageNet class names torchvision ships
(``AlexNet_Weights.IMAGENET1K_V1.meta["categories"]``, no download) and
torchvision's preprocessing, so evaluate / predict / visualize use it as is.
Users download the weights file themselves; it is read with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from alexnet.errors import UserError

# torchvision's published ImageNet-1K accuracy of these weights (single 224 centre crop).
TORCHVISION_ACCURACY = {"acc@1": 56.522, "acc@5": 79.066}


def torchvision_preprocessing() -> dict:
    """``AlexNet_Weights.IMAGENET1K_V1.transforms()`` as a checkpoint's preprocessing:
    shorter side to 256 (aspect kept, bilinear), centre 224 crop, (x / 255 - mean) / std
    with torchvision's mean and std (tests/outputs/test_import_torchvision.py compares the two)."""
    from alexnet.data import IMAGENET_STATS

    stats = dataclasses.replace(
        IMAGENET_STATS,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        source="torchvision's ImageNet mean and std",
    )
    return {
        "input_size": 224,
        "resize": 256,
        "resize_mode": "shorter",
        "normalize": "channel",
        "stats": stats.to_dict(),
    }


def _imagenet_categories() -> list[str]:
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def _read_torchvision_state(path: Path) -> dict[str, torch.Tensor]:
    from alexnet.engine.checkpoint import strip_prefixes

    if not path.is_file():
        raise UserError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling refusals, corrupt zips, bad pickles
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} could not be read safely as a state dict ({msg[:160]})") from None
    if isinstance(sd, dict) and "model_name" in sd:
        raise UserError(f"{path} is already an alexnet checkpoint; use it directly")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path} is not a state dict (a mapping of names to tensors)")
    return strip_prefixes(sd)


def _width_of(sd: dict[str, torch.Tensor]) -> dict:
    """``{"width": w}`` when conv1 (``features.0``, 64 x width maps) has a count that
    ``alexnet_owt`` builds at some width other than 1; else ``{}`` (torchvision's own size, or
    a count no width gives: the shape check then names it against torchvision's)."""
    from alexnet.models.paper import width_of

    w = sd.get("features.0.weight")
    width = width_of(int(w.shape[0]), 64) if w is not None and w.dim() == 4 else None
    return {"width": width} if width not in (None, 1.0) else {}


def import_torchvision(
    file: str | os.PathLike, out_ckpt: str | os.PathLike, classes: list[str] | None = None
) -> Path:
    """Turn torchvision's AlexNet weights (``alexnet-owt-7be5be79.pth``) into our checkpoint.

    The file is read with ``weights_only=True`` and must hold exactly the keys and
    shapes of ``torchvision.models.alexnet()`` (any number of classes), or of
    ``alexnet_owt`` at another ``width`` (conv1's 64 x width maps give it). Without
    ``classes``, a 1000-way classifier gets torchvision's ImageNet category names.
    Preprocessing is torchvision's: resize 256, centre crop 224, ImageNet mean/std.
    """
    from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
    from alexnet.models import create_model

    path = Path(file)
    sd = _read_torchvision_state(path)
    n = int(sd["classifier.6.bias"].shape[0]) if "classifier.6.bias" in sd else 1000
    kwargs = _width_of(sd)
    with torch.device("meta"):  # names and shapes only: no memory, no initialisation
        own = create_model("alexnet_owt", num_classes=n, **kwargs).state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise UserError(
            f"{path} is not torchvision's AlexNet state dict ({len(missing)} missing keys "
            f"e.g. {missing[:2]}, {len(unexpected)} unexpected e.g. {unexpected[:2]})"
        )
    net = (
        f"torchvision's AlexNet at width {kwargs['width']:g}" if kwargs else "torchvision's AlexNet"
    )
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape) or not sd[k].is_floating_point():
            raise UserError(
                f"{path}: {k} is {sd[k].dtype} {tuple(sd[k].shape)}, {net} has "
                f"{v.dtype} {tuple(v.shape)}; not torchvision's AlexNet weights"
            )
    if classes is None:
        classes = _imagenet_categories() if n == 1000 else [str(i) for i in range(n)]
    if len(classes) != n:
        raise UserError(f"{len(classes)} class names given for a {n}-way classifier in {path}")
    origin = {
        "source": "torchvision",
        "file": path.name,
        "torchvision_accuracy": TORCHVISION_ACCURACY if n == 1000 else None,
    }
    state = weights_checkpoint(
        "alexnet_owt",
        kwargs,
        {k: sd[k].float().contiguous() for k in own},
        classes,
        torchvision_preprocessing(),
        origin,
    )
    return save_checkpoint(state, out_ckpt)
