"""Layers the 2012 paper needs that PyTorch does not ship in the paper's form.

``LocalResponseNorm`` implements §3.3 of Krizhevsky et al. (2012):

    b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']**2) ** beta

with the window of ``size`` adjacent channels centred on ``c`` and clipped at the
edges. The paper uses k=2, n=5, alpha=1e-4, beta=0.75 and does *not* divide alpha
by n. ``torch.nn.LocalResponseNorm`` (like Caffe and cuda-convnet) does divide,
so the same numbers give a 5x weaker normalisation there; ``alpha_over_size=True``
reproduces that convention.

Speed. On the CPU the layer is the custom operator ``torch.ops.alexnet.lrn``
(``alexnet.ops``): a C kernel for float32 and bf16 (``csrc/lrn.c``, one read and one
write each way, 13-24x faster than PyTorch's layer, which pads a 5-D copy and runs
``avg_pool3d``: about 0.9 s for forward+backward of a 64x96x55x55 float32 tensor on the
2-core CPU this project is developed on), chunked PyTorch ops for other dtypes. Eager
mode, ``torch.compile`` and ``torch.export`` call the same op. On CUDA the op runs the
Triton kernels of ``alexnet.ops.triton`` (float32, bf16, float16; one read and one write
per element forward), in eager mode and compiled alike; without triton (or with
``ALEXNET_LRN_KERNEL=torch``) the chunked ops in eager mode, and under ``torch.compile``
the formula as plain tensor ops, which inductor fuses (``alexnet.ops.select`` decides,
with the figures).
``python benchmarks/bench_lrn.py`` measures the ratio against PyTorch's layer
(docs/benchmarks.md).

ReLU -> LRN -> max-pool 3/2 as one module: the tail of conv1 and conv2 (§3.3, §3.4).

``ReLULRNPool(relu, lrn, pool)`` holds the three layers as its children ``relu``,
``lrn`` and ``pool`` and returns ``pool(lrn(relu(z)))``. Where the custom operator
``torch.ops.alexnet.relu_lrn_pool`` computes exactly that (the paper's n = 5 and
beta = 0.75, a 3x3 pool of stride 2, the C kernels on the CPU, the Triton kernels of
``alexnet.ops.triton`` on CUDA), it runs that one op, in eager mode, under
``torch.compile`` and in ``torch.export`` alike: the LRN output, the pool's indices and
the intermediate gradients are never written (``python benchmarks/bench_fused.py``:
1.5-2.3x faster than the three layers on the 2-core CPU). Otherwise, and whenever a hook
is registered on one of the three children, the three layers run one after the other, so
hooks see every layer; the numbers are the same either way (``tests/ops/test_fused.py``).
Module-wide hooks (``torch.nn.modules.module.register_module_forward_hook``) see this
module as a whole.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alexnet.ops import implementation, lrn_formula
from alexnet.ops._kernel import is_channels_last
from alexnet.ops.fused import BETA, SIZE
from alexnet.ops.lrn import check_input
from alexnet.ops.select import kernel_available

__all__ = [
    "Dropout",
    "LocalResponseNorm",
    "ReLULRNPool",
    "local_response_norm",
    "local_response_norm_reference",
]


def local_response_norm(
    x: Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    alpha_over_size: bool = False,
    groups: int = 1,
    inplace: bool = False,
) -> Tensor:
    """Functional form of :class:`LocalResponseNorm`; x: (N, C, H, W)."""
    check_input(x, groups)
    a = alpha / size if alpha_over_size else alpha
    if implementation(x) == "formula":
        return lrn_formula(x, size, a, beta, k, groups)
    if (
        inplace
        and not (torch.is_grad_enabled() and x.requires_grad)
        and x.numel()
        and not torch.compiler.is_exporting()  # exported programs stay functional
    ):
        # inference: no tensor to keep for backward, and no new 4-D tensor to allocate
        # (at batch 64 that is 37 MB after conv1 in bf16, each page faulted in afresh)
        torch.ops.alexnet.lrn_(x, size, a, beta, k, groups)
        return x
    return torch.ops.alexnet.lrn(x, size, a, beta, k, groups)


def local_response_norm_reference(
    x: Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    groups: int = 1,
) -> Tensor:
    """The §3.3 formula written as a plain loop over channels (slow; for tests)."""
    if groups > 1:
        parts = x.chunk(groups, dim=1)
        return torch.cat([local_response_norm_reference(p, size, alpha, beta, k) for p in parts], 1)
    c = x.shape[1]
    lo_off = (size - 1) // 2
    out = torch.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - lo_off), min(c, i - lo_off + size)
        s = (x[:, lo:hi] ** 2).sum(dim=1)
        out[:, i] = x[:, i] / (k + alpha * s) ** beta
    return out


class LocalResponseNorm(nn.Module):
    """Local response normalisation across channels, §3.3 of the paper.

    Defaults are the paper's: ``size`` n=5, ``alpha``=1e-4, ``beta``=0.75, ``k``=2.
    ``alpha_over_size=True`` divides alpha by ``size`` as ``torch.nn.LocalResponseNorm``,
    Caffe and cuda-convnet do. ``groups=2`` normalises each half of the channels on
    its own (the window stops at the half's edge), as the paper's two GPUs did:
    each held and normalised only its own 48 (conv1) or 128 (conv2) maps.
    Input (N, C, H, W), float32/bfloat16/float16/float64, contiguous or
    channels_last; output has the input's dtype and memory format.
    ``inplace=True`` (as in ``nn.ReLU``) overwrites the input when no gradient is
    needed (inference); with autograd recording it returns a new tensor as usual.
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        alpha_over_size: bool = False,
        groups: int = 1,
        inplace: bool = False,
    ) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.alpha_over_size = alpha_over_size
        self.groups = groups
        self.inplace = inplace
        kernel_available()  # load (once: build) the C kernels now, eagerly; see there

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(
            x,
            self.size,
            self.alpha,
            self.beta,
            self.k,
            self.alpha_over_size,
            self.groups,
            self.inplace,
        )

    def extra_repr(self) -> str:
        s = f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
        s += ", alpha_over_size=True" if self.alpha_over_size else ""
        s += f", groups={self.groups}" if self.groups > 1 else ""
        return s + (", inplace=True" if self.inplace else "")


class Dropout(nn.Module):
    """Dropout of §4.2 in either form.

    ``form="paper"``: in training each output is zeroed with probability ``p`` and the
    rest pass unchanged; at test time every output is multiplied by ``1 - p`` ("At test
    time, we use all the neurons but multiply their outputs by 0.5"). ``"inverted"``:
    PyTorch's ``nn.Dropout``, which scales the kept outputs by ``1 / (1 - p)`` in training
    and is the identity at test time. The two give the same expected activations, but
    with weight decay and the §5 initialisation they do not train alike: under the
    inverted form the layer after the dropout sees inputs twice as large in training.
    """

    def __init__(self, p: float = 0.5, form: str = "paper") -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        if form not in ("paper", "inverted"):
            raise ValueError(f"dropout form must be 'paper' or 'inverted', got {form!r}")
        self.p, self.form = p, form

    def forward(self, x: Tensor) -> Tensor:
        if self.form == "inverted":
            return nn.functional.dropout(x, self.p, self.training)
        if not self.training:
            return x * (1.0 - self.p)
        if self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p)  # 1 with probability 1 - p
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}, form={self.form!r}"


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
