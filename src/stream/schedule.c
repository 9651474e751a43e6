/* schedule.c — streaming token2wav schedules (see schedule.h). */
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

int cosy_schedule_next(cosy_schedule *s, int n_available, int lm_done, cosy_schedule_call *call)
{
    if (s->finished) return 0;
    int this_hop = s->hop + (s->calls == 0 ? s->prompt_pad : 0);
    if (n_available - s->offset >= this_hop + s->lookahead) {
        call->end = s->offset + this_hop + s->lookahead;
        call->offset = s->offset;
        call->finalize = 0;
        call->hop = this_hop;
        int advance = this_hop - s->overlap;
        s->offset += advance > 0 ? advance : 1;
        s->calls++;
        long next = (long)s->hop * s->scale;
        if (s->max_hop > 0 && next > s->max_hop) next = s->max_hop;
        if (next > 1000000) next = 1000000;
        s->hop = (int)next;
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
