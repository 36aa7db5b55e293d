"""Layers the 2012 paper needs that PyTorch does not ship in the paper's form.

``LocalResponseNorm`` implements §3.3 of Krizhevsky et al. (2012):

    b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']**2) ** beta

with the window of ``size`` adjacent channels centred on ``c`` and clipped at the
edges. The paper uses k=2, n=5, alpha=1e-4, beta=0.75 and does *not* divide alpha
by n. ``torch.nn.LocalResponseNorm`` (like Caffe and cuda-convnet) does divide,
so the same numbers give a 5x weaker normalisation there; ``alpha_over_size=True``
reproduces that convention.

Speed. PyTorch's layer pads a 5-D copy and runs ``avg_pool3d`` forward and
backward: about 0.9 s for forward+backward of a 64x96x55x55 float32 tensor on
the 2-core CPU this project is developed on, as long as all the convolutions of
a torchvision AlexNet training step. Every step of LRN is memory-bound, so here
the work runs in chunks of a few samples that stay in the CPU cache, each
elementwise op writes into a preallocated buffer, the channel window sum is
``size - 1`` shifted in-place adds, and the backward pass is written by hand
(autograd keeps the input, the output and the denominator). Under
``torch.compile`` / ``torch.export`` / ONNX export the same formula runs as
plain tensor ops that the compiler fuses. ``python benchmarks/bench_lrn.py``
measures the ratio against PyTorch's layer (README, "Benchmarks").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["LocalResponseNorm", "local_response_norm", "local_response_norm_reference"]

# Elements per chunk: 2 MiB of float32, a few buffers of which fit in L2/L3.
_CHUNK_ELEMS = 1 << 19


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16 (a half-precision sum of squares loses the small
    terms), the input's own dtype otherwise (float64 stays float64)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _window_sum_into(x: Tensor, out: Tensor, size: int, groups: int = 1) -> Tensor:
    """out[:, c] = sum of x[:, c'] over the ``size`` channels centred on c, clipped at
    the edges of c's channel group (``groups`` equal blocks: the paper's towers)."""
    if groups > 1:
        per = x.shape[1] // groups
        for g in range(groups):
            sl = slice(g * per, (g + 1) * per)
            _window_sum_into(x[:, sl], out[:, sl], size)
        return out
    lo = (size - 1) // 2
    hi = size - 1 - lo
    out.copy_(x)
    for s in range(1, lo + 1):
        out[:, s:] += x[:, :-s]
    for s in range(1, hi + 1):
        out[:, :-s] += x[:, s:]
    return out


def _chunks(n: int, per_sample: int):
    step = max(1, _CHUNK_ELEMS // max(1, per_sample))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)], step


def _lrn_forward(
    a: Tensor, size: int, alpha: float, beta: float, k: float, groups: int, keep_d: bool
):
    """Returns b (a's dtype) and, if ``keep_d``, d = k + alpha * window_sum(a**2)."""
    acc = _acc_dtype(a.dtype)
    fmt = torch.channels_last if _is_channels_last(a) else torch.contiguous_format
    slices, step = _chunks(a.shape[0], a[0].numel() if a.shape[0] else 0)
    b = torch.empty_like(a, memory_format=fmt)
    d_all = torch.empty_like(a, dtype=acc, memory_format=fmt) if keep_d else None
    shape = (min(step, a.shape[0]), *a.shape[1:])
    sq = torch.empty(shape, dtype=acc, device=a.device).to(memory_format=fmt)
    dbuf = None if keep_d else torch.empty_like(sq)
    for sl in slices:
        m = sl.stop - sl.start
        ac = a[sl].to(acc)
        sqc = sq[:m]
        torch.mul(ac, ac, out=sqc)
        dc = d_all[sl] if keep_d else dbuf[:m]
        _window_sum_into(sqc, dc, size, groups).mul_(alpha).add_(k)
        torch.pow(dc, -beta, out=sqc)  # sqc now holds the scale d**-beta
        if b.dtype == acc:
            torch.mul(ac, sqc, out=b[sl])
        else:
            b[sl].copy_(sqc.mul_(ac))
    return b, d_all


def _is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _LRNFunction(torch.autograd.Function):
    """Forward and hand-written backward of the paper's LRN.

    With d[c] = k + alpha * S[c] (S the window sum of a**2) and b = a * d**-beta:
        dL/da[i] = g[i] * d[i]**-beta
                   - 2 * alpha * beta * a[i] * sum_{j in window(i)} g[j] * b[j] / d[j]
    ("i in window(j)" is "j in window(i)" for odd sizes; for even sizes the
    transposed window is used.)
    """

    @staticmethod
    def forward(
        ctx, a: Tensor, size: int, alpha: float, beta: float, k: float, groups: int
    ) -> Tensor:
        keep = a.requires_grad
        b, d = _lrn_forward(a, size, alpha, beta, k, groups, keep_d=keep)
        if keep:
            ctx.save_for_backward(a, b, d)
        ctx.params = (size, alpha, beta, groups)
        return b

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        a, b, d = ctx.saved_tensors
        size, alpha, beta, groups = ctx.params
        acc = d.dtype
        fmt = torch.channels_last if _is_channels_last(a) else torch.contiguous_format
        grad = torch.empty_like(a, memory_format=fmt)
        slices, step = _chunks(a.shape[0], a[0].numel() if a.shape[0] else 0)
        shape = (min(step, a.shape[0]), *a.shape[1:])
        t1 = torch.empty(shape, dtype=acc, device=a.device).to(memory_format=fmt)
        t2 = torch.empty_like(t1)
        # The transposed window: for an even size the window is lopsided, so the
        # backward sum runs over the mirrored window (flip channels, sum, flip back).
        flip = size % 2 == 0
        for sl in slices:
            m = sl.stop - sl.start
            gc, ac, bc, dc = g[sl].to(acc), a[sl].to(acc), b[sl].to(acc), d[sl]
            x1, x2 = t1[:m], t2[:m]
            torch.mul(gc, bc, out=x1).div_(dc)
            if flip:
                x2 = _window_sum_into(x1.flip(1), x2, size, groups).flip(1)
            else:
                _window_sum_into(x1, x2, size, groups)
            torch.pow(dc, -beta, out=x1).mul_(gc)
            if grad.dtype == acc:
                torch.addcmul(x1, ac, x2, value=-2.0 * alpha * beta, out=grad[sl])
            else:
                grad[sl].copy_(x1.addcmul_(ac, x2, value=-2.0 * alpha * beta))
        return grad, None, None, None, None, None


def _lrn_traceable(
    x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int = 1
) -> Tensor:
    """The same formula as plain tensor ops, for compilers and exporters."""
    if groups > 1:
        n, c, h, w = x.shape
        y = _lrn_traceable(x.reshape(n * groups, c // groups, h, w), size, alpha, beta, k)
        return y.reshape(n, c, h, w)
    acc = _acc_dtype(x.dtype)
    a = x.to(acc)
    sq = (a * a).unsqueeze(1)  # (N, 1, C, H, W)
    lo = (size - 1) // 2
    sq = torch.nn.functional.pad(sq, (0, 0, 0, 0, lo, size - 1 - lo))
    s = torch.nn.functional.avg_pool3d(sq, (size, 1, 1), stride=1).squeeze(1) * size
    return (a * (s * alpha + k).pow(-beta)).to(x.dtype)


def _tracing() -> bool:
    return (
        torch.compiler.is_compiling() or torch.compiler.is_exporting() or (torch.jit.is_tracing())
    )


def local_response_norm(
    x: Tensor,
    size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 2.0,
    alpha_over_size: bool = False,
    groups: int = 1,
) -> Tensor:
    """Functional form of :class:`LocalResponseNorm`; x: (N, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"LocalResponseNorm expects a 4-D (N, C, H, W) tensor, got {x.dim()}-D")
    if x.shape[1] % groups:
        raise ValueError(f"{x.shape[1]} channels do not split into {groups} groups")
    a = alpha / size if alpha_over_size else alpha
    if _tracing():
        return _lrn_traceable(x, size, a, beta, k, groups)
    return _LRNFunction.apply(x, size, a, beta, k, groups)


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
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        alpha_over_size: bool = False,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.alpha_over_size = alpha_over_size
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(
            x, self.size, self.alpha, self.beta, self.k, self.alpha_over_size, self.groups
        )

    def extra_repr(self) -> str:
        s = f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
        s += ", alpha_over_size=True" if self.alpha_over_size else ""
        return s + (f", groups={self.groups}" if self.groups > 1 else "")
