/*
 * test_flow_stream.c — the cached streaming flow (flow_stream.h) equals the stateless flow call
 * the reference makes at every chunk: for each call of a schedule, cosy_flow_stream_step's mel
 * must equal cosy_flow_inference(tokens[0, n), streaming=1, finalize)[:, 2 offset:] within 1e-5
 * (max abs, f32; the worst error seen is printed — with the packed kernels it is exactly 0, every
 * value being computed in the same order as in the full call).
 *
 * Inputs: the tiny fixture model (cv2-tiny), the fixture's 200 speech tokens and long seeded random
 * sequences of 1500 tokens (60 s), prompts of P = 0, 20, 25, 26 and 37 tokens (the fixture prompt,
 * truncated or extended with seeded random tokens, its mel taken from feat_mel24k so there are
 * always 2P frames; P = 37 is the only one with a prompt chunk to cache: (37 - 3) / 25 = 1).
 * Schedules: the CosyVoice2 default, equal 25 (also with overlap), exponential (also with overlap),
 * odd hops of 1, 7, 13 (and 137, 211 on the long sequences) tokens per call, and finalize at prompt +
 * tokens just below, at and above a chunk boundary.
 *
 * Cost: a stateless call on the long sequences takes ~1 s on the tiny model, so there not every
 * call gets its own stateless run: every frame a call emits that lies in an attention chunk already
 * complete at that call (final: no later token changes it) is compared with one stateless call on
 * the whole sequence; the frames of the incomplete last chunk are compared with a stateless call of
 * that exact length for the calls listed in each run (first ones, a few spread over the sequence,
 * the last ones, always the final call). The summary line of each run says how many calls and
 * frames were checked which way; no frame goes unchecked in the fixture-length runs.
 */
#include "test.h"
#include "core/cpu.h"
#include "io/npy.h"
#include "model/flow/flow.h"
#include "model/flow/flow_internal.h"
#include "model/flow/flow_stream.h"
#include "model/model.h"
#include "stream/schedule.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

#define TOL 1e-5        /* max abs, f32, on mels of magnitude ~1-5 */
#define REL_TOL 1e-4    /* the manifest's tolerance against the official mels */
#define LONG_TOKENS 1500
#define MAX_CALLS 2048

static cosy_model *model;
static cosy_flow *flow;
static int lookahead, chunk_tokens;
static double worst;         /* largest error of any stream-vs-stateless comparison */
static long n_compared;      /* frames compared */

static npy_array load(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cv2-tiny/golden/%s.npy", name);
    npy_array a;
    memset(&a, 0, sizeof a);
    if (npy_load(test_data(rel), &a) != COSY_OK) fprintf(stderr, "cannot load %s: %s\n", rel, cosy_last_error());
    return a;
}

/* ---- inputs ---- */

static int32_t fixture_tokens[256], fixture_prompt[64], long_tokens[LONG_TOKENS];
static int n_fixture, n_fixture_prompt;
static npy_array mel24k, embedding, fixture_feat;

static uint64_t rng_state;
static uint32_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void random_tokens(int32_t *t, int n, uint64_t seed)
{
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) t[i] = (int32_t)(rng_next() % 6561u);
}

/* a prompt of P tokens: the fixture's, then seeded random ones; its mel is feat_mel24k[:2P] (the
 * fixture prompt_feat is feat_mel24k[:40]) */
typedef struct {
    int P;
    int32_t tokens[64];
    const float *feat;
    cosy_flow_prompt *state;
} prompt_t;

static void make_prompt(prompt_t *p, int P)
{
    memset(p, 0, sizeof *p);
    p->P = P;
    int32_t extra[64];
    random_tokens(extra, 64, 1000 + (uint64_t)P);
    for (int i = 0; i < P; i++) p->tokens[i] = i < n_fixture_prompt ? fixture_prompt[i] : extra[i];
    p->feat = mel24k.f32;
    CHECK(2 * P <= mel24k.shape[1]);
    CHECK_OK(cosy_flow_prompt_create(flow, p->tokens, P, p->feat, embedding.f32, &p->state));
}

/* ---- schedules ---- */

typedef struct {
    int n, offset, finalize;
} call_t;

static int schedule_calls(cosy_chunk_strategy strategy, int chunk, int overlap, int P, int N, call_t *calls)
{
    cosy_schedule s;
    CHECK_OK(cosy_schedule_init(&s, strategy, chunk, overlap, 0, lookahead, P));
    int k = 0;
    cosy_schedule_call c;
    for (int avail = 1; avail <= N && k < MAX_CALLS; avail++)
        while (k < MAX_CALLS && cosy_schedule_next(&s, avail, avail == N, &c)) calls[k++] = (call_t){c.end, c.offset, c.finalize};
    return k;
}

/* fixed hops: each call emits `hop` tokens (and needs the look-ahead after them); the last call
 * finalizes at n_final */
static int hop_calls(int hop, int n_final, call_t *calls)
{
    int k = 0, offset = 0;
    while (offset + hop + lookahead <= n_final && k < MAX_CALLS - 1) {
        calls[k++] = (call_t){offset + hop + lookahead, offset, 0};
        offset += hop;
    }
    calls[k++] = (call_t){n_final, offset, 1};
    return k;
}

/* ---- running and comparing ---- */

static double max_diff_frames(const float *a, int a_frames, int a_first, const float *b, int b_frames, int b_first, int frames)
{
    double d = 0;
    for (int c = 0; c < 80; c++) {
        double dc = test_max_abs_diff(a + (size_t)c * a_frames + a_first, b + (size_t)c * b_frames + b_first, frames);
        d = dc > d ? dc : d;
    }
    return d;
}

static void note_error(double e, long frames, const char *what, int call, int n)
{
    n_compared += frames;
    if (e > worst || e != e) worst = e != e ? INFINITY : e;
    if (!(e <= TOL)) fprintf(stderr, "%s: call %d (n = %d): stream differs from the stateless call by %g\n", what, call, n, e);
    CHECK(e <= TOL);
}

/* the stateless call the reference makes: all frames after the prompt */
static double t_stream, t_stateless; /* seconds spent in each */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *stateless(const int32_t *tokens, int n, const prompt_t *p, int finalize, int *frames)
{
    double t0 = now_s();
    float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)n);
    *frames = -1;
    CHECK_OK(cosy_flow_inference(flow, tokens, n, p->tokens, p->P, p->feat, embedding.f32, 1, finalize, mel, frames));
    t_stateless += now_s() - t0;
    return mel;
}

/* stateless results of one (token sequence, prompt), kept so schedules that make the same call
 * share one reference run */
#define MEMO_MAX 512
typedef struct {
    const int32_t *tokens;
    const prompt_t *p;
    int count, computed;
    struct {
        int n, finalize, frames;
        float *mel;
    } e[MEMO_MAX];
} memo_t;

static const float *memo_get(memo_t *m, int n, int finalize, int *frames)
{
    for (int i = 0; i < m->count; i++)
        if (m->e[i].n == n && m->e[i].finalize == finalize) {
            *frames = m->e[i].frames;
            return m->e[i].mel;
        }
    if (m->count == MEMO_MAX) { /* full: forget the oldest */
        free(m->e[0].mel);
        memmove(&m->e[0], &m->e[1], sizeof m->e[0] * (MEMO_MAX - 1));
        m->count--;
    }
    float *mel = stateless(m->tokens, n, m->p, finalize, frames);
    m->e[m->count].n = n;
    m->e[m->count].finalize = finalize;
    m->e[m->count].frames = *frames;
    m->e[m->count].mel = mel;
    m->count++;
    m->computed++;
    return mel;
}

static void memo_clear(memo_t *m)
{
    for (int i = 0; i < m->count; i++) free(m->e[i].mel);
    m->count = 0;
}

/*
 * Runs `calls` on a fresh stream of prompt p. A call for which whole(k, n) says so (and every
 * final call) is compared whole with its own stateless call; the others by their frames in chunks
 * complete at that call, against the stateless non-final call on all ref_n tokens (whose complete
 * chunks hold the final values of every frame).
 */
typedef int (*whole_fn)(int k, int n_calls, int n);

static int whole_all(int k, int n_calls, int n) { (void)k; (void)n_calls; (void)n; return 1; }

static void run(const char *label, memo_t *memo, const call_t *calls, int n_calls, whole_fn whole, int ref_n)
{
    const prompt_t *p = memo->p;
    const int32_t *tokens = memo->tokens;
    cosy_flow_stream *s = NULL;
    CHECK_OK(cosy_flow_stream_create(flow, p->state, &s));
    if (!s) return;
    int n_whole = 0, n_part = 0;
    long frames_part = 0, frames_tail = 0;
    float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)calls[n_calls - 1].n + 16);
    for (int k = 0; k < n_calls; k++) {
        const call_t *c = &calls[k];
        const int ctx = c->finalize ? 0 : lookahead;
        int F = -1;
        double t0 = now_s();
        CHECK_OK(cosy_flow_stream_step(s, tokens, c->n, c->offset, c->finalize, mel, &F));
        t_stream += now_s() - t0;
        CHECK(F == 2 * (c->n - ctx - c->offset));
        if (F != 2 * (c->n - ctx - c->offset)) break;
        if (c->finalize || whole(k, n_calls, c->n)) {
            int frames;
            const float *want = memo_get(memo, c->n, c->finalize, &frames);
            CHECK(frames == 2 * (c->n - ctx));
            if (frames == 2 * (c->n - ctx)) note_error(max_diff_frames(mel, F, 0, want, frames, 2 * c->offset, F), F, label, k, c->n);
            n_whole++;
        } else {
            /* speech frame f lies in chunk (2P + f) / 50, final once its 25 tokens end at or before
             * P + n - look-ahead */
            int ref_frames;
            const float *ref = memo_get(memo, ref_n, 0, &ref_frames);
            const int tokens_final = (p->P + c->n - ctx) / chunk_tokens * chunk_tokens;
            int final_frames = 2 * (tokens_final - p->P) - 2 * c->offset;
            if (final_frames < 0) final_frames = 0;
            if (final_frames > F) final_frames = F;
            CHECK(c->n <= ref_n);
            if (final_frames > 0)
                note_error(max_diff_frames(mel, F, 0, ref, ref_frames, 2 * c->offset, final_frames), final_frames, label, k, c->n);
            frames_part += final_frames;
            frames_tail += F - final_frames;
            n_part++;
        }
    }
    free(mel);
    if (n_part)
        printf("  %-28s %4d calls: %3d compared whole; %4d by the %5ld frames of their complete chunks (%ld frames of incomplete "
               "chunks not compared)\n", label, n_calls, n_whole, n_part, frames_part, frames_tail);
    else
        printf("  %-28s %4d calls, all compared whole\n", label, n_calls);
    cosy_flow_stream_free(s);
}

/* ---- the official streaming loop (fixture) ---- */

static void test_fixture_schedule(void)
{
    prompt_t p;
    make_prompt(&p, n_fixture_prompt);
    /* the fixture prompt is feat_mel24k[:40] */
    CHECK(test_max_abs_diff(p.feat, fixture_feat.f32, (long)fixture_feat.numel) == 0.0);
    npy_array sched = load("stream_schedule");
    CHECK(sched.ndim == 2 && sched.shape[1] == 4);
    cosy_flow_stream *s = NULL;
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &s));
    int k = 0, last_offset = 0;
    for (; s && k < sched.shape[0]; k++) {
        int offset = (int)sched.i64[k * 4], n = (int)sched.i64[k * 4 + 1], finalize = (int)sched.i64[k * 4 + 2];
        int streaming = (int)sched.i64[k * 4 + 3];
        if (!streaming || finalize) break; /* the official final call runs with full attention */
        float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)n);
        int F = -1;
        CHECK_OK(cosy_flow_stream_step(s, fixture_tokens, n, offset, 0, mel, &F));
        char name[64];
        snprintf(name, sizeof name, "t2w_%d_flow_mel", k);
        npy_array ref = load(name);
        int ref_frames = (int)ref.shape[2];
        CHECK(F == ref_frames - 2 * offset);
        double mx = 0;
        for (int64_t i = 0; i < ref.numel; i++) mx = fabs(ref.f32[i]) > mx ? fabs(ref.f32[i]) : mx;
        double e = max_diff_frames(mel, F, 0, ref.f32, ref_frames, 2 * offset, F);
        printf("  official call %d (n = %d, offset %d): max abs %.3g, rel %.3g vs %s[:, :, %d:]\n", k, n, offset, e, e / mx, name,
               2 * offset);
        CHECK(e / mx <= REL_TOL);
        /* and exactly our own stateless call */
        int frames;
        float *want = stateless(fixture_tokens, n, &p, 0, &frames);
        note_error(max_diff_frames(mel, F, 0, want, frames, 2 * offset, F), F, "official schedule", k, n);
        free(want);
        npy_free(&ref);
        free(mel);
        last_offset = offset + (n - lookahead - offset);
    }
    CHECK(k == 3);
    /* the chunk-causal final call (cosy's default) vs t2w_final_streaming_true_flow_mel */
    if (s) {
        float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)n_fixture);
        int F = -1;
        CHECK_OK(cosy_flow_stream_step(s, fixture_tokens, n_fixture, last_offset, 1, mel, &F));
        npy_array ref = load("t2w_final_streaming_true_flow_mel");
        int ref_frames = (int)ref.shape[2];
        CHECK(F == ref_frames - 2 * last_offset);
        double mx = 0;
        for (int64_t i = 0; i < ref.numel; i++) mx = fabs(ref.f32[i]) > mx ? fabs(ref.f32[i]) : mx;
        double e = max_diff_frames(mel, F, 0, ref.f32, ref_frames, 2 * last_offset, F);
        printf("  final chunk-causal call (n = %d, offset %d): max abs %.3g, rel %.3g vs t2w_final_streaming_true_flow_mel\n", n_fixture,
               last_offset, e, e / mx);
        CHECK(e / mx <= REL_TOL);
        npy_free(&ref);
        free(mel);
        /* finished */
        float dummy[80 * 8];
        CHECK_FAILS(cosy_flow_stream_step(s, fixture_tokens, n_fixture, 0, 1, dummy, &F), COSY_ERR_INVALID_ARG, "finalized");
    }
    cosy_flow_stream_free(s);
    npy_free(&sched);
    cosy_flow_prompt_free(p.state);
}

/* ---- the schedule matrix ---- */

/* hops 7 and 13 on the fixture tokens: every third call, the first and the last ones */
static int whole_third(int k, int n_calls, int n) { (void)n; return k % 3 == 0 || k >= n_calls - 2; }

/* on the long sequences: calls up to 100 tokens, and the ones listed */
static int whole_list_n[16], whole_list_count;
static int whole_listed(int k, int n_calls, int n)
{
    (void)k;
    (void)n_calls;
    for (int i = 0; i < whole_list_count; i++)
        if (whole_list_n[i] == n) return 1;
    return n <= 100;
}

/* segments of hops: (hop, count) pairs, count < 0 meaning "until offset reaches -count" */
static int segment_calls(const int (*segs)[2], int n_segs, int n_final, call_t *calls)
{
    int k = 0, offset = 0;
    for (int i = 0; i < n_segs; i++) {
        const int hop = segs[i][0];
        for (int j = 0; segs[i][1] >= 0 ? j < segs[i][1] : offset < -segs[i][1]; j++) {
            if (offset + hop + lookahead > n_final || k >= MAX_CALLS - 1) break;
            calls[k++] = (call_t){offset + hop + lookahead, offset, 0};
            offset += hop;
        }
    }
    calls[k++] = (call_t){n_final, offset, 1};
    return k;
}

/*
 * The schedules for one token sequence and each prompt. long_run: the 60 s sequence, where a
 * stateless call costs ~1 s and a stream call ~0.1 s on the tiny model, so fewer schedules run
 * (each still to the end) and only some calls are compared whole (see the file comment).
 */
static void test_matrix(const int32_t *tokens, int N, const char *seq, int long_run, const int *prompts, int n_prompts)
{
    static call_t calls[MAX_CALLS];
    static memo_t memo;
    for (int pi = 0; pi < n_prompts; pi++) {
        prompt_t p;
        make_prompt(&p, prompts[pi]);
        if (!p.state) continue;
        CHECK(cosy_flow_prompt_chunks(p.state) == (p.P > lookahead ? (p.P - lookahead) / chunk_tokens : 0));
        printf(" %s, P = %d (%d prompt chunk%s cached):\n", seq, p.P, cosy_flow_prompt_chunks(p.state),
               cosy_flow_prompt_chunks(p.state) == 1 ? "" : "s");
        memo.tokens = tokens;
        memo.p = &p;
        memo.computed = 0;
        whole_list_count = 0;
        whole_fn some = long_run ? whole_listed : whole_all;
        /* on the 60 s sequence each prompt runs the default schedule and two others, so every
         * schedule meets two prompts there (P = 37, the prompt-chunk case, runs the default only) */
        const int run_equal = !long_run || p.P == 0 || p.P == 25, run_exp = !long_run || p.P == 0 || p.P == 26;
        const int run_exp_overlap = !long_run || p.P == 20 || p.P == 25, run_odd = !long_run || p.P == 20 || p.P == 26;
        int n_calls;
        n_calls = schedule_calls(COSY_CHUNK_DEFAULT, 25, 0, p.P, N, calls);
        run("default", &memo, calls, n_calls, some, N);
        if (run_equal) {
            n_calls = schedule_calls(COSY_CHUNK_EQUAL, 25, 0, p.P, N, calls);
            run("equal 25", &memo, calls, n_calls, some, N);
        }
        if (!long_run) {
            n_calls = schedule_calls(COSY_CHUNK_EQUAL, 25, 6, p.P, N, calls);
            run("equal 25, overlap 6", &memo, calls, n_calls, some, N);
        }
        if (run_exp) {
            n_calls = schedule_calls(COSY_CHUNK_EXPONENTIAL, 25, 0, p.P, N, calls);
            run("exponential", &memo, calls, n_calls, some, N);
        }
        if (run_exp_overlap) {
            n_calls = schedule_calls(COSY_CHUNK_EXPONENTIAL, 25, 5, p.P, N, calls);
            run("exponential, overlap 5", &memo, calls, n_calls, some, N);
        }

        if (!long_run) {
            /* every length from 4 to 60 tokens (two or three chunk boundaries), then the rest at once */
            const int ones[][2] = {{1, 57}};
            n_calls = segment_calls(ones, 1, N, calls);
            run("hop 1", &memo, calls, n_calls, whole_all, N);
            n_calls = hop_calls(7, N, calls);
            run("hop 7", &memo, calls, n_calls, whole_third, N);
            n_calls = hop_calls(13, N, calls);
            run("hop 13", &memo, calls, n_calls, whole_third, N);
            /* finalize with prompt + tokens just below, at and above a chunk boundary, after
             * non-final calls ending mid-chunk (unless P is a multiple of 25) */
            const int boundary = (p.P + N - 40) / chunk_tokens * chunk_tokens;
            for (int delta = -1; delta <= 1; delta++) {
                char label[48];
                snprintf(label, sizeof label, "finalize at P + n = %d", boundary + delta);
                n_calls = hop_calls(25, boundary + delta - p.P, calls);
                run(label, &memo, calls, n_calls, whole_all, N);
            }
        } else if (run_odd) {
            /* odd hops where the left context is long: 137 to ~25 s, then 27 x 1, 8 x 7, 6 x 13;
             * 137 again to ~56 s, then 3 x 13, 3 x 7, 8 x 1, and the final call */
            const int segs[][2] = {{137, -620}, {1, 27}, {7, 8}, {13, 6}, {137, -(N - 100)}, {13, 3}, {7, 3}, {1, 8}};
            n_calls = segment_calls(segs, 8, N, calls);
            for (int k = 1; k < n_calls - 1; k++) /* the last call of each run of 1-token hops */
                if (calls[k].n - calls[k - 1].n == 1 && (k + 1 == n_calls - 1 || calls[k + 1].n - calls[k].n != 1) && whole_list_count < 16)
                    whole_list_n[whole_list_count++] = calls[k].n;
            run("hops 137, 1, 7, 13", &memo, calls, n_calls, whole_listed, N);
        }
        printf("  (%d stateless reference calls; so far %.1f s in streams, %.1f s in stateless calls)\n", memo.computed, t_stream,
               t_stateless);
        memo_clear(&memo);
        cosy_flow_prompt_free(p.state);
    }
}

/* ---- state, memory, sharing, errors ---- */

static void test_sharing_and_errors(void)
{
    prompt_t p;
    make_prompt(&p, 37);
    if (!p.state) return;
    CHECK(cosy_flow_prompt_chunks(p.state) == 1);
    CHECK(cosy_flow_prompt_bytes(p.state) > 0);
    /* two streams of one prompt, interleaved, give the same mel as one alone (the prompt's pages
     * are only read), and chunks become final as calls complete them */
    cosy_flow_stream *a = NULL, *b = NULL;
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &a));
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &b));
    if (!a || !b) goto done;
    CHECK(cosy_flow_stream_chunks(a) == 1);
    float *ma = malloc(sizeof(float) * 80 * 400), *mb = malloc(sizeof(float) * 80 * 400);
    int Fa, Fb;
    const int ends[] = {16, 41, 66, 120};
    for (int k = 0; k < 4; k++) {
        int offset = k ? ends[k - 1] - lookahead : 0;
        CHECK_OK(cosy_flow_stream_step(a, fixture_tokens, ends[k], offset, 0, ma, &Fa));
        CHECK_OK(cosy_flow_stream_step(b, fixture_tokens, ends[k], offset, 0, mb, &Fb));
        CHECK(Fa == Fb && Fa == 2 * (ends[k] - lookahead - offset));
        CHECK(test_max_abs_diff(ma, mb, 80L * Fa) == 0.0);
        /* P + n - 3 = 50, 75, 100, 154 tokens: chunks 2, 3, 4, 6 final */
        CHECK(cosy_flow_stream_chunks(a) == (37 + ends[k] - lookahead) / chunk_tokens);
    }
    size_t bytes = cosy_flow_stream_bytes(a);
    CHECK(bytes > 0);
    printf("  stream cache after 154 tokens (tiny model): %zu bytes; prompt: %zu bytes\n", bytes, cosy_flow_prompt_bytes(p.state));

    /* rejected calls leave the stream as it was */
    int32_t changed[256];
    memcpy(changed, fixture_tokens, sizeof changed);
    changed[10] = (changed[10] + 1) % 6561;
    CHECK_FAILS(cosy_flow_stream_step(a, changed, 130, 117, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "changed");
    CHECK_FAILS(cosy_flow_stream_step(a, fixture_tokens, 100, 90, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "fewer than");
    CHECK_FAILS(cosy_flow_stream_step(a, fixture_tokens, 130, 128, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "offset");
    CHECK_FAILS(cosy_flow_stream_step(a, fixture_tokens, 130, -1, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "offset");
    changed[125] = 6561;
    memcpy(changed, fixture_tokens, sizeof(int32_t) * 125);
    CHECK_FAILS(cosy_flow_stream_step(a, changed, 130, 117, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "outside");
    CHECK_FAILS(cosy_flow_stream_step(a, fixture_tokens, 130, 117, 0, NULL, &Fa), COSY_ERR_INVALID_ARG, "output");
    CHECK_FAILS(cosy_flow_stream_step(NULL, fixture_tokens, 130, 117, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "no stream");
    /* the next valid call (windows overlapping the previous one too) still matches */
    CHECK_OK(cosy_flow_stream_step(a, fixture_tokens, 130, 100, 0, ma, &Fa));
    int frames;
    float *want = stateless(fixture_tokens, 130, &p, 0, &frames);
    CHECK(Fa == frames - 200);
    if (Fa == frames - 200) note_error(max_diff_frames(ma, Fa, 0, want, frames, 200, Fa), Fa, "after rejected calls", 4, 130);
    free(want);
    /* a non-final call needs more than the look-ahead */
    cosy_flow_stream *c = NULL;
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &c));
    CHECK_FAILS(cosy_flow_stream_step(c, fixture_tokens, 3, 0, 0, ma, &Fa), COSY_ERR_INVALID_ARG, "look-ahead");
    /* a one-token final call */
    CHECK_OK(cosy_flow_stream_step(c, fixture_tokens, 1, 0, 1, ma, &Fa));
    CHECK(Fa == 2);
    want = stateless(fixture_tokens, 1, &p, 1, &frames);
    if (frames == 2) note_error(max_diff_frames(ma, 2, 0, want, 2, 0, 2), 2, "one token", 0, 1);
    free(want);
    cosy_flow_stream_free(c);
    free(ma);
    free(mb);
done:
    cosy_flow_stream_free(a);
    cosy_flow_stream_free(b);
    /* bad prompts */
    cosy_flow_prompt *bad = NULL;
    CHECK_FAILS(cosy_flow_prompt_create(flow, p.tokens, 5, NULL, embedding.f32, &bad), COSY_ERR_INVALID_ARG, "prompt");
    CHECK_FAILS(cosy_flow_prompt_create(flow, p.tokens, 5, p.feat, NULL, &bad), COSY_ERR_INVALID_ARG, "embedding");
    int32_t bad_tok[2] = {1, 7000};
    CHECK_FAILS(cosy_flow_prompt_create(flow, bad_tok, 2, p.feat, embedding.f32, &bad), COSY_ERR_INVALID_ARG, "outside");
    CHECK(bad == NULL);
    CHECK_FAILS(cosy_flow_stream_create(flow, NULL, NULL), COSY_ERR_INVALID_ARG, "prompt");
    cosy_flow_prompt_free(p.state);
}


/* ---- the window (bounded memory): a windowed stream equals the stateless windowed call, equals the
 * exact one while the utterance fits the window, and keeps its memory bounded; how far the mel moves
 * from the exact one once the window is full is measured ---- */

static void test_window(void)
{
    const int chunk2 = 2 * chunk_tokens, window = 2 * chunk2; /* 2 chunks: 2 s at the real size */
    prompt_t p;
    make_prompt(&p, 37); /* one cached prompt chunk; prompt frames 0..73 pinned: chunks 0, 1 */
#if defined(__SANITIZE_ADDRESS__)
    const int N = 260; /* ~5x slower under ASan: long enough for the window to hide frames */
#else
    const int N = 400;
#endif
    call_t calls[MAX_CALLS];
    int n_calls = hop_calls(25, N, calls);
    cosy_flow_stream *st = NULL;
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &st));
    if (!st) return;
    CHECK_FAILS(cosy_flow_stream_set_window(st, 30), COSY_ERR_INVALID_ARG, "whole number");
    CHECK_OK(cosy_flow_stream_set_window(st, window));
    float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)N), *want = malloc(sizeof(float) * 80 * 2 * (size_t)N);
    float *exact = malloc(sizeof(float) * 80 * 2 * (size_t)N);
    double worst_window = 0, drift = 0, mag = 0;
    int first_drift_frame = -1;
    size_t most_bytes = 0;
    for (int k = 0; k < n_calls; k++) {
        int F = -1, frames = -1, frames_exact = -1;
        CHECK_OK(cosy_flow_stream_step(st, long_tokens, calls[k].n, calls[k].offset, calls[k].finalize, mel, &F));
        CHECK_OK(cosy_flow_inference_window(flow, long_tokens, calls[k].n, p.tokens, p.P, p.feat, embedding.f32, calls[k].finalize, window,
                                            want, &frames));
        const double e = max_diff_frames(mel, F, 0, want, frames, 2 * calls[k].offset, F);
        worst_window = fmax(worst_window, e);
        if (!(e <= TOL)) fprintf(stderr, "window: call %d (n = %d): stream differs from the stateless windowed call by %g\n", k, calls[k].n, e);
        CHECK(e <= TOL);
        CHECK_OK(cosy_flow_inference(flow, long_tokens, calls[k].n, p.tokens, p.P, p.feat, embedding.f32, 1, calls[k].finalize, exact,
                                     &frames_exact));
        for (int f = 0; f < F; f++) {
            /* a frame of chunk g (absolute) sees every earlier frame while (g + 1) chunks fit in the window plus the pinned chunks */
            const int abs_frame = 2 * (p.P + calls[k].offset) + f, g = abs_frame / chunk2;
            double d = 0;
            for (int c = 0; c < 80; c++) {
                d = fmax(d, fabs(mel[(size_t)c * F + f] - exact[(size_t)c * frames_exact + 2 * calls[k].offset + f]));
                mag = fmax(mag, fabs(exact[(size_t)c * frames_exact + 2 * calls[k].offset + f]));
            }
            if ((g + 1) * chunk2 - window <= 2 * chunk2) CHECK(d <= TOL); /* nothing hidden yet */
            else if (d > TOL && first_drift_frame < 0) first_drift_frame = abs_frame;
            if ((g + 1) * chunk2 - window > 2 * chunk2) drift = fmax(drift, d);
        }
        const size_t bytes = cosy_flow_stream_kv_bytes(st);
        if (bytes > most_bytes) most_bytes = bytes;
    }
    /* the blocks kept: pinned ones + the window + the current chunk's and the look-ahead's */
    const size_t block = flow_kv_block_bytes(flow), kv_bound = block * (size_t)((2 * chunk2 + window + 2 * chunk2 + 31) / 32 + 3);
    printf("  window of %d frames, %d calls to %d tokens: stream vs stateless windowed %.3g max abs; vs the exact mel (once frames were "
           "hidden, from frame %d on) %.3g max abs (%.3g of the largest value); its key/value blocks at most %.1f MB (bound %.1f MB)\n",
           window, n_calls, N, worst_window, first_drift_frame, drift, drift / mag, most_bytes / 1e6, kv_bound / 1e6);
    CHECK(first_drift_frame > 0); /* the window does hide frames in this run */
    CHECK(most_bytes <= kv_bound);
    free(mel);
    free(want);
    free(exact);
    cosy_flow_stream_free(st);
    cosy_flow_prompt_free(p.state);
}

/* ---- the voice cache: the same prompt twice is computed once; other voices, the budget, LRU ---- */

static void test_voice_cache(void)
{
    prompt_t p;
    make_prompt(&p, 37);
    int voices0;
    long hits0, misses0;
    cosy_flow_voice_cache_stats(flow, &voices0, NULL, &hits0, &misses0);
    cosy_flow_prompt *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(cosy_flow_prompt_get(flow, p.tokens, p.P, p.feat, embedding.f32, &a));
    CHECK_OK(cosy_flow_prompt_get(flow, p.tokens, p.P, p.feat, embedding.f32, &b));
    CHECK(a && a == b); /* the second request reuses the first one's state */
    long hits, misses;
    int voices;
    size_t bytes;
    cosy_flow_voice_cache_stats(flow, &voices, &bytes, &hits, &misses);
    CHECK(hits == hits0 + 1 && misses == misses0 + 1 && voices == voices0 + 1);
    CHECK(bytes >= cosy_flow_prompt_bytes(a));
    /* the cached state streams exactly like a freshly made one */
    cosy_flow_stream *s1 = NULL, *s2 = NULL;
    float *m1 = malloc(sizeof(float) * 80 * 100), *m2 = malloc(sizeof(float) * 80 * 100);
    int f1 = -1, f2 = -1;
    CHECK_OK(cosy_flow_stream_create(flow, b, &s1));
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &s2));
    CHECK_OK(cosy_flow_stream_step(s1, fixture_tokens, 28, 0, 0, m1, &f1));
    CHECK_OK(cosy_flow_stream_step(s2, fixture_tokens, 28, 0, 0, m2, &f2));
    CHECK(f1 == 50 && f2 == 50 && test_max_abs_diff(m1, m2, 80L * 50) == 0.0);
    /* another embedding is another voice */
    float *other = malloc(sizeof(float) * 192);
    for (int i = 0; i < 192; i++) other[i] = embedding.f32[i] * 0.5f;
    CHECK_OK(cosy_flow_prompt_get(flow, p.tokens, p.P, p.feat, other, &c));
    CHECK(c && c != a);
    cosy_flow_voice_cache_stats(flow, &voices, NULL, &hits, &misses);
    CHECK(misses == misses0 + 2 && voices == voices0 + 2);
    /* released by every user, still cached: streams made later reuse it */
    cosy_flow_stream_free(s1);
    cosy_flow_prompt_free(a);
    cosy_flow_prompt_free(b);
    CHECK_OK(cosy_flow_prompt_get(flow, p.tokens, p.P, p.feat, embedding.f32, &a));
    cosy_flow_voice_cache_stats(flow, NULL, NULL, &hits, NULL);
    CHECK(hits == hits0 + 2);
    /* cleared (the model's end): prompts in use stay valid until released */
    flow_voice_cache_clear(flow);
    cosy_flow_voice_cache_stats(flow, &voices, &bytes, NULL, NULL);
    CHECK(voices == 0 && bytes == 0);
    CHECK_OK(cosy_flow_stream_create(flow, a, &s1));
    CHECK_OK(cosy_flow_stream_step(s1, fixture_tokens, 28, 0, 0, m1, &f1));
    CHECK(test_max_abs_diff(m1, m2, 80L * 50) == 0.0);
    cosy_flow_stream_free(s1);
    cosy_flow_stream_free(s2);
    cosy_flow_prompt_free(a);
    cosy_flow_prompt_free(c);
    free(other);
    free(m1);
    free(m2);
    cosy_flow_prompt_free(p.state);
    printf("  voice cache: a repeated voice is found, its state streams like a fresh one, clearing keeps voices in use alive\n");
}

/* ---- the bf16 flow (AMX and AVX512-BF16 kernels): the cache works the same way; its distance from
 * f32 is bounded as the README says (mel within 1% of the largest value) ---- */

static void test_bf16_level(const char *gguf, cosy_cpu_level_t level)
{
    cosy_cpu_cap(level);
    cosy_model_params mp = test_f32_params();
    mp.flow_dtype = COSY_DTYPE_BF16;
    cosy_model *m16 = NULL;
    CHECK_OK(cosy_model_load(gguf, &mp, &m16));
    if (!m16) return;
    CHECK(cosy_model_flow_dtype(m16) == COSY_DTYPE_BF16);
    cosy_flow *f32_flow = flow;
    CHECK_OK(cosy_flow_get(m16, &flow));
    prompt_t p;
    make_prompt(&p, n_fixture_prompt);
    call_t calls[64];
    int n_calls = hop_calls(25, n_fixture, calls);
    cosy_flow_stream *st = NULL;
    CHECK_OK(cosy_flow_stream_create(flow, p.state, &st));
    double worst_stream = 0, worst_f32 = 0, mag = 0;
    float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)n_fixture);
    for (int k = 0; st && k < n_calls; k++) {
        int F = -1, frames, frames32;
        CHECK_OK(cosy_flow_stream_step(st, fixture_tokens, calls[k].n, calls[k].offset, calls[k].finalize, mel, &F));
        float *want = stateless(fixture_tokens, calls[k].n, &p, calls[k].finalize, &frames);
        worst_stream = fmax(worst_stream, max_diff_frames(mel, F, 0, want, frames, 2 * calls[k].offset, F));
        cosy_flow *keep = flow;
        flow = f32_flow;
        float *ref = stateless(fixture_tokens, calls[k].n, &p, calls[k].finalize, &frames32);
        flow = keep;
        worst_f32 = fmax(worst_f32, max_diff_frames(mel, F, 0, ref, frames32, 2 * calls[k].offset, F));
        for (long i = 0; i < 80L * frames32; i++) mag = fmax(mag, fabs(ref[i]));
        free(want);
        free(ref);
    }
    printf("  bf16 flow on %s, %d calls of 25 tokens: stream vs stateless (both bf16) %.3g max abs; bf16 vs f32 %.3g max abs (%.3g of the "
           "largest value)\n", cosy_cpu_level_name(level), n_calls, worst_stream, worst_f32, worst_f32 / mag);
    /* the stream and the stateless call group keys into blocks differently: f32 rounding apart */
    CHECK(worst_stream <= 1e-4 * mag);
    CHECK(worst_f32 / mag <= 0.01); /* measured 0.24% here, 0.55% on the full-size model (cosy bench flow) */
    free(mel);
    cosy_flow_stream_free(st);
    cosy_flow_prompt_free(p.state);
    flow = f32_flow;
    cosy_model_free(m16);
    cosy_cpu_reset();
}

static void test_bf16(const char *gguf)
{
    const cosy_cpu_level_t levels[] = {COSY_CPU_AVX512BF16, COSY_CPU_AMX};
    for (int i = 0; i < 2; i++) {
        if (cosy_cpu_level() < levels[i]) printf("  SKIP bf16 flow on %s: this CPU lacks it\n", cosy_cpu_level_name(levels[i]));
        else test_bf16_level(gguf, levels[i]);
    }
}

int main(void)
{
    const char *gguf = test_tmp("flow-stream-tiny.gguf");
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), gguf, NULL));
    const cosy_model_params exact = test_f32_params();
    CHECK_OK(cosy_model_load(gguf, &exact, &model));
    if (!model) return test_finish("test_flow_stream");
    CHECK_OK(cosy_flow_get(model, &flow));
    if (!flow) return test_finish("test_flow_stream");
    lookahead = model->hp.pre_lookahead_len;
    chunk_tokens = model->hp.enc_static_chunk;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("flow kernels: %s\n", flow->fast ? "packed AVX-512" : "portable (sgemm)");

    npy_array tok = load("speech_token"), ptok = load("prompt_speech_token");
    mel24k = load("feat_mel24k");
    embedding = load("embedding");
    fixture_feat = load("prompt_feat");
    n_fixture = (int)tok.numel;
    n_fixture_prompt = (int)ptok.numel;
    CHECK(n_fixture == 200 && n_fixture_prompt == 20 && mel24k.shape[1] == 75);
    for (int i = 0; i < n_fixture && i < 256; i++) fixture_tokens[i] = (int32_t)tok.i64[i];
    for (int i = 0; i < n_fixture_prompt && i < 64; i++) fixture_prompt[i] = (int32_t)ptok.i64[i];
    random_tokens(long_tokens, LONG_TOKENS, 2024);

    printf("official streaming schedule (fixture):\n");
    test_fixture_schedule();
    const int prompts[] = {0, 20, 25, 26, 37};
    printf("schedules on the fixture's %d tokens:\n", n_fixture);
    test_matrix(fixture_tokens, n_fixture, "fixture tokens", 0, prompts, 5);
    printf("schedules on %d random tokens (%d s):\n", LONG_TOKENS, LONG_TOKENS / 25);
#if defined(__SANITIZE_ADDRESS__)
    /* ~5x slower under ASan: the 60 s sequence for one prompt (the release build runs all five) */
    const int long_prompts[] = {37};
    printf(" (sanitizer build: the 60 s sequence with P = 37 only; the release build runs P = 0, 20, 25, 26, 37)\n");
    test_matrix(long_tokens, LONG_TOKENS, "random tokens", 1, long_prompts, 1);
#else
    test_matrix(long_tokens, LONG_TOKENS, "random tokens", 1, prompts, 5);
#endif
    printf("bf16 products:\n");
    test_bf16(gguf);
    printf("window:\n");
    test_window();
    printf("voice cache:\n");
    test_voice_cache();
    printf("sharing, state and errors:\n");
    test_sharing_and_errors();
    printf("worst stream-vs-stateless error: %.3g (max abs) over %ld compared frames\n", worst, n_compared);

    npy_free(&tok);
    npy_free(&ptok);
    npy_free(&mel24k);
    npy_free(&embedding);
    npy_free(&fixture_feat);
    cosy_model_free(model);
    remove(gguf);
    return test_finish("test_flow_stream");
}
