/*
 * bench_flow.c — how long one flow call takes (token encoder + 10 Euler steps of the U-Net
 * estimator with CFG), independent of the LM and HiFT: `bench_flow(argc, argv)` is meant to be
 * wired into `cosy bench` as its `flow` part.
 *
 * A call covers the prompt tokens plus every speech token so far, as the reference's
 * token2wav does on each streaming chunk, so both are options: --prompt P (prompt tokens, with a
 * random prompt mel of 2P frames) and --tokens N (new speech tokens; a non-final call also gets
 * pre_lookahead_len look-ahead tokens). Inputs are seeded random values; only the timing matters.
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/gemm.h"
#include "model/flow/flow.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_flow(int argc, char **argv);

static const cli_usage usage = {
    .cmd = "bench flow",
    .synopsis = "-m MODEL.gguf [--prompt P] [--tokens N] [--runs N] [--threads N] [--flow-dtype TYPE] [--final]\n"
                " [--full-attention]",
    .description = "Times cosy_flow_inference on P prompt tokens + N new speech tokens (a streaming, non-final call\n"
                   "with look-ahead unless --final; chunk masks unless --full-attention) and prints the best and\n"
                   "mean of --runs runs after one warm-up call, split into encoder and solver.\n",
};

int bench_flow(int argc, char **argv)
{
    const char *path = NULL;
    long long prompt = 50, tokens = 25, runs = 3, threads = 0;
    int finalize = 0, streaming = 1;
    cosy_dtype dtype = COSY_DTYPE_F32;
    int full_attention = 0;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        {.name = "--prompt", .kind = CLI_OPT_INT, .dest = &prompt, .hint = "P", .min = 0, .max = 5000, .unit = "tokens",
         .help = "prompt tokens (with a random prompt mel of 2P frames)", .default_text = "50"},
        {.name = "--tokens", .kind = CLI_OPT_INT, .dest = &tokens, .hint = "N", .min = 1, .max = 5000, .unit = "tokens",
         .help = "new speech tokens (a non-final call also gets the look-ahead tokens)", .default_text = "25"},
        CLI_OPTION_FLOW_DTYPE(&dtype, "f32"),
        {.name = "--final", .kind = CLI_OPT_FLAG, .dest = &finalize, .help = "a final call (no look-ahead)"},
        {.name = "--full-attention", .kind = CLI_OPT_FLAG, .dest = &full_attention, .help = "full attention instead of chunk masks"},
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_RUNS(&runs, "3"),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, &path);
    if (rc != CLI_GO_ON) return rc;
    streaming = !full_attention;
    if (!path) return cli_usage_error("bench flow", "a model file is required (-m MODEL.gguf)");

    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = (int)threads;
    mp.flow_dtype = dtype;
    cosy_model *model = NULL;
    double t0 = cosy_now_ms();
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
    cosy_flow *flow = NULL;
    st = cosy_flow_get(model, &flow);
    double t_load = cosy_now_ms() - t0;
    if (st != COSY_OK) {
        cosy_model_free(model);
        return cli_fail("bench", st);
    }
    const cosy_hparams *hp = &model->hp;
    const int context = finalize ? 0 : hp->pre_lookahead_len, n = (int)tokens + context, P = (int)prompt;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n), *ptok = malloc(sizeof(int32_t) * (size_t)(P + 1));
    float *feat = malloc(sizeof(float) * 80 * (size_t)(2 * P + 1)), emb[512];
    float *mel = malloc(sizeof(float) * 80 * (size_t)(2 * n));
    if (!tok || !ptok || !feat || !mel || hp->spk_embed_dim > 512) {
        fprintf(stderr, "bench: out of memory\n");
        cosy_model_free(model);
        return 1;
    }
    uint32_t seed = 12345;
#define NEXT() (seed = seed * 1664525u + 1013904223u, seed >> 8)
    for (int i = 0; i < n; i++) tok[i] = (int32_t)(NEXT() % (uint32_t)hp->flow_vocab);
    for (int i = 0; i < P; i++) ptok[i] = (int32_t)(NEXT() % (uint32_t)hp->flow_vocab);
    for (int i = 0; i < 2 * P * 80; i++) feat[i] = -6.0f + 6.0f * (float)(NEXT() & 0xffff) / 65536.0f;
    for (int i = 0; i < hp->spk_embed_dim; i++) emb[i] = (float)(NEXT() & 0xffff) / 32768.0f - 1.0f;

    printf("flow: %s, %s, %d threads, products in %s%s\n", path, cosy_cpu_model_name(), cosy_pool_size(model->pool),
           cosy_dtype_name(cosy_model_flow_dtype(model)),
           cosy_model_flow_dtype(model) != COSY_DTYPE_BF16 ? "" : cosy_gemm_bf16_level() == COSY_CPU_AMX ? " (AMX)" : " (AVX512-BF16)");
    if (dtype == COSY_DTYPE_BF16 && cosy_model_flow_dtype(model) != COSY_DTYPE_BF16)
        printf("  (bf16 asked for, but this CPU has no bf16 products: f32)\n");
    printf("  load + flow state %.0f ms\n", t_load);
    printf("  call: %d prompt + %lld new tokens%s, %s, %s\n", P, tokens, finalize ? "" : " + look-ahead",
           streaming ? "chunk masks" : "full attention", finalize ? "final" : "non-final");
    double best = 1e30, sum = 0, best_enc = 0, best_solver = 0;
    int frames = 0, T = 0;
    for (int r = -1; r < runs && st == COSY_OK; r++) {
        cosy_flow_trace trace;
        memset(&trace, 0, sizeof trace);
        double s = cosy_now_ms();
        st = cosy_flow_inference_trace(flow, tok, n, ptok, P, feat, emb, streaming, finalize, mel, &frames, &trace);
        double ms = cosy_now_ms() - s;
        T = trace.frames;
        if (r < 0) {
            printf("  warm-up %.1f ms (includes drawing the noise buffer)\n", ms);
            continue;
        }
        sum += ms;
        if (ms < best) {
            best = ms;
            best_enc = trace.encoder_ms;
            best_solver = trace.solver_ms;
        }
    }
    if (st == COSY_OK) {
        printf("  %d frames computed (%d output), best %.1f ms (encoder %.1f, solver %.1f = %.1f ms per estimator call), mean %.1f ms over %lld runs\n",
               T, frames, best, best_enc, best_solver, best_solver / hp->cfm_steps, sum / (double)runs, runs);
        printf("  %.2f ms per output frame; real-time factor %.3f for the %.2f s of new audio\n", best / frames,
               best / 1000.0 / (frames / 50.0), frames / 50.0);
    }
    /* the faster type's distance from f32 on this call */
    if (st == COSY_OK && cosy_model_flow_dtype(model) != COSY_DTYPE_F32) {
        cosy_model_params fp = mp;
        fp.flow_dtype = COSY_DTYPE_F32;
        cosy_model *ref_model = NULL;
        cosy_flow *ref_flow = NULL;
        float *ref = malloc(sizeof(float) * 80 * (size_t)(2 * n));
        int ref_frames = 0;
        st = ref ? cosy_model_load(path, &fp, &ref_model) : COSY_ERR_NOMEM;
        if (st == COSY_OK) st = cosy_flow_get(ref_model, &ref_flow);
        if (st == COSY_OK) st = cosy_flow_inference(ref_flow, tok, n, ptok, P, feat, emb, streaming, finalize, ref, &ref_frames);
        if (st == COSY_OK && ref_frames == frames) {
            double max_abs = 0, mag = 0, se = 0, sr = 0;
            for (size_t i = 0; i < (size_t)80 * frames; i++) {
                double d = fabs((double)mel[i] - ref[i]);
                if (d > max_abs) max_abs = d;
                if (fabs(ref[i]) > mag) mag = fabs(ref[i]);
                se += d * d;
                sr += (double)ref[i] * ref[i];
            }
            printf("  %s vs f32 on this call's mel: max abs %.3g (%.3g of the largest value), rms %.3g (%.3g relative)\n",
                   cosy_dtype_name(cosy_model_flow_dtype(model)), max_abs, max_abs / mag, sqrt(se / (80.0 * frames)), sqrt(se / sr));
        }
        free(ref);
        cosy_model_free(ref_model);
    }
    free(tok);
    free(ptok);
    free(feat);
    free(mel);
    cosy_model_free(model);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}
