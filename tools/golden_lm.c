/*
 * golden_lm.c — the LM fixture cases of `cosy golden` (see golden.h), CosyVoice2 and CosyVoice3:
 *   lm_inference    Qwen2LM / CosyVoice3LM.inference with teacher forcing, zero-shot layout: the
 *                   prefill (embeddings; kinds and ids where declared), the log-probabilities of
 *                   every decode step when the tokens of lm_tokens are fed back (the last, a stop
 *                   id, ends the call), and the steps on which ignore_eos masked index
 *                   speech_token_size (step < min_len = 2·Lt; lm_ignore_eos where declared).
 *   lm_instruct (v3), lm_instruct2, lm_cross_lingual (v2)
 *                   the same in the instruct2 and cross-lingual layouts, from the voice's transcript
 *                   and speech tokens (which those modes must keep from the LM) or the instruction.
 *   ras_candidates  nucleus_sampling's candidate ids and probabilities for each lm_logp row.
 *   lm_bistream     inference_bistream with the sampler replaced by the values of
 *                   lm_bi_sampler_returns: what each forward call fed (count, kinds, ids), its
 *                   log-probabilities, the tokens yielded (and the sampler's ignore_eos flags).
 * All drive the code the engine runs: the session's prompt assembly (stream/lm_prompt.h) from the
 * voice's transcript / speech tokens or the instruction, cosy_lm_run_*, cosy_nucleus_candidates.
 */
#include "golden.h"
#include "core/error.h"
#include "model/lm/lm.h"
#include "model/model.h"
#include "model/voice/voice.h"
#include "stream/lm_prompt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_status golden_lm_inference(golden_ctx *ctx);
cosy_status golden_lm_instruct(golden_ctx *ctx);
cosy_status golden_lm_instruct2(golden_ctx *ctx);
cosy_status golden_lm_cross_lingual(golden_ctx *ctx);
cosy_status golden_ras_candidates(golden_ctx *ctx);
cosy_status golden_lm_bistream(golden_ctx *ctx);

typedef struct {
    float *f;
    int64_t *i;
    int64_t nf, ni, capf, capi;
} growbuf;

static int grow_f(growbuf *b, const float *x, int64_t n)
{
    if (b->nf + n > b->capf) {
        int64_t cap = b->capf ? b->capf : 1024;
        while (cap < b->nf + n) cap *= 2;
        float *p = realloc(b->f, sizeof(float) * (size_t)cap);
        if (!p) return -1;
        b->f = p;
        b->capf = cap;
    }
    memcpy(b->f + b->nf, x, sizeof(float) * (size_t)n);
    b->nf += n;
    return 0;
}

static int grow_i(growbuf *b, int64_t v)
{
    if (b->ni + 1 > b->capi) {
        int64_t cap = b->capi ? b->capi * 2 : 256;
        int64_t *p = realloc(b->i, sizeof(int64_t) * (size_t)cap);
        if (!p) return -1;
        b->i = p;
        b->capi = cap;
    }
    b->i[b->ni++] = v;
    return 0;
}

static void growbuf_free(growbuf *b)
{
    free(b->f);
    free(b->i);
}

/* Ids of an int npy as int32 (validated by the LM later). */
static int32_t *npy_ids(const npy_array *a)
{
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(a->numel ? a->numel : 1));
    if (v)
        for (int64_t i = 0; i < a->numel; i++) v[i] = (int32_t)a->i64[i];
    return v;
}

/* A sampler that returns given values in order, noting whether ignore_eos's index (cosy_lm_min_len_mask:
 * eos in CosyVoice2, sos in CosyVoice3) was masked when it was called. */
typedef struct {
    const int64_t *values;
    int64_t n, next;
    int eos;         /* the index ignore_eos masks */
    growbuf masked;  /* i: 1 if logp[eos] was -inf */
} forced_sampler;

static cosy_status forced_sample(void *vctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out)
{
    forced_sampler *s = vctx;
    (void)n;
    (void)decoded;
    (void)n_decoded;
    if (s->next >= s->n) return cosy_error(COSY_ERR_INVALID_ARG, "golden: the run asked for more than the %lld forced samples", (long long)s->n);
    if (grow_i(&s->masked, isinf(logp[s->eos]) && logp[s->eos] < 0)) return cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
    *out = (int32_t)s->values[s->next++];
    return COSY_OK;
}

/* Records every forward: f = log-probabilities; i = fed lengths; the kinds/ids in `fed`. */
typedef struct {
    const cosy_lm *lm;
    growbuf logp, lens, kinds, ids;
    growbuf first_embeds;  /* f: the embeddings of the first feed */
    int failed;
} trace_rec;

static void trace_forward(void *vctx, const cosy_lm_kind *kinds, const int32_t *ids, int n, const float *logp, int vocab)
{
    trace_rec *t = vctx;
    int first = t->lens.ni == 0;
    t->failed |= grow_f(&t->logp, logp, vocab) | grow_i(&t->lens, n);
    int H = cosy_lm_hidden(t->lm);
    float *e = malloc(sizeof(float) * (size_t)H);
    if (!e) {
        t->failed = 1;
        return;
    }
    for (int i = 0; i < n; i++) {
        t->failed |= grow_i(&t->kinds, kinds[i]) | grow_i(&t->ids, ids[i]);
        if (first) {
            if (cosy_lm_embed(t->lm, kinds[i], ids[i], e) != COSY_OK) t->failed = 1;
            t->failed |= grow_f(&t->first_embeds, e, H);
        }
    }
    free(e);
}

static void trace_free(trace_rec *t)
{
    growbuf_free(&t->logp);
    growbuf_free(&t->lens);
    growbuf_free(&t->kinds);
    growbuf_free(&t->ids);
    growbuf_free(&t->first_embeds);
}

/* Whether the current case declares `key` as an output. */
static int case_outputs(const golden_ctx *ctx, const char *key)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(ctx->current, "outputs"))
        if (cJSON_IsString(o) && !strcmp(o->valuestring, key)) return 1;
    return 0;
}

/* The tts text of the case: its input "lm_text" or "lm_text[:, :N]" (the first N ids). */
static cosy_status case_text(golden_ctx *ctx, npy_array *text)
{
    int limit = -1;
    const cJSON *in;
    cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(ctx->current, "inputs"))
        if (cJSON_IsString(in) && sscanf(in->valuestring, "lm_text[:, :%d]", &limit) == 1) break;
    COSY_TRY(golden_load_int(ctx, "lm_text", text));
    if (limit >= 0 && limit < text->numel) text->numel = limit;
    return COSY_OK;
}

/* One teacher-forced LM case: which mode's prompt the session would build, from which inputs (keys;
 * NULL: none), and the prefix of its outputs (<out>_prefill_embeds, _prefill_kind, _prefill_ids,
 * _logp, _ignore_eos; the case checks those it declares). */
typedef struct {
    cosy_mode mode;
    const char *transcript, *speech, *instruct, *tokens, *out;
    int instruct_as_text;   /* the instruction goes in as the user's string: its ids without the final
                             * <|endofprompt|>, decoded; the session's tokenisation must give the ids back */
} forced_case;

static cosy_status load_ids(golden_ctx *ctx, const char *key, npy_array *a, int32_t **ids)
{
    *ids = NULL;
    if (key) COSY_TRY(golden_load_int(ctx, key, a));
    *ids = npy_ids(a);
    return *ids ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
}

static void check_named(golden_ctx *ctx, const char *out, const char *what, const int64_t *ints, const float *f, int64_t n)
{
    char key[96];
    snprintf(key, sizeof key, "%s_%s", out, what);
    if (!case_outputs(ctx, key)) return;
    if (ints) golden_check_ints(ctx, key, ints, n);
    else golden_check(ctx, key, f, n);
}

/* Qwen2LM.inference / CosyVoice3LM.inference with teacher forcing, on the LM input the session's
 * prompt assembly (stream/lm_prompt.h) makes for the case's mode from the voice's transcript and
 * speech tokens (or the instruction): the prefill (embeddings, kind and id of each position), the
 * log-probabilities of every decode step when the case's tokens are fed back (the last, a stop id,
 * ends the call), and on which steps index speech_token_size was masked (step < min_len). */
static cosy_status lm_forced(golden_ctx *ctx, const forced_case *c)
{
    cosy_lm *lm;
    COSY_TRY(cosy_lm_get(ctx->model, &lm));
    const cosy_tokenizer *tok = NULL;
    if (cosy_lm_hparams(lm)->family == COSY_FAMILY_COSYVOICE3) COSY_TRY(cosy_tokenizer_get(ctx->model, &tok));
    npy_array text = {0}, transcript = {0}, speech = {0}, instruct = {0}, tokens = {0};
    int32_t *t_ids = NULL, *tr_ids = NULL, *s_ids = NULL, *i_ids = NULL, *full = NULL;
    int n_full = 0;
    cosy_lm_prompt prompt = {0};
    forced_sampler fs = {0};
    trace_rec tr = {0};
    cosy_lm_run *run = NULL;
    char *instruct_text = NULL;
    cosy_status st = case_text(ctx, &text);
    if (st == COSY_OK && c->instruct_as_text) st = cosy_tokenizer_get(ctx->model, &tok);
    if (st == COSY_OK) st = golden_load_int(ctx, c->tokens, &tokens);
    if (st == COSY_OK) st = load_ids(ctx, NULL, &text, &t_ids);
    if (st == COSY_OK) st = load_ids(ctx, c->transcript, &transcript, &tr_ids);
    if (st == COSY_OK) st = load_ids(ctx, c->speech, &speech, &s_ids);
    if (st == COSY_OK) st = load_ids(ctx, c->instruct, &instruct, &i_ids);
    if (st == COSY_OK && c->instruct_as_text) {
        size_t n = (size_t)instruct.numel, len;
        if (n > 0 && i_ids[n - 1] == cosy_tokenizer_added_id(tok, "<|endofprompt|>")) n--;
        st = cosy_tokenizer_decode(tok, i_ids, n, 0, &instruct_text, &len);
        cosy_voice voice = {0};
        if (st == COSY_OK) st = cosy_lm_prompt_build(cosy_lm_hparams(lm), tok, c->mode, 0, &voice, instruct_text, &prompt);
    } else if (st == COSY_OK) {
        st = cosy_lm_prompt_from_ids(cosy_lm_hparams(lm), tok, c->mode, 0, tr_ids, (int)transcript.numel, s_ids, (int)speech.numel, i_ids,
                                     (int)instruct.numel, &prompt);
    }
    if (st == COSY_OK) st = cosy_lm_prompt_text(&prompt, t_ids, (int)text.numel, &full, &n_full);
    if (st == COSY_OK) {
        fs.values = tokens.i64;
        fs.n = tokens.numel;
        fs.eos = cosy_lm_min_len_mask(lm);
        tr.lm = lm;
        cosy_lm_run_config cfg = cosy_lm_run_default_config();
        cfg.prompt_text = prompt.prompt_text;
        cfg.n_prompt_text = prompt.n_prompt_text;
        cfg.prompt_speech = prompt.prompt_speech;
        cfg.n_prompt_speech = prompt.n_prompt_speech;
        cfg.sample = forced_sample;
        cfg.sample_ctx = &fs;
        cfg.trace = trace_forward;
        cfg.trace_ctx = &tr;
        st = cosy_lm_run_begin(lm, &cfg, &run);
    }
    if (st == COSY_OK) st = cosy_lm_run_push_text(run, full, n_full);
    if (st == COSY_OK) st = cosy_lm_run_end_text(run);
    cosy_lm_event ev = {COSY_LM_EVENT_TOKEN, 0};
    while (st == COSY_OK && ev.kind != COSY_LM_EVENT_DONE) {
        st = cosy_lm_run_step(run, &ev);
        if (st == COSY_OK && ev.kind == COSY_LM_EVENT_NEED_TEXT) st = cosy_error(COSY_ERR_INTERNAL, "golden: the run waits for text after end_text");
    }
    if (st == COSY_OK && (tr.failed || fs.masked.ni != fs.n)) st = cosy_error(COSY_ERR_INTERNAL, "golden: the run used %lld of %lld teacher-forced tokens",
                                                                              (long long)fs.masked.ni, (long long)fs.n);
    if (st == COSY_OK) {
        char key[96];
        snprintf(key, sizeof key, "%s_logp", c->out);
        int64_t shape[2] = {tr.lens.ni, cosy_lm_vocab(lm)};
        golden_dump(ctx, key, tr.logp.f, shape, 2);
        int64_t n_prefill = tr.lens.ni > 0 ? tr.lens.i[0] : 0;
        check_named(ctx, c->out, "prefill_embeds", NULL, tr.first_embeds.f, tr.first_embeds.nf);
        check_named(ctx, c->out, "prefill_kind", tr.kinds.i, NULL, n_prefill);
        check_named(ctx, c->out, "prefill_ids", tr.ids.i, NULL, n_prefill);
        check_named(ctx, c->out, "logp", NULL, tr.logp.f, tr.logp.nf);
        check_named(ctx, c->out, "ignore_eos", fs.masked.i, NULL, fs.masked.ni);
    }
    cosy_lm_run_free(run);
    cosy_lm_prompt_free(&prompt);
    trace_free(&tr);
    growbuf_free(&fs.masked);
    free(t_ids);
    free(tr_ids);
    free(s_ids);
    free(i_ids);
    free(full);
    free(instruct_text);
    npy_free(&text);
    npy_free(&transcript);
    npy_free(&speech);
    npy_free(&instruct);
    npy_free(&tokens);
    return st;
}

/* zero-shot: [sos, prompt_text ++ text, task_id, prompt_speech] (CosyVoice2 and 3) */
cosy_status golden_lm_inference(golden_ctx *ctx)
{
    const forced_case c = {COSY_MODE_ZERO_SHOT, "lm_prompt_text", "lm_prompt_speech_token", NULL, "lm_tokens", "lm", 0};
    return lm_forced(ctx, &c);
}

/* CosyVoice3 instruct2: the instruction (ending in <|endofprompt|>) as prompt text, no prompt speech */
cosy_status golden_lm_instruct(golden_ctx *ctx)
{
    const forced_case c = {COSY_MODE_INSTRUCT, NULL, NULL, "lm_instruct_text", "lm_instruct_tokens", "lm_instruct", 0};
    return lm_forced(ctx, &c);
}

/* CosyVoice2 instruct2: the instruction as the user writes it (用开心的语气说, the session appends
 * <|endofprompt|>); the voice's prompt speech tokens are given and must not reach the LM */
cosy_status golden_lm_instruct2(golden_ctx *ctx)
{
    const forced_case c = {COSY_MODE_INSTRUCT, NULL, "lm_instruct2_prompt_speech_token", "lm_instruct2_prompt_text", "lm_instruct2_tokens",
                           "lm_instruct2", 1};
    return lm_forced(ctx, &c);
}

/* CosyVoice2 cross-lingual: the voice's transcript and speech tokens are given and must not reach the LM */
cosy_status golden_lm_cross_lingual(golden_ctx *ctx)
{
    const forced_case c = {COSY_MODE_CROSS_LINGUAL, "lm_cross_lingual_prompt_text", "lm_cross_lingual_prompt_speech_token", NULL,
                           "lm_cross_lingual_tokens", "lm_cross_lingual", 0};
    return lm_forced(ctx, &c);
}

cosy_status golden_ras_candidates(golden_ctx *ctx)
{
    cosy_lm *lm;
    COSY_TRY(cosy_lm_get(ctx->model, &lm));
    const cosy_hparams *hp = cosy_lm_hparams(lm);
    npy_array logp = {0}, ignore = {0};
    cosy_status st = golden_load(ctx, "lm_logp", &logp);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_ignore_eos", &ignore);
    int V = cosy_lm_vocab(lm), K = hp->top_k;
    int64_t rows = logp.ndim == 2 ? logp.shape[0] : 0;
    if (st == COSY_OK && (logp.ndim != 2 || logp.shape[1] != V || ignore.numel != rows))
        st = cosy_error(COSY_ERR_SHAPE, "golden: lm_logp / lm_ignore_eos do not match the LM's vocabulary %d", V);
    float *row = NULL, *probs = NULL, *cand_p = NULL, *out_p = NULL;
    int32_t *cand = NULL;
    int64_t *out_ids = NULL;
    if (st == COSY_OK) {
        row = malloc(sizeof(float) * V);
        probs = malloc(sizeof(float) * V);
        cand_p = malloc(sizeof(float) * K);
        cand = malloc(sizeof(int32_t) * K);
        out_p = calloc((size_t)(rows * K + 1), sizeof(float));
        out_ids = malloc(sizeof(int64_t) * (size_t)(rows * K + 1));
        if (!row || !probs || !cand_p || !cand || !out_p || !out_ids) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
    }
    for (int64_t r = 0; st == COSY_OK && r < rows; r++) {
        memcpy(row, logp.f32 + r * V, sizeof(float) * V);
        if (ignore.i64[r]) row[cosy_lm_min_len_mask(lm)] = -INFINITY; /* sampling_ids(ignore_eos=True) */
        int k = cosy_nucleus_candidates(row, V, hp->top_p, K, probs, cand, cand_p);
        for (int j = 0; j < K; j++) {
            out_ids[r * K + j] = j < k ? cand[j] : -1;
            out_p[r * K + j] = j < k ? cand_p[j] : 0.0f;
        }
    }
    if (st == COSY_OK) {
        golden_check_ints(ctx, "ras_candidates", out_ids, rows * K);
        golden_check(ctx, "ras_candidate_probs", out_p, rows * K);
    }
    free(row);
    free(probs);
    free(cand_p);
    free(cand);
    free(out_p);
    free(out_ids);
    npy_free(&logp);
    npy_free(&ignore);
    return st;
}

cosy_status golden_lm_bistream(golden_ctx *ctx)
{
    cosy_lm *lm;
    COSY_TRY(cosy_lm_get(ctx->model, &lm));
    npy_array ptext = {0}, pspeech = {0}, text = {0}, returns = {0};
    cosy_status st = golden_load_int(ctx, "lm_prompt_text", &ptext);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_prompt_speech_token", &pspeech);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_bi_text", &text);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_bi_sampler_returns", &returns);
    int32_t *t_ids = NULL, *p_ids = NULL, *s_ids = NULL;
    cosy_lm_prompt prompt = {0};
    forced_sampler fs = {0};
    trace_rec tr = {0};
    growbuf yielded = {0};
    cosy_lm_run *run = NULL;
    if (st == COSY_OK) {
        t_ids = npy_ids(&text);
        p_ids = npy_ids(&ptext);
        s_ids = npy_ids(&pspeech);
        if (!t_ids || !p_ids || !s_ids) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
    }
    /* the zero-shot prompt the session builds for a bistream request (stream/lm_prompt.h) */
    const cosy_tokenizer *tok = NULL;
    if (st == COSY_OK && cosy_lm_hparams(lm)->family == COSY_FAMILY_COSYVOICE3) st = cosy_tokenizer_get(ctx->model, &tok);
    if (st == COSY_OK)
        st = cosy_lm_prompt_from_ids(cosy_lm_hparams(lm), tok, COSY_MODE_ZERO_SHOT, 1, p_ids, (int)ptext.numel, s_ids, (int)pspeech.numel, NULL, 0,
                                     &prompt);
    if (st == COSY_OK) {
        fs.values = returns.i64;
        fs.n = returns.numel;
        fs.eos = cosy_lm_min_len_mask(lm);
        tr.lm = lm;
        cosy_lm_run_config cfg = cosy_lm_run_default_config();
        cfg.prompt_text = prompt.prompt_text;
        cfg.n_prompt_text = prompt.n_prompt_text;
        cfg.prompt_speech = prompt.prompt_speech;
        cfg.n_prompt_speech = prompt.n_prompt_speech;
        cfg.bistream = 1;
        /* the replayed values are the reference's own, so the reference's masks alone (what
         * lm_bi_sampler_ignore_eos records) are what the sampler must see */
        cfg.strict_reference = 1;
        cfg.sample = forced_sample;
        cfg.sample_ctx = &fs;
        cfg.trace = trace_forward;
        cfg.trace_ctx = &tr;
        st = cosy_lm_run_begin(lm, &cfg, &run);
    }
    /* the text arrives one token at a time (frontend._extract_text_token_generator) */
    cosy_lm_event ev = {COSY_LM_EVENT_TOKEN, 0};
    for (int64_t i = 0; st == COSY_OK && i <= text.numel; i++) {
        st = i < text.numel ? cosy_lm_run_push_text(run, t_ids + i, 1) : cosy_lm_run_end_text(run);
        ev.kind = COSY_LM_EVENT_TOKEN;
        while (st == COSY_OK && ev.kind == COSY_LM_EVENT_TOKEN) {
            st = cosy_lm_run_step(run, &ev);
            if (st == COSY_OK && ev.kind == COSY_LM_EVENT_TOKEN && grow_i(&yielded, ev.token)) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
        }
    }
    if (st == COSY_OK && ev.kind != COSY_LM_EVENT_DONE) st = cosy_error(COSY_ERR_INTERNAL, "golden: the bistream run did not finish");
    if (st == COSY_OK && tr.failed) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
    if (st == COSY_OK) {
        golden_check_ints(ctx, "lm_bi_feed_lens", tr.lens.i, tr.lens.ni);
        golden_check_ints(ctx, "lm_bi_feed_kind", tr.kinds.i, tr.kinds.ni);
        golden_check_ints(ctx, "lm_bi_feed_ids", tr.ids.i, tr.ids.ni);
        golden_check(ctx, "lm_bi_logp", tr.logp.f, tr.logp.nf);
        golden_check_ints(ctx, "lm_bi_yielded", yielded.i, yielded.ni);
        if (case_outputs(ctx, "lm_bi_sampler_ignore_eos")) golden_check_ints(ctx, "lm_bi_sampler_ignore_eos", fs.masked.i, fs.masked.ni);
    }
    cosy_lm_run_free(run);
    cosy_lm_prompt_free(&prompt);
    trace_free(&tr);
    growbuf_free(&fs.masked);
    growbuf_free(&yielded);
    free(t_ids);
    free(p_ids);
    free(s_ids);
    npy_free(&ptext);
    npy_free(&pspeech);
    npy_free(&text);
    npy_free(&returns);
    return st;
}
