"""ReLU -> LRN -> max-pool 3/2 as one module: the tail of conv1 and conv2 (§3.3, §3.4).

``ReLULRNPool(relu, lrn, pool)`` holds the three layers as its children ``relu``,
``lrn`` and ``pool`` and returns ``pool(lrn(relu(z)))``. Where the custom operator
``torch.ops.alexnet.relu_lrn_pool`` computes exactly that (the paper's n = 5 and
beta = 0.75, a 3x3 pool of stride 2, the C kernels on the CPU, the Triton kernels of
``alexnet.ops.triton`` on CUDA), it runs that one op, in eager mode, under
``torch.compile`` and in ``torch.export`` alike: the LRN output, the pool's indices and
the intermediate gradients are never written (``python benchmarks/bench_fused.py``:
1.5-2.3x faster than the three layers on the 2-core CPU). Otherwise, and whenever a hook
is registered on one of the three children, the three layers run one after the other, so
hooks see every layer; the numbers are the same either way (``tests/test_fused.py``).
Module-wide hooks (``torch.nn.modules.module.register_module_forward_hook``) see this
module as a whole.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alexnet.nn import LocalResponseNorm
from alexnet.ops import implementation
from alexnet.ops._kernel import is_channels_last
from alexnet.ops.fused import BETA, SIZE

__all__ = ["ReLULRNPool"]


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _hooked(m: nn.Module) -> bool:
    return bool(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
    )


def _slow_backward(z: Tensor) -> bool:
    """bf16 NCHW maps narrower than 32 with a backward to run: there the fused backward,
    which walks rows of W values, loses to the three layers (conv2's 27-wide maps at
    batch 64: 291 vs 208 ms forward+backward; conv1's 55-wide maps: 263 vs 386 ms, fp32
    conv2: 211 vs 300 ms; ``python benchmarks/bench_fused.py --bf16 --nchw``)."""
    return (
        z.dtype == torch.bfloat16
        and z.dim() == 4
        and z.shape[3] < 32
        and not is_channels_last(z)
        and torch.is_grad_enabled()
        and z.requires_grad
    )


class ReLULRNPool(nn.Module):
    """pool(lrn(relu(z))) for z (N, C, H, W): one custom op where it applies (module docstring)."""

    def __init__(self, relu: nn.ReLU, lrn: LocalResponseNorm, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.relu, self.lrn, self.pool = relu, lrn, pool

    def _paper_layers(self) -> bool:
        """The three layers are the ones the fused op is built for."""
        lrn, pool = self.lrn, self.pool
        return (
            type(self.relu) is nn.ReLU
            and type(lrn) is LocalResponseNorm
            and lrn.size == SIZE
            and lrn.beta == BETA
            and type(pool) is nn.MaxPool2d
            and _pair(pool.kernel_size) == (3, 3)
            and _pair(pool.stride) == (2, 2)
            and _pair(pool.padding) == (0, 0)
            and _pair(pool.dilation) == (1, 1)
            and not pool.ceil_mode
            and not pool.return_indices
        )

    def fusable(self, z: Tensor) -> bool:
        """True when the fused op runs for z (no hooks on the children, the paper's
        constants, a kernel for z's device and dtype: the C kernels on the CPU, the Triton
        kernels on CUDA; a map of at least 3x3, and on the CPU not a bf16 NCHW backward on
        narrow maps, ``_slow_backward``)."""
        if not self._paper_layers() or any(_hooked(m) for m in (self.relu, self.lrn, self.pool)):
            return False
        if z.dim() != 4 or z.shape[2] < 3 or z.shape[3] < 3 or z.shape[1] % self.lrn.groups:
            return False
        impl = implementation(z)
        return impl == "triton" or (impl == "c" and not _slow_backward(z))

    def forward(self, z: Tensor) -> Tensor:
        if not self.fusable(z):
            return self.pool(self.lrn(self.relu(z)))
        lrn = self.lrn
        alpha = lrn.alpha / lrn.size if lrn.alpha_over_size else lrn.alpha
        return torch.ops.alexnet.relu_lrn_pool(z, alpha, lrn.k, lrn.groups)
