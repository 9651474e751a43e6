/*
 * flow_estimator.c — CausalConditionalDecoder (cosyvoice/flow/decoder.py), the U-Net that
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
#include "model/flow_internal.h"
#include "core/error.h"
#include "core/ops.h"

#include <math.h>
#include <stdio.h>
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

cosy_status flow_estimator_load(cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    flow_estimator_weights *w = &f->est;
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

int flow_estimator_layers(const cosy_flow *f) { return f->hp->est_n_blocks * (f->hp->est_mid_blocks + 2); }
int flow_estimator_convs(const cosy_flow *f) { return 7 + 2 * f->hp->est_mid_blocks; }
int flow_estimator_conv_width(const cosy_flow *f)
{
    const int IN = f->hp->est_in_channels, C2 = 2 * f->hp->est_channels;
    return IN > C2 ? IN : C2;
}

/* scratch for B rows of T new frames over Tk keys (mirrors the allocations of estimator_run and
 * the blocks below) */
static size_t estimator_scratch_bytes(const cosy_flow *f, int B, int T, int Tk, int paged)
{
    const cosy_hparams *hp = f->hp;
    const size_t C = (size_t)hp->est_channels, R = (size_t)B * T, inner = (size_t)hp->est_heads * hp->est_head_dim;
    const size_t IN = (size_t)hp->est_in_channels, TE = 4 * C, widest = IN > 2 * C ? IN : 2 * C;
    flow_ctx c = {f, f->pool, NULL};
    size_t floats = FLOW_ARENA_FLOATS(B * IN) + 2 * FLOW_ARENA_FLOATS(B * TE) + FLOW_ARENA_FLOATS(B * C);
    floats += 2 * FLOW_ARENA_FLOATS(R * C) + FLOW_ARENA_FLOATS(R * 2 * C);  /* h, skip, concat */
    size_t resnet = 2 * FLOW_ARENA_FLOATS(R * C) + FLOW_ARENA_FLOATS(R * 3 * widest);
    size_t scores = paged ? flow_attention_paged_scratch_floats(&c, B, Tk, hp->est_heads, hp->est_head_dim, 0)
                          : flow_attention_scratch_floats(&c, B, Tk, hp->est_heads, hp->est_head_dim, 0);
    size_t transformer = FLOW_ARENA_FLOATS(R * C) + FLOW_ARENA_FLOATS(R * 3 * inner) + FLOW_ARENA_FLOATS(R * inner) +
                         FLOW_ARENA_FLOATS(R * 4 * C) + FLOW_ARENA_FLOATS(scores);
    floats += resnet > transformer ? resnet : transformer;
    return floats * sizeof(float) + 64;
}

size_t flow_estimator_scratch_bytes(const cosy_flow *f, int B, int T) { return estimator_scratch_bytes(f, B, T, T, 0); }

size_t flow_estimator_cached_scratch_bytes(const cosy_flow *f, int B, int n, int frames)
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
    return flow_conv_forward(c, cv, x, B, T, -hist, before, before ? hist : 0, NULL, 0, y);
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

/* BasicTransformerBlock on x[B*T][C], in place; with a cache, the frames' keys/values go to its
 * pages (as `layer`) and the queries also attend to the cached frames before them */
static cosy_status transformer_forward(flow_ctx *c, const flow_transformer *tf, float *x, int B, int T, int chunk, const flow_cache *fc,
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
    if (fc) {
        flow_cache_put_kv(fc, layer, qkv + inner, qkv + 2 * inner, 3 * inner);
        flow_kv_pages kv = flow_cache_kv(fc, layer);
        COSY_TRY(flow_attention_paged(c, qkv, 3 * inner, &kv, B, T, fc->start + T, H, d, fc->start, chunk, scale, NULL, NULL, o, inner));
    } else {
        COSY_TRY(flow_attention(c, qkv, 3 * inner, qkv + inner, qkv + 2 * inner, 3 * inner, B, T, T, H, d, 0, chunk, scale, NULL, NULL, o,
                                inner));
    }
    flow_linear_run(c, &tf->out, o, R, x, 1);
    flow_layer_norm(c, nx, x, R, C, &tf->norm3, NORM_EPS);
    flow_linear_act(c, &tf->ff1, nx, R, ff, 0, COSY_ACT_GELU);
    flow_linear_run(c, &tf->ff2, ff, R, x, 1);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

/* SinusoidalPosEmb(dim)(t, scale=1000) then TimestepEmbedding (Linear, SiLU, Linear); all in float32 */
static void time_embedding(flow_ctx *c, const flow_estimator_weights *w, int dim, const float *t, int B, float *sin_emb, float *hidden, float *out)
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
static cosy_status estimator_run(flow_ctx *c, const float *in, const float *t, int B, int T, int streaming, const flow_cache *fc,
                                 float *out)
{
    const cosy_hparams *hp = c->flow->hp;
    const flow_estimator_weights *w = &c->flow->est;
    const int C = hp->est_channels, IN = hp->est_in_channels, NB = hp->est_n_blocks, NM = hp->est_mid_blocks, TE = 4 * C, R = B * T;
    const int chunk = streaming ? hp->est_static_chunk : 0;
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
    for (int j = 0; j < NB; j++) COSY_TRY(transformer_forward(c, &w->down_tf[j], skip, B, T, chunk, fc, j));
    COSY_TRY(causal_conv(c, &w->down_conv, skip, B, T, fc, 2, h));

    /* mid (layers NB + i NB + j; convolutions 3 + 2i, 4 + 2i) */
    for (int i = 0; i < NM; i++) {
        flow_linear_run(c, &w->mid[i].mlp, temb, B, tproj, 0);
        COSY_TRY(resnet_forward(c, &w->mid[i], h, B, T, tproj, cat, fc, 3 + 2 * i));
        memcpy(h, cat, sizeof(float) * (size_t)R * C);
        for (int j = 0; j < NB; j++) COSY_TRY(transformer_forward(c, &w->mid_tf[i * NB + j], h, B, T, chunk, fc, NB + i * NB + j));
    }

    /* up: channels [x | skip] (layers NB (NM + 1) + j; convolutions 3 + 2 NM .. 5 + 2 NM) */
    for (int r = 0; r < R; r++) {
        memcpy(cat + (size_t)r * 2 * C, h + (size_t)r * C, sizeof(float) * (size_t)C);
        memcpy(cat + (size_t)r * 2 * C + C, skip + (size_t)r * C, sizeof(float) * (size_t)C);
    }
    flow_linear_run(c, &w->up.mlp, temb, B, tproj, 0);
    COSY_TRY(resnet_forward(c, &w->up, cat, B, T, tproj, h, fc, 3 + 2 * NM));
    for (int j = 0; j < NB; j++) COSY_TRY(transformer_forward(c, &w->up_tf[j], h, B, T, chunk, fc, NB * (NM + 1) + j));
    COSY_TRY(causal_conv(c, &w->up_conv, h, B, T, fc, 5 + 2 * NM, skip));

    /* final CausalBlock1D (convolution 6 + 2 NM) and projection */
    COSY_TRY(causal_conv(c, &w->final_conv, skip, B, T, fc, 6 + 2 * NM, h));
    flow_layer_norm(c, h, h, R, C, &w->final_norm, NORM_EPS);
    flow_mish(c, h, (size_t)R * C);
    flow_linear_run(c, &w->final_proj, h, R, out, 0);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

cosy_status flow_estimator_forward(flow_ctx *c, const float *in, const float *t, int B, int T, int streaming, float *out)
{
    return estimator_run(c, in, t, B, T, streaming, NULL, out);
}

cosy_status flow_estimator_forward_cached(flow_ctx *c, const float *in, const float *t, const flow_cache *fc, float *out)
{
    const cosy_hparams *hp = c->flow->hp;
    if (!fc || fc->chunk != hp->est_static_chunk || fc->B < 1 || fc->n < 1 || fc->kv_width != hp->est_heads * hp->est_head_dim ||
        fc->conv_rows < 2 || fc->conv_width < flow_estimator_conv_width(c->flow))
        return cosy_error(COSY_ERR_INTERNAL, "flow estimator: cache does not fit the estimator");
    return estimator_run(c, in, t, fc->B, fc->n, 1, fc, out);
}
