/*
 * bench_hift.c — how long the HiFT vocoder takes to turn mel frames into audio, independent of the
 * LM and flow: `bench_hift(argc, argv)` is meant to be wired into `cosy bench` as its `hift` part.
 *
 * One call vocodes --frames F mel frames (default 50 = 1 s of 24 kHz audio; a streaming chunk is
 * 8 cached + 2 x hop tokens of frames) with our seeded generator; the input is a smooth random mel.
 * Prints the best and mean of --runs R calls after a warm-up one, split into the F0 predictor, the
 * source (sine generation + STFT), the generator network and the iSTFT, and the real-time factor.
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "model/hift.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_hift(int argc, char **argv);

static void help(void)
{
    printf("usage: cosy bench hift -m MODEL.gguf [--frames F] [--runs R] [--threads N]\n\n"
           "Times cosy_hift_inference on F mel frames (default 50 = 1 s of audio) and prints the best and\n"
           "mean of R runs (default 5) after one warm-up call, split into F0 predictor, source + STFT,\n"
           "generator and iSTFT, with the real-time factor (vocoding time / audio duration).\n");
}

int bench_hift(int argc, char **argv)
{
    const char *path = NULL;
    long long frames = 50, runs = 5, threads = 0;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path), CLI_OPTION_THREADS(&threads), CLI_OPTION_RUNS(&runs),
        {"--frames", NULL, CLI_OPT_INT, &frames, 1, 30000, NULL},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options("bench", argc, argv, opts, &path, help);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("bench", "a model file is required");

    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = (int)threads;
    cosy_model *model = NULL;
    double t0 = cosy_now_ms();
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
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
    if (!mel || !wav) {
        free(mel);
        free(wav);
        cosy_model_free(model);
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    /* a log-mel-like input: smooth in time and frequency, values in [-10, 2] */
    for (int c = 0; c < n_mels; c++)
        for (int t = 0; t < F; t++)
            mel[(size_t)c * F + t] = -4.0f + 3.0f * sinf(0.07f * (float)t + 0.3f * (float)c) - 0.05f * (float)c;

    printf("hift: %s, %s, %d threads, base channels %d\n", path, cosy_cpu_model_name(), cosy_pool_size(model->pool),
           model->hp.hift_base_channels);
    printf("  load + hift state %.0f ms\n", t_load);
    printf("  call: %d mel frames -> %d samples (%.0f ms of audio)\n", F, F * spf, audio_ms);
    cosy_hift_rng g;
    cosy_hift_rng_seed(&g, 0);
    cosy_rng_source rng = cosy_hift_rng_source(&g);
    double best = 1e30, sum = 0;
    cosy_hift_trace best_tr;
    memset(&best_tr, 0, sizeof best_tr);
    for (int r = -1; r < runs && st == COSY_OK; r++) {
        cosy_hift_trace tr;
        memset(&tr, 0, sizeof tr);
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
        printf("  real-time factor %.3f (best)\n", best / audio_ms);
    }
    free(mel);
    free(wav);
    cosy_model_free(model);
    return st == COSY_OK ? 0 : cli_fail("bench", st);
}
