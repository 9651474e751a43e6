/*
 * fuzz_gguf.c — libFuzzer target for model files: the GGUF container (src/io/gguf.c: header,
 * metadata of every type, tensor table, alignment, data offsets), everything `cosy info` does on
 * top of it (cosy_model_load_mem: architecture, hyperparameter reading with range checks,
 * validation, every architecture tensor by name with its shape, speakers; then the info print),
 * and the tokenizer stored in it (cosy_vocab_from_gguf + cosy_tokenizer_create). Invariants on a
 * parsed container: every tensor's bytes lie inside the input and agree with its shape and type,
 * lookups by name find each tensor, every array getter stays within what was asked.
 * Seeds: metadata-only model files and voice files written by make_seeds (cv2-tiny hyperparameters,
 * byte-level vocabulary, a few tensors).
 */
#include "fuzz.h"
#include "io/gguf.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "text/vocab.h"

#include <string.h>

static FILE *g_null;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    g_null = fopen("/dev/null", "w");
    return 0;
}

static void check_container(const gguf_file *g, const uint8_t *data, size_t size)
{
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const cosy_tensor *t = &g->tensors[i];
        const unsigned char *p = t->data;
        FUZZ_CHECK(p >= data && p <= data + size && t->nbytes <= (size_t)(data + size - p));
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= COSY_MAX_DIMS);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            n *= t->shape[d];
        }
        FUZZ_CHECK(n == cosy_tensor_numel(t));
        FUZZ_CHECK(gguf_find_tensor(g, t->name) != NULL);
        if (t->nbytes) {
            volatile unsigned char first = p[0], last = p[t->nbytes - 1];
            (void)first, (void)last;
        }
    }
    for (int64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        FUZZ_CHECK(gguf_find_kv(g, kv->key) != NULL);
        int64_t iv, ia[16];
        double fv, fa[16];
        int n;
        (void)gguf_get_int(g, kv->key, &iv);
        (void)gguf_get_float(g, kv->key, &fv);
        if (gguf_get_int_array(g, kv->key, ia, 16, &n) == COSY_OK) FUZZ_CHECK(n >= 0 && n <= 16);
        if (gguf_get_float_array(g, kv->key, fa, 16, &n) == COSY_OK) FUZZ_CHECK(n >= 0 && n <= 16);
        if (kv->type == GGUF_TYPE_STRING) FUZZ_CHECK(kv->str.len <= size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file g;
    if (gguf_open_mem(data, size, "fuzz.gguf", &g) != COSY_OK) return 0;
    check_container(&g, data, size);
    cosy_vocab v;
    if (cosy_vocab_from_gguf(&g, &v) == COSY_OK) {
        cosy_tokenizer *tok = NULL;
        if (cosy_tokenizer_create(&v, &tok) == COSY_OK) {
            cosy_token_ids ids = {0};
            (void)cosy_tokenizer_encode(tok, "Hello, world! 你好", 20, &ids);
            char *back = NULL;
            size_t len;
            if (cosy_tokenizer_decode(tok, ids.ids, ids.n, 0, &back, &len) == COSY_OK) free(back);
            cosy_token_ids_free(&ids);
            cosy_tokenizer_free(tok);
        }
        cosy_vocab_free(&v);
    }
    gguf_close(&g);

    cosy_model_params params = cosy_model_default_params();
    params.n_threads = 1;
    cosy_model *m = NULL;
    if (cosy_model_load_mem(data, size, "fuzz.gguf", &params, &m) == COSY_OK) {
        cosy_model_print_info(m, g_null);
        cosy_model_free(m);
    }
    return 0;
}
