/*
 * gguf.h — the GGUF v3 container our model files use (https://github.com/ggml-org/ggml,
 * docs/gguf.md): magic, version, key/value metadata, a tensor table, then tensor data aligned
 * to `general.alignment` (we write 64). Read through mmap, so weights are used in place.
 *
 * Dimensions: GGUF lists them innermost first (ggml `ne`); this API speaks PyTorch order
 * (outermost first) and reverses them at the boundary.
 */
#ifndef COSY_GGUF_H
#define COSY_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "core/file.h"
#include "core/tensor.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
} gguf_type;

typedef struct {
    const char *ptr; /* into the mapped file, not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct {
    char *key;           /* NUL-terminated copy */
    gguf_type type;
    gguf_type arr_type;  /* for arrays */
    uint64_t n;          /* array length (1 for scalars) */
    union {
        int64_t i;
        uint64_t u;
        double f;
    } scalar;
    gguf_str str;        /* for strings */
    const void *arr;     /* for numeric arrays: first element in the file */
    gguf_str *strs;      /* for string arrays: n entries (malloc'ed index into the file) */
} gguf_kv;

typedef struct {
    cosy_mapped_file file;
    uint32_t version;
    size_t alignment;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    cosy_tensor *tensors;  /* names are malloc'ed copies; data points into the map */
    size_t data_offset;
    int64_t *by_name;      /* tensor indices sorted by name */
} gguf_file;

/* Opens and validates the whole container (every offset and size is bounds-checked). */
cosy_status gguf_open(const char *path, gguf_file *out);
/* The same over bytes in memory (kept alive by the caller until gguf_close); `name` for messages. */
cosy_status gguf_open_mem(const void *data, size_t size, const char *name, gguf_file *out);
void gguf_close(gguf_file *g);

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key);
const cosy_tensor *gguf_find_tensor(const gguf_file *g, const char *name);
/* Typed getters; return COSY_ERR_MISSING / COSY_ERR_FORMAT with a message naming the key. */
cosy_status gguf_get_int(const gguf_file *g, const char *key, int64_t *out);
cosy_status gguf_get_float(const gguf_file *g, const char *key, double *out);
/* Numeric array into out[0..max) as ints/floats; *n = length (error if > max). */
cosy_status gguf_get_int_array(const gguf_file *g, const char *key, int64_t *out, int max, int *n);
cosy_status gguf_get_float_array(const gguf_file *g, const char *key, double *out, int max, int *n);

/* ---- writer ---- */

typedef struct gguf_writer gguf_writer;
/* Produces the bytes of one tensor into dst (exactly nbytes). */
typedef cosy_status (*gguf_fill_fn)(void *ctx, void *dst, size_t nbytes);

gguf_writer *gguf_writer_create(void);
void gguf_writer_free(gguf_writer *w);
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
void gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
void gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
/* lens may be NULL (strings are NUL-terminated). */
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, const size_t *lens, uint64_t n);
/* Registers a tensor; `fill` is called during gguf_writer_write; `free_ctx` (may be NULL)
 * when the writer is freed. */
cosy_status gguf_writer_add_tensor(gguf_writer *w, const char *name, cosy_dtype dtype, int ndim,
                                   const int64_t *shape, gguf_fill_fn fill, void *ctx, void (*free_ctx)(void *));
int64_t gguf_writer_n_tensors(const gguf_writer *w);
/* Writes to "<path>.tmp-<pid>" and renames on success; on failure removes the temp file. */
cosy_status gguf_writer_write(gguf_writer *w, const char *path);

#endif
