/* cmd_synth.c — `cosy synth`: text to speech from the command line, whole or streamed. */
#include "cli.h"
#include "core/clock.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/file.h"
#include "io/wav.h"

static const cli_usage usage = {
    .cmd = "synth",
    .synopsis = "-m MODEL.gguf (--voice VOICE.voice | --speaker NAME | --prompt-wav F --prompt-text \"...\")\n"
                " (--text \"...\" | --text-stream) [-o OUT.wav | -o -] [--stream] [options]",
    .description = "Synthesises the text with the voice and writes 24 kHz audio: -o OUT.wav (16-bit WAVE), or -o - for\n"
                   "raw 16-bit little-endian PCM on stdout as it is produced.\n",
};

typedef struct {
    FILE *pcm;                /* -o - */
    cosy_wav_writer *wav;
    int64_t samples;
    double start_ms;
    int progress;             /* stderr is a terminal */
    cosy_status st;
} sink;

static void on_audio(void *user, const float *samples, int n)
{
    sink *k = user;
    if (k->st != COSY_OK) return;
    if (k->pcm) {
        int16_t buf[4096];
        for (int at = 0; at < n; at += 4096) {
            int m = n - at < 4096 ? n - at : 4096;
            cosy_float_to_pcm16(buf, samples + at, m);
            if (fwrite(buf, 2, (size_t)m, k->pcm) != (size_t)m) {
                k->st = COSY_ERR_IO;
                return;
            }
        }
        fflush(k->pcm);
    } else {
        k->st = cosy_wav_writer_write(k->wav, samples, n);
    }
    k->samples += n;
    if (k->progress)
        fprintf(stderr, "\r  %.2f s of audio after %.2f s", (double)k->samples / 24000.0, (cosy_now_ms() - k->start_ms) / 1000.0);
}

static void print_timings(const cosy_timings *t, int json)
{
    if (json) {
        fprintf(stderr,
                "{\"frontend_ms\": %.1f, \"lm_prefill_ms\": %.1f, \"lm_decode_ms\": %.1f, \"flow_ms\": %.1f, \"vocoder_ms\": %.1f, "
                "\"first_audio_ms\": %.1f, \"total_ms\": %.1f, \"audio_seconds\": %.3f, \"rtf\": %.3f, \"text_tokens\": %d, "
                "\"speech_tokens\": %d, \"chunks\": %d, \"sentences\": %d, \"silent_filter\": %d, \"silent_dropped\": %d}\n",
                t->frontend_ms, t->lm_prefill_ms, t->lm_decode_ms, t->flow_ms, t->vocoder_ms, t->first_audio_ms, t->total_ms,
                t->audio_seconds, t->rtf, t->text_tokens, t->speech_tokens, t->chunks, t->sentences, t->silent_filter, t->silent_dropped);
        return;
    }
    fprintf(stderr, "  stage            ms\n");
    fprintf(stderr, "  frontend   %9.1f\n  LM prefill %9.1f\n  LM decode  %9.1f\n  flow       %9.1f\n  vocoder    %9.1f\n",
            t->frontend_ms, t->lm_prefill_ms, t->lm_decode_ms, t->flow_ms, t->vocoder_ms);
    fprintf(stderr, "  first audio %8.1f\n  total      %9.1f\n", t->first_audio_ms, t->total_ms);
    fprintf(stderr, "  %.2f s of audio, RTF %.3f, %d text tokens, %d speech tokens, %d chunk%s, %d sentence%s\n", t->audio_seconds,
            t->rtf, t->text_tokens, t->speech_tokens, t->chunks, t->chunks == 1 ? "" : "s", t->sentences, t->sentences == 1 ? "" : "s");
}

int cmd_synth(int argc, char **argv)
{
    const char *model_path = NULL, *voice_path = NULL, *speaker = NULL, *text = NULL, *out = "out.wav";
    const char *prompt_wav = NULL, *prompt_text = NULL, *prompt_text_file = NULL;
    int text_stream = 0, json = 0, quiet = 0, no_frontend = 0;
    cosy_session_params p = cosy_session_default_params();
    p.stream = 0;
    cosy_model_params mp = cosy_model_default_params();
    int mode = p.mode, strategy = p.strategy;
    long long chunk = p.chunk_tokens, max_tokens = p.max_speech_tokens, first_chunk = p.first_chunk_tokens;
    long long overlap = p.overlap_tokens, context = p.context_seconds, seed = (long long)p.seed, threads = mp.n_threads;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&model_path),
        CLI_OPTION_VOICE(&voice_path),
        CLI_OPTION_SPEAKER(&speaker),
        {.name = "--prompt-wav", .kind = CLI_OPT_STRING, .dest = &prompt_wav, .hint = "F",
         .help = "make the voice from recording F (>= 16 kHz, <= 30 s) and its transcript, --prompt-text or\n"
                 "--prompt-text-file, then speak with it (as inference_zero_shot; `cosy voice import --wav F\n"
                 "--text T` keeps the voice so it is made once)"},
        {.name = "--prompt-text", .kind = CLI_OPT_STRING, .dest = &prompt_text, .hint = "T", .help = "what is said in --prompt-wav"},
        {.name = "--prompt-text-file", .kind = CLI_OPT_STRING, .dest = &prompt_text_file, .hint = "F",
         .help = "the transcript of --prompt-wav, from a file"},
        {.name = "--text", .kind = CLI_OPT_STRING, .dest = &text, .hint = "T", .help = "the text to speak"},
        {.name = "--text-stream", .kind = CLI_OPT_FLAG, .dest = &text_stream,
         .help = "read text pieces from stdin, one per line, and feed each to the LM as it arrives\n"
                 "(bistream: 5 text : 15 speech tokens); implies --stream"},
        CLI_OPTION_OUTPUT(&out, "OUT", "OUT.wav, or - for raw PCM on stdout (default out.wav)"),
        {.name = "--stream", .kind = CLI_OPT_FLAG, .dest = &p.stream,
         .help = "emit audio in chunks while the speech tokens are generated (CosyVoice2's schedule: 25\n"
                 "tokens aligned with the prompt, doubling up to 100)"},
        CLI_OPTION_STRATEGY(&strategy),
        CLI_OPTION_CHUNK(&chunk),
        {.name = "--overlap", .kind = CLI_OPT_INT, .dest = &overlap, .hint = "N", .min = 0, .max = 9999, .unit = "tokens",
         .help = "tokens shared by neighbouring chunks of --strategy equal and exponential", .default_text = "0"},
        CLI_OPTION_FIRST_CHUNK(&first_chunk),
        CLI_OPTION_MODE(&mode),
        {.name = "--instruct", .kind = CLI_OPT_STRING, .dest = &p.instruct, .hint = "T",
         .help = "the instruction of --mode instruct (\"Speak slowly.\")"},
        CLI_OPTION_SEED(&seed, "0"),
        CLI_OPTION_LM_DTYPE(&mp.lm_dtype, "auto"),
        CLI_OPTION_FLOW_DTYPE(&mp.flow_dtype, "auto"),
        CLI_OPTION_HIFT_DTYPE(&mp.hift_dtype, "auto"),
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_CONTEXT(&context),
        CLI_OPTION_REFERENCE_FINAL(&p.reference_final),
        CLI_OPTION_CHUNK_CAUSAL_FINAL(&p.chunk_causal_final),
        CLI_OPTION_STATELESS_FLOW(&p.stateless_flow),
        {.name = "--concurrent-lm", .kind = CLI_OPT_FLAG, .dest = &p.concurrent_lm,
         .help = "keep the LM decoding while a chunk is made (default: it waits, so the chunk gets all cores)"},
        {.name = "--text-frontend", .kind = CLI_OPT_CHOICE, .dest = &p.text_no_wetext, .choices = "wetext,none",
         .default_text = "wetext",
         .help = "wetext: WeTextProcessing's text normalisation first (numbers, dates, money... read out), as\n"
                 "the official install (wetext==0.0.4); none: as an install without wetext"},
        {.name = "--no-frontend", .kind = CLI_OPT_FLAG, .dest = &no_frontend,
         .help = "no text normalisation or sentence split: the text goes to the tokenizer as it is (bistream\n"
                 "never normalises)"},
        {.name = "--max-tokens", .kind = CLI_OPT_INT, .dest = &max_tokens, .hint = "N", .min = 1, .max = 100000, .unit = "speech tokens",
         .help = "at most N speech tokens per sentence (25 per second of audio)",
         .default_text = "the reference's 20 per text token"},
        CLI_OPTION_JSON(&json, "print the timings as one JSON object on stderr at the end"),
        {.name = "--quiet", .kind = CLI_OPT_FLAG, .dest = &quiet, .help = "no progress or timings on stderr (but --json's)"},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, NULL);
    if (rc != CLI_GO_ON) return rc;
    p.mode = (cosy_mode)mode;
    p.strategy = (cosy_chunk_strategy)strategy;
    p.chunk_tokens = (int)chunk;
    p.max_speech_tokens = (int)max_tokens;
    p.first_chunk_tokens = (int)first_chunk;
    p.overlap_tokens = (int)overlap;
    p.context_seconds = (int)context;
    p.seed = (uint64_t)seed;
    mp.n_threads = (int)threads;
    if (no_frontend) p.text_frontend = 0;
    if (!model_path) return cli_usage_error("synth", "-m MODEL.gguf is required");
    if ((voice_path != NULL) + (speaker != NULL) + (prompt_wav != NULL) != 1)
        return cli_usage_error("synth", "give one of --voice VOICE.voice, --speaker NAME or --prompt-wav F (with --prompt-text)");
    if ((prompt_text || prompt_text_file) && !prompt_wav) return cli_usage_error("synth", "--prompt-text goes with --prompt-wav");
    if (prompt_wav && !prompt_text == !prompt_text_file)
        return cli_usage_error("synth", "--prompt-wav needs the transcript of the recording: --prompt-text \"what is said\" or --prompt-text-file F");
    if (!text == !text_stream) return cli_usage_error("synth", "give --text \"...\" or --text-stream");
    if (p.mode == COSY_MODE_INSTRUCT && !p.instruct) return cli_usage_error("synth", "--mode instruct needs --instruct \"...\"");
    if (p.first_chunk_tokens && !p.stream && !text_stream) return cli_usage_error("synth", "--first-chunk goes with --stream or --text-stream");
    if (text_stream) {
        p.bistream = 1;
        p.stream = 1;
    }
    if (speaker && p.mode == COSY_MODE_ZERO_SHOT && !voice_path) p.mode = COSY_MODE_SFT;

    cosy_model *m = NULL;
    cosy_voice *voice = NULL;
    cosy_session *s = NULL;
    cosy_wav_writer wav;
    int wav_open = 0;
    sink k;
    memset(&k, 0, sizeof k);
    k.start_ms = cosy_now_ms();
    k.progress = !quiet && isatty(2);
    cosy_status st = cosy_model_load(model_path, &mp, &m);
    /* a server prepares its model once; the request's timings start after that */
    if (st == COSY_OK) st = cosy_model_prepare(m);
    /* said once the voice is ready too: a refused voice or recording gets its one line alone */
    const double loaded_ms = cosy_now_ms() - k.start_ms;
    char *prompt_buf = NULL;
    if (st == COSY_OK && prompt_text_file && (st = cosy_file_read_all(prompt_text_file, &prompt_buf, NULL)) == COSY_OK)
        prompt_text = prompt_buf;
    if (st == COSY_OK && prompt_wav) {
        const double t0 = cosy_now_ms();
        st = cosy_voice_from_audio_file(m, prompt_wav, prompt_text, &voice);
        if (st == COSY_OK && !quiet) fprintf(stderr, "cosy synth: voice made from %s in %.0f ms\n", prompt_wav, cosy_now_ms() - t0);
    } else if (st == COSY_OK) {
        st = voice_path ? cosy_voice_load(voice_path, &voice) : cosy_voice_from_speaker(m, speaker, &voice);
    }
    free(prompt_buf);
    if (st == COSY_OK && !quiet) fprintf(stderr, "cosy synth: model loaded and prepared in %.0f ms\n", loaded_ms);
    /* the audio goes to OUT.tmp-<pid>, renamed to OUT only once all of it is written: a refusal or a
     * failure part-way leaves no partial file, and never clobbers an existing OUT */
    char tmp_out[4096];
    snprintf(tmp_out, sizeof tmp_out, "%s.tmp-%ld", out, (long)getpid());
    if (st == COSY_OK) {
        if (!strcmp(out, "-")) k.pcm = stdout;
        else if ((st = cosy_wav_writer_open(&wav, tmp_out, cosy_model_sample_rate(m), COSY_WAV_PCM16)) == COSY_OK) {
            wav_open = 1;
            k.wav = &wav;
        }
    }
    p.on_audio = on_audio;
    p.user = &k;
    if (st == COSY_OK) st = cosy_session_create(m, voice, &p, &s);
    if (st == COSY_OK && text) {
        st = cosy_session_push_text(s, text, strlen(text));
        if (st == COSY_OK) st = cosy_session_end_text(s);
    } else if (st == COSY_OK) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (st == COSY_OK && (len = getline(&line, &cap, stdin)) >= 0) {
            if (len > 0 && line[len - 1] == '\n') len--;
            if (len > 0 && line[len - 1] == '\r') len--;
            if (len > 0) st = cosy_session_push_text(s, line, (size_t)len);
        }
        free(line);
        if (st == COSY_OK) st = cosy_session_end_text(s);
    }
    if (st == COSY_OK) st = cosy_session_wait(s);
    if (k.progress) fputc('\n', stderr);
    if (st == COSY_OK && k.st != COSY_OK) st = cosy_error(COSY_ERR_IO, "cannot write the audio: %s", strerror(errno));
    cosy_timings t;
    if (s) cosy_session_timings(s, &t);
    if (wav_open) {
        cosy_status cs = cosy_wav_writer_close(&wav);
        if (st == COSY_OK) st = cs;
        if (st == COSY_OK && rename(tmp_out, out) != 0) st = cosy_error(COSY_ERR_IO, "%s: cannot rename from %s: %s", out, tmp_out, strerror(errno));
        if (st != COSY_OK) unlink(tmp_out);
    }
    if (st == COSY_OK && !quiet) {
        if (!k.pcm) fprintf(stderr, "cosy synth: wrote %s\n", out);
        print_timings(&t, json);
    } else if (st == COSY_OK && json) {
        print_timings(&t, 1);
    }
    rc = st == COSY_OK ? 0 : cli_fail("synth", st); /* before cleanup, which may set another message */
    cosy_session_free(s);
    cosy_voice_free(voice);
    cosy_model_free(m);
    return rc;
}
