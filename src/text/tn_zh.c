/*
 * tn_zh.c — WeTextProcessing's Chinese TN grammar (tn/chinese/rules @89a0146, as wetext==0.0.4
 * ships it) as matchers over the shared shortest-path search (tn.h). Each class below says which
 * rule it follows; the spoken forms come from the rule's tables (chinese/data, tn_tables.c).
 */
#include "text/tn.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

enum { ZH_DATE, ZH_WHITELIST, ZH_SPORT, ZH_FRACTION, ZH_MEASURE, ZH_MONEY, ZH_TIME, ZH_CARDINAL, ZH_MATH, ZH_CHAR };

/* build_fsts.py: the classes' weights */
#define W_DATE 1.02
#define W_WHITELIST 1.03
#define W_SPORT 1.04
#define W_FRACTION 1.05
#define W_MEASURE 1.05
#define W_MONEY 1.05
#define W_TIME 1.05
#define W_CARDINAL 1.06
#define W_MATH 90.0
#define W_CHAR 100.0

static const char *const DIGIT[10] = {"零", "一", "二", "三", "四", "五", "六", "七", "八", "九"};

/* a small bounded string */
typedef struct { char b[256]; size_t n; } zs;
static void zs_put(zs *z, const char *s, size_t n)
{
    if (z->n + n < sizeof z->b) memcpy(z->b + z->n, s, n), z->n += n;
    else z->n = sizeof z->b; /* saturate: too long, caller treats as no match */
}
static void zs_puts(zs *z, const char *s) { zs_put(z, s, strlen(s)); }
static int zs_ok(const zs *z) { return z->n < sizeof z->b; }

/* ---- cardinal.py: the number grammar (digits | ten | hundred | thousand | ten_thousand) ---- */

/* tens: d 十 (d | rmzero), first digit spoken (一十一); teen form (十一) when teen != 0 */
static void sp_tens(zs *z, const int *d, int teen)
{
    if (!(teen && d[0] == 1)) zs_puts(z, DIGIT[d[0]]);
    zs_puts(z, "十");
    if (d[1]) zs_puts(z, DIGIT[d[1]]);
}
static void sp_hundred(zs *z, const int *d)
{
    zs_puts(z, DIGIT[d[0]]);
    zs_puts(z, "百");
    if (d[1]) sp_tens(z, d + 1, 0);
    else if (d[2]) zs_puts(z, "零"), zs_puts(z, DIGIT[d[2]]);
}
static void sp_thousand(zs *z, const int *d)
{
    zs_puts(z, DIGIT[d[0]]);
    zs_puts(z, "千");
    if (d[1]) sp_hundred(z, d + 1);
    else if (d[2]) zs_puts(z, "零"), sp_tens(z, d + 2, 0);
    else if (d[3]) zs_puts(z, "零"), zs_puts(z, DIGIT[d[3]]);
}
/* 1..8 digits, no leading zero (but "0"); returns 0 if the grammar has no reading */
static int sp_int(zs *z, const int *d, int k)
{
    if (k == 1) return zs_puts(z, DIGIT[d[0]]), 1;
    if (d[0] == 0) return 0;
    switch (k) {
    case 2: sp_tens(z, d, 1); return 1;
    case 3: sp_hundred(z, d); return 1;
    case 4: sp_thousand(z, d); return 1;
    default: break;
    }
    if (k > 8) return 0;
    int h = k - 4;
    const int *lo = d + h;
    if (h == 1) zs_puts(z, DIGIT[d[0]]);
    else if (h == 2) sp_tens(z, d, 1);
    else if (h == 3) sp_hundred(z, d);
    else sp_thousand(z, d);
    zs_puts(z, "万");
    if (lo[0]) sp_thousand(z, lo);
    else if (lo[1]) zs_puts(z, "零"), sp_hundred(z, lo + 1);
    else if (lo[2]) zs_puts(z, "零"), sp_tens(z, lo + 2, 0);
    else if (lo[3]) zs_puts(z, "零"), zs_puts(z, DIGIT[lo[3]]);
    return 1;
}

/* cdrewrite 二百->两百, 二千->两千, 二万->两万 over the number */
static void liang(zs *z, size_t from)
{
    static const char *const unit[] = {"百", "千", "万"};
    for (size_t i = from; i + 6 <= z->n; i += 3)
        if (memcmp(z->b + i, "二", 3) == 0)
            for (int u = 0; u < 3; u++)
                if (memcmp(z->b + i + 3, unit[u], 3) == 0) memcpy(z->b + i, "两", 3);
}

#define MAX_NUMS 48
typedef struct { size_t end; zs t; } znum;

static int starts(const char *s, size_t n, size_t i, const char *lit)
{
    size_t l = strlen(lit);
    return i + l <= n && memcmp(s + i, lit, l) == 0;
}

/* every reading of Cardinal().number at i: 约? 人均? (number | 百分之 number %),
 * number = sign? int (. digit+)?; at most MAX_NUMS, the longest decimals first dropped */
static int zh_numbers(const char *s, size_t n, size_t i, znum *res)
{
    int cnt = 0;
    zs pre = {.n = 0};
    if (starts(s, n, i, "约")) zs_puts(&pre, "约"), i += 3;
    if (starts(s, n, i, "人均")) zs_puts(&pre, "人均"), i += 6;
    const char *sign = NULL;
    size_t sl = 0;
    if (i < n && s[i] == '+') sign = "正", sl = 1;
    else if (i < n && s[i] == '-') sign = "负", sl = 1;
    else if (starts(s, n, i, "±")) sign = "正负", sl = 2;
    size_t p = i + sl;
    int d[8];
    size_t ends[9];
    int k = 0;
    size_t q = p, dl;
    int v;
    while (k < 8 && (v = tn_digit(s, n, q, &dl)) >= 0) {
        d[k++] = v;
        q += dl;
        ends[k] = q;
        /* thousand: d 千 ,? ...: "1,234" */
        if (k == 1 && q < n && s[q] == ',') {
            size_t r = q + 1, l2;
            int dd[3], j;
            for (j = 0; j < 3 && (dd[j] = tn_digit(s, n, r, &l2)) >= 0; j++) r += l2;
            if (j == 3 && tn_digit(s, n, r, &l2) < 0) {
                int all[4] = {d[0], dd[0], dd[1], dd[2]};
                if (d[0] != 0) {
                    znum *o = &res[cnt++];
                    o->t = pre;
                    if (sign) zs_puts(&o->t, sign);
                    size_t from = o->t.n;
                    sp_thousand(&o->t, all);
                    liang(&o->t, from);
                    o->end = r;
                }
                break;
            }
        }
    }
    for (int len = k; len >= 1 && cnt < MAX_NUMS; len--) {
        zs base = pre;
        if (sign) zs_puts(&base, sign);
        size_t from = base.n;
        if (!sp_int(&base, d, len)) continue;
        liang(&base, from);
        size_t e = ends[len];
        /* decimals: . digit+ */
        if (e + 1 < n && s[e] == '.' && tn_digit(s, n, e + 1, &dl) >= 0) {
            zs t = base;
            zs_puts(&t, "点");
            size_t r = e + 1;
            int m = 0;
            while (m < 40 && (v = tn_digit(s, n, r, &dl)) >= 0 && cnt < MAX_NUMS - 2) {
                zs_puts(&t, DIGIT[v]);
                r += dl, m++;
                res[cnt].end = r, res[cnt].t = t, cnt++;
            }
        }
        if (cnt < MAX_NUMS) res[cnt].end = e, res[cnt].t = base, cnt++;
    }
    /* percent: 百分之 number % (number without 约/人均 inside: they come first) */
    int base_cnt = cnt;
    for (int j = 0; j < base_cnt && cnt < MAX_NUMS; j++)
        if (res[j].end < n && s[res[j].end] == '%') {
            znum *o = &res[cnt];
            o->t = pre;
            zs_puts(&o->t, "百分之");
            zs_put(&o->t, res[j].t.b + pre.n, res[j].t.n - pre.n);
            o->end = res[j].end + 1;
            if (zs_ok(&o->t)) cnt++;
        }
    int w = 0;
    for (int j = 0; j < cnt; j++)
        if (zs_ok(&res[j].t)) res[w++] = res[j];
    return w;
}

/* ---- the classes ---- */

static void offer_zs(tn_lattice *lat, size_t end, double w, int cls, const zs *z)
{
    if (zs_ok(z)) tn_offer(lat, end, w, cls, z->b, z->n);
}

/* a run of up to max digits at i; returns the count, values in d, end in *e */
static int digit_run(const char *s, size_t n, size_t i, int *d, int max, size_t *ends)
{
    int k = 0;
    size_t dl;
    int v;
    ends[0] = i;
    while (k < max && (v = tn_digit(s, n, i, &dl)) >= 0) d[k++] = v, i += dl, ends[k] = i;
    return k;
}

static int is_sep(char c) { return c == '/' || c == '-' || c == '.'; }

/* month 1-12 (m.tsv, no leading zero) or 01-12 (mm.tsv); mm_only: the latter alone */
static int month_of(const int *d, int k, int mm_only)
{
    int v = k == 1 ? d[0] : d[0] * 10 + d[1];
    if (k == 1) return mm_only || v == 0 ? 0 : v;
    return v >= 1 && v <= 12 ? v : 0;
}
static int mm_of(const int *d, int k) { return k == 2 && d[0] * 10 + d[1] >= 1 && d[0] * 10 + d[1] <= 12 ? d[0] * 10 + d[1] : 0; }
static int day_of(const int *d, int k)
{
    int v = k == 1 ? d[0] : d[0] * 10 + d[1];
    return v >= 1 && v <= 31 ? v : 0;
}
static void sp_small(zs *z, int v) /* 1..31: 十, 二十一 */
{
    int dd[2] = {v / 10, v % 10};
    if (v < 10) zs_puts(z, DIGIT[v]);
    else sp_tens(z, dd, 1);
}

/* date.py: yyyy/m/d | dd/mm/yyyy | yyyy/mm | mm/yyyy | mm/dd (sep / - .), spoken year month day */
static int date_at(const char *s, size_t n, size_t i, size_t *end, zs *z)
{
    int a[8], b[8], c[8];
    size_t ea[9], eb[9], ec[9];
    int ka = digit_run(s, n, i, a, 4, ea);
    if (ka < 2 || ea[ka] >= n || !is_sep(s[ea[ka]])) return 0;
    size_t p = ea[ka] + 1;
    int kb = digit_run(s, n, p, b, 4, eb);
    if (kb == 0) return 0;
    int best = 0;
    /* three parts */
    if (kb <= 2 && eb[kb] < n && is_sep(s[eb[kb]])) {
        size_t r = eb[kb] + 1;
        int kc = digit_run(s, n, r, c, 4, ec);
        if (ka == 4 && a[0] != 0 && month_of(b, kb, 0)) {
            for (int l = kc < 2 ? kc : 2; l >= 1; l--)
                if (day_of(c, l)) {
                    z->n = 0;
                    for (int j = 0; j < 4; j++) zs_puts(z, DIGIT[a[j]]);
                    zs_puts(z, "年");
                    sp_small(z, month_of(b, kb, 0)), zs_puts(z, "月");
                    sp_small(z, day_of(c, l)), zs_puts(z, "日");
                    *end = ec[l];
                    return 1;
                }
        }
        if (ka <= 2 && day_of(a, ka) && month_of(b, kb, 0) && kc >= 4 && c[0] != 0) {
            z->n = 0;
            for (int j = 0; j < 4; j++) zs_puts(z, DIGIT[c[j]]);
            zs_puts(z, "年");
            sp_small(z, month_of(b, kb, 0)), zs_puts(z, "月");
            sp_small(z, day_of(a, ka)), zs_puts(z, "日");
            *end = ec[4];
            return 1;
        }
    }
    if (ka == 4 && a[0] != 0 && kb >= 2 && mm_of(b, 2)) {
        z->n = 0;
        for (int j = 0; j < 4; j++) zs_puts(z, DIGIT[a[j]]);
        zs_puts(z, "年");
        sp_small(z, mm_of(b, 2)), zs_puts(z, "月");
        *end = eb[2];
        return 1;
    }
    if (ka == 2 && mm_of(a, 2)) {
        if (kb == 4 && b[0] != 0) {
            z->n = 0;
            for (int j = 0; j < 4; j++) zs_puts(z, DIGIT[b[j]]);
            zs_puts(z, "年");
            sp_small(z, mm_of(a, 2)), zs_puts(z, "月");
            *end = eb[4];
            return 1;
        }
        for (int l = kb < 2 ? kb : 2; l >= 1; l--)
            if (day_of(b, l)) {
                z->n = 0;
                sp_small(z, mm_of(a, 2)), zs_puts(z, "月");
                sp_small(z, day_of(b, l)), zs_puts(z, "日");
                *end = eb[l];
                return 1;
            }
    }
    return best;
}

static void m_date(tn_lattice *lat)
{
    size_t e, e2;
    zs z, z2;
    if (!date_at(lat->s, lat->n, lat->pos, &e, &z)) return;
    offer_zs(lat, e, W_DATE, ZH_DATE, &z);
    /* date (- | ~) date: one token, "到" between */
    if (e < lat->n && (lat->s[e] == '-' || lat->s[e] == '~') && date_at(lat->s, lat->n, e + 1, &e2, &z2)) {
        zs_puts(&z, "到");
        zs_put(&z, z2.b, z2.n);
        offer_zs(lat, e2, W_DATE, ZH_DATE, &z);
    }
}

/* whitelist.py: the default list (erhua words are spoken as written: remove_erhua=False) */
static void m_whitelist(tn_lattice *lat)
{
    int rows[8];
    int c = tn_prefixes(&tn_zh_whitelist, lat->s + lat->pos, lat->n - lat->pos, rows, 8);
    for (int k = 0; k < c; k++) {
        const tn_pair *r = &tn_zh_whitelist.rows[rows[k]];
        tn_offer(lat, lat->pos + strlen(r->a), W_WHITELIST, ZH_WHITELIST, r->b, strlen(r->b));
    }
}

static size_t skip_space(const char *s, size_t n, size_t i) { return i < n && s[i] == ' ' ? i + 1 : i; }

/* sport.py: (country | club) ' '? number (/ | - | :) number ' '? -> team number 比 number */
static void sport_from(tn_lattice *lat, size_t e, const char *team, size_t tl)
{
    const char *s = lat->s;
    size_t n = lat->n;
    znum a[MAX_NUMS], b[MAX_NUMS];
    size_t p = skip_space(s, n, e);
    int na = zh_numbers(s, n, p, a);
    for (int i = 0; i < na; i++) {
        size_t q = a[i].end;
        if (q >= n || !(s[q] == '/' || s[q] == '-' || s[q] == ':')) continue;
        int nb = zh_numbers(s, n, q + 1, b);
        for (int j = 0; j < nb; j++) {
            zs z = {.n = 0};
            zs_put(&z, team, tl);
            zs_put(&z, a[i].t.b, a[i].t.n);
            zs_puts(&z, "比");
            zs_put(&z, b[j].t.b, b[j].t.n);
            offer_zs(lat, skip_space(s, n, b[j].end), W_SPORT, ZH_SPORT, &z);
        }
    }
}
static void m_sport(tn_lattice *lat)
{
    const char *s = lat->s + lat->pos;
    size_t n = lat->n - lat->pos;
    /* a team name is followed by a digit within a few bytes: test that first */
    size_t lim = n < 96 ? n : 96, j, dl;
    for (j = 0; j < lim && tn_digit(s, n, j, &dl) < 0; j++) {}
    if (j == lim || j == 0) return;
    const tn_table *t[2] = {&tn_zh_sport_country, &tn_zh_sport_club};
    int rows[16];
    for (int k = 0; k < 2; k++) {
        int c = tn_prefixes(t[k], s, j + 1, rows, 16);
        for (int r = 0; r < c; r++) {
            size_t l = strlen(t[k]->rows[rows[r]].a);
            sport_from(lat, lat->pos + l, t[k]->rows[rows[r]].a, l);
        }
    }
}

/* fraction.py: number ' '? / ' '? number -> denominator 分之 numerator */
static void m_fraction(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n;
    znum a[MAX_NUMS], b[MAX_NUMS];
    int na = zh_numbers(s, n, lat->pos, a);
    for (int i = 0; i < na; i++) {
        size_t q = skip_space(s, n, a[i].end);
        if (q >= n || s[q] != '/') continue;
        int nb = zh_numbers(s, n, skip_space(s, n, q + 1), b);
        for (int j = 0; j < nb; j++) {
            zs z = {.n = 0};
            zs_put(&z, b[j].t.b, b[j].t.n);
            zs_puts(&z, "分之");
            zs_put(&z, a[i].t.b, a[i].t.n);
            offer_zs(lat, b[j].end, W_FRACTION, ZH_FRACTION, &z);
        }
    }
}

/* measure.py units: (k->千 | w->万, weight 0.1)? (units_en | units_zh); every reading at i */
#define MAX_UNITS 16
typedef struct { size_t end; double w; zs t; } zunit;
static int zh_units(const char *s, size_t n, size_t i, zunit *u)
{
    int cnt = 0;
    for (int pre = 0; pre < 2; pre++) {
        size_t p = i;
        const char *ps = NULL;
        if (pre) {
            if (i < n && s[i] == 'k') ps = "千";
            else if (i < n && s[i] == 'w') ps = "万";
            else break;
            p++;
        }
        const tn_table *t[2] = {&tn_zh_units_en, &tn_zh_units_zh};
        int rows[MAX_UNITS];
        for (int k = 0; k < 2; k++) {
            int c = p < n ? tn_prefixes(t[k], s + p, n - p, rows, MAX_UNITS) : 0;
            for (int r = 0; r < c && cnt < MAX_UNITS; r++) {
                zunit *o = &u[cnt++];
                o->end = p + strlen(t[k]->rows[rows[r]].a);
                o->w = pre ? 0.1 : 0;
                o->t.n = 0;
                if (ps) zs_puts(&o->t, ps);
                zs_puts(&o->t, t[k]->rows[rows[r]].b);
            }
        }
    }
    return cnt;
}

/* number with a lone 二 read 两 (the measure rule's cdrewrite [BOS] 二 [EOS]) */
static void measure_number(znum *a)
{
    if (a->t.n == 3 && memcmp(a->t.b, "二", 3) == 0) memcpy(a->t.b, "两", 3);
}

/* the rewrites after a measure: [BOS]两(两|月|号) -> 二.., 到两(两|月|号)[EOS] -> 到二.. */
static void measure_fix(zs *z)
{
    static const char *const u[] = {"两", "月", "号"};
    for (int k = 0; k < 3; k++) {
        if (z->n >= 6 && memcmp(z->b, "两", 3) == 0 && memcmp(z->b + 3, u[k], 3) == 0) memcpy(z->b, "二", 3);
        if (z->n >= 9 && memcmp(z->b + z->n - 9, "到两", 6) == 0 && memcmp(z->b + z->n - 3, u[k], 3) == 0)
            memcpy(z->b + z->n - 6, "二", 3);
    }
}

static size_t to_at(const char *s, size_t n, size_t i)
{
    if (i < n && (s[i] == '-' || s[i] == '~')) return i + 1;
    if (starts(s, n, i, "到")) return i + 3;
    return 0;
}

/* number' ' '? units at i, with a prefix zs already spoken; offers value and numerator/denominator */
static void measure_core(tn_lattice *lat, size_t i, const zs *prefix, double w0)
{
    const char *s = lat->s;
    size_t n = lat->n;
    znum a[MAX_NUMS];
    zunit u[MAX_UNITS], v[MAX_UNITS];
    int na = zh_numbers(s, n, i, a);
    for (int k = 0; k < na; k++) {
        measure_number(&a[k]);
        int nu = zh_units(s, n, skip_space(s, n, a[k].end), u);
        for (int j = 0; j < nu; j++) {
            zs z = *prefix;
            zs_put(&z, a[k].t.b, a[k].t.n);
            zs_put(&z, u[j].t.b, u[j].t.n);
            measure_fix(&z);
            offer_zs(lat, u[j].end, W_MEASURE + w0 + u[j].w, ZH_MEASURE, &z);
            /* 10km/h: 每 denominator numerator */
            size_t q = skip_space(s, n, u[j].end);
            if (q < n && s[q] == '/') {
                int nv = zh_units(s, n, skip_space(s, n, q + 1), v);
                for (int m = 0; m < nv; m++) {
                    zs y = {.n = 0};
                    zs_puts(&y, "每");
                    zs_put(&y, v[m].t.b, v[m].t.n);
                    zs_put(&y, z.b, z.n);
                    offer_zs(lat, v[m].end, W_MEASURE + w0 + u[j].w + v[m].w, ZH_MEASURE, &y);
                }
            }
        }
    }
}

/* annual: (dd | dddd) (年 | 年度 | 赛季), digits read one by one, with an optional range prefix */
static int annual_digits(const char *s, size_t n, size_t i, zs *z, size_t *end)
{
    int d[5];
    size_t e[6];
    int k = digit_run(s, n, i, d, 5, e);
    if (k != 2 && k != 4) return 0;
    for (int j = 0; j < k; j++) zs_puts(z, DIGIT[d[j]]);
    *end = e[k];
    return 1;
}
static size_t annual_unit(const char *s, size_t n, size_t i, zs *z)
{
    static const char *const u[] = {"年度", "赛季", "年"};
    for (int k = 0; k < 3; k++)
        if (starts(s, n, i, u[k])) return zs_puts(z, u[k]), i + strlen(u[k]);
    return 0;
}

static void m_measure(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos;
    if (tn_digit(s, n, i, &(size_t){0}) < 0 && s[i] != '-' && s[i] != '+' && !starts(s, n, i, "±") &&
        !starts(s, n, i, "约") && !starts(s, n, i, "人"))
        return;
    zs empty = {.n = 0};
    measure_core(lat, i, &empty, 0);
    /* prefix: number (' '? units)? to */
    znum a[MAX_NUMS];
    zunit u[MAX_UNITS];
    int na = zh_numbers(s, n, i, a);
    for (int k = 0; k < na; k++) {
        measure_number(&a[k]);
        size_t t = to_at(s, n, a[k].end);
        if (t) {
            zs z = a[k].t;
            zs_puts(&z, "到");
            measure_core(lat, t, &z, 0);
        }
        int nu = zh_units(s, n, skip_space(s, n, a[k].end), u);
        for (int j = 0; j < nu; j++)
            if ((t = to_at(s, n, u[j].end))) {
                zs z = a[k].t;
                zs_put(&z, u[j].t.b, u[j].t.n);
                zs_puts(&z, "到");
                measure_core(lat, t, &z, u[j].w);
            }
    }
    /* annual */
    zs z = {.n = 0};
    size_t e, e2;
    if (annual_digits(s, n, i, &z, &e)) {
        size_t ue = annual_unit(s, n, e, &z);
        if (ue) offer_zs(lat, ue, W_MEASURE, ZH_MEASURE, &z);
        zs y = {.n = 0};
        annual_digits(s, n, i, &y, &e);
        size_t after = skip_space(s, n, e);
        for (int with_unit = 0; with_unit < 2; with_unit++) {
            zs p = y;
            size_t q = e;
            if (with_unit) {
                if (!(q = annual_unit(s, n, after, &p))) continue;
            }
            size_t t = to_at(s, n, q);
            zs r = p;
            if (t) {
                zs_puts(&r, "到");
                if (annual_digits(s, n, t, &r, &e2) && (ue = annual_unit(s, n, e2, &r)))
                    offer_zs(lat, ue, W_MEASURE, ZH_MEASURE, &r);
            }
        }
    }
}

/* money.py: (code | symbol) ' '? number -> number currency */
static void m_money(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos;
    const tn_table *t[2] = {&tn_zh_money_code, &tn_zh_money_symbol};
    znum a[MAX_NUMS];
    int rows[8];
    for (int k = 0; k < 2; k++) {
        int c = tn_prefixes(t[k], s + i, n - i, rows, 8);
        for (int r = 0; r < c; r++) {
            const tn_pair *row = &t[k]->rows[rows[r]];
            int na = zh_numbers(s, n, skip_space(s, n, i + strlen(row->a)), a);
            for (int j = 0; j < na; j++) {
                zs z = a[j].t;
                zs_puts(&z, row->b);
                offer_zs(lat, a[j].end, W_MONEY, ZH_MONEY, &z);
            }
        }
    }
}

/* time.py: h (:|：) mm ((:|：) ss)? ' '? noon? -> noon hour minute second; range with 到 */
static size_t colon_at(const char *s, size_t n, size_t i)
{
    if (i < n && s[i] == ':') return i + 1;
    if (starts(s, n, i, "：")) return i + 3;
    return 0;
}
#define MAX_TIMES 4
typedef struct { size_t end; zs t; } ztime;
static int time_at(const char *s, size_t n, size_t i, ztime *res)
{
    int d[3];
    size_t e[4];
    int k = digit_run(s, n, i, d, 3, e), cnt = 0;
    for (int hl = 1; hl <= 2 && hl <= k; hl++) {
        int h = hl == 1 ? d[0] : d[0] * 10 + d[1];
        if ((hl == 1 && h == 0) || h > 24) continue;
        size_t c = colon_at(s, n, e[hl]);
        if (!c) continue;
        int md[3];
        size_t me[4];
        if (digit_run(s, n, c, md, 2, me) != 2 || md[0] > 5) continue;
        zs hm = {.n = 0};
        if (h == 2) zs_puts(&hm, "两");
        else if (h < 10) zs_puts(&hm, DIGIT[h]);
        else sp_small(&hm, h);
        zs_puts(&hm, "点");
        int mv = md[0] * 10 + md[1];
        if (mv) {
            if (mv < 10) zs_puts(&hm, "零");
            sp_small(&hm, mv);
            zs_puts(&hm, "分");
        }
        size_t p = me[2];
        zs full = hm;
        size_t c2 = colon_at(s, n, p);
        int sd[3];
        size_t se[4];
        if (c2 && digit_run(s, n, c2, sd, 2, se) == 2 && sd[0] <= 5) {
            int sv = sd[0] * 10 + sd[1];
            if (sv) sp_small(&full, sv), zs_puts(&full, "秒");
            p = se[2];
        }
        if (cnt < MAX_TIMES) res[cnt].end = p, res[cnt].t = full, cnt++;
        size_t q = skip_space(s, n, p);
        for (int r = 0; r < tn_zh_noon.n; r++)
            if (starts(s, n, q, tn_zh_noon.rows[r].a) && cnt < MAX_TIMES) {
                zs z = {.n = 0};
                zs_puts(&z, tn_zh_noon.rows[r].b);
                zs_put(&z, full.b, full.n);
                res[cnt].end = q + strlen(tn_zh_noon.rows[r].a), res[cnt].t = z, cnt++;
            }
    }
    return cnt;
}
static void m_time(tn_lattice *lat)
{
    ztime a[MAX_TIMES], b[MAX_TIMES];
    int na = time_at(lat->s, lat->n, lat->pos, a);
    for (int k = 0; k < na; k++) {
        offer_zs(lat, a[k].end, W_TIME, ZH_TIME, &a[k].t);
        size_t e = a[k].end;
        if (e < lat->n && (lat->s[e] == '-' || lat->s[e] == '~')) {
            int nb = time_at(lat->s, lat->n, e + 1, b);
            for (int j = 0; j < nb; j++) {
                zs z = a[k].t;
                zs_puts(&z, "到");
                zs_put(&z, b[j].t.b, b[j].t.n);
                offer_zs(lat, b[j].end, W_TIME, ZH_TIME, &z);
            }
        }
    }
}

/* cardinal.py: 127.0.0.1, percent, xxxx-xxx-xxx, xxx-xxxxxxxx, phone numbers (weight -1) */
static void m_cardinal(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos, dl;
    znum a[MAX_NUMS];
    if (s[i] == '%' ) return;
    if (tn_digit(s, n, i, &dl) >= 0 || s[i] == '-' || s[i] == '+' || starts(s, n, i, "±") || starts(s, n, i, "约") ||
        starts(s, n, i, "人")) {
        int na = zh_numbers(s, n, i, a);
        for (int k = 0; k < na; k++)
            if (a[k].end > i && s[a[k].end - 1] == '%') offer_zs(lat, a[k].end, W_CARDINAL, ZH_CARDINAL, &a[k].t);
    }
    int d[64];
    size_t e[65];
    /* digit groups joined by '.' (IP) or '-' */
    {
        zs z = {.n = 0};
        size_t p = i;
        int groups = 0, lens[4] = {0};
        char sep = 0;
        while (groups < 4) {
            int k = digit_run(s, n, p, d, 63, e);
            if (!k) break;
            for (int j = 0; j < k; j++) zs_puts(&z, DIGIT[d[j]]);
            lens[groups++] = k;
            p = e[k];
            if (groups == 4 || p + 1 >= n) break;
            char c = s[p];
            if ((c != '.' && c != '-') || (sep && c != sep) || tn_digit(s, n, p + 1, &dl) < 0) break;
            if (c == '-' && groups == 3) break;
            sep = c;
            if (c == '.') zs_puts(&z, "点");
            p++;
        }
        if (sep == '.' && groups == 4) offer_zs(lat, p, W_CARDINAL, ZH_CARDINAL, &z);
        if (sep == '-' && groups == 3) offer_zs(lat, p, W_CARDINAL, ZH_CARDINAL, &z);
        if (sep == '-' && groups >= 2 && lens[0] == 3 && lens[1] == 8) {
            zs y = {.n = 0};
            size_t q = i;
            for (int g = 0; g < 2; g++) {
                int k = digit_run(s, n, q, d, 8, e);
                for (int j = 0; j < k; j++) zs_puts(&y, DIGIT[d[j]]);
                q = e[k] + (g == 0);
            }
            offer_zs(lat, q, W_CARDINAL, ZH_CARDINAL, &y);
        }
    }
    /* phone: 3, 5 or 11 digits, 1 read 幺; 尾号(是|为)? dddd */
    size_t p = i;
    zs z = {.n = 0};
    if (starts(s, n, p, "尾号")) {
        zs_puts(&z, "尾号"), p += 6;
        if (starts(s, n, p, "是") || starts(s, n, p, "为")) zs_put(&z, s + p, 3), p += 3;
    }
    int k = digit_run(s, n, p, d, 11, e);
    if (z.n) {
        if (k < 4) return;
        for (int j = 0; j < 4; j++) zs_puts(&z, d[j] == 1 ? "幺" : DIGIT[d[j]]);
        offer_zs(lat, e[4], W_CARDINAL - 1.0, ZH_CARDINAL, &z);
        return;
    }
    for (int j = 0; j < k; j++) {
        zs_puts(&z, d[j] == 1 ? "幺" : DIGIT[d[j]]);
        if (j + 1 == 3 || j + 1 == 5 || j + 1 == 11) offer_zs(lat, e[j + 1], W_CARDINAL - 1.0, ZH_CARDINAL, &z);
    }
}

/* math.py: number (' '? op ' '? number)* | operator */
static const char *const OPS[][2] = {{">=", "大于等于"}, {"<=", "小于等于"}, {"×", "乘"}, {"-", "减"}, {"+", "加"},
                                     {"=", "等于"},      {"÷", "除"},         {"≥", "大于等于"}, {"≤", "小于等于"}};
static const char *const SYMS[][2] = {{"~", "到"}, {":", "比"}, {"<", "小于"}, {">", "大于"}};
static size_t op_at(const char *s, size_t n, size_t i, int with_symbols, const char **sp)
{
    if (i >= n || !strchr("><-+=~:\xc3\xe2", s[i]) || !s[i]) return 0;
    for (size_t k = 0; k < sizeof OPS / sizeof *OPS; k++)
        if (starts(s, n, i, OPS[k][0])) return *sp = OPS[k][1], i + strlen(OPS[k][0]);
    if (with_symbols)
        for (size_t k = 0; k < sizeof SYMS / sizeof *SYMS; k++)
            if (starts(s, n, i, SYMS[k][0])) return *sp = SYMS[k][1], i + 1;
    return 0;
}
static void m_math(tn_lattice *lat)
{
    const char *s = lat->s;
    size_t n = lat->n, i = lat->pos;
    const char *sp;
    size_t oe = op_at(s, n, i, 0, &sp);
    if (oe) tn_offer(lat, oe, W_MATH, ZH_MATH, sp, strlen(sp));
    znum a[MAX_NUMS];
    int na = zh_numbers(s, n, i, a);
    if (!na) return;
    for (int k = 0; k < na; k++) offer_zs(lat, a[k].end, W_MATH, ZH_MATH, &a[k].t);
    /* chains continue from the longest reading of each number */
    zs z = a[0].t;
    size_t p = a[0].end;
    int steps = 0;
    while (p < n && p - i < TN_MAX_SPAN && steps++ < 16) { /* at most 16 operators in one token */
        size_t q = skip_space(s, n, p);
        size_t r = op_at(s, n, q, 1, &sp);
        if (!r) break;
        r = skip_space(s, n, r);
        int nb = zh_numbers(s, n, r, a);
        if (!nb) break;
        zs_puts(&z, sp);
        for (int k = 0; k < nb; k++) {
            zs y = z;
            zs_put(&y, a[k].t.b, a[k].t.n);
            offer_zs(lat, a[k].end, W_MATH, ZH_MATH, &y);
        }
        zs_put(&z, a[0].t.b, a[0].t.n);
        if (!zs_ok(&z)) break;
        p = a[0].end;
    }
}

/* char.py: any one character */
static void m_char(tn_lattice *lat)
{
    uint32_t cp;
    size_t l = cosy_utf8_next(lat->s + lat->pos, lat->n - lat->pos, &cp);
    tn_offer_raw(lat, lat->pos + l, W_CHAR, ZH_CHAR);
}

static int near_digit(tn_lattice *lat)
{
    /* all classes but char and whitelist and sport start at most 7 bytes before a digit (约人均±) */
    size_t dl;
    for (size_t j = lat->pos; j < lat->n && j < lat->pos + 12; j++)
        if (tn_digit(lat->s, lat->n, j, &dl) >= 0) return 1;
    return 0;
}
static void m_numeric(tn_lattice *lat)
{
    if (!near_digit(lat)) return;
    m_date(lat);
    m_fraction(lat);
    m_measure(lat);
    m_money(lat);
    m_time(lat);
    m_cardinal(lat);
    m_math(lat);
}
static void m_math_op(tn_lattice *lat)
{
    if (near_digit(lat)) return; /* m_math ran */
    const char *sp;
    size_t oe = op_at(lat->s, lat->n, lat->pos, 0, &sp);
    if (oe) tn_offer(lat, oe, W_MATH, ZH_MATH, sp, strlen(sp));
}

cosy_status tn_zh(const char *s, size_t n, cosy_strbuf *out)
{
    static const tn_matcher m[] = {m_whitelist, m_sport, m_numeric, m_math_op, m_char};
    tn_lattice lat = {0};
    if (tn_lattice_run(&lat, s, n, m, (int)(sizeof m / sizeof *m))) {
        tn_lattice_free(&lat);
        return cosy_error(COSY_ERR_NOMEM, "tn: out of memory");
    }
    /* walk back, then write front to back */
    size_t cnt = 0;
    for (size_t e = n; e > 0; e = lat.best[e].start) cnt++;
    size_t *ends = malloc((cnt ? cnt : 1) * sizeof *ends);
    if (!ends) {
        tn_lattice_free(&lat);
        return cosy_error(COSY_ERR_NOMEM, "tn: out of memory");
    }
    size_t k = cnt;
    for (size_t e = n; e > 0; e = lat.best[e].start) ends[--k] = e;
    for (size_t j = 0; j < cnt; j++) {
        const tn_edge *ed = &lat.best[ends[j]];
        if (ed->out_off == (size_t)-1) cosy_strbuf_append(out, s + ed->start, ends[j] - ed->start);
        else cosy_strbuf_append(out, lat.arena.data + ed->out_off, ed->out_len);
    }
    free(ends);
    tn_lattice_free(&lat);
    return out->failed ? cosy_error(COSY_ERR_NOMEM, "tn: out of memory") : COSY_OK;
}
