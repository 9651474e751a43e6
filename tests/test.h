/*
 * test.h — a minimal test harness: CHECK macros that count failures, and helpers for
 * fixtures. A test program returns non-zero if any check failed; ctest runs each program.
 */
#ifndef COSY_TEST_H
#define COSY_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cosy.h"

static int test_failures_;
static int test_checks_;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        test_checks_++;                                                               \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
            test_failures_++;                                                         \
        }                                                                             \
    } while (0)

#define CHECK_OK(expr)                                                                        \
    do {                                                                                      \
        test_checks_++;                                                                       \
        cosy_status st_ = (expr);                                                             \
        if (st_ != COSY_OK) {                                                                 \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #expr,         \
                    cosy_strerror(st_), cosy_last_error());                                   \
            test_failures_++;                                                                 \
        }                                                                                     \
    } while (0)

/* expr must fail with `status` and the message must contain `needle` */
#define CHECK_FAILS(expr, status, needle)                                                      \
    do {                                                                                       \
        test_checks_++;                                                                        \
        cosy_status st_ = (expr);                                                              \
        if (st_ != (status) || !strstr(cosy_last_error(), (needle))) {                         \
            fprintf(stderr, "%s:%d: %s: expected %s containing '%s', got %s: '%s'\n", __FILE__, \
                    __LINE__, #expr, cosy_strerror(status), (needle), cosy_strerror(st_),      \
                    cosy_last_error());                                                        \
            test_failures_++;                                                                  \
        }                                                                                      \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        test_checks_++;                                                                            \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (!(fabs(a_ - b_) <= (tol))) {                                                           \
            fprintf(stderr, "%s:%d: %s = %.9g, %s = %.9g, differ by more than %g\n", __FILE__,     \
                    __LINE__, #a, a_, #b, b_, (double)(tol));                                      \
            test_failures_++;                                                                      \
        }                                                                                          \
    } while (0)

static inline int test_finish(const char *name)
{
    if (test_failures_) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, test_failures_, test_checks_);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, test_checks_);
    return 0;
}

/* Path under tests/data (static buffer; copy if you need two at once). */
static inline const char *test_data(const char *rel)
{
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", COSY_TEST_DATA, rel);
    return buf[k];
}

/* Path under the per-build scratch directory (created on first use). */
static inline const char *test_tmp(const char *rel)
{
    static char buf[4][1024];
    static int k;
    mkdir(COSY_TEST_TMP, 0755);
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", COSY_TEST_TMP, rel);
    return buf[k];
}

/* Model parameters for parity with the official numbers: every module in f32 (the defaults pick the
 * faster measured paths, bf16 or quantised, where the CPU has them). */
static inline cosy_model_params test_f32_params(void)
{
    cosy_model_params p = cosy_model_default_params();
    p.lm_dtype = COSY_DTYPE_F32;
    p.flow_dtype = COSY_DTYPE_F32;
    p.hift_dtype = COSY_DTYPE_F32;
    return p;
}

/* max |a - b| */
static inline double test_max_abs_diff(const float *a, const float *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

#endif
