/*
 * bench_hift.c — how long the HiFT vocoder takes to turn mel frames into audio, independent of the
 * LM and flow: `bench_hift(argc, argv)` is meant to be wired into `cosy bench` as its `hift` part.
 *
 * One call vocodes --frames F mel frames (default 50 = 1 s of 24 kHz audio; a streaming chunk is
 * 8 cached + 2 x hop tokens of frames) with our seeded generator; the input is a smooth random mel.
 * Prints the best and mean of --runs R calls after a warm-up one, split into the F0 predictor, the
 * source (sine generation + STFT), the generator network and the iSTFT, and per operation, with the
 * milliseconds per second of audio. --hift-dtype picks the convolutions' type (default auto, what the
 * engine uses); when it is not f32 the same call also runs on the f32 reference path and the bench
 * prints the waveform's error against it. COSY_CPU caps the CPU path, as everywhere.
 */
#include "cli.h"
#include "core/clock.h"
#include "core/conv1d.h"
#include "core/cpu.h"
#include "core/error.h"
#include "model/hift/cv3_causal_hift.h"
#include "model/hift/hift.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_hift(int argc, char **argv);

/* The waveform `wav` (n samples, the last call of the faster path) against the f32 path's on the same
 * input and noise: max abs error, the same relative to the reference's largest sample, and the SNR. */
static cosy_status compare_f32(const char *path, const cosy_model_params *mp, const float *mel, int F, const float *wav, int n)
{
    cosy_model_params fp = *mp;
    fp.hift_dtype = COSY_DTYPE_F32;
    cosy_model *model = NULL;
    cosy_hift *hift = NULL;
    COSY_TRY(cosy_model_load(path, &fp, &model));
    cosy_status st = cosy_hift_get(model, &hift);
    float *ref = malloc(sizeof(float) * (size_t)n);
    if (st == COSY_OK && !ref) st = cosy_error(COSY_ERR_NOMEM, "bench: out of memory");
    if (st == COSY_OK) {
        cosy_hift_rng g;
        cosy_hift_rng_seed(&g, 0);
        cosy_rng_source rng = cosy_hift_rng_source(&g);
        st = cosy_hift_inference(hift, mel, F, NULL, 0, &rng, ref, NULL);
    }
    if (st == COSY_OK) {
        double max_err = 0, peak = 0, se = 0, sr = 0;
        for (int i = 0; i < n; i++) {
            double e = fabs((double)wav[i] - ref[i]);
            if (e > max_err) max_err = e;
            if (fabs(ref[i]) > peak) peak = fabs(ref[i]);
            se += e * e;
            sr += (double)ref[i] * ref[i];
        }
        printf("  error against f32: max_abs %.3e, %.3e of the largest sample (%.3f), SNR %.1f dB (reference RMS %.3e)\n", max_err,
               peak > 0 ? max_err / peak : 0.0, peak, se > 0 ? 10.0 * log10(sr / se) : INFINITY, sqrt(sr / n));
    }
    free(ref);
    cosy_model_free(model);
    return st;
}

static const cli_usage usage = {
    .cmd = "bench hift",
    .synopsis = "-m MODEL.gguf [--frames F] [--runs N] [--threads N] [--hift-dtype TYPE]",
    .description = "Times cosy_hift_inference on F mel frames and prints the best and mean of --runs runs after one\n"
                   "warm-up call, split into F0 predictor, source + STFT, generator and iSTFT and per operation, with\n"
                   "ms per second of audio and the real-time factor. For a --hift-dtype other than f32 the waveform's\n"
                   "error against the f32 path is printed too. COSY_CPU caps the CPU path.\n",
};

/* a log-mel-like input: smooth in time and frequency, values in [-10, 2] */
static void bench_mel(float *mel, int n_mels, int F)
{
    for (int c = 0; c < n_mels; c++)
        for (int t = 0; t < F; t++) mel[(size_t)c * F + t] = -4.0f + 3.0f * sinf(0.07f * (float)t + 0.3f * (float)c) - 0.05f * (float)c;
}

/* CosyVoice3's CausalHiFT (f32 only): one finalizing call on F frames, then the token2wav streaming
 * pattern two ways over the same F frames in pushes of `chunk` frames: the stream (new frames only) and
 * the official re-run of the vocoder on all mel so far on every call (cosy_cv3_hift_inference on the
 * growing prefix), with the largest difference between the two outputs. */
static cosy_status bench_cv3(cosy_model *model, const cosy_model_params *mp, const char *path, int F, int runs, int chunk, double t_load)
{
    cosy_cv3_hift *h = NULL;
    COSY_TRY(cosy_cv3_hift_get(model, &h));
    const int n_mels = model->hp.hift_in_channels, spf = cosy_cv3_hift_samples_per_frame(h), held = cosy_cv3_hift_held_frames(h);
    const double audio_ms = 1000.0 * F * spf / model->hp.sample_rate;
    float *mel = malloc(sizeof(float) * (size_t)n_mels * F), *wav = malloc(sizeof(float) * (size_t)F * spf);
    float *ref = malloc(sizeof(float) * (size_t)F * spf), *tmp = malloc(sizeof(float) * (size_t)F * spf);
    cosy_cv3_hift_stream *s = NULL;
    cosy_status st = (!mel || !wav || !ref || !tmp) ? cosy_error(COSY_ERR_NOMEM, "bench: out of memory") : COSY_OK;
    if (st == COSY_OK) st = cosy_cv3_hift_stream_create(h, &s);
    if (st == COSY_OK) bench_mel(mel, n_mels, F);
    const cosy_dtype run_dtype = cosy_cv3_hift_dtype(h);
    printf("hift: %s (CosyVoice3 CausalHiFT), %s, %d threads, base channels %d\n", path, cosy_cpu_model_name(),
           cosy_pool_size(model->pool), model->hp.hift_base_channels);
    printf("  CPU path %s; convolutions in %s (%s); load + hift state %.0f ms\n", cosy_cpu_level_name(cosy_cpu_level()),
           cosy_dtype_name(run_dtype), run_dtype == COSY_DTYPE_BF16 ? cosy_conv1d_bf16_path() : "f32", t_load);
    printf("  call: %d mel frames -> %d samples (%.0f ms of audio), finalize\n", F, F * spf, audio_ms);
    double best = 1e30, sum = 0;
    for (int r = -1; r < runs && st == COSY_OK; r++) {
        double t = cosy_now_ms();
        st = cosy_cv3_hift_inference(h, mel, F, F, 1, wav, NULL, NULL);
        double ms = cosy_now_ms() - t;
        if (r < 0) {
            printf("  warm-up %.1f ms (includes the noise buffer)\n", ms);
            continue;
        }
        sum += ms;
        best = ms < best ? ms : best;
    }
    if (st == COSY_OK) {
        printf("  best %.1f ms, mean %.1f ms over %d runs\n", best, sum / runs, runs);
        printf("  %.1f ms per second of audio, real-time factor %.3f (best)\n", best * 1000.0 / audio_ms, best / audio_ms);
    }
    /* streaming in pushes of `chunk` frames: ours vs the official re-run */
    double t_stream = 0, t_rerun = 0;
    int64_t n_stream = 0, n_rerun = 0;
    int calls = 0;
    for (int a = 0; a < F && st == COSY_OK; a += chunk, calls++) {
        const int b = a + chunk < F ? a + chunk : F, final = b == F;
        int64_t n = 0;
        double t = cosy_now_ms();
        st = cosy_cv3_hift_stream_push(s, mel + a, b - a, F, final, wav + n_stream, &n);
        t_stream += cosy_now_ms() - t;
        n_stream += n;
        if (st != COSY_OK || (!final && b < held)) continue;
        t = cosy_now_ms();
        st = cosy_cv3_hift_inference(h, mel, b, F, final, tmp, NULL, NULL);
        t_rerun += cosy_now_ms() - t;
        const int64_t end = (int64_t)(final ? b : b - held) * spf;
        for (int64_t i = n_rerun; i < end; i++) ref[i] = tmp[i];
        if (end > n_rerun) n_rerun = end;
    }
    if (st == COSY_OK) {
        double d = 0;
        for (int64_t i = 0; i < n_stream && i < n_rerun; i++) d = fmax(d, fabs((double)wav[i] - ref[i]));
        printf("  streaming, %d calls of %d frames: stream %.1f ms total (%.1f ms per second of audio), official re-run of all mel\n"
               "  per call %.1f ms total; outputs %lld / %lld samples, max |diff| %.3g\n",
               calls, chunk, t_stream, t_stream * 1000.0 / audio_ms, t_rerun, (long long)n_stream, (long long)n_rerun, d);
    }
    /* bf16 against the f32 reference path on the one-call output */
    if (st == COSY_OK && run_dtype != COSY_DTYPE_F32) {
        cosy_model_params fp = *mp;
        fp.hift_dtype = COSY_DTYPE_F32;
        cosy_model *m32 = NULL;
        cosy_cv3_hift *h32 = NULL;
        st = cosy_model_load(path, &fp, &m32);
        if (st == COSY_OK) st = cosy_cv3_hift_get(m32, &h32);
        if (st == COSY_OK) st = cosy_cv3_hift_inference(h, mel, F, F, 1, wav, NULL, NULL);
        if (st == COSY_OK) st = cosy_cv3_hift_inference(h32, mel, F, F, 1, ref, NULL, NULL);
        if (st == COSY_OK) {
            double d = 0, peak = 0, se = 0, sr = 0;
            for (int64_t i = 0; i < (int64_t)F * spf; i++) {
                double e = fabs((double)wav[i] - ref[i]);
                d = fmax(d, e);
                peak = fmax(peak, fabs(ref[i]));
                se += e * e;
                sr += (double)ref[i] * ref[i];
            }
            printf("  %s vs f32: max |diff| %.3e, %.3e of the largest sample, SNR %.1f dB\n", cosy_dtype_name(run_dtype), d,
                   peak > 0 ? d / peak : 0.0, se > 0 ? 10 * log10(sr / se) : INFINITY);
        }
        cosy_model_free(m32);
    }
    cosy_cv3_hift_stream_free(s);
    free(mel);
    free(wav);
    free(ref);
    free(tmp);
    return st;
}

int bench_hift(int argc, char **argv)
{
    const char *path = NULL;
    long long frames = 50, runs = 5, threads = 0, chunk = 50;
    cosy_dtype dtype = COSY_DTYPE_AUTO;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        {.name = "--frames", .kind = CLI_OPT_INT, .dest = &frames, .hint = "F", .min = 1, .max = 30000, .unit = "mel frames",
         .help = "mel frames per call (50 = 1 s of audio)", .default_text = "50"},
        CLI_OPTION_HIFT_DTYPE(&dtype, "auto"),
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_RUNS(&runs, "5"),
        {.name = "--chunk", .kind = CLI_OPT_INT, .dest = &chunk, .hint = "F", .min = 1, .max = 30000, .unit = "mel frames",
         .help = "CosyVoice3: mel frames per streaming call (the stream vs the official re-run of all mel)", .default_text = "50"},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, &path);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("bench hift", "a model file is required (-m MODEL.gguf)");

    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = (int)threads;
    mp.hift_dtype = dtype;
    cosy_model *model = NULL;
    double t0 = cosy_now_ms();
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
    if (model->hp.family == COSY_FAMILY_COSYVOICE3) {
        st = bench_cv3(model, &mp, path, (int)frames, (int)runs, (int)chunk, cosy_now_ms() - t0);
        cosy_model_free(model);
        return st == COSY_OK ? 0 : cli_fail("bench", st);
    }
    cosy_hift *hift = NULL;
    st = cosy_hift_get(model, &hift);
    double t_load = cosy_now_ms() - t0;
    if (st != COSY_OK) {
        cosy_model_free(model);
        return cli_fail("bench", st);
    }
    const int F = (int)frames, n_mels = model->hp.hift_in_channels, spf = cosy_hift_samples_per_frame(hift);
    const double audio_ms = 1000.0 * F * spf / model->hp.sample_rate;
    float *mel = malloc(sizeof(float) * (size_t)n_mels * F), *wav = malloc(sizeof(float) * (size_t)F * spf);
    float *f0 = malloc(sizeof(float) * (size_t)F);
    if (!mel || !wav || !f0) {
        free(f0);
        free(mel);
        free(wav);
        cosy_model_free(model);
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    bench_mel(mel, n_mels, F);

    const cosy_dtype run_dtype = cosy_hift_dtype(hift);
    printf("hift: %s, %s, %d threads, base channels %d\n", path, cosy_cpu_model_name(), cosy_pool_size(model->pool),
           model->hp.hift_base_channels);
    printf("  CPU path %s; convolutions in %s (%s)\n", cosy_cpu_level_name(cosy_cpu_level()), cosy_dtype_name(run_dtype),
           run_dtype == COSY_DTYPE_BF16 ? cosy_conv1d_bf16_path() : cosy_cpu_level() >= COSY_CPU_AVX512 ? "avx512 direct" : "portable");
    if (dtype == COSY_DTYPE_BF16 && run_dtype != COSY_DTYPE_BF16)
        printf("  (bf16 asked for, but this CPU path has neither AMX nor AVX512-BF16: f32)\n");
    printf("  load + hift state %.0f ms\n", t_load);
    printf("  call: %d mel frames -> %d samples (%.0f ms of audio)\n", F, F * spf, audio_ms);
    cosy_hift_rng g;
    cosy_rng_source rng = cosy_hift_rng_source(&g);
    double best = 1e30, sum = 0;
    cosy_hift_trace best_tr;
    memset(&best_tr, 0, sizeof best_tr);
    for (int r = -1; r < runs && st == COSY_OK; r++) {
        cosy_hift_trace tr;
        memset(&tr, 0, sizeof tr);
        tr.f0 = f0;
        cosy_hift_rng_seed(&g, 0); /* the same noise every call, so the error check below compares like with like */
        double s = cosy_now_ms();
        st = cosy_hift_inference_trace(hift, mel, F, NULL, 0, &rng, wav, NULL, &tr);
        double ms = cosy_now_ms() - s;
        if (r < 0) {
            printf("  warm-up %.1f ms (includes sizing the scratch arena)\n", ms);
            continue;
        }
        sum += ms;
        if (ms < best) {
            best = ms;
            best_tr = tr;
        }
    }
    if (st == COSY_OK) {
        printf("  best %.1f ms (f0 %.1f, source + stft %.1f, generator %.1f, istft %.1f), mean %.1f ms over %lld runs\n", best,
               best_tr.f0_ms, best_tr.source_ms, best_tr.generator_ms, best_tr.istft_ms, sum / (double)runs, runs);
        printf("  %.1f ms per second of audio, real-time factor %.3f (best)\n", best * 1000.0 / audio_ms, best / audio_ms);
        printf("  per operation in the best run (ms, %% of the call):\n");
        for (int op = 0; op < COSY_HIFT_N_OPS; op++)
            if (best_tr.op_ms[op] > 0)
                printf("    %-24s %7.2f  %5.1f%%\n", cosy_hift_op_name((cosy_hift_op)op), best_tr.op_ms[op], 100.0 * best_tr.op_ms[op] / best);
    }
    if (st == COSY_OK) {
        /* what the input exercises: the sine source only runs where f0 is above the voicing threshold */
        float lo = f0[0], hi = f0[0];
        int voiced = 0;
        for (int t = 0; t < F; t++) {
            lo = f0[t] < lo ? f0[t] : lo;
            hi = f0[t] > hi ? f0[t] : hi;
            voiced += f0[t] > model->hp.nsf_voiced_threshold;
        }
        printf("  f0 %.1f .. %.1f Hz, %d of %d frames voiced\n", lo, hi, voiced, F);
    }
    if (st == COSY_OK && run_dtype != COSY_DTYPE_F32) st = compare_f32(path, &mp, mel, F, wav, F * spf);
    free(f0);
    free(mel);
    free(wav);
    cosy_model_free(model);
    return st == COSY_OK ? 0 : cli_fail("bench", st);
}
