/*
 * tn_en.c — WeTextProcessing's English TN grammar (tn/english/rules @89a0146, as wetext==0.0.4
 * ships it; NeMo's grammars in origin) as matchers over the shared shortest-path search (tn.h).
 *
 * The tagger is (class (punctuation+ | spaces deleted))*: tokens are spoken one after the other,
 * a space between two, punctuation glued to what precedes it (it keeps the spaces it took up).
 * The grammars are non-deterministic; where they offer several spoken forms of equal weight we
 * take the one WeTextProcessing's test data shows (negative for a cardinal's '-', minus for a
 * decimal's, "oh" for a zero after the point, a leading "one thousand" read "thousand").
 */
#include "text/tn.h"
#include "core/error.h"

#include <utf8proc.h>
#include <stdlib.h>
#include <string.h>

enum {
    EN_CARDINAL, EN_ORDINAL, EN_DECIMAL, EN_FRACTION, EN_DATE, EN_TIME, EN_MEASURE, EN_MONEY, EN_TELEPHONE,
    EN_ELECTRONIC, EN_WHITELIST, EN_RANGE, EN_WORD, EN_PUNCT, EN_ROMAN, EN_SPACE, EN_NCLASS
};
static const char *const CLASS_NAME[EN_NCLASS] = {"cardinal", "ordinal", "decimal", "fraction", "date",
                                                  "time", "measure", "money", "telephone", "electronic",
                                                  "whitelist", "range", "word", "punctuation", "roman", "space"};
/* build_fsts.py */
static const double CLASS_W[EN_NCLASS] = {1.0, 1.0, 1.0, 1.0, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.01, 100.0, 2.0, 1.0, 0.0};

typedef struct { char b[768]; size_t n; } es;
static void es_put(es *z, const char *s, size_t n)
{
    if (z->n + n < sizeof z->b) memcpy(z->b + z->n, s, n), z->n += n;
    else z->n = sizeof z->b;
}
static void es_puts(es *z, const char *s) { es_put(z, s, strlen(s)); }
static void es_word(es *z, const char *w) /* space-separated */
{
    if (z->n && z->b[z->n - 1] != ' ') es_puts(z, " ");
    es_puts(z, w);
}
static void es_add(es *z, const es *w) /* another phrase, space-separated */
{
    if (!w->n) return;
    if (z->n && z->b[z->n - 1] != ' ') es_puts(z, " ");
    es_put(z, w->b, w->n);
}
static int es_ok(const es *z) { return z->n < sizeof z->b; }
static int ends_with(const es *z, const char *w)
{
    size_t l = strlen(w);
    return z->n >= l && memcmp(z->b + z->n - l, w, l) == 0;
}

static int isd(const char *s, size_t n, size_t i) { return i < n && s[i] >= '0' && s[i] <= '9'; }
static int isal(const char *s, size_t n, size_t i)
{
    return i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'));
}
static int starts(const char *s, size_t n, size_t i, const char *lit)
{
    size_t l = strlen(lit);
    return i + l <= n && memcmp(s + i, lit, l) == 0;
}
/* the end of a digit run, looking at most MAX_RUN digits ahead (every scan is bounded) */
#define MAX_RUN 64
static size_t digits_end(const char *s, size_t n, size_t i)
{
    size_t e = i;
    while (e - i < MAX_RUN && isd(s, n, e)) e++;
    return e;
}
static size_t alpha_end(const char *s, size_t n, size_t i)
{
    size_t e = i;
    while (e - i < MAX_RUN && isal(s, n, e)) e++;
    return e;
}

/* ---- numbers (cardinal.py: the number-name graph, add_optional_and) ---- */

static const char *const ONES[20] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                     "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                                     "eighteen", "nineteen"};
static const char *const TENS[10] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const SCALE[] = {"", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion",
                                    "sextillion", "septillion", "octillion", "nonillion", "decillion"};
#define MAX_CARD_DIGITS 36

static void say_under_100(es *z, int v)
{
    if (v < 20) es_word(z, ONES[v]);
    else {
        es_word(z, TENS[v / 10]);
        if (v % 10) es_word(z, ONES[v % 10]);
    }
}
static void say_under_1000(es *z, int v)
{
    if (v >= 100) es_word(z, ONES[v / 100]), es_word(z, "hundred");
    if (v % 100 || v < 100) say_under_100(z, v % 100);
}

/* "hundred " -> "hundred and " when no thousand/million follows, else "thousand " -> "thousand and "
 * when no hundred follows (add_optional_and, the cheaper paths) */
static void add_and(es *z)
{
    es t = *z;
    t.b[t.n < sizeof t.b ? t.n : sizeof t.b - 1] = 0;
    char *best = NULL, *p = t.b;
    while ((p = strstr(p, "hundred "))) {
        const char *rest = p + 8;
        if (!strstr(rest, "thousand") && !strstr(rest, "million")) best = p + 8;
        p += 8;
    }
    if (!best) {
        p = t.b;
        while ((p = strstr(p, "thousand "))) {
            if (!strstr(p + 9, "hundred")) best = p + 9;
            p += 9;
        }
    }
    if (!best) return;
    size_t at = (size_t)(best - t.b);
    z->n = 0;
    es_put(z, t.b, at);
    es_puts(z, "and ");
    es_put(z, t.b + at, t.n - at);
}

/* digits d[0..k) without a leading zero (or "0"): the number's name; 0 if too long */
static int say_int(es *z, const char *d, size_t k, int with_and)
{
    if (k == 0 || k > MAX_CARD_DIGITS) return 0;
    if (k == 1 && d[0] == '0') return es_word(z, "zero"), 1;
    es w = {.n = 0};
    size_t groups = (k + 2) / 3, first = k - (groups - 1) * 3, p = 0;
    for (size_t g = 0; g < groups; g++) {
        size_t len = g == 0 ? first : 3;
        int v = 0;
        for (size_t j = 0; j < len; j++) v = v * 10 + (d[p + j] - '0');
        p += len;
        if (!v) continue;
        say_under_1000(&w, v);
        size_t sc = groups - 1 - g;
        if (sc) es_word(&w, SCALE[sc]);
    }
    if (with_and) add_and(&w);
    if (z->n) es_puts(z, " ");
    es_put(z, w.b, w.n);
    return 1;
}

/* digits one by one: zero as "zero" or (oh=1) "oh" */
static void say_digits(es *z, const char *d, size_t k, int oh)
{
    for (size_t j = 0; j < k; j++) es_word(z, d[j] == '0' ? (oh ? "oh" : "zero") : ONES[d[j] - '0']);
}

/* the cardinal graph at i: 1-3 digits (,ddd)* or a digit run; leading zeros read one by one.
 * Returns the end (0 if none); the name in z. with_and: graph_with_and. */
static size_t card_at(const char *s, size_t n, size_t i, es *z, int with_and)
{
    if (!isd(s, n, i)) return 0;
    size_t e = digits_end(s, n, i);
    char d[MAX_CARD_DIGITS + 1];
    size_t k = 0;
    if (e - i <= 3 && e < n && s[e] == ',' && isd(s, n, e + 1)) {
        /* comma groups */
        size_t p = i;
        while (p < e) d[k++] = s[p++];
        while (p + 3 < n + 0 && s[p] == ',' && isd(s, n, p + 1) && isd(s, n, p + 2) && isd(s, n, p + 3) &&
               !isd(s, n, p + 4) && k + 3 <= MAX_CARD_DIGITS) {
            d[k++] = s[p + 1], d[k++] = s[p + 2], d[k++] = s[p + 3];
            p += 4;
        }
        if (p == e) k = 0; /* no full group: plain digits */
        else e = p;
    }
    if (!k) {
        if (e - i > MAX_CARD_DIGITS) { /* too long for the number names: digit by digit */
            say_digits(z, s + i, e - i, 0);
            return e;
        }
        memcpy(d, s + i, e - i);
        k = e - i;
    }
    size_t z0 = 0;
    while (z0 + 1 < k && d[z0] == '0') z0++;
    say_digits(z, d, z0, 0);
    if (!say_int(z, d + z0, k - z0, with_and)) return 0;
    return e;
}

/* add_optional_and's weights: a reading with "and" inserted -0.0001, the plain graph +0.00001 */
static double and_weight(const es *z)
{
    for (size_t k = 0; k + 5 <= z->n; k++)
        if (!memcmp(z->b + k, " and ", 5)) return -0.0001;
    return 0.00001;
}

/* Cardinal(deterministic=True).graph_with_and, the range class's numbers: a number with a leading zero
 * or of five or more digits is read digit by digit */
static size_t card_det_at(const char *s, size_t n, size_t i, es *z)
{
    size_t e = digits_end(s, n, i);
    int groups = e < n && s[e] == ',' && isd(s, n, e + 1) && isd(s, n, e + 2) && isd(s, n, e + 3);
    if (e > i && (s[i] == '0' || e - i >= 5) && !groups) {
        if (e - i == 1) return es_word(z, "zero"), e;
        say_digits(z, s + i, e - i, 0);
        return e;
    }
    return card_at(s, n, i, z, 1);
}

/* ---- ordinal.py: the suffix rewrite on the last word ---- */
static void ordinalize(es *z)
{
    static const char *const M[][2] = {{"one", "first"},   {"two", "second"}, {"three", "third"}, {"four", "fourth"},
                                       {"five", "fifth"},  {"six", "sixth"},  {"seven", "seventh"}, {"eight", "eighth"},
                                       {"nine", "ninth"},  {"twelve", "twelfth"}};
    for (size_t k = 0; k < sizeof M / sizeof *M; k++)
        if (ends_with(z, M[k][0]) && (z->n == strlen(M[k][0]) || z->b[z->n - strlen(M[k][0]) - 1] == ' ')) {
            z->n -= strlen(M[k][0]);
            es_puts(z, M[k][1]);
            return;
        }
    if (ends_with(z, "ty")) z->n -= 1, es_puts(z, "ieth");
    else es_puts(z, "th");
}

static size_t ordinal_at(const char *s, size_t n, size_t i, es *z)
{
    if (!isd(s, n, i)) return 0;
    es c = {.n = 0};
    size_t e = card_at(s, n, i, &c, 0);
    if (!e || e - i > 40) return 0;
    char last = s[e - 1], prev = e - i >= 2 ? s[e - 2] : 0;
    const char *suf;
    if (prev == '1') suf = "th";
    else if (last == '1') suf = "st";
    else if (last == '2') suf = "nd";
    else if (last == '3') suf = "rd";
    else suf = "th";
    char up[3] = {(char)(suf[0] - 32), (char)(suf[1] - 32), 0};
    size_t sl;
    if (starts(s, n, e, suf) || starts(s, n, e, up)) sl = 2;
    else return 0;
    *z = c;
    ordinalize(z);
    return e + sl;
}

/* ---- decimal.py ---- */
static const char *quantity_at(const char *s, size_t n, size_t i, size_t *e, int abbr)
{
    static const char *const Q[] = {"thousand", "million", "billion", "trillion", "quadrillion", "quintillion",
                                    "sextillion", "septillion", "octillion", "nonillion", "decillion"};
    for (size_t k = 0; k < sizeof Q / sizeof *Q; k++)
        if (starts(s, n, i, Q[k]) && !isal(s, n, i + strlen(Q[k]))) return *e = i + strlen(Q[k]), Q[k];
    if (abbr) {
        size_t best = 0;
        const char *q = NULL;
        for (int k = 0; k < tn_en_quantity_abbr.n; k++) {
            const char *a = tn_en_quantity_abbr.rows[k].a;
            if (starts(s, n, i, a) && strlen(a) > best && !isal(s, n, i + strlen(a))) best = strlen(a), q = tn_en_quantity_abbr.rows[k].b;
        }
        if (q) return *e = i + best, q;
    }
    return NULL;
}

/* [int] . digits, optionally followed by ' '? quantity; or int ' '? quantity (not thousand) */
static size_t decimal_core(const char *s, size_t n, size_t i, es *z, int abbr, int need_point)
{
    es t = {.n = 0};
    size_t p = i;
    if (isd(s, n, p)) {
        p = card_at(s, n, p, &t, 1);
        if (!p) return 0;
    }
    int has_point = 0;
    if (p < n && s[p] == '.' && isd(s, n, p + 1)) {
        size_t e = digits_end(s, n, p + 1);
        if (e - p > 60) return 0;
        es_word(&t, "point");
        say_digits(&t, s + p + 1, e - p - 1, 1);
        p = e, has_point = 1;
    }
    if (p == i) return 0;
    size_t q = p < n && s[p] == ' ' ? p + 1 : p, qe;
    const char *qu = quantity_at(s, n, q, &qe, abbr);
    if (qu && (has_point || strcmp(qu, "thousand") != 0) && (has_point || (p - i) <= 3)) {
        es_word(&t, qu);
        p = qe;
    } else if (!has_point || (need_point && !has_point))
        return 0;
    *z = t;
    return p;
}

/* ---- money.py ---- */
static void plural(es *z, const char *unit)
{
    for (int k = 0; k < tn_en_suppletive.n; k++)
        if (!strcmp(unit, tn_en_suppletive.rows[k].a)) return es_word(z, tn_en_suppletive.rows[k].b);
    size_t l = strlen(unit);
    es_word(z, unit);
    if (l >= 2 && unit[l - 1] == 'y' && !strchr("aeiou", unit[l - 2])) z->n--, es_puts(z, "ies");
    else if (l >= 2 && (unit[l - 1] == 's' || unit[l - 1] == 'x' || (unit[l - 1] == 'h' && strchr("cs", unit[l - 2]))))
        es_puts(z, "es");
    else es_puts(z, "s");
}

static size_t money_at(const char *s, size_t n, size_t i, es *out)
{
    size_t best = 0;
    const char *cur = NULL;
    int rows[8];
    int c = tn_prefixes(&tn_en_currency_major, s + i, n - i, rows, 8);
    for (int k = 0; k < c; k++) {
        const char *a = tn_en_currency_major.rows[rows[k]].a;
        if (strlen(a) > best) best = strlen(a), cur = tn_en_currency_major.rows[rows[k]].b;
    }
    if (!cur) return 0;
    size_t p = i + best;
    if (!isd(s, n, p) && !(p + 1 < n && s[p] == '.' && isd(s, n, p + 1))) return 0;
    /* $12.0500: trailing zeros after the point dropped; $1.00: all dropped */
    size_t ie = isd(s, n, p) ? digits_end(s, n, p) : p;
    es z = {.n = 0};
    if (ie < n && s[ie] == '.' && isd(s, n, ie + 1)) {
        size_t fe = digits_end(s, n, ie + 1), fl = fe;
        while (fl > ie + 1 && s[fl - 1] == '0') fl--;
        size_t q = fe < n && s[fe] == ' ' ? fe + 1 : fe, qe;
        const char *qu = quantity_at(s, n, q, &qe, 1);
        if (fl == ie + 1 && !qu) { /* .00 */
            if (ie - p == 1 && s[p] == '1') es_word(&z, "one"), es_word(&z, cur);
            else {
                if (ie == p || !card_at(s, n, p, &z, 1)) return 0;
                plural(&z, cur);
            }
            *out = z;
            return fe;
        }
        if (ie > p && !card_at(s, n, p, &z, 1)) return 0;
        es_word(&z, "point");
        say_digits(&z, s + ie + 1, fl - ie - 1, 1);
        size_t end = fe;
        if (qu) es_word(&z, qu), end = qe;
        plural(&z, cur);
        *out = z;
        return end;
    }
    size_t q = ie < n && s[ie] == ' ' ? ie + 1 : ie, qe;
    const char *qu = quantity_at(s, n, q, &qe, 1);
    if (qu && strcmp(qu, "thousand") && ie - p <= 3) {
        card_at(s, n, p, &z, 1);
        es_word(&z, qu);
        plural(&z, cur);
        *out = z;
        return qe;
    }
    if (ie - p == 1 && s[p] == '1') es_word(&z, "one"), es_word(&z, cur);
    else {
        if (!card_at(s, n, p, &z, 1)) return 0;
        plural(&z, cur);
    }
    *out = z;
    return ie;
}

/* ---- measure.py ---- */
static const char *unit_at(const char *s, size_t n, size_t i, size_t *e)
{
    size_t best = 0;
    const char *u = NULL;
    int rows[16];
    int c = i < n ? tn_prefixes(&tn_en_unit, s + i, n - i, rows, 16) : 0;
    for (int k = 0; k < c; k++) {
        const char *a = tn_en_unit.rows[rows[k]].a;
        size_t l = strlen(a);
        if (l > best && !isal(s, n, i + l)) best = l, u = tn_en_unit.rows[rows[k]].b;
    }
    *e = i + best;
    return u;
}

/* a number for measure: -? (decimal | cardinal); *one: it is exactly one */
static size_t measure_number(const char *s, size_t n, size_t i, es *z, int *one)
{
    size_t p = i;
    es t = {.n = 0};
    int neg = 0;
    if (p < n && s[p] == '-') neg = 1, p++;
    size_t e = decimal_core(s, n, p, &t, 0, 1);
    if (e && memchr(s + p, '.', e - p)) {
        *one = 0;
    } else {
        t.n = 0;
        e = card_at(s, n, p, &t, 1);
        if (!e) return 0;
        *one = e - p == 1 && s[p] == '1';
    }
    z->n = 0;
    if (neg) es_puts(z, "negative ");
    es_put(z, t.b, t.n);
    return e;
}

/* measure.py get_address_graph: 2788 San Tomas Expy, Santa Clara, CA 95051 */
static size_t address_at(const char *s, size_t n, size_t i, es *out)
{
    size_t e = digits_end(s, n, i);
    if (e == i || e - i > 6) return 0;
    es z = {.n = 0};
    size_t k = e - i;
    int hi = k >= 3 ? atoi(s + i) / 100 : 0, lo = k >= 2 ? (s[e - 2] - '0') * 10 + (s[e - 1] - '0') : 0;
    if ((k == 3 || k == 4) && hi > 0 && lo > 0) {
        say_under_100(&z, hi);
        if (s[e - 2] == '0') es_word(&z, "zero");
        say_under_100(&z, lo);
    } else if (!card_at(s, n, i, &z, 0))
        return 0;
    size_t p = e;
    static const char *const DIR[][2] = {{"E", "East"}, {"S", "South"}, {"W", "West"}, {"N", "North"}};
    for (int d = 0; d < 4; d++)
        if (p + 1 < n && s[p] == ' ' && s[p + 1] == DIR[d][0][0] && !isal(s, n, p + 2)) {
            es_word(&z, DIR[d][1]);
            p += 2;
            if (p < n && s[p] == '.') p++;
            break;
        }
    /* capitalised words, then a street word */
    int words = 0;
    const char *street = NULL;
    while (p < n && s[p] == ' ' && isal(s, n, p + 1) && words < 8) {
        size_t w = p + 1, we = alpha_end(s, n, w);
        for (int r = 0; r < tn_en_address_word.n && words >= 1; r++) {
            const char *a = tn_en_address_word.rows[r].a;
            size_t l = strlen(a);
            if (l == we - w && (!memcmp(s + w, a, l) || (s[w] == a[0] - 32 && !memcmp(s + w + 1, a + 1, l - 1)))) {
                street = tn_en_address_word.rows[r].b;
                break;
            }
        }
        if (street) {
            es_word(&z, street);
            p = we;
            if (p < n && s[p] == '.') p++;
            break;
        }
        if (!(s[w] >= 'A' && s[w] <= 'Z')) return 0;
        es_word(&z, "");
        es_put(&z, s + w, we - w);
        p = we, words++;
    }
    if (!street) return 0;
    /* (, city)? (, ST)? ,? zip */
    size_t q = p;
    es t = z;
    if (q + 2 < n && s[q] == ',' && s[q + 1] == ' ' && isal(s, n, q + 2)) {
        size_t c = q + 2;
        while (c < n && (isal(s, n, c) || (s[c] == ' ' && isal(s, n, c + 1) && !(c + 3 <= n && s[c + 1] >= 'A' && s[c + 2] >= 'A' && s[c + 2] <= 'Z')))) c++;
        es_puts(&t, ", ");
        es_put(&t, s + q + 2, c - q - 2);
        q = c;
    }
    if (q + 3 < n && s[q] == ',' && s[q + 1] == ' ') {
        for (int r = 0; r < tn_en_state.n; r++)
            if (starts(s, n, q + 2, tn_en_state.rows[r].b) && !isal(s, n, q + 4)) {
                es_puts(&t, ", ");
                es_puts(&t, tn_en_state.rows[r].a);
                q += 4;
                break;
            }
    }
    if (q < n && s[q] == ',') q++;
    if (q + 5 < n + 0 + 1 && s[q] == ' ' && digits_end(s, n, q + 1) == q + 6) {
        say_digits(&t, s + q + 1, 5, 1);
        *out = t;
        return q + 6;
    }
    *out = z;
    return p;
}

static size_t measure_at(const char *s, size_t n, size_t i, es *out)
{
    es a = {.n = 0}, b = {.n = 0};
    int one = 0, one2;
    size_t e = measure_number(s, n, i, &a, &one);
    if (!e) return 0;
    /* ranges and products: 2-3 °C, 2 * 10 μm */
    size_t p = e;
    if (p < n && s[p] == ' ') p++;
    const char *join = NULL;
    size_t q = 0;
    if (p < n && s[p] == '-') join = "to", q = p + 1;
    else if (p < n && (s[p] == '*' || starts(s, n, p, "×"))) join = "times", q = p + (s[p] == '*' ? 1 : 2);
    if (join) {
        if (q < n && s[q] == ' ') q++;
        size_t e2 = measure_number(s, n, q, &b, &one2);
        if (e2 && isd(s, n, q)) {
            size_t u0 = e2 < n && s[e2] == ' ' ? e2 + 1 : e2, ue;
            const char *u = unit_at(s, n, u0, &ue);
            if (u) {
                es z = a;
                es_word(&z, join);
                es_add(&z, &b);
                if (one2) es_word(&z, u);
                else plural(&z, u);
                *out = z;
                return ue;
            }
        }
    }
    size_t u0 = e < n && s[e] == ' ' ? e + 1 : e, ue;
    const char *u = unit_at(s, n, u0, &ue);
    if (!u) return 0;
    es z = a;
    if (one) es_word(&z, u);
    else plural(&z, u);
    /* graph_unit2: / unit -> per unit (60 km/h) */
    size_t q2 = ue < n && s[ue] == ' ' ? ue + 1 : ue, ue2;
    if (q2 < n && s[q2] == '/') {
        q2 = q2 + 1 < n && s[q2 + 1] == ' ' ? q2 + 2 : q2 + 1;
        const char *u2 = unit_at(s, n, q2, &ue2);
        if (u2) es_word(&z, "per"), es_word(&z, u2), ue = ue2;
    }
    *out = z;
    return ue;
}

/* ---- fraction.py ---- */
static size_t fraction_at(const char *s, size_t n, size_t i, es *out)
{
    static const char *const UNI[][2] = {{"¼", "1/4"}, {"½", "1/2"}, {"¾", "3/4"}, {"⅓", "1/3"}, {"⅔", "2/3"},
                                         {"⅕", "1/5"}, {"⅛", "1/8"}, {"⅐", "1/7"}, {"⅑", "1/9"}, {"⅒", "1/10"}};
    es in = {.n = 0}, num = {.n = 0}, den = {.n = 0};
    size_t p = i, e;
    int has_int = 0;
    /* integer ' ' */
    if (isd(s, n, p)) {
        e = card_at(s, n, p, &in, 0);
        if (e && e < n && s[e] == ' ' && (isd(s, n, e + 1))) {
            size_t e2 = digits_end(s, n, e + 1);
            if (e2 < n && s[e2] == '/') has_int = 1, p = e + 1;
        }
        if (!has_int && e) {
            for (size_t k = 0; k < sizeof UNI / sizeof *UNI; k++) {
                size_t q = e < n && s[e] == ' ' ? e + 1 : e;
                if (starts(s, n, q, UNI[k][0])) { has_int = 1, p = q; break; }
            }
        }
    }
    char buf[8];
    if (!isd(s, n, p) && (unsigned char)s[p] != 0xC2 && (unsigned char)s[p] != 0xE2) return 0;
    const char *fs = s;
    size_t fn = n, fp = p, uni_end = 0;
    for (size_t k = 0; k < sizeof UNI / sizeof *UNI; k++)
        if (starts(s, n, p, UNI[k][0])) {
            strcpy(buf, UNI[k][1]);
            fs = buf, fn = strlen(buf), fp = 0, uni_end = p + strlen(UNI[k][0]);
            break;
        }
    e = card_at(fs, fn, fp, &num, 0);
    if (!e) return 0;
    size_t q;
    if (e < fn && fs[e] == '/') q = e + 1;
    else if (starts(fs, fn, e, " / ")) q = e + 3;
    else return 0;
    size_t e2 = card_at(fs, fn, q, &den, 0);
    if (!e2) return 0;
    if (!uni_end) {
        static const char *const END[] = {"rd", "th", "st", "nd", "RD", "TH", "ST", "ND"};
        for (size_t k = 0; k < 8; k++)
            if (starts(s, n, e2, END[k])) { e2 += 2; break; }
    }
    es z = {.n = 0};
    if (has_int) es_put(&z, in.b, in.n), es_word(&z, "and");
    es_add(&z, &num);
    if (den.n == 3 && !memcmp(den.b, "one", 3)) es_word(&z, "over one");
    else {
        const char *dw;
        es o = den;
        if (den.n == 3 && !memcmp(den.b, "two", 3)) dw = "half";
        else if (den.n == 4 && !memcmp(den.b, "four", 4)) dw = "quarter";
        else {
            ordinalize(&o);
            dw = NULL;
        }
        if (dw) es_word(&z, dw);
        else es_add(&z, &o);
        if (!(num.n == 3 && !memcmp(num.b, "one", 3))) {
            if (ends_with(&z, "half")) z.n -= 4, es_puts(&z, "halves");
            else es_puts(&z, "s");
        }
    }
    if (ends_with(&z, "and one half")) z.n -= 8, es_puts(&z, "a half");
    *out = z;
    return uni_end ? uni_end : e2;
}

/* ---- date.py ---- */
/* two digits as in a year: teen, ties, "oh" digit */
static void say_pair(es *z, int v, int oh)
{
    if (v >= 10) say_under_100(z, v);
    else es_word(z, oh ? "oh" : "zero"), es_word(z, ONES[v]);
}
/* a four digit year 1000-2999 (get_four_digit_year_graph) */
static int say_year4(es *z, const char *d)
{
    if (d[0] != '1' && d[0] != '2') return 0;
    int hi = (d[0] - '0') * 10 + (d[1] - '0'), lo = (d[2] - '0') * 10 + (d[3] - '0');
    if (d[1] == '0' && d[2] == '0') { /* 2000, 2005: two thousand (five) */
        es_word(z, ONES[d[0] - '0']);
        es_word(z, "thousand");
        if (d[3] != '0') es_word(z, ONES[d[3] - '0']);
        return 1;
    }
    say_pair(z, hi, 1);
    if (lo == 0) es_word(z, "hundred");
    else say_pair(z, lo, 1);
    return 1;
}
static const char *month_name_at(const char *s, size_t n, size_t i, size_t *e)
{
    if (!isal(s, n, i) || !strchr("adfjmnosADFJMNOS", s[i])) return NULL;
    const tn_table *t[2] = {&tn_en_month_name, &tn_en_month_abbr};
    size_t best = 0;
    const char *m = NULL;
    int rows[8];
    for (int k = 0; k < 2; k++) {
        int c = tn_prefixes(t[k], s + i, n - i, rows, 8);
        for (int r = 0; r < c; r++) {
            const char *a = t[k]->rows[rows[r]].a;
            size_t l = strlen(a);
            if (l > best && !isal(s, n, i + l)) best = l, m = t[k]->rows[rows[r]].b;
        }
    }
    if (!m) return NULL;
    *e = i + best;
    return m;
}
/* day 1-31 with an optional ordinal ending; its ordinal name */
static size_t day_at(const char *s, size_t n, size_t i, es *z)
{
    size_t e = digits_end(s, n, i);
    if (e - i == 2 && s[i] == '0') i++; /* delete("0").ques before a numeric day */
    if (e == i || e - i > 2) return 0;
    int v = atoi(s + i);
    if (v < 1 || v > 31) return 0;
    static const char *const END[] = {"rd", "th", "st", "nd", "RD", "TH", "ST", "ND"};
    for (int k = 0; k < 8; k++)
        if (starts(s, n, e, END[k])) { e += 2; break; }
    es c = {.n = 0};
    say_under_100(&c, v);
    ordinalize(&c);
    z->n = 0;
    es_puts(z, "the ");
    es_put(z, c.b, c.n);
    return e;
}
static const char *const MONTHS[13] = {"", "january", "february", "march", "april", "may", "june", "july",
                                       "august", "september", "october", "november", "december"};

/* a year: 4 digits 1000-2999 (+s), 's two digits ('70s), or a year with AD/BC */
static size_t year_at(const char *s, size_t n, size_t i, es *z)
{
    if (starts(s, n, i, "'") && isd(s, n, i + 1) && isd(s, n, i + 2) && s[i + 2] == '0' && i + 3 < n && s[i + 3] == 's' &&
        s[i + 1] >= '2') {
        es_word(z, TENS[s[i + 1] - '0']);
        z->n -= 1;
        es_puts(z, "ies");
        return i + 4;
    }
    size_t e = digits_end(s, n, i);
    if (e - i != 4 && e - i != 3) return 0;
    es t = {.n = 0};
    if (e - i == 4) {
        if (!say_year4(&t, s + i)) return 0;
    } else {
        /* three digit years only with a suffix */
        if (s[i] == '0') return 0;
        es_word(&t, ONES[s[i] - '0']);
        int v = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
        if (!v) return 0;
        say_pair(&t, v, 1);
    }
    /* suffix: B.C, A.D */
    size_t q = e < n && s[e] == ' ' ? e + 1 : e;
    for (int k = 0; k < 16; k++) {
        static const char *const SUF[][2] = {{"A.D.", "AD"}, {"A. D.", "AD"}, {"a.d.", "AD"}, {"a. d.", "AD"},
                                             {"B.C.", "BC"}, {"B. C.", "BC"}, {"b.c.", "BC"}, {"b. c.", "BC"},
                                             {"A.D", "AD"},  {"A. D", "AD"},  {"a.d", "AD"},  {"a. d", "AD"},
                                             {"B.C", "BC"},  {"B. C", "BC"},  {"b.c", "BC"},  {"b. c", "BC"}};
        if (starts(s, n, q, SUF[k][0])) {
            es_word(&t, SUF[k][1]);
            *z = t;
            return q + strlen(SUF[k][0]);
        }
    }
    if (e - i == 3) return 0;
    if (e < n && s[e] == 's') {
        if (ends_with(&t, "y")) t.n--, es_puts(&t, "ies");
        else es_puts(&t, "s");
        e++;
    }
    *z = t;
    return e;
}

/* the date class; *w gets the path's weight inside the class */
static size_t date_at(const char *s, size_t n, size_t i, es *out, double *w)
{
    es z = {.n = 0}, d = {.n = 0}, y = {.n = 0};
    size_t e, p;
    *w = 0;
    /* financial periods: 1H23, 3Q22 */
    if (isd(s, n, i) && i + 3 < n && (s[i + 1] == 'H' || s[i + 1] == 'Q') && isd(s, n, i + 2) && isd(s, n, i + 3) &&
        !isd(s, n, i + 4)) {
        static const char *const ORD[] = {"", "first", "second", "third", "fourth"};
        int v = s[i] - '0';
        if (v >= 1 && v <= (s[i + 1] == 'H' ? 2 : 4)) {
            es_word(&z, "the");
            es_word(&z, ORD[v]);
            es_word(&z, s[i + 1] == 'H' ? "half" : "quarter");
            es_word(&z, "of");
            say_under_100(&z, (s[i + 2] - '0') * 10 + (s[i + 3] - '0'));
            *out = z;
            return i + 4;
        }
    }
    /* numeric y-m-d, m-d-y, d-m-y with one separator kind */
    if (isd(s, n, i)) {
        size_t a = digits_end(s, n, i);
        char sep = a < n ? s[a] : 0;
        if ((sep == '-' || sep == '/' || sep == '.') && isd(s, n, a + 1)) {
            size_t b = digits_end(s, n, a + 1);
            if (b < n && s[b] == sep && isd(s, n, b + 1)) {
                size_t c = digits_end(s, n, b + 1);
                size_t la = a - i, lb = b - a - 1, lc = c - b - 1;
                if (la == 4 && lb <= 2 && lc <= 2) { /* ymd */
                    int m = atoi(s + a + 1);
                    if (m >= 1 && m <= 12 && say_year4(&y, s + i) && (p = day_at(s, n, b + 1, &d)) == c) {
                        es_put(&z, d.b, d.n), es_word(&z, "of"), es_word(&z, MONTHS[m]), es_add(&z, &y);
                        *out = z, *w = -1.1;
                        return c;
                    }
                }
                if (la <= 2 && lb <= 2 && lc == 4) {
                    int m1 = atoi(s + i), m2 = atoi(s + a + 1);
                    if (m1 >= 1 && m1 <= 12 && say_year4(&y, s + b + 1) && day_at(s, n, a + 1, &d) == b) { /* mdy */
                        es_put(&z, d.b, d.n), es_word(&z, "of"), es_word(&z, MONTHS[m1]), es_add(&z, &y);
                        *out = z, *w = -1.1;
                        return c;
                    }
                    if (m2 >= 1 && m2 <= 12 && la == 2 && m1 > 12 && say_year4(&y, s + b + 1) && day_at(s, n, i, &d) == a) {
                        es_put(&z, d.b, d.n), es_word(&z, "of"), es_word(&z, MONTHS[m2]), es_add(&z, &y);
                        *out = z, *w = -1.1;
                        return c;
                    }
                }
            }
        }
    }
    /* month name: jan. 5, 2012 | jan. 5 | jan 2012 */
    const char *mn = month_name_at(s, n, i, &e);
    if (mn) {
        p = e;
        if (p < n && (s[p] == '.' || s[p] == ',')) p++;
        if (p < n && s[p] == ' ' && isd(s, n, p + 1)) {
            size_t de = day_at(s, n, p + 1, &d);
            if (de && !isd(s, n, de)) {
                es_put(&z, d.b, d.n), es_word(&z, "of"), es_word(&z, mn);
                size_t end = de;
                if (de + 1 < n && s[de] == ',' && (isd(s, n, de + 1) || (s[de + 1] == ' ' && isd(s, n, de + 2)))) {
                    size_t q = s[de + 1] == ' ' ? de + 2 : de + 1;
                    es yy = {.n = 0};
                    size_t ye = year_at(s, n, q, &yy);
                    if (ye) {
                        es_word(&z, ",");
                        es_add(&z, &yy);
                        end = ye;
                    }
                } else if (de < n && s[de] == ' ') {
                    es yy = {.n = 0};
                    size_t ye = year_at(s, n, de + 1, &yy);
                    if (ye) es_add(&z, &yy), end = ye;
                }
                *out = z, *w = -0.1;
                return end;
            }
            size_t ye = year_at(s, n, p + 1, &y);
            if (ye) {
                es_word(&z, mn), es_add(&z, &y);
                *out = z, *w = -0.1;
                return ye;
            }
        }
    }
    /* 5 january 2012 */
    if (isd(s, n, i)) {
        size_t de = day_at(s, n, i, &d);
        if (de && de < n && s[de] == ' ' && (mn = month_name_at(s, n, de + 1, &e))) {
            es_put(&z, d.b, d.n), es_word(&z, "of"), es_word(&z, mn);
            size_t end = e;
            if (e < n && s[e] == ' ') {
                es yy = {.n = 0};
                size_t ye = year_at(s, n, e + 1, &yy);
                if (ye) es_add(&z, &yy), end = ye;
            }
            *out = z, *w = -0.1;
            return end;
        }
    }
    /* year alone */
    e = year_at(s, n, i, &y);
    if (e) {
        *out = y;
        return e;
    }
    return 0;
}

/* ---- time.py ---- */
static size_t suffix_at(const tn_table *t, const char *s, size_t n, size_t i, const char **sp)
{
    size_t best = 0;
    for (int k = 0; k < t->n; k++) {
        const char *a = t->rows[k].a;
        size_t l = strlen(a);
        if (l > best && starts(s, n, i, a) && !isal(s, n, i + l)) best = l, *sp = t->rows[k].b;
    }
    return best;
}
static const tn_pair SUFFIX_ROWS[] = {{"p.m.", "PM"}, {"p.m", "PM"}, {"pm", "PM"}, {"P.M.", "PM"}, {"P.M", "PM"},
                                      {"PM", "PM"},   {"a.m.", "AM"}, {"a.m", "AM"}, {"am", "AM"}, {"A.M.", "AM"},
                                      {"A.M", "AM"},  {"AM", "AM"}};
static const tn_table SUFFIX = {SUFFIX_ROWS, 12};

static size_t time_at(const char *s, size_t n, size_t i, es *out)
{
    size_t he = digits_end(s, n, i);
    if (he == i || he - i > 2) return 0;
    int h = atoi(s + i);
    if (h > 23) return 0;
    es z = {.n = 0};
    say_under_100(&z, h);
    size_t p = he;
    int have_min = 0, min = 0, sec = -1, zero_min = 0;
    char sep = p < n ? s[p] : 0;
    if ((sep == ':' || sep == '.') && isd(s, n, p + 1) && isd(s, n, p + 2) && !isd(s, n, p + 3)) {
        min = (s[p + 1] - '0') * 10 + (s[p + 2] - '0');
        if (min > 59) return 0;
        have_min = 1;
        p += 3;
        if (sep == ':' && p < n && s[p] == ':' && isd(s, n, p + 1) && isd(s, n, p + 2) && !isd(s, n, p + 3)) {
            sec = (s[p + 1] - '0') * 10 + (s[p + 2] - '0');
            if (sec > 59) return 0;
            p += 3;
            zero_min = min == 0;
        }
    }
    const char *suf = NULL, *zone = NULL;
    size_t q = p < n && s[p] == ' ' ? p + 1 : p, l = suffix_at(&SUFFIX, s, n, q, &suf);
    if (l) p = q + l;
    else suf = NULL;
    if (!have_min && !suf) return 0;
    if (sep == '.' && have_min && !suf) return 0;
    q = p < n && s[p] == ' ' ? p + 1 : p;
    l = suffix_at(&tn_en_time_zone, s, n, q, &zone);
    if (l) p = q + l;
    else zone = NULL;
    if (sec >= 0) {
        es_word(&z, h == 1 ? "hour" : "hours");
        if (zero_min) es_word(&z, "zero");
        else say_under_100(&z, min);
        es_word(&z, min == 1 ? "minute" : "minutes");
        es_word(&z, "and");
        if (sec == 0) es_word(&z, "zero");
        else say_under_100(&z, sec);
        es_word(&z, sec == 1 ? "second" : "seconds");
    } else if (have_min && min) {
        if (min < 10) es_word(&z, "o");
        say_under_100(&z, min);
    } else if (!suf)
        es_word(&z, "o'clock");
    if (suf) es_word(&z, suf);
    if (zone) es_word(&z, zone);
    *out = z;
    return p;
}

/* ---- telephone.py ---- */
static size_t telephone_try(const char *s, size_t n, size_t i, es *out, int with_cc);
static size_t telephone_at(const char *s, size_t n, size_t i, es *out)
{
    /* priority union: with a country code if that reads, else without */
    size_t e = telephone_try(s, n, i, out, 1);
    return e ? e : telephone_try(s, n, i, out, 0);
}
static size_t telephone_try(const char *s, size_t n, size_t i, es *out, int with_cc)
{
    es z = {.n = 0};
    size_t p = i;
    int cc = 0;
    /* country code: +? 1-3 digits then '-' or ' ' */
    size_t q = p < n && s[p] == '+' ? p + 1 : p;
    size_t e = digits_end(s, n, q);
    if (!with_cc && q > p) return 0;
    if (with_cc && !(e > q && e - q <= 3 && e < n && (s[e] == ' ' || s[e] == '-') && isd(s, n, e + 1) &&
                     (digits_end(s, n, e + 1) - e - 1 == 3)))
        return 0;
    if (with_cc) {
        if (q > p) es_word(&z, "plus");
        say_digits(&z, s + q, e - q, 0);
        es_puts(&z, ",");
        p = e + 1, cc = 1;
    }
    /* area: ddd followed by - or ., or (ddd) followed by ' ', '-' or nothing */
    char sep;
    if (p < n && s[p] == '(') {
        e = digits_end(s, n, p + 1);
        if (e - p - 1 != 3 || e >= n || s[e] != ')') return 0;
        if (!memcmp(s + p + 1, "800", 3)) es_word(&z, "eight hundred");
        else say_digits(&z, s + p + 1, 3, 0);
        p = e + 1;
        if (p < n && (s[p] == ' ' || s[p] == '-')) p++;
        size_t r = digits_end(s, n, p);
        sep = r < n && (s[r] == '-' || s[r] == '.') ? s[r] : '-';
    } else {
        e = digits_end(s, n, p);
        if (e - p != 3 || e >= n || (s[e] != '-' && s[e] != '.')) return 0;
        if (!memcmp(s + p, "800", 3)) es_word(&z, "eight hundred");
        else say_digits(&z, s + p, 3, 0);
        sep = s[e];
        p = e + 1;
    }
    es_puts(&z, ",");
    /* seven digits or letters, separators deleted: digits spoken, a separator after a digit a comma */
    int cnt = 0;
    while (p < n && cnt < 7) {
        if (isd(s, n, p)) es_word(&z, ONES[s[p] - '0']), cnt++;
        else if (isal(s, n, p)) {
            if (z.n && (z.b[z.n - 1] >= 'A' || z.b[z.n - 1] == ',')) {
                if (z.b[z.n - 1] != ',' && !(isal(s, n, p - 1))) es_puts(&z, " ");
                else if (z.b[z.n - 1] == ',') es_puts(&z, " ");
            } else es_puts(&z, " ");
            es_put(&z, s + p, 1), cnt++;
        } else break;
        p++;
        if (cnt < 7 && p < n && s[p] == sep && (isd(s, n, p + 1) || isal(s, n, p + 1))) {
            if (isd(s, n, p - 1)) es_puts(&z, ",");
            p++;
        }
    }
    if (cnt != 7 || isd(s, n, p) || isal(s, n, p)) return 0;
    /* extension: -d{1,4} */
    if (p + 1 < n && s[p] == sep && isd(s, n, p + 1)) {
        size_t xe = digits_end(s, n, p + 1);
        if (xe - p - 1 <= 4) es_puts(&z, ","), say_digits(&z, s + p + 1, xe - p - 1, 0), p = xe;
    }
    (void)cc;
    *out = z;
    return p;
}

/* ---- electronic.py: user@domain ---- */
static size_t electronic_at(const char *s, size_t n, size_t i, es *out)
{
    size_t p = i;
    es z = {.n = 0};
    int at = 0, dots = 0;
    size_t start = p;
    while (p < n && p - start < 200) {
        char c = s[p];
        if (isal(s, n, p)) {
            size_t e = alpha_end(s, n, p);
            if (z.n && z.b[z.n - 1] != ' ') es_puts(&z, " ");
            es_put(&z, s + p, e - p);
            p = e;
        } else if (isd(s, n, p)) {
            es_word(&z, ONES[c - '0']);
            p++;
        } else if (c == '@' && !at && p > start) {
            es_word(&z, "at"), at = 1, p++;
        } else if (c == '.' && at && (isal(s, n, p + 1) || isd(s, n, p + 1))) {
            es_word(&z, "dot"), dots++, p++;
        } else if (c == '-' || c == '_') {
            es_word(&z, c == '-' ? "dash" : "underscore"), p++;
        } else break;
    }
    if (!at || !dots || !(isal(s, n, p - 1) || isd(s, n, p - 1))) return 0;
    *out = z;
    return p;
}

/* a domain alone: letters then a common domain (domain.tsv): Thepodule.com -> Thepodule dot com */
static size_t domain_at(const char *s, size_t n, size_t i, es *out)
{
    size_t e = i;
    while (e - i < MAX_RUN && (isal(s, n, e) || isd(s, n, e))) e++;
    if (e == i || !isal(s, n, i) || e >= n || s[e] != '.') return 0;
    for (int k = 0; k < tn_en_domain.n; k++) {
        const char *d = tn_en_domain.rows[k].a;
        size_t l = strlen(d);
        if (starts(s, n, e, d) && !isal(s, n, e + l) && !isd(s, n, e + l)) {
            es z = {.n = 0};
            es_put(&z, s + i, e - i);
            es_word(&z, tn_en_domain.rows[k].b);
            *out = z;
            return e + l;
        }
    }
    return 0;
}

/* ---- whitelist.py ---- */
static void m_whitelist_at(tn_lattice *lat, const char *s, size_t n, size_t i)
{
    int rows[16];
    int c = tn_prefixes(&tn_en_whitelist_tts, s + i, n - i, rows, 16);
    for (int k = 0; k < c; k++) {
        const tn_pair *r = &tn_en_whitelist_tts.rows[rows[k]];
        tn_offer(lat, i + strlen(r->a), CLASS_W[EN_WHITELIST], EN_WHITELIST, r->b, strlen(r->b));
    }
    for (int r = 0; r < tn_en_whitelist_symbol.n; r++) {
        const char *a = tn_en_whitelist_symbol.rows[r].a;
        if (starts(s, n, i, a)) tn_offer(lat, i + strlen(a), CLASS_W[EN_WHITELIST], EN_WHITELIST, tn_en_whitelist_symbol.rows[r].b, strlen(tn_en_whitelist_symbol.rows[r].b));
    }
    /* U.S.A. -> USA: an upper-case letter, then two or more ". X" */
    if (i < n && s[i] >= 'A' && s[i] <= 'Z') {
        es z = {.n = 0};
        es_put(&z, s + i, 1);
        size_t p = i + 1;
        int k = 0;
        while (k < 32) {
            size_t q = p;
            if (q < n && s[q] == '.') q++;
            else break;
            if (q < n && s[q] == ' ') q++;
            if (q < n && s[q] >= 'A' && s[q] <= 'Z') es_put(&z, s + q, 1), p = q + 1, k++;
            else break;
        }
        if (k >= 2) {
            if (p < n && s[p] == '.') tn_offer(lat, p + 1, CLASS_W[EN_WHITELIST], EN_WHITELIST, z.b, z.n);
            tn_offer(lat, p, CLASS_W[EN_WHITELIST], EN_WHITELIST, z.b, z.n);
        }
    }
    /* Word, ST -> Word, State */
    if (isal(s, n, i) && (i == 0 || !isal(s, n, i - 1))) {
        size_t e = alpha_end(s, n, i);
        if (e < n && s[e] == ',') {
            size_t q = e + 1 < n && s[e + 1] == ' ' ? e + 2 : e + 1;
            for (int r = 0; r < tn_en_state.n; r++) {
                const char *ab = tn_en_state.rows[r].b;
                if (starts(s, n, q, ab) && !isal(s, n, q + strlen(ab))) {
                    es z = {.n = 0};
                    es_put(&z, s + i, q - i);
                    es_puts(&z, tn_en_state.rows[r].a);
                    tn_offer(lat, q + strlen(ab), CLASS_W[EN_WHITELIST], EN_WHITELIST, z.b, z.n);
                }
            }
        }
    }
}

/* ---- punctuation.py / word.py ---- */
static int symbol_of_whitelist(uint32_t cp)
{
    char b[4];
    int l = cosy_utf8_put(cp, b);
    for (int r = 0; r < tn_en_whitelist_symbol.n; r++)
        if ((int)strlen(tn_en_whitelist_symbol.rows[r].a) == l && !memcmp(tn_en_whitelist_symbol.rows[r].a, b, (size_t)l)) return 1;
    return 0;
}
static int is_punct(uint32_t cp)
{
    if (cp < 128) {
        /* ASCII: the marks of punctuation.py's string less whitelist symbols (& # @ _ % * + / = ^ | ~ $),
         * and '"' and '\\', which the graph adds back escaped */
        return cp && strchr("!'(),-.:;<>?`{}\"\\", (int)cp) != NULL;
    }
    if (cp == '[' || cp == ']' || cp == '"' || cp == '\\') return 0;
    if (cp < 128) {
        if (!strchr("!#%&'()*+,-./:;<=>?@^_`{|}~", (int)cp) || cp == 0) return 0;
    } else {
        /* \p{P} only: symbols (S*) are not punctuation */
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (c < UTF8PROC_CATEGORY_PC || c > UTF8PROC_CATEGORY_PO) return 0;
    }
    return !symbol_of_whitelist(cp);
}
/* byte.SPACE | U+00A0: what the tagger deletes between tokens */
static int is_space(uint32_t cp) { return cp == ' ' || cp == 0xA0 || (cp >= '\t' && cp <= '\r'); }
static int is_word_char(uint32_t cp)
{
    if (cp == COSY_UTF8_INVALID) return 1;
    if (is_space(cp) || is_punct(cp) || (cp >= '0' && cp <= '9')) return 0;
    /* other white space (U+3000, ...) is NOT_SPACE to the grammar: a word character */
    return !(cp == '$' || cp == 0x20AC || cp == 0x20A9 || cp == 0xA3 || cp == 0xA5 || cp == '#' || cp == '%');
}

static void m_word_punct(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos, p = i;
    uint32_t cp;
    size_t l = cosy_utf8_next(s + p, n - p, &cp);
    if (is_space(cp)) {
        tn_offer_raw(lat, i + l, CLASS_W[EN_SPACE], EN_SPACE);
        /* punctuation with the spaces before it */
    }
    if (is_word_char(cp) && !(cp >= '0' && cp <= '9')) {
        if (i > lat->cache_from && i < lat->cache_to) { /* inside the run found before */
            tn_offer_raw(lat, lat->cache_to, CLASS_W[EN_WORD], EN_WORD);
            return;
        }
        while (p < n && p - i < TN_MAX_SPAN) {
            l = cosy_utf8_next(s + p, n - p, &cp);
            if (!is_word_char(cp)) break;
            p += l;
        }
        lat->cache_from = i, lat->cache_to = p;
        tn_offer_raw(lat, p, CLASS_W[EN_WORD], EN_WORD);
        return;
    }
    /* punctuation: spaces (weight -1 each), a run of marks, spaces */
    double w = CLASS_W[EN_PUNCT];
    p = i;
    while (p < n && s[p] == ' ') p++, w -= 1;
    size_t m = p;
    while (m < n && m - i < TN_MAX_SPAN) {
        l = cosy_utf8_next(s + m, n - m, &cp);
        if (!is_punct(cp)) break;
        m += l;
    }
    if (m == p) {
        /* nothing else takes this character: let it through as a word */
        if (p == i && !is_space(cp)) tn_offer_raw(lat, i + l, CLASS_W[EN_WORD], EN_WORD);
        return;
    }
    for (size_t e = p + 1; e <= m; e++) {
        if (e < m && ((unsigned char)s[e] & 0xC0) == 0x80) continue;
        size_t t = e;
        double wt = w;
        if (e == m)
            while (t < n && s[t] == ' ') t++, wt -= 1;
        tn_offer_raw(lat, t, wt, EN_PUNCT);
    }
}

/* ---- roman.py (a class WeTextProcessing tests alone; wetext's tagger leaves it out) ---- */
static size_t roman_at(const char *s, size_t n, size_t i, es *z)
{
    static const char *const R[4][10] = {{"", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX"},
                                         {"", "X", "XX", "XXX", "XL", "L", "LX", "LXX", "LXXX", "XC"},
                                         {"", "C", "CC", "CCC", "CD", "D", "DC", "DCC", "DCCC", "CM"},
                                         {"", "M", "MM", "", "", "", "", "", "", ""}};
    size_t e = i;
    while (e < n && e - i <= 16 && s[e] && strchr("IVXLCDM", s[e])) e++;
    if (e == i || e - i > 16 || isal(s, n, e) || (e - i == 1 && s[i] == 'I')) return 0;
    /* the canonical numeral of 1..2000 (roman_to_spoken.tsv) */
    for (int v = 1; v <= 2000; v++) {
        char b[24] = "";
        strcat(b, R[3][v / 1000]), strcat(b, R[2][v / 100 % 10]), strcat(b, R[1][v / 10 % 10]), strcat(b, R[0][v % 10]);
        if (strlen(b) == e - i && !memcmp(b, s + i, e - i)) {
            /* roman_to_spoken: "one thousand, one hundred eleven" */
            int th = v / 1000, rest = v % 1000;
            if (th) es_word(z, ONES[th]), es_word(z, "thousand");
            if (th && rest) es_puts(z, ",");
            if (rest) say_under_1000(z, rest);
            return e;
        }
    }
    return 0;
}

/* ---- matchers ---- */
static void offer_es(tn_lattice *lat, size_t end, double w, int cls, const es *z)
{
    if (end && es_ok(z)) tn_offer(lat, end, CLASS_W[cls] + w, cls, z->b, z->n);
}

static const char *week_at(const char *s, size_t n, size_t i, size_t *e)
{
    if (i >= n || !strchr("MTWFS", s[i]) || !s[i]) return NULL;
    static const char *const W[][2] = {{"Mon", "Monday"}, {"Tu", "Tuesday"}, {"Wed", "Wednesday"}, {"Thurs", "Thursday"},
                                       {"Thur", "Thursday"}, {"Th", "Thursday"}, {"Fri", "Friday"}, {"Sat", "Saturday"},
                                       {"Sun", "Sunday"}};
    for (size_t k = 0; k < sizeof W / sizeof *W; k++)
        if (starts(s, n, i, W[k][0]) && !isal(s, n, i + strlen(W[k][0]))) {
            *e = i + strlen(W[k][0]);
            if (*e < n && s[*e] == '.') (*e)++;
            return W[k][1];
        }
    return NULL;
}

static void m_numeric(tn_lattice *lat, unsigned mask)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos, e;
    es z = {.n = 0};
    int neg = i < n && s[i] == '-';
    if (mask & 1u << EN_CARDINAL) {
        z.n = 0;
        e = card_at(s, n, i + neg, &z, 1);
        if (e) {
            if (starts(z.b, z.n, 0, "one thousand")) memmove(z.b, z.b + 4, z.n - 4), z.n -= 4;
            es y = {.n = 0};
            if (neg) es_puts(&y, "negative ");
            es_put(&y, z.b, z.n);
            offer_es(lat, e, and_weight(&z), EN_CARDINAL, &y);
        }
    }
    if (mask & 1u << EN_ORDINAL) {
        z.n = 0;
        offer_es(lat, ordinal_at(s, n, i, &z), 0, EN_ORDINAL, &z);
    }
    if (mask & 1u << EN_DECIMAL) {
        z.n = 0;
        e = decimal_core(s, n, i + neg, &z, 0, 0);
        if (e) {
            es y = {.n = 0};
            if (neg) es_puts(&y, "minus ");
            es_put(&y, z.b, z.n);
            offer_es(lat, e, 0, EN_DECIMAL, &y);
        }
    }
    if (mask & 1u << EN_FRACTION) {
        z.n = 0;
        offer_es(lat, fraction_at(s, n, i, &z), 0, EN_FRACTION, &z);
    }
    if (mask & 1u << EN_DATE) {
        double w;
        z.n = 0;
        e = date_at(s, n, i, &z, &w);
        offer_es(lat, e, w, EN_DATE, &z);
    }
    if (mask & 1u << EN_TIME) {
        z.n = 0;
        offer_es(lat, time_at(s, n, i, &z), 0, EN_TIME, &z);
    }
    if (mask & 1u << EN_MEASURE) {
        z.n = 0;
        offer_es(lat, measure_at(s, n, i, &z), 0, EN_MEASURE, &z);
        z.n = 0;
        offer_es(lat, address_at(s, n, i, &z), 0, EN_MEASURE, &z);
    }
    if (mask & 1u << EN_MONEY) {
        z.n = 0;
        offer_es(lat, money_at(s, n, i, &z), 0, EN_MONEY, &z);
    }
    if (mask & 1u << EN_TELEPHONE) {
        z.n = 0;
        offer_es(lat, telephone_at(s, n, i, &z), 0, EN_TELEPHONE, &z);
    }
    if (mask & 1u << EN_RANGE) {
        /* Mon.-Sun.: week (- | ~) week */
        size_t we, we2;
        const char *w1 = week_at(s, n, i, &we), *w2;
        if (w1 && we < n && (s[we] == '-' || s[we] == '~') && (w2 = week_at(s, n, we + 1, &we2))) {
            es y = {.n = 0};
            es_puts(&y, w1);
            es_puts(&y, s[we] == '-' ? " to " : " approximately ");
            es_puts(&y, w2);
            offer_es(lat, we2, 0, EN_RANGE, &y);
        }
        /* cardinal (- | ~ | + | *) cardinal, years 2000-2010 */
        es a = {.n = 0}, b = {.n = 0};
        /* time - time: ten thirty to eleven twenty */
        e = time_at(s, n, i, &a);
        if (e) {
            size_t q = e < n && s[e] == ' ' ? e + 1 : e;
            if (q < n && s[q] == '-') {
                q = q + 1 < n && s[q + 1] == ' ' ? q + 2 : q + 1;
                size_t e2 = time_at(s, n, q, &b);
                if (e2) {
                    es y = a;
                    es_word(&y, "to");
                    es_add(&y, &b);
                    offer_es(lat, e2, 0, EN_RANGE, &y);
                }
            }
        }
        a.n = b.n = 0;
        e = card_det_at(s, n, i, &a);
        if (!e && i < n && s[i] == '~' && (e = card_det_at(s, n, i + 1, &b))) {
            es y = {.n = 0};
            es_puts(&y, "approximately ");
            es_put(&y, b.b, b.n);
            offer_es(lat, e, 0, EN_RANGE, &y);
        }
        if (e) {
            static const char *const J[][2] = {{"-", " to "}, {" - ", " to "}, {"+", " plus "}, {" + ", " plus "},
                                               {"*", " times "}, {" * ", " times "}, {":", " to "}};
            for (size_t k = 0; k < sizeof J / sizeof *J; k++)
                if (starts(s, n, e, J[k][0])) {
                    b.n = 0;
                    size_t e2 = card_det_at(s, n, e + strlen(J[k][0]), &b);
                    if (!e2) continue;
                    es y = a;
                    es_puts(&y, J[k][1]);
                    es_put(&y, b.b, b.n);
                    offer_es(lat, e2, 0, EN_RANGE, &y);
                }
        }
    }
}

static void m_all(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos;
    unsigned mask = lat->user;
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' && lat->pos == 0) { /* leading spaces are deleted */
        tn_offer_raw(lat, 1, 0, EN_SPACE);
    }
    int near = 0; /* numeric classes start at most 24 bytes before a digit ("September 5", "Mon.-") */
    for (size_t j = i; j < n && j < i + 24; j++)
        if (isd(s, n, j) || (unsigned char)s[j] == 0xC2 || (unsigned char)s[j] == 0xE2) { near = 1; break; }
    if (near) m_numeric(lat, mask);
    es z = {.n = 0};
    if (mask & 1u << EN_ELECTRONIC && (isal(s, n, i) || isd(s, n, i)) && (i == 0 || !isal(s, n, i - 1))) {
        offer_es(lat, electronic_at(s, n, i, &z), 0, EN_ELECTRONIC, &z);
        z.n = 0;
        offer_es(lat, domain_at(s, n, i, &z), -0.0001, EN_ELECTRONIC, &z);
    }
    if (mask & 1u << EN_WHITELIST) m_whitelist_at(lat, s, n, i);
    if (mask & 1u << EN_ROMAN) offer_es(lat, roman_at(s, n, i, &z), 0, EN_ROMAN, &z);
    if (mask & (1u << EN_WORD | 1u << EN_PUNCT)) m_word_punct(lat);
}

static cosy_status run(const char *s, size_t n, unsigned mask, int single, cosy_strbuf *out)
{
    static const tn_matcher m[] = {m_all};
    tn_lattice lat = {0};
    lat.user = mask;
    int rc = tn_lattice_run(&lat, s, n, m, 1);
    if (rc) {
        int nomem = lat.failed || !lat.cost;
        tn_lattice_free(&lat);
        if (nomem) return cosy_error(COSY_ERR_NOMEM, "tn: out of memory");
        /* no reading (only a class asked for): the text as written */
        cosy_strbuf_append(out, s, n);
        return out->failed ? cosy_error(COSY_ERR_NOMEM, "tn: out of memory") : COSY_OK;
    }
    size_t cnt = 0;
    for (size_t e = n; e > 0; e = lat.best[e].start) cnt++;
    size_t *ends = malloc((cnt ? cnt : 1) * sizeof *ends);
    if (!ends) {
        tn_lattice_free(&lat);
        return cosy_error(COSY_ERR_NOMEM, "tn: out of memory");
    }
    size_t k = cnt;
    for (size_t e = n; e > 0; e = lat.best[e].start) ends[--k] = e;
    int need_space = 0, any = 0;
    if (single && cnt != 1) {
        cosy_strbuf_append(out, s, n);
    } else
        for (size_t j = 0; j < cnt; j++) {
            const tn_edge *ed = &lat.best[ends[j]];
            if (ed->cls == EN_SPACE) continue;
            const char *t = ed->out_off == (size_t)-1 ? s + ed->start : lat.arena.data + ed->out_off;
            size_t tl = ed->out_off == (size_t)-1 ? ends[j] - ed->start : ed->out_len;
            if (ed->cls == EN_PUNCT && any) {
                /* glued to the token before: (punct.plus | insert(" ")) */
                cosy_strbuf_append(out, t, tl);
                need_space = 0;
                continue;
            }
            if (need_space) cosy_strbuf_append(out, " ", 1);
            cosy_strbuf_append(out, t, tl);
            need_space = 1, any = 1;
        }
    free(ends);
    tn_lattice_free(&lat);
    return out->failed ? cosy_error(COSY_ERR_NOMEM, "tn: out of memory") : COSY_OK;
}

cosy_status tn_en(const char *s, size_t n, cosy_strbuf *out) { return run(s, n, ~(1u << EN_ROMAN), 0, out); }

int tn_en_class_id(const char *name)
{
    for (int k = 0; k < EN_SPACE; k++)
        if (!strcmp(CLASS_NAME[k], name)) return k;
    return -1;
}

cosy_status tn_en_class(const char *s, size_t n, int cls, cosy_strbuf *out)
{
    return run(s, n, 1u << cls, 1, out);
}
