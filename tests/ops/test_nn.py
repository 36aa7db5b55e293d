"""alexnet.ops.nn.LocalResponseNorm against the paper's formula (float64 loop) and autograd."""

from __future__ import annotations

import pytest
import torch

from alexnet.ops import lrn_formula
from alexnet.ops.nn import LocalResponseNorm, local_response_norm_reference


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


@pytest.mark.parametrize("channels_last", [False, True])
def test_formula_used_on_cuda_and_by_exporters_matches(channels_last):
    x = torch.randn(2, 10, 3, 3, dtype=torch.float64) * 10
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = lrn_formula(x, 5, 1e-4, 0.75, 2.0)
    torch.testing.assert_close(y, local_response_norm_reference(x))
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last


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
    # gradcheck differentiates numerically, one input at a time: 144 of them, both towers
    layout = torch.channels_last if channels_last else torch.contiguous_format
    small = x[:2, :, :2, :3].clone(memory_format=layout).requires_grad_(True)
    assert torch.autograd.gradcheck(LocalResponseNorm(groups=2, alpha=1e-3), (small,))
    torch.testing.assert_close(lrn_formula(x, 5, 1e-4, 0.75, 2.0, 2), y)
    with pytest.raises(ValueError, match="groups"):
        LocalResponseNorm(groups=5)(x)


def test_worker_threads_leave_torch_thread_settings_alone():
    import threading

    from alexnet.ops import chunked

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # two: the worker threads run (the suite may run on one)
    try:
        x = torch.randn(8, 96, 55, 55).relu()  # several chunks
        with torch.inference_mode():
            y = LocalResponseNorm(groups=2)(x)
        assert torch.get_num_threads() == 2
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert seen == [2]  # a thread started later still gets PyTorch's default
        torch.set_num_threads(1)  # one thread: the chunks run inline, same numbers
        torch.testing.assert_close(LocalResponseNorm(groups=2)(x), y, rtol=0, atol=0)
    finally:
        torch.set_num_threads(before)
    assert chunked._plan(8, 96, 55 * 55, chunked._CHUNK_ELEMS)[1:]  # really chunked


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_large_input_matches_float32(channels_last):
    x = torch.randn(6, 96, 27, 27).relu() * 20
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xb = x.to(torch.bfloat16).requires_grad_(True)
    g = torch.randn(x.shape)
    y = LocalResponseNorm(groups=2)(xb)
    y.backward(g.to(torch.bfloat16))
    x32 = xb.detach().float().requires_grad_(True)
    y32 = LocalResponseNorm(groups=2)(x32)
    y32.backward(g)
    assert y.dtype == torch.bfloat16 and xb.grad.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), y32, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(xb.grad.float(), x32.grad, rtol=2e-2, atol=2e-2)
