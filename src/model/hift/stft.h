/*
 * stft.h — the short-time Fourier transform pair of HiFT's iSTFTNet head
 * (cosyvoice/hifigan/generator.py, HiFTGenerator._stft / _istft).
 *
 * HiFT analyses its harmonic source with torch.stft and synthesises the waveform with torch.istft,
 * both with n_fft = win_length (16), hop 4, a periodic Hann window (scipy get_window('hann',
 * n_fft, fftbins=True)), center=True with reflect padding, one-sided spectra, no normalisation.
 * The transforms are tiny (9 bins), so they are direct sums in double precision with precomputed
 * twiddles: simpler than an FFT and at least as accurate as torch's float FFT.
 *
 * Layouts are channel-major like the reference tensors: spectra are [n_fft/2 + 1][frames].
 * The inverse is range-based (output samples [begin, end)) so a caller that keeps overlap state
 * (CosyVoice3's causal HiFT) can synthesise pieces of a longer signal.
 */
#ifndef COSY_STFT_H
#define COSY_STFT_H

#include "cosy.h"

#define COSY_STFT_MAX_FFT 64

typedef struct {
    int n_fft, hop, n_bins;                          /* n_bins = n_fft / 2 + 1 */
    float window[COSY_STFT_MAX_FFT];                 /* periodic Hann, rounded to float as the reference */
    double cos_table[COSY_STFT_MAX_FFT];             /* cos(2 pi m / n_fft) */
    double sin_table[COSY_STFT_MAX_FFT];
} cosy_stft;

/* n_fft even, 2 <= n_fft <= COSY_STFT_MAX_FFT, 0 < hop <= n_fft, and hop dividing n_fft (so the
 * window envelope is periodic and never zero). */
cosy_status cosy_stft_init(cosy_stft *s, int n_fft, int hop);

/* Frames torch.stft(center=True) gives for n samples: n / hop + 1. */
int cosy_stft_frames(const cosy_stft *s, int n_samples);

/* torch.stft(x, n_fft, hop, n_fft, window, center=True, pad_mode='reflect', return_complex=True)
 * split into real and imaginary parts, each [n_bins][frames] with row stride `ld` (>= frames).
 * Reflect padding needs n_samples > n_fft / 2. */
cosy_status cosy_stft_forward(const cosy_stft *s, const float *x, int n_samples, float *real, float *imag, int ld);
/* The same for frames [f_begin, f_end) only (so callers can split the frames over threads). */
cosy_status cosy_stft_forward_frames(const cosy_stft *s, const float *x, int n_samples, int f_begin, int f_end, float *real,
                                     float *imag, int ld);

/* The same frames written to columns [0, f_end - f_begin) (a caller keeping a sliding window of the
 * spectrum: frames that do not reach an end of x read no padding, so x may be a window of a longer signal,
 * with frame f of the window starting at sample f * hop - n_fft / 2 of it). */
cosy_status cosy_stft_forward_range(const cosy_stft *s, const float *x, int n_samples, int f_begin, int f_end, float *real,
                                    float *imag, int ld);

/* torch.istft(complex(mag cos(phase), mag sin(phase)), n_fft, hop, n_fft, window, center=True)
 * for output samples [begin, end) of the full length hop * (frames - 1); magnitude and phase are
 * [n_bins][frames] with row stride ld. Writes out[0 .. end - begin). */
cosy_status cosy_istft_polar(const cosy_stft *s, const float *magnitude, const float *phase, int frames, int ld,
                             int begin, int end, float *out);

#endif
