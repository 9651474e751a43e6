/*
 * flow.c — the flow module: its state (weights, the CFM noise buffer), the CausalConditionalCFM
 * Euler solver and CausalMaskedDiffWithXvec.inference (cosyvoice/flow/flow.py,
 * cosyvoice/flow/flow_matching.py) on top of the encoder (cv2_encoder.c) and the estimator
 * (cv2_unet.c); the layers are loaded through flow_load.h.
 *
 * Reference behaviour reproduced here:
 *  - spks = spk_embed_affine_layer(F.normalize(embedding)); tokens = prompt ++ speech tokens;
 *    the last pre_lookahead_len tokens of a non-final call are look-ahead context only.
 *  - the noise is CausalConditionalCFM.rand_noise = (seed 0) torch.randn([1, 80, 15000]),
 *    z = rand_noise[:, :, :T]: the same frames get the same noise on every call.
 *  - t_span = 1 - cos(linspace(0, 1, steps + 1) * pi / 2); x += dt * v with t accumulated in
 *    float32 (t = t + dt; dt = t_span[k + 1] - t), as ConditionalCFM.solve_euler does.
 *  - classifier-free guidance with a batch of two: row 1 has mu, spks and cond zeroed;
 *    v = (1 + cfg_rate) v0 - cfg_rate v1.
 *  - cond = the prompt mel in the first 2P frames, zeros after; the output drops those frames.
 */
#include "model/flow/flow.h"
#include "core/clock.h"
#include "model/flow/flow_internal.h"
#include "model/flow/flow_load.h"
#include "core/error.h"
#include "core/file.h"
#include "core/attention.h"
#include "core/ops.h"
#include "core/torch_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* CausalConditionalCFM draws 50 * 300 frames: 300 s of mel */
#define NOISE_FRAMES 15000
#define NOISE_SEED 0
#define FLOW_MAX_STEPS 64
#define FLOW_MAX_SPK_DIM 1024

/* ---------------------------------------------------------------- key/value blocks */

/* A stream's key/value block (flow_stream.c): every Euler step, layer, CFG row and head of 32 frames,
 * ~73 MB in bf16 at the CosyVoice2-0.5B size. Mapped with MAP_POPULATE, so the kernel maps it in one
 * go instead of taking ~18,000 separate first-touch faults while the keys are written; and kept in a
 * pool when a stream ends, so the next stream reuses memory that is already mapped (clearing fresh
 * pages was ~7% of the streaming flow's time). The mapping's size sits in its first 64 bytes. */
#define KV_HEADER 64
#define KV_POOL_BYTES ((size_t)2 << 30) /* blocks kept for reuse, at most (a 10 s window holds ~1.2 GB in bf16) */

size_t flow_kv_block_bytes(const cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    const size_t slab = cosy_kv_slab_elems(hp->est_head_dim, f->bf16) * (f->bf16 ? sizeof(uint16_t) : sizeof(float));
    return slab * (size_t)hp->cfm_steps * (size_t)cv2_unet_layers(f) * 2 * (size_t)hp->est_heads;
}

void *flow_kv_block_get(cosy_flow *f)
{
    pthread_mutex_lock(&f->kv_lock);
    void *mem = f->n_kv_free > 0 ? f->kv_free[--f->n_kv_free] : NULL;
    pthread_mutex_unlock(&f->kv_lock);
    if (mem) return mem;
    const size_t bytes = flow_kv_block_bytes(f) + KV_HEADER;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *(size_t *)p = bytes;
    return (char *)p + KV_HEADER;
}

void flow_kv_block_release(cosy_flow *f, void *mem)
{
    if (!mem) return;
    pthread_mutex_lock(&f->kv_lock);
    const int keep = (int)(KV_POOL_BYTES / flow_kv_block_bytes(f));
    if (f->n_kv_free < keep && f->n_kv_free < f->cap_kv_free) {
        f->kv_free[f->n_kv_free++] = mem;
        mem = NULL;
    }
    pthread_mutex_unlock(&f->kv_lock);
    if (mem) {
        char *base = (char *)mem - KV_HEADER;
        munmap(base, *(size_t *)base);
    }
}

static void flow_destroy(void *state)
{
    cosy_flow *f = state;
    if (!f) return;
    flow_voice_cache_clear(f); /* before the block pool: the voices give their blocks back to it */
    pthread_mutex_destroy(&f->voice_lock);
    for (int i = 0; i < f->n_kv_free; i++) {
        char *base = (char *)f->kv_free[i] - KV_HEADER;
        munmap(base, *(size_t *)base);
    }
    free(f->kv_free);
    pthread_mutex_destroy(&f->kv_lock);
    for (int i = 0; i < f->n_old_noise; i++) cosy_aligned_free(f->old_noise[i]);
    free(f->old_noise);
    cosy_aligned_free(f->noise);
    pthread_mutex_destroy(&f->noise_lock);
    free(f);
}

static cosy_status flow_create(cosy_model *m, void **out)
{
    cosy_flow *f = calloc(1, sizeof *f);
    if (!f) return cosy_error(COSY_ERR_NOMEM, "flow: out of memory");
    pthread_mutex_init(&f->noise_lock, NULL);
    pthread_mutex_init(&f->kv_lock, NULL);
    pthread_mutex_init(&f->voice_lock, NULL);
    f->voice_budget = (size_t)(m->params.voice_cache_mb > 0 ? m->params.voice_cache_mb : 0) << 20;
    f->model = m;
    f->hp = &m->hp;
    f->pool = m->pool;
    f->fast = cosy_gemm_f32_available();
    f->bf16 = m->params.flow_dtype == COSY_DTYPE_BF16 && cosy_gemm_bf16_level() != 0;
    const cosy_hparams *hp = f->hp;
    cosy_status st = COSY_OK;
    const int v3 = hp->family == COSY_FAMILY_COSYVOICE3;
    /* CosyVoice3 repeats each token's frame token_mel_ratio times (repeat_interleave) instead of Upsample1D */
    if (hp->flow_output_size != 80 || (!v3 && hp->token_mel_ratio != hp->enc_up_stride) || hp->token_mel_ratio < 1 || hp->cfm_steps < 1 ||
        hp->cfm_steps > FLOW_MAX_STEPS || hp->spk_embed_dim > FLOW_MAX_SPK_DIM)
        st = cosy_error(COSY_ERR_UNSUPPORTED, "flow: %d mels, token_mel_ratio %d, upsampling x%d, %d steps, a %d-d speaker vector are not "
                        "supported (CosyVoice2: 80, 2, x2, 1..%d steps, <= %d)", hp->flow_output_size, hp->token_mel_ratio, hp->enc_up_stride,
                        hp->cfm_steps, hp->spk_embed_dim, FLOW_MAX_STEPS, FLOW_MAX_SPK_DIM);
    if (st == COSY_OK) st = cosy_model_f32(m, "flow.input_embedding.weight", &f->input_embedding);
    if (st == COSY_OK) st = flow_load_linear(f, &f->spk_affine, 1, hp->flow_output_size, hp->spk_embed_dim, "flow.spk_embed_affine_layer");
    if (st == COSY_OK && v3) st = cv3_dit_load(f);
    if (st == COSY_OK && !v3) st = cv2_encoder_load(f);
    if (st == COSY_OK && !v3) st = cv2_unet_load(f);
    if (st == COSY_OK && !v3) { /* the key/value blocks of the CosyVoice2 streams */
        f->cap_kv_free = (int)(KV_POOL_BYTES / flow_kv_block_bytes(f)) + 1;
        f->kv_free = calloc((size_t)f->cap_kv_free, sizeof *f->kv_free);
        if (!f->kv_free) st = cosy_error(COSY_ERR_NOMEM, "flow: out of memory");
    }
    if (st != COSY_OK) {
        flow_destroy(f);
        return st;
    }
    *out = f;
    return COSY_OK;
}

static const cosy_module_def flow_module = {"flow", flow_create, flow_destroy};

cosy_dtype cosy_flow_dtype(const cosy_flow *flow) { return flow->bf16 ? COSY_DTYPE_BF16 : COSY_DTYPE_F32; }

cosy_status cosy_flow_get(cosy_model *model, cosy_flow **out)
{
    if (!model || !out) return cosy_error(COSY_ERR_INVALID_ARG, "flow: no model");
    void *state;
    COSY_TRY(cosy_model_module(model, &flow_module, &state));
    *out = state;
    return COSY_OK;
}

/* ---------------------------------------------------------------- noise */

/*
 * rand_noise[0, c, :frames] for all 80 channels, time-major. torch.randn fills the whole
 * [1, 80, 15000] buffer from one generator stream; only the blocks covering the first `cols`
 * frames of each channel are transformed, the rest of the stream is skipped. The buffer grows
 * (doubling) when a longer utterance needs more frames; old buffers stay alive.
 */
cosy_status flow_noise(cosy_flow *f, int frames, const float **out)
{
    const int M = f->hp->flow_output_size;
    if (frames > NOISE_FRAMES)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow: %d mel frames exceed the reference's noise buffer of %d frames (300 s)",
                          frames, NOISE_FRAMES);
    cosy_status st = COSY_OK;
    pthread_mutex_lock(&f->noise_lock);
    if (f->noise_cols < frames) {
        int cols = f->noise_cols * 2 > frames ? f->noise_cols * 2 : frames;
        if (cols < 512) cols = 512;
        if (cols > NOISE_FRAMES) cols = NOISE_FRAMES;
        float *channel_major = cosy_aligned_alloc(sizeof(float) * (size_t)M * cols);
        float *noise = cosy_aligned_alloc(sizeof(float) * (size_t)M * cols);
        int64_t *ranges = malloc(sizeof(int64_t) * 2 * (size_t)M);
        float **old = realloc(f->old_noise, sizeof(float *) * (size_t)(f->n_old_noise + 1));
        if (old) f->old_noise = old;
        if (!channel_major || !noise || !ranges || !old) {
            st = cosy_error(COSY_ERR_NOMEM, "flow: out of memory for the noise buffer");
        } else {
            for (int ch = 0; ch < M; ch++) {
                ranges[2 * ch] = (int64_t)ch * NOISE_FRAMES;
                ranges[2 * ch + 1] = (int64_t)ch * NOISE_FRAMES + cols;
            }
            cosy_torch_rng g;
            cosy_torch_rng_seed(&g, NOISE_SEED);
            st = cosy_torch_randn_ranges(&g, (int64_t)M * NOISE_FRAMES, ranges, M, channel_major);
            if (st == COSY_OK) {
                cosy_transpose(noise, channel_major, M, cols);
                if (f->noise) f->old_noise[f->n_old_noise++] = f->noise;
                f->noise = noise;
                f->noise_cols = cols;
                noise = NULL;
            }
        }
        cosy_aligned_free(channel_major);
        cosy_aligned_free(noise);
        free(ranges);
    }
    if (st == COSY_OK) *out = f->noise;
    pthread_mutex_unlock(&f->noise_lock);
    return st;
}

/* ---------------------------------------------------------------- CFM */

void cosy_flow_t_schedule(const cosy_flow *flow, float *t_out, float *dt_out)
{
    const int n = flow->hp->cfm_steps;
    /* torch.linspace(0, 1, n + 1) in float32: the first half counts up from 0, the second down from 1 */
    float span[FLOW_MAX_STEPS + 1];
    const float step = 1.0f / (float)n;
    for (int i = 0; i <= n; i++) span[i] = i < (n + 1) / 2 ? (float)i * step : 1.0f - (float)(n - i) * step;
    if (flow->hp->cfm_cosine_schedule)
        for (int i = 0; i <= n; i++) span[i] = 1.0f - cosf(span[i] * 0.5f * (float)M_PI);
    float t = span[0], dt = span[1] - span[0];
    for (int k = 1; k <= n; k++) {
        t_out[k - 1] = t;
        dt_out[k - 1] = dt;
        t = t + dt;
        if (k < n) dt = span[k + 1] - t;
    }
}

void flow_speaker(flow_ctx *c, const float *embedding, float *spks)
{
    /* spks = spk_embed_affine_layer(F.normalize(embedding)), F.normalize: x / max(|x|, 1e-12) */
    const cosy_hparams *hp = c->flow->hp;
    float spk_norm[FLOW_MAX_SPK_DIM];
    double ss = 0.0;
    for (int i = 0; i < hp->spk_embed_dim; i++) ss += (double)embedding[i] * embedding[i];
    float norm = (float)sqrt(ss);
    if (norm < 1e-12f) norm = 1e-12f;
    for (int i = 0; i < hp->spk_embed_dim; i++) spk_norm[i] = embedding[i] / norm;
    flow_linear_run(c, &c->flow->spk_affine, spk_norm, 1, spks, 0);
}

void flow_cfg_weights(const cosy_flow *f, float *w_cond, float *w_uncond)
{
    /* (1.0 + inference_cfg_rate) is formed in double from the yaml's decimal, then rounded */
    char rate_text[32];
    snprintf(rate_text, sizeof rate_text, "%.7g", (double)f->hp->cfm_cfg_rate);
    const double rate = strtod(rate_text, NULL);
    *w_cond = (float)(1.0 + rate);
    *w_uncond = (float)rate;
}

static size_t call_scratch_bytes(const cosy_flow *f, int n_tokens, int n_context, int T)
{
    size_t enc = cv2_encoder_scratch_bytes(f, n_tokens, n_context);
    size_t est = cv2_unet_scratch_bytes(f, 2, T);
    return enc > est ? enc : est;
}

static cosy_status inference(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens, int n_prompt,
                             const float *prompt_feat, const float *embedding, int streaming, int finalize, int window, float *mel_out,
                             int *n_frames, cosy_flow_trace *trace);

cosy_status cosy_flow_inference_trace(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens,
                                      int n_prompt, const float *prompt_feat, const float *embedding, int streaming,
                                      int finalize, float *mel_out, int *n_frames, cosy_flow_trace *trace)
{
    return inference(flow, tokens, n, prompt_tokens, n_prompt, prompt_feat, embedding, streaming, finalize, 0, mel_out, n_frames, trace);
}

cosy_status cosy_flow_inference_window(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens, int n_prompt,
                                       const float *prompt_feat, const float *embedding, int finalize, int window, float *mel_out,
                                       int *n_frames)
{
    if (!flow) return cosy_error(COSY_ERR_INVALID_ARG, "flow: no flow state");
    if (window < 0 || window % flow->hp->est_static_chunk)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow: a window of %d frames is not a whole number of %d-frame chunks", window,
                          flow->hp->est_static_chunk);
    return inference(flow, tokens, n, prompt_tokens, n_prompt, prompt_feat, embedding, 1, finalize, window, mel_out, n_frames, NULL);
}

void flow_euler_step(float *x, const float *v, int T, int M, float dt, float w_cond, float w_uncond, float *est0)
{
    if (est0)
        for (int b = 0; b < 2; b++) cosy_transpose(est0 + (size_t)b * M * T, v + (size_t)b * T * M, T, M);
    const float *v0 = v, *v1 = v + (size_t)T * M;
    for (size_t i = 0; i < (size_t)T * M; i++) x[i] = x[i] + dt * (w_cond * v0[i] - w_uncond * v1[i]);
}

/* The stage times into the trace; on success the mel without the prompt's P2 frames, channel-major
 * [M][T - P2], from x [T][M] */
static void finish(cosy_flow_trace *trace, double t0, double t1, cosy_status st, const float *x, int T, int P2, int M, float *mel_out,
                   int *n_frames)
{
    if (trace) {
        trace->encoder_ms = t1 - t0;
        trace->solver_ms = cosy_now_ms() - t1;
        trace->frames = T;
    }
    if (st == COSY_OK) {
        const int F = T - P2;
        cosy_transpose(mel_out, x + (size_t)P2 * M, F, M);
        *n_frames = F;
    }
}

/*
 * CausalMaskedDiffWithDiT.inference (CosyVoice3) on validated inputs: no encoder; mu = the
 * PreLookaheadLayer output of the embedded tokens, each frame repeated token_mel_ratio times; then the
 * CFM solver as for CosyVoice2 with the DiT estimator (cv3_dit.c), which takes x, cond, mu and spks
 * separately instead of one packed row.
 */
static cosy_status inference_dit(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens, int n_prompt,
                                 const float *prompt_feat, const float *embedding, int streaming, int context, float *mel_out, int *n_frames,
                                 cosy_flow_trace *trace)
{
    const cosy_hparams *hp = flow->hp;
    const int M = hp->flow_output_size, IN = hp->flow_input_size, ratio = hp->token_mel_ratio;
    const int n_tokens = n_prompt + n, T1 = n_tokens - context, T = ratio * T1, P2 = n_prompt * ratio;
    const float *noise = NULL;
    COSY_TRY(flow_noise(flow, T, &noise));

    cosy_arena arena;
    const size_t rows = (size_t)2 * T * M;
    size_t per_call = FLOW_ARENA_FLOATS((size_t)n_tokens * IN) + FLOW_ARENA_FLOATS((size_t)T1 * IN) + 4 * FLOW_ARENA_FLOATS(rows) +
                      FLOW_ARENA_FLOATS((size_t)T * M) + FLOW_ARENA_FLOATS((size_t)2 * M);
    size_t pre = cv3_pre_lookahead_scratch_bytes(flow, n_tokens), est = cv3_dit_scratch_bytes(flow, 2, T);
    COSY_TRY(cosy_arena_init(&arena, (pre > est ? pre : est) + per_call * sizeof(float) + 64));
    flow_ctx c = {flow, flow->pool, &arena};
    float *x_tok = cosy_arena_floats(&arena, (size_t)n_tokens * IN), *h = cosy_arena_floats(&arena, (size_t)T1 * IN);
    float *mu = cosy_arena_floats(&arena, rows), *cond = cosy_arena_floats(&arena, rows), *xb = cosy_arena_floats(&arena, rows);
    float *v = cosy_arena_floats(&arena, rows), *x = cosy_arena_floats(&arena, (size_t)T * M), *spks = cosy_arena_floats(&arena, (size_t)2 * M);
    if (!x_tok || !h || !mu || !cond || !xb || !v || !x || !spks) {
        cosy_arena_free(&arena);
        return cosy_error(COSY_ERR_NOMEM, "flow: scratch arena too small");
    }
    /* CFG row 1 (unconditional) has mu, spks and cond zeroed */
    memset(spks, 0, sizeof(float) * (size_t)2 * M);
    flow_speaker(&c, embedding, spks);
    for (int i = 0; i < n_tokens; i++) {
        int tok = i < n_prompt ? prompt_tokens[i] : tokens[i - n_prompt];
        if (tok < 0) tok = 0;
        memcpy(x_tok + (size_t)i * IN, flow->input_embedding + (size_t)tok * IN, sizeof(float) * (size_t)IN);
    }
    double t0 = cosy_now_ms();
    cosy_status st = cv3_pre_lookahead(&c, x_tok, n_tokens, context, h);
    double t1 = cosy_now_ms();
    if (st == COSY_OK) {
        memset(mu, 0, sizeof(float) * rows);
        memset(cond, 0, sizeof(float) * rows);
        for (int t = 0; t < T; t++) memcpy(mu + (size_t)t * M, h + (size_t)(t / ratio) * IN, sizeof(float) * (size_t)M);
        memcpy(cond, prompt_feat, sizeof(float) * (size_t)P2 * M);
        if (trace && trace->h) memcpy(trace->h, h, sizeof(float) * (size_t)T1 * IN);
        if (trace && trace->mu) memcpy(trace->mu, mu, sizeof(float) * (size_t)T * M);
        memcpy(x, noise, sizeof(float) * (size_t)T * M);
        float ts[FLOW_MAX_STEPS], dts[FLOW_MAX_STEPS];
        cosy_flow_t_schedule(flow, ts, dts);
        float w_cond, w_uncond;
        flow_cfg_weights(flow, &w_cond, &w_uncond);
        for (int step = 0; step < hp->cfm_steps && st == COSY_OK; step++) {
            memcpy(xb, x, sizeof(float) * (size_t)T * M);
            memcpy(xb + (size_t)T * M, x, sizeof(float) * (size_t)T * M);
            const float tt[2] = {ts[step], ts[step]};
            st = cv3_dit_forward(&c, xb, cond, mu, spks, tt, 2, T, streaming, v, step == 0 && trace ? trace->est0_dit : NULL);
            if (st != COSY_OK) break;
            flow_euler_step(x, v, T, M, dts[step], w_cond, w_uncond, step == 0 && trace ? trace->est0 : NULL);
        }
    }
    finish(trace, t0, t1, st, x, T, P2, M, mel_out, n_frames);
    cosy_arena_free(&arena);
    return st;
}

static cosy_status inference(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens, int n_prompt,
                             const float *prompt_feat, const float *embedding, int streaming, int finalize, int window, float *mel_out,
                             int *n_frames, cosy_flow_trace *trace)
{
    if (!flow) return cosy_error(COSY_ERR_INVALID_ARG, "flow: no flow state");
    const cosy_hparams *hp = flow->hp;
    const int M = hp->flow_output_size, E = hp->enc_output_size, IN = hp->flow_input_size;
    const int context = finalize ? 0 : hp->pre_lookahead_len;
    if (!tokens || n < 1) return cosy_error(COSY_ERR_INVALID_ARG, "flow: no speech tokens (n = %d)", n);
    if (n <= context)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow: a non-final call needs more than the %d look-ahead tokens (got %d)", context, n);
    if (n_prompt < 0 || (n_prompt > 0 && (!prompt_tokens || !prompt_feat)))
        return cosy_error(COSY_ERR_INVALID_ARG, "flow: %d prompt tokens without their tokens or mel", n_prompt);
    if (!embedding) return cosy_error(COSY_ERR_INVALID_ARG, "flow: no speaker embedding");
    if (!mel_out || !n_frames) return cosy_error(COSY_ERR_INVALID_ARG, "flow: no output buffer");
    const int v3 = hp->family == COSY_FAMILY_COSYVOICE3;
    if (v3 && window > 0) return cosy_error(COSY_ERR_UNSUPPORTED, "flow: CosyVoice3 has no windowed attention");
    /* CosyVoice3 embeds clamp(token, 0) (CausalMaskedDiffWithDiT.inference): negative ids pass as 0 */
    for (int i = 0; i < n; i++)
        if ((tokens[i] < 0 && !v3) || tokens[i] >= hp->flow_vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "flow: speech token %d at position %d is outside [0, %d)", tokens[i], i, hp->flow_vocab);
    for (int i = 0; i < n_prompt; i++)
        if ((prompt_tokens[i] < 0 && !v3) || prompt_tokens[i] >= hp->flow_vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "flow: prompt speech token %d at position %d is outside [0, %d)", prompt_tokens[i], i,
                              hp->flow_vocab);
    for (int i = 0; i < hp->spk_embed_dim; i++)
        if (!isfinite(embedding[i])) return cosy_error(COSY_ERR_INVALID_ARG, "flow: speaker embedding value %d is not finite", i);
    for (int i = 0; i < n_prompt * hp->token_mel_ratio * M; i++)
        if (!isfinite(prompt_feat[i]))
            return cosy_error(COSY_ERR_INVALID_ARG, "flow: prompt mel value %d (frame %d) is not finite", i, i / M);

    if (v3)
        return inference_dit(flow, tokens, n, prompt_tokens, n_prompt, prompt_feat, embedding, streaming, context, mel_out, n_frames, trace);
    const int n_tokens = n_prompt + n;
    const int T = cv2_encoder_frames(flow, n_tokens, context);
    const int P2 = n_prompt * hp->token_mel_ratio;
    const float *noise = NULL;
    COSY_TRY(flow_noise(flow, T, &noise));

    cosy_arena arena;
    size_t per_call = FLOW_ARENA_FLOATS((size_t)n_tokens * IN) + FLOW_ARENA_FLOATS((size_t)T * E) + 2 * FLOW_ARENA_FLOATS((size_t)T * M) +
                      FLOW_ARENA_FLOATS((size_t)2 * T * hp->est_in_channels) + FLOW_ARENA_FLOATS((size_t)2 * T * M);
    COSY_TRY(cosy_arena_init(&arena, call_scratch_bytes(flow, n_tokens, context, T) + per_call * sizeof(float) + 64));
    flow_ctx c = {flow, flow->pool, &arena};
    cosy_status st = COSY_OK;
    float *x_tok = cosy_arena_floats(&arena, (size_t)n_tokens * IN);
    float *h = cosy_arena_floats(&arena, (size_t)T * E), *mu = cosy_arena_floats(&arena, (size_t)T * M);
    float *x = cosy_arena_floats(&arena, (size_t)T * M), *packed = cosy_arena_floats(&arena, (size_t)2 * T * hp->est_in_channels);
    float *v = cosy_arena_floats(&arena, (size_t)2 * T * M);
    if (!x_tok || !h || !mu || !x || !packed || !v) {
        cosy_arena_free(&arena);
        return cosy_error(COSY_ERR_NOMEM, "flow: scratch arena too small");
    }

    float spks[80];
    flow_speaker(&c, embedding, spks);

    /* input_embedding(prompt ++ tokens) */
    for (int i = 0; i < n_tokens; i++) {
        int tok = i < n_prompt ? prompt_tokens[i] : tokens[i - n_prompt];
        memcpy(x_tok + (size_t)i * IN, flow->input_embedding + (size_t)tok * IN, sizeof(float) * (size_t)IN);
    }
    double t0 = cosy_now_ms();
    st = cv2_encoder_forward(&c, x_tok, n_tokens, context, streaming, h, mu);
    double t1 = cosy_now_ms();
    if (st == COSY_OK && trace && trace->h) memcpy(trace->h, h, sizeof(float) * (size_t)T * E);
    if (st == COSY_OK && trace && trace->mu) memcpy(trace->mu, mu, sizeof(float) * (size_t)T * M);

    if (st == COSY_OK) {
        /* the estimator's input, [x | mu | spks | cond] per frame; row 1 (unconditional) keeps
         * only x, the rest stays zero */
        const int IC = hp->est_in_channels;
        memset(packed, 0, sizeof(float) * (size_t)2 * T * IC);
        for (int t = 0; t < T; t++) {
            float *row = packed + (size_t)t * IC;
            memcpy(row + M, mu + (size_t)t * M, sizeof(float) * (size_t)M);
            memcpy(row + 2 * M, spks, sizeof(float) * (size_t)M);
            if (t < P2) memcpy(row + 3 * M, prompt_feat + (size_t)t * M, sizeof(float) * (size_t)M);
        }
        memcpy(x, noise, sizeof(float) * (size_t)T * M);
        float ts[FLOW_MAX_STEPS], dts[FLOW_MAX_STEPS];
        cosy_flow_t_schedule(flow, ts, dts);
        float w_cond, w_uncond;
        flow_cfg_weights(flow, &w_cond, &w_uncond);
        for (int step = 0; step < hp->cfm_steps && st == COSY_OK; step++) {
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < T; t++) memcpy(packed + ((size_t)b * T + t) * IC, x + (size_t)t * M, sizeof(float) * (size_t)M);
            float tt[2] = {ts[step], ts[step]};
            if (window > 0) {
                /* the chunks holding prompt frames stay visible (flow_stream.c) */
                const int chunk2 = hp->est_static_chunk, pinned = (P2 + chunk2 - 1) / chunk2 * chunk2;
                st = cv2_unet_forward_windowed(&c, packed, tt, 2, T, pinned, window, v);
            } else {
                st = cv2_unet_forward(&c, packed, tt, 2, T, streaming, v);
            }
            if (st != COSY_OK) break;
            flow_euler_step(x, v, T, M, dts[step], w_cond, w_uncond, step == 0 && trace ? trace->est0 : NULL);
        }
    }
    finish(trace, t0, t1, st, x, T, P2, M, mel_out, n_frames);
    cosy_arena_free(&arena);
    return st;
}

cosy_status cosy_flow_inference(cosy_flow *flow, const int32_t *tokens, int n, const int32_t *prompt_tokens, int n_prompt,
                                const float *prompt_feat, const float *embedding, int streaming, int finalize, float *mel_out,
                                int *n_frames)
{
    return cosy_flow_inference_trace(flow, tokens, n, prompt_tokens, n_prompt, prompt_feat, embedding, streaming, finalize,
                                     mel_out, n_frames, NULL);
}

int cosy_flow_output_frames(const cosy_flow *flow, int n, int finalize)
{
    int real = finalize ? n : n - flow->hp->pre_lookahead_len;
    return real > 0 ? real * flow->hp->token_mel_ratio : 0;
}

/* cosy_flow_estimator for the CosyVoice3 DiT: channel-major [B][80][T] in and out */
static cosy_status estimator_dit(cosy_flow *flow, const float *x, const float *mu, const float *t, const float *spks, const float *cond, int B,
                                 int T, int streaming, float *out, cosy_flow_dit_trace *trace)
{
    const int M = flow->hp->flow_output_size;
    const size_t rows = (size_t)B * T * M;
    cosy_arena arena;
    COSY_TRY(cosy_arena_init(&arena, cv3_dit_scratch_bytes(flow, B, T) + 4 * FLOW_ARENA_FLOATS(rows) * sizeof(float) + 64));
    flow_ctx c = {flow, flow->pool, &arena};
    float *xt = cosy_arena_floats(&arena, rows), *mut = cosy_arena_floats(&arena, rows), *condt = cosy_arena_floats(&arena, rows);
    float *v = cosy_arena_floats(&arena, rows);
    cosy_status st = COSY_OK;
    if (!xt || !mut || !condt || !v) st = cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
    for (int b = 0; b < B && st == COSY_OK; b++) {
        const size_t o = (size_t)b * M * T;
        cosy_transpose(xt + o, x + o, M, T);
        cosy_transpose(mut + o, mu + o, M, T);
        cosy_transpose(condt + o, cond + o, M, T);
    }
    if (st == COSY_OK) st = cv3_dit_forward(&c, xt, condt, mut, spks, t, B, T, streaming, v, trace);
    if (st == COSY_OK)
        for (int b = 0; b < B; b++) cosy_transpose(out + (size_t)b * M * T, v + (size_t)b * T * M, T, M);
    cosy_arena_free(&arena);
    return st;
}

cosy_status cosy_flow_estimator(cosy_flow *flow, const float *x, const float *mu, const float *t, const float *spks,
                                const float *cond, int B, int T, int streaming, float *out)
{
    return cosy_flow_estimator_trace(flow, x, mu, t, spks, cond, B, T, streaming, out, NULL);
}

cosy_status cosy_flow_estimator_trace(cosy_flow *flow, const float *x, const float *mu, const float *t, const float *spks,
                                      const float *cond, int B, int T, int streaming, float *out, cosy_flow_dit_trace *trace)
{
    if (!flow || !x || !mu || !t || !spks || !cond || !out) return cosy_error(COSY_ERR_INVALID_ARG, "flow estimator: missing input");
    if (B < 1 || T < 1) return cosy_error(COSY_ERR_INVALID_ARG, "flow estimator: %d rows of %d frames", B, T);
    if (flow->hp->family == COSY_FAMILY_COSYVOICE3) return estimator_dit(flow, x, mu, t, spks, cond, B, T, streaming, out, trace);
    if (trace) return cosy_error(COSY_ERR_UNSUPPORTED, "flow estimator: intermediates are traced for the CosyVoice3 DiT only");
    const cosy_hparams *hp = flow->hp;
    const int M = hp->flow_output_size, IC = hp->est_in_channels;
    cosy_arena arena;
    size_t extra = FLOW_ARENA_FLOATS((size_t)B * T * IC) + FLOW_ARENA_FLOATS((size_t)B * T * M) + FLOW_ARENA_FLOATS((size_t)T * M);
    COSY_TRY(cosy_arena_init(&arena, cv2_unet_scratch_bytes(flow, B, T) + extra * sizeof(float) + 64));
    flow_ctx c = {flow, flow->pool, &arena};
    float *packed = cosy_arena_floats(&arena, (size_t)B * T * IC), *v = cosy_arena_floats(&arena, (size_t)B * T * M);
    float *col = cosy_arena_floats(&arena, (size_t)T * M);
    cosy_status st = COSY_OK;
    if (!packed || !v || !col) st = cosy_error(COSY_ERR_NOMEM, "flow estimator: scratch arena too small");
    for (int b = 0; b < B && st == COSY_OK; b++) {
        const float *srcs[3] = {x, mu, cond};
        const int slot[3] = {0, 1, 3};
        for (int s = 0; s < 3; s++) {
            cosy_transpose(col, srcs[s] + (size_t)b * M * T, M, T);
            for (int tt = 0; tt < T; tt++)
                memcpy(packed + ((size_t)b * T + tt) * IC + slot[s] * M, col + (size_t)tt * M, sizeof(float) * (size_t)M);
        }
        for (int tt = 0; tt < T; tt++) memcpy(packed + ((size_t)b * T + tt) * IC + 2 * M, spks + (size_t)b * M, sizeof(float) * (size_t)M);
    }
    if (st == COSY_OK) st = cv2_unet_forward(&c, packed, t, B, T, streaming, v);
    if (st == COSY_OK)
        for (int b = 0; b < B; b++) cosy_transpose(out + (size_t)b * M * T, v + (size_t)b * T * M, T, M);
    cosy_arena_free(&arena);
    return st;
}
