/*
 * cli_options.c — one table-driven option parser for the `cosy` subcommands (cli.h), as llama.cpp
 * declares each option once: a tool lists its options (name, alias, kind, destination, range or
 * choices) and gets the same validation and the same one-line refusals as every other tool,
 * instead of a hand-written argv loop per tool.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* Index of `value` in the comma-separated `choices`, or -1. */
static int choice_index(const char *choices, const char *value)
{
    size_t n = strlen(value);
    int index = 0;
    for (const char *p = choices; *p; index++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, value, n)) return index;
        if (!end) break;
        p = end + 1;
    }
    return -1;
}

/* "a, b or c" from "a,b,c" */
static void choices_text(const char *choices, char *out, size_t size)
{
    size_t o = 0, commas = 0, seen = 0;
    for (const char *p = choices; *p; p++) commas += *p == ',';
    for (const char *p = choices; *p && o + 5 < size; p++) {
        if (*p != ',') {
            out[o++] = *p;
            continue;
        }
        const char *sep = ++seen == commas ? " or " : ", ";
        for (; *sep && o + 1 < size; sep++) out[o++] = *sep;
    }
    out[o] = 0;
}

static int set_value(const char *cmd, const cli_option *o, const char *value)
{
    long long v;
    char text[256];
    switch (o->kind) {
    case CLI_OPT_INT:
        if (cli_parse_int(value, o->min, o->max, &v)) return cli_usage_error(cmd, "%s needs %lld..%lld", o->name, o->min, o->max);
        *(long long *)o->dest = v;
        return CLI_GO_ON;
    case CLI_OPT_STRING:
        *(const char **)o->dest = value;
        return CLI_GO_ON;
    case CLI_OPT_DTYPE: {
        cosy_dtype d;
        if (choice_index(o->choices, value) < 0 || cosy_dtype_from_name(value, &d)) {
            choices_text(o->choices, text, sizeof text);
            return cli_usage_error(cmd, "%s must be %s", o->name, text);
        }
        *(cosy_dtype *)o->dest = d;
        return CLI_GO_ON;
    }
    case CLI_OPT_CHOICE: {
        int k = choice_index(o->choices, value);
        if (k < 0) {
            choices_text(o->choices, text, sizeof text);
            return cli_usage_error(cmd, "%s must be %s", o->name, text);
        }
        *(int *)o->dest = k;
        return CLI_GO_ON;
    }
    default:
        return cli_usage_error(cmd, "%s: option kind %d", o->name, (int)o->kind);
    }
}

int cli_parse_options(const char *cmd, int argc, char **argv, const cli_option *opts, const char **positional, void (*help)(void))
{
    int have_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (help) help();
            return 0;
        }
        const cli_option *o = opts;
        while (o->name && strcmp(a, o->name) && !(o->alias && !strcmp(a, o->alias))) o++;
        if (!o->name) {
            if (a[0] == '-' && a[1]) return cli_usage_error(cmd, "unknown option '%s'", a);
            if (!positional || have_positional) return cli_usage_error(cmd, "unexpected argument '%s'", a);
            *positional = a;
            have_positional = 1;
            continue;
        }
        if (o->kind == CLI_OPT_FLAG) {
            *(int *)o->dest = 1;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", o->name);
        int rc = set_value(cmd, o, argv[++i]);
        if (rc != CLI_GO_ON) return rc;
    }
    return CLI_GO_ON;
}
