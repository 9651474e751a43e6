/*
 * server.h — `cosy serve`: the engine behind HTTP and WebSocket on civetweb (one listener).
 *
 * Routes (each request is one cosy_session on the shared model and voices):
 *   POST /v1/audio/speech                        OpenAI-compatible text to speech, streamed (chunked
 *                                                audio, or SSE with stream_format "sse")
 *   GET  /v1/text-to-speech/{voice}/stream-input WebSocket, ElevenLabs' stream-input protocol: text in
 *                                                pieces, audio back as it is made (bistream)
 *   POST /v1/token2wav                           speech tokens in, that chunk's audio out (the Triton
 *                                                token2wav model's token_offset / finalize calls)
 *   GET  /v1/voices, POST /v1/voices, GET /v1/models, /healthz, /readyz, /metrics, / (the web page)
 * Details and decisions: docs/server.md.
 */
#ifndef COSY_SERVER_H
#define COSY_SERVER_H

#include "cosy.h"

typedef struct cosy_server cosy_server;

typedef struct {
    const char *host;          /* listen address (default 127.0.0.1) */
    int port;                  /* default 8080; 0 = any free port (see cosy_server_port) */
    const char *api_key;       /* non-NULL: every request needs "Authorization: Bearer KEY" */
    const char *voices_dir;    /* every *.voice in it is offered; POST /v1/voices saves there */
    int max_sessions;          /* syntheses running at once (default 4) */
    int max_queue;             /* requests waiting for a free session before 503 (default 16) */
    int max_input_chars;       /* input text limit, in characters (default 4096) */
    int max_body_bytes;        /* request body limit (default 1 MiB; POST /v1/voices: 16 MiB) */
    int t2w_ttl_seconds;       /* token2wav states idle this long are dropped (default 60) */
    int quiet;                 /* no request log on stderr */
} cosy_server_params;

cosy_server_params cosy_server_default_params(void);
/* Loads the voices, starts listening; returns once the server accepts connections. */
cosy_status cosy_server_start(cosy_model *model, const cosy_server_params *params, cosy_server **out);
/* The port actually bound (useful with port 0). */
int cosy_server_port(const cosy_server *srv);
/* Stops accepting, cancels running sessions, waits for the handlers, frees everything. */
void cosy_server_stop(cosy_server *srv);

#endif
