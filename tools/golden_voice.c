/*
 * golden_voice.c — prompt-audio feature cases of the main fixture set: feat_resample (load_wav's
 * Resample) and feat_whisper128 (the tokenizer's log-mel), on the stored synthetic signal.
 *
 * Its feat_mel24k and feat_fbank16k cases stay unrun: their tolerances (1e-4, 1e-3) are below the
 * reference's own float32 FFT noise on that signal, whose spectral valleys sit ~1e-7 below the frame
 * energy: the exact (double) transform differs from the stored outputs by 4.5e-3 and 2.2e-3. The
 * same stages pass on the voice set's speech (tests/test_voice_frontend.c, docs/voice-frontend.md).
 * The voice set's end-to-end cases also need CAM++ and the speech tokenizer (a later increment).
 */
#include "golden.h"
#include "core/error.h"
#include "model/resample.h"
#include "model/voice_features.h"
#include "model/voice_prompt.h"

#include <stdlib.h>

cosy_status golden_feat_resample(golden_ctx *ctx);
cosy_status golden_feat_whisper128(golden_ctx *ctx);

cosy_status golden_feat_resample(golden_ctx *ctx)
{
    npy_array wav;
    COSY_TRY(golden_load(ctx, "feat_wav24k", &wav));
    float *out;
    int64_t n;
    cosy_status st = cosy_resample(wav.f32, wav.numel, 24000, 16000, &out, &n);
    if (st == COSY_OK) {
        golden_check(ctx, "feat_resample_24k_to_16k", out, n);
        free(out);
    }
    npy_free(&wav);
    return st;
}

cosy_status golden_feat_whisper128(golden_ctx *ctx)
{
    npy_array wav;
    COSY_TRY(golden_load(ctx, "feat_wav16k", &wav));
    float *feat;
    int frames;
    cosy_status st = cosy_whisper_log_mel(wav.f32, wav.numel, COSY_WHISPER_MELS, &feat, &frames);
    if (st == COSY_OK) {
        golden_check(ctx, "feat_whisper128", feat, (int64_t)frames * COSY_WHISPER_MELS);
        free(feat);
    }
    npy_free(&wav);
    return st;
}
