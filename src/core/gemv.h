/*
 * gemv.h — matrix-vector products on compact weight types (f32, bf16, q8_0, q4_0), the kernels of
 * the LM's decode step.
 *
 * Why: decoding one speech token multiplies a single activation row by every LM matrix, so the
 * step is bound by how many bytes of weights stream from memory. Storing the matrices as bf16
 * (2 bytes), q8_0 (1 byte + one f16 scale per 32) or q4_0 (half a byte + one f16 scale per 32)
 * instead of f32 (4 bytes) makes the step faster in proportion. A product handles up to
 * COSY_GEMV_MAX_T activation rows per pass over the weights, so short multi-token feeds (bistream
 * chunks) and batched prefill reuse each weight load T times.
 *
 * Each type has an AVX-512 (two for q8_0/q4_0: VNNI vpdpbusd, and vpmaddubsw + vpmaddwd), an AVX2
 * and a portable variant, compiled with per-function target attributes and picked at run time from
 * cosy_cpu_level() (COSY_CPU caps it), so one binary runs on any x86-64. All variants compute the
 * same sums; they differ only in summation order (f32/bf16, and the f32 sum of the per-block terms)
 * and not at all in the integer part (q8_0/q4_0).
 *
 * The quantised matrices are ggml's blocks exactly as a GGUF file stores them (so a model stored in
 * its run-time type is used in place from the mapped file):
 *   q8_0  {f16 d; int8 q[32]}: w = q * d, d = max|w| / 127;
 *   q4_0  {f16 d; uint8 qs[16]}: element j < 16 in the low nibble of qs[j], j + 16 in the high one,
 *         w = (nibble - 8) * d, d = (the signed w of largest magnitude) / -8.
 * The activations are quantised to q8 blocks (cosy_gemv_prepare: d = max|x| / 127 per 32), the block
 * dot products are exact int32 sums (q4_0: unsigned nibbles times signed x, then minus 8 * the block's
 * sum of x, also exact), and each is scaled by d_w * d_x.
 */
#ifndef COSY_GEMV_H
#define COSY_GEMV_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"

#define COSY_GEMV_MAX_T 8  /* activation rows per pass over the weights */
#define COSY_Q8_BLOCK 32

/* A weight matrix [rows, cols] (PyTorch Linear layout: one row per output) in its run-time type. */
typedef struct {
    cosy_dtype dtype;     /* COSY_DTYPE_F32, COSY_DTYPE_BF16, COSY_DTYPE_Q8_0 or COSY_DTYPE_Q4_0 */
    int rows, cols;       /* q8_0, q4_0: cols % 32 == 0 */
    const void *data;     /* f32: float[rows][cols]; bf16: uint16_t[rows][cols];
                             q8_0: cosy_block_q8_0[rows][cols / 32]; q4_0: cosy_block_q4_0[rows][cols / 32] */
} cosy_matrix;

/* Activation rows prepared for a product with a matrix of type `dtype`: x itself for f32/bf16,
 * x quantised per 32-block for q8_0 and q4_0. The buffers belong to the caller. */
typedef struct {
    cosy_dtype dtype;
    int T, cols;
    const float *x;       /* [T][cols] (f32 and bf16 matrices) */
    int8_t *q;            /* [T][cols] (q8_0, q4_0) */
    float *d;             /* [T][cols / 32] (q8_0, q4_0) */
    int32_t *s;           /* [T][cols / 32] (q4_0): -(sum of the block's q), the exact correction for the
                             weights' offset of 8 */
} cosy_gemv_input;

/* Bytes of q/d/s scratch cosy_gemv_prepare needs for T rows of `cols` (0 for f32/bf16). */
size_t cosy_gemv_scratch_bytes(cosy_dtype dtype, int T, int cols);

/* Fills `in` for rows x[T][cols] (kept by pointer, not copied). For q8_0/q4_0, quantises into
 * `scratch` (cosy_gemv_scratch_bytes bytes, 64-byte aligned). T may exceed COSY_GEMV_MAX_T;
 * cosy_gemv processes the rows in groups. */
void cosy_gemv_prepare(cosy_gemv_input *in, cosy_dtype dtype, const float *x, int T, int cols, void *scratch);

/* Quantises rows x[T][cols] to q8_0 (cols % 32 == 0): d = max|x| / 127 per block, q = rint(x / d). */
void cosy_q8_quantize_rows(int8_t *q, float *d, const float *x, int T, int cols);

/*
 * y[t * ldy + r] = dot(W[r, :], x[t, :]) (+ bias[r]) for rows r in [r0, r1) and every row t of x.
 * W->dtype must equal x->dtype and W->cols == x->cols. Single-threaded: callers split [0, rows)
 * over their threads. Each row of x gets exactly the bits it would get alone (T = 1): the same
 * operations in the same order whatever T and whichever weight rows share a tile — batched decode
 * (model/lm_batch.c) relies on it, tests/test_lm_batch.c checks it on every path.
 */
void cosy_gemv(const cosy_matrix *W, const cosy_gemv_input *x, const float *bias, float *y, int ldy, int r0, int r1);

/* The same product computed naively in double precision (tests, and the reference the kernels are
 * measured against). For q8_0/q4_0 it uses the quantised activations in x, like the kernels, and the
 * weights dequantised element by element. */
void cosy_gemv_naive(const cosy_matrix *W, const cosy_gemv_input *x, const float *bias, float *y, int ldy, int r0, int r1);

/* The transposed product with an f32 matrix: y[t * ldy + c] = sum_{r < rows} x[t * ldx + r] * W[r * ldw + c]
 * for c < cols and t < T (any T). Attention uses it for the probability-weighted sum of value rows. */
void cosy_gemv_t_f32(const float *W, int rows, int cols, int ldw, const float *x, int ldx, int T, float *y, int ldy);

/* Converts rows [r0, r1) of a matrix stored as `src_dtype` (f32, f16, bf16, or ggml q8_0/q4_0 blocks)
 * into `dst_data` laid out as dst->dtype (see cosy_matrix; q8_0/q4_0 quantised as ggml does, a source
 * already in dst's type copied). Rows only, for splitting over threads. Returns 0, or -1 if its row
 * scratch could not be allocated. */
int cosy_matrix_convert_rows(const cosy_matrix *dst, void *dst_data, const void *src, cosy_dtype src_dtype, int r0, int r1);

/* Test hook: 0 makes the AVX-512 q8_0/q4_0 kernels use the AVX512-BW multiply-add path even when the CPU
 * has VNNI (so both paths are tested on one machine). Returns the previous setting. */
int cosy_gemv_set_vnni(int allowed);
/* The variant cosy_gemv uses for `dtype` now, e.g. "avx512-vnni", "avx2", "portable". */
const char *cosy_gemv_variant(cosy_dtype dtype);

#endif
