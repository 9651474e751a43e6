/*
 * tn.h — text normalisation as wetext==0.0.4 runs WeTextProcessing's TN grammars (the step
 * CosyVoice's frontend.py text_normalize takes before its own rules when wetext is installed).
 *
 * wetext.Normalizer.normalize(text) with CosyVoice's settings (lang auto, operator tn, every
 * option off, remove_erhua=False):
 *   1. text.strip();
 *   2. only if the text holds a digit (Python re \d): pick the language (zh if it has a character
 *      in U+4E00..U+9FFF or is all str.isdigit(), else en), then tag, reorder, verbalise;
 *   3. strip again.
 * Tag: the text is cut into tokens; each token is one rule class's match (zh: date, whitelist,
 * sport, fraction, measure, money, time, cardinal, math, char; en: cardinal, ordinal, decimal,
 * fraction, date, time, measure, money, telephone, electronic, whitelist, range, word,
 * punctuation). Where classes overlap, the cut with the least total weight wins, as the FST's
 * shortest path does: each class has the weight wetext's build_fsts.py gives it (zh: date 1.02,
 * whitelist 1.03, sport 1.04, fraction/measure/money/time 1.05, cardinal 1.06, math 90, char 100
 * per character; en: 1.0 for most, date 0.99, range 1.01, punctuation 2, word 100) plus the
 * weights inside a rule (a phone number -1, ...). tn_lattice below is that search: every
 * matcher reports the spans it accepts at a position, a forward pass keeps the cheapest.
 * Reorder/verbalise: each matcher knows its fields and speaks them in TokenParser's order (zh:
 * date year-month-day, fraction denominator-numerator, measure denominator-numerator, money
 * value-currency, time noon-hour-minute-second; en: money integer-fraction-quantity-currency).
 *
 * Work and output are bounded: matchers look at most TN_MAX_SPAN bytes ahead, each position
 * keeps one best path, so time is O(n · TN_MAX_SPAN) and output at most a small multiple of n.
 */
#ifndef COSY_TN_H
#define COSY_TN_H

#include <stddef.h>
#include "cosy.h"
#include "text/utf8.h"

typedef enum { COSY_TN_AUTO = 0, COSY_TN_ZH, COSY_TN_EN } cosy_tn_lang;

/* wetext's Normalizer.normalize (steps 1-3 above): the result is appended to out. */
cosy_status cosy_tn_normalize(const char *text, size_t n, cosy_tn_lang lang, cosy_strbuf *out);
/* The grammar alone (tag, reorder, verbalise; no digit test; lang AUTO picks as wetext does):
 * what WeTextProcessing's own tests check. */
cosy_status cosy_tn_grammar(const char *text, size_t n, cosy_tn_lang lang, cosy_strbuf *out);
/* wetext's get_lang: 1 for zh. */
int cosy_tn_is_zh(const char *text, size_t n);

/* ---- internals shared by tn_common.c, tn_zh.c, tn_en.c ---- */

#define TN_MAX_SPAN 256 /* no token is longer (bytes of input) */

typedef struct { const char *a, *b; } tn_pair;
typedef struct { const tn_pair *rows; int n; } tn_table;

typedef struct {
    size_t start;
    size_t out_off, out_len; /* in the lattice's arena; out_off == (size_t)-1: the input span itself */
    int cls;
} tn_edge;

typedef struct tn_lattice {
    const char *s;
    size_t n;
    double *cost;     /* n+1: best cost to reach each byte offset (INFINITY: unreachable) */
    tn_edge *best;    /* n+1: the edge that ends there on the best path */
    cosy_strbuf arena;
    cosy_strbuf tmp;  /* scratch for matchers */
    size_t pos;       /* the start matchers are asked about */
    int failed;
    unsigned user;    /* the caller's, kept by tn_lattice_run */
    size_t cache_from, cache_to; /* matchers' scratch */
} tn_lattice;

/* Offers a token s[lat->pos, end) of class cls with the given weight and spoken form. */
void tn_offer(tn_lattice *lat, size_t end, double w, int cls, const char *out, size_t out_len);
/* Same, the token spoken as written. */
void tn_offer_raw(tn_lattice *lat, size_t end, double w, int cls);

typedef void (*tn_matcher)(tn_lattice *lat);

/* Runs the search with the matchers; returns 0 on success. Tokens are then walked back to front. */
int tn_lattice_run(tn_lattice *lat, const char *s, size_t n, const tn_matcher *m, int nm);
void tn_lattice_free(tn_lattice *lat);

/* helpers */
const char *tn_table_find(const tn_table *t, const char *s, size_t n); /* exact key -> spoken, or NULL */
/* longest key of t that s[0..n) starts with; its length in *len, the row's spoken form returned */
const char *tn_table_prefix(const tn_table *t, const char *s, size_t n, size_t *len);
/* the rows of t whose written form s[0..n) starts with (at most max), hashed: O(matches) */
int tn_prefixes(const tn_table *t, const char *s, size_t n, int *rows, int max);
/* a digit 0-9 at s[i] (ASCII or fullwidth); its byte length in *len; -1 if none */
int tn_digit(const char *s, size_t n, size_t i, size_t *len);

cosy_status tn_zh(const char *s, size_t n, cosy_strbuf *out);
cosy_status tn_en(const char *s, size_t n, cosy_strbuf *out);
/* one English class alone, as WeTextProcessing's per-class tests run it (Cardinal().normalize):
 * the text as written if the class does not read all of it as one token */
int tn_en_class_id(const char *name);
cosy_status tn_en_class(const char *s, size_t n, int cls, cosy_strbuf *out);

extern const tn_table tn_zh_units_en, tn_zh_units_zh, tn_zh_money_code, tn_zh_money_symbol, tn_zh_whitelist,
    tn_zh_sport_country, tn_zh_sport_club, tn_zh_noon, tn_en_currency_major, tn_en_unit, tn_en_whitelist_tts,
    tn_en_whitelist_symbol, tn_en_state, tn_en_address_word, tn_en_month_abbr, tn_en_month_name, tn_en_time_zone,
    tn_en_domain, tn_en_e_symbol, tn_en_quantity_abbr, tn_en_suppletive;

#endif
