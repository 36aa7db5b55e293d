"""What a dataset is, cheaply: a plain-dict fingerprint, and the sentences saying how two differ.

The training sampler's order is a function of (seed, epoch, image index), so a resumed
run repeats an uninterrupted one only if index i is still the same image. A
fingerprint records what fixes that mapping without reading any image::

    version     FINGERPRINT_VERSION
    kind        "folder" | "packed" | "torchvision" | "other"
    split       "train" / "val" / "test" (a label for messages; not compared)
    root        where the data was read (informational; a moved dataset is the same data)
    classes     class names in label order
    count       images
    per_class   images per class, in label order
    files_sha256  sha256 over (path relative to the split folder, size in bytes) of every
                image in index order; no contents read: one stat per file (ImageNet's
                1.28 M files: one directory walk's worth of syscalls). A packed store keeps
                the digest of the files it was made from in meta.json; older stores have
                none and fall back to ``bytes`` (the .u8 file's size)
    size, bytes   packed stores: image side (pixels) and .u8 size (bytes)
    dataset     torchvision: the class name (CIFAR10, ImageNet, Imagenette)

Every value is a str, int, list, dict or None, so a fingerprint goes into checkpoints
read with ``torch.load(weights_only=True)`` and into JSON. ``compare(saved, current)``
returns sentences ("3 images added to train (200 -> 203)"), empty when the data is the
same; a file replaced by one of the same size and name is not seen.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["FINGERPRINT_VERSION", "compare", "files_digest", "fingerprint"]

FINGERPRINT_VERSION = 1
_KIND_NAMES = {
    "folder": "an image folder",
    "packed": "a packed store",
    "torchvision": "a torchvision dataset",
    "other": "another kind of dataset",
}
_SHOWN = 5  # names listed in one sentence before "and N more"


def files_digest(root: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> str:
    """sha256 hex of (path relative to ``root``, size in bytes) for each file, in order.
    A file that vanished counts as size -1."""
    prefix = os.fsencode(root).rstrip(os.sep.encode()) + os.sep.encode()
    h = hashlib.sha256()
    for p in paths:
        b = os.fsencode(p)
        rel = b[len(prefix) :] if b.startswith(prefix) else os.fsencode(os.path.relpath(p, root))
        try:
            size = os.stat(p).st_size
        except OSError:
            size = -1
        h.update(rel.replace(os.sep.encode(), b"/") + b"\0" + b"%d\n" % size)
    return h.hexdigest()


def fingerprint(dataset: Any) -> dict[str, Any]:
    """The fingerprint (module docstring) of what ``build_dataset`` returns."""
    from .folder import ImageFolderDataset
    from .sources import TorchvisionDataset
    from .split import HeldOut
    from .store import PackedDataset

    if isinstance(dataset, HeldOut):  # --val-split: the split is a function of the whole
        return fingerprint(dataset.base)
    classes = [str(c) for c in getattr(dataset, "classes", [])]
    base = {
        "version": FINGERPRINT_VERSION,
        "kind": "other",
        "split": None,
        "root": None,
        "classes": classes,
        "count": len(dataset),
        "per_class": _per_class(getattr(dataset, "targets", None), len(classes)),
        "files_sha256": None,
    }
    if isinstance(dataset, ImageFolderDataset):
        root = os.fspath(dataset.root)
        return {
            **base,
            "kind": "folder",
            "split": dataset.root.name,
            "root": _text(os.path.abspath(root)),
            "files_sha256": files_digest(root, (p for p, _ in dataset.samples)),
        }
    if isinstance(dataset, PackedDataset):
        info = dataset.meta["splits"][dataset.split]
        digest = info.get("files_sha256")
        return {
            **base,
            "kind": "packed",
            "split": dataset.split,
            "root": _text(os.path.abspath(dataset.root)),
            "files_sha256": digest,
            "size": dataset.size,
            "bytes": None if digest else (dataset.root / info["images"]).stat().st_size,
        }
    if isinstance(dataset, TorchvisionDataset):
        tv = dataset.base
        samples, root = getattr(tv, "samples", None), getattr(tv, "root", None)
        digest = files_digest(root, (p for p, _ in samples)) if samples and root else None
        return {
            **base,
            "kind": "torchvision",
            "split": _torchvision_split(tv),
            "root": _text(os.path.abspath(root)) if root else None,
            "files_sha256": digest,
            "dataset": type(tv).__name__,
        }
    return {**base, "dataset": type(dataset).__name__}


def compare(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Sentences saying how ``current`` differs from ``saved``; [] when the same data."""
    split = current.get("split") or saved.get("split") or "the data"
    out: list[str] = []
    if saved.get("kind") != current.get("kind"):
        was, now = (_KIND_NAMES.get(f.get("kind"), str(f.get("kind"))) for f in (saved, current))
        same = _same_digest(saved, current)
        out.append(f"{split} was {was}, now {now}" + (" of the same files" if same else ""))
    elif saved.get("dataset") != current.get("dataset"):
        out.append(f"{split} was {saved.get('dataset')}, now {current.get('dataset')}")
    out += _class_changes(saved.get("classes", []), current.get("classes", []), split)
    a, b = saved.get("count"), current.get("count")
    if a != b and isinstance(a, int) and isinstance(b, int):
        n = abs(b - a)
        moved = f"{_images(n)} added to" if b > a else f"{_images(n)} removed from"
        out.append(f"{moved} {split} ({a} -> {b})")
    out += _per_class_changes(saved, current, split)
    packed = saved.get("kind") == current.get("kind") == "packed"
    if packed and saved.get("size") != current.get("size"):
        out.append(f"{split}: image size {saved.get('size')} -> {current.get('size')} pixels")
    if not out:
        out += _content_changes(saved, current, split)
    return out


def _class_changes(old: Sequence[str], new: Sequence[str], split: str) -> list[str]:
    added = [c for c in new if c not in set(old)]
    removed = [c for c in old if c not in set(new)]
    out = []
    if added:
        out.append(f"{_classes(added)} added to {split}")
    if removed:
        out.append(f"{_classes(removed)} removed from {split}")
    if not added and not removed and list(old) != list(new):
        out.append(f"classes of {split} in another order (labels now mean other classes)")
    return out


def _per_class_changes(saved: dict, current: dict, split: str) -> list[str]:
    """'cat' 100 -> 103 for classes in both whose counts changed."""
    old = dict(zip(saved.get("classes", []), saved.get("per_class") or [], strict=False))
    new = dict(zip(current.get("classes", []), current.get("per_class") or [], strict=False))
    changed = [f"{c!r} {old[c]} -> {new[c]}" for c in new if c in old and old[c] != new[c]]
    if not changed:
        return []
    more = f" and {len(changed) - _SHOWN} more classes" if len(changed) > _SHOWN else ""
    return [f"images per class in {split}: {', '.join(changed[:_SHOWN])}{more}"]


def _content_changes(saved: dict, current: dict, split: str) -> list[str]:
    """Same classes and counts: compare the file digests (or a legacy store's size)."""
    a, b = saved.get("files_sha256"), current.get("files_sha256")
    if saved.get("version") != current.get("version"):  # digests made another way
        return [f"{split}: fingerprint version {saved.get('version')}, cannot compare its files"]
    if a and b:
        return [] if a == b else [f"images of {split} renamed or replaced (same count)"]
    if a or b:  # a store written before digests, and one written after
        return [f"{split}: the packed store was re-created (the old one cannot be compared)"]
    if saved.get("bytes") != current.get("bytes"):
        return [f"{split}: image file size {saved.get('bytes')} -> {current.get('bytes')} bytes"]
    return []


def _same_digest(a: dict, b: dict) -> bool:
    return bool(a.get("files_sha256")) and a.get("files_sha256") == b.get("files_sha256")


def _per_class(targets: Any, num_classes: int) -> list[int] | None:
    if targets is None or not num_classes:
        return None
    t = np.asarray(targets, dtype=np.int64)
    return np.bincount(t[t >= 0], minlength=num_classes).tolist()


def _torchvision_split(tv: Any) -> str | None:
    if isinstance(getattr(tv, "split", None), str):
        return tv.split
    if isinstance(getattr(tv, "_split", None), str):
        return tv._split
    if isinstance(getattr(tv, "train", None), bool):
        return "train" if tv.train else "val"
    return None


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _classes(names: Sequence[str]) -> str:
    shown = ", ".join(repr(c) for c in names[:_SHOWN])
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"class {shown}" if len(names) == 1 else f"classes {shown}{more}"


def _text(path: str | os.PathLike) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")
