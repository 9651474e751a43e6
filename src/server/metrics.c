/*
 * metrics.c — /metrics in Prometheus' text format (checked with promtool): requests by route
 * and status, errors, disconnects, busy refusals, active and queued sessions, audio produced,
 * and histograms of time to first audio, total time, RTF and each stage's time per request.
 */
#include "server/server_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const route_names[ROUTE_COUNT] = {"speech", "stream_input", "token2wav", "voices", "models",
                                                     "healthz", "readyz", "metrics", "page", "other"};

/* seconds for the times; the RTF uses the same bounds (0.05 .. 10) */
static const double bucket_le[METRIC_BUCKETS] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60};

static const struct {
    const char *name, *help;
} hist_info[HIST_COUNT] = {
    {"cosy_first_audio_seconds", "Time from the request to its first audio sample."},
    {"cosy_request_seconds", "Time from the request to its last audio sample."},
    {"cosy_rtf", "Real-time factor of a request (synthesis time / audio duration)."},
    {"cosy_stage_frontend_seconds", "Text normalisation and tokenisation per request."},
    {"cosy_stage_lm_prefill_seconds", "LM prefill time per request."},
    {"cosy_stage_lm_decode_seconds", "LM decode time per request."},
    {"cosy_stage_flow_seconds", "Flow (token encoder + CFM) time per request."},
    {"cosy_stage_vocoder_seconds", "HiFT vocoder time per request."},
};

void metrics_init(server_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void metrics_destroy(server_metrics *m) { pthread_mutex_destroy(&m->mu); }

void metrics_count(server_metrics *m, server_route route, int status)
{
    pthread_mutex_lock(&m->mu);
    int slot = -1;
    for (int i = 0; i < METRIC_STATUS_SLOTS && slot < 0; i++)
        if (m->status_codes[i] == status || m->status_codes[i] == 0) {
            m->status_codes[i] = status;
            slot = i;
        }
    if (slot < 0) slot = METRIC_STATUS_SLOTS - 1; /* more distinct codes than slots: lumped in the last */
    m->requests[route][slot]++;
    if (status >= 500) m->errors[route]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_disconnect(server_metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->disconnects++;
    pthread_mutex_unlock(&m->mu);
}

static void observe(metric_histogram *h, double v)
{
    h->sum += v;
    h->count++;
    for (int i = 0; i < METRIC_BUCKETS; i++)
        if (v <= bucket_le[i]) {
            h->buckets[i]++;
            break;
        }
}

void metrics_timings(server_metrics *m, const cosy_timings *t)
{
    pthread_mutex_lock(&m->mu);
    observe(&m->hist[HIST_FIRST_AUDIO], t->first_audio_ms / 1000);
    observe(&m->hist[HIST_TOTAL], t->total_ms / 1000);
    if (t->audio_seconds > 0) observe(&m->hist[HIST_RTF], t->rtf);
    observe(&m->hist[HIST_FRONTEND], t->frontend_ms / 1000);
    observe(&m->hist[HIST_LM_PREFILL], t->lm_prefill_ms / 1000);
    observe(&m->hist[HIST_LM_DECODE], t->lm_decode_ms / 1000);
    observe(&m->hist[HIST_FLOW], t->flow_ms / 1000);
    observe(&m->hist[HIST_VOCODER], t->vocoder_ms / 1000);
    pthread_mutex_unlock(&m->mu);
}

typedef struct {
    char *buf;
    size_t n, cap;
    int oom;
} text_buf;

static void put(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_buf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->buf + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t ncap = b->cap * 2 + (size_t)k;
        char *nb = realloc(b->buf, ncap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb, b->cap = ncap;
    }
}

int route_metrics(http_req *r)
{
    cosy_server *srv = r->srv;
    server_metrics *m = &srv->metrics;
    text_buf b = {malloc(8192), 0, 8192, 0};
    if (!b.buf) return http_error(r, 503, NULL, "out of memory");
    b.buf[0] = 0;
    pthread_mutex_lock(&srv->mu);
    int active = srv->active, waiting = srv->waiting;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_lock(&srv->t2w.mu);
    int t2w_open = srv->t2w.count;
    pthread_mutex_unlock(&srv->t2w.mu);
    pthread_mutex_lock(&m->mu);
    put(&b, "# HELP cosy_requests_total HTTP requests and WebSocket connections answered, by route and status.\n"
            "# TYPE cosy_requests_total counter\n");
    for (int rt = 0; rt < ROUTE_COUNT; rt++)
        for (int i = 0; i < METRIC_STATUS_SLOTS; i++)
            if (m->status_codes[i] && m->requests[rt][i])
                put(&b, "cosy_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_names[rt], m->status_codes[i],
                    (unsigned long long)m->requests[rt][i]);
    put(&b, "# HELP cosy_errors_total Requests answered with a server error (5xx), by route.\n# TYPE cosy_errors_total counter\n");
    for (int rt = 0; rt < ROUTE_COUNT; rt++) put(&b, "cosy_errors_total{route=\"%s\"} %llu\n", route_names[rt], (unsigned long long)m->errors[rt]);
    put(&b, "# HELP cosy_disconnects_total Clients that went away mid-stream (their sessions were cancelled).\n"
            "# TYPE cosy_disconnects_total counter\ncosy_disconnects_total %llu\n",
        (unsigned long long)m->disconnects);
    put(&b, "# HELP cosy_busy_rejections_total Requests refused with 503 because every session and queue place was taken.\n"
            "# TYPE cosy_busy_rejections_total counter\ncosy_busy_rejections_total %llu\n",
        (unsigned long long)m->rejected_busy);
    put(&b, "# HELP cosy_audio_seconds_total Audio produced.\n# TYPE cosy_audio_seconds_total counter\ncosy_audio_seconds_total %.3f\n",
        (double)m->audio_samples / cosy_model_sample_rate(srv->model));
    put(&b, "# HELP cosy_active_sessions Syntheses running now.\n# TYPE cosy_active_sessions gauge\ncosy_active_sessions %d\n", active);
    put(&b, "# HELP cosy_queued_requests Requests waiting for a session.\n# TYPE cosy_queued_requests gauge\ncosy_queued_requests %d\n", waiting);
    put(&b, "# HELP cosy_token2wav_open Token2wav utterances whose state the server keeps between calls.\n"
            "# TYPE cosy_token2wav_open gauge\ncosy_token2wav_open %d\n", t2w_open);
    put(&b, "# HELP cosy_max_sessions The session cap (--max-sessions).\n# TYPE cosy_max_sessions gauge\ncosy_max_sessions %d\n", srv->p.max_sessions);
    for (int h = 0; h < HIST_COUNT; h++) {
        const metric_histogram *x = &m->hist[h];
        put(&b, "# HELP %s %s\n# TYPE %s histogram\n", hist_info[h].name, hist_info[h].help, hist_info[h].name);
        uint64_t cum = 0;
        for (int i = 0; i < METRIC_BUCKETS; i++) {
            cum += x->buckets[i];
            put(&b, "%s_bucket{le=\"%g\"} %llu\n", hist_info[h].name, bucket_le[i], (unsigned long long)cum);
        }
        put(&b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", hist_info[h].name, (unsigned long long)x->count,
            hist_info[h].name, x->sum, hist_info[h].name, (unsigned long long)x->count);
    }
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.buf);
        return http_error(r, 503, NULL, "out of memory");
    }
    r->status = 200;
    mg_printf(r->conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: %zu\r\n"
                       "Cache-Control: no-store\r\n\r\n", b.n);
    mg_write(r->conn, b.buf, b.n);
    free(b.buf);
    return 1;
}
