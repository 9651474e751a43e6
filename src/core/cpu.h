/*
 * cpu.h — run-time CPU feature detection, so one binary runs on any x86-64, and the one place
 * that decides which kernel path a CPU gets.
 *
 * Kernels with AVX2 / AVX-512 / AVX512-BF16 / AMX variants are compiled with target attributes and
 * picked through cosy_cpu_level() at run time; the default build has no -march flag. The levels are
 * ordered: each includes the ones below it (an AMX machine also has AVX512-BF16).
 *
 *   portable     plain C (and OpenBLAS)
 *   avx2         AVX2 + FMA + F16C
 *   avx512       AVX-512 F/BW/VL/DQ
 *   avx512bf16   + AVX512-BF16 (VDPBF16PS: bf16 pairs into f32; AMD Zen 4/5, Intel Cooper Lake on)
 *   amx          + AMX-TILE and AMX-BF16 granted by the OS (Intel Sapphire Rapids on)
 *
 * COSY_CPU=portable|avx2|avx512|avx512bf16|amx in the environment caps the level, so every path can be
 * run and benchmarked on a machine that has a higher one (tests use it to run every variant).
 */
#ifndef COSY_CPU_H
#define COSY_CPU_H

typedef enum {
    COSY_CPU_PORTABLE = 0,
    COSY_CPU_AVX2 = 1,       /* AVX2 + FMA + F16C */
    COSY_CPU_AVX512 = 2,     /* AVX-512 F/BW/VL/DQ */
    COSY_CPU_AVX512BF16 = 3, /* + AVX512-BF16 */
    COSY_CPU_AMX = 4,        /* + AMX-TILE, AMX-BF16, tile state granted by the OS */
} cosy_cpu_level_t;

typedef struct {
    int avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avxvnni;
    int amx_tile, amx_bf16, amx_int8; /* what CPUID reports */
    int amx_granted;                  /* the OS gave this process the tile data state */
} cosy_cpu_features;

const cosy_cpu_features *cosy_cpu_get_features(void);
cosy_cpu_level_t cosy_cpu_level(void);
/* "portable", "avx2", "avx512", "avx512bf16", "amx" */
const char *cosy_cpu_level_name(cosy_cpu_level_t level);
/* Model name from /proc/cpuinfo (or "unknown"), for benchmark reports. */
const char *cosy_cpu_model_name(void);
/* Whether this CPU's VDPBF16PS (AVX512-BF16) does more multiply-adds per second than its f32 FMA,
 * measured once per process (~1 ms): a bf16 kernel without AMX only pays where it does. Intel cores
 * issue it at half the FMA rate (measured on Sapphire Rapids: 16 vs 32 per cycle), AMD Zen 4/5 at
 * twice. 0 on a CPU without AVX512-BF16. Not affected by COSY_CPU. */
int cosy_cpu_bf16_dot_faster(void);
/* Re-reads COSY_CPU (tests change it between cases). */
void cosy_cpu_reset(void);
/* Sets the cap as COSY_CPU would (tests, benches); returns the level now in force. */
cosy_cpu_level_t cosy_cpu_cap(cosy_cpu_level_t cap);

#endif
