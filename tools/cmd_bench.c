/*
 * cmd_bench.c — `cosy bench <target> [options]`: speed measurements on a model file, typically
 * the full-size random model (`cosy convert --random cosyvoice2-0.5b -o big.gguf`).
 *
 * Each target is one function in the table below, called with argv[0] = the target name; add a
 * line to measure something new. Timings on a shared machine are noisy, so every target repeats
 * its measurement (--runs) and reports the best run. `cosy bench serve` instead loads a running
 * `cosy serve` over the network (tools/bench_serve.c).
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/gemv.h"
#include "model/lm/lm.h"
#include "model/model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

int bench_flow(int argc, char **argv);        /* tools/bench_flow.c */
int bench_flow_stream(int argc, char **argv); /* tools/bench_flow_stream.c */
int bench_hift(int argc, char **argv);        /* tools/bench_hift.c */
int bench_text(int argc, char **argv);        /* tools/bench_text.c */
int bench_t2w(int argc, char **argv);         /* tools/bench_t2w.c */
int bench_synth(int argc, char **argv);       /* tools/bench_synth.c */
int bench_voice(int argc, char **argv);       /* tools/bench_voice.c */
int bench_serve(int argc, char **argv);       /* tools/bench_serve.c */
static int bench_lm(int argc, char **argv);

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} bench_target;

static const bench_target targets[] = {
    {"synth", bench_synth, "the whole pipeline through a session: first audio, RTF, stage times, LM tokens/s, peak RSS"},
    {"voice", bench_voice, "a voice from S seconds of prompt audio (cosy_voice_from_audio): features / CAM++ / tokenizer ms, peak RSS"},
    {"lm", bench_lm, "LM prefill and decode speed (tokens/s) for --lm-dtype f32|bf16|q8_0|q4_0"},
    {"flow", bench_flow, "one stateless flow call (token encoder + CFM steps), ms"},
    {"flowstream", bench_flow_stream, "the cached streaming flow over a long utterance: ms per chunk as it grows"},
    {"token2wav", bench_t2w, "streaming token2wav calls (flow + HiFT) over S seconds: ms per 25-token chunk"},
    {"hift", bench_hift, "the HiFT vocoder on F mel frames, ms and RTF"},
    {"serve", bench_serve, "a closed-loop load test of a running `cosy serve`: first/second-chunk and total latency percentiles, RTF, underruns"},
    {"text", bench_text, "text normalization + BPE tokenizer throughput, MB/s"},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* ------------------------------------------------------------------ lm */

static const cli_usage bench_lm_usage = {
    .cmd = "bench lm",
    .synopsis = "-m MODEL.gguf [--lm-dtype TYPE] [--threads N] [--prefill N] [--decode N] [--sequences S] [--runs N]",
    .description = "Loads the LM with its matrices in --lm-dtype, then --runs times: prefills --prefill positions\n"
                   "(sos, text, task_id, prompt speech) in one feed, and decodes --decode tokens one at a time, each\n"
                   "a forward plus ras_sampling. Prints the best run's prefill and decode tokens/s. With --sequences S,\n"
                   "S sequences are prefilled one after the other, then decoded by S threads at once (as S sessions\n"
                   "would: their steps share forwards, lm.h \"batched decode\"); decode tokens/s is then all S\n"
                   "sequences' tokens per second of wall time.\n",
};

typedef struct {
    cosy_lm_state *state;
    cosy_ras_sampler ras;
    int ras_ok;
    float *logp;
    int32_t *decoded;
    const cosy_hparams *hp;
    int V;
    long long decode;
    double sample_ms;
    cosy_status st;
} bench_lm_sequence;

/* decode q->decode tokens after a prefill (the logp it left) */
static void *bench_lm_decode(void *arg)
{
    bench_lm_sequence *q = arg;
    const cosy_hparams *hp = q->hp;
    q->sample_ms = 0;
    for (long long k = 0; q->st == COSY_OK && k < q->decode; k++) {
        double s0 = cosy_now_ms();
        int32_t tok;
        q->logp[hp->speech_token_size] = -1e30f; /* keep decoding: no eos */
        q->st = cosy_ras_sample(&q->ras, q->logp, q->V, q->decoded, (int)k, &tok);
        if (q->st == COSY_OK && tok >= hp->speech_token_size) tok = (int32_t)(k % hp->speech_token_size);
        q->sample_ms += cosy_now_ms() - s0;
        q->decoded[k] = tok;
        cosy_lm_kind kind = COSY_LM_SPEECH;
        if (q->st == COSY_OK) q->st = cosy_lm_feed(q->state, &kind, &tok, 1, q->logp);
    }
    return NULL;
}

static int bench_lm(int argc, char **argv)
{
    const char *path = NULL;
    cosy_dtype dtype = COSY_DTYPE_Q8_0;
    long long threads = 0, prefill = 200, decode = 100, runs = 3, sequences = 1;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        CLI_OPTION_LM_DTYPE(&dtype, "q8_0"),
        CLI_OPTION_THREADS(&threads),
        {.name = "--prefill", .kind = CLI_OPT_INT, .dest = &prefill, .hint = "N", .min = 3, .max = 8192, .unit = "positions",
         .help = "positions prefilled in one feed", .default_text = "200"},
        {.name = "--decode", .kind = CLI_OPT_INT, .dest = &decode, .hint = "N", .min = 1, .max = 8192, .unit = "tokens",
         .help = "tokens decoded one at a time", .default_text = "100"},
        CLI_OPTION_RUNS(&runs, "3"),
        {.name = "--sequences", .kind = CLI_OPT_INT, .dest = &sequences, .hint = "S", .min = 1, .max = 64,
         .help = "sequences decoding at once, one thread each (batched decode)", .default_text = "1"},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&bench_lm_usage, opts, argc, argv, &path);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("bench lm", "a model file is required (-m MODEL.gguf)");

    cosy_model_params mp = cosy_model_default_params();
    mp.lm_dtype = dtype;
    mp.n_threads = (int)threads;
    cosy_model *model = NULL;
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
    double t0 = cosy_now_ms();
    cosy_lm *lm = NULL;
    st = cosy_lm_get(model, &lm);
    double load_ms = cosy_now_ms() - t0;
    if (st != COSY_OK) {
        cosy_model_free(model);
        return cli_fail("bench", st);
    }
    dtype = model->params.lm_dtype; /* auto: the type the file stores, resolved at load */
    const cosy_hparams *hp = cosy_lm_hparams(lm);
    printf("cpu:     %s, kernels %s (%s), %d threads\n", cosy_cpu_model_name(), cosy_cpu_level_name(cosy_cpu_level()),
           cosy_gemv_variant(dtype), cosy_pool_size(model->pool));
    printf("model:   %s: Qwen2 %d layers, hidden %d, heads %d/%d, MLP %d, speech vocab %d\n", path, hp->lm_layers, hp->lm_hidden,
           hp->lm_heads, hp->lm_kv_heads, hp->lm_ffn, hp->lm_speech_vocab);
    printf("weights: %s (prepared in %.0f ms)\n", cosy_dtype_name(dtype), load_ms);

    const int n = (int)prefill, V = cosy_lm_vocab(lm), S = (int)sequences;
    cosy_lm_kind *kinds = malloc(sizeof *kinds * (size_t)n);
    int32_t *ids = malloc(sizeof *ids * (size_t)n);
    bench_lm_sequence *seq = calloc((size_t)S, sizeof *seq);
    pthread_t *thr = calloc((size_t)S, sizeof *thr);
    if (!kinds || !ids || !seq || !thr) st = COSY_ERR_NOMEM;
    for (int i = 0; st == COSY_OK && i < S; i++) {
        bench_lm_sequence *q = &seq[i];
        q->hp = hp;
        q->V = V;
        q->decode = decode;
        q->logp = malloc(sizeof(float) * (size_t)V);
        q->decoded = malloc(sizeof(int32_t) * (size_t)decode);
        if (!q->logp || !q->decoded) st = COSY_ERR_NOMEM;
        if (st == COSY_OK) st = cosy_lm_state_create(lm, (int)(prefill + decode + 1), &q->state);
        if (st == COSY_OK) st = cosy_ras_init(&q->ras, V, hp->top_p, hp->top_k, hp->win_size, hp->tau_r, (uint64_t)i + 1);
        q->ras_ok = st == COSY_OK;
    }
    /* [sos, n_text text tokens, task_id, prompt speech]: about a third text, as a prompt + sentence */
    int n_text = n / 3;
    for (int i = 0; st == COSY_OK && i < n; i++) {
        if (i == 0) kinds[i] = COSY_LM_SOS, ids[i] = -1;
        else if (i <= n_text) kinds[i] = COSY_LM_TEXT, ids[i] = (int32_t)((i * 7919) % hp->lm_text_vocab);
        else if (i == n_text + 1) kinds[i] = COSY_LM_TASK, ids[i] = -1;
        else kinds[i] = COSY_LM_SPEECH, ids[i] = (int32_t)((i * 104729) % hp->speech_token_size);
    }
    cosy_lm_batch_counts c0, c1;
    cosy_lm_batch_counts_get(lm, &c0);
    double best_prefill = 1e30, best_decode = 1e30, best_sample = 0;
    for (long long r = 0; st == COSY_OK && r < runs; r++) {
        double pre = 0, sample_ms = 0;
        for (int i = 0; st == COSY_OK && i < S; i++) {
            cosy_lm_state_reset(seq[i].state);
            double a = cosy_now_ms();
            st = cosy_lm_feed(seq[i].state, kinds, ids, n, seq[i].logp);
            if (i == 0) pre = cosy_now_ms() - a;
            seq[i].st = st;
        }
        double a = cosy_now_ms();
        if (S == 1) bench_lm_decode(&seq[0]);
        else {
            int started = 0;
            for (; st == COSY_OK && started < S; started++)
                if (pthread_create(&thr[started], NULL, bench_lm_decode, &seq[started])) st = COSY_ERR_NOMEM;
            for (int i = 0; i < started; i++) pthread_join(thr[i], NULL);
        }
        double dec = cosy_now_ms() - a;
        for (int i = 0; i < S; i++) {
            if (st == COSY_OK) st = seq[i].st;
            sample_ms += seq[i].sample_ms;
        }
        double tokens = (double)decode * S;
        printf("run %lld: prefill %d positions %.1f ms (%.1f tokens/s); decode %d x %lld tokens %.1f ms (%.1f tokens/s, %.2f ms/token, "
               "sampling %.2f ms/token)\n",
               r + 1, n, pre, n / pre * 1e3, S, decode, dec, tokens / dec * 1e3, dec / tokens, sample_ms / tokens);
        if (pre < best_prefill) best_prefill = pre;
        if (dec < best_decode) {
            best_decode = dec;
            best_sample = sample_ms;
        }
    }
    cosy_lm_batch_counts_get(lm, &c1);
    if (st == COSY_OK) {
        double tokens = (double)decode * S;
        printf("best:    %s prefill %.1f tokens/s (%d in %.1f ms), decode %.1f tokens/s (%.2f ms/token, of which sampling %.2f); "
               "peak RSS %.0f MiB\n",
               cosy_dtype_name(dtype), n / best_prefill * 1e3, n, best_prefill, tokens / best_decode * 1e3, best_decode / tokens,
               best_sample / tokens, peak_rss_mib());
        if (S > 1) {
            long fw = c1.forwards - c0.forwards, rq = c1.requests - c0.requests, sh = c1.shared - c0.shared;
            long passes = c1.passes - c0.passes;
            printf("batches: %d sequences: %ld decode forwards carried %ld feeds (%.2f per forward), %ld shared, at most %d at once; "
                   "%.2f layer passes per forward (%d: none caught up)\n",
                   S, fw, rq, fw ? (double)rq / fw : 0.0, sh, c1.largest, fw ? (double)passes / fw : 0.0, hp->lm_layers);
        }
    }
    for (int i = 0; seq && i < S; i++) {
        if (seq[i].ras_ok) cosy_ras_free(&seq[i].ras);
        cosy_lm_state_free(seq[i].state);
        free(seq[i].logp);
        free(seq[i].decoded);
    }
    free(seq);
    free(thr);
    free(kinds);
    free(ids);
    cosy_model_free(model);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}

/* ------------------------------------------------------------------ dispatch */

static void help(void)
{
    printf("usage: cosy bench <target> [options]   (cosy bench <target> --help for its options)\n\ntargets:\n");
    for (size_t i = 0; i < N_TARGETS; i++) printf("  %-11s %s\n", targets[i].name, targets[i].summary);
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        help();
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < N_TARGETS; i++)
        if (!strcmp(argv[1], targets[i].name)) return targets[i].run(argc - 1, argv + 1);
    return cli_usage_error("bench", "unknown target '%s'", argv[1]);
}
