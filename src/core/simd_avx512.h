/*
 * flow_simd.h — AVX-512 building blocks shared by the flow's element-wise kernels (flow_math.c)
 * and the matrix-product epilogues (flow_gemm.c): exp with a Cephes polynomial (~1 ulp), and
 * GELU (exact-erf form with Abramowitz-Stegun 7.1.26, |erf error| < 1.5e-7, as PyTorch's
 * vectorised CPU kernel), Mish and SiLU on top of it. Functions carry their own target
 * attribute; callers must check cosy_cpu_level() first.
 */
#ifndef COSY_FLOW_SIMD_H
#define COSY_FLOW_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define COSY_HAVE_AVX512 1

/* exp(x): x = n ln2 + r, |r| <= ln2/2, Cephes expf polynomial, scaled by 2^n */
static inline AVX512 __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7228394f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline AVX512 __m512 load_tail(const float *x, size_t n, __mmask16 *m)
{
    *m = (__mmask16)((1u << n) - 1u);
    return _mm512_maskz_loadu_ps(*m, x);
}

static inline AVX512 __m512 gelu512(__m512 x)
{
    /* 0.5 x (1 + erf(x / sqrt 2)), erf(z) = sign(z) (1 - poly(t) exp(-z^2)), t = 1 / (1 + p |z|) */
    __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    __m512 az = _mm512_abs_ps(z);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(az, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), az), az));
    __m512 erf_abs = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0f));
    /* copy the sign of z */
    __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs),
                                                     _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), erf));
}

static inline AVX512 __m512 mish512(__m512 x)
{
    /* tanh(log(1 + e)) = e (e + 2) / (e (e + 2) + 2); large x: mish(x) = x */
    __m512 e = exp512(x);
    __m512 num = _mm512_mul_ps(e, _mm512_add_ps(e, _mm512_set1_ps(2.0f)));
    __m512 y = _mm512_mul_ps(x, _mm512_div_ps(num, _mm512_add_ps(num, _mm512_set1_ps(2.0f))));
    __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(20.0f), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(big, y, x);
}

static inline AVX512 __m512 silu512(__m512 x)
{
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* r[i] lane j -> r[j] lane i: a 16 x 16 transpose of 32-bit lanes held in registers (unpack pairs,
 * then pairs of pairs, then 128-bit lanes twice) */
static inline AVX512 void cosy_transpose16_regs(__m512 r[16])
{
    __m512 t[16], u[16], v[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) { /* rows g..g+3: u[g + c] holds column 4l + c in lane l */
        u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
        u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
        u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
        u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
    }
    for (int c = 0; c < 4; c++) {
        v[c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);         /* columns c, c + 8 of rows 0-7 */
        v[4 + c] = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);     /* columns c + 4, c + 12 */
        v[8 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88); /* the same for rows 8-15 */
        v[12 + c] = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
    }
    for (int c = 0; c < 8; c++) {
        r[c] = _mm512_shuffle_f32x4(v[c], v[8 + c], 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(v[c], v[8 + c], 0xdd);
    }
}

#endif /* x86-64 */

#endif
