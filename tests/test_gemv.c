/*
 * test_gemv.c — the compact-type matrix-vector kernels (src/core/gemv.c) against the naive
 * double-precision product, for every weight type, every CPU level this machine has (COSY_CPU +
 * cosy_cpu_reset), both AVX-512 q8_0/q4_0 paths (VNNI and multiply-add), 1..10 activation rows, odd
 * shapes (column tails, an odd number of blocks, row ranges that are not multiples of the tile),
 * and the weight conversions (f32 → bf16 / q8_0 / q4_0 as ggml quantises). A level this CPU lacks
 * is reported as skipped.
 */
#include "test.h"
#include "core/cpu.h"
#include "core/gemv.h"
#include "core/half.h"
#include "core/tensor.h"

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct {
    cosy_matrix m;
    void *data;
    float *f32;   /* the source values */
} test_matrix;

static void make_matrix(test_matrix *tm, cosy_dtype dtype, int rows, int cols)
{
    memset(tm, 0, sizeof *tm);
    tm->f32 = malloc(sizeof(float) * rows * cols);
    for (int i = 0; i < rows * cols; i++) tm->f32[i] = frand() * (i % 7 == 0 ? 3.0f : 1.0f);
    tm->m.dtype = dtype;
    tm->m.rows = rows;
    tm->m.cols = cols;
    /* exactly the matrix's bytes, so a kernel reading past the last block trips ASan */
    tm->data = malloc(cosy_dtype_nbytes(dtype, (int64_t)rows * cols));
    CHECK(cosy_matrix_convert_rows(&tm->m, tm->data, tm->f32, COSY_DTYPE_F32, 0, rows) == 0);
    tm->m.data = tm->data;
}

static void free_matrix(test_matrix *tm)
{
    free(tm->data);
    free(tm->f32);
}

/* |error| bound: a few f32 roundings of the sum of |terms| */
static double bound(const cosy_matrix *W, const cosy_gemv_input *x, int r, int t)
{
    double s = 0;
    int K = W->cols;
    for (int k = 0; k < K; k++) {
        double w, v;
        if (W->dtype == COSY_DTYPE_Q8_0 || W->dtype == COSY_DTYPE_Q4_0) {
            float wb[32];
            cosy_convert_to_f32(wb, (const char *)W->data + cosy_dtype_nbytes(W->dtype, (int64_t)r * K + k / 32 * 32), W->dtype, 32);
            w = wb[k % 32];
            v = x->q[(size_t)t * K + k] * (double)x->d[(size_t)t * (K / 32) + k / 32];
        } else {
            w = W->dtype == COSY_DTYPE_BF16 ? cosy_bf16_to_f32(((const uint16_t *)W->data)[(size_t)r * K + k])
                                            : ((const float *)W->data)[(size_t)r * K + k];
            v = x->x[(size_t)t * K + k];
        }
        s += fabs(w * v);
    }
    return 4e-7 * s * (1 + log2(K)) + 1e-6;
}

static int check_one(cosy_dtype dtype, int rows, int cols, int T, int r0, int r1, const char *what)
{
    test_matrix tm;
    make_matrix(&tm, dtype, rows, cols);
    float *x = malloc(sizeof(float) * T * cols);
    for (int i = 0; i < T * cols; i++) x[i] = frand();
    void *scratch = aligned_alloc(64, (cosy_gemv_scratch_bytes(dtype, T, cols) + 64) & ~(size_t)63);
    cosy_gemv_input in;
    cosy_gemv_prepare(&in, dtype, x, T, cols, scratch);
    float *bias = malloc(sizeof(float) * rows);
    for (int i = 0; i < rows; i++) bias[i] = frand();
    int ldy = rows + 3;
    float *y = malloc(sizeof(float) * T * ldy), *ref = malloc(sizeof(float) * T * ldy);
    for (int i = 0; i < T * ldy; i++) y[i] = ref[i] = 12345.0f; /* untouched outside [r0, r1) */
    cosy_gemv(&tm.m, &in, bias, y, ldy, r0, r1);
    cosy_gemv_naive(&tm.m, &in, bias, ref, ldy, r0, r1);
    int bad = 0;
    for (int t = 0; t < T && !bad; t++)
        for (int r = 0; r < ldy && !bad; r++) {
            double e = fabs((double)y[t * ldy + r] - ref[t * ldy + r]);
            int inside = r >= r0 && r < r1;
            if (inside ? !(e <= bound(&tm.m, &in, r, t)) : y[t * ldy + r] != 12345.0f) {
                fprintf(stderr, "%s: %s %dx%d T=%d rows [%d,%d): y[%d][%d] = %.9g, naive %.9g\n", what, cosy_dtype_name(dtype), rows,
                        cols, T, r0, r1, t, r, y[t * ldy + r], ref[t * ldy + r]);
                bad = 1;
            }
        }
    CHECK(!bad);
    free(y);
    free(ref);
    free(bias);
    free(scratch);
    free(x);
    free_matrix(&tm);
    return !bad;
}

/* the transposed product (attention's weighted sum of value rows) against a double loop */
static int check_transposed(int rows, int cols, int T, const char *what)
{
    int ldw = cols + 5, ldx = rows + 2, ldy = cols + 3;
    float *Wt = malloc(sizeof(float) * rows * ldw), *x = malloc(sizeof(float) * T * ldx), *y = malloc(sizeof(float) * T * ldy);
    for (int i = 0; i < rows * ldw; i++) Wt[i] = frand();
    for (int i = 0; i < T * ldx; i++) x[i] = frand();
    for (int i = 0; i < T * ldy; i++) y[i] = 777.0f;
    cosy_gemv_t_f32(Wt, rows, cols, ldw, x, ldx, T, y, ldy);
    int bad = 0;
    for (int t = 0; t < T && !bad; t++)
        for (int c = 0; c < ldy && !bad; c++) {
            if (c >= cols) {
                bad = y[t * ldy + c] != 777.0f;
                continue;
            }
            double s = 0, mag = 0;
            for (int r = 0; r < rows; r++) {
                s += (double)x[t * ldx + r] * Wt[r * ldw + c];
                mag += fabs((double)x[t * ldx + r] * Wt[r * ldw + c]);
            }
            bad = !(fabs(y[t * ldy + c] - s) <= 4e-7 * mag * (1 + log2(rows)) + 1e-6);
        }
    if (bad) fprintf(stderr, "%s: transposed %dx%d T=%d differs\n", what, rows, cols, T);
    CHECK(!bad);
    free(Wt);
    free(x);
    free(y);
    return !bad;
}

static void test_level(const char *name)
{
    setenv("COSY_CPU", name, 1);
    cosy_cpu_reset();
    const cosy_dtype types[] = {COSY_DTYPE_F32, COSY_DTYPE_BF16, COSY_DTYPE_Q8_0, COSY_DTYPE_Q4_0};
    const int shapes[][2] = {{37, 64}, {13, 96}, {9, 896}, {22, 160}, {5, 40}, {7, 17}, {130, 4864 / 8}};
    for (int vnni = 1; vnni >= 0; vnni--) {
        if (!vnni && strcmp(name, "avx512")) break; /* only AVX-512 has two q8_0/q4_0 paths */
        cosy_gemv_set_vnni(vnni);
        for (size_t d = 0; d < sizeof types / sizeof types[0]; d++) {
            int quant = types[d] == COSY_DTYPE_Q8_0 || types[d] == COSY_DTYPE_Q4_0;
            if (!vnni && !quant) continue;
            char what[64];
            snprintf(what, sizeof what, "%s %s/%s", cosy_dtype_name(types[d]), name, cosy_gemv_variant(types[d]));
            int ok = 1;
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int rows = shapes[s][0], cols = shapes[s][1];
                if (quant && cols % 32) continue;
                for (int T = 1; T <= 10; T++) {
                    ok &= check_one(types[d], rows, cols, T, 0, rows, what);
                    ok &= check_one(types[d], rows, cols, T, rows / 3, rows - 1, what);
                }
            }
            printf("  %-22s %s\n", what, ok ? "ok" : "FAILED");
        }
    }
    cosy_gemv_set_vnni(1);
    int ok = 1;
    const int tshapes[][2] = {{1, 64}, {37, 64}, {300, 16}, {5, 33}, {129, 7}};
    for (size_t s = 0; s < sizeof tshapes / sizeof tshapes[0]; s++)
        for (int T = 1; T <= 10; T++) ok &= check_transposed(tshapes[s][0], tshapes[s][1], T, name);
    printf("  %-22s %s\n", "transposed f32", ok ? "ok" : "FAILED");
}

/* The AVX-512 activation quantiser must produce the portable one's bytes exactly. */
static void test_quantize_levels(void)
{
    const int T = 3, cols = 4864;
    float *x = malloc(sizeof(float) * T * cols);
    for (int i = 0; i < T * cols; i++) x[i] = frand() * (i % 97 == 0 ? 50.0f : 1.0f);
    for (int i = 0; i < 32; i++) x[i] = 0.0f; /* an all-zero block: d = 0, q = 0 */
    x[40] = 0.5f * (127.0f / 127.0f);
    int8_t *qa = malloc(T * cols), *qb = malloc(T * cols);
    float *da = malloc(sizeof(float) * T * cols / 32), *db = malloc(sizeof(float) * T * cols / 32);
    setenv("COSY_CPU", "portable", 1);
    cosy_cpu_reset();
    cosy_q8_quantize_rows(qa, da, x, T, cols);
    setenv("COSY_CPU", "avx512", 1);
    cosy_cpu_reset();
    cosy_q8_quantize_rows(qb, db, x, T, cols);
    CHECK(memcmp(qa, qb, T * cols) == 0);
    CHECK(memcmp(da, db, sizeof(float) * T * cols / 32) == 0);
    CHECK(da[0] == 0.0f && qa[0] == 0);
    /* the same numbers as ggml's weight quantiser (before its scale is rounded to f16) */
    int ok = 1;
    for (int b = 0; b < T * cols / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        ok &= da[b] == amax / 127.0f;
        for (int j = 0; j < 32; j++) ok &= abs(qa[b * 32 + j]) <= 127;
    }
    CHECK(ok);
    free(x);
    free(qa);
    free(qb);
    free(da);
    free(db);
}

/* ggml's Q4_0 quantiser, written out here from its definition: d = (the signed value of largest
 * magnitude) / -8, nibble = min(15, trunc(x / d + 8.5)), element j low / j + 16 high nibble of byte j. */
static void q4_reference(cosy_block_q4_0 *b, const float *x)
{
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) amax = fabsf(x[j]), max = x[j];
    float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
    b->d = cosy_f32_to_f16(d);
    for (int j = 0; j < 16; j++) {
        int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + 16] * id + 8.5f);
        b->qs[j] = (uint8_t)((lo > 15 ? 15 : lo) | (hi > 15 ? 15 : hi) << 4);
    }
}

/* Conversions: q8_0 / q4_0 from f32 equal ggml's blocks; from a source of the same type they are a
 * copy; bf16 rounds. */
static void test_convert(void)
{
    const int rows = 3, cols = 96;
    float f[3 * 96];
    for (int i = 0; i < rows * cols; i++) f[i] = frand() * 2.0f;
    cosy_block_q8_0 blocks[3 * 3], q1[9], q2[9];
    cosy_convert_from_f32(blocks, COSY_DTYPE_Q8_0, f, rows * cols);
    cosy_matrix m = {COSY_DTYPE_Q8_0, rows, cols, NULL};
    CHECK(cosy_matrix_convert_rows(&m, q1, f, COSY_DTYPE_F32, 0, rows) == 0);
    CHECK(cosy_matrix_convert_rows(&m, q2, blocks, COSY_DTYPE_Q8_0, 0, rows) == 0);
    CHECK(memcmp(q1, blocks, sizeof q1) == 0 && memcmp(q2, blocks, sizeof q2) == 0);

    /* q4_0: the block from the reference quantiser, the copy, and the values it stands for */
    cosy_block_q4_0 b4[9], c4[9], r4[9];
    cosy_matrix m4 = {COSY_DTYPE_Q4_0, rows, cols, NULL};
    CHECK(cosy_matrix_convert_rows(&m4, b4, f, COSY_DTYPE_F32, 0, rows) == 0);
    CHECK(cosy_matrix_convert_rows(&m4, c4, b4, COSY_DTYPE_Q4_0, 0, rows) == 0);
    for (int b = 0; b < 9; b++) q4_reference(&r4[b], f + b * 32);
    CHECK(memcmp(b4, r4, sizeof b4) == 0 && memcmp(c4, b4, sizeof b4) == 0);
    CHECK(sizeof(cosy_block_q4_0) == 18 && cosy_dtype_nbytes(COSY_DTYPE_Q4_0, 64) == 36 && cosy_dtype_block(COSY_DTYPE_Q4_0) == 32);
    float back[96];
    cosy_convert_to_f32(back, b4, COSY_DTYPE_Q4_0, 96);
    int ok = 1;
    for (int b = 0; b < 3; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(f[b * 32 + j]));
        /* half a step (amax / 16) inside the grid [-8, 7] * |d|; values of the other sign beyond 7.5 |d|
         * are clipped to 7 |d|, up to amax / 8 off (plus the f16 scale's rounding in both) */
        for (int j = 0; j < 32; j++) {
            float x = f[b * 32 + j], e = fabsf(back[b * 32 + j] - x);
            ok &= e <= (fabsf(x) <= amax * 7.5f / 8.0f ? amax / 16.0f : amax / 8.0f) * 1.002f + 1e-6f;
        }
    }
    CHECK(ok);
    /* a hand-made block: x_j = (j - 16) / 4, the largest magnitude -4 at j = 0, so d = 0.5 and nibble
     * j = trunc(j / 2 + 0.5): 0, 1, 1, 2, 2, ...; x_31 = 3.75 → trunc(16) capped at 15 */
    float h[32];
    for (int j = 0; j < 32; j++) h[j] = (float)(j - 16) * 0.25f;
    cosy_block_q4_0 hb;
    cosy_convert_from_f32(&hb, COSY_DTYPE_Q4_0, h, 32);
    CHECK(cosy_f16_to_f32(hb.d) == 0.5f);
    ok = 1;
    for (int j = 0; j < 16; j++) {
        int lo = hb.qs[j] & 15, hi = hb.qs[j] >> 4;
        int want_lo = (int)(j / 2.0 + 0.5), want_hi = (int)((j + 16) / 2.0 + 0.5);
        ok &= lo == want_lo && hi == (want_hi > 15 ? 15 : want_hi);
    }
    CHECK(ok);
    CHECK((hb.qs[15] >> 4) == 15 && (hb.qs[0] & 15) == 0);
    /* the largest magnitude positive: d < 0, and it maps to nibble 0 exactly */
    for (int j = 0; j < 32; j++) h[j] = 0.0f;
    h[5] = 4.0f;
    h[6] = -1.0f;
    cosy_convert_from_f32(&hb, COSY_DTYPE_Q4_0, h, 32);
    cosy_convert_to_f32(back, &hb, COSY_DTYPE_Q4_0, 32);
    CHECK(cosy_f16_to_f32(hb.d) == -0.5f && back[5] == 4.0f && back[6] == -1.0f && back[0] == 0.0f);
    /* an all-zero block: d = 0 / -8 = -0 (f16 0x8000, as ggml writes it), every nibble 8 */
    for (int j = 0; j < 32; j++) h[j] = 0.0f;
    cosy_convert_from_f32(&hb, COSY_DTYPE_Q4_0, h, 32);
    CHECK(hb.d == 0x8000 && hb.qs[0] == 0x88 && hb.qs[15] == 0x88);

    cosy_matrix mb = {COSY_DTYPE_BF16, rows, cols, NULL};
    uint16_t bh[3 * 96];
    CHECK(cosy_matrix_convert_rows(&mb, bh, f, COSY_DTYPE_F32, 1, 2) == 0);
    ok = 1;
    for (int k = 0; k < cols; k++) ok &= bh[cols + k] == cosy_f32_to_bf16(f[cols + k]);
    CHECK(ok);
}

int main(void)
{
    const cosy_cpu_features *f = cosy_cpu_get_features();
    const char *levels[3] = {"portable", "avx2", "avx512"};
    setenv("COSY_CPU", "avx512", 1); /* the gemv kernels have no bf16-instruction or AMX variants */
    cosy_cpu_reset();
    int best = (int)cosy_cpu_level();
    printf("CPU: %s, best level %s, VNNI %d\n", cosy_cpu_model_name(), levels[best], !!f->avx512vnni);
    for (int l = 0; l <= best; l++) test_level(levels[l]);
    for (int l = best + 1; l < 3; l++) printf("  %-22s skipped (this CPU lacks it)\n", levels[l]);
    if (best >= COSY_CPU_AVX512 && !f->avx512vnni) printf("  %-22s skipped (this CPU lacks it)\n", "avx512-vnni");
    if (best >= COSY_CPU_AVX512) test_quantize_levels();
    test_convert();
    unsetenv("COSY_CPU");
    cosy_cpu_reset();
    return test_finish("test_gemv");
}
