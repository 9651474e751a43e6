/* cmd_serve.c — `cosy serve`: the engine behind HTTP and WebSocket (src/server, docs/server.md). */
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static const cli_usage usage = {
    .cmd = "serve",
    .synopsis = "-m MODEL.gguf [--voices DIR] [--host ADDR] [--port N] [--api-key KEY] [options]",
    .description =
        "Serves the model over HTTP and WebSocket until interrupted (Ctrl-C / SIGTERM); docs/server.md:\n"
        "  POST /v1/audio/speech                        OpenAI-compatible, streamed (audio or SSE)\n"
        "  GET  /v1/text-to-speech/VOICE/stream-input   WebSocket: text pieces in, audio out (ElevenLabs format)\n"
        "  POST /v1/token2wav                           speech tokens in, that chunk's audio out (Triton-style)\n"
        "  GET  /v1/voices, POST /v1/voices, GET /v1/models, /healthz, /readyz, /metrics, / (web page)",
};

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL, *voices = NULL, *host = "127.0.0.1", *api_key = NULL;
    long long port = 8080, max_sessions = 4, max_queue = 16, max_chars = 4096, threads = 0;
    int quiet = 0;
    cosy_model_params mp = cosy_model_default_params();
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        {.name = "--voices", .kind = CLI_OPT_STRING, .dest = &voices, .hint = "DIR",
         .help = "offer every DIR/*.voice besides the model's built-in speakers; POST /v1/voices saves there"},
        {.name = "--host", .kind = CLI_OPT_STRING, .dest = &host, .hint = "ADDR", .default_text = "127.0.0.1: this machine only",
         .help = "the address to listen on"},
        {.name = "--port", .kind = CLI_OPT_INT, .dest = &port, .hint = "N", .min = 0, .max = 65535, .default_text = "8080",
         .help = "the port; 0 picks a free one (printed)"},
        {.name = "--api-key", .kind = CLI_OPT_STRING, .dest = &api_key, .hint = "KEY",
         .help = "require Authorization: Bearer KEY (the COSY_API_KEY environment variable does the same and\n"
                 "keeps the key out of the process list)"},
        {.name = "--max-sessions", .kind = CLI_OPT_INT, .dest = &max_sessions, .hint = "N", .min = 1, .max = 256, .default_text = "4",
         .help = "syntheses at once; more requests wait in the queue"},
        {.name = "--max-queue", .kind = CLI_OPT_INT, .dest = &max_queue, .hint = "N", .min = 0, .max = 4096, .default_text = "16",
         .help = "requests waiting for a session, beyond which they get 503 with Retry-After"},
        {.name = "--max-input-chars", .kind = CLI_OPT_INT, .dest = &max_chars, .hint = "N", .min = 1, .max = 1000000,
         .unit = "characters", .default_text = "4096", .help = "the longest input text of a request"},
        CLI_OPTION_THREADS(&threads),
        CLI_OPTION_LM_DTYPE(&mp.lm_dtype, "auto"),
        CLI_OPTION_FLOW_DTYPE(&mp.flow_dtype, "auto"),
        CLI_OPTION_HIFT_DTYPE(&mp.hift_dtype, "auto"),
        {.name = "--quiet", .kind = CLI_OPT_FLAG, .dest = &quiet, .help = "no request log on stderr"},
        CLI_OPTION_END,
    };
    int parsed = cli_parse_options(&usage, opts, argc, argv, NULL);
    if (parsed != CLI_GO_ON) return parsed;
    if (!path) return cli_usage_error("serve", "-m MODEL.gguf is required");
    if (!api_key) api_key = getenv("COSY_API_KEY");
    if (api_key && !api_key[0]) return cli_usage_error("serve", "the API key is empty");
    mp.n_threads = (int)threads;

    /* SIGINT/SIGTERM are taken by sigwait below, not by the server's threads */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    cosy_model *model = NULL;
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st == COSY_OK) st = cosy_model_prepare(model);
    if (st != COSY_OK) {
        cosy_model_free(model);
        return cli_fail("serve", st);
    }
    cosy_server_params sp = cosy_server_default_params();
    sp.host = host;
    sp.port = (int)port;
    sp.api_key = api_key;
    sp.voices_dir = voices;
    sp.max_sessions = (int)max_sessions;
    sp.max_queue = (int)max_queue;
    sp.max_input_chars = (int)max_chars;
    sp.quiet = quiet;
    cosy_server *srv = NULL;
    st = cosy_server_start(model, &sp, &srv);
    if (st != COSY_OK) {
        cosy_model_free(model);
        return cli_fail("serve", st);
    }
    const char *shown = strchr(host, ':') ? "[%s]" : "%s";
    char addr[300];
    snprintf(addr, sizeof addr, shown, host);
    fprintf(stderr, "cosy serve: listening on http://%s:%d/ (%s)%s\n", addr, cosy_server_port(srv), path,
            api_key ? ", API key required" : "");
    fflush(stderr);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "cosy serve: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    cosy_server_stop(srv);
    cosy_model_free(model);
    return 0;
}
