/*
 * gemv.c — compact-type matrix-vector kernels (see gemv.h).
 *
 * Layout of the SIMD kernels: a "tile" multiplies RB weight rows by T activation rows, keeping
 * RB*T accumulators in registers, so each weight vector loaded from memory is used T times and
 * RB independent dependency chains hide the FMA latency when T is small. The tile bodies are
 * always_inline with compile-time RB and T, so the compiler unrolls them into straight-line code;
 * a switch on T picks the instantiation.
 */
#include "core/gemv.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/tensor.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMV_X86 1
#define TGT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))
#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
#endif

static atomic_int vnni_allowed = 1;

int cosy_gemv_set_vnni(int allowed) { return atomic_exchange(&vnni_allowed, allowed ? 1 : 0); }

static int use_vnni(void) { return atomic_load(&vnni_allowed) && cosy_cpu_get_features()->avx512vnni; }

static int quantised(cosy_dtype dtype) { return dtype == COSY_DTYPE_Q8_0 || dtype == COSY_DTYPE_Q4_0; }

const char *cosy_gemv_variant(cosy_dtype dtype)
{
    cosy_cpu_level_t l = cosy_cpu_level();
#ifdef GEMV_X86
    if (l >= COSY_CPU_AVX512) return quantised(dtype) && use_vnni() ? "avx512-vnni" : "avx512";
    if (l == COSY_CPU_AVX2) return "avx2";
#endif
    (void)dtype;
    (void)l;
    return "portable";
}

size_t cosy_gemv_scratch_bytes(cosy_dtype dtype, int T, int cols)
{
    if (!quantised(dtype)) return 0;
    size_t q = ((size_t)T * cols + 63) & ~(size_t)63;
    return q + (sizeof(float) + sizeof(int32_t)) * (size_t)T * (cols / COSY_Q8_BLOCK);
}

/* ------------------------------------------------------------------ activation quantisation */

static void quantize_block_portable(int8_t *q, float *d, const float *x)
{
    float amax = 0.0f;
    for (int j = 0; j < COSY_Q8_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float dd = amax / 127.0f, id = dd > 0.0f ? 1.0f / dd : 0.0f;
    *d = dd;
    for (int j = 0; j < COSY_Q8_BLOCK; j++) q[j] = (int8_t)lrintf(x[j] * id);
}

#ifdef GEMV_X86
/* Same arithmetic as the portable version: |x| max, x * (1/d) in f32, round to nearest even. */
TGT_AVX512 static void quantize_rows_avx512(int8_t *q, float *d, const float *x, size_t nblocks)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (size_t b = 0; b < nblocks; b++) {
        __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
        __m512 m = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        float amax = _mm512_reduce_max_ps(m);
        float dd = amax / 127.0f, id = dd > 0.0f ? 1.0f / dd : 0.0f;
        d[b] = dd;
        __m512 s = _mm512_set1_ps(id);
        __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, s)));
        __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, s)));
        _mm_storeu_si128((__m128i *)(q + b * 32), q0);
        _mm_storeu_si128((__m128i *)(q + b * 32 + 16), q1);
    }
}
#endif

void cosy_q8_quantize_rows(int8_t *q, float *d, const float *x, int T, int cols)
{
    size_t nblocks = (size_t)T * (cols / COSY_Q8_BLOCK);
#ifdef GEMV_X86
    if (cosy_cpu_level() >= COSY_CPU_AVX512) {
        quantize_rows_avx512(q, d, x, nblocks);
        return;
    }
#endif
    for (size_t b = 0; b < nblocks; b++) quantize_block_portable(q + b * 32, d + b, x + b * 32);
}

void cosy_gemv_prepare(cosy_gemv_input *in, cosy_dtype dtype, const float *x, int T, int cols, void *scratch)
{
    memset(in, 0, sizeof *in);
    in->dtype = dtype;
    in->T = T;
    in->cols = cols;
    in->x = x;
    if (quantised(dtype)) {
        size_t qbytes = ((size_t)T * cols + 63) & ~(size_t)63, nb = (size_t)T * (cols / COSY_Q8_BLOCK);
        in->q = scratch;
        in->d = (float *)((char *)scratch + qbytes);
        cosy_q8_quantize_rows(in->q, in->d, x, T, cols);
        if (dtype == COSY_DTYPE_Q4_0) {
            in->s = (int32_t *)(in->d + nb);
            for (size_t b = 0; b < nb; b++) {
                int32_t sum = 0;
                for (int j = 0; j < COSY_Q8_BLOCK; j++) sum += in->q[b * COSY_Q8_BLOCK + j];
                in->s[b] = -sum;
            }
        }
    }
}

/* ------------------------------------------------------------------ portable kernels */

static inline float bf16_at(const uint16_t *p, size_t i) { return cosy_bf16_to_f32(p[i]); }

static void gemv_portable(const cosy_matrix *W, const cosy_gemv_input *x, int t0, int T, const float *bias, float *y,
                          int ldy, int r0, int r1)
{
    const int K = W->cols;
    for (int r = r0; r < r1; r++) {
        for (int t = t0; t < t0 + T; t++) {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0, acc;
            const int8_t *xq = x->q ? x->q + (size_t)t * K : NULL;
            const float *dx = x->d ? x->d + (size_t)t * (K / 32) : NULL;
            if (W->dtype == COSY_DTYPE_Q8_0) {
                const cosy_block_q8_0 *w = (const cosy_block_q8_0 *)W->data + (size_t)r * (K / 32);
                acc = 0.0f;
                for (int b = 0; b < K / 32; b++) {
                    int32_t isum = 0;
                    for (int j = 0; j < 32; j++) isum += (int32_t)w[b].qs[j] * xq[b * 32 + j];
                    acc += (float)isum * (cosy_f16_to_f32(w[b].d) * dx[b]);
                }
            } else if (W->dtype == COSY_DTYPE_Q4_0) {
                /* sum (nibble - 8) * x = sum nibble * x + 8 * s, s = -(sum of the block's x) */
                const cosy_block_q4_0 *w = (const cosy_block_q4_0 *)W->data + (size_t)r * (K / 32);
                const int32_t *xs = x->s + (size_t)t * (K / 32);
                acc = 0.0f;
                for (int b = 0; b < K / 32; b++) {
                    int32_t isum = 8 * xs[b];
                    for (int j = 0; j < 16; j++)
                        isum += (int32_t)(w[b].qs[j] & 15) * xq[b * 32 + j] + (int32_t)(w[b].qs[j] >> 4) * xq[b * 32 + j + 16];
                    acc += (float)isum * (cosy_f16_to_f32(w[b].d) * dx[b]);
                }
            } else {
                const float *xr = x->x + (size_t)t * K;
                int k = 0;
                if (W->dtype == COSY_DTYPE_BF16) {
                    const uint16_t *w = (const uint16_t *)W->data + (size_t)r * K;
                    for (; k + 4 <= K; k += 4) {
                        s0 += bf16_at(w, k) * xr[k];
                        s1 += bf16_at(w, k + 1) * xr[k + 1];
                        s2 += bf16_at(w, k + 2) * xr[k + 2];
                        s3 += bf16_at(w, k + 3) * xr[k + 3];
                    }
                    for (; k < K; k++) s0 += bf16_at(w, k) * xr[k];
                } else {
                    const float *w = (const float *)W->data + (size_t)r * K;
                    for (; k + 4 <= K; k += 4) {
                        s0 += w[k] * xr[k];
                        s1 += w[k + 1] * xr[k + 1];
                        s2 += w[k + 2] * xr[k + 2];
                        s3 += w[k + 3] * xr[k + 3];
                    }
                    for (; k < K; k++) s0 += w[k] * xr[k];
                }
                acc = (s0 + s1) + (s2 + s3);
            }
            y[(size_t)t * ldy + r] = acc + (bias ? bias[r] : 0.0f);
        }
    }
}

void cosy_gemv_naive(const cosy_matrix *W, const cosy_gemv_input *x, const float *bias, float *y, int ldy, int r0, int r1)
{
    const int K = W->cols;
    for (int r = r0; r < r1; r++)
        for (int t = 0; t < x->T; t++) {
            double acc = 0.0;
            if (quantised(W->dtype)) {
                /* the weights dequantised one by one (cosy_convert_to_f32 of the row), no shortcuts */
                float wrow[32];
                const int8_t *xq = x->q + (size_t)t * K;
                size_t row = cosy_dtype_nbytes(W->dtype, K), blk = cosy_dtype_nbytes(W->dtype, 32);
                for (int b = 0; b < K / 32; b++) {
                    const char *src = (const char *)W->data + (size_t)r * row + (size_t)b * blk;
                    cosy_convert_to_f32(wrow, src, W->dtype, 32);
                    double bsum = 0.0;
                    for (int j = 0; j < 32; j++) bsum += (double)wrow[j] * xq[b * 32 + j];
                    acc += bsum * x->d[(size_t)t * (K / 32) + b];
                }
            } else {
                for (int k = 0; k < K; k++) {
                    double wv = W->dtype == COSY_DTYPE_BF16 ? cosy_bf16_to_f32(((const uint16_t *)W->data)[(size_t)r * K + k])
                                                            : ((const float *)W->data)[(size_t)r * K + k];
                    acc += wv * x->x[(size_t)t * K + k];
                }
            }
            y[(size_t)t * ldy + r] = (float)(acc + (bias ? bias[r] : 0.0));
        }
}

#ifdef GEMV_X86
/* ------------------------------------------------------------------ AVX-512: f32 and bf16 weights */

INLINE TGT_AVX512 __m512 load16_w(const void *W, size_t off, int bf16)
{
    if (bf16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)W + off));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_loadu_ps((const float *)W + off);
}

INLINE TGT_AVX512 __m512 load16_w_mask(const void *W, size_t off, int bf16, __mmask16 m)
{
    if (bf16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)W + off);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(m, (const float *)W + off);
}

INLINE TGT_AVX512 void f_tile_512(const void *W, int K, const float *x, const float *bias, float *y, int ldy, int r,
                                  const int RB, const int T, const int bf16)
{
    __m512 acc[4][COSY_GEMV_MAX_T];
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int i = 0; i < RB; i++) {
            w[i] = load16_w(W, (size_t)(r + i) * K + k, bf16);
            /* the next tile's rows: the hardware prefetcher alone leaves a third of the bandwidth unused */
            _mm_prefetch((const char *)W + ((size_t)(r + i + RB) * K + k) * (bf16 ? 2 : 4), _MM_HINT_T0);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_loadu_ps(x + (size_t)t * K + k);
#pragma GCC unroll 4
            for (int i = 0; i < RB; i++) acc[i][t] = _mm512_fmadd_ps(w[i], xv, acc[i][t]);
        }
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512 w[4];
#pragma GCC unroll 4
        for (int i = 0; i < RB; i++) w[i] = load16_w_mask(W, (size_t)(r + i) * K + k, bf16, m);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + (size_t)t * K + k);
#pragma GCC unroll 4
            for (int i = 0; i < RB; i++) acc[i][t] = _mm512_fmadd_ps(w[i], xv, acc[i][t]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) y[(size_t)t * ldy + r + i] = _mm512_reduce_add_ps(acc[i][t]) + (bias ? bias[r + i] : 0.0f);
}

INLINE TGT_AVX512 void f_rows_512(const void *W, int K, const float *x, const float *bias, float *y, int ldy, int r0, int r1,
                                  const int T, const int bf16)
{
    const int RB = T == 1 ? 4 : 2;
    int r = r0;
    for (; r + RB <= r1; r += RB) f_tile_512(W, K, x, bias, y, ldy, r, RB, T, bf16);
    for (; r < r1; r++) f_tile_512(W, K, x, bias, y, ldy, r, 1, T, bf16);
}

#define F_CASES_512(BF16)                                                                  \
    switch (T) {                                                                           \
    case 1: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 1, BF16); break;                     \
    case 2: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 2, BF16); break;                     \
    case 3: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 3, BF16); break;                     \
    case 4: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 4, BF16); break;                     \
    case 5: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 5, BF16); break;                     \
    case 6: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 6, BF16); break;                     \
    case 7: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 7, BF16); break;                     \
    default: f_rows_512(W, K, x, bias, y, ldy, r0, r1, 8, BF16); break;                    \
    }

TGT_AVX512 static void f32_avx512(const void *W, int K, const float *x, int T, const float *bias, float *y, int ldy, int r0, int r1)
{
    F_CASES_512(0)
}

TGT_AVX512 static void bf16_avx512(const void *W, int K, const float *x, int T, const float *bias, float *y, int ldy, int r0, int r1)
{
    F_CASES_512(1)
}

/* ------------------------------------------------------------------ AVX-512: q8_0 and q4_0 weights */

/* [s[0] x 8, s[1] x 8]: the scales of two consecutive blocks, one per 8 int32 lanes (the second 0 when
 * `one`: the odd last block of a row). */
INLINE TGT_AVX512 __m512 pair_scales(const float *s, const int one)
{
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128 two = one ? _mm_load_ss(s) : _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)s));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two));
}

/* the same for the activations' block sums (q4_0's offset correction) */
INLINE TGT_AVX512 __m512i pair_sums(const int32_t *s, const int one)
{
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128i two = one ? _mm_cvtsi32_si128(s[0]) : _mm_loadl_epi64((const __m128i *)s);
    return _mm512_permutexvar_epi32(idx, _mm512_castsi128_si512(two));
}

/* the same from two f16 weight scales */
INLINE TGT_AVX512 __m512 pair_scales_f16(uint16_t a, uint16_t b)
{
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128 two = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)a | (uint32_t)b << 16)));
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two));
}

/* The activation bytes of blocks b and b + 1 (only b when `one`, the rest zero). */
INLINE TGT_AVX512 __m512i pair_act(const int8_t *xq, const int one)
{
    return one ? _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xq)) : _mm512_loadu_si512((const void *)xq);
}

#define DOT64_VNNI(acc, a, b) _mm512_dpbusd_epi32((acc), (a), (b))
#define DOT64_BW(acc, a, b) _mm512_add_epi32((acc), _mm512_madd_epi16(_mm512_maddubs_epi16((a), (b)), _mm512_set1_epi16(1)))

/*
 * q8_0, two ggml blocks (68 bytes) per step: |w| (unsigned) times x with w's sign, summed per 4 bytes
 * into 16 int32 lanes, 8 lanes per block. With VNNI one vpdpbusd; without, vpmaddubsw + vpmaddwd (no
 * overflow: the pair sums are at most 2 * 127 * 127). `one` = only block b (a row's odd last block).
 */
#define Q8_PAIR_512(NAME, TARGET, DOT)                                                                            \
    INLINE TARGET void NAME(const cosy_block_q8_0 *Wb, int nb, const int8_t *xq, const float *xd, int K, int b, int r, \
                            __m512 acc[4][COSY_GEMV_MAX_T], const int RB, const int T, const int one)             \
    {                                                                                                             \
        const __m512i zero = _mm512_setzero_si512();                                                              \
        __m512i aw[4];                                                                                            \
        __mmask64 neg[4];                                                                                         \
        __m512 sw[4];                                                                                             \
        _Pragma("GCC unroll 4") for (int i = 0; i < RB; i++) {                                                    \
            const cosy_block_q8_0 *wb = Wb + (size_t)(r + i) * nb + b;                                            \
            __m256i lo = _mm256_loadu_si256((const __m256i *)wb[0].qs);                                           \
            __m512i w = one ? _mm512_castsi256_si512(lo)                                                          \
                            : _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)wb[1].qs), 1); \
            /* the next tile's rows: the hardware prefetcher alone leaves a third of the bandwidth unused */      \
            _mm_prefetch((const char *)(wb + (size_t)RB * nb), _MM_HINT_T0);                                      \
            _mm_prefetch((const char *)(wb + (size_t)RB * nb) + 64, _MM_HINT_T0);                                 \
            aw[i] = _mm512_abs_epi8(w);                                                                           \
            neg[i] = _mm512_movepi8_mask(w);                                                                      \
            sw[i] = pair_scales_f16(wb[0].d, one ? 0 : wb[1].d);                                                  \
        }                                                                                                         \
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {                                                     \
            __m512i xv = pair_act(xq + (size_t)t * K + (size_t)b * 32, one);                                      \
            __m512 sx = pair_scales(xd + (size_t)t * nb + b, one);                                                \
            _Pragma("GCC unroll 4") for (int i = 0; i < RB; i++) {                                                \
                __m512i xs = _mm512_mask_sub_epi8(xv, neg[i], zero, xv);                                          \
                __m512i dp = DOT(zero, aw[i], xs);                                                                \
                acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_mul_ps(sw[i], sx), acc[i][t]);         \
            }                                                                                                     \
        }                                                                                                         \
    }

/*
 * q4_0, two ggml blocks (36 bytes) per step. One masked load brings both blocks; a word permutation
 * lays their 16 packed bytes out as [qs_b, qs_b, qs_b1, qs_b1] and the second copy of each is shifted
 * right by 4, so after masking with 0x0F the 64 bytes are the unsigned nibbles in element order, lined
 * up with the activation bytes. vpdpbusd (or vpmaddubsw + vpmaddwd: 2 * 15 * 127 fits int16) then
 * sums nibble * x; the weights' offset of 8 is taken out exactly by starting each block's 8 lanes at
 * -(sum of its activation bytes), so the 8 lanes add up to sum (nibble - 8) * x.
 */
#define Q4_PAIR_512(NAME, TARGET, DOT)                                                                            \
    INLINE TARGET void NAME(const cosy_block_q4_0 *Wb, int nb, const int8_t *xq, const float *xd, const int32_t *xs, int K, \
                            int b, int r, __m512 acc[4][COSY_GEMV_MAX_T], const int RB, const int T, const int one) \
    {                                                                                                             \
        static const int16_t qidx[32] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,                          \
                                         10, 11, 12, 13, 14, 15, 16, 17, 10, 11, 12, 13, 14, 15, 16, 17};         \
        static const int16_t didx[16] = {0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9};                         \
        const __m512i iq = _mm512_loadu_si512((const void *)qidx);                                                \
        const __m256i id = _mm256_loadu_si256((const __m256i *)didx);                                             \
        const __m512i m4 = _mm512_set1_epi8(0x0f);                                                                \
        const __mmask64 load = one ? (__mmask64)0x3ffff : (__mmask64)0xfffffffffull;                              \
        __m512i w[4];                                                                                             \
        __m512 sw[4];                                                                                             \
        _Pragma("GCC unroll 4") for (int i = 0; i < RB; i++) {                                                    \
            const cosy_block_q4_0 *wb = Wb + (size_t)(r + i) * nb + b;                                            \
            __m512i raw = _mm512_maskz_loadu_epi8(load, wb);                                                      \
            _mm_prefetch((const char *)(wb + (size_t)RB * nb), _MM_HINT_T0);                                      \
            __m512i z = _mm512_permutexvar_epi16(iq, raw);                                                        \
            w[i] = _mm512_and_si512(_mm512_mask_srli_epi16(z, (__mmask32)0xff00ff00u, z, 4), m4);                 \
            sw[i] = _mm512_cvtph_ps(_mm256_permutexvar_epi16(id, _mm512_castsi512_si256(raw)));                   \
        }                                                                                                         \
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {                                                     \
            __m512i xv = pair_act(xq + (size_t)t * K + (size_t)b * 32, one);                                      \
            __m512 sx = pair_scales(xd + (size_t)t * nb + b, one);                                                \
            __m512i corr = pair_sums(xs + (size_t)t * nb + b, one);                                               \
            _Pragma("GCC unroll 4") for (int i = 0; i < RB; i++) {                                                \
                __m512i dp = DOT(corr, w[i], xv);                                                                 \
                acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_mul_ps(sw[i], sx), acc[i][t]);         \
            }                                                                                                     \
        }                                                                                                         \
    }

Q8_PAIR_512(q8_pair_vnni, TGT_VNNI, DOT64_VNNI)
Q8_PAIR_512(q8_pair_bw, TGT_AVX512, DOT64_BW)
Q4_PAIR_512(q4_pair_vnni, TGT_VNNI, DOT64_VNNI)
Q4_PAIR_512(q4_pair_bw, TGT_AVX512, DOT64_BW)

/* A tile: RB weight rows times T activation rows over the whole width, pairs of blocks then the odd one. */
#define QX_TILE_512(NAME, TARGET, PAIR, BLOCK, ...)                                                               \
    INLINE TARGET void NAME(const BLOCK *Wb, int K, const int8_t *xq, const float *xd, const int32_t *xs,        \
                            const float *bias, float *y, int ldy, int r, const int RB, const int T)               \
    {                                                                                                             \
        const int nb = K / 32;                                                                                    \
        __m512 acc[4][COSY_GEMV_MAX_T];                                                                           \
        (void)xs;                                                                                                 \
        _Pragma("GCC unroll 4") for (int i = 0; i < RB; i++)                                                      \
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_ps();                  \
        int b = 0;                                                                                                \
        for (; b + 2 <= nb; b += 2) PAIR(Wb, nb, xq, xd, __VA_ARGS__ K, b, r, acc, RB, T, 0);                    \
        if (b < nb) PAIR(Wb, nb, xq, xd, __VA_ARGS__ K, b, r, acc, RB, T, 1);                                     \
        _Pragma("GCC unroll 4") for (int i = 0; i < RB; i++)                                                      \
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)                                                   \
                y[(size_t)t * ldy + r + i] = _mm512_reduce_add_ps(acc[i][t]) + (bias ? bias[r + i] : 0.0f);       \
    }

QX_TILE_512(q8_tile_vnni, TGT_VNNI, q8_pair_vnni, cosy_block_q8_0, )
QX_TILE_512(q8_tile_bw, TGT_AVX512, q8_pair_bw, cosy_block_q8_0, )
QX_TILE_512(q4_tile_vnni, TGT_VNNI, q4_pair_vnni, cosy_block_q4_0, xs, )
QX_TILE_512(q4_tile_bw, TGT_AVX512, q4_pair_bw, cosy_block_q4_0, xs, )

/* The row loop and the dispatch on T (1..8) around a tile of RB(T) weight rows, for any ISA. */
#define QX_ROWS(NAME, TARGET, TILE, BLOCK, RB_OF_T)                                                                    \
    INLINE TARGET void NAME##_rows(const BLOCK *Wb, int K, const int8_t *xq, const float *xd, const int32_t *xs,  \
                                   const float *bias, float *y, int ldy, int r0, int r1, const int T)             \
    {                                                                                                             \
        const int RB = RB_OF_T;                                                                            \
        int r = r0;                                                                                               \
        for (; r + RB <= r1; r += RB) TILE(Wb, K, xq, xd, xs, bias, y, ldy, r, RB, T);                            \
        for (; r < r1; r++) TILE(Wb, K, xq, xd, xs, bias, y, ldy, r, 1, T);                                       \
    }                                                                                                             \
    TARGET static void NAME(const void *W, int K, const int8_t *xq, const float *xd, const int32_t *xs, int T,    \
                            const float *bias, float *y, int ldy, int r0, int r1)                                 \
    {                                                                                                             \
        const BLOCK *Wb = W;                                                                                      \
        switch (T) {                                                                                              \
        case 1: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 1); break;                                   \
        case 2: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 2); break;                                   \
        case 3: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 3); break;                                   \
        case 4: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 4); break;                                   \
        case 5: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 5); break;                                   \
        case 6: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 6); break;                                   \
        case 7: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 7); break;                                   \
        default: NAME##_rows(Wb, K, xq, xd, xs, bias, y, ldy, r0, r1, 8); break;                                  \
        }                                                                                                         \
    }

QX_ROWS(q8_vnni, TGT_VNNI, q8_tile_vnni, cosy_block_q8_0, T == 1 ? 4 : 2)
QX_ROWS(q8_bw, TGT_AVX512, q8_tile_bw, cosy_block_q8_0, T == 1 ? 4 : 2)
QX_ROWS(q4_vnni, TGT_VNNI, q4_tile_vnni, cosy_block_q4_0, T == 1 ? 4 : 2)
QX_ROWS(q4_bw, TGT_AVX512, q4_tile_bw, cosy_block_q4_0, T == 1 ? 4 : 2)

/* transposed product: 16 columns x T rows of accumulators, one pass over the matrix rows */
INLINE TGT_AVX512 void ft_cols_512(const float *W, int rows, int cols, int ldw, const float *x, int ldx, float *y, int ldy,
                                   const int T)
{
    for (int c = 0; c < cols; c += 16) {
        __mmask16 m = cols - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (cols - c)) - 1u);
        __m512 acc[COSY_GEMV_MAX_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m512 w = _mm512_maskz_loadu_ps(m, W + (size_t)r * ldw + c);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(x[(size_t)t * ldx + r]), w, acc[t]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ldy + c, m, acc[t]);
    }
}

TGT_AVX512 static void ft_avx512(const float *W, int rows, int cols, int ldw, const float *x, int ldx, int T, float *y, int ldy)
{
    switch (T) {
    case 1: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 1); break;
    case 2: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 2); break;
    case 3: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 3); break;
    case 4: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 4); break;
    case 5: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 5); break;
    case 6: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 6); break;
    case 7: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 7); break;
    default: ft_cols_512(W, rows, cols, ldw, x, ldx, y, ldy, 8); break;
    }
}

/* ------------------------------------------------------------------ AVX2 */

INLINE TGT_AVX2 float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE TGT_AVX2 __m256 load8_w(const void *W, size_t off, int bf16)
{
    if (bf16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)W + off));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm256_loadu_ps((const float *)W + off);
}

INLINE TGT_AVX2 void f_tile_avx2(const void *W, int K, const float *x, const float *bias, float *y, int ldy, int r,
                                 const int RB, const int T, const int bf16)
{
    __m256 acc[4][COSY_GEMV_MAX_T];
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 w[4];
#pragma GCC unroll 4
        for (int i = 0; i < RB; i++) {
            w[i] = load8_w(W, (size_t)(r + i) * K + k, bf16);
            _mm_prefetch((const char *)W + ((size_t)(r + i + RB) * K + k) * (bf16 ? 2 : 4), _MM_HINT_T0);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps(x + (size_t)t * K + k);
#pragma GCC unroll 4
            for (int i = 0; i < RB; i++) acc[i][t] = _mm256_fmadd_ps(w[i], xv, acc[i][t]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            float s = hsum256(acc[i][t]);
            for (int kk = k; kk < K; kk++) {
                float wv = bf16 ? cosy_bf16_to_f32(((const uint16_t *)W)[(size_t)(r + i) * K + kk])
                                : ((const float *)W)[(size_t)(r + i) * K + kk];
                s += wv * x[(size_t)t * K + kk];
            }
            y[(size_t)t * ldy + r + i] = s + (bias ? bias[r + i] : 0.0f);
        }
}

INLINE TGT_AVX2 void f_rows_avx2(const void *W, int K, const float *x, const float *bias, float *y, int ldy, int r0, int r1,
                                 const int T, const int bf16)
{
    const int RB = T == 1 ? 4 : T == 2 ? 2 : 1;
    int r = r0;
    for (; r + RB <= r1; r += RB) f_tile_avx2(W, K, x, bias, y, ldy, r, RB, T, bf16);
    for (; r < r1; r++) f_tile_avx2(W, K, x, bias, y, ldy, r, 1, T, bf16);
}

#define F_CASES_AVX2(BF16)                                                                 \
    switch (T) {                                                                           \
    case 1: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 1, BF16); break;                    \
    case 2: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 2, BF16); break;                    \
    case 3: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 3, BF16); break;                    \
    case 4: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 4, BF16); break;                    \
    case 5: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 5, BF16); break;                    \
    case 6: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 6, BF16); break;                    \
    case 7: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 7, BF16); break;                    \
    default: f_rows_avx2(W, K, x, bias, y, ldy, r0, r1, 8, BF16); break;                   \
    }

TGT_AVX2 static void f32_avx2(const void *W, int K, const float *x, int T, const float *bias, float *y, int ldy, int r0, int r1)
{
    F_CASES_AVX2(0)
}

TGT_AVX2 static void bf16_avx2(const void *W, int K, const float *x, int T, const float *bias, float *y, int ldy, int r0, int r1)
{
    F_CASES_AVX2(1)
}

/* ggml's AVX2 sign trick: |w| as unsigned bytes times x carrying w's sign, through vpmaddubsw. */
INLINE TGT_AVX2 void q8_tile_avx2(const cosy_block_q8_0 *Wb, int K, const int8_t *xq, const float *xd, const int32_t *xs,
                                  const float *bias, float *y, int ldy, int r, const int RB, const int T)
{
    const int nb = K / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][COSY_GEMV_MAX_T];
    (void)xs;
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i w[4], aw[4];
        float dw[4];
#pragma GCC unroll 4
        for (int i = 0; i < RB; i++) {
            const cosy_block_q8_0 *wb = Wb + (size_t)(r + i) * nb + b;
            w[i] = _mm256_loadu_si256((const __m256i *)wb->qs);
            _mm_prefetch((const char *)(wb + (size_t)RB * nb), _MM_HINT_T0);
            aw[i] = _mm256_sign_epi8(w[i], w[i]);
            dw[i] = _cvtsh_ss(wb->d);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * K + (size_t)b * 32));
            float dx = xd[(size_t)t * nb + b];
#pragma GCC unroll 4
            for (int i = 0; i < RB; i++) {
                __m256i dp = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[i], _mm256_sign_epi8(xv, w[i])), ones);
                acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp), _mm256_set1_ps(dw[i] * dx), acc[i][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) y[(size_t)t * ldy + r + i] = hsum256(acc[i][t]) + (bias ? bias[r + i] : 0.0f);
}

/* q4_0: the 16 packed bytes become the 32 unsigned nibbles in element order (low halves, then the
 * high halves shifted down); vpmaddubsw with the signed activations (2 * 15 * 127 fits int16), and
 * the offset 8 removed exactly by adding -(sum of the block's activation bytes) to each of 8 lanes. */
INLINE TGT_AVX2 void q4_tile_avx2(const cosy_block_q4_0 *Wb, int K, const int8_t *xq, const float *xd, const int32_t *xs,
                                  const float *bias, float *y, int ldy, int r, const int RB, const int T)
{
    const int nb = K / 32;
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[4][COSY_GEMV_MAX_T];
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i w[4];
        float dw[4];
#pragma GCC unroll 4
        for (int i = 0; i < RB; i++) {
            const cosy_block_q4_0 *wb = Wb + (size_t)(r + i) * nb + b;
            __m128i q = _mm_loadu_si128((const __m128i *)wb->qs);
            _mm_prefetch((const char *)(wb + (size_t)RB * nb), _MM_HINT_T0);
            w[i] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
            dw[i] = _cvtsh_ss(wb->d);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (size_t)t * K + (size_t)b * 32));
            __m256i corr = _mm256_set1_epi32(xs[(size_t)t * nb + b]);
            float dx = xd[(size_t)t * nb + b];
#pragma GCC unroll 4
            for (int i = 0; i < RB; i++) {
                __m256i dp = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w[i], xv), ones), corr);
                acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp), _mm256_set1_ps(dw[i] * dx), acc[i][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RB; i++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) y[(size_t)t * ldy + r + i] = hsum256(acc[i][t]) + (bias ? bias[r + i] : 0.0f);
}

QX_ROWS(q8_avx2, TGT_AVX2, q8_tile_avx2, cosy_block_q8_0, T == 1 ? 4 : T == 2 ? 2 : 1)
QX_ROWS(q4_avx2, TGT_AVX2, q4_tile_avx2, cosy_block_q4_0, T == 1 ? 4 : T == 2 ? 2 : 1)

INLINE TGT_AVX2 void ft_cols_avx2(const float *W, int rows, int cols, int ldw, const float *x, int ldx, float *y, int ldy,
                                  const int T)
{
    int c = 0;
    for (; c + 8 <= cols; c += 8) {
        __m256 acc[COSY_GEMV_MAX_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m256 w = _mm256_loadu_ps(W + (size_t)r * ldw + c);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(x[(size_t)t * ldx + r]), w, acc[t]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) _mm256_storeu_ps(y + (size_t)t * ldy + c, acc[t]);
    }
    for (; c < cols; c++)
        for (int t = 0; t < T; t++) {
            float s = 0.0f;
            for (int r = 0; r < rows; r++) s += x[(size_t)t * ldx + r] * W[(size_t)r * ldw + c];
            y[(size_t)t * ldy + c] = s;
        }
}

TGT_AVX2 static void ft_avx2(const float *W, int rows, int cols, int ldw, const float *x, int ldx, int T, float *y, int ldy)
{
    switch (T) {
    case 1: ft_cols_avx2(W, rows, cols, ldw, x, ldx, y, ldy, 1); break;
    case 2: ft_cols_avx2(W, rows, cols, ldw, x, ldx, y, ldy, 2); break;
    case 3: ft_cols_avx2(W, rows, cols, ldw, x, ldx, y, ldy, 3); break;
    case 4: ft_cols_avx2(W, rows, cols, ldw, x, ldx, y, ldy, 4); break;
    default: /* 8 accumulators + the broadcast + the row would spill with more */
        for (int t0 = 0; t0 < T; t0 += 4)
            ft_avx2(W, rows, cols, ldw, x + (size_t)t0 * ldx, ldx, T - t0 < 4 ? T - t0 : 4, y + (size_t)t0 * ldy, ldy);
        break;
    }
}
#endif /* GEMV_X86 */

void cosy_gemv_t_f32(const float *W, int rows, int cols, int ldw, const float *x, int ldx, int T, float *y, int ldy)
{
    for (int t0 = 0; t0 < T; t0 += COSY_GEMV_MAX_T) {
        int n = T - t0 < COSY_GEMV_MAX_T ? T - t0 : COSY_GEMV_MAX_T;
        const float *xt = x + (size_t)t0 * ldx;
        float *yt = y + (size_t)t0 * ldy;
#ifdef GEMV_X86
        cosy_cpu_level_t level = cosy_cpu_level();
        if (level >= COSY_CPU_AVX512) { ft_avx512(W, rows, cols, ldw, xt, ldx, n, yt, ldy); continue; }
        if (level == COSY_CPU_AVX2) { ft_avx2(W, rows, cols, ldw, xt, ldx, n, yt, ldy); continue; }
#endif
        for (int t = 0; t < n; t++) {
            float *yr = yt + (size_t)t * ldy;
            for (int c = 0; c < cols; c++) yr[c] = 0.0f;
            for (int r = 0; r < rows; r++) {
                float a = xt[(size_t)t * ldx + r];
                const float *wr = W + (size_t)r * ldw;
                for (int c = 0; c < cols; c++) yr[c] += a * wr[c];
            }
        }
    }
}

/* ------------------------------------------------------------------ dispatch */

void cosy_gemv(const cosy_matrix *W, const cosy_gemv_input *x, const float *bias, float *y, int ldy, int r0, int r1)
{
    const int K = W->cols;
    cosy_cpu_level_t level = cosy_cpu_level();
    int vnni = quantised(W->dtype) && use_vnni();
    for (int t0 = 0; t0 < x->T; t0 += COSY_GEMV_MAX_T) {
        int T = x->T - t0 < COSY_GEMV_MAX_T ? x->T - t0 : COSY_GEMV_MAX_T;
        float *yt = y + (size_t)t0 * ldy;
        const float *xt = x->x ? x->x + (size_t)t0 * K : NULL;
#ifdef GEMV_X86
        if (level >= COSY_CPU_AVX2) {
            const int8_t *xq = x->q ? x->q + (size_t)t0 * K : NULL;
            const float *xd = x->d ? x->d + (size_t)t0 * (K / 32) : NULL;
            const int32_t *xs = x->s ? x->s + (size_t)t0 * (K / 32) : NULL;
            switch (W->dtype) {
            case COSY_DTYPE_F32:
                if (level >= COSY_CPU_AVX512) f32_avx512(W->data, K, xt, T, bias, yt, ldy, r0, r1);
                else f32_avx2(W->data, K, xt, T, bias, yt, ldy, r0, r1);
                continue;
            case COSY_DTYPE_BF16:
                if (level >= COSY_CPU_AVX512) bf16_avx512(W->data, K, xt, T, bias, yt, ldy, r0, r1);
                else bf16_avx2(W->data, K, xt, T, bias, yt, ldy, r0, r1);
                continue;
            case COSY_DTYPE_Q8_0:
                if (level >= COSY_CPU_AVX512 && vnni) q8_vnni(W->data, K, xq, xd, xs, T, bias, yt, ldy, r0, r1);
                else if (level >= COSY_CPU_AVX512) q8_bw(W->data, K, xq, xd, xs, T, bias, yt, ldy, r0, r1);
                else q8_avx2(W->data, K, xq, xd, xs, T, bias, yt, ldy, r0, r1);
                continue;
            case COSY_DTYPE_Q4_0:
                if (level >= COSY_CPU_AVX512 && vnni) q4_vnni(W->data, K, xq, xd, xs, T, bias, yt, ldy, r0, r1);
                else if (level >= COSY_CPU_AVX512) q4_bw(W->data, K, xq, xd, xs, T, bias, yt, ldy, r0, r1);
                else q4_avx2(W->data, K, xq, xd, xs, T, bias, yt, ldy, r0, r1);
                continue;
            default: break;
            }
        }
#endif
        (void)level;
        (void)vnni;
        (void)xt;
        gemv_portable(W, x, t0, T, bias, y, ldy, r0, r1);
    }
}

/* ------------------------------------------------------------------ weight conversion */

int cosy_matrix_convert_rows(const cosy_matrix *dst, void *dst_data, const void *src, cosy_dtype src_dtype, int r0, int r1)
{
    const int K = dst->cols;
    const size_t src_row = cosy_dtype_nbytes(src_dtype, K), dst_row = cosy_dtype_nbytes(dst->dtype, K);
    float *row = malloc(sizeof(float) * (size_t)K);
    if (!row) return -1;
    for (int r = r0; r < r1; r++) {
        const char *s = (const char *)src + (size_t)r * src_row;
        char *d = (char *)dst_data + (size_t)r * dst_row;
        if (src_dtype == dst->dtype) {
            memcpy(d, s, dst_row);
        } else {
            /* q8_0 / q4_0 through ggml's block quantisation, so a converted f32 file and a stored one agree */
            cosy_convert_to_f32(row, s, src_dtype, K);
            cosy_convert_from_f32(d, dst->dtype, row, K);
        }
    }
    free(row);
    return 0;
}
