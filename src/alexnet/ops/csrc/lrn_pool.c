/* conv1 and conv2's tail in one pass: ReLU -> LRN (§3.3) -> overlapping max-pool 3/2
 * (§3.4), forward and backward, for float32 or bf16 tensors, channels_last or NCHW.
 *
 * Run one after the other, the three layers write and read two full-size tensors in
 * the forward (ReLU in place, LRN output, pool indices in int64) and three in the
 * backward (pool's scatter, LRN's gradient, ReLU's mask); at batch 64 each is 37 MB
 * after conv1. Here the forward reads the conv output z once and writes only the
 * pooled output; the backward reads z and the pooled gradient and writes dL/dz.
 * Nothing else is kept: the backward recomputes the LRN of each input row (a row is
 * W x C values, in cache) to find each window's maximum again.
 *
 * Same results as the three layers: ReLU keeps NaN, b is rounded to the tensor's
 * dtype before the max (as a stored bf16 LRN output would be), and the gradient goes
 * to the first maximum of a window in row-major order, or its last NaN: PyTorch's
 * max-pool rule (aten/src/ATen/native/cpu/MaxPoolKernel.cpp). ReLU's gradient is
 * zero where relu(z) <= 0, as threshold_backward's.
 *
 * A row (n, r) of the tensor sits in scratch as `lines` lines of Cg channels x V
 * values each, padded with zero channels around each line for the LRN's window:
 * channels_last: a line is one (w, tower) segment and V = 1; NCHW: a line is one
 * tower and V = W, the row of one channel. Either way a line is contiguous and the
 * window is a sum of `size` values V apart, so one set of loops serves both.
 *
 * Input row r of the pool feeds output rows (r - 2) / 2 .. r / 2, so the forward
 * takes units of one output row (n, ph) and keeps the three LRN rows it last
 * computed (row 2ph + 2 is the next unit's row 2ph'), and the backward takes whole
 * samples: after output row ph, input rows 2ph and 2ph + 1 have all their gradient
 * and go through the LRN's backward, and row 2ph + 2 waits for row ph + 1.
 */
#include "kernels.h"

typedef struct {
    int64_t N, H, W, G, Cg, C, PH, PW;
    int size;
    float alpha, beta, k;
} rlp_shape;

/* Row layout in scratch (see above) and in the tensor: lines, values per channel of
 * a line (V), the tensor's stride between channels (CS), and where row (n, r) starts. */
#define LINES(s, cl) ((cl) ? (s)->W * (s)->G : (s)->G)
#define VEC(s, cl) ((cl) ? 1 : (s)->W)
#define CSTRIDE(s, cl) ((cl) ? 1 : (s)->H * (s)->W)
INLINE int64_t row_base(const rlp_shape *s, int64_t n, int64_t r, const int cl) {
    return cl ? (n * s->H + r) * s->W * s->C : n * s->C * s->H * s->W + r * s->W;
}

/* ReLU that keeps NaN (PyTorch's does; -ffast-math's max would not) */
INLINE float relu(float v) { return (v > 0.0f || is_nan(v)) ? v : 0.0f; }

/* a = relu(z) of input row (n, r), and sq = a^2 in lines padded by lo zero channels
 * in front (size - 1 in all; the pads are never written). */
INLINE void load_row(const rlp_shape *s, const void *z, int64_t n, int64_t r,
                     float *restrict a, float *restrict sq, const int bf16, const int size,
                     const int cl) {
    const int64_t Cg = s->Cg, SP = Cg + size - 1, lo = (size - 1) / 2;
    const int64_t L = LINES(s, cl), V = VEC(s, cl), CS = CSTRIDE(s, cl);
    const int64_t base = row_base(s, n, r, cl);
    for (int64_t l = 0; l < L; l++)
        for (int64_t c = 0; c < Cg; c++) {
            const int64_t t = base + (l * Cg + c) * CS;
            float *restrict as = a + (l * Cg + c) * V, *restrict q = sq + (l * SP + lo + c) * V;
            for (int64_t v = 0; v < V; v++) {
                const float x = relu(ld(z, t + v, bf16));
                as[v] = x;
                q[v] = x * x;
            }
        }
}

/* One input row's LRN, kept in a slot of the scratch: b rounded to the tensor's
 * dtype and, for the backward (keep), a = relu(z), s = d^-beta and 1/d. */
typedef struct {
    float *b, *a, *s, *inv_d;
    int64_t tag; /* n * H + r of the row held, or -1 */
} row_slot;

/* Per-thread scratch: three row slots, sq (a^2, padded lines), the gradient's three
 * rows gb, and buffers of one row (t, v) or one output row (m, gv, idx). */
typedef struct {
    row_slot rows[3];
    float *gb[3], *sq, *t, *v, *m, *gv;
    int32_t *idx;
    void *mem;
} scratch;

static int scratch_init(scratch *w, const rlp_shape *s) {
    const int64_t WC = s->W * s->C, WP = s->W * s->G * (s->Cg + s->size - 1);
    const int64_t wide = s->C > s->PW ? s->C : s->PW; /* idx, gv: one output row's run */
    const int64_t floats = 16 * WC + 2 * WP + wide;
    float *p = calloc((size_t)floats * sizeof(float) + (size_t)wide * sizeof(int32_t), 1);
    if (!p) return -2;
    w->mem = p;
    for (int i = 0; i < 3; i++) {
        row_slot *r = &w->rows[i];
        r->b = p + i * WC, r->a = p + (3 + i) * WC, r->s = p + (6 + i) * WC;
        r->inv_d = p + (9 + i) * WC, r->tag = -1;
        w->gb[i] = p + (12 + i) * WC;
    }
    w->t = p + 15 * WC, w->m = w->t; /* t: backward only, m: forward only */
    w->sq = p + 16 * WC, w->v = w->sq + WP, w->gv = w->v + WP;
    w->idx = (int32_t *)(w->gv + wide);
    return 0;
}

/* Fills slot `out` with input row (n, r) of LRN(relu(z)). */
INLINE void row_forward(const rlp_shape *s, const void *z, int64_t n, int64_t r, row_slot *out,
                        float *restrict sq, const int bf16, const int size, const int b075,
                        const int keep, const int cl) {
    const int64_t Cg = s->Cg, SP = Cg + size - 1, L = LINES(s, cl), V = VEC(s, cl);
    const int64_t E = Cg * V; /* values per line */
    const float k = s->k, alpha = s->alpha, beta = s->beta;
    load_row(s, z, n, r, out->a, sq, bf16, size, cl);
    for (int64_t l = 0; l < L; l++) {
        const float *restrict as = out->a + l * E, *restrict q = sq + l * SP * V;
        float *restrict bs = out->b + l * E, *restrict ss = out->s + l * E;
        float *restrict is = out->inv_d + l * E;
        for (int64_t e = 0; e < E; e++) {
            float rr, d = k + alpha * window(q + e, V, size);
            const float sc = inv_pow(d, beta, b075, &rr);
            bs[e] = rounded(as[e] * sc, bf16);
            if (keep) ss[e] = sc, is[e] = rr * rr;
        }
    }
}

/* dL/dz of the slot's row (n, r) from g = dL/db of that row: the LRN's backward
 * (as lrn.c's, with d^-beta and 1/d kept from the forward), times ReLU's mask. */
INLINE void row_backward(const rlp_shape *s, const row_slot *in, int64_t n, int64_t r,
                         const float *restrict g, void *gz, float *restrict t, float *restrict v,
                         const int bf16, const int size, const int cl) {
    const int64_t Cg = s->Cg, SP = Cg + size - 1, L = LINES(s, cl), V = VEC(s, cl);
    const int64_t E = Cg * V, CS = CSTRIDE(s, cl), hi = size - 1 - (size - 1) / 2;
    const int64_t base = row_base(s, n, r, cl);
    const float coef = -2.0f * s->alpha * s->beta;
    for (int64_t l = 0; l < L; l++) {
        const float *restrict as = in->a + l * E, *restrict ss = in->s + l * E;
        const float *restrict is = in->inv_d + l * E, *restrict gs = g + l * E;
        float *restrict ts = t + l * E, *restrict vs = v + (l * SP + hi) * V;
        for (int64_t e = 0; e < E; e++) {
            const float tc = gs[e] * ss[e]; /* g d^-beta */
            ts[e] = tc;
            vs[e] = tc * as[e] * is[e]; /* g b / d */
        }
    }
    for (int64_t l = 0; l < L; l++)
        for (int64_t c = 0; c < Cg; c++) {
            const int64_t e0 = l * E + c * V, to = base + (l * Cg + c) * CS;
            const float *restrict as = in->a + e0, *restrict ts = t + e0;
            const float *restrict vs = v + (l * SP + c) * V;
            for (int64_t x = 0; x < V; x++) {
                const float da = ts[x] + coef * as[x] * window(vs + x, V, size);
                st(gz, to + x, (as[x] > 0.0f || is_nan(as[x])) ? da : 0.0f, bf16);
            }
        }
}

/* The slot holding row (n, r), computed unless it is already there. */
INLINE row_slot *lrn_row(const rlp_shape *s, scratch *w, const void *z, int64_t n, int64_t r,
                         const int bf16, const int size, const int b075, const int keep,
                         const int cl) {
    row_slot *slot = &w->rows[r % 3];
    if (slot->tag != n * s->H + r) {
        row_forward(s, z, n, r, slot, w->sq, bf16, size, b075, keep, cl);
        slot->tag = n * s->H + r;
    }
    return slot;
}

/* keep v over m when it is larger or NaN: PyTorch's max-pool comparison */
INLINE int takes_over(float v, float m) { return v > m || is_nan(v); }

/* Offsets of input column x of channel ch in a scratch row, and of output (ph, pw)
 * of channel ch of sample n in the pooled tensor. */
INLINE int64_t in_at(const rlp_shape *s, int64_t x, int64_t ch, const int cl) {
    return cl ? x * s->C + ch : ch * s->W + x;
}
INLINE int64_t out_at(const rlp_shape *s, int64_t n, int64_t ph, int64_t pw, int64_t ch,
                      const int cl) {
    return cl ? ((n * s->PH + ph) * s->PW + pw) * s->C + ch
              : ((n * s->C + ch) * s->PH + ph) * s->PW + pw;
}

INLINE void forward_units(const rlp_shape *s, const void *z, void *p, int64_t u0, int64_t u1,
                          scratch *w, const int bf16, const int size, const int b075,
                          const int cl) {
    const int64_t C = s->C, WC = s->W * C, PW = s->PW;
    for (int64_t u = u0; u < u1; u++) {
        const int64_t n = u / s->PH, ph = u % s->PH, r0 = 2 * ph;
        const float *rows[3];
        for (int i = 0; i < 3; i++) /* one call site: one inlined copy of the row's LRN */
            rows[i] = lrn_row(s, w, z, n, r0 + i, bf16, size, b075, 0, cl)->b;
        const float *restrict b0 = rows[0], *restrict b1 = rows[1], *restrict b2 = rows[2];
        float *restrict m = w->m;
        for (int64_t i = 0; i < WC; i++) { /* max over the window's three rows ... */
            float x = b0[i];
            x = takes_over(b1[i], x) ? b1[i] : x;
            m[i] = takes_over(b2[i], x) ? b2[i] : x;
        }
        /* ... then over its three columns; the inner loop runs along memory */
#define POOL_COLUMNS(pw, ch)                                                   \
    do {                                                                       \
        const float *restrict m0 = m + in_at(s, 2 * (pw), ch, cl);             \
        const int64_t step = in_at(s, 1, 0, cl);                               \
        float x = m0[0];                                                       \
        x = takes_over(m0[step], x) ? m0[step] : x;                            \
        x = takes_over(m0[2 * step], x) ? m0[2 * step] : x;                    \
        st(p, out_at(s, n, ph, pw, ch, cl), x, bf16);                          \
    } while (0)
        if (cl)
            for (int64_t pw = 0; pw < PW; pw++)
                for (int64_t ch = 0; ch < C; ch++) POOL_COLUMNS(pw, ch);
        else
            for (int64_t ch = 0; ch < C; ch++)
                for (int64_t pw = 0; pw < PW; pw++) POOL_COLUMNS(pw, ch);
#undef POOL_COLUMNS
    }
}

/* Output (n, ph, pw, ch)'s window: its first maximum (0..8, row-major, as PyTorch's
 * scan) into idx[i] and its gradient into gv[i]; written out, not as a loop over the
 * nine, so that it vectorises along memory in both layouts. */
#define ARGMAX(pw, ch, i)                                                      \
    do {                                                                       \
        const int64_t o_ = in_at(s, 2 * (pw), ch, cl), st_ = in_at(s, 1, 0, cl); \
        const float *r0_ = rows[0] + o_, *r1_ = rows[1] + o_, *r2_ = rows[2] + o_; \
        float x_ = r0_[0];                                                     \
        int32_t at_ = 0;                                                       \
        SCAN(1, r0_[st_]);                                                     \
        SCAN(2, r0_[2 * st_]);                                                 \
        SCAN(3, r1_[0]);                                                       \
        SCAN(4, r1_[st_]);                                                     \
        SCAN(5, r1_[2 * st_]);                                                 \
        SCAN(6, r2_[0]);                                                       \
        SCAN(7, r2_[st_]);                                                     \
        SCAN(8, r2_[2 * st_]);                                                 \
        idx[i] = at_;                                                          \
        gv[i] = ld(gp, out_at(s, n, ph, pw, ch, cl), bf16);                    \
    } while (0)
#define SCAN(q, y)                                                             \
    do {                                                                       \
        const float y_ = (y);                                                  \
        const int up_ = takes_over(y_, x_);                                    \
        x_ = up_ ? y_ : x_;                                                    \
        at_ = up_ ? (q) : at_;                                                 \
    } while (0)

/* Adds output row (n, ph)'s gradient to gb at each window's first maximum. */
INLINE void scatter_row(const rlp_shape *s, scratch *w, const float *const rows[3],
                        float *const grows[3], const void *gp, int64_t n, int64_t ph,
                        const int bf16, const int cl) {
    const int64_t C = s->C, PW = s->PW, st_col = in_at(s, 1, 0, cl);
    int32_t *restrict idx = w->idx;
    float *restrict gv = w->gv;
    if (cl) {
        for (int64_t pw = 0; pw < PW; pw++) {
            for (int64_t ch = 0; ch < C; ch++) ARGMAX(pw, ch, ch);
            for (int32_t ij = 0; ij < 9; ij++) {
                float *restrict dst = grows[ij / 3] + in_at(s, 2 * pw, 0, cl) + (ij % 3) * st_col;
                for (int64_t ch = 0; ch < C; ch++) dst[ch] += (idx[ch] == ij) ? gv[ch] : 0.0f;
            }
        }
    } else {
        for (int64_t ch = 0; ch < C; ch++) {
            for (int64_t pw = 0; pw < PW; pw++) ARGMAX(pw, ch, pw);
            for (int32_t ij = 0; ij < 9; ij++) {
                float *restrict dst = grows[ij / 3] + in_at(s, 0, ch, cl) + (ij % 3) * st_col;
                for (int64_t pw = 0; pw < PW; pw++) dst[2 * pw] += (idx[pw] == ij) ? gv[pw] : 0.0f;
            }
        }
    }
}
#undef ARGMAX
#undef SCAN

INLINE void backward_samples(const rlp_shape *s, const void *z, const void *gp, void *gz,
                             int64_t n0, int64_t n1, scratch *w, const int bf16, const int size,
                             const int b075, const int cl) {
    const int64_t WC = s->W * s->C, last = 2 * s->PH; /* the last input row in a window */
    const size_t esize = bf16 ? 2 : 4;
    for (int64_t n = n0; n < n1; n++) {
        for (int64_t ph = 0; ph < s->PH; ph++) {
            const int64_t r0 = 2 * ph;
            const row_slot *slots[3];
            const float *rows[3];
            float *grows[3];
            for (int i = 0; i < 3; i++) {
                slots[i] = lrn_row(s, w, z, n, r0 + i, bf16, size, b075, 1, cl);
                rows[i] = slots[i]->b;
                grows[i] = w->gb[(r0 + i) % 3];
                if (i > 0 || ph == 0) memset(grows[i], 0, (size_t)WC * sizeof(float));
            }
            scatter_row(s, w, rows, grows, gp, n, ph, bf16, cl);
            /* rows r0, r0 + 1 have all their gradient now, and after the last output
             * row r0 + 2 (= last) too */
            for (int i = 0; i < (ph == s->PH - 1 ? 3 : 2); i++)
                row_backward(s, slots[i], n, r0 + i, grows[i], gz, w->t, w->v, bf16, size, cl);
        }
        const int64_t below = s->H - last - 1; /* rows in no window: no gradient */
        if (below > 0 && cl)
            memset((char *)gz + row_base(s, n, last + 1, cl) * esize, 0,
                   (size_t)(below * WC) * esize);
        else if (below > 0)
            for (int64_t ch = 0; ch < s->C; ch++)
                memset((char *)gz + (row_base(s, n, last + 1, cl) + ch * s->H * s->W) * esize,
                       0, (size_t)(below * s->W) * esize);
    }
}

/* dims: N, H, W, G, Cg, and 1 for channels_last (memory (N, H, W, C)) or 0 for NCHW. */
static int fill(rlp_shape *s, const int64_t *dims, int size, double alpha, double beta,
                double k) {
    s->N = dims[0], s->H = dims[1], s->W = dims[2], s->G = dims[3], s->Cg = dims[4];
    s->C = s->G * s->Cg, s->PH = (s->H - 3) / 2 + 1, s->PW = (s->W - 3) / 2 + 1;
    s->size = size, s->alpha = (float)alpha, s->beta = (float)beta, s->k = (float)k;
    return (s->H >= 3 && s->W >= 3 && size >= 1 && (dims[5] == 0 || dims[5] == 1)) ? 0 : -1;
}

/* Entry points. dtype: 0 float32, 1 bf16. z: the conv output; p: the (N, C, PH, PW)
 * pooled output, in z's layout; gp its gradient; gz: dL/dz (every element written).
 * Only the paper's n = 5 and beta = 0.75 (any alpha, k): with every window size and
 * beta compiled in as lrn.c has them, the library took 13 s to build instead of 5.
 * Threads as lrn.c's. Returns 0, -1 for bad dims or constants, -2 out of memory.
 * run() is the forward (gp == NULL; units are output rows) or the backward (units are
 * samples). */
static int run(int dtype, const void *z, const void *gp, void *out, const int64_t *dims,
               int size, double alpha, double beta, double k, int threads) {
    rlp_shape shape, *s = &shape;
    if (fill(s, dims, size, alpha, beta, k) || size != 5 || s->beta != 0.75f) return -1;
    const int cl = (int)dims[5];
    int rc = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(min : rc)
    {
        int64_t u0, u1;
        share(gp ? s->N : s->N * s->PH, &u0, &u1);
        scratch w;
        rc = scratch_init(&w, s);
        if (!rc && u0 < u1) {
#define RUN(B, S, F)                                                           \
    (gp ? (cl ? backward_samples(s, z, gp, out, u0, u1, &w, B, S, F, 1)         \
              : backward_samples(s, z, gp, out, u0, u1, &w, B, S, F, 0))        \
        : (cl ? forward_units(s, z, out, u0, u1, &w, B, S, F, 1)                \
              : forward_units(s, z, out, u0, u1, &w, B, S, F, 0)))
            if (dtype == 1) RUN(1, 5, 1); /* the paper's n = 5, beta = 0.75 only */
            else RUN(0, 5, 1);
        }
        if (!rc) free(w.mem);
    }
    return rc;
}

int alexnet_relu_lrn_pool_forward(int dtype, const void *z, void *p, const int64_t *dims,
                                  int size, double alpha, double beta, double k, int threads) {
    return run(dtype, z, NULL, p, dims, size, alpha, beta, k, threads);
}

int alexnet_relu_lrn_pool_backward(int dtype, const void *z, const void *gp, void *gz,
                                   const int64_t *dims, int size, double alpha, double beta,
                                   double k, int threads) {
    return run(dtype, z, gp, gz, dims, size, alpha, beta, k, threads);
}
