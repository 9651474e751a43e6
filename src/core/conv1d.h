/*
 * conv1d.h — 1-D convolution kernels over channel-major activations, in f32 and in bf16: the
 * stride-1 "same" convolutions (odd kernels, any dilation), the transposed convolutions and the small
 * strided ones that HiFi-GAN-style vocoders are made of (in cosy: HiFT's resblocks, conv_pre,
 * conv_post, F0 predictor, upsampling stack and source_downs, src/model/hift/hift.c).
 *
 * Layouts. An f32 activation (cosy_act) is C rows of T values with COSY_ACT_PAD zero columns on both
 * sides of every row and zeros from T to the end of the row, so a convolution reads its zero padding
 * in place: every tap of every kernel is a load at a fixed offset from the output column, with no
 * im2col copy. A bf16 activation (cosy_act_bf16) is the same over channel pairs: pair-row p holds, for
 * every time step, channels 2p and 2p + 1 side by side ([C/2][T][2], time-contiguous), which is the
 * operand layout both AMX (TDPBF16PS, the B tile: 16 pair-rows x 16 time steps) and AVX512-BF16
 * (VDPBF16PS: 16 time steps of one pair per register) multiply. Its pair-rows are padded with zero
 * rows to a multiple of 16 (32 channels, one AMX tile's depth). bf16 weights are packed once
 * (cosy_conv1d_pack_bf16) into 16 x 32 tiles ordered [out / 16][tap][in / 32], each tile 16 output
 * channels x 32 input channels: the AMX A tile, and for AVX512-BF16 one broadcastable 32-bit pair per
 * (output channel, input pair, tap).
 *
 * Paths, picked on every call by cosy_cpu_level() (core/cpu.c): f32 runs an AVX-512 direct kernel or
 * plain loops; bf16 runs AMX tiles, else AVX512-BF16, else plain loops that sum the same bf16 products
 * in f32 (what tests compare against, and what a CPU forced below AVX512-BF16 gets). bf16 products
 * always accumulate in f32; bias and residual are added in f32. Whether bf16 is worth running at all is
 * cosy_conv1d_bf16_faster's answer: AMX always, AVX512-BF16 only where its dot product outruns f32
 * FMA (AMD, not Intel; conv1d_bf16.c has the measurements).
 */
#ifndef COSY_CONV1D_H
#define COSY_CONV1D_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"
#include "core/arena.h"
#include "core/threadpool.h"

#define COSY_ACT_PAD 32 /* zero columns on each side of a row: the largest "same" padding supported */

/* f32 activation: row c, column t at data[c * ld + t], t in [-COSY_ACT_PAD, ld - COSY_ACT_PAD). */
typedef struct {
    float *data;
    int C, T, ld;
} cosy_act;

/* bf16 activation: channel c at time t is data[((c / 2) * ld + t) * 2 + c % 2], t in
 * [-COSY_ACT_PAD, ld - COSY_ACT_PAD); pairs() pair-rows, those past C zero. */
typedef struct {
    uint16_t *data;
    int C, T, ld;
} cosy_act_bf16;

/* A Conv1d or ConvTranspose1d layer (weight norm folded in by the converter). */
typedef struct {
    const float *w;         /* f32 weights, Conv1d [cout][cin][k] or ConvTranspose1d [cin][cout][k]; NULL if bf16 only */
    const float *b;         /* bias [cout], or NULL */
    const uint16_t *w_bf16; /* packed bf16 tiles (cosy_conv1d_pack_bf16), or NULL if f32 only */
    int cout, cin, k, stride, pad, dilation;
    int transposed;         /* ConvTranspose1d */
} cosy_conv;

/* ---- activations -------------------------------------------------------------------------------- */

int cosy_act_ld(int T);
size_t cosy_act_floats(int C, int T);
/* Zeroed, from the arena (COSY_ERR_NOMEM naming the shape if it is exhausted). */
cosy_status cosy_act_alloc(cosy_act *a, int C, int T, cosy_arena *arena);

int cosy_act_bf16_pairs(int C);
int cosy_act_bf16_ld(int T);
size_t cosy_act_bf16_elems(int C, int T);
cosy_status cosy_act_bf16_alloc(cosy_act_bf16 *a, int C, int T, cosy_arena *arena);

/* ---- f32 ---------------------------------------------------------------------------------------- */

/* y = conv(x) (+ res if not NULL; res may be y) for a stride-1 convolution with 2 pad = dilation (k - 1)
 * ("same" length); writes columns [0, T) of y. Split over the pool by output channels. */
cosy_status cosy_conv1d_same(cosy_pool *pool, const cosy_conv *c, const cosy_act *x, cosy_act *y, const cosy_act *res);

/* Conv1d(stride, padding pad on both sides, dilation) of dense rows x [cin][T] (row stride ldx) into y,
 * whose length must be the output's: (T + 2 pad - dilation (k - 1) - 1) / stride + 1. Through im2col
 * and sgemm: meant for small ones (few input channels), as HiFT's source_downs. */
cosy_status cosy_conv1d_strided(cosy_pool *pool, const cosy_conv *c, const float *x, int T, int ldx, cosy_act *y, cosy_arena *arena);

/* ConvTranspose1d(stride, pad) of x into columns [offset, offset + Tout) of y, Tout = (x->T - 1) stride
 * - 2 pad + k; other columns untouched. Scratch from the arena (released before return). */
cosy_status cosy_conv1d_transposed(cosy_pool *pool, const cosy_conv *c, const cosy_act *x, cosy_act *y, int offset,
                                   cosy_arena *arena);

/* The second half of a transposed convolution, shared by both types: y[co][offset + t stride - pad + j]
 * = bias[co] + the sum of cols[co k + j][t] landing there, cols [cout k][Tin] being the products of
 * every input step with every tap. */
void cosy_conv1d_overlap_add(cosy_pool *pool, const cosy_conv *c, const float *cols, int Tin, cosy_act *y, int offset);

/* ---- bf16 --------------------------------------------------------------------------------------- */

/* Elements of c's packed bf16 weights (c->cout, cin, k, transposed). */
size_t cosy_conv1d_packed_bf16_elems(const cosy_conv *c);
/* Packs weights w of c's shape and layout (c->transposed), stored as f32 or bf16 (rounded to nearest
 * even from f32; bf16 copied), into dst (cosy_conv1d_packed_bf16_elems elements, 64-byte aligned). */
cosy_status cosy_conv1d_pack_bf16(uint16_t *dst, const cosy_conv *c, const void *w, cosy_dtype w_dtype);

/* cosy_conv1d_same / cosy_conv1d_transposed with the packed bf16 weights c->w_bf16 and a bf16 input. */
cosy_status cosy_conv1d_same_bf16(cosy_pool *pool, const cosy_conv *c, const cosy_act_bf16 *x, cosy_act *y, const cosy_act *res);
cosy_status cosy_conv1d_transposed_bf16(cosy_pool *pool, const cosy_conv *c, const cosy_act_bf16 *x, cosy_act *y, int offset,
                                        cosy_arena *arena);

/* "amx", "avx512bf16" or "portable": the bf16 path the current CPU level runs (for reports). */
const char *cosy_conv1d_bf16_path(void);
/* Whether the bf16 path is a native one (AMX or AVX512-BF16); models run bf16 only where it is (the
 * portable path is for tests and CPUs forced below their level). */
int cosy_conv1d_bf16_native(void);
/* Whether it is also faster than f32: AMX, or AVX512-BF16 where VDPBF16PS outruns f32 FMA
 * (cosy_cpu_bf16_dot_faster: AMD Zen 4/5, not Intel). What a model's AUTO type picks. */
int cosy_conv1d_bf16_faster(void);

#endif
