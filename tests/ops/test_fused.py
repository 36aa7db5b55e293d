"""alexnet.ops.nn.ReLULRNPool (torch.ops.alexnet.relu_lrn_pool, csrc/lrn_pool.c) against
the three layers it fuses:
the same pooled values and gradients (bit for bit in float32 channels_last, to
1 ulp in NCHW, where the LRN kernel's NCHW loop rounds differently), bf16 gradients
within bf16 rounding, NaN kept, any thread count, and the three modules whenever
it does not apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alexnet.models import create_model
from alexnet.ops import _loader as _kernels
from alexnet.ops import nn as fused
from alexnet.ops.nn import LocalResponseNorm

needs_kernel = pytest.mark.skipif(
    _kernels.lrn_library() is None, reason="no C compiler: the three modules run"
)


def _layers(size=5, beta=0.75, groups=2, alpha_over_size=False):
    lrn = LocalResponseNorm(size, 1e-3, beta, 2.0, alpha_over_size, groups, inplace=True)
    return nn.ReLU(inplace=True), lrn, nn.MaxPool2d(3, 2)


def _op(z, lrn):
    """The custom op ReLULRNPool runs where it fuses (called directly: the module keeps
    the three layers for bf16 NCHW backwards on narrow maps, where they are faster)."""
    alpha = lrn.alpha / lrn.size if lrn.alpha_over_size else lrn.alpha
    return torch.ops.alexnet.relu_lrn_pool(z, alpha, lrn.k, lrn.groups)


def _run(z, layers, fuse: bool):
    z = z.clone().requires_grad_(True)
    relu, lrn, pool = layers
    y = _op(z * 1, lrn) if fuse else pool(lrn(relu(z * 1)))
    g = torch.linspace(-1, 1, y.numel()).reshape(y.shape).to(y.dtype)
    y.backward(g.contiguous(memory_format=torch.channels_last))
    return y.detach(), z.grad


def _conv_output(shape, dtype, seed=0, channels_last=True):
    torch.manual_seed(seed)
    z = (torch.randn(shape) * 30).to(dtype)
    return z.contiguous(memory_format=torch.channels_last) if channels_last else z


LAYOUTS = pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "nchw"])


@needs_kernel
@pytest.mark.parametrize(
    "shape,kw",
    [
        ((3, 96, 13, 13), {}),  # conv1's tail, two towers
        ((2, 16, 8, 9), {"groups": 1}),  # even height: the last row is in no window
        ((2, 12, 3, 4), {}),  # one output row
        ((2, 10, 7, 7), {"groups": 1}),  # odd height and width
        ((2, 8, 5, 6), {"alpha_over_size": True}),
    ],
)
@LAYOUTS
def test_float32_matches_the_three_layers(shape, kw, channels_last):
    z = _conv_output(shape, torch.float32, channels_last=channels_last)
    layers = _layers(**kw)
    assert fused.ReLULRNPool(*layers).fusable(z)
    y, gz = _run(z, layers, fuse=True)
    y_ref, gz_ref = _run(z, layers, fuse=False)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt) and gz.is_contiguous(memory_format=fmt)
    if channels_last:
        assert torch.equal(y, y_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(gz, gz_ref, rtol=1e-6, atol=1e-7)


@needs_kernel
@LAYOUTS
def test_gradient_against_float64(channels_last):
    z = _conv_output((2, 96, 11, 11), torch.float32, seed=3, channels_last=channels_last)
    layers = _layers()
    _, gz = _run(z, layers, fuse=True)
    _, gz64 = _run(z.double(), layers, fuse=False)  # the torch-ops LRN in float64
    torch.testing.assert_close(gz.double(), gz64, rtol=1e-5, atol=1e-6)


@needs_kernel
@LAYOUTS
def test_bf16_same_values_and_gradient_within_rounding(channels_last):
    z = _conv_output((4, 96, 15, 15), torch.bfloat16, seed=1, channels_last=channels_last)
    layers = _layers()
    y, gz = _run(z, layers, fuse=True)
    y_ref, gz_ref = _run(z, layers, fuse=False)
    assert y.dtype == gz.dtype == torch.bfloat16
    assert torch.equal(y, y_ref)  # the max of values rounded to bf16, as the layers store them
    # the layers round dL/db to bf16 before the LRN's backward; the kernel keeps float32
    scale = gz_ref.float().abs().max()
    assert ((gz.float() - gz_ref.float()).abs().max() / scale).item() < 1.6e-2


@needs_kernel
@LAYOUTS
def test_nan_propagates_like_the_layers(channels_last):
    z = _conv_output((1, 8, 7, 7), torch.float32, channels_last=channels_last)
    z[0, 2, 3, 3] = float("nan")
    layers = _layers(groups=1)
    with torch.no_grad():
        y = fused.ReLULRNPool(*layers)(z.clone())
        y_ref = layers[2](layers[1](layers[0](z.clone())))
    assert torch.isnan(y).any()
    assert torch.equal(torch.isnan(y), torch.isnan(y_ref))
    torch.testing.assert_close(y.nan_to_num(), y_ref.nan_to_num(), rtol=1e-6, atol=0)


@needs_kernel
@LAYOUTS
def test_same_bits_for_any_number_of_threads(channels_last):
    z = _conv_output((5, 96, 13, 13), torch.float32, channels_last=channels_last)
    layers = _layers()
    before = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            outs.append(_run(z, layers, fuse=True))
    finally:
        torch.set_num_threads(before)
    for y, gz in outs[1:]:
        assert torch.equal(y, outs[0][0]) and torch.equal(gz, outs[0][1])


def test_the_three_modules_run_where_the_kernel_does_not_apply(monkeypatch):
    relu, lrn, pool = _layers()
    z = _conv_output((2, 8, 9, 9), torch.float32)
    fusable = lambda z, *layers: fused.ReLULRNPool(*layers).fusable(z)  # noqa: E731
    assert not fusable(z.double(), relu, lrn, pool)
    assert not fusable(z, relu, lrn, nn.MaxPool2d(2, 2))
    assert not fusable(z, relu, lrn, nn.MaxPool2d(3, 2, ceil_mode=True))
    assert not fusable(z[:, :, :2, :2], relu, lrn, pool)  # smaller than a window
    for other in (_layers(size=3)[1], _layers(beta=0.5)[1]):  # not the paper's n, beta
        assert not fusable(z, relu, other, pool)
    tail = fused.ReLULRNPool(relu, lrn, pool)
    seen = []
    handle = lrn.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert not tail.fusable(z)  # a hook must see its layer
    with torch.no_grad():
        tail(z.clone())
    handle.remove()
    assert seen == [z.shape] and tail.fusable(z)
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    assert not tail.fusable(z)


def test_bf16_nchw_backward_on_narrow_maps_runs_the_three_layers():
    tail = fused.ReLULRNPool(*_layers())
    z = _conv_output((2, 16, 27, 27), torch.bfloat16, channels_last=False)
    assert not tail.fusable(z.clone().requires_grad_(True))  # conv2's 27-wide maps
    wide = _conv_output((2, 16, 55, 55), torch.bfloat16, channels_last=False)
    assert tail.fusable(wide.requires_grad_(True)) == tail.fusable(z)  # conv1's: the kernel
    with torch.no_grad():
        assert tail.fusable(z.requires_grad_(True)) == tail.fusable(z.float())


@needs_kernel
def test_strided_and_float64_inputs_give_the_three_layers_values():
    layers = _layers()
    z = _conv_output((2, 8, 18, 9), torch.float32, channels_last=False)[:, :, ::2]
    with torch.no_grad():
        y = fused.ReLULRNPool(*layers)(z.clone())
        y_ref = layers[2](layers[1](layers[0](z.clone())))
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=0)
    y64, gz64 = _run(z.double(), layers, fuse=True)  # the three layers run
    y64_ref, gz64_ref = _run(z.double(), layers, fuse=False)
    assert torch.equal(y64, y64_ref) and torch.equal(gz64, gz64_ref)


@needs_kernel
@LAYOUTS
def test_alexnet_features_equal_its_layers_one_by_one(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model("alexnet", num_classes=10).to(memory_format=fmt).eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 227, 227).contiguous(memory_format=fmt)
    with torch.no_grad():
        y = model.features(x)
        ref = x
        for name, layer in model.features.named_children():
            if name.startswith("tail"):
                assert layer.fusable(ref)
                ref = layer.pool(layer.lrn(layer.relu(ref)))
            else:
                ref = layer(ref)
    if channels_last:
        assert torch.equal(y, ref)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)


@needs_kernel
def test_benchmark_script_runs():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "bench_fused.py"
    out = subprocess.run(
        [sys.executable, str(script), "--batch", "2", "--repeats", "1", "--bf16", "--nchw"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "conv1 (2, 96, 55, 55) forward+backward" in out and "three layers" in out
