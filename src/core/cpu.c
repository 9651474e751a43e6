/* cpu.c — CPU feature detection and the kernel path (see cpu.h). */
#define _GNU_SOURCE
#include "core/cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
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
