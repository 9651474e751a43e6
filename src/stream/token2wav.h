/*
 * token2wav.h — speech tokens of one utterance to audio, call by call, as CosyVoice2Model.token2wav
 * (cosyvoice/cli/model.py) does: flow on all tokens so far, keep the mel frames from 2·token_offset,
 * HiFT with the 8-frame mel cache, the source cache and the Hamming cross-fade (model/hift/t2w_hift.h).
 *
 * Which flow runs for a call:
 *   - a final call at offset 0 (a non-streamed utterance): full attention, as the reference;
 *   - a final call of a streamed utterance: chunk-causal by default (the same masks as every other
 *     chunk, computed incrementally); with reference_final, full attention over the whole utterance
 *     exactly as the official loop's last call (official-behaviour.md §1), which recomputes it all;
 *   - non-final calls: chunk-causal, incrementally (model/flow_stream.h) or, with stateless_flow,
 *     by recomputing all tokens like the reference.
 *
 * CosyVoice3 (CosyVoice3Model.token2wav, by the model's family): the same calls and flow choices with
 * the DiT flow (its chunk-causal stream, model/flow/cv3_stream.c) and CausalHiFT as a stream
 * (model/hift/cv3_causal_hift.h) in place of HiFT with its caches: the reference re-runs the vocoder on
 * all kept mel so far and emits what is new, 8 frames held back until the next call, no cross-fade; the
 * stream computes exactly those chunks once. Its final call of a streamed utterance is the official one
 * (full attention over all tokens) unless chunk_causal_final; reference_final, the window
 * (context_seconds) and overlap do not apply (overlap is refused). No random draws: the noise is the
 * model's construction-time buffer.
 *
 * The public cosy_token2wav_* functions (cosy.h) are this object; the session engine and the golden
 * runner use the extra hooks below (replayed random draws, per-call intermediates and timings).
 */
#ifndef COSY_TOKEN2WAV_H
#define COSY_TOKEN2WAV_H

#include "cosy.h"
#include "model/hift/hift.h"
#include "model/hift/t2w_hift.h"

typedef struct {
    double flow_ms, vocoder_ms;    /* of the last call */
    int mel_frames;                /* new mel frames the last call produced */
    int full_attention;            /* the last call ran the flow with full attention */
} cosy_t2w_call_info;

/* Replaces the random source of HiFT (golden replay); NULL restores the seeded generator. */
void cosy_token2wav_set_rng(cosy_token2wav *t, cosy_rng_source *rng);
/* Golden replay: every later call vocodes frames [2 offset, 2 offset + kept) of `mel` (channel-major
 * [80][n_frames], frame 0 = the first token after the prompt) instead of the flow's: the flow still runs
 * (cosy_token2wav_last_flow_mel), cosy_token2wav_last_mel then holds the replayed frames. NULL stops. For
 * checking the vocoder side against a reference whose flow output differs from ours by float32 noise. */
void cosy_token2wav_set_mel_replay(cosy_token2wav *t, const float *mel, int n_frames);
/* The last call's whole flow output, all frames after the prompt (channel-major [80][*n]); only
 * for calls that ran the stateless flow (*n = 0 after an incremental call). */
const float *cosy_token2wav_last_flow_mel(const cosy_token2wav *t, int *n);
/* The last call's flow mel (the frames kept, channel-major [80][*n], row stride *n). */
const float *cosy_token2wav_last_mel(const cosy_token2wav *t, int *n);
void cosy_token2wav_last_info(const cosy_token2wav *t, cosy_t2w_call_info *info);
/* The vocoder side (for its last call's intermediates). */
const cosy_t2w_hift *cosy_token2wav_vocoder(const cosy_token2wav *t);
/* Computes the voice's prompt work for the incremental flow now (otherwise done by the first
 * chunk-causal call): the session engine calls it while the LM is still prefilling. */
cosy_status cosy_token2wav_prepare(cosy_token2wav *t);
/* Bytes held by the incremental flow caches (the voice's prompt work + this utterance's state). */
size_t cosy_token2wav_cache_bytes(const cosy_token2wav *t);

#endif
