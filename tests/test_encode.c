/*
 * test_encode.c — the streaming encoders (src/io/encode.c): every format encodes ~2 s of a test
 * signal fed in uneven chunks, is decoded back by the Debian tools a client would use (ffmpeg for
 * all; sox, flac, opusdec, mpg123 besides), and must match: pcm/wav/flac bit-exact to the pcm path,
 * mp3/opus in length (within the codec's documented padding) and SNR. Also: audio bytes leave early
 * (the latency each format adds is measured and bounded), a failing sink is reported and nothing
 * crashes or leaks afterwards, and bad arguments are refused.
 * Without the decoder tools the decode checks are skipped (exit 77, ctest's SKIP), never passed.
 */
#include "test.h"
#include "io/encode.h"

#include <stdint.h>
#include <sys/wait.h>

#define RATE 24000
#define N_SIGNAL (2 * RATE + 123) /* not a multiple of any codec frame */
#define MP3_FRAME 576             /* samples per MPEG-2 layer III frame */
#define MP3_DELAY 1105            /* lame's encoder delay (576) + the decoder's (529), left in without a LAME tag */

typedef struct {
    unsigned char *data;
    size_t size, cap;
    size_t fail_at;   /* nonzero: a write that would pass this many bytes fails */
    int calls_after_failure;
    int failed;
} membuf;

static int mem_write(void *user, const void *bytes, size_t n)
{
    membuf *m = user;
    if (m->failed) {
        m->calls_after_failure++;
        return 1;
    }
    if (m->fail_at && m->size + n > m->fail_at) {
        m->failed = 1;
        return 1;
    }
    if (m->size + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->size + n) cap *= 2;
        unsigned char *p = realloc(m->data, cap);
        if (!p) return 1;
        m->data = p;
        m->cap = cap;
    }
    memcpy(m->data + m->size, bytes, n);
    m->size += n;
    return 0;
}

/* 300 Hz + 1234 Hz tones and a 100 Hz → 4 kHz sweep, peak 0.6 */
static void make_signal(float *x, int n)
{
    const double pi = 3.14159265358979323846, dur = (double)n / RATE;
    for (int i = 0; i < n; i++) {
        double t = (double)i / RATE;
        double sweep_phase = 2 * pi * (100 * t + (4000 - 100) * t * t / (2 * dur));
        x[i] = (float)(0.25 * sin(2 * pi * 300 * t) + 0.1 * sin(2 * pi * 1234 * t) + 0.25 * sin(sweep_phase));
    }
}

static const int chunk_sizes[] = {1200, 4800, 7, 333, 1, 2400, 1919, 9000, 480};

/* Encodes x in the uneven chunks above; returns the status of the first failing call. */
static cosy_status encode_all(cosy_audio_format f, const float *x, int n, membuf *out)
{
    cosy_encoder *e;
    cosy_status st = cosy_encoder_create(f, RATE, mem_write, out, &e);
    if (st != COSY_OK) return st;
    for (int at = 0, k = 0; at < n && st == COSY_OK; k++) {
        int c = chunk_sizes[k % (int)(sizeof chunk_sizes / sizeof chunk_sizes[0])];
        if (c > n - at) c = n - at;
        st = cosy_encoder_write(e, x + at, c);
        at += c;
    }
    if (st == COSY_OK) st = cosy_encoder_finish(e);
    cosy_encoder_free(e);
    return st;
}

/* ---- what a stream holds so far ----------------------------------------------------------- */

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Complete Ogg pages, and how many of them carry audio (granule position > 0). */
static int ogg_pages(const unsigned char *p, size_t size, int *audio_pages)
{
    size_t at = 0;
    int pages = 0;
    *audio_pages = 0;
    while (at + 27 <= size && !memcmp(p + at, "OggS", 4)) {
        int segs = p[at + 26];
        if (at + 27 + (size_t)segs > size) break;
        size_t body = 0;
        for (int i = 0; i < segs; i++) body += p[at + 27 + i];
        if (at + 27 + segs + body > size) break;
        pages++;
        if (rd64(p + at + 6) > 0 && rd64(p + at + 6) != UINT64_MAX) ++*audio_pages;
        at += 27 + segs + body;
    }
    return pages;
}

/* Complete MPEG audio layer III frames from the start of the buffer. */
static int mp3_frames(const unsigned char *p, size_t size)
{
    static const int kbps_v2[16] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0};
    static const int kbps_v1[16] = {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0};
    static const int rates[4][3] = {{11025, 12000, 8000}, {0, 0, 0}, {22050, 24000, 16000}, {44100, 48000, 32000}};
    size_t at = 0;
    int frames = 0;
    while (at + 4 <= size) {
        const unsigned char *h = p + at;
        int version = h[1] >> 3 & 3, layer = h[1] >> 1 & 3, br = h[2] >> 4, sr = h[2] >> 2 & 3, pad = h[2] >> 1 & 1;
        if (h[0] != 0xff || (h[1] & 0xe0) != 0xe0 || layer != 1 || version == 1 || sr == 3) break;
        int kbps = version == 3 ? kbps_v1[br] : kbps_v2[br];
        if (!kbps) break;
        size_t len = (size_t)((version == 3 ? 144000 : 72000) * kbps / rates[version][sr] + pad);
        if (at + len > size) break;
        frames++;
        at += len;
    }
    return frames;
}

/* Whether the bytes after the header (`header` bytes, written at create) include encoded audio. */
static int audio_started(cosy_audio_format f, const membuf *m, size_t header)
{
    int audio_pages = 0;
    switch (f) {
    case COSY_AUDIO_PCM:
    case COSY_AUDIO_WAV: return m->size > header;
    case COSY_AUDIO_MP3: return mp3_frames(m->data, m->size) >= 1;
    case COSY_AUDIO_OPUS: ogg_pages(m->data, m->size, &audio_pages); return audio_pages >= 1;
    case COSY_AUDIO_FLAC: /* a frame: sync code 0xfff8 (fixed block size) */
        return m->size > header + 2 && m->data[header] == 0xff && m->data[header + 1] == 0xf8;
    }
    return 0;
}

/* Feeds 1 ms chunks until encoded audio appears; returns the input (ms) it took, or -1. Also
 * checks that 0.5 s of input in the test's uneven chunks is enough. */
static double first_audio_ms(cosy_audio_format f, const float *x)
{
    enum { STEP = RATE / 1000 };
    membuf m = {0};
    cosy_encoder *e;
    double ms = -1;
    CHECK_OK(cosy_encoder_create(f, RATE, mem_write, &m, &e));
    if (!e) return -1;
    size_t header = m.size;
    for (int at = 0; at + STEP <= RATE; at += STEP) {
        CHECK_OK(cosy_encoder_write(e, x + at, STEP));
        if (audio_started(f, &m, header)) {
            ms = (at + STEP) * 1000.0 / RATE;
            break;
        }
    }
    cosy_encoder_free(e);
    free(m.data);

    membuf half = {0};
    CHECK_OK(cosy_encoder_create(f, RATE, mem_write, &half, &e));
    if (!e) return ms;
    header = half.size;
    CHECK_OK(cosy_encoder_write(e, x, 1200));
    CHECK_OK(cosy_encoder_write(e, x + 1200, 4800));
    CHECK_OK(cosy_encoder_write(e, x + 6000, 6000));
    CHECK(audio_started(f, &half, header));
    if (f == COSY_AUDIO_OPUS) {
        int audio_pages, pages = ogg_pages(half.data, half.size, &audio_pages);
        CHECK(pages >= 3 && audio_pages >= 1);
        printf("opus: after 0.5 s: %d pages, %d with audio\n", pages, audio_pages);
    }
    if (f == COSY_AUDIO_MP3) printf("mp3: after 0.5 s: %d frames\n", mp3_frames(half.data, half.size));
    cosy_encoder_free(e);
    free(half.data);
    return ms;
}

/* ---- decoding with the command-line tools ------------------------------------------------- */

static int have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static int write_file(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = fwrite(data, 1, size, fp);
    return fclose(fp) == 0 && w == size ? 0 : -1;
}

/* Runs `cmd` (which writes raw s16le mono to `raw`) and reads the samples; NULL on failure. */
static int16_t *decode_with(const char *cmd, const char *raw, long *n)
{
    *n = 0;
    remove(raw);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        fprintf(stderr, "decoder failed (%d): %s\n", rc, cmd);
        return NULL;
    }
    FILE *fp = fopen(raw, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long bytes = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    int16_t *s = malloc((size_t)(bytes > 0 ? bytes : 2));
    if (s && fread(s, 1, (size_t)bytes, fp) != (size_t)bytes) {
        free(s);
        s = NULL;
    }
    fclose(fp);
    *n = bytes / 2;
    return s;
}

/* SNR (dB) of dec against ref, with dec delayed by the lag in [lag_min, lag_max] that fits best. */
static double snr_best_lag(const int16_t *ref, long n_ref, const int16_t *dec, long n_dec, int lag_min, int lag_max, int *lag_out)
{
    double best = -1e9;
    *lag_out = lag_min;
    for (int lag = lag_min; lag <= lag_max; lag++) {
        double sig = 0, noise = 0;
        for (long i = 0; i < n_ref; i++) {
            long j = i + lag;
            double d = j >= 0 && j < n_dec ? dec[j] : 0;
            sig += (double)ref[i] * ref[i];
            noise += (ref[i] - d) * (ref[i] - d);
        }
        double snr = 10 * log10(sig / (noise > 0 ? noise : 1e-9));
        if (snr > best) {
            best = snr;
            *lag_out = lag;
        }
    }
    return best;
}

typedef struct {
    const char *tool, *cmd; /* cmd: printf format with the input then the output path */
} decoder;

static void check_decoders(const float *x, const membuf *pcm)
{
    const int16_t *ref = (const int16_t *)pcm->data;
    const long n_ref = (long)(pcm->size / 2);
    static const struct {
        cosy_audio_format f;
        const char *ext;
        decoder dec[2];
    } cases[] = {
        {COSY_AUDIO_WAV, "wav", {{"ffmpeg", NULL}, {"sox", "sox -V1 %s -t raw -e signed -b 16 -c 1 -r 24000 %s"}}},
        {COSY_AUDIO_FLAC, "flac", {{"ffmpeg", NULL}, {"flac", "flac -d -s -f --force-raw-format --endian=little --sign=signed -o %2$s %1$s"}}},
        {COSY_AUDIO_OPUS, "opus", {{"ffmpeg", NULL}, {"opusdec", "opusdec --quiet --no-dither --rate 24000 %s %s"}}},
        {COSY_AUDIO_MP3, "mp3", {{"ffmpeg", NULL}, {"mpg123", "mpg123 -q -e s16 -s %s > %s"}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        membuf m = {0};
        char in[512], raw[512], cmd[1200];
        CHECK_OK(encode_all(cases[c].f, x, N_SIGNAL, &m));
        snprintf(in, sizeof in, "%s_stream.%s", test_tmp("encode"), cases[c].ext);
        snprintf(raw, sizeof raw, "%s", test_tmp("encode_decoded.raw"));
        CHECK(write_file(in, m.data, m.size) == 0);
        printf("%s: %zu bytes for %.2f s\n", cases[c].ext, m.size, (double)N_SIGNAL / RATE);
        for (int d = 0; d < 2; d++) {
            const decoder *dec = &cases[c].dec[d];
            if (dec->cmd)
                snprintf(cmd, sizeof cmd, dec->cmd, in, raw);
            else
                snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -i %s -f s16le -acodec pcm_s16le -ac 1 -ar 24000 %s", in, raw);
            long n;
            int16_t *s = decode_with(cmd, raw, &n);
            CHECK(s != NULL);
            if (!s) continue;
            if (cases[c].f == COSY_AUDIO_WAV || cases[c].f == COSY_AUDIO_FLAC) {
                CHECK(n == n_ref);
                CHECK(n == n_ref && !memcmp(s, ref, (size_t)n * 2));
                printf("  %-8s %ld samples, bit-exact: %s\n", dec->tool, n, n == n_ref && !memcmp(s, ref, (size_t)n * 2) ? "yes" : "NO");
            } else if (cases[c].f == COSY_AUDIO_OPUS) {
                /* pre-skip and the end granule trim the stream to the input exactly */
                int lag;
                double snr = snr_best_lag(ref, n_ref, s, n, -8, 8, &lag);
                printf("  %-8s %ld samples (input %ld), SNR %.1f dB at lag %d\n", dec->tool, n, n_ref, snr, lag);
                CHECK(n == n_ref);
                CHECK(lag == 0);
                CHECK(snr >= 28); /* measured 34.3 dB (libopus 1.3.1, 64 kbps) */
            } else {
                /* No LAME tag: the decoders keep the encoder+decoder delay (1105 samples) and the
                 * padding; lame 3.100 sends the input rounded up to whole frames plus two more
                 * (measured for n = 1 ... 60000). */
                int lag;
                double snr = snr_best_lag(ref, n_ref, s, n, MP3_DELAY - 60, MP3_DELAY + 60, &lag);
                printf("  %-8s %ld samples (input %ld, %+ld), SNR %.1f dB at lag %d\n", dec->tool, n, n_ref, n - n_ref, snr, lag);
                CHECK(n % MP3_FRAME == 0);
                CHECK(n == ((n_ref + MP3_FRAME - 1) / MP3_FRAME + 2) * MP3_FRAME);
                CHECK(lag == MP3_DELAY);
                CHECK(snr >= 22); /* measured 26.0 dB (lame 3.100, 64 kbps, quality 5) */
            }
            free(s);
        }
        free(m.data);
    }
}

/* ---- failures and arguments --------------------------------------------------------------- */

static void check_sink_failure(const float *x)
{
    for (int f = COSY_AUDIO_PCM; f <= COSY_AUDIO_FLAC; f++) {
        /* fails inside create (wav, opus, flac write their headers there), then mid-stream */
        const size_t fail_at[] = {10, 3000};
        for (int k = 0; k < 2; k++) {
            membuf m = {.fail_at = fail_at[k]};
            cosy_encoder *e = NULL;
            cosy_status st = cosy_encoder_create((cosy_audio_format)f, RATE, mem_write, &m, &e);
            if (st != COSY_OK) {
                CHECK(k == 0 && f != COSY_AUDIO_PCM && f != COSY_AUDIO_MP3);
                CHECK(e == NULL);
                CHECK_FAILS(st, COSY_ERR_IO, "sink failed");
                free(m.data);
                continue;
            }
            for (int at = 0; at < N_SIGNAL && st == COSY_OK; at += 480) st = cosy_encoder_write(e, x + at, 480);
            if (st == COSY_OK) st = cosy_encoder_finish(e);
            CHECK_FAILS(st, COSY_ERR_IO, "sink failed");
            CHECK_FAILS(cosy_encoder_write(e, x, 480), COSY_ERR_IO, "sink failed");
            CHECK_FAILS(cosy_encoder_finish(e), COSY_ERR_IO, "sink failed");
            cosy_encoder_free(e);
            CHECK(m.failed);
            CHECK(m.calls_after_failure == 0);
            CHECK(m.size <= fail_at[k]);
            free(m.data);
        }
    }
}

static void check_arguments(const float *x)
{
    membuf m = {0};
    cosy_encoder *e = (cosy_encoder *)&m;
    cosy_audio_format f;
    CHECK_OK(cosy_audio_format_from_name("opus", &f));
    CHECK(f == COSY_AUDIO_OPUS);
    CHECK_OK(cosy_audio_format_from_name("pcm", &f));
    CHECK(f == COSY_AUDIO_PCM);
    CHECK_FAILS(cosy_audio_format_from_name("aac", &f), COSY_ERR_UNSUPPORTED, "aac");
    CHECK_FAILS(cosy_audio_format_from_name("OGG", &f), COSY_ERR_INVALID_ARG, "pcm, wav, mp3, opus or flac");
    CHECK_FAILS(cosy_audio_format_from_name(NULL, &f), COSY_ERR_INVALID_ARG, "NULL");
    CHECK(!strcmp(cosy_audio_format_mime(COSY_AUDIO_MP3), "audio/mpeg"));
    CHECK(!strcmp(cosy_audio_format_mime(COSY_AUDIO_OPUS), "audio/ogg"));
    CHECK(!strcmp(cosy_audio_format_mime((cosy_audio_format)99), "application/octet-stream"));
    CHECK(!strcmp(cosy_audio_format_name(COSY_AUDIO_FLAC), "flac"));

    CHECK_FAILS(cosy_encoder_create(COSY_AUDIO_WAV, 0, mem_write, &m, &e), COSY_ERR_INVALID_ARG, "sample rate 0");
    CHECK(e == NULL);
    CHECK_FAILS(cosy_encoder_create(COSY_AUDIO_FLAC, -24000, mem_write, &m, &e), COSY_ERR_INVALID_ARG, "out of range");
    CHECK_FAILS(cosy_encoder_create(COSY_AUDIO_OPUS, 192001, mem_write, &m, &e), COSY_ERR_INVALID_ARG, "out of range");
    CHECK_FAILS(cosy_encoder_create(COSY_AUDIO_MP3, 22000, mem_write, &m, &e), COSY_ERR_UNSUPPORTED, "MPEG rate");
    CHECK_FAILS(cosy_encoder_create((cosy_audio_format)7, RATE, mem_write, &m, &e), COSY_ERR_INVALID_ARG, "format 7");
    CHECK_FAILS(cosy_encoder_create(COSY_AUDIO_PCM, RATE, NULL, &m, &e), COSY_ERR_INVALID_ARG, "NULL write");
    CHECK_FAILS(cosy_encoder_create(COSY_AUDIO_PCM, RATE, mem_write, &m, NULL), COSY_ERR_INVALID_ARG, "NULL");
    CHECK(m.size == 0);
    CHECK_FAILS(cosy_encoder_write(NULL, x, 10), COSY_ERR_INVALID_ARG, "NULL encoder");
    CHECK_FAILS(cosy_encoder_finish(NULL), COSY_ERR_INVALID_ARG, "NULL encoder");
    cosy_encoder_free(NULL);

    for (int g = COSY_AUDIO_PCM; g <= COSY_AUDIO_FLAC; g++) {
        membuf out = {0};
        CHECK_OK(cosy_encoder_create((cosy_audio_format)g, g == COSY_AUDIO_MP3 ? 16000 : 8000, mem_write, &out, &e));
        if (!e) continue;
        CHECK_FAILS(cosy_encoder_write(e, x, -1), COSY_ERR_INVALID_ARG, "-1 samples");
        CHECK_FAILS(cosy_encoder_write(e, NULL, 5), COSY_ERR_INVALID_ARG, "5 samples");
        CHECK_OK(cosy_encoder_write(e, NULL, 0));
        CHECK_OK(cosy_encoder_write(e, x, 100));
        CHECK_OK(cosy_encoder_finish(e));
        CHECK_FAILS(cosy_encoder_write(e, x, 100), COSY_ERR_INVALID_ARG, "after finish");
        CHECK_FAILS(cosy_encoder_finish(e), COSY_ERR_INVALID_ARG, "after finish");
        CHECK(cosy_encoder_bytes_written(e) == out.size);
        cosy_encoder_free(e);
        free(out.data);
    }

    /* pcm: clipping, rounding and NaN as cosy_float_to_pcm16; wav: the streamed header */
    const float odd[] = {NAN, INFINITY, -INFINITY, 2.0f, -2.0f, 0.5f, -0.25f};
    const int16_t want[] = {0, 32767, -32768, 32767, -32768, 16384, -8192};
    membuf pcm = {0}, wav = {0};
    CHECK_OK(encode_all(COSY_AUDIO_PCM, odd, 7, &pcm));
    CHECK(pcm.size == sizeof want && !memcmp(pcm.data, want, sizeof want));
    CHECK_OK(encode_all(COSY_AUDIO_WAV, odd, 7, &wav));
    CHECK(wav.size == 44 + sizeof want && !memcmp(wav.data, "RIFF\xff\xff\xff\xffWAVEfmt ", 16) &&
          !memcmp(wav.data + 36, "data\xff\xff\xff\xff", 8) && !memcmp(wav.data + 44, want, sizeof want));
    free(pcm.data);
    free(wav.data);
}

int main(void)
{
    float *x = malloc(sizeof(float) * N_SIGNAL);
    make_signal(x, N_SIGNAL);
    check_arguments(x);
    check_sink_failure(x);

    /* first encoded audio, per format (1 ms chunks); bounds are the measured values (encode.h) */
    const double bound_ms[] = {1, 1, 60, 25, 50};
    for (int f = COSY_AUDIO_PCM; f <= COSY_AUDIO_FLAC; f++) {
        double ms = first_audio_ms((cosy_audio_format)f, x);
        printf("%s: first audio bytes after %.0f ms of input\n", cosy_audio_format_name((cosy_audio_format)f), ms);
        CHECK(ms > 0 && ms <= bound_ms[f]);
    }

    membuf pcm = {0};
    CHECK_OK(encode_all(COSY_AUDIO_PCM, x, N_SIGNAL, &pcm));
    CHECK(pcm.size == 2 * (size_t)N_SIGNAL);

    const char *tools[] = {"ffmpeg", "sox", "flac", "opusdec", "mpg123"};
    int missing = 0;
    for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++)
        if (!have_tool(tools[i])) {
            printf("SKIP decode checks: %s is not installed (scripts/deps.sh installs it)\n", tools[i]);
            missing = 1;
        }
    if (!missing) check_decoders(x, &pcm);
    free(pcm.data);
    free(x);
    int rc = test_finish("test_encode");
    return rc == 0 && missing ? 77 : rc;
}
