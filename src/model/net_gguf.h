/*
 * net_gguf.h — what the voice networks (CAM++, the speech tokenizer) share when they keep their weights
 * in the model file: range-checked scalar keys, and f32 tensors written either as a copy of the
 * network's weights or, for benchmark models, as seeded random values (each tensor its own stream,
 * drawn from FNV-1a of its name); the list of buffers a network owns, and binding one of its weights to
 * a model file's tensor.
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

/* Buffers a network owns (widened or packed weights), freed together. Zero-initialised is empty. */
typedef struct net_owned {
    void **p;
    int n, cap;
} net_owned;

/* A new 64-byte-aligned buffer of `floats` floats (at least one), owned by o; NULL when out of memory. */
float *net_owned_floats(net_owned *o, size_t floats);
void net_owned_free(net_owned *o);

/* Binds a weight of shape [ndim] to tensor `name` of g: f32 is borrowed in place, f16/bf16 widened into
 * a buffer of `owned`. Missing, mis-shaped (named as the `keys` family's, e.g. "campplus.*") or other
 * types are refused naming the file and the tensor. */
cosy_status net_gguf_bind_f32(const gguf_file *g, const char *name, int ndim, const int64_t *shape, const char *keys, net_owned *owned,
                              const float **slot);

#endif
