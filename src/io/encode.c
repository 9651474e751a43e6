/*
 * encode.c — streaming pcm/wav/mp3/opus/flac encoders (see encode.h).
 *
 * pcm, wav and flac quantise with cosy_float_to_pcm16 (clip, round, NaN → 0), so they carry the
 * very samples `cosy synth` writes; the float codecs (lame, opus) get a copy with NaN → 0 and
 * clipped to [-1, 1], since neither library promises anything for other values. The codec
 * libraries push bytes through one sink function, which remembers a failed write: after that the
 * libraries' own write callbacks refuse at once, and every public call reports the sink failure.
 */
#include "io/encode.h"
#include "core/error.h"
#include "io/wav.h"

#include <FLAC/stream_encoder.h>
#include <lame/lame.h>
#include <opusenc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 4096, MP3_BUF = BLOCK * 5 / 4 + 7200 }; /* lame.h: worst case 1.25 n + 7200 bytes */

struct cosy_encoder {
    cosy_audio_format format;
    int sample_rate;
    cosy_encoder_write_fn write;
    void *user;
    size_t bytes;          /* handed to write() so far */
    int sink_failed;       /* write() returned nonzero: nothing more is sent */
    int codec_failed;      /* the library reported an error of its own */
    int finished;
    int closing;           /* in cosy_encoder_free: the libraries must not write any more */
    float block[BLOCK];    /* mp3, opus: the cleaned input block */
    int16_t pcm16[BLOCK];
    lame_global_flags *lame;
    unsigned char *mp3;    /* MP3_BUF bytes */
    OggOpusEnc *opus;
    OggOpusComments *opus_comments;
    FLAC__StreamEncoder *flac;
    FLAC__int32 *flac_in;  /* BLOCK samples */
};

static const char *const format_names[] = {"pcm", "wav", "mp3", "opus", "flac"};
static const char *const format_mimes[] = {"audio/pcm", "audio/wav", "audio/mpeg", "audio/ogg", "audio/flac"};
#define N_FORMATS (int)(sizeof format_names / sizeof format_names[0])

cosy_status cosy_audio_format_from_name(const char *name, cosy_audio_format *out)
{
    if (!name || !out) return cosy_error(COSY_ERR_INVALID_ARG, "audio format: NULL argument");
    for (int i = 0; i < N_FORMATS; i++)
        if (!strcmp(name, format_names[i])) {
            *out = (cosy_audio_format)i;
            return COSY_OK;
        }
    return cosy_error(!strcmp(name, "aac") ? COSY_ERR_UNSUPPORTED : COSY_ERR_INVALID_ARG,
                      "audio format '%.64s' is not supported (pcm, wav, mp3, opus or flac)", name);
}

const char *cosy_audio_format_name(cosy_audio_format format)
{
    return (int)format >= 0 && (int)format < N_FORMATS ? format_names[format] : "?";
}

const char *cosy_audio_format_mime(cosy_audio_format format)
{
    return (int)format >= 0 && (int)format < N_FORMATS ? format_mimes[format] : "application/octet-stream";
}

/* The one way out: returns 0 if the bytes were taken. */
static int sink(cosy_encoder *e, const void *bytes, size_t n)
{
    if (e->sink_failed || e->closing) return -1;
    if (n == 0) return 0;
    if (e->write(e->user, bytes, n) != 0) {
        e->sink_failed = 1;
        return -1;
    }
    e->bytes += n;
    return 0;
}

static cosy_status sink_error(const cosy_encoder *e)
{
    return cosy_error(COSY_ERR_IO, "%s encoder: the client/sink failed to take the stream after %zu bytes",
                      format_names[e->format], e->bytes);
}

/* After a library call failed: the sink's failure if that was the cause, else the library's. */
static cosy_status codec_error(cosy_encoder *e, const char *what)
{
    if (e->sink_failed) return sink_error(e);
    e->codec_failed = 1;
    return cosy_error(COSY_ERR_INTERNAL, "%s encoder: %s", format_names[e->format], what);
}

/* ---- per-format callbacks handed to the libraries ---------------------------------------- */

static int opus_write_cb(void *user, const unsigned char *ptr, opus_int32 len)
{
    return sink(user, ptr, (size_t)len) ? 1 : 0;
}

static int opus_close_cb(void *user) { return 0; }

static FLAC__StreamEncoderWriteStatus flac_write_cb(const FLAC__StreamEncoder *enc, const FLAC__byte buffer[], size_t bytes,
                                                    uint32_t samples, uint32_t current_frame, void *user)
{
    return sink(user, buffer, bytes) ? FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR : FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

/* ---- set-up ------------------------------------------------------------------------------- */

static int is_mpeg_rate(int r)
{
    static const int rates[] = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (rates[i] == r) return 1;
    return 0;
}

static cosy_status start_mp3(cosy_encoder *e)
{
    e->mp3 = malloc(MP3_BUF);
    e->lame = lame_init();
    if (!e->mp3 || !e->lame) return cosy_error(COSY_ERR_NOMEM, "mp3 encoder: out of memory");
    lame_set_num_channels(e->lame, 1);
    lame_set_mode(e->lame, MONO);
    lame_set_in_samplerate(e->lame, e->sample_rate);
    lame_set_out_samplerate(e->lame, e->sample_rate); /* no resampling: MPEG-2 layer III at 24 kHz */
    lame_set_VBR(e->lame, vbr_off);
    lame_set_brate(e->lame, 64);
    lame_set_quality(e->lame, 5);
    lame_set_bWriteVbrTag(e->lame, 0); /* the Xing/LAME tag is filled in by seeking back: not in a stream */
    if (lame_init_params(e->lame) < 0) return codec_error(e, "lame_init_params failed");
    return COSY_OK;
}

static cosy_status start_opus(cosy_encoder *e)
{
    const OpusEncCallbacks callbacks = {opus_write_cb, opus_close_cb};
    int err = OPE_OK;
    e->opus_comments = ope_comments_create();
    if (!e->opus_comments) return cosy_error(COSY_ERR_NOMEM, "opus encoder: out of memory");
    e->opus = ope_encoder_create_callbacks(&callbacks, e, e->opus_comments, e->sample_rate, 1, 0, &err);
    if (!e->opus) return codec_error(e, ope_strerror(err));
    /* libopusenc's defaults (decision delay 96000 samples, muxing delay 48000) hold pages for
     * seconds; with these every 20 ms frame leaves in its own page as soon as it is encoded. */
    if ((err = ope_encoder_ctl(e->opus, OPE_SET_DECISION_DELAY(0))) != OPE_OK ||
        (err = ope_encoder_ctl(e->opus, OPE_SET_MUXING_DELAY(960))) != OPE_OK ||
        (err = ope_encoder_ctl(e->opus, OPUS_SET_BITRATE(64000))) != OPE_OK ||
        (err = ope_encoder_flush_header(e->opus)) != OPE_OK)
        return codec_error(e, ope_strerror(err));
    return COSY_OK;
}

static cosy_status start_flac(cosy_encoder *e)
{
    e->flac_in = malloc(sizeof(FLAC__int32) * BLOCK);
    e->flac = FLAC__stream_encoder_new();
    if (!e->flac_in || !e->flac) return cosy_error(COSY_ERR_NOMEM, "flac encoder: out of memory");
    FLAC__StreamEncoder *f = e->flac;
    /* compression level first: it sets the block size that the next call overrides */
    if (!FLAC__stream_encoder_set_channels(f, 1) || !FLAC__stream_encoder_set_bits_per_sample(f, 16) ||
        !FLAC__stream_encoder_set_sample_rate(f, (uint32_t)e->sample_rate) ||
        !FLAC__stream_encoder_set_compression_level(f, 5) || !FLAC__stream_encoder_set_blocksize(f, 1152) ||
        !FLAC__stream_encoder_set_total_samples_estimate(f, 0))
        return codec_error(e, "setting the stream parameters failed");
    /* No seek/tell callbacks: STREAMINFO keeps "unknown" total samples, frame sizes and MD5 (all
     * zero, which decoders read as "not known"; libFLAC 1.4 cannot switch the MD5 off). The header
     * (fLaC, STREAMINFO, VORBIS_COMMENT) is written inside init. */
    FLAC__StreamEncoderInitStatus init = FLAC__stream_encoder_init_stream(f, flac_write_cb, NULL, NULL, NULL, e);
    if (init != FLAC__STREAM_ENCODER_INIT_STATUS_OK) {
        if (init == FLAC__STREAM_ENCODER_INIT_STATUS_ENCODER_ERROR)
            return codec_error(e, FLAC__stream_encoder_get_resolved_state_string(f));
        return codec_error(e, FLAC__StreamEncoderInitStatusString[init]);
    }
    return COSY_OK;
}

cosy_status cosy_encoder_create(cosy_audio_format format, int sample_rate, cosy_encoder_write_fn write, void *user,
                                cosy_encoder **out)
{
    if (!out) return cosy_error(COSY_ERR_INVALID_ARG, "encoder: NULL output pointer");
    *out = NULL;
    if ((int)format < 0 || (int)format >= N_FORMATS)
        return cosy_error(COSY_ERR_INVALID_ARG, "encoder: audio format %d is not one of pcm, wav, mp3, opus, flac", (int)format);
    if (!write) return cosy_error(COSY_ERR_INVALID_ARG, "%s encoder: NULL write function", format_names[format]);
    if (sample_rate < 8000 || sample_rate > 192000)
        return cosy_error(COSY_ERR_INVALID_ARG, "%s encoder: sample rate %d Hz is out of range (8000 to 192000)",
                          format_names[format], sample_rate);
    if (format == COSY_AUDIO_MP3 && !is_mpeg_rate(sample_rate))
        return cosy_error(COSY_ERR_UNSUPPORTED,
                          "mp3 encoder: sample rate %d Hz is not an MPEG rate (8000, 11025, 12000, 16000, 22050, 24000, "
                          "32000, 44100, 48000)", sample_rate);
    cosy_encoder *e = calloc(1, sizeof *e);
    if (!e) return cosy_error(COSY_ERR_NOMEM, "%s encoder: out of memory", format_names[format]);
    e->format = format;
    e->sample_rate = sample_rate;
    e->write = write;
    e->user = user;
    cosy_status st = COSY_OK;
    switch (format) {
    case COSY_AUDIO_PCM: break;
    case COSY_AUDIO_WAV: {
        unsigned char h[44];
        cosy_wav_header(h, sample_rate, COSY_WAV_PCM16, -1); /* sizes 0xffffffff: unknown length */
        if (sink(e, h, sizeof h)) st = sink_error(e);
        break;
    }
    case COSY_AUDIO_MP3: st = start_mp3(e); break;
    case COSY_AUDIO_OPUS: st = start_opus(e); break;
    case COSY_AUDIO_FLAC: st = start_flac(e); break;
    }
    if (st != COSY_OK) {
        cosy_encoder_free(e);
        return st;
    }
    *out = e;
    return COSY_OK;
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* Copies x into e->block with NaN → 0 and clipped to [-1, 1]. */
static const float *clean(cosy_encoder *e, const float *x, int n)
{
    for (int i = 0; i < n; i++) {
        float v = x[i];
        e->block[i] = v != v ? 0.0f : v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
    }
    return e->block;
}

/* One block of n <= BLOCK samples. */
static cosy_status encode_block(cosy_encoder *e, const float *x, int n)
{
    switch (e->format) {
    case COSY_AUDIO_PCM:
    case COSY_AUDIO_WAV:
        cosy_float_to_pcm16(e->pcm16, x, n);
        return sink(e, e->pcm16, sizeof(int16_t) * (size_t)n) ? sink_error(e) : COSY_OK;
    case COSY_AUDIO_MP3: {
        int k = lame_encode_buffer_ieee_float(e->lame, clean(e, x, n), e->block, n, e->mp3, MP3_BUF);
        if (k < 0) return codec_error(e, "lame_encode_buffer_ieee_float failed");
        return sink(e, e->mp3, (size_t)k) ? sink_error(e) : COSY_OK;
    }
    case COSY_AUDIO_OPUS: {
        int err = ope_encoder_write_float(e->opus, clean(e, x, n), n);
        return err == OPE_OK && !e->sink_failed ? COSY_OK : codec_error(e, ope_strerror(err));
    }
    case COSY_AUDIO_FLAC:
        cosy_float_to_pcm16(e->pcm16, x, n);
        for (int i = 0; i < n; i++) e->flac_in[i] = e->pcm16[i];
        if (!FLAC__stream_encoder_process_interleaved(e->flac, e->flac_in, (uint32_t)n) || e->sink_failed)
            return codec_error(e, FLAC__stream_encoder_get_resolved_state_string(e->flac));
        return COSY_OK;
    }
    return cosy_error(COSY_ERR_INTERNAL, "encoder: bad format %d", (int)e->format);
}

/* Refuses calls on an encoder that already failed or finished. */
static cosy_status check_usable(cosy_encoder *e, const char *call)
{
    if (e->sink_failed) return sink_error(e);
    if (e->codec_failed)
        return cosy_error(COSY_ERR_INTERNAL, "%s encoder: %s after the encoder failed", format_names[e->format], call);
    if (e->finished) return cosy_error(COSY_ERR_INVALID_ARG, "%s encoder: %s after finish", format_names[e->format], call);
    return COSY_OK;
}

cosy_status cosy_encoder_write(cosy_encoder *e, const float *samples, int n)
{
    if (!e) return cosy_error(COSY_ERR_INVALID_ARG, "encoder: write on a NULL encoder");
    if (n < 0 || (n > 0 && !samples))
        return cosy_error(COSY_ERR_INVALID_ARG, "%s encoder: write of %d samples from %p", format_names[e->format], n,
                          (const void *)samples);
    COSY_TRY(check_usable(e, "write"));
    for (int at = 0; at < n; at += BLOCK) {
        int k = n - at < BLOCK ? n - at : BLOCK;
        COSY_TRY(encode_block(e, samples + at, k));
    }
    return COSY_OK;
}

cosy_status cosy_encoder_finish(cosy_encoder *e)
{
    if (!e) return cosy_error(COSY_ERR_INVALID_ARG, "encoder: finish on a NULL encoder");
    COSY_TRY(check_usable(e, "finish"));
    e->finished = 1;
    switch (e->format) {
    case COSY_AUDIO_PCM:
    case COSY_AUDIO_WAV: break;
    case COSY_AUDIO_MP3: {
        int k = lame_encode_flush(e->lame, e->mp3, MP3_BUF);
        if (k < 0) return codec_error(e, "lame_encode_flush failed");
        if (sink(e, e->mp3, (size_t)k)) return sink_error(e);
        break;
    }
    case COSY_AUDIO_OPUS: {
        int err = ope_encoder_drain(e->opus);
        if (err != OPE_OK || e->sink_failed) return codec_error(e, ope_strerror(err));
        break;
    }
    case COSY_AUDIO_FLAC:
        if (!FLAC__stream_encoder_finish(e->flac) || e->sink_failed)
            return codec_error(e, FLAC__stream_encoder_get_resolved_state_string(e->flac));
        break;
    }
    return COSY_OK;
}

size_t cosy_encoder_bytes_written(const cosy_encoder *e) { return e ? e->bytes : 0; }

void cosy_encoder_free(cosy_encoder *e)
{
    if (!e) return;
    e->closing = 1;
    if (e->lame) lame_close(e->lame);
    free(e->mp3);
    if (e->opus) ope_encoder_destroy(e->opus);
    if (e->opus_comments) ope_comments_destroy(e->opus_comments);
    if (e->flac) FLAC__stream_encoder_delete(e->flac);
    free(e->flac_in);
    free(e);
}
