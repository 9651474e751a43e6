/* wav.c — WAVE reading and writing (see wav.h). */
#include "io/wav.h"
#include "core/error.h"
#include "core/file.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

#define MAX_WAV_SAMPLES (1ll << 31)

cosy_status cosy_wav_parse(const void *data, size_t size, const char *name, cosy_wav *out)
{
    memset(out, 0, sizeof *out);
    const unsigned char *p = data;
    if (size < 12 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WAVE", 4) != 0)
        return cosy_error(COSY_ERR_FORMAT, "%s: not a RIFF/WAVE file", name);
    size_t pos = 12;
    int have_fmt = 0;
    unsigned format = 0, channels = 0, bits = 0;
    uint32_t rate = 0;
    const unsigned char *pcm = NULL;
    size_t pcm_bytes = 0;
    while (pos + 8 <= size) {
        uint32_t len = rd32(p + pos + 4);
        const unsigned char *body = p + pos + 8;
        size_t avail = size - pos - 8;
        if (!memcmp(p + pos, "fmt ", 4)) {
            if (len < 16 || len > avail) return cosy_error(COSY_ERR_FORMAT, "%s: bad fmt chunk at byte %zu", name, pos);
            format = rd16(body);
            channels = rd16(body + 2);
            rate = rd32(body + 4);
            bits = rd16(body + 14);
            if (format == 0xfffe && len >= 26) format = rd16(body + 24); /* WAVE_FORMAT_EXTENSIBLE: subformat GUID */
            have_fmt = 1;
        } else if (!memcmp(p + pos, "data", 4)) {
            pcm = body;
            /* streamed files may carry 0 or 0xffffffff: take what is there */
            pcm_bytes = (len == 0 || len == 0xffffffffu || len > avail) ? avail : len;
            break;
        }
        if (len > avail) return cosy_error(COSY_ERR_FORMAT, "%s: chunk at byte %zu runs past the end: truncated?", name, pos);
        pos += 8 + (size_t)len + (len & 1);
    }
    if (!have_fmt) return cosy_error(COSY_ERR_FORMAT, "%s: no fmt chunk", name);
    if (!pcm) return cosy_error(COSY_ERR_FORMAT, "%s: no data chunk", name);
    if (channels < 1 || channels > 64) return cosy_error(COSY_ERR_FORMAT, "%s: %u channels", name, channels);
    if (rate < 1000 || rate > 768000) return cosy_error(COSY_ERR_FORMAT, "%s: sample rate %u Hz is out of range", name, rate);
    int is_float = format == 3;
    if (!((format == 1 && (bits == 8 || bits == 16 || bits == 24 || bits == 32)) || (is_float && (bits == 32 || bits == 64))))
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: WAVE format %u with %u bits per sample (PCM 8/16/24/32 or float 32/64 supported)", name,
                          format, bits);
    size_t frame = (size_t)channels * (bits / 8);
    int64_t n = (int64_t)(pcm_bytes / frame);
    if (n > MAX_WAV_SAMPLES) return cosy_error(COSY_ERR_FORMAT, "%s: too many samples", name);
    out->samples = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!out->samples) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < n; i++) {
        double acc = 0;
        for (unsigned c = 0; c < channels; c++) {
            const unsigned char *s = pcm + (size_t)i * frame + c * (bits / 8);
            double v;
            if (is_float && bits == 32) { float f; memcpy(&f, s, 4); v = f; }
            else if (is_float) { double d; memcpy(&d, s, 8); v = d; }
            else if (bits == 8) v = ((int)s[0] - 128) / 128.0;
            else if (bits == 16) v = (int16_t)rd16(s) / 32768.0;
            else if (bits == 24) v = (double)((int32_t)((uint32_t)s[0] << 8 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 24) >> 8) / 8388608.0;
            else v = (int32_t)rd32(s) / 2147483648.0;
            acc += v;
        }
        out->samples[i] = (float)(acc / channels);
    }
    out->n_samples = n;
    out->sample_rate = (int)rate;
    out->channels = (int)channels;
    return COSY_OK;
}

cosy_status cosy_wav_read(const char *path, cosy_wav *out)
{
    cosy_mapped_file f;
    memset(out, 0, sizeof *out);
    COSY_TRY(cosy_file_map(path, &f));
    cosy_status st = cosy_wav_parse(f.data, f.size, path, out);
    cosy_file_unmap(&f);
    return st;
}

void cosy_wav_free(cosy_wav *w)
{
    free(w->samples);
    memset(w, 0, sizeof *w);
}

static void wr32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }
static void wr16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }

void cosy_wav_header(unsigned char h[44], int sample_rate, cosy_wav_format format, int64_t n_samples)
{
    unsigned bytes = format == COSY_WAV_F32 ? 4 : 2;
    uint32_t data = n_samples < 0 || (uint64_t)n_samples * bytes > 0xffffffffu - 36 ? 0xffffffffu : (uint32_t)(n_samples * bytes);
    memcpy(h, "RIFF", 4);
    wr32(h + 4, data == 0xffffffffu ? 0xffffffffu : data + 36);
    memcpy(h + 8, "WAVEfmt ", 8);
    wr32(h + 16, 16);
    wr16(h + 20, format == COSY_WAV_F32 ? 3 : 1);
    wr16(h + 22, 1);
    wr32(h + 24, (uint32_t)sample_rate);
    wr32(h + 28, (uint32_t)sample_rate * bytes);
    wr16(h + 32, bytes);
    wr16(h + 34, bytes * 8);
    memcpy(h + 36, "data", 4);
    wr32(h + 40, data);
}

void cosy_float_to_pcm16(int16_t *out, const float *in, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = in[i];
        if (!(v == v)) v = 0; /* NaN */
        double s = (double)v * 32767.0;
        if (s > 32767.0) s = 32767.0;
        if (s < -32768.0) s = -32768.0;
        out[i] = (int16_t)lrint(s);
    }
}

static cosy_status start(cosy_wav_writer *w)
{
    unsigned char h[44];
    cosy_wav_header(h, w->sample_rate, w->format, -1);
    if (fwrite(h, 1, 44, w->fp) != 44) return cosy_error(COSY_ERR_IO, "wav: write failed: %s", strerror(errno));
    return COSY_OK;
}

cosy_status cosy_wav_writer_open(cosy_wav_writer *w, const char *path, int sample_rate, cosy_wav_format format)
{
    memset(w, 0, sizeof *w);
    w->fp = fopen(path, "wb");
    if (!w->fp) return cosy_error(COSY_ERR_IO, "%s: %s", path, strerror(errno));
    w->own_fp = 1;
    w->sample_rate = sample_rate;
    w->format = format;
    w->seekable = 1;
    return start(w);
}

cosy_status cosy_wav_writer_attach(cosy_wav_writer *w, FILE *fp, int sample_rate, cosy_wav_format format)
{
    memset(w, 0, sizeof *w);
    w->fp = fp;
    w->sample_rate = sample_rate;
    w->format = format;
    w->seekable = ftell(fp) >= 0;
    return start(w);
}

cosy_status cosy_wav_writer_write(cosy_wav_writer *w, const float *samples, int64_t n)
{
    if (w->format == COSY_WAV_F32) {
        if (fwrite(samples, 4, (size_t)n, w->fp) != (size_t)n) return cosy_error(COSY_ERR_IO, "wav: write failed: %s", strerror(errno));
    } else {
        int16_t buf[4096];
        for (int64_t at = 0; at < n; at += 4096) {
            int64_t k = n - at < 4096 ? n - at : 4096;
            cosy_float_to_pcm16(buf, samples + at, k);
            if (fwrite(buf, 2, (size_t)k, w->fp) != (size_t)k) return cosy_error(COSY_ERR_IO, "wav: write failed: %s", strerror(errno));
        }
    }
    w->n_samples += n;
    return COSY_OK;
}

cosy_status cosy_wav_writer_close(cosy_wav_writer *w)
{
    cosy_status st = COSY_OK;
    if (!w->fp) return st;
    if (w->seekable && fseek(w->fp, 0, SEEK_SET) == 0) {
        unsigned char h[44];
        cosy_wav_header(h, w->sample_rate, w->format, w->n_samples);
        if (fwrite(h, 1, 44, w->fp) != 44) st = cosy_error(COSY_ERR_IO, "wav: write failed: %s", strerror(errno));
        fseek(w->fp, 0, SEEK_END);
    }
    if (fflush(w->fp) != 0 && st == COSY_OK) st = cosy_error(COSY_ERR_IO, "wav: write failed: %s", strerror(errno));
    if (w->own_fp && fclose(w->fp) != 0 && st == COSY_OK) st = cosy_error(COSY_ERR_IO, "wav: write failed: %s", strerror(errno));
    w->fp = NULL;
    return st;
}
