/*
 * test_normalize.c — CosyVoice's text_normalize without ttsfrd/wetext (src/text/normalize.c).
 *
 * 1. Every rule with hand-written examples.
 * 2. tests/data/tokenizer/normalize_cases.jsonl.gz: the reference's own output (frontend_utils.py
 *    at @ace7c47 and inflect 7.3.1, run by tests/tokenizer/gen_normalize.py) for ~2.3k texts with
 *    split=True and split=False, and inflect's number_to_words for ~440 digit strings. Where the
 *    reference raises (9 texts), we must refuse too, naming the same exception; those are counted
 *    as refusals, not as matches.
 */
#include "test.h"
#include "text_test_util.h"

#include "text/normalize.h"
#include "text/tokenizer.h"

#include <cjson/cJSON.h>
#include <time.h>

static const cosy_tokenizer *g_tok;

/* text_normalize(text, split=True) must give exactly the pieces listed (NULL-terminated). */
static void expect_pieces(const char *text, const char *const *want)
{
    cosy_text_list l;
    cosy_status st = cosy_text_normalize(g_tok, text, strlen(text), 1, &l);
    CHECK_OK(st);
    if (st != COSY_OK) return;
    int n = 0;
    while (want[n]) n++;
    int same = l.n == n;
    for (int i = 0; same && i < n; i++) same = !strcmp(l.items[i], want[i]);
    if (!same) {
        fprintf(stderr, "text_normalize(\"%s\"):\n", text);
        for (int i = 0; i < l.n; i++) fprintf(stderr, "  got  [%d] \"%s\"\n", i, l.items[i]);
        for (int i = 0; i < n; i++) fprintf(stderr, "  want [%d] \"%s\"\n", i, want[i]);
    }
    CHECK(same);
    cosy_text_list_free(&l);
}
#define NO_PIECES(text)                                           \
    do {                                                          \
        static const char *const want_[] = {NULL};                \
        expect_pieces(text, want_);                               \
    } while (0)
#define PIECES(text, ...)                                         \
    do {                                                          \
        static const char *const want_[] = {__VA_ARGS__, NULL};   \
        expect_pieces(text, want_);                               \
    } while (0)

static void expect_nosplit(const char *text, const char *want)
{
    cosy_text_list l;
    CHECK_OK(cosy_text_normalize(g_tok, text, strlen(text), 0, &l));
    CHECK(l.n == 1);
    if (l.n == 1 && strcmp(l.items[0], want)) fprintf(stderr, "text_normalize(\"%s\", split=False) = \"%s\", want \"%s\"\n", text, l.items[0], want);
    CHECK(l.n == 1 && !strcmp(l.items[0], want));
    cosy_text_list_free(&l);
}

static void expect_words(const char *digits, const char *want)
{
    cosy_strbuf b = {0};
    CHECK_OK(cosy_text_number_to_words(digits, strlen(digits), &b));
    int same = b.data && !strcmp(b.data, want);
    if (!same) fprintf(stderr, "number_to_words(\"%s\") = \"%s\", want \"%s\"\n", digits, b.data ? b.data : "", want);
    CHECK(same);
    cosy_strbuf_free(&b);
}

static void test_rules(void)
{
    /* contains_chinese: U+4E00..U+9FFF only */
    CHECK(cosy_text_contains_chinese("abc中", strlen("abc中")));
    CHECK(!cosy_text_contains_chinese("こんにちは", strlen("こんにちは")));
    CHECK(!cosy_text_contains_chinese("\xe3\x90\x80", 3)); /* U+3400, CJK Extension A */
    CHECK(cosy_text_contains_chinese("\xe9\xbf\xbf", 3));  /* U+9FFF */

    /* is_only_punctuation: P and S categories, or empty */
    CHECK(cosy_text_is_only_punctuation("", 0));
    CHECK(cosy_text_is_only_punctuation("。！？…$+", strlen("。！？…$+")));
    CHECK(!cosy_text_is_only_punctuation("a.", 2));
    CHECK(!cosy_text_is_only_punctuation(". ", 2));

    /* frontend off for markup; empty text passes through; no strip on those paths */
    PIECES("You are a helpful assistant.<|endofprompt|> 123 ", "You are a helpful assistant.<|endofprompt|> 123 ");
    PIECES("", "");
    expect_nosplit("", "");
    PIECES("a |> b <| c", "a |> b <| c");

    /* zh chain */
    PIECES("你好\n世界", "你好世界。");
    PIECES("你好 世界 and more 中文", "你好世界and more中文。");
    PIECES("中文 English mixed 中文", "中文English mixed中文。");
    PIECES("面积5m²，体积3m³", "面积5m平方，体积3m立方。");
    PIECES("价格是3.5元.", "价格是3。5元。"); /* short sentences merge into one piece */
    PIECES("今天 - 明天", "今天-明天。");      /* replace_blank runs first: the spaces are gone */
    PIECES("abc - def中文", "abc，def中文。");
    PIECES("（注释）【标题】`代码`", "注释标题代码。");
    PIECES("他说——好吧", "他说 好吧。");
    PIECES("好的，，，", "好的。");
    PIECES("好的,、", "好的。");
    PIECES("我有123个苹果", "我有123个苹果。"); /* digits stay: only wetext reads them */
    PIECES("“你好。”他说。", "“你好。”他说。");
    PIECES("你好吗？我很好！谢谢；再见：好", "你好吗？我很好！谢谢；再见：好。");
    PIECES("你好。。。好", "你好。好。"); /* a terminator right after another is dropped */
    expect_nosplit("你好，世界，", "你好，世界。");
    expect_nosplit(" 你好 world ", "你好world");

    /* en chain: numbers, terminators, quotes */
    PIECES("I have 3 apples and 12 oranges.", "I have three apples and twelve oranges.");
    PIECES("Call 911 now", "Call nine hundred and eleven now.");
    PIECES("He said \"hello.\" Then left.", "He said \"hello.\" Then left.");
    PIECES("x²+y³=z", "xzero+yzero=z."); /* isdigit() but not \d: inflect reads them as "0" */
    PIECES("٣٤ apples", "thirty-four apples.");
    NO_PIECES("..."); /* only punctuation: dropped */
    expect_nosplit("It costs $3.50.", "It costs $three.fifty.");
    expect_nosplit("\x1c\x1dtext\x1e\x1f", "text"); /* Python's strip() removes U+001C..U+001F */

    /* where the reference raises, we refuse (split or not) with one line saying why */
    cosy_text_list r;
    for (int split = 0; split < 2; split++) {
        CHECK_FAILS(cosy_text_normalize(g_tok, "   ", 3, split, &r), COSY_ERR_INVALID_ARG, "only white space");
        CHECK_FAILS(cosy_text_normalize(g_tok, "\n\n", 2, split, &r), COSY_ERR_INVALID_ARG, "IndexError");
        CHECK_FAILS(cosy_text_normalize(g_tok, "。”你好", strlen("。”你好"), split, &r), COSY_ERR_INVALID_ARG,
                    "closing quote right after a sentence end with no sentence before it (character 2");
        CHECK_FAILS(cosy_text_normalize(g_tok, ".\"", 2, split, &r), COSY_ERR_INVALID_ARG, "IndexError");
        char big[64] = "1"; /* 10^36: inflect raises NumOutOfRangeError */
        for (int i = 0; i < 36; i++) strcat(big, "0");
        CHECK_FAILS(cosy_text_normalize(g_tok, big, strlen(big), split, &r), COSY_ERR_INVALID_ARG, "(37 digits) is too large");
        big[36] = 0; /* 10^35 still reads */
        CHECK_OK(cosy_text_normalize(g_tok, big, strlen(big), split, &r));
        cosy_text_list_free(&r);
    }
    PIECES("\"Hi.\" 你好", "\"Hi。\"你好。"); /* a quote after a sentence joins it */

    /* merging: pieces over 80 characters are cut once the current chunk has more than 60 */
    char para[4096] = "";
    for (int i = 0; i < 12; i++) strcat(para, "这是一个很长的句子。"); /* 10 characters each */
    cosy_text_list l;
    CHECK_OK(cosy_text_normalize(g_tok, para, strlen(para), 1, &l));
    CHECK(l.n == 2);
    if (l.n == 2) {
        CHECK(cosy_utf8_length(l.items[0], strlen(l.items[0])) == 80);
        CHECK(cosy_utf8_length(l.items[1], strlen(l.items[1])) == 40);
    }
    cosy_text_list_free(&l);
    /* a short tail (< 20) joins the previous chunk */
    strcpy(para, "");
    for (int i = 0; i < 9; i++) strcat(para, "这是一个很长的句子。");
    strcat(para, "短句。");
    CHECK_OK(cosy_text_normalize(g_tok, para, strlen(para), 1, &l));
    CHECK(l.n == 1 && cosy_utf8_length(l.items[0], strlen(l.items[0])) == 93);
    cosy_text_list_free(&l);

    /* English needs the tokenizer; invalid UTF-8 is refused */
    CHECK_FAILS(cosy_text_normalize(NULL, "hello", 5, 1, &l), COSY_ERR_INVALID_ARG, "tokenizer");
    CHECK_FAILS(cosy_text_normalize(g_tok, "a\xff", 2, 1, &l), COSY_ERR_INVALID_ARG, "byte 1");

    /* inflect's number_to_words */
    expect_words("0", "zero");
    expect_words("007", "seven");
    expect_words("101", "one hundred and one");
    expect_words("1001", "one thousand and one");
    expect_words("2000100", "two million, one hundred");
    expect_words("123456789", "one hundred and twenty-three million, four hundred and fifty-six thousand, seven hundred and eighty-nine");
    expect_words("\xd9\xa0\xd9\xa5", "five");    /* "٠٥": int() reads Arabic-Indic digits */
    expect_words("\xc2\xb2", "zero");             /* "²": \D removes it, an empty chunk is "0" */
}

/* The reference's outputs on the generated cases. */
static void test_reference_cases(void)
{
    size_t len;
    char *buf = text_test_read_gz(test_data("tokenizer/normalize_cases.jsonl.gz"), &len);
    CHECK(buf != NULL);
    if (!buf) return;
    char **lines;
    size_t n = text_test_lines(buf, len, &lines);
    size_t n_text = 0, n_num = 0, n_raise = 0, n_refused = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!lines[i][0]) continue;
        cJSON *r = cJSON_Parse(lines[i]);
        CHECK(r != NULL);
        if (!r) continue;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(r, "text");
        const cJSON *number = cJSON_GetObjectItemCaseSensitive(r, "number");
        int raised = cJSON_GetObjectItemCaseSensitive(r, "error") != NULL;
        n_raise += raised;
        if (cJSON_IsString(text)) {
            n_text++;
            const char *t = text->valuestring;
            for (int split = 1; split >= 0; split--) {
                cosy_text_list l;
                cosy_status st = cosy_text_normalize(g_tok, t, strlen(t), split, &l);
                if (raised) {
                    /* the reference raised: we must refuse too, naming the same exception */
                    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r, "error");
                    int same = st == COSY_OK ? 0 : cJSON_IsString(err) && strstr(cosy_last_error(), err->valuestring) != NULL;
                    if (!same) {
                        fprintf(stderr, "case %zu (split=%d) \"%.200s\": the reference raises %s, we %s%s\n", i + 1, split, t,
                                cJSON_IsString(err) ? err->valuestring : "?", st == COSY_OK ? "accept it" : "refuse with: ",
                                st == COSY_OK ? "" : cosy_last_error());
                        bad++;
                    } else {
                        n_refused++;
                    }
                    if (st == COSY_OK) cosy_text_list_free(&l);
                    continue;
                }
                if (st != COSY_OK) {
                    fprintf(stderr, "case %zu: %s\n", i + 1, cosy_last_error());
                    bad++;
                    continue;
                }
                const cJSON *want = cJSON_GetObjectItemCaseSensitive(r, split ? "split" : "nosplit");
                int same = 1;
                if (split) {
                    same = cJSON_IsArray(want) && cJSON_GetArraySize(want) == l.n;
                    for (int k = 0; same && k < l.n; k++) {
                        const cJSON *w = cJSON_GetArrayItem(want, k);
                        same = cJSON_IsString(w) && !strcmp(w->valuestring, l.items[k]);
                    }
                } else {
                    same = cJSON_IsString(want) && l.n == 1 && !strcmp(want->valuestring, l.items[0]);
                }
                if (!same) {
                    if (bad < 5) {
                        char *w = cJSON_PrintUnformatted(want);
                        fprintf(stderr, "case %zu (split=%d) \"%.200s\":\n  want %.400s\n", i + 1, split, t, w);
                        for (int k = 0; k < l.n; k++) fprintf(stderr, "  got  [%d] \"%.300s\"\n", k, l.items[k]);
                        free(w);
                    }
                    bad++;
                }
                cosy_text_list_free(&l);
            }
        } else if (cJSON_IsString(number)) {
            n_num++;
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(r, "words");
            cosy_strbuf b = {0};
            cosy_status st = cosy_text_number_to_words(number->valuestring, strlen(number->valuestring), &b);
            int same = raised ? st != COSY_OK : st == COSY_OK && cJSON_IsString(want) && b.data && !strcmp(b.data, want->valuestring);
            n_refused += raised && same;
            if (!same) {
                if (bad < 5) fprintf(stderr, "number_to_words(\"%s\") = \"%s\", want \"%s\"\n", number->valuestring,
                                     b.data ? b.data : "", cJSON_IsString(want) ? want->valuestring : "(raises)");
                bad++;
            }
            cosy_strbuf_free(&b);
        }
        cJSON_Delete(r);
    }
    printf("reference cases: %zu texts x 2, %zu numbers; %zu where the reference raises, refused here %zu times (split and "
           "not); %zu mismatches\n", n_text, n_num, n_raise, n_refused, bad);
    CHECK(n_text > 2000 && n_num > 400);
    CHECK(n_raise == 9 && n_refused == 2 * n_raise); /* every text case the reference raises on, both ways */
    CHECK(bad == 0);
    free(lines);
    free(buf);
}

int main(void)
{
    const char *dir = text_test_qwen2_dir();
    CHECK(dir != NULL);
    cosy_vocab v;
    CHECK_OK(cosy_vocab_load_dir(dir, &v));
    cosy_tokenizer *tok = NULL;
    CHECK_OK(cosy_tokenizer_create_truncated(&v, 134839, &tok)); /* CosyVoice-BlankEN's merges */
    cosy_vocab_free(&v);
    g_tok = tok;
    if (tok) {
        test_rules();
        test_reference_cases();
    }
    cosy_tokenizer_free(tok);
    return test_finish("test_normalize");
}
