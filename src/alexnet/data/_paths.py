"""Where cached files go, and how a data-source string names a torchvision dataset."""

from __future__ import annotations

import os
from pathlib import Path

from alexnet._cache import cache_dir  # re-exported: stats, sources and trainsetup use it

__all__ = [
    "SOURCE_PREFIXES",
    "TORCHVISION_PREFIXES",
    "cache_dir",
    "default_demo_root",
    "split_source",
]

# "cifar10:DIR" and friends name torchvision datasets; "demo[:DIR]" the generated demo
# (see sources.build_dataset).
TORCHVISION_PREFIXES = ("cifar10", "imagenet", "imagenette", "imagenette320", "imagenette160")
SOURCE_PREFIXES = (*TORCHVISION_PREFIXES, "demo")


def split_source(source: str | os.PathLike) -> tuple[str | None, str]:
    """``cifar10:DIR`` -> ("cifar10", "DIR"); ``demo`` -> ("demo", its default folder);
    a plain path -> (None, path)."""
    text = os.fspath(source)
    if text == "demo":
        return "demo", str(default_demo_root())
    prefix, sep, rest = text.partition(":")
    if sep and prefix in SOURCE_PREFIXES:
        return prefix, rest
    return None, text


def default_demo_root(seed: int = 0) -> Path:
    """Where the demo data of the "demo" source lives (default options, ``seed``)."""
    return cache_dir() / f"demo-seed{seed}"
