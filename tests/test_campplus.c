/* test_campplus.c — CAM++ (src/model/campplus.c, campplus_onnx.c) against the voice set's fixtures:
 * every `campplus_graph_T*` case (the graph output and every stored ONNX Runtime intermediate: head,
 * tdnn, blocks, transits, out_nonlinear, stats) and the embedding of every e2e case from its stored
 * CAM++ input, under the manifest's tolerances; the same network through a model file (gguf) gives
 * the same embedding bit for bit; graphs that are not CAM++ are refused naming the node.
 *
 * Another fixture set of the same format: `test_campplus DIR` or COSY_VOICE_FIXTURES=DIR.
 */
#include "test.h"

#include "core/file.h"
#include "io/gguf.h"
#include "io/npy.h"
#include "io/onnx.h"
#include "model/voice/campplus.h"
#include "model/model.h"
#include "model/voice/voice_prompt.h"

#include <cjson/cJSON.h>

static const char *fixture_dir;
static cJSON *manifest;

static const char *golden_path(const char *key)
{
    static char buf[2][1024];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/golden/%s.npy", fixture_dir, key);
    return buf[k];
}

static double tol_of(const cJSON *c, const char *key, const char *what)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "tolerance_per_output"), key);
    if (!t) t = cJSON_GetObjectItemCaseSensitive(c, "tolerance");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, what);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* worst relative error per output kind */
static struct {
    char kind[24];
    double rel, tol;
    int n;
} worst[16];
static int n_worst;

static void compare(const cJSON *c, const char *key, const char *kind, const float *data, int64_t n)
{
    npy_array ref;
    test_checks_++;
    if (npy_load(golden_path(key), &ref) != COSY_OK) {
        fprintf(stderr, "  %s: cannot load the reference: %s\n", key, cosy_last_error());
        test_failures_++;
        return;
    }
    if (ref.numel != n) {
        fprintf(stderr, "  %s: %lld values, the reference has %lld\n", key, (long long)n, (long long)ref.numel);
        test_failures_++;
        npy_free(&ref);
        return;
    }
    double max_abs = 0, max_ref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)data[i] - ref.f32[i]);
        if (!(d <= max_abs)) max_abs = d != d ? INFINITY : d;
        max_ref = fmax(max_ref, fabs(ref.f32[i]));
    }
    const double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
    const double t_rel = tol_of(c, key, "max_abs_rel"), t_abs = tol_of(c, key, "max_abs");
    const int pass = (t_rel >= 0 || t_abs >= 0) && (t_rel < 0 || rel <= t_rel) && (t_abs < 0 || max_abs <= t_abs);
    printf("  %-28s max_abs %.3e  rel %.3e  tol %s %.3g  %s\n", key, max_abs, rel, t_rel >= 0 ? "rel" : "abs", t_rel >= 0 ? t_rel : t_abs,
           pass ? "PASS" : "FAIL");
    if (!pass) test_failures_++;
    int i = 0;
    while (i < n_worst && strcmp(worst[i].kind, kind)) i++;
    if (i == n_worst && n_worst < 16) snprintf(worst[n_worst++].kind, sizeof worst[0].kind, "%s", kind);
    if (i < 16) {
        worst[i].rel = fmax(worst[i].rel, rel);
        worst[i].tol = t_rel >= 0 ? t_rel : t_abs;
        worst[i].n++;
    }
    npy_free(&ref);
}

/* the stages the forward pass reports, by the suffix of the fixture's file names */
typedef struct {
    const cJSON *c;
    const char *prefix; /* "camg38" */
    int n_blocks;
    int seen;
} tap_ctx;

static void tap(void *vctx, int stage, const float *data, int channels, int frames)
{
    tap_ctx *t = vctx;
    char kind[24], key[64];
    if (stage == 0) snprintf(kind, sizeof kind, "head");
    else if (stage == 1) snprintf(kind, sizeof kind, "tdnn");
    else if (stage < 2 + 2 * t->n_blocks) snprintf(kind, sizeof kind, "%s%d", stage % 2 == 0 ? "block" : "transit", (stage - 2) / 2 + 1);
    else if (stage == 2 + 2 * t->n_blocks) snprintf(kind, sizeof kind, "out_nonlinear");
    else snprintf(kind, sizeof kind, "stats");
    snprintf(key, sizeof key, "%s_%s", t->prefix, kind);
    if (!cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(manifest, "files"), key)) return; /* not stored */
    compare(t->c, key, kind, data, (int64_t)channels * frames);
    t->seen++;
}

static const char *item_string(const cJSON *array, int i)
{
    const cJSON *s = cJSON_GetArrayItem(array, i);
    return cJSON_IsString(s) ? s->valuestring : "";
}

static void run_cases(const cosy_campplus *net, cosy_pool *pool)
{
    const cosy_campplus_hparams *hp = cosy_campplus_hp((cosy_campplus *)net);
    int graphs = 0, e2e = 0;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(manifest, "cases");
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const char *stage = cJSON_GetObjectItemCaseSensitive(c, "stage")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const char *in = NULL, *out = NULL;
        if (!strcmp(stage, "campplus_graph")) {
            in = item_string(cJSON_GetObjectItemCaseSensitive(c, "inputs"), 0);
            out = item_string(cJSON_GetObjectItemCaseSensitive(c, "outputs"), 0);
        } else if (!strcmp(stage, "voice_e2e")) {
            const cJSON *stages = cJSON_GetObjectItemCaseSensitive(c, "stages");
            for (const cJSON *s = stages ? stages->child : NULL; s; s = s->next)
                if (!strcmp(cJSON_GetObjectItemCaseSensitive(s, "op")->valuestring, "campplus.onnx")) {
                    in = item_string(cJSON_GetObjectItemCaseSensitive(s, "inputs"), 0);
                    out = item_string(cJSON_GetObjectItemCaseSensitive(s, "outputs"), 0);
                }
        }
        if (!in || !out) continue;
        npy_array x;
        CHECK_OK(npy_load(golden_path(in), &x));
        if (!x.f32) continue;
        const int frames = (int)(x.numel / hp->feat_dim);
        printf("%s (%d frames)\n", name, frames);
        float *emb = malloc(sizeof(float) * (size_t)hp->embedding_size);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(in) - strlen("_input")), in);
        tap_ctx t = {c, prefix, hp->n_blocks, 0};
        const int is_graph = !strcmp(stage, "campplus_graph");
        CHECK_OK(cosy_campplus_forward(net, pool, x.f32, frames, emb, is_graph ? tap : NULL, &t));
        compare(c, out, is_graph ? "output" : "e2e embedding", emb, hp->embedding_size);
        if (is_graph) {
            CHECK(t.seen == 2 + 2 * hp->n_blocks + 2); /* every intermediate of the case compared */
            graphs++;
        } else {
            e2e++;
        }
        if (!is_graph) { /* and from the wav alone: features + CAM++, under tolerance_end_to_end */
            const char *wav = item_string(cJSON_GetObjectItemCaseSensitive(c, "inputs"), 0);
            char wav_path[1100];
            snprintf(wav_path, sizeof wav_path, "%s/golden/%s.wav", fixture_dir, wav);
            cosy_prompt_features f;
            CHECK_OK(cosy_prompt_features_from_file(wav_path, NULL, &f));
            if (f.campplus_input) {
                CHECK_OK(cosy_campplus_forward(net, pool, f.campplus_input, f.n_fbank, emb, NULL, NULL));
                const cJSON *tol_e2e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "tolerance_end_to_end"), out);
                cJSON *wrap = cJSON_CreateObject(); /* compare() reads tolerance_per_output */
                cJSON_AddItemToObject(wrap, "tolerance_per_output", cJSON_CreateObject());
                cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(wrap, "tolerance_per_output"), out, cJSON_Duplicate(tol_e2e, 1));
                compare(wrap, out, "wav embedding", emb, hp->embedding_size);
                cJSON_Delete(wrap);
                cosy_prompt_features_free(&f);
            }
        }
        free(emb);
        npy_free(&x);
    }
    printf("%d graph cases, %d e2e embeddings\n", graphs, e2e);
    CHECK(graphs > 0 && e2e > 0);
}

/* the network written to a model file and read back gives the same embedding */
static void test_gguf_round_trip(const cosy_campplus *net, cosy_pool *pool)
{
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "campplus-test");
    CHECK_OK(cosy_campplus_write(net, w));
    CHECK_OK(gguf_writer_write(w, test_tmp("campplus.gguf")));
    gguf_writer_free(w);
    gguf_file g;
    CHECK_OK(gguf_open(test_tmp("campplus.gguf"), &g));
    cosy_campplus *back = NULL;
    CHECK_OK(cosy_campplus_from_gguf(&g, &back));
    if (back) {
        const cosy_campplus_hparams *hp = cosy_campplus_hp((cosy_campplus *)net);
        CHECK(!memcmp(hp, cosy_campplus_hp(back), sizeof *hp));
        npy_array x;
        CHECK_OK(npy_load(golden_path("camg257_input"), &x));
        float a[1024], b[1024];
        if (x.f32 && hp->embedding_size <= 1024) {
            CHECK_OK(cosy_campplus_forward(net, pool, x.f32, (int)(x.numel / hp->feat_dim), a, NULL, NULL));
            CHECK_OK(cosy_campplus_forward(back, pool, x.f32, (int)(x.numel / hp->feat_dim), b, NULL, NULL));
            CHECK(!memcmp(a, b, sizeof(float) * (size_t)hp->embedding_size));
            printf("gguf round trip: the same embedding, bit for bit\n");
            /* one thread: the same up to the products' blocking (BLAS blocks each column range its own way) */
            CHECK_OK(cosy_campplus_forward(back, NULL, x.f32, (int)(x.numel / hp->feat_dim), b, NULL, NULL));
            double d = test_max_abs_diff(a, b, hp->embedding_size), mx = 0;
            for (int i = 0; i < hp->embedding_size; i++) mx = fmax(mx, fabs(a[i]));
            printf("one thread vs the pool: max_abs %.3g of %.3g\n", d, mx);
            CHECK(d <= 1e-5 * mx);
        }
        npy_free(&x);
        cosy_campplus_free(back);
    }
    gguf_close(&g);
}

/* `cosy convert` of a model directory with campplus.onnx (cv2-tiny's model + the voice set's graph):
 * the loaded model's CAM++ gives the embedding of the ONNX-loaded one; without the file the model
 * still converts and says CAM++ is missing. */
static void test_convert(const cosy_campplus *net, const char *onnx_path)
{
    char dir[1100], cmd[4096];
    snprintf(dir, sizeof dir, "%s", test_tmp("voice_model"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp -rs '%s'/. '%s'/", dir, dir, test_data("cv2-tiny/model"), dir);
    CHECK(system(cmd) == 0);
    cosy_model *m = NULL;
    const cosy_campplus *loaded = NULL;
    CHECK_OK(cosy_convert(dir, test_tmp("novoice.gguf"), NULL));
    CHECK_OK(cosy_model_load(test_tmp("novoice.gguf"), NULL, &m));
    if (m) CHECK_FAILS(cosy_campplus_get(m, &loaded), COSY_ERR_MISSING, "the model file has no CAM++");
    cosy_model_free(m);
    m = NULL;
    snprintf(cmd, sizeof cmd, "ln -s '%s' '%s/campplus.onnx'", onnx_path, dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(cosy_convert(dir, test_tmp("voice.gguf"), NULL));
    CHECK_OK(cosy_model_load(test_tmp("voice.gguf"), NULL, &m));
    if (m) CHECK_OK(cosy_campplus_get(m, &loaded));
    if (loaded) {
        const cosy_campplus_hparams *hp = cosy_campplus_hp((cosy_campplus *)net);
        npy_array x;
        CHECK_OK(npy_load(golden_path("camg200_input"), &x));
        float a[1024], b[1024];
        if (x.f32 && hp->embedding_size <= 1024) {
            CHECK_OK(cosy_campplus_forward(net, m->pool, x.f32, (int)(x.numel / hp->feat_dim), a, NULL, NULL));
            CHECK_OK(cosy_campplus_forward(loaded, m->pool, x.f32, (int)(x.numel / hp->feat_dim), b, NULL, NULL));
            CHECK(!memcmp(a, b, sizeof(float) * (size_t)hp->embedding_size));
            printf("cosy convert: the model file's CAM++ gives the ONNX graph's embedding, bit for bit\n");
        }
        npy_free(&x);
    }
    cosy_model_free(m);
}

/* Graphs that are not the CAM++ we know, made by editing the fixture graph in memory. */
static void test_refusals(const char *path)
{
    onnx_model *g = NULL;
    cosy_campplus *net = NULL;
    CHECK_OK(onnx_load_file(path, &g));
    if (!g) return;
    onnx_node *pool = (onnx_node *)onnx_find_node(g, "/xvector/block2/tdnnd3/cam_layer/AveragePool");
    onnx_attribute *ceil = pool ? (onnx_attribute *)onnx_node_attr(pool, "ceil_mode") : NULL;
    CHECK(ceil != NULL);
    if (ceil) {
        ceil->i = 0;
        CHECK_FAILS(cosy_campplus_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED,
                    "node /xvector/block2/tdnnd3/cam_layer/AveragePool: ceil_mode 0");
        ceil->i = 1;
    }
    onnx_node *conv = (onnx_node *)onnx_find_node(g, "/xvector/block1/tdnnd2/cam_layer/linear_local/Conv");
    onnx_attribute *dil = conv ? (onnx_attribute *)onnx_node_attr(conv, "dilations") : NULL;
    CHECK(dil && dil->n_ints == 1);
    if (dil) {
        dil->ints[0] = 2; /* the block's first layer says 1 */
        CHECK_FAILS(cosy_campplus_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED,
                    "node /xvector/block1/tdnnd2/cam_layer/linear_local/Conv: dilation 2, 1 expected");
        dil->ints[0] = 1;
    }
    onnx_node *tdnn = (onnx_node *)onnx_find_node(g, "/head/layer2/layer2.1/conv1/Conv");
    onnx_attribute *st = tdnn ? (onnx_attribute *)onnx_node_attr(tdnn, "strides") : NULL;
    if (st) {
        st->ints[0] = 2;
        CHECK_FAILS(cosy_campplus_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED, "node /head/layer2/layer2.1/conv1/Conv: stride 2 along axis 0");
        st->ints[0] = 1;
    }
    /* an op the walk does not place: turn a Relu into a Conv */
    onnx_node *relu = (onnx_node *)onnx_find_node(g, "/xvector/block3/tdnnd2/cam_layer/relu/Relu");
    if (relu) {
        char *op = relu->op_type;
        relu->op_type = "Conv";
        CHECK_FAILS(cosy_campplus_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED,
                    "node /xvector/block3/tdnnd2/cam_layer/relu/Relu: a Conv that CAM++ as 3D-Speaker defines it does not have");
        relu->op_type = op;
    }
    /* a missing part: rename the transit */
    onnx_node *tr = (onnx_node *)onnx_find_node(g, "/xvector/transit2/linear/Conv");
    if (tr) {
        tr->name[1] = 'X';
        CHECK_FAILS(cosy_campplus_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED, "node /xvector/transit2/linear/Conv is missing");
        tr->name[1] = 'x';
    }
    /* and back to the original: it loads */
    CHECK_OK(cosy_campplus_from_onnx_model(g, &net));
    cosy_campplus_free(net);
    onnx_free(g);
    /* the speech tokenizer is not CAM++ */
    char tok[1200];
    snprintf(tok, sizeof tok, "%.*s/speech_tokenizer_v2.onnx", (int)(strrchr(path, '/') - path), path);
    if (cosy_file_exists(tok)) CHECK_FAILS(cosy_campplus_from_onnx(tok, &net), COSY_ERR_UNSUPPORTED, "speech_tokenizer_v2.onnx");
    /* too few frames for the std */
    CHECK_OK(cosy_campplus_from_onnx(path, &net));
    if (net) {
        float x[2 * 80] = {0}, e[192];
        CHECK_FAILS(cosy_campplus_forward(net, NULL, x, 2, e, NULL, NULL), COSY_ERR_INVALID_ARG, "2 feature frames are too few");
        cosy_campplus_free(net);
    }
}

int main(int argc, char **argv)
{
    static char default_dir[1024];
    snprintf(default_dir, sizeof default_dir, "%s/cv2-voice-tiny", COSY_TEST_DATA);
    const char *env = getenv("COSY_VOICE_FIXTURES");
    fixture_dir = argc > 1 ? argv[1] : env && *env ? env : default_dir;
    char path[1100];
    snprintf(path, sizeof path, "%s/golden/manifest.json", fixture_dir);
    char *text = NULL;
    CHECK_OK(cosy_file_read_all(path, &text, NULL));
    manifest = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!manifest) return test_finish("test_campplus");

    snprintf(path, sizeof path, "%s/model/campplus.onnx", fixture_dir);
    cosy_campplus *net = NULL;
    CHECK_OK(cosy_campplus_from_onnx(path, &net));
    cosy_pool *pool = NULL;
    CHECK_OK(cosy_pool_create(2, &pool));
    if (net) {
        const cosy_campplus_hparams *hp = cosy_campplus_hp(net);
        printf("%s: feat %d, FCM %d ch (%d+%d blocks), TDNN %d k%d s%d, blocks", path, hp->feat_dim, hp->fcm_channels, hp->fcm_blocks[0],
               hp->fcm_blocks[1], hp->tdnn_channels, hp->tdnn_kernel, hp->tdnn_stride);
        for (int b = 0; b < hp->n_blocks; b++) printf(" %d(k%d d%d)", hp->block_layers[b], hp->block_kernel[b], hp->block_dilation[b]);
        printf(", growth %d, bn %d, cam %d, segments %d, embedding %d, %lld params\n", hp->growth_rate, hp->bn_channels, hp->cam_channels,
               hp->seg_len, hp->embedding_size, (long long)cosy_campplus_n_params(hp));
        /* the architecture the manifest says the set was made with */
        const cJSON *dims = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(manifest, "dims"), "campplus");
        if (dims) {
            const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(dims, "blocks");
            CHECK(cJSON_GetObjectItemCaseSensitive(dims, "m_channels")->valueint == hp->fcm_channels);
            CHECK(cJSON_GetObjectItemCaseSensitive(dims, "init_channels")->valueint == hp->tdnn_channels);
            CHECK(cJSON_GetObjectItemCaseSensitive(dims, "growth_rate")->valueint == hp->growth_rate);
            CHECK(cJSON_GetObjectItemCaseSensitive(dims, "bn_size")->valueint * hp->growth_rate == hp->bn_channels);
            CHECK(cJSON_GetArraySize(blocks) == hp->n_blocks);
            for (int b = 0; b < hp->n_blocks && b < cJSON_GetArraySize(blocks); b++) CHECK(cJSON_GetArrayItem(blocks, b)->valueint == hp->block_layers[b]);
        }
        run_cases(net, pool);
        test_gguf_round_trip(net, pool);
        if (!(argc > 1 || (env && *env))) test_convert(net, path); /* needs the cv2-tiny model of tests/data */
        printf("\nworst per output (max_abs / max|ref|):\n");
        for (int i = 0; i < n_worst; i++) printf("  %-16s n=%-2d rel %.3e  tol %.3g\n", worst[i].kind, worst[i].n, worst[i].rel, worst[i].tol);
        cosy_campplus_free(net);
    }
    test_refusals(path);
    cosy_pool_free(pool);
    cJSON_Delete(manifest);
    return test_finish("test_campplus");
}
