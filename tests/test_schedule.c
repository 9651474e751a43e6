/* test_schedule.c — streaming chunk schedules: the official CosyVoice2 loop on the fixture
 * (stream_schedule.npy), and every strategy at its chunk boundaries (just below / at / above a hop,
 * no tokens, one token), with tokens arriving one at a time as the LM produces them; each with and
 * without a small first chunk (Triton's 15 + 3), with and without prompt alignment. */
#include "test.h"

#include "io/npy.h"
#include "stream/schedule.h"

/* Feeds tokens one by one, then marks the LM done; records every call. */
static int simulate(cosy_schedule *s, int n_tokens, cosy_schedule_call *calls, int max_calls)
{
    int n = 0;
    cosy_schedule_call c;
    for (int avail = 0; avail <= n_tokens; avail++)
        while (n < max_calls && cosy_schedule_next(s, avail, 0, &c)) calls[n++] = c;
    while (n < max_calls && cosy_schedule_next(s, n_tokens, 1, &c)) calls[n++] = c;
    return n;
}

/* Audio coverage: every token's audio is emitted exactly once across calls (no overlap), the
 * final call ends at n_tokens, and each non-final call had its look-ahead. */
static void check_coverage(const cosy_schedule_call *c, int n, int n_tokens, int lookahead)
{
    CHECK(n >= 1 && c[n - 1].finalize && c[n - 1].end == n_tokens);
    for (int i = 0; i + 1 < n; i++) {
        CHECK(!c[i].finalize);
        CHECK(c[i + 1].offset == c[i].offset + c[i].hop);
        CHECK(c[i].end == c[i].offset + c[i].hop + lookahead && c[i].end <= n_tokens);
    }
    CHECK(c[0].offset == 0);
}

static void test_fixture(void)
{
    npy_array sched, tok, prompt;
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/stream_schedule.npy"), &sched));
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/speech_token.npy"), &tok));
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/prompt_speech_token.npy"), &prompt));
    cosy_schedule s;
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, (int)prompt.numel));
    cosy_schedule_call c[16];
    int n = simulate(&s, (int)tok.numel, c, 16);
    CHECK(n == sched.shape[0]);
    for (int i = 0; i < n && i < sched.shape[0]; i++) {
        CHECK(c[i].offset == sched.i64[i * 4 + 0]);
        CHECK(c[i].end == sched.i64[i * 4 + 1]);
        CHECK(c[i].finalize == sched.i64[i * 4 + 2]);
    }
    check_coverage(c, n, (int)tok.numel, 3);
    npy_free(&sched);
    npy_free(&tok);
    npy_free(&prompt);
}

static void test_default_boundaries(void)
{
    cosy_schedule s;
    cosy_schedule_call c[64];
    /* P = 0: first hop 25; the first call needs 28 tokens */
    const int lengths[] = {0, 1, 24, 25, 27, 28, 29, 77, 78, 79, 80, 500};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        int N = lengths[k];
        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, 0));
        int n = simulate(&s, N, c, 64);
        check_coverage(c, n, N, 3);
        int expect_calls = N < 28 ? 1 : N < 25 + 50 + 3 ? 2 : -1;
        if (expect_calls > 0) CHECK(n == expect_calls);
        if (N == 500) {
            /* hops 25, 50, 100, 100, 100, 100 (offset 475), then the last 25 tokens in the final call */
            CHECK(n == 7 && c[1].hop == 50 && c[2].hop == 100 && c[5].hop == 100 && c[6].offset == 475);
        }
    }
    /* prompt alignment: P = 20 pads the first hop to 30; P = 25 and P = 0 give no pad; P = 26 pads 24 */
    const int prompts[][2] = {{20, 30}, {25, 25}, {0, 25}, {26, 49}, {1, 49}};
    for (int k = 0; k < 5; k++) {
        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, prompts[k][0]));
        int n = simulate(&s, 200, c, 64);
        CHECK(n >= 2 && c[0].hop == prompts[k][1]);
        CHECK((prompts[k][0] + c[0].hop) % 25 == 0);
    }
    /* sessions are independent: a second schedule starts at 25 again (the reference's does not) */
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, 0));
    simulate(&s, 100, c, 64);
    CHECK(c[0].hop == 25);
}

static void test_equal_exponential(void)
{
    cosy_schedule s;
    cosy_schedule_call c[128];
    const int lengths[] = {0, 1, 24, 27, 28, 29, 52, 53, 54, 300};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        int N = lengths[k];
        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 25, 0, 0, 3, 17));
        int n = simulate(&s, N, c, 128);
        check_coverage(c, n, N, 3);
        for (int i = 0; i + 1 < n; i++) CHECK(c[i].hop == 25);
        CHECK(n == (N >= 3 ? (N - 3) / 25 : 0) + 1);

        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EXPONENTIAL, 25, 0, 0, 3, 17));
        n = simulate(&s, N, c, 128);
        check_coverage(c, n, N, 3);
        for (int i = 0; i + 1 < n; i++) CHECK(c[i].hop == 25 << i);
    }
    /* exponential with a cap */
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EXPONENTIAL, 10, 0, 40, 3, 0));
    int n = simulate(&s, 300, c, 128);
    check_coverage(c, n, 300, 3);
    CHECK(c[0].hop == 10 && c[1].hop == 20 && c[2].hop == 40 && c[3].hop == 40);
    /* overlap: windows start `overlap` tokens before the previous hop's end */
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 25, 5, 0, 3, 0));
    n = simulate(&s, 100, c, 128);
    CHECK(n >= 3 && c[1].offset == 20 && c[2].offset == 40 && c[n - 1].finalize && c[n - 1].end == 100);
    /* invalid parameters */
    CHECK_FAILS(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 0, 0, 0, 3, 0), COSY_ERR_INVALID_ARG, "chunk size 0");
    CHECK_FAILS(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 25, 25, 0, 3, 0), COSY_ERR_INVALID_ARG, "overlap of 25");
    CHECK_FAILS(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 4, 0, 3, 0), COSY_ERR_INVALID_ARG, "no overlap");
    CHECK_FAILS(cosy_schedule_init(&s, (cosy_chunk_strategy)9, 25, 0, 0, 3, 0), COSY_ERR_INVALID_ARG, "unknown chunk strategy");
}

/* A small first chunk (Triton's 15 + 3) before each strategy: the first call at F + 3 tokens, then
 * the strategy's schedule from offset F; every token's audio exactly once at every length. */
static void test_first_chunk(void)
{
    cosy_schedule s;
    cosy_schedule_call c[128];
    /* default, P = 0, F = 15: hops 15, then 25 + 10 (realigned: 0 + 15 + 35 = 50), 50, 100, 100 ... */
    const int lengths[] = {0, 1, 17, 18, 19, 52, 53, 54, 102, 103, 104, 500};
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        int N = lengths[k];
        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, 0));
        CHECK_OK(cosy_schedule_set_first_chunk(&s, 15));
        int n = simulate(&s, N, c, 128);
        check_coverage(c, n, N, 3);
        int expect = N < 18 ? 1 : N < 53 ? 2 : N < 103 ? 3 : -1;
        if (expect > 0) CHECK(n == expect);
        if (n >= 2 && N >= 18) CHECK(c[0].hop == 15 && c[0].end == 18);
        if (N == 500) /* offsets 0, 15, 50, 100, 200, 300, 400; the final call from 400 */
            CHECK(n == 7 && c[1].hop == 35 && c[2].hop == 50 && c[3].hop == 100 && c[5].hop == 100 && c[6].offset == 400);
    }
    /* prompt alignment resumes after the first chunk: P + 15 + second hop is a whole number of 25-token
     * blocks (P = 20: 35 + 40 = 75; P = 75: 90 + 35 = 125; P = 10: 25 + 25) */
    const int prompts[][2] = {{20, 40}, {75, 35}, {10, 25}, {0, 35}, {1, 34}};
    for (int k = 0; k < 5; k++) {
        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, prompts[k][0]));
        CHECK_OK(cosy_schedule_set_first_chunk(&s, 15));
        int n = simulate(&s, 300, c, 128);
        check_coverage(c, n, 300, 3);
        CHECK(n >= 4 && c[0].hop == 15 && c[1].hop == prompts[k][1] && c[2].hop == 50 && c[3].hop == 100);
        CHECK((prompts[k][0] + c[0].hop + c[1].hop) % 25 == 0);
    }
    /* exponential, chunk 25, no maximum: Triton's schedule (15, 25, 50, 100, 200, 400, ...) */
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EXPONENTIAL, 25, 0, 0, 3, 75));
    CHECK_OK(cosy_schedule_set_first_chunk(&s, 15));
    int n = simulate(&s, 1000, c, 128);
    check_coverage(c, n, 1000, 3);
    CHECK(n == 7 && c[0].hop == 15 && c[1].hop == 25 && c[2].hop == 50 && c[3].hop == 100 && c[4].hop == 200 && c[5].hop == 400);
    /* equal: 10, then 25s; with overlap the first window advances F - overlap */
    for (int N = 0; N <= 120; N += 7) {
        CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 25, 0, 0, 3, 17));
        CHECK_OK(cosy_schedule_set_first_chunk(&s, 10));
        n = simulate(&s, N, c, 128);
        check_coverage(c, n, N, 3);
        for (int i = 0; i + 1 < n; i++) CHECK(c[i].hop == (i ? 25 : 10));
        CHECK(n == (N >= 13 ? 1 + (N - 13) / 25 : 0) + 1);
    }
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 25, 5, 0, 3, 0));
    CHECK_OK(cosy_schedule_set_first_chunk(&s, 15));
    n = simulate(&s, 100, c, 128);
    CHECK(n >= 4 && c[0].hop == 15 && c[1].offset == 10 && c[2].offset == 30 && c[n - 1].finalize && c[n - 1].end == 100);
    /* 0 is no first chunk: the official schedule */
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_DEFAULT, 25, 0, 0, 3, 20));
    CHECK_OK(cosy_schedule_set_first_chunk(&s, 0));
    n = simulate(&s, 200, c, 128);
    CHECK(n >= 2 && c[0].hop == 30 && c[1].hop == 50);
    /* refusals */
    CHECK_FAILS(cosy_schedule_set_first_chunk(&s, 15), COSY_ERR_INVALID_ARG, "before the first call");
    CHECK_OK(cosy_schedule_init(&s, COSY_CHUNK_EQUAL, 25, 5, 0, 3, 0));
    CHECK_FAILS(cosy_schedule_set_first_chunk(&s, 5), COSY_ERR_INVALID_ARG, "longer than the overlap (5)");
    CHECK_FAILS(cosy_schedule_set_first_chunk(&s, -1), COSY_ERR_INVALID_ARG, "first chunk of -1");
    CHECK_FAILS(cosy_schedule_set_first_chunk(&s, 10001), COSY_ERR_INVALID_ARG, "out of range (0..10000)");
}

int main(void)
{
    test_fixture();
    test_default_boundaries();
    test_equal_exponential();
    test_first_chunk();
    return test_finish("test_schedule");
}
