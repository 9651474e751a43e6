/*
 * split_long.c — cutting one over-long sentence into parts the LM can take (see normalize.h).
 *
 * The official splitter (frontend_utils.py split_paragraph) cuts only at sentence terminators, so a
 * text without them — 4,000 words, 12,000 Chinese characters, a pasted log line — is one LM call of
 * thousands of text tokens, whose speech and flow caches then grow without bound. We keep its
 * limits (token_max_n = 80, measured as it measures: Qwen tokens for en, characters for zh) and cut
 * a sentence longer than that into parts of at most 80, packed greedily from the left:
 *   1. after a clause mark (, ， 、 ； ： ; : and the full-width terminators, which the en path does
 *      not treat as terminators), the boundaries the reference itself uses with comma_split=True —
 *      unless the part would then be shorter than token_min_n (60) and a word boundary gives more;
 *   2. before white space between words (the space goes with the next word, as a Qwen token does);
 *   3. otherwise (an unbroken CJK or other run) a hard cut at the last code point that fits.
 * A cut never leaves a remainder of only punctuation and white space (it would be dropped as an
 * empty piece); parts that are only that (a long run of spaces or dots) are left out; the others
 * concatenate to exactly the sentence.
 */
#include "text/normalize.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static int is_clause_mark(uint32_t c)
{
    return c == ',' || c == ';' || c == ':' || c == 0xFF0C /* ， */ || c == 0x3001 /* 、 */ || c == 0xFF1B /* ； */ ||
           c == 0xFF1A /* ： */ || c == 0x3002 /* 。 */ || c == 0xFF01 /* ！ */ || c == 0xFF1F /* ？ */;
}

typedef struct {
    const cosy_tokenizer *tok;
    int zh;
    const char *s;
    size_t max_len;
} fit_ctx;

/* Whether s[from, to) is at most max_len long (tokens or characters). */
static cosy_status fits(const fit_ctx *c, size_t from, size_t to, int *ok, size_t *len)
{
    COSY_TRY(cosy_text_utt_length(c->tok, c->zh, c->s + from, to - from, len));
    *ok = *len <= c->max_len;
    return COSY_OK;
}

/* The largest candidate end b (ascending cand[0..k)) with s[from, b) fitting, or k if none fits.
 * Lengths grow with b (exactly so at word boundaries; nearly so inside a BPE word), so a galloping
 * search from the last candidate that almost surely fits (no more bytes than max_len: a token or a
 * character usually covers at least one byte) needs only a few tokenizations of about a part's
 * length. Not surely: the tokenizer sees the text in NFC, which can lengthen it (U+FB2C is 3 bytes,
 * 6 after NFC), so when that candidate does not fit the search bisects below it instead.
 * Whatever it returns was measured to fit. */
static cosy_status last_fit(const fit_ctx *c, size_t from, const size_t *cand, size_t k, size_t *best, size_t *best_len)
{
    *best = k;
    *best_len = 0;
    if (k == 0) return COSY_OK;
    size_t lo = k, hi = k; /* lo: index known to fit (k = none); hi: index known not to (k = none known) */
    size_t i = 0;
    while (i < k && cand[i] - from <= c->max_len) i++;
    size_t len;
    int ok;
    if (i > 0) {
        COSY_TRY(fits(c, from, cand[i - 1], &ok, &len));
        if (ok) {
            lo = i - 1;
            *best_len = len;
        } else {
            hi = i - 1;
        }
    }
    /* gallop: lo+1, lo+2, lo+4, ... until one does not fit (unless one is known not to) */
    size_t step = 1, base = lo == k ? 0 : lo + 1;
    for (size_t j = base; hi == k && j < k; j = base + step, step *= 2) {
        COSY_TRY(fits(c, from, cand[j], &ok, &len));
        if (!ok) {
            hi = j;
            break;
        }
        lo = j;
        *best_len = len;
    }
    /* bisect between lo (fits, or none) and hi (does not fit, or the end) */
    size_t a = lo == k ? 0 : lo + 1;
    while (a < hi) {
        size_t mid = a + (hi - a) / 2;
        COSY_TRY(fits(c, from, cand[mid], &ok, &len));
        if (ok) {
            lo = mid;
            *best_len = len;
            a = mid + 1;
        } else {
            hi = mid;
        }
    }
    *best = lo;
    return COSY_OK;
}

cosy_status cosy_text_split_long(const cosy_tokenizer *tok, int zh, const char *s, size_t n, size_t max_len, size_t min_len,
                                 cosy_text_list *out)
{
    if (max_len < 4) return cosy_error(COSY_ERR_INVALID_ARG, "text: a part limit of %zu is below one character's tokens", max_len);
    if (!zh && !tok) return cosy_error(COSY_ERR_INVALID_ARG, "text: splitting English text needs the tokenizer");
    size_t whole; /* measured even for n <= max_len bytes: NFC can make the text longer (see last_fit) */
    COSY_TRY(cosy_text_utt_length(tok, zh, s, n, &whole));
    if (whole <= max_len) return cosy_text_list_push(out, s, n);

    /* the start of the last speakable character: no cut may leave only punctuation after it */
    size_t tail = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) return cosy_error(COSY_ERR_INVALID_ARG, "text: invalid UTF-8 at byte %zu", i);
        if (!cosy_unicode_is_punct_or_symbol(cp) && !cosy_unicode_is_py_space(cp)) tail = i;
        i += k;
    }
    /* a part of max_len tokens is rarely longer than 16 bytes a token; candidates past that window
     * are not considered (a part may then be shorter than it could be, never longer) */
    size_t window = zh ? 4 * max_len : 16 * max_len;
    size_t *clause = malloc(sizeof *clause * (window + 2));
    size_t *word = malloc(sizeof *word * (window + 2));
    size_t *point = malloc(sizeof *point * (window + 2));
    size_t *any = malloc(sizeof *any * (window + 2));
    cosy_status st = clause && word && point && any ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "text: out of memory");
    fit_ctx c = {tok, zh, s, max_len};
    size_t pos = 0;
    while (st == COSY_OK && pos < n) {
        /* candidate ends in (pos, pos + window], each leaving something speakable (or nothing) */
        size_t nc = 0, nw = 0, np = 0, na = 0, lim = pos + window < n ? pos + window : n;
        uint32_t prev = 0;
        for (size_t i = pos; i < lim;) {
            uint32_t cp;
            size_t k = cosy_utf8_next(s + i, n - i, &cp);
            if (i > pos) any[na++] = i;
            if (i > pos && i <= tail) {
                point[np++] = i;
                if (cosy_unicode_is_py_space(cp) && !cosy_unicode_is_py_space(prev)) word[nw++] = i;
                if (is_clause_mark(prev)) clause[nc++] = i;
            }
            prev = cp;
            i += k;
        }
        if (lim == n) { /* the whole rest is a candidate at every level */
            point[np++] = n;
            any[na++] = n;
            word[nw++] = n;
            clause[nc++] = n;
        }
        size_t bc, bw, bp, lc, lw, lp, end = 0;
        st = last_fit(&c, pos, clause, nc, &bc, &lc);
        if (st == COSY_OK) end = bc < nc ? clause[bc] : 0;
        if (st == COSY_OK && (!end || lc < min_len)) {
            st = last_fit(&c, pos, word, nw, &bw, &lw);
            if (st == COSY_OK && bw < nw && word[bw] > end) end = word[bw];
        }
        if (st == COSY_OK && !end) {
            st = last_fit(&c, pos, point, np, &bp, &lp);
            if (st == COSY_OK && bp < np) end = point[bp];
        }
        if (st == COSY_OK && !end) { /* only punctuation after the last speakable character fits */
            st = last_fit(&c, pos, any, na, &bp, &lp);
            if (st == COSY_OK && bp < na) end = any[bp];
        }
        if (st == COSY_OK && !end) /* unreachable at the engine's 80: one code point is at most 18 bytes after NFC */
            st = cosy_error(COSY_ERR_INTERNAL, "text: no cut fits %zu at byte %zu", max_len, pos);
        /* a part with nothing to say (a long run of spaces or punctuation) would be an LM call of its own */
        if (st == COSY_OK && !cosy_text_is_silent(s + pos, end - pos)) st = cosy_text_list_push(out, s + pos, end - pos);
        pos = end;
    }
    free(clause);
    free(word);
    free(point);
    free(any);
    return st;
}
