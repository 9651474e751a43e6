/*
 * hift_test_util.h — shared by test_hift.c and test_t2w_hift.c: loading fixture arrays and comparing
 * an output with the reference under the tolerance the fixture manifest gives for it (never a
 * tolerance of our own), and replaying a HiFT call's recorded random draws.
 */
#ifndef COSY_HIFT_TEST_UTIL_H
#define COSY_HIFT_TEST_UTIL_H

#include "test.h"
#include "core/error.h"
#include "io/npy.h"
#include "model/hift/hift.h"

#include <cjson/cJSON.h>
#include <stdint.h>

static cJSON *hift_test_manifest;

static void hift_test_load_manifest(void)
{
    FILE *f = fopen(test_data("cv2-tiny/golden/manifest.json"), "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    CHECK(text && fread(text, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    if (!text) return;
    text[n] = 0;
    hift_test_manifest = cJSON_Parse(text);
    free(text);
    CHECK(hift_test_manifest != NULL);
}

/* golden/<key>.npy into *a (zeroed on failure) */
static int hift_test_npy(const char *key, npy_array *a)
{
    char rel[256];
    memset(a, 0, sizeof *a);
    snprintf(rel, sizeof rel, "cv2-tiny/golden/%s.npy", key);
    cosy_status st = npy_load(test_data(rel), a);
    if (st != COSY_OK) {
        fprintf(stderr, "%s: %s\n", key, cosy_last_error());
        test_failures_++;
        memset(a, 0, sizeof *a);
        return 0;
    }
    return 1;
}

/* The manifest's tolerance of file `key`: max_abs and/or max_abs_rel (-1 = absent). */
static void hift_test_tolerance(const char *key, double *max_abs, double *max_rel)
{
    *max_abs = *max_rel = -1;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(hift_test_manifest, "files");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(files, key);
    const cJSON *tol = f ? cJSON_GetObjectItemCaseSensitive(f, "tolerance") : NULL;
    const cJSON *a = tol ? cJSON_GetObjectItemCaseSensitive(tol, "max_abs") : NULL;
    const cJSON *r = tol ? cJSON_GetObjectItemCaseSensitive(tol, "max_abs_rel") : NULL;
    if (cJSON_IsNumber(a)) *max_abs = a->valuedouble;
    if (cJSON_IsNumber(r)) *max_rel = r->valuedouble;
}

/* Compares n values with golden/<key>.npy under the manifest tolerance of golden/<tol_key>; prints the
 * errors. (tol_key differs for arrays the manifest lists as inputs, e.g. a cached source, which are
 * compared under the tolerance of the output they were cut from.) */
static int hift_test_compare_as(const char *key, const char *tol_key, const float *data, int64_t n)
{
    npy_array ref;
    if (!hift_test_npy(key, &ref)) return 0;
    test_checks_++;
    int pass = ref.numel == n;
    double max_abs = 0, max_ref = 0;
    for (int64_t i = 0; pass && i < n; i++) {
        double d = fabs((double)data[i] - (double)ref.f32[i]);
        if (!(d <= max_abs)) max_abs = d != d ? INFINITY : d;
        if (fabs((double)ref.f32[i]) > max_ref) max_ref = fabs((double)ref.f32[i]);
    }
    double rel = max_ref > 0 ? max_abs / max_ref : max_abs, t_abs, t_rel;
    hift_test_tolerance(tol_key, &t_abs, &t_rel);
    if (t_abs < 0 && t_rel < 0) pass = 0;
    if (t_abs >= 0 && !(max_abs <= t_abs)) pass = 0;
    if (t_rel >= 0 && !(rel <= t_rel)) pass = 0;
    printf("  %-24s n %-7lld max_abs %.3e rel %.3e (tolerance: max_abs %g, max_abs_rel %g) %s\n", key, (long long)n, max_abs, rel,
           t_abs, t_rel, pass ? "ok" : "FAIL");
    if (!pass) {
        fprintf(stderr, "%s: outside the manifest tolerance (%lld values, reference has %lld)\n", key, (long long)n, (long long)ref.numel);
        test_failures_++;
    }
    npy_free(&ref);
    return pass;
}

static inline int hift_test_compare(const char *key, const float *data, int64_t n)
{
    return hift_test_compare_as(key, key, data, n);
}

/* The three recorded draws of one HiFT call (<prefix>_noise_000..002), replayed in order. */
typedef struct {
    npy_array d[3];
    cosy_hift_replay replay;
    cosy_rng_source source;
} hift_test_draws;

static int hift_test_draws_load(hift_test_draws *r, const char *prefix, int harmonics)
{
    char key[64];
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%s_noise_%03d", prefix, i);
        ok &= hift_test_npy(key, &r->d[i]);
    }
    memset(&r->replay, 0, sizeof r->replay);
    r->replay.rand_ini = r->d[0].f32;
    r->replay.n_rand_ini = r->d[0].numel;
    r->replay.sine_noise = r->d[1].f32;
    r->replay.n_sine_noise = r->d[1].numel;
    r->replay.source_noise = r->d[2].f32;
    r->replay.n_source_noise = r->d[2].numel;
    r->replay.harmonics = harmonics;
    r->source = cosy_hift_replay_source(&r->replay);
    return ok;
}

static void hift_test_draws_free(hift_test_draws *r)
{
    for (int i = 0; i < 3; i++) npy_free(&r->d[i]);
}

#endif
