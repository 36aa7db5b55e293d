"""The LRN as chunked PyTorch ops, for the CPU where the C kernel does not run (float64,
float16, no C compiler, ``ALEXNET_LRN_KERNEL=torch``), 1.5-2x slower than the kernel.

Every step of the LRN is memory-bound, so this path works in chunks that stay in cache
and writes each result into a scratch buffer: ``k/n + alpha * a**2`` goes between
``n - 1`` channels of padding worth ``k/n``, so the window sum is three adds of shifted
slices for n=5 (pairs first), d**-0.75 is ``rsqrt(d) * sqrt(rsqrt(d))`` (3x faster than
``pow``), and the output is rounded to the input's dtype as it is stored. The backward
recomputes d per chunk in cache, which costs less than writing d to memory and reading
it back. PyTorch's intra-op threads take chunks in turn, each running its ops alone
(``_serial_workers``): with OpenMP splitting every small op instead, each op ends in a
barrier, and on a busy shared CPU a barrier waits for a preempted thread (a training
step of the paper's model took 15 s that way and 3.8 s this way). bf16/fp16 inputs are
converted into float32 scratch buffers and back explicitly (ops mixing dtypes would
allocate a temporary each).
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from ._kernel import is_channels_last
from .formula import acc_dtype

__all__ = ["lrn_backward_chunked", "lrn_forward_chunked"]

# Elements per chunk: 2 MiB of float32, so the six scratch buffers of a chunk stay in cache.
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


def _towers(x: Tensor, groups: int) -> Tensor:
    """(N, C, H, W) -> (N, groups, C/groups, H*W) view, in either memory format."""
    n, c, h, w = x.shape
    if is_channels_last(x):
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
        self.cl = is_channels_last(x)
        m, c, p = chunk[0].stop - chunk[0].start, x.shape[1], chunk[1].stop - chunk[1].start
        self.shape = (m, groups, c // groups, p)
        acc = acc_dtype(x.dtype)
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


def lrn_forward_chunked(
    x: Tensor, out: Tensor, size: int, alpha: float, beta: float, k: float, groups: int
) -> None:
    """out = x * (k + alpha * window_sum(x**2)) ** -beta; out may be x itself (each
    chunk is read whole before any of it is written)."""
    xv, bv = _towers(x, groups), _towers(out, groups)

    def body(sc: _Scratch, ns: slice, ps: slice) -> None:
        a = _as_acc(sc.a, xv[ns, :, :, ps])
        _, s = _chunk_denominator(sc, a, size, alpha, beta)
        if sc.a is None:
            torch.mul(a, s, out=bv[ns, :, :, ps])
        else:
            bv[ns, :, :, ps].copy_(s.mul_(a))  # rounded to b's dtype

    _for_each_chunk(x, lambda c: _Scratch(x, c, groups, size, k, backward=False), body)


def lrn_backward_chunked(
    x: Tensor, g: Tensor, grad: Tensor, size: int, alpha: float, beta: float, k: float, groups: int
) -> None:
    """grad = g * s - 2 * alpha * beta * x * window_sum^T(g * b / d), s = d**-beta,
    b = x * s; g and grad in x's memory format."""
    xv, rv, gv = _towers(x, groups), _towers(grad, groups), _towers(g, groups)
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
