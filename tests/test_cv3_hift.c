/* test_cv3_hift.c — CosyVoice3's CausalHiFT as a stream (src/model/hift/cv3_causal_hift.h) on the
 * cv3-tiny model: the official token2wav loop (re-run the vocoder on all mel so far, emit
 * wav[speech_offset:], 8 frames held back until the final call), recomputed in full per call, against one
 * stream fed only the new frames — for the official-like growing schedule and for pushes of 0..13 frames
 * crossing the stream's internal step size — equal bit for bit; a finalized stream starts a new utterance;
 * bad calls refused; the bf16 generator against f32 (tiny, and the real vocoder's shapes), and its stream.
 * (Parity of the one-shot path with the official outputs: `cosy golden`, case cv3_hift.) */
#include "test.h"

#include "io/npy.h"
#include "model/hift/cv3_causal_hift.h"
#include "model/model.h"

#define N_MELS 80
#define F_TOTAL 150

/* the official loop on mel [80][F_TOTAL] with the given prefix lengths (the last one finalizes):
 * concatenated chunks into wav, returns the samples */
static int64_t official_loop(cosy_cv3_hift *h, const float *mel, const int *ends, int n_calls, float *wav, float *tmp)
{
    const int S = cosy_cv3_hift_samples_per_frame(h), held = cosy_cv3_hift_held_frames(h);
    int64_t offset = 0;
    for (int k = 0; k < n_calls; k++) {
        const int final = k == n_calls - 1, F = ends[k];
        CHECK_OK(cosy_cv3_hift_inference(h, mel, F, F_TOTAL, final, tmp, NULL, NULL));
        const int64_t n = (int64_t)(final ? F : F - held) * S;
        for (int64_t i = offset; i < n; i++) wav[i] = tmp[i];
        if (n > offset) offset = n;
    }
    return offset;
}

/* one stream fed mel[:, ends[k-1]:ends[k]] per call; returns the samples, each call's count checked
 * against the official chunk's */
static int64_t stream_loop(cosy_cv3_hift_stream *s, cosy_cv3_hift *h, const float *mel, const int *ends, int n_calls, float *wav)
{
    const int S = cosy_cv3_hift_samples_per_frame(h), held = cosy_cv3_hift_held_frames(h);
    int64_t total = 0;
    for (int k = 0; k < n_calls; k++) {
        const int final = k == n_calls - 1, a = k ? ends[k - 1] : 0, b = ends[k];
        int64_t n = -1;
        CHECK(cosy_cv3_hift_stream_max_samples(s, b - a) >= 0);
        CHECK_OK(cosy_cv3_hift_stream_push(s, mel + a, b - a, F_TOTAL, final, wav + total, &n));
        const int64_t want_end = final ? (int64_t)b * S : (b > held ? (int64_t)(b - held) * S : 0);
        const int64_t want = want_end > total ? want_end - total : 0;
        if (n != want) {
            printf("  call %d (frames %d..%d): %lld samples, the official chunk has %lld\n", k, a, b, (long long)n, (long long)want);
            CHECK(n == want);
        }
        if (n > 0) total += n;
    }
    return total;
}

/* bf16 generator convolutions (where the CPU has native bf16) against f32, on the first F frames of mel:
 * the waveform's largest error relative to the largest f32 sample and its SNR, bounded (`claims`) by what
 * test_hift_bf16 holds CosyVoice2's HiFT to — at the real size; the tiny random model amplifies rounding
 * more and is held to the relative bound only. Also: the bf16 stream equals its one-call run. */
#define BF16_MAX_REL 2e-2
#define BF16_MIN_SNR_DB 35.0

static void check_bf16(const char *what, const char *gguf, const float *mel, int F, int ld, int claims)
{
    cosy_model *m[2] = {NULL, NULL};
    cosy_cv3_hift *h[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        cosy_model_params p = test_f32_params();
        p.hift_dtype = k ? COSY_DTYPE_BF16 : COSY_DTYPE_F32;
        CHECK_OK(cosy_model_load(gguf, &p, &m[k]));
        if (m[k]) CHECK_OK(cosy_cv3_hift_get(m[k], &h[k]));
    }
    const int64_t T = (int64_t)F * 480;
    float *ref = malloc(sizeof(float) * T), *wav = malloc(sizeof(float) * T), *inc = malloc(sizeof(float) * T);
    if (!h[0] || !h[1] || !ref || !wav || !inc) {
        CHECK(0);
    } else if (cosy_cv3_hift_dtype(h[1]) != COSY_DTYPE_BF16) {
        printf("  %-8s SKIP bf16: this CPU has no native bf16\n", what);
    } else {
        CHECK_OK(cosy_cv3_hift_inference(h[0], mel, F, ld, 1, ref, NULL, NULL));
        CHECK_OK(cosy_cv3_hift_inference(h[1], mel, F, ld, 1, wav, NULL, NULL));
        double peak = 0, se = 0, sr = 0, dm = 0;
        for (int64_t i = 0; i < T; i++) {
            double e = fabs((double)wav[i] - ref[i]);
            dm = e > dm ? e : dm;
            peak = fabs(ref[i]) > peak ? fabs(ref[i]) : peak;
            se += e * e;
            sr += (double)ref[i] * ref[i];
        }
        const double rel = dm / peak, snr = 10 * log10(sr / se);
        printf("  %-8s bf16 vs f32, %d frames: max |diff| %.3e, %.3e of the largest sample (bound %g), SNR %.1f dB (bound %s)\n", what, F,
               dm, rel, BF16_MAX_REL, snr, claims ? "35" : "-");
        CHECK(rel <= BF16_MAX_REL);
        if (claims) CHECK(snr >= BF16_MIN_SNR_DB);
        /* the bf16 stream, in pushes of 7 frames, against its one-call output */
        cosy_cv3_hift_stream *s = NULL;
        CHECK_OK(cosy_cv3_hift_stream_create(h[1], &s));
        int64_t total = 0;
        for (int a = 0; s && a < F; a += 7) {
            const int b = a + 7 < F ? a + 7 : F;
            int64_t n = 0;
            CHECK_OK(cosy_cv3_hift_stream_push(s, mel + a, b - a, ld, b == F, inc + total, &n));
            total += n;
        }
        CHECK(total == T && test_max_abs_diff(wav, inc, (long)T) == 0.0);
        cosy_cv3_hift_stream_free(s);
    }
    free(ref);
    free(wav);
    free(inc);
    cosy_model_free(m[0]);
    cosy_model_free(m[1]);
}

int main(void)
{
    CHECK_OK(cosy_convert(test_data("cv3-tiny/model"), test_tmp("cv3-hift.gguf"), NULL));
    cosy_model_params mp = test_f32_params();
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3-hift.gguf"), &mp, &m));
    if (!m) return test_finish("test_cv3_hift");
    cosy_cv3_hift *h = NULL;
    CHECK_OK(cosy_cv3_hift_get(m, &h));
    npy_array ref;
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/hift_ns_mel.npy"), &ref));
    if (!h || ref.numel != N_MELS * 60) return test_finish("test_cv3_hift");
    CHECK(cosy_cv3_hift_held_frames(h) == 8 && cosy_cv3_hift_samples_per_frame(h) == 480);

    /* 150 frames: the fixture's 60, then its frames re-ordered and perturbed (voiced and unvoiced alike) */
    static float mel[N_MELS * F_TOTAL];
    for (int c = 0; c < N_MELS; c++)
        for (int t = 0; t < F_TOTAL; t++)
            mel[c * F_TOTAL + t] = t < 60 ? ref.f32[c * 60 + t] : ref.f32[c * 60 + (t * 7) % 60] + 0.05f * (float)((c * 31 + t * 17) % 11 - 5);
    npy_free(&ref);

    const int64_t T = (int64_t)F_TOTAL * 480;
    float *full = malloc(sizeof(float) * T), *tmp = malloc(sizeof(float) * T), *inc = malloc(sizeof(float) * T);
    float *f0_full = malloc(sizeof(float) * F_TOTAL), *f0_inc = malloc(sizeof(float) * F_TOTAL);
    cosy_cv3_hift_stream *s = NULL;
    CHECK_OK(cosy_cv3_hift_stream_create(h, &s));
    if (!full || !tmp || !inc || !f0_full || !f0_inc || !s) return test_finish("test_cv3_hift");

    /* the official schedule's shape: growing calls, then the final one */
    const int official[] = {23, 61, 117, F_TOTAL};
    int64_t n_full = official_loop(h, mel, official, 4, full, tmp);
    int64_t n_inc = stream_loop(s, h, mel, official, 4, inc);
    CHECK(n_full == T && n_inc == T);
    double d = test_max_abs_diff(full, inc, (long)T);
    printf("  official loop (4 calls, HiFT re-run on all mel) vs stream: max |diff| %.3g over %lld samples\n", d, (long long)T);
    /* every kernel on the path computes each output column in one fixed order whatever the call's width
     * (source_downs included: cv3_causal_hift.c keeps them out of the sgemm), so the stream is exact */
    CHECK(d == 0.0);

    /* small and empty pushes (the stream steps 16 frames at a time inside a push) vs one finalizing call */
    CHECK_OK(cosy_cv3_hift_inference(h, mel, F_TOTAL, F_TOTAL, 1, full, f0_full, NULL));
    int ends[64], n = 0;
    for (int e = 0, k = 0; e < F_TOTAL; k++) {
        e += k % 14; /* 0, 1, 2, ..., 13 frames */
        if (e > F_TOTAL) e = F_TOTAL;
        ends[n++] = e;
    }
    if (ends[n - 1] != F_TOTAL) ends[n++] = F_TOTAL;
    cosy_cv3_hift_stream_trace(s, f0_inc, F_TOTAL, NULL, 0);
    n_inc = stream_loop(s, h, mel, ends, n, inc);
    CHECK(n_inc == T);
    d = test_max_abs_diff(full, inc, (long)T);
    double df0 = test_max_abs_diff(f0_full, f0_inc, F_TOTAL);
    printf("  %d pushes of 0..13 frames vs one finalizing call: wav max |diff| %.3g, f0 %.3g\n", n, d, df0);
    CHECK(d == 0.0 && df0 == 0.0);

    /* the finalized stream starts over: one push of everything is the one-shot call */
    cosy_cv3_hift_stream_trace(s, NULL, 0, NULL, 0);
    int64_t n1 = 0;
    CHECK_OK(cosy_cv3_hift_stream_push(s, mel, F_TOTAL, F_TOTAL, 1, inc, &n1));
    CHECK(n1 == T && test_max_abs_diff(full, inc, (long)T) == 0.0);

    /* refusals */
    CHECK_FAILS(cosy_cv3_hift_inference(h, mel, 7, F_TOTAL, 0, tmp, NULL, NULL), COSY_ERR_INVALID_ARG, "non-final call needs at least 8");
    CHECK_FAILS(cosy_cv3_hift_stream_push(s, mel, 10, 5, 0, inc, &n1), COSY_ERR_INVALID_ARG, "row stride");

    check_bf16("cv3-tiny", test_tmp("cv3-hift.gguf"), mel, 60, F_TOTAL, 0);
    /* the real vocoder's shapes (random weights): 1 s of audio */
    cosy_convert_params cp = cosy_convert_default_params();
    CHECK_OK(cosy_convert_random("cv3-tiny-hift", 3, test_tmp("cv3-tiny-hift.gguf"), &cp));
    check_bf16("512 ch", test_tmp("cv3-tiny-hift.gguf"), mel, 50, F_TOTAL, 1);

    cosy_cv3_hift_stream_free(s);
    free(full);
    free(tmp);
    free(inc);
    free(f0_full);
    free(f0_inc);
    cosy_model_free(m);
    return test_finish("test_cv3_hift");
}
