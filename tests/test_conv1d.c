/*
 * test_conv1d.c — the convolution and activation kernels of core/conv1d.h and core/activation.h on
 * every CPU path this machine has (COSY_CPU caps the level), against plain double-precision loops:
 * stride-1 "same" convolutions (odd channel counts, channel counts that end inside a bf16 pair or a
 * 32-channel tile, time lengths that end inside a tile, dilation, a residual that is the output
 * itself) and transposed convolutions (several strides, paddings and an output offset), in f32 and
 * bf16; strided ones (f32); the bf16 weight packing from f32 and from bf16 storage; Snake and leaky ReLU in f32 and in
 * their bf16-writing forms; the zero margins every kernel must leave alone; refused shapes.
 *
 * Bounds. f32 and bf16 kernels both sum in f32, in orders of their own, so each output is compared
 * with the exact (double) sum of the same products under the standard bound for a float sum of n
 * terms: |error| <= n u sum |terms| (u = 2^-24). For bf16 the products are those of the bf16-rounded
 * weights and inputs (bf16 x bf16 products are exact in f32), so the test checks the kernel, not the
 * rounding; the rounding's effect on a model is measured where the model is (test_hift).
 */
#include "test.h"
#include "core/activation.h"
#include "core/conv1d.h"
#include "core/cpu.h"
#include "core/half.h"

static cosy_pool *pool;
static uint32_t seed = 99;

static float rnd(void)
{
    seed = seed * 1664525u + 1013904223u;
    return (float)(seed >> 8) / 8388608.0f - 1.0f;
}

static float as_bf16(float v) { return cosy_bf16_to_f32(cosy_f32_to_bf16(v)); }

/* The levels to run: each one this CPU has (a cap above the CPU's level gives the CPU's). */
static int set_level(cosy_cpu_level_t level)
{
    if (cosy_cpu_cap(level) != level) {
        printf("  (%s: not on this CPU, skipped)\n", cosy_cpu_level_name(level));
        return 0;
    }
    return 1;
}

/* f32 data of a cosy_act into and out of dense [C][T] */
static void act_fill(cosy_act *a, const float *x)
{
    for (int c = 0; c < a->C; c++) memcpy(a->data + (size_t)c * a->ld, x + (size_t)c * a->T, sizeof(float) * (size_t)a->T);
}

/* Every column outside [lo, hi) of every row of y is zero (margins and the tail past T). */
static int margins_zero(const cosy_act *y, int lo, int hi)
{
    int ok = 1;
    for (int c = 0; c < y->C; c++)
        for (int t = -COSY_ACT_PAD; t < y->ld - COSY_ACT_PAD; t++)
            if (t < lo || t >= hi) ok &= y->data[(size_t)c * y->ld + t] == 0.0f;
    return ok;
}

/* ---- stride-1 convolutions ------------------------------------------------------------------ */

typedef struct {
    int cin, cout, k, dil, T;
} same_shape;

/* conv_pre-like (80 inputs), HiFT resblock-like (dilated k7/k11), the tiny fixture's 4 channels, odd
 * channel counts crossing a pair and a 32-channel tile, lengths ending mid-tile */
static const same_shape same_shapes[] = {
    {5, 7, 3, 1, 4},    {13, 6, 11, 5, 203}, {16, 16, 7, 3, 100}, {3, 18, 7, 1, 1003}, {80, 40, 7, 1, 61},
    {64, 64, 11, 5, 777}, {33, 70, 3, 1, 33}, {4, 4, 11, 5, 300},  {128, 96, 3, 1, 130}, {1, 1, 1, 1, 17},
};

static double check_same(const same_shape *s, int bf16, cosy_arena *arena)
{
    const int cin = s->cin, cout = s->cout, K = s->k, d = s->dil, T = s->T;
    cosy_arena_reset(arena);
    float *w = cosy_arena_floats(arena, (size_t)cout * cin * K), *b = cosy_arena_floats(arena, (size_t)cout);
    float *x = cosy_arena_floats(arena, (size_t)cin * T), *r = cosy_arena_floats(arena, (size_t)cout * T);
    for (int i = 0; i < cout * cin * K; i++) w[i] = rnd();
    for (int i = 0; i < cout; i++) b[i] = rnd();
    for (int i = 0; i < cin * T; i++) x[i] = rnd();
    for (int i = 0; i < cout * T; i++) r[i] = rnd();
    cosy_conv c = {.w = w, .b = b, .cout = cout, .cin = cin, .k = K, .stride = 1, .pad = (K - 1) * d / 2, .dilation = d};
    cosy_act xa, ya;
    CHECK_OK(cosy_act_alloc(&xa, cin, T, arena));
    CHECK_OK(cosy_act_alloc(&ya, cout, T, arena));
    act_fill(&xa, x);
    act_fill(&ya, r);
    if (bf16) {
        uint16_t *packed = cosy_arena_alloc(arena, sizeof(uint16_t) * cosy_conv1d_packed_bf16_elems(&c));
        CHECK_OK(cosy_conv1d_pack_bf16(packed, &c, w, COSY_DTYPE_F32));
        c.w_bf16 = packed;
        c.w = NULL;
        cosy_act_bf16 xb;
        CHECK_OK(cosy_act_bf16_alloc(&xb, cin, T, arena));
        cosy_act_to_bf16(pool, &xb, &xa);
        /* y = conv(x) + y, in place */
        CHECK_OK(cosy_conv1d_same_bf16(pool, &c, &xb, &ya, &ya));
        for (int i = 0; i < cout * cin * K; i++) w[i] = as_bf16(w[i]);
        for (int i = 0; i < cin * T; i++) x[i] = as_bf16(x[i]);
    } else {
        CHECK_OK(cosy_conv1d_same(pool, &c, &xa, &ya, &ya));
    }
    /* worst error as a fraction of the bound n u sum|terms| */
    const double n = (double)cin * K + 2, u = 1.0 / 16777216.0;
    double worst = 0;
    for (int co = 0; co < cout; co++)
        for (int t = 0; t < T; t++) {
            double acc = b[co] + r[(size_t)co * T + t], mag = fabs(b[co]) + fabs(r[(size_t)co * T + t]);
            for (int ci = 0; ci < cin; ci++)
                for (int k = 0; k < K; k++) {
                    int ti = t + k * d - c.pad;
                    if (ti < 0 || ti >= T) continue;
                    double p = (double)w[((size_t)co * cin + ci) * K + k] * x[(size_t)ci * T + ti];
                    acc += p;
                    mag += fabs(p);
                }
            double e = fabs(ya.data[(size_t)co * ya.ld + t] - acc) / (n * u * mag);
            if (!(e <= worst)) worst = e != e ? INFINITY : e;
        }
    CHECK(margins_zero(&ya, 0, T));
    return worst;
}

static void test_same(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 64 << 20));
    const cosy_cpu_level_t levels[] = {COSY_CPU_PORTABLE, COSY_CPU_AVX2, COSY_CPU_AVX512, COSY_CPU_AVX512BF16, COSY_CPU_AMX};
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
            if (!bf16 && levels[l] > COSY_CPU_AVX512) continue; /* f32 has three paths */
            if (bf16 && levels[l] == COSY_CPU_AVX2) continue;
            if (!set_level(levels[l])) continue;
            double worst = 0;
            for (size_t i = 0; i < sizeof same_shapes / sizeof same_shapes[0]; i++) {
                double e = check_same(&same_shapes[i], bf16, &arena);
                if (!(e <= 1.0)) fprintf(stderr, "  shape %zu: error %.3g of the bound\n", i, e);
                if (!(e <= worst)) worst = e;
            }
            printf("  same %s on %s (bf16 path %s): worst error %.3f of the f32 summation bound\n", bf16 ? "bf16" : "f32",
                   cosy_cpu_level_name(levels[l]), cosy_conv1d_bf16_path(), worst);
            CHECK(worst <= 1.0);
        }
    cosy_cpu_reset();
    cosy_arena_free(&arena);
}

/* ---- transposed convolutions ---------------------------------------------------------------- */

typedef struct {
    int cin, cout, k, stride, pad, Tin, offset;
} up_shape;

/* HiFT's three upsampling steps (k = 2u, padding (k - u) / 2) at reduced width, and odd ones */
static const up_shape up_shapes[] = {
    {48, 24, 16, 8, 4, 7, 0}, {24, 12, 11, 5, 3, 40, 1}, {12, 6, 7, 3, 2, 100, 1}, {5, 3, 4, 2, 1, 9, 0}, {64, 32, 16, 8, 4, 50, 0},
    {3, 5, 3, 1, 1, 33, 2}, {4, 3, 16, 8, 4, 1, 0}, {6, 2, 11, 5, 3, 2, 1},
};

static double check_up(const up_shape *s, int bf16, cosy_arena *arena)
{
    const int cin = s->cin, cout = s->cout, K = s->k, u = s->stride, P = s->pad, Tin = s->Tin;
    const int Tout = (Tin - 1) * u - 2 * P + K, Ty = Tout + s->offset + 3;
    cosy_arena_reset(arena);
    float *w = cosy_arena_floats(arena, (size_t)cin * cout * K), *b = cosy_arena_floats(arena, (size_t)cout);
    float *x = cosy_arena_floats(arena, (size_t)cin * Tin);
    for (int i = 0; i < cin * cout * K; i++) w[i] = rnd();
    for (int i = 0; i < cout; i++) b[i] = rnd();
    for (int i = 0; i < cin * Tin; i++) x[i] = rnd();
    cosy_conv c = {.w = w, .b = b, .cout = cout, .cin = cin, .k = K, .stride = u, .pad = P, .dilation = 1, .transposed = 1};
    cosy_act xa, ya;
    CHECK_OK(cosy_act_alloc(&xa, cin, Tin, arena));
    CHECK_OK(cosy_act_alloc(&ya, cout, Ty, arena));
    act_fill(&xa, x);
    if (bf16) {
        uint16_t *packed = cosy_arena_alloc(arena, sizeof(uint16_t) * cosy_conv1d_packed_bf16_elems(&c));
        CHECK_OK(cosy_conv1d_pack_bf16(packed, &c, w, COSY_DTYPE_F32));
        c.w_bf16 = packed;
        c.w = NULL;
        cosy_act_bf16 xb;
        CHECK_OK(cosy_act_bf16_alloc(&xb, cin, Tin, arena));
        cosy_act_to_bf16(pool, &xb, &xa);
        CHECK_OK(cosy_conv1d_transposed_bf16(pool, &c, &xb, &ya, s->offset, arena));
        for (int i = 0; i < cin * cout * K; i++) w[i] = as_bf16(w[i]);
        for (int i = 0; i < cin * Tin; i++) x[i] = as_bf16(x[i]);
    } else {
        CHECK_OK(cosy_conv1d_transposed(pool, &c, &xa, &ya, s->offset, arena));
    }
    /* y[co][o] = b[co] + sum over (ci, t, k) with t u - P + k = o of w[ci][co][k] x[ci][t] */
    const double n = (double)cin * ((K + u - 1) / u) + 1, unit = 1.0 / 16777216.0;
    double worst = 0;
    for (int co = 0; co < cout; co++)
        for (int o = 0; o < Tout; o++) {
            double acc = b[co], mag = fabs(b[co]);
            for (int k = 0; k < K; k++) {
                if ((o + P - k) % u != 0 || o + P - k < 0) continue;
                int t = (o + P - k) / u;
                if (t >= Tin) continue;
                for (int ci = 0; ci < cin; ci++) {
                    double p = (double)w[((size_t)ci * cout + co) * K + k] * x[(size_t)ci * Tin + t];
                    acc += p;
                    mag += fabs(p);
                }
            }
            double e = fabs(ya.data[(size_t)co * ya.ld + s->offset + o] - acc) / (n * unit * mag + 1e-30);
            if (!(e <= worst)) worst = e != e ? INFINITY : e;
        }
    CHECK(margins_zero(&ya, s->offset, s->offset + Tout));
    return worst;
}

static void test_transposed(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 16 << 20));
    const cosy_cpu_level_t levels[] = {COSY_CPU_PORTABLE, COSY_CPU_AVX512, COSY_CPU_AVX512BF16, COSY_CPU_AMX};
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
            if (!bf16 && levels[l] > COSY_CPU_PORTABLE) continue; /* f32: one path (sgemm) */
            if (!set_level(levels[l])) continue;
            double worst = 0;
            for (size_t i = 0; i < sizeof up_shapes / sizeof up_shapes[0]; i++) {
                double e = check_up(&up_shapes[i], bf16, &arena);
                if (!(e <= 1.0)) fprintf(stderr, "  transposed shape %zu: error %.3g of the bound\n", i, e);
                if (!(e <= worst)) worst = e;
            }
            printf("  transposed %s on %s: worst error %.3f of the f32 summation bound\n", bf16 ? "bf16" : "f32",
                   cosy_cpu_level_name(levels[l]), worst);
            CHECK(worst <= 1.0);
        }
    cosy_cpu_reset();
    cosy_arena_free(&arena);
}

/* ---- strided convolutions (f32, im2col + sgemm) ---------------------------------------------- */

/* HiFT's source_downs: k = 2u, stride u, padding u / 2 over the 18-row spectrum, and the pointwise one */
static void test_strided(void)
{
    const int shapes[][5] = {{18, 24, 30, 15, 7}, {18, 8, 6, 3, 1}, {18, 4, 1, 1, 0}, {5, 7, 4, 2, 1}};
    const int lens[] = {401, 2001, 100, 33};
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 16 << 20));
    double worst = 0;
    for (int si = 0; si < 4; si++) {
        const int cin = shapes[si][0], cout = shapes[si][1], K = shapes[si][2], u = shapes[si][3], P = shapes[si][4], T = lens[si];
        const int Tout = (T + 2 * P - (K - 1) - 1) / u + 1;
        cosy_arena_reset(&arena);
        float *w = cosy_arena_floats(&arena, (size_t)cout * cin * K), *b = cosy_arena_floats(&arena, (size_t)cout);
        float *x = cosy_arena_floats(&arena, (size_t)cin * (T + 5));
        for (int i = 0; i < cout * cin * K; i++) w[i] = rnd();
        for (int i = 0; i < cout; i++) b[i] = rnd();
        for (int i = 0; i < cin * (T + 5); i++) x[i] = rnd();
        cosy_conv c = {.w = w, .b = b, .cout = cout, .cin = cin, .k = K, .stride = u, .pad = P, .dilation = 1};
        cosy_act y;
        CHECK_OK(cosy_act_alloc(&y, cout, Tout, &arena));
        CHECK_OK(cosy_conv1d_strided(pool, &c, x, T, T + 5, &y, &arena)); /* row stride past the length */
        const double n = (double)cin * K + 1, unit = 1.0 / 16777216.0;
        for (int co = 0; co < cout; co++)
            for (int t = 0; t < Tout; t++) {
                double acc = b[co], mag = fabs(b[co]);
                for (int ci = 0; ci < cin; ci++)
                    for (int k = 0; k < K; k++) {
                        int ti = t * u - P + k;
                        if (ti < 0 || ti >= T) continue;
                        double p = (double)w[((size_t)co * cin + ci) * K + k] * x[(size_t)ci * (T + 5) + ti];
                        acc += p;
                        mag += fabs(p);
                    }
                double e = fabs(y.data[(size_t)co * y.ld + t] - acc) / (n * unit * mag);
                if (!(e <= worst)) worst = e != e ? INFINITY : e;
            }
        CHECK(margins_zero(&y, 0, Tout));
        cosy_act wrong;
        CHECK_OK(cosy_act_alloc(&wrong, cout, Tout + 1, &arena));
        CHECK_FAILS(cosy_conv1d_strided(pool, &c, x, T, T + 5, &wrong, &arena), COSY_ERR_INTERNAL, "strided");
    }
    printf("  strided f32: worst error %.3f of the f32 summation bound\n", worst);
    CHECK(worst <= 1.0);
    cosy_arena_free(&arena);
}

/* ---- packing and refusals ------------------------------------------------------------------- */

/* Weights stored as bf16 pack to the same tiles as their f32 originals rounded; shapes the kernels do
 * not take are refused with a message. */
static void test_pack_and_refusals(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 4 << 20));
    for (int transposed = 0; transposed < 2; transposed++) {
        cosy_conv c = {.cout = 37, .cin = 45, .k = 5, .stride = transposed ? 2 : 1, .pad = 2, .dilation = 1, .transposed = transposed};
        const size_t n = (size_t)37 * 45 * 5, np = cosy_conv1d_packed_bf16_elems(&c);
        CHECK(np == (size_t)(transposed ? 192 : 64) * (transposed ? 1 : 5) * 64);
        float *w = cosy_arena_floats(&arena, n);
        uint16_t *wb = cosy_arena_alloc(&arena, 2 * n), *p0 = cosy_arena_alloc(&arena, 2 * np), *p1 = cosy_arena_alloc(&arena, 2 * np);
        for (size_t i = 0; i < n; i++) {
            w[i] = rnd();
            wb[i] = cosy_f32_to_bf16(w[i]);
        }
        CHECK_OK(cosy_conv1d_pack_bf16(p0, &c, w, COSY_DTYPE_F32));
        CHECK_OK(cosy_conv1d_pack_bf16(p1, &c, wb, COSY_DTYPE_BF16));
        CHECK(memcmp(p0, p1, 2 * np) == 0);
        size_t nonzero = 0;
        for (size_t i = 0; i < np; i++) nonzero += p0[i] != 0;
        CHECK(nonzero == n); /* every weight once, padding zero (no random weight rounds to 0) */
        CHECK_FAILS(cosy_conv1d_pack_bf16(p0, &c, w, COSY_DTYPE_F16), COSY_ERR_UNSUPPORTED, "f16");
    }
    cosy_act x, y;
    cosy_act_bf16 xb;
    CHECK_OK(cosy_act_alloc(&x, 4, 10, &arena));
    CHECK_OK(cosy_act_alloc(&y, 4, 10, &arena));
    CHECK_OK(cosy_act_bf16_alloc(&xb, 4, 10, &arena));
    float w[4 * 4 * 3] = {0};
    cosy_conv even = {.w = w, .cout = 4, .cin = 4, .k = 2, .stride = 1, .pad = 1, .dilation = 1};
    CHECK_FAILS(cosy_conv1d_same(pool, &even, &x, &y, NULL), COSY_ERR_INTERNAL, "k2");
    cosy_conv wide = {.w = w, .cout = 4, .cin = 4, .k = 3, .stride = 1, .pad = 40, .dilation = 40};
    CHECK_FAILS(cosy_conv1d_same(pool, &wide, &x, &y, NULL), COSY_ERR_INTERNAL, "d40");
    cosy_conv unpacked = {.w = w, .cout = 4, .cin = 4, .k = 3, .stride = 1, .pad = 1, .dilation = 1};
    CHECK_FAILS(cosy_conv1d_same_bf16(pool, &unpacked, &xb, &y, NULL), COSY_ERR_INTERNAL, "not packed");
    cosy_conv up = {.w = w, .cout = 4, .cin = 4, .k = 3, .stride = 2, .pad = 0, .dilation = 1, .transposed = 1};
    CHECK_FAILS(cosy_conv1d_transposed(pool, &up, &x, &y, 0, &arena), COSY_ERR_INTERNAL, "into 10");
    cosy_arena_free(&arena);
}

/* ---- activations ---------------------------------------------------------------------------- */

/* Snake against the formula in double, leaky ReLU exactly; the bf16 forms pair-interleaved, with odd
 * channel counts' last high half, padding pair-rows and margins zero: leaky ReLU's the f32 results
 * rounded (bit for bit, same path), Snake's (its own sine) within half a bf16 step of the f32 bound. */
static void test_activations(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 4 << 20));
    const cosy_cpu_level_t levels[] = {COSY_CPU_PORTABLE, COSY_CPU_AVX512, COSY_CPU_AMX};
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        if (!set_level(levels[l])) continue;
        cosy_arena_reset(&arena);
        const int C = 3, T = 301;
        float alpha[3] = {0.5f, 1.0f, 3.7f};
        cosy_act x, y;
        CHECK_OK(cosy_act_alloc(&x, C, T, &arena));
        CHECK_OK(cosy_act_alloc(&y, C, T, &arena));
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++) x.data[(size_t)c * x.ld + t] = 40.0f * rnd();
        x.data[17] = 20000.0f; /* past the vectorised sine's range */
        x.data[18] = -9000.0f;
        x.data[x.ld + 5] = NAN;
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0) cosy_snake_rows(pool, y.data, y.ld, x.data, x.ld, C, T, alpha);
            else cosy_leaky_relu_rows(pool, y.data, y.ld, x.data, x.ld, C, T, 0.1f);
            double worst = 0;
            int nan_ok = 1;
            for (int c = 0; c < C; c++)
                for (int t = 0; t < T; t++) {
                    double xv = x.data[(size_t)c * x.ld + t], yv = y.data[(size_t)c * y.ld + t];
                    if (xv != xv) {
                        nan_ok &= yv != yv;
                        continue;
                    }
                    double s = sin((double)alpha[c] * xv);
                    double ref = kind == 0 ? xv + 1.0 / (alpha[c] + 1e-9) * s * s : (xv > 0 ? xv : (double)(float)(xv * 0.1f));
                    double e = fabs(yv - ref) / (fabs(ref) + 1.0);
                    if (e > worst) worst = e;
                }
            CHECK(kind == 0 ? worst < 2e-6 : worst == 0);
            CHECK(nan_ok);
            CHECK(margins_zero(&y, 0, T));
            /* the bf16 form */
            cosy_act_bf16 yb;
            CHECK_OK(cosy_act_bf16_alloc(&yb, C, T, &arena));
            if (kind == 0) cosy_snake_bf16(pool, &yb, &x, alpha);
            else cosy_leaky_relu_bf16(pool, &yb, &x, 0.1f);
            int same = 1, zeros = 1;
            const int P = cosy_act_bf16_pairs(C);
            CHECK(P == 16);
            for (int p = 0; p < P; p++)
                for (int t = -COSY_ACT_PAD; t < yb.ld - COSY_ACT_PAD; t++)
                    for (int h = 0; h < 2; h++) {
                        uint16_t v = yb.data[((size_t)p * yb.ld + (size_t)t) * 2 + (size_t)h];
                        int c = 2 * p + h;
                        if (c >= C || t < 0 || t >= T) {
                            zeros &= v == 0;
                        } else if (kind == 1) {
                            same &= v == cosy_f32_to_bf16(y.data[(size_t)c * y.ld + t]);
                        } else {
                            /* Snake's bf16 form has a sine of its own: within the f32 form's bound of the
                             * formula, plus half a bf16 step (2^(e - 8) for a value 2^e <= |v| < 2^(e + 1)) */
                            double xv = x.data[(size_t)c * x.ld + t], sv = sin((double)alpha[c] * xv);
                            double ref = xv + 1.0 / (alpha[c] + 1e-9) * sv * sv, got = cosy_bf16_to_f32(v);
                            if (xv != xv) same &= got != got;
                            else if (!(fabs(got - ref) <= ldexp(1.0, ilogb(ref) - 8) + 4e-6 * (fabs(ref) + 1.0))) {
                                fprintf(stderr, "snake bf16 c %d t %d: x %.9g alpha %g got %.9g ref %.9g f32 %.9g\n", c, t, xv, alpha[c], got, ref, y.data[(size_t)c * y.ld + t]);
                                same = 0;
                            }
                        }
                    }
            CHECK(same);
            CHECK(zeros);
        }
        /* the sum and the division are the plain float operations, bit for bit */
        cosy_act z;
        CHECK_OK(cosy_act_alloc(&z, C, T, &arena));
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++) z.data[(size_t)c * z.ld + t] = rnd();
        memcpy(y.data - COSY_ACT_PAD, z.data - COSY_ACT_PAD, sizeof(float) * cosy_act_floats(C, T));
        cosy_rows_add(pool, y.data, y.ld, x.data, x.ld, C, T);
        int add_ok = 1, div_ok = 1;
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++) {
                float want = x.data[(size_t)c * x.ld + t] + z.data[(size_t)c * z.ld + t], got = y.data[(size_t)c * y.ld + t];
                add_ok &= want == got || (want != want && got != got);
            }
        memcpy(y.data - COSY_ACT_PAD, z.data - COSY_ACT_PAD, sizeof(float) * cosy_act_floats(C, T));
        cosy_rows_div(pool, y.data, y.ld, C, T, 3.0f);
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++) div_ok &= y.data[(size_t)c * y.ld + t] == z.data[(size_t)c * z.ld + t] / 3.0f;
        CHECK(add_ok);
        CHECK(div_ok);
        CHECK(margins_zero(&y, 0, T));
    }
    cosy_cpu_reset();
    cosy_arena_free(&arena);
}

int main(void)
{
    CHECK_OK(cosy_pool_create(2, &pool));
    printf("CPU: %s, best path %s\n", cosy_cpu_model_name(), cosy_cpu_level_name(cosy_cpu_level()));
    test_same();
    test_transposed();
    test_strided();
    test_pack_and_refusals();
    test_activations();
    cosy_pool_free(pool);
    return test_finish("test_conv1d");
}
