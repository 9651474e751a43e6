/*
 * bench_text.c — text frontend speed on one core: tokenize, and normalise + split + tokenize the
 * pieces (what a request's text goes through before the LM), in MB of input text per second.
 * `bench_text(argc, argv)` is meant to be wired into `cosy bench` as its `text` part.
 *
 * Input: --file (one text per line) or a built-in mix of Chinese, English and mixed lines with
 * digits and punctuation, repeated to about 4 MB.
 */
#include "cli.h"
#include "core/clock.h"
#include "text/normalize.h"
#include "model/model.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_text(int argc, char **argv);

static const char *const builtin_lines[] = {
    "今天天气很好，我们一起去公园散步吧。你觉得怎么样？",
    "CosyVoice 2 是一个流式语音合成模型，支持中文、英文、日文和韩文。它的首包延迟只有150毫秒。",
    "The quick brown fox jumps over the lazy dog. It's 3:45 pm and we've got 12 minutes left!",
    "I don't think they'll make it before 2025; the report said 1,234 people attended.",
    "这个项目用C语言实现，不依赖Python。The engine runs on a plain CPU with 2 cores.",
    "“你好！”他说。“很高兴认识你。”然后他们聊了很久——直到天黑。",
    "Please call me at 555-0123, or e-mail me. Thanks!!! See you soon...",
    "模型的参数量大约是5亿，推理时的实时率约为0.3。",
};

static const cli_usage usage = {
    .cmd = "bench text",
    .synopsis = "(-m MODEL.gguf | --tokenizer DIR) [--file TEXT] [--runs N] [--merges N]",
    .description = "Measures the text frontend on one thread: tokenize each line; then text_normalize(split=True)\n"
                   "each line (with long sentences cut, as a session does) and tokenize the pieces. Prints MB/s of\n"
                   "input (best of --runs runs).\n",
};

int bench_text(int argc, char **argv)
{
    const char *model_path = NULL, *dir = NULL, *file = NULL;
    long long runs = 3, merges = -1;
    int no_wetext = 0;
    const cli_option opts[] = {
        {.name = "--text-frontend", .kind = CLI_OPT_CHOICE, .dest = &no_wetext, .hint = "KIND", .choices = "wetext,none",
         .default_text = "wetext", .help = "normalise with wetext's TN first (the default, as a session does), or without"},
        CLI_OPTION_MODEL(&model_path),
        CLI_OPTION_TOKENIZER(&dir),
        {.name = "--file", .kind = CLI_OPT_STRING, .dest = &file, .hint = "TEXT", .help = "the text, one input per line",
         .default_text = "a built-in mixed zh/en text"},
        CLI_OPTION_MERGES(&merges),
        CLI_OPTION_RUNS(&runs, "3"),
        CLI_OPTION_END,
    };
    int parsed = cli_parse_options(&usage, opts, argc, argv, &model_path);
    if (parsed != CLI_GO_ON) return parsed;
    if (!model_path == !dir) return cli_usage_error("bench text", "give -m MODEL.gguf or --tokenizer DIR");

    cosy_model *m = NULL;
    cosy_tokenizer *own = NULL;
    const cosy_tokenizer *tok = NULL;
    cosy_status st;
    if (model_path) {
        cosy_model_params p = cosy_model_default_params();
        p.n_threads = 1;
        st = cosy_model_load(model_path, &p, &m);
        if (st == COSY_OK) st = cosy_tokenizer_get(m, &tok);
    } else {
        cosy_vocab v;
        st = cosy_vocab_load_dir(dir, &v);
        if (st == COSY_OK) {
            st = cosy_tokenizer_create_truncated(&v, merges >= 0 && merges <= v.n_merges ? (int32_t)merges : v.n_merges, &own);
            cosy_vocab_free(&v);
        }
        tok = own;
    }
    if (st != COSY_OK) {
        cosy_model_free(m);
        return cli_fail("bench", st);
    }

    /* the input lines */
    cosy_text_list lines = {0};
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            cosy_tokenizer_free(own);
            cosy_model_free(m);
            return cli_usage_error("bench text", "cannot open '%s'", file);
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (st == COSY_OK && (n = getline(&line, &cap, f)) >= 0) {
            if (n > 0 && line[n - 1] == '\n') n--;
            char *clean = cosy_utf8_sanitize(line, (size_t)n, NULL);
            st = clean ? cosy_text_list_push(&lines, clean, strlen(clean)) : COSY_ERR_NOMEM;
            free(clean);
        }
        free(line);
        fclose(f);
    } else {
        size_t total = 0;
        for (int r = 0; st == COSY_OK && total < (4u << 20); r++)
            for (size_t i = 0; st == COSY_OK && i < sizeof builtin_lines / sizeof builtin_lines[0]; i++) {
                st = cosy_text_list_push(&lines, builtin_lines[i], strlen(builtin_lines[i]));
                total += strlen(builtin_lines[i]);
            }
    }
    size_t bytes = 0;
    for (int i = 0; i < lines.n; i++) bytes += strlen(lines.items[i]);

    double best_tok = 1e30, best_all = 1e30;
    size_t n_ids = 0, n_pieces = 0;
    cosy_token_ids ids = {0};
    for (long long r = 0; st == COSY_OK && r < runs; r++) {
        double t0 = (cosy_now_ms() / 1e3);
        n_ids = 0;
        for (int i = 0; st == COSY_OK && i < lines.n; i++) {
            ids.n = 0;
            st = cosy_tokenizer_encode(tok, lines.items[i], strlen(lines.items[i]), &ids);
            n_ids += ids.n;
        }
        double t1 = (cosy_now_ms() / 1e3);
        n_pieces = 0;
        for (int i = 0; st == COSY_OK && i < lines.n; i++) {
            cosy_text_list pieces;
            st = cosy_text_normalize_bounded_tn(tok, lines.items[i], strlen(lines.items[i]),
                                                no_wetext ? COSY_TEXT_TN_NONE : COSY_TEXT_TN_WETEXT, &pieces);
            for (int k = 0; st == COSY_OK && k < pieces.n; k++) {
                ids.n = 0;
                st = cosy_tokenizer_encode(tok, pieces.items[k], strlen(pieces.items[k]), &ids);
            }
            if (st == COSY_OK) {
                n_pieces += (size_t)pieces.n;
                cosy_text_list_free(&pieces);
            }
        }
        double t2 = (cosy_now_ms() / 1e3);
        if (t1 - t0 < best_tok) best_tok = t1 - t0;
        if (t2 - t1 < best_all) best_all = t2 - t1;
    }
    cosy_token_ids_free(&ids);
    int rc = 0;
    if (st != COSY_OK) rc = cli_fail("bench", st);
    else {
        printf("text: %d lines, %.2f MB, %zu ids, %zu pieces after normalisation\n", lines.n, bytes / 1e6, n_ids, n_pieces);
        printf("tokenize:                     %7.1f MB/s  (%.0f ids/ms, best of %lld)\n", bytes / best_tok / 1e6,
               n_ids / best_tok / 1e3, runs);
        printf("normalize + split + tokenize: %7.1f MB/s  (best of %lld)\n", bytes / best_all / 1e6, runs);
    }
    cosy_text_list_free(&lines);
    cosy_tokenizer_free(own);
    cosy_model_free(m);
    return rc;
}
