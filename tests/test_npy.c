/* test_npy.c — .npy loading: float files read as integers refuse NaN, infinities and values
 * beyond int64 (the conversion would be undefined), naming the file and the element index. */
#include "test.h"

#include "io/npy.h"

/* Writes a 1-D npy of `n` elements of `es` bytes with dtype `descr`. */
static void write_npy(const char *path, const char *descr, const void *data, size_t es, int n)
{
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }", descr, n);
    int pad = (64 - (10 + len + 1) % 64) % 64;
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    unsigned short hl = (unsigned short)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, fp);
    fwrite(&hl, 2, 1, fp);
    fwrite(header, 1, (size_t)len, fp);
    for (int i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    fwrite(data, es, (size_t)n, fp);
    fclose(fp);
}

int main(void)
{
    npy_array a;
    /* good values: floats holding integers */
    const float good[] = {1.0f, -2.0f, 6560.0f, 0.0f};
    write_npy(test_tmp("npy-good.npy"), "<f4", good, 4, 4);
    CHECK_OK(npy_load_int(test_tmp("npy-good.npy"), &a));
    CHECK(a.numel == 4 && a.i64[0] == 1 && a.i64[1] == -2 && a.i64[2] == 6560 && a.first_bad_int == -1);
    npy_free(&a);

    const float f_nan[] = {1.0f, 2.0f, NAN, 4.0f};
    const float f_inf[] = {-INFINITY, 0.0f};
    const float f_big[] = {0.0f, 0.0f, 0.0f, 1e30f};
    const double d_big[] = {9223372036854775808.0, 1.0}; /* 2^63: just past int64 */
    const double d_edge[] = {-9223372036854775808.0, 9223372036854774784.0}; /* -2^63 and the largest double below 2^63 */
    write_npy(test_tmp("npy-nan.npy"), "<f4", f_nan, 4, 4);
    write_npy(test_tmp("npy-inf.npy"), "<f4", f_inf, 4, 2);
    write_npy(test_tmp("npy-big.npy"), "<f4", f_big, 4, 4);
    write_npy(test_tmp("npy-big8.npy"), "<f8", d_big, 8, 2);
    write_npy(test_tmp("npy-edge8.npy"), "<f8", d_edge, 8, 2);
    const float f_frac[] = {1.0f, -2.5f};
    write_npy(test_tmp("npy-frac.npy"), "<f4", f_frac, 4, 2);
    unsigned short h_nan[] = {0x3c00, 0x7e00}; /* f16 1.0, NaN */
    write_npy(test_tmp("npy-nan16.npy"), "<f2", h_nan, 2, 2);

    CHECK_FAILS(npy_load_int(test_tmp("npy-nan.npy"), &a), COSY_ERR_FORMAT, "nan.npy: element 2 is nan");
    CHECK(a.f32 == NULL && a.i64 == NULL);
    CHECK_FAILS(npy_load_int(test_tmp("npy-inf.npy"), &a), COSY_ERR_FORMAT, "inf.npy: element 0 is -inf");
    CHECK_FAILS(npy_load_int(test_tmp("npy-big.npy"), &a), COSY_ERR_FORMAT, "big.npy: element 3 is 1e+30");
    CHECK_FAILS(npy_load_int(test_tmp("npy-big8.npy"), &a), COSY_ERR_FORMAT, "big8.npy: element 0");
    CHECK_FAILS(npy_load_int(test_tmp("npy-nan16.npy"), &a), COSY_ERR_FORMAT, "nan16.npy: element 1");
    CHECK_FAILS(npy_load_int(test_tmp("npy-frac.npy"), &a), COSY_ERR_FORMAT, "frac.npy: element 1 is -2.5");
    CHECK_OK(npy_load_int(test_tmp("npy-edge8.npy"), &a));
    CHECK(a.i64[0] == INT64_MIN && a.i64[1] == 9223372036854774784LL);
    npy_free(&a);

    /* as floats the same file loads; its integer copy holds 0 where there is no integer */
    CHECK_OK(npy_load(test_tmp("npy-nan.npy"), &a));
    CHECK(isnan(a.f32[2]) && a.i64[2] == 0 && a.i64[3] == 4 && a.first_bad_int == 2);
    npy_free(&a);

    /* integer files are unaffected */
    const int64_t ints[] = {INT64_MAX, -5};
    write_npy(test_tmp("npy-ints.npy"), "<i8", ints, 8, 2);
    CHECK_OK(npy_load_int(test_tmp("npy-ints.npy"), &a));
    CHECK(a.i64[0] == INT64_MAX && a.i64[1] == -5 && !a.is_float);
    npy_free(&a);
    return test_finish("test_npy");
}
