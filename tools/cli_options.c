/*
 * cli_options.c — one table-driven option parser for the `cosy` subcommands (cli.h), as llama.cpp
 * declares each option once: a tool lists its options (name, alias, kind, destination, range or
 * choices) and gets the same validation and the same one-line refusals as every other tool,
 * instead of a hand-written argv loop per tool. The usage text comes from the same table
 * (cli_print_usage), so `--help` lists exactly what the parser takes.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole decimal integer within [min, max]; returns 0 on success. */
static int parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

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
        if (parse_int(value, o->min, o->max, &v)) {
            if (o->max == LLONG_MAX)
                return cli_usage_error(cmd, "%s needs an integer %lld or more%s%s", o->name, o->min, o->unit ? " " : "", o->unit ? o->unit : "");
            return cli_usage_error(cmd, "%s needs %lld..%lld%s%s", o->name, o->min, o->max, o->unit ? " " : "", o->unit ? o->unit : "");
        }
        *(long long *)o->dest = v;
        return CLI_GO_ON;
    case CLI_OPT_STRING:
        *(const char **)o->dest = value;
        return CLI_GO_ON;
    case CLI_OPT_DTYPE: {
        cosy_dtype d;
        if (choice_index(o->choices, value) < 0 || cosy_dtype_from_name(value, &d)) {
            choices_text(o->choices, text, sizeof text);
            return cli_usage_error(cmd, "%s must be %s, not '%s'", o->name, text, value);
        }
        *(cosy_dtype *)o->dest = d;
        return CLI_GO_ON;
    }
    case CLI_OPT_CHOICE: {
        int k = choice_index(o->choices, value);
        if (k < 0) {
            choices_text(o->choices, text, sizeof text);
            return cli_usage_error(cmd, "%s must be %s, not '%s'", o->name, text, value);
        }
        *(int *)o->dest = k;
        return CLI_GO_ON;
    }
    case CLI_OPT_CUSTOM:
        return o->parse(cmd, o, value);
    default:
        return cli_usage_error(cmd, "%s: option kind %d", o->name, (int)o->kind);
    }
}

int cli_parse_options(const cli_usage *usage, const cli_option *opts, int argc, char **argv, const char **positional)
{
    const char *cmd = usage->cmd;
    int have_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_print_usage(stdout, usage, opts);
            return 0;
        }
        const cli_option *o = opts;
        while (o && o->name && strcmp(a, o->name) && !(o->alias && !strcmp(a, o->alias))) o++;
        if (!o || !o->name) {
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

/* ------------------------------------------------------------------ usage */

static const char *default_hint(cli_option_kind kind)
{
    switch (kind) {
    case CLI_OPT_INT: return "N";
    case CLI_OPT_DTYPE: return "TYPE";
    case CLI_OPT_CHOICE: return "NAME";
    case CLI_OPT_FLAG: return NULL;
    default: return "VALUE";
    }
}

/* "  -m, --model FILE" */
static int option_left(const cli_option *o, char *out, size_t size)
{
    const char *hint = o->kind == CLI_OPT_FLAG ? NULL : o->hint ? o->hint : default_hint(o->kind);
    return snprintf(out, size, "  %s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "    ", o->name, hint ? " " : "",
                    hint ? hint : "");
}

/* What the table says besides the help: "(f32 or bf16; default auto)", "(1..256 tokens)". */
static void option_annotation(const cli_option *o, char *out, size_t size)
{
    char what[256] = "";
    if (o->kind == CLI_OPT_INT && o->max == LLONG_MAX)
        snprintf(what, sizeof what, "%lld or more%s%s", o->min, o->unit ? " " : "", o->unit ? o->unit : "");
    else if (o->kind == CLI_OPT_INT)
        snprintf(what, sizeof what, "%lld..%lld%s%s", o->min, o->max, o->unit ? " " : "", o->unit ? o->unit : "");
    else if ((o->kind == CLI_OPT_DTYPE || o->kind == CLI_OPT_CHOICE) && o->choices)
        choices_text(o->choices, what, sizeof what);
    if (what[0] && o->default_text) snprintf(out, size, "(%s; default %s)", what, o->default_text);
    else if (what[0]) snprintf(out, size, "(%s)", what);
    else if (o->default_text) snprintf(out, size, "(default %s)", o->default_text);
    else out[0] = 0;
}

/* Prints text's lines, the first after what is already on the line, the others indented to `column`;
 * `tail` goes after the last line (on its own line if it would pass about 110 columns). */
static void print_indented(FILE *fp, const char *text, int first_at, int column, const char *tail)
{
    int at = first_at;
    const char *p = text ? text : "";
    for (;;) {
        const char *end = strchr(p, '\n');
        int len = end ? (int)(end - p) : (int)strlen(p);
        fprintf(fp, "%.*s", len, p);
        at += len;
        if (!end) break;
        fprintf(fp, "\n%*s", column, "");
        at = column;
        p = end + 1;
    }
    if (tail && tail[0]) {
        int tail_len = (int)strlen(tail);
        if (at > column && at + 1 + tail_len > 110) fprintf(fp, "\n%*s%s", column, "", tail);
        else fprintf(fp, "%s%s", at > column ? " " : "", tail);
    }
    fputc('\n', fp);
}

void cli_print_usage(FILE *fp, const cli_usage *usage, const cli_option *opts)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "cosy %s ", usage->cmd);
    const int indent = 7 + (int)strlen(prefix); /* "usage: " */
    /* the synopsis: one line per form, continuations under the first word after the command */
    const char *p = usage->synopsis ? usage->synopsis : "";
    for (int line = 0;; line++) {
        const char *end = strchr(p, '\n');
        int len = end ? (int)(end - p) : (int)strlen(p);
        if (line == 0) fprintf(fp, "usage: %s%.*s\n", prefix, len, p);
        else if (*p == ' ') fprintf(fp, "%*s%.*s\n", indent, "", len - 1, p + 1);
        else fprintf(fp, "       %s%.*s\n", prefix, len, p);
        if (!end) break;
        p = end + 1;
    }
    if (usage->description && usage->description[0]) {
        fputc('\n', fp);
        fputs(usage->description, fp);
        if (usage->description[strlen(usage->description) - 1] != '\n') fputc('\n', fp);
    }
    if (!opts || !opts->name) return;
    /* the help column: after the longest "  -x, --name HINT", up to 32 */
    int column = 0;
    char left[160], tail[512];
    for (const cli_option *o = opts; o->name; o++) {
        int n = option_left(o, left, sizeof left);
        if (n + 2 > column && n + 2 <= 32) column = n + 2;
    }
    fprintf(fp, "\noptions:\n");
    for (const cli_option *o = opts; o->name; o++) {
        int n = option_left(o, left, sizeof left);
        option_annotation(o, tail, sizeof tail);
        if (n + 2 > column) fprintf(fp, "%s\n%*s", left, column, "");
        else fprintf(fp, "%s%*s", left, column - n, "");
        print_indented(fp, o->help, column, column, tail);
    }
    fprintf(fp, "  -h, --help%*sthis text\n", column - 12 > 1 ? column - 12 : 1, "");
}
