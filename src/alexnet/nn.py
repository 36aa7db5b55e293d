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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alexnet.ops import implementation, lrn_formula
from alexnet.ops.lrn import check_input
from alexnet.ops.select import kernel_available

__all__ = [
    "Dropout",
    "LocalResponseNorm",
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
