/*
 * model.c — a model file: loading, typed tensor access and the per-model modules (see model.h), and
 * every cosy_model_* function of the public API (cosy.h), including those that ask a network (the
 * flow's and HiFT's dtype) or build them all (cosy_model_prepare).
 */
#include "model/model.h"
#include "core/arena.h"
#include "core/conv1d.h"
#include "core/gemm.h"
#include "core/error.h"
#include "model/arch.h"
#include "model/flow/flow.h"
#include "model/hift/hift.h"
#include "model/hift/cv3_causal_hift.h"
#include "model/lm/lm.h"
#include "text/tokenizer.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS does not declare this in cblas.h on every distribution. */
void openblas_set_num_threads(int num_threads);

cosy_model_params cosy_model_default_params(void)
{
    cosy_model_params p;
    memset(&p, 0, sizeof p);
    p.lm_dtype = COSY_DTYPE_AUTO;
    p.flow_dtype = COSY_DTYPE_AUTO;
    p.hift_dtype = COSY_DTYPE_AUTO;
    p.n_threads = 0;
    p.voice_cache_mb = 1024;
    return p;
}

typedef struct {
    const cosy_model *m;
    cosy_status status;
} check_ctx;

static int check_tensor(void *vctx, const arch_tensor *spec)
{
    check_ctx *c = vctx;
    const cosy_tensor *t = NULL;
    c->status = cosy_model_tensor(c->m, spec->name, &t);
    if (c->status == COSY_OK) {
        int same = spec->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = spec->shape[d] == t->shape[d];
        if (!same) {
            char got[64], want[64];
            c->status = cosy_error(COSY_ERR_SHAPE, "%s: tensor %s has shape %s but the hyperparameters need %s", c->m->file.file.path,
                                   spec->name, cosy_shape_str(t->shape, t->ndim, got, sizeof got),
                                   cosy_shape_str(spec->shape, spec->ndim, want, sizeof want));
        }
    }
    if (c->status == COSY_OK && t->dtype != COSY_DTYPE_F32 && t->dtype != COSY_DTYPE_F16 && t->dtype != COSY_DTYPE_BF16 &&
        t->dtype != COSY_DTYPE_Q8_0 && t->dtype != COSY_DTYPE_Q4_0)
        c->status = cosy_error(COSY_ERR_UNSUPPORTED, "%s: tensor %s has type %s", c->m->file.file.path, spec->name, cosy_dtype_name(t->dtype));
    return c->status != COSY_OK;
}

static cosy_status load_speakers(cosy_model *m)
{
    char key[96];
    snprintf(key, sizeof key, "%s.speakers", cosy_family_arch(m->hp.family));
    const gguf_kv *kv = gguf_find_kv(&m->file, key);
    if (!kv) return COSY_OK;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || kv->n > 100000)
        return cosy_error(COSY_ERR_FORMAT, "%s: %s is not a list of names", m->file.file.path, key);
    m->speakers = calloc((size_t)kv->n + 1, sizeof(char *));
    if (!m->speakers) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < kv->n; i++) {
        m->speakers[i] = malloc((size_t)kv->strs[i].len + 1);
        if (!m->speakers[i]) return cosy_error(COSY_ERR_NOMEM, "out of memory");
        memcpy(m->speakers[i], kv->strs[i].ptr, (size_t)kv->strs[i].len);
        m->speakers[i][kv->strs[i].len] = 0;
        m->n_speakers = (int)i + 1;
    }
    return COSY_OK;
}

/* The run-time types that AUTO stands for: the fastest paths whose error against f32 is measured and
 * bounded by the tests, on this CPU, given how the file stores the weights. */
static void resolve_dtypes(cosy_model *m)
{
    if (m->params.lm_dtype == COSY_DTYPE_AUTO) {
        /* A file that stores the LM's matrices compactly (cosy convert --lm-dtype) runs them in that type,
         * in place from the map. Otherwise f32: q8_0 would be ~2x faster, but on the official fixture it
         * moves argmaxes (test_lm: 1 of 31 teacher-forced steps, 5 of 75 bistream forwards, all near-ties
         * of f32 gap < 0.19 against a logp error of 0.55), so it stays a choice made by name. */
        const cosy_tensor *t = gguf_find_tensor(&m->file, "lm.blk.0.attn_q.weight");
        cosy_dtype stored = t ? t->dtype : COSY_DTYPE_F32;
        m->params.lm_dtype = stored == COSY_DTYPE_Q4_0 || stored == COSY_DTYPE_Q8_0 || stored == COSY_DTYPE_BF16 ? stored : COSY_DTYPE_F32;
    }
    /* bf16 products where they are faster than f32: AMX, or AVX512-BF16 where its dot product outruns
     * f32 FMA (cosy_cpu_bf16_dot_faster). Errors against f32 are bounded in the tests: the flow's mel
     * within 1% of its largest value (test_flow_stream), the vocoder's waveform (test_hift_bf16). */
    if (m->params.flow_dtype == COSY_DTYPE_AUTO) m->params.flow_dtype = cosy_gemm_bf16_faster() ? COSY_DTYPE_BF16 : COSY_DTYPE_F32;
    if (m->params.hift_dtype == COSY_DTYPE_AUTO) m->params.hift_dtype = cosy_conv1d_bf16_faster() ? COSY_DTYPE_BF16 : COSY_DTYPE_F32;
}

/* Loads from `path`, or from data[0..size) when data is not NULL (path then names it). */
static cosy_status model_load(const char *path, const void *data, size_t size, const cosy_model_params *params, cosy_model **out)
{
    *out = NULL;
    cosy_model *m = calloc(1, sizeof *m);
    if (!m) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    m->params = params ? *params : cosy_model_default_params();
    pthread_mutex_init(&m->module_lock, NULL);
    cosy_status st = data ? gguf_open_mem(data, size, path, &m->file) : gguf_open(path, &m->file);
    /* general.architecture ("cosyvoice2" / "cosyvoice3") sets m->hp.family; anything else is refused there */
    if (st == COSY_OK) st = cosy_hparams_read(&m->file, &m->hp);
    if (st == COSY_OK) {
        check_ctx c = {m, COSY_OK};
        cosy_arch_tensors(&m->hp, check_tensor, &c);
        st = c.status;
    }
    if (st == COSY_OK) st = load_speakers(m);
    if (st == COSY_OK) {
        resolve_dtypes(m);
        if (m->params.lm_dtype != COSY_DTYPE_F32 && m->params.lm_dtype != COSY_DTYPE_BF16 && m->params.lm_dtype != COSY_DTYPE_Q8_0 &&
            m->params.lm_dtype != COSY_DTYPE_Q4_0)
            st = cosy_error(COSY_ERR_INVALID_ARG, "model: LM type %s is not supported (f32, bf16, q8_0, q4_0)",
                            cosy_dtype_name(m->params.lm_dtype));
        else if (m->params.flow_dtype != COSY_DTYPE_F32 && m->params.flow_dtype != COSY_DTYPE_BF16)
            st = cosy_error(COSY_ERR_INVALID_ARG, "model: flow type %s is not supported (f32, bf16)", cosy_dtype_name(m->params.flow_dtype));
        else if (m->params.hift_dtype != COSY_DTYPE_F32 && m->params.hift_dtype != COSY_DTYPE_BF16)
            st = cosy_error(COSY_ERR_INVALID_ARG, "model: vocoder type %s is not supported (f32, bf16)", cosy_dtype_name(m->params.hift_dtype));
    }
    if (st == COSY_OK) {
        int n = m->params.n_threads > 0 ? m->params.n_threads : cosy_online_cpus();
        /* with the AVX-512 kernels our work is split over our own pool, and OpenBLAS (HiFT's transposed
         * convolutions, split by us) runs single-threaded: its own threads next to the pool oversubscribed
         * the cores and re-faulted their buffers (~1M page faults per 10 s of streamed audio). The
         * portable path leaves the products to OpenBLAS's threads. */
        openblas_set_num_threads(cosy_gemm_f32_available() ? 1 : n);
        st = cosy_pool_create(n, &m->pool);
    }
    if (st != COSY_OK) {
        cosy_model_free(m);
        return st;
    }
    *out = m;
    return COSY_OK;
}

cosy_status cosy_model_load(const char *path, const cosy_model_params *params, cosy_model **out)
{
    return model_load(path, NULL, 0, params, out);
}

cosy_status cosy_model_load_mem(const void *data, size_t size, const char *name, const cosy_model_params *params, cosy_model **out)
{
    return model_load(name, data ? data : "", size, params, out);
}

void cosy_model_free(cosy_model *m)
{
    if (!m) return;
    for (int i = m->n_modules - 1; i >= 0; i--)
        if (m->module_defs[i]->destroy) m->module_defs[i]->destroy(m->module_states[i]);
    pthread_mutex_destroy(&m->module_lock);
    cosy_pool_free(m->pool);
    for (int i = 0; i < m->n_owned; i++) cosy_aligned_free(m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->n_speakers; i++) free(m->speakers[i]);
    free(m->speakers);
    gguf_close(&m->file);
    free(m);
}

cosy_status cosy_model_tensor(const cosy_model *m, const char *name, const cosy_tensor **out)
{
    /* shapes of architecture tensors were checked once at load (check_tensor) */
    const cosy_tensor *t = gguf_find_tensor(&m->file, name);
    if (!t) return cosy_error(COSY_ERR_MISSING, "%s: tensor %s is missing", m->file.file.path, name);
    *out = t;
    return COSY_OK;
}

void *cosy_model_alloc(cosy_model *m, size_t bytes)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 64;
        void **n = realloc(m->owned, sizeof *n * (size_t)cap);
        if (!n) return NULL;
        m->owned = n;
        m->cap_owned = cap;
    }
    void *p = cosy_aligned_alloc(bytes);
    if (p) m->owned[m->n_owned++] = p;
    return p;
}

cosy_status cosy_model_f32(cosy_model *m, const char *name, const float **out)
{
    const cosy_tensor *t = NULL;
    COSY_TRY(cosy_model_tensor(m, name, &t));
    if (t->dtype == COSY_DTYPE_F32) {
        *out = t->data;
        return COSY_OK;
    }
    int64_t n = cosy_tensor_numel(t);
    float *copy = cosy_model_alloc(m, sizeof(float) * (size_t)n);
    if (!copy) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory widening %s", m->file.file.path, name);
    cosy_convert_to_f32(copy, t->data, t->dtype, n);
    *out = copy;
    return COSY_OK;
}

cosy_status cosy_model_f32f(cosy_model *m, const float **out, const char *fmt, ...)
{
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return cosy_model_f32(m, name, out);
}

void cosy_model_print_info(const cosy_model *m, void *file)
{
    FILE *fp = file;
    const gguf_file *g = &m->file;
    const cosy_hparams *hp = &m->hp;
    char source_key[64];
    snprintf(source_key, sizeof source_key, "%s.source", cosy_family_arch(hp->family));
    const gguf_kv *name = gguf_find_kv(g, "general.name"), *source = gguf_find_kv(g, source_key);
    fprintf(fp, "model: %s\n", g->file.path);
    fprintf(fp, "  architecture               %s (%s)\n", cosy_family_arch(hp->family),
            hp->family == COSY_FAMILY_COSYVOICE3 ? "CosyVoice3" : "CosyVoice2");
    if (name && name->type == GGUF_TYPE_STRING) fprintf(fp, "  name                       %.*s\n", (int)name->str.len, name->str.ptr);
    if (source && source->type == GGUF_TYPE_STRING) fprintf(fp, "  weights                    %.*s\n", (int)source->str.len, source->str.ptr);
    fprintf(fp, "  file size                  %.1f MiB\n", (double)g->file.size / (1024.0 * 1024.0));
    fprintf(fp, "summary:\n");
    fprintf(fp, "  LM      Qwen2 %d layers, hidden %d, heads %d/%d (q/kv), head_dim %d, MLP %d, text vocab %d, rope_theta %g\n",
            hp->lm_layers, hp->lm_hidden, hp->lm_heads, hp->lm_kv_heads, hp->lm_head_dim, hp->lm_ffn, hp->lm_text_vocab,
            (double)hp->lm_rope_theta);
    if (hp->family == COSY_FAMILY_COSYVOICE3) {
        fprintf(fp, "          speech head %d without bias (speech tokens %d + 200 specials: sos %d, eos %d, task %d, fill %d, stop %d..%d)\n",
                hp->lm_speech_vocab, hp->speech_token_size, hp->lm_sos, hp->lm_eos, hp->lm_task_id, hp->lm_fill, hp->lm_stop_begin,
                hp->lm_stop_end);
        fprintf(fp, "  flow    pre-lookahead %d->%d->%d (k%d, k3); DiT %d blocks, width %d, %d heads x %d, FF x%d, chunk %d frames\n",
                hp->flow_input_size, hp->pre_lookahead_channels, hp->flow_input_size, hp->pre_lookahead_len + 1, hp->dit_depth,
                hp->dit_dim, hp->dit_heads, hp->dit_dim_head, hp->dit_ff_mult, hp->est_static_chunk);
        fprintf(fp, "  hift    causal, base channels %d, conv_pre looks %d frames ahead, upsample", hp->hift_base_channels,
                hp->conv_pre_look_right);
    } else {
        fprintf(fp, "          speech head %d (speech tokens %d + eos/unused/fill)\n", hp->lm_speech_vocab, hp->speech_token_size);
        fprintf(fp, "  flow    encoder %d+%d conformer blocks, width %d, %d heads, FFN %d; estimator channels %d, %d mid blocks, %d heads x %d\n",
                hp->enc_blocks, hp->enc_up_blocks, hp->enc_output_size, hp->enc_heads, hp->enc_ffn, hp->est_channels, hp->est_mid_blocks,
                hp->est_heads, hp->est_head_dim);
        fprintf(fp, "  hift    base channels %d, upsample", hp->hift_base_channels);
    }
    for (int i = 0; i < hp->n_upsample; i++) fprintf(fp, " %d", hp->upsample_rates[i]);
    fprintf(fp, " x istft hop %d, %d Hz\n", hp->istft_hop, hp->sample_rate);
    /* tensors by dtype */
    size_t bytes[32] = {0};
    int64_t counts[32] = {0}, params = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        int d = (int)g->tensors[i].dtype;
        if (d >= 0 && d < 32) {
            bytes[d] += g->tensors[i].nbytes;
            counts[d]++;
        }
        if (strncmp(g->tensors[i].name, "spk.", 4) != 0) params += cosy_tensor_numel(&g->tensors[i]);
    }
    fprintf(fp, "tensors: %lld (%lld parameters)\n", (long long)g->n_tensors, (long long)params);
    for (int d = 0; d < 32; d++)
        if (counts[d]) fprintf(fp, "  %-6s %6lld tensors %10.1f MiB\n", cosy_dtype_name((cosy_dtype)d), (long long)counts[d], (double)bytes[d] / (1024.0 * 1024.0));
    const gguf_kv *tokens = gguf_find_kv(g, "tokenizer.ggml.tokens"), *merges = gguf_find_kv(g, "tokenizer.ggml.merges");
    fprintf(fp, "tokenizer: %llu tokens, %llu merges\n", tokens ? (unsigned long long)tokens->n : 0ull,
            merges ? (unsigned long long)merges->n : 0ull);
    fprintf(fp, "speakers: %d", m->n_speakers);
    for (int i = 0; i < m->n_speakers; i++) fprintf(fp, "%s%s", i ? ", " : " (", m->speakers[i]);
    fprintf(fp, "%s\n", m->n_speakers ? ")" : "");
    {
        const int cam = gguf_find_kv(g, "campplus.feat_dim") != NULL, tok = gguf_find_kv(g, "s3tokenizer.width") != NULL;
        fprintf(fp, "voices from audio: %s\n", cam && tok ? "yes (CAM++ and the speech tokenizer are in the file)"
                                               : cam       ? "no: no speech tokenizer (convert from a directory with speech_tokenizer_v2.onnx)"
                                               : tok       ? "no: no CAM++ (convert from a directory with campplus.onnx)"
                                                           : "no (convert from a directory with campplus.onnx and speech_tokenizer_v2.onnx)");
    }
    fprintf(fp, "hyperparameters:\n");
    cosy_hparams_print(hp, fp);
}

cosy_status cosy_model_module(cosy_model *m, const cosy_module_def *def, void **out)
{
    cosy_status st = COSY_OK;
    pthread_mutex_lock(&m->module_lock);
    for (int i = 0; i < m->n_modules; i++)
        if (m->module_defs[i] == def) {
            *out = m->module_states[i];
            pthread_mutex_unlock(&m->module_lock);
            return COSY_OK;
        }
    if (m->n_modules == COSY_MAX_MODULES) {
        st = cosy_error(COSY_ERR_INTERNAL, "model: too many modules");
    } else {
        void *state = NULL;
        st = def->create(m, &state);
        if (st == COSY_OK) {
            m->module_defs[m->n_modules] = def;
            m->module_states[m->n_modules] = state;
            m->n_modules++;
            *out = state;
        } else {
            cosy_error_prefix(st, "loading %s", def->name);
        }
    }
    pthread_mutex_unlock(&m->module_lock);
    return st;
}

/* ---------------------------------------------------------------- the networks of a model */

static cosy_status tokenizer_create(cosy_model *m, void **out)
{
    cosy_vocab v;
    COSY_TRY(cosy_vocab_from_gguf(&m->file, &v));
    cosy_tokenizer *t = NULL;
    cosy_status st = cosy_tokenizer_create(&v, &t);
    cosy_vocab_free(&v);
    *out = t;
    return st;
}

static void tokenizer_destroy(void *state) { cosy_tokenizer_free(state); }

static const cosy_module_def tokenizer_module = {"tokenizer", tokenizer_create, tokenizer_destroy};

cosy_status cosy_tokenizer_get(cosy_model *m, const cosy_tokenizer **out)
{
    void *state;
    COSY_TRY(cosy_model_module(m, &tokenizer_module, &state));
    *out = state;
    return COSY_OK;
}

cosy_status cosy_model_prepare(cosy_model *model)
{
    if (!model) return cosy_error(COSY_ERR_INVALID_ARG, "prepare: no model");
    cosy_lm *lm;
    const cosy_tokenizer *tok;
    cosy_flow *flow;
    cosy_hift *hift;
    COSY_TRY(cosy_lm_get(model, &lm));
    COSY_TRY(cosy_tokenizer_get(model, &tok));
    COSY_TRY(cosy_flow_get(model, &flow));
    if (model->hp.family == COSY_FAMILY_COSYVOICE3) {
        cosy_cv3_hift *h3;
        return cosy_cv3_hift_get(model, &h3);
    }
    return cosy_hift_get(model, &hift);
}

cosy_dtype cosy_model_flow_dtype(cosy_model *model)
{
    cosy_flow *f = NULL;
    if (!model || cosy_flow_get(model, &f) != COSY_OK || !f) return COSY_DTYPE_F32;
    return cosy_flow_dtype(f);
}

cosy_dtype cosy_model_hift_dtype(cosy_model *model)
{
    cosy_hift *h = NULL;
    if (model && model->hp.family == COSY_FAMILY_COSYVOICE3) {
        cosy_cv3_hift *h3 = NULL;
        if (cosy_cv3_hift_get(model, &h3) != COSY_OK) return COSY_DTYPE_F32;
        return cosy_cv3_hift_dtype(h3);
    }
    if (!model || cosy_hift_get(model, &h) != COSY_OK) return COSY_DTYPE_F32;
    return cosy_hift_dtype(h);
}

int cosy_model_sample_rate(const cosy_model *model) { return model->hp.sample_rate; }
