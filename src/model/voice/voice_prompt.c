/* voice_prompt.c — prompt audio to the networks' inputs (see voice_prompt.h). */
#include "model/voice/voice_prompt.h"
#include "core/error.h"
#include "io/audio.h"
#include "model/voice/resample.h"

#include <stdlib.h>
#include <string.h>

int cosy_prompt_token_count(int whisper_frames) { return ((whisper_frames + 1) / 2 + 1) / 2; }

int cosy_prompt_align(int mel_frames, int tokens) { return mel_frames / 2 < tokens ? mel_frames / 2 : tokens; }

cosy_status cosy_prompt_load(const float *audio, int64_t n, int sample_rate, int target_rate, const char *name, float **out,
                             int64_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    /* load_wav: assert sample_rate >= min_sr (16000) — its message names the target rate, 24000
     * for the first load; ours says what is required */
    if (sample_rate < COSY_PROMPT_MIN_RATE)
        return cosy_error(COSY_ERR_UNSUPPORTED,
                          "%s: wav sample rate %d Hz is too low: prompt audio must be sampled at %d Hz or more "
                          "(the official frontend refuses it too)",
                          name, sample_rate, COSY_PROMPT_MIN_RATE);
    if (sample_rate == target_rate) {
        float *copy = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (!copy) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
        memcpy(copy, audio, sizeof(float) * (size_t)n);
        *out = copy;
        *n_out = n;
        return COSY_OK;
    }
    cosy_status st = cosy_resample(audio, n, sample_rate, target_rate, out, n_out);
    return st == COSY_OK ? st : cosy_error_prefix(st, "%s", name);
}

void cosy_prompt_features_free(cosy_prompt_features *f)
{
    free(f->speech16k);
    free(f->speech24k);
    free(f->speech_feat);
    free(f->fbank);
    free(f->campplus_input);
    free(f->whisper_mel);
    memset(f, 0, sizeof *f);
}

cosy_status cosy_prompt_features_compute(const float *audio, int64_t n, int sample_rate, const char *name,
                                         const cosy_prompt_mel_params *mel, cosy_prompt_features *out)
{
    memset(out, 0, sizeof *out);
    cosy_prompt_mel_params defaults = cosy_prompt_mel_default_params();
    if (!mel) mel = &defaults;
    cosy_status st = cosy_prompt_load(audio, n, sample_rate, COSY_PROMPT_MIN_RATE, name, &out->speech16k, &out->n16);
    if (st != COSY_OK) goto fail;
    if (out->n16 > COSY_PROMPT_MAX_SAMPLES_16K) {
        st = cosy_error(COSY_ERR_UNSUPPORTED,
                        "%s: the prompt is %.2f s long: do not support extract speech token for audio longer than 30s "
                        "(the speech tokenizer's limit, %d samples at 16 kHz; this one has %lld): cut it to 30 s or less",
                        name, (double)out->n16 / COSY_PROMPT_MIN_RATE, COSY_PROMPT_MAX_SAMPLES_16K, (long long)out->n16);
        goto fail;
    }
    st = cosy_prompt_load(audio, n, sample_rate, mel->sample_rate, name, &out->speech24k, &out->n24);
    if (st != COSY_OK) goto fail;
    /* the shortest prompt every feature and the alignment can take: one fbank frame (25 ms) and two
     * mel frames (one token) */
    if (cosy_fbank_frames(out->n16) < 1 || cosy_whisper_mel_frames(out->n16) < 1 || cosy_prompt_mel_frames(mel, out->n24) < 2) {
        st = cosy_error(COSY_ERR_INVALID_ARG, "%s: the prompt is %.3f s long: too short to make a voice from (at least %.3f s is needed)", name,
                        (double)n / sample_rate, 2.0 * mel->hop / mel->sample_rate);
        goto fail;
    }
    out->n_mels = mel->n_mels;
    st = cosy_prompt_mel(mel, out->speech24k, out->n24, &out->speech_feat, &out->n_speech_feat);
    if (st == COSY_OK) st = cosy_kaldi_fbank(out->speech16k, out->n16, &out->fbank, &out->n_fbank);
    if (st == COSY_OK) st = cosy_whisper_log_mel(out->speech16k, out->n16, COSY_WHISPER_MELS, &out->whisper_mel, &out->n_whisper);
    if (st != COSY_OK) {
        cosy_error_prefix(st, "%s", name);
        goto fail;
    }
    size_t fbank_bytes = sizeof(float) * (size_t)out->n_fbank * COSY_FBANK_BINS;
    out->campplus_input = malloc(fbank_bytes);
    if (!out->campplus_input) {
        st = cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    memcpy(out->campplus_input, out->fbank, fbank_bytes);
    cosy_subtract_frame_mean(out->campplus_input, out->n_fbank, COSY_FBANK_BINS);
    out->n_tokens = cosy_prompt_token_count(out->n_whisper);
    out->token_len = cosy_prompt_align(out->n_speech_feat, out->n_tokens);
    return COSY_OK;
fail:
    cosy_prompt_features_free(out);
    return st;
}

cosy_status cosy_prompt_features_from_file(const char *path, const cosy_prompt_mel_params *mel, cosy_prompt_features *out)
{
    memset(out, 0, sizeof *out);
    cosy_wav audio;
    COSY_TRY(cosy_audio_read(path, &audio));
    cosy_status st = cosy_prompt_features_compute(audio.samples, audio.n_samples, audio.sample_rate, path, mel, out);
    cosy_wav_free(&audio);
    return st;
}
