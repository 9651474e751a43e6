/* test_gguf.c — GGUF writer/reader round trip, and the reader's refusal of damaged files:
 * every truncation, bad magic/version, impossible counts, damaged tensor records (too many
 * dimensions, a zero or huge dimension, an unknown type, rows that are not whole blocks, a
 * misaligned offset, data past the end of the file), duplicate tensor names, and the writer's
 * promise to leave no partial file behind. */
#define _GNU_SOURCE /* memmem */
#include "test.h"

#include "core/error.h"
#include "io/gguf.h"

#include <dirent.h>
#include <unistd.h>

typedef struct {
    float base;
} fill_ctx;

static cosy_status fill_ramp(void *vctx, void *dst, size_t nbytes)
{
    fill_ctx *c = vctx;
    float *f = dst;
    for (size_t i = 0; i < nbytes / 4; i++) f[i] = c->base + (float)i;
    return COSY_OK;
}

static cosy_status fill_fails(void *vctx, void *dst, size_t nbytes)
{
    (void)vctx; (void)dst; (void)nbytes;
    return cosy_error(COSY_ERR_IO, "simulated failure");
}

static cosy_status fill_bytes(void *vctx, void *dst, size_t nbytes)
{
    memset(dst, *(int *)vctx, nbytes);
    return COSY_OK;
}

static const char *write_sample(const char *path)
{
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "test");
    gguf_writer_set_i32(w, "a.int", -7);
    gguf_writer_set_u32(w, "a.uint", 4000000000u);
    gguf_writer_set_f32(w, "a.float", 0.25f);
    gguf_writer_set_bool(w, "a.bool", 1);
    int32_t arr[3] = {8, 5, 3};
    float farr[2] = {1.5f, -2.0f};
    gguf_writer_set_arr_i32(w, "a.list", arr, 3);
    gguf_writer_set_arr_f32(w, "a.flist", farr, 2);
    const char *strs[] = {"Ġhello", "", "世界"};
    gguf_writer_set_arr_str(w, "a.strs", strs, NULL, 3);
    static fill_ctx c1 = {0.0f}, c2 = {100.0f};
    static int byte = 7;
    int64_t s1[3] = {2, 3, 5}, s2[1] = {4}, s3[2] = {2, 32};
    CHECK_OK(gguf_writer_add_tensor(w, "t.conv", COSY_DTYPE_F32, 3, s1, fill_ramp, &c1, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "t.bias", COSY_DTYPE_F32, 1, s2, fill_ramp, &c2, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "t.q8", COSY_DTYPE_Q8_0, 2, s3, fill_bytes, &byte, NULL));
    /* q4_0: GGUF type 2, 18 bytes per 32 elements */
    CHECK_OK(gguf_writer_add_tensor(w, "t.q4", COSY_DTYPE_Q4_0, 2, s3, fill_bytes, &byte, NULL));
    CHECK_OK(gguf_writer_write(w, path));
    gguf_writer_free(w);
    return path;
}

static void test_round_trip(void)
{
    gguf_file g;
    CHECK_OK(gguf_open(write_sample(test_tmp("sample.gguf")), &g));
    CHECK(g.version == 3 && g.n_tensors == 4 && g.alignment == 64);
    int64_t v;
    double d;
    CHECK_OK(gguf_get_int(&g, "a.int", &v));
    CHECK(v == -7);
    CHECK_OK(gguf_get_int(&g, "a.uint", &v));
    CHECK(v == 4000000000ll);
    CHECK_OK(gguf_get_float(&g, "a.float", &d));
    CHECK(d == 0.25);
    CHECK_OK(gguf_get_int(&g, "a.bool", &v));
    CHECK(v == 1);
    int64_t list[8];
    double flist[8];
    int n;
    CHECK_OK(gguf_get_int_array(&g, "a.list", list, 8, &n));
    CHECK(n == 3 && list[0] == 8 && list[2] == 3);
    CHECK_OK(gguf_get_float_array(&g, "a.flist", flist, 8, &n));
    CHECK(n == 2 && flist[1] == -2.0);
    CHECK_FAILS(gguf_get_int_array(&g, "a.list", list, 2, &n), COSY_ERR_FORMAT, "at most 2");
    CHECK_FAILS(gguf_get_int(&g, "a.missing", &v), COSY_ERR_MISSING, "a.missing");
    CHECK_FAILS(gguf_get_int(&g, "a.float", &v), COSY_ERR_FORMAT, "not an integer");
    const gguf_kv *s = gguf_find_kv(&g, "a.strs");
    CHECK(s && s->type == GGUF_TYPE_ARRAY && s->arr_type == GGUF_TYPE_STRING && s->n == 3);
    if (s) {
        CHECK(s->strs[0].len == strlen("Ġhello") && !memcmp(s->strs[0].ptr, "Ġhello", s->strs[0].len));
        CHECK(s->strs[1].len == 0);
        CHECK(!memcmp(s->strs[2].ptr, "世界", s->strs[2].len));
    }
    const cosy_tensor *t = gguf_find_tensor(&g, "t.conv");
    CHECK(t && t->ndim == 3 && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 5 && t->dtype == COSY_DTYPE_F32);
    CHECK(t && ((uintptr_t)t->data % 64) == 0 && ((float *)t->data)[29] == 29.0f);
    t = gguf_find_tensor(&g, "t.bias");
    CHECK(t && ((float *)t->data)[3] == 103.0f && ((uintptr_t)t->data % 64) == 0);
    t = gguf_find_tensor(&g, "t.q8");
    CHECK(t && t->nbytes == 2 * 34 && ((unsigned char *)t->data)[67] == 7);
    t = gguf_find_tensor(&g, "t.q4");
    CHECK(t && t->dtype == COSY_DTYPE_Q4_0 && (int)t->dtype == 2 && t->nbytes == 2 * 18 && t->shape[1] == 32 &&
          ((unsigned char *)t->data)[35] == 7);
    CHECK(gguf_find_tensor(&g, "t.nothing") == NULL);
    gguf_close(&g);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *p = malloc(*n);
    CHECK(fread(p, 1, *n, fp) == *n);
    fclose(fp);
    return p;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    fwrite(p, 1, n, fp);
    fclose(fp);
}

static void test_damage(void)
{
    size_t n;
    unsigned char *whole = slurp(write_sample(test_tmp("whole.gguf")), &n);
    gguf_file g;
    /* the writer pads the last tensor to the alignment: a file cut inside that padding still
     * holds every byte of data, so only cuts before the end of the last tensor must fail */
    CHECK_OK(gguf_open(test_tmp("whole.gguf"), &g));
    size_t data_end = 0;
    for (int64_t i = 0; i < g.n_tensors; i++) {
        size_t end = (size_t)((const unsigned char *)g.tensors[i].data - g.file.data) + g.tensors[i].nbytes;
        if (end > data_end) data_end = end;
    }
    gguf_close(&g);
    CHECK(data_end > 0 && data_end <= n);
    int accepted = 0;
    for (size_t len = 0; len < data_end; len++) {
        spit(test_tmp("cut.gguf"), whole, len);
        cosy_status st = gguf_open(test_tmp("cut.gguf"), &g);
        if (st == COSY_OK) {
            accepted++;
            gguf_close(&g);
        } else {
            CHECK(strstr(cosy_last_error(), "cut.gguf") != NULL);
        }
    }
    CHECK(accepted == 0);

    unsigned char *bad = malloc(n);
    memcpy(bad, whole, n);
    bad[0] = 'X';
    spit(test_tmp("magic.gguf"), bad, n);
    CHECK_FAILS(gguf_open(test_tmp("magic.gguf"), &g), COSY_ERR_FORMAT, "bad magic");
    memcpy(bad, whole, n);
    bad[4] = 9;
    spit(test_tmp("version.gguf"), bad, n);
    CHECK_FAILS(gguf_open(test_tmp("version.gguf"), &g), COSY_ERR_UNSUPPORTED, "version 9");
    memcpy(bad, whole, n);
    bad[8] = 0xff; bad[9] = 0xff; bad[10] = 0xff; /* absurd tensor count */
    spit(test_tmp("count.gguf"), bad, n);
    CHECK_FAILS(gguf_open(test_tmp("count.gguf"), &g), COSY_ERR_FORMAT, "impossible counts");
    free(bad);
    free(whole);

    /* duplicate tensor names */
    gguf_writer *w = gguf_writer_create();
    fill_ctx c = {0};
    int64_t s[1] = {4};
    CHECK_OK(gguf_writer_add_tensor(w, "dup", COSY_DTYPE_F32, 1, s, fill_ramp, &c, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "dup", COSY_DTYPE_F32, 1, s, fill_ramp, &c, NULL));
    CHECK_OK(gguf_writer_write(w, test_tmp("dup.gguf")));
    gguf_writer_free(w);
    CHECK_FAILS(gguf_open(test_tmp("dup.gguf"), &g), COSY_ERR_FORMAT, "appears twice");

    /* a failing producer leaves neither the output nor a temporary file */
    unlink(test_tmp("partial.gguf"));
    w = gguf_writer_create();
    CHECK_OK(gguf_writer_add_tensor(w, "ok", COSY_DTYPE_F32, 1, s, fill_ramp, &c, NULL));
    CHECK_OK(gguf_writer_add_tensor(w, "bad", COSY_DTYPE_F32, 1, s, fill_fails, NULL, NULL));
    CHECK_FAILS(gguf_writer_write(w, test_tmp("partial.gguf")), COSY_ERR_IO, "simulated failure");
    gguf_writer_free(w);
    CHECK(access(test_tmp("partial.gguf"), F_OK) != 0);
    DIR *dir = opendir(COSY_TEST_TMP);
    int leftovers = 0;
    for (struct dirent *e; dir && (e = readdir(dir));)
        if (strstr(e->d_name, "partial.gguf.tmp")) leftovers++;
    if (dir) closedir(dir);
    CHECK(leftovers == 0);
    /* an unwritable destination */
    w = gguf_writer_create();
    CHECK_FAILS(gguf_writer_write(w, "/nonexistent-dir/x.gguf"), COSY_ERR_IO, "/nonexistent-dir/x.gguf");
    gguf_writer_free(w);
    /* q8_0 rows must be whole blocks */
    w = gguf_writer_create();
    int64_t odd[2] = {2, 20};
    CHECK_FAILS(gguf_writer_add_tensor(w, "q", COSY_DTYPE_Q8_0, 2, odd, fill_ramp, &c, NULL), COSY_ERR_INVALID_ARG, "block");
    gguf_writer_free(w);
}

/* One tensor record damaged at a time: each refusal names the file, the tensor and what is wrong. The
 * record of t.bias (1 dimension, f32) follows its name: u32 ndim, u64 dim, u32 type, u64 offset. */
static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

static void test_tensor_records(void)
{
    size_t n;
    unsigned char *whole = slurp(write_sample(test_tmp("records.gguf")), &n);
    CHECK(whole != NULL);
    if (!whole) return;
    unsigned char *name = memmem(whole, n, "t.bias", 6);
    CHECK(name != NULL);
    if (!name) { free(whole); return; }
    const size_t at = (size_t)(name - whole) + 6; /* the record after the name */
    uint64_t offset;
    memcpy(&offset, whole + at + 16, 8);
    CHECK(whole[at] == 1 && offset % 64 == 0);
    unsigned char *bad = malloc(n);
    const char *path = test_tmp("record.gguf");
    gguf_file g;
    struct { size_t pos; int width; uint64_t value; cosy_status status; const char *needle; } cases[] = {
        {0, 4, 7, COSY_ERR_UNSUPPORTED, "record.gguf: tensor t.bias (byte "},        /* 7 dimensions */
        {4, 8, 0, COSY_ERR_FORMAT, "record.gguf: tensor t.bias has an impossible dimension 0"},
        {4, 8, 1ull << 41, COSY_ERR_FORMAT, "record.gguf: tensor t.bias has an impossible dimension 2199023255552"},
        {12, 4, 99, COSY_ERR_UNSUPPORTED, "record.gguf: tensor t.bias has unsupported type 99"},
        {12, 4, COSY_DTYPE_Q8_0, COSY_ERR_FORMAT, "record.gguf: tensor t.bias: rows are not a multiple of the q8_0 block size"},
        {16, 8, 0, COSY_ERR_FORMAT, NULL}, /* filled below: offset + 4, misaligned */
        {16, 8, 1ull << 40, COSY_ERR_FORMAT, "record.gguf: tensor t.bias data (16 bytes at byte "},
    };
    cases[5].value = offset + 4;
    cases[5].needle = "record.gguf: tensor t.bias offset";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, whole, n);
        if (cases[i].width == 4) put_u32(bad + at + cases[i].pos, (uint32_t)cases[i].value);
        else put_u64(bad + at + cases[i].pos, cases[i].value);
        spit(path, bad, n);
        CHECK_FAILS(gguf_open(path, &g), cases[i].status, cases[i].needle);
    }
    CHECK(strstr(cosy_last_error(), "runs past the end of the file") != NULL);
    /* the intact file still opens: the records above were the only damage */
    spit(path, whole, n);
    CHECK_OK(gguf_open(path, &g));
    gguf_close(&g);
    free(bad);
    free(whole);
}

int main(void)
{
    test_round_trip();
    test_damage();
    test_tensor_records();
    return test_finish("test_gguf");
}
