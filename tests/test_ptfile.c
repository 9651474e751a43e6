/* test_ptfile.c — the zip + pickle reader on the official fixture checkpoints and on crafted
 * checkpoints: shared storages, strided views, bf16/int storages, nested dicts, deflate, and every
 * kind of damage (truncation at every byte, corrupt directory, foreign classes and opcodes). */
#include "test.h"

#include <math.h>
#include "pt_writer.h"

#include "core/half.h"
#include "io/ptfile.h"

static void test_fixture(void)
{
    pt_file f;
    CHECK_OK(pt_open(test_data("cv2-tiny/model/llm.pt"), &f));
    CHECK(f.n_tensors == 31);
    const pt_tensor *emb = pt_find(&f, "llm.model.model.embed_tokens.weight");
    const pt_tensor *head = pt_find(&f, "llm.model.lm_head.weight");
    CHECK(emb && head);
    if (emb && head) {
        CHECK(emb->ndim == 2 && emb->shape[0] == 2000 && emb->shape[1] == 64 && emb->dtype == PT_F32);
        /* tied: one storage shared by both keys */
        CHECK(!strcmp(emb->storage_key, head->storage_key) && emb->storage == head->storage);
    }
    const pt_tensor *q = pt_find(&f, "llm.model.model.layers.1.self_attn.k_proj.weight");
    CHECK(q && q->shape[0] == 32 && q->shape[1] == 64 && q->stride[0] == 64 && q->stride[1] == 1);
    CHECK(pt_find(&f, "no.such.key") == NULL);
    pt_close(&f);

    CHECK_OK(pt_open(test_data("cv2-tiny/model/flow.pt"), &f));
    const pt_tensor *w = pt_find(&f, "encoder.pre_lookahead_layer.conv1.weight");
    CHECK(w && w->dtype == PT_F16 && w->ndim == 3 && w->shape[2] == 4);
    if (w) {
        float *v = malloc(sizeof(float) * (size_t)pt_numel(w));
        pt_read_f32(w, v);
        const uint16_t *raw = (const uint16_t *)w->storage + w->offset;
        int same = 1;
        for (int64_t i = 0; i < pt_numel(w); i += 97) same &= v[i] == cosy_f16_to_f32(raw[i]);
        CHECK(same);
        free(v);
    }
    pt_close(&f);

    CHECK_OK(pt_open(test_data("cv2-tiny/model/hift.pt"), &f));
    CHECK(pt_find(&f, "conv_pre.weight_g") && pt_find(&f, "conv_pre.weight_v"));
    pt_close(&f);
}

/* A small checkpoint exercising the layouts real files use. */
static const char *write_crafted(const char *path, int deflate, int nested)
{
    static float base[24];
    static uint16_t bf[6];
    static int64_t ids[5] = {3, -1, 6560, 7, 0};
    for (int i = 0; i < 24; i++) base[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 6; i++) bf[i] = cosy_f32_to_bf16((float)i + 0.25f);
    ptw_tensor t[] = {
        {"plain", "FloatStorage", "0", 24, 0, 2, {4, 6}, {6, 1}},
        {"transposed", "FloatStorage", "0", 24, 0, 2, {6, 4}, {1, 6}},   /* a strided view */
        {"slice", "FloatStorage", "0", 24, 7, 1, {5}, {2}},             /* offset + stride into a shared storage */
        {"bf", "BFloat16Storage", "1", 6, 0, 2, {2, 3}, {3, 1}},
        {"ids", "LongStorage", "2", 5, 0, 2, {1, 5}, {5, 1}},
    };
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, t, 5, nested ? "spk" : NULL);
    const char *keys[] = {"0", "1", "2"};
    const void *blobs[] = {base, bf, ids};
    size_t sizes[] = {sizeof base, sizeof bf, sizeof ids};
    int rc = ptw_write_checkpoint(path, "archive", &pkl, keys, blobs, sizes, 3, deflate);
    free(pkl.p);
    return rc == 0 ? path : NULL;
}

static void check_crafted(const char *path, const char *prefix)
{
    pt_file f;
    CHECK_OK(pt_open(path, &f));
    char name[64];
    snprintf(name, sizeof name, "%splain", prefix);
    const pt_tensor *plain = pt_find(&f, name);
    snprintf(name, sizeof name, "%stransposed", prefix);
    const pt_tensor *tr = pt_find(&f, name);
    snprintf(name, sizeof name, "%sslice", prefix);
    const pt_tensor *sl = pt_find(&f, name);
    snprintf(name, sizeof name, "%sbf", prefix);
    const pt_tensor *bf = pt_find(&f, name);
    snprintf(name, sizeof name, "%sids", prefix);
    const pt_tensor *ids = pt_find(&f, name);
    CHECK(plain && tr && sl && bf && ids);
    if (plain && tr && sl && bf && ids) {
        float a[24], b[24], s[5], h[6];
        pt_read_f32(plain, a);
        pt_read_f32(tr, b);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 6; c++) CHECK(b[c * 4 + r] == a[r * 6 + c]);
        CHECK(a[23] == 23 * 0.5f - 3.0f);
        pt_read_f32(sl, s);
        for (int i = 0; i < 5; i++) CHECK(s[i] == (float)(7 + 2 * i) * 0.5f - 3.0f);
        pt_read_f32(bf, h);
        for (int i = 0; i < 6; i++) CHECK(h[i] == (float)i + 0.25f);
        int64_t v[5];
        pt_read_i64(ids, v);
        CHECK(v[0] == 3 && v[1] == -1 && v[2] == 6560 && v[4] == 0);
        CHECK(plain->storage == tr->storage);
        if (prefix[0]) CHECK(!strcmp(plain->parent, "spk") && !strcmp(plain->leaf, "plain"));
    }
    pt_close(&f);
}

static void test_crafted(void)
{
    check_crafted(write_crafted(test_tmp("crafted.pt"), 0, 0), "");
    check_crafted(write_crafted(test_tmp("crafted_deflate.pt"), 1, 0), "");
    check_crafted(write_crafted(test_tmp("crafted_nested.pt"), 0, 1), "spk.");
}

/* Floats read as ints: converting NaN, an infinity or a value beyond int64 is undefined behaviour
 * in C (found by fuzz_pt); they read as 0, the rest truncates. Also the in-memory reader on the
 * same bytes. */
static unsigned char *read_file(const char *path, size_t *n);
static void test_float_as_int(void)
{
    static float x[5];
    x[0] = 2.7f, x[1] = NAN, x[2] = INFINITY, x[3] = -1e30f, x[4] = -3.9f;
    ptw_tensor t[] = {{"x", "FloatStorage", "0", 5, 0, 1, {5}, {1}}};
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, t, 1, NULL);
    const char *keys[] = {"0"};
    const void *blobs[] = {x};
    size_t sizes[] = {sizeof x};
    const char *path = test_tmp("float_ids.pt");
    CHECK(ptw_write_checkpoint(path, "archive", &pkl, keys, blobs, sizes, 1, 0) == 0);
    free(pkl.p);
    size_t n = 0;
    unsigned char *bytes = read_file(path, &n);
    pt_file f;
    CHECK_OK(pt_open_mem(bytes, n, "float_ids.pt", &f));
    const pt_tensor *xt = pt_find(&f, "x");
    CHECK(xt != NULL);
    if (xt) {
        int64_t v[5];
        pt_read_i64(xt, v);
        CHECK(v[0] == 2 && v[1] == 0 && v[2] == 0 && v[3] == 0 && v[4] == -3);
    }
    pt_close(&f);
    CHECK_FAILS(pt_open_mem(bytes, n / 2, "half.pt", &f), COSY_ERR_FORMAT, "half.pt: ");
    free(bytes);
}

/* A bf16 storage at an odd address (a re-packed zip need not align entries as torch.save does):
 * the bulk converter read it as uint16_t, misaligned (UBSan, found by fuzz_pt). The same archive
 * at both parities of address must read the same values. */
static void test_misaligned(void)
{
    static uint16_t bf[6];
    for (int i = 0; i < 6; i++) bf[i] = cosy_f32_to_bf16((float)i - 1.5f);
    ptw_tensor t[] = {{"bf", "BFloat16Storage", "0", 6, 0, 2, {2, 3}, {3, 1}}};
    ptw_buf pkl = {0};
    ptw_pickle(&pkl, t, 1, NULL);
    const char *keys[] = {"0"};
    const void *blobs[] = {bf};
    size_t sizes[] = {sizeof bf};
    const char *path = test_tmp("bf16.pt");
    CHECK(ptw_write_checkpoint(path, "archive", &pkl, keys, blobs, sizes, 1, 0) == 0);
    free(pkl.p);
    size_t n = 0;
    unsigned char *bytes = read_file(path, &n), *shifted = malloc(n + 1);
    for (int shift = 0; shift <= 1 && bytes && shifted; shift++) {
        memcpy(shifted + shift, bytes, n);
        pt_file f;
        CHECK_OK(pt_open_mem(shifted + shift, n, "bf16.pt", &f));
        const pt_tensor *bt = pt_find(&f, "bf");
        CHECK(bt != NULL);
        if (bt) {
            float v[6];
            pt_read_f32(bt, v);
            for (int i = 0; i < 6; i++) CHECK(v[i] == (float)i - 1.5f);
        }
        pt_close(&f);
    }
    free(shifted);
    free(bytes);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *p = malloc(*n);
    if (fread(p, 1, *n, fp) != *n) { free(p); p = NULL; }
    fclose(fp);
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    fwrite(p, 1, n, fp);
    fclose(fp);
}

static void test_damage(void)
{
    pt_file f;
    CHECK_FAILS(pt_open(test_tmp("does-not-exist.pt"), &f), COSY_ERR_MISSING, "does-not-exist.pt");
    write_file(test_tmp("garbage.pt"), "this is not a zip archive at all, just text", 43);
    CHECK_FAILS(pt_open(test_tmp("garbage.pt"), &f), COSY_ERR_FORMAT, "end-of-central-directory");

    /* every prefix of a valid checkpoint is refused cleanly */
    size_t n = 0;
    unsigned char *whole = read_file(write_crafted(test_tmp("whole.pt"), 0, 0), &n);
    CHECK(whole != NULL);
    int accepted = 0, failed_cleanly = 0;
    for (size_t len = 0; whole && len < n; len++) {
        write_file(test_tmp("prefix.pt"), whole, len);
        cosy_status st = pt_open(test_tmp("prefix.pt"), &f);
        if (st == COSY_OK) { accepted++; pt_close(&f); }
        else if (strlen(cosy_last_error()) > 0) failed_cleanly++;
    }
    CHECK(accepted == 0);
    CHECK(failed_cleanly == (int)n);

    /* a corrupt central directory entry */
    if (whole) {
        unsigned char *bad = malloc(n);
        memcpy(bad, whole, n);
        for (size_t i = n - 22; i-- > 0;)
            if (bad[i] == 0x50 && bad[i + 1] == 0x4b && bad[i + 2] == 0x01 && bad[i + 3] == 0x02) {
                bad[i + 42] ^= 0x5a; /* local header offset */
                break;
            }
        write_file(test_tmp("badcd.pt"), bad, n);
        CHECK_FAILS(pt_open(test_tmp("badcd.pt"), &f), COSY_ERR_FORMAT, "badcd.pt");
        free(bad);
    }
    free(whole);

    /* a class that is not part of a state dict */
    ptw_buf pkl = {0};
    ptw_u8(&pkl, 0x80); ptw_u8(&pkl, 2);
    pk_global(&pkl, "os", "system");
    pk_str(&pkl, "echo pwned");
    ptw_u8(&pkl, 0x85);
    ptw_u8(&pkl, 'R');
    ptw_u8(&pkl, '.');
    CHECK(ptw_write_checkpoint(test_tmp("evil.pt"), "evil", &pkl, NULL, NULL, NULL, 0, 0) == 0);
    CHECK_FAILS(pt_open(test_tmp("evil.pt"), &f), COSY_ERR_UNSUPPORTED, "unsupported class os.system at byte 2");
    free(pkl.p);

    /* an opcode we do not implement (INST) */
    memset(&pkl, 0, sizeof pkl);
    ptw_u8(&pkl, 0x80); ptw_u8(&pkl, 2);
    ptw_u8(&pkl, '}');
    ptw_u8(&pkl, 'i');
    ptw_u8(&pkl, '.');
    CHECK(ptw_write_checkpoint(test_tmp("opcode.pt"), "x", &pkl, NULL, NULL, NULL, 0, 0) == 0);
    CHECK_FAILS(pt_open(test_tmp("opcode.pt"), &f), COSY_ERR_UNSUPPORTED, "opcode 0x69 at byte 3");
    free(pkl.p);

    /* not a dict */
    memset(&pkl, 0, sizeof pkl);
    ptw_u8(&pkl, 0x80); ptw_u8(&pkl, 2);
    pk_int(&pkl, 5);
    ptw_u8(&pkl, '.');
    CHECK(ptw_write_checkpoint(test_tmp("int.pt"), "x", &pkl, NULL, NULL, NULL, 0, 0) == 0);
    CHECK_FAILS(pt_open(test_tmp("int.pt"), &f), COSY_ERR_UNSUPPORTED, "dict of tensors");
    free(pkl.p);

    /* a tensor whose storage blob is absent, and one whose view exceeds its storage */
    ptw_tensor t1 = {"w", "FloatStorage", "9", 4, 0, 1, {4}, {1}};
    memset(&pkl, 0, sizeof pkl);
    ptw_pickle(&pkl, &t1, 1, NULL);
    CHECK(ptw_write_checkpoint(test_tmp("nostorage.pt"), "x", &pkl, NULL, NULL, NULL, 0, 0) == 0);
    CHECK_FAILS(pt_open(test_tmp("nostorage.pt"), &f), COSY_ERR_MISSING, "x/data/9");
    free(pkl.p);
    float four[4] = {1, 2, 3, 4};
    ptw_tensor t2 = {"w", "FloatStorage", "0", 4, 2, 1, {4}, {1}};
    memset(&pkl, 0, sizeof pkl);
    ptw_pickle(&pkl, &t2, 1, NULL);
    const char *keys[] = {"0"};
    const void *blobs[] = {four};
    size_t sizes[] = {sizeof four};
    CHECK(ptw_write_checkpoint(test_tmp("overrun.pt"), "x", &pkl, keys, blobs, sizes, 1, 0) == 0);
    CHECK_FAILS(pt_open(test_tmp("overrun.pt"), &f), COSY_ERR_FORMAT, "exceeds its storage");
    free(pkl.p);
    /* a storage blob shorter than the numel it claims */
    ptw_tensor t3 = {"w", "FloatStorage", "0", 8, 0, 1, {8}, {1}};
    memset(&pkl, 0, sizeof pkl);
    ptw_pickle(&pkl, &t3, 1, NULL);
    CHECK(ptw_write_checkpoint(test_tmp("short.pt"), "x", &pkl, keys, blobs, sizes, 1, 0) == 0);
    CHECK_FAILS(pt_open(test_tmp("short.pt"), &f), COSY_ERR_FORMAT, "truncated?");
    free(pkl.p);
}

int main(void)
{
    test_fixture();
    test_crafted();
    test_damage();
    test_float_as_int();
    test_misaligned();
    return test_finish("test_ptfile");
}
