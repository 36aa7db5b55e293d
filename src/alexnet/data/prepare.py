"""``prepare_store``: ImageFolder root -> packed store (format in ``store.py``).

Both splits are scanned first (bad layout fails before any work), each image is
decoded once (``load_image``), rescaled to SxS (``resize_center_crop``) and
written into a uint8 memory map by ``workers`` processes, each filling its own
slots. Everything goes to ``DST.tmp-XXXX`` and is renamed to DST only when
complete, ``meta.json`` written last: an interrupted prepare leaves at most a
``DST.tmp-PID-XXXX`` folder without meta.json, which ``build_dataset`` refuses and the
next prepare into DST deletes once PID is gone. One process writes DST at a time:
``.DST.lock`` beside it (``alexnet.lock``) is held from the scan to the rename, and a
second prepare into DST fails at once naming the first.

What ``--force`` may replace is checked before anything is written (``destination``),
and a store a run is reading is not replaced (``PackedDataset`` holds a shared lock on
its meta.json). The images file's blocks are reserved before it is mapped, so a full
disk is one line and the partial store is removed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alexnet.errors import UserError
from alexnet.lock import hold_destination_lock, hold_unread

from .destination import check_destination, remove_stale
from .fingerprint import files_digest
from .folder import ScanReport, find_split_dir, scan_split
from .images import BadImageError, display_path, load_image, resize_center_crop
from .stats import DatasetStats, compute_stats
from .store import FORMAT, META_FILE, VERSION

__all__ = ["PrepareReport", "prepare_store"]

SPLITS, CHUNK = ("train", "val"), 64
Progress = Callable[[str, int, int], None]  # (split, images done, images in split)


@dataclass
class PrepareReport:
    path: Path
    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # messages naming the files
    ignored: dict[str, int] = field(default_factory=dict)  # non-image files
    seconds: float = 0.0
    stats: DatasetStats | None = None

    def summary(self) -> str:
        lines = [f"packed store {display_path(self.path)} ({self.seconds:.1f} s)"]
        for split, n in self.written.items():
            line = f"  {split}: {n} images"
            if self.skipped.get(split):
                line += f", {len(self.skipped[split])} bad images skipped"
            if self.ignored.get(split):
                line += f", {self.ignored[split]} non-image files ignored"
            lines.append(line)
        for split, msgs in self.skipped.items():
            lines += [f"  skipped: {m}" for m in msgs[:10]]
            if len(msgs) > 10:
                lines.append(f"  ... and {len(msgs) - 10} more in {split}")
        return "\n".join(lines)


def prepare_store(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    size: int = 256,
    resize_mode: str = "square",
    workers: int = 1,
    skip_bad: bool = False,
    stats: bool = True,
    force: bool = False,
    stats_images: int = 10_000,
    progress: Progress | None = None,
) -> PrepareReport:
    """Pack ``src/train`` and ``src/val`` (or ``src/test``) into the store ``dst``.

    ``resize_mode``: "square" (§2: shorter side to ``size``, the central square) or
    "warp" (Caffe's: the whole image squeezed to ``size`` x ``size``); recorded in
    meta.json, and training checks it against its own. A bad image stops with
    ``BadImageError`` naming it, or with ``skip_bad`` is left out and listed in the
    report. ``force`` replaces an existing ``dst``.
    """
    t0 = time.perf_counter()
    if size < 1:
        raise UserError(f"--size must be >= 1, got {size}")
    if resize_mode not in ("square", "warp"):
        raise UserError(
            f"--resize-mode must be square or warp (a store holds squares), got {resize_mode!r}"
        )
    dst = Path(dst)
    check_destination(src, dst, force)  # before anything is touched
    with hold_destination_lock(dst, "prepare"):  # a second prepare into DST fails here
        check_destination(src, dst, force)
        with hold_unread(dst / META_FILE, display_path(dst)):
            pass  # a run reading DST: refuse now rather than after the work
        remove_stale(dst)
        src = _image_folder(src)
        dirs = {s: find_split_dir(src, s) for s in SPLITS}
        scans = {s: scan_split(dirs[s]) for s in SPLITS}
        classes = scans["train"][1]
        samples = {"train": scans["train"][0], "val": _remap(scans["val"], classes)}
        report = PrepareReport(path=dst)
        tmp = None
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{dst.name}.tmp-{os.getpid()}-", dir=dst.parent))
            write = partial(
                _write_split, tmp, (size, resize_mode), workers, skip_bad, progress, report
            )
            splits = {}
            for split in SPLITS:
                report.ignored[split] = scans[split][2].ignored
                splits[split] = write(split, dirs[split], samples[split])
            source = display_path(Path(src).resolve())
            if stats and splits["train"]["count"]:
                report.stats = _store_stats(
                    tmp / "train.u8", splits["train"]["count"], size, stats_images, source
                )
                report.stats.resize_mode = resize_mode  # how the stored images were made
                report.stats.save(tmp)
            meta = {
                "format": FORMAT,
                "version": VERSION,
                "size": size,
                "resize_mode": resize_mode,
                "layout": "NCHW uint8",
                "classes": classes,
                "splits": splits,
                "source": source,
                "complete": True,
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
            check_destination(src, dst, force)
            with hold_unread(dst / META_FILE, display_path(dst)):
                _swap_into_place(tmp, dst)
        except OSError as e:  # a full disk, above all: the store's size is reserved up front
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            what = _final_name(e.filename, tmp, dst) if e.filename else "the store"
            raise UserError(
                f"{display_path(dst)}: cannot write {what}: {e.strerror or e}; "
                "nothing was left behind"
            ) from None
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
    report.seconds = time.perf_counter() - t0
    return report


def _final_name(filename, tmp: Path | None, dst: Path) -> str:
    """``DST/train.u8`` for ``DST.tmp-PID-XXXX/train.u8``: the name the user knows."""
    path = Path(os.fsdecode(filename))
    if tmp is not None and path.is_relative_to(tmp):
        path = dst / path.relative_to(tmp)
    return display_path(path)


def _image_folder(src: str | os.PathLike) -> Path:
    """The ImageFolder root of ``src``: itself, or a tar archive of one extracted (once,
    into the cache) as ``--data`` does."""
    from .sources import _tree_root, extract_archive, source_kind

    kind, text = source_kind(src)
    return _tree_root(extract_archive(text)) if kind.name == "archive" else Path(text)


def _write_split(tmp, resize, workers, skip_bad, progress, report, split, root, samples) -> dict:
    """Pack one split (``samples`` found under ``root``) into ``tmp`` -> its meta.json
    entry, with the digest of the kept files' names and sizes (``fingerprint``); the
    report gets its counts."""
    labels, kept, bad = _pack_split(
        samples,
        tmp / f"{split}.u8",
        resize,
        workers,
        skip_bad,
        lambda d, n: progress and progress(split, d, n),
    )
    np.save(tmp / f"{split}_labels.npy", labels)
    report.written[split], report.skipped[split] = len(labels), bad
    return {
        "count": len(labels),
        "images": f"{split}.u8",
        "labels": f"{split}_labels.npy",
        "skipped": len(bad),
        "ignored": report.ignored[split],
        "files_sha256": files_digest(root, (samples[i][0] for i in kept)),
    }


def _remap(scan: tuple[list, list[str], ScanReport], classes: list[str]) -> list[tuple[str, int]]:
    """The val split's samples labelled by the train split's class indices."""
    samples, val_classes, _ = scan
    unknown = sorted(set(val_classes) - set(classes))
    if unknown:
        raise UserError(f"val classes not in train: {', '.join(unknown[:10])}")
    index = {c: i for i, c in enumerate(classes)}
    return [(p, index[val_classes[t]]) for p, t in samples]


def _pack_split(samples, out: Path, resize, workers: int, skip_bad: bool, progress):
    """Fill ``out`` with the samples' pixels resized as ``resize`` = (size, mode) says ->
    (labels of the kept images, their sample indices, bad messages)."""
    size, mode = resize
    n, per_image = len(samples), 3 * size * size
    with open(out, "wb") as f:
        _reserve(f, n * per_image)
    paths = [p for p, _ in samples]
    jobs = [(str(out), n, resize, i, paths[i : i + CHUNK]) for i in range(0, n, CHUNK)]
    bad: dict[int, str] = {}
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.map(_pack_chunk, jobs) if pool else map(_pack_chunk, jobs)
        done = 0
        for (_, _, _, start, chunk), errors in zip(jobs, results, strict=True):
            for i, message in errors:
                if not skip_bad:
                    raise BadImageError(f"{message} (--skip-bad leaves such files out)")
                bad[i] = message
            done = start + len(chunk)
            if progress:
                progress(done, n)
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    keep = [i for i in range(n) if i not in bad]
    if bad:
        _compact(out, n, per_image, keep)
    labels = np.asarray([samples[i][1] for i in keep], dtype=np.int64)
    return labels, keep, [bad[i] for i in sorted(bad)]


def _reserve(f, length: int) -> None:
    """Give ``f`` ``length`` bytes of disk now: written through a memory map, a file
    without its blocks dies by SIGBUS when the disk fills; reserved, a full disk is
    ENOSPC here. File systems without fallocate get a sparse file as before."""
    if length == 0:
        return
    try:
        os.posix_fallocate(f.fileno(), 0, length)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise OSError(e.errno, e.strerror, f.name) from None
        f.truncate(length)


def _pack_chunk(job: tuple[str, int, tuple, int, list[str]]) -> list[tuple[int, str]]:
    """Worker: decode, rescale and write images ``start..`` -> [(index, error message)]."""
    out, n, (size, mode), start, paths = job
    images = np.memmap(out, dtype=np.uint8, mode="r+", shape=(n, 3, size, size))
    errors = []
    for i, path in enumerate(paths, start):
        try:
            img = load_image(path, draft_size=size)
            if mode == "warp":
                img = img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)
            else:
                img = resize_center_crop(img, size)
        except BadImageError as e:
            errors.append((i, str(e)))
            continue
        images[i] = np.asarray(img).transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S)
    images.flush()
    return errors


def _compact(out: Path, n: int, per_image: int, keep: list[int]) -> None:
    """Move the kept images down over the holes left by bad ones; shorten the file."""
    images = np.memmap(out, dtype=np.uint8, mode="r+", shape=(n, per_image))
    for new, old in enumerate(keep):
        if new != old:
            images[new] = images[old]
    images.flush()
    del images
    with open(out, "r+b") as f:
        f.truncate(len(keep) * per_image)


def _store_stats(path: Path, count: int, size: int, max_images: int, source: str) -> DatasetStats:
    images = np.memmap(path, dtype=np.uint8, mode="c", shape=(count, 3, size, size))
    items = _ArrayItems(images)
    stats = compute_stats(items, max_images=max_images, size=size)
    stats.source = source
    return stats


class _ArrayItems:
    """(N, 3, S, S) uint8 array -> items ``(uint8 tensor, 0)`` for ``compute_stats``."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.images[i]), 0


def _swap_into_place(tmp: Path, dst: Path) -> None:
    if not dst.exists():
        os.rename(tmp, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{dst.name}.old-{os.getpid()}-", dir=dst.parent))
    os.rename(dst, old / "store")
    os.rename(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
