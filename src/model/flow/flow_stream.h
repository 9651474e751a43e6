/*
 * flow_stream.h — the flow at linear cost while streaming: keeps the per-layer state of the
 * chunk-causal encoder and estimator between calls instead of recomputing every frame from the
 * prompt on, as the reference's token2wav loop does (CosyVoice2Model.tts(stream=True) calls
 * flow.inference on a growing token prefix every chunk: quadratic in the utterance length).
 *
 * Why the result is the same: with streaming=True every attention layer uses a static chunk mask
 * (25 tokens in the token encoder, 50 frames after the x2 upsampling and in the U-Net estimator)
 * with all left chunks, every convolution is causal except PreLookaheadLayer.conv1 (which reads 3
 * tokens ahead: the look-ahead tokens of a non-final call), and the CFM noise is one fixed buffer
 * indexed by frame. So once a chunk is complete and its look-ahead tokens are real tokens, none of
 * its values (keys/values of every attention layer at every Euler step and CFG row, convolution
 * inputs, the mel) can change in a later call. Each call recomputes from the start of the first
 * incomplete chunk: the frames of an incomplete chunk attend to later frames of that chunk, which
 * the reference recomputes when they arrive. Any sequence of calls therefore gives exactly the mel
 * of cosy_flow_inference(tokens so far, streaming=1, finalize) — not only the default schedule —
 * for at most one extra chunk of work per call.
 *
 * CosyVoice3 (CausalMaskedDiffWithDiT) streams through the same calls (cv3_stream.c): its DiT's chunk
 * mask, causal conv pos-emb and PreLookaheadLayer give the same argument; its prompt state holds the
 * prompt's chunks the same way. It has no window (set_window refuses one).
 *
 * Only the chunk-causal mode is cached: the reference's own final call runs with full attention
 * (official-behaviour.md §1), which no cache can reproduce; call cosy_flow_inference for that.
 *
 * Memory: the estimator's keys/values dominate — per mel frame, layers x cfm_steps x 2 CFG rows x
 * (K + V) floats (4.6 MB at the CosyVoice2-0.5B size, ~230 MB per second of audio), held in f32
 * pages of one attention chunk each, allocated as chunks arrive and freed with the stream.
 */
#ifndef COSY_FLOW_STREAM_H
#define COSY_FLOW_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"
#include "model/flow/flow.h"

/* Per-voice state: the prompt (tokens, mel, speaker vector) and the flow's work on the prompt's
 * chunks that no speech token can change — chunks of pre_lookahead_len tokens before the prompt
 * ends: floor((P - 3) / 25) of them. Computed once, read-only afterwards, shared by every stream
 * of the voice (also from several threads). prompt_feat is time-major [2P][80]. */
typedef struct cosy_flow_prompt cosy_flow_prompt;
cosy_status cosy_flow_prompt_create(cosy_flow *flow, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat,
                                    const float *embedding, cosy_flow_prompt **out);
/* The same, caching at most max_chunks chunks (< 0: all it can; 0: none, every stream then
 * recomputes the whole prompt — to measure what the cache saves). */
cosy_status cosy_flow_prompt_create_limited(cosy_flow *flow, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat,
                                            const float *embedding, int max_chunks, cosy_flow_prompt **out);
/* The prompt state of a voice from the flow's voice cache (computed and cached on a miss): every later
 * request with the same prompt tokens, mel and embedding reuses it instead of paying for it again.
 * The caller owns one reference (release it with cosy_flow_prompt_free). */
cosy_status cosy_flow_prompt_get(cosy_flow *flow, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat,
                                 const float *embedding, cosy_flow_prompt **out);
/* Voices cached, their bytes, and the lookups that found / did not find one. */
void cosy_flow_voice_cache_stats(cosy_flow *flow, int *voices, size_t *bytes, long *hits, long *misses);
/* Releases a reference (prompts are shared by their creator, the voice cache and the streams that use
 * them: the last release frees it). */
void cosy_flow_prompt_free(cosy_flow_prompt *p);
/* Chunks (of 25 tokens) whose state the prompt holds. */
int cosy_flow_prompt_chunks(const cosy_flow_prompt *p);
size_t cosy_flow_prompt_bytes(const cosy_flow_prompt *p);

/* Per-session incremental state (one thread at a time). The prompt must outlive it. */
typedef struct cosy_flow_stream cosy_flow_stream;
cosy_status cosy_flow_stream_create(cosy_flow *flow, const cosy_flow_prompt *prompt, cosy_flow_stream **out);

/* Bounds what the stream keeps (our option; the reference attends to every left chunk): from then
 * on the estimator's queries of chunk g see only the chunks holding prompt frames and the last
 * `frames` frames up to the end of chunk g (a whole number of attention chunks, >= one chunk), and
 * the keys/values no later query can see are released. The mel then differs from the reference's
 * once an utterance outgrows the window (cosy_flow_inference_window computes the same statelessly).
 * 0: no window. Set before the first call. */
cosy_status cosy_flow_stream_set_window(cosy_flow_stream *s, int frames);

/* tokens[0..n) are all speech tokens so far (each call extends the previous call's sequence; when
 * !finalize the last pre_lookahead_len are look-ahead only). Writes mel channel-major
 * [80][*n_frames] (mel_out holds 80 * 2 * (n - look-ahead - offset) floats) for the frames
 * [2 offset, 2 (n - (finalize ? 0 : look-ahead))) — exactly the frames the official token2wav keeps
 * from cosy_flow_inference(tokens, n, ..., streaming=1, finalize)[:, :, 2 offset:] — computing only
 * what is new. 0 <= offset <= n - look-ahead; an offset before the previous call's end (overlapping
 * windows) reads frames already computed. After a finalize call the stream is finished. A failed
 * call leaves the stream as it was before it. */
cosy_status cosy_flow_stream_step(cosy_flow_stream *s, const int32_t *tokens, int n, int offset, int finalize, float *mel_out,
                                  int *n_frames);
/* Bytes the stream holds: its cache pages (not the prompt's shared ones), position tables, token
 * copy and scratch arena. */
size_t cosy_flow_stream_bytes(const cosy_flow_stream *s);
/* Bytes of the stream's own key/value blocks (what a window bounds). */
size_t cosy_flow_stream_kv_bytes(const cosy_flow_stream *s);
/* Chunks final so far (prompt chunks included); the next call recomputes from 25 x this token. */
int cosy_flow_stream_chunks(const cosy_flow_stream *s);
void cosy_flow_stream_free(cosy_flow_stream *s);

#endif
