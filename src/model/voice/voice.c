/* voice.c — voices: files, built-in speakers, validation (see voice.h). */
#include "model/voice/voice.h"
#include "core/error.h"
#include "io/gguf.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOICE_ARCH "cosyvoice2-voice"
#define MAX_PROMPT 100000

cosy_voice *cosy_voice_alloc(const char *name)
{
    cosy_voice *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->name = strdup(name ? name : "");
    if (!v->name) {
        free(v);
        return NULL;
    }
    return v;
}

void cosy_voice_free(cosy_voice *v)
{
    if (!v) return;
    free(v->name);
    free(v->transcript);
    free(v->prompt_text);
    free(v->llm_prompt_tokens);
    free(v->flow_prompt_tokens);
    free(v->prompt_feat);
    free(v->llm_embedding);
    free(v->flow_embedding);
    free(v);
}

const char *cosy_voice_name(const cosy_voice *v) { return v ? v->name : ""; }

cosy_status cosy_voice_validate(const cosy_voice *v, const cosy_model *m)
{
    const cosy_hparams *hp = &m->hp;
    const char *name = v->name && v->name[0] ? v->name : "voice";
    for (int i = 0; i < v->n_prompt_text; i++)
        if (v->prompt_text[i] < 0 || v->prompt_text[i] >= hp->lm_text_vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "%s: prompt text token %d at position %d is outside the vocabulary (0..%d)", name,
                              v->prompt_text[i], i, hp->lm_text_vocab - 1);
    for (int i = 0; i < v->n_llm_prompt_tokens; i++)
        if (v->llm_prompt_tokens[i] < 0 || v->llm_prompt_tokens[i] >= hp->speech_token_size)
            return cosy_error(COSY_ERR_INVALID_ARG, "%s: LM prompt speech token %d at position %d is outside 0..%d", name,
                              v->llm_prompt_tokens[i], i, hp->speech_token_size - 1);
    for (int i = 0; i < v->n_flow_prompt_tokens; i++)
        if (v->flow_prompt_tokens[i] < 0 || v->flow_prompt_tokens[i] >= hp->flow_vocab)
            return cosy_error(COSY_ERR_INVALID_ARG, "%s: flow prompt speech token %d at position %d is outside 0..%d", name,
                              v->flow_prompt_tokens[i], i, hp->flow_vocab - 1);
    if (v->n_prompt_frames != hp->token_mel_ratio * v->n_flow_prompt_tokens)
        return cosy_error(COSY_ERR_INVALID_ARG, "%s: the prompt mel has %d frames but %d flow prompt tokens need %d", name,
                          v->n_prompt_frames, v->n_flow_prompt_tokens, hp->token_mel_ratio * v->n_flow_prompt_tokens);
    if (v->n_prompt_frames > 0 && v->n_mels != hp->flow_output_size)
        return cosy_error(COSY_ERR_INVALID_ARG, "%s: the prompt mel has %d bins, the model %d", name, v->n_mels, hp->flow_output_size);
    if (!v->flow_embedding || v->embed_dim != hp->spk_embed_dim)
        return cosy_error(COSY_ERR_INVALID_ARG, "%s: the speaker embedding has %d values, the model needs %d", name, v->embed_dim,
                          hp->spk_embed_dim);
    if (v->llm_embedding && v->n_llm_embedding != hp->spk_embed_dim)
        return cosy_error(COSY_ERR_INVALID_ARG, "%s: the LM speaker embedding (llm_embedding) has %d values, the model needs %d", name,
                          v->n_llm_embedding, hp->spk_embed_dim);
    for (int i = 0; i < v->embed_dim; i++)
        if (!(v->flow_embedding[i] == v->flow_embedding[i]) || v->flow_embedding[i] > 1e30f || v->flow_embedding[i] < -1e30f)
            return cosy_error(COSY_ERR_INVALID_ARG, "%s: the speaker embedding holds a non-finite value", name);
    for (int i = 0; i < v->n_prompt_frames * v->n_mels; i++)
        if (!(v->prompt_feat[i] == v->prompt_feat[i]) || v->prompt_feat[i] > 1e30f || v->prompt_feat[i] < -1e30f)
            return cosy_error(COSY_ERR_INVALID_ARG, "%s: the prompt mel holds a non-finite value", name);
    return COSY_OK;
}

/* ---- synthetic voices (benchmarks) ---- */

static uint64_t next_random(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 11;
}

static double uniform(uint64_t *x) { return (double)next_random(x) / 9007199254740992.0; } /* [0, 1) */

static double gaussian(uint64_t *x)
{
    double u = uniform(x), v = uniform(x);
    return sqrt(-2.0 * log(u > 1e-300 ? u : 1e-300)) * cos(6.283185307179586 * v);
}

cosy_status cosy_voice_synthetic(const cosy_model *m, uint64_t seed, int prompt_tokens, int prompt_text_tokens, cosy_voice **out)
{
    const cosy_hparams *hp = &m->hp;
    *out = NULL;
    if (prompt_tokens < 0 || prompt_tokens > 10000 || prompt_text_tokens < 0 || prompt_text_tokens > 10000)
        return cosy_error(COSY_ERR_INVALID_ARG, "synthetic voice: %d prompt tokens, %d text tokens (0..10000 each)", prompt_tokens,
                          prompt_text_tokens);
    cosy_voice *v = cosy_voice_alloc("synthetic");
    if (!v) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    int P = prompt_tokens, T = hp->token_mel_ratio * P, C = hp->flow_output_size, D = hp->spk_embed_dim;
    v->n_prompt_text = prompt_text_tokens;
    v->n_llm_prompt_tokens = v->n_flow_prompt_tokens = P;
    v->n_prompt_frames = T;
    v->n_mels = C;
    v->embed_dim = v->n_llm_embedding = D;
    v->prompt_text = malloc(sizeof(int32_t) * (size_t)(prompt_text_tokens + 1));
    v->llm_prompt_tokens = malloc(sizeof(int32_t) * (size_t)(P + 1));
    v->flow_prompt_tokens = malloc(sizeof(int32_t) * (size_t)(P + 1));
    v->prompt_feat = malloc(sizeof(float) * ((size_t)T * (size_t)C + 1));
    v->flow_embedding = malloc(sizeof(float) * (size_t)D);
    v->llm_embedding = malloc(sizeof(float) * (size_t)D);
    v->transcript = strdup("(synthetic voice)");
    if (!v->prompt_text || !v->llm_prompt_tokens || !v->flow_prompt_tokens || !v->prompt_feat || !v->flow_embedding ||
        !v->llm_embedding || !v->transcript) {
        cosy_voice_free(v);
        return cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    uint64_t x = seed ^ 0x5eed5eed5eedull;
    /* Qwen2's regular BPE ids end at 151643; smaller vocabularies (test models) use theirs */
    uint64_t text_ids = hp->lm_text_vocab < 151643 ? (uint64_t)hp->lm_text_vocab : 151643u;
    for (int i = 0; i < prompt_text_tokens; i++) v->prompt_text[i] = (int32_t)(next_random(&x) % text_ids);
    uint64_t speech_ids = (uint64_t)(hp->speech_token_size < hp->flow_vocab ? hp->speech_token_size : hp->flow_vocab);
    for (int i = 0; i < P; i++) {
        v->flow_prompt_tokens[i] = (int32_t)(next_random(&x) % speech_ids);
        v->llm_prompt_tokens[i] = v->flow_prompt_tokens[i];
    }
    for (int t = 0; t < T; t++) {
        /* 4 syllables a second at token_mel_ratio * 25 frames a second */
        double envelope = 2.0 * sin(6.283185307179586 * 4.0 * t / (25.0 * hp->token_mel_ratio));
        for (int c = 0; c < C; c++) {
            double tilt = -2.5 - 6.0 * c / (C > 1 ? C - 1 : 1);
            double value = tilt + envelope + 0.7 * gaussian(&x);
            v->prompt_feat[(size_t)t * C + c] = (float)(value < -11.5 ? -11.5 : value > 2.0 ? 2.0 : value);
        }
    }
    for (int i = 0; i < D; i++) {
        v->flow_embedding[i] = (float)gaussian(&x);
        v->llm_embedding[i] = v->flow_embedding[i];
    }
    *out = v;
    return COSY_OK;
}

/* ---- files ---- */

typedef struct {
    const void *data;
} blob_ctx;

static cosy_status fill_blob(void *vctx, void *dst, size_t nbytes)
{
    memcpy(dst, ((blob_ctx *)vctx)->data, nbytes);
    return COSY_OK;
}

/* `have` is how many values `data` holds: the shape must not ask for more (no over-read). */
static cosy_status add_blob(gguf_writer *w, const char *name, cosy_dtype dtype, int ndim, const int64_t *shape, const void *data,
                            int64_t have)
{
    int64_t need = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && need > INT64_MAX / shape[d]))
            return cosy_error(COSY_ERR_INVALID_ARG, "voice save: %s has a bad shape", name);
        need *= shape[d];
    }
    if (!data || need > have)
        return cosy_error(COSY_ERR_INVALID_ARG, "voice save: %s needs %lld values, the voice holds %lld", name, (long long)need,
                          (long long)(data ? have : 0));
    blob_ctx *c = malloc(sizeof *c);
    if (!c) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    c->data = data;
    return gguf_writer_add_tensor(w, name, dtype, ndim, shape, fill_blob, c, free);
}

cosy_status cosy_voice_save(const cosy_voice *v, const char *path)
{
    gguf_writer *w = gguf_writer_create();
    if (!w) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    gguf_writer_set_str(w, "general.architecture", VOICE_ARCH);
    gguf_writer_set_str(w, VOICE_ARCH ".name", v->name ? v->name : "");
    if (v->transcript) gguf_writer_set_str(w, VOICE_ARCH ".transcript", v->transcript);
    cosy_status st = COSY_OK;
    int64_t shape[2];
#define ADD_TOKENS(field, count, tname)                                                  \
    if (st == COSY_OK && v->count > 0) {                                                 \
        shape[0] = v->count;                                                             \
        st = add_blob(w, "voice." tname, COSY_DTYPE_I32, 1, shape, v->field, v->count);  \
    }
    ADD_TOKENS(prompt_text, n_prompt_text, "prompt_text")
    ADD_TOKENS(llm_prompt_tokens, n_llm_prompt_tokens, "llm_prompt_speech_token")
    ADD_TOKENS(flow_prompt_tokens, n_flow_prompt_tokens, "flow_prompt_speech_token")
#undef ADD_TOKENS
    if (st == COSY_OK && v->n_prompt_frames > 0) {
        shape[0] = v->n_prompt_frames;
        shape[1] = v->n_mels;
        st = add_blob(w, "voice.prompt_speech_feat", COSY_DTYPE_F32, 2, shape, v->prompt_feat,
                      (int64_t)v->n_prompt_frames * (v->n_mels > 0 ? v->n_mels : 0));
    }
    /* each embedding with its own length: an LM embedding shorter than the flow's is not read past */
    shape[0] = v->n_llm_embedding;
    if (st == COSY_OK && v->llm_embedding)
        st = add_blob(w, "voice.llm_embedding", COSY_DTYPE_F32, 1, shape, v->llm_embedding, v->n_llm_embedding);
    shape[0] = v->embed_dim;
    if (st == COSY_OK && v->flow_embedding)
        st = add_blob(w, "voice.flow_embedding", COSY_DTYPE_F32, 1, shape, v->flow_embedding, v->embed_dim);
    if (st == COSY_OK) st = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return st;
}

static cosy_status copy_tensor(const gguf_file *g, const char *name, cosy_dtype dtype, int ndim, void **out, int64_t *dims)
{
    const cosy_tensor *t = gguf_find_tensor(g, name);
    *out = NULL;
    if (!t) return COSY_OK;
    if (t->dtype != dtype || t->ndim != ndim)
        return cosy_error(COSY_ERR_FORMAT, "%s: %s should be %dD %s", g->file.path, name, ndim, cosy_dtype_name(dtype));
    int64_t n = cosy_tensor_numel(t);
    if (n > (int64_t)MAX_PROMPT * 80) return cosy_error(COSY_ERR_FORMAT, "%s: %s is too large", g->file.path, name);
    *out = malloc(t->nbytes ? t->nbytes : 1);
    if (!*out) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    memcpy(*out, t->data, t->nbytes);
    for (int d = 0; d < ndim; d++) dims[d] = t->shape[d];
    return COSY_OK;
}

static char *kv_string(const gguf_file *g, const char *key)
{
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv || kv->type != GGUF_TYPE_STRING) return NULL;
    char *s = malloc((size_t)kv->str.len + 1);
    if (s) {
        memcpy(s, kv->str.ptr, (size_t)kv->str.len);
        s[kv->str.len] = 0;
    }
    return s;
}

/* The voice in the opened file g (closed here, whatever the outcome). */
static cosy_status voice_from_gguf(gguf_file g, cosy_voice **out)
{
    const char *path = g.file.path;
    const gguf_kv *arch = gguf_find_kv(&g, "general.architecture");
    if (!arch || arch->type != GGUF_TYPE_STRING || arch->str.len != strlen(VOICE_ARCH) || memcmp(arch->str.ptr, VOICE_ARCH, arch->str.len)) {
        cosy_status st = cosy_error(COSY_ERR_FORMAT, "%s: not a voice file (general.architecture is not \"" VOICE_ARCH "\")", path);
        gguf_close(&g);
        return st;
    }
    cosy_voice *v = calloc(1, sizeof *v);
    cosy_status st = v ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "out of memory");
    int64_t d[2] = {0, 0};
    if (st == COSY_OK) {
        v->name = kv_string(&g, VOICE_ARCH ".name");
        v->transcript = kv_string(&g, VOICE_ARCH ".transcript");
        if (!v->name) v->name = strdup("");
        if (!v->name) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    if (st == COSY_OK && (st = copy_tensor(&g, "voice.prompt_text", COSY_DTYPE_I32, 1, (void **)&v->prompt_text, d)) == COSY_OK)
        v->n_prompt_text = v->prompt_text ? (int)d[0] : 0;
    if (st == COSY_OK && (st = copy_tensor(&g, "voice.llm_prompt_speech_token", COSY_DTYPE_I32, 1, (void **)&v->llm_prompt_tokens, d)) == COSY_OK)
        v->n_llm_prompt_tokens = v->llm_prompt_tokens ? (int)d[0] : 0;
    if (st == COSY_OK && (st = copy_tensor(&g, "voice.flow_prompt_speech_token", COSY_DTYPE_I32, 1, (void **)&v->flow_prompt_tokens, d)) == COSY_OK)
        v->n_flow_prompt_tokens = v->flow_prompt_tokens ? (int)d[0] : 0;
    if (st == COSY_OK && (st = copy_tensor(&g, "voice.prompt_speech_feat", COSY_DTYPE_F32, 2, (void **)&v->prompt_feat, d)) == COSY_OK && v->prompt_feat) {
        v->n_prompt_frames = (int)d[0];
        v->n_mels = (int)d[1];
    }
    if (st == COSY_OK && (st = copy_tensor(&g, "voice.flow_embedding", COSY_DTYPE_F32, 1, (void **)&v->flow_embedding, d)) == COSY_OK)
        v->embed_dim = v->flow_embedding ? (int)d[0] : 0;
    if (st == COSY_OK && (st = copy_tensor(&g, "voice.llm_embedding", COSY_DTYPE_F32, 1, (void **)&v->llm_embedding, d)) == COSY_OK)
        v->n_llm_embedding = v->llm_embedding ? (int)d[0] : 0;
    if (st == COSY_OK && !v->flow_embedding) st = cosy_error(COSY_ERR_FORMAT, "%s: the voice has no voice.flow_embedding", path);
    gguf_close(&g);
    if (st != COSY_OK) {
        cosy_voice_free(v);
        return st;
    }
    *out = v;
    return COSY_OK;
}

cosy_status cosy_voice_load(const char *path, cosy_voice **out)
{
    *out = NULL;
    gguf_file g;
    COSY_TRY(gguf_open(path, &g));
    return voice_from_gguf(g, out);
}

cosy_status cosy_voice_load_mem(const void *data, size_t size, const char *name, cosy_voice **out)
{
    *out = NULL;
    gguf_file g;
    COSY_TRY(gguf_open_mem(data, size, name, &g));
    return voice_from_gguf(g, out);
}

/* ---- built-in speakers (spk2info.pt, stored as spk.I.<field> by cosy convert) ---- */

static cosy_status speaker_tokens(const cosy_model *m, int idx, const char *speaker, const char *field, int32_t **out, int *n)
{
    char name[96];
    snprintf(name, sizeof name, "spk.%d.%s", idx, field);
    const cosy_tensor *t = gguf_find_tensor(&m->file, name);
    *out = NULL;
    *n = 0;
    if (!t) return COSY_OK;
    if (t->dtype != COSY_DTYPE_I32)
        return cosy_error(COSY_ERR_FORMAT, "%s: speaker '%s': %s (%s) is not int32", m->file.file.path, speaker, field, name);
    int64_t k = cosy_tensor_numel(t);
    if (k < 0 || k > MAX_PROMPT || t->nbytes < sizeof(int32_t) * (size_t)k)
        return cosy_error(COSY_ERR_FORMAT, "%s: speaker '%s': %s (%s) has %lld values (0..%d)", m->file.file.path, speaker, field, name,
                          (long long)k, MAX_PROMPT);
    *out = malloc(sizeof(int32_t) * (size_t)(k ? k : 1));
    if (!*out) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    memcpy(*out, t->data, sizeof(int32_t) * (size_t)k);
    *n = (int)k;
    return COSY_OK;
}

/* Copies spk.<idx>.<field> (f32). want > 0: it must hold exactly `want` values. */
static cosy_status speaker_floats(const cosy_model *m, int idx, const char *speaker, const char *field, int64_t want, float **out,
                                  int64_t *numel, const cosy_tensor **tp)
{
    char name[96];
    snprintf(name, sizeof name, "spk.%d.%s", idx, field);
    const cosy_tensor *t = gguf_find_tensor(&m->file, name);
    *out = NULL;
    *numel = 0;
    if (tp) *tp = t;
    if (!t) return COSY_OK;
    if (t->dtype != COSY_DTYPE_F32)
        return cosy_error(COSY_ERR_FORMAT, "%s: speaker '%s': %s (%s) is not f32", m->file.file.path, speaker, field, name);
    int64_t k = cosy_tensor_numel(t);
    if (k < 0 || k > (int64_t)MAX_PROMPT * 80 || t->nbytes < sizeof(float) * (size_t)k)
        return cosy_error(COSY_ERR_FORMAT, "%s: speaker '%s': %s (%s) has %lld values", m->file.file.path, speaker, field, name, (long long)k);
    if (want > 0 && k != want)
        return cosy_error(COSY_ERR_FORMAT, "%s: speaker '%s': %s has %lld values, the model needs %lld", m->file.file.path, speaker, field,
                          (long long)k, (long long)want);
    *out = malloc(sizeof(float) * (size_t)(k ? k : 1));
    if (!*out) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    memcpy(*out, t->data, sizeof(float) * (size_t)k);
    *numel = k;
    return COSY_OK;
}

cosy_status cosy_voice_from_speaker(const cosy_model *m, const char *speaker, cosy_voice **out)
{
    *out = NULL;
    int idx = -1;
    for (int i = 0; i < m->n_speakers; i++)
        if (!strcmp(m->speakers[i], speaker)) idx = i;
    if (idx < 0) return cosy_error(COSY_ERR_MISSING, "speaker '%s' is not in %s (it has %d speakers)", speaker, m->file.file.path, m->n_speakers);
    cosy_voice *v = cosy_voice_alloc(speaker);
    if (!v) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    const int64_t D = m->hp.spk_embed_dim;
    int64_t n;
    const cosy_tensor *feat = NULL;
    cosy_status st = speaker_tokens(m, idx, speaker, "prompt_text", &v->prompt_text, &v->n_prompt_text);
    if (st == COSY_OK) st = speaker_tokens(m, idx, speaker, "llm_prompt_speech_token", &v->llm_prompt_tokens, &v->n_llm_prompt_tokens);
    if (st == COSY_OK) st = speaker_tokens(m, idx, speaker, "flow_prompt_speech_token", &v->flow_prompt_tokens, &v->n_flow_prompt_tokens);
    if (st == COSY_OK) st = speaker_floats(m, idx, speaker, "prompt_speech_feat", 0, &v->prompt_feat, &n, &feat);
    if (st == COSY_OK && feat) {
        int64_t mels = feat->ndim > 0 ? feat->shape[feat->ndim - 1] : 0;
        if (mels <= 0 || mels > 4096 || n % mels != 0)
            st = cosy_error(COSY_ERR_FORMAT, "%s: speaker '%s': prompt_speech_feat has %lld values, not whole rows of %lld mel bins",
                            m->file.file.path, speaker, (long long)n, (long long)mels);
        else {
            v->n_mels = (int)mels;
            v->n_prompt_frames = (int)(n / mels);
        }
    }
    if (st == COSY_OK) st = speaker_floats(m, idx, speaker, "flow_embedding", D, &v->flow_embedding, &n, NULL);
    if (st == COSY_OK && !v->flow_embedding) st = speaker_floats(m, idx, speaker, "embedding", D, &v->flow_embedding, &n, NULL);
    if (st == COSY_OK) v->embed_dim = (int)n;
    if (st == COSY_OK) st = speaker_floats(m, idx, speaker, "llm_embedding", D, &v->llm_embedding, &n, NULL);
    if (st == COSY_OK) v->n_llm_embedding = v->llm_embedding ? (int)n : 0;
    /* spk2info from add_zero_shot_spk stores the same tokens for both; old files may carry only one */
    if (st == COSY_OK && !v->flow_prompt_tokens && v->llm_prompt_tokens) {
        v->flow_prompt_tokens = malloc(sizeof(int32_t) * (size_t)v->n_llm_prompt_tokens);
        if (!v->flow_prompt_tokens) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        else {
            memcpy(v->flow_prompt_tokens, v->llm_prompt_tokens, sizeof(int32_t) * (size_t)v->n_llm_prompt_tokens);
            v->n_flow_prompt_tokens = v->n_llm_prompt_tokens;
        }
    }
    if (st == COSY_OK && !v->flow_embedding) st = cosy_error(COSY_ERR_FORMAT, "speaker '%s' has no embedding", speaker);
    if (st != COSY_OK) {
        cosy_voice_free(v);
        return st;
    }
    *out = v;
    return COSY_OK;
}
