"""Calls into the C library of ``alexnet.ops._loader`` (``csrc/lrn.c``, ``csrc/lrn_pool.c``)
on a tensor's data: dims and strides as the kernels expect them, and the error check."""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

KERNEL_DTYPES = {torch.float32: 0, torch.bfloat16: 1}  # the kernels' dtype codes
# The ops take NCHW and channels_last alike (their fake implementations give the output
# the input's format), so inductor may hand them the channels_last maps it makes of an
# NCHW model's convolutions instead of converting back: on the 2-core CPU, compiled bf16
# NCHW inference ran at 0.74x torchvision's with the default fixed-stride constraint.
ANY_LAYOUT = (torch.Tag.flexible_layout,)


def is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def memory_format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


def dense(x: Tensor) -> Tensor:
    """x itself when contiguous or channels_last (what the kernels walk), else a contiguous copy."""
    return x if x.is_contiguous() or is_channels_last(x) else x.contiguous()


def call(fn, x: Tensor, pointers: list[int], dims, params: tuple, what: str) -> None:
    """Calls ``fn`` of the C library on x's data: the kernel shares the work out between
    PyTorch's OpenMP threads (ctypes releases the GIL), one per 64 Ki elements at most."""
    threads = min(torch.get_num_threads(), max(1, x.numel() >> 16))
    rc = fn(KERNEL_DTYPES[x.dtype], *pointers, dims, *params, threads)
    if rc:
        raise RuntimeError(f"{what} kernel failed ({rc}) on a {tuple(x.shape)} tensor")


def lrn_dims(x: Tensor, groups: int):
    """(N, G, C/G, H*W) sizes and element strides of x, for lrn.c."""
    n, c, h, w = x.shape
    p, cg = h * w, c // groups
    strides = (p * c, cg, 1, c) if is_channels_last(x) else (c * p, cg * p, p, 1)
    return (ctypes.c_int64 * 8)(n, groups, cg, p, *strides)


def pool_dims(z: Tensor, groups: int):
    """(N, H, W, G, C/G, channels_last) of z, for lrn_pool.c."""
    n, c, h, w = z.shape
    return (ctypes.c_int64 * 6)(n, h, w, groups, c // groups, int(is_channels_last(z)))
