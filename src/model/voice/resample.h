/*
 * resample.h — band-limited resampling between integer rates, numerically the reference's
 * `torchaudio.transforms.Resample(orig, new)` with its defaults (sinc_interp_hann, lowpass filter
 * width 6, rolloff 0.99), which the official load_wav (cosyvoice/utils/file_utils.py) applies to
 * every prompt whose rate is not the target one.
 *
 * The reference builds, for g = gcd(orig, new), o = orig / g and n = new / g, a bank of n polyphase
 * filters of 2 * width + o taps (width = ceil(6 o / (min(o, n) * 0.99))), in float64 then rounded
 * to float32, and convolves the zero-padded signal with stride o. Most of those taps are exactly
 * zero in float32 (the Hann window vanishes where the sinc argument is clamped), so this keeps each
 * phase's nonzero span only: the same sums (the dropped terms are 0 * x) for any pair of rates,
 * even coprime ones whose full bank would hold n * (2 width + o) floats.
 */
#ifndef COSY_RESAMPLE_H
#define COSY_RESAMPLE_H

#include <stdint.h>
#include "cosy.h"

typedef struct cosy_resampler cosy_resampler;

/* Rates in Hz, 1 .. 10 MHz. Equal rates give the identity (as load_wav skips Resample). */
cosy_status cosy_resampler_create(int orig_rate, int new_rate, cosy_resampler **out);
void cosy_resampler_free(cosy_resampler *r);

/* ceil(n_in * new / orig): the number of samples the reference keeps. */
int64_t cosy_resampler_output_length(const cosy_resampler *r, int64_t n_in);
/* out[0 .. cosy_resampler_output_length(n_in)) from in[0 .. n_in). */
void cosy_resampler_run(const cosy_resampler *r, const float *in, int64_t n_in, float *out);

/* The reference's kernel tensor [phases][1][taps] (phases = new / g, taps = 2 width + orig / g),
 * for checking against torchaudio's `Resample.kernel`: shape, then the values with zeros outside
 * each phase's span. */
void cosy_resampler_kernel_shape(const cosy_resampler *r, int *phases, int *taps);
void cosy_resampler_kernel(const cosy_resampler *r, float *out);

/* Convenience: resample a whole signal into a new buffer (malloc'd; free() it). */
cosy_status cosy_resample(const float *in, int64_t n_in, int orig_rate, int new_rate, float **out, int64_t *n_out);

#endif
