"""Where cached files go, and how a data-source string names a torchvision dataset."""

from __future__ import annotations

import os
from pathlib import Path

# "cifar10:DIR" and friends name torchvision datasets; "demo[:DIR]" the generated demo
# (see sources.build_dataset).
TORCHVISION_PREFIXES = ("cifar10", "imagenet", "imagenette", "imagenette320", "imagenette160")
SOURCE_PREFIXES = (*TORCHVISION_PREFIXES, "demo")


def cache_dir() -> Path:
    """``$ALEXNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/alexnet``, else ``~/.cache/alexnet``."""
    if os.environ.get("ALEXNET_CACHE_DIR"):
        return Path(os.environ["ALEXNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alexnet"


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
