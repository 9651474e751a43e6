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

/* Prints "cosy <cmd>: <message>" for a failed status and returns exit code 1. */
int cli_fail(const char *cmd, cosy_status st);
/* Prints "cosy <cmd>: <printf message>" and returns exit code 2 (usage errors). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a non-negative integer argument; returns 0 on success. */
int cli_parse_int(const char *s, long long min, long long max, long long *out);

#endif
