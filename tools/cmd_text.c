/*
 * cmd_text.c — `cosy text normalize`: the text normalisation on stdin lines, one line out per line
 * in. --stage tn is WeTextProcessing's grammar alone (what its tests check), --stage wetext what
 * wetext.Normalizer.normalize returns (only text with a digit is touched), --stage frontend
 * CosyVoice's whole text_normalize (text/normalize.h) with its sentence split.
 */
#include "cli.h"
#include "core/error.h"
#include "model/model.h"
#include "text/normalize.h"
#include "text/tn.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_usage usage = {
    .cmd = "text normalize",
    .synopsis = "[--lang auto|zh|en] [--stage tn|wetext|frontend] [--class NAME] [-m MODEL.gguf | --tokenizer DIR] < lines",
    .description = "Reads UTF-8 text from stdin, one input per line, and prints one normalised line per input line.\n"
                   "  tn:       WeTextProcessing's TN grammar (tag, reorder, verbalise) on the line, as its tests run it;\n"
                   "  wetext:   wetext==0.0.4's Normalizer.normalize: strip, and the grammar only if the line has a digit;\n"
                   "  frontend: CosyVoice's text_normalize(split=True): the sentence pieces the LM gets, joined by a TAB\n"
                   "            (English lengths are counted in Qwen tokens: give -m or --tokenizer).\n",
};

int cmd_text(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "normalize") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            printf("usage: cosy text normalize [options] < lines   (see `cosy text normalize --help`)\n");
            return 0;
        }
        return cli_usage_error("text", "the only subcommand is `normalize`");
    }
    int lang = 0, stage = 0, frontend = 0;
    const char *cls = NULL, *model_path = NULL, *dir = NULL;
    const cli_option opts[] = {
        {.name = "--lang", .kind = CLI_OPT_CHOICE, .dest = &lang, .hint = "LANG", .choices = "auto,zh,en", .default_text = "auto",
         .help = "the grammar: auto picks as wetext does (zh if a character is in U+4E00..U+9FFF or the line is all digits)"},
        {.name = "--stage", .kind = CLI_OPT_CHOICE, .dest = &stage, .hint = "STAGE", .choices = "tn,wetext,frontend",
         .default_text = "tn", .help = "how much of the pipeline runs (above)"},
        {.name = "--class", .kind = CLI_OPT_STRING, .dest = &cls, .hint = "NAME",
         .help = "--stage tn, English: one rule class alone (cardinal, ordinal, decimal, fraction, date, time, measure,\n"
                 "money, telephone, electronic, whitelist, range, word, roman), as WeTextProcessing's per-class tests run\n"
                 "it; a line the class does not read whole comes out as written"},
        {.name = "--text-frontend", .kind = CLI_OPT_CHOICE, .dest = &frontend, .hint = "KIND", .choices = "wetext,none",
         .default_text = "wetext", .help = "--stage frontend: with wetext's normalisation, or as an install without it"},
        CLI_OPTION_MODEL(&model_path),
        CLI_OPTION_TOKENIZER(&dir),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc - 1, argv + 1, NULL);
    if (rc != CLI_GO_ON) return rc;
    int cls_id = -1;
    if (cls) {
        if (stage != 0 || lang == 1) return cli_usage_error("text normalize", "--class goes with --stage tn and English");
        if ((cls_id = tn_en_class_id(cls)) < 0) return cli_usage_error("text normalize", "--class %s: no such English class", cls);
    }
    if (model_path && dir) return cli_usage_error("text normalize", "give at most one of -m MODEL.gguf or --tokenizer DIR");

    cosy_model *m = NULL;
    cosy_tokenizer *own = NULL;
    const cosy_tokenizer *tok = NULL;
    cosy_status st = COSY_OK;
    if (model_path) {
        cosy_model_params p = cosy_model_default_params();
        p.n_threads = 1;
        st = cosy_model_load(model_path, &p, &m);
        if (st == COSY_OK) st = cosy_tokenizer_get(m, &tok);
    } else if (dir) {
        cosy_vocab v;
        st = cosy_vocab_load_dir(dir, &v);
        if (st == COSY_OK) {
            st = cosy_tokenizer_create_truncated(&v, v.n_merges, &own);
            cosy_vocab_free(&v);
        }
        tok = own;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long line_no = 0;
    while (st == COSY_OK && (got = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        size_t bad;
        if (cosy_utf8_check(line, len, &bad) != COSY_OK) {
            st = cosy_error(COSY_ERR_INVALID_ARG, "line %ld: invalid UTF-8 at byte %zu", line_no, bad + 1);
            break;
        }
        cosy_strbuf out = {0};
        if (stage == 2) {
            cosy_text_list pieces = {0};
            st = cosy_text_normalize_tn(tok, line, len, 1, frontend ? COSY_TEXT_TN_NONE : COSY_TEXT_TN_WETEXT, &pieces);
            for (int i = 0; st == COSY_OK && i < pieces.n; i++) {
                if (i) cosy_strbuf_append(&out, "\t", 1);
                cosy_strbuf_puts(&out, pieces.items[i]);
            }
            cosy_text_list_free(&pieces);
        } else if (cls_id >= 0)
            st = tn_en_class(line, len, cls_id, &out);
        else if (stage == 1)
            st = cosy_tn_normalize(line, len, (cosy_tn_lang)lang, &out);
        else
            st = cosy_tn_grammar(line, len, (cosy_tn_lang)lang, &out);
        if (st == COSY_OK) {
            if (out.len) fwrite(out.data, 1, out.len, stdout);
            putchar('\n');
            fflush(stdout); /* one answer per line, so a program can talk to us through a pipe */
        } else
            cosy_error_prefix(st, "line %ld", line_no);
        cosy_strbuf_free(&out);
    }
    free(line);
    rc = st == COSY_OK ? 0 : cli_fail("text normalize", st);
    cosy_tokenizer_free(own);
    cosy_model_free(m);
    return rc;
}
