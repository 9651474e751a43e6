/*
 * conv1d_bf16.c — the bf16 convolutions of conv1d.h: the pair-interleaved activation layout, weight
 * packing, and three kernels over the same two layouts: AMX tiles, AVX512-BF16, and plain loops.
 *
 * Why bf16: HiFT's convolutions are ~29 GFLOP per second of audio and the f32 AVX-512 kernel
 * (conv1d.c) already runs near the cores' f32 FMA peak. bf16 halves the bytes every product moves,
 * VDPBF16PS multiplies two pairs per lane per instruction, and an AMX TDPBF16PS does a 16 x 16 x 32
 * block (8192 products) at once.
 *
 * The products of one convolution are, for every tap k, a matrix product of the weights W_k [out][in]
 * with the input shifted by k * dilation - pad columns. In the pair layout a shifted input is the same
 * rows at another column offset, so both SIMD kernels read it in place:
 *   AMX: per block of 32 output channels x 32 time steps, four f32 accumulator tiles (tmm0-3) sum, over
 *     taps and 32-channel input blocks, A tiles (tmm4/5: 16 outputs x 32 inputs of W_k, packed
 *     contiguously) times B tiles (tmm6/7: 16 pair-rows x 16 time steps, loaded with the pair-row
 *     stride straight from the activation). The block goes through a 4 KiB buffer to add bias and
 *     residual in f32 and store only columns below T.
 *   AVX512-BF16: the f32 kernel's register tile (4 output channels x 96 time steps in 24 registers),
 *     one VDPBF16PS per register per (input pair, tap) with the weight pair broadcast from the packed
 *     tile.
 * A transposed convolution is one such product with a single tap whose output rows are
 * (output channel, tap) pairs, followed by cosy_conv1d_overlap_add (as the f32 path in conv1d.c).
 *
 * Measured on one Sapphire Rapids core: AMX 1.3-1.6 TFLOP/s on HiFT's shapes, the f32 kernel ~180
 * GFLOP/s, AVX512-BF16 ~100 GFLOP/s: Intel issues VDPBF16PS at half its FMA rate, so there the
 * AVX512-BF16 kernel loses to f32 and AUTO types do not pick it (cosy_conv1d_bf16_faster); on AMD Zen
 * 4/5, which run it at twice the FMA's multiply-adds, it is the fast path.
 */
#include "core/conv1d.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"

#include <string.h>

#define TILE_ROWS 16                       /* output rows per packed tile */
#define TILE_IN 32                         /* input channels per packed tile (16 pairs) */
#define TILE_ELEMS (TILE_ROWS * TILE_IN)   /* 512 bf16, 1 KiB */
#define ROW_BLOCK 32                       /* packed rows are padded to the AMX kernel's 2 A tiles */
#define MR 4                               /* AVX512-BF16: output rows per register tile */
#define NV_MAX 6                           /* AVX512-BF16: 16-step vectors per register tile row */
#define T_CHUNK 768                        /* AVX512-BF16: time steps per pass over a task's weights */

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#include <immintrin.h>
#define CONV_HAVE_BF16 1
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#endif

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* ---- layouts -------------------------------------------------------------------------------- */

int cosy_act_bf16_pairs(int C) { return round_up((C + 1) / 2, TILE_IN / 2); }

int cosy_act_bf16_ld(int T)
{
    /* the f32 row length (whole 96-step tiles plus margins), made an odd number of 64-byte lines so
     * the 16 pair-rows of an AMX tile load fall into different cache sets */
    int ld = cosy_act_ld(T);
    if ((ld / 16) % 2 == 0) ld += 16;
    return ld;
}

size_t cosy_act_bf16_elems(int C, int T)
{
    return 2 * ((size_t)cosy_act_bf16_pairs(C) * (size_t)cosy_act_bf16_ld(T) + 2 * COSY_ACT_PAD);
}

cosy_status cosy_act_bf16_alloc(cosy_act_bf16 *a, int C, int T, cosy_arena *arena)
{
    size_t n = cosy_act_bf16_elems(C, T);
    uint16_t *base = cosy_arena_alloc(arena, sizeof(uint16_t) * n);
    if (!base) return cosy_error(COSY_ERR_NOMEM, "conv1d: bf16 activation scratch exhausted (%d x %d)", C, T);
    memset(base, 0, sizeof(uint16_t) * n);
    a->C = C;
    a->T = T;
    a->ld = cosy_act_bf16_ld(T);
    a->data = base + 2 * COSY_ACT_PAD;
    return COSY_OK;
}

/* ---- packing -------------------------------------------------------------------------------- */

/* The kernels see a Conv1d as rows = output channels with k taps, and a ConvTranspose1d as one tap
 * whose rows are (output channel, tap) pairs: row co * k + j holds w[:, co, j]. */
static int packed_rows(const cosy_conv *c) { return c->transposed ? c->cout * c->k : c->cout; }
static int packed_taps(const cosy_conv *c) { return c->transposed ? 1 : c->k; }

size_t cosy_conv1d_packed_bf16_elems(const cosy_conv *c)
{
    return (size_t)round_up(packed_rows(c), ROW_BLOCK) * (size_t)packed_taps(c) * (size_t)round_up(c->cin, TILE_IN);
}

cosy_status cosy_conv1d_pack_bf16(uint16_t *dst, const cosy_conv *c, const void *w, cosy_dtype w_dtype)
{
    if (w_dtype != COSY_DTYPE_F32 && w_dtype != COSY_DTYPE_BF16)
        return cosy_error(COSY_ERR_UNSUPPORTED, "conv1d: cannot pack %s weights as bf16 (f32 or bf16)", cosy_dtype_name(w_dtype));
    const int R = packed_rows(c), K = packed_taps(c), IB = round_up(c->cin, TILE_IN) / TILE_IN;
    memset(dst, 0, sizeof(uint16_t) * cosy_conv1d_packed_bf16_elems(c));
    const float *wf = w;
    const uint16_t *wb = w;
    for (int o = 0; o < R; o++)
        for (int k = 0; k < K; k++) {
            /* row o, tap k: inputs i at src + i * step (Conv1d [cout][cin][k]; ConvTranspose1d [cin][cout][k],
             * whose (co, j) is row o = co * k + j), into 32-input runs of the tiles (o / 16, k, i / 32) */
            const size_t src = c->transposed ? (size_t)o : (size_t)o * c->cin * c->k + (size_t)k;
            const size_t step = c->transposed ? (size_t)R : (size_t)c->k;
            uint16_t *row = dst + ((size_t)(o / TILE_ROWS) * K + k) * IB * TILE_ELEMS + (size_t)(o % TILE_ROWS) * TILE_IN;
            for (int i = 0; i < c->cin; i++) {
                const size_t at = src + (size_t)i * step;
                row[(size_t)(i / TILE_IN) * TILE_ELEMS + i % TILE_IN] = w_dtype == COSY_DTYPE_BF16 ? wb[at] : cosy_f32_to_bf16(wf[at]);
            }
        }
    return COSY_OK;
}

/* ---- the product, three ways ---------------------------------------------------------------- */

/* y[r][t] (+ bias[r]) (+ res[r][t]) = sum over taps k and inputs i of W[r][i][k] x[i][t + k dil - pad],
 * for rows [0, rows) and columns [0, T). */
typedef struct {
    const uint16_t *w;          /* packed tiles */
    const cosy_act_bf16 *x;
    float *y;
    const float *res, *bias;    /* either may be NULL; res may be y */
    int ldy, ldr;
    int rows, cin, K, dil, pad, T;
    int n_tasks, path;          /* path: COSY_CPU_AMX, COSY_CPU_AVX512BF16, or portable */
} bconv_job;

static inline float w_at(const bconv_job *j, int r, int i, int k)
{
    const int IB = round_up(j->cin, TILE_IN) / TILE_IN;
    size_t tile = ((size_t)(r / TILE_ROWS) * j->K + k) * IB + i / TILE_IN;
    return cosy_bf16_to_f32(j->w[tile * TILE_ELEMS + (size_t)(r % TILE_ROWS) * TILE_IN + i % TILE_IN]);
}

static void rows_portable(const bconv_job *j, int r0, int r1)
{
    const uint16_t *xd = j->x->data;
    const size_t ld = (size_t)j->x->ld;
    for (int r = r0; r < r1; r++) {
        float *y = j->y + (size_t)r * j->ldy;
        const float *res = j->res ? j->res + (size_t)r * j->ldr : NULL;
        for (int t = 0; t < j->T; t++) {
            float acc = j->bias ? j->bias[r] : 0.0f;
            for (int i = 0; i < j->cin; i++)
                for (int k = 0; k < j->K; k++) {
                    long ti = (long)t + (long)k * j->dil - j->pad;
                    acc += w_at(j, r, i, k) * cosy_bf16_to_f32(xd[((size_t)(i / 2) * ld + (size_t)ti) * 2 + (size_t)(i % 2)]);
                }
            y[t] = res ? acc + res[t] : acc;
        }
    }
}

#ifdef CONV_HAVE_BF16
/* AVX512-BF16: rows r0..r0+3 (rows past the end repeat the last one and are not stored), time steps
 * [t0, t0 + 16 nv), the last vector stored under `mask`. */
static inline __attribute__((always_inline)) TGT_BF16 void bf16_tile(const bconv_job *j, const int nv, int r0, int t0, __mmask16 mask)
{
    const int K = j->K, dil = j->dil, pairs = (j->cin + 1) / 2, IB = round_up(j->cin, TILE_IN) / TILE_IN;
    const int nrows = j->rows - r0 < MR ? j->rows - r0 : MR;
    const uint32_t *w32 = (const uint32_t *)j->w; /* a weight pair is one 32-bit word */
    size_t woff[MR];
    __m512 acc[MR][NV_MAX];
    for (int r = 0; r < MR; r++) {
        const int row = r0 + (r < nrows ? r : nrows - 1);
        woff[r] = (size_t)(row / TILE_ROWS) * K * IB * (TILE_ELEMS / 2) + (size_t)(row % TILE_ROWS) * (TILE_IN / 2);
        const __m512 b = _mm512_set1_ps(j->bias ? j->bias[row] : 0.0f);
#pragma GCC unroll 6
        for (int v = 0; v < nv; v++) acc[r][v] = b;
    }
    const size_t ld = (size_t)j->x->ld;
    const uint32_t *xb = (const uint32_t *)j->x->data + t0 - j->pad;
    const int span = 16 * nv + (K - 1) * dil;
    for (int p = 0; p < pairs; p++) {
        const uint32_t *xr = xb + (size_t)p * ld;
        if (p + 2 < pairs)
            for (int q = 0; q < span; q += 16) _mm_prefetch((const char *)(xr + 2 * ld + q), _MM_HINT_T0);
        const size_t wp = (size_t)(p / (TILE_IN / 2)) * (TILE_ELEMS / 2) + (size_t)(p % (TILE_IN / 2));
        for (int k = 0; k < K; k++) {
            const uint32_t *xp = xr + k * dil;
            const size_t wk = wp + (size_t)k * IB * (TILE_ELEMS / 2);
            __m512i xv[NV_MAX];
#pragma GCC unroll 6
            for (int v = 0; v < nv; v++) xv[v] = _mm512_loadu_si512(xp + 16 * v);
#pragma GCC unroll 4
            for (int r = 0; r < MR; r++) {
                const __m512i b = _mm512_set1_epi32((int)w32[woff[r] + wk]);
#pragma GCC unroll 6
                for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)xv[v], (__m512bh)b);
            }
        }
    }
    for (int r = 0; r < nrows; r++) {
        float *y = j->y + (size_t)(r0 + r) * j->ldy + t0;
        const float *res = j->res ? j->res + (size_t)(r0 + r) * j->ldr + t0 : NULL;
#pragma GCC unroll 6
        for (int v = 0; v < nv; v++) {
            __m512 o = acc[r][v];
            __mmask16 m = v == nv - 1 ? mask : (__mmask16)0xffff;
            if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(m, res + 16 * v));
            _mm512_mask_storeu_ps(y + 16 * v, m, o);
        }
    }
}

static TGT_BF16 void rows_avx512bf16(const bconv_job *j, int blk0, int blk1)
{
    const int T = j->T, tile = 16 * NV_MAX;
    for (int tc = 0; tc < T; tc += T_CHUNK) {
        const int tc_end = tc + T_CHUNK < T ? tc + T_CHUNK : T;
        for (int blk = blk0; blk < blk1; blk++) {
            const int r0 = blk * MR;
            int t0 = tc;
            for (; t0 + tile <= tc_end; t0 += tile) bf16_tile(j, NV_MAX, r0, t0, 0xffff);
            if (t0 < tc_end) {
                const int rem = tc_end - t0, nv = (rem + 15) / 16, last = rem - 16 * (nv - 1);
                const __mmask16 m = (__mmask16)((1u << last) - 1u);
                switch (nv) {
                case 1: bf16_tile(j, 1, r0, t0, m); break;
                case 2: bf16_tile(j, 2, r0, t0, m); break;
                case 3: bf16_tile(j, 3, r0, t0, m); break;
                case 4: bf16_tile(j, 4, r0, t0, m); break;
                case 5: bf16_tile(j, 5, r0, t0, m); break;
                default: bf16_tile(j, 6, r0, t0, m); break;
                }
            }
        }
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* AMX: work items [item0, item1) of (32-row block, 32-step time block), time blocks inner so a row
 * block's weights stay in cache. */
static TGT_AMX void items_amx(const bconv_job *j, int item0, int item1)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    const int K = j->K, IB = round_up(j->cin, TILE_IN) / TILE_IN, n_tb = (j->T + 31) / 32;
    const size_t ldb = (size_t)j->x->ld * 4; /* bytes between pair-rows */
    float out[32][32] __attribute__((aligned(64)));
    for (int item = item0; item < item1; item++) {
        const int rb = item / n_tb, t0 = (item % n_tb) * 32;
        const uint16_t *w0 = j->w + (size_t)(2 * rb) * K * IB * TILE_ELEMS, *w1 = w0 + (size_t)K * IB * TILE_ELEMS;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int k = 0; k < K; k++) {
            const uint16_t *xk = j->x->data + (ptrdiff_t)(t0 + k * j->dil - j->pad) * 2;
            for (int ib = 0; ib < IB; ib++) {
                const size_t wt = ((size_t)k * IB + ib) * TILE_ELEMS;
                const uint16_t *xb = xk + (size_t)ib * (TILE_IN / 2) * j->x->ld * 2;
                _tile_loadd(4, w0 + wt, 64);
                _tile_loadd(5, w1 + wt, 64);
                _tile_loadd(6, xb, ldb);
                _tile_loadd(7, xb + 32, ldb);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
        }
        _tile_stored(0, &out[0][0], 128);
        _tile_stored(1, &out[0][16], 128);
        _tile_stored(2, &out[16][0], 128);
        _tile_stored(3, &out[16][16], 128);
        const int r0 = 32 * rb, nrows = j->rows - r0 < 32 ? j->rows - r0 : 32, cols = j->T - t0 < 32 ? j->T - t0 : 32;
        const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
        const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1u);
        for (int r = 0; r < nrows; r++) {
            float *y = j->y + (size_t)(r0 + r) * j->ldy + t0;
            const __m512 b = _mm512_set1_ps(j->bias ? j->bias[r0 + r] : 0.0f);
            __m512 v0 = _mm512_add_ps(_mm512_load_ps(&out[r][0]), b), v1 = _mm512_add_ps(_mm512_load_ps(&out[r][16]), b);
            if (j->res) {
                const float *res = j->res + (size_t)(r0 + r) * j->ldr + t0;
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, res));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, res + 16));
            }
            _mm512_mask_storeu_ps(y, m0, v0);
            _mm512_mask_storeu_ps(y + 16, m1, v1);
        }
    }
    _tile_release();
}
#endif

/* Work units per path: AMX items of 32 rows x 32 steps; otherwise blocks of MR rows. */
static int job_units(const bconv_job *j)
{
    if (j->path == COSY_CPU_AMX) return ((j->rows + 31) / 32) * ((j->T + 31) / 32);
    return (j->rows + MR - 1) / MR;
}

static void bconv_task(void *ctx, int task)
{
    const bconv_job *j = ctx;
    int u0, u1;
    cosy_split_range(job_units(j), j->n_tasks, task, &u0, &u1);
    if (u0 >= u1) return;
#ifdef CONV_HAVE_BF16
    if (j->path == COSY_CPU_AMX) {
        items_amx(j, u0, u1);
        return;
    }
    if (j->path == COSY_CPU_AVX512BF16) {
        rows_avx512bf16(j, u0, u1);
        return;
    }
#endif
    rows_portable(j, u0 * MR, u1 * MR < j->rows ? u1 * MR : j->rows);
}

static int bf16_path(void)
{
#ifdef CONV_HAVE_BF16
    const cosy_cpu_level_t level = cosy_cpu_level();
    if (level >= COSY_CPU_AMX) return COSY_CPU_AMX;
    if (level >= COSY_CPU_AVX512BF16) return COSY_CPU_AVX512BF16;
#endif
    return COSY_CPU_PORTABLE;
}

const char *cosy_conv1d_bf16_path(void) { return cosy_cpu_level_name((cosy_cpu_level_t)bf16_path()); }
int cosy_conv1d_bf16_native(void) { return bf16_path() != COSY_CPU_PORTABLE; }
int cosy_conv1d_bf16_faster(void) { return bf16_path() == COSY_CPU_AMX || (bf16_path() == COSY_CPU_AVX512BF16 && cosy_cpu_bf16_dot_faster()); }

static void bconv_run(cosy_pool *pool, bconv_job *j)
{
    j->path = bf16_path();
    const int units = job_units(j);
    int n = pool ? cosy_pool_size(pool) : 1;
    if (n > units) n = units;
    if ((double)j->rows * j->cin * j->K * j->T < 2e5) n = 1; /* too small to be worth waking a thread */
    j->n_tasks = n < 1 ? 1 : n;
    if (j->n_tasks == 1) bconv_task(j, 0);
    else cosy_pool_run(pool, j->n_tasks, bconv_task, j);
}

/* ---- the convolutions ----------------------------------------------------------------------- */

static int bf16_input_ok(const cosy_conv *c, const cosy_act_bf16 *x)
{
    return c->w_bf16 && x->C == c->cin && x->ld >= cosy_act_bf16_ld(x->T);
}

cosy_status cosy_conv1d_same_bf16(cosy_pool *pool, const cosy_conv *c, const cosy_act_bf16 *x, cosy_act *y, const cosy_act *res)
{
    if (c->transposed || !bf16_input_ok(c, x) || c->stride != 1 || y->C != c->cout || y->T != x->T || c->pad > COSY_ACT_PAD ||
        c->dilation * (c->k - 1) - c->pad > COSY_ACT_PAD || 2 * c->pad != c->dilation * (c->k - 1) ||
        (res && (res->C != y->C || res->T != y->T)))
        return cosy_error(COSY_ERR_INTERNAL, "conv1d: bf16 convolution %d->%d k%d d%d p%d s%d on %d x %d -> %d x %d not supported%s", c->cin,
                          c->cout, c->k, c->dilation, c->pad, c->stride, x->C, x->T, y->C, y->T, c->w_bf16 ? "" : " (weights not packed)");
    bconv_job j = {.w = c->w_bf16, .x = x, .y = y->data, .ldy = y->ld, .res = res ? res->data : NULL, .ldr = res ? res->ld : 0,
                   .bias = c->b, .rows = c->cout, .cin = c->cin, .K = c->k, .dil = c->dilation, .pad = c->pad, .T = x->T};
    bconv_run(pool, &j);
    return COSY_OK;
}

cosy_status cosy_conv1d_transposed_bf16(cosy_pool *pool, const cosy_conv *c, const cosy_act_bf16 *x, cosy_act *y, int offset,
                                        cosy_arena *arena)
{
    const int Tin = x->T, K = c->k, Tout = (Tin - 1) * c->stride - 2 * c->pad + K;
    if (!c->transposed || !bf16_input_ok(c, x) || offset < 0 || Tout + offset > y->T || c->cout != y->C)
        return cosy_error(COSY_ERR_INTERNAL, "conv1d: bf16 transposed convolution %d -> %d frames into %d%s", Tin, Tout, y->T,
                          c->w_bf16 ? "" : " (weights not packed)");
    size_t mark = cosy_arena_mark(arena);
    float *cols = cosy_arena_floats(arena, (size_t)c->cout * K * Tin);
    if (!cols) return cosy_error(COSY_ERR_NOMEM, "conv1d: transposed convolution scratch exhausted");
    /* cols[(co, k)][t] = sum_ci w[ci][co][k] x[ci][t] */
    bconv_job j = {.w = c->w_bf16, .x = x, .y = cols, .ldy = Tin, .rows = c->cout * K, .cin = c->cin, .K = 1, .dil = 1, .pad = 0, .T = Tin};
    bconv_run(pool, &j);
    cosy_conv1d_overlap_add(pool, c, cols, Tin, y, offset);
    cosy_arena_release(arena, mark);
    return COSY_OK;
}
