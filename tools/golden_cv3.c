/*
 * golden_cv3.c — the CosyVoice3 fixture cases (cv3-tiny) that need no CosyVoice3 network yet:
 *   feat_mel24k        the prompt mel with the model's feat_extractor (fmax null = Nyquist, 12 kHz)
 *                      and its Slaney filter bank, from the stored synthetic wav;
 *   llm_silent_filter  CosyVoice3Model.llm_job's silent-token filter (stream/silent_filter.h);
 *   official_cv3_rng   the full-size official model's construction-time noise (model/construction_rng.h).
 * The LM cases run through golden_lm.c's handlers (both families); the DiT flow, CausalHiFT and
 * token2wav cases are listed as not implemented yet by cmd_golden.c until their handlers exist.
 */
#include "golden.h"
#include "core/error.h"
#include "core/torch_rng.h"
#include "model/construction_rng.h"
#include "model/model.h"
#include "model/voice/voice_features.h"
#include "stream/silent_filter.h"

#include <stdlib.h>

cosy_status golden_cv3_feat_mel24k(golden_ctx *ctx);
cosy_status golden_cv3_silent_filter(golden_ctx *ctx);
cosy_status golden_cv3_rng(golden_ctx *ctx);

cosy_status golden_cv3_feat_mel24k(golden_ctx *ctx)
{
    const cosy_prompt_mel_params p = cosy_prompt_mel_params_from_hparams(&ctx->model->hp);
    const int bins = p.n_fft / 2 + 1;
    float *basis = malloc(sizeof(float) * (size_t)p.n_mels * (size_t)bins);
    if (!basis) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    cosy_status st = cosy_mel_filters_slaney(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax, basis);
    if (st == COSY_OK) golden_check(ctx, "feat_mel_basis_24k", basis, (int64_t)p.n_mels * bins);
    free(basis);
    npy_array wav;
    if (st == COSY_OK) st = golden_load(ctx, "feat_wav24k", &wav);
    if (st != COSY_OK) return st;
    float *mel = NULL;
    int frames = 0;
    st = cosy_prompt_mel(&p, wav.f32, wav.numel, &mel, &frames); /* [frames][n_mels], the reference's [1, frames, 80] */
    if (st == COSY_OK) {
        const int64_t shape[2] = {frames, p.n_mels};
        golden_dump(ctx, "feat_mel24k", mel, shape, 2);
        golden_check(ctx, "feat_mel24k", mel, (int64_t)frames * p.n_mels);
    }
    free(mel);
    npy_free(&wav);
    return st;
}

cosy_status golden_cv3_silent_filter(golden_ctx *ctx)
{
    npy_array in;
    COSY_TRY(golden_load(ctx, "silent_in", &in));
    int64_t *out = malloc(sizeof(int64_t) * (size_t)(in.numel + 1));
    if (!out) {
        npy_free(&in);
        return cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    cosy_silent_filter f;
    cosy_silent_filter_init(&f, &ctx->model->hp);
    int64_t n = 0;
    for (int64_t i = 0; i < in.numel; i++)
        if (cosy_silent_filter_keep(&f, (int)in.i64[i])) out[n++] = in.i64[i];
    golden_check_ints(ctx, "silent_out", out, n);
    free(out);
    npy_free(&in);
    return COSY_OK;
}

/* official_cv3_rng: the FULL-SIZE official model's construction-time draws (cosyvoice3-0.5b's shapes,
 * whatever the fixture set's own model is): the CFM noise and the CausalHiFT source buffers. */
cosy_status golden_cv3_rng(golden_ctx *ctx)
{
    cosy_hparams hp;
    COSY_TRY(cosy_hparams_preset("cosyvoice3-0.5b", &hp));
    enum { N = 4096 };
    const int dim = hp.hift_nb_harmonics + 1;
    float *noise = malloc(sizeof(float) * 80 * 15000), *sine = malloc(sizeof(float) * N * (size_t)dim), *uv = malloc(sizeof(float) * N);
    float rand_ini[64];
    cosy_status st = noise && sine && uv ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) {
        cosy_torch_rng g;
        cosy_torch_rng_seed(&g, 0);
        st = cosy_torch_randn(&g, noise, 80 * 15000);
    }
    if (st == COSY_OK && dim > 64) st = cosy_error(COSY_ERR_UNSUPPORTED, "%d harmonics", dim);
    if (st == COSY_OK) st = cosy_cv3_source_buffers(&hp, rand_ini, sine, N, uv, N);
    if (st == COSY_OK) {
        golden_check(ctx, "official_cv3_rand_noise_head", noise, N);
        golden_check(ctx, "official_cv3_rand_ini", rand_ini, dim);
        golden_check(ctx, "official_cv3_sine_waves_head", sine, (int64_t)N * dim);
        golden_check(ctx, "official_cv3_uv_head", uv, N);
    }
    free(noise);
    free(sine);
    free(uv);
    return st;
}
