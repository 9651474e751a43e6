/*
 * fuzz_tn.c — libFuzzer target for the text normalisation (text/tn.h): the zh and en grammars, each
 * English class alone, and wetext's entry point, on arbitrary bytes (made valid UTF-8 first, as the
 * frontend refuses the rest). Besides crashes, sanitizer reports and hangs (libFuzzer's -timeout) it
 * checks that the output is valid UTF-8 and at most 40 bytes per input byte (+64).
 * Built with -DCOSY_FUZZ=ON and clang (tests/fuzz/CMakeLists.txt): configure build-fuzz as tests/fuzz/run.sh
 * does, `cmake --build build-fuzz --target fuzz_tn`, then build-fuzz/tests/fuzz/fuzz_tn -max_total_time=60.
 */
#include "text/tn.h"
#include "text/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *what, const char *in, size_t n, cosy_status st, const cosy_strbuf *out)
{
    if (st != COSY_OK) return; /* only out of memory fails */
    const char *s = out->data ? out->data : "";
    if (cosy_utf8_check(s, out->len, NULL) != COSY_OK || out->len > 40 * n + 64) {
        fprintf(stderr, "fuzz_tn: %s: bad output (%zu bytes from %zu): %.*s\n", what, out->len, n, (int)(n < 200 ? n : 200), in);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    size_t n;
    char *s = cosy_utf8_sanitize((const char *)data, size, &n);
    if (!s) return 0;
    static const char *const classes[] = {"cardinal", "ordinal", "decimal", "fraction", "date", "time", "measure",
                                          "money", "telephone", "electronic", "whitelist", "range", "word", "roman"};
    for (int lang = 0; lang < 3; lang++) {
        cosy_strbuf out = {0};
        check("grammar", s, n, cosy_tn_grammar(s, n, (cosy_tn_lang)lang, &out), &out);
        cosy_strbuf_free(&out);
        check("wetext", s, n, cosy_tn_normalize(s, n, (cosy_tn_lang)lang, &out), &out);
        cosy_strbuf_free(&out);
    }
    int k = size ? data[0] % (sizeof classes / sizeof *classes) : 0;
    cosy_strbuf out = {0};
    check(classes[k], s, n, tn_en_class(s, n, tn_en_class_id(classes[k]), &out), &out);
    cosy_strbuf_free(&out);
    free(s);
    return 0;
}
