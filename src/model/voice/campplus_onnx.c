/*
 * campplus_onnx.c — CAM++ weights and architecture out of campplus.onnx, by walking the graph.
 *
 * Each weight is found through the scoped name of the node that consumes it, as torch.onnx.export
 * (TorchScript exporter) names nodes after the module path of 3D-Speaker's CAMPPlus:
 *   /head/conv1/Conv, /head/layer{L}/layer{L}.{B}/{conv1,conv2,shortcut/shortcut.0}/Conv, /head/conv2/Conv,
 *   /xvector/tdnn/linear/Conv,
 *   /xvector/block{B}/tdnnd{J}/nonlinear1/batchnorm/BatchNormalization, .../linear1/Conv,
 *   .../cam_layer/{linear_local,linear1,linear2}/Conv, .../cam_layer/AveragePool,
 *   /xvector/transit{B}/nonlinear/batchnorm/BatchNormalization, /xvector/transit{B}/linear/Conv,
 *   /xvector/out_nonlinear/relu/Relu, /xvector/dense/linear/Conv
 * never by the initializer names (`onnx::Conv_695` in one export is `onnx::Conv_4423` in another).
 *
 * BatchNorm comes in two forms: folded by the exporter into the Conv before it (a Conv with a bias,
 * as in the released file), or as a BatchNormalization node after the Conv (possibly behind
 * Squeeze/Unsqueeze/Reshape, as the dense layer's). We fold the second form ourselves, so both give
 * the same weights. A BatchNormalization that follows a concatenation stays a scale and a shift.
 * The architecture (channel counts, blocks, layers, growth rate, kernels, dilations, strides, segment
 * length) is read off the weights' shapes and the nodes' attributes and checked for consistency; a
 * Conv or BatchNormalization the walk did not account for, or an attribute it does not expect, is
 * refused naming the node. The helper subgraphs (shapes, std, segment expansion) differ between
 * opsets and exporters and are not interpreted.
 */
#include "model/voice/campplus.h"

#include "core/error.h"
#include "io/onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const onnx_model *g;
    cosy_campplus *net;
    char *used; /* per node: accounted for by the walk */
} walk;

/* A Conv node's weight and bias after folding, and its geometry. */
typedef struct {
    float *w, *b;
    int ndim;           /* of the weight: 3 (Conv1d) or 4 (Conv2d) */
    int64_t dims[4];
    int stride[2], pad[4], dilation[2];
    const onnx_node *node;
} conv_info;

static int node_index(const walk *wk, const onnx_node *n) { return (int)(n - wk->g->nodes); }

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

/* The f32 values of a constant input (initializer or Constant node) with `numel` values, into memory
 * the network owns. */
static cosy_status read_constant(walk *wk, const onnx_node *n, int input, int64_t numel, float **out)
{
    const onnx_tensor *t = input < n->n_inputs ? onnx_constant(wk->g, n->inputs[input]) : NULL;
    if (!t) return refuse(wk, n->name, "input %d is not a constant", input);
    if (t->numel != numel)
        return refuse(wk, n->name, "input %d (%s) has %lld values, %lld expected", input, n->inputs[input], (long long)t->numel, (long long)numel);
    float *p = cosy_campplus_own(wk->net, (size_t)numel);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");
    COSY_TRY(onnx_tensor_read_f32(wk->g, t, p));
    *out = p;
    return COSY_OK;
}

/* A BatchNormalization node's per-channel scale and shift: y = x * scale + shift. */
static cosy_status read_bn(walk *wk, const onnx_node *n, int64_t channels, float **scale, float **shift)
{
    if (strcmp(n->op_type, "BatchNormalization") || n->n_inputs != 5)
        return refuse(wk, n->name, "%s with %d inputs where a BatchNormalization was expected", n->op_type, n->n_inputs);
    if (n->n_outputs > 1 && n->outputs[1][0]) return refuse(wk, n->name, "a BatchNormalization in training mode");
    float *gamma, *beta, *mean, *var;
    COSY_TRY(read_constant(wk, n, 1, channels, &gamma));
    COSY_TRY(read_constant(wk, n, 2, channels, &beta));
    COSY_TRY(read_constant(wk, n, 3, channels, &mean));
    COSY_TRY(read_constant(wk, n, 4, channels, &var));
    const double eps = onnx_attr_float(n, "epsilon", 1e-5f);
    for (int64_t c = 0; c < channels; c++) {
        if (!(var[c] + eps > 0)) return refuse(wk, n->name, "running variance %g of channel %lld", (double)var[c], (long long)c);
        const double s = gamma[c] / sqrt((double)var[c] + eps);
        const double h = beta[c] - mean[c] * s;
        gamma[c] = (float)s;
        beta[c] = (float)h;
    }
    *scale = gamma;
    *shift = beta;
    wk->used[node_index(wk, n)] = 1;
    return COSY_OK;
}

/* The BatchNormalization that a value flows into alone, through shape-only ops (the dense layer's
 * Squeeze), or NULL. */
static const onnx_node *following_bn(const walk *wk, const char *value)
{
    for (int hops = 0; hops < 4; hops++) {
        const onnx_node *next[2];
        if (onnx_consumers(wk->g, value, next, 2) != 1) return NULL;
        const char *op = next[0]->op_type;
        if (!strcmp(op, "BatchNormalization")) return next[0];
        if (strcmp(op, "Squeeze") && strcmp(op, "Unsqueeze") && strcmp(op, "Reshape") && strcmp(op, "Identity")) return NULL;
        value = next[0]->outputs[0];
    }
    return NULL;
}

static int ints_equal(const int64_t *a, int n, const int *want, int m)
{
    if (n != m) return 0;
    for (int i = 0; i < n; i++)
        if (a[i] != want[i]) return 0;
    return 1;
}

/* The Conv node `name`: weight (ndim dims), optional bias, a BatchNormalization after it folded in when
 * allow_bn (refused otherwise); attributes read and checked for group 1. NULL *info->node when the
 * node does not exist and `optional`. */
static cosy_status read_conv(walk *wk, const char *name, int ndim, int allow_bn, int optional, conv_info *info)
{
    memset(info, 0, sizeof *info);
    const onnx_node *n = onnx_find_node(wk->g, name);
    if (!n) {
        if (optional) return COSY_OK;
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing: not a CAM++ graph as 3D-Speaker's CAMPPlus exports it",
                          wk->g->path, name);
    }
    if (strcmp(n->op_type, "Conv")) return refuse(wk, name, "op %s, Conv expected", n->op_type);
    if (n->n_inputs < 2 || n->n_inputs > 3) return refuse(wk, name, "%d inputs", n->n_inputs);
    if (onnx_attr_int(n, "group", 1) != 1) return refuse(wk, name, "grouped convolution (group %lld)", (long long)onnx_attr_int(n, "group", 1));
    const onnx_tensor *w = onnx_constant(wk->g, n->inputs[1]);
    if (!w) return refuse(wk, name, "its weight (%s) is not a constant", n->inputs[1]);
    if (w->ndim != ndim) return refuse(wk, name, "weight %s has %d dimensions, %d expected", w->name, w->ndim, ndim);
    info->node = n;
    info->ndim = ndim;
    memcpy(info->dims, w->dims, sizeof(int64_t) * (size_t)ndim);
    const int64_t cout = w->dims[0];
    COSY_TRY(read_constant(wk, n, 1, w->numel, &info->w));
    if (n->n_inputs == 3 && n->inputs[2][0]) {
        COSY_TRY(read_constant(wk, n, 2, cout, &info->b));
    } else {
        if (!(info->b = cosy_campplus_own(wk->net, (size_t)cout))) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");
        memset(info->b, 0, sizeof(float) * (size_t)cout);
    }
    /* geometry: strides, pads (begin..., end...), dilations; kernel_shape must match the weight */
    const int sp = ndim - 2;
    int cnt;
    const int64_t *ks = onnx_attr_ints(n, "kernel_shape", &cnt);
    if (ks && !ints_equal(ks, cnt, (int[]){(int)w->dims[2], sp == 2 ? (int)w->dims[3] : 0}, sp))
        return refuse(wk, name, "kernel_shape differs from the weight's shape");
    const char *auto_pad = onnx_node_attr(n, "auto_pad") ? onnx_node_attr(n, "auto_pad")->s : NULL;
    if (auto_pad && strcmp(auto_pad, "NOTSET")) return refuse(wk, name, "auto_pad %s", auto_pad);
    const int64_t *v = onnx_attr_ints(n, "strides", &cnt);
    for (int d = 0; d < sp; d++) info->stride[d] = v && cnt == sp ? (int)v[d] : 1;
    if (v && cnt != sp) return refuse(wk, name, "%d strides for %d spatial dimensions", cnt, sp);
    v = onnx_attr_ints(n, "dilations", &cnt);
    if (v && cnt != sp) return refuse(wk, name, "%d dilations for %d spatial dimensions", cnt, sp);
    for (int d = 0; d < sp; d++) info->dilation[d] = v ? (int)v[d] : 1;
    v = onnx_attr_ints(n, "pads", &cnt);
    if (v && cnt != 2 * sp) return refuse(wk, name, "%d pads for %d spatial dimensions", cnt, sp);
    for (int d = 0; d < 2 * sp; d++) info->pad[d] = v ? (int)v[d] : 0;
    wk->used[node_index(wk, n)] = 1;

    const onnx_node *bn = following_bn(wk, n->outputs[0]);
    if (bn && !allow_bn) return refuse(wk, bn->name, "a BatchNormalization after %s, which CAM++ does not have", name);
    if (bn) {
        float *scale, *shift;
        COSY_TRY(read_bn(wk, bn, cout, &scale, &shift));
        const int64_t per = w->numel / cout;
        for (int64_t co = 0; co < cout; co++) {
            for (int64_t i = 0; i < per; i++) info->w[co * per + i] = (float)((double)info->w[co * per + i] * scale[co]);
            info->b[co] = (float)((double)info->b[co] * scale[co] + shift[co]);
        }
    }
    return COSY_OK;
}

/* Checks a conv's geometry: kernel k (x k), stride, "same" padding for the dilation. */
static cosy_status check_conv(walk *wk, const conv_info *c, int64_t cout, int64_t cin, int k, int stride0, int dilation)
{
    const char *name = c->node->name;
    if (c->dims[0] != cout || c->dims[1] != cin)
        return refuse(wk, name, "weight of shape [%lld, %lld, ...], [%lld, %lld, ...] expected from the layers before it", (long long)c->dims[0],
                      (long long)c->dims[1], (long long)cout, (long long)cin);
    const int sp = c->ndim - 2, pad = dilation * (k - 1) / 2;
    for (int d = 0; d < sp; d++) {
        if (c->dims[2 + d] != k) return refuse(wk, name, "kernel %lld, %d expected", (long long)c->dims[2 + d], k);
        if (c->stride[d] != (d == 0 ? stride0 : 1)) return refuse(wk, name, "stride %d along axis %d, %d expected", c->stride[d], d, d == 0 ? stride0 : 1);
        if (c->dilation[d] != (d == 0 ? dilation : 1)) return refuse(wk, name, "dilation %d, %d expected", c->dilation[d], d == 0 ? dilation : 1);
        if (c->pad[d] != pad || c->pad[sp + d] != pad) return refuse(wk, name, "padding %d/%d, %d expected", c->pad[d], c->pad[sp + d], pad);
    }
    return COSY_OK;
}

static void set_conv(campplus_conv *dst, const conv_info *c)
{
    dst->w = c->w;
    dst->b = c->b;
}

/* The CAM layer's segment pooling: AveragePool(kernel L, stride L, ceil_mode 1, no padding, padding
 * not counted) over an unpadded input. Returns L. */
static cosy_status check_pool(walk *wk, const char *prefix, int *seg_len)
{
    char name[160];
    snprintf(name, sizeof name, "%s/cam_layer/AveragePool", prefix);
    const onnx_node *n = onnx_find_node(wk->g, name);
    if (!n) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing: not a CAM++ graph as 3D-Speaker's CAMPPlus exports it", wk->g->path, name);
    if (strcmp(n->op_type, "AveragePool")) return refuse(wk, name, "op %s, AveragePool expected", n->op_type);
    int cnt;
    const int64_t *k = onnx_attr_ints(n, "kernel_shape", &cnt), *s;
    if (!k || cnt != 1 || k[0] < 1) return refuse(wk, name, "kernel_shape is not one length");
    int s_cnt;
    s = onnx_attr_ints(n, "strides", &s_cnt);
    if (!s || s_cnt != 1 || s[0] != k[0]) return refuse(wk, name, "stride differs from the kernel (segments must not overlap)");
    if (onnx_attr_int(n, "ceil_mode", 0) != 1) return refuse(wk, name, "ceil_mode 0 (the last partial segment would be dropped)");
    if (onnx_attr_int(n, "count_include_pad", 0) != 0) return refuse(wk, name, "count_include_pad 1");
    const int64_t *pads = onnx_attr_ints(n, "pads", &cnt);
    for (int i = 0; pads && i < cnt; i++)
        if (pads[i]) return refuse(wk, name, "padded pooling");
    /* torch puts an explicit Pad before it: all zeros */
    const onnx_node *pad = onnx_producer(wk->g, n->inputs[0]);
    if (pad && !strcmp(pad->op_type, "Pad")) {
        int64_t p[16];
        const onnx_attribute *pa = onnx_node_attr(pad, "pads"); /* opset < 11: an attribute */
        const onnx_tensor *t = pa ? NULL : pad->n_inputs > 1 ? onnx_constant(wk->g, pad->inputs[1]) : NULL;
        int np = pa ? pa->n_ints : t && t->numel <= 16 ? (int)t->numel : -1;
        if (np < 0) return refuse(wk, pad->name, "padding amounts are not constants");
        if (pa) memcpy(p, pa->ints, sizeof(int64_t) * (size_t)np);
        else COSY_TRY(onnx_tensor_read_i64(wk->g, t, p));
        for (int i = 0; i < np; i++)
            if (p[i]) return refuse(wk, pad->name, "nonzero padding before the segment pooling");
    }
    if (*seg_len && *seg_len != k[0]) return refuse(wk, name, "segment length %lld, %d in other layers", (long long)k[0], *seg_len);
    *seg_len = (int)k[0];
    /* the mean over the whole sequence: ReduceMean over time, kept as a column */
    snprintf(name, sizeof name, "%s/cam_layer/ReduceMean", prefix);
    const onnx_node *mean = onnx_find_node(wk->g, name);
    int64_t axes[4];
    int na = mean ? onnx_node_axes(wk->g, mean, axes, 4) : -1;
    if (!mean || strcmp(mean->op_type, "ReduceMean") || na != 1 || (axes[0] != -1 && axes[0] != 2) || onnx_attr_int(mean, "keepdims", 1) != 1)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s: the mean over time (ReduceMean over the last axis, keepdims) was expected", wk->g->path, name);
    return COSY_OK;
}

static cosy_status walk_graph(walk *wk)
{
    const onnx_model *g = wk->g;
    cosy_campplus *net = wk->net;
    cosy_campplus_hparams *hp = cosy_campplus_hp(net);
    campplus_weights *w = cosy_campplus_weights(net);
    char name[160];
    conv_info c;

    if (g->n_inputs != 1 || g->inputs[0].ndim != 3)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: CAM++ takes one input [B, T, 80]; this graph has %d inputs", g->path, g->n_inputs);
    if (g->n_outputs != 1) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: CAM++ has one output; this graph has %d", g->path, g->n_outputs);

    /* FCM head */
    COSY_TRY(read_conv(wk, "/head/conv1/Conv", 4, 1, 0, &c));
    const int m = (int)c.dims[0];
    hp->fcm_channels = m;
    COSY_TRY(check_conv(wk, &c, m, 1, 3, 1, 1));
    const conv_info head_conv1 = c;
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++) {
        int b = 0;
        for (;; b++) {
            snprintf(name, sizeof name, "/head/layer%d/layer%d.%d/conv1/Conv", l + 1, l + 1, b);
            if (!onnx_find_node(g, name)) break;
        }
        if (b == 0) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node /head/layer%d/layer%d.0/conv1/Conv is missing: not a CAM++ FCM head", g->path, l + 1, l + 1);
        hp->fcm_blocks[l] = b;
    }
    COSY_TRY(cosy_campplus_alloc_layers(hp, w)); /* the FCM's blocks (n_blocks is still 0) */
    set_conv(&w->head_conv1, &head_conv1);
    for (int l = 0; l < CAMPPLUS_FCM_LAYERS; l++)
        for (int b = 0; b < hp->fcm_blocks[l]; b++) {
            campplus_res_block *r = &w->res[l][b];
            const int s = b == 0 ? 2 : 1;
            snprintf(name, sizeof name, "/head/layer%d/layer%d.%d/conv1/Conv", l + 1, l + 1, b);
            COSY_TRY(read_conv(wk, name, 4, 1, 0, &c));
            COSY_TRY(check_conv(wk, &c, m, m, 3, s, 1));
            set_conv(&r->conv1, &c);
            snprintf(name, sizeof name, "/head/layer%d/layer%d.%d/conv2/Conv", l + 1, l + 1, b);
            COSY_TRY(read_conv(wk, name, 4, 1, 0, &c));
            COSY_TRY(check_conv(wk, &c, m, m, 3, 1, 1));
            set_conv(&r->conv2, &c);
            snprintf(name, sizeof name, "/head/layer%d/layer%d.%d/shortcut/shortcut.0/Conv", l + 1, l + 1, b);
            COSY_TRY(read_conv(wk, name, 4, 1, 1, &c));
            if (!c.node && s != 1) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing (a strided block needs its shortcut)", g->path, name);
            if (c.node && s == 1) return refuse(wk, name, "a shortcut convolution on an unstrided block");
            if (c.node) {
                COSY_TRY(check_conv(wk, &c, m, m, 1, s, 1));
                set_conv(&r->shortcut, &c);
            }
        }
    COSY_TRY(read_conv(wk, "/head/conv2/Conv", 4, 1, 0, &c));
    COSY_TRY(check_conv(wk, &c, m, m, 3, 2, 1));
    set_conv(&w->head_conv2, &c);

    /* TDNN: its input width is m * feat_dim / 8 */
    COSY_TRY(read_conv(wk, "/xvector/tdnn/linear/Conv", 3, 1, 0, &c));
    if (c.dims[1] % m || (c.dims[1] / m) < 1) return refuse(wk, "/xvector/tdnn/linear/Conv", "%lld input channels for an FCM of %d channels", (long long)c.dims[1], m);
    hp->feat_dim = (int)(c.dims[1] / m) * 8;
    const int64_t in_feat = g->inputs[0].dims[2];
    if (in_feat >= 0 && in_feat != hp->feat_dim)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: input %s has %lld features but the head and TDNN are sized for %d", g->path, g->inputs[0].name,
                          (long long)in_feat, hp->feat_dim);
    hp->tdnn_channels = (int)c.dims[0];
    hp->tdnn_kernel = (int)c.dims[2];
    hp->tdnn_stride = c.stride[0];
    COSY_TRY(check_conv(wk, &c, hp->tdnn_channels, c.dims[1], hp->tdnn_kernel, hp->tdnn_stride, 1));
    set_conv(&w->tdnn, &c);

    /* blocks: count them and their layers; sizes from the first layer's weights */
    int nb = 0;
    for (;; nb++) {
        snprintf(name, sizeof name, "/xvector/block%d/tdnnd1/linear1/Conv", nb + 1);
        if (!onnx_find_node(g, name)) break;
    }
    if (nb < 1 || nb > CAMPPLUS_MAX_BLOCKS)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: %d CAM dense blocks (/xvector/blockN/tdnnd1/linear1/Conv), 1 to %d supported", g->path, nb, CAMPPLUS_MAX_BLOCKS);
    hp->n_blocks = nb;
    for (int b = 0; b < nb; b++) {
        int j = 0;
        for (;; j++) {
            snprintf(name, sizeof name, "/xvector/block%d/tdnnd%d/linear1/Conv", b + 1, j + 1);
            if (!onnx_find_node(g, name)) break;
        }
        hp->block_layers[b] = j;
        snprintf(name, sizeof name, "/xvector/block%d/tdnnd1/cam_layer/linear_local/Conv", b + 1);
        const onnx_node *local = onnx_find_node(g, name);
        const onnx_tensor *lw = local && local->n_inputs > 1 ? onnx_constant(g, local->inputs[1]) : NULL;
        if (!lw || lw->ndim != 3) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing or has no constant 3-D weight", g->path, name);
        int cnt;
        const int64_t *dil = onnx_attr_ints(local, "dilations", &cnt);
        hp->block_kernel[b] = (int)lw->dims[2];
        hp->block_dilation[b] = dil && cnt == 1 ? (int)dil[0] : 1;
        if (b == 0) {
            hp->growth_rate = (int)lw->dims[0];
            hp->bn_channels = (int)lw->dims[1];
            snprintf(name, sizeof name, "/xvector/block1/tdnnd1/cam_layer/linear1/Conv");
            const onnx_node *l1 = onnx_find_node(g, name);
            const onnx_tensor *l1w = l1 && l1->n_inputs > 1 ? onnx_constant(g, l1->inputs[1]) : NULL;
            if (!l1w || l1w->ndim != 3) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing or has no constant 3-D weight", g->path, name);
            hp->cam_channels = (int)l1w->dims[0];
        }
    }
    const onnx_node *dense = onnx_find_node(g, "/xvector/dense/linear/Conv");
    const onnx_tensor *dw = dense && dense->n_inputs > 1 ? onnx_constant(g, dense->inputs[1]) : NULL;
    if (!dw || dw->ndim != 3) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node /xvector/dense/linear/Conv is missing or has no constant 3-D weight", g->path);
    hp->embedding_size = (int)dw->dims[0];
    COSY_TRY(check_pool(wk, "/xvector/block1/tdnnd1", &hp->seg_len)); /* the segment length */
    {
        cosy_status st = cosy_campplus_hparams_validate(hp);
        if (st != COSY_OK) return cosy_error_prefix(st, "%s", g->path);
    }
    for (int b = 0; b < nb; b++)
        if (!(w->layers[b] = calloc((size_t)hp->block_layers[b], sizeof *w->layers[b]))) return cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");

    int C = hp->tdnn_channels;
    for (int b = 0; b < nb; b++) {
        for (int j = 0; j < hp->block_layers[b]; j++, C += hp->growth_rate) {
            campplus_dense_layer *d = &w->layers[b][j];
            char prefix[96];
            snprintf(prefix, sizeof prefix, "/xvector/block%d/tdnnd%d", b + 1, j + 1);
            snprintf(name, sizeof name, "%s/nonlinear1/batchnorm/BatchNormalization", prefix);
            const onnx_node *bn = onnx_find_node(g, name);
            if (!bn) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing", g->path, name);
            float *scale, *shift;
            COSY_TRY(read_bn(wk, bn, C, &scale, &shift));
            d->bn1.scale = scale;
            d->bn1.shift = shift;
            snprintf(name, sizeof name, "%s/linear1/Conv", prefix);
            COSY_TRY(read_conv(wk, name, 3, 1, 0, &c));
            COSY_TRY(check_conv(wk, &c, hp->bn_channels, C, 1, 1, 1));
            set_conv(&d->linear1, &c);
            snprintf(name, sizeof name, "%s/cam_layer/linear_local/Conv", prefix);
            COSY_TRY(read_conv(wk, name, 3, 0, 0, &c));
            COSY_TRY(check_conv(wk, &c, hp->growth_rate, hp->bn_channels, hp->block_kernel[b], 1, hp->block_dilation[b]));
            set_conv(&d->local, &c);
            snprintf(name, sizeof name, "%s/cam_layer/linear1/Conv", prefix);
            COSY_TRY(read_conv(wk, name, 3, 0, 0, &c));
            COSY_TRY(check_conv(wk, &c, hp->cam_channels, hp->bn_channels, 1, 1, 1));
            set_conv(&d->cam1, &c);
            snprintf(name, sizeof name, "%s/cam_layer/linear2/Conv", prefix);
            COSY_TRY(read_conv(wk, name, 3, 0, 0, &c));
            COSY_TRY(check_conv(wk, &c, hp->growth_rate, hp->cam_channels, 1, 1, 1));
            set_conv(&d->cam2, &c);
            COSY_TRY(check_pool(wk, prefix, &hp->seg_len));
        }
        snprintf(name, sizeof name, "/xvector/transit%d/nonlinear/batchnorm/BatchNormalization", b + 1);
        const onnx_node *bn = onnx_find_node(g, name);
        if (!bn) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node %s is missing", g->path, name);
        float *scale, *shift;
        COSY_TRY(read_bn(wk, bn, C, &scale, &shift));
        w->transit_bn[b].scale = scale;
        w->transit_bn[b].shift = shift;
        snprintf(name, sizeof name, "/xvector/transit%d/linear/Conv", b + 1);
        /* the last transit carries out_nonlinear's BatchNorm (folded by the exporter, or a node after it) */
        COSY_TRY(read_conv(wk, name, 3, b == nb - 1, 0, &c));
        COSY_TRY(check_conv(wk, &c, C / 2, C, 1, 1, 1));
        set_conv(&w->transit[b], &c);
        C /= 2;
    }
    const onnx_node *relu = onnx_find_node(g, "/xvector/out_nonlinear/relu/Relu");
    if (!relu || strcmp(relu->op_type, "Relu")) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: node /xvector/out_nonlinear/relu/Relu is missing", g->path);

    COSY_TRY(read_conv(wk, "/xvector/dense/linear/Conv", 3, 1, 0, &c));
    COSY_TRY(check_conv(wk, &c, hp->embedding_size, 2 * C, 1, 1, 1));
    if (!following_bn(wk, c.node->outputs[0]))
        return refuse(wk, "/xvector/dense/linear/Conv", "no BatchNormalization after the dense layer (CAMPPlus ends with BatchNorm1d(affine=False))");
    set_conv(&w->dense, &c);
    const int64_t out_dim = g->outputs[0].ndim == 2 ? g->outputs[0].dims[1] : -1;
    if (out_dim >= 0 && out_dim != hp->embedding_size)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: output %s has %lld values per utterance, the dense layer %d", g->path, g->outputs[0].name,
                          (long long)out_dim, hp->embedding_size);

    /* every Conv and BatchNormalization of the graph must be one we placed */
    for (int i = 0; i < g->n_nodes; i++) {
        const onnx_node *n = &g->nodes[i];
        if (!wk->used[i] && (!strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "BatchNormalization") || !strcmp(n->op_type, "MatMul") ||
                             !strcmp(n->op_type, "Gemm") || !strcmp(n->op_type, "ConvTranspose")))
            return refuse(wk, n->name, "a %s that CAM++ as 3D-Speaker defines it does not have", n->op_type);
    }
    return COSY_OK;
}

cosy_status cosy_campplus_from_onnx_model(const onnx_model *g, cosy_campplus **out)
{
    *out = NULL;
    cosy_campplus *net;
    cosy_campplus_hparams hp = cosy_campplus_default_hparams(); /* placeholder sizes until the walk reads them */
    COSY_TRY(cosy_campplus_create(&hp, &net));
    cosy_campplus_free_layers(cosy_campplus_weights(net));
    memset(cosy_campplus_hp(net), 0, sizeof hp);
    walk wk = {g, net, calloc((size_t)g->n_nodes + 1, 1)};
    cosy_status st = wk.used ? walk_graph(&wk) : cosy_error(COSY_ERR_NOMEM, "campplus: out of memory");
    free(wk.used);
    if (st != COSY_OK) {
        cosy_campplus_free(net);
        return st;
    }
    *out = net;
    return COSY_OK;
}

cosy_status cosy_campplus_from_onnx(const char *path, cosy_campplus **out)
{
    *out = NULL;
    onnx_model *g;
    COSY_TRY(onnx_load_file(path, &g));
    cosy_status st = cosy_campplus_from_onnx_model(g, out);
    onnx_free(g);
    return st;
}
