"""``build_dataset``: one entry point for every data source the project reads.

``source`` may be

* a directory holding ``train/<class>/*`` and ``val/<class>/*`` (``test/`` is accepted
  for ``val``, as CIFAR-10's JPEG tarball has it) -> ``ImageFolderDataset``;
* a ``.tar``/``.tar.gz``/``.tgz`` of such a tree (e.g. ``../shared/data/cifar10-jpeg.tar.gz``),
  extracted once into ``$ALEXNET_CACHE_DIR/extracted/`` -> ``ImageFolderDataset``;
* a packed store directory (has ``meta.json``) -> ``PackedDataset``;
* ``demo`` or ``demo:DIR``: the demo dataset in the cache folder or DIR, generated there
  with ``make_demo_dataset``'s defaults unless it holds one already -> ``ImageFolderDataset``;
* ``cifar10:DIR``, ``imagenet:DIR`` (devkit layout, torchvision's ``ImageNet``),
  ``imagenette:DIR`` (``imagenette320:`` / ``imagenette160:`` for the smaller
  variants) -> torchvision's dataset wrapped in ``TorchvisionDataset``.

Every dataset has ``.classes`` (list[str]) and ``.targets`` and yields
``(transform(image), label)``; the image is an RGB PIL image, or for a packed store
a uint8 (3, 256, 256) tensor (the presets take both).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from alexnet.errors import UserError

from ._paths import cache_dir, default_demo_root, split_source
from .folder import ImageFolderDataset, find_split_dir
from .images import display_path, load_image, to_rgb
from .store import PackedDataset, is_store

__all__ = ["TorchvisionDataset", "build_dataset", "extract_archive"]

log = logging.getLogger(__name__)
SPLITS = ("train", "val")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def build_dataset(
    source: str | os.PathLike,
    split: str,
    transform: Callable[[Any], Any] | None = None,
    *,
    skip_bad: bool = False,
    download: bool = False,
) -> Dataset:
    """The ``split`` ("train" or "val") of ``source`` (forms in the module docstring)."""
    if split not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}, got {split!r}")
    prefix, text = split_source(source)
    if prefix == "demo":
        from .demo import SPEC_FILE, make_demo_dataset

        root = Path(text or default_demo_root())
        if not (root / SPEC_FILE).is_file():  # a demo of any options is used as it is
            make_demo_dataset(root)
        text = os.fspath(root)
    elif prefix is not None:
        return _torchvision(prefix, text, split, transform, skip_bad, download)
    path = Path(text)
    if not path.exists():
        raise UserError(f"{display_path(path)}: no such file or directory")
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES):
        path = _tree_root(extract_archive(path))
    if is_store(path):
        return PackedDataset(path, split, transform)
    if not path.is_dir():
        raise UserError(f"{display_path(path)}: not a directory, archive or packed store")
    ds = ImageFolderDataset(find_split_dir(path, split), transform, skip_bad=skip_bad)
    if ds.report.ignored or ds.report.revisited_dirs:
        log.warning("%s: %s", display_path(ds.root), ds.report.summary())
    return ds


def extract_archive(archive: str | os.PathLike) -> Path:
    """Extract a tar archive once into the cache (atomically); -> the extraction folder."""
    archive = Path(archive).resolve()
    st = archive.stat()
    key = hashlib.sha256(f"{archive}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name.split(".")[0]
    out = cache_dir() / "extracted" / f"{stem}-{key}"
    if out.is_dir():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        log.warning("extracting %s into %s (once)", display_path(archive), display_path(out))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")  # refuses absolute paths, '..', devices
        os.rename(tmp, out)
    except (tarfile.TarError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if out.is_dir():  # another process finished first
            return out
        raise UserError(f"{display_path(archive)}: cannot extract ({e})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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
