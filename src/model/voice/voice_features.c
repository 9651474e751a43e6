/* voice_features.c — prompt mel, kaldi fbank and whisper log-mel (see voice_features.h).
 *
 * FFT: core/fft.c, our double-precision mixed-radix transform. The frames are prepared in float32
 * as the reference prepares them (window, DC removal, pre-emphasis); from the spectrum on we stay in
 * double and round once at the end, so our only departure from the exact values is that final
 * rounding, while the reference's float32 FFT carries ~1e-7 of the frame energy as noise. A float
 * FFT (Debian's libkissfft) measured twice the worst fbank error on the fixtures; FFTW is GPL;
 * HiFT's STFT (stft.c) is a direct sum, fine for its 16 points, too slow at 1920.
 */
#include "model/voice/voice_features.h"
#include "core/error.h"
#include "core/fft.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

cosy_prompt_mel_params cosy_prompt_mel_default_params(void)
{
    return (cosy_prompt_mel_params){.sample_rate = 24000, .n_fft = 1920, .hop = 480, .win = 1920, .n_mels = 80, .fmin = 0.0f, .fmax = 8000.0f};
}

cosy_prompt_mel_params cosy_prompt_mel_params_from_hparams(const cosy_hparams *hp)
{
    return (cosy_prompt_mel_params){.sample_rate = hp->sample_rate, .n_fft = hp->feat_n_fft, .hop = hp->feat_hop, .win = hp->feat_win,
                                    .n_mels = hp->feat_num_mels, .fmin = hp->feat_fmin, .fmax = hp->feat_fmax};
}

/* ---- filter banks ---- */

/* librosa's Slaney mel scale (htk=False): linear below 1 kHz, logarithmic above. */
static double hz_to_mel_slaney(double hz)
{
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
    return hz >= min_log_hz ? min_log_mel + log(hz / min_log_hz) / logstep : hz / f_sp;
}

static double mel_to_hz_slaney(double mel)
{
    const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
    return mel >= min_log_mel ? min_log_hz * exp(logstep * (mel - min_log_mel)) : f_sp * mel;
}

cosy_status cosy_mel_filters_slaney(int sample_rate, int n_fft, int n_mels, double f_min, double f_max, float *out)
{
    if (sample_rate < 1 || n_fft < 2 || n_mels < 1 || n_mels > 1024)
        return cosy_error(COSY_ERR_INVALID_ARG, "mel filters: bad parameters (rate %d, n_fft %d, %d mels)", sample_rate, n_fft, n_mels);
    if (f_max <= 0) f_max = sample_rate / 2.0;
    if (!(f_min >= 0 && f_min < f_max)) return cosy_error(COSY_ERR_INVALID_ARG, "mel filters: fmin %g must be below fmax %g", f_min, f_max);
    const int n_bins = n_fft / 2 + 1;
    double *mel_f = malloc(sizeof(double) * (size_t)(n_mels + 2));
    if (!mel_f) return cosy_error(COSY_ERR_NOMEM, "mel filters: out of memory");
    /* mel_frequencies: np.linspace over the mel scale (start + i * step, the last point exact) */
    const double lo = hz_to_mel_slaney(f_min), hi = hz_to_mel_slaney(f_max), step = (hi - lo) / (n_mels + 1);
    for (int i = 0; i < n_mels + 2; i++) mel_f[i] = mel_to_hz_slaney(i == n_mels + 1 ? hi : lo + i * step);
    for (int m = 0; m < n_mels; m++) {
        const double fdiff_lo = mel_f[m + 1] - mel_f[m], fdiff_hi = mel_f[m + 2] - mel_f[m + 1];
        const double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
        for (int k = 0; k < n_bins; k++) {
            const double freq = (double)k * sample_rate / n_fft; /* fft_frequencies */
            double lower = -(mel_f[m] - freq) / fdiff_lo, upper = (mel_f[m + 2] - freq) / fdiff_hi;
            double w = fmax(0.0, fmin(lower, upper));
            /* librosa stores the triangle in float32, then scales it in float64 and stores again */
            out[(size_t)m * n_bins + k] = (float)((double)(float)w * enorm);
        }
    }
    free(mel_f);
    return COSY_OK;
}

/* torchaudio.compliance.kaldi.get_mel_banks(80, 512, 16000, 20, 0, ...) without VTLN warping,
 * evaluated in float32 as the reference does (its bin tensors are float32): [80][257], the last
 * column zero (the reference pads the Nyquist bin with a zero weight). */
static void kaldi_mel_banks(float *out)
{
    const int n_fft_bins = 256, n_cols = 257;
    const double mel_low = 1127.0 * log(1.0 + 20.0 / 700.0), mel_high = 1127.0 * log(1.0 + 8000.0 / 700.0);
    const float delta = (float)((mel_high - mel_low) / (COSY_FBANK_BINS + 1));
    const float low = (float)mel_low, bin_width = (float)(16000.0 / 512);
    for (int b = 0; b < COSY_FBANK_BINS; b++) {
        const float left = low + (float)b * delta, center = low + (float)(b + 1) * delta, right = low + (float)(b + 2) * delta;
        for (int k = 0; k < n_cols; k++) {
            float w = 0.0f;
            if (k < n_fft_bins) {
                const float mel = 1127.0f * logf(1.0f + bin_width * (float)k / 700.0f);
                const float up = (mel - left) / (center - left), down = (right - mel) / (right - center);
                w = fmaxf(0.0f, fminf(up, down));
            }
            out[(size_t)b * n_cols + k] = w;
        }
    }
}

/* Nonzero column range of each filter row, so the products skip the zeros. */
typedef struct {
    const float *w;     /* [rows][cols] */
    int rows, cols;
    int *begin, *end;   /* [rows] */
} sparse_bank;

static cosy_status sparse_bank_init(sparse_bank *s, const float *w, int rows, int cols)
{
    s->w = w;
    s->rows = rows;
    s->cols = cols;
    s->begin = malloc(sizeof(int) * (size_t)rows);
    s->end = malloc(sizeof(int) * (size_t)rows);
    if (!s->begin || !s->end) return cosy_error(COSY_ERR_NOMEM, "features: out of memory");
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * cols;
        int b = 0, e = cols;
        while (b < cols && row[b] == 0.0f) b++;
        while (e > b && row[e - 1] == 0.0f) e--;
        s->begin[r] = b;
        s->end[r] = e;
    }
    return COSY_OK;
}

static void sparse_bank_free(sparse_bank *s)
{
    free(s->begin);
    free(s->end);
}

/* out[r] = sum_c w[r][c] x[c] */
static void sparse_bank_apply(const sparse_bank *s, const double *x, double *out)
{
    for (int r = 0; r < s->rows; r++) {
        const float *row = s->w + (size_t)r * s->cols;
        double acc = 0.0;
        for (int c = s->begin[r]; c < s->end[r]; c++) acc += (double)row[c] * x[c];
        out[r] = acc;
    }
}

/* Spectra of one frame at a time: the plan and its buffers. */
typedef struct {
    cosy_fft *plan;
    double *frame, *re, *im, *work, *value, *mel;   /* [n], [n/2+1] x 3, [5 n], [n_mels] */
} spectrum;

static cosy_status spectrum_init(spectrum *s, int n_fft, int n_mels)
{
    memset(s, 0, sizeof *s);
    COSY_TRY(cosy_fft_create(n_fft, &s->plan));
    const size_t bins = (size_t)n_fft / 2 + 1;
    s->frame = malloc(sizeof(double) * ((size_t)n_fft + 3 * bins + 5 * (size_t)n_fft + (size_t)n_mels));
    if (!s->frame) return cosy_error(COSY_ERR_NOMEM, "features: out of memory");
    s->re = s->frame + n_fft;
    s->im = s->re + bins;
    s->value = s->im + bins;
    s->work = s->value + bins;
    s->mel = s->work + 5 * (size_t)n_fft;
    return COSY_OK;
}

static void spectrum_free(spectrum *s)
{
    cosy_fft_free(s->plan);
    free(s->frame);
}

/* ---- windows ---- */

/* torch.hann_window(n, periodic) in float32, as ATen computes it:
 * 0.5 - 0.5 cos(i * float(2 pi / (N - 1))) with N = n + 1 when periodic. */
static void torch_hann_window(float *w, int n, int periodic)
{
    const int len = periodic ? n + 1 : n;
    if (len == 1) {
        w[0] = 1.0f;
        return;
    }
    const float scale = (float)(M_PI * 2.0 / (double)(len - 1));
    for (int i = 0; i < n; i++) w[i] = cosf((float)i * scale) * -0.5f + 0.5f;
}

/* ---- framing ---- */

/* x padded by `pad` samples each side with reflection (torch pad mode 'reflect': no edge repeat). */
static cosy_status reflect_pad(const float *x, int64_t n, int pad, float **out)
{
    if (pad >= n) return cosy_error(COSY_ERR_INVALID_ARG, "features: %lld samples are too few for a reflect padding of %d", (long long)n, pad);
    float *y = malloc(sizeof(float) * (size_t)(n + 2 * pad));
    if (!y) return cosy_error(COSY_ERR_NOMEM, "features: out of memory");
    for (int i = 0; i < pad; i++) {
        y[pad - 1 - i] = x[i + 1];
        y[pad + n + i] = x[n - 2 - i];
    }
    memcpy(y + pad, x, sizeof(float) * (size_t)n);
    *out = y;
    return COSY_OK;
}

int cosy_prompt_mel_frames(const cosy_prompt_mel_params *p, int64_t n)
{
    const int pad = (p->n_fft - p->hop) / 2;
    if (n <= pad || n + 2 * pad < p->n_fft) return 0;
    return (int)(1 + (n + 2 * pad - p->n_fft) / p->hop);
}

int cosy_fbank_frames(int64_t n) { return n < 400 ? 0 : (int)(1 + (n - 400) / 160); }

int cosy_whisper_mel_frames(int64_t n) { return n <= 200 ? 0 : (int)(n / 160); }

/* ---- prompt mel (Matcha-TTS mel_spectrogram) ---- */

cosy_status cosy_prompt_mel(const cosy_prompt_mel_params *p, const float *audio, int64_t n, float **out, int *n_frames)
{
    *out = NULL;
    *n_frames = 0;
    if (p->n_fft < 2 || p->n_fft % 2 || p->hop < 1 || p->win < 1 || p->win > p->n_fft || p->hop > p->n_fft || p->n_mels < 1)
        return cosy_error(COSY_ERR_INVALID_ARG, "prompt mel: bad parameters (n_fft %d, hop %d, win %d, %d mels)", p->n_fft, p->hop, p->win, p->n_mels);
    const int frames = cosy_prompt_mel_frames(p, n);
    if (frames < 1)
        return cosy_error(COSY_ERR_INVALID_ARG, "prompt mel: %lld samples at %d Hz are too few for one frame", (long long)n, p->sample_rate);
    const int n_fft = p->n_fft, n_bins = n_fft / 2 + 1, pad = (n_fft - p->hop) / 2;
    cosy_status st = COSY_OK;
    float *padded = NULL, *filters = NULL, *window = NULL, *mel = NULL;
    spectrum sp = {0};
    sparse_bank bank = {0};
    st = reflect_pad(audio, n, pad, &padded);
    if (st == COSY_OK) st = spectrum_init(&sp, n_fft, p->n_mels);
    if (st != COSY_OK) goto done;
    filters = malloc(sizeof(float) * (size_t)p->n_mels * n_bins);
    window = calloc((size_t)n_fft, sizeof(float));
    mel = malloc(sizeof(float) * (size_t)frames * p->n_mels);
    if (!filters || !window || !mel) {
        st = cosy_error(COSY_ERR_NOMEM, "prompt mel: out of memory");
        goto done;
    }
    st = cosy_mel_filters_slaney(p->sample_rate, n_fft, p->n_mels, p->fmin, p->fmax, filters);
    if (st == COSY_OK) st = sparse_bank_init(&bank, filters, p->n_mels, n_bins);
    if (st != COSY_OK) goto done;
    /* torch.stft centres a window shorter than n_fft in the frame */
    torch_hann_window(window + (n_fft - p->win) / 2, p->win, 1);
    for (int f = 0; f < frames; f++) {
        const float *x = padded + (int64_t)f * p->hop;
        for (int i = 0; i < n_fft; i++) sp.frame[i] = (double)(x[i] * window[i]);
        cosy_fft_real(sp.plan, sp.frame, sp.re, sp.im, sp.work);
        for (int k = 0; k < n_bins; k++) sp.value[k] = sqrt(sp.re[k] * sp.re[k] + sp.im[k] * sp.im[k] + 1e-9);
        sparse_bank_apply(&bank, sp.value, sp.mel);
        float *row = mel + (size_t)f * p->n_mels;
        for (int m = 0; m < p->n_mels; m++) row[m] = (float)log(fmax(sp.mel[m], 1e-5));
    }
    *out = mel;
    *n_frames = frames;
    mel = NULL;
done:
    sparse_bank_free(&bank);
    spectrum_free(&sp);
    free(padded);
    free(filters);
    free(window);
    free(mel);
    return st;
}

/* ---- kaldi fbank (torchaudio.compliance.kaldi.fbank) ---- */

cosy_status cosy_kaldi_fbank(const float *audio, int64_t n, float **out, int *n_frames)
{
    enum { WIN = 400, SHIFT = 160, N_FFT = 512, N_COLS = N_FFT / 2 + 1 };
    *out = NULL;
    *n_frames = 0;
    const int frames = cosy_fbank_frames(n);
    if (frames < 1) return cosy_error(COSY_ERR_INVALID_ARG, "kaldi fbank: %lld samples at 16 kHz are too few for one 25 ms frame", (long long)n);
    cosy_status st = COSY_OK;
    float *banks = malloc(sizeof(float) * COSY_FBANK_BINS * N_COLS);
    float *feat = malloc(sizeof(float) * (size_t)frames * COSY_FBANK_BINS);
    spectrum sp = {0};
    sparse_bank bank = {0};
    if (!banks || !feat) {
        st = cosy_error(COSY_ERR_NOMEM, "kaldi fbank: out of memory");
        goto done;
    }
    kaldi_mel_banks(banks);
    st = sparse_bank_init(&bank, banks, COSY_FBANK_BINS, N_COLS);
    if (st == COSY_OK) st = spectrum_init(&sp, N_FFT, COSY_FBANK_BINS);
    if (st != COSY_OK) goto done;
    float window[WIN];
    /* Povey window: the symmetric Hann window to the power 0.85 */
    torch_hann_window(window, WIN, 0);
    for (int i = 0; i < WIN; i++) window[i] = powf(window[i], 0.85f);
    const float preemph = 0.97f;
    for (int f = 0; f < frames; f++) {
        const float *x = audio + (int64_t)f * SHIFT;
        double sum = 0.0;
        for (int i = 0; i < WIN; i++) sum += x[i];
        const float mean = (float)(sum / WIN);
        float prev = x[0] - mean; /* pre-emphasis replicates the first sample */
        for (int i = 0; i < WIN; i++) {
            const float v = x[i] - mean;
            sp.frame[i] = (double)((v - preemph * prev) * window[i]);
            prev = v;
        }
        for (int i = WIN; i < N_FFT; i++) sp.frame[i] = 0.0;
        cosy_fft_real(sp.plan, sp.frame, sp.re, sp.im, sp.work);
        for (int k = 0; k < N_COLS; k++) sp.value[k] = sp.re[k] * sp.re[k] + sp.im[k] * sp.im[k];
        sparse_bank_apply(&bank, sp.value, sp.mel);
        float *row = feat + (size_t)f * COSY_FBANK_BINS;
        for (int b = 0; b < COSY_FBANK_BINS; b++) row[b] = (float)log(fmax(sp.mel[b], (double)FLT_EPSILON));
    }
    *out = feat;
    *n_frames = frames;
    feat = NULL;
done:
    sparse_bank_free(&bank);
    spectrum_free(&sp);
    free(banks);
    free(feat);
    return st;
}

void cosy_subtract_frame_mean(float *feat, int rows, int cols)
{
    for (int c = 0; c < cols; c++) {
        double sum = 0.0;
        for (int r = 0; r < rows; r++) sum += feat[(size_t)r * cols + c];
        const float mean = (float)(sum / rows);
        for (int r = 0; r < rows; r++) feat[(size_t)r * cols + c] -= mean;
    }
}

/* ---- whisper log-mel (whisper/audio.py, log_mel_spectrogram) ---- */

cosy_status cosy_whisper_log_mel(const float *audio, int64_t n, int n_mels, float **out, int *n_frames)
{
    enum { N_FFT = 400, HOP = 160, N_BINS = N_FFT / 2 + 1, SAMPLE_RATE = 16000 };
    *out = NULL;
    *n_frames = 0;
    const int frames = cosy_whisper_mel_frames(n);
    if (frames < 1) return cosy_error(COSY_ERR_INVALID_ARG, "whisper log-mel: %lld samples at 16 kHz are too few for one frame", (long long)n);
    if (n_mels < 1 || n_mels > 1024) return cosy_error(COSY_ERR_INVALID_ARG, "whisper log-mel: %d mels", n_mels);
    cosy_status st = COSY_OK;
    float *padded = NULL, *filters = NULL, *feat = NULL;
    spectrum sp = {0};
    sparse_bank bank = {0};
    st = reflect_pad(audio, n, N_FFT / 2, &padded);
    if (st == COSY_OK) st = spectrum_init(&sp, N_FFT, n_mels);
    if (st != COSY_OK) goto done;
    filters = malloc(sizeof(float) * (size_t)n_mels * N_BINS);
    feat = malloc(sizeof(float) * (size_t)n_mels * frames);
    if (!filters || !feat) {
        st = cosy_error(COSY_ERR_NOMEM, "whisper log-mel: out of memory");
        goto done;
    }
    st = cosy_mel_filters_slaney(SAMPLE_RATE, N_FFT, n_mels, 0.0, 0.0, filters);
    if (st == COSY_OK) st = sparse_bank_init(&bank, filters, n_mels, N_BINS);
    if (st != COSY_OK) goto done;
    float window[N_FFT];
    torch_hann_window(window, N_FFT, 1);
    float max = -INFINITY;
    for (int f = 0; f < frames; f++) { /* the centred STFT's last frame is dropped */
        const float *x = padded + (int64_t)f * HOP;
        for (int i = 0; i < N_FFT; i++) sp.frame[i] = (double)(x[i] * window[i]);
        cosy_fft_real(sp.plan, sp.frame, sp.re, sp.im, sp.work);
        for (int k = 0; k < N_BINS; k++) sp.value[k] = sp.re[k] * sp.re[k] + sp.im[k] * sp.im[k];
        sparse_bank_apply(&bank, sp.value, sp.mel);
        for (int m = 0; m < n_mels; m++) {
            const float v = (float)log10(fmax(sp.mel[m], 1e-10));
            feat[(size_t)m * frames + f] = v;
            if (v > max) max = v;
        }
    }
    /* the floor depends on the whole utterance's maximum */
    const float floor_value = max - 8.0f;
    for (size_t i = 0; i < (size_t)n_mels * frames; i++) feat[i] = (fmaxf(feat[i], floor_value) + 4.0f) / 4.0f;
    *out = feat;
    *n_frames = frames;
    feat = NULL;
done:
    sparse_bank_free(&bank);
    spectrum_free(&sp);
    free(padded);
    free(filters);
    free(feat);
    return st;
}
