/*
 * golden_flow.c — fixture cases of the flow decoder: flow_nonstream (full attention, final
 * call), flow_stream_nonfinal (chunk masks, last pre_lookahead_len tokens as context) and
 * flow_estimator_step (one estimator call on recorded inputs). With --dump they write the
 * encoder output (h), mu and the first estimator output, named like the reference's
 * intermediates (flow_ns_h, flow_ns_mu, flow_ns_est0_out / flow_sf_*), to compare stage by stage.
 */
#include "golden.h"
#include "core/error.h"
#include "model/flow/flow.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_status golden_flow_nonstream(golden_ctx *ctx);
cosy_status golden_flow_stream_nonfinal(golden_ctx *ctx);
cosy_status golden_flow_estimator_step(golden_ctx *ctx);

/* The number N of an input written "speech_token[:, :N]" in the current case. */
cosy_status golden_token_count(golden_ctx *ctx, int *n)
{
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(ctx->current, "inputs");
    const cJSON *in;
    cJSON_ArrayForEach(in, inputs)
    {
        if (cJSON_IsString(in) && sscanf(in->valuestring, "speech_token[:, :%d]", n) == 1) return COSY_OK;
    }
    return cosy_error(COSY_ERR_FORMAT, "golden: case has no speech_token[:, :N] input");
}


cosy_status golden_flow_inputs_load(golden_ctx *ctx, golden_flow_inputs *in)
{
    memset(in, 0, sizeof *in);
    COSY_TRY(golden_token_count(ctx, &in->n));
    const cosy_hparams *hp = &ctx->model->hp;
    cosy_status st = golden_load_int(ctx, "speech_token", &in->tok);
    if (st == COSY_OK) st = golden_load_int(ctx, "prompt_speech_token", &in->ptok);
    if (st == COSY_OK) st = golden_load(ctx, "prompt_feat", &in->pfeat);
    if (st == COSY_OK) st = golden_load(ctx, "embedding", &in->emb);
    if (st == COSY_OK && (in->n > in->tok.numel || in->pfeat.numel != in->ptok.numel * hp->token_mel_ratio * hp->flow_output_size ||
                          in->emb.numel != hp->spk_embed_dim))
        st = cosy_error(COSY_ERR_FORMAT, "golden: %d tokens of %lld, or prompt_feat is not [2P, 80], or a bad embedding", in->n,
                        (long long)in->tok.numel);
    return st; /* the caller frees *in either way */
}

void golden_flow_inputs_free(golden_flow_inputs *in)
{
    npy_free(&in->tok);
    npy_free(&in->ptok);
    npy_free(&in->pfeat);
    npy_free(&in->emb);
}

static cosy_status run_flow_case(golden_ctx *ctx, int streaming, int finalize, const char *prefix)
{
    cosy_flow *flow;
    COSY_TRY(cosy_flow_get(ctx->model, &flow));
    golden_flow_inputs fin;
    cosy_status st = golden_flow_inputs_load(ctx, &fin);
    const int n = fin.n;
    int32_t *tokens = NULL, *prompt = NULL;
    float *mel = NULL, *h = NULL, *mu = NULL, *est0 = NULL;
    if (st == COSY_OK) {
        const cosy_hparams *hp = &ctx->model->hp;
        int P = (int)fin.ptok.numel, ctx_tokens = finalize ? 0 : hp->pre_lookahead_len, E = hp->enc_output_size;
        int T = hp->token_mel_ratio * (P + n - ctx_tokens);
        tokens = malloc(sizeof(int32_t) * (size_t)n);
        prompt = malloc(sizeof(int32_t) * (size_t)(P + 1));
        mel = malloc(sizeof(float) * 80 * (size_t)T);
        h = malloc(sizeof(float) * (size_t)E * T);
        mu = malloc(sizeof(float) * 80 * (size_t)T);
        est0 = malloc(sizeof(float) * 2 * 80 * (size_t)T);
        if (!tokens || !prompt || !mel || !h || !mu || !est0) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
        for (int i = 0; st == COSY_OK && i < n; i++) tokens[i] = (int32_t)fin.tok.i64[i];
        for (int i = 0; st == COSY_OK && i < P; i++) prompt[i] = (int32_t)fin.ptok.i64[i];
        int frames = 0;
        cosy_flow_trace trace = {h, mu, est0, 0, 0, 0, NULL};
        if (st == COSY_OK)
            st = cosy_flow_inference_trace(flow, tokens, n, prompt, P, fin.pfeat.f32, fin.emb.f32, streaming, finalize, mel, &frames, &trace);
        if (st == COSY_OK) {
            char key[64];
            snprintf(key, sizeof key, "%s_mel", prefix);
            golden_check(ctx, key, mel, (int64_t)80 * frames);
            int64_t shape_mel[3] = {1, 80, frames}, shape_h[3] = {1, T, E}, shape_mu[3] = {1, T, 80}, shape_est[3] = {2, 80, T};
            golden_dump(ctx, key, mel, shape_mel, 3);
            snprintf(key, sizeof key, "%s_h", prefix);
            golden_dump(ctx, key, h, shape_h, 3);
            snprintf(key, sizeof key, "%s_mu", prefix);
            golden_dump(ctx, key, mu, shape_mu, 3);
            snprintf(key, sizeof key, "%s_est0_out", prefix);
            golden_dump(ctx, key, est0, shape_est, 3);
        }
    }
    free(tokens);
    free(prompt);
    free(mel);
    free(h);
    free(mu);
    free(est0);
    golden_flow_inputs_free(&fin);
    return st;
}

cosy_status golden_flow_nonstream(golden_ctx *ctx) { return run_flow_case(ctx, 0, 1, "flow_ns"); }

cosy_status golden_flow_stream_nonfinal(golden_ctx *ctx) { return run_flow_case(ctx, 1, 0, "flow_sf"); }

cosy_status golden_flow_estimator_step(golden_ctx *ctx)
{
    cosy_flow *flow;
    COSY_TRY(cosy_flow_get(ctx->model, &flow));
    const char *names[6] = {"flow_ns_est0_x", "flow_ns_est0_mask", "flow_ns_est0_mu", "flow_ns_est0_t", "flow_ns_est0_spks", "flow_ns_est0_cond"};
    npy_array in[6];
    memset(in, 0, sizeof in);
    cosy_status st = COSY_OK;
    for (int i = 0; i < 6 && st == COSY_OK; i++) st = golden_load(ctx, names[i], &in[i]);
    float *out = NULL;
    if (st == COSY_OK) {
        int B = (int)in[0].shape[0], T = (int)in[0].shape[2];
        if (in[0].ndim != 3 || in[0].shape[1] != 80 || in[2].numel != in[0].numel || in[5].numel != in[0].numel ||
            in[3].numel != B || in[4].numel != (int64_t)B * 80 || in[1].numel != (int64_t)B * T)
            st = cosy_error(COSY_ERR_FORMAT, "golden: estimator inputs have inconsistent shapes");
        /* the engine serves batch-1 inference, where the mask is all ones */
        for (int64_t i = 0; st == COSY_OK && i < in[1].numel; i++)
            if (in[1].f32[i] != 1.0f) st = cosy_error(COSY_ERR_UNSUPPORTED, "golden: estimator mask with padding");
        if (st == COSY_OK && !(out = malloc(sizeof(float) * (size_t)in[0].numel))) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
        if (st == COSY_OK) st = cosy_flow_estimator(flow, in[0].f32, in[2].f32, in[3].f32, in[4].f32, in[5].f32, B, T, 0, out);
        if (st == COSY_OK) {
            golden_check(ctx, "flow_ns_est0_out", out, in[0].numel);
            int64_t shape[3] = {B, 80, T};
            golden_dump(ctx, "flow_estimator_step_out", out, shape, 3);
        }
    }
    free(out);
    for (int i = 0; i < 6; i++) npy_free(&in[i]);
    return st;
}
