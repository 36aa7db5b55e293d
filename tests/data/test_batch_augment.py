"""batch_augment: a uint8 batch becomes the same crops, flips, lighting and normalisation
as the per-image presets, drawn from the given generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.data import DatasetStats, batch_augment, eval_transform


def coords_batch(b: int = 8) -> torch.Tensor:
    """(B, 3, 256, 256) uint8: R = column, G = row, so a crop tells its origin and mirror."""
    r = torch.arange(256)
    col, row = r[None, :].expand(256, 256), r[:, None].expand(256, 256)
    return torch.stack([col, row, (row + col) % 256]).to(torch.uint8)[None].repeat(b, 1, 1, 1)


def origin(crop: torch.Tensor) -> tuple[int, int, bool]:
    """(top, left, mirrored) of a uint8 crop of coords_batch."""
    flip = int(crop[0, 0, 1]) < int(crop[0, 0, 0])
    return int(crop[1, 0, 0]), int(crop[0, 0, -1] if flip else crop[0, 0, 0]), flip


def test_eval_equals_the_eval_preset():
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (4, 3, 256, 256), generator=g, dtype=torch.uint8)
    out = batch_augment(batch, input_size=227, train=False)
    expected = torch.stack([eval_transform(227)(x) for x in batch])
    torch.testing.assert_close(out, expected)


def test_train_crops_and_flips_are_slices():
    batch = coords_batch(16)
    g = torch.Generator().manual_seed(1)
    out = batch_augment(batch, input_size=224, lighting=0, normalize="none", generator=g)
    assert out.shape == (16, 3, 224, 224) and out.dtype == torch.float32
    flips = set()
    for x in out:
        crop = (x * 255).round().to(torch.uint8)
        top, left, flip = origin(crop)
        flips.add(flip)
        expected = batch[0][:, top : top + 224, left : left + 224]
        assert torch.equal(crop, expected.flip(-1) if flip else expected)
    assert flips == {True, False}


def test_pixel_mode_subtracts_the_mean_image_at_the_same_crop():
    mean_image = np.random.default_rng(0).random((3, 256, 256)).astype(np.float32)
    stats = DatasetStats((0.5,) * 3, (1,) * 3, (0, 0, 0), np.eye(3).tolist(), mean_image)
    batch = coords_batch(8)
    kw = dict(input_size=227, stats=stats, lighting=0)
    out = batch_augment(batch, normalize="pixel", generator=torch.Generator().manual_seed(2), **kw)
    ref = batch_augment(batch, normalize="none", generator=torch.Generator().manual_seed(2), **kw)
    m = 255 * torch.from_numpy(mean_image)
    for x, r in zip(out, ref, strict=True):
        crop = (r * 255).round()
        top, left, flip = origin(crop)
        mc = m[:, top : top + 227, left : left + 227]
        torch.testing.assert_close(x, crop - (mc.flip(-1) if flip else mc), atol=1e-3, rtol=0)


def test_lighting_is_one_offset_per_image_and_seeded():
    batch = coords_batch(4)
    kw = dict(input_size=227, normalize="none")
    a = batch_augment(batch, lighting=0.1, generator=torch.Generator().manual_seed(5), **kw)
    b = batch_augment(batch, lighting=0.1, generator=torch.Generator().manual_seed(5), **kw)
    plain = batch_augment(batch, lighting=0.0, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a, b)
    shift = a - plain  # same crops (drawn before the alphas), so only the lighting differs
    per_image = shift[:, :, :1, :1]
    torch.testing.assert_close(shift, per_image.expand_as(shift), atol=1e-6, rtol=0)
    assert not torch.allclose(per_image[0], per_image[1])


def test_gather_path_for_accelerators_equals_the_loop():
    from alexnet.data.batch import _crop_flip

    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (6, 3, 40, 40), generator=g, dtype=torch.uint8)
    top, left = torch.randint(0, 9, (6,), generator=g), torch.randint(0, 9, (6,), generator=g)
    flip = torch.tensor([True, False, True, True, False, False])
    loop = _crop_flip(batch, top, left, flip, 32, gather=False)
    assert torch.equal(_crop_flip(batch, top, left, flip, 32, gather=True), loop)
    assert torch.equal(loop[0], batch[0, :, top[0] : top[0] + 32, left[0] : left[0] + 32].flip(-1))


def test_rejects_float_batches():
    with pytest.raises(TypeError, match="uint8"):
        batch_augment(torch.zeros(2, 3, 256, 256))
