/*
 * s3tokenizer.h — S3TokenizerV2, the speech tokenizer CosyVoice2 runs on a prompt
 * (speech_tokenizer_v2.onnx): 128-bin whisper log-mel at 100 Hz in, 25 Hz token ids in [0, 6561) out.
 *
 *   feats [n_mels][T]   channel-major, as the graph's `feats`
 *   conv1               Conv1d n_mels -> C, k3 s2 p1, + GELU (exact erf)      -> T1 = (T - 1) / 2 + 1
 *   conv2               Conv1d C -> C, k3 s2 p1, + GELU, then time-major [T'][C], T' = (T1 - 1) / 2 + 1
 *   blocks (n_blocks)   x += attn(LN(x, eps 1e-6)) + fsmn(v);  x += mlp(LN(x, eps 1e-5))
 *       attn            q = x Wq + bq, k = x Wk (no bias), v = x Wv + bv; rotary on q and k per head
 *                       (head dim 64, rotate-half with cat(freqs, freqs), positions 0..T'-1,
 *                       theta 10000); q and k each scaled by head_dim^-0.25; softmax; out = . Wo + bo
 *       fsmn            depthwise Conv1d (kernel K, no bias) over v zero-padded ((K-1)/2, K-1-(K-1)/2),
 *                       plus v
 *       mlp             Linear C -> 4C, GELU, Linear 4C -> C
 *   FSQ head            h = x Wp + bp [T'][8]; d_i = round_half_even(tanh(h_i) * 0.999) + 1 in {0,1,2};
 *                       token = sum_i d_i 3^i
 *
 * There is no final LayerNorm. The masks of the graph (feats_length) are all ones for one utterance
 * of full length, which is the only way CosyVoice calls it. Linear weights are kept as the ONNX MatMul
 * initializers hold them: W^T, [in][out]. The weights come from speech_tokenizer_v2.onnx
 * (model/s3tokenizer_onnx.c, by walking the graph).
 */
#ifndef COSY_S3TOKENIZER_H
#define COSY_S3TOKENIZER_H

#include <stdint.h>
#include "cosy.h"
#include "core/threadpool.h"
#include "io/gguf.h"
#include "io/onnx.h"

#define S3TOK_MAX_BLOCKS 64

typedef struct {
    int n_mels;          /* 128 */
    int width;           /* C: 1280 */
    int n_heads;         /* 20 (head_dim 64) */
    int head_dim;        /* 64 */
    int n_blocks;        /* 6 */
    int mlp_width;       /* 5120 */
    int fsmn_kernel;     /* 31 */
    int fsq_dims;        /* 8 */
    int fsq_levels;      /* 3 */
    float attn_ln_eps;   /* 1e-6 */
    float mlp_ln_eps;    /* 1e-5 */
    float rope_theta;    /* 10000 */
} cosy_s3tokenizer_hparams;

typedef struct {
    const float *attn_ln_w, *attn_ln_b;          /* [C] */
    const float *q_w, *q_b, *k_w, *v_w, *v_b;    /* w [C][C] (in, out), b [C] */
    const float *out_w, *out_b;
    const float *fsmn_w;                         /* [C][K] depthwise */
    const float *mlp_ln_w, *mlp_ln_b;            /* [C] */
    const float *mlp1_w, *mlp1_b;                /* [C][M], [M] */
    const float *mlp2_w, *mlp2_b;                /* [M][C], [C] */
} s3tok_block;

typedef struct {
    const float *conv1_w, *conv1_b;              /* [C][n_mels][3], [C] */
    const float *conv2_w, *conv2_b;              /* [C][C][3], [C] */
    s3tok_block *blocks;                         /* [n_blocks] */
    const float *fsq_w, *fsq_b;                  /* [C][fsq_dims], [fsq_dims] */
} s3tok_weights;

typedef struct cosy_s3tokenizer cosy_s3tokenizer;

/* The real tokenizer of CosyVoice2 (width 1280, 20 heads, 6 blocks, MLP 5120, FSMN 31, FSQ 8 x 3). */
cosy_s3tokenizer_hparams cosy_s3tokenizer_default_hparams(void);
cosy_status cosy_s3tokenizer_hparams_validate(const cosy_s3tokenizer_hparams *hp);
int64_t cosy_s3tokenizer_n_params(const cosy_s3tokenizer_hparams *hp);
/* Tokens for T mel frames: ceil(ceil(T / 2) / 2). */
int cosy_s3tokenizer_n_tokens(int frames);

/* A network whose weights are owned by it (cosy_s3tokenizer_own) or borrowed. */
cosy_status cosy_s3tokenizer_create(const cosy_s3tokenizer_hparams *hp, cosy_s3tokenizer **out);
const cosy_s3tokenizer_hparams *cosy_s3tokenizer_hp(const cosy_s3tokenizer *m);
s3tok_weights *cosy_s3tokenizer_weights(cosy_s3tokenizer *m);
float *cosy_s3tokenizer_own(cosy_s3tokenizer *m, size_t floats);
struct net_owned *cosy_s3tokenizer_owned(cosy_s3tokenizer *m); /* the list behind it (model/net_gguf.h) */
void cosy_s3tokenizer_free(cosy_s3tokenizer *m);

/* From speech_tokenizer_v2.onnx, by walking its graph (model/s3tokenizer_onnx.c): architecture read
 * off the graph and checked, weights owned by the network; anything unexpected refused naming the node. */
cosy_status cosy_s3tokenizer_from_onnx(const char *path, cosy_s3tokenizer **out);
cosy_status cosy_s3tokenizer_from_onnx_model(const onnx_model *g, cosy_s3tokenizer **out);

/* Intermediates for tests, time-major [frames][channels]: stage 0 the input of blocks.0, 1 + b the
 * output of block b, 1 + n_blocks the FSQ projection [T'][fsq_dims]. */
typedef void (*s3tok_tap_fn)(void *ctx, int stage, const float *data, int frames, int channels);

/* Tokens [cosy_s3tokenizer_n_tokens(frames)] of `frames` >= 1 log-mel frames (feats [n_mels][frames],
 * row stride ld_feats >= frames). pool may be NULL. */
cosy_status cosy_s3tokenizer_forward(const cosy_s3tokenizer *m, cosy_pool *pool, const float *feats, int frames, int ld_feats,
                                     int32_t *tokens, s3tok_tap_fn tap, void *tap_ctx);

/* The model file (`s3tokenizer.*` keys and tensors, docs/model-format.md; model/s3tokenizer_gguf.c).
 * Architecture keys: COSY_ERR_MISSING, saying what to convert, when the file has no tokenizer. */
cosy_status cosy_s3tokenizer_hparams_read(const gguf_file *g, cosy_s3tokenizer_hparams *hp);
/* From a model file's tensors (f32 borrowed in place, f16/bf16 widened into memory owned by the network). */
cosy_status cosy_s3tokenizer_from_gguf(const gguf_file *g, cosy_s3tokenizer **out);
/* Adds the keys and every weight of `net` (copied when the writer writes: net must live until then). */
cosy_status cosy_s3tokenizer_write(const cosy_s3tokenizer *net, gguf_writer *w);
/* The same with seeded random weights of the sizes hp gives (`cosy convert --random`). */
cosy_status cosy_s3tokenizer_write_random(const cosy_s3tokenizer_hparams *hp, uint64_t seed, gguf_writer *w);
/* The tokenizer of a loaded model (built on first use; the model frees it). COSY_ERR_MISSING, saying so,
 * for a model converted without speech_tokenizer_v2.onnx. */
struct cosy_model;
cosy_status cosy_s3tokenizer_get(struct cosy_model *model, const cosy_s3tokenizer **out);

#endif
