"""alexnet.nn.LocalResponseNorm against the paper's formula (float64 loop) and autograd."""

from __future__ import annotations

import pytest
import torch

from alexnet.nn import LocalResponseNorm, local_response_norm_reference


@pytest.mark.parametrize("size", [1, 3, 4, 5, 7])
@pytest.mark.parametrize("channels_last", [False, True])
def test_forward_matches_float64_reference(size, channels_last):
    x = torch.randn(3, 16, 5, 6, dtype=torch.float64) * 10
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = LocalResponseNorm(size=size)(x)
    torch.testing.assert_close(y, local_response_norm_reference(x, size), rtol=1e-12, atol=1e-12)
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last


@pytest.mark.parametrize("size", [3, 4, 5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck(size, channels_last):
    x = torch.randn(2, 9, 3, 4, dtype=torch.float64) * 10
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(LocalResponseNorm(size=size, alpha=1e-3), (x,))


@pytest.mark.parametrize(
    "dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2), (torch.float16, 3e-3)]
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_low_precision_forward_and_backward(dtype, tol, channels_last):
    x64 = torch.randn(4, 96, 7, 7, dtype=torch.float64) * 30
    g64 = torch.randn_like(x64)
    xr = x64.clone().requires_grad_(True)
    yr = local_response_norm_reference(xr)
    yr.backward(g64)
    x = x64.to(dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = LocalResponseNorm()(x)
    y.backward(g64.to(dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype
    rel = ((y.double() - yr).abs().max() / yr.abs().max()).item()
    grel = ((x.grad.double() - xr.grad).abs().max() / xr.grad.abs().max()).item()
    assert rel < tol and grel < tol


def test_alpha_is_not_divided_by_size_unless_asked():
    x = torch.randn(2, 32, 4, 4) * 50
    torch_lrn = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    ours_torch_convention = LocalResponseNorm(alpha=1e-4, alpha_over_size=True)
    torch.testing.assert_close(ours_torch_convention(x), torch_lrn(x))
    # The paper's layer equals PyTorch's with alpha multiplied by n.
    torch.testing.assert_close(
        LocalResponseNorm()(x), torch.nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x)
    )
    assert not torch.allclose(LocalResponseNorm()(x), torch_lrn(x))


def test_large_batches_run_in_chunks_and_agree():
    # 64 samples of 96x13x13 span several chunks of the fast path.
    x = torch.randn(64, 96, 13, 13, dtype=torch.float64).requires_grad_(True)
    y = LocalResponseNorm()(x)
    torch.testing.assert_close(y, local_response_norm_reference(x))
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    xr = x.detach().clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(local_response_norm_reference(xr), xr, g)
    torch.testing.assert_close(gx, gr)


def test_traceable_path_used_by_export_matches():
    from alexnet.nn import _lrn_traceable

    x = torch.randn(2, 10, 3, 3, dtype=torch.float64) * 10
    torch.testing.assert_close(
        _lrn_traceable(x, 5, 1e-4, 0.75, 2.0), local_response_norm_reference(x)
    )


def test_rejects_non_4d():
    with pytest.raises(ValueError, match="4-D"):
        LocalResponseNorm()(torch.randn(3, 4))


@pytest.mark.parametrize("channels_last", [False, True])
def test_groups_normalise_each_tower_alone(channels_last):
    x = torch.randn(3, 12, 4, 5, dtype=torch.float64) * 20
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    lrn = LocalResponseNorm(groups=2)
    y = lrn(x)
    torch.testing.assert_close(y[:, :6], local_response_norm_reference(x[:, :6]))
    torch.testing.assert_close(y[:, 6:], local_response_norm_reference(x[:, 6:]))
    x = x.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(LocalResponseNorm(groups=2, alpha=1e-3), (x,))
    from alexnet.nn import _lrn_traceable

    torch.testing.assert_close(_lrn_traceable(x.detach(), 5, 1e-4, 0.75, 2.0, 2), y)
    with pytest.raises(ValueError, match="groups"):
        LocalResponseNorm(groups=5)(x)
