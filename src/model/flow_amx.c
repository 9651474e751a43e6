/*
 * flow_amx.c — the flow's weight products in bf16 on Intel AMX (flow_internal.h, flow_amx_*).
 *
 * Why: the flow is the engine's largest cost (10 Euler steps x the CFG batch of 2 through the
 * estimator U-Net), and its f32 AVX-512 kernels already run near the cores' f32 peak. AMX tiles
 * multiply bf16 at several times that rate. The products take bf16 weights (rounded once at
 * load) and bf16 activations (rounded per product), and accumulate in f32; everything else in
 * the flow (attention, norms, the ODE steps) stays f32. Opt-in: cosy_model_params.flow_dtype =
 * bf16; its error against f32 is measured in test_flow and reported by `cosy bench`.
 *
 * Layout: a weight W[N][K] (PyTorch Linear) becomes tiles of 16 output columns x 32 inputs in
 * the pair-interleaved order TDPBF16PS reads ([k/2][n][k%2], 1 KiB each), stored column block
 * by column block so a block's K tiles are contiguous. N is padded to 32 (two blocks per pass)
 * and K to 32 with zeros. Activations are converted to bf16 rows of Kp = K rounded up to 32,
 * padded to a multiple of 32 rows.
 *
 * Tiles: C 16x16 f32 in tmm0..3 (a 32x32 output block), A 16x32 bf16 in tmm4/5, B in tmm6/7.
 */
#include "model/flow_internal.h"
#include "core/arena.h"
#include "core/cpu.h"
#include "core/error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define FLOW_HAVE_AMX 1
#include <immintrin.h>
#include <pthread.h>

#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,fma")))
int flow_amx_available(void) { return cosy_cpu_level() >= COSY_CPU_AMX; }

static inline uint16_t bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                          /* round to nearest even */
    return (uint16_t)(u >> 16);
}

size_t flow_amx_packed_elems(int N, int K)
{
    const size_t Np = (size_t)(N + 31) / 32 * 32, Kp = (size_t)(K + 31) / 32 * 32;
    return Np * Kp;
}

void flow_amx_pack(uint16_t *dst, const float *w, int N, int K) { flow_amx_pack_ld(dst, w, N, K, K); }

/* 32 values of a row as bf16 (f32 rows rounded to nearest even; bf16 rows as they are), the
 * first kn of them, zeros after */
static inline __attribute__((always_inline)) TGT_AMX __m512i load32_bf16(const void *row, int kn, int bf16)
{
    if (bf16) return _mm512_maskz_loadu_epi16(kn >= 32 ? 0xffffffffu : (__mmask32)((1u << kn) - 1u), row);
    const float *src = row;
    const __mmask16 m0 = kn >= 16 ? 0xffff : (__mmask16)((1u << kn) - 1u);
    const __mmask16 m1 = kn >= 32 ? 0xffff : kn <= 16 ? 0 : (__mmask16)((1u << (kn - 16)) - 1u);
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16), _mm512_maskz_loadu_ps(m0, src));
}

/* 16 values of a row as bf16 zero-extended to 32-bit lanes, the first nn of them */
static inline __attribute__((always_inline)) TGT_AMX __m512i load16_bf16_lanes(const void *row, __mmask16 mask, int bf16)
{
    if (bf16) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row));
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, row)));
}

/* W[N][K] (rows[n] holds K values) into tiles: each row's 32 inputs of a tile become 16 bf16 pairs
 * (32-bit words), and the 16x16 words of 16 rows are transposed into the tile. */
static inline __attribute__((always_inline)) TGT_AMX void pack_rows_any(uint16_t *dst, const void *const *rows, int N, int K, int bf16)
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
static inline __attribute__((always_inline)) TGT_AMX void pack_t_rows_any(uint16_t *dst, const void *const *rows, int K, int N, int bf16)
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

TGT_AMX void flow_amx_pack_rows(uint16_t *dst, const float *const *rows, int N, int K)
{
    pack_rows_any(dst, (const void *const *)rows, N, K, 0);
}

TGT_AMX void flow_amx_pack_rows_bf16(uint16_t *dst, const uint16_t *const *rows, int N, int K)
{
    pack_rows_any(dst, (const void *const *)rows, N, K, 1);
}

TGT_AMX void flow_amx_pack_t_rows(uint16_t *dst, const float *const *rows, int K, int N)
{
    pack_t_rows_any(dst, (const void *const *)rows, K, N, 0);
}

TGT_AMX void flow_amx_pack_t_rows_bf16(uint16_t *dst, const uint16_t *const *rows, int K, int N)
{
    pack_t_rows_any(dst, (const void *const *)rows, K, N, 1);
}

TGT_AMX void flow_amx_pack_ld(uint16_t *dst, const float *w, int N, int K, int ldw)
{
    const float *rows[64];
    /* in slabs of 64 rows (two column blocks), so no row-pointer array has to be allocated */
    const int KB = (K + 31) / 32;
    for (int r0 = 0; r0 < N; r0 += 64) {
        const int n = N - r0 < 64 ? N - r0 : 64;
        for (int i = 0; i < n; i++) rows[i] = w + (size_t)(r0 + i) * ldw;
        flow_amx_pack_rows(dst + (size_t)(r0 / 16) * KB * 512, rows, n, K);
    }
}

TGT_AMX void flow_amx_store_bf16(uint16_t *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    for (; i < n; i++) dst[i] = bf16_round(src[i]);
}

/* rows x[r * ldx + k] * scale -> bf16 dst[r][Kp], zero-padded to Kp columns and rows_p rows */
TGT_AMX static void convert_rows(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p)
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
        for (; k < K; k++) d[k] = bf16_round(s[k] * scale);
        for (; k < Kp; k++) d[k] = 0;
    }
}

void flow_amx_convert(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p)
{
    convert_rows(dst, x, rows, K, ldx, scale, Kp, rows_p);
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Output columns [32 j0, 32 j1) for every row. */
TGT_AMX static void gemm_blocks(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, const float *bias, float *C,
                                int ldc, int accumulate, int act, int j0, int j1)
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
            const int rows = M - m < 32 ? M - m : 32, n0 = 32 * j, cols = N - n0 < 32 ? N - n0 : 32;
            if (cols == 32) {
                const __m512 b0 = bias ? _mm512_loadu_ps(bias + n0) : _mm512_setzero_ps();
                const __m512 b1 = bias ? _mm512_loadu_ps(bias + n0 + 16) : _mm512_setzero_ps();
                for (int r = 0; r < rows; r++) {
                    float *y = C + (size_t)(m + r) * ldc + n0;
                    __m512 v0 = _mm512_add_ps(_mm512_load_ps(&out[r][0]), b0), v1 = _mm512_add_ps(_mm512_load_ps(&out[r][16]), b1);
                    if (accumulate) {
                        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(y));
                        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(y + 16));
                    }
                    _mm512_storeu_ps(y, v0);
                    _mm512_storeu_ps(y + 16, v1);
                }
            } else {
                for (int r = 0; r < rows; r++) {
                    float *y = C + (size_t)(m + r) * ldc + n0;
                    for (int c = 0; c < cols; c++) {
                        const float v = out[r][c] + (bias ? bias[n0 + c] : 0.0f);
                        y[c] = accumulate ? y[c] + v : v;
                    }
                }
            }
            if (act != FLOW_ACT_NONE)
                for (int r = 0; r < rows; r++) {
                    float *y = C + (size_t)(m + r) * ldc + n0;
                    if (act == FLOW_ACT_GELU) flow_math_gelu(y, (size_t)cols);
                    else flow_math_silu(y, (size_t)cols);
                }
        }
    }
    _tile_release();
}

typedef struct {
    int M, N, Kp, parts, accumulate, act;
    const uint16_t *A, *B;
    const float *bias;
    float *C;
} amx_task;

static void amx_run(void *p, int part)
{
    amx_task *t = p;
    int j0, j1;
    cosy_split_range((t->N + 31) / 32, t->parts, part, &j0, &j1);
    if (j0 < j1) gemm_blocks(t->M, t->N, t->Kp, t->A, t->B, t->Kp / 32, t->bias, t->C, t->N, t->accumulate, t->act, j0, j1);
}

/* Per-thread scratch that persists between products: allocating ~100 KB-1 MB per product made glibc
 * map and unmap (or trim and regrow) memory thousands of times per chunk, doubling the time. Freed
 * when the thread ends. */
typedef struct {
    void *p;
    size_t size;
} tls_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *v)
{
    tls_scratch *t = v;
    if (!t) return;
    cosy_aligned_free(t->p);
    free(t);
}

static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

void *flow_amx_scratch(size_t bytes)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok) return NULL;
    tls_scratch *t = pthread_getspecific(scratch_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        if (pthread_setspecific(scratch_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (t->size < bytes) {
        size_t n = bytes + bytes / 4 + 4096;
        void *p = cosy_aligned_alloc(n);
        if (!p) return NULL;
        cosy_aligned_free(t->p);
        t->p = p;
        t->size = n;
    }
    return t->p;
}

void flow_amx_gemm(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, float *C, int ldc)
{
    gemm_blocks(M, N, Kp, A, B, b_kb, NULL, C, ldc, 0, FLOW_ACT_NONE, 0, (N + 31) / 32);
}

int flow_amx_linear(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act)
{
    const int K = l->in, N = l->out, Kp = (K + 31) / 32 * 32, Mp = (rows + 31) / 32 * 32;
    uint16_t *A = flow_amx_scratch(sizeof(uint16_t) * (size_t)Mp * Kp);
    if (!A) return 0; /* the caller falls back to the f32 kernels */
    convert_rows(A, x, rows, K, K, 1.0f, Kp, Mp);
    amx_task t = {rows, N, Kp, 1, accumulate, act, A, l->amx, l->b, y};
    const int blocks = (N + 31) / 32;
    int parts = cosy_pool_size(c->pool);
    if (parts > blocks) parts = blocks;
    if ((size_t)rows * K * N < 400000) parts = 1;
    t.parts = parts;
    if (parts == 1) amx_run(&t, 0);
    else cosy_pool_run(c->pool, parts, amx_run, &t);
    return 1;
}

#else
int flow_amx_available(void) { return 0; }
void *flow_amx_scratch(size_t bytes) { (void)bytes; return NULL; }
size_t flow_amx_packed_elems(int N, int K) { (void)N; (void)K; return 0; }
void flow_amx_pack(uint16_t *dst, const float *w, int N, int K) { (void)dst; (void)w; (void)N; (void)K; }
void flow_amx_pack_ld(uint16_t *dst, const float *w, int N, int K, int ldw) { (void)dst; (void)w; (void)N; (void)K; (void)ldw; }
void flow_amx_pack_rows(uint16_t *dst, const float *const *rows, int N, int K) { (void)dst; (void)rows; (void)N; (void)K; }
void flow_amx_pack_t_rows(uint16_t *dst, const float *const *rows, int K, int N) { (void)dst; (void)rows; (void)N; (void)K; }
void flow_amx_pack_rows_bf16(uint16_t *dst, const uint16_t *const *rows, int N, int K) { (void)dst; (void)rows; (void)N; (void)K; }
void flow_amx_pack_t_rows_bf16(uint16_t *dst, const uint16_t *const *rows, int K, int N) { (void)dst; (void)rows; (void)N; (void)K; }
void flow_amx_store_bf16(uint16_t *dst, const float *src, int n) { (void)dst; (void)src; (void)n; }
void flow_amx_convert(uint16_t *dst, const float *x, int rows, int K, int ldx, float scale, int Kp, int rows_p)
{
    (void)dst; (void)x; (void)rows; (void)K; (void)ldx; (void)scale; (void)Kp; (void)rows_p;
}
void flow_amx_gemm(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, int b_kb, float *C, int ldc)
{
    (void)M; (void)N; (void)Kp; (void)A; (void)B; (void)b_kb; (void)C; (void)ldc;
}
int flow_amx_linear(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act)
{
    (void)c; (void)l; (void)x; (void)rows; (void)y; (void)accumulate; (void)act;
    return 0;
}
#endif
