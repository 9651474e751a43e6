/* schedule.c — streaming token2wav schedules (see schedule.h): the official CosyVoice2 loop
 * (cosyvoice/cli/model.py CosyVoice2Model.tts), the Triton runtime's equal/exponential chunks, and
 * the Triton runtime's small first chunk in front of any of them. */
#include "stream/schedule.h"
#include "core/error.h"

#include <string.h>

cosy_status cosy_schedule_init(cosy_schedule *s, cosy_chunk_strategy strategy, int chunk_tokens, int overlap_tokens,
                               int max_hop_tokens, int lookahead, int n_prompt_tokens)
{
    memset(s, 0, sizeof *s);
    if (chunk_tokens < 1 || chunk_tokens > 10000)
        return cosy_error(COSY_ERR_INVALID_ARG, "chunk size %d tokens is out of range (1..10000)", chunk_tokens);
    if (lookahead < 0 || n_prompt_tokens < 0) return cosy_error(COSY_ERR_INVALID_ARG, "schedule: negative look-ahead or prompt");
    if (overlap_tokens < 0 || overlap_tokens >= chunk_tokens)
        return cosy_error(COSY_ERR_INVALID_ARG, "overlap of %d tokens must be smaller than the chunk (%d)", overlap_tokens, chunk_tokens);
    if (max_hop_tokens < 0) return cosy_error(COSY_ERR_INVALID_ARG, "maximum hop %d is negative", max_hop_tokens);
    s->strategy = strategy;
    s->base_hop = chunk_tokens;
    s->n_prompt = n_prompt_tokens;
    s->lookahead = lookahead;
    switch (strategy) {
    case COSY_CHUNK_DEFAULT:
        if (overlap_tokens) return cosy_error(COSY_ERR_INVALID_ARG, "the default schedule has no overlap (use equal or exponential)");
        s->scale = 2;
        s->max_hop = max_hop_tokens ? max_hop_tokens : 4 * chunk_tokens;
        s->prompt_pad = (n_prompt_tokens + chunk_tokens - 1) / chunk_tokens * chunk_tokens - n_prompt_tokens;
        break;
    case COSY_CHUNK_EQUAL:
        s->scale = 1;
        s->max_hop = chunk_tokens;
        s->overlap = overlap_tokens;
        break;
    case COSY_CHUNK_EXPONENTIAL:
        s->scale = 2;
        s->max_hop = max_hop_tokens;
        s->overlap = overlap_tokens;
        break;
    default:
        return cosy_error(COSY_ERR_INVALID_ARG, "unknown chunk strategy %d", (int)strategy);
    }
    s->hop = chunk_tokens;
    return COSY_OK;
}

cosy_status cosy_schedule_set_first_chunk(cosy_schedule *s, int first_chunk_tokens)
{
    if (s->calls > 0) return cosy_error(COSY_ERR_INVALID_ARG, "schedule: the first chunk is set before the first call");
    if (first_chunk_tokens < 0 || first_chunk_tokens > 10000)
        return cosy_error(COSY_ERR_INVALID_ARG, "first chunk of %d tokens is out of range (0..10000)", first_chunk_tokens);
    if (first_chunk_tokens > 0 && first_chunk_tokens <= s->overlap)
        return cosy_error(COSY_ERR_INVALID_ARG, "first chunk of %d tokens must be longer than the overlap (%d)", first_chunk_tokens,
                          s->overlap);
    s->first = first_chunk_tokens;
    if (s->strategy == COSY_CHUNK_DEFAULT) {
        /* the default's alignment, of what precedes its first hop: the prompt and the first chunk */
        int before = s->n_prompt + first_chunk_tokens;
        s->prompt_pad = (before + s->base_hop - 1) / s->base_hop * s->base_hop - before;
    }
    return COSY_OK;
}

int cosy_schedule_next(cosy_schedule *s, int n_available, int lm_done, cosy_schedule_call *call)
{
    if (s->finished) return 0;
    int small = s->first > 0 && s->calls == 0;          /* the first chunk, before the strategy's */
    int strategy_first = s->calls == (s->first > 0);    /* the strategy's own first hop */
    int this_hop = small ? s->first : s->hop + (strategy_first ? s->prompt_pad : 0);
    if (n_available - s->offset >= this_hop + s->lookahead) {
        call->end = s->offset + this_hop + s->lookahead;
        call->offset = s->offset;
        call->finalize = 0;
        call->hop = this_hop;
        int advance = this_hop - s->overlap;
        s->offset += advance > 0 ? advance : 1;
        s->calls++;
        if (!small) {
            long next = (long)s->hop * s->scale;
            if (s->max_hop > 0 && next > s->max_hop) next = s->max_hop;
            if (next > 1000000) next = 1000000;
            s->hop = (int)next;
        }
        return 1;
    }
    if (!lm_done) return 0;
    call->end = n_available;
    call->offset = s->offset;
    call->finalize = 1;
    call->hop = 0;
    s->calls++;
    s->finished = 1;
    return 1;
}
