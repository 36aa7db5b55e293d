"""Where alexnet caches files (standard library only: the LRN kernel loader uses it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$ALEXNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/alexnet``, else ``~/.cache/alexnet``."""
    if os.environ.get("ALEXNET_CACHE_DIR"):
        return Path(os.environ["ALEXNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alexnet"
