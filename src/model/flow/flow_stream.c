/*
 * flow_stream.c — the cached (linear-cost) streaming flow of flow_stream.h: per-voice prompt
 * state, per-session state, and the step that computes only the frames from the first incomplete
 * attention chunk on.
 *
 * State lives in pages, one per attention chunk g (tokens [25g, 25g + 25), frames [50g, 50g + 50)):
 *   - the token encoder's keys/values per conformer block, and PreLookaheadLayer.conv2's last
 *     two input rows (tokens 25g + 23, 25g + 24);
 *   - the frame encoder's keys/values per up-conformer block, Upsample1D's last four input rows;
 *   - per Euler step, per CFG row, the estimator's keys/values per transformer block and the last
 *     two input rows of each of its causal convolutions;
 *   - the chunk's final mel (80 x 50), for windows that start before the previous call's end.
 * The first prompt chunks' pages belong to the cosy_flow_prompt and are only read. A call writes
 * pages of chunks >= the first incomplete one; `committed` (the chunks that can no longer change)
 * moves only when a call succeeds, so a failed call leaves the stream as it was.
 *
 * Per stream also: each conformer block's linear_pos projection of the relative positions
 * (distances -(chunk - 1) .. longest so far), grown by doubling; the tokens seen (a call must
 * extend them); one scratch arena, grown when a longer sequence needs more.
 *
 * Reference behaviour reproduced: CausalMaskedDiffWithXvec.inference (streaming=True) per call,
 * i.e. exactly what flow.c computes statelessly; see flow_stream.h for why caching is exact.
 */
#include "model/flow/flow_stream.h"
#include "model/flow/flow_internal.h"
#include "core/attention.h"
#include "core/error.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdio.h>
#include <time.h>

#define EST_CONV_ROWS 2 /* every estimator convolution is a CausalConv1d of kernel 3 */
#define ROUND16(n) (((size_t)(n) + 15) / 16 * 16)

static uint64_t prompt_hash(const int32_t *tokens, int n, const float *feat, int n_feat, const float *embedding, int n_emb);

/* ---------------------------------------------------------------- page layout */

/* offsets (floats) of one page's parts */
typedef struct {
    size_t tok_kv, frame_kv, tok_conv, frame_conv, est_conv, mel, total;
    size_t est_conv_step; /* per Euler step */
    int tok_conv_rows, frame_conv_rows;
    /* the estimator's key/value blocks (flow_internal.h flow_kv_block): slabs [step][layer][CFG row][head] */
    size_t kv_slab, kv_layer, kv_step; /* elements per slab, between layers, between steps */
} page_layout;

static void layout_pages(const cosy_flow *f, page_layout *L)
{
    const cosy_hparams *hp = f->hp;
    const size_t E = (size_t)hp->enc_output_size, chunk1 = (size_t)hp->enc_static_chunk, chunk2 = (size_t)hp->est_static_chunk;
    const size_t steps = (size_t)hp->cfm_steps;
    L->tok_conv_rows = f->enc.pre_conv2.k - 1;
    L->frame_conv_rows = f->enc.up_conv.k - 1;
    size_t o = 0;
    L->tok_kv = o;
    o += ROUND16((size_t)f->enc.n_blocks * chunk1 * 2 * E);
    L->frame_kv = o;
    o += ROUND16((size_t)f->enc.n_up_blocks * chunk2 * 2 * E);
    L->tok_conv = o;
    o += ROUND16((size_t)L->tok_conv_rows * E);
    L->frame_conv = o;
    o += ROUND16((size_t)L->frame_conv_rows * E);
    L->est_conv = o;
    L->est_conv_step = (size_t)cv2_unet_convs(f) * 2 * EST_CONV_ROWS * (size_t)cv2_unet_conv_width(f);
    o += ROUND16(steps * L->est_conv_step);
    L->mel = o;
    o += ROUND16(chunk2 * (size_t)hp->flow_output_size);
    L->total = o;
    L->kv_slab = cosy_kv_slab_elems(hp->est_head_dim, f->bf16);
    L->kv_layer = 2 * (size_t)hp->est_heads * L->kv_slab;
    L->kv_step = (size_t)cv2_unet_layers(f) * L->kv_layer;
}

/* ---------------------------------------------------------------- relative positions */

/* One level's projected tables: for each conformer block, linear_pos(PE) with row zero - r
 * holding distance r, for r in [-(chunk - 1), zero]. */
typedef struct {
    float *table;        /* [n_blocks][zero + chunk][E] */
    const float **rows;  /* per block: its table */
    int zero, chunk, n_blocks;
    const flow_conformer *blocks;
} pos_tables;

static void pos_free(pos_tables *pt)
{
    cosy_aligned_free(pt->table);
    free(pt->rows);
    pt->table = NULL;
    pt->rows = NULL;
}

static size_t pos_bytes(const pos_tables *pt, int E)
{
    return pt->table ? sizeof(float) * (size_t)pt->n_blocks * (size_t)(pt->zero + pt->chunk) * E : 0;
}

/* Covers distances up to `need` (doubling): only the new distances are projected, the old rows
 * move below them. */
static cosy_status pos_grow(flow_ctx *c, pos_tables *pt, int need)
{
    if (pt->table && pt->zero >= need) return COSY_OK;
    const int E = c->flow->hp->enc_output_size;
    int zero = pt->table ? 2 * pt->zero + 1 : 4 * pt->chunk;
    if (zero < need) zero = need;
    const int rows = zero + pt->chunk;
    const int old_rows = pt->table ? pt->zero + pt->chunk : 0;
    const int fresh = rows - old_rows; /* distances zero .. zero - fresh + 1 */
    float *table = cosy_aligned_alloc(sizeof(float) * (size_t)pt->n_blocks * rows * E);
    float *pe = cosy_aligned_alloc(sizeof(float) * (size_t)fresh * E);
    const float **per = pt->rows ? pt->rows : calloc((size_t)pt->n_blocks, sizeof *per);
    if (!table || !pe || !per) {
        cosy_aligned_free(table);
        cosy_aligned_free(pe);
        if (!pt->rows) free(per);
        return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for the position tables (%d distances)", rows);
    }
    flow_rel_position_rows(pe, zero, zero - fresh + 1, E);
    for (int i = 0; i < pt->n_blocks; i++) {
        float *dst = table + (size_t)i * rows * E;
        flow_linear_run(c, &pt->blocks[i].pos, pe, fresh, dst, 0);
        if (old_rows) memcpy(dst + (size_t)fresh * E, pt->table + (size_t)i * old_rows * E, sizeof(float) * (size_t)old_rows * E);
        per[i] = dst;
    }
    cosy_aligned_free(pe);
    cosy_aligned_free(pt->table);
    pt->table = table;
    pt->rows = per;
    pt->zero = zero;
    return COSY_OK;
}

/* ---------------------------------------------------------------- objects */

/* A page: one allocation per chunk (~230 MB at the CosyVoice2-0.5B size), mapped with MAP_POPULATE:
 * the kernel maps it in one go instead of ~56,000 separate first-touch faults as the chunk's keys and
 * values are written (measured: 952k -> 211k page faults over 10 s of audio, flow 938 -> 859 ms per 25
 * tokens). (Transparent huge pages were tried: with the kernel compacting memory on the first touch
 * they made a call ~20% slower.) The mapping's size sits in its first 64 bytes. */
#define PAGE_HEADER 64

static float *page_alloc(size_t floats)
{
    const size_t bytes = sizeof(float) * floats + PAGE_HEADER;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *(size_t *)p = bytes;
    return (float *)((char *)p + PAGE_HEADER);
}

static void page_free(float *page)
{
    if (!page) return;
    char *base = (char *)page - PAGE_HEADER;
    munmap(base, *(size_t *)base);
}

struct cosy_flow_prompt {
    cosy_flow *flow;
    atomic_int refs;      /* holders: its creator, the flow's voice cache, each stream using it */
    uint64_t hash;        /* of its inputs (tokens, mel, embedding), for the voice cache */
    float *embedding;     /* [spk_embed_dim], to confirm a cache hit */
    int n_tokens;
    int32_t *tokens;
    float *feat;          /* [2P][80] */
    float spks[80];
    int n_chunks;         /* complete chunks whose state is in pages */
    float **pages;
    size_t page_floats;
    flow_kv_block *blocks; /* the estimator's keys/values of those chunks' frames (the last block partly) */
    int n_blocks;
    cv3_stream *dit;      /* CosyVoice3: the prompt chunks' state instead of pages and blocks (n_chunks of them) */
};

struct cosy_flow_stream {
    cosy_flow *flow;
    const cosy_flow_prompt *prompt;
    page_layout layout;
    int32_t *tokens;      /* prompt ++ speech tokens seen */
    int n_tokens, cap_tokens;
    int n_speech;         /* speech tokens of the last call */
    int committed;        /* chunks final (their pages never change again) */
    int finished;
    float **pages;        /* [n_pages]: the prompt's first, then our own */
    int n_pages, cap_pages, n_borrowed;
    flow_kv_block *blocks; /* the estimator's keys/values: the prompt's blocks, then our own from own_key0 on */
    int n_blocks, cap_blocks, n_borrowed_blocks, own_key0;
    int pinned, window;   /* the attention window (flow_kv_view); window 0: every left chunk, as the reference */
    pos_tables pos_tok, pos_frame;
    cosy_arena arena;
    cv3_stream *dit;      /* CosyVoice3: the whole state is here (cv3_stream.c); the fields above stay unused */
};

static int stream_supported(const cosy_flow *f)
{
    const cosy_hparams *hp = f->hp;
    if (hp->family == COSY_FAMILY_COSYVOICE3) return COSY_OK; /* cv3_stream.c checks its own */
    if (hp->enc_static_chunk < 1 || hp->est_static_chunk != hp->enc_static_chunk * hp->enc_up_stride ||
        hp->num_decoding_left_chunks >= 0 || hp->flow_output_size != 80)
        return cosy_error(COSY_ERR_UNSUPPORTED, "flow stream: needs static chunks (encoder %d tokens, estimator %d frames = encoder x %d) "
                          "with all left chunks (num_decoding_left_chunks %d)", hp->enc_static_chunk, hp->est_static_chunk,
                          hp->enc_up_stride, hp->num_decoding_left_chunks);
    if (f->est.down.conv1.k != EST_CONV_ROWS + 1 || f->est.final_conv.k != EST_CONV_ROWS + 1 ||
        f->enc.pre_conv2.k - 1 > hp->enc_static_chunk || f->enc.up_conv.k - 1 > hp->est_static_chunk)
        return cosy_error(COSY_ERR_UNSUPPORTED, "flow stream: convolution kernels longer than a chunk are not supported");
    return COSY_OK;
}

/* a stream with no state yet; the prompt may still be under construction */
static cosy_status stream_new(cosy_flow *flow, const cosy_flow_prompt *prompt, cosy_flow_stream **out)
{
    cosy_flow_stream *s = calloc(1, sizeof *s);
    if (!s) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    s->flow = flow;
    layout_pages(flow, &s->layout);
    s->pos_tok = (pos_tables){NULL, NULL, 0, flow->hp->enc_static_chunk, flow->enc.n_blocks, flow->enc.blocks};
    s->pos_frame = (pos_tables){NULL, NULL, 0, flow->hp->est_static_chunk, flow->enc.n_up_blocks, flow->enc.up_blocks};
    s->cap_tokens = prompt->n_tokens + 256;
    s->tokens = malloc(sizeof(int32_t) * (size_t)s->cap_tokens);
    s->cap_pages = prompt->n_chunks + 16;
    s->pages = calloc((size_t)s->cap_pages, sizeof *s->pages);
    if (!s->tokens || !s->pages) {
        free(s->tokens);
        free(s->pages);
        free(s);
        return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    }
    memcpy(s->tokens, prompt->tokens, sizeof(int32_t) * (size_t)prompt->n_tokens);
    s->n_tokens = prompt->n_tokens;
    for (int g = 0; g < prompt->n_chunks; g++) s->pages[g] = prompt->pages[g];
    s->n_pages = s->n_borrowed = s->committed = prompt->n_chunks;
    s->cap_blocks = prompt->n_blocks + 16;
    s->blocks = calloc((size_t)s->cap_blocks, sizeof *s->blocks);
    if (!s->blocks) {
        cosy_flow_stream_free(s);
        return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    }
    s->prompt = prompt; /* a reference: the stream keeps the prompt alive */
    atomic_fetch_add(&((cosy_flow_prompt *)prompt)->refs, 1);
    for (int i = 0; i < prompt->n_blocks; i++) s->blocks[i] = prompt->blocks[i];
    s->n_blocks = s->n_borrowed_blocks = prompt->n_blocks;
    s->own_key0 = prompt->n_chunks * flow->hp->est_static_chunk;
    /* the chunks holding prompt frames stay visible through any window */
    const int chunk2 = flow->hp->est_static_chunk, P2 = prompt->n_tokens * flow->hp->token_mel_ratio;
    s->pinned = (P2 + chunk2 - 1) / chunk2 * chunk2;
    *out = s;
    return COSY_OK;
}

void cosy_flow_stream_free(cosy_flow_stream *s)
{
    if (!s) return;
    cv3_stream_free(s->dit);
    for (int g = s->n_borrowed; g < s->n_pages; g++) page_free(s->pages[g]);
    for (int i = s->n_borrowed_blocks; i < s->n_blocks; i++) flow_kv_block_release(s->flow, s->blocks[i].mem);
    free(s->blocks);
    free(s->pages);
    free(s->tokens);
    pos_free(&s->pos_tok);
    pos_free(&s->pos_frame);
    cosy_arena_free(&s->arena);
    if (s->prompt) cosy_flow_prompt_free((cosy_flow_prompt *)s->prompt);
    free(s);
}

/* pages for every chunk of rows [0, tokens) */
static cosy_status ensure_pages(cosy_flow_stream *s, int tokens)
{
    const int chunk = s->flow->hp->enc_static_chunk, need = (tokens + chunk - 1) / chunk;
    if (need > s->cap_pages) {
        int cap = s->cap_pages * 2 > need ? s->cap_pages * 2 : need;
        float **pages = realloc(s->pages, sizeof *pages * (size_t)cap);
        if (!pages) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for %d pages", cap);
        s->pages = pages;
        s->cap_pages = cap;
    }
    while (s->n_pages < need) {
        float *page = page_alloc(s->layout.total);
        if (!page)
            return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for the cache of chunk %d (%zu bytes)", s->n_pages,
                              sizeof(float) * s->layout.total);
        s->pages[s->n_pages++] = page;
    }
    return COSY_OK;
}

/* our own key/value blocks up to frame `frames` (they start at own_key0 and follow each other) */
static cosy_status ensure_blocks(cosy_flow_stream *s, int frames)
{
    for (;;) {
        const int next = s->n_blocks > s->n_borrowed_blocks ? s->blocks[s->n_blocks - 1].key0 + COSY_KV_BLOCK : s->own_key0;
        if (next >= frames) return COSY_OK;
        if (s->n_blocks == s->cap_blocks) {
            int cap = s->cap_blocks * 2;
            flow_kv_block *b = realloc(s->blocks, sizeof *b * (size_t)cap);
            if (!b) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for %d key blocks", cap);
            s->blocks = b;
            s->cap_blocks = cap;
        }
        void *mem = flow_kv_block_get(s->flow);
        if (!mem)
            return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for the keys/values of frames %d..%d (%zu bytes)", next,
                              next + COSY_KV_BLOCK - 1, flow_kv_block_bytes(s->flow));
        s->blocks[s->n_blocks++] = (flow_kv_block){mem, next};
    }
}

/* With a window, the blocks no later query can see (every frame below the window of the first chunk
 * still to compute, none of them pinned) go back to the flow's pool. */
static void drop_blocks(cosy_flow_stream *s)
{
    if (s->window <= 0) return;
    const int first_visible = (s->committed + 1) * s->flow->hp->est_static_chunk - s->window;
    int w = s->n_borrowed_blocks;
    for (int i = s->n_borrowed_blocks; i < s->n_blocks; i++) {
        const flow_kv_block b = s->blocks[i];
        if (b.key0 >= s->pinned && b.key0 + COSY_KV_BLOCK <= first_visible) flow_kv_block_release(s->flow, b.mem);
        else s->blocks[w++] = b;
    }
    s->n_blocks = w;
}

static cosy_status ensure_arena(cosy_flow_stream *s, size_t bytes)
{
    if (s->arena.base && s->arena.size >= bytes) return COSY_OK;
    size_t size = s->arena.size + s->arena.size / 2 > bytes ? s->arena.size + s->arena.size / 2 : bytes;
    cosy_arena_free(&s->arena);
    return cosy_arena_init(&s->arena, size);
}

/* ---------------------------------------------------------------- the computation */

/*
 * Computes tokens [25 committed, n_all - n_context) of s->tokens (the prompt's included) and their
 * frames; the mel of those frames lands in the pages. Chunks complete below n_all - n_context
 * become committed when the look-ahead tokens after them were real (n_context > 0).
 */
static cosy_status stream_advance(cosy_flow_stream *s, int n_all, int n_context)
{
    cosy_flow *flow = s->flow;
    const cosy_hparams *hp = flow->hp;
    const page_layout *L = &s->layout;
    const int E = hp->enc_output_size, M = hp->flow_output_size, IN = hp->flow_input_size, IC = hp->est_in_channels;
    const int up = hp->enc_up_stride, chunk1 = hp->enc_static_chunk, chunk2 = hp->est_static_chunk;
    const int S1 = s->committed * chunk1, T1 = n_all - n_context;
    if (T1 <= S1) return COSY_OK; /* nothing new (every frame is final and cached) */
    const int n_rows = n_all - S1, S2 = S1 * up, T2 = T1 * up, nq = T2 - S2;
    const int P2 = s->prompt->n_tokens * hp->token_mel_ratio;

    const float *noise;
    COSY_TRY(flow_noise(flow, T2, &noise));
    COSY_TRY(ensure_pages(s, T1));
    COSY_TRY(ensure_blocks(s, T2));
    size_t enc = cv2_encoder_cached_scratch_bytes(flow, n_rows, n_context, T1);
    size_t est = cv2_unet_cached_scratch_bytes(flow, 2, nq, T2);
    size_t bufs = FLOW_ARENA_FLOATS((size_t)n_rows * IN) + FLOW_ARENA_FLOATS((size_t)nq * E) + 2 * FLOW_ARENA_FLOATS((size_t)nq * M) +
                  FLOW_ARENA_FLOATS((size_t)2 * nq * IC) + FLOW_ARENA_FLOATS((size_t)2 * nq * M);
    COSY_TRY(ensure_arena(s, bufs * sizeof(float) + (enc > est ? enc : est) + 128));
    cosy_arena *a = &s->arena;
    cosy_arena_reset(a);
    flow_ctx c = {flow, flow->pool, a};
    COSY_TRY(pos_grow(&c, &s->pos_tok, T1 - 1));
    COSY_TRY(pos_grow(&c, &s->pos_frame, T2 - 1));

    float *x_tok = cosy_arena_floats(a, (size_t)n_rows * IN), *h = cosy_arena_floats(a, (size_t)nq * E);
    float *mu = cosy_arena_floats(a, (size_t)nq * M), *x = cosy_arena_floats(a, (size_t)nq * M);
    float *packed = cosy_arena_floats(a, (size_t)2 * nq * IC), *v = cosy_arena_floats(a, (size_t)2 * nq * M);
    if (!x_tok || !h || !mu || !x || !packed || !v) return cosy_error(COSY_ERR_INTERNAL, "flow stream: scratch arena too small");

    /* the encoder on the new tokens (+ look-ahead) */
    for (int i = 0; i < n_rows; i++)
        memcpy(x_tok + (size_t)i * IN, flow->input_embedding + (size_t)s->tokens[S1 + i] * IN, sizeof(float) * (size_t)IN);
    cv2_encoder_cache ec;
    ec.tok = (flow_cache){.pages = s->pages, .chunk = chunk1, .start = S1, .n = T1 - S1, .B = 1, .kv_width = E,
                          .kv_heads = hp->enc_heads, .kv_base = L->tok_kv, .kv_layer = (size_t)chunk1 * 2 * E, .kv_batch = 0,
                          .conv_rows = L->tok_conv_rows, .conv_width = E, .conv_base = L->tok_conv,
                          .conv_slot = (size_t)L->tok_conv_rows * E};
    ec.frame = (flow_cache){.pages = s->pages, .chunk = chunk2, .start = S2, .n = nq, .B = 1, .kv_width = E,
                            .kv_heads = hp->enc_heads, .kv_base = L->frame_kv, .kv_layer = (size_t)chunk2 * 2 * E, .kv_batch = 0,
                            .conv_rows = L->frame_conv_rows, .conv_width = E, .conv_base = L->frame_conv,
                            .conv_slot = (size_t)L->frame_conv_rows * E};
    ec.pos_tok = s->pos_tok.rows;
    ec.pos_frame = s->pos_frame.rows;
    ec.pos_zero_tok = s->pos_tok.zero;
    ec.pos_zero_frame = s->pos_frame.zero;
    COSY_TRY(cv2_encoder_forward_cached(&c, x_tok, n_rows, n_context, &ec, h, mu));

    /* the estimator's input [x | mu | spks | cond] per frame; row 1 (unconditional) keeps only x */
    memset(packed, 0, sizeof(float) * (size_t)2 * nq * IC);
    for (int t = 0; t < nq; t++) {
        float *row = packed + (size_t)t * IC;
        memcpy(row + M, mu + (size_t)t * M, sizeof(float) * (size_t)M);
        memcpy(row + 2 * M, s->prompt->spks, sizeof(float) * (size_t)M);
        if (S2 + t < P2) memcpy(row + 3 * M, s->prompt->feat + (size_t)(S2 + t) * M, sizeof(float) * (size_t)M);
    }
    memcpy(x, noise + (size_t)S2 * M, sizeof(float) * (size_t)nq * M);
    float ts[64], dts[64], w_cond, w_uncond;
    cosy_flow_t_schedule(flow, ts, dts);
    flow_cfg_weights(flow, &w_cond, &w_uncond);
    const int CW = cv2_unet_conv_width(flow);
    for (int step = 0; step < hp->cfm_steps; step++) {
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < nq; t++) memcpy(packed + ((size_t)b * nq + t) * IC, x + (size_t)t * M, sizeof(float) * (size_t)M);
        flow_cache fc = {.pages = s->pages, .chunk = chunk2, .start = S2, .n = nq, .B = 2, .conv_rows = EST_CONV_ROWS, .conv_width = CW,
                         .conv_base = L->est_conv + (size_t)step * L->est_conv_step, .conv_slot = (size_t)2 * EST_CONV_ROWS * CW};
        const flow_kv_view kv = {s->blocks, s->n_blocks, (size_t)step * L->kv_step, (size_t)hp->est_heads * L->kv_slab, L->kv_slab,
                                 flow->bf16, s->pinned, s->window};
        float tt[2] = {ts[step], ts[step]};
        COSY_TRY(cv2_unet_forward_cached(&c, packed, tt, &fc, &kv, L->kv_layer, v));
        flow_euler_step(x, v, nq, M, dts[step], w_cond, w_uncond, NULL);
    }
    for (int t = 0; t < nq; t++) {
        const int f = S2 + t;
        memcpy(s->pages[f / chunk2] + L->mel + (size_t)(f % chunk2) * M, x + (size_t)t * M, sizeof(float) * (size_t)M);
    }
    cosy_arena_reset(a);
    if (n_context > 0) s->committed = T1 / chunk1;
    drop_blocks(s);
    return COSY_OK;
}

/* ---------------------------------------------------------------- prompt */

static cosy_status check_tokens(const cosy_flow *f, const int32_t *tokens, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= f->hp->flow_vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: %s token %d at position %d is outside [0, %d)", what, tokens[i], i,
                              f->hp->flow_vocab);
    return COSY_OK;
}

void cosy_flow_prompt_free(cosy_flow_prompt *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1) > 1) return;
    free(p->embedding);
    cv3_stream_free(p->dit);
    for (int g = 0; p->pages && g < p->n_chunks; g++) page_free(p->pages[g]);
    for (int i = 0; i < p->n_blocks; i++) flow_kv_block_release(p->flow, p->blocks[i].mem);
    free(p->blocks);
    free(p->pages);
    free(p->tokens);
    free(p->feat);
    free(p);
}

cosy_status cosy_flow_prompt_create(cosy_flow *flow, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat,
                                    const float *embedding, cosy_flow_prompt **out)
{
    return cosy_flow_prompt_create_limited(flow, prompt_tokens, n_prompt, prompt_feat, embedding, -1, out);
}

cosy_status cosy_flow_prompt_create_limited(cosy_flow *flow, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat,
                                            const float *embedding, int max_chunks, cosy_flow_prompt **out)
{
    if (out) *out = NULL;
    if (!flow || !out) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no flow or output pointer");
    COSY_TRY(stream_supported(flow));
    const cosy_hparams *hp = flow->hp;
    const int M = hp->flow_output_size, P2 = n_prompt * hp->token_mel_ratio;
    if (n_prompt < 0 || (n_prompt > 0 && (!prompt_tokens || !prompt_feat)))
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: %d prompt tokens without their tokens or mel", n_prompt);
    if (!embedding) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no speaker embedding");
    COSY_TRY(check_tokens(flow, prompt_tokens, n_prompt, "prompt speech"));
    for (int i = 0; i < hp->spk_embed_dim; i++)
        if (!isfinite(embedding[i])) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: speaker embedding value %d is not finite", i);
    for (int i = 0; i < P2 * M; i++)
        if (!isfinite(prompt_feat[i]))
            return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: prompt mel value %d (frame %d) is not finite", i, i / M);

    cosy_flow_prompt *p = calloc(1, sizeof *p);
    if (!p) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    atomic_init(&p->refs, 1);
    p->flow = flow;
    p->n_tokens = n_prompt;
    p->tokens = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    p->feat = malloc(sizeof(float) * ((size_t)P2 * M + 1));
    p->embedding = malloc(sizeof(float) * (size_t)hp->spk_embed_dim);
    if (!p->tokens || !p->feat || !p->embedding) {
        cosy_flow_prompt_free(p);
        return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    }
    if (n_prompt) {
        memcpy(p->tokens, prompt_tokens, sizeof(int32_t) * (size_t)n_prompt);
        memcpy(p->feat, prompt_feat, sizeof(float) * (size_t)P2 * M);
    }
    memcpy(p->embedding, embedding, sizeof(float) * (size_t)hp->spk_embed_dim);
    p->hash = prompt_hash(prompt_tokens, n_prompt, prompt_feat, P2 * M, embedding, hp->spk_embed_dim);
    {
        cosy_arena arena;
        cosy_status st = cosy_arena_init(&arena, 4096);
        if (st != COSY_OK) {
            cosy_flow_prompt_free(p);
            return st;
        }
        flow_ctx c = {flow, flow->pool, &arena};
        flow_speaker(&c, embedding, p->spks);
        cosy_arena_free(&arena);
    }

    /* the chunks that end pre_lookahead_len tokens before the prompt does: run them as a stream
     * would (the look-ahead being prompt tokens) and keep their pages */
    if (hp->family == COSY_FAMILY_COSYVOICE3) {
        /* the chunks that end pre_lookahead_len tokens before the prompt does, as a stream would compute them */
        const int per_chunk = hp->est_static_chunk / hp->token_mel_ratio, la3 = hp->pre_lookahead_len;
        int n3 = n_prompt > la3 && per_chunk > 0 ? (n_prompt - la3) / per_chunk : 0;
        if (max_chunks >= 0 && n3 > max_chunks) n3 = max_chunks;
        cosy_status st = COSY_OK;
        if (n3 > 0) st = cv3_stream_new(flow, p->tokens, n_prompt, p->feat, p->spks, NULL, &p->dit);
        if (st == COSY_OK && n3 > 0) st = cv3_stream_prefill(p->dit, n3);
        if (st != COSY_OK) {
            cosy_flow_prompt_free(p);
            return st;
        }
        p->n_chunks = n3;
        *out = p;
        return COSY_OK;
    }
    const int la = hp->pre_lookahead_len, chunk = hp->enc_static_chunk;
    int n_chunks = n_prompt > la ? (n_prompt - la) / chunk : 0;
    if (max_chunks >= 0 && n_chunks > max_chunks) n_chunks = max_chunks;
    if (n_chunks > 0) {
        cosy_flow_stream *s = NULL;
        cosy_status st = stream_new(flow, p, &s);
        if (st == COSY_OK) st = stream_advance(s, n_chunks * chunk + la, la);
        if (st == COSY_OK && (s->committed != n_chunks || s->n_pages != n_chunks))
            st = cosy_error(COSY_ERR_INTERNAL, "flow stream: prompt state covers %d chunks, expected %d", s->committed, n_chunks);
        if (st == COSY_OK) {
            p->pages = s->pages; /* the stream's own pages and blocks become the prompt's */
            p->n_chunks = n_chunks;
            s->pages = NULL;
            s->n_pages = 0;
            p->blocks = s->blocks;
            p->n_blocks = s->n_blocks;
            s->blocks = NULL;
            s->n_blocks = 0;
        }
        cosy_flow_stream_free(s);
        if (st != COSY_OK) {
            cosy_flow_prompt_free(p);
            return st;
        }
    }
    p->page_floats = 0;
    {
        page_layout L;
        layout_pages(flow, &L);
        p->page_floats = L.total;
    }
    *out = p;
    return COSY_OK;
}

int cosy_flow_prompt_chunks(const cosy_flow_prompt *p) { return p ? p->n_chunks : 0; }

size_t cosy_flow_prompt_bytes(const cosy_flow_prompt *p)
{
    if (!p) return 0;
    return sizeof *p + cv3_stream_bytes(p->dit) + sizeof(float) * p->page_floats * (size_t)p->n_chunks + flow_kv_block_bytes(p->flow) * (size_t)p->n_blocks +
           sizeof(int32_t) * (size_t)p->n_tokens +
           sizeof(float) * (size_t)p->n_tokens * p->flow->hp->token_mel_ratio * p->flow->hp->flow_output_size;
}

/* ---------------------------------------------------------------- the voice cache */

/* FNV-1a over the bytes of a prompt's inputs */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t prompt_hash(const int32_t *tokens, int n, const float *feat, int n_feat, const float *embedding, int n_emb)
{
    uint64_t h = fnv(1469598103934665603ull, &n, sizeof n);
    if (n > 0) h = fnv(h, tokens, sizeof(int32_t) * (size_t)n);
    if (n_feat > 0) h = fnv(h, feat, sizeof(float) * (size_t)n_feat);
    return fnv(h, embedding, sizeof(float) * (size_t)n_emb);
}

static int prompt_matches(const cosy_flow_prompt *p, const int32_t *tokens, int n, const float *feat, const float *embedding)
{
    const cosy_hparams *hp = p->flow->hp;
    const size_t n_feat = (size_t)n * hp->token_mel_ratio * hp->flow_output_size;
    return p->n_tokens == n && (n == 0 || (!memcmp(p->tokens, tokens, sizeof(int32_t) * (size_t)n) &&
                                           !memcmp(p->feat, feat, sizeof(float) * n_feat))) &&
           !memcmp(p->embedding, embedding, sizeof(float) * (size_t)hp->spk_embed_dim);
}

cosy_status cosy_flow_prompt_get(cosy_flow *flow, const int32_t *prompt_tokens, int n_prompt, const float *prompt_feat,
                                 const float *embedding, cosy_flow_prompt **out)
{
    if (out) *out = NULL;
    if (!flow || !out || !embedding || n_prompt < 0 || (n_prompt > 0 && (!prompt_tokens || !prompt_feat)))
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no flow, prompt or output pointer");
    const cosy_hparams *hp = flow->hp;
    const uint64_t h = prompt_hash(prompt_tokens, n_prompt, prompt_feat, n_prompt * hp->token_mel_ratio * hp->flow_output_size, embedding,
                                   hp->spk_embed_dim);
    pthread_mutex_lock(&flow->voice_lock);
    for (int i = 0; i < flow->n_voices; i++) {
        cosy_flow_prompt *p = flow->voices[i];
        if (p->hash == h && prompt_matches(p, prompt_tokens, n_prompt, prompt_feat, embedding)) {
            atomic_fetch_add(&p->refs, 1);
            flow->voice_used[i] = ++flow->voice_clock;
            flow->voice_hits++;
            pthread_mutex_unlock(&flow->voice_lock);
            *out = p;
            return COSY_OK;
        }
    }
    pthread_mutex_unlock(&flow->voice_lock);
    /* computed outside the lock (two requests for a new voice may both compute it; one copy stays) */
    cosy_flow_prompt *p = NULL;
    COSY_TRY(cosy_flow_prompt_create(flow, prompt_tokens, n_prompt, prompt_feat, embedding, &p));
    pthread_mutex_lock(&flow->voice_lock);
    flow->voice_misses++;
    if (flow->voice_budget > 0 && cosy_flow_prompt_bytes(p) <= flow->voice_budget) {
        /* least recently used voices go until this one fits (streams still using them keep them alive) */
        size_t total = cosy_flow_prompt_bytes(p);
        for (int i = 0; i < flow->n_voices; i++) total += cosy_flow_prompt_bytes(flow->voices[i]);
        while (flow->n_voices > 0 && (total > flow->voice_budget || flow->n_voices == FLOW_MAX_VOICES)) {
            int lru = 0;
            for (int i = 1; i < flow->n_voices; i++)
                if (flow->voice_used[i] < flow->voice_used[lru]) lru = i;
            total -= cosy_flow_prompt_bytes(flow->voices[lru]);
            cosy_flow_prompt_free(flow->voices[lru]);
            flow->voices[lru] = flow->voices[flow->n_voices - 1];
            flow->voice_used[lru] = flow->voice_used[flow->n_voices - 1];
            flow->n_voices--;
        }
        atomic_fetch_add(&p->refs, 1);
        flow->voices[flow->n_voices] = p;
        flow->voice_used[flow->n_voices++] = ++flow->voice_clock;
    }
    pthread_mutex_unlock(&flow->voice_lock);
    *out = p;
    return COSY_OK;
}

void flow_voice_cache_clear(cosy_flow *flow)
{
    pthread_mutex_lock(&flow->voice_lock);
    for (int i = 0; i < flow->n_voices; i++) cosy_flow_prompt_free(flow->voices[i]);
    flow->n_voices = 0;
    pthread_mutex_unlock(&flow->voice_lock);
}

void cosy_flow_voice_cache_stats(cosy_flow *flow, int *voices, size_t *bytes, long *hits, long *misses)
{
    pthread_mutex_lock(&flow->voice_lock);
    size_t total = 0;
    for (int i = 0; i < flow->n_voices; i++) total += cosy_flow_prompt_bytes(flow->voices[i]);
    if (voices) *voices = flow->n_voices;
    if (bytes) *bytes = total;
    if (hits) *hits = flow->voice_hits;
    if (misses) *misses = flow->voice_misses;
    pthread_mutex_unlock(&flow->voice_lock);
}

/* ---------------------------------------------------------------- stream */

cosy_status cosy_flow_stream_create(cosy_flow *flow, const cosy_flow_prompt *prompt, cosy_flow_stream **out)
{
    if (out) *out = NULL;
    if (!flow || !prompt || !out) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no flow, prompt or output pointer");
    if (prompt->flow != flow) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: the prompt was made for another flow");
    if (flow->hp->family != COSY_FAMILY_COSYVOICE3) return stream_new(flow, prompt, out);
    cosy_flow_stream *s = calloc(1, sizeof *s);
    if (!s) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory");
    s->flow = flow;
    s->prompt = prompt; /* a reference: the stream keeps the prompt alive */
    atomic_fetch_add(&((cosy_flow_prompt *)prompt)->refs, 1);
    cosy_status st = cv3_stream_new(flow, prompt->tokens, prompt->n_tokens, prompt->feat, prompt->spks, prompt->dit, &s->dit);
    if (st != COSY_OK) {
        cosy_flow_stream_free(s);
        return st;
    }
    *out = s;
    return COSY_OK;
}

cosy_status cosy_flow_stream_set_window(cosy_flow_stream *s, int frames)
{
    if (!s) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no stream");
    if (s->dit && frames) return cosy_error(COSY_ERR_UNSUPPORTED, "flow stream: CosyVoice3 streams have no attention window");
    const int chunk2 = s->flow->hp->est_static_chunk;
    if (frames < 0 || frames % chunk2 || frames > (1 << 24))
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: a window of %d frames is not a whole number of %d-frame chunks (0 = no window)", frames,
                          chunk2);
    if (s->n_speech > 0) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: the window is set before the first call");
    s->window = frames;
    return COSY_OK;
}

cosy_status cosy_flow_stream_step(cosy_flow_stream *s, const int32_t *tokens, int n, int offset, int finalize, float *mel_out,
                                  int *n_frames)
{
    if (!s) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no stream");
    if (s->dit) {
        if (!mel_out || !n_frames) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no output buffer");
        return cv3_stream_step(s->dit, tokens, n, offset, finalize, mel_out, n_frames);
    }
    const cosy_hparams *hp = s->flow->hp;
    const int M = hp->flow_output_size, P = s->prompt->n_tokens, ratio = hp->token_mel_ratio, chunk2 = hp->est_static_chunk;
    const int context = finalize ? 0 : hp->pre_lookahead_len;
    if (s->finished) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: already finalized");
    if (!tokens || n < 1) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no speech tokens (n = %d)", n);
    if (n <= context)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: a non-final call needs more than the %d look-ahead tokens (got %d)", context, n);
    if (n < s->n_speech)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: %d speech tokens, fewer than the previous call's %d (calls must extend the "
                          "sequence)", n, s->n_speech);
    if (offset < 0 || offset > n - context)
        return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: offset %d outside [0, %d]", offset, n - context);
    if (!mel_out || !n_frames) return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: no output buffer");
    for (int i = 0; i < s->n_speech; i++)
        if (tokens[i] != s->tokens[P + i])
            return cosy_error(COSY_ERR_INVALID_ARG, "flow stream: token %d changed from %d to %d (calls must extend the sequence)", i,
                              s->tokens[P + i], tokens[i]);
    COSY_TRY(check_tokens(s->flow, tokens + s->n_speech, n - s->n_speech, "speech"));
    if (P + n > s->cap_tokens) {
        int cap = s->cap_tokens * 2 > P + n ? s->cap_tokens * 2 : P + n;
        int32_t *t = realloc(s->tokens, sizeof(int32_t) * (size_t)cap);
        if (!t) return cosy_error(COSY_ERR_NOMEM, "flow stream: out of memory for %d tokens", cap);
        s->tokens = t;
        s->cap_tokens = cap;
    }
    memcpy(s->tokens + P + s->n_speech, tokens + s->n_speech, sizeof(int32_t) * (size_t)(n - s->n_speech));
    s->n_tokens = P + n;

    cosy_status st = stream_advance(s, P + n, context);
    if (st != COSY_OK) {
        s->n_tokens = P + s->n_speech; /* the new tokens were not taken */
        return st;
    }
    s->n_speech = n;
    if (finalize) s->finished = 1;

    /* frames [2 (P + offset), 2 (P + n - context)) from the pages, channel-major */
    const int f0 = (P + offset) * ratio, f1 = (P + n - context) * ratio, F = f1 - f0;
    for (int f = f0; f < f1; f++) {
        const float *row = s->pages[f / chunk2] + s->layout.mel + (size_t)(f % chunk2) * M;
        for (int ch = 0; ch < M; ch++) mel_out[(size_t)ch * F + (f - f0)] = row[ch];
    }
    *n_frames = F;
    return COSY_OK;
}

size_t cosy_flow_stream_bytes(const cosy_flow_stream *s)
{
    if (!s) return 0;
    if (s->dit) return sizeof *s + cv3_stream_bytes(s->dit);
    const int E = s->flow->hp->enc_output_size;
    return sizeof *s + sizeof(float) * s->layout.total * (size_t)(s->n_pages - s->n_borrowed) +
           flow_kv_block_bytes(s->flow) * (size_t)(s->n_blocks - s->n_borrowed_blocks) + sizeof(float *) * (size_t)s->cap_pages +
           sizeof(int32_t) * (size_t)s->cap_tokens + pos_bytes(&s->pos_tok, E) + pos_bytes(&s->pos_frame, E) + s->arena.size;
}

size_t cosy_flow_stream_kv_bytes(const cosy_flow_stream *s)
{
    if (s && s->dit) return cv3_stream_bytes(s->dit); /* its pages are mostly keys and values */
    return s ? flow_kv_block_bytes(s->flow) * (size_t)(s->n_blocks - s->n_borrowed_blocks) : 0;
}

int cosy_flow_stream_chunks(const cosy_flow_stream *s) { return s ? (s->dit ? cv3_stream_chunks(s->dit) : s->committed) : 0; }
