/*
 * ws.c — GET /v1/text-to-speech/{voice}/stream-input: text in pieces over a WebSocket, audio back
 * while the text is still arriving (CosyVoice2's bistream, over the network), in ElevenLabs'
 * stream-input wire format so that its clients work unchanged:
 *   client → {"text": " ", "xi_api_key": ..., <options>}      the first message: settings
 *            {"text": "Hello "}  {"text": "world. "}            pieces, fed to the LM as they come
 *            {"text": "...", "flush": true}                     ends the utterance now; later text
 *                                                               starts the next one
 *            {"text": ""}                                       end of input
 *   server → {"audio": "<base64>", "isFinal": false, ...}       each chunk as it is made (or binary
 *                                                               frames with ?binary=true)
 *            {"audio": null, "isFinal": true, "usage", "timings"} then a close frame (1000)
 * Query: output_format = pcm_24000 (default) | mp3_24000 | opus_24000 | wav_24000 | flac_24000
 * (or the bare names), binary = true|false. Options in the first message as in
 * /v1/audio/speech: mode, instructions, seed, strategy, chunk_tokens, first_chunk, ...
 *
 * Threads: civetweb calls the handlers below on the connection's worker thread, which owns the
 * sessions (creates, feeds, frees them); one writer thread per utterance reads its audio and
 * sends it, so audio leaves while text is still being read.
 */
#define _GNU_SOURCE
#include "server/server_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "io/encode.h"
#include "text/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    cosy_server *srv;
    struct mg_connection *conn;
    const server_voice *voice;
    int authed, configured, binary;
    int closing;      /* a close frame was sent (either thread): __atomic access */
    cosy_audio_format format;
    char *instructions;
    cosy_session_params sp;
    /* the utterance in progress */
    cosy_session *s;
    int slot, ended_text, final_input;
    pthread_t writer;
    int writer_running;
    /* writer → connection thread */
    pthread_mutex_t mu;
    int writer_failed;
    byte_buf bytes;   /* encoded bytes of the current chunk (writer thread) */
    /* a refusal found at the handshake (unknown voice, bad query), sent once the socket is open:
     * WebSocket clients show a close code and a message, not a bare failed handshake */
    int refuse_code, refuse_status;
    char refuse_msg[300];
} ws_conn;

static int ws_send(ws_conn *c, int opcode, const char *data, size_t n)
{
    mg_lock_connection(c->conn);
    int k = mg_websocket_write(c->conn, opcode, data, n);
    mg_unlock_connection(c->conn);
    return k > 0 || n == 0 ? 0 : -1;
}

static void ws_close(ws_conn *c, int code, const char *reason)
{
    char frame[125];
    size_t n = strlen(reason);
    if (n > sizeof frame - 2) n = sizeof frame - 2;
    frame[0] = (char)(code >> 8), frame[1] = (char)(code & 255);
    memcpy(frame + 2, reason, n);
    __atomic_store_n(&c->closing, 1, __ATOMIC_SEQ_CST);
    ws_send(c, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, frame, n + 2);
}

static void ws_send_json(ws_conn *c, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text) ws_send(c, MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text));
    free(text);
}

/* An error message (ElevenLabs sends {"message", "error", "code"}) and a close frame; returns 0 (close). */
static int ws_fail(ws_conn *c, int close_code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ws_fail(ws_conn *c, int close_code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddStringToObject(o, "error", close_code == 1008 ? "invalid_request" : close_code == 1013 ? "server_busy" : "server_error");
    cJSON_AddNumberToObject(o, "code", close_code);
    ws_send_json(c, o);
    ws_close(c, close_code, close_code == 1013 ? "busy" : "error");
    return 0;
}

static int send_audio(ws_conn *c)
{
    if (!c->bytes.n) return 0;
    int rc;
    if (c->binary) rc = ws_send(c, MG_WEBSOCKET_OPCODE_BINARY, c->bytes.data, c->bytes.n);
    else {
        char *b64 = base64_encode(c->bytes.data, c->bytes.n, NULL);
        if (!b64) return -1;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "audio", b64);
        cJSON_AddFalseToObject(o, "isFinal");
        cJSON_AddNullToObject(o, "normalizedAlignment");
        cJSON_AddNullToObject(o, "alignment");
        free(b64);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        rc = text ? ws_send(c, MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text)) : -1;
        free(text);
    }
    c->bytes.n = 0;
    return rc;
}

static void *writer_main(void *arg)
{
    ws_conn *c = arg;
    cosy_server *srv = c->srv;
    cosy_encoder *enc = NULL;
    float *pcm = malloc(sizeof(float) * 48000);
    cosy_status st = pcm ? cosy_encoder_create(c->format, cosy_model_sample_rate(srv->model), byte_buf_sink, &c->bytes, &enc)
                         : cosy_error(COSY_ERR_NOMEM, "out of memory");
    int gone = 0, got;
    while (st == COSY_OK) {
        st = cosy_session_read(c->s, pcm, 48000, &got);
        if (st != COSY_OK || got == 0) break;
        st = cosy_encoder_write(enc, pcm, got);
        if (st == COSY_OK && send_audio(c)) {
            gone = 1;
            cosy_session_cancel(c->s);
            metrics_disconnect(&srv->metrics);
            st = COSY_ERR_CANCELLED;
        }
    }
    if (st == COSY_OK) st = cosy_encoder_finish(enc);
    if (st == COSY_OK && send_audio(c)) gone = 1, st = COSY_ERR_CANCELLED;
    cosy_status wst = cosy_session_wait(c->s);
    if (st == COSY_OK) st = wst;
    cosy_timings t;
    cosy_session_timings(c->s, &t);
    if (st == COSY_OK) metrics_timings(&srv->metrics, &t);
    log_timings(srv, "stream-input", c->voice->id, &t, st);
    if (!gone && st != COSY_OK && st != COSY_ERR_CANCELLED) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", cosy_last_error()[0] ? cosy_last_error() : cosy_strerror(st));
        ws_fail(c, st == COSY_ERR_INVALID_ARG ? 1008 : 1011, "%s", msg);
    } else if (!gone && st == COSY_OK && c->final_input) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNullToObject(o, "audio");
        cJSON_AddTrueToObject(o, "isFinal");
        cJSON *usage = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(usage, "input_tokens", t.text_tokens);
        cJSON_AddNumberToObject(usage, "output_tokens", t.speech_tokens);
        cJSON_AddItemToObject(o, "timings", timings_json(&t));
        ws_send_json(c, o);
        ws_close(c, 1000, "done");
    }
    pthread_mutex_lock(&c->mu);
    c->writer_failed = st != COSY_OK;
    pthread_mutex_unlock(&c->mu);
    server_set_running(srv, c->slot, NULL);
    server_release(srv, c->slot);
    c->slot = -1;
    cosy_encoder_free(enc);
    free(pcm);
    return NULL;
}

/* Ends the previous utterance's bookkeeping: waits for its writer, frees its session. */
static void finish_utterance(ws_conn *c)
{
    if (c->writer_running) {
        pthread_join(c->writer, NULL);
        c->writer_running = 0;
    }
    if (c->s) {
        cosy_session_free(c->s);
        c->s = NULL;
    }
    c->ended_text = 0;
}

/* A session for the next utterance and its writer thread. 0 ok, else the connection is closing. */
static int start_utterance(ws_conn *c)
{
    finish_utterance(c);
    int slot = server_acquire(c->srv);
    if (slot < 0) return ws_fail(c, 1013, "the server is busy (%d sessions running): retry shortly", c->srv->p.max_sessions), -1;
    c->slot = slot;
    cosy_session_params sp = c->sp;
    sp.bistream = 1;
    sp.stream = 1;
    cosy_status st = cosy_session_create(c->srv->model, c->voice->voice, &sp, &c->s);
    if (st != COSY_OK) {
        server_release(c->srv, slot);
        c->slot = -1;
        return ws_fail(c, http_status_of(st) == 400 ? 1008 : 1011, "%s", cosy_last_error()), -1;
    }
    server_set_running(c->srv, slot, c->s);
    c->writer_failed = 0;
    if (pthread_create(&c->writer, NULL, writer_main, c)) {
        cosy_session_cancel(c->s);
        cosy_session_free(c->s);
        c->s = NULL;
        server_set_running(c->srv, slot, NULL);
        server_release(c->srv, slot);
        c->slot = -1;
        return ws_fail(c, 1011, "cannot start a thread"), -1;
    }
    c->writer_running = 1;
    return 0;
}

static int parse_output_format(const char *q, ws_conn *c, char *msg, size_t msg_size)
{
    char v[64];
    c->format = COSY_AUDIO_PCM;
    if (q && mg_get_var(q, strlen(q), "output_format", v, sizeof v) > 0) {
        char *rate = strchr(v, '_');
        if (rate) {
            *rate++ = 0;
            if (strncmp(rate, "24000", 5) || (rate[5] && rate[5] != '_')) {
                snprintf(msg, msg_size, "output_format %s_%s: only 24000 Hz is produced (pcm_24000, mp3_24000, opus_24000, wav_24000, flac_24000)", v, rate);
                return -1;
            }
        }
        if (cosy_audio_format_from_name(v, &c->format)) {
            snprintf(msg, msg_size, "output_format '%s' is not supported (pcm, mp3, opus, wav or flac, at 24000 Hz)", v);
            return -1;
        }
    }
    if (q && mg_get_var(q, strlen(q), "binary", v, sizeof v) > 0) c->binary = !strcmp(v, "true") || !strcmp(v, "1");
    return 0;
}

static int ws_connect(const struct mg_connection *conn, void *cbdata)
{
    cosy_server *srv = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    ws_conn *c = calloc(1, sizeof *c);
    if (!c) return 1;
    c->srv = srv;
    c->slot = -1;
    c->sp = cosy_session_default_params();
    pthread_mutex_init(&c->mu, NULL);
    char voice[128] = "";
    const char *start = uri + strlen("/v1/text-to-speech/"), *end = strstr(start, "/stream-input");
    if (!end || (size_t)(end - start) >= sizeof voice || strcmp(end, "/stream-input")) {
        c->refuse_code = 1008, c->refuse_status = 404;
        snprintf(c->refuse_msg, sizeof c->refuse_msg, "no route %.200s", uri);
    } else {
        memcpy(voice, start, (size_t)(end - start));
        voice[end - start] = 0;
        c->voice = voices_find(srv, voice);
        if (!c->voice) {
            c->refuse_code = 1008, c->refuse_status = 404;
            snprintf(c->refuse_msg, sizeof c->refuse_msg, "unknown voice '%.64s' (GET /v1/voices lists them)", voice);
        } else if (parse_output_format(ri->query_string, c, c->refuse_msg, sizeof c->refuse_msg))
            c->refuse_code = 1008, c->refuse_status = 400;
    }
    c->authed = server_authorized(srv, conn); /* or later, by xi_api_key in the first message (browsers) */
    mg_set_user_connection_data(conn, c);
    return 0;
}

static void ws_ready(struct mg_connection *conn, void *cbdata)
{
    ws_conn *c = mg_get_user_connection_data(conn);
    if (!c) return;
    c->conn = conn;
    metrics_count(&((cosy_server *)cbdata)->metrics, ROUTE_STREAM_INPUT, c->refuse_code ? c->refuse_status : 101);
    if (c->refuse_code) ws_fail(c, c->refuse_code, "%s", c->refuse_msg);
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

static int handle_message(ws_conn *c, char *data, size_t len)
{
    cosy_server *srv = c->srv;
    size_t bad;
    if (cosy_utf8_check(data, len, &bad) != COSY_OK) return ws_fail(c, 1007, "the message is not valid UTF-8 (byte %zu)", bad);
    cJSON *m = cJSON_ParseWithLength(data, len);
    if (!m || !cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return ws_fail(c, 1008, "a message must be a JSON object such as {\"text\": \"Hello \"}");
    }
    int keep = 1;
    const cJSON *text_j = cJSON_GetObjectItemCaseSensitive(m, "text");
    const char *text = cJSON_GetStringValue(text_j);
    if (!text) keep = ws_fail(c, 1008, "every message needs \"text\" (a string; \"\" ends the input)");
    if (keep && !c->configured) {
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "xi_api_key"));
        if (!key) key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "api_key"));
        if (!c->authed && srv->api_key && key && strlen(key) == strlen(srv->api_key) && !strcmp(key, srv->api_key)) c->authed = 1;
        if (!c->authed && srv->api_key) keep = ws_fail(c, 1008, "missing or wrong API key (Authorization: Bearer KEY, xi-api-key, or xi_api_key in the first message)");
        const cJSON *instr = cJSON_GetObjectItemCaseSensitive(m, "instructions");
        const char *instructions = cJSON_GetStringValue(instr);
        if (keep && instr && !cJSON_IsNull(instr) && !instructions) keep = ws_fail(c, 1008, "instructions must be a string");
        if (keep && instructions && instructions[0] && !(c->instructions = strdup(instructions))) keep = ws_fail(c, 1011, "out of memory");
        const cJSON *bin = cJSON_GetObjectItemCaseSensitive(m, "binary");
        if (keep && bin) c->binary = cJSON_IsTrue(bin);
        char msg[400];
        const char *param = NULL;
        if (keep && speech_options_from_json(m, c->voice, c->instructions, &c->sp, &param, msg, sizeof msg)) keep = ws_fail(c, 1008, "%s: %s", param, msg);
        c->configured = 1;
    }
    if (keep && c->final_input) keep = ws_fail(c, 1008, "text after the end of the input");
    const cJSON *flush = cJSON_GetObjectItemCaseSensitive(m, "flush");
    int is_end = keep && text && !text[0];
    int blank = keep && text && is_blank(text);
    if (keep && cosy_utf8_length(text, strlen(text)) > (size_t)srv->p.max_input_chars)
        keep = ws_fail(c, 1009, "a text piece is longer than the limit of %d characters", srv->p.max_input_chars);
    /* white space alone does not start an utterance, but inside one it goes to the LM like any piece */
    if (keep && !is_end && (!blank || (c->s && !c->ended_text))) {
        if (!c->s || c->ended_text) keep = start_utterance(c) == 0;
        if (keep) {
            cosy_status st = cosy_session_push_text(c->s, text, strlen(text));
            if (st != COSY_OK && !c->writer_failed) keep = ws_fail(c, 1008, "%s", cosy_last_error());
            else if (st != COSY_OK) keep = 0;
        }
    }
    if (keep && (is_end || cJSON_IsTrue(flush)) && c->s && !c->ended_text) {
        c->final_input = is_end;
        c->ended_text = 1;
        cosy_status st = cosy_session_end_text(c->s);
        (void)st; /* a refusal (nothing to say) reaches the writer, which reports it */
    } else if (keep && is_end) {
        /* the input ended with no utterance open: nothing more will be said */
        c->final_input = 1;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNullToObject(o, "audio");
        cJSON_AddTrueToObject(o, "isFinal");
        ws_send_json(c, o);
        ws_close(c, 1000, "done");
    }
    cJSON_Delete(m);
    return keep;
}

typedef struct {
    ws_conn *c;
    char *data;
    size_t len;
    int keep;
} ws_message;

/* on a thread with room for the engine's stack (civetweb's workers have 100 KB) */
static void handle_message_call(void *arg)
{
    ws_message *m = arg;
    m->keep = handle_message(m->c, m->data, m->len);
}

static int ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    (void)cbdata;
    ws_conn *c = mg_get_user_connection_data(conn);
    if (!c) return 0;
    int opcode = bits & 0x0f;
    switch (opcode) {
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
        /* civetweb 1.15 does not answer a close frame itself: echo it so that the client sees a clean close */
        if (!__atomic_exchange_n(&c->closing, 1, __ATOMIC_SEQ_CST)) ws_send(c, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, len < 125 ? len : 0);
        return 0;
    case MG_WEBSOCKET_OPCODE_PING: ws_send(c, MG_WEBSOCKET_OPCODE_PONG, data, len); return 1;
    case MG_WEBSOCKET_OPCODE_PONG: return 1;
    case MG_WEBSOCKET_OPCODE_TEXT:
        if (!(bits & 0x80)) return ws_fail(c, 1003, "fragmented messages are not supported");
        if (len > (size_t)c->srv->p.max_body_bytes) return ws_fail(c, 1009, "a message is larger than the limit of %d bytes", c->srv->p.max_body_bytes);
        if (__atomic_load_n(&c->closing, __ATOMIC_SEQ_CST)) return 1;
        {
            ws_message msg = {c, data, len, 0};
            if (server_call_big_stack(handle_message_call, &msg)) return ws_fail(c, 1011, "cannot start a thread");
            return msg.keep;
        }
    default: return ws_fail(c, 1003, "send text messages (JSON)");
    }
}

static void ws_closed(const struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    ws_conn *c = mg_get_user_connection_data(conn);
    if (!c) return;
    if (c->s) cosy_session_cancel(c->s);
    finish_utterance(c);
    mg_set_user_connection_data(conn, NULL);
    pthread_mutex_destroy(&c->mu);
    free(c->instructions);
    free(c->bytes.data);
    free(c);
}

void ws_register(cosy_server *srv)
{
    mg_set_websocket_handler(srv->ctx, "/v1/text-to-speech/*/stream-input", ws_connect, ws_ready, ws_data, ws_closed, srv);
}
