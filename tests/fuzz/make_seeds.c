/*
 * make_seeds.c — writes the seed inputs of the fuzz targets that cannot simply be copied from
 * tests/data (run.sh copies the rest): small PyTorch checkpoints (crafted layouts, and tensors
 * taken from the fixture's hift.pt), model files holding the cv2-tiny hyperparameters, a
 * byte-level vocabulary and a few tensors, voice files (one from the cv2-tiny fixture's prompt
 * arrays), small WAVE files, HyperPyYAML documents and a small ONNX graph. Usage: make_seeds TEST_DATA_DIR OUT_DIR
 * (OUT_DIR/<target>/ must exist). Everything is derived from tests/data or built here.
 */
#include "pt_writer.h"

#include "core/error.h"
#include "core/half.h"
#include "io/gguf.h"
#include "io/npy.h"
#include "io/ptfile.h"
#include "io/wav.h"
#include "model/hparams.h"
#include "model/voice/voice.h"
#include "text/vocab.h"

#include <math.h>

static const char *g_out;

static const char *out_path(const char *target, const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s/%s", g_out, target, name);
    return buf;
}

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, cosy_last_error());
    exit(1);
}

/* crafted checkpoints: the layouts test_ptfile.c reads (views, shared storages, bf16, int64) */
static void seed_pt_crafted(void)
{
    static float base[24];
    static uint16_t bf[6];
    static int64_t ids[5] = {3, -1, 6560, 7, 0};
    for (int i = 0; i < 24; i++) base[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 6; i++) bf[i] = cosy_f32_to_bf16((float)i + 0.25f);
    ptw_tensor t[] = {
        {"plain", "FloatStorage", "0", 24, 0, 2, {4, 6}, {6, 1}},
        {"transposed", "FloatStorage", "0", 24, 0, 2, {6, 4}, {1, 6}},
        {"slice", "FloatStorage", "0", 24, 7, 1, {5}, {2}},
        {"bf", "BFloat16Storage", "1", 6, 0, 2, {2, 3}, {3, 1}},
        {"ids", "LongStorage", "2", 5, 0, 2, {1, 5}, {5, 1}},
    };
    const char *keys[] = {"0", "1", "2"};
    const void *blobs[] = {base, bf, ids};
    size_t sizes[] = {sizeof base, sizeof bf, sizeof ids};
    for (int variant = 0; variant < 3; variant++) {
        ptw_buf pkl = {0};
        ptw_pickle(&pkl, t, 5, variant == 2 ? "spk" : NULL);
        char name[32];
        snprintf(name, sizeof name, "crafted%d.pt", variant);
        if (ptw_write_checkpoint(out_path("pt", name), "archive", &pkl, keys, blobs, sizes, 3, variant == 1) != 0) die(name);
        free(pkl.p);
    }
}

/* the first small tensors of the fixture's hift.pt (real names, shapes, weight-norm layout), dense f32 */
static void seed_pt_fixture(const char *data_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cv2-tiny/model/hift.pt", data_dir);
    pt_file f;
    if (pt_open(path, &f) != COSY_OK) die(path);
    enum { MAX_T = 12 };
    ptw_tensor t[MAX_T];
    float *blob[MAX_T];
    const void *blobs[MAX_T];
    size_t sizes[MAX_T];
    char keys[MAX_T][8];
    const char *keyp[MAX_T];
    int n = 0;
    for (int64_t i = 0; i < f.n_tensors && n < MAX_T; i++) {
        const pt_tensor *s = &f.tensors[i];
        int64_t numel = pt_numel(s);
        if (numel < 1 || numel > 256 || s->ndim > 4) continue;
        blob[n] = malloc(sizeof(float) * (size_t)numel);
        pt_read_f32(s, blob[n]);
        snprintf(keys[n], sizeof keys[n], "%d", n);
        keyp[n] = keys[n];
        blobs[n] = blob[n];
        sizes[n] = sizeof(float) * (size_t)numel;
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = s->name;
        t[n].storage_type = "FloatStorage";
        t[n].storage_key = keyp[n];
        t[n].numel_storage = (long)numel;
        t[n].ndim = s->ndim;
        long stride = 1;
        for (int d = s->ndim - 1; d >= 0; d--) {
            t[n].shape[d] = (long)s->shape[d];
            t[n].stride[d] = stride;
            stride *= (long)s->shape[d];
        }
        n++;
    }
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, t, n, NULL);
    if (ptw_write_checkpoint(out_path("pt", "hift_small.pt"), "hift", &pkl, keyp, blobs, sizes, n, 0) != 0) die("hift_small.pt");
    free(pkl.p);
    for (int i = 0; i < n; i++) free(blob[i]);
    pt_close(&f);
}

static cosy_status fill_ramp(void *ctx, void *dst, size_t nbytes)
{
    (void)ctx;
    unsigned char *p = dst;
    for (size_t i = 0; i < nbytes; i++) p[i] = (unsigned char)(i * 7);
    return COSY_OK;
}

/* model files as `cosy convert` writes them, without the weights (a seed must stay small) */
static void seed_models(void)
{
    cosy_hparams hp;
    if (cosy_hparams_preset("cv2-tiny", &hp) != COSY_OK) die("preset");
    cosy_vocab v;
    if (cosy_vocab_byte_level(&v) != COSY_OK) die("vocab");
    for (int variant = 0; variant < 2; variant++) {
        gguf_writer *w = gguf_writer_create();
        gguf_writer_set_str(w, "general.architecture", "cosyvoice2");
        cosy_hparams_write(&hp, w);
        if (variant == 1) {
            const char *spk[] = {"alice", "bob"};
            gguf_writer_set_arr_str(w, "cosyvoice2.speakers", spk, NULL, 2);
            cosy_vocab_write_gguf(&v, "cosyvoice2", w);
        }
        int64_t shape[2] = {4, (int64_t)hp.spk_embed_dim};
        if (gguf_writer_add_tensor(w, "flow.spk_embed_affine_layer.weight", COSY_DTYPE_F32, 2, shape, fill_ramp, NULL, NULL) != COSY_OK ||
            gguf_writer_add_tensor(w, "hift.conv_pre.bias", COSY_DTYPE_F16, 1, shape, fill_ramp, NULL, NULL) != COSY_OK)
            die("tensor");
        char name[32];
        snprintf(name, sizeof name, "model%d.gguf", variant);
        if (gguf_writer_write(w, out_path("gguf", name)) != COSY_OK) die(name);
        gguf_writer_free(w);
    }
    cosy_vocab_free(&v);
}

static void load_npy(const char *data_dir, const char *name, npy_array *a)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cv2-tiny/golden/%s.npy", data_dir, name);
    if (npy_load(path, a) != COSY_OK) die(path);
}

static int32_t *ints(const npy_array *a, int *n)
{
    int32_t *p = malloc(sizeof(int32_t) * (size_t)(a->numel + 1));
    for (int64_t i = 0; i < a->numel; i++) p[i] = (int32_t)a->i64[i];
    *n = (int)a->numel;
    return p;
}

static float *floats(const npy_array *a, int *n)
{
    float *p = malloc(sizeof(float) * (size_t)(a->numel + 1));
    memcpy(p, a->f32, sizeof(float) * (size_t)a->numel);
    *n = (int)a->numel;
    return p;
}

/* a zero-shot voice from the fixture's prompt arrays, and an SFT voice (no prompt) */
static void seed_voices(const char *data_dir)
{
    npy_array text, lm_tok, flow_tok, feat, emb;
    load_npy(data_dir, "lm_prompt_text", &text);
    load_npy(data_dir, "lm_prompt_speech_token", &lm_tok);
    load_npy(data_dir, "prompt_speech_token", &flow_tok);
    load_npy(data_dir, "prompt_feat", &feat);
    load_npy(data_dir, "embedding", &emb);
    cosy_voice *v = cosy_voice_alloc("fixture");
    int n;
    v->transcript = strdup("a prompt");
    v->prompt_text = ints(&text, &v->n_prompt_text);
    v->llm_prompt_tokens = ints(&lm_tok, &v->n_llm_prompt_tokens);
    v->flow_prompt_tokens = ints(&flow_tok, &v->n_flow_prompt_tokens);
    v->prompt_feat = floats(&feat, &n);
    v->n_mels = (int)feat.shape[feat.ndim - 1];
    v->n_prompt_frames = n / v->n_mels;
    v->flow_embedding = floats(&emb, &v->embed_dim);
    v->llm_embedding = floats(&emb, &v->n_llm_embedding);
    if (cosy_voice_save(v, out_path("voice", "fixture.voice")) != COSY_OK) die("fixture.voice");
    if (cosy_voice_save(v, out_path("gguf", "fixture.voice")) != COSY_OK) die("fixture.voice");
    cosy_voice_free(v);
    v = cosy_voice_alloc("sft");
    v->flow_embedding = floats(&emb, &v->embed_dim);
    if (cosy_voice_save(v, out_path("voice", "sft.voice")) != COSY_OK) die("sft.voice");
    cosy_voice_free(v);
    npy_free(&text), npy_free(&lm_tok), npy_free(&flow_tok), npy_free(&feat), npy_free(&emb);
}

static void seed_wavs(void)
{
    float x[400];
    for (int i = 0; i < 400; i++) x[i] = 0.5f * sinf(0.05f * (float)i);
    for (int fmt = 0; fmt < 2; fmt++) {
        cosy_wav_writer w;
        const char *name = fmt ? "f32.wav" : "pcm16.wav";
        if (cosy_wav_writer_open(&w, out_path("wav", name), 16000, fmt ? COSY_WAV_F32 : COSY_WAV_PCM16) != COSY_OK ||
            cosy_wav_writer_write(&w, x, 400) != COSY_OK || cosy_wav_writer_close(&w) != COSY_OK)
            die(name);
    }
}

static void seed_yaml(void)
{
    static const char doc[] =
        "a: 25\nb: !ref <a> * 2\nc: !ref (<a> + 5) // 4 - <n[i]>\nn:\n    i: 7\n"
        "llm: !new:cosyvoice.llm.llm.Qwen2LM\n    mix_ratio: [5, 15]\n    x: !ref <llm>\n"
        "hift: !new:x.H\n    resblock_dilation_sizes: [[1, 3, 5], [1, 3, 5]]\n    fmax: null\n    s: 'gelu'\n";
    FILE *fp = fopen(out_path("yaml", "refs.yaml"), "wb");
    if (!fp || fwrite(doc, 1, sizeof doc - 1, fp) != sizeof doc - 1 || fclose(fp) != 0) die("refs.yaml");
}

/* ---- ONNX: a tiny protobuf writer (the fixture graphs are 250 KB and 3 MB: too slow to mutate) ---- */

static void pb_varint(ptw_buf *b, uint64_t v)
{
    do {
        unsigned c = v & 0x7f;
        v >>= 7;
        ptw_u8(b, c | (v ? 0x80 : 0));
    } while (v);
}
static void pb_int(ptw_buf *b, int field, int64_t v) { pb_varint(b, (uint64_t)field << 3); pb_varint(b, (uint64_t)v); }
static void pb_bytes(ptw_buf *b, int field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    ptw_put(b, p, n);
}
static void pb_str(ptw_buf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_msg(ptw_buf *b, int field, ptw_buf *m)
{
    pb_bytes(b, field, m->p, m->len);
    free(m->p);
    memset(m, 0, sizeof *m);
}
static void pb_f32(ptw_buf *b, int field, float f)
{
    pb_varint(b, (uint64_t)field << 3 | 5);
    ptw_put(b, &f, 4);
}

/* a graph input/output: ValueInfoProto{name, type{tensor_type{elem_type, shape{dim...}}}} */
static void pb_value_info(ptw_buf *g, int field, const char *name, const char *batch, int64_t width)
{
    ptw_buf dim = {0}, shape = {0}, tt = {0}, type = {0}, vi = {0};
    pb_str(&dim, 2, batch);
    pb_msg(&shape, 1, &dim);
    pb_int(&dim, 1, width);
    pb_msg(&shape, 1, &dim);
    pb_int(&tt, 1, 1);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(g, field, &vi);
}

/* x -> Conv(w, b; ints/float/string attributes) -> Unsqueeze(axes from a Constant) -> Identity -> y */
static void seed_onnx(void)
{
    ptw_buf g = {0}, n = {0}, a = {0}, t = {0}, m = {0};
    const float w[6] = {0.5f, -1, 2, 0.25f, 3, -4};
    pb_int(&t, 1, 2), pb_int(&t, 1, 1), pb_int(&t, 1, 3); /* dims [2, 1, 3], raw floats */
    pb_int(&t, 2, 1);
    pb_str(&t, 8, "w");
    pb_bytes(&t, 9, w, sizeof w);
    pb_msg(&g, 5, &t);
    pb_int(&t, 1, 2); /* dims [2], float_data */
    pb_int(&t, 2, 1);
    pb_str(&t, 8, "b");
    pb_f32(&t, 4, 0.125f), pb_f32(&t, 4, -8);
    pb_msg(&g, 5, &t);
    pb_str(&n, 1, "x"), pb_str(&n, 1, "w"), pb_str(&n, 1, "b");
    pb_str(&n, 2, "c");
    pb_str(&n, 3, "/conv/Conv");
    pb_str(&n, 4, "Conv");
    pb_str(&a, 1, "pads"), pb_int(&a, 20, 7), pb_int(&a, 8, 1), pb_int(&a, 8, 1);
    pb_msg(&n, 5, &a);
    pb_str(&a, 1, "alpha"), pb_int(&a, 20, 1), pb_f32(&a, 2, 0.2f);
    pb_msg(&n, 5, &a);
    pb_str(&a, 1, "mode"), pb_int(&a, 20, 3), pb_str(&a, 4, "reflect");
    pb_msg(&n, 5, &a);
    pb_msg(&g, 1, &n);
    pb_str(&n, 2, "axes");
    pb_str(&n, 3, "/Constant");
    pb_str(&n, 4, "Constant");
    pb_int(&t, 1, 1), pb_int(&t, 2, 7), pb_int(&t, 7, 1); /* int64_data [1] */
    pb_str(&a, 1, "value"), pb_int(&a, 20, 4);
    pb_msg(&a, 5, &t);
    pb_msg(&n, 5, &a);
    pb_msg(&g, 1, &n);
    pb_str(&n, 1, "c"), pb_str(&n, 1, "axes");
    pb_str(&n, 2, "u");
    pb_str(&n, 3, "/Unsqueeze");
    pb_str(&n, 4, "Unsqueeze");
    pb_msg(&g, 1, &n);
    pb_str(&n, 1, "u"), pb_str(&n, 2, "y"), pb_str(&n, 3, "/Identity"), pb_str(&n, 4, "Identity");
    pb_msg(&g, 1, &n);
    pb_str(&g, 2, "seed");
    pb_value_info(&g, 11, "x", "batch", 1);
    pb_value_info(&g, 12, "y", "batch", 2);
    pb_int(&m, 1, 8); /* ir_version */
    pb_str(&m, 2, "make_seeds");
    ptw_buf op = {0};
    pb_str(&op, 1, "");
    pb_int(&op, 2, 17);
    pb_msg(&m, 8, &op);
    pb_msg(&m, 7, &g);
    FILE *fp = fopen(out_path("onnx", "graph.onnx"), "wb");
    if (!fp || fwrite(m.p, 1, m.len, fp) != m.len || fclose(fp) != 0) die("graph.onnx");
    free(m.p);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds TEST_DATA_DIR OUT_DIR\n");
        return 2;
    }
    g_out = argv[2];
    seed_pt_crafted();
    seed_pt_fixture(argv[1]);
    seed_models();
    seed_voices(argv[1]);
    seed_wavs();
    seed_yaml();
    seed_onnx();
    return 0;
}
