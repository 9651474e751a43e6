/*
 * torch_rng.h — PyTorch's CPU random number generator, reproduced bit for bit.
 *
 * CosyVoice's flow decoder draws its "noise" once at construction: CausalConditionalCFM.__init__
 * calls set_all_random_seed(0) and then torch.randn([1, 80, 15000]); every inference uses a prefix
 * of that buffer, so the engine must regenerate exactly the same floats. HiFT's sine source draws
 * from the same generator (torch.rand / torch.randn_like), seeded by the caller.
 *
 * What torch does (CPUGeneratorImpl + aten/src/ATen/core/TransformationHelper.h +
 * aten/src/ATen/native/cpu/DistributionTemplates.h, x86-64 builds):
 *  - torch.manual_seed(s): a fresh 32-bit Mersenne Twister (mt19937) seeded with the low 32 bits.
 *  - a float uniform in [0, 1) consumes one 32-bit output u: (u & 0xFFFFFF) * 2^-24.
 *  - torch.randn of a contiguous float tensor with >= 16 elements (normal_fill_AVX2): first one
 *    uniform per element, then Box-Muller over blocks of 16 (u1 = 1 - d[j], u2 = d[j + 8],
 *    j < 8), evaluated with avx_mathfun's Cephes log/sincos as compiled with FMA contraction;
 *    if the size is not a multiple of 16, 16 more uniforms are drawn and the last 16 elements
 *    are recomputed from them.
 * The fixture rand_noise_head.npy (first 4096 values of the CFM buffer) and flow_*_z.npy (a
 * prefix of every row) are matched exactly (tests/test_torch_rng.c).
 */
#ifndef COSY_TORCH_RNG_H
#define COSY_TORCH_RNG_H

#include <stdint.h>
#include "cosy.h"

typedef struct {
    uint32_t state[624];
    int index;
    int has_next_normal;   /* the second Box-Muller sample of normal_distribution<double>, cached */
    double next_normal;    /* by the generator between calls (CPUGeneratorImpl::next_double_normal_sample) */
} cosy_torch_rng;

/* torch.manual_seed(seed) on the CPU generator. */
void cosy_torch_rng_seed(cosy_torch_rng *g, uint64_t seed);
/* One 32-bit draw (CPUGeneratorImpl::random). */
uint32_t cosy_torch_rng_u32(cosy_torch_rng *g);
/* Skips `n` 32-bit draws. */
void cosy_torch_rng_skip(cosy_torch_rng *g, int64_t n);

/* torch.rand(n) (float32, uniform [0, 1)). */
void cosy_torch_rand(cosy_torch_rng *g, float *out, int64_t n);

/* torch.randn(n) (float32, contiguous, mean 0, std 1). Tensors of fewer than 16 elements take
 * a different path in torch (double Box-Muller with a cached sample) that is not reproduced:
 * COSY_ERR_UNSUPPORTED. */
cosy_status cosy_torch_randn(cosy_torch_rng *g, float *out, int64_t n);

/* The element-by-element path torch takes for tensors of fewer than 16 elements and for
 * non-contiguous ones (e.g. randn_like of a transposed view, as HiFT's SineGen2 does): each value
 * is at::normal_distribution<double> — two 53-bit uniforms, r = sqrt(-2 log1p(-u2)),
 * theta = 2 pi u1, r cos(theta) now and r sin(theta) cached in the generator for the next value —
 * rounded to float. Values come in memory order of the destination tensor. */
void cosy_torch_normal_serial(cosy_torch_rng *g, float *out, int64_t n);

/* Selected elements of torch.randn(n) without materialising the rest: `ranges` holds n_ranges
 * sorted, non-overlapping [begin, end) pairs; their values are written one after another to
 * `out`. The generator advances past the whole draw, as torch.randn(n) would leave it. */
cosy_status cosy_torch_randn_ranges(cosy_torch_rng *g, int64_t n, const int64_t *ranges, int n_ranges, float *out);

#endif
