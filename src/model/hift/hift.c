/*
 * hift.c — HiFTGenerator.inference of CosyVoice2 (cosyvoice/hifigan/generator.py) with its
 * ConvRNNF0Predictor (cosyvoice/hifigan/f0_predictor.py); see hift.h for the stages.
 *
 * Everything is channel-major [C][T] like the reference's Conv1d tensors. Sizes come from the
 * hyperparameters (base channels, upsample rates and kernels, resblock kernels and dilations,
 * iSTFT size); the weights come from the converted model with weight norm folded in. The forward
 * pass below reads top to bottom like HiFTGenerator.inference + decode.
 *
 * The generator's convolutions run in the model's hift_dtype: f32 (the reference path, checked
 * against the official fixtures) or bf16 (weights packed once at load, activations written in bf16
 * by the activation before each convolution, f32 sums, bias and residual stream; test_hift_bf16
 * bounds its waveform against f32). The F0 predictor, the source and the strided source_downs stay
 * f32 in both: f0 is integrated into the source's phase over the whole call, so its rounding would
 * move every later sample. The kernels are in core/conv1d.h and core/activation.h.
 */
#include "model/hift/hift_internal.h"
#include "core/activation.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading -------------------------------------------------------------------------------- */

/* A convolution's weights for the type it runs in: f32 (a pointer into the file, or a widened copy of
 * 16-bit storage), or, for the layers the generator runs in bf16 (bf16 != 0), bf16 tiles packed once
 * here from the file's f32 or bf16 storage (core/conv1d.h), with no f32 copy. */
static cosy_status load_conv(cosy_hift *h, cosy_conv *c, int transposed, int bf16, int cout, int cin, int k, int stride, int pad,
                             int dilation, int has_bias, const char *fmt, ...) __attribute__((format(printf, 12, 13)));

static cosy_status load_conv(cosy_hift *h, cosy_conv *c, int transposed, int bf16, int cout, int cin, int k, int stride, int pad,
                             int dilation, int has_bias, const char *fmt, ...)
{
    char name[160], full[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const cosy_tensor *t;
    snprintf(full, sizeof full, "hift.%s.weight", name);
    COSY_TRY(cosy_model_tensor(h->model, full, &t));
    /* Conv1d weight [out, in, k]; ConvTranspose1d [in, out, k] */
    int64_t d0 = transposed ? cin : cout, d1 = transposed ? cout : cin;
    if (t->ndim != 3 || t->shape[0] != d0 || t->shape[1] != d1 || t->shape[2] != k)
        return cosy_error(COSY_ERR_SHAPE, "hift: %s is not a [%lld, %lld, %d] convolution", full, (long long)d0, (long long)d1, k);
    memset(c, 0, sizeof *c);
    c->cout = cout;
    c->cin = cin;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->dilation = dilation;
    c->transposed = transposed;
    if (bf16) {
        uint16_t *packed = cosy_model_alloc(h->model, sizeof(uint16_t) * cosy_conv1d_packed_bf16_elems(c));
        if (!packed) return cosy_error(COSY_ERR_NOMEM, "hift: out of memory packing %s", full);
        if (t->dtype == COSY_DTYPE_F32 || t->dtype == COSY_DTYPE_BF16) {
            COSY_TRY(cosy_conv1d_pack_bf16(packed, c, t->data, t->dtype));
        } else {
            const float *w;
            COSY_TRY(cosy_model_f32(h->model, full, &w));
            COSY_TRY(cosy_conv1d_pack_bf16(packed, c, w, COSY_DTYPE_F32));
        }
        c->w_bf16 = packed;
    } else {
        COSY_TRY(cosy_model_f32(h->model, full, &c->w));
    }
    if (has_bias) {
        snprintf(full, sizeof full, "hift.%s.bias", name);
        COSY_TRY(cosy_model_f32(h->model, full, &c->b));
    }
    return COSY_OK;
}

/* hifigan ResBlock(channels, kernel, dilations): convs1 dilated, convs2 not, padding get_padding(k, d) */
static cosy_status load_resblock(cosy_hift *h, hift_resblock *rb, int ch, int k, const int *dilations, int n,
                                 const char *prefix)
{
    rb->ch = ch;
    rb->k = k;
    rb->n = n;
    for (int j = 0; j < n; j++) {
        int d = dilations[j];
        if (d < 1 || k < 1 || k % 2 == 0 || (k * d - d) / 2 > COSY_ACT_PAD)
            return cosy_error(COSY_ERR_UNSUPPORTED, "hift: %s: kernel %d / dilation %d (odd kernels, dilation >= 1, padding <= %d)", prefix,
                              k, d, COSY_ACT_PAD);
        COSY_TRY(load_conv(h, &rb->conv1[j], 0, h->bf16, ch, ch, k, 1, (k * d - d) / 2, d, 1, "%s.convs1.%d", prefix, j));
        COSY_TRY(load_conv(h, &rb->conv2[j], 0, h->bf16, ch, ch, k, 1, (k - 1) / 2, 1, 1, "%s.convs2.%d", prefix, j));
        COSY_TRY(cosy_model_f32f(h->model, &rb->alpha1[j], "hift.%s.activations1.%d.alpha", prefix, j));
        COSY_TRY(cosy_model_f32f(h->model, &rb->alpha2[j], "hift.%s.activations2.%d.alpha", prefix, j));
    }
    return COSY_OK;
}

static cosy_status hift_load(cosy_hift *h)
{
    const cosy_hparams *hp = h->hp;
    const int base = hp->hift_base_channels, nup = hp->n_upsample, n_fft2 = hp->istft_n_fft + 2;
    if (hp->n_source_resblocks != nup)
        return cosy_error(COSY_ERR_UNSUPPORTED, "hift: %d source resblocks for %d upsampling steps (HiFTGenerator.decode uses one per step)",
                          hp->n_source_resblocks, nup);
    /* HiFTGenerator picks SineGen (type 1) at 22050 Hz (CosyVoice 1) and SineGen2 otherwise */
    if (hp->sample_rate == 22050)
        return cosy_error(COSY_ERR_UNSUPPORTED, "hift: 22050 Hz models use SineGen (CosyVoice 1), which is not implemented; only SineGen2");
    if (hp->f0_num_class != 1 || hp->hift_nb_harmonics < 0)
        return cosy_error(COSY_ERR_UNSUPPORTED, "hift: F0 predictor with %d classes, %d harmonics", hp->f0_num_class, hp->hift_nb_harmonics);
    h->harmonics = hp->hift_nb_harmonics + 1;
    h->upsample_scale = hp->istft_hop;
    for (int i = 0; i < nup; i++) h->upsample_scale *= hp->upsample_rates[i];
    COSY_TRY(cosy_stft_init(&h->stft, hp->istft_n_fft, hp->istft_hop));

    for (int i = 0; i < HIFT_F0_LAYERS; i++)
        COSY_TRY(load_conv(h, &h->f0_conv[i], 0, 0, hp->f0_cond_channels, i == 0 ? hp->hift_in_channels : hp->f0_cond_channels,
                           HIFT_F0_KERNEL, 1, 1, 1, 1, "f0_predictor.condnet.%d", 2 * i));
    COSY_TRY(cosy_model_f32(h->model, "hift.f0_predictor.classifier.weight", &h->f0_cls_w));
    COSY_TRY(cosy_model_f32(h->model, "hift.f0_predictor.classifier.bias", &h->f0_cls_b));
    COSY_TRY(cosy_model_f32(h->model, "hift.m_source.l_linear.weight", &h->merge_w));
    COSY_TRY(cosy_model_f32(h->model, "hift.m_source.l_linear.bias", &h->merge_b));

    COSY_TRY(load_conv(h, &h->conv_pre, 0, h->bf16, base, hp->hift_in_channels, HIFT_CONV_KERNEL, 1, 3, 1, 1, "conv_pre"));
    for (int i = 0; i < nup; i++) {
        int u = hp->upsample_rates[i], k = hp->upsample_kernel_sizes[i];
        COSY_TRY(load_conv(h, &h->ups[i], 1, h->bf16, base >> (i + 1), base >> i, k, u, (k - u) / 2, 1, 1, "ups.%d", i));
    }
    /* source branch: downsample_rates = [1] + upsample_rates[::-1][:-1], cumulated, then reversed, so
     * source_downs[i] brings the STFT frame rate down to the rate after ups[i] */
    int cum[HIFT_MAX_LIST];
    cum[0] = 1;
    for (int i = 1; i < nup; i++) cum[i] = cum[i - 1] * hp->upsample_rates[nup - i];
    for (int i = 0; i < nup; i++) {
        int u = cum[nup - 1 - i];
        if (u == 1)
            COSY_TRY(load_conv(h, &h->source_downs[i], 0, 0, base >> (i + 1), n_fft2, 1, 1, 0, 1, 1, "source_downs.%d", i));
        else
            COSY_TRY(load_conv(h, &h->source_downs[i], 0, 0, base >> (i + 1), n_fft2, 2 * u, u, u / 2, 1, 1, "source_downs.%d", i));
        char prefix[64];
        snprintf(prefix, sizeof prefix, "source_resblocks.%d", i);
        COSY_TRY(load_resblock(h, &h->source_resblocks[i], base >> (i + 1), hp->source_resblock_kernel_sizes[i],
                               hp->source_resblock_dilations + i * hp->n_source_dilations, hp->n_source_dilations, prefix));
    }
    for (int i = 0; i < nup; i++)
        for (int j = 0; j < hp->n_resblock_kernels; j++) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "resblocks.%d", i * hp->n_resblock_kernels + j);
            COSY_TRY(load_resblock(h, &h->resblocks[i * hp->n_resblock_kernels + j], base >> (i + 1), hp->resblock_kernel_sizes[j],
                                   hp->resblock_dilations + j * hp->n_resblock_dilations, hp->n_resblock_dilations, prefix));
        }
    COSY_TRY(load_conv(h, &h->conv_post, 0, h->bf16, n_fft2, base >> nup, HIFT_CONV_KERNEL, 1, 3, 1, 1, "conv_post"));
    return COSY_OK;
}

static void hift_destroy(void *state)
{
    cosy_hift *h = state;
    if (!h) return;
    for (int i = 0; i < HIFT_MAX_SCRATCH; i++) cosy_arena_free(&h->scratch[i].arena);
    pthread_mutex_destroy(&h->scratch_lock);
    free(h);
}

static cosy_status hift_create(cosy_model *m, void **out)
{
    cosy_hift *h = calloc(1, sizeof *h);
    if (!h) return cosy_error(COSY_ERR_NOMEM, "hift: out of memory");
    pthread_mutex_init(&h->scratch_lock, NULL);
    h->model = m;
    h->hp = &m->hp;
    h->pool = m->pool;
    /* bf16 only where the CPU multiplies bf16 natively: emulated it would be far slower than f32 */
    h->bf16 = m->params.hift_dtype == COSY_DTYPE_BF16 && cosy_conv1d_bf16_native();
    cosy_status st = hift_load(h);
    if (st != COSY_OK) {
        hift_destroy(h);
        return st;
    }
    *out = h;
    return COSY_OK;
}

static const cosy_module_def hift_module = {"hift", hift_create, hift_destroy};

cosy_status cosy_hift_get(cosy_model *model, cosy_hift **out)
{
    if (!model || !out) return cosy_error(COSY_ERR_INVALID_ARG, "hift: no model");
    void *state;
    COSY_TRY(cosy_model_module(model, &hift_module, &state));
    *out = state;
    return COSY_OK;
}

int cosy_hift_samples_per_frame(const cosy_hift *hift) { return hift->upsample_scale; }
cosy_dtype cosy_hift_dtype(const cosy_hift *hift) { return hift->bf16 ? COSY_DTYPE_BF16 : COSY_DTYPE_F32; }

int cosy_hift_harmonics(const cosy_hift *hift) { return hift->harmonics; }

/* ---- scratch -------------------------------------------------------------------------------- */

/* Bytes of scratch one call over n_frames frames needs: everything live at once, summed generously. */
static size_t scratch_bytes(const cosy_hift *h, int n_frames)
{
    const cosy_hparams *hp = h->hp;
    const size_t F = (size_t)n_frames, T = F * (size_t)h->upsample_scale, B = (size_t)h->stft.n_bins;
    const int L = (int)(T / (size_t)hp->istft_hop + 1);
    const size_t n2 = 2 * B;
    /* live throughout: f0, source, source spectrum, conv_post output, the mel as an activation */
    size_t floats = F + T + n2 * (size_t)L + cosy_act_floats((int)n2, L) + cosy_act_floats(hp->hift_in_channels, n_frames);
    /* before the generator: the source's draws, with the F0 predictor's activations beside them, then
     * the source stage's per-frame phases */
    size_t f0 = 2 * cosy_act_floats(hp->f0_cond_channels, n_frames), phases = F * (size_t)h->harmonics;
    size_t src = (size_t)(h->harmonics + 1) * T + (size_t)h->harmonics + (f0 > phases ? f0 : phases) + 64;
    /* the generator: conv_pre's output, then per stage six activations, the transposed convolution's
     * columns and the source branch's im2col (sized for a dense copy too); earlier stage outputs stay allocated */
    size_t gen = cosy_act_floats(hp->hift_base_channels, n_frames), kept = gen, stage_max = 0;
    int len = n_frames;
    /* bf16 activations (in floats: half their elements): conv_pre's and conv_post's inputs, and per
     * stage the upsampling's input and the temporary one */
    size_t pre = h->bf16 ? cosy_act_bf16_elems(hp->hift_in_channels, n_frames) / 2 + 16 : 0;
    size_t post = h->bf16 ? cosy_act_bf16_elems((int)n2 > 0 ? h->conv_post.cin : 0, L) / 2 + 16 : 0;
    for (int i = 0; i < hp->n_upsample; i++) {
        const cosy_conv *up = &h->ups[i], *down = &h->source_downs[i];
        int out_len = (len - 1) * up->stride - 2 * up->pad + up->k + 1;
        size_t ch = (size_t)up->cout;
        size_t bf16 = h->bf16 ? (cosy_act_bf16_elems(up->cin, len) + cosy_act_bf16_elems((int)ch, out_len)) / 2 + 32 : 0;
        size_t stage = 6 * cosy_act_floats((int)ch, out_len) + ch * (size_t)up->k * (size_t)len + ch * (size_t)out_len +
                       n2 * (size_t)down->k * (size_t)out_len + bf16;
        if (stage > stage_max) stage_max = stage;
        kept += cosy_act_floats((int)ch, out_len);
        len = out_len;
    }
    gen = kept + stage_max + (pre > post ? pre : post);
    size_t peak = src;
    if (gen > peak) peak = gen;
    return (floats + peak) * sizeof(float) + 64 * 64 * 4;
}

/* An arena of at least `bytes` for one call: a free kept one (grown if needed), or a temporary. */
static cosy_status scratch_acquire(cosy_hift *h, size_t bytes, cosy_arena **arena, int *slot)
{
    pthread_mutex_lock(&h->scratch_lock);
    int found = -1;
    for (int i = 0; i < HIFT_MAX_SCRATCH && found < 0; i++)
        if (!h->scratch[i].busy) found = i;
    if (found >= 0) h->scratch[found].busy = 1;
    pthread_mutex_unlock(&h->scratch_lock);
    *slot = found;
    if (found < 0) {
        cosy_arena *tmp = malloc(sizeof *tmp);
        if (!tmp) return cosy_error(COSY_ERR_NOMEM, "hift: out of memory");
        cosy_status st = cosy_arena_init(tmp, bytes);
        if (st != COSY_OK) {
            free(tmp);
            return st;
        }
        *arena = tmp;
        return COSY_OK;
    }
    cosy_arena *a = &h->scratch[found].arena;
    if (a->size < bytes) {
        cosy_arena_free(a);
        cosy_status st = cosy_arena_init(a, bytes);
        if (st != COSY_OK) {
            memset(a, 0, sizeof *a);
            pthread_mutex_lock(&h->scratch_lock);
            h->scratch[found].busy = 0;
            pthread_mutex_unlock(&h->scratch_lock);
            return st;
        }
    }
    cosy_arena_reset(a);
    *arena = a;
    return COSY_OK;
}

static void scratch_release(cosy_hift *h, cosy_arena *arena, int slot)
{
    if (slot < 0) {
        cosy_arena_free(arena);
        free(arena);
        return;
    }
    pthread_mutex_lock(&h->scratch_lock);
    h->scratch[slot].busy = 0;
    pthread_mutex_unlock(&h->scratch_lock);
}

/* ---- per-operation clock -------------------------------------------------------------------- */

/* Where one call's time goes (cosy_hift_trace.op_ms): a running timestamp, and each operation, when it
 * ends, charges the time since the previous charge to its entry. Costs two clock reads per operation. */
typedef struct {
    double ms[COSY_HIFT_N_OPS];
    double last;
} hift_prof;

static void prof_charge(hift_prof *p, cosy_hift_op op)
{
    double now = cosy_now_ms();
    p->ms[op] += now - p->last;
    p->last = now;
}

const char *cosy_hift_op_name(cosy_hift_op op)
{
    static const char *const names[COSY_HIFT_N_OPS] = {
        "f0 predictor + draws", "source", "stft", "conv_pre", "upsample (transposed)", "source_downs", "source resblock convs",
        "resblock convs #0", "resblock convs #1", "resblock convs #2", "snake", "elementwise", "conv_post", "mag/phase + istft"};
    return (unsigned)op < COSY_HIFT_N_OPS ? names[op] : "?";
}

/* ---- layers --------------------------------------------------------------------------------- */

/* Dense [C][T] rows into an activation. */
static void act_load(cosy_act *a, const float *x, int ldx)
{
    for (int c = 0; c < a->C; c++) memcpy(a->data + (size_t)c * a->ld, x + (size_t)c * ldx, sizeof(float) * (size_t)a->T);
}

/* A stage's temporaries: t holds a convolution's output inside a resblock; the input of the next
 * convolution is u (f32 path: the activation's output) or ub (bf16 path: the activation writes the
 * pair layout the bf16 kernel reads, core/activation.h). */
typedef struct {
    cosy_act t, u;
    cosy_act_bf16 ub;
} hift_tmp;

static cosy_status tmp_alloc(const cosy_hift *h, hift_tmp *tmp, int C, int T, cosy_arena *arena)
{
    memset(tmp, 0, sizeof *tmp);
    COSY_TRY(cosy_act_alloc(&tmp->t, C, T, arena));
    if (h->bf16) return cosy_act_bf16_alloc(&tmp->ub, C, T, arena);
    return cosy_act_alloc(&tmp->u, C, T, arena);
}

/* out = conv(snake(in)) (+ res; res may be out), in the run type */
static cosy_status snake_conv(const cosy_hift *h, const cosy_conv *c, const float *alpha, const cosy_act *in, cosy_act *out,
                              const cosy_act *res, hift_tmp *tmp, hift_prof *prof, cosy_hift_op op)
{
    if (h->bf16) {
        cosy_snake_bf16(h->pool, &tmp->ub, in, alpha);
        prof_charge(prof, COSY_HIFT_OP_SNAKE);
        COSY_TRY(cosy_conv1d_same_bf16(h->pool, c, &tmp->ub, out, res));
    } else {
        cosy_snake_rows(h->pool, tmp->u.data, tmp->u.ld, in->data, in->ld, in->C, in->T, alpha);
        prof_charge(prof, COSY_HIFT_OP_SNAKE);
        COSY_TRY(cosy_conv1d_same(h->pool, c, &tmp->u, out, res));
    }
    prof_charge(prof, op);
    return COSY_OK;
}

/* ResBlock.forward: out = x + sum over dilations of conv2(snake2(conv1(snake1(.)))), applied in turn;
 * out may be x. */
static cosy_status resblock_forward(const cosy_hift *h, const hift_resblock *rb, const cosy_act *x, cosy_act *out, hift_tmp *tmp,
                                    hift_prof *prof, cosy_hift_op op)
{
    const cosy_act *in = x;
    for (int j = 0; j < rb->n; j++) {
        COSY_TRY(snake_conv(h, &rb->conv1[j], rb->alpha1[j], in, &tmp->t, NULL, tmp, prof, op));
        COSY_TRY(snake_conv(h, &rb->conv2[j], rb->alpha2[j], &tmp->t, out, in, tmp, prof, op));
        in = out;
    }
    return COSY_OK;
}

/* conv(leaky_relu(x)) for conv_pre (slope < 0: no activation) and conv_post, in the run type; x is
 * overwritten on the f32 path */
static cosy_status lrelu_conv(const cosy_hift *h, const cosy_conv *c, float slope, cosy_act *x, cosy_act *out, cosy_arena *arena)
{
    if (!h->bf16) {
        if (slope >= 0) cosy_leaky_relu_rows(h->pool, x->data, x->ld, x->data, x->ld, x->C, x->T, slope);
        return cosy_conv1d_same(h->pool, c, x, out, NULL);
    }
    size_t mark = cosy_arena_mark(arena);
    cosy_act_bf16 xb;
    COSY_TRY(cosy_act_bf16_alloc(&xb, x->C, x->T, arena));
    if (slope >= 0) cosy_leaky_relu_bf16(h->pool, &xb, x, slope);
    else cosy_act_to_bf16(h->pool, &xb, x);
    cosy_status st = cosy_conv1d_same_bf16(h->pool, c, &xb, out, NULL);
    cosy_arena_release(arena, mark);
    return st;
}

/* ConvRNNF0Predictor.forward: condnet (conv k3 + ELU, five times), classifier, |.|; mel -> f0 [F] */
static cosy_status f0_predict(const cosy_hift *h, const cosy_act *mel, float *f0, cosy_arena *arena)
{
    const int cond = h->hp->f0_cond_channels, F = mel->T;
    size_t mark = cosy_arena_mark(arena);
    cosy_act a, b;
    COSY_TRY(cosy_act_alloc(&a, cond, F, arena));
    COSY_TRY(cosy_act_alloc(&b, cond, F, arena));
    const cosy_act *in = mel;
    for (int i = 0; i < HIFT_F0_LAYERS; i++) {
        cosy_act *out = (i % 2) ? &b : &a;
        COSY_TRY(cosy_conv1d_same(h->pool, &h->f0_conv[i], in, out, NULL));
        /* nn.ELU as torch's CPU kernel computes it: exp(x) - 1, not expm1 */
        for (int c = 0; c < cond; c++) {
            float *r = out->data + (size_t)c * out->ld;
            for (int t = 0; t < F; t++) r[t] = r[t] > 0.0f ? r[t] : expf(r[t]) - 1.0f;
        }
        in = out;
    }
    /* classifier: Linear(cond, 1) over the time-major view, bias after the dot product */
    for (int t = 0; t < F; t++) {
        float dot = 0.0f;
        for (int c = 0; c < cond; c++) dot += h->f0_cls_w[c] * in->data[(size_t)c * in->ld + t];
        f0[t] = fabsf(dot + h->f0_cls_b[0]);
    }
    cosy_arena_release(arena, mark);
    return COSY_OK;
}

/* The F0 predictor and the source's random draws depend on nothing of each other. The draws are serial
 * by nature (torch's generator, element by element: ~4 ms per second of audio at the real size) and
 * take about as long as the F0 predictor on one thread, so with two or more threads they run side by
 * side, each on one thread (the F0 predictor's kernels run inline inside the pool's region), instead
 * of one after the other. The draws happen in their own order (hift.h), so the numbers are the same. */
typedef struct {
    const cosy_hift *h;
    const cosy_act *mel;
    float *f0;
    cosy_rng_source *rng;
    hift_draws *draws;
    cosy_arena *arena; /* the F0 predictor's scratch; the draws allocate nothing */
    cosy_status st;
    /* error messages are per thread: each task's is carried back to the caller's thread */
    char f0_message[256], draw_message[256];
} f0_draws_job;

static void f0_draws_task(void *ctx, int task)
{
    f0_draws_job *j = ctx;
    if (task == 0) {
        j->st = f0_predict(j->h, j->mel, j->f0, j->arena);
        if (j->st != COSY_OK) snprintf(j->f0_message, sizeof j->f0_message, "%s", cosy_last_error());
    } else {
        /* a source that fails (a replay of another length) says so in the message and its own status */
        cosy_error_clear();
        hift_source_draw(j->h, j->mel->T, j->rng, j->draws);
        snprintf(j->draw_message, sizeof j->draw_message, "%s", cosy_last_error());
    }
}

static cosy_status f0_and_draws(const cosy_hift *h, const cosy_act *mel, float *f0, cosy_rng_source *rng, hift_draws *draws,
                                cosy_arena *arena)
{
    f0_draws_job j = {.h = h, .mel = mel, .f0 = f0, .rng = rng, .draws = draws, .arena = arena, .st = COSY_OK};
    if (h->pool && cosy_pool_size(h->pool) >= 2) {
        cosy_pool_run(h->pool, 2, f0_draws_task, &j);
    } else {
        f0_draws_task(&j, 0);
        f0_draws_task(&j, 1);
    }
    if (j.st != COSY_OK) return cosy_error(j.st, "%s", j.f0_message);
    if (j.draw_message[0]) (void)cosy_error(COSY_OK, "%s", j.draw_message);
    return COSY_OK;
}

/* HiFTGenerator.decode from conv_pre to conv_post: mel and the source spectrum [2B][L] (real rows,
 * then imaginary rows, dense) -> conv_post output `post` [2B][L] */
static cosy_status generator_forward(const cosy_hift *h, cosy_act *mel, const float *spec, int L, cosy_act *post,
                                     cosy_arena *arena, hift_prof *prof)
{
    const cosy_hparams *hp = h->hp;
    const int nup = hp->n_upsample, nk = hp->n_resblock_kernels;
    cosy_act x;
    COSY_TRY(cosy_act_alloc(&x, hp->hift_base_channels, mel->T, arena));
    COSY_TRY(lrelu_conv(h, &h->conv_pre, -1.0f, mel, &x, arena));
    prof_charge(prof, COSY_HIFT_OP_CONV_PRE);
    for (int i = 0; i < nup; i++) {
        const cosy_conv *up = &h->ups[i], *down = &h->source_downs[i];
        const int last = i == nup - 1, ch = up->cout;
        const int out_len = (x.T - 1) * up->stride - 2 * up->pad + up->k + (last ? 1 : 0);
        cosy_act xs, y, si, r;
        hift_tmp tmp;
        COSY_TRY(cosy_act_alloc(&xs, ch, out_len, arena));   /* the stage output, kept */
        size_t stage_mark = cosy_arena_mark(arena);
        COSY_TRY(cosy_act_alloc(&y, ch, out_len, arena));
        COSY_TRY(cosy_act_alloc(&si, ch, out_len, arena));
        COSY_TRY(cosy_act_alloc(&r, ch, out_len, arena));
        COSY_TRY(tmp_alloc(h, &tmp, ch, out_len, arena));

        /* ups[i](leaky_relu(x)), the activation written in the run type */
        if (h->bf16) {
            size_t mark = cosy_arena_mark(arena);
            cosy_act_bf16 xb;
            COSY_TRY(cosy_act_bf16_alloc(&xb, x.C, x.T, arena));
            cosy_leaky_relu_bf16(h->pool, &xb, &x, hp->lrelu_slope);
            prof_charge(prof, COSY_HIFT_OP_ELEMENTWISE);
            COSY_TRY(cosy_conv1d_transposed_bf16(h->pool, up, &xb, &y, last ? 1 : 0, arena));
            cosy_arena_release(arena, mark);
        } else {
            cosy_leaky_relu_rows(h->pool, x.data, x.ld, x.data, x.ld, x.C, x.T, hp->lrelu_slope);
            prof_charge(prof, COSY_HIFT_OP_ELEMENTWISE);
            COSY_TRY(cosy_conv1d_transposed(h->pool, up, &x, &y, last ? 1 : 0, arena));
        }
        if (last) {
            /* ReflectionPad1d((1, 0)) after the last upsampling: column 0 mirrors column 2 (old column 1) */
            for (int c = 0; c < ch; c++) y.data[(size_t)c * y.ld] = y.data[(size_t)c * y.ld + 2];
        }
        prof_charge(prof, COSY_HIFT_OP_UPSAMPLE);

        /* fusion: x = x + source_resblocks[i](source_downs[i](spectrum)) */
        COSY_TRY(cosy_conv1d_strided(h->pool, down, spec, L, L, &si, arena));
        prof_charge(prof, COSY_HIFT_OP_SOURCE_DOWN);
        COSY_TRY(resblock_forward(h, &h->source_resblocks[i], &si, &si, &tmp, prof, COSY_HIFT_OP_SOURCE_RESBLOCK));
        cosy_rows_add(h->pool, y.data, y.ld, si.data, si.ld, ch, out_len);
        prof_charge(prof, COSY_HIFT_OP_ELEMENTWISE);

        /* the multi-receptive-field fusion: the mean of this stage's resblocks */
        for (int j = 0; j < nk; j++) {
            cosy_hift_op op = (cosy_hift_op)(COSY_HIFT_OP_RESBLOCK + (j < 2 ? j : 2));
            COSY_TRY(resblock_forward(h, &h->resblocks[i * nk + j], &y, j == 0 ? &xs : &r, &tmp, prof, op));
            if (j > 0) cosy_rows_add(h->pool, xs.data, xs.ld, r.data, r.ld, ch, out_len);
            prof_charge(prof, COSY_HIFT_OP_ELEMENTWISE);
        }
        cosy_rows_div(h->pool, xs.data, xs.ld, ch, out_len, (float)nk);
        cosy_arena_release(arena, stage_mark);
        prof_charge(prof, COSY_HIFT_OP_ELEMENTWISE);
        x = xs;
    }
    /* F.leaky_relu with its default slope 0.01, then conv_post */
    if (x.T != L) return cosy_error(COSY_ERR_INTERNAL, "hift: generator gives %d frames, the source spectrum has %d", x.T, L);
    COSY_TRY(lrelu_conv(h, &h->conv_post, 0.01f, &x, post, arena));
    prof_charge(prof, COSY_HIFT_OP_CONV_POST);
    return COSY_OK;
}

/* ---- the STFT pair, split over the pool ------------------------------------------------------- */

#define HIFT_MAX_TASKS 64

/* Three independent passes, each split over the pool: the source's STFT by frames; exp / sin of
 * conv_post's rows to magnitude and phase (HiFTGenerator.decode) by bins; the iSTFT (_istft: magnitude
 * clipped at 1e2) and the clamp to audio_limit by output samples. */
typedef enum { HEAD_STFT, HEAD_POLAR, HEAD_ISTFT } head_pass;

typedef struct {
    const cosy_hift *h;
    head_pass pass;
    const float *source;
    float *spec, *post, *wav;
    float *trace_magnitude, *trace_phase, *trace_istft;
    int T, L, ld, n_tasks;
    cosy_status st[HIFT_MAX_TASKS];
} head_job;

static void head_task(void *ctx, int task)
{
    head_job *j = ctx;
    const cosy_stft *stft = &j->h->stft;
    const int B = stft->n_bins, L = j->L;
    int a, b;
    if (j->pass == HEAD_STFT) {
        cosy_split_range(L, j->n_tasks, task, &a, &b);
        j->st[task] = cosy_stft_forward_frames(stft, j->source, j->T, a, b, j->spec, j->spec + (size_t)B * L, L);
    } else if (j->pass == HEAD_POLAR) {
        cosy_split_range(B, j->n_tasks, task, &a, &b);
        for (int k = a; k < b; k++) {
            float *mag = j->post + (size_t)k * j->ld, *phase = j->post + (size_t)(B + k) * j->ld;
            for (int t = 0; t < L; t++) mag[t] = expf(mag[t]);
            for (int t = 0; t < L; t++) phase[t] = sinf(phase[t]);
            if (j->trace_magnitude) memcpy(j->trace_magnitude + (size_t)k * L, mag, sizeof(float) * (size_t)L);
            if (j->trace_phase) memcpy(j->trace_phase + (size_t)k * L, phase, sizeof(float) * (size_t)L);
            for (int t = 0; t < L; t++) mag[t] = mag[t] < 100.0f ? mag[t] : 100.0f;
        }
    } else {
        cosy_split_range(j->T, j->n_tasks, task, &a, &b);
        j->st[task] = cosy_istft_polar(stft, j->post, j->post + (size_t)B * j->ld, L, j->ld, a, b, j->wav + a);
        if (j->trace_istft) memcpy(j->trace_istft + a, j->wav + a, sizeof(float) * (size_t)(b - a));
        const float lim = j->h->hp->audio_limit;
        for (int i = a; i < b; i++) j->wav[i] = j->wav[i] < -lim ? -lim : (j->wav[i] > lim ? lim : j->wav[i]);
    }
}

static cosy_status head_run(head_job *j, head_pass pass)
{
    j->pass = pass;
    int n = j->h->pool ? cosy_pool_size(j->h->pool) : 1;
    if (n > HIFT_MAX_TASKS) n = HIFT_MAX_TASKS;
    if (pass == HEAD_POLAR && n > j->h->stft.n_bins) n = j->h->stft.n_bins;
    if (j->T < 4096) n = 1; /* a short call is not worth waking threads */
    j->n_tasks = n < 1 ? 1 : n;
    for (int i = 0; i < j->n_tasks; i++) j->st[i] = COSY_OK;
    if (j->n_tasks == 1) head_task(j, 0);
    else cosy_pool_run(j->h->pool, j->n_tasks, head_task, j);
    for (int i = 0; i < j->n_tasks; i++)
        if (j->st[i] != COSY_OK) return j->st[i];
    return COSY_OK;
}

/* ---- inference ------------------------------------------------------------------------------ */

cosy_status cosy_hift_inference_trace(cosy_hift *hift, const float *mel, int n_frames, const float *cache_source,
                                      int n_cache, cosy_rng_source *rng, float *wav_out, float *source_out,
                                      cosy_hift_trace *trace)
{
    if (!hift || !mel || !wav_out) return cosy_error(COSY_ERR_INVALID_ARG, "hift: no model, mel or output buffer");
    if (n_frames < 1) return cosy_error(COSY_ERR_INVALID_ARG, "hift: n_frames %d; need at least one mel frame", n_frames);
    if (!rng || !rng->uniform || !rng->normal)
        return cosy_error(COSY_ERR_INVALID_ARG, "hift: no random source (HiFT draws its initial phases and noise from one)");
    const int S = hift->upsample_scale;
    if (n_frames > INT32_MAX / S / 8) return cosy_error(COSY_ERR_INVALID_ARG, "hift: %d mel frames is too long", n_frames);
    const int T = n_frames * S;
    if (n_cache < 0 || n_cache > T || (n_cache > 0 && !cache_source))
        return cosy_error(COSY_ERR_INVALID_ARG, "hift: cache_source of %d samples for a %d-sample output", n_cache, T);
    const int L = cosy_stft_frames(&hift->stft, T), B = hift->stft.n_bins;

    cosy_arena *arena = NULL;
    int slot = -1;
    COSY_TRY(scratch_acquire(hift, scratch_bytes(hift, n_frames), &arena, &slot));
    cosy_status st = COSY_OK;
    cosy_act mel_act = {0}, post = {0};
    float *f0 = cosy_arena_floats(arena, (size_t)n_frames);
    float *s = cosy_arena_floats(arena, (size_t)T);
    float *spec = cosy_arena_floats(arena, (size_t)2 * B * L);
    if (!f0 || !s || !spec) st = cosy_error(COSY_ERR_NOMEM, "hift: scratch exhausted");
    if (st == COSY_OK) st = cosy_act_alloc(&mel_act, hift->hp->hift_in_channels, n_frames, arena);
    if (st == COSY_OK) st = cosy_act_alloc(&post, 2 * B, L, arena);
    if (st == COSY_OK) act_load(&mel_act, mel, n_frames);

    /* mel -> f0, and beside it the source's random draws; then f0 -> source */
    double t0 = cosy_now_ms();
    hift_prof prof = {.last = t0};
    hift_draws draws;
    const size_t draws_mark = cosy_arena_mark(arena);
    if (st == COSY_OK) st = hift_source_draws_alloc(hift, n_frames, &draws, arena);
    if (st == COSY_OK) st = f0_and_draws(hift, &mel_act, f0, rng, &draws, arena);
    prof_charge(&prof, COSY_HIFT_OP_F0);
    double t1 = cosy_now_ms();
    if (st == COSY_OK) st = hift_source_forward(hift, f0, n_frames, &draws, s, trace ? trace->uv : NULL, arena);
    cosy_arena_release(arena, draws_mark);
    prof_charge(&prof, COSY_HIFT_OP_SOURCE);
    if (st == COSY_OK && trace) {
        if (trace->f0) memcpy(trace->f0, f0, sizeof(float) * (size_t)n_frames);
        if (trace->source_raw) memcpy(trace->source_raw, s, sizeof(float) * (size_t)T);
    }
    /* use cache_source to avoid glitches at chunk joins (HiFTGenerator.inference) */
    if (st == COSY_OK && n_cache > 0) memcpy(s, cache_source, sizeof(float) * (size_t)n_cache);
    if (st == COSY_OK && source_out) memcpy(source_out, s, sizeof(float) * (size_t)T);
    head_job head = {.h = hift, .source = s, .spec = spec, .post = post.data, .wav = wav_out, .T = T, .L = L, .ld = post.ld};
    if (trace) {
        head.trace_magnitude = trace->magnitude;
        head.trace_phase = trace->phase;
        head.trace_istft = trace->istft;
    }
    if (st == COSY_OK) st = head_run(&head, HEAD_STFT);
    prof_charge(&prof, COSY_HIFT_OP_STFT);
    if (st == COSY_OK && trace) {
        if (trace->stft_real) memcpy(trace->stft_real, spec, sizeof(float) * (size_t)B * L);
        if (trace->stft_imag) memcpy(trace->stft_imag, spec + (size_t)B * L, sizeof(float) * (size_t)B * L);
    }
    double t2 = cosy_now_ms();
    prof.last = t2;

    /* mel + source -> conv_post output -> magnitude (rows 0..B-1) / phase (rows B..2B-1), in place */
    if (st == COSY_OK) st = generator_forward(hift, &mel_act, spec, L, &post, arena, &prof);
    double t3 = cosy_now_ms();
    prof.last = t3;
    if (st == COSY_OK) st = head_run(&head, HEAD_POLAR);
    if (st == COSY_OK) st = head_run(&head, HEAD_ISTFT);
    double t4 = cosy_now_ms();
    prof_charge(&prof, COSY_HIFT_OP_ISTFT);
    if (trace) {
        memcpy(trace->op_ms, prof.ms, sizeof prof.ms);
        trace->f0_ms = t1 - t0;
        trace->source_ms = t2 - t1;
        trace->generator_ms = t3 - t2;
        trace->istft_ms = t4 - t3;
    }
    scratch_release(hift, arena, slot);
    return st;
}

cosy_status cosy_hift_inference(cosy_hift *hift, const float *mel, int n_frames, const float *cache_source,
                                int n_cache, cosy_rng_source *rng, float *wav_out, float *source_out)
{
    return cosy_hift_inference_trace(hift, mel, n_frames, cache_source, n_cache, rng, wav_out, source_out, NULL);
}
