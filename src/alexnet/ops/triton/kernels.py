"""The Triton programs of the LRN (§3.3) and of ReLU -> LRN -> max-pool 3/2 (§3.4).

Each program holds every channel of one tower (BLOCK_C, the tower's count rounded up to a
power of two) for a block of positions, in float32 whatever the tensor's dtype. The
window sum over channels is a sum of ``size`` shifted copies of that tile, made on chip
with ``tl.gather`` (``_shift``): each element is read from memory once and written once,
and the backward's transposed window is the same shift of g*b/d, so nothing is loaded
twice and no denominator is stored. d**-beta is exp2(-beta * log2(d)) (the interpreter
has no libdevice.pow), or rsqrt(d) * sqrt(rsqrt(d)) for the paper's beta = 0.75.

The fused tail walks a tower's maps one output row at a time (ROWS rows per program),
with a whole row of the map in the tile: the even input columns 2j (E) and the odd ones
2j+1 (O), so a pooling window's columns are E[j], O[j] and E[j+1] (E shifted by one
column, on chip). Its backward recomputes the LRN to find each window's maximum again
(PyTorch's rule: the first maximum in row-major order, or the last NaN) and keeps
nothing but z.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _window_sum(t, FIRST: tl.constexpr, SIZE: tl.constexpr, BLOCK_C: tl.constexpr):
    """out[c] = sum of t[c - FIRST .. c - FIRST + SIZE - 1] along the channel axis (0), as
    SIZE shifted copies of the tile made on chip; channels beyond the tower are zero in
    t, and a shift past the tile brings zeros, so the window stops at the tower's edge."""
    c = tl.arange(0, BLOCK_C)
    out = tl.zeros(t.shape, tl.float32)
    for i in tl.static_range(SIZE):
        if i == FIRST:
            out += t
        else:
            src = c + (i - FIRST)
            at = tl.broadcast_to(tl.minimum(tl.maximum(src, 0), BLOCK_C - 1)[:, None], t.shape)
            out += tl.where(((src >= 0) & (src < BLOCK_C))[:, None], tl.gather(t, at, 0), 0.0)
    return out


@triton.jit
def _pow_neg(d, beta, BETA075: tl.constexpr):
    """d ** -beta."""
    if BETA075:
        r = tl.rsqrt(d)
        s = r * tl.sqrt(r)
    else:
        s = tl.exp2(-beta * tl.log2(d))
    return s


@triton.jit
def _rounded(x, dtype: tl.constexpr):
    """float32 x rounded to dtype (to nearest, ties to even), still as float32. bf16 by
    its bits: Triton's interpreter truncates a float32 -> bf16 cast, a GPU rounds."""
    if dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        out = tl.where(x != x, x, bits.to(tl.float32, bitcast=True))
    elif dtype == tl.float16:
        out = x.to(tl.float16).to(tl.float32)
    else:
        out = x
    return out


@triton.jit
def _as(x, ptr):
    """float32 x in the element type of ptr, rounded to nearest (see ``_rounded``)."""
    return _rounded(x, ptr.dtype.element_ty).to(ptr.dtype.element_ty)


@triton.jit
def _offsets(c, p, W, sC, sH, sW, FLAT: tl.constexpr):
    """Element offsets of channels c (rows) at flat positions p = h * W + w (columns)."""
    if FLAT:  # noqa: SIM108  (sH == W * sW: positions are evenly spaced)
        pos = p * sW
    else:
        pos = (p // W) * sH + (p % W) * sW
    return c[:, None] * sC + pos[None, :]


@triton.jit
def lrn_forward_kernel(
    x_ptr, out_ptr, G, Cg, W, P, n_blocks,
    xN, xC, xH, xW, oN, oC, oH, oW,
    alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """out = x * (k + alpha * window_sum(x**2)) ** -beta for one tower at BLOCK_P positions."""
    pid = tl.program_id(0)
    ng, blk = pid // n_blocks, pid % n_blocks
    n, g = (ng // G).to(tl.int64), ng % G
    c = tl.arange(0, BLOCK_C)
    p = blk * BLOCK_P + tl.arange(0, BLOCK_P)
    mask = (c < Cg)[:, None] & (p < P)[None, :]
    x_ptr += n * xN + g * Cg * xC
    out_ptr += n * oN + g * Cg * oC
    a = tl.load(x_ptr + _offsets(c, p, W, xC, xH, xW, FLAT), mask=mask, other=0.0)
    a = a.to(tl.float32)
    d = k + alpha * _window_sum(a * a, (SIZE - 1) // 2, SIZE, BLOCK_C)
    b = a * _pow_neg(d, beta, BETA075)
    tl.store(out_ptr + _offsets(c, p, W, oC, oH, oW, FLAT), _as(b, out_ptr), mask)


@triton.jit
def lrn_backward_kernel(
    x_ptr, g_ptr, out_ptr, G, Cg, W, P, n_blocks,
    xN, xC, xH, xW, gN, gC, gH, gW, oN, oC, oH, oW,
    alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """out = g * d**-beta - 2 * alpha * beta * x * window_sum^T(g * b / d)."""
    pid = tl.program_id(0)
    ng, blk = pid // n_blocks, pid % n_blocks
    n, grp = (ng // G).to(tl.int64), ng % G
    c = tl.arange(0, BLOCK_C)
    p = blk * BLOCK_P + tl.arange(0, BLOCK_P)
    mask = (c < Cg)[:, None] & (p < P)[None, :]
    x_ptr += n * xN + grp * Cg * xC
    g_ptr += n * gN + grp * Cg * gC
    out_ptr += n * oN + grp * Cg * oC
    a = tl.load(x_ptr + _offsets(c, p, W, xC, xH, xW, FLAT), mask=mask, other=0.0)
    a = a.to(tl.float32)
    g = tl.load(g_ptr + _offsets(c, p, W, gC, gH, gW, FLAT), mask=mask, other=0.0)
    g = g.to(tl.float32)
    d = k + alpha * _window_sum(a * a, (SIZE - 1) // 2, SIZE, BLOCK_C)
    t = g * _pow_neg(d, beta, BETA075)  # g * d**-beta
    v = tl.where(mask, t * a / d, 0.0)  # g * b / d
    u = _window_sum(v, SIZE - 1 - (SIZE - 1) // 2, SIZE, BLOCK_C)  # the mirrored window
    da = t - 2.0 * alpha * beta * a * u
    tl.store(out_ptr + _offsets(c, p, W, oC, oH, oW, FLAT), _as(da, out_ptr), mask)


# ---- ReLU -> LRN -> max-pool 3/2: a tile is a tower's channels x a whole row of the map


@triton.jit
def _lrn_of_relu(
    z_ptr, r, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """a = relu(z), d and s = d**-beta of input row r at columns x (zero outside the map:
    rows r < 0 or >= H, columns >= W, channels >= Cg); ReLU keeps NaN, as PyTorch's."""
    mask = (c < Cg)[:, None] & ((x < W) & (r >= 0) & (r < H))[None, :]
    z = tl.load(z_ptr + c[:, None] * zC + r * zH + x[None, :] * zW, mask=mask, other=0.0)
    z = z.to(tl.float32)
    a = tl.where((z > 0.0) | (z != z), z, 0.0)
    d = k + alpha * _window_sum(a * a, (SIZE - 1) // 2, SIZE, BLOCK_C)
    return a, d, _pow_neg(d, beta, BETA075)


@triton.jit
def _row_b(
    z_ptr, r, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """b = LRN(relu(z)) of input row r, rounded to z's dtype (as a stored LRN output
    would be), as float32."""
    a, _d, s = _lrn_of_relu(
        z_ptr, r, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k, SIZE, BETA075, BLOCK_C
    )
    return _rounded(a * s, z_ptr.dtype.element_ty)


@triton.jit
def _window_columns(b, c, j, BLOCK_X: tl.constexpr):
    """The pooling windows' three columns 2j, 2j + 1, 2j + 2 of row tile b (channels c),
    each a (channels, output columns) tile."""
    rows = c[:, None] * 0  # broadcasts a column index over the channels
    c0 = tl.gather(b, rows + tl.minimum(2 * j, BLOCK_X - 1)[None, :], 1)
    c1 = tl.gather(b, rows + tl.minimum(2 * j + 1, BLOCK_X - 1)[None, :], 1)
    c2 = tl.gather(b, rows + tl.minimum(2 * j + 2, BLOCK_X - 1)[None, :], 1)
    return c0, c1, c2


@triton.jit
def _max3(x0, x1, x2):
    """The maximum of three tiles and which one it is (0, 1, 2): the first maximum, or the
    last NaN (PyTorch's max-pool comparison: v takes over when v > m or v is NaN)."""
    take = (x1 > x0) | (x1 != x1)
    m = tl.where(take, x1, x0)
    i = tl.where(take, 1, 0)
    take = (x2 > m) | (x2 != x2)
    return tl.where(take, x2, m), tl.where(take, 2, i)


@triton.jit
def _row_max(
    z_ptr, r, x, j, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr,
):  # fmt: skip
    """max over each window's three columns of b's row r, and its column (0, 1, 2):
    (channels, output columns) tiles."""
    b = _row_b(z_ptr, r, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k, SIZE, BETA075, BLOCK_C)
    c0, c1, c2 = _window_columns(b, c, j, BLOCK_X)
    return _max3(c0, c1, c2)


@triton.jit
def relu_lrn_pool_forward_kernel(
    z_ptr, out_ptr, idx_ptr, G, Cg, H, W, PH, PW, n_chunks,
    zN, zC, zH, zW, oN, oC, oH, oW, iN, iC, iH, iW,
    alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, ROWS: tl.constexpr, STORE_ARGMAX: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr, BLOCK_PW: tl.constexpr,
):  # fmt: skip
    """Output rows [ROWS * chunk, ROWS * (chunk + 1)) of one tower of one sample; the
    column maxima of input row 2ph + 2 are kept as the next output row's first row.
    STORE_ARGMAX: each window's maximum's index 3 * row + column also, as int8."""
    pid = tl.program_id(0)
    ng, chunk = pid // n_chunks, pid % n_chunks
    n, g = (ng // G).to(tl.int64), ng % G
    z_ptr += n * zN + g * Cg * zC
    out_ptr += n * oN + g * Cg * oC
    idx_ptr += n * iN + g * Cg * iC
    c = tl.arange(0, BLOCK_C)
    x = tl.arange(0, BLOCK_X)
    j = tl.arange(0, BLOCK_PW)
    omask = (c < Cg)[:, None] & (j < PW)[None, :]
    ph0 = chunk * ROWS
    ph1 = tl.minimum(ph0 + ROWS, PH)
    top, top_at = _row_max(z_ptr, 2 * ph0, x, j, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
                           SIZE, BETA075, BLOCK_C, BLOCK_X)  # fmt: skip
    for ph in range(ph0, ph1):
        mid, mid_at = _row_max(z_ptr, 2 * ph + 1, x, j, c, H, W, Cg, zC, zH, zW, alpha, beta,
                               k, SIZE, BETA075, BLOCK_C, BLOCK_X)  # fmt: skip
        bottom, bottom_at = _row_max(z_ptr, 2 * ph + 2, x, j, c, H, W, Cg, zC, zH, zW, alpha,
                                     beta, k, SIZE, BETA075, BLOCK_C, BLOCK_X)  # fmt: skip
        m, row = _max3(top, mid, bottom)
        offs = c[:, None] * oC + ph * oH + j[None, :] * oW
        tl.store(out_ptr + offs, _as(m, out_ptr), mask=omask)
        if STORE_ARGMAX:
            col = tl.where(row == 0, top_at, tl.where(row == 1, mid_at, bottom_at))
            at = c[:, None] * iC + ph * iH + j[None, :] * iW
            tl.store(idx_ptr + at, (3 * row + col).to(tl.int8), mask=omask)
        top, top_at = bottom, bottom_at


@triton.jit
def _argmax9(b0, b1, b2, c, j, BLOCK_X: tl.constexpr):
    """Index 0..8 (3 * row + column) of each window's maximum over rows b0, b1, b2:
    PyTorch's pick, the first maximum in row-major order or the last NaN."""
    cand = _window_columns(b0, c, j, BLOCK_X) + _window_columns(b1, c, j, BLOCK_X)
    cand = cand + _window_columns(b2, c, j, BLOCK_X)
    m = cand[0]
    idx = tl.zeros(m.shape, tl.int32)
    for i in tl.static_range(1, 9):
        v = cand[i]
        take = (v > m) | (v != v)
        m = tl.where(take, v, m)
        idx = tl.where(take, i, idx)
    return idx


@triton.jit
def _unpool(go, idx, KH: tl.constexpr, c, x, BLOCK_PW: tl.constexpr):
    """dL/db of window row KH's input row at columns x: column x = 2j + kw receives
    window j's gradient go where that window's maximum is (KH, kw)."""
    rows = c[:, None] * 0  # broadcasts a column index over the channels
    m = x // 2
    g0 = tl.where(idx == 3 * KH, go, 0.0)  # to column 2j
    g1 = tl.where(idx == 3 * KH + 1, go, 0.0)  # to column 2j + 1
    g2 = tl.where(idx == 3 * KH + 2, go, 0.0)  # to column 2j + 2
    at_m = rows + tl.minimum(m, BLOCK_PW - 1)[None, :]
    at_m1 = rows + tl.minimum(tl.maximum(m - 1, 0), BLOCK_PW - 1)[None, :]
    in_m = (m < BLOCK_PW)[None, :]
    in_m1 = ((m >= 1) & (m - 1 < BLOCK_PW))[None, :]
    even = tl.where(in_m, tl.gather(g0, at_m, 1), 0.0) + tl.where(
        in_m1, tl.gather(g2, at_m1, 1), 0.0
    )
    odd = tl.where(in_m, tl.gather(g1, at_m, 1), 0.0)
    return tl.where((x % 2 == 0)[None, :], even, odd)


@triton.jit
def _row_backward(
    z_ptr, dz_ptr, r, x, gb, c, H, W, Cg, zC, zH, zW, dC, dH, dW, alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """dL/dz of input row r, given gb = dL/db there: the LRN's backward (denominator
    recomputed) times ReLU's mask (zero where relu(z) <= 0)."""
    a, d, s = _lrn_of_relu(
        z_ptr, r, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k, SIZE, BETA075, BLOCK_C
    )
    mask = (c < Cg)[:, None] & ((x < W) & (r >= 0) & (r < H))[None, :]
    t = gb * s
    v = tl.where(mask, t * a / d, 0.0)
    u = _window_sum(v, SIZE - 1 - (SIZE - 1) // 2, SIZE, BLOCK_C)
    da = t - 2.0 * alpha * beta * a * u
    da = tl.where((a > 0.0) | (a != a), da, 0.0)
    offs = c[:, None] * dC + r * dH + x[None, :] * dW
    tl.store(dz_ptr + offs, _as(da, dz_ptr), mask=mask)


@triton.jit
def relu_lrn_pool_backward_kernel(
    z_ptr, g_ptr, idx_ptr, dz_ptr, G, Cg, H, W, PH, PW, n_chunks,
    zN, zC, zH, zW, gN, gC, gH, gW, iN, iC, iH, iW, dN, dC, dH, dW,
    alpha, beta, k,
    SIZE: tl.constexpr, BETA075: tl.constexpr, ROWS: tl.constexpr, LOAD_ARGMAX: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_X: tl.constexpr, BLOCK_PW: tl.constexpr,
):  # fmt: skip
    """Input rows [2 * ROWS * chunk, 2 * ROWS * (chunk + 1)) of dL/dz for one tower of one
    sample. Window row ph sends its gradient to input rows 2ph, 2ph + 1 (complete then:
    written) and 2ph + 2 (carried to the next window row). A chunk starts one window row
    early to collect what its first input row gets from the row above; the last chunk
    runs one window row past the map (PH) to write rows 2PH and 2PH + 1. Each window's
    maximum is found again from the LRN of its three rows, or LOAD_ARGMAX: read from the
    forward's int8 indices."""
    pid = tl.program_id(0)
    ng, chunk = pid // n_chunks, pid % n_chunks
    n, grp = (ng // G).to(tl.int64), ng % G
    z_ptr += n * zN + grp * Cg * zC
    g_ptr += n * gN + grp * Cg * gC
    idx_ptr += n * iN + grp * Cg * iC
    dz_ptr += n * dN + grp * Cg * dC
    c = tl.arange(0, BLOCK_C)
    x = tl.arange(0, BLOCK_X)
    j = tl.arange(0, BLOCK_PW)
    ph0 = chunk * ROWS
    ph1 = tl.minimum(ph0 + ROWS, PH + 1)
    if not LOAD_ARGMAX:
        b0 = _row_b(z_ptr, 2 * ph0 - 2, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
                    SIZE, BETA075, BLOCK_C)  # fmt: skip
    g0 = tl.zeros((BLOCK_C, BLOCK_X), tl.float32)  # dL/db reaching row 2ph from above
    for ph in range(ph0 - 1, ph1):
        r = 2 * ph
        gmask = (c < Cg)[:, None] & ((j < PW) & (ph >= 0) & (ph < PH))[None, :]
        go = tl.load(g_ptr + c[:, None] * gC + ph * gH + j[None, :] * gW, mask=gmask, other=0.0)
        go = go.to(tl.float32)
        if LOAD_ARGMAX:
            at = c[:, None] * iC + ph * iH + j[None, :] * iW
            idx = tl.load(idx_ptr + at, mask=gmask, other=0).to(tl.int32)
        else:
            b1 = _row_b(z_ptr, r + 1, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
                        SIZE, BETA075, BLOCK_C)  # fmt: skip
            b2 = _row_b(z_ptr, r + 2, x, c, H, W, Cg, zC, zH, zW, alpha, beta, k,
                        SIZE, BETA075, BLOCK_C)  # fmt: skip
            idx = _argmax9(b0, b1, b2, c, j, BLOCK_X)
            b0 = b2
        if ph >= ph0:
            gb = g0 + _unpool(go, idx, 0, c, x, BLOCK_PW)
            _row_backward(z_ptr, dz_ptr, r, x, gb, c, H, W, Cg, zC, zH, zW, dC, dH, dW,
                          alpha, beta, k, SIZE, BETA075, BLOCK_C)  # fmt: skip
            gb = _unpool(go, idx, 1, c, x, BLOCK_PW)
            _row_backward(z_ptr, dz_ptr, r + 1, x, gb, c, H, W, Cg, zC, zH, zW, dC, dH, dW,
                          alpha, beta, k, SIZE, BETA075, BLOCK_C)  # fmt: skip
        g0 = _unpool(go, idx, 2, c, x, BLOCK_PW)
