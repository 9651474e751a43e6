/* test_core.c — core building blocks against naive reference implementations:
 * f16/bf16/q8_0 conversions, every f32 op, the thread pool, the arena, CPU detection. */
#include "test.h"

#include "core/arena.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "core/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (2.0 / 16777216.0) - 1.0);
}
static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
}

static void test_half(void)
{
    /* exact values */
    CHECK(cosy_f16_to_f32(0x3c00) == 1.0f);
    CHECK(cosy_f16_to_f32(0xc000) == -2.0f);
    CHECK(cosy_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(cosy_f16_to_f32(0x0001) == 5.9604644775390625e-8f);  /* smallest subnormal */
    CHECK(cosy_f16_to_f32(0x0400) == 6.103515625e-5f);         /* smallest normal */
    CHECK(isinf(cosy_f16_to_f32(0x7c00)));
    CHECK(isnan(cosy_f16_to_f32(0x7e00)));
    CHECK(cosy_f32_to_f16(1.0f) == 0x3c00);
    CHECK(cosy_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(cosy_f32_to_f16(65520.0f) == 0x7c00);                 /* rounds up to inf */
    CHECK(cosy_f32_to_f16(5.9604644775390625e-8f) == 0x0001);
    CHECK(cosy_f32_to_f16(2.98023223876953125e-8f) == 0x0000);  /* exactly half the smallest subnormal: ties to even */
    CHECK(cosy_f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3c00);      /* halfway between 1 and next: ties to even */
    CHECK(cosy_f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3c02);
    /* every f16 value round-trips */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        if (cosy_f32_to_f16(cosy_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0);
    /* bf16: round to nearest even */
    CHECK(cosy_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(cosy_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(cosy_f32_to_bf16(cosy_f32_from_bits(0x3f808000u)) == 0x3f80); /* tie -> even */
    CHECK(cosy_f32_to_bf16(cosy_f32_from_bits(0x3f818000u)) == 0x3f82); /* tie -> even (up) */
    CHECK(cosy_f32_to_bf16(cosy_f32_from_bits(0x3f808001u)) == 0x3f81);
    CHECK(isnan(cosy_bf16_to_f32(cosy_f32_to_bf16(NAN))));
    /* q8_0 */
    float x[64], y[64];
    fill(x, 64, 3.0f);
    cosy_block_q8_0 q[2];
    cosy_convert_from_f32(q, COSY_DTYPE_Q8_0, x, 64);
    cosy_convert_to_f32(y, q, COSY_DTYPE_Q8_0, 64);
    for (int b = 0; b < 2; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
        for (int i = 0; i < 32; i++) CHECK(fabsf(x[b * 32 + i] - y[b * 32 + i]) <= amax / 127.0f * 0.5f + 1e-3f * amax / 127.0f);
    }
    CHECK(cosy_dtype_nbytes(COSY_DTYPE_Q8_0, 64) == 68);
    cosy_dtype d;
    CHECK(cosy_dtype_from_name("bf16", &d) == 0 && d == COSY_DTYPE_BF16);
    CHECK(cosy_dtype_from_name("f64", &d) != 0);
}

static void naive_linear(float *y, const float *x, int T, int in, const float *W, const float *b, int out)
{
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) acc += (double)x[t * in + i] * W[o * in + i];
            y[t * out + o] = (float)acc;
        }
}

static void test_linear_norms(void)
{
    enum { T = 7, IN = 37, OUT = 19 };
    float x[T * IN], W[OUT * IN], b[OUT], y[T * OUT], r[T * OUT];
    fill(x, T * IN, 1.0f);
    fill(W, OUT * IN, 0.5f);
    fill(b, OUT, 0.5f);
    cosy_linear(y, x, T, IN, W, b, OUT);
    naive_linear(r, x, T, IN, W, b, OUT);
    CHECK(test_max_abs_diff(y, r, T * OUT) < 1e-5);
    cosy_linear(y, x, T, IN, W, NULL, OUT);
    naive_linear(r, x, T, IN, W, NULL, OUT);
    CHECK(test_max_abs_diff(y, r, T * OUT) < 1e-5);

    float g[IN], ln[T * IN];
    fill(g, IN, 1.0f);
    double worst = 0;
    cosy_rms_norm(ln, x, T, IN, g, 1e-6f);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < IN; i++) ss += (double)x[t * IN + i] * x[t * IN + i];
        for (int i = 0; i < IN; i++) worst = fmax(worst, fabs(x[t * IN + i] / sqrt(ss / IN + 1e-6) * g[i] - ln[t * IN + i]));
    }
    CHECK(worst < 1e-5);
    /* in place */
    float xi[T * IN];
    memcpy(xi, x, sizeof xi);
    cosy_rms_norm(xi, xi, T, IN, g, 1e-6f);
    CHECK(test_max_abs_diff(xi, ln, T * IN) == 0);

    float s[10] = {1, 2, 3, -INFINITY, 0, 5, 5, -1, 2, 0}, ls[10];
    memcpy(ls, s, sizeof s);
    cosy_softmax(s, 10);
    cosy_log_softmax(ls, 10);
    double sum = 0;
    for (int i = 0; i < 10; i++) sum += s[i];
    CHECK_NEAR(sum, 1.0, 1e-6);
    CHECK(s[3] == 0.0f && isinf(ls[3]) && ls[3] < 0);
    for (int i = 0; i < 10; i++)
        if (i != 3) CHECK_NEAR(expf(ls[i]), s[i], 1e-6);
    CHECK_NEAR(s[5], s[6], 0);
}

static void test_activations(void)
{
    float v[9] = {-30, -3, -1, -0.1f, 0, 0.1f, 1, 3, 30}, a[9];
#define APPLY(fn, expr)                                                             \
    do {                                                                            \
        memcpy(a, v, sizeof v);                                                     \
        fn;                                                                         \
        for (int i = 0; i < 9; i++) {                                               \
            double x = v[i];                                                        \
            CHECK_NEAR(a[i], (expr), 1e-6 * fmax(1.0, fabs(expr)));                 \
        }                                                                           \
    } while (0)
    APPLY(cosy_silu(a, 9), x / (1 + exp(-x)));
    APPLY(cosy_leaky_relu(a, 9, 0.1f), x >= 0 ? x : 0.1 * x);
#undef APPLY
}

static void test_transpose(void)
{
    float m[6] = {1, 2, 3, 4, 5, 6}, mt[6];
    cosy_transpose(mt, m, 2, 3);
    CHECK(mt[0] == 1 && mt[1] == 4 && mt[2] == 2 && mt[3] == 5 && mt[4] == 3 && mt[5] == 6);
}

static void test_arena(void)
{
    cosy_arena a;
    CHECK_OK(cosy_arena_init(&a, 1000));
    void *p = cosy_arena_alloc(&a, 10), *q = cosy_arena_alloc(&a, 10);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0 && q != p);
    size_t mark = cosy_arena_mark(&a);
    CHECK(cosy_arena_alloc(&a, 2000) == NULL);
    CHECK(strstr(cosy_last_error(), "arena") != NULL);
    CHECK(cosy_arena_mark(&a) == mark);
    CHECK(cosy_arena_alloc(&a, 800) != NULL);
    cosy_arena_release(&a, mark);
    CHECK(a.used == mark && a.high_water >= 900);
    cosy_arena_free(&a);
}

typedef struct {
    atomic_long sum;
    atomic_int calls;
    cosy_pool *pool;
} pool_ctx;

static void add_task(void *vctx, int i)
{
    pool_ctx *c = vctx;
    atomic_fetch_add(&c->sum, i);
    atomic_fetch_add(&c->calls, 1);
}

static void nested_task(void *vctx, int i)
{
    pool_ctx *c = vctx;
    (void)i;
    cosy_pool_run(c->pool, 10, add_task, c); /* runs inline, must not deadlock */
}

static void *pool_user(void *arg)
{
    pool_ctx *c = arg;
    for (int r = 0; r < 200; r++) cosy_pool_run(c->pool, 17, add_task, c);
    return NULL;
}

typedef struct {
    atomic_int hits[64];
} once_ctx;

static void once_task(void *vctx, int i)
{
    once_ctx *c = vctx;
    atomic_fetch_add(&c->hits[i], 1);
}

static void test_pool(void)
{
    cosy_pool *pool;
    CHECK_OK(cosy_pool_create(3, &pool));
    CHECK(cosy_pool_size(pool) == 3);
    pool_ctx c;
    atomic_init(&c.sum, 0);
    atomic_init(&c.calls, 0);
    c.pool = pool;
    for (int r = 0; r < 1000; r++) cosy_pool_run(pool, 13, add_task, &c);
    CHECK(atomic_load(&c.calls) == 13000);
    CHECK(atomic_load(&c.sum) == 1000L * (12 * 13 / 2));
    atomic_store(&c.sum, 0);
    atomic_store(&c.calls, 0);
    cosy_pool_run(pool, 4, nested_task, &c);
    CHECK(atomic_load(&c.calls) == 40);
    /* two threads sharing one pool */
    atomic_store(&c.calls, 0);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, pool_user, &c);
    pthread_create(&t2, NULL, pool_user, &c);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(atomic_load(&c.calls) == 2 * 200 * 17);
    /* regions of varying sizes back to back: every task runs exactly once per region */
    int bad = 0;
    for (int r = 0; r < 3000; r++) {
        once_ctx oc;
        int n = 1 + (r * 7) % 50;
        for (int i = 0; i < 64; i++) atomic_init(&oc.hits[i], 0);
        cosy_pool_run(pool, n, once_task, &oc);
        for (int i = 0; i < 64; i++) bad += atomic_load(&oc.hits[i]) != (i < n);
    }
    CHECK(bad == 0);
    cosy_pool_free(pool);
    int b, e, total = 0;
    for (int p = 0; p < 3; p++) {
        cosy_split_range(10, 3, p, &b, &e);
        total += e - b;
        CHECK(e - b == 3 || e - b == 4);
    }
    CHECK(total == 10);
}

static void test_cpu(void)
{
    const cosy_cpu_features *f = cosy_cpu_get_features();
    CHECK(f != NULL);
    cosy_cpu_level_t level = cosy_cpu_level();
    CHECK(level >= COSY_CPU_PORTABLE && level <= COSY_CPU_AMX);
    /* the levels are ordered: AMX implies AVX512-BF16 implies AVX-512 */
    if (level >= COSY_CPU_AMX) CHECK(f->amx_tile && f->amx_bf16 && f->amx_granted);
    if (level >= COSY_CPU_AVX512BF16) CHECK(f->avx512bf16);
    if (level >= COSY_CPU_AVX512) CHECK(f->avx512f && f->avx512bw);
    setenv("COSY_CPU", "portable", 1);
    cosy_cpu_reset();
    CHECK(cosy_cpu_level() == COSY_CPU_PORTABLE);
    const char *names[] = {"portable", "avx2", "avx512", "avx512bf16", "amx"};
    for (int l = 0; l <= (int)level; l++) {
        setenv("COSY_CPU", names[l], 1);
        cosy_cpu_reset();
        CHECK(cosy_cpu_level() == (cosy_cpu_level_t)l);
        CHECK(!strcmp(cosy_cpu_level_name(cosy_cpu_level()), names[l]));
    }
    CHECK(cosy_cpu_cap(COSY_CPU_AVX2) == (level < COSY_CPU_AVX2 ? level : COSY_CPU_AVX2));
    unsetenv("COSY_CPU");
    cosy_cpu_reset();
    CHECK(cosy_cpu_level() == level);
    CHECK(strlen(cosy_cpu_model_name()) > 0);
}

static void test_errors(void)
{
    CHECK(cosy_error(COSY_ERR_FORMAT, "file %s at %d", "x.pt", 12) == COSY_ERR_FORMAT);
    CHECK(!strcmp(cosy_last_error(), "file x.pt at 12"));
    cosy_error_prefix(COSY_ERR_FORMAT, "loading %s", "flow");
    CHECK(!strcmp(cosy_last_error(), "loading flow: file x.pt at 12"));
    CHECK(!strcmp(cosy_strerror(COSY_ERR_SHAPE), "shape mismatch"));
    char longmsg[3000];
    memset(longmsg, 'a', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = 0;
    cosy_error(COSY_ERR_IO, "%s", longmsg);
    cosy_error_prefix(COSY_ERR_IO, "%s", longmsg); /* truncates, no overflow */
    CHECK(strlen(cosy_last_error()) < 1024);
}

/* test_core --cpu-path NAME: ctest's entry for one CPU path (tests/CMakeLists.txt). The kernel tests run
 * every path this CPU has and print SKIP for the others; this entry makes a missing path a ctest SKIP
 * (exit 77) instead of a silent pass, so a run on a machine without e.g. AMX says so in its summary. */
static int cpu_path(const char *name)
{
    const cosy_cpu_level_t best = cosy_cpu_level();
    for (int l = COSY_CPU_PORTABLE; l <= COSY_CPU_AMX; l++) {
        if (strcmp(name, cosy_cpu_level_name((cosy_cpu_level_t)l))) continue;
        if (l > (int)best) {
            printf("SKIP: this CPU (%s, best path %s) lacks %s: the %s kernels were not tested here\n", cosy_cpu_model_name(),
                   cosy_cpu_level_name(best), name, name);
            return 77;
        }
        printf("%s: this CPU has it; test_gemm, test_gemv, test_conv1d, test_flow, test_flow_stream, test_hift_bf16, test_lm "
               "and test_lm_batch run its kernels\n", name);
        return 0;
    }
    fprintf(stderr, "test_core: unknown CPU path %s\n", name);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--cpu-path")) return cpu_path(argv[2]);
    test_half();
    test_linear_norms();
    test_activations();
    test_transpose();
    test_arena();
    test_pool();
    test_cpu();
    test_errors();
    return test_finish("test_core");
}
