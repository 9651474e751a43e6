/*
 * http_test_client.h — a minimal HTTP/1.1 client over a POSIX socket for the server tests: one
 * request per connection, chunked responses decoded, and an option to hang up after the first
 * bytes of the body (a client that goes away mid-stream).
 */
#ifndef COSY_HTTP_TEST_CLIENT_H
#define COSY_HTTP_TEST_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int status;
    char headers[4096];
    char *body;        /* de-chunked */
    size_t n_body;
    int complete;      /* the whole response arrived (final chunk / content length) */
} http_reply;

static inline void http_reply_free(http_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static inline int http_send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

/* Reads everything until the peer closes or hang_up_after body bytes (> 0) have arrived. */
static inline int http_request(int port, const char *method, const char *path, const char *extra_headers, const char *body, size_t n_body,
                               size_t hang_up_after, http_reply *out)
{
    memset(out, 0, sizeof *out);
    int fd = http_connect(port);
    if (fd < 0) return -1;
    char head[2048];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n", method, path,
                      n_body, extra_headers ? extra_headers : "");
    if (http_send_all(fd, head, (size_t)hn) || (n_body && http_send_all(fd, body, n_body))) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *raw = malloc(cap);
    for (;;) {
        if (n == cap) raw = realloc(raw, cap *= 2);
        ssize_t k = recv(fd, raw + n, cap - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
        if (hang_up_after) {
            char *hend = memmem(raw, n, "\r\n\r\n", 4);
            if (hend && (size_t)(raw + n - (hend + 4)) >= hang_up_after) break;
        }
    }
    close(fd);
    char *hend = memmem(raw, n, "\r\n\r\n", 4);
    if (!hend || sscanf(raw, "HTTP/1.1 %d", &out->status) != 1) {
        free(raw);
        return -1;
    }
    size_t hl = (size_t)(hend - raw);
    snprintf(out->headers, sizeof out->headers, "%.*s", (int)(hl < sizeof out->headers - 1 ? hl : sizeof out->headers - 1), raw);
    const char *p = hend + 4, *end = raw + n;
    out->body = malloc((size_t)(end - p) + 1);
    if (strcasestr(out->headers, "Transfer-Encoding: chunked")) {
        while (p < end) {
            char *e;
            unsigned long len = strtoul(p, &e, 16);
            char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
            if (!crlf || e > crlf) break;
            p = crlf + 2;
            if (len == 0) {
                out->complete = 1;
                break;
            }
            size_t take = (size_t)(end - p) < len ? (size_t)(end - p) : len;
            memcpy(out->body + out->n_body, p, take);
            out->n_body += take;
            p += take;
            if (take < len || end - p < 2) break;
            p += 2;
        }
    } else {
        out->n_body = (size_t)(end - p);
        memcpy(out->body, p, out->n_body);
        const char *cl = strcasestr(out->headers, "Content-Length:");
        out->complete = !cl || strtoul(cl + 15, NULL, 10) == out->n_body;
    }
    out->body[out->n_body] = 0;
    free(raw);
    return 0;
}

#endif
