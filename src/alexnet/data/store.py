"""The packed store: every image resized once to 256x256 and kept as raw uint8 on disk.

The paper's own trick (§2: images "down-sampled ... to a fixed resolution of
256x256"), which turns JPEG decoding + resizing into a memory-mapped copy.
Layout of a store directory (written by ``prepare_store``)::

    meta.json              format, version, size, classes, per-split counts and
                           files_sha256 (the digest of the source files' names and
                           sizes, ``fingerprint.files_digest``); written last, with
                           "complete": true -- the completion marker
    train.u8, val.u8       uint8 (N, 3, S, S), C order, no header (numpy.memmap)
    train_labels.npy ...   int64 (N,)
    stats.json, mean_image.npy   the training split's statistics (DatasetStats)

Versions: ``read_meta`` reads formats OLDEST_VERSION..VERSION; a newer one is refused
with both named (upgrade alexnet), an older one with the ``alexnet prepare`` command that
re-creates it. Keys a reader does not know are ignored, so adding one (``files_sha256``)
keeps the version; changing what a key or file means bumps it.

``PackedDataset`` reads it; its ``transform`` receives a uint8 tensor (3, S, S)
(the presets accept that as well as PIL images); with ``transform=None`` items
are those uint8 tensors, for ``batch_augment`` on the device.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alexnet.errors import UserError, check_format_version

from .images import display_path

__all__ = ["FORMAT", "OLDEST_VERSION", "VERSION", "PackedDataset", "is_store", "read_meta"]

FORMAT, VERSION, META_FILE = "alexnet-packed-store", 1, "meta.json"
OLDEST_VERSION = 1  # the oldest store format this code reads


def is_store(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like a store (complete or not): it has meta.json or *.u8."""
    p = Path(path)
    return p.is_dir() and ((p / META_FILE).is_file() or any(p.glob("*.u8")))


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The store's meta.json, or a ``UserError`` when the store is incomplete or foreign."""
    p = Path(path)
    name = display_path(p)
    meta_path = p / META_FILE
    if not meta_path.is_file():
        raise UserError(
            f"{name}: incomplete packed store (no {META_FILE}: an interrupted "
            "`alexnet prepare`?); delete it and run prepare again"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{name}/{META_FILE}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{name}: {META_FILE} is not an alexnet packed store")
    _check_version(meta, name)
    if meta.get("complete") is not True:
        raise UserError(f"{name}: incomplete packed store; delete it and run prepare again")
    return meta


def _check_version(meta: dict[str, Any], name: str) -> None:
    src = meta.get("source") if isinstance(meta.get("source"), str) else "SRC"
    check_format_version(
        meta.get("version"),
        what="store",
        source=name,
        newest=VERSION,
        oldest=OLDEST_VERSION,
        recreate=f"`alexnet prepare {shlex.quote(src)} {shlex.quote(name)} --force`",
    )


class PackedDataset(Dataset):
    """Items ``(transform(uint8 (3, S, S) tensor), label)``; ``.classes``, ``.targets``."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        self.root, self.split, self.transform = Path(root), split, transform
        self.meta = read_meta(self.root)
        if split not in self.meta["splits"]:
            have = ", ".join(sorted(self.meta["splits"]))
            raise UserError(f"{display_path(self.root)}: no split {split!r} (has: {have})")
        info = self.meta["splits"][split]
        self.size = int(self.meta["size"])
        self.resize_mode: str = self.meta.get("resize_mode", "square")  # how it was packed
        self.classes: list[str] = list(self.meta["classes"])
        self.targets = np.load(self.root / info["labels"])  # (N,) int64
        self.shape = (int(info["count"]), 3, self.size, self.size)
        self._file = self.root / info["images"]
        expected = int(np.prod(self.shape))
        if not self._file.is_file() or self._file.stat().st_size != expected:
            raise UserError(f"{display_path(self._file)}: missing or not {expected} bytes")
        if len(self.targets) != self.shape[0]:
            raise UserError(f"{display_path(self.root)}: {split} labels do not match its images")
        self._images: np.ndarray | None = None  # opened lazily, once per process

    @property
    def images(self) -> np.ndarray:
        """The uint8 (N, 3, S, S) memory map (copy-on-write: writes stay in this process)."""
        if self._images is None:
            self._images = np.memmap(self._file, dtype=np.uint8, mode="c", shape=self.shape)
        return self._images

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the map
        return {**self.__dict__, "_images": None}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img = torch.from_numpy(self.images[index])  # (3, S, S) uint8, no copy
        return (self.transform(img) if self.transform is not None else img), int(
            self.targets[index]
        )

    def load_batch(self, indices: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, 3, S, S) and int64 (B,) for ``indices``, read in one go."""
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx)  # sorted reads are sequential on disk
        images = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        images[order] = self.images[idx[order]]
        return torch.from_numpy(images), torch.from_numpy(self.targets[idx].astype(np.int64))

    def __repr__(self) -> str:
        return (
            f"PackedDataset({display_path(self.root)!r}, split={self.split!r}, "
            f"{len(self)} images {self.size}x{self.size}, {len(self.classes)} classes)"
        )
