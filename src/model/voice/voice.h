/*
 * voice.h — a voice: everything the engine needs about a prompt speaker, computed once and kept
 * in a small file (the reference recomputes it per request or keeps it in spk2info.pt):
 *   prompt text tokens (the transcript of the prompt audio, for the LM prefix),
 *   LM prompt speech tokens, flow prompt speech tokens (the same list in the reference's
 *   zero-shot frontend; separate here because spk2info.pt and the fixtures store both),
 *   the flow prompt mel [frames, 80] (2 frames per flow prompt token),
 *   the speaker x-vectors for the LM (unused by CosyVoice2) and the flow (192-d).
 * SFT speakers (built-in voices without prompt audio) have no prompt text/tokens/mel.
 *
 * File format: GGUF with general.architecture = "cosyvoice2-voice" and tensors voice.<field>
 * (int32 tokens, f32 mel and embeddings), plus cosyvoice2-voice.name / .transcript strings.
 */
#ifndef COSY_VOICE_H
#define COSY_VOICE_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"

struct cosy_voice {
    char *name;
    char *transcript;            /* optional, for display */
    int32_t *prompt_text;
    int n_prompt_text;
    int32_t *llm_prompt_tokens;
    int n_llm_prompt_tokens;
    int32_t *flow_prompt_tokens;
    int n_flow_prompt_tokens;
    float *prompt_feat;          /* [n_prompt_frames, n_mels] time-major */
    int n_prompt_frames, n_mels;
    float *llm_embedding;        /* [n_llm_embedding] (optional; embed_dim when valid) */
    int n_llm_embedding;
    float *flow_embedding;       /* [embed_dim] */
    int embed_dim;
};

/* An empty voice to fill in (all arrays NULL / 0). */
cosy_voice *cosy_voice_alloc(const char *name);
/* A synthetic zero-shot voice for benchmarks (no prompt audio needed): prompt_tokens flow = LM
 * prompt speech tokens (75 = 3 s, as the reference's zero-shot frontend uses one list for both),
 * 2 mel frames per token of a speech-like log-mel (a spectral tilt from about -2.5 at the lowest bin
 * to -8.5 at the highest, a 4 Hz syllable envelope and noise, within log(1e-5) .. 2 as real prompt
 * mels), prompt_text_tokens transcript ids below the Qwen2 special tokens, and a 192-d N(0, 1)
 * speaker vector (CAM++ vectors are unnormalised; the flow normalises). Seeded: the same seed
 * gives the same voice. */
cosy_status cosy_voice_synthetic(const cosy_model *m, uint64_t seed, int prompt_tokens, int prompt_text_tokens, cosy_voice **out);
/* Checks the voice against a model's hyperparameters: token ranges, 2:1 mel/token ratio, mel
 * width, embedding sizes (flow and, when present, LM), text ids within the vocabulary. */
cosy_status cosy_voice_validate(const cosy_voice *v, const cosy_model *m);
/* cosy_voice_load over the bytes of a voice file in memory; `name` is used in messages. */
cosy_status cosy_voice_load_mem(const void *data, size_t size, const char *name, cosy_voice **out);

#endif
