"""Where cached files go (re-exported for the data modules)."""

from __future__ import annotations

from alexnet._cache import cache_dir

__all__ = ["cache_dir"]
