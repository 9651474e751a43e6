/*
 * fuzz_npy.c — libFuzzer target for .npy files (src/io/npy.c), both loaders: npy_parse (floats and
 * ints, any supported dtype) and npy_parse_int (refuses non-integral floats). Invariants: on
 * success numel is the product of the shape, the data fits in the input, every element was
 * copied (read back here), and npy_parse_int agrees with npy_parse's first_bad_int.
 * Seeds: the fixtures' .npy files under tests/data (the small ones) and a few written by make_seeds.
 */
#include "fuzz.h"
#include "io/npy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_array a;
    cosy_status st = npy_parse(data, size, "fuzz.npy", &a);
    npy_array b;
    cosy_status st_int = npy_parse_int(data, size, "fuzz.npy", &b);
    if (st != COSY_OK) {
        FUZZ_CHECK(st_int != COSY_OK);
        return 0;
    }
    FUZZ_CHECK(a.ndim >= 0 && a.ndim <= NPY_MAX_DIMS);
    int64_t n = 1;
    for (int d = 0; d < a.ndim; d++) {
        FUZZ_CHECK(a.shape[d] >= 0);
        n *= a.shape[d];
    }
    FUZZ_CHECK(n == a.numel);
    FUZZ_CHECK((uint64_t)a.numel <= size); /* at least one byte per element */
    FUZZ_CHECK(a.f32 && a.i64);
    double sum = 0;
    for (int64_t i = 0; i < a.numel; i++) sum += (double)a.f32[i] + (double)a.i64[i];
    (void)sum;
    FUZZ_CHECK(a.first_bad_int >= -1 && a.first_bad_int < a.numel);
    FUZZ_CHECK(a.is_float || a.first_bad_int == -1);
    FUZZ_CHECK((st_int == COSY_OK) == (a.first_bad_int < 0));
    if (st_int == COSY_OK) {
        FUZZ_CHECK(b.numel == a.numel);
        for (int64_t i = 0; i < a.numel; i++) FUZZ_CHECK(b.i64[i] == a.i64[i]);
        npy_free(&b);
    }
    npy_free(&a);
    return 0;
}
