/*
 * attention.h — one attention head over keys/values kept in blocks of COSY_KV_BLOCK keys, stored in
 * the layouts the product kernels read directly (core/gemm.h), so a query never waits for keys to be
 * copied or repacked, however many calls have filled the blocks.
 *
 * Why: a streamed utterance's flow attends, at every Euler step and layer, to all the frames so far
 * (the chunk mask with all left chunks). Repacking those keys on every call (as a stateless
 * attention must) cost more than the products themselves once the utterance passed ~10 s. Writing
 * each key once, in its final layout, when it is computed makes a call's attention cost just its
 * arithmetic.
 *
 * A head's slab in one block holds the K part, then the V part:
 *   bf16   K: the packed bf16 form (gemm.h) of K[32 keys][d]  (N = keys, inputs = head dims);
 *          V: the packed bf16 form of V^T[d][32 keys]          (N = head dims, inputs = keys);
 *   f32    K: K^T as one panel [d][32];  V: panels [ceil(d/32)][32 keys][32 dims].
 * A key never written holds whatever the memory held (blocks are reused): the visible mask keeps it
 * out, and it only ever meets a zero weight (it must be finite, as every value the models write is).
 */
#ifndef COSY_ATTENTION_H
#define COSY_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#define COSY_KV_BLOCK 32 /* keys per block */
#define COSY_ATTN_ROWS 64 /* queries per cosy_attn_blocks call */

/* Elements (uint16 in bf16, float in f32) of one head's slab: K part + V part. */
size_t cosy_kv_slab_elems(int d, int bf16);
/* Writes key k[d] and value v[d] of slot `slot` (0..31) into a head's slab. */
void cosy_kv_put(void *slab, int slot, const float *k, const float *v, int d, int bf16);
/* The same for n consecutive slots [slot, slot + n) (slot + n <= COSY_KV_BLOCK) from rows k + i ld,
 * v + i ld: whole groups of 16 slots go through an in-register transpose. */
void cosy_kv_put_rows(void *slab, int slot, int n, const float *k, const float *v, int ld, int d, int bf16);

typedef struct {
    const void *slab;  /* this head's keys/values in one block */
    uint32_t visible;  /* bit i: slot i takes part */
} cosy_kv_ref;

/* Bytes of scratch cosy_attn_blocks needs for n_blocks blocks of a head of width d. */
size_t cosy_attn_scratch_bytes(int d, int n_blocks);
/*
 * out[r][0..d) = sum_j softmax_j(scale q_r . k_j) v_j over the visible keys j of the blocks, for the
 * rows r < rows <= COSY_ATTN_ROWS of q (row stride ldq); out has row stride ldo. A row with no visible
 * key gets zeros. bf16: q rounded to bf16 after scaling, probabilities rounded to bf16, products summed
 * in f32 (AMX or AVX512-BF16 as gemm.h picks); f32: exact-order f32 products. scratch: 64-byte
 * aligned, cosy_attn_scratch_bytes. One thread.
 */
void cosy_attn_blocks(const float *q, int ldq, int rows, int d, float scale, const cosy_kv_ref *blocks, int n_blocks, int bf16,
                      float *out, int ldo, void *scratch);

#endif
