/*
 * silent_filter.h — CosyVoice3's silent-token filter between the LM and token2wav.
 *
 * CosyVoice3Model.llm_job (cosyvoice/cli/model.py) passes every speech token the LM yields on to
 * token2wav except long runs of "silent" ids: a token from hp->silent_tokens is dropped when it is
 * the (max_silent_run + 1)-th or later of a consecutive run of silent ids (any other id ends the
 * run). The LM itself has already seen and fed the dropped tokens; only the vocoder side loses
 * them. CosyVoice2 has no such list (n_silent_tokens 0): every token passes.
 *
 * A session keeps one filter per LM stream (the run counter is per request, not per model).
 */
#ifndef COSY_SILENT_FILTER_H
#define COSY_SILENT_FILTER_H

#include "model/hparams.h"

typedef struct {
    const int *silent;      /* the model's silent ids (hp->silent_tokens) */
    int n_silent;
    int max_run;            /* consecutive silent ids passed on before the rest of the run is dropped */
    int run;                /* silent ids in a row so far */
} cosy_silent_filter;

/* A filter for one token stream of a model with hyperparameters hp. */
void cosy_silent_filter_init(cosy_silent_filter *f, const cosy_hparams *hp);
/* 1 if `token` goes on to token2wav, 0 if it is dropped. Call once per yielded token, in order. */
int cosy_silent_filter_keep(cosy_silent_filter *f, int token);

#endif
