/*
 * golden_cv3_flow.c — fixture cases of CosyVoice3's flow (CausalMaskedDiffWithDiT + DiT):
 * cv3_flow_nonstream (full attention, final call), cv3_flow_stream_nonfinal (chunk mask, the last
 * pre_lookahead_len tokens as context), cv3_dit_step / cv3_dit_step_stream (one DiT call on the
 * recorded inputs of the first Euler step). Besides the declared outputs each compares the
 * intermediates the fixture set records for the same call (PreLookaheadLayer output h, the t of each
 * Euler step, and the first DiT call's temb, xin, every block's output, norm_out and output), so a
 * mismatch shows the stage it starts in; --dump writes them as our_<name>.
 */
#include "golden.h"
#include "core/error.h"
#include "model/flow/flow.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_status golden_cv3_flow_nonstream(golden_ctx *ctx);
cosy_status golden_cv3_flow_stream_nonfinal(golden_ctx *ctx);
cosy_status golden_cv3_dit_step(golden_ctx *ctx);
cosy_status golden_cv3_dit_step_stream(golden_ctx *ctx);

/* The DiT intermediates of one call, sized for B rows of T frames. */
typedef struct {
    cosy_flow_dit_trace t;
    int B, T, D, depth;
} dit_trace;

static cosy_status trace_alloc(dit_trace *d, const cosy_hparams *hp, int B, int T)
{
    memset(d, 0, sizeof *d);
    d->B = B;
    d->T = T;
    d->D = hp->dit_dim;
    d->depth = hp->dit_depth;
    const size_t rows = (size_t)B * T * d->D;
    d->t.temb = malloc(sizeof(float) * (size_t)B * d->D);
    d->t.xin = malloc(sizeof(float) * rows);
    d->t.blocks = malloc(sizeof(float) * rows * (size_t)(d->depth > 0 ? d->depth : 1));
    d->t.normout = malloc(sizeof(float) * rows);
    if (!d->t.temb || !d->t.xin || !d->t.blocks || !d->t.normout) return cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
    return COSY_OK;
}

static void trace_free(dit_trace *d)
{
    free(d->t.temb);
    free(d->t.xin);
    free(d->t.blocks);
    free(d->t.normout);
}

/* compares (and dumps) <prefix>_est0_{temb, xin, blk<i>, normout} */
static void trace_check(golden_ctx *ctx, const dit_trace *d, const char *prefix)
{
    char key[96];
    const int64_t rows = (int64_t)d->B * d->T * d->D;
    int64_t shape2[2] = {d->B, d->D}, shape3[3] = {d->B, d->T, d->D};
    snprintf(key, sizeof key, "%s_est0_temb", prefix);
    golden_check(ctx, key, d->t.temb, (int64_t)d->B * d->D);
    golden_dump(ctx, key, d->t.temb, shape2, 2);
    snprintf(key, sizeof key, "%s_est0_xin", prefix);
    golden_check(ctx, key, d->t.xin, rows);
    golden_dump(ctx, key, d->t.xin, shape3, 3);
    for (int l = 0; l < d->depth; l++) {
        snprintf(key, sizeof key, "%s_est0_blk%d", prefix, l);
        golden_check(ctx, key, d->t.blocks + (size_t)l * rows, rows);
        golden_dump(ctx, key, d->t.blocks + (size_t)l * rows, shape3, 3);
    }
    snprintf(key, sizeof key, "%s_est0_normout", prefix);
    golden_check(ctx, key, d->t.normout, rows);
    golden_dump(ctx, key, d->t.normout, shape3, 3);
}

static cosy_status run_flow_case(golden_ctx *ctx, int streaming, int finalize, const char *prefix)
{
    cosy_flow *flow;
    COSY_TRY(cosy_flow_get(ctx->model, &flow));
    const cosy_hparams *hp = &ctx->model->hp;
    golden_flow_inputs fin;
    cosy_status st = golden_flow_inputs_load(ctx, &fin);
    const int n = fin.n, M = hp->flow_output_size, ratio = hp->token_mel_ratio;
    int32_t *tokens = NULL, *prompt = NULL;
    float *mel = NULL, *h = NULL, *est0 = NULL;
    dit_trace dt;
    memset(&dt, 0, sizeof dt);
    if (st == COSY_OK) {
        const int P = (int)fin.ptok.numel, T1 = P + n - (finalize ? 0 : hp->pre_lookahead_len), T = ratio * T1;
        tokens = malloc(sizeof(int32_t) * (size_t)n);
        prompt = malloc(sizeof(int32_t) * (size_t)(P + 1));
        mel = malloc(sizeof(float) * (size_t)M * T);
        h = malloc(sizeof(float) * (size_t)hp->flow_input_size * T1);
        est0 = malloc(sizeof(float) * 2 * (size_t)M * T);
        if (!tokens || !prompt || !mel || !h || !est0) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
        if (st == COSY_OK) st = trace_alloc(&dt, hp, 2, T);
        for (int i = 0; st == COSY_OK && i < n; i++) tokens[i] = (int32_t)fin.tok.i64[i];
        for (int i = 0; st == COSY_OK && i < P; i++) prompt[i] = (int32_t)fin.ptok.i64[i];
        int frames = 0;
        cosy_flow_trace trace = {h, NULL, est0, 0, 0, 0, &dt.t};
        if (st == COSY_OK)
            st = cosy_flow_inference_trace(flow, tokens, n, prompt, P, fin.pfeat.f32, fin.emb.f32, streaming, finalize, mel, &frames, &trace);
        if (st == COSY_OK) {
            char key[64];
            snprintf(key, sizeof key, "%s_mel", prefix);
            golden_check(ctx, key, mel, (int64_t)M * frames);
            int64_t shape_mel[3] = {1, M, frames}, shape_h[3] = {1, T1, hp->flow_input_size}, shape_est[3] = {2, M, T};
            golden_dump(ctx, key, mel, shape_mel, 3);
            snprintf(key, sizeof key, "%s_h", prefix);
            golden_check(ctx, key, h, (int64_t)T1 * hp->flow_input_size);
            golden_dump(ctx, key, h, shape_h, 3);
            snprintf(key, sizeof key, "%s_est0_out", prefix);
            golden_check(ctx, key, est0, (int64_t)2 * M * T);
            golden_dump(ctx, key, est0, shape_est, 3);
            trace_check(ctx, &dt, prefix);
            float ts[64], dts[64];
            if (hp->cfm_steps <= 64) {
                cosy_flow_t_schedule(flow, ts, dts);
                snprintf(key, sizeof key, "%s_t_span", prefix);
                golden_check(ctx, key, ts, hp->cfm_steps);
            }
        }
    }
    trace_free(&dt);
    free(tokens);
    free(prompt);
    free(mel);
    free(h);
    free(est0);
    golden_flow_inputs_free(&fin);
    return st;
}

cosy_status golden_cv3_flow_nonstream(golden_ctx *ctx) { return run_flow_case(ctx, 0, 1, "flow_ns"); }

cosy_status golden_cv3_flow_stream_nonfinal(golden_ctx *ctx) { return run_flow_case(ctx, 1, 0, "flow_sf"); }

/* The chunk mask the engine applies (flow_attention: key j visible to query i iff j < (i / chunk + 1) *
 * chunk) against the reference's recorded one. */
static cosy_status check_attn_mask(golden_ctx *ctx, const char *key, int T, int chunk)
{
    npy_array m;
    memset(&m, 0, sizeof m);
    COSY_TRY(golden_load_int(ctx, key, &m));
    cosy_status st = COSY_OK;
    if (m.numel != (int64_t)T * T) st = cosy_error(COSY_ERR_FORMAT, "golden: %s is not [%d, %d]", key, T, T);
    for (int i = 0; i < T && st == COSY_OK; i++)
        for (int j = 0; j < T && st == COSY_OK; j++)
            if ((m.i64[(size_t)i * T + j] != 0) != (j < (i / chunk + 1) * chunk))
                st = cosy_error(COSY_ERR_FORMAT, "golden: %s[%d, %d] differs from a %d-frame chunk mask", key, i, j, chunk);
    npy_free(&m);
    return st;
}

static cosy_status run_dit_step(golden_ctx *ctx, const char *prefix, int streaming)
{
    cosy_flow *flow;
    COSY_TRY(cosy_flow_get(ctx->model, &flow));
    const cosy_hparams *hp = &ctx->model->hp;
    static const char *const parts[6] = {"x", "mask", "mu", "t", "spks", "cond"};
    npy_array in[6];
    memset(in, 0, sizeof in);
    cosy_status st = COSY_OK;
    char key[96];
    for (int i = 0; i < 6 && st == COSY_OK; i++) {
        snprintf(key, sizeof key, "%s_est0_%s", prefix, parts[i]);
        st = golden_load(ctx, key, &in[i]);
    }
    float *out = NULL;
    dit_trace dt;
    memset(&dt, 0, sizeof dt);
    if (st == COSY_OK) {
        const int M = hp->flow_output_size, B = (int)in[0].shape[0], T = (int)in[0].shape[2];
        if (in[0].ndim != 3 || in[0].shape[1] != M || in[2].numel != in[0].numel || in[5].numel != in[0].numel || in[3].numel != B ||
            in[4].numel != (int64_t)B * M || in[1].numel != (int64_t)B * T)
            st = cosy_error(COSY_ERR_FORMAT, "golden: DiT inputs have inconsistent shapes");
        /* the engine serves batch-1 inference, where the mask is all ones */
        for (int64_t i = 0; st == COSY_OK && i < in[1].numel; i++)
            if (in[1].f32[i] != 1.0f) st = cosy_error(COSY_ERR_UNSUPPORTED, "golden: DiT mask with padding");
        if (st == COSY_OK && streaming) st = check_attn_mask(ctx, "flow_sf_attn_mask", T, hp->est_static_chunk);
        if (st == COSY_OK && !(out = malloc(sizeof(float) * (size_t)in[0].numel))) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
        if (st == COSY_OK) st = trace_alloc(&dt, hp, B, T);
        if (st == COSY_OK)
            st = cosy_flow_estimator_trace(flow, in[0].f32, in[2].f32, in[3].f32, in[4].f32, in[5].f32, B, T, streaming, out, &dt.t);
        if (st == COSY_OK) {
            snprintf(key, sizeof key, "%s_est0_out", prefix);
            golden_check(ctx, key, out, in[0].numel);
            int64_t shape[3] = {B, M, T};
            golden_dump(ctx, key, out, shape, 3);
            trace_check(ctx, &dt, prefix);
        }
        /* the rotary frequencies as the engine read them from the model file */
        const float *inv;
        if (st == COSY_OK && !streaming && cosy_model_f32(ctx->model, "flow.est.rotary_embed.inv_freq", &inv) == COSY_OK)
            golden_check(ctx, "dit_inv_freq", inv, hp->dit_rope_dim);
    }
    trace_free(&dt);
    free(out);
    for (int i = 0; i < 6; i++) npy_free(&in[i]);
    return st;
}

cosy_status golden_cv3_dit_step(golden_ctx *ctx) { return run_dit_step(ctx, "flow_ns", 0); }

cosy_status golden_cv3_dit_step_stream(golden_ctx *ctx) { return run_dit_step(ctx, "flow_sf", 1); }
