/* cmd_convert.c — `cosy convert`: official checkpoints or random weights → .gguf */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void help(void)
{
    printf("usage: cosy convert MODEL_DIR -o OUT.gguf [--dtype f32|f16|bf16] [--lm-dtype T] [--flow-dtype T] [--hift-dtype T] [-v]\n"
           "       cosy convert --random CONFIG -o OUT.gguf [--seed N] [--dtype ...] [--tokenizer DIR] [-v]\n\n"
           "MODEL_DIR is an official CosyVoice2 directory (cosyvoice2.yaml, llm.pt, flow.pt, hift.pt,\n"
           "CosyVoice-BlankEN/, optional spk2info.pt). campplus.onnx and speech_tokenizer_v2.onnx, when there,\n"
           "are stored too: they make voices from a recording (cosy voice import --wav).\n"
           "--random writes a model with the shapes of CONFIG\n"
           "(cosyvoice2-0.5b, cv2-tiny, or cv2-tiny-hift: cv2-tiny with the real vocoder) and seeded\n"
           "random weights, for benchmarks; its vocabulary is byte-level unless --tokenizer names a\n"
           "tokenizer directory.\n"
           "--dtype sets how matrices and conv kernels are stored (default f32); norms and biases stay f32.\n"
           "--lm-dtype, --flow-dtype, --hift-dtype set it per module (default: --dtype). A module stored in\n"
           "the type it runs in is used straight from the mapped file: the model loads at once.\n"
           "The LM can also be stored quantised, in ggml's blocks: --lm-dtype q8_0 or q4_0 (the LM's head and\n"
           "embedding tables then take q8_0; a q4_0 LM decodes about twice as fast as q8_0, see docs/lm-types.md).\n");
}

int cmd_convert(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *random = NULL;
    long long seed = 1234;
    cosy_convert_params p = cosy_convert_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) p.verbose = 1;
        else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--random") && i + 1 < argc) random = argv[++i];
        else if (!strcmp(a, "--tokenizer") && i + 1 < argc) p.tokenizer_dir = argv[++i];
        else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (cli_parse_int(argv[++i], 0, 0xffffffffll, &seed)) return cli_usage_error("convert", "--seed needs an integer 0..2^32-1");
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            if (cosy_dtype_from_name(argv[++i], &p.weight_dtype)) return cli_usage_error("convert", "unknown --dtype '%s'", argv[i]);
        } else if ((!strcmp(a, "--lm-dtype") || !strcmp(a, "--flow-dtype") || !strcmp(a, "--hift-dtype")) && i + 1 < argc) {
            cosy_dtype *t = a[2] == 'l' ? &p.lm_dtype : a[2] == 'f' ? &p.flow_dtype : &p.hift_dtype;
            if (cosy_dtype_from_name(argv[++i], t)) return cli_usage_error("convert", "unknown %s '%s'", a, argv[i]);
        } else if (a[0] == '-') return cli_usage_error("convert", "unknown option or missing value: %s", a);
        else if (!dir) dir = a;
        else return cli_usage_error("convert", "unexpected argument '%s'", a);
    }
    if (!out) return cli_usage_error("convert", "-o OUT.gguf is required");
    if (!dir == !random) return cli_usage_error("convert", "give either MODEL_DIR or --random CONFIG");
    if (p.tokenizer_dir && !random) return cli_usage_error("convert", "--tokenizer only applies to --random");
    cosy_status st = random ? cosy_convert_random(random, (uint64_t)seed, out, &p) : cosy_convert(dir, out, &p);
    if (st != COSY_OK) return cli_fail("convert", st);
    fprintf(stderr, "cosy convert: wrote %s\n", out);
    return 0;
}
