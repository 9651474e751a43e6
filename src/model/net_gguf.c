/* net_gguf.c — see net_gguf.h. */
#include "model/net_gguf.h"
#include "core/error.h"
#include "core/arena.h"
#include "core/tensor.h"

#include <stdlib.h>
#include <string.h>

cosy_status net_gguf_get_int(const gguf_file *g, const char *key, int *out)
{
    int64_t v;
    COSY_TRY(gguf_get_int(g, key, &v));
    if (v < INT32_MIN || v > INT32_MAX) return cosy_error(COSY_ERR_FORMAT, "%s: %s = %lld is out of range", g->file.path, key, (long long)v);
    *out = (int)v;
    return COSY_OK;
}

cosy_status net_gguf_get_float(const gguf_file *g, const char *key, float *out)
{
    double v;
    COSY_TRY(gguf_get_float(g, key, &v));
    *out = (float)v;
    return COSY_OK;
}

typedef struct {
    const float *src; /* copy from here, or */
    uint64_t seed;    /* random values */
    float center, bound;
    int64_t numel;
} fill_ctx;

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static cosy_status fill_tensor(void *vctx, void *dst, size_t nbytes)
{
    fill_ctx *c = vctx;
    float *out = dst;
    if (c->src) {
        memcpy(dst, c->src, nbytes);
        return COSY_OK;
    }
    uint64_t state = c->seed;
    for (int64_t i = 0; i < c->numel; i++) {
        float u = (float)(splitmix64(&state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
        out[i] = c->center + u * c->bound;
    }
    return COSY_OK;
}

cosy_status net_gguf_add_f32(gguf_writer *w, const char *name, int ndim, const int64_t *shape, const float *src, uint64_t seed,
                             float center, float bound)
{
    fill_ctx *f = calloc(1, sizeof *f);
    if (!f) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
    f->numel = 1;
    for (int d = 0; d < ndim; d++) f->numel *= shape[d];
    f->center = center;
    f->bound = bound;
    if (seed) {
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the name: each tensor its own stream */
        for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        f->seed = seed ^ h;
    } else {
        f->src = src;
    }
    return gguf_writer_add_tensor(w, name, COSY_DTYPE_F32, ndim, shape, fill_tensor, f, free);
}

float *net_owned_floats(net_owned *o, size_t floats)
{
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 64;
        void **n = realloc(o->p, sizeof *n * (size_t)cap);
        if (!n) return NULL;
        o->p = n;
        o->cap = cap;
    }
    float *p = cosy_aligned_alloc(sizeof(float) * (floats ? floats : 1));
    if (p) o->p[o->n++] = p;
    return p;
}

void net_owned_free(net_owned *o)
{
    for (int i = 0; i < o->n; i++) cosy_aligned_free(o->p[i]);
    free(o->p);
    memset(o, 0, sizeof *o);
}

cosy_status net_gguf_bind_f32(const gguf_file *g, const char *name, int ndim, const int64_t *shape, const char *keys, net_owned *owned,
                              const float **slot)
{
    const cosy_tensor *t = gguf_find_tensor(g, name);
    if (!t) return cosy_error(COSY_ERR_MISSING, "%s: tensor %s is missing", g->file.path, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char got[64], want[64];
        return cosy_error(COSY_ERR_SHAPE, "%s: tensor %s has shape %s but the %s keys need %s", g->file.path, name,
                          cosy_shape_str(t->shape, t->ndim, got, sizeof got), keys, cosy_shape_str(shape, ndim, want, sizeof want));
    }
    if (t->dtype == COSY_DTYPE_F32) {
        *slot = t->data;
        return COSY_OK;
    }
    if (t->dtype != COSY_DTYPE_F16 && t->dtype != COSY_DTYPE_BF16)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: tensor %s has type %s (f32, f16 or bf16)", g->file.path, name, cosy_dtype_name(t->dtype));
    int64_t n = cosy_tensor_numel(t);
    float *p = net_owned_floats(owned, (size_t)n);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory for tensor %s", g->file.path, name);
    cosy_convert_to_f32(p, t->data, t->dtype, n);
    *slot = p;
    return COSY_OK;
}
