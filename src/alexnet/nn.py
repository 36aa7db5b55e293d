"""Layers the 2012 paper needs that PyTorch does not ship in the paper's form.

``LocalResponseNorm`` implements §3.3 of Krizhevsky et al. (2012):

    b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']**2) ** beta

with the window of ``size`` adjacent channels centred on ``c`` and clipped at the
edges. The paper uses k=2, n=5, alpha=1e-4, beta=0.75 and does *not* divide alpha
by n. ``torch.nn.LocalResponseNorm`` (like Caffe and cuda-convnet) does divide,
so the same numbers give a 5x weaker normalisation there; ``alpha_over_size=True``
reproduces that convention.

Speed. On the CPU, float32 and bf16 run a fused C kernel (``csrc/lrn.c``, built
once with the system compiler by ``alexnet._kernels``): one read and one write each
way, 1.5-2x faster than the torch-ops path below, which runs where there is no
compiler, for other dtypes, on CUDA, and with ``ALEXNET_LRN_KERNEL=torch``.
PyTorch's layer pads a 5-D copy and runs ``avg_pool3d`` forward and
backward: about 0.9 s for forward+backward of a 64x96x55x55 float32 tensor on
the 2-core CPU this project is developed on, as long as all the convolutions of
a torchvision AlexNet training step. Every step of LRN is memory-bound, so the
fast path here works in chunks that stay in cache and writes each result into
a scratch buffer: ``k/n + alpha * a**2`` goes between ``n - 1`` channels of
padding worth ``k/n``, so the window sum is three adds of shifted slices for
n=5 (pairs first), d**-0.75 is ``rsqrt(d) * sqrt(rsqrt(d))`` (3x faster than
``pow``), and the output is rounded to the input's dtype as it is stored. Only
the input is saved for backward (the ReLU before it keeps it anyway); the
hand-written backward recomputes d per chunk in cache, which costs less than
writing d to memory and reading it back. On the CPU, PyTorch's intra-op
threads take chunks in turn, each running its ops alone (``_serial_workers``):
with OpenMP splitting every small op instead, each op ends in a barrier, and
on a busy shared CPU a barrier waits for a preempted thread (a training step
of the paper's model took 15 s that way and 3.8 s this way, README
"Benchmarks"). bf16/fp16 inputs are converted into float32 scratch buffers and
back explicitly (ops mixing dtypes would allocate a temporary each). Under ``torch.compile`` /
``torch.export`` / ONNX export the same formula runs as plain tensor ops.
``python benchmarks/bench_lrn.py`` measures the ratio against PyTorch's layer
(README, "Benchmarks").
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from alexnet._kernels import lrn_library  # standard library only (ctypes)

__all__ = [
    "Dropout",
    "LocalResponseNorm",
    "local_response_norm",
    "local_response_norm_reference",
]

# Elements per chunk of the fast path on the CPU: 2 MiB of float32, so the six
# scratch buffers of a chunk stay in cache.
_CHUNK_ELEMS = 1 << 19


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def _serial_workers(n: int) -> ThreadPoolExecutor:
    """``n`` threads whose PyTorch ops each run on that one thread: chunks are
    shared out between them, and no op ends in a barrier of OpenMP threads (on a
    shared CPU a barrier waits for whichever thread the OS has preempted)."""
    global _POOL
    if _POOL is not None and _POOL[0] == os.getpid() and _POOL[1] == n:
        return _POOL[2]
    pool = ThreadPoolExecutor(n, thread_name_prefix="alexnet-lrn")
    ready = threading.Barrier(n)

    def init() -> None:
        torch.get_num_threads()  # PyTorch's lazy per-thread set-up first, so that
        torch.set_num_threads(1)  # this one sticks (OpenMP and MKL: per thread)
        ready.wait()  # holds each worker here: every one runs init exactly once

    threads = torch.get_num_threads()
    for f in [pool.submit(init) for _ in range(n)]:
        f.result()
    torch.set_num_threads(threads)  # the process-wide default the workers overwrote
    _POOL = (os.getpid(), n, pool)
    return pool


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for bf16/fp16 (a half-precision sum of squares loses the small
    terms), the input's own dtype otherwise (float64 stays float64)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _memory_format(x: Tensor) -> torch.memory_format:
    return torch.channels_last if _is_channels_last(x) else torch.contiguous_format


def _towers(x: Tensor, groups: int) -> Tensor:
    """(N, C, H, W) -> (N, groups, C/groups, H*W) view, in either memory format."""
    n, c, h, w = x.shape
    if _is_channels_last(x):
        return x.permute(0, 2, 3, 1).view(n, h * w, groups, c // groups).permute(0, 2, 3, 1)
    return x.view(n, groups, c // groups, h * w)


def _plan(n: int, c: int, p: int, elems: int) -> list[tuple[slice, slice]]:
    """Chunks of at most ``elems`` (or one position): whole samples, or positions of one."""
    if c * p <= elems:
        m = elems // (c * p)
        return [(slice(i, min(n, i + m)), slice(0, p)) for i in range(0, n, m)]
    q = max(1, elems // c)
    return [(slice(i, i + 1), slice(j, min(p, j + q))) for i in range(n) for j in range(0, p, q)]


class _Scratch:
    """Per-call buffers of one chunk, (m, G, C/G [+ pad], positions), channels
    innermost when the input is channels_last. ``xp`` holds k/size + alpha*a**2
    between ``size - 1`` channels of padding worth k/size each, so a plain sum of
    ``size`` neighbours is d = k + alpha * window_sum(a**2); ``vp`` holds the
    backward's g*b/d between zero padding."""

    def __init__(self, x: Tensor, chunk: tuple[slice, slice], groups, size, k, backward) -> None:
        self.cl = _is_channels_last(x)
        m, c, p = chunk[0].stop - chunk[0].start, x.shape[1], chunk[1].stop - chunk[1].start
        self.shape = (m, groups, c // groups, p)
        acc = _acc_dtype(x.dtype)
        self.k = torch.full((), k / size, dtype=acc, device=x.device)
        self.xp = self.new(size - 1, acc, x.device).fill_(k / size)
        self.pairs = self.new(size - 1, acc, x.device)
        self.d, self.s, self.tmp = (self.new(0, acc, x.device) for _ in range(3))
        # bf16/fp16: explicit conversions through these (ops mixing dtypes would
        # allocate a converted temporary per op)
        self.a = self.new(0, acc, x.device) if acc != x.dtype else None
        self.g = self.new(0, acc, x.device) if acc != x.dtype and backward else None
        self.vp = self.new(size - 1, acc, x.device).zero_() if backward else None

    def new(self, pad: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        m, g, c, p = self.shape
        if self.cl:
            return torch.empty(m, p, g, c + pad, dtype=dtype, device=device).permute(0, 2, 3, 1)
        return torch.empty(m, g, c + pad, p, dtype=dtype, device=device)


def _for_each_chunk(x: Tensor, make_scratch, body) -> None:
    """Calls ``body(scratch, samples, positions)`` for every chunk of x's
    (N, G, C/G, H*W) view; on the CPU, PyTorch's intra-op threads take chunks
    in turn, each with its own scratch buffers."""
    n, c, h, w = x.shape
    if x.device.type != "cpu":  # one chunk: kernel launches, not caches, cost there
        return body(make_scratch((slice(0, n), slice(0, h * w))), slice(0, n), slice(0, h * w))
    plan = _plan(n, c, h * w, _CHUNK_ELEMS)
    threads = torch.get_num_threads()
    workers = min(threads, len(plan))
    counter = itertools.count()
    inference = torch.is_inference_mode_enabled()  # thread-local, like grad mode

    def loop() -> None:
        with torch.inference_mode(inference), torch.no_grad():
            sc = make_scratch(plan[0])
            while (i := next(counter)) < len(plan):
                body(sc, *plan[i])

    if workers <= 1:
        return loop()
    for f in [_serial_workers(threads).submit(loop) for _ in range(workers)]:
        f.result()


def _window_sum(xp: Tensor, size: int, out: Tensor, pairs: Tensor) -> Tensor:
    """out[:, :, c] = sum of xp[:, :, c + i] for i < size (xp padded by size - 1):
    sums of neighbouring pairs first, so size 5 takes three adds, not four."""
    c = out.shape[2]
    if size <= 2:
        return out.copy_(xp) if size == 1 else torch.add(xp[:, :, :c], xp[:, :, 1 : c + 1], out=out)
    npairs = size // 2
    span = c + 2 * (npairs - 1)
    pr = pairs[:, :, :span]
    torch.add(xp[:, :, :span], xp[:, :, 1 : span + 1], out=pr)
    terms = [pr[:, :, 2 * j : 2 * j + c] for j in range(npairs)]
    if size % 2:
        terms.append(xp[:, :, size - 1 : size - 1 + c])
    torch.add(terms[0], terms[1], out=out)
    for t in terms[2:]:
        out.add_(t)
    return out


def _scale_into(d: Tensor, beta: float, out: Tensor, tmp: Tensor) -> Tensor:
    """out = d ** -beta; for the paper's 0.75 as rsqrt(d) * sqrt(rsqrt(d)), 3x faster than pow."""
    if beta == 0.75:
        torch.rsqrt(d, out=out)
        return out.mul_(torch.sqrt(out, out=tmp))
    return torch.pow(d, -beta, out=out)


def _chunk_denominator(sc: _Scratch, a: Tensor, size: int, alpha: float, beta: float):
    """d = k + alpha * window_sum(a**2) and s = d**-beta of one chunk, in scratch."""
    m, pl = a.shape[0], a.shape[3]
    lo = (size - 1) // 2
    xp, d, s = sc.xp[:m, ..., :pl], sc.d[:m, ..., :pl], sc.s[:m, ..., :pl]
    torch.addcmul(sc.k, a, a, value=alpha, out=xp[:, :, lo : lo + a.shape[2]])
    _window_sum(xp, size, d, sc.pairs[:m, ..., :pl])
    _scale_into(d, beta, s, sc.tmp[:m, ..., :pl])
    return d, s


def _as_acc(buf: Tensor | None, x: Tensor) -> Tensor:
    """The chunk in the accumulation dtype (a copy into scratch for bf16/fp16)."""
    return x if buf is None else buf[: x.shape[0], ..., : x.shape[3]].copy_(x)


_KERNEL_DTYPES = {torch.float32: 0, torch.bfloat16: 1}


def _kernel(x: Tensor):
    """The fused C kernel (alexnet/csrc/lrn.c) for a CPU float32/bf16 tensor, else None."""
    if x.device.type != "cpu" or x.dtype not in _KERNEL_DTYPES:
        return None
    return lrn_library()  # built on the first call


def _call_kernel(fn, x: Tensor, pointers: list[int], dims, params: tuple, what: str) -> None:
    """Calls ``fn`` of the C library (lrn.c or lrn_pool.c) on x's data: the kernel shares
    the work out between PyTorch's OpenMP threads (ctypes releases the GIL), one per
    64 Ki elements at most."""
    threads = min(torch.get_num_threads(), max(1, x.numel() >> 16))
    rc = fn(_KERNEL_DTYPES[x.dtype], *pointers, dims, *params, threads)
    if rc:
        raise RuntimeError(f"{what} kernel failed ({rc}) on a {tuple(x.shape)} tensor")


def _run_kernel(fn, x: Tensor, groups: int, pointers: list[int], params: tuple) -> None:
    """Calls ``fn`` of the LRN kernel on x's (N, G, C/G, H*W) view."""
    import ctypes

    n, c, h, w = x.shape
    p, cg = h * w, c // groups
    # element strides of (n, g, c, p)
    strides = (p * c, cg, 1, c) if _is_channels_last(x) else (c * p, cg * p, p, 1)
    dims = (ctypes.c_int64 * 8)(n, groups, cg, p, *strides)
    _call_kernel(fn, x, pointers, dims, params, "LRN")


def _lrn_forward(
    x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int, inplace: bool = False
):
    """b = a * (k + alpha * window_sum(a**2)) ** -beta, chunk by chunk; into x itself
    when ``inplace`` (both paths read a whole chunk before writing any of it)."""
    fmt = _memory_format(x)
    b = x if inplace else torch.empty_like(x, memory_format=fmt)
    if x.numel() == 0:
        return b
    lib = _kernel(x)
    if lib is not None:
        params = (size, alpha, beta, k)
        _run_kernel(lib.alexnet_lrn_forward, x, groups, [x.data_ptr(), b.data_ptr()], params)
        return b
    xv, bv = _towers(x, groups), _towers(b, groups)

    def body(sc: _Scratch, ns: slice, ps: slice) -> None:
        a = _as_acc(sc.a, xv[ns, :, :, ps])
        _, s = _chunk_denominator(sc, a, size, alpha, beta)
        if sc.a is None:
            torch.mul(a, s, out=bv[ns, :, :, ps])
        else:
            bv[ns, :, :, ps].copy_(s.mul_(a))  # rounded to b's dtype

    _for_each_chunk(x, lambda c: _Scratch(x, c, groups, size, k, backward=False), body)
    return b


def _lrn_backward(
    x: Tensor, g: Tensor, size: int, alpha: float, beta: float, k: float, groups: int
) -> Tensor:
    """dL/da = g * s - 2 * alpha * beta * a * window_sum^T(g * b / d), s = d**-beta,
    b = a * s, recomputing d and s per chunk in cache (only the input is saved)."""
    fmt = _memory_format(x)
    grad = torch.empty_like(x, memory_format=fmt)
    if x.numel() == 0:
        return grad
    g = g.contiguous(memory_format=fmt)
    lib = _kernel(x)
    if lib is not None:
        ptrs = [x.data_ptr(), g.data_ptr(), grad.data_ptr()]
        _run_kernel(lib.alexnet_lrn_backward, x, groups, ptrs, (size, alpha, beta, k))
        return grad
    xv, rv = _towers(x, groups), _towers(grad, groups)
    gv = _towers(g, groups)
    hi = size - 1 - (size - 1) // 2  # the transposed window is mirrored: pad hi first

    def body(sc: _Scratch, ns: slice, ps: slice) -> None:
        a = _as_acc(sc.a, xv[ns, :, :, ps])
        m, pl = a.shape[0], a.shape[3]
        d, s = _chunk_denominator(sc, a, size, alpha, beta)
        t = torch.mul(_as_acc(sc.g, gv[ns, :, :, ps]), s, out=sc.tmp[:m, ..., :pl])  # g*d**-beta
        vp = sc.vp[:m, ..., :pl]
        torch.mul(t, a, out=vp[:, :, hi : hi + a.shape[2]]).div_(d)  # g * b / d
        u = _window_sum(vp, size, d, sc.pairs[:m, ..., :pl])  # d is free again
        if sc.a is None:
            torch.addcmul(t, a, u, value=-2.0 * alpha * beta, out=rv[ns, :, :, ps])
        else:
            rv[ns, :, :, ps].copy_(t.addcmul_(a, u, value=-2.0 * alpha * beta))

    _for_each_chunk(x, lambda c: _Scratch(x, c, groups, size, k, backward=True), body)
    return grad


class _LRNFunction(torch.autograd.Function):
    """Forward and hand-written backward of the paper's LRN.

    With d[c] = k + alpha * S[c] (S the window sum of a**2) and b = a * d**-beta:
        dL/da[i] = g[i] * d[i]**-beta
                   - 2 * alpha * beta * a[i] * sum_{j: i in window(j)} g[j] * b[j] / d[j]
    Only the input is saved (the ReLU before keeps it alive anyway): d and
    d**-beta are recomputed chunk by chunk in cache, which is cheaper than
    writing them to memory and reading them back.
    """

    @staticmethod
    def forward(
        ctx, a: Tensor, size: int, alpha: float, beta: float, k: float, groups: int
    ) -> Tensor:
        if a.requires_grad:
            ctx.save_for_backward(a)
        ctx.params = (size, alpha, beta, k, groups)
        return _lrn_forward(a, size, alpha, beta, k, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        (a,) = ctx.saved_tensors
        return _lrn_backward(a, g, *ctx.params), None, None, None, None, None


def _lrn_traceable(
    x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int = 1
) -> Tensor:
    """The same formula as plain tensor ops, for compilers and exporters: a
    padded channel axis and ``size`` shifted slices, which inductor fuses into
    one loop (an avg_pool3d formulation compiles to a slow kernel)."""
    a = x.to(_acc_dtype(x.dtype))
    sq = (a * a).unflatten(1, (groups, x.shape[1] // groups))  # (N, G, C/G, H, W)
    lo = (size - 1) // 2
    sq = torch.nn.functional.pad(sq, (0, 0, 0, 0, lo, size - 1 - lo))
    c = x.shape[1] // groups
    s = sum(sq[:, :, i : i + c] for i in range(size)).flatten(1, 2)
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
    inplace: bool = False,
) -> Tensor:
    """Functional form of :class:`LocalResponseNorm`; x: (N, C, H, W)."""
    if x.dim() != 4:
        raise ValueError(f"LocalResponseNorm expects a 4-D (N, C, H, W) tensor, got {x.dim()}-D")
    if x.shape[1] % groups:
        raise ValueError(f"{x.shape[1]} channels do not split into {groups} groups")
    a = alpha / size if alpha_over_size else alpha
    if not (x.is_contiguous() or _is_channels_last(x)):
        x = x.contiguous()
    if _tracing():
        return _lrn_traceable(x, size, a, beta, k, groups)
    if inplace and not (torch.is_grad_enabled() and x.requires_grad) and x.numel():
        # inference: no tensor to keep for backward, and no new 4-D tensor to allocate
        # (at batch 64 that is 37 MB after conv1 in bf16, each page faulted in afresh)
        return _lrn_forward(x, size, a, beta, k, groups, inplace=True)
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
