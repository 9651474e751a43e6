/*
 * hift_kernels.c — HiFT's element-wise activations over channel-major rows, split over the pool:
 * Snake (cosyvoice/transformer/activation.py, alpha_logscale=False) and leaky ReLU.
 *
 * Snake costs one sine per activation value and the generator applies it to every resblock input
 * (~25 million values per second of audio at the real size), so it has an AVX-512 path with a
 * vectorised sine (Cody-Waite reduction by pi/2, minimax polynomials, ~1 ulp on the ranges seen
 * here); the portable path uses sinf.
 */
#include "model/hift_internal.h"
#include "core/cpu.h"

#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HIFT_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define HIFT_HAVE_AVX512 1
#endif

/* ---- Snake: x + 1 / (alpha + 1e-9) * sin(alpha x)^2 ----------------------------------------- */

static void snake_row_scalar(float *y, const float *x, int n, float a, float inv)
{
    for (int t = 0; t < n; t++) {
        float s = sinf(x[t] * a);
        y[t] = x[t] + inv * (s * s);
    }
}

#ifdef HIFT_HAVE_AVX512
/* sin(x): x = q pi/2 + r with pi/2 split in three parts (Cody-Waite; q times the first two stays
 * exact for |x| <= 8192), then the Cephes sinf/cosf polynomials on |r| <= pi/4, picked and signed by
 * q mod 4. A vector with a larger argument takes sinf instead. */
static inline HIFT_AVX512 __m512 sin512(__m512 x, int *needs_fallback)
{
    const __m512 two_over_pi = _mm512_set1_ps(0.636619772367581343f);
    __m512 qf = _mm512_roundscale_ps(_mm512_mul_ps(x, two_over_pi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(8192.0f), _CMP_GT_OQ);
    if (big) *needs_fallback = 1;
    __m512 r = _mm512_fnmadd_ps(qf, _mm512_set1_ps(1.5703125f), x);
    r = _mm512_fnmadd_ps(qf, _mm512_set1_ps(4.837512969970703125e-4f), r);
    r = _mm512_fnmadd_ps(qf, _mm512_set1_ps(7.54978995489188216e-8f), r);
    __m512i q = _mm512_cvtps_epi32(qf);
    __m512 r2 = _mm512_mul_ps(r, r);
    /* sin(r) = r + r^3 (s1 + r^2 (s2 + r^2 s3)) */
    __m512 ps = _mm512_set1_ps(-1.9515295891E-4f);
    ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(8.3321608736E-3f));
    ps = _mm512_fmadd_ps(ps, r2, _mm512_set1_ps(-1.6666654611E-1f));
    ps = _mm512_fmadd_ps(_mm512_mul_ps(ps, r2), r, r);
    /* cos(r) = 1 - r^2 / 2 + r^4 (c1 + r^2 (c2 + r^2 c3)) */
    __m512 pc = _mm512_set1_ps(2.443315711809948E-5f);
    pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(-1.388731625493765E-3f));
    pc = _mm512_fmadd_ps(pc, r2, _mm512_set1_ps(4.166664568298827E-2f));
    pc = _mm512_fmadd_ps(_mm512_mul_ps(pc, r2), r2, _mm512_fnmadd_ps(_mm512_set1_ps(0.5f), r2, _mm512_set1_ps(1.0f)));
    /* q odd: cos; q & 2: negate */
    __mmask16 odd = _mm512_test_epi32_mask(q, _mm512_set1_epi32(1));
    __m512 v = _mm512_mask_blend_ps(odd, ps, pc);
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(q, _mm512_set1_epi32(2)), 30);
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign));
}

static HIFT_AVX512 void snake_row_avx512(float *y, const float *x, int n, float a, float inv)
{
    const __m512 va = _mm512_set1_ps(a), vinv = _mm512_set1_ps(inv);
    int t = 0;
    for (; t + 16 <= n; t += 16) {
        __m512 v = _mm512_loadu_ps(x + t);
        int fallback = 0;
        __m512 s = sin512(_mm512_mul_ps(v, va), &fallback);
        if (fallback) {
            snake_row_scalar(y + t, x + t, 16, a, inv);
            continue;
        }
        /* x + inv * (s * s), rounded per operation as the reference's separate tensor ops */
        _mm512_storeu_ps(y + t, _mm512_add_ps(v, _mm512_mul_ps(vinv, _mm512_mul_ps(s, s))));
    }
    if (t < n) snake_row_scalar(y + t, x + t, n - t, a, inv);
}
#endif

typedef struct {
    float *y;
    const float *x, *alpha;
    int ldy, ldx, C, T, n_tasks, simd;
} snake_job;

static void snake_task(void *ctx, int task)
{
    const snake_job *j = ctx;
    int c0, c1;
    cosy_split_range(j->C, j->n_tasks, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        float a = j->alpha[c], inv = 1.0f / (a + 1e-9f);
        const float *x = j->x + (size_t)c * j->ldx;
        float *y = j->y + (size_t)c * j->ldy;
#ifdef HIFT_HAVE_AVX512
        if (j->simd) {
            snake_row_avx512(y, x, j->T, a, inv);
            continue;
        }
#endif
        snake_row_scalar(y, x, j->T, a, inv);
    }
}

void hift_snake(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T, const float *alpha)
{
    snake_job j = {y, x, alpha, ldy, ldx, C, T, 1, 0};
#ifdef HIFT_HAVE_AVX512
    j.simd = cosy_cpu_level() >= COSY_CPU_AVX512;
#endif
    int n = pool ? cosy_pool_size(pool) : 1;
    if (n > C) n = C;
    if ((size_t)C * T < 16384) n = 1;
    j.n_tasks = n;
    if (n <= 1) snake_task(&j, 0);
    else cosy_pool_run(pool, n, snake_task, &j);
}

/* ---- leaky ReLU: x > 0 ? x : x * slope ------------------------------------------------------ */

typedef struct {
    float *y;
    const float *x;
    int ldy, ldx, C, T, n_tasks;
    float slope;
} lrelu_job;

static void lrelu_task(void *ctx, int task)
{
    const lrelu_job *j = ctx;
    int c0, c1;
    cosy_split_range(j->C, j->n_tasks, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        const float *x = j->x + (size_t)c * j->ldx;
        float *y = j->y + (size_t)c * j->ldy;
        for (int t = 0; t < j->T; t++) y[t] = x[t] > 0.0f ? x[t] : x[t] * j->slope;
    }
}

void hift_leaky_relu(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T, float slope)
{
    lrelu_job j = {y, x, ldy, ldx, C, T, 1, slope};
    int k = pool ? cosy_pool_size(pool) : 1;
    if (k > C) k = C;
    if ((size_t)C * T < 65536) k = 1;
    j.n_tasks = k;
    if (k <= 1) lrelu_task(&j, 0);
    else cosy_pool_run(pool, k, lrelu_task, &j);
}
