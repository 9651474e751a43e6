/*
 * cli.h — shared pieces of the `cosy` command: each subcommand lives in its own cmd_*.c file
 * and is listed in the table in cosy.c.
 */
#ifndef COSY_CLI_H
#define COSY_CLI_H

#include "cosy.h"

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
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "cosy <cmd>: <message>" for a failed status and returns exit code 1. */
int cli_fail(const char *cmd, cosy_status st);
/* Prints "cosy <cmd>: <printf message>" and returns exit code 2 (usage errors). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a non-negative integer argument; returns 0 on success. */
int cli_parse_int(const char *s, long long min, long long max, long long *out);

/* ---- options, declared once per tool (cli_options.c) ---- */

typedef enum {
    CLI_OPT_FLAG,    /* no value: *(int *)dest = 1 */
    CLI_OPT_INT,     /* *(long long *)dest, within [min, max] */
    CLI_OPT_STRING,  /* *(const char **)dest */
    CLI_OPT_DTYPE,   /* *(cosy_dtype *)dest, one of the comma-separated `choices` ("f32,bf16") */
    CLI_OPT_CHOICE,  /* *(int *)dest = the index of the value in `choices` ("default,equal,exponential") */
} cli_option_kind;

typedef struct {
    const char *name;     /* "--threads" */
    const char *alias;    /* "-m", or NULL */
    cli_option_kind kind;
    void *dest;
    long long min, max;   /* CLI_OPT_INT */
    const char *choices;  /* CLI_OPT_DTYPE, CLI_OPT_CHOICE */
} cli_option;

/* The options every bench takes. */
#define CLI_OPTION_MODEL(dest) {"--model", "-m", CLI_OPT_STRING, (dest), 0, 0, NULL}
#define CLI_OPTION_THREADS(dest) {"--threads", NULL, CLI_OPT_INT, (dest), 1, 256, NULL}
#define CLI_OPTION_RUNS(dest) {"--runs", NULL, CLI_OPT_INT, (dest), 1, 1000, NULL}
#define CLI_OPTION_END {NULL, NULL, CLI_OPT_FLAG, NULL, 0, 0, NULL}

#define CLI_GO_ON (-1)
/* Parses argv[1..argc) against opts (ended by CLI_OPTION_END). --help or -h calls help() and returns
 * 0; an unknown option, a missing or bad value prints one line naming it and returns 2; a bare
 * argument goes to *positional (once; refused if positional is NULL). Otherwise CLI_GO_ON. */
int cli_parse_options(const char *cmd, int argc, char **argv, const cli_option *opts, const char **positional, void (*help)(void));

#endif
