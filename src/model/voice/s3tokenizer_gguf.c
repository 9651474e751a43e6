/*
 * s3tokenizer_gguf.c — the speech tokenizer in the model file: `s3tokenizer.*` architecture keys and
 * tensors (docs/model-format.md), written by `cosy convert` from speech_tokenizer_v2.onnx (or seeded
 * random at full size for `--random cosyvoice2-0.5b`), read back borrowing the mapped f32 weights, and
 * the loaded model's tokenizer built on first use (cosy_s3tokenizer_get). Mirrors campplus.c.
 */
#include "model/voice/s3tokenizer.h"

#include "core/error.h"
#include "core/ops.h"
#include "model/model.h"
#include "model/net_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S3W_WEIGHT, S3W_BIAS, S3W_LN_SCALE, S3W_LN_SHIFT } s3w_kind;
typedef int (*s3w_visit_fn)(void *ctx, const char *name, int ndim, const int64_t *shape, s3w_kind kind, int64_t fan_in,
                            const float **slot);

/* Every tensor in a fixed order; w may be NULL (only names and shapes are wanted). */
static void s3tok_visit(const cosy_s3tokenizer_hparams *hp, s3tok_weights *w, s3w_visit_fn fn, void *ctx)
{
    static const float *dummy;
    const int64_t C = hp->width, M = hp->mlp_width, K = hp->fsmn_kernel;
    char name[96];
#define S(field) (w ? &(field) : &dummy)
#define V(nm, kind, fan, ...)                                                        \
    do {                                                                             \
        const int64_t shp_[] = {__VA_ARGS__};                                        \
        if (fn(ctx, nm, (int)(sizeof shp_ / sizeof shp_[0]), shp_, kind, fan, slot_)) \
            return;                                                                  \
    } while (0)
    const float **slot_;
    slot_ = S(w->conv1_w); V("s3tokenizer.conv1.weight", S3W_WEIGHT, hp->n_mels * 3, C, hp->n_mels, 3);
    slot_ = S(w->conv1_b); V("s3tokenizer.conv1.bias", S3W_BIAS, 0, C);
    slot_ = S(w->conv2_w); V("s3tokenizer.conv2.weight", S3W_WEIGHT, C * 3, C, C, 3);
    slot_ = S(w->conv2_b); V("s3tokenizer.conv2.bias", S3W_BIAS, 0, C);
    for (int b = 0; b < hp->n_blocks; b++) {
        s3tok_block *bl = w ? &w->blocks[b] : NULL;
#define B(field, suffix, kind, fan, ...)                                  \
    do {                                                                  \
        snprintf(name, sizeof name, "s3tokenizer.blocks.%d.%s", b, suffix); \
        slot_ = bl ? &bl->field : &dummy;                                 \
        V(name, kind, fan, __VA_ARGS__);                                  \
    } while (0)
        B(attn_ln_w, "attn_ln.weight", S3W_LN_SCALE, 0, C);
        B(attn_ln_b, "attn_ln.bias", S3W_LN_SHIFT, 0, C);
        B(q_w, "attn.query.weight", S3W_WEIGHT, C, C, C);
        B(q_b, "attn.query.bias", S3W_BIAS, 0, C);
        B(k_w, "attn.key.weight", S3W_WEIGHT, C, C, C);
        B(v_w, "attn.value.weight", S3W_WEIGHT, C, C, C);
        B(v_b, "attn.value.bias", S3W_BIAS, 0, C);
        B(out_w, "attn.out.weight", S3W_WEIGHT, C, C, C);
        B(out_b, "attn.out.bias", S3W_BIAS, 0, C);
        B(fsmn_w, "attn.fsmn.weight", S3W_WEIGHT, K, C, K);
        B(mlp_ln_w, "mlp_ln.weight", S3W_LN_SCALE, 0, C);
        B(mlp_ln_b, "mlp_ln.bias", S3W_LN_SHIFT, 0, C);
        B(mlp1_w, "mlp.0.weight", S3W_WEIGHT, C, C, M);
        B(mlp1_b, "mlp.0.bias", S3W_BIAS, 0, M);
        B(mlp2_w, "mlp.2.weight", S3W_WEIGHT, M, M, C);
        B(mlp2_b, "mlp.2.bias", S3W_BIAS, 0, C);
#undef B
    }
    slot_ = S(w->fsq_w); V("s3tokenizer.fsq.weight", S3W_WEIGHT, C, C, hp->fsq_dims);
    slot_ = S(w->fsq_b); V("s3tokenizer.fsq.bias", S3W_BIAS, 0, hp->fsq_dims);
#undef V
#undef S
}

/* ------------------------------------------------------------------ architecture keys */

static void hparams_write(const cosy_s3tokenizer_hparams *hp, gguf_writer *w)
{
    gguf_writer_set_i32(w, "s3tokenizer.n_mels", hp->n_mels);
    gguf_writer_set_i32(w, "s3tokenizer.width", hp->width);
    gguf_writer_set_i32(w, "s3tokenizer.n_heads", hp->n_heads);
    gguf_writer_set_i32(w, "s3tokenizer.head_dim", hp->head_dim);
    gguf_writer_set_i32(w, "s3tokenizer.n_blocks", hp->n_blocks);
    gguf_writer_set_i32(w, "s3tokenizer.mlp_width", hp->mlp_width);
    gguf_writer_set_i32(w, "s3tokenizer.fsmn_kernel", hp->fsmn_kernel);
    gguf_writer_set_i32(w, "s3tokenizer.fsq_dims", hp->fsq_dims);
    gguf_writer_set_i32(w, "s3tokenizer.fsq_levels", hp->fsq_levels);
    gguf_writer_set_f32(w, "s3tokenizer.attn_ln_eps", hp->attn_ln_eps);
    gguf_writer_set_f32(w, "s3tokenizer.mlp_ln_eps", hp->mlp_ln_eps);
    gguf_writer_set_f32(w, "s3tokenizer.rope_theta", hp->rope_theta);
}

cosy_status cosy_s3tokenizer_hparams_read(const gguf_file *g, cosy_s3tokenizer_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    if (!gguf_find_kv(g, "s3tokenizer.width"))
        return cosy_error(COSY_ERR_MISSING,
                          "%s: the model file has no speech tokenizer (convert a model directory that has speech_tokenizer_v2.onnx)",
                          g->file.path);
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.n_mels", &hp->n_mels));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.width", &hp->width));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.n_heads", &hp->n_heads));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.head_dim", &hp->head_dim));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.n_blocks", &hp->n_blocks));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.mlp_width", &hp->mlp_width));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.fsmn_kernel", &hp->fsmn_kernel));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.fsq_dims", &hp->fsq_dims));
    COSY_TRY(net_gguf_get_int(g, "s3tokenizer.fsq_levels", &hp->fsq_levels));
    COSY_TRY(net_gguf_get_float(g, "s3tokenizer.attn_ln_eps", &hp->attn_ln_eps));
    COSY_TRY(net_gguf_get_float(g, "s3tokenizer.mlp_ln_eps", &hp->mlp_ln_eps));
    COSY_TRY(net_gguf_get_float(g, "s3tokenizer.rope_theta", &hp->rope_theta));
    cosy_status st = cosy_s3tokenizer_hparams_validate(hp);
    return st == COSY_OK ? st : cosy_error_prefix(st, "%s", g->file.path);
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    gguf_writer *w;
    uint64_t seed; /* 0: copy from the slots */
    cosy_status status;
} write_ctx;

static int write_tensor(void *vctx, const char *name, int ndim, const int64_t *shape, s3w_kind kind, int64_t fan_in, const float **slot)
{
    write_ctx *c = vctx;
    /* random weights uniform in +-1/sqrt(fan_in) (torch's default), LayerNorm scales near 1, small shifts/biases */
    const float bound = kind == S3W_WEIGHT ? 1.0f / sqrtf((float)(fan_in > 0 ? fan_in : 1)) : 0.1f;
    c->status = net_gguf_add_f32(c->w, name, ndim, shape, c->seed ? NULL : *slot, c->seed, kind == S3W_LN_SCALE ? 1.0f : 0.0f, bound);
    return c->status != COSY_OK;
}

cosy_status cosy_s3tokenizer_write(const cosy_s3tokenizer *net, gguf_writer *w)
{
    const cosy_s3tokenizer_hparams *hp = cosy_s3tokenizer_hp(net);
    hparams_write(hp, w);
    write_ctx c = {w, 0, COSY_OK};
    s3tok_visit(hp, cosy_s3tokenizer_weights((cosy_s3tokenizer *)net), write_tensor, &c);
    return c.status;
}

cosy_status cosy_s3tokenizer_write_random(const cosy_s3tokenizer_hparams *hp, uint64_t seed, gguf_writer *w)
{
    COSY_TRY(cosy_s3tokenizer_hparams_validate(hp));
    hparams_write(hp, w);
    write_ctx c = {w, (seed * 0x9e3779b97f4a7c15ull) | 1, COSY_OK};
    s3tok_visit(hp, NULL, write_tensor, &c);
    return c.status;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    const gguf_file *g;
    cosy_s3tokenizer *m;
    cosy_status status;
} gguf_ctx;

static int bind_gguf(void *vctx, const char *name, int ndim, const int64_t *shape, s3w_kind kind, int64_t fan_in, const float **slot)
{
    (void)kind;
    (void)fan_in;
    gguf_ctx *c = vctx;
    c->status = net_gguf_bind_f32(c->g, name, ndim, shape, "s3tokenizer.*", cosy_s3tokenizer_owned(c->m), slot);
    return c->status != COSY_OK;
}

cosy_status cosy_s3tokenizer_from_gguf(const gguf_file *g, cosy_s3tokenizer **out)
{
    *out = NULL;
    cosy_s3tokenizer_hparams hp;
    COSY_TRY(cosy_s3tokenizer_hparams_read(g, &hp));
    cosy_s3tokenizer *m;
    COSY_TRY(cosy_s3tokenizer_create(&hp, &m));
    gguf_ctx c = {g, m, COSY_OK};
    s3tok_visit(&hp, cosy_s3tokenizer_weights(m), bind_gguf, &c);
    if (c.status != COSY_OK) {
        cosy_s3tokenizer_free(m);
        return c.status;
    }
    *out = m;
    return COSY_OK;
}

static cosy_status s3tok_module_create(cosy_model *m, void **out)
{
    cosy_s3tokenizer *net;
    COSY_TRY(cosy_s3tokenizer_from_gguf(&m->file, &net));
    *out = net;
    return COSY_OK;
}

static void s3tok_module_destroy(void *state) { cosy_s3tokenizer_free(state); }

static const cosy_module_def s3tok_module = {"s3tokenizer", s3tok_module_create, s3tok_module_destroy};

cosy_status cosy_s3tokenizer_get(cosy_model *model, const cosy_s3tokenizer **out)
{
    void *state;
    COSY_TRY(cosy_model_module(model, &s3tok_module, &state));
    *out = state;
    return COSY_OK;
}
