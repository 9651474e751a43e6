/* golden_t2w.c — the streaming token2wav cases (t2w_0..3, token2wav_stream): every call the official
 * CosyVoice2Model.tts(stream=True) loop makes on 200 tokens (stream_schedule.npy), run through our
 * token2wav object with each call's recorded HiFT draws replayed and the official full-attention final
 * call (reference_final). */
#include "golden.h"
#include "core/error.h"
#include "model/voice/voice.h"
#include "stream/session_internal.h"
#include "stream/token2wav.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *case_name(const golden_ctx *ctx)
{
    const cJSON *name = ctx->current ? cJSON_GetObjectItemCaseSensitive(ctx->current, "name") : NULL;
    return cJSON_IsString(name) ? name->valuestring : "?";
}

typedef struct {
    npy_array draws[3];
    cosy_hift_replay replay;
    cosy_rng_source source;
} call_draws;

static cosy_status load_draws(golden_ctx *ctx, int k, call_draws *d)
{
    char key[64];
    memset(d, 0, sizeof *d);
    for (int j = 0; j < 3; j++) {
        snprintf(key, sizeof key, "t2w_%d_noise_%03d", k, j);
        COSY_TRY(golden_load(ctx, key, &d->draws[j]));
    }
    d->replay.rand_ini = d->draws[0].f32;
    d->replay.n_rand_ini = d->draws[0].numel;
    d->replay.sine_noise = d->draws[1].f32;
    d->replay.n_sine_noise = d->draws[1].numel;
    d->replay.source_noise = d->draws[2].f32;
    d->replay.n_source_noise = d->draws[2].numel;
    d->replay.harmonics = (int)d->draws[0].numel;
    d->source = cosy_hift_replay_source(&d->replay);
    return COSY_OK;
}

static void free_draws(call_draws *d)
{
    for (int j = 0; j < 3; j++) npy_free(&d->draws[j]);
}

/* The fixture's voice: flow prompt tokens, prompt mel, speaker embedding (golden.h). */
cosy_status golden_fixture_voice(golden_ctx *ctx, cosy_voice **out)
{
    npy_array tok, feat, emb;
    COSY_TRY(golden_load_int(ctx, "prompt_speech_token", &tok));
    cosy_status st = golden_load(ctx, "prompt_feat", &feat);
    if (st == COSY_OK) st = golden_load(ctx, "embedding", &emb);
    cosy_voice *v = st == COSY_OK ? cosy_voice_alloc("fixture") : NULL;
    if (st == COSY_OK && !v) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK && (feat.ndim < 1 || feat.shape[feat.ndim - 1] < 1 || feat.numel % feat.shape[feat.ndim - 1] != 0))
        st = cosy_error(COSY_ERR_FORMAT, "%s: prompt_feat has %lld values, not whole mel rows", case_name(ctx), (long long)feat.numel);
    if (st == COSY_OK) {
        v->n_flow_prompt_tokens = (int)tok.numel;
        v->flow_prompt_tokens = malloc(sizeof(int32_t) * (size_t)(tok.numel + 1));
        for (int64_t i = 0; v->flow_prompt_tokens && i < tok.numel; i++) v->flow_prompt_tokens[i] = (int32_t)tok.i64[i];
        v->n_mels = (int)feat.shape[feat.ndim - 1];
        v->n_prompt_frames = (int)(feat.numel / v->n_mels);
        v->prompt_feat = feat.f32;
        feat.f32 = NULL;
        v->embed_dim = (int)emb.numel;
        v->flow_embedding = emb.f32;
        emb.f32 = NULL;
        if (!v->flow_prompt_tokens) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    npy_free(&tok);
    npy_free(&feat);
    npy_free(&emb);
    if (st != COSY_OK) {
        cosy_voice_free(v);
        return st;
    }
    *out = v;
    return COSY_OK;
}

#define MAX_CALLS 64 /* the session test records at most this many chunk ends */

/* stream_schedule is [calls, 4] rows (token_offset, n_tokens, finalize, streaming) over speech_token's
 * n_tokens tokens: every index the handlers use is checked here, before any is used. */
static cosy_status check_schedule(const golden_ctx *ctx, const npy_array *sched, const npy_array *tokens)
{
    const char *c = case_name(ctx);
    if (tokens->numel < 1 || tokens->numel > 100000)
        return cosy_error(COSY_ERR_FORMAT, "%s: speech_token has %lld tokens (1..100000)", c, (long long)tokens->numel);
    if (sched->ndim != 2 || sched->shape[1] != 4 || sched->shape[0] < 1 || sched->shape[0] > MAX_CALLS)
        return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule should be [calls, 4] with 1..%d calls, not %dD [%lld, %lld]", c, MAX_CALLS,
                          sched->ndim, (long long)sched->shape[0], (long long)(sched->ndim > 1 ? sched->shape[1] : 0));
    for (int64_t k = 0; k < sched->shape[0]; k++) {
        int64_t offset = sched->i64[k * 4 + 0], n = sched->i64[k * 4 + 1], finalize = sched->i64[k * 4 + 2];
        if (n < 1 || n > tokens->numel)
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %lld asks for %lld of %lld tokens (field n_tokens)", c, (long long)k,
                              (long long)n, (long long)tokens->numel);
        if (offset < 0 || offset > n)
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %lld has token_offset %lld outside 0..%lld (field token_offset)", c,
                              (long long)k, (long long)offset, (long long)n);
        if (finalize != 0 && finalize != 1)
            return cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %lld has finalize %lld (field finalize: 0 or 1)", c, (long long)k,
                              (long long)finalize);
    }
    return COSY_OK;
}

/* Runs the official schedule's calls 0..last; checks call `check` (or all when check < 0). */
static cosy_status run_calls(golden_ctx *ctx, int last, int check)
{
    npy_array sched, tokens;
    COSY_TRY(golden_load_int(ctx, "stream_schedule", &sched));
    cosy_status st = golden_load_int(ctx, "speech_token", &tokens);
    if (st != COSY_OK) memset(&tokens, 0, sizeof tokens);
    if (st == COSY_OK) st = check_schedule(ctx, &sched, &tokens);
    cosy_voice *voice = NULL;
    if (st == COSY_OK) st = golden_fixture_voice(ctx, &voice);
    cosy_token2wav *t2w = NULL;
    cosy_token2wav_params p = cosy_token2wav_default_params();
    p.reference_final = 1;
    p.stateless_flow = 1; /* the reference's call, whose whole flow output the fixture holds */
    if (st == COSY_OK) st = cosy_token2wav_create(ctx->model, voice, &p, &t2w);
    int32_t *ids = NULL;
    float *stream = NULL;
    int64_t n_stream = 0, stream_cap = tokens.numel * 2 * 480 + 1;
    if (st == COSY_OK) {
        ids = malloc(sizeof(int32_t) * (size_t)tokens.numel);
        stream = malloc(sizeof(float) * (size_t)stream_cap);
        if (!ids || !stream) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; ids && i < tokens.numel; i++) ids[i] = (int32_t)tokens.i64[i];
    }
    int n_calls = st == COSY_OK ? (int)sched.shape[0] : 0;
    if (last >= n_calls) last = n_calls - 1;
    for (int k = 0; st == COSY_OK && k <= last; k++) {
        int offset = (int)sched.i64[k * 4 + 0], n = (int)sched.i64[k * 4 + 1], finalize = (int)sched.i64[k * 4 + 2];
        call_draws d;
        st = load_draws(ctx, k, &d);
        if (st != COSY_OK) break;
        cosy_token2wav_set_rng(t2w, &d.source);
        const float *audio;
        int n_audio;
        st = cosy_token2wav_call(t2w, ids, n, offset, finalize, &audio, &n_audio);
        if (st == COSY_OK && d.replay.status != COSY_OK) st = d.replay.status;
        if (st == COSY_OK && (n_audio < 0 || n_audio > stream_cap - n_stream))
            st = cosy_error(COSY_ERR_FORMAT, "%s: stream_schedule call %d makes more audio than %lld tokens give", case_name(ctx), k,
                            (long long)tokens.numel);
        if (st == COSY_OK) {
            memcpy(stream + n_stream, audio, sizeof(float) * (size_t)n_audio);
            n_stream += n_audio;
        }
        if (st == COSY_OK && (check < 0 || check == k)) {
            char key[64];
            int frames;
            const float *mel = cosy_token2wav_last_flow_mel(t2w, &frames);
            if (check >= 0) {
                snprintf(key, sizeof key, "t2w_%d_flow_mel", k);
                golden_check(ctx, key, mel, (int64_t)80 * frames);
                const float *hmel, *hwav, *hsrc;
                int hn = cosy_t2w_hift_last_call(cosy_token2wav_vocoder(t2w), &hmel, &hwav, &hsrc);
                snprintf(key, sizeof key, "t2w_%d_hift_mel", k);
                golden_check(ctx, key, hmel, (int64_t)80 * hn);
                snprintf(key, sizeof key, "t2w_%d_hift_wav", k);
                golden_check(ctx, key, hwav, (int64_t)hn * 480);
            }
            snprintf(key, sizeof key, "t2w_%d_wav", k);
            golden_check(ctx, key, audio, n_audio);
        }
        cosy_token2wav_set_rng(t2w, NULL);
        free_draws(&d);
    }
    if (st == COSY_OK && check < 0) golden_check(ctx, "t2w_stream_wav", stream, n_stream);
    free(ids);
    free(stream);
    cosy_token2wav_free(t2w);
    cosy_voice_free(voice);
    npy_free(&sched);
    npy_free(&tokens);
    return st;
}

cosy_status golden_t2w_call(golden_ctx *ctx);
cosy_status golden_t2w_call(golden_ctx *ctx)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ctx->current, "name");
    int k = atoi(name->valuestring + 4);
    return run_calls(ctx, k, k);
}

/* golden.h: audio of a session as it arrives, with each chunk's end */
void golden_collect(void *user, const float *samples, int n)
{
    golden_collected *c = user;
    if (n < 0 || n > c->cap - c->n || c->chunks == GOLDEN_MAX_CHUNKS) {
        c->overflow = 1;
        return;
    }
    memcpy(c->audio + c->n, samples, sizeof(float) * (size_t)n);
    c->n += n;
    c->chunk_end[c->chunks++] = c->n;
}

/* token2wav_stream goes through the session engine: the 200 tokens handed to a session, which
 * schedules the chunks itself (stream/schedule.h) — the calls must come out as the official loop's,
 * each with its recorded draws. */

/* Our default token2wav (incremental flow, chunk-causal final call) on the official schedule: each
 * call's mel must be the official call's mel from 2·offset on (t2w_k_flow_mel), and the final one
 * the chunk-causal variant of the last call (t2w_final_streaming_true_flow_mel). The frames before
 * 2·offset are not ours to compare (no call emits them again): they are taken from the reference,
 * so the error reported is that of our frames only. */
static cosy_status check_incremental_mels(golden_ctx *ctx, const npy_array *sched, const int32_t *ids, const cosy_voice *voice)
{
    cosy_token2wav *t2w = NULL;
    COSY_TRY(cosy_token2wav_create(ctx->model, voice, NULL, &t2w));
    cosy_status st = COSY_OK;
    int n_calls = (int)sched->shape[0];
    for (int k = 0; st == COSY_OK && k < n_calls; k++) {
        int offset = (int)sched->i64[k * 4 + 0], n = (int)sched->i64[k * 4 + 1], finalize = (int)sched->i64[k * 4 + 2];
        const float *audio;
        int n_audio, kept;
        st = cosy_token2wav_call(t2w, ids, n, offset, finalize, &audio, &n_audio);
        if (st != COSY_OK) break;
        const float *mel = cosy_token2wav_last_mel(t2w, &kept);
        char key[64];
        if (finalize) snprintf(key, sizeof key, "t2w_final_streaming_true_flow_mel");
        else snprintf(key, sizeof key, "t2w_%d_flow_mel", k);
        npy_array ref;
        st = golden_load(ctx, key, &ref);
        if (st != COSY_OK) break;
        int frames = ref.ndim > 0 ? (int)ref.shape[ref.ndim - 1] : 0;
        if (frames < 1 || ref.numel % frames != 0 || kept < 0 || 2 * offset > frames) {
            st = cosy_error(COSY_ERR_FORMAT, "%s: %s has %d frames, call %d needs at least %d (stream_schedule token_offset %d)",
                            case_name(ctx), key, frames, k, 2 * offset, offset);
            npy_free(&ref);
            break;
        }
        int C = (int)(ref.numel / frames), first = frames - kept;
        if (first != 2 * offset) {
            fprintf(stderr, "golden: %s: call %d kept %d frames, the reference has %d from frame %d\n", key, k, kept, frames - 2 * offset,
                    2 * offset);
            first = 2 * offset;
        }
        float *spliced = malloc(sizeof(float) * (size_t)ref.numel);
        if (!spliced) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        for (int c = 0; spliced && c < C; c++) {
            memcpy(spliced + (size_t)c * frames, ref.f32 + (size_t)c * frames, sizeof(float) * (size_t)first);
            for (int f = first; f < frames; f++) {
                int j = f - first;
                spliced[(size_t)c * frames + f] = j < kept ? mel[(size_t)c * kept + j] : NAN;
            }
        }
        if (spliced) golden_check(ctx, key, spliced, ref.numel);
        free(spliced);
        npy_free(&ref);
    }
    cosy_token2wav_free(t2w);
    return st;
}

cosy_status golden_t2w_stream(golden_ctx *ctx);
cosy_status golden_t2w_stream(golden_ctx *ctx)
{
    npy_array sched, tokens;
    COSY_TRY(golden_load_int(ctx, "stream_schedule", &sched));
    cosy_status st = golden_load_int(ctx, "speech_token", &tokens);
    if (st != COSY_OK) memset(&tokens, 0, sizeof tokens);
    if (st == COSY_OK) st = check_schedule(ctx, &sched, &tokens);
    cosy_voice *voice = NULL;
    if (st == COSY_OK) st = golden_fixture_voice(ctx, &voice);
    int n_calls = st == COSY_OK ? (int)sched.shape[0] : 0;
    call_draws *draws = calloc((size_t)n_calls + 1, sizeof *draws);
    cosy_rng_source **sources = calloc((size_t)n_calls + 1, sizeof *sources);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(tokens.numel + 1));
    golden_collected c;
    memset(&c, 0, sizeof c);
    c.cap = tokens.numel * 2 * 480 + 1;
    c.audio = malloc(sizeof(float) * (size_t)c.cap);
    if (st == COSY_OK && (!draws || !sources || !ids || !c.audio)) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int k = 0; st == COSY_OK && k < n_calls; k++) {
        st = load_draws(ctx, k, &draws[k]);
        sources[k] = &draws[k].source;
    }
    for (int64_t i = 0; st == COSY_OK && i < tokens.numel; i++) ids[i] = (int32_t)tokens.i64[i];
    cosy_session *s = NULL;
    if (st == COSY_OK) {
        cosy_session_params p = cosy_session_default_params();
        p.stream = 1;
        p.reference_final = 1;
        p.on_audio = golden_collect;
        p.user = &c;
        st = cosy_session_create_tokens(ctx->model, voice, &p, ids, (int)tokens.numel, sources, n_calls, &s);
    }
    if (st == COSY_OK) st = cosy_session_wait(s);
    for (int k = 0; st == COSY_OK && k < n_calls; k++)
        if (draws[k].replay.status != COSY_OK) st = draws[k].replay.status;
    if (st == COSY_OK && c.overflow)
        st = cosy_error(COSY_ERR_INTERNAL, "%s: the session made more audio or chunks than %lld tokens give", case_name(ctx),
                        (long long)tokens.numel);
    if (st == COSY_OK && c.chunks != n_calls)
        st = cosy_error(COSY_ERR_INTERNAL, "the session made %d chunks, the official loop %d calls", c.chunks, n_calls);
    for (int k = 0; st == COSY_OK && k < n_calls; k++) {
        char key[64];
        snprintf(key, sizeof key, "t2w_%d_wav", k);
        int64_t from = k ? c.chunk_end[k - 1] : 0;
        golden_check(ctx, key, c.audio + from, c.chunk_end[k] - from);
    }
    if (st == COSY_OK) golden_check(ctx, "t2w_stream_wav", c.audio, c.n);
    if (st == COSY_OK) st = check_incremental_mels(ctx, &sched, ids, voice);
    cosy_session_free(s);
    for (int k = 0; draws && k < n_calls; k++) free_draws(&draws[k]);
    free(draws);
    free(sources);
    free(ids);
    free(c.audio);
    cosy_voice_free(voice);
    npy_free(&sched);
    npy_free(&tokens);
    return st;
}
