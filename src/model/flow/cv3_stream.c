/*
 * cv3_stream.c — CosyVoice3's flow at linear cost while streaming: what flow_stream.c does for
 * CosyVoice2, for CausalMaskedDiffWithDiT (reached through the same cosy_flow_stream_* calls).
 *
 * Why caching is exact (cosyvoice3.md §6, flow_stream.h): with streaming=True the DiT attends with a
 * static chunk mask of est_static_chunk frames counted from frame 0 of the whole sequence (prompt
 * included) with every left chunk; its conv pos-emb is causal; the PreLookaheadLayer reads
 * pre_lookahead_len tokens ahead, which a non-final call supplies as real tokens; the CFM noise is one
 * buffer indexed by frame and the Euler update is per frame. So once a chunk of frames is complete, none
 * of its values (each block's keys and values and the conv pos-emb inputs at every Euler step and CFG
 * row, its mel) can change in a later call. Each call computes the frames from the start of the first
 * incomplete chunk on, reading the earlier frames' keys/values and convolution history from pages;
 * the mel equals cosy_flow_inference(tokens so far, streaming=1, finalize) on every call.
 *
 * Pages, one per chunk g (frames [chunk g, chunk (g + 1))):
 *   [step][block][CFG row][K | V][chunk][heads * dim_head]   the attention keys (rotated) and values:
 *                                                            f32, or bf16 in the flow's bf16 mode
 *   [step][conv 0/1][CFG row][chunk][dim]                    the conv pos-emb convolutions' inputs, f32
 *   [chunk][80]                                              the final mel (time-major), f32
 * The keys and values are nearly all of it: at the Fun-CosyVoice3-0.5B size (22 blocks x 10 steps x
 * 2 rows x 2 x 1024 of them, plus 10 x 2 x 2 x 1024 + 80 floats) a frame takes 3.77 MB in f32, 188 MB
 * per second of audio (50 frames), and 1.97 MB in bf16, 98 MB per second. bf16 keys/values are exact
 * for the bf16 mode: its attention rounds K and V to bf16 (nearest even) before every product
 * (flow_layers.c attn_bf16), here once when they are written, so the stream's mel still equals the
 * stateless bf16 flow's; f32 (the parity path) keeps them as they are. A page is allocated when its
 * chunk is first reached and freed with the stream.
 *
 * A voice's prompt state (flow_stream.c) is such a stream run over the prompt's whole chunks alone
 * (cv3_stream_prefill: the chunks ending pre_lookahead_len tokens before the prompt does, so their
 * look-ahead is prompt tokens); its streams borrow those pages read-only. `committed` (the chunks that
 * can no longer change) moves only when a call succeeds, and calls write only pages of later chunks, so
 * a failed call leaves the stream as it was.
 */
#include "model/flow/flow_internal.h"
#include "core/error.h"
#include "core/ops.h"

#include <stdlib.h>
#include <string.h>

struct cv3_stream {
    cosy_flow *flow;
    int n_prompt;
    int32_t *tokens;        /* prompt ++ speech tokens seen */
    int n_speech, cap_speech;
    float *feat;            /* prompt mel [2P][80] */
    float *spks;            /* [2][80]: spk_embed_affine_layer(F.normalize(embedding)), zeros (CFG row 1) */
    int committed;          /* chunks final */
    int finished;
    void **pages;
    int n_pages, cap_pages;
    int n_borrowed;         /* the first pages belong to the prompt state this stream started from */
    /* page layout: keys/values in kv elements (bf16 with kv_bf16, else float) from the page start, the
     * rest in floats from the page start */
    int kv_bf16;
    size_t kv_row, kv_layer, kv_step, conv0, conv_row, conv_id, conv_step, mel0, page_bytes;
};

/* chunk g's final mel [chunk][80] */
static float *page_mel(const cv3_stream *s, int g) { return (float *)s->pages[g] + s->mel0; }

cosy_status cv3_stream_new(cosy_flow *f, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat, const float *spks,
                           const cv3_stream *from, cv3_stream **out)
{
    const cosy_hparams *hp = f->hp;
    const int M = hp->flow_output_size, chunk = hp->est_static_chunk, ratio = hp->token_mel_ratio;
    *out = NULL;
    if (chunk < 1 || chunk % ratio || hp->num_decoding_left_chunks >= 0)
        return cosy_error(COSY_ERR_UNSUPPORTED, "flow stream: the DiT's chunk of %d frames is not whole tokens of %d frames, or left chunks "
                          "are limited (%d)", chunk, ratio, hp->num_decoding_left_chunks);
    cv3_stream *s = calloc(1, sizeof *s);
    if (!s) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    s->flow = f;
    s->n_prompt = n_prompt;
    s->cap_speech = 256;
    s->tokens = malloc(sizeof(int32_t) * (size_t)(n_prompt + s->cap_speech));
    s->feat = malloc(sizeof(float) * ((size_t)n_prompt * ratio * M + 1));
    s->spks = calloc(2 * (size_t)M, sizeof(float));
    if (!s->tokens || !s->feat || !s->spks) {
        cv3_stream_free(s);
        return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    }
    if (n_prompt) memcpy(s->tokens, prompt_tokens, sizeof(int32_t) * (size_t)n_prompt);
    memcpy(s->feat, prompt_feat, sizeof(float) * (size_t)n_prompt * ratio * M);
    memcpy(s->spks, spks, sizeof(float) * (size_t)M);
    const size_t inner = (size_t)hp->dit_heads * hp->dit_dim_head, D = (size_t)hp->dit_dim;
    s->kv_bf16 = f->bf16;
    s->kv_row = 2 * (size_t)chunk * inner;
    s->kv_layer = 2 * s->kv_row;
    s->kv_step = (size_t)hp->dit_depth * s->kv_layer;
    /* the floats after the keys/values: kv_row is even, so a bf16 region ends on a float boundary */
    s->conv0 = (size_t)hp->cfm_steps * s->kv_step * (s->kv_bf16 ? sizeof(uint16_t) : sizeof(float)) / sizeof(float);
    s->conv_row = (size_t)chunk * D;
    s->conv_id = 2 * s->conv_row;
    s->conv_step = 2 * s->conv_id;
    s->mel0 = s->conv0 + (size_t)hp->cfm_steps * s->conv_step;
    s->page_bytes = sizeof(float) * (s->mel0 + (size_t)chunk * M);
    if (from && from->kv_bf16 != s->kv_bf16) {
        cv3_stream_free(s);
        return cosy_error(COSY_ERR_INTERNAL, "flow stream: the prompt state's keys/values are of another type");
    }
    if (from && from->committed > 0) {
        /* the prompt state's final chunks, read-only (its tokens are this stream's prompt) */
        s->pages = malloc(sizeof(void *) * (size_t)(from->committed + 8));
        if (!s->pages) {
            cv3_stream_free(s);
            return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
        }
        s->cap_pages = from->committed + 8;
        for (int g = 0; g < from->committed; g++) s->pages[g] = from->pages[g];
        s->n_pages = s->n_borrowed = s->committed = from->committed;
    }
    *out = s;
    return COSY_OK;
}

void cv3_stream_free(cv3_stream *s)
{
    if (!s) return;
    for (int i = s->n_borrowed; i < s->n_pages; i++) cosy_aligned_free(s->pages[i]);
    free(s->pages);
    free(s->tokens);
    free(s->feat);
    free(s->spks);
    free(s);
}

int cv3_stream_chunks(const cv3_stream *s) { return s ? s->committed : 0; }

size_t cv3_stream_bytes(const cv3_stream *s)
{
    if (!s) return 0;
    return sizeof *s + (size_t)(s->n_pages - s->n_borrowed) * s->page_bytes + sizeof(int32_t) * (size_t)(s->n_prompt + s->cap_speech) +
           sizeof(float) * (size_t)s->n_prompt * s->flow->hp->token_mel_ratio * s->flow->hp->flow_output_size;
}

static cosy_status ensure_pages(cv3_stream *s, int n)
{
    if (n > s->cap_pages) {
        int cap = s->cap_pages ? s->cap_pages : 8;
        while (cap < n) cap *= 2;
        void **p = realloc(s->pages, sizeof(void *) * (size_t)cap);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
        s->pages = p;
        s->cap_pages = cap;
    }
    while (s->n_pages < n) {
        void *p = cosy_aligned_alloc(s->page_bytes);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for a %zu-byte chunk page", s->page_bytes);
        s->pages[s->n_pages++] = p;
    }
    return COSY_OK;
}

/* Computes frames [committed chunk, T) of the tokens prompt ++ speech[0, n_tokens - P) whose last `context`
 * are look-ahead only (T = ratio (n_tokens - context)) and commits the complete chunks. */
static cosy_status advance(cv3_stream *s, const int32_t *speech, int n_tokens, int context)
{
    cosy_flow *flow = s->flow;
    const cosy_hparams *hp = flow->hp;
    const int M = hp->flow_output_size, IN = hp->flow_input_size, ratio = hp->token_mel_ratio, chunk = hp->est_static_chunk;
    const int P = s->n_prompt, T1 = n_tokens - context, T = ratio * T1, P2 = ratio * P, start = s->committed * chunk;
    if (T < start) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: %d frames end before the %d already final", T, start);
    COSY_TRY(ensure_pages(s, (T + chunk - 1) / chunk));
    const float *noise;
    COSY_TRY(flow_noise(flow, T, &noise));

    /* tokens the PreLookaheadLayer needs for frames [start, T): conv2 reads k - 1 earlier conv1 rows */
    const int nf = T - start, tok0 = start / ratio, hist = flow->dit.pre_conv2.k - 1, w0 = tok0 - hist > 0 ? tok0 - hist : 0;
    if (nf == 0) return COSY_OK;
    const size_t rows = (size_t)2 * nf * M;
    cosy_arena arena;
    size_t per_call = FLOW_ARENA_FLOATS((size_t)(n_tokens - w0) * IN) * 2 + 4 * FLOW_ARENA_FLOATS(rows) + FLOW_ARENA_FLOATS((size_t)nf * M);
    size_t pre = cv3_pre_lookahead_scratch_bytes(flow, n_tokens - w0), est = cv3_dit_cached_scratch_bytes(flow, 2, nf, T);
    COSY_TRY(cosy_arena_init(&arena, (pre > est ? pre : est) + per_call * sizeof(float) + 64));
    flow_ctx c = {flow, flow->pool, &arena};
    float *x_tok = cosy_arena_floats(&arena, (size_t)(n_tokens - w0) * IN), *h = cosy_arena_floats(&arena, (size_t)(n_tokens - w0) * IN);
    float *mu = cosy_arena_floats(&arena, rows), *cond = cosy_arena_floats(&arena, rows), *xb = cosy_arena_floats(&arena, rows);
    float *v = cosy_arena_floats(&arena, rows), *x = cosy_arena_floats(&arena, (size_t)nf * M);
    cosy_status st = COSY_OK;
    if (!x_tok || !h || !mu || !cond || !xb || !v || !x) st = cosy_error(COSY_ERR_NOMEM, "flow stream: scratch arena too small");
    if (st == COSY_OK) {
        for (int i = w0; i < n_tokens; i++) {
            int tok = i < P ? s->tokens[i] : speech[i - P];
            if (tok < 0) tok = 0; /* clamp(token, 0), as the reference */
            memcpy(x_tok + (size_t)(i - w0) * IN, flow->input_embedding + (size_t)tok * IN, sizeof(float) * (size_t)IN);
        }
        st = cv3_pre_lookahead(&c, x_tok, n_tokens - w0, context, h);
    }
    if (st == COSY_OK) {
        memset(mu, 0, sizeof(float) * rows);
        memset(cond, 0, sizeof(float) * rows);
        for (int t = 0; t < nf; t++) {
            const int frame = start + t;
            memcpy(mu + (size_t)t * M, h + (size_t)(frame / ratio - w0) * IN, sizeof(float) * (size_t)M);
            if (frame < P2) memcpy(cond + (size_t)t * M, s->feat + (size_t)frame * M, sizeof(float) * (size_t)M);
        }
        memcpy(x, noise + (size_t)start * M, sizeof(float) * (size_t)nf * M);
        float ts[64], dts[64];
        cosy_flow_t_schedule(flow, ts, dts);
        float w_cond, w_uncond;
        flow_cfg_weights(flow, &w_cond, &w_uncond);
        for (int step = 0; step < hp->cfm_steps && st == COSY_OK; step++) {
            memcpy(xb, x, sizeof(float) * (size_t)nf * M);
            memcpy(xb + (size_t)nf * M, x, sizeof(float) * (size_t)nf * M);
            const float tt[2] = {ts[step], ts[step]};
            const cv3_dit_cache cache = {s->pages, chunk, start, s->kv_bf16, (size_t)step * s->kv_step, s->kv_layer, s->kv_row,
                                         s->conv0 + (size_t)step * s->conv_step, s->conv_id, s->conv_row};
            st = cv3_dit_forward_cached(&c, xb, cond, mu, s->spks, tt, 2, nf, &cache, v);
            if (st != COSY_OK) break;
            flow_euler_step(x, v, nf, M, dts[step], w_cond, w_uncond, NULL);
        }
        for (int t = 0; st == COSY_OK && t < nf; t++) {
            const int frame = start + t;
            memcpy(page_mel(s, frame / chunk) + (size_t)(frame % chunk) * M, x + (size_t)t * M, sizeof(float) * (size_t)M);
        }
    }
    cosy_arena_free(&arena);
    if (st == COSY_OK) s->committed = T / chunk;
    return st;
}

cosy_status cv3_stream_prefill(cv3_stream *s, int n_chunks)
{
    const cosy_hparams *hp = s->flow->hp;
    const int per_chunk = hp->est_static_chunk / hp->token_mel_ratio, la = hp->pre_lookahead_len;
    if (s->n_speech || s->committed || n_chunks < 0 || n_chunks * per_chunk + la > s->n_prompt)
        return cosy_error(COSY_ERR_INTERNAL, "flow stream: %d prompt chunks do not fit %d prompt tokens", n_chunks, s->n_prompt);
    if (n_chunks == 0) return COSY_OK;
    return advance(s, NULL, n_chunks * per_chunk + la, la);
}

cosy_status cv3_stream_step(cv3_stream *s, const int32_t *tokens, int n, int offset, int finalize, float *mel_out, int *n_frames)
{
    const cosy_hparams *hp = s->flow->hp;
    const int M = hp->flow_output_size, ratio = hp->token_mel_ratio, chunk = hp->est_static_chunk;
    const int context = finalize ? 0 : hp->pre_lookahead_len, P = s->n_prompt;
    if (s->finished) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: the stream has had its final call");
    if (!tokens || n <= context) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: %d speech tokens, %d of them look-ahead", n, context);
    if (n < s->n_speech || memcmp(tokens, s->tokens + P, sizeof(int32_t) * (size_t)s->n_speech))
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: the %d tokens do not extend the previous call's %d", n, s->n_speech);
    if (offset < 0 || offset > n - context)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: offset %d outside [0, %d]", offset, n - context);
    for (int i = s->n_speech; i < n; i++)
        if (tokens[i] >= hp->flow_vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: speech token %d at position %d is outside [0, %d)", tokens[i], i, hp->flow_vocab);
    if (n > s->cap_speech) {
        int cap = s->cap_speech * 2 > n ? s->cap_speech * 2 : n;
        int32_t *t = realloc(s->tokens, sizeof(int32_t) * (size_t)(P + cap));
        if (!t) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
        s->tokens = t;
        s->cap_speech = cap;
    }
    const int T = ratio * (P + n - context);
    COSY_TRY(advance(s, tokens, P + n, context));

    /* frames [P2 + ratio offset, T), channel-major */
    const int first = ratio * (P + offset), F = T - first;
    for (int t = 0; t < F; t++) {
        const int frame = first + t;
        const float *row = page_mel(s, frame / chunk) + (size_t)(frame % chunk) * M;
        for (int m = 0; m < M; m++) mel_out[(size_t)m * F + t] = row[m];
    }
    *n_frames = F;
    memcpy(s->tokens + P + s->n_speech, tokens + s->n_speech, sizeof(int32_t) * (size_t)(n - s->n_speech));
    s->n_speech = n;
    s->finished = finalize;
    return COSY_OK;
}
