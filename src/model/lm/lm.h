/*
 * lm.h — the speech-token language model of CosyVoice2 and CosyVoice3 (cosyvoice/llm/llm.py, Qwen2LM
 * and CosyVoice3LM): a Qwen2 decoder (RMSNorm, grouped-query attention with RoPE and q/k/v biases,
 * SwiGLU MLP) that reads a sequence of embeddings taken from text tokens (`embed_tokens`), speech
 * tokens (`speech_embedding`) and the two special inputs sos / task_id, and predicts the next speech
 * token through its own head (`llm_decoder`) as log-probabilities over lm_speech_vocab ids. The
 * families differ only in their special ids (the model file's hyperparameters say which):
 *   CosyVoice2  sos / task_id = the two rows of `llm_embedding`; head 6564 classes with bias;
 *               eos 6561, an unused id 6562, fill 6563; decoding stops on 6561..6563;
 *   CosyVoice3  sos / task_id = rows 6561 / 6563 of `speech_embedding` (no llm_embedding); head 6761
 *               classes without bias; eos 6562, fill 6564; decoding stops on any id of lm_stop_begin..
 *               lm_stop_end (6561..6760); its prompt text must hold <|endofprompt|> (lm_endofprompt).
 * In both, sampling_ids(ignore_eos=True) masks index speech_token_size (cosy_lm_min_len_mask): eos in
 * CosyVoice2 but sos in CosyVoice3, so there the minimum length never blocks eos (reproduced).
 *
 * Two objects:
 *   cosy_lm        the weights in their run-time type (model params lm_dtype: f32 = the reference
 *                  path, bf16, q8_0, q4_0), built once per model (cosy_lm_get) and read-only
 *                  afterwards; a matrix the file stores in that type is used in place from the map;
 *   cosy_lm_state  one sequence's key/value cache and scratch buffers, owned by a session.
 * The core primitive is cosy_lm_feed: append N embeddings at the current position (causal among
 * themselves, attending to everything fed before) and return the log-probabilities after the last
 * one. Prefill, one-token decode steps and the bistream's mid-stream chunks are all feeds; N > 8
 * goes through matrix-matrix products, N <= 8 through the gemv kernels (src/core/gemv.h) in one
 * pass over the weights. Short feeds of different sequences made at the same time share one pass
 * (batched decode, see cosy_lm_feed_batch below).
 *
 * Input layout (Qwen2LM.inference): [sos, embed_text(prompt_text ++ text), task_id,
 * embed_speech(prompt_speech)], then each generated token's speech embedding. The inference modes
 * of the reference differ only in what goes in there (the session builds it: stream/lm_prompt.h):
 *   zero-shot      prompt_text = the prompt transcript, prompt_speech = the prompt's speech tokens;
 *   cross-lingual  prompt_text empty, prompt_speech empty (the voice only reaches flow/HiFT);
 *                  CosyVoice3: the text itself starts with "...<|endofprompt|>";
 *   instruct2      prompt_text = the instruction ending in <|endofprompt|>, prompt_speech empty;
 *   SFT            prompt_text empty, prompt_speech empty (a built-in speaker's embedding is
 *                  ignored by the LM: Qwen2LM.inference never uses `embedding`).
 * The decode loop, sampling and bistream interleave that use these live in lm_run.c (lm_run.h).
 */
#ifndef COSY_LM_H
#define COSY_LM_H

#include <stdint.h>
#include "cosy.h"
#include "model/hparams.h"
#include "model/lm/lm_sampling.h"

typedef struct cosy_lm cosy_lm;
typedef struct cosy_lm_state cosy_lm_state;

/* Where an input embedding comes from (the values are the fixtures' "kind" codes). */
typedef enum {
    COSY_LM_SOS = 0,     /* llm_embedding row 0; CosyVoice3: speech_embedding[lm_sos] (id ignored) */
    COSY_LM_TASK = 1,    /* llm_embedding row 1; CosyVoice3: speech_embedding[lm_task_id] (id ignored) */
    COSY_LM_TEXT = 2,    /* embed_tokens[id], id < lm_text_vocab */
    COSY_LM_SPEECH = 3,  /* speech_embedding[id], id < lm_speech_vocab */
} cosy_lm_kind;

/* The LM of `model`, built on first use (thread-safe); its matrices have the model's lm_dtype. */
cosy_status cosy_lm_get(cosy_model *model, cosy_lm **out);

const cosy_hparams *cosy_lm_hparams(const cosy_lm *lm);
/* Run-time type of the matrices (a q8_0/q4_0 request keeps f32 for a matrix whose width is not a
 * multiple of 32; this reports the requested type). */
cosy_dtype cosy_lm_dtype(const cosy_lm *lm);
/* Whether a feed of 16+ positions on compact weights (bf16/q8_0/q4_0) may run through bf16 tiles where
 * bf16 products are fast (the default; 0 keeps it on the gemv kernels, e.g. to compare them). Returns
 * the previous setting. */
int cosy_lm_set_feed_tiles(cosy_lm *lm, int on);
/* The type of the head (llm_decoder) and, in a converted file, of the embedding tables, when the
 * body's matrices are `lm_dtype`: the same, except q8_0 for q4_0 — the head's error goes straight into
 * the log-probabilities, and the tables are read one row per position, so 4 bits would save no time
 * (the head is 6561 x 896: 3 MB per token more than q4_0, ~1.5% of the step's bytes). */
cosy_dtype cosy_lm_head_dtype(cosy_dtype lm_dtype);
/* Length of the log-probability vectors (lm_speech_vocab). */
int cosy_lm_vocab(const cosy_lm *lm);
int cosy_lm_hidden(const cosy_lm *lm);
/* Special speech ids of the model's family: eos (6561 v2, 6562 v3), the bistream fill token (6563 v2,
 * 6564 v3), whether an id ends decoding (6561..6563 v2, lm_stop_begin..lm_stop_end v3), and the index
 * sampling_ids(ignore_eos=True) masks before min_len (speech_token_size in both: eos in v2, sos in v3). */
int cosy_lm_eos(const cosy_lm *lm);
int cosy_lm_fill(const cosy_lm *lm);
int cosy_lm_is_stop(const cosy_lm *lm, int32_t id);
int cosy_lm_min_len_mask(const cosy_lm *lm);

/* Writes the embedding (lm_hidden floats) of one input position. COSY_ERR_INVALID_ARG if the id
 * is out of range for its table. */
cosy_status cosy_lm_embed(const cosy_lm *lm, cosy_lm_kind kind, int32_t id, float *out);

/* A cache for `capacity` positions (it grows by doubling if a feed needs more, up to
 * max_position_embeddings-like limit COSY_LM_MAX_POSITIONS). */
#define COSY_LM_MAX_POSITIONS 32768
cosy_status cosy_lm_state_create(cosy_lm *lm, int capacity, cosy_lm_state **out);
void cosy_lm_state_free(cosy_lm_state *st);
/* Makes room for `positions` in total now, so later feeds do not grow the cache. */
cosy_status cosy_lm_state_reserve(cosy_lm_state *st, int positions);
/* Forgets everything fed (position 0); keeps the buffers. */
void cosy_lm_state_reset(cosy_lm_state *st);
/* Positions fed so far. */
int cosy_lm_state_position(const cosy_lm_state *st);
cosy_lm *cosy_lm_state_lm(const cosy_lm_state *st);

/*
 * Feeds n >= 1 positions described by (kinds[i], ids[i]) at the current position and, if logp is
 * not NULL, writes log_softmax(llm_decoder(final_norm(h_last))) (cosy_lm_vocab floats) for the last
 * one. Ids are validated before anything is fed: on error the state is unchanged.
 */
cosy_status cosy_lm_feed(cosy_lm_state *st, const cosy_lm_kind *kinds, const int32_t *ids, int n, float *logp);
/* The same with caller-made embeddings [n][lm_hidden]. */
cosy_status cosy_lm_feed_embeddings(cosy_lm_state *st, const float *embeds, int n, float *logp);

/*
 * Batched decode across sequences. Each decoded token reads every weight once, so the steps of
 * several sequences (sessions) cost little more than one when they share that read. Feeds of at most
 * COSY_LM_BATCH_MAX positions made at the same time on different states of one LM — one LM producer
 * thread per session, each calling cosy_lm_feed — meet in a queue (lm_batch.c) and run as one forward:
 * per layer, the projections and the MLP as one multi-row gemv over the stacked rows, attention per
 * sequence against its own cache at its own position, then the final norm and head for each. Each
 * row's log-probabilities are bit-identical to the same feed run alone, for every lm_dtype and CPU
 * path (the gemv kernels compute each row independently of the others), so batching never changes
 * what a session samples.
 *   - Nobody waits for anybody: a batch thread (one per LM, started on first use) sleeps until a feed
 *     is queued and runs at once whatever is queued; a feed queued while a forward runs joins it at the
 *     next layer boundary while it is in its first half (its rows catch up through the layers already
 *     done, then go on with the others), else waits for the next forward.
 *   - A lone sequence (one state alive on the LM) feeds on its own thread as before: no queue, no
 *     hand-off. With two or more alive, a feed costs a hand-off to the batch thread and back.
 *   - A feed of more than COSY_LM_BATCH_MAX positions (a prefill) never queues: it runs alone on its
 *     caller's thread, its kernels interleaving with other forwards in the thread pool as before.
 * A state must be fed by one thread at a time (as always); different states from any threads.
 */
#define COSY_LM_BATCH_MAX 8
/* One position for each of n distinct states (1..COSY_LM_BATCH_MAX) as one forward pass on the
 * calling thread, no queue: states[i] gets (kinds[i], ids[i]) and, if logp and logp[i] are not NULL,
 * its log-probabilities in logp[i]. The same results as n cosy_lm_feed calls. Nothing is fed on error. */
cosy_status cosy_lm_feed_batch(cosy_lm_state *const *states, const cosy_lm_kind *kinds, const int32_t *ids, int n, float *const *logp);

/* What the batch thread has done since the LM was built (tests, benches). */
typedef struct {
    long forwards;  /* forwards it ran */
    long passes;    /* layer passes they took (lm_layers per forward, more where feeds caught up) */
    long requests;  /* feeds they carried */
    long shared;    /* forwards that carried more than one feed */
    int largest;    /* most feeds in one forward */
} cosy_lm_batch_counts;
void cosy_lm_batch_counts_get(cosy_lm *lm, cosy_lm_batch_counts *out);

/* ==================================================================================== */
/*
 * The decode driver (lm_run.c): one LM call of the reference — Qwen2LM.inference (text known in
 * full) or Qwen2LM.inference_bistream (text arriving in pieces) — as a step-driven object that a
 * producer thread advances one event at a time:
 *
 *   cosy_lm_run_begin(lm, &cfg, &run);
 *   cosy_lm_run_push_text(run, ids, n);  ...  cosy_lm_run_end_text(run);   (any thread)
 *   while (cosy_lm_run_step(run, &ev) == COSY_OK && ev.kind != COSY_LM_EVENT_DONE)
 *       if (ev.kind == COSY_LM_EVENT_TOKEN) use(ev.token); else wait for text;
 *   cosy_lm_run_free(run);
 *
 * Non-bistream (Qwen2LM.inference + inference_wrapper): step answers NEED_TEXT until end_text; then
 * it prefills [sos, prompt_text ++ text, task_id, prompt_speech], and each step decodes one token:
 * min_len = 2·Lt, max_len = 20·Lt from the TTS text length Lt alone (prompt text excluded); index
 * cosy_lm_min_len_mask (6561) is masked while the step index < min_len; a sampled stop id
 * (cosy_lm_is_stop) ends the run without being emitted; max_len steps end it too. Lt = 0 gives no
 * tokens (max_len = 0). CosyVoice3: prompt_text ++ text must hold <|endofprompt|> (refused otherwise).
 *
 * Bistream (inference_bistream, mix_ratio 5:15, DESIGN.md §1): text tokens are consumed one at a
 * time in push order, exactly as the reference consumes its one-token generator (pushing several at
 * once changes nothing). The prompt text heads the text stream (CosyVoice3: the prompt text must hold
 * <|endofprompt|>; everything up to and including the first one is fed right after sos, only the rest
 * heads the text stream); while prompt speech remains, every
 * 5 text tokens release [5 text, next 15 prompt speech] into the pending input; once the prompt
 * speech is used up, the LM decodes until it outputs the fill token 6563 — forced when the count of
 * outputs reaches next_fill ((⌊P/15⌋+1)·15 − P first, then every 16), never fed — and the next 5
 * text tokens become the next input. Index cosy_lm_min_len_mask is masked throughout (ignore_eos). After end_text the remaining text
 * and task_id are appended to the pending input (the flush) and decoding runs to eos. Choices on
 * the reference's quirks (cosyvoice-text-side.md §3.3):
 *   Q1  after a fill the last fed speech embedding is still pending and the flush feeds it a second
 *       time; reproduced by default (the official output has it), drop_stale_embedding = 1 drops it;
 *   Q3  the reference raises if the sampler returns a special id other than fill during phase B or
 *       other than eos during the flush; by default those ids are masked (-inf) in those phases so
 *       that cannot happen;
 *       strict_reference = 1 leaves them unmasked and fails the run like the reference;
 *   Q4  prompt speech not yet consumed when the text ends is dropped, as in the reference;
 *       the flush has no length limit in the reference; here it stops after max_token_text_ratio
 *       (20) tokens per TTS text token in total, or cfg.max_tokens.
 */
typedef struct cosy_lm_run cosy_lm_run;

typedef enum {
    COSY_LM_EVENT_TOKEN = 0,     /* ev.token: the next speech token, 0..speech_token_size-1 (every one the
                                  * LM yields: CosyVoice3's silent-token filter is the session's) */
    COSY_LM_EVENT_NEED_TEXT = 1, /* nothing to do until more text is pushed or the text ends */
    COSY_LM_EVENT_DONE = 2,      /* the call is over (eos, a length limit); further steps say DONE */
} cosy_lm_event_kind;

typedef struct {
    cosy_lm_event_kind kind;
    int32_t token;
} cosy_lm_event;

/* Called after every forward with what was fed and the resulting log-probabilities (before any
 * masking), for the golden runner and tests. */
typedef void (*cosy_lm_trace_fn)(void *ctx, const cosy_lm_kind *kinds, const int32_t *ids, int n, const float *logp, int vocab);

typedef struct {
    const int32_t *prompt_text;     /* copied at begin */
    int n_prompt_text;
    const int32_t *prompt_speech;   /* copied at begin */
    int n_prompt_speech;
    int bistream;
    cosy_lm_sample_fn sample;       /* NULL: ras_sampling with the model's top_p/top_k/win_size/tau_r */
    void *sample_ctx;
    uint64_t seed;                  /* for the default sampler */
    int drop_stale_embedding;       /* bistream Q1: 0 = feed it twice like the reference */
    int strict_reference;           /* bistream Q3: 1 = no extra masks; unexpected ids fail the run */
    int max_tokens;                 /* > 0: stop after this many emitted tokens */
    int min_tokens;                 /* > 0: every special id (so every stop) is masked until this many
                                       tokens are out; for benchmarks, as a random-weight CosyVoice3 LM
                                       samples one of its 200 stop ids within ~30 steps. 0: the model's rules */
    cosy_lm_state *state;           /* optional cache to reuse (reset at begin); else the run makes one */
    cosy_lm_trace_fn trace;
    void *trace_ctx;
} cosy_lm_run_config;

typedef struct {
    double prefill_ms;      /* forwards of more than one position */
    double decode_ms;       /* one-position forwards */
    double sample_ms;       /* sampling */
    double first_token_ms;  /* from begin to the first TOKEN event (-1 before it) */
    int prefill_positions, decode_steps, forwards, tokens;
    int truncated;          /* stopped by a length limit rather than eos */
} cosy_lm_timings;

cosy_lm_run_config cosy_lm_run_default_config(void);
cosy_status cosy_lm_run_begin(cosy_lm *lm, const cosy_lm_run_config *cfg, cosy_lm_run **out);
/* Appends TTS text tokens (validated against the text vocabulary). Thread-safe. */
cosy_status cosy_lm_run_push_text(cosy_lm_run *run, const int32_t *ids, int n);
/* No more text will come. Thread-safe. */
cosy_status cosy_lm_run_end_text(cosy_lm_run *run);
/* Advances to the next event. One thread at a time. COSY_ERR_CANCELLED after cancel. */
cosy_status cosy_lm_run_step(cosy_lm_run *run, cosy_lm_event *ev);
/* Makes the current or next step return COSY_ERR_CANCELLED (between forwards). Thread-safe. */
void cosy_lm_run_cancel(cosy_lm_run *run);
void cosy_lm_run_timings(const cosy_lm_run *run, cosy_lm_timings *out);
/* Every id sampled so far, fill tokens included (the reference's out_tokens). */
const int32_t *cosy_lm_run_outputs(const cosy_lm_run *run, int *n);
void cosy_lm_run_free(cosy_lm_run *run);

#endif
