/*
 * session_internal.h — engine entry points beyond the public API, for the golden runner, tests and
 * benchmarks.
 */
#ifndef COSY_SESSION_INTERNAL_H
#define COSY_SESSION_INTERNAL_H

#include "cosy.h"
#include "model/hift/hift.h"

/* A session fed with speech tokens instead of text: one utterance of `n` tokens, all available at
 * once (as the reference's loop sees them when the LM is faster than token2wav). If call_rngs is
 * given, token2wav call k draws HiFT's noise from call_rngs[k] (recorded draws replayed). */
cosy_status cosy_session_create_tokens(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params,
                                       const int32_t *tokens, int n, cosy_rng_source **call_rngs, int n_call_rngs,
                                       cosy_session **out);

#endif
