"""``torch.ops.alexnet.lrn`` (and ``lrn_``, in place, and ``lrn_backward``): the paper's
LRN (§3.3) as PyTorch custom operators.

    lrn(Tensor x, int size, float alpha, float beta, float k, int groups) -> Tensor
    b[c] = a[c] / (k + alpha * sum_{c' in window(c), same tower} a[c']**2) ** beta

x: (N, C, H, W), contiguous or channels_last (anything else is copied to contiguous
first); the output has x's dtype and memory format. alpha is used as given (the
paper's convention; divide by size first for PyTorch's). On the CPU, float32 and bf16
run the C kernel of ``csrc/lrn.c``, other dtypes (and CPUs without a C compiler) the
chunked PyTorch ops of ``alexnet.ops.chunked``; on CUDA, float32, bf16 and float16 run
the Triton kernels of ``alexnet.ops.triton`` (``alexnet.ops.select`` decides). The
backward saves only x and recomputes the denominator d = k + alpha * S:

    dL/da[i] = g[i] * d[i]**-beta
               - 2 * alpha * beta * a[i] * sum_{j: i in window(j)} g[j] * b[j] / d[j]

The ops carry fake implementations (output metadata only), so ``torch.compile`` and
``torch.export`` keep them in their graphs as single calls.
"""

from __future__ import annotations

import torch
from torch import Tensor

from alexnet.ops._loader import lrn_library

from ._kernel import ANY_LAYOUT, call, dense, lrn_dims, memory_format
from .chunked import lrn_backward_chunked, lrn_forward_chunked
from .select import implementation, triton_kernels

__all__: list[str] = []  # use torch.ops.alexnet.lrn / lrn_ / lrn_backward


def check_input(x: Tensor, groups: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"LocalResponseNorm expects a 4-D (N, C, H, W) tensor, got {x.dim()}-D")
    if groups < 1 or x.shape[1] % groups:
        raise ValueError(f"{x.shape[1]} channels do not split into {groups} groups")


def forward_into(x: Tensor, out: Tensor, size, alpha, beta, k, groups) -> None:
    """out = lrn(x) for a dense x and an out of x's shape and strides (out may be x)."""
    if x.numel() == 0:
        return
    impl = implementation(x)
    if impl == "triton" and (tk := triton_kernels()) is not None:
        tk.lrn_forward(x, out, size, alpha, beta, k, groups)
    elif impl == "c":
        lib = lrn_library()
        ptrs = [x.data_ptr(), out.data_ptr()]
        call(lib.alexnet_lrn_forward, x, ptrs, lrn_dims(x, groups), (size, alpha, beta, k), "LRN")
    else:
        lrn_forward_chunked(x, out, size, alpha, beta, k, groups)


@torch.library.custom_op("alexnet::lrn", mutates_args=(), tags=ANY_LAYOUT)
def _lrn(x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> Tensor:
    check_input(x, groups)
    x = dense(x)
    out = torch.empty_like(x, memory_format=memory_format(x))
    forward_into(x, out, size, alpha, beta, k, groups)
    return out


@_lrn.register_fake
def _(x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> Tensor:
    check_input(x, groups)
    return torch.empty_like(x, memory_format=memory_format(x))


@torch.library.custom_op("alexnet::lrn_", mutates_args=("x",), tags=ANY_LAYOUT)
def _lrn_inplace(x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> None:
    """x = lrn(x), for inference: no second (N, C, H, W) tensor is allocated (at batch 64
    that is 37 MB after conv1 in bf16, each page faulted in afresh)."""
    check_input(x, groups)
    if dense(x) is x:
        forward_into(x, x, size, alpha, beta, k, groups)
    else:
        x.copy_(_lrn(x, size, alpha, beta, k, groups))


@_lrn_inplace.register_fake
def _(x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> None:
    check_input(x, groups)


@torch.library.custom_op("alexnet::lrn_backward", mutates_args=(), tags=ANY_LAYOUT)
def _lrn_backward(
    x: Tensor, grad: Tensor, size: int, alpha: float, beta: float, k: float, groups: int
) -> Tensor:
    """dL/dx of lrn(x, ...) given grad = dL/d lrn(x), in x's dtype and memory format."""
    x = dense(x)
    fmt = memory_format(x)
    out = torch.empty_like(x, memory_format=fmt)
    if x.numel() == 0:
        return out
    grad = grad.contiguous(memory_format=fmt)
    impl = implementation(x)
    if impl == "triton" and (tk := triton_kernels()) is not None:
        tk.lrn_backward(x, grad, out, size, alpha, beta, k, groups)
    elif impl == "c":
        ptrs = [x.data_ptr(), grad.data_ptr(), out.data_ptr()]
        fn = lrn_library().alexnet_lrn_backward
        call(fn, x, ptrs, lrn_dims(x, groups), (size, alpha, beta, k), "LRN")
    else:
        lrn_backward_chunked(x, grad, out, size, alpha, beta, k, groups)
    return out


@_lrn_backward.register_fake
def _(x: Tensor, grad: Tensor, size: int, alpha: float, beta: float, k: float, groups: int):
    return torch.empty_like(x, memory_format=memory_format(x))


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, *params = inputs
    ctx.save_for_backward(x)
    ctx.params = params


def _backward(ctx, grad: Tensor):
    (x,) = ctx.saved_tensors
    return torch.ops.alexnet.lrn_backward(x, grad, *ctx.params), None, None, None, None, None


_lrn.register_autograd(_backward, setup_context=_setup_context)
