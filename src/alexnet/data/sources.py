"""Data sources: the one place that knows each form ``--data`` takes, and ``build_dataset``.

Each source kind is registered with ``@register_source(name, ...)``: how to recognise
its text, a cheap check for ``TrainConfig.validate`` (nothing extracted or scanned),
the folder its statistics are cached for, and how to open a split. The kinds, tried in
this order:

* ``demo`` or ``demo:DIR``: the generated textures (``demo.py``), in the cache folder
  (``demo_root``) or DIR, generated there unless it holds them -> ``ImageFolderDataset``;
* ``cifar10:DIR``, ``imagenet:DIR`` (devkit layout), ``imagenette:DIR``
  (``imagenette320:`` / ``imagenette160:`` for the smaller variants): torchvision's
  datasets wrapped in ``TorchvisionDataset``;
* a ``.tar``/``.tar.gz``/``.tgz`` of an ImageFolder tree (e.g.
  ``../shared/data/cifar10-jpeg.tar.gz``), checked and extracted once into
  ``$ALEXNET_CACHE_DIR/extracted/`` (``archives.py``: keyed by content, size limits,
  safe members) -> ``ImageFolderDataset``;
* a packed store directory (``alexnet prepare``; has ``meta.json``) -> ``PackedDataset``;
* a directory holding ``train/<class>/*`` and ``val/<class>/*`` (and ``test/<class>/*``
  for ``--split test``; ``test/`` is accepted for ``val`` too, as CIFAR-10's JPEG
  tarball has it) -> ``ImageFolderDataset``.

Every dataset has ``.classes`` (list[str]) and ``.targets`` and yields
``(transform(image), label)``; the image is an RGB PIL image, or for a packed store
a uint8 (3, 256, 256) tensor (the presets take both).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from alexnet.errors import UserError

from .archives import extract_archive
from .folder import ImageFolderDataset, find_split_dir
from .images import display_path, load_image, to_rgb
from .store import PackedDataset, is_store

__all__ = [
    "SourceKind",
    "TorchvisionDataset",
    "build_dataset",
    "check_source",
    "extract_archive",
    "list_sources",
    "materialize",
    "register_source",
    "source_kind",
    "source_root",
]

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class SourceKind:
    """One form of ``--data``. ``matches(text)``: is it this kind; ``check(text)``: a
    problem sentence or None, cheap; ``root(text)``: the path its statistics belong to;
    ``open(text, split, transform, skip_bad, download)``: the split's dataset."""

    name: str
    example: str
    matches: Callable[[str], bool]
    check: Callable[[str], str | None]
    root: Callable[[str], Path]
    open: Callable[..., Dataset]


_KINDS: list[SourceKind] = []


def register_source(name: str, example: str, matches, check, root):
    """Register ``open`` (the decorated function) as the source kind ``name``."""

    def wrap(open_fn):
        _KINDS.append(SourceKind(name, example, matches, check, root, open_fn))
        return open_fn

    return wrap


def list_sources() -> list[SourceKind]:
    return list(_KINDS)


def source_kind(source: str | os.PathLike) -> tuple[SourceKind, str]:
    """(the kind, the text after its prefix) of a data source."""
    text = os.fspath(source)
    for kind in _KINDS:
        if kind.matches(text):
            return kind, text
    raise UserError(f"{text}: not a data source")  # the folder kind matches anything


def check_source(source: str | os.PathLike) -> str | None:
    """What is wrong with ``--data SOURCE``, without reading the data; None if it looks fine."""
    kind, text = source_kind(source)
    return kind.check(text)


def source_root(source: str | os.PathLike) -> Path:
    """The path a source's statistics are cached for (its folder, archive or store)."""
    kind, text = source_kind(source)
    return kind.root(text)


def materialize(source: str | None, demo_options: dict | None = None) -> str:
    """The source as ``build_dataset`` reads it; the demo (``None`` or ``demo``) becomes
    its folder, generated first with ``demo_options`` when it is not there yet."""
    from .demo import SPEC_FILE, demo_root, make_demo_dataset

    text = "demo" if source is None else os.fspath(source)
    kind, _ = source_kind(text)
    if kind.name != "demo":
        return text
    folder = Path(text[5:]) if text.startswith("demo:") else demo_root(demo_options)
    if not (folder / SPEC_FILE).is_file():
        make_demo_dataset(folder, **(demo_options or {}))
    return str(folder)


def build_dataset(
    source: str | os.PathLike,
    split: str,
    transform: Callable[[Any], Any] | None = None,
    *,
    skip_bad: bool = False,
    download: bool = False,
) -> Dataset:
    """The ``split`` ("train", "val" or "test") of ``source`` (forms in the module
    docstring); a folder's ``test/`` also stands in for a missing ``val/``."""
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}", exit_code=2)
    kind, text = source_kind(source)
    return kind.open(text, split, transform, skip_bad, download)


# ---- the kinds, in the order they are tried ----

_TORCHVISION = ("cifar10", "imagenet", "imagenette", "imagenette320", "imagenette160")


def _prefixed(text: str) -> tuple[str, str] | None:
    prefix, sep, rest = text.partition(":")
    return (prefix, rest) if sep and prefix in _TORCHVISION else None


def _is_archive(text: str) -> bool:
    return text.endswith(ARCHIVE_SUFFIXES)


@register_source(
    "demo",
    "demo",
    matches=lambda t: t == "demo" or t.startswith("demo:"),
    check=lambda t: None,
    root=lambda t: Path(materialize(t)),
)
def _open_demo(text: str, split, transform, skip_bad, download) -> Dataset:
    return _open_folder(materialize(text), split, transform, skip_bad, download)


def _check_torchvision(text: str) -> str | None:
    prefix, root = _prefixed(text)
    return f"{prefix}: needs a directory, e.g. {prefix}:data/{prefix}" if not root else None


@register_source(
    "torchvision",
    "cifar10:DIR",
    matches=lambda t: _prefixed(t) is not None,
    check=_check_torchvision,
    root=lambda t: Path(_prefixed(t)[1]).resolve(),
)
def _open_torchvision(text: str, split, transform, skip_bad, download) -> Dataset:
    kind, root = _prefixed(text)
    return _torchvision(kind, root, split, transform, skip_bad, download)


def _check_path(text: str, want_dir: bool) -> str | None:
    p = Path(text)
    if not p.exists():
        return f"{display_path(p)}: no such directory" + ("" if want_dir else " or archive")
    if want_dir and not p.is_dir():
        return (
            f"{display_path(p)}: is a file, not a dataset directory, a .tar/.tar.gz/.tgz "
            "archive or a packed store"
        )
    return None


@register_source(
    "archive",
    "cifar10-jpeg.tar.gz",
    matches=lambda t: _is_archive(t) and Path(t).is_file(),
    check=lambda t: _check_path(t, want_dir=False),
    root=lambda t: Path(t).resolve(),
)
def _open_archive(text: str, split, transform, skip_bad, download) -> Dataset:
    root = _tree_root(extract_archive(text))
    return _open_folder(str(root), split, transform, skip_bad, download)


@register_source(
    "store",
    "DIR (alexnet prepare)",
    matches=lambda t: is_store(t),
    check=lambda t: None,
    root=lambda t: Path(t).resolve(),
)
def _open_store(text: str, split, transform, skip_bad, download) -> Dataset:
    return PackedDataset(text, split, transform)


@register_source(
    "folder",
    "DIR with train/<class>/ and val/<class>/",
    matches=lambda t: True,
    check=lambda t: _check_path(t, want_dir=True),
    root=lambda t: Path(t).resolve(),
)
def _open_folder(text: str, split, transform, skip_bad, download) -> Dataset:
    path = Path(text)
    problem = _check_path(text, want_dir=True)
    if problem:
        raise UserError(problem)
    ds = ImageFolderDataset(find_split_dir(path, split), transform, skip_bad=skip_bad)
    if ds.report.ignored or ds.report.revisited_dirs:
        log.warning("%s: %s", display_path(ds.root), ds.report.summary())
    return ds


def _tree_root(folder: Path) -> Path:
    """The folder holding train/: ``folder`` itself or its single sub-folder (cifar10/)."""
    if (folder / "train").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / "train").is_dir():
        return subs[0]
    return folder


class TorchvisionDataset(Dataset):
    """A torchvision dataset with ``.classes`` as plain names and ``.targets`` as ints."""

    def __init__(self, base: Any, classes: list[str], targets: list[int], transform=None):
        self.base, self.classes, self.targets, self.transform = base, classes, targets, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img, target = self.base[index]
        img = to_rgb(img)
        return (self.transform(img) if self.transform is not None else img), int(target)

    def __repr__(self) -> str:
        return f"TorchvisionDataset({type(self.base).__name__}, {len(self)} images)"


def _names(class_tuples: list[tuple[str, ...]], wnids: list[str]) -> list[str]:
    """ImageNet-style (synonyms...) -> the first synonym; duplicates get their WordNet id."""
    first = [t[0] for t in class_tuples]
    return [f"{n} ({w})" if first.count(n) > 1 else n for n, w in zip(first, wnids, strict=True)]


def _torchvision(kind: str, root: str, split: str, transform, skip_bad: bool, download: bool):
    from torchvision import datasets

    if not root:
        raise UserError(f"{kind}: needs a directory, e.g. {kind}:data/{kind}")
    if skip_bad:
        log.warning("--skip-bad applies to ImageFolder trees and prepare, not to %s:", kind)
    if split == "test" and kind != "cifar10":  # CIFAR-10's test batch is its val split too
        raise UserError(f"{kind}:{root} has no labelled test split; use --split val")
    try:
        if kind == "cifar10":
            base = datasets.CIFAR10(root, train=split == "train", download=download)
            return TorchvisionDataset(base, list(base.classes), list(base.targets), transform)
        if kind == "imagenet":
            if download:
                raise UserError(
                    "ImageNet cannot be downloaded automatically: put "
                    "ILSVRC2012_devkit_t12.tar.gz and ILSVRC2012_img_{train,val}.tar "
                    f"into {root} (torchvision.datasets.ImageNet)"
                )
            base = datasets.ImageNet(root, split=split, loader=load_image)
            return TorchvisionDataset(
                base, _names(base.classes, base.wnids), base.targets, transform
            )
        size = {"imagenette": "full", "imagenette320": "320px", "imagenette160": "160px"}[kind]
        base = datasets.Imagenette(root, split, size, download=download, loader=load_image)
        targets = [t for _, t in base._samples]
        return TorchvisionDataset(base, _names(base.classes, base.wnids), targets, transform)
    except (RuntimeError, FileNotFoundError, OSError) as e:
        hint = "" if download or kind == "imagenet" else " (--download fetches it)"
        raise UserError(f"{kind}:{root}: {e}{hint}") from None
