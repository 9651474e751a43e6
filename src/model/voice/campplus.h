/*
 * campplus.h — CAM++, the speaker-embedding network CosyVoice2 runs on a prompt (campplus.onnx):
 * 3D-Speaker's CAMPPlus (speakerlab/models/campplus/DTDNN.py, layers.py), natively.
 *
 *   input [T][80] mean-normalised kaldi fbank (model/voice_features.h)
 *   FCM head   2-D conv 3x3 + BN + ReLU, residual layers of BasicResBlocks (the first block of each
 *              layer strided 2 in frequency, with a 1x1 shortcut), a last conv strided 2 in frequency;
 *              [C][F/8][T] reshaped to [C * F/8][T]
 *   TDNN       conv k5 stride 2 + BN + ReLU -> [init_channels][T'], T' = (T - 1) / 2 + 1
 *   blocks     CAM dense TDNN layers, each: BN + ReLU, 1x1 conv (+ BN + ReLU) to bn_channels, then the
 *              CAM layer: a local conv (k, dilation) gated by sigmoid(linear2(relu(linear1(context)))),
 *              context = mean over all frames + the mean of the frame's 100-frame segment (ceil mode:
 *              the last, partial segment averaged over its real length); the layer's growth_rate
 *              outputs are concatenated to its input. After each block a transit layer: BN + ReLU +
 *              1x1 conv halving the channels.
 *   out        BN + ReLU, mean and unbiased std over time, 1x1 conv to embedding_size, BatchNorm
 *              without affine -> [embedding_size] (not normalised; the flow L2-normalises it)
 *
 * Every BatchNorm that follows a convolution is folded into that convolution's weight and bias (as
 * the exporter does for the released file: Conv with bias); those that follow a concatenation are
 * kept as per-channel scale and shift. The weights come from campplus.onnx (model/campplus_onnx.c,
 * by walking the graph) or from the model file (`campplus.*` tensors, docs/model-format.md).
 */
#ifndef COSY_CAMPPLUS_H
#define COSY_CAMPPLUS_H

#include <stdint.h>
#include "cosy.h"
#include "core/threadpool.h"
#include "io/gguf.h"
#include "io/onnx.h"

#define CAMPPLUS_MAX_BLOCKS 8
#define CAMPPLUS_FCM_LAYERS 2

typedef struct {
    int feat_dim;                       /* 80 fbank bins */
    int fcm_channels;                   /* m_channels (32) */
    int fcm_blocks[CAMPPLUS_FCM_LAYERS];/* BasicResBlocks per FCM layer (2, 2) */
    int tdnn_channels;                  /* init_channels (128) */
    int tdnn_kernel, tdnn_stride;       /* 5, 2 */
    int n_blocks;                       /* 3 */
    int block_layers[CAMPPLUS_MAX_BLOCKS];   /* (12, 24, 16) */
    int block_kernel[CAMPPLUS_MAX_BLOCKS];   /* (3, 3, 3) */
    int block_dilation[CAMPPLUS_MAX_BLOCKS]; /* (1, 2, 2) */
    int growth_rate;                    /* 32 */
    int bn_channels;                    /* bn_size * growth_rate (128) */
    int cam_channels;                   /* bn_channels / reduction (64) */
    int seg_len;                        /* 100 frames per pooling segment */
    int embedding_size;                 /* 192 */
} cosy_campplus_hparams;

/* A convolution with its BatchNorm folded in: w [cout][cin][k...], b [cout] (NULL only for cam_local, which has none). */
typedef struct {
    const float *w, *b;
} campplus_conv;

/* A BatchNorm kept alone (after a concatenation): y = x * scale + shift, per channel. */
typedef struct {
    const float *scale, *shift;
} campplus_bn;

typedef struct {
    campplus_conv conv1, conv2;          /* 3x3, conv1 strided in frequency for the first block */
    campplus_conv shortcut;              /* 1x1, strided; w NULL for an identity shortcut */
} campplus_res_block;

typedef struct {
    campplus_bn bn1;                     /* nonlinear1 (BN + ReLU on the concatenated input) */
    campplus_conv linear1;               /* 1x1 to bn_channels, nonlinear2's BN folded in (ReLU after) */
    campplus_conv local;                 /* cam_layer.linear_local [growth][bn_channels][k], bias 0 */
    campplus_conv cam1, cam2;            /* cam_layer.linear1 [cam][bn][1], linear2 [growth][cam][1] */
} campplus_dense_layer;

typedef struct {
    campplus_conv head_conv1;                               /* [m][1][3][3] */
    campplus_res_block *res[CAMPPLUS_FCM_LAYERS];           /* [fcm_blocks[l]] */
    campplus_conv head_conv2;                               /* [m][m][3][3], stride 2 in frequency */
    campplus_conv tdnn;                                     /* [init][m * F/8][k] */
    campplus_dense_layer *layers[CAMPPLUS_MAX_BLOCKS];      /* [block_layers[b]] */
    campplus_bn transit_bn[CAMPPLUS_MAX_BLOCKS];
    campplus_conv transit[CAMPPLUS_MAX_BLOCKS];             /* [C/2][C][1]; the last has out_nonlinear's BN */
    campplus_conv dense;                                    /* [emb][2 C][1], the affine-free BN folded in */
} campplus_weights;

typedef struct cosy_campplus cosy_campplus;

/* The real CAM++ of CosyVoice2 (3D-Speaker defaults, feat_dim 80, embedding 192). */
cosy_campplus_hparams cosy_campplus_default_hparams(void);
/* Consistency of the sizes (positive, within limits, channel counts that halve evenly). */
cosy_status cosy_campplus_hparams_validate(const cosy_campplus_hparams *hp);
/* Channels entering block b (b == n_blocks: after the last transit). */
int cosy_campplus_block_channels(const cosy_campplus_hparams *hp, int b);
/* The number of parameters (for reports). */
int64_t cosy_campplus_n_params(const cosy_campplus_hparams *hp);

/* Every weight tensor, in a fixed order: our name (`campplus.tdnn.weight`), its shape, what kind of
 * value it is (for random initialisation), and the slot in `w` it belongs in (w may be NULL: names
 * and shapes only). Stops when fn returns non-zero. */
typedef enum { CAMPPLUS_WEIGHT, CAMPPLUS_BIAS, CAMPPLUS_SCALE, CAMPPLUS_SHIFT } campplus_kind;
typedef int (*campplus_visit_fn)(void *ctx, const char *name, int ndim, const int64_t *shape, campplus_kind kind, const float **slot);
cosy_status cosy_campplus_alloc_layers(const cosy_campplus_hparams *hp, campplus_weights *w);
void cosy_campplus_free_layers(campplus_weights *w);
void cosy_campplus_visit(const cosy_campplus_hparams *hp, campplus_weights *w, campplus_visit_fn fn, void *ctx);

/* Architecture keys (`campplus.*` metadata) to / from a model file. */
void cosy_campplus_hparams_write(const cosy_campplus_hparams *hp, gguf_writer *w);
/* COSY_ERR_MISSING when the file has no CAM++. */
cosy_status cosy_campplus_hparams_read(const gguf_file *g, cosy_campplus_hparams *hp);

/* A network over weights owned by it (`owned`, freed with it) or borrowed from a mapped model file. */
cosy_status cosy_campplus_create(const cosy_campplus_hparams *hp, cosy_campplus **out);
cosy_campplus_hparams *cosy_campplus_hp(cosy_campplus *m);
campplus_weights *cosy_campplus_weights(cosy_campplus *m);
/* Memory freed with the network (64-byte aligned). */
float *cosy_campplus_own(cosy_campplus *m, size_t floats);
void cosy_campplus_free(cosy_campplus *m);
/* From a model file's `campplus.*` tensors (f32 in place, f16/bf16 widened). */
cosy_status cosy_campplus_from_gguf(const gguf_file *g, cosy_campplus **out);

/* The CAM++ of a loaded model (built from its `campplus.*` tensors on first use; the model frees it).
 * COSY_ERR_MISSING, saying so, for a model converted without campplus.onnx. */
struct cosy_model;
cosy_status cosy_campplus_get(struct cosy_model *model, const cosy_campplus **out);

/* Adds the architecture keys and every weight of `net` (f32, copied when the writer writes: net must
 * live until then) to a model file being written. */
cosy_status cosy_campplus_write(const cosy_campplus *net, gguf_writer *w);
/* The same with seeded random weights of the sizes hp gives (for `cosy convert --random`). */
cosy_status cosy_campplus_write_random(const cosy_campplus_hparams *hp, uint64_t seed, gguf_writer *w);

/* From campplus.onnx, by walking its graph (model/campplus_onnx.c): the architecture read off the graph,
 * every BatchNorm folded; weights owned by the network. A graph that is not CAM++ as 3D-Speaker defines
 * it is refused naming the node. */
cosy_status cosy_campplus_from_onnx(const char *path, cosy_campplus **out);
cosy_status cosy_campplus_from_onnx_model(const onnx_model *g, cosy_campplus **out);

/* Intermediate outputs for tests (each NULL or [C][T] channel-major as the ONNX values are):
 * stage 0 head [m * F/8][T], 1 tdnn, then per block b: 2 + 2b block output, 3 + 2b transit output,
 * then 2 + 2 n_blocks out_nonlinear [C][T'], 3 + 2 n_blocks stats [2 C]. */
typedef void (*campplus_tap_fn)(void *ctx, int stage, const float *data, int channels, int frames);

/* The embedding [embedding_size] of `frames` x feat_dim features (row-major [T][80], as the graph's
 * `input`). Needs at least 3 frames (2 after the stride-2 TDNN, for the unbiased std). pool may be
 * NULL (one thread). */
cosy_status cosy_campplus_forward(const cosy_campplus *m, cosy_pool *pool, const float *feats, int frames, float *embedding,
                                  campplus_tap_fn tap, void *tap_ctx);

#endif
