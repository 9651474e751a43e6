/* error.c — per-thread error messages (see error.h). */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_message[1024];

cosy_status cosy_error(cosy_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return status;
}

cosy_status cosy_error_prefix(cosy_status status, const char *fmt, ...)
{
    char prefix[256], old[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof error_message - 3) n = sizeof error_message - 3;
    memcpy(error_message, prefix, n);
    memcpy(error_message + n, ": ", 2);
    size_t room = sizeof error_message - n - 3;
    size_t m = strlen(old);
    if (m > room) m = room;
    memcpy(error_message + n + 2, old, m);
    error_message[n + 2 + m] = '\0';
    return status;
}

void cosy_error_clear(void) { error_message[0] = '\0'; }

const char *cosy_last_error(void) { return error_message; }

const char *cosy_strerror(cosy_status status)
{
    switch (status) {
    case COSY_OK: return "ok";
    case COSY_ERR_INVALID_ARG: return "invalid argument";
    case COSY_ERR_IO: return "i/o error";
    case COSY_ERR_FORMAT: return "format error";
    case COSY_ERR_UNSUPPORTED: return "unsupported";
    case COSY_ERR_MISSING: return "missing";
    case COSY_ERR_SHAPE: return "shape mismatch";
    case COSY_ERR_NOMEM: return "out of memory";
    case COSY_ERR_CANCELLED: return "cancelled";
    case COSY_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
