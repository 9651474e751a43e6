/* fft.c — recursive mixed-radix decimation-in-time FFT in double precision (see fft.h).
 *
 * For n = r m: X[k + q m] = sum_s W_n^{s (k + q m)} Y_s[k], with Y_s the m-point transform of
 * x[s], x[s + r], ...; each level computes its r sub-transforms into consecutive blocks of the
 * output, then combines them k by k with an r-point DFT. Twiddles come from one table of
 * exp(-2 pi i j / n) for the whole length, computed in double. */
#include "core/fft.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FACTORS 32

struct cosy_fft {
    int n;
    int n_factors, factors[MAX_FACTORS];
    int max_factor;
    double *cos_table, *sin_table;   /* [n] cos/sin(2 pi j / n) */
};

int cosy_fft_size(const cosy_fft *p) { return p->n; }

void cosy_fft_free(cosy_fft *p)
{
    if (!p) return;
    free(p->cos_table);
    free(p->sin_table);
    free(p);
}

cosy_status cosy_fft_create(int n, cosy_fft **out)
{
    *out = NULL;
    if (n < 2 || n > (1 << 20)) return cosy_error(COSY_ERR_INVALID_ARG, "fft: length %d out of range (2 .. 2^20)", n);
    cosy_fft *p = calloc(1, sizeof *p);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "fft: out of memory");
    p->n = n;
    /* radix 4 first (fewer levels), then 2, 3, 5, then whatever primes remain */
    int rest = n;
    while (rest > 1) {
        int r = rest % 4 == 0 ? 4 : rest % 2 == 0 ? 2 : rest % 3 == 0 ? 3 : rest % 5 == 0 ? 5 : 0;
        if (!r)
            for (r = 7; rest % r; r += 2) {}
        p->factors[p->n_factors++] = r;
        if (r > p->max_factor) p->max_factor = r;
        rest /= r;
    }
    p->cos_table = malloc(sizeof(double) * (size_t)n);
    p->sin_table = malloc(sizeof(double) * (size_t)n);
    if (!p->cos_table || !p->sin_table) {
        cosy_fft_free(p);
        return cosy_error(COSY_ERR_NOMEM, "fft: out of memory");
    }
    for (int j = 0; j < n; j++) {
        p->cos_table[j] = cos(2.0 * M_PI * j / n);
        p->sin_table[j] = sin(2.0 * M_PI * j / n);
    }
    *out = p;
    return COSY_OK;
}

/* Transform of the `len` complex values in_re/in_im[0], [stride], [2 stride], ... into
 * out_re/out_im[0 .. len); `level` indexes the factor of len. tmp holds 2 max_factor doubles. */
static void transform(const cosy_fft *p, const double *in_re, const double *in_im, int stride, double *out_re, double *out_im, int len,
                      int level, double *tmp)
{
    if (len == 1) {
        out_re[0] = in_re[0];
        out_im[0] = in_im[0];
        return;
    }
    const int r = p->factors[level], m = len / r;
    for (int s = 0; s < r; s++)
        transform(p, in_re + (size_t)s * stride, in_im + (size_t)s * stride, stride * r, out_re + (size_t)s * m, out_im + (size_t)s * m, m,
                  level + 1, tmp);
    const int step = p->n / len; /* W_len^j = table[j * step] */
    double *t_re = tmp, *t_im = tmp + p->max_factor;
    for (int k = 0; k < m; k++) {
        /* t_s = W_len^{s k} Y_s[k] */
        for (int s = 0; s < r; s++) {
            const double y_re = out_re[(size_t)s * m + k], y_im = out_im[(size_t)s * m + k];
            const size_t j = (size_t)s * k * step; /* < r m step = n */
            const double c = p->cos_table[j], sn = -p->sin_table[j];
            t_re[s] = y_re * c - y_im * sn;
            t_im[s] = y_re * sn + y_im * c;
        }
        /* X[k + q m] = sum_s t_s W_r^{s q} */
        const size_t unit = (size_t)(p->n / r); /* W_r = table[unit] */
        for (int q = 0; q < r; q++) {
            double a_re = 0.0, a_im = 0.0;
            size_t sq = 0; /* s q mod r */
            for (int s = 0; s < r; s++, sq = sq + q >= (size_t)r ? sq + q - r : sq + q) {
                const size_t j = sq * unit;
                const double c = p->cos_table[j], sn = -p->sin_table[j];
                a_re += t_re[s] * c - t_im[s] * sn;
                a_im += t_re[s] * sn + t_im[s] * c;
            }
            out_re[(size_t)q * m + k] = a_re;
            out_im[(size_t)q * m + k] = a_im;
        }
    }
}

void cosy_fft_real(const cosy_fft *p, const double *x, double *re, double *im, double *work)
{
    const int n = p->n;
    /* tmp: 2 max_factor <= 2 n doubles */
    double *in_im = work, *out_re = work + n, *out_im = work + 2 * (size_t)n, *tmp = work + 3 * (size_t)n;
    memset(in_im, 0, sizeof(double) * (size_t)n);
    transform(p, x, in_im, 1, out_re, out_im, n, 0, tmp);
    for (int k = 0; k <= n / 2; k++) {
        re[k] = out_re[k];
        im[k] = out_im[k];
    }
}
