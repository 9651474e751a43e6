/*
 * ops.h — the f32 building blocks the models are made of.
 *
 * Layouts follow PyTorch so a forward pass reads like the reference: sequences for Linear are
 * time-major [T, C]; Conv1d works on channel-major [C, T]. Matrix products go through
 * OpenBLAS (cblas_sgemm); everything else is plain C that the compiler vectorises.
 * Each op has a naive twin in tests/test_ops.c that it is checked against.
 */
#ifndef COSY_OPS_H
#define COSY_OPS_H

#include <stddef.h>
#include "core/arena.h"

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op = transpose when trans_* != 0.
 * lda/ldb/ldc are row strides. */
void cosy_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* y[T, out] = x[T, in] · W[out, in]^T (+ bias[out]). y must not alias x. */
void cosy_linear(float *y, const float *x, int T, int in, const float *W, const float *bias, int out);

/* Row-wise normalisations over `dim` contiguous values. y may alias x. */
void cosy_layer_norm(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps);
void cosy_rms_norm(float *y, const float *x, int rows, int dim, const float *w, float eps);

void cosy_softmax(float *x, int n);
void cosy_softmax_rows(float *x, int rows, int n);
void cosy_log_softmax(float *x, int n);

/* In-place activations over n values. */
void cosy_silu(float *x, size_t n);
void cosy_gelu(float *x, size_t n);       /* exact: 0.5 x (1 + erf(x / sqrt 2)) (torch default) */
void cosy_gelu_tanh(float *x, size_t n);  /* tanh approximation */
void cosy_mish(float *x, size_t n);       /* x tanh(softplus(x)) */
void cosy_tanh(float *x, size_t n);
void cosy_sigmoid(float *x, size_t n);
void cosy_relu(float *x, size_t n);
void cosy_elu(float *x, size_t n, float alpha);
void cosy_leaky_relu(float *x, size_t n, float slope);
/* Snake on [C, T]: x + 1/(alpha_c + 1e-9) * sin^2(alpha_c x) (BigVGAN/HiFT `Snake`, alpha not log-scaled). */
void cosy_snake(float *x, int C, int T, const float *alpha);

/* y[i] = x[i] + y[i] etc. */
void cosy_add(float *y, const float *x, size_t n);
void cosy_scale(float *y, float s, size_t n);

/*
 * Conv1d on channel-major input x[Cin, T] (zero padding pad_left/pad_right), weight
 * w[Cout, Cin/groups, K], optional bias[Cout]; writes y[Cout, Tout] with
 * Tout = (T + pad_left + pad_right - dilation*(K-1) - 1) / stride + 1 (returned).
 * Scratch comes from `arena` (released before return). Returns -1 if the arena is too small.
 */
int cosy_conv1d(float *y, const float *x, int Cin, int T, const float *w, const float *bias, int Cout, int K,
                int stride, int pad_left, int pad_right, int dilation, int groups, cosy_arena *arena);
int cosy_conv1d_out_len(int T, int K, int stride, int pad_left, int pad_right, int dilation);

/*
 * ConvTranspose1d: x[Cin, T], weight w[Cin, Cout, K] (PyTorch layout), bias[Cout];
 * y[Cout, Tout], Tout = (T - 1) * stride - 2 * padding + K (returned).
 */
int cosy_conv_transpose1d(float *y, const float *x, int Cin, int T, const float *w, const float *bias, int Cout,
                          int K, int stride, int padding, cosy_arena *arena);

/* out[C, T] = in[T, C]^T */
void cosy_transpose(float *out, const float *in, int rows, int cols);

#endif
