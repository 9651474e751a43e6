/*
 * lm_run.c — the LM decode driver: Qwen2LM.inference / inference_wrapper and
 * Qwen2LM.inference_bistream (cosyvoice/llm/llm.py at ace7c47) as a state machine advanced one
 * event per cosy_lm_run_step (see lm.h for the contract and the choices on the reference's quirks).
 *
 * The reference is a Python generator; its loops become phases here:
 *   WAIT       non-bistream, the text is not complete yet
 *   DECODE     non-bistream decode loop (one forward + one sample per step)
 *   BI_TEXT    bistream: the body of `for this_text in text` (consume one text token, interleave
 *              prompt speech, decide whether decoding can start)
 *   BI_DECODE  bistream: the inner `while True` loop, left on a fill token
 *   FLUSH      bistream: the final loop after the text generator is exhausted, until eos
 * "pending" is the reference's lm_input: the positions to feed at the next forward, kept as
 * (kind, id) pairs so traces can report exactly what was fed.
 *
 * CosyVoice3LM inherits both loops; its differences are the LM's ids (cosy_lm_eos, _fill, _is_stop,
 * _min_len_mask) and the <|endofprompt|> rule (the `if self.__class__.__name__ == 'CosyVoice3LM'`
 * branches of inference / inference_bistream), handled at begin and start_decode.
 */
#include "model/lm/lm.h"
#include "core/clock.h"
#include "core/error.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { PH_WAIT, PH_DECODE, PH_BI_TEXT, PH_BI_DECODE, PH_FLUSH, PH_DONE, PH_FAILED } run_phase;

typedef struct {
    int32_t *v;
    int n, cap;
} ivec;

typedef struct {
    cosy_lm_kind *kinds;
    int32_t *ids;
    int n, cap;
} feed_list;

struct cosy_lm_run {
    cosy_lm *lm;
    const cosy_hparams *hp;
    cosy_lm_state *st;
    int own_state;
    cosy_lm_run_config cfg;
    ivec prompt_text, prompt_speech;
    cosy_ras_sampler ras;
    int own_ras;

    pthread_mutex_t lock;   /* guards `queue` and `text_ended` (push/end may come from other threads) */
    ivec queue;             /* pushed text tokens; [queue_head, n) not yet consumed */
    int queue_head, text_ended;
    atomic_int cancelled;

    run_phase phase;
    cosy_status failure;
    feed_list pending;
    ivec out;               /* every sampled id, fill included (out_tokens) */
    ivec text_cache;        /* bistream: text not yet fed; [text_head, n) */
    int text_head;
    int speech_used;        /* bistream: prompt speech already interleaved */
    int next_fill;
    int step_index, min_len, max_len, n_tts_text, emitted;
    int eos, fill, S, V;
    int32_t endofprompt;    /* CosyVoice3: the text id the prompt must hold; -1 for CosyVoice2 */
    float *logp;
    double t_begin;
    cosy_lm_timings timings;
};

static cosy_status ivec_push(ivec *v, const int32_t *x, int n)
{
    if (n > 0 && v->n + n > v->cap) {
        int cap = v->cap ? v->cap : 64;
        while (cap < v->n + n) cap *= 2;
        int32_t *p = realloc(v->v, sizeof(int32_t) * (size_t)cap);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "lm run: out of memory");
        v->v = p;
        v->cap = cap;
    }
    if (n > 0) memcpy(v->v + v->n, x, sizeof(int32_t) * (size_t)n);
    v->n += n;
    return COSY_OK;
}

static cosy_status feed_push(feed_list *f, cosy_lm_kind kind, const int32_t *ids, int n)
{
    if (f->n + n > f->cap) {
        int cap = f->cap ? f->cap : 64;
        while (cap < f->n + n) cap *= 2;
        cosy_lm_kind *k = realloc(f->kinds, sizeof(cosy_lm_kind) * (size_t)cap);
        if (k) f->kinds = k;
        int32_t *i = k ? realloc(f->ids, sizeof(int32_t) * (size_t)cap) : NULL;
        if (!i) return cosy_error(COSY_ERR_NOMEM, "lm run: out of memory");
        f->ids = i;
        f->cap = cap;
    }
    for (int j = 0; j < n; j++) {
        f->kinds[f->n + j] = kind;
        f->ids[f->n + j] = ids ? ids[j] : -1;
    }
    f->n += n;
    return COSY_OK;
}

cosy_lm_run_config cosy_lm_run_default_config(void)
{
    cosy_lm_run_config c;
    memset(&c, 0, sizeof c);
    c.seed = 1234;
    return c;
}

static cosy_status check_text(const cosy_lm *lm, const int32_t *ids, int n, const char *what)
{
    int vocab = cosy_lm_hparams(lm)->lm_text_vocab;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "lm run: %s token %d (at %d) is out of range (text vocabulary %d)", what, (int)ids[i], i, vocab);
    return COSY_OK;
}

void cosy_lm_run_free(cosy_lm_run *run)
{
    if (!run) return;
    if (run->own_state) cosy_lm_state_free(run->st);
    if (run->own_ras) cosy_ras_free(&run->ras);
    pthread_mutex_destroy(&run->lock);
    free(run->prompt_text.v);
    free(run->prompt_speech.v);
    free(run->queue.v);
    free(run->pending.kinds);
    free(run->pending.ids);
    free(run->out.v);
    free(run->text_cache.v);
    free(run->logp);
    free(run);
}

cosy_status cosy_lm_run_begin(cosy_lm *lm, const cosy_lm_run_config *cfg, cosy_lm_run **out)
{
    *out = NULL;
    const cosy_hparams *hp = cosy_lm_hparams(lm);
    if (!cfg) return cosy_error(COSY_ERR_INVALID_ARG, "lm run: no configuration");
    if (cfg->n_prompt_text < 0 || cfg->n_prompt_speech < 0 || (cfg->n_prompt_text && !cfg->prompt_text) ||
        (cfg->n_prompt_speech && !cfg->prompt_speech) || cfg->max_tokens < 0 || cfg->min_tokens < 0)
        return cosy_error(COSY_ERR_INVALID_ARG, "lm run: bad prompt lengths, max_tokens or min_tokens");
    COSY_TRY(check_text(lm, cfg->prompt_text, cfg->n_prompt_text, "prompt text"));
    for (int i = 0; i < cfg->n_prompt_speech; i++)
        if (cfg->prompt_speech[i] < 0 || cfg->prompt_speech[i] >= hp->speech_token_size)
            return cosy_error(COSY_ERR_INVALID_ARG, "lm run: prompt speech token %d (at %d) is outside 0..%d", (int)cfg->prompt_speech[i], i,
                              hp->speech_token_size - 1);
    if (cfg->state && cosy_lm_state_lm(cfg->state) != lm)
        return cosy_error(COSY_ERR_INVALID_ARG, "lm run: the given state belongs to another model");

    cosy_lm_run *run = calloc(1, sizeof *run);
    if (!run) return cosy_error(COSY_ERR_NOMEM, "lm run: out of memory");
    pthread_mutex_init(&run->lock, NULL);
    run->lm = lm;
    run->hp = hp;
    run->cfg = *cfg;
    run->S = hp->speech_token_size;
    run->eos = cosy_lm_eos(lm);
    run->fill = cosy_lm_fill(lm);
    run->V = cosy_lm_vocab(lm);
    run->endofprompt = hp->family == COSY_FAMILY_COSYVOICE3 ? hp->lm_endofprompt : -1;
    run->t_begin = cosy_now_ms();
    run->timings.first_token_ms = -1;
    cosy_status st = ivec_push(&run->prompt_text, cfg->prompt_text, cfg->n_prompt_text);
    if (st == COSY_OK) st = ivec_push(&run->prompt_speech, cfg->prompt_speech, cfg->n_prompt_speech);
    run->cfg.prompt_text = NULL;
    run->cfg.prompt_speech = NULL;
    run->logp = malloc(sizeof(float) * (size_t)cosy_lm_vocab(lm));
    if (st == COSY_OK && !run->logp) st = cosy_error(COSY_ERR_NOMEM, "lm run: out of memory");
    if (st == COSY_OK && !cfg->sample) {
        st = cosy_ras_init(&run->ras, cosy_lm_vocab(lm), hp->top_p, hp->top_k, hp->win_size, hp->tau_r, cfg->seed);
        run->own_ras = st == COSY_OK;
        run->cfg.sample = cosy_ras_sample_fn;
        run->cfg.sample_ctx = &run->ras;
    }
    if (st == COSY_OK) {
        if (cfg->state) {
            run->st = cfg->state;
            cosy_lm_state_reset(run->st);
        } else {
            st = cosy_lm_state_create(lm, 1 + cfg->n_prompt_text + cfg->n_prompt_speech + 256, &run->st);
            run->own_state = st == COSY_OK;
        }
    }
    if (st == COSY_OK && cfg->bistream) {
        /* text_cache starts as the prompt text; next_fill_index = (int(P / 15) + 1) * 15 - P.
         * CosyVoice3: the prompt text up to and including the first <|endofprompt|> goes right after
         * sos in the first feed; only the rest starts text_cache */
        int head = 0;
        if (run->endofprompt >= 0) {
            while (head < run->prompt_text.n && run->prompt_text.v[head] != run->endofprompt) head++;
            if (head == run->prompt_text.n)
                st = cosy_error(COSY_ERR_INVALID_ARG, "lm run: a CosyVoice3 bistream prompt text must contain <|endofprompt|> (id %d), as "
                                "CosyVoice3LM.inference_bistream asserts", (int)run->endofprompt);
            head++;
        }
        run->phase = PH_BI_TEXT;
        if (st == COSY_OK) st = feed_push(&run->pending, COSY_LM_SOS, NULL, 1);
        if (st == COSY_OK) st = feed_push(&run->pending, COSY_LM_TEXT, run->prompt_text.v, head);
        if (st == COSY_OK) st = ivec_push(&run->text_cache, run->prompt_text.v + head, run->prompt_text.n - head);
        int P = run->prompt_speech.n, M = hp->mix_speech;
        run->next_fill = (P / M + 1) * M - P;
    } else {
        run->phase = PH_WAIT;
    }
    if (st != COSY_OK) {
        cosy_lm_run_free(run);
        return st;
    }
    *out = run;
    return COSY_OK;
}

cosy_status cosy_lm_run_push_text(cosy_lm_run *run, const int32_t *ids, int n)
{
    if (n < 0 || (n && !ids)) return cosy_error(COSY_ERR_INVALID_ARG, "lm run: bad text");
    COSY_TRY(check_text(run->lm, ids, n, "text"));
    pthread_mutex_lock(&run->lock);
    cosy_status st = run->text_ended ? cosy_error(COSY_ERR_INVALID_ARG, "lm run: text pushed after end_text") : ivec_push(&run->queue, ids, n);
    pthread_mutex_unlock(&run->lock);
    return st;
}

cosy_status cosy_lm_run_end_text(cosy_lm_run *run)
{
    pthread_mutex_lock(&run->lock);
    run->text_ended = 1;
    pthread_mutex_unlock(&run->lock);
    return COSY_OK;
}

void cosy_lm_run_cancel(cosy_lm_run *run) { atomic_store(&run->cancelled, 1); }

void cosy_lm_run_timings(const cosy_lm_run *run, cosy_lm_timings *out) { *out = run->timings; }

const int32_t *cosy_lm_run_outputs(const cosy_lm_run *run, int *n)
{
    *n = run->out.n;
    return run->out.v;
}

/* ------------------------------------------------------------------ steps */

/* Feeds `pending` and leaves the log-probabilities in run->logp. */
static cosy_status forward(cosy_lm_run *run)
{
    if (atomic_load(&run->cancelled)) return cosy_error(COSY_ERR_CANCELLED, "lm run: cancelled");
    feed_list *p = &run->pending;
    if (p->n == 0) return cosy_error(COSY_ERR_INTERNAL, "lm run: nothing to feed");
    double t0 = cosy_now_ms();
    COSY_TRY(cosy_lm_feed(run->st, p->kinds, p->ids, p->n, run->logp));
    double dt = cosy_now_ms() - t0;
    if (p->n > 1) {
        run->timings.prefill_ms += dt;
        run->timings.prefill_positions += p->n;
    } else {
        run->timings.decode_ms += dt;
        run->timings.decode_steps++;
    }
    run->timings.forwards++;
    if (run->cfg.trace) run->cfg.trace(run->cfg.trace_ctx, p->kinds, p->ids, p->n, run->logp, cosy_lm_vocab(run->lm));
    return COSY_OK;
}

static cosy_status sample(cosy_lm_run *run, int32_t *top)
{
    double t0 = cosy_now_ms();
    int V = cosy_lm_vocab(run->lm);
    COSY_TRY(run->cfg.sample(run->cfg.sample_ctx, run->logp, V, run->out.v, run->out.n, top));
    run->timings.sample_ms += cosy_now_ms() - t0;
    if (*top < 0 || *top >= V) return cosy_error(COSY_ERR_INTERNAL, "lm run: the sampler returned %d (vocabulary %d)", (int)*top, V);
    return COSY_OK;
}

/* The next input is the speech embedding of the token just emitted. */
static cosy_status emit(cosy_lm_run *run, int32_t top, cosy_lm_event *ev)
{
    run->pending.n = 0;
    COSY_TRY(feed_push(&run->pending, COSY_LM_SPEECH, &top, 1));
    run->emitted++;
    run->timings.tokens++;
    if (run->timings.first_token_ms < 0) run->timings.first_token_ms = cosy_now_ms() - run->t_begin;
    ev->kind = COSY_LM_EVENT_TOKEN;
    ev->token = top;
    return COSY_OK;
}

static int at_token_limit(cosy_lm_run *run)
{
    return run->cfg.max_tokens > 0 && run->emitted >= run->cfg.max_tokens;
}

/* Qwen2LM.inference: build [sos, prompt_text ++ text, task_id, prompt_speech] and the length limits. */
static int holds(const ivec *v, int32_t id)
{
    for (int i = 0; i < v->n; i++)
        if (v->v[i] == id) return 1;
    return 0;
}

static cosy_status start_decode(cosy_lm_run *run)
{
    if (run->endofprompt >= 0 && !holds(&run->prompt_text, run->endofprompt) && !holds(&run->queue, run->endofprompt))
        return cosy_error(COSY_ERR_INVALID_ARG, "lm run: a CosyVoice3 prompt text (or, without one, the text) must contain "
                          "<|endofprompt|> (id %d), as CosyVoice3LM.inference asserts", (int)run->endofprompt);
    run->n_tts_text = run->queue.n;
    run->min_len = run->n_tts_text * run->hp->min_token_text_ratio;
    run->max_len = run->n_tts_text * run->hp->max_token_text_ratio;
    feed_list *p = &run->pending;
    p->n = 0;
    COSY_TRY(feed_push(p, COSY_LM_SOS, NULL, 1));
    COSY_TRY(feed_push(p, COSY_LM_TEXT, run->prompt_text.v, run->prompt_text.n));
    COSY_TRY(feed_push(p, COSY_LM_TEXT, run->queue.v, run->queue.n));
    COSY_TRY(feed_push(p, COSY_LM_TASK, NULL, 1));
    COSY_TRY(feed_push(p, COSY_LM_SPEECH, run->prompt_speech.v, run->prompt_speech.n));
    /* room for the prefill and a typical utterance now; the cache doubles if the LM talks longer */
    int expect = p->n + (run->max_len < 1024 ? run->max_len : 1024) + 1;
    COSY_TRY(cosy_lm_state_reserve(run->st, expect < COSY_LM_MAX_POSITIONS ? expect : COSY_LM_MAX_POSITIONS));
    run->step_index = 0;
    run->phase = PH_DECODE;
    return COSY_OK;
}

/* cfg.min_tokens (benchmarks): no special id, so no stop, before that many tokens are out */
static void mask_stops_below_min(cosy_lm_run *run)
{
    if (run->emitted < run->cfg.min_tokens)
        for (int id = run->S; id < run->V; id++) run->logp[id] = -INFINITY;
}

static cosy_status decode_step(cosy_lm_run *run, cosy_lm_event *ev)
{
    if (run->step_index >= run->max_len || at_token_limit(run)) {
        run->timings.truncated = 1;
        run->phase = PH_DONE;
        ev->kind = COSY_LM_EVENT_DONE;
        return COSY_OK;
    }
    COSY_TRY(forward(run));
    /* sampling_ids(ignore_eos=True) masks index speech_token_size: eos in CosyVoice2, sos in CosyVoice3 */
    if (run->step_index < run->min_len) run->logp[cosy_lm_min_len_mask(run->lm)] = -INFINITY;
    mask_stops_below_min(run);
    int32_t top;
    COSY_TRY(sample(run, &top));
    run->step_index++;
    if (cosy_lm_is_stop(run->lm, top)) { /* stop_token_ids: ends without being emitted */
        run->phase = PH_DONE;
        ev->kind = COSY_LM_EVENT_DONE;
        return COSY_OK;
    }
    COSY_TRY(ivec_push(&run->out, &top, 1));
    return emit(run, top, ev);
}

/* One text token through the body of `for this_text in text`. Returns 1 when decoding can start. */
static cosy_status bistream_take_text(cosy_lm_run *run, int32_t token, int *start)
{
    const int mt = run->hp->mix_text, ms = run->hp->mix_speech;
    *start = 0;
    COSY_TRY(ivec_push(&run->text_cache, &token, 1));
    /* prompt speech not used up: append [5 text, 15 speech] groups while 5 text tokens are there */
    while (run->speech_used < run->prompt_speech.n) {
        if (run->text_cache.n - run->text_head < mt) break;
        int ns = run->prompt_speech.n - run->speech_used < ms ? run->prompt_speech.n - run->speech_used : ms;
        COSY_TRY(feed_push(&run->pending, COSY_LM_TEXT, run->text_cache.v + run->text_head, mt));
        COSY_TRY(feed_push(&run->pending, COSY_LM_SPEECH, run->prompt_speech.v + run->speech_used, ns));
        run->text_head += mt;
        run->speech_used += ns;
    }
    if (run->speech_used < run->prompt_speech.n) return COSY_OK; /* wait for more text */
    int after_fill = run->out.n > 0 && run->out.v[run->out.n - 1] == run->fill;
    if (after_fill || (run->out.n == 0 && run->pending.n == 1)) {
        if (run->text_cache.n - run->text_head < mt) return COSY_OK; /* wait for more text */
        /* after a fill the 5 text embeddings REPLACE lm_input (the fill is never fed) */
        if (after_fill) run->pending.n = 0;
        COSY_TRY(feed_push(&run->pending, COSY_LM_TEXT, run->text_cache.v + run->text_head, mt));
        run->text_head += mt;
    }
    *start = 1;
    return COSY_OK;
}

/* Phase B: one forward; a fill (forced or sampled) returns to the text loop without an event. */
static cosy_status bistream_decode_step(cosy_lm_run *run, cosy_lm_event *ev, int *got_event)
{
    *got_event = 0;
    if (at_token_limit(run)) {
        run->timings.truncated = 1;
        run->phase = PH_DONE;
        ev->kind = COSY_LM_EVENT_DONE;
        *got_event = 1;
        return COSY_OK;
    }
    COSY_TRY(forward(run));
    int32_t top;
    if (run->next_fill != -1 && run->out.n == run->next_fill) {
        top = run->fill;
    } else {
        run->logp[cosy_lm_min_len_mask(run->lm)] = -INFINITY; /* ignore_eos=True */
        if (!run->cfg.strict_reference) /* Q3: the reference raises on any other special id here */
            for (int id = run->S; id < run->V; id++)
                if (id != run->fill) run->logp[id] = -INFINITY;
        COSY_TRY(sample(run, &top));
    }
    if (top == run->fill) run->next_fill = run->out.n + run->hp->mix_speech + 1;
    COSY_TRY(ivec_push(&run->out, &top, 1));
    if (top >= run->S) {
        if (top == run->fill) {
            run->phase = PH_BI_TEXT; /* pending still holds what was just fed (quirk Q1) */
            return COSY_OK;
        }
        return cosy_error(COSY_ERR_INTERNAL, "lm run: the LM produced token %d while interleaving (the reference raises here too)", (int)top);
    }
    *got_event = 1;
    return emit(run, top, ev);
}

/* After the text generator is exhausted: lm_input ++ remaining text ++ task_id. */
static cosy_status bistream_start_flush(cosy_lm_run *run)
{
    int stale = run->out.n > 0 && run->out.v[run->out.n - 1] == run->fill;
    if (stale && run->cfg.drop_stale_embedding) run->pending.n = 0; /* already in the cache */
    COSY_TRY(feed_push(&run->pending, COSY_LM_TEXT, run->text_cache.v + run->text_head, run->text_cache.n - run->text_head));
    run->text_head = run->text_cache.n;
    COSY_TRY(feed_push(&run->pending, COSY_LM_TASK, NULL, 1));
    run->phase = PH_FLUSH;
    return COSY_OK;
}

static cosy_status flush_step(cosy_lm_run *run, cosy_lm_event *ev)
{
    long limit = (long)run->hp->max_token_text_ratio * run->n_tts_text;
    if (run->emitted >= limit || at_token_limit(run)) {
        run->timings.truncated = 1;
        run->phase = PH_DONE;
        ev->kind = COSY_LM_EVENT_DONE;
        return COSY_OK;
    }
    COSY_TRY(forward(run));
    if (!run->cfg.strict_reference) /* Q3: the reference raises on any special id but eos during the flush */
        for (int id = run->S; id < run->V; id++)
            if (id != run->eos) run->logp[id] = -INFINITY;
    mask_stops_below_min(run);
    int32_t top;
    COSY_TRY(sample(run, &top)); /* ignore_eos=False */
    COSY_TRY(ivec_push(&run->out, &top, 1));
    if (top >= run->S) {
        if (top == run->eos) {
            run->phase = PH_DONE;
            ev->kind = COSY_LM_EVENT_DONE;
            return COSY_OK;
        }
        return cosy_error(COSY_ERR_INTERNAL, "lm run: the LM produced token %d after the text ended (the reference raises here too)", (int)top);
    }
    return emit(run, top, ev);
}

static cosy_status step(cosy_lm_run *run, cosy_lm_event *ev)
{
    for (;;) {
        if (atomic_load(&run->cancelled)) return cosy_error(COSY_ERR_CANCELLED, "lm run: cancelled");
        switch (run->phase) {
        case PH_DONE:
            ev->kind = COSY_LM_EVENT_DONE;
            return COSY_OK;
        case PH_FAILED:
            return cosy_error(run->failure, "lm run: an earlier step failed");
        case PH_WAIT: {
            pthread_mutex_lock(&run->lock);
            int ended = run->text_ended;
            pthread_mutex_unlock(&run->lock);
            if (!ended) {
                ev->kind = COSY_LM_EVENT_NEED_TEXT;
                return COSY_OK;
            }
            COSY_TRY(start_decode(run)); /* the queue is final once the text ended */
            break;
        }
        case PH_DECODE: return decode_step(run, ev);
        case PH_BI_TEXT: {
            pthread_mutex_lock(&run->lock);
            int have = run->queue_head < run->queue.n, ended = run->text_ended;
            int32_t token = have ? run->queue.v[run->queue_head++] : 0;
            pthread_mutex_unlock(&run->lock);
            if (have) {
                run->n_tts_text++;
                int start;
                COSY_TRY(bistream_take_text(run, token, &start));
                if (start) run->phase = PH_BI_DECODE;
            } else if (ended) {
                COSY_TRY(bistream_start_flush(run));
            } else {
                ev->kind = COSY_LM_EVENT_NEED_TEXT;
                return COSY_OK;
            }
            break;
        }
        case PH_BI_DECODE: {
            int got;
            COSY_TRY(bistream_decode_step(run, ev, &got));
            if (got) return COSY_OK;
            break;
        }
        case PH_FLUSH: return flush_step(run, ev);
        }
    }
}

cosy_status cosy_lm_run_step(cosy_lm_run *run, cosy_lm_event *ev)
{
    ev->kind = COSY_LM_EVENT_DONE;
    ev->token = -1;
    cosy_status st = step(run, ev);
    if (st != COSY_OK && st != COSY_ERR_CANCELLED && run->phase != PH_FAILED) {
        run->failure = st;
        run->phase = PH_FAILED;
    }
    return st;
}
