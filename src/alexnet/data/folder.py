"""ImageFolder trees (``root/train/<class>/*``, ``root/val/<class>/*``), read defensively.

Like ``torchvision.datasets.ImageFolder`` (classes = sorted sub-folder names), plus:
files that are not images are ignored and counted; a symlink loop is walked once;
a missing split folder, a split without class folders, or a class folder without
images fails at start-up with the folder named; a corrupt image raises
``BadImageError`` naming the file, or with ``skip_bad=True`` is replaced by the
next good sample and counted (``bad_files``, per process: each DataLoader worker
keeps its own count, and logs each bad file once).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from alexnet.errors import UserError

from .images import BadImageError, display_path, is_image_file, load_image

__all__ = ["ImageFolderDataset", "ScanReport", "find_split_dir", "image_files", "scan_split"]

log = logging.getLogger(__name__)


@dataclass
class ScanReport:
    """What a folder scan found besides images."""

    images: int = 0
    ignored: int = 0  # files that are not images (by extension), links to nothing
    ignored_examples: list[str] = field(default_factory=list)
    revisited_dirs: int = 0  # directories reached again through a symlink (loops)

    def _ignore(self, path: str) -> None:
        self.ignored += 1
        if len(self.ignored_examples) < 5:
            self.ignored_examples.append(display_path(path))

    def summary(self) -> str:
        text = f"{self.images} images"
        if self.ignored:
            text += f", {self.ignored} non-image files ignored (e.g. {self.ignored_examples[0]})"
        if self.revisited_dirs:
            text += f", {self.revisited_dirs} symlinked folders already seen skipped"
        return text


def find_split_dir(root: str | os.PathLike, split: str) -> Path:
    """``root/split`` (train, val or test); for ``val`` also ``root/test`` (CIFAR-10's
    tarball names it so)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{display_path(root)}: no such directory")
    candidates = [root / split] + ([root / "test"] if split == "val" else [])
    for c in candidates:
        if c.is_dir():
            return c
    names = " or ".join(display_path(c) for c in candidates)
    raise UserError(
        f"{names}: no such directory (an ImageFolder root holds train/<class>/<images> "
        "and val/<class>/<images>, and test/<class>/<images> for --split test)"
    )


def scan_split(split_dir: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str], ScanReport]:
    """-> (samples [(path, class index)], classes, report). Deterministic order."""
    split_dir = Path(split_dir)
    report = ScanReport()
    if not split_dir.is_dir():
        raise UserError(f"{display_path(split_dir)}: no such directory")
    classes = []
    for entry in _entries(split_dir):
        if entry.name.startswith("."):
            continue  # .git, .ipynb_checkpoints, ...
        if _is_dir(entry):
            classes.append(entry.name)
        else:
            report._ignore(entry.path)
    classes.sort()
    if not classes:
        raise UserError(
            f"{display_path(split_dir)}: no class folders (expected "
            f"{display_path(split_dir)}/<class>/<image files>)"
        )
    samples: list[tuple[str, int]] = []
    empty = []
    for index, name in enumerate(classes):
        files = _walk_images(split_dir / name, report)
        if not files:
            empty.append(name)
        samples.extend((f, index) for f in files)
    if empty:
        shown = ", ".join(display_path(split_dir / c) for c in empty[:5])
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise UserError(f"class folder(s) with no images: {shown}{more}")
    report.images = len(samples)
    return samples, classes, report


def _entries(directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise UserError(f"{display_path(directory)}: cannot list ({e.strerror})") from None


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:  # ELOOP: a link to itself
        return False


def _walk_images(top: Path, report: ScanReport) -> list[str]:
    """Image files under ``top`` (following symlinks, each real folder once), sorted."""
    seen: set[tuple[int, int]] = set()
    stack, found = [top], []
    while stack:
        d = stack.pop()
        st = os.stat(d)
        if (st.st_dev, st.st_ino) in seen:
            report.revisited_dirs += 1
            continue
        seen.add((st.st_dev, st.st_ino))
        for entry in _entries(d):
            if _is_dir(entry):
                stack.append(Path(entry.path))
            elif is_image_file(entry.name) and _is_file(entry):
                found.append(entry.path)
            else:
                report._ignore(entry.path)
    return sorted(found)


def image_files(top: str | os.PathLike) -> list[str]:
    """The image files under ``top`` and its sub-folders (links followed, each real
    folder once), sorted by path."""
    return _walk_images(Path(top), ScanReport())


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


class ImageFolderDataset(Dataset):
    """Items ``(transform(RGB PIL image), class index)``; ``.classes``, ``.targets``."""

    def __init__(
        self,
        split_dir: str | os.PathLike,
        transform: Callable[[Any], Any] | None = None,
        *,
        skip_bad: bool = False,
    ) -> None:
        self.root = Path(split_dir)
        self.samples, self.classes, self.report = scan_split(self.root)
        self.targets = [t for _, t in self.samples]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.transform = transform
        self.skip_bad = skip_bad
        self.bad_files: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self.samples)
        for k in range(n):
            path, target = self.samples[(index + k) % n]
            try:
                img = load_image(path)
                break
            except BadImageError as e:
                if not self.skip_bad:
                    raise
                if path not in self.bad_files:
                    self.bad_files.add(path)
                    log.warning("skipping bad image (%d so far): %s", len(self.bad_files), e)
        else:
            raise UserError(f"{display_path(self.root)}: no image in this split can be read")
        return (self.transform(img) if self.transform is not None else img), target

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset({display_path(self.root)!r}, {len(self)} images, "
            f"{len(self.classes)} classes)"
        )
