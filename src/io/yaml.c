/* yaml.c — HyperPyYAML subset over libyaml (see yaml.h). */
#include "io/yaml.h"
#include "core/error.h"
#include "core/file.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_REF_DEPTH 16
/* Parentheses and unary minus nest the recursive-descent parser; bound them so a
 * crafted value such as 300k '(' is refused instead of overflowing the stack. */
#define MAX_EXPR_NEST 64
/* Total atoms (numbers and references) evaluated for one key: references that fan
 * out (<a> + <a> at every level) would otherwise take exponential time. Real
 * CosyVoice configs need a few dozen. */
#define MAX_EVAL_STEPS 100000

/* libyaml's scanner keeps one possible simple key per open flow collection and re-checks all
 * of them for every token, so its time grows with tokens x flow depth: a value of 300k '['
 * took minutes before the document ever reached our own limits. HyperPyYAML configs nest flow
 * collections two or three deep ([[1, 3, 5], ...]) and are a few KB, so both are bounded before
 * libyaml sees the text. */
#define MAX_FLOW_DEPTH 32
#define MAX_YAML_BYTES (1u << 20)

struct cosy_yaml {
    yaml_document_t doc;
    char *name; /* file name for messages */
};

/* Refuses text larger than MAX_YAML_BYTES, or whose flow collections ('[' / '{') nest deeper than
 * MAX_FLOW_DEPTH outside quoted scalars and comments, naming the line, column and byte. (A bracket
 * inside a plain scalar counts too: harmless below the limit.) */
static cosy_status prescan(const char *text, size_t len, const char *name)
{
    if (len > MAX_YAML_BYTES)
        return cosy_error(COSY_ERR_FORMAT, "%s: %zu bytes is too large for a model config (limit %u)", name, len, MAX_YAML_BYTES);
    size_t line = 1, column = 0;
    int depth = 0;
    char quote = 0, prev = '\n';
    for (size_t i = 0; i < len; i++) {
        const char c = text[i];
        column++;
        if (c == '\n') {
            line++;
            column = 0;
        }
        if (quote) {
            if (quote == '"' && c == '\\' && i + 1 < len) i++, column++;
            else if (c == quote) quote = 0;
        } else if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
            while (i + 1 < len && text[i + 1] != '\n') i++;
        } else if (c == '"' || c == '\'') {
            if (prev == ' ' || prev == '\t' || prev == '\n' || prev == '[' || prev == '{' || prev == ',' || prev == ':') quote = c;
        } else if (c == '[' || c == '{') {
            if (++depth > MAX_FLOW_DEPTH)
                return cosy_error(COSY_ERR_FORMAT, "%s: line %zu column %zu (byte %zu): flow collections ([ ] { }) nest more than %d deep",
                                  name, line, column, i, MAX_FLOW_DEPTH);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
        prev = c;
    }
    return COSY_OK;
}

cosy_status cosy_yaml_parse(const char *text, size_t len, const char *name, cosy_yaml **out)
{
    *out = NULL;
    COSY_TRY(prescan(text, len, name));
    cosy_yaml *y = calloc(1, sizeof *y);
    if (!y || !(y->name = strdup(name))) { free(y); return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name); }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) { free(y->name); free(y); return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name); }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &y->doc)) {
        cosy_status st = cosy_error(COSY_ERR_FORMAT, "%s: yaml error at line %zu column %zu: %s", name,
                                    parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                    parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        free(y->name);
        free(y);
        return st;
    }
    yaml_parser_delete(&parser);
    if (!yaml_document_get_root_node(&y->doc) || yaml_document_get_root_node(&y->doc)->type != YAML_MAPPING_NODE) {
        yaml_document_delete(&y->doc);
        free(y->name);
        free(y);
        return cosy_error(COSY_ERR_FORMAT, "%s: the top level is not a mapping", name);
    }
    *out = y;
    return COSY_OK;
}

cosy_status cosy_yaml_load(const char *path, cosy_yaml **out)
{
    char *text;
    size_t len;
    *out = NULL;
    COSY_TRY(cosy_file_read_all(path, &text, &len));
    cosy_status st = cosy_yaml_parse(text, len, path, out);
    free(text);
    return st;
}

void cosy_yaml_free(cosy_yaml *y)
{
    if (!y) return;
    yaml_document_delete(&y->doc);
    free(y->name);
    free(y);
}

static const char *node_tag(const yaml_node_t *n) { return n->tag ? (const char *)n->tag : ""; }

static int is_ref(const yaml_node_t *n) { return n->type == YAML_SCALAR_NODE && !strcmp(node_tag(n), "!ref"); }

static yaml_node_t *map_get(cosy_yaml *y, yaml_node_t *map, const char *key, size_t keylen)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == keylen &&
            !memcmp(k->data.scalar.value, key, keylen))
            return yaml_document_get_node(&y->doc, p->value);
    }
    return NULL;
}

/* A HyperPyYAML reference name: "a" or "a[b][c]" (nested keys from the top). */
static yaml_node_t *lookup_ref_name(cosy_yaml *y, const char *name, size_t len)
{
    yaml_node_t *n = yaml_document_get_root_node(&y->doc);
    const char *p = name, *end = name + len;
    const char *br = memchr(p, '[', len);
    n = map_get(y, n, p, (size_t)((br ? br : end) - p));
    while (n && br) {
        const char *close = memchr(br, ']', (size_t)(end - br));
        if (!close) return NULL;
        n = map_get(y, n, br + 1, (size_t)(close - br - 1));
        br = (close + 1 < end && close[1] == '[') ? close + 1 : NULL;
    }
    return n;
}

/* --- arithmetic over references: <a> * <b> + 1 ... --- */

typedef struct {
    cosy_yaml *y;
    const char *s;
    size_t pos, len;
    int depth;
    int is_int;
    cosy_status st;
    int nest;      /* parentheses / unary minus open now */
    long *budget;  /* atoms left for this key, shared through references */
} expr;

static double eval_node(cosy_yaml *y, yaml_node_t *n, int depth, long *budget, int *is_int, cosy_status *st);

static void skip_ws(expr *e) { while (e->pos < e->len && isspace((unsigned char)e->s[e->pos])) e->pos++; }

static double parse_sum(expr *e);

static double parse_atom(expr *e)
{
    skip_ws(e);
    if (e->st != COSY_OK || e->pos >= e->len) {
        if (e->st == COSY_OK) e->st = cosy_error(COSY_ERR_FORMAT, "%s: incomplete expression '%.*s'", e->y->name, (int)e->len, e->s);
        return 0;
    }
    if (--*e->budget < 0) {
        e->st = cosy_error(COSY_ERR_FORMAT, "%s: expression expands to more than %d evaluations (references fan out too much)",
                           e->y->name, MAX_EVAL_STEPS);
        return 0;
    }
    char c = e->s[e->pos];
    if ((c == '(' || c == '-') && e->nest >= MAX_EXPR_NEST) {
        e->st = cosy_error(COSY_ERR_FORMAT, "%s: expression nests more than %d levels deep", e->y->name, MAX_EXPR_NEST);
        return 0;
    }
    if (c == '(') {
        e->pos++;
        e->nest++;
        double v = parse_sum(e);
        e->nest--;
        skip_ws(e);
        if (e->pos < e->len && e->s[e->pos] == ')') e->pos++;
        else if (e->st == COSY_OK) e->st = cosy_error(COSY_ERR_FORMAT, "%s: missing ')' in '%.*s'", e->y->name, (int)e->len, e->s);
        return v;
    }
    if (c == '-') {
        e->pos++;
        e->nest++;
        double v = -parse_atom(e);
        e->nest--;
        return v;
    }
    if (c == '<') {
        const char *close = memchr(e->s + e->pos, '>', e->len - e->pos);
        if (!close) { e->st = cosy_error(COSY_ERR_FORMAT, "%s: unterminated reference in '%.*s'", e->y->name, (int)e->len, e->s); return 0; }
        const char *name = e->s + e->pos + 1;
        size_t nlen = (size_t)(close - name);
        e->pos = (size_t)(close - e->s) + 1;
        yaml_node_t *n = lookup_ref_name(e->y, name, nlen);
        if (!n) { e->st = cosy_error(COSY_ERR_MISSING, "%s: reference <%.*s> names no key", e->y->name, (int)nlen, name); return 0; }
        int ii = 1;
        double v = eval_node(e->y, n, e->depth + 1, e->budget, &ii, &e->st);
        if (!ii) e->is_int = 0;
        return v;
    }
    char *endp;
    char num[64];
    size_t k = 0;
    while (e->pos + k < e->len && k < sizeof num - 1 && (isalnum((unsigned char)e->s[e->pos + k]) || e->s[e->pos + k] == '.' ||
           ((e->s[e->pos + k] == '-' || e->s[e->pos + k] == '+') && k > 0 && (e->s[e->pos + k - 1] == 'e' || e->s[e->pos + k - 1] == 'E')))) {
        num[k] = e->s[e->pos + k];
        k++;
    }
    num[k] = 0;
    double v = strtod(num, &endp);
    if (k == 0 || *endp) { e->st = cosy_error(COSY_ERR_FORMAT, "%s: cannot evaluate '%.*s'", e->y->name, (int)e->len, e->s); return 0; }
    if (strchr(num, '.') || strchr(num, 'e') || strchr(num, 'E')) e->is_int = 0;
    e->pos += k;
    return v;
}

static double parse_product(expr *e)
{
    double v = parse_atom(e);
    for (;;) {
        skip_ws(e);
        if (e->st != COSY_OK || e->pos >= e->len) return v;
        char c = e->s[e->pos];
        if (c == '*') { e->pos++; v *= parse_atom(e); }
        else if (c == '/') {
            int floor_div = e->pos + 1 < e->len && e->s[e->pos + 1] == '/';
            e->pos += floor_div ? 2 : 1;
            double d = parse_atom(e);
            if (d == 0) { e->st = cosy_error(COSY_ERR_FORMAT, "%s: division by zero in '%.*s'", e->y->name, (int)e->len, e->s); return 0; }
            v = floor_div ? floor(v / d) : v / d;
            if (!floor_div) e->is_int = 0;
        } else return v;
    }
}

static double parse_sum(expr *e)
{
    double v = parse_product(e);
    for (;;) {
        skip_ws(e);
        if (e->st != COSY_OK || e->pos >= e->len) return v;
        char c = e->s[e->pos];
        if (c == '+') { e->pos++; v += parse_product(e); }
        else if (c == '-') { e->pos++; v -= parse_product(e); }
        else return v;
    }
}

static double eval_node(cosy_yaml *y, yaml_node_t *n, int depth, long *budget, int *is_int, cosy_status *st)
{
    if (depth > MAX_REF_DEPTH) { *st = cosy_error(COSY_ERR_FORMAT, "%s: references nest too deeply (a cycle?)", y->name); return 0; }
    if (n->type != YAML_SCALAR_NODE) { *st = cosy_error(COSY_ERR_FORMAT, "%s: expected a number, found a %s", y->name, n->type == YAML_MAPPING_NODE ? "mapping" : "list"); return 0; }
    expr e = {y, (const char *)n->data.scalar.value, 0, n->data.scalar.length, depth, 1, COSY_OK, 0, budget};
    double v = parse_sum(&e);
    skip_ws(&e);
    if (e.st == COSY_OK && e.pos != e.len)
        e.st = cosy_error(COSY_ERR_FORMAT, "%s: cannot evaluate '%.*s'", y->name, (int)e.len, e.s);
    *st = e.st;
    if (!e.is_int) *is_int = 0;
    return v;
}

/* Follows `!ref <single>` chains to the referenced node. */
static yaml_node_t *deref(cosy_yaml *y, yaml_node_t *n)
{
    for (int depth = 0; n && is_ref(n) && depth < MAX_REF_DEPTH; depth++) {
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        while (len && isspace((unsigned char)s[len - 1])) len--;
        while (len && isspace((unsigned char)*s)) { s++; len--; }
        if (len < 2 || s[0] != '<' || s[len - 1] != '>' || memchr(s + 1, '<', len - 2)) return n; /* an expression */
        n = lookup_ref_name(y, s + 1, len - 2);
    }
    return n;
}

static cosy_status find(const cosy_yaml *cy, const char *path, yaml_node_t **out)
{
    cosy_yaml *y = (cosy_yaml *)cy;
    yaml_node_t *n = yaml_document_get_root_node(&y->doc);
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        yaml_node_t *raw = map_get(y, deref(y, n), p, len);
        if (!raw) return cosy_error(COSY_ERR_MISSING, "%s: key %s is missing", y->name, path);
        n = deref(y, raw);
        if (!n)
            return cosy_error(COSY_ERR_MISSING, "%s: key %.*s refers to %.*s, which names no key", y->name,
                              (int)(p + len - path), path, (int)raw->data.scalar.length, (const char *)raw->data.scalar.value);
        if (!dot) break;
        p = dot + 1;
    }
    *out = n;
    return COSY_OK;
}

int cosy_yaml_has(const cosy_yaml *y, const char *path)
{
    yaml_node_t *n;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", cosy_last_error());
    int ok = find(y, path, &n) == COSY_OK;
    cosy_error(COSY_OK, "%s", saved);
    return ok;
}

cosy_status cosy_yaml_get_float(const cosy_yaml *y, const char *path, double *out)
{
    yaml_node_t *n;
    COSY_TRY(find(y, path, &n));
    int is_int = 1;
    cosy_status st = COSY_OK;
    long budget = MAX_EVAL_STEPS;
    double v = eval_node((cosy_yaml *)y, n, 0, &budget, &is_int, &st);
    if (st != COSY_OK) return cosy_error_prefix(st, "key %s", path);
    *out = v;
    return COSY_OK;
}

cosy_status cosy_yaml_get_int(const cosy_yaml *y, const char *path, int64_t *out)
{
    double v;
    COSY_TRY(cosy_yaml_get_float(y, path, &v));
    if (v != floor(v) || fabs(v) > 9e15) return cosy_error(COSY_ERR_FORMAT, "%s: key %s is %g, an integer was expected", y->name, path, v);
    *out = (int64_t)v;
    return COSY_OK;
}

cosy_status cosy_yaml_get_str(const cosy_yaml *y, const char *path, char *buf, size_t size, int *is_null)
{
    yaml_node_t *n;
    COSY_TRY(find(y, path, &n));
    if (n->type != YAML_SCALAR_NODE) return cosy_error(COSY_ERR_FORMAT, "%s: key %s is not a scalar", y->name, path);
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    int null = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
               (len == 0 || (len == 4 && !memcmp(s, "null", 4)) || (len == 1 && s[0] == '~') || (len == 4 && !memcmp(s, "None", 4)));
    if (is_null) *is_null = null;
    if (null) len = 0;
    if (len >= size) return cosy_error(COSY_ERR_FORMAT, "%s: key %s is too long", y->name, path);
    memcpy(buf, s, len);
    buf[len] = 0;
    return COSY_OK;
}

cosy_status cosy_yaml_get_tag(const cosy_yaml *y, const char *path, char *buf, size_t size)
{
    cosy_yaml *yy = (cosy_yaml *)y;
    yaml_node_t *n = yaml_document_get_root_node(&yy->doc);
    const char *p = path;
    for (;;) { /* like find(), but without dereferencing the last node */
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        n = map_get(yy, deref(yy, n), p, len);
        if (!n) return cosy_error(COSY_ERR_MISSING, "%s: key %s is missing", y->name, path);
        if (!dot) break;
        p = dot + 1;
    }
    snprintf(buf, size, "%s", node_tag(n));
    return COSY_OK;
}

static cosy_status list_ints(cosy_yaml *y, yaml_node_t *n, const char *path, int64_t *out, int max, int *count)
{
    n = deref(y, n);
    if (!n || n->type != YAML_SEQUENCE_NODE) return cosy_error(COSY_ERR_FORMAT, "%s: key %s is not a list", y->name, path);
    int k = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        if (k >= max) return cosy_error(COSY_ERR_FORMAT, "%s: list %s has more than %d entries", y->name, path, max);
        yaml_node_t *e = deref(y, yaml_document_get_node(&y->doc, *it));
        if (!e) return cosy_error(COSY_ERR_FORMAT, "%s: bad entry in list %s", y->name, path);
        int is_int = 1;
        cosy_status st = COSY_OK;
        long budget = MAX_EVAL_STEPS;
        double v = eval_node(y, e, 0, &budget, &is_int, &st);
        if (st != COSY_OK) return cosy_error_prefix(st, "list %s", path);
        /* as cosy_yaml_get_int: integral and exact in a double (converting 9e86 to int64 is UB) */
        if (v != floor(v) || fabs(v) > 9e15) return cosy_error(COSY_ERR_FORMAT, "%s: list %s holds %g, integers were expected", y->name, path, v);
        out[k++] = (int64_t)v;
    }
    *count = k;
    return COSY_OK;
}

cosy_status cosy_yaml_get_int_list(const cosy_yaml *y, const char *path, int64_t *out, int max, int *n)
{
    yaml_node_t *node;
    COSY_TRY(find(y, path, &node));
    return list_ints((cosy_yaml *)y, node, path, out, max, n);
}

cosy_status cosy_yaml_get_int_matrix(const cosy_yaml *y, const char *path, int64_t *out, int max_rows, int max_cols,
                                     int *rows, int *cols)
{
    cosy_yaml *yy = (cosy_yaml *)y;
    yaml_node_t *n;
    COSY_TRY(find(y, path, &n));
    if (n->type != YAML_SEQUENCE_NODE) return cosy_error(COSY_ERR_FORMAT, "%s: key %s is not a list of lists", y->name, path);
    int r = 0, c = -1;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        if (r >= max_rows) return cosy_error(COSY_ERR_FORMAT, "%s: list %s has more than %d rows", y->name, path, max_rows);
        int k;
        COSY_TRY(list_ints(yy, yaml_document_get_node(&yy->doc, *it), path, out + (size_t)r * max_cols, max_cols, &k));
        if (c >= 0 && k != c) return cosy_error(COSY_ERR_FORMAT, "%s: rows of %s have different lengths", y->name, path);
        c = k;
        r++;
    }
    *rows = r;
    *cols = c < 0 ? 0 : c;
    return COSY_OK;
}
