/*
 * campplus.c — CAM++ forward pass (campplus.h has the architecture), its tensor list and its
 * architecture keys in the model file.
 *
 * Activations are channel-major [C][T], as in the reference (PyTorch Conv1d/Conv2d layouts), so every
 * convolution is one matrix product W [cout][cin * k] . columns [cin * k][T] (im2col; a 1x1 conv reads
 * its input in place). The products go through cosy_sgemm on column ranges split over the pool; each
 * thread builds its columns in its own scratch (cosy_thread_scratch). The CAM layer's gate depends on
 * the frame only through its 100-frame segment, so linear1/linear2/sigmoid run once per segment, not
 * once per frame.
 */
#include "model/voice/campplus.h"

#include "core/arena.h"
#include "core/error.h"
#include "core/ops.h"
#include "model/model.h"
#include "model/net_gguf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cosy_campplus {
    cosy_campplus_hparams hp;
    campplus_weights w;
    net_owned owned;        /* widened or packed weights */
};

cosy_campplus_hparams cosy_campplus_default_hparams(void)
{
    cosy_campplus_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.feat_dim = 80;
    hp.fcm_channels = 32;
    hp.fcm_blocks[0] = hp.fcm_blocks[1] = 2;
    hp.tdnn_channels = 128;
    hp.tdnn_kernel = 5;
    hp.tdnn_stride = 2;
    hp.n_blocks = 3;
    const int layers[3] = {12, 24, 16}, dil[3] = {1, 2, 2};
    for (int b = 0; b < 3; b++) {
        hp.block_layers[b] = layers[b];
        hp.block_kernel[b] = 3;
        hp.block_dilation[b] = dil[b];
    }
    hp.growth_rate = 32;
    hp.bn_channels = 128;
    hp.cam_channels = 64;
    hp.seg_len = 100;
    hp.embedding_size = 192;
    return hp;
}

int cosy_campplus_block_channels(const cosy_campplus_hparams *hp, int b)
{
    int c = hp->tdnn_channels;
    for (int i = 0; i < b && i < hp->n_blocks; i++) c = (c + hp->block_layers[i] * hp->growth_rate) / 2;
    return c;
}

cosy_status cosy_campplus_hparams_validate(const cosy_campplus_hparams *hp)
{
    const int ok = hp->feat_dim > 0 && hp->feat_dim % 8 == 0 && hp->feat_dim <= 1024 && hp->fcm_channels > 0 && hp->fcm_channels <= 1024 &&
                   hp->tdnn_channels > 0 && hp->tdnn_channels <= 8192 && hp->tdnn_kernel > 0 && hp->tdnn_kernel % 2 == 1 &&
                   hp->tdnn_kernel <= 31 && hp->tdnn_stride >= 1 && hp->tdnn_stride <= 8 && hp->n_blocks >= 1 &&
                   hp->n_blocks <= CAMPPLUS_MAX_BLOCKS && hp->growth_rate > 0 && hp->growth_rate <= 4096 && hp->bn_channels > 0 &&
                   hp->bn_channels <= 8192 && hp->cam_channels > 0 && hp->cam_channels <= 8192 && hp->seg_len > 0 &&
                   hp->embedding_size > 0 && hp->embedding_size <= 8192;
    if (!ok) return cosy_error(COSY_ERR_FORMAT, "campplus: hyperparameters out of range");
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++)
        if (hp->fcm_blocks[l] < 1 || hp->fcm_blocks[l] > 64) return cosy_error(COSY_ERR_FORMAT, "campplus: FCM layer %d has %d blocks", l + 1, hp->fcm_blocks[l]);
    int c = hp->tdnn_channels;
    for (int b = 0; b < hp->n_blocks; b++) {
        if (hp->block_layers[b] < 1 || hp->block_layers[b] > 256 || hp->block_kernel[b] < 1 || hp->block_kernel[b] % 2 == 0 ||
            hp->block_kernel[b] > 31 || hp->block_dilation[b] < 1 || hp->block_dilation[b] > 64)
            return cosy_error(COSY_ERR_FORMAT, "campplus: block %d: layers %d, kernel %d, dilation %d out of range", b + 1, hp->block_layers[b],
                              hp->block_kernel[b], hp->block_dilation[b]);
        c += hp->block_layers[b] * hp->growth_rate;
        if (c % 2) return cosy_error(COSY_ERR_FORMAT, "campplus: block %d ends with %d channels, which the transit cannot halve", b + 1, c);
        c /= 2;
    }
    return COSY_OK;
}

/* ------------------------------------------------------------------ tensor list */

typedef struct {
    campplus_visit_fn fn;
    void *ctx;
    int stopped;
} visitor;

static void emit(visitor *v, const float **slot, campplus_kind kind, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                 const char *fmt, ...) __attribute__((format(printf, 9, 10)));
static void emit(visitor *v, const float **slot, campplus_kind kind, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                 const char *fmt, ...)
{
    if (v->stopped) return;
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const int64_t shape[4] = {d0, d1, d2, d3};
    if (v->fn(v->ctx, name, ndim, shape, kind, slot)) v->stopped = 1;
}

#define SLOT(expr) (w ? &(expr) : NULL)

static void emit_conv(visitor *v, campplus_conv *c, int ndim, int64_t cout, int64_t cin, int64_t k0, int64_t k1, int bias, const char *name)
{
    campplus_conv *w = c;
    emit(v, SLOT(w->w), CAMPPLUS_WEIGHT, ndim, cout, cin, k0, k1, "campplus.%s.weight", name);
    if (bias) emit(v, SLOT(w->b), CAMPPLUS_BIAS, 1, cout, 0, 0, 0, "campplus.%s.bias", name);
}

void cosy_campplus_visit(const cosy_campplus_hparams *hp, campplus_weights *w, campplus_visit_fn fn, void *ctx)
{
    visitor v = {fn, ctx, 0};
    const int m = hp->fcm_channels;
    char name[80];
    campplus_conv dummy;
#define CONV(field) (w ? &(field) : &dummy)
    emit_conv(&v, CONV(w->head_conv1), 4, m, 1, 3, 3, 1, "head.conv1");
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++)
        for (int b = 0; b < hp->fcm_blocks[l]; b++) {
            campplus_res_block *r = w ? &w->res[l][b] : NULL;
            snprintf(name, sizeof name, "head.layer%d.%d.conv1", l + 1, b);
            emit_conv(&v, r ? &r->conv1 : &dummy, 4, m, m, 3, 3, 1, name);
            snprintf(name, sizeof name, "head.layer%d.%d.conv2", l + 1, b);
            emit_conv(&v, r ? &r->conv2 : &dummy, 4, m, m, 3, 3, 1, name);
            if (b == 0) {
                snprintf(name, sizeof name, "head.layer%d.%d.shortcut", l + 1, b);
                emit_conv(&v, r ? &r->shortcut : &dummy, 4, m, m, 1, 1, 1, name);
            }
        }
    emit_conv(&v, CONV(w->head_conv2), 4, m, m, 3, 3, 1, "head.conv2");
    emit_conv(&v, CONV(w->tdnn), 3, hp->tdnn_channels, (int64_t)m * (hp->feat_dim / 8), hp->tdnn_kernel, 0, 1, "tdnn");
    for (int b = 0; b < hp->n_blocks; b++) {
        int c = cosy_campplus_block_channels(hp, b);
        for (int j = 0; j < hp->block_layers[b]; j++, c += hp->growth_rate) {
            campplus_dense_layer *d = w ? &w->layers[b][j] : NULL;
            emit(&v, d ? &d->bn1.scale : NULL, CAMPPLUS_SCALE, 1, c, 0, 0, 0, "campplus.block%d.tdnnd%d.bn1.scale", b + 1, j + 1);
            emit(&v, d ? &d->bn1.shift : NULL, CAMPPLUS_SHIFT, 1, c, 0, 0, 0, "campplus.block%d.tdnnd%d.bn1.shift", b + 1, j + 1);
            snprintf(name, sizeof name, "block%d.tdnnd%d.linear1", b + 1, j + 1);
            emit_conv(&v, d ? &d->linear1 : &dummy, 3, hp->bn_channels, c, 1, 0, 1, name);
            snprintf(name, sizeof name, "block%d.tdnnd%d.cam_local", b + 1, j + 1);
            emit_conv(&v, d ? &d->local : &dummy, 3, hp->growth_rate, hp->bn_channels, hp->block_kernel[b], 0, 0, name);
            snprintf(name, sizeof name, "block%d.tdnnd%d.cam_linear1", b + 1, j + 1);
            emit_conv(&v, d ? &d->cam1 : &dummy, 3, hp->cam_channels, hp->bn_channels, 1, 0, 1, name);
            snprintf(name, sizeof name, "block%d.tdnnd%d.cam_linear2", b + 1, j + 1);
            emit_conv(&v, d ? &d->cam2 : &dummy, 3, hp->growth_rate, hp->cam_channels, 1, 0, 1, name);
        }
        emit(&v, w ? &w->transit_bn[b].scale : NULL, CAMPPLUS_SCALE, 1, c, 0, 0, 0, "campplus.transit%d.bn.scale", b + 1);
        emit(&v, w ? &w->transit_bn[b].shift : NULL, CAMPPLUS_SHIFT, 1, c, 0, 0, 0, "campplus.transit%d.bn.shift", b + 1);
        snprintf(name, sizeof name, "transit%d", b + 1);
        emit_conv(&v, CONV(w->transit[b]), 3, c / 2, c, 1, 0, 1, name);
    }
    const int c_out = cosy_campplus_block_channels(hp, hp->n_blocks);
    emit_conv(&v, CONV(w->dense), 3, hp->embedding_size, 2 * c_out, 1, 0, 1, "dense");
#undef CONV
}

static int count_params(void *ctx, const char *name, int ndim, const int64_t *shape, campplus_kind kind, const float **slot)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    *(int64_t *)ctx += n;
    return 0;
}

int64_t cosy_campplus_n_params(const cosy_campplus_hparams *hp)
{
    int64_t n = 0;
    cosy_campplus_visit(hp, NULL, count_params, &n);
    return n;
}

cosy_status cosy_campplus_alloc_layers(const cosy_campplus_hparams *hp, campplus_weights *w)
{
    memset(w, 0, sizeof *w);
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++)
        if (!(w->res[l] = calloc((size_t)hp->fcm_blocks[l], sizeof *w->res[l]))) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");
    for (int b = 0; b < hp->n_blocks; b++)
        if (!(w->layers[b] = calloc((size_t)hp->block_layers[b], sizeof *w->layers[b]))) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");
    return COSY_OK;
}

void cosy_campplus_free_layers(campplus_weights *w)
{
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++) free(w->res[l]);
    for (int b = 0; b < CAMPPLUS_MAX_BLOCKS; b++) free(w->layers[b]);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------------ model file keys */

void cosy_campplus_hparams_write(const cosy_campplus_hparams *hp, gguf_writer *w)
{
    gguf_writer_set_i32(w, "campplus.feat_dim", hp->feat_dim);
    gguf_writer_set_i32(w, "campplus.fcm_channels", hp->fcm_channels);
    int32_t a[CAMPPLUS_MAX_BLOCKS];
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++) a[l] = hp->fcm_blocks[l];
    gguf_writer_set_arr_i32(w, "campplus.fcm_blocks", a, CAMPPLUS_FCM_LAYERS);
    gguf_writer_set_i32(w, "campplus.tdnn_channels", hp->tdnn_channels);
    gguf_writer_set_i32(w, "campplus.tdnn_kernel", hp->tdnn_kernel);
    gguf_writer_set_i32(w, "campplus.tdnn_stride", hp->tdnn_stride);
    for (int b = 0; b < hp->n_blocks; b++) a[b] = hp->block_layers[b];
    gguf_writer_set_arr_i32(w, "campplus.block_layers", a, (uint64_t)hp->n_blocks);
    for (int b = 0; b < hp->n_blocks; b++) a[b] = hp->block_kernel[b];
    gguf_writer_set_arr_i32(w, "campplus.block_kernel", a, (uint64_t)hp->n_blocks);
    for (int b = 0; b < hp->n_blocks; b++) a[b] = hp->block_dilation[b];
    gguf_writer_set_arr_i32(w, "campplus.block_dilation", a, (uint64_t)hp->n_blocks);
    gguf_writer_set_i32(w, "campplus.growth_rate", hp->growth_rate);
    gguf_writer_set_i32(w, "campplus.bn_channels", hp->bn_channels);
    gguf_writer_set_i32(w, "campplus.cam_channels", hp->cam_channels);
    gguf_writer_set_i32(w, "campplus.seg_len", hp->seg_len);
    gguf_writer_set_i32(w, "campplus.embedding_size", hp->embedding_size);
}

static cosy_status get_ints(const gguf_file *g, const char *key, int *out, int max, int *n)
{
    int64_t v[CAMPPLUS_MAX_BLOCKS];
    COSY_TRY(gguf_get_int_array(g, key, v, max, n));
    for (int i = 0; i < *n; i++) out[i] = v[i] < -1000000 || v[i] > 1000000 ? -1 : (int)v[i];
    return COSY_OK;
}

cosy_status cosy_campplus_hparams_read(const gguf_file *g, cosy_campplus_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    if (!gguf_find_kv(g, "campplus.feat_dim"))
        return cosy_error(COSY_ERR_MISSING, "%s: the model file has no CAM++ (convert a model directory that has campplus.onnx)", g->file.path);
    int n, n2, n3;
    COSY_TRY(net_gguf_get_int(g, "campplus.feat_dim", &hp->feat_dim));
    COSY_TRY(net_gguf_get_int(g, "campplus.fcm_channels", &hp->fcm_channels));
    COSY_TRY(get_ints(g, "campplus.fcm_blocks", hp->fcm_blocks, CAMPPLUS_FCM_LAYERS, &n));
    if (n != CAMPPLUS_FCM_LAYERS) return cosy_error(COSY_ERR_FORMAT, "%s: campplus.fcm_blocks has %d entries, 2 expected", g->file.path, n);
    COSY_TRY(net_gguf_get_int(g, "campplus.tdnn_channels", &hp->tdnn_channels));
    COSY_TRY(net_gguf_get_int(g, "campplus.tdnn_kernel", &hp->tdnn_kernel));
    COSY_TRY(net_gguf_get_int(g, "campplus.tdnn_stride", &hp->tdnn_stride));
    COSY_TRY(get_ints(g, "campplus.block_layers", hp->block_layers, CAMPPLUS_MAX_BLOCKS, &n));
    COSY_TRY(get_ints(g, "campplus.block_kernel", hp->block_kernel, CAMPPLUS_MAX_BLOCKS, &n2));
    COSY_TRY(get_ints(g, "campplus.block_dilation", hp->block_dilation, CAMPPLUS_MAX_BLOCKS, &n3));
    if (n != n2 || n != n3) return cosy_error(COSY_ERR_FORMAT, "%s: campplus.block_* lists differ in length", g->file.path);
    hp->n_blocks = n;
    COSY_TRY(net_gguf_get_int(g, "campplus.growth_rate", &hp->growth_rate));
    COSY_TRY(net_gguf_get_int(g, "campplus.bn_channels", &hp->bn_channels));
    COSY_TRY(net_gguf_get_int(g, "campplus.cam_channels", &hp->cam_channels));
    COSY_TRY(net_gguf_get_int(g, "campplus.seg_len", &hp->seg_len));
    COSY_TRY(net_gguf_get_int(g, "campplus.embedding_size", &hp->embedding_size));
    cosy_status st = cosy_campplus_hparams_validate(hp);
    return st == COSY_OK ? st : cosy_error_prefix(st, "%s", g->file.path);
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    gguf_writer *w;
    uint64_t seed; /* 0: copy from the slots */
    cosy_status status;
} write_ctx;

static int write_tensor(void *vctx, const char *name, int ndim, const int64_t *shape, campplus_kind kind, const float **slot)
{
    write_ctx *c = vctx;
    /* random weights uniform in +-1/sqrt(fan_in) (torch's default init), BatchNorm scales near 1, small
     * shifts and biases: activations keep a sane range through the 52 layers */
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    const int64_t fan_in = ndim > 1 ? numel / shape[0] : 1;
    const float bound = kind == CAMPPLUS_WEIGHT ? 1.0f / sqrtf((float)fan_in) : 0.1f;
    c->status = net_gguf_add_f32(c->w, name, ndim, shape, c->seed ? NULL : *slot, c->seed, kind == CAMPPLUS_SCALE ? 1.0f : 0.0f, bound);
    return c->status != COSY_OK;
}

cosy_status cosy_campplus_write(const cosy_campplus *net, gguf_writer *w)
{
    cosy_campplus_hparams_write(&net->hp, w);
    write_ctx c = {w, 0, COSY_OK};
    cosy_campplus_visit(&net->hp, (campplus_weights *)&net->w, write_tensor, &c);
    return c.status;
}

cosy_status cosy_campplus_write_random(const cosy_campplus_hparams *hp, uint64_t seed, gguf_writer *w)
{
    COSY_TRY(cosy_campplus_hparams_validate(hp));
    cosy_campplus_hparams_write(hp, w);
    write_ctx c = {w, seed | 1, COSY_OK};
    cosy_campplus_visit(hp, NULL, write_tensor, &c);
    return c.status;
}

/* ------------------------------------------------------------------ the network object */

cosy_status cosy_campplus_create(const cosy_campplus_hparams *hp, cosy_campplus **out)
{
    *out = NULL;
    COSY_TRY(cosy_campplus_hparams_validate(hp));
    cosy_campplus *m = calloc(1, sizeof *m);
    if (!m) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");
    m->hp = *hp;
    cosy_status st = cosy_campplus_alloc_layers(hp, &m->w);
    if (st != COSY_OK) {
        cosy_campplus_free(m);
        return st;
    }
    *out = m;
    return COSY_OK;
}

cosy_campplus_hparams *cosy_campplus_hp(cosy_campplus *m) { return &m->hp; }
campplus_weights *cosy_campplus_weights(cosy_campplus *m) { return &m->w; }

float *cosy_campplus_own(cosy_campplus *m, size_t floats) { return net_owned_floats(&m->owned, floats); }

void cosy_campplus_free(cosy_campplus *m)
{
    if (!m) return;
    net_owned_free(&m->owned);
    cosy_campplus_free_layers(&m->w);
    free(m);
}

typedef struct {
    const gguf_file *g;
    cosy_campplus *m;
    cosy_status status;
} gguf_ctx;

static int bind_gguf(void *vctx, const char *name, int ndim, const int64_t *shape, campplus_kind kind, const float **slot)
{
    (void)kind;
    gguf_ctx *c = vctx;
    c->status = net_gguf_bind_f32(c->g, name, ndim, shape, "campplus.*", &c->m->owned, slot);
    return c->status != COSY_OK;
}

cosy_status cosy_campplus_from_gguf(const gguf_file *g, cosy_campplus **out)
{
    *out = NULL;
    cosy_campplus_hparams hp;
    COSY_TRY(cosy_campplus_hparams_read(g, &hp));
    cosy_campplus *m;
    COSY_TRY(cosy_campplus_create(&hp, &m));
    gguf_ctx c = {g, m, COSY_OK};
    cosy_campplus_visit(&hp, &m->w, bind_gguf, &c);
    if (c.status != COSY_OK) {
        cosy_campplus_free(m);
        return c.status;
    }
    *out = m;
    return COSY_OK;
}

static cosy_status campplus_module_create(cosy_model *m, void **out)
{
    cosy_campplus *net;
    COSY_TRY(cosy_campplus_from_gguf(&m->file, &net));
    *out = net;
    return COSY_OK;
}

static void campplus_module_destroy(void *state) { cosy_campplus_free(state); }

static const cosy_module_def campplus_module = {"campplus", campplus_module_create, campplus_module_destroy};

cosy_status cosy_campplus_get(cosy_model *model, const cosy_campplus **out)
{
    void *state;
    COSY_TRY(cosy_model_module(model, &campplus_module, &state));
    *out = state;
    return COSY_OK;
}

/* ------------------------------------------------------------------ kernels */

/* A 1-D convolution job: y[cout][Tout] (row stride ldy) = W . columns of x[cin][Tin] (row stride ldx)
 * + bias, then ReLU if relu. Split over output columns. */
typedef struct {
    const float *w, *b, *x;
    float *y;
    int cout, cin, k, stride, dilation, pad, Tin, Tout, ldx, ldy, relu, parts;
    int *failed;
} conv1d_job;

static void conv1d_task(void *vctx, int part)
{
    const conv1d_job *j = vctx;
    int t0, t1;
    cosy_split_range(j->Tout, j->parts, part, &t0, &t1);
    const int n = t1 - t0;
    if (n <= 0) return;
    const int K = j->cin * j->k;
    if (j->k == 1 && j->stride == 1 && j->pad == 0) {
        cosy_sgemm(0, 0, j->cout, n, K, 1.0f, j->w, K, j->x + t0, j->ldx, 0.0f, j->y + t0, j->ldy);
    } else {
        float *cols = cosy_thread_scratch(sizeof(float) * (size_t)K * n);
        if (!cols) {
            __atomic_store_n(j->failed, 1, __ATOMIC_RELAXED);
            return;
        }
        for (int ci = 0; ci < j->cin; ci++)
            for (int tap = 0; tap < j->k; tap++) {
                float *row = cols + ((size_t)ci * j->k + tap) * n;
                const float *src = j->x + (size_t)ci * j->ldx;
                for (int t = 0; t < n; t++) {
                    int s = (t0 + t) * j->stride + tap * j->dilation - j->pad;
                    row[t] = s >= 0 && s < j->Tin ? src[s] : 0.0f;
                }
            }
        cosy_sgemm(0, 0, j->cout, n, K, 1.0f, j->w, K, cols, n, 0.0f, j->y + t0, j->ldy);
    }
    for (int co = 0; co < j->cout; co++) {
        float *row = j->y + (size_t)co * j->ldy + t0;
        const float bias = j->b ? j->b[co] : 0.0f;
        if (j->relu)
            for (int t = 0; t < n; t++) row[t] = fmaxf(row[t] + bias, 0.0f);
        else if (bias != 0.0f)
            for (int t = 0; t < n; t++) row[t] += bias;
    }
}

static int n_parts(cosy_pool *pool, int columns)
{
    int p = pool ? cosy_pool_size(pool) : 1;
    int by_size = columns / 16 > 0 ? columns / 16 : 1;
    return p < by_size ? p : by_size;
}

static void run_parts(cosy_pool *pool, int parts, cosy_task_fn fn, void *ctx)
{
    if (pool && parts > 1) cosy_pool_run(pool, parts, fn, ctx);
    else
        for (int i = 0; i < parts; i++) fn(ctx, i);
}

static void conv1d(cosy_pool *pool, const campplus_conv *c, int cout, int cin, int k, int stride, int dilation, const float *x, int Tin,
                   int ldx, float *y, int Tout, int ldy, int relu, int *failed)
{
    conv1d_job j = {c->w, c->b, x, y, cout, cin, k, stride, dilation, dilation * (k - 1) / 2, Tin, Tout, ldx, ldy, relu, 0, failed};
    j.parts = n_parts(pool, Tout);
    run_parts(pool, j.parts, conv1d_task, &j);
}

/* A 2-D convolution over [cin][F][T] (kernel kf x kt, padding kf/2, kt/2, stride sf in frequency, 1 in
 * time) into [cout][Fo][T]; optionally adds res [cout][Fo][T] and applies ReLU. One task per output
 * frequency row. */
typedef struct {
    const float *w, *b, *x, *res;
    float *y;
    int cout, cin, kf, kt, sf, F, Fo, T, relu;
    int *failed;
} conv2d_job;

static void conv2d_task(void *vctx, int fo)
{
    const conv2d_job *j = vctx;
    const int T = j->T, K = j->cin * j->kf * j->kt, pf = j->kf / 2, pt = j->kt / 2;
    float *cols = cosy_thread_scratch(sizeof(float) * (size_t)K * T);
    if (!cols) {
        __atomic_store_n(j->failed, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int ci = 0; ci < j->cin; ci++)
        for (int a = 0; a < j->kf; a++) {
            const int f = fo * j->sf + a - pf;
            for (int bt = 0; bt < j->kt; bt++) {
                float *row = cols + (((size_t)ci * j->kf + a) * j->kt + bt) * T;
                if (f < 0 || f >= j->F) {
                    memset(row, 0, sizeof(float) * (size_t)T);
                    continue;
                }
                const float *src = j->x + ((size_t)ci * j->F + f) * T;
                const int shift = bt - pt;
                for (int t = 0; t < T; t++) {
                    int s = t + shift;
                    row[t] = s >= 0 && s < T ? src[s] : 0.0f;
                }
            }
        }
    const size_t ld = (size_t)j->Fo * T;
    float *y = j->y + (size_t)fo * T;
    cosy_sgemm(0, 0, j->cout, T, K, 1.0f, j->w, K, cols, T, 0.0f, y, (int)ld);
    for (int co = 0; co < j->cout; co++) {
        float *row = y + co * ld;
        const float *res = j->res ? j->res + co * ld + (size_t)fo * T : NULL;
        const float bias = j->b[co];
        for (int t = 0; t < T; t++) {
            float v = row[t] + bias + (res ? res[t] : 0.0f);
            row[t] = j->relu ? fmaxf(v, 0.0f) : v;
        }
    }
}

static void conv2d(cosy_pool *pool, const campplus_conv *c, int cout, int cin, int kf, int kt, int sf, const float *x, int F, int T,
                   float *y, const float *res, int relu, int *failed)
{
    conv2d_job j = {c->w, c->b, x, res, y, cout, cin, kf, kt, sf, F, (F - 1) / sf + 1, T, relu, failed};
    run_parts(pool, j.Fo, conv2d_task, &j);
}

/* y = relu(x * scale + shift) per channel row */
static void bn_relu(const campplus_bn *bn, const float *x, int C, int T, int ldx, float *y)
{
    for (int c = 0; c < C; c++) {
        const float s = bn->scale[c], h = bn->shift[c];
        const float *xr = x + (size_t)c * ldx;
        float *yr = y + (size_t)c * T;
        for (int t = 0; t < T; t++) yr[t] = fmaxf(xr[t] * s + h, 0.0f);
    }
}

/* The CAM gate, in place on y [growth][T] (row stride ldy): context from x [bn][T] (the CAM layer's
 * input) = mean over all frames + mean over the frame's segment (ceil mode, partial last segment over
 * its own length, as avg_pool1d / ONNX AveragePool count it), then sigmoid(cam2(relu(cam1(.)))). */
static void cam_gate(const cosy_campplus_hparams *hp, const campplus_dense_layer *d, const float *x, int T, float *y, int ldy, float *work)
{
    const int C = hp->bn_channels, H = hp->cam_channels, G = hp->growth_rate, L = hp->seg_len;
    const int n_seg = (T + L - 1) / L;
    float *ctx = work, *hid = ctx + (size_t)C * n_seg, *gate = hid + (size_t)H * n_seg;
    for (int c = 0; c < C; c++) {
        const float *row = x + (size_t)c * T;
        double total = 0;
        for (int t = 0; t < T; t++) total += row[t];
        const float mean = (float)(total / T);
        for (int s = 0; s < n_seg; s++) {
            int t0 = s * L, t1 = t0 + L < T ? t0 + L : T;
            double seg = 0;
            for (int t = t0; t < t1; t++) seg += row[t];
            ctx[(size_t)c * n_seg + s] = mean + (float)(seg / (t1 - t0));
        }
    }
    cosy_sgemm(0, 0, H, n_seg, C, 1.0f, d->cam1.w, C, ctx, n_seg, 0.0f, hid, n_seg);
    for (int h = 0; h < H; h++)
        for (int s = 0; s < n_seg; s++) hid[(size_t)h * n_seg + s] = fmaxf(hid[(size_t)h * n_seg + s] + d->cam1.b[h], 0.0f);
    cosy_sgemm(0, 0, G, n_seg, H, 1.0f, d->cam2.w, H, hid, n_seg, 0.0f, gate, n_seg);
    for (int g = 0; g < G; g++) {
        float *row = y + (size_t)g * ldy;
        for (int s = 0; s < n_seg; s++) {
            const float m = 1.0f / (1.0f + expf(-(gate[(size_t)g * n_seg + s] + d->cam2.b[g])));
            int t0 = s * L, t1 = t0 + L < T ? t0 + L : T;
            for (int t = t0; t < t1; t++) row[t] *= m;
        }
    }
}

/* ------------------------------------------------------------------ forward */

cosy_status cosy_campplus_forward(const cosy_campplus *net, cosy_pool *pool, const float *feats, int frames, float *embedding,
                                  campplus_tap_fn tap, void *tap_ctx)
{
    const cosy_campplus_hparams *hp = &net->hp;
    const campplus_weights *w = &net->w;
    const int F = hp->feat_dim, m = hp->fcm_channels, T = frames;
    const int T2 = (T - 1) / hp->tdnn_stride + 1; /* frames after the TDNN (its padding keeps (T - 1) / s + 1) */
    if (T < 1 || T > 1000000) return cosy_error(COSY_ERR_INVALID_ARG, "campplus: %d frames", T);
    if (T2 < 2)
        return cosy_error(COSY_ERR_INVALID_ARG, "campplus: %d feature frames are too few (the unbiased std over time needs 2 frames after the "
                          "stride-%d TDNN, i.e. at least %d input frames)", T, hp->tdnn_stride, hp->tdnn_stride + 1);

    /* sizes of the scratch: head [m][F][T] x3, blocks [C_max][T2], per-layer temporaries */
    int c_max = hp->tdnn_channels;
    for (int b = 0; b < hp->n_blocks; b++) {
        int c_end = cosy_campplus_block_channels(hp, b) + hp->block_layers[b] * hp->growth_rate;
        if (c_end > c_max) c_max = c_end;
    }
    const int n_seg = (T2 + hp->seg_len - 1) / hp->seg_len;
    const size_t head = (size_t)m * F * T, blk = (size_t)c_max * T2;
    const size_t cam_work = (size_t)(hp->bn_channels + hp->cam_channels + hp->growth_rate) * n_seg;
    /* the largest im2col a task builds: a 2-D conv row [m * 9][T], or a 1-D conv's [cin * k][Tout] */
    const int ktdnn = m * (F / 8) * hp->tdnn_kernel;
    size_t cols = (size_t)m * 9 * T;
    if ((size_t)ktdnn * T2 > cols) cols = (size_t)ktdnn * T2;
    if ((size_t)hp->bn_channels * 31 * T2 > cols) cols = (size_t)hp->bn_channels * 31 * T2;
    float *buf = malloc(sizeof(float) * (3 * head + 3 * blk + (size_t)hp->bn_channels * T2 + cam_work + 2 * (size_t)c_max + 64));
    if (!buf || !cosy_thread_scratch(sizeof(float) * cols)) {
        free(buf);
        return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory for %d frames", T);
    }
    int failed = 0;
    float *a = buf, *b = a + head, *c = b + head;
    float *x = c + head, *h = x + blk, *y = h + blk, *bnout = y + blk, *work = bnout + (size_t)hp->bn_channels * T2;
    float *stats = work + cam_work;

    /* FCM head: input [T][F] -> [1][F][T] */
    for (int t = 0; t < T; t++)
        for (int f = 0; f < F; f++) a[(size_t)f * T + t] = feats[(size_t)t * F + f];
    int Fc = F;
    conv2d(pool, &w->head_conv1, m, 1, 3, 3, 1, a, Fc, T, b, NULL, 1, &failed); /* b = relu(bn1(conv1(x))) */
    /* three buffers: cur (the block's input), p (conv1's output), q (the shortcut, or the block's output) */
    float *cur = b, *p = a, *q = c;
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++)
        for (int r = 0; r < hp->fcm_blocks[l]; r++) {
            const campplus_res_block *rb = &w->res[l][r];
            const int s = r == 0 ? 2 : 1, Fo = (Fc - 1) / s + 1;
            conv2d(pool, &rb->conv1, m, m, 3, 3, s, cur, Fc, T, p, NULL, 1, &failed);
            if (rb->shortcut.w) { /* out = relu(bn2(conv2(p)) + shortcut(cur)), written over cur */
                conv2d(pool, &rb->shortcut, m, m, 1, 1, s, cur, Fc, T, q, NULL, 0, &failed);
                conv2d(pool, &rb->conv2, m, m, 3, 3, 1, p, Fo, T, cur, q, 1, &failed);
            } else { /* out = relu(bn2(conv2(p)) + cur), into q */
                conv2d(pool, &rb->conv2, m, m, 3, 3, 1, p, Fo, T, q, cur, 1, &failed);
                float *t = cur;
                cur = q;
                q = t;
            }
            Fc = Fo;
        }
    float *tmp = p;
    conv2d(pool, &w->head_conv2, m, m, 3, 3, 2, cur, Fc, T, tmp, NULL, 1, &failed);
    Fc = (Fc - 1) / 2 + 1;
    const int c_head = m * Fc; /* [m][F/8][T] read as [m * F/8][T] */
    if (tap) tap(tap_ctx, 0, tmp, c_head, T);

    /* TDNN: conv k5 stride 2 (+ folded BN) + ReLU into the first block's buffer */
    int C = hp->tdnn_channels;
    conv1d(pool, &w->tdnn, C, c_head, hp->tdnn_kernel, hp->tdnn_stride, 1, tmp, T, T, x, T2, T2, 1, &failed);
    if (tap) tap(tap_ctx, 1, x, C, T2);

    for (int bi = 0; bi < hp->n_blocks; bi++) {
        const int k = hp->block_kernel[bi], dil = hp->block_dilation[bi];
        for (int j = 0; j < hp->block_layers[bi]; j++) {
            const campplus_dense_layer *d = &w->layers[bi][j];
            bn_relu(&d->bn1, x, C, T2, T2, h);
            conv1d(pool, &d->linear1, hp->bn_channels, C, 1, 1, 1, h, T2, T2, bnout, T2, T2, 1, &failed);
            float *out = x + (size_t)C * T2; /* the concatenation: new rows after the input's */
            conv1d(pool, &d->local, hp->growth_rate, hp->bn_channels, k, 1, dil, bnout, T2, T2, out, T2, T2, 0, &failed);
            cam_gate(hp, d, bnout, T2, out, T2, work);
            C += hp->growth_rate;
        }
        if (tap) tap(tap_ctx, 2 + 2 * bi, x, C, T2);
        bn_relu(&w->transit_bn[bi], x, C, T2, T2, h);
        conv1d(pool, &w->transit[bi], C / 2, C, 1, 1, 1, h, T2, T2, y, T2, T2, 0, &failed);
        C /= 2;
        memcpy(x, y, sizeof(float) * (size_t)C * T2);
        if (tap) tap(tap_ctx, 3 + 2 * bi, x, C, T2);
    }

    /* out_nonlinear (its BN is in the last transit): ReLU; stats pooling: mean and unbiased std */
    for (size_t i = 0; i < (size_t)C * T2; i++) x[i] = fmaxf(x[i], 0.0f);
    if (tap) tap(tap_ctx, 2 + 2 * hp->n_blocks, x, C, T2);
    for (int ch = 0; ch < C; ch++) {
        const float *row = x + (size_t)ch * T2;
        double s = 0, ss = 0;
        for (int t = 0; t < T2; t++) s += row[t];
        const double mean = s / T2;
        for (int t = 0; t < T2; t++) ss += (row[t] - mean) * (row[t] - mean);
        stats[ch] = (float)mean;
        stats[C + ch] = (float)sqrt(ss / (T2 - 1));
    }
    if (tap) tap(tap_ctx, 3 + 2 * hp->n_blocks, stats, 2 * C, 1);
    /* dense 1x1 conv with the affine-free BatchNorm folded in */
    for (int e = 0; e < hp->embedding_size; e++) {
        const float *row = w->dense.w + (size_t)e * 2 * C;
        double acc = w->dense.b[e];
        for (int i = 0; i < 2 * C; i++) acc += (double)row[i] * stats[i];
        embedding[e] = (float)acc;
    }
    free(buf);
    if (failed) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory for the convolution columns of %d frames", T);
    return COSY_OK;
}
