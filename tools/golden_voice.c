/*
 * golden_voice.c — prompt-audio feature cases of the main fixture set: feat_resample (load_wav's
 * Resample) and feat_whisper128 (the tokenizer's log-mel), on the stored synthetic signal.
 *
 * Its feat_mel24k and feat_fbank16k cases stay unrun: their tolerances (1e-4, 1e-3) are below the
 * reference's own float32 FFT noise on that signal, whose spectral valleys sit ~1e-7 below the frame
 * energy: the exact (double) transform differs from the stored outputs by 4.5e-3 and 2.2e-3. The
 * same stages pass on the voice set's speech (tests/test_voice_frontend.c, docs/voice-frontend.md).
 * The voice set (cv2-voice-tiny): CAM++ and tokenizer graph cases, e2e cases stage by stage and
 * from the wav alone (through cosy_voice_from_audio_file too), voice_error refusals, resampler kernels.
 */
#include "golden.h"
#include "core/error.h"
#include "model/voice/resample.h"
#include "model/voice/voice_features.h"
#include "model/voice/voice_prompt.h"

#include <stdlib.h>

cosy_status golden_feat_resample(golden_ctx *ctx);
cosy_status golden_feat_whisper128(golden_ctx *ctx);
cosy_status golden_campplus_graph(golden_ctx *ctx);
cosy_status golden_tokenizer_graph(golden_ctx *ctx);
cosy_status golden_voice_e2e(golden_ctx *ctx);
int golden_resample_kernels(golden_ctx *ctx, const char *const *only, int n_only, int *n_pass, int *n_fail);

cosy_status golden_feat_resample(golden_ctx *ctx)
{
    npy_array wav;
    COSY_TRY(golden_load(ctx, "feat_wav24k", &wav));
    float *out;
    int64_t n;
    cosy_status st = cosy_resample(wav.f32, wav.numel, 24000, 16000, &out, &n);
    if (st == COSY_OK) {
        golden_check(ctx, "feat_resample_24k_to_16k", out, n);
        free(out);
    }
    npy_free(&wav);
    return st;
}

cosy_status golden_feat_whisper128(golden_ctx *ctx)
{
    npy_array wav;
    COSY_TRY(golden_load(ctx, "feat_wav16k", &wav));
    float *feat;
    int frames;
    cosy_status st = cosy_whisper_log_mel(wav.f32, wav.numel, COSY_WHISPER_MELS, &feat, &frames);
    if (st == COSY_OK) {
        golden_check(ctx, "feat_whisper128", feat, (int64_t)frames * COSY_WHISPER_MELS);
        free(feat);
    }
    npy_free(&wav);
    return st;
}

/* ---- the voice fixture set (cv2-voice-tiny): CAM++ and tokenizer graphs, e2e cases, refusals ---- */

#include "core/file.h"
#include "io/audio.h"
#include "model/voice/campplus.h"
#include "model/model.h"
#include "model/voice/s3tokenizer.h"
#include "model/voice/voice.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *item(const cJSON *array, int i)
{
    const cJSON *s = cJSON_GetArrayItem(array, i);
    return cJSON_IsString(s) ? s->valuestring : "";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int has_file(golden_ctx *ctx, const char *key)
{
    return cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files"), key);
}

/* DIR/golden/<file of key> (wav inputs are not .npy) */
static void file_path(golden_ctx *ctx, const char *key, char *buf, size_t size)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files"), key);
    const cJSON *file = f ? cJSON_GetObjectItemCaseSensitive(f, "file") : NULL;
    snprintf(buf, size, "%s/golden/%s", ctx->dir, cJSON_IsString(file) ? file->valuestring : key);
}

static int is_wav(golden_ctx *ctx, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files"), key);
    const cJSON *d = f ? cJSON_GetObjectItemCaseSensitive(f, "dtype") : NULL;
    return cJSON_IsString(d) && !strcmp(d->valuestring, "wav");
}

/* The "except_where": "fsq_margin < B" bound of output `key` (0 = exact). */
static double margin_bound(golden_ctx *ctx, const char *key)
{
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(ctx->current, "tolerance_per_output");
    const cJSON *t = per ? cJSON_GetObjectItemCaseSensitive(per, key) : NULL;
    if (!t) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files"), key);
        t = f ? cJSON_GetObjectItemCaseSensitive(f, "tolerance") : NULL;
    }
    const cJSON *ew = t ? cJSON_GetObjectItemCaseSensitive(t, "except_where") : NULL;
    double bound = 0;
    if (!cJSON_IsString(ew) || sscanf(ew->valuestring, "fsq_margin < %lf", &bound) != 1) bound = 0;
    return bound;
}

/* Tokens: exact, except where the stored margin says the reference's value sits within the manifest's
 * bound of an FSQ rounding edge (those positions are taken as equal and counted). */
static int check_tokens(golden_ctx *ctx, const char *key, const char *margin_key, const int32_t *tok, int n)
{
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!v) return 0;
    for (int i = 0; i < n; i++) v[i] = tok[i];
    const double bound = margin_bound(ctx, key);
    npy_array ref, margin;
    int flipped = 0;
    if (bound > 0 && margin_key && golden_load_int(ctx, key, &ref) == COSY_OK) {
        if (golden_load(ctx, margin_key, &margin) == COSY_OK) {
            if (ref.numel == n && margin.numel >= n)
                for (int i = 0; i < n; i++)
                    if (v[i] != ref.i64[i] && margin.f32[i] < bound) {
                        v[i] = ref.i64[i];
                        flipped++;
                    }
            npy_free(&margin);
        }
        npy_free(&ref);
    }
    if (flipped && ctx->verbose) printf("    %-28s %d tokens on an FSQ rounding edge (margin < %g) differ\n", key, flipped, bound);
    int pass = golden_check_ints(ctx, key, v, n);
    free(v);
    return pass;
}

/* ---- CAM++ ---- */

typedef struct {
    golden_ctx *ctx;
    const char *prefix;
    int n_blocks;
} cam_tap_ctx;

static void cam_tap(void *vctx, int stage, const float *data, int channels, int frames)
{
    cam_tap_ctx *t = vctx;
    char kind[24], key[96];
    if (stage == 0) snprintf(kind, sizeof kind, "head");
    else if (stage == 1) snprintf(kind, sizeof kind, "tdnn");
    else if (stage < 2 + 2 * t->n_blocks) snprintf(kind, sizeof kind, "%s%d", stage % 2 == 0 ? "block" : "transit", (stage - 2) / 2 + 1);
    else if (stage == 2 + 2 * t->n_blocks) snprintf(kind, sizeof kind, "out_nonlinear");
    else snprintf(kind, sizeof kind, "stats");
    snprintf(key, sizeof key, "%s_%s", t->prefix, kind);
    int64_t shape[2] = {channels, frames};
    golden_dump(t->ctx, key, data, shape, 2);
    if (has_file(t->ctx, key)) golden_check(t->ctx, key, data, (int64_t)channels * frames);
}

static cosy_status run_campplus(golden_ctx *ctx, const float *feats, int frames, const char *prefix, float **emb, int *dim)
{
    const cosy_campplus *cam;
    COSY_TRY(cosy_campplus_get(ctx->model, &cam));
    const cosy_campplus_hparams *hp = cosy_campplus_hp((cosy_campplus *)cam);
    *dim = hp->embedding_size;
    *emb = malloc(sizeof(float) * (size_t)hp->embedding_size);
    if (!*emb) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    cam_tap_ctx t = {ctx, prefix, hp->n_blocks};
    cosy_status st = cosy_campplus_forward(cam, ctx->model->pool, feats, frames, *emb, prefix ? cam_tap : NULL, &t);
    if (st != COSY_OK) {
        free(*emb);
        *emb = NULL;
    }
    return st;
}

/* campplus_graph_*: campplus.onnx on a stored input; the embedding and every stored intermediate */
cosy_status golden_campplus_graph(golden_ctx *ctx)
{
    const char *in = item(cJSON_GetObjectItemCaseSensitive(ctx->current, "inputs"), 0);
    const char *out = item(cJSON_GetObjectItemCaseSensitive(ctx->current, "outputs"), 0);
    npy_array x;
    COSY_TRY(golden_load(ctx, in, &x));
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(ends_with(in, "_input") ? strlen(in) - 6 : strlen(in)), in);
    const int frames = x.ndim >= 2 ? (int)x.shape[x.ndim - 2] : 0;
    float *emb = NULL;
    int dim = 0;
    cosy_status st = run_campplus(ctx, x.f32, frames, prefix, &emb, &dim);
    if (st == COSY_OK) golden_check(ctx, out, emb, dim);
    free(emb);
    npy_free(&x);
    return st;
}

/* ---- speech tokenizer ---- */

typedef struct {
    golden_ctx *ctx;
    const char *prefix;
    int n_blocks;
    int all;          /* graph cases: every intermediate; e2e: pre_fsq only */
    int dump_only;    /* end to end: pre_fsq checked by the caller's table, no dump name clash */
    float *pre_fsq;   /* a copy of the FSQ projection for the caller */
    int64_t n_pre_fsq;
} tok_tap_ctx;

static void tok_tap(void *vctx, int stage, const float *data, int frames, int channels)
{
    tok_tap_ctx *t = vctx;
    char kind[24], key[96];
    if (stage == 0) snprintf(kind, sizeof kind, "encoder_in");
    else if (stage <= t->n_blocks) snprintf(kind, sizeof kind, "block%d", stage - 1);
    else {
        snprintf(kind, sizeof kind, "pre_fsq");
        free(t->pre_fsq);
        t->n_pre_fsq = (int64_t)frames * channels;
        t->pre_fsq = malloc(sizeof(float) * (size_t)(t->n_pre_fsq + 1));
        if (t->pre_fsq) memcpy(t->pre_fsq, data, sizeof(float) * (size_t)t->n_pre_fsq);
    }
    if (!t->all && stage <= t->n_blocks) return;
    snprintf(key, sizeof key, "%s_%s", t->prefix, kind);
    int64_t shape[2] = {frames, channels};
    golden_dump(t->ctx, key, data, shape, 2);
}

/* Runs the tokenizer on feats [n_mels][frames]; tokens (malloc'd) and the FSQ projection (t->pre_fsq). */
static cosy_status run_tokenizer(golden_ctx *ctx, const float *feats, int frames, tok_tap_ctx *t, int32_t **tokens, int *n)
{
    const cosy_s3tokenizer *tok;
    COSY_TRY(cosy_s3tokenizer_get(ctx->model, &tok));
    t->ctx = ctx;
    t->n_blocks = cosy_s3tokenizer_hp(tok)->n_blocks;
    *n = cosy_s3tokenizer_n_tokens(frames);
    *tokens = malloc(sizeof(int32_t) * (size_t)(*n + 1));
    if (!*tokens) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    return cosy_s3tokenizer_forward(tok, ctx->model->pool, feats, frames, frames, *tokens, tok_tap, t);
}

static void tok_graph_tap(void *vctx, int stage, const float *data, int frames, int channels)
{
    tok_tap_ctx *t = vctx;
    tok_tap(vctx, stage, data, frames, channels);
    if (stage > t->n_blocks) return; /* pre_fsq: checked after the run */
    char key[96];
    if (stage == 0) snprintf(key, sizeof key, "%s_encoder_in", t->prefix);
    else snprintf(key, sizeof key, "%s_block%d", t->prefix, stage - 1);
    if (has_file(t->ctx, key)) golden_check(t->ctx, key, data, (int64_t)frames * channels);
}

/* tokenizer_graph_*: speech_tokenizer_v2.onnx on stored feats; tokens (FSQ-margin rule), the FSQ
 * projection and every stored intermediate */
cosy_status golden_tokenizer_graph(golden_ctx *ctx)
{
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(ctx->current, "outputs");
    const char *in = item(cJSON_GetObjectItemCaseSensitive(ctx->current, "inputs"), 0);
    const char *out = item(outputs, 0);
    npy_array x;
    COSY_TRY(golden_load(ctx, in, &x));
    char prefix[96], key[128];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(ends_with(in, "_feats") ? strlen(in) - 6 : strlen(in)), in);
    const int frames = x.ndim >= 1 ? (int)x.shape[x.ndim - 1] : 0;
    const cosy_s3tokenizer *tok;
    cosy_status st = cosy_s3tokenizer_get(ctx->model, &tok);
    tok_tap_ctx t = {ctx, prefix, 0, 1, 0, NULL, 0};
    int32_t *tokens = NULL;
    int n = 0;
    if (st == COSY_OK) {
        t.n_blocks = cosy_s3tokenizer_hp(tok)->n_blocks;
        n = cosy_s3tokenizer_n_tokens(frames);
        tokens = malloc(sizeof(int32_t) * (size_t)(n + 1));
        st = tokens ? cosy_s3tokenizer_forward(tok, ctx->model->pool, x.f32, frames, frames, tokens, tok_graph_tap, &t)
                    : cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    if (st == COSY_OK) {
        snprintf(key, sizeof key, "%s_fsq_margin", prefix);
        check_tokens(ctx, out, key, tokens, n);
        snprintf(key, sizeof key, "%s_pre_fsq", prefix);
        if (has_file(ctx, key)) golden_check(ctx, key, t.pre_fsq, t.n_pre_fsq);
    }
    free(t.pre_fsq);
    free(tokens);
    npy_free(&x);
    return st;
}

/* ---- e2e_*: each stage on its stored inputs, then everything from the wav alone ---- */

/* Audio at `rate` for input `key`: a wav (decoded and resampled as load_wav) or a stored npy. */
static cosy_status load_audio(golden_ctx *ctx, const char *key, int rate, float **out, int64_t *n)
{
    *out = NULL;
    if (is_wav(ctx, key)) {
        char path[1024];
        file_path(ctx, key, path, sizeof path);
        cosy_wav w;
        COSY_TRY(cosy_audio_read(path, &w));
        cosy_status st = cosy_prompt_load(w.samples, w.n_samples, w.sample_rate, rate, path, out, n);
        cosy_wav_free(&w);
        return st;
    }
    npy_array a;
    COSY_TRY(golden_load(ctx, key, &a));
    *out = a.f32;
    *n = a.numel;
    a.f32 = NULL;
    npy_free(&a);
    return COSY_OK;
}

static const char *output_ending(const cJSON *outputs, const char *suffix)
{
    for (int i = 0; i < cJSON_GetArraySize(outputs); i++)
        if (ends_with(item(outputs, i), suffix)) return item(outputs, i);
    return NULL;
}

static void margin_key_of(const char *tokens_key, char *buf, size_t size)
{
    size_t n = strlen(tokens_key), s = strlen("_tokens_raw");
    snprintf(buf, size, "%.*s_fsq_margin", (int)(ends_with(tokens_key, "_tokens_raw") ? n - s : n), tokens_key);
}

static cosy_status run_stage(golden_ctx *ctx, const cJSON *stage)
{
    const cJSON *opj = cJSON_GetObjectItemCaseSensitive(stage, "op");
    const char *op = cJSON_IsString(opj) ? opj->valuestring : "";
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(stage, "inputs"), *outputs = cJSON_GetObjectItemCaseSensitive(stage, "outputs");
    const char *in0 = item(inputs, 0), *out0 = item(outputs, 0);
    float *x = NULL, *feat = NULL;
    int64_t n = 0;
    int frames = 0;
    cosy_status st = COSY_OK;
    if (!strncmp(op, "load_wav(wav, ", 14)) {
        st = load_audio(ctx, in0, atoi(op + 14), &x, &n);
        if (st == COSY_OK) golden_check(ctx, out0, x, n);
    } else if (!strncmp(op, "kaldi.fbank", 11)) {
        st = load_audio(ctx, in0, 16000, &x, &n);
        if (st == COSY_OK) st = cosy_kaldi_fbank(x, n, &feat, &frames);
        if (st == COSY_OK && strstr(op, "- mean")) cosy_subtract_frame_mean(feat, frames, COSY_FBANK_BINS);
        if (st == COSY_OK) golden_check(ctx, out0, feat, (int64_t)frames * COSY_FBANK_BINS);
    } else if (!strncmp(op, "feat - feat.mean", 16)) {
        npy_array raw;
        COSY_TRY(golden_load(ctx, in0, &raw));
        if (raw.ndim >= 2) {
            cosy_subtract_frame_mean(raw.f32, (int)(raw.numel / raw.shape[raw.ndim - 1]), (int)raw.shape[raw.ndim - 1]);
            golden_check(ctx, out0, raw.f32, raw.numel);
        } else st = cosy_error(COSY_ERR_FORMAT, "%s: not a [frames, bins] array", in0);
        npy_free(&raw);
    } else if (!strncmp(op, "whisper.log_mel_spectrogram", 27)) {
        st = load_audio(ctx, in0, 16000, &x, &n);
        if (st == COSY_OK) st = cosy_whisper_log_mel(x, n, COSY_WHISPER_MELS, &feat, &frames);
        if (st == COSY_OK) golden_check(ctx, out0, feat, (int64_t)frames * COSY_WHISPER_MELS);
    } else if (!strncmp(op, "feat_extractor(", 15)) {
        cosy_prompt_mel_params p = cosy_prompt_mel_params_from_hparams(&ctx->model->hp);
        st = load_audio(ctx, in0, p.sample_rate, &x, &n);
        if (st == COSY_OK) st = cosy_prompt_mel(&p, x, n, &feat, &frames);
        if (st == COSY_OK) golden_check(ctx, out0, feat, (int64_t)frames * p.n_mels);
    } else if (!strcmp(op, "campplus.onnx")) {
        npy_array a;
        COSY_TRY(golden_load(ctx, in0, &a));
        float *emb = NULL;
        int dim = 0;
        st = a.ndim >= 2 ? run_campplus(ctx, a.f32, (int)a.shape[a.ndim - 2], NULL, &emb, &dim)
                         : cosy_error(COSY_ERR_FORMAT, "%s: not a [1, frames, 80] array", in0);
        if (st == COSY_OK) golden_check(ctx, out0, emb, dim);
        free(emb);
        npy_free(&a);
    } else if (!strcmp(op, "speech_tokenizer_v2.onnx")) {
        npy_array a;
        COSY_TRY(golden_load(ctx, in0, &a));
        tok_tap_ctx t = {ctx, "stage", 0, 0, 0, NULL, 0};
        int32_t *tokens = NULL;
        int nt = 0;
        st = run_tokenizer(ctx, a.f32, a.ndim >= 1 ? (int)a.shape[a.ndim - 1] : 0, &t, &tokens, &nt);
        const char *tk = output_ending(outputs, "_tokens_raw"), *pf = output_ending(outputs, "_pre_fsq");
        char mk[128];
        if (st == COSY_OK && tk) {
            margin_key_of(tk, mk, sizeof mk);
            check_tokens(ctx, tk, mk, tokens, nt);
        }
        if (st == COSY_OK && pf) golden_check(ctx, pf, t.pre_fsq, t.n_pre_fsq);
        free(t.pre_fsq);
        free(tokens);
        npy_free(&a);
    } else if (!strncmp(op, "align", 5)) {
        npy_array mel, tokens;
        COSY_TRY(golden_load(ctx, in0, &mel));
        st = golden_load_int(ctx, item(inputs, 1), &tokens);
        if (st == COSY_OK) {
            if (mel.ndim == 3) {
                const int mframes = (int)mel.shape[1], mels = (int)mel.shape[2];
                const int len = cosy_prompt_align(mframes, (int)tokens.numel);
                for (int i = 0; i < cJSON_GetArraySize(outputs); i++) {
                    const char *key = item(outputs, i);
                    int64_t v;
                    if (ends_with(key, "_prompt_speech_feat")) golden_check(ctx, key, mel.f32, (int64_t)2 * len * mels);
                    else if (ends_with(key, "_prompt_speech_token")) golden_check_ints(ctx, key, tokens.i64, len);
                    else if (ends_with(key, "_prompt_speech_feat_len")) { v = 2 * len; golden_check_ints(ctx, key, &v, 1); }
                    else if (ends_with(key, "_prompt_speech_token_len")) { v = len; golden_check_ints(ctx, key, &v, 1); }
                    else st = cosy_error(COSY_ERR_UNSUPPORTED, "align: unknown output %s", key);
                }
            } else st = cosy_error(COSY_ERR_FORMAT, "%s: not a [1, frames, mels] array", in0);
            npy_free(&tokens);
        }
        npy_free(&mel);
    } else {
        st = cosy_error(COSY_ERR_UNSUPPORTED, "stage op '%s' is not implemented", op);
    }
    free(x);
    free(feat);
    return st;
}

/* Everything from the wav alone, under tolerance_end_to_end: the features, the tokenizer and CAM++;
 * then cosy_voice_from_audio_file must hold the same aligned tokens, prompt mel and embedding. */
static cosy_status run_end_to_end(golden_ctx *ctx, const cJSON *c, const char *wav_key)
{
    char path[1024];
    file_path(ctx, wav_key, path, sizeof path);
    const cosy_prompt_mel_params melp = cosy_prompt_mel_params_from_hparams(&ctx->model->hp);
    cosy_prompt_features f;
    COSY_TRY(cosy_prompt_features_from_file(path, &melp, &f));
    tok_tap_ctx t = {ctx, "e2e", 0, 0, 0, NULL, 0};
    int32_t *tokens = NULL;
    float *emb = NULL;
    int n_tok = 0, dim = 0;
    cosy_status st = run_tokenizer(ctx, f.whisper_mel, f.n_whisper, &t, &tokens, &n_tok);
    if (st == COSY_OK) st = run_campplus(ctx, f.campplus_input, f.n_fbank, NULL, &emb, &dim);
    const int L = cosy_prompt_align(f.n_speech_feat, n_tok);
    cosy_voice *voice = NULL;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "prompt_text");
    if (st == COSY_OK && cJSON_IsString(text)) st = cosy_voice_from_audio_file(ctx->model, path, text->valuestring, &voice);

    /* the e2e table replaces the per-stage one while these are checked */
    cJSON *wrap = cJSON_CreateObject();
    const cJSON *e2e = cJSON_GetObjectItemCaseSensitive(c, "tolerance_end_to_end");
    cJSON_AddItemToObject(wrap, "tolerance_per_output", e2e ? cJSON_Duplicate(e2e, 1) : cJSON_CreateObject());
    const cJSON *saved = ctx->current;
    ctx->current = wrap;
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(c, "outputs");
    for (int i = 0; st == COSY_OK && i < cJSON_GetArraySize(outputs); i++) {
        const char *key = item(outputs, i);
        int64_t v;
        char mk[128];
        if (ends_with(key, "_speech16k")) golden_check(ctx, key, f.speech16k, f.n16);
        else if (ends_with(key, "_speech24k")) golden_check(ctx, key, f.speech24k, f.n24);
        else if (ends_with(key, "_fbank_raw")) golden_check(ctx, key, f.fbank, (int64_t)f.n_fbank * COSY_FBANK_BINS);
        else if (ends_with(key, "_campplus_input")) golden_check(ctx, key, f.campplus_input, (int64_t)f.n_fbank * COSY_FBANK_BINS);
        else if (ends_with(key, "_whisper_mel")) golden_check(ctx, key, f.whisper_mel, (int64_t)f.n_whisper * COSY_WHISPER_MELS);
        else if (ends_with(key, "_embedding")) {
            golden_check(ctx, key, emb, dim);
            if (voice) golden_check(ctx, key, voice->flow_embedding, voice->embed_dim);
            if (voice) golden_check(ctx, key, voice->llm_embedding, voice->n_llm_embedding);
        } else if (ends_with(key, "_tokens_raw")) {
            margin_key_of(key, mk, sizeof mk);
            check_tokens(ctx, key, mk, tokens, n_tok);
        } else if (ends_with(key, "_pre_fsq")) golden_check(ctx, key, t.pre_fsq, t.n_pre_fsq);
        else if (ends_with(key, "_prompt_speech_feat")) {
            golden_check(ctx, key, f.speech_feat, (int64_t)2 * L * f.n_mels);
            if (voice) golden_check(ctx, key, voice->prompt_feat, (int64_t)voice->n_prompt_frames * voice->n_mels);
        } else if (ends_with(key, "_speech_feat")) golden_check(ctx, key, f.speech_feat, (int64_t)f.n_speech_feat * f.n_mels);
        else if (ends_with(key, "_prompt_speech_feat_len")) { v = 2 * L; golden_check_ints(ctx, key, &v, 1); }
        else if (ends_with(key, "_prompt_speech_token_len")) {
            v = L;
            golden_check_ints(ctx, key, &v, 1);
            if (voice) { v = voice->n_flow_prompt_tokens; golden_check_ints(ctx, key, &v, 1); }
        } else if (ends_with(key, "_prompt_speech_token")) {
            const char *tk = output_ending(outputs, "_tokens_raw");
            /* the aligned tokens share the raw tokens' margins (a prefix of them) */
            if (tk) margin_key_of(tk, mk, sizeof mk);
            check_tokens(ctx, key, tk ? mk : NULL, tokens, L);
            if (voice) check_tokens(ctx, key, tk ? mk : NULL, voice->flow_prompt_tokens, voice->n_flow_prompt_tokens);
            if (voice) check_tokens(ctx, key, tk ? mk : NULL, voice->llm_prompt_tokens, voice->n_llm_prompt_tokens);
        } else st = cosy_error(COSY_ERR_UNSUPPORTED, "end to end: unknown output %s", key);
    }
    ctx->current = saved;
    cJSON_Delete(wrap);
    cosy_voice_free(voice);
    free(t.pre_fsq);
    free(tokens);
    free(emb);
    cosy_prompt_features_free(&f);
    return st;
}

/* voice_error: the engine must refuse the input, with the reason the official code gives */
static cosy_status run_error_case(golden_ctx *ctx, const cJSON *c, const char *wav_key)
{
    char path[1024];
    file_path(ctx, wav_key, path, sizeof path);
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(c, "expected_error");
    const char *want = cJSON_IsString(expected) ? expected->valuestring : "";
    cosy_voice *voice = NULL;
    cosy_status st = cosy_voice_from_audio_file(ctx->model, path, "a transcript", &voice);
    const char *msg = cosy_last_error();
    int pass = st != COSY_OK && strstr(msg, path) != NULL;
    if (strstr(want, "longer than 30s")) pass = pass && strstr(msg, "longer than 30s");
    if (strstr(want, "sample rate")) pass = pass && strstr(msg, "sample rate");
    if (ctx->verbose || !pass) printf("    refused: %s\n    (official: %s)\n", st != COSY_OK ? msg : "NOT REFUSED", want);
    golden_record(ctx, wav_key, pass, 0, 0, 0, pass ? 0 : INFINITY, "refused");
    cosy_voice_free(voice);
    cosy_error_clear();
    return COSY_OK;
}

cosy_status golden_voice_e2e(golden_ctx *ctx)
{
    const cJSON *c = ctx->current;
    const cJSON *stage = cJSON_GetObjectItemCaseSensitive(c, "stage");
    const char *kind = cJSON_IsString(stage) ? stage->valuestring : "";
    const char *wav_key = item(cJSON_GetObjectItemCaseSensitive(c, "inputs"), 0);
    if (!strcmp(kind, "voice_error")) return run_error_case(ctx, c, wav_key);
    if (strcmp(kind, "voice_e2e")) return cosy_error(COSY_ERR_UNSUPPORTED, "stage '%s' is not implemented", kind);
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(c, "stages");
    for (const cJSON *s = stages ? stages->child : NULL; s; s = s->next) COSY_TRY(run_stage(ctx, s));
    return run_end_to_end(ctx, c, wav_key);
}

/* resample_kernel_O_N files (no case of their own): our kernel for O -> N Hz against the stored one,
 * one line each as a case. Returns how many were run. */
int golden_resample_kernels(golden_ctx *ctx, const char *const *only, int n_only, int *n_pass, int *n_fail)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files");
    int count = 0;
    cJSON *empty = cJSON_CreateObject();
    for (const cJSON *f = files ? files->child : NULL; f; f = f->next) {
        int orig, target;
        if (sscanf(f->string, "resample_kernel_%d_%d", &orig, &target) != 2) continue;
        if (n_only) {
            int want = 0;
            for (int k = 0; k < n_only; k++) want |= !strcmp(only[k], f->string);
            if (!want) continue;
        }
        ctx->current = empty;
        ctx->outputs_checked = ctx->outputs_failed = 0;
        ctx->worst_ratio = 0;
        ctx->worst_name[0] = 0;
        cosy_error_clear();
        cosy_resampler *r = NULL;
        cosy_status st = cosy_resampler_create(orig, target, &r);
        if (st == COSY_OK) {
            int phases, taps;
            cosy_resampler_kernel_shape(r, &phases, &taps);
            float *k = malloc(sizeof(float) * (size_t)phases * taps);
            if (k) {
                cosy_resampler_kernel(r, k);
                golden_check(ctx, f->string, k, (int64_t)phases * taps);
                free(k);
            } else st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            cosy_resampler_free(r);
        }
        int pass = st == COSY_OK && ctx->outputs_failed == 0 && ctx->outputs_checked > 0;
        if (st != COSY_OK) printf("%-22s %12s %12s %12s  FAIL (%s)\n", f->string, "-", "-", "-", cosy_last_error());
        else printf("%-22s %12.3e %12.3e %12.3g  %s\n", f->string, ctx->worst_abs, ctx->worst_rel, ctx->worst_tol, pass ? "PASS" : "FAIL");
        if (pass) (*n_pass)++;
        else (*n_fail)++;
        count++;
    }
    cJSON_Delete(empty);
    return count;
}
