/*
 * gemm_bf16.c — products with bf16 weights packed in tiles (gemm.h): Intel AMX where the CPU has it,
 * AVX512-BF16 (VDPBF16PS) where it does not (AMD Zen 4/5, Intel Cooper Lake).
 *
 * Why: the flow's estimator U-Net (10 Euler steps x 2 CFG rows) is the engine's largest cost, and its
 * f32 kernels already run near the cores' f32 peak. bf16 inputs with f32 accumulation double the rate
 * on VDPBF16PS (two multiply-adds per 32-bit lane) and multiply it several times on AMX tiles, at an
 * error the tests measure against f32 (test_gemm in tests/test_core.c; the flow's mel in test_flow).
 *
 * One packed layout serves both kernels (gemm.h): per block of 16 output columns, tiles of 32 inputs
 * stored as 16 rows of [16 columns][2 inputs] — an AMX B tile, and 16 VDPBF16PS operands.
 *   AMX:          C 16x16 f32 in tmm0..3 (a 32x32 output block), A 16x32 bf16 in tmm4/5, B in tmm6/7.
 *   AVX512-BF16:  up to 12 rows x 32 columns in 24 zmm accumulators; per input pair one 64-byte load
 *                 per 16 columns and one broadcast pair per row.
 */
#include "core/gemm.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/tensor.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define COSY_HAVE_BF16_KERNELS 1
#include <immintrin.h>
#include "core/simd_avx512.h"

#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#endif

int cosy_gemm_bf16_level(void)
{
#ifdef COSY_HAVE_BF16_KERNELS
    cosy_cpu_level_t l = cosy_cpu_level();
    if (l >= COSY_CPU_AMX) return COSY_CPU_AMX;
    if (l >= COSY_CPU_AVX512BF16) return COSY_CPU_AVX512BF16;
#endif
    return 0;
}

int cosy_gemm_bf16_faster(void)
{
    const int level = cosy_gemm_bf16_level();
    return level == COSY_CPU_AMX || (level == COSY_CPU_AVX512BF16 && cosy_cpu_bf16_dot_faster());
}

size_t cosy_pack_bf16_elems(int N, int K)
{
    const size_t Np = (size_t)(N + 31) / 32 * 32, Kp = (size_t)(K + 31) / 32 * 32;
    return Np * Kp;
}

/* ---------------------------------------------------------------- packing (portable) */

/* Element (n, k) of the packed form: column block n / 16, tile k / 32, pair row (k % 32) / 2, column
 * n % 16, lane k % 2. The portable packers below are the definition; the AVX-512 ones must agree. */
static inline size_t packed_index(int n, int k, int KB)
{
    return ((size_t)(n / 16) * KB + (size_t)(k / 32)) * 512 + (size_t)((k % 32) / 2) * 32 + (size_t)(n % 16) * 2 + (size_t)(k % 2);
}

static void pack_generic(uint16_t *dst, const void *w, int N, int K, int ldw, int bf16_src)
{
    const int KB = (K + 31) / 32, Np = (N + 31) / 32 * 32;
    memset(dst, 0, sizeof(uint16_t) * (size_t)Np * KB * 32);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            dst[packed_index(n, k, KB)] = bf16_src ? ((const uint16_t *)w)[(size_t)n * ldw + k]
                                                   : cosy_f32_to_bf16(((const float *)w)[(size_t)n * ldw + k]);
}

void cosy_pack_bf16_from_bf16(uint16_t *dst, const uint16_t *w, int N, int K, int ldw) { pack_generic(dst, w, N, K, ldw, 1); }

/* widen each row to f32 (exactly), then round: the definition the SIMD packer must agree with */
static void pack_typed_generic(uint16_t *dst, const void *w, int dtype, size_t row_bytes, int N, int K)
{
    const int KB = (K + 31) / 32, Np = (N + 31) / 32 * 32;
    float row[32];
    memset(dst, 0, sizeof(uint16_t) * (size_t)Np * KB * 32);
    for (int n = 0; n < N; n++)
        for (int k0 = 0; k0 < K; k0 += 32) {
            const int kn = K - k0 < 32 ? K - k0 : 32;
            const char *src = (const char *)w + (size_t)n * row_bytes;
            if (dtype == COSY_DTYPE_Q4_0 || dtype == COSY_DTYPE_Q8_0) src += cosy_dtype_nbytes((cosy_dtype)dtype, k0);
            else src += (size_t)k0 * (dtype == COSY_DTYPE_BF16 ? 2 : 4);
            cosy_convert_to_f32(row, src, (cosy_dtype)dtype, kn);
            for (int k = 0; k < kn; k++) dst[packed_index(n, k0 + k, KB)] = cosy_f32_to_bf16(row[k]);
        }
}

#ifdef COSY_HAVE_BF16_KERNELS

/* ---------------------------------------------------------------- packing (AVX512-BF16) */

/* 32 values of a row as bf16 (f32 rows rounded to nearest even; bf16 rows as they are), the first kn
 * of them, zeros after */
static inline __attribute__((always_inline)) TGT_BF16 __m512i load32_bf16(const void *row, int kn, int bf16)
{
    if (bf16) return _mm512_maskz_loadu_epi16(kn >= 32 ? 0xffffffffu : (__mmask32)((1u << kn) - 1u), row);
    const float *src = row;
    const __mmask16 m0 = kn >= 16 ? 0xffff : (__mmask16)((1u << kn) - 1u);
    const __mmask16 m1 = kn >= 32 ? 0xffff : kn <= 16 ? 0 : (__mmask16)((1u << (kn - 16)) - 1u);
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
}

/* 16 values of a row as bf16 zero-extended to 32-bit lanes */
static inline __attribute__((always_inline)) TGT_BF16 __m512i load16_bf16_lanes(const void *row, __mmask16 mask, int bf16)
{
    if (bf16) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row));
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, row)));
}

/* W[N][K] (rows[n] holds K values) into tiles: each row's 32 inputs of a tile become 16 bf16 pairs
 * (32-bit words), and the 16x16 words of 16 rows are transposed into the tile. */
static inline __attribute__((always_inline)) TGT_BF16 void pack_rows_any(uint16_t *dst, const void *const *rows, int N, int K, int bf16)
{
    const int NB = (N + 31) / 32 * 2, KB = (K + 31) / 32;
    const size_t elem = bf16 ? sizeof(uint16_t) : sizeof(float);
    uint32_t words[16][16] __attribute__((aligned(64)));
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(16));
    for (int nb = 0; nb < NB; nb++)
        for (int kb = 0; kb < KB; kb++) {
            uint32_t *t = (uint32_t *)(dst + ((size_t)nb * KB + kb) * 512);
            const int k0 = kb * 32, kn = K - k0 < 32 ? K - k0 : 32;
            for (int n = 0; n < 16; n++) {
                const int row = nb * 16 + n;
                __m512i v = row < N ? load32_bf16((const char *)rows[row] + k0 * elem, kn, bf16) : _mm512_setzero_si512();
                _mm512_store_si512((void *)words[n], v);
            }
            for (int p = 0; p < 16; p++)
                _mm512_storeu_si512((void *)(t + p * 16), _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(p)), words, 4));
        }
}

/* W[n][k] = rows[k][n] (V of attention: K = keys, N = channels): a tile row is a pair of keys' 16
 * channels, interleaved. */
static inline __attribute__((always_inline)) TGT_BF16 void pack_t_rows_any(uint16_t *dst, const void *const *rows, int K, int N, int bf16)
{
    const int NB = (N + 31) / 32 * 2, KB = (K + 31) / 32;
    const size_t elem = bf16 ? sizeof(uint16_t) : sizeof(float);
    for (int nb = 0; nb < NB; nb++) {
        const int n0 = nb * 16, nn = N - n0 < 16 ? (N - n0 > 0 ? N - n0 : 0) : 16;
        const __mmask16 mask = nn >= 16 ? 0xffff : (__mmask16)((1u << nn) - 1u);
        for (int kb = 0; kb < KB; kb++) {
            uint32_t *t = (uint32_t *)(dst + ((size_t)nb * KB + kb) * 512);
            for (int p = 0; p < 16; p++) {
                const int k = kb * 32 + 2 * p;
                __m512i lo = k < K && nn ? load16_bf16_lanes((const char *)rows[k] + n0 * elem, mask, bf16) : _mm512_setzero_si512();
                __m512i hi = k + 1 < K && nn ? load16_bf16_lanes((const char *)rows[k + 1] + n0 * elem, mask, bf16) : _mm512_setzero_si512();
                _mm512_storeu_si512((void *)(t + p * 16), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
            }
        }
    }
}

TGT_BF16 void cosy_pack_bf16_rows(uint16_t *dst, const float *const *rows, int N, int K) { pack_rows_any(dst, (const void *const *)rows, N, K, 0); }
TGT_BF16 void cosy_pack_bf16_rows16(uint16_t *dst, const uint16_t *const *rows, int N, int K)
{
    pack_rows_any(dst, (const void *const *)rows, N, K, 1);
}
TGT_BF16 void cosy_pack_bf16_t_rows(uint16_t *dst, const float *const *rows, int K, int N)
{
    pack_t_rows_any(dst, (const void *const *)rows, K, N, 0);
}
TGT_BF16 void cosy_pack_bf16_t_rows16(uint16_t *dst, const uint16_t *const *rows, int K, int N)
{
    pack_t_rows_any(dst, (const void *const *)rows, K, N, 1);
}

void cosy_pack_bf16(uint16_t *dst, const float *w, int N, int K, int ldw)
{
    if (!cosy_gemm_bf16_level()) {
        pack_generic(dst, w, N, K, ldw, 0);
        return;
    }
    const float *rows[64];
    /* in slabs of 64 rows (two column blocks), so no row-pointer array has to be allocated */
    const int KB = (K + 31) / 32;
    for (int r0 = 0; r0 < N; r0 += 64) {
        const int n = N - r0 < 64 ? N - r0 : 64;
        for (int i = 0; i < n; i++) rows[i] = w + (size_t)(r0 + i) * ldw;
        cosy_pack_bf16_rows(dst + (size_t)(r0 / 16) * KB * 512, rows, n, K);
    }
}

/* 32 consecutive values of one row, widened and rounded to bf16 (16 words of pairs) */
static inline __attribute__((always_inline)) TGT_BF16 __m512i typed32_bf16(const char *row, int k0, int dtype)
{
    switch (dtype) {
    case COSY_DTYPE_Q4_0: {
        const cosy_block_q4_0 *b = (const cosy_block_q4_0 *)row + k0 / 32;
        const __m128i q = _mm_loadu_si128((const __m128i *)b->qs), m4 = _mm_set1_epi8(0x0f);
        const __m512i eight = _mm512_set1_epi32(8);
        const __m512 d = _mm512_set1_ps(cosy_f16_to_f32(b->d));
        const __m512 lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(q, m4)), eight)), d);
        const __m512 hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4)), eight)), d);
        return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    }
    case COSY_DTYPE_Q8_0: {
        const cosy_block_q8_0 *b = (const cosy_block_q8_0 *)row + k0 / 32;
        const __m512 d = _mm512_set1_ps(cosy_f16_to_f32(b->d));
        const __m512 lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->qs))), d);
        const __m512 hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + 16)))), d);
        return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    }
    case COSY_DTYPE_BF16: return _mm512_loadu_si512((const void *)((const uint16_t *)row + k0));
    default: {
        const float *f = (const float *)row + k0;
        return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(f + 16), _mm512_loadu_ps(f));
    }
    }
}

TGT_BF16 static void pack_typed_avx512(uint16_t *dst, const void *w, int dtype, size_t row_bytes, int N, int K)
{
    const int NB = (N + 31) / 32 * 2, KB = K / 32;
    __m512 r[16];
    for (int nb = 0; nb < NB; nb++)
        for (int kb = 0; kb < KB; kb++) {
            for (int n = 0; n < 16; n++) {
                const int row = nb * 16 + n;
                r[n] = row < N ? (__m512)typed32_bf16((const char *)w + (size_t)row * row_bytes, kb * 32, dtype) : _mm512_setzero_ps();
            }
            /* r[n] holds row n's 16 pairs; the tile wants pair p's 16 rows: a 16x16 word transpose */
            cosy_transpose16_regs(r);
            float *t = (float *)(dst + ((size_t)nb * KB + kb) * 512);
            for (int p = 0; p < 16; p++) _mm512_storeu_ps(t + p * 16, r[p]);
        }
}

void cosy_pack_bf16_typed(uint16_t *dst, const void *w, int dtype, size_t row_bytes, int N, int K)
{
    const int blocks = dtype == COSY_DTYPE_Q4_0 || dtype == COSY_DTYPE_Q8_0;
    if (cosy_gemm_bf16_level() && K % 32 == 0 &&
        (blocks || dtype == COSY_DTYPE_BF16 || dtype == COSY_DTYPE_F32)) {
        pack_typed_avx512(dst, w, dtype, row_bytes, N, K);
        return;
    }
    pack_typed_generic(dst, w, dtype, row_bytes, N, K);
}

TGT_BF16 static void store_bf16_avx512(uint16_t *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    for (; i < n; i++) dst[i] = cosy_f32_to_bf16(src[i]);
}

void cosy_bf16_store(uint16_t *dst, const float *src, int n)
{
    if (cosy_gemm_bf16_level()) {
        store_bf16_avx512(dst, src, n);
        return;
    }
    for (int i = 0; i < n; i++) dst[i] = cosy_f32_to_bf16(src[i]);
}

/* rows x[r * ldx + k] * scale -> bf16 dst[r][Kp], zero-padded to Kp columns and rows_p rows */
TGT_BF16 static void convert_rows_avx512(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (int r = 0; r < rows_p; r++) {
        uint16_t *d = dst + (size_t)r * Kp;
        if (r >= rows) {
            memset(d, 0, sizeof(uint16_t) * (size_t)Kp);
            continue;
        }
        const float *s = x + (size_t)r * ldx;
        int k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(s + k + 16), vs), _mm512_mul_ps(_mm512_loadu_ps(s + k), vs));
            _mm512_storeu_si512((void *)(d + k), (__m512i)v);
        }
        for (; k < K; k++) d[k] = cosy_f32_to_bf16(s[k] * scale);
        for (; k < Kp; k++) d[k] = 0;
    }
}

void cosy_bf16_convert_rows(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p)
{
    if (cosy_gemm_bf16_level()) {
        convert_rows_avx512(dst, x, rows, K, ldx, scale, Kp, rows_p);
        return;
    }
    for (int r = 0; r < rows_p; r++)
        for (int k = 0; k < Kp; k++) dst[(size_t)r * Kp + k] = r < rows && k < K ? cosy_f32_to_bf16(x[(size_t)r * ldx + k] * scale) : 0;
}

/* ---------------------------------------------------------------- epilogue */

static inline __attribute__((always_inline)) TGT_BF16 __m512 activate(__m512 x, int act)
{
    switch (act) {
    case COSY_ACT_GELU: return gelu512(x);
    case COSY_ACT_SILU: return silu512(x);
    default: return x;
    }
}

/* one output row of 32 columns (n_valid of them) from two accumulators */
static inline __attribute__((always_inline)) TGT_BF16 void store_row(__m512 c0, __m512 c1, const float *bias, float *y, int n_valid,
                                                                     int accumulate, int act)
{
    const __mmask16 m0 = n_valid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n_valid) - 1u);
    const __mmask16 m1 = n_valid >= 32 ? (__mmask16)0xffff : n_valid <= 16 ? (__mmask16)0 : (__mmask16)((1u << (n_valid - 16)) - 1u);
    if (bias) {
        c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, bias));
        c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, bias + 16));
    }
    if (accumulate) {
        c0 = _mm512_add_ps(c0, _mm512_maskz_loadu_ps(m0, y));
        c1 = _mm512_add_ps(c1, _mm512_maskz_loadu_ps(m1, y + 16));
    }
    _mm512_mask_storeu_ps(y, m0, activate(c0, act));
    _mm512_mask_storeu_ps(y + 16, m1, activate(c1, act));
}

/* ---------------------------------------------------------------- AVX512-BF16 kernel */

#define BF_MR 12 /* rows per micro-kernel call: 24 accumulators + 2 weight rows + 1 broadcast */

/* rows [0, m) of A (row stride Kp) times column blocks B0, B1 (each Kp / 32 tiles) */
static inline __attribute__((always_inline)) TGT_BF16 void bf16_micro(const int m, int Kp, const uint16_t *A, const uint16_t *B0,
                                                                      const uint16_t *B1, const float *bias, float *C, int ldc, int n_valid,
                                                                      int accumulate, int act)
{
    __m512 acc0[BF_MR], acc1[BF_MR];
#pragma GCC unroll 12
    for (int r = 0; r < m; r++) {
        acc0[r] = _mm512_setzero_ps();
        acc1[r] = _mm512_setzero_ps();
    }
    const int KB = Kp / 32;
    for (int kb = 0; kb < KB; kb++) {
        const uint16_t *t0 = B0 + (size_t)kb * 512, *t1 = B1 + (size_t)kb * 512, *a = A + (size_t)kb * 32;
        for (int p = 0; p < 16; p++) {
            const __m512bh w0 = (__m512bh)_mm512_loadu_si512((const void *)(t0 + p * 32));
            const __m512bh w1 = (__m512bh)_mm512_loadu_si512((const void *)(t1 + p * 32));
#pragma GCC unroll 12
            for (int r = 0; r < m; r++) {
                uint32_t pair;
                memcpy(&pair, a + (size_t)r * Kp + 2 * p, sizeof pair);
                const __m512bh av = (__m512bh)_mm512_set1_epi32((int)pair);
                acc0[r] = _mm512_dpbf16_ps(acc0[r], av, w0);
                acc1[r] = _mm512_dpbf16_ps(acc1[r], av, w1);
            }
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < m; r++) store_row(acc0[r], acc1[r], bias, C + (size_t)r * ldc, n_valid, accumulate, act);
}

#define BF_CASE(mm) \
    case mm: bf16_micro(mm, Kp, A, B0, B1, bias, C, ldc, n_valid, accumulate, act); break;

static TGT_BF16 void bf16_dispatch(int m, int Kp, const uint16_t *A, const uint16_t *B0, const uint16_t *B1, const float *bias, float *C,
                                   int ldc, int n_valid, int accumulate, int act)
{
    switch (m) {
        BF_CASE(1) BF_CASE(2) BF_CASE(3) BF_CASE(4) BF_CASE(5) BF_CASE(6)
        BF_CASE(7) BF_CASE(8) BF_CASE(9) BF_CASE(10) BF_CASE(11) BF_CASE(12)
        default: break;
    }
}

static void gemm_avx512bf16(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, const float *bias, float *C, int ldc,
                            int accumulate, int act, int j0, int j1)
{
    /* rows in nearly equal blocks of at most BF_MR (50 rows: 5 blocks of 10); a column block's tiles
     * (Kp x 32 bf16, 16-64 KB) stay in L1/L2 while the row blocks pass */
    const int n_blocks = (M + BF_MR - 1) / BF_MR;
    for (int j = j0; j < j1; j++) {
        const uint16_t *B0 = B + (size_t)(2 * j) * b_kb * 512, *B1 = B0 + (size_t)b_kb * 512;
        const int n0 = 32 * j, n_valid = N - n0 < 32 ? N - n0 : 32;
        for (int blk = 0; blk < n_blocks; blk++) {
            int r0 = blk * M / n_blocks, r1 = (blk + 1) * M / n_blocks;
            bf16_dispatch(r1 - r0, Kp, A + (size_t)r0 * Kp, B0, B1, bias ? bias + n0 : NULL, C + (size_t)r0 * ldc + n0, ldc, n_valid,
                          accumulate, act);
        }
    }
}

/* ---------------------------------------------------------------- AMX kernel */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Output columns [32 j0, 32 j1) for every row. */
TGT_AMX static void gemm_amx(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, const float *bias, float *C, int ldc,
                             int accumulate, int act, int j0, int j1)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const int KB = Kp / 32, Mp = (M + 31) / 32 * 32;
    float out[32][32] __attribute__((aligned(64)));
    for (int j = j0; j < j1; j++) {
        const uint16_t *B0 = B + (size_t)(2 * j) * b_kb * 512, *B1 = B0 + (size_t)b_kb * 512;
        const int n0 = 32 * j, n_valid = N - n0 < 32 ? N - n0 : 32;
        for (int m = 0; m < Mp; m += 32) {
            const uint16_t *A0 = A + (size_t)m * Kp, *A1 = A0 + (size_t)16 * Kp;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int kb = 0; kb < KB; kb++) {
                _tile_loadd(4, A0 + kb * 32, Kp * 2);
                _tile_loadd(5, A1 + kb * 32, Kp * 2);
                _tile_loadd(6, B0 + (size_t)kb * 512, 64);
                _tile_loadd(7, B1 + (size_t)kb * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, &out[0][0], 128);
            _tile_stored(1, &out[0][16], 128);
            _tile_stored(2, &out[16][0], 128);
            _tile_stored(3, &out[16][16], 128);
            const int rows = M - m < 32 ? M - m : 32;
            for (int r = 0; r < rows; r++)
                store_row(_mm512_load_ps(&out[r][0]), _mm512_load_ps(&out[r][16]), bias ? bias + n0 : NULL, C + (size_t)(m + r) * ldc + n0,
                          n_valid, accumulate, act);
        }
    }
    _tile_release();
}

void cosy_gemm_bf16(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, const float *bias, float *C, int ldc,
                    int accumulate, int act, int j0, int j1)
{
    if (M <= 0 || j0 >= j1) return;
    int level = cosy_gemm_bf16_level();
    if (level == COSY_CPU_AMX) gemm_amx(M, N, Kp, A, B, b_kb, bias, C, ldc, accumulate, act, j0, j1);
    else if (level == COSY_CPU_AVX512BF16) gemm_avx512bf16(M, N, Kp, A, B, b_kb, bias, C, ldc, accumulate, act, j0, j1);
}

#else /* no bf16 kernels in this build: the packing still works (portable), the products never run */

void cosy_pack_bf16(uint16_t *dst, const float *w, int N, int K, int ldw) { pack_generic(dst, w, N, K, ldw, 0); }
void cosy_pack_bf16_typed(uint16_t *dst, const void *w, int dtype, size_t row_bytes, int N, int K) { pack_typed_generic(dst, w, dtype, row_bytes, N, K); }
void cosy_pack_bf16_rows(uint16_t *dst, const float *const *rows, int N, int K) { (void)dst; (void)rows; (void)N; (void)K; }
void cosy_pack_bf16_rows16(uint16_t *dst, const uint16_t *const *rows, int N, int K) { (void)dst; (void)rows; (void)N; (void)K; }
void cosy_pack_bf16_t_rows(uint16_t *dst, const float *const *rows, int K, int N) { (void)dst; (void)rows; (void)N; (void)K; }
void cosy_pack_bf16_t_rows16(uint16_t *dst, const uint16_t *const *rows, int K, int N) { (void)dst; (void)rows; (void)N; (void)K; }
void cosy_bf16_store(uint16_t *dst, const float *src, int n)
{
    for (int i = 0; i < n; i++) dst[i] = cosy_f32_to_bf16(src[i]);
}
void cosy_bf16_convert_rows(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p)
{
    for (int r = 0; r < rows_p; r++)
        for (int k = 0; k < Kp; k++) dst[(size_t)r * Kp + k] = r < rows && k < K ? cosy_f32_to_bf16(x[(size_t)r * ldx + k] * scale) : 0;
}
void cosy_gemm_bf16(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, const float *bias, float *C, int ldc,
                    int accumulate, int act, int j0, int j1)
{
    (void)M; (void)N; (void)Kp; (void)A; (void)B; (void)b_kb; (void)bias; (void)C; (void)ldc; (void)accumulate; (void)act; (void)j0; (void)j1;
}
#endif
