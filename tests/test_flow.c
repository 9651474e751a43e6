/* test_flow.c — the flow decoder against the official fixtures (cv2-tiny): the Euler t schedule,
 * one estimator call (full attention and chunk masks), the encoder's intermediates (h, mu), the
 * first estimator output inside a full call, the non-streaming and streaming mels, every flow
 * call of the official streaming loop (stream_schedule), the chunk-mask and convolution kernels
 * at chunk boundaries (against naive versions), and argument validation. */
#include "test.h"
#include "core/cpu.h"
#include <string.h>
#include "core/arena.h"
#include "core/threadpool.h"
#include "io/npy.h"
#include "model/flow/flow.h"
#include "model/flow/flow_internal.h"
#include "model/model.h"

#include <pthread.h>
#include <stdint.h>

/* the manifest's tolerance for every flow output: max |ours - ref| / max |ref| <= 1e-4 */
#define REL_TOL 1e-4

/* f rounded to bf16 (nearest even), as a float */
static float bf16r(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static cosy_model *model;
static cosy_flow *flow;

static npy_array load(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cv2-tiny/golden/%s.npy", name);
    npy_array a;
    memset(&a, 0, sizeof a);
    if (npy_load(test_data(rel), &a) != COSY_OK) fprintf(stderr, "cannot load %s: %s\n", rel, cosy_last_error());
    return a;
}

static double rel_err(const float *ours, const npy_array *ref, int64_t n)
{
    if (ref->numel != n) {
        fprintf(stderr, "size mismatch: %lld vs %lld\n", (long long)n, (long long)ref->numel);
        return INFINITY;
    }
    double mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fabs(ref->f32[i]) > mx ? fabs(ref->f32[i]) : mx;
    return test_max_abs_diff(ours, ref->f32, (long)n) / (mx > 0 ? mx : 1);
}

#define CHECK_REL(ours, name, n)                                                  \
    do {                                                                          \
        npy_array ref_ = load(name);                                              \
        double e_ = rel_err((ours), &ref_, (n));                                  \
        if (!(e_ <= REL_TOL)) fprintf(stderr, "%s: relative error %.3g\n", name, e_); \
        CHECK(e_ <= REL_TOL);                                                     \
        npy_free(&ref_);                                                          \
    } while (0)

typedef struct {
    int32_t tokens[1024], prompt[256];
    int n_all, P;
    npy_array feat, emb;
} inputs;

static void load_inputs(inputs *in)
{
    npy_array tok = load("speech_token"), ptok = load("prompt_speech_token");
    in->n_all = (int)tok.numel;
    in->P = (int)ptok.numel;
    for (int i = 0; i < in->n_all && i < 1024; i++) in->tokens[i] = (int32_t)tok.i64[i];
    for (int i = 0; i < in->P && i < 256; i++) in->prompt[i] = (int32_t)ptok.i64[i];
    in->feat = load("prompt_feat");
    in->emb = load("embedding");
    npy_free(&tok);
    npy_free(&ptok);
}

static void free_inputs(inputs *in)
{
    npy_free(&in->feat);
    npy_free(&in->emb);
}

static void test_t_schedule(void)
{
    float t[64], dt[64];
    cosy_flow_t_schedule(flow, t, dt);
    npy_array ref = load("flow_ns_t_span");
    CHECK(ref.numel == model->hp.cfm_steps);
    for (int i = 0; i < ref.numel; i++) CHECK_NEAR(t[i], ref.f32[i], 0.0);
    /* the steps add up to 1 (up to rounding) */
    double sum = 0;
    for (int i = 0; i < model->hp.cfm_steps; i++) sum += dt[i];
    CHECK_NEAR(sum, 1.0, 1e-6);
    npy_free(&ref);
}

static void test_estimator(const char *prefix, int streaming)
{
    char name[6][64];
    const char *parts[6] = {"x", "mask", "mu", "t", "spks", "cond"};
    npy_array in[6];
    for (int i = 0; i < 6; i++) {
        snprintf(name[i], sizeof name[i], "%s_est0_%s", prefix, parts[i]);
        in[i] = load(name[i]);
    }
    int B = (int)in[0].shape[0], T = (int)in[0].shape[2];
    float *out = malloc(sizeof(float) * (size_t)in[0].numel);
    CHECK_OK(cosy_flow_estimator(flow, in[0].f32, in[2].f32, in[3].f32, in[4].f32, in[5].f32, B, T, streaming, out));
    char out_name[64];
    snprintf(out_name, sizeof out_name, "%s_est0_out", prefix);
    CHECK_REL(out, out_name, in[0].numel);
    free(out);
    for (int i = 0; i < 6; i++) npy_free(&in[i]);
}

/* a full call with its intermediates: h, mu, the first estimator output, the mel */
static void test_full_call(const char *prefix, int n, int streaming, int finalize)
{
    inputs in;
    load_inputs(&in);
    const int E = model->hp.enc_output_size, ctx = finalize ? 0 : model->hp.pre_lookahead_len;
    const int T = 2 * (in.P + n - ctx);
    float *h = malloc(sizeof(float) * (size_t)T * E), *mu = malloc(sizeof(float) * (size_t)T * 80);
    float *est0 = malloc(sizeof(float) * 2 * 80 * (size_t)T), *mel = malloc(sizeof(float) * 80 * (size_t)T);
    cosy_flow_trace trace = {h, mu, est0, 0, 0, 0, NULL};
    int frames = -1;
    CHECK_OK(cosy_flow_inference_trace(flow, in.tokens, n, in.prompt, in.P, in.feat.f32, in.emb.f32, streaming, finalize, mel,
                                       &frames, &trace));
    CHECK(frames == T - 2 * in.P);
    CHECK(frames == cosy_flow_output_frames(flow, n, finalize));
    char name[64];
    snprintf(name, sizeof name, "%s_h", prefix);
    CHECK_REL(h, name, (int64_t)T * E);
    snprintf(name, sizeof name, "%s_mu", prefix);
    CHECK_REL(mu, name, (int64_t)T * 80);
    snprintf(name, sizeof name, "%s_est0_out", prefix);
    CHECK_REL(est0, name, (int64_t)2 * 80 * T);
    snprintf(name, sizeof name, "%s_mel", prefix);
    CHECK_REL(mel, name, (int64_t)80 * frames);

    /* the plain entry point gives the same mel */
    float *mel2 = malloc(sizeof(float) * 80 * (size_t)T);
    int frames2 = -1;
    CHECK_OK(cosy_flow_inference(flow, in.tokens, n, in.prompt, in.P, in.feat.f32, in.emb.f32, streaming, finalize, mel2, &frames2));
    CHECK(frames2 == frames);
    CHECK(test_max_abs_diff(mel, mel2, 80L * frames) == 0.0);
    free(mel2);
    free(h);
    free(mu);
    free(est0);
    free(mel);
    free_inputs(&in);
}

/*
 * The flow calls of CosyVoice2Model.tts(stream=True) in stream_schedule.npy (token_offset,
 * tokens given, finalize, streaming) -> t2w_k_flow_mel; the last call runs with full attention
 * (official behaviour), and t2w_final_streaming_true_flow_mel is the chunk-causal variant.
 * Chunk-causality: each non-final call's frames reappear unchanged in the next call's output
 * (bit for bit, as in the reference, with the packed kernels: every value is computed in the
 * same order whatever the number of frames; within 1e-5 when BLAS picks kernels by size).
 */
static void test_stream_schedule(void)
{
    inputs in;
    load_inputs(&in);
    npy_array sched = load("stream_schedule");
    CHECK(sched.ndim == 2 && sched.shape[1] == 4);
    float *prev = NULL;
    int prev_frames = 0;
    for (int k = 0; k < sched.shape[0]; k++) {
        int n = (int)sched.i64[k * 4 + 1], finalize = (int)sched.i64[k * 4 + 2], streaming = (int)sched.i64[k * 4 + 3];
        float *mel = malloc(sizeof(float) * 80 * (size_t)2 * n);
        int frames = -1;
        CHECK_OK(cosy_flow_inference(flow, in.tokens, n, in.prompt, in.P, in.feat.f32, in.emb.f32, streaming, finalize, mel, &frames));
        char name[64];
        snprintf(name, sizeof name, "t2w_%d_flow_mel", k);
        CHECK_REL(mel, name, (int64_t)80 * frames);
        if (prev && streaming) {
            /* frames of the previous (chunk-aligned) call are reproduced */
            double d = 0;
            for (int c = 0; c < 80; c++) {
                double dc = test_max_abs_diff(prev + (size_t)c * prev_frames, mel + (size_t)c * frames, prev_frames);
                d = dc > d ? dc : d;
            }
            if (flow->fast) CHECK(d == 0.0);
            else CHECK(d <= 1e-5);
        }
        free(prev);
        prev = mel;
        prev_frames = frames;
    }
    free(prev);
    float *mel = malloc(sizeof(float) * 80 * (size_t)2 * in.n_all);
    int frames = -1;
    CHECK_OK(cosy_flow_inference(flow, in.tokens, in.n_all, in.prompt, in.P, in.feat.f32, in.emb.f32, 1, 1, mel, &frames));
    CHECK(frames == 2 * in.n_all);
    CHECK_REL(mel, "t2w_final_streaming_true_flow_mel", (int64_t)80 * frames);
    free(mel);
    npy_free(&sched);
    free_inputs(&in);
}

/* ---- kernels at chunk boundaries, against naive versions ---- */

/* masked softmax attention, one head at a time, in double */
static void naive_attention(const float *q, const float *k, const float *v, int Tq, int Tk, int heads, int d, int q_offset,
                            int chunk, float scale, float *out)
{
    const int W = heads * d;
    double *s = malloc(sizeof(double) * (size_t)Tk);
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < Tq; i++) {
            int limit = Tk;
            if (chunk > 0) {
                int l = ((q_offset + i) / chunk + 1) * chunk; /* subsequent_chunk_mask */
                limit = l < Tk ? l : Tk;
            }
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < limit; j++) {
                double acc = 0;
                for (int e = 0; e < d; e++) acc += (double)q[(size_t)i * W + h * d + e] * k[(size_t)j * W + h * d + e];
                s[j] = acc * scale;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < limit; j++) sum += s[j] = exp(s[j] - mx);
            for (int e = 0; e < d; e++) {
                double acc = 0;
                for (int j = 0; j < limit; j++) acc += s[j] / sum * v[(size_t)j * W + h * d + e];
                out[(size_t)i * W + h * d + e] = (float)acc;
            }
        }
    free(s);
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static void test_chunk_attention(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 1 << 22));
    flow_ctx c = {flow, model->pool, &arena};
    const int heads = 2, d = 8, W = heads * d;
    /* lengths around chunk multiples, chunks smaller and larger than the kernel's query block,
     * and queries that start mid-sequence (q_offset, as with cached history) */
    const int cases[][4] = {{23, 23, 0, 5}, {50, 50, 0, 25}, {51, 51, 0, 25}, {130, 130, 0, 50}, {130, 130, 0, 100},
                            {100, 100, 0, 0}, {20, 45, 25, 25}, {7, 57, 50, 25}, {64, 129, 65, 50}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int Tq = cases[ci][0], Tk = cases[ci][1], off = cases[ci][2], chunk = cases[ci][3];
        float *q = malloc(sizeof(float) * (size_t)Tq * W), *k = malloc(sizeof(float) * (size_t)Tk * W);
        float *v = malloc(sizeof(float) * (size_t)Tk * W), *o = malloc(sizeof(float) * (size_t)Tq * W);
        float *ref = malloc(sizeof(float) * (size_t)Tq * W);
        fill(q, (size_t)Tq * W, 1 + (unsigned)ci);
        fill(k, (size_t)Tk * W, 100 + (unsigned)ci);
        fill(v, (size_t)Tk * W, 200 + (unsigned)ci);
        CHECK_OK(flow_attention(&c, q, W, k, v, W, 1, Tq, Tk, heads, d, off, chunk, 0.5f, NULL, NULL, o, W));
        naive_attention(q, k, v, Tq, Tk, heads, d, off, chunk, 0.5f, ref);
        double err = test_max_abs_diff(o, ref, (long)Tq * W);
        if (err > 1e-5) fprintf(stderr, "attention case %zu: error %g\n", ci, err);
        CHECK(err <= 1e-5);
        free(q);
        free(k);
        free(v);
        free(o);
        free(ref);
    }
    CHECK(arena.used == 0);
    cosy_arena_free(&arena);
}

/* a causal convolution given the previous rows as history equals the same convolution over
 * the concatenated sequence (what a cached streaming mode relies on); look-ahead taps read the
 * `after` rows */
static void test_conv_history(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 1 << 22));
    flow_ctx c = {flow, model->pool, &arena};
    const int in = 6, out = 5, K = 4, T = 17, H = 3;
    float w[5 * 4 * 6], b[5];
    fill(w, sizeof w / 4, 7);
    fill(b, 5, 8);
    flow_conv cv;
    memset(&cv, 0, sizeof cv);
    cv.lin.w = w;
    cv.lin.b = b;
    cv.lin.in = K * in;
    cv.lin.out = out;
    cv.in = in;
    cv.out = out;
    cv.k = K;
    static float packed[32 * 4 * 6], packed_bias[32];
    if (cosy_gemm_f32_available()) {
        cosy_pack_f32_rows(packed, w, out, K * in, K * in);
        memset(packed_bias, 0, sizeof packed_bias);
        memcpy(packed_bias, b, sizeof b);
        cv.lin.packed = packed;
        cv.lin.packed_bias = packed_bias;
    }
    float x[(17 + 3 + 3) * 6], y_full[(17 + 3 + 3) * 5], y_part[17 * 5];
    fill(x, sizeof x / 4, 9);
    /* causal: frames [H, H + T) with the first H frames as history */
    CHECK_OK(flow_conv_forward(&c, &cv, x, 1, H + T, -(K - 1), NULL, 0, NULL, 0, y_full));
    CHECK_OK(flow_conv_forward(&c, &cv, x + H * in, 1, T, -(K - 1), x, H, NULL, 0, y_part));
    CHECK(test_max_abs_diff(y_full + H * out, y_part, T * out) == 0.0);
    /* look-ahead: frames [0, T) with the next 3 frames as context */
    CHECK_OK(flow_conv_forward(&c, &cv, x, 1, T + 3, 0, NULL, 0, NULL, 0, y_full));
    CHECK_OK(flow_conv_forward(&c, &cv, x, 1, T, 0, NULL, 0, x + T * in, 3, y_part));
    CHECK(test_max_abs_diff(y_full, y_part, T * out) == 0.0);
    /* and against a direct sum at one frame */
    double acc = b[2];
    for (int k = 0; k < K; k++)
        for (int i = 0; i < in; i++) acc += (double)w[(2 * K + k) * in + i] * x[(5 + k) * in + i];
    CHECK_NEAR(y_part[5 * out + 2], acc, 1e-5);
    cosy_arena_free(&arena);
}

/* the packed matrix product against a naive one: row counts around the 12-row kernel, column
 * counts around the 32-wide panels, bias, accumulation into the output */
static void test_linear(void)
{
    cosy_arena arena;
    CHECK_OK(cosy_arena_init(&arena, 1 << 20));
    flow_ctx c = {flow, model->pool, &arena};
    const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {12, 32, 16}, {13, 33, 17}, {100, 80, 256}, {97, 96, 64}, {250, 300, 40}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        const size_t panels = (size_t)(N + COSY_PANEL - 1) / COSY_PANEL;
        float *x = malloc(sizeof(float) * (size_t)M * K), *w = malloc(sizeof(float) * (size_t)N * K), *b = malloc(sizeof(float) * N);
        float *packed = malloc(sizeof(float) * panels * COSY_PANEL * K), *pb = calloc(panels * COSY_PANEL, sizeof(float));
        float *y = malloc(sizeof(float) * (size_t)M * N), *ref = malloc(sizeof(float) * (size_t)M * N);
        fill(x, (size_t)M * K, 11 + (unsigned)si);
        fill(w, (size_t)N * K, 22 + (unsigned)si);
        fill(b, (size_t)N, 33 + (unsigned)si);
        memcpy(pb, b, sizeof(float) * N);
        cosy_pack_f32_rows(packed, w, N, K, K);
        flow_linear l = {.w = w, .b = b, .packed = cosy_gemm_f32_available() ? packed : NULL, .packed_bias = cosy_gemm_f32_available() ? pb : NULL, .in = K, .out = N};
        for (int accumulate = 0; accumulate <= 1; accumulate++) {
            fill(y, (size_t)M * N, 44);
            memcpy(ref, y, sizeof(float) * (size_t)M * N);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = b[j];
                    for (int k = 0; k < K; k++) acc += (double)x[(size_t)i * K + k] * w[(size_t)j * K + k];
                    ref[(size_t)i * N + j] = (float)(acc + (accumulate ? ref[(size_t)i * N + j] : 0.0));
                }
            flow_linear_run(&c, &l, x, M, y, accumulate);
            double err = test_max_abs_diff(y, ref, (long)M * N);
            if (err > 1e-4) fprintf(stderr, "linear %dx%dx%d accumulate %d: error %g\n", M, N, K, accumulate, err);
            CHECK(err <= 1e-4);
        }
        /* the AMX bf16 product: exactly the bf16-rounded inputs multiplied, summed in f32 */
        if (cosy_gemm_bf16_level()) {
            uint16_t *amx = malloc(sizeof(uint16_t) * cosy_pack_bf16_elems(N, K));
            cosy_pack_bf16(amx, w, N, K, K);
            flow_linear la = l;
            la.tiles = amx;
            for (int accumulate = 0; accumulate <= 1; accumulate++) {
                fill(y, (size_t)M * N, 44);
                memcpy(ref, y, sizeof(float) * (size_t)M * N);
                double worst = 0, mag = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double acc = b[j];
                        for (int k = 0; k < K; k++) acc += (double)bf16r(x[(size_t)i * K + k]) * bf16r(w[(size_t)j * K + k]);
                        ref[(size_t)i * N + j] = (float)(acc + (accumulate ? ref[(size_t)i * N + j] : 0.0));
                        mag = fmax(mag, fabs(ref[(size_t)i * N + j]));
                    }
                flow_linear_run(&c, &la, x, M, y, accumulate);
                worst = test_max_abs_diff(y, ref, (long)M * N);
                if (worst > 1e-4 * (1 + mag)) fprintf(stderr, "AMX linear %dx%dx%d accumulate %d: error %g\n", M, N, K, accumulate, worst);
                CHECK(worst <= 1e-4 * (1 + mag));
            }
            free(amx);
        }
        free(x);
        free(w);
        free(b);
        free(packed);
        free(pb);
        free(y);
        free(ref);
    }
    cosy_arena_free(&arena);
}

/* the element-wise kernels (AVX-512 where available) against double-precision formulas, over
 * lengths that leave vector tails and values from the far negative to the overflow range */
static void test_math(void)
{
    const int n = 1000 + 7;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) x[i] = -30.0f + 60.0f * (float)i / (float)(n - 1) + (i % 3) * 1e-3f;
    x[0] = -100.0f;
    x[1] = 100.0f;
    x[2] = 0.0f;
    double e_gelu = 0, e_mish = 0, e_silu = 0, e_gelu_tanh = 0;
    memcpy(y, x, sizeof(float) * n);
    cosy_vec_gelu_tanh(y, (size_t)n);
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        double e = fabs(y[i] - ref) / (1.0 + fabs(ref));
        e_gelu_tanh = e > e_gelu_tanh ? e : e_gelu_tanh;
    }
    if (e_gelu_tanh > 5e-7) fprintf(stderr, "math errors: gelu_tanh %g\n", e_gelu_tanh);
    CHECK(e_gelu_tanh <= 5e-7);
    memcpy(y, x, sizeof(float) * n);
    cosy_vec_gelu(y, (size_t)n);
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        double e = fabs(y[i] - ref) / (1.0 + fabs(ref));
        e_gelu = e > e_gelu ? e : e_gelu;
    }
    memcpy(y, x, sizeof(float) * n);
    cosy_vec_mish(y, (size_t)n);
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = v * tanh(log1p(exp(v)));
        double e = fabs(y[i] - ref) / (1.0 + fabs(ref));
        e_mish = e > e_mish ? e : e_mish;
    }
    memcpy(y, x, sizeof(float) * n);
    cosy_vec_silu(y, (size_t)n);
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = v / (1.0 + exp(-v));
        double e = fabs(y[i] - ref) / (1.0 + fabs(ref));
        e_silu = e > e_silu ? e : e_silu;
    }
    if (e_gelu > 5e-7 || e_mish > 5e-7 || e_silu > 5e-7) fprintf(stderr, "math errors: gelu %g mish %g silu %g\n", e_gelu, e_mish, e_silu);
    CHECK(e_gelu <= 5e-7);
    CHECK(e_mish <= 5e-7);
    CHECK(e_silu <= 5e-7);

    /* softmax rows (unnormalised, with 1 / sum) and LayerNorm rows */
    const int rows = 3, len = 37;
    float s[3 * 40], inv[3];
    for (int i = 0; i < rows * 40; i++) s[i] = (float)((i * 7919) % 97) / 9.0f - 5.0f;
    float s0[3 * 40];
    memcpy(s0, s, sizeof s);
    cosy_vec_softmax_rows(s, rows, len, 40, inv);
    for (int r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0, err = 0;
        for (int j = 0; j < len; j++) mx = s0[r * 40 + j] > mx ? s0[r * 40 + j] : mx;
        for (int j = 0; j < len; j++) sum += exp(s0[r * 40 + j] - mx);
        for (int j = 0; j < len; j++) {
            double e = fabs(s[r * 40 + j] * inv[r] - exp(s0[r * 40 + j] - mx) / sum);
            err = e > err ? e : err;
        }
        CHECK(err <= 1e-7);
        CHECK(s[r * 40 + len] == s0[r * 40 + len]); /* past the row: untouched */
    }
    const int dim = 48;
    float w[48], b[48], in[2 * 48], out[2 * 48];
    for (int i = 0; i < dim; i++) {
        w[i] = 1.0f + 0.01f * i;
        b[i] = 0.1f * (i % 5);
        in[i] = (float)i * 0.3f - 2.0f;
        in[dim + i] = 100.0f + (float)(i % 7);
    }
    cosy_vec_layer_norm(out, in, 2, dim, w, b, 1e-5f);
    for (int r = 0; r < 2; r++) {
        double mean = 0, var = 0, err = 0;
        for (int i = 0; i < dim; i++) mean += in[r * dim + i];
        mean /= dim;
        for (int i = 0; i < dim; i++) var += (in[r * dim + i] - mean) * (in[r * dim + i] - mean);
        var /= dim;
        for (int i = 0; i < dim; i++) {
            double ref = (in[r * dim + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
            double e = fabs(out[r * dim + i] - ref);
            err = e > err ? e : err;
        }
        CHECK(err <= 2e-6);
    }
    free(x);
    free(y);
}

/* two sessions calling the shared flow state at once get the same mels as one alone (the noise
 * buffer grows under its lock while the other call may be reading) */
typedef struct {
    inputs *in;
    int n, streaming, finalize;
    float mel[80 * 2 * 200];
    int frames;
    cosy_status st;
} concurrent_call;

static void *concurrent_run(void *p)
{
    concurrent_call *cc = p;
    cc->st = cosy_flow_inference(flow, cc->in->tokens, cc->n, cc->in->prompt, cc->in->P, cc->in->feat.f32, cc->in->emb.f32, cc->streaming,
                                 cc->finalize, cc->mel, &cc->frames);
    return NULL;
}

static void test_concurrent(void)
{
    inputs in;
    load_inputs(&in);
    static concurrent_call calls[2];
    calls[0] = (concurrent_call){&in, 60, 0, 1, {0}, 0, COSY_OK};
    calls[1] = (concurrent_call){&in, 63, 1, 0, {0}, 0, COSY_OK};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, concurrent_run, &calls[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    CHECK(calls[0].st == COSY_OK && calls[1].st == COSY_OK);
    CHECK_REL(calls[0].mel, "flow_ns_mel", (int64_t)80 * calls[0].frames);
    CHECK_REL(calls[1].mel, "flow_sf_mel", (int64_t)80 * calls[1].frames);
    free_inputs(&in);
}

static void test_invalid(void)
{
    inputs in;
    load_inputs(&in);
    float mel[80 * 64];
    int frames;
    int32_t bad[4] = {1, 2, 6561, 3}, neg[4] = {1, -1, 2, 3}, ok[4] = {1, 2, 3, 4};
    CHECK_FAILS(cosy_flow_inference(flow, ok, 0, in.prompt, in.P, in.feat.f32, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "no speech tokens");
    CHECK_FAILS(cosy_flow_inference(flow, bad, 4, in.prompt, in.P, in.feat.f32, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "speech token 6561 at position 2 is outside [0, 6561)");
    CHECK_FAILS(cosy_flow_inference(flow, neg, 4, in.prompt, in.P, in.feat.f32, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "speech token -1 at position 1");
    int32_t bad_prompt[2] = {5, 7000};
    CHECK_FAILS(cosy_flow_inference(flow, ok, 4, bad_prompt, 2, in.feat.f32, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "prompt speech token 7000");
    CHECK_FAILS(cosy_flow_inference(flow, ok, 3, in.prompt, in.P, in.feat.f32, in.emb.f32, 1, 0, mel, &frames), COSY_ERR_INVALID_ARG,
                "look-ahead");
    CHECK_FAILS(cosy_flow_inference(flow, ok, 4, in.prompt, in.P, NULL, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "prompt tokens without");
    CHECK_FAILS(cosy_flow_inference(flow, ok, 4, in.prompt, in.P, in.feat.f32, NULL, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "speaker embedding");
    CHECK_FAILS(cosy_flow_inference(flow, ok, 4, in.prompt, in.P, in.feat.f32, in.emb.f32, 0, 1, NULL, &frames), COSY_ERR_INVALID_ARG,
                "output");
    CHECK_FAILS(cosy_flow_inference(NULL, ok, 4, in.prompt, in.P, in.feat.f32, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "flow");
    float nan_emb[192];
    memcpy(nan_emb, in.emb.f32, sizeof nan_emb);
    nan_emb[10] = NAN;
    CHECK_FAILS(cosy_flow_inference(flow, ok, 4, in.prompt, in.P, in.feat.f32, nan_emb, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "not finite");
    float *bad_feat = malloc(sizeof(float) * (size_t)in.feat.numel);
    memcpy(bad_feat, in.feat.f32, sizeof(float) * (size_t)in.feat.numel);
    bad_feat[80 * 3 + 5] = INFINITY;
    CHECK_FAILS(cosy_flow_inference(flow, ok, 4, in.prompt, in.P, bad_feat, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "prompt mel value 245 (frame 3) is not finite");
    free(bad_feat);
    /* longer than the reference's 300 s noise buffer: refused before any work */
    int n_long = 7600;
    int32_t *many = calloc((size_t)n_long, sizeof(int32_t));
    CHECK_FAILS(cosy_flow_inference(flow, many, n_long, in.prompt, in.P, in.feat.f32, in.emb.f32, 0, 1, mel, &frames), COSY_ERR_INVALID_ARG,
                "noise buffer");
    free(many);
    CHECK_FAILS(cosy_flow_estimator(flow, mel, mel, mel, mel, mel, 0, 4, 0, mel), COSY_ERR_INVALID_ARG, "rows");
    /* no prompt at all is valid */
    CHECK_OK(cosy_flow_inference(flow, ok, 4, NULL, 0, NULL, in.emb.f32, 0, 1, mel, &frames));
    CHECK(frames == 8);
    free_inputs(&in);
}

int main(void)
{
    const char *gguf = test_tmp("flow-tiny.gguf");
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), gguf, NULL));
    const cosy_model_params exact = test_f32_params();
    CHECK_OK(cosy_model_load(gguf, &exact, &model));
    if (!model) return test_finish("test_flow");
    CHECK_OK(cosy_flow_get(model, &flow));
    cosy_flow *again = NULL;
    CHECK_OK(cosy_flow_get(model, &again));
    CHECK(again == flow);
    if (flow) {
        test_t_schedule();
        test_estimator("flow_ns", 0);
        test_estimator("flow_sf", 1);
        test_full_call("flow_ns", 60, 0, 1);
        test_full_call("flow_sf", 63, 1, 0);
        test_stream_schedule();
        test_chunk_attention();
        test_conv_history();
        test_linear();
        test_math();
        test_invalid();
        test_concurrent();
    }
    cosy_model_free(model);
    model = NULL;
    flow = NULL;
    /* every lower CPU path this machine has (the f32 flow picks its kernels at load: AVX-512 or AVX2
     * packed panels, else BLAS), against the same fixtures; the paths it lacks are reported SKIP */
    const cosy_cpu_level_t best = cosy_cpu_level(), levels[] = {COSY_CPU_PORTABLE, COSY_CPU_AVX2, COSY_CPU_AVX512};
    for (int l = 0; l < 3; l++) {
        if (levels[l] >= best) {
            if (levels[l] > best) printf("SKIP flow on %s: this CPU lacks it\n", cosy_cpu_level_name(levels[l]));
            continue;
        }
        CHECK(cosy_cpu_cap(levels[l]) == levels[l]);
        CHECK_OK(cosy_model_load(gguf, &exact, &model));
        if (model) CHECK_OK(cosy_flow_get(model, &flow));
        if (flow) {
            printf("flow on %s (%s kernels):\n", cosy_cpu_level_name(levels[l]), flow->fast ? "packed" : "BLAS");
            test_estimator("flow_ns", 0);
            test_estimator("flow_sf", 1);
            test_full_call("flow_ns", 60, 0, 1);
            test_full_call("flow_sf", 63, 1, 0);
        }
        cosy_model_free(model);
        model = NULL;
        flow = NULL;
        cosy_cpu_reset();
    }
    remove(gguf);
    return test_finish("test_flow");
}
