/*
 * t2w_hift.h — the HiFT half of CosyVoice2's streaming token2wav (cosyvoice/cli/model.py,
 * CosyVoice2Model.token2wav with its hift_cache_dict, and cosyvoice/utils/common.py fade_in_out):
 * one small stateful object per utterance that turns the flow's new mel frames, chunk after chunk,
 * into the audio the reference emits.
 *
 * Per chunk (the reference's order):
 *   mel_in = concat(the previous chunk's last 8 HiFT input frames, the new frames)
 *   wav, source = HiFT(mel_in, cache_source = the previous source's last 8 * 480 samples)
 *   wav[:3840] = wav[:3840] * hamming[:3840] + previous tail * hamming[3840:]   (np.hamming(7680), in
 *                double as numpy does, not re-clamped: the halves sum to ~1.08)
 *   not final: keep mel_in[-8:], source[-3840:] and wav[-3840:] (after the fade), emit wav[:-3840]
 *   final:     emit all of wav and forget the state (ready for the next utterance)
 * The first chunk has no caches and no fade. A single final call is the non-streaming path.
 *
 * Buffers are sized at creation for `max_frames` new frames per chunk and grow (once) if a longer
 * chunk arrives; nothing is allocated per chunk in steady streaming.
 */
#ifndef COSY_T2W_HIFT_H
#define COSY_T2W_HIFT_H

#include "cosy.h"
#include "model/hift/hift.h"

#define COSY_T2W_MEL_CACHE 8   /* CosyVoice2Model.mel_cache_len; the source cache is 8 * 480 samples */

typedef struct cosy_t2w_hift cosy_t2w_hift;

/* max_frames: the most new mel frames one chunk is expected to bring (0 = a default of 200). */
cosy_status cosy_t2w_hift_create(cosy_hift *hift, int max_frames, cosy_t2w_hift **out);
/* The same with a mel cache of cache_frames (source cache, fade and held-back tail cache_frames * 480
 * samples): longer joins re-vocode more audio and cross-fade over it (a chunk strategy's overlap). */
cosy_status cosy_t2w_hift_create_cached(cosy_hift *hift, int max_frames, int cache_frames, cosy_t2w_hift **out);
void cosy_t2w_hift_free(cosy_t2w_hift *t);
/* Forgets the caches: the next chunk starts a new utterance. */
void cosy_t2w_hift_reset(cosy_t2w_hift *t);

/* Samples the next cosy_t2w_hift_push of n_frames new frames writes at most. */
int cosy_t2w_hift_max_samples(const cosy_t2w_hift *t, int n_frames);

/* One token2wav chunk: mel holds the n_frames new flow frames, channel-major [80][n_frames] with row
 * stride ld (>= n_frames; a column slice of the flow's output needs no copy). finalize marks the last
 * chunk of the utterance. Writes *n_out samples to out (capacity cosy_t2w_hift_max_samples). n_frames
 * may be 0 only when finalizing after at least one chunk (the cached frames are vocoded once more). */
cosy_status cosy_t2w_hift_push(cosy_t2w_hift *t, const float *mel, int n_frames, int ld, int finalize,
                               cosy_rng_source *rng, float *out, int *n_out);

/* State for the next chunk (what the reference keeps in hift_cache_dict), 0 when there is none:
 * the cached mel frames [80][n] (row stride n) and the cached source samples. */
int cosy_t2w_hift_mel_cache(const cosy_t2w_hift *t, const float **mel);
int cosy_t2w_hift_source_cache(const cosy_t2w_hift *t, const float **source);

/* The last chunk's HiFT call: its input mel [80][n] (row stride n; returns n), and its raw waveform and
 * source [n * 480] before the fade and trim. For tests and tracing. */
int cosy_t2w_hift_last_call(const cosy_t2w_hift *t, const float **mel, const float **wav, const float **source);

#endif
