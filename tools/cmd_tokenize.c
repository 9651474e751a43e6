/*
 * cmd_tokenize.c — `cosy tokenize`: the text frontend on stdin lines. Ids (or token strings)
 * per line, CosyVoice's normalisation and sentence split, or decoding ids back to text. It is
 * how a person checks what the LM will be fed, and how the exactness corpus is compared with
 * Hugging Face's tokenizers by hand.
 */
#include "cli.h"
#include "core/error.h"
#include "model/model.h"
#include "text/normalize.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_usage usage = {
    .cmd = "tokenize",
    .synopsis = "(-m MODEL.gguf | --tokenizer DIR) [options] < lines",
    .description = "Reads UTF-8 text from stdin, one input per line (the '\\n' ends the line; a '\\r' before it is\n"
                   "kept as text), and prints one line of space-separated token ids per input line: Qwen2 BPE as\n"
                   "Hugging Face's tokenizers computes it, with CosyVoice2's special tokens, no BOS/EOS.\n",
};

typedef struct {
    int tokens, normalize, split, reference_split, decode, skip_special, escapes, replace;
} options;

/* In-place \n \r \t \\ unescaping; other backslashes stay. */
static size_t unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            char c = s[i + 1];
            char r = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c == '\\' ? '\\' : 0;
            if (r) {
                s[o++] = r;
                i++;
                continue;
            }
        }
        s[o++] = s[i];
    }
    return o;
}

static void print_ids(const cosy_tokenizer *tok, const cosy_token_ids *ids, int tokens)
{
    for (size_t i = 0; i < ids->n; i++) {
        if (i) putchar(' ');
        if (tokens) fputs(cosy_tokenizer_token(tok, ids->ids[i]), stdout);
        else printf("%d", ids->ids[i]);
    }
    putchar('\n');
}

static cosy_status decode_line(const cosy_tokenizer *tok, const char *line, int skip_special)
{
    cosy_token_ids ids = {0};
    cosy_status st = COSY_OK;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ' ' && *end != '\t' && *end != '\r')) {
            st = cosy_error(COSY_ERR_INVALID_ARG, "'%.20s' is not a token id", p);
            break;
        }
        if (ids.n == ids.cap) {
            size_t cap = ids.cap ? ids.cap * 2 : 64;
            int32_t *q = realloc(ids.ids, cap * sizeof *q);
            if (!q) { st = cosy_error(COSY_ERR_NOMEM, "out of memory"); break; }
            ids.ids = q;
            ids.cap = cap;
        }
        ids.ids[ids.n++] = (int32_t)v;
        p = end;
    }
    char *text = NULL;
    size_t len = 0;
    if (st == COSY_OK) st = cosy_tokenizer_decode(tok, ids.ids, ids.n, skip_special, &text, &len);
    if (st == COSY_OK) {
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    free(text);
    cosy_token_ids_free(&ids);
    return st;
}

static cosy_status process_line(const cosy_tokenizer *tok, const options *o, char *line, size_t len, long line_no)
{
    if (o->decode) {
        cosy_status st = decode_line(tok, line, o->skip_special);
        return st == COSY_OK ? st : cosy_error_prefix(st, "line %ld", line_no);
    }
    if (o->escapes) len = unescape(line, len);
    char *clean = NULL;
    size_t bad;
    if (cosy_utf8_check(line, len, &bad) != COSY_OK) {
        if (!o->replace) return cosy_error(COSY_ERR_INVALID_ARG, "line %ld: invalid UTF-8 at byte %zu (use --replace-invalid for U+FFFD)", line_no, bad + 1);
        clean = cosy_utf8_sanitize(line, len, &len);
        if (!clean) return cosy_error(COSY_ERR_NOMEM, "out of memory");
        line = clean;
    }
    cosy_status st = COSY_OK;
    cosy_token_ids ids = {0};
    if (o->normalize) {
        cosy_text_list pieces = {0};
        if (o->split && !o->reference_split) st = cosy_text_normalize_bounded(tok, line, len, &pieces);
        else st = cosy_text_normalize(tok, line, len, o->split, &pieces);
        for (int i = 0; st == COSY_OK && i < pieces.n; i++) {
            ids.n = 0;
            st = cosy_tokenizer_encode(tok, pieces.items[i], strlen(pieces.items[i]), &ids);
            if (st != COSY_OK) break;
            fputs(pieces.items[i], stdout);
            putchar('\t');
            print_ids(tok, &ids, o->tokens);
        }
        if (st == COSY_OK && o->split) putchar('\n');
        cosy_text_list_free(&pieces);
    } else {
        st = cosy_tokenizer_encode(tok, line, len, &ids);
        if (st == COSY_OK) print_ids(tok, &ids, o->tokens);
    }
    if (st != COSY_OK) cosy_error_prefix(st, "line %ld", line_no);
    cosy_token_ids_free(&ids);
    free(clean);
    return st;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model_path = NULL, *dir = NULL;
    long long merges = -1;
    options o = {.split = 1};
    int no_split = 0;
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&model_path),
        CLI_OPTION_TOKENIZER(&dir),
        {.name = "--tokens", .kind = CLI_OPT_FLAG, .dest = &o.tokens,
         .help = "print the token strings instead of ids (byte-level alphabet: 'Ġ' is a space)"},
        {.name = "--normalize", .kind = CLI_OPT_FLAG, .dest = &o.normalize,
         .help = "run CosyVoice's text_normalize(split=True) first (no ttsfrd/wetext): print each sentence\n"
                 "piece the LM would get as 'piece<TAB>ids', then an empty line; as the engine does, a sentence\n"
                 "over 80 tokens (80 characters in Chinese) is cut at clause marks, else between words, else at 80"},
        {.name = "--reference-split", .kind = CLI_OPT_FLAG, .dest = &o.reference_split,
         .help = "with --normalize: the official split exactly (long sentences stay whole)"},
        {.name = "--no-split", .kind = CLI_OPT_FLAG, .dest = &no_split,
         .help = "with --normalize: text_normalize(split=False), one normalised line per input"},
        {.name = "--decode", .kind = CLI_OPT_FLAG, .dest = &o.decode,
         .help = "the input lines are ids; print their text (special tokens kept)"},
        {.name = "--skip-special", .kind = CLI_OPT_FLAG, .dest = &o.skip_special,
         .help = "with --decode: drop special tokens, as CosyVoice2Tokenizer.decode does"},
        {.name = "--escapes", .kind = CLI_OPT_FLAG, .dest = &o.escapes, .help = "read \\n \\r \\t \\\\ in input lines as the characters they name"},
        {.name = "--replace-invalid", .kind = CLI_OPT_FLAG, .dest = &o.replace,
         .help = "replace invalid UTF-8 by U+FFFD (as Hugging Face/Python decoding does); by default a line\n"
                 "with invalid UTF-8 is an error naming the line and byte"},
        CLI_OPTION_MERGES(&merges),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, NULL);
    if (rc != CLI_GO_ON) return rc;
    if (no_split) o.split = 0;
    if (!model_path == !dir) return cli_usage_error("tokenize", "give exactly one of -m MODEL.gguf or --tokenizer DIR");
    if (o.decode && (o.normalize || o.tokens)) return cli_usage_error("tokenize", "--decode takes ids and prints text only");
    if (o.reference_split && !o.normalize) return cli_usage_error("tokenize", "--reference-split goes with --normalize");

    cosy_model *m = NULL;
    cosy_tokenizer *own = NULL;
    const cosy_tokenizer *tok = NULL;
    cosy_status st;
    if (model_path) {
        cosy_model_params p = cosy_model_default_params();
        p.n_threads = 1;
        st = cosy_model_load(model_path, &p, &m);
        if (st == COSY_OK) st = cosy_tokenizer_get(m, &tok);
        if (st == COSY_OK && merges >= 0) st = cosy_error(COSY_ERR_INVALID_ARG, "--merges works with --tokenizer DIR only");
    } else {
        cosy_vocab v;
        st = cosy_vocab_load_dir(dir, &v);
        if (st == COSY_OK) {
            if (merges > v.n_merges) st = cosy_error(COSY_ERR_INVALID_ARG, "--merges %lld: %s has only %d merges", merges, dir, v.n_merges);
            else st = cosy_tokenizer_create_truncated(&v, merges >= 0 ? (int32_t)merges : v.n_merges, &own);
            cosy_vocab_free(&v);
        }
        tok = own;
    }
    if (st != COSY_OK) {
        rc = cli_fail("tokenize", st);
        cosy_model_free(m);
        return rc;
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long line_no = 0;
    rc = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        st = process_line(tok, &o, line, (size_t)n, line_no);
        fflush(stdout); /* one answer per line, so a program can talk to us through a pipe */
        if (st != COSY_OK) {
            rc = cli_fail("tokenize", st);
            break;
        }
    }
    free(line);
    if (fflush(stdout) != 0 && !rc) rc = cli_fail("tokenize", cosy_error(COSY_ERR_IO, "writing stdout failed"));
    cosy_tokenizer_free(own);
    cosy_model_free(m);
    return rc;
}
