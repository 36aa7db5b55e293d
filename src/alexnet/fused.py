"""ReLU -> LRN -> max-pool 3/2 in one pass: the tail of conv1 and conv2 (§3.3, §3.4).

``relu_lrn_pool(z, relu, lrn, pool)`` returns ``pool(lrn(relu(z)))``. On the CPU,
for a float32 or bf16 tensor (channels_last or NCHW), it runs the C kernel of
``csrc/lrn_pool.c`` (built with the LRN kernel by ``alexnet._kernels``): the
forward reads the conv output once and writes only the pooled output, the backward
reads it and the pooled gradient and writes the conv output's gradient; the LRN
output, the pool's int64 indices and the intermediate gradients (37 MB each after
conv1 at batch 64 in bf16) are never written. The numbers are the three layers':
the same pooled values, and the gradient routed to the same maximum of each window
(PyTorch's first-maximum rule, on values rounded to the tensor's dtype).

Everywhere else (CUDA, other dtypes, pool shapes or LRN constants than the paper's
n = 5 and beta = 0.75, other strides, ``torch.compile``,
``torch.export``, ONNX, no compiler, ``ALEXNET_LRN_KERNEL=torch``) and whenever a
hook is registered on one of the three modules, the three modules run as usual,
so hooks and exporters see every layer.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.modules import module as _module

from alexnet.nn import (
    LocalResponseNorm,
    _call_kernel,
    _is_channels_last,
    _kernel,
    _memory_format,
    _tracing,
)

__all__ = ["relu_lrn_pool"]


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _has_hooks(*modules: nn.Module) -> bool:
    hooked = any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        for m in modules
    )
    return hooked or bool(
        _module._global_forward_hooks
        or _module._global_forward_pre_hooks
        or _module._global_backward_hooks
        or _module._global_backward_pre_hooks
    )


def _fusable(z: Tensor, relu: nn.Module, lrn: nn.Module, pool: nn.Module):
    """The C library when the fused kernel computes exactly pool(lrn(relu(z))), else None."""
    if not (
        type(relu) is nn.ReLU
        and type(lrn) is LocalResponseNorm
        and lrn.size == 5  # the paper's window and exponent (lrn_pool.c builds only these)
        and lrn.beta == 0.75
        and type(pool) is nn.MaxPool2d
        and _pair(pool.kernel_size) == (3, 3)
        and _pair(pool.stride) == (2, 2)
        and _pair(pool.padding) == (0, 0)
        and _pair(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and not pool.return_indices
    ):
        return None
    if z.dim() != 4 or not (z.is_contiguous() or _is_channels_last(z)):
        return None
    if z.shape[2] < 3 or z.shape[3] < 3 or z.shape[1] % lrn.groups or _tracing():
        return None
    if _has_hooks(relu, lrn, pool):
        return None
    return _kernel(z)  # None off the CPU, for other dtypes, or without the library


def _call(fn, z: Tensor, pointers: list[int], params: tuple) -> None:
    n, c, h, w = z.shape
    size, alpha, beta, k, groups = params
    dims = (ctypes.c_int64 * 6)(n, h, w, groups, c // groups, int(_is_channels_last(z)))
    _call_kernel(fn, z, pointers, dims, (size, alpha, beta, k), "ReLU-LRN-pool")


class _ReluLRNPool(torch.autograd.Function):
    """Forward and backward of pool(lrn(relu(z))); only z is saved (the LRN of the
    three layers kept relu(z), the same memory), the rest is recomputed per row."""

    @staticmethod
    def forward(ctx, z: Tensor, lib, params: tuple) -> Tensor:
        n, c, h, w = z.shape
        fmt = _memory_format(z)
        pooled = (n, c, (h - 3) // 2 + 1, (w - 3) // 2 + 1)
        out = torch.empty(pooled, dtype=z.dtype, memory_format=fmt)
        _call(lib.alexnet_relu_lrn_pool_forward, z, [z.data_ptr(), out.data_ptr()], params)
        if z.requires_grad:
            ctx.save_for_backward(z)
        ctx.lib, ctx.params = lib, params
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gp: Tensor):
        (z,) = ctx.saved_tensors
        fmt = _memory_format(z)
        gp = gp.contiguous(memory_format=fmt)
        gz = torch.empty_like(z, memory_format=fmt)
        ptrs = [z.data_ptr(), gp.data_ptr(), gz.data_ptr()]
        _call(ctx.lib.alexnet_relu_lrn_pool_backward, z, ptrs, ctx.params)
        return gz, None, None


def relu_lrn_pool(z: Tensor, relu: nn.Module, lrn: nn.Module, pool: nn.Module) -> Tensor:
    """``pool(lrn(relu(z)))`` for z (N, C, H, W): one pass where the fused kernel applies."""
    lib = _fusable(z, relu, lrn, pool)
    if lib is None:
        return pool(lrn(relu(z)))
    alpha = lrn.alpha / lrn.size if lrn.alpha_over_size else lrn.alpha
    params = (lrn.size, alpha, lrn.beta, lrn.k, lrn.groups)
    return _ReluLRNPool.apply(z, lib, params)
