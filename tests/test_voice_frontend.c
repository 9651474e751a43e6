/* test_voice_frontend.c — prompt audio in (libsndfile), the resampler and the three voice features
 * against the official fixtures of the voice set (tests/data/cv2-voice-tiny, a copy of the files of
 * ../shared/golden/cv2-voice-tiny this test reads).
 *
 * For every e2e_* case of the manifest: each stage of the case's `stages` list we implement runs on
 * that stage's STORED input and is compared with its stored output under the case's per-output
 * tolerance; then everything is computed from the wav alone and compared under
 * `tolerance_end_to_end`. voice_error cases must be refused with a message naming the file and the
 * reason. Every `resample_kernel_O_N` file is compared with our kernel for O -> N Hz. The CAM++ and
 * speech-tokenizer stages (and their outputs) belong to a later increment and are listed as not run.
 *
 * Another fixture set of the same format: `test_voice_frontend DIR` or COSY_VOICE_FIXTURES=DIR.
 */
#include "test.h"

#include "core/fft.h"
#include "core/file.h"
#include "io/audio.h"
#include "io/npy.h"
#include "model/voice/resample.h"
#include "model/voice/voice_features.h"
#include "model/voice/voice_prompt.h"

#include <cjson/cJSON.h>
#include <sndfile.h>
#include <stdint.h>

static const char *fixture_dir;
static cJSON *manifest;

/* ---- manifest helpers ---- */

static const cJSON *file_entry(const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(manifest, "files"), key);
}

static const char *file_path(const char *key)
{
    static char buf[2][1024];
    static int k;
    k ^= 1;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(file_entry(key), "file");
    snprintf(buf[k], sizeof buf[k], "%s/golden/%s", fixture_dir, cJSON_IsString(f) ? f->valuestring : key);
    return buf[k];
}

static int is_wav(const char *key)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(file_entry(key), "dtype");
    return cJSON_IsString(d) && !strcmp(d->valuestring, "wav");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static double tol_value(const cJSON *tol, const char *name)
{
    const cJSON *v = tol ? cJSON_GetObjectItemCaseSensitive(tol, name) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

/* The tolerance of output `key` in case `c`: from `table` (tolerance_per_output or
 * tolerance_end_to_end), else the file's own. */
static const cJSON *tolerance(const cJSON *c, const char *table, const char *key)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, table), key);
    return t ? t : cJSON_GetObjectItemCaseSensitive(file_entry(key), "tolerance");
}

/* ---- worst errors per kind of output, for the summary (docs/voice-frontend.md quotes it) ---- */

typedef struct {
    char kind[40];
    int end_to_end;
    double max_abs, max_rel, tol_abs, tol_rel;
    int count;
} summary_row;
static summary_row summary[64];
static int n_summary;

static const char *output_kind(const char *key)
{
    static const char *kinds[] = {"_prompt_speech_feat_len", "_prompt_speech_token_len", "_prompt_speech_feat", "_prompt_speech_token",
                                  "_speech16k", "_speech24k", "_fbank_raw", "_campplus_input", "_whisper_mel", "_speech_feat",
                                  "resample_kernel"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (ends_with(key, kinds[i]) || !strncmp(key, kinds[i], strlen(kinds[i]))) return kinds[i][0] == '_' ? kinds[i] + 1 : kinds[i];
    return key;
}

static void note(const char *key, int end_to_end, double max_abs, double rel, double t_abs, double t_rel)
{
    const char *kind = output_kind(key);
    summary_row *r = NULL;
    for (int i = 0; i < n_summary; i++)
        if (!strcmp(summary[i].kind, kind) && summary[i].end_to_end == end_to_end) r = &summary[i];
    if (!r && n_summary < 64) {
        r = &summary[n_summary++];
        memset(r, 0, sizeof *r);
        snprintf(r->kind, sizeof r->kind, "%s", kind);
        r->end_to_end = end_to_end;
    }
    if (!r) return;
    if (max_abs > r->max_abs) r->max_abs = max_abs;
    if (rel > r->max_rel) r->max_rel = rel;
    r->tol_abs = t_abs;
    r->tol_rel = t_rel;
    r->count++;
}

/* ---- comparisons ---- */

/* Compares n floats with golden output `key` under `tol` (max_abs and/or max_abs_rel). */
static void compare_floats(const char *label, const char *key, const cJSON *tol, const float *data, int64_t n, int end_to_end)
{
    npy_array ref;
    test_checks_++;
    if (npy_load(file_path(key), &ref) != COSY_OK) {
        fprintf(stderr, "  %s %s: cannot load the reference: %s\n", label, key, cosy_last_error());
        test_failures_++;
        return;
    }
    if (ref.numel != n) {
        fprintf(stderr, "  %s %s: %lld values, the reference has %lld\n", label, key, (long long)n, (long long)ref.numel);
        test_failures_++;
        npy_free(&ref);
        return;
    }
    double max_abs = 0, max_ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)data[i] - (double)ref.f32[i]);
        if (!(d <= max_abs)) max_abs = d != d ? INFINITY : d;
        if (fabs((double)ref.f32[i]) > max_ref) max_ref = fabs((double)ref.f32[i]);
    }
    double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
    double t_abs = tol_value(tol, "max_abs"), t_rel = tol_value(tol, "max_abs_rel");
    int pass = (t_abs >= 0 || t_rel >= 0) && (t_abs < 0 || max_abs <= t_abs) && (t_rel < 0 || rel <= t_rel);
    printf("  %-10s %-34s max_abs %.3e  rel %.3e  tol %s %-8.3g %s\n", label, key, max_abs, rel, t_abs >= 0 ? "abs" : "rel",
           t_abs >= 0 ? t_abs : t_rel, pass ? "PASS" : "FAIL");
    if (!pass) test_failures_++;
    note(key, end_to_end, max_abs, rel, t_abs, t_rel);
    npy_free(&ref);
}

static void compare_ints(const char *label, const char *key, const int64_t *data, int64_t n, int end_to_end)
{
    npy_array ref;
    test_checks_++;
    if (npy_load(file_path(key), &ref) != COSY_OK) {
        fprintf(stderr, "  %s %s: cannot load the reference: %s\n", label, key, cosy_last_error());
        test_failures_++;
        return;
    }
    int pass = ref.numel == n;
    for (int64_t i = 0; pass && i < n; i++) pass = ref.i64[i] == data[i];
    printf("  %-10s %-34s %s\n", label, key, pass ? "exact PASS" : "FAIL");
    if (!pass) {
        fprintf(stderr, "  %s %s: ours %lld values (first %lld), reference %lld (first %lld)\n", label, key, (long long)n,
                (long long)(n ? data[0] : -1), (long long)ref.numel, (long long)(ref.numel ? ref.i64[0] : -1));
        test_failures_++;
    }
    note(key, end_to_end, pass ? 0 : INFINITY, 0, 0, -1);
    npy_free(&ref);
}

/* ---- inputs of a stage ---- */

/* Audio at `rate` for input `key`: a wav (decoded and resampled as load_wav) or a stored npy. */
static int load_audio(const char *key, int rate, float **out, int64_t *n)
{
    *out = NULL;
    if (is_wav(key)) {
        cosy_wav w;
        if (cosy_audio_read(file_path(key), &w) != COSY_OK) return 0;
        cosy_status st = cosy_prompt_load(w.samples, w.n_samples, w.sample_rate, rate, file_path(key), out, n);
        cosy_wav_free(&w);
        return st == COSY_OK;
    }
    npy_array a;
    if (npy_load(file_path(key), &a) != COSY_OK) return 0;
    *out = a.f32;
    *n = a.numel;
    a.f32 = NULL;
    npy_free(&a);
    return 1;
}

static const char *item_string(const cJSON *array, int i)
{
    const cJSON *s = cJSON_GetArrayItem(array, i);
    return cJSON_IsString(s) ? s->valuestring : "";
}

/* ---- one stage on its stored inputs ---- */

static void run_stage(const cJSON *c, const cJSON *stage)
{
    const cJSON *opj = cJSON_GetObjectItemCaseSensitive(stage, "op");
    const char *op = cJSON_IsString(opj) ? opj->valuestring : "";
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(stage, "inputs"), *outputs = cJSON_GetObjectItemCaseSensitive(stage, "outputs");
    const char *in0 = item_string(inputs, 0), *out0 = item_string(outputs, 0);
    const char *per = "tolerance_per_output";
    float *x = NULL;
    int64_t n = 0;
    if (!strncmp(op, "load_wav(wav, ", 14)) {
        int rate = atoi(op + 14);
        CHECK(load_audio(in0, rate, &x, &n));
        if (x) compare_floats("stage", out0, tolerance(c, per, out0), x, n, 0);
    } else if (!strncmp(op, "kaldi.fbank", 11)) {
        CHECK(load_audio(in0, 16000, &x, &n));
        float *feat = NULL;
        int frames = 0;
        if (x) CHECK_OK(cosy_kaldi_fbank(x, n, &feat, &frames));
        if (feat && strstr(op, "- mean")) cosy_subtract_frame_mean(feat, frames, COSY_FBANK_BINS);
        if (feat) compare_floats("stage", out0, tolerance(c, per, out0), feat, (int64_t)frames * COSY_FBANK_BINS, 0);
        free(feat);
    } else if (!strncmp(op, "feat - feat.mean", 16)) {
        npy_array raw;
        CHECK_OK(npy_load(file_path(in0), &raw));
        if (raw.f32 && raw.ndim >= 2) {
            cosy_subtract_frame_mean(raw.f32, (int)(raw.numel / raw.shape[raw.ndim - 1]), (int)raw.shape[raw.ndim - 1]);
            compare_floats("stage", out0, tolerance(c, per, out0), raw.f32, raw.numel, 0);
        }
        npy_free(&raw);
    } else if (!strncmp(op, "whisper.log_mel_spectrogram", 27)) {
        CHECK(load_audio(in0, 16000, &x, &n));
        float *feat = NULL;
        int frames = 0;
        if (x) CHECK_OK(cosy_whisper_log_mel(x, n, COSY_WHISPER_MELS, &feat, &frames));
        if (feat) compare_floats("stage", out0, tolerance(c, per, out0), feat, (int64_t)frames * COSY_WHISPER_MELS, 0);
        free(feat);
    } else if (!strncmp(op, "feat_extractor(", 15)) {
        cosy_prompt_mel_params p = cosy_prompt_mel_default_params();
        CHECK(load_audio(in0, p.sample_rate, &x, &n));
        float *feat = NULL;
        int frames = 0;
        if (x) CHECK_OK(cosy_prompt_mel(&p, x, n, &feat, &frames));
        if (feat) compare_floats("stage", out0, tolerance(c, per, out0), feat, (int64_t)frames * p.n_mels, 0);
        free(feat);
    } else if (!strncmp(op, "align", 5)) {
        npy_array feat, tokens;
        CHECK_OK(npy_load(file_path(in0), &feat));
        CHECK_OK(npy_load(file_path(item_string(inputs, 1)), &tokens));
        if (feat.f32 && tokens.i64 && feat.ndim == 3) {
            const int frames = (int)feat.shape[1], mels = (int)feat.shape[2];
            const int len = cosy_prompt_align(frames, (int)tokens.numel);
            for (int i = 0; i < cJSON_GetArraySize(outputs); i++) {
                const char *key = item_string(outputs, i);
                int64_t v;
                if (ends_with(key, "_prompt_speech_feat")) compare_floats("stage", key, tolerance(c, per, key), feat.f32, (int64_t)2 * len * mels, 0);
                else if (ends_with(key, "_prompt_speech_token")) compare_ints("stage", key, tokens.i64, len, 0);
                else if (ends_with(key, "_prompt_speech_feat_len")) { v = 2 * len; compare_ints("stage", key, &v, 1, 0); }
                else if (ends_with(key, "_prompt_speech_token_len")) { v = len; compare_ints("stage", key, &v, 1, 0); }
                else { fprintf(stderr, "  align: unknown output %s\n", key); CHECK(0); }
            }
        }
        npy_free(&feat);
        npy_free(&tokens);
    } else if (strstr(op, ".onnx")) {
        printf("  %-10s %-34s not run (CAM++ / speech tokenizer: a later increment)\n", "stage", op);
    } else {
        fprintf(stderr, "  unknown stage op '%s'\n", op);
        CHECK(0);
    }
    free(x);
}

/* ---- the whole path from the wav ---- */

static void run_end_to_end(const cJSON *c, const char *wav_key)
{
    cosy_prompt_features f;
    CHECK_OK(cosy_prompt_features_from_file(file_path(wav_key), NULL, &f));
    if (!f.speech16k) return;
    const char *e2e = "tolerance_end_to_end";
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(c, "outputs");
    for (int i = 0; i < cJSON_GetArraySize(outputs); i++) {
        const char *key = item_string(outputs, i);
        const cJSON *tol = tolerance(c, e2e, key);
        int64_t v;
        if (ends_with(key, "_speech16k")) compare_floats("e2e", key, tol, f.speech16k, f.n16, 1);
        else if (ends_with(key, "_speech24k")) compare_floats("e2e", key, tol, f.speech24k, f.n24, 1);
        else if (ends_with(key, "_fbank_raw")) compare_floats("e2e", key, tol, f.fbank, (int64_t)f.n_fbank * COSY_FBANK_BINS, 1);
        else if (ends_with(key, "_campplus_input")) compare_floats("e2e", key, tol, f.campplus_input, (int64_t)f.n_fbank * COSY_FBANK_BINS, 1);
        else if (ends_with(key, "_whisper_mel")) compare_floats("e2e", key, tol, f.whisper_mel, (int64_t)f.n_whisper * COSY_WHISPER_MELS, 1);
        else if (ends_with(key, "_prompt_speech_feat")) compare_floats("e2e", key, tol, f.speech_feat, (int64_t)2 * f.token_len * f.n_mels, 1);
        else if (ends_with(key, "_speech_feat")) compare_floats("e2e", key, tol, f.speech_feat, (int64_t)f.n_speech_feat * f.n_mels, 1);
        else if (ends_with(key, "_prompt_speech_feat_len")) { v = 2 * f.token_len; compare_ints("e2e", key, &v, 1, 1); }
        else if (ends_with(key, "_prompt_speech_token_len")) { v = f.token_len; compare_ints("e2e", key, &v, 1, 1); }
        else printf("  %-10s %-34s not checked (needs CAM++ / the speech tokenizer)\n", "e2e", key);
    }
    /* the manifest's alignment numbers: mel frames, tokens, kept tokens */
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(c, "alignment");
    if (al) {
        const cJSON *frames = cJSON_GetObjectItemCaseSensitive(al, "speech_feat_frames"), *tokens = cJSON_GetObjectItemCaseSensitive(al, "tokens"),
                    *len = cJSON_GetObjectItemCaseSensitive(al, "token_len");
        CHECK(cJSON_IsNumber(frames) && frames->valueint == f.n_speech_feat);
        CHECK(cJSON_IsNumber(tokens) && tokens->valueint == f.n_tokens);
        CHECK(cJSON_IsNumber(len) && len->valueint == f.token_len);
        printf("  %-10s alignment: F24 %d, T' %d, L %d\n", "e2e", f.n_speech_feat, f.n_tokens, f.token_len);
    }
    cosy_prompt_features_free(&f);
}

static void run_error_case(const cJSON *c, const char *wav_key)
{
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(c, "expected_error");
    const char *want = cJSON_IsString(expected) ? expected->valuestring : "";
    cosy_prompt_features f;
    cosy_status st = cosy_prompt_features_from_file(file_path(wav_key), NULL, &f);
    const char *msg = cosy_last_error();
    printf("  refused: %s\n  (official: %s)\n", st != COSY_OK ? msg : "NOT REFUSED", want);
    CHECK(st != COSY_OK);
    CHECK(strstr(msg, file_path(wav_key)) != NULL);
    /* the reasons the official code gives */
    if (strstr(want, "longer than 30s")) CHECK(strstr(msg, "longer than 30s") != NULL);
    if (strstr(want, "sample rate")) CHECK(strstr(msg, "sample rate") != NULL);
    if (st == COSY_OK) cosy_prompt_features_free(&f);
}

static void run_cases(void)
{
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(manifest, "cases");
    int n_e2e = 0, n_error = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name"), *stage = cJSON_GetObjectItemCaseSensitive(c, "stage");
        const char *name = cJSON_IsString(nm) ? nm->valuestring : "?";
        const char *kind = cJSON_IsString(stage) ? stage->valuestring : "";
        if (strcmp(kind, "voice_e2e") && strcmp(kind, "voice_error")) continue;
        const char *wav_key = item_string(cJSON_GetObjectItemCaseSensitive(c, "inputs"), 0);
        printf("%s (%s, %s)\n", name, kind, wav_key);
        if (!strcmp(kind, "voice_error")) {
            run_error_case(c, wav_key);
            n_error++;
            continue;
        }
        const cJSON *stages = cJSON_GetObjectItemCaseSensitive(c, "stages");
        for (const cJSON *s = stages ? stages->child : NULL; s; s = s->next) run_stage(c, s);
        run_end_to_end(c, wav_key);
        n_e2e++;
    }
    printf("%d end-to-end cases, %d refusal cases\n", n_e2e, n_error);
    CHECK(n_e2e > 0);
}

/* ---- torchaudio Resample kernels ---- */

static void run_kernels(void)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(manifest, "files");
    int count = 0;
    for (const cJSON *f = files ? files->child : NULL; f; f = f->next) {
        int orig, target;
        if (sscanf(f->string, "resample_kernel_%d_%d", &orig, &target) != 2) continue;
        cosy_resampler *r = NULL;
        CHECK_OK(cosy_resampler_create(orig, target, &r));
        if (!r) continue;
        int phases, taps;
        cosy_resampler_kernel_shape(r, &phases, &taps);
        float *k = malloc(sizeof(float) * (size_t)phases * taps);
        cosy_resampler_kernel(r, k);
        compare_floats("kernel", f->string, cJSON_GetObjectItemCaseSensitive(f, "tolerance"), k, (int64_t)phases * taps, 0);
        free(k);
        cosy_resampler_free(r);
        count++;
    }
    printf("%d resampler kernels\n", count);
}

/* ---- unit checks that need no fixture set ---- */

/* Writes `frames` of a 2-channel signal in `format`, reads it back through cosy_audio_read. */
static void audio_round_trip(const char *name, int format, double tol)
{
    enum { FRAMES = 4000, RATE = 22050 };
    static float data[FRAMES * 2];
    for (int i = 0; i < FRAMES; i++) {
        data[2 * i] = 0.5f * sinf((float)i * 0.031f);
        data[2 * i + 1] = 0.25f * cosf((float)i * 0.017f);
    }
    SF_INFO info = {.samplerate = RATE, .channels = 2, .format = format};
    SNDFILE *sf = sf_open(test_tmp(name), SFM_WRITE, &info);
    CHECK(sf != NULL);
    if (!sf) return;
    CHECK(sf_writef_float(sf, data, FRAMES) == FRAMES);
    sf_close(sf);
    cosy_wav w;
    CHECK_OK(cosy_audio_read(test_tmp(name), &w));
    CHECK(w.sample_rate == RATE && w.channels == 2 && w.n_samples == FRAMES);
    double worst = 0;
    for (int64_t i = 0; i < w.n_samples && i < FRAMES; i++) worst = fmax(worst, fabs(w.samples[i] - (data[2 * i] + data[2 * i + 1]) / 2));
    printf("audio %-12s worst %.3g (tol %.3g)\n", name, worst, tol);
    CHECK(worst <= tol);
    cosy_wav_free(&w);
}

static void test_audio_io(void)
{
    audio_round_trip("pcm16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1.0 / 32768);
    audio_round_trip("pcm24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1.0 / 8388608 * 2);
    audio_round_trip("pcm32.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 1e-7);
    audio_round_trip("float.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 0);
    audio_round_trip("a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1.0 / 32768);
    audio_round_trip("a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0.05);

    /* from memory: the same bytes as the file */
    char *bytes;
    size_t size;
    cosy_wav w;
    CHECK_OK(cosy_file_read_all(test_tmp("a.flac"), &bytes, &size));
    CHECK_OK(cosy_audio_parse(bytes, size, "upload.flac", &w));
    CHECK(w.n_samples == 4000 && w.channels == 2);
    cosy_wav_free(&w);
    CHECK_FAILS(cosy_audio_parse(bytes, 40, "cut.flac", &w), COSY_ERR_FORMAT, "cut.flac");
    free(bytes);

    CHECK_FAILS(cosy_audio_read(test_tmp("missing.wav"), &w), COSY_ERR_MISSING, "missing.wav");
    FILE *fp = fopen(test_tmp("empty.wav"), "wb");
    if (fp) fclose(fp);
    CHECK_FAILS(cosy_audio_read(test_tmp("empty.wav"), &w), COSY_ERR_FORMAT, "empty.wav: the file is empty");
    fp = fopen(test_tmp("text.wav"), "wb");
    if (fp) {
        fputs("this is not audio at all, just some text that happens to end in .wav\n", fp);
        fclose(fp);
    }
    CHECK_FAILS(cosy_audio_read(test_tmp("text.wav"), &w), COSY_ERR_FORMAT, "text.wav: not a readable audio file");
    CHECK_FAILS(cosy_audio_read(COSY_TEST_TMP, &w), COSY_ERR_IO, "is a directory");
    /* a valid header with no frames */
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(test_tmp("noframes.wav"), SFM_WRITE, &info);
    if (sf) sf_close(sf);
    CHECK_FAILS(cosy_audio_read(test_tmp("noframes.wav"), &w), COSY_ERR_FORMAT, "noframes.wav: the file holds no audio");
}

static void test_resampler_units(void)
{
    /* equal rates: identity; output lengths as the reference computes them */
    cosy_resampler *r = NULL;
    CHECK_OK(cosy_resampler_create(44100, 16000, &r));
    if (r) {
        CHECK(cosy_resampler_output_length(r, 232180) == 84238); /* the zh_44k case */
        cosy_resampler_free(r);
    }
    /* a coprime pair: the reference's bank would be 16000 x 44135 floats; ours keeps the spans */
    CHECK_OK(cosy_resampler_create(44101, 16000, &r));
    if (r) {
        float in[4410], out[1700];
        for (int i = 0; i < 4410; i++) in[i] = sinf((float)i * 2.0f * (float)M_PI * 440.0f / 44101.0f);
        int64_t n = cosy_resampler_output_length(r, 4410);
        CHECK(n == 1600);
        cosy_resampler_run(r, in, 4410, out);
        double worst = 0; /* a 440 Hz tone stays a 440 Hz tone, away from the edges */
        for (int i = 100; i < 1500; i++) worst = fmax(worst, fabs(out[i] - sin(2 * M_PI * 440.0 * i / 16000.0)));
        CHECK(worst < 1e-3);
        cosy_resampler_free(r);
    }
    CHECK_FAILS(cosy_resampler_create(0, 16000, &r), COSY_ERR_INVALID_ARG, "out of range");
}

/* The FFT against a direct DFT in long double, for the feature sizes and awkward ones. */
static void test_fft(void)
{
    const int sizes[] = {2, 3, 5, 7, 12, 97, 400, 512, 1920, 2 * 101};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int n = sizes[s];
        cosy_fft *p = NULL;
        CHECK_OK(cosy_fft_create(n, &p));
        if (!p) continue;
        double *x = malloc(sizeof(double) * 9 * (size_t)n), *re = x + n, *im = re + n, *work = im + n;
        for (int t = 0; t < n; t++) x[t] = sin(0.37 * t * t + 1.0) + 0.25 * ((t * 7919) % 13 - 6);
        cosy_fft_real(p, x, re, im, work);
        double worst = 0, scale = 0;
        for (int k = 0; k <= n / 2; k++) {
            long double a = 0, b = 0;
            for (int t = 0; t < n; t++) {
                long double ang = 2.0L * 3.14159265358979323846264338327950288L * (long double)((long long)k * t % n) / n;
                a += x[t] * cosl(ang);
                b -= x[t] * sinl(ang);
            }
            worst = fmax(worst, fmax(fabs((double)(re[k] - a)), fabs((double)(im[k] - b))));
            scale = fmax(scale, (double)sqrtl(a * a + b * b));
        }
        CHECK(worst <= 1e-13 * scale);
        if (worst > 1e-13 * scale) fprintf(stderr, "fft %d: error %.3g of %.3g\n", n, worst, scale);
        free(x);
        cosy_fft_free(p);
    }
    cosy_fft *p;
    CHECK_FAILS(cosy_fft_create(1, &p), COSY_ERR_INVALID_ARG, "fft: length 1");
}

/* The Slaney filters against the ones stored by the main fixture set (librosa's own). */
static void test_mel_filters(void)
{
    npy_array ref;
    const char *sets[2] = {"cv2-tiny/golden/feat_mel_basis_24k.npy", "cv2-tiny/golden/feat_whisper_mel_filters128.npy"};
    const int rate[2] = {24000, 16000}, n_fft[2] = {1920, 400}, mels[2] = {80, 128};
    const double fmax[2] = {8000, 0};
    for (int s = 0; s < 2; s++) {
        if (npy_load(test_data(sets[s]), &ref) != COSY_OK) continue;
        float *w = malloc(sizeof(float) * (size_t)mels[s] * (n_fft[s] / 2 + 1));
        CHECK_OK(cosy_mel_filters_slaney(rate[s], n_fft[s], mels[s], 0, fmax[s], w));
        CHECK(ref.numel == (int64_t)mels[s] * (n_fft[s] / 2 + 1));
        double d = ref.numel == (int64_t)mels[s] * (n_fft[s] / 2 + 1) ? test_max_abs_diff(w, ref.f32, (long)ref.numel) : INFINITY;
        printf("mel filters %s: max_abs %.3g\n", sets[s], d);
        CHECK(d <= 1e-7);
        free(w);
        npy_free(&ref);
    }
}

static void test_limits(void)
{
    /* below 16 kHz; too short; exactly 30 s passes the limit, one sample more does not */
    float *x = calloc(480001, sizeof(float));
    cosy_prompt_features f;
    CHECK_FAILS(cosy_prompt_features_compute(x, 8000, 8000, "low.wav", NULL, &f), COSY_ERR_UNSUPPORTED, "low.wav: wav sample rate 8000");
    CHECK_FAILS(cosy_prompt_features_compute(x, 300, 16000, "tiny.wav", NULL, &f), COSY_ERR_INVALID_ARG, "tiny.wav: the prompt is 0.019 s long: too short");
    CHECK_FAILS(cosy_prompt_features_compute(x, 480001, 16000, "long.wav", NULL, &f), COSY_ERR_UNSUPPORTED, "longer than 30s");
    /* 22.05 kHz: 661500 samples are 480000 at 16 kHz, 661501 are 480001 */
    float *y = calloc(661501, sizeof(float));
    CHECK_FAILS(cosy_prompt_features_compute(y, 661501, 22050, "long22.wav", NULL, &f), COSY_ERR_UNSUPPORTED, "longer than 30s");
    CHECK(cosy_prompt_token_count(405) == 102 && cosy_prompt_token_count(1) == 1 && cosy_prompt_token_count(4) == 1 &&
          cosy_prompt_token_count(5) == 2);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    static char default_dir[1024];
    snprintf(default_dir, sizeof default_dir, "%s/cv2-voice-tiny", COSY_TEST_DATA);
    const char *env = getenv("COSY_VOICE_FIXTURES");
    fixture_dir = argc > 1 ? argv[1] : env && *env ? env : default_dir;

    test_audio_io();
    test_resampler_units();
    test_fft();
    test_mel_filters();
    test_limits();

    char path[1100];
    snprintf(path, sizeof path, "%s/golden/manifest.json", fixture_dir);
    char *text = NULL;
    CHECK_OK(cosy_file_read_all(path, &text, NULL));
    manifest = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(manifest != NULL);
    if (manifest) {
        printf("fixture set %s\n", fixture_dir);
        run_kernels();
        run_cases();
        printf("\nworst per output (stage on stored inputs | end to end from the wav):\n");
        for (int i = 0; i < n_summary; i++)
            printf("  %-5s %-26s n=%-3d max_abs %.3e  rel %.3e  tol %s %.3g\n", summary[i].end_to_end ? "e2e" : "stage", summary[i].kind,
                   summary[i].count, summary[i].max_abs, summary[i].max_rel, summary[i].tol_abs >= 0 ? "abs" : "rel",
                   summary[i].tol_abs >= 0 ? summary[i].tol_abs : summary[i].tol_rel);
        cJSON_Delete(manifest);
    }
    return test_finish("test_voice_frontend");
}
