/*
 * model.h — a loaded model: the mapped GGUF file, its hyperparameters, and typed access to
 * its tensors. Modules (lm, flow, hift, tokenizer) build their weight structs from it at load
 * time; nothing per-request lives here (DESIGN.md §3).
 */
#ifndef COSY_MODEL_H
#define COSY_MODEL_H

#include "cosy.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "io/gguf.h"
#include "model/hparams.h"

#include <pthread.h>

/*
 * Modules (the LM, flow, HiFT, tokenizer) build their run-time state from the weights once
 * per model, on first use, through cosy_model_module(); the model frees them. Each module
 * keeps a static definition and offers its own accessor (e.g. cosy_flow_get()).
 */
typedef struct {
    const char *name;
    cosy_status (*create)(cosy_model *m, void **out);
    void (*destroy)(void *state);
} cosy_module_def;

#define COSY_MAX_MODULES 16

struct cosy_model {
    gguf_file file;
    cosy_hparams hp;
    cosy_model_params params;
    cosy_pool *pool;
    int n_speakers;
    char **speakers;         /* names, from cosyvoice2.speakers */
    void **owned;            /* f32 copies made by cosy_model_f32 */
    int n_owned, cap_owned;
    pthread_mutex_t module_lock;
    int n_modules;
    const cosy_module_def *module_defs[COSY_MAX_MODULES];
    void *module_states[COSY_MAX_MODULES];
};

/* The state of module `def`, created on first call (thread-safe). */
cosy_status cosy_model_module(cosy_model *m, const cosy_module_def *def, void **out);

/* The tensor called `name` (COSY_ERR_MISSING with a message if absent). Every architecture
 * tensor's shape was checked against the hyperparameters when the model was loaded. */
cosy_status cosy_model_tensor(const cosy_model *m, const char *name, const cosy_tensor **out);
/* The tensor as f32: a pointer into the file when stored as f32, else a widened copy owned by
 * the model. Use at load time only (not thread-safe). */
cosy_status cosy_model_f32(cosy_model *m, const char *name, const float **out);
/* printf-style name, for per-layer tensors. */
cosy_status cosy_model_f32f(cosy_model *m, const float **out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* cosy_model_load over the bytes of a model file in memory, kept alive by the caller until
 * cosy_model_free; `name` is used in messages. */
cosy_status cosy_model_load_mem(const void *data, size_t size, const char *name, const cosy_model_params *params, cosy_model **out);
/* Memory owned by the model, freed with it. */
void *cosy_model_alloc(cosy_model *m, size_t bytes);

/* The model's Qwen2 BPE tokenizer (text/tokenizer.h), built from the vocabulary stored in the model
 * file on first use (thread-safe), then kept with the model. Here rather than in text/, which knows
 * nothing of model files. */
typedef struct cosy_tokenizer cosy_tokenizer;
cosy_status cosy_tokenizer_get(cosy_model *m, const cosy_tokenizer **out);

#endif
