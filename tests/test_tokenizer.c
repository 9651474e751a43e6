/*
 * test_tokenizer.c — the Qwen2 BPE tokenizer against Hugging Face's tokenizers.
 *
 * The corpus (tests/data/tokenizer/corpus.jsonl.gz, 14.5k lines: zh/en/mixed text from Debian's
 * gettext catalogues and docs, plus generated lines of digits, punctuation and white-space runs,
 * emoji, decomposed text, special tokens and look-alikes) was tokenized by npm
 * @huggingface/tokenizers and cross-checked with npm `tokenizers` (the Rust library) by
 * tests/tokenizer/gen_expected.mjs, for three tokenizers: the full Qwen2 merges, the same merges
 * truncated to CosyVoice-BlankEN's 134,839, and the fixture model's tiny tokenizer (loaded both
 * from its directory and from the converted model file). Every line must give identical ids.
 */
#include "test.h"
#include "text_test_util.h"

#include "model/model.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

#include <sys/wait.h>
#include <time.h>

#define BLANKEN_MERGES 134839

typedef struct {
    char **text;
    size_t *len;
    size_t n;
} corpus;

static int load_corpus(corpus *c)
{
    size_t len;
    char *buf = text_test_read_gz(test_data("tokenizer/corpus.jsonl.gz"), &len);
    if (!buf) return -1;
    char **lines;
    size_t n = text_test_lines(buf, len, &lines);
    while (n > 0 && !lines[n - 1][0]) n--;
    c->text = calloc(n, sizeof *c->text);
    c->len = calloc(n, sizeof *c->len);
    c->n = n;
    cosy_strbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *p = lines[i];
        if (text_test_json_string(&p, &b) || *p) {
            fprintf(stderr, "corpus line %zu is not a JSON string\n", i + 1);
            rc = -1;
            break;
        }
        c->text[i] = malloc(b.len + 1);
        memcpy(c->text[i], b.data, b.len + 1);
        c->len[i] = b.len;
    }
    cosy_strbuf_free(&b);
    free(lines);
    free(buf);
    return rc;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Tokenizes every corpus line and compares with expected_<name>.txt.gz; returns differing lines. */
static size_t check_corpus(const corpus *c, const cosy_tokenizer *tok, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/expected_%s.txt.gz", name);
    size_t len;
    char *buf = text_test_read_gz(test_data(rel), &len);
    CHECK(buf != NULL);
    if (!buf) return c->n;
    char **lines;
    size_t n = text_test_lines(buf, len, &lines);
    while (n > c->n && !lines[n - 1][0]) n--;
    CHECK(n == c->n);
    size_t differ = 0, total_ids = 0, bytes = 0;
    cosy_token_ids ids = {0};
    double t0 = now();
    for (size_t i = 0; i < c->n && i < n; i++) {
        ids.n = 0;
        cosy_status st = cosy_tokenizer_encode(tok, c->text[i], c->len[i], &ids);
        bytes += c->len[i];
        total_ids += ids.n;
        /* compare with the expected line of ids */
        const char *p = lines[i];
        size_t k = 0;
        int same = st == COSY_OK;
        while (same && *p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || k >= ids.n || ids.ids[k] != v) same = 0;
            k++;
            p = *end == ' ' ? end + 1 : end;
        }
        if (same && k != ids.n) same = 0;
        if (!same) {
            if (differ < 5) {
                fprintf(stderr, "%s: line %zu differs (%s)\n  expected: %.300s\n  got:     ", name, i + 1,
                        st == COSY_OK ? "ids" : cosy_last_error(), lines[i]);
                for (size_t j = 0; j < ids.n && j < 60; j++) fprintf(stderr, " %d", ids.ids[j]);
                fprintf(stderr, "\n");
            }
            differ++;
        }
    }
    double dt = now() - t0;
    printf("%s: %zu lines, %zu ids, %zu differing lines (%.1f MB/s)\n", name, c->n, total_ids, differ, bytes / dt / 1e6);
    cosy_token_ids_free(&ids);
    free(lines);
    free(buf);
    return differ;
}

static void expect_ids(const cosy_tokenizer *tok, const char *text, size_t len, const int32_t *want, size_t n_want)
{
    cosy_token_ids ids = {0};
    CHECK_OK(cosy_tokenizer_encode(tok, text, len, &ids));
    int same = ids.n == n_want;
    for (size_t i = 0; same && i < n_want; i++) same = ids.ids[i] == want[i];
    if (!same) {
        fprintf(stderr, "ids of \"%s\":", text);
        for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %d", ids.ids[i]);
        fprintf(stderr, "\n");
    }
    CHECK(same);
    cosy_token_ids_free(&ids);
}
#define EXPECT_IDS(tok, text, ...)                                                              \
    do {                                                                                        \
        static const int32_t want_[] = {__VA_ARGS__};                                           \
        expect_ids(tok, text, sizeof(text) - 1, want_, sizeof want_ / sizeof want_[0]);         \
    } while (0)

/* Cases outside the corpus, with ids from the Rust tokenizers library. */
static void test_qwen2_cases(const cosy_tokenizer *tok)
{
    /* U+017F after an apostrophe: Oniguruma's (?i:'s) matches it (pieces "'ſ", "tone"); the
     * JavaScript port does not ("'ſtone"); the ids agree either way for these */
    EXPECT_IDS(tok, "'ſtone", 6, 144815, 57929);
    EXPECT_IDS(tok, "He'ſ gone", 1519, 6, 144815, 8048);
    EXPECT_IDS(tok, "it's", 275, 594);
    EXPECT_IDS(tok, "IT'S", 952, 13272);
    EXPECT_IDS(tok, "I'LL", 40, 6, 4086);
    EXPECT_IDS(tok, "a\xc2\x85" "b", 64, 126, 227, 65);  /* U+0085 is white space */
    EXPECT_IDS(tok, "a\xef\xbb\xbf" "b", 64, 3225, 65);  /* U+FEFF is not */
    EXPECT_IDS(tok, "e\xcc\x81", 963);                   /* NFC: e + U+0301 -> é */
    /* CosyVoice2's specials: ids 151646.. in the order CosyVoice2Tokenizer adds them */
    CHECK(cosy_tokenizer_added_id(tok, "<|endofprompt|>") == 151646);
    CHECK(cosy_tokenizer_added_id(tok, "[breath]") == 151647);
    CHECK(cosy_tokenizer_added_id(tok, "[mn]") == 151662);
    CHECK(cosy_tokenizer_added_id(tok, "<|im_start|>") == 151644);
    CHECK(cosy_tokenizer_n_tokens(tok) == 151663);

    /* empty text, and NUL bytes as ordinary characters */
    cosy_token_ids ids = {0};
    CHECK_OK(cosy_tokenizer_encode(tok, "", 0, &ids));
    CHECK(ids.n == 0);
    EXPECT_IDS(tok, "a\0b", 64, 188, 65);
    /* invalid UTF-8 is refused with the byte offset */
    CHECK_FAILS(cosy_tokenizer_encode(tok, "ab\xff", 3, &ids), COSY_ERR_INVALID_ARG, "byte 2");
    CHECK_FAILS(cosy_tokenizer_encode(tok, "\xed\xa0\x80", 3, &ids), COSY_ERR_INVALID_ARG, "byte 0");
    CHECK_FAILS(cosy_tokenizer_encode(tok, "\xe4\xbd", 2, &ids), COSY_ERR_INVALID_ARG, "invalid UTF-8");
    cosy_token_ids_free(&ids);

    /* decoding: special tokens kept or skipped, partial UTF-8 replaced by U+FFFD (from_utf8_lossy) */
    char *text;
    size_t len;
    const int32_t hello[] = {151646, 9707, 1879, 151647, 0};
    CHECK_OK(cosy_tokenizer_decode(tok, hello, 4, 0, &text, &len));
    CHECK(!strcmp(text, "<|endofprompt|>Hello world[breath]"));
    free(text);
    CHECK_OK(cosy_tokenizer_decode(tok, hello, 4, 1, &text, &len));
    CHECK(!strcmp(text, "Hello world"));
    free(text);
    cosy_token_ids half = {0};
    CHECK_OK(cosy_tokenizer_encode(tok, "\xe4\xbd\xa0", 3, &half)); /* 你 = bytes e4 bd a0, tokens */
    if (half.n == 1) {
        /* the token for the 3 bytes, and a token for just its first byte */
        const int32_t first_byte_only[] = {half.ids[0], 160};
        CHECK_OK(cosy_tokenizer_decode(tok, first_byte_only, 1, 0, &text, &len));
        CHECK(!strcmp(text, "\xe4\xbd\xa0"));
        free(text);
    }
    cosy_token_ids_free(&half);
    const int32_t lone[] = {160}; /* byte 0xE4 alone */
    CHECK_OK(cosy_tokenizer_decode(tok, lone, 1, 0, &text, &len));
    CHECK(!strcmp(text, "\xef\xbf\xbd"));
    free(text);
    const int32_t bad[] = {5, 151663};
    CHECK_FAILS(cosy_tokenizer_decode(tok, bad, 2, 0, &text, &len), COSY_ERR_INVALID_ARG, "151663");
}

/* decode(encode(x)) == x for every corpus line already in NFC */
static void test_roundtrip(const corpus *c, const cosy_tokenizer *tok)
{
    size_t checked = 0, bad = 0;
    cosy_token_ids ids = {0};
    for (size_t i = 0; i < c->n; i++) {
        char *nfc = NULL;
        size_t nfc_len;
        if (cosy_utf8_nfc(c->text[i], c->len[i], &nfc, &nfc_len) != COSY_OK) { bad++; continue; }
        int already = !nfc || (nfc_len == c->len[i] && !memcmp(nfc, c->text[i], nfc_len));
        free(nfc);
        if (!already) continue;
        ids.n = 0;
        char *text = NULL;
        size_t len = 0;
        if (cosy_tokenizer_encode(tok, c->text[i], c->len[i], &ids) != COSY_OK ||
            cosy_tokenizer_decode(tok, ids.ids, ids.n, 0, &text, &len) != COSY_OK || len != c->len[i] ||
            memcmp(text, c->text[i], len)) {
            if (bad < 3) fprintf(stderr, "roundtrip of line %zu failed\n", i + 1);
            bad++;
        }
        free(text);
        checked++;
    }
    printf("roundtrip: %zu lines, %zu failed\n", checked, bad);
    CHECK(checked > c->n / 2);
    CHECK(bad == 0);
    cosy_token_ids_free(&ids);
}

/* Added tokens: leftmost-longest, matched on the raw text before NFC. */
static void test_added_tokens(void)
{
    cosy_vocab v;
    CHECK_OK(cosy_vocab_byte_level(&v));
    int32_t a = cosy_vocab_add_special(&v, "[x]");
    int32_t ab = cosy_vocab_add_special(&v, "[x]y");
    int32_t e = cosy_vocab_add_special(&v, "e\xcc\x81"); /* decomposed é as an added token */
    cosy_tokenizer *tok;
    CHECK_OK(cosy_tokenizer_create(&v, &tok));
    cosy_token_ids ids = {0};
    CHECK_OK(cosy_tokenizer_encode(tok, "[x]y[x]z", 8, &ids));
    CHECK(ids.n == 3 && ids.ids[0] == ab && ids.ids[1] == a && ids.ids[2] == 'z');
    ids.n = 0;
    CHECK_OK(cosy_tokenizer_encode(tok, "e\xcc\x81", 3, &ids));
    CHECK(ids.n == 1 && ids.ids[0] == e);
    cosy_token_ids_free(&ids);
    cosy_tokenizer_free(tok);
    /* a merge naming a missing token is refused, as Hugging Face's BPE builder does */
    v.merges = realloc(v.merges, sizeof *v.merges);
    v.merges[0] = strdup("a zz");
    v.n_merges = 1;
    CHECK_FAILS(cosy_tokenizer_create(&v, &tok), COSY_ERR_FORMAT, "merge 0 'a zz'");
    cosy_vocab_free(&v);
}

/* Runs `sh -c cmd`, returns its exit status and (first 4 KB of) stdout+stderr. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `cosy tokenize` on the fixture model's tokenizer directory */
static void test_cli(void)
{
    char cmd[2048], out[4096];
    const char *dir = test_data("cv2-tiny/model/CosyVoice-BlankEN");
    snprintf(cmd, sizeof cmd, "printf 'Hello world\\n<|endofprompt|>[breath]\\n\\n' | %s tokenize --tokenizer %s", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 0);
    CHECK(!strcmp(out, "39 301 385 1879\n1979 1980\n\n"));
    snprintf(cmd, sizeof cmd, "printf 'Hello world\\n' | %s tokenize --tokens --tokenizer %s", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 0 && !strcmp(out, "H el lo \xc4\xa0world\n"));
    snprintf(cmd, sizeof cmd, "printf '39 301 385 1879 1979\\n' | %s tokenize --decode --skip-special --tokenizer %s", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 0 && !strcmp(out, "Hello world\n"));
    /* invalid UTF-8: an error naming the line, or U+FFFD on request */
    snprintf(cmd, sizeof cmd, "printf 'ok\\nbad \\377\\n' | %s tokenize --tokenizer %s 2>&1", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 1 && strstr(out, "line 2: invalid UTF-8 at byte 5"));
    snprintf(cmd, sizeof cmd, "printf 'a\\377\\n' | %s tokenize --replace-invalid --tokens --tokenizer %s", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 0 && !strcmp(out, "a \xc3\xaf \xc2\xbf \xc2\xbd\n"));
    /* --escapes, --normalize */
    snprintf(cmd, sizeof cmd, "printf 'a\\\\nb\\n' | %s tokenize --escapes --tokenizer %s", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 0 && !strcmp(out, "64 198 65\n"));
    snprintf(cmd, sizeof cmd, "printf '\\344\\275\\240\\345\\245\\275 1\\n' | %s tokenize --normalize --tokenizer %s", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 0 && !strncmp(out, "\xe4\xbd\xa0\xe5\xa5\xbd" "1\xe3\x80\x82\t", 11));
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s -m x.gguf 2>&1", COSY_BIN, dir);
    CHECK(run(cmd, out, sizeof out) == 2);
}

int main(void)
{
    corpus c = {0};
    CHECK(load_corpus(&c) == 0);
    printf("corpus: %zu lines\n", c.n);
    CHECK(c.n >= 10000);

    const char *qwen2_dir = text_test_qwen2_dir();
    CHECK(qwen2_dir != NULL);
    cosy_vocab v;
    CHECK_OK(cosy_vocab_load_dir(qwen2_dir, &v));
    CHECK(v.n_merges == 151387);
    cosy_tokenizer *full = NULL, *blanken = NULL, *tiny = NULL;
    double t0 = now();
    CHECK_OK(cosy_tokenizer_create(&v, &full));
    printf("qwen2 tokenizer built in %.2f s\n", now() - t0);
    CHECK_OK(cosy_tokenizer_create_truncated(&v, BLANKEN_MERGES, &blanken));
    cosy_vocab_free(&v);
    if (full) {
        CHECK(check_corpus(&c, full, "qwen2") == 0);
        test_qwen2_cases(full);
        test_roundtrip(&c, full);
    }
    if (blanken) CHECK(check_corpus(&c, blanken, "blanken") == 0);

    CHECK_OK(cosy_tokenizer_load_dir(test_data("cv2-tiny/model/CosyVoice-BlankEN"), &tiny));
    if (tiny) {
        CHECK(check_corpus(&c, tiny, "tiny") == 0);
        CHECK(cosy_tokenizer_added_id(tiny, "<|endofprompt|>") == 1979);
    }

    /* the model file's tokenizer (stored by cosy convert) is the same tokenizer */
    cosy_convert_params cp = cosy_convert_default_params();
    const char *gguf = test_tmp("text_tiny.gguf");
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), gguf, &cp));
    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = 1;
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(gguf, &mp, &m));
    const cosy_tokenizer *from_model = NULL, *again = NULL;
    if (m) {
        CHECK_OK(cosy_tokenizer_get(m, &from_model));
        CHECK_OK(cosy_tokenizer_get(m, &again));
        CHECK(from_model == again);
        if (from_model) CHECK(check_corpus(&c, from_model, "tiny") == 0);
        cosy_model_free(m);
    }
    remove(gguf);

    test_added_tokens();
    test_cli();

    cosy_tokenizer_free(full);
    cosy_tokenizer_free(blanken);
    cosy_tokenizer_free(tiny);
    for (size_t i = 0; i < c.n; i++) free(c.text[i]);
    free(c.text);
    free(c.len);
    return test_finish("test_tokenizer");
}
