/*
 * cv3_causal_hift.h — the CausalHiFT vocoder of CosyVoice3 (cosyvoice/hifigan/generator.py,
 * CausalHiFTGenerator.inference, with cosyvoice/hifigan/f0_predictor.py CausalConvRNNF0Predictor and the
 * causal convolutions of cosyvoice/transformer/convolution.py): 80-bin mel at 50 frames per second ->
 * 24 kHz waveform, 480 samples per frame.
 *
 * What differs from CosyVoice2's HiFT (hift.h): every convolution is causal (left zero padding) except
 * conv_pre (kernel conv_pre_look_right + 1) and the F0 predictor's first convolution (kernel
 * f0_first_kernel), which look right; the F0 predictor runs in float64; the upsampling is nearest + Conv1d;
 * the source's phase is one value per mel frame (SineGen2(causal=True) upsamples it with 'nearest'); the
 * noise is not drawn per call but read from sample 0 of a buffer drawn when the official model is built
 * (model/construction_rng.h regenerates it). inference(mel, finalize=False) treats the last
 * f0_first_kernel - 1 frames as look-ahead only and drops the last frame of audio, giving (F - 8) * 480
 * samples for the release's sizes; finalize=True gives F * 480.
 *
 * Everything after the two right-looking convolutions is causal, so the whole vocoder runs as a stream
 * (cosy_cv3_hift_stream): each push computes only the frames the new mel makes final, keeping for every
 * causal convolution its kernel's left context at its own rate, the running phase sum per harmonic, the
 * sample index into the noise buffer, and sliding windows of the source, its spectrum and conv_post's
 * output for the STFT / iSTFT overlap. Its concatenated output equals what CosyVoice3Model.token2wav emits
 * by re-running the vocoder on all mel so far on every call (wav[speech_offset:], the last 8 frames held
 * back on non-final calls), at linear cost. The one-shot cosy_cv3_hift_inference is one push.
 *
 * The weights are read-only after load (several streams may run at once); the noise buffer is model-wide,
 * extended under a lock as streams reach further into it, never moved.
 */
#ifndef COSY_CV3_CAUSAL_HIFT_H
#define COSY_CV3_CAUSAL_HIFT_H

#include <stdint.h>
#include "cosy.h"

typedef struct cosy_cv3_hift cosy_cv3_hift;
typedef struct cosy_cv3_hift_stream cosy_cv3_hift_stream;

/* The CausalHiFT of a CosyVoice3 `model`, built on first use (thread-safe). */
cosy_status cosy_cv3_hift_get(cosy_model *model, cosy_cv3_hift **out);

/* Output samples per mel frame (prod(upsample_rates) * istft hop = 480). */
int cosy_cv3_hift_samples_per_frame(const cosy_cv3_hift *h);
/* Mel frames a non-final call holds back: f0_first_kernel - 1 look-ahead frames, conv_pre_look_right
 * context frames and the one frame the iSTFT drops (3 + 4 + 1 = 8). */
int cosy_cv3_hift_held_frames(const cosy_cv3_hift *h);
/* The type the generator's convolutions run in: bf16 when the model's hift_dtype is bf16 (AUTO: where
 * faster) and the CPU multiplies bf16 natively, else f32 (the reference path). */
cosy_dtype cosy_cv3_hift_dtype(const cosy_cv3_hift *h);

/* The construction-time noise buffer (SineGen2.sine_waves) of this model, its first n rows
 * [n][nb_harmonics + 1]; extends it if needed. */
cosy_status cosy_cv3_hift_noise(cosy_cv3_hift *h, int64_t n, const float **out);

/* CausalHiFTGenerator.inference(mel, finalize): mel channel-major [80][n_frames] with row stride ld;
 * writes wav (finalize: n_frames * 480 samples; else (n_frames - held) * 480, n_frames >= held) and, when
 * not NULL, f0 [n_frames or n_frames - (f0_first_kernel - 1)] and the source s [480 per f0 frame]. */
cosy_status cosy_cv3_hift_inference(cosy_cv3_hift *h, const float *mel, int n_frames, int ld, int finalize, float *wav, float *f0,
                                    float *source);

/* ---- streaming (shaped like t2w_hift.h, CosyVoice2's) -------------------------------------------- */

cosy_status cosy_cv3_hift_stream_create(cosy_cv3_hift *h, cosy_cv3_hift_stream **out);
void cosy_cv3_hift_stream_free(cosy_cv3_hift_stream *s);
/* Forgets the utterance: the next push starts a new one (done by every finalizing push). */
void cosy_cv3_hift_stream_reset(cosy_cv3_hift_stream *s);
/* Samples the next push of n_frames new frames writes at most. */
int64_t cosy_cv3_hift_stream_max_samples(const cosy_cv3_hift_stream *s, int n_frames);
/* One token2wav call's new mel frames [80][n_frames] (row stride ld >= n_frames; n_frames may be 0).
 * Writes *n_out samples to out: everything up to (frames so far - held) * 480 on a non-final call,
 * the rest on the finalizing one — the official stream's chunks exactly. */
cosy_status cosy_cv3_hift_stream_push(cosy_cv3_hift_stream *s, const float *mel, int n_frames, int ld, int finalize, float *out,
                                      int64_t *n_out);
/* Where the stream writes its f0 and source as it computes them, by global index (f0 frame t at f0[t],
 * source sample n at source[n]), up to the capacities; NULL to stop. Kept across reset. */
void cosy_cv3_hift_stream_trace(cosy_cv3_hift_stream *s, float *f0, int64_t f0_cap, float *source, int64_t source_cap);

#endif
