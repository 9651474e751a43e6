/*
 * flow_internal.h — what the flow's files share: the weights of CausalMaskedDiffWithXvec laid
 * out for our kernels (core/gemm.h), the per-call context, the linear layers (flow_linear.c), the
 * layer helpers (flow_layers.c: im2col convolutions, masked attention), and the encoder
 * (cv2_encoder.c) and estimator (cv2_unet.c) entry
 * points that flow.c drives.
 *
 * Layout: every activation is time-major, [rows, channels] with rows = batch * frames (the
 * reference's [B, C, T] tensors transposed), so a Linear layer is one matrix product over all
 * rows and the two classifier-free-guidance rows of the estimator go through every product
 * together. Convolutions are im2col over time (each output row gathers K input rows) plus one
 * product, with weights repacked at load time to [out][K][in].
 *
 * Layers take explicit frame ranges and masks (the chunk size, the attention's query offset
 * and key limit, the rows before a causal convolution's first frame), so a later linear-cost
 * streaming mode can feed cached history instead of recomputing from frame 0.
 */
#ifndef COSY_FLOW_INTERNAL_H
#define COSY_FLOW_INTERNAL_H

#include <pthread.h>
#include "core/arena.h"
#include "core/gemm.h"
#include "core/threadpool.h"
#include "core/vecmath.h"
#include "model/flow/flow.h"
#include "model/model.h"

typedef struct {
    const float *w;       /* [out][in] (PyTorch Linear layout) */
    const float *b;       /* [out] or NULL */
    float *packed;        /* w as f32 panels of COSY_PANEL outputs (core/gemm.h); NULL without AVX-512 */
    float *packed_bias;   /* b zero-padded to the panels (or NULL) */
    uint16_t *tiles;      /* w as bf16 tiles (core/gemm.h), when the flow runs its products in bf16 */
    int in, out;
} flow_linear;

typedef struct {
    const float *w, *b; /* [dim] */
} flow_norm;

/* A Conv1d as a linear layer over im2col rows: lin.w is [out][K][in], repacked from PyTorch's
 * [out][in][K], so one im2col row (K frames of `in` channels) meets it in order. */
typedef struct {
    flow_linear lin;
    int in, out, k;
} flow_conv;

/* ConformerEncoderLayer (normalize_before, no macaron, no conv module) with
 * RelPositionMultiHeadedAttention (cosyvoice/transformer/encoder_layer.py, attention.py) */
typedef struct {
    flow_norm norm_mha, norm_ff;
    flow_linear qkv;                 /* linear_q, linear_k, linear_v stacked: [3E][E] */
    flow_linear out, pos;
    const float *pos_bias_u, *pos_bias_v; /* [heads][d_k] */
    flow_linear ff1, ff2;
} flow_conformer;

/* UpsampleConformerEncoder + encoder_proj */
typedef struct {
    flow_linear embed;
    flow_norm embed_norm;
    flow_conv pre_conv1, pre_conv2;  /* PreLookaheadLayer */
    flow_conformer *blocks;
    int n_blocks;
    flow_conv up_conv;               /* Upsample1D */
    flow_linear up_embed;
    flow_norm up_embed_norm;
    flow_conformer *up_blocks;
    int n_up_blocks;
    flow_norm after_norm;
    flow_linear proj;                /* encoder_proj: width -> 80 */
} cv2_encoder_weights;

/* CausalResnetBlock1D (cosyvoice/flow/decoder.py over matcha's ResnetBlock1D) */
typedef struct {
    flow_linear mlp;                 /* after Mish on the time embedding */
    flow_conv conv1, conv2;          /* CausalConv1d k3 */
    flow_norm norm1, norm2;          /* LayerNorm over channels */
    flow_linear res;                 /* res_conv, a 1x1 convolution */
} flow_resnet;

/* matcha BasicTransformerBlock: self-attention (no qkv bias) + GELU feed-forward */
typedef struct {
    flow_norm norm1, norm3;
    flow_linear qkv;                 /* to_q, to_k, to_v stacked: [3 inner][C] */
    flow_linear out;
    flow_linear ff1, ff2;
} flow_transformer;

/* CausalConditionalDecoder with one U-Net level (channels = [C]) */
typedef struct {
    flow_linear time1, time2;        /* TimestepEmbedding */
    flow_resnet down;
    flow_transformer *down_tf;       /* [n_blocks] */
    flow_conv down_conv;
    flow_resnet *mid;                /* [n_mid] */
    flow_transformer *mid_tf;        /* [n_mid * n_blocks] */
    flow_resnet up;
    flow_transformer *up_tf;         /* [n_blocks] */
    flow_conv up_conv;
    flow_conv final_conv;
    flow_norm final_norm;
    flow_linear final_proj;          /* 1x1 conv C -> 80 */
} cv2_unet_weights;

/* DiTBlock (cosyvoice/flow/DiT/modules.py): AdaLayerNormZero, attention with biases, GELU(tanh) FF */
typedef struct {
    flow_linear ada;                 /* attn_norm.linear: [6 dim][dim], chunks shift/scale/gate msa, shift/scale/gate mlp */
    flow_linear qkv;                 /* to_q, to_k, to_v stacked: [3 inner][dim] with biases */
    flow_linear out;                 /* to_out.0: [dim][inner] */
    flow_linear ff1, ff2;            /* ff.ff.0.0 [ff_mult dim][dim], ff.ff.2 [dim][ff_mult dim] */
} cv3_dit_block;

/* CosyVoice3's token front (CausalMaskedDiffWithDiT: PreLookaheadLayer) and DiT estimator */
typedef struct {
    flow_conv pre_conv1, pre_conv2;  /* PreLookaheadLayer: 80 -> channels (k pre_lookahead_len + 1), channels -> 80 (k3) */
    flow_linear time1, time2;        /* time_embed.time_mlp.0 [dim][time_freq_dim], .2 [dim][dim] */
    flow_linear in_proj;             /* input_embed.proj [dim][80 x | 80 cond | 80 mu | 80 spks] */
    flow_conv *pos1, *pos2;          /* conv_pos_embed.conv{1,2}.0, one per group: [dim / groups][K][dim / groups] */
    const float *inv_freq;           /* rotary_embed.inv_freq [dim_head / 2] */
    cv3_dit_block *blocks;           /* [depth] */
    flow_linear norm_out;            /* AdaLayerNormZero_Final.linear [2 dim][dim]: scale, shift */
    flow_linear proj_out;            /* [80][dim] */
    flow_norm plain;                 /* the affine-free LayerNorm: ones, zeros [dim] */
} cv3_dit_weights;

#define FLOW_MAX_VOICES 64 /* voices the cache holds at most, whatever their size */

struct cosy_flow {
    cosy_model *model;
    const cosy_hparams *hp;
    cosy_pool *pool;
    int fast;                        /* weights packed for the AVX-512 kernels (decided at load) */
    int bf16;                        /* products in bf16 (model params flow_dtype = bf16 on a CPU with bf16 kernels) */
    const float *input_embedding;    /* [vocab][input_size] */
    flow_linear spk_affine;          /* spk_embed_affine_layer */
    cv2_encoder_weights enc;
    cv2_unet_weights est;
    cv3_dit_weights dit;             /* CosyVoice3 (hp->family) instead of enc and est */
    /* CausalConditionalCFM.rand_noise[0, c, :noise_cols] for every mel channel c, time-major
     * ([noise_cols][80]), drawn lazily and grown on demand; older buffers stay alive until the
     * flow is destroyed so a concurrent call never reads freed memory. */
    pthread_mutex_t noise_lock;
    float *noise;
    int noise_cols;
    float **old_noise;
    int n_old_noise;
    /* key/value blocks of finished streams, kept for the next ones (flow_kv_block_get) */
    pthread_mutex_t kv_lock;
    void **kv_free;
    int n_kv_free, cap_kv_free;
    /* the voice cache (flow_stream.c cosy_flow_prompt_get): the prompt state of recently used voices,
     * least recently used out first once their bytes pass voice_budget */
    pthread_mutex_t voice_lock;
    struct cosy_flow_prompt *voices[FLOW_MAX_VOICES];
    unsigned long voice_used[FLOW_MAX_VOICES], voice_clock;
    int n_voices;
    size_t voice_budget;
    long voice_hits, voice_misses;
};
/* Drops every voice of the cache (streams using one keep it alive). */
void flow_voice_cache_clear(cosy_flow *f);

/* Context of one call: the pool, and the scratch arena everything is carved from. */
typedef struct {
    const cosy_flow *flow;
    cosy_pool *pool;
    cosy_arena *arena;
} flow_ctx;

/* ---- linear layers on the pool (flow_linear.c), over the kernels of core/gemm.h ---- */

#define FLOW_BF16_MAX_IN 8192 /* the widest layer input the bf16 mode takes (CosyVoice2: 1536) */

/* y[rows][out] (+)= x[rows][in] W^T + b, on the pool; accumulate adds to y (a residual). Uses the bf16
 * tiles in the bf16 mode, the packed f32 panels on AVX-512, else cosy_sgemm on the plain weights. */
void flow_linear_run(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate);
/* y = act(x W^T + b) (or + y with accumulate), the activation applied as the product is stored. */
void flow_linear_act(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act);

/* ---- layer helpers (flow_layers.c) ---- */

/* fn(ctx, begin, end) over [0, n) split on the pool (inline when small). */
typedef void (*flow_range_fn)(void *ctx, size_t begin, size_t end);
void flow_parallel(flow_ctx *c, size_t n, size_t min_per_part, flow_range_fn fn, void *ctx);
/* Row-wise LayerNorm (in place allowed) over `dim` channels. */
void flow_layer_norm(flow_ctx *c, float *y, const float *x, int rows, int dim, const flow_norm *n, float eps);
/* In-place Mish and y += x, split over the pool. */
void flow_mish(flow_ctx *c, float *x, size_t n);
void flow_add(flow_ctx *c, float *y, const float *x, size_t n);

/*
 * Convolution over time on time-major x[B][T][in] -> y[B][T][out]: output frame t reads input
 * frames t + first_tap .. t + first_tap + K - 1. Frames before 0 come from `before`
 * ([B][n_before][in], the last rows are the nearest) or are zero; frames at or after T come
 * from `after` ([B][n_after][in]) or are zero. first_tap = -(K-1) is a causal convolution
 * (CausalConv1d, Upsample1D after its left pad), 0 a look-ahead one (PreLookaheadLayer.conv1).
 */
cosy_status flow_conv_forward(flow_ctx *c, const flow_conv *cv, const float *x, int B, int T, int first_tap,
                              const float *before, int n_before, const float *after, int n_after, float *y);

/*
 * Multi-head attention core on time-major projections: for each batch b and head h, query
 * rows [0, Tq) of q attend to key rows [0, key_limit(i)) of k/v where key_limit(i) =
 * min(Tk, (floor((q_offset + i) / chunk) + 1) * chunk) when chunk > 0 (add_optional_chunk_mask
 * with a static chunk: every frame sees its whole chunk and all earlier ones), Tk when
 * chunk == 0. q_offset is the absolute frame index of query row 0 (0 unless history is
 * cached). Scores are scaled by `scale`. If pos_scores is given (relative-position attention)
 * it is called per (b, h, query block) to add the position term. out[B*Tq][heads*d].
 */
typedef void (*flow_pos_scores_fn)(void *ctx, int b, int h, int i0, int i1, int n_keys, float *scores, int ld_scores, float *scratch);
/* A query block has at most this many rows; a pos_scores callback gets per-thread scratch of
 * FLOW_ATTN_BLOCK * (FLOW_ATTN_BLOCK + Tk) + ceil((FLOW_ATTN_BLOCK + Tk) / 32) * 32 * d floats. */
#define FLOW_ATTN_BLOCK 64
cosy_status flow_attention(flow_ctx *c, const float *q, int ldq, const float *k, const float *v, int ldkv, int B, int Tq, int Tk,
                           int heads, int d, int q_offset, int chunk, float scale, flow_pos_scores_fn pos_scores,
                           void *pos_ctx, float *out, int ldo);
/* Scratch floats flow_attention takes from the arena (with_pos: a pos_scores callback is given). */
size_t flow_attention_scratch_floats(const flow_ctx *c, int B, int Tk, int heads, int d, int with_pos);

/* Keys and values kept across calls in pages of rows_per_page rows (the encoder's, flow_stream.c: a
 * page per attention chunk): head h of row j of batch b has its K (d elements) at pages[j / rows_per_page]
 * + offset + b * batch_offset + (j % rows_per_page) * row_stride + h * head_stride, and its V v_offset
 * elements after that. An element is a float, or with bf16 a bfloat16 (uint16_t; only in the flow's bf16
 * mode, whose attention rounds K and V to bf16 anyway: storing them rounded changes no result). */
typedef struct {
    const void *const *pages;
    int rows_per_page;
    size_t offset, batch_offset, row_stride, head_stride, v_offset;
    int bf16;
} flow_kv_pages;
/* flow_attention with keys/values [0, Tk) read from pages (each (batch, head) gathers its rows
 * into scratch first, widened to f32 if stored in bf16, or packs them straight from the pages, then runs
 * exactly the computation of flow_attention). */
cosy_status flow_attention_paged(flow_ctx *c, const float *q, int ldq, const flow_kv_pages *kv, int B, int Tq, int Tk, int heads,
                                 int d, int q_offset, int chunk, float scale, flow_pos_scores_fn pos_scores, void *pos_ctx, float *out,
                                 int ldo);
size_t flow_attention_paged_scratch_floats(const flow_ctx *c, int B, int Tk, int heads, int d, int with_pos);

/*
 * ---- the estimator's keys/values in blocks (flow_kv.c, over core/attention.h) ----
 *
 * A block holds COSY_KV_BLOCK (32) consecutive frames' keys and values for every slab it was made for
 * (the stream: every Euler step, layer, CFG row and head; a stateless call: one layer's CFG rows and
 * heads), each slab in the layout the attention kernels read (core/attention.h), so keys are written
 * once and never copied again.
 */
typedef struct {
    void *mem;   /* the block's slabs */
    int key0;    /* the frame in slot 0 */
} flow_kv_block;

/* One attention layer's keys/values: blocks sorted by key0 (not necessarily adjacent: a windowed
 * stream drops old ones), and where this layer's slabs lie in each block. */
typedef struct {
    const flow_kv_block *blocks;
    int n_blocks;
    size_t offset;        /* elements (uint16 in bf16, float in f32) from a block's start to CFG row 0, head 0 */
    size_t batch_stride;  /* elements between CFG rows' slabs */
    size_t head_stride;   /* elements between heads' slabs (cosy_kv_slab_elems) */
    int bf16;
    /* which keys a query of chunk g sees besides the chunk mask (keys < chunk * (g + 1)): with
     * window > 0 only keys < pinned (the prompt's chunks) and keys >= chunk * (g + 1) - window */
    int pinned, window;
} flow_kv_view;

/* A stream's block memory (flow.c): flow_kv_block_bytes, from the flow's pool of released blocks or
 * freshly mapped; NULL when out of memory. Released blocks return to the pool (up to 2 GiB of them). */
size_t flow_kv_block_bytes(const cosy_flow *f);
void *flow_kv_block_get(cosy_flow *f);
void flow_kv_block_release(cosy_flow *f, void *mem);
/* Writes the keys/values of frames [frame0, frame0 + n) of CFG row b (k, v rows of stride ld, heads
 * of d values) into their blocks (which must exist). */
void flow_kv_put(const flow_kv_view *kv, int b, int frame0, int n, const float *k, const float *v, int ld, int heads, int d);
/* Multi-head attention of queries [0, Tq) (absolute frames q_offset + i) of B CFG rows over the keys
 * [0, Tk) in kv, with the chunk mask (chunk > 0; every key below the end of the query's chunk) or
 * none (chunk == 0), and kv's window. Queries q[b * Tq + i] (stride ldq), out likewise (stride ldo). */
cosy_status flow_attention_kv(flow_ctx *c, const float *q, int ldq, const flow_kv_view *kv, int B, int Tq, int q_offset, int Tk, int heads,
                              int d, int chunk, float scale, float *out, int ldo);
size_t flow_attention_kv_scratch_bytes(const flow_ctx *c, int B, int Tk, int heads, int d);

/*
 * ---- state kept across calls (flow_stream_cache.c) ----
 *
 * A range-based forward computes rows [start, start + n) of a chunk-causal network (tokens or
 * frames) when everything before `start` is final and cached. One flow_cache describes one
 * sequence level (encoder tokens, encoder frames, or the estimator's frames at one Euler step):
 * page g holds, for the rows of attention chunk g, every attention layer's keys/values (a slab
 * per layer and batch row: K [heads][chunk][head_dim], then V the same: head-major, so that
 * attention reads each head's keys as contiguous runs) and, per causal convolution, the last
 * conv_rows input rows of the chunk (the history the next chunk's first outputs read; batch row b's at
 * b * conv_rows * conv_width in the slot). start is a multiple of chunk; the caller has allocated the
 * pages of every chunk the call touches. The estimator keeps its keys/values in blocks instead
 * (flow_kv_view) and uses only the convolution part.
 */
typedef struct {
    float *const *pages;
    int chunk;                 /* rows per attention chunk = per page */
    int start, n;              /* rows computed by this call: [start, start + n) */
    int B;                     /* batch rows (the estimator's two CFG rows) */
    int kv_width, kv_heads;    /* K (and V) floats per row = heads * head_dim; heads */
    size_t kv_base;            /* floats from the page start to layer 0, batch row 0 */
    size_t kv_layer, kv_batch; /* floats between layers' / batch rows' slabs */
    int conv_rows, conv_width; /* the largest history (rows) and input width of the level's convolutions */
    size_t conv_base;          /* floats from the page start to convolution 0's slot */
    size_t conv_slot;          /* floats per convolution: at least B * conv_rows * conv_width */
} flow_cache;

/* Writes the new rows' keys and values (k, v: [B][n] rows of stride ld) of `layer` into the pages. */
void flow_cache_put_kv(const flow_cache *fc, int layer, const float *k, const float *v, int ld);
/* The pages of `layer` as flow_attention_paged reads them (keys [0, start + n)). */
flow_kv_pages flow_cache_kv(const flow_cache *fc, int layer);
/* Convolution `id` about to run over x[B][n][in] with `rows` (= K - 1) history rows: stores the
 * last `rows` input rows of every chunk that x completes, and returns the history before
 * `start` (batch row b's rows at b * rows * conv_width), NULL at the sequence start. */
const float *flow_cache_conv(const flow_cache *fc, int id, const float *x, int in, int rows);
/* Floats a sequence of allocations of these sizes takes from an arena (64-byte alignment). */
#define FLOW_ARENA_FLOATS(n) ((((size_t)(n)) + 15) / 16 * 16)


/* ---- encoder (cv2_encoder.c) ---- */

cosy_status cv2_encoder_load(cosy_flow *f);
/* Frames the encoder produces for `n_tokens` prompt+speech tokens when the last `n_context`
 * are look-ahead context only. */
int cv2_encoder_frames(const cosy_flow *f, int n_tokens, int n_context);
/* Embedded tokens x[n][input_size] (n = n_tokens incl. context) -> h[T2][width] before
 * encoder_proj, and mu[T2][80] after it. */
cosy_status cv2_encoder_forward(flow_ctx *c, const float *x, int n_tokens, int n_context, int streaming, float *h, float *mu);
size_t cv2_encoder_scratch_bytes(const cosy_flow *f, int n_tokens, int n_context);

/* EspnetRelPositionalEncoding rows for relative distances r_hi, r_hi - 1, ..., r_lo (row m holds
 * distance r_hi - m), [r_hi - r_lo + 1][d], float32 as the reference builds its table. */
void flow_rel_position_rows(float *pe, int r_hi, int r_lo, int d);

/* What the encoder keeps across calls (chunk-causal streaming only): the token-level conformer
 * blocks and PreLookaheadLayer.conv2 (tok: layers 0..enc_blocks-1, convolution 0), the frame-level
 * ones and Upsample1D's convolution (frame: layers 0..enc_up_blocks-1, convolution 0), and per
 * conformer block its linear_pos-projected relative-position table (row zero - r holds distance r,
 * covering every distance the call's queries and keys span). */
typedef struct {
    flow_cache tok, frame;
    const float *const *pos_tok, *const *pos_frame; /* [enc_blocks], [enc_up_blocks] */
    int pos_zero_tok, pos_zero_frame;
} cv2_encoder_cache;
/* cv2_encoder_forward for tokens [tok.start, tok.start + n_rows - n_context) (x: their embeddings
 * followed by the n_context look-ahead ones) when everything before is cached: h and mu receive
 * frames [frame.start, frame.start + frame.n) (frame.start = 2 tok.start, frame.n = 2 tok.n). */
cosy_status cv2_encoder_forward_cached(flow_ctx *c, const float *x, int n_rows, int n_context, const cv2_encoder_cache *ec, float *h,
                                       float *mu);
/* Scratch for cv2_encoder_forward_cached of n_rows (incl. context) new tokens when the whole
 * sequence then holds `tokens` tokens (keys). */
size_t cv2_encoder_cached_scratch_bytes(const cosy_flow *f, int n_rows, int n_context, int tokens);

/* ---- estimator (cv2_unet.c) ---- */

cosy_status cv2_unet_load(cosy_flow *f);
/* CausalConditionalDecoder.forward for B rows of T frames: in[B*T][in_channels] packed as
 * [x | mu | spks | cond] per frame (time-major), t[B]; out[B*T][80]. */
cosy_status cv2_unet_forward(flow_ctx *c, const float *in, const float *t, int B, int T, int streaming, float *out);
size_t cv2_unet_scratch_bytes(const cosy_flow *f, int B, int T);
/* The same with chunk masks and the window rule of flow_kv_view (the stateless twin of a windowed
 * stream); cv2_unet_scratch_bytes applies. */
cosy_status cv2_unet_forward_windowed(flow_ctx *c, const float *in, const float *t, int B, int T, int pinned, int window, float *out);
/* Attention layers (transformer blocks) and causal convolutions of the estimator, as numbered in
 * its flow_cache: layers in order down, mid, up; convolutions down (resnet conv1, conv2,
 * downsample), each mid resnet (conv1, conv2), up (conv1, conv2, upsample), final block. */
int cv2_unet_layers(const cosy_flow *f);
int cv2_unet_convs(const cosy_flow *f);
/* The widest input of an estimator convolution (the up resnet's [x | skip]). */
int cv2_unet_conv_width(const cosy_flow *f);
/* cv2_unet_forward (chunk masks) on frames [fc->start, fc->start + fc->n) of B = fc->B rows
 * (in and out [B][n] rows) with the convolution history in fc and the keys/values of every earlier
 * frame in kv (kv->offset: layer 0 of this Euler step; layer l's slabs are l * layer_stride further). */
cosy_status cv2_unet_forward_cached(flow_ctx *c, const float *in, const float *t, const flow_cache *fc, const flow_kv_view *kv,
                                    size_t layer_stride, float *out);
/* Scratch for cv2_unet_forward_cached of B rows x n new frames when the sequence then holds
 * `frames` frames. */
size_t cv2_unet_cached_scratch_bytes(const cosy_flow *f, int B, int n, int frames);

/* ---- CosyVoice3: PreLookaheadLayer and the DiT estimator (cv3_dit.c) ---- */

cosy_status cv3_dit_load(cosy_flow *f);
/* PreLookaheadLayer on embedded tokens x[n_tokens][80] whose last n_context are look-ahead context
 * only: h[n_tokens - n_context][80] (with the residual). */
cosy_status cv3_pre_lookahead(flow_ctx *c, const float *x, int n_tokens, int n_context, float *h);
size_t cv3_pre_lookahead_scratch_bytes(const cosy_flow *f, int n_tokens);
/* DiT.forward for B rows of T frames, time-major: x, cond, mu [B*T][80], spks [B][80], t [B]; full
 * attention or (streaming) the static chunk mask; out [B*T][80]. trace (may be NULL) receives the
 * intermediates. */
cosy_status cv3_dit_forward(flow_ctx *c, const float *x, const float *cond, const float *mu, const float *spks, const float *t, int B, int T,
                            int streaming, float *out, cosy_flow_dit_trace *trace);
size_t cv3_dit_scratch_bytes(const cosy_flow *f, int B, int T);

/* What the chunk-causal DiT keeps of earlier frames at one Euler step (cv3_stream.c): in pages of
 * `chunk` frames, every block's keys (rotated) and values and the inputs of the two conv pos-emb
 * convolutions, per CFG row. Frame j of CFG row b: layer l's K at (kv type *)pages[j / chunk] + kv_base +
 * l kv_layer + b kv_row + (j % chunk) inner, its V chunk * inner elements further; convolution i's
 * input row at (float *)pages[j / chunk] + conv_base + i conv_id + b conv_row + (j % chunk) dim. The
 * kv type is float, or bf16 (uint16_t, rounded to nearest even) with kv_bf16, which only the flow's bf16
 * mode may set: its attention rounds K and V to bf16 whether they come from pages or rows, so the stream
 * stays equal to the stateless flow. */
typedef struct {
    void *const *pages;        /* covering every frame < start + the call's frames */
    int chunk;                 /* frames per page = the attention chunk */
    int start;                 /* the call's first frame; every earlier one is in the pages */
    int kv_bf16;               /* keys and values stored as bf16 */
    size_t kv_base, kv_layer, kv_row;    /* in kv elements */
    size_t conv_base, conv_id, conv_row; /* in floats */
} cv3_dit_cache;
/* cv3_dit_forward (chunk mask) on frames [cache->start, cache->start + T): writes their keys, values
 * and convolution inputs into the pages and reads the earlier frames' from them. */
cosy_status cv3_dit_forward_cached(flow_ctx *c, const float *x, const float *cond, const float *mu, const float *spks, const float *t, int B,
                                   int T, const cv3_dit_cache *cache, float *out);
/* Scratch for cv3_dit_forward_cached of B rows x n frames when the sequence then holds `frames` frames. */
size_t cv3_dit_cached_scratch_bytes(const cosy_flow *f, int B, int n, int frames);

/* CosyVoice3's cached chunk-causal stream (cv3_stream.c), behind cosy_flow_stream_* (flow_stream.h has
 * the contract): spks [80] is the prompt's speaker vector (flow_speaker). */
typedef struct cv3_stream cv3_stream;
/* A stream of this prompt; from (or NULL): a prompt state of the same prompt whose final chunks it reads
 * (they must outlive it). */
cosy_status cv3_stream_new(cosy_flow *f, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat, const float *spks,
                           const cv3_stream *from, cv3_stream **out);
/* Computes the first n_chunks chunks from the prompt alone (their look-ahead being prompt tokens): the
 * per-voice prompt state every stream of the voice starts from. */
cosy_status cv3_stream_prefill(cv3_stream *s, int n_chunks);
cosy_status cv3_stream_step(cv3_stream *s, const int32_t *tokens, int n, int offset, int finalize, float *mel_out, int *n_frames);
size_t cv3_stream_bytes(const cv3_stream *s);
int cv3_stream_chunks(const cv3_stream *s);
void cv3_stream_free(cv3_stream *s);

/* ---- the CFM pieces shared by cosy_flow_inference and the stream (flow.c) ---- */

/* CausalConditionalCFM.rand_noise[0, :, :frames], time-major [frames][80] (valid while the flow lives). */
cosy_status flow_noise(cosy_flow *f, int frames, const float **out);
/* spks = spk_embed_affine_layer(F.normalize(embedding)) -> [80] */
void flow_speaker(flow_ctx *c, const float *embedding, float *spks);
/* classifier-free guidance: v = w_cond v0 - w_uncond v1 */
void flow_cfg_weights(const cosy_flow *f, float *w_cond, float *w_uncond);
/* One Euler step of the CFG-combined velocity: x += dt (w_cond v[0] - w_uncond v[1]) over x [T][M] and
 * the estimator's output v [2][T][M] (CFG rows); est0 (may be NULL): v channel-major [2][M][T], the
 * first step's raw estimates for a trace. Every solver (stateless and streams, both families) uses it. */
void flow_euler_step(float *x, const float *v, int T, int M, float dt, float w_cond, float w_uncond, float *est0);

#endif
