/*
 * ptfile.h — PyTorch checkpoints (torch.save of a state_dict, or of a dict of dicts of tensors
 * such as spk2info.pt) without Python.
 *
 * The file is a zip (zip.h) holding `<prefix>/data.pkl`, a pickle (protocol 2..4), and one raw
 * little-endian blob per storage `<prefix>/data/<key>`. We run a small pickle machine that
 * knows exactly the classes such files use — collections.OrderedDict, torch._utils.
 * _rebuild_tensor_v2 / _rebuild_parameter, torch.<Type>Storage — and refuses anything else
 * with the class name and byte offset. Tensors are views (offset + strides) into the mapped
 * storages; several may share one storage (tied weights).
 */
#ifndef COSY_PTFILE_H
#define COSY_PTFILE_H

#include <stddef.h>
#include <stdint.h>
#include "core/tensor.h"
#include "io/zip.h"

typedef enum {
    PT_F32, PT_F16, PT_BF16, PT_F64, PT_I64, PT_I32, PT_I16, PT_I8, PT_U8, PT_BOOL,
} pt_dtype;

typedef struct {
    char *name;         /* keys joined with '.', e.g. "spk1.prompt_text" for nested dicts */
    char *parent;       /* the key path of the enclosing dict ("" at top level) */
    char *leaf;         /* the last key */
    pt_dtype dtype;
    int ndim;
    int64_t shape[COSY_MAX_DIMS];
    int64_t stride[COSY_MAX_DIMS];
    int64_t offset;     /* in elements, into the storage */
    const unsigned char *storage;
    int64_t storage_numel;
    char *storage_key;
} pt_tensor;

typedef struct {
    zip_archive zip;
    pt_tensor *tensors;
    int64_t n_tensors;
} pt_file;

cosy_status pt_open(const char *path, pt_file *out);
/* The same over bytes in memory (kept alive by the caller until pt_close); `name` for messages. */
cosy_status pt_open_mem(const void *data, size_t size, const char *name, pt_file *out);
void pt_close(pt_file *f);
const pt_tensor *pt_find(const pt_file *f, const char *name);
const char *pt_dtype_name(pt_dtype t);
size_t pt_dtype_size(pt_dtype t);
int64_t pt_numel(const pt_tensor *t);
/* Copies the tensor (any strides) into dense f32 (floating types) — ints are converted too. */
void pt_read_f32(const pt_tensor *t, float *dst);
/* Copies an integer tensor into dense int64 (floating types are truncated; NaN, infinities and
 * values beyond int64 give 0). */
void pt_read_i64(const pt_tensor *t, int64_t *dst);

#endif
