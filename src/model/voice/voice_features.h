/*
 * voice_features.h — the three spectral features the official CosyVoice2 frontend computes from a
 * prompt recording (cosyvoice/cli/frontend.py, frontend_zero_shot), each reproducing its reference:
 *
 *   prompt mel    Matcha-TTS `mel_spectrogram` (matcha/utils/audio.py) on the 24 kHz audio: reflect
 *                 padding (n_fft - hop) / 2 each side, STFT without centring, periodic Hann window,
 *                 magnitude sqrt(re^2 + im^2 + 1e-9), librosa Slaney mel filters, log(max(x, 1e-5)).
 *                 [frames][n_mels], frames = N / hop for the CosyVoice2 parameters.
 *   kaldi fbank   torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0) on the 16 kHz audio:
 *                 25 ms frames every 10 ms (snip edges), DC removal, pre-emphasis 0.97, Povey window,
 *                 512-point power spectrum, 80 triangular mel bins 20 Hz .. Nyquist, log(max(x, FLT_EPSILON)).
 *                 [frames][80], frames = 1 + (N - 400) / 160. CAM++ gets it minus its mean over frames.
 *   whisper mel   whisper.log_mel_spectrogram(n_mels=128) on the 16 kHz audio: centred STFT (reflect),
 *                 n_fft 400, hop 160, periodic Hann, |X|^2 without the last frame, Slaney mel filters,
 *                 log10(max(x, 1e-10)), max(x, global max - 8), (x + 4) / 4. [n_mels][frames],
 *                 frames = N / 160 (the speech tokenizer's `feats` layout).
 *
 * Precision: frames are prepared in float32 as the reference does, windows and filter banks are
 * computed the way it computes them (torch's float32 window formula, librosa's float64 filters
 * rounded to float32, kaldi's float32 bins); the spectra and mel products are double (core/fft.h
 * says why) and rounded once at the end.
 */
#ifndef COSY_VOICE_FEATURES_H
#define COSY_VOICE_FEATURES_H

#include <stdint.h>
#include "cosy.h"
#include "model/hparams.h"

/* The prompt mel's parameters (the model yaml's feat_extractor). */
typedef struct {
    int sample_rate;   /* 24000 */
    int n_fft;         /* 1920 */
    int hop;           /* 480 */
    int win;           /* 1920 (<= n_fft; a shorter window is centred in the frame, as torch.stft does) */
    int n_mels;        /* 80 */
    float fmin;        /* 0 */
    float fmax;        /* 8000; 0 = Nyquist (CosyVoice3's yaml says null) */
} cosy_prompt_mel_params;

/* CosyVoice2's values (cosyvoice2.yaml). */
cosy_prompt_mel_params cosy_prompt_mel_default_params(void);
/* A model's values (its yaml's feat_extractor, at the model's output rate). */
cosy_prompt_mel_params cosy_prompt_mel_params_from_hparams(const cosy_hparams *hp);

/* librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) with its defaults (Slaney mel scale and area
 * normalisation), float32: out[n_mels][n_fft / 2 + 1]. f_max <= 0 means sr / 2. */
cosy_status cosy_mel_filters_slaney(int sample_rate, int n_fft, int n_mels, double f_min, double f_max, float *out);

/* Frames each feature gives for n samples (0 if too short for even one). */
int cosy_prompt_mel_frames(const cosy_prompt_mel_params *p, int64_t n);
int cosy_fbank_frames(int64_t n);
int cosy_whisper_mel_frames(int64_t n);

/* Each allocates *out (free() it) and sets *n_frames; audio too short for one frame (or for the
 * reference's reflect padding) is refused with COSY_ERR_INVALID_ARG. */
cosy_status cosy_prompt_mel(const cosy_prompt_mel_params *p, const float *audio, int64_t n, float **out, int *n_frames);
cosy_status cosy_kaldi_fbank(const float *audio16k, int64_t n, float **out, int *n_frames);
cosy_status cosy_whisper_log_mel(const float *audio16k, int64_t n, int n_mels, float **out, int *n_frames);

/* feat - feat.mean(dim=0) for [rows = frames][cols]: each column loses its mean over the frames (in place). */
void cosy_subtract_frame_mean(float *feat, int rows, int cols);

#define COSY_FBANK_BINS 80

#endif
