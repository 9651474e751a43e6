/*
 * flow_kv.c — the estimator's attention over keys/values in blocks (flow_internal.h flow_kv_view):
 * writing a call's new keys into their blocks, and multi-head attention with the chunk mask (and a
 * streaming session's optional window) over them, through the one-head kernels of core/attention.h.
 *
 * The mask reproduced is add_optional_chunk_mask with a static chunk and all left chunks
 * (cosyvoice/utils/mask.py, used by the estimator's transformer blocks when streaming): a frame sees
 * every frame up to the end of its own chunk. The window (our bounded-memory option, off in the
 * reference) additionally hides frames older than `window` frames before the end of the query's
 * chunk, except the prompt's chunks.
 */
#include "model/flow/flow_internal.h"
#include "core/attention.h"
#include "core/error.h"

#include <string.h>

static const flow_kv_block *find_block(const flow_kv_view *kv, int frame)
{
    int lo = 0, hi = kv->n_blocks - 1;
    while (lo < hi) { /* the last block with key0 <= frame */
        int mid = (lo + hi + 1) / 2;
        if (kv->blocks[mid].key0 <= frame) lo = mid;
        else hi = mid - 1;
    }
    const flow_kv_block *b = kv->n_blocks > 0 ? &kv->blocks[lo] : NULL;
    return b && frame >= b->key0 && frame < b->key0 + COSY_KV_BLOCK ? b : NULL;
}

static void *slab(const flow_kv_view *kv, const flow_kv_block *blk, int b, int h)
{
    const size_t elems = kv->offset + (size_t)b * kv->batch_stride + (size_t)h * kv->head_stride;
    return kv->bf16 ? (void *)((uint16_t *)blk->mem + elems) : (void *)((float *)blk->mem + elems);
}

void flow_kv_put(const flow_kv_view *kv, int b, int frame0, int n, const float *k, const float *v, int ld, int heads, int d)
{
    for (int i = 0; i < n;) {
        const flow_kv_block *blk = find_block(kv, frame0 + i);
        if (!blk) { /* the caller allocates every block a call writes (flow_stream.c) */
            i++;
            continue;
        }
        /* the frames of this block, in one go per head */
        const int slot = frame0 + i - blk->key0;
        int run = COSY_KV_BLOCK - slot < n - i ? COSY_KV_BLOCK - slot : n - i;
        if (blk + 1 < kv->blocks + kv->n_blocks && blk[1].key0 < frame0 + i + run) run = blk[1].key0 - (frame0 + i);
        for (int h = 0; h < heads; h++)
            cosy_kv_put_rows(slab(kv, blk, b, h), slot, run, k + (size_t)i * ld + (size_t)h * d, v + (size_t)i * ld + (size_t)h * d, ld, d,
                             kv->bf16);
        i += run;
    }
}

/* Keys of the block [key0, end) visible to the queries of one query block (they share a chunk):
 * [0, limit) minus, with a window, [pinned, window_start). Bit s of the result: key key0 + s. */
static uint32_t visible_bits(int key0, int end, int limit, int pinned, int window_start)
{
    uint32_t bits = 0;
    for (int s = 0; s < COSY_KV_BLOCK; s++) {
        const int j = key0 + s;
        if (j < end && j < limit && (j < pinned || j >= window_start)) bits |= 1u << s;
    }
    return bits;
}

typedef struct {
    flow_ctx *c;
    const float *q;
    int ldq;
    const flow_kv_view *kv;
    int B, Tq, q_offset, Tk, heads, d, chunk, parts;
    float scale;
    float *out;
    int ldo;
    char *scratch;
    size_t scratch_per_part;
} kv_task;

static void kv_attn_run(void *p, int part)
{
    kv_task *a = p;
    const flow_kv_view *kv = a->kv;
    char *mine = a->scratch + (size_t)part * a->scratch_per_part;
    /* refs, then block pointers, then masks: each array aligned for its type */
    cosy_kv_ref *refs = (cosy_kv_ref *)(void *)mine;
    const flow_kv_block **used = (const flow_kv_block **)(void *)(mine + sizeof(cosy_kv_ref) * (size_t)kv->n_blocks);
    uint32_t *bits = (uint32_t *)(void *)(mine + (sizeof(cosy_kv_ref) + sizeof(void *)) * (size_t)kv->n_blocks);
    void *work = mine + (sizeof(cosy_kv_ref) + sizeof(uint32_t) + sizeof(void *)) * (size_t)kv->n_blocks;
    work = (char *)work + (64 - (uintptr_t)work % 64) % 64;
    for (int i0 = 0; i0 < a->Tq;) {
        /* a query block: at most COSY_ATTN_ROWS rows, never across a chunk boundary */
        int i1 = i0 + COSY_ATTN_ROWS < a->Tq ? i0 + COSY_ATTN_ROWS : a->Tq;
        int limit = a->Tk, window_start = 0;
        if (a->chunk > 0) {
            const int g = (a->q_offset + i0) / a->chunk, chunk_end = (g + 1) * a->chunk;
            if (i1 > chunk_end - a->q_offset) i1 = chunk_end - a->q_offset;
            if (chunk_end < limit) limit = chunk_end;
            if (kv->window > 0) window_start = chunk_end - kv->window;
        }
        int n = 0;
        for (int i = 0; i < kv->n_blocks && kv->blocks[i].key0 < limit; i++) {
            /* a block ends where the next begins (a prompt's last block is partly filled: the stream's
             * own blocks start where the prompt's chunks end) */
            int end = kv->blocks[i].key0 + COSY_KV_BLOCK;
            if (i + 1 < kv->n_blocks && kv->blocks[i + 1].key0 < end) end = kv->blocks[i + 1].key0;
            const uint32_t v = visible_bits(kv->blocks[i].key0, end, limit, kv->pinned, window_start);
            if (!v) continue;
            bits[n] = v;
            used[n++] = &kv->blocks[i];
        }
        for (int pair = part; pair < a->B * a->heads; pair += a->parts) {
            const int b = pair / a->heads, h = pair % a->heads;
            for (int i = 0; i < n; i++) refs[i] = (cosy_kv_ref){slab(kv, used[i], b, h), bits[i]};
            cosy_attn_blocks(a->q + ((size_t)b * a->Tq + i0) * a->ldq + (size_t)h * a->d, a->ldq, i1 - i0, a->d, a->scale, refs, n, kv->bf16,
                             a->out + ((size_t)b * a->Tq + i0) * a->ldo + (size_t)h * a->d, a->ldo, work);
        }
        i0 = i1;
    }
}

static int kv_parts(const flow_ctx *c, int B, int heads)
{
    int parts = cosy_pool_size(c->pool);
    if (parts > B * heads) parts = B * heads;
    return parts < 1 ? 1 : parts;
}

static size_t part_bytes(int n_blocks, int d)
{
    size_t n = (sizeof(cosy_kv_ref) + sizeof(uint32_t) + sizeof(void *)) * (size_t)n_blocks + 64 + cosy_attn_scratch_bytes(d, n_blocks);
    return (n + 63) / 64 * 64;
}

size_t flow_attention_kv_scratch_bytes(const flow_ctx *c, int B, int Tk, int heads, int d)
{
    /* blocks of a window-less sequence of Tk keys that may start mid-block (a prompt's last block) */
    const int n_blocks = Tk / COSY_KV_BLOCK + 2;
    return part_bytes(n_blocks, d) * (size_t)kv_parts(c, B, heads) + 64;
}

cosy_status flow_attention_kv(flow_ctx *c, const float *q, int ldq, const flow_kv_view *kv, int B, int Tq, int q_offset, int Tk, int heads,
                              int d, int chunk, float scale, float *out, int ldo)
{
    const int parts = kv_parts(c, B, heads);
    kv_task a = {c, q, ldq, kv, B, Tq, q_offset, Tk, heads, d, chunk, parts, scale, out, ldo, NULL, part_bytes(kv->n_blocks, d)};
    size_t mark = cosy_arena_mark(c->arena);
    a.scratch = cosy_arena_alloc(c->arena, a.scratch_per_part * (size_t)parts);
    if (!a.scratch) return cosy_error(COSY_ERR_NOMEM, "flow: scratch arena too small for attention over %d keys (%d blocks, %zu bytes, arena %zu of %zu used)", Tk, kv->n_blocks, a.scratch_per_part * (size_t)parts, c->arena->used, c->arena->size);
    if (parts == 1) kv_attn_run(&a, 0);
    else cosy_pool_run(c->pool, parts, kv_attn_run, &a);
    cosy_arena_release(c->arena, mark);
    return COSY_OK;
}
