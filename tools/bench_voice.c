/*
 * bench_voice.c — `cosy bench voice`: making a voice from S seconds of prompt audio
 * (cosy_voice_from_audio), and the same work split into its parts: the features (resampling to
 * 16 and 24 kHz, kaldi fbank, whisper log-mel, prompt mel), the speech tokenizer, CAM++.
 *
 * Without -m it uses the full-size random model of `cosy bench synth` (cosyvoice2-0.5b, seed, q4_0 LM),
 * cached under a name with the "-voicenets" tag: files cached before `cosy convert --random` stored
 * CAM++ and the tokenizer lack them, so this cache is built apart once. The prompt is synthetic
 * speech-like audio: noise and a 90-250 Hz gliding harmonic voice under a 4 Hz syllable envelope.
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/voice/campplus.h"
#include "model/model.h"
#include "model/voice/s3tokenizer.h"
#include "model/voice/voice.h"
#include "model/voice/voice_prompt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int bench_voice(int argc, char **argv);
cosy_status bench_random_model_path(const char *override, const char *config, uint64_t seed, const cosy_convert_params *cp,
                                    const char *tag, char *out, size_t size);

static const cli_usage usage = {
    .cmd = "bench voice",
    .synopsis = "[-m MODEL.gguf] [--seconds S] [--rate 16000|24000] [--runs N] [--threads N] [--model-cache FILE]\n"
                " [--seed N] [--json]",
    .description = "Makes a voice from S seconds of synthetic speech-like prompt audio with cosy_voice_from_audio,\n"
                   "once cold and --runs times warm, and times its parts: features (resampling, fbank, whisper\n"
                   "log-mel, prompt mel), the speech tokenizer, CAM++. Prints best and median of the warm runs and\n"
                   "the peak RSS. Without -m: the full-size random CosyVoice2-0.5B with CAM++ and the tokenizer,\n"
                   "built once into $XDG_CACHE_HOME/cosy or ~/.cache/cosy (name tagged -voicenets).\n",
};

#define N_FIG 4
typedef struct {
    double v[N_FIG]; /* total (cosy_voice_from_audio), features, tokenizer, campplus */
} run_stats;
static const char *const fig_names[N_FIG] = {"total_ms", "features_ms", "tokenizer_ms", "campplus_ms"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(const run_stats *runs, int n, run_stats *best, run_stats *median)
{
    double *v = malloc(sizeof *v * (size_t)n);
    for (int k = 0; v && k < N_FIG; k++) {
        for (int i = 0; i < n; i++) v[i] = runs[i].v[k];
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        best->v[k] = v[0];
        median->v[k] = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    free(v);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static uint64_t next_random(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 11;
}

/* speech-like: a gliding harmonic voice and noise, both under a 4 Hz syllable envelope */
static float *make_prompt(int64_t n, int rate, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) return NULL;
    uint64_t r = seed ^ 0xa0d10ull;
    double phase = 0, lp = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        double f0 = 170 + 80 * sin(2 * M_PI * 0.3 * t);
        phase += 2 * M_PI * f0 / rate;
        double voiced = 0;
        for (int h = 1; h <= 12; h++) voiced += sin(h * phase) / h;
        double noise = (double)next_random(&r) / 9007199254740992.0 * 2 - 1;
        lp += 0.3 * (noise - lp);
        double env = 0.5 + 0.5 * sin(2 * M_PI * 4 * t);
        x[i] = (float)(0.25 * env * (0.8 * voiced / 3 + 0.4 * lp) + 0.01 * noise);
    }
    return x;
}

static cosy_status run_once(cosy_model *m, const float *audio, int64_t n, int rate, run_stats *r)
{
    const cosy_campplus *cam;
    const cosy_s3tokenizer *tok;
    COSY_TRY(cosy_campplus_get(m, &cam));
    COSY_TRY(cosy_s3tokenizer_get(m, &tok));
    /* the whole call, as an application makes a voice */
    double t0 = cosy_now_ms();
    cosy_voice *v = NULL;
    COSY_TRY(cosy_voice_from_audio(m, audio, n, rate, "The morning train left the station a little late.", &v));
    r->v[0] = cosy_now_ms() - t0;
    cosy_voice_free(v);
    /* its parts */
    const cosy_prompt_mel_params melp = cosy_prompt_mel_params_from_hparams(&m->hp);
    cosy_prompt_features f;
    t0 = cosy_now_ms();
    COSY_TRY(cosy_prompt_features_compute(audio, n, rate, "prompt", &melp, &f));
    r->v[1] = cosy_now_ms() - t0;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(cosy_s3tokenizer_n_tokens(f.n_whisper) + 1));
    float *emb = malloc(sizeof(float) * (size_t)cosy_campplus_hp((cosy_campplus *)cam)->embedding_size);
    cosy_status st = tokens && emb ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "out of memory");
    t0 = cosy_now_ms();
    if (st == COSY_OK) st = cosy_s3tokenizer_forward(tok, m->pool, f.whisper_mel, f.n_whisper, f.n_whisper, tokens, NULL, NULL);
    r->v[2] = cosy_now_ms() - t0;
    t0 = cosy_now_ms();
    if (st == COSY_OK) st = cosy_campplus_forward(cam, m->pool, f.campplus_input, f.n_fbank, emb, NULL, NULL);
    r->v[3] = cosy_now_ms() - t0;
    free(tokens);
    free(emb);
    cosy_prompt_features_free(&f);
    return st;
}

static void print_row(const char *name, const run_stats *r)
{
    printf("  %-7s %9.1f %9.1f %9.1f %9.1f\n", name, r->v[0], r->v[1], r->v[2], r->v[3]);
}

int bench_voice(int argc, char **argv)
{
    const char *path = NULL, *cache = NULL;
    long long seconds = 10, runs = 3, threads = 0, seed = 1234;
    int json = 0, rate_index = 0;
    cosy_model_params mp = cosy_model_default_params();
    cosy_convert_params cp = cosy_convert_default_params();
    cp.lm_dtype = COSY_DTYPE_Q4_0; /* as `cosy bench synth` builds it */
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        {.name = "--seconds", .kind = CLI_OPT_INT, .dest = &seconds, .hint = "S", .min = 1, .max = 30, .unit = "seconds",
         .help = "seconds of prompt audio", .default_text = "10"},
        {.name = "--rate", .kind = CLI_OPT_CHOICE, .dest = &rate_index, .hint = "HZ", .choices = "16000,24000",
         .help = "the prompt's sample rate (24000 adds a resampling to 16 kHz)", .default_text = "16000"},
        CLI_OPTION_MODEL_CACHE(&cache),
        CLI_OPTION_SEED(&seed, "1234"),
        CLI_OPTION_JSON(&json, "one JSON object on stdout instead of the table"),
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_RUNS(&runs, "3"),
        CLI_OPTION_END,
    };
    int parsed = cli_parse_options(&usage, opts, argc, argv, &path);
    if (parsed != CLI_GO_ON) return parsed;
    if (path && cache) return cli_usage_error("bench voice", "give -m MODEL.gguf or --model-cache PATH, not both");
    mp.n_threads = (int)threads;
    const int rate = rate_index ? 24000 : 16000;

    char model_path[1280];
    cosy_status st = COSY_OK;
    int random_model = !path;
    if (!path) {
        st = bench_random_model_path(cache, "cosyvoice2-0.5b", (uint64_t)seed, &cp, "-voicenets", model_path, sizeof model_path);
        struct stat sb;
        if (st == COSY_OK && stat(model_path, &sb) != 0) {
            fprintf(stderr, "cosy bench: building the random model cosyvoice2-0.5b (seed %lld) into %s, once\n", seed, model_path);
            st = cosy_convert_random("cosyvoice2-0.5b", (uint64_t)seed, model_path, &cp);
        } else if (st == COSY_OK) {
            fprintf(stderr, "cosy bench: the random model cosyvoice2-0.5b (seed %lld) from %s\n", seed, model_path);
        }
        path = model_path;
    }
    cosy_model *m = NULL;
    double t0 = cosy_now_ms();
    if (st == COSY_OK) st = cosy_model_load(path, &mp, &m);
    double load_ms = cosy_now_ms() - t0, rss_loaded = peak_rss_mb();
    const int64_t n = (int64_t)seconds * rate;
    float *audio = st == COSY_OK ? make_prompt(n, rate, (uint64_t)seed) : NULL;
    if (st == COSY_OK && !audio) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    run_stats cold = {{0}}, *warm = calloc((size_t)runs, sizeof *warm);
    if (st == COSY_OK && !warm) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    const char *cpu_path = cosy_cpu_level_name(cosy_cpu_level());
    if (st == COSY_OK && !json) {
        printf("cosy bench voice: %s, CPU path %s, %d threads\n", cosy_cpu_model_name(), cpu_path, cosy_pool_size(m->pool));
        printf("model: %s%s, loaded in %.0f ms\n", path, random_model ? " (random weights)" : "", load_ms);
        printf("prompt: %lld s of synthetic speech-like audio at %d Hz\n", seconds, rate);
        printf("  %-7s %9s %9s %9s %9s\n", "run", "voice ms", "features", "tokenizer", "CAM++");
    }
    if (st == COSY_OK) st = run_once(m, audio, n, rate, &cold);
    if (st == COSY_OK && !json) print_row("cold", &cold);
    for (long long r = 0; st == COSY_OK && r < runs; r++) {
        st = run_once(m, audio, n, rate, &warm[r]);
        char name[32];
        snprintf(name, sizeof name, "%lld", r + 1);
        if (st == COSY_OK && !json) print_row(name, &warm[r]);
    }
    if (st == COSY_OK) {
        run_stats best, median;
        summarize(warm, (int)runs, &best, &median);
        double rss = peak_rss_mb();
        if (!json) {
            print_row("best", &best);
            print_row("median", &median);
            printf("peak RSS %.0f MB (%.0f MB after loading)\n", rss, rss_loaded);
        } else {
            printf("{\"cpu_path\": \"%s\", \"threads\": %d, \"random_model\": %s, \"load_ms\": %.1f, \"seconds\": %lld, \"rate\": %d, \"runs\": %lld",
                   cpu_path, cosy_pool_size(m->pool), random_model ? "true" : "false", load_ms, seconds, rate, runs);
            const run_stats *sets[3] = {&best, &median, &cold};
            const char *set_names[3] = {"best", "median", "cold"};
            for (int s = 0; s < 3; s++) {
                printf(", \"%s\": {", set_names[s]);
                for (int k = 0; k < N_FIG; k++) printf("%s\"%s\": %.6g", k ? ", " : "", fig_names[k], sets[s]->v[k]);
                printf("}");
            }
            printf(", \"peak_rss_mb\": %.1f, \"loaded_rss_mb\": %.1f}\n", rss, rss_loaded);
        }
    }
    free(warm);
    free(audio);
    cosy_model_free(m);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}
