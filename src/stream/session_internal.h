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
/* One token2wav call a session made: sentence `segment`, tokens [0, end), audio from token `offset`,
 * whether it finalised the utterance, ran the flow with full attention, and the samples it emitted. */
typedef struct {
    int segment, offset, end, finalize, full_attention, samples;
} cosy_session_call;
#define COSY_SESSION_CALL_LOG 64
/* The session's first calls (at most COSY_SESSION_CALL_LOG are kept), up to cap; returns how many. */
int cosy_session_calls(cosy_session *s, cosy_session_call *out, int cap);
/* cosy_session_create_tokens whose vocoder gets the reference's mel (cosy_token2wav_set_mel_replay:
 * [80][replay_frames], frame 0 = the first token; kept by pointer, must outlive the session). */
cosy_status cosy_session_create_tokens_mel(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params,
                                           const int32_t *tokens, int n, cosy_rng_source **call_rngs, int n_call_rngs,
                                           const float *replay_mel, int replay_frames, cosy_session **out);

cosy_status cosy_session_create_tokens(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params,
                                       const int32_t *tokens, int n, cosy_rng_source **call_rngs, int n_call_rngs,
                                       cosy_session **out);

#endif
