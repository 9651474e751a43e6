/*
 * error.h — how every module reports failure.
 *
 * A failing function records a one-line message in a per-thread buffer and returns the status
 * code: `return cosy_error(COSY_ERR_FORMAT, "%s: tensor %s: ...", path, name);`. The caller
 * either handles it or returns the same status upward unchanged, so the innermost message —
 * the one that names the file/tensor/offset — is what the user sees.
 */
#ifndef COSY_ERROR_H
#define COSY_ERROR_H

#include "cosy.h"

#if defined(__GNUC__)
#define COSY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define COSY_PRINTF(a, b)
#endif

/* Sets this thread's error message and returns `status`. */
cosy_status cosy_error(cosy_status status, const char *fmt, ...) COSY_PRINTF(2, 3);
/* Prefixes the current message with "context: " (used when a lower layer lacks the context,
 * e.g. the yaml reader does not know the file name its caller opened). Returns `status`. */
cosy_status cosy_error_prefix(cosy_status status, const char *fmt, ...) COSY_PRINTF(2, 3);
void cosy_error_clear(void);

/* Propagate a failure: `COSY_TRY(f(x));` */
#define COSY_TRY(expr)                          \
    do {                                        \
        cosy_status cosy_try_st_ = (expr);      \
        if (cosy_try_st_ != COSY_OK) return cosy_try_st_; \
    } while (0)

#endif
