/* net_gguf.c — see net_gguf.h. */
#include "model/net_gguf.h"
#include "core/error.h"

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
