"""The LRN and the fused ReLU -> LRN -> max-pool 3/2 as Triton kernels: the CUDA
implementation of the custom ops ``torch.ops.alexnet.*`` (``alexnet.ops.select`` picks it
for CUDA tensors in float32, bf16 and float16), and reachable directly, autograd-aware:

    alexnet.ops.triton.lrn(x, size, alpha, beta, k, groups)
    alexnet.ops.triton.relu_lrn_pool(z, alpha, k, groups)

Importing this module imports triton (``import alexnet`` does not: the custom ops import
it on the first CUDA tensor they see). The kernels (``kernels.py``) read each element
once and write it once forward; the backward reads the input and the incoming gradient,
writes one gradient, and recomputes the denominator (and the pool's argmax) instead of
saving them. Under ``TRITON_INTERPRET=1`` (set before this module is imported) they run
on CPU tensors in Triton's interpreter: that is how ``tests/ops/test_triton.py`` checks
them without a GPU.

Launch parameters that a GPU must settle (``benchmarks/bench_triton.py`` prints GB/s, and
with ``--sweep`` times the choices): ``TILE`` (elements of an LRN program's tile), ``ROWS``
(output rows per program of the fused tail), ``WARPS`` (warps per program), and
``SAVE_ARGMAX`` (recompute the pool's argmax in the backward, or store it as int8).
"""

from __future__ import annotations

import contextlib

import torch
import triton
from torch import Tensor

from alexnet.ops._kernel import dense, memory_format
from alexnet.ops.lrn import check_input

from . import kernels

__all__ = [
    "DTYPES",
    "lrn",
    "lrn_config",
    "pool_config",
    "lrn_backward",
    "lrn_forward",
    "relu_lrn_pool",
    "relu_lrn_pool_backward",
    "relu_lrn_pool_forward",
]

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
TILE = 4096  # elements (channels x positions) of one LRN program's tile
ROWS = 4  # output rows per program of the fused tail (a program re-reads one input row)
WARPS: int | None = None  # warps per program; None: by the tile's size (``_warps``)
# The fused tail's backward finds each window's maximum again from z (the custom op's way:
# it saves only z). SAVE_ARGMAX: ``relu_lrn_pool`` here also stores it as int8 beside the
# output (a byte per window: an eighth of z's bytes in bf16, a sixteenth in float32) and
# the backward reads it, computing two rows' LRN per window row instead of four. Which is
# faster is the GPU's to say (benchmarks/bench_triton.py times both); the custom op's
# schema would need the indices as a second output to use it.
SAVE_ARGMAX = False
POOL_SIZE, POOL_BETA = 5, 0.75  # the fused op's LRN (alexnet.ops.fused)


def _on_device(t: Tensor):
    """Launches go to t's GPU (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _warps(tile: int, scale: int = 1) -> int:
    """WARPS, or 4 up to 2048 elements a tile and 8 above, times ``scale``."""
    return WARPS if WARPS is not None else (4 if tile <= 2048 else 8) * scale


def lrn_config(shape, groups: int, size: int, beta: float) -> tuple[int, dict]:
    """(programs, the kernels' constexprs and warps) of the LRN on an (N, C, H, W) shape:
    a program holds a tower's channels (BLOCK_C, rounded up to a power of two) at BLOCK_P
    positions, TILE elements at most. FLAT (positions evenly spaced) is the caller's."""
    n, c, h, w = shape
    block_c = triton.next_power_of_2(c // groups)
    block_p = max(1, min(triton.next_power_of_2(h * w), TILE // block_c))
    blocks = triton.cdiv(h * w, block_p)
    meta = dict(SIZE=size, BETA075=beta == 0.75, BLOCK_C=block_c, BLOCK_P=block_p)
    return n * groups * blocks, dict(meta, num_warps=_warps(block_c * block_p))


def pool_config(shape, groups: int, backward: bool) -> tuple[int, dict]:
    """(programs, constexprs and warps) of the fused tail on z's (N, C, H, W) shape: a
    program holds a tower's channels and whole rows of the map (BLOCK_X >= W input
    columns, BLOCK_PW >= PW windows) for ROWS output rows; the backward runs one window
    row past the map (to write rows 2PH and 2PH + 1) and keeps its windows on the input
    columns' axis: Triton 3.8's compiler asserts on some gathers from the narrower axis
    back to the wider one (``python tests/ops/triton_compile.py``)."""
    n, c, h, w = shape
    ph, pw = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    block_c, block_x = triton.next_power_of_2(c // groups), triton.next_power_of_2(w)
    block_pw = block_x if backward else triton.next_power_of_2(pw)
    chunks = triton.cdiv(ph + 1 if backward else ph, ROWS)
    warps = _warps(block_c * block_x, 2 if backward else 1)
    meta = dict(SIZE=POOL_SIZE, BETA075=True, ROWS=ROWS)
    meta.update(BLOCK_C=block_c, BLOCK_X=block_x, BLOCK_PW=block_pw, num_warps=warps)
    return n * groups * chunks, meta


def _flat(*ts: Tensor) -> bool:
    """Positions h * W + w evenly spaced in every tensor (NCHW and channels_last are)."""
    return all(t.shape[3] == 1 or t.stride(2) == t.shape[3] * t.stride(3) for t in ts)


def lrn_forward(x: Tensor, out: Tensor, size, alpha, beta, k, groups) -> None:
    """out = lrn(x) for a 4-D x of the kernels' dtypes; out (x's shape) may be x itself."""
    if x.numel() == 0:
        return
    _, c, h, w = x.shape
    programs, meta = lrn_config(x.shape, groups, size, beta)
    with _on_device(x):
        kernels.lrn_forward_kernel[(programs,)](
            x, out, groups, c // groups, w, h * w, programs // (x.shape[0] * groups),
            *x.stride(), *out.stride(), float(alpha), float(beta), float(k),
            FLAT=_flat(x, out), **meta,
        )  # fmt: skip


def lrn_backward(x: Tensor, g: Tensor, out: Tensor, size, alpha, beta, k, groups) -> None:
    """out = dL/dx of lrn(x) given g = dL/d lrn(x) (all three of x's shape)."""
    if x.numel() == 0:
        return
    _, c, h, w = x.shape
    programs, meta = lrn_config(x.shape, groups, size, beta)
    with _on_device(x):
        kernels.lrn_backward_kernel[(programs,)](
            x, g, out, groups, c // groups, w, h * w, programs // (x.shape[0] * groups),
            *x.stride(), *g.stride(), *out.stride(), float(alpha), float(beta), float(k),
            FLAT=_flat(x, g, out), **meta,
        )  # fmt: skip


def relu_lrn_pool_forward(
    z: Tensor, out: Tensor, alpha, k, groups, argmax: Tensor | None = None
) -> None:
    """out = max_pool2d(lrn(relu(z), 5, alpha, 0.75, k, groups), 3, 2); out: the pooled
    shape. argmax (int8, out's shape), if given, gets each window's maximum's 3 * row + col."""
    if out.numel() == 0:
        return
    n, c, h, w = z.shape
    programs, meta = pool_config(z.shape, groups, backward=False)
    idx = out if argmax is None else argmax  # not touched without STORE_ARGMAX
    with _on_device(z):
        kernels.relu_lrn_pool_forward_kernel[(programs,)](
            z, out, idx, groups, c // groups, h, w, *out.shape[2:], programs // (n * groups),
            *z.stride(), *out.stride(), *idx.stride(), float(alpha), POOL_BETA, float(k),
            STORE_ARGMAX=argmax is not None, **meta,
        )  # fmt: skip


def relu_lrn_pool_backward(
    z: Tensor, g: Tensor, out: Tensor, alpha, k, groups, argmax: Tensor | None = None
) -> None:
    """out = dL/dz given g = dL/d relu_lrn_pool(z) (the pooled shape); out: z's shape.
    argmax: the forward's, or None to find each window's maximum again."""
    if z.numel() == 0:
        return
    n, c, h, w = z.shape
    programs, meta = pool_config(z.shape, groups, backward=True)
    idx = g if argmax is None else argmax  # not touched without LOAD_ARGMAX
    with _on_device(z):
        kernels.relu_lrn_pool_backward_kernel[(programs,)](
            z, g, idx, out, groups, c // groups, h, w, *g.shape[2:], programs // (n * groups),
            *z.stride(), *g.stride(), *idx.stride(), *out.stride(),
            float(alpha), POOL_BETA, float(k), LOAD_ARGMAX=argmax is not None, **meta,
        )  # fmt: skip


def _check_dtype(x: Tensor) -> None:
    if x.dtype not in DTYPES:
        raise TypeError(f"the Triton kernels take float32, bfloat16 or float16, not {x.dtype}")


class _LRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int):
        check_input(x, groups)
        _check_dtype(x)
        x = dense(x)
        out = torch.empty_like(x, memory_format=memory_format(x))
        lrn_forward(x, out, size, alpha, beta, k, groups)
        ctx.save_for_backward(x)
        ctx.params = (size, alpha, beta, k, groups)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        fmt = memory_format(x)
        out = torch.empty_like(x, memory_format=fmt)
        lrn_backward(x, grad.contiguous(memory_format=fmt), out, *ctx.params)
        return out, None, None, None, None, None


class _ReLULRNPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, alpha: float, k: float, groups: int):
        from alexnet.ops.fused import pooled_like

        _check_dtype(z)
        z = dense(z)
        out = pooled_like(z, groups)
        argmax = torch.empty_like(out, dtype=torch.int8) if SAVE_ARGMAX else None
        relu_lrn_pool_forward(z, out, alpha, k, groups, argmax)
        ctx.save_for_backward(z, argmax)
        ctx.params = (alpha, k, groups)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, argmax = ctx.saved_tensors
        fmt = memory_format(z)
        out = torch.empty_like(z, memory_format=fmt)
        g = grad.contiguous(memory_format=fmt)
        relu_lrn_pool_backward(z, g, out, *ctx.params, argmax=argmax)
        return out, None, None, None


def lrn(x: Tensor, size: int, alpha: float, beta: float, k: float, groups: int = 1) -> Tensor:
    """torch.ops.alexnet.lrn on the Triton kernels, whatever the device (a CPU tensor runs
    in the interpreter under TRITON_INTERPRET=1); differentiable once."""
    return _LRN.apply(x, size, alpha, beta, k, groups)


def relu_lrn_pool(z: Tensor, alpha: float, k: float, groups: int = 1) -> Tensor:
    """torch.ops.alexnet.relu_lrn_pool on the Triton kernels (see ``lrn``)."""
    return _ReLULRNPool.apply(z, alpha, k, groups)
