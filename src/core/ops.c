/* ops.c — f32 building blocks (see ops.h). */
#include "core/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void cosy_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f) for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * 4);
        else for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}

void cosy_linear(float *y, const float *x, int T, int in, const float *W, const float *bias, int out)
{
    if (bias) {
        for (int t = 0; t < T; t++) memcpy(y + (size_t)t * out, bias, (size_t)out * 4);
        cosy_sgemm(0, 1, T, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
    } else {
        cosy_sgemm(0, 1, T, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
    }
}

void cosy_rms_norm(float *y, const float *x, int rows, int dim, const float *w, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) yr[i] = (xr[i] * inv) * (w ? w[i] : 1.0f);
    }
}

void cosy_softmax(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    if (mx == -INFINITY) { for (int i = 0; i < n; i++) x[i] = 1.0f / n; return; }
    double sum = 0.0;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void cosy_log_softmax(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    float lse = mx + (float)log(sum);
    for (int i = 0; i < n; i++) x[i] -= lse;
}

void cosy_silu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

void cosy_leaky_relu(float *x, size_t n, float slope)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] >= 0.0f ? x[i] : x[i] * slope;
}

void cosy_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void cosy_scale(float *y, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] *= s;
}

void cosy_transpose(float *out, const float *in, int rows, int cols)
{
    const int B = 32;
    for (int r0 = 0; r0 < rows; r0 += B)
        for (int c0 = 0; c0 < cols; c0 += B)
            for (int r = r0; r < r0 + B && r < rows; r++)
                for (int c = c0; c < c0 + B && c < cols; c++) out[(size_t)c * rows + r] = in[(size_t)r * cols + c];
}

