/*
 * stft.c — torch.stft / torch.istft as HiFT uses them (see stft.h): direct real DFTs of 16-point
 * frames in double precision, reflect padding for the analysis, windowed overlap-add divided by
 * the summed squared window for the synthesis.
 */
#include "model/hift/stft.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

cosy_status cosy_stft_init(cosy_stft *s, int n_fft, int hop)
{
    if (!s) return cosy_error(COSY_ERR_INVALID_ARG, "stft: no state");
    if (n_fft < 2 || n_fft > COSY_STFT_MAX_FFT || n_fft % 2 || hop < 1 || hop > n_fft || n_fft % hop)
        return cosy_error(COSY_ERR_UNSUPPORTED, "stft: n_fft %d / hop %d not supported (even n_fft <= %d, hop dividing it)",
                          n_fft, hop, COSY_STFT_MAX_FFT);
    memset(s, 0, sizeof *s);
    s->n_fft = n_fft;
    s->hop = hop;
    s->n_bins = n_fft / 2 + 1;
    for (int m = 0; m < n_fft; m++) {
        /* scipy.signal.get_window('hann', N, fftbins=True): 0.5 - 0.5 cos(2 pi m / N), in double,
         * then .astype(np.float32) in HiFTGenerator.__init__ */
        double a = 2.0 * M_PI * m / n_fft;
        s->window[m] = (float)(0.5 - 0.5 * cos(a));
        s->cos_table[m] = cos(a);
        s->sin_table[m] = sin(a);
    }
    return COSY_OK;
}

int cosy_stft_frames(const cosy_stft *s, int n_samples)
{
    return n_samples / s->hop + 1;
}

cosy_status cosy_stft_forward(const cosy_stft *s, const float *x, int n_samples, float *real, float *imag, int ld)
{
    return cosy_stft_forward_frames(s, x, n_samples, 0, cosy_stft_frames(s, n_samples), real, imag, ld);
}

cosy_status cosy_stft_forward_frames(const cosy_stft *s, const float *x, int n_samples, int f_begin, int f_end, float *real,
                                     float *imag, int ld)
{
    if (ld < cosy_stft_frames(s, n_samples)) return cosy_error(COSY_ERR_INVALID_ARG, "stft: row stride %d < %d frames", ld, cosy_stft_frames(s, n_samples));
    return cosy_stft_forward_range(s, x, n_samples, f_begin, f_end, real + f_begin, imag + f_begin, ld);
}

cosy_status cosy_stft_forward_range(const cosy_stft *s, const float *x, int n_samples, int f_begin, int f_end, float *real,
                                    float *imag, int ld)
{
    const int N = s->n_fft, half = N / 2, frames = cosy_stft_frames(s, n_samples);
    if (n_samples <= half)
        return cosy_error(COSY_ERR_INVALID_ARG, "stft: %d samples are too few to reflect-pad by %d", n_samples, half);
    if (ld < f_end - f_begin) return cosy_error(COSY_ERR_INVALID_ARG, "stft: row stride %d < %d frames", ld, f_end - f_begin);
    if (f_begin < 0 || f_end > frames || f_begin > f_end)
        return cosy_error(COSY_ERR_INVALID_ARG, "stft: frames [%d, %d) outside [0, %d)", f_begin, f_end, frames);
    float frame[COSY_STFT_MAX_FFT];
    for (int f = f_begin; f < f_end; f++) {
        /* torch.stft(center=True) reflect-pads n_fft/2 on both sides, then windows each frame in float */
        for (int m = 0; m < N; m++) {
            int i = f * s->hop + m - half;
            if (i < 0) i = -i;
            else if (i >= n_samples) i = 2 * (n_samples - 1) - i;
            frame[m] = x[i] * s->window[m];
        }
        for (int k = 0; k < s->n_bins; k++) {
            double re = 0.0, im = 0.0;
            for (int m = 0; m < N; m++) {
                int idx = (k * m) % N;
                re += frame[m] * s->cos_table[idx];
                im -= frame[m] * s->sin_table[idx];
            }
            real[(size_t)k * ld + (f - f_begin)] = (float)re;
            imag[(size_t)k * ld + (f - f_begin)] = (float)im;
        }
    }
    return COSY_OK;
}

/* Sum of squared windows of the frames [0, frames) that cover padded position p (torch.istft's
 * window envelope, which it divides by). */
static double envelope_at(const cosy_stft *s, int frames, int p)
{
    double e = 0.0;
    int f_hi = p / s->hop;
    if (f_hi > frames - 1) f_hi = frames - 1;
    for (int f = f_hi; f >= 0 && p - f * s->hop < s->n_fft; f--) {
        double w = s->window[p - f * s->hop];
        e += w * w;
    }
    return e;
}

cosy_status cosy_istft_polar(const cosy_stft *s, const float *magnitude, const float *phase, int frames, int ld,
                             int begin, int end, float *out)
{
    const int N = s->n_fft, half = N / 2, hop = s->hop, total = hop * (frames - 1);
    if (frames < 2 || ld < frames)
        return cosy_error(COSY_ERR_INVALID_ARG, "istft: %d frames (row stride %d); need at least 2", frames, ld);
    if (begin < 0 || end > total || begin > end)
        return cosy_error(COSY_ERR_INVALID_ARG, "istft: output range [%d, %d) outside [0, %d)", begin, end, total);
    if (begin == end) return COSY_OK;
    const int p_begin = begin + half, p_end = end + half; /* positions in the padded signal */
    int f0 = p_begin < N ? 0 : (p_begin - N) / hop + 1;
    int f1 = (p_end - 1) / hop;
    if (f1 > frames - 1) f1 = frames - 1;
    double ring[COSY_STFT_MAX_FFT]; /* overlap-add accumulator for padded positions [f*hop, f*hop + N) */
    memset(ring, 0, sizeof ring);
    float re[COSY_STFT_MAX_FFT / 2 + 1], im[COSY_STFT_MAX_FFT / 2 + 1];
    for (int f = f0; f <= f1; f++) {
        /* _istft: real = mag * cos(phase), imag = mag * sin(phase), in float */
        for (int k = 0; k < s->n_bins; k++) {
            float m = magnitude[(size_t)k * ld + f], ph = phase[(size_t)k * ld + f];
            re[k] = m * cosf(ph);
            im[k] = m * sinf(ph);
        }
        /* one-sided inverse DFT (c2r: the imaginary parts of DC and Nyquist are ignored), 1/N scaling,
         * then the synthesis window */
        for (int m = 0; m < N; m++) {
            double acc = re[0] + ((m & 1) ? -(double)re[N / 2] : (double)re[N / 2]);
            for (int k = 1; k < N / 2; k++) {
                int idx = (k * m) % N;
                acc += 2.0 * (re[k] * s->cos_table[idx] - im[k] * s->sin_table[idx]);
            }
            ring[(f * hop + m) % N] += acc / N * s->window[m];
        }
        /* positions before (f + 1) * hop receive nothing from later frames; after the last frame
         * everything up to p_end is complete */
        int done_end = f == f1 ? p_end : (f + 1) * hop;
        for (int p = f * hop; p < done_end; p++) {
            if (p >= p_begin && p < p_end) out[p - p_begin] = (float)(ring[p % N] / envelope_at(s, frames, p));
            ring[p % N] = 0.0;
        }
    }
    return COSY_OK;
}
