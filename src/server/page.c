/*
 * page.c — GET /: the web page (web/index.html, embedded into the binary at build time by
 * cmake/embed.cmake): speak a text and play it while it streams, or type and hear over the
 * WebSocket, with time to first audio, chunk arrivals, RTF and playback underruns shown.
 */
#include "server/server_internal.h"

#include <string.h>

extern const unsigned char cosy_web_index_html[];
extern const size_t cosy_web_index_html_len;

int route_page(http_req *r)
{
    r->status = 200;
    mg_printf(r->conn, "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\nCache-Control: no-cache\r\n\r\n",
              cosy_web_index_html_len);
    if (strcmp(r->ri->request_method, "HEAD")) mg_write(r->conn, cosy_web_index_html, cosy_web_index_html_len);
    return 1;
}
