/*
 * fuzz_onnx.c — libFuzzer target for the ONNX reader (src/io/onnx.c: the protobuf walk of a
 * ModelProto, initializers and Constant values, attributes, graph inputs/outputs), as it reads the
 * downloaded campplus.onnx and speech_tokenizer_v2.onnx. After a successful load every lookup is
 * tried on every node and value name and every tensor is converted (within a budget). Invariants:
 * a tensor's numel is the product of its dims, raw data and messages lie inside the input,
 * attribute counts are non-negative.
 * Seeds: a small graph written by make_seeds (the fixture graphs, 250 KB and 3 MB, mutate at a few
 * dozen inputs per second).
 */
#include "fuzz.h"
#include "io/onnx.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static void check_tensor(const onnx_model *m, const onnx_tensor *t, const uint8_t *data, size_t size, int64_t *budget)
{
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ONNX_MAX_DIMS && t->numel >= 0);
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        FUZZ_CHECK(t->dims[d] >= 0);
        n *= t->dims[d];
    }
    FUZZ_CHECK(n == t->numel);
    if (t->msg) FUZZ_CHECK(t->msg >= data && t->msg_size <= (size_t)(data + size - t->msg));
    if (t->raw) FUZZ_CHECK(t->raw >= data && t->raw <= data + size);
    if (t->numel > 0 && t->numel <= *budget) {
        *budget -= t->numel;
        float *f = malloc(sizeof(float) * (size_t)t->numel);
        int64_t *k = malloc(sizeof(int64_t) * (size_t)t->numel);
        if (f && k) {
            (void)onnx_tensor_read_f32(m, t, f);
            (void)onnx_tensor_read_i64(m, t, k);
        }
        free(f);
        free(k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    onnx_model *m = NULL;
    if (onnx_load_memory(data, size, "fuzz.onnx", &m) != COSY_OK) return 0;
    int64_t budget = 1 << 20;
    (void)onnx_opset(m);
    for (int i = 0; i < m->n_initializers; i++) {
        check_tensor(m, &m->initializers[i], data, size, &budget);
        if (m->initializers[i].name[0]) FUZZ_CHECK(onnx_find_initializer(m, m->initializers[i].name) != NULL); /* "" is never found */
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const onnx_node *nd = &m->nodes[i];
        FUZZ_CHECK(nd->n_inputs >= 0 && nd->n_outputs >= 0 && nd->n_attrs >= 0);
        if (nd->name && nd->name[0]) FUZZ_CHECK(onnx_find_node(m, nd->name) != NULL);
        for (int j = 0; j < nd->n_inputs; j++) {
            (void)onnx_node_initializer(m, nd, j);
            const onnx_tensor *c = onnx_constant(m, nd->inputs[j]);
            if (c) check_tensor(m, c, data, size, &budget);
            const onnx_node *users[4];
            FUZZ_CHECK(onnx_consumers(m, nd->inputs[j], users, 4) >= 0);
        }
        for (int j = 0; j < nd->n_outputs; j++) (void)onnx_producer(m, nd->outputs[j]);
        for (int j = 0; j < nd->n_attrs; j++) {
            const onnx_attribute *a = &nd->attrs[j];
            FUZZ_CHECK(a->n_floats >= 0 && a->n_ints >= 0);
            FUZZ_CHECK(onnx_node_attr(nd, a->name) != NULL);
            if (a->t) check_tensor(m, a->t, data, size, &budget);
            int n;
            (void)onnx_attr_ints(nd, a->name, &n);
            (void)onnx_attr_int(nd, a->name, 0);
            (void)onnx_attr_float(nd, a->name, 0);
        }
        int64_t axes[8];
        (void)onnx_node_axes(m, nd, axes, 8);
    }
    onnx_free(m);
    return 0;
}
