/*
 * npy.h — NumPy .npy files (format 1.0-3.0, little-endian float32/float64/int32/int64/
 * int16/uint8/bool, C order), used for golden fixtures and voice import. Values are always
 * loaded into a dense float32 or int64 copy.
 */
#ifndef COSY_NPY_H
#define COSY_NPY_H

#include <stdint.h>
#include "cosy.h"

#define NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    int is_float;     /* the file held floats (f4/f8) */
    float *f32;       /* dense copy (ints converted) */
    int64_t *i64;     /* dense copy (floats truncated; NaN, inf and values beyond int64 give 0) */
    int64_t first_bad_int; /* float files: index of the first value that is not an integer in the int64
                              range: a fraction, NaN, an infinity or beyond (-1: none) */
} npy_array;

cosy_status npy_load(const char *path, npy_array *out);
/* npy_load for arrays used as integers: refuses a float file holding a fraction, NaN, an infinity
 * or a value beyond int64, naming the file and the element's index. */
cosy_status npy_load_int(const char *path, npy_array *out);
/* The same two over bytes in memory; `name` is used in messages. */
cosy_status npy_parse(const void *data, size_t size, const char *name, npy_array *a);
cosy_status npy_parse_int(const void *data, size_t size, const char *name, npy_array *a);
void npy_free(npy_array *a);
/* Writes float32 data with the given shape. */
cosy_status npy_save_f32(const char *path, const float *data, const int64_t *shape, int ndim);

#endif
