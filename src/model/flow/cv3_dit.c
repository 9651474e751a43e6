/*
 * cv3_dit.c — CosyVoice3's flow networks (cosyvoice/flow/flow.py CausalMaskedDiffWithDiT,
 * cosyvoice/flow/DiT/{dit,modules}.py, cosyvoice/transformer/upsample_encoder.py PreLookaheadLayer):
 *
 *   tokens -> PreLookaheadLayer (conv k = pre_lookahead_len + 1 over the next tokens, leaky ReLU 0.01,
 *             causal conv k3, + residual) -> x2 repeat = mu                       (no encoder)
 *   DiT(x, mu, t, spks, cond):
 *     t -> sinusoidal (time_freq_dim, scale 1000, [sin | cos]) -> Linear, SiLU, Linear = temb
 *     proj(cat[x, cond, mu, spks]) + CausalConvPositionEmbedding (twice: left pad K-1, grouped conv,
 *       Mish; causal also without streaming)
 *     depth x DiTBlock: AdaLayerNormZero(temb) -> 6 chunks (shift, scale, gate of the attention, the
 *       same of the feed-forward) around an affine-free LayerNorm (eps 1e-6); attention with biases,
 *       rotary position on the flattened q/k projections, SDPA scale 1/sqrt(dim_head), full or
 *       chunk-causal mask; feed-forward Linear, GELU(tanh), Linear
 *     AdaLayerNormZero_Final (chunks scale, shift) -> proj_out.
 *
 * Rotary: x-transformers' RotaryEmbedding(dim_head) is applied (f5-tts AttnProcessor) to to_q(x) and
 * to_k(x) of shape [B, T, heads * dim_head] before the heads are split, and rotates only the first
 * dim_head channels — head 0; the other heads see positions only through the conv pos-emb. Pairs are
 * interleaved: channels (2i, 2i + 1) turn by p * inv_freq[i] at frame p (absolute: 0 = the first frame
 * of the whole sequence, prompt included). inv_freq is read from the model file (rope theta is
 * whatever the checkpoint holds).
 *
 * Layout as the rest of the flow (flow_internal.h): time-major rows, B = the two CFG rows stacked, so
 * every Linear is one product over all rows. The reference's mask input is all ones for batch-1
 * inference, so the `* mask` products are identities and skipped.
 */
#include "model/flow/flow_internal.h"
#include "model/flow/flow_load.h"
#include "core/error.h"
#include "core/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIT_NORM_EPS 1e-6f      /* nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6) in the DiT */
#define LEAKY_SLOPE 0.01f       /* F.leaky_relu default in PreLookaheadLayer */

cosy_status cv3_dit_load(cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    cv3_dit_weights *w = &f->dit;
    const int D = hp->dit_dim, inner = hp->dit_heads * hp->dit_dim_head, FF = D * hp->dit_ff_mult, G = hp->dit_conv_pos_groups;
    const int M = hp->flow_output_size, IN = hp->flow_input_size;
    if (D < 1 || hp->dit_heads < 1 || hp->dit_dim_head < 2 || hp->dit_dim_head % 2 || G < 1 || D % G || hp->dit_time_freq_dim < 4 ||
        hp->dit_time_freq_dim % 2 || hp->dit_rope_dim * 2 != hp->dit_dim_head || hp->dit_mel_dim != M || hp->dit_out_channels != M ||
        hp->dit_spk_dim != M || hp->dit_mu_dim != IN || IN != M || hp->pre_lookahead_len < 0 || hp->est_static_chunk < 1)
        return cosy_error(COSY_ERR_UNSUPPORTED, "flow: DiT sizes not supported (dim %d, %d heads x %d, %d conv groups, time %d, rope %d, "
                          "mel/mu/spk/out %d/%d/%d/%d, tokens %d, chunk %d)", D, hp->dit_heads, hp->dit_dim_head, G, hp->dit_time_freq_dim,
                          hp->dit_rope_dim, hp->dit_mel_dim, hp->dit_mu_dim, hp->dit_spk_dim, hp->dit_out_channels, IN, hp->est_static_chunk);
    COSY_TRY(flow_load_conv(f, &w->pre_conv1, hp->pre_lookahead_channels, IN, hp->pre_lookahead_len + 1, "flow.pre_lookahead_layer.conv1"));
    COSY_TRY(flow_load_conv(f, &w->pre_conv2, IN, hp->pre_lookahead_channels, 3, "flow.pre_lookahead_layer.conv2"));
    COSY_TRY(flow_load_linear(f, &w->time1, 1, D, hp->dit_time_freq_dim, "flow.est.time_embed.time_mlp.0"));
    COSY_TRY(flow_load_linear(f, &w->time2, 1, D, D, "flow.est.time_embed.time_mlp.2"));
    COSY_TRY(flow_load_linear(f, &w->in_proj, 1, D, 3 * M + IN, "flow.est.input_embed.proj"));
    w->pos1 = cosy_model_alloc(f->model, sizeof(flow_conv) * 2 * (size_t)G);
    w->blocks = cosy_model_alloc(f->model, sizeof(cv3_dit_block) * (size_t)(hp->dit_depth > 0 ? hp->dit_depth : 1));
    float *ones = cosy_model_alloc(f->model, sizeof(float) * 2 * (size_t)D);
    if (!w->pos1 || !w->blocks || !ones) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory");
    w->pos2 = w->pos1 + G;
    for (int i = 0; i < D; i++) {
        ones[i] = 1.0f;
        ones[D + i] = 0.0f;
    }
    w->plain = (flow_norm){ones, ones + D};
    COSY_TRY(flow_load_conv_groups(f, w->pos1, G, D, D / G, hp->dit_conv_pos_kernel, "flow.est.input_embed.conv_pos_embed.conv1.0"));
    COSY_TRY(flow_load_conv_groups(f, w->pos2, G, D, D / G, hp->dit_conv_pos_kernel, "flow.est.input_embed.conv_pos_embed.conv2.0"));
    const cosy_tensor *inv;
    COSY_TRY(cosy_model_tensor(f->model, "flow.est.rotary_embed.inv_freq", &inv));
    if (cosy_tensor_numel(inv) != hp->dit_rope_dim)
        return cosy_error(COSY_ERR_SHAPE, "flow: flow.est.rotary_embed.inv_freq has %lld values, expected dim_head / 2 = %d",
                          (long long)cosy_tensor_numel(inv), hp->dit_rope_dim);
    COSY_TRY(cosy_model_f32(f->model, "flow.est.rotary_embed.inv_freq", &w->inv_freq));
    for (int i = 0; i < hp->dit_depth; i++) {
        cv3_dit_block *b = &w->blocks[i];
        char prefix[96];
        snprintf(prefix, sizeof prefix, "flow.est.transformer_blocks.%d.attn", i);
        COSY_TRY(flow_load_linear(f, &b->ada, 1, 6 * D, D, "flow.est.transformer_blocks.%d.attn_norm.linear", i));
        COSY_TRY(flow_load_qkv(f, &b->qkv, 1, inner, D, prefix, "to_q", "to_k", "to_v"));
        COSY_TRY(flow_load_linear(f, &b->out, 1, D, inner, "flow.est.transformer_blocks.%d.attn.to_out.0", i));
        COSY_TRY(flow_load_linear(f, &b->ff1, 1, FF, D, "flow.est.transformer_blocks.%d.ff.ff.0.0", i));
        COSY_TRY(flow_load_linear(f, &b->ff2, 1, D, FF, "flow.est.transformer_blocks.%d.ff.ff.2", i));
    }
    COSY_TRY(flow_load_linear(f, &w->norm_out, 1, 2 * D, D, "flow.est.norm_out.linear"));
    COSY_TRY(flow_load_linear(f, &w->proj_out, 1, M, D, "flow.est.proj_out"));
    return COSY_OK;
}

/* ---------------------------------------------------------------- PreLookaheadLayer */

size_t cv3_pre_lookahead_scratch_bytes(const cosy_flow *f, int n_tokens)
{
    const cosy_hparams *hp = f->hp;
    const size_t C = (size_t)hp->pre_lookahead_channels, IN = (size_t)hp->flow_input_size;
    const size_t width = C * 3 > IN * (size_t)(hp->pre_lookahead_len + 1) ? C * 3 : IN * (size_t)(hp->pre_lookahead_len + 1);
    return (FLOW_ARENA_FLOATS((size_t)n_tokens * C) + FLOW_ARENA_FLOATS((size_t)n_tokens * width)) * sizeof(float) + 64;
}

cosy_status cv3_pre_lookahead(flow_ctx *c, const float *x, int n_tokens, int n_context, float *h)
{
    const cv3_dit_weights *w = &c->flow->dit;
    const int T1 = n_tokens - n_context, C = w->pre_conv1.out, IN = w->pre_conv1.in;
    if (T1 < 1) return cosy_error(COSY_ERR_INVALID_ARG, "flow: %d tokens with %d of context", n_tokens, n_context);
    size_t mark = cosy_arena_mark(c->arena);
    float *tmp = cosy_arena_floats(c->arena, (size_t)T1 * C);
    if (!tmp) return cosy_error(COSY_ERR_NOMEM, "flow: scratch arena too small");
    /* conv1 looks ahead over the context tokens (non-final) or zero frames (final: F.pad right) */
    COSY_TRY(flow_conv_forward(c, &w->pre_conv1, x, 1, T1, 0, NULL, 0, n_context ? x + (size_t)T1 * IN : NULL, n_context, tmp));
    cosy_leaky_relu(tmp, (size_t)T1 * C, LEAKY_SLOPE);
    COSY_TRY(flow_conv_forward(c, &w->pre_conv2, tmp, 1, T1, -(w->pre_conv2.k - 1), NULL, 0, NULL, 0, h));
    cosy_add(h, x, (size_t)T1 * IN);
    cosy_arena_release(c->arena, mark);
    return COSY_OK;
}

/* ---------------------------------------------------------------- DiT */

/* scratch for B rows of T new frames over Tk keys (mirrors the allocations of dit_run) */
static size_t dit_scratch_bytes(const cosy_flow *f, int B, int T, int Tk, int cached)
{
    const cosy_hparams *hp = f->hp;
    const size_t D = (size_t)hp->dit_dim, R = (size_t)B * T, inner = (size_t)hp->dit_heads * hp->dit_dim_head;
    const size_t FF = D * (size_t)hp->dit_ff_mult, M = (size_t)hp->flow_output_size, G = (size_t)hp->dit_conv_pos_groups;
    const size_t K = (size_t)hp->dit_conv_pos_kernel, IC = 3 * M + (size_t)hp->flow_input_size;
    flow_ctx c = {f, f->pool, NULL};
    size_t floats = FLOW_ARENA_FLOATS((size_t)B * hp->dit_time_freq_dim) + 3 * FLOW_ARENA_FLOATS((size_t)B * D) +
                    FLOW_ARENA_FLOATS((size_t)B * 6 * D) + FLOW_ARENA_FLOATS(R * D) + FLOW_ARENA_FLOATS(R * D) +
                    FLOW_ARENA_FLOATS((size_t)T * hp->dit_rope_dim) * 2;
    /* the largest of: input embedding (cat; the history rows; the grouped convolutions' gathers, result,
     * im2col), a block */
    size_t embed = FLOW_ARENA_FLOATS(R * IC) + FLOW_ARENA_FLOATS(R * D) + FLOW_ARENA_FLOATS((size_t)B * K * D) +
                   FLOW_ARENA_FLOATS((size_t)B * K * D / G) + 2 * FLOW_ARENA_FLOATS(R * D / G) + FLOW_ARENA_FLOATS(R * K * D / G);
    size_t attn = cached ? flow_attention_paged_scratch_floats(&c, B, Tk, hp->dit_heads, hp->dit_dim_head, 0)
                         : flow_attention_scratch_floats(&c, B, Tk, hp->dit_heads, hp->dit_dim_head, 0);
    size_t block = FLOW_ARENA_FLOATS(R * 3 * inner) + FLOW_ARENA_FLOATS(R * inner) + FLOW_ARENA_FLOATS(R * (FF > D ? FF : D)) + attn;
    floats += embed > block ? embed : block;
    return floats * sizeof(float) + 256;
}

size_t cv3_dit_scratch_bytes(const cosy_flow *f, int B, int T) { return dit_scratch_bytes(f, B, T, T, 0); }

size_t cv3_dit_cached_scratch_bytes(const cosy_flow *f, int B, int n, int frames) { return dit_scratch_bytes(f, B, n, frames, 1); }

/* SinusPositionEmbedding(freq_dim)(t, scale 1000): [sin(1000 t f_j) | cos(...)], f_j = exp(-j ln(10000) / (half - 1)) */
static void sinus_embedding(const float *t, int B, int dim, float *out)
{
    const int half = dim / 2;
    const float step = (float)(log(10000.0) / (half - 1));
    for (int b = 0; b < B; b++) {
        const float st = 1000.0f * t[b];
        for (int i = 0; i < half; i++) {
            const float arg = st * expf((float)i * -step);
            out[(size_t)b * dim + i] = sinf(arg);
            out[(size_t)b * dim + half + i] = cosf(arg);
        }
    }
}

/* nn.GELU(approximate='tanh'), in place */
static void gelu_tanh_range(void *p, size_t b, size_t e) { cosy_vec_gelu_tanh((float *)p + b, e - b); }

/* y = LN(x) * (1 + scale[b]) + shift[b] over B rows of T frames (scale/shift: [B] rows of stride ld) */
typedef struct {
    float *y;
    const float *x, *shift, *scale;
    int T, D;
    size_t ld;
    const flow_norm *plain;
} modulate_task;

static void modulate_range(void *p, size_t r0, size_t r1)
{
    modulate_task *m = p;
    cosy_vec_layer_norm(m->y + r0 * m->D, m->x + r0 * m->D, (int)(r1 - r0), m->D, m->plain->w, m->plain->b, DIT_NORM_EPS);
    for (size_t r = r0; r < r1; r++) {
        const size_t b = r / (size_t)m->T;
        const float *sh = m->shift + b * m->ld, *sc = m->scale + b * m->ld;
        float *y = m->y + r * m->D;
        for (int i = 0; i < m->D; i++) y[i] = y[i] * (1.0f + sc[i]) + sh[i];
    }
}

static void modulate(flow_ctx *c, float *y, const float *x, int B, int T, int D, const float *shift, const float *scale, size_t ld)
{
    modulate_task m = {y, x, shift, scale, T, D, ld, &c->flow->dit.plain};
    flow_parallel(c, (size_t)B * T, 8192 / (size_t)D + 1, modulate_range, &m);
}

/* x[r] += gate[b] * y[r] */
typedef struct {
    float *x;
    const float *y, *gate;
    int T, D;
    size_t ld;
} gate_task;

static void gate_range(void *p, size_t r0, size_t r1)
{
    gate_task *g = p;
    for (size_t r = r0; r < r1; r++) {
        const float *gt = g->gate + r / (size_t)g->T * g->ld, *y = g->y + r * g->D;
        float *x = g->x + r * g->D;
        for (int i = 0; i < g->D; i++) x[i] += gt[i] * y[i];
    }
}

static void gated_add(flow_ctx *c, float *x, const float *y, int B, int T, int D, const float *gate, size_t ld)
{
    gate_task g = {x, y, gate, T, D, ld};
    flow_parallel(c, (size_t)B * T, 8192 / (size_t)D + 1, gate_range, &g);
}

/* The rotary position of head 0's channels of q and k (rows of stride ld, B rows of T frames at
 * absolute frames frame0 + t) */
static void rotary(float *qk, size_t ld, int B, int T, int dh, const float *cos_t, const float *sin_t)
{
    const int half = dh / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *row = qk + ((size_t)b * T + t) * ld;
            const float *cs = cos_t + (size_t)t * half, *sn = sin_t + (size_t)t * half;
            for (int i = 0; i < half; i++) {
                const float a = row[2 * i], e = row[2 * i + 1];
                row[2 * i] = a * cs[i] - e * sn[i];
                row[2 * i + 1] = e * cs[i] + a * sn[i];
            }
        }
}

/* CausalConvPositionEmbedding's grouped convolution (left pad K - 1, or the n_before rows of `before`
 * [B][n_before][D] that precede x) then Mish: x, y [B*T][D] */
static cosy_status pos_conv(flow_ctx *c, const flow_conv *groups, int G, const float *x, int B, int T, int D, const float *before, int n_before,
                            float *y)
{
    const int dg = D / G, R = B * T;
    size_t mark = cosy_arena_mark(c->arena);
    float *xg = cosy_arena_floats(c->arena, (size_t)R * dg), *yg = cosy_arena_floats(c->arena, (size_t)R * dg);
    float *bg = n_before ? cosy_arena_floats(c->arena, (size_t)B * n_before * dg) : NULL;
    if (!xg || !yg || (n_before && !bg)) return cosy_error(COSY_ERR_NOMEM, "flow DiT: scratch arena too small");
    for (int g = 0; g < G; g++) {
        for (int r = 0; r < R; r++) memcpy(xg + (size_t)r * dg, x + (size_t)r * D + (size_t)g * dg, sizeof(float) * (size_t)dg);
        for (int r = 0; r < B * n_before; r++)
            memcpy(bg + (size_t)r * dg, before + (size_t)r * D + (size_t)g * dg, sizeof(float) * (size_t)dg);
        COSY_TRY(flow_conv_forward(c, &groups[g], xg, B, T, -(groups[g].k - 1), bg, n_before, NULL, 0, yg));
        for (int r = 0; r < R; r++) memcpy(y + (size_t)r * D + (size_t)g * dg, yg + (size_t)r * dg, sizeof(float) * (size_t)dg);
    }
    cosy_arena_release(c->arena, mark);
    flow_mish(c, y, (size_t)R * D);
    return COSY_OK;
}

/* the frame j row of a convolution's inputs (floats from base) of CFG row b */
static float *cache_row(const cv3_dit_cache *k, size_t base, size_t row_stride, int b, int j, size_t width)
{
    return (float *)k->pages[j / k->chunk] + base + (size_t)b * row_stride + (size_t)(j % k->chunk) * width;
}

/* frame j's keys of CFG row b in the layer at kv element base (its values vo elements further) set to
 * k and v (inner floats each), rounded to bf16 (nearest even, as the bf16 attention rounds them) when
 * the pages hold bf16 */
static void cache_kv_put(const cv3_dit_cache *c, size_t base, int b, int j, const float *k, const float *v, int inner)
{
    const size_t e = base + (size_t)b * c->kv_row + (size_t)(j % c->chunk) * inner, vo = (size_t)c->chunk * inner;
    if (c->kv_bf16) {
        uint16_t *dst = (uint16_t *)c->pages[j / c->chunk] + e;
        cosy_bf16_store(dst, k, inner);
        cosy_bf16_store(dst + vo, v, inner);
    } else {
        float *dst = (float *)c->pages[j / c->chunk] + e;
        memcpy(dst, k, sizeof(float) * (size_t)inner);
        memcpy(dst + vo, v, sizeof(float) * (size_t)inner);
    }
}

/* convolution `id`'s input x [B][T][D] of the frames from cache->start on: the rows before them
 * (at most K - 1) gathered into hist [B][*n_hist][D], and x stored for later calls */
static void conv_history(const cv3_dit_cache *k, int id, const float *x, int B, int T, int D, int rows, float *hist, int *n_hist)
{
    const int nb = k->start < rows ? k->start : rows;
    const size_t base = k->conv_base + (size_t)id * k->conv_id;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < nb; i++)
            memcpy(hist + ((size_t)b * nb + i) * D, cache_row(k, base, k->conv_row, b, k->start - nb + i, (size_t)D), sizeof(float) * (size_t)D);
        for (int t = 0; t < T; t++)
            memcpy(cache_row(k, base, k->conv_row, b, k->start + t, (size_t)D), x + ((size_t)b * T + t) * D, sizeof(float) * (size_t)D);
    }
    *n_hist = nb;
}

/* the DiT on B rows of T frames: stateless (cache NULL: frames from 0, chunk 0 = full attention) or the
 * frames from cache->start on over the cached earlier ones */
static cosy_status dit_run(flow_ctx *c, const float *x, const float *cond, const float *mu, const float *spks, const float *t, int B, int T,
                           int chunk, const cv3_dit_cache *cache, float *out, cosy_flow_dit_trace *trace)
{
    const cosy_hparams *hp = c->flow->hp;
    const cv3_dit_weights *w = &c->flow->dit;
    const int D = hp->dit_dim, H = hp->dit_heads, dh = hp->dit_dim_head, inner = H * dh, FF = D * hp->dit_ff_mult;
    const int M = hp->flow_output_size, IC = w->in_proj.in, G = hp->dit_conv_pos_groups, R = B * T, half = dh / 2;
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);
    float *sin_emb = cosy_arena_floats(a, (size_t)B * hp->dit_time_freq_dim), *hid = cosy_arena_floats(a, (size_t)B * D);
    float *temb = cosy_arena_floats(a, (size_t)B * D), *st = cosy_arena_floats(a, (size_t)B * D);
    float *mod = cosy_arena_floats(a, (size_t)B * 6 * D);
    float *h = cosy_arena_floats(a, (size_t)R * D), *n = cosy_arena_floats(a, (size_t)R * D);
    float *cos_t = cosy_arena_floats(a, (size_t)T * half), *sin_t = cosy_arena_floats(a, (size_t)T * half);
    if (!sin_emb || !hid || !temb || !st || !mod || !h || !n || !cos_t || !sin_t)
        return cosy_error(COSY_ERR_NOMEM, "flow DiT: scratch arena too small");

    /* time embedding; every AdaLayerNorm's linear starts with SiLU */
    sinus_embedding(t, B, hp->dit_time_freq_dim, sin_emb);
    flow_linear_run(c, &w->time1, sin_emb, B, hid, 0);
    cosy_vec_silu(hid, (size_t)B * D);
    flow_linear_run(c, &w->time2, hid, B, temb, 0);
    if (trace && trace->temb) memcpy(trace->temb, temb, sizeof(float) * (size_t)B * D);
    memcpy(st, temb, sizeof(float) * (size_t)B * D);
    cosy_vec_silu(st, (size_t)B * D);

    /* input embedding: proj(cat[x, cond, mu, spks]) + conv pos-emb */
    {
        size_t m2 = cosy_arena_mark(a);
        float *cat = cosy_arena_floats(a, (size_t)R * IC), *g = cosy_arena_floats(a, (size_t)R * D);
        if (!cat || !g) return cosy_error(COSY_ERR_NOMEM, "flow DiT: scratch arena too small");
        for (int r = 0; r < R; r++) {
            float *row = cat + (size_t)r * IC;
            memcpy(row, x + (size_t)r * M, sizeof(float) * (size_t)M);
            memcpy(row + M, cond + (size_t)r * M, sizeof(float) * (size_t)M);
            memcpy(row + 2 * M, mu + (size_t)r * M, sizeof(float) * (size_t)M);
            memcpy(row + 3 * M, spks + (size_t)(r / T) * M, sizeof(float) * (size_t)(IC - 3 * M));
        }
        flow_linear_run(c, &w->in_proj, cat, R, h, 0);
        const int rows = hp->dit_conv_pos_kernel - 1;
        float *hist = cache ? cosy_arena_floats(a, (size_t)B * (rows > 0 ? rows : 1) * D) : NULL;
        if (cache && !hist) return cosy_error(COSY_ERR_NOMEM, "flow DiT: scratch arena too small");
        int nh = 0;
        if (cache) conv_history(cache, 0, h, B, T, D, rows, hist, &nh);
        COSY_TRY(pos_conv(c, w->pos1, G, h, B, T, D, hist, nh, g));
        if (cache) conv_history(cache, 1, g, B, T, D, rows, hist, &nh);
        COSY_TRY(pos_conv(c, w->pos2, G, g, B, T, D, hist, nh, n));
        flow_add(c, h, n, (size_t)R * D);
        cosy_arena_release(a, m2);
    }
    if (trace && trace->xin) memcpy(trace->xin, h, sizeof(float) * (size_t)R * D);

    /* rotary angles p * inv_freq[i] (float32, as the reference's einsum) */
    const int frame0 = cache ? cache->start : 0;
    for (int p = 0; p < T; p++)
        for (int i = 0; i < half; i++) {
            const float ang = (float)(frame0 + p) * w->inv_freq[i];
            cos_t[(size_t)p * half + i] = cosf(ang);
            sin_t[(size_t)p * half + i] = sinf(ang);
        }

    const float scale = 1.0f / sqrtf((float)dh);
    for (int l = 0; l < hp->dit_depth; l++) {
        const cv3_dit_block *blk = &w->blocks[l];
        size_t m2 = cosy_arena_mark(a);
        float *qkv = cosy_arena_floats(a, (size_t)R * 3 * inner), *o = cosy_arena_floats(a, (size_t)R * inner);
        float *y = cosy_arena_floats(a, (size_t)R * (FF > D ? FF : D));
        if (!qkv || !o || !y) return cosy_error(COSY_ERR_NOMEM, "flow DiT: scratch arena too small");
        flow_linear_run(c, &blk->ada, st, B, mod, 0);
        const size_t ld = 6 * (size_t)D;
        modulate(c, n, h, B, T, D, mod, mod + D, ld);
        flow_linear_run(c, &blk->qkv, n, R, qkv, 0);
        rotary(qkv, 3 * (size_t)inner, B, T, dh, cos_t, sin_t);
        rotary(qkv + inner, 3 * (size_t)inner, B, T, dh, cos_t, sin_t);
        if (cache) {
            const size_t base = cache->kv_base + (size_t)l * cache->kv_layer, vo = (size_t)cache->chunk * inner;
            for (int b = 0; b < B; b++)
                for (int i = 0; i < T; i++) {
                    const float *row = qkv + ((size_t)b * T + i) * 3 * inner;
                    cache_kv_put(cache, base, b, cache->start + i, row + inner, row + 2 * inner, inner);
                }
            const flow_kv_pages kv = {(const void *const *)cache->pages, cache->chunk, base, cache->kv_row, (size_t)inner, (size_t)dh, vo,
                                      cache->kv_bf16};
            COSY_TRY(flow_attention_paged(c, qkv, 3 * inner, &kv, B, T, cache->start + T, H, dh, cache->start, chunk, scale, NULL, NULL, o,
                                          inner));
        } else {
            COSY_TRY(flow_attention(c, qkv, 3 * inner, qkv + inner, qkv + 2 * inner, 3 * inner, B, T, T, H, dh, 0, chunk, scale, NULL, NULL,
                                    o, inner));
        }
        flow_linear_run(c, &blk->out, o, R, y, 0);
        gated_add(c, h, y, B, T, D, mod + 2 * D, ld);
        modulate(c, n, h, B, T, D, mod + 3 * D, mod + 4 * D, ld);
        flow_linear_run(c, &blk->ff1, n, R, y, 0);
        flow_parallel(c, (size_t)R * FF, 8192, gelu_tanh_range, y);
        flow_linear_run(c, &blk->ff2, y, R, n, 0);
        gated_add(c, h, n, B, T, D, mod + 5 * D, ld);
        if (trace && trace->blocks) memcpy(trace->blocks + (size_t)l * R * D, h, sizeof(float) * (size_t)R * D);
        cosy_arena_release(a, m2);
    }

    /* AdaLayerNormZero_Final: chunks (scale, shift) */
    flow_linear_run(c, &w->norm_out, st, B, mod, 0);
    modulate(c, n, h, B, T, D, mod + D, mod, 2 * (size_t)D);
    if (trace && trace->normout) memcpy(trace->normout, n, sizeof(float) * (size_t)R * D);
    flow_linear_run(c, &w->proj_out, n, R, out, 0);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

cosy_status cv3_dit_forward(flow_ctx *c, const float *x, const float *cond, const float *mu, const float *spks, const float *t, int B, int T,
                            int streaming, float *out, cosy_flow_dit_trace *trace)
{
    return dit_run(c, x, cond, mu, spks, t, B, T, streaming ? c->flow->hp->est_static_chunk : 0, NULL, out, trace);
}

cosy_status cv3_dit_forward_cached(flow_ctx *c, const float *x, const float *cond, const float *mu, const float *spks, const float *t, int B,
                                   int T, const cv3_dit_cache *cache, float *out)
{
    /* bf16 keys/values only where the attention rounds them to bf16 anyway (the bf16 mode) */
    if (!cache || !cache->pages || cache->chunk != c->flow->hp->est_static_chunk || cache->start < 0 || T < 1 ||
        (cache->kv_bf16 && !c->flow->bf16))
        return cosy_error(COSY_ERR_INTERNAL, "flow DiT: cache does not fit the DiT");
    return dit_run(c, x, cond, mu, spks, t, B, T, cache->chunk, cache, out, NULL);
}
