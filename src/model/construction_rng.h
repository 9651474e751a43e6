/*
 * construction_rng.h — random buffers the official CosyVoice3 constructors draw and no checkpoint holds.
 *
 * CausalHiFTGenerator's source (cosyvoice/hifigan/generator.py: SineGen2(causal=True),
 * SourceModuleHnNSF(causal=True)) draws at construction rand_ini = torch.rand(1, 9) (column 0 then
 * zeroed), sine_waves = torch.rand(1, 300 * sr, 9) — the "noise" every inference call reads from
 * sample 0 — and uv = torch.rand(1, 300 * sr, 1), from whatever state torch's global CPU generator
 * is in. For a model built by load_hyperpyyaml that state is fixed: CausalConditionalCFM.__init__
 * calls set_all_random_seed(0) and draws its randn(1, 80, 15000) noise; then come, in order,
 * CausalMaskedDiffWithDiT's own layers (input_embedding normal_, spk_embed_affine_layer's uniform
 * weight and bias), CausalConvRNNF0Predictor's (condnet convs and classifier, weight then bias —
 * nested objects are built before their owner), SineGen2's two draws, SourceModuleHnNSF's l_linear,
 * and uv. Each float uniform is one 32-bit draw; normal_ of n >= 16 values takes n draws (+16 when
 * n is not a multiple of 16; core/torch_rng.h). Checked bit for bit against the full-size official
 * model's values (cv3-tiny's official_cv3_* files; `cosy golden`, case official_cv3_rng) and against
 * the tiny model's own buffers (cv3-tiny's hift_sine_waves_head / hift_rand_ini, not copied to tests/data).
 */
#ifndef COSY_CONSTRUCTION_RNG_H
#define COSY_CONSTRUCTION_RNG_H

#include <stdint.h>
#include "core/torch_rng.h"
#include "model/hparams.h"

/* Samples in CausalHiFTGenerator's construction-time buffers: 300 s at the sample rate. */
int64_t cosy_cv3_source_buffer_len(const cosy_hparams *hp);

/* The CosyVoice3 source buffers of a model with hyperparameters hp: rand_ini [harmonics + 1]
 * (entry 0 is 0), the first n_samples rows of sine_waves [n_samples][harmonics + 1] and, when uv
 * is not NULL, the first n_uv values of uv. n_samples, n_uv <= cosy_cv3_source_buffer_len(hp). */
cosy_status cosy_cv3_source_buffers(const cosy_hparams *hp, float *rand_ini, float *sine_waves, int64_t n_samples, float *uv,
                                    int64_t n_uv);

/* torch's generator positioned at sine_waves[0] (rand_ini, entry 0 zeroed, written when not NULL): cosy_torch_rand
 * from it gives sine_waves row after row ([n][harmonics + 1]), so a caller can extend the buffer as it needs it
 * (a draw is one 32-bit value per float, so pieces concatenate to the one-call values). */
cosy_status cosy_cv3_source_rng(const cosy_hparams *hp, float *rand_ini, cosy_torch_rng *g);

#endif
