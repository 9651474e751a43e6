/*
 * cpu.h — run-time CPU feature detection, so one binary runs on any x86-64.
 *
 * Kernels with AVX2 / AVX-512 variants are compiled with target attributes and picked through
 * cosy_cpu_level() at run time; the default build has no -march flag. COSY_CPU=portable|avx2|
 * avx512 in the environment caps the level (tests use it to run every variant on one machine).
 */
#ifndef COSY_CPU_H
#define COSY_CPU_H

typedef enum {
    COSY_CPU_PORTABLE = 0,
    COSY_CPU_AVX2 = 1,    /* AVX2 + FMA + F16C */
    COSY_CPU_AVX512 = 2,  /* AVX-512 F/BW/VL/DQ */
} cosy_cpu_level_t;

typedef struct {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avxvnni;
} cosy_cpu_features;

const cosy_cpu_features *cosy_cpu_get_features(void);
cosy_cpu_level_t cosy_cpu_level(void);
const char *cosy_cpu_level_name(cosy_cpu_level_t level);
/* Model name from /proc/cpuinfo (or "unknown"), for benchmark reports. */
const char *cosy_cpu_model_name(void);
/* Re-reads COSY_CPU (tests change it between cases). */
void cosy_cpu_reset(void);

#endif
