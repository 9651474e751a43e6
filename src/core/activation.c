/*
 * activation.c — the activations of activation.h: Snake and leaky ReLU over channel-major rows, in
 * f32 and written into the bf16 pair layout of conv1d.h, and the row sum and division HiFT's resblock
 * mean needs.
 *
 * Snake costs one sine per value and HiFT applies it to every resblock input (~18 million values per
 * second of audio at the real size), so it has an AVX-512 path with a vectorised sine (Cody-Waite
 * reduction by pi/2, minimax polynomials, ~1 ulp on the ranges seen here); the portable path uses
 * sinf. The bf16 forms round with integer operations (AVX-512F), so they give the same bits on every
 * AVX-512 CPU, with or without the BF16 instructions; their Snake takes a cheaper sine (sin2_fast512),
 * as its result keeps 8 bits.
 */
#include "core/activation.h"
#include "core/cpu.h"
#include "core/half.h"

#include <math.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ACT_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define ACT_HAVE_AVX512 1
#endif

typedef enum { ACT_NONE, ACT_LEAKY_RELU, ACT_SNAKE, ACT_ADD, ACT_DIV } act_kind;

/* ---- scalar --------------------------------------------------------------------------------- */

/* Snake: x + 1 / (alpha + 1e-9) * sin(alpha x)^2, rounded per operation as the reference's separate
 * tensor ops */
static inline float snake1(float x, float a, float inv)
{
    float s = sinf(x * a);
    return x + inv * (s * s);
}

static void act_row_scalar(float *y, const float *x, int n, act_kind kind, float a, float inv)
{
    if (kind == ACT_ADD) {
        for (int t = 0; t < n; t++) y[t] = x[t] + y[t];
        return;
    }
    if (kind == ACT_DIV) {
        for (int t = 0; t < n; t++) y[t] = y[t] / a;
        return;
    }
    for (int t = 0; t < n; t++)
        y[t] = kind == ACT_SNAKE ? snake1(x[t], a, inv) : kind == ACT_LEAKY_RELU ? (x[t] > 0.0f ? x[t] : x[t] * a) : x[t];
}

/* ---- AVX-512 -------------------------------------------------------------------------------- */

#ifdef ACT_HAVE_AVX512
/* sin(x): x = q pi/2 + r with pi/2 split in three parts (Cody-Waite; q times the first two stays
 * exact for |x| <= 8192), then the Cephes sinf/cosf polynomials on |r| <= pi/4, picked and signed by
 * q mod 4. A vector with a larger argument sets *needs_fallback (the caller takes sinf instead). */
static inline ACT_AVX512 __m512 sin512(__m512 x, int *needs_fallback)
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

/* sin(y)^2 for the bf16 forms, whose result is rounded to 8 bits: y = q pi + r (Cody-Waite, exact
 * products for |y| <= 8192, else *needs_fallback), sin(r)^2 = sin(q pi + r)^2 with no sign to track,
 * and sin(r) from its Taylor series to r^11 on |r| <= pi/2 (error < 6e-8). About half the work of
 * sin512 (one polynomial, no quadrant logic); 2 sin(r) 6e-8 is far below a bf16 rounding step. */
static inline ACT_AVX512 __m512 sin2_fast512(__m512 y, int *needs_fallback)
{
    __m512 qf = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(0.318309886183790672f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (_mm512_cmp_ps_mask(_mm512_abs_ps(y), _mm512_set1_ps(8192.0f), _CMP_GT_OQ)) *needs_fallback = 1;
    __m512 r = _mm512_fnmadd_ps(qf, _mm512_set1_ps(3.140625f), y);
    r = _mm512_fnmadd_ps(qf, _mm512_set1_ps(9.67502593994140625e-4f), r);
    r = _mm512_fnmadd_ps(qf, _mm512_set1_ps(1.509957990978376432e-7f), r);
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(-2.505210838544172e-8f);              /* -1/11! */
    p = _mm512_fmadd_ps(p, r2, _mm512_set1_ps(2.755731922398589e-6f)); /* 1/9! */
    p = _mm512_fmadd_ps(p, r2, _mm512_set1_ps(-1.984126984126984e-4f));
    p = _mm512_fmadd_ps(p, r2, _mm512_set1_ps(8.333333333333333e-3f));
    p = _mm512_fmadd_ps(p, r2, _mm512_set1_ps(-1.666666666666667e-1f));
    __m512 sr = _mm512_fmadd_ps(_mm512_mul_ps(p, r2), r, r);
    return _mm512_mul_ps(sr, sr);
}

/* Snake for the bf16 forms (see sin2_fast512) */
static inline __attribute__((always_inline)) ACT_AVX512 __m512 snake16_fast(const float *x, __mmask16 m, float a, float inv)
{
    __m512 v = _mm512_maskz_loadu_ps(m, x);
    int fallback = 0;
    __m512 s2 = sin2_fast512(_mm512_mul_ps(v, _mm512_set1_ps(a)), &fallback);
    if (fallback) {
        float tmp[16];
        _mm512_storeu_ps(tmp, v);
        for (int i = 0; i < 16; i++) tmp[i] = snake1(tmp[i], a, inv);
        return _mm512_loadu_ps(tmp);
    }
    return _mm512_fmadd_ps(_mm512_set1_ps(inv), s2, v);
}

/* The activation of the (masked) 16 values at x. */
static inline __attribute__((always_inline)) ACT_AVX512 __m512 act16(const float *x, __mmask16 m, act_kind kind, float a, float inv)
{
    __m512 v = _mm512_maskz_loadu_ps(m, x);
    if (kind == ACT_LEAKY_RELU) {
        /* !(x > 0), as the scalar form: NaN takes the product and stays NaN */
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ) ^ 0xffff;
        return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(a));
    }
    if (kind != ACT_SNAKE) return v;
    int fallback = 0;
    __m512 s = sin512(_mm512_mul_ps(v, _mm512_set1_ps(a)), &fallback);
    if (fallback) {
        float tmp[16];
        _mm512_storeu_ps(tmp, v);
        for (int i = 0; i < 16; i++) tmp[i] = snake1(tmp[i], a, inv);
        return _mm512_loadu_ps(tmp);
    }
    return _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(inv), _mm512_mul_ps(s, s)));
}

/* The row loops are instantiated per activation (kind a constant), so each inner loop is branch-free
 * with its constants in registers. */
static inline __attribute__((always_inline)) ACT_AVX512 void act_row_body(float *y, const float *x, int n, const act_kind kind, float a,
                                                                          float inv)
{
    for (int t = 0; t < n; t += 16) {
        const __mmask16 m = n - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - t)) - 1u);
        __m512 v;
        if (kind == ACT_ADD) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + t), _mm512_maskz_loadu_ps(m, y + t));
        else if (kind == ACT_DIV) v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, y + t), _mm512_set1_ps(a));
        else v = act16(x + t, m, kind, a, inv);
        _mm512_mask_storeu_ps(y + t, m, v);
    }
}

static ACT_AVX512 void act_row_avx512(float *y, const float *x, int n, act_kind kind, float a, float inv)
{
    switch (kind) {
    case ACT_ADD: act_row_body(y, x, n, ACT_ADD, a, inv); break;
    case ACT_DIV: act_row_body(y, x, n, ACT_DIV, a, inv); break;
    case ACT_SNAKE: act_row_body(y, x, n, ACT_SNAKE, a, inv); break;
    case ACT_LEAKY_RELU: act_row_body(y, x, n, ACT_LEAKY_RELU, a, inv); break;
    default: act_row_body(y, x, n, ACT_NONE, a, inv); break;
    }
}

/* Round to bf16, nearest even, as cosy_f32_to_bf16 (NaN stays NaN), in the low 16 bits of each lane. */
static inline ACT_AVX512 __m512i bf16_round16(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000), _MM_CMPINT_GT);
    return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}

/* Pair-row of channels x0 and x1 (x1 NULL: a zero channel) -> 16-bit pairs (x0 low, x1 high). */
static inline __attribute__((always_inline)) ACT_AVX512 void act_pair_body(uint16_t *y, const float *x0, const float *x1, int n,
                                                                           const act_kind kind, const float *a, const float *inv)
{
    const float a0 = a[0], a1 = a[1], inv0 = inv[0], inv1 = inv[1];
    for (int t = 0; t < n; t += 16) {
        const __mmask16 m = n - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - t)) - 1u);
        __m512i lo = bf16_round16(kind == ACT_SNAKE ? snake16_fast(x0 + t, m, a0, inv0) : act16(x0 + t, m, kind, a0, inv0));
        __m512i hi = bf16_round16(kind == ACT_SNAKE ? snake16_fast(x1 + t, m, a1, inv1) : act16(x1 + t, m, kind, a1, inv1));
        _mm512_mask_storeu_epi32(y + 2 * (size_t)t, m, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
}

static ACT_AVX512 void act_pair_avx512(uint16_t *y, const float *x0, const float *x1, int n, act_kind kind, const float *a,
                                       const float *inv)
{
    if (!x1) {
        /* an odd channel count's last pair: its high halves are zeros */
        for (int t = 0; t < n; t += 16) {
            const __mmask16 m = n - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - t)) - 1u);
            __m512 v = kind == ACT_SNAKE ? snake16_fast(x0 + t, m, a[0], inv[0]) : act16(x0 + t, m, kind, a[0], inv[0]);
            _mm512_mask_storeu_epi32(y + 2 * (size_t)t, m, bf16_round16(v));
        }
        return;
    }
    switch (kind) {
    case ACT_SNAKE: act_pair_body(y, x0, x1, n, ACT_SNAKE, a, inv); break;
    case ACT_LEAKY_RELU: act_pair_body(y, x0, x1, n, ACT_LEAKY_RELU, a, inv); break;
    default: act_pair_body(y, x0, x1, n, ACT_NONE, a, inv); break;
    }
}
#endif

/* ---- jobs ----------------------------------------------------------------------------------- */

typedef struct {
    float *y;                   /* f32 destination rows (for ACT_ADD / ACT_DIV also an input), or NULL */
    int ldy;
    cosy_act_bf16 *yb;          /* bf16 destination, or NULL */
    const float *x;
    int ldx, C, T, n_tasks, simd;
    act_kind kind;
    const float *alpha;         /* Snake: per channel */
    float slope;                /* leaky ReLU's slope, or ACT_DIV's divisor */
} act_job;

/* the per-channel parameter a and Snake's 1 / (alpha + 1e-9) */
static void act_params(const act_job *j, int c, float *a, float *inv)
{
    *a = j->kind == ACT_SNAKE ? j->alpha[c] : j->slope;
    *inv = j->kind == ACT_SNAKE ? 1.0f / (*a + 1e-9f) : 0.0f;
}

static void act_task(void *ctx, int task)
{
    const act_job *j = ctx;
    if (j->y) {
        int c0, c1;
        cosy_split_range(j->C, j->n_tasks, task, &c0, &c1);
        for (int c = c0; c < c1; c++) {
            float a, inv;
            act_params(j, c, &a, &inv);
            const float *x = j->x ? j->x + (size_t)c * j->ldx : NULL;
            float *y = j->y + (size_t)c * j->ldy;
#ifdef ACT_HAVE_AVX512
            if (j->simd) {
                act_row_avx512(y, x, j->T, j->kind, a, inv);
                continue;
            }
#endif
            act_row_scalar(y, x, j->T, j->kind, a, inv);
        }
        return;
    }
    int p0, p1;
    cosy_split_range((j->C + 1) / 2, j->n_tasks, task, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        const int c = 2 * p, has1 = c + 1 < j->C;
        float a[2] = {0, 0}, inv[2] = {0, 0};
        act_params(j, c, &a[0], &inv[0]);
        if (has1) act_params(j, c + 1, &a[1], &inv[1]);
        const float *x0 = j->x + (size_t)c * j->ldx, *x1 = has1 ? x0 + j->ldx : NULL;
        uint16_t *y = j->yb->data + (size_t)p * j->yb->ld * 2;
#ifdef ACT_HAVE_AVX512
        if (j->simd) {
            act_pair_avx512(y, x0, x1, j->T, j->kind, a, inv);
            continue;
        }
#endif
        float v0[256], v1[256];
        for (int t0 = 0; t0 < j->T; t0 += 256) {
            const int n = j->T - t0 < 256 ? j->T - t0 : 256;
            act_row_scalar(v0, x0 + t0, n, j->kind, a[0], inv[0]);
            if (x1) act_row_scalar(v1, x1 + t0, n, j->kind, a[1], inv[1]);
            for (int t = 0; t < n; t++) {
                y[2 * (t0 + t)] = cosy_f32_to_bf16(v0[t]);
                y[2 * (t0 + t) + 1] = x1 ? cosy_f32_to_bf16(v1[t]) : 0;
            }
        }
    }
}

static void act_run(cosy_pool *pool, act_job *j)
{
#ifdef ACT_HAVE_AVX512
    j->simd = cosy_cpu_level() >= COSY_CPU_AVX512;
#endif
    const int rows = j->y ? j->C : (j->C + 1) / 2;
    int n = pool ? cosy_pool_size(pool) : 1;
    if (n > rows) n = rows;
    /* below ~16k values (a sine each for Snake; 4x that for the cheap ones) a thread's wake-up costs more */
    if ((size_t)j->C * j->T < (j->kind == ACT_SNAKE ? 16384u : 65536u)) n = 1;
    j->n_tasks = n < 1 ? 1 : n;
    if (j->n_tasks <= 1) act_task(j, 0);
    else cosy_pool_run(pool, j->n_tasks, act_task, j);
}

void cosy_snake_rows(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T, const float *alpha)
{
    act_job j = {.y = y, .ldy = ldy, .x = x, .ldx = ldx, .C = C, .T = T, .kind = ACT_SNAKE, .alpha = alpha};
    act_run(pool, &j);
}

void cosy_leaky_relu_rows(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T, float slope)
{
    act_job j = {.y = y, .ldy = ldy, .x = x, .ldx = ldx, .C = C, .T = T, .kind = ACT_LEAKY_RELU, .slope = slope};
    act_run(pool, &j);
}

void cosy_rows_add(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T)
{
    act_job j = {.y = y, .ldy = ldy, .x = x, .ldx = ldx, .C = C, .T = T, .kind = ACT_ADD};
    act_run(pool, &j);
}

void cosy_rows_div(cosy_pool *pool, float *y, int ldy, int C, int T, float d)
{
    act_job j = {.y = y, .ldy = ldy, .C = C, .T = T, .kind = ACT_DIV, .slope = d};
    act_run(pool, &j);
}

static void to_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x, act_kind kind, const float *alpha, float slope)
{
    act_job j = {.yb = y, .x = x->data, .ldx = x->ld, .C = x->C, .T = x->T, .kind = kind, .alpha = alpha, .slope = slope};
    act_run(pool, &j);
}

void cosy_snake_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x, const float *alpha) { to_bf16(pool, y, x, ACT_SNAKE, alpha, 0); }
void cosy_leaky_relu_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x, float slope) { to_bf16(pool, y, x, ACT_LEAKY_RELU, NULL, slope); }
void cosy_act_to_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x) { to_bf16(pool, y, x, ACT_NONE, NULL, 0); }
