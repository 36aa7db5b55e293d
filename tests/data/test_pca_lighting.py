"""PCA lighting (§4.1): alphastd 0 is the identity, a fixed alpha adds exactly
eigvec @ (alpha * eigval) to every pixel, drawn alphas have the stated spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.data import IMAGENET_STATS, PCALighting


def test_alphastd_zero_is_identity():
    img = torch.rand(3, 9, 7)
    assert torch.equal(PCALighting(0.0)(img), img)


def test_fixed_alpha_adds_the_expected_rgb_offset():
    eigval = np.array([0.3, 0.02, 0.001])
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))  # orthonormal columns
    lighting = PCALighting(0.1, eigval, q)
    alpha = torch.tensor([0.5, -1.0, 2.0])
    img = torch.rand(3, 5, 4)
    out = lighting(img, alpha=alpha)
    expected = q @ (alpha.numpy() * eigval)  # sum_i alpha_i * eigval_i * p_i
    torch.testing.assert_close(
        out - img, torch.tensor(expected, dtype=torch.float32)[:, None, None].expand(3, 5, 4)
    )


def test_imagenet_offset_for_unit_alpha():
    lighting = PCALighting(0.1, IMAGENET_STATS.eigval, IMAGENET_STATS.eigvec)
    offset = lighting.offset(torch.tensor([1.0, 0.0, 0.0]))
    # first principal component (a column of eigvec) scaled by its eigenvalue
    torch.testing.assert_close(offset, 0.2175 * torch.tensor([-0.5675, -0.5808, -0.5836]))


def test_drawn_alphas_have_the_stated_spread():
    eigval = torch.tensor([0.2, 0.05, 0.01])
    lighting = PCALighting(0.1, eigval.tolist(), torch.eye(3).tolist())
    g = torch.Generator().manual_seed(0)
    offsets = torch.stack([lighting.offset(generator=g) for _ in range(4000)])  # (N, 3)
    torch.testing.assert_close(offsets.std(0), 0.1 * eigval, rtol=0.05, atol=0)
    assert offsets.mean(0).abs().max() < 0.1 * 0.2 * 0.05


def test_lighting_conventions():
    """ "eigval" offsets by eigvec @ (alpha * eigval) (§4.1's formula on the 0-1 scale);
    "std" by eigvec @ (alpha * sqrt(eigval)) (cuda-convnet2's): components 2 and 3 much
    stronger for ImageNet's eigenvalues."""
    alpha = torch.tensor([0.1, -0.2, 0.05])
    eigval = torch.tensor(IMAGENET_STATS.eigval, dtype=torch.float64)
    eigvec = torch.tensor(IMAGENET_STATS.eigvec, dtype=torch.float64)
    for convention, m in (("eigval", eigval), ("std", eigval.sqrt())):
        lighting = PCALighting(0.1, IMAGENET_STATS.eigval, IMAGENET_STATS.eigvec, convention)
        want = (eigvec @ (alpha.double() * m)).float()
        torch.testing.assert_close(lighting.offset(alpha), want, rtol=1e-6, atol=1e-7)
    ratio = eigval.sqrt() / eigval
    assert ratio[1] > 7 and ratio[2] > 14  # components 2 and 3: 7x and 15x stronger
    with pytest.raises(ValueError, match="lighting convention"):
        PCALighting(0.1, convention="sqrt")
