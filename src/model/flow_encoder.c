/*
 * flow_encoder.c — UpsampleConformerEncoder + encoder_proj (cosyvoice/transformer/
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
#include "model/flow_internal.h"
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

cosy_status flow_encoder_load(cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    flow_encoder_weights *e = &f->enc;
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

int flow_encoder_frames(const cosy_flow *f, int n_tokens, int n_context)
{
    return (n_tokens - n_context) * f->hp->enc_up_stride;
}

/* what conformer_forward takes from the arena for a sequence of T */
static size_t conformer_scratch_floats(const cosy_flow *f, size_t T)
{
    const cosy_hparams *hp = f->hp;
    const size_t E = (size_t)hp->enc_output_size, F = (size_t)hp->enc_ffn;
    flow_ctx c = {f, f->pool, NULL};
    size_t attention = FLOW_ARENA_FLOATS(T * 3 * E) + 3 * FLOW_ARENA_FLOATS(T * E) + FLOW_ARENA_FLOATS((2 * T - 1) * E) +
                       FLOW_ARENA_FLOATS(flow_attention_scratch_floats(&c, 1, (int)T, hp->enc_heads, (int)(E / (size_t)hp->enc_heads), 1));
    size_t feed_forward = FLOW_ARENA_FLOATS(T * F);
    return FLOW_ARENA_FLOATS(T * E) + (attention > feed_forward ? attention : feed_forward);
}

size_t flow_encoder_scratch_bytes(const cosy_flow *f, int n_tokens, int n_context)
{
    const cosy_hparams *hp = f->hp;
    const size_t E = (size_t)hp->enc_output_size;
    const size_t T1 = (size_t)(n_tokens - n_context), T2 = T1 * (size_t)hp->enc_up_stride;
    /* held through the whole forward: x, context, a second buffer, the position table */
    size_t floats = 2 * FLOW_ARENA_FLOATS(T2 * E) + FLOW_ARENA_FLOATS((size_t)n_context * E) + FLOW_ARENA_FLOATS((2 * T2 - 1) * E);
    /* then the largest of: a convolution's im2col, a conformer block at either length */
    size_t conv1 = FLOW_ARENA_FLOATS(T1 * E * (size_t)(hp->pre_lookahead_len + 1));
    size_t conv2 = FLOW_ARENA_FLOATS(T1 * E * 3);
    size_t conv_up = FLOW_ARENA_FLOATS(T2 * E * (size_t)(2 * hp->enc_up_stride + 1));
    size_t peak = conformer_scratch_floats(f, T2);
    size_t c1 = conformer_scratch_floats(f, T1);
    if (c1 > peak) peak = c1;
    if (conv1 > peak) peak = conv1;
    if (conv2 > peak) peak = conv2;
    if (conv_up > peak) peak = conv_up;
    return (floats + peak) * sizeof(float) + 64;
}

/* ---------------------------------------------------------------- relative positions */

/*
 * EspnetRelPositionalEncoding for a sequence of T: row m of the table is relative position
 * (T - 1 - m), m in [0, 2T - 1): PE(r)[2i] = sin(r w_i), PE(r)[2i+1] = cos(r w_i),
 * w_i = exp(2i * -ln(10000) / d), all in float32 as the reference builds its `pe` buffer
 * (PE(-r) = (-sin, cos) of the same angle). The table of a shorter sequence T' is the middle
 * of this one, starting at row T - T'.
 */
static void rel_position_table(float *pe, int T, int d)
{
    const float step = (float)(-(log(10000.0) / d));
    for (int i = 0; i < d / 2; i++) {
        const float w = expf((float)(2 * i) * step);
        for (int a = 0; a < T; a++) {
            const float angle = (float)a * w, s = sinf(angle), co = cosf(angle);
            float *pos = pe + (size_t)(T - 1 - a) * d, *neg = pe + (size_t)(T - 1 + a) * d;
            pos[2 * i] = s;
            pos[2 * i + 1] = co;
            neg[2 * i] = -s;
            neg[2 * i + 1] = co;
        }
    }
}

typedef struct {
    int fast;
    const float *qv;  /* queries + pos_bias_v [T][E] */
    const float *p;   /* linear_pos(pe) [2T-1][E] */
    int T, E, d;
    float scale;
} rel_pos_ctx;

/*
 * RelPositionMultiHeadedAttention's matrix_bd after rel_shift: score(i, j) += scale *
 * (q_i + v_h) . p(i - j), and p(i - j) is row T - 1 - i + j of the projected table. For query
 * rows [i0, i1) and keys [0, n_keys) those rows form one contiguous band of the table.
 */
static void rel_pos_scores(void *ctx, int b, int h, int i0, int i1, int n_keys, float *scores, int ld_scores, float *scratch)
{
    (void)b;
    rel_pos_ctx *r = ctx;
    const int rows = i1 - i0, width = rows + n_keys - 1, m_lo = r->T - i1;
    float *bd = scratch;                                   /* [rows][width] */
    const float *qv = r->qv + (size_t)i0 * r->E + h * r->d, *band = r->p + (size_t)m_lo * r->E + h * r->d;
    if (r->fast) {
        float *panels = bd + (size_t)rows * width;         /* the band of p, packed */
        flow_pack_rows(panels, band, width, r->d, r->E);
        flow_gemm_panels(rows, width, r->d, r->scale, qv, r->E, panels, (size_t)r->d * FLOW_PANEL, 0,
                         (width + FLOW_PANEL - 1) / FLOW_PANEL, NULL, bd, width, 0, FLOW_ACT_NONE);
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

/* x[T][E] += MHA(norm_mha(x)); x += FFN(norm_ff(x)) */
static cosy_status conformer_forward(flow_ctx *c, const flow_conformer *L, float *x, int T, const float *p_table, int chunk)
{
    const cosy_hparams *hp = c->flow->hp;
    const int E = hp->enc_output_size, H = hp->enc_heads, d = E / H, F = hp->enc_ffn;
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);
    float *nx = cosy_arena_floats(a, (size_t)T * E);
    const size_t after_nx = cosy_arena_mark(a);
    float *qkv = cosy_arena_floats(a, (size_t)T * 3 * E);
    float *qu = cosy_arena_floats(a, (size_t)T * E), *qv = cosy_arena_floats(a, (size_t)T * E);
    float *att = cosy_arena_floats(a, (size_t)T * E), *p = cosy_arena_floats(a, (size_t)(2 * T - 1) * E);
    if (!nx || !qkv || !qu || !qv || !att || !p) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");

    flow_layer_norm(c, nx, x, T, E, &L->norm_mha, CONFORMER_EPS);
    flow_linear_run(c, &L->qkv, nx, T, qkv, 0);
    flow_linear_run(c, &L->pos, p_table, 2 * T - 1, p, 0);
    for (int t = 0; t < T; t++) {
        const float *q_row = qkv + (size_t)t * 3 * E;
        float *qu_row = qu + (size_t)t * E, *qv_row = qv + (size_t)t * E;
        for (int i = 0; i < E; i++) {
            qu_row[i] = q_row[i] + L->pos_bias_u[i];
            qv_row[i] = q_row[i] + L->pos_bias_v[i];
        }
    }
    const float scale = 1.0f / sqrtf((float)d);
    rel_pos_ctx rp = {c->flow->fast, qv, p, T, E, d, scale};
    COSY_TRY(flow_attention(c, qu, E, qkv + E, qkv + 2 * E, 3 * E, 1, T, T, H, d, 0, chunk, scale, rel_pos_scores, &rp, att, E));
    flow_linear_run(c, &L->out, att, T, x, 1);

    /* the feed-forward's wider buffer reuses the attention scratch */
    flow_layer_norm(c, nx, x, T, E, &L->norm_ff, CONFORMER_EPS);
    cosy_arena_release(a, after_nx);
    float *hid = cosy_arena_floats(a, (size_t)T * F);
    if (!hid) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");
    flow_linear_act(c, &L->ff1, nx, T, hid, 0, FLOW_ACT_SILU);
    flow_linear_run(c, &L->ff2, hid, T, x, 1);
    cosy_arena_release(a, mark);
    return COSY_OK;
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

cosy_status flow_encoder_forward(flow_ctx *c, const float *x, int n_tokens, int n_context, int streaming, float *h, float *mu)
{
    const cosy_flow *f = c->flow;
    const cosy_hparams *hp = f->hp;
    const flow_encoder_weights *e = &f->enc;
    const int E = hp->enc_output_size, IN = hp->enc_input_size;
    const int T1 = n_tokens - n_context, up = hp->enc_up_stride, T2 = T1 * up;
    if (T1 < 1) return cosy_error(COSY_ERR_INVALID_ARG, "flow encoder: no tokens besides the %d look-ahead ones", n_context);
    cosy_arena *a = c->arena;
    size_t mark = cosy_arena_mark(a);

    /* embed the tokens and, separately (offset positions, unused), the look-ahead context */
    /* (flow_encoder_scratch_bytes mirrors these allocations) */
    float *xs = cosy_arena_floats(a, (size_t)T2 * E); /* sized for the upsampled sequence, reused below */
    float *ctx = n_context ? cosy_arena_floats(a, (size_t)n_context * E) : NULL;
    float *tmp = cosy_arena_floats(a, (size_t)T2 * E);
    float *pe = cosy_arena_floats(a, (size_t)(2 * T2 - 1) * E);
    if (!xs || (n_context && !ctx) || !tmp || !pe) return cosy_error(COSY_ERR_NOMEM, "flow encoder: scratch arena too small");
    embed_forward(c, &e->embed, &e->embed_norm, x, T1, xs);
    if (n_context) embed_forward(c, &e->embed, &e->embed_norm, x + (size_t)T1 * IN, n_context, ctx);

    /* PreLookaheadLayer: conv1 sees tokens t..t+3 (context, then zeros, past the end) */
    COSY_TRY(flow_conv_forward(c, &e->pre_conv1, xs, 1, T1, 0, NULL, 0, ctx, n_context, tmp));
    cosy_leaky_relu(tmp, (size_t)T1 * E, 0.01f);
    float *y2 = tmp + (size_t)T1 * E; /* tmp holds T2 >= 2 * T1 rows */
    COSY_TRY(flow_conv_forward(c, &e->pre_conv2, tmp, 1, T1, -(e->pre_conv2.k - 1), NULL, 0, NULL, 0, y2));
    flow_add(c, xs, y2, (size_t)T1 * E);

    const int chunk1 = streaming ? hp->enc_static_chunk : 0;
    rel_position_table(pe, T2, E);
    const float *pe1 = pe + (size_t)(T2 - T1) * E;
    for (int i = 0; i < e->n_blocks; i++) COSY_TRY(conformer_forward(c, &e->blocks[i], xs, T1, pe1, chunk1));

    /* Upsample1D: nearest repeat, then a conv of 2*stride+1 taps with 2*stride zeros on the left */
    for (int t = 0; t < T1; t++)
        for (int r = 0; r < up; r++) memcpy(tmp + ((size_t)t * up + r) * E, xs + (size_t)t * E, sizeof(float) * (size_t)E);
    COSY_TRY(flow_conv_forward(c, &e->up_conv, tmp, 1, T2, -(e->up_conv.k - 1), NULL, 0, NULL, 0, xs));
    memcpy(tmp, xs, sizeof(float) * (size_t)T2 * E);
    embed_forward(c, &e->up_embed, &e->up_embed_norm, tmp, T2, xs);

    const int chunk2 = streaming ? hp->enc_static_chunk * up : 0;
    for (int i = 0; i < e->n_up_blocks; i++) COSY_TRY(conformer_forward(c, &e->up_blocks[i], xs, T2, pe, chunk2));

    flow_layer_norm(c, h, xs, T2, E, &e->after_norm, EMBED_EPS);
    flow_linear_run(c, &e->proj, h, T2, mu, 0);
    cosy_arena_release(a, mark);
    return COSY_OK;
}
