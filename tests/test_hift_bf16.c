/*
 * test_hift_bf16.c — the vocoder with its generator convolutions in bf16 (cosy_model_params.hift_dtype
 * = bf16) against the f32 path, which is the reference (test_hift holds f32 to the official
 * fixtures): the waveform's largest error relative to the largest reference sample, and its SNR, on
 * every bf16 path this CPU has (AMX, AVX512-BF16, and the portable loops a CPU forced below them
 * runs), on the fixture (cv2-tiny, the hift_nonstream case with its recorded draws) and at the real
 * size (cv2-tiny-hift: random weights in CosyVoice2-0.5B's vocoder shapes, one second of audio).
 * Also: concurrent calls give the same samples; weights stored as bf16 (cosy convert --hift-dtype bf16)
 * give the same samples as f32 storage rounded at load; bf16 on a CPU without native bf16 runs f32; AUTO picks bf16 exactly where faster.
 *
 * The bounds are what the README claims; the measured values are printed next to them.
 */
#include "hift_test_util.h"
#include "core/conv1d.h"
#include "core/cpu.h"
#include "model/model.h"

#include <pthread.h>

/* Claimed bounds of the bf16 waveform against f32 (see the README's vocoder section). */
#define BF16_MAX_REL 2e-2     /* largest |error| / largest |reference sample| */
#define BF16_MIN_SNR_DB 35.0  /* 10 log10(sum ref^2 / sum error^2) */

typedef struct {
    double max_abs, rel, snr_db;
} wav_error;

static wav_error wav_compare(const float *w, const float *ref, int64_t n)
{
    wav_error e = {0, 0, 0};
    double peak = 0, se = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)w[i] - ref[i]);
        if (!(d <= e.max_abs)) e.max_abs = d != d ? INFINITY : d;
        if (fabs(ref[i]) > peak) peak = fabs(ref[i]);
        se += d * d;
        sr += (double)ref[i] * ref[i];
    }
    e.rel = peak > 0 ? e.max_abs / peak : INFINITY;
    e.snr_db = se > 0 ? 10.0 * log10(sr / se) : INFINITY;
    if (e.max_abs != e.max_abs || e.max_abs == INFINITY) e.snr_db = -INFINITY;
    return e;
}

static cosy_model *load(const char *gguf, cosy_dtype hift_dtype)
{
    cosy_model_params mp = cosy_model_default_params();
    mp.hift_dtype = hift_dtype;
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(gguf, &mp, &m));
    return m;
}

/* One call on mel [80][F]: with the fixture's recorded draws (prefix != NULL) or our generator seeded 7. */
static int vocode(cosy_model *m, const float *mel, int F, const char *draws, float *wav)
{
    cosy_hift *h = NULL;
    CHECK_OK(cosy_hift_get(m, &h));
    if (!h) return 0;
    if (draws) {
        hift_test_draws d;
        int ok = hift_test_draws_load(&d, draws, cosy_hift_harmonics(h));
        if (ok) CHECK_OK(cosy_hift_inference(h, mel, F, NULL, 0, &d.source, wav, NULL));
        hift_test_draws_free(&d);
        return ok;
    }
    cosy_hift_rng g;
    cosy_hift_rng_seed(&g, 7);
    cosy_rng_source rng = cosy_hift_rng_source(&g);
    CHECK_OK(cosy_hift_inference(h, mel, F, NULL, 0, &rng, wav, NULL));
    return 1;
}

/* bf16 on each path this CPU has against the f32 samples `ref` */
static void check_paths(const char *what, cosy_model *m16, const float *mel, int F, const char *draws, const float *ref, float *wav)
{
    const int64_t T = (int64_t)F * 480;
    const cosy_cpu_level_t levels[] = {COSY_CPU_AMX, COSY_CPU_AVX512BF16, COSY_CPU_AVX512};
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        /* the portable loops take ~10 s at the real size: the fixture covers them */
        if (levels[l] == COSY_CPU_AVX512 && F * 480 > 24000 / 2 && !draws) continue;
        if (cosy_cpu_cap(levels[l]) != levels[l]) {
            printf("  %-8s SKIP bf16 on %s: this CPU lacks it\n", what, cosy_cpu_level_name(levels[l]));
            continue;
        }
        if (!vocode(m16, mel, F, draws, wav)) break;
        wav_error e = wav_compare(wav, ref, T);
        printf("  %-8s bf16 on %-10s (%-10s kernels): max_abs %.3e, %.3e of the largest sample (bound %g), SNR %.1f dB (bound %.0f)\n", what,
               cosy_cpu_level_name(levels[l]), cosy_conv1d_bf16_path(), e.max_abs, e.rel, BF16_MAX_REL, e.snr_db, BF16_MIN_SNR_DB);
        CHECK(e.rel <= BF16_MAX_REL);
        CHECK(e.snr_db >= BF16_MIN_SNR_DB);
    }
    cosy_cpu_reset();
}

typedef struct {
    cosy_model *m;
    const float *mel;
    int F;
    float *wav;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    for (int rep = 0; rep < 2; rep++) vocode(j->m, j->mel, j->F, NULL, j->wav);
    return NULL;
}

/* Sessions vocode concurrently on the bf16 path too (AMX tile state is per thread): the same samples */
static void check_concurrent(cosy_model *m16, const float *mel, int F)
{
    thread_job jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (thread_job){m16, mel, F, calloc((size_t)F * 480, sizeof(float))};
        CHECK(pthread_create(&th[i], NULL, thread_main, &jobs[i]) == 0);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    CHECK(memcmp(jobs[0].wav, jobs[1].wav, sizeof(float) * (size_t)F * 480) == 0);
    CHECK(memcmp(jobs[0].wav, jobs[2].wav, sizeof(float) * (size_t)F * 480) == 0);
    for (int i = 0; i < 3; i++) free(jobs[i].wav);
}

/* The fixture: its mel and recorded draws, bf16 against f32 */
static void test_fixture(const char *gguf)
{
    npy_array mel;
    if (!hift_test_npy("hift_ns_mel", &mel)) return;
    const int F = (int)mel.shape[2];
    float *ref = malloc(sizeof(float) * (size_t)F * 480), *wav = malloc(sizeof(float) * (size_t)F * 480);
    cosy_model *m32 = load(gguf, COSY_DTYPE_F32), *m16 = load(gguf, COSY_DTYPE_BF16);
    if (m32 && m16 && vocode(m32, mel.f32, F, "hift_ns", ref)) {
        CHECK(cosy_model_hift_dtype(m32) == COSY_DTYPE_F32);
        if (cosy_model_hift_dtype(m16) == COSY_DTYPE_BF16) {
            check_paths("fixture", m16, mel.f32, F, "hift_ns", ref, wav);
            check_concurrent(m16, mel.f32, F);
        } else {
            printf("  (no AMX or AVX512-BF16 on this CPU: bf16 runs f32)\n");
        }
    }
    cosy_model_free(m32);
    cosy_model_free(m16);
    free(ref);
    free(wav);
    npy_free(&mel);
}

/* The real size: one second (50 frames) of a smooth log-mel-like input, as `cosy bench hift` uses */
static void test_full_size(void)
{
    const char *g32 = test_tmp("hift-full-f32.gguf");
    char g16[1024];
    snprintf(g16, sizeof g16, "%s", test_tmp("hift-full-bf16.gguf"));
    cosy_convert_params cp = cosy_convert_default_params();
    CHECK_OK(cosy_convert_random("cv2-tiny-hift", 3, g32, &cp));
    cp.hift_dtype = COSY_DTYPE_BF16;
    CHECK_OK(cosy_convert_random("cv2-tiny-hift", 3, g16, &cp));
    const int F = 50, T = F * 480;
    float *mel = malloc(sizeof(float) * 80 * F), *ref = malloc(sizeof(float) * T), *wav = malloc(sizeof(float) * T);
    float *wav_stored = malloc(sizeof(float) * T);
    for (int c = 0; c < 80; c++)
        for (int t = 0; t < F; t++) mel[c * F + t] = -4.0f + 3.0f * sinf(0.07f * (float)t + 0.3f * (float)c) - 0.05f * (float)c;
    cosy_model *m32 = load(g32, COSY_DTYPE_F32), *m16 = load(g32, COSY_DTYPE_BF16), *s16 = load(g16, COSY_DTYPE_BF16);
    if (m32 && m16 && s16 && vocode(m32, mel, F, NULL, ref)) {
        CHECK(m32->hp.hift_base_channels == 512);
        if (cosy_model_hift_dtype(m16) == COSY_DTYPE_BF16) {
            check_paths("512 ch", m16, mel, F, NULL, ref, wav);
            /* stored as bf16 in the file (F0 predictor and source_downs stay f32 there, see convert.c): packed
             * from the mapped bf16 weights into the same tiles as rounding f32 at load, so the same samples */
            CHECK(vocode(s16, mel, F, NULL, wav_stored) && vocode(m16, mel, F, NULL, wav));
            CHECK(memcmp(wav, wav_stored, sizeof(float) * T) == 0);
        }
        /* an f32 run of a bf16-stored file widens the weights; the weights differ from the f32 file's by
         * their rounding, so its output differs about as much as the bf16 run's */
        cosy_model *s32 = load(g16, COSY_DTYPE_F32);
        if (s32 && vocode(s32, mel, F, NULL, wav)) {
            CHECK(cosy_model_hift_dtype(s32) == COSY_DTYPE_F32);
            wav_error e = wav_compare(wav, ref, T);
            printf("  512 ch   f32 run of bf16-stored weights: %.3e of the largest sample, SNR %.1f dB\n", e.rel, e.snr_db);
            CHECK(e.rel <= BF16_MAX_REL && e.snr_db >= BF16_MIN_SNR_DB);
        }
        cosy_model_free(s32);
    }
    cosy_model_free(m32);
    cosy_model_free(m16);
    cosy_model_free(s16);
    free(mel);
    free(ref);
    free(wav);
    free(wav_stored);
    remove(g32);
    remove(g16);
}

/* AUTO is bf16 exactly where it is faster than f32 (AMX; AVX512-BF16 where VDPBF16PS outruns f32 FMA);
 * asking for bf16 runs it wherever the CPU has either, and f32 on a CPU forced below that. */
static void test_auto(const char *gguf)
{
    const cosy_cpu_level_t levels[] = {COSY_CPU_AMX, COSY_CPU_AVX512BF16, COSY_CPU_AVX512, COSY_CPU_AVX2, COSY_CPU_PORTABLE};
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        cosy_cpu_level_t got = cosy_cpu_cap(levels[l]);
        if (got != levels[l]) continue;
        const int native = got >= COSY_CPU_AVX512BF16, faster = got >= COSY_CPU_AMX || (native && cosy_cpu_bf16_dot_faster());
        cosy_model *a = load(gguf, COSY_DTYPE_AUTO), *b = load(gguf, COSY_DTYPE_BF16);
        if (a && b) {
            CHECK(cosy_model_hift_dtype(a) == (faster ? COSY_DTYPE_BF16 : COSY_DTYPE_F32));
            CHECK(cosy_model_hift_dtype(b) == (native ? COSY_DTYPE_BF16 : COSY_DTYPE_F32));
        }
        printf("  COSY_CPU=%-10s hift_dtype auto -> %s\n", cosy_cpu_level_name(got), a ? cosy_dtype_name(cosy_model_hift_dtype(a)) : "?");
        cosy_model_free(a);
        cosy_model_free(b);
    }
    cosy_cpu_reset();
}

int main(void)
{
    hift_test_load_manifest();
    const char *gguf = test_tmp("hift-bf16-tiny.gguf");
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), gguf, NULL));
    printf("CPU: %s, best path %s, VDPBF16PS %s than f32 FMA\n", cosy_cpu_model_name(), cosy_cpu_level_name(cosy_cpu_level()),
           cosy_cpu_bf16_dot_faster() ? "faster" : "not faster");
    test_fixture(gguf);
    test_full_size();
    test_auto(gguf);
    remove(gguf);
    cJSON_Delete(hift_test_manifest);
    return test_finish("test_hift_bf16");
}
