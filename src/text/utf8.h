/*
 * utf8.h — UTF-8 decoding/encoding and the Unicode character classes the text frontend needs.
 *
 * Decoding is strict (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). An invalid
 * sequence is reported with the length of its "maximal subpart" (Unicode §3.9, the rule Python's
 * errors='replace', Rust's from_utf8_lossy and the WHATWG decoder share), so replacing each
 * invalid piece by U+FFFD gives the same text those libraries give.
 *
 * Character classes come from utf8proc (Debian's libutf8proc, Unicode 15.0 in bookworm) —
 * general categories for the tokenizer's \p{L} / \p{N} and the P/S test of
 * is_only_punctuation — plus two small fixed sets that are properties rather than categories:
 * the regex engines' White_Space (what \s means in Oniguruma, the engine Hugging Face's
 * tokenizers use) and Python's str.isspace / str.isdigit, which CosyVoice's frontend relies on.
 *
 * Unicode versions differ between implementations: Node's ICU (what npm @huggingface/tokenizers
 * sees) is at Unicode 17, utf8proc 2.8 at 15.0. Only characters assigned after 15.0 (9,661 code
 * points, e.g. CJK extensions I and J) are classified differently: \p{L}/\p{N} there, unassigned
 * here. Every character assigned by Unicode 14 gets the same class in both.
 */
#ifndef COSY_UTF8_H
#define COSY_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"

#define COSY_UTF8_INVALID 0xFFFFFFFFu
#define COSY_UTF8_REPLACEMENT 0xFFFDu

/* Decodes the code point at s[0..n) (n >= 1). Returns the bytes consumed (1..4); *cp is the code
 * point, or COSY_UTF8_INVALID when those bytes are an invalid sequence's maximal subpart. */
size_t cosy_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Writes cp (<= 0x10FFFF, not a surrogate) as UTF-8; returns the length 1..4. */
int cosy_utf8_put(uint32_t cp, char out[4]);
/* COSY_OK if s[0..n) is valid UTF-8 (NUL bytes are allowed); otherwise COSY_ERR_INVALID_ARG with
 * a message giving the offset, which is also stored in *bad_offset (if not NULL). */
cosy_status cosy_utf8_check(const char *s, size_t n, size_t *bad_offset);
/* A malloc'd copy of s[0..n) with every invalid sequence replaced by U+FFFD, NUL-terminated;
 * *out_len (if not NULL) gets its length. NULL when out of memory. */
char *cosy_utf8_sanitize(const char *s, size_t n, size_t *out_len);
/* Number of code points in valid UTF-8 s[0..n) (Python's len()). */
size_t cosy_utf8_length(const char *s, size_t n);

/* A growable byte string (always NUL-terminated once anything was appended). */
typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: data is unusable */
} cosy_strbuf;

void cosy_strbuf_append(cosy_strbuf *b, const char *s, size_t n);
void cosy_strbuf_puts(cosy_strbuf *b, const char *s);
void cosy_strbuf_putcp(cosy_strbuf *b, uint32_t cp);
void cosy_strbuf_free(cosy_strbuf *b);

/* Unicode general category \p{L} (Lu Ll Lt Lm Lo) and \p{N} (Nd Nl No). */
int cosy_unicode_is_letter(uint32_t cp);
int cosy_unicode_is_number(uint32_t cp);
/* \p{P} or \p{S}. */
int cosy_unicode_is_punct_or_symbol(uint32_t cp);
/* The White_Space property (Oniguruma's and JavaScript's \p{White_Space}, regex \s). */
int cosy_unicode_is_white_space(uint32_t cp);
/* Python's str.isspace() for one character (bidi class WS/B/S or category Zs). */
int cosy_unicode_is_py_space(uint32_t cp);
/* Python's str.isdigit() for one character: -1 if not a digit; the value 0..9 for a decimal
 * digit (\p{Nd}, what Python's re \d matches); 10 for the other "digits" (superscripts,
 * circled digits, ...: Numeric_Type=Digit), which isdigit() accepts but \d does not. */
int cosy_unicode_py_digit(uint32_t cp);
/* CosyVoice's contains_chinese test: U+4E00..U+9FFF. */
static inline int cosy_unicode_is_cjk(uint32_t cp) { return cp >= 0x4E00 && cp <= 0x9FFF; }

/* NFC of valid UTF-8 s[0..n): a malloc'd NUL-terminated string, or NULL when s is already NFC
 * (checked cheaply for the common scripts) — then use s itself. Fails only on out of memory. */
cosy_status cosy_utf8_nfc(const char *s, size_t n, char **out, size_t *out_len);

#endif
