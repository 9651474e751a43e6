/* test_cli_refusals.c — every refusal of bad outside input by the command line, as a user meets it:
 * `cosy convert`, `cosy voice import`, `cosy synth` and `cosy info` fed inputs this test crafts (a
 * truncated and a self-containing .pt, a hostile yaml, bad GGUF metadata, a truncated GGUF, a speaker
 * whose LM embedding is short, a corrupt wav, a corrupt voice file, bad token arrays). Each must
 *   - exit with status 1,
 *   - print exactly one line on stderr, naming the offending file,
 *   - leave the output directory empty (no output file, no .tmp-* file),
 *   - and finish within 2 s. */
#define _GNU_SOURCE /* memmem */
#include "test.h"
#include "pt_writer.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIMIT_S 2.0

static char outdir[1024];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    *n = p && fread(p, 1, (size_t)len, f) == (size_t)len ? (size_t)len : 0;
    fclose(f);
    return p;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

/* Runs `cosy ARGS` (ARGS may name $OUT, the emptied output directory) and checks the refusal: exit 1,
 * one stderr line containing `name` (and `what`, if given), nothing left in $OUT, within LIMIT_S. */
static void refused(const char *label, const char *name, const char *what, const char *args_fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refused(const char *label, const char *name, const char *what, const char *args_fmt, ...)
{
    char args[4096], err[1200];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    snprintf(err, sizeof err, "%s.stderr", outdir);
    CHECK(sh("rm -rf '%s' && mkdir -p '%s'", outdir, outdir) == 0);
    double t0 = now_s();
    int rc = sh("export OUT='%s'; %s %s >/dev/null 2>'%s'", outdir, COSY_BIN, args, err);
    double dt = now_s() - t0;
    size_t n = 0;
    char *text = (char *)slurp(err, &n);
    if (text) text[n] = 0;
    int lines = 0;
    for (size_t i = 0; text && i < n; i++) lines += text[i] == '\n';
    const int left = sh("test -z \"$(ls -A '%s')\"", outdir) != 0;
    const int ok = rc == 1 && lines == 1 && text && strstr(text, name) && (!what || strstr(text, what)) && !left && dt < LIMIT_S;
    printf("  %-34s exit %d, %d line(s), %s, %.2f s: %s", label, rc, lines, left ? "OUTPUT LEFT BEHIND" : "nothing written", dt,
           text && n ? text : "(no message)\n");
    if (!ok) fprintf(stderr, "%s: refusal not as promised (want exit 1, one line naming %s%s%s, nothing in the output directory, < %.0f s)\n",
                     label, name, what ? " and " : "", what ? what : "", LIMIT_S);
    CHECK(rc == 1);
    CHECK(lines == 1);
    CHECK(text && strstr(text, name));
    if (what) CHECK(text && strstr(text, what));
    CHECK(!left);
    CHECK(dt < LIMIT_S);
    free(text);
}

/* A copy of a model directory (files linked) in which `replace` will be written by the caller. */
static const char *variant(const char *name, const char *src, const char *replace)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s", test_tmp(name));
    CHECK(sh("rm -rf '%s' && mkdir -p '%s' && ln -s '%s'/* '%s/' && rm -f '%s/%s'", dir, dir, src, dir, dir, replace) == 0);
    return dir;
}

static void test_convert(void)
{
    printf("cosy convert:\n");
    char path[1200];
    /* llm.pt cut in half */
    const char *d = variant("refuse-truncated", test_data("cv2-tiny/model"), "llm.pt");
    size_t n;
    snprintf(path, sizeof path, "%s/llm.pt", test_data("cv2-tiny/model"));
    unsigned char *whole = slurp(path, &n);
    CHECK(whole && n > 1000);
    snprintf(path, sizeof path, "%s/llm.pt", d);
    if (whole) spit(path, whole, n / 2);
    free(whole);
    refused("truncated llm.pt", "llm.pt", NULL, "convert '%s' -o \"$OUT/m.gguf\"", d);

    /* llm.pt whose pickle is a dict containing itself (17 bytes) */
    d = variant("refuse-selfdict", test_data("cv2-tiny/model"), "llm.pt");
    ptw_buf b = {0};
    const unsigned char self[] = {0x80, 2, '}', 'q', 0, 0x8c, 1, 'a', 'h', 0, 's', '.'};
    ptw_put(&b, self, sizeof self);
    snprintf(path, sizeof path, "%s/llm.pt", d);
    CHECK(ptw_write_checkpoint(path, "archive", &b, NULL, NULL, NULL, 0, 0) == 0);
    free(b.p);
    refused("self-containing pickle", "llm.pt", "nested", "convert '%s' -o \"$OUT/m.gguf\"", d);

    /* flow.pt that is not a zip at all */
    d = variant("refuse-notzip", test_data("cv2-tiny/model"), "flow.pt");
    snprintf(path, sizeof path, "%s/flow.pt", d);
    spit(path, "PK\3\4 not really", 16);
    refused("flow.pt not a zip", "flow.pt", NULL, "convert '%s' -o \"$OUT/m.gguf\"", d);

    /* a yaml value of 300k '(' */
    d = variant("refuse-yaml", test_data("cv2-tiny/model"), "cosyvoice2.yaml");
    snprintf(path, sizeof path, "%s/cosyvoice2.yaml", test_data("cv2-tiny/model"));
    unsigned char *yaml = slurp(path, &n);
    CHECK(yaml != NULL);
    snprintf(path, sizeof path, "%s/cosyvoice2.yaml", d);
    FILE *f = fopen(path, "wb");
    if (f && yaml) {
        fwrite(yaml, 1, n, f);
        fputs("\nhostile: !!python/tuple [", f);
        for (int i = 0; i < 300000; i++) fputc('[', f);
        fputs("\n", f);
        fclose(f);
    }
    free(yaml);
    refused("hostile cosyvoice2.yaml", "cosyvoice2.yaml", NULL, "convert '%s' -o \"$OUT/m.gguf\"", d);

    /* no model directory at all */
    refused("missing model directory", "no-such-dir", NULL, "convert '%s' -o \"$OUT/m.gguf\"", test_tmp("no-such-dir"));
}

/* Overwrites the value of the u32/i32 metadata key `key` in a GGUF image. */
static int set_meta_u32(unsigned char *p, size_t n, const char *key, uint32_t value)
{
    unsigned char *k = memmem(p, n, key, strlen(key));
    if (!k) return 0;
    unsigned char *v = k + strlen(key);
    uint32_t type;
    memcpy(&type, v, 4);
    if (type != 4 && type != 5) return 0; /* GGUF uint32 / int32 */
    memcpy(v + 4, &value, 4);
    return 1;
}

static void test_model_files(const char *good)
{
    printf("cosy info / cosy synth on damaged model files:\n");
    size_t n;
    unsigned char *whole = slurp(good, &n);
    CHECK(whole != NULL);
    if (!whole) return;
    char bad[1200], cut[1200];
    snprintf(bad, sizeof bad, "%s", test_tmp("refuse-meta.gguf"));
    snprintf(cut, sizeof cut, "%s", test_tmp("refuse-cut.gguf"));
    unsigned char *copy = malloc(n);
    memcpy(copy, whole, n);
    CHECK(set_meta_u32(copy, n, "token_frame_rate", 1u << 30));
    spit(bad, copy, n);
    spit(cut, whole, n / 3);
    refused("info: token_frame_rate 2^30", "refuse-meta.gguf", "token_frame_rate", "info '%s'", bad);
    refused("info: truncated gguf", "refuse-cut.gguf", NULL, "info '%s'", cut);
    refused("synth: token_frame_rate 2^30", "refuse-meta.gguf", "token_frame_rate", "synth -m '%s' --speaker x --text hi -o \"$OUT/x.wav\"",
            bad);
    refused("synth: truncated gguf", "refuse-cut.gguf", NULL, "synth -m '%s' --speaker x --text hi -o \"$OUT/x.wav\"", cut);
    refused("voice import: truncated gguf", "refuse-cut.gguf", NULL, "voice import -m '%s' --speaker x -o \"$OUT/x.voice\"", cut);
    free(copy);
    free(whole);
}

static void test_voices(const char *good, const char *voice_model)
{
    printf("cosy voice import / cosy synth on damaged voices and recordings:\n");
    char wav[1200], voice[1200], npy[1200];
    /* a RIFF header that promises a format chunk and stops */
    snprintf(wav, sizeof wav, "%s", test_tmp("refuse-corrupt.wav"));
    spit(wav, "RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", 22);
    refused("voice import: corrupt wav", "refuse-corrupt.wav", NULL, "voice import -m '%s' --wav '%s' --text 'hello there' -o \"$OUT/x.voice\"",
            voice_model, wav);
    refused("synth: corrupt prompt wav", "refuse-corrupt.wav", NULL,
            "synth -m '%s' --prompt-wav '%s' --prompt-text 'hello there' --text hi -o \"$OUT/x.wav\"", voice_model, wav);
    /* a voice file cut short */
    snprintf(voice, sizeof voice, "%s", test_tmp("refuse-good.voice"));
    CHECK(sh("%s voice import -m '%s' --speaker spk0 -o '%s' >/dev/null 2>&1 || %s voice import -m '%s' --fixture '%s' -o '%s' >/dev/null 2>&1",
             COSY_BIN, good, voice, COSY_BIN, good, test_data("cv2-tiny/golden"), voice) == 0);
    size_t n;
    unsigned char *v = slurp(voice, &n);
    CHECK(v && n > 64);
    snprintf(voice, sizeof voice, "%s", test_tmp("refuse-cut.voice"));
    if (v) spit(voice, v, n / 2);
    free(v);
    refused("synth: truncated voice", "refuse-cut.voice", NULL, "synth -m '%s' --voice '%s' --text hi -o \"$OUT/x.wav\"", good, voice);
    refused("voice info: truncated voice", "refuse-cut.voice", NULL, "voice info '%s'", voice);
    /* a refusal never touches an existing output; a success replaces it whole and leaves no temporary */
    char keep[1200], good_voice[1200];
    snprintf(keep, sizeof keep, "%s/keep.wav", outdir);
    snprintf(good_voice, sizeof good_voice, "%s", test_tmp("refuse-good.voice"));
    CHECK(sh("rm -rf '%s' && mkdir -p '%s' && printf 'mine' > '%s'", outdir, outdir, keep) == 0);
    CHECK(sh("%s synth -m '%s' --voice '%s' --text hi -o '%s' >/dev/null 2>&1", COSY_BIN, good, voice, keep) == 1);
    size_t kn = 0;
    char *kept = (char *)slurp(keep, &kn);
    CHECK(kept && kn == 4 && !memcmp(kept, "mine", 4));
    free(kept);
    CHECK(sh("%s synth -m '%s' --voice '%s' --text hi -o '%s' >/dev/null 2>&1", COSY_BIN, good, good_voice, keep) == 0);
    kept = (char *)slurp(keep, &kn);
    CHECK(kept && kn > 44 && !memcmp(kept, "RIFF", 4));
    free(kept);
    CHECK(sh("test \"$(ls -A '%s')\" = keep.wav", outdir) == 0);
    /* prompt tokens that are not integers */
    snprintf(npy, sizeof npy, "%s", test_tmp("refuse-tokens.npy"));
    const char hdr[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    char head[128];
    memset(head, ' ', sizeof head);
    memcpy(head, hdr, sizeof hdr - 1);
    head[127] = '\n';
    const float vals[2] = {1.0f, 0.5f};
    FILE *f = fopen(npy, "wb");
    if (f) {
        fwrite(head, 1, sizeof head, f);
        fwrite(vals, 1, sizeof vals, f);
        fclose(f);
    }
    refused("voice import: float token ids", "refuse-tokens.npy", NULL,
            "voice import -m '%s' --fixture '%s' --llm-prompt-tokens '%s' -o \"$OUT/x.voice\"", good, test_data("cv2-tiny/golden"), npy);
}

/* spk2info.pt with a speaker whose llm_embedding (64 values) is shorter than its flow_embedding (192) */
static void test_short_speaker(void)
{
    printf("cosy voice import --speaker with a short embedding:\n");
    const char *d = variant("refuse-spk", test_data("cv2-tiny/model"), "spk2info.pt");
    static float feat[4 * 80];
    for (int i = 0; i < 4 * 80; i++) feat[i] = -1.0f;
    char path[1200], model[1200];
    snprintf(path, sizeof path, "%s/spk2info.pt", d);
    CHECK(ptw_write_short_speaker(path, feat) == 0);
    snprintf(model, sizeof model, "%s", test_tmp("refuse-spk.gguf"));
    CHECK(sh("%s convert '%s' -o '%s' >/dev/null 2>&1", COSY_BIN, d, model) == 0);
    refused("voice import: short llm_embedding", "refuse-spk.gguf", "llm_embedding", "voice import -m '%s' --speaker spkShort -o \"$OUT/x.voice\"",
            model);
    refused("synth: short llm_embedding", "refuse-spk.gguf", "llm_embedding", "synth -m '%s' --speaker spkShort --text hi -o \"$OUT/x.wav\"",
            model);
}

int main(void)
{
    (void)ptw_pickle; /* pt_writer.h helper unused here */
    snprintf(outdir, sizeof outdir, "%s", test_tmp("refuse-out"));
    char good[1200], voice_model[1200];
    snprintf(good, sizeof good, "%s", test_tmp("refuse-good.gguf"));
    snprintf(voice_model, sizeof voice_model, "%s", test_tmp("refuse-voice.gguf"));
    CHECK(sh("%s convert '%s' -o '%s' >/dev/null 2>&1", COSY_BIN, test_data("cv2-tiny/model"), good) == 0);
    CHECK(sh("%s convert '%s' -o '%s' >/dev/null 2>&1", COSY_BIN, test_data("cv2-voice-tiny/model"), voice_model) == 0);
    test_convert();
    test_model_files(good);
    test_voices(good, voice_model);
    test_short_speaker();
    return test_finish("test_cli_refusals");
}
