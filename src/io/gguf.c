/* gguf.c — GGUF v3 reader (mmap, fully bounds-checked) and writer (see gguf.h). */
#define _GNU_SOURCE
#include "io/gguf.h"
#include "core/arena.h"
#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_WRITE_ALIGNMENT 64
#define GGUF_MAX_ARRAY (1ull << 32)

/* ---------------------------------------------------------------- reader */

typedef struct {
    const unsigned char *p;
    size_t size, pos;
    const char *path;
} reader;

static cosy_status need(reader *r, size_t n, const char *what)
{
    if (n > r->size || r->pos > r->size - n)
        return cosy_error(COSY_ERR_FORMAT, "%s: truncated at byte %zu while reading %s (file has %zu bytes)",
                          r->path, r->pos, what, r->size);
    return COSY_OK;
}

static cosy_status rd_u32(reader *r, uint32_t *v, const char *what)
{
    COSY_TRY(need(r, 4, what));
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return COSY_OK;
}

static cosy_status rd_u64(reader *r, uint64_t *v, const char *what)
{
    COSY_TRY(need(r, 8, what));
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return COSY_OK;
}

static cosy_status rd_str(reader *r, gguf_str *s, const char *what)
{
    uint64_t len;
    COSY_TRY(rd_u64(r, &len, what));
    if (len > r->size) return cosy_error(COSY_ERR_FORMAT, "%s: %s at byte %zu has impossible length %llu", r->path, what, r->pos - 8, (unsigned long long)len);
    COSY_TRY(need(r, (size_t)len, what));
    s->ptr = (const char *)r->p + r->pos;
    s->len = len;
    r->pos += (size_t)len;
    return COSY_OK;
}

static size_t scalar_size(gguf_type t)
{
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static void read_scalar(gguf_type t, const unsigned char *p, gguf_kv *kv)
{
    switch (t) {
    case GGUF_TYPE_UINT8: kv->scalar.i = *(const uint8_t *)p; break;
    case GGUF_TYPE_INT8: kv->scalar.i = *(const int8_t *)p; break;
    case GGUF_TYPE_BOOL: kv->scalar.i = *p != 0; break;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); kv->scalar.i = v; break; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); kv->scalar.i = v; break; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); kv->scalar.i = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); kv->scalar.i = v; break; }
    case GGUF_TYPE_UINT64: { uint64_t v; memcpy(&v, p, 8); kv->scalar.u = v; break; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); kv->scalar.i = v; break; }
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); kv->scalar.f = v; break; }
    case GGUF_TYPE_FLOAT64: { double v; memcpy(&v, p, 8); kv->scalar.f = v; break; }
    default: break;
    }
}

static char *dup_str(gguf_str s)
{
    char *c = malloc((size_t)s.len + 1);
    if (!c) return NULL;
    memcpy(c, s.ptr, (size_t)s.len);
    c[s.len] = '\0';
    return c;
}

static cosy_status read_kv(reader *r, gguf_kv *kv)
{
    gguf_str key;
    size_t start = r->pos;
    COSY_TRY(rd_str(r, &key, "metadata key"));
    kv->key = dup_str(key);
    if (!kv->key) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
    if (memchr(key.ptr, 0, (size_t)key.len))
        return cosy_error(COSY_ERR_FORMAT, "%s: metadata key at byte %zu contains a NUL byte", r->path, start);
    uint32_t type;
    COSY_TRY(rd_u32(r, &type, "metadata type"));
    kv->type = (gguf_type)type;
    kv->n = 1;
    if (type == GGUF_TYPE_STRING) return rd_str(r, &kv->str, kv->key);
    if (type == GGUF_TYPE_ARRAY) {
        uint32_t at;
        COSY_TRY(rd_u32(r, &at, kv->key));
        COSY_TRY(rd_u64(r, &kv->n, kv->key));
        kv->arr_type = (gguf_type)at;
        if (kv->n > GGUF_MAX_ARRAY)
            return cosy_error(COSY_ERR_FORMAT, "%s: array %s has impossible length %llu", r->path, kv->key, (unsigned long long)kv->n);
        if (at == GGUF_TYPE_STRING) {
            if (kv->n > r->size / 8) return cosy_error(COSY_ERR_FORMAT, "%s: array %s is longer than the file", r->path, kv->key);
            kv->strs = malloc(sizeof(gguf_str) * (size_t)(kv->n ? kv->n : 1));
            if (!kv->strs) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
            for (uint64_t i = 0; i < kv->n; i++) COSY_TRY(rd_str(r, &kv->strs[i], kv->key));
            return COSY_OK;
        }
        size_t es = scalar_size((gguf_type)at);
        if (!es) return cosy_error(COSY_ERR_FORMAT, "%s: array %s has unknown element type %u", r->path, kv->key, at);
        if (kv->n > r->size / es) return cosy_error(COSY_ERR_FORMAT, "%s: array %s is longer than the file", r->path, kv->key);
        COSY_TRY(need(r, (size_t)kv->n * es, kv->key));
        kv->arr = r->p + r->pos;
        r->pos += (size_t)kv->n * es;
        return COSY_OK;
    }
    size_t es = scalar_size((gguf_type)type);
    if (!es) return cosy_error(COSY_ERR_FORMAT, "%s: key %s has unknown value type %u (byte %zu)", r->path, kv->key, type, start);
    COSY_TRY(need(r, es, kv->key));
    read_scalar((gguf_type)type, r->p + r->pos, kv);
    r->pos += es;
    return COSY_OK;
}

static _Thread_local const cosy_tensor *sort_tensors;

static int cmp_index_by_name(const void *a, const void *b)
{
    return strcmp(sort_tensors[*(const int64_t *)a].name, sort_tensors[*(const int64_t *)b].name);
}

static cosy_status parse(gguf_file *g)
{
    reader r = {g->file.data, g->file.size, 0, g->file.path};
    if (r.size < 4 || memcmp(r.p, GGUF_MAGIC, 4) != 0)
        return cosy_error(COSY_ERR_FORMAT, "%s: not a GGUF file (bad magic)", r.path);
    r.pos = 4;
    COSY_TRY(rd_u32(&r, &g->version, "version"));
    if (g->version != 3 && g->version != 2)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (expected 3)", r.path, g->version);
    uint64_t nt, nkv;
    COSY_TRY(rd_u64(&r, &nt, "tensor count"));
    COSY_TRY(rd_u64(&r, &nkv, "metadata count"));
    if (nt > r.size / 16 || nkv > r.size / 12)
        return cosy_error(COSY_ERR_FORMAT, "%s: impossible counts (%llu tensors, %llu keys)", r.path,
                          (unsigned long long)nt, (unsigned long long)nkv);
    g->kv = calloc((size_t)nkv + 1, sizeof(gguf_kv));
    g->tensors = calloc((size_t)nt + 1, sizeof(cosy_tensor));
    if (!g->kv || !g->tensors) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r.path);
    for (uint64_t i = 0; i < nkv; i++) {
        g->n_kv = (int64_t)i + 1;
        COSY_TRY(read_kv(&r, &g->kv[i]));
    }
    g->n_kv = (int64_t)nkv;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32 || al->scalar.i == 0 || (al->scalar.i & (al->scalar.i - 1)))
            return cosy_error(COSY_ERR_FORMAT, "%s: general.alignment must be a power-of-two uint32", r.path);
        g->alignment = (size_t)al->scalar.i;
    }
    uint64_t *offsets = calloc((size_t)nt + 1, sizeof(uint64_t));
    if (!offsets) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r.path);
    cosy_status st = COSY_OK;
    for (uint64_t i = 0; i < nt && st == COSY_OK; i++) {
        cosy_tensor *t = &g->tensors[i];
        g->n_tensors = (int64_t)i + 1;
        gguf_str name;
        uint32_t nd, type;
        size_t start = r.pos;
        if ((st = rd_str(&r, &name, "tensor name")) != COSY_OK) break;
        if (!(t->name = dup_str(name))) { st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
        if ((st = rd_u32(&r, &nd, t->name)) != COSY_OK) break;
        if (nd < 1 || nd > COSY_MAX_DIMS) {
            st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: tensor %s (byte %zu) has %u dimensions (1..%d supported)", r.path, t->name, start, nd, COSY_MAX_DIMS);
            break;
        }
        t->ndim = (int)nd;
        int64_t numel = 1;
        for (uint32_t d = 0; d < nd && st == COSY_OK; d++) {
            uint64_t v;
            if ((st = rd_u64(&r, &v, t->name)) != COSY_OK) break;
            if (v == 0 || v > (1ull << 40) || (uint64_t)numel > (1ull << 40) / v) {
                st = cosy_error(COSY_ERR_FORMAT, "%s: tensor %s has an impossible dimension %llu", r.path, t->name, (unsigned long long)v);
                break;
            }
            t->shape[nd - 1 - d] = (int64_t)v;
            numel *= (int64_t)v;
        }
        if (st != COSY_OK) break;
        if ((st = rd_u32(&r, &type, t->name)) != COSY_OK) break;
        if (!cosy_dtype_valid((int)type)) {
            st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: tensor %s has unsupported type %u", r.path, t->name, type);
            break;
        }
        t->dtype = (cosy_dtype)type;
        if (numel % cosy_dtype_block(t->dtype) != 0 || t->shape[t->ndim - 1] % cosy_dtype_block(t->dtype) != 0) {
            st = cosy_error(COSY_ERR_FORMAT, "%s: tensor %s: rows are not a multiple of the %s block size", r.path, t->name, cosy_dtype_name(t->dtype));
            break;
        }
        t->nbytes = cosy_dtype_nbytes(t->dtype, numel);
        if ((st = rd_u64(&r, &offsets[i], t->name)) != COSY_OK) break;
        if (offsets[i] % g->alignment) {
            st = cosy_error(COSY_ERR_FORMAT, "%s: tensor %s offset %llu is not aligned to %zu", r.path, t->name, (unsigned long long)offsets[i], g->alignment);
            break;
        }
    }
    if (st == COSY_OK) {
        g->n_tensors = (int64_t)nt;
        g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
        for (uint64_t i = 0; i < nt; i++) {
            cosy_tensor *t = &g->tensors[i];
            if (g->data_offset > r.size || offsets[i] > r.size - g->data_offset ||
                t->nbytes > r.size - g->data_offset - offsets[i]) {
                st = cosy_error(COSY_ERR_FORMAT, "%s: tensor %s data (%zu bytes at byte %llu) runs past the end of the file (%zu bytes): truncated?",
                                r.path, t->name, t->nbytes, (unsigned long long)(g->data_offset + offsets[i]), r.size);
                break;
            }
            t->data = (void *)(r.p + g->data_offset + offsets[i]);
        }
    }
    free(offsets);
    if (st != COSY_OK) return st;
    /* name index for lookups; duplicates end up adjacent */
    g->by_name = malloc(sizeof(int64_t) * (size_t)(g->n_tensors + 1));
    if (!g->by_name) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r.path);
    for (int64_t i = 0; i < g->n_tensors; i++) g->by_name[i] = i;
    sort_tensors = g->tensors;
    qsort(g->by_name, (size_t)g->n_tensors, sizeof(int64_t), cmp_index_by_name);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[g->by_name[i]].name, g->tensors[g->by_name[i - 1]].name))
            return cosy_error(COSY_ERR_FORMAT, "%s: tensor %s appears twice", r.path, g->tensors[g->by_name[i]].name);
    return COSY_OK;
}

cosy_status gguf_open(const char *path, gguf_file *out)
{
    memset(out, 0, sizeof *out);
    COSY_TRY(cosy_file_map(path, &out->file));
    cosy_status st = parse(out);
    if (st != COSY_OK) gguf_close(out);
    return st;
}

cosy_status gguf_open_mem(const void *data, size_t size, const char *name, gguf_file *out)
{
    memset(out, 0, sizeof *out);
    COSY_TRY(cosy_file_borrow(data, size, name, &out->file));
    cosy_status st = parse(out);
    if (st != COSY_OK) gguf_close(out);
    return st;
}

void gguf_close(gguf_file *g)
{
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].strs);
        }
    if (g->tensors)
        for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->by_name);
    cosy_file_unmap(&g->file);
    memset(g, 0, sizeof *g);
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const cosy_tensor *gguf_find_tensor(const gguf_file *g, const char *name)
{
    int64_t lo = 0, hi = g->n_tensors - 1;
    if (!g->by_name) return NULL;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const cosy_tensor *t = &g->tensors[g->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static int is_int_type(gguf_type t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_INT16 ||
           t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64 ||
           t == GGUF_TYPE_BOOL;
}

cosy_status gguf_get_int(const gguf_file *g, const char *key, int64_t *out)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return cosy_error(COSY_ERR_MISSING, "%s: metadata key %s is missing", g->file.path, key);
    if (!is_int_type(kv->type)) return cosy_error(COSY_ERR_FORMAT, "%s: metadata key %s is not an integer", g->file.path, key);
    *out = kv->scalar.i;
    return COSY_OK;
}

cosy_status gguf_get_float(const gguf_file *g, const char *key, double *out)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return cosy_error(COSY_ERR_MISSING, "%s: metadata key %s is missing", g->file.path, key);
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) *out = kv->scalar.f;
    else if (is_int_type(kv->type)) *out = (double)kv->scalar.i;
    else return cosy_error(COSY_ERR_FORMAT, "%s: metadata key %s is not a number", g->file.path, key);
    return COSY_OK;
}

static cosy_status get_array(const gguf_file *g, const char *key, int max, int *n, const gguf_kv **kvp)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return cosy_error(COSY_ERR_MISSING, "%s: metadata key %s is missing", g->file.path, key);
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type == GGUF_TYPE_STRING)
        return cosy_error(COSY_ERR_FORMAT, "%s: metadata key %s is not a numeric array", g->file.path, key);
    if (kv->n > (uint64_t)max)
        return cosy_error(COSY_ERR_FORMAT, "%s: metadata array %s has %llu entries (at most %d expected)", g->file.path, key, (unsigned long long)kv->n, max);
    *n = (int)kv->n;
    *kvp = kv;
    return COSY_OK;
}

cosy_status gguf_get_int_array(const gguf_file *g, const char *key, int64_t *out, int max, int *n)
{
    const gguf_kv *kv;
    COSY_TRY(get_array(g, key, max, n, &kv));
    if (!is_int_type(kv->arr_type)) return cosy_error(COSY_ERR_FORMAT, "%s: metadata array %s is not integer", g->file.path, key);
    size_t es = scalar_size(kv->arr_type);
    for (int i = 0; i < *n; i++) {
        gguf_kv tmp;
        read_scalar(kv->arr_type, (const unsigned char *)kv->arr + (size_t)i * es, &tmp);
        out[i] = tmp.scalar.i;
    }
    return COSY_OK;
}

cosy_status gguf_get_float_array(const gguf_file *g, const char *key, double *out, int max, int *n)
{
    const gguf_kv *kv;
    COSY_TRY(get_array(g, key, max, n, &kv));
    size_t es = scalar_size(kv->arr_type);
    for (int i = 0; i < *n; i++) {
        gguf_kv tmp;
        read_scalar(kv->arr_type, (const unsigned char *)kv->arr + (size_t)i * es, &tmp);
        out[i] = (kv->arr_type == GGUF_TYPE_FLOAT32 || kv->arr_type == GGUF_TYPE_FLOAT64) ? tmp.scalar.f : (double)tmp.scalar.i;
    }
    return COSY_OK;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *name;
    cosy_dtype dtype;
    int ndim;
    int64_t shape[COSY_MAX_DIMS];
    size_t nbytes;
    uint64_t offset;
    gguf_fill_fn fill;
    void *ctx;
    void (*free_ctx)(void *);
} writer_tensor;

struct gguf_writer {
    unsigned char *kv_buf;
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    int oom;
    writer_tensor *tensors;
    int64_t n_tensors, cap_tensors;
};

gguf_writer *gguf_writer_create(void)
{
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) gguf_writer_set_u32(w, "general.alignment", GGUF_WRITE_ALIGNMENT);
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        if (w->tensors[i].free_ctx) w->tensors[i].free_ctx(w->tensors[i].ctx);
    }
    free(w->tensors);
    free(w->kv_buf);
    free(w);
}

static void put(gguf_writer *w, const void *p, size_t n)
{
    if (w->oom) return;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap *= 2;
        unsigned char *nb = realloc(w->kv_buf, cap);
        if (!nb) { w->oom = 1; return; }
        w->kv_buf = nb;
        w->kv_cap = cap;
    }
    memcpy(w->kv_buf + w->kv_len, p, n);
    w->kv_len += n;
}

static void put_u32(gguf_writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(gguf_writer *w, uint64_t v) { put(w, &v, 8); }
static void put_str(gguf_writer *w, const char *s, size_t len) { put_u64(w, len); put(w, s, len); }
static void put_key(gguf_writer *w, const char *key, gguf_type type)
{
    put_str(w, key, strlen(key));
    put_u32(w, (uint32_t)type);
    w->n_kv++;
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { put_key(w, key, GGUF_TYPE_UINT32); put_u32(w, v); }
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { put_key(w, key, GGUF_TYPE_INT32); put(w, &v, 4); }
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { put_key(w, key, GGUF_TYPE_FLOAT32); put(w, &v, 4); }
void gguf_writer_set_bool(gguf_writer *w, const char *key, int v)
{
    unsigned char b = v != 0;
    put_key(w, key, GGUF_TYPE_BOOL);
    put(w, &b, 1);
}
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    put_key(w, key, GGUF_TYPE_STRING);
    put_str(w, v, strlen(v));
}
void gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    put_key(w, key, GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_INT32);
    put_u64(w, n);
    put(w, v, (size_t)n * 4);
}
void gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n)
{
    put_key(w, key, GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_FLOAT32);
    put_u64(w, n);
    put(w, v, (size_t)n * 4);
}
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, const size_t *lens, uint64_t n)
{
    put_key(w, key, GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_STRING);
    put_u64(w, n);
    for (uint64_t i = 0; i < n; i++) put_str(w, v[i], lens ? lens[i] : strlen(v[i]));
}

cosy_status gguf_writer_add_tensor(gguf_writer *w, const char *name, cosy_dtype dtype, int ndim,
                                   const int64_t *shape, gguf_fill_fn fill, void *ctx, void (*free_ctx)(void *))
{
    if (ndim < 1 || ndim > COSY_MAX_DIMS) {
        if (free_ctx) free_ctx(ctx);
        return cosy_error(COSY_ERR_INVALID_ARG, "gguf writer: tensor %s has %d dimensions", name, ndim);
    }
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 256;
        writer_tensor *nt = realloc(w->tensors, sizeof *nt * (size_t)cap);
        if (!nt) {
            if (free_ctx) free_ctx(ctx);
            return cosy_error(COSY_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    writer_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        if (free_ctx) free_ctx(ctx);
        return cosy_error(COSY_ERR_NOMEM, "gguf writer: out of memory");
    }
    w->n_tensors++;
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        numel *= shape[i];
    }
    t->fill = fill;
    t->ctx = ctx;
    t->free_ctx = free_ctx;
    if (numel % cosy_dtype_block(dtype) || shape[ndim - 1] % cosy_dtype_block(dtype))
        return cosy_error(COSY_ERR_INVALID_ARG, "gguf writer: tensor %s rows are not a multiple of the %s block", name, cosy_dtype_name(dtype));
    t->nbytes = cosy_dtype_nbytes(dtype, numel);
    return COSY_OK;
}

int64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_tensors; }

static cosy_status write_all(FILE *fp, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, fp) != n) return cosy_error(COSY_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return COSY_OK;
}

static cosy_status write_pad(FILE *fp, uint64_t pos, const char *path)
{
    static const unsigned char zeros[GGUF_WRITE_ALIGNMENT];
    size_t pad = (size_t)((GGUF_WRITE_ALIGNMENT - pos % GGUF_WRITE_ALIGNMENT) % GGUF_WRITE_ALIGNMENT);
    return write_all(fp, zeros, pad, path);
}

static cosy_status write_file(gguf_writer *w, FILE *fp, const char *path)
{
    if (w->oom) return cosy_error(COSY_ERR_NOMEM, "gguf writer: out of memory");
    /* header */
    unsigned char hdr[24];
    memcpy(hdr, GGUF_MAGIC, 4);
    uint32_t version = 3;
    uint64_t nt = (uint64_t)w->n_tensors;
    memcpy(hdr + 4, &version, 4);
    memcpy(hdr + 8, &nt, 8);
    memcpy(hdr + 16, &w->n_kv, 8);
    COSY_TRY(write_all(fp, hdr, sizeof hdr, path));
    COSY_TRY(write_all(fp, w->kv_buf, w->kv_len, path));
    uint64_t pos = sizeof hdr + w->kv_len, data_pos = 0;
    size_t max_bytes = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        writer_tensor *t = &w->tensors[i];
        t->offset = data_pos;
        data_pos += (t->nbytes + GGUF_WRITE_ALIGNMENT - 1) / GGUF_WRITE_ALIGNMENT * GGUF_WRITE_ALIGNMENT;
        if (t->nbytes > max_bytes) max_bytes = t->nbytes;
        size_t len = strlen(t->name);
        uint64_t len64 = len;
        uint32_t nd = (uint32_t)t->ndim, type = (uint32_t)t->dtype;
        COSY_TRY(write_all(fp, &len64, 8, path));
        COSY_TRY(write_all(fp, t->name, len, path));
        COSY_TRY(write_all(fp, &nd, 4, path));
        for (int d = t->ndim - 1; d >= 0; d--) {
            uint64_t v = (uint64_t)t->shape[d];
            COSY_TRY(write_all(fp, &v, 8, path));
        }
        COSY_TRY(write_all(fp, &type, 4, path));
        COSY_TRY(write_all(fp, &t->offset, 8, path));
        pos += 8 + len + 4 + 8 * (uint64_t)t->ndim + 4 + 8;
    }
    COSY_TRY(write_pad(fp, pos, path));
    void *buf = cosy_aligned_alloc(max_bytes ? max_bytes : 64);
    if (!buf) return cosy_error(COSY_ERR_NOMEM, "gguf writer: cannot allocate %zu bytes", max_bytes);
    cosy_status st = COSY_OK;
    for (int64_t i = 0; i < w->n_tensors && st == COSY_OK; i++) {
        writer_tensor *t = &w->tensors[i];
        st = t->fill(t->ctx, buf, t->nbytes);
        if (st == COSY_OK) st = write_all(fp, buf, t->nbytes, path);
        if (st == COSY_OK) st = write_pad(fp, t->nbytes, path);
    }
    cosy_aligned_free(buf);
    return st;
}

cosy_status gguf_writer_write(gguf_writer *w, const char *path)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp-%d", path, (int)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        cosy_status st = cosy_error(COSY_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    cosy_status st = write_file(w, fp, path);
    if (fclose(fp) != 0 && st == COSY_OK) st = cosy_error(COSY_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (st == COSY_OK && rename(tmp, path) != 0) st = cosy_error(COSY_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    if (st != COSY_OK) unlink(tmp);
    free(tmp);
    return st;
}
