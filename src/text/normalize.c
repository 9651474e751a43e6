/*
 * normalize.c — CosyVoice's text_normalize without ttsfrd/wetext, and its sentence splitter
 * (see normalize.h for the rule chain). Strings are UTF-8; "characters" are code points, as in
 * Python, so lengths and indices match the reference's.
 */
#define _GNU_SOURCE /* memmem */
#include "text/normalize.h"
#include "text/tn.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

/* ---- lists and code point arrays ---- */

cosy_status cosy_text_list_push(cosy_text_list *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **p = realloc(l->items, (size_t)cap * sizeof *p);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "text: out of memory");
        l->items = p;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return cosy_error(COSY_ERR_NOMEM, "text: out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    l->items[l->n++] = c;
    return COSY_OK;
}

void cosy_text_list_free(cosy_text_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static cosy_status nomem(void) { return cosy_error(COSY_ERR_NOMEM, "text: out of memory"); }

static cosy_status buf_status(const cosy_strbuf *b) { return b->failed ? nomem() : COSY_OK; }

/* Decodes valid UTF-8 into a malloc'd code point array. */
static cosy_status to_cps(const char *s, size_t n, uint32_t **out, size_t *count)
{
    uint32_t *cps = malloc((n + 1) * sizeof *cps);
    if (!cps) return nomem();
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) {
            free(cps);
            return cosy_error(COSY_ERR_INVALID_ARG, "text: invalid UTF-8");
        }
        cps[k++] = cp;
    }
    *out = cps;
    *count = k;
    return COSY_OK;
}

static void put_cps(cosy_strbuf *b, const uint32_t *cps, size_t n)
{
    for (size_t i = 0; i < n; i++) cosy_strbuf_putcp(b, cps[i]);
}

/* Python's str.replace(old, new): non-overlapping, left to right. On valid UTF-8 a byte match
 * of a valid pattern is a character match. */
static void replace_all(cosy_strbuf *b, const char *from, const char *to)
{
    if (b->failed || !b->data) return;
    size_t fl = strlen(from), tl = strlen(to);
    if (!memmem(b->data, b->len, from, fl)) return;
    cosy_strbuf r = {0};
    const char *p = b->data, *end = b->data + b->len;
    for (;;) {
        const char *hit = memmem(p, (size_t)(end - p), from, fl);
        if (!hit) break;
        cosy_strbuf_append(&r, p, (size_t)(hit - p));
        cosy_strbuf_append(&r, to, tl);
        p = hit + fl;
    }
    cosy_strbuf_append(&r, p, (size_t)(end - p));
    if (r.failed) {
        cosy_strbuf_free(&r);
        b->failed = 1;
        return;
    }
    cosy_strbuf_free(b);
    *b = r;
}

/* ---- frontend_utils.py ---- */

int cosy_text_contains_chinese(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += cosy_utf8_next(s + i, n - i, &cp);
        if (cosy_unicode_is_cjk(cp)) return 1;
    }
    return 0;
}

int cosy_text_is_only_punctuation(const char *s, size_t n)
{
    /* regex.fullmatch(r'^[\p{P}\p{S}]*$', text) */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID || !cosy_unicode_is_punct_or_symbol(cp)) return 0;
    }
    return 1;
}

int cosy_text_is_silent(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) return 0;
        if (!cosy_unicode_is_punct_or_symbol(cp) && !cosy_unicode_is_py_space(cp)) return 0;
    }
    return 1;
}

cosy_status cosy_text_replace_blank(const char *s, size_t n, cosy_strbuf *out)
{
    /* keep a space only between two ASCII non-space characters; like the reference, the
     * character before index 0 is the last one (Python's text[-1]); a space at the very end has
     * no right neighbour (the reference would raise there) and is dropped */
    uint32_t *t;
    size_t k;
    COSY_TRY(to_cps(s, n, &t, &k));
    for (size_t i = 0; i < k; i++) {
        if (t[i] == ' ') {
            uint32_t prev = i > 0 ? t[i - 1] : t[k - 1];
            int keep = i + 1 < k && t[i + 1] < 0x80 && t[i + 1] != ' ' && prev < 0x80 && prev != ' ';
            if (!keep) continue;
        }
        cosy_strbuf_putcp(out, t[i]);
    }
    free(t);
    return buf_status(out);
}

/* inflect's word tables (inflect/__init__.py: unit, teen, ten, mill) */
static const char *const unit_words[] = {"", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
static const char *const teen_words[] = {"ten", "eleven", "twelve", "thirteen", "fourteen",
                                          "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const ten_words[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const mill_words[] = {" ", " thousand", " million", " billion", " trillion", " quadrillion",
                                         " quintillion", " sextillion", " septillion", " octillion", " nonillion",
                                         " decillion"};
#define N_MILL 12

/* engine.tenfn; returns 0 where inflect raises (mill index out of range) */
static int tenfn(cosy_strbuf *b, int tens, int units, int mindex)
{
    if (mindex >= N_MILL) return 0;
    if (tens != 1) {
        cosy_strbuf_puts(b, ten_words[tens]);
        if (tens && units) cosy_strbuf_puts(b, "-");
        cosy_strbuf_puts(b, unit_words[units]);
    } else {
        cosy_strbuf_puts(b, teen_words[units]);
    }
    cosy_strbuf_puts(b, mill_words[mindex]);
    return 1;
}

/* engine.hundfn */
static int hundfn(cosy_strbuf *b, int h, int t, int u, int mindex)
{
    if (!h && !t && !u) return 1;
    if (mindex >= N_MILL) return 0;
    if (h) {
        cosy_strbuf_puts(b, unit_words[h]);
        cosy_strbuf_puts(b, " hundred");
        if (t || u) cosy_strbuf_puts(b, " and ");
    }
    tenfn(b, t, u, 0);
    cosy_strbuf_puts(b, mill_words[mindex]);
    cosy_strbuf_puts(b, ", ");
    return 1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* _handle_chunk's clean-up of enword's output (group 0, first chunk). */
static void chunk_cleanup(const char *w, size_t n, cosy_strbuf *out)
{
    if (n >= 2 && w[n - 2] == ',' && w[n - 1] == ' ') n -= 2;
    /* WHITESPACES_COMMA: \s+, -> , */
    cosy_strbuf a = {0};
    for (size_t i = 0; i < n;) {
        if (is_ws(w[i])) {
            size_t j = i;
            while (j < n && is_ws(w[j])) j++;
            if (j < n && w[j] == ',') { i = j; continue; }
            cosy_strbuf_append(&a, w + i, j - i);
            i = j;
        } else {
            cosy_strbuf_append(&a, w + i, 1);
            i++;
        }
    }
    /* COMMA_WORD: ", (\S+)\s+\Z" -> " and \1" */
    cosy_strbuf c = {0};
    const char *s = a.data ? a.data : "";
    size_t len = a.len, e = len;
    while (e > 0 && is_ws(s[e - 1])) e--;
    size_t bgn = e;
    while (bgn > 0 && !is_ws(s[bgn - 1])) bgn--;
    if (e < len && bgn < e && bgn >= 2 && s[bgn - 2] == ',' && s[bgn - 1] == ' ') {
        cosy_strbuf_append(&c, s, bgn - 2);
        cosy_strbuf_puts(&c, " and ");
        cosy_strbuf_append(&c, s + bgn, e - bgn);
    } else {
        cosy_strbuf_append(&c, s, len);
    }
    /* WHITESPACES: \s+ -> ' ', then strip() */
    s = c.data ? c.data : "";
    len = c.len;
    size_t i = 0;
    while (i < len && is_ws(s[i])) i++;
    while (len > i && is_ws(s[len - 1])) len--;
    int in_ws = 0;
    for (; i < len; i++) {
        if (is_ws(s[i])) { in_ws = 1; continue; }
        if (in_ws) cosy_strbuf_puts(out, " ");
        in_ws = 0;
        cosy_strbuf_append(out, s + i, 1);
    }
    if (a.failed || c.failed) out->failed = 1;
    if (!out->data) cosy_strbuf_append(out, "", 0);
    cosy_strbuf_free(&a);
    cosy_strbuf_free(&c);
}

cosy_status cosy_text_number_to_words(const char *digits, size_t n, cosy_strbuf *out)
{
    uint32_t *t;
    size_t k;
    COSY_TRY(to_cps(digits, n, &t, &k));
    /* NON_DIGIT.sub("", chunk): \D drops the isdigit() characters that are not decimal digits */
    int *d = malloc((k + 1) * sizeof *d);
    int *ascii_zero = malloc((k + 1) * sizeof *ascii_zero);
    if (!d || !ascii_zero) {
        free(t);
        free(d);
        free(ascii_zero);
        return nomem();
    }
    size_t nd = 0;
    for (size_t i = 0; i < k; i++) {
        int v = cosy_unicode_py_digit(t[i]);
        if (v < 0 || v > 9) continue;
        ascii_zero[nd] = t[i] == '0';
        d[nd++] = v;
    }
    free(t);
    if (nd == 0) { d[0] = 0; ascii_zero[0] = 1; nd = 1; } /* an empty chunk becomes "0" */

    /* enword(chunk, group=0) */
    int all_zero = 1;
    for (size_t i = 0; i + 1 < nd; i++) all_zero &= d[i] == 0;
    cosy_strbuf w = {0};
    int ok = 1;
    if (all_zero && d[nd - 1] == 0) cosy_strbuf_puts(&w, "zero");
    else if (all_zero && d[nd - 1] == 1) cosy_strbuf_puts(&w, "one");
    else {
        size_t s = 0;
        while (s < nd && ascii_zero[s]) s++; /* num.lstrip("0"): ASCII zeros only */
        /* the regex substitutions consume the digits from the right: groups of three
         * (THREE_DIGITS_WORD, repeatedly), then two, then one, each with the next mill index */
        size_t len = nd - s, n_groups = len / 3;
        cosy_strbuf *parts = calloc(n_groups + 2, sizeof *parts);
        if (!parts) ok = -1;
        int mill = 0;
        size_t np = 0, end = nd;
        for (size_t g = 0; ok > 0 && g < n_groups; g++, end -= 3)
            ok = hundfn(&parts[np++], d[end - 3], d[end - 2], d[end - 1], mill++);
        if (ok > 0 && end - s == 2) {
            ok = tenfn(&parts[np], d[s], d[s + 1], mill);
            cosy_strbuf_puts(&parts[np++], ", ");
        } else if (ok > 0 && end - s == 1) {
            if (mill >= N_MILL) ok = 0;
            else {
                cosy_strbuf_puts(&parts[np], unit_words[d[s]]);
                cosy_strbuf_puts(&parts[np], mill_words[mill]);
                cosy_strbuf_puts(&parts[np++], ", ");
            }
        }
        for (size_t i = np; ok > 0 && i-- > 0;)
            if (parts[i].len) cosy_strbuf_append(&w, parts[i].data, parts[i].len);
        for (size_t i = 0; parts && i < n_groups + 2; i++) cosy_strbuf_free(&parts[i]);
        free(parts);
        if (ok == 0) {
            /* inflect raises NumOutOfRangeError here, and so does the reference's text_normalize:
             * refused the same way (no reading of our own) */
            cosy_strbuf_free(&w);
            free(d);
            free(ascii_zero);
            return cosy_error(COSY_ERR_INVALID_ARG,
                              "text: the number \"%.*s%s\" (%zu digits) is too large to read out (10^36 or more; the reference "
                              "raises NumOutOfRangeError)", n > 24 ? 24 : (int)n, digits, n > 24 ? "..." : "", nd);
        }
    }
    free(d);
    free(ascii_zero);
    if (ok < 0 || w.failed) {
        cosy_strbuf_free(&w);
        return nomem();
    }
    chunk_cleanup(w.data ? w.data : "", w.len, out);
    cosy_strbuf_free(&w);
    return buf_status(out);
}

cosy_status cosy_text_spell_out_number(const char *s, size_t n, cosy_strbuf *out)
{
    size_t i = 0, run = (size_t)-1;
    while (i < n) {
        uint32_t cp;
        size_t k = cosy_utf8_next(s + i, n - i, &cp);
        if (cp == COSY_UTF8_INVALID) return cosy_error(COSY_ERR_INVALID_ARG, "text: invalid UTF-8");
        if (cosy_unicode_py_digit(cp) >= 0) {
            if (run == (size_t)-1) run = i;
        } else {
            if (run != (size_t)-1) COSY_TRY(cosy_text_number_to_words(s + run, i - run, out));
            run = (size_t)-1;
            cosy_strbuf_append(out, s + i, k);
        }
        i += k;
    }
    if (run != (size_t)-1) COSY_TRY(cosy_text_number_to_words(s + run, n - run, out));
    if (!out->data) cosy_strbuf_append(out, "", 0);
    return buf_status(out);
}

static int is_terminator(uint32_t c, int zh)
{
    if (zh)
        return c == 0x3002 /* 。 */ || c == 0xFF1F /* ？ */ || c == 0xFF01 /* ！ */ || c == 0xFF1B /* ； */ ||
               c == 0xFF1A /* ： */ || c == 0x3001 /* 、 */ || c == '.' || c == '?' || c == '!' || c == ';';
    return c == '.' || c == '?' || c == '!' || c == ';' || c == ':';
}

cosy_status cosy_text_utt_length(const cosy_tokenizer *tok, int zh, const char *s, size_t n, size_t *len)
{
    if (zh) {
        *len = cosy_utf8_length(s, n);
        return COSY_OK;
    }
    if (!tok) return cosy_error(COSY_ERR_INVALID_ARG, "text: splitting English text needs the tokenizer");
    return cosy_tokenizer_count(tok, s, n, len);
}

/* Whether utt_length(s) > limit. A token covers at least one byte, so text of at most `limit`
 * bytes cannot exceed it: that answer needs no tokenization. */
static cosy_status utt_longer(const cosy_tokenizer *tok, int zh, const char *s, size_t n, size_t limit, int *longer)
{
    size_t len;
    if (n <= limit) {
        *longer = 0;
        return COSY_OK;
    }
    COSY_TRY(cosy_text_utt_length(tok, zh, s, n, &len));
    *longer = len > limit;
    return COSY_OK;
}

/* split_paragraph raises (IndexError) on a closing quote that follows a terminator before any sentence
 * exists: text that opens with terminators and then '"' or '”'. The reference runs split_paragraph with
 * split=False too, so the unsplit text is refused the same way. */
static cosy_status quote_without_sentence(const char *text, size_t n, int zh)
{
    uint32_t *t;
    size_t k, i = 0;
    COSY_TRY(to_cps(text, n, &t, &k));
    while (i < k && is_terminator(t[i], zh)) i++;
    int bad = i > 0 && i < k && (t[i] == '"' || t[i] == 0x201D);
    free(t);
    if (bad)
        return cosy_error(COSY_ERR_INVALID_ARG,
                          "text: a closing quote right after a sentence end with no sentence before it (character %zu of the normalised text; the "
                          "reference raises IndexError)", i + 1);
    return COSY_OK;
}

/* split_paragraph's defaults, as text_normalize calls it */
enum { TOKEN_MAX_N = 80, TOKEN_MIN_N = 60, MERGE_LEN = 20 };

/* split_paragraph; with bound, sentences longer than TOKEN_MAX_N are cut first (normalize.h) */
static cosy_status split_paragraph(const cosy_tokenizer *tok, const char *text, size_t n, int zh, int bound, cosy_text_list *out)
{
    if (n == 0) return COSY_OK; /* the reference raises IndexError on text[-1] */
    if (!zh && !tok) return cosy_error(COSY_ERR_INVALID_ARG, "text: splitting English text needs the tokenizer");
    uint32_t *t;
    size_t k;
    COSY_TRY(to_cps(text, n, &t, &k));
    if (!is_terminator(t[k - 1], zh)) t[k++] = zh ? 0x3002 : '.'; /* to_cps left room for one */

    /* sentences: each ends at a terminator; a closing quote right after one joins it */
    cosy_text_list utts = {0};
    cosy_status st = COSY_OK;
    cosy_strbuf b = {0};
    size_t start = 0;
    for (size_t i = 0; i < k && st == COSY_OK; i++) {
        if (!is_terminator(t[i], zh)) continue;
        if (i > start) {
            b.len = 0;
            put_cps(&b, t + start, i - start + 1);
            st = buf_status(&b);
            if (st == COSY_OK) st = cosy_text_list_push(&utts, b.data, b.len);
        }
        if (st == COSY_OK && i + 1 < k && (t[i + 1] == '"' || t[i + 1] == 0x201D)) {
            if (utts.n == 0) { /* the reference pops from an empty list: IndexError, refused the same way */
                st = cosy_error(COSY_ERR_INVALID_ARG,
                                "text: a closing quote right after a sentence end with no sentence before it (character %zu of the normalised text; the "
                                "reference raises IndexError)", i + 2);
                break;
            } else {
                b.len = 0;
                cosy_strbuf_puts(&b, utts.items[utts.n - 1]);
                cosy_strbuf_putcp(&b, t[i + 1]);
                st = buf_status(&b);
                if (st == COSY_OK) {
                    free(utts.items[--utts.n]);
                    st = cosy_text_list_push(&utts, b.data, b.len);
                }
            }
            start = i + 2;
        } else {
            start = i + 1;
        }
    }
    free(t);

    /* ours: a sentence longer than token_max_n becomes parts of at most token_max_n (split_long.c);
     * cont[u] marks the parts after a sentence's first */
    cosy_text_list parts = {0};
    unsigned char *cont = NULL;
    for (int u = 0; u < utts.n && st == COSY_OK; u++) {
        int first = parts.n;
        if (!bound) {
            st = cosy_text_list_push(&parts, utts.items[u], strlen(utts.items[u]));
            continue;
        }
        st = cosy_text_split_long(tok, zh, utts.items[u], strlen(utts.items[u]), TOKEN_MAX_N, TOKEN_MIN_N, &parts);
        if (st == COSY_OK && parts.n - first > 1 && !cont) {
            cont = calloc((size_t)parts.cap, 1);
            if (!cont) st = nomem();
        }
        if (st == COSY_OK && cont) {
            unsigned char *c = realloc(cont, (size_t)parts.cap);
            if (!c) st = nomem();
            else cont = c;
            for (int i = first; st == COSY_OK && i < parts.n; i++) cont[i] = i > first;
        }
    }
    cosy_text_list_free(&utts);
    utts = parts;

    /* greedy merge into chunks of about token_min_n..token_max_n; the parts of one long sentence are
     * joined again only while the join stays within token_max_n */
    cosy_strbuf cur = {0}, both = {0};
    cosy_strbuf_append(&cur, "", 0);
    int cur_cont = 0; /* cur starts with a long sentence's later part */
    for (int u = 0; u < utts.n && st == COSY_OK; u++) {
        both.len = 0;
        cosy_strbuf_append(&both, cur.data, cur.len);
        cosy_strbuf_puts(&both, utts.items[u]);
        int both_long = 0, cur_long = 0, is_cont = cont && cont[u];
        st = buf_status(&both);
        if (st == COSY_OK) st = utt_longer(tok, zh, both.data, both.len, TOKEN_MAX_N, &both_long);
        if (st == COSY_OK && both_long && !is_cont) st = utt_longer(tok, zh, cur.data, cur.len, TOKEN_MIN_N, &cur_long);
        if (st == COSY_OK && both_long && (cur_long || (is_cont && cur.len > 0))) {
            st = cosy_text_list_push(out, cur.data, cur.len);
            cur.len = 0;
            cur.data[0] = 0;
        }
        if (st == COSY_OK) {
            if (cur.len == 0) cur_cont = is_cont;
            cosy_strbuf_puts(&cur, utts.items[u]);
            st = buf_status(&cur);
        }
    }
    free(cont);
    if (st == COSY_OK && cur.len > 0) {
        /* should_merge(cur) only matters when there is a previous chunk to join */
        int long_enough = 1;
        if (out->n > 0) st = utt_longer(tok, zh, cur.data, cur.len, MERGE_LEN - 1, &long_enough);
        if (st == COSY_OK && !long_enough && out->n > 0 && cur_cont) {
            /* a long sentence's short last part: joined only within token_max_n */
            b.len = 0;
            cosy_strbuf_puts(&b, out->items[out->n - 1]);
            cosy_strbuf_append(&b, cur.data, cur.len);
            st = buf_status(&b);
            if (st == COSY_OK) st = utt_longer(tok, zh, b.data, b.len, TOKEN_MAX_N, &long_enough);
        }
        if (st == COSY_OK && !long_enough && out->n > 0) {
            b.len = 0;
            cosy_strbuf_puts(&b, out->items[out->n - 1]);
            cosy_strbuf_append(&b, cur.data, cur.len);
            st = buf_status(&b);
            if (st == COSY_OK) {
                free(out->items[--out->n]);
                st = cosy_text_list_push(out, b.data, b.len);
            }
        } else if (st == COSY_OK) {
            st = cosy_text_list_push(out, cur.data, cur.len);
        }
    }
    cosy_strbuf_free(&cur);
    cosy_strbuf_free(&both);
    cosy_strbuf_free(&b);
    cosy_text_list_free(&utts);
    return st;
}

cosy_status cosy_text_bound(const cosy_tokenizer *tok, const char *s, size_t n, cosy_text_list *out)
{
    int longer, zh = cosy_text_contains_chinese(s, n);
    COSY_TRY(utt_longer(tok, zh, s, n, TOKEN_MAX_N, &longer));
    if (!longer) return cosy_text_list_push(out, s, n);
    return cosy_text_split_long(tok, zh, s, n, TOKEN_MAX_N, TOKEN_MIN_N, out);
}

cosy_status cosy_text_split_paragraph(const cosy_tokenizer *tok, const char *text, size_t n, int zh, cosy_text_list *out)
{
    return split_paragraph(tok, text, n, zh, 0, out);
}

/* ---- frontend.py text_normalize ---- */

static cosy_status normalize_zh(const char *s, size_t n, cosy_strbuf *out)
{
    cosy_strbuf a = {0};
    cosy_strbuf_append(&a, s, n);
    replace_all(&a, "\n", "");
    cosy_status st = buf_status(&a);
    if (st == COSY_OK) st = cosy_text_replace_blank(a.data, a.len, out);
    cosy_strbuf_free(&a);
    COSY_TRY(st);
    replace_all(out, "\xc2\xb2", "平方"); /* ² */
    replace_all(out, "\xc2\xb3", "立方"); /* ³ */
    replace_all(out, ".", "。");
    replace_all(out, " - ", "，");
    replace_all(out, "（", "");
    replace_all(out, "）", "");
    replace_all(out, "【", "");
    replace_all(out, "】", "");
    replace_all(out, "`", "");
    replace_all(out, "——", " ");
    COSY_TRY(buf_status(out));
    /* re.sub(r'[，,、]+$', '。', text): no '\n' is left, so $ is the end of the text */
    size_t e = out->len;
    for (;;) {
        if (e >= 3 && (!memcmp(out->data + e - 3, "，", 3) || !memcmp(out->data + e - 3, "、", 3))) e -= 3;
        else if (e >= 1 && out->data[e - 1] == ',') e -= 1;
        else break;
    }
    if (e < out->len) {
        out->len = e;
        out->data[e] = 0;
        cosy_strbuf_puts(out, "。");
    }
    return buf_status(out);
}

static cosy_status normalize(const cosy_tokenizer *tok, const char *text, size_t len, int split, int bound, cosy_text_tn tn,
                             cosy_text_list *out)
{
    memset(out, 0, sizeof *out);
    size_t bad;
    if (cosy_utf8_check(text, len, &bad) != COSY_OK)
        return cosy_error(COSY_ERR_INVALID_ARG, "text: invalid UTF-8 at byte %zu", bad);
    /* markup such as <|endofprompt|> switches the frontend off; empty text passes through (bounded:
     * a pass-through text longer than token_max_n is still cut, see normalize.h) */
    if (len == 0 || (memmem(text, len, "<|", 2) && memmem(text, len, "|>", 2))) {
        if (!bound) return cosy_text_list_push(out, text, len);
        cosy_status st = cosy_text_bound(tok, text, len, out);
        if (st != COSY_OK) cosy_text_list_free(out);
        return st;
    }

    /* str.strip() */
    size_t b = 0, e = len;
    while (b < e) {
        uint32_t cp;
        size_t k = cosy_utf8_next(text + b, e - b, &cp);
        if (!cosy_unicode_is_py_space(cp)) break;
        b += k;
    }
    while (e > b) {
        size_t s = e - 1;
        while (s > b && ((uint8_t)text[s] & 0xC0) == 0x80) s--;
        uint32_t cp;
        cosy_utf8_next(text + s, e - s, &cp);
        if (!cosy_unicode_is_py_space(cp)) break;
        e = s;
    }
    const char *s = text + b;
    size_t n = e - b;
    if (n == 0) /* the reference's text[-1] on the stripped text: IndexError, refused the same way */
        return cosy_error(COSY_ERR_INVALID_ARG, "text: only white space, nothing to say (the reference raises IndexError)");

    int zh = cosy_text_contains_chinese(s, n);
    cosy_strbuf norm = {0}, wt = {0};
    cosy_status st = COSY_OK;
    if (tn == COSY_TEXT_TN_WETEXT) { /* frontend.py: zh_tn_model / en_tn_model.normalize(text) */
        st = cosy_tn_normalize(s, n, COSY_TN_AUTO, &wt);
        if (st == COSY_OK) s = wt.data ? wt.data : "", n = wt.len;
    }
    if (st == COSY_OK) st = zh ? normalize_zh(s, n, &norm) : cosy_text_spell_out_number(s, n, &norm);
    if (st == COSY_OK && !norm.data) cosy_strbuf_append(&norm, "", 0);
    if (st == COSY_OK) st = buf_status(&norm);
    if (st == COSY_OK && !split) st = quote_without_sentence(norm.data, norm.len, zh);
    if (st == COSY_OK && !split) st = cosy_text_list_push(out, norm.data, norm.len);
    if (st == COSY_OK && split) {
        cosy_text_list pieces = {0};
        st = split_paragraph(tok, norm.data, norm.len, zh, bound, &pieces);
        for (int i = 0; st == COSY_OK && i < pieces.n; i++)
            if (!cosy_text_is_only_punctuation(pieces.items[i], strlen(pieces.items[i])))
                st = cosy_text_list_push(out, pieces.items[i], strlen(pieces.items[i]));
        cosy_text_list_free(&pieces);
    }
    cosy_strbuf_free(&norm);
    cosy_strbuf_free(&wt);
    if (st != COSY_OK) cosy_text_list_free(out);
    return st;
}

cosy_status cosy_text_normalize(const cosy_tokenizer *tok, const char *text, size_t len, int split, cosy_text_list *out)
{
    return normalize(tok, text, len, split, 0, COSY_TEXT_TN_NONE, out);
}

cosy_status cosy_text_normalize_bounded(const cosy_tokenizer *tok, const char *text, size_t len, cosy_text_list *out)
{
    return normalize(tok, text, len, 1, 1, COSY_TEXT_TN_NONE, out);
}

cosy_status cosy_text_normalize_tn(const cosy_tokenizer *tok, const char *text, size_t len, int split, cosy_text_tn tn,
                                   cosy_text_list *out)
{
    return normalize(tok, text, len, split, 0, tn, out);
}

cosy_status cosy_text_normalize_bounded_tn(const cosy_tokenizer *tok, const char *text, size_t len, cosy_text_tn tn,
                                           cosy_text_list *out)
{
    return normalize(tok, text, len, 1, 1, tn, out);
}
