/* test_yaml.c — the HyperPyYAML subset: tags kept, !ref and arithmetic resolved, lists,
 * nulls, and clear errors for missing keys, bad expressions and reference cycles. */
#include "test.h"

#include "io/yaml.h"

#include <time.h>

static const char doc[] =
    "__set_seed1: !apply:random.seed [1986]\n"
    "chunk_size: 25 # streaming chunk\n"
    "token_mel_ratio: 2\n"
    "left: -1\n"
    "rate: 1e-06\n"
    "nested:\n"
    "    inner: 7\n"
    "llm: !new:cosyvoice.llm.llm.Qwen2LM\n"
    "    llm_input_size: !ref <chunk_size>\n"
    "    mix_ratio: [5, 15]\n"
    "    sampling: !name:cosyvoice.utils.common.ras_sampling\n"
    "        top_p: 0.8\n"
    "flow: !new:x.Flow\n"
    "    static: !ref <chunk_size> * <token_mel_ratio>\n"
    "    expr: !ref (<chunk_size> + 5) // 4 - <nested[inner]>\n"
    "    alias: !ref <llm>\n"
    "    fmax: null\n"
    "    name: 'gelu'\n"
    "    dil: [[1, 3, 5], [1, 3, 5]]\n"
    "    ragged: [[1, 3], [1]]\n"
    "    bad: !ref <nowhere>\n"
    "    cyc: !ref <cycle_a>\n"
    "    div: !ref <chunk_size> / 0\n"
    "cycle_a: !ref <cycle_b>\n"
    "cycle_b: !ref <cycle_a>\n";

/* Crafted inputs: a value nesting 300k '(' (once a stack overflow), one of 300k unary
 * minus, and references fanning out 4 ways over 15 levels (4^15 evaluations: a hang). */
static void test_hostile(void)
{
    cosy_yaml *y = NULL;
    int64_t v;
    const size_t deep = 300000;
    char *text = malloc(2 * deep + 64);
    CHECK(text != NULL);
    if (!text) return;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = (size_t)sprintf(text, "deep: !ref ");
        for (size_t i = 0; i < deep; i++) text[k++] = pass ? '-' : '(';
        text[k++] = '1';
        if (!pass) for (size_t i = 0; i < deep; i++) text[k++] = ')';
        text[k++] = '\n';
        text[k] = 0;
        CHECK_OK(cosy_yaml_parse(text, k, "deep.yaml", &y));
        if (y) CHECK_FAILS(cosy_yaml_get_int(y, "deep", &v), COSY_ERR_FORMAT, "key deep: deep.yaml: expression nests more than");
        cosy_yaml_free(y);
        y = NULL;
    }
    /* 300k '[' (or '{'): libyaml's scanner is quadratic in open flow collections (minutes); refused at
     * once, with the position, while quoted and commented brackets and a modest nesting are fine */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = (size_t)sprintf(text, "a: 1\nflow: ");
        for (size_t i = 0; i < deep; i++) text[k++] = pass ? '{' : '[';
        text[k++] = '\n';
        text[k] = 0;
        CHECK_FAILS(cosy_yaml_parse(text, k, "flow.yaml", &y), COSY_ERR_FORMAT, "flow.yaml: line 2 column 39 (byte 43): flow collections ([ ] { }) nest more than 32 deep");
        CHECK(y == NULL);
    }
    {
        size_t k = (size_t)sprintf(text, "s: '[[[[' # [[[[\nd: \"[[\\\"[[\"\nl: ");
        for (int i = 0; i < 30; i++) text[k++] = '[';
        text[k++] = '7';
        for (int i = 0; i < 30; i++) text[k++] = ']';
        for (int i = 0; i < 70; i++) k += (size_t)sprintf(text + k, "\n# [[[[[[[[[[");
        text[k++] = '\n';
        CHECK_OK(cosy_yaml_parse(text, k, "quoted.yaml", &y));
        cosy_yaml_free(y);
        y = NULL;
    }
    /* a nesting within the limit still evaluates */
    size_t k = (size_t)sprintf(text, "ok: !ref ");
    for (int i = 0; i < 50; i++) text[k++] = '(';
    text[k++] = '3';
    for (int i = 0; i < 50; i++) text[k++] = ')';
    k += (size_t)sprintf(text + k, " - -2\n");
    CHECK_OK(cosy_yaml_parse(text, k, "ok.yaml", &y));
    if (y) {
        CHECK_OK(cosy_yaml_get_int(y, "ok", &v));
        CHECK(v == 5);
    }
    cosy_yaml_free(y);
    y = NULL;

    k = (size_t)sprintf(text, "l0: 1\n");
    for (int i = 1; i <= 15; i++)
        k += (size_t)sprintf(text + k, "l%d: !ref <l%d> + <l%d> + <l%d> + <l%d>\n", i, i - 1, i - 1, i - 1, i - 1);
    k += (size_t)sprintf(text + k, "fan: [!ref <l15>]\n");
    CHECK_OK(cosy_yaml_parse(text, k, "fan.yaml", &y));
    if (y) {
        CHECK_OK(cosy_yaml_get_int(y, "l5", &v)); /* 4^5 evaluations: fine */
        CHECK(v == 1024);
        CHECK_FAILS(cosy_yaml_get_int(y, "l15", &v), COSY_ERR_FORMAT, "key l15: fan.yaml: expression expands to more than");
        int64_t list[2];
        int n;
        CHECK_FAILS(cosy_yaml_get_int_list(y, "fan", list, 2, &n), COSY_ERR_FORMAT, "list fan: fan.yaml: expression expands to more than");
    }
    cosy_yaml_free(y);
    y = NULL;

    free(text);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* libyaml's scanner is quadratic in flow depth: a value of 300k '[' took about 5 minutes inside
 * yaml_parser_load before any limit of ours ran. The pre-scan refuses it at once with the line,
 * and the worst text it lets through (1 MiB of collections at the depth limit) stays fast. */
static void test_deep_flow(void)
{
    const size_t deep = 300000;
    char *text = malloc(deep + 64);
    CHECK(text != NULL);
    if (!text) return;
    for (int brace = 0; brace < 2; brace++) {
        size_t k = (size_t)sprintf(text, "a: 1\n# a comment [[[[\nb:\n  ");
        for (size_t i = 0; i < deep; i++) text[k++] = brace ? '{' : '[';
        text[k] = 0;
        cosy_yaml *y = NULL;
        double t0 = now_s();
        CHECK_FAILS(cosy_yaml_parse(text, k, "deep.yaml", &y), COSY_ERR_FORMAT, "deep.yaml: line 4 column 35 (byte 59): flow collections");
        double dt = now_s() - t0;
        CHECK(dt < 2.0); /* a hang guard (the issue: refused within a second or two), not a benchmark */
        CHECK(!strchr(cosy_last_error(), '\n'));
        CHECK(y == NULL);
    }
    free(text);

    /* 1 MiB of "[[[...1...]]], " at 32 deep: accepted (within both limits) and parsed quickly */
    size_t cap = 1u << 20, k = (size_t)sprintf(text = malloc(cap + 1), "v: [");
    while (k + 70 < cap) {
        for (int i = 0; i < 31; i++) text[k++] = '[';
        text[k++] = '1';
        for (int i = 0; i < 31; i++) text[k++] = ']';
        text[k++] = ',';
        text[k++] = ' ';
    }
    k += (size_t)sprintf(text + k, "1]\n");
    cosy_yaml *y = NULL;
    double t0 = now_s();
    CHECK_OK(cosy_yaml_parse(text, k, "wide.yaml", &y));
    double dt = now_s() - t0;
    fprintf(stderr, "test_yaml: 1 MiB at flow depth 32 parsed in %.3f s\n", dt);
    CHECK(dt < 2.0); /* hang guard, not a benchmark */
    cosy_yaml_free(y);
    /* one more byte or one more level is refused */
    text[0] = 0;
    char big[160];
    size_t nb = (size_t)sprintf(big, "v: ");
    for (int i = 0; i < 33; i++) big[nb++] = '[';
    big[nb++] = '1';
    for (int i = 0; i < 33; i++) big[nb++] = ']';
    big[nb++] = '\n';
    big[nb] = 0;
    CHECK_FAILS(cosy_yaml_parse(big, nb, "d33.yaml", &y), COSY_ERR_FORMAT, "d33.yaml: line 1 column 36 (byte 35): flow collections");
    free(text);
    text = calloc(1, (1u << 20) + 2);
    if (text) {
        memcpy(text, "a: 1\n", 5);
        memset(text + 5, ' ', (1u << 20) - 4);
        CHECK_FAILS(cosy_yaml_parse(text, (1u << 20) + 1, "huge.yaml", &y), COSY_ERR_FORMAT, "huge.yaml: 1048577 bytes is too large");
    }
    free(text);
}

/* List entries beyond int64 were converted anyway (9e86: UB, found by fuzz_yaml); they are refused
 * as cosy_yaml_get_int refuses them. */
static void test_huge_list_entries(void)
{
    static const char text[] = "big: [1, 9e86]\nneg: [-2e19]\nmat: [[1, 2], [3, 1e300]]\nok: [9000000000000000, -3]\n";
    cosy_yaml *y = NULL;
    CHECK_OK(cosy_yaml_parse(text, sizeof text - 1, "huge.yaml", &y));
    if (!y) return;
    int64_t list[4], mat[2 * 4];
    int n, rows, cols;
    CHECK_FAILS(cosy_yaml_get_int_list(y, "big", list, 4, &n), COSY_ERR_FORMAT, "huge.yaml: list big holds 9e+86, integers were expected");
    CHECK_FAILS(cosy_yaml_get_int_list(y, "neg", list, 4, &n), COSY_ERR_FORMAT, "list neg holds -2e+19");
    CHECK_FAILS(cosy_yaml_get_int_matrix(y, "mat", mat, 2, 4, &rows, &cols), COSY_ERR_FORMAT, "holds 1e+300");
    CHECK_OK(cosy_yaml_get_int_list(y, "ok", list, 4, &n));
    CHECK(n == 2 && list[0] == 9000000000000000LL && list[1] == -3);
    cosy_yaml_free(y);
}

int main(void)
{
    test_deep_flow();
    test_huge_list_entries();
    test_hostile();
    cosy_yaml *y = NULL;
    CHECK_OK(cosy_yaml_parse(doc, sizeof doc - 1, "test.yaml", &y));
    if (!y) return test_finish("test_yaml");
    int64_t v;
    double d;
    char buf[128];
    int is_null;
    CHECK_OK(cosy_yaml_get_int(y, "chunk_size", &v));
    CHECK(v == 25);
    CHECK_OK(cosy_yaml_get_int(y, "left", &v));
    CHECK(v == -1);
    CHECK_OK(cosy_yaml_get_float(y, "rate", &d));
    CHECK(d == 1e-6);
    CHECK_OK(cosy_yaml_get_int(y, "llm.llm_input_size", &v));
    CHECK(v == 25);
    CHECK_OK(cosy_yaml_get_int(y, "flow.static", &v));
    CHECK(v == 50);
    CHECK_OK(cosy_yaml_get_int(y, "flow.expr", &v));
    CHECK(v == 0); /* (25 + 5) // 4 - 7 */
    CHECK_OK(cosy_yaml_get_float(y, "llm.sampling.top_p", &d));
    CHECK(d == 0.8);
    CHECK_OK(cosy_yaml_get_float(y, "flow.alias.sampling.top_p", &d)); /* through a reference to a mapping */
    CHECK(d == 0.8);
    CHECK_OK(cosy_yaml_get_tag(y, "llm", buf, sizeof buf));
    CHECK(!strcmp(buf, "!new:cosyvoice.llm.llm.Qwen2LM"));
    CHECK_OK(cosy_yaml_get_tag(y, "llm.sampling", buf, sizeof buf));
    CHECK(!strcmp(buf, "!name:cosyvoice.utils.common.ras_sampling"));
    CHECK_OK(cosy_yaml_get_str(y, "flow.fmax", buf, sizeof buf, &is_null));
    CHECK(is_null && buf[0] == 0);
    CHECK_OK(cosy_yaml_get_str(y, "flow.name", buf, sizeof buf, &is_null));
    CHECK(!is_null && !strcmp(buf, "gelu"));
    int64_t list[8], mat[4 * 8];
    int n, rows, cols;
    CHECK_OK(cosy_yaml_get_int_list(y, "llm.mix_ratio", list, 8, &n));
    CHECK(n == 2 && list[0] == 5 && list[1] == 15);
    CHECK_FAILS(cosy_yaml_get_int_list(y, "llm.mix_ratio", list, 1, &n), COSY_ERR_FORMAT, "more than 1");
    CHECK_OK(cosy_yaml_get_int_matrix(y, "flow.dil", mat, 4, 8, &rows, &cols));
    CHECK(rows == 2 && cols == 3 && mat[0 * 8 + 1] == 3 && mat[1 * 8 + 2] == 5);
    CHECK_FAILS(cosy_yaml_get_int_matrix(y, "flow.ragged", mat, 4, 8, &rows, &cols), COSY_ERR_FORMAT, "different lengths");
    CHECK(cosy_yaml_has(y, "nested.inner") && !cosy_yaml_has(y, "nested.outer"));
    CHECK_FAILS(cosy_yaml_get_int(y, "flow.missing", &v), COSY_ERR_MISSING, "test.yaml: key flow.missing is missing");
    CHECK_FAILS(cosy_yaml_get_int(y, "flow.bad", &v), COSY_ERR_MISSING, "key flow.bad refers to <nowhere>, which names no key");
    CHECK_FAILS(cosy_yaml_get_int(y, "flow.cyc", &v), COSY_ERR_FORMAT, "flow.cyc: test.yaml: references nest too deeply (a cycle?)");
    CHECK_FAILS(cosy_yaml_get_int(y, "flow.div", &v), COSY_ERR_FORMAT, "division by zero");
    CHECK_FAILS(cosy_yaml_get_int(y, "rate", &v), COSY_ERR_FORMAT, "integer was expected");
    CHECK_FAILS(cosy_yaml_get_int(y, "flow.name", &v), COSY_ERR_FORMAT, "cannot evaluate");
    CHECK_FAILS(cosy_yaml_get_int(y, "llm.mix_ratio", &v), COSY_ERR_FORMAT, "expected a number");
    cosy_yaml_free(y);

    CHECK_FAILS(cosy_yaml_parse("a: [1, 2\n", 9, "broken.yaml", &y), COSY_ERR_FORMAT, "broken.yaml: yaml error at line");
    CHECK_FAILS(cosy_yaml_parse("- 1\n- 2\n", 8, "list.yaml", &y), COSY_ERR_FORMAT, "not a mapping");
    CHECK_FAILS(cosy_yaml_load(test_tmp("none.yaml"), &y), COSY_ERR_MISSING, "none.yaml");
    return test_finish("test_yaml");
}
