/*
 * wav.h — RIFF/WAVE files: reading PCM 8/16/24/32-bit and IEEE float 32/64 (mono or averaged to
 * mono, as the reference's load_wav does), writing 16-bit PCM or float32, whole or streamed
 * (header first with unknown sizes, patched on close when the output is seekable).
 */
#ifndef COSY_WAV_H
#define COSY_WAV_H

#include <stdint.h>
#include <stdio.h>
#include "cosy.h"

typedef struct {
    float *samples;      /* mono, in [-1, 1] */
    int64_t n_samples;
    int sample_rate;
    int channels;        /* of the file (the samples are their average) */
} cosy_wav;

cosy_status cosy_wav_read(const char *path, cosy_wav *out);
/* From memory (HTTP uploads); `name` is used in messages. */
cosy_status cosy_wav_parse(const void *data, size_t size, const char *name, cosy_wav *out);
void cosy_wav_free(cosy_wav *w);

typedef enum { COSY_WAV_PCM16 = 0, COSY_WAV_F32 = 1 } cosy_wav_format;

/* Streaming writer. */
typedef struct {
    FILE *fp;
    int own_fp;
    int sample_rate;
    cosy_wav_format format;
    int64_t n_samples;
    int seekable;
} cosy_wav_writer;

cosy_status cosy_wav_writer_open(cosy_wav_writer *w, const char *path, int sample_rate, cosy_wav_format format);
/* Writes to an existing stream (e.g. stdout); sizes stay "unknown" (0xffffffff) if it cannot seek. */
cosy_status cosy_wav_writer_attach(cosy_wav_writer *w, FILE *fp, int sample_rate, cosy_wav_format format);
cosy_status cosy_wav_writer_write(cosy_wav_writer *w, const float *samples, int64_t n);
cosy_status cosy_wav_writer_close(cosy_wav_writer *w);

/* The 44-byte header for n samples (n < 0: unknown length, for streams). */
void cosy_wav_header(unsigned char out[44], int sample_rate, cosy_wav_format format, int64_t n_samples);
/* float [-1, 1] to little-endian int16, with clipping and rounding as soundfile does. */
void cosy_float_to_pcm16(int16_t *out, const float *in, int64_t n);

#endif
