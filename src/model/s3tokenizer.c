/*
 * s3tokenizer.c — S3TokenizerV2 forward pass in f32 (model/s3tokenizer.h has the network).
 *
 * Reproduces speech_tokenizer_v2.onnx as ONNX Runtime runs it for one utterance of full length (the
 * reference: S3Tokenizer's s3tokenizer/model_v2.py AudioEncoderV2 + FSQCodebook.encode, and the graph
 * itself). Products go through cosy_sgemm; activations and norms through vecmath (exact-erf GELU).
 * The rotary table is computed the way torch builds it in float32 (frequencies 1 / theta^(2i/D) in
 * float, angle = position * frequency rounded to float, then cos / sin); the ONNX loader checks it
 * against the table stored in the graph.
 */
#include "model/s3tokenizer.h"

#include "core/arena.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/vecmath.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cosy_s3tokenizer {
    cosy_s3tokenizer_hparams hp;
    s3tok_weights w;
    void **owned;
    int n_owned, cap_owned;
};

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
    *out = m;
    return COSY_OK;
}

const cosy_s3tokenizer_hparams *cosy_s3tokenizer_hp(const cosy_s3tokenizer *m) { return &m->hp; }
s3tok_weights *cosy_s3tokenizer_weights(cosy_s3tokenizer *m) { return &m->w; }

float *cosy_s3tokenizer_own(cosy_s3tokenizer *m, size_t floats)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **n = realloc(m->owned, sizeof *n * (size_t)cap);
        if (!n) return NULL;
        m->owned = n;
        m->cap_owned = cap;
    }
    float *p = cosy_aligned_alloc(sizeof(float) * (floats ? floats : 1));
    if (p) m->owned[m->n_owned++] = p;
    return p;
}

void cosy_s3tokenizer_free(cosy_s3tokenizer *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) cosy_aligned_free(m->owned[i]);
    free(m->owned);
    free(m->w.blocks);
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

/* Rotate-half rotary embedding in place on x[T][heads * D], with the cos/sin tables [T][D / 2]
 * (cat(freqs, freqs): both halves use the same angle). */
static void rotary(float *x, int T, int heads, int D, const float *cosv, const float *sinv)
{
    const int half = D / 2;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < heads; h++) {
            float *v = x + (size_t)t * heads * D + (size_t)h * D;
            const float *c = cosv + (size_t)t * half, *s = sinv + (size_t)t * half;
            for (int i = 0; i < half; i++) {
                const float a = v[i], bb = v[i + half];
                v[i] = a * c[i] + -bb * s[i];
                v[i + half] = bb * c[i] + a * s[i];
            }
        }
}

cosy_status cosy_s3tokenizer_forward(const cosy_s3tokenizer *net, cosy_pool *pool, const float *feats, int frames, int ld_feats,
                                     int32_t *tokens, s3tok_tap_fn tap, void *tap_ctx)
{
    (void)pool;
    const cosy_s3tokenizer_hparams *hp = &net->hp;
    if (frames < 1 || ld_feats < frames)
        return cosy_error(COSY_ERR_INVALID_ARG, "speech tokenizer: %d log-mel frames (row stride %d): at least 1 needed", frames, ld_feats);
    const int C = hp->width, M = hp->mlp_width, H = hp->n_heads, D = hp->head_dim, K = hp->fsmn_kernel, Q = hp->fsq_dims;
    const int T1 = (frames - 1) / 2 + 1, T = (T1 - 1) / 2 + 1, half = D / 2;
    const int lpad = (K - 1) / 2;
    const size_t cols_n = (size_t)(hp->n_mels > C ? hp->n_mels : C) * 3 * T1;
    const size_t ct = (size_t)C * T;
    float *cols = malloc(sizeof(float) * cols_n), *c1 = malloc(sizeof(float) * (size_t)C * T1), *c2 = malloc(sizeof(float) * ct);
    float *x = malloc(sizeof(float) * ct), *h = malloc(sizeof(float) * ct), *q = malloc(sizeof(float) * ct), *k = malloc(sizeof(float) * ct);
    float *v = malloc(sizeof(float) * ct), *att = malloc(sizeof(float) * ct), *mem = malloc(sizeof(float) * ct);
    float *mlp = malloc(sizeof(float) * (size_t)T * M), *scores = malloc(sizeof(float) * (size_t)T * T);
    float *inv = malloc(sizeof(float) * (size_t)T), *cosv = malloc(sizeof(float) * (size_t)T * half), *sinv = malloc(sizeof(float) * (size_t)T * half);
    float *proj = malloc(sizeof(float) * (size_t)T * Q);
    cosy_status st = COSY_OK;
    if (!cols || !c1 || !c2 || !x || !h || !q || !k || !v || !att || !mem || !mlp || !scores || !inv || !cosv || !sinv || !proj) {
        st = cosy_error(COSY_ERR_NOMEM, "speech tokenizer: out of memory for %d frames", frames);
        goto done;
    }
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
    conv_s2_gelu(w->conv1_w, w->conv1_b, C, hp->n_mels, feats, frames, ld_feats, c1, T1, cols);
    conv_s2_gelu(w->conv2_w, w->conv2_b, C, C, c1, T1, T1, c2, T, cols);
    cosy_transpose(x, c2, C, T);
    if (tap) tap(tap_ctx, 0, x, T, C);

    const float scale = powf((float)D, -0.25f);
    for (int b = 0; b < hp->n_blocks; b++) {
        const s3tok_block *bl = &w->blocks[b];
        cosy_vec_layer_norm(h, x, T, C, bl->attn_ln_w, bl->attn_ln_b, hp->attn_ln_eps);
        linear_t(q, h, T, C, bl->q_w, bl->q_b, C);
        linear_t(k, h, T, C, bl->k_w, NULL, C);
        linear_t(v, h, T, C, bl->v_w, bl->v_b, C);
        rotary(q, T, H, D, cosv, sinv);
        rotary(k, T, H, D, cosv, sinv);
        cosy_scale(q, scale, ct);
        cosy_scale(k, scale, ct);
        for (int hd = 0; hd < H; hd++) {
            cosy_sgemm(0, 1, T, T, D, 1.0f, q + (size_t)hd * D, C, k + (size_t)hd * D, C, 0.0f, scores, T);
            cosy_vec_softmax_rows(scores, T, T, T, inv);
            cosy_sgemm(0, 0, T, D, T, 1.0f, scores, T, v + (size_t)hd * D, C, 0.0f, att + (size_t)hd * D, C);
            for (int t = 0; t < T; t++) cosy_scale(att + (size_t)t * C + (size_t)hd * D, inv[t], (size_t)D);
        }
        linear_t(h, att, T, C, bl->out_w, bl->out_b, C);
        /* FSMN memory: depthwise conv over v (zero padded) + v */
        for (int t = 0; t < T; t++) {
            float *m = mem + (size_t)t * C;
            memcpy(m, v + (size_t)t * C, sizeof(float) * (size_t)C);
            for (int c = 0; c < C; c++) {
                const float *kw = bl->fsmn_w + (size_t)c * K;
                float acc = 0.0f;
                for (int j = 0; j < K; j++) {
                    const int s = t + j - lpad;
                    if (s >= 0 && s < T) acc += kw[j] * v[(size_t)s * C + c];
                }
                m[c] += acc;
            }
        }
        for (size_t i = 0; i < ct; i++) x[i] += h[i] + mem[i];
        cosy_vec_layer_norm(h, x, T, C, bl->mlp_ln_w, bl->mlp_ln_b, hp->mlp_ln_eps);
        linear_t(mlp, h, T, C, bl->mlp1_w, bl->mlp1_b, M);
        cosy_vec_gelu(mlp, (size_t)T * M);
        linear_t(h, mlp, T, M, bl->mlp2_w, bl->mlp2_b, C);
        cosy_add(x, h, ct);
        if (tap) tap(tap_ctx, 1 + b, x, T, C);
    }

    linear_t(proj, x, T, C, w->fsq_w, w->fsq_b, Q);
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
done:
    free(cols), free(c1), free(c2), free(x), free(h), free(q), free(k), free(v), free(att), free(mem);
    free(mlp), free(scores), free(inv), free(cosv), free(sinv), free(proj);
    return st;
}
