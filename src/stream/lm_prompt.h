/*
 * lm_prompt.h — what a session gives the LM in each inference mode: the prompt text, the prompt
 * speech tokens, and (CosyVoice3 without a prompt text) a prefix that goes before the text of every
 * LM call. This is cosyvoice/cli/frontend.py's frontend_zero_shot / frontend_cross_lingual /
 * frontend_instruct2 / frontend_sft as far as the LM sees them, plus the CosyVoice3 conventions of the
 * official examples (example.py cosyvoice3_example) that CosyVoice3LM asserts (<|endofprompt|>,
 * id lm_endofprompt, somewhere in prompt_text ++ text; in the prompt text itself for bistream):
 *
 *   mode           prompt_text                                  prompt_speech       text_prefix
 *   zero-shot      v2: the voice's transcript                   the voice's LM      -
 *                  v3: the transcript, "You are a helpful        prompt tokens
 *                      assistant.<|endofprompt|>" put before it
 *                      unless it already holds <|endofprompt|>
 *   instruct       the instruction ending in <|endofprompt|>    -                   -
 *                  (cosy_lm_prompt_build: v2 appends it when missing; v3 writes "You are a helpful
 *                  assistant. <instruction><|endofprompt|>", the official instruct_list form)
 *   cross-lingual  -                                            -                   v3: "You are a helpful
 *   and SFT                                                                         assistant.<|endofprompt|>"
 *
 * Bistream CosyVoice3 cross-lingual/SFT: the reference cannot run it (inference_bistream asserts
 * <|endofprompt|> in an empty prompt text); here the prefix becomes the prompt text instead, so it
 * is fed right after sos as the reference does with any v3 bistream prompt.
 * The session (session.c) and the golden runner (tools/golden_lm.c) both build the LM input here.
 */
#ifndef COSY_LM_PROMPT_H
#define COSY_LM_PROMPT_H

#include <stdint.h>
#include "cosy.h"
#include "model/hparams.h"
#include "model/voice/voice.h"
#include "text/tokenizer.h"

/* The system prompt CosyVoice3's examples put before a transcript or a text with no prompt. */
#define COSY_LM_V3_SYSTEM_PROMPT "You are a helpful assistant.<|endofprompt|>"

typedef struct {
    int32_t *prompt_text;
    int n_prompt_text;
    int32_t *prompt_speech;
    int n_prompt_speech;
    int32_t *text_prefix;       /* goes before the text of every LM call (non-bistream) ... */
    int n_text_prefix;
    int32_t endofprompt;        /* ... that does not hold this id already (CosyVoice3; -1: none) */
} cosy_lm_prompt;

/* The LM input of `mode` from ids: `transcript` (zero-shot: the voice's prompt text), `speech` (its
 * LM prompt tokens) and `instruct` (instruct mode: the instruction's ids, <|endofprompt|> included).
 * Refuses a CosyVoice3 instruction without <|endofprompt|>, and a zero-shot prompt without a
 * transcript or speech tokens. `tok` tokenises COSY_LM_V3_SYSTEM_PROMPT (CosyVoice3 only). */
cosy_status cosy_lm_prompt_from_ids(const cosy_hparams *hp, const cosy_tokenizer *tok, cosy_mode mode, int bistream,
                                    const int32_t *transcript, int n_transcript, const int32_t *speech, int n_speech,
                                    const int32_t *instruct, int n_instruct, cosy_lm_prompt *out);
/* The same from a voice and an instruction string (tokenised as described above). */
cosy_status cosy_lm_prompt_build(const cosy_hparams *hp, const cosy_tokenizer *tok, cosy_mode mode, int bistream,
                                 const cosy_voice *voice, const char *instruct, cosy_lm_prompt *out);
/* text_prefix ++ text, for one LM call (*out malloc'ed; free it); the text alone if it holds
 * <|endofprompt|> already (a user who wrote the official example's "You are a helpful
 * assistant.<|endofprompt|>..." gets it once; such a text also skips the text frontend, as the official
 * text_normalize does for any text with <| |> markup). */
cosy_status cosy_lm_prompt_text(const cosy_lm_prompt *p, const int32_t *text, int n_text, int32_t **out, int *n_out);
void cosy_lm_prompt_free(cosy_lm_prompt *p);

#endif
