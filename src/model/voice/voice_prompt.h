/*
 * voice_prompt.h — a prompt recording to the inputs of the speaker encoder, the speech tokenizer
 * and the flow, as the official zero-shot frontend computes them (cosyvoice/cli/frontend.py,
 * frontend_zero_shot; load_wav in cosyvoice/utils/file_utils.py):
 *
 *   audio (any rate >= 16 kHz, channels averaged)
 *     ├─ Resample -> 24 kHz -> prompt mel [F24][80]               (_extract_speech_feat)
 *     └─ Resample -> 16 kHz ─┬─ kaldi fbank - its mean [F][80]  -> CAM++        (_extract_spk_embedding)
 *                            └─ whisper log-mel [128][T]        -> S3TokenizerV2 (_extract_speech_token)
 *
 * The reference decodes the file three times (once at 24 kHz, twice at 16 kHz); we decode once.
 * It refuses rates below 16 kHz (load_wav's assertion) and audio longer than 30 s at 16 kHz
 * (_extract_speech_token's assertion); so do we, with its reasons, and also audio too short for
 * the features (the reference fails inside torch there).
 *
 * The networks (CAM++, the tokenizer) are not here: this stops at their inputs. The 2:1 alignment
 * that follows them needs only the token count, which the whisper frame count fixes.
 */
#ifndef COSY_VOICE_PROMPT_H
#define COSY_VOICE_PROMPT_H

#include <stdint.h>
#include "cosy.h"
#include "model/voice/voice_features.h"

#define COSY_PROMPT_MIN_RATE 16000
#define COSY_PROMPT_MAX_SAMPLES_16K 480000   /* 30 s at 16 kHz */
#define COSY_WHISPER_MELS 128

typedef struct {
    float *speech16k;         /* [n16] load_wav(wav, 16000) */
    int64_t n16;
    float *speech24k;         /* [n24] load_wav(wav, 24000) */
    int64_t n24;
    float *speech_feat;       /* [n_speech_feat][n_mels] prompt mel (time-major), before alignment */
    int n_speech_feat, n_mels;
    float *fbank;             /* [n_fbank][80] kaldi fbank */
    float *campplus_input;    /* [n_fbank][80] fbank minus its mean over frames */
    int n_fbank;
    float *whisper_mel;       /* [128][n_whisper] the tokenizer's feats */
    int n_whisper;
    int n_tokens;             /* T' = ceil(ceil(T / 2) / 2): tokens the tokenizer will give */
    int token_len;            /* L = min(F24 / 2, T'): tokens and 2L mel frames kept by the alignment */
} cosy_prompt_features;

/* From mono samples at `sample_rate`; `name` (the file) is used in messages. */
cosy_status cosy_prompt_features_compute(const float *audio, int64_t n, int sample_rate, const char *name,
                                         const cosy_prompt_mel_params *mel, cosy_prompt_features *out);
/* From an audio file (any format libsndfile reads). */
cosy_status cosy_prompt_features_from_file(const char *path, const cosy_prompt_mel_params *mel, cosy_prompt_features *out);
void cosy_prompt_features_free(cosy_prompt_features *f);

/* load_wav's resampling step alone: refuses rates below 16 kHz, returns a malloc'd copy at
 * target_rate (a plain copy when the rates agree). */
cosy_status cosy_prompt_load(const float *audio, int64_t n, int sample_rate, int target_rate, const char *name, float **out,
                             int64_t *n_out);

/* The speech tokenizer's output length for T whisper frames (two stride-2 convolutions). */
int cosy_prompt_token_count(int whisper_frames);
/* frontend_zero_shot's 2:1 alignment (resample_rate 24000): L = min(mel_frames / 2, tokens). */
int cosy_prompt_align(int mel_frames, int tokens);

#endif
