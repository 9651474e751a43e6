/*
 * cv3_causal_hift.c — CosyVoice3's CausalHiFTGenerator as a stream (see cv3_causal_hift.h).
 *
 * One push runs, as far as the mel received so far makes each stage final, in steps of at most
 * CV3_BLOCK mel frames (bounded scratch whatever the push's length):
 *   f0      CausalConvRNNF0Predictor in float64: condnet[0] looks f0_first_kernel - 1 frames right
 *           (zeros after the last frame when finalizing), condnet[2..8] are k3 causal; ELU; |Linear|.
 *   source  SineGen2(causal=True): per frame and harmonic h, rad = (f0 (h + 1) / sr) % 1 in float; the
 *           phase is the running double sum of rad rounded to float, then * 2, * pi, * 480 in float
 *           (torch.cumsum on the CPU accumulates in double); 'nearest' upsampling makes it one value per
 *           frame. noise = amp(uv) * sine_waves[n] (the construction-time buffer, from sample 0);
 *           s = tanh(l_linear(sine * uv + noise)). rand_ini never reaches the output (cv3 note §7).
 *   stft    of the source (stft.c), over a sliding window of samples.
 *   decode  conv_pre (looks conv_pre_look_right frames right), then per stage leaky_relu -> nearest
 *           upsampling -> causal conv, (last stage) ReflectionPad1d((1, 0)), + source_resblocks(
 *           source_downs(spectrum)), mean of the causal resblocks; leaky_relu(0.01) -> conv_post;
 *           exp (clipped at 100) / sin -> iSTFT -> clamp, over a sliding window of frames.
 * A causal convolution keeps the last d (k - 1) columns of its input as the next step's left context (zeros
 * at the start: the reference's zero padding); it runs as the "same" kernel of core/conv1d.h over
 * [context | new columns] (an even kernel gets a zero tap appended), keeping the columns it owns.
 * With hift_dtype bf16 (where the CPU multiplies bf16 natively) the generator's convolutions take bf16
 * inputs and weights with f32 sums, as hift.c; the F0 predictor, the source and source_downs stay exact.
 *
 * Non-final calls: the reference computes f0 for F - 3 frames, conv_pre for F - 7 and drops the last 480
 * samples of the iSTFT, emitting (F - 8) * 480 samples; each of those depends on real mel only, so the
 * stream computes every stage as far as real input allows (generator up to F - conv_pre_look_right frames)
 * and emits the same (F - 8) * 480. The finalizing push runs the zero / reflect padded ends.
 */
#include "model/hift/cv3_causal_hift.h"
#include "core/activation.h"
#include "core/arena.h"
#include "core/conv1d.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/construction_rng.h"
#include "model/hift/stft.h"
#include "model/model.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CV3_MAX_LIST COSY_HP_MAX_LIST
#define CV3_F0_LAYERS 5
#define CV3_BLOCK 16            /* mel frames per internal step */
#define CV3_NOISE_CHUNK 240000  /* noise buffer rows generated at a time (10 s) */

/* A causal Conv1d as the "same" kernel: conv.k odd (an even kernel with a zero tap appended), conv.pad =
 * half its span; P input columns of left context, kept per stream at ctx_offset. */
typedef struct {
    cosy_conv conv;
    int P;
    size_t ctx_offset;
} cv3_conv;

typedef struct {
    int ch, k, n;
    cv3_conv conv1[CV3_MAX_LIST], conv2[CV3_MAX_LIST];
    const float *alpha1[CV3_MAX_LIST], *alpha2[CV3_MAX_LIST];
} cv3_resblock;

struct cosy_cv3_hift {
    cosy_model *model;
    const cosy_hparams *hp;
    cosy_pool *pool;
    int H;                       /* harmonics: nb_harmonics + 1 */
    int S;                       /* samples per mel frame */
    int R;                       /* spectrum frames per mel frame: prod(upsample_rates) */
    int nup, nk, B;              /* upsampling stages, resblock kernels, STFT bins */
    int q[CV3_MAX_LIST];         /* frames per mel frame after ups[i] */
    int down_u[CV3_MAX_LIST];    /* source_downs[i] stride (1: a k1 convolution) */
    int umax;
    int bf16;                    /* the generator's convolutions run in bf16 (packed weights; f0 and source_downs f32) */
    /* f0 predictor (float64 arithmetic on the f32 weights) */
    int f0_C, f0_k0;
    const float *f0_w[CV3_F0_LAYERS], *f0_b[CV3_F0_LAYERS];
    const float *f0_cls_w, *f0_cls_b;
    const float *merge_w, *merge_b;
    /* generator */
    cv3_conv conv_pre, conv_post;
    cv3_conv ups[CV3_MAX_LIST];
    cosy_conv source_downs[CV3_MAX_LIST]; /* no padding: the stream reads its left context from the spectrum window */
    cv3_resblock source_resblocks[CV3_MAX_LIST];
    cv3_resblock resblocks[CV3_MAX_LIST * CV3_MAX_LIST];
    size_t ctx_floats;           /* left-context floats one stream keeps */
    size_t arena_bytes;          /* scratch of one step */
    cosy_stft stft;
    /* the construction-time noise buffer [rows][H], filled up to noise_len, never moved */
    pthread_mutex_t noise_lock;
    float *noise;
    int64_t noise_len, noise_cap;
    cosy_torch_rng noise_rng;
};

/* ---- loading -------------------------------------------------------------------------------- */

static cosy_status get_weight(cosy_cv3_hift *h, const char *name, int64_t d0, int64_t d1, int64_t d2, const float **w)
{
    const cosy_tensor *t;
    COSY_TRY(cosy_model_tensor(h->model, name, &t));
    int ok = d2 > 0 ? (t->ndim == 3 && t->shape[0] == d0 && t->shape[1] == d1 && t->shape[2] == d2)
                    : d1 > 0 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1) : (t->ndim == 1 && t->shape[0] == d0);
    if (!ok) return cosy_error(COSY_ERR_SHAPE, "cv3 hift: %s is not [%lld, %lld, %lld]", name, (long long)d0, (long long)d1, (long long)d2);
    return cosy_model_f32(h->model, name, w);
}

static cosy_status load_causal(cosy_cv3_hift *h, cv3_conv *c, int cout, int cin, int k, int dilation, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* a causal Conv1d of the generator, in the run type (bf16: tiles packed once here, core/conv1d.h) */
static cosy_status load_causal(cosy_cv3_hift *h, cv3_conv *c, int cout, int cin, int k, int dilation, const char *fmt, ...)
{
    char base[160], name[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    const float *w, *b;
    snprintf(name, sizeof name, "hift.%s.weight", base);
    COSY_TRY(get_weight(h, name, cout, cin, k, &w));
    snprintf(name, sizeof name, "hift.%s.bias", base);
    COSY_TRY(get_weight(h, name, cout, 0, 0, &b));
    memset(c, 0, sizeof *c);
    int kk = k;
    if (k % 2 == 0) {
        if (dilation != 1) return cosy_error(COSY_ERR_UNSUPPORTED, "cv3 hift: %s: even kernel %d with dilation %d", base, k, dilation);
        kk = k + 1;
        float *pw = cosy_model_alloc(h->model, sizeof(float) * (size_t)cout * cin * kk);
        if (!pw) return cosy_error(COSY_ERR_NOMEM, "cv3 hift: out of memory padding %s", base);
        for (size_t r = 0; r < (size_t)cout * cin; r++) {
            memcpy(pw + r * kk, w + r * k, sizeof(float) * (size_t)k);
            pw[r * kk + k] = 0.0f;
        }
        w = pw;
    }
    int pad = dilation * (kk - 1) / 2;
    if (pad > COSY_ACT_PAD) return cosy_error(COSY_ERR_UNSUPPORTED, "cv3 hift: %s: padding %d > %d", base, pad, COSY_ACT_PAD);
    c->conv = (cosy_conv){.w = w, .b = b, .cout = cout, .cin = cin, .k = kk, .stride = 1, .pad = pad, .dilation = dilation};
    if (h->bf16) {
        uint16_t *packed = cosy_model_alloc(h->model, sizeof(uint16_t) * cosy_conv1d_packed_bf16_elems(&c->conv));
        if (!packed) return cosy_error(COSY_ERR_NOMEM, "cv3 hift: out of memory packing %s", base);
        COSY_TRY(cosy_conv1d_pack_bf16(packed, &c->conv, w, COSY_DTYPE_F32));
        c->conv.w_bf16 = packed;
    }
    c->P = dilation * (k - 1);
    c->ctx_offset = h->ctx_floats;
    h->ctx_floats += (size_t)cin * c->P;
    return COSY_OK;
}

static cosy_status load_resblock(cosy_cv3_hift *h, cv3_resblock *rb, int ch, int k, const int *dil, int n, const char *prefix)
{
    rb->ch = ch, rb->k = k, rb->n = n;
    for (int j = 0; j < n; j++) {
        COSY_TRY(load_causal(h, &rb->conv1[j], ch, ch, k, dil[j], "%s.convs1.%d", prefix, j));
        COSY_TRY(load_causal(h, &rb->conv2[j], ch, ch, k, 1, "%s.convs2.%d", prefix, j));
        COSY_TRY(cosy_model_f32f(h->model, &rb->alpha1[j], "hift.%s.activations1.%d.alpha", prefix, j));
        COSY_TRY(cosy_model_f32f(h->model, &rb->alpha2[j], "hift.%s.activations2.%d.alpha", prefix, j));
    }
    return COSY_OK;
}

static cosy_status cv3_load(cosy_cv3_hift *h)
{
    const cosy_hparams *hp = h->hp;
    if (hp->family != COSY_FAMILY_COSYVOICE3 || !hp->hift_causal)
        return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift: not a CosyVoice3 model (CausalHiFTGenerator)");
    const int base = hp->hift_base_channels, nup = hp->n_upsample;
    if (nup < 1 || nup > CV3_MAX_LIST || hp->n_source_resblocks != nup || hp->f0_num_class != 1 || hp->hift_nb_harmonics < 0 ||
        hp->f0_first_kernel < 1 || hp->conv_pre_look_right < 0)
        return cosy_error(COSY_ERR_UNSUPPORTED, "cv3 hift: %d upsampling stages, %d source resblocks, %d f0 classes", nup,
                          hp->n_source_resblocks, hp->f0_num_class);
    h->H = hp->hift_nb_harmonics + 1;
    h->nup = nup;
    h->nk = hp->n_resblock_kernels;
    h->R = 1;
    for (int i = 0; i < nup; i++) {
        h->R *= hp->upsample_rates[i];
        h->q[i] = h->R;
    }
    h->S = h->R * hp->istft_hop;
    if (h->q[nup - 1] < 2) return cosy_error(COSY_ERR_UNSUPPORTED, "cv3 hift: upsampling by %d", h->q[nup - 1]);
    COSY_TRY(cosy_stft_init(&h->stft, hp->istft_n_fft, hp->istft_hop));
    h->B = h->stft.n_bins;
    const int n2 = 2 * h->B;
    if (n2 != hp->istft_n_fft + 2) return cosy_error(COSY_ERR_INTERNAL, "cv3 hift: stft bins");

    /* F0 predictor: condnet.0 [C, 80, k0] (right-causal), condnet.{2,4,6,8} [C, C, 3], classifier [1, C] */
    const int C = hp->f0_cond_channels;
    h->f0_C = C;
    h->f0_k0 = hp->f0_first_kernel;
    for (int i = 0; i < CV3_F0_LAYERS; i++) {
        char name[96];
        snprintf(name, sizeof name, "hift.f0_predictor.condnet.%d.weight", 2 * i);
        COSY_TRY(get_weight(h, name, C, i == 0 ? hp->hift_in_channels : C, i == 0 ? h->f0_k0 : 3, &h->f0_w[i]));
        snprintf(name, sizeof name, "hift.f0_predictor.condnet.%d.bias", 2 * i);
        COSY_TRY(get_weight(h, name, C, 0, 0, &h->f0_b[i]));
    }
    COSY_TRY(get_weight(h, "hift.f0_predictor.classifier.weight", 1, C, 0, &h->f0_cls_w));
    COSY_TRY(get_weight(h, "hift.f0_predictor.classifier.bias", 1, 0, 0, &h->f0_cls_b));
    COSY_TRY(get_weight(h, "hift.m_source.l_linear.weight", 1, h->H, 0, &h->merge_w));
    COSY_TRY(get_weight(h, "hift.m_source.l_linear.bias", 1, 0, 0, &h->merge_b));

    /* conv_pre: kernel look_right + 1 looking right; loaded as a causal conv whose "context" is the frame itself */
    COSY_TRY(load_causal(h, &h->conv_pre, base, hp->hift_in_channels, hp->conv_pre_look_right + 1, 1, "conv_pre"));
    h->ctx_floats -= (size_t)hp->hift_in_channels * h->conv_pre.P; /* it reads the mel window, keeps no context */
    for (int i = 0; i < nup; i++)
        COSY_TRY(load_causal(h, &h->ups[i], base >> (i + 1), base >> i, hp->upsample_kernel_sizes[i], 1, "ups.%d", i));
    /* downsample_rates = [1] + upsample_rates[::-1][:-1], cumulated, reversed: source_downs[i] brings the
     * spectrum to the rate after ups[i] (CausalConv1dDownSample(k 2u, stride u, left pad u - 1), or a k1 conv) */
    h->umax = 1;
    for (int i = 0; i < nup; i++) {
        int u = h->R / h->q[i];
        h->down_u[i] = u;
        if (u > h->umax) h->umax = u;
        const float *w, *b;
        char name[96];
        int k = u == 1 ? 1 : 2 * u;
        snprintf(name, sizeof name, "hift.source_downs.%d.weight", i);
        COSY_TRY(get_weight(h, name, base >> (i + 1), n2, k, &w));
        snprintf(name, sizeof name, "hift.source_downs.%d.bias", i);
        COSY_TRY(get_weight(h, name, base >> (i + 1), 0, 0, &b));
        h->source_downs[i] = (cosy_conv){.w = w, .b = b, .cout = base >> (i + 1), .cin = n2, .k = k, .stride = u, .pad = 0, .dilation = 1};
        char prefix[64];
        snprintf(prefix, sizeof prefix, "source_resblocks.%d", i);
        COSY_TRY(load_resblock(h, &h->source_resblocks[i], base >> (i + 1), hp->source_resblock_kernel_sizes[i],
                               hp->source_resblock_dilations + i * hp->n_source_dilations, hp->n_source_dilations, prefix));
        for (int j = 0; j < h->nk; j++) {
            snprintf(prefix, sizeof prefix, "resblocks.%d", i * h->nk + j);
            COSY_TRY(load_resblock(h, &h->resblocks[i * h->nk + j], base >> (i + 1), hp->resblock_kernel_sizes[j],
                                   hp->resblock_dilations + j * hp->n_resblock_dilations, hp->n_resblock_dilations, prefix));
        }
    }
    COSY_TRY(load_causal(h, &h->conv_post, n2, base >> nup, 7, 1, "conv_post"));

    /* scratch of one step: per stage at most ~12 live activations of the widest shape, plus conv_pre's */
    size_t floats = 4 * cosy_act_floats(hp->hift_in_channels > base ? hp->hift_in_channels : base, CV3_BLOCK + 2 * COSY_ACT_PAD);
    for (int i = 0; i < nup; i++) {
        int ch = (base >> i) > n2 ? (base >> i) : n2, cols = h->q[i] * CV3_BLOCK + 1 + 2 * COSY_ACT_PAD;
        floats += 12 * cosy_act_floats(ch, cols) + (h->bf16 ? cosy_act_bf16_elems(ch, cols) / 2 + 64 : 0) + (size_t)n2 * (2 * h->down_u[i] + 1) * (size_t)cols;
    }
    h->arena_bytes = floats * sizeof(float) + 256 * 64;

    h->noise_cap = cosy_cv3_source_buffer_len(hp);
    h->noise = malloc(sizeof(float) * (size_t)h->noise_cap * h->H); /* pages are touched as it fills */
    if (!h->noise) return cosy_error(COSY_ERR_NOMEM, "cv3 hift: out of memory for the noise buffer");
    return cosy_cv3_source_rng(hp, NULL, &h->noise_rng);
}

static void cv3_destroy(void *state)
{
    cosy_cv3_hift *h = state;
    if (!h) return;
    free(h->noise);
    pthread_mutex_destroy(&h->noise_lock);
    free(h);
}

static cosy_status cv3_create(cosy_model *m, void **out)
{
    cosy_cv3_hift *h = calloc(1, sizeof *h);
    if (!h) return cosy_error(COSY_ERR_NOMEM, "cv3 hift: out of memory");
    pthread_mutex_init(&h->noise_lock, NULL);
    h->model = m;
    h->hp = &m->hp;
    h->pool = m->pool;
    /* as hift.c: bf16 only where the CPU multiplies bf16 natively */
    h->bf16 = m->params.hift_dtype == COSY_DTYPE_BF16 && cosy_conv1d_bf16_native();
    cosy_status st = cv3_load(h);
    if (st != COSY_OK) {
        cv3_destroy(h);
        return st;
    }
    *out = h;
    return COSY_OK;
}

static const cosy_module_def cv3_module = {"cv3_hift", cv3_create, cv3_destroy};

cosy_status cosy_cv3_hift_get(cosy_model *model, cosy_cv3_hift **out)
{
    if (!model || !out) return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift: no model");
    void *state;
    COSY_TRY(cosy_model_module(model, &cv3_module, &state));
    *out = state;
    return COSY_OK;
}

int cosy_cv3_hift_samples_per_frame(const cosy_cv3_hift *h) { return h->S; }
cosy_dtype cosy_cv3_hift_dtype(const cosy_cv3_hift *h) { return h->bf16 ? COSY_DTYPE_BF16 : COSY_DTYPE_F32; }
int cosy_cv3_hift_held_frames(const cosy_cv3_hift *h) { return h->f0_k0 - 1 + h->conv_pre.P + 1; }

cosy_status cosy_cv3_hift_noise(cosy_cv3_hift *h, int64_t n, const float **out)
{
    if (n < 0 || n > h->noise_cap)
        return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift: %lld samples of source noise asked; the official buffer holds %lld (%d s)",
                          (long long)n, (long long)h->noise_cap, (int)(h->noise_cap / h->hp->sample_rate));
    pthread_mutex_lock(&h->noise_lock);
    if (n > h->noise_len) {
        int64_t to = h->noise_len + CV3_NOISE_CHUNK;
        if (to < n) to = n;
        if (to > h->noise_cap) to = h->noise_cap;
        cosy_torch_rand(&h->noise_rng, h->noise + (size_t)h->noise_len * h->H, (to - h->noise_len) * h->H);
        h->noise_len = to;
    }
    pthread_mutex_unlock(&h->noise_lock);
    *out = h->noise;
    return COSY_OK;
}

/* ---- sliding windows -------------------------------------------------------------------------- */

/* rows x columns [base, end) of a signal, column t at data[r * cap + t - base] */
typedef struct {
    float *data;
    int rows, cap;
    int64_t base, end;
} cv3_window;

static cosy_status window_reserve(cv3_window *w, int64_t extra)
{
    int64_t need = w->end - w->base + extra;
    if (need <= w->cap) return COSY_OK;
    int cap = w->cap ? w->cap : 256;
    while (cap < need) cap *= 2;
    float *d = calloc((size_t)w->rows * cap, sizeof(float));
    if (!d) return cosy_error(COSY_ERR_NOMEM, "cv3 hift: out of memory for a %d x %d window", w->rows, cap);
    for (int r = 0; r < w->rows && w->data; r++) memcpy(d + (size_t)r * cap, w->data + (size_t)r * w->cap, sizeof(float) * (size_t)(w->end - w->base));
    free(w->data);
    w->data = d;
    w->cap = cap;
    return COSY_OK;
}

static void window_trim(cv3_window *w, int64_t keep_from)
{
    if (keep_from <= w->base) return;
    if (keep_from > w->end) keep_from = w->end;
    int64_t n = w->end - keep_from, drop = keep_from - w->base;
    for (int r = 0; r < w->rows; r++) memmove(w->data + (size_t)r * w->cap, w->data + (size_t)r * w->cap + drop, sizeof(float) * (size_t)n);
    w->base = keep_from;
}

static inline float *window_col(const cv3_window *w, int r, int64_t t) { return w->data + (size_t)r * w->cap + (t - w->base); }

/* ---- the stream ------------------------------------------------------------------------------- */

struct cosy_cv3_hift_stream {
    cosy_cv3_hift *h;
    cosy_arena arena;
    float *ctx;                  /* left contexts of the causal convolutions (cv3_conv.ctx_offset) */
    double *f0_ctx;              /* [4][C][2]: condnet 2..8's left context */
    double *f0_buf;              /* the F0 predictor's step buffers */
    double phase_sum[64];        /* running cumsum of rad per harmonic */
    float *f0, *phase;           /* per frame of the utterance: f0, and the phase per harmonic [frames][H] */
    int64_t f0_cap_frames;
    cv3_window mel;              /* [80] mel received, from the first frame still needed */
    cv3_window src;              /* [1] source samples */
    cv3_window spec;             /* [2B] source spectrum (real rows, imaginary rows); negative frames are zeros */
    cv3_window post;             /* [2B] magnitude (clipped) and phase rows of conv_post's output */
    int64_t M;                   /* mel frames received */
    int64_t n_f0;                /* f0 frames (= source frames) computed */
    int64_t G;                   /* mel frames the generator has finished */
    int64_t emitted;             /* samples emitted */
    float *trace_f0, *trace_source;
    int64_t trace_f0_cap, trace_source_cap;
};

void cosy_cv3_hift_stream_reset(cosy_cv3_hift_stream *s)
{
    const cosy_cv3_hift *h = s->h;
    memset(s->ctx, 0, sizeof(float) * (h->ctx_floats ? h->ctx_floats : 1));
    memset(s->f0_ctx, 0, sizeof(double) * 4 * (size_t)h->f0_C * 2);
    memset(s->phase_sum, 0, sizeof s->phase_sum);
    s->M = s->n_f0 = s->G = s->emitted = 0;
    s->mel.base = s->mel.end = 0;
    s->src.base = s->src.end = 0;
    s->post.base = s->post.end = 0;
    /* frames before 0 are the downsampling convolutions' zero padding */
    s->spec.base = -h->umax;
    s->spec.end = 0;
    for (int r = 0; r < s->spec.rows; r++) memset(s->spec.data + (size_t)r * s->spec.cap, 0, sizeof(float) * (size_t)h->umax);
}

void cosy_cv3_hift_stream_free(cosy_cv3_hift_stream *s)
{
    if (!s) return;
    cosy_arena_free(&s->arena);
    free(s->ctx);
    free(s->f0_ctx);
    free(s->f0_buf);
    free(s->f0);
    free(s->phase);
    free(s->mel.data);
    free(s->src.data);
    free(s->spec.data);
    free(s->post.data);
    free(s);
}

cosy_status cosy_cv3_hift_stream_create(cosy_cv3_hift *h, cosy_cv3_hift_stream **out)
{
    if (!h || !out) return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift stream: no vocoder");
    if (h->H > 64) return cosy_error(COSY_ERR_UNSUPPORTED, "cv3 hift: %d harmonics", h->H);
    cosy_cv3_hift_stream *s = calloc(1, sizeof *s);
    if (!s) return cosy_error(COSY_ERR_NOMEM, "cv3 hift stream: out of memory");
    s->h = h;
    const int C = h->f0_C, cols = CV3_BLOCK + h->f0_k0 + 2;
    s->ctx = calloc(h->ctx_floats ? h->ctx_floats : 1, sizeof(float));
    s->f0_ctx = calloc(4 * (size_t)C * 2, sizeof(double));
    s->f0_buf = malloc(sizeof(double) * ((size_t)h->hp->hift_in_channels * cols + 2 * (size_t)C * cols));
    s->mel.rows = h->hp->hift_in_channels;
    s->src.rows = 1;
    s->spec.rows = 2 * h->B;
    s->post.rows = 2 * h->B;
    cosy_status st = (!s->ctx || !s->f0_ctx || !s->f0_buf) ? cosy_error(COSY_ERR_NOMEM, "cv3 hift stream: out of memory") : COSY_OK;
    if (st == COSY_OK) st = cosy_arena_init(&s->arena, h->arena_bytes);
    if (st == COSY_OK) st = window_reserve(&s->spec, (int64_t)h->R * (2 * CV3_BLOCK + 8) + 2 * h->umax);
    if (st == COSY_OK) st = window_reserve(&s->post, (int64_t)h->R * (CV3_BLOCK + 4) + 16);
    if (st == COSY_OK) st = window_reserve(&s->src, (int64_t)h->S * (CV3_BLOCK + 2) + 64);
    if (st != COSY_OK) {
        cosy_cv3_hift_stream_free(s);
        return st;
    }
    cosy_cv3_hift_stream_reset(s);
    *out = s;
    return COSY_OK;
}

void cosy_cv3_hift_stream_trace(cosy_cv3_hift_stream *s, float *f0, int64_t f0_cap, float *source, int64_t source_cap)
{
    s->trace_f0 = f0;
    s->trace_f0_cap = f0 ? f0_cap : 0;
    s->trace_source = source;
    s->trace_source_cap = source ? source_cap : 0;
}

int64_t cosy_cv3_hift_stream_max_samples(const cosy_cv3_hift_stream *s, int n_frames)
{
    return (s->M + n_frames) * (int64_t)s->h->S - s->emitted;
}

/* the inner loops below are multiply-adds in a fixed order per output: vectorising them over time changes no
 * rounding (no contraction to FMA at the baseline target) */
#if defined(__GNUC__) && !defined(__clang__)
#define CV3_VECTORIZE __attribute__((optimize("O3")))
#else
#define CV3_VECTORIZE /* clang vectorises these at -O2 already */
#endif

/* ---- f0 (float64) ------------------------------------------------------------------------------ */

/* y[c][t] = b[c] + sum over ci, j of w[c][ci][j] x[ci][t + j], t in [0, n), in double; then ELU */
typedef struct {
    const float *w, *b;
    const double *x;
    double *y;
    int cout, cin, k, n, ldx, ldy, n_tasks;
} f0_conv_job;

static CV3_VECTORIZE void f0_conv_task(void *ctx, int task)
{
    const f0_conv_job *j = ctx;
    int c0, c1;
    cosy_split_range(j->cout, j->n_tasks, task, &c0, &c1);
    for (int c = c0; c < c1; c++) {
        double *y = j->y + (size_t)c * j->ldy;
        for (int t = 0; t < j->n; t++) y[t] = j->b[c];
        for (int ci = 0; ci < j->cin; ci++) {
            const float *w = j->w + ((size_t)c * j->cin + ci) * j->k;
            const double *x = j->x + (size_t)ci * j->ldx;
            for (int q = 0; q < j->k; q++) {
                const double wq = w[q];
                for (int t = 0; t < j->n; t++) y[t] += wq * x[t + q];
            }
        }
        /* nn.ELU on the CPU: exp(x) - 1 for x <= 0 */
        for (int t = 0; t < j->n; t++) y[t] = y[t] > 0.0 ? y[t] : exp(y[t]) - 1.0;
    }
}

static void f0_conv(const cosy_cv3_hift *h, f0_conv_job *j)
{
    int n = h->pool ? cosy_pool_size(h->pool) : 1;
    if (n > j->cout) n = j->cout;
    j->n_tasks = n < 1 ? 1 : n;
    cosy_pool_run(h->pool, j->n_tasks, f0_conv_task, j);
}

/* f0 of frames [a, b) (b - a <= CV3_BLOCK): condnet[0] over mel a .. b + k0 - 2 (zeros past M), then the
 * four causal k3 layers with their contexts, |classifier| -> s->f0[a..b) */
static void f0_step(cosy_cv3_hift_stream *s, int64_t a, int64_t b)
{
    const cosy_cv3_hift *h = s->h;
    const int C = h->f0_C, k0 = h->f0_k0, n = (int)(b - a), n_mels = s->mel.rows;
    const int ld = CV3_BLOCK + k0 + 2;
    double *melD = s->f0_buf, *buf0 = melD + (size_t)n_mels * ld, *buf1 = buf0 + (size_t)C * ld;
    for (int c = 0; c < n_mels; c++)
        for (int t = 0; t < n + k0 - 1; t++) {
            int64_t g = a + t;
            melD[(size_t)c * ld + t] = g < s->M ? (double)*window_col(&s->mel, c, g) : 0.0;
        }
    f0_conv_job j = {.w = h->f0_w[0], .b = h->f0_b[0], .x = melD, .y = buf0, .cout = C, .cin = n_mels, .k = k0, .n = n, .ldx = ld, .ldy = ld};
    f0_conv(h, &j);
    double *in = buf0, *out = buf1;
    for (int l = 1; l < CV3_F0_LAYERS; l++) {
        /* [context (2) | in] into out's rows, then the conv reads out and writes in */
        double *ctx = s->f0_ctx + (size_t)(l - 1) * C * 2;
        for (int c = 0; c < C; c++) {
            double *row = out + (size_t)c * ld;
            row[0] = ctx[2 * c];
            row[1] = ctx[2 * c + 1];
            memcpy(row + 2, in + (size_t)c * ld, sizeof(double) * (size_t)n);
            ctx[2 * c] = row[n];
            ctx[2 * c + 1] = row[n + 1];
        }
        f0_conv_job jl = {.w = h->f0_w[l], .b = h->f0_b[l], .x = out, .y = in, .cout = C, .cin = C, .k = 3, .n = n, .ldx = ld, .ldy = ld};
        f0_conv(h, &jl);
    }
    for (int t = 0; t < n; t++) {
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)h->f0_cls_w[c] * in[(size_t)c * ld + t];
        s->f0[a + t] = (float)fabs(dot + (double)h->f0_cls_b[0]);
    }
}

/* ---- source ------------------------------------------------------------------------------------ */

/* torch.nn.Upsample(scale_factor=S, mode='nearest') source frame of sample n: floor(n * (float)(1/S))
 * (as hift_source.c); the reference applies it to f0 (voicing, noise amplitude) and to the phase */
static inline int64_t nearest_frame(float scale, int64_t n, int64_t frames)
{
    int64_t i = (int64_t)floorf((float)n * scale);
    return i < frames - 1 ? i : frames - 1;
}

/* source samples of frames [a, b) into the source window (phase and f0 of the frames first) */
static cosy_status source_step(cosy_cv3_hift_stream *s, int64_t a, int64_t b)
{
    cosy_cv3_hift *h = s->h;
    const cosy_hparams *hp = h->hp;
    const int H = h->H, S = h->S;
    const float sr = (float)hp->sample_rate;
    for (int64_t d = a; d < b; d++)
        for (int k = 0; k < H; k++) {
            /* rad = (f0 (k + 1) / sr) % 1; linear x1/S downsampling reads two samples of the same frame */
            float r = fmodf(s->f0[d] * (float)(k + 1) / sr, 1.0f);
            s->phase_sum[k] += (double)r;
            float p = (float)s->phase_sum[k] * 2.0f;
            p = p * (float)M_PI;
            s->phase[(size_t)d * H + k] = p * (float)S;
        }
    const float *noise;
    COSY_TRY(cosy_cv3_hift_noise(h, b * S, &noise));
    COSY_TRY(window_reserve(&s->src, (b - a) * S));
    const float scale = (float)(1.0 / (double)S), amp_unvoiced = hp->nsf_alpha / 3.0f;
    float sines[64];
    int64_t sine_frame = -1;
    float *dst = window_col(&s->src, 0, s->src.end);
    for (int64_t n = a * S; n < b * S; n++) {
        /* the reference's frame count is that call's: frames up to b exist here, later ones do not matter */
        int64_t d = nearest_frame(scale, n, b);
        if (d != sine_frame) {
            for (int k = 0; k < H; k++) sines[k] = sinf(s->phase[(size_t)d * H + k]) * hp->nsf_alpha;
            sine_frame = d;
        }
        const float uv = s->f0[d] > hp->nsf_voiced_threshold ? 1.0f : 0.0f;
        const float amp = uv * hp->nsf_sigma + (1.0f - uv) * amp_unvoiced;
        const float *z = noise + (size_t)n * H;
        float dot = 0.0f;
        for (int k = 0; k < H; k++) dot = fmaf(h->merge_w[k], sines[k] * uv + amp * z[k], dot);
        dst[n - a * S] = tanhf(dot + h->merge_b[0]);
    }
    if (s->trace_source)
        for (int64_t n = a * S; n < b * S && n < s->trace_source_cap; n++) s->trace_source[n] = dst[n - a * S];
    if (s->trace_f0)
        for (int64_t d = a; d < b && d < s->trace_f0_cap; d++) s->trace_f0[d] = s->f0[d];
    s->src.end += (b - a) * S;
    return COSY_OK;
}

/* ---- generator ------------------------------------------------------------------------------- */

static cosy_status act_new(cosy_act *a, int C, int T, cosy_arena *arena) { return cosy_act_alloc(a, C, T, arena); }

/* Y = "same" conv of X in the run type (bf16: X rounded to bf16 first) */
static cosy_status conv_same(const cosy_cv3_hift *h, const cosy_conv *c, const cosy_act *X, cosy_act *Y, cosy_arena *arena)
{
    if (!h->bf16) return cosy_conv1d_same(h->pool, c, X, Y, NULL);
    size_t mark = cosy_arena_mark(arena);
    cosy_act_bf16 Xb;
    COSY_TRY(cosy_act_bf16_alloc(&Xb, X->C, X->T, arena));
    cosy_act_to_bf16(h->pool, &Xb, X);
    cosy_status st = cosy_conv1d_same_bf16(h->pool, c, &Xb, Y, NULL);
    cosy_arena_release(arena, mark);
    return st;
}

/* out (allocated, c.cout x in->T) = causal conv of in, with the stream's left context */
static cosy_status causal_apply(cosy_cv3_hift_stream *s, const cv3_conv *c, const cosy_act *in, cosy_act *out)
{
    const cosy_cv3_hift *h = s->h;
    cosy_arena *arena = &s->arena;
    const int P = c->P, n = in->T, cin = c->conv.cin;
    size_t mark = cosy_arena_mark(arena);
    cosy_act X, Y;
    COSY_TRY(act_new(&X, cin, P + n, arena));
    COSY_TRY(act_new(&Y, c->conv.cout, P + n, arena));
    float *ctx = s->ctx + c->ctx_offset;
    for (int r = 0; r < cin; r++) {
        float *x = X.data + (size_t)r * X.ld;
        memcpy(x, ctx + (size_t)r * P, sizeof(float) * (size_t)P);
        memcpy(x + P, in->data + (size_t)r * in->ld, sizeof(float) * (size_t)n);
        memcpy(ctx + (size_t)r * P, x + n, sizeof(float) * (size_t)P);
    }
    COSY_TRY(conv_same(h, &c->conv, &X, &Y, arena));
    const int off = c->conv.pad;
    for (int r = 0; r < c->conv.cout; r++) memcpy(out->data + (size_t)r * out->ld, Y.data + (size_t)r * Y.ld + off, sizeof(float) * (size_t)n);
    cosy_arena_release(arena, mark);
    return COSY_OK;
}

/* out (allocated like x) = ResBlock(x): for each dilation, x += conv2(snake2(conv1(snake1(x)))) */
static cosy_status resblock_apply(cosy_cv3_hift_stream *s, const cv3_resblock *rb, const cosy_act *x, cosy_act *out)
{
    const cosy_cv3_hift *h = s->h;
    cosy_arena *arena = &s->arena;
    const int C = x->C, n = x->T;
    for (int r = 0; r < C; r++) memcpy(out->data + (size_t)r * out->ld, x->data + (size_t)r * x->ld, sizeof(float) * (size_t)n);
    size_t mark = cosy_arena_mark(arena);
    cosy_act u, t;
    COSY_TRY(act_new(&u, C, n, arena));
    COSY_TRY(act_new(&t, C, n, arena));
    for (int j = 0; j < rb->n; j++) {
        cosy_snake_rows(h->pool, u.data, u.ld, out->data, out->ld, C, n, rb->alpha1[j]);
        COSY_TRY(causal_apply(s, &rb->conv1[j], &u, &t));
        cosy_snake_rows(h->pool, u.data, u.ld, t.data, t.ld, C, n, rb->alpha2[j]);
        COSY_TRY(causal_apply(s, &rb->conv2[j], &u, &t));
        cosy_rows_add(h->pool, out->data, out->ld, t.data, t.ld, C, n);
    }
    cosy_arena_release(arena, mark);
    return COSY_OK;
}

/* y = source_downs conv (stride u, no padding) of spectrum columns x[.][0 .. (y->T - 1) u + k): im2col, then
 * per output bias + the products in one fixed order (ci, tap), whatever the number of columns, so a
 * stream's pieces round exactly as the one-call run (an sgemm's blocking would depend on the width) */
typedef struct {
    const cosy_conv *c;
    const float *cols;
    cosy_act *y;
    int n_tasks;
} down_job;

static CV3_VECTORIZE void down_task(void *ctx, int task)
{
    const down_job *j = ctx;
    const cosy_conv *c = j->c;
    const int rows = c->cin * c->k, n = j->y->T;
    int c0, c1;
    cosy_split_range(c->cout, j->n_tasks, task, &c0, &c1);
    for (int co = c0; co < c1; co++) {
        float *y = j->y->data + (size_t)co * j->y->ld;
        const float *w = c->w + (size_t)co * rows;
        for (int t = 0; t < n; t++) y[t] = c->b[co];
        for (int r = 0; r < rows; r++) {
            const float wr = w[r], *x = j->cols + (size_t)r * n;
            for (int t = 0; t < n; t++) y[t] += wr * x[t];
        }
    }
}

static cosy_status down_apply(cosy_cv3_hift_stream *s, const cosy_conv *c, const float *x, int ldx, cosy_act *y)
{
    cosy_arena *arena = &s->arena;
    const int n = y->T;
    size_t mark = cosy_arena_mark(arena);
    float *cols = cosy_arena_floats(arena, (size_t)c->cin * c->k * n);
    if (!cols) return cosy_error(COSY_ERR_NOMEM, "cv3 hift: scratch exhausted (source_downs)");
    for (int ci = 0; ci < c->cin; ci++)
        for (int k = 0; k < c->k; k++) {
            float *cr = cols + ((size_t)ci * c->k + k) * n;
            const float *xr = x + (size_t)ci * ldx + k;
            for (int t = 0; t < n; t++) cr[t] = xr[(size_t)t * c->stride];
        }
    down_job j = {.c = c, .cols = cols, .y = y};
    int parts = s->h->pool ? cosy_pool_size(s->h->pool) : 1;
    j.n_tasks = parts > c->cout ? c->cout : parts;
    cosy_pool_run(s->h->pool, j.n_tasks, down_task, &j);
    cosy_arena_release(arena, mark);
    return COSY_OK;
}

/* the generator over mel frames [G, G + D): conv_pre .. conv_post; appends to the post window */
static cosy_status generator_step(cosy_cv3_hift_stream *s, int D)
{
    const cosy_cv3_hift *h = s->h;
    const cosy_hparams *hp = h->hp;
    cosy_arena *arena = &s->arena;
    cosy_arena_reset(arena);
    const int64_t G = s->G;
    const int n_mels = s->mel.rows, B = h->B, n2 = 2 * B;

    /* conv_pre: output t reads mel t .. t + P (zeros past the last frame: only when finalizing) */
    cosy_act X, x;
    const int P = h->conv_pre.P;
    COSY_TRY(act_new(&X, n_mels, D + P, arena));
    for (int c = 0; c < n_mels; c++)
        for (int t = 0; t < D + P; t++) X.data[(size_t)c * X.ld + t] = G + t < s->M ? *window_col(&s->mel, c, G + t) : 0.0f;
    {
        cosy_act Y;
        COSY_TRY(act_new(&x, h->conv_pre.conv.cout, D, arena));
        size_t mark = cosy_arena_mark(arena);
        COSY_TRY(act_new(&Y, h->conv_pre.conv.cout, D + P, arena));
        COSY_TRY(conv_same(h, &h->conv_pre.conv, &X, &Y, arena));
        for (int r = 0; r < x.C; r++) memcpy(x.data + (size_t)r * x.ld, Y.data + (size_t)r * Y.ld + h->conv_pre.conv.pad, sizeof(float) * (size_t)D);
        cosy_arena_release(arena, mark);
    }

    for (int i = 0; i < h->nup; i++) {
        const int u = hp->upsample_rates[i], n = h->q[i] * D, last = i == h->nup - 1, ch = h->ups[i].conv.cout;
        const int first = last && G == 0, nf = n + first;
        /* leaky_relu -> nearest x u */
        cosy_act up, y, full, si, xs, r;
        COSY_TRY(act_new(&up, x.C, n, arena));
        cosy_leaky_relu_rows(h->pool, x.data, x.ld, x.data, x.ld, x.C, x.T, hp->lrelu_slope);
        for (int c = 0; c < x.C; c++) {
            const float *src = x.data + (size_t)c * x.ld;
            float *dst = up.data + (size_t)c * up.ld;
            for (int t = 0; t < n; t++) dst[t] = src[t / u];
        }
        COSY_TRY(act_new(&y, ch, n, arena));
        COSY_TRY(causal_apply(s, &h->ups[i], &up, &y));
        /* the last stage's ReflectionPad1d((1, 0)): column 0 of the utterance is column 1 of ups' output */
        COSY_TRY(act_new(&full, ch, nf, arena));
        for (int c = 0; c < ch; c++) {
            float *dst = full.data + (size_t)c * full.ld;
            const float *src = y.data + (size_t)c * y.ld;
            if (first) dst[0] = src[1];
            memcpy(dst + first, src, sizeof(float) * (size_t)n);
        }
        /* fusion: + source_resblocks[i](source_downs[i](spectrum)) */
        const int du = h->down_u[i];
        int64_t f_lo, T_in;
        if (du == 1) {
            f_lo = first ? 0 : (int64_t)h->R * G + 1;
            T_in = nf;
        } else {
            f_lo = (int64_t)h->R * G - du + 1; /* CausalConv1dDownSample: left pad du - 1, kernel 2 du, stride du */
            T_in = (int64_t)n * du + du;
        }
        if (f_lo < s->spec.base || f_lo + T_in > s->spec.end)
            return cosy_error(COSY_ERR_INTERNAL, "cv3 hift: stage %d needs spectrum frames [%lld, %lld), have [%lld, %lld)", i, (long long)f_lo,
                              (long long)(f_lo + T_in), (long long)s->spec.base, (long long)s->spec.end);
        COSY_TRY(act_new(&si, ch, nf, arena));
        COSY_TRY(down_apply(s, &h->source_downs[i], window_col(&s->spec, 0, f_lo), s->spec.cap, &si));
        COSY_TRY(act_new(&r, ch, nf, arena));
        COSY_TRY(resblock_apply(s, &h->source_resblocks[i], &si, &r));
        cosy_rows_add(h->pool, full.data, full.ld, r.data, r.ld, ch, nf);
        /* the mean of this stage's resblocks */
        COSY_TRY(act_new(&xs, ch, nf, arena));
        for (int j = 0; j < h->nk; j++) {
            COSY_TRY(resblock_apply(s, &h->resblocks[i * h->nk + j], &full, j == 0 ? &xs : &r));
            if (j > 0) cosy_rows_add(h->pool, xs.data, xs.ld, r.data, r.ld, ch, nf);
        }
        cosy_rows_div(h->pool, xs.data, xs.ld, ch, nf, (float)h->nk);
        x = xs;
    }
    /* F.leaky_relu (0.01) -> conv_post -> magnitude exp (clipped at 1e2 by _istft), phase sin */
    cosy_act post;
    cosy_leaky_relu_rows(h->pool, x.data, x.ld, x.data, x.ld, x.C, x.T, 0.01f);
    COSY_TRY(act_new(&post, n2, x.T, arena));
    COSY_TRY(causal_apply(s, &h->conv_post, &x, &post));
    COSY_TRY(window_reserve(&s->post, x.T));
    for (int k = 0; k < B; k++) {
        const float *lm = post.data + (size_t)k * post.ld, *ph = post.data + (size_t)(B + k) * post.ld;
        float *mag = window_col(&s->post, k, s->post.end), *phase = window_col(&s->post, B + k, s->post.end);
        for (int t = 0; t < x.T; t++) {
            float m = expf(lm[t]);
            mag[t] = m < 100.0f ? m : 100.0f;
            phase[t] = sinf(ph[t]);
        }
    }
    s->post.end += x.T;
    s->G += D;
    return COSY_OK;
}

/* ---- the push loop ------------------------------------------------------------------------------ */

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static cosy_status grow_frames(cosy_cv3_hift_stream *s, int64_t frames)
{
    if (frames <= s->f0_cap_frames) return COSY_OK;
    int64_t cap = s->f0_cap_frames ? s->f0_cap_frames : 512;
    while (cap < frames) cap *= 2;
    float *f0 = realloc(s->f0, sizeof(float) * (size_t)cap);
    if (!f0) return cosy_error(COSY_ERR_NOMEM, "cv3 hift stream: out of memory");
    s->f0 = f0;
    float *ph = realloc(s->phase, sizeof(float) * (size_t)cap * s->h->H);
    if (!ph) return cosy_error(COSY_ERR_NOMEM, "cv3 hift stream: out of memory");
    s->phase = ph;
    s->f0_cap_frames = cap;
    return COSY_OK;
}

cosy_status cosy_cv3_hift_stream_push(cosy_cv3_hift_stream *s, const float *mel, int n_frames, int ld, int finalize, float *out,
                                      int64_t *n_out)
{
    if (!s || !out || !n_out || n_frames < 0 || (n_frames > 0 && (!mel || ld < n_frames)))
        return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift stream: bad push (%d frames, row stride %d)", n_frames, ld);
    cosy_cv3_hift *h = s->h;
    const int64_t S = h->S, R = h->R;
    *n_out = 0;
    if ((s->M + n_frames) * S > h->noise_cap) {
        cosy_cv3_hift_stream_reset(s);
        return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift stream: more than %lld s of audio in one utterance (the source noise buffer's length)",
                          (long long)(h->noise_cap / h->hp->sample_rate));
    }
    if (finalize && s->M + n_frames == 0) return COSY_OK;
    cosy_status st = window_reserve(&s->mel, n_frames);
    if (st == COSY_OK) st = grow_frames(s, s->M + n_frames);
    if (st != COSY_OK) return st;
    for (int c = 0; c < s->mel.rows; c++) memcpy(window_col(&s->mel, c, s->mel.end), mel + (size_t)c * ld, sizeof(float) * (size_t)n_frames);
    s->mel.end += n_frames;
    s->M += n_frames;
    const int64_t M = s->M, held = cosy_cv3_hift_held_frames(h);

    for (int progress = 1; progress && st == COSY_OK;) {
        progress = 0;
        /* f0 and source as far as condnet[0]'s look-ahead allows */
        const int64_t f0_target = finalize ? M : M - (h->f0_k0 - 1);
        if (s->n_f0 < f0_target) {
            int64_t b = min64(f0_target, s->n_f0 + CV3_BLOCK);
            f0_step(s, s->n_f0, b);
            st = source_step(s, s->n_f0, b);
            if (st != COSY_OK) break;
            s->n_f0 = b;
            progress = 1;
        }
        /* spectrum frames whose n_fft samples exist (reflect-padded at the end once the source is complete) */
        const int64_t n_src = s->n_f0 * S, hop = h->stft.hop, half = h->stft.n_fft / 2;
        /* frame f reads samples f hop - half .. f hop + half - 1 */
        const int64_t spec_target = finalize && s->n_f0 == M ? n_src / hop + 1 : (n_src > half ? (n_src - half) / hop + 1 : 0);
        if (s->spec.end < spec_target) {
            st = window_reserve(&s->spec, spec_target - s->spec.end);
            if (st != COSY_OK) break;
            const int64_t w0 = s->src.base / hop; /* the source window's first frame */
            st = cosy_stft_forward_range(&h->stft, window_col(&s->src, 0, s->src.base), (int)(s->src.end - s->src.base),
                                         (int)(s->spec.end - w0), (int)(spec_target - w0), window_col(&s->spec, 0, s->spec.end),
                                         window_col(&s->spec, h->B, s->spec.end), s->spec.cap);
            if (st != COSY_OK) break;
            s->spec.end = spec_target;
            const int64_t keep = s->spec.end * hop - half; /* the next frame's first sample, kept on a frame boundary */
            window_trim(&s->src, keep > 0 ? keep - keep % hop : 0);
            progress = 1;
        }
        /* the generator: conv_pre looks conv_pre_look_right frames ahead (zeros when finalizing), every stage
         * reads spectrum frames up to R (G + D) */
        const int64_t spec_complete = finalize && s->n_f0 == M && s->spec.end == M * R + 1;
        int64_t g_target = spec_complete ? M : min64(finalize ? M : M - h->conv_pre.P, (s->spec.end - 1) / R);
        if (s->G < g_target) {
            int D = (int)min64(g_target - s->G, CV3_BLOCK);
            st = generator_step(s, D);
            if (st != COSY_OK) break;
            /* keep the spectrum frames the next step reads, and the mel conv_pre and condnet[0] read */
            int64_t keep = R * s->G - h->umax + 1;
            window_trim(&s->spec, keep);
            window_trim(&s->mel, min64(s->G, s->n_f0));
            progress = 1;
        }
        /* iSTFT of complete samples: non-final calls emit up to (M - held) frames, as the reference */
        const int64_t pn = s->post.end; /* conv_post frames of the utterance so far */
        int64_t limit = 0;
        if (spec_complete && s->G == M) limit = (pn - 1) * hop;
        else if (!finalize) limit = min64(pn >= 2 ? pn * hop - 2 * half : 0, (M - held) * S);
        if (limit > s->emitted) {
            const int64_t p0 = s->post.base, wn = s->post.end - p0;
            st = cosy_istft_polar(&h->stft, window_col(&s->post, 0, p0), window_col(&s->post, h->B, p0), (int)wn, s->post.cap,
                                  (int)(s->emitted - p0 * hop), (int)(limit - p0 * hop), out + *n_out);
            if (st != COSY_OK) break;
            const float lim = h->hp->audio_limit;
            for (int64_t i = *n_out; i < *n_out + limit - s->emitted; i++) out[i] = out[i] < -lim ? -lim : (out[i] > lim ? lim : out[i]);
            *n_out += limit - s->emitted;
            s->emitted = limit;
            int64_t keep = (s->emitted - (h->stft.n_fft - half - 1)) / hop - 1;
            window_trim(&s->post, keep > 0 ? keep : 0);
            progress = 1;
        }
    }
    if (st == COSY_OK && finalize && s->emitted != M * S)
        st = cosy_error(COSY_ERR_INTERNAL, "cv3 hift stream: finalized with %lld of %lld samples", (long long)s->emitted, (long long)(M * S));
    if (st != COSY_OK || finalize) cosy_cv3_hift_stream_reset(s);
    return st;
}

cosy_status cosy_cv3_hift_inference(cosy_cv3_hift *h, const float *mel, int n_frames, int ld, int finalize, float *wav, float *f0,
                                    float *source)
{
    if (!h || !mel || !wav) return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift: no vocoder, mel or output");
    const int held = cosy_cv3_hift_held_frames(h);
    if (n_frames < 1 || (!finalize && n_frames < held))
        return cosy_error(COSY_ERR_INVALID_ARG, "cv3 hift: %d mel frames (a non-final call needs at least %d)", n_frames, held);
    cosy_cv3_hift_stream *s;
    COSY_TRY(cosy_cv3_hift_stream_create(h, &s));
    const int64_t n_f0 = finalize ? n_frames : n_frames - (h->f0_k0 - 1);
    cosy_cv3_hift_stream_trace(s, f0, f0 ? n_f0 : 0, source, source ? n_f0 * h->S : 0);
    int64_t n_out = 0;
    cosy_status st = cosy_cv3_hift_stream_push(s, mel, n_frames, ld, finalize, wav, &n_out);
    const int64_t want = (int64_t)(finalize ? n_frames : n_frames - held) * h->S;
    if (st == COSY_OK && n_out != want)
        st = cosy_error(COSY_ERR_INTERNAL, "cv3 hift: %lld samples out, %lld expected", (long long)n_out, (long long)want);
    cosy_cv3_hift_stream_free(s);
    return st;
}
