/*
 * bench_serve.c — `cosy bench serve`: a closed-loop load-testing client for `cosy serve`, with the
 * figures of CosyVoice's runtime/triton_trtllm/client_grpc.py (first-chunk, second-chunk and total
 * latency: average, p50, p90, p95, p99; overall RTF) plus inter-chunk gaps, playback underruns and
 * errors by kind.
 *
 * N client threads each send a request, read its audio to the end, and send the next, until M
 * requests are done (after --warmup requests that are not counted). HTTP: POST /v1/audio/speech
 * (streamed, chunked transfer); --ws: the WebSocket stream-input route, the text sent word by word.
 *
 * Definitions (the README's "Load testing" paragraph repeats them):
 *   - every request opens a fresh connection; its clock starts before connect();
 *   - a "chunk" is one HTTP chunk of the response (the server sends one per audio chunk it makes),
 *     timed by the network read that brings its first byte (TCP splits a chunk over several reads or
 *     merges two into one; counting reads would make the "second chunk" the rest of the first one);
 *     without chunked transfer, a read with body bytes; for --ws, one binary audio message. So
 *     first-chunk latency is exactly the time to the first audio byte;
 *   - audio seconds are measured for pcm (s16le, 24 kHz mono: bytes / 2) and wav (less its 44-byte
 *     header); for mp3, opus and flac they are unknown, and so are RTF, throughput and underruns;
 *   - playback model: playing starts when the first audio arrives; audio (counted per read, so
 *     byte-exact) that arrives after the audio before it has finished playing is an underrun, the
 *     player stalls until it arrives and the playback clock moves on from there (stall time = the
 *     sum of those waits; one late arrival is one event, not one per chunk after it);
 *   - RTF = the requests' wall times summed / their audio seconds summed; throughput = audio seconds
 *     produced per second of the measured run's wall time.
 *
 * The client is on plain POSIX sockets rather than civetweb's client API: civetweb 1.15's mg_read
 * de-chunks a chunked response, but it fills the whole buffer before it returns (pull_all), so the
 * arrival of each piece of audio cannot be seen, and its client calls take no per-request deadline.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "core/clock.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int bench_serve(int argc, char **argv);

#define SAMPLE_RATE 24000
#define WAV_HEADER 44
#define MAX_HEADER_BYTES 16384
#define MAX_ERROR_BODY 2048

static const char *const format_names[] = {"pcm", "wav", "mp3", "opus", "flac"};
enum { FMT_PCM, FMT_WAV, FMT_MP3, FMT_OPUS, FMT_FLAC };
static const char *const strategy_names[] = {"default", "equal", "exponential"};

static const char default_text[] = "Hello, and thank you for calling. This is a short test of streaming speech synthesis, "
                                   "measured from the client's side of the connection.";

typedef struct {
    char host[256];     /* as given, without brackets */
    char port[8];
    char host_header[300];
    char url[320];      /* normalised, for the report */
    struct addrinfo *ai;
} target;

typedef struct {
    target t;
    int ws, format, strategy, json;
    long long chunk, first_chunk, seed, ws_interval_ms;
    double timeout_ms;
    const char *voice, *api_key;
    char **texts;
    int n_texts;
    char *texts_storage;
} config;

typedef struct {
    int ok;
    char err[24];       /* error kind: connect, timeout, http_NNN, ws_NNNN, short_audio, protocol */
    char detail[200];
    double first_ms, second_ms, total_ms; /* second_ms < 0: only one chunk */
    double audio_s;     /* < 0: not measurable for this format */
    int64_t bytes;
    int chunks, underruns;
    double stall_ms;
    double *gaps;
    int n_gaps, cap_gaps;
} req_result;

/* ------------------------------------------------------------------ the URL */

static int parse_url(const char *url, target *t, char *msg, size_t msg_size)
{
    memset(t, 0, sizeof *t);
    if (!strncasecmp(url, "https://", 8)) {
        snprintf(msg, msg_size, "--url %s: https is not supported (the client speaks plain HTTP; use http://HOST:PORT/)", url);
        return -1;
    }
    if (strncasecmp(url, "http://", 7)) {
        snprintf(msg, msg_size, "--url %s: expected http://HOST:PORT/", url);
        return -1;
    }
    const char *p = url + 7, *host_end;
    size_t hn;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end) {
            snprintf(msg, msg_size, "--url %s: an IPv6 address needs its closing ']'", url);
            return -1;
        }
        hn = (size_t)(host_end - p - 1);
        memcpy(t->host, p + 1, hn < sizeof t->host ? hn : 0);
        p = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/?#");
        hn = (size_t)(host_end - p);
        if (hn < sizeof t->host) memcpy(t->host, p, hn);
        p = host_end;
    }
    if (hn == 0 || hn >= sizeof t->host) {
        snprintf(msg, msg_size, "--url %s: %s host name", url, hn ? "too long a" : "no");
        return -1;
    }
    t->host[hn] = 0;
    long port = 80;
    if (*p == ':') {
        char *end;
        p++;
        if (*p < '0' || *p > '9') {
            snprintf(msg, msg_size, "--url %s: the port must be a number in 1..65535", url);
            return -1;
        }
        port = strtol(p, &end, 10);
        if (port < 1 || port > 65535 || end - p > 5) {
            snprintf(msg, msg_size, "--url %s: the port must be a number in 1..65535", url);
            return -1;
        }
        p = end;
    }
    if (*p && strcmp(p, "/")) {
        snprintf(msg, msg_size, "--url %s: no path, query or user part is taken (the routes are fixed): http://HOST:PORT/", url);
        return -1;
    }
    for (const char *c = t->host; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '@' || *c == '/' || *c == '\\' || *c == '"') {
            snprintf(msg, msg_size, "--url %s: bad character in the host name", url);
            return -1;
        }
    snprintf(t->port, sizeof t->port, "%ld", port);
    int v6 = strchr(t->host, ':') != NULL;
    snprintf(t->host_header, sizeof t->host_header, v6 ? "[%s]:%ld" : "%s:%ld", t->host, port);
    snprintf(t->url, sizeof t->url, "http://%s/", t->host_header);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(t->host, t->port, &hints, &t->ai);
    if (rc) {
        snprintf(msg, msg_size, "--url %s: cannot resolve %s: %s", url, t->host, gai_strerror(rc));
        t->ai = NULL;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ sockets with a deadline */

static void set_err(req_result *r, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(req_result *r, const char *kind, const char *fmt, ...)
{
    if (r->err[0]) return; /* the first error is the one that counts */
    snprintf(r->err, sizeof r->err, "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
}

/* poll timeout in ms until the deadline (0 when past it) */
static int ms_left(double deadline)
{
    double left = deadline - cosy_now_ms();
    return left <= 0 ? 0 : left > 1e9 ? 1000000000 : (int)ceil(left);
}

static int tcp_connect(const target *t, double deadline, req_result *r)
{
    int last_errno = 0;
    for (const struct addrinfo *a = t->ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
        if (errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int k;
            do k = poll(&pfd, 1, ms_left(deadline));
            while (k < 0 && errno == EINTR);
            if (k == 0) {
                close(fd);
                set_err(r, "timeout", "no connection to %s within the timeout", t->host_header);
                return -1;
            }
            int soerr = 0;
            socklen_t len = sizeof soerr;
            if (k > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) return fd;
            last_errno = soerr ? soerr : errno;
        } else last_errno = errno;
        close(fd);
    }
    set_err(r, "connect", "cannot connect to %s: %s", t->host_header, strerror(last_errno));
    return -1;
}

static int send_all(int fd, const void *data, size_t n, double deadline, req_result *r)
{
    const char *p = data;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k, n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int q = poll(&pfd, 1, ms_left(deadline));
            if (q == 0) {
                set_err(r, "timeout", "sending the request took longer than the timeout");
                return -1;
            }
            continue;
        }
        set_err(r, "short_audio", "the connection closed while sending: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* > 0 bytes read, 0 end of stream, -1 error (r->err set), -2 timeout (r->err set) */
static ssize_t recv_some(int fd, char *buf, size_t cap, double deadline, req_result *r)
{
    for (;;) {
        ssize_t k = recv(fd, buf, cap, 0);
        if (k >= 0) return k;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            set_err(r, "short_audio", "the connection broke: %s", strerror(errno));
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int q = poll(&pfd, 1, ms_left(deadline));
        if (q == 0) {
            set_err(r, "timeout", "no answer within the timeout");
            return -2;
        }
    }
}

/* ------------------------------------------------------------------ chunk bookkeeping */

typedef struct {
    const config *c;
    req_result *r;
    double t0, play_end, prev;
    int header_left; /* wav: header bytes not yet seen */
    int playing;
} chunk_clock;

static void add_gap(req_result *r, double g)
{
    if (r->n_gaps == r->cap_gaps) {
        int ncap = r->cap_gaps ? r->cap_gaps * 2 : 32;
        double *ng = realloc(r->gaps, sizeof *ng * (size_t)ncap);
        if (!ng) return;
        r->gaps = ng, r->cap_gaps = ncap;
    }
    r->gaps[r->n_gaps++] = g;
}

/* a chunk began to arrive at `now` */
static void on_chunk(chunk_clock *k, double now)
{
    req_result *r = k->r;
    if (r->chunks == 0) r->first_ms = now - k->t0;
    else {
        if (r->chunks == 1) r->second_ms = now - k->t0;
        add_gap(r, now - k->prev);
    }
    k->prev = now;
    r->chunks++;
}

/* n audio bytes arrived at `now`: the playback model, byte-exact (any audio that arrives after the
 * player needed it is an underrun; the player then waits for it and goes on from there) */
static void on_bytes(chunk_clock *k, size_t n, double now)
{
    req_result *r = k->r;
    if (!n) return;
    int measurable = k->c->format == FMT_PCM || k->c->format == FMT_WAV;
    size_t audio = n;
    if (k->header_left) {
        size_t h = n < (size_t)k->header_left ? n : (size_t)k->header_left;
        k->header_left -= (int)h;
        audio -= h;
    }
    int64_t before = r->bytes;
    r->bytes += (int64_t)audio;
    double d = measurable ? (double)(r->bytes / 2 - before / 2) / SAMPLE_RATE * 1e3 : 0;
    if (!k->playing) {
        k->playing = 1;
        k->play_end = now + d;
    } else if (measurable && now > k->play_end) {
        r->underruns++;
        r->stall_ms += now - k->play_end;
        k->play_end = now + d;
    } else k->play_end += d;
}

static void finish_ok(chunk_clock *k, double now)
{
    req_result *r = k->r;
    r->total_ms = now - k->t0;
    int measurable = k->c->format == FMT_PCM || k->c->format == FMT_WAV;
    r->audio_s = measurable ? (double)(r->bytes / 2) / SAMPLE_RATE : -1;
    if (r->chunks == 0 || (measurable && r->bytes < 2)) set_err(r, "short_audio", "the answer carried no audio");
    else if (!r->err[0]) r->ok = 1;
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    int chunked;
    int64_t left;      /* content-length bytes left (-1 until EOF), or bytes of the current chunk */
    int state;         /* chunked: 0 size line, 1 data, 2 CRLF after data, 3 trailer, 4 done */
    char line[64];
    int line_n;
    int chunk_pending; /* a chunk's size line was read, none of its data yet */
    int chunks_started; /* chunks of which data has been delivered */
} body_decoder;

/* Decodes body bytes in place; returns the payload length now in p[0..), or -1 on a malformed
 * chunked stream. dec->state == 4 once the body is complete. */
static long dechunk(body_decoder *d, char *p, size_t n)
{
    size_t in = 0, out = 0;
    if (!d->chunked) {
        if (d->left >= 0 && (int64_t)n > d->left) n = (size_t)d->left;
        if (d->left >= 0) {
            d->left -= (int64_t)n;
            if (d->left == 0) d->state = 4;
        }
        return (long)n;
    }
    while (in < n && d->state != 4) {
        char ch = p[in];
        switch (d->state) {
        case 0:
        case 3:
            in++;
            if (ch == '\n') {
                d->line[d->line_n] = 0;
                if (d->line_n && d->line[d->line_n - 1] == '\r') d->line[--d->line_n] = 0;
                if (d->state == 3) {
                    if (d->line_n == 0) d->state = 4; /* the empty line after the trailer */
                    d->line_n = 0;
                    break;
                }
                char *end;
                unsigned long long size = strtoull(d->line, &end, 16);
                if (end == d->line || (*end && *end != ';') || size > (1ull << 40)) return -1;
                d->line_n = 0;
                d->left = (int64_t)size;
                d->state = size ? 1 : 3;
                d->chunk_pending = size > 0;
            } else if (d->line_n < (int)sizeof d->line - 1) d->line[d->line_n++] = ch;
            else if (d->state == 0) return -1;
            break;
        case 1: {
            size_t take = n - in;
            if ((int64_t)take > d->left) take = (size_t)d->left;
            if (take && d->chunk_pending) d->chunk_pending = 0, d->chunks_started++;
            memmove(p + out, p + in, take);
            out += take, in += take;
            d->left -= (int64_t)take;
            if (d->left == 0) d->state = 2, d->line_n = 0;
            break;
        }
        case 2:
            in++;
            if (ch == '\n') d->state = 0, d->line_n = 0;
            else if (ch != '\r' || d->line_n++ > 0) return -1;
            break;
        }
    }
    return (long)out;
}

static const char *find_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
        l += 2;
        if (!strncasecmp(l, name, n) && l[n] == ':') {
            l += n + 1;
            while (*l == ' ' || *l == '\t') l++;
            return l;
        }
    }
    return NULL;
}

/* The "message" of an OpenAI-style error body, or the body's start. */
static void error_message(const char *body, char *out, size_t size)
{
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e ? e : j, "message"));
    snprintf(out, size, "%s", m ? m : body);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    cJSON_Delete(j);
}

/*
 * One HTTP exchange on a fresh connection. With `clock`, every read with body bytes of a 200 answer
 * is an audio chunk; otherwise (or for another status) up to `keep` body bytes are kept in *body.
 * Returns the status (0 on a transport error, r->err set).
 */
static int http_exchange(const config *c, const char *method, const char *path, const char *payload, double t0, chunk_clock *clock,
                         req_result *r, char **body)
{
    double deadline = t0 + c->timeout_ms;
    int fd = tcp_connect(&c->t, deadline, r);
    if (fd < 0) return 0;
    char auth[600] = "";
    if (c->api_key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", c->api_key);
    size_t plen = payload ? strlen(payload) : 0;
    char head[1200];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cosy-bench\r\nAccept: */*\r\nConnection: close\r\n%s",
                      method, path, c->t.host_header, auth);
    if (payload)
        hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Type: application/json\r\nContent-Length: %zu\r\n", plen);
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\r\n");
    int status = 0, in_body = 0;
    body_decoder dec = {0};
    char *buf = malloc(65536 + 1);
    char *hdr = malloc(MAX_HEADER_BYTES + 1);
    char *keep = NULL;
    size_t keep_n = 0, hdr_n = 0;
    if (!buf || !hdr) {
        set_err(r, "protocol", "out of memory");
        goto done;
    }
    if (send_all(fd, head, (size_t)hn, deadline, r) || (payload && send_all(fd, payload, plen, deadline, r))) goto done;
    for (;;) {
        ssize_t k = recv_some(fd, buf, 65536, deadline, r);
        double now = cosy_now_ms();
        if (k < 0) goto done;
        if (k == 0) {
            if (!in_body) set_err(r, "protocol", "the connection closed before a complete response header");
            else if (!dec.chunked && dec.left < 0) dec.state = 4; /* the body ends with the connection */
            else set_err(r, "short_audio", "the response ended early (the stream broke off)");
            break;
        }
        char *p = buf;
        size_t n = (size_t)k;
        if (!in_body) {
            size_t take = n < MAX_HEADER_BYTES - hdr_n ? n : MAX_HEADER_BYTES - hdr_n;
            memcpy(hdr + hdr_n, buf, take);
            size_t scan_from = hdr_n > 3 ? hdr_n - 3 : 0;
            hdr_n += take;
            hdr[hdr_n] = 0;
            char *end = strstr(hdr + scan_from, "\r\n\r\n");
            if (!end) {
                if (hdr_n == MAX_HEADER_BYTES) {
                    set_err(r, "protocol", "a response header longer than %d bytes", MAX_HEADER_BYTES);
                    goto done;
                }
                continue;
            }
            size_t head_len = (size_t)(end - hdr) + 4;
            end[2] = 0;
            if (sscanf(hdr, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 999) {
                status = 0;
                set_err(r, "protocol", "not an HTTP response");
                goto done;
            }
            const char *te = find_header(hdr, "Transfer-Encoding"), *cl = find_header(hdr, "Content-Length");
            dec.chunked = te && !strncasecmp(te, "chunked", 7);
            dec.left = !dec.chunked && cl ? strtoll(cl, NULL, 10) : -1;
            if (!dec.chunked && dec.left == 0) dec.state = 4;
            in_body = 1;
            /* the body bytes that came with the header */
            size_t consumed = head_len - (hdr_n - take);
            p = buf + consumed;
            n -= consumed;
        }
        int started = dec.chunks_started;
        long payload_n = dechunk(&dec, p, n);
        if (payload_n < 0) {
            set_err(r, "protocol", "a malformed chunked response");
            goto done;
        }
        if (status == 200 && clock) {
            /* a chunk: an HTTP chunk (the server sends one per audio chunk it makes), timed by the read
             * that brought its first byte; without chunked transfer, a read with body bytes */
            int new_chunks = dec.chunked ? dec.chunks_started - started : payload_n > 0;
            for (int i = 0; i < new_chunks; i++) on_chunk(clock, now);
            on_bytes(clock, (size_t)payload_n, now);
        }
        else if (keep_n < MAX_ERROR_BODY && payload_n > 0) {
            size_t take = (size_t)payload_n < MAX_ERROR_BODY - keep_n ? (size_t)payload_n : MAX_ERROR_BODY - keep_n;
            char *nk = realloc(keep, keep_n + take + 1);
            if (nk) {
                keep = nk;
                memcpy(keep + keep_n, p, take);
                keep_n += take;
                keep[keep_n] = 0;
            }
        }
        if (dec.state == 4) break;
    }
    if (!r->err[0] && status == 200 && clock) finish_ok(clock, cosy_now_ms());
    if (!r->err[0] && status != 200) {
        char msg[180];
        error_message(keep ? keep : "", msg, sizeof msg);
        char kind[16];
        snprintf(kind, sizeof kind, "http_%d", status);
        set_err(r, kind, "%s", msg);
    }
done:
    close(fd);
    free(buf);
    free(hdr);
    if (body && !r->err[0]) *body = keep ? keep : strdup("");
    else free(keep);
    return status;
}

static char *speech_body(const config *c, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", "cosyvoice2");
    cJSON_AddStringToObject(o, "input", text);
    cJSON_AddStringToObject(o, "voice", c->voice);
    cJSON_AddStringToObject(o, "response_format", format_names[c->format]);
    if (c->strategy >= 0) cJSON_AddStringToObject(o, "strategy", strategy_names[c->strategy]);
    if (c->chunk >= 0) cJSON_AddNumberToObject(o, "chunk_tokens", (double)c->chunk);
    if (c->first_chunk >= 0) cJSON_AddNumberToObject(o, "first_chunk", (double)c->first_chunk);
    if (c->seed >= 0) cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void run_http(const config *c, const char *text, req_result *r)
{
    double t0 = cosy_now_ms();
    chunk_clock k = {.c = c, .r = r, .t0 = t0, .header_left = c->format == FMT_WAV ? WAV_HEADER : 0};
    char *body = speech_body(c, text);
    if (!body) {
        set_err(r, "protocol", "out of memory");
        return;
    }
    http_exchange(c, "POST", "/v1/audio/speech", body, t0, &k, r, NULL);
    free(body);
}

/* ------------------------------------------------------------------ WebSocket */

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static uint32_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}

/* one masked client frame */
static int ws_send_frame(int fd, int opcode, const char *data, size_t n, uint64_t *rng, double deadline, req_result *r)
{
    unsigned char h[14];
    size_t hn = 0;
    h[hn++] = (unsigned char)(0x80 | opcode);
    if (n < 126) h[hn++] = (unsigned char)(0x80 | n);
    else if (n < 65536) {
        h[hn++] = 0x80 | 126;
        h[hn++] = (unsigned char)(n >> 8), h[hn++] = (unsigned char)n;
    } else {
        h[hn++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) h[hn++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    uint32_t m = next_rand(rng);
    unsigned char mask[4] = {(unsigned char)(m >> 24), (unsigned char)(m >> 16), (unsigned char)(m >> 8), (unsigned char)m};
    memcpy(h + hn, mask, 4);
    hn += 4;
    char *frame = malloc(hn + n);
    if (!frame) {
        set_err(r, "protocol", "out of memory");
        return -1;
    }
    memcpy(frame, h, hn);
    for (size_t i = 0; i < n; i++) frame[hn + i] = (char)(data[i] ^ mask[i & 3]);
    int rc = send_all(fd, frame, hn + n, deadline, r);
    free(frame);
    return rc;
}

/* the messages of one utterance: settings, the words, the end */
static char **ws_messages(const config *c, const char *text, int *count)
{
    int words = 0;
    for (const char *p = text; *p;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        words++;
        while (*p && *p != ' ' && *p != '\t') p++;
    }
    char **m = calloc((size_t)words + 2, sizeof *m);
    if (!m) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", " ");
    if (c->strategy >= 0) cJSON_AddStringToObject(o, "strategy", strategy_names[c->strategy]);
    if (c->chunk >= 0) cJSON_AddNumberToObject(o, "chunk_tokens", (double)c->chunk);
    if (c->first_chunk >= 0) cJSON_AddNumberToObject(o, "first_chunk", (double)c->first_chunk);
    if (c->seed >= 0) cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    m[0] = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int k = 1, ok = m[0] != NULL;
    for (const char *p = text; ok && *p;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        const char *w = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        char *piece = malloc((size_t)(p - w) + 2);
        if (!piece) {
            ok = 0;
            break;
        }
        memcpy(piece, w, (size_t)(p - w));
        piece[p - w] = ' ', piece[p - w + 1] = 0;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", piece);
        free(piece);
        ok = (m[k++] = cJSON_PrintUnformatted(o)) != NULL;
        cJSON_Delete(o);
    }
    if (ok) ok = (m[k++] = strdup("{\"text\":\"\"}")) != NULL;
    if (!ok) {
        for (int i = 0; i < words + 2; i++) free(m[i]);
        free(m);
        return NULL;
    }
    *count = k;
    return m;
}

static void url_escape(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s && o + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch)) out[o++] = (char)ch;
        else o += (size_t)snprintf(out + o, size - o, "%%%02X", ch);
    }
    out[o] = 0;
}

static void run_ws(const config *c, const char *text, uint64_t *rng, req_result *r)
{
    double t0 = cosy_now_ms(), deadline = t0 + c->timeout_ms;
    chunk_clock k = {.c = c, .r = r, .t0 = t0, .header_left = c->format == FMT_WAV ? WAV_HEADER : 0};
    int n_msgs = 0;
    char **msgs = ws_messages(c, text, &n_msgs);
    char *buf = malloc(65536);
    char *fr = NULL; /* frame bytes not yet parsed */
    size_t fr_n = 0, fr_cap = 0;
    int fd = -1;
    if (!msgs || !buf) {
        set_err(r, "protocol", "out of memory");
        goto out;
    }
    fd = tcp_connect(&c->t, deadline, r);
    if (fd < 0) goto out;
    unsigned char key_raw[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t v = next_rand(rng);
        memcpy(key_raw + i, &v, 4);
    }
    char key[32], voice[400], auth[600] = "", req[1600];
    base64(key_raw, 16, key);
    url_escape(c->voice, voice, sizeof voice);
    if (c->api_key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", c->api_key);
    int rn = snprintf(req, sizeof req,
                      "GET /v1/text-to-speech/%s/stream-input?output_format=%s_24000&binary=true HTTP/1.1\r\nHost: %s\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                      "User-Agent: cosy-bench\r\n%s\r\n",
                      voice, format_names[c->format], c->t.host_header, key, auth);
    if (send_all(fd, req, (size_t)rn, deadline, r)) goto out;
    /* the handshake answer */
    size_t hn = 0;
    char *end = NULL;
    while (!end) {
        if (hn == 65535) {
            set_err(r, "protocol", "a handshake answer longer than 64 KiB");
            goto out;
        }
        ssize_t got = recv_some(fd, buf + hn, 65535 - hn, deadline, r);
        if (got < 0) goto out;
        if (got == 0) {
            set_err(r, "protocol", "the connection closed during the WebSocket handshake");
            goto out;
        }
        hn += (size_t)got;
        buf[hn] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status != 101) {
        char kind[16];
        snprintf(kind, sizeof kind, "http_%d", status);
        set_err(r, status ? kind : "protocol", "the WebSocket handshake was refused (%d)", status);
        goto out;
    }
    size_t rest = hn - (size_t)(end + 4 - buf);
    if (rest) {
        fr_cap = rest > 65536 ? rest : 65536;
        if (!(fr = malloc(fr_cap))) goto oom;
        memcpy(fr, end + 4, rest);
        fr_n = rest;
    }
    int next_msg = 0, final = 0, closed = 0;
    double next_send = cosy_now_ms();
    while (!closed) {
        double now = cosy_now_ms();
        /* parse every complete frame in fr */
        size_t at = 0;
        while (!closed && fr_n - at >= 2) {
            const unsigned char *h = (const unsigned char *)fr + at;
            int opcode = h[0] & 15, masked = h[1] >> 7;
            uint64_t len = h[1] & 127;
            size_t hl = 2;
            if (len == 126) {
                if (fr_n - at < 4) break;
                len = (uint64_t)h[2] << 8 | h[3], hl = 4;
            } else if (len == 127) {
                if (fr_n - at < 10) break;
                len = 0;
                for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
                hl = 10;
            }
            if (masked) hl += 4;
            if (len > (64u << 20)) {
                set_err(r, "protocol", "a WebSocket frame of %llu bytes", (unsigned long long)len);
                goto out;
            }
            if (fr_n - at < hl + len) break;
            char *data = fr + at + hl;
            if (masked)
                for (uint64_t i = 0; i < len; i++) data[i] ^= (char)h[hl - 4 + (i & 3)];
            if ((opcode == 2 || opcode == 0) && len) {
                on_chunk(&k, now);
                on_bytes(&k, (size_t)len, now);
            }
            else if (opcode == 1) {
                cJSON *j = cJSON_ParseWithLength(data, (size_t)len);
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "isFinal")) && !final) {
                    final = 1;
                    finish_ok(&k, now);
                } else if (cJSON_GetObjectItemCaseSensitive(j, "message")) {
                    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
                    char kind[16];
                    snprintf(kind, sizeof kind, "ws_%d", cJSON_IsNumber(code) ? code->valueint : 0);
                    set_err(r, kind, "%.180s", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "message")));
                }
                cJSON_Delete(j);
            } else if (opcode == 8) {
                int code = len >= 2 ? ((unsigned char)data[0] << 8 | (unsigned char)data[1]) : 1005;
                char kind[16];
                snprintf(kind, sizeof kind, "ws_%d", code);
                if (!final) set_err(r, code == 1000 ? "short_audio" : kind, "the server closed the WebSocket (%d) before the end", code);
                ws_send_frame(fd, 8, data, len >= 2 ? 2 : 0, rng, deadline, r);
                closed = 1;
            } else if (opcode == 9) ws_send_frame(fd, 10, data, (size_t)len, rng, deadline, r);
            at += hl + (size_t)len;
        }
        if (at) {
            memmove(fr, fr + at, fr_n - at);
            fr_n -= at;
        }
        if (closed || r->err[0]) break;
        /* the next text piece, when due */
        if (next_msg < n_msgs && cosy_now_ms() >= next_send) {
            if (ws_send_frame(fd, 1, msgs[next_msg], strlen(msgs[next_msg]), rng, deadline, r)) goto out;
            next_msg++;
            /* the settings message goes at once; the pieces --ws-interval apart */
            next_send = cosy_now_ms() + (next_msg > 1 ? (double)c->ws_interval_ms : 0);
            continue;
        }
        double wait_until = deadline;
        if (final) wait_until = fmin(deadline, now + 2000); /* the close frame follows the final message */
        if (next_msg < n_msgs && next_send < wait_until) wait_until = next_send;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int q = poll(&pfd, 1, ms_left(wait_until));
        if (q < 0 && errno == EINTR) continue;
        if (q == 0) {
            if (final) break; /* no close frame: fine, the audio is complete */
            if (cosy_now_ms() >= deadline) {
                set_err(r, "timeout", "the stream did not end within the timeout");
                goto out;
            }
            continue;
        }
        if (fr_n + 65536 > fr_cap) {
            size_t ncap = (fr_n + 65536) * 2;
            char *nf = realloc(fr, ncap);
            if (!nf) goto oom;
            fr = nf, fr_cap = ncap;
        }
        ssize_t got = recv_some(fd, fr + fr_n, fr_cap - fr_n, deadline, r);
        if (got < 0) goto out;
        if (got == 0) {
            if (!final) set_err(r, "short_audio", "the connection closed before the final message");
            break;
        }
        fr_n += (size_t)got;
    }
    if (!final) set_err(r, "short_audio", "the stream ended without its final message");
    goto out;
oom:
    set_err(r, "protocol", "out of memory");
out:
    if (r->err[0]) r->ok = 0;
    if (fd >= 0) close(fd);
    if (msgs)
        for (int i = 0; i < n_msgs; i++) free(msgs[i]);
    free(msgs);
    free(buf);
    free(fr);
}

/* ------------------------------------------------------------------ the run */

typedef struct {
    const config *c;
    req_result *res;
    int count, text_base;
    atomic_int next;
} run_ctx;

static void *worker(void *arg)
{
    run_ctx *x = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng ^ (uint64_t)(cosy_now_ms() * 1e3) ^ 0x9e3779b97f4a7c15ull;
    for (;;) {
        int i = atomic_fetch_add(&x->next, 1);
        if (i >= x->count) break;
        req_result *r = &x->res[i];
        r->second_ms = -1, r->audio_s = -1;
        const char *text = x->c->texts[(x->text_base + i) % x->c->n_texts];
        if (x->c->ws) run_ws(x->c, text, &rng, r);
        else run_http(x->c, text, r);
    }
    return NULL;
}

/* runs `count` requests on min(threads, count) threads; 0 ok, -1 no thread could start */
static int run_phase(const config *c, req_result *res, int count, int threads, int text_base)
{
    if (count <= 0) return 0;
    if (threads > count) threads = count;
    run_ctx x = {.c = c, .res = res, .count = count, .text_base = text_base};
    atomic_init(&x.next, 0);
    pthread_t *tid = malloc(sizeof *tid * (size_t)threads);
    if (!tid) return -1;
    int started = 0;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&tid[started], NULL, worker, &x) == 0) started++;
    if (!started) worker(&x); /* do it on this thread, then */
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    free(tid);
    return 0;
}

/* ------------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy's default (linear) percentile of sorted v */
static double percentile(const double *v, int n, double p)
{
    if (n <= 0) return NAN;
    double pos = p / 100.0 * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * (pos - lo);
}

typedef struct {
    int n;
    double avg, p50, p90, p95, p99, max;
} summary;

static summary summarize(double *v, int n)
{
    summary s = {.n = n, .avg = NAN, .p50 = NAN, .p90 = NAN, .p95 = NAN, .p99 = NAN, .max = NAN};
    if (n <= 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    s.avg = sum / n, s.p50 = percentile(v, n, 50), s.p90 = percentile(v, n, 90), s.p95 = percentile(v, n, 95);
    s.p99 = percentile(v, n, 99), s.max = v[n - 1];
    return s;
}

static void add_num(cJSON *o, const char *name, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, name, round(v * 1000) / 1000);
    else cJSON_AddNullToObject(o, name);
}

static cJSON *summary_json(const summary *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", s->n);
    add_num(o, "avg", s->avg);
    add_num(o, "p50", s->p50);
    add_num(o, "p90", s->p90);
    add_num(o, "p95", s->p95);
    add_num(o, "p99", s->p99);
    add_num(o, "max", s->max);
    return o;
}

static void print_row(const char *name, const summary *s)
{
    if (!s->n) {
        printf("  %-13s %9s   (no samples)\n", name, "-");
        return;
    }
    printf("  %-13s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %6d\n", name, s->avg, s->p50, s->p90, s->p95, s->p99, s->max, s->n);
}

typedef struct {
    char kind[24];
    int count;
    char detail[200];
} error_count;

static int report(const config *c, req_result *res, int n, int warmup, long long concurrency, double wall_ms)
{
    double *first = malloc(sizeof(double) * (size_t)n), *second = malloc(sizeof(double) * (size_t)n),
           *total = malloc(sizeof(double) * (size_t)n);
    int n_gaps = 0;
    for (int i = 0; i < n; i++)
        if (res[i].ok) n_gaps += res[i].n_gaps;
    double *gaps = malloc(sizeof(double) * (size_t)(n_gaps + 1));
    error_count *errs = calloc((size_t)n, sizeof *errs);
    if (!first || !second || !total || !gaps || !errs) {
        free(first), free(second), free(total), free(gaps), free(errs);
        fprintf(stderr, "cosy bench: out of memory\n");
        return 1;
    }
    int ok = 0, n1 = 0, n2 = 0, nt = 0, ng = 0, n_err_kinds = 0, underruns = 0, underrun_reqs = 0, chunks = 0;
    double audio_s = 0, busy_ms = 0, stall_ms = 0, stall_max = 0;
    int measurable = c->format == FMT_PCM || c->format == FMT_WAV;
    for (int i = 0; i < n; i++) {
        req_result *r = &res[i];
        if (!r->ok) {
            int e = 0;
            while (e < n_err_kinds && strcmp(errs[e].kind, r->err)) e++;
            if (e == n_err_kinds) {
                snprintf(errs[e].kind, sizeof errs[e].kind, "%s", r->err[0] ? r->err : "unknown");
                snprintf(errs[e].detail, sizeof errs[e].detail, "%s", r->detail);
                n_err_kinds++;
            }
            errs[e].count++;
            continue;
        }
        ok++;
        first[n1++] = r->first_ms;
        if (r->second_ms >= 0) second[n2++] = r->second_ms;
        total[nt++] = r->total_ms;
        for (int g = 0; g < r->n_gaps; g++) gaps[ng++] = r->gaps[g];
        chunks += r->chunks;
        busy_ms += r->total_ms;
        if (measurable) {
            audio_s += r->audio_s;
            underruns += r->underruns;
            underrun_reqs += r->underruns > 0;
            stall_ms += r->stall_ms;
            if (r->stall_ms > stall_max) stall_max = r->stall_ms;
        }
    }
    summary s1 = summarize(first, n1), s2 = summarize(second, n2), st = summarize(total, nt), sg = summarize(gaps, ng);
    double rtf = measurable && audio_s > 0 ? busy_ms / 1e3 / audio_s : NAN;
    double throughput = measurable && wall_ms > 0 ? audio_s / (wall_ms / 1e3) : NAN;
    const char *route = c->ws ? "WebSocket stream-input" : "POST /v1/audio/speech";
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "url", c->t.url);
        cJSON_AddStringToObject(o, "transport", c->ws ? "ws" : "http");
        cJSON_AddStringToObject(o, "voice", c->voice);
        cJSON_AddStringToObject(o, "format", format_names[c->format]);
        cJSON_AddNumberToObject(o, "concurrency", (double)concurrency);
        cJSON_AddNumberToObject(o, "requests", n);
        cJSON_AddNumberToObject(o, "warmup", warmup);
        cJSON_AddNumberToObject(o, "ok", ok);
        cJSON_AddNumberToObject(o, "failed", n - ok);
        cJSON *ej = cJSON_AddObjectToObject(o, "errors");
        for (int e = 0; e < n_err_kinds; e++) cJSON_AddNumberToObject(ej, errs[e].kind, errs[e].count);
        cJSON *ed = cJSON_AddObjectToObject(o, "error_details");
        for (int e = 0; e < n_err_kinds; e++) cJSON_AddStringToObject(ed, errs[e].kind, errs[e].detail);
        add_num(o, "wall_s", wall_ms / 1e3);
        if (measurable) add_num(o, "audio_s", audio_s);
        else cJSON_AddNullToObject(o, "audio_s");
        add_num(o, "rtf", rtf);
        add_num(o, "throughput", throughput);
        cJSON_AddNumberToObject(o, "chunks", chunks);
        cJSON_AddItemToObject(o, "first_chunk_ms", summary_json(&s1));
        cJSON_AddItemToObject(o, "second_chunk_ms", summary_json(&s2));
        cJSON_AddItemToObject(o, "total_ms", summary_json(&st));
        cJSON_AddItemToObject(o, "gap_ms", summary_json(&sg));
        if (measurable) {
            cJSON *u = cJSON_AddObjectToObject(o, "underruns");
            cJSON_AddNumberToObject(u, "events", underruns);
            cJSON_AddNumberToObject(u, "requests", underrun_reqs);
            add_num(u, "stall_ms", stall_ms);
            add_num(u, "max_stall_ms", stall_max);
        } else cJSON_AddNullToObject(o, "underruns");
        char *text = cJSON_Print(o);
        cJSON_Delete(o);
        if (text) printf("%s\n", text);
        free(text);
    } else {
        printf("cosy bench serve: %s %s, voice %s, %s, %lld clients, %d requests (+%d warmup)\n", c->t.url, route, c->voice,
               format_names[c->format], concurrency, n, warmup);
        printf("requests:       %d ok, %d failed\n", ok, n - ok);
        if (measurable && ok)
            printf("wall time:      %.2f s; audio %.2f s; RTF %.3f (request time / audio); throughput %.2f audio s per s\n",
                   wall_ms / 1e3, audio_s, rtf, throughput);
        else if (measurable) printf("wall time:      %.2f s; no audio\n", wall_ms / 1e3);
        else printf("wall time:      %.2f s (audio seconds, RTF and underruns are measured for pcm and wav only)\n", wall_ms / 1e3);
        printf("latency (ms)         avg       p50       p90       p95       p99       max      n\n");
        print_row("first chunk", &s1);
        print_row("second chunk", &s2);
        print_row("total", &st);
        if (sg.n)
            printf("inter-chunk gap: p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d gaps, %.1f chunks per request)\n", sg.p50, sg.p95, sg.max, sg.n,
                   ok ? (double)chunks / ok : 0.0);
        else if (ok) printf("inter-chunk gap: none (every answer came in one chunk)\n");
        if (measurable && ok)
            printf("underruns:      %d in %d of %d requests, stalled %.0f ms in all (longest per request %.0f ms)\n", underruns,
                   underrun_reqs, ok, stall_ms, stall_max);
        for (int e = 0; e < n_err_kinds; e++) printf("errors:         %s x%d: %s\n", errs[e].kind, errs[e].count, errs[e].detail);
    }
    free(first), free(second), free(total), free(gaps), free(errs);
    return ok > 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ setup */

static int load_texts(config *c, const char *path, const char *text)
{
    int cap = 1;
    if (path) {
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "cosy bench: cannot read --texts %s: %s\n", path, strerror(errno));
            return 1;
        }
        size_t size = 0, n;
        char chunk[65536];
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
            char *ns = realloc(c->texts_storage, size + n + 1);
            if (!ns) {
                fclose(f);
                fprintf(stderr, "cosy bench: out of memory\n");
                return 1;
            }
            c->texts_storage = ns;
            memcpy(ns + size, chunk, n);
            size += n;
        }
        fclose(f);
        if (!c->texts_storage) c->texts_storage = calloc(1, 1);
        if (!c->texts_storage) return 1;
        c->texts_storage[size] = 0;
        for (size_t i = 0; i < size; i++) cap += c->texts_storage[i] == '\n';
    }
    c->texts = calloc((size_t)cap + 1, sizeof *c->texts);
    if (!c->texts) return 1;
    if (path) {
        for (char *line = c->texts_storage; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            size_t len = strlen(line);
            while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = 0;
            while (*line == ' ' || *line == '\t') line++;
            if (*line) c->texts[c->n_texts++] = line;
            line = nl ? nl + 1 : NULL;
        }
        if (!c->n_texts) {
            fprintf(stderr, "cosy bench: --texts %s has no text (one per line)\n", path);
            return 1;
        }
    } else c->texts[c->n_texts++] = (char *)text;
    return 0;
}

/* GET /v1/voices: the server is there, and the voice is one it offers (or the first, with no --voice) */
static int check_server(config *c, char **voice_owned)
{
    req_result r = {0};
    char *body = NULL;
    int status = http_exchange(c, "GET", "/v1/voices", NULL, cosy_now_ms(), NULL, &r, &body);
    if (r.err[0] || status != 200) {
        if (status) fprintf(stderr, "cosy bench: GET %sv1/voices answered %d: %s\n", c->t.url, status, r.detail);
        else fprintf(stderr, "cosy bench: the server at %s is not reachable: %s\n", c->t.url, r.detail);
        free(body);
        return 1;
    }
    cJSON *j = cJSON_Parse(body);
    free(body);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(j);
        fprintf(stderr, "cosy bench: GET %sv1/voices did not answer a voice list: is this cosy serve?\n", c->t.url);
        return 1;
    }
    int found = 0, n = 0;
    char names[300] = "";
    const cJSON *v;
    cJSON_ArrayForEach(v, data)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "id"));
        if (!id) continue;
        if (n++ < 8 && strlen(names) + strlen(id) + 3 < sizeof names) {
            if (names[0]) strcat(names, ", ");
            strcat(names, id);
        }
        if (!c->voice && !(*voice_owned = strdup(id))) break;
        if (!c->voice) c->voice = *voice_owned;
        if (!strcmp(c->voice, id)) found = 1;
    }
    cJSON_Delete(j);
    if (!c->voice) {
        fprintf(stderr, "cosy bench: the server at %s offers no voice (start it with --voices DIR)\n", c->t.url);
        return 1;
    }
    if (!found) {
        fprintf(stderr, "cosy bench: the server does not offer voice '%s' (it has: %s)\n", c->voice, names[0] ? names : "none");
        return 1;
    }
    return 0;
}

static const cli_usage bench_serve_usage = {
    .cmd = "bench serve",
    .synopsis = "[--url URL] [--concurrency N] [--requests M] [--warmup W] [--ws] [--ws-interval MS]\n"
                " [--voice ID] [--text TEXT | --texts FILE] [--format F] [--strategy S] [--chunk N] [--first-chunk N]\n"
                " [--seed N] [--api-key KEY] [--timeout S] [--json]",
    .description =
        "A closed-loop load test of a running `cosy serve`: N clients each send a request, read its streamed\n"
        "audio to the end and send the next, until M requests are done. Prints first-chunk, second-chunk and\n"
        "total latency (avg, p50, p90, p95, p99, max), inter-chunk gaps, RTF, throughput, playback underruns\n"
        "and errors by kind. Exits 1 when the server cannot be reached or no request succeeded.\n\n"
        "A chunk is one HTTP chunk of the response (the server sends one per audio chunk it makes; --ws: one\n"
        "audio message), timed by the read that brings its first byte: first-chunk latency is the time from the\n"
        "start of the request (a fresh connection each) to the first audio byte. A chunk is an underrun when it\n"
        "arrives after the audio before it has finished playing (playback starts with the first chunk and waits\n"
        "for late ones). RTF = request times summed / audio seconds summed (pcm and wav only).",
};

int bench_serve(int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8080/", *text = default_text, *texts_path = NULL, *voice = NULL, *api_key = NULL;
    long long concurrency = 1, requests = 10, warmup = 0, chunk = -1, first_chunk = -1, seed = -1, timeout_s = 120, ws_interval = 0;
    int ws = 0, json = 0, format = FMT_PCM, strategy = -1;
    const cli_option opts[] = {
        {.name = "--url", .kind = CLI_OPT_STRING, .dest = &url, .hint = "URL", .default_text = "http://127.0.0.1:8080/",
         .help = "the server, http://HOST:PORT/ (no https)"},
        {.name = "--concurrency", .alias = "-c", .kind = CLI_OPT_INT, .dest = &concurrency, .hint = "N", .min = 1, .max = 256,
         .default_text = "1", .help = "clients at once"},
        {.name = "--requests", .alias = "-n", .kind = CLI_OPT_INT, .dest = &requests, .hint = "M", .min = 1, .max = 100000,
         .default_text = "10", .help = "measured requests"},
        {.name = "--warmup", .kind = CLI_OPT_INT, .dest = &warmup, .hint = "W", .min = 0, .max = 10000, .default_text = "0",
         .help = "requests first, not counted"},
        {.name = "--ws", .kind = CLI_OPT_FLAG, .dest = &ws,
         .help = "the WebSocket stream-input route: the text sent word by word ({\"text\":\" \"} first, {\"text\":\"\"}\n"
                 "last), audio as binary messages"},
        {.name = "--ws-interval", .kind = CLI_OPT_INT, .dest = &ws_interval, .hint = "MS", .min = 0, .max = 60000, .unit = "ms",
         .default_text = "0", .help = "pause between the words with --ws"},
        {.name = "--voice", .kind = CLI_OPT_STRING, .dest = &voice, .hint = "ID", .default_text = "the first of GET /v1/voices",
         .help = "the voice"},
        {.name = "--text", .kind = CLI_OPT_STRING, .dest = &text, .hint = "TEXT", .default_text = "two English sentences",
         .help = "what to say"},
        {.name = "--texts", .kind = CLI_OPT_STRING, .dest = &texts_path, .hint = "FILE", .help = "one text per line, used round robin"},
        {.name = "--format", .kind = CLI_OPT_CHOICE, .dest = &format, .hint = "F", .choices = "pcm,wav,mp3,opus,flac",
         .default_text = "pcm", .help = "the response format; audio seconds, RTF and underruns need pcm or wav"},
        CLI_OPTION_STRATEGY(&strategy),
        CLI_OPTION_CHUNK(&chunk),
        CLI_OPTION_FIRST_CHUNK(&first_chunk),
        CLI_OPTION_SEED(&seed, "the server's"),
        {.name = "--api-key", .kind = CLI_OPT_STRING, .dest = &api_key, .hint = "KEY", .default_text = "$COSY_API_KEY",
         .help = "sent as Authorization: Bearer KEY"},
        {.name = "--timeout", .kind = CLI_OPT_INT, .dest = &timeout_s, .hint = "S", .min = 1, .max = 86400, .unit = "seconds",
         .default_text = "120", .help = "per request"},
        CLI_OPTION_JSON(&json, "one JSON object on stdout instead of the table"),
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&bench_serve_usage, opts, argc, argv, NULL);
    if (rc != CLI_GO_ON) return rc;
    if (!api_key) api_key = getenv("COSY_API_KEY");
    if (api_key && !api_key[0]) api_key = NULL;
    if (api_key && (strpbrk(api_key, "\r\n") || strlen(api_key) > 400)) return cli_usage_error("bench serve", "--api-key: not a usable key");
    if (voice && (!voice[0] || strlen(voice) > 128)) return cli_usage_error("bench serve", "--voice needs a voice id (GET /v1/voices lists them)");
    if (!texts_path && !text[0]) return cli_usage_error("bench serve", "--text is empty");
    if (texts_path && text != default_text) return cli_usage_error("bench serve", "--text and --texts do not go together");

    config c = {.ws = ws, .format = format, .strategy = strategy, .json = json, .chunk = chunk, .first_chunk = first_chunk,
                .seed = seed, .ws_interval_ms = ws_interval, .timeout_ms = (double)timeout_s * 1e3, .voice = voice, .api_key = api_key};
    char msg[600];
    if (parse_url(url, &c.t, msg, sizeof msg)) {
        /* a malformed URL is a usage error; a host that does not resolve is not */
        int usage = !strstr(msg, "cannot resolve");
        if (usage) return cli_usage_error("bench serve", "%s", msg);
        fprintf(stderr, "cosy bench: %s\n", msg);
        return 1;
    }
    char *voice_owned = NULL;
    req_result *res = NULL;
    int exit_code = 1;
    if (load_texts(&c, texts_path, text)) goto out;
    if (check_server(&c, &voice_owned)) goto out;
    int n = (int)requests, w = (int)warmup;
    res = calloc((size_t)(n + w), sizeof *res);
    if (!res) {
        fprintf(stderr, "cosy bench: out of memory\n");
        goto out;
    }
    if (run_phase(&c, res, w, (int)concurrency, 0)) goto out;
    double t0 = cosy_now_ms();
    if (run_phase(&c, res + w, n, (int)concurrency, w)) goto out;
    double wall = cosy_now_ms() - t0;
    exit_code = report(&c, res + w, n, w, concurrency, wall);
out:
    if (res)
        for (long long i = 0; i < requests + warmup; i++) free(res[i].gaps);
    free(res);
    free(voice_owned);
    free(c.texts);
    free(c.texts_storage);
    if (c.t.ai) freeaddrinfo(c.t.ai);
    return exit_code;
}
