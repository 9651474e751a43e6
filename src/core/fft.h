/*
 * fft.h — a double-precision mixed-radix FFT for the voice features (any length; lengths with
 * small factors are fast: 400 = 2^4 5^2, 512, 1920 = 2^7 3 5).
 *
 * Why our own and in double: the reference computes its spectra with torch's float32 FFT, whose
 * rounding noise (~1e-7 of the frame's energy) is what limits agreement in quiet bins. A float FFT
 * of another design (KISS FFT, FFTW's float) adds its own noise of the same size on top; a double
 * FFT adds none, which measurably halves the worst kaldi-fbank error on the fixtures (see
 * docs/voice-frontend.md). Debian's FFT libraries either are float-only (libkissfft) or GPL (FFTW),
 * and the recursive transform below is short.
 */
#ifndef COSY_FFT_H
#define COSY_FFT_H

#include "cosy.h"

typedef struct cosy_fft cosy_fft;

/* A plan for n-point transforms (2 <= n <= 1 << 20). Plans are read-only once made: threads may
 * share one, each passing its own buffers. */
cosy_status cosy_fft_create(int n, cosy_fft **out);
void cosy_fft_free(cosy_fft *p);
int cosy_fft_size(const cosy_fft *p);

/* One-sided spectrum of a real signal: re/im[0 .. n/2] = sum_t x[t] exp(-2 pi i k t / n).
 * `work` holds 5 n doubles. */
void cosy_fft_real(const cosy_fft *p, const double *x, double *re, double *im, double *work);

#endif
