/*
 * bench_t2w.c — `cosy bench token2wav`: the streaming token2wav object (stream/token2wav.h) as the
 * session engine drives it, on random speech tokens and a synthetic voice: every call of a chunk
 * schedule over S seconds of audio, with its flow and HiFT milliseconds, and both per 25 tokens
 * (1 s of audio) — the per-chunk cost at the model's real sizes.
 *
 * With --first-chunk N it also measures what the small first chunk (stream/schedule.h) does to the
 * audio: the same tokens through the strategy's own schedule, compared frame by frame (the mel) and
 * sample by sample (the audio), before and after the first chunk; and, for scale, the official
 * schedule against itself with another HiFT noise seed (the vocoder draws its noise per call, so any
 * change of chunking changes the noise it adds from the first join on).
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "model/voice/voice.h"
#include "stream/schedule.h"
#include "stream/token2wav.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_t2w(int argc, char **argv);

static const cli_usage usage = {
    .cmd = "bench token2wav",
    .synopsis = "-m MODEL.gguf [--prompt P] [--seconds S] [--strategy NAME] [--chunk N] [--first-chunk N]\n"
                " [--flow-dtype TYPE] [--hift-dtype TYPE] [--context SECONDS] [--threads N] [--stateless-flow]\n"
                " [--reference-final]",
    .description = "Runs every call of the chunk schedule over S seconds of random speech tokens after a synthetic\n"
                   "prompt of P tokens, through cosy_token2wav_call (flow + HiFT with its caches), and prints each\n"
                   "call's flow and HiFT milliseconds, also per 25 tokens (1 s of audio). With --first-chunk N: the\n"
                   "schedule with a small first chunk, then the mel and audio difference against the strategy's own\n"
                   "schedule.\n",
};

typedef struct {
    cosy_model *model;
    const cosy_voice *voice;
    cosy_token2wav_params tp;
    cosy_chunk_strategy strategy;
    int chunk, first, prompt;
    const int32_t *tokens;
    int n;
} t2w_job;

typedef struct {
    float *mel;      /* [80][2n] channel-major: each call's kept frames at their place */
    float *audio;    /* n * 960 samples */
    long n_audio;
    double flow_ms, hift_ms, first_call_ms;
    int calls;
} t2w_result;

static void result_free(t2w_result *r)
{
    free(r->mel);
    free(r->audio);
}

/* Runs the job's schedule; prints every call when `print`. */
static cosy_status run_schedule(const t2w_job *j, int print, t2w_result *r)
{
    const cosy_hparams *hp = &j->model->hp;
    const int C = hp->flow_output_size, ratio = hp->token_mel_ratio, T = ratio * j->n;
    const long samples_per_token = (long)ratio * 480;
    memset(r, 0, sizeof *r);
    r->mel = calloc((size_t)C * (size_t)(T > 0 ? T : 1), sizeof(float));
    r->audio = calloc((size_t)j->n * (size_t)samples_per_token + 1, sizeof(float));
    if (!r->mel || !r->audio) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    cosy_token2wav *t2w = NULL;
    cosy_schedule sched;
    COSY_TRY(cosy_token2wav_create(j->model, j->voice, &j->tp, &t2w));
    cosy_status st = cosy_schedule_init(&sched, j->strategy, j->chunk, 0, 0, hp->pre_lookahead_len, j->prompt);
    if (st == COSY_OK) st = cosy_schedule_set_first_chunk(&sched, j->first);
    double t0 = cosy_now_ms();
    if (st == COSY_OK) st = cosy_token2wav_prepare(t2w);
    if (st == COSY_OK && print) {
        printf("  voice's prompt work: %.0f ms (done while the LM prefills in a session)\n", cosy_now_ms() - t0);
        printf("  %4s %6s %6s %5s %9s %9s %12s %12s\n", "call", "offset", "end", "new", "flow ms", "hift ms", "flow ms/25t", "hift ms/25t");
    }
    cosy_schedule_call call;
    while (st == COSY_OK && cosy_schedule_next(&sched, j->n, 1, &call)) {
        const float *audio;
        int n_audio, n_mel;
        st = cosy_token2wav_call(t2w, j->tokens, call.end, call.offset, call.finalize, &audio, &n_audio);
        if (st != COSY_OK) break;
        cosy_t2w_call_info info;
        cosy_token2wav_last_info(t2w, &info);
        const float *mel = cosy_token2wav_last_mel(t2w, &n_mel);
        for (int c = 0; c < C; c++)
            for (int f = 0; f < n_mel && ratio * call.offset + f < T; f++)
                r->mel[(size_t)c * T + (size_t)(ratio * call.offset + f)] = mel[(size_t)c * n_mel + f];
        long room = (long)j->n * samples_per_token - r->n_audio;
        if (n_audio > room) st = cosy_error(COSY_ERR_INTERNAL, "token2wav: more audio than %d tokens make", j->n);
        else memcpy(r->audio + r->n_audio, audio, sizeof(float) * (size_t)n_audio);
        r->n_audio += n_audio;
        int fresh = info.mel_frames / ratio;
        if (print)
            printf("  %4d %6d %6d %5d %9.1f %9.1f %12.1f %12.1f%s\n", r->calls, call.offset, call.end, fresh, info.flow_ms, info.vocoder_ms,
                   fresh ? info.flow_ms * 25.0 / fresh : 0.0, fresh ? info.vocoder_ms * 25.0 / fresh : 0.0, call.finalize ? "  final" : "");
        if (r->calls == 0) r->first_call_ms = info.flow_ms + info.vocoder_ms;
        r->flow_ms += info.flow_ms;
        r->hift_ms += info.vocoder_ms;
        r->calls++;
    }
    cosy_token2wav_free(t2w);
    return st;
}

/* max |a - b| and RMS of a - b over frames [f0, f1) of two [C][T] mels */
static void mel_diff(const float *a, const float *b, int C, int T, int f0, int f1, double *max, double *rms)
{
    double m = 0, s = 0;
    for (int c = 0; c < C; c++)
        for (int f = f0; f < f1; f++) {
            double d = fabs((double)a[(size_t)c * T + f] - b[(size_t)c * T + f]);
            m = d > m ? d : m;
            s += d * d;
        }
    *max = m;
    *rms = f1 > f0 ? sqrt(s / ((double)C * (f1 - f0))) : 0;
}

static void wave_diff(const float *a, const float *b, long s0, long s1, double *max, double *rms)
{
    double m = 0, s = 0;
    for (long i = s0; i < s1; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
        s += d * d;
    }
    *max = m;
    *rms = s1 > s0 ? sqrt(s / (double)(s1 - s0)) : 0;
}

static double wave_rms(const float *a, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * a[i];
    return n > 0 ? sqrt(s / (double)n) : 0;
}

/* Log-spectral distance in dB between two signals over samples [s0, s1): Hann-windowed frames of
 * 1024 samples every 480 (20 ms), 64 bands of 187.5 Hz up to 12 kHz, RMS over bands and frames of
 * the difference of 20·log10(magnitude + 1e-4). The waveforms of two chunkings differ in phase; this
 * says whether they differ in what is heard. */
static double log_spectral_distance(const float *a, const float *b, long s0, long s1)
{
    enum { FRAME = 1024, HOP = 480, BANDS = 64 };
    static double window[FRAME], cosines[BANDS][FRAME], sines[BANDS][FRAME];
    static int ready;
    if (!ready) {
        for (int i = 0; i < FRAME; i++) window[i] = 0.5 - 0.5 * cos(2 * M_PI * i / FRAME);
        for (int k = 0; k < BANDS; k++)
            for (int i = 0; i < FRAME; i++) {
                double w = 2 * M_PI * (k + 0.5) * 8 * i / FRAME; /* bin 8k + 4: band centres */
                cosines[k][i] = cos(w) * window[i];
                sines[k][i] = sin(w) * window[i];
            }
        ready = 1;
    }
    double sum = 0;
    long count = 0;
    for (long at = s0; at + FRAME <= s1; at += HOP)
        for (int k = 0; k < BANDS; k++) {
            double ra = 0, ia = 0, rb = 0, ib = 0;
            for (int i = 0; i < FRAME; i++) {
                ra += a[at + i] * cosines[k][i];
                ia += a[at + i] * sines[k][i];
                rb += b[at + i] * cosines[k][i];
                ib += b[at + i] * sines[k][i];
            }
            double d = 20 * log10(sqrt(ra * ra + ia * ia) + 1e-4) - 20 * log10(sqrt(rb * rb + ib * ib) + 1e-4);
            sum += d * d;
            count++;
        }
    return count ? sqrt(sum / (double)count) : 0;
}

/* The small first chunk against the strategy's own schedule on the same tokens. */
static cosy_status compare_first_chunk(const t2w_job *job, const t2w_result *small)
{
    const cosy_hparams *hp = &job->model->hp;
    const int C = hp->flow_output_size, ratio = hp->token_mel_ratio, T = ratio * job->n, F = job->first < job->n ? job->first : job->n;
    const long spt = (long)ratio * 480;
    /* for scale: the same schedule with another noise seed, and another chunking (equal hops of the
     * strategy's chunk, whose later joins differ from the official schedule's) */
    t2w_job official = *job, reseeded = *job, rechunked = *job;
    official.first = reseeded.first = rechunked.first = 0;
    reseeded.tp.seed = job->tp.seed + 1;
    rechunked.strategy = job->strategy == COSY_CHUNK_EQUAL ? COSY_CHUNK_EXPONENTIAL : COSY_CHUNK_EQUAL;
    t2w_result a, b, e;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&e, 0, sizeof e);
    cosy_status st = run_schedule(&official, 0, &a);
    if (st == COSY_OK) st = run_schedule(&reseeded, 0, &b);
    if (st == COSY_OK) st = run_schedule(&rechunked, 0, &e);
    if (st == COSY_OK && (a.n_audio != small->n_audio || b.n_audio != a.n_audio || e.n_audio != a.n_audio))
        st = cosy_error(COSY_ERR_INTERNAL, "token2wav: %ld, %ld, %ld and %ld samples for the same tokens", small->n_audio, a.n_audio,
                        b.n_audio, e.n_audio);
    if (st == COSY_OK) {
        /* tokens before `complete` share the prompt's last flow chunk, complete in both schedules */
        int complete = (hp->chunk_size - job->prompt % hp->chunk_size) % hp->chunk_size;
        if (complete > F) complete = F;
        double peak = 0;
        for (size_t i = 0; i < (size_t)C * T; i++) peak = fmax(peak, fabs(a.mel[i]));
        double m0, r0, m1, r1, m2, r2;
        mel_diff(a.mel, small->mel, C, T, 0, ratio * complete, &m0, &r0);
        mel_diff(a.mel, small->mel, C, T, ratio * complete, ratio * F, &m1, &r1);
        mel_diff(a.mel, small->mel, C, T, ratio * F, T, &m2, &r2);
        printf("first chunk of %d tokens vs the strategy's own first chunk (%d calls vs %d), same tokens:\n", F, small->calls, a.calls);
        printf("  first call: flow + HiFT %.0f ms vs %.0f ms\n", small->first_call_ms, a.first_call_ms);
        printf("  mel, max abs / RMS difference (mel peak %.2f):\n", peak);
        if (complete > 0) printf("    tokens %d..%d (the prompt's last flow chunk): %.3g / %.3g\n", 0, complete - 1, m0, r0);
        printf("    tokens %d..%d (an incomplete flow chunk in the first call): %.3g / %.3g (%.1f%% / %.2f%% of the peak)\n", complete,
               F - 1, m1, r1, 100 * m1 / peak, 100 * r1 / peak);
        printf("    tokens %d..%d (later): %.3g / %.3g\n", F, job->n - 1, m2, r2);
        double w1, q1, w2, q2, n1, p1, n2, p2;
        long cut = (long)F * spt;
        wave_diff(a.audio, small->audio, 0, cut, &w1, &q1);
        wave_diff(a.audio, small->audio, cut, a.n_audio, &w2, &q2);
        wave_diff(a.audio, b.audio, 0, cut, &n1, &p1);
        wave_diff(a.audio, b.audio, cut, a.n_audio, &n2, &p2);
        double c1, d1, c2, d2;
        wave_diff(a.audio, e.audio, 0, cut, &c1, &d1);
        wave_diff(a.audio, e.audio, cut, a.n_audio, &c2, &d2);
        printf("  audio (RMS %.3f), max abs / RMS difference, log-spectral distance:\n", wave_rms(a.audio, a.n_audio));
        printf("    small first chunk:            first %d tokens %.3g / %.3g, %.2f dB; later %.3g / %.3g, %.2f dB\n", F, w1, q1,
               log_spectral_distance(a.audio, small->audio, 0, cut), w2, q2, log_spectral_distance(a.audio, small->audio, cut, a.n_audio));
        printf("    for scale, %-11s chunks: first %d tokens %.3g / %.3g, %.2f dB; later %.3g / %.3g, %.2f dB\n",
               rechunked.strategy == COSY_CHUNK_EQUAL ? "equal" : "exponential", F, c1, d1, log_spectral_distance(a.audio, e.audio, 0, cut),
               c2, d2, log_spectral_distance(a.audio, e.audio, cut, a.n_audio));
        printf("    for scale, another HiFT seed: first %d tokens %.3g / %.3g, %.2f dB; later %.3g / %.3g, %.2f dB\n", F, n1, p1,
               log_spectral_distance(a.audio, b.audio, 0, cut), n2, p2, log_spectral_distance(a.audio, b.audio, cut, a.n_audio));
        printf("  samples: %ld in both (%d tokens x %ld): nothing lost or emitted twice\n", a.n_audio, job->n, spt);
    }
    result_free(&a);
    result_free(&b);
    result_free(&e);
    return st;
}

int bench_t2w(int argc, char **argv)
{
    const char *path = NULL;
    long long prompt = 75, seconds = 10, threads = 0, chunk = 25, first = 0;
    cosy_dtype flow_dtype = COSY_DTYPE_AUTO, hift_dtype = COSY_DTYPE_AUTO;
    long long context = cosy_token2wav_default_params().context_seconds;
    cosy_token2wav_params tp = cosy_token2wav_default_params();
    int strategy_index = 0; /* the order of cosy_chunk_strategy */
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        {.name = "--prompt", .kind = CLI_OPT_INT, .dest = &prompt, .hint = "P", .min = 0, .max = 1000, .unit = "tokens",
         .help = "synthetic prompt tokens (75 = 3 s)", .default_text = "75"},
        {.name = "--seconds", .kind = CLI_OPT_INT, .dest = &seconds, .hint = "S", .min = 1, .max = 300, .unit = "seconds",
         .help = "seconds of random speech tokens", .default_text = "10"},
        CLI_OPTION_STRATEGY(&strategy_index),
        CLI_OPTION_CHUNK(&chunk),
        CLI_OPTION_FIRST_CHUNK(&first),
        CLI_OPTION_FLOW_DTYPE(&flow_dtype, "auto"),
        CLI_OPTION_HIFT_DTYPE(&hift_dtype, "auto"),
        CLI_OPTION_CONTEXT(&context),
        CLI_OPTION_STATELESS_FLOW(&tp.stateless_flow),
        CLI_OPTION_REFERENCE_FINAL(&tp.reference_final),
        CLI_OPTION_CHUNK_CAUSAL_FINAL(&tp.chunk_causal_final),
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, NULL);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("bench token2wav", "a model file is required (-m MODEL.gguf)");
    tp.context_seconds = (int)context;

    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = (int)threads;
    mp.flow_dtype = flow_dtype;
    mp.hift_dtype = hift_dtype;
    cosy_model *model = NULL;
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
    const cosy_hparams *hp = &model->hp;
    const int N = (int)seconds * hp->token_frame_rate;
    cosy_voice *v = NULL;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N);
    if (!tok) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) st = cosy_voice_synthetic(model, 4242, (int)prompt, 0, &v);
    uint32_t seed = 4242;
    for (int i = 0; tok && i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)hp->flow_vocab);
    }
    t2w_job job = {model, v, tp, (cosy_chunk_strategy)strategy_index, (int)chunk, (int)first, (int)prompt, tok, N};
    t2w_result r;
    memset(&r, 0, sizeof r);
    if (st == COSY_OK) {
        printf("token2wav: %s, %s, %d threads; prompt %lld tokens, %lld s of tokens, %s flow%s, flow products in %s, vocoder in %s\n", path,
               cosy_cpu_model_name(), cosy_pool_size(model->pool), prompt, seconds, tp.stateless_flow ? "stateless" : "incremental",
               tp.reference_final ? ", reference final call" : "", cosy_dtype_name(cosy_model_flow_dtype(model)),
               cosy_dtype_name(cosy_model_hift_dtype(model)));
        st = run_schedule(&job, 1, &r);
    }
    if (st == COSY_OK)
        printf("  %d calls for %.2f s of audio: flow %.0f ms (%.1f ms per 25 tokens), HiFT %.0f ms (%.1f ms per 25 tokens), RTF %.3f\n",
               r.calls, N / (double)hp->token_frame_rate, r.flow_ms, r.flow_ms * 25.0 / N, r.hift_ms, r.hift_ms * 25.0 / N,
               (r.flow_ms + r.hift_ms) / 1000.0 / (N / (double)hp->token_frame_rate));
    if (st == COSY_OK && first > 0) st = compare_first_chunk(&job, &r);
    result_free(&r);
    cosy_voice_free(v);
    free(tok);
    cosy_model_free(model);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}
