/* test_cli.c — the `cosy` command as a user runs it: exit codes, one clear line on stderr for
 * every refusal, no partial output, and `cosy info` showing the real dimensions. */
#include "test.h"
#include "core/cpu.h"
#include "io/npy.h"
#include "model/voice/voice.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <math.h>

#include <stdarg.h>

#include <sys/wait.h>
#include <unistd.h>

/* Runs a shell command; captures stdout+stderr into out (truncated); returns the exit code. */
static int run(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t size, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fprintf(stderr, "bench JSON: no number \"%s\"\n", key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* `cosy bench synth --json` printed one object with the figures the issue asks for, consistent with
 * each other and with the run it describes. */
static void check_bench_json(const char *out, int seconds, int runs)
{
    const char *brace = strchr(out, '{');
    cJSON *j = brace ? cJSON_Parse(brace) : NULL;
    CHECK(j != NULL);
    if (!j) {
        fprintf(stderr, "bench output: %.500s\n", out);
        return;
    }
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "cpu_path");
    CHECK(cJSON_IsString(path) && !strcmp(path->valuestring, cosy_cpu_level_name(cosy_cpu_level())));
    const char *stages[] = {"first_audio_ms", "rtf", "total_ms", "frontend_ms", "lm_prefill_ms", "lm_decode_ms", "flow_ms", "vocoder_ms",
                            "lm_decode_tokens_per_s"};
    const char *groups[] = {"best", "median", "cold"};
    for (int g = 0; g < 3; g++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, groups[g]);
        CHECK(cJSON_IsObject(o));
        for (int k = 0; o && k < 9; k++) CHECK(number(o, stages[k]) >= 0);
        if (o) CHECK(number(o, "first_audio_ms") > 0 && number(o, "first_audio_ms") <= number(o, "total_ms"));
        if (o) CHECK(number(o, "flow_ms") > 0 && number(o, "vocoder_ms") > 0 && number(o, "lm_decode_tokens_per_s") > 0);
    }
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(j, "best"), *median = cJSON_GetObjectItemCaseSensitive(j, "median");
    for (int k = 0; best && median && k < 8; k++) CHECK(number(best, stages[k]) <= number(median, stages[k]));
    for (int k = 0; k < 9; k++) CHECK(best && number(j, stages[k]) == number(best, stages[k]));
    CHECK(number(j, "seconds") == seconds && number(j, "runs") == runs);
    double tokens = number(j, "speech_tokens"), audio = number(j, "audio_seconds");
    CHECK(tokens > 0 && tokens <= 25 * seconds && fabs(audio - tokens * 0.04) < 1e-3);
    CHECK(fabs(number(j, "rtf") * audio * 1000 - number(j, "total_ms")) <= 0.01 * number(j, "total_ms") + 0.5);
    CHECK(number(j, "load_ms") > 0 && number(j, "peak_rss_mb") >= number(j, "loaded_rss_mb") && number(j, "loaded_rss_mb") > 10);
    CHECK(number(j, "text_tokens") > 0 && number(j, "prompt_tokens") > 0);
    const char *types[] = {"lm_dtype", "flow_dtype", "vocoder_dtype"};
    for (int k = 0; k < 3; k++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, types[k]);
        CHECK(cJSON_IsString(t) && (!strcmp(t->valuestring, "f32") || !strcmp(t->valuestring, "bf16") || !strcmp(t->valuestring, "q8_0")));
    }
    cJSON_Delete(j);
}

/* A voice from a recording + transcript, as a new user makes one: `cosy convert` of cv2-voice-tiny's model
 * directory (with campplus.onnx and speech_tokenizer_v2.onnx), `cosy voice import --wav --text`, checked
 * against the e2e_en_16k case's stored frontend outputs (end-to-end tolerances), then `cosy synth --voice`
 * and the one-shot `cosy synth --prompt-wav --prompt-text`; refusals. */
static void test_voice_from_wav(void)
{
    static char out[65536];
    char model[1024], voice[1024], wav[1024], golden[1024], txt[1024];
    snprintf(model, sizeof model, "%s", test_tmp("cli-vmodel.gguf"));
    snprintf(voice, sizeof voice, "%s", test_tmp("cli-fox.voice"));
    snprintf(wav, sizeof wav, "%s", test_tmp("cli-fox.wav"));
    snprintf(txt, sizeof txt, "%s", test_tmp("cli-fox.txt"));
    snprintf(golden, sizeof golden, "%s", test_data("cv2-voice-tiny/golden"));
    const char *transcript = "The quick brown fox jumps over the lazy dog near the riverbank.";
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_data("cv2-voice-tiny/model"), model) == 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, model) == 0);
    CHECK(strstr(out, "voices from audio: yes") != NULL);
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/en_16k_prompt.wav --text '%s' -o %s", COSY_BIN, model, golden, transcript,
              voice) == 0);
    CHECK(strstr(out, "cosy voice: wrote ") != NULL);
    cosy_voice *v = NULL;
    CHECK_OK(cosy_voice_load(voice, &v));
    if (v) {
        npy_array tok, emb, mel;
        char p[1200];
        snprintf(p, sizeof p, "%s/en_16k_prompt_speech_token.npy", golden);
        CHECK_OK(npy_load(p, &tok));
        snprintf(p, sizeof p, "%s/en_16k_embedding.npy", golden);
        CHECK_OK(npy_load(p, &emb));
        snprintf(p, sizeof p, "%s/en_16k_prompt_speech_feat.npy", golden);
        CHECK_OK(npy_load(p, &mel));
        /* every token of this case is exact (its smallest FSQ margin, 4e-4, is far from our error) */
        int same = v->n_llm_prompt_tokens == (int)tok.numel && v->n_flow_prompt_tokens == (int)tok.numel;
        for (int i = 0; same && i < v->n_llm_prompt_tokens; i++)
            same = v->llm_prompt_tokens[i] == tok.i64[i] && v->flow_prompt_tokens[i] == tok.i64[i];
        CHECK(same);
        double d = 0, mx = 0;
        CHECK(v->embed_dim == (int)emb.numel);
        for (int i = 0; i < v->embed_dim && i < emb.numel; i++) {
            d = fmax(d, fabs((double)v->flow_embedding[i] - emb.f32[i]));
            mx = fmax(mx, fabs(emb.f32[i]));
        }
        CHECK(d <= 5e-3 * mx);
        CHECK((int64_t)v->n_prompt_frames * v->n_mels == mel.numel);
        if ((int64_t)v->n_prompt_frames * v->n_mels == mel.numel) CHECK(test_max_abs_diff(v->prompt_feat, mel.f32, mel.numel) <= 1e-3);
        CHECK(v->transcript && !strcmp(v->transcript, transcript) && !strcmp(v->name, "en_16k_prompt"));
        CHECK(v->n_prompt_text == 27);
        npy_free(&tok);
        npy_free(&emb);
        npy_free(&mel);
        cosy_voice_free(v);
    }
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --max-tokens 50 --text 'Hello there.' -o %s --quiet", COSY_BIN, model, voice, wav) == 0);
    struct stat sb;
    CHECK(stat(wav, &sb) == 0 && sb.st_size > 44 && (sb.st_size - 44) % 1920 == 0);
    /* --text-file and --name; the one-shot --prompt-wav gives the same audio as the imported voice */
    FILE *f = fopen(txt, "w");
    if (f) {
        fprintf(f, "%s\n", transcript);
        fclose(f);
    }
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/en_16k_prompt.wav --text-file %s --name fox -o %s", COSY_BIN, model, golden, txt,
              voice) == 0);
    CHECK(run(out, sizeof out, "%s voice info %s", COSY_BIN, voice) == 0);
    CHECK(strstr(out, "name                 fox") && strstr(out, "LM prompt tokens     101") && strstr(out, "prompt mel           202 x 80"));
    CHECK(run(out, sizeof out, "%s synth -m %s --prompt-wav %s/en_16k_prompt.wav --prompt-text '%s' --max-tokens 50 --seed 5 --text 'Hello there.' -o - --quiet"
              " > %s.a.pcm && %s synth -m %s --voice %s --max-tokens 50 --seed 5 --text 'Hello there.' -o - --quiet > %s.b.pcm && cmp %s.a.pcm %s.b.pcm",
              COSY_BIN, model, golden, transcript, wav, COSY_BIN, model, voice, wav, wav, wav) == 0);
    /* cross-lingual and instruct take the recording too: the same audio as with the imported voice */
    const char *modes[] = {"--mode cross-lingual", "--mode instruct --instruct 'Speak slowly.'"};
    for (int i = 0; i < 2; i++)
        CHECK(run(out, sizeof out,
                  "%s synth -m %s --prompt-wav %s/en_16k_prompt.wav --prompt-text '%s' %s --max-tokens 30 --seed 7 --text 'Hello there.' -o - --quiet"
                  " > %s.c.pcm && %s synth -m %s --voice %s %s --max-tokens 30 --seed 7 --text 'Hello there.' -o - --quiet > %s.d.pcm"
                  " && test -s %s.c.pcm && cmp %s.c.pcm %s.d.pcm",
                  COSY_BIN, model, golden, transcript, modes[i], wav, COSY_BIN, model, voice, modes[i], wav, wav, wav, wav) == 0);
    /* refusals: one clear line each */
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/low_sr_8k_prompt.wav --text '%s' -o %s", COSY_BIN, model, golden, transcript, voice) == 1);
    CHECK(strstr(out, "low_sr_8k_prompt.wav: wav sample rate 8000 Hz is too low") && lines(out) == 1);
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/too_long_16k_prompt.wav --text '%s' -o %s", COSY_BIN, model, golden, transcript, voice) == 1);
    CHECK(strstr(out, "longer than 30s") && lines(out) == 1);
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/en_16k_prompt.wav -o %s", COSY_BIN, model, golden, voice) == 2);
    CHECK(strstr(out, "--wav needs the transcript of the recording") != NULL);
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/en_16k_prompt.wav --text '  ' -o %s", COSY_BIN, model, golden, voice) == 1);
    CHECK(strstr(out, "needs the transcript of the recording (what is said in it): it is empty") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --prompt-wav %s/en_16k_prompt.wav --text hi", COSY_BIN, model, golden) == 2);
    CHECK(strstr(out, "--prompt-wav needs the transcript of the recording") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --prompt-wav %s/en_16k_prompt.wav --prompt-text x --text hi", COSY_BIN, model, voice, golden) == 2);
    /* a model converted without the two networks says what to convert */
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_data("cv2-tiny/model"), test_tmp("cli-plain.gguf")) == 0);
    CHECK(run(out, sizeof out, "%s voice import -m %s --wav %s/en_16k_prompt.wav --text '%s' -o %s", COSY_BIN, test_tmp("cli-plain.gguf"),
              golden, transcript, voice) == 1);
    CHECK(strstr(out, "convert the model from a directory that has campplus.onnx and speech_tokenizer_v2.onnx") && lines(out) == 1);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_tmp("cli-plain.gguf")) == 0);
    CHECK(strstr(out, "voices from audio: no (convert from a directory with campplus.onnx and speech_tokenizer_v2.onnx)") != NULL);
}

/* Whether a usage text lists `name` as an option: " name" followed by a space, comma, or the line's end. */
static int lists_option(const char *usage, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(usage, name); p; p = strstr(p + 1, name))
        if (p > usage && p[-1] == ' ' && (p[n] == ' ' || p[n] == ',' || p[n] == '\n')) return 1;
    return 0;
}

/* [a, a_end) and [b, b_end) hold the same words (the help column differs from tool to tool). */
static int same_words(const char *a, const char *a_end, const char *b, const char *b_end)
{
    for (;;) {
        while (a < a_end && (*a == ' ' || *a == '\n')) a++;
        while (b < b_end && (*b == ' ' || *b == '\n')) b++;
        if (a == a_end || b == b_end) return a == a_end && b == b_end;
        if (*a++ != *b++) return 0;
    }
}

/* Every command's options come from one table (tools/cli.h): `--help` exits 0 and lists each of them,
 * an unknown option and a value out of its range exit 2 with one line naming the option. The benches
 * take synth's names for the run-time types (--lm-dtype, --flow-dtype, --hift-dtype). */
static void test_option_tables(void)
{
    static char out[1 << 16];
    static const struct {
        const char *cmd, *options, *out_of_range;
    } cmds[] = {
        {"convert", "-o --output --random --seed --tokenizer --dtype --lm-dtype --flow-dtype --hift-dtype -v --verbose", "--seed -1"},
        {"info", "", NULL},
        {"synth",
         "-m --model --voice --speaker --prompt-wav --prompt-text --prompt-text-file --text --text-stream -o --output --stream "
         "--strategy --chunk --overlap --first-chunk --mode --instruct --seed --lm-dtype --flow-dtype --hift-dtype --threads "
         "--context --reference-final --stateless-flow --concurrent-lm --no-frontend --max-tokens --json --quiet",
         "--chunk 0"},
        {"voice import",
         "-m --model -o --output --wav --text --text-file --name --speaker --fixture --prompt-text --llm-prompt-tokens "
         "--flow-prompt-tokens --prompt-feat --embedding",
         NULL},
        {"voice info", "", NULL},
        {"golden", "--case -v --verbose --dump --threads", "--threads 0"},
        {"tokenize",
         "-m --model --tokenizer --tokens --normalize --reference-split --no-split --decode --skip-special --escapes "
         "--replace-invalid --merges",
         "--merges -1"},
        {"bench lm", "-m --model --lm-dtype --threads --prefill --decode --sequences --runs", "--sequences 65"},
        {"bench synth",
         "-m --model --voice --seconds --first-chunk --lm-dtype --flow-dtype --hift-dtype --model-cache --random --random-lm "
         "--seed --json --threads --runs",
         "--runs 0"},
        {"bench voice", "-m --model --seconds --rate --model-cache --seed --json --threads --runs", "--seconds 31"},
        {"bench flow", "-m --model --prompt --tokens --flow-dtype --final --full-attention --threads --runs", "--tokens 0"},
        {"bench flowstream", "-m --model --prompt --seconds --hop --full-at --all --flow-dtype --context --threads", "--hop 0"},
        {"bench token2wav",
         "-m --model --prompt --seconds --strategy --chunk --first-chunk --flow-dtype --hift-dtype --context --stateless-flow "
         "--reference-final --threads",
         "--context 3601"},
        {"bench hift", "-m --model --frames --hift-dtype --threads --runs", "--frames 0"},
        {"bench text", "-m --model --tokenizer --file --merges --runs", "--runs 1001"},
        {"bench serve",
         "--url -c --concurrency -n --requests --warmup --ws --ws-interval --voice --text --texts --format --strategy --chunk "
         "--first-chunk --seed --api-key --timeout --json",
         "--concurrency 257"},
        {"serve",
         "-m --model --voices --host --port --api-key --max-sessions --max-queue --max-input-chars --threads --lm-dtype "
         "--flow-dtype --hift-dtype --quiet",
         "--port 65536"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = run(out, sizeof out, "%s %s --help", COSY_BIN, cmds[i].cmd);
        CHECK(rc == 0);
        char want[64];
        snprintf(want, sizeof want, "usage: cosy %s ", cmds[i].cmd);
        CHECK(strstr(out, want) == out);
        char names[512];
        snprintf(names, sizeof names, "%s", cmds[i].options);
        for (char *save = NULL, *name = strtok_r(names, " ", &save); name; name = strtok_r(NULL, " ", &save)) {
            int listed = lists_option(out, name);
            if (!listed) fprintf(stderr, "cosy %s --help does not list %s\n", cmds[i].cmd, name);
            CHECK(listed);
        }
        /* an option the command does not take: exit 2, one line naming it */
        CHECK(run(out, sizeof out, "%s %s --no-such-option", COSY_BIN, cmds[i].cmd) == 2);
        CHECK(lines(out) == 1 && strstr(out, "unknown option '--no-such-option'"));
        if (!cmds[i].out_of_range) continue;
        CHECK(run(out, sizeof out, "%s %s %s", COSY_BIN, cmds[i].cmd, cmds[i].out_of_range) == 2);
        char option[64];
        snprintf(option, sizeof option, "%s needs ", cmds[i].out_of_range);
        *strchr(option, ' ') = 0;
        strcat(option, " needs ");
        int named = lines(out) == 1 && strstr(out, option) != NULL;
        if (!named) fprintf(stderr, "cosy %s %s: %s", cmds[i].cmd, cmds[i].out_of_range, out);
        CHECK(named);
    }
    /* the help of an option shared by several tools is the same everywhere */
    static char other[1 << 16];
    CHECK(run(out, sizeof out, "%s synth --help", COSY_BIN) == 0);
    CHECK(run(other, sizeof other, "%s bench token2wav --help", COSY_BIN) == 0);
    const char *a = strstr(out, "\n      --context SECONDS"), *b = strstr(other, "\n      --context SECONDS");
    CHECK(a && b);
    if (a && b) {
        const char *a_end = strstr(a + 1, "\n      --"), *b_end = strstr(b + 1, "\n      --");
        CHECK(a_end && b_end && same_words(a, a_end, b, b_end));
    }
    /* a choice out of its list names the option and the choices; the old bench spelling is gone */
    CHECK(run(out, sizeof out, "%s bench hift --hift-dtype q4_0", COSY_BIN) == 2);
    CHECK(lines(out) == 1 && strstr(out, "--hift-dtype must be auto, f32 or bf16, not 'q4_0'"));
    CHECK(run(out, sizeof out, "%s bench flow --dtype bf16", COSY_BIN) == 2);
    CHECK(strstr(out, "unknown option '--dtype'") != NULL);
    CHECK(run(out, sizeof out, "%s synth --mode whisper", COSY_BIN) == 2);
    CHECK(lines(out) == 1 && strstr(out, "--mode must be zero-shot, cross-lingual, instruct or sft, not 'whisper'"));
    CHECK(run(out, sizeof out, "%s synth --text", COSY_BIN) == 2);
    CHECK(lines(out) == 1 && strstr(out, "--text needs a value"));
    /* the sub-subcommand lists */
    CHECK(run(out, sizeof out, "%s voice --help", COSY_BIN) == 0 && strstr(out, "cosy voice import") && strstr(out, "cosy voice info"));
    CHECK(run(out, sizeof out, "%s bench --help", COSY_BIN) == 0 && strstr(out, "token2wav") && strstr(out, "flowstream"));
}

/* `cosy golden` on a crafted fixture set whose stream_schedule asks for 400 of speech_token's 200
 * tokens: each t2w case fails cleanly (non-zero exit, a message naming the case and the field), no
 * over-read of the token list nor write past the audio buffer (the ASan build runs this too). */
static void test_golden_bad_schedule(void)
{
    static char out[1 << 16];
    char dir[1024];
    static char cmd[8192];
    snprintf(dir, sizeof dir, "%s", test_tmp("golden-bad-schedule"));
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s/golden' && ln -s '%s' '%s/model' && ln -s '%s'/* '%s/golden/' && rm '%s/golden/stream_schedule.npy'",
             dir, dir, test_data("cv2-tiny/model"), dir, test_data("cv2-tiny/golden"), dir, dir);
    CHECK(system(cmd) == 0);
    float sched[4][4] = {{0, 400, 0, 1}, {25, 400, 0, 1}, {50, 400, 0, 1}, {75, 400, 1, 0}};
    int64_t shape[2] = {4, 4};
    char path[1200];
    snprintf(path, sizeof path, "%s/golden/stream_schedule.npy", dir);
    CHECK_OK(npy_save_f32(path, &sched[0][0], shape, 2));
    const char *cases[2] = {"t2w_0", "token2wav_stream"};
    for (int i = 0; i < 2; i++) {
        int rc = run(out, sizeof out, "%s golden '%s' --case %s", COSY_BIN, dir, cases[i]);
        CHECK(rc == 1);
        char want[128];
        snprintf(want, sizeof want, "%s: stream_schedule call 0 asks for 400 of 200 tokens (field n_tokens)", cases[i]);
        CHECK(strstr(out, want) != NULL);
        if (rc != 1 || !strstr(out, want)) fprintf(stderr, "cosy golden --case %s (exit %d) said:\n%s\n", cases[i], rc, out);
    }
    /* a token_offset beyond the tokens given */
    float sched2[1][4] = {{300, 100, 0, 1}};
    shape[0] = 1;
    unlink(path);
    CHECK_OK(npy_save_f32(path, &sched2[0][0], shape, 2));
    CHECK(run(out, sizeof out, "%s golden '%s' --case t2w_0", COSY_BIN, dir) == 1);
    CHECK(strstr(out, "t2w_0: stream_schedule call 0 has token_offset 300 outside 0..100 (field token_offset)") != NULL);
}

/* `cosy golden` is honest about what it did not compare: a renamed case FAILs (it is not silently a
 * SKIP), a case whose declared output the handler never compares FAILs, a knowingly skipped case alone
 * exits 77 (ctest's SKIP), and a missing fixture set exits 77 (could not run). */
static void test_golden_honesty(void)
{
    static char out[1 << 16];
    static char cmd[8192];
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s", test_tmp("golden-honesty"));
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s/golden' && ln -s '%s' '%s/model' && ln -s '%s'/*.npy '%s/golden/'", dir, dir,
             test_data("cv2-tiny/model"), dir, test_data("cv2-tiny/golden"), dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/golden/manifest.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    /* feat_resample as in the real manifest; the same case renamed; one declaring an output nobody computes */
    fputs("{\"files\": {\"feat_resample_24k_to_16k\": {\"file\": \"feat_resample_24k_to_16k.npy\", \"tolerance\": {\"max_abs\": 1e-05}}},\n"
          " \"cases\": [\n"
          "  {\"name\": \"feat_resample\", \"inputs\": [\"feat_wav24k\"], \"outputs\": [\"feat_resample_24k_to_16k\"]},\n"
          "  {\"name\": \"feat_resample_v2\", \"inputs\": [\"feat_wav24k\"], \"outputs\": [\"feat_resample_24k_to_16k\"]},\n"
          "  {\"name\": \"feat_whisper128\", \"inputs\": [\"feat_wav16k\"], \"outputs\": [\"feat_whisper128\", \"feat_whisper128_delta\"],\n"
          "   \"tolerance_per_output\": {\"feat_whisper128\": {\"max_abs\": 1e-4}}},\n"
          "  {\"name\": \"feat_mel24k\", \"inputs\": [\"feat_wav24k\"], \"outputs\": [\"feat_mel24k\"]}]}\n",
          f);
    fclose(f);
    CHECK(run(out, sizeof out, "%s golden '%s' --case feat_resample", COSY_BIN, dir) == 0);
    CHECK(strstr(out, "feat_resample") && strstr(out, "PASS") && strstr(out, "1 passed, 0 failed, 0 skipped"));
    int rc = run(out, sizeof out, "%s golden '%s' --case feat_resample_v2", COSY_BIN, dir);
    CHECK(rc == 1 && strstr(out, "feat_resample_v2") && strstr(out, "FAIL (unknown case"));
    if (rc != 1) fprintf(stderr, "renamed case (exit %d):\n%s\n", rc, out);
    rc = run(out, sizeof out, "%s golden '%s' --case feat_whisper128", COSY_BIN, dir);
    CHECK(rc == 1 && strstr(out, "FAIL (declared output feat_whisper128_delta was never compared)"));
    if (rc != 1) fprintf(stderr, "uncompared output (exit %d):\n%s\n", rc, out);
    CHECK(run(out, sizeof out, "%s golden '%s' --case feat_mel24k", COSY_BIN, dir) == 77);
    CHECK(strstr(out, "SKIP (") && strstr(out, "0 passed, 0 failed, 1 skipped"));
    /* the whole set: one failure is enough for exit 1, whatever passed or was skipped */
    CHECK(run(out, sizeof out, "%s golden '%s'", COSY_BIN, dir) == 1);
    CHECK(strstr(out, "1 passed, 2 failed, 1 skipped") != NULL);
    CHECK(run(out, sizeof out, "%s golden '%s' --case no_such_case", COSY_BIN, dir) == 1);
    snprintf(cmd, sizeof cmd, "%s/none", dir);
    CHECK(run(out, sizeof out, "%s golden '%s'", COSY_BIN, cmd) == 77);
    CHECK(lines(out) == 1 && strstr(out, "skipped"));
}

/* The 16-bit mono WAVE `path`: its sample rate and sample count (-1 if it is not one). */
static void wav_shape(const char *path, int *rate, long *samples)
{
    *rate = -1;
    *samples = -1;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    unsigned char h[12], c[8];
    if (fread(h, 1, 12, f) != 12 || memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) {
        fclose(f);
        return;
    }
    while (fread(c, 1, 8, f) == 8) {
        long size = (long)c[4] | (long)c[5] << 8 | (long)c[6] << 16 | (long)c[7] << 24;
        if (!memcmp(c, "fmt ", 4)) {
            unsigned char fmt[16];
            if (size < 16 || fread(fmt, 1, 16, f) != 16) break;
            if (fmt[2] == 1 && fmt[14] == 16) *rate = (int)(fmt[4] | fmt[5] << 8 | fmt[6] << 16 | (unsigned)fmt[7] << 24);
            if (fseek(f, size - 16 + (size & 1), SEEK_CUR)) break;
        } else if (!memcmp(c, "data", 4)) {
            *samples = size / 2;
            break;
        } else if (fseek(f, size + (size & 1), SEEK_CUR)) {
            break;
        }
    }
    fclose(f);
}

/* End to end on the converted CosyVoice3 fixture model with the fixture's voice (`cosy voice import
 * --fixture`): every mode with prompt data speaks, whole and streamed, at 24 kHz, exactly 2 mel frames
 * x 480 samples per speech token (random weights: the length is the LM's, not the text's), and the
 * session's silent-token filter watches CosyVoice3's 11 ids. */
static void test_cosyvoice3_synth(const char *model)
{
    static char out[1 << 16];
    char voice[1024], wav[1024];
    snprintf(voice, sizeof voice, "%s", test_tmp("cli-cv3.voice"));
    snprintf(wav, sizeof wav, "%s", test_tmp("cli-cv3.wav"));
    CHECK(run(out, sizeof out, "%s voice import -m %s --fixture %s -o %s", COSY_BIN, model, test_data("cv3-tiny/golden"), voice) == 0);
    static const char *const modes[] = {"--mode zero-shot", "--mode cross-lingual", "--mode instruct --instruct 'Speak slowly.'"};
    static const char *const streams[] = {"", "--stream", "--stream --chunk-causal-final"};
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < 3; k++) {
            unlink(wav);
            int rc = run(out, sizeof out, "%s synth -m %s --voice %s %s %s --seed %d --text 'Hello world, this is a test.' -o %s --json --quiet",
                         COSY_BIN, model, voice, modes[m], streams[k], m + 1, wav);
            CHECK(rc == 0);
            const char *brace = strrchr(out, '{');
            cJSON *j = brace ? cJSON_Parse(brace) : NULL;
            CHECK(j != NULL);
            int rate;
            long samples;
            wav_shape(wav, &rate, &samples);
            double tokens = j ? number(j, "speech_tokens") : NAN;
            CHECK(rate == 24000);
            CHECK(tokens >= 1 && samples == (long)tokens * 960);
            CHECK(j && fabs(number(j, "audio_seconds") - samples / 24000.0) < 1e-3);
            CHECK(j && number(j, "silent_filter") == 11 && number(j, "silent_dropped") >= 0);
            CHECK(j && (k == 0 ? number(j, "chunks") == 1 : number(j, "chunks") >= 1));
            if (rc != 0 || rate != 24000 || samples != (long)tokens * 960)
                fprintf(stderr, "cosy synth %s %s said (rate %d, %ld samples):\n%s\n", modes[m], streams[k], rate, samples, out);
            cJSON_Delete(j);
        }
    /* no cross-fade in CosyVoice3: an overlap is refused, in one line */
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --stream --strategy equal --overlap 5 --text 'Hello.' -o %s --quiet", COSY_BIN, model,
              voice, wav) == 1);
    CHECK(strstr(out, "CosyVoice3 has no cross-fade, so no overlap") && lines(out) == 1);
}

/* A CosyVoice3 directory: converted (family and hyperparameters in `cosy info`); every case of its
 * fixture set passes but feat_mel24k, knowingly skipped (which --incomplete-exit still reports as
 * incomplete, and --skip-known lists alone as ctest's SKIP); then it speaks (test_cosyvoice3_synth). */
static void test_cosyvoice3(void)
{
    static char out[1 << 16];
    char model[1024];
    snprintf(model, sizeof model, "%s", test_tmp("cli-cv3.gguf"));
    unlink(model);
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_data("cv3-tiny/model"), model) == 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, model) == 0);
    CHECK(strstr(out, "architecture               cosyvoice3 (CosyVoice3)") && strstr(out, "family                       CosyVoice3"));
    CHECK(strstr(out, "speech head 6761 without bias") && strstr(out, "lm_endofprompt               151646"));
    CHECK(strstr(out, "silent_tokens                [1, 2, 28, 29, 55, 248, 494, 2241, 2242, 2322, 2323]"));
    CHECK(strstr(out, "conv_pre_look_right          4") && strstr(out, "dit_depth                    2"));
    /* every case but feat_mel24k (knowingly skipped: a bound below the reference's own FFT noise) */
    int rc = run(out, sizeof out, "%s golden %s", COSY_BIN, test_data("cv3-tiny"));
    CHECK(rc == 0);
    CHECK(!strstr(out, "not implemented yet") && strstr(out, "PASS (worst: hift_") && strstr(out, "SKIP (its 1e-4 bound"));
    CHECK(strstr(out, "17 passed, 0 failed, 1 skipped") != NULL); /* + 4 token2wav calls, the stream, the chunk-causal final call */
    if (rc != 0) fprintf(stderr, "cosy golden cv3-tiny (exit %d) said:\n%s\n", rc, out);
    /* the skip is a skip for --incomplete-exit too, and listed alone by --skip-known */
    CHECK(run(out, sizeof out, "%s golden %s --case feat_mel24k --case official_cv3_rng --skip-known --incomplete-exit 77", COSY_BIN, test_data("cv3-tiny")) == 77);
    CHECK(run(out, sizeof out, "%s golden %s --case feat_mel24k --skip-known", COSY_BIN, test_data("cv3-tiny")) == 77);
    CHECK(strstr(out, "0 passed, 0 failed, 1 skipped") != NULL);
    CHECK(run(out, sizeof out, "%s golden %s --case llm_silent_filter --incomplete-exit 77", COSY_BIN, test_data("cv3-tiny")) == 0);
    CHECK(strstr(out, "1 passed, 0 failed, 0 skipped") != NULL);
    test_cosyvoice3_synth(model);
}

int main(void)
{
    test_golden_bad_schedule();
    test_golden_honesty();
    test_cosyvoice3();
    static char out[1 << 16];
    const char *model = test_tmp("cli.gguf");
    unlink(model);
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_data("cv2-tiny/model"), model) == 0);
    CHECK(access(model, F_OK) == 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, model) == 0);
    CHECK(strstr(out, "Qwen2 2 layers, hidden 64, heads 4/2 (q/kv), head_dim 16, MLP 128") != NULL);
    CHECK(strstr(out, "speech head 6564") != NULL);
    CHECK(strstr(out, "tokenizer: 1996 tokens, 1720 merges") != NULL);
    CHECK(strstr(out, "tensors: 506") != NULL);

    /* refusals: exit 1, one line naming the problem, nothing written */
    const char *bad_out = test_tmp("cli-bad.gguf");
    unlink(bad_out);
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_tmp("missing-dir"), bad_out) == 1);
    CHECK(lines(out) == 1 && strstr(out, "cosy convert: ") == out && strstr(out, "missing-dir: not a CosyVoice2 or CosyVoice3 model directory"));
    CHECK(access(bad_out, F_OK) != 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_data("cv2-tiny/model/llm.pt")) == 1);
    CHECK(lines(out) == 1 && strstr(out, "not a GGUF file"));
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_tmp("nothing.gguf")) == 1);
    CHECK(lines(out) == 1 && strstr(out, "nothing.gguf: No such file"));

    /* usage errors: exit 2 */
    CHECK(run(out, sizeof out, "%s convert %s", COSY_BIN, test_data("cv2-tiny/model")) == 2);
    CHECK(strstr(out, "-o OUT.gguf is required") != NULL);
    CHECK(run(out, sizeof out, "%s convert --random cv2-tiny -o %s --dtype q4", COSY_BIN, bad_out) == 2);
    CHECK(strstr(out, "--dtype must be f32, f16 or bf16, not 'q4'") != NULL);
    CHECK(run(out, sizeof out, "%s convert --random cv2-tiny -o %s --seed -3", COSY_BIN, bad_out) == 2);
    CHECK(run(out, sizeof out, "%s frobnicate", COSY_BIN) == 2);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK(run(out, sizeof out, "%s info", COSY_BIN) == 2);
    CHECK(run(out, sizeof out, "%s --help", COSY_BIN) == 0 && strstr(out, "convert"));
    CHECK(access(bad_out, F_OK) != 0);
    test_option_tables();

    /* synth: the fixture's voice, a streamed sentence; 960 samples (2 mel frames x 480) per speech token */
    /* test_tmp hands out a ring of 4 buffers: keep copies of the paths used below */
    char model_path[1024], voice[1024], wav[1024], no_voice[1024];
    snprintf(model_path, sizeof model_path, "%s", test_tmp("cli.gguf"));
    snprintf(voice, sizeof voice, "%s", test_tmp("cli.voice"));
    snprintf(wav, sizeof wav, "%s", test_tmp("cli-synth.wav"));
    snprintf(no_voice, sizeof no_voice, "%s", test_tmp("no.voice"));
    model = model_path;
    unlink(wav);
    CHECK(run(out, sizeof out, "%s voice import -m %s --fixture %s -o %s", COSY_BIN, model, test_data("cv2-tiny/golden"), voice) == 0);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --stream --max-tokens 60 --seed 7 --text 'Hello there.' -o %s --json --quiet",
              COSY_BIN, model, voice, wav) == 0);
    const char *json = strchr(out, '{');
    int tokens = -1, chunks = -1;
    double audio_seconds = -1;
    if (json) {
        const char *p = strstr(json, "\"speech_tokens\": ");
        if (p) tokens = atoi(p + strlen("\"speech_tokens\": "));
        p = strstr(json, "\"chunks\": ");
        if (p) chunks = atoi(p + strlen("\"chunks\": "));
        p = strstr(json, "\"audio_seconds\": ");
        if (p) audio_seconds = atof(p + strlen("\"audio_seconds\": "));
    }
    CHECK(tokens > 0 && tokens <= 60);
    CHECK(chunks >= 1);
    CHECK(fabs(audio_seconds - tokens * 0.04) < 1e-6);
    struct stat sb;
    CHECK(stat(wav, &sb) == 0 && sb.st_size == 44 + 2 * 960 * (long)tokens);
    /* the same request as raw PCM on stdout: the same samples, byte for byte */
    CHECK(run(out, sizeof out,
              "%s synth -m %s --voice %s --stream --max-tokens 60 --seed 7 --text 'Hello there.' -o - --quiet 2>/dev/null | "
              "cmp - %s -i 0:44",
              COSY_BIN, model, voice, wav) == 0);
    /* a small first chunk: the same number of samples, one chunk more for 60 tokens (15, 40, final
     * against 30, final with the fixture's prompt of 20) */
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --stream --first-chunk 15 --max-tokens 60 --seed 7 --text 'Hello there.' -o %s --json --quiet",
              COSY_BIN, model, voice, wav) == 0);
    json = strchr(out, '{');
    const char *pc = json ? strstr(json, "\"chunks\": ") : NULL;
    const char *pt = json ? strstr(json, "\"speech_tokens\": ") : NULL;
    CHECK(pc && pt && atoi(pt + strlen("\"speech_tokens\": ")) == tokens);
    if (pc && tokens == 60) CHECK(atoi(pc + strlen("\"chunks\": ")) == chunks + 1);
    CHECK(stat(wav, &sb) == 0 && sb.st_size == 44 + 2 * 960 * (long)tokens);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --first-chunk 15 --text hi", COSY_BIN, model, voice) == 2);
    CHECK(strstr(out, "--first-chunk goes with --stream or --text-stream") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --stream --first-chunk 10001 --text hi", COSY_BIN, model, voice) == 2);
    CHECK(strstr(out, "--first-chunk needs 0..10000 tokens") != NULL);
    /* text pieces on stdin (bistream) */
    CHECK(run(out, sizeof out, "printf 'Hello,\\n there.\\n' | %s synth -m %s --voice %s --text-stream --max-tokens 40 -o %s --quiet",
              COSY_BIN, model, voice, wav) == 0);
    CHECK(stat(wav, &sb) == 0 && sb.st_size > 44 && (sb.st_size - 44) % 1920 == 0);
    /* synth refusals */
    char empty_wav[1024];
    snprintf(empty_wav, sizeof empty_wav, "%s", test_tmp("cli-empty.wav"));
    unlink(empty_wav);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --text '  ' -o %s", COSY_BIN, model, voice, empty_wav) == 1);
    CHECK(strstr(out, "cosy synth: session: the text is empty (only white space): there is nothing to say") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --text '?!...' -o %s", COSY_BIN, model, voice, empty_wav) == 1);
    CHECK(strstr(out, "cosy synth: session: nothing to say: the text has only punctuation and symbols (\"?!...\")") != NULL);
    CHECK(run(out, sizeof out, "printf '\\n ,\\n' | %s synth -m %s --voice %s --text-stream -o %s", COSY_BIN, model, voice, empty_wav) == 1);
    CHECK(strstr(out, "every text piece was empty or only white space, punctuation and symbols") != NULL);
    CHECK(access(empty_wav, F_OK) != 0); /* no 0-sample file left behind */
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --text hi --flow-dtype q8_0", COSY_BIN, model, voice) == 2);
    CHECK(strstr(out, "--flow-dtype must be auto, f32 or bf16") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --text hi --max-tokens 0", COSY_BIN, model, voice) == 2);
    CHECK(strstr(out, "--max-tokens needs 1..100000 speech tokens") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --text hi", COSY_BIN, model) == 2);
    CHECK(strstr(out, "give one of --voice VOICE.voice, --speaker NAME or --prompt-wav F (with --prompt-text)") != NULL);
    CHECK(run(out, sizeof out, "%s synth -m %s --voice %s --text hi -o %s", COSY_BIN, model, no_voice, wav) == 1);
    CHECK(strstr(out, "cosy synth: ") && strstr(out, "no.voice: No such file or directory"));

    /* cosy bench synth: one JSON object with every figure, sane (timings are not asserted) */
    CHECK(run(out, sizeof out, "%s bench synth -m %s --seconds 1 --runs 2 --first-chunk 10 --json 2>/dev/null", COSY_BIN, model) == 0);
    check_bench_json(out, 1, 2);
    CHECK(run(out, sizeof out, "%s bench synth -m %s --voice %s --seconds 2 --runs 1 --json 2>/dev/null", COSY_BIN, model, voice) == 0);
    check_bench_json(out, 2, 1);
    /* without -m: the random model built once into the cache, then reused */
    char cache_dir[1024];
    snprintf(cache_dir, sizeof cache_dir, "%s", test_tmp("xdg-cache"));
    CHECK(run(out, sizeof out, "rm -rf %s && (XDG_CACHE_HOME=%s %s bench synth --random cv2-tiny --seconds 1 --runs 1 --json >/dev/null)",
              cache_dir, cache_dir, COSY_BIN) == 0);
    CHECK(strstr(out, "building the random model cv2-tiny (seed 1234) into ") && strstr(out, "xdg-cache/cosy/cv2-tiny-random-seed1234"));
    CHECK(run(out, sizeof out, "XDG_CACHE_HOME=%s %s bench synth --random cv2-tiny --seconds 1 --runs 1 --json", cache_dir, COSY_BIN) == 0);
    CHECK(strstr(out, "the random model cv2-tiny (seed 1234) from ") && !strstr(out, "building"));
    /* refusals */
    CHECK(run(out, sizeof out, "%s bench synth -m %s --seconds 0", COSY_BIN, model) == 2);
    CHECK(strstr(out, "--seconds needs 1..60") != NULL);
    CHECK(run(out, sizeof out, "%s bench synth -m %s --model-cache x.gguf", COSY_BIN, model) == 2);
    CHECK(strstr(out, "not both") != NULL);
    CHECK(run(out, sizeof out, "%s bench synth -m %s --lm-dtype q4", COSY_BIN, model) == 2);
    CHECK(strstr(out, "--lm-dtype must be auto, f32, bf16, q8_0 or q4_0") != NULL);
    CHECK(run(out, sizeof out, "%s bench synth -m %s --voice %s --runs 1", COSY_BIN, model, no_voice) == 1);
    CHECK(strstr(out, "no.voice: No such file") != NULL);

    /* random weights with the fixture's shapes */
    CHECK(run(out, sizeof out, "%s convert --random cv2-tiny --seed 3 --dtype bf16 -o %s", COSY_BIN, test_tmp("cli-rand.gguf")) == 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_tmp("cli-rand.gguf")) == 0);
    CHECK(strstr(out, "weights                    random") && strstr(out, "bf16"));
    test_voice_from_wav();
    return test_finish("test_cli");
}
