"""The paper's preprocessing as transform presets (§2, §4.1), for one image at a time.

train: 256x256 (shorter side to 256, central crop) -> random SxS crop -> random
horizontal flip -> [ColorJitter] -> PCA lighting -> mean subtraction.
eval:  256x256 -> central SxS crop, or the 10 crops of §4.1 ("Test time").

Input: an RGB (or any-mode) PIL image, or a uint8 tensor (3, H, W) as a packed
store gives; both go through the same 256x256 step (skipped when the tensor already
is 256x256). Output: float32 (3, S, S); (10, 3, S, S) for ten_crop.
All randomness is drawn from torch's global CPU generator (``SeededDataset`` seeds
and restores it per sample) or from an explicit ``generator``; never ``random``/NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as nnf
from torchvision.transforms import v2

from .images import resize_center_crop
from .stats import IMAGENET_STATS, DatasetStats

__all__ = [
    "NORMALIZE_MODES",
    "EvalTransform",
    "Normalizer",
    "PCALighting",
    "TrainTransform",
    "eval_transform",
    "square_uint8",
    "train_transform",
]

# "channel": (x - mean) / std per channel, 0-1 scale (torchvision models' convention);
# "pixel":   the paper: x - mean image, in 0-255 units as cuda-convnet fed raw bytes;
# "none":    x in 0-1, no mean subtraction (PCA lighting still applies).
NORMALIZE_MODES = ("channel", "pixel", "none")


class PCALighting:
    """§4.1 "altering the intensities of the RGB channels": adds ``eigvec @ (alpha * eigval)``
    to every pixel, ``alpha ~ N(0, alphastd)`` (3 values) drawn once per image; the paper
    uses alphastd 0.1. Input float (..., 3, H, W) on the 0-1 scale; alphastd 0 is identity.
    """

    def __init__(
        self,
        alphastd: float = 0.1,
        eigval: Sequence[float] = IMAGENET_STATS.eigval,
        eigvec: Sequence[Sequence[float]] = IMAGENET_STATS.eigvec,
    ) -> None:
        self.alphastd = float(alphastd)
        self.eigval = torch.as_tensor(np.asarray(eigval), dtype=torch.float32)  # (3,)
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
        return f"PCALighting(alphastd={self.alphastd}, eigval={self.eigval.tolist()})"


def square_uint8(img: Any, size: int = 256) -> Tensor:
    """PIL image (any mode) or uint8 tensor (3, H, W) -> uint8 (3, size, size) (§2 rescale)."""
    if isinstance(img, Tensor):
        if img.dtype != torch.uint8 or img.ndim != 3 or img.shape[0] != 3:
            raise TypeError(
                f"expected a uint8 tensor (3, H, W), got {img.dtype} {tuple(img.shape)}"
            )
        if img.shape[1:] == (size, size):
            return img
        img = v2.functional.to_pil_image(img)
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image or a uint8 tensor, got {type(img).__name__}")
    return v2.functional.pil_to_tensor(resize_center_crop(img, size))


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
        self.mean = mean if mode == "channel" else torch.zeros(3, 1, 1)
        self.mean_image = None  # (3, R, R) for "pixel"; a flat per-channel image without one
        if mode == "pixel":
            m = stats.mean_image
            m = torch.as_tensor(m, dtype=torch.float32) if m is not None else mean.expand(3, 8, 8)
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


class TrainTransform:
    """§2 + §4.1 training augmentation; a callable like a torchvision preset."""

    def __init__(
        self,
        input_size: int = 227,
        stats: DatasetStats | None = None,
        *,
        lighting: float = 0.1,
        color_jitter: float | Sequence[float] = 0.0,
        normalize: str = "channel",
        resize: int = 256,
        flip: bool = True,
    ) -> None:
        if not 0 < input_size <= resize:
            raise ValueError(f"input_size must be in 1..resize={resize}, got {input_size}")
        stats = stats or IMAGENET_STATS
        self.input_size, self.resize, self.flip = input_size, resize, flip
        self.lighting = PCALighting(lighting, stats.eigval, stats.eigvec)
        cj = [color_jitter] * 3 if np.isscalar(color_jitter) else list(color_jitter)
        self.jitter = v2.ColorJitter(*cj) if any(cj) else None
        self.normalizer = Normalizer(stats, normalize, resize)

    def __call__(self, img: Any) -> Tensor:
        x = square_uint8(img, self.resize)  # (3, R, R) uint8
        s, r = self.input_size, self.resize
        top, left = (int(v) for v in torch.randint(0, r - s + 1, (2,)))
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
            f"TrainTransform(resize={self.resize}, crop={self.input_size}, flip={self.flip}, "
            f"jitter={self.jitter}, {self.lighting}, normalize={self.normalizer.mode!r})"
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
        normalize: str = "channel",
    ) -> None:
        if not 0 < input_size <= resize:
            raise ValueError(f"input_size must be in 1..resize={resize}, got {input_size}")
        self.input_size, self.resize, self.ten_crop = input_size, resize, ten_crop
        self.normalizer = Normalizer(stats, normalize, resize)

    def crop_origins(self) -> list[tuple[int, int]]:
        """(top, left) of the five crops: top-left, top-right, bottom-left, bottom-right, centre."""
        e, c = self.resize - self.input_size, (self.resize - self.input_size) // 2
        return [(0, 0), (0, e), (e, 0), (e, e), (c, c)]

    def __call__(self, img: Any) -> Tensor:
        x = square_uint8(img, self.resize)
        s = self.input_size
        origins = self.crop_origins() if self.ten_crop else self.crop_origins()[4:]
        views = [self.normalizer(x[:, t : t + s, l : l + s], t, l) for t, l in origins]
        if not self.ten_crop:
            return views[0]
        return torch.stack(views + [v.flip(-1) for v in views])  # (10, 3, S, S)

    def __repr__(self) -> str:
        return (
            f"EvalTransform(resize={self.resize}, crop={self.input_size}, "
            f"ten_crop={self.ten_crop}, normalize={self.normalizer.mode!r})"
        )


def train_transform(
    input_size: int = 227,
    stats: DatasetStats | None = None,
    *,
    lighting: float = 0.1,
    color_jitter: float | Sequence[float] = 0.0,
    normalize: str = "channel",
    resize: int = 256,
) -> TrainTransform:
    """The paper's training preset; ``stats`` None -> ``IMAGENET_STATS``.

    ``lighting``: PCA lighting alphastd (0.1 in §4.1; 0 turns it off). ``color_jitter``:
    torchvision ColorJitter (brightness, contrast, saturation[, hue]), one float for the
    first three; 0 (default) off. ``input_size``: 227, or 224 for a model built for 224.
    """
    return TrainTransform(
        input_size,
        stats,
        lighting=lighting,
        color_jitter=color_jitter,
        normalize=normalize,
        resize=resize,
    )


def eval_transform(
    input_size: int = 227,
    stats: DatasetStats | None = None,
    *,
    ten_crop: bool = False,
    resize: int = 256,
    normalize: str = "channel",
) -> EvalTransform:
    """Centre crop -> (3, S, S); ``ten_crop`` -> (10, 3, S, S): average the 10 softmax
    outputs per image (§4.1), e.g. ``model(x.flatten(0, 1)).softmax(-1).view(B, 10, -1).mean(1)``.
    """
    return EvalTransform(input_size, stats, ten_crop=ten_crop, resize=resize, normalize=normalize)
