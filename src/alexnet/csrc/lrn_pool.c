/* conv1 and conv2's tail in one pass: ReLU -> LRN (§3.3) -> overlapping max-pool 3/2
 * (§3.4), forward and backward, for channels_last (N, H, W, C) float32 or bf16 tensors.
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

/* ReLU that keeps NaN (PyTorch's does; -ffast-math's max would not) */
INLINE float relu(float v) { return (v > 0.0f || is_nan(v)) ? v : 0.0f; }

/* a = relu(z) of input row (n, r) and sq = a^2 in tower rows padded by lo zeros in
 * front (stride SP = Cg + size - 1; the pads are never written). */
INLINE void load_row(const rlp_shape *s, const void *z, int64_t off, float *restrict a,
                     float *restrict sq, const int bf16, const int size) {
    const int64_t Cg = s->Cg, SP = Cg + size - 1, lo = (size - 1) / 2, nseg = s->W * s->G;
    for (int64_t sg = 0; sg < nseg; sg++) {
        float *restrict as = a + sg * Cg, *restrict q = sq + sg * SP + lo;
        for (int64_t c = 0; c < Cg; c++) {
            const float v = relu(ld(z, off + sg * Cg + c, bf16));
            as[c] = v;
            q[c] = v * v;
        }
    }
}

/* One input row's LRN, kept in a slot of the scratch: b rounded to the tensor's
 * dtype and, for the backward (keep), a = relu(z), s = d^-beta and 1/d. */
typedef struct {
    float *b, *a, *s, *inv_d;
    int64_t tag; /* n * H + r of the row held, or -1 */
} row_slot;

/* Per-thread scratch: three row slots, sq (a^2 in padded tower rows), the gradient's
 * three rows gb, and buffers of one row (t, v) or one output row (m, gv, idx). */
typedef struct {
    row_slot rows[3];
    float *gb[3], *sq, *t, *v, *m, *gv;
    int32_t *idx;
    void *mem;
} scratch;

static int scratch_init(scratch *w, const rlp_shape *s) {
    const int64_t WC = s->W * s->C, WP = s->W * s->G * (s->Cg + s->size - 1);
    const int64_t floats = 16 * WC + 2 * WP + s->C;
    float *p = calloc((size_t)floats * sizeof(float) + (size_t)s->C * sizeof(int32_t), 1);
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
    w->idx = (int32_t *)(w->gv + s->C);
    return 0;
}

/* Fills slot `r` with input row (n, r) of LRN(relu(z)). */
INLINE void row_forward(const rlp_shape *s, const void *z, int64_t n, int64_t r, row_slot *out,
                        float *restrict sq, const int bf16, const int size, const int b075,
                        const int keep) {
    const int64_t Cg = s->Cg, SP = Cg + size - 1, nseg = s->W * s->G;
    const float k = s->k, alpha = s->alpha, beta = s->beta;
    float *restrict a = out->a;
    load_row(s, z, (n * s->H + r) * s->W * s->C, a, sq, bf16, size);
    for (int64_t sg = 0; sg < nseg; sg++) {
        const float *restrict as = a + sg * Cg, *restrict q = sq + sg * SP;
        float *restrict bs = out->b + sg * Cg, *restrict ss = out->s + sg * Cg;
        float *restrict is = out->inv_d + sg * Cg;
        for (int64_t c = 0; c < Cg; c++) {
            float rr, d = k + alpha * window(q + c, 1, size);
            const float sc = inv_pow(d, beta, b075, &rr);
            bs[c] = rounded(as[c] * sc, bf16);
            if (keep) ss[c] = sc, is[c] = rr * rr;
        }
    }
}

/* dL/dz of the slot's row (n, r) from g = dL/db of that row: the LRN's backward
 * (as lrn.c's, with d^-beta and 1/d kept from the forward), times ReLU's mask. */
INLINE void row_backward(const rlp_shape *s, const row_slot *in, int64_t n, int64_t r,
                         const float *restrict g, void *gz, float *restrict t, float *restrict v,
                         const int bf16, const int size) {
    const int64_t Cg = s->Cg, SP = Cg + size - 1, nseg = s->W * s->G;
    const int64_t hi = size - 1 - (size - 1) / 2, off = (n * s->H + r) * s->W * s->C;
    const float coef = -2.0f * s->alpha * s->beta;
    for (int64_t sg = 0; sg < nseg; sg++) {
        const float *restrict as = in->a + sg * Cg, *restrict ss = in->s + sg * Cg;
        const float *restrict is = in->inv_d + sg * Cg, *restrict gs = g + sg * Cg;
        float *restrict ts = t + sg * Cg, *restrict vs = v + sg * SP + hi;
        for (int64_t c = 0; c < Cg; c++) {
            const float tc = gs[c] * ss[c]; /* g d^-beta */
            ts[c] = tc;
            vs[c] = tc * as[c] * is[c]; /* g b / d */
        }
    }
    for (int64_t sg = 0; sg < nseg; sg++) {
        const float *restrict as = in->a + sg * Cg, *restrict ts = t + sg * Cg;
        const float *restrict vs = v + sg * SP;
        for (int64_t c = 0; c < Cg; c++) {
            const float da = ts[c] + coef * as[c] * window(vs + c, 1, size);
            st(gz, off + sg * Cg + c, (as[c] > 0.0f || is_nan(as[c])) ? da : 0.0f, bf16);
        }
    }
}

/* The slot holding row (n, r), computed unless it is already there. */
INLINE row_slot *lrn_row(const rlp_shape *s, scratch *w, const void *z, int64_t n, int64_t r,
                         const int bf16, const int size, const int b075, const int keep) {
    row_slot *slot = &w->rows[r % 3];
    if (slot->tag != n * s->H + r) {
        row_forward(s, z, n, r, slot, w->sq, bf16, size, b075, keep);
        slot->tag = n * s->H + r;
    }
    return slot;
}

/* keep v over m when it is larger or NaN: PyTorch's max-pool comparison */
INLINE int takes_over(float v, float m) { return v > m || is_nan(v); }

INLINE void forward_units(const rlp_shape *s, const void *z, void *p, int64_t u0, int64_t u1,
                          scratch *w, const int bf16, const int size, const int b075) {
    const int64_t C = s->C, WC = s->W * C;
    for (int64_t u = u0; u < u1; u++) {
        const int64_t n = u / s->PH, ph = u % s->PH, r0 = 2 * ph;
        const float *restrict b0 = lrn_row(s, w, z, n, r0, bf16, size, b075, 0)->b;
        const float *restrict b1 = lrn_row(s, w, z, n, r0 + 1, bf16, size, b075, 0)->b;
        const float *restrict b2 = lrn_row(s, w, z, n, r0 + 2, bf16, size, b075, 0)->b;
        float *restrict m = w->m;
        for (int64_t i = 0; i < WC; i++) { /* max over the window's three rows ... */
            float x = b0[i];
            x = takes_over(b1[i], x) ? b1[i] : x;
            m[i] = takes_over(b2[i], x) ? b2[i] : x;
        }
        const int64_t off = u * s->PW * C;
        for (int64_t pw = 0; pw < s->PW; pw++) { /* ... then over its three columns */
            const float *restrict m0 = m + 2 * pw * C;
            for (int64_t c = 0; c < C; c++) {
                float x = m0[c];
                x = takes_over(m0[C + c], x) ? m0[C + c] : x;
                x = takes_over(m0[2 * C + c], x) ? m0[2 * C + c] : x;
                st(p, off + pw * C + c, x, bf16);
            }
        }
    }
}

/* Adds output row (n, ph)'s gradient gp to gb at each window's first maximum. */
INLINE void scatter_row(const rlp_shape *s, scratch *w, const float *const rows[3],
                        float *const grows[3], const void *gp, int64_t goff, const int bf16) {
    const int64_t C = s->C;
    int32_t *restrict idx = w->idx;
    float *restrict gv = w->gv;
    for (int64_t pw = 0; pw < s->PW; pw++) {
        const int64_t col = 2 * pw * C;
        const float *restrict p0 = rows[0] + col, *restrict p3 = rows[1] + col;
        const float *restrict p6 = rows[2] + col;
        for (int64_t c = 0; c < C; c++) { /* row-major scan, as PyTorch's; vectorised */
            float x = p0[c];
            int32_t at = 0;
#define SCAN(q, y)                          \
    do {                                    \
        const float v_ = (y);               \
        const int up_ = takes_over(v_, x);  \
        x = up_ ? v_ : x;                   \
        at = up_ ? (q) : at;                \
    } while (0)
            SCAN(1, p0[C + c]);
            SCAN(2, p0[2 * C + c]);
            SCAN(3, p3[c]);
            SCAN(4, p3[C + c]);
            SCAN(5, p3[2 * C + c]);
            SCAN(6, p6[c]);
            SCAN(7, p6[C + c]);
            SCAN(8, p6[2 * C + c]);
#undef SCAN
            idx[c] = at;
            gv[c] = ld(gp, goff + pw * C + c, bf16);
        }
        for (int32_t ij = 0; ij < 9; ij++) {
            float *restrict dst = grows[ij / 3] + col + (ij % 3) * C;
            for (int64_t c = 0; c < C; c++) dst[c] += (idx[c] == ij) ? gv[c] : 0.0f;
        }
    }
}

INLINE void backward_samples(const rlp_shape *s, const void *z, const void *gp, void *gz,
                             int64_t n0, int64_t n1, scratch *w, const int bf16, const int size,
                             const int b075) {
    const int64_t WC = s->W * s->C, last = 2 * s->PH; /* the last input row in a window */
    for (int64_t n = n0; n < n1; n++) {
        for (int64_t ph = 0; ph < s->PH; ph++) {
            const int64_t r0 = 2 * ph;
            const row_slot *slots[3];
            const float *rows[3];
            float *grows[3];
            for (int i = 0; i < 3; i++) {
                slots[i] = lrn_row(s, w, z, n, r0 + i, bf16, size, b075, 1);
                rows[i] = slots[i]->b;
                grows[i] = w->gb[(r0 + i) % 3];
                if (i > 0 || ph == 0) memset(grows[i], 0, (size_t)WC * sizeof(float));
            }
            scatter_row(s, w, rows, grows, gp, (n * s->PH + ph) * s->PW * s->C, bf16);
            for (int i = 0; i < 2; i++) /* rows r0, r0 + 1 have all their gradient */
                row_backward(s, slots[i], n, r0 + i, grows[i], gz, w->t, w->v, bf16, size);
        }
        row_backward(s, &w->rows[last % 3], n, last, w->gb[last % 3], gz, w->t, w->v, bf16,
                     size);
        const size_t esize = bf16 ? 2 : 4; /* rows below the last window: no gradient */
        const int64_t below = (n * s->H + last + 1) * WC, end = (n + 1) * s->H * WC;
        memset((char *)gz + below * esize, 0, (size_t)(end - below) * esize);
    }
}

/* dims: N, H, W, G, Cg (the tensor is (N, H, W, G * Cg) in memory, channels_last). */
static int fill(rlp_shape *s, const int64_t *dims, int size, double alpha, double beta,
                double k) {
    s->N = dims[0], s->H = dims[1], s->W = dims[2], s->G = dims[3], s->Cg = dims[4];
    s->C = s->G * s->Cg, s->PH = (s->H - 3) / 2 + 1, s->PW = (s->W - 3) / 2 + 1;
    s->size = size, s->alpha = (float)alpha, s->beta = (float)beta, s->k = (float)k;
    return (s->H >= 3 && s->W >= 3 && size >= 1) ? 0 : -1;
}

/* Entry points. dtype: 0 float32, 1 bf16. z: the conv output; p: (N, PH, PW, C) pooled
 * output; gp its gradient; gz: dL/dz (every element written). Threads as lrn.c's.
 * Returns 0, -1 for bad dims, -2 out of memory. */
int alexnet_relu_lrn_pool_forward(int dtype, const void *z, void *p, const int64_t *dims,
                                  int size, double alpha, double beta, double k, int threads) {
    rlp_shape shape, *s = &shape;
    if (fill(s, dims, size, alpha, beta, k)) return -1;
    int rc = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(min : rc)
    {
        int64_t u0, u1;
        share(s->N * s->PH, &u0, &u1);
        scratch w;
        rc = scratch_init(&w, s);
        if (!rc && u0 < u1) {
#define FWD(B, S, F) forward_units(s, z, p, u0, u1, &w, B, S, F)
            DISPATCH(FWD);
        }
        if (!rc) free(w.mem);
    }
    return rc;
}

int alexnet_relu_lrn_pool_backward(int dtype, const void *z, const void *gp, void *gz,
                                   const int64_t *dims, int size, double alpha, double beta,
                                   double k, int threads) {
    rlp_shape shape, *s = &shape;
    if (fill(s, dims, size, alpha, beta, k)) return -1;
    int rc = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(min : rc)
    {
        int64_t n0, n1;
        share(s->N, &n0, &n1);
        scratch w;
        rc = scratch_init(&w, s);
        if (!rc && n0 < n1) {
#define BWD(B, S, F) backward_samples(s, z, gp, gz, n0, n1, &w, B, S, F)
            DISPATCH(BWD);
        }
        if (!rc) free(w.mem);
    }
    return rc;
}
