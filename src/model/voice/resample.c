/* resample.c — torchaudio's sinc/Hann polyphase resampler (see resample.h).
 *
 * Kernel, for phase j in [0, n) and tap k in [0, 2 width + o), as torchaudio computes it
 * (functional.py, _get_sinc_resample_kernel; identical in 0.13 and 2.x):
 *   base  = min(o, n) * rolloff                                        (float64)
 *   t     = ((k - width) / o  +  float32(-j / n)) * base, clamped to [-6, 6]
 *           (the phase offset comes from an integer tensor divided by n, i.e. a float32 division,
 *            before it meets the float64 tap positions)
 *   w     = cos(t pi / 6 / 2)^2
 *   h     = (t == 0 ? 1 : sin(pi t) / (pi t)) * (w * base / o), rounded to float32.
 * Apply: y[i n + j] = sum_k h[j][k] x[i o + k - width] (zeros outside the signal), keeping
 * ceil(N n / o) samples. We accumulate in double; the reference's float32 conv differs by ~1e-7.
 */
#include "model/voice/resample.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOWPASS_WIDTH 6
#define ROLLOFF 0.99

struct cosy_resampler {
    int orig_rate, new_rate;
    int o, n;            /* rates divided by their gcd */
    int width;           /* zero padding on the left, in input samples */
    int taps;            /* 2 width + o: the reference's kernel length */
    int *span_begin;     /* [n] first nonzero tap of each phase */
    int *span_len;       /* [n] */
    float **coef;        /* [n][span_len] */
};

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* One tap in float64, as the reference, before the float32 rounding. */
static double tap(const cosy_resampler *r, double base, double phase_offset, int k)
{
    double idx = (double)(k - r->width) / (double)r->o;
    double t = (phase_offset + idx) * base;
    if (t < -LOWPASS_WIDTH) t = -LOWPASS_WIDTH;
    if (t > LOWPASS_WIDTH) t = LOWPASS_WIDTH;
    double c = cos(t * M_PI / LOWPASS_WIDTH / 2);
    double window = c * c;
    t *= M_PI;
    double sinc = t == 0 ? 1.0 : sin(t) / t;
    return sinc * (window * (base / (double)r->o));
}

void cosy_resampler_free(cosy_resampler *r)
{
    if (!r) return;
    if (r->coef)
        for (int j = 0; j < r->n; j++) free(r->coef[j]);
    free(r->coef);
    free(r->span_begin);
    free(r->span_len);
    free(r);
}

cosy_status cosy_resampler_create(int orig_rate, int new_rate, cosy_resampler **out)
{
    *out = NULL;
    if (orig_rate < 1 || orig_rate > 10000000 || new_rate < 1 || new_rate > 10000000)
        return cosy_error(COSY_ERR_INVALID_ARG, "resample: rates %d -> %d Hz out of range (1 Hz .. 10 MHz)", orig_rate, new_rate);
    cosy_resampler *r = calloc(1, sizeof *r);
    if (!r) return cosy_error(COSY_ERR_NOMEM, "resample: out of memory");
    int64_t g = gcd64(orig_rate, new_rate);
    r->orig_rate = orig_rate;
    r->new_rate = new_rate;
    r->o = (int)(orig_rate / g);
    r->n = (int)(new_rate / g);
    const double base = (r->o < r->n ? r->o : r->n) * ROLLOFF;
    r->width = (int)ceil(LOWPASS_WIDTH * (double)r->o / base);
    r->taps = 2 * r->width + r->o;
    r->span_begin = calloc((size_t)r->n, sizeof *r->span_begin);
    r->span_len = calloc((size_t)r->n, sizeof *r->span_len);
    r->coef = calloc((size_t)r->n, sizeof *r->coef);
    if (!r->span_begin || !r->span_len || !r->coef) goto oom;
    for (int j = 0; j < r->n; j++) {
        /* torch: arange(0, -n, -1) / n on an integer tensor -> float32 true division */
        const double phase_offset = (double)((float)(-j) / (float)r->n);
        /* taps with |t| < 6 lie where |k - width + phase_offset o| < 6 o / base; look a little
         * wider and let the float32 rounding decide which are zero */
        double centre = r->width - phase_offset * r->o, reach = LOWPASS_WIDTH * (double)r->o / base;
        int lo = (int)floor(centre - reach) - 2, hi = (int)ceil(centre + reach) + 2;
        if (lo < 0) lo = 0;
        if (hi > r->taps - 1) hi = r->taps - 1;
        while (lo <= hi && (float)tap(r, base, phase_offset, lo) == 0.0f) lo++;
        while (hi >= lo && (float)tap(r, base, phase_offset, hi) == 0.0f) hi--;
        int len = hi >= lo ? hi - lo + 1 : 0;
        r->span_begin[j] = lo;
        r->span_len[j] = len;
        r->coef[j] = malloc(sizeof(float) * (size_t)(len ? len : 1));
        if (!r->coef[j]) goto oom;
        for (int k = 0; k < len; k++) r->coef[j][k] = (float)tap(r, base, phase_offset, lo + k);
    }
    *out = r;
    return COSY_OK;
oom:
    cosy_resampler_free(r);
    return cosy_error(COSY_ERR_NOMEM, "resample: out of memory");
}

int64_t cosy_resampler_output_length(const cosy_resampler *r, int64_t n_in)
{
    if (r->orig_rate == r->new_rate) return n_in;
    return (n_in * r->n + r->o - 1) / r->o;
}

void cosy_resampler_run(const cosy_resampler *r, const float *in, int64_t n_in, float *out)
{
    if (r->orig_rate == r->new_rate) {
        memmove(out, in, sizeof(float) * (size_t)n_in);
        return;
    }
    const int64_t n_out = cosy_resampler_output_length(r, n_in);
    for (int64_t m = 0; m < n_out; m++) {
        const int64_t frame = m / r->n;
        const int j = (int)(m % r->n);
        const float *h = r->coef[j];
        /* input index of tap k: frame * o + k - width */
        int64_t first = frame * r->o + r->span_begin[j] - r->width;
        int k0 = 0, k1 = r->span_len[j];
        if (first < 0) k0 = (int)-first;
        if (first + k1 > n_in) k1 = (int)(n_in - first);
        double acc = 0.0;
        for (int k = k0; k < k1; k++) acc += (double)h[k] * (double)in[first + k];
        out[m] = (float)acc;
    }
}

void cosy_resampler_kernel_shape(const cosy_resampler *r, int *phases, int *taps)
{
    *phases = r->n;
    *taps = r->taps;
}

void cosy_resampler_kernel(const cosy_resampler *r, float *out)
{
    memset(out, 0, sizeof(float) * (size_t)r->n * (size_t)r->taps);
    for (int j = 0; j < r->n; j++)
        memcpy(out + (size_t)j * r->taps + r->span_begin[j], r->coef[j], sizeof(float) * (size_t)r->span_len[j]);
}

cosy_status cosy_resample(const float *in, int64_t n_in, int orig_rate, int new_rate, float **out, int64_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    cosy_resampler *r;
    COSY_TRY(cosy_resampler_create(orig_rate, new_rate, &r));
    int64_t n = cosy_resampler_output_length(r, n_in);
    float *y = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!y) {
        cosy_resampler_free(r);
        return cosy_error(COSY_ERR_NOMEM, "resample: out of memory for %lld samples", (long long)n);
    }
    cosy_resampler_run(r, in, n_in, y);
    cosy_resampler_free(r);
    *out = y;
    *n_out = n;
    return COSY_OK;
}
