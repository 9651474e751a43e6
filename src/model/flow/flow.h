/*
 * flow.h — the flow-matching decoder of CosyVoice2 (cosyvoice/flow/flow.py,
 * CausalMaskedDiffWithXvec.inference) and CosyVoice3 (CausalMaskedDiffWithDiT.inference, by the
 * model's family): speech tokens -> 80-bin mel at 50 frames per second.
 *
 * CosyVoice3 has no encoder: the token embedding goes through its PreLookaheadLayer and is repeated
 * x2 to give mu, and the estimator is a DiT (cv3_dit.c); the CFM solver, the noise, the CFG and the
 * calls below are the same (cosy_flow_trace then holds the PreLookaheadLayer output, and est0_dit
 * the first DiT call's intermediates).
 *
 * Stages (each in its own file): the token encoder (cv2_encoder.c: embedding, pre-lookahead
 * convolution, chunk-causal conformer, x2 upsampling, up-conformer, projection to mu), the CFM
 * solver (flow.c: the fixed seed-0 noise buffer, 10 Euler steps on a cosine schedule with
 * classifier-free guidance), and its U-Net estimator (cv2_unet.c). streaming selects the
 * chunk masks of both networks; the results match the official code's under either setting.
 *
 * The flow state is built once per model (cosy_flow_get) and is read-only during inference, so
 * several sessions may call cosy_flow_inference at the same time; each call allocates its own
 * scratch memory, sized once from the number of frames.
 */
#ifndef COSY_FLOW_H
#define COSY_FLOW_H

#include <stdint.h>
#include "cosy.h"

typedef struct cosy_flow cosy_flow;

/* The flow of `model`, built on first use (thread-safe). */
cosy_status cosy_flow_get(cosy_model *model, cosy_flow **out);

/* Mel frames cosy_flow_inference writes for n tokens: token_mel_ratio * (n - look-ahead), where
 * the last pre_lookahead_len tokens are look-ahead context when !finalize. */
int cosy_flow_output_frames(const cosy_flow *flow, int n, int finalize);

/* The type the flow's matrix products run in: bf16 when the model's flow_dtype is bf16 (AUTO resolved
 * at load) and the CPU has AMX or AVX512-BF16, else f32. */
cosy_dtype cosy_flow_dtype(const cosy_flow *flow);

/* CausalMaskedDiffWithXvec.inference: tokens[0..n) are the speech tokens so far (when !finalize the last
 * pre_lookahead_len of them are look-ahead context only); prompt tokens/feat (feat time-major [2P, 80]); the
 * 192-d speaker embedding (normalised inside, as the reference does); streaming selects chunk masks in encoder
 * and estimator. Writes mel channel-major [80, *n_frames] for the frames after the prompt. */
cosy_status cosy_flow_inference(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens,
                                int n_prompt, const float *prompt_feat, const float *embedding, int streaming,
                                int finalize, float *mel_out, int *n_frames);

/* Intermediates of one CosyVoice3 DiT call (each pointer may be NULL), time-major like the reference's
 * [B, T, dim] tensors: temb [B][dim] (time_embed), xin [B][T][dim] (input_embed), blocks
 * [depth][B][T][dim] (each transformer block's output), normout [B][T][dim] (norm_out). */
typedef struct {
    float *temb, *xin, *blocks, *normout;
} cosy_flow_dit_trace;

/* Intermediates of one inference, for locating mismatches stage by stage. Each pointer may be
 * NULL; sizes use T = token_mel_ratio * (n_prompt + n - look-ahead), the frames incl. prompt:
 *   h    [T][encoder width]  encoder output before encoder_proj (time-major, as flow_ns_h); CosyVoice3:
 *                            the PreLookaheadLayer output [T / token_mel_ratio][80] (tokens, before x2)
 *   mu   [T][80]             encoder_proj output (time-major, as flow_ns_mu)
 *   est0 [2][80][T]          the first estimator call's output (channel-major, as flow_ns_est0_out)
 * and the wall time of the stages (filled in on return). */
typedef struct {
    float *h, *mu, *est0;
    double encoder_ms, solver_ms; /* token encoder; the Euler steps (all estimator calls) */
    int frames;                   /* T */
    cosy_flow_dit_trace *est0_dit; /* CosyVoice3: the first DiT call's intermediates (or NULL) */
} cosy_flow_trace;

cosy_status cosy_flow_inference_trace(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens,
                                      int n_prompt, const float *prompt_feat, const float *embedding, int streaming,
                                      int finalize, float *mel_out, int *n_frames, cosy_flow_trace *trace);

/* cosy_flow_inference with chunk masks and the window of cosy_flow_stream_set_window (`window` frames,
 * a whole number of chunks; 0 = none): the stateless twin of a windowed stream. */
cosy_status cosy_flow_inference_window(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens, int n_prompt,
                                       const float *prompt_feat, const float *embedding, int finalize, int window, float *mel_out,
                                       int *n_frames);

/* CausalConditionalDecoder.forward(x, mask (all ones), mu, t, spks, cond, streaming) for B batch
 * rows of T frames, channel-major like the reference: x, mu, cond and out are [B][80][T], spks
 * [B][80], t [B]. */
cosy_status cosy_flow_estimator(cosy_flow *flow, const float *x, const float *mu, const float *t, const float *spks,
                                const float *cond, int B, int T, int streaming, float *out);

/* cosy_flow_estimator with the CosyVoice3 DiT's intermediates (trace may be NULL; CosyVoice2: must be). */
cosy_status cosy_flow_estimator_trace(cosy_flow *flow, const float *x, const float *mu, const float *t, const float *spks,
                                      const float *cond, int B, int T, int streaming, float *out, cosy_flow_dit_trace *trace);

/* The t fed to each of the hp.cfm_steps Euler steps (CausalConditionalCFM's cosine schedule, in
 * float32 as the reference accumulates it), and the step sizes. */
void cosy_flow_t_schedule(const cosy_flow *flow, float *t, float *dt);

#endif
