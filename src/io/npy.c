/* npy.c — .npy reader/writer (see npy.h). */
#include "io/npy.h"
#include "core/error.h"
#include "core/file.h"
#include "core/half.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static cosy_status parse_header(const char *path, const char *h, size_t hlen, char *descr, int *fortran, npy_array *a)
{
    char buf[4096];
    if (hlen >= sizeof buf) return cosy_error(COSY_ERR_FORMAT, "%s: npy header too long", path);
    memcpy(buf, h, hlen);
    buf[hlen] = 0;
    char *d = strstr(buf, "'descr'");
    char *f = strstr(buf, "'fortran_order'");
    char *s = strstr(buf, "'shape'");
    if (!d || !f || !s) return cosy_error(COSY_ERR_FORMAT, "%s: npy header lacks descr/fortran_order/shape", path);
    d = strchr(d + 7, '\'');
    if (!d) return cosy_error(COSY_ERR_FORMAT, "%s: bad npy descr", path);
    char *de = strchr(d + 1, '\'');
    if (!de || de - d - 1 >= 16) return cosy_error(COSY_ERR_FORMAT, "%s: bad npy descr", path);
    memcpy(descr, d + 1, (size_t)(de - d - 1));
    descr[de - d - 1] = 0;
    f += strlen("'fortran_order'");
    while (*f == ' ' || *f == ':') f++;
    *fortran = !strncmp(f, "True", 4);
    s = strchr(s, '(');
    if (!s) return cosy_error(COSY_ERR_FORMAT, "%s: bad npy shape", path);
    s++;
    a->ndim = 0;
    a->numel = 1;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || a->ndim >= NPY_MAX_DIMS) return cosy_error(COSY_ERR_FORMAT, "%s: bad npy shape", path);
        a->shape[a->ndim++] = v;
        if (v > 0 && a->numel > (1ll << 40) / v) return cosy_error(COSY_ERR_FORMAT, "%s: npy shape too large", path);
        a->numel *= v;
        s = end;
    }
    return COSY_OK;
}

/* Truncates a float to int64 as numpy's astype does, but only where that is defined: NaN,
 * infinities and values beyond int64 become 0 and the first such index is recorded, so that
 * npy_load_int can refuse the file. */
static int64_t float_to_i64(double v, int64_t i, npy_array *a)
{
    if (isfinite(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0) {
        if (v != trunc(v) && a->first_bad_int < 0) a->first_bad_int = i; /* a fraction: truncated, but no integer */
        return (int64_t)v;
    }
    if (a->first_bad_int < 0) a->first_bad_int = i;
    return 0;
}

/* Parses the mapped or borrowed file f into a (messages name f.path). */
static cosy_status parse(cosy_mapped_file f, npy_array *a)
{
    const char *path = f.path;
    cosy_status st = COSY_OK;
    const unsigned char *p = f.data;
    if (f.size < 10 || memcmp(p, "\x93NUMPY", 6) != 0) {
        st = cosy_error(COSY_ERR_FORMAT, "%s: not a .npy file", path);
        goto done;
    }
    size_t hlen, hstart;
    if (p[6] == 1) { hlen = (size_t)(p[8] | p[9] << 8); hstart = 10; }
    else {
        if (f.size < 12) { st = cosy_error(COSY_ERR_FORMAT, "%s: truncated npy header", path); goto done; }
        hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
        hstart = 12;
    }
    if (hstart + hlen > f.size) { st = cosy_error(COSY_ERR_FORMAT, "%s: truncated npy header", path); goto done; }
    char descr[16];
    int fortran = 0;
    if ((st = parse_header(path, (const char *)p + hstart, hlen, descr, &fortran, a)) != COSY_OK) goto done;
    if (fortran && a->ndim > 1) { st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: Fortran-order npy", path); goto done; }
    size_t es;
    char kind;
    if (!strcmp(descr, "<f4")) { es = 4; kind = 'f'; }
    else if (!strcmp(descr, "<f8")) { es = 8; kind = 'd'; }
    else if (!strcmp(descr, "<f2")) { es = 2; kind = 'h'; }
    else if (!strcmp(descr, "<i4")) { es = 4; kind = 'i'; }
    else if (!strcmp(descr, "<i8")) { es = 8; kind = 'l'; }
    else if (!strcmp(descr, "<i2")) { es = 2; kind = 's'; }
    else if (!strcmp(descr, "|u1") || !strcmp(descr, "|b1")) { es = 1; kind = 'u'; }
    else if (!strcmp(descr, "|i1")) { es = 1; kind = 'c'; }
    else { st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: npy dtype %s", path, descr); goto done; }
    size_t data = hstart + hlen;
    if ((size_t)a->numel > (f.size - data) / es) {
        st = cosy_error(COSY_ERR_FORMAT, "%s: npy data truncated (%lld elements expected)", path, (long long)a->numel);
        goto done;
    }
    a->is_float = kind == 'f' || kind == 'd' || kind == 'h';
    a->f32 = malloc(sizeof(float) * (size_t)(a->numel ? a->numel : 1));
    a->i64 = malloc(sizeof(int64_t) * (size_t)(a->numel ? a->numel : 1));
    if (!a->f32 || !a->i64) { st = cosy_error(COSY_ERR_NOMEM, "%s: out of memory", path); goto done; }
    a->first_bad_int = -1;
    for (int64_t i = 0; i < a->numel; i++) {
        const unsigned char *q = p + data + (size_t)i * es;
        double v;
        int64_t iv;
        switch (kind) {
        case 'f': { float x; memcpy(&x, q, 4); v = x; iv = float_to_i64(v, i, a); break; }
        case 'd': { double x; memcpy(&x, q, 8); v = x; iv = float_to_i64(v, i, a); break; }
        case 'h': { uint16_t x; memcpy(&x, q, 2); v = cosy_f16_to_f32(x); iv = float_to_i64(v, i, a); break; }
        case 'i': { int32_t x; memcpy(&x, q, 4); v = x; iv = x; break; }
        case 'l': { int64_t x; memcpy(&x, q, 8); v = (double)x; iv = x; break; }
        case 's': { int16_t x; memcpy(&x, q, 2); v = x; iv = x; break; }
        case 'c': { int8_t x = (int8_t)*q; v = x; iv = x; break; }
        default: v = *q; iv = *q; break;
        }
        a->f32[i] = (float)v;
        a->i64[i] = iv;
    }
done:
    if (st != COSY_OK) npy_free(a);
    return st;
}

cosy_status npy_load(const char *path, npy_array *a)
{
    memset(a, 0, sizeof *a);
    cosy_mapped_file f;
    COSY_TRY(cosy_file_map(path, &f));
    cosy_status st = parse(f, a);
    cosy_file_unmap(&f);
    return st;
}

cosy_status npy_parse(const void *data, size_t size, const char *name, npy_array *a)
{
    memset(a, 0, sizeof *a);
    cosy_mapped_file f;
    COSY_TRY(cosy_file_borrow(data, size, name, &f));
    cosy_status st = parse(f, a);
    cosy_file_unmap(&f);
    return st;
}

/* The npy_load_int check on an array just loaded from `name`. */
static cosy_status require_ints(const char *name, npy_array *a)
{
    if (a->first_bad_int >= 0) {
        int64_t i = a->first_bad_int;
        double v = a->f32[i];
        npy_free(a);
        return cosy_error(COSY_ERR_FORMAT, "%s: element %lld is %g, which is not an integer in the int64 range", name, (long long)i, v);
    }
    return COSY_OK;
}

cosy_status npy_load_int(const char *path, npy_array *a)
{
    COSY_TRY(npy_load(path, a));
    return require_ints(path, a);
}

cosy_status npy_parse_int(const void *data, size_t size, const char *name, npy_array *a)
{
    COSY_TRY(npy_parse(data, size, name, a));
    return require_ints(name, a);
}

void npy_free(npy_array *a)
{
    free(a->f32);
    free(a->i64);
    memset(a, 0, sizeof *a);
}

cosy_status npy_save_f32(const char *path, const float *data, const int64_t *shape, int ndim)
{
    char header[512];
    int64_t n = 1;
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < ndim; i++) {
        len += snprintf(header + len, sizeof header - (size_t)len, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
        n *= shape[i];
    }
    len += snprintf(header + len, sizeof header - (size_t)len, "), }");
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    FILE *fp = fopen(path, "wb");
    if (!fp) return cosy_error(COSY_ERR_IO, "%s: %s", path, strerror(errno));
    uint16_t hl = (uint16_t)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, fp);
    fwrite(&hl, 2, 1, fp);
    fwrite(header, 1, (size_t)len, fp);
    for (int i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    size_t wrote = fwrite(data, 4, (size_t)n, fp);
    if (fclose(fp) != 0 || wrote != (size_t)n) return cosy_error(COSY_ERR_IO, "%s: write failed", path);
    return COSY_OK;
}
