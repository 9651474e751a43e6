/* test_lm_cv3.c — the CosyVoice3 LM (tests/data/cv3-tiny) beyond what `cosy golden` checks: the
 * family's special ids behind the LM API, the <|endofprompt|> refusals, the decode rules (stop range,
 * the min_len quirk, bistream's masks), the session's prompt assembly
 * per mode (stream/lm_prompt.h) including the system prompt it adds, and decoding with the compact LM
 * types (a model converted with --lm-dtype q8_0, and bf16/q4_0 at run time) against the f32 reference. */
#include "test.h"

#include "io/npy.h"
#include "model/lm/lm.h"
#include "model/model.h"
#include "stream/lm_prompt.h"
#include "text/tokenizer.h"

#include <math.h>

static const char *golden(const char *name)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/cv3-tiny/golden/%s.npy", COSY_TEST_DATA, name);
    return buf[k];
}

static int32_t *load_ids(const char *name, int *n)
{
    npy_array a;
    *n = 0;
    if (npy_load_int(golden(name), &a) != COSY_OK) return NULL;
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(a.numel + 1));
    for (int64_t i = 0; v && i < a.numel; i++) v[i] = (int32_t)a.i64[i];
    *n = (int)a.numel;
    npy_free(&a);
    return v;
}

typedef struct {
    const int32_t *values;
    int n, next;
} replay;

static cosy_status replay_sample(void *ctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out)
{
    replay *r = ctx;
    (void)logp, (void)n, (void)decoded, (void)n_decoded;
    if (r->next >= r->n) return COSY_ERR_INTERNAL;
    *out = r->values[r->next++];
    return COSY_OK;
}

typedef struct {
    float *logp;
    int rows, vocab;
} logp_rec;

static void record(void *ctx, const cosy_lm_kind *kinds, const int32_t *ids, int n, const float *logp, int vocab)
{
    logp_rec *r = ctx;
    (void)kinds, (void)ids, (void)n;
    r->logp = realloc(r->logp, sizeof(float) * (size_t)(r->rows + 1) * vocab);
    memcpy(r->logp + (size_t)r->rows * vocab, logp, sizeof(float) * vocab);
    r->rows++;
    r->vocab = vocab;
}

/* The zero-shot case of the fixture with the fixture's tokens fed back: the log-probabilities of every step. */
static cosy_status teacher_forced(cosy_lm *lm, logp_rec *rec)
{
    int np, nt, ns, nk;
    int32_t *ptext = load_ids("lm_prompt_text", &np), *text = load_ids("lm_text", &nt);
    int32_t *speech = load_ids("lm_prompt_speech_token", &ns), *tokens = load_ids("lm_tokens", &nk);
    replay r = {tokens, nk, 0};
    cosy_lm_run_config cfg = cosy_lm_run_default_config();
    cfg.prompt_text = ptext;
    cfg.n_prompt_text = np;
    cfg.prompt_speech = speech;
    cfg.n_prompt_speech = ns;
    cfg.sample = replay_sample;
    cfg.sample_ctx = &r;
    cfg.trace = record;
    cfg.trace_ctx = rec;
    cosy_lm_run *run = NULL;
    cosy_status st = cosy_lm_run_begin(lm, &cfg, &run);
    if (st == COSY_OK) st = cosy_lm_run_push_text(run, text, nt);
    if (st == COSY_OK) st = cosy_lm_run_end_text(run);
    cosy_lm_event ev = {COSY_LM_EVENT_TOKEN, 0};
    while (st == COSY_OK && ev.kind != COSY_LM_EVENT_DONE) st = cosy_lm_run_step(run, &ev);
    cosy_lm_run_free(run);
    free(ptext);
    free(text);
    free(speech);
    free(tokens);
    return st;
}

static void test_ids(cosy_model *m)
{
    cosy_lm *lm = NULL;
    CHECK_OK(cosy_lm_get(m, &lm));
    if (!lm) return;
    CHECK(cosy_lm_vocab(lm) == 6761 && cosy_lm_eos(lm) == 6562 && cosy_lm_fill(lm) == 6564 && cosy_lm_min_len_mask(lm) == 6561);
    CHECK(!cosy_lm_is_stop(lm, 6560) && cosy_lm_is_stop(lm, 6561) && cosy_lm_is_stop(lm, 6562) && cosy_lm_is_stop(lm, 6760));
    CHECK(!cosy_lm_is_stop(lm, 6761));
    /* sos / task_id are rows 6561 / 6563 of speech_embedding */
    int H = cosy_lm_hidden(lm);
    float a[64], b[64];
    CHECK(H <= 64);
    CHECK_OK(cosy_lm_embed(lm, COSY_LM_SOS, -1, a));
    CHECK_OK(cosy_lm_embed(lm, COSY_LM_SPEECH, 6561, b));
    CHECK(!memcmp(a, b, sizeof(float) * H));
    CHECK_OK(cosy_lm_embed(lm, COSY_LM_TASK, -1, a));
    CHECK_OK(cosy_lm_embed(lm, COSY_LM_SPEECH, 6563, b));
    CHECK(!memcmp(a, b, sizeof(float) * H));

    /* CosyVoice3LM asserts <|endofprompt|> in prompt_text ++ text (non-bistream) and in prompt_text (bistream) */
    const int32_t text[3] = {100, 200, 300};
    cosy_lm_run_config cfg = cosy_lm_run_default_config();
    cfg.prompt_text = text;
    cfg.n_prompt_text = 3;
    cosy_lm_run *run = NULL;
    CHECK_OK(cosy_lm_run_begin(lm, &cfg, &run));
    CHECK_OK(cosy_lm_run_push_text(run, text, 3));
    CHECK_OK(cosy_lm_run_end_text(run));
    cosy_lm_event ev;
    CHECK_FAILS(cosy_lm_run_step(run, &ev), COSY_ERR_INVALID_ARG, "<|endofprompt|>");
    cosy_lm_run_free(run);
    cfg.bistream = 1;
    run = NULL;
    CHECK_FAILS(cosy_lm_run_begin(lm, &cfg, &run), COSY_ERR_INVALID_ARG, "<|endofprompt|>");
    CHECK(run == NULL);
    /* the marker in the text alone is enough without bistream (cross-lingual's layout) */
    const int32_t with_eop[2] = {100, 151646};
    cfg.bistream = 0;
    cfg.n_prompt_text = 0;
    cfg.prompt_text = NULL;
    cfg.max_tokens = 2;
    CHECK_OK(cosy_lm_run_begin(lm, &cfg, &run));
    CHECK_OK(cosy_lm_run_push_text(run, with_eop, 2));
    CHECK_OK(cosy_lm_run_end_text(run));
    int steps = 0;
    do {
        CHECK_OK(cosy_lm_run_step(run, &ev));
        CHECK(ev.kind == COSY_LM_EVENT_DONE || (ev.token >= 0 && ev.token < 6561));
    } while (ev.kind != COSY_LM_EVENT_DONE && ++steps < 10);
    cosy_lm_run_free(run);
}

/* Returns `value` every call and notes which special ids (6561..6760) were masked. */
typedef struct {
    int32_t value;
    int calls;
    int masked_sos, masked_eos, masked_fill, masked_other; /* calls on which that id (others: all of them) was -inf */
} constant_sampler;

static cosy_status constant_sample(void *ctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out)
{
    constant_sampler *c = ctx;
    (void)decoded, (void)n_decoded;
    c->calls++;
    c->masked_sos += isinf(logp[6561]) != 0;
    c->masked_eos += isinf(logp[6562]) != 0;
    c->masked_fill += isinf(logp[6564]) != 0;
    int others = 1;
    for (int i = 6563; i < n; i++)
        if (i != 6564) others &= isinf(logp[i]) != 0;
    c->masked_other += others;
    *out = c->value;
    return COSY_OK;
}

/* Runs the fixture's zero-shot prompt (bistream: text one token at a time) with the sampler `sample`;
 * returns the tokens emitted. */
static int run_fixture(cosy_lm *lm, int bistream, int strict, cosy_lm_sample_fn sample, void *ctx, int max_tokens, int min_tokens)
{
    int np, nt, ns;
    int32_t *ptext = load_ids("lm_prompt_text", &np), *text = load_ids("lm_text", &nt), *speech = load_ids("lm_prompt_speech_token", &ns);
    cosy_lm_run_config cfg = cosy_lm_run_default_config();
    cfg.prompt_text = ptext;
    cfg.n_prompt_text = np;
    cfg.prompt_speech = speech;
    cfg.n_prompt_speech = ns;
    cfg.bistream = bistream;
    cfg.strict_reference = strict;
    cfg.sample = sample;
    cfg.sample_ctx = ctx;
    cfg.max_tokens = max_tokens;
    cfg.min_tokens = min_tokens;
    cosy_lm_run *run = NULL;
    int emitted = 0;
    CHECK_OK(cosy_lm_run_begin(lm, &cfg, &run));
    for (int i = 0; run && i < nt; i++) CHECK_OK(cosy_lm_run_push_text(run, text + i, 1));
    if (run) CHECK_OK(cosy_lm_run_end_text(run));
    cosy_lm_event ev = {COSY_LM_EVENT_TOKEN, 0};
    while (run && ev.kind != COSY_LM_EVENT_DONE && cosy_lm_run_step(run, &ev) == COSY_OK) emitted += ev.kind == COSY_LM_EVENT_TOKEN;
    cosy_lm_run_free(run);
    free(ptext);
    free(text);
    free(speech);
    return emitted;
}

static int run_constant(cosy_lm *lm, int bistream, int strict, constant_sampler *c, int max_tokens)
{
    return run_fixture(lm, bistream, strict, constant_sample, c, max_tokens, 0);
}

/* CosyVoice3LM's decode rules: stop on any id 6561..6760 (not emitted); ignore_eos masks 6561 (sos),
 * never eos 6562, so an eos sampled on the first step ends the call at once; bistream masks every
 * special id the reference would raise on (phase B: all but fill; the flush: all but eos). */
static void test_decode_rules(cosy_model *m)
{
    cosy_lm *lm = NULL;
    CHECK_OK(cosy_lm_get(m, &lm));
    if (!lm) return;
    constant_sampler eos = {6562, 0, 0, 0, 0, 0};
    CHECK(run_constant(lm, 0, 0, &eos, 0) == 0 && eos.calls == 1 && eos.masked_sos == 1 && eos.masked_eos == 0);
    constant_sampler reserved = {6700, 0, 0, 0, 0, 0};
    CHECK(run_constant(lm, 0, 0, &reserved, 0) == 0 && reserved.calls == 1);
    constant_sampler speech = {100, 0, 0, 0, 0, 0};
    int nt;
    free(load_ids("lm_text", &nt));
    /* min_len = 2 Lt steps with 6561 masked, then none; max_len = 20 Lt tokens */
    CHECK(run_constant(lm, 0, 0, &speech, 0) == 20 * nt && speech.masked_sos == 2 * nt && speech.masked_eos == 0 && speech.masked_other == 0);
    /* bistream, default masks: phase B masks sos and the others but not fill; the flush all but eos */
    constant_sampler bi = {100, 0, 0, 0, 0, 0};
    int n = run_constant(lm, 1, 0, &bi, 40);
    CHECK(n == 40 && bi.calls > 0 && bi.masked_other == bi.calls && bi.masked_sos == bi.calls);
    /* phase B masks eos (the reference raises on it) and leaves fill; the flush the other way round */
    CHECK(bi.masked_eos > 0 && bi.masked_fill > 0 && bi.masked_eos + bi.masked_fill == bi.calls);
    /* strict: only ignore_eos's index 6561, and only while text streams in */
    constant_sampler strict = {100, 0, 0, 0, 0, 0};
    CHECK(run_constant(lm, 1, 1, &strict, 40) == 40 && strict.masked_eos == 0 && strict.masked_other == 0 && strict.masked_fill == 0);
    CHECK(strict.masked_sos > 0 && strict.masked_sos < strict.calls);
}

/* Samples eos 6562 whenever it is not masked, else speech token 100. */
static cosy_status eos_if_allowed(void *ctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out)
{
    (void)ctx, (void)n, (void)decoded, (void)n_decoded;
    *out = isinf(logp[6562]) ? 100 : 6562;
    return COSY_OK;
}

/* min_tokens (benchmarks): no stop id before that many tokens, in both loops; then the model's rules */
static void test_min_tokens(cosy_model *m)
{
    cosy_lm *lm = NULL;
    CHECK_OK(cosy_lm_get(m, &lm));
    if (!lm) return;
    for (int bistream = 0; bistream < 2; bistream++) {
        /* without min_tokens: no token, or (bistream) those made before the flush, where eos is allowed */
        const int base = run_fixture(lm, bistream, 0, eos_if_allowed, NULL, 60, 0);
        if (!bistream) CHECK(base == 0); /* eos on the first step: min_len masks 6561, not eos */
        CHECK(base + 7 <= 60);
        CHECK(run_fixture(lm, bistream, 0, eos_if_allowed, NULL, 60, base + 7) == base + 7); /* eos as soon as it is allowed */
    }
    cosy_lm_run_config bad = cosy_lm_run_default_config();
    bad.min_tokens = -1;
    cosy_lm_run *run = NULL;
    CHECK_FAILS(cosy_lm_run_begin(lm, &bad, &run), COSY_ERR_INVALID_ARG, "min_tokens");
}

static int same(const int32_t *a, int na, const int32_t *b, int nb) { return na == nb && (na == 0 || !memcmp(a, b, sizeof(int32_t) * na)); }

static void test_prompts(cosy_model *m)
{
    const cosy_tokenizer *tok = NULL;
    CHECK_OK(cosy_tokenizer_get(m, &tok));
    const cosy_hparams *hp = &m->hp;
    static const int32_t system[7] = {2610, 525, 264, 10950, 17847, 13, 151646}; /* "You are a helpful assistant.<|endofprompt|>" */
    const int32_t transcript[3] = {1000, 2000, 3000}, speech[4] = {1, 2, 3, 4};
    cosy_lm_prompt p;
    /* zero-shot: the system prompt goes before a transcript without <|endofprompt|> ... */
    CHECK_OK(cosy_lm_prompt_from_ids(hp, tok, COSY_MODE_ZERO_SHOT, 0, transcript, 3, speech, 4, NULL, 0, &p));
    CHECK(p.n_prompt_text == 10 && same(p.prompt_text, 7, system, 7) && same(p.prompt_text + 7, 3, transcript, 3));
    CHECK(same(p.prompt_speech, p.n_prompt_speech, speech, 4) && p.n_text_prefix == 0);
    cosy_lm_prompt_free(&p);
    /* ... and not before one that has it (the fixture's, as the official example passes it) */
    int np;
    int32_t *fixture = load_ids("lm_prompt_text", &np);
    CHECK_OK(cosy_lm_prompt_from_ids(hp, tok, COSY_MODE_ZERO_SHOT, 1, fixture, np, speech, 4, NULL, 0, &p));
    CHECK(same(p.prompt_text, p.n_prompt_text, fixture, np) && same(fixture, 7, system, 7));
    cosy_lm_prompt_free(&p);
    free(fixture);
    CHECK_FAILS(cosy_lm_prompt_from_ids(hp, tok, COSY_MODE_ZERO_SHOT, 0, transcript, 3, NULL, 0, NULL, 0, &p), COSY_ERR_INVALID_ARG, "zero-shot");
    /* instruct: the instruction is the prompt text, no prompt speech; it must hold <|endofprompt|> */
    CHECK_FAILS(cosy_lm_prompt_from_ids(hp, tok, COSY_MODE_INSTRUCT, 0, transcript, 3, speech, 4, transcript, 3, &p), COSY_ERR_INVALID_ARG,
                "<|endofprompt|>");
    CHECK_OK(cosy_lm_prompt_from_ids(hp, tok, COSY_MODE_INSTRUCT, 0, transcript, 3, speech, 4, system, 7, &p));
    CHECK(same(p.prompt_text, p.n_prompt_text, system, 7) && p.n_prompt_speech == 0 && p.n_text_prefix == 0);
    cosy_lm_prompt_free(&p);
    /* the string form completes an instruction to instruct_list's "You are a helpful assistant. X<|endofprompt|>" */
    cosy_voice *voice = cosy_voice_alloc("v");
    CHECK_OK(cosy_lm_prompt_build(hp, tok, COSY_MODE_INSTRUCT, 0, voice, "Speak slowly.", &p));
    cosy_token_ids want = {0};
    const char *full = "You are a helpful assistant. Speak slowly.<|endofprompt|>";
    CHECK_OK(cosy_tokenizer_encode(tok, full, strlen(full), &want));
    CHECK(same(p.prompt_text, p.n_prompt_text, want.ids, (int)want.n) && p.prompt_text[p.n_prompt_text - 1] == 151646);
    cosy_lm_prompt_free(&p);
    CHECK_OK(cosy_lm_prompt_build(hp, tok, COSY_MODE_INSTRUCT, 0, voice, full, &p)); /* already complete: as given */
    CHECK(same(p.prompt_text, p.n_prompt_text, want.ids, (int)want.n));
    cosy_lm_prompt_free(&p);
    cosy_token_ids_free(&want);
    /* zero-shot without a transcript is refused with the voice's name */
    CHECK_FAILS(cosy_lm_prompt_build(hp, tok, COSY_MODE_ZERO_SHOT, 0, voice, NULL, &p), COSY_ERR_INVALID_ARG, "voice 'v'");
    cosy_voice_free(voice);
    /* cross-lingual / SFT: no prompt; the system prompt heads every text (bistream: it is the prompt text) */
    for (int mode = COSY_MODE_CROSS_LINGUAL; mode <= COSY_MODE_SFT; mode += COSY_MODE_SFT - COSY_MODE_CROSS_LINGUAL) {
        CHECK_OK(cosy_lm_prompt_from_ids(hp, tok, (cosy_mode)mode, 0, transcript, 3, speech, 4, NULL, 0, &p));
        CHECK(p.n_prompt_text == 0 && p.n_prompt_speech == 0 && same(p.text_prefix, p.n_text_prefix, system, 7));
        int32_t *joined = NULL;
        int n = 0;
        CHECK_OK(cosy_lm_prompt_text(&p, transcript, 3, &joined, &n));
        CHECK(n == 10 && same(joined, 7, system, 7) && same(joined + 7, 3, transcript, 3));
        free(joined);
        /* a text that has the marker already (written as the official example does) gets no second one */
        CHECK_OK(cosy_lm_prompt_text(&p, system, 7, &joined, &n));
        CHECK(same(joined, n, system, 7));
        free(joined);
        cosy_lm_prompt_free(&p);
        CHECK_OK(cosy_lm_prompt_from_ids(hp, tok, (cosy_mode)mode, 1, transcript, 3, speech, 4, NULL, 0, &p));
        CHECK(same(p.prompt_text, p.n_prompt_text, system, 7) && p.n_prompt_speech == 0 && p.n_text_prefix == 0);
        cosy_lm_prompt_free(&p);
    }
}

/* The LM in a compact type decodes the fixture's case close to the f32 reference. Measured on this
 * fixture (width 32, one q8_0/q4_0 block per row, random weights: harsher than cv2-tiny's, whose
 * numbers test_lm.c lists): max|logp - f32| bf16 0.158, q8_0 0.621, q4_0 8.03; argmax equal on 30, 29,
 * 17 of 31 steps. Bounds ~1.5x those (argmax: a few moves more, for the bf16-tile CPUs). */
static void check_compact(const char *label, cosy_model *m, const logp_rec *ref, double bound, int min_argmax)
{
    cosy_lm *lm = NULL;
    CHECK_OK(cosy_lm_get(m, &lm));
    if (!lm) return;
    logp_rec got = {0};
    CHECK_OK(teacher_forced(lm, &got));
    double worst = 0;
    int argmax_same = 0;
    CHECK(got.rows == ref->rows && got.vocab == ref->vocab);
    for (int r = 0; r < got.rows && r < ref->rows; r++) {
        int a = 0, b = 0;
        for (int j = 0; j < got.vocab; j++) {
            double d = fabs((double)got.logp[(size_t)r * got.vocab + j] - ref->logp[(size_t)r * got.vocab + j]);
            if (d > worst) worst = d;
            if (got.logp[(size_t)r * got.vocab + j] > got.logp[(size_t)r * got.vocab + a]) a = j;
            if (ref->logp[(size_t)r * got.vocab + j] > ref->logp[(size_t)r * got.vocab + b]) b = j;
        }
        argmax_same += a == b;
    }
    printf("  %-6s max |logp - f32| %.3e over %d steps, argmax equal on %d\n", label, worst, got.rows, argmax_same);
    CHECK(worst < bound && argmax_same >= min_argmax);
    free(got.logp);
    /* and a free-running decode (RAS sampling) ends with speech tokens only */
    int np, nt, ns;
    int32_t *ptext = load_ids("lm_prompt_text", &np), *text = load_ids("lm_text", &nt), *speech = load_ids("lm_prompt_speech_token", &ns);
    cosy_lm_run_config cfg = cosy_lm_run_default_config();
    cfg.prompt_text = ptext;
    cfg.n_prompt_text = np;
    cfg.prompt_speech = speech;
    cfg.n_prompt_speech = ns;
    cosy_lm_run *run = NULL;
    CHECK_OK(cosy_lm_run_begin(lm, &cfg, &run));
    CHECK_OK(cosy_lm_run_push_text(run, text, nt));
    CHECK_OK(cosy_lm_run_end_text(run));
    cosy_lm_event ev = {COSY_LM_EVENT_TOKEN, 0};
    int n = 0, bad = 0;
    while (run && ev.kind != COSY_LM_EVENT_DONE && cosy_lm_run_step(run, &ev) == COSY_OK)
        if (ev.kind == COSY_LM_EVENT_TOKEN) {
            n++;
            bad += ev.token < 0 || ev.token >= 6561;
        }
    CHECK(ev.kind == COSY_LM_EVENT_DONE && bad == 0 && n <= 20 * nt);
    cosy_lm_run_free(run);
    free(ptext);
    free(text);
    free(speech);
}

static void test_dtypes(void)
{
    const char *model_dir = test_data("cv3-tiny/model");
    CHECK_OK(cosy_convert(model_dir, test_tmp("lm_cv3_f32.gguf"), NULL));
    cosy_convert_params cp = cosy_convert_default_params();
    CHECK(cosy_dtype_from_name("q8_0", &cp.lm_dtype) == 0);
    CHECK_OK(cosy_convert(model_dir, test_tmp("lm_cv3_q8.gguf"), &cp));
    cosy_model_params f32 = test_f32_params();
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("lm_cv3_f32.gguf"), &f32, &m));
    if (!m) return;
    test_ids(m);
    test_prompts(m);
    test_decode_rules(m);
    test_min_tokens(m);
    cosy_lm *lm = NULL;
    logp_rec ref = {0};
    CHECK_OK(cosy_lm_get(m, &lm));
    if (lm) CHECK_OK(teacher_forced(lm, &ref));
    /* the f32 path against the fixture itself (the golden case's numbers, here without the runner) */
    npy_array want;
    CHECK_OK(npy_load(golden("lm_logp"), &want));
    CHECK(want.numel == (int64_t)ref.rows * ref.vocab);
    double worst = 0;
    for (int64_t i = 0; i < want.numel && i < (int64_t)ref.rows * ref.vocab; i++)
        if (fabs((double)want.f32[i] - ref.logp[i]) > worst) worst = fabs((double)want.f32[i] - ref.logp[i]);
    CHECK(worst < 2e-4);
    npy_free(&want);
    cosy_model_free(m);

    /* stored as q8_0 by the converter, used in place (lm_dtype AUTO) */
    cosy_model_params p = cosy_model_default_params();
    m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("lm_cv3_q8.gguf"), &p, &m));
    if (m) {
        cosy_lm *q = NULL;
        CHECK_OK(cosy_lm_get(m, &q));
        CHECK(q && cosy_lm_dtype(q) == COSY_DTYPE_Q8_0);
        check_compact("q8_0", m, &ref, 0.95, 26);
        cosy_model_free(m);
    }
    /* converted at load from the f32 file */
    static const struct { const char *name; double bound; int argmax; } kinds[] = {{"bf16", 0.25, 28}, {"q4_0", 12.0, 12}};
    for (int k = 0; k < 2; k++) {
        p = cosy_model_default_params();
        CHECK(cosy_dtype_from_name(kinds[k].name, &p.lm_dtype) == 0);
        m = NULL;
        CHECK_OK(cosy_model_load(test_tmp("lm_cv3_f32.gguf"), &p, &m));
        if (m) check_compact(kinds[k].name, m, &ref, kinds[k].bound, kinds[k].argmax);
        cosy_model_free(m);
    }
    free(ref.logp);
}

int main(void)
{
    test_dtypes();
    return test_finish("test_lm_cv3");
}
