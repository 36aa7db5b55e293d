"""The paper's preprocessing as transform presets (§2, §4.1), for one image at a time.

train: resize -> random SxS crop -> random horizontal flip -> [ColorJitter] ->
PCA lighting -> mean subtraction.
eval:  resize -> central SxS crop, or the 10 crops of §4.1 ("Test time").

The resize (``resize_mode``, to side R = ``resize``):
  "square"   the paper's §2: shorter side to R, then the central RxR patch;
  "warp"     Caffe's: the whole image to RxR, the aspect ratio not kept;
  "shorter"  torchvision's: shorter side to R, the aspect ratio kept, crops cut
             from the whole resized image (``AlexNet_Weights.IMAGENET1K_V1.transforms()``:
             the same pixels, the same centre crop).
Normalisation (``normalize``): "pixel" is the paper's raw 0-255 RGB minus the mean
image (a flat per-channel mean where the statistics have no mean image), "channel"
(x / 255 - mean) / std, "none" x / 255.

Input: an RGB (or any-mode) PIL image, or a uint8 tensor (3, H, W) as a packed
store gives (a store already holds the resized RxR images). Output: float32
(3, S, S); (10, 3, S, S) for ten_crop.
All randomness is drawn from torch's global CPU generator (``SeededDataset`` seeds
and restores it per sample) or from an explicit ``generator``; never ``random``/NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as nnf

from .images import RESIZE_MODES, resized_uint8, square_uint8
from .stats import IMAGENET_STATS, DatasetStats

__all__ = [
    "LIGHTING_CONVENTIONS",
    "NORMALIZE_MODES",
    "RESIZE_MODES",
    "EvalTransform",
    "Normalizer",
    "PCALighting",
    "TrainTransform",
    "eval_transform",
    "resized_uint8",
    "square_uint8",
    "train_transform",
    "transform_from_preprocessing",
]

# "channel": (x - mean) / std per channel, 0-1 scale (torchvision models' convention);
# "pixel":   the paper: x - mean image, in 0-255 units as cuda-convnet fed raw bytes;
# "none":    x in 0-1, no mean subtraction (PCA lighting still applies).
NORMALIZE_MODES = ("channel", "pixel", "none")
MAX_RESIZE_FACTOR = 4  # resize <= 4 x the input side (the paper: 256 for 227); an image's cost
# PCA lighting (§4.1): the offset added to every pixel is eigvec @ (alpha * m), alpha ~
# N(0, alphastd), with m the covariance eigenvalues on the 0-1 scale ("eigval": the
# paper's formula, as fb.resnet.torch applies it) or their square roots, the standard
# deviation along each component ("std": cuda-convnet2's, there on the 0-255 scale,
# the same offset in 0-1 units; components 2 and 3 are 3-20x stronger than "eigval").
LIGHTING_CONVENTIONS = ("eigval", "std")


class PCALighting:
    """§4.1 "altering the intensities of the RGB channels": adds ``eigvec @ (alpha * m)``
    to every pixel, ``alpha ~ N(0, alphastd)`` (3 values) drawn once per image; the paper
    uses alphastd 0.1. ``m`` is ``eigval`` (convention "eigval") or its square root
    ("std", cuda-convnet2's); see ``LIGHTING_CONVENTIONS``. Input float (..., 3, H, W)
    on the 0-1 scale; alphastd 0 is identity.
    """

    def __init__(
        self,
        alphastd: float = 0.1,
        eigval: Sequence[float] = IMAGENET_STATS.eigval,
        eigvec: Sequence[Sequence[float]] = IMAGENET_STATS.eigvec,
        convention: str = "eigval",
    ) -> None:
        if convention not in LIGHTING_CONVENTIONS:
            raise ValueError(
                f"lighting convention must be one of {LIGHTING_CONVENTIONS}, got {convention!r}"
            )
        self.alphastd, self.convention = float(alphastd), convention
        eigval = torch.as_tensor(np.asarray(eigval), dtype=torch.float64).clamp_min(0)
        self.eigval = (eigval.sqrt() if convention == "std" else eigval).float()  # (3,) m
        self.eigvec = torch.as_tensor(np.asarray(eigvec), dtype=torch.float32)  # (3, 3)

    def offset(
        self, alpha: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The RGB offset (3,) for ``alpha`` (3,), drawn when not given."""
        if alpha is None:
            alpha = torch.randn(3, generator=generator) * self.alphastd
        return self.eigvec @ (alpha.float() * self.eigval)

    def __call__(self, img: Tensor, alpha: Tensor | None = None) -> Tensor:
        if self.alphastd == 0 and alpha is None:
            return img
        return img + self.offset(alpha).to(img.device, img.dtype)[:, None, None]

    def __repr__(self) -> str:
        return (
            f"PCALighting(alphastd={self.alphastd}, convention={self.convention!r}, "
            f"magnitudes={[round(v, 5) for v in self.eigval.tolist()]})"
        )


def center_origin(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the central size x size crop, rounded as torchvision's CenterCrop."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


class Normalizer:
    """``out = (x / 255 + lighting - mean) * k`` on a crop at (top, left); k = 1/std, 255 or 1."""

    def __init__(self, stats: DatasetStats | None, mode: str, resize: int) -> None:
        if mode not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
        stats = stats or IMAGENET_STATS
        self.mode = mode
        mean = torch.tensor(stats.mean, dtype=torch.float32).view(3, 1, 1)
        if mode == "channel":
            self.k = 1.0 / torch.tensor(stats.std, dtype=torch.float32).view(3, 1, 1)
        else:
            self.k = torch.full((3, 1, 1), 255.0 if mode == "pixel" else 1.0)
        self.mean = mean if mode in ("channel", "pixel") else torch.zeros(3, 1, 1)
        self.mean_image = None  # (3, R, R) for "pixel" when the statistics have one
        if mode == "pixel" and stats.mean_image is not None:
            m = torch.as_tensor(stats.mean_image, dtype=torch.float32)
            if m.shape[1:] != (resize, resize):
                m = nnf.interpolate(m[None], size=(resize, resize), mode="bilinear")[0]
            self.mean_image = m.contiguous()

    def __call__(
        self,
        x: Tensor,
        top: int = 0,
        left: int = 0,
        flip: bool = False,
        light: Tensor | None = None,
    ) -> Tensor:
        """x uint8 (3, S, S) already cropped (and flipped); light (3,) or None."""
        s = x.shape[-1]
        if self.mean_image is not None:
            m = self.mean_image[:, top : top + s, left : left + s]
            m = m.flip(-1) if flip else m
        else:
            m = self.mean
        bias = (light.view(3, 1, 1) - m) if light is not None else -m
        return x.float().mul_(self.k / 255.0).add_(bias * self.k)


def _check_sizes(input_size: int, resize: int, resize_mode: str, normalizer: Normalizer):
    if not 0 < input_size <= resize:
        raise ValueError(f"input_size must be in 1..resize={resize}, got {input_size}")
    if resize_mode == "shorter" and normalizer.mean_image is not None:
        raise ValueError(
            "a mean image needs RxR images: normalize 'pixel' with resize_mode 'square' "
            "or 'warp' (or statistics without a mean image)"
        )


class TrainTransform:
    """§2 + §4.1 training augmentation; a callable like a torchvision preset."""

    def __init__(
        self,
        input_size: int = 227,
        stats: DatasetStats | None = None,
        *,
        lighting: float = 0.1,
        lighting_convention: str = "eigval",
        color_jitter: float | Sequence[float] = 0.0,
        normalize: str = "channel",
        resize: int = 256,
        resize_mode: str = "square",
        flip: bool = True,
    ) -> None:
        stats = stats or IMAGENET_STATS
        self.input_size, self.resize, self.flip = input_size, resize, flip
        self.resize_mode = resize_mode
        self.lighting = PCALighting(lighting, stats.eigval, stats.eigvec, lighting_convention)
        cj = [color_jitter] * 3 if np.isscalar(color_jitter) else list(color_jitter)
        self.jitter = None
        if any(cj):
            from torchvision.transforms import v2

            self.jitter = v2.ColorJitter(*cj)
        self.normalizer = Normalizer(stats, normalize, resize)
        _check_sizes(input_size, resize, resize_mode, self.normalizer)

    def __call__(self, img: Any) -> Tensor:
        x = resized_uint8(img, self.resize, self.resize_mode)  # (3, H, W) uint8
        s, (h, w) = self.input_size, x.shape[1:]
        if h == w:
            top, left = (int(v) for v in torch.randint(0, h - s + 1, (2,)))
        else:
            top, left = (int(torch.randint(0, n - s + 1, ())) for n in (h, w))
        x = x[:, top : top + s, left : left + s]
        flip = self.flip and bool(torch.rand(()) < 0.5)
        if flip:
            x = x.flip(-1)
        if self.jitter is not None:
            x = self.jitter(x)
        light = self.lighting.offset() if self.lighting.alphastd > 0 else None
        return self.normalizer(x, top, left, flip, light)

    def __repr__(self) -> str:
        return (
            f"TrainTransform(resize={self.resize} ({self.resize_mode}), crop={self.input_size}, "
            f"flip={self.flip}, jitter={self.jitter}, {self.lighting}, "
            f"normalize={self.normalizer.mode!r})"
        )


class EvalTransform:
    """Centre crop, or ``ten_crop``: the four corners and the centre, then their mirrors."""

    def __init__(
        self,
        input_size: int = 227,
        stats: DatasetStats | None = None,
        *,
        ten_crop: bool = False,
        resize: int = 256,
        resize_mode: str = "square",
        normalize: str = "channel",
    ) -> None:
        self.input_size, self.resize, self.ten_crop = input_size, resize, ten_crop
        self.resize_mode = resize_mode
        self.normalizer = Normalizer(stats, normalize, resize)
        _check_sizes(input_size, resize, resize_mode, self.normalizer)

    def crop_origins(self, height: int | None = None, width: int | None = None):
        """(top, left) of the five crops of a height x width image (default RxR):
        top-left, top-right, bottom-left, bottom-right, centre."""
        h, w, s = height or self.resize, width or self.resize, self.input_size
        return [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), center_origin(h, w, s)]

    def __call__(self, img: Any) -> Tensor:
        x = resized_uint8(img, self.resize, self.resize_mode)
        s, (h, w) = self.input_size, x.shape[1:]
        origins = self.crop_origins(h, w) if self.ten_crop else [center_origin(h, w, s)]
        views = [self.normalizer(x[:, t : t + s, l : l + s], t, l) for t, l in origins]
        if not self.ten_crop:
            return views[0]
        return torch.stack(views + [v.flip(-1) for v in views])  # (10, 3, S, S)

    def __repr__(self) -> str:
        return (
            f"EvalTransform(resize={self.resize} ({self.resize_mode}), crop={self.input_size}, "
            f"ten_crop={self.ten_crop}, normalize={self.normalizer.mode!r})"
        )


def train_transform(
    input_size: int = 227,
    stats: DatasetStats | None = None,
    *,
    lighting: float = 0.1,
    lighting_convention: str = "eigval",
    color_jitter: float | Sequence[float] = 0.0,
    normalize: str = "channel",
    resize: int = 256,
    resize_mode: str = "square",
) -> TrainTransform:
    """The paper's training preset; ``stats`` None -> ``IMAGENET_STATS``.

    ``lighting``: PCA lighting alphastd (0.1 in §4.1; 0 turns it off), with
    ``lighting_convention`` "eigval" or "std" (``LIGHTING_CONVENTIONS``). ``color_jitter``:
    torchvision ColorJitter (brightness, contrast, saturation[, hue]), one float for the
    first three; 0 (default) off. ``input_size``: 227, or 224 for a model built for 224.
    """
    return TrainTransform(
        input_size,
        stats,
        lighting=lighting,
        lighting_convention=lighting_convention,
        color_jitter=color_jitter,
        normalize=normalize,
        resize=resize,
        resize_mode=resize_mode,
    )


def eval_transform(
    input_size: int = 227,
    stats: DatasetStats | None = None,
    *,
    ten_crop: bool = False,
    resize: int = 256,
    resize_mode: str = "square",
    normalize: str = "channel",
) -> EvalTransform:
    """Centre crop -> (3, S, S); ``ten_crop`` -> (10, 3, S, S): average the 10 softmax
    outputs per image (§4.1), e.g. ``model(x.flatten(0, 1)).softmax(-1).view(B, 10, -1).mean(1)``.
    """
    return EvalTransform(
        input_size,
        stats,
        ten_crop=ten_crop,
        resize=resize,
        resize_mode=resize_mode,
        normalize=normalize,
    )


def transform_from_preprocessing(preprocessing: dict, *, ten_crop: bool = False) -> EvalTransform:
    """The evaluation transform a checkpoint's ``preprocessing`` entry describes
    (``input_size``, ``resize``, ``resize_mode``, ``normalize``, ``stats``): what
    evaluate, predict, the figures and ``alexnet.transform`` feed a model."""
    stats = preprocessing.get("stats")
    return EvalTransform(
        int(preprocessing.get("input_size") or 227),
        DatasetStats.from_dict(stats) if stats else None,
        ten_crop=ten_crop,
        resize=int(preprocessing.get("resize") or 256),
        resize_mode=preprocessing.get("resize_mode") or "square",
        normalize=preprocessing.get("normalize") or "channel",
    )
