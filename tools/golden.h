/*
 * golden.h — `cosy golden DIR`: run the official reference's fixture cases against the engine.
 *
 * DIR holds model/ (an official model directory, converted on the fly) and golden/ (the .npy
 * files and manifest.json). Each case in the manifest names its inputs and outputs; a handler
 * (registered in the table in cmd_golden.c, implemented next to the module it exercises in
 * golden_<module>.c) computes the outputs and hands each one to golden_check(), which compares
 * it with the reference under the manifest's tolerance for that output.
 */
#ifndef COSY_GOLDEN_H
#define COSY_GOLDEN_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include "cosy.h"
#include "io/npy.h"

typedef struct golden_ctx golden_ctx;

#define GOLDEN_MAX_COMPARED 256

struct golden_ctx {
    const char *dir;          /* the fixture set */
    cosy_model *model;        /* DIR/model converted to f32 */
    cJSON *manifest;
    const cJSON *current;     /* the case being run */
    const char *dump_dir;     /* --dump: where handlers write intermediates (NULL = off) */
    int verbose;
    int n_threads;
    /* results of the current case */
    int outputs_checked, outputs_failed;
    double worst_ratio, worst_abs, worst_rel, worst_tol;
    char worst_name[96];
    /* every key golden_record saw in the current case: a declared output missing here fails the case */
    char compared[GOLDEN_MAX_COMPARED][96];
    int n_compared;
};

/* Loads golden/<key>.npy (key as in manifest "files", e.g. "speech_token"). */
cosy_status golden_load(golden_ctx *ctx, const char *key, npy_array *out);
/* The same for arrays used as integers (token ids, schedules, flags): npy_load_int, which refuses a
 * float file holding a fraction, NaN, an infinity or a value beyond int64. */
cosy_status golden_load_int(golden_ctx *ctx, const char *key, npy_array *out);
/* Compares float output `key` (n values, row-major as the reference's array) with the
 * reference under the case's tolerance for it. Returns 1 if it passed. */
int golden_check(golden_ctx *ctx, const char *key, const float *data, int64_t n);
/* Same for integer outputs (exact_ints tolerance). */
int golden_check_ints(golden_ctx *ctx, const char *key, const int64_t *data, int64_t n);
/* Records one output's result (for checks golden_check cannot make: refusals, token rules). */
void golden_record(golden_ctx *ctx, const char *key, int pass, double abs_err, double rel_err, double tol, double ratio,
                   const char *what);
/* Writes an intermediate to <dump_dir>/<name>.npy when --dump is on. */
void golden_dump(golden_ctx *ctx, const char *name, const float *data, const int64_t *shape, int ndim);

/* The number N of an input written "speech_token[:, :N]" in the current case (golden_flow.c). */
cosy_status golden_token_count(golden_ctx *ctx, int *n);

/* A flow case's inputs (golden_flow.c): speech_token (n of them used), prompt_speech_token, prompt_feat
 * [2P, 80] and embedding, checked against the model's shapes. */
typedef struct {
    npy_array tok, ptok, pfeat, emb;
    int n;
} golden_flow_inputs;
cosy_status golden_flow_inputs_load(golden_ctx *ctx, golden_flow_inputs *in);
void golden_flow_inputs_free(golden_flow_inputs *in);

/* A session's audio as on_audio delivers it (golden_collect, golden_t2w.c): up to cap samples and
 * GOLDEN_MAX_CHUNKS chunks (the session's call log), each chunk's end; overflow: the rest was dropped. */
#define GOLDEN_MAX_CHUNKS 64
typedef struct {
    float *audio;
    int64_t n, cap;
    int64_t chunk_end[GOLDEN_MAX_CHUNKS];
    int chunks;
    int overflow;
} golden_collected;
void golden_collect(void *user, const float *samples, int n);

/* The fixture's voice (golden_t2w.c): prompt_speech_token, prompt_feat and embedding as a flow-only voice. */
cosy_status golden_fixture_voice(golden_ctx *ctx, cosy_voice **out);

typedef cosy_status (*golden_case_fn)(golden_ctx *ctx);

typedef struct {
    const char *name;     /* case name, or a prefix ending in '*' ("t2w_*") */
    golden_case_fn run;   /* NULL: a case deliberately not run, listed SKIP with `why` */
    int family;           /* the model family it runs on (COSY_FAMILY_COSYVOICE2 / 3): fixture sets of both
                           * families use some of the same case names (t2w_*, lm_inference) */
    const char *why;      /* set: the case is listed as SKIP with this reason instead of run (not implemented
                           * yet, or a tolerance the reference itself cannot meet: the test named in the reason
                           * checks it); a handler with both `run` and `why` still runs when named by --case */
} golden_handler;

#endif
