/*
 * server_internal.h — what the route files of the server share: the server object, the voice
 * registry, admission (the session cap and its queue), metrics, and small HTTP/JSON helpers.
 */
#ifndef COSY_SERVER_INTERNAL_H
#define COSY_SERVER_INTERNAL_H

#include "server/server.h"

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- routes and metrics (metrics.c) ---- */

typedef enum {
    ROUTE_SPEECH, ROUTE_STREAM_INPUT, ROUTE_TOKEN2WAV, ROUTE_VOICES, ROUTE_MODELS,
    ROUTE_HEALTH, ROUTE_READY, ROUTE_METRICS, ROUTE_PAGE, ROUTE_OTHER, ROUTE_COUNT
} server_route;

#define METRIC_STATUS_SLOTS 16
#define METRIC_BUCKETS 14

typedef struct {
    double sum;
    uint64_t count;
    uint64_t buckets[METRIC_BUCKETS]; /* cumulative at output time; stored per bucket */
} metric_histogram;

enum { HIST_FIRST_AUDIO, HIST_TOTAL, HIST_RTF, HIST_FRONTEND, HIST_LM_PREFILL, HIST_LM_DECODE, HIST_FLOW, HIST_VOCODER, HIST_COUNT };

typedef struct {
    pthread_mutex_t mu;
    uint64_t requests[ROUTE_COUNT][METRIC_STATUS_SLOTS];
    int status_codes[METRIC_STATUS_SLOTS]; /* which code each slot counts (0 = unused) */
    uint64_t errors[ROUTE_COUNT];
    uint64_t disconnects, rejected_busy, audio_samples;
    metric_histogram hist[HIST_COUNT];
} server_metrics;

void metrics_init(server_metrics *m);
void metrics_destroy(server_metrics *m);
void metrics_count(server_metrics *m, server_route route, int status);
void metrics_disconnect(server_metrics *m);
/* A finished synthesis: its stage times and audio. */
void metrics_timings(server_metrics *m, const cosy_timings *t);

/* ---- voices (voices.c) ---- */

typedef struct {
    char *id;
    cosy_voice *voice;
    int builtin;        /* a speaker of the model (SFT); else a .voice (zero-shot) */
    int has_prompt;     /* transcript + prompt speech tokens: zero-shot possible */
} server_voice;

typedef struct {
    pthread_mutex_t mu;
    server_voice *items; /* entries are added, never removed, while the server runs */
    int n, cap;
} server_voices;

/* ---- token2wav states (t2w.c) ---- */

typedef struct t2w_entry t2w_entry;
typedef struct {
    pthread_mutex_t mu;
    t2w_entry *head;
    int count;
} server_t2w;

/* ---- the server ---- */

struct cosy_server {
    struct mg_context *ctx;
    cosy_model *model;
    cosy_server_params p;
    char *host, *api_key, *voices_dir, *model_id;
    int port, ready;
    server_voices voices;
    server_metrics metrics;
    server_t2w t2w;
    /* admission: at most p.max_sessions syntheses, p.max_queue waiting */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active, waiting, stopping;
    cosy_session **running;   /* [max_sessions]: cancelled when the server stops */
    pthread_t sweeper;        /* drops expired token2wav states */
    int sweeper_started;
};

/* Waits for a free session slot (bounded queue). Returns the slot index, -1 if the queue is full
 * (answer 503), -2 if the server is stopping. */
int server_acquire(cosy_server *srv);
void server_set_running(cosy_server *srv, int slot, cosy_session *s);
void server_release(cosy_server *srv, int slot);

/* ---- HTTP helpers (server.c) ---- */

typedef struct {
    cosy_server *srv;
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    server_route route;
    int status;        /* what was answered (for the metrics and the log) */
    double t0;
} http_req;

/* OpenAI's error shape {"error": {"message", "type", "param", "code"}}; returns 1 (handled). */
int http_error(http_req *r, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sends `json` (consumed) with the status. */
int http_json(http_req *r, int status, cJSON *json);
/* The whole body, at most `limit` bytes (413 answered and NULL returned beyond it, 400 if unreadable). */
char *http_read_body(http_req *r, size_t limit, size_t *len);
/* Whether a request carries the API key (always true without one). */
int server_authorized(const cosy_server *srv, const struct mg_connection *conn);
/* Runs fn(arg) on a thread with an 8 MB stack and waits for it (civetweb's workers have 100 KB). -1 if
 * no thread could be made. */
int server_call_big_stack(void (*fn)(void *), void *arg);
/* Makes civetweb close the connection once this request's handler returns (no keep-alive). */
void server_close_after(struct mg_connection *conn);
/* Encoded bytes collected during one encoder call, then sent as one chunk / event / message. */
typedef struct {
    char *data;
    size_t n, cap;
} byte_buf;
/* A cosy_encoder_write_fn that appends to the byte_buf `user` (-1 when out of memory). */
int byte_buf_sink(void *user, const void *bytes, size_t n);
/* A finished synthesis: its timings as JSON (SSE done event, WebSocket final message), and its log line. */
cJSON *timings_json(const cosy_timings *t);
void log_timings(const cosy_server *srv, const char *route, const char *voice, const cosy_timings *t, cosy_status st);
/* Base64 of `n` bytes into a new string. */
char *base64_encode(const void *data, size_t n, size_t *out_len);
/* Status code for a failed cosy call on a request's input. */
int http_status_of(cosy_status st);

/* ---- voices (voices.c) ---- */
cosy_status voices_load(cosy_server *srv);
void voices_free(server_voices *v);
/* The voice called `id`, or NULL (entries live as long as the server). */
const server_voice *voices_find(cosy_server *srv, const char *id);
int route_voices(http_req *r);      /* GET and POST /v1/voices */
int route_models(http_req *r);      /* GET /v1/models */

/* ---- routes ---- */
int route_speech(http_req *r);      /* POST /v1/audio/speech (speech.c) */
int route_token2wav(http_req *r);   /* POST /v1/token2wav (t2w.c) */
void t2w_init(server_t2w *t);
void t2w_free(server_t2w *t);
void t2w_sweep(cosy_server *srv);   /* drops the expired states */
int route_metrics(http_req *r);     /* GET /metrics (metrics.c) */
int route_page(http_req *r);        /* GET / (page.c) */
/* WebSocket stream-input (ws.c) */
void ws_register(cosy_server *srv);

/* Request parameters shared by the speech route and the WebSocket: mode, chunking, seed. Reads
 * the optional extension fields of `obj` (mode, stream, strategy, chunk_tokens, overlap_tokens,
 * first_chunk, seed, max_speech_tokens) into `p`; on a bad one writes the field's name to *param
 * and a message to msg and returns -1. */
int speech_options_from_json(const cJSON *obj, const server_voice *voice, const char *instructions,
                             cosy_session_params *p, const char **param, char *msg, size_t msg_size);

#endif
