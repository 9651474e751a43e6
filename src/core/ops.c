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

void cosy_layer_norm(float *y, const float *x, int rows, int dim, const float *w, const float *b, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (int i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
        var /= dim;
        float inv = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
        for (int i = 0; i < dim; i++) {
            float v = (xr[i] - m) * inv;
            yr[i] = v * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
        }
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

void cosy_softmax_rows(float *x, int rows, int n)
{
    for (int r = 0; r < rows; r++) cosy_softmax(x + (size_t)r * n, n);
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

void cosy_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void cosy_gelu_tanh(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

void cosy_mish(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float sp = v > 20.0f ? v : log1pf(expf(v)); /* torch softplus threshold 20 */
        x[i] = v * tanhf(sp);
    }
}

void cosy_tanh(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

void cosy_sigmoid(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

void cosy_relu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void cosy_elu(float *x, size_t n, float alpha)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
}

void cosy_leaky_relu(float *x, size_t n, float slope)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] >= 0.0f ? x[i] : x[i] * slope;
}

void cosy_snake(float *x, int C, int T, const float *alpha)
{
    for (int c = 0; c < C; c++) {
        float a = alpha[c], inv = 1.0f / (a + 1e-9f);
        float *row = x + (size_t)c * T;
        for (int t = 0; t < T; t++) {
            float s = sinf(a * row[t]);
            row[t] += inv * s * s;
        }
    }
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

int cosy_conv1d_out_len(int T, int K, int stride, int pad_left, int pad_right, int dilation)
{
    int span = dilation * (K - 1) + 1;
    int padded = T + pad_left + pad_right;
    if (padded < span) return 0;
    return (padded - span) / stride + 1;
}

int cosy_conv1d(float *y, const float *x, int Cin, int T, const float *w, const float *bias, int Cout, int K,
                int stride, int pad_left, int pad_right, int dilation, int groups, cosy_arena *arena)
{
    int Tout = cosy_conv1d_out_len(T, K, stride, pad_left, pad_right, dilation);
    if (Tout <= 0) return 0;
    int cin_g = Cin / groups, cout_g = Cout / groups;
    if (groups == Cin && cout_g == 1) {
        /* depthwise: direct loop */
        for (int c = 0; c < Cout; c++) {
            const float *xr = x + (size_t)c * T, *wr = w + (size_t)c * K;
            float *yr = y + (size_t)c * Tout;
            float b0 = bias ? bias[c] : 0.0f;
            for (int t = 0; t < Tout; t++) {
                float acc = b0;
                int base = t * stride - pad_left;
                for (int k = 0; k < K; k++) {
                    int ti = base + k * dilation;
                    if (ti >= 0 && ti < T) acc += wr[k] * xr[ti];
                }
                yr[t] = acc;
            }
        }
        return Tout;
    }
    size_t mark = cosy_arena_mark(arena);
    int rows = cin_g * K;
    float *cols = NULL;
    int pointwise = (K == 1 && stride == 1 && pad_left == 0 && pad_right == 0);
    if (!pointwise) {
        cols = cosy_arena_floats(arena, (size_t)rows * Tout);
        if (!cols) return -1;
    }
    for (int g = 0; g < groups; g++) {
        const float *xg = x + (size_t)g * cin_g * T;
        const float *B = xg;
        if (!pointwise) {
            /* im2col: cols[(ci, k), t] = x[ci, t*stride - pad_left + k*dilation] (0 outside) */
            for (int ci = 0; ci < cin_g; ci++) {
                const float *xr = xg + (size_t)ci * T;
                for (int k = 0; k < K; k++) {
                    float *cr = cols + ((size_t)ci * K + k) * Tout;
                    int off = k * dilation - pad_left;
                    if (stride == 1) {
                        int t0 = off < 0 ? -off : 0;                 /* first t with ti >= 0 */
                        if (t0 > Tout) t0 = Tout;
                        int t1 = T - off < Tout ? T - off : Tout;    /* first t with ti >= T */
                        if (t1 < t0) t1 = t0;
                        memset(cr, 0, (size_t)t0 * 4);
                        if (t1 > t0) memcpy(cr + t0, xr + t0 + off, (size_t)(t1 - t0) * 4);
                        if (Tout > t1) memset(cr + t1, 0, (size_t)(Tout - t1) * 4);
                    } else {
                        for (int t = 0; t < Tout; t++) {
                            int ti = t * stride + off;
                            cr[t] = (ti >= 0 && ti < T) ? xr[ti] : 0.0f;
                        }
                    }
                }
            }
            B = cols;
        }
        float *yg = y + (size_t)g * cout_g * Tout;
        const float *wg = w + (size_t)g * cout_g * rows;
        if (bias) {
            for (int co = 0; co < cout_g; co++) {
                float bv = bias[g * cout_g + co];
                float *yr = yg + (size_t)co * Tout;
                for (int t = 0; t < Tout; t++) yr[t] = bv;
            }
        }
        cosy_sgemm(0, 0, cout_g, Tout, rows, 1.0f, wg, rows, B, Tout, bias ? 1.0f : 0.0f, yg, Tout);
    }
    cosy_arena_release(arena, mark);
    return Tout;
}

int cosy_conv_transpose1d(float *y, const float *x, int Cin, int T, const float *w, const float *bias, int Cout,
                          int K, int stride, int padding, cosy_arena *arena)
{
    int Tout = (T - 1) * stride - 2 * padding + K;
    if (Tout <= 0) return 0;
    size_t mark = cosy_arena_mark(arena);
    float *cols = cosy_arena_floats(arena, (size_t)Cout * K * T);
    if (!cols) return -1;
    /* cols[(co, k), t] = sum_ci w[ci, (co, k)] x[ci, t] */
    cosy_sgemm(1, 0, Cout * K, T, Cin, 1.0f, w, Cout * K, x, T, 0.0f, cols, T);
    for (int co = 0; co < Cout; co++) {
        float *yr = y + (size_t)co * Tout;
        float bv = bias ? bias[co] : 0.0f;
        for (int t = 0; t < Tout; t++) yr[t] = bv;
        for (int k = 0; k < K; k++) {
            const float *cr = cols + ((size_t)co * K + k) * T;
            for (int t = 0; t < T; t++) {
                int to = t * stride - padding + k;
                if (to >= 0 && to < Tout) yr[to] += cr[t];
            }
        }
    }
    cosy_arena_release(arena, mark);
    return Tout;
}
