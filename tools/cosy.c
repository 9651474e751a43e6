/*
 * cosy.c — the `cosy` command: one binary for converting, inspecting, running and serving
 * models. `cosy help` lists the subcommands; each has `--help`.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_command commands[] = {
    {"convert", cmd_convert, "convert an official CosyVoice2 model directory (or random weights) to a .gguf model"},
    {"synth", cmd_synth, "text to speech: a WAVE file, or raw PCM streamed to stdout as it is produced"},
    {"info", cmd_info, "print a model's hyperparameters, tensors, tokenizer and speakers"},
    {"voice", cmd_voice, "build a voice file from prompt data or a built-in speaker; inspect voices"},
    {"golden", cmd_golden, "run the official fixture cases of a fixture set against the engine"},
    {"tokenize", cmd_tokenize, "text to Qwen2 token ids (and CosyVoice's normalisation / sentence split), or back"},
    {"text", cmd_text, "text normalisation as the official install runs it (WeTextProcessing's TN via wetext), line by line"},
    {"serve", cmd_serve, "serve the model over HTTP and WebSocket (OpenAI-compatible speech, streaming text input)"},
    {"bench", cmd_bench, "measure speed on a model file (LM tokens/s, flow ms, ...)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

int cli_fail(const char *cmd, cosy_status st)
{
    const char *msg = cosy_last_error();
    fprintf(stderr, "cosy %s: %s\n", cmd, msg[0] ? msg : cosy_strerror(st));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cosy %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see `cosy %s --help`)\n", cmd);
    return 2;
}

static void usage(FILE *fp)
{
    fprintf(fp, "cosy %s — streaming CosyVoice2 text-to-speech on the CPU\n\nusage: cosy <command> [options]\n\ncommands:\n",
            COSY_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n`cosy <command> --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("cosy %s\n", COSY_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cosy: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
