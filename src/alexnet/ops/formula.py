"""The paper's LRN (§3.3) as plain tensor ops: what runs on CUDA under ``torch.compile``
(inductor fuses it), and the meaning of the custom ops, for tests and other exporters."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from ._kernel import memory_format

__all__ = ["acc_dtype", "lrn_formula", "relu_lrn_pool_formula"]


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16 (a half-precision sum of squares loses the small terms),
    the input's own dtype otherwise (float64 stays float64)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def lrn_formula(
    x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int = 1
) -> Tensor:
    """b = a * (k + alpha * window_sum(a**2)) ** -beta for x (N, C, H, W): a padded channel
    axis per tower and ``size`` shifted slices, which inductor fuses into one loop (an
    avg_pool3d formulation compiles to a slow kernel). Output in x's dtype and format."""
    a = x.to(acc_dtype(x.dtype))
    c = x.shape[1] // groups
    sq = (a * a).unflatten(1, (groups, c))  # (N, G, C/G, H, W)
    lo = (size - 1) // 2
    sq = F.pad(sq, (0, 0, 0, 0, lo, size - 1 - lo))
    s = sum(sq[:, :, i : i + c] for i in range(size)).flatten(1, 2)
    b = (a * (s * alpha + k).pow(-beta)).to(x.dtype)
    return b.contiguous(memory_format=memory_format(x))


def relu_lrn_pool_formula(z: Tensor, alpha: float, k: float, groups: int) -> Tensor:
    """max_pool 3/2 of the LRN (n = 5, beta = 0.75) of relu(z): the fused op's meaning."""
    return F.max_pool2d(lrn_formula(torch.relu(z), 5, alpha, 0.75, k, groups), 3, 2)
