/*
 * t2w_hift.c — the HiFT side of CosyVoice2's streaming token2wav: mel and source caches, the
 * Hamming cross-fade and the held-back tail (see t2w_hift.h for the per-chunk recipe).
 */
#include "model/hift/t2w_hift.h"
#include "model/hift/hift_internal.h"
#include "model/model.h"
#include "core/arena.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cosy_t2w_hift {
    cosy_hift *hift;
    int n_mels, spf;          /* mel bins, samples per frame */
    int cache_frames;         /* mel_cache_len: 8 as the reference, more with overlap_tokens */
    int overlap;              /* source_cache_len = cache_frames * 480: cached source, faded and held-back samples */
    double *window;           /* np.hamming(2 * overlap) */
    int cap_frames;           /* capacity of the HiFT input, in frames (cache included) */
    float *mel_in;            /* [n_mels][cap_frames] as a dense [n_mels][n_in] of the last call */
    float *wav, *source;      /* [cap_frames * spf] of the last call */
    int n_in;                 /* frames of the last call's input */
    int has_cache;
    float *mel_cache;         /* [n_mels][n_mel_cache] */
    int n_mel_cache;
    float *source_cache, *speech_tail; /* [overlap] */
    int n_source_cache, n_speech_tail;
};

static cosy_status ensure_capacity(cosy_t2w_hift *t, int frames)
{
    if (frames <= t->cap_frames) return COSY_OK;
    float *mel = cosy_aligned_alloc(sizeof(float) * (size_t)t->n_mels * frames);
    float *wav = cosy_aligned_alloc(sizeof(float) * (size_t)frames * t->spf);
    float *src = cosy_aligned_alloc(sizeof(float) * (size_t)frames * t->spf);
    if (!mel || !wav || !src) {
        cosy_aligned_free(mel);
        cosy_aligned_free(wav);
        cosy_aligned_free(src);
        return cosy_error(COSY_ERR_NOMEM, "t2w_hift: out of memory for %d frames", frames);
    }
    cosy_aligned_free(t->mel_in);
    cosy_aligned_free(t->wav);
    cosy_aligned_free(t->source);
    t->mel_in = mel;
    t->wav = wav;
    t->source = src;
    t->cap_frames = frames;
    t->n_in = 0;
    return COSY_OK;
}

cosy_status cosy_t2w_hift_create(cosy_hift *hift, int max_frames, cosy_t2w_hift **out)
{
    return cosy_t2w_hift_create_cached(hift, max_frames, COSY_T2W_MEL_CACHE, out);
}

cosy_status cosy_t2w_hift_create_cached(cosy_hift *hift, int max_frames, int cache_frames, cosy_t2w_hift **out)
{
    if (!hift || !out) return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: no vocoder or output pointer");
    if (cache_frames < 1 || cache_frames > 4000)
        return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: a mel cache of %d frames (1..4000)", cache_frames);
    if (max_frames < 0) return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: max_frames %d is negative", max_frames);
    if (max_frames == 0) max_frames = 200;
    cosy_t2w_hift *t = calloc(1, sizeof *t);
    if (!t) return cosy_error(COSY_ERR_NOMEM, "t2w_hift: out of memory");
    t->hift = hift;
    t->n_mels = hift->hp->hift_in_channels;
    t->spf = hift->upsample_scale;
    t->cache_frames = cache_frames;
    t->overlap = cache_frames * t->spf;
    t->window = malloc(sizeof(double) * 2 * (size_t)t->overlap);
    t->mel_cache = malloc(sizeof(float) * (size_t)t->n_mels * t->cache_frames);
    t->source_cache = malloc(sizeof(float) * (size_t)t->overlap);
    t->speech_tail = malloc(sizeof(float) * (size_t)t->overlap);
    cosy_status st = COSY_OK;
    if (!t->window || !t->mel_cache || !t->source_cache || !t->speech_tail) st = cosy_error(COSY_ERR_NOMEM, "t2w_hift: out of memory");
    if (st == COSY_OK) st = ensure_capacity(t, max_frames + t->cache_frames);
    if (st != COSY_OK) {
        cosy_t2w_hift_free(t);
        return st;
    }
    /* np.hamming(M): 0.54 - 0.46 cos(2 pi n / (M - 1)), in double */
    const int M = 2 * t->overlap;
    for (int n = 0; n < M; n++) t->window[n] = 0.54 - 0.46 * cos(2.0 * M_PI * n / (M - 1));
    *out = t;
    return COSY_OK;
}

void cosy_t2w_hift_free(cosy_t2w_hift *t)
{
    if (!t) return;
    cosy_aligned_free(t->mel_in);
    cosy_aligned_free(t->wav);
    cosy_aligned_free(t->source);
    free(t->window);
    free(t->mel_cache);
    free(t->source_cache);
    free(t->speech_tail);
    free(t);
}

void cosy_t2w_hift_reset(cosy_t2w_hift *t)
{
    if (!t) return;
    t->has_cache = 0;
    t->n_mel_cache = t->n_source_cache = t->n_speech_tail = 0;
}

int cosy_t2w_hift_max_samples(const cosy_t2w_hift *t, int n_frames)
{
    return (n_frames + t->cache_frames) * t->spf;
}

cosy_status cosy_t2w_hift_push(cosy_t2w_hift *t, const float *mel, int n_frames, int ld, int finalize,
                               cosy_rng_source *rng, float *out, int *n_out)
{
    if (!t || !out || !n_out) return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: no state or output buffer");
    *n_out = 0;
    if (n_frames < 0 || (n_frames > 0 && (!mel || ld < n_frames)))
        return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: %d new frames with row stride %d", n_frames, ld);
    if (n_frames == 0 && (!finalize || !t->has_cache))
        return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: an empty chunk is only valid as the final one after others");
    if (n_frames > INT32_MAX / 2 / t->spf - t->cache_frames)
        return cosy_error(COSY_ERR_INVALID_ARG, "t2w_hift: %d frames is too long", n_frames);

    /* token2wav: tts_mel = concat(hift_cache_mel, new mel) */
    const int n_cache = t->has_cache ? t->n_mel_cache : 0;
    const int n_in = n_cache + n_frames;
    COSY_TRY(ensure_capacity(t, n_in));
    for (int c = 0; c < t->n_mels; c++) {
        float *row = t->mel_in + (size_t)c * n_in;
        if (n_cache) memcpy(row, t->mel_cache + (size_t)c * n_cache, sizeof(float) * (size_t)n_cache);
        if (n_frames) memcpy(row + n_cache, mel + (size_t)c * ld, sizeof(float) * (size_t)n_frames);
    }
    t->n_in = n_in;
    const int T = n_in * t->spf;
    COSY_TRY(cosy_hift_inference(t->hift, t->mel_in, n_in, t->has_cache ? t->source_cache : NULL,
                                 t->has_cache ? t->n_source_cache : 0, rng, t->wav, t->source));

    /* the emitted speech is the HiFT output with its head cross-faded into the previous tail
     * (fade_in_out: float tensor * float64 window -> float64, stored back as float) */
    memcpy(out, t->wav, sizeof(float) * (size_t)T);
    if (t->has_cache) {
        /* the held-back tail is the audio of the cached frames, which the head of this output re-covers */
        int L = t->n_speech_tail;
        const float *tail = t->speech_tail;
        if (L > T) return cosy_error(COSY_ERR_INTERNAL, "t2w_hift: %d samples to cross-fade over %d", L, T);
        if (L == t->overlap) {
            for (int i = 0; i < L; i++) out[i] = (float)((double)out[i] * t->window[i] + (double)tail[i] * t->window[L + i]);
        } else {
            /* the previous chunk was shorter than the cache (tiny hops): fade over its audio with the
             * Hamming window of that length (the reference would fail on the shape mismatch) */
            for (int i = 0; i < L; i++) {
                double w_in = 0.54 - 0.46 * cos(2.0 * M_PI * i / (2 * L - 1));
                double w_out = 0.54 - 0.46 * cos(2.0 * M_PI * (L + i) / (2 * L - 1));
                out[i] = (float)((double)out[i] * w_in + (double)tail[i] * w_out);
            }
        }
    }
    if (finalize) {
        *n_out = T;
        cosy_t2w_hift_reset(t);
        return COSY_OK;
    }
    /* keep overlap mel, source and (faded) speech for the next chunk; hold back the speech tail */
    t->n_mel_cache = n_in < t->cache_frames ? n_in : t->cache_frames;
    for (int c = 0; c < t->n_mels; c++)
        memcpy(t->mel_cache + (size_t)c * t->n_mel_cache, t->mel_in + (size_t)c * n_in + (n_in - t->n_mel_cache),
               sizeof(float) * (size_t)t->n_mel_cache);
    t->n_source_cache = T < t->overlap ? T : t->overlap;
    memcpy(t->source_cache, t->source + (T - t->n_source_cache), sizeof(float) * (size_t)t->n_source_cache);
    t->n_speech_tail = t->n_source_cache;
    memcpy(t->speech_tail, out + (T - t->n_speech_tail), sizeof(float) * (size_t)t->n_speech_tail);
    t->has_cache = 1;
    *n_out = T - t->n_speech_tail;
    return COSY_OK;
}

int cosy_t2w_hift_mel_cache(const cosy_t2w_hift *t, const float **mel)
{
    if (mel) *mel = t->has_cache ? t->mel_cache : NULL;
    return t->has_cache ? t->n_mel_cache : 0;
}

int cosy_t2w_hift_source_cache(const cosy_t2w_hift *t, const float **source)
{
    if (source) *source = t->has_cache ? t->source_cache : NULL;
    return t->has_cache ? t->n_source_cache : 0;
}

int cosy_t2w_hift_last_call(const cosy_t2w_hift *t, const float **mel, const float **wav, const float **source)
{
    if (mel) *mel = t->mel_in;
    if (wav) *wav = t->wav;
    if (source) *source = t->source;
    return t->n_in;
}
