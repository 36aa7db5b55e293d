/* The paper's local response normalisation (§3.3), forward and backward, fused.
 *
 *   d[c] = k + alpha * sum_{c' in window(c)} a[c']^2     window: c-lo .. c+hi, clipped
 *   b[c] = a[c] * d[c]^-beta
 *   da[i] = g[i] * d[i]^-beta - 2 alpha beta a[i] * sum_{j: i in window(j)} g[j] b[j] / d[j]
 *
 * One pass over memory each way: the forward reads a and writes b, the backward reads
 * a and g and writes da; d is recomputed in the backward (cheaper than storing it).
 * Everything in between stays in small scratch buffers in float32; bf16 tensors are
 * converted on load and rounded (to nearest even) on store.
 *
 * Layout: x is (N, G, Cg, P) with element (n, g, c, p) at n*sN + g*sG + c*sC + p*sP.
 *   sP == 1 (NCHW): a unit is one (n, g) and a block of up to BLOCK contiguous
 *       positions; loops run over channels outside and positions inside.
 *   sC == 1, sG == Cg, sP == G*Cg (channels_last): a unit is one (n, p), whose
 *       G towers of Cg channels are contiguous; each tower is copied into a row
 *       padded with zeros, so the windows stop at its edges with no special case.
 * The entry points share the units out between OpenMP threads. An element's result
 * does not depend on the split (deterministic for any number of threads).
 *
 * Speed: python benchmarks/bench_lrn.py (forward+backward of 64x96x55x55, 2-core
 * AMD EPYC with AVX-512) gives 13x torch.nn.LocalResponseNorm in NCHW float32, 16x in
 * channels_last float32 and 24x in channels_last bf16.
 *
 * Built by alexnet/ops/_loader.py with the system C compiler and loaded with ctypes;
 * without one, alexnet/nn.py runs the same formula as PyTorch ops. No Python or
 * PyTorch headers: the interface is plain C.
 */
#include "kernels.h"

#define BLOCK 256      /* NCHW: positions per unit */
#define CL_CHUNK 4096  /* channels_last: elements per chunk (about), in L1 */

typedef struct {
    int64_t N, G, Cg, P, sN, sG, sC, sP;
    int size;
    float alpha, beta, k;
} lrn_shape;

/* ---------------- NCHW ---------------- */

/* Unit u's block: a[c][i] = x and sq[lo + c][i] = x^2 for its B positions (returned
 * through *B); the return value is the block's offset in x. */
INLINE int64_t nchw_load(const lrn_shape *s, const void *x, int64_t u, int64_t nblocks,
                         int64_t lo, float *a, float *sq, int64_t *B, const int bf16) {
    const int64_t ng = u / nblocks, p0 = (u % nblocks) * BLOCK;
    const int64_t base = (ng / s->G) * s->sN + (ng % s->G) * s->sG + p0;
    const int64_t nb = (s->P - p0 < BLOCK) ? s->P - p0 : BLOCK;
    *B = nb;
    for (int64_t c = 0; c < s->Cg; c++) {
        float *ac = a + c * BLOCK, *sqc = sq + (lo + c) * BLOCK;
        const int64_t off = base + c * s->sC;
        for (int64_t i = 0; i < nb; i++) {
            float v = ld(x, off + i, bf16);
            ac[i] = v;
            sqc[i] = v * v;
        }
    }
    return base;
}

INLINE void nchw_forward(const lrn_shape *s, const void *x, void *y, int64_t u0, int64_t u1,
                         float *buf, const int bf16, const int size, const int b075) {
    const int64_t Cg = s->Cg, lo = (size - 1) / 2;
    const int64_t nblocks = (s->P + BLOCK - 1) / BLOCK;
    const float k = s->k, alpha = s->alpha, beta = s->beta;
    float *a = buf, *sq = a + Cg * BLOCK;
    for (int64_t u = u0; u < u1; u++) {
        int64_t B;
        const int64_t base = nchw_load(s, x, u, nblocks, lo, a, sq, &B, bf16);
        for (int64_t c = 0; c < Cg; c++) {
            const float *ac = a + c * BLOCK, *q = sq + c * BLOCK;
            const int64_t off = base + c * s->sC;
            for (int64_t i = 0; i < B; i++) {
                float r, d = k + alpha * window(q + i, BLOCK, size);
                st(y, off + i, ac[i] * inv_pow(d, beta, b075, &r), bf16);
            }
        }
    }
}

INLINE void nchw_backward(const lrn_shape *s, const void *x, const void *gy, void *gx, int64_t u0,
                          int64_t u1, float *buf, const int bf16, const int size, const int b075) {
    const int64_t Cg = s->Cg, lo = (size - 1) / 2, hi = size - 1 - lo, W = Cg + size - 1;
    const int64_t nblocks = (s->P + BLOCK - 1) / BLOCK;
    const float k = s->k, alpha = s->alpha, beta = s->beta, coef = -2.0f * alpha * beta;
    float *a = buf, *sq = a + Cg * BLOCK, *t = sq + W * BLOCK, *v = t + Cg * BLOCK;
    for (int64_t u = u0; u < u1; u++) {
        int64_t B;
        const int64_t base = nchw_load(s, x, u, nblocks, lo, a, sq, &B, bf16);
        for (int64_t c = 0; c < Cg; c++) {
            const float *ac = a + c * BLOCK, *q = sq + c * BLOCK;
            float *tc = t + c * BLOCK, *vc = v + (hi + c) * BLOCK;
            const int64_t off = base + c * s->sC;
            for (int64_t i = 0; i < B; i++) {
                float r, d = k + alpha * window(q + i, BLOCK, size);
                float ts = ld(gy, off + i, bf16) * inv_pow(d, beta, b075, &r); /* g d^-beta */
                tc[i] = ts;
                vc[i] = ts * ac[i] * (r * r); /* g b / d */
            }
        }
        for (int64_t c = 0; c < Cg; c++) {
            const float *ac = a + c * BLOCK, *tc = t + c * BLOCK, *q = v + c * BLOCK;
            const int64_t off = base + c * s->sC;
            for (int64_t i = 0; i < B; i++)
                st(gx, off + i, tc[i] + coef * ac[i] * window(q + i, BLOCK, size), bf16);
        }
    }
}

/* ---------------- channels_last ---------------- */

/* A unit is one (n, p): its G towers of Cg channels lie one after the other in memory,
 * and each tower is a segment normalised on its own. Segments are copied into scratch
 * rows of SP = Cg + size - 1 floats whose pads stay zero (the caller zeroes the
 * buffer once), so every window is a plain sum of `size` neighbours, clipped at the
 * tower's edges by the zeros, and all loops vectorise. A chunk of R units is loaded
 * whole before any of it is computed: loads of a row just stored would wait for the
 * stores (failed store-to-load forwarding made a one-segment-at-a-time loop 2x
 * slower), and y may be x (in-place inference). */
/* a = the chunk's nseg segments of Cg values from x at off, and sq[sg SP + lo + c] = a^2 */
INLINE void cl_load(const void *x, int64_t off, int64_t nseg, int64_t Cg, int64_t lo, int64_t SP,
                    float *restrict a, float *restrict sq, const int bf16) {
    for (int64_t sg = 0; sg < nseg; sg++) {
        float *restrict as = a + sg * Cg, *restrict q = sq + sg * SP + lo;
        for (int64_t c = 0; c < Cg; c++) {
            const float v = ld(x, off + sg * Cg + c, bf16);
            as[c] = v;
            q[c] = v * v;
        }
    }
}

INLINE void cl_forward(const lrn_shape *s, const void *x, void *y, int64_t u0, int64_t u1,
                       float *restrict buf, int64_t R, const int bf16, const int size,
                       const int b075) {
    const int64_t Cg = s->Cg, G = s->G, lo = (size - 1) / 2, SP = Cg + size - 1;
    const float k = s->k, alpha = s->alpha, beta = s->beta;
    float *restrict a = buf, *restrict sq = a + R * G * Cg; /* sq[sg SP + lo + c] = a^2 */
    for (int64_t c0 = u0; c0 < u1; c0 += R) {
        const int64_t nseg = ((u1 - c0 < R) ? u1 - c0 : R) * G, off = c0 * G * Cg;
        cl_load(x, off, nseg, Cg, lo, SP, a, sq, bf16);
        for (int64_t sg = 0; sg < nseg; sg++) {
            const float *restrict as = a + sg * Cg, *restrict q = sq + sg * SP;
            for (int64_t c = 0; c < Cg; c++) {
                float r, d = k + alpha * window(q + c, 1, size);
                st(y, off + sg * Cg + c, as[c] * inv_pow(d, beta, b075, &r), bf16);
            }
        }
    }
}

INLINE void cl_backward(const lrn_shape *s, const void *x, const void *gy, void *gx, int64_t u0,
                        int64_t u1, float *restrict buf, int64_t R, const int bf16, const int size,
                        const int b075) {
    const int64_t Cg = s->Cg, G = s->G, lo = (size - 1) / 2, hi = size - 1 - lo;
    const int64_t SP = Cg + size - 1, n = R * G * Cg;
    const float k = s->k, alpha = s->alpha, beta = s->beta, coef = -2.0f * alpha * beta;
    /* sq[sg SP + lo + c] = a^2; v[sg SP + hi + c] = g b / d (the transposed window of
     * element c covers c - hi .. c + lo, so it is v[sg SP + c .. + size - 1]) */
    float *restrict a = buf, *restrict t = a + n, *restrict sq = t + n;
    float *restrict v = sq + R * G * SP;
    for (int64_t c0 = u0; c0 < u1; c0 += R) {
        const int64_t nseg = ((u1 - c0 < R) ? u1 - c0 : R) * G, off = c0 * G * Cg;
        cl_load(x, off, nseg, Cg, lo, SP, a, sq, bf16);
        for (int64_t sg = 0; sg < nseg; sg++) {
            const float *restrict as = a + sg * Cg, *restrict q = sq + sg * SP;
            float *restrict ts = t + sg * Cg, *restrict vs = v + sg * SP + hi;
            for (int64_t c = 0; c < Cg; c++) {
                float r, d = k + alpha * window(q + c, 1, size);
                const float tc = ld(gy, off + sg * Cg + c, bf16) * inv_pow(d, beta, b075, &r);
                ts[c] = tc;                   /* g d^-beta */
                vs[c] = tc * as[c] * (r * r); /* g b / d */
            }
        }
        for (int64_t sg = 0; sg < nseg; sg++) {
            const float *restrict as = a + sg * Cg, *restrict ts = t + sg * Cg;
            const float *restrict vs = v + sg * SP;
            for (int64_t c = 0; c < Cg; c++)
                st(gx, off + sg * Cg + c, ts[c] + coef * as[c] * window(vs + c, 1, size), bf16);
        }
    }
}

/* ---------------- dispatch ---------------- */

static int64_t cl_rows(int64_t C) { /* units per channels_last chunk */
    const int64_t R = CL_CHUNK / C;
    return R > 0 ? R : 1;
}

static int fill_shape(lrn_shape *s, const int64_t *dims, int size, double alpha, double beta,
                      double k) {
    s->N = dims[0], s->G = dims[1], s->Cg = dims[2], s->P = dims[3];
    s->sN = dims[4], s->sG = dims[5], s->sC = dims[6], s->sP = dims[7];
    s->size = size, s->alpha = (float)alpha, s->beta = (float)beta, s->k = (float)k;
    if (s->sP == 1) return 0;
    if (s->sC == 1 && s->sG == s->Cg && s->sP == s->G * s->Cg && s->sN == s->P * s->sP) return 1;
    return -1;
}

/* Work units of the (N, G, Cg, P) view described by dims: N, G, Cg, P, sN, sG, sC,
 * sP (element strides). */
static int64_t num_units(const int64_t *dims) {
    if (dims[7] == 1) return dims[0] * dims[1] * ((dims[3] + BLOCK - 1) / BLOCK);
    return dims[0] * dims[3];
}

/* CALL(bf16, size, b075) with compile-time constants for the paper's case (size 5,
 * beta 0.75) in either dtype; needs `dtype`, `size` and the shape pointer `s`. */
#define DISPATCH(CALL)                                                        \
    do {                                                                      \
        const int b075 = s->beta == 0.75f;                                    \
        if (dtype == 1 && size == 5 && b075) CALL(1, 5, 1);                   \
        else if (dtype == 0 && size == 5 && b075) CALL(0, 5, 1);              \
        else if (dtype == 1) CALL(1, size, b075);                             \
        else CALL(0, size, b075);                                             \
    } while (0)

/* One thread's share: units [u0, u1), with its own zeroed scratch buffer. */
static int forward_range(int dtype, const lrn_shape *s, int cl, const void *x, void *y,
                         int64_t u0, int64_t u1) {
    const int size = s->size;
    const int64_t W = s->Cg + size - 1, R = cl_rows(s->G * s->Cg);
    float *buf = calloc((size_t)((s->Cg + W) * (cl ? R * s->G : BLOCK)), sizeof(float));
    if (!buf) return -2;
#define FWD(B, S, F)                                                  \
    (cl ? cl_forward(s, x, y, u0, u1, buf, R, B, S, F)                \
        : nchw_forward(s, x, y, u0, u1, buf, B, S, F))
    DISPATCH(FWD);
    free(buf);
    return 0;
}

static int backward_range(int dtype, const lrn_shape *s, int cl, const void *x, const void *gy,
                          void *gx, int64_t u0, int64_t u1) {
    const int size = s->size;
    const int64_t W = s->Cg + size - 1, R = cl_rows(s->G * s->Cg);
    float *buf = calloc((size_t)((2 * s->Cg + 2 * W) * (cl ? R * s->G : BLOCK)), sizeof(float));
    if (!buf) return -2;
#define BWD(B, S, F)                                                  \
    (cl ? cl_backward(s, x, gy, gx, u0, u1, buf, R, B, S, F)          \
        : nchw_backward(s, x, gy, gx, u0, u1, buf, B, S, F))
    DISPATCH(BWD);
    free(buf);
    return 0;
}

/* 1 when built with OpenMP (threads > 1 are used), else 0. */
int alexnet_lrn_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* The entry points. dtype: 0 float32, 1 bf16; dims as num_units. Units are shared out
 * between `threads` OpenMP threads: PyTorch's own pool when both use the same libgomp
 * (alexnet/ops/_loader.py links it so), whose threads would otherwise spin-wait beside
 * ours after each PyTorch op. An element's result does not depend on the split.
 * Returns 0, -1 for a layout that is neither NCHW nor channels_last, -2 out of memory. */
static int run(int dtype, const void *x, const void *gy, void *out, const int64_t *dims,
               int size, double alpha, double beta, double k, int threads) {
    lrn_shape s;
    const int cl = fill_shape(&s, dims, size, alpha, beta, k);
    if (cl < 0) return -1;
    const int64_t units = num_units(dims);
    int rc = 0;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(min : rc)
    {
        int64_t u0, u1;
        share(units, &u0, &u1);
        rc = gy ? backward_range(dtype, &s, cl, x, gy, out, u0, u1)
                : forward_range(dtype, &s, cl, x, out, u0, u1);
    }
    return rc;
}

int alexnet_lrn_forward(int dtype, const void *x, void *y, const int64_t *dims, int size,
                        double alpha, double beta, double k, int threads) {
    return run(dtype, x, NULL, y, dims, size, alpha, beta, k, threads);
}

int alexnet_lrn_backward(int dtype, const void *x, const void *gy, void *gx, const int64_t *dims,
                         int size, double alpha, double beta, double k, int threads) {
    return run(dtype, x, gy, gx, dims, size, alpha, beta, k, threads);
}
