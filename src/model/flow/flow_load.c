/*
 * flow_load.c — the flow's weights from the model file into the run-time forms its kernels read
 * (see flow_load.h): Linear layers (f32 panels, bf16 tiles or the plain matrix), stacked q/k/v,
 * LayerNorms, and convolutions repacked for im2col.
 */
#include "model/flow/flow_load.h"
#include "core/error.h"
#include "core/file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cosy_status vname(char *buf, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, size, fmt, ap);
    if (n < 0 || (size_t)n >= size) return cosy_error(COSY_ERR_INTERNAL, "flow: tensor name too long");
    return COSY_OK;
}

/*
 * A matrix [rows][cols] as the loader reads it: straight from the mapped file when it is stored as f32,
 * or as bf16 and the flow runs in bf16; otherwise (f16, or bf16 for the f32 path) widened into a
 * temporary. Stacked (q/k/v) and permuted (convolutions) matrices are temporaries too.
 */
typedef struct {
    const void *data;
    int bf16;       /* data is bf16, else f32 */
    void *owned;    /* the temporary, freed by src_free */
} weight_src;

/* Done with a source: a temporary is freed; a matrix read from the mapped file is given back to the
 * kernel (its packed copy is what stays resident) unless `kept` (the plain f32 path uses it in place). */
static void src_done(cosy_flow *f, weight_src *w, size_t bytes, int kept)
{
    if (w->owned) free(w->owned);
    else if (w->data && !kept) cosy_file_release(&f->model->file.file, w->data, bytes);
    memset(w, 0, sizeof *w);
}

static cosy_status src_tensor(cosy_flow *f, const cosy_tensor *t, weight_src *w)
{
    memset(w, 0, sizeof *w);
    if (t->dtype == COSY_DTYPE_F32 || (t->dtype == COSY_DTYPE_BF16 && f->bf16)) {
        w->data = t->data;
        w->bf16 = t->dtype == COSY_DTYPE_BF16;
        return COSY_OK;
    }
    const int64_t n = cosy_tensor_numel(t);
    float *tmp = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!tmp) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory widening %s", t->name);
    cosy_convert_to_f32(tmp, t->data, t->dtype, n);
    w->data = w->owned = tmp;
    return COSY_OK;
}

/*
 * The run-time form of a Linear's weight src [l->out][l->in]: bf16 tiles in the bf16 mode; f32 panels on
 * AVX-512; else the plain f32 matrix (kept from the file, or copied when src is a temporary). Nothing
 * else of the weight stays resident.
 */
static cosy_status pack_linear(cosy_flow *f, flow_linear *l, const weight_src *src, const char *name)
{
    l->w = NULL;
    l->packed = NULL;
    l->packed_bias = NULL;
    l->tiles = NULL;
    if (f->bf16) {
        if (l->in > FLOW_BF16_MAX_IN)
            return cosy_error(COSY_ERR_UNSUPPORTED, "flow: %s has %d inputs, more than the bf16 mode takes (%d); load it with flow_dtype f32",
                              name, l->in, FLOW_BF16_MAX_IN);
        l->tiles = cosy_model_alloc(f->model, sizeof(uint16_t) * cosy_pack_bf16_elems(l->out, l->in));
        if (!l->tiles) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory packing %s", name);
        if (src->bf16) cosy_pack_bf16_from_bf16(l->tiles, src->data, l->out, l->in, l->in);
        else cosy_pack_bf16(l->tiles, src->data, l->out, l->in, l->in);
        return COSY_OK;
    }
    /* f32 from here on (a bf16 source is widened by src_tensor outside the bf16 mode) */
    if (!f->fast) {
        if (!src->owned) {
            l->w = src->data;
            return COSY_OK;
        }
        float *w = cosy_model_alloc(f->model, sizeof(float) * (size_t)l->out * l->in);
        if (!w) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory for %s", name);
        memcpy(w, src->data, sizeof(float) * (size_t)l->out * l->in);
        l->w = w;
        return COSY_OK;
    }
    const size_t panels = (size_t)(l->out + COSY_PANEL - 1) / COSY_PANEL;
    l->packed = cosy_model_alloc(f->model, sizeof(float) * panels * COSY_PANEL * (size_t)l->in);
    if (!l->packed) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory packing %s", name);
    cosy_pack_f32_rows(l->packed, src->data, l->out, l->in, l->in);
    if (l->b) {
        l->packed_bias = cosy_model_alloc(f->model, sizeof(float) * panels * COSY_PANEL);
        if (!l->packed_bias) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory packing %s", name);
        memset(l->packed_bias, 0, sizeof(float) * panels * COSY_PANEL);
        memcpy(l->packed_bias, l->b, sizeof(float) * (size_t)l->out);
    }
    return COSY_OK;
}

/* The weight tensor `full` as a source, after checking its size. */
static cosy_status weight_tensor(cosy_flow *f, const char *full, int64_t numel, const cosy_tensor **t, weight_src *src)
{
    COSY_TRY(cosy_model_tensor(f->model, full, t));
    if (cosy_tensor_numel(*t) != numel)
        return cosy_error(COSY_ERR_SHAPE, "flow: %s has %lld values, expected %lld", full, (long long)cosy_tensor_numel(*t), (long long)numel);
    return src_tensor(f, *t, src);
}

cosy_status flow_load_linear(cosy_flow *f, flow_linear *l, int bias, int out, int in, const char *fmt, ...)
{
    char name[128], full[160];
    va_list ap;
    va_start(ap, fmt);
    cosy_status st = vname(name, sizeof name, fmt, ap);
    va_end(ap);
    COSY_TRY(st);
    const cosy_tensor *t;
    weight_src src;
    snprintf(full, sizeof full, "%s.weight", name);
    COSY_TRY(weight_tensor(f, full, (int64_t)out * in, &t, &src));
    l->b = NULL;
    st = COSY_OK;
    if (bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        st = cosy_model_f32(f->model, full, &l->b);
    }
    l->in = in;
    l->out = out;
    if (st == COSY_OK) st = pack_linear(f, l, &src, name);
    src_done(f, &src, (size_t)out * in * (src.bf16 ? 2 : 4), l->w == src.data);
    return st;
}

cosy_status flow_load_qkv(cosy_flow *f, flow_linear *l, int bias, int out, int in, const char *prefix, const char *q, const char *k,
                          const char *v)
{
    const char *parts[3] = {q, k, v};
    char full[192];
    weight_src src[3];
    memset(src, 0, sizeof src);
    const size_t per = (size_t)out * in;
    float *b = bias ? cosy_model_alloc(f->model, sizeof(float) * 3 * (size_t)out) : NULL;
    cosy_status st = bias && !b ? cosy_error(COSY_ERR_NOMEM, "flow: out of memory stacking %s q/k/v", prefix) : COSY_OK;
    for (int i = 0; i < 3 && st == COSY_OK; i++) {
        const cosy_tensor *t;
        int n = snprintf(full, sizeof full, "%s.%s.weight", prefix, parts[i]);
        if (n < 0 || (size_t)n >= sizeof full) st = cosy_error(COSY_ERR_INTERNAL, "flow: tensor name too long");
        if (st == COSY_OK) st = weight_tensor(f, full, (int64_t)per, &t, &src[i]);
        if (st == COSY_OK && bias) {
            const float *bi;
            snprintf(full, sizeof full, "%s.%s.bias", prefix, parts[i]);
            st = cosy_model_f32(f->model, full, &bi);
            if (st == COSY_OK) memcpy(b + (size_t)i * out, bi, sizeof(float) * (size_t)out);
        }
    }
    /* one [3 out][in] matrix, in the sources' common type */
    weight_src stacked = {NULL, 0, NULL};
    if (st == COSY_OK) {
        const int all_bf16 = src[0].bf16 && src[1].bf16 && src[2].bf16;
        const size_t esize = all_bf16 ? sizeof(uint16_t) : sizeof(float);
        char *w = malloc(esize * 3 * per);
        if (!w) st = cosy_error(COSY_ERR_NOMEM, "flow: out of memory stacking %s q/k/v", prefix);
        for (int i = 0; i < 3 && w; i++) {
            if (all_bf16 || !src[i].bf16) memcpy(w + esize * i * per, src[i].data, esize * per);
            else cosy_convert_to_f32((float *)(void *)w + i * per, src[i].data, COSY_DTYPE_BF16, (int64_t)per);
        }
        stacked = (weight_src){w, all_bf16, w};
    }
    l->b = b;
    l->in = in;
    l->out = 3 * out;
    if (st == COSY_OK) st = pack_linear(f, l, &stacked, prefix);
    src_done(f, &stacked, 0, 0);
    for (int i = 0; i < 3; i++) src_done(f, &src[i], per * (src[i].bf16 ? 2 : 4), 0);
    return st;
}

cosy_status flow_load_norm(cosy_flow *f, flow_norm *n, const char *fmt, ...)
{
    char name[128], full[160];
    va_list ap;
    va_start(ap, fmt);
    cosy_status st = vname(name, sizeof name, fmt, ap);
    va_end(ap);
    COSY_TRY(st);
    snprintf(full, sizeof full, "%s.weight", name);
    COSY_TRY(cosy_model_f32(f->model, full, &n->w));
    snprintf(full, sizeof full, "%s.bias", name);
    COSY_TRY(cosy_model_f32(f->model, full, &n->b));
    return COSY_OK;
}

/* Convolutions g = 0 .. groups - 1 of a grouped Conv1d weight `name` [out][in][K] (in = inputs per group):
 * cv[g] maps input channels [g in, (g + 1) in) to outputs [g out / groups, (g + 1) out / groups). */
static cosy_status load_conv_groups(cosy_flow *f, flow_conv *cv, int groups, int out, int in, int k, const char *name)
{
    char full[160];
    const cosy_tensor *t;
    weight_src src;
    cosy_status st = COSY_OK;
    snprintf(full, sizeof full, "%s.weight", name);
    COSY_TRY(cosy_model_tensor(f->model, full, &t));
    if (t->ndim != 3 || t->shape[0] != out || t->shape[1] != in || t->shape[2] != k || groups < 1 || out % groups)
        return cosy_error(COSY_ERR_SHAPE, "flow: %s is not a [%d, %d, %d] convolution in %d groups", full, out, in, k, groups);
    const float *bias;
    snprintf(full, sizeof full, "%s.bias", name);
    COSY_TRY(cosy_model_f32(f->model, full, &bias));
    COSY_TRY(src_tensor(f, t, &src));
    const int og = out / groups;
    /* [out][in][K] -> per group [og][K][in], so an im2col row (K frames of `in` channels) meets it in order */
    const size_t esize = src.bf16 ? sizeof(uint16_t) : sizeof(float);
    char *wk = malloc(esize * (size_t)og * in * k);
    if (!wk) st = cosy_error(COSY_ERR_NOMEM, "flow: out of memory repacking %s", name);
    for (int g = 0; g < groups && st == COSY_OK; g++) {
        for (int o = 0; o < og; o++)
            for (int i = 0; i < in; i++)
                for (int j = 0; j < k; j++)
                    memcpy(wk + esize * (((size_t)o * k + j) * in + i),
                           (const char *)src.data + esize * ((((size_t)g * og + o) * in + i) * k + j), esize);
        weight_src perm = {wk, src.bf16, wk}; /* owned: pack_linear copies what it keeps (wk is reused) */
        cv[g].lin.b = bias + (size_t)g * og;
        cv[g].lin.in = in * k;
        cv[g].lin.out = og;
        cv[g].in = in;
        cv[g].out = og;
        cv[g].k = k;
        st = pack_linear(f, &cv[g].lin, &perm, name);
    }
    free(wk);
    src_done(f, &src, esize * (size_t)out * in * k, 0);
    return st;
}

cosy_status flow_load_conv_groups(cosy_flow *f, flow_conv *cv, int groups, int out, int in, int k, const char *fmt, ...)
{
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    cosy_status st = vname(name, sizeof name, fmt, ap);
    va_end(ap);
    COSY_TRY(st);
    return load_conv_groups(f, cv, groups, out, in, k, name);
}

cosy_status flow_load_conv(cosy_flow *f, flow_conv *cv, int out, int in, int k, const char *fmt, ...)
{
    char name[128], full[160];
    va_list ap;
    va_start(ap, fmt);
    cosy_status st = vname(name, sizeof name, fmt, ap);
    va_end(ap);
    COSY_TRY(st);
    const cosy_tensor *t;
    weight_src src;
    snprintf(full, sizeof full, "%s.weight", name);
    COSY_TRY(cosy_model_tensor(f->model, full, &t));
    if (t->ndim != 3 || t->shape[0] != out || t->shape[1] != in || t->shape[2] != k)
        return cosy_error(COSY_ERR_SHAPE, "flow: %s is not a [%d, %d, %d] convolution", full, out, in, k);
    COSY_TRY(src_tensor(f, t, &src));
    /* [out][in][K] -> [out][K][in], so an im2col row (K frames of `in` channels) meets it in order */
    const size_t esize = src.bf16 ? sizeof(uint16_t) : sizeof(float);
    char *wk = malloc(esize * (size_t)out * in * k);
    if (!wk) st = cosy_error(COSY_ERR_NOMEM, "flow: out of memory repacking %s", full);
    for (int o = 0; o < out && wk; o++)
        for (int i = 0; i < in; i++)
            for (int j = 0; j < k; j++)
                memcpy(wk + esize * (((size_t)o * k + j) * in + i), (const char *)src.data + esize * (((size_t)o * in + i) * k + j), esize);
    weight_src perm = {wk, src.bf16, wk};
    src_done(f, &src, esize * (size_t)out * in * k, 0);
    snprintf(full, sizeof full, "%s.bias", name);
    if (st == COSY_OK) st = cosy_model_f32(f->model, full, &cv->lin.b);
    cv->lin.in = in * k;
    cv->lin.out = out;
    cv->in = in;
    cv->out = out;
    cv->k = k;
    if (st == COSY_OK) st = pack_linear(f, &cv->lin, &perm, name);
    src_done(f, &perm, 0, 0);
    return st;
}
