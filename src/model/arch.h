/*
 * arch.h — the tensors of a CosyVoice2 or CosyVoice3 model (hp->family): our name, where it comes from in the official
 * checkpoint, and its shape as the hyperparameters dictate. This one list drives the
 * converter (every tensor must be present with this shape), the random-weight generator and
 * the loader's validation of a model file. docs/model-format.md explains the naming.
 */
#ifndef COSY_ARCH_H
#define COSY_ARCH_H

#include <stdint.h>
#include "model/hparams.h"

typedef enum { ARCH_SRC_LLM, ARCH_SRC_FLOW, ARCH_SRC_HIFT } arch_source;

/* How a random model initialises the tensor. */
typedef enum {
    ARCH_INIT_WEIGHT, /* uniform(-1/sqrt(fan_in), +1/sqrt(fan_in)), fan_in = product of dims after the first */
    ARCH_INIT_EMBED,  /* normal(0, 1) scaled by 1/sqrt(width) */
    ARCH_INIT_ONES,   /* norm scales, snake alphas */
    ARCH_INIT_ZEROS,  /* biases */
    ARCH_INIT_SMALL,  /* uniform(-0.02, 0.02) */
    ARCH_INIT_ROPE,   /* rotary inv_freq of n entries: 1 / 10000^(i / n) (x-transformers' default theta) */
} arch_init;

typedef struct {
    char name[96];        /* ours, e.g. "lm.blk.3.attn_q.weight", "flow.est.final_proj.weight" */
    char source[112];     /* key in the official .pt file */
    arch_source file;
    int ndim;
    int64_t shape[4];
    arch_init init;
    int is_matrix;        /* stored in the compact weight type when converting with --dtype */
} arch_tensor;

/* Calls fn for every tensor, in a fixed order; stops early if fn returns non-zero. */
typedef int (*arch_visit_fn)(void *ctx, const arch_tensor *t);
void cosy_arch_tensors(const cosy_hparams *hp, arch_visit_fn fn, void *ctx);
/* The number of tensors (for progress and sanity checks). */
int cosy_arch_count(const cosy_hparams *hp);

/* Fills `t` with the spec of `name`; returns 0 if the name is not part of the model. */
int cosy_arch_find(const cosy_hparams *hp, const char *name, arch_tensor *t);

#endif
