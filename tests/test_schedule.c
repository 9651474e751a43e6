/* test_schedule.c — streaming chunk schedules: the official CosyVoice2 loop on the fixture
 * (stream_schedule.npy), and every strategy at its chunk boundaries (just below / at / above a hop,
 * no tokens, one token), with tokens arriving one at a time as the LM produces them. */
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

int main(void)
{
    test_fixture();
    test_default_boundaries();
    test_equal_exponential();
    return test_finish("test_schedule");
}
