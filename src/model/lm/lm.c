/*
 * lm.c — the Qwen2 speech-token LM: weights in their run-time type, the key/value cache, and the
 * forward pass of a feed, or of the feeds of several sequences stacked as one (see lm.h; the queue
 * that stacks them is lm_batch.c).
 *
 * The forward pass is HF transformers' Qwen2 (modeling_qwen2.py at 4.51, the version CosyVoice
 * pins) as CosyVoice calls it through Qwen2Encoder.forward_one_step: inputs_embeds instead of
 * token ids, a KV cache, plain causal attention (the mask CosyVoice passes is all ones), and the
 * last hidden state *after* the final RMSNorm (hidden_states[-1]) going into llm_decoder. Per layer:
 *   n = RMSNorm(x);  q,k,v = W·n + b;  RoPE(q, k) at absolute positions (rotate-half);
 *   a = softmax(q·kᵀ/√d) v over all cached positions (GQA: query head h reads kv head h / group);
 *   x += Wo·a;  n = RMSNorm(x);  x += Wdown·(silu(Wgate·n) ⊙ Wup·n).
 *
 * Where the work goes: in a decode step every weight byte is read once (the gemv kernels, split
 * over the thread pool by rows; q/k/v and gate/up share one parallel region each); a long feed
 * runs in chunks of LM_CHUNK positions, through OpenBLAS for f32 weights and through the gemv
 * kernels 8 rows at a time for bf16/q8_0/q4_0 (the VNNI paths are fast enough that way).
 *
 * Weight types: a matrix the file stores in the run-time type (cosy convert --lm-dtype) is used in
 * place from the mapped file — the quantised kernels read ggml's q8_0/q4_0 blocks as stored — so a
 * q4_0 file loads at once and only the pages the LM touches become resident; any other combination
 * is converted once at load. The head runs in cosy_lm_head_dtype (q8_0 for a q4_0 body).
 */
#include "model/lm/lm.h"
#include "model/lm/lm_batch.h"
#include "core/arena.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/half.h"
#include "core/gemv.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "model/model.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LM_CHUNK 128      /* positions per internal pass of a long feed (bounds the scratch) */
#define LM_ROW_BLOCK 64   /* weight rows per kernel call, so they stay in L2 while 8-row groups pass */
#define LM_ROW_UNIT 16    /* thread ranges start at multiples of this (whole kernel tiles) */
#define LM_TILE_MIN_T 16  /* a feed of at least this many positions multiplies through bf16 tiles */
#define LM_ATT_TASKS 16   /* attention scratch slots: (position, kv head) pairs are split into this many tasks */
/* a batch goes through the gemv kernels in one group of rows, as each of its feeds does alone */
_Static_assert(LM_BATCH_ROWS <= COSY_GEMV_MAX_T && LM_BATCH_ROWS < LM_TILE_MIN_T && LM_BATCH_ROWS <= LM_CHUNK,
               "a batch must take the kernels of a solo feed");

/* One Qwen2 decoder layer (Qwen2DecoderLayer); matrices are [rows][cols] as nn.Linear stores them. */
typedef struct {
    const float *attn_norm;   /* (width) input_layernorm, RMSNorm */
    const float *ffn_norm;    /* (width) post_attention_layernorm, RMSNorm */
    const float *bq;          /* (q_width) q_proj bias */
    const float *bk, *bv;     /* (kv_width) k_proj, v_proj biases */
    cosy_matrix q;            /* (q_width, width) q_proj */
    cosy_matrix k, v;         /* (kv_width, width) k_proj, v_proj */
    cosy_matrix o;            /* (width, q_width) o_proj */
    cosy_matrix gate, up;     /* (ffn_width, width) mlp.gate_proj, mlp.up_proj */
    cosy_matrix down;         /* (width, ffn_width) mlp.down_proj */
} lm_layer;

struct cosy_lm {
    cosy_model *model;
    const cosy_hparams *hp;
    cosy_dtype dtype;         /* the run-time type of the matrices (model params lm_dtype) */
    int width;                /* hidden size of the Qwen2 body (896 in CosyVoice2-0.5B) */
    int n_layers;             /* decoder layers */
    int n_heads;              /* query heads */
    int n_kv_heads;           /* key/value heads (grouped-query attention) */
    int head_dim;             /* per head */
    int ffn_width;            /* the MLP's intermediate size */
    int q_width;              /* n_heads * head_dim */
    int kv_width;             /* n_kv_heads * head_dim */
    int speech_vocab;         /* ids the head scores and speech_embedding holds: 6564 (v2), 6761 (v3) */
    int heads_per_kv;         /* n_heads / n_kv_heads: query heads sharing one key/value head */
    const cosy_tensor *embd_text;    /* (text vocab, width) the Qwen2 token embedding */
    const cosy_tensor *embd_speech;  /* (speech_vocab, width) speech_embedding */
    const cosy_tensor *embd_special; /* (2, width) CosyVoice2's llm_embedding: sos_eos (row 0), task_id (row 1);
                                      * CosyVoice3: speech_embedding itself (sos and task_id are its rows) */
    int64_t sos_row, task_row;       /* the rows of embd_special that sos and task_id read */
    int eos, fill;                   /* eos and the bistream fill token (speech ids) */
    int stop_begin, stop_end;        /* decoding stops on any id in [stop_begin, stop_end] */
    lm_layer *layers;         /* (n_layers) */
    const float *out_norm;    /* (width) the body's final RMSNorm */
    const float *head_bias;   /* (speech_vocab) llm_decoder bias, or NULL */
    cosy_matrix head;         /* (speech_vocab, width) llm_decoder */
    float *inv_freq;          /* (head_dim / 2) rotary frequencies */
    float scale;              /* 1 / sqrt(head_dim) */
    cosy_pool *pool;
    int n_threads;
    int tiles;        /* long feeds may go through bf16 tiles (see matmul_tiles) */
    atomic_int n_states;  /* sequences alive: with one, feeds never queue (see cosy_lm_feed) */
    int batching;         /* short feeds of concurrent sequences may share a forward (COSY_LM_BATCH=0: never) */
    lm_batcher batcher;   /* short feeds of concurrent sequences, run as one forward (lm_batch.c) */
};

struct cosy_lm_state {
    cosy_lm *lm;
    int pos, cap;
    float *kc, *vc;                 /* [n_layers][n_kv_heads][cap][head_dim] */
    float *x, *xn, *q, *k, *v, *att, *gate, *up; /* [LM_CHUNK][width] */
    float *rope_cos, *rope_sin;     /* [LM_CHUNK][head_dim / 2] */
    float *scores;                  /* [LM_ATT_TASKS][heads_per_kv][cap] */
    void *act_scratch;              /* quantised activations for q8_0 matrices */
    uint16_t *tile_a;               /* a long feed's activations in bf16 [LM_CHUNK][widest] (lazily) */
    float *logits;                  /* [LM_BATCH_ROWS][speech_vocab]: one row per sequence of a batch */
    pthread_cond_t done_cv;         /* a queued feed of this sequence has run (lm_batch.c) */
    int counted;                    /* created in full: counted in lm->n_states, done_cv initialised */
};

/* ------------------------------------------------------------------ loading */

typedef struct {
    cosy_matrix *m;
    void *data;
    const void *src;
    cosy_dtype src_dtype;
    int n_tasks;
    atomic_int failed;
} convert_ctx;

static void convert_task(void *vctx, int task)
{
    convert_ctx *c = vctx;
    int r0, r1;
    cosy_split_range(c->m->rows, c->n_tasks, task, &r0, &r1);
    if (cosy_matrix_convert_rows(c->m, c->data, c->src, c->src_dtype, r0, r1) != 0) atomic_store(&c->failed, 1);
}

/* Brings the file's tensor `name` [rows, cols] into the run-time type `dtype`: a matrix stored in that
 * type is used in place from the mapped file (no copy); f32 from f16/bf16 is widened once; everything
 * else is converted here, in parallel. */
static cosy_status load_matrix(cosy_lm *lm, cosy_matrix *m, const char *name, cosy_dtype dtype)
{
    const cosy_tensor *t = NULL;
    COSY_TRY(cosy_model_tensor(lm->model, name, &t));
    if (t->ndim != 2) return cosy_error(COSY_ERR_SHAPE, "lm: tensor %s is not a matrix", name);
    memset(m, 0, sizeof *m);
    m->rows = (int)t->shape[0];
    m->cols = (int)t->shape[1];
    m->dtype = dtype;
    if (cosy_dtype_block(m->dtype) > 1 && m->cols % COSY_Q8_BLOCK) m->dtype = COSY_DTYPE_F32; /* no whole blocks */
    if (t->dtype == m->dtype) {
        m->data = t->data;
        return COSY_OK;
    }
    if (m->dtype == COSY_DTYPE_F32) {
        const float *p = NULL;
        COSY_TRY(cosy_model_f32(lm->model, name, &p));
        m->data = p;
        return COSY_OK;
    }
    convert_ctx c = {m, NULL, t->data, t->dtype, 0, 0};
    atomic_init(&c.failed, 0);
    c.data = cosy_model_alloc(lm->model, cosy_dtype_nbytes(m->dtype, (int64_t)m->rows * m->cols));
    if (!c.data) return cosy_error(COSY_ERR_NOMEM, "lm: out of memory converting %s to %s", name, cosy_dtype_name(m->dtype));
    c.n_tasks = lm->n_threads * 4;
    if (c.n_tasks > m->rows) c.n_tasks = m->rows;
    cosy_pool_run(lm->pool, c.n_tasks, convert_task, &c);
    if (atomic_load(&c.failed)) return cosy_error(COSY_ERR_NOMEM, "lm: out of memory converting %s", name);
    m->data = c.data;
    return COSY_OK;
}

static cosy_status lm_create(cosy_model *model, void **out)
{
    const cosy_hparams *hp = &model->hp;
    cosy_lm *lm = calloc(1, sizeof *lm);
    if (!lm) return cosy_error(COSY_ERR_NOMEM, "lm: out of memory");
    lm->model = model;
    lm->hp = hp;
    lm->dtype = model->params.lm_dtype;
    lm->width = hp->lm_hidden;
    lm->n_layers = hp->lm_layers;
    lm->n_heads = hp->lm_heads;
    lm->n_kv_heads = hp->lm_kv_heads;
    lm->head_dim = hp->lm_head_dim;
    lm->ffn_width = hp->lm_ffn;
    lm->q_width = lm->n_heads * lm->head_dim;
    lm->kv_width = lm->n_kv_heads * lm->head_dim;
    lm->speech_vocab = hp->lm_speech_vocab;
    lm->heads_per_kv = lm->n_heads / lm->n_kv_heads;
    lm->scale = 1.0f / sqrtf((float)lm->head_dim);
    lm->pool = model->pool;
    lm->n_threads = cosy_pool_size(model->pool);
    {
        const char *env = getenv("COSY_LM_TILES"); /* 0: keep long feeds on the gemv kernels (to measure them) */
        lm->tiles = !(env && env[0] == '0');
    }
    {
        const char *env = getenv("COSY_LM_BATCH"); /* 0: every feed runs alone (to measure batching) */
        lm->batching = !(env && env[0] == '0');
    }
    atomic_init(&lm->n_states, 0);
    lm_batcher_init(&lm->batcher, lm->n_layers);
    cosy_status st = COSY_OK;
    if (lm->dtype != COSY_DTYPE_F32 && lm->dtype != COSY_DTYPE_BF16 && lm->dtype != COSY_DTYPE_Q8_0 && lm->dtype != COSY_DTYPE_Q4_0)
        st = cosy_error(COSY_ERR_INVALID_ARG, "lm: run-time type %s is not supported (f32, bf16, q8_0, q4_0)", cosy_dtype_name(lm->dtype));
    lm->layers = calloc((size_t)lm->n_layers, sizeof *lm->layers);
    lm->inv_freq = calloc((size_t)lm->head_dim / 2 + 1, sizeof(float));
    if (st == COSY_OK && (!lm->layers || !lm->inv_freq)) st = cosy_error(COSY_ERR_NOMEM, "lm: out of memory");
    if (st == COSY_OK) st = cosy_model_tensor(model, "lm.embd_text.weight", &lm->embd_text);
    if (st == COSY_OK) st = cosy_model_tensor(model, "lm.embd_speech.weight", &lm->embd_speech);
    /* Qwen2LM: sos / task_id from llm_embedding, eos = S, fill = S + 2, stop ids S..S+2;
     * CosyVoice3LM: rows lm_sos / lm_task_id of speech_embedding, the ids from the hyperparameters */
    if (hp->family == COSY_FAMILY_COSYVOICE3) {
        lm->embd_special = lm->embd_speech;
        lm->sos_row = hp->lm_sos;
        lm->task_row = hp->lm_task_id;
        lm->eos = hp->lm_eos;
        lm->fill = hp->lm_fill;
        lm->stop_begin = hp->lm_stop_begin;
        lm->stop_end = hp->lm_stop_end;
    } else {
        if (st == COSY_OK) st = cosy_model_tensor(model, "lm.embd_special.weight", &lm->embd_special);
        lm->sos_row = 0;
        lm->task_row = 1;
        lm->eos = hp->speech_token_size;
        lm->fill = hp->speech_token_size + 2;
        lm->stop_begin = hp->speech_token_size;
        lm->stop_end = hp->speech_token_size + 2;
    }
    char name[128];
    for (int l = 0; st == COSY_OK && l < lm->n_layers; l++) {
        lm_layer *y = &lm->layers[l];
#define MAT(field, suffix) \
    if (st == COSY_OK) { snprintf(name, sizeof name, "lm.blk.%d.%s", l, suffix); st = load_matrix(lm, &y->field, name, lm->dtype); }
        st = cosy_model_f32f(model, &y->attn_norm, "lm.blk.%d.attn_norm.weight", l);
        if (st == COSY_OK) st = cosy_model_f32f(model, &y->ffn_norm, "lm.blk.%d.ffn_norm.weight", l);
        if (st == COSY_OK) st = cosy_model_f32f(model, &y->bq, "lm.blk.%d.attn_q.bias", l);
        if (st == COSY_OK) st = cosy_model_f32f(model, &y->bk, "lm.blk.%d.attn_k.bias", l);
        if (st == COSY_OK) st = cosy_model_f32f(model, &y->bv, "lm.blk.%d.attn_v.bias", l);
        MAT(q, "attn_q.weight")
        MAT(k, "attn_k.weight")
        MAT(v, "attn_v.weight")
        MAT(o, "attn_o.weight")
        MAT(gate, "ffn_gate.weight")
        MAT(up, "ffn_up.weight")
        MAT(down, "ffn_down.weight")
#undef MAT
    }
    if (st == COSY_OK) st = cosy_model_f32(model, "lm.out_norm.weight", &lm->out_norm);
    if (st == COSY_OK) st = load_matrix(lm, &lm->head, "lm.head.weight", cosy_lm_head_dtype(lm->dtype));
    if (st == COSY_OK && hp->lm_has_head_bias) st = cosy_model_f32(model, "lm.head.bias", &lm->head_bias);
    if (st == COSY_OK && (lm->embd_text->shape[1] != lm->width || lm->embd_speech->shape[0] != lm->speech_vocab ||
                          lm->embd_special->shape[0] <= lm->sos_row || lm->embd_special->shape[0] <= lm->task_row || lm->stop_end >= lm->speech_vocab ||
                          lm->eos >= lm->speech_vocab || lm->fill >= lm->speech_vocab))
        st = cosy_error(COSY_ERR_SHAPE, "lm: embedding tables disagree with the hyperparameters");
    if (st == COSY_OK) {
        /* HF's default rope: inv_freq = 1 / theta^(2j / d), computed in f32 as torch does */
        for (int j = 0; j < lm->head_dim / 2; j++)
            lm->inv_freq[j] = 1.0f / powf(hp->lm_rope_theta, (float)(2 * j) / (float)lm->head_dim);
    }
    if (st != COSY_OK) {
        lm_batcher_destroy(&lm->batcher);
        free(lm->layers);
        free(lm->inv_freq);
        free(lm);
        return st;
    }
    *out = lm;
    return COSY_OK;
}

static void lm_destroy(void *state)
{
    cosy_lm *lm = state;
    if (!lm) return;
    lm_batcher_destroy(&lm->batcher);
    free(lm->layers);
    free(lm->inv_freq);
    free(lm);
}

static const cosy_module_def lm_module = {"lm", lm_create, lm_destroy};

cosy_status cosy_lm_get(cosy_model *model, cosy_lm **out)
{
    void *p = NULL;
    COSY_TRY(cosy_model_module(model, &lm_module, &p));
    *out = p;
    return COSY_OK;
}

cosy_dtype cosy_lm_head_dtype(cosy_dtype lm_dtype) { return lm_dtype == COSY_DTYPE_Q4_0 ? COSY_DTYPE_Q8_0 : lm_dtype; }

const cosy_hparams *cosy_lm_hparams(const cosy_lm *lm) { return lm->hp; }
cosy_dtype cosy_lm_dtype(const cosy_lm *lm) { return lm->dtype; }
int cosy_lm_set_feed_tiles(cosy_lm *lm, int on)
{
    int was = lm->tiles;
    lm->tiles = on != 0;
    return was;
}
int cosy_lm_vocab(const cosy_lm *lm) { return lm->speech_vocab; }
int cosy_lm_hidden(const cosy_lm *lm) { return lm->width; }
int cosy_lm_eos(const cosy_lm *lm) { return lm->eos; }
int cosy_lm_fill(const cosy_lm *lm) { return lm->fill; }
int cosy_lm_is_stop(const cosy_lm *lm, int32_t id) { return id >= lm->stop_begin && id <= lm->stop_end; }
int cosy_lm_min_len_mask(const cosy_lm *lm) { return lm->hp->speech_token_size; }

/* ------------------------------------------------------------------ embeddings */

static cosy_status check_id(const cosy_lm *lm, cosy_lm_kind kind, int32_t id)
{
    switch (kind) {
    case COSY_LM_SOS:
    case COSY_LM_TASK: return COSY_OK;
    case COSY_LM_TEXT:
        if (id < 0 || id >= lm->embd_text->shape[0])
            return cosy_error(COSY_ERR_INVALID_ARG, "lm: text token id %d is out of range (the text vocabulary has %lld entries)", (int)id,
                              (long long)lm->embd_text->shape[0]);
        return COSY_OK;
    case COSY_LM_SPEECH:
        if (id < 0 || id >= lm->embd_speech->shape[0])
            return cosy_error(COSY_ERR_INVALID_ARG, "lm: speech token id %d is out of range (0..%lld)", (int)id,
                              (long long)lm->embd_speech->shape[0] - 1);
        return COSY_OK;
    }
    return cosy_error(COSY_ERR_INVALID_ARG, "lm: unknown input kind %d", (int)kind);
}

static void table_row(const cosy_tensor *t, int64_t row, int H, float *out)
{
    size_t row_bytes = cosy_dtype_nbytes(t->dtype, H);
    cosy_convert_to_f32(out, (const char *)t->data + (size_t)row * row_bytes, t->dtype, H);
}

cosy_status cosy_lm_embed(const cosy_lm *lm, cosy_lm_kind kind, int32_t id, float *out)
{
    COSY_TRY(check_id(lm, kind, id));
    switch (kind) {
    case COSY_LM_SOS: table_row(lm->embd_special, lm->sos_row, lm->width, out); break;
    case COSY_LM_TASK: table_row(lm->embd_special, lm->task_row, lm->width, out); break;
    case COSY_LM_TEXT: table_row(lm->embd_text, id, lm->width, out); break;
    case COSY_LM_SPEECH: table_row(lm->embd_speech, id, lm->width, out); break;
    }
    return COSY_OK;
}

/* ------------------------------------------------------------------ state */

static size_t act_scratch_bytes(const cosy_lm *lm)
{
    int widest = lm->width > lm->ffn_width ? lm->width : lm->ffn_width;
    if (lm->q_width > widest) widest = lm->q_width;
    return cosy_gemv_scratch_bytes(COSY_DTYPE_Q8_0, LM_CHUNK, widest) + 64;
}

static cosy_status state_grow(cosy_lm_state *st, int need)
{
    cosy_lm *lm = st->lm;
    if (need <= st->cap) return COSY_OK;
    if (need > COSY_LM_MAX_POSITIONS)
        return cosy_error(COSY_ERR_INVALID_ARG, "lm: the sequence would reach %d positions (at most %d)", need, COSY_LM_MAX_POSITIONS);
    int cap = st->cap ? st->cap : 64;
    while (cap < need) cap *= 2;
    if (cap > COSY_LM_MAX_POSITIONS) cap = COSY_LM_MAX_POSITIONS;
    size_t per = (size_t)lm->n_layers * lm->n_kv_heads * lm->head_dim;
    float *kc = cosy_aligned_alloc(sizeof(float) * per * cap), *vc = cosy_aligned_alloc(sizeof(float) * per * cap);
    float *sc = cosy_aligned_alloc(sizeof(float) * LM_ATT_TASKS * lm->heads_per_kv * (size_t)cap);
    if (!kc || !vc || !sc) {
        cosy_aligned_free(kc);
        cosy_aligned_free(vc);
        cosy_aligned_free(sc);
        return cosy_error(COSY_ERR_NOMEM, "lm: out of memory for a key/value cache of %d positions", cap);
    }
    for (int s = 0; s < lm->n_layers * lm->n_kv_heads && st->pos > 0; s++) {
        memcpy(kc + (size_t)s * cap * lm->head_dim, st->kc + (size_t)s * st->cap * lm->head_dim, sizeof(float) * st->pos * lm->head_dim);
        memcpy(vc + (size_t)s * cap * lm->head_dim, st->vc + (size_t)s * st->cap * lm->head_dim, sizeof(float) * st->pos * lm->head_dim);
    }
    cosy_aligned_free(st->kc);
    cosy_aligned_free(st->vc);
    cosy_aligned_free(st->scores);
    st->kc = kc;
    st->vc = vc;
    st->scores = sc;
    st->cap = cap;
    return COSY_OK;
}

cosy_status cosy_lm_state_create(cosy_lm *lm, int capacity, cosy_lm_state **out)
{
    *out = NULL;
    if (capacity < 1 || capacity > COSY_LM_MAX_POSITIONS)
        return cosy_error(COSY_ERR_INVALID_ARG, "lm: cache capacity %d is outside 1..%d", capacity, COSY_LM_MAX_POSITIONS);
    cosy_lm_state *st = calloc(1, sizeof *st);
    if (!st) return cosy_error(COSY_ERR_NOMEM, "lm: out of memory");
    st->lm = lm;
    const size_t C = LM_CHUNK;
    float **bufs[] = {&st->x, &st->xn, &st->q, &st->k, &st->v, &st->att, &st->gate, &st->up, &st->rope_cos, &st->rope_sin,
                      &st->logits};
    const size_t sizes[] = {C * lm->width, C * lm->width, C * lm->q_width, C * lm->kv_width, C * lm->kv_width, C * lm->q_width, C * lm->ffn_width, C * lm->ffn_width,
                            C * (lm->head_dim / 2 + 1), C * (lm->head_dim / 2 + 1), (size_t)LM_BATCH_ROWS * lm->speech_vocab};
    int ok = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *bufs[i] = cosy_aligned_alloc(sizeof(float) * sizes[i]);
        ok = ok && *bufs[i];
    }
    st->act_scratch = cosy_aligned_alloc(act_scratch_bytes(lm));
    cosy_status s = ok && st->act_scratch ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "lm: out of memory for the session buffers");
    if (s == COSY_OK) s = state_grow(st, capacity);
    if (s != COSY_OK) {
        cosy_lm_state_free(st);
        return s;
    }
    pthread_cond_init(&st->done_cv, NULL);
    st->counted = 1;
    atomic_fetch_add(&lm->n_states, 1);
    *out = st;
    return COSY_OK;
}

void cosy_lm_state_free(cosy_lm_state *st)
{
    if (!st) return;
    if (st->counted) {
        atomic_fetch_sub(&st->lm->n_states, 1);
        pthread_cond_destroy(&st->done_cv);
    }
    float *bufs[] = {st->x, st->xn, st->q, st->k, st->v, st->att, st->gate, st->up, st->rope_cos, st->rope_sin, st->logits,
                     st->kc, st->vc, st->scores};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cosy_aligned_free(bufs[i]);
    cosy_aligned_free(st->act_scratch);
    cosy_aligned_free(st->tile_a);
    free(st);
}

cosy_status cosy_lm_state_reserve(cosy_lm_state *st, int positions) { return state_grow(st, positions); }
void cosy_lm_state_reset(cosy_lm_state *st) { st->pos = 0; }
int cosy_lm_state_position(const cosy_lm_state *st) { return st->pos; }
cosy_lm *cosy_lm_state_lm(const cosy_lm_state *st) { return st->lm; }

/* ------------------------------------------------------------------ parallel matrix products */

typedef struct {
    const cosy_matrix *W;
    const float *bias;
    float *y;  /* [T][W->rows] */
} mm_job;

typedef struct {
    mm_job job[3];
    int n_jobs, units, n_tasks;
    const cosy_gemv_input *x;
} mm_ctx;

static void mm_task(void *vctx, int task)
{
    mm_ctx *c = vctx;
    int u0, u1;
    cosy_split_range(c->units, c->n_tasks, task, &u0, &u1);
    int b = u0 * LM_ROW_UNIT, e = u1 * LM_ROW_UNIT, off = 0;
    for (int j = 0; j < c->n_jobs; j++) {
        const cosy_matrix *W = c->job[j].W;
        int lb = b - off, le = e - off;
        if (lb < 0) lb = 0;
        if (le > W->rows) le = W->rows;
        for (int r = lb; r < le; r += LM_ROW_BLOCK)
            cosy_gemv(W, c->x, c->job[j].bias, c->job[j].y, W->rows, r, r + LM_ROW_BLOCK < le ? r + LM_ROW_BLOCK : le);
        off += (W->rows + LM_ROW_UNIT - 1) / LM_ROW_UNIT * LM_ROW_UNIT;
    }
}

/*
 * A long feed (the prompt's prefill) on compact weights: the gemv kernels re-read the weights every 8
 * positions and spend most of their time on per-block scales, so from LM_TILE_MIN_T positions on,
 * on a CPU whose bf16 products are faster than f32 (AMX, or AVX512-BF16 at full rate), each thread
 * widens 32 weight rows at a time into bf16 tiles in its scratch (L2-sized) and runs the bf16 kernels
 * of core/gemm.h over all the positions, rounded to bf16 once. The error this adds to the type's own
 * (bf16 rounding of activations and of the dequantised weights) is measured in test_lm.
 */
typedef struct {
    mm_job job[3];
    int n_jobs, units, n_tasks, T, Kp;
    const uint16_t *A;
} tile_ctx;

static void tile_rows(const tile_ctx *c, const mm_job *jb, int r, int n, uint16_t *tiles)
{
    const cosy_matrix *W = jb->W;
    const size_t row_bytes = cosy_dtype_nbytes(W->dtype, W->cols);
    cosy_pack_bf16_typed(tiles, (const char *)W->data + (size_t)r * row_bytes, W->dtype, row_bytes, n, W->cols);
    cosy_gemm_bf16(c->T, n, c->Kp, c->A, tiles, c->Kp / 32, jb->bias ? jb->bias + r : NULL, jb->y + r, W->rows, 0, COSY_ACT_NONE, 0, 1);
}

/* Without scratch for the tiles (out of memory): the same rows one at a time, widened to f32. */
static __attribute__((noinline)) void tile_rows_plain(const tile_ctx *c, const mm_job *jb, int r, int n)
{
    const cosy_matrix *W = jb->W;
    const int K = W->cols;
    const size_t row_bytes = cosy_dtype_nbytes(W->dtype, K);
    float w[8192];
    for (int i = 0; i < n; i++) {
        cosy_convert_to_f32(w, (const char *)W->data + (size_t)(r + i) * row_bytes, W->dtype, K);
        for (int t = 0; t < c->T; t++) {
            const uint16_t *a = c->A + (size_t)t * c->Kp;
            float acc = jb->bias ? jb->bias[r + i] : 0.0f;
            for (int k = 0; k < K; k++) acc += cosy_bf16_to_f32(a[k]) * cosy_bf16_to_f32(cosy_f32_to_bf16(w[k]));
            jb->y[(size_t)t * W->rows + r + i] = acc;
        }
    }
}

static void tile_task(void *vctx, int task)
{
    const tile_ctx *c = vctx;
    int u0, u1;
    cosy_split_range(c->units, c->n_tasks, task, &u0, &u1);
    if (u0 >= u1) return;
    const int K = c->job[0].W->cols;
    uint16_t *scratch = cosy_thread_scratch(sizeof(uint16_t) * cosy_pack_bf16_elems(32, K));
    int off = 0;
    for (int j = 0; j < c->n_jobs; j++) {
        const int rows = c->job[j].W->rows, units = (rows + 31) / 32;
        for (int u = u0 > off ? u0 : off; u < u1 && u < off + units; u++) {
            const int r = (u - off) * 32, n = rows - r < 32 ? rows - r : 32;
            if (scratch) tile_rows(c, &c->job[j], r, n, scratch);
            else tile_rows_plain(c, &c->job[j], r, n);
        }
        off += units;
    }
}

static int matmul_tiles(cosy_lm_state *st, const float *x, int T, const mm_job *jobs, int n_jobs)
{
    cosy_lm *lm = st->lm;
    const int K = jobs[0].W->cols, Kp = (K + 31) / 32 * 32;
    if (K > 8192) return 0;
    if (!st->tile_a) {
        const int widest = lm->ffn_width > lm->width ? (lm->ffn_width > lm->q_width ? lm->ffn_width : lm->q_width) : (lm->width > lm->q_width ? lm->width : lm->q_width);
        st->tile_a = cosy_aligned_alloc(sizeof(uint16_t) * (size_t)(LM_CHUNK + 31) / 32 * 32 * (size_t)((widest + 31) / 32 * 32));
        if (!st->tile_a) return 0;
    }
    cosy_bf16_convert_rows(st->tile_a, x, T, K, K, 1.0f, Kp, (T + 31) / 32 * 32);
    tile_ctx c;
    memset(&c, 0, sizeof c);
    c.n_jobs = n_jobs;
    c.T = T;
    c.Kp = Kp;
    c.A = st->tile_a;
    for (int j = 0; j < n_jobs; j++) {
        c.job[j] = jobs[j];
        c.units += (jobs[j].W->rows + 31) / 32;
    }
    c.n_tasks = lm->n_threads;
    if (c.n_tasks > c.units) c.n_tasks = c.units;
    if (c.n_tasks <= 1) tile_task(&c, 0);
    else cosy_pool_run(lm->pool, c.n_tasks, tile_task, &c);
    return 1;
}

/* y_j[T][rows_j] = x[T][cols] · W_jᵀ + b_j for up to three matrices of the same width and type. */
static void matmul(cosy_lm_state *st, const float *x, int T, const mm_job *jobs, int n_jobs)
{
    cosy_lm *lm = st->lm;
    const cosy_matrix *W0 = jobs[0].W;
    if (W0->dtype == COSY_DTYPE_F32 && T > COSY_GEMV_MAX_T) {
        for (int j = 0; j < n_jobs; j++) cosy_linear(jobs[j].y, x, T, W0->cols, jobs[j].W->data, jobs[j].bias, jobs[j].W->rows);
        return;
    }
    if (W0->dtype != COSY_DTYPE_F32 && T >= LM_TILE_MIN_T && lm->tiles && cosy_gemm_bf16_faster() && matmul_tiles(st, x, T, jobs, n_jobs)) return;
    cosy_gemv_input in;
    cosy_gemv_prepare(&in, W0->dtype, x, T, W0->cols, st->act_scratch);
    mm_ctx c;
    memset(&c, 0, sizeof c);
    c.n_jobs = n_jobs;
    c.x = &in;
    for (int j = 0; j < n_jobs; j++) {
        c.job[j] = jobs[j];
        c.units += (jobs[j].W->rows + LM_ROW_UNIT - 1) / LM_ROW_UNIT;
    }
    c.n_tasks = lm->n_threads * 4;
    if (c.n_tasks > c.units) c.n_tasks = c.units;
    if (c.n_tasks <= 1) mm_task(&c, 0);
    else cosy_pool_run(lm->pool, c.n_tasks, mm_task, &c);
}

/* ------------------------------------------------------------------ passes */

/*
 * A pass is rows of one forward going through a layer together, stacked in the buffers of one state
 * (`work`): segments of consecutive positions, each of one sequence at its own position against its
 * own cache. A feed alone is a pass of one segment; a batch (lm_batch below, lm_batch.c) stacks one
 * segment per sequence in the buffers of its first, so each matrix is read once for all of them.
 * Every row goes through the same operations as it would alone: the projections and the MLP are
 * multi-row gemv products whose rows are computed independently (each row's activations quantised on
 * their own, the same accumulation order whatever the number of rows), norms and element-wise steps
 * are per row, and attention is per (row, kv head) against that row's own cache — so a row's
 * log-probabilities are bit-identical batched or alone (tests/test_lm_batch.c).
 */
typedef struct {
    cosy_lm_state *st;
    int row0, T;      /* rows [row0, row0 + T) of the pass are positions st->pos .. st->pos + T - 1 */
} lm_segment;

typedef struct {
    cosy_lm_state *work;  /* scratch of the products (act_scratch, tile_a) and the head (logits) */
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *rope_cos, *rope_sin; /* the pass's first row in work's buffers */
    const lm_segment *seg;
    int n_seg, T;         /* T rows in all */
} lm_pass;

/* The pass over rows [first, first + T) of w's buffers. */
static lm_pass pass_view(cosy_lm_state *w, int first, const lm_segment *seg, int n_seg, int T)
{
    const cosy_lm *lm = w->lm;
    const size_t f = (size_t)first, h2 = (size_t)lm->head_dim / 2 + 1;
    lm_pass p = {w,
                 w->x + f * lm->width, w->xn + f * lm->width, w->q + f * lm->q_width, w->k + f * lm->kv_width, w->v + f * lm->kv_width,
                 w->att + f * lm->q_width, w->gate + f * lm->ffn_width, w->up + f * lm->ffn_width, w->rope_cos + f * h2, w->rope_sin + f * h2,
                 seg, n_seg, T};
    return p;
}

/* ------------------------------------------------------------------ attention */

typedef struct {
    const lm_pass *pass;
    int layer, pairs, n_tasks;
} att_ctx;

/* (row t, kv head g) pairs: the group of query heads that share kv head g attend over the positions
 * of t's sequence up to t's own, as one gemv (scores) and one transposed gemv (weighted values). */
static void att_task(void *vctx, int task)
{
    att_ctx *c = vctx;
    const lm_pass *ps = c->pass;
    const cosy_lm *lm = ps->work->lm;
    const int hd = lm->head_dim, G = lm->heads_per_kv;
    const lm_segment *sg = ps->seg;
    int p0, p1;
    cosy_split_range(c->pairs, c->n_tasks, task, &p0, &p1);
    for (int p = p0; p < p1; p++) {
        int t = p / lm->n_kv_heads, g = p % lm->n_kv_heads;
        while (t >= sg->row0 + sg->T) sg++;
        cosy_lm_state *st = sg->st;
        int ctx = st->pos + (t - sg->row0) + 1;
        float *scores = st->scores + (size_t)task * G * st->cap; /* task slots of the row's own sequence */
        size_t slot = ((size_t)c->layer * lm->n_kv_heads + g) * st->cap * hd;
        cosy_matrix K = {COSY_DTYPE_F32, ctx, hd, st->kc + slot};
        cosy_gemv_input in;
        cosy_gemv_prepare(&in, COSY_DTYPE_F32, ps->q + (size_t)t * lm->q_width + (size_t)g * G * hd, G, hd, NULL);
        cosy_gemv(&K, &in, NULL, scores, ctx, 0, ctx);
        for (int i = 0; i < G; i++) {
            float *s = scores + (size_t)i * ctx;
            for (int j = 0; j < ctx; j++) s[j] *= lm->scale; /* eager attention: (q·kᵀ) * scaling, then softmax */
            cosy_softmax(s, ctx);
        }
        cosy_gemv_t_f32(st->vc + slot, ctx, hd, hd, scores, ctx, G, ps->att + (size_t)t * lm->q_width + (size_t)g * G * hd, hd);
    }
}

/* ------------------------------------------------------------------ forward */

/* rotate-half RoPE (HF apply_rotary_pos_emb): out = x * cos + rotate_half(x) * sin, with dims j and
 * j + d/2 sharing the angle pos * inv_freq[j] */
static void rope(float *x, int T, int heads, int hd, const float *cosv, const float *sinv)
{
    const int h2 = hd / 2;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < heads; h++) {
            float *v = x + ((size_t)t * heads + h) * hd;
            const float *c = cosv + (size_t)t * (h2 + 1), *s = sinv + (size_t)t * (h2 + 1);
            for (int j = 0; j < h2; j++) {
                float a = v[j], b = v[j + h2];
                v[j] = a * c[j] - b * s[j];
                v[j + h2] = b * c[j] + a * s[j];
            }
        }
}

/* The rotary angles of every row's position. */
static void pass_rope(const lm_pass *ps)
{
    const cosy_lm *lm = ps->work->lm;
    const int h2 = lm->head_dim / 2;
    for (int s = 0; s < ps->n_seg; s++)
        for (int t = 0; t < ps->seg[s].T; t++) {
            const size_t row = (size_t)(ps->seg[s].row0 + t) * (h2 + 1);
            for (int j = 0; j < h2; j++) {
                float a = (float)(ps->seg[s].st->pos + t) * lm->inv_freq[j];
                ps->rope_cos[row + j] = cosf(a);
                ps->rope_sin[row + j] = sinf(a);
            }
        }
}

/* Layer l for the pass's rows (their residual stream in ps->x); their keys/values go to their caches. */
static void pass_layer(const lm_pass *ps, int l)
{
    cosy_lm_state *w = ps->work;
    cosy_lm *lm = w->lm;
    const lm_layer *y = &lm->layers[l];
    const int H = lm->width, hd = lm->head_dim, T = ps->T;
    const float eps = lm->hp->lm_rms_eps;
    cosy_rms_norm(ps->xn, ps->x, T, H, y->attn_norm, eps);
    mm_job qkv[3] = {{&y->q, y->bq, ps->q}, {&y->k, y->bk, ps->k}, {&y->v, y->bv, ps->v}};
    matmul(w, ps->xn, T, qkv, 3);
    rope(ps->q, T, lm->n_heads, hd, ps->rope_cos, ps->rope_sin);
    rope(ps->k, T, lm->n_kv_heads, hd, ps->rope_cos, ps->rope_sin);
    for (int s = 0; s < ps->n_seg; s++) {
        cosy_lm_state *st = ps->seg[s].st;
        for (int g = 0; g < lm->n_kv_heads; g++) {
            size_t slot = ((size_t)l * lm->n_kv_heads + g) * st->cap * hd;
            for (int t = 0; t < ps->seg[s].T; t++) {
                size_t from = (size_t)(ps->seg[s].row0 + t) * lm->kv_width + (size_t)g * hd, to = slot + (size_t)(st->pos + t) * hd;
                memcpy(st->kc + to, ps->k + from, sizeof(float) * hd);
                memcpy(st->vc + to, ps->v + from, sizeof(float) * hd);
            }
        }
    }
    att_ctx ac = {ps, l, T * lm->n_kv_heads, 0};
    ac.n_tasks = ac.pairs < LM_ATT_TASKS ? ac.pairs : LM_ATT_TASKS;
    if (ac.n_tasks == 1) att_task(&ac, 0);
    else cosy_pool_run(lm->pool, ac.n_tasks, att_task, &ac);
    mm_job o[1] = {{&y->o, NULL, ps->xn}};
    matmul(w, ps->att, T, o, 1);
    cosy_add(ps->x, ps->xn, (size_t)T * H);
    cosy_rms_norm(ps->xn, ps->x, T, H, y->ffn_norm, eps);
    mm_job gu[2] = {{&y->gate, NULL, ps->gate}, {&y->up, NULL, ps->up}};
    matmul(w, ps->xn, T, gu, 2);
    size_t n = (size_t)T * lm->ffn_width;
    cosy_silu(ps->gate, n);
    for (size_t i = 0; i < n; i++) ps->gate[i] *= ps->up[i];
    mm_job down[1] = {{&y->down, NULL, ps->xn}};
    matmul(w, ps->gate, T, down, 1);
    cosy_add(ps->x, ps->xn, (size_t)T * H);
}

/* log_softmax(llm_decoder(norm(h))) of each segment's last row, for the segments with a logp: the
 * normed rows stacked in ps->xn (free after the last layer), one head product for all of them. Then
 * the positions count as fed. */
static void pass_finish(const lm_pass *ps, float *const *logp)
{
    cosy_lm_state *w = ps->work;
    cosy_lm *lm = w->lm;
    int rows = 0;
    for (int s = 0; s < ps->n_seg; s++) {
        ps->seg[s].st->pos += ps->seg[s].T;
        if (logp[s])
            cosy_rms_norm(ps->xn + (size_t)rows++ * lm->width, ps->x + (size_t)(ps->seg[s].row0 + ps->seg[s].T - 1) * lm->width, 1, lm->width,
                          lm->out_norm, lm->hp->lm_rms_eps);
    }
    if (rows == 0) return;
    mm_job h[1] = {{&lm->head, lm->head_bias, w->logits}};
    matmul(w, ps->xn, rows, h, 1);
    rows = 0;
    for (int s = 0; s < ps->n_seg; s++)
        if (logp[s]) {
            memcpy(logp[s], w->logits + (size_t)rows++ * lm->speech_vocab, sizeof(float) * lm->speech_vocab);
            cosy_log_softmax(logp[s], lm->speech_vocab);
        }
}

/* Writes positions [i0, i0 + T) of a request into rows[T][H]. */
static void embed_rows(const cosy_lm *lm, const lm_request *r, int i0, int T, float *rows)
{
    if (!r->kinds) {
        memcpy(rows, r->embeds + (size_t)i0 * lm->width, sizeof(float) * T * lm->width);
        return;
    }
    for (int t = 0; t < T; t++) cosy_lm_embed(lm, r->kinds[i0 + t], r->ids[i0 + t], rows + (size_t)t * lm->width);
}

void lm_forward_alone(lm_request *r)
{
    cosy_lm_state *st = r->st;
    for (int i0 = 0; i0 < r->n; i0 += LM_CHUNK) { /* LM_CHUNK positions per pass */
        const lm_segment seg = {st, 0, r->n - i0 < LM_CHUNK ? r->n - i0 : LM_CHUNK};
        const lm_pass ps = pass_view(st, 0, &seg, 1, seg.T);
        float *none = NULL;
        embed_rows(st->lm, r, i0, seg.T, ps.x);
        pass_rope(&ps);
        for (int l = 0; l < st->lm->n_layers; l++) pass_layer(&ps, l);
        pass_finish(&ps, i0 + seg.T == r->n ? &r->logp : &none);
    }
}

/* ------------------------------------------------------------------ batches */

int lm_layers(const cosy_lm *lm) { return lm->n_layers; }

void lm_batch_admit(lm_batch *b, lm_request *r)
{
    if (b->n == 0) b->rows = 0;
    b->req[b->n] = r;
    b->layer[b->n] = 0;
    b->row0[b->n] = b->rows;
    cosy_lm_state *w = b->req[0]->st;
    const lm_segment seg = {r->st, 0, r->n};
    const lm_pass ps = pass_view(w, b->rows, &seg, 1, r->n);
    embed_rows(w->lm, r, 0, r->n, ps.x);
    pass_rope(&ps);
    b->n++;
    b->rows += r->n;
}

/* The requests are in admission order, their layers non-increasing: the ones at the lowest layer (a
 * suffix, contiguous rows) go through it; once they reach the layer of the ones before them, they
 * are one suffix with them — merged — and go on together. */
int lm_batch_step(lm_batch *b)
{
    cosy_lm_state *w = b->req[0]->st;
    const int low = b->layer[b->n - 1];
    int k = b->n - 1;
    while (k > 0 && b->layer[k - 1] == low) k--;
    lm_segment seg[LM_BATCH_ROWS];
    float *logp[LM_BATCH_ROWS];
    for (int i = k; i < b->n; i++) {
        seg[i - k] = (lm_segment){b->req[i]->st, b->row0[i] - b->row0[k], b->req[i]->n};
        logp[i - k] = b->req[i]->logp;
        b->layer[i]++;
    }
    const lm_pass ps = pass_view(w, b->row0[k], seg, b->n - k, b->rows - b->row0[k]);
    pass_layer(&ps, low);
    if (k > 0 || low + 1 < w->lm->n_layers) return 0;
    pass_finish(&ps, logp);
    return 1;
}

/* ------------------------------------------------------------------ feeds */

/* Checks that n positions fit and grows the cache for them (nothing is fed on error). */
static cosy_status feed_room(cosy_lm_state *st, int n)
{
    if (n < 1) return cosy_error(COSY_ERR_INVALID_ARG, "lm: a feed needs at least one position");
    if (n > COSY_LM_MAX_POSITIONS - st->pos)
        return cosy_error(COSY_ERR_INVALID_ARG, "lm: the sequence would reach %d positions (at most %d)", st->pos + n, COSY_LM_MAX_POSITIONS);
    return state_grow(st, st->pos + n);
}

/* A short feed while another sequence exists goes through the batcher, to share a forward with the
 * feeds other threads make at the same time; a lone sequence or a long feed (a prefill: more rows than
 * one pass of the gemv kernels takes) runs alone on the caller's thread, exactly as before batching. */
static void feed(cosy_lm_state *st, lm_request *r)
{
    cosy_lm *lm = st->lm;
    if (r->n > LM_BATCH_ROWS || !lm->batching || atomic_load_explicit(&lm->n_states, memory_order_relaxed) < 2) {
        lm_forward_alone(r);
        return;
    }
    r->done_cv = &st->done_cv;
    lm_batcher_submit(&lm->batcher, r);
}

cosy_status cosy_lm_feed(cosy_lm_state *st, const cosy_lm_kind *kinds, const int32_t *ids, int n, float *logp)
{
    for (int i = 0; i < n; i++) COSY_TRY(check_id(st->lm, kinds[i], ids[i]));
    COSY_TRY(feed_room(st, n));
    lm_request r = {.st = st, .kinds = kinds, .ids = ids, .n = n, .logp = logp};
    feed(st, &r);
    return COSY_OK;
}

cosy_status cosy_lm_feed_embeddings(cosy_lm_state *st, const float *embeds, int n, float *logp)
{
    COSY_TRY(feed_room(st, n));
    lm_request r = {.st = st, .embeds = embeds, .n = n, .logp = logp};
    feed(st, &r);
    return COSY_OK;
}

cosy_status cosy_lm_feed_batch(cosy_lm_state *const *states, const cosy_lm_kind *kinds, const int32_t *ids, int n, float *const *logp)
{
    if (n < 1 || n > COSY_LM_BATCH_MAX)
        return cosy_error(COSY_ERR_INVALID_ARG, "lm: a batch takes 1..%d sequences, not %d", COSY_LM_BATCH_MAX, n);
    for (int i = 0; i < n; i++) {
        if (states[i]->lm != states[0]->lm)
            return cosy_error(COSY_ERR_INVALID_ARG, "lm: the sequences of a batch belong to different models");
        for (int j = 0; j < i; j++)
            if (states[j] == states[i]) return cosy_error(COSY_ERR_INVALID_ARG, "lm: sequence %d appears twice in a batch", i);
        COSY_TRY(check_id(states[i]->lm, kinds[i], ids[i]));
    }
    for (int i = 0; i < n; i++) COSY_TRY(feed_room(states[i], 1));
    lm_request r[COSY_LM_BATCH_MAX];
    lm_batch b = {.n = 0};
    for (int i = 0; i < n; i++) {
        r[i] = (lm_request){.st = states[i], .kinds = kinds + i, .ids = ids + i, .n = 1, .logp = logp ? logp[i] : NULL};
        lm_batch_admit(&b, &r[i]);
    }
    while (!lm_batch_step(&b)) {}
    return COSY_OK;
}

void cosy_lm_batch_counts_get(cosy_lm *lm, cosy_lm_batch_counts *out) { lm_batcher_counts(&lm->batcher, out); }
