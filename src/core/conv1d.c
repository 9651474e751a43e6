/*
 * conv1d.c — the f32 convolutions of conv1d.h and the activation layout they share with the bf16
 * ones (conv1d_bf16.c): a direct AVX-512 kernel for stride-1 "same" convolutions over zero-margined
 * rows; strided convolutions (small ones: HiFT's source_downs) and transposed convolutions as one
 * sgemm each, split over the pool, with an im2col before or an overlap-add after.
 *
 * Why not im2col + sgemm for the stride-1 convolutions: at HiFT's real size they are ~29 GFLOP per
 * second of audio. Through BLAS every call first copies K shifted versions of its input (im2col, up to
 * 17 MB), BLAS packs that copy again, and OpenBLAS's own threads spin against ours on a 2-core machine:
 * a third of the time went to copies and sched_yield. Here activations live in rows with COSY_ACT_PAD
 * zero columns on both sides (cosy_act), so every tap of every kernel is an unaligned load at a fixed
 * offset: the kernel reads the input in place. A tile is 4 output channels x 96 time steps held in 24
 * registers; per input channel and tap it loads 6 input vectors and 4 broadcast weights for 24 FMAs.
 * Threads split the output channels. Without AVX-512 the same tile runs in AVX2 registers (4 x 24);
 * the portable path computes the same sums with plain loops.
 */
#include "core/conv1d.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/ops.h"

#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CONV_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define CONV_AVX2 __attribute__((target("avx2,fma")))
#define CONV_HAVE_AVX512 1
#endif

#define MR 4        /* output channels per tile */
#define NV_MAX 6    /* 16-float vectors per tile row */
#define T_CHUNK 768 /* time steps per pass over a task's weights, so the input slice stays in L2 */

size_t cosy_act_floats(int C, int T)
{
    return (size_t)C * (size_t)cosy_act_ld(T) + 2 * COSY_ACT_PAD;
}

int cosy_act_ld(int T)
{
    /* left margin + T rounded up to a whole tile + right margin (tiles past T read into it) */
    int tiles = (T + 16 * NV_MAX - 1) / (16 * NV_MAX);
    return COSY_ACT_PAD + tiles * 16 * NV_MAX + COSY_ACT_PAD;
}

cosy_status cosy_act_alloc(cosy_act *a, int C, int T, cosy_arena *arena)
{
    size_t n = cosy_act_floats(C, T);
    float *base = cosy_arena_floats(arena, n);
    if (!base) return cosy_error(COSY_ERR_NOMEM, "conv1d: activation scratch exhausted (%d x %d)", C, T);
    memset(base, 0, sizeof(float) * n);
    a->C = C;
    a->T = T;
    a->ld = cosy_act_ld(T);
    a->data = base + COSY_ACT_PAD;
    return COSY_OK;
}

typedef struct {
    const cosy_conv *conv;
    const cosy_act *x;
    cosy_act *y;
    const cosy_act *res;   /* y = conv(x) + res, or NULL */
    int n_tasks, simd;
} conv_job;

static void conv_rows_scalar(const conv_job *j, int co0, int co1)
{
    const cosy_conv *c = j->conv;
    const int T = j->y->T;
    float acc[256]; /* one row piece at a time: the residual may be the output itself */
    for (int co = co0; co < co1; co++) {
        float *y = j->y->data + (size_t)co * j->y->ld;
        const float *res = j->res ? j->res->data + (size_t)co * j->res->ld : NULL;
        const float b = c->b ? c->b[co] : 0.0f;
        for (int t0 = 0; t0 < T; t0 += 256) {
            const int n = T - t0 < 256 ? T - t0 : 256;
            for (int t = 0; t < n; t++) acc[t] = b;
            for (int ci = 0; ci < c->cin; ci++) {
                const float *xr = j->x->data + (size_t)ci * j->x->ld + t0 - c->pad;
                const float *w = c->w + ((size_t)co * c->cin + ci) * c->k;
                for (int k = 0; k < c->k; k++) {
                    const float wk = w[k], *xp = xr + k * c->dilation;
                    for (int t = 0; t < n; t++) acc[t] += wk * xp[t];
                }
            }
            for (int t = 0; t < n; t++) y[t0 + t] = res ? acc[t] + res[t0 + t] : acc[t];
        }
    }
}

#ifdef CONV_HAVE_AVX512
/* One tile: rows co0..co0+3 (rows past cout repeat the last one and are not stored), time steps
 * [t0, t0 + 16 nv), the last vector stored under `mask`. */
static inline __attribute__((always_inline)) CONV_AVX512 void conv_tile(const conv_job *j, const int nv, int co0, int t0, __mmask16 mask)
{
    const cosy_conv *c = j->conv;
    const int K = c->k, dil = c->dilation, cin = c->cin, rows = c->cout - co0 < MR ? c->cout - co0 : MR;
    const float *w[MR];
    __m512 acc[MR][NV_MAX];
    for (int r = 0; r < MR; r++) {
        int co = co0 + (r < rows ? r : rows - 1);
        w[r] = c->w + (size_t)co * cin * K;
        __m512 b = _mm512_set1_ps(c->b ? c->b[co] : 0.0f);
#pragma GCC unroll 6
        for (int v = 0; v < nv; v++) acc[r][v] = b;
    }
    const float *xb = j->x->data + t0 - c->pad;
    const size_t ldx = (size_t)j->x->ld;
    const int span = 16 * nv + (K - 1) * dil; /* floats of a row one tile reads */
    for (int ci = 0; ci < cin; ci++) {
        const float *xr = xb + (size_t)ci * ldx;
        const size_t wo = (size_t)ci * K;
        /* rows are ld apart, too many streams for the hardware prefetcher: fetch the row after next */
        if (ci + 2 < cin)
            for (int q = 0; q < span; q += 16) _mm_prefetch((const char *)(xr + 2 * ldx + q), _MM_HINT_T0);
        for (int k = 0; k < K; k++) {
            const float *xp = xr + k * dil;
            __m512 xv[NV_MAX];
#pragma GCC unroll 6
            for (int v = 0; v < nv; v++) xv[v] = _mm512_loadu_ps(xp + 16 * v);
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                __m512 b = _mm512_set1_ps(w[r][wo + k]);
#pragma GCC unroll 6
                for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(b, xv[v], acc[r][v]);
            }
        }
    }
    for (int r = 0; r < rows; r++) {
        float *y = j->y->data + (size_t)(co0 + r) * j->y->ld + t0;
        const float *res = j->res ? j->res->data + (size_t)(co0 + r) * j->res->ld + t0 : NULL;
#pragma GCC unroll 6
        for (int v = 0; v < nv; v++) {
            __m512 o = acc[r][v];
            __mmask16 m = v == nv - 1 ? mask : (__mmask16)0xffff;
            if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(m, res + 16 * v));
            _mm512_mask_storeu_ps(y + 16 * v, m, o);
        }
    }
}

static CONV_AVX512 void conv_rows_avx512(const conv_job *j, int blk0, int blk1)
{
    const int T = j->y->T, tile = 16 * NV_MAX;
    for (int tc = 0; tc < T; tc += T_CHUNK) {
        const int tc_end = tc + T_CHUNK < T ? tc + T_CHUNK : T;
        for (int blk = blk0; blk < blk1; blk++) {
            const int co0 = blk * MR;
            int t0 = tc;
            for (; t0 + tile <= tc_end; t0 += tile) conv_tile(j, NV_MAX, co0, t0, 0xffff);
            if (t0 < tc_end) {
                const int rem = tc_end - t0, nv = (rem + 15) / 16, last = rem - 16 * (nv - 1);
                const __mmask16 m = (__mmask16)((1u << last) - 1u);
                switch (nv) {
                case 1: conv_tile(j, 1, co0, t0, m); break;
                case 2: conv_tile(j, 2, co0, t0, m); break;
                case 3: conv_tile(j, 3, co0, t0, m); break;
                case 4: conv_tile(j, 4, co0, t0, m); break;
                case 5: conv_tile(j, 5, co0, t0, m); break;
                default: conv_tile(j, 6, co0, t0, m); break;
                }
            }
        }
    }
}
#endif

#ifdef CONV_HAVE_AVX512
/* AVX2 + FMA (no AVX-512): the same tile in 8-float vectors, 4 rows x 24 time steps in 12 registers. */
#define NV2_MAX 3
static inline __attribute__((always_inline)) CONV_AVX2 void conv_tile_avx2(const conv_job *j, const int nv, int co0, int t0, int last)
{
    const cosy_conv *c = j->conv;
    const int K = c->k, dil = c->dilation, cin = c->cin, rows = c->cout - co0 < MR ? c->cout - co0 : MR;
    const float *w[MR];
    __m256 acc[MR][NV2_MAX];
    for (int r = 0; r < MR; r++) {
        int co = co0 + (r < rows ? r : rows - 1);
        w[r] = c->w + (size_t)co * cin * K;
        __m256 b = _mm256_set1_ps(c->b ? c->b[co] : 0.0f);
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) acc[r][v] = b;
    }
    const float *xb = j->x->data + t0 - c->pad;
    const size_t ldx = (size_t)j->x->ld;
    for (int ci = 0; ci < cin; ci++) {
        const float *xr = xb + (size_t)ci * ldx;
        const size_t wo = (size_t)ci * K;
        if (ci + 2 < cin) _mm_prefetch((const char *)(xr + 2 * ldx), _MM_HINT_T0);
        for (int k = 0; k < K; k++) {
            const float *xp = xr + k * dil;
            __m256 xv[NV2_MAX];
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) xv[v] = _mm256_loadu_ps(xp + 8 * v);
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                __m256 b = _mm256_set1_ps(w[r][wo + k]);
#pragma GCC unroll 3
                for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(b, xv[v], acc[r][v]);
            }
        }
    }
    /* lanes [0, last) of the last vector are stored */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lm = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), lane), all = _mm256_set1_epi32(-1);
    for (int r = 0; r < rows; r++) {
        float *y = j->y->data + (size_t)(co0 + r) * j->y->ld + t0;
        const float *res = j->res ? j->res->data + (size_t)(co0 + r) * j->res->ld + t0 : NULL;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m256 o = acc[r][v];
            const __m256i m = v == nv - 1 ? lm : all;
            if (res) o = _mm256_add_ps(o, _mm256_maskload_ps(res + 8 * v, m));
            _mm256_maskstore_ps(y + 8 * v, m, o);
        }
    }
}

static CONV_AVX2 void conv_rows_avx2(const conv_job *j, int blk0, int blk1)
{
    const int T = j->y->T, tile = 8 * NV2_MAX;
    for (int tc = 0; tc < T; tc += T_CHUNK) {
        const int tc_end = tc + T_CHUNK < T ? tc + T_CHUNK : T;
        for (int blk = blk0; blk < blk1; blk++) {
            const int co0 = blk * MR;
            int t0 = tc;
            for (; t0 + tile <= tc_end; t0 += tile) conv_tile_avx2(j, NV2_MAX, co0, t0, 8);
            if (t0 < tc_end) {
                const int rem = tc_end - t0, nv = (rem + 7) / 8, last = rem - 8 * (nv - 1);
                switch (nv) {
                case 1: conv_tile_avx2(j, 1, co0, t0, last); break;
                case 2: conv_tile_avx2(j, 2, co0, t0, last); break;
                default: conv_tile_avx2(j, 3, co0, t0, last); break;
                }
            }
        }
    }
}
#endif

static void conv_task(void *ctx, int task)
{
    const conv_job *j = ctx;
    const int blocks = (j->conv->cout + MR - 1) / MR;
    int b0, b1;
    cosy_split_range(blocks, j->n_tasks, task, &b0, &b1);
#ifdef CONV_HAVE_AVX512
    if (j->simd == 2) {
        conv_rows_avx512(j, b0, b1);
        return;
    }
    if (j->simd == 1) {
        conv_rows_avx2(j, b0, b1);
        return;
    }
#endif
    int co1 = b1 * MR < j->conv->cout ? b1 * MR : j->conv->cout;
    conv_rows_scalar(j, b0 * MR, co1);
}

cosy_status cosy_conv1d_same(cosy_pool *pool, const cosy_conv *c, const cosy_act *x, cosy_act *y, const cosy_act *res)
{
    if (c->transposed || !c->w || c->stride != 1 || x->C != c->cin || y->C != c->cout || y->T != x->T || c->pad > COSY_ACT_PAD ||
        c->dilation * (c->k - 1) - c->pad > COSY_ACT_PAD || 2 * c->pad != c->dilation * (c->k - 1) ||
        (res && (res->C != y->C || res->T != y->T)))
        return cosy_error(COSY_ERR_INTERNAL, "conv1d: convolution %d->%d k%d d%d p%d s%d on %d x %d -> %d x %d not supported", c->cin, c->cout,
                          c->k, c->dilation, c->pad, c->stride, x->C, x->T, y->C, y->T);
    conv_job j = {c, x, y, res, 1, 0};
#ifdef CONV_HAVE_AVX512
    j.simd = cosy_cpu_level() >= COSY_CPU_AVX512 ? 2 : cosy_cpu_level() >= COSY_CPU_AVX2 ? 1 : 0;
#endif
    const int blocks = (c->cout + MR - 1) / MR;
    int n = pool ? cosy_pool_size(pool) : 1;
    if (n > blocks) n = blocks;
    if ((double)c->cout * c->cin * c->k * y->T < 2e5) n = 1; /* too small to be worth waking a thread */
    j.n_tasks = n;
    if (n <= 1) conv_task(&j, 0);
    else cosy_pool_run(pool, n, conv_task, &j);
    return COSY_OK;
}

/* ---- strided ------------------------------------------------------------------------------- */

/* im2col once (cols[(ci, k)][t] = x[ci][t stride - pad + k dilation], 0 outside), then W cols split over
 * the pool by output channels, straight into the activation's rows. */
typedef struct {
    const cosy_conv *c;
    const float *cols;
    cosy_act *y;
    int Tout, parts;
} strided_task;

static void strided_run(void *p, int part)
{
    const strided_task *t = p;
    const cosy_conv *c = t->c;
    const int rows = c->cin * c->k;
    int co0, co1;
    cosy_split_range(c->cout, t->parts, part, &co0, &co1);
    if (co0 >= co1) return;
    for (int co = co0; co < co1; co++) {
        float *yr = t->y->data + (size_t)co * t->y->ld;
        const float bv = c->b ? c->b[co] : 0.0f;
        for (int i = 0; i < t->Tout; i++) yr[i] = bv;
    }
    cosy_sgemm(0, 0, co1 - co0, t->Tout, rows, 1.0f, c->w + (size_t)co0 * rows, rows, t->cols, t->Tout, 1.0f,
               t->y->data + (size_t)co0 * t->y->ld, t->y->ld);
}

cosy_status cosy_conv1d_strided(cosy_pool *pool, const cosy_conv *c, const float *x, int T, int ldx, cosy_act *y, cosy_arena *arena)
{
    const int Tout = (T + 2 * c->pad - c->dilation * (c->k - 1) - 1) / c->stride + 1;
    if (c->transposed || !c->w || c->stride < 1 || Tout < 1 || Tout != y->T || c->cout != y->C)
        return cosy_error(COSY_ERR_INTERNAL, "conv1d: strided convolution %d->%d k%d s%d p%d of %d frames into %d x %d not supported", c->cin,
                          c->cout, c->k, c->stride, c->pad, T, y->C, y->T);
    size_t mark = cosy_arena_mark(arena);
    float *cols = cosy_arena_floats(arena, (size_t)c->cin * c->k * Tout);
    if (!cols) return cosy_error(COSY_ERR_NOMEM, "conv1d: strided convolution scratch exhausted");
    for (int ci = 0; ci < c->cin; ci++)
        for (int k = 0; k < c->k; k++) {
            float *cr = cols + ((size_t)ci * c->k + k) * Tout;
            const float *xr = x + (size_t)ci * ldx;
            const int off = k * c->dilation - c->pad;
            for (int t = 0; t < Tout; t++) {
                const int ti = t * c->stride + off;
                cr[t] = ti >= 0 && ti < T ? xr[ti] : 0.0f;
            }
        }
    strided_task t = {c, cols, y, Tout, 1};
    int parts = pool ? cosy_pool_size(pool) : 1;
    if (parts > c->cout) parts = c->cout;
    if ((size_t)c->cout * c->cin * c->k * Tout < 100000) parts = 1;
    t.parts = parts;
    if (parts <= 1) strided_run(&t, 0);
    else cosy_pool_run(pool, parts, strided_run, &t);
    cosy_arena_release(arena, mark);
    return COSY_OK;
}

/* ---- transposed ----------------------------------------------------------------------------- */

/* ConvTranspose1d(stride u, padding p) of x into y starting at column `offset`: the products of every
 * input step with every kernel tap come from one sgemm (W^T x), then are added at t * u - p + k.
 * Split over the pool by output channels (OpenBLAS itself runs single-threaded next to our pool). */
typedef struct {
    const cosy_conv *c;
    const cosy_act *x;      /* NULL: cols already holds the products (cosy_conv1d_overlap_add) */
    cosy_act *y;
    const float *cols;
    int Tin, offset, parts;
} convt_task;

static void overlap_add_rows(const convt_task *t, int co0, int co1)
{
    const cosy_conv *c = t->c;
    const int Tin = t->Tin, K = c->k, Tout = (Tin - 1) * c->stride - 2 * c->pad + K;
    for (int co = co0; co < co1; co++) {
        float *yr = t->y->data + (size_t)co * t->y->ld + t->offset;
        const float bv = c->b ? c->b[co] : 0.0f;
        for (int i = 0; i < Tout; i++) yr[i] = bv;
        for (int k = 0; k < K; k++) {
            /* the inputs i whose output i * stride - pad + k lands in [0, Tout) */
            const int off = k - c->pad, u = c->stride, last = Tout - 1 - off;
            const int i0 = off >= 0 ? 0 : (-off + u - 1) / u, i1 = last < 0 ? 0 : (last / u + 1 < Tin ? last / u + 1 : Tin);
            const float *cr = t->cols + ((size_t)co * K + k) * Tin;
            float *yk = yr + off;
            for (int i = i0; i < i1; i++) yk[(ptrdiff_t)i * u] += cr[i];
        }
    }
}

static void convt_run(void *p, int part)
{
    convt_task *t = p;
    const cosy_conv *c = t->c;
    const int K = c->k;
    int co0, co1;
    cosy_split_range(c->cout, t->parts, part, &co0, &co1);
    if (co0 >= co1) return;
    /* cols[(co, k), t] = sum_ci w[ci][co][k] x[ci][t] */
    if (t->x)
        cosy_sgemm(1, 0, (co1 - co0) * K, t->Tin, c->cin, 1.0f, c->w + (size_t)co0 * K, c->cout * K, t->x->data, t->x->ld, 0.0f,
                   (float *)t->cols + (size_t)co0 * K * t->Tin, t->Tin);
    overlap_add_rows(t, co0, co1);
}

static void convt_split(cosy_pool *pool, convt_task *t)
{
    int parts = pool ? cosy_pool_size(pool) : 1;
    if (parts > t->c->cout) parts = t->c->cout;
    if ((size_t)t->c->cout * t->c->k * t->Tin * (t->x ? t->c->cin : 1) < 100000) parts = 1;
    t->parts = parts;
    if (parts <= 1) convt_run(t, 0);
    else cosy_pool_run(pool, parts, convt_run, t);
}

void cosy_conv1d_overlap_add(cosy_pool *pool, const cosy_conv *c, const float *cols, int Tin, cosy_act *y, int offset)
{
    convt_task t = {c, NULL, y, cols, Tin, offset, 1};
    convt_split(pool, &t);
}

cosy_status cosy_conv1d_transposed(cosy_pool *pool, const cosy_conv *c, const cosy_act *x, cosy_act *y, int offset, cosy_arena *arena)
{
    const int Tin = x->T, K = c->k, Tout = (Tin - 1) * c->stride - 2 * c->pad + K;
    if (!c->transposed || !c->w || offset < 0 || Tout + offset > y->T || c->cin != x->C || c->cout != y->C)
        return cosy_error(COSY_ERR_INTERNAL, "conv1d: transposed convolution %d -> %d frames into %d", Tin, Tout, y->T);
    size_t mark = cosy_arena_mark(arena);
    float *cols = cosy_arena_floats(arena, (size_t)c->cout * K * Tin);
    if (!cols) return cosy_error(COSY_ERR_NOMEM, "conv1d: transposed convolution scratch exhausted");
    convt_task t = {c, x, y, cols, Tin, offset, 1};
    convt_split(pool, &t);
    cosy_arena_release(arena, mark);
    return COSY_OK;
}
