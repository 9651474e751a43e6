/* cmd_convert.c — `cosy convert`: official checkpoints or random weights → .gguf */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const cli_usage usage = {
    .cmd = "convert",
    .synopsis = "MODEL_DIR -o OUT.gguf [--dtype TYPE] [--lm-dtype TYPE] [--flow-dtype TYPE] [--hift-dtype TYPE] [-v]\n"
                "--random CONFIG -o OUT.gguf [--seed N] [--dtype TYPE] [--tokenizer DIR] [-v]",
    .description = "MODEL_DIR is an official CosyVoice2 directory (cosyvoice2.yaml, llm.pt, flow.pt, hift.pt,\n"
                   "CosyVoice-BlankEN/, optional spk2info.pt). campplus.onnx and speech_tokenizer_v2.onnx, when there,\n"
                   "are stored too: they make voices from a recording (cosy voice import --wav).\n"
                   "--random writes a model with the shapes of CONFIG and seeded random weights, for benchmarks; its\n"
                   "vocabulary is byte-level unless --tokenizer names a tokenizer directory.\n"
                   "A module stored in the type it runs in is used straight from the mapped file: the model loads at\n"
                   "once. The LM can also be stored quantised, in ggml's blocks: --lm-dtype q8_0 or q4_0 (the LM's head\n"
                   "and embedding tables then take q8_0; a q4_0 LM decodes about twice as fast as q8_0, see\n"
                   "docs/lm-types.md).\n",
};

int cmd_convert(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *random = NULL;
    long long seed = 1234;
    cosy_convert_params p = cosy_convert_default_params();
    const cli_option opts[] = {
        CLI_OPTION_OUTPUT(&out, "OUT.gguf", "the model file to write"),
        {.name = "--random", .kind = CLI_OPT_STRING, .dest = &random, .hint = "CONFIG",
         .help = "random weights with the shapes of CONFIG: cosyvoice2-0.5b, cv2-tiny, cv2-tiny-hift, cosyvoice3-0.5b,\n"
                 "cv3-tiny or cv3-tiny-hift (cv2/cv3-tiny-hift: the tiny model with the real vocoder)"},
        CLI_OPTION_SEED(&seed, "1234"),
        CLI_OPTION_TOKENIZER(&p.tokenizer_dir),
        {.name = "--dtype", .kind = CLI_OPT_DTYPE, .dest = &p.weight_dtype, .hint = "TYPE", .choices = "f32,f16,bf16",
         .help = "how matrices and conv kernels are stored; norms and biases stay f32", .default_text = "f32"},
        {.name = "--lm-dtype", .kind = CLI_OPT_DTYPE, .dest = &p.lm_dtype, .hint = "TYPE", .choices = "auto,f32,f16,bf16,q8_0,q4_0",
         .help = "how the LM's matrices are stored", .default_text = "auto: --dtype"},
        {.name = "--flow-dtype", .kind = CLI_OPT_DTYPE, .dest = &p.flow_dtype, .hint = "TYPE", .choices = "auto,f32,f16,bf16",
         .help = "how the flow's matrices are stored", .default_text = "auto: --dtype"},
        {.name = "--hift-dtype", .kind = CLI_OPT_DTYPE, .dest = &p.hift_dtype, .hint = "TYPE", .choices = "auto,f32,f16,bf16",
         .help = "how the vocoder's kernels are stored", .default_text = "auto: --dtype"},
        CLI_OPTION_VERBOSE(&p.verbose, "one line per stage on stderr"),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, &dir);
    if (rc != CLI_GO_ON) return rc;
    if (!out) return cli_usage_error("convert", "-o OUT.gguf is required");
    if (!dir == !random) return cli_usage_error("convert", "give either MODEL_DIR or --random CONFIG");
    if (p.tokenizer_dir && !random) return cli_usage_error("convert", "--tokenizer only applies to --random");
    cosy_status st = random ? cosy_convert_random(random, (uint64_t)seed, out, &p) : cosy_convert(dir, out, &p);
    if (st != COSY_OK) return cli_fail("convert", st);
    fprintf(stderr, "cosy convert: wrote %s\n", out);
    return 0;
}
