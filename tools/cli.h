/*
 * cli.h — shared pieces of the `cosy` command: each subcommand lives in its own cmd_*.c file
 * and is listed in the table in cosy.c; each bench lives in its own bench_*.c file and is listed
 * in the table in cmd_bench.c. Both parse their options with cli_parse_options (below).
 */
#ifndef COSY_CLI_H
#define COSY_CLI_H

#include "cosy.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
} cli_command;

int cmd_convert(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_golden(int argc, char **argv);
int cmd_voice(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_text(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "cosy <cmd>: <message>" for a failed status and returns exit code 1. */
int cli_fail(const char *cmd, cosy_status st);
/* Prints "cosy <cmd>: <printf message>" and returns exit code 2 (usage errors). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- options: one table per tool, one parser, one usage printer (cli_options.c) ----
 *
 * As llama.cpp's common/arg does, every option is declared once (flags, value hint, help,
 * how its value is checked and stored), and the usage text is printed from the same table, so
 * `--help` always lists what the parser takes. A tool:
 *
 *     static const cli_usage usage = {
 *         .cmd = "bench lm",                        // the words after `cosy`
 *         .synopsis = "-m MODEL.gguf [options]",
 *         .description = "Loads the LM, then ...",
 *     };
 *     const char *path = NULL;
 *     long long steps = 10, threads = 0;
 *     const cli_option opts[] = {                  // static too, where the destinations are
 *         CLI_OPTION_MODEL(&path),
 *         CLI_OPTION_THREADS(&threads),
 *         {.name = "--steps", .kind = CLI_OPT_INT, .dest = &steps, .hint = "N", .min = 1, .max = 100,
 *          .default_text = "10", .help = "solver steps"},
 *         CLI_OPTION_END,
 *     };
 *     int rc = cli_parse_options(&usage, opts, argc, argv, &path);  // &path: the bare argument, or NULL
 *     if (rc != CLI_GO_ON) return rc;                                // --help (0) or a usage error (2)
 *
 * `cosy bench lm --help` then prints the synopsis, the description and every option with its
 * hint, help, range or choices and default, aligned. Options several tools take are declared
 * once below (CLI_OPTION_*), with the same name, range and help everywhere; a tool's own
 * default goes in the macro's argument where it differs between tools.
 */

typedef enum {
    CLI_OPT_FLAG,    /* no value: *(int *)dest = 1 */
    CLI_OPT_INT,     /* *(long long *)dest, within [min, max] */
    CLI_OPT_STRING,  /* *(const char **)dest = the argument (argv outlives the tool) */
    CLI_OPT_DTYPE,   /* *(cosy_dtype *)dest, one of the comma-separated `choices` ("f32,bf16") */
    CLI_OPT_CHOICE,  /* *(int *)dest = the index of the value in `choices` ("default,equal,exponential") */
    CLI_OPT_CUSTOM,  /* parse(cmd, option, value): repeated options, lists; dest is the callback's */
} cli_option_kind;

typedef struct cli_option {
    const char *name;         /* "--threads" */
    const char *alias;        /* "-m", or NULL */
    cli_option_kind kind;
    void *dest;               /* where the value goes (see the kinds) */
    const char *hint;         /* the value's name in the usage: "N", "FILE", "SECONDS" (NULL: from the kind) */
    const char *help;         /* one line or several ("\n"); the range, choices and default are added */
    long long min, max;       /* CLI_OPT_INT; max LLONG_MAX reads "min or more" */
    const char *unit;         /* CLI_OPT_INT, optional: "tokens" in the usage and the refusal ("needs 1..100 tokens") */
    const char *choices;      /* CLI_OPT_DTYPE, CLI_OPT_CHOICE: "a,b,c", shown as "a, b or c" */
    const char *default_text; /* shown as "default X", or NULL (then the help says it, if anything) */
    /* CLI_OPT_CUSTOM: stores value (o->dest is its state); returns CLI_GO_ON, or an exit code after
     * printing one line (cli_usage_error(cmd, ...)) */
    int (*parse)(const char *cmd, const struct cli_option *o, const char *value);
} cli_option;

typedef struct {
    const char *cmd;          /* "synth", "bench lm", "voice import": after `cosy` in the usage and in messages */
    const char *synopsis;     /* what follows "usage: cosy <cmd> "; "\n" starts another form of the command,
                                 "\n " (a leading space) continues the current one on the next line */
    const char *description;  /* paragraphs printed under the synopsis, before the options */
} cli_usage;

#define CLI_GO_ON (-1)
/* Parses argv[1..argc) against opts (ended by CLI_OPTION_END). --help or -h prints the usage on stdout
 * and returns 0; an unknown option, a missing or bad value prints one line naming the option (exit
 * code 2, cli_usage_error) and returns 2; a bare argument goes to *positional (once; refused if
 * positional is NULL). Later occurrences of an option override earlier ones (except CUSTOM, which
 * decides). Otherwise returns CLI_GO_ON: the tool goes on with its values. */
int cli_parse_options(const cli_usage *usage, const cli_option *opts, int argc, char **argv, const char **positional);
/* The usage: "usage: cosy <cmd> <synopsis>", the description, then one aligned line (or more) per
 * option: "  -m, --model FILE     help (choices or range; default)". opts may be NULL (no options). */
void cli_print_usage(FILE *fp, const cli_usage *usage, const cli_option *opts);

/* Options several tools take: declared once, the same everywhere. `def` is the default shown in the
 * usage (a string, or NULL), where it differs from tool to tool. */
#define CLI_OPTION_END {.name = NULL}
#define CLI_OPTION_MODEL(d) \
    {.name = "--model", .alias = "-m", .kind = CLI_OPT_STRING, .dest = (d), .hint = "FILE", \
     .help = "the model file (.gguf, made by `cosy convert`)"}
#define CLI_OPTION_OUTPUT(d, hint_, help_) \
    {.name = "--output", .alias = "-o", .kind = CLI_OPT_STRING, .dest = (d), .hint = (hint_), .help = (help_)}
#define CLI_OPTION_THREADS(d) \
    {.name = "--threads", .kind = CLI_OPT_INT, .dest = (d), .hint = "N", .min = 1, .max = 256, \
     .help = "worker threads", .default_text = "one per core"}
#define CLI_OPTION_RUNS(d, def) \
    {.name = "--runs", .kind = CLI_OPT_INT, .dest = (d), .hint = "N", .min = 1, .max = 1000, \
     .help = "how many times to measure; the best run is reported", .default_text = (def)}
#define CLI_OPTION_SEED(d, def) \
    {.name = "--seed", .kind = CLI_OPT_INT, .dest = (d), .hint = "N", .min = 0, .max = LLONG_MAX, \
     .help = "the random seed: LM sampling and HiFT's noise, and the weights and voice of a random model\n" \
             "the command builds", .default_text = (def)}
#define CLI_OPTION_LM_DTYPE(d, def) \
    {.name = "--lm-dtype", .kind = CLI_OPT_DTYPE, .dest = (d), .hint = "TYPE", .choices = "auto,f32,bf16,q8_0,q4_0", \
     .help = "the LM's matrices at run time: auto runs the type the file stores (f32 for f16), q8_0 and\n" \
             "q4_0 in place; f32 is the reference (docs/lm-types.md)", .default_text = (def)}
#define CLI_OPTION_FLOW_DTYPE(d, def) \
    {.name = "--flow-dtype", .kind = CLI_OPT_DTYPE, .dest = (d), .hint = "TYPE", .choices = "auto,f32,bf16", \
     .help = "the flow's weight products: auto is bf16 where faster than f32 (AMX; AVX512-BF16 on AMD),\n" \
             "mel within 1% of f32; f32: exact, as the official numbers", .default_text = (def)}
#define CLI_OPTION_HIFT_DTYPE(d, def) \
    {.name = "--hift-dtype", .kind = CLI_OPT_DTYPE, .dest = (d), .hint = "TYPE", .choices = "auto,f32,bf16", \
     .help = "the vocoder's convolutions, the same choice: auto is bf16 where faster, the waveform within\n" \
             "2% of the largest f32 sample, SNR >= 35 dB; f32: exact", .default_text = (def)}
#define CLI_OPTION_VOICE(d) \
    {.name = "--voice", .kind = CLI_OPT_STRING, .dest = (d), .hint = "FILE", \
     .help = "a voice file (`cosy voice import`)"}
#define CLI_OPTION_SPEAKER(d) \
    {.name = "--speaker", .kind = CLI_OPT_STRING, .dest = (d), .hint = "NAME", \
     .help = "a built-in speaker of the model (spk2info.pt at conversion; `cosy info` lists them)"}
/* index = cosy_synth_mode */
#define CLI_OPTION_MODE(d) \
    {.name = "--mode", .kind = CLI_OPT_CHOICE, .dest = (d), .hint = "MODE", .choices = "zero-shot,cross-lingual,instruct,sft", \
     .help = "as CosyVoice2's inference_zero_shot, _cross_lingual, _instruct2, _sft (instruct needs\n" \
             "--instruct)", .default_text = "zero-shot; sft with --speaker"}
/* index = cosy_chunk_strategy */
#define CLI_OPTION_STRATEGY(d) \
    {.name = "--strategy", .kind = CLI_OPT_CHOICE, .dest = (d), .hint = "NAME", .choices = "default,equal,exponential", \
     .help = "the chunk schedule: default, CosyVoice2's (25 tokens aligned with the prompt, doubling up to\n" \
             "100); equal: fixed chunks of --chunk tokens; exponential: --chunk x 2^i"}
#define CLI_OPTION_CHUNK(d) \
    {.name = "--chunk", .kind = CLI_OPT_INT, .dest = (d), .hint = "N", .min = 1, .max = 10000, .unit = "tokens", \
     .help = "the chunk size of --strategy equal and exponential", .default_text = "25"}
#define CLI_OPTION_FIRST_CHUNK(d) \
    {.name = "--first-chunk", .kind = CLI_OPT_INT, .dest = (d), .hint = "N", .min = 0, .max = 10000, .unit = "tokens", \
     .help = "a small first chunk of N tokens (+3 look-ahead) before the schedule, as NVIDIA's Triton\n" \
             "runtime does with 15: earlier first audio, whose frames see only N of the flow's 25-token\n" \
             "chunk; 0: the schedule's own first chunk", .default_text = "0"}
#define CLI_OPTION_CONTEXT(d) \
    {.name = "--context", .kind = CLI_OPT_INT, .dest = (d), .hint = "SECONDS", .min = 0, .max = 3600, .unit = "seconds", \
     .help = "in a streamed sentence longer than this, the flow attends to the prompt and the last SECONDS\n" \
             "only, bounding its memory; 0 = unlimited, as the reference", .default_text = "10"}
#define CLI_OPTION_STATELESS_FLOW(d) \
    {.name = "--stateless-flow", .kind = CLI_OPT_FLAG, .dest = (d), \
     .help = "recompute the flow over all tokens at every chunk, like the reference"}
#define CLI_OPTION_REFERENCE_FINAL(d) \
    {.name = "--reference-final", .kind = CLI_OPT_FLAG, .dest = (d), \
     .help = "the last chunk with full attention over the utterance, exactly as the official code\n" \
             "(recomputes everything at the end); default: chunk-causal (CosyVoice3: always full, see\n" \
             "--chunk-causal-final)"}
#define CLI_OPTION_CHUNK_CAUSAL_FINAL(d) \
    {.name = "--chunk-causal-final", .kind = CLI_OPT_FLAG, .dest = (d), \
     .help = "CosyVoice3: the last chunk chunk-causal (linear cost) instead of the official full attention\n" \
             "over the utterance (CosyVoice2's default already is)"}
#define CLI_OPTION_MODEL_CACHE(d) \
    {.name = "--model-cache", .kind = CLI_OPT_STRING, .dest = (d), .hint = "FILE", \
     .help = "where the random model is built once and kept (instead of $XDG_CACHE_HOME/cosy or ~/.cache/cosy)"}
#define CLI_OPTION_TOKENIZER(d) \
    {.name = "--tokenizer", .kind = CLI_OPT_STRING, .dest = (d), .hint = "DIR", \
     .help = "a Hugging Face tokenizer directory (vocab.json + merges.txt [+ tokenizer_config.json], or\n" \
             "tokenizer.json); CosyVoice2's special tokens are added as the reference does"}
#define CLI_OPTION_MERGES(d) \
    {.name = "--merges", .kind = CLI_OPT_INT, .dest = (d), .hint = "N", .min = 0, .max = INT32_MAX, \
     .help = "use only the first N merges (e.g. 134839 to model CosyVoice-BlankEN's list); with --tokenizer"}
#define CLI_OPTION_JSON(d, help_) {.name = "--json", .kind = CLI_OPT_FLAG, .dest = (d), .help = (help_)}
#define CLI_OPTION_VERBOSE(d, help_) {.name = "--verbose", .alias = "-v", .kind = CLI_OPT_FLAG, .dest = (d), .help = (help_)}

#endif
