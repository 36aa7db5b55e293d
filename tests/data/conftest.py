"""Small image trees built in tmp_path for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _one_thread():
    """Per-image tensors are small: one thread is fastest, and immune to a busy machine
    (two OpenMP threads on two shared cores can be 100x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def noise_image(rng: np.random.Generator, w: int, h: int, mode: str = "RGB") -> Image.Image:
    """A random RGB image (w x h), converted to ``mode``."""
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(a, "RGB").convert(mode)


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """make_tree(spec={"train": {"cat": 3, "dog": 2}, "val": {...}}, ext=".png") -> root.

    Images are random noise of varied sizes (wide, tall, small, large), lossless by default.
    """

    def make(
        spec: dict[str, dict[str, int]] | None = None,
        ext: str = ".png",
        name: str = "tree",
        seed: int = 0,
    ) -> Path:
        spec = spec or {
            "train": {"cat": 3, "dog": 2, "emu": 2},
            "val": {"cat": 1, "dog": 1, "emu": 1},
        }
        rng = np.random.default_rng(seed)
        sizes = [(300, 200), (64, 90), (256, 256), (31, 17), (400, 260)]
        root = tmp_path / name
        k = 0
        for split, classes in spec.items():
            for cls, n in classes.items():
                d = root / split / cls
                d.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    w, h = sizes[k % len(sizes)]
                    k += 1
                    noise_image(rng, w, h).save(d / f"{i:03d}{ext}")
        return root

    return make
