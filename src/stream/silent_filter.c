/* silent_filter.c — CosyVoice3Model.llm_job's silent-token filter (see silent_filter.h). */
#include "stream/silent_filter.h"

void cosy_silent_filter_init(cosy_silent_filter *f, const cosy_hparams *hp)
{
    f->silent = hp->silent_tokens;
    f->n_silent = hp->family == COSY_FAMILY_COSYVOICE3 ? hp->n_silent_tokens : 0;
    f->max_run = hp->max_silent_run;
    f->run = 0;
}

int cosy_silent_filter_keep(cosy_silent_filter *f, int token)
{
    for (int i = 0; i < f->n_silent; i++)
        if (f->silent[i] == token) return ++f->run <= f->max_run;
    f->run = 0;
    return 1;
}
