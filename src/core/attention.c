/*
 * attention.c — one head's attention over keys/values in blocks (attention.h).
 *
 * Per call: scores S = scale Q K^T block by block into [rows][32 n_blocks], a softmax over the visible
 * keys only (the others get weight exactly 0), then O = P V accumulated block after block. The
 * kernels by path (cpu.h, gemm.h):
 *   AMX          Q K^T: a 32x32 score block in four tiles per key block, stored straight into S;
 *                P V: 16 query rows x up to 64 dims in four accumulator tiles that stay in the tile
 *                registers across all key blocks.
 *   AVX512-BF16  Q K^T with the gemm.h micro-kernel per block; P V with up to 6 rows x 64 dims in 24
 *                zmm accumulators across all key blocks.
 *   f32          the packed f32 panel kernel (AVX-512) per block, or cosy_sgemm without AVX-512.
 */
#include "core/attention.h"
#include "core/cpu.h"
#include "core/gemm.h"
#include "core/half.h"
#include "core/ops.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define ATTN_HAVE_SIMD 1
#include <immintrin.h>
#include "core/simd_avx512.h"
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#endif

#define B COSY_KV_BLOCK

static inline int up32(int n) { return (n + 31) / 32 * 32; }

size_t cosy_kv_slab_elems(int d, int bf16)
{
    const size_t dp = (size_t)up32(d);
    return bf16 ? 2 * B * dp : B * (size_t)d + B * dp;
}

/* ---------------------------------------------------------------- writing keys */

#ifdef ATTN_HAVE_SIMD
/* The same as the portable cosy_kv_put below for d % 32 == 0 (every real model's head width): the K
 * pairs of a slot lie 64 bytes apart in a tile (one scatter per 32 dims), the V values of a slot
 * every other bf16 of a tile row (one blend per 16 dims). */
TGT_BF16 static void put_bf16_avx512(uint16_t *K, uint16_t *V, int slot, const float *k, const float *v, int d)
{
    const int KB = d / 32;
    uint32_t *kc = (uint32_t *)(K + (size_t)(slot / 16) * KB * 512 + (size_t)(slot % 16) * 2);
    const __m512i pair_rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(16));
    for (int kb = 0; kb < KB; kb++) {
        const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(k + kb * 32 + 16), _mm512_loadu_ps(k + kb * 32));
        _mm512_i32scatter_epi32((void *)(kc + (size_t)kb * 256), pair_rows, pairs, 4);
    }
    const __mmask32 lane = slot % 2 ? 0xaaaaaaaau : 0x55555555u;
    uint16_t *vrow = V + (size_t)(slot / 2) * 32;
    for (int i = 0; i < d; i += 16) {
        __m512i vals = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v + i)));
        if (slot % 2) vals = _mm512_slli_epi32(vals, 16);
        uint16_t *row = vrow + (size_t)(i / 16) * 512;
        _mm512_storeu_si512((void *)row, _mm512_mask_blend_epi16(lane, _mm512_loadu_si512((const void *)row), vals));
    }
}

/* 16 keys at once (slots 16 g .. 16 g + 15): their bf16 pairs transposed in registers into whole tile
 * rows, a 64-byte store each instead of 16 scattered ones */
TGT_BF16 static void put16_bf16_avx512(uint16_t *K, uint16_t *V, int group, const float *k, const float *v, int ld, int d)
{
    const int KB = d / 32;
    for (int kb = 0; kb < KB; kb++) {
        __m512 r[16];
        for (int j = 0; j < 16; j++) {
            const float *row = k + (size_t)j * ld + kb * 32;
            r[j] = (__m512)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 16), _mm512_loadu_ps(row));
        }
        cosy_transpose16_regs(r);
        uint16_t *tile = K + ((size_t)group * KB + kb) * 512;
        for (int p = 0; p < 16; p++) _mm512_storeu_ps((float *)(void *)(tile + p * 32), r[p]);
    }
    for (int j = 0; j < 16; j += 2) {
        /* V^T tile rows hold key pairs: two keys' values interleaved, whole rows written */
        uint16_t *vrow = V + (size_t)((group * 16 + j) / 2) * 32;
        for (int i = 0; i < d; i += 16) {
            const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v + (size_t)j * ld + i)));
            const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(v + (size_t)(j + 1) * ld + i)));
            _mm512_storeu_si512((void *)(vrow + (size_t)(i / 16) * 512), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

/* f32: K^T one column (a scatter per 16 dims), V a row of each panel */
AVX512 static void put_f32_avx512(float *K, float *V, int slot, const float *k, const float *v, int d)
{
    const __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(B));
    for (int i = 0; i < d; i += 16) _mm512_i32scatter_ps(K + (size_t)i * B + slot, stride, _mm512_loadu_ps(k + i), 4);
    for (int i = 0; i < d; i += 32) {
        float *row = V + (size_t)(i / 32) * B * 32 + (size_t)slot * 32;
        _mm512_storeu_ps(row, _mm512_loadu_ps(v + i));
        _mm512_storeu_ps(row + 16, _mm512_loadu_ps(v + i + 16));
    }
}
#endif

void cosy_kv_put(void *slab, int slot, const float *k, const float *v, int d, int bf16)
{
    const int dp = up32(d), KB = dp / 32;
#ifdef ATTN_HAVE_SIMD
    if (d % 32 == 0) {
        if (bf16 && cosy_gemm_bf16_level()) {
            put_bf16_avx512(slab, (uint16_t *)slab + (size_t)B * dp, slot, k, v, d);
            return;
        }
        if (!bf16 && cosy_cpu_level() >= COSY_CPU_AVX512) {
            put_f32_avx512(slab, (float *)slab + (size_t)B * d, slot, k, v, d);
            return;
        }
    }
#endif
    if (bf16) {
        uint16_t *K = slab, *V = K + (size_t)B * dp;
        /* K[key slot][dim i] at packed index (slot, i): column block slot / 16, tile i / 32, pair
         * row (i % 32) / 2, column slot % 16, lane i % 2 (gemm.h) */
        uint16_t *kc = K + (size_t)(slot / 16) * KB * 512 + (size_t)(slot % 16) * 2;
        for (int i = 0; i < dp; i++) /* the padding dims too: they meet zero queries, and 0 x NaN is NaN */
            kc[(size_t)(i / 32) * 512 + (size_t)((i % 32) / 2) * 32 + (i % 2)] = i < d ? cosy_f32_to_bf16(k[i]) : 0;
        /* V^T[dim i][key slot]: column block i / 16, one tile, pair row slot / 2, column i % 16, lane slot % 2 */
        uint16_t *vc = V + (size_t)(slot / 2) * 32 + (slot % 2);
        for (int i = 0; i < dp; i++) vc[(size_t)(i / 16) * 512 + (size_t)(i % 16) * 2] = i < d ? cosy_f32_to_bf16(v[i]) : 0;
        return;
    }
    float *K = slab, *V = K + (size_t)B * d;
    for (int i = 0; i < d; i++) K[(size_t)i * B + slot] = k[i];
    for (int i = 0; i < d; i += 32) {
        const int n = d - i < 32 ? d - i : 32;
        float *row = V + (size_t)(i / 32) * B * 32 + (size_t)slot * 32;
        memcpy(row, v + i, sizeof(float) * (size_t)n);
        if (n < 32) memset(row + n, 0, sizeof(float) * (size_t)(32 - n));
    }
}

void cosy_kv_put_rows(void *slab, int slot, int n, const float *k, const float *v, int ld, int d, int bf16)
{
#ifdef ATTN_HAVE_SIMD
    if (bf16 && d % 32 == 0 && cosy_gemm_bf16_level()) {
        uint16_t *K = slab, *V = K + (size_t)B * d;
        for (int i = 0; i < n;) {
            if ((slot + i) % 16 == 0 && n - i >= 16) {
                put16_bf16_avx512(K, V, (slot + i) / 16, k + (size_t)i * ld, v + (size_t)i * ld, ld, d);
                i += 16;
            } else {
                put_bf16_avx512(K, V, slot + i, k + (size_t)i * ld, v + (size_t)i * ld, d);
                i++;
            }
        }
        return;
    }
#endif
    for (int i = 0; i < n; i++) cosy_kv_put(slab, slot + i, k + (size_t)i * ld, v + (size_t)i * ld, d, bf16);
}

/* ---------------------------------------------------------------- scratch */

typedef struct {
    float *S;         /* [64][32 n_blocks] scores, then f32 probabilities */
    uint16_t *P;      /* [64][32 n_blocks] bf16 probabilities */
    uint16_t *Q;      /* [64][dp] bf16 queries */
    float *inv_sum;   /* [64] */
    float *tmp;       /* [16][64] */
} attn_scratch;

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

size_t cosy_attn_scratch_bytes(int d, int n_blocks)
{
    const size_t keys = (size_t)B * (n_blocks > 0 ? n_blocks : 1);
    return align64(sizeof(float) * COSY_ATTN_ROWS * keys) + align64(sizeof(uint16_t) * COSY_ATTN_ROWS * keys) +
           align64(sizeof(uint16_t) * COSY_ATTN_ROWS * (size_t)up32(d)) + align64(sizeof(float) * COSY_ATTN_ROWS) +
           align64(sizeof(float) * 16 * 64);
}

static attn_scratch carve(void *scratch, int d, int n_blocks)
{
    const size_t keys = (size_t)B * n_blocks;
    char *p = scratch;
    attn_scratch s;
    s.S = (float *)p;
    p += align64(sizeof(float) * COSY_ATTN_ROWS * keys);
    s.P = (uint16_t *)p;
    p += align64(sizeof(uint16_t) * COSY_ATTN_ROWS * keys);
    s.Q = (uint16_t *)p;
    p += align64(sizeof(uint16_t) * COSY_ATTN_ROWS * (size_t)up32(d));
    s.inv_sum = (float *)p;
    p += align64(sizeof(float) * COSY_ATTN_ROWS);
    s.tmp = (float *)p;
    return s;
}

/* ---------------------------------------------------------------- softmax over visible keys */

/* S[r][*] -> exp(S - max) on visible keys, 0 elsewhere (in place, and as bf16 into P when P is not
 * NULL); inv_sum[r] = 1 / the sum (0 for a row with no visible key). Rows of P from `rows` to rows_p
 * are zeroed (they are the padding rows of the tile products). The AVX-512 versions below do the same:
 * the bf16 one writes only P (with a shorter exp), the f32 one only S. */
static void softmax_scalar(float *S, uint16_t *P, int rows, int rows_p, int n_blocks, const cosy_kv_ref *blk, float *inv_sum)
{
    const int ld = B * n_blocks;
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * ld, mx = -INFINITY, sum = 0.0f;
        for (int i = 0; i < n_blocks; i++)
            for (int j = 0; j < B; j++)
                if (blk[i].visible >> j & 1u) mx = fmaxf(mx, s[i * B + j]);
        for (int i = 0; i < n_blocks; i++)
            for (int j = 0; j < B; j++) {
                float e = blk[i].visible >> j & 1u ? expf(s[i * B + j] - mx) : 0.0f;
                s[i * B + j] = e;
                sum += e;
            }
        inv_sum[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
        if (P)
            for (int j = 0; j < ld; j++) P[(size_t)r * ld + j] = cosy_f32_to_bf16(s[j]);
    }
    if (P) memset(P + (size_t)rows * ld, 0, sizeof(uint16_t) * (size_t)(rows_p - rows) * ld);
}

#ifdef ATTN_HAVE_SIMD
/* exp(x) for x <= 0 to ~2e-6 relative: 2^(x log2 e) as 2^n * 2^f, |f| <= 1/2, 2^f by a degree-5
 * polynomial (Taylor of e^(f ln 2), remainder < 1.5e-6). Enough for probabilities that are rounded to
 * bf16 (8 significant bits) right after; about half the work of exp512's. */
static inline __attribute__((always_inline)) TGT_BF16 __m512 exp_bf16_grade(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-100.0f));
    const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.3333558146428443e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static TGT_BF16 void softmax_avx512(float *S, uint16_t *P, int rows, int rows_p, int n_blocks, const cosy_kv_ref *blk, float *inv_sum)
{
    const int ld = B * n_blocks;
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * ld;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int i = 0; i < n_blocks; i++) {
            const __mmask16 m0 = (__mmask16)(blk[i].visible & 0xffffu), m1 = (__mmask16)(blk[i].visible >> 16);
            vmax = _mm512_mask_max_ps(vmax, m0, vmax, _mm512_loadu_ps(s + i * B));
            vmax = _mm512_mask_max_ps(vmax, m1, vmax, _mm512_loadu_ps(s + i * B + 16));
        }
        const float mxs = _mm512_reduce_max_ps(vmax);
        const __m512 mx = _mm512_set1_ps(mxs == -INFINITY ? 0.0f : mxs);
        __m512 vsum = _mm512_setzero_ps();
        for (int i = 0; i < n_blocks; i++) {
            const __mmask16 m0 = (__mmask16)(blk[i].visible & 0xffffu), m1 = (__mmask16)(blk[i].visible >> 16);
            __m512 e0 = _mm512_maskz_mov_ps(m0, exp_bf16_grade(_mm512_sub_ps(_mm512_loadu_ps(s + i * B), mx)));
            __m512 e1 = _mm512_maskz_mov_ps(m1, exp_bf16_grade(_mm512_sub_ps(_mm512_loadu_ps(s + i * B + 16), mx)));
            vsum = _mm512_add_ps(vsum, _mm512_add_ps(e0, e1));
            _mm512_storeu_si512((void *)(P + (size_t)r * ld + i * B), (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        }
        const float sum = _mm512_reduce_add_ps(vsum);
        inv_sum[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
    }
    memset(P + (size_t)rows * ld, 0, sizeof(uint16_t) * (size_t)(rows_p - rows) * ld);
}

/* AVX-512 without bf16 instructions: the same in f32 only */
static AVX512 void softmax_f32_avx512(float *S, int rows, int n_blocks, const cosy_kv_ref *blk, float *inv_sum)
{
    const int ld = B * n_blocks;
    for (int r = 0; r < rows; r++) {
        float *s = S + (size_t)r * ld;
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int i = 0; i < n_blocks; i++) {
            const __mmask16 m0 = (__mmask16)(blk[i].visible & 0xffffu), m1 = (__mmask16)(blk[i].visible >> 16);
            vmax = _mm512_mask_max_ps(vmax, m0, vmax, _mm512_loadu_ps(s + i * B));
            vmax = _mm512_mask_max_ps(vmax, m1, vmax, _mm512_loadu_ps(s + i * B + 16));
        }
        const float mxs = _mm512_reduce_max_ps(vmax);
        const __m512 mx = _mm512_set1_ps(mxs == -INFINITY ? 0.0f : mxs);
        __m512 vsum = _mm512_setzero_ps();
        for (int i = 0; i < n_blocks; i++) {
            const __mmask16 m0 = (__mmask16)(blk[i].visible & 0xffffu), m1 = (__mmask16)(blk[i].visible >> 16);
            __m512 e0 = _mm512_maskz_mov_ps(m0, exp512(_mm512_sub_ps(_mm512_loadu_ps(s + i * B), mx)));
            __m512 e1 = _mm512_maskz_mov_ps(m1, exp512(_mm512_sub_ps(_mm512_loadu_ps(s + i * B + 16), mx)));
            vsum = _mm512_add_ps(vsum, _mm512_add_ps(e0, e1));
            _mm512_storeu_ps(s + i * B, e0);
            _mm512_storeu_ps(s + i * B + 16, e1);
        }
        const float sum = _mm512_reduce_add_ps(vsum);
        inv_sum[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
    }
}

/* ---------------------------------------------------------------- AMX */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* S[r][32 i + j] = Q[r] . K_i[j] for rows_p (a multiple of 16) query rows */
TGT_AMX static void qk_amx(const uint16_t *Q, int rows_p, int dp, const cosy_kv_ref *blk, int n_blocks, float *S)
{
    const int KB = dp / 32, ld = B * n_blocks;
    for (int m = 0; m < rows_p; m += 32) {
        const int two = rows_p - m >= 32;
        const uint16_t *A0 = Q + (size_t)m * dp, *A1 = A0 + (size_t)16 * dp;
        for (int i = 0; i < n_blocks; i++) {
            const uint16_t *K0 = blk[i].slab, *K1 = K0 + (size_t)KB * 512;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int kb = 0; kb < KB; kb++) {
                _tile_loadd(4, A0 + kb * 32, dp * 2);
                _tile_loadd(6, K0 + (size_t)kb * 512, 64);
                _tile_loadd(7, K1 + (size_t)kb * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                if (two) {
                    _tile_loadd(5, A1 + kb * 32, dp * 2);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
            }
            float *s = S + (size_t)m * ld + (size_t)i * B;
            _tile_stored(0, s, ld * 4);
            _tile_stored(1, s + 16, ld * 4);
            if (two) {
                _tile_stored(2, s + (size_t)16 * ld, ld * 4);
                _tile_stored(3, s + (size_t)16 * ld + 16, ld * 4);
            }
        }
    }
}

/* out[r][0..d) = inv_sum[r] * sum_i P_i[r] V_i for rows_p (a multiple of 16) rows, rows < rows_p
 * stored */
TGT_AMX static void pv_amx(const uint16_t *P, int rows, int rows_p, int d, const cosy_kv_ref *blk, int n_blocks, const float *inv_sum,
                           float *out, int ldo, float *tmp)
{
    const int dp = up32(d), ld = B * n_blocks, NB = dp / 16;
    const size_t v_off = (size_t)B * dp;
    for (int m = 0; m < rows_p; m += 16) {
        for (int c0 = 0; c0 < NB; c0 += 4) {
            const int nc = NB - c0 < 4 ? NB - c0 : 4;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int i = 0; i < n_blocks; i++) {
                const uint16_t *V = (const uint16_t *)blk[i].slab + v_off + (size_t)c0 * 512;
                _tile_loadd(4, P + (size_t)m * ld + (size_t)i * B, ld * 2);
                _tile_loadd(6, V, 64);
                _tile_dpbf16ps(0, 4, 6);
                if (nc > 1) {
                    _tile_loadd(7, V + 512, 64);
                    _tile_dpbf16ps(1, 4, 7);
                }
                if (nc > 2) {
                    _tile_loadd(6, V + 1024, 64);
                    _tile_dpbf16ps(2, 4, 6);
                }
                if (nc > 3) {
                    _tile_loadd(7, V + 1536, 64);
                    _tile_dpbf16ps(3, 4, 7);
                }
            }
            _tile_stored(0, tmp, 256);
            if (nc > 1) _tile_stored(1, tmp + 16, 256);
            if (nc > 2) _tile_stored(2, tmp + 32, 256);
            if (nc > 3) _tile_stored(3, tmp + 48, 256);
            const int n0 = c0 * 16, cols = d - n0 < nc * 16 ? d - n0 : nc * 16;
            const __mmask16 full = 0xffff;
            for (int r = 0; r < 16 && m + r < rows; r++) {
                const __m512 sc = _mm512_set1_ps(inv_sum[m + r]);
                float *o = out + (size_t)(m + r) * ldo + n0;
                for (int c = 0; c < cols; c += 16) {
                    const int n = cols - c < 16 ? cols - c : 16;
                    const __mmask16 mk = n == 16 ? full : (__mmask16)((1u << n) - 1u);
                    _mm512_mask_storeu_ps(o + c, mk, _mm512_mul_ps(_mm512_loadu_ps(tmp + r * 64 + c), sc));
                }
            }
        }
    }
}

TGT_AMX static void attn_amx(const float *q, int ldq, int rows, int d, float scale, const cosy_kv_ref *blk, int n_blocks, float *out,
                             int ldo, attn_scratch *s)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const int dp = up32(d), rows_p = (rows + 15) / 16 * 16;
    cosy_bf16_convert_rows(s->Q, q, rows, d, ldq, scale, dp, rows_p);
    qk_amx(s->Q, rows_p, dp, blk, n_blocks, s->S);
    softmax_avx512(s->S, s->P, rows, rows_p, n_blocks, blk, s->inv_sum);
    pv_amx(s->P, rows, rows_p, d, blk, n_blocks, s->inv_sum, out, ldo, s->tmp);
    _tile_release();
}

/* ---------------------------------------------------------------- AVX512-BF16 */

#define PV_MR 6 /* rows x 64 dims in 24 accumulators */

static inline __attribute__((always_inline)) TGT_BF16 void pv_micro(const int m, const uint16_t *P, int ld, const cosy_kv_ref *blk,
                                                                    int n_blocks, size_t v_off, int c0, int nc, const float *inv_sum,
                                                                    float *out, int ldo, int cols)
{
    __m512 acc[PV_MR][4];
#pragma GCC unroll 6
    for (int r = 0; r < m; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int i = 0; i < n_blocks; i++) {
        const uint16_t *V = (const uint16_t *)blk[i].slab + v_off + (size_t)c0 * 512;
        const uint16_t *p = P + (size_t)i * B;
        if (nc == 4) {
            /* the common case (head width 64): every loop unrolled so the 24 accumulators stay in
             * registers (a loop bound on nc made the compiler keep them in memory: 2.3x slower) */
            for (int k = 0; k < 16; k++) {
                const __m512bh v0 = (__m512bh)_mm512_loadu_si512((const void *)(V + k * 32));
                const __m512bh v1 = (__m512bh)_mm512_loadu_si512((const void *)(V + 512 + k * 32));
                const __m512bh v2 = (__m512bh)_mm512_loadu_si512((const void *)(V + 1024 + k * 32));
                const __m512bh v3 = (__m512bh)_mm512_loadu_si512((const void *)(V + 1536 + k * 32));
#pragma GCC unroll 6
                for (int r = 0; r < m; r++) {
                    uint32_t pair;
                    memcpy(&pair, p + (size_t)r * ld + 2 * k, sizeof pair);
                    const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, v0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, v1);
                    acc[r][2] = _mm512_dpbf16_ps(acc[r][2], a, v2);
                    acc[r][3] = _mm512_dpbf16_ps(acc[r][3], a, v3);
                }
            }
            continue;
        }
        for (int k = 0; k < 16; k++) {
            __m512bh v[4];
            for (int c = 0; c < 4; c++) v[c] = c < nc ? (__m512bh)_mm512_loadu_si512((const void *)(V + (size_t)c * 512 + k * 32)) : (__m512bh)_mm512_setzero_si512();
#pragma GCC unroll 6
            for (int r = 0; r < m; r++) {
                uint32_t pair;
                memcpy(&pair, p + (size_t)r * ld + 2 * k, sizeof pair);
                const __m512bh a = (__m512bh)_mm512_set1_epi32((int)pair);
                for (int c = 0; c < 4; c++)
                    if (c < nc) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], a, v[c]);
            }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < m; r++) {
        const __m512 sc = _mm512_set1_ps(inv_sum[r]);
        float *o = out + (size_t)r * ldo + c0 * 16;
        for (int c = 0; c < nc; c++) {
            const int n = cols - c * 16;
            if (n <= 0) break;
            const __mmask16 mk = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
            _mm512_mask_storeu_ps(o + c * 16, mk, _mm512_mul_ps(acc[r][c], sc));
        }
    }
}

#define PV_CASE(mm) \
    case mm: pv_micro(mm, P + (size_t)r0 * ld, ld, blk, n_blocks, v_off, c0, nc, inv_sum + r0, out + (size_t)r0 * ldo, ldo, cols); break;

TGT_BF16 static void attn_avx512bf16(const float *q, int ldq, int rows, int d, float scale, const cosy_kv_ref *blk, int n_blocks,
                                     float *out, int ldo, attn_scratch *s)
{
    const int dp = up32(d), KB = dp / 32, ld = B * n_blocks, NB = dp / 16;
    const size_t v_off = (size_t)B * dp;
    cosy_bf16_convert_rows(s->Q, q, rows, d, ldq, scale, dp, rows);
    for (int i = 0; i < n_blocks; i++) {
        const uint16_t *K = blk[i].slab;
        cosy_gemm_bf16(rows, B, dp, s->Q, K, KB, NULL, s->S + (size_t)i * B, ld, 0, COSY_ACT_NONE, 0, 1);
    }
    softmax_avx512(s->S, s->P, rows, rows, n_blocks, blk, s->inv_sum);
    const uint16_t *P = s->P;
    const float *inv_sum = s->inv_sum;
    for (int c0 = 0; c0 < NB; c0 += 4) {
        const int nc = NB - c0 < 4 ? NB - c0 : 4, cols = d - c0 * 16;
        for (int r0 = 0; r0 < rows; r0 += PV_MR) {
            switch (rows - r0 < PV_MR ? rows - r0 : PV_MR) {
                PV_CASE(1) PV_CASE(2) PV_CASE(3) PV_CASE(4) PV_CASE(5) PV_CASE(6)
                default: break;
            }
        }
    }
}
#endif /* ATTN_HAVE_SIMD */

/* ---------------------------------------------------------------- f32 */

static void attn_f32(const float *q, int ldq, int rows, int d, float scale, const cosy_kv_ref *blk, int n_blocks, float *out, int ldo,
                     attn_scratch *s)
{
    const int ld = B * n_blocks, dpanels = (d + 31) / 32;
    const int packed = cosy_gemm_f32_available();
    for (int i = 0; i < n_blocks; i++) {
        const float *K = blk[i].slab; /* K^T [d][32] */
        if (packed) cosy_gemm_f32_panels(rows, B, d, scale, q, ldq, K, (size_t)d * B, 0, 1, NULL, s->S + (size_t)i * B, ld, 0, COSY_ACT_NONE);
        else cosy_sgemm(0, 0, rows, B, d, scale, q, ldq, K, B, 0.0f, s->S + (size_t)i * B, ld);
    }
#ifdef ATTN_HAVE_SIMD
    if (cosy_cpu_level() >= COSY_CPU_AVX512) softmax_f32_avx512(s->S, rows, n_blocks, blk, s->inv_sum);
    else
#endif
        softmax_scalar(s->S, NULL, rows, rows, n_blocks, blk, s->inv_sum);
    for (int i = 0; i < n_blocks; i++) {
        const float *V = (const float *)blk[i].slab + (size_t)B * d; /* [dpanels][32 keys][32] */
        if (packed) {
            cosy_gemm_f32_panels(rows, d, B, 1.0f, s->S + (size_t)i * B, ld, V, (size_t)B * 32, 0, dpanels, NULL, out, ldo, i > 0, COSY_ACT_NONE);
        } else {
            for (int p = 0; p < dpanels; p++) {
                const int n = d - 32 * p < 32 ? d - 32 * p : 32;
                cosy_sgemm(0, 0, rows, n, B, 1.0f, s->S + (size_t)i * B, ld, V + (size_t)p * B * 32, 32, i > 0 ? 1.0f : 0.0f, out + 32 * p, ldo);
            }
        }
    }
    if (n_blocks == 0)
        for (int r = 0; r < rows; r++) memset(out + (size_t)r * ldo, 0, sizeof(float) * (size_t)d);
    for (int r = 0; r < rows; r++) cosy_scale(out + (size_t)r * ldo, s->inv_sum[r], (size_t)d);
}

void cosy_attn_blocks(const float *q, int ldq, int rows, int d, float scale, const cosy_kv_ref *blocks, int n_blocks, int bf16, float *out,
                      int ldo, void *scratch)
{
    if (rows <= 0) return;
    attn_scratch s = carve(scratch, d, n_blocks);
    if (!bf16 || n_blocks == 0) {
        attn_f32(q, ldq, rows, d, scale, blocks, n_blocks, out, ldo, &s);
        return;
    }
#ifdef ATTN_HAVE_SIMD
    const int level = cosy_gemm_bf16_level();
    if (level == COSY_CPU_AMX) {
        attn_amx(q, ldq, rows, d, scale, blocks, n_blocks, out, ldo, &s);
        return;
    }
    if (level == COSY_CPU_AVX512BF16) {
        attn_avx512bf16(q, ldq, rows, d, scale, blocks, n_blocks, out, ldo, &s);
        return;
    }
#endif
    /* bf16 slabs on a CPU without bf16 products: widen them (the callers avoid this; kept correct) */
    const int dp = up32(d);
    for (int r = 0; r < rows; r++) {
        float *sr = s.S + (size_t)r * B * n_blocks;
        for (int i = 0; i < n_blocks; i++) {
            const uint16_t *K = blocks[i].slab;
            for (int j = 0; j < B; j++) {
                float acc = 0.0f;
                for (int k = 0; k < d; k++) {
                    const float kv = cosy_bf16_to_f32(K[(size_t)(j / 16) * (dp / 32) * 512 + (size_t)(k / 32) * 512 + (size_t)((k % 32) / 2) * 32 +
                                                        (size_t)(j % 16) * 2 + (k % 2)]);
                    acc += cosy_bf16_to_f32(cosy_f32_to_bf16(q[(size_t)r * ldq + k] * scale)) * kv;
                }
                sr[i * B + j] = acc;
            }
        }
    }
    softmax_scalar(s.S, NULL, rows, rows, n_blocks, blocks, s.inv_sum);
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * ldo;
        const float *pr = s.S + (size_t)r * B * n_blocks;
        for (int k = 0; k < d; k++) {
            float acc = 0.0f;
            for (int i = 0; i < n_blocks; i++) {
                const uint16_t *V = (const uint16_t *)blocks[i].slab + (size_t)B * dp;
                for (int j = 0; j < B; j++)
                    acc += cosy_bf16_to_f32(cosy_f32_to_bf16(pr[i * B + j])) *
                           cosy_bf16_to_f32(V[(size_t)(k / 16) * 512 + (size_t)(j / 2) * 32 + (size_t)(k % 16) * 2 + (j % 2)]);
            }
            o[k] = acc * s.inv_sum[r];
        }
    }
}
