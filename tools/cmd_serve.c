/* cmd_serve.c — `cosy serve`: the engine behind HTTP and WebSocket (src/server, docs/server.md). */
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static void help(void)
{
    printf("usage: cosy serve -m MODEL.gguf [--voices DIR] [--host ADDR] [--port N] [--api-key KEY] [--max-sessions N]\n"
           "                  [--max-queue N] [--max-input-chars N] [--threads N] [--lm-dtype T] [--flow-dtype T]\n"
           "                  [--hift-dtype T] [--quiet]\n\n"
           "Serves the model over HTTP and WebSocket until interrupted (Ctrl-C / SIGTERM):\n"
           "  POST /v1/audio/speech                         OpenAI-compatible, streamed (audio or SSE)\n"
           "  GET  /v1/text-to-speech/VOICE/stream-input    WebSocket: text pieces in, audio out (ElevenLabs format)\n"
           "  POST /v1/token2wav                            speech tokens in, that chunk's audio out (Triton-style)\n"
           "  GET  /v1/voices, POST /v1/voices, GET /v1/models, /healthz, /readyz, /metrics, / (web page)\n\n"
           "  --voices DIR          offer every DIR/*.voice (besides the model's built-in speakers); POST\n"
           "                        /v1/voices saves new voices there\n"
           "  --host ADDR           listen address (default 127.0.0.1: this machine only)\n"
           "  --port N              default 8080; 0 picks a free port (printed)\n"
           "  --api-key KEY         require Authorization: Bearer KEY (or the COSY_API_KEY environment variable,\n"
           "                        which keeps the key out of the process list)\n"
           "  --max-sessions N      syntheses at once (default 4); more requests wait in a queue of\n"
           "  --max-queue N         N places (default 16), beyond which they get 503 with Retry-After\n"
           "  --max-input-chars N   longest input text (default 4096 characters)\n"
           "  --threads N           compute threads shared by all sessions (default: all cores)\n"
           "  --quiet               no request log on stderr\n");
}

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL, *voices = NULL, *host = "127.0.0.1", *api_key = NULL;
    long long port = 8080, max_sessions = 4, max_queue = 16, max_chars = 4096, threads = 0;
    int quiet = 0;
    cosy_model_params mp = cosy_model_default_params();
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path),
        CLI_OPTION_THREADS(&threads),
        {"--voices", NULL, CLI_OPT_STRING, &voices, 0, 0, NULL},
        {"--host", NULL, CLI_OPT_STRING, &host, 0, 0, NULL},
        {"--port", NULL, CLI_OPT_INT, &port, 0, 65535, NULL},
        {"--api-key", NULL, CLI_OPT_STRING, &api_key, 0, 0, NULL},
        {"--max-sessions", NULL, CLI_OPT_INT, &max_sessions, 1, 256, NULL},
        {"--max-queue", NULL, CLI_OPT_INT, &max_queue, 0, 4096, NULL},
        {"--max-input-chars", NULL, CLI_OPT_INT, &max_chars, 1, 1000000, NULL},
        {"--lm-dtype", NULL, CLI_OPT_DTYPE, &mp.lm_dtype, 0, 0, "auto,f32,bf16,q8_0,q4_0"},
        {"--flow-dtype", NULL, CLI_OPT_DTYPE, &mp.flow_dtype, 0, 0, "auto,f32,bf16"},
        {"--hift-dtype", NULL, CLI_OPT_DTYPE, &mp.hift_dtype, 0, 0, "auto,f32,bf16"},
        {"--quiet", NULL, CLI_OPT_FLAG, &quiet, 0, 0, NULL},
        CLI_OPTION_END,
    };
    int parsed = cli_parse_options("serve", argc, argv, opts, NULL, help);
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
