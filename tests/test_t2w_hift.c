/*
 * test_t2w_hift.c — the HiFT side of streaming token2wav against the official fixtures t2w_0..3
 * (CosyVoice2Model.tts(stream=True) over 200 tokens, 4 token2wav calls, the last one final):
 *   - each HiFT call on its recorded input mel and cache_source (t2w_k_hift_source, t2w_k_hift_wav);
 *   - the stateful object fed the flow's new frames call after call: it must build the recorded HiFT
 *     input (8 cached frames + new), hand over the next call's cache_source, and emit the recorded
 *     chunks (t2w_k_wav) and their concatenation (t2w_stream_wav);
 *   - the same with our generator seeded like the reference (torch.manual_seed(1000 + k) per call);
 *   - a single final call is plain HiFT; bad arguments fail clearly.
 *
 * Three source comparisons are asserted under a bound of our own (DRIFT_BOUND, 1.5e-4) instead of the
 * manifest's 1e-4 for hift_source: the source of the longest chunk (call 2, 208 frames) end to end, and
 * what the stream carries of it into call 3 (its cache_source and the head of its source). Why, measured
 * on this fixture (issue 14):
 *   - the source's sine phase is a running sum over the chunk of f0 * harmonic (SineGen2), so an f0 that
 *     differs in its last bits moves the phase linearly along the chunk; harmonic 9 at ~160 Hz reaches
 *     ~1.8e4 rad after 208 frames, where one f32 ulp of f0 (6e-8 relative) is ~1e-3 rad;
 *   - given the reference's f0 our source is exact to 6e-8 (test_hift test_stages asserts 2e-7): the
 *     phase path (nearest upsampling, % 1, linear interpolation taps, cumsum in double, x 2 pi x 480)
 *     is torch's bit for bit, so nothing in the source itself is left to fix;
 *   - the F0 predictor (5 k3 convolutions + ELU + linear, f32 in the reference, which CosyVoice2 does
 *     not cast to double) is ours within 5e-7 relative of torch's oneDNN result; neither is closer to the
 *     exact value (max 790 ulps ours, 1046 the reference's, on near-zero frames), and none of ten f32
 *     summation orders tried (ci/k orders, blocks of 4..32, bias first/last, fma or not) reproduces
 *     the reference's bits (at most 7 of 48 frames equal);
 *   - the decisive measurement, asserted below (test_exact_f0): the source from an f0 computed in double
 *     precision (then rounded to f32) is itself 1.33e-4 from the reference on call 2, and jittering our
 *     f0 by +-1 ulp on random frames moves our source by 6e-5 to 9e-5. The 1e-4 tolerance is tighter than
 *     the reference's own f32 rounding of f0 permits over 208 frames; ours measures 1.37e-4.
 * Every other source comparison uses the manifest's 1e-4, and every waveform (hift_wav, wav, stream_wav)
 * its manifest tolerance; the generator is also asserted on each call's reference source.
 */
#include "hift_test_util.h"
#include "model/model.h"
#include "model/hift/t2w_hift.h"
#include "model/hift/hift_internal.h"

#define N_CALLS 4

static cosy_model *model;
static cosy_hift *hift;

typedef struct {
    npy_array schedule;                /* [k][offset, n_tokens, finalize, streaming] */
    npy_array flow_mel[N_CALLS], hift_mel[N_CALLS], cache_source[N_CALLS];
} t2w_fixture;

/* The end-to-end source comparisons held to DRIFT_BOUND instead of the manifest's 1e-4 (see the header:
 * the reference's own f32 rounding of f0 moves the source by more than 1e-4 over call 2's 208 frames). */
#define DRIFT_BOUND 1.5e-4 /* measured 1.37e-4 (t2w_2_hift_source), 1.31e-4 (t2w_3 cache/head) */
static const char *const drift_exceptions[] = {"t2w_2_hift_source", "t2w_3_cache_source@stream", "t2w_3_hift_source@stream", NULL};

static void compare_source(const char *key, const char *tol_key, const float *data, int64_t n, int stream)
{
    char tag[96];
    snprintf(tag, sizeof tag, "%s%s", key, stream ? "@stream" : "");
    for (int i = 0; drift_exceptions[i]; i++)
        if (!strcmp(drift_exceptions[i], tag) || !strcmp(drift_exceptions[i], key)) {
            npy_array ref;
            if (hift_test_npy(key, &ref)) {
                double e = ref.numel == n ? test_max_abs_diff(data, ref.f32, (long)n) : INFINITY;
                printf("  %-24s n %-7lld max_abs %.3e (bound %.1e: f0 rounding drift over a long chunk, see the file header) %s\n", key,
                       (long long)n, e, DRIFT_BOUND, e <= DRIFT_BOUND ? "ok" : "FAIL");
                CHECK(ref.numel == n);
                CHECK(e <= DRIFT_BOUND);
                npy_free(&ref);
            }
            return;
        }
    hift_test_compare_as(key, tol_key, data, n);
}

/* The evidence for DRIFT_BOUND, asserted: on call 2, the source from an f0 computed in double precision
 * (the exact F0 predictor, rounded once to f32) is beyond the manifest's 1e-4 from the reference too, so
 * the reference's f32 f0 is itself that far from exact; and one-ulp jitter of our f0 moves our source by
 * a comparable amount. The double F0 predictor below is ConvRNNF0Predictor.forward written plainly. */
static void f0_double(const float *mel, int F, float *f0)
{
    const int cond = hift->f0_conv[0].cout, c0 = hift->f0_conv[0].cin, rows = c0 > cond ? c0 : cond;
    double *a = calloc((size_t)rows * F, sizeof(double)), *b = calloc((size_t)rows * F, sizeof(double));
    for (long i = 0; i < (long)c0 * F; i++) a[i] = mel[i];
    int cin = c0;
    for (int l = 0; l < HIFT_F0_LAYERS; l++) {
        const cosy_conv *c = &hift->f0_conv[l];
        for (int o = 0; o < c->cout; o++)
            for (int t = 0; t < F; t++) {
                double s = c->b ? c->b[o] : 0.0;
                for (int ci = 0; ci < cin; ci++)
                    for (int k = 0; k < HIFT_F0_KERNEL; k++) {
                        int tt = t + k - HIFT_F0_KERNEL / 2;
                        if (tt >= 0 && tt < F) s += (double)c->w[((size_t)o * cin + ci) * HIFT_F0_KERNEL + k] * a[(size_t)ci * F + tt];
                    }
                b[(size_t)o * F + t] = s > 0 ? s : exp(s) - 1.0;
            }
        cin = c->cout;
        double *swap = a;
        a = b;
        b = swap;
    }
    for (int t = 0; t < F; t++) {
        double s = hift->f0_cls_b[0];
        for (int c = 0; c < cond; c++) s += (double)hift->f0_cls_w[c] * a[(size_t)c * F + t];
        f0[t] = (float)fabs(s);
    }
    free(a);
    free(b);
}

static void source_from_f0(const char *prefix, const float *f0, int F, float *source)
{
    hift_test_draws d;
    cosy_arena arena;
    hift_draws draws;
    CHECK_OK(cosy_arena_init(&arena, (size_t)64 << 20));
    if (hift_test_draws_load(&d, prefix, cosy_hift_harmonics(hift))) {
        CHECK_OK(hift_source_draws_alloc(hift, F, &draws, &arena));
        hift_source_draw(hift, F, &d.source, &draws);
        CHECK_OK(hift_source_forward(hift, f0, F, &draws, source, NULL, &arena));
        CHECK_OK(d.replay.status);
    }
    hift_test_draws_free(&d);
    cosy_arena_free(&arena);
}

static void test_exact_f0(const t2w_fixture *f)
{
    const int k = 2, F = (int)f->hift_mel[k].shape[2];
    const int64_t T = (int64_t)F * 480, head = 3840; /* the reference's first 3840 samples are the cache */
    npy_array ref;
    if (!hift_test_npy("t2w_2_hift_source", &ref)) return;
    float *f0 = malloc(sizeof(float) * (size_t)F), *f0_ours = malloc(sizeof(float) * (size_t)F);
    float *exact = malloc(sizeof(float) * (size_t)T), *ours = malloc(sizeof(float) * (size_t)T), *jit = malloc(sizeof(float) * (size_t)T);
    float *wav = malloc(sizeof(float) * (size_t)T);
    f0_double(f->hift_mel[k].f32, F, f0);
    source_from_f0("t2w_2", f0, F, exact);
    hift_test_draws d;
    cosy_hift_trace tr = {.f0 = f0_ours, .source_raw = ours};
    if (hift_test_draws_load(&d, "t2w_2", cosy_hift_harmonics(hift)))
        CHECK_OK(cosy_hift_inference_trace(hift, f->hift_mel[k].f32, F, NULL, 0, &d.source, wav, NULL, &tr));
    hift_test_draws_free(&d);
    uint64_t s = 12345;
    double jitter = 0;
    for (int trial = 0; trial < 5; trial++) {
        for (int t = 0; t < F; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int r = (int)(s >> 62);
            f0[t] = r == 0 ? nextafterf(f0_ours[t], 0.0f) : r == 1 ? nextafterf(f0_ours[t], INFINITY) : f0_ours[t];
        }
        source_from_f0("t2w_2", f0, F, jit);
        jitter = fmax(jitter, test_max_abs_diff(ours, jit, (long)T));
    }
    const double exact_vs_ref = ref.numel == T ? test_max_abs_diff(exact + head, ref.f32 + head, (long)(T - head)) : INFINITY;
    printf("  call 2 (208 frames): source from a double-precision f0 vs the reference %.3e; +-1 ulp f0 jitter moves ours by %.3e\n",
           exact_vs_ref, jitter);
    CHECK(ref.numel == T);
    CHECK(exact_vs_ref > 1e-4 && exact_vs_ref <= DRIFT_BOUND); /* measured 1.33e-4 */
    CHECK(jitter > 3e-5);                                      /* measured 6.4e-5 */
    free(f0);
    free(f0_ours);
    free(exact);
    free(ours);
    free(jit);
    free(wav);
    npy_free(&ref);
}

static int load_fixture(t2w_fixture *f)
{
    char key[64];
    int ok = hift_test_npy("stream_schedule", &f->schedule);
    for (int k = 0; k < N_CALLS; k++) {
        snprintf(key, sizeof key, "t2w_%d_flow_mel", k);
        ok &= hift_test_npy(key, &f->flow_mel[k]);
        snprintf(key, sizeof key, "t2w_%d_hift_mel", k);
        ok &= hift_test_npy(key, &f->hift_mel[k]);
        snprintf(key, sizeof key, "t2w_%d_cache_source", k);
        ok &= hift_test_npy(key, &f->cache_source[k]);
    }
    CHECK(ok && f->schedule.numel == 4 * N_CALLS);
    return ok && f->schedule.numel == 4 * N_CALLS;
}

static void free_fixture(t2w_fixture *f)
{
    npy_free(&f->schedule);
    for (int k = 0; k < N_CALLS; k++) {
        npy_free(&f->flow_mel[k]);
        npy_free(&f->hift_mel[k]);
        npy_free(&f->cache_source[k]);
    }
}

/* Each HiFT call on its recorded inputs. */
static void test_calls(const t2w_fixture *f)
{
    printf("HiFT calls on the recorded inputs:\n");
    for (int k = 0; k < N_CALLS; k++) {
        char prefix[32], key[64];
        snprintf(prefix, sizeof prefix, "t2w_%d", k);
        int F = (int)f->hift_mel[k].shape[2];
        int64_t T = (int64_t)F * cosy_hift_samples_per_frame(hift);
        float *wav = malloc(sizeof(float) * (size_t)T), *src = malloc(sizeof(float) * (size_t)T);
        hift_test_draws d;
        if (hift_test_draws_load(&d, prefix, cosy_hift_harmonics(hift))) {
            CHECK_OK(cosy_hift_inference(hift, f->hift_mel[k].f32, F, f->cache_source[k].f32, (int)f->cache_source[k].numel,
                                         &d.source, wav, src));
            CHECK_OK(d.replay.status);
            snprintf(key, sizeof key, "%s_hift_source", prefix);
            compare_source(key, key, src, T, 0);
            snprintf(key, sizeof key, "%s_hift_wav", prefix);
            hift_test_compare(key, wav, T);
            /* stage by stage: the generator on the reference's source (a full-length cache_source) */
            npy_array ref_src;
            snprintf(key, sizeof key, "%s_hift_source", prefix);
            if (hift_test_npy(key, &ref_src) && ref_src.numel == T) {
                cosy_hift_rng g;
                cosy_hift_rng_seed(&g, 1);
                cosy_rng_source rng = cosy_hift_rng_source(&g);
                CHECK_OK(cosy_hift_inference(hift, f->hift_mel[k].f32, F, ref_src.f32, (int)T, &rng, wav, NULL));
                printf("  from the reference source:\n");
                snprintf(key, sizeof key, "%s_hift_wav", prefix);
                hift_test_compare(key, wav, T);
            }
            npy_free(&ref_src);
        }
        hift_test_draws_free(&d);
        free(wav);
        free(src);
    }
}

/* The stateful object, call after call; seeded = 0 replays the recorded draws, 1 uses our generator
 * seeded 1000 + k before call k as the fixture script seeded torch. */
static void test_stream(const t2w_fixture *f, int seeded)
{
    printf("streaming token2wav, HiFT side (%s):\n", seeded ? "torch.manual_seed(1000 + k) reproduced" : "recorded draws");
    const int mr = model->hp.token_mel_ratio;
    cosy_t2w_hift *t = NULL;
    CHECK_OK(cosy_t2w_hift_create(hift, 100, &t)); /* smaller than call 2's 200 frames: the buffers must grow */
    if (!t) return;
    npy_array all;
    if (!hift_test_npy("t2w_stream_wav", &all)) {
        cosy_t2w_hift_free(t);
        return;
    }
    float *stream = malloc(sizeof(float) * (size_t)(all.numel + 8 * 480 * N_CALLS));
    int64_t total = 0;
    for (int k = 0; k < N_CALLS; k++) {
        char prefix[32], key[64];
        snprintf(prefix, sizeof prefix, "t2w_%d", k);
        const int offset = (int)f->schedule.i64[4 * k], finalize = (int)f->schedule.i64[4 * k + 2];
        CHECK(finalize == (k == N_CALLS - 1));
        const npy_array *fm = &f->flow_mel[k];
        const int n_flow = (int)fm->shape[2], first = offset * mr, n_new = n_flow - first;

        /* what the object carries into this call is what the reference carried */
        const float *mc, *sc;
        int n_mc = cosy_t2w_hift_mel_cache(t, &mc), n_sc = cosy_t2w_hift_source_cache(t, &sc);
        CHECK(n_sc == (int)f->cache_source[k].numel);
        if (k > 0 && n_sc == (int)f->cache_source[k].numel) {
            snprintf(key, sizeof key, "%s_cache_source", prefix);
            char tol_key[64];
            snprintf(tol_key, sizeof tol_key, "t2w_%d_hift_source", k - 1);
            compare_source(key, tol_key, sc, n_sc, 1);
        }
        const int n_in_ref = (int)f->hift_mel[k].shape[2];
        CHECK(n_mc + n_new == n_in_ref);
        int mel_cache_exact = 1;
        for (int c = 0; c < 80 && n_mc + n_new == n_in_ref; c++)
            for (int j = 0; j < n_mc; j++) mel_cache_exact &= mc[c * n_mc + j] == f->hift_mel[k].f32[(size_t)c * n_in_ref + j];
        CHECK(mel_cache_exact);

        cosy_hift_rng g;
        hift_test_draws d;
        memset(&d, 0, sizeof d);
        cosy_rng_source rng;
        if (seeded) {
            cosy_hift_rng_seed(&g, 1000 + (uint64_t)k);
            rng = cosy_hift_rng_source(&g);
        } else {
            hift_test_draws_load(&d, prefix, cosy_hift_harmonics(hift));
            rng = d.source;
        }
        int n_out = -1;
        float *out = malloc(sizeof(float) * (size_t)cosy_t2w_hift_max_samples(t, n_new));
        CHECK_OK(cosy_t2w_hift_push(t, fm->f32 + first, n_new, n_flow, finalize, &rng, out, &n_out));
        if (!seeded) CHECK_OK(d.replay.status);
        hift_test_draws_free(&d);

        /* the HiFT input it built is the recorded one, bit for bit */
        const float *mel_in, *wav, *src;
        int n_in = cosy_t2w_hift_last_call(t, &mel_in, &wav, &src);
        CHECK(n_in == n_in_ref);
        if (n_in == n_in_ref) CHECK(memcmp(mel_in, f->hift_mel[k].f32, sizeof(float) * 80 * (size_t)n_in) == 0);
        const int64_t T = (int64_t)n_in * 480;
        snprintf(key, sizeof key, "%s_hift_source", prefix);
        compare_source(key, key, src, T, 1);
        snprintf(key, sizeof key, "%s_hift_wav", prefix);
        hift_test_compare(key, wav, T);
        snprintf(key, sizeof key, "%s_wav", prefix);
        hift_test_compare(key, out, n_out);
        if (n_out > 0) memcpy(stream + total, out, sizeof(float) * (size_t)n_out);
        total += n_out > 0 ? n_out : 0;
        free(out);
    }
    hift_test_compare("t2w_stream_wav", stream, total);
    /* the final call forgot the state: the next utterance starts clean */
    CHECK(cosy_t2w_hift_mel_cache(t, NULL) == 0 && cosy_t2w_hift_source_cache(t, NULL) == 0);
    free(stream);
    npy_free(&all);
    cosy_t2w_hift_free(t);
}

/* One final call without history is HiFTGenerator.inference itself (the non-streaming path). */
static void test_single_final(const t2w_fixture *f)
{
    cosy_t2w_hift *t = NULL;
    CHECK_OK(cosy_t2w_hift_create(hift, 0, &t));
    if (!t) return;
    const npy_array *m = &f->hift_mel[0];
    int F = (int)m->shape[2], n_out = 0;
    float *a = malloc(sizeof(float) * (size_t)cosy_t2w_hift_max_samples(t, F)), *b = malloc(sizeof(float) * (size_t)F * 480);
    cosy_hift_rng g;
    cosy_hift_rng_seed(&g, 5);
    cosy_rng_source rng = cosy_hift_rng_source(&g);
    CHECK_OK(cosy_t2w_hift_push(t, m->f32, F, F, 1, &rng, a, &n_out));
    cosy_hift_rng_seed(&g, 5);
    CHECK_OK(cosy_hift_inference(hift, m->f32, F, NULL, 0, &rng, b, NULL));
    CHECK(n_out == F * 480);
    CHECK(n_out == F * 480 && memcmp(a, b, sizeof(float) * (size_t)n_out) == 0);
    /* bad arguments */
    CHECK_FAILS(cosy_t2w_hift_push(t, m->f32, 0, F, 0, &rng, a, &n_out), COSY_ERR_INVALID_ARG, "empty chunk");
    CHECK_FAILS(cosy_t2w_hift_push(t, m->f32, 0, F, 1, &rng, a, &n_out), COSY_ERR_INVALID_ARG, "empty chunk");
    CHECK_FAILS(cosy_t2w_hift_push(t, m->f32, F, F - 1, 0, &rng, a, &n_out), COSY_ERR_INVALID_ARG, "row stride");
    CHECK_FAILS(cosy_t2w_hift_push(t, NULL, F, F, 0, &rng, a, &n_out), COSY_ERR_INVALID_ARG, "row stride");
    CHECK_FAILS(cosy_t2w_hift_push(t, m->f32, F, F, 0, NULL, a, &n_out), COSY_ERR_INVALID_ARG, "random source");
    CHECK(cosy_t2w_hift_mel_cache(t, NULL) == 0);
    CHECK_FAILS(cosy_t2w_hift_create(NULL, 0, &t), COSY_ERR_INVALID_ARG, "no vocoder");
    cosy_t2w_hift *u = NULL;
    CHECK_FAILS(cosy_t2w_hift_create(hift, -1, &u), COSY_ERR_INVALID_ARG, "max_frames");
    /* a non-final chunk, then an empty final one: the cached 8 frames are vocoded once more */
    CHECK_OK(cosy_t2w_hift_push(t, m->f32, F, F, 0, &rng, a, &n_out));
    CHECK(n_out == F * 480 - 3840);
    CHECK(cosy_t2w_hift_mel_cache(t, NULL) == 8 && cosy_t2w_hift_source_cache(t, NULL) == 3840);
    CHECK_OK(cosy_t2w_hift_push(t, NULL, 0, 0, 1, &rng, a, &n_out));
    CHECK(n_out == 3840);
    free(a);
    free(b);
    cosy_t2w_hift_free(t);
}

int main(void)
{
    hift_test_load_manifest();
    const char *gguf = test_tmp("t2w-hift-tiny.gguf");
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), gguf, NULL));
    const cosy_model_params exact = test_f32_params();
    CHECK_OK(cosy_model_load(gguf, &exact, &model));
    if (!model) return test_finish("test_t2w_hift");
    CHECK_OK(cosy_hift_get(model, &hift));
    t2w_fixture f;
    memset(&f, 0, sizeof f);
    if (hift && load_fixture(&f)) {
        test_calls(&f);
        test_stream(&f, 0);
        test_stream(&f, 1);
        test_single_final(&f);
        printf("why call 2's source is held to %.1e (f0 rounding):\n", DRIFT_BOUND);
        test_exact_f0(&f);
    }
    free_fixture(&f);
    cosy_model_free(model);
    remove(gguf);
    cJSON_Delete(hift_test_manifest);
    return test_finish("test_t2w_hift");
}
