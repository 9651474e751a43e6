/*
 * encode.h — streaming audio encoders for the HTTP server's `response_format`s (OpenAI names:
 * pcm, wav, mp3, opus, flac). Mono float samples in [-1, 1] go in, chunk by chunk, as the session
 * produces them; encoded bytes go out through the caller's write function as soon as the codec
 * has them, so a client hears the first chunk without waiting for the whole answer.
 *
 *   cosy_encoder *e;
 *   COSY_TRY(cosy_encoder_create(COSY_AUDIO_OPUS, 24000, send_to_client, conn, &e));
 *   while (more audio) st = cosy_encoder_write(e, chunk, n);   // bytes leave inside this call
 *   st = cosy_encoder_finish(e);                               // tail, trailers, end of stream
 *   cosy_encoder_free(e);                                      // always, on every path
 *
 * Formats and what they add to the time to first audio byte (measured at 24 kHz by
 * tests/test_encode.c, feeding 1 ms chunks; header bytes leave in cosy_encoder_create):
 *   pcm   raw s16le mono (cosy_float_to_pcm16), no header; 0 ms: bytes leave with every write.
 *   wav   44-byte RIFF header with unknown sizes (0xffffffff, as streaming servers send), then s16le;
 *         0 ms. ffmpeg and sox read it to the end of the stream.
 *   mp3   libmp3lame, MPEG-2 layer III at the input rate (24 kHz), mono, 64 kbps CBR, no Xing/LAME
 *         tag (it is filled in by seeking back). The first 576-sample frame leaves after 58 ms of
 *         input. Without the tag decoders cannot drop the codec delay: decoded audio starts with
 *         1105 samples (46 ms) of priming (576 encoder + 529 decoder delay), and n samples in
 *         decode to (ceil(n / 576) + 2) * 576 (lame 3.100; ffmpeg and mpg123 alike).
 *   opus  libopusenc, Ogg Opus, 64 kbps, 20 ms frames, decision delay 0 and muxing delay 20 ms (the
 *         defaults hold pages back for seconds); the headers (OpusHead, OpusTags) leave at create,
 *         then one page per 20 ms frame: the first audio page leaves after 22 ms of input. The
 *         pre-skip and the final granule position trim the decoded audio to exactly the input.
 *   flac  libFLAC, 16-bit, block size 1152 (48 ms), compression level 5. STREAMINFO goes out first
 *         with unknown total samples and MD5 (no seek back; `flac -d` warns that the MD5 is unset);
 *         a frame leaves once one sample past its block is in: 49 ms. Lossless: decodes to exactly
 *         the pcm bytes.
 *
 * A failing write function (client gone) makes the current and every later call return
 * COSY_ERR_IO saying the sink failed; the encoder is then only good for cosy_encoder_free.
 */
#ifndef COSY_ENCODE_H
#define COSY_ENCODE_H

#include <stddef.h>
#include "cosy.h"

typedef enum {
    COSY_AUDIO_PCM = 0,
    COSY_AUDIO_WAV,
    COSY_AUDIO_MP3,
    COSY_AUDIO_OPUS,
    COSY_AUDIO_FLAC,
} cosy_audio_format;

/* "pcm", "wav", "mp3", "opus", "flac" (OpenAI's response_format values; "aac" is refused as
 * COSY_ERR_UNSUPPORTED, anything else as COSY_ERR_INVALID_ARG, with a message listing the names). */
cosy_status cosy_audio_format_from_name(const char *name, cosy_audio_format *out);
/* "pcm", "wav", ...; "?" for a value outside the enum. */
const char *cosy_audio_format_name(cosy_audio_format format);
/* Content-Type: audio/pcm (raw s16le; not audio/L16, which is big-endian), audio/wav, audio/mpeg,
 * audio/ogg (Opus in Ogg), audio/flac; "application/octet-stream" outside the enum. */
const char *cosy_audio_format_mime(cosy_audio_format format);

/* Receives encoded bytes; returns 0 when they were taken, nonzero when the sink failed. */
typedef int (*cosy_encoder_write_fn)(void *user, const void *bytes, size_t n);

typedef struct cosy_encoder cosy_encoder;

/* Sample rate: 8000 to 192000 Hz; mp3 needs an MPEG rate (8000, 11025, 12000, 16000, 22050, 24000,
 * 32000, 44100, 48000). The header bytes (wav, opus, flac) are written before this returns. */
cosy_status cosy_encoder_create(cosy_audio_format format, int sample_rate, cosy_encoder_write_fn write, void *user,
                                cosy_encoder **out);
/* Encodes n >= 0 mono samples and writes whatever bytes are complete now. */
cosy_status cosy_encoder_write(cosy_encoder *e, const float *samples, int n);
/* Flushes the codec's tail and writes the end of the stream; later writes fail. */
cosy_status cosy_encoder_finish(cosy_encoder *e);
/* Bytes handed to the write function so far. */
size_t cosy_encoder_bytes_written(const cosy_encoder *e);
/* NULL is fine. Does not write (an unfinished stream is simply cut off). */
void cosy_encoder_free(cosy_encoder *e);

#endif
