/*
 * golden_cv3_t2w.c — CosyVoice3's streaming token2wav cases: t2w_0..3 (each call of the official
 * CosyVoice3Model.tts(stream=True) loop on 190 tokens: its flow mel, the vocoder's input — all kept mel
 * so far — and the emitted chunk), cv3_token2wav_stream (the whole stream through the session engine:
 * its calls must be stream_schedule's and its chunks the t2w_k_wav) and cv3_final_chunk_causal (the
 * chunk-causal final call, our linear-cost option).
 *
 * No random draws are replayed: CausalHiFT's noise is the model's construction-time buffer, which the
 * engine regenerates (golden_cv3_hift.c compares it with hift_sine_waves_head when that file is there).
 *
 * stream_schedule is [calls, 6]: token_offset, tokens given, finalize, streaming (the flow's chunk masks:
 * 0 = the official full-attention final call), speech_offset before the call, samples emitted.
 */
#include "golden.h"
#include "core/error.h"
#include "model/model.h"
#include "model/voice/voice.h"
#include "stream/session_internal.h"
#include "stream/schedule.h"
#include "stream/token2wav.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_status golden_cv3_t2w_call(golden_ctx *ctx);
cosy_status golden_cv3_t2w_stream(golden_ctx *ctx);
cosy_status golden_cv3_final_chunk_causal(golden_ctx *ctx);

#define MAX_CALLS COSY_SESSION_CALL_LOG
#define SCHED_COLS 6

static const char *case_name(const golden_ctx *ctx)
{
    const cJSON *name = ctx->current ? cJSON_GetObjectItemCaseSensitive(ctx->current, "name") : NULL;
    return cJSON_IsString(name) ? name->valuestring : "?";
}

/* The case's inputs: speech_token as ids, stream_schedule checked before any index is used (when
 * want_sched), the fixture's voice. */
typedef struct {
    npy_array sched, tokens;
    int32_t *ids;
    int n_tokens, n_calls;
    cosy_voice *voice;
} inputs;

static void inputs_free(inputs *in)
{
    npy_free(&in->sched);
    npy_free(&in->tokens);
    free(in->ids);
    cosy_voice_free(in->voice);
}

static cosy_status check_schedule(const golden_ctx *ctx, const npy_array *sched, int n_tokens)
{
    const char *c = case_name(ctx);
    if (sched->ndim != 2 || sched->shape[1] != SCHED_COLS || sched->shape[0] < 1 || sched->shape[0] > MAX_CALLS)
        return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule should be [calls, %d] with 1..%d calls, not %dD [%lld, %lld]", c,
                          SCHED_COLS, MAX_CALLS, sched->ndim, (long long)sched->shape[0],
                          (long long)(sched->ndim > 1 ? sched->shape[1] : 0));
    for (int64_t k = 0; k < sched->shape[0]; k++) {
        const int64_t *r = sched->i64 + k * SCHED_COLS;
        if (r[1] < 1 || r[1] > n_tokens)
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %lld asks for %lld of %d tokens (field n_tokens)", c, (long long)k,
                              (long long)r[1], n_tokens);
        if (r[0] < 0 || r[0] > r[1])
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %lld has token_offset %lld outside 0..%lld", c, (long long)k,
                              (long long)r[0], (long long)r[1]);
        if ((r[2] != 0 && r[2] != 1) || (r[3] != 0 && r[3] != 1))
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %lld has finalize %lld, streaming %lld (0 or 1)", c, (long long)k,
                              (long long)r[2], (long long)r[3]);
        if (r[2] != (k == sched->shape[0] - 1))
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule: only the last call finalizes (call %lld: %lld)", c, (long long)k,
                              (long long)r[2]);
    }
    return COSY_OK;
}

static cosy_status load_inputs(golden_ctx *ctx, int want_sched, inputs *in)
{
    memset(in, 0, sizeof *in);
    cosy_status st = golden_load_int(ctx, "speech_token", &in->tokens);
    if (st == COSY_OK && (in->tokens.numel < 1 || in->tokens.numel > 100000))
        st = cosy_error(COSY_ERR_FORMAT, "%s: speech_token has %lld tokens (1..100000)", case_name(ctx), (long long)in->tokens.numel);
    if (st == COSY_OK) in->n_tokens = (int)in->tokens.numel;
    if (st == COSY_OK && want_sched) st = golden_load_int(ctx, "stream_schedule", &in->sched);
    if (st == COSY_OK && want_sched) st = check_schedule(ctx, &in->sched, in->n_tokens);
    if (st == COSY_OK && want_sched) in->n_calls = (int)in->sched.shape[0];
    if (st == COSY_OK && !(in->ids = malloc(sizeof(int32_t) * (size_t)in->n_tokens))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int i = 0; st == COSY_OK && i < in->n_tokens; i++) in->ids[i] = (int32_t)in->tokens.i64[i];
    if (st == COSY_OK) st = golden_fixture_voice(ctx, &in->voice);
    if (st != COSY_OK) inputs_free(in);
    return st;
}

/* The vocoder's input so far (CosyVoice3Model.token2wav's hift_cache_dict['mel']): every call's kept
 * frames appended, channel-major [80][n] with row stride cap. */
typedef struct {
    float *mel;
    int n, cap, C;
} mel_log;

static cosy_status mel_log_append(mel_log *m, const float *mel, int n)
{
    if (m->n + n > m->cap) {
        int cap = (m->n + n) * 2 + 64;
        float *p = calloc((size_t)m->C * (size_t)cap, sizeof(float));
        if (!p) return cosy_error(COSY_ERR_NOMEM, "out of memory");
        for (int c = 0; m->mel && c < m->C; c++) memcpy(p + (size_t)c * cap, m->mel + (size_t)c * m->cap, sizeof(float) * (size_t)m->n);
        free(m->mel);
        m->mel = p;
        m->cap = cap;
    }
    for (int c = 0; c < m->C; c++) memcpy(m->mel + (size_t)c * m->cap + m->n, mel + (size_t)c * n, sizeof(float) * (size_t)n);
    m->n += n;
    return COSY_OK;
}

/* The log as a dense [80][n] array (for golden_check). */
static float *mel_log_dense(const mel_log *m)
{
    float *d = malloc(sizeof(float) * ((size_t)m->C * (size_t)m->n + 1));
    for (int c = 0; d && c < m->C; c++) memcpy(d + (size_t)c * m->n, m->mel + (size_t)c * m->cap, sizeof(float) * (size_t)m->n);
    return d;
}

/* The waveform straight from our own mel, reported (not checked): our mel matches the reference's to
 * an RMS 7e-6 (max 5.5e-6 of the peak, 18x inside its 1e-4 tolerance), but CausalHiFT is sensitive to
 * float32-level mel differences, more so along the utterance (the source's phase integrates f0): from
 * our mel the waveform is 1.6e-4 off at call 0 and 1.7e-3 at call 3 (7.6 s), past t2w_k_wav's 1e-3.
 * The reference's own mel moved by +-7e-6 and replayed gives 5.8e-4 .. 1.6e-3 (report_sensitivity), so
 * a difference of our mel's size alone accounts for it, while the vocoder on the reference's mel stays
 * within 1.5e-4. The checked waveform is therefore that of the reference's mel replayed through our
 * token2wav (as CosyVoice2's cases replay HiFT's random draws); our mel is checked separately. */
static void report_end_to_end(golden_ctx *ctx, const char *key, const float *audio, int64_t n)
{
    npy_array ref;
    if (golden_load(ctx, key, &ref) != COSY_OK) return;
    double worst = ref.numel == n ? 0 : INFINITY;
    for (int64_t i = 0; ref.numel == n && i < n; i++) {
        double d = fabs((double)audio[i] - ref.f32[i]);
        if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
    }
    if (ctx->verbose) printf("    %-28s max_abs %.3e  (end to end from our own mel: reported, not checked)\n", key, worst);
    npy_free(&ref);
}

/* t2w_k: the official calls 0..k, each as the reference computes it (the flow statelessly over every
 * token so far: its whole output is compared), the final one with full attention; checks call k. */
cosy_status golden_cv3_t2w_call(golden_ctx *ctx)
{
    const int k = atoi(case_name(ctx) + 4);
    inputs in;
    COSY_TRY(load_inputs(ctx, 1, &in));
    cosy_status st = COSY_OK;
    if (k < 0 || k >= in.n_calls)
        st = cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule has %d calls, no call %d", case_name(ctx), in.n_calls, k);
    cosy_token2wav_params p = cosy_token2wav_default_params();
    p.stateless_flow = 1;
    cosy_token2wav *t2w = NULL;
    if (st == COSY_OK) st = cosy_token2wav_create(ctx->model, in.voice, &p, &t2w);
    mel_log log = {.C = ctx->model->hp.flow_output_size};
    int64_t speech_offset = 0;
    for (int j = 0; st == COSY_OK && j <= k; j++) {
        const int64_t *r = in.sched.i64 + (int64_t)j * SCHED_COLS;
        const float *audio;
        int n_audio, kept;
        st = cosy_token2wav_call(t2w, in.ids, (int)r[1], (int)r[0], (int)r[2], &audio, &n_audio);
        if (st != COSY_OK) break;
        const float *mel = cosy_token2wav_last_mel(t2w, &kept);
        st = mel_log_append(&log, mel, kept);
        if (st != COSY_OK) break;
        cosy_t2w_call_info info;
        cosy_token2wav_last_info(t2w, &info);
        if (info.full_attention != !r[3] || speech_offset != r[4] || n_audio != r[5])
            st = cosy_error(COSY_ERR_INTERNAL, "%s: call %d ran %s and emitted %d samples from %lld; the reference: %s, %lld from %lld",
                            case_name(ctx), j, info.full_attention ? "full attention" : "chunk masks", n_audio, (long long)speech_offset,
                            r[3] ? "chunk masks" : "full attention", (long long)r[5], (long long)r[4]);
        speech_offset += n_audio;
        if (st != COSY_OK || j < k) continue;
        char key[64];
        int frames;
        const float *flow_mel = cosy_token2wav_last_flow_mel(t2w, &frames);
        snprintf(key, sizeof key, "t2w_%d_flow_mel", k);
        golden_check(ctx, key, flow_mel, (int64_t)log.C * frames);
        float *hmel = mel_log_dense(&log);
        if (!hmel) {
            st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(key, sizeof key, "t2w_%d_hift_mel", k);
        golden_check(ctx, key, hmel, (int64_t)log.C * log.n);
        free(hmel);
        snprintf(key, sizeof key, "t2w_%d_wav", k);
        report_end_to_end(ctx, key, audio, n_audio);
    }
    free(log.mel);
    cosy_token2wav_free(t2w);
    /* the vocoder side: our default token2wav (incremental flow, CausalHiFT stream) on calls 0..k with
     * the reference's mel replayed into the vocoder */
    npy_array ref_mel;
    memset(&ref_mel, 0, sizeof ref_mel);
    char key[64];
    snprintf(key, sizeof key, "t2w_%d_hift_mel", k);
    if (st == COSY_OK) st = golden_load(ctx, key, &ref_mel);
    if (st == COSY_OK && (ref_mel.ndim != 3 || ref_mel.shape[1] != ctx->model->hp.flow_output_size))
        st = cosy_error(COSY_ERR_FORMAT, "%s: %s is not [1, %d, F]", case_name(ctx), key, ctx->model->hp.flow_output_size);
    t2w = NULL;
    if (st == COSY_OK) st = cosy_token2wav_create(ctx->model, in.voice, NULL, &t2w);
    if (st == COSY_OK) cosy_token2wav_set_mel_replay(t2w, ref_mel.f32, (int)ref_mel.shape[2]);
    for (int j = 0; st == COSY_OK && j <= k; j++) {
        const int64_t *r = in.sched.i64 + (int64_t)j * SCHED_COLS;
        const float *audio;
        int n_audio;
        st = cosy_token2wav_call(t2w, in.ids, (int)r[1], (int)r[0], (int)r[2], &audio, &n_audio);
        if (st == COSY_OK && j == k) {
            snprintf(key, sizeof key, "t2w_%d_wav", k);
            golden_check(ctx, key, audio, n_audio);
        }
    }
    cosy_token2wav_free(t2w);
    npy_free(&ref_mel);
    inputs_free(&in);
    return st;
}

/* ------------------------------------------------------------------ the whole stream */


/* max |a - b| per call (the stream's chunks end at chunk_end), printed on one line */
static void print_per_call(golden_ctx *ctx, const float *a, const float *b, const int64_t *chunk_end, int n_calls)
{
    int64_t from = 0;
    for (int k = 0; k < n_calls; k++) {
        double worst = 0;
        for (int64_t i = from; i < chunk_end[k]; i++) {
            double d = fabs((double)a[i] - b[i]);
            if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
        }
        printf(" call %d %.2e (to %.2f s)", k, worst, (double)chunk_end[k] / ctx->model->hp.sample_rate);
        from = chunk_end[k];
    }
    printf("\n");
}

/* Why the waveform from our own mel is reported, not checked (-v): CausalHiFT integrates f0 into the
 * source's phase, so a mel difference far inside the mel's tolerance moves the waveform by an amount
 * that grows along the utterance. The reference's own mel, moved by +-delta (alternately; delta = our
 * mel's RMS difference from it) and replayed through the same calls, shows how far a difference of
 * that size alone carries; it lands where our own mel does. */
static cosy_status report_sensitivity(golden_ctx *ctx, const inputs *in, const cosy_session_call *calls, int n_calls,
                                      const npy_array *ref_mel, double delta, const float *ref_wav, const int64_t *chunk_end)
{
    if (!(delta > 0)) return COSY_OK;
    float *moved = malloc(sizeof(float) * (size_t)ref_mel->numel + 1), *wav = malloc(sizeof(float) * (size_t)chunk_end[n_calls - 1] + 1);
    cosy_status st = moved && wav ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; st == COSY_OK && i < ref_mel->numel; i++) moved[i] = ref_mel->f32[i] + (float)((i & 1) ? delta : -delta);
    cosy_token2wav *t2w = NULL;
    if (st == COSY_OK) st = cosy_token2wav_create(ctx->model, in->voice, NULL, &t2w);
    if (st == COSY_OK) cosy_token2wav_set_mel_replay(t2w, moved, (int)ref_mel->shape[2]);
    int64_t at = 0;
    for (int k = 0; st == COSY_OK && k < n_calls; k++) {
        const float *audio;
        int n_audio;
        st = cosy_token2wav_call(t2w, in->ids, calls[k].end, calls[k].offset, calls[k].finalize, &audio, &n_audio);
        if (st == COSY_OK && at + n_audio != chunk_end[k])
            st = cosy_error(COSY_ERR_INTERNAL, "%s: call %d of the replay emitted %d samples", case_name(ctx), k, n_audio);
        if (st != COSY_OK) break;
        memcpy(wav + at, audio, sizeof(float) * (size_t)n_audio);
        at += n_audio;
    }
    if (st == COSY_OK) {
        printf("    the reference's mel moved by +-%.2e, replayed:\n      ", delta);
        print_per_call(ctx, wav, ref_wav, chunk_end, n_calls);
    }
    cosy_token2wav_free(t2w);
    free(moved);
    free(wav);
    return st;
}

/* All 190 tokens handed to a session (default parameters: the official schedule, our linear-cost flow
 * and vocoder streams, the official full-attention final call): the calls it makes are compared with
 * stream_schedule, each chunk with t2w_k_wav and the whole stream with their concatenation. */
cosy_status golden_cv3_t2w_stream(golden_ctx *ctx)
{
    inputs in;
    COSY_TRY(load_inputs(ctx, 1, &in));
    cosy_status st = COSY_OK;
    golden_collected c;
    memset(&c, 0, sizeof c);
    c.cap = (int64_t)in.n_tokens * 2 * 480 + 1;
    if (!(c.audio = malloc(sizeof(float) * (size_t)c.cap))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    /* all the mel of the stream (the last call's vocoder input): replayed into the session's vocoder */
    npy_array ref_mel;
    memset(&ref_mel, 0, sizeof ref_mel);
    char mel_key[64];
    snprintf(mel_key, sizeof mel_key, "t2w_%d_hift_mel", in.n_calls - 1);
    const int C = ctx->model->hp.flow_output_size;
    if (st == COSY_OK) st = golden_load(ctx, mel_key, &ref_mel);
    if (st == COSY_OK && (ref_mel.ndim != 3 || ref_mel.shape[1] != C))
        st = cosy_error(COSY_ERR_FORMAT, "%s: %s is not [1, %d, F]", case_name(ctx), mel_key, C);
    cosy_session *s = NULL;
    if (st == COSY_OK) {
        cosy_session_params p = cosy_session_default_params();
        p.stream = 1;
        p.on_audio = golden_collect;
        p.user = &c;
        st = cosy_session_create_tokens_mel(ctx->model, in.voice, &p, in.ids, in.n_tokens, NULL, 0, ref_mel.f32, (int)ref_mel.shape[2], &s);
    }
    if (st == COSY_OK) st = cosy_session_wait(s);
    cosy_session_call calls[MAX_CALLS];
    int n_calls = st == COSY_OK ? cosy_session_calls(s, calls, MAX_CALLS) : 0;
    if (st == COSY_OK && c.overflow)
        st = cosy_error(COSY_ERR_INTERNAL, "%s: the session made more audio or chunks than %d tokens give", case_name(ctx), in.n_tokens);
    if (st == COSY_OK && c.chunks != n_calls)
        st = cosy_error(COSY_ERR_INTERNAL, "%s: %d chunks of audio from %d token2wav calls", case_name(ctx), c.chunks, n_calls);
    if (st == COSY_OK) {
        /* the schedule as the session ran it */
        int64_t rows[MAX_CALLS * SCHED_COLS];
        int64_t speech_offset = 0;
        for (int k = 0; k < n_calls; k++) {
            int64_t *r = rows + (int64_t)k * SCHED_COLS;
            r[0] = calls[k].offset;
            r[1] = calls[k].end;
            r[2] = calls[k].finalize;
            r[3] = !calls[k].full_attention;
            r[4] = speech_offset;
            r[5] = calls[k].samples;
            speech_offset += calls[k].samples;
        }
        if (n_calls != in.n_calls) {
            fprintf(stderr, "golden: %s: the session made %d calls, the official loop %d\n", case_name(ctx), n_calls, in.n_calls);
            golden_record(ctx, "stream_schedule", 0, NAN, NAN, 0, INFINITY, "number of calls differs");
        } else {
            golden_check_ints(ctx, "stream_schedule", rows, (int64_t)n_calls * SCHED_COLS);
        }
    }
    /* each chunk, and the whole stream against the concatenated chunks */
    int64_t ref_n = 0;
    float *ref = NULL;
    if (st == COSY_OK && !(ref = malloc(sizeof(float) * (size_t)c.cap))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int k = 0; st == COSY_OK && k < in.n_calls; k++) {
        char key[64];
        snprintf(key, sizeof key, "t2w_%d_wav", k);
        int64_t from = k ? (k - 1 < c.chunks ? c.chunk_end[k - 1] : c.n) : 0, to = k < c.chunks ? c.chunk_end[k] : c.n;
        golden_check(ctx, key, c.audio + from, to - from);
        npy_array w;
        st = golden_load(ctx, key, &w);
        if (st != COSY_OK) break;
        if (w.numel > c.cap - ref_n) st = cosy_error(COSY_ERR_FORMAT, "%s: %s is longer than %d tokens give", case_name(ctx), key, in.n_tokens);
        else memcpy(ref + ref_n, w.f32, sizeof(float) * (size_t)w.numel), ref_n += w.numel;
        npy_free(&w);
    }
    if (st == COSY_OK) {
        /* max_abs 1e-3, the tolerance of every t2w_k_wav */
        double worst = ref_n == c.n ? 0 : INFINITY, tol = 1e-3;
        for (int64_t i = 0; ref_n == c.n && i < c.n; i++) {
            double d = fabs((double)c.audio[i] - ref[i]);
            if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
        }
        if (ctx->verbose || ref_n != c.n)
            printf("    whole stream: %lld samples (reference %lld), max |diff| %.3g\n", (long long)c.n, (long long)ref_n, worst);
        golden_record(ctx, "whole stream", worst <= tol, worst, NAN, tol, worst / tol, "max_abs vs the concatenated t2w_k_wav");
    }
    /* our own mel: the same calls through our default token2wav (no replay); all kept frames together
     * must be the stream's mel, and the waveform from them is reported (see report_end_to_end) */
    cosy_token2wav *t2w = NULL;
    if (st == COSY_OK) st = cosy_token2wav_create(ctx->model, in.voice, NULL, &t2w);
    mel_log log = {.C = C};
    double mel_rms = NAN;
    int64_t n_own = 0;
    float *own = st == COSY_OK ? malloc(sizeof(float) * (size_t)c.cap) : NULL;
    if (st == COSY_OK && !own) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int k = 0; st == COSY_OK && k < n_calls; k++) {
        const float *audio;
        int n_audio, kept;
        st = cosy_token2wav_call(t2w, in.ids, calls[k].end, calls[k].offset, calls[k].finalize, &audio, &n_audio);
        if (st == COSY_OK && n_audio > c.cap - n_own) st = cosy_error(COSY_ERR_INTERNAL, "%s: too much audio", case_name(ctx));
        if (st != COSY_OK) break;
        memcpy(own + n_own, audio, sizeof(float) * (size_t)n_audio);
        n_own += n_audio;
        const float *mel = cosy_token2wav_last_mel(t2w, &kept);
        st = mel_log_append(&log, mel, kept);
    }
    if (st == COSY_OK) {
        float *m = mel_log_dense(&log);
        if (!m) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        else golden_check(ctx, mel_key, m, (int64_t)C * log.n);
        if (m && ref_mel.numel == (int64_t)C * log.n) { /* the RMS of our mel's difference, for the sensitivity report */
            double sum2 = 0;
            for (int64_t i = 0; i < ref_mel.numel; i++) sum2 += ((double)m[i] - ref_mel.f32[i]) * ((double)m[i] - ref_mel.f32[i]);
            mel_rms = sqrt(sum2 / (double)ref_mel.numel);
        }
        free(m);
    }
    if (st == COSY_OK && ctx->verbose && ref_n == n_own && c.n == n_own) {
        printf("    from our own mel (RMS difference %.2e from the reference's), reported, not checked:\n      ", mel_rms);
        print_per_call(ctx, own, ref, c.chunk_end, n_calls);
        st = report_sensitivity(ctx, &in, calls, n_calls, &ref_mel, mel_rms, ref, c.chunk_end);
    }
    free(own);
    free(log.mel);
    cosy_token2wav_free(t2w);
    free(ref);
    cosy_session_free(s);
    npy_free(&ref_mel);
    free(c.audio);
    inputs_free(&in);
    return st;
}

/* ------------------------------------------------------------------ chunk-causal final call */

/* The official schedule's calls (P = 20, N = 190: offsets 0, 30, 80, then the final call from 180)
 * through our default incremental token2wav with chunk_causal_final: the mel so far before the final
 * call must be t2w_2_hift_mel, the final call's kept frames those of
 * t2w_final_streaming_true_flow_mel from 2·offset (the frames before are taken from the reference: no
 * call emits them again), and its audio t2w_final_streaming_true_wav. The schedule is made here by the
 * session's own scheduler (stream/schedule.h). */
cosy_status golden_cv3_final_chunk_causal(golden_ctx *ctx)
{
    inputs in;
    COSY_TRY(load_inputs(ctx, 0, &in));
    cosy_token2wav_params p = cosy_token2wav_default_params();
    p.chunk_causal_final = 1;
    cosy_token2wav *t2w = NULL;
    cosy_status st = cosy_token2wav_create(ctx->model, in.voice, &p, &t2w);
    cosy_schedule sched;
    const cosy_hparams *hp = &ctx->model->hp;
    if (st == COSY_OK) st = cosy_schedule_init(&sched, COSY_CHUNK_DEFAULT, 25, 0, 0, hp->pre_lookahead_len, in.voice->n_flow_prompt_tokens);
    mel_log log = {.C = hp->flow_output_size};
    cosy_schedule_call call;
    int calls = 0;
    while (st == COSY_OK && cosy_schedule_next(&sched, in.n_tokens, 1, &call)) {
        const float *audio;
        int n_audio, kept;
        if (call.finalize) {
            float *hmel = mel_log_dense(&log);
            if (!hmel) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            else golden_check(ctx, "t2w_2_hift_mel", hmel, (int64_t)log.C * log.n);
            free(hmel);
            if (st != COSY_OK) break;
        }
        st = cosy_token2wav_call(t2w, in.ids, call.end, call.offset, call.finalize, &audio, &n_audio);
        if (st != COSY_OK) break;
        calls++;
        const float *mel = cosy_token2wav_last_mel(t2w, &kept);
        st = mel_log_append(&log, mel, kept);
        if (st != COSY_OK || !call.finalize) continue;
        cosy_t2w_call_info info;
        cosy_token2wav_last_info(t2w, &info);
        if (info.full_attention) {
            st = cosy_error(COSY_ERR_INTERNAL, "%s: the final call ran with full attention", case_name(ctx));
            break;
        }
        npy_array ref;
        const char *key = "t2w_final_streaming_true_flow_mel";
        st = golden_load(ctx, key, &ref);
        if (st != COSY_OK) break;
        int frames = ref.ndim > 0 ? (int)ref.shape[ref.ndim - 1] : 0, first = 2 * call.offset;
        if (frames < 1 || ref.numel != (int64_t)log.C * frames || first > frames) {
            st = cosy_error(COSY_ERR_FORMAT, "%s: %s is not [1, %d, F] with F >= %d", case_name(ctx), key, log.C, first);
        } else {
            float *spliced = malloc(sizeof(float) * (size_t)ref.numel);
            if (!spliced) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            for (int c = 0; spliced && c < log.C; c++) {
                memcpy(spliced + (size_t)c * frames, ref.f32 + (size_t)c * frames, sizeof(float) * (size_t)first);
                for (int f = first; f < frames; f++)
                    spliced[(size_t)c * frames + f] = f - first < kept ? mel[(size_t)c * kept + f - first] : NAN;
            }
            if (spliced && kept != frames - first)
                fprintf(stderr, "golden: %s: the final call kept %d frames, the reference has %d\n", key, kept, frames - first);
            if (spliced) golden_check(ctx, key, spliced, ref.numel);
            free(spliced);
        }
        npy_free(&ref);
        if (st == COSY_OK) report_end_to_end(ctx, "t2w_final_streaming_true_wav", audio, n_audio);
    }
    if (st == COSY_OK && calls < 2)
        st = cosy_error(COSY_ERR_FORMAT, "%s: %d tokens make %d call(s): no streamed final call to check", case_name(ctx), in.n_tokens, calls);
    free(log.mel);
    cosy_token2wav_free(t2w);
    /* the vocoder side: the same calls with the reference's mel replayed (t2w_2_hift_mel, then the
     * chunk-causal final call's frames after it) */
    npy_array before, fin;
    memset(&before, 0, sizeof before);
    memset(&fin, 0, sizeof fin);
    float *replay = NULL;
    int F = 0;
    if (st == COSY_OK) st = golden_load(ctx, "t2w_2_hift_mel", &before);
    if (st == COSY_OK) st = golden_load(ctx, "t2w_final_streaming_true_flow_mel", &fin);
    if (st == COSY_OK && (before.ndim != 3 || fin.ndim != 3 || before.shape[1] != log.C || fin.shape[1] != log.C ||
                          before.shape[2] > fin.shape[2]))
        st = cosy_error(COSY_ERR_FORMAT, "%s: t2w_2_hift_mel / t2w_final_streaming_true_flow_mel are not [1, %d, F]", case_name(ctx), log.C);
    if (st == COSY_OK) {
        F = (int)fin.shape[2];
        int B = (int)before.shape[2];
        if (!(replay = malloc(sizeof(float) * (size_t)log.C * (size_t)F))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        for (int c = 0; replay && c < log.C; c++) {
            memcpy(replay + (size_t)c * F, before.f32 + (size_t)c * B, sizeof(float) * (size_t)B);
            memcpy(replay + (size_t)c * F + B, fin.f32 + (size_t)c * F + B, sizeof(float) * (size_t)(F - B));
        }
    }
    t2w = NULL;
    if (st == COSY_OK) st = cosy_token2wav_create(ctx->model, in.voice, &p, &t2w);
    if (st == COSY_OK) {
        cosy_token2wav_set_mel_replay(t2w, replay, F);
        st = cosy_schedule_init(&sched, COSY_CHUNK_DEFAULT, 25, 0, 0, hp->pre_lookahead_len, in.voice->n_flow_prompt_tokens);
    }
    while (st == COSY_OK && cosy_schedule_next(&sched, in.n_tokens, 1, &call)) {
        const float *audio;
        int n_audio;
        st = cosy_token2wav_call(t2w, in.ids, call.end, call.offset, call.finalize, &audio, &n_audio);
        if (st == COSY_OK && call.finalize) golden_check(ctx, "t2w_final_streaming_true_wav", audio, n_audio);
    }
    cosy_token2wav_free(t2w);
    free(replay);
    npy_free(&before);
    npy_free(&fin);
    inputs_free(&in);
    return st;
}
