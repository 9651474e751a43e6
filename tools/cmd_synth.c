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

static void help(void)
{
    printf("usage: cosy synth -m MODEL.gguf (--voice VOICE.voice | --speaker NAME | --prompt-wav F --prompt-text \"...\")\n"
           "                  (--text \"...\" | --text-stream)\n"
           "                  [-o OUT.wav | -o -] [--stream] [--strategy default|equal|exponential] [--chunk N]\n"
           "                  [--overlap N] [--first-chunk N] [--mode zero-shot|cross-lingual|instruct|sft] [--instruct \"...\"]\n"
           "                  [--seed N] [--lm-dtype auto|f32|bf16|q8_0|q4_0] [--flow-dtype auto|f32|bf16] [--hift-dtype auto|f32|bf16]\n"
           "                  [--threads N] [--context SECONDS] [--reference-final] [--stateless-flow] [--concurrent-lm]\n"
           "                  [--no-frontend] [--max-tokens N] [--json] [--quiet]\n\n"
           "Synthesises TEXT with the voice and writes 24 kHz audio: -o OUT.wav (16-bit WAVE, default out.wav), or\n"
           "-o - for raw 16-bit little-endian PCM on stdout as it is produced.\n"
           "  --prompt-wav F      make the voice from recording F (>= 16 kHz, <= 30 s) and its transcript,\n"
           "  --prompt-text T     --prompt-text or --prompt-text-file, then speak with it (as inference_zero_shot;\n"
           "                      `cosy voice import --wav F --text T` keeps the voice so it is made once)\n"
           "  --stream            emit audio in chunks while the speech tokens are generated (CosyVoice2's\n"
           "                      schedule: 25 tokens aligned with the prompt, doubling up to 100)\n"
           "  --text-stream       read text pieces from stdin, one per line, and feed each to the LM as it\n"
           "                      arrives (bistream: 5 text : 15 speech tokens); implies --stream\n"
           "  --strategy          equal: fixed chunks of --chunk tokens; exponential: --chunk x 2^i\n"
           "  --first-chunk N     a small first chunk of N tokens (+3 look-ahead) before the schedule, as NVIDIA's\n"
           "                      Triton runtime does with 15: earlier first audio, whose frames see only N of\n"
           "                      the flow's 25-token chunk (default 0: the schedule's own first chunk)\n"
           "  --reference-final   the last chunk with full attention over the utterance, exactly as the\n"
           "                      official code (recomputes everything at the end); default: chunk-causal\n"
           "  --stateless-flow    recompute the flow over all tokens at every chunk like the reference\n"
           "  --flow-dtype        auto (default): bf16 products where they are faster than f32 (AMX; AVX512-BF16\n"
           "                      on AMD), mel within 1%% of f32; f32: exact, as the official numbers\n"
           "  --hift-dtype        the vocoder's convolutions, the same choice: auto (default) bf16 where faster,\n"
           "                      waveform within 2%% of the largest f32 sample, SNR >= 35 dB; f32: exact\n"
           "  --context SECONDS   in a streamed sentence longer than this, the flow attends to the prompt and\n"
           "                      the last SECONDS only, bounding its memory (default 10; 0 = unlimited)\n"
           "  --concurrent-lm     keep the LM decoding while a chunk is made (default: it waits, so the\n"
           "                      chunk gets all cores)\n"
           "  --max-tokens N      at most N speech tokens per sentence (25 per second of audio; default: the\n"
           "                      reference's 20 per text token)\n"
           "  --json              print the timings as one JSON object on stderr at the end\n");
}

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
                "\"speech_tokens\": %d, \"chunks\": %d, \"sentences\": %d}\n",
                t->frontend_ms, t->lm_prefill_ms, t->lm_decode_ms, t->flow_ms, t->vocoder_ms, t->first_audio_ms, t->total_ms,
                t->audio_seconds, t->rtf, t->text_tokens, t->speech_tokens, t->chunks, t->sentences);
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
    int text_stream = 0, json = 0, quiet = 0;
    long long v;
    cosy_session_params p = cosy_session_default_params();
    p.stream = 0;
    cosy_model_params mp = cosy_model_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--stream")) p.stream = 1;
        else if (!strcmp(a, "--text-stream")) text_stream = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--reference-final")) p.reference_final = 1;
        else if (!strcmp(a, "--stateless-flow")) p.stateless_flow = 1;
        else if (!strcmp(a, "--concurrent-lm")) p.concurrent_lm = 1;
        else if (!strcmp(a, "--no-frontend")) p.text_frontend = 0;
        else if (!val) return cli_usage_error("synth", "unknown option or missing value: %s", a);
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { model_path = val; i++; }
        else if (!strcmp(a, "--voice")) { voice_path = val; i++; }
        else if (!strcmp(a, "--prompt-wav")) { prompt_wav = val; i++; }
        else if (!strcmp(a, "--prompt-text")) { prompt_text = val; i++; }
        else if (!strcmp(a, "--prompt-text-file")) { prompt_text_file = val; i++; }
        else if (!strcmp(a, "--speaker")) { speaker = val; i++; }
        else if (!strcmp(a, "--text")) { text = val; i++; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { out = val; i++; }
        else if (!strcmp(a, "--instruct")) { p.instruct = val; i++; }
        else if (!strcmp(a, "--strategy")) {
            i++;
            if (!strcmp(val, "default")) p.strategy = COSY_CHUNK_DEFAULT;
            else if (!strcmp(val, "equal")) p.strategy = COSY_CHUNK_EQUAL;
            else if (!strcmp(val, "exponential")) p.strategy = COSY_CHUNK_EXPONENTIAL;
            else return cli_usage_error("synth", "unknown --strategy '%s'", val);
        } else if (!strcmp(a, "--mode")) {
            i++;
            if (!strcmp(val, "zero-shot")) p.mode = COSY_MODE_ZERO_SHOT;
            else if (!strcmp(val, "cross-lingual")) p.mode = COSY_MODE_CROSS_LINGUAL;
            else if (!strcmp(val, "instruct")) p.mode = COSY_MODE_INSTRUCT;
            else if (!strcmp(val, "sft")) p.mode = COSY_MODE_SFT;
            else return cli_usage_error("synth", "unknown --mode '%s'", val);
        } else if (!strcmp(a, "--chunk")) {
            if (cli_parse_int(val, 1, 10000, &v)) return cli_usage_error("synth", "--chunk needs 1..10000 tokens");
            p.chunk_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--max-tokens")) {
            if (cli_parse_int(val, 1, 100000, &v)) return cli_usage_error("synth", "--max-tokens needs 1..100000 speech tokens");
            p.max_speech_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--first-chunk")) {
            if (cli_parse_int(val, 0, 10000, &v)) return cli_usage_error("synth", "--first-chunk needs 0..10000 tokens");
            p.first_chunk_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--overlap")) {
            if (cli_parse_int(val, 0, 9999, &v)) return cli_usage_error("synth", "--overlap needs 0..9999 tokens");
            p.overlap_tokens = (int)v;
            i++;
        } else if (!strcmp(a, "--context")) {
            if (cli_parse_int(val, 0, 3600, &v)) return cli_usage_error("synth", "--context needs 0..3600 seconds");
            p.context_seconds = (int)v;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_int(val, 0, 0x7fffffffffffffffll, &v)) return cli_usage_error("synth", "--seed needs a non-negative integer");
            p.seed = (uint64_t)v;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(val, 1, 256, &v)) return cli_usage_error("synth", "--threads needs 1..256");
            mp.n_threads = (int)v;
            i++;
        } else if (!strcmp(a, "--flow-dtype")) {
            if (cosy_dtype_from_name(val, &mp.flow_dtype) ||
                (mp.flow_dtype != COSY_DTYPE_AUTO && mp.flow_dtype != COSY_DTYPE_F32 && mp.flow_dtype != COSY_DTYPE_BF16))
                return cli_usage_error("synth", "--flow-dtype must be auto, f32 or bf16");
            i++;
        } else if (!strcmp(a, "--hift-dtype")) {
            if (cosy_dtype_from_name(val, &mp.hift_dtype) ||
                (mp.hift_dtype != COSY_DTYPE_AUTO && mp.hift_dtype != COSY_DTYPE_F32 && mp.hift_dtype != COSY_DTYPE_BF16))
                return cli_usage_error("synth", "--hift-dtype must be auto, f32 or bf16");
            i++;
        } else if (!strcmp(a, "--lm-dtype")) {
            if (cosy_dtype_from_name(val, &mp.lm_dtype) || mp.lm_dtype == COSY_DTYPE_F16)
                return cli_usage_error("synth", "--lm-dtype must be auto, f32, bf16, q8_0 or q4_0");
            i++;
        } else return cli_usage_error("synth", "unknown option: %s", a);
    }
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
    if (st == COSY_OK && !quiet) fprintf(stderr, "cosy synth: model loaded and prepared in %.0f ms\n", cosy_now_ms() - k.start_ms);
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
    if (st == COSY_OK) {
        if (!strcmp(out, "-")) k.pcm = stdout;
        else if ((st = cosy_wav_writer_open(&wav, out, cosy_model_sample_rate(m), COSY_WAV_PCM16)) == COSY_OK) {
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
        if (st != COSY_OK) unlink(out);
    }
    if (st == COSY_OK && !quiet) {
        if (!k.pcm) fprintf(stderr, "cosy synth: wrote %s\n", out);
        print_timings(&t, json);
    } else if (st == COSY_OK && json) {
        print_timings(&t, 1);
    }
    int rc = st == COSY_OK ? 0 : cli_fail("synth", st); /* before cleanup, which may set another message */
    cosy_session_free(s);
    cosy_voice_free(voice);
    cosy_model_free(m);
    return rc;
}
