/*
 * schedule.h — when token2wav runs during streaming, and on which tokens.
 *
 * A schedule sees only counts: how many speech tokens the LM has produced and whether it has
 * finished. It answers "run token2wav now on tokens[0, end), emitting audio from token `offset`,
 * finalize or not". Three strategies:
 *
 *  - COSY_CHUNK_DEFAULT — CosyVoice2Model.tts(stream=True) (cosyvoice/cli/model.py): the first hop
 *    is token_hop_len (25) plus the prompt pad ceil(P/25)*25 - P, so prompt + first chunk fill whole
 *    25-token blocks; every call also needs pre_lookahead_len (3) look-ahead tokens; after each call
 *    the hop is multiplied by stream_scale_factor (2) up to 4 x 25 = 100; when the LM has finished
 *    and fewer than hop + 3 tokens remain, one final call takes everything. (The reference keeps the
 *    grown hop on the shared model object, so its second request starts at 100; ours is per session.)
 *  - COSY_CHUNK_EQUAL — fixed hops of `chunk_tokens` (runtime/triton_trtllm streaming_inference.py
 *    "equal", CHUNK_SIZE 25), no prompt alignment.
 *  - COSY_CHUNK_EXPONENTIAL — hops of chunk_tokens * 2^i ("exponential"), capped at max_hop_tokens
 *    when that is > 0.
 *
 * Overlap (equal/exponential): the next window starts `overlap_tokens` before the end of the
 * previous hop, i.e. the offset advances by hop - overlap (never less than 1 token); the audio of the
 * re-covered tokens is produced again and replaces the held-back tail of the previous chunk through
 * the vocoder's cross-fade (see stream/session.c).
 *
 * A small first chunk (cosy_schedule_set_first_chunk, any strategy), after NVIDIA's Triton runtime
 * for CosyVoice2 (runtime/triton_trtllm/model_repo/cosyvoice2/1/model.py: token_hop_len = 15, the
 * first call at 15 + 3 look-ahead tokens, then hops of 25·2^i without a cap or prompt alignment):
 * the first call comes at F + lookahead tokens and emits F tokens, with no prompt alignment; then the
 * strategy's own schedule runs from offset F as if the prompt were P + F tokens long. For the default
 * strategy that realigns the second call to the flow's 25-token chunks (hop 25 + pad, with pad =
 * ceil((P+F)/25)·25 - (P+F)), so only the first chunk's partial flow chunk is ever recomputed; the
 * exponential strategy with chunk 25 and no maximum hop is Triton's schedule exactly (15, 25, 50,
 * 100, 200, ...). The flow is chunk-causal: the first call's frames see only the F tokens of their
 * incomplete chunk (plus look-ahead), where the default schedule's see all 25.
 */
#ifndef COSY_SCHEDULE_H
#define COSY_SCHEDULE_H

#include "cosy.h"

typedef struct {
    cosy_chunk_strategy strategy;
    int base_hop;      /* token_hop_len (default) or chunk_tokens */
    int max_hop;       /* default: 4 x base; exponential: 0 = uncapped */
    int scale;         /* default: stream_scale_factor (2) */
    int lookahead;     /* pre_lookahead_len (3) */
    int overlap;       /* equal/exponential only */
    int prompt_pad;    /* default only: ceil(P / base) * base - P (with a first chunk F: of P + F) */
    int n_prompt;      /* P */
    int first;         /* first chunk F (0: none) */
    /* state */
    int hop;           /* current hop */
    int offset;        /* tokens whose audio has been emitted (window start of the next call) */
    int calls;
    int finished;
} cosy_schedule;

typedef struct {
    int end;           /* run on tokens [0, end) */
    int offset;        /* emit audio from this token on */
    int finalize;      /* last call: no look-ahead needed, flush everything */
    int hop;           /* tokens this call advances (0 for the final call) */
} cosy_schedule_call;

/* n_prompt_tokens: the flow prompt's speech tokens (P), for the default strategy's alignment. */
cosy_status cosy_schedule_init(cosy_schedule *s, cosy_chunk_strategy strategy, int chunk_tokens, int overlap_tokens,
                               int max_hop_tokens, int lookahead, int n_prompt_tokens);
/* A first call of `first_chunk_tokens` (1..10000; 0 = none, the strategy's own first hop) before the
 * strategy's schedule; call before the first cosy_schedule_next. With overlap it must exceed it. */
cosy_status cosy_schedule_set_first_chunk(cosy_schedule *s, int first_chunk_tokens);
/* With n_available tokens so far and lm_done, the next call to make: returns 1 and fills *call,
 * or 0 if the schedule must wait for more tokens (or has finished). Advances the state. */
int cosy_schedule_next(cosy_schedule *s, int n_available, int lm_done, cosy_schedule_call *call);

#endif
