/*
 * test_lm_batch.c — batched decode across sequences (lm.h, src/model/lm_batch.c) on the official
 * cv2-tiny fixture model, in every LM weight type:
 *   (0) the gemv kernels give each activation row of a multi-row product the bits it gets alone;
 *   (a) N = 2..8 sequences with different prompts and positions, fed one position each as one forward
 *       for a few steps (cosy_lm_feed_batch; then staggered, newcomers joining a forward under way and
 *       catching up layer by layer), give log-probabilities bit-identical (memcmp) to each sequence fed
 *       alone, on every CPU path this machine has (the best, AVX-512 without VNNI, AVX2,
 *       portable; a path the CPU lacks is reported as skipped);
 *   (b) threads decoding their own sequences at once through plain cosy_lm_feed (the rendezvous)
 *       produce exactly the log-probabilities of the same sequences run one after another, and their
 *       steps did share forwards (the batch thread's counters);
 *   (c) two sessions with the same seed, streaming at the same time, give byte-identical audio to the
 *       same request run alone.
 */
#include "test.h"
#include "core/cpu.h"
#include "core/gemv.h"
#include "core/tensor.h"
#include "model/lm/lm.h"
#include "model/lm/lm_batch.h"
#include "model/model.h"
#include "model/voice/voice.h"

#include <pthread.h>
#include <stdint.h>

#define MAX_SEQ 8
#define STEPS 3

static cosy_model *load(const char *gguf, cosy_dtype dtype)
{
    cosy_model_params mp = cosy_model_default_params();
    mp.lm_dtype = dtype;
    mp.n_threads = 2;
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(gguf, &mp, &m));
    return m;
}

/* Sequence i's prompt: sos, some text, task_id, some speech; 3 + 5 * i positions (3..38), so the
 * sequences of a batch sit at different positions. */
static int prompt(const cosy_lm *lm, int i, cosy_lm_kind *kinds, int32_t *ids)
{
    const cosy_hparams *hp = cosy_lm_hparams(lm);
    int n = 3 + 5 * i, n_text = 1 + i;
    for (int t = 0; t < n; t++) {
        if (t == 0) kinds[t] = COSY_LM_SOS, ids[t] = -1;
        else if (t <= n_text) kinds[t] = COSY_LM_TEXT, ids[t] = (int32_t)((t * 37 + i * 101) % hp->lm_text_vocab);
        else if (t == n_text + 1) kinds[t] = COSY_LM_TASK, ids[t] = -1;
        else kinds[t] = COSY_LM_SPEECH, ids[t] = (int32_t)((t * 53 + i * 17) % hp->speech_token_size);
    }
    return n;
}

static int32_t step_token(const cosy_lm *lm, int i, int step)
{
    return (int32_t)((i * 131 + step * 17 + 5) % cosy_lm_hparams(lm)->speech_token_size);
}

/* Sequence i alone (the only state on the LM): its prompt, then STEPS one-position feeds; the
 * log-probabilities of each step into ref[step][V]. */
static void run_alone(cosy_lm *lm, int i, float *ref)
{
    const int V = cosy_lm_vocab(lm);
    cosy_lm_kind kinds[64];
    int32_t ids[64];
    int n = prompt(lm, i, kinds, ids);
    cosy_lm_state *st;
    CHECK_OK(cosy_lm_state_create(lm, 16, &st));
    if (!st) return;
    CHECK_OK(cosy_lm_feed(st, kinds, ids, n, ref));
    for (int s = 0; s < STEPS; s++) {
        cosy_lm_kind k = COSY_LM_SPEECH;
        int32_t tok = step_token(lm, i, s);
        CHECK_OK(cosy_lm_feed(st, &k, &tok, 1, ref + (size_t)s * V));
    }
    cosy_lm_state_free(st);
}

/* (a) for N = 2..8: the batch's rows against ref[i] (sequence i alone) */
static int check_batches(cosy_lm *lm, const float *ref, const char *label)
{
    const int V = cosy_lm_vocab(lm);
    float *out = malloc(sizeof(float) * (size_t)MAX_SEQ * V), *logp[MAX_SEQ];
    int identical = 1;
    for (int N = 2; N <= MAX_SEQ; N++) {
        cosy_lm_state *st[MAX_SEQ];
        cosy_lm_kind kinds[64], bk[MAX_SEQ];
        int32_t ids[64], bi[MAX_SEQ];
        for (int i = 0; i < N; i++) {
            CHECK_OK(cosy_lm_state_create(lm, 16, &st[i])); /* small: the batch grows their caches */
            int n = prompt(lm, i, kinds, ids);
            CHECK_OK(cosy_lm_feed(st[i], kinds, ids, n, NULL));
            logp[i] = out + (size_t)i * V;
        }
        for (int s = 0; s < STEPS; s++) {
            for (int i = 0; i < N; i++) bk[i] = COSY_LM_SPEECH, bi[i] = step_token(lm, i, s);
            if (s == 0) CHECK_OK(cosy_lm_feed_batch(st, bk, bi, N, logp));
            else { /* staggered: each newcomer joins a forward already under way and catches up */
                lm_request r[MAX_SEQ];
                lm_batch b = {.n = 0};
                for (int i = 0; i < N; i++) {
                    r[i] = (lm_request){.st = st[i], .kinds = &bk[i], .ids = &bi[i], .n = 1, .logp = logp[i]};
                    CHECK_OK(cosy_lm_state_reserve(st[i], cosy_lm_state_position(st[i]) + 1));
                    if (i > 0 && (i + s) % 2 && b.layer[0] + 1 < lm_layers(lm)) CHECK(!lm_batch_step(&b));
                    lm_batch_admit(&b, &r[i]);
                }
                while (!lm_batch_step(&b)) {}
            }
            for (int i = 0; i < N; i++)
                if (memcmp(logp[i], ref + ((size_t)i * STEPS + s) * V, sizeof(float) * V)) {
                    if (identical)
                        printf("  %s: batch of %d, step %d, sequence %d differs from alone by %.3g\n", label, N, s, i,
                               test_max_abs_diff(logp[i], ref + ((size_t)i * STEPS + s) * V, V));
                    identical = 0;
                }
        }
        for (int i = 0; i < N; i++) cosy_lm_state_free(st[i]);
    }
    free(out);
    CHECK(identical);
    return identical;
}

/* The property batching rests on, at the kernel level: cosy_gemv over T activation rows gives each row
 * the bits it gets alone (T = 1), for every type, on the current path; 37 weight rows so the tiles'
 * leftover rows are covered, 96 columns (3 blocks of 32: the quantised kernels' odd last block). */
static int check_gemv_rows(cosy_dtype dtype)
{
    enum { R = 37, K = 96 };
    static float w[R * K], x[COSY_GEMV_MAX_T * K], bias[R], y[COSY_GEMV_MAX_T * R], y1[R];
    static _Alignas(64) unsigned char wq[R * K * 4], scratch[1 << 16], scratch1[1 << 16];
    uint32_t seed = 12345u;
    for (int i = 0; i < R * K; i++) w[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    for (int i = 0; i < COSY_GEMV_MAX_T * K; i++) x[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 8388608.0f - 1.0f;
    for (int i = 0; i < R; i++) bias[i] = 0.01f * (float)i;
    cosy_convert_from_f32(wq, dtype, w, (int64_t)R * K);
    const cosy_matrix W = {dtype, R, K, wq};
    int same = 1;
    for (int T = 2; T <= COSY_GEMV_MAX_T; T++) {
        cosy_gemv_input in, in1;
        cosy_gemv_prepare(&in, dtype, x, T, K, scratch);
        cosy_gemv(&W, &in, bias, y, R, 0, R);
        for (int t = 0; t < T; t++) {
            cosy_gemv_prepare(&in1, dtype, x + (size_t)t * K, 1, K, scratch1);
            cosy_gemv(&W, &in1, bias, y1, R, 0, R);
            same = same && !memcmp(y1, y + (size_t)t * R, sizeof y1);
        }
    }
    CHECK(same);
    return same;
}

static void test_batches(const char *gguf)
{
    const cosy_dtype types[] = {COSY_DTYPE_F32, COSY_DTYPE_BF16, COSY_DTYPE_Q8_0, COSY_DTYPE_Q4_0};
    /* the paths: COSY_CPU caps, and the AVX-512 quantised kernels with VNNI and without */
    const struct { const char *name; cosy_cpu_level_t level; int vnni; } paths[] = {
        {"best", COSY_CPU_AMX, 1},
        {"avx512 without vnni", COSY_CPU_AVX512, 0},
        {"avx2", COSY_CPU_AVX2, 1},
        {"portable", COSY_CPU_PORTABLE, 1},
    };
    for (size_t d = 0; d < sizeof types / sizeof types[0]; d++) {
        cosy_model *m = load(gguf, types[d]);
        cosy_lm *lm = NULL;
        if (m) CHECK_OK(cosy_lm_get(m, &lm));
        if (!lm) {
            cosy_model_free(m);
            continue;
        }
        const int V = cosy_lm_vocab(lm);
        float *ref = malloc(sizeof(float) * (size_t)MAX_SEQ * STEPS * V);
        for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
            cosy_cpu_level_t got = cosy_cpu_cap(paths[p].level);
            int old_vnni = cosy_gemv_set_vnni(paths[p].vnni);
            char label[96];
            snprintf(label, sizeof label, "%s on %s (level %s, kernels %s)", cosy_dtype_name(types[d]), paths[p].name,
                     cosy_cpu_level_name(got), cosy_gemv_variant(types[d]));
            if ((paths[p].level != COSY_CPU_AMX && got != paths[p].level) ||
                (!paths[p].vnni && !cosy_cpu_get_features()->avx512vnni)) {
                printf("  %s: skipped (this CPU lacks the path)\n", label);
            } else {
                if (check_gemv_rows(types[d])) printf("  %s: gemv over 2..8 rows bit-identical to each row alone\n", label);
                for (int i = 0; i < MAX_SEQ; i++) run_alone(lm, i, ref + (size_t)i * STEPS * V);
                if (check_batches(lm, ref, label)) printf("  %s: batches of 2..%d bit-identical to alone\n", label, MAX_SEQ);
            }
            cosy_gemv_set_vnni(old_vnni);
        }
        cosy_cpu_reset();
        free(ref);
        cosy_model_free(m);
    }
}

/* ------------------------------------------------------------------ (b) threads through cosy_lm_feed */

#define THREADS 4
#define DECODE 40

typedef struct {
    cosy_lm *lm;
    int index;
    float *logp;              /* [DECODE + 1][V]: after the prompt, then after each step */
    pthread_barrier_t *start;
    cosy_status st;
} decoder;

/* Greedy decoding of sequence `index`: each step feeds the argmax of the last log-probabilities. */
static void *decode_main(void *arg)
{
    decoder *d = arg;
    const int V = cosy_lm_vocab(d->lm), S = cosy_lm_hparams(d->lm)->speech_token_size;
    cosy_lm_kind kinds[64];
    int32_t ids[64];
    int n = prompt(d->lm, d->index, kinds, ids);
    cosy_lm_state *st = NULL;
    d->st = cosy_lm_state_create(d->lm, 16, &st);
    if (d->start) pthread_barrier_wait(d->start);
    if (d->st == COSY_OK) d->st = cosy_lm_feed(st, kinds, ids, n, d->logp);
    for (int s = 0; d->st == COSY_OK && s < DECODE; s++) {
        const float *last = d->logp + (size_t)s * V;
        int32_t best = 0;
        for (int v = 1; v < S; v++)
            if (last[v] > last[best]) best = v;
        cosy_lm_kind k = COSY_LM_SPEECH;
        d->st = cosy_lm_feed(st, &k, &best, 1, d->logp + (size_t)(s + 1) * V);
    }
    if (d->start) pthread_barrier_wait(d->start); /* every state alive until all are done */
    cosy_lm_state_free(st);
    return NULL;
}

static void test_threads(const char *gguf, cosy_dtype dtype)
{
    cosy_model *m = load(gguf, dtype);
    cosy_lm *lm = NULL;
    if (m) CHECK_OK(cosy_lm_get(m, &lm));
    if (!lm) {
        cosy_model_free(m);
        return;
    }
    const int V = cosy_lm_vocab(lm);
    const size_t per = (size_t)(DECODE + 1) * V;
    float *ref = malloc(sizeof(float) * per * THREADS), *got = malloc(sizeof(float) * per * THREADS);
    for (int i = 0; i < THREADS; i++) { /* one after another: each the only sequence, fed inline */
        decoder d = {lm, i, ref + per * i, NULL, COSY_OK};
        decode_main(&d);
        CHECK_OK(d.st);
    }
    cosy_lm_batch_counts c0, c1;
    cosy_lm_batch_counts_get(lm, &c0);
    int rounds = 0, same = 1;
    do { /* until some steps have shared a forward (they do from the first round, in practice) */
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        decoder d[THREADS];
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++) {
            d[i] = (decoder){lm, i, got + per * i, &start, COSY_OK};
            pthread_create(&th[i], NULL, decode_main, &d[i]);
        }
        for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 0; i < THREADS; i++) CHECK_OK(d[i].st);
        same = same && !memcmp(ref, got, sizeof(float) * per * THREADS);
        cosy_lm_batch_counts_get(lm, &c1);
    } while (++rounds < 20 && c1.shared - c0.shared < 10);
    long forwards = c1.forwards - c0.forwards, requests = c1.requests - c0.requests, shared = c1.shared - c0.shared;
    printf("  %s, %d threads x %d steps, %d round(s): %ld feeds in %ld forwards, %ld shared, at most %d in one; %s\n",
           cosy_dtype_name(dtype), THREADS, DECODE, rounds, requests, forwards, shared, c1.largest,
           same ? "log-probabilities identical to one after another" : "LOG-PROBABILITIES DIFFER");
    CHECK(same);
    CHECK(shared > 0 && c1.largest > 1);
    free(ref);
    free(got);
    cosy_model_free(m);
}

/* ------------------------------------------------------------------ (c) sessions */

typedef struct {
    float *audio;
    int64_t n, cap;
} collected;

static void collect(void *user, const float *samples, int n)
{
    collected *c = user;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->audio = realloc(c->audio, sizeof(float) * (size_t)c->cap);
    }
    memcpy(c->audio + c->n, samples, sizeof(float) * (size_t)n);
    c->n += n;
}

typedef struct {
    cosy_model *model;
    cosy_voice *voice;
    collected c;
    cosy_status st;
} session_job;

static void *session_main(void *arg)
{
    session_job *j = arg;
    cosy_session_params p = cosy_session_default_params();
    p.seed = 77;
    p.stream = 1;
    p.on_audio = collect;
    p.user = &j->c;
    const char *text = "Two sessions share one model, and their decode steps share forwards.";
    cosy_session *s = NULL;
    j->st = cosy_session_create(j->model, j->voice, &p, &s);
    if (j->st == COSY_OK) j->st = cosy_session_push_text(s, text, strlen(text));
    if (j->st == COSY_OK) j->st = cosy_session_end_text(s);
    if (j->st == COSY_OK) j->st = cosy_session_wait(s);
    cosy_session_free(s);
    return NULL;
}

static void test_sessions(const char *gguf, cosy_dtype dtype)
{
    cosy_model *m = load(gguf, dtype);
    cosy_voice *voice = NULL;
    cosy_lm *lm = NULL;
    if (m) CHECK_OK(cosy_model_prepare(m));
    if (m) CHECK_OK(cosy_lm_get(m, &lm));
    if (m) CHECK_OK(cosy_voice_synthetic(m, 5, 20, 6, &voice));
    if (!lm || !voice) {
        cosy_voice_free(voice);
        cosy_model_free(m);
        return;
    }
    session_job alone = {m, voice, {0}, COSY_OK};
    session_main(&alone);
    CHECK_OK(alone.st);
    cosy_lm_batch_counts c0, c1;
    cosy_lm_batch_counts_get(lm, &c0);
    int rounds = 0, same = 1;
    do {
        session_job j[2] = {{m, voice, {0}, COSY_OK}, {m, voice, {0}, COSY_OK}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, session_main, &j[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 2; i++) {
            CHECK_OK(j[i].st);
            same = same && j[i].c.n == alone.c.n && !memcmp(j[i].c.audio, alone.c.audio, sizeof(float) * (size_t)alone.c.n);
            free(j[i].c.audio);
        }
        cosy_lm_batch_counts_get(lm, &c1);
    } while (++rounds < 10 && c1.shared == c0.shared);
    printf("  sessions (%s LM): %lld samples each, %d round(s), %ld shared forwards: %s\n", cosy_dtype_name(cosy_lm_dtype(lm)),
           (long long)alone.c.n, rounds, c1.shared - c0.shared, same ? "audio byte-identical to alone" : "AUDIO DIFFERS");
    CHECK(alone.c.n > 0 && same);
    CHECK(c1.shared > c0.shared);
    free(alone.c.audio);
    cosy_voice_free(voice);
    cosy_model_free(m);
}

int main(void)
{
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s", test_tmp("lm-batch-cv2-tiny.gguf"));
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), gguf, NULL));
    printf("(0, a) multi-row gemv, and one forward for N sequences, vs each row alone:\n");
    test_batches(gguf);
    printf("(b) threads decoding at once vs one after another:\n");
    test_threads(gguf, COSY_DTYPE_F32);
    test_threads(gguf, COSY_DTYPE_Q4_0);
    printf("(c) sessions at once vs alone:\n");
    test_sessions(gguf, COSY_DTYPE_F32);
    test_sessions(gguf, COSY_DTYPE_Q4_0);
    remove(gguf);
    return test_finish("test_lm_batch");
}
