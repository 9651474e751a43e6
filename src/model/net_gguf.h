/*
 * net_gguf.h — what the voice networks (CAM++, the speech tokenizer) share when they keep their weights
 * in the model file: range-checked scalar keys, and f32 tensors written either as a copy of the
 * network's weights or, for benchmark models, as seeded random values (each tensor its own stream,
 * drawn from FNV-1a of its name).
 */
#ifndef COSY_NET_GGUF_H
#define COSY_NET_GGUF_H

#include <stdint.h>
#include "io/gguf.h"

/* An integer key that must fit an int. */
cosy_status net_gguf_get_int(const gguf_file *g, const char *key, int *out);
/* A float key, as float. */
cosy_status net_gguf_get_float(const gguf_file *g, const char *key, float *out);
/* Adds f32 tensor `name`: a copy of src (which must live until the writer writes) when seed is 0,
 * else values center + u * bound with u uniform in [-1, 1) from the stream seed ^ FNV-1a(name). */
cosy_status net_gguf_add_f32(gguf_writer *w, const char *name, int ndim, const int64_t *shape, const float *src, uint64_t seed,
                             float center, float bound);

#endif
