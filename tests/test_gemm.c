/*
 * test_gemm.c — the packed-weight products of core/gemm.h on every CPU path this machine has:
 * f32 panels (AVX-512) against a double-precision product, bf16 tiles (AVX512-BF16 and AMX, forced
 * with cosy_cpu_cap) against the exact product of the bf16-rounded inputs, the packers against the
 * definition of the layout, and bias / accumulate / activation epilogues at ragged sizes; and the
 * block attention of core/attention.h on each path against a double-precision softmax attention.
 */
#include "test.h"
#include "core/cpu.h"
#include "core/attention.h"
#include "core/gemm.h"
#include "core/half.h"
#include "core/tensor.h"

#include <stdint.h>

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
}

static double bf16r(float x) { return (double)cosy_bf16_to_f32(cosy_f32_to_bf16(x)); }

static double act_ref(double x, int act)
{
    if (act == COSY_ACT_GELU) return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    if (act == COSY_ACT_SILU) return x / (1.0 + exp(-x));
    return x;
}

static const int shapes[][3] = {{1, 32, 32}, {5, 17, 40}, {12, 64, 256}, {13, 96, 80}, {50, 1536, 256}, {100, 80, 512}, {33, 250, 1024}};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

/* the packed index of (n, k), as gemm.h defines the layout */
static size_t packed_index(int n, int k, int KB)
{
    return ((size_t)(n / 16) * KB + (size_t)(k / 32)) * 512 + (size_t)((k % 32) / 2) * 32 + (size_t)(n % 16) * 2 + (size_t)(k % 2);
}

static void test_bf16_level(const char *name)
{
    for (int si = 0; si < N_SHAPES; si++) {
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], Kp = (K + 31) / 32 * 32, Mp = (M + 31) / 32 * 32;
        const int KB = Kp / 32;
        float *w = malloc(sizeof(float) * (size_t)N * K), *x = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * N);
        float *y = malloc(sizeof(float) * (size_t)M * N), *ref = malloc(sizeof(float) * (size_t)M * N);
        const size_t elems = cosy_pack_bf16_elems(N, K);
        uint16_t *P = malloc(sizeof(uint16_t) * elems), *P16 = malloc(sizeof(uint16_t) * elems), *A = malloc(sizeof(uint16_t) * (size_t)Mp * Kp);
        uint16_t *w16 = malloc(sizeof(uint16_t) * (size_t)N * K);
        fill(w, (size_t)N * K, 7 + (unsigned)si);
        fill(x, (size_t)M * K, 8 + (unsigned)si);
        fill(b, (size_t)N, 9 + (unsigned)si);
        for (size_t i = 0; i < (size_t)N * K; i++) w16[i] = cosy_f32_to_bf16(w[i]);
        cosy_pack_bf16(P, w, N, K, K);
        cosy_pack_bf16_from_bf16(P16, w16, N, K, K);
        /* the packers place every value where the layout says, zeros elsewhere */
        int layout_ok = !memcmp(P, P16, sizeof(uint16_t) * elems);
        size_t nonzero = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) layout_ok &= P[packed_index(n, k, KB)] == w16[(size_t)n * K + k];
        for (size_t i = 0; i < elems; i++) nonzero += P[i] != 0;
        size_t expect_nonzero = 0;
        for (size_t i = 0; i < (size_t)N * K; i++) expect_nonzero += w16[i] != 0;
        CHECK(layout_ok);
        CHECK(nonzero == expect_nonzero);
        /* rows given by pointers, and the transposed packer: W[n][k] = rows[k][n] */
        {
            const float **rows = malloc(sizeof(float *) * (size_t)(N > K ? N : K));
            uint16_t *Q = malloc(sizeof(uint16_t) * elems);
            for (int n = 0; n < N; n++) rows[n] = w + (size_t)n * K;
            cosy_pack_bf16_rows(Q, rows, N, K);
            CHECK(!memcmp(Q, P, sizeof(uint16_t) * elems));
            float *wt = malloc(sizeof(float) * (size_t)N * K); /* wt[k][n] = w[n][k] */
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++) wt[(size_t)k * N + n] = w[(size_t)n * K + k];
            for (int k = 0; k < K; k++) rows[k] = wt + (size_t)k * N;
            cosy_pack_bf16_t_rows(Q, rows, K, N);
            CHECK(!memcmp(Q, P, sizeof(uint16_t) * elems));
            free(wt);
            free(Q);
            free(rows);
        }
        cosy_bf16_convert_rows(A, x, M, K, K, 1.0f, Kp, Mp);
        for (int act = COSY_ACT_NONE; act <= COSY_ACT_SILU; act++)
            for (int accumulate = 0; accumulate <= 1; accumulate++) {
                const int use_bias = (act + accumulate) % 2 == 0;
                fill(y, (size_t)M * N, 44);
                double mag = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double acc = use_bias ? b[j] : 0.0;
                        for (int k = 0; k < K; k++) acc += bf16r(x[(size_t)i * K + k]) * bf16r(w[(size_t)j * K + k]);
                        if (accumulate) acc += y[(size_t)i * N + j];
                        ref[(size_t)i * N + j] = (float)act_ref(acc, act);
                        mag = fmax(mag, fabs(acc));
                    }
                /* in two column ranges, as two threads would split it */
                const int blocks = (N + 31) / 32, half = blocks / 2;
                cosy_gemm_bf16(M, N, Kp, A, P, KB, use_bias ? b : NULL, y, N, accumulate, act, 0, half);
                cosy_gemm_bf16(M, N, Kp, A, P, KB, use_bias ? b : NULL, y, N, accumulate, act, half, blocks);
                const double err = test_max_abs_diff(y, ref, (long)M * N);
                /* f32 accumulation of K products: ~K ulp of the magnitude at worst */
                const double tol = 4e-7 * K * (1.0 + mag);
                if (err > tol) fprintf(stderr, "%s bf16 %dx%dx%d act %d acc %d: error %g > %g\n", name, M, N, K, act, accumulate, err, tol);
                CHECK(err <= tol);
            }
        free(w);
        free(x);
        free(b);
        free(y);
        free(ref);
        free(P);
        free(P16);
        free(A);
        free(w16);
    }
}

static void test_f32_panels(void)
{
    for (int si = 0; si < N_SHAPES; si++) {
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        const size_t panels = (size_t)(N + COSY_PANEL - 1) / COSY_PANEL;
        float *w = malloc(sizeof(float) * (size_t)N * K), *x = malloc(sizeof(float) * (size_t)M * K), *b = calloc(panels * COSY_PANEL, sizeof(float));
        float *P = malloc(sizeof(float) * panels * COSY_PANEL * K), *y = malloc(sizeof(float) * (size_t)M * N), *ref = malloc(sizeof(float) * (size_t)M * N);
        fill(w, (size_t)N * K, 17 + (unsigned)si);
        fill(x, (size_t)M * K, 18 + (unsigned)si);
        fill(b, (size_t)N, 19 + (unsigned)si);
        cosy_pack_f32_rows(P, w, N, K, K);
        for (int act = COSY_ACT_NONE; act <= COSY_ACT_SILU; act++) {
            fill(y, (size_t)M * N, 45);
            const int accumulate = act == COSY_ACT_NONE;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0.5 * b[j];
                    for (int k = 0; k < K; k++) acc += 0.5 * (double)x[(size_t)i * K + k] * w[(size_t)j * K + k];
                    if (accumulate) acc += y[(size_t)i * N + j];
                    ref[(size_t)i * N + j] = (float)act_ref(acc, act);
                }
            /* alpha scales the product, not the bias: pass the bias pre-halved */
            float *hb = malloc(sizeof(float) * panels * COSY_PANEL);
            for (size_t j = 0; j < panels * COSY_PANEL; j++) hb[j] = 0.5f * b[j];
            cosy_gemm_f32_panels(M, N, K, 0.5f, x, K, P, (size_t)K * COSY_PANEL, 0, (int)panels, hb, y, N, accumulate, act);
            free(hb);
            const double err = test_max_abs_diff(y, ref, (long)M * N);
            if (err > 1e-4) fprintf(stderr, "f32 panels %dx%dx%d act %d: error %g\n", M, N, K, act, err);
            CHECK(err <= 1e-4);
        }
        free(w);
        free(x);
        free(b);
        free(P);
        free(y);
        free(ref);
    }
}


/* ---- block attention: random keys in blocks with stale (finite) values in unwritten slots, ragged
 * visibility masks, every row count, against softmax attention in double over the same (rounded)
 * values ---- */
static double worse(double worst, double err) { return err != err ? INFINITY : fmax(worst, err); }

static void test_attention(const char *name, int bf16)
{
    const int dims[] = {16, 64, 80};
    for (int di = 0; di < 6; di++) {
        /* stale contents: a previous user's finite values under partly written blocks; or NaN under
         * fully written ones (cosy_kv_put must write a slot whole, padding included) */
        const int d = dims[di % 3], n_blocks = 5, nan_fill = di >= 3;
        const size_t slab = cosy_kv_slab_elems(d, bf16), esize = bf16 ? 2 : 4;
        char *mem = malloc(slab * esize * n_blocks);
        for (size_t i = 0; i < slab * n_blocks; i++) {
            const float stale = nan_fill ? NAN : (float)((i * 2654435761u) % 1000) / 250.0f - 2.0f;
            if (bf16) ((uint16_t *)mem)[i] = cosy_f32_to_bf16(stale);
            else ((float *)mem)[i] = stale;
        }
        const int keys = n_blocks * COSY_KV_BLOCK;
        float *k = malloc(sizeof(float) * keys * d), *v = malloc(sizeof(float) * keys * d), *q = malloc(sizeof(float) * COSY_ATTN_ROWS * d);
        fill(k, (size_t)keys * d, 100 + (unsigned)d);
        fill(v, (size_t)keys * d, 200 + (unsigned)d);
        fill(q, (size_t)COSY_ATTN_ROWS * d, 300 + (unsigned)d);
        for (size_t i = 0; i < (size_t)COSY_ATTN_ROWS * d; i++) q[i] *= 3.0f;
        cosy_kv_ref refs[5];
        /* block 1 partly written (its slots 20.. are stale and invisible), block 3 empty (skipped),
         * block 4 with a gap */
        const uint32_t vis[5] = {0xffffffffu, 0x000fffffu, 0xfffff0f0u, 0, 0x7fffffffu};
        int n = 0;
        for (int bi = 0; bi < n_blocks; bi++) {
            for (int sl = 0; sl < COSY_KV_BLOCK; sl++)
                if (nan_fill || vis[bi] >> sl & 1u) cosy_kv_put(mem + slab * esize * bi, sl, k + ((size_t)bi * 32 + sl) * d, v + ((size_t)bi * 32 + sl) * d, d, bf16);
            if (vis[bi]) refs[n++] = (cosy_kv_ref){mem + slab * esize * bi, vis[bi]};
        }
        const float scale = 1.0f / sqrtf((float)d);
        void *scratch = aligned_alloc(64, (cosy_attn_scratch_bytes(d, n) + 63) / 64 * 64);
        float *out = malloc(sizeof(float) * COSY_ATTN_ROWS * (d + 3));
        double worst = 0;
        for (int rows = 1; rows <= COSY_ATTN_ROWS; rows += rows < 20 ? 1 : 11) {
            cosy_attn_blocks(q, d, rows, d, scale, refs, n, bf16, out, d + 3, scratch);
            for (int r = 0; r < rows; r++) {
                double s[160], mx = -1e300, sum = 0;
                for (int bi = 0; bi < n_blocks; bi++)
                    for (int sl = 0; sl < 32; sl++) {
                        const int j = bi * 32 + sl;
                        s[j] = -1e300;
                        if (!(vis[bi] >> sl & 1u)) continue;
                        double acc = 0;
                        for (int i = 0; i < d; i++) {
                            const double qv = bf16 ? bf16r(q[(size_t)r * d + i] * scale) : (double)q[(size_t)r * d + i] * scale;
                            acc += qv * (bf16 ? bf16r(k[(size_t)j * d + i]) : k[(size_t)j * d + i]);
                        }
                        s[j] = acc;
                        mx = fmax(mx, acc);
                    }
                for (int j = 0; j < keys; j++) sum += s[j] > -1e299 ? exp(s[j] - mx) : 0.0;
                for (int i = 0; i < d; i++) {
                    double o = 0;
                    for (int j = 0; j < keys; j++) {
                        if (s[j] <= -1e299) continue;
                        const double pj = exp(s[j] - mx);
                        o += (bf16 ? bf16r((float)pj) : pj) * (bf16 ? bf16r(v[(size_t)j * d + i]) : v[(size_t)j * d + i]);
                    }
                    worst = worse(worst, fabs(o / sum - out[(size_t)r * (d + 3) + i]));
                }
            }
        }
        /* bf16: the probabilities are rounded before the sum is taken in f32 (relative 2^-8 each) */
        const double tol = bf16 ? 1e-2 : 2e-6;
        if (worst > tol) fprintf(stderr, "%s attention d=%d: error %g > %g\n", name, d, worst, tol);
        CHECK(worst <= tol);
        free(mem);
        free(k);
        free(v);
        free(q);
        free(out);
        free(scratch);
    }
}

/* cosy_kv_put_rows writes exactly what cosy_kv_put does slot by slot, for every start and length */
static void test_kv_put_rows(int bf16)
{
    const int dims[] = {16, 64, 80};
    for (int di = 0; di < 3; di++) {
        const int d = dims[di], ld = d + 5;
        const size_t bytes = cosy_kv_slab_elems(d, bf16) * (bf16 ? 2 : 4);
        char *a = malloc(bytes), *b = malloc(bytes);
        float *k = malloc(sizeof(float) * 32 * ld), *v = malloc(sizeof(float) * 32 * ld);
        fill(k, (size_t)32 * ld, 500 + (unsigned)d);
        fill(v, (size_t)32 * ld, 600 + (unsigned)d);
        int same = 1;
        for (int slot = 0; slot < 32; slot += 3)
            for (int n = 1; slot + n <= 32; n += 5) {
                memset(a, 0x3c, bytes);
                memset(b, 0x3c, bytes);
                for (int i = 0; i < n; i++) cosy_kv_put(a, slot + i, k + (size_t)i * ld, v + (size_t)i * ld, d, bf16);
                cosy_kv_put_rows(b, slot, n, k, v, ld, d, bf16);
                same &= !memcmp(a, b, bytes);
            }
        /* whole aligned groups of 16 (the transposed path) */
        memset(a, 0, bytes);
        memset(b, 0, bytes);
        for (int i = 0; i < 32; i++) cosy_kv_put(a, i, k + (size_t)i * ld, v + (size_t)i * ld, d, bf16);
        cosy_kv_put_rows(b, 0, 32, k, v, ld, d, bf16);
        same &= !memcmp(a, b, bytes);
        CHECK(same);
        free(a);
        free(b);
        free(k);
        free(v);
    }
}


/* compact weights (f32, bf16, q8_0, q4_0 rows) straight into tiles: the same bytes as widening each row
 * to f32 and packing that (the definition), at this level; odd N and K over several tiles */
static void test_pack_typed(const char *name)
{
    const int N = 45, K = 96;
    const cosy_dtype types[] = {COSY_DTYPE_F32, COSY_DTYPE_BF16, COSY_DTYPE_Q8_0, COSY_DTYPE_Q4_0};
    float *w = malloc(sizeof(float) * N * K), *wide = malloc(sizeof(float) * N * K);
    uint16_t *want = malloc(sizeof(uint16_t) * cosy_pack_bf16_elems(N, K)), *got = malloc(sizeof(uint16_t) * cosy_pack_bf16_elems(N, K));
    char *stored = malloc(sizeof(float) * N * K);
    fill(w, (size_t)N * K, 99);
    for (int i = 0; i < N * K; i++) w[i] *= 3.0f;
    for (int t = 0; t < 4; t++) {
        const size_t row_bytes = cosy_dtype_nbytes(types[t], K);
        for (int n = 0; n < N; n++) {
            cosy_convert_from_f32(stored + (size_t)n * row_bytes, types[t], w + (size_t)n * K, K);
            cosy_convert_to_f32(wide + (size_t)n * K, stored + (size_t)n * row_bytes, types[t], K);
        }
        cosy_pack_bf16(want, wide, N, K, K);
        memset(got, 0xff, sizeof(uint16_t) * cosy_pack_bf16_elems(N, K));
        cosy_pack_bf16_typed(got, stored, types[t], row_bytes, N, K);
        size_t diff = 0;
        for (size_t i = 0; i < cosy_pack_bf16_elems(N, K); i++) diff += want[i] != got[i];
        if (diff) printf("  pack %s on %s: %zu elements differ\n", cosy_dtype_name(types[t]), name, diff);
        CHECK(diff == 0);
    }
    free(w);
    free(wide);
    free(want);
    free(got);
    free(stored);
}

int main(void)
{
    const cosy_cpu_level_t best = cosy_cpu_level();
    printf("CPU: %s, best level %s\n", cosy_cpu_model_name(), cosy_cpu_level_name(best));
    /* the f32 panels at every level this CPU has: AVX-512, AVX2, and the portable loops that a
     * product packed at a higher level meets when the level is lowered afterwards */
    const cosy_cpu_level_t f32_levels[] = {COSY_CPU_AVX512, COSY_CPU_AVX2, COSY_CPU_PORTABLE};
    for (int i = 0; i < 3; i++) {
        if (best < f32_levels[i]) {
            printf("SKIP f32 panels on %s: this CPU lacks it\n", cosy_cpu_level_name(f32_levels[i]));
            continue;
        }
        cosy_cpu_cap(f32_levels[i]);
        test_f32_panels();
        printf("f32 panels on %s: checked\n", cosy_cpu_level_name(f32_levels[i]));
        cosy_cpu_reset();
    }
    test_attention(cosy_cpu_level_name(best), 0);
    test_kv_put_rows(0);
    {
        cosy_cpu_level_t keep = cosy_cpu_cap(COSY_CPU_AVX2);
        test_attention("avx2 (f32 panels)", 0);
        (void)keep;
        cosy_cpu_reset();
    }
    const cosy_cpu_level_t levels[] = {COSY_CPU_AVX512BF16, COSY_CPU_AMX};
    for (int i = 0; i < 2; i++) {
        if (best < levels[i]) {
            printf("SKIP bf16 products on %s: this CPU lacks it\n", cosy_cpu_level_name(levels[i]));
            continue;
        }
        cosy_cpu_cap(levels[i]);
        CHECK(cosy_gemm_bf16_level() == (int)levels[i]);
        test_bf16_level(cosy_cpu_level_name(levels[i]));
        test_attention(cosy_cpu_level_name(levels[i]), 1);
        test_kv_put_rows(1);
        test_pack_typed(cosy_cpu_level_name(levels[i]));
        printf("bf16 products on %s: checked\n", cosy_cpu_level_name(levels[i]));
    }
    cosy_cpu_cap(COSY_CPU_AVX512);
    CHECK(cosy_gemm_bf16_level() == 0);
    test_pack_typed("avx512 (portable packing)");
    cosy_cpu_reset();
    return test_finish("test_gemm");
}
