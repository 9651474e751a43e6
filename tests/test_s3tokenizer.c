/* test_s3tokenizer.c — the speech tokenizer (src/model/s3tokenizer.c, s3tokenizer_onnx.c) against the
 * voice set's fixtures: every `tokenizer_graph_T*` case (tokens, and the stored ONNX Runtime
 * intermediates: blocks.0 input, every block output, the FSQ projection) and the tokens + FSQ
 * projection of every e2e case from its stored whisper log-mel, under the manifest's tolerances. Tokens
 * must be equal except where `<case>_fsq_margin` is below the manifest's `except_where` bound (a value on
 * a rounding boundary). Graphs that are not the tokenizer are refused naming the node.
 *
 * `cosy convert` of a model directory with speech_tokenizer_v2.onnx stores the tokenizer in the model
 * file: the loaded model's tokenizer gives the ONNX-loaded one's tokens bit for bit; without the file the
 * model still converts and asking for the tokenizer says what is missing.
 *
 * Another fixture set of the same format: `test_s3tokenizer DIR` or COSY_VOICE_FIXTURES=DIR.
 */
#include "test.h"

#include "core/clock.h"
#include "core/file.h"
#include "io/gguf.h"
#include "io/npy.h"
#include "io/onnx.h"
#include "model/model.h"
#include "model/voice/s3tokenizer.h"

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

static const cJSON *tol_item(const cJSON *c, const char *key)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "tolerance_per_output"), key);
    if (!t) t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(manifest, "files"), key), "tolerance");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(c, "tolerance");
    return t;
}

static double tol_of(const cJSON *c, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tol_item(c, key), what);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static struct {
    char kind[24];
    double err, tol;
    int n;
} worst[16];
static int n_worst;
static int tokens_total, tokens_flipped;

static void note(const char *kind, double err, double tol)
{
    int i = 0;
    while (i < n_worst && strcmp(worst[i].kind, kind)) i++;
    if (i == n_worst && n_worst < 16) snprintf(worst[n_worst++].kind, sizeof worst[0].kind, "%s", kind);
    if (i < 16) {
        worst[i].err = fmax(worst[i].err, err);
        worst[i].tol = tol;
        worst[i].n++;
    }
}

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
    note(kind, t_rel >= 0 ? rel : max_abs, t_rel >= 0 ? t_rel : t_abs);
    npy_free(&ref);
}

/* tokens equal except where the margin file says the value sits within the bound of a rounding edge */
static void compare_tokens(const cJSON *c, const char *key, const char *margin_key, const int32_t *tok, int n)
{
    npy_array ref, margin;
    test_checks_++;
    if (npy_load(golden_path(key), &ref) != COSY_OK || npy_load(golden_path(margin_key), &margin) != COSY_OK) {
        fprintf(stderr, "  %s: cannot load the reference or its margins: %s\n", key, cosy_last_error());
        test_failures_++;
        return;
    }
    double bound = 0;
    const cJSON *ew = cJSON_GetObjectItemCaseSensitive(tol_item(c, key), "except_where");
    if (cJSON_IsString(ew) && sscanf(ew->valuestring, "fsq_margin < %lf", &bound) != 1) bound = 0;
    int bad = 0, flipped = 0;
    float min_margin = INFINITY;
    if (ref.numel != n || margin.numel != n) {
        fprintf(stderr, "  %s: %d tokens, the reference has %lld (margins %lld)\n", key, n, (long long)ref.numel, (long long)margin.numel);
        bad = 1;
    } else {
        for (int i = 0; i < n; i++) {
            min_margin = fminf(min_margin, margin.f32[i]);
            if (tok[i] == (int32_t)ref.i64[i]) continue;
            if (margin.f32[i] < bound) flipped++;
            else {
                if (bad < 5) fprintf(stderr, "  %s[%d]: %d, the reference has %lld (margin %.3g)\n", key, i, tok[i], (long long)ref.i64[i], (double)margin.f32[i]);
                bad++;
            }
        }
    }
    printf("  %-28s %d tokens, %d differ, %d of them on a rounding edge (margin < %g; smallest margin %.3g)  %s\n", key, n,
           bad + flipped, flipped, bound, (double)min_margin, bad ? "FAIL" : "PASS");
    if (bad) test_failures_++;
    tokens_total += n;
    tokens_flipped += flipped;
    npy_free(&ref);
    npy_free(&margin);
}

typedef struct {
    const cJSON *c;
    const char *prefix; /* "tokg5" */
    int n_blocks, seen, graph;
} tap_ctx;

static void tap(void *vctx, int stage, const float *data, int frames, int channels)
{
    tap_ctx *t = vctx;
    char kind[24], key[96];
    if (stage == 0) snprintf(kind, sizeof kind, "encoder_in");
    else if (stage <= t->n_blocks) snprintf(kind, sizeof kind, "block%d", stage - 1);
    else snprintf(kind, sizeof kind, "pre_fsq");
    snprintf(key, sizeof key, "%s_%s", t->prefix, kind);
    if (!cJSON_HasObjectItem(cJSON_GetObjectItemCaseSensitive(manifest, "files"), key)) return; /* not stored */
    compare(t->c, key, t->graph || strcmp(kind, "pre_fsq") ? kind : "e2e pre_fsq", data, (int64_t)frames * channels);
    t->seen++;
}

static const char *item_string(const cJSON *array, int i)
{
    const cJSON *s = cJSON_GetArrayItem(array, i);
    return cJSON_IsString(s) ? s->valuestring : "";
}

static void run_cases(const cosy_s3tokenizer *net)
{
    const cosy_s3tokenizer_hparams *hp = cosy_s3tokenizer_hp(net);
    int graphs = 0, e2e = 0;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(manifest, "cases");
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const char *stage = cJSON_GetObjectItemCaseSensitive(c, "stage")->valuestring;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const char *in = NULL, *out = NULL;
        if (!strcmp(stage, "tokenizer_graph")) {
            in = item_string(cJSON_GetObjectItemCaseSensitive(c, "inputs"), 0);
            out = item_string(cJSON_GetObjectItemCaseSensitive(c, "outputs"), 0);
        } else if (!strcmp(stage, "voice_e2e")) {
            const cJSON *stages = cJSON_GetObjectItemCaseSensitive(c, "stages");
            for (const cJSON *s = stages ? stages->child : NULL; s; s = s->next)
                if (!strcmp(cJSON_GetObjectItemCaseSensitive(s, "op")->valuestring, "speech_tokenizer_v2.onnx")) {
                    in = item_string(cJSON_GetObjectItemCaseSensitive(s, "inputs"), 0);
                    out = item_string(cJSON_GetObjectItemCaseSensitive(s, "outputs"), 0);
                }
        }
        if (!in || !out || !*in || !*out) continue;
        npy_array x;
        CHECK_OK(npy_load(golden_path(in), &x));
        if (!x.f32) continue;
        const int frames = (int)(x.numel / hp->n_mels);
        const int n = cosy_s3tokenizer_n_tokens(frames);
        const int is_graph = !strcmp(stage, "tokenizer_graph");
        char prefix[64], margin_key[96];
        /* tokg5_feats -> tokg5; en_16k_whisper_mel -> en_16k */
        snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(in) - strlen(is_graph ? "_feats" : "_whisper_mel")), in);
        snprintf(margin_key, sizeof margin_key, "%s_fsq_margin", prefix);
        printf("%s (%d frames -> %d tokens)\n", name, frames, n);
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
        tap_ctx t = {c, prefix, hp->n_blocks, 0, is_graph};
        const double t0 = cosy_now_ms();
        CHECK_OK(cosy_s3tokenizer_forward(net, NULL, x.f32, frames, frames, tok, tap, &t));
        printf("  (%.0f ms)\n", cosy_now_ms() - t0);
        compare_tokens(c, out, margin_key, tok, n);
        if (is_graph) {
            CHECK(t.seen == 2 + hp->n_blocks); /* encoder_in, every block, pre_fsq */
            graphs++;
        } else {
            CHECK(t.seen == 1); /* pre_fsq */
            e2e++;
        }
        free(tok);
        npy_free(&x);
    }
    printf("%d graph cases, %d e2e cases; %d tokens, %d on a rounding edge differ\n", graphs, e2e, tokens_total, tokens_flipped);
    CHECK(graphs > 0 && e2e > 0);
}

/* Graphs that are not the tokenizer we know, made by editing the fixture graph in memory. */
static void test_refusals(const char *path)
{
    onnx_model *g = NULL;
    cosy_s3tokenizer *net = NULL;
    CHECK_OK(onnx_load_file(path, &g));
    if (!g) return;
    onnx_node *conv = (onnx_node *)onnx_find_node(g, "/conv2/Conv");
    onnx_attribute *st = conv ? (onnx_attribute *)onnx_node_attr(conv, "strides") : NULL;
    CHECK(st && st->n_ints == 1);
    if (st) {
        st->ints[0] = 1;
        CHECK_FAILS(cosy_s3tokenizer_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED, "node /conv2/Conv: stride other than 2");
        st->ints[0] = 2;
    }
    onnx_node *f = (onnx_node *)onnx_find_node(g, "/blocks.1/attn/fsmn_block/Conv");
    onnx_attribute *grp = f ? (onnx_attribute *)onnx_node_attr(f, "group") : NULL;
    CHECK(grp != NULL);
    if (grp) {
        const int64_t keep = grp->i;
        grp->i = 1;
        CHECK_FAILS(cosy_s3tokenizer_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED, "node /blocks.1/attn/fsmn_block/Conv: group 1");
        grp->i = keep;
    }
    onnx_node *key = (onnx_node *)onnx_find_node(g, "/blocks.0/attn/key/MatMul");
    if (key) {
        key->name[1] = 'X';
        CHECK_FAILS(cosy_s3tokenizer_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED, "node /blocks.0/attn/key/MatMul is missing");
        key->name[1] = 'b';
    }
    /* the Round turned into a LayerNormalization: a weight-carrying op the walk did not place */
    onnx_node *tanh_node = (onnx_node *)onnx_find_node(g, "/Round");
    if (tanh_node) {
        char *op = tanh_node->op_type;
        tanh_node->op_type = "LayerNormalization";
        CHECK_FAILS(cosy_s3tokenizer_from_onnx_model(g, &net), COSY_ERR_UNSUPPORTED, "node /Round: a LayerNormalization that S3TokenizerV2 does not have");
        tanh_node->op_type = op;
    }
    CHECK_OK(cosy_s3tokenizer_from_onnx_model(g, &net));
    if (net) {
        int32_t tok[1];
        float feats[128] = {0};
        CHECK_FAILS(cosy_s3tokenizer_forward(net, NULL, feats, 0, 1, tok, NULL, NULL), COSY_ERR_INVALID_ARG, "0 log-mel frames");
    }
    cosy_s3tokenizer_free(net);
    onnx_free(g);
    /* CAM++ is not the tokenizer */
    char cam[1200];
    snprintf(cam, sizeof cam, "%.*s/campplus.onnx", (int)(strrchr(path, '/') - path), path);
    if (cosy_file_exists(cam)) CHECK_FAILS(cosy_s3tokenizer_from_onnx(cam, &net), COSY_ERR_UNSUPPORTED, "campplus.onnx");
}

/* `cosy convert` of cv2-tiny's model directory, first without then with speech_tokenizer_v2.onnx */
static void test_convert(const cosy_s3tokenizer *net, const char *onnx_path)
{
    char dir[1100], cmd[4096];
    snprintf(dir, sizeof dir, "%s", test_tmp("s3tok_model"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp -rs '%s'/. '%s'/", dir, dir, test_data("cv2-tiny/model"), dir);
    CHECK(system(cmd) == 0);
    cosy_model *m = NULL;
    const cosy_s3tokenizer *loaded = NULL;
    CHECK_OK(cosy_convert(dir, test_tmp("notok.gguf"), NULL));
    CHECK_OK(cosy_model_load(test_tmp("notok.gguf"), NULL, &m));
    if (m)
        CHECK_FAILS(cosy_s3tokenizer_get(m, &loaded), COSY_ERR_MISSING,
                    "no speech tokenizer (convert a model directory that has speech_tokenizer_v2.onnx)");
    cosy_model_free(m);
    m = NULL;
    snprintf(cmd, sizeof cmd, "ln -s '%s' '%s/speech_tokenizer_v2.onnx'", onnx_path, dir);
    CHECK(system(cmd) == 0);
    CHECK_OK(cosy_convert(dir, test_tmp("tok.gguf"), NULL));
    CHECK_OK(cosy_model_load(test_tmp("tok.gguf"), NULL, &m));
    if (m) CHECK_OK(cosy_s3tokenizer_get(m, &loaded));
    if (loaded) {
        const cosy_s3tokenizer_hparams *hp = cosy_s3tokenizer_hp(net);
        CHECK(!memcmp(hp, cosy_s3tokenizer_hp(loaded), sizeof *hp));
        static const char *const keys[] = {"en_16k_whisper_mel", "short_16k_whisper_mel", "zh_44k_whisper_mel"};
        int total = 0, same = 1;
        for (int k = 0; k < 3; k++) {
            npy_array x;
            if (npy_load(golden_path(keys[k]), &x) != COSY_OK || !x.f32) continue;
            const int frames = (int)(x.numel / hp->n_mels), n = cosy_s3tokenizer_n_tokens(frames);
            int32_t *a = malloc(sizeof(int32_t) * (size_t)n), *b = malloc(sizeof(int32_t) * (size_t)n);
            CHECK_OK(cosy_s3tokenizer_forward(net, NULL, x.f32, frames, frames, a, NULL, NULL));
            CHECK_OK(cosy_s3tokenizer_forward(loaded, m->pool, x.f32, frames, frames, b, NULL, NULL));
            same &= !memcmp(a, b, sizeof(int32_t) * (size_t)n);
            total += n;
            free(a);
            free(b);
            npy_free(&x);
        }
        CHECK(same && total > 0);
        printf("cosy convert: the model file's tokenizer gives the ONNX graph's tokens (%d tokens, %s)\n", total, same ? "all equal" : "DIFFER");
    }
    cosy_model_free(m);
}

/* seeded random weights (what `cosy convert --random cosyvoice2-0.5b` writes at full size) round-trip
 * through a model file and run; full size is 1280 wide, 20 heads, 6 blocks, MLP 5120, FSMN 31, FSQ 8 x 3 */
static void test_random(const cosy_s3tokenizer_hparams *hp)
{
    const cosy_s3tokenizer_hparams full = cosy_s3tokenizer_default_hparams();
    CHECK(full.width == 1280 && full.n_heads == 20 && full.n_blocks == 6 && full.mlp_width == 5120 && full.fsmn_kernel == 31 &&
          full.fsq_dims == 8 && full.fsq_levels == 3);
    printf("full-size tokenizer: %lld parameters\n", (long long)cosy_s3tokenizer_n_params(&full));
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "s3tokenizer-test");
    CHECK_OK(cosy_s3tokenizer_write_random(hp, 7, w));
    CHECK_OK(gguf_writer_write(w, test_tmp("s3tok_random.gguf")));
    gguf_writer_free(w);
    gguf_file g;
    CHECK_OK(gguf_open(test_tmp("s3tok_random.gguf"), &g));
    cosy_s3tokenizer *net = NULL;
    CHECK_OK(cosy_s3tokenizer_from_gguf(&g, &net));
    if (net) {
        CHECK(!memcmp(hp, cosy_s3tokenizer_hp(net), sizeof *hp));
        npy_array x;
        CHECK_OK(npy_load(golden_path("short_16k_whisper_mel"), &x));
        if (x.f32) {
            const int frames = (int)(x.numel / hp->n_mels), n = cosy_s3tokenizer_n_tokens(frames);
            int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
            CHECK_OK(cosy_s3tokenizer_forward(net, NULL, x.f32, frames, frames, tok, NULL, NULL));
            int ok = 1, distinct = 0;
            for (int i = 0; i < n; i++) {
                ok &= tok[i] >= 0 && tok[i] < 6561;
                distinct += i > 0 && tok[i] != tok[i - 1];
            }
            CHECK(ok);
            printf("random weights: %d tokens in range, %d changes\n", n, distinct);
            /* split over a pool of 2, twice (the work buffers kept from the first call): the same tokens */
            cosy_pool *pool = NULL;
            CHECK_OK(cosy_pool_create(2, &pool));
            int32_t *tok2 = malloc(sizeof(int32_t) * (size_t)n);
            int same = 1;
            for (int r = 0; r < 2 && pool; r++) {
                CHECK_OK(cosy_s3tokenizer_forward(net, pool, x.f32, frames, frames, tok2, NULL, NULL));
                same &= !memcmp(tok, tok2, sizeof(int32_t) * (size_t)n);
            }
            CHECK(same);
            printf("random weights on a pool of 2: %s\n", same ? "the same tokens" : "DIFFER");
            free(tok2);
            cosy_pool_free(pool);
            free(tok);
        }
        npy_free(&x);
        cosy_s3tokenizer_free(net);
    }
    gguf_close(&g);
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
    if (!manifest) return test_finish("test_s3tokenizer");

    snprintf(path, sizeof path, "%s/model/speech_tokenizer_v2.onnx", fixture_dir);
    cosy_s3tokenizer *net = NULL;
    CHECK_OK(cosy_s3tokenizer_from_onnx(path, &net));
    if (net) {
        const cosy_s3tokenizer_hparams *hp = cosy_s3tokenizer_hp(net);
        printf("%s: %d mels, width %d = %d heads x %d, %d blocks, MLP %d, FSMN %d, FSQ %d x %d, LN eps %g / %g, %lld params\n", path,
               hp->n_mels, hp->width, hp->n_heads, hp->head_dim, hp->n_blocks, hp->mlp_width, hp->fsmn_kernel, hp->fsq_dims, hp->fsq_levels,
               (double)hp->attn_ln_eps, (double)hp->mlp_ln_eps, (long long)cosy_s3tokenizer_n_params(hp));
        run_cases(net);
        printf("\nworst per output (rel = max_abs / max|ref|, abs for pre_fsq):\n");
        for (int i = 0; i < n_worst; i++) printf("  %-16s n=%-2d %.3e  tol %.3g\n", worst[i].kind, worst[i].n, worst[i].err, worst[i].tol);
        test_convert(net, path);
        test_random(hp);
        cosy_s3tokenizer_free(net);
    }
    test_refusals(path);
    cJSON_Delete(manifest);
    return test_finish("test_s3tokenizer");
}
