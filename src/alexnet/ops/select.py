"""Which implementation of the LRN runs for a tensor: the one place that decides.

``"c"``: the C kernels (CPU, float32 or bf16, the library built). ``"torch"``: the same
algorithm as chunked PyTorch ops with the hand-written backward (``alexnet.ops.chunked``)
inside the custom op: on the CPU for other dtypes, without a C compiler or with
``ALEXNET_LRN_KERNEL=torch``, and on CUDA in eager mode. ``"formula"``: the formula as
plain tensor ops (``alexnet.ops.formula``), on CUDA under ``torch.compile`` and
``torch.export``, where inductor fuses it into one Triton kernel per direction. On an
H200 (torch 2.11), forward+backward of a 256x96x55x55 bf16 channels_last tensor took
6.2 ms as the chunked op, 10.9 ms as the eager formula, 4.5 ms as the compiled formula
(8.2 ms for ``torch.nn.LocalResponseNorm``). On the CPU inductor's code for the formula
ran the paper model 2-5x slower than the C kernels, so there the custom ops run compiled
too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from alexnet._kernels import lrn_library

from ._kernel import KERNEL_DTYPES

__all__ = ["implementation", "kernel_available"]


def kernel_available() -> bool:
    """True when the C library is built and loaded. ``alexnet.nn.LocalResponseNorm``
    calls it when constructed, so ``torch.compile`` traces a dictionary lookup here, never
    the build (``torch.compiler.assume_constant_result`` would do it too, at the price of
    importing ``torch._dynamo``, 1.2 s, in every process that imports alexnet)."""
    return lrn_library() is not None


def implementation(x: Tensor) -> str:
    """ "c", "torch" or "formula" for x (see the module docstring)."""
    if x.device.type != "cpu":
        return "formula" if torch.compiler.is_compiling() else "torch"
    if x.dtype in KERNEL_DTYPES and kernel_available():
        return "c"
    return "torch"
