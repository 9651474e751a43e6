/* cpu.c — CPU feature detection, the kernel path, and the one measured property (the bf16 dot
 * product's rate against f32 FMA), see cpu.h. */
#define _GNU_SOURCE
#include "core/cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#include <immintrin.h>
#define CPU_HAVE_BF16_RATE 1
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#endif

static cosy_cpu_features features;
static cosy_cpu_level_t best_level;
static atomic_int level;
static char model_name[128] = "unknown";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static cosy_cpu_level_t parse_cap(const char *cap, cosy_cpu_level_t dflt)
{
    if (!cap) return dflt;
    if (!strcmp(cap, "portable")) return COSY_CPU_PORTABLE;
    if (!strcmp(cap, "avx2")) return COSY_CPU_AVX2;
    if (!strcmp(cap, "avx512")) return COSY_CPU_AVX512;
    if (!strcmp(cap, "avx512bf16")) return COSY_CPU_AVX512BF16;
    if (!strcmp(cap, "amx")) return COSY_CPU_AMX;
    return dflt;
}

static void detect_level(void)
{
    cosy_cpu_level_t want = parse_cap(getenv("COSY_CPU"), best_level);
    atomic_store(&level, want < best_level ? want : best_level);
}

static void detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    features.avx2 = __builtin_cpu_supports("avx2");
    features.fma = __builtin_cpu_supports("fma");
    features.avx512f = __builtin_cpu_supports("avx512f");
    features.avx512bw = __builtin_cpu_supports("avx512bw");
    features.avx512vl = __builtin_cpu_supports("avx512vl");
    features.avx512dq = __builtin_cpu_supports("avx512dq");
    features.avx512vnni = __builtin_cpu_supports("avx512vnni");
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) features.f16c = (c >> 29) & 1;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        features.amx_bf16 = (d >> 22) & 1;
        features.amx_tile = (d >> 24) & 1;
        features.amx_int8 = (d >> 25) & 1;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        features.avx512bf16 = features.avx512f && ((a >> 5) & 1);
        features.avxvnni = features.avx2 && ((a >> 4) & 1);
    }
#endif
#if defined(__x86_64__) && defined(__linux__)
    /* Linux hands out the AMX tile data state only on request (once per process) */
    if (features.amx_tile && features.amx_bf16)
        features.amx_granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *colon = strchr(line, ':');
                if (colon) {
                    colon++;
                    while (*colon == ' ') colon++;
                    snprintf(model_name, sizeof model_name, "%s", colon);
                    model_name[strcspn(model_name, "\n")] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
    cosy_cpu_level_t best = COSY_CPU_PORTABLE;
    if (features.avx2 && features.fma && features.f16c) best = COSY_CPU_AVX2;
    if (best == COSY_CPU_AVX2 && features.avx512f && features.avx512bw && features.avx512vl && features.avx512dq)
        best = COSY_CPU_AVX512;
    if (best == COSY_CPU_AVX512 && features.avx512bf16) best = COSY_CPU_AVX512BF16;
    if (best == COSY_CPU_AVX512BF16 && features.amx_tile && features.amx_bf16 && features.amx_granted) best = COSY_CPU_AMX;
    best_level = best;
    detect_level();
}

const cosy_cpu_features *cosy_cpu_get_features(void)
{
    pthread_once(&once, detect);
    return &features;
}

cosy_cpu_level_t cosy_cpu_level(void)
{
    pthread_once(&once, detect);
    return (cosy_cpu_level_t)atomic_load_explicit(&level, memory_order_relaxed);
}

void cosy_cpu_reset(void)
{
    pthread_once(&once, detect);
    detect_level();
}

cosy_cpu_level_t cosy_cpu_cap(cosy_cpu_level_t cap)
{
    pthread_once(&once, detect);
    atomic_store(&level, cap < best_level ? cap : best_level);
    return cosy_cpu_level();
}

const char *cosy_cpu_level_name(cosy_cpu_level_t l)
{
    switch (l) {
    case COSY_CPU_AMX: return "amx";
    case COSY_CPU_AVX512BF16: return "avx512bf16";
    case COSY_CPU_AVX512: return "avx512";
    case COSY_CPU_AVX2: return "avx2";
    default: return "portable";
    }
}

const char *cosy_cpu_model_name(void)
{
    pthread_once(&once, detect);
    return model_name;
}

/* ---- bf16 dot product rate ------------------------------------------------------------------ */

#ifdef CPU_HAVE_BF16_RATE
#define CPU_RATE_CHAINS 16 /* independent accumulators: more than latency x issue rate on any core */

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* n rounds of CPU_RATE_CHAINS independent VDPBF16PS (32 multiply-adds each); returns seconds */
__attribute__((target("avx512f,avx512bf16"), noinline)) static double time_dpbf16(long n)
{
    __m512 acc[CPU_RATE_CHAINS];
    for (int i = 0; i < CPU_RATE_CHAINS; i++) acc[i] = _mm512_setzero_ps();
    __m512i a = _mm512_set1_epi32(0x3f803f80), b = _mm512_set1_epi32(0x3c003c00);
    double t0 = seconds();
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < CPU_RATE_CHAINS; k++) acc[k] = _mm512_dpbf16_ps(acc[k], (__m512bh)a, (__m512bh)b);
        __asm__ volatile("" : "+v"(a)); /* keeps the loop from being folded */
    }
    double t = seconds() - t0;
    __m512 s = acc[0];
    for (int i = 1; i < CPU_RATE_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return t;
}

/* the same with f32 FMA (16 multiply-adds each) */
__attribute__((target("avx512f,fma"), noinline)) static double time_fma(long n)
{
    __m512 acc[CPU_RATE_CHAINS];
    for (int i = 0; i < CPU_RATE_CHAINS; i++) acc[i] = _mm512_setzero_ps();
    __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0.0078125f);
    double t0 = seconds();
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < CPU_RATE_CHAINS; k++) acc[k] = _mm512_fmadd_ps(a, b, acc[k]);
        __asm__ volatile("" : "+v"(a));
    }
    double t = seconds() - t0;
    __m512 s = acc[0];
    for (int i = 1; i < CPU_RATE_CHAINS; i++) s = _mm512_add_ps(s, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return t;
}
#endif

static int bf16_dot_faster;
static pthread_once_t rate_once = PTHREAD_ONCE_INIT;

static void measure_rates(void)
{
#ifdef CPU_HAVE_BF16_RATE
    if (!features.avx512bf16) return;
    /* best of 5 alternating short runs, so a preemption during one run does not decide it; the two
     * rates differ by 2x either way on the cores we know, far from the threshold of equality */
    double best_dp = 1e30, best_fma = 1e30;
    for (int r = 0; r < 5; r++) {
        double d = time_dpbf16(5000), f = time_fma(5000);
        best_dp = d < best_dp ? d : best_dp;
        best_fma = f < best_fma ? f : best_fma;
    }
    bf16_dot_faster = 32.0 / best_dp > 16.0 / best_fma;
#endif
}

int cosy_cpu_bf16_dot_faster(void)
{
    pthread_once(&once, detect);
    pthread_once(&rate_once, measure_rates);
    return bf16_dot_faster;
}
