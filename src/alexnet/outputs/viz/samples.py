"""Picking images from a dataset split, as model inputs and as pictures to show.

A split is opened once without a transform (``build_dataset(source, split)``
yields raw RGB PIL images, or uint8 tensors for a packed store) and subsets of
it are read through either the checkpoint's evaluation transform (what the
model sees) or ``DisplayTransform`` (the same centre crop, 0-1, unnormalised).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from alexnet.errors import UserError


class DisplayTransform:
    """Raw image -> float (3, S, S) in [0, 1]: the resize and the centre crop the
    evaluation transform takes, without normalisation."""

    def __init__(self, input_size: int, resize: int = 256, resize_mode: str = "square") -> None:
        self.input_size, self.resize, self.resize_mode = input_size, resize, resize_mode

    def __call__(self, img: Any) -> Tensor:
        from alexnet.data.transforms import center_origin, resized_uint8

        x = resized_uint8(img, self.resize, self.resize_mode)  # (3, H, W) uint8
        s = self.input_size
        top, left = center_origin(x.shape[1], x.shape[2], s)
        return x[:, top : top + s, left : left + s].float() / 255.0


class TransformedSubset(Dataset):
    """Items ``(transform(raw image), target)`` of ``base`` at ``indices``."""

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Callable) -> None:
        self.base, self.indices, self.transform = base, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img, target = self.base[self.indices[i]]
        return self.transform(img), int(target)

    def images(self) -> list[Tensor]:
        return [self[i][0] for i in range(len(self))]


def open_split(source: str | os.PathLike, split: str) -> Dataset:
    """The raw (untransformed) ``split`` of ``source``; a clear error when it is empty."""
    from alexnet.data import build_dataset

    ds = build_dataset(source, split, None)
    if len(ds) == 0:
        raise UserError(f"{source}: the {split} split holds no images")
    return ds


def pick_indices(total: int, count: int, seed: int | None = None) -> list[int]:
    """``count`` indices of ``total``: evenly spaced (covering every class of a split stored
    class by class), or a seeded random sample when ``seed`` is given; count 0 or
    more than ``total`` takes all."""
    if count <= 0 or count >= total:
        return list(range(total))
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        return sorted(torch.randperm(total, generator=g)[:count].tolist())
    return [int(i * total / count) for i in range(count)]


def targets_of(ds: Dataset, indices: Sequence[int]) -> list[int]:
    """Class indices of ``indices`` from ``.targets`` (no image decoding)."""
    targets = ds.targets
    return [int(targets[i]) for i in indices]
