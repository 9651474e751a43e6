/*
 * flow_layers.c — the layer kernels the flow encoder and estimator are built from, on
 * time-major activations (see flow_internal.h): element-wise work split over the pool,
 * LayerNorm, convolution over time by im2col + one matrix product, and masked multi-head
 * attention computed per (batch, head) on the pool in query blocks (so the score matrix never
 * exceeds block x keys, whatever the length).
 */
#include "model/flow/flow_internal.h"
#include "core/error.h"
#include "core/half.h"
#include "core/ops.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- element-wise, on the pool
 * (GELU and SiLU are applied inside the matrix products that produce their inputs) */

typedef struct {
    flow_range_fn fn;
    void *ctx;
    size_t n;
    int parts;
} range_task;

static void range_run(void *p, int part)
{
    range_task *t = p;
    size_t base = t->n / (size_t)t->parts, extra = t->n % (size_t)t->parts;
    size_t begin = (size_t)part * base + ((size_t)part < extra ? (size_t)part : extra);
    size_t end = begin + base + ((size_t)part < extra ? 1 : 0);
    if (begin < end) t->fn(t->ctx, begin, end);
}

void flow_parallel(flow_ctx *c, size_t n, size_t min_per_part, flow_range_fn fn, void *ctx)
{
    int parts = cosy_pool_size(c->pool);
    if (min_per_part < 1) min_per_part = 1;
    if ((size_t)parts > n / min_per_part) parts = (int)(n / min_per_part);
    if (parts <= 1) {
        if (n) fn(ctx, 0, n);
        return;
    }
    range_task t = {fn, ctx, n, parts};
    cosy_pool_run(c->pool, parts, range_run, &t);
}

typedef struct {
    float *y;
    const float *x;
    int dim;
    const flow_norm *n;
    float eps;
} norm_ctx;

static void norm_range(void *p, size_t r0, size_t r1)
{
    norm_ctx *t = p;
    cosy_vec_layer_norm(t->y + r0 * t->dim, t->x + r0 * t->dim, (int)(r1 - r0), t->dim, t->n->w, t->n->b, t->eps);
}

void flow_layer_norm(flow_ctx *c, float *y, const float *x, int rows, int dim, const flow_norm *n, float eps)
{
    norm_ctx t = {y, x, dim, n, eps};
    /* a row of 256 costs ~30 ns: split from ~32 rows on, so the other threads do not wait meanwhile */
    flow_parallel(c, (size_t)rows, 8192 / (size_t)(dim > 0 ? dim : 1) + 1, norm_range, &t);
}

typedef struct {
    float *y;
    const float *x;
} vec_ctx;

static void mish_range(void *p, size_t b, size_t e) { cosy_vec_mish(((vec_ctx *)p)->y + b, e - b); }
static void add_range(void *p, size_t b, size_t e) { cosy_add(((vec_ctx *)p)->y + b, ((vec_ctx *)p)->x + b, e - b); }

#define ELEMENTWISE_MIN 8192

void flow_mish(flow_ctx *c, float *x, size_t n)
{
    vec_ctx t = {x, NULL};
    flow_parallel(c, n, ELEMENTWISE_MIN, mish_range, &t);
}

void flow_add(flow_ctx *c, float *y, const float *x, size_t n)
{
    vec_ctx t = {y, x};
    flow_parallel(c, n, 4 * ELEMENTWISE_MIN, add_range, &t);
}

/* ---------------------------------------------------------------- convolution over time */

cosy_status flow_conv_forward(flow_ctx *c, const flow_conv *cv, const float *x, int B, int T, int first_tap,
                              const float *before, int n_before, const float *after, int n_after, float *y)
{
    const int K = cv->k, in = cv->in, width = K * in;
    size_t mark = cosy_arena_mark(c->arena);
    float *cols = cosy_arena_floats(c->arena, (size_t)B * T * width);
    if (!cols) return cosy_error(COSY_ERR_NOMEM, "flow: scratch arena too small for a %d x %d im2col", B * T, width);
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * T * in;
        const float *pre = before ? before + (size_t)b * n_before * in : NULL;
        const float *post = after ? after + (size_t)b * n_after * in : NULL;
        for (int t = 0; t < T; t++) {
            float *row = cols + ((size_t)b * T + t) * width;
            for (int k = 0; k < K; k++) {
                int s = t + first_tap + k;
                const float *src = NULL;
                if (s >= 0 && s < T) src = xb + (size_t)s * in;
                else if (s < 0 && pre && -s <= n_before) src = pre + (size_t)(n_before + s) * in;
                else if (s >= T && post && s - T < n_after) src = post + (size_t)(s - T) * in;
                if (src) memcpy(row + (size_t)k * in, src, sizeof(float) * (size_t)in);
                else memset(row + (size_t)k * in, 0, sizeof(float) * (size_t)in);
            }
        }
    }
    flow_linear_run(c, &cv->lin, cols, B * T, y, 0);
    cosy_arena_release(c->arena, mark);
    return COSY_OK;
}

/* ---------------------------------------------------------------- attention */

#define ATTN_BLOCK FLOW_ATTN_BLOCK

static size_t round_panel(size_t n) { return (n + COSY_PANEL - 1) / COSY_PANEL * COSY_PANEL; }

typedef struct {
    const float *q, *k, *v;
    const flow_kv_pages *kv; /* keys/values in pages instead of k, v (NULL: k, v) */
    int ldq, ldkv, B, Tq, Tk, heads, d, q_offset, chunk, parts, fast;
    float scale;
    flow_pos_scores_fn pos_scores;
    void *pos_ctx;
    float *out;
    int ldo;
    float *scratch;
    size_t scratch_per_part, pos_scratch;
    int bf16;                /* bf16 products (the flow's bf16 mode) */
    int failed;              /* an AMX part could not get its scratch (set atomically) */
} attn_task;

static size_t kv_elem_bytes(const flow_kv_pages *kv) { return kv->bf16 ? sizeof(uint16_t) : sizeof(float); }

/* where head h of batch b's key j lies in the pages (its value: page_value) */
static const void *page_row(const flow_kv_pages *kv, int b, int h, int j)
{
    const size_t e = kv->offset + (size_t)b * kv->batch_offset + (size_t)(j % kv->rows_per_page) * kv->row_stride + (size_t)h * kv->head_stride;
    return (const char *)kv->pages[j / kv->rows_per_page] + e * kv_elem_bytes(kv);
}

static const void *page_value(const flow_kv_pages *kv, const void *key) { return (const char *)key + kv->v_offset * kv_elem_bytes(kv); }

/* d elements of a page row as f32 (bf16 widened exactly) */
static void page_load(const flow_kv_pages *kv, float *dst, const void *src, int d)
{
    if (!kv->bf16) {
        memcpy(dst, src, sizeof(float) * (size_t)d);
        return;
    }
    const uint16_t *h = src;
    for (int i = 0; i < d; i++) dst[i] = cosy_bf16_to_f32(h[i]);
}

/* head h of batch b's keys and values [0, Tk) copied out of their pages into kc, vc [Tk][d] */
static void gather_pages(const flow_kv_pages *kv, int b, int h, int Tk, int d, float *kc, float *vc)
{
    for (int j = 0; j < Tk; j++) {
        const void *row = page_row(kv, b, h, j);
        page_load(kv, kc + (size_t)j * d, row, d);
        page_load(kv, vc + (size_t)j * d, page_value(kv, row), d);
    }
}

/* the packed kernels' K^T and V panels straight from f32 pages (what cosy_pack_f32_rows and
 * cosy_pack_f32_cols make of the gathered rows); ptrs: scratch for 2 Tk pointers */
static void pack_pages(const flow_kv_pages *kv, int b, int h, int Tk, int d, float *kp, float *vp, const float **ptrs)
{
    const float **vrows = ptrs + Tk;
    for (int j = 0; j < Tk; j++) {
        ptrs[j] = page_row(kv, b, h, j);
        vrows[j] = page_value(kv, ptrs[j]);
    }
    cosy_pack_f32_row_ptrs(kp, ptrs, Tk, d);
    cosy_pack_f32_col_ptrs(vp, vrows, Tk, d);
}

/* The query block starting at row i0: returns its end, at most ATTN_BLOCK rows on and never past a
 * chunk boundary, so all its rows share one key limit, *n_keys (the whole of their chunk and all
 * earlier ones; every key without a chunk mask). */
static int query_block(const attn_task *a, int i0, int *n_keys)
{
    int i1 = i0 + ATTN_BLOCK < a->Tq ? i0 + ATTN_BLOCK : a->Tq;
    *n_keys = a->Tk;
    if (a->chunk > 0) {
        const int chunk_index = (a->q_offset + i0) / a->chunk;
        const int next_chunk_row = (chunk_index + 1) * a->chunk - a->q_offset;
        if (i1 > next_chunk_row) i1 = next_chunk_row;
        const int limit = (chunk_index + 1) * a->chunk;
        if (limit < *n_keys) *n_keys = limit;
    }
    return i1;
}

static inline int up32(int n) { return (n + 31) / 32 * 32; }

/* The bf16 mode: QK^T and PV as bf16 tile products (cosy_gemm_bf16: AMX, or AVX512-BF16 on the same
 * tiles) with K and V rounded to bf16 (nearest even) once per head, Q and the softmax weights per query
 * block, the scores and softmax in f32. That rounding is the mode's definition on every bf16 path:
 * keys and values already stored in bf16 (flow_kv_pages.bf16: the CosyVoice3 stream's pages, rounded the
 * same way when written) are packed as they are, so a stream and the stateless call see the same K and V.
 * Returns 0 if its scratch could not be allocated (the caller then reports out of memory). */
static int attn_bf16(attn_task *a, int part)
{
    const int Tk = a->Tk, d = a->d, Tkp = up32(Tk), dp = up32(d);
    const size_t n16 = (size_t)2 * Tkp * dp + (size_t)ATTN_BLOCK * dp + (size_t)ATTN_BLOCK * Tkp;
    uint16_t *kt = cosy_thread_scratch(sizeof(uint16_t) * n16 + sizeof(float *) * 2 * (size_t)Tk);
    if (!kt) return 0;
    uint16_t *vt = kt + (size_t)Tkp * dp, *qb16 = vt + (size_t)Tkp * dp, *pb16 = qb16 + (size_t)ATTN_BLOCK * dp;
    const void **krows = (const void **)(void *)(kt + n16), **vrows = krows + Tk;
    float *kp = a->scratch + (size_t)part * a->scratch_per_part;
    float *vp = kp + round_panel((size_t)Tk) * d;
    float *scores = vp + round_panel((size_t)d) * Tk;
    float *pos_scratch = scores + (size_t)ATTN_BLOCK * Tk;
    for (int pair = part; pair < a->B * a->heads; pair += a->parts) {
        const int b = pair / a->heads, h = pair % a->heads;
        const float *qb = a->q + (size_t)b * a->Tq * a->ldq + h * d;
        /* straight from where the keys and values are (pages or rows): read once, no f32 copy */
        for (int j = 0; j < Tk; j++) {
            krows[j] = a->kv ? page_row(a->kv, b, h, j) : (const void *)(a->k + ((size_t)b * Tk + j) * a->ldkv + h * d);
            vrows[j] = a->kv ? page_value(a->kv, krows[j]) : (const void *)(a->v + ((size_t)b * Tk + j) * a->ldkv + h * d);
        }
        if (a->kv && a->kv->bf16) {
            cosy_pack_bf16_rows16(kt, (const uint16_t *const *)krows, Tk, d);
            cosy_pack_bf16_t_rows16(vt, (const uint16_t *const *)vrows, Tk, d);
        } else {
            cosy_pack_bf16_rows(kt, (const float *const *)krows, Tk, d);   /* B of QK^T: N = keys, K = d */
            cosy_pack_bf16_t_rows(vt, (const float *const *)vrows, Tk, d); /* B of PV: K = keys, N = d */
        }
        float *ob = a->out + (size_t)b * a->Tq * a->ldo + h * d;
        for (int i0 = 0; i0 < a->Tq;) {
            int n_keys;
            const int i1 = query_block(a, i0, &n_keys);
            const int rows = i1 - i0, rows_p = up32(rows), nkp = up32(n_keys);
            cosy_bf16_convert_rows(qb16, qb + (size_t)i0 * a->ldq, rows, d, a->ldq, a->scale, dp, rows_p);
            cosy_gemm_bf16(rows, n_keys, dp, qb16, kt, dp / 32, NULL, scores, Tk, 0, COSY_ACT_NONE, 0, (n_keys + 31) / 32);
            if (a->pos_scores) a->pos_scores(a->pos_ctx, b, h, i0, i1, n_keys, scores, Tk, pos_scratch);
            float inv_sum[ATTN_BLOCK];
            cosy_vec_softmax_rows(scores, rows, n_keys, Tk, inv_sum);
            cosy_bf16_convert_rows(pb16, scores, rows, n_keys, Tk, 1.0f, nkp, rows_p);
            cosy_gemm_bf16(rows, d, nkp, pb16, vt, Tkp / 32, NULL, ob + (size_t)i0 * a->ldo, a->ldo, 0, COSY_ACT_NONE, 0, (d + 31) / 32);
            for (int r = 0; r < rows; r++) cosy_scale(ob + (size_t)(i0 + r) * a->ldo, inv_sum[r], (size_t)d);
            i0 = i1;
        }
    }
    return 1;
}

static void attn_run(void *p, int part)
{
    attn_task *a = p;
    if (a->bf16) {
        if (!attn_bf16(a, part)) __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    const int Tk = a->Tk, d = a->d;
    float *kp = a->scratch + (size_t)part * a->scratch_per_part;    /* K^T panels [ceil(Tk/32)][d][32] */
    float *vp = kp + round_panel((size_t)Tk) * d;                     /* V panels [ceil(d/32)][Tk][32] */
    float *scores = vp + round_panel((size_t)d) * Tk;                 /* [ATTN_BLOCK][Tk] */
    float *pos_scratch = scores + (size_t)ATTN_BLOCK * Tk;
    float *kc = pos_scratch + a->pos_scratch, *vc = kc + (size_t)Tk * d; /* paged keys/values, gathered */
    for (int pair = part; pair < a->B * a->heads; pair += a->parts) {
        const int b = pair / a->heads, h = pair % a->heads;
        const float *qb = a->q + (size_t)b * a->Tq * a->ldq + h * d;
        const float *kb, *vb;
        int ldkv;
        const int packed = a->kv && a->fast && !a->kv->bf16; /* panels straight from f32 pages */
        if (packed) {
            pack_pages(a->kv, b, h, Tk, d, kp, vp, (const float **)kc);
            kb = vb = NULL; /* only the panels are used */
            ldkv = d;
        } else if (a->kv) {
            gather_pages(a->kv, b, h, Tk, d, kc, vc);
            kb = kc;
            vb = vc;
            ldkv = d;
        } else {
            kb = a->k + (size_t)b * Tk * a->ldkv + h * d;
            vb = a->v + (size_t)b * Tk * a->ldkv + h * d;
            ldkv = a->ldkv;
        }
        float *ob = a->out + (size_t)b * a->Tq * a->ldo + h * d;
        if (a->fast && !packed) {
            cosy_pack_f32_rows(kp, kb, Tk, d, ldkv);
            cosy_pack_f32_cols(vp, vb, Tk, d, ldkv);
        }
        for (int i0 = 0; i0 < a->Tq;) {
            int n_keys;
            const int i1 = query_block(a, i0, &n_keys);
            const int rows = i1 - i0;
            if (a->fast)
                cosy_gemm_f32_panels(rows, n_keys, d, a->scale, qb + (size_t)i0 * a->ldq, a->ldq, kp, (size_t)d * COSY_PANEL, 0,
                                 (n_keys + COSY_PANEL - 1) / COSY_PANEL, NULL, scores, Tk, 0, COSY_ACT_NONE);
            else
                cosy_sgemm(0, 1, rows, n_keys, d, a->scale, qb + (size_t)i0 * a->ldq, a->ldq, kb, ldkv, 0.0f, scores, Tk);
            if (a->pos_scores) a->pos_scores(a->pos_ctx, b, h, i0, i1, n_keys, scores, Tk, pos_scratch);
            float inv_sum[ATTN_BLOCK];
            cosy_vec_softmax_rows(scores, rows, n_keys, Tk, inv_sum);
            if (a->fast)
                cosy_gemm_f32_panels(rows, d, n_keys, 1.0f, scores, Tk, vp, (size_t)Tk * COSY_PANEL, 0, (d + COSY_PANEL - 1) / COSY_PANEL, NULL,
                                 ob + (size_t)i0 * a->ldo, a->ldo, 0, COSY_ACT_NONE);
            else
                cosy_sgemm(0, 0, rows, d, n_keys, 1.0f, scores, Tk, vb, ldkv, 0.0f, ob + (size_t)i0 * a->ldo, a->ldo);
            for (int r = 0; r < rows; r++) cosy_scale(ob + (size_t)(i0 + r) * a->ldo, inv_sum[r], (size_t)d);
            i0 = i1;
        }
    }
}

static size_t pos_scores_scratch(int Tk, int d)
{
    size_t width = (size_t)ATTN_BLOCK + Tk;
    return (size_t)ATTN_BLOCK * width + round_panel(width) * d;
}

/* per part: K^T panels, V panels, one score block, the position term's scratch, the gathered
 * keys and values of paged attention (or, packed straight from the pages, their row pointers) */
static size_t attention_part_floats(int Tk, int d, int with_pos, int paged)
{
    size_t n = round_panel((size_t)Tk) * d + round_panel((size_t)d) * Tk + (size_t)ATTN_BLOCK * Tk;
    if (with_pos) n += pos_scores_scratch(Tk, d);
    if (paged) n += 2 * (size_t)Tk * d;
    return round_panel(n); /* keeps each part's block 128-byte aligned */
}

static int attention_parts(const flow_ctx *c, int B, int heads)
{
    /* the portable path's sgemm threads itself: one caller at a time */
    int parts = c->flow->fast ? cosy_pool_size(c->pool) : 1;
    if (parts > B * heads) parts = B * heads;
    return parts < 1 ? 1 : parts;
}

size_t flow_attention_scratch_floats(const flow_ctx *c, int B, int Tk, int heads, int d, int with_pos)
{
    return attention_part_floats(Tk, d, with_pos, 0) * (size_t)attention_parts(c, B, heads) + 16;
}

size_t flow_attention_paged_scratch_floats(const flow_ctx *c, int B, int Tk, int heads, int d, int with_pos)
{
    return attention_part_floats(Tk, d, with_pos, 1) * (size_t)attention_parts(c, B, heads) + 16;
}

static cosy_status attention_run(flow_ctx *c, attn_task *a)
{
    const int parts = attention_parts(c, a->B, a->heads);
    a->parts = parts;
    a->bf16 = c->flow->bf16;
    a->pos_scratch = a->pos_scores ? pos_scores_scratch(a->Tk, a->d) : 0;
    a->scratch_per_part = attention_part_floats(a->Tk, a->d, a->pos_scores != NULL, a->kv != NULL);
    size_t mark = cosy_arena_mark(c->arena);
    a->scratch = cosy_arena_floats(c->arena, a->scratch_per_part * (size_t)parts);
    if (!a->scratch) return cosy_error(COSY_ERR_NOMEM, "flow: scratch arena too small for attention over %d keys", a->Tk);
    a->failed = 0;
    if (parts == 1) attn_run(a, 0);
    else cosy_pool_run(c->pool, parts, attn_run, a);
    cosy_arena_release(c->arena, mark);
    if (a->failed) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory for the attention over %d keys", a->Tk);
    return COSY_OK;
}

cosy_status flow_attention(flow_ctx *c, const float *q, int ldq, const float *k, const float *v, int ldkv, int B, int Tq, int Tk,
                           int heads, int d, int q_offset, int chunk, float scale, flow_pos_scores_fn pos_scores,
                           void *pos_ctx, float *out, int ldo)
{
    attn_task a = {q, k, v, NULL, ldq, ldkv, B, Tq, Tk, heads, d, q_offset, chunk, 1, c->flow->fast, scale, pos_scores, pos_ctx, out, ldo,
                   NULL, 0, 0, 0, 0};
    return attention_run(c, &a);
}

cosy_status flow_attention_paged(flow_ctx *c, const float *q, int ldq, const flow_kv_pages *kv, int B, int Tq, int Tk, int heads,
                                 int d, int q_offset, int chunk, float scale, flow_pos_scores_fn pos_scores, void *pos_ctx, float *out,
                                 int ldo)
{
    if (!kv || !kv->pages || kv->rows_per_page < 1) return cosy_error(COSY_ERR_INTERNAL, "flow: paged attention without pages");
    attn_task a = {q, NULL, NULL, kv, ldq, 0, B, Tq, Tk, heads, d, q_offset, chunk, 1, c->flow->fast, scale, pos_scores, pos_ctx, out, ldo,
                   NULL, 0, 0, 0, 0};
    return attention_run(c, &a);
}
