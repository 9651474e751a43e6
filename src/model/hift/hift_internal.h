/*
 * hift_internal.h — the HiFT state shared by hift.c (F0 predictor, generator, scratch) and
 * hift_source.c (the harmonic-plus-noise source). The convolution and activation kernels they call
 * are in core/conv1d.h and core/activation.h. Not part of the engine's interface: everything outside
 * src/model/hift*.c uses hift.h.
 */
#ifndef COSY_HIFT_INTERNAL_H
#define COSY_HIFT_INTERNAL_H

#include <pthread.h>
#include "core/arena.h"
#include "core/conv1d.h"
#include "core/threadpool.h"
#include "model/hift/hift.h"
#include "model/hparams.h"
#include "model/hift/stft.h"

#define HIFT_MAX_LIST COSY_HP_MAX_LIST
#define HIFT_F0_LAYERS 5        /* ConvRNNF0Predictor.condnet: five k3 convolutions */
#define HIFT_F0_KERNEL 3
#define HIFT_CONV_KERNEL 7      /* conv_pre / conv_post: kernel 7, padding 3 */
#define HIFT_MAX_SCRATCH 4      /* arenas kept for concurrent calls; more callers get a temporary one */

/* hifigan ResBlock: for each dilation d, x += conv2(snake2(conv1_d(snake1(x)))) */
typedef struct {
    int ch, k, n;
    cosy_conv conv1[HIFT_MAX_LIST], conv2[HIFT_MAX_LIST];
    const float *alpha1[HIFT_MAX_LIST], *alpha2[HIFT_MAX_LIST];
} hift_resblock;

typedef struct {
    cosy_arena arena;
    int busy;
} hift_scratch;

struct cosy_hift {
    cosy_model *model;
    const cosy_hparams *hp;
    cosy_pool *pool;
    int harmonics;            /* nb_harmonics + 1 */
    int upsample_scale;       /* prod(upsample_rates) * istft hop: samples per mel frame */
    int bf16;                 /* the generator's convolutions run in bf16 (w_bf16 packed; F0 predictor and
                                 source_downs stay f32) */
    /* F0 predictor */
    cosy_conv f0_conv[HIFT_F0_LAYERS];
    const float *f0_cls_w, *f0_cls_b;
    /* source merge (SourceModuleHnNSF.l_linear) */
    const float *merge_w, *merge_b;
    /* generator */
    cosy_conv conv_pre, conv_post;
    cosy_conv ups[HIFT_MAX_LIST];
    cosy_conv source_downs[HIFT_MAX_LIST];
    hift_resblock source_resblocks[HIFT_MAX_LIST];
    hift_resblock resblocks[HIFT_MAX_LIST * HIFT_MAX_LIST];
    cosy_stft stft;
    /* scratch arenas, one per concurrent call */
    pthread_mutex_t scratch_lock;
    hift_scratch scratch[HIFT_MAX_SCRATCH];
};

/* hift_source.c: the three random draws of one call over n_frames frames, in the order documented in
 * hift.h (rand_ini [harmonics] with its first entry zeroed, the harmonic noise [harmonics][T], the
 * discarded source noise [T]). They do not depend on f0, so they can be drawn beside the F0 predictor. */
typedef struct {
    float *rand_ini, *noise, *discard;
} hift_draws;

cosy_status hift_source_draws_alloc(const cosy_hift *h, int n_frames, hift_draws *d, cosy_arena *arena);
void hift_source_draw(const cosy_hift *h, int n_frames, cosy_rng_source *rng, hift_draws *d);

/* SourceModuleHnNSF(f0_upsamp(f0)) of HiFTGenerator.inference for n_frames frames with those draws:
 * writes the merged source [n_frames * upsample_scale] (sine_merge, before the cache overwrite) and,
 * if uv is not NULL, the voiced flag per sample. */
cosy_status hift_source_forward(const cosy_hift *h, const float *f0, int n_frames, const hift_draws *d, float *source, float *uv,
                                cosy_arena *arena);

#endif
