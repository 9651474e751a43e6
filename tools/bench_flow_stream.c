/*
 * bench_flow_stream.c — what the cached streaming flow (model/flow_stream.h) costs per chunk as an
 * utterance grows, against the reference's way (a full stateless flow call over every token so
 * far at each chunk): `bench_flow_stream(argc, argv)` is meant for `cosy bench` (its `flow-stream`
 * part).
 *
 * One stream runs calls of --hop tokens (default 25 = 1 s of audio; the first one padded so the
 * prompt and it fill whole 25-token chunks, as CosyVoice2's schedule does), each with the 3
 * look-ahead tokens, up to --seconds of audio. Every call's wall time and the cache size are kept;
 * the report gives, at 5 s and at the end (and every 5 s in a table), the chunk's time (best and
 * median of the calls within +-1 s, the machine being noisy), the full recompute of the same
 * call (cosy_flow_inference on all tokens so far; --full-at lists where, default 5 and the end),
 * the cache size, and the peak RSS. The first chunk is also timed with a prompt state that caches
 * nothing, to show what the per-voice prompt cache saves. Inputs are seeded random values.
 */
#include "cli.h"
#include <math.h>
#include "core/clock.h"
#include "core/cpu.h"
#include "model/flow/flow.h"
#include "model/flow/flow_stream.h"
#include "model/model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

int bench_flow_stream(int argc, char **argv);

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* kB on Linux */
}

static const cli_usage usage = {
    .cmd = "bench flowstream",
    .synopsis = "-m MODEL.gguf [--prompt P] [--seconds S] [--hop H] [--full-at LIST] [--flow-dtype TYPE]\n"
                " [--context SECONDS] [--threads N] [--all]",
    .description = "Streams S seconds of random speech tokens through the cached flow in calls of H tokens after a\n"
                   "prompt of P tokens, timing every call; compares with a full stateless flow call at the seconds in\n"
                   "--full-at and times the first chunk without the prompt cache. With a --context window, the full\n"
                   "calls also say how far its mel moved.\n",
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* best and median of calls whose audio ends within +-1 s of `sec` */
static void window_stats(const double *ms, const double *end_sec, int n, double sec, double *best, double *median)
{
    double v[64];
    int k = 0;
    for (int i = 0; i < n && k < 64; i++)
        if (end_sec[i] >= sec - 1.0 - 1e-9 && end_sec[i] <= sec + 1.0 + 1e-9) v[k++] = ms[i];
    if (!k) {
        *best = *median = 0;
        return;
    }
    qsort(v, (size_t)k, sizeof *v, cmp_double);
    *best = v[0];
    *median = v[k / 2];
}

int bench_flow_stream(int argc, char **argv)
{
    const char *path = NULL, *full_at = NULL;
    long long prompt = 75, seconds = 60, hop = 25, threads = 0, context = cosy_token2wav_default_params().context_seconds;
    cosy_dtype flow_dtype = COSY_DTYPE_AUTO;
    int all_calls = 0;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        {.name = "--prompt", .kind = CLI_OPT_INT, .dest = &prompt, .hint = "P", .min = 0, .max = 1000, .unit = "tokens",
         .help = "prompt tokens (75 = 3 s)", .default_text = "75"},
        {.name = "--seconds", .kind = CLI_OPT_INT, .dest = &seconds, .hint = "S", .min = 2, .max = 280, .unit = "seconds",
         .help = "seconds of speech tokens streamed", .default_text = "60"},
        {.name = "--hop", .kind = CLI_OPT_INT, .dest = &hop, .hint = "H", .min = 1, .max = 1000, .unit = "tokens",
         .help = "tokens per call", .default_text = "25"},
        {.name = "--full-at", .kind = CLI_OPT_STRING, .dest = &full_at, .hint = "LIST",
         .help = "seconds at which to compare with a full stateless call, comma-separated; \"none\" for none",
         .default_text = "\"5,S\""},
        {.name = "--all", .kind = CLI_OPT_FLAG, .dest = &all_calls, .help = "print every call (default: one every 5 s, the first and the last)"},
        CLI_OPTION_FLOW_DTYPE(&flow_dtype, "auto"),
        CLI_OPTION_CONTEXT(&context),
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, &path);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("bench flowstream", "a model file is required (-m MODEL.gguf)");
    /* where to run the full recompute (seconds of audio) */
    int full_sec[16], n_full = 0;
    if (!full_at) {
        full_sec[n_full++] = 5;
        full_sec[n_full++] = (int)seconds;
    } else if (strcmp(full_at, "none")) {
        for (const char *p = full_at; *p && n_full < 16;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || v > seconds) return cli_usage_error("bench flowstream", "--full-at needs seconds in 1..%lld, comma-separated", seconds);
            full_sec[n_full++] = (int)v;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') return cli_usage_error("bench flowstream", "--full-at: unexpected '%s'", end);
        }
    }

    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = (int)threads;
    mp.flow_dtype = flow_dtype;
    cosy_model *model = NULL;
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
    cosy_flow *flow = NULL;
    st = cosy_flow_get(model, &flow);
    if (st != COSY_OK) {
        cosy_model_free(model);
        return cli_fail("bench", st);
    }
    const cosy_hparams *hp = &model->hp;
    const int P = (int)prompt, la = hp->pre_lookahead_len, rate = hp->token_frame_rate;
    const int chunk = hp->est_static_chunk / hp->token_mel_ratio; /* tokens per attention chunk (CosyVoice2: the encoder's too) */
    const int N = (int)seconds * rate + la; /* speech tokens incl. the last call's look-ahead */
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *ptok = malloc(sizeof(int32_t) * (size_t)(P + 1));
    float *feat = malloc(sizeof(float) * 80 * (size_t)(2 * P + 1)), emb[1024];
    float *mel = malloc(sizeof(float) * 80 * 2 * (size_t)N), *mels = malloc(sizeof(float) * 80 * 2 * (size_t)N);
    int *call_frames = malloc(sizeof(int) * (size_t)(N / (int)hop + 2)), *call_offset = malloc(sizeof(int) * (size_t)(N / (int)hop + 2));
    int max_calls = N / (int)hop + 2;
    double *call_ms = malloc(sizeof(double) * (size_t)max_calls), *call_end = malloc(sizeof(double) * (size_t)max_calls);
    int *call_n = malloc(sizeof(int) * (size_t)max_calls);
    size_t *call_bytes = malloc(sizeof(size_t) * (size_t)max_calls);
    if (!tok || !ptok || !feat || !mel || !mels || !call_frames || !call_offset || !call_ms || !call_end || !call_n || !call_bytes ||
        hp->spk_embed_dim > 1024) {
        fprintf(stderr, "bench: out of memory\n");
        cosy_model_free(model);
        return 1;
    }
    uint32_t seed = 12345;
#define NEXT() (seed = seed * 1664525u + 1013904223u, seed >> 8)
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(NEXT() % (uint32_t)hp->flow_vocab);
    for (int i = 0; i < P; i++) ptok[i] = (int32_t)(NEXT() % (uint32_t)hp->flow_vocab);
    for (int i = 0; i < 2 * P * 80; i++) feat[i] = -6.0f + 6.0f * (float)(NEXT() & 0xffff) / 65536.0f;
    for (int i = 0; i < hp->spk_embed_dim; i++) emb[i] = (float)(NEXT() & 0xffff) / 32768.0f - 1.0f;

    /* the window in frames, as cosy_token2wav rounds it: whole attention chunks */
    const int chunk2 = hp->est_static_chunk, window = ((int)context * rate * hp->token_mel_ratio + chunk2 - 1) / chunk2 * chunk2;
    printf("flow stream: %s, %s, %d threads, products in %s, context %lld s%s\n", path, cosy_cpu_model_name(), cosy_pool_size(model->pool),
           cosy_dtype_name(cosy_model_flow_dtype(model)), context, context ? "" : " (unlimited, as the reference)");
    /* warm-up: draws the noise buffer for the whole run and touches the weights */
    int frames;
    double t0 = cosy_now_ms();
    st = cosy_flow_inference(flow, tok, la + 1, NULL, 0, NULL, emb, 1, 0, mel, &frames);
    if (st == COSY_OK) st = cosy_flow_inference(flow, tok, 1, ptok, P, feat, emb, 1, 1, mel, &frames);
    printf("  warm-up %.0f ms\n", cosy_now_ms() - t0);

    /* the per-voice state, and what it saves on the first chunk */
    cosy_flow_prompt *prompt_state = NULL, *bare = NULL;
    double t_prompt = 0;
    if (st == COSY_OK) {
        t0 = cosy_now_ms();
        st = cosy_flow_prompt_create(flow, ptok, P, feat, emb, &prompt_state);
        t_prompt = cosy_now_ms() - t0;
    }
    if (st == COSY_OK) st = cosy_flow_prompt_create_limited(flow, ptok, P, feat, emb, 0, &bare);
    const int pad = (P + chunk - 1) / chunk * chunk - P, first_n = (int)hop + pad + la;
    if (st == COSY_OK) {
        printf("  prompt: %d tokens, %d chunk%s cached (%.1f MB), built in %.0f ms\n", P, cosy_flow_prompt_chunks(prompt_state),
               cosy_flow_prompt_chunks(prompt_state) == 1 ? "" : "s", cosy_flow_prompt_bytes(prompt_state) / 1048576.0, t_prompt);
        double best[2] = {1e30, 1e30};
        for (int r = 0; r < 3 && st == COSY_OK; r++)
            for (int k = 0; k < 2 && st == COSY_OK; k++) {
                cosy_flow_stream *s = NULL;
                st = cosy_flow_stream_create(flow, k ? bare : prompt_state, &s);
                t0 = cosy_now_ms();
                if (st == COSY_OK) st = cosy_flow_stream_step(s, tok, first_n, 0, 0, mel, &frames);
                double ms = cosy_now_ms() - t0;
                if (ms < best[k]) best[k] = ms;
                cosy_flow_stream_free(s);
            }
        if (st == COSY_OK)
            printf("  first chunk (%d tokens + %d look-ahead): %.0f ms with the prompt cache, %.0f ms without (saves %.0f ms, %.0f%%); best of 3\n",
                   first_n - la, la, best[0], best[1], best[1] - best[0], 100.0 * (best[1] - best[0]) / best[1]);
    }
    cosy_flow_prompt_free(bare);

    /* the stream */
    cosy_flow_stream *s = NULL;
    if (st == COSY_OK) st = cosy_flow_stream_create(flow, prompt_state, &s);
    if (st == COSY_OK) st = cosy_flow_stream_set_window(s, window);
    int n_calls = 0, mel_at = 0;
    double total = 0;
    for (int offset = 0, h = (int)hop + pad; st == COSY_OK && offset + h + la <= N; offset += h, h = (int)hop) {
        const int n = offset + h + la;
        t0 = cosy_now_ms();
        st = cosy_flow_stream_step(s, tok, n, offset, 0, mels + (size_t)80 * mel_at, &frames);
        const double ms = cosy_now_ms() - t0;
        call_frames[n_calls] = frames;
        call_offset[n_calls] = mel_at;
        mel_at += st == COSY_OK ? frames : 0;
        total += ms;
        call_ms[n_calls] = ms;
        call_end[n_calls] = (double)(n - la) / rate;
        call_n[n_calls] = n;
        call_bytes[n_calls] = cosy_flow_stream_bytes(s);
        n_calls++;
    }
    if (st == COSY_OK && n_calls > 0) {
        printf("  %d calls of %lld tokens to %.0f s: %.1f s in all (%.3f s per second of audio)\n", n_calls, hop, call_end[n_calls - 1],
               total / 1000.0, total / 1000.0 / call_end[n_calls - 1]);
        printf("  %8s %10s %12s %12s %14s\n", "audio", "call ms", "(best, +-1s)", "(median)", "cache MB");
        for (int i = 0; i < n_calls; i++) {
            const double sec = call_end[i];
            if (!all_calls && i != 0 && i != n_calls - 1 && (int)(sec * 1000 + 0.5) % 5000 != 0) continue; /* every 5 s (--all: every call) */
            double best, median;
            window_stats(call_ms, call_end, n_calls, sec, &best, &median);
            printf("  %7.2fs %10.0f %12.0f %12.0f %14.1f\n", sec, call_ms[i], best, median, call_bytes[i] / 1048576.0);
        }
    }
    const size_t stream_bytes = cosy_flow_stream_bytes(s);
    const double rss_stream = peak_rss_mb();
    cosy_flow_stream_free(s);

    /* full recompute of the same calls (what the reference does every chunk) */
    for (int f = 0; f < n_full && st == COSY_OK; f++) {
        int k = -1;
        for (int i = 0; i < n_calls; i++)
            if (k < 0 || (call_end[i] - full_sec[f]) * (call_end[i] - full_sec[f]) < (call_end[k] - full_sec[f]) * (call_end[k] - full_sec[f]))
                k = i;
        if (k < 0) break;
        t0 = cosy_now_ms();
        st = cosy_flow_inference(flow, tok, call_n[k], ptok, P, feat, emb, 1, 0, mel, &frames);
        const double ms = cosy_now_ms() - t0;
        double best, median;
        window_stats(call_ms, call_end, n_calls, call_end[k], &best, &median);
        if (st == COSY_OK)
            printf("  at %.0f s: full recompute %.0f ms vs cached %.0f ms (best within +-1 s %.0f, median %.0f): %.1fx\n", call_end[k], ms,
                   call_ms[k], best, median, ms / (median > 0 ? median : call_ms[k]));
        if (st == COSY_OK && window > 0) {
            /* what the window did to this call's mel: against the exact (all left chunks) one */
            const int F = call_frames[k], first = frames - F;
            const float *got = mels + (size_t)80 * call_offset[k];
            double worst = 0, peak = 0;
            for (int c = 0; c < 80; c++)
                for (int t = 0; t < F; t++) {
                    const double want = mel[(size_t)c * frames + first + t];
                    worst = fmax(worst, fabs(got[(size_t)c * F + t] - want));
                    peak = fmax(peak, fabs(want));
                }
            printf("           the %d s window's mel vs the exact one on this call: max abs %.3g (%.3g of the largest value)\n", (int)context,
                   worst, worst / (peak > 0 ? peak : 1));
        }
    }
    if (st == COSY_OK)
        printf("  stream cache at the end %.1f MB (%.1f MB per second of audio); peak RSS %.0f MB during the stream, %.0f MB overall\n",
               stream_bytes / 1048576.0, stream_bytes / 1048576.0 / (n_calls ? call_end[n_calls - 1] : 1), rss_stream, peak_rss_mb());
    cosy_flow_prompt_free(prompt_state);
    free(tok);
    free(ptok);
    free(feat);
    free(mel);
    free(mels);
    free(call_frames);
    free(call_offset);
    free(call_ms);
    free(call_end);
    free(call_n);
    free(call_bytes);
    cosy_model_free(model);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}
