/*
 * test_cv3_flow.c — CosyVoice3's flow (CausalMaskedDiffWithDiT) beyond the fixture cases of
 * `cosy golden` (golden_cv3_tiny_implemented): on the cv3-tiny model,
 *   - the cached chunk-causal stream (cv3_stream.c, through cosy_flow_stream_*) equals the stateless
 *     recomputation cosy_flow_inference(tokens so far, streaming=1, finalize)[2 offset:] on every
 *     call, for the official token2wav schedule and for uneven calls that end inside chunks,
 *     re-read earlier frames, or add one token at a time;
 *   - streams refuse what they cannot do (tokens that do not extend the sequence, calls after the
 *     final one, a window);
 *   - the stream reproduces the official chunk-causal flow mel of CosyVoice3Model.tts(stream=True) on
 *     the fixture's tokens (t2w_{0,1,2}_flow_mel; the chunk-causal final call
 *     t2w_final_streaming_true_flow_mel; the official full-attention final call t2w_3_flow_mel through
 *     cosy_flow_inference) within the fixtures' tolerance;
 *   - the bf16 mode (products in bf16, where the CPU has them) stays within a measured bound of f32;
 *     its stream keeps the keys/values in bf16 (half the bytes of f32 pages) and still equals the
 *     stateless bf16 flow on every call, on each bf16 CPU path (AVX512-BF16, AMX).
 */
#include "test.h"
#include "core/cpu.h"
#include "io/npy.h"
#include "model/flow/flow.h"
#include "model/flow/flow_stream.h"
#include "model/model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PMAX 64    /* prompt tokens at most */
#define N 190      /* speech tokens */
#define MELS 80

static int P = 20; /* prompt tokens of the current test */
static int32_t prompt[PMAX], speech[N];
static float feat[2 * PMAX * MELS], embedding[192];

static void make_inputs(void)
{
    uint32_t r = 12345;
    for (int i = 0; i < PMAX; i++) prompt[i] = (int32_t)((r = r * 1664525u + 1013904223u) >> 8) % 6561;
    for (int i = 0; i < N; i++) speech[i] = (int32_t)((r = r * 1664525u + 1013904223u) >> 8) % 6561;
    for (int i = 0; i < 2 * PMAX * MELS; i++) feat[i] = -6.0f + 5.0f * (float)(((r = r * 1664525u + 1013904223u) >> 8) % 10000) / 10000.0f;
    for (int i = 0; i < 192; i++) embedding[i] = (float)(((r = r * 1664525u + 1013904223u) >> 8) % 2000) / 1000.0f - 1.0f;
}

/* max |a - b| over n values */
static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* one stream call (n tokens, frames from 2 offset) against the stateless recomputation */
static double stream_call(cosy_flow *flow, cosy_flow_stream *s, int n, int offset, int finalize)
{
    float *a = malloc(sizeof(float) * MELS * 2 * (PMAX + N)), *b = malloc(sizeof(float) * MELS * 2 * (PMAX + N));
    int fa = -1, fb = -1;
    double err = INFINITY;
    CHECK_OK(cosy_flow_stream_step(s, speech, n, offset, finalize, a, &fa));
    CHECK_OK(cosy_flow_inference(flow, speech, n, prompt, P, feat, embedding, 1, finalize, b, &fb));
    const int skip = 2 * offset;
    CHECK(fa == fb - skip);
    if (fa == fb - skip && fa > 0) {
        /* b holds [80][fb]; the stream's frames are its columns skip.. */
        err = 0;
        for (int m = 0; m < MELS; m++) {
            double e = max_diff(a + (size_t)m * fa, b + (size_t)m * fb + skip, (size_t)fa);
            if (!(e <= err)) err = e;
        }
    }
    free(a);
    free(b);
    return err;
}

#define STREAM_TOL 1e-5 /* the same f32 computation in a different row grouping */

/* calls[i] = {tokens, offset, finalize}; max_chunks: the prompt state's limit (-1: all it can) */
static void test_stream_schedule(cosy_flow *flow, const char *what, const int (*calls)[3], int n_calls, int max_chunks)
{
    cosy_flow_prompt *p = NULL;
    cosy_flow_stream *s = NULL;
    CHECK_OK(cosy_flow_prompt_create_limited(flow, prompt, P, feat, embedding, max_chunks, &p));
    const int per_chunk = 25, expect = max_chunks >= 0 && max_chunks < (P - 3) / per_chunk ? max_chunks : (P - 3) / per_chunk;
    CHECK(cosy_flow_prompt_chunks(p) == expect);
    CHECK_OK(cosy_flow_stream_create(flow, p, &s));
    if (!s) return;
    double worst = 0;
    for (int i = 0; i < n_calls; i++) {
        double e = stream_call(flow, s, calls[i][0], calls[i][1], calls[i][2]);
        if (!(e <= worst)) worst = e;
    }
    printf("  %-44s P %d (%d prompt chunks cached): max |stream - recomputation| %.3g over %d calls, %d chunks final, %zu bytes\n", what,
           P, cosy_flow_prompt_chunks(p), worst, n_calls, cosy_flow_stream_chunks(s), cosy_flow_stream_bytes(s));
    CHECK(worst <= STREAM_TOL);
    cosy_flow_stream_free(s);
    cosy_flow_prompt_free(p);
}

static void test_stream_refusals(cosy_flow *flow)
{
    cosy_flow_prompt *p = NULL;
    cosy_flow_stream *s = NULL;
    CHECK_OK(cosy_flow_prompt_create(flow, prompt, P, feat, embedding, &p));
    CHECK_OK(cosy_flow_stream_create(flow, p, &s));
    if (!s) return;
    float *mel = malloc(sizeof(float) * MELS * 2 * (PMAX + N));
    int frames;
    CHECK(cosy_flow_stream_set_window(s, 100) != COSY_OK);
    CHECK_OK(cosy_flow_stream_step(s, speech, 40, 0, 0, mel, &frames));
    int32_t changed[N];
    memcpy(changed, speech, sizeof changed);
    changed[10] = (changed[10] + 1) % 6561;
    CHECK(cosy_flow_stream_step(s, changed, 60, 0, 0, mel, &frames) != COSY_OK);
    CHECK(cosy_flow_stream_step(s, speech, 39, 0, 0, mel, &frames) != COSY_OK);
    CHECK(cosy_flow_stream_step(s, speech, 3, 0, 0, mel, &frames) != COSY_OK);
    CHECK(cosy_flow_stream_step(s, speech, 60, 58, 0, mel, &frames) != COSY_OK); /* offset past the real tokens */
    /* the refused calls changed nothing */
    CHECK(stream_call(flow, s, 60, 37, 1) <= STREAM_TOL);
    CHECK(cosy_flow_stream_step(s, speech, 70, 0, 1, mel, &frames) != COSY_OK); /* after the final call */
    free(mel);
    cosy_flow_stream_free(s);
    cosy_flow_prompt_free(p);
}

/* The model at gguf with its flow in bf16 (the other networks f32); NULL (and *m16 NULL or to free) on failure */
static cosy_flow *load_bf16_flow(const char *gguf, cosy_model **m16)
{
    cosy_model_params mp = test_f32_params();
    mp.flow_dtype = COSY_DTYPE_BF16;
    cosy_flow *flow = NULL;
    *m16 = NULL;
    CHECK_OK(cosy_model_load(gguf, &mp, m16));
    if (*m16) CHECK_OK(cosy_flow_get(*m16, &flow));
    return flow;
}

/* the bf16 mode against f32 on one call: the deviation is measured and bounded (not a parity claim) */
static void test_bf16(const char *gguf, cosy_flow *f32_flow)
{
    if (cosy_cpu_level() < COSY_CPU_AVX512BF16) {
        printf("  SKIP bf16 flow: this CPU lacks AVX512-BF16\n");
        return;
    }
    cosy_model *m16 = NULL;
    cosy_flow *flow = load_bf16_flow(gguf, &m16);
    if (!flow) {
        cosy_model_free(m16);
        return;
    }
    CHECK(cosy_flow_dtype(flow) == COSY_DTYPE_BF16);
    float *a = malloc(sizeof(float) * MELS * 2 * (P + N)), *b = malloc(sizeof(float) * MELS * 2 * (P + N));
    int fa = 0, fb = 0;
    CHECK_OK(cosy_flow_inference(flow, speech, 100, prompt, P, feat, embedding, 1, 1, a, &fa));
    CHECK_OK(cosy_flow_inference(f32_flow, speech, 100, prompt, P, feat, embedding, 1, 1, b, &fb));
    CHECK(fa == fb && fa == 200);
    double err = max_diff(a, b, (size_t)MELS * fa), peak = 0;
    for (size_t i = 0; i < (size_t)MELS * fb; i++) peak = fabs(b[i]) > peak ? fabs(b[i]) : peak;
    printf("  bf16 vs f32 (100 tokens, final): max abs %.3g, %.3g of the largest value %.3g\n", err, err / peak, peak);
    CHECK(err <= 0.02 * peak); /* bound on the tiny random model */
    free(a);
    free(b);
    cosy_model_free(m16);
}

/* calls through one stream of `flow`: returns its key/value bytes (0 on failure), the worst |stream -
 * stateless| over the calls in *worst, the prompt's cached chunks in *prompt_chunks, and in mel the
 * stateless mel [80][*frames] of the last call (which the stream matched within *worst) */
static size_t stream_all(cosy_flow *flow, const int (*calls)[3], int n_calls, float *mel, int *frames, double *worst, int *prompt_chunks)
{
    cosy_flow_prompt *p = NULL;
    cosy_flow_stream *s = NULL;
    CHECK_OK(cosy_flow_prompt_create(flow, prompt, P, feat, embedding, &p));
    if (p) CHECK_OK(cosy_flow_stream_create(flow, p, &s));
    size_t bytes = 0;
    *worst = 0;
    if (s) {
        for (int i = 0; i < n_calls; i++) {
            double e = stream_call(flow, s, calls[i][0], calls[i][1], calls[i][2]);
            if (!(e <= *worst)) *worst = e;
        }
        bytes = cosy_flow_stream_kv_bytes(s);
        *prompt_chunks = cosy_flow_prompt_chunks(p);
        CHECK_OK(cosy_flow_inference(flow, speech, calls[n_calls - 1][0], prompt, P, feat, embedding, 1, 1, mel, frames));
    }
    cosy_flow_stream_free(s);
    cosy_flow_prompt_free(p);
    return bytes;
}

/* The bf16 mode's stream on one CPU path: its pages hold the keys/values in bf16 (exactly half their
 * f32 bytes: the rest of a page, the conv pos-emb inputs and the mel, stays f32), and it still equals the
 * stateless bf16 flow on every call, because that flow's attention rounds K and V to bf16 the same way. */
static void test_bf16_stream_level(const char *gguf, cosy_flow *f32_flow, cosy_cpu_level_t level, const int (*calls)[3], int n_calls)
{
    cosy_cpu_cap(level);
    cosy_model *m16 = NULL;
    cosy_flow *flow = load_bf16_flow(gguf, &m16);
    if (!flow) {
        cosy_model_free(m16);
        cosy_cpu_reset();
        return;
    }
    CHECK(cosy_flow_dtype(flow) == COSY_DTYPE_BF16);
    const cosy_hparams *hp = &m16->hp;
    const size_t kv_elems = (size_t)hp->cfm_steps * hp->dit_depth * 2 * 2 * hp->est_static_chunk * hp->dit_heads * hp->dit_dim_head;
    float *a = malloc(sizeof(float) * MELS * 2 * (PMAX + N)), *b = malloc(sizeof(float) * MELS * 2 * (PMAX + N));
    int fa = 0, fb = 0, cached16 = -1, cached32 = -2;
    double worst16 = INFINITY, worst32 = INFINITY;
    const size_t bytes16 = stream_all(flow, calls, n_calls, a, &fa, &worst16, &cached16);
    const size_t bytes32 = stream_all(f32_flow, calls, n_calls, b, &fb, &worst32, &cached32);
    /* the stream's own pages: every chunk its frames reach, less the prompt's */
    const int chunk = hp->est_static_chunk, pages16 = (hp->token_mel_ratio * (P + calls[n_calls - 1][0]) + chunk - 1) / chunk - cached16;
    CHECK(fa == fb && fa > 0 && cached16 == cached32 && pages16 > 0);
    double err = fa == fb ? max_diff(a, b, (size_t)MELS * fa) : INFINITY, peak = 0;
    for (size_t i = 0; fa == fb && i < (size_t)MELS * fb; i++) peak = fabs(b[i]) > peak ? fabs(b[i]) : peak;
    const size_t saved = kv_elems * (sizeof(float) - sizeof(uint16_t)) * (size_t)pages16;
    printf("  bf16 stream on %s, %d calls: max |stream - stateless| %.3g (f32: %.3g); its mel vs f32 max abs %.3g (%.3g of the largest "
           "value); cache %zu bytes vs %zu in f32 (%d pages of %zu keys/values: %zu bytes saved, expected %zu)\n",
           cosy_cpu_level_name(level), n_calls, worst16, worst32, err, err / peak, bytes16, bytes32, pages16, kv_elems, bytes32 - bytes16,
           saved);
    CHECK(worst16 <= STREAM_TOL);
    CHECK(bytes32 - bytes16 == saved); /* every key/value of the stream's own pages in 2 bytes instead of 4 */
    CHECK(err <= 0.02 * peak);         /* test_bf16's bound on this model */
    free(a);
    free(b);
    cosy_model_free(m16);
    cosy_cpu_reset();
}

static void test_bf16_stream(const char *gguf, cosy_flow *f32_flow, const int (*calls)[3], int n_calls)
{
    const cosy_cpu_level_t levels[] = {COSY_CPU_AVX512BF16, COSY_CPU_AMX};
    for (int i = 0; i < 2; i++) {
        if (cosy_cpu_level() < levels[i]) printf("  SKIP bf16 stream on %s: this CPU lacks it\n", cosy_cpu_level_name(levels[i]));
        else test_bf16_stream_level(gguf, f32_flow, levels[i], calls, n_calls);
    }
}

/* The fixture's official stream (stream_schedule: (0, 33), (30, 83), (80, 183), final (180, 190)) through
 * one cached stream; each call's mel from frame 0 after the prompt against the reference's flow output. */
static void test_official_mel(cosy_flow *flow)
{
    npy_array tok, ptok, pf, emb;
    memset(&tok, 0, sizeof tok);
    memset(&ptok, 0, sizeof ptok);
    memset(&pf, 0, sizeof pf);
    memset(&emb, 0, sizeof emb);
    CHECK_OK(npy_load_int(test_data("cv3-tiny/golden/speech_token.npy"), &tok));
    CHECK_OK(npy_load_int(test_data("cv3-tiny/golden/prompt_speech_token.npy"), &ptok));
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/prompt_feat.npy"), &pf));
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/embedding.npy"), &emb));
    if (tok.numel < 190 || ptok.numel > 64 || pf.numel != ptok.numel * 2 * MELS || emb.numel != 192) {
        CHECK(0);
        return;
    }
    int32_t t[190], pt[64];
    for (int i = 0; i < 190; i++) t[i] = (int32_t)tok.i64[i];
    for (int i = 0; i < ptok.numel; i++) pt[i] = (int32_t)ptok.i64[i];
    cosy_flow_prompt *p = NULL;
    cosy_flow_stream *s = NULL;
    CHECK_OK(cosy_flow_prompt_create(flow, pt, (int)ptok.numel, pf.f32, emb.f32, &p));
    CHECK_OK(cosy_flow_stream_create(flow, p, &s));
    static const struct {
        int n, finalize;
        const char *ref;
    } calls[] = {{33, 0, "cv3-tiny/golden/t2w_0_flow_mel.npy"},
                 {83, 0, "cv3-tiny/golden/t2w_1_flow_mel.npy"},
                 {183, 0, "cv3-tiny/golden/t2w_2_flow_mel.npy"},
                 {190, 1, "cv3-tiny/golden/t2w_final_streaming_true_flow_mel.npy"}};
    float *mel = malloc(sizeof(float) * MELS * 2 * 190);
    for (int i = 0; i < 4 && s; i++) {
        npy_array ref;
        memset(&ref, 0, sizeof ref);
        int frames = 0;
        CHECK_OK(cosy_flow_stream_step(s, t, calls[i].n, 0, calls[i].finalize, mel, &frames));
        CHECK_OK(npy_load(test_data(calls[i].ref), &ref));
        CHECK(ref.numel == (int64_t)MELS * frames);
        if (ref.numel == (int64_t)MELS * frames) {
            double peak = 0, err = max_diff(mel, ref.f32, (size_t)ref.numel);
            for (int64_t j = 0; j < ref.numel; j++) peak = fabs(ref.f32[j]) > peak ? fabs(ref.f32[j]) : peak;
            printf("  official stream call %d (%3d tokens%s): max abs %.3g, %.3g of the largest value (tolerance 1e-4)\n", i, calls[i].n,
                   calls[i].finalize ? ", final, chunk-causal" : "", err, err / peak);
            CHECK(err <= 1e-4 * peak);
        }
        npy_free(&ref);
    }
    /* the official final call runs with full attention (streaming=False): stateless only */
    npy_array ref;
    memset(&ref, 0, sizeof ref);
    int frames = 0;
    CHECK_OK(cosy_flow_inference(flow, t, 190, pt, (int)ptok.numel, pf.f32, emb.f32, 0, 1, mel, &frames));
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/t2w_3_flow_mel.npy"), &ref));
    CHECK(ref.numel == (int64_t)MELS * frames);
    if (ref.numel == (int64_t)MELS * frames) {
        double peak = 0, err = max_diff(mel, ref.f32, (size_t)ref.numel);
        for (int64_t j = 0; j < ref.numel; j++) peak = fabs(ref.f32[j]) > peak ? fabs(ref.f32[j]) : peak;
        printf("  official final call (190 tokens, full attention): max abs %.3g, %.3g of the largest value (tolerance 1e-4)\n", err,
               err / peak);
        CHECK(err <= 1e-4 * peak);
    }
    npy_free(&ref);
    free(mel);
    cosy_flow_stream_free(s);
    cosy_flow_prompt_free(p);
    npy_free(&tok);
    npy_free(&ptok);
    npy_free(&pf);
    npy_free(&emb);
}

int main(void)
{
    const char *gguf = test_tmp("cv3-flow-tiny.gguf");
    CHECK_OK(cosy_convert(test_data("cv3-tiny/model"), gguf, NULL));
    const cosy_model_params exact = test_f32_params();
    cosy_model *model = NULL;
    CHECK_OK(cosy_model_load(gguf, &exact, &model));
    cosy_flow *flow = NULL;
    if (model) CHECK_OK(cosy_flow_get(model, &flow));
    if (!flow) return test_finish("test_cv3_flow");
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_inputs();

    /* CosyVoice3Model.tts(stream=True) for P = 20, N = 190 (cosyvoice3.md §8), its last call chunk-causal */
    static const int official[][3] = {{33, 0, 0}, {83, 30, 0}, {183, 80, 0}, {190, 180, 1}};
    test_stream_schedule(flow, "official schedule", official, 4, -1);
    /* calls ending inside chunks, re-reading earlier frames, one token at a time, a final after all */
    static const int uneven[][3] = {{4, 0, 0}, {5, 1, 0}, {6, 2, 0}, {17, 2, 0}, {40, 10, 0}, {41, 37, 0},
                                    {41, 0, 0}, {100, 38, 0}, {160, 97, 0}, {161, 157, 0}, {190, 150, 1}};
    test_stream_schedule(flow, "uneven calls", uneven, 11, -1);
    static const int single[][3] = {{190, 0, 1}};
    test_stream_schedule(flow, "one final call", single, 1, -1);
    /* a prompt of 60 tokens: its first two chunks computed once in the prompt state, or not at all */
    P = 60;
    static const int padded[][3] = {{18, 0, 0}, {68, 15, 0}, {168, 65, 0}, {190, 165, 1}};
    test_stream_schedule(flow, "official schedule, prompt chunks cached", padded, 4, -1);
    test_stream_schedule(flow, "uneven calls, prompt chunks cached", uneven, 11, -1);
    test_stream_schedule(flow, "uneven calls, one prompt chunk cached", uneven, 11, 1);
    test_stream_schedule(flow, "uneven calls, no prompt chunk cached", uneven, 11, 0);
    P = 20;
    test_stream_refusals(flow);
    test_official_mel(flow);
    test_bf16(gguf, flow);
    test_bf16_stream(gguf, flow, uneven, 11);
    cosy_model_free(model);
    return test_finish("test_cv3_flow");
}
