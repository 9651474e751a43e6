/* ptfile.c — a pickle machine for torch.save'd state dicts (see ptfile.h). */
#include "io/ptfile.h"
#include "core/error.h"
#include "core/half.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ values */

typedef enum {
    V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR, V_MARK,
} vkind;

typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE_TYPE } gkind;

typedef struct value value;
struct value {
    vkind kind;
    int64_t i;          /* int/bool; for V_GLOBAL: gkind; */
    double f;
    char *s;            /* str/bytes; global "module.name"; storage key */
    size_t slen;
    value **items;      /* tuple/list items; dict: key0, val0, key1, val1, ... */
    size_t n, cap;
    pt_dtype dtype;     /* storage type (V_GLOBAL storage type, V_STORAGE) */
    int64_t numel;      /* storage numel */
    pt_tensor tensor;   /* V_TENSOR (names unset) */
};

typedef struct {
    const unsigned char *p;
    size_t size, pos;
    const char *path;
    value **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    value **memo;
    size_t memo_cap;
    size_t memo_len;  /* filled slots: the index MEMOIZE uses next (pickle's len(memo)) */
    value **all;      /* every value allocated, freed at the end */
    size_t n_all, all_cap;
    const zip_archive *zip;
    const char *prefix;
    size_t prefix_len;
    /* flattening (collect): bounds against self-referencing, deep or shared dicts */
    size_t visits, max_visits, tensors_cap;
} machine;

/* Nesting depth of dicts, items visited while flattening, and the length of a dotted key: real
 * checkpoints nest a few levels and hold well under a million tensors, each costing tens of bytes
 * of pickle; only shared sub-dicts (a DAG) can make the walk exceed the input, so visits are
 * capped at 64Ki + 16 per pickle byte, and never more than PT_MAX_VISITS. */
#define PT_MAX_DEPTH 256
#define PT_MAX_VISITS 1000000u
#define PT_MAX_KEY 65536u

static value *new_value(machine *m, vkind kind)
{
    if (m->n_all == m->all_cap) {
        size_t cap = m->all_cap ? m->all_cap * 2 : 1024;
        value **na = realloc(m->all, cap * sizeof *na);
        if (!na) return NULL;
        m->all = na;
        m->all_cap = cap;
    }
    value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    m->all[m->n_all++] = v;
    return v;
}

static void free_machine(machine *m)
{
    for (size_t i = 0; i < m->n_all; i++) {
        free(m->all[i]->s);
        free(m->all[i]->items);
        free(m->all[i]);
    }
    free(m->all);
    free(m->stack);
    free(m->marks);
    free(m->memo);
}

static cosy_status oom(machine *m) { return cosy_error(COSY_ERR_NOMEM, "%s: out of memory while reading the pickle", m->path); }

static cosy_status push(machine *m, value *v)
{
    if (!v) return oom(m);
    if (m->sp == m->stack_cap) {
        size_t cap = m->stack_cap ? m->stack_cap * 2 : 256;
        value **ns = realloc(m->stack, cap * sizeof *ns);
        if (!ns) return oom(m);
        m->stack = ns;
        m->stack_cap = cap;
    }
    m->stack[m->sp++] = v;
    return COSY_OK;
}

static cosy_status pop(machine *m, size_t at, value **out)
{
    size_t floor = m->n_marks ? m->marks[m->n_marks - 1] : 0;
    if (m->sp <= floor) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: stack underflow at byte %zu", m->path, at);
    *out = m->stack[--m->sp];
    return COSY_OK;
}

static cosy_status append_item(machine *m, value *c, value *item)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        value **ni = realloc(c->items, cap * sizeof *ni);
        if (!ni) return oom(m);
        c->items = ni;
        c->cap = cap;
    }
    c->items[c->n++] = item;
    return COSY_OK;
}

static cosy_status need(machine *m, size_t n, size_t at)
{
    if (n > m->size || m->pos > m->size - n)
        return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl truncated at byte %zu", m->path, at);
    return COSY_OK;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static cosy_status memo_put(machine *m, uint64_t idx, value *v, size_t at)
{
    /* every PUT/MEMOIZE costs at least one byte of pickle, so a slot far beyond its size is hostile */
    if (idx > (1u << 24) || idx > m->size + 4096) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: memo index %llu too large at byte %zu", m->path, (unsigned long long)idx, at);
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        value **nm = realloc(m->memo, cap * sizeof *nm);
        if (!nm) return oom(m);
        memset(nm + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *nm);
        m->memo = nm;
        m->memo_cap = cap;
    }
    if (!m->memo[idx]) m->memo_len++;
    m->memo[idx] = v;
    return COSY_OK;
}

static int storage_dtype(const char *name, pt_dtype *out)
{
    static const struct { const char *name; pt_dtype t; } map[] = {
        {"FloatStorage", PT_F32}, {"HalfStorage", PT_F16}, {"BFloat16Storage", PT_BF16}, {"DoubleStorage", PT_F64},
        {"LongStorage", PT_I64}, {"IntStorage", PT_I32}, {"ShortStorage", PT_I16}, {"CharStorage", PT_I8},
        {"ByteStorage", PT_U8}, {"BoolStorage", PT_BOOL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(name, map[i].name)) { *out = map[i].t; return 1; }
    return 0;
}

static cosy_status make_global(machine *m, const char *module, const char *name, size_t at, value **out)
{
    value *v = new_value(m, V_GLOBAL);
    if (!v) return oom(m);
    size_t len = strlen(module) + strlen(name) + 2;
    v->s = malloc(len);
    if (!v->s) return oom(m);
    snprintf(v->s, len, "%s.%s", module, name);
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict")) v->i = G_ORDERED_DICT;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) v->i = G_REBUILD_TENSOR;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_parameter")) v->i = G_REBUILD_PARAMETER;
    else if (!strcmp(module, "torch") && storage_dtype(name, &v->dtype)) v->i = G_STORAGE_TYPE;
    else
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: unsupported class %s at byte %zu (only plain state dicts of tensors are read)",
                          m->path, v->s, at);
    *out = v;
    return COSY_OK;
}

static int as_int(const value *v, int64_t *out)
{
    if (v->kind == V_INT || v->kind == V_BOOL) { *out = v->i; return 1; }
    return 0;
}

/* BINPERSID: ('storage', <StorageType>, key, location, numel) */
static cosy_status persistent_load(machine *m, value *pid, size_t at, value **out)
{
    if (pid->kind != V_TUPLE || pid->n < 5 || pid->items[0]->kind != V_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->kind != V_GLOBAL || pid->items[1]->i != G_STORAGE_TYPE || pid->items[2]->kind != V_STR ||
        pid->items[4]->kind != V_INT)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: unsupported persistent id at byte %zu (expected a storage reference)", m->path, at);
    value *v = new_value(m, V_STORAGE);
    if (!v) return oom(m);
    v->dtype = pid->items[1]->dtype;
    v->s = strdup(pid->items[2]->s);
    if (!v->s) return oom(m);
    v->numel = pid->items[4]->i;
    if (v->numel < 0)
        return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: storage %s claims %lld elements at byte %zu", m->path, v->s, (long long)v->numel, at);
    *out = v;
    return COSY_OK;
}

static cosy_status rebuild_tensor(machine *m, value *args, size_t at, value **out)
{
    if (args->kind != V_TUPLE || args->n < 4 || args->items[0]->kind != V_STORAGE || args->items[1]->kind != V_INT ||
        args->items[2]->kind != V_TUPLE || args->items[3]->kind != V_TUPLE || args->items[2]->n != args->items[3]->n)
        return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: malformed _rebuild_tensor_v2 arguments at byte %zu", m->path, at);
    value *st = args->items[0], *size = args->items[2], *stride = args->items[3];
    if (size->n > COSY_MAX_DIMS)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: tensor with %zu dimensions at byte %zu", m->path, size->n, at);
    value *v = new_value(m, V_TENSOR);
    if (!v) return oom(m);
    pt_tensor *t = &v->tensor;
    t->dtype = st->dtype;
    t->ndim = (int)size->n;
    t->offset = args->items[1]->i;
    t->storage_numel = st->numel;
    t->storage_key = st->s; /* owned by the storage value; copied when the tensor is kept */
    /* Overflow-checked (divide, don't multiply): numel = prod(shape) and the view's last element
     * offset + sum((shape-1)*stride) must lie inside the storage. */
    int64_t extent = 0, numel = 1;
    int empty = 0;
    for (size_t d = 0; d < size->n; d++) {
        if (!as_int(size->items[d], &t->shape[d]) || !as_int(stride->items[d], &t->stride[d]) || t->shape[d] < 0 || t->stride[d] < 0)
            return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: bad tensor size/stride at byte %zu", m->path, at);
        if (t->shape[d] == 0) empty = 1;
    }
    for (size_t d = 0; d < size->n && !empty; d++) {
        int64_t s = t->shape[d], span;
        if (numel > INT64_MAX / 8 / s)
            return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: tensor shape overflows at byte %zu", m->path, at);
        numel *= s;
        if (s > 1 && t->stride[d] > INT64_MAX / (s - 1))
            return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: tensor stride %lld overflows at byte %zu", m->path, (long long)t->stride[d], at);
        span = (s - 1) * t->stride[d];
        if (extent > INT64_MAX - span)
            return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: tensor strides overflow at byte %zu", m->path, at);
        extent += span;
    }
    if (empty) numel = 0;
    if (t->offset < 0 || t->offset > st->numel ||
        (numel > 0 && (extent >= st->numel || t->offset > st->numel - 1 - extent)))
        return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: tensor view (offset %lld, extent %lld) exceeds its storage %s of %lld elements at byte %zu",
                          m->path, (long long)t->offset, (long long)extent, st->s, (long long)st->numel, at);
    /* locate the storage blob */
    char name[512];
    snprintf(name, sizeof name, "%.*sdata/%s", (int)m->prefix_len, m->prefix, st->s);
    const zip_entry *e = zip_find(m->zip, name);
    if (!e) return cosy_error(COSY_ERR_MISSING, "%s: storage entry %s is missing from the archive", m->path, name);
    if ((uint64_t)st->numel > e->size / pt_dtype_size(st->dtype))
        return cosy_error(COSY_ERR_FORMAT, "%s: storage %s has %llu bytes, %lld x %zu needed: truncated?", m->path, name,
                          (unsigned long long)e->size, (long long)st->numel, pt_dtype_size(st->dtype));
    t->storage = e->data;
    *out = v;
    return COSY_OK;
}

static cosy_status run(machine *m, value **result)
{
    for (;;) {
        size_t at = m->pos;
        COSY_TRY(need(m, 1, at));
        unsigned char op = m->p[m->pos++];
        value *v = NULL, *a = NULL, *b = NULL;
        switch (op) {
        case 0x80: /* PROTO */
            COSY_TRY(need(m, 1, at));
            if (m->p[m->pos] > 5) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: pickle protocol %d", m->path, m->p[m->pos]);
            m->pos++;
            break;
        case 0x95: /* FRAME */
            COSY_TRY(need(m, 8, at));
            m->pos += 8;
            break;
        case '.': /* STOP */
            COSY_TRY(pop(m, at, result));
            return COSY_OK;
        case 'c': { /* GLOBAL module\nname\n */
            const char *s = (const char *)m->p + m->pos;
            const char *nl1 = memchr(s, '\n', m->size - m->pos);
            const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', m->size - (size_t)(nl1 + 1 - (const char *)m->p)) : NULL;
            if (!nl2) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: truncated GLOBAL at byte %zu", m->path, at);
            char module[256], name[256];
            snprintf(module, sizeof module, "%.*s", (int)(nl1 - s), s);
            snprintf(name, sizeof name, "%.*s", (int)(nl2 - nl1 - 1), nl1 + 1);
            m->pos = (size_t)(nl2 + 1 - (const char *)m->p);
            COSY_TRY(make_global(m, module, name, at, &v));
            COSY_TRY(push(m, v));
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            COSY_TRY(pop(m, at, &b));
            COSY_TRY(pop(m, at, &a));
            if (a->kind != V_STR || b->kind != V_STR) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: bad STACK_GLOBAL at byte %zu", m->path, at);
            COSY_TRY(make_global(m, a->s, b->s, at, &v));
            COSY_TRY(push(m, v));
            break;
        case 'Q': /* BINPERSID */
            COSY_TRY(pop(m, at, &a));
            COSY_TRY(persistent_load(m, a, at, &v));
            COSY_TRY(push(m, v));
            break;
        case 'R': { /* REDUCE */
            COSY_TRY(pop(m, at, &b));
            COSY_TRY(pop(m, at, &a));
            if (a->kind != V_GLOBAL || b->kind != V_TUPLE)
                return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: REDUCE on a non-class at byte %zu", m->path, at);
            if (a->i == G_ORDERED_DICT) {
                v = new_value(m, V_DICT);
            } else if (a->i == G_REBUILD_TENSOR) {
                COSY_TRY(rebuild_tensor(m, b, at, &v));
            } else if (a->i == G_REBUILD_PARAMETER) {
                if (b->n < 1 || b->items[0]->kind != V_TENSOR)
                    return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: malformed _rebuild_parameter at byte %zu", m->path, at);
                v = b->items[0];
            } else {
                return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: cannot call %s at byte %zu", m->path, a->s, at);
            }
            COSY_TRY(push(m, v));
            break;
        }
        case 'b': /* BUILD: only the OrderedDict `_metadata` attribute and tensor state are expected */
            COSY_TRY(pop(m, at, &b));
            if (m->sp == 0) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: BUILD on an empty stack at byte %zu", m->path, at);
            a = m->stack[m->sp - 1];
            if (a->kind != V_DICT && a->kind != V_TENSOR)
                return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: BUILD on an unsupported object at byte %zu", m->path, at);
            break;
        case '(': /* MARK */
            if (m->n_marks == m->marks_cap) {
                size_t cap = m->marks_cap ? m->marks_cap * 2 : 64;
                size_t *nm = realloc(m->marks, cap * sizeof *nm);
                if (!nm) return oom(m);
                m->marks = nm;
                m->marks_cap = cap;
            }
            m->marks[m->n_marks++] = m->sp;
            break;
        case 't': case 'l': { /* TUPLE, LIST from mark */
            if (!m->n_marks) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: no MARK for TUPLE at byte %zu", m->path, at);
            size_t mark = m->marks[--m->n_marks];
            v = new_value(m, op == 't' ? V_TUPLE : V_LIST);
            if (!v) return oom(m);
            for (size_t i = mark; i < m->sp; i++) COSY_TRY(append_item(m, v, m->stack[i]));
            m->sp = mark;
            COSY_TRY(push(m, v));
            break;
        }
        case 'd': { /* DICT from mark */
            if (!m->n_marks) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: no MARK for DICT at byte %zu", m->path, at);
            size_t mark = m->marks[--m->n_marks];
            if ((m->sp - mark) % 2) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: odd DICT at byte %zu", m->path, at);
            v = new_value(m, V_DICT);
            if (!v) return oom(m);
            for (size_t i = mark; i < m->sp; i++) COSY_TRY(append_item(m, v, m->stack[i]));
            m->sp = mark;
            COSY_TRY(push(m, v));
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            int k = op - 0x84;
            v = new_value(m, V_TUPLE);
            if (!v) return oom(m);
            value *items[3];
            for (int i = k - 1; i >= 0; i--) COSY_TRY(pop(m, at, &items[i]));
            for (int i = 0; i < k; i++) COSY_TRY(append_item(m, v, items[i]));
            COSY_TRY(push(m, v));
            break;
        }
        case ')': COSY_TRY(push(m, new_value(m, V_TUPLE))); break;
        case '}': COSY_TRY(push(m, new_value(m, V_DICT))); break;
        case ']': COSY_TRY(push(m, new_value(m, V_LIST))); break;
        case 'a': /* APPEND */
            COSY_TRY(pop(m, at, &b));
            if (m->sp == 0 || m->stack[m->sp - 1]->kind != V_LIST) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: APPEND to a non-list at byte %zu", m->path, at);
            COSY_TRY(append_item(m, m->stack[m->sp - 1], b));
            break;
        case 'e': case 'u': { /* APPENDS, SETITEMS */
            if (!m->n_marks) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: no MARK at byte %zu", m->path, at);
            size_t mark = m->marks[--m->n_marks];
            if (mark == 0) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: no container at byte %zu", m->path, at);
            value *c = m->stack[mark - 1];
            if ((op == 'e' && c->kind != V_LIST) || (op == 'u' && (c->kind != V_DICT || (m->sp - mark) % 2)))
                return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: %s on a wrong container at byte %zu", m->path, op == 'e' ? "APPENDS" : "SETITEMS", at);
            for (size_t i = mark; i < m->sp; i++) COSY_TRY(append_item(m, c, m->stack[i]));
            m->sp = mark;
            break;
        }
        case 's': /* SETITEM */
            COSY_TRY(pop(m, at, &b));
            COSY_TRY(pop(m, at, &a));
            if (m->sp == 0 || m->stack[m->sp - 1]->kind != V_DICT) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: SETITEM on a non-dict at byte %zu", m->path, at);
            COSY_TRY(append_item(m, m->stack[m->sp - 1], a));
            COSY_TRY(append_item(m, m->stack[m->sp - 1], b));
            break;
        case 'X': case 0x8c: case 0x8d: case 'B': case 'C': case 0x8e: { /* BINUNICODE(8), SHORT_BINUNICODE, BINBYTES(8), SHORT_BINBYTES */
            int lb = (op == 0x8c || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
            COSY_TRY(need(m, (size_t)lb, at));
            uint64_t len = le(m->p + m->pos, lb);
            m->pos += (size_t)lb;
            if (len > m->size) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: string length %llu at byte %zu", m->path, (unsigned long long)len, at);
            COSY_TRY(need(m, (size_t)len, at));
            v = new_value(m, (op == 'B' || op == 'C' || op == 0x8e) ? V_BYTES : V_STR);
            if (!v || !(v->s = malloc((size_t)len + 1))) return oom(m);
            memcpy(v->s, m->p + m->pos, (size_t)len);
            v->s[len] = '\0';
            v->slen = (size_t)len;
            m->pos += (size_t)len;
            COSY_TRY(push(m, v));
            break;
        }
        case 'J': case 'K': case 'M': { /* BININT, BININT1, BININT2 */
            int lb = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            COSY_TRY(need(m, (size_t)lb, at));
            uint64_t raw = le(m->p + m->pos, lb);
            m->pos += (size_t)lb;
            v = new_value(m, V_INT);
            if (!v) return oom(m);
            v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)raw : (int64_t)raw;
            COSY_TRY(push(m, v));
            break;
        }
        case 0x8a: { /* LONG1 */
            COSY_TRY(need(m, 1, at));
            int n = m->p[m->pos++];
            if (n > 8) return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: %d-byte integer at byte %zu", m->path, n, at);
            COSY_TRY(need(m, (size_t)n, at));
            uint64_t raw = le(m->p + m->pos, n);
            if (n > 0 && n < 8 && (m->p[m->pos + n - 1] & 0x80)) raw |= ~0ull << (8 * n); /* sign-extend */
            m->pos += (size_t)n;
            v = new_value(m, V_INT);
            if (!v) return oom(m);
            v->i = (int64_t)raw;
            COSY_TRY(push(m, v));
            break;
        }
        case 'G': { /* BINFLOAT, big-endian */
            COSY_TRY(need(m, 8, at));
            uint64_t raw = 0;
            for (int i = 0; i < 8; i++) raw = raw << 8 | m->p[m->pos + i];
            m->pos += 8;
            v = new_value(m, V_FLOAT);
            if (!v) return oom(m);
            memcpy(&v->f, &raw, 8);
            COSY_TRY(push(m, v));
            break;
        }
        case 'N': COSY_TRY(push(m, new_value(m, V_NONE))); break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
            v = new_value(m, V_BOOL);
            if (!v) return oom(m);
            v->i = op == 0x88;
            COSY_TRY(push(m, v));
            break;
        case 'q': case 'r': { /* BINPUT, LONG_BINPUT */
            int lb = op == 'q' ? 1 : 4;
            COSY_TRY(need(m, (size_t)lb, at));
            uint64_t idx = le(m->p + m->pos, lb);
            m->pos += (size_t)lb;
            if (m->sp == 0) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: PUT on an empty stack at byte %zu", m->path, at);
            COSY_TRY(memo_put(m, idx, m->stack[m->sp - 1], at));
            break;
        }
        case 0x94: { /* MEMOIZE */
            if (m->sp == 0) return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: MEMOIZE on an empty stack at byte %zu", m->path, at);
            COSY_TRY(memo_put(m, m->memo_len, m->stack[m->sp - 1], at));
            break;
        }
        case 'h': case 'j': { /* BINGET, LONG_BINGET */
            int lb = op == 'h' ? 1 : 4;
            COSY_TRY(need(m, (size_t)lb, at));
            uint64_t idx = le(m->p + m->pos, lb);
            m->pos += (size_t)lb;
            if (idx >= m->memo_cap || !m->memo[idx])
                return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: memo %llu read before written at byte %zu", m->path, (unsigned long long)idx, at);
            COSY_TRY(push(m, m->memo[idx]));
            break;
        }
        case '0': COSY_TRY(pop(m, at, &a)); break; /* POP */
        default:
            return cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl: unsupported pickle opcode 0x%02x at byte %zu", m->path, op, at);
        }
    }
}

/* ------------------------------------------------------------------ flattening */

static cosy_status collect(machine *m, pt_file *f, const value *dict, const char *parent, int depth)
{
    if (depth > PT_MAX_DEPTH)
        return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: dicts nested more than %d deep at key %.64s (a dict containing itself?)",
                          m->path, PT_MAX_DEPTH, parent);
    for (size_t i = 0; i + 1 < dict->n; i += 2) {
        const value *k = dict->items[i], *v = dict->items[i + 1];
        if (++m->visits > m->max_visits)
            return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: more than %zu dict items to flatten (shared sub-dicts?)", m->path, m->max_visits);
        char keybuf[64];
        const char *key;
        if (k->kind == V_STR) key = k->s;
        else if (k->kind == V_INT) { snprintf(keybuf, sizeof keybuf, "%lld", (long long)k->i); key = keybuf; }
        else continue;
        size_t plen = strlen(parent), klen = strlen(key);
        if (plen + klen + 2 > PT_MAX_KEY)
            return cosy_error(COSY_ERR_FORMAT, "%s: data.pkl: key path longer than %u bytes under %.64s", m->path, PT_MAX_KEY, parent);
        char *full = malloc(plen + klen + 2);
        if (!full) return oom(m);
        if (plen) { memcpy(full, parent, plen); full[plen] = '.'; memcpy(full + plen + 1, key, klen + 1); }
        else memcpy(full, key, klen + 1);
        if (v->kind == V_DICT) {
            cosy_status st = collect(m, f, v, full, depth + 1);
            free(full);
            COSY_TRY(st);
        } else if (v->kind == V_TENSOR) {
            if ((size_t)f->n_tensors == m->tensors_cap) {
                size_t cap = m->tensors_cap ? m->tensors_cap * 2 : 64;
                pt_tensor *nt = realloc(f->tensors, sizeof *nt * cap);
                if (!nt) { free(full); return oom(m); }
                f->tensors = nt;
                m->tensors_cap = cap;
            }
            pt_tensor *t = &f->tensors[f->n_tensors++];
            *t = v->tensor;
            t->name = full;
            t->parent = strdup(parent);
            t->leaf = strdup(key);
            t->storage_key = strdup(v->tensor.storage_key);
            if (!t->parent || !t->leaf || !t->storage_key) return oom(m);
        } else {
            free(full); /* non-tensor leaves (ints, strings) carry nothing we need */
        }
    }
    return COSY_OK;
}

/* Runs data.pkl of the archive already opened in out->zip; closes everything on failure. */
static cosy_status pt_read_archive(pt_file *out)
{
    const char *path = out->zip.file.path;
    const zip_entry *pkl = NULL;
    for (int64_t i = 0; i < out->zip.n_entries; i++) {
        const char *n = out->zip.entries[i].name;
        size_t len = strlen(n);
        if ((len == 8 && !strcmp(n, "data.pkl")) || (len > 8 && !strcmp(n + len - 9, "/data.pkl"))) { pkl = &out->zip.entries[i]; break; }
    }
    if (!pkl) {
        cosy_status st = cosy_error(COSY_ERR_FORMAT, "%s: no data.pkl in the archive: not a PyTorch checkpoint", path);
        pt_close(out); /* after the message: path is the archive's */
        return st;
    }
    machine m;
    memset(&m, 0, sizeof m);
    m.p = pkl->data;
    m.size = (size_t)pkl->size;
    m.path = path;
    m.zip = &out->zip;
    m.prefix = pkl->name;
    m.prefix_len = strlen(pkl->name) - strlen("data.pkl");
    /* torch >= 2.1 records the byte order; we only read little-endian blobs */
    char bo_name[512];
    snprintf(bo_name, sizeof bo_name, "%.*sbyteorder", (int)m.prefix_len, m.prefix);
    const zip_entry *bo = zip_find(&out->zip, bo_name);
    if (bo && !(bo->size >= 6 && !memcmp(bo->data, "little", 6))) {
        cosy_status st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: big-endian checkpoint", path);
        pt_close(out);
        return st;
    }
    value *root = NULL;
    cosy_status st = run(&m, &root);
    if (st == COSY_OK && root->kind != V_DICT)
        st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: data.pkl does not hold a dict of tensors", path);
    m.max_visits = m.size < (PT_MAX_VISITS - 65536) / 16 ? 65536 + 16 * m.size : PT_MAX_VISITS;
    if (st == COSY_OK) st = collect(&m, out, root, "", 0);
    free_machine(&m);
    if (st != COSY_OK) pt_close(out);
    return st;
}

cosy_status pt_open(const char *path, pt_file *out)
{
    memset(out, 0, sizeof *out);
    COSY_TRY(zip_open(path, &out->zip));
    return pt_read_archive(out);
}

cosy_status pt_open_mem(const void *data, size_t size, const char *name, pt_file *out)
{
    memset(out, 0, sizeof *out);
    COSY_TRY(zip_open_mem(data, size, name, &out->zip));
    return pt_read_archive(out);
}

void pt_close(pt_file *f)
{
    for (int64_t i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].parent);
        free(f->tensors[i].leaf);
        free(f->tensors[i].storage_key);
    }
    free(f->tensors);
    zip_close(&f->zip);
    memset(f, 0, sizeof *f);
}

const pt_tensor *pt_find(const pt_file *f, const char *name)
{
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *pt_dtype_name(pt_dtype t)
{
    static const char *names[] = {"float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

size_t pt_dtype_size(pt_dtype t)
{
    switch (t) {
    case PT_F64: case PT_I64: return 8;
    case PT_F32: case PT_I32: return 4;
    case PT_F16: case PT_BF16: case PT_I16: return 2;
    default: return 1;
    }
}

int64_t pt_numel(const pt_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static double element(const pt_tensor *t, int64_t index)
{
    const unsigned char *p = t->storage + (size_t)index * pt_dtype_size(t->dtype);
    switch (t->dtype) {
    case PT_F32: { float v; memcpy(&v, p, 4); return v; }
    case PT_F16: { uint16_t v; memcpy(&v, p, 2); return cosy_f16_to_f32(v); }
    case PT_BF16: { uint16_t v; memcpy(&v, p, 2); return cosy_bf16_to_f32(v); }
    case PT_F64: { double v; memcpy(&v, p, 8); return v; }
    case PT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case PT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case PT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case PT_I8: return (int8_t)*p;
    default: return *p;
    }
}

/* Visits elements in row-major order of the logical shape. */
#define PT_FOREACH(t, body)                                                                  \
    do {                                                                                     \
        int64_t idx_[COSY_MAX_DIMS] = {0}, n_ = pt_numel(t);                                 \
        for (int64_t k_ = 0; k_ < n_; k_++) {                                                \
            int64_t src_ = (t)->offset;                                                      \
            for (int d_ = 0; d_ < (t)->ndim; d_++) src_ += idx_[d_] * (t)->stride[d_];       \
            body;                                                                            \
            for (int d_ = (t)->ndim - 1; d_ >= 0; d_--) {                                    \
                if (++idx_[d_] < (t)->shape[d_]) break;                                      \
                idx_[d_] = 0;                                                                \
            }                                                                                \
        }                                                                                    \
    } while (0)

static int is_contiguous(const pt_tensor *t)
{
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

void pt_read_f32(const pt_tensor *t, float *dst)
{
    const unsigned char *src = t->storage + (size_t)t->offset * pt_dtype_size(t->dtype);
    /* the bulk converters read aligned uint16_t; torch.save aligns storages, a re-packed zip may not */
    if (is_contiguous(t) && (uintptr_t)src % pt_dtype_size(t->dtype) == 0) {
        int64_t n = pt_numel(t);
        if (t->dtype == PT_F32) { memcpy(dst, src, (size_t)n * 4); return; }
        if (t->dtype == PT_F16) { cosy_convert_to_f32(dst, src, COSY_DTYPE_F16, n); return; }
        if (t->dtype == PT_BF16) { cosy_convert_to_f32(dst, src, COSY_DTYPE_BF16, n); return; }
    }
    PT_FOREACH(t, dst[k_] = (float)element(t, src_));
}

/* A float element as int64, truncated; NaN, infinities and values beyond int64 (converting them is
 * undefined behaviour in C) give 0. */
static int64_t element_to_i64(double v)
{
    return isfinite(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (int64_t)v : 0;
}

void pt_read_i64(const pt_tensor *t, int64_t *dst)
{
    if (t->dtype == PT_I64) {
        PT_FOREACH(t, memcpy(&dst[k_], t->storage + (size_t)src_ * 8, 8));
        return;
    }
    PT_FOREACH(t, dst[k_] = element_to_i64(element(t, src_)));
}
