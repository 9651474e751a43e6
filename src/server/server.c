/*
 * server.c — starting and stopping `cosy serve`, routing, authorisation, admission and the small
 * HTTP helpers the routes share. civetweb runs each connection on one of its worker threads and
 * our handlers block there while they stream: a slow reader slows only its own synthesis, and a
 * failed write means the client is gone, so its session is cancelled at once.
 */
#define _GNU_SOURCE
#include "server/server_internal.h"

#include "core/clock.h"
#include "core/error.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

cosy_server_params cosy_server_default_params(void)
{
    cosy_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.max_sessions = 4;
    p.max_queue = 16;
    p.max_input_chars = 4096;
    p.max_body_bytes = 1 << 20;
    p.t2w_ttl_seconds = 60;
    return p;
}

int cosy_server_port(const cosy_server *srv) { return srv ? srv->port : 0; }

/* ---- helpers ---- */

int http_status_of(cosy_status st)
{
    switch (st) {
    case COSY_ERR_INVALID_ARG:
    case COSY_ERR_FORMAT:
    case COSY_ERR_SHAPE: return 400;
    case COSY_ERR_UNSUPPORTED:
    case COSY_ERR_MISSING: return 400;
    case COSY_ERR_NOMEM: return 503;
    default: return 500;
    }
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static const char *error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413:
    case 400:
    case 405:
    case 409:
    case 415: return "invalid_request_error";
    case 503: return "server_busy";
    default: return "server_error";
    }
}

static int send_body(http_req *r, int status, const char *type, const char *body, size_t n, const char *extra_headers)
{
    r->status = status;
    mg_printf(r->conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n", status,
              status_text(status), type, n, extra_headers ? extra_headers : "");
    if (n && strcmp(r->ri->request_method, "HEAD")) mg_write(r->conn, body, n);
    return 1;
}

int http_json(http_req *r, int status, cJSON *json)
{
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!text) return send_body(r, 500, "application/json", "{\"error\":{\"message\":\"out of memory\"}}", 38, NULL);
    send_body(r, status, "application/json", text, strlen(text), NULL);
    free(text);
    return 1;
}

int http_error(http_req *r, int status, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", error_type(status));
    if (param) cJSON_AddStringToObject(err, "param", param);
    else cJSON_AddNullToObject(err, "param");
    cJSON_AddNullToObject(err, "code");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL;
    send_body(r, status, "application/json", text ? text : "{}", text ? strlen(text) : 2, extra);
    free(text);
    return 1;
}

char *http_read_body(http_req *r, size_t limit, size_t *len)
{
    *len = 0;
    long long declared = r->ri->content_length;
    if (declared > (long long)limit) {
        http_error(r, 413, NULL, "the request body is %lld bytes; the limit is %zu bytes", declared, limit);
        return NULL;
    }
    size_t cap = declared > 0 ? (size_t)declared + 1 : 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        http_error(r, 503, NULL, "out of memory");
        return NULL;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > limit + 1) {
                free(buf);
                http_error(r, 413, NULL, "the request body is larger than the limit of %zu bytes", limit);
                return NULL;
            }
            size_t ncap = cap * 2 > limit + 2 ? limit + 2 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                http_error(r, 503, NULL, "out of memory");
                return NULL;
            }
            buf = nb, cap = ncap;
        }
        int got = mg_read(r->conn, buf + n, cap - 1 - n);
        if (got < 0) {
            free(buf);
            http_error(r, 400, NULL, "the request body could not be read");
            return NULL;
        }
        if (got == 0) break;
        n += (size_t)got;
        if (n > limit) {
            free(buf);
            http_error(r, 413, NULL, "the request body is larger than the limit of %zu bytes", limit);
            return NULL;
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* constant time in the key's length */
static int same_secret(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b);
    unsigned diff = na != nb;
    for (size_t i = 0; i < nb; i++) diff |= (unsigned char)(i < na ? a[i] : 0) ^ (unsigned char)b[i];
    return diff == 0;
}

int server_authorized(const cosy_server *srv, const struct mg_connection *conn)
{
    if (!srv->api_key) return 1;
    const char *h = mg_get_header(conn, "Authorization");
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ') h++;
        size_t n = strlen(h);
        while (n && h[n - 1] == ' ') n--;
        if (same_secret(h, n, srv->api_key)) return 1;
    }
    const char *xi = mg_get_header(conn, "xi-api-key"); /* ElevenLabs clients */
    return xi && same_secret(xi, strlen(xi), srv->api_key);
}

void server_close_after(struct mg_connection *conn)
{
    /* civetweb 1.15 has no call for this; it keeps a connection alive only while the request's
     * Connection header asks for it (or is absent in HTTP/1.1), so we make that header say close */
    struct mg_request_info *ri = (struct mg_request_info *)mg_get_request_info(conn);
    for (int i = 0; i < ri->num_headers; i++)
        if (!strcasecmp(ri->http_headers[i].name, "Connection")) {
            ri->http_headers[i].value = "close";
            return;
        }
    if (ri->num_headers < (int)(sizeof ri->http_headers / sizeof ri->http_headers[0])) {
        ri->http_headers[ri->num_headers].name = "Connection";
        ri->http_headers[ri->num_headers].value = "close";
        ri->num_headers++;
    }
}

int byte_buf_sink(void *user, const void *bytes, size_t n)
{
    byte_buf *b = user;
    if (b->n + n > b->cap) {
        size_t ncap = (b->n + n) * 2;
        char *nd = realloc(b->data, ncap);
        if (!nd) return -1;
        b->data = nd, b->cap = ncap;
    }
    memcpy(b->data + b->n, bytes, n);
    b->n += n;
    return 0;
}

char *base64_encode(const void *data, size_t n, size_t *out_len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    size_t m = (n + 2) / 3 * 4;
    char *out = malloc(m + 1);
    if (!out) return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        out[o++] = tab[v >> 18], out[o++] = tab[(v >> 12) & 63], out[o++] = tab[(v >> 6) & 63], out[o++] = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18], out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}

/* ---- admission ---- */

int server_acquire(cosy_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    if (srv->active >= srv->p.max_sessions && srv->waiting >= srv->p.max_queue) {
        pthread_mutex_unlock(&srv->mu);
        return -1;
    }
    srv->waiting++;
    while (!srv->stopping && srv->active >= srv->p.max_sessions) pthread_cond_wait(&srv->cv, &srv->mu);
    srv->waiting--;
    int slot = -2;
    if (!srv->stopping) {
        /* free slots hold NULL; a taken one holds its session or the server as a placeholder */
        for (slot = 0; slot < srv->p.max_sessions; slot++)
            if (!srv->running[slot]) break;
        srv->running[slot] = (cosy_session *)(void *)srv;
        srv->active++;
    }
    pthread_mutex_unlock(&srv->mu);
    return slot;
}

void server_set_running(cosy_server *srv, int slot, cosy_session *s)
{
    pthread_mutex_lock(&srv->mu);
    srv->running[slot] = s ? s : (cosy_session *)(void *)srv;
    if (s && srv->stopping) cosy_session_cancel(s);
    pthread_mutex_unlock(&srv->mu);
}

void server_release(cosy_server *srv, int slot)
{
    if (slot < 0) return;
    pthread_mutex_lock(&srv->mu);
    srv->running[slot] = NULL;
    srv->active--;
    pthread_cond_broadcast(&srv->cv); /* the sweeper waits on it too */
    pthread_mutex_unlock(&srv->mu);
}

/* ---- routing ---- */

static void log_request(http_req *r)
{
    if (r->srv->p.quiet) return;
    /* method, path and status only: never headers (the API key) or the query string */
    fprintf(stderr, "cosy serve: %s %s %d %.0f ms\n", r->ri->request_method, r->ri->local_uri ? r->ri->local_uri : "?",
            r->status, cosy_now_ms() - r->t0);
}

static int is(const http_req *r, const char *method) { return !strcmp(r->ri->request_method, method); }

static int route_health(http_req *r, int ready)
{
    cJSON *o = cJSON_CreateObject();
    int ok = !ready || r->srv->ready;
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "loading");
    if (ready) {
        pthread_mutex_lock(&r->srv->mu);
        cJSON_AddNumberToObject(o, "active_sessions", r->srv->active);
        cJSON_AddNumberToObject(o, "queued", r->srv->waiting);
        cJSON_AddNumberToObject(o, "max_sessions", r->srv->p.max_sessions);
        pthread_mutex_unlock(&r->srv->mu);
    }
    return http_json(r, ok ? 200 : 503, o);
}

typedef struct {
    void (*fn)(void *);
    void *arg;
} big_stack_call;

static void *big_stack_main(void *p)
{
    big_stack_call *c = p;
    c->fn(c->arg);
    return NULL;
}

int server_call_big_stack(void (*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t t;
    big_stack_call c = {fn, arg};
    if (pthread_attr_init(&attr)) return -1;
    pthread_attr_setstacksize(&attr, 8u << 20);
    int rc = pthread_create(&t, &attr, big_stack_main, &c);
    pthread_attr_destroy(&attr);
    if (rc) return -1;
    pthread_join(t, NULL);
    return 0;
}

static void dispatch(void *arg);

static int handle_http(struct mg_connection *conn, void *cbdata)
{
    cosy_server *srv = cbdata;
    http_req r = {.srv = srv, .conn = conn, .ri = mg_get_request_info(conn), .route = ROUTE_OTHER, .t0 = cosy_now_ms()};
    /* civetweb's workers have 100 KB stacks; the engine and the codecs (lame) need more */
    if (server_call_big_stack(dispatch, &r)) http_error(&r, 503, NULL, "cannot start a thread");
    metrics_count(&srv->metrics, r.route, r.status ? r.status : 200);
    log_request(&r);
    return r.status ? r.status : 200;
}

static void dispatch(void *arg)
{
    http_req *rp = arg, r = *rp;
    cosy_server *srv = r.srv;
    struct mg_connection *conn = r.conn;
    const char *uri = r.ri->local_uri ? r.ri->local_uri : "";
    int public_route = 0;
    if (!strcmp(uri, "/v1/audio/speech")) r.route = ROUTE_SPEECH;
    else if (!strcmp(uri, "/v1/token2wav")) r.route = ROUTE_TOKEN2WAV;
    else if (!strcmp(uri, "/v1/voices")) r.route = ROUTE_VOICES;
    else if (!strcmp(uri, "/v1/models")) r.route = ROUTE_MODELS;
    else if (!strncmp(uri, "/v1/text-to-speech/", 19)) r.route = ROUTE_STREAM_INPUT;
    else if (!strcmp(uri, "/metrics")) r.route = ROUTE_METRICS;
    else if (!strcmp(uri, "/healthz")) r.route = ROUTE_HEALTH, public_route = 1;
    else if (!strcmp(uri, "/readyz")) r.route = ROUTE_READY, public_route = 1;
    else if (!strcmp(uri, "/") || !strcmp(uri, "/index.html")) r.route = ROUTE_PAGE, public_route = 1;

    if (!public_route && !server_authorized(srv, conn)) http_error(&r, 401, NULL, "missing or wrong API key (send Authorization: Bearer KEY)");
    else
        switch (r.route) {
        case ROUTE_SPEECH:
            if (!is(&r, "POST")) http_error(&r, 405, NULL, "use POST for %s", uri);
            else route_speech(&r);
            break;
        case ROUTE_TOKEN2WAV:
            if (!is(&r, "POST")) http_error(&r, 405, NULL, "use POST for %s", uri);
            else route_token2wav(&r);
            break;
        case ROUTE_VOICES:
            if (!is(&r, "GET") && !is(&r, "POST")) http_error(&r, 405, NULL, "use GET or POST for %s", uri);
            else route_voices(&r);
            break;
        case ROUTE_MODELS:
            if (!is(&r, "GET")) http_error(&r, 405, NULL, "use GET for %s", uri);
            else route_models(&r);
            break;
        case ROUTE_STREAM_INPUT:
            http_error(&r, 426, NULL, "%s is a WebSocket endpoint: connect with Upgrade: websocket", uri);
            break;
        case ROUTE_METRICS:
            if (!is(&r, "GET")) http_error(&r, 405, NULL, "use GET for %s", uri);
            else route_metrics(&r);
            break;
        case ROUTE_HEALTH: route_health(&r, 0); break;
        case ROUTE_READY: route_health(&r, 1); break;
        case ROUTE_PAGE:
            if (!is(&r, "GET") && !is(&r, "HEAD")) http_error(&r, 405, NULL, "use GET for %s", uri);
            else route_page(&r);
            break;
        default: http_error(&r, 404, NULL, "no route %s %s", r.ri->request_method, uri); break;
        }
    *rp = r;
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    (void)message; /* civetweb's own messages (e.g. a client that went away) are not ours to print */
    return 1;
}

static void *sweeper_main(void *arg)
{
    cosy_server *srv = arg;
    pthread_mutex_lock(&srv->mu);
    while (!srv->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&srv->cv, &srv->mu, &ts);
        if (srv->stopping) break;
        pthread_mutex_unlock(&srv->mu);
        t2w_sweep(srv);
        pthread_mutex_lock(&srv->mu);
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

cosy_status cosy_server_start(cosy_model *model, const cosy_server_params *params, cosy_server **out)
{
    *out = NULL;
    cosy_server_params p = params ? *params : cosy_server_default_params();
    if (!model) return cosy_error(COSY_ERR_INVALID_ARG, "serve: no model");
    if (p.port < 0 || p.port > 65535) return cosy_error(COSY_ERR_INVALID_ARG, "serve: port %d is out of range (0..65535)", p.port);
    if (p.max_sessions < 1 || p.max_sessions > 256) return cosy_error(COSY_ERR_INVALID_ARG, "serve: max_sessions %d is out of range (1..256)", p.max_sessions);
    if (p.max_queue < 0 || p.max_queue > 4096) return cosy_error(COSY_ERR_INVALID_ARG, "serve: max_queue %d is out of range (0..4096)", p.max_queue);
    if (p.max_input_chars < 1 || p.max_input_chars > 1000000)
        return cosy_error(COSY_ERR_INVALID_ARG, "serve: max_input_chars %d is out of range (1..1000000)", p.max_input_chars);
    if (p.max_body_bytes < 1024) return cosy_error(COSY_ERR_INVALID_ARG, "serve: max_body_bytes %d is below 1024", p.max_body_bytes);
    if (p.t2w_ttl_seconds < 1) return cosy_error(COSY_ERR_INVALID_ARG, "serve: t2w_ttl_seconds must be >= 1");
    if (p.api_key && strpbrk(p.api_key, "\r\n")) return cosy_error(COSY_ERR_INVALID_ARG, "serve: the API key has a line break");
    cosy_server *srv = calloc(1, sizeof *srv);
    if (!srv) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    srv->model = model;
    srv->p = p;
    srv->host = strdup(p.host ? p.host : "127.0.0.1");
    srv->api_key = dup_or_null(p.api_key);
    srv->voices_dir = dup_or_null(p.voices_dir);
    srv->model_id = strdup("cosyvoice2");
    srv->p.host = srv->host, srv->p.api_key = srv->api_key, srv->p.voices_dir = srv->voices_dir;
    srv->running = calloc((size_t)p.max_sessions, sizeof *srv->running);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    pthread_mutex_init(&srv->voices.mu, NULL);
    metrics_init(&srv->metrics);
    t2w_init(&srv->t2w);
    cosy_status st = srv->host && srv->model_id && srv->running ? COSY_OK : cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) st = voices_load(srv);
    if (st != COSY_OK) {
        cosy_server_stop(srv);
        return st;
    }
    char ports[300], threads[16], timeout[16];
    if (strchr(srv->host, ':')) snprintf(ports, sizeof ports, "[%s]:%d", srv->host, p.port);
    else snprintf(ports, sizeof ports, "%s:%d", srv->host, p.port);
    /* civetweb gives each open connection a worker thread for as long as it stays open (an idle
     * keep-alive connection too, up to keep_alive_timeout_ms, and a WebSocket for its whole life):
     * every synthesis and waiting request holds one, and 32 more serve health, metrics, voices and
     * idle keep-alive clients; further connections wait in the listen queue */
    snprintf(threads, sizeof threads, "%d", p.max_sessions + p.max_queue + 32);
    snprintf(timeout, sizeof timeout, "%d", 60000);
    const char *options[] = {"listening_ports", ports, "num_threads", threads, "request_timeout_ms", timeout,
                             "enable_keep_alive", "yes", "keep_alive_timeout_ms", "5000", "websocket_timeout_ms", "600000",
                             "enable_auth_domain_check", "no", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    mg_init_library(0);
    srv->ctx = mg_start(&cb, srv, options);
    if (!srv->ctx) {
        cosy_server_stop(srv);
        return cosy_error(COSY_ERR_IO, "serve: cannot listen on %s (in use, or not an address of this machine)", ports);
    }
    struct mg_server_port sp[4];
    int n = mg_get_server_ports(srv->ctx, 4, sp);
    srv->port = n > 0 ? sp[0].port : p.port;
    mg_set_request_handler(srv->ctx, "**", handle_http, srv);
    ws_register(srv);
    if (pthread_create(&srv->sweeper, NULL, sweeper_main, srv) == 0) srv->sweeper_started = 1;
    srv->ready = 1;
    *out = srv;
    return COSY_OK;
}

void cosy_server_stop(cosy_server *srv)
{
    if (!srv) return;
    pthread_mutex_lock(&srv->mu);
    srv->stopping = 1;
    for (int i = 0; srv->running && i < srv->p.max_sessions; i++)
        if (srv->running[i] && srv->running[i] != (cosy_session *)(void *)srv) cosy_session_cancel(srv->running[i]);
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    if (srv->ctx) mg_stop(srv->ctx);
    if (srv->sweeper_started) pthread_join(srv->sweeper, NULL);
    t2w_free(&srv->t2w);
    voices_free(&srv->voices);
    metrics_destroy(&srv->metrics);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->running);
    free(srv->host);
    free(srv->api_key);
    free(srv->voices_dir);
    free(srv->model_id);
    free(srv);
}
