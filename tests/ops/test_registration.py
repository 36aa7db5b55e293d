"""torch.library.opcheck on the custom ops: schema, fake (meta) implementations, autograd
registration and AOT dispatch, in float32 and bf16, NCHW and channels_last, one or two
towers; and which implementation runs where."""

from __future__ import annotations

import pytest
import torch

import alexnet.ops  # noqa: F401  (registers torch.ops.alexnet.*)
from alexnet.ops import implementation

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
LAYOUTS = pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
GROUPS = pytest.mark.parametrize("groups", [1, 2])


def _x(shape, dtype, channels_last, requires_grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 20).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_(requires_grad)


def _opcheck(op, args) -> None:
    # bf16 rounding differs between eager and the AOT-traced call only by op order
    torch.library.opcheck(op, args, atol=2e-2, rtol=2e-2)


@DTYPES
@LAYOUTS
@GROUPS
def test_lrn(dtype, channels_last, groups):
    x = _x((2, 8, 5, 6), dtype, channels_last)
    _opcheck(torch.ops.alexnet.lrn.default, (x, 5, 1e-3, 0.75, 2.0, groups))
    g = _x((2, 8, 5, 6), dtype, channels_last, requires_grad=False, seed=1)
    _opcheck(torch.ops.alexnet.lrn_backward.default, (x.detach(), g, 5, 1e-3, 0.75, 2.0, groups))


@DTYPES
@LAYOUTS
@GROUPS
def test_lrn_in_place(dtype, channels_last, groups):
    x = _x((2, 8, 5, 6), dtype, channels_last, requires_grad=False)
    _opcheck(torch.ops.alexnet.lrn_.default, (x, 5, 1e-3, 0.75, 2.0, groups))


@DTYPES
@LAYOUTS
@GROUPS
def test_relu_lrn_pool(dtype, channels_last, groups):
    z = _x((2, 8, 7, 8), dtype, channels_last)
    _opcheck(torch.ops.alexnet.relu_lrn_pool.default, (z, 1e-3, 2.0, groups))
    g = _x((2, 8, 3, 3), dtype, channels_last, requires_grad=False, seed=1)
    args = (z.detach(), g, 1e-3, 2.0, groups)
    _opcheck(torch.ops.alexnet.relu_lrn_pool_backward.default, args)


@LAYOUTS
def test_other_dtypes_and_the_torch_path_pass_too(monkeypatch, channels_last):
    x = _x((2, 6, 5, 5), torch.float64, channels_last)
    _opcheck(torch.ops.alexnet.lrn.default, (x, 3, 1e-3, 0.5, 1.0, 2))
    _opcheck(torch.ops.alexnet.relu_lrn_pool.default, (x, 1e-3, 2.0, 2))
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    z = _x((2, 8, 7, 7), torch.float32, channels_last)
    _opcheck(torch.ops.alexnet.relu_lrn_pool.default, (z, 1e-3, 2.0, 2))


def test_bad_inputs_fail_in_the_fake_implementation_too():
    from torch._subclasses.fake_tensor import FakeTensorMode

    for x, groups, match in [
        (torch.randn(2, 8, 5), 1, "4-D"),
        (torch.randn(2, 7, 5, 5), 2, "groups"),
        (torch.randn(2, 8, 2, 5), 1, "H, W >= 3"),
    ]:
        with pytest.raises(ValueError, match=match):
            torch.ops.alexnet.relu_lrn_pool(x, 1e-4, 2.0, groups)
        with FakeTensorMode() as mode, pytest.raises(ValueError, match=match):
            torch.ops.alexnet.relu_lrn_pool(mode.from_tensor(x), 1e-4, 2.0, groups)


def test_implementation_per_device_and_dtype(monkeypatch):
    from alexnet.ops import _loader as _kernels

    kernel = "c" if _kernels.lrn_library() is not None else "torch"
    assert implementation(torch.empty(1, dtype=torch.float32)) == kernel
    assert implementation(torch.empty(1, dtype=torch.bfloat16)) == kernel
    assert implementation(torch.empty(1, dtype=torch.float64)) == "torch"
    assert implementation(torch.empty(1, dtype=torch.float16)) == "torch"
    assert implementation(torch.empty(1, device="meta")) == "torch"  # CUDA too: the op
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert implementation(torch.empty(1, device="meta")) == "formula"  # fused by inductor
    assert implementation(torch.empty(1)) == kernel
    monkeypatch.setenv("ALEXNET_LRN_KERNEL", "torch")
    assert implementation(torch.empty(1)) == "torch"
