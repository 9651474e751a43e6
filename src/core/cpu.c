/* cpu.c — CPU feature detection (see cpu.h). */
#include "core/cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static cosy_cpu_features features;
static cosy_cpu_level_t level;
static char model_name[128] = "unknown";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void detect_level(void)
{
    cosy_cpu_level_t best = COSY_CPU_PORTABLE;
    if (features.avx2 && features.fma && features.f16c) best = COSY_CPU_AVX2;
    if (best == COSY_CPU_AVX2 && features.avx512f && features.avx512bw && features.avx512vl && features.avx512dq)
        best = COSY_CPU_AVX512;
    const char *cap = getenv("COSY_CPU");
    if (cap) {
        cosy_cpu_level_t want = best;
        if (!strcmp(cap, "portable")) want = COSY_CPU_PORTABLE;
        else if (!strcmp(cap, "avx2")) want = COSY_CPU_AVX2;
        else if (!strcmp(cap, "avx512")) want = COSY_CPU_AVX512;
        if (want < best) best = want;
    }
    level = best;
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
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        features.avx512bf16 = features.avx512f && ((a >> 5) & 1);
        features.avxvnni = features.avx2 && ((a >> 4) & 1);
    }
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
    return level;
}

void cosy_cpu_reset(void)
{
    pthread_once(&once, detect);
    detect_level();
}

const char *cosy_cpu_level_name(cosy_cpu_level_t l)
{
    switch (l) {
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
