"""``--val-split FRACTION``: a validation split held out of ``train/`` where the data has
no ``val/``: seeded and stratified (each class gives the same fraction, at least one
image where it has two or more), so the same (data, fraction, seed) always holds out the
same images and a resumed run validates on what it started with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

__all__ = ["HeldOut", "hold_out", "split_problems", "stratified_split"]


def stratified_split(targets: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices), both sorted: per class, ``round(fraction * n)``
    of its ``n`` images chosen by a generator seeded with ``seed`` (at least one, and at
    least one left for training, where the class has two or more)."""
    labels = np.asarray(targets)
    rng = np.random.default_rng([seed, 0x5E1])
    held: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n = len(members)
        k = min(max(round(fraction * n), 1), n - 1) if n > 1 else 0
        held += rng.choice(members, k, replace=False).tolist()
    out = set(held)
    return [i for i in range(len(labels)) if i not in out], sorted(held)


class HeldOut(Dataset):
    """The images ``indices`` of ``base`` (one part of a ``--val-split``), with its classes;
    ``targets`` are the part's own."""

    def __init__(self, base: Dataset, indices: list[int], fraction: float, part: str) -> None:
        self.base, self.indices, self.fraction, self.part = base, list(indices), fraction, part
        self.classes = list(base.classes)
        targets = list(base.targets)
        self.targets = [targets[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.indices[index]]

    def __getattr__(self, name: str) -> Any:  # report, bad_files, root: the base's
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def _has_val(root: Path) -> bool:
    return (root / "val").is_dir() or (root / "test").is_dir()


def split_problems(source: str | os.PathLike, fraction: float | None) -> list[str]:
    """What is wrong with ``--data SOURCE`` [``--val-split FRACTION``] about the
    validation split, without reading images: a folder with no val/ needs a
    ``--val-split``; one with val/ (or a source that always has one) refuses it.
    Archives are checked once extracted (``build_data``)."""
    from .sources import source_kind

    kind, text = source_kind(source)
    if kind.name == "folder" and Path(text).is_dir():
        root = Path(text)
        if not (root / "train").is_dir():
            return [f"--data {text}: no train/ folder (an ImageFolder root holds train/<class>/)"]
        if fraction is None and not _has_val(root):
            return [
                f"--data {text}: no val/ folder: add one, or pass --val-split FRACTION to hold "
                "out part of train/"
            ]
        if fraction is not None and _has_val(root):
            return [f"--val-split: {text} has a val/ folder already; drop --val-split"]
        return []
    if fraction is not None and kind.name in ("demo", "store", "torchvision"):
        return [f"--val-split: {text} has a validation split already; drop --val-split"]
    return []


def hold_out(
    source: str, train: Dataset, val_transform: Any, fraction: float, seed: int, skip_bad: bool
) -> tuple[HeldOut, HeldOut]:
    """(the training part, the held-out part) of ``source``'s train split ``train``; the
    held-out part reads the same files through ``val_transform``. A source with a val/ of
    its own (an archive, found once extracted) is refused."""
    from alexnet.errors import UserError

    from .sources import _tree_root, build_dataset, extract_archive, source_kind

    kind, text = source_kind(source)
    if kind.name == "archive" and _has_val(_tree_root(extract_archive(text))):
        raise UserError(
            f"--val-split: {text} has a val/ folder already; drop --val-split", exit_code=2
        )
    keep, held = stratified_split(list(train.targets), fraction, seed)
    if not held:
        raise UserError(
            f"--val-split {fraction}: {source}'s classes have one image each: nothing to hold out",
            exit_code=2,
        )
    val_base = build_dataset(source, "train", val_transform, skip_bad=skip_bad)
    return HeldOut(train, keep, fraction, "train"), HeldOut(val_base, held, fraction, "val")
