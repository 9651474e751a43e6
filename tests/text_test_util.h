/*
 * text_test_util.h — helpers shared by the text frontend tests: reading the gzip'd test data of
 * tests/data/tokenizer, unpacking the Qwen2 tokenizer files, and decoding the JSON-string lines
 * of the corpora (by hand: cJSON stops strings at "\u0000", which the corpus contains).
 */
#ifndef COSY_TEXT_TEST_UTIL_H
#define COSY_TEXT_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "test.h"
#include "text/utf8.h"

/* The whole (gunzipped) file, NUL-terminated; NULL on failure. */
static inline char *text_test_read_gz(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *p = realloc(buf, cap * 2 + 1);
            if (!p) { free(buf); buf = NULL; break; }
            buf = p;
            cap *= 2;
        }
        int r = gzread(f, buf + n, (unsigned)(cap - n));
        if (r < 0) { free(buf); buf = NULL; break; }
        if (r == 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* Gunzips src into dst; 0 on success. */
static inline int text_test_gunzip(const char *src, const char *dst)
{
    size_t n;
    char *d = text_test_read_gz(src, &n);
    if (!d) return -1;
    FILE *f = fopen(dst, "wb");
    int ok = f && fwrite(d, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(d);
    return ok ? 0 : -1;
}

/* The Qwen2 tokenizer directory (vocab.json + merges.txt + tokenizer_config.json) unpacked into
 * the build's scratch directory; returns its path (static). */
static inline const char *text_test_qwen2_dir(void)
{
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s", test_tmp("qwen2"));
    mkdir(dir, 0755);
    char src[1200], dst[1200];
    const char *files[] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/tokenizer/qwen2/%s.gz", COSY_TEST_DATA, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (text_test_gunzip(src, dst)) return NULL;
    }
    snprintf(src, sizeof src, "%s/tokenizer/qwen2/tokenizer_config.json", COSY_TEST_DATA);
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
    size_t n;
    char *cfg = text_test_read_gz(src, &n); /* gzread reads plain files too */
    FILE *f = cfg ? fopen(dst, "wb") : NULL;
    int ok = f && fwrite(cfg, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(cfg);
    return ok ? dir : NULL;
}

static inline int text_test_hex(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Decodes the JSON string starting at *p (which points at its opening quote) into b; advances *p
 * past the closing quote. Returns 0 on success. */
static inline int text_test_json_string(const char **p, cosy_strbuf *b)
{
    const char *s = *p;
    if (*s != '"') return -1;
    s++;
    b->len = 0;
    cosy_strbuf_append(b, "", 0);
    while (*s && *s != '"') {
        if (*s != '\\') {
            const char *e = s;
            while (*e && *e != '"' && *e != '\\') e++;
            cosy_strbuf_append(b, s, (size_t)(e - s));
            s = e;
            continue;
        }
        s++;
        char c = *s++;
        switch (c) {
        case '"': cosy_strbuf_append(b, "\"", 1); break;
        case '\\': cosy_strbuf_append(b, "\\", 1); break;
        case '/': cosy_strbuf_append(b, "/", 1); break;
        case 'b': cosy_strbuf_append(b, "\b", 1); break;
        case 'f': cosy_strbuf_append(b, "\f", 1); break;
        case 'n': cosy_strbuf_append(b, "\n", 1); break;
        case 'r': cosy_strbuf_append(b, "\r", 1); break;
        case 't': cosy_strbuf_append(b, "\t", 1); break;
        case 'u': {
            uint32_t v, lo;
            if (text_test_hex(s, &v)) return -1;
            s += 4;
            if (v >= 0xD800 && v <= 0xDBFF && s[0] == '\\' && s[1] == 'u' && !text_test_hex(s + 2, &lo) && lo >= 0xDC00 &&
                lo <= 0xDFFF) {
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
            if (v >= 0xD800 && v <= 0xDFFF) return -1;
            cosy_strbuf_putcp(b, v);
            break;
        }
        default: return -1;
        }
    }
    if (*s != '"') return -1;
    *p = s + 1;
    return b->failed ? -1 : 0;
}

/* Splits buf into lines in place; returns the count, *lines malloc'd. */
static inline size_t text_test_lines(char *buf, size_t len, char ***lines)
{
    size_t n = 0, cap = 1024;
    *lines = malloc(cap * sizeof **lines);
    char *p = buf, *end = buf + len;
    while (p < end && *lines) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl) *nl = 0;
        if (n == cap) {
            char **q = realloc(*lines, cap * 2 * sizeof *q);
            if (!q) break;
            *lines = q;
            cap *= 2;
        }
        (*lines)[n++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}

#endif
