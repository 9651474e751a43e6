/* utf8.c — UTF-8 coding and Unicode classes for the text frontend (see utf8.h). */
#include "text/utf8.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

size_t cosy_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const uint8_t *p = (const uint8_t *)s;
    uint8_t b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    /* Unicode Table 3-7: the lead byte fixes the count and the range of the first continuation */
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t c;
    if (b >= 0xC2 && b <= 0xDF) { need = 1; c = b & 0x1F; }
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        c = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        c = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *cp = COSY_UTF8_INVALID; /* 80..C1, F5..FF never start a sequence */
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || p[i] < lo || p[i] > hi) {
            *cp = COSY_UTF8_INVALID; /* the maximal subpart: lead + the continuations that fit */
            return i;
        }
        c = c << 6 | (p[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = c;
    return need + 1;
}

int cosy_utf8_put(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

cosy_status cosy_utf8_check(const char *s, size_t n, size_t *bad_offset)
{
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t k = cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) {
            if (bad_offset) *bad_offset = i;
            return cosy_error(COSY_ERR_INVALID_ARG, "invalid UTF-8 at byte %zu", i);
        }
        i += k;
    }
    return COSY_OK;
}

char *cosy_utf8_sanitize(const char *s, size_t n, size_t *out_len)
{
    /* each invalid byte becomes at most 3 bytes */
    char *out = malloc(n * 3 + 1);
    if (!out) return NULL;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) o += (size_t)cosy_utf8_put(COSY_UTF8_REPLACEMENT, out + o);
        else { memcpy(out + o, s + i, k); o += k; }
        i += k;
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

size_t cosy_utf8_length(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += ((uint8_t)s[i] & 0xC0) != 0x80;
    return count;
}

static void strbuf_reserve(cosy_strbuf *b, size_t extra)
{
    if (b->failed) return;
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { b->failed = 1; return; }
    b->data = d;
    b->cap = cap;
}

void cosy_strbuf_append(cosy_strbuf *b, const char *s, size_t n)
{
    strbuf_reserve(b, n);
    if (b->failed) return;
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void cosy_strbuf_puts(cosy_strbuf *b, const char *s) { cosy_strbuf_append(b, s, strlen(s)); }

void cosy_strbuf_putcp(cosy_strbuf *b, uint32_t cp)
{
    char buf[4];
    cosy_strbuf_append(b, buf, (size_t)cosy_utf8_put(cp, buf));
}

void cosy_strbuf_free(cosy_strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

int cosy_unicode_is_letter(uint32_t cp)
{
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

int cosy_unicode_is_number(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

int cosy_unicode_is_punct_or_symbol(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_SO;
}

int cosy_unicode_is_white_space(uint32_t cp)
{
    /* PropList.txt White_Space (unchanged since Unicode 6.3) */
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int cosy_unicode_is_py_space(uint32_t cp)
{
    /* White_Space plus U+001C..U+001F, whose bidi class is B or S (CPython's _PyUnicode_IsWhitespace) */
    return cosy_unicode_is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

/* Characters with Numeric_Type=Digit (not Decimal): str.isdigit() is true, \d does not match.
 * From CPython's unicodedata (Unicode 14.0): every c with c.isdigit() and category != 'Nd'. */
static const uint32_t py_other_digits[][2] = {
    {0x00B2, 0x00B3}, {0x00B9, 0x00B9}, {0x1369, 0x1371}, {0x19DA, 0x19DA}, {0x2070, 0x2070},
    {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2460, 0x2468}, {0x2474, 0x247C}, {0x2488, 0x2490},
    {0x24EA, 0x24EA}, {0x24F5, 0x24FD}, {0x24FF, 0x24FF}, {0x2776, 0x277E}, {0x2780, 0x2788},
    {0x278A, 0x2792}, {0x10A40, 0x10A43}, {0x10E60, 0x10E68}, {0x11052, 0x1105A}, {0x1F100, 0x1F10A},
};

int cosy_unicode_py_digit(uint32_t cp)
{
    if (cp < 0x80) return (cp >= '0' && cp <= '9') ? (int)(cp - '0') : -1;
    if (utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND) {
        /* decimal digits come in aligned runs of ten, 0..9 (a Unicode stability guarantee), and
         * adjacent runs are contiguous, so the value is the distance from the run's start mod 10 */
        uint32_t start = cp;
        while (start > 0 && utf8proc_category((utf8proc_int32_t)(start - 1)) == UTF8PROC_CATEGORY_ND) start--;
        return (int)((cp - start) % 10);
    }
    for (size_t i = 0; i < sizeof py_other_digits / sizeof py_other_digits[0]; i++)
        if (cp >= py_other_digits[i][0] && cp <= py_other_digits[i][1]) return 10;
    return -1;
}

/* Code points that are NFC_Quick_Check=Yes with canonical combining class 0 in every Unicode
 * version: a string made only of them is already NFC (UAX #15 quick check). The common scripts
 * of zh/en text, so the library call is skipped for nearly all input. */
static int nfc_stable(uint32_t cp)
{
    return cp < 0x300 || (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3000 && cp <= 0x3029) ||
           (cp >= 0x3041 && cp <= 0x3096) || (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0xFF01 && cp <= 0xFF5E) ||
           (cp >= 0x2010 && cp <= 0x2027) || (cp >= 0xAC00 && cp <= 0xD7A3);
}

cosy_status cosy_utf8_nfc(const char *s, size_t n, char **out, size_t *out_len)
{
    *out = NULL;
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t k = cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) return cosy_error(COSY_ERR_INVALID_ARG, "invalid UTF-8 at byte %zu", i);
        if (!nfc_stable(cp)) break;
        i += k;
    }
    if (i == n) return COSY_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) {
        free(dst);
        if (r == UTF8PROC_ERROR_NOMEM) return cosy_error(COSY_ERR_NOMEM, "out of memory");
        return cosy_error(COSY_ERR_INVALID_ARG, "NFC: %s", utf8proc_errmsg(r));
    }
    *out = (char *)dst;
    *out_len = (size_t)r;
    return COSY_OK;
}
