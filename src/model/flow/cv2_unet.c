/*
 * cv2_unet.c — CausalConditionalDecoder (cosyvoice/flow/decoder.py), the U-Net that
 * predicts the flow's velocity at each Euler step, with matcha's building blocks
 * (matcha/models/components/decoder.py, transformer.py):
 *
 *   t -> SinusoidalPosEmb(in_channels, scale 1000) -> Linear, SiLU, Linear  (time embedding)
 *   [x | mu | spks | cond] -> down: CausalResnetBlock1D, n_blocks transformers, CausalConv1d
 *   -> mid: num_mid_blocks x (resnet, n_blocks transformers)
 *   -> up: concat the down block's output (skip), resnet, transformers, CausalConv1d
 *   -> CausalBlock1D -> 1x1 conv to 80 channels.
 *
 * CausalResnetBlock1D: causal conv k3, LayerNorm over channels, Mish; + Linear(Mish(t_emb));
 * the same again; + 1x1 residual conv. Transformer: LayerNorm, self-attention (chunk mask of
 * static_chunk_size frames when streaming, full otherwise), residual; LayerNorm, GELU
 * feed-forward (x4), residual.
 *
 * The mask input of the reference is all ones for the batch-1 inference it serves (padding
 * never occurs), so the `* mask` products are identities and are skipped.
 */
#include "model/flow/flow_internal.h"
#include "model/flow/flow_load.h"
#include "core/error.h"
#include "core/attention.h"
#include "core/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NORM_EPS 1e-5f /* nn.LayerNorm default, in CausalBlock1D and BasicTransformerBlock */

static cosy_status load_resnet(cosy_flow *f, flow_resnet *r, int dim, int dim_out, const char *prefix)
{
    const int TE = 4 * f->hp->est_channels;
    COSY_TRY(flow_load_linear(f, &r->mlp, 1, dim_out, TE, "%s.mlp.1", prefix));
    COSY_TRY(flow_load_conv(f, &r->conv1, dim_out, dim, 3, "%s.block1.block.0", prefix));
    COSY_TRY(flow_load_norm(f, &r->norm1, "%s.block1.block.2", prefix));
    COSY_TRY(flow_load_conv(f, &r->conv2, dim_out, dim_out, 3, "%s.block2.block.0", prefix));
    COSY_TRY(flow_load_norm(f, &r->norm2, "%s.block2.block.2", prefix));
    /* res_conv is a 1x1 Conv1d: its [out][in][1] weight is a Linear's [out][in] */
    COSY_TRY(flow_load_linear(f, &r->res, 1, dim_out, dim, "%s.res_conv", prefix));
    return COSY_OK;
}

static cosy_status load_transformer(cosy_flow *f, flow_transformer *tf, const char *prefix)
{
    const int C = f->hp->est_channels, inner = f->hp->est_heads * f->hp->est_head_dim;
    COSY_TRY(flow_load_norm(f, &tf->norm1, "%s.norm1", prefix));
    COSY_TRY(flow_load_norm(f, &tf->norm3, "%s.norm3", prefix));
    char attn[128];
    snprintf(attn, sizeof attn, "%s.attn1", prefix);
    COSY_TRY(flow_load_qkv(f, &tf->qkv, 0, inner, C, attn, "to_q", "to_k", "to_v"));
    COSY_TRY(flow_load_linear(f, &tf->out, 1, C, inner, "%s.attn1.to_out.0", prefix));
    COSY_TRY(flow_load_linear(f, &tf->ff1, 1, 4 * C, C, "%s.ff.net.0.proj", prefix));
    COSY_TRY(flow_load_linear(f, &tf->ff2, 1, C, 4 * C, "%s.ff.net.2", prefix));
    return COSY_OK;
}

cosy_status cv2_unet_load(cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    cv2_unet_weights *w = &f->est;
    const int C = hp->est_channels, IN = hp->est_in_channels, NB = hp->est_n_blocks, NM = hp->est_mid_blocks;
    if (hp->est_out_channels != hp->flow_output_size)
        return cosy_error(COSY_ERR_UNSUPPORTED, "flow: estimator output %d differs from the mel size %d", hp->est_out_channels,
                          hp->flow_output_size);
    COSY_TRY(flow_load_linear(f, &w->time1, 1, 4 * C, IN, "flow.est.time_mlp.linear_1"));
    COSY_TRY(flow_load_linear(f, &w->time2, 1, 4 * C, 4 * C, "flow.est.time_mlp.linear_2"));
    w->down_tf = cosy_model_alloc(f->model, sizeof(flow_transformer) * (size_t)(NB * (NM + 2) + 1));
    w->mid = cosy_model_alloc(f->model, sizeof(flow_resnet) * (size_t)(NM + 1));
    if (!w->down_tf || !w->mid) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory");
    w->mid_tf = w->down_tf + NB;
    w->up_tf = w->mid_tf + NB * NM;
    char prefix[96];
    COSY_TRY(load_resnet(f, &w->down, IN, C, "flow.est.down_blocks.0.0"));
    for (int j = 0; j < NB; j++) {
        snprintf(prefix, sizeof prefix, "flow.est.down_blocks.0.1.%d", j);
        COSY_TRY(load_transformer(f, &w->down_tf[j], prefix));
    }
    COSY_TRY(flow_load_conv(f, &w->down_conv, C, C, 3, "flow.est.down_blocks.0.2"));
    for (int i = 0; i < NM; i++) {
        snprintf(prefix, sizeof prefix, "flow.est.mid_blocks.%d.0", i);
        COSY_TRY(load_resnet(f, &w->mid[i], C, C, prefix));
        for (int j = 0; j < NB; j++) {
            snprintf(prefix, sizeof prefix, "flow.est.mid_blocks.%d.1.%d", i, j);
            COSY_TRY(load_transformer(f, &w->mid_tf[i * NB + j], prefix));
        }
    }
    COSY_TRY(load_resnet(f, &w->up, 2 * C, C, "flow.est.up_blocks.0.0"));
    for (int j = 0; j < NB; j++) {
        snprintf(prefix, sizeof prefix, "flow.est.up_blocks.0.1.%d", j);
        COSY_TRY(load_transformer(f, &w->up_tf[j], prefix));
    }
    COSY_TRY(flow_load_conv(f, &w->up_conv, C, C, 3, "flow.est.up_blocks.0.2"));
    COSY_TRY(flow_load_conv(f, &w->final_conv, C, C, 3, "flow.est.final_block.block.0"));
    COSY_TRY(flow_load_norm(f, &w->final_norm, "flow.est.final_block.block.2"));
    COSY_TRY(flow_load_linear(f, &w->final_proj, 1, hp->est_out_channels, C, "flow.est.final_proj"));
    return COSY_OK;
}

int cv2_unet_layers(const cosy_flow *f) { return f->hp->est_n_blocks * (f->hp->est_mid_blocks + 2); }
int cv2_unet_convs(const cosy_flow *f) { return 7 + 2 * f->hp->est_mid_blocks; }
int cv2_unet_conv_width(const cosy_flow *f)
{
    const int IN = f->hp->est_in_channels, C2 = 2 * f->hp->est_channels;
    return IN > C2 ? IN : C2;
}

/* Whether the two CFG rows run as two independent single-threaded estimators, one per thread: on a
 * pool of exactly two threads that removes every barrier between the ~600 products and element-wise
 * steps of a call (and their load imbalance), at the price of each thread reading the weights itself.
 * COSY_FLOW_SPLIT=0 turns it off (to measure it). */
static int split_cfg(const flow_ctx *c, int B)
{
    if (B != 2 || cosy_pool_size(c->pool) != 2) return 0;
    const char *env = getenv("COSY_FLOW_SPLIT");
    return !(env && env[0] == '0');
}

/* keys/values of one stateless layer: blocks for B rows of T frames in the arena */
static size_t stateless_kv_bytes(const cosy_flow *f, int B, int T)
{
    const cosy_hparams *hp = f->hp;
    const size_t slab = cosy_kv_slab_elems(hp->est_head_dim, f->bf16) * (f->bf16 ? sizeof(uint16_t) : sizeof(float));
    const size_t blocks = (size_t)(T + COSY_KV_BLOCK - 1) / COSY_KV_BLOCK;
    return blocks * (slab * (size_t)B * hp->est_heads + sizeof(flow_kv_block)) + 128;
}

/* scratch for B rows of T new frames over Tk keys on a context with this pool (mirrors the allocations
 * of estimator_run and the blocks below) */
static size_t run_scratch_bytes(const cosy_flow *f, cosy_pool *pool, int B, int T, int Tk, int cached)
{
    const cosy_hparams *hp = f->hp;
    const size_t C = (size_t)hp->est_channels, R = (size_t)B * T, inner = (size_t)hp->est_heads * hp->est_head_dim;
    const size_t IN = (size_t)hp->est_in_channels, TE = 4 * C, widest = IN > 2 * C ? IN : 2 * C;
    flow_ctx c = {f, pool, NULL};
    size_t floats = FLOW_ARENA_FLOATS(B * IN) + 2 * FLOW_ARENA_FLOATS(B * TE) + FLOW_ARENA_FLOATS(B * C);
    floats += 2 * FLOW_ARENA_FLOATS(R * C) + FLOW_ARENA_FLOATS(R * 2 * C);  /* h, skip, concat */
    size_t resnet = 2 * FLOW_ARENA_FLOATS(R * C) + FLOW_ARENA_FLOATS(R * 3 * widest) + FLOW_ARENA_FLOATS((size_t)B * 2 * widest);
    size_t transformer = FLOW_ARENA_FLOATS(R * C) + FLOW_ARENA_FLOATS(R * 3 * inner) + FLOW_ARENA_FLOATS(R * inner) +
                         FLOW_ARENA_FLOATS(R * 4 * C);
    size_t bytes = transformer * sizeof(float) + flow_attention_kv_scratch_bytes(&c, B, Tk, hp->est_heads, hp->est_head_dim) +
                   (cached ? 0 : stateless_kv_bytes(f, B, T));
    if (resnet * sizeof(float) > bytes) bytes = resnet * sizeof(float);
    return floats * sizeof(float) + bytes + 64;
}

static size_t estimator_scratch_bytes(const cosy_flow *f, int B, int T, int Tk, int cached)
{
    size_t joint = run_scratch_bytes(f, f->pool, B, T, Tk, cached);
    flow_ctx c = {f, f->pool, NULL};
    if (!split_cfg(&c, B)) return joint;
    size_t one = 2 * (run_scratch_bytes(f, NULL, 1, T, Tk, cached) + 128);
    return one > joint ? one : joint;
}

size_t cv2_unet_scratch_bytes(const cosy_flow *f, int B, int T) { return estimator_scratch_bytes(f, B, T, T, 0); }

size_t cv2_unet_cached_scratch_bytes(const cosy_flow *f, int B, int n, int frames)
{
    return estimator_scratch_bytes(f, B, n, frames, 1);
}

/* ---------------------------------------------------------------- blocks */

/* A causal convolution (K - 1 zeros, or the cached rows, on the left) over B rows of T frames;
 * conv_id numbers it in the cache. */
static cosy_status causal_conv(flow_ctx *c, const flow_conv *cv, const float *x, int B, int T, const flow_cache *fc, int conv_id, float *y)
{
    const int hist = cv->k - 1;
    const float *before = fc ? flow_cache_conv(fc, conv_id, x, cv->in, hist) : NULL;
    const size_t mark = cosy_arena_mark(c->arena);
    if (before && B > 1) {
        /* the cache keeps each CFG row's history conv_width floats per row apart; hand it on packed */
        float *packed = cosy_arena_floats(c->arena, (size_t)B * hist * cv->in);
        if (!packed) return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
        for (int b = 0; b < B; b++)
            memcpy(packed + (size_t)b * hist * cv->in, before + (size_t)b * hist * fc->conv_width, sizeof(float) * (size_t)hist * cv->in);
        before = packed;
    }
    cosy_status st = flow_conv_forward(c, cv, x, B, T, -hist, before, before ? hist : 0, NULL, 0, y);
    cosy_arena_release(c->arena, mark);
    return st;
}

/* CausalResnetBlock1D on x[B*T][dim] -> out[B*T][C]; t_proj[B][C] = mlp(Mish(t_emb)); its two
 * convolutions are conv_id and conv_id + 1 */
static cosy_status resnet_forward(flow_ctx *c, const flow_resnet *r, const float *x, int B, int T, const float *t_proj, float *out,
                                  const flow_cache *fc, int conv_id)
{
    const int C = r->conv1.out, R = B * T;
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);
    float *h1 = cosy_arena_floats(a, (size_t)R * C), *h2 = cosy_arena_floats(a, (size_t)R * C);
    if (!h1 || !h2) return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
    COSY_TRY(causal_conv(c, &r->conv1, x, B, T, fc, conv_id, h1));
    flow_layer_norm(c, h1, h1, R, C, &r->norm1, NORM_EPS);
    flow_mish(c, h1, (size_t)R * C);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) cosy_add(h1 + ((size_t)b * T + t) * C, t_proj + (size_t)b * C, (size_t)C);
    COSY_TRY(causal_conv(c, &r->conv2, h1, B, T, fc, conv_id + 1, h2));
    flow_layer_norm(c, h2, h2, R, C, &r->norm2, NORM_EPS);
    flow_mish(c, h2, (size_t)R * C);
    memcpy(out, h2, sizeof(float) * (size_t)R * C);
    flow_linear_run(c, &r->res, x, R, out, 1);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

/* Where a call's attention keys are: a stream's blocks (kv: every earlier frame too) or none (a
 * stateless call: each layer puts its frames' keys into blocks in the arena); the visibility rule. */
typedef struct {
    const flow_kv_view *kv;  /* NULL: stateless */
    size_t layer_stride;     /* elements between consecutive layers' slabs in the stream's blocks */
    int q_offset;            /* absolute frame of row 0 (the stream's start) */
    int pinned, window;      /* stateless calls: the window rule (flow_kv_view) */
} est_keys;

/* BasicTransformerBlock on x[B*T][C], in place: the frames' keys/values go to their blocks (as
 * `layer`) and the queries attend to them and to every earlier frame the blocks hold */
static cosy_status transformer_forward(flow_ctx *c, const flow_transformer *tf, float *x, int B, int T, int chunk, const est_keys *keys,
                                       int layer)
{
    const cosy_hparams *hp = c->flow->hp;
    const int C = hp->est_channels, H = hp->est_heads, d = hp->est_head_dim, inner = H * d, R = B * T;
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);
    float *nx = cosy_arena_floats(a, (size_t)R * C), *qkv = cosy_arena_floats(a, (size_t)R * 3 * inner);
    float *o = cosy_arena_floats(a, (size_t)R * inner), *ff = cosy_arena_floats(a, (size_t)R * 4 * C);
    if (!nx || !qkv || !o || !ff) return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
    flow_layer_norm(c, nx, x, R, C, &tf->norm1, NORM_EPS);
    flow_linear_run(c, &tf->qkv, nx, R, qkv, 0);
    const float scale = 1.0f / sqrtf((float)d);
    flow_kv_view kv;
    if (keys->kv) {
        kv = *keys->kv;
        kv.offset += (size_t)layer * keys->layer_stride;
    } else {
        /* this layer's keys in blocks of the arena: [block][CFG row][head] slabs */
        const size_t slab = cosy_kv_slab_elems(d, c->flow->bf16), esize = c->flow->bf16 ? sizeof(uint16_t) : sizeof(float);
        const int n_blocks = (T + COSY_KV_BLOCK - 1) / COSY_KV_BLOCK;
        flow_kv_block *blocks = cosy_arena_alloc(a, sizeof(flow_kv_block) * (size_t)n_blocks);
        if (!blocks) return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
        for (int i = 0; i < n_blocks; i++) {
            blocks[i].key0 = i * COSY_KV_BLOCK;
            blocks[i].mem = cosy_arena_alloc(a, slab * esize * (size_t)B * H);
            if (!blocks[i].mem) return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
        }
        /* slots past the last frame meet weight 0 and must hold finite values (core/attention.h) */
        if (T % COSY_KV_BLOCK) memset(blocks[n_blocks - 1].mem, 0, slab * esize * (size_t)B * H);
        kv = (flow_kv_view){blocks, n_blocks, 0, slab * H, slab, c->flow->bf16, keys->pinned, keys->window};
    }
    for (int b = 0; b < B; b++)
        flow_kv_put(&kv, b, keys->q_offset, T, qkv + (size_t)b * T * 3 * inner + inner, qkv + (size_t)b * T * 3 * inner + 2 * inner, 3 * inner,
                    H, d);
    COSY_TRY(flow_attention_kv(c, qkv, 3 * inner, &kv, B, T, keys->q_offset, keys->q_offset + T, H, d, chunk, scale, o, inner));
    flow_linear_run(c, &tf->out, o, R, x, 1);
    flow_layer_norm(c, nx, x, R, C, &tf->norm3, NORM_EPS);
    flow_linear_act(c, &tf->ff1, nx, R, ff, 0, COSY_ACT_GELU);
    flow_linear_run(c, &tf->ff2, ff, R, x, 1);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

/* SinusoidalPosEmb(dim)(t, scale=1000) then TimestepEmbedding (Linear, SiLU, Linear); all in float32 */
static void time_embedding(flow_ctx *c, const cv2_unet_weights *w, int dim, const float *t, int B, float *sin_emb, float *hidden, float *out)
{
    const int half = dim / 2;
    const float step = (float)(log(10000.0) / (half - 1));
    for (int b = 0; b < B; b++) {
        const float st = 1000.0f * t[b];
        for (int i = 0; i < half; i++) {
            float arg = st * expf((float)i * -step);
            sin_emb[(size_t)b * dim + i] = sinf(arg);
            sin_emb[(size_t)b * dim + half + i] = cosf(arg);
        }
    }
    flow_linear_run(c, &w->time1, sin_emb, B, hidden, 0);
    cosy_vec_silu(hidden, (size_t)B * w->time1.out);
    flow_linear_run(c, &w->time2, hidden, B, out, 0);
}

/* the estimator on B rows of T frames: stateless (fc NULL) or the frames after those cached in fc */
static cosy_status estimator_run(flow_ctx *c, const float *in, const float *t, int B, int T, int chunk, const flow_cache *fc,
                                 const est_keys *keys, float *out)
{
    const cosy_hparams *hp = c->flow->hp;
    const cv2_unet_weights *w = &c->flow->est;
    const int C = hp->est_channels, IN = hp->est_in_channels, NB = hp->est_n_blocks, NM = hp->est_mid_blocks, TE = 4 * C, R = B * T;
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);
    float *sin_emb = cosy_arena_floats(a, (size_t)B * IN), *hid = cosy_arena_floats(a, (size_t)B * TE);
    float *temb = cosy_arena_floats(a, (size_t)B * TE), *tproj = cosy_arena_floats(a, (size_t)B * C);
    float *h = cosy_arena_floats(a, (size_t)R * C), *skip = cosy_arena_floats(a, (size_t)R * C);
    float *cat = cosy_arena_floats(a, (size_t)R * 2 * C);
    if (!sin_emb || !hid || !temb || !tproj || !h || !skip || !cat)
        return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");

    time_embedding(c, w, IN, t, B, sin_emb, hid, temb);
    cosy_vec_mish(temb, (size_t)B * TE); /* every resnet's mlp starts with Mish */

    /* down (layers 0..NB-1; convolutions 0, 1, 2) */
    flow_linear_run(c, &w->down.mlp, temb, B, tproj, 0);
    COSY_TRY(resnet_forward(c, &w->down, in, B, T, tproj, skip, fc, 0));
    for (int j = 0; j < NB; j++) COSY_TRY(transformer_forward(c, &w->down_tf[j], skip, B, T, chunk, keys, j));
    COSY_TRY(causal_conv(c, &w->down_conv, skip, B, T, fc, 2, h));

    /* mid (layers NB + i NB + j; convolutions 3 + 2i, 4 + 2i) */
    for (int i = 0; i < NM; i++) {
        flow_linear_run(c, &w->mid[i].mlp, temb, B, tproj, 0);
        COSY_TRY(resnet_forward(c, &w->mid[i], h, B, T, tproj, cat, fc, 3 + 2 * i));
        memcpy(h, cat, sizeof(float) * (size_t)R * C);
        for (int j = 0; j < NB; j++) COSY_TRY(transformer_forward(c, &w->mid_tf[i * NB + j], h, B, T, chunk, keys, NB + i * NB + j));
    }

    /* up: channels [x | skip] (layers NB (NM + 1) + j; convolutions 3 + 2 NM .. 5 + 2 NM) */
    for (int r = 0; r < R; r++) {
        memcpy(cat + (size_t)r * 2 * C, h + (size_t)r * C, sizeof(float) * (size_t)C);
        memcpy(cat + (size_t)r * 2 * C + C, skip + (size_t)r * C, sizeof(float) * (size_t)C);
    }
    flow_linear_run(c, &w->up.mlp, temb, B, tproj, 0);
    COSY_TRY(resnet_forward(c, &w->up, cat, B, T, tproj, h, fc, 3 + 2 * NM));
    for (int j = 0; j < NB; j++) COSY_TRY(transformer_forward(c, &w->up_tf[j], h, B, T, chunk, keys, NB * (NM + 1) + j));
    COSY_TRY(causal_conv(c, &w->up_conv, h, B, T, fc, 5 + 2 * NM, skip));

    /* final CausalBlock1D (convolution 6 + 2 NM) and projection */
    COSY_TRY(causal_conv(c, &w->final_conv, skip, B, T, fc, 6 + 2 * NM, h));
    flow_layer_norm(c, h, h, R, C, &w->final_norm, NORM_EPS);
    flow_mish(c, h, (size_t)R * C);
    flow_linear_run(c, &w->final_proj, h, R, out, 0);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

/* ---------------------------------------------------------------- the CFG rows on two threads */

typedef struct {
    const flow_ctx *c;
    const float *in, *t;
    int T, chunk;
    const flow_cache *fc;
    const est_keys *keys;
    float *out;
    cosy_arena sub[2];
    cosy_status st[2];
    char error[2][256];
} split_task;

static void split_run(void *p, int b)
{
    split_task *s = p;
    const cosy_hparams *hp = s->c->flow->hp;
    flow_ctx one = {s->c->flow, NULL, &s->sub[b]};
    /* row b's view of the caches: its convolution history and its key slabs */
    flow_cache fc;
    if (s->fc) {
        fc = *s->fc;
        fc.B = 1;
        fc.conv_base += (size_t)b * fc.conv_rows * fc.conv_width;
    }
    est_keys keys = *s->keys;
    flow_kv_view kv;
    if (keys.kv) {
        kv = *keys.kv;
        kv.offset += (size_t)b * kv.batch_stride;
        keys.kv = &kv;
    }
    s->st[b] = estimator_run(&one, s->in + (size_t)b * s->T * hp->est_in_channels, s->t + b, 1, s->T, s->chunk, s->fc ? &fc : NULL, &keys,
                             s->out + (size_t)b * s->T * hp->est_out_channels);
    if (s->st[b] != COSY_OK) snprintf(s->error[b], sizeof s->error[b], "%s", cosy_last_error());
}

static cosy_status estimator_dispatch(flow_ctx *c, const float *in, const float *t, int B, int T, int chunk, const flow_cache *fc,
                                      const est_keys *keys, float *out)
{
    if (!split_cfg(c, B)) return estimator_run(c, in, t, B, T, chunk, fc, keys, out);
    split_task s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.in = in;
    s.t = t;
    s.T = T;
    s.chunk = chunk;
    s.fc = fc;
    s.keys = keys;
    s.out = out;
    /* each row's scratch: half of what is left of the caller's arena */
    cosy_arena *a = c->arena;
    const size_t mark = cosy_arena_mark(a), half = (a->size - a->used) / 2 / 64 * 64;
    for (int b = 0; b < 2; b++) {
        s.sub[b].base = cosy_arena_alloc(a, half);
        s.sub[b].size = half;
        if (!s.sub[b].base) return cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
    }
    cosy_pool_run(c->pool, 2, split_run, &s);
    for (int b = 0; b < 2; b++) {
        if (s.st[b] != COSY_OK) {
            cosy_arena_release(a, mark);
            return cosy_error(s.st[b], "%s", s.error[b]);
        }
    }
    cosy_arena_release(a, mark);
    return COSY_OK;
}

cosy_status cv2_unet_forward(flow_ctx *c, const float *in, const float *t, int B, int T, int streaming, float *out)
{
    const est_keys keys = {NULL, 0, 0, 0, 0};
    return estimator_dispatch(c, in, t, B, T, streaming ? c->flow->hp->est_static_chunk : 0, NULL, &keys, out);
}

cosy_status cv2_unet_forward_windowed(flow_ctx *c, const float *in, const float *t, int B, int T, int pinned, int window, float *out)
{
    const est_keys keys = {NULL, 0, 0, pinned, window};
    return estimator_dispatch(c, in, t, B, T, c->flow->hp->est_static_chunk, NULL, &keys, out);
}

cosy_status cv2_unet_forward_cached(flow_ctx *c, const float *in, const float *t, const flow_cache *fc, const flow_kv_view *kv,
                                    size_t layer_stride, float *out)
{
    const cosy_hparams *hp = c->flow->hp;
    if (!fc || !kv || fc->chunk != hp->est_static_chunk || fc->B < 1 || fc->n < 1 || fc->conv_rows < 2 ||
        fc->conv_width < cv2_unet_conv_width(c->flow))
        return cosy_error(COSY_ERR_INTERNAL, "flow estimator: cache does not fit the estimator");
    const est_keys keys = {kv, layer_stride, fc->start, 0, 0};
    return estimator_dispatch(c, in, t, fc->B, fc->n, hp->est_static_chunk, fc, &keys, out);
}
