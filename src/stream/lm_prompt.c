/* lm_prompt.c — the LM prompt of each inference mode, per model family (see lm_prompt.h). */
#include "stream/lm_prompt.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cosy_lm_prompt_free(cosy_lm_prompt *p)
{
    free(p->prompt_text);
    free(p->prompt_speech);
    free(p->text_prefix);
    memset(p, 0, sizeof *p);
}

/* *dst = a ++ b (malloc'ed, at least one element so an empty result is not NULL). */
static cosy_status join(const int32_t *a, int na, const int32_t *b, int nb, int32_t **dst, int *n)
{
    *dst = malloc(sizeof(int32_t) * (size_t)(na + nb > 0 ? na + nb : 1));
    if (!*dst) return cosy_error(COSY_ERR_NOMEM, "lm prompt: out of memory");
    if (na > 0) memcpy(*dst, a, sizeof(int32_t) * (size_t)na);
    if (nb > 0) memcpy(*dst + na, b, sizeof(int32_t) * (size_t)nb);
    *n = na + nb;
    return COSY_OK;
}

static int holds(const int32_t *v, int n, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (v[i] == id) return 1;
    return 0;
}

static cosy_status encode(const cosy_tokenizer *tok, const char *text, cosy_token_ids *ids)
{
    memset(ids, 0, sizeof *ids);
    if (!tok) return cosy_error(COSY_ERR_INVALID_ARG, "lm prompt: no tokenizer for \"%s\"", text);
    return cosy_tokenizer_encode(tok, text, strlen(text), ids);
}

cosy_status cosy_lm_prompt_from_ids(const cosy_hparams *hp, const cosy_tokenizer *tok, cosy_mode mode, int bistream,
                                    const int32_t *transcript, int n_transcript, const int32_t *speech, int n_speech,
                                    const int32_t *instruct, int n_instruct, cosy_lm_prompt *out)
{
    memset(out, 0, sizeof *out);
    const int v3 = hp->family == COSY_FAMILY_COSYVOICE3;
    const int32_t eop = hp->lm_endofprompt;
    out->endofprompt = v3 ? eop : -1;
    cosy_token_ids system = {0};
    cosy_status st = COSY_OK;
    /* CosyVoice3 needs the system prompt wherever the caller's ids do not hold <|endofprompt|> */
    int need_system = v3 && ((mode == COSY_MODE_ZERO_SHOT && !holds(transcript, n_transcript, eop)) ||
                             mode == COSY_MODE_CROSS_LINGUAL || mode == COSY_MODE_SFT);
    if (need_system) {
        st = encode(tok, COSY_LM_V3_SYSTEM_PROMPT, &system);
        if (st == COSY_OK && !holds(system.ids, (int)system.n, eop))
            st = cosy_error(COSY_ERR_INVALID_ARG, "lm prompt: the tokenizer does not map <|endofprompt|> to id %d", (int)eop);
    }
    switch (mode) {
    case COSY_MODE_ZERO_SHOT:
        if (st == COSY_OK && (n_transcript == 0 || n_speech == 0))
            st = cosy_error(COSY_ERR_INVALID_ARG, "lm prompt: zero-shot needs the voice's transcript and LM prompt speech tokens");
        if (st == COSY_OK) st = join(system.ids, (int)system.n, transcript, n_transcript, &out->prompt_text, &out->n_prompt_text);
        if (st == COSY_OK) st = join(speech, n_speech, NULL, 0, &out->prompt_speech, &out->n_prompt_speech);
        break;
    case COSY_MODE_INSTRUCT:
        if (st == COSY_OK && n_instruct == 0) st = cosy_error(COSY_ERR_INVALID_ARG, "lm prompt: instruct mode needs an instruction");
        if (st == COSY_OK && v3 && !holds(instruct, n_instruct, eop))
            st = cosy_error(COSY_ERR_INVALID_ARG, "lm prompt: a CosyVoice3 instruction must end in <|endofprompt|> (id %d)", (int)eop);
        if (st == COSY_OK) st = join(instruct, n_instruct, NULL, 0, &out->prompt_text, &out->n_prompt_text);
        break;
    default: /* cross-lingual, SFT: no prompt; CosyVoice3's system prompt heads the text */
        if (st == COSY_OK && need_system && bistream) st = join(system.ids, (int)system.n, NULL, 0, &out->prompt_text, &out->n_prompt_text);
        else if (st == COSY_OK && need_system) st = join(system.ids, (int)system.n, NULL, 0, &out->text_prefix, &out->n_text_prefix);
        break;
    }
    cosy_token_ids_free(&system);
    if (st != COSY_OK) cosy_lm_prompt_free(out);
    return st;
}

cosy_status cosy_lm_prompt_build(const cosy_hparams *hp, const cosy_tokenizer *tok, cosy_mode mode, int bistream,
                                 const cosy_voice *voice, const char *instruct, cosy_lm_prompt *out)
{
    memset(out, 0, sizeof *out);
    if (mode == COSY_MODE_ZERO_SHOT) {
        if (voice->n_prompt_text == 0 || voice->n_llm_prompt_tokens == 0)
            return cosy_error(COSY_ERR_INVALID_ARG, "session: voice '%s' has no prompt transcript/speech tokens for zero-shot "
                              "(use cross-lingual mode, or import the voice with its transcript)", voice->name);
        return cosy_lm_prompt_from_ids(hp, tok, mode, bistream, voice->prompt_text, voice->n_prompt_text, voice->llm_prompt_tokens,
                                       voice->n_llm_prompt_tokens, NULL, 0, out);
    }
    if (mode != COSY_MODE_INSTRUCT) return cosy_lm_prompt_from_ids(hp, tok, mode, bistream, NULL, 0, NULL, 0, NULL, 0, out);
    /* frontend_instruct2 passes the instruction as the prompt text; written with <|endofprompt|> it is
     * taken as it is, else completed: v2 instruction + '<|endofprompt|>', v3 in instruct_list's form */
    static const char system[] = "You are a helpful assistant.";
    const int v3 = hp->family == COSY_FAMILY_COSYVOICE3;
    int complete = strstr(instruct, "<|endofprompt|>") != NULL;
    int add_system = v3 && !complete && strncmp(instruct, system, sizeof system - 1) != 0;
    size_t n = strlen(instruct) + sizeof system + 32;
    char *text = malloc(n);
    if (!text) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    snprintf(text, n, "%s%s%s", add_system ? "You are a helpful assistant. " : "", instruct, complete ? "" : "<|endofprompt|>");
    cosy_token_ids ids;
    cosy_status st = encode(tok, text, &ids);
    free(text);
    if (st != COSY_OK) cosy_error_prefix(st, "instruction");
    if (st == COSY_OK) st = cosy_lm_prompt_from_ids(hp, tok, mode, bistream, NULL, 0, NULL, 0, ids.ids, (int)ids.n, out);
    cosy_token_ids_free(&ids);
    return st;
}

cosy_status cosy_lm_prompt_text(const cosy_lm_prompt *p, const int32_t *text, int n_text, int32_t **out, int *n_out)
{
    int has = p->endofprompt >= 0 && holds(text, n_text, p->endofprompt);
    return join(p->text_prefix, has ? 0 : p->n_text_prefix, text, n_text, out, n_out);
}
