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
#include "core/error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define FLOW_HAVE_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static int amx_ok;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    const int tile = (d >> 24) & 1, bf16 = (d >> 22) & 1, avx512bf16 = 0;
    (void)avx512bf16;
    unsigned a1, b1, c1, d1;
    if (!__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) return;
    const int has_avx512bf16 = (a1 >> 5) & 1;
    const int has_avx512f = (b >> 16) & 1, has_avx512bw = (b >> 30) & 1;
    if (!tile || !bf16 || !has_avx512bf16 || !has_avx512f || !has_avx512bw) return;
    /* Linux hands out the tile data state only on request */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return;
    amx_ok = 1;
}

int flow_amx_available(void)
{
    pthread_once(&amx_once, amx_probe);
    const char *env = getenv("COSY_CPU");
    if (env && (!strcmp(env, "portable") || !strcmp(env, "avx2") || !strcmp(env, "avx512"))) return 0;
    return amx_ok;
}

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

void flow_amx_pack(uint16_t *dst, const float *w, int N, int K)
{
    const int NB = (N + 31) / 32 * 2, KB = (K + 31) / 32;
    for (int nb = 0; nb < NB; nb++)
        for (int kb = 0; kb < KB; kb++) {
            uint16_t *t = dst + ((size_t)nb * KB + kb) * 512;
            for (int kk = 0; kk < 32; kk++)
                for (int n = 0; n < 16; n++) {
                    const int row = nb * 16 + n, col = kb * 32 + kk;
                    t[(kk / 2) * 32 + n * 2 + (kk & 1)] = row < N && col < K ? bf16_round(w[(size_t)row * K + col]) : 0;
                }
        }
}

TGT_AMX static void convert_rows(uint16_t *dst, const float *x, int rows, int K, int Kp, int rows_p)
{
    for (int r = 0; r < rows_p; r++) {
        uint16_t *d = dst + (size_t)r * Kp;
        if (r >= rows) {
            memset(d, 0, sizeof(uint16_t) * (size_t)Kp);
            continue;
        }
        const float *s = x + (size_t)r * K;
        int k = 0;
        for (; k + 32 <= K; k += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16), _mm512_loadu_ps(s + k));
            _mm512_storeu_si512((void *)(d + k), (__m512i)v);
        }
        for (; k < K; k++) d[k] = bf16_round(s[k]);
        for (; k < Kp; k++) d[k] = 0;
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Output columns [32 j0, 32 j1) for every row. */
TGT_AMX static void gemm_blocks(int M, int N, int Kp, const uint16_t *A, const uint16_t *B, const float *bias, float *C, int ldc,
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
        const uint16_t *B0 = B + (size_t)(2 * j) * KB * 512, *B1 = B0 + (size_t)KB * 512;
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
    if (j0 < j1) gemm_blocks(t->M, t->N, t->Kp, t->A, t->B, t->bias, t->C, t->N, t->accumulate, t->act, j0, j1);
}

int flow_amx_linear(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act)
{
    const int K = l->in, N = l->out, Kp = (K + 31) / 32 * 32, Mp = (rows + 31) / 32 * 32;
    uint16_t *A = cosy_aligned_alloc(sizeof(uint16_t) * (size_t)Mp * Kp);
    if (!A) return 0; /* the caller falls back to the f32 kernels */
    convert_rows(A, x, rows, K, Kp, Mp);
    amx_task t = {rows, N, Kp, 1, accumulate, act, A, l->amx, l->b, y};
    const int blocks = (N + 31) / 32;
    int parts = cosy_pool_size(c->pool);
    if (parts > blocks) parts = blocks;
    if ((size_t)rows * K * N < 400000) parts = 1;
    t.parts = parts;
    if (parts == 1) amx_run(&t, 0);
    else cosy_pool_run(c->pool, parts, amx_run, &t);
    cosy_aligned_free(A);
    return 1;
}

#else
int flow_amx_available(void) { return 0; }
size_t flow_amx_packed_elems(int N, int K) { (void)N; (void)K; return 0; }
void flow_amx_pack(uint16_t *dst, const float *w, int N, int K) { (void)dst; (void)w; (void)N; (void)K; }
int flow_amx_linear(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act)
{
    (void)c; (void)l; (void)x; (void)rows; (void)y; (void)accumulate; (void)act;
    return 0;
}
#endif
