/*
 * pt_writer.h — test helper: writes PyTorch-format checkpoints (zip of data.pkl + storages) the way
 * torch.save does for a state dict (pickle protocol 2, OrderedDict, _rebuild_tensor_v2), so tests
 * can build the key layouts and dtypes real checkpoints use (weight-norm parametrizations, a
 * `generator.` prefix, bfloat16 storages, shared storages, strided views) and corrupt ones.
 */
#ifndef COSY_PT_WRITER_H
#define COSY_PT_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    unsigned char *p;
    size_t len, cap;
} ptw_buf;

static void ptw_put(ptw_buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static void ptw_u8(ptw_buf *b, unsigned v) { unsigned char c = (unsigned char)v; ptw_put(b, &c, 1); }
static void ptw_u16(ptw_buf *b, unsigned v) { ptw_u8(b, v & 0xff); ptw_u8(b, (v >> 8) & 0xff); }
static void ptw_u32(ptw_buf *b, uint32_t v) { ptw_u16(b, v & 0xffff); ptw_u16(b, v >> 16); }

/* ---- pickle pieces ---- */
static void pk_str(ptw_buf *b, const char *s)
{
    ptw_u8(b, 'X');
    ptw_u32(b, (uint32_t)strlen(s));
    ptw_put(b, s, strlen(s));
}
static void pk_int(ptw_buf *b, long v)
{
    if (v >= 0 && v < 256) { ptw_u8(b, 'K'); ptw_u8(b, (unsigned)v); }
    else { ptw_u8(b, 'J'); ptw_u32(b, (uint32_t)(int32_t)v); }
}
static void pk_global(ptw_buf *b, const char *module, const char *name)
{
    ptw_u8(b, 'c');
    ptw_put(b, module, strlen(module));
    ptw_u8(b, '\n');
    ptw_put(b, name, strlen(name));
    ptw_u8(b, '\n');
}
static void pk_ordered_dict(ptw_buf *b)
{
    pk_global(b, "collections", "OrderedDict");
    ptw_u8(b, ')');
    ptw_u8(b, 'R');
}

typedef struct {
    const char *name;
    const char *storage_type; /* "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", ... */
    const char *storage_key;  /* tensors may share a key */
    long numel_storage;
    long offset;
    int ndim;
    long shape[4], stride[4];
} ptw_tensor;

/* The pickle of {name: tensor, ...} as torch.save writes it. parent != NULL nests everything
 * one level deeper: {parent: {name: tensor}}. */
static void ptw_tensor_value(ptw_buf *b, const ptw_tensor *t)
{
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    ptw_u8(b, '(');
    ptw_u8(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", t->storage_type);
    pk_str(b, t->storage_key);
    pk_str(b, "cpu");
    pk_int(b, t->numel_storage);
    ptw_u8(b, 't');
    ptw_u8(b, 'Q');
    pk_int(b, t->offset);
    ptw_u8(b, '(');
    for (int d = 0; d < t->ndim; d++) pk_int(b, t->shape[d]);
    ptw_u8(b, 't');
    ptw_u8(b, '(');
    for (int d = 0; d < t->ndim; d++) pk_int(b, t->stride[d]);
    ptw_u8(b, 't');
    ptw_u8(b, 0x89); /* requires_grad False */
    pk_ordered_dict(b);
    ptw_u8(b, 't');
    ptw_u8(b, 'R');
}

/* {parents[i]: {t[i].name: tensor}} grouping consecutive tensors with the same parent; a NULL
 * parent puts the tensor at the top level. parents may be NULL (all top level). */
static void ptw_pickle_grouped(ptw_buf *b, const ptw_tensor *t, int n, const char *const *parents)
{
    ptw_u8(b, 0x80);
    ptw_u8(b, 2);
    pk_ordered_dict(b);
    ptw_u8(b, '(');
    for (int i = 0; i < n;) {
        const char *p = parents ? parents[i] : NULL;
        if (!p) {
            pk_str(b, t[i].name);
            ptw_tensor_value(b, &t[i]);
            i++;
            continue;
        }
        pk_str(b, p);
        pk_ordered_dict(b);
        ptw_u8(b, '(');
        while (i < n && parents[i] && !strcmp(parents[i], p)) {
            pk_str(b, t[i].name);
            ptw_tensor_value(b, &t[i]);
            i++;
        }
        ptw_u8(b, 'u');
    }
    ptw_u8(b, 'u');
    ptw_u8(b, '.');
}

static void ptw_pickle(ptw_buf *b, const ptw_tensor *t, int n, const char *parent)
{
    const char **parents = NULL;
    if (parent) {
        parents = malloc(sizeof(char *) * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++) parents[i] = parent;
    }
    ptw_pickle_grouped(b, t, n, parents);
    free(parents);
}

/* ---- zip ---- */
typedef struct {
    const char *name;
    const void *data;
    size_t size;
    int deflate; /* store deflated (method 8) instead of stored */
} ptw_entry;

/* raw deflate of data into a malloc'ed buffer */
static unsigned char *ptw_deflate(const void *data, size_t size, size_t *out_size)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&zs, (uLong)size) + 16;
    unsigned char *out = malloc(cap);
    zs.next_in = (unsigned char *)data;
    zs.avail_in = (uInt)size;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    *out_size = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* A stored (uncompressed) zip with every entry's data on a 64-byte boundary, like torch's. */
static int ptw_write_zip(const char *path, const ptw_entry *e, int n)
{
    ptw_buf b = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        size_t off = b.len, nlen = strlen(e[i].name);
        size_t pad = (64 - (off + 30 + nlen + 4) % 64) % 64;
        uint32_t crc = (uint32_t)crc32(0, e[i].data, (uInt)e[i].size);
        size_t csize = e[i].size;
        unsigned char *packed = e[i].deflate ? ptw_deflate(e[i].data, e[i].size, &csize) : NULL;
        unsigned method = e[i].deflate ? 8 : 0;
        ptw_u32(&b, 0x04034b50u);
        ptw_u16(&b, 20); ptw_u16(&b, 0); ptw_u16(&b, method); ptw_u16(&b, 0); ptw_u16(&b, 0);
        ptw_u32(&b, crc); ptw_u32(&b, (uint32_t)csize); ptw_u32(&b, (uint32_t)e[i].size);
        ptw_u16(&b, (unsigned)nlen); ptw_u16(&b, (unsigned)(pad + 4));
        ptw_put(&b, e[i].name, nlen);
        ptw_u16(&b, 0x4646); ptw_u16(&b, (unsigned)pad); /* padding extra field, as torch writes */
        for (size_t k = 0; k < pad; k++) ptw_u8(&b, 0);
        ptw_put(&b, packed ? packed : e[i].data, csize);
        free(packed);
        ptw_u32(&cd, 0x02014b50u);
        ptw_u16(&cd, 20); ptw_u16(&cd, 20); ptw_u16(&cd, 0); ptw_u16(&cd, method); ptw_u16(&cd, 0); ptw_u16(&cd, 0);
        ptw_u32(&cd, crc); ptw_u32(&cd, (uint32_t)csize); ptw_u32(&cd, (uint32_t)e[i].size);
        ptw_u16(&cd, (unsigned)nlen); ptw_u16(&cd, 0); ptw_u16(&cd, 0); ptw_u16(&cd, 0); ptw_u16(&cd, 0);
        ptw_u32(&cd, 0); ptw_u32(&cd, (uint32_t)off);
        ptw_put(&cd, e[i].name, nlen);
    }
    size_t cd_off = b.len;
    ptw_put(&b, cd.p, cd.len);
    ptw_u32(&b, 0x06054b50u);
    ptw_u16(&b, 0); ptw_u16(&b, 0); ptw_u16(&b, (unsigned)n); ptw_u16(&b, (unsigned)n);
    ptw_u32(&b, (uint32_t)cd.len); ptw_u32(&b, (uint32_t)cd_off); ptw_u16(&b, 0);
    FILE *fp = fopen(path, "wb");
    int ok = fp && fwrite(b.p, 1, b.len, fp) == b.len;
    if (fp) ok = (fclose(fp) == 0) && ok;
    free(b.p);
    free(cd.p);
    return ok ? 0 : -1;
}

/* Writes a checkpoint: the pickle `pkl` and storages (key, bytes). */
static int ptw_write_checkpoint(const char *path, const char *prefix, const ptw_buf *pkl, const char *const *keys,
                                const void *const *blobs, const size_t *sizes, int n_storages, int deflate)
{
    ptw_entry *e = calloc((size_t)n_storages + 2, sizeof *e);
    char (*names)[128] = calloc((size_t)n_storages + 2, sizeof *names);
    snprintf(names[0], 128, "%s/data.pkl", prefix);
    e[0].name = names[0];
    e[0].data = pkl->p;
    e[0].size = pkl->len;
    e[0].deflate = deflate;
    for (int i = 0; i < n_storages; i++) {
        snprintf(names[i + 1], 128, "%s/data/%s", prefix, keys[i]);
        e[i + 1].name = names[i + 1];
        e[i + 1].data = blobs[i];
        e[i + 1].size = sizes[i];
        e[i + 1].deflate = deflate;
    }
    snprintf(names[n_storages + 1], 128, "%s/version", prefix);
    e[n_storages + 1].name = names[n_storages + 1];
    e[n_storages + 1].data = "3\n";
    e[n_storages + 1].size = 2;
    int rc = ptw_write_zip(path, e, n_storages + 2);
    free(e);
    free(names);
    return rc;
}

/* spk2info.pt with one speaker, spkShort, whose llm_embedding (64 values) is shorter than its
 * flow_embedding (192): 2 prompt tokens (6000, 6001), a 4-frame prompt_speech_feat filled with `feat`
 * ([4][80]). Returns 0 when written. */
static inline int ptw_write_short_speaker(const char *path, const float *feat)
{
    static int64_t tokens[2] = {6000, 6001};
    static float emb[192];
    for (int i = 0; i < 192; i++) emb[i] = (float)i / 192.0f;
    ptw_tensor t[4];
    const char *parents[4] = {"spkShort", "spkShort", "spkShort", "spkShort"};
    const char *keys[4] = {"0", "1", "2", "3"};
    const void *blobs[4] = {tokens, feat, emb, emb};
    size_t sizes[4] = {sizeof tokens, 4 * 80 * sizeof(float), 64 * sizeof(float), sizeof emb};
    const char *fields[4] = {"llm_prompt_speech_token", "prompt_speech_feat", "llm_embedding", "flow_embedding"};
    for (int k = 0; k < 4; k++) {
        memset(&t[k], 0, sizeof t[k]);
        t[k].name = fields[k];
        t[k].storage_key = keys[k];
        t[k].storage_type = k == 0 ? "LongStorage" : "FloatStorage";
        t[k].ndim = k == 1 ? 3 : 2;
        t[k].shape[0] = 1;
        t[k].shape[1] = k == 0 ? 2 : k == 1 ? 4 : k == 2 ? 64 : 192;
        if (k == 1) t[k].shape[2] = 80;
        t[k].numel_storage = k == 0 ? 2 : k == 1 ? 4 * 80 : k == 2 ? 64 : 192;
        long stride = 1;
        for (int d = t[k].ndim - 1; d >= 0; d--) {
            t[k].stride[d] = stride;
            stride *= t[k].shape[d];
        }
    }
    ptw_buf pkl = {0};
    ptw_pickle_grouped(&pkl, t, 4, parents);
    int rc = ptw_write_checkpoint(path, "spk2info", &pkl, keys, blobs, sizes, 4, 0);
    free(pkl.p);
    return rc;
}

#endif
