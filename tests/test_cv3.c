/* test_cv3.c — the CosyVoice3 model file (tests/data/cv3-tiny, the official cv3-tiny fixture set):
 * `cosy convert` of a cosyvoice3.yaml directory (family, hyperparameters, tensors equal to the
 * checkpoints), the four weight-norm key layouts of hift.pt and f16/bf16 source storages, the
 * cosyvoice3-0.5b tensor table's parameter counts (the released checkpoints'), the random presets,
 * CosyVoice3's added tokens, the prompt mel with fmax = Nyquist, and the silent-token filter. */
#include "test.h"
#include "pt_writer.h"

#include "core/tensor.h"
#include "io/npy.h"
#include "io/ptfile.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/model.h"
#include "model/voice/voice_features.h"
#include "stream/silent_filter.h"
#include "text/tokenizer.h"

#include <unistd.h>

static const char *fixture_dir(void) { return test_data("cv3-tiny/model"); }

static char *path_in(const char *dir, const char *file)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, file);
    return buf[k];
}

/* tmp/<name>/: symlinks to every file of the fixture model directory (a test replaces a file by
 * unlinking its link; the fixture itself is never written) */
static const char *make_variant(const char *name)
{
    static char dir[1024];
    char cmd[4096];
    snprintf(dir, sizeof dir, "%s", test_tmp(name));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp -rs '%s'/. '%s'/", dir, dir, fixture_dir(), dir);
    CHECK(system(cmd) == 0);
    return dir;
}

static void test_fixture(void)
{
    CHECK_OK(cosy_convert(fixture_dir(), test_tmp("cv3.gguf"), NULL));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3.gguf"), NULL, &m));
    if (!m) return;
    const cosy_hparams *hp = &m->hp;
    CHECK(hp->family == COSY_FAMILY_COSYVOICE3);
    const gguf_kv *arch = gguf_find_kv(&m->file, "general.architecture");
    CHECK(arch && arch->str.len == 10 && !memcmp(arch->str.ptr, "cosyvoice3", 10));
    CHECK(gguf_find_kv(&m->file, "cosyvoice3.dit_dim") && !gguf_find_kv(&m->file, "cosyvoice3.enc_blocks"));
    CHECK(hp->lm_hidden == 32 && hp->lm_layers == 2 && hp->lm_heads == 4 && hp->lm_kv_heads == 2 && hp->lm_text_vocab == 151936);
    CHECK(hp->speech_token_size == 6561 && hp->lm_speech_vocab == 6761 && !hp->lm_has_head_bias);
    CHECK(hp->lm_sos == 6561 && hp->lm_eos == 6562 && hp->lm_task_id == 6563 && hp->lm_fill == 6564);
    CHECK(hp->lm_stop_begin == 6561 && hp->lm_stop_end == 6760 && hp->lm_endofprompt == 151646);
    CHECK(hp->n_silent_tokens == 11 && hp->silent_tokens[0] == 1 && hp->silent_tokens[10] == 2323 && hp->max_silent_run == 5);
    CHECK(hp->flow_input_size == 80 && hp->flow_vocab == 6561 && hp->token_mel_ratio == 2 && hp->pre_lookahead_len == 3);
    CHECK(hp->pre_lookahead_channels == 64 && hp->dit_dim == 64 && hp->dit_depth == 2 && hp->dit_heads == 4 && hp->dit_dim_head == 16);
    CHECK(hp->dit_ff_mult == 2 && hp->dit_mel_dim == 80 && hp->dit_mu_dim == 80 && hp->dit_spk_dim == 80 && hp->dit_out_channels == 80);
    CHECK(hp->est_static_chunk == 50 && hp->chunk_size == 25 && hp->dit_rope_dim == 8 && hp->dit_conv_pos_groups == 16);
    CHECK(hp->hift_causal == 1 && hp->conv_pre_look_right == 4 && hp->f0_first_kernel == 4 && hp->f0_cond_channels == 32);
    CHECK(hp->hift_base_channels == 32 && hp->feat_fmax == 0.0f && hp->cfm_in_channels == 240);
    CHECK(m->file.n_tensors == cosy_arch_count(hp));
    /* no llm_embedding, no head bias */
    const cosy_tensor *t;
    CHECK(cosy_model_tensor(m, "lm.embd_special.weight", &t) == COSY_ERR_MISSING);
    CHECK(cosy_model_tensor(m, "lm.head.bias", &t) == COSY_ERR_MISSING);
    CHECK_OK(cosy_model_tensor(m, "lm.embd_speech.weight", &t));
    CHECK(t && t->shape[0] == 6761 && t->shape[1] == 32);
    CHECK_OK(cosy_model_tensor(m, "flow.est.input_embed.conv_pos_embed.conv1.0.weight", &t));
    CHECK(t && t->shape[0] == 64 && t->shape[1] == 4 && t->shape[2] == 31);
    CHECK_OK(cosy_model_tensor(m, "hift.ups.0.weight", &t)); /* Conv1d [out, in, k] */
    CHECK(t && t->shape[0] == 16 && t->shape[1] == 32 && t->shape[2] == 16);
    /* plain tensors equal the checkpoints' exactly */
    static const char *const pairs[][3] = {
        {"lm.head.weight", "llm.pt", "llm_decoder.weight"},
        {"lm.embd_speech.weight", "llm.pt", "speech_embedding.weight"},
        {"flow.est.rotary_embed.inv_freq", "flow.pt", "decoder.estimator.rotary_embed.inv_freq"},
        {"flow.est.transformer_blocks.1.attn_norm.linear.weight", "flow.pt", "decoder.estimator.transformer_blocks.1.attn_norm.linear.weight"},
        {"flow.pre_lookahead_layer.conv1.weight", "flow.pt", "pre_lookahead_layer.conv1.weight"},
        {"hift.f0_predictor.classifier.weight", "hift.pt", "f0_predictor.classifier.weight"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        pt_file f;
        CHECK_OK(pt_open(path_in(fixture_dir(), pairs[i][1]), &f));
        const pt_tensor *s = pt_find(&f, pairs[i][2]);
        const float *w = NULL;
        CHECK(s != NULL);
        CHECK_OK(cosy_model_f32(m, pairs[i][0], &w));
        if (s && w) {
            int64_t n = pt_numel(s);
            float *ref = malloc(sizeof(float) * (size_t)n);
            pt_read_f32(s, ref);
            CHECK(test_max_abs_diff(ref, w, (long)n) == 0);
            free(ref);
        }
        pt_close(&f);
    }
    /* rotary inv_freq = 1 / 10000^(2i / dim_head), as x-transformers builds it */
    const float *inv;
    CHECK_OK(cosy_model_f32(m, "flow.est.rotary_embed.inv_freq", &inv));
    for (int i = 0; i < 8; i++) CHECK_NEAR(inv[i], pow(10000.0, -2.0 * i / 16.0), 1e-6 * pow(10000.0, -2.0 * i / 16.0));
    /* cosy info shows the family */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    cosy_model_print_info(m, mem);
    fclose(mem);
    CHECK(buf && strstr(buf, "cosyvoice3 (CosyVoice3)") && strstr(buf, "DiT 2 blocks, width 64") && strstr(buf, "dit_dim_head"));
    free(buf);
    cosy_model_free(m);
}

/* Rewrites a checkpoint: every tensor renamed by `rename` (NULL: dropped) and stored as `dtype`. */
typedef int (*rename_fn)(const char *name, char *out, size_t size, void *ctx);

static void rewrite_pt(const char *src, const char *dst, rename_fn rename, void *ctx, cosy_dtype dtype)
{
    pt_file f;
    CHECK_OK(pt_open(src, &f));
    int n = (int)f.n_tensors, k = 0;
    ptw_tensor *t = calloc((size_t)n, sizeof *t);
    char (*names)[192] = calloc((size_t)n, sizeof *names), (*keys)[16] = calloc((size_t)n, sizeof *keys);
    const char **keyp = calloc((size_t)n, sizeof *keyp);
    const void **blobs = calloc((size_t)n, sizeof *blobs);
    size_t *sizes = calloc((size_t)n, sizeof *sizes);
    void **data = calloc((size_t)n, sizeof *data);
    const size_t es = dtype == COSY_DTYPE_F32 ? 4 : 2;
    for (int i = 0; i < n; i++) {
        const pt_tensor *s = &f.tensors[i];
        if (!rename(s->name, names[k], sizeof names[k], ctx)) continue;
        int64_t numel = pt_numel(s);
        float *tmp = malloc(sizeof(float) * (size_t)numel);
        pt_read_f32(s, tmp);
        data[k] = malloc(es * (size_t)numel);
        cosy_convert_from_f32(data[k], dtype, tmp, numel);
        free(tmp);
        snprintf(keys[k], sizeof keys[k], "%d", k);
        t[k].name = names[k];
        t[k].storage_type = dtype == COSY_DTYPE_F32 ? "FloatStorage" : dtype == COSY_DTYPE_F16 ? "HalfStorage" : "BFloat16Storage";
        t[k].storage_key = keys[k];
        t[k].numel_storage = (long)numel;
        t[k].ndim = s->ndim;
        long stride = 1;
        for (int d = s->ndim - 1; d >= 0; d--) { t[k].shape[d] = (long)s->shape[d]; t[k].stride[d] = stride; stride *= (long)s->shape[d]; }
        keyp[k] = keys[k];
        blobs[k] = data[k];
        sizes[k] = es * (size_t)numel;
        k++;
    }
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, t, k, NULL);
    CHECK(ptw_write_checkpoint(dst, "archive", &pkl, keyp, blobs, sizes, k, 0) == 0);
    free(pkl.p);
    for (int i = 0; i < k; i++) free(data[i]);
    free(t); free(names); free(keys); free(keyp); free(blobs); free(sizes); free(data);
    pt_close(&f);
}

static int keep_name(const char *name, char *out, size_t size, void *ctx)
{
    (void)ctx;
    snprintf(out, size, "%s", name);
    return 1;
}

/* layout: bit 0 = `generator.` prefix, bit 1 = weight_g/weight_v instead of parametrizations */
static int hift_layout_name(const char *name, char *out, size_t size, void *ctx)
{
    const int layout = *(const int *)ctx;
    const char *prefix = layout & 1 ? "generator." : "";
    const char *p = strstr(name, ".parametrizations.weight.original");
    if (p && (layout & 2)) snprintf(out, size, "%s%.*s.weight_%c", prefix, (int)(p - name), name, p[33] == '0' ? 'g' : 'v');
    else snprintf(out, size, "%s%s", prefix, name);
    return 1;
}

static void test_source_layouts(void)
{
    cosy_model *ref = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3.gguf"), NULL, &ref));
    if (!ref) return;
    /* the four weight-norm key layouts the official loader accepts give the same folded weights */
    for (int layout = 1; layout < 4; layout++) {
        const char *dir = make_variant("cv3_hift_layout");
        unlink(path_in(dir, "hift.pt"));
        rewrite_pt(path_in(fixture_dir(), "hift.pt"), path_in(dir, "hift.pt"), hift_layout_name, &layout, COSY_DTYPE_F32);
        CHECK_OK(cosy_convert(dir, test_tmp("cv3-variant.gguf"), NULL));
        cosy_model *m = NULL;
        CHECK_OK(cosy_model_load(test_tmp("cv3-variant.gguf"), NULL, &m));
        int compared = 0;
        for (int64_t i = 0; m && i < ref->file.n_tensors; i++) {
            const cosy_tensor *a = &ref->file.tensors[i], *b = NULL;
            if (strncmp(a->name, "hift.", 5) != 0) continue;
            CHECK_OK(cosy_model_tensor(m, a->name, &b));
            if (b) CHECK(test_max_abs_diff(a->data, b->data, (long)cosy_tensor_numel(a)) == 0);
            compared++;
        }
        CHECK(compared > 200);
        cosy_model_free(m);
    }
    /* f16 / bf16 storages are widened as the official loader casts them */
    const char *dir = make_variant("cv3_dtypes");
    unlink(path_in(dir, "flow.pt"));
    unlink(path_in(dir, "hift.pt"));
    rewrite_pt(path_in(fixture_dir(), "flow.pt"), path_in(dir, "flow.pt"), keep_name, NULL, COSY_DTYPE_BF16);
    rewrite_pt(path_in(fixture_dir(), "hift.pt"), path_in(dir, "hift.pt"), keep_name, NULL, COSY_DTYPE_F16);
    CHECK_OK(cosy_convert(dir, test_tmp("cv3-half.gguf"), NULL));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3-half.gguf"), NULL, &m));
    for (int64_t i = 0; m && i < ref->file.n_tensors; i++) {
        const cosy_tensor *a = &ref->file.tensors[i], *b = NULL;
        int bf = !strncmp(a->name, "flow.", 5), half = !strncmp(a->name, "hift.", 5);
        if (!bf && !half) continue;
        CHECK_OK(cosy_model_tensor(m, a->name, &b));
        if (!b) continue;
        const int64_t n = cosy_tensor_numel(a);
        const float *x = a->data, *y = b->data;
        double worst = 0;
        for (int64_t j = 0; j < n; j++) worst = fmax(worst, fabs((double)x[j] - y[j]) / fmax(fabs((double)x[j]), 1e-3));
        /* one rounding: bf16 keeps 8 significant bits, f16 11 (weight-norm folds after widening) */
        if (worst > (bf ? 4e-3 : 1.5e-3)) fprintf(stderr, "%s: relative error %.3g\n", a->name, worst);
        CHECK(worst <= (bf ? 4e-3 : 1.5e-3));
    }
    cosy_model_free(m);
    cosy_model_free(ref);
}

typedef struct {
    int64_t lm, flow, flow_buffers, hift, hift_weight_norm_g;
    int has_llm_embedding, has_head_bias;
} param_count;

static int count_params(void *vctx, const arch_tensor *t)
{
    param_count *c = vctx;
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    if (t->file == ARCH_SRC_LLM) c->lm += n;
    else if (t->file == ARCH_SRC_FLOW && t->init == ARCH_INIT_ROPE) c->flow_buffers += n;
    else if (t->file == ARCH_SRC_FLOW) c->flow += n;
    else c->hift += n;
    /* weight-normed HiFT convs (all but source_downs) carry a magnitude g of shape[0] values in hift.pt */
    if (t->file == ARCH_SRC_HIFT && t->ndim == 3 && strncmp(t->source, "source_downs.", 13) != 0) c->hift_weight_norm_g += t->shape[0];
    if (!strcmp(t->source, "llm_embedding.weight")) c->has_llm_embedding = 1;
    if (!strcmp(t->source, "llm_decoder.bias")) c->has_head_bias = 1;
    return 0;
}

/* The released Fun-CosyVoice3-0.5B checkpoints hold exactly these parameters (the official
 * classes built from the example cosyvoice3.yaml; docs/model-format.md). */
static void test_full_size_counts(void)
{
    cosy_hparams hp;
    CHECK_OK(cosy_hparams_preset("cosyvoice3-0.5b", &hp));
    param_count c = {0};
    cosy_arch_tensors(&hp, count_params, &c);
    const int64_t qwen = 494032768; /* Qwen2.5-0.5B: embed_tokens + 24 layers + final norm */
    printf("cosyvoice3-0.5b: LM %lld, flow %lld (+%lld inv_freq), vocoder %lld parameters\n", (long long)c.lm, (long long)c.flow,
           (long long)c.flow_buffers, (long long)c.hift);
    CHECK(c.lm == qwen + 2 * 6761LL * 896);
    CHECK(c.flow == 332257088 && c.flow_buffers == 32);
    /* 20,779,887 as torch counts them (weight_g and weight_v), 20,765,597 once folded */
    CHECK(c.hift + c.hift_weight_norm_g == 20779887 && c.hift == 20765597);
    CHECK(!c.has_llm_embedding && !c.has_head_bias);
    /* without a tokenizer directory: the byte-level vocabulary, whose <|endofprompt|> id is stored */
    CHECK_OK(cosy_convert_random("cv3-tiny", 5, test_tmp("cv3-rand.gguf"), NULL));
    cosy_model *b = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3-rand.gguf"), NULL, &b));
    const cosy_tokenizer *tok = NULL;
    if (b) CHECK_OK(cosy_tokenizer_get(b, &tok));
    if (tok) CHECK(b->hp.lm_endofprompt == cosy_tokenizer_added_id(tok, "<|endofprompt|>") && b->hp.lm_endofprompt == 256 + 3);
    cosy_model_free(b);
    /* with the fixture's tokenizer the tiny preset is the fixture's configuration */
    cosy_convert_params cp = cosy_convert_default_params();
    char tok_dir[1024];
    snprintf(tok_dir, sizeof tok_dir, "%s", path_in(fixture_dir(), "CosyVoice-BlankEN"));
    cp.tokenizer_dir = tok_dir;
    CHECK_OK(cosy_convert_random("cv3-tiny", 5, test_tmp("cv3-rand.gguf"), &cp));
    cosy_model *r = NULL, *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3-rand.gguf"), NULL, &r));
    CHECK_OK(cosy_model_load(test_tmp("cv3.gguf"), NULL, &m));
    if (r && m) {
        CHECK(memcmp(&r->hp, &m->hp, sizeof r->hp) == 0);
        const float *inv;
        CHECK_OK(cosy_model_f32(r, "flow.est.rotary_embed.inv_freq", &inv));
        CHECK(inv && inv[0] == 1.0f && fabs(inv[1] - pow(10000.0, -1.0 / 8)) < 1e-7);
    }
    cosy_model_free(r);
    cosy_model_free(m);
}

static void test_refusals(void)
{
    cosy_model *m = NULL;
    /* a directory with neither yaml: one line naming it */
    CHECK_FAILS(cosy_convert(test_tmp(""), test_tmp("none.gguf"), NULL), COSY_ERR_MISSING,
                "not a CosyVoice2 or CosyVoice3 model directory (no cosyvoice2.yaml or cosyvoice3.yaml)");
    CHECK(!strchr(cosy_last_error(), '\n'));
    /* a cosyvoice3.yaml naming CosyVoice2's classes, and a checkpoint of the other family */
    const char *dir = make_variant("cv3_bad_tag");
    unlink(path_in(dir, "cosyvoice3.yaml"));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sed 's/CausalMaskedDiffWithDiT/CausalMaskedDiffWithXvec/' '%s' > '%s'", path_in(fixture_dir(), "cosyvoice3.yaml"),
             path_in(dir, "cosyvoice3.yaml"));
    CHECK(system(cmd) == 0);
    CHECK_FAILS(cosy_convert(dir, test_tmp("x.gguf"), NULL), COSY_ERR_UNSUPPORTED, "cosyvoice3.yaml: flow is !new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec");
    dir = make_variant("cv3_v2_llm");
    unlink(path_in(dir, "llm.pt"));
    snprintf(cmd, sizeof cmd, "ln -s '%s' '%s'", test_data("cv2-tiny/model/llm.pt"), path_in(dir, "llm.pt"));
    CHECK(system(cmd) == 0);
    CHECK_FAILS(cosy_convert(dir, test_tmp("x.gguf"), NULL), COSY_ERR_SHAPE, "llm.model.model.embed_tokens.weight has shape");
    /* crafted CosyVoice3 hyperparameters are range checked before use, naming the key */
    for (int bad = 0; bad < 3; bad++) {
        cosy_hparams hp;
        CHECK_OK(cosy_hparams_preset("cv3-tiny", &hp));
        const char *needle;
        switch (bad) {
        case 0: hp.dit_depth = 1 << 20; needle = "cosyvoice3.dit_depth = 1048576 is outside the range 0..1024"; break;
        case 1: hp.n_silent_tokens = 40; needle = "cosyvoice3.n_silent_tokens = 40 is outside the range 0..32"; break;
        default: hp.dit_conv_pos_groups = 0; needle = "cosyvoice3.dit_conv_pos_groups = 0 is outside the range 1..65536"; break;
        }
        gguf_writer *w = gguf_writer_create();
        gguf_writer_set_str(w, "general.architecture", "cosyvoice3");
        cosy_hparams_write(&hp, w);
        CHECK_OK(gguf_writer_write(w, test_tmp("bad-cv3.gguf")));
        gguf_writer_free(w);
        CHECK_FAILS(cosy_model_load(test_tmp("bad-cv3.gguf"), NULL, &m), COSY_ERR_FORMAT, needle);
        CHECK(m == NULL);
    }
    /* a DiT width that the conv groups do not divide */
    cosy_hparams hp;
    CHECK_OK(cosy_hparams_preset("cv3-tiny", &hp));
    hp.dit_dim = 60;
    CHECK_FAILS(cosy_hparams_validate(&hp), COSY_ERR_FORMAT, "DiT width 60 is not a multiple of 16 conv groups");
}

static void test_tokenizer(void)
{
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("cv3.gguf"), NULL, &m));
    const cosy_tokenizer *tok = NULL;
    if (m) CHECK_OK(cosy_tokenizer_get(m, &tok));
    if (tok) {
        static const struct { const char *text; int32_t id; } specials[] = {
            {"<|endofprompt|>", 151646}, {"[breath]", 151647}, {"[mn]", 151662}, {"<|endofsystem|>", 151663},
            {"[AA]", 151664}, {"[ER0]", 151697}, {"[ZH]", 151747}, {"[a]", 151748}, {"[uài]", 151817}, {"[ǜ]", 151923},
        };
        for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
            cosy_token_ids ids = {0};
            CHECK_OK(cosy_tokenizer_encode(tok, specials[i].text, strlen(specials[i].text), &ids));
            CHECK(ids.n == 1 && ids.ids[0] == specials[i].id);
            if (ids.n != 1 || ids.ids[0] != specials[i].id) fprintf(stderr, "%s -> %d\n", specials[i].text, ids.n ? ids.ids[0] : -1);
            cosy_token_ids_free(&ids);
        }
        /* the fixture's zero-shot prompt text starts 'You are a helpful assistant.<|endofprompt|>' */
        npy_array ref;
        CHECK_OK(npy_load(test_data("cv3-tiny/golden/lm_prompt_text.npy"), &ref));
        const char *text = "You are a helpful assistant.<|endofprompt|>";
        cosy_token_ids ids = {0};
        CHECK_OK(cosy_tokenizer_encode(tok, text, strlen(text), &ids));
        CHECK(ids.n == 7 && ref.numel >= 7);
        for (size_t i = 0; i < ids.n && i < 7 && (int64_t)i < ref.numel; i++) CHECK(ids.ids[i] == ref.i64[i]);
        cosy_token_ids_free(&ids);
        npy_free(&ref);
    }
    cosy_model_free(m);
}

/* The prompt mel with the yaml's fmax null (= 12 kHz). The filter bank matches librosa to 1e-7.
 * The mel differs from the stored one by up to 2.1e-3 (log units) in spectral valleys near the
 * 1e-5 floor, where the reference's float32 FFT noise dominates (as for CosyVoice2's synthetic
 * signal, tools/golden_voice.c): the error falls as 1/magnitude, so the bound is
 * 1e-4 + 5e-8 / exp(ref) (1.2e-5 measured above log -6, 2.1e-3 at -11). */
static void test_prompt_mel(void)
{
    cosy_hparams hp;
    CHECK_OK(cosy_hparams_preset("cv3-tiny", &hp));
    const cosy_prompt_mel_params p = cosy_prompt_mel_params_from_hparams(&hp);
    CHECK(p.fmax == 0.0f);
    npy_array basis_ref, wav, mel_ref;
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/feat_mel_basis_24k.npy"), &basis_ref));
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/feat_wav24k.npy"), &wav));
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/feat_mel24k.npy"), &mel_ref));
    float *basis = malloc(sizeof(float) * 80 * 961);
    CHECK_OK(cosy_mel_filters_slaney(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax, basis));
    CHECK(basis_ref.numel == 80 * 961 && test_max_abs_diff(basis, basis_ref.f32, 80 * 961) <= 1e-7);
    float *mel = NULL;
    int frames = 0;
    CHECK_OK(cosy_prompt_mel(&p, wav.f32, wav.numel, &mel, &frames));
    CHECK(frames == 75 && mel_ref.numel == 75 * 80);
    double worst = 0, worst_ratio = 0;
    for (int64_t i = 0; mel && mel_ref.numel == 75 * 80 && i < 75 * 80; i++) {
        double d = fabs((double)mel[i] - mel_ref.f32[i]);
        worst = fmax(worst, d);
        worst_ratio = fmax(worst_ratio, d / (1e-4 + 5e-8 / exp(mel_ref.f32[i])));
    }
    printf("prompt mel (fmax = Nyquist): max_abs %.3g, worst error / noise bound %.3g\n", worst, worst_ratio);
    CHECK(worst_ratio <= 1.0);
    free(basis);
    free(mel);
    npy_free(&basis_ref);
    npy_free(&wav);
    npy_free(&mel_ref);
}

static void test_silent_filter(void)
{
    cosy_hparams hp;
    CHECK_OK(cosy_hparams_preset("cv3-tiny", &hp));
    cosy_silent_filter f;
    cosy_silent_filter_init(&f, &hp);
    /* 7 silent ids in a row (mixed ids), a speech token, 6 more: the 6th and 7th, then the 6th drop */
    const int in[] = {1, 2, 28, 1, 55, 248, 494, 100, 2323, 2322, 1, 1, 1, 1, 7};
    const int keep[] = {1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1};
    for (int i = 0; i < (int)(sizeof in / sizeof in[0]); i++) CHECK(cosy_silent_filter_keep(&f, in[i]) == keep[i]);
    /* the fixture's stream */
    npy_array a, b;
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/silent_in.npy"), &a));
    CHECK_OK(npy_load(test_data("cv3-tiny/golden/silent_out.npy"), &b));
    cosy_silent_filter_init(&f, &hp);
    int64_t n = 0, same = 1;
    for (int64_t i = 0; i < a.numel; i++)
        if (cosy_silent_filter_keep(&f, (int)a.i64[i])) same = same && n < b.numel && b.i64[n++] == a.i64[i];
    CHECK(same && n == b.numel);
    npy_free(&a);
    npy_free(&b);
    /* CosyVoice2 has no silent list: everything passes */
    CHECK_OK(cosy_hparams_preset("cv2-tiny", &hp));
    cosy_silent_filter_init(&f, &hp);
    for (int i = 0; i < 20; i++) CHECK(cosy_silent_filter_keep(&f, 1));
}

int main(void)
{
    test_fixture();
    test_source_layouts();
    test_full_size_counts();
    test_refusals();
    test_tokenizer();
    test_prompt_mel();
    test_silent_filter();
    return test_finish("test_cv3");
}
