/*
 * convert.c — `cosy convert`: an official CosyVoice2 or CosyVoice3 checkpoint directory (told
 * apart by its cosyvoice2.yaml / cosyvoice3.yaml, as AutoModel does) → one GGUF file, and
 * `cosy convert --random`: a model of known shapes with seeded random weights.
 *
 * The loader accepts what the official loader (CosyVoice2Model.load, inherited by CosyVoice3Model) accepts:
 *   - a `generator.` prefix on HiFT keys (hifigan training checkpoints) is stripped;
 *   - weight-norm parameters as `X.weight_g` + `X.weight_v` (torch < 2.1) or
 *     `X.parametrizations.weight.original0/original1` (torch >= 2.1) are folded into plain
 *     weights: w = g · v / ‖v‖, the norm taken over all dims but the first (torch's dim=0);
 *   - float32, float16 or bfloat16 storages, tied tensors sharing one storage.
 * Every tensor the architecture needs (arch.c) must be present with the shape the
 * hyperparameters dictate; anything else in the files is reported and ignored.
 */
#include "cosy.h"
#include "core/error.h"
#include "core/file.h"
#include "core/half.h"
#include "io/gguf.h"
#include "io/ptfile.h"
#include "model/arch.h"
#include "model/voice/campplus.h"
#include "model/voice/s3tokenizer.h"
#include "model/hparams.h"
#include "model/lm/lm.h"
#include "text/vocab.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_convert_params cosy_convert_default_params(void)
{
    cosy_convert_params p;
    memset(&p, 0, sizeof p);
    p.weight_dtype = COSY_DTYPE_F32;
    p.lm_dtype = p.flow_dtype = p.hift_dtype = COSY_DTYPE_AUTO;
    return p;
}

static int storable(cosy_dtype t) { return t == COSY_DTYPE_F32 || t == COSY_DTYPE_F16 || t == COSY_DTYPE_BF16; }

static cosy_status check_params(const cosy_convert_params *p)
{
    if (!storable(p->weight_dtype))
        return cosy_error(COSY_ERR_INVALID_ARG, "convert: weights can be stored as f32, f16 or bf16 (not %s)", cosy_dtype_name(p->weight_dtype));
    if (p->lm_dtype != COSY_DTYPE_AUTO && !storable(p->lm_dtype) && p->lm_dtype != COSY_DTYPE_Q8_0 && p->lm_dtype != COSY_DTYPE_Q4_0)
        return cosy_error(COSY_ERR_INVALID_ARG, "convert: the LM's matrices can be stored as f32, f16, bf16, q8_0 or q4_0 (not %s)",
                          cosy_dtype_name(p->lm_dtype));
    const cosy_dtype mod[2] = {p->flow_dtype, p->hift_dtype};
    const char *names[2] = {"flow", "vocoder"};
    for (int i = 0; i < 2; i++)
        if (mod[i] != COSY_DTYPE_AUTO && !storable(mod[i]))
            return cosy_error(COSY_ERR_INVALID_ARG, "convert: the %s's matrices can be stored as f32, f16 or bf16 (not %s)", names[i],
                              cosy_dtype_name(mod[i]));
    return COSY_OK;
}

/* The storage type of a matrix: its module's type if one was given, else weight_dtype. The vocoder's
 * F0 predictor, source merge and source_downs always stay f32: they run in f32 whatever the vocoder's
 * type (model/hift/hift.c), and a rounded F0 predictor would move the source's phase, which integrates f0
 * over the whole call (hift_source.c). The LM's head and embedding tables take cosy_lm_head_dtype
 * (q8_0 when the body is q4_0), the type the LM runs its head in, so they too are used in place. */
static cosy_dtype matrix_dtype(const cosy_convert_params *p, const char *name)
{
    cosy_dtype t = COSY_DTYPE_AUTO;
    if (!strncmp(name, "lm.", 3)) {
        t = p->lm_dtype;
        if (t != COSY_DTYPE_AUTO && (!strncmp(name, "lm.head.", 8) || !strncmp(name, "lm.embd_", 8))) t = cosy_lm_head_dtype(t);
    }
    else if (!strncmp(name, "flow.", 5)) t = p->flow_dtype;
    else if (!strncmp(name, "hift.f0_predictor.", 18) || !strncmp(name, "hift.m_source.", 14) || !strncmp(name, "hift.source_downs.", 18))
        return COSY_DTYPE_F32;
    else if (!strncmp(name, "hift.", 5)) t = p->hift_dtype;
    return t == COSY_DTYPE_AUTO ? p->weight_dtype : t;
}

/* "<architecture>.<suffix>" */
static const char *arch_key(const cosy_hparams *hp, const char *suffix, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s", cosy_family_arch(hp->family), suffix);
    return buf;
}

static void write_common_metadata(gguf_writer *w, const cosy_hparams *hp, const char *name, const char *source,
                                  cosy_dtype dtype)
{
    char key[96];
    gguf_writer_set_str(w, "general.architecture", cosy_family_arch(hp->family));
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_str(w, arch_key(hp, "source", key, sizeof key), source);
    gguf_writer_set_str(w, arch_key(hp, "weight_dtype", key, sizeof key), cosy_dtype_name(dtype));
    gguf_writer_set_str(w, arch_key(hp, "converter", key, sizeof key), "cosy " COSY_VERSION);
    cosy_hparams_write(hp, w);
}

/* The tokenizer the family's frontend builds: CosyVoice2's specials, and for CosyVoice3 its 261 more
 * (CosyVoice3Tokenizer), so <|endofprompt|> = 151646 ... [ǜ] = 151923 with the real vocabulary. */
static cosy_status add_family_specials(cosy_hparams *hp, cosy_vocab *vocab)
{
    if (hp->family != COSY_FAMILY_COSYVOICE3) return COSY_OK;
    COSY_TRY(cosy_vocab_add_cv3_specials(vocab));
    /* CosyVoice3LM hard-codes 151646, the id <|endofprompt|> has with the real vocabulary; the file
     * stores the id this tokenizer gives it (the same there; a random model's byte-level one differs) */
    int32_t id = cosy_vocab_add_special(vocab, "<|endofprompt|>");
    if (id < 0) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    hp->lm_endofprompt = id;
    return cosy_hparams_validate(hp);
}

/* ------------------------------------------------------------------ official checkpoints */

typedef struct {
    const pt_tensor *plain;       /* the weight itself, or */
    const pt_tensor *g, *v;       /* its weight-norm magnitude and direction */
    cosy_dtype dtype;
    int64_t numel;
} pt_fill_ctx;

static cosy_status fill_from_pt(void *vctx, void *dst, size_t nbytes)
{
    pt_fill_ctx *c = vctx;
    float *tmp = malloc(sizeof(float) * (size_t)c->numel);
    if (!tmp) return cosy_error(COSY_ERR_NOMEM, "convert: out of memory");
    if (c->plain) {
        pt_read_f32(c->plain, tmp);
    } else {
        int64_t rows = c->v->shape[0], cols = c->numel / rows;
        float *g = malloc(sizeof(float) * (size_t)rows);
        if (!g) { free(tmp); return cosy_error(COSY_ERR_NOMEM, "convert: out of memory"); }
        pt_read_f32(c->v, tmp);
        pt_read_f32(c->g, g);
        for (int64_t r = 0; r < rows; r++) {
            float *row = tmp + r * cols;
            double ss = 0.0;
            for (int64_t k = 0; k < cols; k++) ss += (double)row[k] * row[k];
            float scale = g[r] / (float)sqrt(ss);
            for (int64_t k = 0; k < cols; k++) row[k] *= scale;
        }
        free(g);
    }
    (void)nbytes;
    cosy_convert_from_f32(dst, c->dtype, tmp, c->numel);
    free(tmp);
    return COSY_OK;
}

typedef struct {
    const char *path;
    pt_file pt;
    char *used;
    const char *strip_prefix; /* "generator." for hift */
} source_file;

static const pt_tensor *source_find(source_file *s, const char *key)
{
    const pt_tensor *t = pt_find(&s->pt, key);
    if (!t && s->strip_prefix) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s%s", s->strip_prefix, key);
        t = pt_find(&s->pt, buf);
    }
    if (t) s->used[t - s->pt.tensors] = 1;
    return t;
}

static int is_float(pt_dtype t) { return t == PT_F32 || t == PT_F16 || t == PT_BF16 || t == PT_F64; }

typedef struct {
    source_file *files;
    gguf_writer *writer;
    const cosy_convert_params *params;
    cosy_status status;
} official_ctx;

static int shapes_equal(const int64_t *a, int na, const int64_t *b, int nb)
{
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int add_official_tensor(void *vctx, const arch_tensor *spec)
{
    official_ctx *c = vctx;
    source_file *src = &c->files[spec->file];
    char got[64], want[64];
    const pt_tensor *plain = source_find(src, spec->source);
    const pt_tensor *g = NULL, *v = NULL;
    size_t len = strlen(spec->source);
    if (!plain && len > 7 && !strcmp(spec->source + len - 7, ".weight")) {
        char kg[160], kv[160];
        snprintf(kg, sizeof kg, "%.*s.weight_g", (int)(len - 7), spec->source);
        snprintf(kv, sizeof kv, "%.*s.weight_v", (int)(len - 7), spec->source);
        g = source_find(src, kg);
        v = source_find(src, kv);
        if (!g || !v) {
            snprintf(kg, sizeof kg, "%.*s.parametrizations.weight.original0", (int)(len - 7), spec->source);
            snprintf(kv, sizeof kv, "%.*s.parametrizations.weight.original1", (int)(len - 7), spec->source);
            g = source_find(src, kg);
            v = source_find(src, kv);
        }
    }
    if (!plain && (!g || !v)) {
        c->status = cosy_error(COSY_ERR_MISSING, "%s: tensor %s is missing", src->path, spec->source);
        return 1;
    }
    const pt_tensor *shape_src = plain ? plain : v;
    if (!is_float(shape_src->dtype) || (g && !is_float(g->dtype))) {
        c->status = cosy_error(COSY_ERR_FORMAT, "%s: tensor %s has type %s, a floating type was expected", src->path,
                               spec->source, pt_dtype_name(shape_src->dtype));
        return 1;
    }
    if (!shapes_equal(shape_src->shape, shape_src->ndim, spec->shape, spec->ndim)) {
        c->status = cosy_error(COSY_ERR_SHAPE, "%s: tensor %s has shape %s but the configuration needs %s", src->path,
                               spec->source, cosy_shape_str(shape_src->shape, shape_src->ndim, got, sizeof got),
                               cosy_shape_str(spec->shape, spec->ndim, want, sizeof want));
        return 1;
    }
    if (g && pt_numel(g) != shape_src->shape[0]) {
        c->status = cosy_error(COSY_ERR_SHAPE, "%s: weight-norm magnitude of %s has shape %s, %lld values expected", src->path,
                               spec->source, cosy_shape_str(g->shape, g->ndim, got, sizeof got), (long long)shape_src->shape[0]);
        return 1;
    }
    pt_fill_ctx *fc = calloc(1, sizeof *fc);
    if (!fc) {
        c->status = cosy_error(COSY_ERR_NOMEM, "convert: out of memory");
        return 1;
    }
    fc->plain = plain;
    fc->g = plain ? NULL : g;
    fc->v = plain ? NULL : v;
    fc->dtype = spec->is_matrix ? matrix_dtype(c->params, spec->name) : COSY_DTYPE_F32;
    if (spec->shape[spec->ndim - 1] % cosy_dtype_block(fc->dtype)) fc->dtype = COSY_DTYPE_F32; /* no whole blocks */
    fc->numel = pt_numel(shape_src);
    c->status = gguf_writer_add_tensor(c->writer, spec->name, fc->dtype, spec->ndim, spec->shape, fill_from_pt, fc, free);
    return c->status != COSY_OK;
}

/* ---- speakers (spk2info.pt) ---- */

typedef struct {
    float *f32;
    int32_t *i32;
    int64_t numel;
} buffer_fill_ctx;

static cosy_status fill_from_buffer(void *vctx, void *dst, size_t nbytes)
{
    buffer_fill_ctx *c = vctx;
    memcpy(dst, c->f32 ? (void *)c->f32 : (void *)c->i32, nbytes);
    return COSY_OK;
}

static void free_buffer_ctx(void *vctx)
{
    buffer_fill_ctx *c = vctx;
    free(c->f32);
    free(c->i32);
    free(c);
}

/* The fields CosyVoice2Model reads from spk2info entries (frontend_sft / zero_shot_spk_id). */
static const char *const speaker_fields[] = {
    "prompt_text", "llm_prompt_speech_token", "flow_prompt_speech_token", "prompt_speech_feat",
    "llm_embedding", "flow_embedding", "embedding",
};

static cosy_status add_speakers(const char *model_dir, const cosy_hparams *hp, gguf_writer *w, int verbose)
{
    char *path = cosy_path_join(model_dir, "spk2info.pt");
    if (!path) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (!cosy_file_exists(path)) {
        free(path);
        return COSY_OK;
    }
    pt_file pt;
    cosy_status st = pt_open(path, &pt);
    if (st != COSY_OK) {
        free(path);
        return st;
    }
    /* speaker names in first-seen order */
    char **names = calloc((size_t)pt.n_tensors + 1, sizeof(char *));
    int n_names = 0;
    if (!names) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; st == COSY_OK && i < pt.n_tensors; i++) {
        const pt_tensor *t = &pt.tensors[i];
        if (!t->parent[0] || strchr(t->parent, '.') != NULL) continue; /* not {speaker: {field: tensor}} */
        int k = 0;
        while (k < n_names && strcmp(names[k], t->parent) != 0) k++;
        if (k == n_names) names[n_names++] = t->parent;
        int known = 0;
        for (size_t f = 0; f < sizeof speaker_fields / sizeof speaker_fields[0]; f++)
            if (!strcmp(t->leaf, speaker_fields[f])) known = 1;
        if (!known) continue;
        int is_int = !is_float(t->dtype);
        buffer_fill_ctx *fc = calloc(1, sizeof *fc);
        if (!fc) { st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
        fc->numel = pt_numel(t);
        if (fc->numel <= 0 || fc->numel > (1 << 26)) {
            st = cosy_error(COSY_ERR_FORMAT, "%s: speaker %s field %s has %lld values", path, t->parent, t->leaf, (long long)fc->numel);
            free(fc);
            break;
        }
        if (is_int) {
            int64_t *tmp = malloc(sizeof(int64_t) * (size_t)fc->numel);
            fc->i32 = malloc(sizeof(int32_t) * (size_t)fc->numel);
            if (!tmp || !fc->i32) { free(tmp); free_buffer_ctx(fc); st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
            pt_read_i64(t, tmp);
            for (int64_t j = 0; j < fc->numel; j++) fc->i32[j] = (int32_t)tmp[j];
            free(tmp);
        } else {
            fc->f32 = malloc(sizeof(float) * (size_t)fc->numel);
            if (!fc->f32) { free_buffer_ctx(fc); st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
            pt_read_f32(t, fc->f32);
        }
        char name[96];
        snprintf(name, sizeof name, "spk.%d.%s", k, t->leaf);
        int64_t shape[4];
        for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
        int ndim = t->ndim;
        if (ndim == 0) { shape[0] = 1; ndim = 1; }
        st = gguf_writer_add_tensor(w, name, is_int ? COSY_DTYPE_I32 : COSY_DTYPE_F32, ndim, shape, fill_from_buffer, fc, free_buffer_ctx);
    }
    if (st == COSY_OK && n_names > 0) {
        char key[96];
        gguf_writer_set_arr_str(w, arch_key(hp, "speakers", key, sizeof key), (const char *const *)names, NULL, (uint64_t)n_names);
        if (verbose) fprintf(stderr, "convert: %d speaker(s) from %s\n", n_names, path);
    }
    free(names);
    pt_close(&pt);
    free(path);
    return st;
}

cosy_status cosy_convert(const char *model_dir, const char *out_path, const cosy_convert_params *params)
{
    cosy_convert_params p = params ? *params : cosy_convert_default_params();
    COSY_TRY(check_params(&p));
    cosy_hparams hp;
    COSY_TRY(cosy_hparams_from_model_dir(model_dir, &hp));

    source_file files[3];
    memset(files, 0, sizeof files);
    const char *names[3] = {"llm.pt", "flow.pt", "hift.pt"};
    cosy_status st = COSY_OK;
    for (int i = 0; i < 3 && st == COSY_OK; i++) {
        files[i].path = cosy_path_join(model_dir, names[i]);
        if (!files[i].path) { st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
        st = pt_open(files[i].path, &files[i].pt);
        if (st == COSY_OK) {
            files[i].used = calloc((size_t)files[i].pt.n_tensors + 1, 1);
            if (!files[i].used) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        }
        if (p.verbose && st == COSY_OK) fprintf(stderr, "convert: %s: %lld tensors\n", files[i].path, (long long)files[i].pt.n_tensors);
    }
    files[ARCH_SRC_HIFT].strip_prefix = "generator.";

    cosy_vocab vocab;
    memset(&vocab, 0, sizeof vocab);
    gguf_writer *w = NULL;
    if (st == COSY_OK) {
        char *tok_dir = cosy_path_join(model_dir, "CosyVoice-BlankEN");
        st = tok_dir ? cosy_vocab_load_dir(tok_dir, &vocab) : cosy_error(COSY_ERR_NOMEM, "out of memory");
        free(tok_dir);
        if (st == COSY_OK) st = add_family_specials(&hp, &vocab);
    }
    if (st == COSY_OK && vocab.n_tokens > hp.lm_text_vocab)
        st = cosy_error(COSY_ERR_SHAPE, "%s: the tokenizer has %d tokens but the text embedding only %d rows", model_dir,
                        vocab.n_tokens, hp.lm_text_vocab);
    if (st == COSY_OK && !(w = gguf_writer_create())) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) {
        const char *base = strrchr(model_dir, '/');
        base = (base && base[1]) ? base + 1 : model_dir;
        write_common_metadata(w, &hp, base, "official", p.weight_dtype);
        cosy_vocab_write_gguf(&vocab, cosy_family_arch(hp.family), w);
        official_ctx ctx = {files, w, &p, COSY_OK};
        cosy_arch_tensors(&hp, add_official_tensor, &ctx);
        st = ctx.status;
    }
    if (st == COSY_OK) st = add_speakers(model_dir, &hp, w, p.verbose);
    /* CAM++ (campplus.onnx) when the directory has it: weights found by walking the graph, BatchNorms
     * folded (model/campplus_onnx.c); the network must live until the writer has copied them */
    cosy_campplus *campplus = NULL;
    char *campplus_path = st == COSY_OK ? cosy_path_join(model_dir, "campplus.onnx") : NULL;
    if (campplus_path && cosy_file_exists(campplus_path)) {
        st = cosy_campplus_from_onnx(campplus_path, &campplus);
        if (st == COSY_OK) st = cosy_campplus_write(campplus, w);
        if (st == COSY_OK && p.verbose)
            fprintf(stderr, "convert: %s: CAM++ with %lld parameters\n", campplus_path, (long long)cosy_campplus_n_params(cosy_campplus_hp(campplus)));
    } else if (st == COSY_OK && p.verbose) {
        fprintf(stderr, "convert: %s: no CAM++ in the model directory (voices can then not be made from audio)\n", model_dir);
    }
    free(campplus_path);
    /* the speech tokenizer (speech_tokenizer_v2.onnx) the same way (model/s3tokenizer_onnx.c) */
    cosy_s3tokenizer *s3tok = NULL;
    /* CosyVoice3's speech_tokenizer_v3.onnx (12 blocks instead of 6) is not read yet: its voices come
     * from --fixture/voice files until it is */
    if (st == COSY_OK && p.verbose && hp.family == COSY_FAMILY_COSYVOICE3)
        fprintf(stderr, "convert: %s: speech_tokenizer_v3.onnx is not converted yet (CosyVoice3 voices can not be made from audio)\n", model_dir);
    char *s3tok_path = st == COSY_OK && hp.family == COSY_FAMILY_COSYVOICE2 ? cosy_path_join(model_dir, "speech_tokenizer_v2.onnx") : NULL;
    if (s3tok_path && cosy_file_exists(s3tok_path)) {
        st = cosy_s3tokenizer_from_onnx(s3tok_path, &s3tok);
        if (st == COSY_OK) st = cosy_s3tokenizer_write(s3tok, w);
        if (st == COSY_OK && p.verbose)
            fprintf(stderr, "convert: %s: speech tokenizer with %lld parameters\n", s3tok_path,
                    (long long)cosy_s3tokenizer_n_params(cosy_s3tokenizer_hp(s3tok)));
    } else if (st == COSY_OK && p.verbose && hp.family == COSY_FAMILY_COSYVOICE2) {
        fprintf(stderr, "convert: %s: no speech_tokenizer_v2.onnx in the model directory (voices can then not be made from audio)\n", model_dir);
    }
    free(s3tok_path);
    if (st == COSY_OK) {
        for (int i = 0; i < 3; i++) {
            int unused = 0;
            const char *first = NULL;
            for (int64_t k = 0; k < files[i].pt.n_tensors; k++) {
                const char *n = files[i].pt.tensors[k].name;
                if (files[i].used[k] || !strcmp(n, "llm.model.lm_head.weight")) continue; /* tied copy of embed_tokens */
                if (!first) first = n;
                unused++;
            }
            if (unused) fprintf(stderr, "convert: warning: %s: %d tensor(s) not used by cosy were ignored (first: %s)\n",
                                files[i].path, unused, first);
        }
        if (p.verbose) fprintf(stderr, "convert: writing %lld tensors to %s\n", (long long)gguf_writer_n_tensors(w), out_path);
        st = gguf_writer_write(w, out_path);
    }
    gguf_writer_free(w);
    cosy_campplus_free(campplus);
    cosy_s3tokenizer_free(s3tok);
    cosy_vocab_free(&vocab);
    for (int i = 0; i < 3; i++) {
        pt_close(&files[i].pt);
        free(files[i].used);
        free((char *)files[i].path);
    }
    return st;
}

/* ------------------------------------------------------------------ random weights */

typedef struct {
    arch_tensor spec;
    uint64_t seed;
    cosy_dtype dtype;
} random_fill_ctx;

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static cosy_status fill_random(void *vctx, void *dst, size_t nbytes)
{
    random_fill_ctx *c = vctx;
    int64_t numel = 1, fan_in = 1;
    for (int d = 0; d < c->spec.ndim; d++) numel *= c->spec.shape[d];
    for (int d = 1; d < c->spec.ndim; d++) fan_in *= c->spec.shape[d];
    float *tmp = c->dtype == COSY_DTYPE_F32 ? dst : malloc(sizeof(float) * (size_t)numel);
    if (!tmp) return cosy_error(COSY_ERR_NOMEM, "convert: out of memory");
    float scale;
    switch (c->spec.init) {
    case ARCH_INIT_WEIGHT: scale = 1.0f / sqrtf((float)fan_in); break;
    case ARCH_INIT_EMBED: scale = sqrtf(3.0f / (float)c->spec.shape[c->spec.ndim - 1]); break;
    case ARCH_INIT_SMALL: scale = 0.02f; break;
    default: scale = 0.0f; break;
    }
    uint64_t state = c->seed ^ hash_name(c->spec.name);
    for (int64_t i = 0; i < numel; i++) {
        if (c->spec.init == ARCH_INIT_ROPE) tmp[i] = (float)pow(10000.0, -(double)i / (double)numel);
        else if (c->spec.init == ARCH_INIT_ONES) tmp[i] = 1.0f;
        else if (c->spec.init == ARCH_INIT_ZEROS) tmp[i] = 0.0f;
        else {
            /* uniform in [-1, 1) from the top 24 bits */
            float u = (float)(splitmix64(&state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
            tmp[i] = u * scale;
        }
    }
    (void)nbytes;
    if (tmp != dst) {
        cosy_convert_from_f32(dst, c->dtype, tmp, numel);
        free(tmp);
    }
    return COSY_OK;
}

typedef struct {
    gguf_writer *writer;
    uint64_t seed;
    const cosy_convert_params *params;
    cosy_status status;
} random_ctx;

static int add_random_tensor(void *vctx, const arch_tensor *spec)
{
    random_ctx *c = vctx;
    random_fill_ctx *fc = calloc(1, sizeof *fc);
    if (!fc) {
        c->status = cosy_error(COSY_ERR_NOMEM, "convert: out of memory");
        return 1;
    }
    fc->spec = *spec;
    fc->seed = c->seed;
    fc->dtype = spec->is_matrix ? matrix_dtype(c->params, spec->name) : COSY_DTYPE_F32;
    if (spec->shape[spec->ndim - 1] % cosy_dtype_block(fc->dtype)) fc->dtype = COSY_DTYPE_F32; /* no whole blocks */
    c->status = gguf_writer_add_tensor(c->writer, spec->name, fc->dtype, spec->ndim, spec->shape, fill_random, fc, free);
    return c->status != COSY_OK;
}

cosy_status cosy_convert_random(const char *config_name, uint64_t seed, const char *out_path, const cosy_convert_params *params)
{
    cosy_convert_params p = params ? *params : cosy_convert_default_params();
    COSY_TRY(check_params(&p));
    cosy_hparams hp;
    COSY_TRY(cosy_hparams_preset(config_name, &hp));
    cosy_vocab vocab;
    cosy_status st = p.tokenizer_dir ? cosy_vocab_load_dir(p.tokenizer_dir, &vocab) : cosy_vocab_byte_level(&vocab);
    if (st != COSY_OK) return st;
    st = add_family_specials(&hp, &vocab);
    if (st != COSY_OK) {
        cosy_vocab_free(&vocab);
        return st;
    }
    if (vocab.n_tokens > hp.lm_text_vocab) {
        st = cosy_error(COSY_ERR_SHAPE, "the tokenizer has %d tokens but %s's text embedding only %d rows", vocab.n_tokens,
                        config_name, hp.lm_text_vocab);
        cosy_vocab_free(&vocab);
        return st;
    }
    gguf_writer *w = gguf_writer_create();
    if (!w) {
        cosy_vocab_free(&vocab);
        return cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    write_common_metadata(w, &hp, config_name, "random", p.weight_dtype);
    char key[96];
    gguf_writer_set_u32(w, arch_key(&hp, "random_seed", key, sizeof key), (uint32_t)seed);
    cosy_vocab_write_gguf(&vocab, cosy_family_arch(hp.family), w);
    random_ctx ctx = {w, seed, &p, COSY_OK};
    cosy_arch_tensors(&hp, add_random_tensor, &ctx);
    st = ctx.status;
    /* the real model's CAM++ (3D-Speaker defaults), so `cosy bench` can time a voice at full size */
    if (st == COSY_OK && !strcmp(config_name, "cosyvoice2-0.5b")) {
        cosy_campplus_hparams chp = cosy_campplus_default_hparams();
        st = cosy_campplus_write_random(&chp, seed, w);
        cosy_s3tokenizer_hparams thp = cosy_s3tokenizer_default_hparams();
        if (st == COSY_OK) st = cosy_s3tokenizer_write_random(&thp, seed, w);
    }
    if (st == COSY_OK) {
        if (p.verbose) fprintf(stderr, "convert: writing %lld random tensors (%s) to %s\n", (long long)gguf_writer_n_tensors(w), config_name, out_path);
        st = gguf_writer_write(w, out_path);
    }
    gguf_writer_free(w);
    cosy_vocab_free(&vocab);
    return st;
}
