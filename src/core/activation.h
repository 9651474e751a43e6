/*
 * activation.h — element-wise activations over channel-major rows (the cosy_act layout of
 * core/conv1d.h), split over the pool: Snake (cosyvoice/transformer/activation.py, Snake with
 * alpha_logscale=False), leaky ReLU, a sum and a division, in f32, and the activations written straight into the
 * pair-interleaved bf16 layout a bf16 convolution reads next (so converting its input costs no pass
 * of its own).
 *
 * The bf16 forms compute the activation in f32, then round to nearest even (core/half.h
 * cosy_f32_to_bf16, NaN kept NaN): leaky ReLU and the copy exactly as the f32 forms do, Snake with a
 * cheaper sine that is within 1e-7 of it (far below the rounding to bf16). They write columns [0, T)
 * of the C real channels and leave the zero margins and padding rows of the destination as they are
 * (zero from allocation).
 */
#ifndef COSY_ACTIVATION_H
#define COSY_ACTIVATION_H

#include "core/conv1d.h"
#include "core/threadpool.h"

/* y = x + 1 / (alpha_c + 1e-9) * sin(alpha_c x)^2 over columns [0, T) of C rows (row strides ldy, ldx;
 * y may be x) */
void cosy_snake_rows(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T, const float *alpha);
/* y = x > 0 ? x : x * slope, likewise */
void cosy_leaky_relu_rows(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T, float slope);

/* y = x + y, and y = y / d (IEEE division, as the reference's tensor ops), likewise */
void cosy_rows_add(cosy_pool *pool, float *y, int ldy, const float *x, int ldx, int C, int T);
void cosy_rows_div(cosy_pool *pool, float *y, int ldy, int C, int T, float d);

/* bf16(snake(x)), bf16(leaky_relu(x)), bf16(x) into y (y->C == x->C, y->T == x->T) */
void cosy_snake_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x, const float *alpha);
void cosy_leaky_relu_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x, float slope);
void cosy_act_to_bf16(cosy_pool *pool, cosy_act_bf16 *y, const cosy_act *x);

#endif
