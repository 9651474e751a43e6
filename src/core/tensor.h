/*
 * tensor.h — a tensor is a typed view over memory someone else owns (an mmap'ed model file,
 * an arena, a session buffer). Shapes are in PyTorch order, outermost first: a Linear weight
 * is [out, in], a Conv1d weight is [out, in/groups, kernel], row-major and contiguous.
 * (GGUF stores dimensions innermost first; src/io/gguf.c reverses them at the boundary.)
 */
#ifndef COSY_TENSOR_H
#define COSY_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"

#define COSY_MAX_DIMS 4

typedef struct {
    const char *name;
    cosy_dtype dtype;
    int ndim;
    int64_t shape[COSY_MAX_DIMS];
    void *data;
    size_t nbytes;
} cosy_tensor;

int64_t cosy_tensor_numel(const cosy_tensor *t);
/* Bytes taken by `n` elements of `dtype` (n must be a multiple of the block size for Q8_0/Q4_0);
 * 0 for an unknown dtype. */
size_t cosy_dtype_nbytes(cosy_dtype dtype, int64_t n);
/* Elements per block (32 for Q8_0 and Q4_0, else 1). */
int cosy_dtype_block(cosy_dtype dtype);
int cosy_dtype_valid(int dtype);
/* "[80, 512, 3]" into buf. */
const char *cosy_shape_str(const int64_t *shape, int ndim, char *buf, size_t size);

/* Widens `n` elements of `src` (f32/f16/bf16/q8_0/q4_0) into f32 `dst`. */
void cosy_convert_to_f32(float *dst, const void *src, cosy_dtype src_dtype, int64_t n);
/* Narrows f32 to f32/f16/bf16 (and q8_0/q4_0 when n % 32 == 0), quantising as ggml does
 * (quantize_row_q8_0_ref / quantize_row_q4_0_ref), so our files and ggml's agree byte for byte. */
void cosy_convert_from_f32(void *dst, cosy_dtype dst_dtype, const float *src, int64_t n);

/* Q8_0 block: one f16 scale then 32 int8 (ggml layout). */
typedef struct {
    uint16_t d;
    int8_t qs[32];
} cosy_block_q8_0;

/* Q4_0 block: one f16 scale d then 16 bytes; byte j holds element j in its low nibble and element
 * j + 16 in its high nibble; value = (nibble - 8) * d (ggml layout, GGUF type 2). */
typedef struct {
    uint16_t d;
    uint8_t qs[16];
} cosy_block_q4_0;

#endif
