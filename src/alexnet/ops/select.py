"""Which implementation of the LRN runs for a tensor: the one place that decides.

``"c"``: the C kernels (CPU, float32 or bf16, the library built); ``"torch"``: the
same algorithm as chunked PyTorch ops (CPU, any other dtype, or no C compiler, or
``ALEXNET_LRN_KERNEL=torch``); ``"formula"``: the formula as plain tensor ops
(``alexnet.ops.formula``) on every other device. On CUDA that is the fast choice
under ``torch.compile``, where inductor fuses the whole formula into one Triton
kernel per direction; the custom ops exist for the CPU, where inductor's code for
the formula ran 2-5x slower than the C kernels (issue 15).
"""

from __future__ import annotations

import torch
from torch import Tensor

from alexnet._kernels import lrn_library

from ._kernel import KERNEL_DTYPES

__all__ = ["implementation", "kernel_available"]


@torch.compiler.assume_constant_result
def kernel_available() -> bool:
    """True when the C library is built and loaded (a constant to ``torch.compile``)."""
    return lrn_library() is not None


def implementation(x: Tensor) -> str:
    """ "c", "torch" or "formula" for x (see the module docstring)."""
    if x.device.type != "cpu":
        return "formula"
    if x.dtype in KERNEL_DTYPES and kernel_available():
        return "c"
    return "torch"
