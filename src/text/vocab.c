/* vocab.c — tokenizer files to/from the model file (see vocab.h). */
#include "text/vocab.h"
#include "core/error.h"
#include "core/file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cosy_cv2_special_tokens[] = {
    "<|im_start|>", "<|im_end|>", "<|endofprompt|>", "[breath]", "<strong>", "</strong>", "[noise]", "[laughter]",
    "[cough]", "[clucking]", "[accent]", "[quick_breath]", "<laughter>", "</laughter>", "[hissing]", "[sigh]",
    "[vocalized-noise]", "[lipsmack]", "[mn]",
};
const int cosy_cv2_n_special_tokens = (int)(sizeof cosy_cv2_special_tokens / sizeof cosy_cv2_special_tokens[0]);

/* CosyVoice3Tokenizer's additional_special_tokens after CosyVoice2's, in its order: <|endofsystem|>,
 * 84 ARPAbet phones, 176 pinyin finals/initials with tones (cosyvoice/tokenizer/tokenizer.py). */
static const char *const cv3_extra_tokens[] = {
    "<|endofsystem|>",
    "[AA]", "[AA0]", "[AA1]", "[AA2]", "[AE]", "[AE0]", "[AE1]", "[AE2]", "[AH]", "[AH0]", "[AH1]", "[AH2]", "[AO]", "[AO0]", "[AO1]",
    "[AO2]", "[AW]", "[AW0]", "[AW1]", "[AW2]", "[AY]", "[AY0]", "[AY1]", "[AY2]", "[B]", "[CH]", "[D]", "[DH]", "[EH]", "[EH0]",
    "[EH1]", "[EH2]", "[ER]", "[ER0]", "[ER1]", "[ER2]", "[EY]", "[EY0]", "[EY1]", "[EY2]", "[F]", "[G]", "[HH]", "[IH]", "[IH0]",
    "[IH1]", "[IH2]", "[IY]", "[IY0]", "[IY1]", "[IY2]", "[JH]", "[K]", "[L]", "[M]", "[N]", "[NG]", "[OW]", "[OW0]", "[OW1]",
    "[OW2]", "[OY]", "[OY0]", "[OY1]", "[OY2]", "[P]", "[R]", "[S]", "[SH]", "[T]", "[TH]", "[UH]", "[UH0]", "[UH1]", "[UH2]",
    "[UW]", "[UW0]", "[UW1]", "[UW2]", "[V]", "[W]", "[Y]", "[Z]", "[ZH]",
    "[a]", "[ai]", "[an]", "[ang]", "[ao]", "[b]", "[c]", "[ch]", "[d]", "[e]", "[ei]", "[en]", "[eng]", "[f]", "[g]", "[h]",
    "[i]", "[ian]", "[in]", "[ing]", "[iu]", "[ià]", "[iàn]", "[iàng]", "[iào]", "[iá]", "[ián]", "[iáng]", "[iáo]", "[iè]",
    "[ié]", "[iòng]", "[ióng]", "[iù]", "[iú]", "[iā]", "[iān]", "[iāng]", "[iāo]", "[iē]", "[iě]", "[iōng]", "[iū]", "[iǎ]",
    "[iǎn]", "[iǎng]", "[iǎo]", "[iǒng]", "[iǔ]", "[j]", "[k]", "[l]", "[m]", "[n]", "[o]", "[ong]", "[ou]", "[p]", "[q]",
    "[r]", "[s]", "[sh]", "[t]", "[u]", "[uang]", "[ue]", "[un]", "[uo]", "[uà]", "[uài]", "[uàn]", "[uàng]", "[uá]", "[uái]",
    "[uán]", "[uáng]", "[uè]", "[ué]", "[uì]", "[uí]", "[uò]", "[uó]", "[uā]", "[uāi]", "[uān]", "[uāng]", "[uē]", "[uě]",
    "[uī]", "[uō]", "[uǎ]", "[uǎi]", "[uǎn]", "[uǎng]", "[uǐ]", "[uǒ]", "[vè]", "[w]", "[x]", "[y]", "[z]", "[zh]", "[à]",
    "[ài]", "[àn]", "[àng]", "[ào]", "[á]", "[ái]", "[án]", "[áng]", "[áo]", "[è]", "[èi]", "[èn]", "[èng]", "[èr]", "[é]",
    "[éi]", "[én]", "[éng]", "[ér]", "[ì]", "[ìn]", "[ìng]", "[í]", "[ín]", "[íng]", "[ò]", "[òng]", "[òu]", "[ó]", "[óng]",
    "[óu]", "[ù]", "[ùn]", "[ú]", "[ún]", "[ā]", "[āi]", "[ān]", "[āng]", "[āo]", "[ē]", "[ēi]", "[ēn]", "[ēng]", "[ě]",
    "[ěi]", "[ěn]", "[ěng]", "[ěr]", "[ī]", "[īn]", "[īng]", "[ō]", "[ōng]", "[ōu]", "[ū]", "[ūn]", "[ǎ]", "[ǎi]", "[ǎn]",
    "[ǎng]", "[ǎo]", "[ǐ]", "[ǐn]", "[ǐng]", "[ǒ]", "[ǒng]", "[ǒu]", "[ǔ]", "[ǔn]", "[ǘ]", "[ǚ]", "[ǜ]",
};
const int cosy_cv3_n_extra_tokens = (int)(sizeof cv3_extra_tokens / sizeof cv3_extra_tokens[0]);

#define MAX_TOKENS (1 << 22)

void cosy_vocab_free(cosy_vocab *v)
{
    if (v->tokens)
        for (int32_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    if (v->merges)
        for (int32_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    memset(v, 0, sizeof *v);
}

/* Makes room for ids < n (new slots are gaps). */
static cosy_status grow(cosy_vocab *v, int32_t n)
{
    if (n <= v->n_tokens) return COSY_OK;
    if (n > MAX_TOKENS) return cosy_error(COSY_ERR_FORMAT, "tokenizer: token id %d is too large", n - 1);
    char **nt = realloc(v->tokens, sizeof *nt * (size_t)n);
    if (!nt) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    v->tokens = nt;
    int32_t *ty = realloc(v->types, sizeof *ty * (size_t)n);
    if (!ty) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    v->types = ty;
    for (int32_t i = v->n_tokens; i < n; i++) {
        v->tokens[i] = NULL;
        v->types[i] = COSY_TOKEN_UNUSED;
    }
    v->n_tokens = n;
    return COSY_OK;
}

static cosy_status set_token(cosy_vocab *v, int32_t id, const char *text, int32_t type, const char *source)
{
    if (id < 0) return cosy_error(COSY_ERR_FORMAT, "%s: negative token id %d", source, id);
    COSY_TRY(grow(v, id + 1));
    if (v->tokens[id] && strcmp(v->tokens[id], text) != 0)
        return cosy_error(COSY_ERR_FORMAT, "%s: id %d is both '%s' and '%s'", source, id, v->tokens[id], text);
    free(v->tokens[id]);
    v->tokens[id] = strdup(text);
    if (!v->tokens[id]) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    v->types[id] = type;
    return COSY_OK;
}

static int32_t find_token(const cosy_vocab *v, const char *text)
{
    for (int32_t i = v->n_tokens - 1; i >= 0; i--)
        if (v->tokens[i] && !strcmp(v->tokens[i], text)) return i;
    return -1;
}

int32_t cosy_vocab_add_special(cosy_vocab *v, const char *text)
{
    int32_t id = find_token(v, text);
    if (id >= 0) {
        if (v->types[id] == COSY_TOKEN_NORMAL || v->types[id] == COSY_TOKEN_USER) v->types[id] = COSY_TOKEN_CONTROL;
        return id;
    }
    id = v->n_tokens;
    if (set_token(v, id, text, COSY_TOKEN_CONTROL, "tokenizer") != COSY_OK) return -1;
    return id;
}

static cosy_status add_merge(cosy_vocab *v, const char *text, size_t len)
{
    if (v->n_merges % 4096 == 0) {
        char **nm = realloc(v->merges, sizeof *nm * (size_t)(v->n_merges + 4096));
        if (!nm) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
        v->merges = nm;
    }
    char *m = malloc(len + 1);
    if (!m) return cosy_error(COSY_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(m, text, len);
    m[len] = 0;
    v->merges[v->n_merges++] = m;
    return COSY_OK;
}

static cosy_status parse_json_file(const char *path, cJSON **out)
{
    char *text;
    COSY_TRY(cosy_file_read_all(path, &text, NULL));
    const char *err = NULL;
    *out = cJSON_ParseWithOpts(text, &err, 0);
    cosy_status st = COSY_OK;
    if (!*out) st = cosy_error(COSY_ERR_FORMAT, "%s: invalid JSON near byte %ld", path, err ? (long)(err - text) : -1L);
    free(text);
    return st;
}

static cosy_status json_id(const cJSON *item, const char *path, const char *what, int32_t *id)
{
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < 0 ||
        item->valuedouble >= MAX_TOKENS)
        return cosy_error(COSY_ERR_FORMAT, "%s: %s has an invalid id", path, what);
    *id = (int32_t)item->valuedouble;
    return COSY_OK;
}

static cosy_status load_vocab_object(cosy_vocab *v, const cJSON *obj, const char *path)
{
    if (!cJSON_IsObject(obj)) return cosy_error(COSY_ERR_FORMAT, "%s: the vocabulary is not a JSON object", path);
    /* size the arrays once: growing them id by id copies them ~150k times (minutes under ASan) */
    int32_t max_id = -1;
    for (const cJSON *it = obj->child; it; it = it->next) {
        int32_t id;
        COSY_TRY(json_id(it, path, it->string, &id));
        if (id > max_id) max_id = id;
    }
    COSY_TRY(grow(v, max_id + 1));
    for (const cJSON *it = obj->child; it; it = it->next) {
        int32_t id;
        COSY_TRY(json_id(it, path, it->string, &id));
        COSY_TRY(set_token(v, id, it->string, COSY_TOKEN_NORMAL, path));
    }
    v->n_base = v->n_tokens;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (!v->tokens[i]) return cosy_error(COSY_ERR_FORMAT, "%s: the vocabulary has no token with id %d", path, i);
    return COSY_OK;
}

static cosy_status load_added(cosy_vocab *v, const char *content, int special, int32_t id, const char *path)
{
    if (id < v->n_base) {
        /* an added token that is also a vocabulary entry must be the same string */
        if (strcmp(v->tokens[id], content) != 0)
            return cosy_error(COSY_ERR_FORMAT, "%s: added token %d '%s' clashes with vocabulary entry '%s'", path, id, content, v->tokens[id]);
        v->types[id] = special ? COSY_TOKEN_CONTROL : COSY_TOKEN_USER;
        return COSY_OK;
    }
    return set_token(v, id, content, special ? COSY_TOKEN_CONTROL : COSY_TOKEN_USER, path);
}

static cosy_status load_hf_dir(const char *dir, cosy_vocab *v)
{
    char *vocab_path = cosy_path_join(dir, "vocab.json");
    char *merges_path = cosy_path_join(dir, "merges.txt");
    char *config_path = cosy_path_join(dir, "tokenizer_config.json");
    cJSON *vocab = NULL, *config = NULL;
    char *merges = NULL;
    size_t merges_len = 0;
    cosy_status st = (!vocab_path || !merges_path || !config_path) ? cosy_error(COSY_ERR_NOMEM, "out of memory") : COSY_OK;
    if (st == COSY_OK) st = parse_json_file(vocab_path, &vocab);
    if (st == COSY_OK) st = load_vocab_object(v, vocab, vocab_path);
    if (st == COSY_OK) st = cosy_file_read_all(merges_path, &merges, &merges_len);
    if (st == COSY_OK) {
        const char *p = merges, *end = merges + merges_len;
        int line_no = 0;
        while (p < end && st == COSY_OK) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            size_t len = (size_t)(le - p);
            if (len && p[len - 1] == '\r') len--;
            line_no++;
            if (len > 0 && !(line_no == 1 && !strncmp(p, "#version", 8))) {
                const char *sp = memchr(p, ' ', len);
                if (!sp || sp == p || sp == p + len - 1 || memchr(sp + 1, ' ', (size_t)(p + len - sp - 1)))
                    st = cosy_error(COSY_ERR_FORMAT, "%s: line %d is not 'left right'", merges_path, line_no);
                else
                    st = add_merge(v, p, len);
            }
            p = nl ? nl + 1 : end;
        }
    }
    if (st == COSY_OK && cosy_file_exists(config_path)) {
        st = parse_json_file(config_path, &config);
        const cJSON *added = st == COSY_OK ? cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder") : NULL;
        if (added && cJSON_IsObject(added)) {
            for (const cJSON *it = added->child; it && st == COSY_OK; it = it->next) {
                char *endp;
                long id = strtol(it->string, &endp, 10);
                const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
                const cJSON *special = cJSON_GetObjectItemCaseSensitive(it, "special");
                if (*endp || id < 0 || id >= MAX_TOKENS || !cJSON_IsString(content))
                    st = cosy_error(COSY_ERR_FORMAT, "%s: bad added_tokens_decoder entry '%s'", config_path, it->string);
                else
                    st = load_added(v, content->valuestring, !cJSON_IsFalse(special), (int32_t)id, config_path);
            }
        }
    }
    cJSON_Delete(vocab);
    cJSON_Delete(config);
    free(merges);
    free(vocab_path);
    free(merges_path);
    free(config_path);
    return st;
}

static cosy_status load_tokenizer_json(const char *path, cosy_vocab *v)
{
    cJSON *root;
    COSY_TRY(parse_json_file(path, &root));
    cosy_status st = COSY_OK;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = model ? cJSON_GetObjectItemCaseSensitive(model, "type") : NULL;
    if (!model || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)))
        st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: only BPE tokenizers are supported", path);
    if (st == COSY_OK) st = load_vocab_object(v, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path);
    const cJSON *merges = model ? cJSON_GetObjectItemCaseSensitive(model, "merges") : NULL;
    if (st == COSY_OK && !cJSON_IsArray(merges)) st = cosy_error(COSY_ERR_FORMAT, "%s: model.merges is missing", path);
    for (const cJSON *m = st == COSY_OK ? merges->child : NULL; m && st == COSY_OK; m = m->next) {
        if (cJSON_IsString(m)) {
            st = add_merge(v, m->valuestring, strlen(m->valuestring));
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            size_t a = strlen(m->child->valuestring), b = strlen(m->child->next->valuestring);
            char *joined = malloc(a + b + 2);
            if (!joined) { st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
            memcpy(joined, m->child->valuestring, a);
            joined[a] = ' ';
            memcpy(joined + a + 1, m->child->next->valuestring, b + 1);
            st = add_merge(v, joined, a + b + 1);
            free(joined);
        } else {
            st = cosy_error(COSY_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, v->n_merges);
        }
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = (st == COSY_OK && cJSON_IsArray(added)) ? added->child : NULL; a && st == COSY_OK; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(a, "special");
        int32_t idv;
        if (!cJSON_IsString(content)) { st = cosy_error(COSY_ERR_FORMAT, "%s: an added token has no content", path); break; }
        st = json_id(id, path, content->valuestring, &idv);
        if (st == COSY_OK) st = load_added(v, content->valuestring, !cJSON_IsFalse(special), idv, path);
    }
    cJSON_Delete(root);
    return st;
}

cosy_status cosy_vocab_load_dir(const char *dir, cosy_vocab *out)
{
    memset(out, 0, sizeof *out);
    char *tj = cosy_path_join(dir, "tokenizer.json");
    char *vj = cosy_path_join(dir, "vocab.json");
    cosy_status st;
    if (!tj || !vj) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    else if (cosy_file_exists(vj)) st = load_hf_dir(dir, out);
    else if (cosy_file_exists(tj)) st = load_tokenizer_json(tj, out);
    else st = cosy_error(COSY_ERR_MISSING, "%s: no tokenizer (vocab.json + merges.txt, or tokenizer.json)", dir);
    free(tj);
    free(vj);
    for (int i = 0; st == COSY_OK && i < cosy_cv2_n_special_tokens; i++)
        if (cosy_vocab_add_special(out, cosy_cv2_special_tokens[i]) < 0) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; st == COSY_OK && i < out->n_tokens; i++)
        if (!out->tokens[i]) {
            out->tokens[i] = strdup("");
            if (!out->tokens[i]) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        }
    if (st != COSY_OK) cosy_vocab_free(out);
    return st;
}

cosy_status cosy_vocab_add_cv3_specials(cosy_vocab *v)
{
    for (int i = 0; i < cosy_cv3_n_extra_tokens; i++)
        if (cosy_vocab_add_special(v, cv3_extra_tokens[i]) < 0) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    return COSY_OK;
}

void cosy_vocab_write_gguf(const cosy_vocab *v, const char *arch, gguf_writer *w)
{
    char key[96];
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, NULL, (uint64_t)v->n_tokens);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, (uint64_t)v->n_tokens);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL, (uint64_t)v->n_merges);
    snprintf(key, sizeof key, "%s.tokenizer.base_vocab", arch);
    gguf_writer_set_i32(w, key, v->n_base);
}

cosy_status cosy_vocab_from_gguf(const gguf_file *g, cosy_vocab *out)
{
    memset(out, 0, sizeof *out);
    const gguf_kv *tokens = gguf_find_kv(g, "tokenizer.ggml.tokens");
    const gguf_kv *types = gguf_find_kv(g, "tokenizer.ggml.token_type");
    const gguf_kv *merges = gguf_find_kv(g, "tokenizer.ggml.merges");
    if (!tokens || !types || !merges) return cosy_error(COSY_ERR_MISSING, "%s: the tokenizer is missing (tokenizer.ggml.*)", g->file.path);
    if (tokens->type != GGUF_TYPE_ARRAY || tokens->arr_type != GGUF_TYPE_STRING || merges->type != GGUF_TYPE_ARRAY ||
        merges->arr_type != GGUF_TYPE_STRING || types->type != GGUF_TYPE_ARRAY || types->arr_type != GGUF_TYPE_INT32 ||
        types->n != tokens->n || tokens->n > MAX_TOKENS || merges->n > MAX_TOKENS)
        return cosy_error(COSY_ERR_FORMAT, "%s: malformed tokenizer arrays", g->file.path);
    /* "<general.architecture>.tokenizer.base_vocab" (cosyvoice2 / cosyvoice3) */
    const gguf_kv *arch = gguf_find_kv(g, "general.architecture");
    char key[96];
    snprintf(key, sizeof key, "%.*s.tokenizer.base_vocab", arch && arch->type == GGUF_TYPE_STRING && arch->str.len < 32 ? (int)arch->str.len : 10,
             arch && arch->type == GGUF_TYPE_STRING && arch->str.len < 32 ? arch->str.ptr : "cosyvoice2");
    int64_t base = 0;
    if (gguf_get_int(g, key, &base) != COSY_OK || base < 0 || base > (int64_t)tokens->n)
        return cosy_error(COSY_ERR_FORMAT, "%s: bad %s", g->file.path, key);
    cosy_status st = grow(out, (int32_t)tokens->n);
    out->n_base = (int32_t)base;
    for (uint64_t i = 0; st == COSY_OK && i < tokens->n; i++) {
        const gguf_str *s = &tokens->strs[i];
        out->tokens[i] = malloc((size_t)s->len + 1);
        if (!out->tokens[i]) { st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
        memcpy(out->tokens[i], s->ptr, (size_t)s->len);
        out->tokens[i][s->len] = 0;
        int32_t t;
        memcpy(&t, (const char *)types->arr + i * 4, 4);
        out->types[i] = t;
    }
    for (uint64_t i = 0; st == COSY_OK && i < merges->n; i++) st = add_merge(out, merges->strs[i].ptr, (size_t)merges->strs[i].len);
    if (st != COSY_OK) cosy_vocab_free(out);
    return st;
}

uint32_t cosy_byte_to_unicode(uint8_t b)
{
    /* printable latin-1 bytes stand for themselves; the others are moved to 256 + n in order */
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) return b;
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) n++;
    return 256 + n;
}

static int utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    out[0] = (char)(0xe0 | cp >> 12);
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

cosy_status cosy_vocab_byte_level(cosy_vocab *out)
{
    memset(out, 0, sizeof *out);
    cosy_status st = grow(out, 256);
    for (int b = 0; st == COSY_OK && b < 256; b++) {
        char buf[4];
        int n = utf8_put(buf, cosy_byte_to_unicode((uint8_t)b));
        buf[n] = 0;
        st = set_token(out, b, buf, COSY_TOKEN_NORMAL, "byte vocabulary");
    }
    out->n_base = 256;
    const char *qwen_added[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; st == COSY_OK && i < 3; i++)
        if (cosy_vocab_add_special(out, qwen_added[i]) < 0) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    for (int i = 0; st == COSY_OK && i < cosy_cv2_n_special_tokens; i++)
        if (cosy_vocab_add_special(out, cosy_cv2_special_tokens[i]) < 0) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st != COSY_OK) cosy_vocab_free(out);
    return st;
}
