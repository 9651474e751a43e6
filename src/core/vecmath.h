/*
 * vecmath.h — vectorised element-wise math over float arrays (GELU exact and tanh, Mish, SiLU, softmax rows,
 * LayerNorm rows), in place where it says so. AVX-512 versions picked at run time (cpu.h) with exp
 * from a Cephes-style polynomial (~1 ulp) and erf from Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7,
 * the approximation PyTorch's vectorised CPU GELU uses); scalar libm versions otherwise.
 */
#ifndef COSY_VECMATH_H
#define COSY_VECMATH_H

#include <stddef.h>

void cosy_vec_gelu(float *x, size_t n);  /* exact-erf GELU (nn.GELU()) */
void cosy_vec_gelu_tanh(float *x, size_t n); /* nn.GELU(approximate='tanh') */
void cosy_vec_mish(float *x, size_t n);
void cosy_vec_silu(float *x, size_t n);
/* exp(x - row max) in place for each row; inv_sum[r] = 1 / the row's sum (the caller scales whatever
 * the probabilities are multiplied into: fewer values than the rows themselves) */
void cosy_vec_softmax_rows(float *x, int rows, int n, int ld, float *inv_sum);
void cosy_vec_layer_norm(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps);

#endif
