/*
 * speech.c — POST /v1/audio/speech, OpenAI's text-to-speech call: {model, input, voice,
 * instructions, response_format, speed, stream_format}, plus cosy's own optional fields (mode,
 * stream, strategy, chunk_tokens, overlap_tokens, first_chunk, seed, max_speech_tokens).
 *
 * The response headers wait for the first audio chunk: a request that fails before any audio
 * (text with nothing to say, a session that cannot start) still gets a proper status and an
 * OpenAI error body, and the time to the first body byte is the time to first audio. Audio then
 * leaves chunk by chunk (chunked transfer, or one SSE event per chunk with stream_format "sse").
 */
#define _GNU_SOURCE
#include "server/server_internal.h"

#include "core/clock.h"
#include "core/error.h"
#include "io/encode.h"
#include "text/utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const model_names[] = {"cosyvoice2", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", NULL};

static int get_int(const cJSON *obj, const char *name, long long min, long long max, long long *out, const char **param, char *msg,
                   size_t msg_size)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it || cJSON_IsNull(it)) return 0;
    double v = it->valuedouble;
    if (!cJSON_IsNumber(it) || v != floor(v) || v < (double)min || v > (double)max) {
        *param = name;
        snprintf(msg, msg_size, "%s must be an integer in %lld..%lld", name, min, max);
        return -1;
    }
    *out = (long long)v;
    return 1;
}

int speech_options_from_json(const cJSON *obj, const server_voice *voice, const char *instructions, cosy_session_params *p,
                             const char **param, char *msg, size_t msg_size)
{
    /* the mode: asked for, or what the voice and the request imply */
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(obj, "mode");
    if (mode && !cJSON_IsNull(mode)) {
        const char *m = cJSON_GetStringValue(mode);
        if (m && (!strcmp(m, "zero-shot") || !strcmp(m, "zero_shot"))) p->mode = COSY_MODE_ZERO_SHOT;
        else if (m && (!strcmp(m, "cross-lingual") || !strcmp(m, "cross_lingual"))) p->mode = COSY_MODE_CROSS_LINGUAL;
        else if (m && !strcmp(m, "instruct")) p->mode = COSY_MODE_INSTRUCT;
        else if (m && !strcmp(m, "sft")) p->mode = COSY_MODE_SFT;
        else {
            *param = "mode";
            snprintf(msg, msg_size, "mode must be zero-shot, cross-lingual, instruct or sft");
            return -1;
        }
    } else if (instructions) p->mode = COSY_MODE_INSTRUCT;
    else if (voice->builtin) p->mode = COSY_MODE_SFT;
    else p->mode = voice->has_prompt ? COSY_MODE_ZERO_SHOT : COSY_MODE_CROSS_LINGUAL;
    if (p->mode == COSY_MODE_INSTRUCT && !instructions) {
        *param = "instructions";
        snprintf(msg, msg_size, "instruct mode needs instructions (how to speak, e.g. \"Speak slowly and softly.\")");
        return -1;
    }
    if (p->mode == COSY_MODE_SFT && !voice->builtin) {
        *param = "mode";
        snprintf(msg, msg_size, "sft mode needs a built-in speaker; voice '%s' is made from a recording", voice->id);
        return -1;
    }
    if (p->mode == COSY_MODE_ZERO_SHOT && !voice->has_prompt) {
        *param = "mode";
        snprintf(msg, msg_size, "zero-shot needs a voice with a prompt transcript and speech; '%s' has none (use cross-lingual)", voice->id);
        return -1;
    }
    p->instruct = p->mode == COSY_MODE_INSTRUCT ? instructions : NULL;

    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(obj, "stream");
    if (stream && !cJSON_IsNull(stream)) {
        if (!cJSON_IsBool(stream)) {
            *param = "stream";
            snprintf(msg, msg_size, "stream must be true or false");
            return -1;
        }
        p->stream = cJSON_IsTrue(stream);
    }
    const cJSON *strategy = cJSON_GetObjectItemCaseSensitive(obj, "strategy");
    if (strategy && !cJSON_IsNull(strategy)) {
        const char *s = cJSON_GetStringValue(strategy);
        if (s && !strcmp(s, "default")) p->strategy = COSY_CHUNK_DEFAULT;
        else if (s && !strcmp(s, "equal")) p->strategy = COSY_CHUNK_EQUAL;
        else if (s && !strcmp(s, "exponential")) p->strategy = COSY_CHUNK_EXPONENTIAL;
        else {
            *param = "strategy";
            snprintf(msg, msg_size, "strategy must be default, equal or exponential");
            return -1;
        }
    }
    long long v;
    int k;
    if ((k = get_int(obj, "chunk_tokens", 1, 10000, &v, param, msg, msg_size)) < 0) return -1;
    if (k) p->chunk_tokens = (int)v;
    if ((k = get_int(obj, "overlap_tokens", 0, 1000, &v, param, msg, msg_size)) < 0) return -1;
    if (k) p->overlap_tokens = (int)v;
    if ((k = get_int(obj, "first_chunk", 0, 10000, &v, param, msg, msg_size)) < 0) return -1;
    if (k) p->first_chunk_tokens = (int)v;
    if ((k = get_int(obj, "max_speech_tokens", 0, 1000000, &v, param, msg, msg_size)) < 0) return -1;
    if (k) p->max_speech_tokens = (int)v;
    if ((k = get_int(obj, "seed", 0, 9007199254740991LL, &v, param, msg, msg_size)) < 0) return -1;
    if (k) p->seed = (uint64_t)v;
    return 0;
}

/* ---- the response ---- */

typedef struct {
    http_req *r;
    int sse;
    byte_buf bytes;       /* encoded bytes of the current chunk */
    int headers_sent, failed;
    int chunks;
    double first_byte_ms;
} speech_out;

/* Sends what the encoder produced as one HTTP chunk or one SSE event. 0 ok, -1 the client is gone. */
static int flush_out(speech_out *o)
{
    if (o->failed) return -1;
    if (!o->bytes.n) return 0;
    int ok;
    if (o->sse) {
        size_t b64n;
        char *b64 = base64_encode(o->bytes.data, o->bytes.n, &b64n);
        if (!b64) return o->failed = 1, -1;
        size_t m = b64n + 80;
        char *ev = malloc(m);
        if (!ev) {
            free(b64);
            return o->failed = 1, -1;
        }
        int len = snprintf(ev, m, "data: {\"type\":\"speech.audio.delta\",\"audio\":\"%s\"}\n\n", b64);
        ok = mg_send_chunk(o->r->conn, ev, (unsigned)len) > 0;
        free(ev);
        free(b64);
    } else ok = mg_send_chunk(o->r->conn, o->bytes.data, (unsigned)o->bytes.n) > 0;
    o->bytes.n = 0;
    o->chunks++;
    if (!ok) o->failed = 1;
    return ok ? 0 : -1;
}

static void send_headers(speech_out *o, const char *mime, const char *voice, cosy_mode mode)
{
    static const char *const mode_names[] = {"zero-shot", "cross-lingual", "instruct", "sft"};
    mg_printf(o->r->conn,
              "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n"
              "X-Cosy-Voice: %s\r\nX-Cosy-Mode: %s\r\nX-Accel-Buffering: no\r\n\r\n",
              o->sse ? "text/event-stream" : mime, voice, mode_names[mode]);
    o->headers_sent = 1;
    o->r->status = 200;
}

cJSON *timings_json(const cosy_timings *t)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "frontend_ms", t->frontend_ms);
    cJSON_AddNumberToObject(o, "lm_prefill_ms", t->lm_prefill_ms);
    cJSON_AddNumberToObject(o, "lm_decode_ms", t->lm_decode_ms);
    cJSON_AddNumberToObject(o, "flow_ms", t->flow_ms);
    cJSON_AddNumberToObject(o, "vocoder_ms", t->vocoder_ms);
    cJSON_AddNumberToObject(o, "first_audio_ms", t->first_audio_ms);
    cJSON_AddNumberToObject(o, "total_ms", t->total_ms);
    cJSON_AddNumberToObject(o, "audio_seconds", t->audio_seconds);
    cJSON_AddNumberToObject(o, "rtf", t->rtf);
    cJSON_AddNumberToObject(o, "chunks", t->chunks);
    return o;
}

void log_timings(const cosy_server *srv, const char *route, const char *voice, const cosy_timings *t, cosy_status st)
{
    if (srv->p.quiet) return;
    fprintf(stderr,
            "cosy serve: %s voice=%s %s audio=%.2fs first_audio=%.0fms total=%.0fms rtf=%.2f | frontend %.0f prefill %.0f "
            "decode %.0f flow %.0f vocoder %.0f ms | %d text, %d speech tokens, %d chunks\n",
            route, voice, st == COSY_OK ? "ok" : st == COSY_ERR_CANCELLED ? "cancelled" : "failed", t->audio_seconds,
            t->first_audio_ms, t->total_ms, t->rtf, t->frontend_ms, t->lm_prefill_ms, t->lm_decode_ms, t->flow_ms,
            t->vocoder_ms, t->text_tokens, t->speech_tokens, t->chunks);
}

int route_speech(http_req *r)
{
    cosy_server *srv = r->srv;
    size_t n;
    char *body = http_read_body(r, (size_t)srv->p.max_body_bytes, &n);
    if (!body) return 1;
    size_t bad;
    if (cosy_utf8_check(body, n, &bad) != COSY_OK) {
        free(body);
        return http_error(r, 400, NULL, "the request body is not valid UTF-8 (byte %zu)", bad);
    }
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(body, n, &end, 0);
    if (!req || !cJSON_IsObject(req)) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        cJSON_Delete(req);
        free(body);
        return http_error(r, 400, NULL, "the request body is not a JSON object (malformed near byte %zu)", at);
    }
    free(body);
    int done = 0;
    char msg[512];
    const char *param = NULL;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(req, "input");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    const cJSON *voice_j = cJSON_GetObjectItemCaseSensitive(req, "voice");
    const cJSON *instr = cJSON_GetObjectItemCaseSensitive(req, "instructions");
    const cJSON *format_j = cJSON_GetObjectItemCaseSensitive(req, "response_format");
    const cJSON *speed = cJSON_GetObjectItemCaseSensitive(req, "speed");
    const cJSON *sfmt = cJSON_GetObjectItemCaseSensitive(req, "stream_format");
    const char *text = cJSON_GetStringValue(input);
    const char *voice_id = cJSON_IsObject(voice_j) ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(voice_j, "id"))
                                                   : cJSON_GetStringValue(voice_j);
    const char *instructions = instr && !cJSON_IsNull(instr) ? cJSON_GetStringValue(instr) : NULL;
    if (instructions && !instructions[0]) instructions = NULL;
    cosy_audio_format format = COSY_AUDIO_MP3;
    const server_voice *voice = NULL;
    size_t chars = text ? cosy_utf8_length(text, strlen(text)) : 0;
    if (!text) done = http_error(r, 400, "input", "input (the text to speak) is required and must be a string");
    else if (chars == 0) done = http_error(r, 400, "input", "input is empty");
    else if (chars > (size_t)srv->p.max_input_chars)
        done = http_error(r, 400, "input", "input is %zu characters; the limit is %d (--max-input-chars)", chars, srv->p.max_input_chars);
    else if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) done = http_error(r, 400, "model", "model must be a string");
    else if (instr && !cJSON_IsNull(instr) && !cJSON_IsString(instr)) done = http_error(r, 400, "instructions", "instructions must be a string");
    else if (instructions && cosy_utf8_length(instructions, strlen(instructions)) > (size_t)srv->p.max_input_chars)
        done = http_error(r, 400, "instructions", "instructions are longer than the limit of %d characters", srv->p.max_input_chars);
    else if (!voice_id) done = http_error(r, 400, "voice", "voice is required: a voice id from GET /v1/voices");
    else if (!(voice = voices_find(srv, voice_id))) done = http_error(r, 400, "voice", "unknown voice '%.64s' (GET /v1/voices lists them)", voice_id);
    if (!done && model && cJSON_IsString(model)) {
        int known = 0;
        for (int i = 0; model_names[i]; i++) known |= !strcmp(model->valuestring, model_names[i]);
        if (!known) done = http_error(r, 400, "model", "model '%.64s' is not served here (cosyvoice2; tts-1, tts-1-hd and gpt-4o-mini-tts are aliases)", model->valuestring);
    }
    if (!done && format_j && !cJSON_IsNull(format_j)) {
        const char *f = cJSON_GetStringValue(format_j);
        if (!f || cosy_audio_format_from_name(f, &format))
            done = http_error(r, 400, "response_format", "response_format '%.32s' is not supported (pcm, wav, mp3, opus or flac)", f ? f : "?");
    }
    if (!done && speed && !cJSON_IsNull(speed) && (!cJSON_IsNumber(speed) || speed->valuedouble != 1.0))
        done = http_error(r, 400, "speed", "speed %g is not supported: only 1.0 (CosyVoice2 changes speed by stretching the mel, which is not implemented)",
                          cJSON_IsNumber(speed) ? speed->valuedouble : 0.0);
    int sse = 0;
    if (!done && sfmt && !cJSON_IsNull(sfmt)) {
        const char *f = cJSON_GetStringValue(sfmt);
        if (f && !strcmp(f, "sse")) sse = 1;
        else if (!f || strcmp(f, "audio")) done = http_error(r, 400, "stream_format", "stream_format must be audio or sse");
    }
    cosy_session_params sp = cosy_session_default_params();
    sp.stream = 1;
    if (!done && speech_options_from_json(req, voice, instructions, &sp, &param, msg, sizeof msg))
        done = http_error(r, 400, param, "%s", msg);
    if (done) {
        cJSON_Delete(req);
        return 1;
    }

    int slot = server_acquire(srv);
    if (slot < 0) {
        if (slot == -1) {
            pthread_mutex_lock(&srv->metrics.mu);
            srv->metrics.rejected_busy++;
            pthread_mutex_unlock(&srv->metrics.mu);
        }
        cJSON_Delete(req);
        return http_error(r, 503, NULL, slot == -1 ? "the server is busy (%d sessions running, %d waiting): retry shortly" : "the server is stopping",
                          srv->p.max_sessions, srv->p.max_queue);
    }
    cosy_session *s = NULL;
    cosy_encoder *enc = NULL;
    speech_out out = {.r = r, .sse = sse};
    cosy_status st = cosy_session_create(srv->model, voice->voice, &sp, &s);
    if (st == COSY_OK) {
        server_set_running(srv, slot, s);
        st = cosy_session_push_text(s, text, strlen(text));
    }
    if (st == COSY_OK) st = cosy_session_end_text(s);
    if (st == COSY_OK) st = cosy_encoder_create(format, cosy_model_sample_rate(srv->model), byte_buf_sink, &out.bytes, &enc);
    float *pcm = malloc(sizeof(float) * 48000);
    if (st == COSY_OK && !pcm) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    int got = 0;
    int64_t samples = 0;
    while (st == COSY_OK) {
        st = cosy_session_read(s, pcm, 48000, &got);
        if (st != COSY_OK || got == 0) break;
        if (!out.headers_sent) send_headers(&out, cosy_audio_format_mime(format), voice->id, sp.mode);
        samples += got;
        st = cosy_encoder_write(enc, pcm, got);
        if (st == COSY_OK && flush_out(&out)) {
            /* the client is gone: stop the synthesis now */
            cosy_session_cancel(s);
            metrics_disconnect(&srv->metrics);
            st = COSY_ERR_CANCELLED;
        }
    }
    if (st == COSY_OK && !out.headers_sent) send_headers(&out, cosy_audio_format_mime(format), voice->id, sp.mode);
    if (st == COSY_OK) st = cosy_encoder_finish(enc);
    if (st == COSY_OK && flush_out(&out)) st = COSY_ERR_CANCELLED;
    cosy_timings t;
    memset(&t, 0, sizeof t);
    if (s) {
        cosy_status wst = cosy_session_wait(s);
        if (st == COSY_OK) st = wst;
        cosy_session_timings(s, &t);
    }
    if (!out.headers_sent) {
        http_error(r, http_status_of(st), st == COSY_ERR_INVALID_ARG ? "input" : NULL, "%s", cosy_last_error()[0] ? cosy_last_error() : cosy_strerror(st));
    } else if (!out.failed) {
        if (st == COSY_OK && sse) {
            cJSON *done_ev = cJSON_CreateObject();
            cJSON_AddStringToObject(done_ev, "type", "speech.audio.done");
            cJSON *usage = cJSON_AddObjectToObject(done_ev, "usage");
            cJSON_AddNumberToObject(usage, "input_tokens", t.text_tokens);
            cJSON_AddNumberToObject(usage, "output_tokens", t.speech_tokens);
            cJSON_AddNumberToObject(usage, "total_tokens", t.text_tokens + t.speech_tokens);
            cJSON_AddItemToObject(done_ev, "timings", timings_json(&t));
            char *js = cJSON_PrintUnformatted(done_ev);
            cJSON_Delete(done_ev);
            if (js) mg_printf(r->conn, "%x\r\ndata: %s\n\n\r\n", (unsigned)(strlen(js) + 8), js);
            free(js);
        } else if (st != COSY_OK && sse) {
            char ev[1200];
            cJSON *e = cJSON_CreateObject(), *inner = cJSON_AddObjectToObject(e, "error");
            cJSON_AddStringToObject(e, "type", "error");
            cJSON_AddStringToObject(inner, "message", cosy_last_error());
            char *js = cJSON_PrintUnformatted(e);
            cJSON_Delete(e);
            int len = snprintf(ev, sizeof ev, "data: %s\n\n", js ? js : "{}");
            free(js);
            if (len > 0 && (size_t)len < sizeof ev) mg_send_chunk(r->conn, ev, (unsigned)len);
        }
        /* a stream that failed midway ends without its last chunk and the connection closes, so the
         * client sees it incomplete rather than as a shorter, complete answer */
        if (st == COSY_OK || sse) mg_send_chunk(r->conn, "", 0);
        else server_close_after(r->conn);
    }
    if (s) {
        if (st == COSY_OK) metrics_timings(&srv->metrics, &t);
        pthread_mutex_lock(&srv->metrics.mu);
        srv->metrics.audio_samples += (uint64_t)samples;
        pthread_mutex_unlock(&srv->metrics.mu);
        log_timings(srv, "speech", voice->id, &t, st);
        server_set_running(srv, slot, NULL);
        cosy_session_free(s);
    }
    server_release(srv, slot);
    cosy_encoder_free(enc);
    free(pcm);
    free(out.bytes.data);
    cJSON_Delete(req);
    return 1;
}
