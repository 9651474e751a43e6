/*
 * bench_synth.c — `cosy bench synth`: the whole pipeline (text → frontend → LM prefill and decode →
 * streaming flow → HiFT) through the public session API, as a server runs requests: the model is
 * loaded and prepared once, the voice object is kept, and every run is a new streaming session.
 *
 * The first run is reported apart as the cold one (whatever is built or faulted in on first use);
 * the --runs warm runs after it give best and median of every figure: first audio, RTF, each
 * stage's time (cosy_timings), LM decode tokens/s. Also the model's load + prepare time, the peak
 * RSS (getrusage), the CPU path in use (core/cpu.c) and the run-time types.
 *
 * Without -m it builds the full-size random model (cosy_convert_random("cosyvoice2-0.5b"), or --random's) once into a
 * cache file named by configuration, seed and storage types, and reuses it; without --voice a
 * synthetic 3 s voice (cosy_voice_synthetic: 75 prompt tokens, 150 mel frames, 10 transcript tokens).
 * The text is English words up to 3.5 text tokens per second of audio (Qwen2's BPE gives about 3–4
 * per second of English speech), at most 75 so that it stays one sentence (the splitter's limit is
 * 80); the speech is 25 tokens a second exactly: capped (max_speech_tokens) and with no stop before
 * (min_speech_tokens), as a random-weight LM samples a stop id at random (rarely in CosyVoice2, whose
 * only stop is eos; within ~30 steps in CosyVoice3, which stops on any of 200 ids).
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "model/voice/voice.h"
#include "text/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int bench_synth(int argc, char **argv);

static const cli_usage usage = {
    .cmd = "bench synth",
    .synopsis = "[-m MODEL.gguf] [--voice VOICE] [--seconds S] [--runs N] [--first-chunk N] [--chunk-causal-final] [--threads N]\n"
                " [--lm-dtype TYPE] [--flow-dtype TYPE] [--hift-dtype TYPE] [--model-cache FILE]\n"
                " [--random CONFIG] [--random-lm TYPE] [--seed N] [--json]",
    .description = "Synthesises S seconds of streamed audio from text through a session, once cold and then --runs\n"
                   "times warm, reusing the loaded model and the voice as a server does, and prints first audio, RTF,\n"
                   "each stage's time and LM decode tokens/s (best and median of the warm runs; the cold run apart),\n"
                   "the model's load time, the peak RSS, the CPU path and the run-time types.\n"
                   "Without -m: the full-size random CosyVoice2-0.5B, built once (~1.4 GB with a q4_0 LM) into\n"
                   "$XDG_CACHE_HOME/cosy or ~/.cache/cosy (--model-cache FILE: that file instead; --random\n"
                   "cosyvoice3-0.5b: Fun-CosyVoice3-0.5B's shapes; cv2-tiny or cv3-tiny: a fixture's small shapes, for\n"
                   "a quick check). Without --voice: a synthetic 3 s voice (75 prompt tokens,\n"
                   "10 transcript tokens).\n",
};

typedef struct {
    double first_audio_ms, rtf, total_ms, frontend_ms, lm_prefill_ms, lm_decode_ms, flow_ms, vocoder_ms, decode_tokens_per_s;
    double audio_seconds;
    int speech_tokens, text_tokens, chunks;
} run_stats;

#define N_FIGURES 9
static double *figure(run_stats *r, int k)
{
    double *f[N_FIGURES] = {&r->first_audio_ms, &r->rtf, &r->total_ms, &r->frontend_ms, &r->lm_prefill_ms,
                            &r->lm_decode_ms, &r->flow_ms, &r->vocoder_ms, &r->decode_tokens_per_s};
    return f[k];
}
static const char *const figure_names[N_FIGURES] = {"first_audio_ms", "rtf", "total_ms", "frontend_ms", "lm_prefill_ms",
                                                    "lm_decode_ms", "flow_ms", "vocoder_ms", "lm_decode_tokens_per_s"};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* best (lowest; highest tokens/s) and median, figure by figure */
static void summarize(run_stats *runs, int n, run_stats *best, run_stats *median)
{
    double *v = malloc(sizeof *v * (size_t)n);
    *best = *median = runs[0];
    for (int k = 0; v && k < N_FIGURES; k++) {
        for (int i = 0; i < n; i++) v[i] = *figure(&runs[i], k);
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        *figure(best, k) = k == N_FIGURES - 1 ? v[n - 1] : v[0];
        *figure(median, k) = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
    free(v);
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* kB on Linux */
}

/* The cached random model's path: --model-cache, else $XDG_CACHE_HOME/cosy or ~/.cache/cosy; `tag`
 * (may be "") is appended to the name, for files that must hold more than older caches did. */
cosy_status bench_random_model_path(const char *override, const char *config, uint64_t seed, const cosy_convert_params *cp,
                                    const char *tag, char *out, size_t size);
cosy_status bench_random_model_path(const char *override, const char *config, uint64_t seed, const cosy_convert_params *cp,
                                    const char *tag, char *out, size_t size)
{
    if (override) {
        snprintf(out, size, "%s", override);
        return COSY_OK;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[1024];
    if (xdg && xdg[0]) snprintf(dir, sizeof dir, "%s/cosy", xdg);
    else if (home && home[0]) snprintf(dir, sizeof dir, "%s/.cache/cosy", home);
    else return cosy_error(COSY_ERR_INVALID_ARG, "neither XDG_CACHE_HOME nor HOME is set: give -m MODEL.gguf or --model-cache PATH");
    /* mkdir -p */
    for (char *p = dir + 1;; p++) {
        char c = *p;
        if (c != '/' && c != 0) continue;
        *p = 0;
        int bad = mkdir(dir, 0755) != 0 && errno != EEXIST;
        if (bad) return cosy_error(COSY_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        *p = c;
        if (!c) break;
    }
    /* named by what makes the file: configuration, seed, storage types */
    cosy_dtype lm = cp->lm_dtype == COSY_DTYPE_AUTO ? cp->weight_dtype : cp->lm_dtype;
    cosy_dtype flow = cp->flow_dtype == COSY_DTYPE_AUTO ? cp->weight_dtype : cp->flow_dtype;
    cosy_dtype hift = cp->hift_dtype == COSY_DTYPE_AUTO ? cp->weight_dtype : cp->hift_dtype;
    snprintf(out, size, "%s/%s-random-seed%llu-%s-%s-%s%s.gguf", dir, config, (unsigned long long)seed, cosy_dtype_name(lm),
             cosy_dtype_name(flow), cosy_dtype_name(hift), tag);
    return COSY_OK;
}

/* English words up to `target` tokens of the model's tokenizer, ending in a full stop. */
static cosy_status make_text(const cosy_tokenizer *tok, int target, char *out, size_t size, int *n_tokens)
{
    static const char *const words[] = {"The", "morning", "train", "left", "the", "station", "a", "little", "late", "and",
                                        "every", "seat", "was", "taken", "by", "people", "reading", "their", "news", "or",
                                        "looking", "out", "at", "fields", "still", "wet", "from", "rain", "while", "birds"};
    size_t len = 0, count = 0;
    out[0] = 0;
    for (int i = 0; len + 16 < size; i++) {
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? " " : "", words[i % 30]);
        COSY_TRY(cosy_tokenizer_count(tok, out, len, &count));
        if ((int)count + 1 >= target) break;
    }
    snprintf(out + len, size - len, ".");
    COSY_TRY(cosy_tokenizer_count(tok, out, strlen(out), &count));
    *n_tokens = (int)count;
    return COSY_OK;
}

static cosy_status run_once(cosy_model *m, const cosy_voice *voice, const cosy_session_params *p, const char *text, run_stats *r)
{
    cosy_session *s = NULL;
    COSY_TRY(cosy_session_create(m, voice, p, &s));
    cosy_status st = cosy_session_push_text(s, text, strlen(text));
    if (st == COSY_OK) st = cosy_session_end_text(s);
    if (st == COSY_OK) st = cosy_session_wait(s);
    cosy_timings t;
    cosy_session_timings(s, &t);
    cosy_session_free(s);
    COSY_TRY(st);
    if (t.audio_seconds <= 0) return cosy_error(COSY_ERR_INTERNAL, "the session produced no audio");
    *r = (run_stats){t.first_audio_ms, t.rtf, t.total_ms, t.frontend_ms, t.lm_prefill_ms, t.lm_decode_ms, t.flow_ms, t.vocoder_ms,
                     t.lm_decode_ms > 0 ? t.speech_tokens / (t.lm_decode_ms / 1000.0) : 0, t.audio_seconds, t.speech_tokens,
                     t.text_tokens, t.chunks};
    return COSY_OK;
}

static void print_row(const char *name, const run_stats *r)
{
    printf("  %-7s %9.0f %6.3f %8.0f %8.1f %8.0f %8.0f %6.1f %8.0f %8.0f %6.2f %5d\n", name, r->first_audio_ms, r->rtf, r->total_ms,
           r->frontend_ms, r->lm_prefill_ms, r->lm_decode_ms, r->decode_tokens_per_s, r->flow_ms, r->vocoder_ms, r->audio_seconds,
           r->chunks);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_figures(const char *key, run_stats *r)
{
    printf(", \"%s\": {", key);
    for (int k = 0; k < N_FIGURES; k++) printf("%s\"%s\": %.6g", k ? ", " : "", figure_names[k], *figure(r, k));
    printf("}");
}

int bench_synth(int argc, char **argv)
{
    const char *path = NULL, *voice_path = NULL, *cache = NULL, *config = "cosyvoice2-0.5b";
    long long seconds = 5, runs = 3, threads = 0, first_chunk = 0, seed = 1234;
    int json = 0, config_index = 0, chunk_causal_final = 0;
    cosy_model_params mp = cosy_model_default_params();
    cosy_convert_params cp = cosy_convert_default_params();
    cp.lm_dtype = COSY_DTYPE_Q4_0; /* as the README's deployment recipe stores it (cosy convert --lm-dtype q4_0) */
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        CLI_OPTION_VOICE(&voice_path),
        {.name = "--seconds", .kind = CLI_OPT_INT, .dest = &seconds, .hint = "S", .min = 1, .max = 60, .unit = "seconds",
         .help = "seconds of audio per run", .default_text = "5"},
        CLI_OPTION_FIRST_CHUNK(&first_chunk),
        CLI_OPTION_CHUNK_CAUSAL_FINAL(&chunk_causal_final),
        CLI_OPTION_LM_DTYPE(&mp.lm_dtype, "auto"),
        CLI_OPTION_FLOW_DTYPE(&mp.flow_dtype, "auto"),
        CLI_OPTION_HIFT_DTYPE(&mp.hift_dtype, "auto"),
        CLI_OPTION_MODEL_CACHE(&cache),
        {.name = "--random", .kind = CLI_OPT_CHOICE, .dest = &config_index, .hint = "CONFIG", .choices = "cosyvoice2-0.5b,cv2-tiny,cosyvoice3-0.5b,cv3-tiny",
         .help = "the shapes of the random model built without -m", .default_text = "cosyvoice2-0.5b"},
        {.name = "--random-lm", .kind = CLI_OPT_DTYPE, .dest = &cp.lm_dtype, .hint = "TYPE", .choices = "f32,bf16,q8_0,q4_0",
         .help = "how the random model stores the LM's matrices (as `cosy convert --lm-dtype`; the cached file's\n"
                 "name says it): with --lm-dtype auto a model runs the type it stores; f32 for the exact LM",
         .default_text = "q4_0"},
        CLI_OPTION_SEED(&seed, "1234"),
        CLI_OPTION_JSON(&json, "one JSON object on stdout instead of the table"),
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_RUNS(&runs, "3"),
        CLI_OPTION_END,
    };
    int parsed = cli_parse_options(&usage, opts, argc, argv, &path);
    if (parsed != CLI_GO_ON) return parsed;
    if (path && cache) return cli_usage_error("bench synth", "give -m MODEL.gguf or --model-cache PATH, not both");
    static const char *const configs[] = {"cosyvoice2-0.5b", "cv2-tiny", "cosyvoice3-0.5b", "cv3-tiny"};
    config = configs[config_index];
    mp.n_threads = (int)threads;

    /* the model: given, or the cached full-size random one */
    char model_path[1280];
    cosy_status st = COSY_OK;
    int random_model = !path;
    if (!path) {
        st = bench_random_model_path(cache, config, (uint64_t)seed, &cp, "", model_path, sizeof model_path);
        struct stat sb;
        if (st == COSY_OK && stat(model_path, &sb) != 0) {
            fprintf(stderr, "cosy bench: building the random model %s (seed %lld) into %s, once\n", config, seed, model_path);
            st = cosy_convert_random(config, (uint64_t)seed, model_path, &cp);
        } else if (st == COSY_OK) {
            fprintf(stderr, "cosy bench: the random model %s (seed %lld) from %s\n", config, seed, model_path);
        }
        path = model_path;
    }
    cosy_model *m = NULL;
    cosy_voice *voice = NULL;
    const cosy_tokenizer *tok = NULL;
    double t0 = cosy_now_ms();
    if (st == COSY_OK) st = cosy_model_load(path, &mp, &m);
    if (st == COSY_OK) st = cosy_model_prepare(m);
    double load_ms = cosy_now_ms() - t0, rss_loaded = peak_rss_mb();
    if (st == COSY_OK) st = voice_path ? cosy_voice_load(voice_path, &voice) : cosy_voice_synthetic(m, (uint64_t)seed, 75, 10, &voice);
    if (st == COSY_OK) st = cosy_tokenizer_get(m, &tok);
    char text[2048];
    int text_tokens = 0, target = (int)(3.5 * (double)seconds + 0.5);
    if (target > 75) target = 75;
    if (st == COSY_OK) st = make_text(tok, target, text, sizeof text, &text_tokens);

    cosy_session_params p = cosy_session_default_params();
    p.stream = 1;
    p.seed = (uint64_t)seed;
    p.max_speech_tokens = p.min_speech_tokens = 25 * (int)seconds;
    p.first_chunk_tokens = (int)first_chunk;
    p.chunk_causal_final = chunk_causal_final;
    const char *cpu_path = cosy_cpu_level_name(cosy_cpu_level());
    if (st == COSY_OK && !json) {
        printf("cosy bench synth: %s, CPU path %s, %d threads\n", cosy_cpu_model_name(), cpu_path, cosy_pool_size(m->pool));
        printf("model: %s%s, loaded and prepared in %.0f ms; run-time types: LM %s, flow %s, vocoder %s\n", path,
               random_model ? " (random weights)" : "", load_ms, cosy_dtype_name(m->params.lm_dtype),
               cosy_dtype_name(cosy_model_flow_dtype(m)), cosy_dtype_name(m->params.hift_dtype));
        printf("voice: %s, %d prompt speech tokens (%.1f s), %d transcript tokens\n", voice_path ? voice_path : "synthetic",
               voice->n_flow_prompt_tokens, voice->n_flow_prompt_tokens / 25.0, voice->n_prompt_text);
        printf("text: %d tokens: \"%s\"; speech: %d tokens (%lld s), no stop before; %s schedule%s\n", text_tokens, text, p.max_speech_tokens,
               seconds, first_chunk ? "small first chunk +" : "official",
               m->hp.family == COSY_FAMILY_COSYVOICE3 ? (chunk_causal_final ? ", chunk-causal final call" : ", official full-attention final call") : "");
        printf("  %-7s %9s %6s %8s %8s %8s %8s %6s %8s %8s %6s %5s\n", "run", "first ms", "RTF", "total ms", "frontend", "prefill",
               "decode", "tok/s", "flow", "vocoder", "audio", "chunks");
    }
    run_stats cold = {0}, *warm = calloc((size_t)runs, sizeof *warm);
    if (!warm && st == COSY_OK) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) st = run_once(m, voice, &p, text, &cold);
    if (st == COSY_OK && !json) print_row("cold", &cold);
    for (long long r = 0; st == COSY_OK && r < runs; r++) {
        st = run_once(m, voice, &p, text, &warm[r]);
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
            printf("{\"cpu\": ");
            json_string(cosy_cpu_model_name());
            printf(", \"cpu_path\": \"%s\", \"threads\": %d, \"model\": ", cpu_path, cosy_pool_size(m->pool));
            json_string(path);
            printf(", \"random_model\": %s, \"lm_dtype\": \"%s\", \"flow_dtype\": \"%s\", \"vocoder_dtype\": \"%s\", \"load_ms\": %.1f",
                   random_model ? "true" : "false", cosy_dtype_name(m->params.lm_dtype), cosy_dtype_name(cosy_model_flow_dtype(m)),
                   cosy_dtype_name(m->params.hift_dtype), load_ms);
            printf(", \"seconds\": %lld, \"runs\": %lld, \"first_chunk_tokens\": %lld, \"text_tokens\": %d, \"prompt_tokens\": %d",
                   seconds, runs, first_chunk, text_tokens, voice->n_flow_prompt_tokens);
            printf(", \"audio_seconds\": %.3f, \"speech_tokens\": %d, \"chunks\": %d", best.audio_seconds, best.speech_tokens, best.chunks);
            for (int k = 0; k < N_FIGURES; k++) printf(", \"%s\": %.6g", figure_names[k], *figure(&best, k));
            printf(", \"peak_rss_mb\": %.1f, \"loaded_rss_mb\": %.1f", rss, rss_loaded);
            json_figures("best", &best);
            json_figures("median", &median);
            json_figures("cold", &cold);
            printf("}\n");
        }
    }
    free(warm);
    cosy_voice_free(voice);
    cosy_model_free(m);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}
