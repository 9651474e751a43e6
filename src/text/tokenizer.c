/*
 * tokenizer.c — Qwen2 byte-level BPE (see tokenizer.h for the pipeline).
 *
 * The BPE runs on token ids, not strings: a piece starts as the ids of its bytes' one-character
 * tokens and a hash table maps an adjacent id pair to (merge rank, merged id). Merging follows
 * the Rust tokenizers crate (models/bpe/word.rs, Word::merge_all): a min-heap of candidate
 * merges ordered by (rank, position); a popped candidate is skipped when its left symbol was
 * consumed or the pair at that position no longer yields the same merged id.
 */
#include "text/tokenizer.h"
#include "core/error.h"
#include "text/utf8.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key;     /* left << 32 | right, MERGE_EMPTY if free */
    uint32_t rank;
    int32_t new_id;
} merge_slot;

typedef struct {
    const char *text; /* points into tokenizer->tokens */
    size_t len;
    int32_t id;
} added_token;

struct cosy_tokenizer {
    int32_t n_tokens;
    char **tokens;          /* as stored in the vocabulary */
    int32_t *types;
    char *raw;              /* decoded bytes of every token, back to back */
    size_t *raw_off;        /* token i is raw[raw_off[i] .. raw_off[i+1]) */
    int32_t byte_id[256];   /* id of the one-byte token for each byte, -1 if the vocabulary lacks it */
    /* merges: open addressing on the id pair, one 16-byte slot per entry (one cache miss a lookup) */
    merge_slot *merges;
    size_t merge_mask;
    int32_t n_merges;
    /* added tokens, sorted by first byte then by length, longest first */
    added_token *added;
    int n_added;
    int added_start[257];   /* added[added_start[b] .. added_start[b+1]) start with byte b */
};

#define MERGE_EMPTY UINT64_MAX

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int merge_find(const cosy_tokenizer *t, int32_t left, int32_t right, uint32_t *rank, int32_t *new_id)
{
    if (!t->merges) return 0;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = hash64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_slot *m = &t->merges[i];
        if (m->key == key) {
            *rank = m->rank;
            *new_id = m->new_id;
            return 1;
        }
        if (m->key == MERGE_EMPTY) return 0;
    }
}

static void merge_insert(cosy_tokenizer *t, int32_t left, int32_t right, uint32_t rank, int32_t new_id)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = hash64(key) & t->merge_mask;
    while (t->merges[i].key != MERGE_EMPTY && t->merges[i].key != key) i = (i + 1) & t->merge_mask;
    /* a repeated merge line keeps the later rank, as a HashMap built from the list does */
    t->merges[i] = (merge_slot){key, rank, new_id};
}

/* ---- string -> id table used while loading ---- */

typedef struct {
    int32_t *slots;
    size_t mask;
    char **tokens;
} string_table;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int32_t string_table_find(const string_table *st, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & st->mask;; i = (i + 1) & st->mask) {
        int32_t id = st->slots[i];
        if (id < 0) return -1;
        if (strlen(st->tokens[id]) == n && !memcmp(st->tokens[id], s, n)) return id;
    }
}

/* The BPE model's own vocabulary: the base entries plus any NORMAL token (not added ones). */
static cosy_status string_table_build(string_table *st, const cosy_vocab *v, char **tokens)
{
    size_t cap = 16;
    while (cap < (size_t)v->n_tokens * 2) cap *= 2;
    st->slots = malloc(cap * sizeof *st->slots);
    if (!st->slots) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    memset(st->slots, 0xff, cap * sizeof *st->slots);
    st->mask = cap - 1;
    st->tokens = tokens;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        if (!(id < v->n_base || v->types[id] == COSY_TOKEN_NORMAL) || !tokens[id][0]) continue;
        size_t n = strlen(tokens[id]);
        size_t i = hash_bytes(tokens[id], n) & st->mask;
        int dup = 0;
        while (st->slots[i] >= 0) {
            if (!strcmp(tokens[st->slots[i]], tokens[id])) { dup = 1; break; }
            i = (i + 1) & st->mask;
        }
        if (!dup) st->slots[i] = id; /* the first id of a duplicated string wins */
    }
    return COSY_OK;
}

/* ---- construction ---- */

void cosy_token_ids_free(cosy_token_ids *t)
{
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static cosy_status ids_push(cosy_token_ids *t, int32_t id)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
        t->ids = p;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return COSY_OK;
}

void cosy_tokenizer_free(cosy_tokenizer *t)
{
    if (!t) return;
    if (t->tokens)
        for (int32_t i = 0; i < t->n_tokens; i++) free(t->tokens[i]);
    free(t->tokens);
    free(t->types);
    free(t->raw);
    free(t->raw_off);
    free(t->merges);
    free(t->added);
    free(t);
}

/* byte_of[cp] = the byte that code point cp stands for in the byte-level alphabet, or -1 */
static void byte_alphabet(int16_t byte_of[324])
{
    for (int i = 0; i < 324; i++) byte_of[i] = -1;
    for (int b = 0; b < 256; b++) byte_of[cosy_byte_to_unicode((uint8_t)b)] = (int16_t)b;
}

/* What Hugging Face's ByteLevel decoder makes of one token: each character mapped back to its
 * byte, or, if any character is outside the byte alphabet, the token's own UTF-8 bytes. */
static size_t token_raw_bytes(const int16_t byte_of[324], const char *tok, char *out)
{
    size_t n = strlen(tok), o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += cosy_utf8_next(tok + i, n - i, &cp);
        int b = cp < 324 ? byte_of[cp] : -1;
        if (b < 0) {
            memcpy(out, tok, n);
            return n;
        }
        out[o++] = (char)b;
    }
    return o;
}

static int added_cmp(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    int fx = (uint8_t)x->text[0], fy = (uint8_t)y->text[0];
    if (fx != fy) return fx - fy;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id - y->id;
}

cosy_status cosy_tokenizer_create_truncated(const cosy_vocab *v, int32_t n_merges, cosy_tokenizer **out)
{
    *out = NULL;
    if (n_merges < 0 || n_merges > v->n_merges)
        return cosy_error(COSY_ERR_INVALID_ARG, "tokenizer: %d merges requested, the vocabulary has %d", n_merges, v->n_merges);
    cosy_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    cosy_status st = COSY_OK;
    string_table table = {0};
    t->n_tokens = v->n_tokens;
    t->tokens = calloc((size_t)v->n_tokens + 1, sizeof *t->tokens);
    t->types = malloc(((size_t)v->n_tokens + 1) * sizeof *t->types);
    t->raw_off = malloc(((size_t)v->n_tokens + 1) * sizeof *t->raw_off);
    if (!t->tokens || !t->types || !t->raw_off) { st = cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory"); goto done; }
    size_t raw_total = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const char *s = v->tokens[i] ? v->tokens[i] : "";
        t->tokens[i] = strdup(s);
        if (!t->tokens[i]) { st = cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory"); goto done; }
        if (cosy_utf8_check(s, strlen(s), NULL) != COSY_OK) {
            st = cosy_error(COSY_ERR_FORMAT, "tokenizer: token %d is not valid UTF-8", i);
            goto done;
        }
        t->types[i] = v->types[i];
        raw_total += strlen(s);
    }
    t->raw = malloc(raw_total + 1);
    if (!t->raw) { st = cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory"); goto done; }
    int16_t byte_of[324];
    byte_alphabet(byte_of);
    size_t off = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        t->raw_off[i] = off;
        off += token_raw_bytes(byte_of, t->tokens[i], t->raw + off);
    }
    t->raw_off[v->n_tokens] = off;

    st = string_table_build(&table, v, t->tokens);
    if (st != COSY_OK) goto done;
    for (int b = 0; b < 256; b++) {
        char buf[4];
        int n = cosy_utf8_put(cosy_byte_to_unicode((uint8_t)b), buf);
        t->byte_id[b] = string_table_find(&table, buf, (size_t)n);
    }

    if (n_merges > 0) {
        size_t cap = 16;
        while (cap < (size_t)n_merges * 2) cap *= 2;
        t->merges = malloc(cap * sizeof *t->merges);
        if (!t->merges) { st = cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory"); goto done; }
        for (size_t i = 0; i < cap; i++) t->merges[i].key = MERGE_EMPTY;
        t->merge_mask = cap - 1;
    }
    char *joined = NULL;
    size_t joined_cap = 0;
    for (int32_t r = 0; r < n_merges && st == COSY_OK; r++) {
        const char *m = v->merges[r];
        const char *sp = strchr(m, ' ');
        if (!sp || strchr(sp + 1, ' ')) { st = cosy_error(COSY_ERR_FORMAT, "tokenizer: merge %d '%s' is not 'left right'", r, m); break; }
        size_t ln = (size_t)(sp - m), rn = strlen(sp + 1);
        int32_t left = string_table_find(&table, m, ln), right = string_table_find(&table, sp + 1, rn);
        if (ln + rn + 1 > joined_cap) {
            joined_cap = (ln + rn + 1) * 2;
            char *p = realloc(joined, joined_cap);
            if (!p) { st = cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory"); break; }
            joined = p;
        }
        memcpy(joined, m, ln);
        memcpy(joined + ln, sp + 1, rn);
        int32_t merged = string_table_find(&table, joined, ln + rn);
        if (left < 0 || right < 0 || merged < 0) {
            st = cosy_error(COSY_ERR_FORMAT, "tokenizer: merge %d '%s' uses a token that is not in the vocabulary", r, m);
            break;
        }
        merge_insert(t, left, right, (uint32_t)r, merged);
    }
    free(joined);
    if (st != COSY_OK) goto done;
    t->n_merges = n_merges;

    for (int32_t i = 0; i < v->n_tokens; i++)
        if ((t->types[i] == COSY_TOKEN_CONTROL || t->types[i] == COSY_TOKEN_USER) && t->tokens[i][0]) t->n_added++;
    t->added = calloc((size_t)t->n_added + 1, sizeof *t->added);
    if (!t->added) { st = cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory"); goto done; }
    int k = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if ((t->types[i] == COSY_TOKEN_CONTROL || t->types[i] == COSY_TOKEN_USER) && t->tokens[i][0])
            t->added[k++] = (added_token){t->tokens[i], strlen(t->tokens[i]), i};
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    for (int b = 0, j = 0; b <= 256; b++) {
        while (j < t->n_added && (uint8_t)t->added[j].text[0] < b) j++;
        t->added_start[b] = j;
    }

done:
    free(table.slots);
    if (st != COSY_OK) {
        cosy_tokenizer_free(t);
        return st;
    }
    *out = t;
    return COSY_OK;
}

cosy_status cosy_tokenizer_create(const cosy_vocab *v, cosy_tokenizer **out)
{
    return cosy_tokenizer_create_truncated(v, v->n_merges, out);
}

cosy_status cosy_tokenizer_load_dir(const char *dir, cosy_tokenizer **out)
{
    cosy_vocab v;
    *out = NULL;
    COSY_TRY(cosy_vocab_load_dir(dir, &v));
    cosy_status st = cosy_tokenizer_create(&v, out);
    cosy_vocab_free(&v);
    if (st != COSY_OK) cosy_error_prefix(st, "%s", dir);
    return st;
}

int32_t cosy_tokenizer_n_tokens(const cosy_tokenizer *t) { return t->n_tokens; }

const char *cosy_tokenizer_token(const cosy_tokenizer *t, int32_t id)
{
    return (id >= 0 && id < t->n_tokens) ? t->tokens[id] : NULL;
}

int32_t cosy_tokenizer_added_id(const cosy_tokenizer *t, const char *text)
{
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].text, text)) return t->added[i].id;
    return -1;
}

/* ---- encoding ---- */

enum { CLS_L = 1, CLS_N = 2, CLS_WS = 4, CLS_CRLF = 8 };

typedef struct {
    int32_t id, prev, next;
    uint32_t len; /* 0 once merged into its left neighbour */
} bpe_symbol;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} bpe_merge;

/* Per-call scratch, grown as needed (never per token). */
typedef struct {
    uint32_t *cps;
    uint32_t *offs;     /* byte offset of each code point (+ one past the end) */
    uint8_t *cls;
    size_t cap_cps;
    bpe_symbol *sym;
    bpe_merge *heap;
    size_t cap_sym, cap_heap;
} scratch;

static void scratch_free(scratch *s)
{
    free(s->cps);
    free(s->offs);
    free(s->cls);
    free(s->sym);
    free(s->heap);
}

static cosy_status scratch_cps(scratch *s, size_t n)
{
    if (n + 1 <= s->cap_cps) return COSY_OK;
    size_t cap = n + 1 < 256 ? 256 : n + 1;
    free(s->cps);
    free(s->offs);
    free(s->cls);
    s->cps = malloc(cap * sizeof *s->cps);
    s->offs = malloc(cap * sizeof *s->offs);
    s->cls = malloc(cap);
    s->cap_cps = (s->cps && s->offs && s->cls) ? cap : 0;
    return s->cap_cps ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
}

static cosy_status scratch_bpe(scratch *s, size_t n)
{
    if (n > s->cap_sym) {
        size_t cap = n < 64 ? 64 : n * 2;
        bpe_symbol *p = realloc(s->sym, cap * sizeof *p);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
        s->sym = p;
        s->cap_sym = cap;
    }
    /* each merge adds at most two candidates, and there are fewer than n merges */
    if (3 * n > s->cap_heap) {
        size_t cap = 3 * n < 192 ? 192 : 6 * n;
        bpe_merge *p = realloc(s->heap, cap * sizeof *p);
        if (!p) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
        s->heap = p;
        s->cap_heap = cap;
    }
    return COSY_OK;
}

static int merge_before(const bpe_merge *a, const bpe_merge *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(bpe_merge *h, size_t *n, bpe_merge m)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!merge_before(&m, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = m;
}

static bpe_merge heap_pop(bpe_merge *h, size_t *n)
{
    bpe_merge top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_before(&h[c + 1], &h[c])) c++;
        if (!merge_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

/* BPE of one pre-tokenized piece (its UTF-8 bytes). */
static cosy_status bpe_piece(const cosy_tokenizer *t, scratch *s, const uint8_t *bytes, size_t n, cosy_token_ids *out)
{
    if (n == 1) return t->byte_id[bytes[0]] >= 0 ? ids_push(out, t->byte_id[bytes[0]]) : COSY_OK;
    COSY_TRY(scratch_bpe(s, n));
    bpe_symbol *sym = s->sym;
    int32_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[bytes[i]];
        if (id < 0) continue; /* no token for this byte and no unk token: dropped, like HF's BPE */
        sym[len] = (bpe_symbol){id, len - 1, len + 1, 1};
        len++;
    }
    if (len == 0) return COSY_OK;
    sym[len - 1].next = -1;
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < len; i++) {
        uint32_t rank;
        int32_t new_id;
        if (merge_find(t, sym[i].id, sym[i + 1].id, &rank, &new_id))
            heap_push(s->heap, &nh, (bpe_merge){rank, (uint32_t)i, new_id});
    }
    while (nh > 0) {
        bpe_merge top = heap_pop(s->heap, &nh);
        bpe_symbol *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        int32_t next_pos = cur->next;
        bpe_symbol right = sym[next_pos];
        uint32_t rank;
        int32_t new_id;
        if (!merge_find(t, cur->id, right.id, &rank, &new_id) || new_id != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        sym[next_pos].len = 0;
        if (right.next >= 0) sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && merge_find(t, sym[cur->prev].id, cur->id, &rank, &new_id))
            heap_push(s->heap, &nh, (bpe_merge){rank, (uint32_t)cur->prev, new_id});
        if (cur->next >= 0 && merge_find(t, cur->id, sym[cur->next].id, &rank, &new_id))
            heap_push(s->heap, &nh, (bpe_merge){rank, top.pos, new_id});
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) COSY_TRY(ids_push(out, sym[i].id));
    return COSY_OK;
}

/* Oniguruma's case-insensitive match of the contraction letters: ASCII case, plus U+017F
 * (LATIN SMALL LETTER LONG S), whose simple case folding is 's'. */
static uint32_t fold(uint32_t cp)
{
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp == 0x17F) return 's';
    return cp;
}

/* The end (exclusive) of the Qwen2 pre-tokenizer regex's match at code point i (see
 * tokenizer.h). Some alternative always matches at least one code point, so the pieces tile
 * the segment. */
static size_t pretok_match(const uint32_t *cp, const uint8_t *cls, size_t i, size_t n)
{
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (cp[i] == '\'' && i + 1 < n) {
        uint32_t a = fold(cp[i + 1]);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (i + 2 < n) {
            uint32_t b = fold(cp[i + 2]);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
        }
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t j = i;
    if (!(cls[i] & (CLS_L | CLS_N | CLS_CRLF)) && i + 1 < n && (cls[i + 1] & CLS_L)) j = i + 1;
    if (cls[j] & CLS_L) {
        while (j < n && (cls[j] & CLS_L)) j++;
        return j;
    }
    /* \p{N} */
    if (cls[i] & CLS_N) return i + 1;
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = i;
    if (cp[i] == ' ' && i + 1 < n && !(cls[i + 1] & (CLS_WS | CLS_L | CLS_N))) j = i + 1;
    if (!(cls[j] & (CLS_WS | CLS_L | CLS_N))) {
        while (j < n && !(cls[j] & (CLS_WS | CLS_L | CLS_N))) j++;
        while (j < n && (cls[j] & CLS_CRLF)) j++;
        return j;
    }
    /* cp[i] is white space from here on */
    size_t end = i, last_crlf = (size_t)-1;
    while (end < n && (cls[end] & CLS_WS)) {
        if (cls[end] & CLS_CRLF) last_crlf = end;
        end++;
    }
    /* \s*[\r\n]+ : the greedy \s* backs off to the run's last CR/LF */
    if (last_crlf != (size_t)-1) return last_crlf + 1;
    /* \s+(?!\S) : all of a run that ends the text, else all but its last character */
    if (end == n) return end;
    if (end - i >= 2) return end - 1;
    /* \s+ */
    return end;
}

/* NFC, pre-tokenization and BPE of text between added tokens. */
static cosy_status encode_segment(const cosy_tokenizer *t, scratch *s, const char *text, size_t len, cosy_token_ids *out)
{
    if (len == 0) return COSY_OK;
    char *nfc = NULL;
    size_t nfc_len = 0;
    COSY_TRY(cosy_utf8_nfc(text, len, &nfc, &nfc_len));
    if (nfc) {
        text = nfc;
        len = nfc_len;
    }
    cosy_status st = scratch_cps(s, len);
    size_t n = 0;
    for (size_t i = 0; st == COSY_OK && i < len; n++) {
        uint32_t c;
        size_t k;
        if ((uint8_t)text[i] < 0x80) { c = (uint8_t)text[i]; k = 1; }
        else k = cosy_utf8_next(text + i, len - i, &c);
        s->cps[n] = c;
        s->offs[n] = (uint32_t)i;
        uint8_t cl = 0;
        if (cosy_unicode_is_cjk(c)) cl = CLS_L; /* U+4E00..U+9FFF are all Lo: skip the table lookup */
        else if (cosy_unicode_is_letter(c)) cl = CLS_L;
        else if (cosy_unicode_is_number(c)) cl = CLS_N;
        else if (cosy_unicode_is_white_space(c)) cl = (c == '\r' || c == '\n') ? CLS_WS | CLS_CRLF : CLS_WS;
        s->cls[n] = cl;
        i += k;
    }
    if (st == COSY_OK) s->offs[n] = (uint32_t)len;
    for (size_t i = 0; st == COSY_OK && i < n;) {
        size_t e = pretok_match(s->cps, s->cls, i, n);
        st = bpe_piece(t, s, (const uint8_t *)text + s->offs[i], s->offs[e] - s->offs[i], out);
        i = e;
    }
    free(nfc);
    return st;
}

cosy_status cosy_tokenizer_encode(const cosy_tokenizer *t, const char *text, size_t len, cosy_token_ids *out)
{
    if (len > UINT32_MAX / 2) return cosy_error(COSY_ERR_INVALID_ARG, "tokenizer: text of %zu bytes is too long", len);
    COSY_TRY(cosy_utf8_check(text, len, NULL));
    scratch s = {0};
    cosy_status st = COSY_OK;
    size_t seg = 0, p = 0;
    while (p < len && st == COSY_OK) {
        uint8_t b = (uint8_t)text[p];
        const added_token *hit = NULL;
        for (int k = t->added_start[b]; k < t->added_start[b + 1]; k++) {
            const added_token *a = &t->added[k];
            if (a->len <= len - p && !memcmp(text + p, a->text, a->len)) { hit = a; break; } /* longest first */
        }
        if (!hit) { p++; continue; }
        st = encode_segment(t, &s, text + seg, p - seg, out);
        if (st == COSY_OK) st = ids_push(out, hit->id);
        p += hit->len;
        seg = p;
    }
    if (st == COSY_OK) st = encode_segment(t, &s, text + seg, len - seg, out);
    scratch_free(&s);
    return st;
}

cosy_status cosy_tokenizer_count(const cosy_tokenizer *t, const char *text, size_t len, size_t *count)
{
    cosy_token_ids ids = {0};
    cosy_status st = cosy_tokenizer_encode(t, text, len, &ids);
    *count = ids.n;
    cosy_token_ids_free(&ids);
    return st;
}

/* ---- decoding ---- */

cosy_status cosy_tokenizer_decode(const cosy_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **out,
                                  size_t *out_len)
{
    *out = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_tokens)
            return cosy_error(COSY_ERR_INVALID_ARG, "tokenizer: id %d (position %zu) is not in the vocabulary of %d tokens",
                              ids[i], i, t->n_tokens);
        total += t->raw_off[ids[i] + 1] - t->raw_off[ids[i]];
    }
    char *bytes = malloc(total + 1);
    if (!bytes) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && t->types[ids[i]] == COSY_TOKEN_CONTROL) continue;
        size_t a = t->raw_off[ids[i]], b = t->raw_off[ids[i] + 1];
        memcpy(bytes + o, t->raw + a, b - a);
        o += b - a;
    }
    /* HF turns the bytes into a string with from_utf8_lossy */
    *out = cosy_utf8_sanitize(bytes, o, out_len);
    free(bytes);
    return *out ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
}
