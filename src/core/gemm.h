/*
 * gemm.h — matrix products on weights packed once at load time, for the models' many products of
 * few rows (tens to hundreds of frames) by large weight matrices.
 *
 * Why not sgemm: a BLAS call re-packs the whole weight matrix on every call (a quarter of the flow's
 * run time at the real size) and hands the work to its own threads, which compete with ours on a
 * 2-core machine. Here a weight W[N][K] (PyTorch Linear layout) is packed once, and the kernels read
 * the activations in place. The caller splits the output columns over its threads.
 *
 * Two packed forms:
 *   f32 panels   [ceil(N/32)][K][32] (zero-padded): AVX-512 FMA kernel, 12 rows x 32 columns per
 *                step (gemm_f32.c). The exact path.
 *   bf16 tiles   for each block of 16 output columns, K rounded up to 32 and cut in tiles of 32 inputs
 *                stored as [16 pairs][16 columns][2] bf16 (1 KiB): exactly Intel AMX's B-tile layout
 *                for TDPBF16PS, and one 64-byte row per input pair, which is what VDPBF16PS
 *                (AVX512-BF16) multiplies against a broadcast pair of activations. Blocks are stored
 *                column block by column block, so a block's tiles are contiguous; N is padded to 32
 *                (two blocks per pass). Activations are bf16 rows of Kp = K rounded up to 32, padded
 *                to a multiple of 32 rows. Products accumulate in f32 (gemm_bf16.c).
 * cpu.h's level picks the kernel: AMX tiles at COSY_CPU_AMX, VDPBF16PS at COSY_CPU_AVX512BF16; below
 * that the bf16 form is not used (callers keep f32).
 */
#ifndef COSY_GEMM_H
#define COSY_GEMM_H

#include <stddef.h>
#include <stdint.h>

#define COSY_PANEL 32 /* columns per packed f32 panel */

enum { COSY_ACT_NONE = 0, COSY_ACT_GELU = 1, COSY_ACT_SILU = 2 };

/* ---- f32 panels (gemm_f32.c) ---- */

/* 1 when the packed AVX-512 kernels run on this CPU (else callers use cosy_sgemm). */
int cosy_gemm_f32_available(void);
/* w[N][K] (row stride ldw) -> panels [ceil(N/32)][K][32], zero-padded */
void cosy_pack_f32_rows(float *dst, const float *w, int N, int K, int ldw);
/* v[K][N] (row stride ldv) -> panels [ceil(N/32)][K][32], zero-padded */
void cosy_pack_f32_cols(float *dst, const float *v, int K, int N, int ldv);
/* The same two for rows given by pointers (rows[n] holds K floats; rows[k] holds N): exactly the
 * values cosy_pack_f32_rows / cosy_pack_f32_cols would place. */
void cosy_pack_f32_row_ptrs(float *dst, const float *const *rows, int N, int K);
void cosy_pack_f32_col_ptrs(float *dst, const float *const *rows, int K, int N);
/* C[M][N] = act(alpha * A[M][K] . B + bias) (+ C when accumulate) for the column panels [p0, p1) of
 * B (panel p at P + p * panel_stride, [K][32]); bias (padded to the panels) may be NULL. One thread. */
void cosy_gemm_f32_panels(int M, int N, int K, float alpha, const float *A, int lda, const float *P, size_t panel_stride, int p0,
                          int p1, const float *bias, float *C, int ldc, int accumulate, int act);

/* ---- bf16 tiles (gemm_bf16.c) ---- */

/* COSY_CPU_AMX or COSY_CPU_AVX512BF16: the kernel cosy_gemm_bf16 uses now; 0 when this CPU (or the
 * COSY_CPU cap) has no bf16 products. */
int cosy_gemm_bf16_level(void);
/* 1 when these bf16 products outrun the f32 ones on this CPU: AMX, or AVX512-BF16 whose VDPBF16PS beats
 * f32 FMA (cosy_cpu_bf16_dot_faster: AMD Zen 4/5 yes, Intel without AMX no). The AUTO types use it. */
int cosy_gemm_bf16_faster(void);
/* bf16 elements of W[N][K] in the packed form. */
size_t cosy_pack_bf16_elems(int N, int K);
/* W[n][k] at w[n * ldw + k] (f32, rounded to nearest even) into the packed form. */
void cosy_pack_bf16(uint16_t *dst, const float *w, int N, int K, int ldw);
/* The same from bf16 values (as a model file stores them). */
void cosy_pack_bf16_from_bf16(uint16_t *dst, const uint16_t *w, int N, int K, int ldw);
/* ... with W's rows given by pointers (rows[n] holds K values), and W[n][k] = rows[k][n]. */
void cosy_pack_bf16_rows(uint16_t *dst, const float *const *rows, int N, int K);
void cosy_pack_bf16_t_rows(uint16_t *dst, const float *const *rows, int K, int N);
/* The same two from bf16 rows. */
void cosy_pack_bf16_rows16(uint16_t *dst, const uint16_t *const *rows, int N, int K);
void cosy_pack_bf16_t_rows16(uint16_t *dst, const uint16_t *const *rows, int K, int N);
/* W[N][K] stored row after row (row n at (char *)w + n * row_bytes) in a weight type (f32, bf16, q8_0,
 * q4_0: cosy_dtype values) into the packed form, each value widened exactly then rounded to bf16:
 * the same result as widening to f32 and cosy_pack_bf16. Used where compact weights meet a long feed
 * (the LM's prefill). K % 32 == 0 for the block types. */
void cosy_pack_bf16_typed(uint16_t *dst, const void *w, int dtype, size_t row_bytes, int N, int K);
/* n floats rounded to bf16 (nearest even) */
void cosy_bf16_store(uint16_t *dst, const float *src, int n);
/* rows x[r * ldx + k] * scale to bf16 dst[rows_p][Kp] (zero padding; Kp, rows_p multiples of 32). */
void cosy_bf16_convert_rows(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p);
/* C[M][N] (row stride ldc) = act(A[Mp][Kp] . B + bias) (+ C when accumulate) for the output columns
 * [32 j0, 32 j1); B packed with b_kb tiles of 32 inputs per column block (b_kb >= Kp / 32); bias
 * [N] or NULL. One thread. */
void cosy_gemm_bf16(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, const float *bias, float *C, int ldc,
                    int accumulate, int act, int j0, int j1);

#endif
