/*
 * t2w.c — POST /v1/token2wav: for clients that run the LM themselves, the interface of the
 * Triton token2wav model (runtime/triton_trtllm: token2wav_dit / token2wav): each call sends every
 * speech token of the utterance so far, the token_offset from which audio is wanted and whether
 * it is the last call; the answer is that chunk's audio. The flow and vocoder state between the
 * calls of one utterance lives here, keyed by request_id, and is dropped after finalize or once
 * idle for t2w_ttl_seconds.
 *
 * Request: {"request_id": "...", "voice": "...", "tokens": [ints], "token_offset": N,
 *           "finalize": bool, "response_format": "pcm" | "wav", "seed": N}
 * Answer:  the chunk as s16le 24 kHz mono (pcm, default) or a WAVE file; X-Samples gives its length.
 */
#define _GNU_SOURCE
#include "server/server_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "io/wav.h"
#include "model/voice/voice.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T2W_MAX_STATES 256
#define T2W_MAX_TOKENS 30000 /* 20 minutes of speech */

struct t2w_entry {
    t2w_entry *next;
    char id[129];
    char voice_id[65];
    cosy_token2wav *t2w;
    double last_used_ms;
    int busy;
};

void t2w_init(server_t2w *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
}

static void entry_free(t2w_entry *e)
{
    if (!e) return;
    cosy_token2wav_free(e->t2w);
    free(e);
}

void t2w_free(server_t2w *t)
{
    for (t2w_entry *e = t->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&t->mu);
    memset(t, 0, sizeof *t);
}

void t2w_sweep(cosy_server *srv)
{
    server_t2w *t = &srv->t2w;
    double now = cosy_now_ms(), ttl = srv->p.t2w_ttl_seconds * 1000.0;
    t2w_entry *dead = NULL;
    pthread_mutex_lock(&t->mu);
    for (t2w_entry **pp = &t->head; *pp;) {
        t2w_entry *e = *pp;
        if (!e->busy && now - e->last_used_ms > ttl) {
            *pp = e->next;
            e->next = dead;
            dead = e;
            t->count--;
        } else pp = &e->next;
    }
    pthread_mutex_unlock(&t->mu);
    for (t2w_entry *e = dead, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
}

/* Takes the entry for `id` (creating it if absent) and marks it busy; NULL with *status set if
 * it is busy with another call (409), the table is full (503) or it cannot be made. */
static t2w_entry *take(cosy_server *srv, const char *id, const server_voice *voice, uint64_t seed, int *status, char *msg, size_t msg_size)
{
    server_t2w *t = &srv->t2w;
    pthread_mutex_lock(&t->mu);
    t2w_entry *e = t->head;
    while (e && strcmp(e->id, id)) e = e->next;
    if (e) {
        if (e->busy) *status = 409, snprintf(msg, msg_size, "request_id '%s' has a call in progress", id), e = NULL;
        else if (strcmp(e->voice_id, voice->id)) *status = 400, snprintf(msg, msg_size, "request_id '%s' was started with voice '%s'", id, e->voice_id), e = NULL;
        else e->busy = 1;
        pthread_mutex_unlock(&t->mu);
        return e;
    }
    if (t->count >= T2W_MAX_STATES) {
        pthread_mutex_unlock(&t->mu);
        *status = 503;
        snprintf(msg, msg_size, "%d token2wav utterances are open; finalize some or wait %d s for idle ones to expire", T2W_MAX_STATES,
                 srv->p.t2w_ttl_seconds);
        return NULL;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&t->mu);
        *status = 503, snprintf(msg, msg_size, "out of memory");
        return NULL;
    }
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->voice_id, sizeof e->voice_id, "%s", voice->id);
    e->busy = 1;
    e->next = t->head;
    t->head = e;
    t->count++;
    pthread_mutex_unlock(&t->mu);
    /* a built-in speaker has no prompt audio: the flow gets its embedding only (as SFT sessions) */
    cosy_voice flow_voice = *voice->voice;
    if (voice->builtin) {
        flow_voice.n_flow_prompt_tokens = 0, flow_voice.flow_prompt_tokens = NULL;
        flow_voice.n_prompt_frames = 0, flow_voice.prompt_feat = NULL;
    }
    cosy_token2wav_params tp = cosy_token2wav_default_params();
    tp.seed = seed;
    if (cosy_token2wav_create(srv->model, &flow_voice, &tp, &e->t2w) != COSY_OK) {
        *status = 500;
        snprintf(msg, msg_size, "%s", cosy_last_error());
        e->t2w = NULL; /* the caller drops the entry */
    }
    return e;
}

static void give_back(cosy_server *srv, t2w_entry *e, int drop)
{
    server_t2w *t = &srv->t2w;
    pthread_mutex_lock(&t->mu);
    e->busy = 0;
    e->last_used_ms = cosy_now_ms();
    if (drop)
        for (t2w_entry **pp = &t->head; *pp; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                t->count--;
                break;
            }
    pthread_mutex_unlock(&t->mu);
    if (drop) entry_free(e);
}

int route_token2wav(http_req *r)
{
    cosy_server *srv = r->srv;
    size_t n;
    char *body = http_read_body(r, (size_t)srv->p.max_body_bytes, &n);
    if (!body) return 1;
    cJSON *req = cJSON_ParseWithLength(body, n);
    free(body);
    if (!req || !cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return http_error(r, 400, NULL, "the request body is not a JSON object");
    }
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "request_id"));
    const char *voice_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "voice"));
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(req, "tokens");
    const cJSON *offset = cJSON_GetObjectItemCaseSensitive(req, "token_offset");
    const cJSON *finalize = cJSON_GetObjectItemCaseSensitive(req, "finalize");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(req, "seed");
    const char *fmt = format ? cJSON_GetStringValue(format) : "pcm";
    const server_voice *voice = NULL;
    int done = 0, n_tokens = tokens ? cJSON_GetArraySize(tokens) : 0;
    const int vocab = 6561;
    if (!id || !id[0] || strlen(id) > 128) done = http_error(r, 400, "request_id", "request_id must be a string of 1-128 characters");
    else if (!voice_id) done = http_error(r, 400, "voice", "voice is required (GET /v1/voices)");
    else if (!(voice = voices_find(srv, voice_id))) done = http_error(r, 400, "voice", "unknown voice '%.64s'", voice_id);
    else if (!cJSON_IsArray(tokens)) done = http_error(r, 400, "tokens", "tokens must be an array of speech token ids");
    else if (n_tokens > T2W_MAX_TOKENS) done = http_error(r, 400, "tokens", "%d tokens; the limit is %d", n_tokens, T2W_MAX_TOKENS);
    else if (!cJSON_IsNumber(offset) || offset->valuedouble < 0 || offset->valuedouble > n_tokens || offset->valuedouble != (int)offset->valuedouble)
        done = http_error(r, 400, "token_offset", "token_offset must be an integer in 0..len(tokens)");
    else if (finalize && !cJSON_IsBool(finalize)) done = http_error(r, 400, "finalize", "finalize must be true or false");
    else if (!fmt || (strcmp(fmt, "pcm") && strcmp(fmt, "wav"))) done = http_error(r, 400, "response_format", "response_format must be pcm or wav");
    else if (seed && (!cJSON_IsNumber(seed) || seed->valuedouble < 0 || seed->valuedouble > 9007199254740991.0))
        done = http_error(r, 400, "seed", "seed must be a non-negative integer");
    int32_t *ids = done ? NULL : malloc(sizeof(int32_t) * (size_t)(n_tokens + 1));
    if (!done && !ids) done = http_error(r, 503, NULL, "out of memory");
    for (int i = 0; !done && i < n_tokens; i++) {
        const cJSON *it = cJSON_GetArrayItem(tokens, i);
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= vocab || it->valuedouble != (int)it->valuedouble)
            done = http_error(r, 400, "tokens", "tokens[%d] is not a speech token id (0..%d)", i, vocab - 1);
        else ids[i] = (int32_t)it->valuedouble;
    }
    if (done) {
        free(ids);
        cJSON_Delete(req);
        return 1;
    }
    int is_final = cJSON_IsTrue(finalize), status = 0;
    char msg[512];
    t2w_entry *e = take(srv, id, voice, seed ? (uint64_t)seed->valuedouble : 0, &status, msg, sizeof msg);
    if (!e) done = http_error(r, status, "request_id", "%s", msg);
    else if (!e->t2w) {
        give_back(srv, e, 1);
        done = http_error(r, status, NULL, "%s", msg);
    }
    int slot = done ? -3 : server_acquire(srv);
    if (!done && slot < 0) {
        give_back(srv, e, 0);
        done = http_error(r, 503, NULL, "the server is busy: retry shortly");
    }
    if (!done) {
        const float *audio;
        int n_samples = 0;
        cosy_status st = cosy_token2wav_call(e->t2w, ids, n_tokens, (int)offset->valuedouble, is_final, &audio, &n_samples);
        server_release(srv, slot);
        if (st != COSY_OK) {
            give_back(srv, e, 1); /* the utterance cannot go on */
            http_error(r, http_status_of(st), "tokens", "%s", cosy_last_error());
        } else {
            int16_t *pcm = malloc(sizeof(int16_t) * (size_t)(n_samples + 1));
            if (!pcm) http_error(r, 503, NULL, "out of memory");
            else {
                cosy_float_to_pcm16(pcm, audio, n_samples);
                size_t bytes = (size_t)n_samples * 2;
                int wav = !strcmp(fmt, "wav");
                unsigned char head[44];
                if (wav) cosy_wav_header(head, cosy_model_sample_rate(srv->model), COSY_WAV_PCM16, n_samples);
                r->status = 200;
                mg_printf(r->conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\nX-Samples: %d\r\nX-Final: %d\r\n\r\n",
                          wav ? "audio/wav" : "audio/pcm", bytes + (wav ? 44 : 0), n_samples, is_final);
                if (wav) mg_write(r->conn, head, 44);
                mg_write(r->conn, pcm, bytes);
                free(pcm);
            }
            give_back(srv, e, is_final);
        }
    }
    free(ids);
    cJSON_Delete(req);
    return 1;
}
