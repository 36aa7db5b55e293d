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
    stats.json, mean_image.npy   the training split's statistics (DatasetStats; stats-warp.json,
                                 mean_image-warp.npy in a store packed with --resize-mode warp)

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
import re
import reprlib
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alexnet.errors import UserError, check_format_version, printable
from alexnet.lock import hold_shared, release_shared

from .images import display_path

__all__ = ["FORMAT", "OLDEST_VERSION", "VERSION", "PackedDataset", "is_store", "read_meta"]

FORMAT, VERSION, META_FILE = "alexnet-packed-store", 1, "meta.json"
OLDEST_VERSION = 1  # the oldest store format this code reads
MAX_SIZE = 8192  # the largest side a store may declare (the paper's is 256)
MAX_META_BYTES = 64 << 20  # 21k class names take under 1 MiB
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # a plain name: no path, no ..
_short = reprlib.Repr()
_short.maxstring, _short.maxother = 40, 40


def is_store(path: str | os.PathLike) -> bool:
    """True when ``path`` looks like a store (complete or not): it has meta.json or *.u8."""
    p = Path(path)
    return p.is_dir() and ((p / META_FILE).is_file() or any(p.glob("*.u8")))


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The store's meta.json with every field checked (``_check_fields``), or a one-line
    ``UserError`` naming the file when the store is incomplete, foreign or damaged."""
    p = Path(path)
    name = display_path(p)
    meta_path = p / META_FILE
    if not meta_path.is_file():
        raise UserError(
            f"{name}: incomplete packed store (no {META_FILE}: an interrupted "
            "`alexnet prepare`?); delete it and run prepare again"
        )
    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise ValueError(f"over {MAX_META_BYTES >> 20} MiB")
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{name}/{META_FILE}: unreadable ({_first_line(e)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{name}: {META_FILE} is not an alexnet packed store")
    _check_version(meta, name)
    if meta.get("complete") is not True:
        raise UserError(f"{name}: incomplete packed store; delete it and run prepare again")
    _check_fields(meta, f"{name}/{META_FILE}")
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


def _check_fields(meta: dict[str, Any], where: str) -> None:
    """Type and range of every field a reader uses; a one-line ``UserError`` naming it."""

    def need(ok: bool, key: str, want: str, value: Any) -> None:
        if not ok:
            # key: a split's name is the file's (control characters escaped)
            raise UserError(f"{where}: {printable(key)} must be {want}, got {_short.repr(value)}")

    size = meta.get("size")
    need(_is_int(size) and 1 <= size <= MAX_SIZE, "size", f"an integer in 1..{MAX_SIZE}", size)
    mode = meta.get("resize_mode", "square")
    ok_mode = isinstance(mode, str) and mode in ("square", "warp")
    need(ok_mode, "resize_mode", "square or warp", mode)
    classes = meta.get("classes")
    need(
        isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes),
        "classes",
        "a list of class names",
        classes,
    )
    need(len(set(classes)) == len(classes), "classes", "distinct names", classes)
    need(isinstance(meta.get("source", ""), str), "source", "a string", meta.get("source"))
    splits = meta.get("splits")
    need(isinstance(splits, dict) and splits, "splits", "an object of splits", splits)
    for split, info in splits.items():
        key = f"splits.{split}"
        need(isinstance(info, dict), key, "an object", info)
        count = info.get("count")
        need(_is_int(count) and count >= 0, f"{key}.count", "an integer >= 0", count)
        for field in ("images", "labels"):
            v = info.get(field)
            ok = isinstance(v, str) and _FILE_NAME.fullmatch(v) is not None and v != META_FILE
            need(ok, f"{key}.{field}", "a file name in the store", v)
        digest = info.get("files_sha256")
        need(digest is None or isinstance(digest, str), f"{key}.files_sha256", "a string", digest)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _read_labels(path: Path, count: int, classes: int) -> np.ndarray:
    """The int64 (count,) labels of ``path`` (.npy), each in 0..classes-1, or a one-line
    ``UserError`` naming the file. Mapped, not read: a header claiming more than the file
    holds is an error, not an allocation."""
    name = display_path(path)
    try:
        labels = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{name}: missing (the store is incomplete)") from None
    except Exception as e:  # noqa: BLE001 - numpy's many ways of refusing a damaged file
        raise UserError(f"{name}: not a label file ({_first_line(e)})") from None
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise UserError(f"{name}: not a 1-D array of integer labels")
    if len(labels) != count:
        raise UserError(f"{name}: {len(labels)} labels for {count} images")
    if count and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise UserError(f"{name}: label {bad} out of range 0..{classes - 1} ({classes} classes)")
    return np.array(labels, dtype=np.int64)


class PackedDataset(Dataset):
    """Items ``(transform(uint8 (3, S, S) tensor), label)``; ``.classes``, ``.targets``.

    While open it holds a shared lock on the store's meta.json (``alexnet.lock.hold_shared``),
    so ``alexnet prepare --force`` cannot replace the store under a run reading it; ``close``
    (or the object's end) lets go."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        self.root, self.split, self.transform = Path(root), split, transform
        self._images: np.ndarray | None = None  # opened lazily, once per process
        self._reader: int | None = None
        if (self.root / META_FILE).is_file():
            try:
                self._reader = hold_shared(self.root / META_FILE)
            except OSError as e:
                raise UserError(f"{display_path(self.root / META_FILE)}: {e.strerror}") from None
        try:
            self._open(split)
        except BaseException:
            self.close()
            raise

    def _open(self, split: str) -> None:
        self.meta = read_meta(self.root)
        if split not in self.meta["splits"]:
            have = ", ".join(sorted(self.meta["splits"]))
            raise UserError(f"{display_path(self.root)}: no split {split!r} (has: {have})")
        info = self.meta["splits"][split]
        self.size = self.meta["size"]
        self.resize_mode: str = self.meta.get("resize_mode", "square")  # how it was packed
        self.classes: list[str] = list(self.meta["classes"])
        self.shape = (info["count"], 3, self.size, self.size)
        self._file = self.root / info["images"]
        expected = int(np.prod(self.shape, dtype=object))
        if not self._file.is_file() or self._file.stat().st_size != expected:
            raise UserError(f"{display_path(self._file)}: missing or not {expected} bytes")
        self.targets = _read_labels(self.root / info["labels"], info["count"], len(self.classes))

    def close(self) -> None:
        """Let go of the store (its shared lock); the images stay readable while mapped."""
        release_shared(self._reader)
        self._reader = None

    def __del__(self) -> None:
        self.close()

    @property
    def images(self) -> np.ndarray:
        """The uint8 (N, 3, S, S) memory map (copy-on-write: writes stay in this process)."""
        if self._images is None:
            self._images = np.memmap(self._file, dtype=np.uint8, mode="c", shape=self.shape)
        return self._images

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the map
        return {**self.__dict__, "_images": None, "_reader": None}

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
