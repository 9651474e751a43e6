/*
 * fuzz_text.c — libFuzzer target for the text frontend: UTF-8 checking and U+FFFD replacement,
 * the BPE tokenizer (encode, decode), CosyVoice's normaliser and sentence splitter, on arbitrary
 * bytes (invalid UTF-8 included). Besides crashes and sanitizer reports it checks invariants:
 *   - valid input survives sanitize unchanged, and sanitize always yields valid UTF-8;
 *   - invalid input is refused by encode and normalize with an error, never a crash;
 *   - decode(encode(x)) == x for x already in NFC (byte-level BPE loses nothing);
 *   - every normalised piece is valid UTF-8 and tokenizes;
 *   - cosy_tokenizer_count agrees with encode;
 *   - decode of arbitrary ids (the input read as int32, out-of-range ids included, as the
 *     tokenize command and the server's token routes pass them) fails cleanly or gives valid UTF-8.
 * Built with -DCOSY_FUZZ=ON and clang (tests/fuzz/CMakeLists.txt); tests/fuzz/run.sh runs it.
 */
#include "core/error.h"
#include "text/normalize.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cosy_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The texts the reference itself raises on (white space only, a quote closing nothing, numbers of 10^36 or
 * more) are refused with an error saying so (tests/test_normalize.c checks each); any other failure of valid
 * text breaks the invariant. */
static int reference_raises(cosy_status st)
{
    return st == COSY_ERR_INVALID_ARG && strstr(cosy_last_error(), "the reference raises") != NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* the fixture model's small Qwen-style tokenizer: real merges, fast to load */
    if (cosy_tokenizer_load_dir(COSY_TEST_DATA "/cv2-tiny/model/CosyVoice-BlankEN", &g_tok) != COSY_OK) {
        fprintf(stderr, "fuzz_text: %s\n", cosy_last_error());
        abort();
    }
    return 0;
}

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_text: invariant failed: %s (last error: %s)\n", what, cosy_last_error());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    const char *raw = (const char *)data;
    int valid = cosy_utf8_check(raw, size, NULL) == COSY_OK;
    size_t len;
    char *text = cosy_utf8_sanitize(raw, size, &len);
    if (!text) return 0;
    check(cosy_utf8_check(text, len, NULL) == COSY_OK, "sanitize gives valid UTF-8");
    if (valid) check(len == size && !memcmp(text, raw, size), "sanitize keeps valid text");

    cosy_token_ids ids = {0};
    cosy_status st = cosy_tokenizer_encode(g_tok, raw, size, &ids);
    check(valid ? st == COSY_OK : st == COSY_ERR_INVALID_ARG, "encode accepts exactly valid UTF-8");
    ids.n = 0;
    check(cosy_tokenizer_encode(g_tok, text, len, &ids) == COSY_OK, "encode of sanitized text");
    size_t count = 0;
    check(cosy_tokenizer_count(g_tok, text, len, &count) == COSY_OK && count == ids.n, "count == number of encoded ids");

    /* the raw bytes as token ids */
    size_t n_raw = size / 4;
    int32_t *raw_ids = malloc(sizeof(int32_t) * (n_raw + 1));
    if (raw_ids) {
        memcpy(raw_ids, data, n_raw * 4);
        for (int skip = 0; skip <= 1; skip++) {
            char *out = NULL;
            size_t out_len = 0;
            if (cosy_tokenizer_decode(g_tok, raw_ids, n_raw, skip, &out, &out_len) == COSY_OK) {
                check(out != NULL && cosy_utf8_check(out, out_len, NULL) == COSY_OK, "decode of raw ids gives valid UTF-8");
                free(out);
            }
        }
        free(raw_ids);
    }
    char *nfc = NULL;
    size_t nfc_len;
    check(cosy_utf8_nfc(text, len, &nfc, &nfc_len) == COSY_OK, "nfc");
    char *back = NULL;
    size_t back_len;
    check(cosy_tokenizer_decode(g_tok, ids.ids, ids.n, 0, &back, &back_len) == COSY_OK, "decode");
    if (!nfc || (nfc_len == len && !memcmp(nfc, text, len)))
        check(back_len == len && !memcmp(back, text, len), "decode(encode(x)) == x for NFC text");
    free(back);
    free(nfc);

    cosy_text_list pieces;
    st = cosy_text_normalize(g_tok, raw, size, 1, &pieces);
    check(valid ? st == COSY_OK || reference_raises(st) : st == COSY_ERR_INVALID_ARG, "normalize accepts exactly valid UTF-8");
    if (st == COSY_OK) cosy_text_list_free(&pieces);
    for (int split = 0; split <= 1; split++) {
        st = cosy_text_normalize(g_tok, text, len, split, &pieces);
        if (reference_raises(st)) continue;
        check(st == COSY_OK, "normalize of sanitized text");
        for (int i = 0; i < pieces.n; i++) {
            size_t n = strlen(pieces.items[i]);
            check(cosy_utf8_check(pieces.items[i], n, NULL) == COSY_OK, "pieces are valid UTF-8");
            ids.n = 0;
            check(cosy_tokenizer_encode(g_tok, pieces.items[i], n, &ids) == COSY_OK, "pieces tokenize");
        }
        cosy_text_list_free(&pieces);
    }
    /* the engine's split (long sentences cut, split_long.c): the same guarantees */
    st = cosy_text_normalize_bounded(g_tok, text, len, &pieces);
    if (reference_raises(st)) {
        cosy_token_ids_free(&ids);
        free(text);
        return 0;
    }
    check(st == COSY_OK, "bounded normalize of sanitized text");
    for (int i = 0; i < pieces.n; i++) {
        size_t n = strlen(pieces.items[i]);
        check(cosy_utf8_check(pieces.items[i], n, NULL) == COSY_OK, "bounded pieces are valid UTF-8");
        ids.n = 0;
        check(cosy_tokenizer_encode(g_tok, pieces.items[i], n, &ids) == COSY_OK, "bounded pieces tokenize");
    }
    cosy_text_list_free(&pieces);
    cosy_token_ids_free(&ids);
    free(text);
    return 0;
}
