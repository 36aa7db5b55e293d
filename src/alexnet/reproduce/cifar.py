"""CIFAR-10's training images as one uint8 tensor in memory, decoded once.

Reads ``cifar10-jpeg.tar.gz`` as a stream (nothing is extracted to disk) or an
ImageFolder directory; 50,000 JPEGs decode in a batch with
``torchvision.io.decode_jpeg``: about 5 s on the 2-core development machine.
After that every minibatch is a plain tensor slice (no DataLoader, no PIL).
"""

from __future__ import annotations

import io
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alexnet.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class InMemoryImages:
    images: torch.Tensor  # (N, 3, 32, 32) uint8
    labels: torch.Tensor  # (N,) int64
    classes: list[str]
    source: str


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _from_tarball(path: Path, split: str) -> list[tuple[str, str, bytes]]:
    """(class, file name, bytes) of every ``.../<split>/<class>/<file>`` image in the tarball."""
    items = []
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                parts = m.name.split("/")
                if m.isfile() and len(parts) >= 3 and parts[-3] == split and _is_image(m.name):
                    items.append((parts[-2], parts[-1], tf.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read the tarball ({e})") from None
    return items


def _split_dir(root: Path, split: str) -> Path:
    """``root/<split>``, ``root/cifar10/<split>``, or ``root`` itself if it holds class folders."""
    for cand in (root / split, root / "cifar10" / split):
        if cand.is_dir():
            return cand
    if any(
        p.is_dir() and any(map(_is_image, (f.name for f in p.iterdir()))) for p in root.iterdir()
    ):
        return root
    raise UserError(f"{root}: no {split}/<class>/ folders of images found")


def _from_directory(root: Path, split: str) -> list[tuple[str, str, bytes]]:
    base = _split_dir(root, split)
    items = []
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(d.iterdir()):
            if f.is_file() and _is_image(f.name):
                items.append((d.name, f.name, f.read_bytes()))
    return items


def _decode_all(blobs: list[bytes]) -> list[torch.Tensor]:
    """(3, H, W) uint8 RGB tensors. ``torchvision.io.decode_jpeg`` decodes a list in one
    call (about 1.5 s for 50,000 CIFAR JPEGs here, Pillow about 25 s); torchvision 0.29
    deprecates it in favour of torchcodec, so Pillow takes over where it is gone."""
    if all(b[:2] == b"\xff\xd8" for b in blobs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                from torchvision.io import ImageReadMode, decode_jpeg
            except ImportError:
                decode_jpeg = None
            if decode_jpeg is not None:
                data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
                return decode_jpeg(data, mode=ImageReadMode.RGB)
    from PIL import Image

    from alexnet.data.images import FORMATS

    out = []
    for b in blobs:
        with Image.open(io.BytesIO(b), formats=FORMATS) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB"))).permute(2, 0, 1))
    return out


def _decode(items: list[tuple[str, str, bytes]], source: str) -> torch.Tensor:
    try:
        imgs = _decode_all([b for _, _, b in items])
    except (RuntimeError, OSError, ValueError) as e:
        raise UserError(f"{source}: an image could not be decoded ({e})") from None
    bad = next((i for i, im in enumerate(imgs) if tuple(im.shape) != (3, 32, 32)), None)
    if bad is not None:
        c, name, _ = items[bad]
        raise UserError(
            f"{source}: {c}/{name} is {tuple(imgs[bad].shape)}; Figure 1's network "
            "takes CIFAR-10's 32x32 RGB images"
        )
    return torch.stack(imgs)


def load_cifar_split(data: str | Path, split: str = "train") -> InMemoryImages:
    """All images of ``split`` from a CIFAR-10 tarball or folder, in (class, file) order."""
    path = Path(data)
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    items = _from_directory(path, split) if path.is_dir() else _from_tarball(path, split)
    if not items:
        raise UserError(f"{path}: no {split}/<class>/*.jpg images found")
    items.sort(key=lambda t: (t[0], t[1]))
    classes = sorted({c for c, _, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[c] for c, _, _ in items], dtype=torch.int64)
    return InMemoryImages(_decode(items, str(path)), labels, classes, str(path))
