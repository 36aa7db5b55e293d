"""Property tests: for any image size >= 1 px and any Pillow mode, the presets give a finite
float32 tensor of the model's input shape, and the packed store round-trips the image."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from alexnet.data import (
    PackedDataset,
    eval_transform,
    prepare_store,
    resize_center_crop,
    to_rgb,
    train_transform,
)
from alexnet.data.images import MAX_ASPECT

MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"]
MODES += ["LAB", "HSV", "I", "I;16", "I;16B", "F"]
TIFF_MODES = [m for m in MODES if m not in ("La", "RGBa", "HSV")]  # those TIFF cannot hold

sides = st.one_of(st.integers(1, 48), st.sampled_from([1, 2, 227, 255, 256, 257, 700]))


def random_image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    """Random raw bytes in ``mode`` (F may hold NaN and inf: any 32-bit pattern)."""
    n = len(Image.new(mode, (w, h)).tobytes())
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return Image.frombytes(mode, (w, h), data)


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(MODES), w=sides, h=sides, seed=st.integers(0, 2**16))
def test_presets_give_finite_input_tensors(mode, w, h, seed):
    img = random_image(mode, w, h, seed)
    for size in (227, 224):
        out = train_transform(size, color_jitter=0.2)(img)
        assert out.shape == (3, size, size) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
    out = eval_transform(227, ten_crop=True)(img)
    assert out.shape == (10, 3, 227, 227) and torch.isfinite(out).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(TIFF_MODES), w=sides, h=sides, seed=st.integers(0, 2**16))
def test_store_round_trips_any_image(mode, w, h, seed):
    assume(max(w, h) <= MAX_ASPECT * min(w, h))  # beyond it a file is refused (SECURITY.md)
    img = random_image(mode, w, h, seed)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src"
        for split in ("train", "val"):
            (src / split / "c").mkdir(parents=True)
            img.save(src / split / "c" / "x.tif")
        prepare_store(src, Path(d) / "store", size=24, stats=False)
        stored = PackedDataset(Path(d) / "store", "val")[0][0].numpy()  # (3, 24, 24) uint8
    expected = np.asarray(resize_center_crop(to_rgb(img), 24)).transpose(2, 0, 1)
    assert np.array_equal(stored, expected)
