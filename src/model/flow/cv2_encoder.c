/*
 * cv2_encoder.c — UpsampleConformerEncoder + encoder_proj (cosyvoice/transformer/
 * upsample_encoder.py), the token side of CausalMaskedDiffWithXvec.inference:
 *
 *   embed (Linear, LayerNorm, x sqrt(width); espnet relative positions)
 *   -> PreLookaheadLayer (conv k=4 over the next tokens incl. look-ahead context, leaky ReLU,
 *      causal conv k=3, residual)
 *   -> conformer blocks (relative-position self-attention + SiLU feed-forward), chunk mask of
 *      chunk_size tokens when streaming
 *   -> Upsample1D (nearest x2, causal conv k=5) -> up_embed -> 4 conformer blocks, chunk of
 *      chunk_size * 2 frames when streaming
 *   -> after_norm -> h; encoder_proj(h) -> mu.
 *
 * Look-ahead context tokens (the last pre_lookahead_len of a non-final call) are embedded like
 * the others but only feed PreLookaheadLayer.conv1 (the reference's `context` argument).
 */
#include "model/flow/flow_internal.h"
#include "model/flow/flow_load.h"
#include "core/error.h"
#include "core/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ConformerEncoderLayer's LayerNorms use eps 1e-12; the embedding's and after_norm 1e-5 */
#define CONFORMER_EPS 1e-12f
#define EMBED_EPS 1e-5f

static cosy_status load_conformer(cosy_flow *f, flow_conformer *L, const char *prefix)
{
    const cosy_hparams *hp = f->hp;
    const int E = hp->enc_output_size, F = hp->enc_ffn;
    COSY_TRY(flow_load_norm(f, &L->norm_mha, "%s.norm_mha", prefix));
    COSY_TRY(flow_load_norm(f, &L->norm_ff, "%s.norm_ff", prefix));
    char attn[128];
    snprintf(attn, sizeof attn, "%s.self_attn", prefix);
    COSY_TRY(flow_load_qkv(f, &L->qkv, 1, E, E, attn, "linear_q", "linear_k", "linear_v"));
    COSY_TRY(flow_load_linear(f, &L->out, 1, E, E, "%s.self_attn.linear_out", prefix));
    COSY_TRY(flow_load_linear(f, &L->pos, 0, E, E, "%s.self_attn.linear_pos", prefix));
    COSY_TRY(cosy_model_f32f(f->model, &L->pos_bias_u, "%s.self_attn.pos_bias_u", prefix));
    COSY_TRY(cosy_model_f32f(f->model, &L->pos_bias_v, "%s.self_attn.pos_bias_v", prefix));
    COSY_TRY(flow_load_linear(f, &L->ff1, 1, F, E, "%s.feed_forward.w_1", prefix));
    COSY_TRY(flow_load_linear(f, &L->ff2, 1, E, F, "%s.feed_forward.w_2", prefix));
    return COSY_OK;
}

cosy_status cv2_encoder_load(cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    cv2_encoder_weights *e = &f->enc;
    const int E = hp->enc_output_size;
    if (hp->enc_input_size != hp->flow_input_size || E != hp->flow_input_size)
        return cosy_error(COSY_ERR_UNSUPPORTED, "flow: encoder input %d / width %d must equal the token embedding width %d "
                          "(PreLookaheadLayer and Upsample1D are built for one width)", hp->enc_input_size, E, hp->flow_input_size);
    COSY_TRY(flow_load_linear(f, &e->embed, 1, E, hp->enc_input_size, "flow.enc.embed.out.0"));
    COSY_TRY(flow_load_norm(f, &e->embed_norm, "flow.enc.embed.out.1"));
    COSY_TRY(flow_load_conv(f, &e->pre_conv1, E, E, hp->pre_lookahead_len + 1, "flow.enc.pre_lookahead_layer.conv1"));
    COSY_TRY(flow_load_conv(f, &e->pre_conv2, E, E, 3, "flow.enc.pre_lookahead_layer.conv2"));
    e->n_blocks = hp->enc_blocks;
    e->n_up_blocks = hp->enc_up_blocks;
    e->blocks = cosy_model_alloc(f->model, sizeof(flow_conformer) * (size_t)(e->n_blocks + e->n_up_blocks + 1));
    if (!e->blocks) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory");
    e->up_blocks = e->blocks + e->n_blocks;
    char prefix[96];
    for (int i = 0; i < e->n_blocks; i++) {
        snprintf(prefix, sizeof prefix, "flow.enc.encoders.%d", i);
        COSY_TRY(load_conformer(f, &e->blocks[i], prefix));
    }
    COSY_TRY(flow_load_conv(f, &e->up_conv, E, E, 2 * hp->enc_up_stride + 1, "flow.enc.up_layer.conv"));
    COSY_TRY(flow_load_linear(f, &e->up_embed, 1, E, E, "flow.enc.up_embed.out.0"));
    COSY_TRY(flow_load_norm(f, &e->up_embed_norm, "flow.enc.up_embed.out.1"));
    for (int i = 0; i < e->n_up_blocks; i++) {
        snprintf(prefix, sizeof prefix, "flow.enc.up_encoders.%d", i);
        COSY_TRY(load_conformer(f, &e->up_blocks[i], prefix));
    }
    COSY_TRY(flow_load_norm(f, &e->after_norm, "flow.enc.after_norm"));
    COSY_TRY(flow_load_linear(f, &e->proj, 1, hp->flow_output_size, E, "flow.encoder_proj"));
    return COSY_OK;
}

int cv2_encoder_frames(const cosy_flow *f, int n_tokens, int n_context)
{
    return (n_tokens - n_context) * f->hp->enc_up_stride;
}

/* what a conformer block takes from the arena for Tq query rows over Tk keys; p_rows: the
 * rows of the relative-position table it projects itself (0 when given a projected one) */
static size_t conformer_scratch_floats(const cosy_flow *f, size_t Tq, size_t Tk, size_t p_rows, int paged)
{
    const cosy_hparams *hp = f->hp;
    const size_t E = (size_t)hp->enc_output_size, F = (size_t)hp->enc_ffn;
    const int d = (int)(E / (size_t)hp->enc_heads);
    flow_ctx c = {f, f->pool, NULL};
    size_t scores = paged ? flow_attention_paged_scratch_floats(&c, 1, (int)Tk, hp->enc_heads, d, 1)
                          : flow_attention_scratch_floats(&c, 1, (int)Tk, hp->enc_heads, d, 1);
    size_t attention = FLOW_ARENA_FLOATS(Tq * 3 * E) + 3 * FLOW_ARENA_FLOATS(Tq * E) + FLOW_ARENA_FLOATS(scores);
    size_t feed_forward = FLOW_ARENA_FLOATS(Tq * F);
    return FLOW_ARENA_FLOATS(p_rows * E) + FLOW_ARENA_FLOATS(Tq * E) + (attention > feed_forward ? attention : feed_forward);
}

/* the encoder's scratch for T1 new tokens (+ n_context) over K1 token keys (K2 = 2 K1 frame keys);
 * with_table: the stateless call builds and projects the position table itself */
static size_t encoder_scratch_bytes(const cosy_flow *f, size_t T1, int n_context, size_t K1, int stateless)
{
    const cosy_hparams *hp = f->hp;
    const size_t E = (size_t)hp->enc_output_size, up = (size_t)hp->enc_up_stride;
    const size_t T2 = T1 * up, K2 = K1 * up;
    /* held through the whole forward: x, context, a second buffer, the position table */
    size_t floats = 2 * FLOW_ARENA_FLOATS(T2 * E) + FLOW_ARENA_FLOATS((size_t)n_context * E);
    if (stateless) floats += FLOW_ARENA_FLOATS((2 * T2 - 1) * E);
    /* then the largest of: a convolution's im2col, a conformer block at either length */
    size_t conv1 = FLOW_ARENA_FLOATS(T1 * E * (size_t)(hp->pre_lookahead_len + 1));
    size_t conv2 = FLOW_ARENA_FLOATS(T1 * E * 3);
    size_t conv_up = FLOW_ARENA_FLOATS(T2 * E * (size_t)(2 * hp->enc_up_stride + 1));
    size_t peak = conformer_scratch_floats(f, T2, K2, stateless ? 2 * T2 - 1 : 0, !stateless);
    size_t c1 = conformer_scratch_floats(f, T1, K1, stateless ? 2 * T1 - 1 : 0, !stateless);
    if (c1 > peak) peak = c1;
    if (conv1 > peak) peak = conv1;
    if (conv2 > peak) peak = conv2;
    if (conv_up > peak) peak = conv_up;
    return (floats + peak) * sizeof(float) + 64;
}

size_t cv2_encoder_scratch_bytes(const cosy_flow *f, int n_tokens, int n_context)
{
    const size_t T1 = (size_t)(n_tokens - n_context);
    return encoder_scratch_bytes(f, T1, n_context, T1, 1);
}

size_t cv2_encoder_cached_scratch_bytes(const cosy_flow *f, int n_rows, int n_context, int tokens)
{
    return encoder_scratch_bytes(f, (size_t)(n_rows - n_context), n_context, (size_t)tokens, 0);
}

/* ---------------------------------------------------------------- relative positions */

/*
 * EspnetRelPositionalEncoding: the table of a sequence of T has 2T - 1 rows, row m for relative
 * position (T - 1 - m): PE(r)[2i] = sin(r w_i), PE(r)[2i+1] = cos(r w_i), w_i = exp(2i * -ln(10000)
 * / d), all in float32 as the reference builds its `pe` buffer (PE(-r) = (-sin, cos) of the same
 * angle). A row depends only on its distance, so the table of a shorter sequence T' is the middle
 * of this one (starting at row T - T'), and a cached stream builds just the distances it needs.
 */
void flow_rel_position_rows(float *pe, int r_hi, int r_lo, int d)
{
    const float step = (float)(-(log(10000.0) / d));
    for (int i = 0; i < d / 2; i++) {
        const float w = expf((float)(2 * i) * step);
        for (int r = r_hi; r >= r_lo; r--) {
            const int a = r < 0 ? -r : r;
            const float angle = (float)a * w, s = sinf(angle), co = cosf(angle);
            float *row = pe + (size_t)(r_hi - r) * d;
            row[2 * i] = r < 0 ? -s : s;
            row[2 * i + 1] = co;
        }
    }
}

typedef struct {
    int fast;
    const float *qv;  /* queries + pos_bias_v [Tq][E] */
    const float *p;   /* linear_pos(pe): row zero - r holds distance r */
    int zero, q_offset, E, d;
    float scale;
} rel_pos_ctx;

/*
 * RelPositionMultiHeadedAttention's matrix_bd after rel_shift: score(i, j) += scale *
 * (q_i + v_h) . p(i - j) with i the absolute query position (q_offset + query row). For query
 * rows [i0, i1) and keys [0, n_keys) the distances form one contiguous band of the table, from
 * q_offset + i1 - 1 down to q_offset + i0 - n_keys + 1.
 */
static void rel_pos_scores(void *ctx, int b, int h, int i0, int i1, int n_keys, float *scores, int ld_scores, float *scratch)
{
    (void)b;
    rel_pos_ctx *r = ctx;
    const int rows = i1 - i0, width = rows + n_keys - 1, m_lo = r->zero - (r->q_offset + i1 - 1);
    float *bd = scratch;                                   /* [rows][width] */
    const float *qv = r->qv + (size_t)i0 * r->E + h * r->d, *band = r->p + (size_t)m_lo * r->E + h * r->d;
    if (r->fast) {
        float *panels = bd + (size_t)rows * width;         /* the band of p, packed */
        cosy_pack_f32_rows(panels, band, width, r->d, r->E);
        cosy_gemm_f32_panels(rows, width, r->d, r->scale, qv, r->E, panels, (size_t)r->d * COSY_PANEL, 0,
                         (width + COSY_PANEL - 1) / COSY_PANEL, NULL, bd, width, 0, COSY_ACT_NONE);
    } else {
        cosy_sgemm(0, 1, rows, width, r->d, r->scale, qv, r->E, band, r->E, 0.0f, bd, width);
    }
    for (int row = 0; row < rows; row++) {
        const float *diag = bd + (size_t)row * width + (rows - 1 - row);
        float *s = scores + (size_t)row * ld_scores;
        for (int j = 0; j < n_keys; j++) s[j] += diag[j];
    }
}

/* ---------------------------------------------------------------- conformer block */

/*
 * x[Tq][E] += MHA(norm_mha(x)); x += FFN(norm_ff(x)) for the rows [q0, q0 + Tq) of the sequence
 * (q0 = fc->start with a cache, else 0). p/zero: the projected position table. With a cache the
 * rows' keys/values go to its pages and the queries attend to everything cached before them.
 */
static cosy_status conformer_block(flow_ctx *c, const flow_conformer *L, float *x, int Tq, const float *p, int zero, int chunk,
                                   const flow_cache *fc, int layer)
{
    const cosy_hparams *hp = c->flow->hp;
    const int E = hp->enc_output_size, H = hp->enc_heads, d = E / H, F = hp->enc_ffn;
    const int q0 = fc ? fc->start : 0;
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);
    float *nx = cosy_arena_floats(a, (size_t)Tq * E);
    const size_t after_nx = cosy_arena_mark(a);
    float *qkv = cosy_arena_floats(a, (size_t)Tq * 3 * E);
    float *qu = cosy_arena_floats(a, (size_t)Tq * E), *qv = cosy_arena_floats(a, (size_t)Tq * E);
    float *att = cosy_arena_floats(a, (size_t)Tq * E);
    if (!nx || !qkv || !qu || !qv || !att) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");

    flow_layer_norm(c, nx, x, Tq, E, &L->norm_mha, CONFORMER_EPS);
    flow_linear_run(c, &L->qkv, nx, Tq, qkv, 0);
    for (int t = 0; t < Tq; t++) {
        const float *q_row = qkv + (size_t)t * 3 * E;
        float *qu_row = qu + (size_t)t * E, *qv_row = qv + (size_t)t * E;
        for (int i = 0; i < E; i++) {
            qu_row[i] = q_row[i] + L->pos_bias_u[i];
            qv_row[i] = q_row[i] + L->pos_bias_v[i];
        }
    }
    const float scale = 1.0f / sqrtf((float)d);
    rel_pos_ctx rp = {c->flow->fast, qv, p, zero, q0, E, d, scale};
    if (fc) {
        flow_cache_put_kv(fc, layer, qkv + E, qkv + 2 * E, 3 * E);
        flow_kv_pages kv = flow_cache_kv(fc, layer);
        COSY_TRY(flow_attention_paged(c, qu, E, &kv, 1, Tq, q0 + Tq, H, d, q0, chunk, scale, rel_pos_scores, &rp, att, E));
    } else {
        COSY_TRY(flow_attention(c, qu, E, qkv + E, qkv + 2 * E, 3 * E, 1, Tq, Tq, H, d, 0, chunk, scale, rel_pos_scores, &rp, att, E));
    }
    flow_linear_run(c, &L->out, att, Tq, x, 1);

    /* the feed-forward's wider buffer reuses the attention scratch */
    flow_layer_norm(c, nx, x, Tq, E, &L->norm_ff, CONFORMER_EPS);
    cosy_arena_release(a, after_nx);
    float *hid = cosy_arena_floats(a, (size_t)Tq * F);
    if (!hid) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");
    flow_linear_act(c, &L->ff1, nx, Tq, hid, 0, COSY_ACT_SILU);
    flow_linear_run(c, &L->ff2, hid, Tq, x, 1);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

/* the stateless block: projects the sequence's position table (pe_table [2T - 1][E]) first */
static cosy_status conformer_forward(flow_ctx *c, const flow_conformer *L, float *x, int T, const float *pe_table, int chunk)
{
    const int E = c->flow->hp->enc_output_size;
    size_t mark = cosy_arena_mark(c->arena);
    float *p = cosy_arena_floats(c->arena, (size_t)(2 * T - 1) * E);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");
    flow_linear_run(c, &L->pos, pe_table, 2 * T - 1, p, 0);
    cosy_status st = conformer_block(c, L, x, T, p, T - 1, chunk, NULL, 0);
    cosy_arena_release(c->arena, mark);
    return st;
}

/* LinearNoSubsampling + EspnetRelPositionalEncoding's x * sqrt(d) (dropout is identity) */
static void embed_forward(flow_ctx *c, const flow_linear *l, const flow_norm *n, const float *x, int T, float *y)
{
    const int E = l->out;
    flow_linear_run(c, l, x, T, y, 0);
    flow_layer_norm(c, y, y, T, E, n, EMBED_EPS);
    const float xscale = (float)sqrt((double)E);
    cosy_scale(y, xscale, (size_t)T * E);
}

/* ---------------------------------------------------------------- forward */

/*
 * The encoder on tokens [t0, t0 + T1) (x: their embeddings, then n_context look-ahead ones):
 * stateless (ec NULL, t0 = 0) or with everything before t0 cached in ec.
 */
static cosy_status encoder_run(flow_ctx *c, const float *x, int n_rows, int n_context, int streaming, const cv2_encoder_cache *ec,
                               float *h, float *mu)
{
    const cosy_flow *f = c->flow;
    const cosy_hparams *hp = f->hp;
    const cv2_encoder_weights *e = &f->enc;
    const int E = hp->enc_output_size, IN = hp->enc_input_size;
    const int T1 = n_rows - n_context, up = hp->enc_up_stride, T2 = T1 * up;
    if (T1 < 1) return cosy_error(COSY_ERR_INVALID_ARG, "flow encoder: no tokens besides the %d look-ahead ones", n_context);
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);

    /* embed the tokens and, separately (offset positions, unused), the look-ahead context */
    /* (encoder_scratch_bytes mirrors these allocations) */
    float *xs = cosy_arena_floats(a, (size_t)T2 * E); /* sized for the upsampled sequence, reused below */
    float *ctx = n_context ? cosy_arena_floats(a, (size_t)n_context * E) : NULL;
    float *tmp = cosy_arena_floats(a, (size_t)T2 * E);
    float *pe = ec ? NULL : cosy_arena_floats(a, (size_t)(2 * T2 - 1) * E);
    if (!xs || (n_context && !ctx) || !tmp || (!ec && !pe)) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");
    embed_forward(c, &e->embed, &e->embed_norm, x, T1, xs);
    if (n_context) embed_forward(c, &e->embed, &e->embed_norm, x + (size_t)T1 * IN, n_context, ctx);

    /* PreLookaheadLayer: conv1 sees tokens t..t+3 (context, then zeros, past the end) */
    COSY_TRY(flow_conv_forward(c, &e->pre_conv1, xs, 1, T1, 0, NULL, 0, ctx, n_context, tmp));
    cosy_leaky_relu(tmp, (size_t)T1 * E, 0.01f);
    float *y2 = tmp + (size_t)T1 * E; /* tmp holds T2 >= 2 * T1 rows */
    const int hist2 = e->pre_conv2.k - 1;
    const float *before2 = ec ? flow_cache_conv(&ec->tok, 0, tmp, E, hist2) : NULL;
    COSY_TRY(flow_conv_forward(c, &e->pre_conv2, tmp, 1, T1, -hist2, before2, before2 ? hist2 : 0, NULL, 0, y2));
    flow_add(c, xs, y2, (size_t)T1 * E);

    const int chunk1 = streaming ? hp->enc_static_chunk : 0;
    if (!ec) flow_rel_position_rows(pe, T2 - 1, -(T2 - 1), E);
    const float *pe1 = ec ? NULL : pe + (size_t)(T2 - T1) * E;
    for (int i = 0; i < e->n_blocks; i++) {
        if (ec) COSY_TRY(conformer_block(c, &e->blocks[i], xs, T1, ec->pos_tok[i], ec->pos_zero_tok, chunk1, &ec->tok, i));
        else COSY_TRY(conformer_forward(c, &e->blocks[i], xs, T1, pe1, chunk1));
    }

    /* Upsample1D: nearest repeat, then a conv of 2*stride+1 taps with 2*stride zeros on the left */
    for (int t = 0; t < T1; t++)
        for (int r = 0; r < up; r++) memcpy(tmp + ((size_t)t * up + r) * E, xs + (size_t)t * E, sizeof(float) * (size_t)E);
    const int hist_up = e->up_conv.k - 1;
    const float *before_up = ec ? flow_cache_conv(&ec->frame, 0, tmp, E, hist_up) : NULL;
    COSY_TRY(flow_conv_forward(c, &e->up_conv, tmp, 1, T2, -hist_up, before_up, before_up ? hist_up : 0, NULL, 0, xs));
    memcpy(tmp, xs, sizeof(float) * (size_t)T2 * E);
    embed_forward(c, &e->up_embed, &e->up_embed_norm, tmp, T2, xs);

    const int chunk2 = streaming ? hp->enc_static_chunk * up : 0;
    for (int i = 0; i < e->n_up_blocks; i++) {
        if (ec) COSY_TRY(conformer_block(c, &e->up_blocks[i], xs, T2, ec->pos_frame[i], ec->pos_zero_frame, chunk2, &ec->frame, i));
        else COSY_TRY(conformer_forward(c, &e->up_blocks[i], xs, T2, pe, chunk2));
    }

    flow_layer_norm(c, h, xs, T2, E, &e->after_norm, EMBED_EPS);
    flow_linear_run(c, &e->proj, h, T2, mu, 0);
    cosy_arena_release(a, mark);
    return COSY_OK;
}

cosy_status cv2_encoder_forward(flow_ctx *c, const float *x, int n_tokens, int n_context, int streaming, float *h, float *mu)
{
    return encoder_run(c, x, n_tokens, n_context, streaming, NULL, h, mu);
}

cosy_status cv2_encoder_forward_cached(flow_ctx *c, const float *x, int n_rows, int n_context, const cv2_encoder_cache *ec, float *h,
                                       float *mu)
{
    const cosy_hparams *hp = c->flow->hp;
    if (!ec || ec->tok.n != n_rows - n_context || ec->frame.n != ec->tok.n * hp->enc_up_stride ||
        ec->frame.start != ec->tok.start * hp->enc_up_stride || ec->tok.chunk != hp->enc_static_chunk ||
        ec->frame.chunk != hp->enc_static_chunk * hp->enc_up_stride)
        return cosy_error(COSY_ERR_INTERNAL, "flow encoder: cache does not describe the rows computed");
    return encoder_run(c, x, n_rows, n_context, 1, ec, h, mu);
}
