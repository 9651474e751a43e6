/*
 * fuzz_pt.c — libFuzzer target for PyTorch checkpoints: the zip reader (central directory, zip64,
 * stored and deflated entries) and the pickle machine that turns data.pkl into tensor views
 * (src/io/zip.c, src/io/ptfile.c), on the bytes of a whole .pt file. Invariants on success: every
 * tensor has 1..COSY_MAX_DIMS dimensions of non-negative size, and its view (offset + strides)
 * lies inside its storage, which is read element by element (ASan sees any byte outside).
 * Seeds: small checkpoints written by make_seeds (incl. tensors taken from the fixture's hift.pt).
 */
#include "fuzz.h"
#include "io/ptfile.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pt_file f;
    if (pt_open_mem(data, size, "fuzz.pt", &f) != COSY_OK) return 0;
    int64_t budget = 1 << 20; /* elements read per input: a valid file may describe big tensors */
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const pt_tensor *t = &f.tensors[i];
        FUZZ_CHECK(t->name && t->parent && t->leaf && t->storage);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= COSY_MAX_DIMS);
        int64_t last = t->offset, numel = pt_numel(t);
        FUZZ_CHECK(t->offset >= 0 && numel >= 0);
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0 && t->stride[d] >= 0);
            if (t->shape[d] > 0) last += (t->shape[d] - 1) * t->stride[d];
        }
        if (numel > 0) FUZZ_CHECK(last < t->storage_numel);
        FUZZ_CHECK(pt_find(&f, t->name) != NULL);
        if (numel > 0 && numel <= budget) {
            budget -= numel;
            float *x = malloc(sizeof(float) * (size_t)numel);
            int64_t *k = malloc(sizeof(int64_t) * (size_t)numel);
            if (x && k) {
                pt_read_f32(t, x);
                pt_read_i64(t, k);
            }
            free(x);
            free(k);
        }
    }
    pt_close(&f);
    return 0;
}
