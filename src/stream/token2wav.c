/* token2wav.c — one utterance's speech tokens to audio, call by call (see token2wav.h). */
#include "stream/token2wav.h"
#include "core/clock.h"
#include "core/arena.h"
#include "core/error.h"
#include "model/flow/flow.h"
#include "model/flow/flow_stream.h"
#include "model/hift/hift.h"
#include "model/hift/cv3_causal_hift.h"
#include "model/model.h"
#include "model/hift/t2w_hift.h"
#include "model/voice/voice.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cosy_token2wav {
    cosy_model *model;
    cosy_flow *flow;
    cosy_hift *hift;
    cosy_t2w_hift *vocoder;
    /* CosyVoice3: CausalHiFT as a stream (no mel cache, source cache or cross-fade) */
    int v3;
    cosy_cv3_hift *hift3;
    cosy_cv3_hift_stream *vocoder3;
    cosy_token2wav_params params;
    /* the voice's flow prompt (copied: the caller's voice may go away) */
    int32_t *prompt_tokens;
    int n_prompt;
    float *prompt_feat;
    float *embedding;
    /* the incremental flow: the voice's prompt work (made once) and this utterance's state */
    cosy_flow_prompt *fprompt;
    cosy_flow_stream *fstream;
    /* per utterance */
    int started, last_n, last_offset;
    int window;              /* the flow's attention window in frames (context_seconds), 0 = none */
    int emitted;             /* tokens whose mel has gone to the vocoder */
    /* buffers */
    float *mel_all;          /* flow output for all frames of a call [80][n_all] */
    int cap_frames, n_all;
    float *mel_kept;         /* frames from 2*offset [80][n_kept] */
    int n_kept, cap_kept;
    float *audio;
    int cap_audio;
    cosy_hift_rng rng;
    cosy_rng_source rng_source, *rng_override;
    cosy_t2w_call_info info;
    /* golden replay: the vocoder's mel from here instead of the flow ([80][replay_frames], frame 0 = token 0) */
    const float *replay_mel;
    int replay_frames;
};

cosy_token2wav_params cosy_token2wav_default_params(void)
{
    cosy_token2wav_params p;
    memset(&p, 0, sizeof p);
    p.seed = 0;
    p.context_seconds = 10;
    return p;
}

void cosy_token2wav_free(cosy_token2wav *t)
{
    if (!t) return;
    cosy_t2w_hift_free(t->vocoder);
    cosy_cv3_hift_stream_free(t->vocoder3);
    cosy_flow_stream_free(t->fstream);
    cosy_flow_prompt_free(t->fprompt);
    free(t->prompt_tokens);
    free(t->prompt_feat);
    free(t->embedding);
    cosy_aligned_free(t->mel_all);
    cosy_aligned_free(t->mel_kept);
    cosy_aligned_free(t->audio);
    free(t);
}

cosy_status cosy_token2wav_create(cosy_model *model, const cosy_voice *voice, const cosy_token2wav_params *params,
                                  cosy_token2wav **out)
{
    *out = NULL;
    if (!model || !voice) return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: a model and a voice are required");
    COSY_TRY(cosy_voice_validate(voice, model));
    cosy_token2wav *t = calloc(1, sizeof *t);
    if (!t) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    t->model = model;
    t->params = params ? *params : cosy_token2wav_default_params();
    const cosy_hparams *hp = &model->hp;
    t->v3 = hp->family == COSY_FAMILY_COSYVOICE3;
    cosy_status st = cosy_flow_get(model, &t->flow);
    if (st == COSY_OK) st = t->v3 ? cosy_cv3_hift_get(model, &t->hift3) : cosy_hift_get(model, &t->hift);
    if (st == COSY_OK && t->v3 && t->params.overlap_tokens)
        st = cosy_error(COSY_ERR_INVALID_ARG, "token2wav: CosyVoice3 has no cross-fade, so no overlap (got %d tokens)", t->params.overlap_tokens);
    if (st == COSY_OK && (t->params.overlap_tokens < 0 || t->params.overlap_tokens > 1000))
        st = cosy_error(COSY_ERR_INVALID_ARG, "token2wav: overlap_tokens %d (0..1000)", t->params.overlap_tokens);
    if (st == COSY_OK && (t->params.context_seconds < 0 || t->params.context_seconds > 3600))
        st = cosy_error(COSY_ERR_INVALID_ARG, "token2wav: context_seconds %d (0..3600; 0 = unlimited)", t->params.context_seconds);
    if (st == COSY_OK) {
        /* seconds -> frames, in whole attention chunks */
        const int chunk2 = hp->est_static_chunk, per_s = hp->token_frame_rate * hp->token_mel_ratio;
        t->window = (t->params.context_seconds * per_s + chunk2 - 1) / chunk2 * chunk2;
        if (t->v3) t->window = 0; /* the DiT stream attends to every left chunk (no window yet) */
    }
    int cache_frames = COSY_T2W_MEL_CACHE;
    if (st == COSY_OK && hp->token_mel_ratio * t->params.overlap_tokens > cache_frames) cache_frames = hp->token_mel_ratio * t->params.overlap_tokens;
    if (st == COSY_OK)
        st = t->v3 ? cosy_cv3_hift_stream_create(t->hift3, &t->vocoder3) : cosy_t2w_hift_create_cached(t->hift, 0, cache_frames, &t->vocoder);
    if (st == COSY_OK) {
        t->n_prompt = voice->n_flow_prompt_tokens;
        t->prompt_tokens = malloc(sizeof(int32_t) * (size_t)(t->n_prompt + 1));
        t->prompt_feat = malloc(sizeof(float) * (size_t)(voice->n_prompt_frames * hp->flow_output_size + 1));
        t->embedding = malloc(sizeof(float) * (size_t)voice->embed_dim);
        if (!t->prompt_tokens || !t->prompt_feat || !t->embedding) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    if (st == COSY_OK) {
        if (t->n_prompt) memcpy(t->prompt_tokens, voice->flow_prompt_tokens, sizeof(int32_t) * (size_t)t->n_prompt);
        if (voice->n_prompt_frames)
            memcpy(t->prompt_feat, voice->prompt_feat, sizeof(float) * (size_t)(voice->n_prompt_frames * hp->flow_output_size));
        memcpy(t->embedding, voice->flow_embedding, sizeof(float) * (size_t)voice->embed_dim);
        cosy_hift_rng_seed(&t->rng, t->params.seed);
        t->rng_source = cosy_hift_rng_source(&t->rng);
    }
    if (st != COSY_OK) {
        cosy_token2wav_free(t);
        return st;
    }
    *out = t;
    return COSY_OK;
}

cosy_status cosy_token2wav_prepare(cosy_token2wav *t)
{
    if (t->params.stateless_flow || t->fprompt) return COSY_OK;
    return cosy_flow_prompt_get(t->flow, t->prompt_tokens, t->n_prompt, t->prompt_feat, t->embedding, &t->fprompt);
}

void cosy_token2wav_reset(cosy_token2wav *t)
{
    cosy_flow_stream_free(t->fstream);
    t->fstream = NULL;
    t->started = 0;
    t->last_n = t->last_offset = t->emitted = 0;
    if (t->vocoder) cosy_t2w_hift_reset(t->vocoder);
    if (t->vocoder3) cosy_cv3_hift_stream_reset(t->vocoder3);
}

void cosy_token2wav_set_rng(cosy_token2wav *t, cosy_rng_source *rng) { t->rng_override = rng; }

void cosy_token2wav_set_mel_replay(cosy_token2wav *t, const float *mel, int n_frames)
{
    t->replay_mel = mel;
    t->replay_frames = mel ? n_frames : 0;
}

const float *cosy_token2wav_last_mel(const cosy_token2wav *t, int *n)
{
    *n = t->n_kept;
    return t->mel_kept;
}

const float *cosy_token2wav_last_flow_mel(const cosy_token2wav *t, int *n)
{
    *n = t->n_all;
    return t->mel_all;
}

const cosy_t2w_hift *cosy_token2wav_vocoder(const cosy_token2wav *t) { return t->vocoder; }

void cosy_token2wav_last_info(const cosy_token2wav *t, cosy_t2w_call_info *info) { *info = t->info; }

size_t cosy_token2wav_cache_bytes(const cosy_token2wav *t)
{
    return (t->fprompt ? cosy_flow_prompt_bytes(t->fprompt) : 0) + (t->fstream ? cosy_flow_stream_bytes(t->fstream) : 0);
}

static cosy_status ensure(float **buf, int *cap, int need)
{
    if (need <= *cap) return COSY_OK;
    int n = need + need / 2 + 64;
    float *p = cosy_aligned_alloc(sizeof(float) * (size_t)n);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "token2wav: out of memory (%d values)", n);
    cosy_aligned_free(*buf);
    *buf = p;
    *cap = n;
    return COSY_OK;
}

cosy_status cosy_token2wav_call(cosy_token2wav *t, const int32_t *tokens, int n, int token_offset, int finalize,
                                const float **audio, int *n_samples)
{
    const cosy_hparams *hp = &t->model->hp;
    const int C = hp->flow_output_size, ratio = hp->token_mel_ratio, look = hp->pre_lookahead_len;
    *audio = NULL;
    *n_samples = 0;
    if (!tokens && n > 0) return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: no tokens");
    if (n < 0 || token_offset < 0) return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: negative token count or offset");
    int n_audio_tokens = finalize ? n : n - look;
    if (token_offset > n_audio_tokens || (!finalize && token_offset == n_audio_tokens))
        return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: offset %d leaves no tokens to vocode among %d (%s)", token_offset, n,
                          finalize ? "final call" : "plus 3 look-ahead");
    if (t->started && (n < t->last_n || token_offset < t->last_offset))
        return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: calls must extend the utterance (got %d tokens from offset %d after %d from %d)",
                          n, token_offset, t->last_n, t->last_offset);
    if (n == 0 && finalize && !t->started) {
        /* an empty utterance: nothing to say */
        return COSY_OK;
    }

    /* flow */
    double t0 = cosy_now_ms();
    /* CosyVoice2: chunk-causal unless reference_final; CosyVoice3: the official full-attention final call
     * unless chunk_causal_final */
    int full_attention = finalize && (token_offset == 0 || (t->v3 ? !t->params.chunk_causal_final : t->params.reference_final));
    int first = ratio * token_offset, kept = 0;
    if (full_attention || t->params.stateless_flow) {
        /* the reference's call: the flow over every token so far, keeping the frames from the offset */
        cosy_flow_stream_free(t->fstream);
        t->fstream = NULL;
        int total_frames = cosy_flow_output_frames(t->flow, n, finalize);
        COSY_TRY(ensure(&t->mel_all, &t->cap_frames, C * (total_frames > 0 ? total_frames : 1)));
        int frames = 0;
        if (n > 0) {
            if (!full_attention && t->window > 0)
                COSY_TRY(cosy_flow_inference_window(t->flow, tokens, n, t->prompt_tokens, t->n_prompt, t->prompt_feat, t->embedding, finalize,
                                                    t->window, t->mel_all, &frames));
            else
                COSY_TRY(cosy_flow_inference(t->flow, tokens, n, t->prompt_tokens, t->n_prompt, t->prompt_feat, t->embedding,
                                             full_attention ? 0 : 1, finalize, t->mel_all, &frames));
        }
        t->n_all = frames;
        kept = frames - first;
        if (kept < 0) kept = 0;
        COSY_TRY(ensure(&t->mel_kept, &t->cap_kept, C * (kept > 0 ? kept : 1)));
        for (int c = 0; c < C; c++)
            memcpy(t->mel_kept + (size_t)c * kept, t->mel_all + (size_t)c * frames + first, sizeof(float) * (size_t)kept);
    } else {
        /* chunk-causal at linear cost: only the frames not final yet are computed (same mel) */
        t->n_all = 0;
        COSY_TRY(cosy_token2wav_prepare(t));
        if (!t->fstream) {
            COSY_TRY(cosy_flow_stream_create(t->flow, t->fprompt, &t->fstream));
            COSY_TRY(cosy_flow_stream_set_window(t->fstream, t->window));
        }
        int want = ratio * (n_audio_tokens - token_offset);
        COSY_TRY(ensure(&t->mel_kept, &t->cap_kept, C * (want > 0 ? want : 1)));
        if (n > 0) COSY_TRY(cosy_flow_stream_step(t->fstream, tokens, n, token_offset, finalize, t->mel_kept, &kept));
        if (finalize) {
            cosy_flow_stream_free(t->fstream);
            t->fstream = NULL;
        }
    }
    t->n_kept = kept;
    double t1 = cosy_now_ms();

    /* vocoder */
    /* frames of a rewound window (overlap) that the vocoder already has are not vocoded again here:
     * its cache re-covers them and cross-fades (CosyVoice3: they are dropped) */
    int skip = t->started && t->emitted > token_offset ? ratio * (t->emitted - token_offset) : 0;
    if (skip > kept) skip = kept;
    int got = 0;
    if (t->replay_mel) {
        /* the vocoder gets the replayed frames [first, first + kept) in place of the flow's */
        if (first + kept > t->replay_frames)
            return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: the replayed mel has %d frames, the call needs %d", t->replay_frames, first + kept);
        for (int c = 0; c < C; c++)
            memcpy(t->mel_kept + (size_t)c * kept, t->replay_mel + (size_t)c * t->replay_frames + first, sizeof(float) * (size_t)kept);
    }
    if (t->v3) {
        /* CosyVoice3Model.token2wav re-runs CausalHiFT on all kept mel so far and emits what is new
         * (the last 8 frames wait on a non-final call): the stream computes exactly that, once */
        int64_t max = cosy_cv3_hift_stream_max_samples(t->vocoder3, kept - skip);
        if (max > 0x7fffffff) return cosy_error(COSY_ERR_INVALID_ARG, "token2wav: %d mel frames in one call is too many", kept);
        COSY_TRY(ensure(&t->audio, &t->cap_audio, max > 0 ? (int)max : 1));
        int64_t n_out = 0;
        if (kept - skip > 0 || (finalize && t->started))
            COSY_TRY(cosy_cv3_hift_stream_push(t->vocoder3, t->mel_kept + skip, kept - skip, kept, finalize, t->audio, &n_out));
        got = (int)n_out;
    } else {
        int max = cosy_t2w_hift_max_samples(t->vocoder, kept);
        COSY_TRY(ensure(&t->audio, &t->cap_audio, max > 0 ? max : 1));
        cosy_rng_source *rng = t->rng_override ? t->rng_override : &t->rng_source;
        if (kept - skip > 0 || (finalize && t->started))
            COSY_TRY(cosy_t2w_hift_push(t->vocoder, t->mel_kept + skip, kept - skip, kept, finalize, rng, t->audio, &got));
    }
    double t2 = cosy_now_ms();

    t->info.flow_ms = t1 - t0;
    t->info.vocoder_ms = t2 - t1;
    t->info.mel_frames = kept;
    t->info.full_attention = full_attention;
    t->started = !finalize;
    t->emitted = finalize ? 0 : (token_offset + kept / ratio > t->emitted ? token_offset + kept / ratio : t->emitted);
    t->last_n = finalize ? 0 : n;
    t->last_offset = finalize ? 0 : token_offset;
    *audio = t->audio;
    *n_samples = got;
    return COSY_OK;
}
