/*
 * tn_common.c — the shortest-path token search both TN grammars share, wetext's language choice
 * and digit test, and table look-ups (tn.h).
 */
#include "text/tn.h"
#include "core/error.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static cosy_status nomem(void) { return cosy_error(COSY_ERR_NOMEM, "tn: out of memory"); }

const char *tn_table_find(const tn_table *t, const char *s, size_t n)
{
    for (int i = 0; i < t->n; i++)
        if (strlen(t->rows[i].a) == n && memcmp(t->rows[i].a, s, n) == 0) return t->rows[i].b;
    return NULL;
}

const char *tn_table_prefix(const tn_table *t, const char *s, size_t n, size_t *len)
{
    const char *best = NULL;
    size_t bl = 0;
    for (int i = 0; i < t->n; i++) {
        size_t l = strlen(t->rows[i].a);
        if (l > bl && l <= n && memcmp(t->rows[i].a, s, l) == 0) best = t->rows[i].b, bl = l;
    }
    *len = bl;
    return best;
}

/* prefix look-up: each table's rows hashed by their first (up to) 3 bytes */
#define IDX_BUCKETS 4096
typedef struct { const tn_table *t; int first[IDX_BUCKETS]; int *next; unsigned char *len; } tn_index;
static const tn_table *const INDEXED[] = {&tn_zh_units_en, &tn_zh_units_zh, &tn_zh_money_code, &tn_zh_money_symbol,
                                          &tn_zh_whitelist, &tn_zh_sport_country, &tn_zh_sport_club, &tn_en_whitelist_tts,
                                          &tn_en_unit, &tn_en_currency_major, &tn_en_month_name,
                                          &tn_en_month_abbr};
#define N_INDEXED (sizeof INDEXED / sizeof *INDEXED)
static tn_index *indexes;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static unsigned bucket(const char *p, size_t l)
{
    unsigned h = (unsigned)l * 2654435761u;
    for (size_t i = 0; i < l; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
    return (h >> 7) % IDX_BUCKETS;
}
static void build_indexes(void)
{
    tn_index *x = calloc(N_INDEXED, sizeof *x);
    if (!x) return;
    for (size_t k = 0; k < N_INDEXED; k++) {
        const tn_table *t = INDEXED[k];
        x[k].t = t;
        x[k].next = malloc((size_t)t->n * sizeof(int) + 1);
        x[k].len = malloc((size_t)t->n + 1);
        if (!x[k].next || !x[k].len) return; /* indexes stay NULL: plain scans */
        for (int b = 0; b < IDX_BUCKETS; b++) x[k].first[b] = -1;
        for (int r = t->n - 1; r >= 0; r--) {
            size_t l = strlen(t->rows[r].a);
            x[k].len[r] = (unsigned char)(l > 255 ? 255 : l);
            unsigned b = bucket(t->rows[r].a, l < 3 ? l : 3);
            x[k].next[r] = x[k].first[b];
            x[k].first[b] = r;
        }
    }
    indexes = x;
}

int tn_prefixes(const tn_table *t, const char *s, size_t n, int *rows, int max)
{
    pthread_once(&index_once, build_indexes);
    int cnt = 0;
    const tn_index *x = NULL;
    for (size_t k = 0; indexes && k < N_INDEXED; k++)
        if (indexes[k].t == t) x = &indexes[k];
    if (!x) {
        for (int r = 0; r < t->n && cnt < max; r++) {
            size_t l = strlen(t->rows[r].a);
            if (l && l <= n && !memcmp(t->rows[r].a, s, l)) rows[cnt++] = r;
        }
        return cnt;
    }
    for (size_t kl = 1; kl <= 3 && kl <= n; kl++)
        for (int r = x->first[bucket(s, kl)]; r >= 0 && cnt < max; r = x->next[r]) {
            size_t l = x->len[r];
            if ((kl < 3 ? l == kl : l >= 3) && l <= n && !memcmp(t->rows[r].a, s, l)) rows[cnt++] = r;
        }
    return cnt;
}

int tn_digit(const char *s, size_t n, size_t i, size_t *len)
{
    if (i >= n) return -1;
    unsigned char c = (unsigned char)s[i];
    if (c >= '0' && c <= '9') return *len = 1, c - '0';
    /* fullwidth U+FF10..U+FF19: EF BC 90..99 */
    if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBC && (unsigned char)s[i + 2] >= 0x90 &&
        (unsigned char)s[i + 2] <= 0x99)
        return *len = 3, (unsigned char)s[i + 2] - 0x90;
    return -1;
}

static void offer_edge(tn_lattice *lat, size_t end, double w, int cls, size_t off, size_t len)
{
    if (end <= lat->pos || end > lat->n || end - lat->pos > TN_MAX_SPAN) return;
    double c = lat->cost[lat->pos] + w;
    if (!(c < lat->cost[end] - 1e-9)) return;
    lat->cost[end] = c;
    lat->best[end] = (tn_edge){.start = lat->pos, .out_off = off, .out_len = len, .cls = cls};
}

void tn_offer(tn_lattice *lat, size_t end, double w, int cls, const char *out, size_t out_len)
{
    if (end <= lat->pos || end > lat->n) return;
    if (!(lat->cost[lat->pos] + w < lat->cost[end] - 1e-9)) return;
    size_t off = lat->arena.len;
    cosy_strbuf_append(&lat->arena, out, out_len);
    if (lat->arena.failed) { lat->failed = 1; return; }
    offer_edge(lat, end, w, cls, off, out_len);
}

void tn_offer_raw(tn_lattice *lat, size_t end, double w, int cls) { offer_edge(lat, end, w, cls, (size_t)-1, 0); }

int tn_lattice_run(tn_lattice *lat, const char *s, size_t n, const tn_matcher *m, int nm)
{
    unsigned user = lat->user;
    memset(lat, 0, sizeof *lat);
    lat->user = user;
    lat->s = s;
    lat->n = n;
    lat->cost = malloc((n + 1) * sizeof *lat->cost);
    lat->best = calloc(n + 1, sizeof *lat->best);
    if (!lat->cost || !lat->best) return -1;
    for (size_t i = 0; i <= n; i++) lat->cost[i] = INFINITY;
    lat->cost[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(lat->cost[i])) continue;
        lat->pos = i;
        for (int k = 0; k < nm; k++) m[k](lat);
        if (lat->failed) return -1;
    }
    return isinf(lat->cost[n]) ? -1 : 0;
}

void tn_lattice_free(tn_lattice *lat)
{
    free(lat->cost);
    free(lat->best);
    cosy_strbuf_free(&lat->arena);
    cosy_strbuf_free(&lat->tmp);
    memset(lat, 0, sizeof *lat);
}

int cosy_tn_is_zh(const char *text, size_t n)
{
    int all_digits = n > 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = cosy_utf8_next(text + i, n - i, &cp);
        if (cp != COSY_UTF8_INVALID && cosy_unicode_is_cjk(cp)) return 1;
        if (cp == COSY_UTF8_INVALID || cosy_unicode_py_digit(cp) < 0) all_digits = 0;
        i += l;
    }
    return all_digits; /* Python's str.isdigit(): "" is not */
}

static int has_re_digit(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = cosy_utf8_next(s + i, n - i, &cp);
        if (cp != COSY_UTF8_INVALID) {
            int d = cosy_unicode_py_digit(cp);
            if (d >= 0 && d <= 9) return 1; /* \d is \p{Nd} */
        }
        i += l;
    }
    return 0;
}

/* Python str.strip(): white space as str.isspace() */
static void py_strip(const char **s, size_t *n)
{
    const char *p = *s;
    size_t len = *n;
    for (;;) {
        if (!len) break;
        uint32_t cp;
        size_t l = cosy_utf8_next(p, len, &cp);
        if (cp == COSY_UTF8_INVALID || !cosy_unicode_is_py_space(cp)) break;
        p += l, len -= l;
    }
    while (len) {
        size_t k = len - 1;
        while (k > 0 && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        cosy_utf8_next(p + k, len - k, &cp);
        if (cp == COSY_UTF8_INVALID || !cosy_unicode_is_py_space(cp)) break;
        len = k;
    }
    *s = p;
    *n = len;
}

cosy_status cosy_tn_grammar(const char *text, size_t n, cosy_tn_lang lang, cosy_strbuf *out)
{
    if (lang == COSY_TN_AUTO) lang = cosy_tn_is_zh(text, n) ? COSY_TN_ZH : COSY_TN_EN;
    cosy_strbuf tmp = {0};
    cosy_status st = lang == COSY_TN_ZH ? tn_zh(text, n, &tmp) : tn_en(text, n, &tmp);
    if (st == COSY_OK) {
        const char *p = tmp.data ? tmp.data : "";
        size_t l = tmp.len;
        py_strip(&p, &l);
        cosy_strbuf_append(out, p, l);
        if (out->failed) st = nomem();
    }
    cosy_strbuf_free(&tmp);
    return st;
}

cosy_status cosy_tn_normalize(const char *text, size_t n, cosy_tn_lang lang, cosy_strbuf *out)
{
    const char *p = text;
    size_t l = n;
    py_strip(&p, &l);
    if (!has_re_digit(p, l)) {
        cosy_strbuf_append(out, p, l);
        return out->failed ? nomem() : COSY_OK;
    }
    return cosy_tn_grammar(p, l, lang, out);
}
