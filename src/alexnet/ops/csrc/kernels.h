/* Helpers shared by the LRN kernel (lrn.c) and the fused ReLU -> LRN -> max-pool
 * kernel (lrn_pool.c): bf16 conversion, loads and stores in either dtype, d^-beta, the
 * window sum, and the OpenMP split. All float32 arithmetic. */
#ifndef ALEXNET_KERNELS_H
#define ALEXNET_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

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

/* d^-beta. For the paper's beta = 0.75, rsqrt(d) * rsqrt(sqrt(d)) with sqrt(d) =
 * d * rsqrt(d): under -ffast-math 1/sqrtf is the approximate reciprocal square root
 * plus one Newton step (vrsqrt14ps on AVX-512, about 1 ulp off), where sqrtf and a
 * division are long-latency instructions (the kernel ran 3x slower with them). *r
 * returns rsqrt(d), so that 1/d = r * r costs one multiply. */
INLINE float inv_pow(float d, float beta, const int b075, float *r) {
    const float q = 1.0f / sqrtf(d);
    *r = q;
    if (b075) return q * (1.0f / sqrtf(d * q));
    return powf(d, -beta);
}

/* sum of q[0], q[stride], ..., q[(size-1)*stride]; size is a constant where it matters */
INLINE float window(const float *q, int64_t stride, const int size) {
    float s = 0.0f;
    for (int w = 0; w < size; w++) s += q[w * stride];
    return s;
}

/* NaN test on the bits: -ffast-math lets the compiler assume x == x. */
INLINE int is_nan(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x7fffffffu) > 0x7f800000u;
}

/* f rounded to bf16 and back (identity for float32): the value a bf16 tensor stores. */
INLINE float rounded(float f, const int bf16) { return bf16 ? bf16_to_f32(f32_to_bf16(f)) : f; }

/* This thread's share [*u0, *u1) of `units` inside a parallel region. */
static inline void share(int64_t units, int64_t *u0, int64_t *u1) {
#ifdef _OPENMP
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int64_t t = 0, nt = 1;
#endif
    *u0 = units * t / nt;
    *u1 = units * (t + 1) / nt;
}

#endif
