/*
 * gemm_f32.c — f32 products on weights packed once at load time in panels of 32 columns (gemm.h).
 *
 * Why not sgemm: the flow multiplies few rows (2 x frames) by large weight matrices, 10 times per
 * call, and a BLAS call re-packs the whole weight matrix every time (a quarter of the run time at
 * the real size), then hands the work to its own threads, which compete with ours on a 2-core
 * machine. Here each weight matrix [N][K] is stored as panels of 32 output columns ([K][32] per
 * panel, zero-padded), and an AVX-512 micro-kernel computes 12 rows x 32 columns at a time straight
 * from the activations. Threads split the panels. Attention uses the same kernel, packing K^T and
 * V per head on the fly.
 *
 * With AVX2 + FMA but no AVX-512 the same panels go through an AVX2 micro-kernel (6 rows x 16
 * columns, each panel in two halves). Portable builds (or COSY_CPU=portable at load) fall back to
 * cosy_sgemm on the unpacked weights; panels met at the portable level are computed by plain loops.
 */
#include "core/gemm.h"
#include "core/cpu.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/simd_avx512.h"
#include "core/vecmath.h"

#define AVX2FMA __attribute__((target("avx2,fma")))

#define NR COSY_PANEL   /* columns per panel */
#define MR 12           /* rows per micro-kernel call */
#define M_CHUNK 192     /* rows kept hot in L2 while the panels stream past */

int cosy_gemm_f32_available(void)
{
#ifdef COSY_HAVE_AVX512
    return cosy_cpu_level() >= COSY_CPU_AVX2;
#else
    return 0;
#endif
}

#ifdef COSY_HAVE_AVX512
static int use_avx512(void) { return cosy_cpu_level() >= COSY_CPU_AVX512; }
#endif

static void pack_rows_scalar(float *dst, const float *w, int N, int K, int ldw, int p0, int p1)
{
    for (int p = p0; p < p1; p++) {
        float *d = dst + (size_t)p * K * NR;
        for (int j = 0; j < NR; j++) {
            int n = p * NR + j;
            if (n < N) {
                const float *src = w + (size_t)n * ldw;
                for (int k = 0; k < K; k++) d[(size_t)k * NR + j] = src[k];
            } else {
                for (int k = 0; k < K; k++) d[(size_t)k * NR + j] = 0.0f;
            }
        }
    }
}

#ifdef COSY_HAVE_AVX512
/* dst[c * ldd + r] = src[r * lds + c] for a 16 x 16 tile */
static inline AVX512 void transpose16(const float *src, int lds, float *dst, int ldd)
{
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
    cosy_transpose16_regs(r);
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + (size_t)i * ldd, r[i]);
}

static AVX512 void pack_rows_avx512(float *dst, const float *w, int N, int K, int ldw)
{
    const int full = N / NR, k16 = K / 16 * 16;
    for (int p = 0; p < full; p++) {
        float *d = dst + (size_t)p * K * NR;
        const float *src = w + (size_t)p * NR * ldw;
        for (int k0 = 0; k0 < k16; k0 += 16) {
            transpose16(src + k0, ldw, d + (size_t)k0 * NR, NR);
            transpose16(src + (size_t)16 * ldw + k0, ldw, d + (size_t)k0 * NR + 16, NR);
        }
        for (int j = 0; j < NR; j++)
            for (int k = k16; k < K; k++) d[(size_t)k * NR + j] = src[(size_t)j * ldw + k];
    }
    pack_rows_scalar(dst, w, N, K, ldw, full, (N + NR - 1) / NR);
}
#endif

void cosy_pack_f32_rows(float *dst, const float *w, int N, int K, int ldw)
{
#ifdef COSY_HAVE_AVX512
    if (use_avx512()) {
        pack_rows_avx512(dst, w, N, K, ldw);
        return;
    }
#endif
    pack_rows_scalar(dst, w, N, K, ldw, 0, (N + NR - 1) / NR);
}

/*
 * Rows given by pointers (keys/values kept in pages, flow_stream.c): groups of 16 rows that lie
 * at one stride go through the 16 x 16 transpose straight from where they are, the others (a
 * group across a page boundary, the tail) are copied first.
 */
#define PTR_GROUP 16
#define PTR_MAX_K 512

static void pack_row_ptrs_scalar(float *dst, const float *const *rows, int N, int K, int n0, int n1)
{
    for (int n = n0; n < n1; n++) {
        float *d = dst + (size_t)(n / NR) * K * NR + n % NR;
        for (int k = 0; k < K; k++) d[(size_t)k * NR] = rows[n][k];
    }
}

void cosy_pack_f32_row_ptrs(float *dst, const float *const *rows, int N, int K)
{
    int n = 0;
#ifdef COSY_HAVE_AVX512
    if (use_avx512() && K % 16 == 0 && K <= PTR_MAX_K) {
        float tmp[PTR_GROUP * PTR_MAX_K];
        for (; n + PTR_GROUP <= N; n += PTR_GROUP) {
            const float *base = rows[n];
            const ptrdiff_t stride = rows[n + 1] - base;
            int even = stride >= K && stride <= INT32_MAX;
            for (int i = 2; i < PTR_GROUP && even; i++) even = rows[n + i] == base + i * stride;
            if (!even) {
                for (int i = 0; i < PTR_GROUP; i++) memcpy(tmp + (size_t)i * K, rows[n + i], sizeof(float) * (size_t)K);
                base = tmp;
            }
            float *d = dst + (size_t)(n / NR) * K * NR + n % NR;
            for (int k0 = 0; k0 < K; k0 += 16)
                transpose16(base + k0, even ? (int)stride : K, d + (size_t)k0 * NR, NR);
        }
    }
#endif
    pack_row_ptrs_scalar(dst, rows, N, K, n, N);
    /* zero the columns of the last panel past N */
    if (N % NR) {
        float *d = dst + (size_t)(N / NR) * K * NR;
        for (int k = 0; k < K; k++) memset(d + (size_t)k * NR + N % NR, 0, sizeof(float) * (size_t)(NR - N % NR));
    }
}

void cosy_pack_f32_col_ptrs(float *dst, const float *const *rows, int K, int N)
{
    const int panels = (N + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *d = dst + (size_t)p * K * NR;
        int n0 = p * NR, cols = N - n0 < NR ? N - n0 : NR;
        for (int k = 0; k < K; k++) {
            memcpy(d + (size_t)k * NR, rows[k] + n0, sizeof(float) * (size_t)cols);
            if (cols < NR) memset(d + (size_t)k * NR + cols, 0, sizeof(float) * (size_t)(NR - cols));
        }
    }
}

void cosy_pack_f32_cols(float *dst, const float *v, int K, int N, int ldv)
{
    const int panels = (N + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        float *d = dst + (size_t)p * K * NR;
        int n0 = p * NR, cols = N - n0 < NR ? N - n0 : NR;
        for (int k = 0; k < K; k++) {
            memcpy(d + (size_t)k * NR, v + (size_t)k * ldv + n0, sizeof(float) * (size_t)cols);
            if (cols < NR) memset(d + (size_t)k * NR + cols, 0, sizeof(float) * (size_t)(NR - cols));
        }
    }
}

#ifdef COSY_HAVE_AVX512

static inline __attribute__((always_inline)) AVX512 __m512 activate(__m512 x, int act)
{
    switch (act) {
    case COSY_ACT_GELU: return gelu512(x);
    case COSY_ACT_SILU: return silu512(x);
    default: return x;
    }
}

/* C[m][0..n_valid) = act(alpha * A[m][K] . P[K][32] + bias) (+ C) for m <= MR rows */
static inline __attribute__((always_inline)) AVX512 void micro_kernel(const int m, int K, float alpha, const float *A, int lda, const float *P,
                                                                      const float *bias, float *C, int ldc, int n_valid, int accumulate,
                                                                      int act, const int prefetch, const float *next)
{
    __m512 acc0[MR], acc1[MR];
    const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int r = 0; r < m; r++) {
        acc0[r] = _mm512_setzero_ps();
        acc1[r] = _mm512_setzero_ps();
    }
    for (int k = 0; k < K; k++) {
        const __m512 w0 = _mm512_loadu_ps(P + (size_t)k * NR), w1 = _mm512_loadu_ps(P + (size_t)k * NR + 16);
        if (prefetch) {
            /* pull the next panel towards L2 while this one is computed: the weights stream
             * from memory once per call, and the first row block of a panel would otherwise
             * wait on every line */
            _mm_prefetch((const char *)(next + (size_t)k * NR), _MM_HINT_T1);
            _mm_prefetch((const char *)(next + (size_t)k * NR + 16), _MM_HINT_T1);
        }
#pragma GCC unroll 12
        for (int r = 0; r < m; r++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            acc0[r] = _mm512_fmadd_ps(a, w0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(a, w1, acc1[r]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __mmask16 m0 = n_valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n_valid) - 1u);
    const __mmask16 m1 = n_valid >= 32 ? (__mmask16)0xffff : n_valid <= 16 ? (__mmask16)0 : (__mmask16)((1u << (n_valid - 16)) - 1u);
#pragma GCC unroll 12
    for (int r = 0; r < m; r++) {
        __m512 c0 = activate(_mm512_fmadd_ps(acc0[r], va, b0), act), c1 = activate(_mm512_fmadd_ps(acc1[r], va, b1), act);
        float *cr = C + (size_t)r * ldc;
        if (accumulate) {
            c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, cr));
            c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, c0);
        _mm512_mask_storeu_ps(cr + 16, m1, c1);
    }
}

#define KERNEL_CASE(mm)                                                                                  \
    case mm:                                                                                             \
        if (next) micro_kernel(mm, K, alpha, A, lda, P, bias, C, ldc, n_valid, accumulate, act, 1, next); \
        else micro_kernel(mm, K, alpha, A, lda, P, bias, C, ldc, n_valid, accumulate, act, 0, NULL);      \
        break;

/* next: the panel to prefetch meanwhile (or NULL) */
static AVX512 void kernel_dispatch(int m, int K, float alpha, const float *A, int lda, const float *P, const float *bias, float *C, int ldc,
                                   int n_valid, int accumulate, int act, const float *next)
{
    switch (m) {
        KERNEL_CASE(1) KERNEL_CASE(2) KERNEL_CASE(3) KERNEL_CASE(4) KERNEL_CASE(5) KERNEL_CASE(6)
        KERNEL_CASE(7) KERNEL_CASE(8) KERNEL_CASE(9) KERNEL_CASE(10) KERNEL_CASE(11) KERNEL_CASE(12)
        default: break;
    }
}

/* ---- AVX2 + FMA: 6 rows x 16 columns (12 accumulators), a panel in two halves ---- */
#define MR2 6
static inline __attribute__((always_inline)) AVX2FMA void micro_kernel_avx2(const int m, int K, float alpha, const float *A, int lda,
                                                                           const float *P, const float *bias, float *C, int ldc, int n_valid,
                                                                           int accumulate, int act)
{
    for (int half = 0; half < 2; half++) {
        const int c0 = 16 * half, nv = n_valid - c0 < 16 ? n_valid - c0 : 16;
        if (nv <= 0) break;
        __m256 acc0[MR2], acc1[MR2];
#pragma GCC unroll 6
        for (int r = 0; r < m; r++) {
            acc0[r] = _mm256_setzero_ps();
            acc1[r] = _mm256_setzero_ps();
        }
        for (int k = 0; k < K; k++) {
            const __m256 w0 = _mm256_loadu_ps(P + (size_t)k * NR + c0), w1 = _mm256_loadu_ps(P + (size_t)k * NR + c0 + 8);
#pragma GCC unroll 6
            for (int r = 0; r < m; r++) {
                const __m256 a = _mm256_broadcast_ss(A + (size_t)r * lda + k);
                acc0[r] = _mm256_fmadd_ps(a, w0, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(a, w1, acc1[r]);
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < m; r++) {
            float out[16];
            _mm256_storeu_ps(out, acc0[r]);
            _mm256_storeu_ps(out + 8, acc1[r]);
            float *cr = C + (size_t)r * ldc + c0;
            for (int j = 0; j < nv; j++) out[j] = out[j] * alpha + (bias ? bias[c0 + j] : 0.0f);
            if (act == COSY_ACT_GELU) cosy_vec_gelu(out, (size_t)nv);
            else if (act == COSY_ACT_SILU) cosy_vec_silu(out, (size_t)nv);
            for (int j = 0; j < nv; j++) cr[j] = accumulate ? cr[j] + out[j] : out[j];
        }
    }
}

#define KERNEL2_CASE(mm) \
    case mm: micro_kernel_avx2(mm, K, alpha, A, lda, P, bias, C, ldc, n_valid, accumulate, act); break;

static AVX2FMA void kernel_dispatch_avx2(int m, int K, float alpha, const float *A, int lda, const float *P, const float *bias, float *C,
                                         int ldc, int n_valid, int accumulate, int act)
{
    switch (m) {
        KERNEL2_CASE(1) KERNEL2_CASE(2) KERNEL2_CASE(3) KERNEL2_CASE(4) KERNEL2_CASE(5) KERNEL2_CASE(6)
        default: break;
    }
}

/* the portable definition of a panel product (a level below AVX2 meeting panels packed above it) */
static void panels_scalar(int M, int N, int K, float alpha, const float *A, int lda, const float *P, size_t panel_stride, int p0, int p1,
                          const float *bias, float *C, int ldc, int accumulate, int act)
{
    for (int p = p0; p < p1; p++) {
        const int n0 = p * NR, n_valid = N - n0 < NR ? N - n0 : NR;
        const float *panel = P + (size_t)p * panel_stride;
        for (int r = 0; r < M; r++) {
            float out[NR];
            for (int j = 0; j < n_valid; j++) {
                float acc = 0.0f;
                for (int k = 0; k < K; k++) acc += A[(size_t)r * lda + k] * panel[(size_t)k * NR + j];
                out[j] = acc * alpha + (bias ? bias[n0 + j] : 0.0f);
            }
            if (act == COSY_ACT_GELU) cosy_vec_gelu(out, (size_t)n_valid);
            else if (act == COSY_ACT_SILU) cosy_vec_silu(out, (size_t)n_valid);
            float *cr = C + (size_t)r * ldc + n0;
            for (int j = 0; j < n_valid; j++) cr[j] = accumulate ? cr[j] + out[j] : out[j];
        }
    }
}

static void panels_avx2(int M, int N, int K, float alpha, const float *A, int lda, const float *P, size_t panel_stride, int p0, int p1,
                        const float *bias, float *C, int ldc, int accumulate, int act)
{
    const int n_blocks = (M + MR2 - 1) / MR2, per_chunk = M_CHUNK / MR2;
    for (int c0 = 0; c0 < n_blocks; c0 += per_chunk) {
        const int c1 = c0 + per_chunk < n_blocks ? c0 + per_chunk : n_blocks;
        for (int p = p0; p < p1; p++) {
            const int n0 = p * NR, n_valid = N - n0 < NR ? N - n0 : NR;
            const float *panel = P + (size_t)p * panel_stride;
            for (int blk = c0; blk < c1; blk++) {
                const int r0 = (int)((long)blk * M / n_blocks), r1 = (int)((long)(blk + 1) * M / n_blocks);
                kernel_dispatch_avx2(r1 - r0, K, alpha, A + (size_t)r0 * lda, lda, panel, bias ? bias + n0 : NULL, C + (size_t)r0 * ldc + n0, ldc,
                                     n_valid, accumulate, act);
            }
        }
    }
}

void cosy_gemm_f32_panels(int M, int N, int K, float alpha, const float *A, int lda, const float *P, size_t panel_stride, int p0, int p1,
                      const float *bias, float *C, int ldc, int accumulate, int act)
{
    if (!use_avx512()) {
        if (cosy_cpu_level() >= COSY_CPU_AVX2) panels_avx2(M, N, K, alpha, A, lda, P, panel_stride, p0, p1, bias, C, ldc, accumulate, act);
        else panels_scalar(M, N, K, alpha, A, lda, P, panel_stride, p0, p1, bias, C, ldc, accumulate, act);
        return;
    }
    /* rows in nearly equal blocks of at most MR (100 rows: 9 blocks of 11-12, not 8 x 12 + 4),
     * M_CHUNK / MR blocks at a time while the panels stream past */
    const int n_blocks = (M + MR - 1) / MR, per_chunk = M_CHUNK / MR;
    for (int c0 = 0; c0 < n_blocks; c0 += per_chunk) {
        const int c1 = c0 + per_chunk < n_blocks ? c0 + per_chunk : n_blocks;
        for (int p = p0; p < p1; p++) {
            const int n0 = p * NR, n_valid = N - n0 < NR ? N - n0 : NR;
            const float *panel = P + (size_t)p * panel_stride;
            const float *pb = bias ? bias + n0 : NULL;
            for (int blk = c0; blk < c1; blk++) {
                const int r0 = (int)((long)blk * M / n_blocks), r1 = (int)((long)(blk + 1) * M / n_blocks);
                const float *next = blk == c0 && p + 1 < p1 ? panel + panel_stride : NULL;
                kernel_dispatch(r1 - r0, K, alpha, A + (size_t)r0 * lda, lda, panel, pb, C + (size_t)r0 * ldc + n0, ldc, n_valid, accumulate, act,
                                next);
            }
        }
    }
}
#else
void cosy_gemm_f32_panels(int M, int N, int K, float alpha, const float *A, int lda, const float *P, size_t panel_stride, int p0, int p1,
                      const float *bias, float *C, int ldc, int accumulate, int act)
{
    /* portable builds never pack (cosy_gemm_f32_available() is 0) */
    (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)P; (void)panel_stride; (void)p0; (void)p1;
    (void)bias; (void)C; (void)ldc; (void)accumulate; (void)act;
}
#endif
