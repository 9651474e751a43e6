/* cmd_info.c — `cosy info MODEL.gguf` */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cmd_info(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: cosy info MODEL.gguf\n\nPrints hyperparameters, tensor count, bytes per type, tokenizer size, speakers and whether\nvoices can be made from audio (CAM++ and the speech tokenizer in the file).\n");
        return 0;
    }
    if (argc != 2) return cli_usage_error("info", "expected exactly one model file");
    cosy_model_params p = cosy_model_default_params();
    p.n_threads = 1;
    cosy_model *m;
    cosy_status st = cosy_model_load(argv[1], &p, &m);
    if (st != COSY_OK) return cli_fail("info", st);
    cosy_model_print_info(m, stdout);
    cosy_model_free(m);
    return 0;
}
