/*
 * session.c — one synthesis request: text in, audio chunks out, as CosyVoice2's
 * inference_*() + CosyVoice2Model.tts() do, with the LM and token2wav running concurrently.
 *
 * Two threads per session, meeting at a token queue:
 *   LM thread        text → (normalise, split into sentences, tokenise) → one LM call per sentence
 *                    (bistream: one call fed piece by piece) → speech tokens appended to the
 *                    sentence's segment;
 *   token2wav thread waits for the segment to hold enough tokens for the next chunk of the schedule
 *                    (stream/schedule.h), runs token2wav (flow + HiFT, stream/token2wav.h) and hands
 *                    the audio out (callback, or a buffer read with cosy_session_read).
 * They wake each other through one condition variable — never by polling (the reference sleeps
 * 0.1 s in a loop, model.py tts()). Every sentence starts a fresh token2wav utterance and schedule,
 * as the reference calls tts() per sentence; the hop state is the session's own (the reference
 * keeps it on the shared model, so one request's growth leaks into the next).
 * The LM input of each mode is built by stream/lm_prompt.h; CosyVoice3's silent-token filter
 * (stream/silent_filter.h) sits between the LM and the token queue, as in CosyVoice3Model.llm_job.
 */
#include "cosy.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/flow/flow.h"
#include "model/hift/hift.h"
#include "model/lm/lm.h"
#include "model/model.h"
#include "model/voice/voice.h"
#include "stream/lm_prompt.h"
#include "stream/schedule.h"
#include "stream/session_internal.h"
#include "stream/silent_filter.h"
#include "stream/token2wav.h"
#include "text/normalize.h"
#include "text/tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int32_t *tokens;
    int n, cap;
    int done;          /* the LM has finished this sentence */
} segment;

struct cosy_session {
    cosy_model *model;
    cosy_session_params p;
    char *instruct;
    cosy_lm *lm;
    const cosy_tokenizer *tok;
    cosy_token2wav *t2w;
    cosy_lm_prompt prompt;        /* the LM input of the mode (stream/lm_prompt.h) */
    int n_flow_prompt;
    /* the first COSY_SESSION_CALL_LOG token2wav calls (cosy_session_calls), written by the token2wav thread */
    cosy_session_call call_log[COSY_SESSION_CALL_LOG];
    int n_call_log;

    pthread_mutex_t mu;
    pthread_cond_t cv;            /* any change: text, tokens, audio, end, cancel */
    /* text */
    char *text;
    size_t text_len, text_cap;
    int text_ended;
    unsigned text_version;        /* bumped by every push/end, so the LM thread never misses one */
    int spoke;                    /* bistream: a piece with something to say has gone to the LM */
    int32_t *held;                /* bistream: ids of the silent pieces before it, fed with it */
    int n_held, cap_held;
    cosy_lm_run *run;             /* the LM call in progress (bistream: the only one) */
    /* sentences */
    segment *segs;
    int n_segs, cap_segs;
    int lm_finished;
    /* audio for cosy_session_read */
    float *out;
    int64_t out_len, out_cap, out_read;
    int finished;                 /* the token2wav thread has ended */
    int vocoding;                 /* the token2wav thread is making a chunk */
    int t2w_idle_seg;             /* >= 0: the token2wav thread waits for tokens of this segment ... */
    int t2w_seen;                 /* ... and has looked at its first t2w_seen tokens */
    /* outcome */
    cosy_status status;
    char error[512];
    int cancelled;
    pthread_t lm_thread, t2w_thread;
    int lm_started, t2w_started;
    /* token input (tests, golden): no LM thread */
    cosy_rng_source **call_rngs;
    int n_call_rngs, next_call;
    /* timings */
    double t_start;
    cosy_timings tm;
};

cosy_session_params cosy_session_default_params(void)
{
    cosy_session_params p;
    memset(&p, 0, sizeof p);
    p.mode = COSY_MODE_ZERO_SHOT;
    p.stream = 1;
    p.text_frontend = 1;
    p.strategy = COSY_CHUNK_DEFAULT;
    p.chunk_tokens = 25;
    p.context_seconds = 10;
    return p;
}

/* Records the first failure and stops everything. Call with the lock held. */
static void fail_locked(cosy_session *s, cosy_status st, const char *message)
{
    if (s->status == COSY_OK) {
        s->status = st;
        snprintf(s->error, sizeof s->error, "%s", message);
    }
    s->cancelled = 1;
    if (s->run) cosy_lm_run_cancel(s->run);
    pthread_cond_broadcast(&s->cv);
}

static void fail(cosy_session *s, cosy_status st)
{
    char message[512];
    snprintf(message, sizeof message, "%s", cosy_last_error());
    pthread_mutex_lock(&s->mu);
    fail_locked(s, st, message);
    pthread_mutex_unlock(&s->mu);
}

static cosy_status session_status(cosy_session *s)
{
    if (s->status != COSY_OK) return cosy_error(s->status, "%s", s->error);
    return COSY_OK;
}

/* ------------------------------------------------------------------ segments */

static segment *add_segment_locked(cosy_session *s)
{
    if (s->n_segs == s->cap_segs) {
        int cap = s->cap_segs ? s->cap_segs * 2 : 8;
        segment *n = realloc(s->segs, sizeof *n * (size_t)cap);
        if (!n) return NULL;
        s->segs = n;
        s->cap_segs = cap;
    }
    segment *g = &s->segs[s->n_segs++];
    memset(g, 0, sizeof *g);
    return g;
}

static cosy_status append_token_locked(segment *g, int32_t token)
{
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 256;
        int32_t *n = realloc(g->tokens, sizeof *n * (size_t)cap);
        if (!n) return cosy_error(COSY_ERR_NOMEM, "session: out of memory for speech tokens");
        g->tokens = n;
        g->cap = cap;
    }
    g->tokens[g->n++] = token;
    return COSY_OK;
}

/* ------------------------------------------------------------------ LM thread */

static cosy_status run_lm(cosy_session *s, const int32_t *text, int n_text, int bistream, int sentence)
{
    cosy_lm_run_config cfg = cosy_lm_run_default_config();
    cfg.prompt_text = s->prompt.prompt_text;
    cfg.n_prompt_text = s->prompt.n_prompt_text;
    cfg.prompt_speech = s->prompt.prompt_speech;
    cfg.n_prompt_speech = s->prompt.n_prompt_speech;
    /* llm_job's filter: per LM call, as the reference's counter lives in llm_job */
    cosy_silent_filter silent;
    cosy_silent_filter_init(&silent, &s->model->hp);
    cfg.bistream = bistream;
    cfg.seed = s->p.seed + 0x9e3779b97f4a7c15ull * (uint64_t)sentence;
    cfg.max_tokens = s->p.max_speech_tokens;
    cfg.min_tokens = s->p.min_speech_tokens;
    cosy_lm_run *run;
    COSY_TRY(cosy_lm_run_begin(s->lm, &cfg, &run));
    pthread_mutex_lock(&s->mu);
    segment *g = add_segment_locked(s);
    int seg_index = s->n_segs - 1;
    s->run = run;
    int cancelled = s->cancelled;
    unsigned seen = s->text_version;
    if (bistream && s->text_len > 0) {
        /* pieces pushed before the thread started are already in the run (push_text) */
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    cosy_status st = g ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "session: out of memory");
    if (cancelled) st = cosy_error(COSY_ERR_CANCELLED, "session cancelled");
    if (st == COSY_OK && !bistream) {
        int32_t *full = NULL;
        int n_full = 0;
        st = cosy_lm_prompt_text(&s->prompt, text, n_text, &full, &n_full);
        if (st == COSY_OK) st = cosy_lm_run_push_text(run, full, n_full);
        if (st == COSY_OK) st = cosy_lm_run_end_text(run);
        free(full);
    }
    while (st == COSY_OK) {
        cosy_lm_event ev;
        st = cosy_lm_run_step(run, &ev);
        if (st != COSY_OK) break;
        if (ev.kind == COSY_LM_EVENT_DONE) break;
        pthread_mutex_lock(&s->mu);
        if (ev.kind == COSY_LM_EVENT_TOKEN) {
            if (!cosy_silent_filter_keep(&silent, ev.token)) { /* the LM saw it; token2wav does not */
                s->tm.silent_dropped++;
                pthread_mutex_unlock(&s->mu);
                continue;
            }
            st = append_token_locked(&s->segs[seg_index], ev.token);
            pthread_cond_broadcast(&s->cv);
            /* chunks first: both threads share the model's cores, and a chunk being made is audio a
             * listener is waiting for, while further tokens only serve later chunks. The token2wav
             * thread first says whether this token starts a chunk (so the next forward never runs
             * alongside the chunk: two pools on two cores slow each other far more than they add up) */
            while (!s->p.concurrent_lm && !s->cancelled &&
                   (s->vocoding || (s->t2w_idle_seg == seg_index && s->t2w_seen < s->segs[seg_index].n)))
                pthread_cond_wait(&s->cv, &s->mu);
        } else { /* NEED_TEXT: sleep until a push or the end of the text */
            while (s->text_version == seen && !s->cancelled) pthread_cond_wait(&s->cv, &s->mu);
            seen = s->text_version;
            if (s->cancelled) st = cosy_error(COSY_ERR_CANCELLED, "session cancelled");
        }
        pthread_mutex_unlock(&s->mu);
    }
    cosy_lm_timings lt;
    cosy_lm_run_timings(run, &lt);
    pthread_mutex_lock(&s->mu);
    s->run = NULL;
    s->segs[seg_index].done = 1;
    s->tm.lm_prefill_ms += lt.prefill_ms;
    s->tm.lm_decode_ms += lt.decode_ms + lt.sample_ms;
    s->tm.speech_tokens += s->segs[seg_index].n;
    s->tm.sentences++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    cosy_lm_run_free(run);
    return st;
}

static cosy_status lm_non_bistream(cosy_session *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->text_ended && !s->cancelled) pthread_cond_wait(&s->cv, &s->mu);
    int cancelled = s->cancelled;
    pthread_mutex_unlock(&s->mu);
    if (cancelled) return cosy_error(COSY_ERR_CANCELLED, "session cancelled");
    /* the text is complete and no longer written: read it without the lock */
    double t0 = cosy_now_ms();
    cosy_text_list pieces;
    memset(&pieces, 0, sizeof pieces);
    cosy_status st;
    /* sentences over the official splitter's 80 tokens are cut (text/normalize.h), so no LM call
     * and no sentence's speech grows without bound; without the frontend the text is only cut */
    if (s->p.text_frontend)
        st = cosy_text_normalize_bounded_tn(s->tok, s->text ? s->text : "", s->text_len,
                                            s->p.text_no_wetext ? COSY_TEXT_TN_NONE : COSY_TEXT_TN_WETEXT, &pieces);
    else st = cosy_text_bound(s->tok, s->text ? s->text : "", s->text_len, &pieces);
    if (st == COSY_OK && pieces.n == 0) /* cosy_session_end_text refuses silent text; this is its backstop */
        st = cosy_error(COSY_ERR_INVALID_ARG, "session: nothing to say: the text normalises to no sentence");
    cosy_token_ids *ids = NULL;
    if (st == COSY_OK && pieces.n > 0) {
        ids = calloc((size_t)pieces.n, sizeof *ids);
        if (!ids) st = cosy_error(COSY_ERR_NOMEM, "session: out of memory");
    }
    for (int i = 0; st == COSY_OK && i < pieces.n; i++) st = cosy_tokenizer_encode(s->tok, pieces.items[i], strlen(pieces.items[i]), &ids[i]);
    double t1 = cosy_now_ms();
    pthread_mutex_lock(&s->mu);
    s->tm.frontend_ms += t1 - t0;
    for (int i = 0; st == COSY_OK && i < pieces.n; i++) s->tm.text_tokens += (int)ids[i].n;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; st == COSY_OK && i < pieces.n; i++) st = run_lm(s, ids[i].ids, (int)ids[i].n, 0, i);
    for (int i = 0; ids && i < pieces.n; i++) cosy_token_ids_free(&ids[i]);
    free(ids);
    cosy_text_list_free(&pieces);
    return st;
}

static void *lm_thread_main(void *arg)
{
    cosy_session *s = arg;
    cosy_status st = s->p.bistream ? run_lm(s, NULL, 0, 1, 0) : lm_non_bistream(s);
    if (st != COSY_OK) fail(s, st);
    pthread_mutex_lock(&s->mu);
    s->lm_finished = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------ token2wav thread */

static cosy_status emit(cosy_session *s, const float *audio, int n)
{
    if (n <= 0) return COSY_OK;
    if (s->p.on_audio) {
        pthread_mutex_lock(&s->mu);
        if (s->tm.chunks == 0 || s->tm.first_audio_ms <= 0) s->tm.first_audio_ms = cosy_now_ms() - s->t_start;
        s->tm.audio_seconds += (double)n / s->model->hp.sample_rate;
        s->tm.chunks++;
        pthread_mutex_unlock(&s->mu);
        s->p.on_audio(s->p.user, audio, n);
        return COSY_OK;
    }
    pthread_mutex_lock(&s->mu);
    if (s->out_len + n > s->out_cap) {
        int64_t cap = s->out_cap ? s->out_cap : 48000;
        while (cap < s->out_len + n) cap *= 2;
        float *p = realloc(s->out, sizeof(float) * (size_t)cap);
        if (!p) {
            pthread_mutex_unlock(&s->mu);
            return cosy_error(COSY_ERR_NOMEM, "session: out of memory for audio");
        }
        s->out = p;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, audio, sizeof(float) * (size_t)n);
    s->out_len += n;
    if (s->tm.chunks == 0 || s->tm.first_audio_ms <= 0) s->tm.first_audio_ms = cosy_now_ms() - s->t_start;
    s->tm.audio_seconds += (double)n / s->model->hp.sample_rate;
    s->tm.chunks++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return COSY_OK;
}

static cosy_status schedule_init(const cosy_session *s, cosy_schedule *sched)
{
    COSY_TRY(cosy_schedule_init(sched, s->p.strategy, s->p.chunk_tokens, s->p.overlap_tokens, s->p.max_hop_tokens,
                                s->model->hp.pre_lookahead_len, s->n_flow_prompt));
    return cosy_schedule_set_first_chunk(sched, s->p.first_chunk_tokens);
}

static cosy_status vocode_segment(cosy_session *s, int index)
{
    cosy_schedule sched;
    if (s->p.stream) COSY_TRY(schedule_init(s, &sched));
    cosy_token2wav_reset(s->t2w);
    int32_t *tokens = NULL;
    int cap = 0;
    cosy_status st = COSY_OK;
    for (;;) {
        cosy_schedule_call call;
        int got = 0;
        pthread_mutex_lock(&s->mu);
        for (;;) {
            if (s->cancelled) break;
            segment *g = &s->segs[index];
            if (s->p.stream) got = cosy_schedule_next(&sched, g->n, g->done, &call);
            else if (g->done) {
                call.end = g->n;
                call.offset = 0;
                call.finalize = 1;
                got = 1;
            }
            if (got) {
                s->t2w_idle_seg = -1;
                s->vocoding = 1; /* before the lock is let go: the LM thread waits for it */
                if (call.end > cap) {
                    int ncap = call.end + 1024;
                    int32_t *n = realloc(tokens, sizeof *n * (size_t)ncap);
                    if (!n) {
                        st = cosy_error(COSY_ERR_NOMEM, "session: out of memory");
                        break;
                    }
                    tokens = n;
                    cap = ncap;
                }
                if (call.end > 0) memcpy(tokens, g->tokens, sizeof(int32_t) * (size_t)call.end);
                break;
            }
            s->t2w_idle_seg = index;
            s->t2w_seen = g->n;
            pthread_cond_broadcast(&s->cv);
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (!got) s->t2w_idle_seg = -1;
        int cancelled = s->cancelled;
        pthread_mutex_unlock(&s->mu);
        if (st != COSY_OK) break;
        if (cancelled) {
            st = cosy_error(COSY_ERR_CANCELLED, "session cancelled");
            break;
        }
        if (s->call_rngs) {
            if (s->next_call >= s->n_call_rngs) {
                st = cosy_error(COSY_ERR_INTERNAL, "session: no recorded draws for call %d", s->next_call);
                break;
            }
            cosy_token2wav_set_rng(s->t2w, s->call_rngs[s->next_call++]);
        }
        const float *audio;
        int n_audio;
        st = cosy_token2wav_call(s->t2w, tokens, call.end, call.offset, call.finalize, &audio, &n_audio);
        pthread_mutex_lock(&s->mu);
        s->vocoding = 0;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (st != COSY_OK) break;
        cosy_t2w_call_info info;
        cosy_token2wav_last_info(s->t2w, &info);
        pthread_mutex_lock(&s->mu);
        if (s->n_call_log < COSY_SESSION_CALL_LOG) {
            cosy_session_call *c = &s->call_log[s->n_call_log++];
            c->segment = index;
            c->offset = call.offset;
            c->end = call.end;
            c->finalize = call.finalize;
            c->full_attention = info.full_attention;
            c->samples = n_audio;
        }
        s->tm.flow_ms += info.flow_ms;
        s->tm.vocoder_ms += info.vocoder_ms;
        pthread_mutex_unlock(&s->mu);
        st = emit(s, audio, n_audio);
        if (st != COSY_OK || call.finalize) break;
    }
    pthread_mutex_lock(&s->mu); /* an error after a chunk was taken must not leave the LM waiting */
    s->vocoding = 0;
    s->t2w_idle_seg = -1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(tokens);
    return st;
}

static void *t2w_thread_main(void *arg)
{
    cosy_session *s = arg;
    /* the voice's prompt work for the incremental flow, while the LM thread prefills */
    cosy_status st = cosy_token2wav_prepare(s->t2w);
    for (int index = 0; st == COSY_OK; index++) {
        pthread_mutex_lock(&s->mu);
        while (index >= s->n_segs && !s->lm_finished && !s->cancelled) pthread_cond_wait(&s->cv, &s->mu);
        int have = index < s->n_segs, cancelled = s->cancelled;
        pthread_mutex_unlock(&s->mu);
        if (cancelled) {
            st = cosy_error(COSY_ERR_CANCELLED, "session cancelled");
            break;
        }
        if (!have) break; /* the LM has finished and every sentence is vocoded */
        st = vocode_segment(s, index);
    }
    if (st != COSY_OK) fail(s, st);
    pthread_mutex_lock(&s->mu);
    s->finished = 1;
    s->tm.total_ms = cosy_now_ms() - s->t_start;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ------------------------------------------------------------------ API */

static cosy_status check_params(const cosy_session_params *p)
{
    if ((unsigned)p->mode > COSY_MODE_SFT) return cosy_error(COSY_ERR_INVALID_ARG, "session: unknown mode %d", (int)p->mode);
    if (p->mode == COSY_MODE_INSTRUCT && (!p->instruct || !p->instruct[0]))
        return cosy_error(COSY_ERR_INVALID_ARG, "session: instruct mode needs an instruction");
    if (p->max_speech_tokens < 0) return cosy_error(COSY_ERR_INVALID_ARG, "session: max_speech_tokens is negative");
    if (p->min_speech_tokens < 0) return cosy_error(COSY_ERR_INVALID_ARG, "session: min_speech_tokens is negative");
    if (p->first_chunk_tokens < 0 || p->first_chunk_tokens > 10000)
        return cosy_error(COSY_ERR_INVALID_ARG, "session: first_chunk_tokens %d is out of range (0..10000)", p->first_chunk_tokens);
    return COSY_OK;
}

static void session_destroy(cosy_session *s)
{
    if (!s) return;
    cosy_token2wav_free(s->t2w);
    for (int i = 0; i < s->n_segs; i++) free(s->segs[i].tokens);
    free(s->segs);
    free(s->text);
    free(s->held);
    free(s->out);
    free(s->instruct);
    cosy_lm_prompt_free(&s->prompt);
    free(s->call_rngs);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Everything but the threads. */
static cosy_status session_init(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params, int need_lm,
                                cosy_session **out)
{
    *out = NULL;
    if (!model || !voice) return cosy_error(COSY_ERR_INVALID_ARG, "session: a model and a voice are required");
    cosy_session_params p = params ? *params : cosy_session_default_params();
    COSY_TRY(check_params(&p));
    COSY_TRY(cosy_voice_validate(voice, model));
    cosy_session *s = calloc(1, sizeof *s);
    if (s) s->t2w_idle_seg = -1;
    if (!s) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->model = model;
    s->p = p;
    s->t_start = cosy_now_ms();
    cosy_status st = COSY_OK;
    if (p.instruct && !(s->instruct = strdup(p.instruct))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    s->p.instruct = s->instruct;
    if (st == COSY_OK && need_lm) st = cosy_lm_get(model, &s->lm);
    if (st == COSY_OK && need_lm) st = cosy_tokenizer_get(model, &s->tok);
    /* the LM prompt of each mode (cosyvoice/cli/frontend.py frontend_* functions) */
    if (st == COSY_OK && need_lm) st = cosy_lm_prompt_build(&model->hp, s->tok, p.mode, p.bistream, voice, s->instruct, &s->prompt);
    /* SFT speakers have no prompt audio: the flow gets the embedding only */
    cosy_voice flow_voice = *voice;
    if (p.mode == COSY_MODE_SFT) {
        flow_voice.n_flow_prompt_tokens = 0;
        flow_voice.flow_prompt_tokens = NULL;
        flow_voice.n_prompt_frames = 0;
        flow_voice.prompt_feat = NULL;
    }
    s->n_flow_prompt = flow_voice.n_flow_prompt_tokens;
    cosy_silent_filter probe_filter; /* what every LM call's filter will watch */
    cosy_silent_filter_init(&probe_filter, &model->hp);
    s->tm.silent_filter = probe_filter.n_silent;
    cosy_token2wav_params tp = cosy_token2wav_default_params();
    tp.reference_final = p.reference_final;
    tp.chunk_causal_final = p.chunk_causal_final;
    tp.stateless_flow = p.stateless_flow;
    tp.context_seconds = p.context_seconds;
    tp.overlap_tokens = p.stream && p.strategy != COSY_CHUNK_DEFAULT && p.overlap_tokens > 0 ? p.overlap_tokens : 0;
    tp.seed = p.seed;
    if (st == COSY_OK) st = cosy_token2wav_create(model, &flow_voice, &tp, &s->t2w);
    if (st == COSY_OK && p.stream) {
        cosy_schedule probe; /* reject bad chunk parameters now, not on the engine's thread */
        st = schedule_init(s, &probe);
    }
    if (st != COSY_OK) {
        session_destroy(s);
        return st;
    }
    *out = s;
    return COSY_OK;
}

static cosy_status start_threads(cosy_session *s, int with_lm)
{
    if (with_lm) {
        if (pthread_create(&s->lm_thread, NULL, lm_thread_main, s) != 0) return cosy_error(COSY_ERR_NOMEM, "session: cannot start a thread");
        s->lm_started = 1;
    }
    if (pthread_create(&s->t2w_thread, NULL, t2w_thread_main, s) != 0) {
        cosy_session_cancel(s);
        return cosy_error(COSY_ERR_NOMEM, "session: cannot start a thread");
    }
    s->t2w_started = 1;
    return COSY_OK;
}

cosy_status cosy_session_create(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params, cosy_session **out)
{
    COSY_TRY(session_init(model, voice, params, 1, out));
    cosy_status st = start_threads(*out, 1);
    if (st != COSY_OK) {
        cosy_session_free(*out);
        *out = NULL;
    }
    return st;
}

cosy_status cosy_session_create_tokens(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params,
                                       const int32_t *tokens, int n, cosy_rng_source **call_rngs, int n_call_rngs,
                                       cosy_session **out)
{
    return cosy_session_create_tokens_mel(model, voice, params, tokens, n, call_rngs, n_call_rngs, NULL, 0, out);
}

cosy_status cosy_session_create_tokens_mel(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params,
                                           const int32_t *tokens, int n, cosy_rng_source **call_rngs, int n_call_rngs,
                                           const float *replay_mel, int replay_frames, cosy_session **out)
{
    COSY_TRY(session_init(model, voice, params, 0, out));
    cosy_session *s = *out;
    cosy_status st = COSY_OK;
    if (replay_mel) cosy_token2wav_set_mel_replay(s->t2w, replay_mel, replay_frames);
    segment *g = add_segment_locked(s);
    if (!g) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int i = 0; st == COSY_OK && i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= model->hp.speech_token_size)
            st = cosy_error(COSY_ERR_INVALID_ARG, "session: speech token %d at %d is outside 0..%d", tokens[i], i, model->hp.speech_token_size - 1);
        else st = append_token_locked(g, tokens[i]);
    }
    if (st == COSY_OK) {
        g->done = 1;
        s->lm_finished = 1;
        s->text_ended = 1;
        s->tm.speech_tokens = n;
        s->tm.sentences = 1;
        if (call_rngs && n_call_rngs > 0) {
            s->call_rngs = malloc(sizeof *s->call_rngs * (size_t)n_call_rngs);
            if (!s->call_rngs) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            else memcpy(s->call_rngs, call_rngs, sizeof *s->call_rngs * (size_t)n_call_rngs);
            s->n_call_rngs = n_call_rngs;
        }
    }
    if (st == COSY_OK) st = start_threads(s, 0);
    if (st != COSY_OK) {
        cosy_session_free(s);
        *out = NULL;
    }
    return st;
}

static cosy_status hold_ids_locked(cosy_session *s, const int32_t *ids, int n)
{
    if (n > (1 << 20) - s->n_held)
        return cosy_error(COSY_ERR_INVALID_ARG, "session: over %d text tokens of pieces with nothing to say", 1 << 20);
    if (s->n_held + n > s->cap_held) {
        int cap = s->cap_held ? s->cap_held : 64;
        while (cap < s->n_held + n) cap *= 2;
        int32_t *p = realloc(s->held, sizeof *p * (size_t)cap);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "session: out of memory for text");
        s->held = p;
        s->cap_held = cap;
    }
    if (n > 0) memcpy(s->held + s->n_held, ids, sizeof *ids * (size_t)n);
    s->n_held += n;
    return COSY_OK;
}

cosy_status cosy_session_push_text(cosy_session *s, const char *text, size_t len)
{
    if (!s || (!text && len)) return cosy_error(COSY_ERR_INVALID_ARG, "session: no text");
    if (len > (64u << 20)) return cosy_error(COSY_ERR_INVALID_ARG, "session: a text piece of %zu bytes is too long", len);
    pthread_mutex_lock(&s->mu);
    cosy_status st = COSY_OK;
    if (s->text_ended) st = cosy_error(COSY_ERR_INVALID_ARG, "session: text pushed after the end of the text");
    else if (s->status != COSY_OK) st = session_status(s);
    else if (!s->lm) st = cosy_error(COSY_ERR_INVALID_ARG, "session: this session takes no text");
    pthread_mutex_unlock(&s->mu);
    if (st != COSY_OK) return st;
    if (s->p.bistream) {
        /* each piece is tokenised on its own (frontend._extract_text_token_generator) and goes
         * to the LM now; the LM thread may not have begun its run yet, so wait for it. Pieces with
         * nothing to say (white space, punctuation) before the first that has are held back and fed
         * just before it: the LM consumes text one token at a time in push order, so the output is
         * the same, and a stream that never says anything is refused at its end with no audio. */
        double t0 = cosy_now_ms();
        cosy_token_ids ids;
        memset(&ids, 0, sizeof ids);
        st = cosy_tokenizer_encode(s->tok, text, len, &ids);
        int silent = len == 0 || cosy_text_is_silent(text, len);
        double t1 = cosy_now_ms();
        pthread_mutex_lock(&s->mu);
        if (st == COSY_OK && !s->spoke && silent) {
            st = hold_ids_locked(s, ids.ids, (int)ids.n);
            s->tm.frontend_ms += t1 - t0;
            pthread_mutex_unlock(&s->mu);
            cosy_token_ids_free(&ids);
            return st;
        }
        while (st == COSY_OK && !s->run && !s->cancelled && !s->lm_finished) pthread_cond_wait(&s->cv, &s->mu);
        if (st == COSY_OK && s->run && !s->spoke && s->n_held > 0) st = cosy_lm_run_push_text(s->run, s->held, s->n_held);
        if (st == COSY_OK && s->run) st = cosy_lm_run_push_text(s->run, ids.ids, (int)ids.n);
        else if (st == COSY_OK) st = session_status(s) != COSY_OK ? session_status(s) : cosy_error(COSY_ERR_CANCELLED, "session cancelled");
        if (st == COSY_OK) {
            s->tm.frontend_ms += t1 - t0;
            s->tm.text_tokens += (int)ids.n + (s->spoke ? 0 : s->n_held);
            s->spoke = 1;
            s->n_held = 0;
            s->text_version++;
            pthread_cond_broadcast(&s->cv);
        }
        pthread_mutex_unlock(&s->mu);
        cosy_token_ids_free(&ids);
        return st;
    }
    pthread_mutex_lock(&s->mu);
    if (s->text_len + len + 1 > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 1024;
        while (cap < s->text_len + len + 1) cap *= 2;
        char *n = realloc(s->text, cap);
        if (!n) st = cosy_error(COSY_ERR_NOMEM, "session: out of memory for text");
        else {
            s->text = n;
            s->text_cap = cap;
        }
    }
    if (st == COSY_OK) {
        memcpy(s->text + s->text_len, text, len);
        s->text_len += len;
        s->text[s->text_len] = 0;
        s->text_version++;
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Empty text, or text with nothing to say, is refused rather than answered with no audio: a caller
 * that sent nothing by mistake learns it at once. Call with the lock held; sets the error message. */
static cosy_status check_something_to_say_locked(cosy_session *s)
{
    if (s->p.bistream) {
        if (s->spoke) return COSY_OK;
        return cosy_error(COSY_ERR_INVALID_ARG, "session: nothing to say: every text piece was empty or only white space, "
                          "punctuation and symbols");
    }
    const char *t = s->text ? s->text : "";
    size_t i = 0;
    while (i < s->text_len) {
        uint32_t cp;
        size_t k = cosy_utf8_next(t + i, s->text_len - i, &cp);
        if (cp == COSY_UTF8_INVALID || !cosy_unicode_is_py_space(cp)) break;
        i += k;
    }
    if (i == s->text_len) return cosy_error(COSY_ERR_INVALID_ARG, "session: the text is empty%s: there is nothing to say",
                                            s->text_len ? " (only white space)" : "");
    if (!cosy_text_is_silent(t, s->text_len)) return COSY_OK;
    size_t shown = 0; /* up to 40 bytes of it, whole characters */
    while (i + shown < s->text_len) {
        uint32_t cp;
        size_t k = cosy_utf8_next(t + i + shown, s->text_len - i - shown, &cp);
        if (shown + k > 40) break;
        shown += k;
    }
    return cosy_error(COSY_ERR_INVALID_ARG, "session: nothing to say: the text has only punctuation and symbols (\"%.*s%s\")", (int)shown,
                      t + i, i + shown < s->text_len ? "..." : "");
}

cosy_status cosy_session_end_text(cosy_session *s)
{
    if (!s) return cosy_error(COSY_ERR_INVALID_ARG, "session: NULL");
    pthread_mutex_lock(&s->mu);
    cosy_status st = COSY_OK;
    if (s->text_ended) st = cosy_error(COSY_ERR_INVALID_ARG, "session: the text has already ended");
    else if (s->lm && (st = check_something_to_say_locked(s)) != COSY_OK) {
        /* the session fails with this message: wait and read return it too */
        char message[512];
        snprintf(message, sizeof message, "%s", cosy_last_error());
        s->text_ended = 1;
        fail_locked(s, st, message);
        pthread_mutex_unlock(&s->mu);
        return cosy_error(st, "%s", message);
    } else if (s->p.bistream) {
        while (!s->run && !s->cancelled && !s->lm_finished) pthread_cond_wait(&s->cv, &s->mu);
        if (s->run) st = cosy_lm_run_end_text(s->run);
    }
    if (st == COSY_OK) {
        s->text_ended = 1;
        s->text_version++;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

cosy_status cosy_session_read(cosy_session *s, float *buf, int capacity, int *n_samples)
{
    *n_samples = 0;
    if (!s || !buf || capacity <= 0) return cosy_error(COSY_ERR_INVALID_ARG, "session_read: bad arguments");
    if (s->p.on_audio) return cosy_error(COSY_ERR_INVALID_ARG, "session_read: this session delivers audio through its callback");
    pthread_mutex_lock(&s->mu);
    while (s->out_read == s->out_len && !s->finished && s->status == COSY_OK) pthread_cond_wait(&s->cv, &s->mu);
    cosy_status st = COSY_OK;
    int64_t avail = s->out_len - s->out_read;
    if (avail > 0) {
        int n = avail < capacity ? (int)avail : capacity;
        memcpy(buf, s->out + s->out_read, sizeof(float) * (size_t)n);
        s->out_read += n;
        *n_samples = n;
    } else if (s->status != COSY_OK) {
        st = session_status(s);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

cosy_status cosy_session_wait(cosy_session *s)
{
    if (!s) return cosy_error(COSY_ERR_INVALID_ARG, "session: NULL");
    pthread_mutex_lock(&s->mu);
    while (!s->finished) pthread_cond_wait(&s->cv, &s->mu);
    cosy_status st = session_status(s);
    pthread_mutex_unlock(&s->mu);
    return st;
}

void cosy_session_cancel(cosy_session *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    if (!s->finished) fail_locked(s, COSY_ERR_CANCELLED, "session cancelled");
    pthread_mutex_unlock(&s->mu);
}

void cosy_session_timings(cosy_session *s, cosy_timings *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->tm;
    if (!s->finished) out->total_ms = cosy_now_ms() - s->t_start;
    out->rtf = out->audio_seconds > 0 ? out->total_ms / 1000.0 / out->audio_seconds : 0.0;
    pthread_mutex_unlock(&s->mu);
}

void cosy_session_free(cosy_session *s)
{
    if (!s) return;
    cosy_session_cancel(s);
    if (s->lm_started) pthread_join(s->lm_thread, NULL);
    if (s->t2w_started) pthread_join(s->t2w_thread, NULL);
    session_destroy(s);
}

int cosy_session_calls(cosy_session *s, cosy_session_call *out, int cap)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n_call_log < cap ? s->n_call_log : cap;
    if (n > 0) memcpy(out, s->call_log, sizeof *out * (size_t)n);
    pthread_mutex_unlock(&s->mu);
    return n;
}
