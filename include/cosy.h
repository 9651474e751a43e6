/*
 * cosy.h — the one public header of libcosy, a streaming CosyVoice2 text-to-speech engine.
 *
 * Conventions (as in whisper.cpp / llama.cpp): opaque handles, `cosy_*_default_params()` then
 * override the fields you care about, every fallible call returns a cosy_status (0 = ok) and,
 * on failure, leaves a one-line human message in cosy_last_error() (per thread) naming what was
 * wrong and where (file, tensor, key, byte offset, request field).
 */
#ifndef COSY_H
#define COSY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COSY_VERSION "0.1.0"

typedef enum {
    COSY_OK = 0,
    COSY_ERR_INVALID_ARG,  /* a caller-supplied value is out of range or malformed */
    COSY_ERR_IO,           /* open/read/write/mmap failed */
    COSY_ERR_FORMAT,       /* a file is truncated, corrupt, or not what it claims to be */
    COSY_ERR_UNSUPPORTED,  /* a valid input uses a feature we do not implement */
    COSY_ERR_MISSING,      /* a required file, key or tensor is absent */
    COSY_ERR_SHAPE,        /* a tensor's shape disagrees with the hyperparameters */
    COSY_ERR_NOMEM,        /* allocation failed */
    COSY_ERR_CANCELLED,    /* the caller cancelled the operation */
    COSY_ERR_INTERNAL,     /* a bug: an invariant did not hold */
} cosy_status;

/* Short name of a status code ("format error", ...). Never NULL. */
const char *cosy_strerror(cosy_status status);
/* The detailed message of the last failure on this thread ("" if none). */
const char *cosy_last_error(void);

/* ---- weight types ---------------------------------------------------------------------- */

/* Values are the GGUF/ggml type ids, so our model files open in other GGUF tools. */
typedef enum {
    COSY_DTYPE_F32  = 0,
    COSY_DTYPE_F16  = 1,
    COSY_DTYPE_Q8_0 = 8,   /* blocks of 32 int8 with one f16 scale (ggml Q8_0 layout) */
    COSY_DTYPE_I8   = 24,
    COSY_DTYPE_I16  = 25,
    COSY_DTYPE_I32  = 26,
    COSY_DTYPE_I64  = 27,
    COSY_DTYPE_F64  = 28,
    COSY_DTYPE_BF16 = 30,
} cosy_dtype;

const char *cosy_dtype_name(cosy_dtype dtype);
/* Parses "f32", "f16", "bf16", "q8_0"; returns 0 on success. */
int cosy_dtype_from_name(const char *name, cosy_dtype *out);

/* ---- conversion from the official checkpoint directory ---------------------------------- */

typedef struct {
    cosy_dtype weight_dtype;  /* storage type of matrices and conv kernels (f32, f16, bf16) */
    int verbose;              /* print one line per stage to stderr */
    const char *tokenizer_dir;/* random models only: take the vocabulary from this directory
                                 (vocab.json + merges.txt, or tokenizer.json) instead of a
                                 byte-level one */
} cosy_convert_params;

cosy_convert_params cosy_convert_default_params(void);

/* Reads MODEL_DIR (cosyvoice2.yaml, llm.pt, flow.pt, hift.pt, CosyVoice-BlankEN/, optional
 * spk2info.pt) and writes one GGUF model file. Writes to a temporary file and renames it at
 * the end, so a failure never leaves a partial output behind. */
cosy_status cosy_convert(const char *model_dir, const char *out_path, const cosy_convert_params *params);

/* Writes a model with the shapes of a known configuration ("cosyvoice2-0.5b", "cv2-tiny")
 * and seeded random weights, for benchmarks. */
cosy_status cosy_convert_random(const char *config_name, uint64_t seed, const char *out_path,
                                const cosy_convert_params *params);

/* ---- models ----------------------------------------------------------------------------- */

typedef struct cosy_model cosy_model;

typedef struct {
    cosy_dtype lm_dtype;      /* run-time type of the LM matrices: f32 (reference), bf16, q8_0 */
    int n_threads;            /* 0 = number of online cores */
} cosy_model_params;

cosy_model_params cosy_model_default_params(void);
cosy_status cosy_model_load(const char *path, const cosy_model_params *params, cosy_model **out);
void cosy_model_free(cosy_model *model);

/* Writes a human-readable summary (hyperparameters, tensor count, bytes per dtype,
 * tokenizer size, speakers) to the given FILE* (passed as void* to keep stdio out of here). */
void cosy_model_print_info(const cosy_model *model, void *file);

/* ---- streaming ------------------------------------------------------------------------ */

/* How streaming token2wav cuts the speech-token stream into chunks (src/stream/schedule.h). */
typedef enum {
    COSY_CHUNK_DEFAULT = 0,     /* CosyVoice2: 25 tokens aligned with the prompt, x2 per chunk up to 100 */
    COSY_CHUNK_EQUAL = 1,       /* fixed chunks of chunk_tokens */
    COSY_CHUNK_EXPONENTIAL = 2, /* chunk_tokens x 2^i */
} cosy_chunk_strategy;

/* ---- voices --------------------------------------------------------------------------- */

/* A voice: prompt text tokens, prompt speech tokens, prompt mel and speaker embedding of one
 * speaker, computed once (see `cosy voice`). */
typedef struct cosy_voice cosy_voice;

cosy_status cosy_voice_load(const char *path, cosy_voice **out);
cosy_status cosy_voice_save(const cosy_voice *voice, const char *path);
/* A built-in speaker of the model (from spk2info.pt at conversion). */
cosy_status cosy_voice_from_speaker(const cosy_model *model, const char *speaker, cosy_voice **out);
const char *cosy_voice_name(const cosy_voice *voice);
void cosy_voice_free(cosy_voice *voice);

#ifdef __cplusplus
}
#endif
#endif /* COSY_H */
