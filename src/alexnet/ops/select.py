"""Which implementation of the LRN runs for a tensor: the one place that decides.

``"c"``: the C kernels (CPU, float32 or bf16, the library built). ``"triton"``: the
Triton kernels of ``alexnet.ops.triton`` (CUDA, float32, bf16 or float16, triton
installed), in eager mode, under ``torch.compile`` (the custom ops stay opaque to
inductor and call them) and in ``torch.export``. ``"torch"``: the same algorithm as
chunked PyTorch ops with the hand-written backward (``alexnet.ops.chunked``) inside the
custom op: on the CPU for other dtypes, without a C compiler or with
``ALEXNET_LRN_KERNEL=torch``, and on CUDA in eager mode where the Triton kernels do not
apply (float64, no triton, ``ALEXNET_LRN_KERNEL=torch``). ``"formula"``: the formula as
plain tensor ops (``alexnet.ops.formula``), on CUDA under ``torch.compile`` and
``torch.export`` where the Triton kernels do not apply: inductor fuses it into one
Triton kernel per direction. On an H200 (torch 2.11), forward+backward of a
256x96x55x55 bf16 channels_last tensor took 6.2 ms as the chunked op, 10.9 ms as the
eager formula, 4.5 ms as the compiled formula (8.2 ms for ``torch.nn.LocalResponseNorm``).
On the CPU inductor's code for the formula ran the paper model 2-5x slower than the C
kernels, so there the custom ops run compiled too.

``ALEXNET_LRN_KERNEL``: ``torch`` (the chunked ops on the CPU, the chunked ops or the
formula on CUDA), ``c`` (a failed C build is an error), ``triton`` (a triton that does
not import is an error), unset or ``auto``: the fastest that works.

Triton is imported only when a CUDA tensor reaches a custom op (``triton_kernels``):
``import alexnet`` looks only for triton's package (``importlib.util.find_spec``), so
that ``torch.compile`` traces a constant here, never an import.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import torch
from torch import Tensor

from alexnet.ops._loader import lrn_library

from ._kernel import KERNEL_DTYPES

__all__ = ["implementation", "kernel_available", "triton_kernels"]

TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
TRITON_FOUND = importlib.util.find_spec("triton") is not None
_triton: dict[str, object] = {}  # "module" (alexnet.ops.triton or None), "error" (str)


def kernel_available() -> bool:
    """True when the C library is built and loaded. ``alexnet.ops.nn.LocalResponseNorm``
    calls it when constructed, so ``torch.compile`` traces a dictionary lookup here, never
    the build (``torch.compiler.assume_constant_result`` would do it too, at the price of
    importing ``torch._dynamo``, 1.2 s, in every process that imports alexnet)."""
    return lrn_library() is not None


def triton_kernels() -> ModuleType | None:
    """``alexnet.ops.triton``, imported on first call; None when triton does not import
    (the custom ops then run the chunked ops), an error under ``ALEXNET_LRN_KERNEL=triton``."""
    if "module" not in _triton:
        try:
            _triton["module"] = importlib.import_module("alexnet.ops.triton")
        except Exception as e:  # a broken triton install: ImportError, RuntimeError, ...
            _triton["module"], _triton["error"] = None, f"{type(e).__name__}: {e}"
    if _triton["module"] is None and os.environ.get("ALEXNET_LRN_KERNEL") == "triton":
        raise RuntimeError(
            f"ALEXNET_LRN_KERNEL=triton, but triton did not import: {_triton['error']}"
        )
    return _triton["module"]  # type: ignore[return-value]


def _triton_applies(x: Tensor) -> bool:
    mode = os.environ.get("ALEXNET_LRN_KERNEL", "auto")
    if mode == "torch" or x.device.type != "cuda" or x.dtype not in TRITON_DTYPES:
        return False
    if not TRITON_FOUND and mode == "triton":
        raise RuntimeError("ALEXNET_LRN_KERNEL=triton, but triton is not installed")
    return TRITON_FOUND and _triton.get("module", True) is not None


def implementation(x: Tensor) -> str:
    """ "c", "triton", "torch" or "formula" for x (see the module docstring)."""
    if x.device.type != "cpu":
        if _triton_applies(x):
            return "triton"
        return "formula" if torch.compiler.is_compiling() else "torch"
    if x.dtype in KERNEL_DTYPES and kernel_available():
        return "c"
    return "torch"
