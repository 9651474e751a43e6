/*
 * s3tokenizer_onnx.c — S3TokenizerV2 weights and architecture out of speech_tokenizer_v2.onnx, by
 * walking the graph.
 *
 * Each weight is found through the scoped name of the node that consumes it (TorchScript exporter
 * names, as in the released file): /conv1/Conv, /conv2/Conv, /blocks.{b}/attn_ln/LayerNormalization,
 * /blocks.{b}/attn/{query,key,value,out}/MatMul (+ the Add of the bias beside it),
 * /blocks.{b}/attn/fsmn_block/Conv, /blocks.{b}/mlp_ln/LayerNormalization,
 * /blocks.{b}/mlp/mlp.{0,2}/MatMul (+ Add), and the FSQ projection /quantizer/project_in/MatMul or
 * /project_in/MatMul (+ Add) — never by the `onnx::MatMul_N` initializer names. MatMul initializers
 * hold W^T [in, out] and are kept so. Widths, blocks, MLP width, FSMN kernel and FSQ dims come from the
 * weights' shapes; the head dim from the rotary table (a Constant [positions, head_dim, 2] of cos and
 * sin), which is also checked against the table we compute. A Conv, LayerNormalization or weight
 * MatMul the walk did not place, or an attribute it does not expect, is refused naming the node.
 */
#include "model/voice/s3tokenizer.h"

#include "core/error.h"
#include "io/onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const onnx_model *g;
    cosy_s3tokenizer *net;
    char *used;
} walk;

static cosy_status refuse(const walk *wk, const char *node, const char *fmt, ...) COSY_PRINTF(3, 4);
static cosy_status refuse(const walk *wk, const char *node, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s: %s", wk->g->path, node, msg);
}

static const onnx_node *need_node(walk *wk, const char *name, const char *op, cosy_status *st)
{
    const onnx_node *n = onnx_find_node(wk->g, name);
    if (!n) {
        *st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing: not a speech tokenizer graph as S3TokenizerV2 exports it",
                         wk->g->path, name);
        return NULL;
    }
    if (strcmp(n->op_type, op)) {
        *st = refuse(wk, name, "op %s, %s expected", n->op_type, op);
        return NULL;
    }
    wk->used[n - wk->g->nodes] = 1;
    return n;
}

/* The constant input `input` of n: its tensor, with `ndim` dims (checked against want[] where > 0). */
static cosy_status read_const(walk *wk, const onnx_node *n, int input, int ndim, const int64_t *want, const onnx_tensor **tt, float **out)
{
    const onnx_tensor *t = input < n->n_inputs ? onnx_constant(wk->g, n->inputs[input]) : NULL;
    if (!t) return refuse(wk, n->name, "input %d is not a constant", input);
    if (t->ndim != ndim) return refuse(wk, n->name, "input %d (%s) has %d dimensions, %d expected", input, t->name, t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        if (want && want[d] > 0 && t->dims[d] != want[d])
            return refuse(wk, n->name, "input %d (%s) has %lld along axis %d, %lld expected", input, t->name, (long long)t->dims[d], d,
                          (long long)want[d]);
    float *p = cosy_s3tokenizer_own(wk->net, (size_t)t->numel);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory");
    COSY_TRY(onnx_tensor_read_f32(wk->g, t, p));
    if (tt) *tt = t;
    *out = p;
    return COSY_OK;
}

/* `scope`/MatMul with a constant [in][out] weight, and the bias of the Add after it (`bias` NULL: none
 * allowed). */
static cosy_status read_linear(walk *wk, const char *scope, int64_t in, int64_t out, const float **w, const float **bias,
                               int64_t *got_in, int64_t *got_out)
{
    char name[256];
    cosy_status st = COSY_OK;
    snprintf(name, sizeof name, "%s/MatMul", scope);
    const onnx_node *mm = need_node(wk, name, "MatMul", &st);
    if (!mm) return st;
    if (mm->n_inputs != 2) return refuse(wk, name, "%d inputs", mm->n_inputs);
    const onnx_tensor *t;
    float *p;
    COSY_TRY(read_const(wk, mm, 1, 2, (int64_t[]){in, out}, &t, &p));
    *w = p;
    if (got_in) *got_in = t->dims[0];
    if (got_out) *got_out = t->dims[1];
    const onnx_node *next[2];
    const int nc = onnx_consumers(wk->g, mm->outputs[0], next, 2);
    const int has_add = nc == 1 && !strcmp(next[0]->op_type, "Add");
    if (!bias) {
        if (has_add && (onnx_constant(wk->g, next[0]->inputs[0]) || onnx_constant(wk->g, next[0]->inputs[1])))
            return refuse(wk, next[0]->name, "a bias after %s, which S3TokenizerV2 does not have", name);
        return COSY_OK;
    }
    if (!has_add) return refuse(wk, name, "no bias Add after it");
    const onnx_node *add = next[0];
    const int bi = onnx_constant(wk->g, add->inputs[0]) ? 0 : 1;
    COSY_TRY(read_const(wk, add, bi, 1, (int64_t[]){t->dims[1]}, NULL, &p));
    *bias = p;
    wk->used[add - wk->g->nodes] = 1;
    return COSY_OK;
}

static cosy_status read_ln(walk *wk, const char *name, int64_t C, const float **w, const float **b, float *eps)
{
    cosy_status st = COSY_OK;
    const onnx_node *n = need_node(wk, name, "LayerNormalization", &st);
    if (!n) return st;
    if (n->n_inputs != 3) return refuse(wk, name, "%d inputs, scale and bias expected", n->n_inputs);
    if (onnx_attr_int(n, "axis", -1) != -1) return refuse(wk, name, "axis %lld, -1 expected", (long long)onnx_attr_int(n, "axis", -1));
    float *p;
    COSY_TRY(read_const(wk, n, 1, 1, (int64_t[]){C}, NULL, &p));
    *w = p;
    COSY_TRY(read_const(wk, n, 2, 1, (int64_t[]){C}, NULL, &p));
    *b = p;
    *eps = onnx_attr_float(n, "epsilon", 1e-5f);
    return COSY_OK;
}

/* The stride-2, k3, pad-1 convolutions of the front. */
static cosy_status read_front_conv(walk *wk, const char *name, int64_t cout, int64_t cin, const float **w, const float **b, int64_t *dims)
{
    cosy_status st = COSY_OK;
    const onnx_node *n = need_node(wk, name, "Conv", &st);
    if (!n) return st;
    if (n->n_inputs != 3) return refuse(wk, name, "%d inputs, weight and bias expected", n->n_inputs);
    float *p;
    const onnx_tensor *t;
    COSY_TRY(read_const(wk, n, 1, 3, (int64_t[]){cout, cin, 3}, &t, &p));
    *w = p;
    memcpy(dims, t->dims, sizeof(int64_t) * 3);
    COSY_TRY(read_const(wk, n, 2, 1, (int64_t[]){t->dims[0]}, NULL, &p));
    *b = p;
    int cnt;
    const int64_t *v = onnx_attr_ints(n, "strides", &cnt);
    if (!v || cnt != 1 || v[0] != 2) return refuse(wk, name, "stride other than 2");
    v = onnx_attr_ints(n, "pads", &cnt);
    if (!v || cnt != 2 || v[0] != 1 || v[1] != 1) return refuse(wk, name, "padding other than 1/1");
    v = onnx_attr_ints(n, "dilations", &cnt);
    if (v && (cnt != 1 || v[0] != 1)) return refuse(wk, name, "dilation other than 1");
    if (onnx_attr_int(n, "group", 1) != 1) return refuse(wk, name, "grouped convolution");
    return COSY_OK;
}

/* The rotary table: a constant [positions][head_dim][2] that a Slice takes rows of. */
static const onnx_tensor *find_rotary(const onnx_model *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *n = &g->nodes[i];
        if (strcmp(n->op_type, "Slice") || n->n_inputs < 1) continue;
        const onnx_tensor *t = onnx_constant(g, n->inputs[0]);
        if (t && t->ndim == 3 && t->dims[2] == 2 && t->data_type == ONNX_FLOAT) return t;
    }
    return NULL;
}

static cosy_status walk_graph(walk *wk, cosy_s3tokenizer_hparams *hp)
{
    const onnx_model *g = wk->g;
    cosy_s3tokenizer *net = wk->net;
    s3tok_weights *w = cosy_s3tokenizer_weights(net);
    int64_t d1[3], d2[3];
    COSY_TRY(read_front_conv(wk, "/conv1/Conv", 0, 0, &w->conv1_w, &w->conv1_b, d1));
    COSY_TRY(read_front_conv(wk, "/conv2/Conv", d1[0], d1[0], &w->conv2_w, &w->conv2_b, d2));
    const int64_t C = d1[0];
    char scope[200], name[256];
    for (int b = 0; b < hp->n_blocks; b++) {
        s3tok_block *bl = &w->blocks[b];
        float eps;
        snprintf(name, sizeof name, "/blocks.%d/attn_ln/LayerNormalization", b);
        COSY_TRY(read_ln(wk, name, C, &bl->attn_ln_w, &bl->attn_ln_b, &eps));
        if (b == 0) hp->attn_ln_eps = eps;
        else if (eps != hp->attn_ln_eps) return refuse(wk, name, "epsilon %g, blocks.0 has %g", (double)eps, (double)hp->attn_ln_eps);
        snprintf(scope, sizeof scope, "/blocks.%d/attn/query", b);
        COSY_TRY(read_linear(wk, scope, C, C, &bl->q_w, &bl->q_b, NULL, NULL));
        snprintf(scope, sizeof scope, "/blocks.%d/attn/key", b);
        COSY_TRY(read_linear(wk, scope, C, C, &bl->k_w, NULL, NULL, NULL));
        snprintf(scope, sizeof scope, "/blocks.%d/attn/value", b);
        COSY_TRY(read_linear(wk, scope, C, C, &bl->v_w, &bl->v_b, NULL, NULL));
        snprintf(scope, sizeof scope, "/blocks.%d/attn/out", b);
        COSY_TRY(read_linear(wk, scope, C, C, &bl->out_w, &bl->out_b, NULL, NULL));
        snprintf(name, sizeof name, "/blocks.%d/attn/fsmn_block/Conv", b);
        cosy_status st = COSY_OK;
        const onnx_node *f = need_node(wk, name, "Conv", &st);
        if (!f) return st;
        if (f->n_inputs != 2) return refuse(wk, name, "%d inputs (the FSMN conv has no bias)", f->n_inputs);
        if (onnx_attr_int(f, "group", 1) != C) return refuse(wk, name, "group %lld, %lld (depthwise) expected", (long long)onnx_attr_int(f, "group", 1), (long long)C);
        const onnx_tensor *t;
        float *p;
        COSY_TRY(read_const(wk, f, 1, 3, (int64_t[]){C, 1, b ? hp->fsmn_kernel : 0}, &t, &p));
        bl->fsmn_w = p;
        hp->fsmn_kernel = (int)t->dims[2];
        int cnt;
        const int64_t *v = onnx_attr_ints(f, "strides", &cnt);
        if (v && (cnt != 1 || v[0] != 1)) return refuse(wk, name, "stride other than 1");
        v = onnx_attr_ints(f, "dilations", &cnt);
        if (v && (cnt != 1 || v[0] != 1)) return refuse(wk, name, "dilation other than 1");
        v = onnx_attr_ints(f, "pads", &cnt);
        if (v && (cnt != 2 || v[0] || v[1])) return refuse(wk, name, "padding in the conv (the graph pads with pad_fn/Pad before it)");
        snprintf(name, sizeof name, "/blocks.%d/attn/pad_fn/Pad", b);
        if (!need_node(wk, name, "Pad", &st)) return st;
        snprintf(name, sizeof name, "/blocks.%d/mlp_ln/LayerNormalization", b);
        COSY_TRY(read_ln(wk, name, C, &bl->mlp_ln_w, &bl->mlp_ln_b, &eps));
        if (b == 0) hp->mlp_ln_eps = eps;
        else if (eps != hp->mlp_ln_eps) return refuse(wk, name, "epsilon %g, blocks.0 has %g", (double)eps, (double)hp->mlp_ln_eps);
        int64_t mo;
        snprintf(scope, sizeof scope, "/blocks.%d/mlp/mlp.0", b);
        COSY_TRY(read_linear(wk, scope, C, b ? hp->mlp_width : 0, &bl->mlp1_w, &bl->mlp1_b, NULL, &mo));
        hp->mlp_width = (int)mo;
        snprintf(scope, sizeof scope, "/blocks.%d/mlp/mlp.2", b);
        COSY_TRY(read_linear(wk, scope, mo, C, &bl->mlp2_w, &bl->mlp2_b, NULL, NULL));
    }
    const char *fsq = onnx_find_node(g, "/quantizer/project_in/MatMul") ? "/quantizer/project_in" : "/project_in";
    int64_t q;
    COSY_TRY(read_linear(wk, fsq, C, 0, &w->fsq_w, &w->fsq_b, NULL, &q));
    hp->fsq_dims = (int)q;
    /* FSQ: Tanh -> Mul 0.999 -> Round */
    int n_tanh = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *n = &g->nodes[i];
        if (!strcmp(n->op_type, "Tanh")) {
            n_tanh++;
            const onnx_node *next[2];
            if (onnx_consumers(g, n->outputs[0], next, 2) != 1 || strcmp(next[0]->op_type, "Mul"))
                return refuse(wk, n->name, "not followed by the FSQ scale");
            const onnx_tensor *s = onnx_constant(g, next[0]->inputs[1]);
            if (!s) s = onnx_constant(g, next[0]->inputs[0]);
            float sv = 0;
            if (!s || s->numel != 1 || onnx_tensor_read_f32(g, s, &sv) != COSY_OK || sv != 0.999f)
                return refuse(wk, next[0]->name, "FSQ scale %g, 0.999 expected", (double)sv);
        }
    }
    if (n_tanh != 1) return refuse(wk, "Tanh", "%d Tanh nodes, the FSQ head has one", n_tanh);
    /* heads from the rotary table, checked against ours */
    const onnx_tensor *rt = find_rotary(g);
    if (!rt) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: no rotary table (a constant [positions, head_dim, 2] that a Slice reads)", g->path);
    hp->head_dim = (int)rt->dims[1];
    if (hp->head_dim < 2 || C % hp->head_dim) return refuse(wk, rt->name, "head dim %d does not divide the width %lld", hp->head_dim, (long long)C);
    hp->n_heads = (int)(C / hp->head_dim);
    hp->width = (int)C;
    hp->n_mels = (int)d1[1];
    float *tab = malloc(sizeof(float) * (size_t)rt->numel);
    if (!tab) return cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory");
    cosy_status st = onnx_tensor_read_f32(g, rt, tab);
    double worst = 0;
    const int D = hp->head_dim, half = D / 2;
    for (int64_t t = 0; st == COSY_OK && t < rt->dims[0]; t++)
        for (int d = 0; d < D; d++) {
            const float freq = 1.0f / powf(hp->rope_theta, (float)(2 * (d % half)) / (float)D);
            const float angle = (float)t * freq;
            worst = fmax(worst, fabs(tab[(t * D + d) * 2] - cos((double)angle)));
            worst = fmax(worst, fabs(tab[(t * D + d) * 2 + 1] - sin((double)angle)));
        }
    free(tab);
    COSY_TRY(st);
    if (!(worst <= 1e-5)) return refuse(wk, rt->name, "rotary table differs from theta %g rotate-half by %.3g", (double)hp->rope_theta, worst);
    /* everything carrying weights must have been placed */
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *n = &g->nodes[i];
        if (wk->used[i]) continue;
        if (!strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "LayerNormalization") || !strcmp(n->op_type, "Gemm") ||
            (!strcmp(n->op_type, "MatMul") && n->n_inputs == 2 && (onnx_constant(g, n->inputs[0]) || onnx_constant(g, n->inputs[1]))))
            return refuse(wk, n->name, "a %s that S3TokenizerV2 does not have", n->op_type);
    }
    return cosy_s3tokenizer_hparams_validate(hp);
}

cosy_status cosy_s3tokenizer_from_onnx_model(const onnx_model *g, cosy_s3tokenizer **out)
{
    *out = NULL;
    cosy_s3tokenizer_hparams hp = cosy_s3tokenizer_default_hparams();
    hp.n_blocks = 0;
    char name[128];
    for (;;) {
        snprintf(name, sizeof name, "/blocks.%d/attn_ln/LayerNormalization", hp.n_blocks);
        if (!onnx_find_node(g, name)) break;
        if (++hp.n_blocks > S3TOK_MAX_BLOCKS) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: more than %d blocks", g->path, S3TOK_MAX_BLOCKS);
    }
    if (!hp.n_blocks)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node /blocks.0/attn_ln/LayerNormalization is missing: not a speech tokenizer graph as S3TokenizerV2 exports it", g->path);
    /* sizes are filled in by the walk; create with placeholders that validate */
    cosy_s3tokenizer_hparams tmp = hp;
    cosy_s3tokenizer *net = NULL;
    COSY_TRY(cosy_s3tokenizer_create(&tmp, &net));
    walk wk = {g, net, calloc((size_t)g->n_nodes + 1, 1)};
    cosy_status st = wk.used ? walk_graph(&wk, &hp) : cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory");
    free(wk.used);
    if (st != COSY_OK) {
        cosy_s3tokenizer_free(net);
        return st;
    }
    *(cosy_s3tokenizer_hparams *)cosy_s3tokenizer_hp(net) = hp;
    *out = net;
    return COSY_OK;
}

cosy_status cosy_s3tokenizer_from_onnx(const char *path, cosy_s3tokenizer **out)
{
    *out = NULL;
    onnx_model *g = NULL;
    COSY_TRY(onnx_load_file(path, &g));
    cosy_status st = cosy_s3tokenizer_from_onnx_model(g, out);
    onnx_free(g);
    return st;
}
