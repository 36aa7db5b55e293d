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
 *       G*Cg channels are contiguous, and so are consecutive units. A chunk of
 *       units is processed as one flat array: the window sums run straight across
 *       it, and the few elements within lo/hi of a tower's edge are then recomputed
 *       with the window clipped. Long loops, no per-row loop overhead.
 * Callers (alexnet/nn.py) split [0, units) into ranges, one per thread. An element's
 * result does not depend on the split (deterministic).
 *
 * Built by alexnet/_kernels.py with the system C compiler and loaded with ctypes;
 * without one, alexnet/nn.py runs the same formula as PyTorch ops. No Python or
 * PyTorch headers: the interface is plain C.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256      /* NCHW: positions per unit */
#define CL_CHUNK 4096  /* channels_last: elements per chunk (about) */
#define INLINE static inline __attribute__((always_inline))

INLINE float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

INLINE uint16_t f32_to_bf16(float f) { /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)(((u & 0x7fffffffu) > 0x7f800000u) ? ((u >> 16) | 0x40u) : r);
}

INLINE float ld(const void *p, int64_t i, const int bf16) {
    return bf16 ? bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

INLINE void st(void *p, int64_t i, float v, const int bf16) {
    if (bf16)
        ((uint16_t *)p)[i] = f32_to_bf16(v);
    else
        ((float *)p)[i] = v;
}

/* d^-beta; the paper's beta = 0.75 as 1 / (sqrt(d) * sqrt(sqrt(d))) */
INLINE float inv_pow(float d, float beta, const int b075) {
    if (b075) {
        float r = sqrtf(d);
        return 1.0f / (r * sqrtf(r));
    }
    return powf(d, -beta);
}

/* sum of q[0], q[stride], ..., q[(size-1)*stride]; size is a constant where it matters */
INLINE float window(const float *q, int64_t stride, const int size) {
    float s = 0.0f;
    for (int w = 0; w < size; w++) s += q[w * stride];
    return s;
}

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
    const int64_t Cg = s->Cg, lo = (size - 1) / 2, W = Cg + size - 1;
    const int64_t nblocks = (s->P + BLOCK - 1) / BLOCK;
    const float k = s->k, alpha = s->alpha, beta = s->beta;
    float *a = buf, *sq = a + Cg * BLOCK;
    memset(sq, 0, (size_t)(W * BLOCK) * sizeof(float));
    for (int64_t u = u0; u < u1; u++) {
        int64_t B;
        const int64_t base = nchw_load(s, x, u, nblocks, lo, a, sq, &B, bf16);
        for (int64_t c = 0; c < Cg; c++) {
            const float *ac = a + c * BLOCK, *q = sq + c * BLOCK;
            const int64_t off = base + c * s->sC;
            for (int64_t i = 0; i < B; i++) {
                float d = k + alpha * window(q + i, BLOCK, size);
                st(y, off + i, ac[i] * inv_pow(d, beta, b075), bf16);
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
    memset(sq, 0, (size_t)(W * BLOCK) * sizeof(float));
    memset(v, 0, (size_t)(W * BLOCK) * sizeof(float));
    for (int64_t u = u0; u < u1; u++) {
        int64_t B;
        const int64_t base = nchw_load(s, x, u, nblocks, lo, a, sq, &B, bf16);
        for (int64_t c = 0; c < Cg; c++) {
            const float *ac = a + c * BLOCK, *q = sq + c * BLOCK;
            float *tc = t + c * BLOCK, *vc = v + (hi + c) * BLOCK;
            const int64_t off = base + c * s->sC;
            for (int64_t i = 0; i < B; i++) {
                float d = k + alpha * window(q + i, BLOCK, size);
                float ts = ld(gy, off + i, bf16) * inv_pow(d, beta, b075); /* g d^-beta */
                tc[i] = ts;
                vc[i] = ts * ac[i] / d; /* g b / d */
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

/* Sum of q[c] for c in j - pad .. j - pad + size - 1 that lie in the row [r0, r0 + Cg),
 * with q stored at buf[c + pad] (buf padded by pad in front): the window sum of an
 * element near a tower's edge, clipped to its tower. pad is lo for the forward window
 * over a^2 and hi for the backward's transposed window over g b / d. */
INLINE float clipped(const float *buf, int64_t j, int64_t r0, int64_t Cg, int64_t pad, int size) {
    float sum = 0.0f;
    for (int w = 0; w < size; w++) {
        int64_t c = j - pad + w; /* index in the unpadded array */
        if (c >= r0 && c < r0 + Cg) sum += buf[c + pad];
    }
    return sum;
}

/* The first element at or after j of the row [r0, r0 + Cg) whose window reaches past
 * the row: within `before` of its start or `after` of its end (r0 + Cg when none). */
INLINE int64_t next_edge(int64_t j, int64_t r0, int64_t Cg, int64_t before, int64_t after) {
    return (j >= r0 + before && j < r0 + Cg - after) ? r0 + Cg - after : j;
}

INLINE void cl_forward(const lrn_shape *s, const void *x, void *y, int64_t u0, int64_t u1,
                       float *buf, int64_t R, const int bf16, const int size, const int b075) {
    const int64_t Cg = s->Cg, C = s->G * Cg, lo = (size - 1) / 2, hi = size - 1 - lo;
    const float k = s->k, alpha = s->alpha, beta = s->beta;
    float *a = buf, *sq = a + R * C; /* sq[lo + j] = a[j]^2, lo zeros before, hi after */
    for (int64_t c0 = u0; c0 < u1; c0 += R) {
        const int64_t L = ((u1 - c0 < R) ? u1 - c0 : R) * C, off = c0 * C;
        for (int i = 0; i < lo; i++) sq[i] = 0.0f;
        for (int i = 0; i < hi; i++) sq[lo + L + i] = 0.0f;
        for (int64_t j = 0; j < L; j++) {
            float v = ld(x, off + j, bf16);
            a[j] = v;
            sq[lo + j] = v * v;
        }
        for (int64_t j = 0; j < L; j++) { /* straight across the tower edges ... */
            float d = k + alpha * window(sq + j, 1, size);
            st(y, off + j, a[j] * inv_pow(d, beta, b075), bf16);
        }
        for (int64_t r0 = 0; r0 < L; r0 += Cg) { /* ... then the edges again, clipped */
            for (int64_t j = next_edge(r0, r0, Cg, lo, hi); j < r0 + Cg;
                 j = next_edge(j + 1, r0, Cg, lo, hi)) {
                float d = k + alpha * clipped(sq, j, r0, Cg, lo, size);
                st(y, off + j, a[j] * inv_pow(d, beta, b075), bf16);
            }
        }
    }
}

INLINE void cl_backward(const lrn_shape *s, const void *x, const void *gy, void *gx, int64_t u0,
                        int64_t u1, float *buf, int64_t R, const int bf16, const int size,
                        const int b075) {
    const int64_t Cg = s->Cg, C = s->G * Cg, lo = (size - 1) / 2, hi = size - 1 - lo;
    const float k = s->k, alpha = s->alpha, beta = s->beta, coef = -2.0f * alpha * beta;
    const int64_t n = R * C;
    /* sq: a^2 padded by lo in front; v: g b / d padded by hi in front (the transposed
     * window of element j covers v[j - hi .. j + lo]) */
    float *a = buf, *sq = a + n, *d = sq + n + size, *t = d + n, *v = t + n;
    for (int64_t c0 = u0; c0 < u1; c0 += R) {
        const int64_t L = ((u1 - c0 < R) ? u1 - c0 : R) * C, off = c0 * C;
        for (int i = 0; i < lo; i++) sq[i] = 0.0f;
        for (int i = 0; i < hi; i++) sq[lo + L + i] = 0.0f;
        for (int i = 0; i < hi; i++) v[i] = 0.0f;
        for (int i = 0; i < lo; i++) v[hi + L + i] = 0.0f;
        for (int64_t j = 0; j < L; j++) {
            float val = ld(x, off + j, bf16);
            a[j] = val;
            sq[lo + j] = val * val;
        }
        for (int64_t j = 0; j < L; j++) d[j] = k + alpha * window(sq + j, 1, size);
        for (int64_t r0 = 0; r0 < L; r0 += Cg)
            for (int64_t j = next_edge(r0, r0, Cg, lo, hi); j < r0 + Cg;
                 j = next_edge(j + 1, r0, Cg, lo, hi))
                d[j] = k + alpha * clipped(sq, j, r0, Cg, lo, size);
        for (int64_t j = 0; j < L; j++) {
            float ts = ld(gy, off + j, bf16) * inv_pow(d[j], beta, b075);
            t[j] = ts;
            v[hi + j] = ts * a[j] / d[j];
        }
        for (int64_t j = 0; j < L; j++)
            st(gx, off + j, t[j] + coef * a[j] * window(v + j, 1, size), bf16);
        for (int64_t r0 = 0; r0 < L; r0 += Cg) /* transposed window: j - hi .. j + lo */
            for (int64_t j = next_edge(r0, r0, Cg, hi, lo); j < r0 + Cg;
                 j = next_edge(j + 1, r0, Cg, hi, lo))
                st(gx, off + j, t[j] + coef * a[j] * clipped(v, j, r0, Cg, hi, size), bf16);
    }
}

/* ---------------- dispatch ---------------- */

static int fill_shape(lrn_shape *s, const int64_t *dims, int size, double alpha, double beta,
                      double k) {
    s->N = dims[0], s->G = dims[1], s->Cg = dims[2], s->P = dims[3];
    s->sN = dims[4], s->sG = dims[5], s->sC = dims[6], s->sP = dims[7];
    s->size = size, s->alpha = (float)alpha, s->beta = (float)beta, s->k = (float)k;
    if (s->sP == 1) return 0;
    if (s->sC == 1 && s->sG == s->Cg && s->sP == s->G * s->Cg && s->sN == s->P * s->sP) return 1;
    return -1;
}

static int64_t cl_rows(const lrn_shape *s) { /* units per channels_last chunk */
    int64_t C = s->G * s->Cg, R = CL_CHUNK / C;
    return R > 0 ? R : 1;
}

/* dims: N, G, Cg, P, sN, sG, sC, sP (element strides). The number of work units;
 * the calls below take a range [u0, u1) of them and return 0, -1 for a layout that
 * is neither NCHW nor channels_last, or -2 when out of memory. */
int64_t alexnet_lrn_num_units(const int64_t *dims) {
    if (dims[7] == 1) return dims[0] * dims[1] * ((dims[3] + BLOCK - 1) / BLOCK);
    return dims[0] * dims[3];
}

#define DISPATCH(CALL)                                                        \
    do {                                                                      \
        const int b075 = s.beta == 0.75f;                                     \
        if (dtype == 1 && size == 5 && b075) CALL(1, 5, 1);                   \
        else if (dtype == 0 && size == 5 && b075) CALL(0, 5, 1);              \
        else if (dtype == 1) CALL(1, size, b075);                             \
        else CALL(0, size, b075);                                             \
    } while (0)

int alexnet_lrn_forward(int dtype, const void *x, void *y, const int64_t *dims, int size,
                        double alpha, double beta, double k, int64_t u0, int64_t u1) {
    lrn_shape s;
    const int cl = fill_shape(&s, dims, size, alpha, beta, k);
    if (cl < 0) return -1;
    const int64_t W = s.Cg + size - 1, R = cl_rows(&s), C = s.G * s.Cg;
    const size_t floats = cl ? (size_t)(2 * R * C + size) : (size_t)((s.Cg + W) * BLOCK);
    float *buf = malloc(floats * sizeof(float));
    if (!buf) return -2;
#define FWD(B, S, F)                                                  \
    (cl ? cl_forward(&s, x, y, u0, u1, buf, R, B, S, F)               \
        : nchw_forward(&s, x, y, u0, u1, buf, B, S, F))
    DISPATCH(FWD);
    free(buf);
    return 0;
}

int alexnet_lrn_backward(int dtype, const void *x, const void *gy, void *gx, const int64_t *dims,
                         int size, double alpha, double beta, double k, int64_t u0, int64_t u1) {
    lrn_shape s;
    const int cl = fill_shape(&s, dims, size, alpha, beta, k);
    if (cl < 0) return -1;
    const int64_t W = s.Cg + size - 1, R = cl_rows(&s), C = s.G * s.Cg;
    const size_t floats =
        cl ? (size_t)(5 * R * C + 2 * size) : (size_t)((2 * s.Cg + 2 * W) * BLOCK);
    float *buf = malloc(floats * sizeof(float));
    if (!buf) return -2;
#define BWD(B, S, F)                                                  \
    (cl ? cl_backward(&s, x, gy, gx, u0, u1, buf, R, B, S, F)         \
        : nchw_backward(&s, x, gy, gx, u0, u1, buf, B, S, F))
    DISPATCH(BWD);
    free(buf);
    return 0;
}
