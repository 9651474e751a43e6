/*
 * vecmath.c — element-wise math (GELU, Mish, SiLU, softmax rows, LayerNorm rows), vectorised
 * (vecmath.h); the flow is its main user. At the real model size these run on ~10^8 values per
 * call, which scalar libm calls turn into a good share of the run time, so the AVX-512 versions
 * (picked at run time through cpu.h; COSY_CPU=portable forces the scalar ones) compute exp with a Cephes-style
 * polynomial (~1 ulp) and erf with Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), the same
 * approximation PyTorch's vectorised CPU GELU uses. Everything else is ordinary float
 * arithmetic; results agree with the scalar versions to a few ulp.
 */
#include "core/vecmath.h"
#include "core/cpu.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- scalar versions */

static void gelu_scalar(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* nn.GELU(approximate='tanh') */
static void gelu_tanh_scalar(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

static void mish_scalar(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 20.0f ? x[i] : x[i] * tanhf(log1pf(expf(x[i])));
}

static void silu_scalar(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

/* exp(x - max) in place; returns 1 / sum */
static float softmax_scalar(float *x, int n)
{
    float mx = x[0];
    for (int j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        x[j] = expf(x[j] - mx);
        sum += x[j];
    }
    return 1.0f / sum;
}

static void layer_norm_scalar(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        float sum = 0.0f;
        for (int i = 0; i < dim; i++) sum += xr[i];
        float mean = sum / (float)dim, var = 0.0f;
        for (int i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
        float inv = 1.0f / sqrtf(var / (float)dim + eps);
        for (int i = 0; i < dim; i++) yr[i] = (xr[i] - mean) * inv * w[i] + b[i];
    }
}

/* ---------------------------------------------------------------- AVX-512 versions */

#include "core/simd_avx512.h"

#ifdef COSY_HAVE_AVX512
#define HAVE_AVX512_PATH 1

#define MAP512(name, fn)                                                    \
    static AVX512 void name(float *x, size_t n)                             \
    {                                                                       \
        size_t i = 0;                                                       \
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, fn(_mm512_loadu_ps(x + i))); \
        if (i < n) {                                                        \
            __mmask16 m;                                                    \
            __m512 v = load_tail(x + i, n - i, &m);                         \
            _mm512_mask_storeu_ps(x + i, m, fn(v));                         \
        }                                                                   \
    }

/* 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2 / pi) (x + 0.044715 x^3) */
static inline AVX512 __m512 gelu_tanh512(__m512 x)
{
    const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    const __m512 u = _mm512_mul_ps(_mm512_set1_ps(-2.0f * 0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(u)));
}

MAP512(gelu_avx512, gelu512)
MAP512(gelu_tanh_avx512, gelu_tanh512)
MAP512(mish_avx512, mish512)
MAP512(silu_avx512, silu512)

static AVX512 float softmax_avx512(float *x, int n)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
    if (i < n) vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
        _mm512_storeu_ps(x + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    return 1.0f / _mm512_reduce_add_ps(vsum);
}

static AVX512 void layer_norm_avx512(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps)
{
    if (dim % 16) {
        layer_norm_scalar(y, x, rows, dim, w, b, eps);
        return;
    }
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        __m512 s = _mm512_setzero_ps();
        for (int i = 0; i < dim; i += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(xr + i));
        const float mean = _mm512_reduce_add_ps(s) / (float)dim;
        const __m512 vm = _mm512_set1_ps(mean);
        __m512 q = _mm512_setzero_ps();
        for (int i = 0; i < dim; i += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(xr + i), vm);
            q = _mm512_fmadd_ps(d, d, q);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(q) / (float)dim + eps));
        for (int i = 0; i < dim; i += 16) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), vm), inv);
            _mm512_storeu_ps(yr + i, _mm512_fmadd_ps(d, _mm512_loadu_ps(w + i), _mm512_loadu_ps(b + i)));
        }
    }
}
#endif

/* ---------------------------------------------------------------- dispatch */

static int use_avx512(void)
{
#ifdef HAVE_AVX512_PATH
    return cosy_cpu_level() >= COSY_CPU_AVX512;
#else
    return 0;
#endif
}

void cosy_vec_gelu(float *x, size_t n)
{
#ifdef HAVE_AVX512_PATH
    if (use_avx512()) { gelu_avx512(x, n); return; }
#endif
    gelu_scalar(x, n);
}

void cosy_vec_gelu_tanh(float *x, size_t n)
{
#ifdef HAVE_AVX512_PATH
    if (use_avx512()) { gelu_tanh_avx512(x, n); return; }
#endif
    gelu_tanh_scalar(x, n);
}

void cosy_vec_mish(float *x, size_t n)
{
#ifdef HAVE_AVX512_PATH
    if (use_avx512()) { mish_avx512(x, n); return; }
#endif
    mish_scalar(x, n);
}

void cosy_vec_silu(float *x, size_t n)
{
#ifdef HAVE_AVX512_PATH
    if (use_avx512()) { silu_avx512(x, n); return; }
#endif
    silu_scalar(x, n);
}

void cosy_vec_softmax_rows(float *x, int rows, int n, int ld, float *inv_sum)
{
#ifdef HAVE_AVX512_PATH
    if (use_avx512()) {
        for (int r = 0; r < rows; r++) inv_sum[r] = softmax_avx512(x + (size_t)r * ld, n);
        return;
    }
#endif
    for (int r = 0; r < rows; r++) inv_sum[r] = softmax_scalar(x + (size_t)r * ld, n);
}

void cosy_vec_layer_norm(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps)
{
#ifdef HAVE_AVX512_PATH
    if (use_avx512()) { layer_norm_avx512(y, x, rows, dim, w, b, eps); return; }
#endif
    layer_norm_scalar(y, x, rows, dim, w, b, eps);
}
