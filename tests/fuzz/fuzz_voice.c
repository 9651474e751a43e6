/*
 * fuzz_voice.c — libFuzzer target for voice files (src/model/voice.c: a GGUF with the voice's
 * token lists, prompt mel and speaker vectors), as `cosy voice` and the server load them, then
 * cosy_voice_validate against the cv2-tiny hyperparameters as the engine does before use.
 * Invariants on a loaded voice: each array is present exactly when its length is positive, the
 * lengths are non-negative, every value is read; a validated voice has the model's shapes.
 * Seeds: voice files written by make_seeds (one from the cv2-voice-tiny fixture's prompt data).
 */
#include "fuzz.h"
#include "model/model.h"
#include "model/voice/voice.h"

#include <string.h>

static cosy_model g_model; /* only its hyperparameters: what cosy_voice_validate reads */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (cosy_hparams_preset("cv2-tiny", &g_model.hp) != COSY_OK) abort();
    return 0;
}

static double sum_i32(const int32_t *p, int n)
{
    FUZZ_CHECK(n >= 0 && (n == 0 || p));
    double s = 0;
    for (int i = 0; i < n; i++) s += p[i];
    return s;
}

static double sum_f32(const float *p, long n)
{
    FUZZ_CHECK(n >= 0 && (n == 0 || p));
    double s = 0;
    for (long i = 0; i < n; i++) s += p[i];
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cosy_voice *v = NULL;
    if (cosy_voice_load_mem(data, size, "fuzz.voice", &v) != COSY_OK) return 0;
    FUZZ_CHECK(v->name != NULL);
    volatile double s = sum_i32(v->prompt_text, v->n_prompt_text) + sum_i32(v->llm_prompt_tokens, v->n_llm_prompt_tokens) +
                        sum_i32(v->flow_prompt_tokens, v->n_flow_prompt_tokens) + sum_f32(v->flow_embedding, v->embed_dim) +
                        sum_f32(v->llm_embedding, v->n_llm_embedding);
    FUZZ_CHECK(v->n_prompt_frames >= 0 && v->n_mels >= 0);
    s += sum_f32(v->prompt_feat, (long)v->n_prompt_frames * v->n_mels);
    (void)s;
    if (cosy_voice_validate(v, &g_model) == COSY_OK) {
        FUZZ_CHECK(v->embed_dim == g_model.hp.spk_embed_dim);
        FUZZ_CHECK(v->n_prompt_frames == g_model.hp.token_mel_ratio * v->n_flow_prompt_tokens);
    }
    cosy_voice_free(v);
    return 0;
}
