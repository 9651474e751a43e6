/* cmd_info.c — `cosy info MODEL.gguf` */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const cli_usage usage = {
    .cmd = "info",
    .synopsis = "MODEL.gguf",
    .description = "Prints hyperparameters, tensor count, bytes per type, tokenizer size, speakers and whether\n"
                   "voices can be made from audio (CAM++ and the speech tokenizer in the file).\n",
};

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    static const cli_option opts[] = {CLI_OPTION_END};
    int rc = cli_parse_options(&usage, opts, argc, argv, &path);
    if (rc != CLI_GO_ON) return rc;
    if (!path) return cli_usage_error("info", "expected exactly one model file");
    cosy_model_params p = cosy_model_default_params();
    p.n_threads = 1;
    cosy_model *m;
    cosy_status st = cosy_model_load(path, &p, &m);
    if (st != COSY_OK) return cli_fail("info", st);
    cosy_model_print_info(m, stdout);
    cosy_model_free(m);
    return 0;
}
