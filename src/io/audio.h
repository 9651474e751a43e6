/*
 * audio.h — decoding prompt audio of any common format through libsndfile: WAV (PCM 8/16/24/32-bit,
 * IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE), FLAC, Ogg/Vorbis, Ogg/Opus and whatever else the
 * installed libsndfile reads.
 *
 * This reproduces the reference's `torchaudio.load(wav, backend='soundfile')` followed by
 * `speech.mean(dim=0)` (cosyvoice/utils/file_utils.py, load_wav): soundfile is a binding of
 * libsndfile and reads float32 with libsndfile's own normalisation (PCM16 / 32768, PCM24 / 2^23,
 * float as stored), and the channels are averaged in float32 (summed in channel order, then divided
 * by the channel count, as torch's mean does). src/io/wav.c stays the reader for our own output
 * files and the writer; this one is for audio users bring.
 */
#ifndef COSY_AUDIO_H
#define COSY_AUDIO_H

#include <stddef.h>
#include "io/wav.h"

/* Decodes `path` to mono float32 in out (samples, n_samples, sample_rate, channels of the file).
 * Unreadable, empty or unsupported files fail with a message naming the file and the problem. */
cosy_status cosy_audio_read(const char *path, cosy_wav *out);
/* The same from memory (an upload); `name` is used in messages. */
cosy_status cosy_audio_parse(const void *data, size_t size, const char *name, cosy_wav *out);

#endif
