/*
 * ops.h — plain f32 building blocks: the BLAS product, and the scalar element-wise pieces of the LM and
 * the flow's encoder. The vectorised and packed kernels live beside them in src/core (gemm.h,
 * attention.h, conv1d.h, activation.h, vecmath.h, gemv.h).
 *
 * Layouts follow PyTorch so a forward pass reads like the reference: sequences for Linear are
 * time-major [T, C]. Matrix products go through OpenBLAS (cblas_sgemm); everything else is plain
 * C that the compiler vectorises. Each op has a naive twin in tests/test_core.c.
 */
#ifndef COSY_OPS_H
#define COSY_OPS_H

#include <stddef.h>

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op = transpose when trans_* != 0.
 * lda/ldb/ldc are row strides. */
void cosy_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* y[T, out] = x[T, in] · W[out, in]^T (+ bias[out]). y must not alias x. */
void cosy_linear(float *y, const float *x, int T, int in, const float *W, const float *bias, int out);

/* Row-wise normalisations over `dim` contiguous values. y may alias x. */
void cosy_rms_norm(float *y, const float *x, int rows, int dim, const float *w, float eps);

void cosy_softmax(float *x, int n);
void cosy_log_softmax(float *x, int n);

/* In-place activations over n values. */
void cosy_silu(float *x, size_t n);
void cosy_leaky_relu(float *x, size_t n, float slope);

/* y[i] = x[i] + y[i] etc. */
void cosy_add(float *y, const float *x, size_t n);
void cosy_scale(float *y, float s, size_t n);

/* out[C, T] = in[T, C]^T */
void cosy_transpose(float *out, const float *in, int rows, int cols);

#endif
