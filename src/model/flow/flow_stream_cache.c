/*
 * flow_stream_cache.c — how a range-based forward of the encoder or estimator reads and writes the
 * state that flow_stream.c keeps in pages (the flow_cache description in flow_internal.h): each
 * attention layer's keys/values of every row computed, and each causal convolution's last input
 * rows of every completed chunk (the history the next chunk's first outputs read: CausalConv1d's
 * left padding, Upsample1D's, PreLookaheadLayer.conv2's).
 *
 * Rows of an incomplete chunk are written too (the queries of this call attend to them); the next
 * call starts at that chunk and overwrites them. Pages before `start` are only read (the prompt's
 * pages are shared by several streams).
 */
#include "model/flow/flow_internal.h"

#include <string.h>

/* K of row `row` (head 0) in layer/batch row b's slab; head h is h * chunk * d further, V is
 * heads * chunk * d further */
static float *kv_row(const flow_cache *fc, int layer, int b, int row, int d)
{
    float *page = fc->pages[row / fc->chunk];
    return page + fc->kv_base + (size_t)layer * fc->kv_layer + (size_t)b * fc->kv_batch + (size_t)(row % fc->chunk) * d;
}

void flow_cache_put_kv(const flow_cache *fc, int layer, const float *k, const float *v, int ld)
{
    const int d = fc->kv_width / fc->kv_heads;
    const size_t head = (size_t)fc->chunk * d, v_off = (size_t)fc->kv_heads * head;
    for (int b = 0; b < fc->B; b++)
        for (int t = 0; t < fc->n; t++) {
            float *dst = kv_row(fc, layer, b, fc->start + t, d);
            const size_t src = ((size_t)b * fc->n + t) * (size_t)ld;
            for (int h = 0; h < fc->kv_heads; h++) {
                memcpy(dst + h * head, k + src + (size_t)h * d, sizeof(float) * (size_t)d);
                memcpy(dst + v_off + h * head, v + src + (size_t)h * d, sizeof(float) * (size_t)d);
            }
        }
}

flow_kv_pages flow_cache_kv(const flow_cache *fc, int layer)
{
    const int d = fc->kv_width / fc->kv_heads;
    flow_kv_pages kv;
    kv.pages = (const void *const *)fc->pages;
    kv.rows_per_page = fc->chunk;
    kv.offset = fc->kv_base + (size_t)layer * fc->kv_layer;
    kv.batch_offset = fc->kv_batch;
    kv.row_stride = (size_t)d;
    kv.head_stride = (size_t)fc->chunk * d;
    kv.v_offset = (size_t)fc->kv_heads * fc->chunk * d;
    kv.bf16 = 0;
    return kv;
}

const float *flow_cache_conv(const flow_cache *fc, int id, const float *x, int in, int rows)
{
    const size_t slot = fc->conv_base + (size_t)id * fc->conv_slot;
    /* chunks this call completes: their last rows become the history of the chunk after them
     * (start is a multiple of chunk >= rows, so those rows lie inside x) */
    for (int end = fc->start + fc->chunk; end <= fc->start + fc->n; end += fc->chunk) {
        float *dst = fc->pages[end / fc->chunk - 1] + slot;
        for (int b = 0; b < fc->B; b++)
            memcpy(dst + (size_t)b * rows * fc->conv_width, x + ((size_t)b * fc->n + (size_t)(end - fc->start - rows)) * in,
                   sizeof(float) * (size_t)rows * in);
    }
    if (fc->start == 0) return NULL;
    return fc->pages[fc->start / fc->chunk - 1] + slot;
}
