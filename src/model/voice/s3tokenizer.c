/*
 * s3tokenizer.c — S3TokenizerV2 forward pass in f32 (model/s3tokenizer.h has the network).
 *
 * Reproduces speech_tokenizer_v2.onnx as ONNX Runtime runs it for one utterance of full length (the
 * reference: S3Tokenizer's s3tokenizer/model_v2.py AudioEncoderV2 + FSQCodebook.encode, and the graph
 * itself). Where the packed AVX-512 kernels run (core/gemm.h), every weight is packed once into f32
 * panels on the first forward and the products split their output columns over the pool; the
 * attention heads run in parallel (each packs its own k and v). Elsewhere products go through
 * cosy_sgemm. Activations and norms through vecmath (exact-erf GELU). Work buffers live with the
 * network and grow when a longer input comes; a mutex makes forwards on one network take turns.
 * The rotary table is computed the way torch builds it in float32 (frequencies 1 / theta^(2i/D) in
 * float, angle = position * frequency rounded to float, then cos / sin); the ONNX loader checks it
 * against the table stored in the graph.
 */
#include "model/voice/s3tokenizer.h"

#include "core/arena.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/vecmath.h"
#include "model/net_gguf.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cosy_s3tokenizer {
    cosy_s3tokenizer_hparams hp;
    s3tok_weights w;
    net_owned owned;        /* widened or packed weights */
    /* built on the first forward (under `lock`) */
    pthread_mutex_t lock;
    int prepared, panels;          /* panels: packed f32 kernels in use */
    struct s3tok_packed *packed;   /* [n_blocks] */
    float *conv1_p, *conv1_bp, *conv2_p, *conv2_bp, *fsq_p, *fsq_bp;
    float *work;                   /* work buffers for up to work_frames frames, work_parts threads */
    size_t work_floats;
};

typedef struct s3tok_packed {
    float *q, *k, *v, *out, *mlp1, *mlp2;  /* panels [ceil(out/32)][in][32] */
    float *q_b, *v_b, *out_b, *mlp1_b, *mlp2_b; /* biases padded to the panels */
    float *fsmn_t;                          /* [K][C]: the depthwise kernel tap-major */
} s3tok_packed;

cosy_s3tokenizer_hparams cosy_s3tokenizer_default_hparams(void)
{
    cosy_s3tokenizer_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.n_mels = 128;
    hp.width = 1280;
    hp.n_heads = 20;
    hp.head_dim = 64;
    hp.n_blocks = 6;
    hp.mlp_width = 5120;
    hp.fsmn_kernel = 31;
    hp.fsq_dims = 8;
    hp.fsq_levels = 3;
    hp.attn_ln_eps = 1e-6f;
    hp.mlp_ln_eps = 1e-5f;
    hp.rope_theta = 10000.0f;
    return hp;
}

cosy_status cosy_s3tokenizer_hparams_validate(const cosy_s3tokenizer_hparams *hp)
{
    if (hp->n_mels < 1 || hp->n_mels > 4096 || hp->width < 1 || hp->width > 16384 || hp->head_dim < 2 || hp->head_dim % 2 ||
        hp->n_heads < 1 || hp->n_heads * hp->head_dim != hp->width || hp->n_blocks < 1 || hp->n_blocks > S3TOK_MAX_BLOCKS ||
        hp->mlp_width < 1 || hp->mlp_width > 65536 || hp->fsmn_kernel < 1 || hp->fsmn_kernel > 1023 || hp->fsq_dims < 1 ||
        hp->fsq_dims > 16 || hp->fsq_levels != 3 || !(hp->attn_ln_eps > 0) || !(hp->mlp_ln_eps > 0) || !(hp->rope_theta > 1))
        return cosy_error(COSY_ERR_INVALID_ARG,
                          "speech tokenizer: inconsistent sizes (mels %d, width %d = %d heads x %d, %d blocks, MLP %d, FSMN %d, FSQ %d x %d)",
                          hp->n_mels, hp->width, hp->n_heads, hp->head_dim, hp->n_blocks, hp->mlp_width, hp->fsmn_kernel, hp->fsq_dims,
                          hp->fsq_levels);
    return COSY_OK;
}

int64_t cosy_s3tokenizer_n_params(const cosy_s3tokenizer_hparams *hp)
{
    const int64_t C = hp->width, M = hp->mlp_width;
    const int64_t block = 4 * C + 4 * C * C + 3 * C + C * hp->fsmn_kernel + 2 * C * M + M + C;
    return C * hp->n_mels * 3 + C + C * C * 3 + C + hp->n_blocks * block + C * hp->fsq_dims + hp->fsq_dims;
}

int cosy_s3tokenizer_n_tokens(int frames) { return ((frames + 1) / 2 + 1) / 2; }

cosy_status cosy_s3tokenizer_create(const cosy_s3tokenizer_hparams *hp, cosy_s3tokenizer **out)
{
    *out = NULL;
    COSY_TRY(cosy_s3tokenizer_hparams_validate(hp));
    cosy_s3tokenizer *m = calloc(1, sizeof *m);
    if (m) m->w.blocks = calloc((size_t)hp->n_blocks, sizeof *m->w.blocks);
    if (!m || !m->w.blocks) {
        free(m);
        return cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory");
    }
    m->hp = *hp;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return COSY_OK;
}

const cosy_s3tokenizer_hparams *cosy_s3tokenizer_hp(const cosy_s3tokenizer *m) { return &m->hp; }
s3tok_weights *cosy_s3tokenizer_weights(cosy_s3tokenizer *m) { return &m->w; }

float *cosy_s3tokenizer_own(cosy_s3tokenizer *m, size_t floats) { return net_owned_floats(&m->owned, floats); }
struct net_owned *cosy_s3tokenizer_owned(cosy_s3tokenizer *m) { return &m->owned; }

void cosy_s3tokenizer_free(cosy_s3tokenizer *m)
{
    if (!m) return;
    net_owned_free(&m->owned);
    free(m->w.blocks);
    free(m->packed);
    cosy_aligned_free(m->work);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* y[cout][Tout] = GELU(conv(x[cin][Tin] (row stride ldx), k3 s2 p1) + b), through one product over
 * the unfolded input cols [cin * 3][Tout]. */
static void conv_s2_gelu(const float *w, const float *b, int cout, int cin, const float *x, int Tin, int ldx, float *y, int Tout,
                         float *cols)
{
    for (int ci = 0; ci < cin; ci++)
        for (int tap = 0; tap < 3; tap++) {
            float *row = cols + ((size_t)ci * 3 + tap) * Tout;
            const float *src = x + (size_t)ci * ldx;
            for (int t = 0; t < Tout; t++) {
                const int s = 2 * t + tap - 1;
                row[t] = s >= 0 && s < Tin ? src[s] : 0.0f;
            }
        }
    cosy_sgemm(0, 0, cout, Tout, cin * 3, 1.0f, w, cin * 3, cols, Tout, 0.0f, y, Tout);
    for (int co = 0; co < cout; co++) {
        float *row = y + (size_t)co * Tout;
        for (int t = 0; t < Tout; t++) row[t] += b[co];
    }
    cosy_vec_gelu(y, (size_t)cout * Tout);
}

/* y[T][out] = x[T][in] W[in][out] + b (b may be NULL). */
static void linear_t(float *y, const float *x, int T, int in, const float *W, const float *b, int out)
{
    cosy_sgemm(0, 0, T, out, in, 1.0f, x, in, W, out, 0.0f, y, out);
    if (b)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) y[(size_t)t * out + o] += b[o];
}

/* ---------------------------------------------------------------- packed panels */

#define NR COSY_PANEL

static size_t panel_floats(int N, int K) { return (size_t)(N + NR - 1) / NR * NR * (size_t)K; }

/* b[N] copied into a buffer padded to the panels (NULL stays NULL) */
static float *pad_bias(cosy_s3tokenizer *m, const float *b, int N)
{
    if (!b) return NULL;
    float *p = cosy_s3tokenizer_own(m, panel_floats(N, 1));
    if (p) {
        memset(p, 0, sizeof(float) * panel_floats(N, 1));
        memcpy(p, b, sizeof(float) * (size_t)N);
    }
    return p;
}

/* W[in][out] (the ONNX MatMul layout) into panels */
static float *pack_cols(cosy_s3tokenizer *m, const float *w, int in, int out)
{
    float *p = cosy_s3tokenizer_own(m, panel_floats(out, in));
    if (p) cosy_pack_f32_cols(p, w, in, out, out);
    return p;
}

/* conv weight [cout][cin][3] into panels over the inputs ordered tap-major (tap * cin + ci), so that
 * a time-major unfolded row is three whole input frames */
static float *pack_conv(cosy_s3tokenizer *m, const float *w, int cout, int cin)
{
    float *tmp = malloc(sizeof(float) * (size_t)cout * cin * 3);
    float *p = tmp ? cosy_s3tokenizer_own(m, panel_floats(cout, cin * 3)) : NULL;
    if (p) {
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < cin; ci++)
                for (int tap = 0; tap < 3; tap++)
                    tmp[(size_t)co * cin * 3 + (size_t)tap * cin + ci] = w[((size_t)co * cin + ci) * 3 + tap];
        cosy_pack_f32_rows(p, tmp, cout, cin * 3, cin * 3);
    }
    free(tmp);
    return p;
}

/* Packs every weight once (caller holds the lock). */
static cosy_status prepare(cosy_s3tokenizer *m)
{
    if (m->prepared) return COSY_OK;
    const cosy_s3tokenizer_hparams *hp = &m->hp;
    const int C = hp->width, M = hp->mlp_width, K = hp->fsmn_kernel;
    int ok = 1;
    m->panels = cosy_gemm_f32_available();
    if (m->panels) {
        const s3tok_weights *w = &m->w;
        m->packed = calloc((size_t)hp->n_blocks, sizeof *m->packed);
        ok = m->packed != NULL;
        if (ok) {
            ok &= (m->conv1_p = pack_conv(m, w->conv1_w, C, hp->n_mels)) && (m->conv1_bp = pad_bias(m, w->conv1_b, C));
            ok &= (m->conv2_p = pack_conv(m, w->conv2_w, C, C)) && (m->conv2_bp = pad_bias(m, w->conv2_b, C));
            ok &= (m->fsq_p = pack_cols(m, w->fsq_w, C, hp->fsq_dims)) && (m->fsq_bp = pad_bias(m, w->fsq_b, hp->fsq_dims));
        }
        for (int b = 0; ok && b < hp->n_blocks; b++) {
            const s3tok_block *bl = &w->blocks[b];
            s3tok_packed *pk = &m->packed[b];
            ok &= (pk->q = pack_cols(m, bl->q_w, C, C)) && (pk->k = pack_cols(m, bl->k_w, C, C)) && (pk->v = pack_cols(m, bl->v_w, C, C)) &&
                  (pk->out = pack_cols(m, bl->out_w, C, C)) && (pk->mlp1 = pack_cols(m, bl->mlp1_w, C, M)) &&
                  (pk->mlp2 = pack_cols(m, bl->mlp2_w, M, C));
            ok &= (pk->q_b = pad_bias(m, bl->q_b, C)) && (pk->v_b = pad_bias(m, bl->v_b, C)) && (pk->out_b = pad_bias(m, bl->out_b, C)) &&
                  (pk->mlp1_b = pad_bias(m, bl->mlp1_b, M)) && (pk->mlp2_b = pad_bias(m, bl->mlp2_b, C));
        }
    }
    for (int b = 0; ok && b < hp->n_blocks; b++) {
        float *t = cosy_s3tokenizer_own(m, (size_t)K * C);
        ok = t != NULL;
        if (ok)
            for (int c = 0; c < C; c++)
                for (int j = 0; j < K; j++) t[(size_t)j * C + c] = m->w.blocks[b].fsmn_w[(size_t)c * K + j];
        if (!m->packed) {
            m->packed = calloc((size_t)hp->n_blocks, sizeof *m->packed);
            if (!m->packed) ok = 0;
        }
        if (ok) m->packed[b].fsmn_t = t;
    }
    if (!ok) return cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory for the packed weights");
    m->prepared = 1;
    return COSY_OK;
}

typedef struct {
    int M, N, K, lda, ldc, parts, accumulate, act;
    const float *A, *P, *bias;
    float *C;
} gemm_task;

static void gemm_run(void *p, int part)
{
    const gemm_task *t = p;
    int p0, p1;
    cosy_split_range((t->N + NR - 1) / NR, t->parts, part, &p0, &p1);
    if (p0 < p1)
        cosy_gemm_f32_panels(t->M, t->N, t->K, 1.0f, t->A, t->lda, t->P, (size_t)t->K * NR, p0, p1, t->bias, t->C, t->ldc, t->accumulate,
                             t->act);
}

/* y[M][N] = act(x[M][K] . P + bias) (+ y when accumulate), output panels split over the pool */
static void gemm_pool(cosy_pool *pool, int M, int N, int K, const float *x, int lda, const float *P, const float *bias, float *y, int ldc,
                      int accumulate, int act)
{
    gemm_task t = {M, N, K, lda, ldc, 1, accumulate, act, x, P, bias, y};
    const int panels = (N + NR - 1) / NR;
    int parts = pool ? cosy_pool_size(pool) : 1;
    if (parts > panels) parts = panels;
    if ((size_t)M * K * N < 200000) parts = 1;
    t.parts = parts;
    if (parts <= 1) gemm_run(&t, 0);
    else cosy_pool_run(pool, parts, gemm_run, &t);
}

typedef struct {
    const cosy_s3tokenizer_hparams *hp;
    int T, parts;
    float *q, *k, *v, *att;
    const float *cosv, *sinv;
    float *scratch; /* per part: scores [T][T], inv [T], kp, vp */
    size_t scratch_floats;
    float scale;
    int panels;
} attn_task;

static void attn_run(void *p, int part)
{
    const attn_task *a = p;
    const int T = a->T, C = a->hp->width, D = a->hp->head_dim, half = D / 2;
    float *scores = a->scratch + (size_t)part * a->scratch_floats, *inv = scores + (size_t)T * T;
    float *kp = inv + T, *vp = kp + panel_floats(T, D);
    int h0, h1;
    cosy_split_range(a->hp->n_heads, a->parts, part, &h0, &h1);
    for (int hd = h0; hd < h1; hd++) {
        float *qh = a->q + (size_t)hd * D, *kh = a->k + (size_t)hd * D, *vh = a->v + (size_t)hd * D, *oh = a->att + (size_t)hd * D;
        /* rotary, then the head_dim^-0.25 scale, on this head's q and k */
        for (int t = 0; t < T; t++) {
            const float *c = a->cosv + (size_t)t * half, *s = a->sinv + (size_t)t * half;
            float *vq = qh + (size_t)t * C, *vk = kh + (size_t)t * C;
            for (int i = 0; i < half; i++) {
                float x0 = vq[i], x1 = vq[i + half];
                vq[i] = (x0 * c[i] + -x1 * s[i]) * a->scale;
                vq[i + half] = (x1 * c[i] + x0 * s[i]) * a->scale;
                x0 = vk[i], x1 = vk[i + half];
                vk[i] = (x0 * c[i] + -x1 * s[i]) * a->scale;
                vk[i + half] = (x1 * c[i] + x0 * s[i]) * a->scale;
            }
        }
        if (a->panels) {
            cosy_pack_f32_rows(kp, kh, T, D, C);
            cosy_gemm_f32_panels(T, T, D, 1.0f, qh, C, kp, (size_t)D * NR, 0, (T + NR - 1) / NR, NULL, scores, T, 0, COSY_ACT_NONE);
        } else {
            cosy_sgemm(0, 1, T, T, D, 1.0f, qh, C, kh, C, 0.0f, scores, T);
        }
        cosy_vec_softmax_rows(scores, T, T, T, inv);
        if (a->panels) {
            cosy_pack_f32_cols(vp, vh, T, D, C);
            cosy_gemm_f32_panels(T, D, T, 1.0f, scores, T, vp, (size_t)T * NR, 0, (D + NR - 1) / NR, NULL, oh, C, 0, COSY_ACT_NONE);
        } else {
            cosy_sgemm(0, 0, T, D, T, 1.0f, scores, T, vh, C, 0.0f, oh, C);
        }
        for (int t = 0; t < T; t++) cosy_scale(oh + (size_t)t * C, inv[t], (size_t)D);
    }
}

typedef struct {
    int T, C, K, parts;
    const float *v, *kw_t;
    float *mem;
} fsmn_task;

/* mem[t] = v[t] + sum_j kw[j] v[t + j - lpad] (zero padded), over a range of frames */
static void fsmn_run(void *p, int part)
{
    const fsmn_task *f = p;
    const int C = f->C, K = f->K, T = f->T, lpad = (K - 1) / 2;
    int t0, t1;
    cosy_split_range(T, f->parts, part, &t0, &t1);
    for (int t = t0; t < t1; t++) {
        float *m = f->mem + (size_t)t * C;
        memset(m, 0, sizeof(float) * (size_t)C);
        for (int j = 0; j < K; j++) {
            const int s = t + j - lpad;
            if (s < 0 || s >= T) continue;
            const float *kw = f->kw_t + (size_t)j * C, *vs = f->v + (size_t)s * C;
            for (int c = 0; c < C; c++) m[c] += kw[c] * vs[c];
        }
        const float *vt = f->v + (size_t)t * C;
        for (int c = 0; c < C; c++) m[c] = vt[c] + m[c];
    }
}

cosy_status cosy_s3tokenizer_forward(const cosy_s3tokenizer *cnet, cosy_pool *pool, const float *feats, int frames, int ld_feats,
                                     int32_t *tokens, s3tok_tap_fn tap, void *tap_ctx)
{
    cosy_s3tokenizer *net = (cosy_s3tokenizer *)cnet; /* the packed weights and work buffers are a cache */
    const cosy_s3tokenizer_hparams *hp = &net->hp;
    if (frames < 1 || ld_feats < frames)
        return cosy_error(COSY_ERR_INVALID_ARG, "speech tokenizer: %d log-mel frames (row stride %d): at least 1 needed", frames, ld_feats);
    const int C = hp->width, M = hp->mlp_width, H = hp->n_heads, D = hp->head_dim, K = hp->fsmn_kernel, Q = hp->fsq_dims, nm = hp->n_mels;
    const int T1 = (frames - 1) / 2 + 1, T = (T1 - 1) / 2 + 1, half = D / 2;
    int parts = pool ? cosy_pool_size(pool) : 1;
    if (parts > H) parts = H;
    if (parts < 1) parts = 1;
    pthread_mutex_lock(&net->lock);
    cosy_status st = prepare(net);
    if (st != COSY_OK) {
        pthread_mutex_unlock(&net->lock);
        return st;
    }
    const int panels = net->panels;
    const size_t cols_n = (size_t)(nm > C ? nm : C) * 3 * T1, ct = (size_t)C * T;
    const size_t head_n = (size_t)T * T + T + panel_floats(T, D) + panel_floats(D, T);
    const size_t need = cols_n + (size_t)C * T1 + 7 * ct + (size_t)T * M + (size_t)parts * head_n + 2 * (size_t)T * half + (size_t)T * Q + 16 * 16;
    if (need > net->work_floats) {
        cosy_aligned_free(net->work);
        net->work = cosy_aligned_alloc(sizeof(float) * need);
        net->work_floats = net->work ? need : 0;
        if (!net->work) {
            pthread_mutex_unlock(&net->lock);
            return cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory for %d frames", frames);
        }
    }
    /* carve, each buffer on a 64-byte boundary */
    float *cur = net->work;
#define TAKE(n) (cur += 0, cur = (float *)(((uintptr_t)cur + 63) & ~(uintptr_t)63), cur += (n), cur - (n))
    float *cols = TAKE(cols_n), *c1 = TAKE((size_t)C * T1), *c2 = TAKE(ct), *x = TAKE(ct), *h = TAKE(ct), *q = TAKE(ct), *k = TAKE(ct);
    float *v = TAKE(ct), *att = TAKE(ct), *mlp = TAKE((size_t)T * M), *scratch = TAKE((size_t)parts * head_n);
    float *cosv = TAKE((size_t)T * half), *sinv = TAKE((size_t)T * half), *proj = TAKE((size_t)T * Q);
    float *mem = c2; /* c2 is free once the blocks start */
#undef TAKE
    /* the rotary table as torch builds it in float32 */
    for (int i = 0; i < half; i++) {
        const float expo = (float)(2 * i) / (float)D;
        const float freq = 1.0f / powf(hp->rope_theta, expo);
        for (int t = 0; t < T; t++) {
            const float angle = (float)t * freq;
            cosv[(size_t)t * half + i] = (float)cos((double)angle);
            sinv[(size_t)t * half + i] = (float)sin((double)angle);
        }
    }

    const s3tok_weights *w = &net->w;
    if (panels) {
        /* time-major: unfolded rows [t][tp * cin + ci] through the packed conv weights */
        for (int t = 0; t < T1; t++)
            for (int tp = 0; tp < 3; tp++) {
                float *row = cols + (size_t)t * 3 * nm + (size_t)tp * nm;
                const int s = 2 * t + tp - 1;
                for (int ci = 0; ci < nm; ci++) row[ci] = s >= 0 && s < frames ? feats[(size_t)ci * ld_feats + s] : 0.0f;
            }
        gemm_pool(pool, T1, C, 3 * nm, cols, 3 * nm, net->conv1_p, net->conv1_bp, c1, C, 0, COSY_ACT_GELU);
        for (int t = 0; t < T; t++)
            for (int tp = 0; tp < 3; tp++) {
                float *row = cols + (size_t)t * 3 * C + (size_t)tp * C;
                const int s = 2 * t + tp - 1;
                if (s >= 0 && s < T1) memcpy(row, c1 + (size_t)s * C, sizeof(float) * (size_t)C);
                else memset(row, 0, sizeof(float) * (size_t)C);
            }
        gemm_pool(pool, T, C, 3 * C, cols, 3 * C, net->conv2_p, net->conv2_bp, x, C, 0, COSY_ACT_GELU);
    } else {
        conv_s2_gelu(w->conv1_w, w->conv1_b, C, nm, feats, frames, ld_feats, c1, T1, cols);
        conv_s2_gelu(w->conv2_w, w->conv2_b, C, C, c1, T1, T1, c2, T, cols);
        cosy_transpose(x, c2, C, T);
    }
    if (tap) tap(tap_ctx, 0, x, T, C);

    attn_task at = {hp, T, parts, q, k, v, att, cosv, sinv, scratch, head_n, powf((float)D, -0.25f), panels};
    for (int b = 0; b < hp->n_blocks; b++) {
        const s3tok_block *bl = &w->blocks[b];
        const s3tok_packed *pk = &net->packed[b];
        cosy_vec_layer_norm(h, x, T, C, bl->attn_ln_w, bl->attn_ln_b, hp->attn_ln_eps);
        if (panels) {
            gemm_pool(pool, T, C, C, h, C, pk->q, pk->q_b, q, C, 0, COSY_ACT_NONE);
            gemm_pool(pool, T, C, C, h, C, pk->k, NULL, k, C, 0, COSY_ACT_NONE);
            gemm_pool(pool, T, C, C, h, C, pk->v, pk->v_b, v, C, 0, COSY_ACT_NONE);
        } else {
            linear_t(q, h, T, C, bl->q_w, bl->q_b, C);
            linear_t(k, h, T, C, bl->k_w, NULL, C);
            linear_t(v, h, T, C, bl->v_w, bl->v_b, C);
        }
        /* heads in parallel (the portable path keeps BLAS on one thread at a time) */
        if (panels && parts > 1) cosy_pool_run(pool, parts, attn_run, &at);
        else {
            attn_task one = at;
            one.parts = 1;
            attn_run(&one, 0);
        }
        if (panels) gemm_pool(pool, T, C, C, att, C, pk->out, pk->out_b, h, C, 0, COSY_ACT_NONE);
        else linear_t(h, att, T, C, bl->out_w, bl->out_b, C);
        /* FSMN memory: depthwise conv over v (zero padded) + v */
        fsmn_task ft = {T, C, K, parts, v, pk->fsmn_t, mem};
        if (parts > 1 && T > 1) cosy_pool_run(pool, parts, fsmn_run, &ft);
        else {
            ft.parts = 1;
            fsmn_run(&ft, 0);
        }
        for (size_t i = 0; i < ct; i++) x[i] += h[i] + mem[i];
        cosy_vec_layer_norm(h, x, T, C, bl->mlp_ln_w, bl->mlp_ln_b, hp->mlp_ln_eps);
        if (panels) {
            gemm_pool(pool, T, M, C, h, C, pk->mlp1, pk->mlp1_b, mlp, M, 0, COSY_ACT_GELU);
            gemm_pool(pool, T, C, M, mlp, M, pk->mlp2, pk->mlp2_b, x, C, 1, COSY_ACT_NONE);
        } else {
            linear_t(mlp, h, T, C, bl->mlp1_w, bl->mlp1_b, M);
            cosy_vec_gelu(mlp, (size_t)T * M);
            linear_t(h, mlp, T, M, bl->mlp2_w, bl->mlp2_b, C);
            cosy_add(x, h, ct);
        }
        if (tap) tap(tap_ctx, 1 + b, x, T, C);
    }

    if (panels) gemm_pool(NULL, T, Q, C, x, C, net->fsq_p, net->fsq_bp, proj, Q, 0, COSY_ACT_NONE);
    else linear_t(proj, x, T, C, w->fsq_w, w->fsq_b, Q);
    if (tap) tap(tap_ctx, 1 + hp->n_blocks, proj, T, Q);
    for (int t = 0; t < T; t++) {
        int32_t id = 0, p3 = 1;
        for (int i = 0; i < Q; i++) {
            /* round half to even, as torch.round / ONNX Round */
            const float r = nearbyintf(tanhf(proj[(size_t)t * Q + i]) * 0.999f);
            id += (int32_t)(r + 1.0f) * p3;
            p3 *= 3;
        }
        tokens[t] = id;
    }
    pthread_mutex_unlock(&net->lock);
    return st;
}
