/*
 * golden_lm.c — the LM fixture cases of `cosy golden` (see golden.h):
 *   lm_inference    Qwen2LM.inference with teacher forcing: the prefill embeddings, and the
 *                   log-probabilities of every decode step when the tokens of lm_tokens are fed
 *                   back (the last, eos, ends the call); also checks that eos was masked exactly
 *                   on the steps lm_ignore_eos marks (step < min_len = 2·Lt).
 *   ras_candidates  nucleus_sampling's candidate ids and probabilities for each lm_logp row.
 *   lm_bistream     Qwen2LM.inference_bistream with the sampler replaced by the values of
 *                   lm_bi_sampler_returns: what each forward call fed (count, kinds, ids), its
 *                   log-probabilities, and the tokens yielded.
 * All three drive the same code the engine runs (cosy_lm_run_*, cosy_nucleus_candidates).
 */
#include "golden.h"
#include "core/error.h"
#include "model/lm/lm.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_status golden_lm_inference(golden_ctx *ctx);
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

/* A sampler that returns given values in order, noting whether eos was masked when it was called. */
typedef struct {
    const int64_t *values;
    int64_t n, next;
    int eos;
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

cosy_status golden_lm_inference(golden_ctx *ctx)
{
    cosy_lm *lm;
    COSY_TRY(cosy_lm_get(ctx->model, &lm));
    npy_array text = {0}, ptext = {0}, pspeech = {0}, tokens = {0}, ignore = {0};
    cosy_status st = golden_load_int(ctx, "lm_text", &text);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_prompt_text", &ptext);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_prompt_speech_token", &pspeech);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_tokens", &tokens);
    if (st == COSY_OK) st = golden_load_int(ctx, "lm_ignore_eos", &ignore);
    int32_t *t_ids = NULL, *p_ids = NULL, *s_ids = NULL;
    forced_sampler fs = {0};
    trace_rec tr = {0};
    cosy_lm_run *run = NULL;
    if (st == COSY_OK) {
        t_ids = npy_ids(&text);
        p_ids = npy_ids(&ptext);
        s_ids = npy_ids(&pspeech);
        if (!t_ids || !p_ids || !s_ids) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
    }
    if (st == COSY_OK) {
        fs.values = tokens.i64;
        fs.n = tokens.numel;
        fs.eos = cosy_lm_eos(lm);
        tr.lm = lm;
        cosy_lm_run_config cfg = cosy_lm_run_default_config();
        cfg.prompt_text = p_ids;
        cfg.n_prompt_text = (int)ptext.numel;
        cfg.prompt_speech = s_ids;
        cfg.n_prompt_speech = (int)pspeech.numel;
        cfg.sample = forced_sample;
        cfg.sample_ctx = &fs;
        cfg.trace = trace_forward;
        cfg.trace_ctx = &tr;
        st = cosy_lm_run_begin(lm, &cfg, &run);
    }
    if (st == COSY_OK) st = cosy_lm_run_push_text(run, t_ids, (int)text.numel);
    if (st == COSY_OK) st = cosy_lm_run_end_text(run);
    cosy_lm_event ev = {COSY_LM_EVENT_TOKEN, 0};
    while (st == COSY_OK && ev.kind != COSY_LM_EVENT_DONE) {
        st = cosy_lm_run_step(run, &ev);
        if (st == COSY_OK && ev.kind == COSY_LM_EVENT_NEED_TEXT) st = cosy_error(COSY_ERR_INTERNAL, "golden: the run waits for text after end_text");
    }
    if (st == COSY_OK && (tr.failed || fs.masked.ni != fs.n)) st = cosy_error(COSY_ERR_INTERNAL, "golden: the run used %lld of %lld teacher-forced tokens",
                                                                              (long long)fs.masked.ni, (long long)fs.n);
    if (st == COSY_OK) {
        int mismatch = -1;
        for (int64_t i = 0; i < fs.masked.ni && i < ignore.numel; i++)
            if (fs.masked.i[i] != ignore.i64[i] && mismatch < 0) mismatch = (int)i;
        if (mismatch >= 0) st = cosy_error(COSY_ERR_INTERNAL, "golden: eos masking at step %d differs from lm_ignore_eos", mismatch);
    }
    if (st == COSY_OK) {
        int64_t shape[2] = {tr.lens.ni, cosy_lm_vocab(lm)};
        golden_dump(ctx, "lm_logp", tr.logp.f, shape, 2);
        golden_check(ctx, "lm_prefill_embeds", tr.first_embeds.f, tr.first_embeds.nf);
        golden_check(ctx, "lm_logp", tr.logp.f, tr.logp.nf);
    }
    cosy_lm_run_free(run);
    trace_free(&tr);
    growbuf_free(&fs.masked);
    free(t_ids);
    free(p_ids);
    free(s_ids);
    npy_free(&text);
    npy_free(&ptext);
    npy_free(&pspeech);
    npy_free(&tokens);
    npy_free(&ignore);
    return st;
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
        if (ignore.i64[r]) row[cosy_lm_eos(lm)] = -INFINITY;
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
    if (st == COSY_OK) {
        fs.values = returns.i64;
        fs.n = returns.numel;
        fs.eos = cosy_lm_eos(lm);
        tr.lm = lm;
        cosy_lm_run_config cfg = cosy_lm_run_default_config();
        cfg.prompt_text = p_ids;
        cfg.n_prompt_text = (int)ptext.numel;
        cfg.prompt_speech = s_ids;
        cfg.n_prompt_speech = (int)pspeech.numel;
        cfg.bistream = 1;
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
    }
    cosy_lm_run_free(run);
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
