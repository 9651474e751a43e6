/* torch_rng.c — PyTorch's CPU generator and its float uniform/normal fills (see torch_rng.h). */
#include "core/torch_rng.h"
#include "core/cpu.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- mt19937 */

#define MT_N 624
#define MT_M 397

void cosy_torch_rng_seed(cosy_torch_rng *g, uint64_t seed)
{
    /* at::mt19937 seeds with the low 32 bits, std::mt19937's init_genrand recurrence */
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < MT_N; i++)
        g->state[i] = 1812433253u * (g->state[i - 1] ^ (g->state[i - 1] >> 30)) + (uint32_t)i;
    g->index = MT_N;
    g->has_next_normal = 0; /* set_current_seed also drops the cached normal samples */
    g->next_normal = 0.0;
}

static void mt_twist(cosy_torch_rng *g)
{
    uint32_t *s = g->state;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
        s[i] = s[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    g->index = 0;
}

uint32_t cosy_torch_rng_u32(cosy_torch_rng *g)
{
    if (g->index >= MT_N) mt_twist(g);
    uint32_t y = g->state[g->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

void cosy_torch_rng_skip(cosy_torch_rng *g, int64_t n)
{
    while (n > 0) {
        if (g->index >= MT_N) mt_twist(g);
        int64_t take = MT_N - g->index;
        if (take > n) take = n;
        g->index += (int)take; /* tempering is per output; skipped outputs need none */
        n -= take;
    }
}

/* at::uniform_real_distribution<float>(0, 1): 24 random bits scaled by 2^-24 */
static inline float uniform01(cosy_torch_rng *g)
{
    return (float)(cosy_torch_rng_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

void cosy_torch_rand(cosy_torch_rng *g, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = uniform01(g);
}

/* ---------------------------------------------------------------- element-by-element normals */

/* CPUGeneratorImpl::random64: the first 32-bit draw is the high half */
static inline uint64_t random64(cosy_torch_rng *g)
{
    uint64_t hi = cosy_torch_rng_u32(g);
    uint64_t lo = cosy_torch_rng_u32(g);
    return (hi << 32) | lo;
}

/* at::uniform_real_distribution<double>(0, 1): 53 random bits scaled by 2^-53 */
static inline double uniform01_double(cosy_torch_rng *g)
{
    return (double)(random64(g) & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

void cosy_torch_normal_serial(cosy_torch_rng *g, float *out, int64_t n)
{
    const double pi = 3.14159265358979323846;
    for (int64_t i = 0; i < n; i++) {
        if (g->has_next_normal) {
            g->has_next_normal = 0;
            out[i] = (float)g->next_normal;
            continue;
        }
        double u1 = uniform01_double(g), u2 = uniform01_double(g);
        double r = sqrt(-2.0 * log1p(-u2));
        double theta = 2.0 * pi * u1;
        g->next_normal = r * sin(theta);
        g->has_next_normal = 1;
        out[i] = (float)(r * cos(theta));
    }
}

/* ---------------------------------------------------------------- Box-Muller over 16 floats */

static inline float f_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t bits_from_f(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/*
 * Cephes-style logf as in avx_mathfun.h's log256_ps, in the order of operations GCC produces
 * when it compiles that file with -mfma (multiply-add pairs contracted into fused operations).
 * Every fused step is written as an explicit fmaf so the result does not depend on our own
 * compiler flags. Only called with x in (0, 1].
 */
static inline __attribute__((always_inline)) float cephes_logf(float x)
{
    if (x < f_from_bits(0x00800000u)) x = f_from_bits(0x00800000u);
    int exponent = (int)(bits_from_f(x) >> 23) - 0x7f;
    x = f_from_bits((bits_from_f(x) & ~0x7f800000u) | bits_from_f(0.5f)); /* mantissa in [0.5, 1) */
    float e = (float)exponent + 1.0f;
    float lt = x < 0.707106781186547524f ? x : 0.0f;
    x = x - 1.0f;
    e = e - (lt != 0.0f ? 1.0f : 0.0f);
    x = x + lt;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    return fmaf(e, 0.693359375f, x);
}

/* avx_mathfun.h's sincos256_ps (Cephes sinf/cosf with the 4/pi octant reduction), FMA-contracted
 * the same way. Only called with x in [0, 2 pi). */
static inline __attribute__((always_inline)) void cephes_sincosf(float x, float *s, float *c)
{
    uint32_t sign_sin = bits_from_f(x) & 0x80000000u;
    x = fabsf(x);
    int j = (int)(x * 1.27323954473516f);
    j = (j + 1) & ~1;
    float y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    int first_poly = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float sv = first_poly ? ys : yc, cv = first_poly ? yc : ys;
    *s = f_from_bits(bits_from_f(sv) ^ sign_sin);
    *c = f_from_bits(bits_from_f(cv) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1: d[0..16) uniforms in, normals out */
static inline __attribute__((always_inline)) void box_muller16_body(float *d)
{
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j], u2 = d[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = radius * c;
        d[j + 8] = radius * s;
    }
}

static void box_muller16_generic(float *d) { box_muller16_body(d); }

#if defined(__x86_64__) && defined(__GNUC__)
/* Same arithmetic; with the fma target fmaf becomes one instruction instead of a libm call. */
__attribute__((target("fma"))) static void box_muller16_fma(float *d) { box_muller16_body(d); }
#endif

typedef void (*box_muller_fn)(float *d);

static box_muller_fn pick_box_muller(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (cosy_cpu_get_features()->fma) return box_muller16_fma;
#endif
    return box_muller16_generic;
}

/* ---------------------------------------------------------------- normal fills */

cosy_status cosy_torch_randn_ranges(cosy_torch_rng *g, int64_t n, const int64_t *ranges, int n_ranges, float *out)
{
    if (n < 16)
        return cosy_error(COSY_ERR_UNSUPPORTED, "torch_rng: randn of %lld elements (torch's path for fewer than 16 is not reproduced)",
                          (long long)n);
    for (int r = 0; r < n_ranges; r++)
        if (ranges[2 * r] < 0 || ranges[2 * r + 1] > n || ranges[2 * r] > ranges[2 * r + 1] ||
            (r > 0 && ranges[2 * r] < ranges[2 * r - 1]))
            return cosy_error(COSY_ERR_INVALID_ARG, "torch_rng: range %d [%lld, %lld) is out of order or outside [0, %lld)", r,
                              (long long)ranges[2 * r], (long long)ranges[2 * r + 1], (long long)n);
    box_muller_fn bm = pick_box_muller();
    const int64_t full = n / 16 * 16;
    /* elements at or beyond `redo` come from the extra block drawn after the main fill */
    const int64_t redo = n % 16 ? n - 16 : n;
    float block[16];
    int r = 0;             /* first range that may still need values */
    int64_t r_out = 0;     /* where range r starts in `out` */
    int64_t consumed = 0;  /* draws taken so far */
    for (int64_t b = 0; b < full; b += 16) {
        while (r < n_ranges && ranges[2 * r + 1] <= b) {
            r_out += ranges[2 * r + 1] - ranges[2 * r];
            r++;
        }
        int64_t hi = b + 16 < redo ? b + 16 : redo;
        int wanted = 0;
        for (int k = r; k < n_ranges && ranges[2 * k] < hi && !wanted; k++) wanted = ranges[2 * k + 1] > ranges[2 * k];
        if (!wanted) {
            /* nothing asked for in this block: advance the generator without transforming */
            cosy_torch_rng_skip(g, 16);
            consumed += 16;
            continue;
        }
        for (int i = 0; i < 16; i++) block[i] = uniform01(g);
        consumed += 16;
        bm(block);
        int64_t k_out = r_out;
        for (int k = r; k < n_ranges && ranges[2 * k] < hi; k++) {
            int64_t lo = ranges[2 * k] > b ? ranges[2 * k] : b;
            int64_t up = ranges[2 * k + 1] < hi ? ranges[2 * k + 1] : hi;
            for (int64_t i = lo; i < up; i++) out[k_out + (i - ranges[2 * k])] = block[i - b];
            k_out += ranges[2 * k + 1] - ranges[2 * k];
        }
    }
    cosy_torch_rng_skip(g, n - consumed); /* the uniforms of the incomplete last block */
    if (n % 16) {
        for (int i = 0; i < 16; i++) block[i] = uniform01(g);
        bm(block);
        int64_t k_out = 0;
        for (int k = 0; k < n_ranges; k++) {
            int64_t lo = ranges[2 * k] > redo ? ranges[2 * k] : redo;
            for (int64_t i = lo; i < ranges[2 * k + 1]; i++) out[k_out + (i - ranges[2 * k])] = block[i - redo];
            k_out += ranges[2 * k + 1] - ranges[2 * k];
        }
    }
    return COSY_OK;
}

cosy_status cosy_torch_randn(cosy_torch_rng *g, float *out, int64_t n)
{
    int64_t range[2] = {0, n};
    return cosy_torch_randn_ranges(g, n, range, 1, out);
}
