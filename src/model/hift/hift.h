/*
 * hift.h — the HiFT vocoder of CosyVoice2 (cosyvoice/hifigan/generator.py, HiFTGenerator.inference,
 * with cosyvoice/hifigan/f0_predictor.py, ConvRNNF0Predictor): 80-bin mel at 50 frames per second
 * -> 24 kHz waveform, 480 samples per frame.
 *
 * Stages: the F0 predictor (five k3 convolutions with ELU, a linear classifier, |.|), the
 * harmonic-plus-noise source (hift_source.c: SineGen2's phase path, voiced/unvoiced noise, the
 * l_linear + tanh merge), the STFT of the source (stft.c), and the generator (hift.c): conv_pre,
 * the ConvTranspose1d upsampling stack with the downsampled source spectrum fused in after each
 * step, multi-kernel Snake resblocks, conv_post, exp/sin to magnitude/phase, iSTFT, clamp.
 *
 * The HiFT state is built once per model (cosy_hift_get) and is read-only during inference, so
 * several sessions may vocode at the same time. Scratch memory lives in arenas kept by the HiFT
 * object and handed to one call at a time; an arena grows (once) when a longer input arrives and
 * is reused afterwards, so steady streaming allocates nothing.
 */
#ifndef COSY_HIFT_H
#define COSY_HIFT_H

#include <stdint.h>
#include "cosy.h"
#include "core/torch_rng.h"

typedef struct cosy_hift cosy_hift;

/* All random draws of a HiFT call go through one source, in call order, so tests replay the
 * fixture's recorded draws; in production it is our own seeded generator (cosy_hift_rng below). The
 * draws may be made on one of the model's pool threads (beside the F0 predictor), never two at once.
 *
 * One cosy_hift_inference call makes exactly three draws, in the reference's order:
 *   1. uniform(n = nb_harmonics + 1)   SineGen2._f02sine rand_ini (torch.rand(1, 9))
 *   2. normal(n = H * T)               SineGen2.forward randn_like(sine_waves), H = nb_harmonics + 1,
 *                                      T = n_frames * 480, delivered harmonic-major [H][T]: the
 *                                      memory order in which torch fills that transposed tensor
 *   3. normal(n = T)                   SourceModuleHnNSF.forward randn_like(uv) (result unused, the
 *                                      draw only advances the generator)
 */
typedef struct {
    void (*uniform)(void *ctx, float *out, int64_t n);  /* torch.rand */
    void (*normal)(void *ctx, float *out, int64_t n);   /* torch.randn(_like) */
    void *ctx;
} cosy_rng_source;

/* The HiFT vocoder of `model`, built on first use (thread-safe). */
cosy_status cosy_hift_get(cosy_model *model, cosy_hift **out);

/* Output samples per mel frame (prod(upsample_rates) * istft hop = 480). */
int cosy_hift_samples_per_frame(const cosy_hift *hift);
/* Source harmonics (nb_harmonics + 1 = 9). */
int cosy_hift_harmonics(const cosy_hift *hift);
/* The type the generator's convolutions run in: bf16 when the model's hift_dtype is bf16 (AUTO resolved
 * at load: bf16 where faster than f32) and the CPU multiplies bf16 natively (AMX or AVX512-BF16), else
 * f32. */
cosy_dtype cosy_hift_dtype(const cosy_hift *hift);

/* HiFTGenerator.inference(speech_feat=mel, cache_source): mel channel-major [80, n_frames]; cache_source may be
 * NULL/0; writes wav[n_frames * 480] (clamped to ±audio_limit) and, if source_out is not NULL, the source
 * signal [n_frames * 480] after the cache overwrite. */
cosy_status cosy_hift_inference(cosy_hift *hift, const float *mel, int n_frames, const float *cache_source,
                                int n_cache, cosy_rng_source *rng, float *wav_out, float *source_out);

/* Intermediates of one inference, for locating mismatches stage by stage. Each pointer may be NULL.
 * T = n_frames * 480, L = T / hop + 1 STFT frames, B = n_fft / 2 + 1 bins; layouts as the fixtures:
 *   f0          [n_frames]   f0_predictor output (Hz)
 *   source_raw  [T]          tanh(l_linear(sine_waves)) before the cache overwrite
 *   uv          [T]          voiced flag per sample
 *   stft_real   [B][L]       _stft(source) real part
 *   stft_imag   [B][L]       imaginary part
 *   magnitude   [B][L]       exp(conv_post[:B]) before the clip at 1e2
 *   phase       [B][L]       sin(conv_post[B:])
 *   istft       [T]          torch.istft output before the clamp
 * and the wall time of the stages (filled in on return; f0_ms includes the source's random draws,
 * which run beside the F0 predictor). */
typedef enum {
    COSY_HIFT_OP_F0,              /* the F0 predictor (convolutions, ELU, classifier), with the source's
                                     random draws beside it on a second thread */
    COSY_HIFT_OP_SOURCE,          /* sine generation, noise, l_linear + tanh merge */
    COSY_HIFT_OP_STFT,            /* the source's STFT */
    COSY_HIFT_OP_CONV_PRE,
    COSY_HIFT_OP_UPSAMPLE,        /* the ConvTranspose1d stack (ups) */
    COSY_HIFT_OP_SOURCE_DOWN,     /* source_downs (strided convolutions of the spectrum) */
    COSY_HIFT_OP_SOURCE_RESBLOCK, /* the source resblocks' convolutions */
    COSY_HIFT_OP_RESBLOCK,        /* the resblocks' convolutions of kernel resblock_kernel_sizes[0], */
    COSY_HIFT_OP_RESBLOCK_LAST = COSY_HIFT_OP_RESBLOCK + 2, /* [1], [2] (one entry each) */
    COSY_HIFT_OP_SNAKE,           /* Snake activations (with the conversion of their output in bf16) */
    COSY_HIFT_OP_ELEMENTWISE,     /* leaky ReLU, sums, the resblock mean, copies */
    COSY_HIFT_OP_CONV_POST,
    COSY_HIFT_OP_ISTFT,           /* exp / sin to magnitude and phase, iSTFT, clamp */
    COSY_HIFT_N_OPS
} cosy_hift_op;

/* "f0 predictor + draws", "source", ... for reports */
const char *cosy_hift_op_name(cosy_hift_op op);

typedef struct {
    float *f0, *source_raw, *uv, *stft_real, *stft_imag, *magnitude, *phase, *istft;
    double f0_ms, source_ms, generator_ms, istft_ms;
    double op_ms[COSY_HIFT_N_OPS]; /* the same time split by operation (resblocks by kernel size) */
} cosy_hift_trace;

cosy_status cosy_hift_inference_trace(cosy_hift *hift, const float *mel, int n_frames, const float *cache_source,
                                      int n_cache, cosy_rng_source *rng, float *wav_out, float *source_out,
                                      cosy_hift_trace *trace);

/* ---- randomness ----------------------------------------------------------------------------- */

/* The production source: torch's CPU generator (core/torch_rng.h) drawn the way HiFTGenerator.inference
 * draws from it, so seeding it with s gives the reference's numbers after torch.manual_seed(s): the
 * harmonic noise (draw 2) takes torch's element-by-element path (randn_like of a transposed, hence
 * non-contiguous, tensor), the discarded source noise (draw 3) the vectorised block path. A session owns
 * one and keeps drawing from it call after call, as the reference's global generator does. */
typedef struct {
    cosy_torch_rng torch;
    int normals_since_uniform;  /* which of HiFT's two normal draws comes next */
} cosy_hift_rng;

void cosy_hift_rng_seed(cosy_hift_rng *rng, uint64_t seed);
cosy_rng_source cosy_hift_rng_source(cosy_hift_rng *rng);

/* Replays recorded draws (the fixtures' *_noise_000..002 arrays, in the reference's logical layouts:
 * rand_ini [H], sine_noise [T][H] time-major, source_noise [T]). A request whose size does not match the
 * recording fills NaN and sets `status` (checked by the caller after the call). */
typedef struct {
    const float *rand_ini, *sine_noise, *source_noise;
    int64_t n_rand_ini, n_sine_noise, n_source_noise;
    int harmonics;
    int normals_since_uniform;
    cosy_status status;
} cosy_hift_replay;

cosy_rng_source cosy_hift_replay_source(cosy_hift_replay *replay);

#endif
