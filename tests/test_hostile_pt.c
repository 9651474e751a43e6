/* test_hostile_pt.c — hostile checkpoints the zip + pickle reader must refuse quickly with a one-line
 * error instead of crashing, hanging or allocating gigabytes: self-referencing / deeply nested /
 * exponentially shared dicts, storages and strides whose sizes overflow, MEMOIZE-heavy pickles and
 * BINPUT gaps, a tiny "zip64" file and an entry claiming 16 GiB. Every input is built here. */
#include "test.h"
#include "pt_writer.h"

#include "io/ptfile.h"

#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* a second in a normal build; sanitizers slow malloc-heavy parsing several-fold */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIMIT_S 5.0
#else
#define LIMIT_S 1.0
#endif

static double t0_;
#define TIMED_BEGIN() (t0_ = now_s())
/* the crafted input was handled within a second, with a one-line message */
#define TIMED_END()                                                                        \
    do {                                                                                   \
        double dt_ = now_s() - t0_;                                                        \
        if (dt_ >= LIMIT_S) fprintf(stderr, "%s:%d: took %.2f s\n", __FILE__, __LINE__, dt_); \
        CHECK(dt_ < LIMIT_S);                                                              \
        CHECK(strchr(cosy_last_error(), '\n') == NULL);                                    \
    } while (0)

/* a checkpoint whose data.pkl is `pkl` (plus storages) */
static const char *write_pkl(const char *name, ptw_buf *pkl, const char *const *keys, const void *const *blobs,
                             const size_t *sizes, int n)
{
    const char *path = test_tmp(name);
    CHECK(ptw_write_checkpoint(path, "x", pkl, keys, blobs, sizes, n, 0) == 0);
    free(pkl->p);
    memset(pkl, 0, sizeof *pkl);
    return path;
}

static void pk_proto(ptw_buf *b) { ptw_u8(b, 0x80); ptw_u8(b, 2); }
static void pk_short_str(ptw_buf *b, const char *s)
{
    ptw_u8(b, 0x8c);
    ptw_u8(b, (unsigned)strlen(s));
    ptw_put(b, s, strlen(s));
}
static void pk_long(ptw_buf *b, int64_t v) /* LONG1, 8 bytes */
{
    ptw_u8(b, 0x8a);
    ptw_u8(b, 8);
    for (int i = 0; i < 8; i++) ptw_u8(b, (unsigned)(((uint64_t)v >> (8 * i)) & 0xff));
}
static void pk_binput(ptw_buf *b, uint32_t idx) { ptw_u8(b, 'r'); ptw_u32(b, idx); }
static void pk_binget(ptw_buf *b, uint32_t idx) { ptw_u8(b, 'j'); ptw_u32(b, idx); }

static void test_recursive_dicts(void)
{
    pt_file f;
    ptw_buf b = {0};

    /* {"a": <itself>}: 17 bytes of pickle */
    pk_proto(&b);
    ptw_u8(&b, '}');
    ptw_u8(&b, 'q'); ptw_u8(&b, 0);
    pk_short_str(&b, "a");
    ptw_u8(&b, 'h'); ptw_u8(&b, 0);
    ptw_u8(&b, 's');
    ptw_u8(&b, '.');
    const char *p = write_pkl("self.pt", &b, NULL, NULL, NULL, 0);
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(p, &f), COSY_ERR_FORMAT, "nested more than");
    TIMED_END();

    /* 200k nested dicts: {"a": {"a": {...}}} */
    pk_proto(&b);
    ptw_u8(&b, '}');
    for (int i = 0; i < 200000; i++) { pk_short_str(&b, "a"); ptw_u8(&b, '}'); }
    for (int i = 0; i < 200000; i++) ptw_u8(&b, 's');
    ptw_u8(&b, '.');
    p = write_pkl("deep.pt", &b, NULL, NULL, NULL, 0);
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(p, &f), COSY_ERR_FORMAT, "nested more than 256 deep");
    TIMED_END();

    /* 40 levels, each {"a": below, "b": below}: 2^40 paths through ~1 KB of pickle */
    pk_proto(&b);
    ptw_u8(&b, '}');
    pk_binput(&b, 0);
    for (uint32_t lv = 1; lv <= 40; lv++) {
        ptw_u8(&b, '}');
        ptw_u8(&b, '(');
        pk_short_str(&b, "a"); pk_binget(&b, lv - 1);
        pk_short_str(&b, "b"); pk_binget(&b, lv - 1);
        ptw_u8(&b, 'u');
        pk_binput(&b, lv);
    }
    ptw_u8(&b, '.');
    CHECK(b.len < 1200);
    p = write_pkl("dag.pt", &b, NULL, NULL, NULL, 0);
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(p, &f), COSY_ERR_FORMAT, "dict items to flatten");
    TIMED_END();

    /* a modest nesting (a few levels, shared sub-dict visited twice) still loads */
    pk_proto(&b);
    ptw_u8(&b, '}');
    ptw_u8(&b, '}'); pk_binput(&b, 0); ptw_u8(&b, '0');
    ptw_u8(&b, '(');
    pk_short_str(&b, "x"); pk_binget(&b, 0);
    pk_short_str(&b, "y"); pk_binget(&b, 0);
    ptw_u8(&b, 'u');
    ptw_u8(&b, '.');
    p = write_pkl("shallow.pt", &b, NULL, NULL, NULL, 0);
    CHECK_OK(pt_open(p, &f));
    CHECK(f.n_tensors == 0);
    pt_close(&f);
}

static void test_memo(void)
{
    pt_file f;
    ptw_buf b = {0};

    /* 400k MEMOIZE ops: linear in the number of ops */
    pk_proto(&b);
    ptw_u8(&b, '}');
    ptw_u8(&b, 0x94);
    for (int i = 0; i < 400000; i++) { ptw_u8(&b, 'N'); ptw_u8(&b, 0x94); ptw_u8(&b, '0'); }
    pk_binget(&b, 400000); /* the last None */
    ptw_u8(&b, '0');
    pk_binget(&b, 0);      /* the dict */
    ptw_u8(&b, '.');
    const char *p = write_pkl("memoize.pt", &b, NULL, NULL, NULL, 0);
    TIMED_BEGIN();
    CHECK_OK(pt_open(p, &f));
    TIMED_END();
    pt_close(&f);

    /* BINPUT gaps: MEMOIZE takes len(memo), as pickle does */
    pk_proto(&b);
    ptw_u8(&b, ']');
    ptw_u8(&b, 0x94);                          /* slot 0: list */
    ptw_u8(&b, 'N'); pk_binput(&b, 1000); ptw_u8(&b, '0'); /* slot 1000: None */
    ptw_u8(&b, '}'); ptw_u8(&b, 0x94);         /* slot 2: dict */
    ptw_u8(&b, '0'); ptw_u8(&b, '0');
    pk_binget(&b, 2);
    ptw_u8(&b, '.');
    p = write_pkl("gap.pt", &b, NULL, NULL, NULL, 0);
    CHECK_OK(pt_open(p, &f)); /* the root is slot 2's dict, not the list in slot 0 */
    pt_close(&f);

    pk_proto(&b);
    ptw_u8(&b, '}'); pk_binput(&b, 5); pk_binget(&b, 1); ptw_u8(&b, '.');
    p = write_pkl("gap_read.pt", &b, NULL, NULL, NULL, 0);
    CHECK_FAILS(pt_open(p, &f), COSY_ERR_FORMAT, "memo 1 read before written");

    pk_proto(&b);
    ptw_u8(&b, '}'); pk_binput(&b, 0xfffffff0u); ptw_u8(&b, '.');
    p = write_pkl("bigslot.pt", &b, NULL, NULL, NULL, 0);
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(p, &f), COSY_ERR_FORMAT, "memo index 4294967280 too large");
    TIMED_END();
}

/* {"w": _rebuild_tensor_v2(storage(FloatStorage, "0", numel), offset, shape, stride)} */
static const char *write_tensor(const char *name, int64_t storage_numel, int64_t offset, int ndim, const int64_t *shape,
                                const int64_t *stride, size_t blob_bytes)
{
    static float blob[64];
    ptw_buf b = {0};
    pk_proto(&b);
    ptw_u8(&b, '}');
    pk_short_str(&b, "w");
    pk_global(&b, "torch._utils", "_rebuild_tensor_v2");
    ptw_u8(&b, '(');
    ptw_u8(&b, '(');
    pk_short_str(&b, "storage");
    pk_global(&b, "torch", "FloatStorage");
    pk_short_str(&b, "0");
    pk_short_str(&b, "cpu");
    pk_long(&b, storage_numel);
    ptw_u8(&b, 't');
    ptw_u8(&b, 'Q');
    pk_long(&b, offset);
    ptw_u8(&b, '(');
    for (int d = 0; d < ndim; d++) pk_long(&b, shape[d]);
    ptw_u8(&b, 't');
    ptw_u8(&b, '(');
    for (int d = 0; d < ndim; d++) pk_long(&b, stride[d]);
    ptw_u8(&b, 't');
    ptw_u8(&b, 't');
    ptw_u8(&b, 'R');
    ptw_u8(&b, 's');
    ptw_u8(&b, '.');
    const char *keys[] = {"0"};
    const void *blobs[] = {blob};
    size_t sizes[] = {blob_bytes};
    return write_pkl(name, &b, keys, blobs, sizes, 1);
}

static void test_tensor_extent(void)
{
    pt_file f;
    const int64_t one[] = {1}, big62 = (int64_t)1 << 62;

    /* sane: a 2x2 view of 4 floats */
    const int64_t s22[] = {2, 2}, st22[] = {2, 1};
    CHECK_OK(pt_open(write_tensor("ok.pt", 4, 0, 2, s22, st22, 16), &f));
    CHECK(f.n_tensors == 1);
    pt_close(&f);

    /* 2^62 elements backed by 4 bytes: numel * 4 wraps to 0 */
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(write_tensor("numel62.pt", big62, 0, 1, one, one, 4), &f), COSY_ERR_FORMAT, "truncated?");
    TIMED_END();
    CHECK_FAILS(pt_open(write_tensor("numel-neg.pt", -4, 0, 1, one, one, 4), &f), COSY_ERR_FORMAT, "claims -4 elements");

    /* huge strides: (shape-1)*stride overflows, or lands far outside the storage */
    const int64_t sh3[] = {3}, st62[] = {big62};
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(write_tensor("stride-ovf.pt", 4, 0, 1, sh3, st62, 16), &f), COSY_ERR_FORMAT, "overflows");
    TIMED_END();
    const int64_t sh2[] = {2}, st40[] = {(int64_t)1 << 40};
    CHECK_FAILS(pt_open(write_tensor("stride-far.pt", 4, 0, 1, sh2, st40, 16), &f), COSY_ERR_FORMAT, "exceeds its storage");
    const int64_t sh2x[] = {2, 2}, stx[] = {big62, big62};
    CHECK_FAILS(pt_open(write_tensor("stride-sum.pt", 4, 0, 2, sh2x, stx, 16), &f), COSY_ERR_FORMAT, "overflow");
    /* offset + extent overflowing */
    const int64_t st1[] = {1};
    CHECK_FAILS(pt_open(write_tensor("offset-ovf.pt", 4, INT64_MAX, 1, sh2, st1, 16), &f), COSY_ERR_FORMAT, "exceeds its storage");
    CHECK_FAILS(pt_open(write_tensor("offset-neg.pt", 4, -1, 1, sh2, st1, 16), &f), COSY_ERR_FORMAT, "exceeds its storage");
    /* numel overflow with stride 0 (broadcast) */
    const int64_t shh[] = {big62, big62}, st0[] = {0, 0};
    CHECK_FAILS(pt_open(write_tensor("numel-ovf.pt", 4, 0, 2, shh, st0, 16), &f), COSY_ERR_FORMAT, "shape overflows");
    /* exactly fitting: offset 2 + extent 1 = last element */
    const int64_t st1b[] = {1};
    CHECK_OK(pt_open(write_tensor("fit.pt", 4, 2, 1, sh2, st1b, 16), &f));
    pt_close(&f);
    CHECK_FAILS(pt_open(write_tensor("past.pt", 4, 3, 1, sh2, st1b, 16), &f), COSY_ERR_FORMAT, "exceeds its storage");
}

static void put64(ptw_buf *b, uint64_t v) { ptw_u32(b, (uint32_t)v); ptw_u32(b, (uint32_t)(v >> 32)); }

static void write_buf(const char *path, const ptw_buf *b)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fwrite(b->p, 1, b->len, fp) == b->len);
    if (fp) fclose(fp);
}

/* A one-entry zip: local header + data, central directory entry with optional zip64 sizes. */
static void write_one_entry_zip(const char *path, const char *name, unsigned method, const void *data, size_t comp,
                                uint64_t usize)
{
    ptw_buf b = {0};
    size_t nlen = strlen(name);
    int z64 = usize >= 0xffffffffu;
    ptw_u32(&b, 0x04034b50u);
    ptw_u16(&b, 45); ptw_u16(&b, 0); ptw_u16(&b, method); ptw_u16(&b, 0); ptw_u16(&b, 0);
    ptw_u32(&b, 0); ptw_u32(&b, (uint32_t)comp); ptw_u32(&b, z64 ? 0xffffffffu : (uint32_t)usize);
    ptw_u16(&b, (unsigned)nlen); ptw_u16(&b, 0);
    ptw_put(&b, name, nlen);
    ptw_put(&b, data, comp);
    size_t cd_off = b.len;
    ptw_u32(&b, 0x02014b50u);
    ptw_u16(&b, 45); ptw_u16(&b, 45); ptw_u16(&b, 0); ptw_u16(&b, method); ptw_u16(&b, 0); ptw_u16(&b, 0);
    ptw_u32(&b, 0); ptw_u32(&b, (uint32_t)comp); ptw_u32(&b, z64 ? 0xffffffffu : (uint32_t)usize);
    ptw_u16(&b, (unsigned)nlen); ptw_u16(&b, z64 ? 12 : 0); ptw_u16(&b, 0); ptw_u16(&b, 0); ptw_u16(&b, 0);
    ptw_u32(&b, 0); ptw_u32(&b, 0);
    ptw_put(&b, name, nlen);
    if (z64) { ptw_u16(&b, 1); ptw_u16(&b, 8); put64(&b, usize); }
    size_t cd_len = b.len - cd_off;
    ptw_u32(&b, 0x06054b50u);
    ptw_u16(&b, 0); ptw_u16(&b, 0); ptw_u16(&b, 1); ptw_u16(&b, 1);
    ptw_u32(&b, (uint32_t)cd_len); ptw_u32(&b, (uint32_t)cd_off); ptw_u16(&b, 0);
    write_buf(path, &b);
    free(b.p);
}

static void test_zip(void)
{
    pt_file f;
    ptw_buf b = {0};

    /* a 46-byte "zip64": EOCD64 signature, locator pointing at it, EOCD with 0xffff entries */
    ptw_u32(&b, 0x06064b50u);
    ptw_u32(&b, 0x07064b50u); ptw_u32(&b, 0); put64(&b, 0); ptw_u32(&b, 1);
    ptw_u32(&b, 0x06054b50u);
    ptw_u16(&b, 0); ptw_u16(&b, 0); ptw_u16(&b, 0xffff); ptw_u16(&b, 0xffff);
    ptw_u32(&b, 0xffffffffu); ptw_u32(&b, 0xffffffffu); ptw_u16(&b, 0);
    CHECK(b.len < 56);
    write_buf(test_tmp("tiny64.pt"), &b);
    free(b.p);
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(test_tmp("tiny64.pt"), &f), COSY_ERR_FORMAT, "bad zip64 end-of-central-directory");
    TIMED_END();

    /* a deflated entry of a few bytes claiming 16 GiB */
    static const char text[] = "zzzz hello hello hello hello";
    size_t comp = 0;
    unsigned char *packed = ptw_deflate(text, sizeof text, &comp);
    write_one_entry_zip(test_tmp("claim16g.pt"), "x/data.pkl", 8, packed, comp, (uint64_t)16 << 30);
    TIMED_BEGIN();
    CHECK_FAILS(pt_open(test_tmp("claim16g.pt"), &f), COSY_ERR_FORMAT, "claims 17179869184 bytes");
    TIMED_END();
    /* ... or 3 GiB without zip64 */
    write_one_entry_zip(test_tmp("claim3g.pt"), "x/data.pkl", 8, packed, comp, (uint64_t)3 << 30);
    CHECK_FAILS(pt_open(test_tmp("claim3g.pt"), &f), COSY_ERR_FORMAT, "claims 3221225472 bytes");
    /* the honest size inflates (then fails as a pickle, which is fine) */
    write_one_entry_zip(test_tmp("honest.pt"), "x/data.pkl", 8, packed, comp, sizeof text);
    CHECK_FAILS(pt_open(test_tmp("honest.pt"), &f), COSY_ERR_UNSUPPORTED, "opcode");
    free(packed);

    /* a stored entry claiming 16 GiB of a tiny file */
    write_one_entry_zip(test_tmp("stored16g.pt"), "x/data.pkl", 0, text, sizeof text, (uint64_t)16 << 30);
    CHECK_FAILS(pt_open(test_tmp("stored16g.pt"), &f), COSY_ERR_FORMAT, "stored16g.pt");

    /* an honest stored entry is read in place */
    write_one_entry_zip(test_tmp("stored.pt"), "x/data.pkl", 0, text, sizeof text, sizeof text);
    CHECK_FAILS(pt_open(test_tmp("stored.pt"), &f), COSY_ERR_UNSUPPORTED, "opcode");
}

/* argv[1], if given, runs one group: dicts, memo, tensor, zip */
int main(int argc, char **argv)
{
    (void)ptw_pickle; /* pt_writer.h helper unused here */
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || !strcmp(only, "dicts")) test_recursive_dicts();
    if (!only || !strcmp(only, "memo")) test_memo();
    if (!only || !strcmp(only, "tensor")) test_tensor_extent();
    if (!only || !strcmp(only, "zip")) test_zip();
    return test_finish("test_hostile_pt");
}
