/*
 * fuzz_yaml.c — libFuzzer target for model configs: the HyperPyYAML subset (src/io/yaml.c: the
 * pre-scan, libyaml, !ref resolution and arithmetic with its nesting and evaluation limits) and
 * the convert-side hyperparameter extraction on top of it (cosy_hparams_read_yaml over the
 * cv2-tiny preset's Qwen2 fields, then cosy_hparams_validate), as `cosy convert` runs them on a
 * downloaded cosyvoice2.yaml. Every getter is tried on a set of paths, the fuzzer's own keys
 * included (the first mapping keys of the text). Invariants: getters never report more items
 * than asked for, strings are NUL-terminated within the buffer.
 * Seeds: tests/data/cv2-tiny/model/cosyvoice2.yaml and a few small documents from make_seeds.
 */
#include "fuzz.h"
#include "io/yaml.h"
#include "model/hparams.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static const char *const paths[] = {
    "sample_rate", "token_frame_rate", "chunk_size", "num_decoding_left_chunks", "llm", "llm.mix_ratio",
    "llm.sampling.top_p", "flow.encoder.num_blocks", "flow.decoder.estimator.channels", "hift.upsample_rates",
    "hift.resblock_dilation_sizes", "hift.f0_predictor", "feat_extractor.fmax", "a", "a.b", "x", "v", "k",
};

static void query(const cosy_yaml *y, const char *path)
{
    int64_t v, list[8], mat[4 * 8];
    double d;
    char buf[64];
    int n, rows, cols, is_null;
    (void)cosy_yaml_has(y, path);
    (void)cosy_yaml_get_int(y, path, &v);
    (void)cosy_yaml_get_float(y, path, &d);
    if (cosy_yaml_get_str(y, path, buf, sizeof buf, &is_null) == COSY_OK) FUZZ_CHECK(memchr(buf, 0, sizeof buf));
    if (cosy_yaml_get_tag(y, path, buf, sizeof buf) == COSY_OK) FUZZ_CHECK(memchr(buf, 0, sizeof buf));
    if (cosy_yaml_get_int_list(y, path, list, 8, &n) == COSY_OK) FUZZ_CHECK(n >= 0 && n <= 8);
    if (cosy_yaml_get_int_matrix(y, path, mat, 4, 8, &rows, &cols) == COSY_OK) FUZZ_CHECK(rows >= 0 && rows <= 4 && cols >= 0 && cols <= 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cosy_yaml *y = NULL;
    if (cosy_yaml_parse((const char *)data, size, "fuzz.yaml", &y) != COSY_OK) return 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) query(y, paths[i]);
    /* the keys at the start of the first lines, so mutated names are looked up too */
    char key[64];
    size_t pos = 0;
    for (int lines = 0; lines < 8 && pos < size; lines++) {
        size_t k = 0;
        while (pos < size && data[pos] != '\n' && data[pos] != ':' && k + 1 < sizeof key) key[k++] = (char)data[pos++];
        key[k] = 0;
        if (k) query(y, key);
        while (pos < size && data[pos++] != '\n') {}
    }
    cosy_hparams hp;
    FUZZ_CHECK(cosy_hparams_preset("cv2-tiny", &hp) == COSY_OK);
    if (cosy_hparams_read_yaml(y, &hp) == COSY_OK) (void)cosy_hparams_validate(&hp);
    cosy_yaml_free(y);
    return 0;
}
