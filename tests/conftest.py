"""Shared fixtures. Tests run on the CPU with a fixed seed and few threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar10_tarball() -> Path:
    """../shared/data/cifar10-jpeg.tar.gz, or skip where the machine has no shared data."""
    p = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not p.exists():
        pytest.skip(f"{p} is absent (a fresh machine has no ../shared)")
    return p


def write_tiny_imagefolder(
    root: Path, classes=("circle", "square", "stripes"), train=8, val=4, size=(48, 40), seed=0
) -> Path:
    """A small ImageFolder tree (root/train/<class>/*.png, root/val/...) of drawn shapes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for ci, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                bg = tuple(int(v) for v in rng.integers(0, 256, 3))
                fg = tuple(int(v) for v in rng.integers(0, 256, 3))
                img = Image.new("RGB", size, bg)
                draw = ImageDraw.Draw(img)
                w, h = size
                if ci % 3 == 0:
                    draw.ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=fg)
                elif ci % 3 == 1:
                    draw.rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=fg)
                else:
                    for x in range(0, w, 6):
                        draw.line([x, 0, x, h], fill=fg, width=2)
                img.save(d / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 classes x (8 train, 4 val) PNGs; shared by tests that only read it."""
    return write_tiny_imagefolder(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def make_imagefolder():
    """The tiny ImageFolder writer, for tests that need their own tree."""
    return write_tiny_imagefolder


# The width the suite trains unless a test is about the full-size network: 1/8 keeps two
# towers, both LRNs and their fused kernels and the 227-pixel input at 0.9 M parameters.
NARROW = 0.125


def tiny_train_config(data: Path, out: Path, **overrides):
    """A TrainConfig for short CPU runs on tiny data (batch 4, fp32, no workers, quiet) of
    the paper's network at width NARROW."""
    from alexnet.engine.config import TrainConfig

    base = dict(
        data=str(data),
        out=str(out),
        epochs=2,
        batch_size=4,
        lr=0.001,
        workers=0,
        quiet=True,
        device="cpu",
        amp="off",
        channels_last="off",
        normalize="channel",
        seed=5,
        model_kwargs={"init": "kaiming", "width": NARROW},
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def train_config():
    """`train_config(data, out, **overrides)`: see tiny_train_config."""
    return tiny_train_config
