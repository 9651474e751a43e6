/* test_convert.c — `cosy convert` on the official fixture directory: values, hyperparameters,
 * storage types, the key layouts real checkpoints use (weight-norm parametrizations, a
 * `generator.` prefix, already-folded weights), speakers, the random presets, and every refusal
 * the issue lists (missing file, truncated/corrupt zip, foreign pickle class, tensor shape vs
 * config, yaml without a needed key) — each with a clear message and no partial output. */
#include "test.h"
#include "pt_writer.h"

#include "core/half.h"
#include "io/gguf.h"
#include "io/ptfile.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/model.h"
#include "model/voice/voice.h"

#include <sys/wait.h>
#include <unistd.h>

static const char *fixture_dir(void) { return test_data("cv2-tiny/model"); }

/* tmp/<name>/: real directories with symlinks to every file of the fixture model directory, so
 * a test replaces a file by unlinking its link (the fixture itself is never written) */
static const char *make_variant(const char *name)
{
    static char dir[1024];
    char cmd[4096];
    snprintf(dir, sizeof dir, "%s", test_tmp(name));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp -rs '%s'/. '%s'/", dir, dir, fixture_dir(), dir);
    CHECK(system(cmd) == 0);
    return dir;
}

static char *path_in(const char *dir, const char *file)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, file);
    return buf[k];
}

/* Replaces a symlinked file by a copy with `from` replaced by `to` (text files). */
static void edit_text(const char *dir, const char *file, const char *from, const char *to)
{
    char *p = path_in(dir, file);
    FILE *fp = fopen(p, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = 0;
    char *at = strstr(text, from);
    CHECK(at != NULL);
    if (!at) return;
    unlink(p);
    fp = fopen(p, "wb");
    fwrite(text, 1, (size_t)(at - text), fp);
    fputs(to, fp);
    fputs(at + strlen(from), fp);
    fclose(fp);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void check_hparams(const cosy_hparams *hp)
{
    CHECK(hp->lm_hidden == 64 && hp->lm_layers == 2 && hp->lm_heads == 4 && hp->lm_kv_heads == 2 && hp->lm_head_dim == 16);
    CHECK(hp->lm_ffn == 128 && hp->lm_text_vocab == 2000 && hp->lm_rope_theta == 1e6f && hp->lm_rms_eps == 1e-6f);
    CHECK(hp->speech_token_size == 6561 && hp->lm_speech_vocab == 6564 && hp->mix_text == 5 && hp->mix_speech == 15);
    CHECK(hp->top_k == 25 && fabsf(hp->top_p - 0.8f) < 1e-7f && hp->win_size == 10 && fabsf(hp->tau_r - 0.1f) < 1e-7f);
    CHECK(hp->enc_output_size == 512 && hp->enc_heads == 4 && hp->enc_ffn == 64 && hp->enc_blocks == 1 && hp->enc_up_blocks == 4);
    CHECK(hp->chunk_size == 25 && hp->est_static_chunk == 50 && hp->num_decoding_left_chunks == -1);
    CHECK(hp->est_channels == 64 && hp->est_head_dim == 16 && hp->est_n_blocks == 1 && hp->est_mid_blocks == 2 && hp->est_heads == 2);
    CHECK(hp->cfm_steps == 10 && fabsf(hp->cfm_cfg_rate - 0.7f) < 1e-7f && hp->cfm_cosine_schedule == 1);
    CHECK(hp->hift_base_channels == 32 && hp->f0_cond_channels == 32 && hp->n_upsample == 3);
    CHECK(hp->upsample_rates[0] == 8 && hp->upsample_rates[1] == 5 && hp->upsample_rates[2] == 3);
    CHECK(hp->upsample_kernel_sizes[0] == 16 && hp->resblock_kernel_sizes[2] == 11 && hp->resblock_dilations[5] == 5);
    CHECK(hp->n_source_resblocks == 3 && hp->source_resblock_kernel_sizes[2] == 11 && hp->istft_n_fft == 16 && hp->istft_hop == 4);
    CHECK(hp->feat_n_fft == 1920 && hp->feat_hop == 480 && hp->feat_fmax == 8000.0f && hp->sample_rate == 24000);
}

/* The converted tensor equals the checkpoint's (exactly for f32 sources). */
static void compare_plain(cosy_model *m, const char *ours, const char *pt_path, const char *key)
{
    pt_file f;
    CHECK_OK(pt_open(pt_path, &f));
    const pt_tensor *t = pt_find(&f, key);
    const float *w;
    CHECK(t != NULL);
    CHECK_OK(cosy_model_f32(m, ours, &w));
    if (t) {
        int64_t n = pt_numel(t);
        float *ref = malloc(sizeof(float) * (size_t)n);
        pt_read_f32(t, ref);
        CHECK(test_max_abs_diff(ref, w, n) == 0);
        free(ref);
    }
    pt_close(&f);
}

/* Weight norm folded as torch does (dim 0), computed here in double from weight_g/weight_v. */
static void compare_weight_norm(cosy_model *m, const char *key)
{
    pt_file f;
    CHECK_OK(pt_open(test_data("cv2-tiny/model/hift.pt"), &f));
    char kg[128], kv[128], ours[128];
    snprintf(kg, sizeof kg, "%s.weight_g", key);
    snprintf(kv, sizeof kv, "%s.weight_v", key);
    snprintf(ours, sizeof ours, "hift.%s.weight", key);
    const pt_tensor *g = pt_find(&f, kg), *v = pt_find(&f, kv);
    const float *w;
    CHECK(g && v);
    CHECK_OK(cosy_model_f32(m, ours, &w));
    if (g && v) {
        int64_t n = pt_numel(v), rows = v->shape[0], cols = n / rows;
        float *vv = malloc(sizeof(float) * (size_t)n), *gg = malloc(sizeof(float) * (size_t)rows);
        pt_read_f32(v, vv);
        pt_read_f32(g, gg);
        double worst = 0;
        for (int64_t r = 0; r < rows; r++) {
            double ss = 0;
            for (int64_t c = 0; c < cols; c++) ss += (double)vv[r * cols + c] * vv[r * cols + c];
            for (int64_t c = 0; c < cols; c++) {
                double want = gg[r] * vv[r * cols + c] / sqrt(ss);
                worst = fmax(worst, fabs(want - w[r * cols + c]) / fmax(1e-3, fabs(want)));
            }
        }
        CHECK(worst < 1e-6);
        free(vv);
        free(gg);
    }
    pt_close(&f);
}

static void test_fixture_f32(void)
{
    const char *out = test_tmp("tiny.gguf");
    cosy_convert_params p = cosy_convert_default_params();
    CHECK_OK(cosy_convert(fixture_dir(), out, &p));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(out, NULL, &m));
    if (!m) return;
    check_hparams(&m->hp);
    CHECK(m->file.n_tensors == cosy_arch_count(&m->hp));
    compare_plain(m, "lm.blk.1.attn_k.weight", test_data("cv2-tiny/model/llm.pt"), "llm.model.model.layers.1.self_attn.k_proj.weight");
    compare_plain(m, "lm.embd_text.weight", test_data("cv2-tiny/model/llm.pt"), "llm.model.model.embed_tokens.weight");
    compare_plain(m, "lm.head.bias", test_data("cv2-tiny/model/llm.pt"), "llm_decoder.bias");
    compare_plain(m, "flow.est.mid_blocks.1.1.0.attn1.to_q.weight", test_data("cv2-tiny/model/flow.pt"),
                  "decoder.estimator.mid_blocks.1.1.0.attn1.to_q.weight");
    compare_plain(m, "flow.enc.up_encoders.3.self_attn.pos_bias_u", test_data("cv2-tiny/model/flow.pt"),
                  "encoder.up_encoders.3.self_attn.pos_bias_u");
    compare_plain(m, "hift.source_downs.0.weight", test_data("cv2-tiny/model/hift.pt"), "source_downs.0.weight");
    compare_weight_norm(m, "conv_pre");
    compare_weight_norm(m, "ups.0");  /* ConvTranspose1d: dim 0 is the input channel */
    compare_weight_norm(m, "resblocks.8.convs2.2");
    compare_weight_norm(m, "f0_predictor.condnet.8");
    /* tokenizer: the fixture's 1976 BPE tokens, the 3 Qwen added tokens, then CosyVoice2's 17 */
    const gguf_kv *tokens = gguf_find_kv(&m->file, "tokenizer.ggml.tokens");
    CHECK(tokens && tokens->n == 1996);
    if (tokens && tokens->n == 1996) {
        CHECK(tokens->strs[1976].len == 13 && !memcmp(tokens->strs[1976].ptr, "<|endoftext|>", 13));
        CHECK(tokens->strs[1979].len == 15 && !memcmp(tokens->strs[1979].ptr, "<|endofprompt|>", 15));
        CHECK(tokens->strs[1995].len == 4 && !memcmp(tokens->strs[1995].ptr, "[mn]", 4));
    }
    CHECK(m->n_speakers == 0);
    cosy_model_free(m);
}

static void test_dtypes(void)
{
    cosy_model *ref = NULL, *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("tiny.gguf"), NULL, &ref));
    const cosy_dtype types[] = {COSY_DTYPE_BF16, COSY_DTYPE_F16};
    for (int k = 0; k < 2 && ref; k++) {
        cosy_convert_params p = cosy_convert_default_params();
        p.weight_dtype = types[k];
        CHECK_OK(cosy_convert(fixture_dir(), test_tmp("tiny16.gguf"), &p));
        CHECK_OK(cosy_model_load(test_tmp("tiny16.gguf"), NULL, &m));
        if (!m) continue;
        const cosy_tensor *t;
        CHECK_OK(cosy_model_tensor(m, "lm.blk.0.ffn_up.weight", &t));
        CHECK(t->dtype == types[k]);
        CHECK_OK(cosy_model_tensor(m, "lm.blk.0.attn_norm.weight", &t));
        CHECK(t->dtype == COSY_DTYPE_F32);
        const float *a, *b;
        CHECK_OK(cosy_model_f32(ref, "hift.conv_post.weight", &a));
        CHECK_OK(cosy_model_f32(m, "hift.conv_post.weight", &b));
        int64_t n = 18 * 4 * 7;
        int exact = 1;
        for (int64_t i = 0; i < n; i++) {
            float want = types[k] == COSY_DTYPE_BF16 ? cosy_bf16_to_f32(cosy_f32_to_bf16(a[i])) : cosy_f16_to_f32(cosy_f32_to_f16(a[i]));
            exact &= want == b[i];
        }
        CHECK(exact);
        cosy_model_free(m);
        m = NULL;
    }
    cosy_model_free(ref);
    cosy_convert_params p = cosy_convert_default_params();
    p.weight_dtype = COSY_DTYPE_Q8_0;
    CHECK_FAILS(cosy_convert(fixture_dir(), test_tmp("q8.gguf"), &p), COSY_ERR_INVALID_ARG, "f32, f16 or bf16");
}

/* hift.pt rewritten with torch >= 2.1 parametrizations and a `generator.` prefix, or with
 * weight norm already removed: the converted HiFT must be identical. */
static void write_hift_variant(const char *path, int layout)
{
    pt_file f;
    CHECK_OK(pt_open(test_data("cv2-tiny/model/hift.pt"), &f));
    int n = (int)f.n_tensors;
    ptw_tensor *t = calloc((size_t)n, sizeof *t);
    char (*names)[160] = calloc((size_t)n, sizeof *names), (*keys)[16] = calloc((size_t)n, sizeof *keys);
    const char **keyp = calloc((size_t)n, sizeof *keyp);
    const void **blobs = calloc((size_t)n, sizeof *blobs);
    size_t *sizes = calloc((size_t)n, sizeof *sizes);
    float **data = calloc((size_t)n, sizeof *data);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const pt_tensor *s = &f.tensors[i];
        const char *name = s->name;
        size_t len = strlen(name);
        int is_g = len > 9 && !strcmp(name + len - 9, ".weight_g");
        int is_v = len > 9 && !strcmp(name + len - 9, ".weight_v");
        int64_t numel = pt_numel(s);
        data[k] = malloc(sizeof(float) * (size_t)numel);
        pt_read_f32(s, data[k]);
        if (layout == 2 && is_g) { free(data[k]); data[k] = NULL; continue; } /* folded below with its v */
        if (layout == 2 && is_v) {
            /* remove_weight_norm(): store w = g v / |v| as plain `.weight` */
            char gname[160];
            snprintf(gname, sizeof gname, "%.*s.weight_g", (int)(len - 9), name);
            const pt_tensor *g = pt_find(&f, gname);
            float *gv = malloc(sizeof(float) * (size_t)s->shape[0]);
            pt_read_f32(g, gv);
            int64_t rows = s->shape[0], cols = numel / rows;
            for (int64_t r = 0; r < rows; r++) {
                double ss = 0;
                for (int64_t c = 0; c < cols; c++) ss += (double)data[k][r * cols + c] * data[k][r * cols + c];
                for (int64_t c = 0; c < cols; c++) data[k][r * cols + c] = (float)(gv[r] * data[k][r * cols + c] / sqrt(ss));
            }
            free(gv);
            snprintf(names[k], 160, "%.*s.weight", (int)(len - 9), name);
        } else if (layout == 1 && (is_g || is_v)) {
            snprintf(names[k], 160, "generator.%.*s.parametrizations.weight.original%d", (int)(len - 9), name, is_g ? 0 : 1);
        } else {
            snprintf(names[k], 160, "%s%s", layout == 1 ? "generator." : "", name);
        }
        snprintf(keys[k], 16, "%d", k);
        t[k].name = names[k];
        t[k].storage_type = "FloatStorage";
        t[k].storage_key = keys[k];
        t[k].numel_storage = (long)numel;
        t[k].ndim = s->ndim;
        long stride = 1;
        for (int d = s->ndim - 1; d >= 0; d--) {
            t[k].shape[d] = (long)s->shape[d];
            t[k].stride[d] = stride;
            stride *= (long)s->shape[d];
        }
        keyp[k] = keys[k];
        blobs[k] = data[k];
        sizes[k] = sizeof(float) * (size_t)numel;
        k++;
    }
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, t, k, NULL);
    CHECK(ptw_write_checkpoint(path, "archive", &pkl, keyp, blobs, sizes, k, 0) == 0);
    free(pkl.p);
    for (int i = 0; i < n; i++) free(data[i]);
    free(data); free(t); free(names); free(keys); free(keyp); free(blobs); free(sizes);
    pt_close(&f);
}

static void test_hift_layouts(void)
{
    cosy_model *ref = NULL;
    CHECK_OK(cosy_model_load(test_tmp("tiny.gguf"), NULL, &ref));
    for (int layout = 1; layout <= 2 && ref; layout++) {
        const char *dir = make_variant(layout == 1 ? "hift_param" : "hift_plain");
        unlink(path_in(dir, "hift.pt"));
        write_hift_variant(path_in(dir, "hift.pt"), layout);
        CHECK_OK(cosy_convert(dir, test_tmp("variant.gguf"), NULL));
        cosy_model *m = NULL;
        CHECK_OK(cosy_model_load(test_tmp("variant.gguf"), NULL, &m));
        if (!m) continue;
        double worst = 0;
        int compared = 0;
        for (int64_t i = 0; i < ref->file.n_tensors; i++) {
            const cosy_tensor *a = &ref->file.tensors[i], *b;
            if (strncmp(a->name, "hift.", 5) != 0) continue;
            CHECK_OK(cosy_model_tensor(m, a->name, &b));
            if (!b) continue;
            double d = test_max_abs_diff(a->data, b->data, (long)cosy_tensor_numel(a));
            if (layout == 1) CHECK(d == 0); /* same folding code, bit for bit */
            worst = fmax(worst, d);
            compared++;
        }
        int want = 0;
        for (int64_t i = 0; i < ref->file.n_tensors; i++) want += !strncmp(ref->file.tensors[i].name, "hift.", 5);
        CHECK(compared == want && want > 200);
        CHECK(worst < 1e-7); /* layout 2 was folded in double by this test */
        cosy_model_free(m);
    }
    cosy_model_free(ref);
}

static void test_speakers(void)
{
    const char *dir = make_variant("speakers");
    /* {spkA: {prompt_text, llm_prompt_speech_token, prompt_speech_feat, llm_embedding, flow_embedding},
     *  spkB: {...}} like CosyVoice2.add_zero_shot_spk + save_spkinfo */
    static int32_t text[2][6];
    static int64_t tokens[2][17];
    static float feat[2][34 * 80], emb[2][192];
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 6; i++) text[s][i] = 100 * s + i;
        for (int i = 0; i < 17; i++) tokens[s][i] = 6000 + 10 * s + i;
        for (int i = 0; i < 34 * 80; i++) feat[s][i] = (float)(i % 80) * 0.01f - (float)s;
        for (int i = 0; i < 192; i++) emb[s][i] = (float)i / 192.0f + (float)s;
    }
    ptw_tensor t[10];
    const char *parents[10];
    const char *keys[10];
    const void *blobs[10];
    size_t sizes[10];
    static char keybuf[10][8];
    const char *fields[5] = {"prompt_text", "llm_prompt_speech_token", "prompt_speech_feat", "llm_embedding", "flow_embedding"};
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < 5; j++) {
            int k = s * 5 + j;
            snprintf(keybuf[k], 8, "%d", k);
            memset(&t[k], 0, sizeof t[k]);
            t[k].name = fields[j];
            t[k].storage_key = keybuf[k];
            t[k].ndim = j == 2 ? 3 : 2;
            parents[k] = s ? "spkB" : "spkA";
            keys[k] = keybuf[k];
            if (j == 0) { t[k].storage_type = "IntStorage"; t[k].numel_storage = 6; t[k].shape[0] = 1; t[k].shape[1] = 6; blobs[k] = text[s]; sizes[k] = sizeof text[s]; }
            if (j == 1) { t[k].storage_type = "LongStorage"; t[k].numel_storage = 17; t[k].shape[0] = 1; t[k].shape[1] = 17; blobs[k] = tokens[s]; sizes[k] = sizeof tokens[s]; }
            if (j == 2) { t[k].storage_type = "FloatStorage"; t[k].numel_storage = 34 * 80; t[k].shape[0] = 1; t[k].shape[1] = 34; t[k].shape[2] = 80; blobs[k] = feat[s]; sizes[k] = sizeof feat[s]; }
            if (j >= 3) { t[k].storage_type = "FloatStorage"; t[k].numel_storage = 192; t[k].shape[0] = 1; t[k].shape[1] = 192; blobs[k] = emb[s]; sizes[k] = sizeof emb[s]; }
            long stride = 1;
            for (int d = t[k].ndim - 1; d >= 0; d--) { t[k].stride[d] = stride; stride *= t[k].shape[d]; }
        }
    ptw_buf pkl = {0};
    ptw_pickle_grouped(&pkl, t, 10, parents);
    CHECK(ptw_write_checkpoint(path_in(dir, "spk2info.pt"), "spk2info", &pkl, keys, blobs, sizes, 10, 0) == 0);
    free(pkl.p);
    CHECK_OK(cosy_convert(dir, test_tmp("spk.gguf"), NULL));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("spk.gguf"), NULL, &m));
    if (!m) return;
    CHECK(m->n_speakers == 2 && !strcmp(m->speakers[0], "spkA") && !strcmp(m->speakers[1], "spkB"));
    const cosy_tensor *pt, *tok, *ft, *em;
    CHECK_OK(cosy_model_tensor(m, "spk.1.prompt_text", &pt));
    CHECK_OK(cosy_model_tensor(m, "spk.1.llm_prompt_speech_token", &tok));
    CHECK_OK(cosy_model_tensor(m, "spk.0.prompt_speech_feat", &ft));
    CHECK_OK(cosy_model_tensor(m, "spk.1.flow_embedding", &em));
    if (pt && tok && ft && em) {
        CHECK(pt->dtype == COSY_DTYPE_I32 && ((int32_t *)pt->data)[5] == 105);
        CHECK(tok->dtype == COSY_DTYPE_I32 && tok->shape[1] == 17 && ((int32_t *)tok->data)[16] == 6026);
        CHECK(ft->dtype == COSY_DTYPE_F32 && ft->ndim == 3 && ft->shape[1] == 34 && ((float *)ft->data)[81] == 0.01f);
        CHECK(((float *)em->data)[191] == 191.0f / 192.0f + 1.0f);
    }
    cosy_model_free(m);
}

/* A speaker whose llm_embedding (64 values) is shorter than its flow_embedding (192): `cosy voice
 * import --speaker` must refuse naming the speaker and the field (it read 192 values past the
 * 64 before), and leave nothing in the output directory (no voice, no .tmp-<pid>). */
static void test_speaker_short_llm_embedding(void)
{
    const char *dir = make_variant("speakers_short");
    static float feat[4 * 80], emb[192]; /* emb: the values ptw_write_short_speaker writes */
    for (int i = 0; i < 4 * 80; i++) feat[i] = -1.0f - (float)(i % 80) * 0.01f;
    for (int i = 0; i < 192; i++) emb[i] = (float)i / 192.0f;
    CHECK(ptw_write_short_speaker(path_in(dir, "spk2info.pt"), feat) == 0);
    char model[1024];
    snprintf(model, sizeof model, "%s", test_tmp("spk-short.gguf"));
    CHECK_OK(cosy_convert(dir, model, NULL));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(model, NULL, &m));
    if (!m) return;
    cosy_voice *v = NULL;
    CHECK_FAILS(cosy_voice_from_speaker(m, "spkShort", &v), COSY_ERR_FORMAT, "speaker 'spkShort': llm_embedding has 64 values");
    CHECK(v == NULL);
    /* a voice in memory with a short LM embedding: refused by validation, and save reads no further than it holds */
    v = cosy_voice_alloc("short");
    if (v) {
        v->embed_dim = 192;
        v->flow_embedding = malloc(sizeof(float) * 192);
        v->n_llm_embedding = 64;
        v->llm_embedding = malloc(sizeof(float) * 64);
        for (int i = 0; v->flow_embedding && v->llm_embedding && i < 192; i++) {
            v->flow_embedding[i] = emb[i];
            if (i < 64) v->llm_embedding[i] = emb[i];
        }
        CHECK_FAILS(cosy_voice_validate(v, m), COSY_ERR_INVALID_ARG, "short: the LM speaker embedding (llm_embedding) has 64 values");
        /* save writes each embedding with its own length (it read 192 of the 64 before) */
        CHECK_OK(cosy_voice_save(v, test_tmp("short.voice")));
        cosy_voice *back = NULL;
        CHECK_OK(cosy_voice_load(test_tmp("short.voice"), &back));
        CHECK(back && back->n_llm_embedding == 64 && back->embed_dim == 192 && back->llm_embedding[63] == emb[63]);
        /* a length the arrays do not back: refused before anything is read or written */
        v->n_prompt_text = 5;
        unlink(test_tmp("short-bad.voice"));
        CHECK_FAILS(cosy_voice_save(v, test_tmp("short-bad.voice")), COSY_ERR_INVALID_ARG, "voice.prompt_text needs 5 values");
        CHECK(!exists(test_tmp("short-bad.voice")));
        v->n_prompt_text = 0;
        cosy_voice_free(back);
        cosy_voice_free(v);
    }
    cosy_model_free(m);

    /* the command: exit 1, one line naming speaker and field, an empty output directory */
    char outdir[1024], cmd[4096], out[4096];
    snprintf(outdir, sizeof outdir, "%s", test_tmp("spk-short-out"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", outdir, outdir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s voice import -m '%s' --speaker spkShort -o '%s/x.voice' 2>&1", COSY_BIN, model, outdir);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int status = pclose(p);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CHECK(strstr(out, "spkShort") && strstr(out, "llm_embedding"));
    if (!(strstr(out, "spkShort") && strstr(out, "llm_embedding"))) fprintf(stderr, "voice import said: %s\n", out);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", outdir);
    CHECK(system(cmd) == 0);
}

static void test_random_presets(void)
{
    CHECK_OK(cosy_convert_random("cv2-tiny", 7, test_tmp("rand-tiny.gguf"), NULL));
    cosy_model *r = NULL, *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("rand-tiny.gguf"), NULL, &r));
    CHECK_OK(cosy_model_load(test_tmp("tiny.gguf"), NULL, &m));
    if (r && m) {
        /* the preset has exactly the fixture's hyperparameters */
        CHECK(memcmp(&r->hp, &m->hp, sizeof r->hp) == 0);
        const float *w;
        CHECK_OK(cosy_model_f32(r, "lm.blk.0.attn_q.weight", &w));
        double mx = 0;
        for (int i = 0; i < 64 * 64; i++) mx = fmax(mx, fabs(w[i]));
        CHECK(mx > 0 && mx <= 1.0 / 8.0); /* uniform within 1/sqrt(fan_in) */
        const gguf_kv *tokens = gguf_find_kv(&r->file, "tokenizer.ggml.tokens");
        CHECK(tokens && tokens->n == 256 + 3 + 17);
    }
    cosy_model_free(r);
    cosy_model_free(m);
    CHECK_FAILS(cosy_convert_random("cosyvoice9", 1, test_tmp("x.gguf"), NULL), COSY_ERR_INVALID_ARG, "cosyvoice9");
}

/* Each refusal: the status, a message naming the culprit, and no output file. */
static void expect_refusal(const char *dir, cosy_status want, const char *needle)
{
    const char *out = test_tmp("refused.gguf");
    unlink(out);
    CHECK_FAILS(cosy_convert(dir, out, NULL), want, needle);
    CHECK(!exists(out));
}

static void test_refusals(void)
{
    const char *dir;
    char cmd[2048];
    expect_refusal(test_tmp("no-such-model-dir"), COSY_ERR_MISSING, "no-such-model-dir: not a CosyVoice2 or CosyVoice3 model directory");

    dir = make_variant("no_flow");
    unlink(path_in(dir, "flow.pt"));
    expect_refusal(dir, COSY_ERR_MISSING, "no_flow/flow.pt");

    dir = make_variant("truncated");
    unlink(path_in(dir, "llm.pt"));
    snprintf(cmd, sizeof cmd, "head -c 2000000 '%s' > '%s'", test_data("cv2-tiny/model/llm.pt"), path_in(dir, "llm.pt"));
    CHECK(system(cmd) == 0);
    expect_refusal(dir, COSY_ERR_FORMAT, "truncated/llm.pt");

    dir = make_variant("corrupt");
    unlink(path_in(dir, "hift.pt"));
    {
        /* overwrite the first central-directory entry's signature */
        FILE *in = fopen(test_data("cv2-tiny/model/hift.pt"), "rb");
        fseek(in, 0, SEEK_END);
        long n = ftell(in);
        unsigned char *buf = malloc((size_t)n);
        fseek(in, 0, SEEK_SET);
        CHECK(fread(buf, 1, (size_t)n, in) == (size_t)n);
        fclose(in);
        unsigned char *eocd = buf + n - 22;
        uint32_t cd = (uint32_t)eocd[16] | (uint32_t)eocd[17] << 8 | (uint32_t)eocd[18] << 16 | (uint32_t)eocd[19] << 24;
        memcpy(buf + cd, "XXXX", 4);
        FILE *out = fopen(path_in(dir, "hift.pt"), "wb");
        fwrite(buf, 1, (size_t)n, out);
        fclose(out);
        free(buf);
    }
    expect_refusal(dir, COSY_ERR_FORMAT, "corrupt/hift.pt");

    dir = make_variant("evil");
    unlink(path_in(dir, "llm.pt"));
    ptw_buf pkl = {0};
    ptw_u8(&pkl, 0x80); ptw_u8(&pkl, 2);
    pk_global(&pkl, "builtins", "eval");
    ptw_u8(&pkl, '.');
    CHECK(ptw_write_checkpoint(path_in(dir, "llm.pt"), "llm", &pkl, NULL, NULL, NULL, 0, 0) == 0);
    free(pkl.p);
    expect_refusal(dir, COSY_ERR_UNSUPPORTED, "unsupported class builtins.eval at byte 2");

    dir = make_variant("no_key");
    edit_text(dir, "cosyvoice2.yaml", "        num_blocks: 1\n", "");
    expect_refusal(dir, COSY_ERR_MISSING, "key flow.encoder.num_blocks is missing");

    dir = make_variant("shape");
    edit_text(dir, "cosyvoice2.yaml", "linear_units: 64", "linear_units: 96");
    expect_refusal(dir, COSY_ERR_SHAPE, "flow.pt: tensor encoder.encoders.0.feed_forward.w_1.weight has shape [64, 512] but the configuration needs [96, 512]");

    dir = make_variant("json_shape");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"intermediate_size\": 128", "\"intermediate_size\": 256");
    expect_refusal(dir, COSY_ERR_SHAPE, "tensor llm.model.model.layers.0.mlp.gate_proj.weight has shape [128, 64]");

    dir = make_variant("hidden");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"hidden_size\": 64", "\"hidden_size\": 128");
    expect_refusal(dir, COSY_ERR_SHAPE, "disagree with hidden_size 128");

    dir = make_variant("v3_lm");
    edit_text(dir, "cosyvoice2.yaml", "cosyvoice.llm.llm.Qwen2LM", "cosyvoice.llm.llm.CosyVoice3LM");
    expect_refusal(dir, COSY_ERR_UNSUPPORTED, "CosyVoice3LM");

    dir = make_variant("bad_yaml");
    edit_text(dir, "cosyvoice2.yaml", "sample_rate: 24000", "sample_rate: [24000");
    expect_refusal(dir, COSY_ERR_FORMAT, "yaml error");

    dir = make_variant("no_vocab");
    unlink(path_in(dir, "CosyVoice-BlankEN/vocab.json"));
    expect_refusal(dir, COSY_ERR_MISSING, "no tokenizer");

    /* a missing tensor: hift.pt without conv_post */
    dir = make_variant("no_tensor");
    unlink(path_in(dir, "hift.pt"));
    pt_file f;
    CHECK_OK(pt_open(test_data("cv2-tiny/model/hift.pt"), &f));
    ptw_tensor t[400];
    const char *keys[400];
    const void *blobs[400];
    size_t sizes[400];
    static char kb[400][8];
    static float *data[400];
    int k = 0;
    for (int64_t i = 0; i < f.n_tensors && k < 400; i++) {
        const pt_tensor *s = &f.tensors[i];
        if (!strncmp(s->name, "conv_post.", 10)) continue;
        int64_t numel = pt_numel(s);
        data[k] = malloc(sizeof(float) * (size_t)numel);
        pt_read_f32(s, data[k]);
        snprintf(kb[k], 8, "%d", k);
        memset(&t[k], 0, sizeof t[k]);
        t[k].name = s->name;
        t[k].storage_type = "FloatStorage";
        t[k].storage_key = kb[k];
        t[k].numel_storage = (long)numel;
        t[k].ndim = s->ndim;
        long stride = 1;
        for (int d = s->ndim - 1; d >= 0; d--) { t[k].shape[d] = (long)s->shape[d]; t[k].stride[d] = stride; stride *= (long)s->shape[d]; }
        keys[k] = kb[k];
        blobs[k] = data[k];
        sizes[k] = sizeof(float) * (size_t)numel;
        k++;
    }
    memset(&pkl, 0, sizeof pkl);
    ptw_pickle(&pkl, t, k, NULL);
    CHECK(ptw_write_checkpoint(path_in(dir, "hift.pt"), "hift", &pkl, keys, blobs, sizes, k, 0) == 0);
    free(pkl.p);
    for (int i = 0; i < k; i++) free(data[i]);
    pt_close(&f);
    expect_refusal(dir, COSY_ERR_MISSING, "no_tensor/hift.pt: tensor conv_post.weight is missing");
}


/* ---- another size: an official-format directory written from the architecture table ----
 * Every dimension differs from the fixture (layers, heads, kv heads, head_dim, rope_theta, encoder and
 * estimator widths/depths, HiFT channels), HiFT uses the torch >= 2.1 parametrization layout with a
 * `generator.` prefix and flow.pt is float16: the converter must take it unchanged. */

typedef struct {
    ptw_tensor t[2048];
    char names[2048][128];
    char keys[2048][8];
    const char *keyp[2048];
    const void *blobs[2048];
    size_t sizes[2048];
    void *data[2048];
    int n;
} pt_builder;

static void builder_add(pt_builder *b, const char *name, int ndim, const int64_t *shape, int half, uint64_t *seed)
{
    int k = b->n++;
    snprintf(b->names[k], sizeof b->names[k], "%s", name);
    snprintf(b->keys[k], sizeof b->keys[k], "%d", k);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    size_t es = half ? 2 : 4;
    b->data[k] = malloc((size_t)numel * es);
    for (int64_t i = 0; i < numel; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        float v = (float)((*seed >> 40) & 0xffff) / 65536.0f - 0.5f;
        if (half) ((uint16_t *)b->data[k])[i] = cosy_f32_to_f16(v);
        else ((float *)b->data[k])[i] = v;
    }
    ptw_tensor *t = &b->t[k];
    memset(t, 0, sizeof *t);
    t->name = b->names[k];
    t->storage_type = half ? "HalfStorage" : "FloatStorage";
    t->storage_key = b->keys[k];
    t->numel_storage = (long)numel;
    t->ndim = ndim;
    long stride = 1;
    for (int d = ndim - 1; d >= 0; d--) { t->shape[d] = (long)shape[d]; t->stride[d] = stride; stride *= (long)shape[d]; }
    b->keyp[k] = b->keys[k];
    b->blobs[k] = b->data[k];
    b->sizes[k] = (size_t)numel * es;
}

static void builder_write(pt_builder *b, const char *path, const char *prefix)
{
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, b->t, b->n, NULL);
    CHECK(ptw_write_checkpoint(path, prefix, &pkl, b->keyp, b->blobs, b->sizes, b->n, 0) == 0);
    free(pkl.p);
    for (int i = 0; i < b->n; i++) free(b->data[i]);
    b->n = 0;
}

typedef struct {
    pt_builder *files[3];
    uint64_t seed;
} other_ctx;

static int add_other(void *vctx, const arch_tensor *spec)
{
    other_ctx *c = vctx;
    pt_builder *b = c->files[spec->file];
    size_t len = strlen(spec->source);
    int weight_norm = spec->file == ARCH_SRC_HIFT && spec->ndim == 3 && strncmp(spec->source, "source_downs", 12) != 0;
    char name[160];
    if (spec->file == ARCH_SRC_HIFT && weight_norm) {
        int64_t g_shape[3] = {spec->shape[0], 1, 1};
        snprintf(name, sizeof name, "generator.%.*s.parametrizations.weight.original0", (int)(len - 7), spec->source);
        builder_add(b, name, 3, g_shape, 0, &c->seed);
        snprintf(name, sizeof name, "generator.%.*s.parametrizations.weight.original1", (int)(len - 7), spec->source);
        builder_add(b, name, 3, spec->shape, 0, &c->seed);
    } else {
        snprintf(name, sizeof name, "%s%s", spec->file == ARCH_SRC_HIFT ? "generator." : "", spec->source);
        builder_add(b, name, spec->ndim, spec->shape, spec->file == ARCH_SRC_FLOW, &c->seed);
    }
    return 0;
}

static void test_other_sizes(void)
{
    cosy_hparams hp;
    CHECK_OK(cosy_hparams_preset("cv2-tiny", &hp));
    hp.lm_hidden = 48; hp.lm_layers = 3; hp.lm_heads = 6; hp.lm_kv_heads = 2; hp.lm_head_dim = 8; hp.lm_ffn = 96;
    hp.lm_rope_theta = 10000.0f;
    hp.enc_heads = 8; hp.enc_ffn = 48; hp.enc_blocks = 2;
    hp.est_channels = 32; hp.est_head_dim = 8; hp.est_n_blocks = 2; hp.est_mid_blocks = 1; hp.est_heads = 4;
    hp.hift_base_channels = 64; hp.f0_cond_channels = 16;
    CHECK_OK(cosy_hparams_validate(&hp));

    const char *dir = make_variant("other_sizes");
    edit_text(dir, "cosyvoice2.yaml", "llm_input_size: 64", "llm_input_size: 48");
    edit_text(dir, "cosyvoice2.yaml", "llm_output_size: 64", "llm_output_size: 48");
    edit_text(dir, "cosyvoice2.yaml", "attention_heads: 4", "attention_heads: 8");
    edit_text(dir, "cosyvoice2.yaml", "linear_units: 64", "linear_units: 48");
    edit_text(dir, "cosyvoice2.yaml", "num_blocks: 1", "num_blocks: 2");
    edit_text(dir, "cosyvoice2.yaml", "channels: [64]", "channels: [32]");
    edit_text(dir, "cosyvoice2.yaml", "attention_head_dim: 16", "attention_head_dim: 8");
    edit_text(dir, "cosyvoice2.yaml", "n_blocks: 1", "n_blocks: 2");
    edit_text(dir, "cosyvoice2.yaml", "num_mid_blocks: 2", "num_mid_blocks: 1");
    edit_text(dir, "cosyvoice2.yaml", "num_heads: 2", "num_heads: 4");
    edit_text(dir, "cosyvoice2.yaml", "base_channels: 32", "base_channels: 64");
    edit_text(dir, "cosyvoice2.yaml", "cond_channels: 32", "cond_channels: 16");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"hidden_size\": 64", "\"hidden_size\": 48");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"intermediate_size\": 128", "\"intermediate_size\": 96");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"num_attention_heads\": 4", "\"num_attention_heads\": 6");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    edit_text(dir, "CosyVoice-BlankEN/config.json", "\"rope_theta\": 1000000.0", "\"rope_theta\": 10000.0");

    static pt_builder llm, flow, hift;
    other_ctx c = {{&llm, &flow, &hift}, 42};
    cosy_arch_tensors(&hp, add_other, &c);
    int64_t tied[2] = {hp.lm_text_vocab, hp.lm_hidden};
    builder_add(&llm, "llm.model.lm_head.weight", 2, tied, 0, &c.seed);
    unlink(path_in(dir, "llm.pt"));
    unlink(path_in(dir, "flow.pt"));
    unlink(path_in(dir, "hift.pt"));
    builder_write(&llm, path_in(dir, "llm.pt"), "archive");
    builder_write(&flow, path_in(dir, "flow.pt"), "archive");
    builder_write(&hift, path_in(dir, "hift.pt"), "archive");

    CHECK_OK(cosy_convert(dir, test_tmp("other.gguf"), NULL));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("other.gguf"), NULL, &m));
    if (!m) return;
    CHECK(memcmp(&m->hp, &hp, sizeof hp) == 0);
    CHECK(m->file.n_tensors == cosy_arch_count(&hp));
    const cosy_tensor *t;
    CHECK_OK(cosy_model_tensor(m, "lm.blk.2.attn_k.weight", &t));
    CHECK(t && t->shape[0] == 16 && t->shape[1] == 48);
    CHECK_OK(cosy_model_tensor(m, "hift.resblocks.8.convs1.0.weight", &t));
    CHECK(t && t->shape[0] == 8);
    CHECK_OK(cosy_model_tensor(m, "flow.est.mid_blocks.0.1.1.attn1.to_q.weight", &t));
    CHECK(t && t->shape[0] == 32 && t->shape[1] == 32);
    cosy_model_free(m);
}

static void test_load_refusals(void)
{
    cosy_model *m = NULL;
    CHECK_FAILS(cosy_model_load(test_tmp("no-such.gguf"), NULL, &m), COSY_ERR_MISSING, "no-such.gguf");
    CHECK(m == NULL);
    /* a GGUF that is not ours */
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "llama");
    CHECK_OK(gguf_writer_write(w, test_tmp("llama.gguf")));
    gguf_writer_free(w);
    CHECK_FAILS(cosy_model_load(test_tmp("llama.gguf"), NULL, &m), COSY_ERR_UNSUPPORTED, "not \"cosyvoice2\"");
    /* a model file cut short */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "head -c 30000000 '%s' > '%s'", test_tmp("tiny.gguf"), test_tmp("cut.gguf"));
    CHECK(system(cmd) == 0);
    CHECK_FAILS(cosy_model_load(test_tmp("cut.gguf"), NULL, &m), COSY_ERR_FORMAT, "truncated?");
    /* crafted hyperparameters: each out-of-range value is refused naming its key and range
     * (token_frame_rate = 2^30 once overflowed int products into a division by zero) */
    for (int bad = 0; bad < 6; bad++) {
        cosy_hparams hp;
        CHECK_OK(cosy_hparams_preset("cv2-tiny", &hp));
        const char *needle = NULL;
        switch (bad) {
        case 0: hp.token_frame_rate = 1 << 30; needle = "cosyvoice2.token_frame_rate = 1073741824 is outside the range 1..1000"; break;
        case 1: hp.sample_rate = 0; needle = "cosyvoice2.sample_rate = 0 is outside the range 8000..192000"; break;
        case 2: hp.lm_layers = 1 << 20; needle = "cosyvoice2.lm_layers = 1048576 is outside the range 1..1024"; break;
        case 3: hp.lm_hidden = -896; needle = "cosyvoice2.lm_hidden = -896 is outside the range 1..65536"; break;
        case 4: hp.upsample_rates[1] = 1 << 28; needle = "cosyvoice2.upsample_rates[1] = 268435456 is outside the range 1..64"; break;
        default: hp.top_p = NAN; needle = "cosyvoice2.top_p = nan is outside the range 0..1"; break;
        }
        w = gguf_writer_create();
        gguf_writer_set_str(w, "general.architecture", "cosyvoice2");
        cosy_hparams_write(&hp, w);
        CHECK_OK(gguf_writer_write(w, test_tmp("bad-hparams.gguf")));
        gguf_writer_free(w);
        CHECK_FAILS(cosy_model_load(test_tmp("bad-hparams.gguf"), NULL, &m), COSY_ERR_FORMAT, needle);
        CHECK(m == NULL);
        /* the same values are refused however the hyperparameters came (yaml, presets) */
        CHECK(cosy_hparams_validate(&hp) == COSY_ERR_FORMAT && strstr(cosy_last_error(), "is outside the range"));
    }
    cosy_model_params p = cosy_model_default_params();
    p.lm_dtype = COSY_DTYPE_F16;
    CHECK_FAILS(cosy_model_load(test_tmp("tiny.gguf"), &p, &m), COSY_ERR_INVALID_ARG, "LM type f16");
}

int main(void)
{
    test_fixture_f32();
    test_dtypes();
    test_hift_layouts();
    test_speakers();
    test_speaker_short_llm_embedding();
    test_random_presets();
    test_refusals();
    test_other_sizes();
    test_load_refusals();
    return test_finish("test_convert");
}
