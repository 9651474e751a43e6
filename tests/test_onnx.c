/* test_onnx.c — the ONNX reader (src/io/onnx.c) on the voice set's two graphs (tests/data/cv2-voice-tiny/
 * model: campplus.onnx opset 11, speech_tokenizer_v2.onnx opset 17), on hand-written ModelProtos that use
 * the forms the exporter does not (typed data fields, unpacked repeated fields, external data), and on
 * broken files: every truncation of campplus.onnx and a few thousand byte flips must load or be refused
 * with a message naming the file and the byte offset — never crash (run it under ASan too).
 */
#include "test.h"

#include "core/file.h"
#include "io/onnx.h"

#include <math.h>
#include <stdint.h>

static void check_campplus_graph(const char *path)
{
    onnx_model *m = NULL;
    CHECK_OK(onnx_load_file(path, &m));
    if (!m) return;
    CHECK(m->ir_version == 6 && onnx_opset(m) == 11);
    CHECK(!strcmp(m->producer_name, "pytorch") && !strcmp(m->producer_version, "1.13.0"));
    CHECK(m->n_nodes == 451 && m->n_initializers == 122);
    CHECK(m->n_inputs == 1 && !strcmp(m->inputs[0].name, "input") && m->inputs[0].elem_type == ONNX_FLOAT);
    CHECK(m->inputs[0].ndim == 3 && m->inputs[0].dims[0] < 0 && !strcmp(m->inputs[0].dim_params[0], "B") && m->inputs[0].dims[2] == 80);
    CHECK(m->n_outputs == 1 && !strcmp(m->outputs[0].name, "output") && m->outputs[0].dims[1] == 192);

    const onnx_node *conv = onnx_find_node(m, "/head/conv1/Conv");
    CHECK(conv && !strcmp(conv->op_type, "Conv") && conv->n_inputs == 3);
    const onnx_tensor *w = conv ? onnx_node_initializer(m, conv, 1) : NULL;
    CHECK(w && w->data_type == ONNX_FLOAT && w->ndim == 4 && w->dims[0] == 8 && w->dims[1] == 1 && w->dims[2] == 3 && w->numel == 72);
    if (w) {
        float v[72];
        double sum = 0;
        CHECK_OK(onnx_tensor_read_f32(m, w, v));
        for (int i = 0; i < 72; i++) sum += fabs(v[i]);
        CHECK(sum > 0 && sum < 1e4);
    }
    CHECK(conv && onnx_node_initializer(m, conv, 0) == NULL); /* the activation */
    int n;
    const int64_t *strides = conv ? onnx_attr_ints(conv, "strides", &n) : NULL;
    CHECK(strides && n == 2 && strides[0] == 1);
    const onnx_node *down = onnx_find_node(m, "/head/layer1/layer1.0/conv1/Conv");
    strides = down ? onnx_attr_ints(down, "strides", &n) : NULL;
    CHECK(strides && n == 2 && strides[0] == 2 && strides[1] == 1);
    /* producers and consumers */
    CHECK(conv && onnx_producer(m, conv->outputs[0]) == conv);
    CHECK(onnx_producer(m, "input") == NULL && onnx_producer(m, "no such value") == NULL);
    const onnx_node *users[4];
    CHECK(conv && onnx_consumers(m, conv->outputs[0], users, 4) == 1 && !strcmp(users[0]->op_type, "Relu"));
    const onnx_node *relu = onnx_find_node(m, "/head/Relu");
    CHECK(relu && onnx_consumers(m, relu->outputs[0], users, 4) == 2); /* conv1 and the shortcut of layer1.0 */
    /* a Constant's tensor, through onnx_constant */
    const onnx_node *pad = onnx_find_node(m, "/xvector/block1/tdnnd1/cam_layer/Pad");
    const onnx_tensor *pads = pad ? onnx_constant(m, pad->inputs[1]) : NULL;
    CHECK(pads && pads->data_type == ONNX_INT64 && pads->numel == 6);
    if (pads) {
        int64_t p[6];
        CHECK_OK(onnx_tensor_read_i64(m, pads, p));
        CHECK(p[0] == 0 && p[5] == 0);
    }
    CHECK(pad && onnx_constant(m, pad->inputs[0]) == NULL); /* computed */
    const onnx_node *pool = onnx_find_node(m, "/xvector/block1/tdnnd1/cam_layer/AveragePool");
    CHECK(pool && onnx_attr_int(pool, "ceil_mode", 0) == 1 && onnx_attr_int(pool, "count_include_pad", 0) == 0);
    const onnx_node *bn = onnx_find_node(m, "/xvector/dense/nonlinear/batchnorm/BatchNormalization");
    CHECK(bn && fabsf(onnx_attr_float(bn, "epsilon", 0) - 1e-5f) < 1e-9f);
    const onnx_tensor *ones = bn ? onnx_constant(m, bn->inputs[1]) : NULL; /* affine-free: a Constant node */
    CHECK(ones && ones->numel == 192 && onnx_find_initializer(m, bn->inputs[1]) == NULL);
    if (ones) {
        float v[192];
        CHECK_OK(onnx_tensor_read_f32(m, ones, v));
        CHECK(v[0] == 1.0f && v[191] == 1.0f);
    }
    /* opset 11: Unsqueeze axes as an attribute */
    const onnx_node *unsq = onnx_find_node(m, "/head/Unsqueeze");
    int64_t axes[4];
    CHECK(unsq && onnx_node_axes(m, unsq, axes, 4) == 1 && axes[0] == 1);
    onnx_free(m);
}

static void check_tokenizer_graph(const char *path)
{
    onnx_model *m = NULL;
    CHECK_OK(onnx_load_file(path, &m));
    if (!m) return;
    CHECK(m->ir_version == 8 && onnx_opset(m) == 17 && m->n_nodes == 599 && m->n_initializers == 38);
    CHECK(m->n_inputs == 2 && !strcmp(m->inputs[0].name, "feats") && !strcmp(m->inputs[1].name, "feats_length") &&
          m->inputs[1].elem_type == ONNX_INT32);
    CHECK(m->n_outputs == 1 && !strcmp(m->outputs[0].name, "indices") && m->outputs[0].elem_type == ONNX_INT32);
    const onnx_node *q = onnx_find_node(m, "/blocks.0/attn/query/MatMul");
    const onnx_tensor *wq = q ? onnx_node_initializer(m, q, 1) : NULL;
    CHECK(wq && wq->ndim == 2 && wq->dims[0] == 128 && wq->dims[1] == 128);
    const onnx_tensor *fsmn = onnx_find_initializer(m, "blocks.0.attn.fsmn_block.weight");
    CHECK(fsmn && fsmn->ndim == 3 && fsmn->dims[2] == 31);
    /* opset 17: Unsqueeze axes as an input */
    int found = 0;
    for (int i = 0; i < m->n_nodes && !found; i++) {
        const onnx_node *nd = &m->nodes[i];
        if (strcmp(nd->op_type, "Unsqueeze") || nd->n_inputs != 2) continue;
        int64_t axes[4];
        int n = onnx_node_axes(m, nd, axes, 4);
        CHECK(n >= 1);
        found = 1;
    }
    CHECK(found);
    onnx_free(m);
}

/* ---- a tiny protobuf writer for hand-made models ---- */

typedef struct {
    unsigned char b[4096];
    size_t n;
} pbuf;

static void put_varint(pbuf *p, uint64_t v)
{
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        p->b[p->n++] = c | (v ? 0x80 : 0);
    } while (v);
}
static void put_key(pbuf *p, int field, int wire) { put_varint(p, (uint64_t)field << 3 | (uint64_t)wire); }
static void put_int(pbuf *p, int field, int64_t v) { put_key(p, field, 0); put_varint(p, (uint64_t)v); }
static void put_bytes(pbuf *p, int field, const void *data, size_t n)
{
    put_key(p, field, 2);
    put_varint(p, n);
    memcpy(p->b + p->n, data, n);
    p->n += n;
}
static void put_str(pbuf *p, int field, const char *s) { put_bytes(p, field, s, strlen(s)); }
static void put_msg(pbuf *p, int field, const pbuf *m) { put_bytes(p, field, m->b, m->n); }
static void put_f32(pbuf *p, int field, float f)
{
    put_key(p, field, 5);
    memcpy(p->b + p->n, &f, 4);
    p->n += 4;
}

/* ModelProto{ir_version 7, opset 13, graph{node, initializers}} */
static void make_model(pbuf *out, const pbuf *graph)
{
    memset(out, 0, sizeof *out);
    put_int(out, 1, 7);
    pbuf op = {{0}, 0};
    put_str(&op, 1, "");
    put_int(&op, 2, 13);
    put_msg(out, 8, &op);
    put_msg(out, 7, graph);
}

static void test_hand_made(void)
{
    /* initializer "w": dims [2, 3] unpacked, float_data packed */
    pbuf w = {{0}, 0}, iv = {{0}, 0}, ic = {{0}, 0}, node = {{0}, 0}, attr = {{0}, 0}, graph = {{0}, 0}, model;
    put_int(&w, 1, 2);
    put_int(&w, 1, 3);
    put_int(&w, 2, ONNX_FLOAT);
    put_str(&w, 8, "w");
    const float wv[6] = {1, -2, 3.5f, 4, 5, -6.25f};
    put_bytes(&w, 4, wv, sizeof wv);
    /* "idx": int64_data unpacked, with a negative value; dims packed */
    const unsigned char dims_packed[1] = {3};
    put_bytes(&iv, 1, dims_packed, 1);
    put_int(&iv, 2, ONNX_INT64);
    put_str(&iv, 8, "idx");
    put_int(&iv, 7, 5);
    put_int(&iv, 7, -1);
    put_int(&iv, 7, 1234567890123LL);
    /* "f": float_data unpacked, int32-typed "i32" through int32_data packed */
    put_int(&ic, 1, 2);
    put_int(&ic, 2, ONNX_INT32);
    put_str(&ic, 8, "i32");
    pbuf packed = {{0}, 0};
    put_varint(&packed, (uint64_t)(int64_t)-7);
    put_varint(&packed, 9);
    put_bytes(&ic, 5, packed.b, packed.n);
    /* a node with INTS (unpacked) and FLOATS (unpacked) attributes */
    put_str(&node, 1, "x");
    put_str(&node, 1, "w");
    put_str(&node, 2, "y");
    put_str(&node, 3, "/my/Node");
    put_str(&node, 4, "Custom");
    put_str(&attr, 1, "list");
    put_int(&attr, 20, ONNX_ATTR_INTS);
    put_int(&attr, 8, 4);
    put_int(&attr, 8, -2);
    put_msg(&node, 5, &attr);
    memset(&attr, 0, sizeof attr);
    put_str(&attr, 1, "scales");
    put_int(&attr, 20, ONNX_ATTR_FLOATS);
    put_f32(&attr, 7, 0.5f);
    put_f32(&attr, 7, 2.0f);
    put_msg(&node, 5, &attr);
    put_msg(&graph, 1, &node);
    put_msg(&graph, 5, &w);
    put_msg(&graph, 5, &iv);
    put_msg(&graph, 5, &ic);
    make_model(&model, &graph);

    onnx_model *m = NULL;
    CHECK_OK(onnx_load_memory(model.b, model.n, "hand.onnx", &m));
    if (m) {
        CHECK(onnx_opset(m) == 13 && m->ir_version == 7 && m->n_nodes == 1 && m->n_initializers == 3);
        const onnx_node *nd = onnx_find_node(m, "/my/Node");
        const onnx_tensor *t = nd ? onnx_node_initializer(m, nd, 1) : NULL;
        CHECK(t && t->ndim == 2 && t->numel == 6 && t->raw == NULL);
        float f[6];
        if (t) {
            CHECK_OK(onnx_tensor_read_f32(m, t, f));
            CHECK(f[0] == 1 && f[2] == 3.5f && f[5] == -6.25f);
        }
        int64_t v[3];
        const onnx_tensor *idx = onnx_find_initializer(m, "idx");
        CHECK(idx && idx->ndim == 1 && idx->numel == 3);
        if (idx) {
            CHECK_OK(onnx_tensor_read_i64(m, idx, v));
            CHECK(v[0] == 5 && v[1] == -1 && v[2] == 1234567890123LL);
            CHECK_OK(onnx_tensor_read_f32(m, idx, f));
            CHECK(f[1] == -1.0f);
        }
        const onnx_tensor *i32 = onnx_find_initializer(m, "i32");
        if (i32) {
            CHECK_OK(onnx_tensor_read_i64(m, i32, v));
            CHECK(v[0] == -7 && v[1] == 9);
        }
        int n;
        const int64_t *list = nd ? onnx_attr_ints(nd, "list", &n) : NULL;
        CHECK(list && n == 2 && list[0] == 4 && list[1] == -2);
        const onnx_attribute *sc = nd ? onnx_node_attr(nd, "scales") : NULL;
        CHECK(sc && sc->n_floats == 2 && sc->floats[1] == 2.0f);
        CHECK(nd && onnx_producer(m, "y") == nd && onnx_node_initializer(m, nd, 0) == NULL);
        onnx_free(m);
    }

    /* values that disagree with the dims */
    pbuf bad = {{0}, 0}, g2 = {{0}, 0};
    put_int(&bad, 1, 4);
    put_int(&bad, 2, ONNX_FLOAT);
    put_str(&bad, 8, "short");
    put_bytes(&bad, 9, wv, 12);
    put_msg(&g2, 5, &bad);
    make_model(&model, &g2);
    CHECK_FAILS(onnx_load_memory(model.b, model.n, "short.onnx", &m), COSY_ERR_FORMAT, "short.onnx: byte ");
    CHECK(strstr(cosy_last_error(), "raw_data holds 12 bytes, its dims need 16") != NULL);

    /* external data is refused by name */
    memset(&bad, 0, sizeof bad);
    memset(&g2, 0, sizeof g2);
    put_int(&bad, 1, 4);
    put_int(&bad, 2, ONNX_FLOAT);
    put_str(&bad, 8, "big.weight");
    pbuf kv = {{0}, 0};
    put_str(&kv, 1, "location");
    put_str(&kv, 2, "weights.bin");
    put_msg(&bad, 13, &kv);
    put_int(&bad, 14, 1);
    put_msg(&g2, 5, &bad);
    make_model(&model, &g2);
    CHECK_FAILS(onnx_load_memory(model.b, model.n, "ext.onnx", &m), COSY_ERR_FORMAT, "big.weight keeps its values in an external file");

    /* two initializers of one name; two producers of one value */
    memset(&g2, 0, sizeof g2);
    put_msg(&g2, 5, &w);
    put_msg(&g2, 5, &w);
    make_model(&model, &g2);
    CHECK_FAILS(onnx_load_memory(model.b, model.n, "dup.onnx", &m), COSY_ERR_FORMAT, "initializer w is defined twice");
    memset(&g2, 0, sizeof g2);
    put_msg(&g2, 1, &node);
    put_msg(&g2, 1, &node);
    make_model(&model, &g2);
    CHECK_FAILS(onnx_load_memory(model.b, model.n, "dup2.onnx", &m), COSY_ERR_FORMAT, "value y is produced by two nodes");

    /* not a model at all; empty; a group wire type */
    CHECK_FAILS(onnx_load_memory("hello world, not protobuf", 25, "text.onnx", &m), COSY_ERR_FORMAT, "text.onnx");
    CHECK_FAILS(onnx_load_memory("", 0, "empty.onnx", &m), COSY_ERR_FORMAT, "empty.onnx: the file is empty");
    const unsigned char group[2] = {0x0b, 0x0c};
    CHECK_FAILS(onnx_load_memory(group, 2, "group.onnx", &m), COSY_ERR_FORMAT, "group.onnx: byte 0: field 1 has wire type 3");
    CHECK_FAILS(onnx_load_file(test_tmp("missing.onnx"), &m), COSY_ERR_MISSING, "missing.onnx");
}

/* Every truncation of the file and byte flips: refused with the file's name, or loaded; never a crash. */
static void test_broken(const char *path)
{
    char *data;
    size_t size;
    CHECK_OK(cosy_file_read_all(path, &data, &size));
    if (!data) return;
    int loaded = 0, bad_message = 0;
    for (size_t n = 0; n < size; n++) {
        onnx_model *m = NULL;
        cosy_status st = onnx_load_memory(data, n, "cut.onnx", &m);
        if (st == COSY_OK) {
            loaded++; /* a cut at a field boundary of the ModelProto is a valid, smaller model */
            onnx_free(m);
        } else if (!strstr(cosy_last_error(), "cut.onnx: ")) {
            if (!bad_message++) fprintf(stderr, "truncated to %zu: message without the file name: %s\n", n, cosy_last_error());
        }
    }
    printf("truncations: %zu cuts, %d loaded (cut between top-level fields), the rest refused\n", size, loaded);
    CHECK(bad_message == 0);
    CHECK(loaded < 8);

    /* byte flips (a fixed pseudo-random sequence), half of them outside the tensors' raw_data, where
     * they hit keys, lengths, names and attributes: the paths a truncated outer message never reaches */
    unsigned char *copy = malloc(size), *structural = calloc(size, 1);
    onnx_model *whole = NULL;
    CHECK_OK(onnx_load_memory(data, size, "whole.onnx", &whole));
    size_t n_structural = 0;
    for (size_t i = 0; i < size; i++) structural[i] = 1;
    for (int t = 0; whole && t < whole->n_initializers; t++)
        if (whole->initializers[t].raw)
            memset(structural + (whole->initializers[t].raw - (const unsigned char *)data), 0, (size_t)whole->initializers[t].numel * 4);
    size_t *positions = malloc(sizeof(size_t) * size);
    for (size_t i = 0; i < size; i++)
        if (structural[i]) positions[n_structural++] = i;
    onnx_free(whole);
    uint64_t state = 12345;
    int flips_loaded = 0;
    bad_message = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, data, size);
        for (int k = 0; k < 1 + i % 3; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = i % 2 ? positions[(size_t)(state >> 33) % n_structural] : (size_t)(state >> 33) % size;
            copy[at] ^= (unsigned char)(1u << ((state >> 20) & 7));
        }
        onnx_model *m = NULL;
        if (onnx_load_memory(copy, size, "flip.onnx", &m) == COSY_OK) {
            flips_loaded++; /* a flip inside weights or names: read everything to be sure it is safe */
            for (int t = 0; t < m->n_initializers; t++) {
                float *v = malloc(sizeof(float) * (size_t)(m->initializers[t].numel + 1));
                (void)onnx_tensor_read_f32(m, &m->initializers[t], v);
                free(v);
            }
            onnx_free(m);
        } else if (!strstr(cosy_last_error(), "flip.onnx: ")) {
            bad_message++;
        }
    }
    printf("byte flips: 3000 files (1500 outside raw_data, %zu such bytes), %d loaded\n", n_structural, flips_loaded);
    CHECK(bad_message == 0);
    free(copy);
    free(structural);
    free(positions);
    free(data);
}

/* Floats read as int64: NaN, an infinity or a value beyond int64 was converted anyway (undefined
 * behaviour, found by fuzz_onnx); now refused naming the tensor and the value, in raw_data and in the
 * typed fields alike. Their f32 reads and in-range values still work. */
static void test_float_as_int(void)
{
    pbuf raw = {{0}, 0}, typed = {{0}, 0}, ok = {{0}, 0}, graph = {{0}, 0}, model;
    const float rv[3] = {2.5f, NAN, 1e30f};
    put_int(&raw, 1, 3);
    put_int(&raw, 2, ONNX_FLOAT);
    put_str(&raw, 8, "raw");
    put_bytes(&raw, 9, rv, sizeof rv);
    const double dv[2] = {-3.75, 1e300};
    put_int(&typed, 1, 2);
    put_int(&typed, 2, ONNX_DOUBLE);
    put_str(&typed, 8, "typed");
    put_bytes(&typed, 10, dv, sizeof dv);
    put_int(&ok, 1, 2);
    put_int(&ok, 2, ONNX_FLOAT);
    put_str(&ok, 8, "ok");
    put_f32(&ok, 4, -2.9f);
    put_f32(&ok, 4, 7.0f);
    put_msg(&graph, 5, &raw);
    put_msg(&graph, 5, &typed);
    put_msg(&graph, 5, &ok);
    make_model(&model, &graph);
    onnx_model *m = NULL;
    CHECK_OK(onnx_load_memory(model.b, model.n, "floats.onnx", &m));
    if (!m) return;
    const onnx_tensor *r = onnx_find_initializer(m, "raw"), *t = onnx_find_initializer(m, "typed"), *o = onnx_find_initializer(m, "ok");
    CHECK(r && t && o);
    if (r && t && o) {
        int64_t iv[3];
        float fv[3];
        CHECK_FAILS(onnx_tensor_read_i64(m, r, iv), COSY_ERR_FORMAT, "floats.onnx: tensor raw: value 1 (nan) is not an integer in the int64 range");
        CHECK_FAILS(onnx_tensor_read_i64(m, t, iv), COSY_ERR_FORMAT, "floats.onnx: tensor typed: value 1 (1e+300) is not an integer");
        CHECK_OK(onnx_tensor_read_f32(m, r, fv));
        CHECK(fv[0] == 2.5f && fv[1] != fv[1] && fv[2] == 1e30f);
        CHECK_OK(onnx_tensor_read_f32(m, t, fv));
        CHECK(fv[0] == -3.75f);
        CHECK_OK(onnx_tensor_read_i64(m, o, iv));
        CHECK(iv[0] == -2 && iv[1] == 7);
    }
    onnx_free(m);
}

/* An "axes" attribute with no values: its list pointer is NULL, which was passed to memcpy (UB, found
 * by fuzz_onnx); it means no axes. */
static void test_empty_axes(void)
{
    pbuf node = {{0}, 0}, attr = {{0}, 0}, graph = {{0}, 0}, model;
    put_str(&node, 1, "x");
    put_str(&node, 2, "y");
    put_str(&node, 3, "/Squeeze");
    put_str(&node, 4, "Squeeze");
    put_str(&attr, 1, "axes");
    put_int(&attr, 20, ONNX_ATTR_INTS);
    put_msg(&node, 5, &attr);
    put_msg(&graph, 1, &node);
    make_model(&model, &graph);
    onnx_model *m = NULL;
    CHECK_OK(onnx_load_memory(model.b, model.n, "axes.onnx", &m));
    if (!m) return;
    const onnx_node *n = onnx_find_node(m, "/Squeeze");
    CHECK(n != NULL);
    int64_t axes[4] = {9, 9, 9, 9};
    if (n) CHECK(onnx_node_axes(m, n, axes, 4) == 0 && axes[0] == 9);
    onnx_free(m);
}

int main(int argc, char **argv)
{
    test_float_as_int();
    test_empty_axes();
    const char *dir = argc > 1 ? argv[1] : getenv("COSY_VOICE_FIXTURES");
    char cam[1100], tok[1100];
    snprintf(cam, sizeof cam, "%s/model/campplus.onnx", dir && *dir ? dir : test_data("cv2-voice-tiny"));
    snprintf(tok, sizeof tok, "%s/model/speech_tokenizer_v2.onnx", dir && *dir ? dir : test_data("cv2-voice-tiny"));
    if (!dir || !*dir) { /* the graph facts below are those of the voice set's own graphs */
        check_campplus_graph(cam);
        check_tokenizer_graph(tok);
    }
    test_hand_made();
    test_broken(cam);
    return test_finish("test_onnx");
}
