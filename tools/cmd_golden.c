/* cmd_golden.c — `cosy golden DIR`: the fixture runner (see golden.h). */
#include "cli.h"
#include "golden.h"
#include "core/error.h"
#include "core/file.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

cosy_status golden_flow_nonstream(golden_ctx *ctx);
cosy_status golden_flow_estimator_step(golden_ctx *ctx);
cosy_status golden_flow_stream_nonfinal(golden_ctx *ctx);
cosy_status golden_lm_inference(golden_ctx *ctx);
cosy_status golden_lm_instruct(golden_ctx *ctx);
cosy_status golden_lm_instruct2(golden_ctx *ctx);
cosy_status golden_lm_cross_lingual(golden_ctx *ctx);
cosy_status golden_ras_candidates(golden_ctx *ctx);
cosy_status golden_lm_bistream(golden_ctx *ctx);
cosy_status golden_hift_nonstream(golden_ctx *ctx);
cosy_status golden_t2w_call(golden_ctx *ctx);
cosy_status golden_t2w_stream(golden_ctx *ctx);
cosy_status golden_feat_resample(golden_ctx *ctx);
cosy_status golden_feat_whisper128(golden_ctx *ctx);
cosy_status golden_campplus_graph(golden_ctx *ctx);
cosy_status golden_tokenizer_graph(golden_ctx *ctx);
cosy_status golden_voice_e2e(golden_ctx *ctx);
int golden_resample_kernels(golden_ctx *ctx, const char *const *only, int n_only, int *n_pass, int *n_fail);
cosy_status golden_cv3_feat_mel24k(golden_ctx *ctx);
cosy_status golden_cv3_silent_filter(golden_ctx *ctx);
cosy_status golden_cv3_rng(golden_ctx *ctx);
cosy_status golden_cv3_hift(golden_ctx *ctx);
cosy_status golden_cv3_flow_nonstream(golden_ctx *ctx);
cosy_status golden_cv3_flow_stream_nonfinal(golden_ctx *ctx);
cosy_status golden_cv3_dit_step(golden_ctx *ctx);
cosy_status golden_cv3_dit_step_stream(golden_ctx *ctx);
cosy_status golden_cv3_t2w_call(golden_ctx *ctx);
cosy_status golden_cv3_t2w_stream(golden_ctx *ctx);
cosy_status golden_cv3_final_chunk_causal(golden_ctx *ctx);

#define V2 COSY_FAMILY_COSYVOICE2
#define V3 COSY_FAMILY_COSYVOICE3
/* Handlers, in the order cases are matched, with the model family they run on. Modules add theirs here;
 * a case with no handler for the fixture model's family is listed as SKIP. */
static const golden_handler handlers[] = {
    {"flow_nonstream", golden_flow_nonstream, V2, NULL},
    {"flow_estimator_step", golden_flow_estimator_step, V2, NULL},
    {"flow_stream_nonfinal", golden_flow_stream_nonfinal, V2, NULL},
    {"lm_inference", golden_lm_inference, V2, NULL},
    {"ras_candidates", golden_ras_candidates, V2, NULL},
    {"lm_bistream", golden_lm_bistream, V2, NULL},
    {"lm_instruct2", golden_lm_instruct2, V2, NULL},
    {"lm_cross_lingual", golden_lm_cross_lingual, V2, NULL},
    {"hift_nonstream", golden_hift_nonstream, V2, NULL},
    {"t2w_*", golden_t2w_call, V2, NULL},
    {"token2wav_stream", golden_t2w_stream, V2, NULL},
    {"feat_resample", golden_feat_resample, V2, NULL},
    {"feat_whisper128", golden_feat_whisper128, V2, NULL},
    {"campplus_graph_*", golden_campplus_graph, V2, NULL},
    {"tokenizer_graph_*", golden_tokenizer_graph, V2, NULL},
    {"e2e_*", golden_voice_e2e, V2, NULL},
    /* known cases deliberately not run (SKIP, with the reason); any other case name fails: a renamed or
     * new case must not pass as a skip */
    {"feat_mel24k", NULL, V2, "tolerance below the reference's own f32 FFT noise on this signal (golden_voice.c)"},
    {"feat_fbank16k", NULL, V2, "tolerance below the reference's own f32 FFT noise on this signal (golden_voice.c)"},
    /* CosyVoice3 (golden_cv3.c) */
    {"feat_mel24k", golden_cv3_feat_mel24k, V3,
     "its 1e-4 bound is below the reference's float32 FFT noise in spectral valleys; test_cv3 checks it"},
    {"llm_silent_filter", golden_cv3_silent_filter, V3, NULL},
    {"official_cv3_rng", golden_cv3_rng, V3, NULL},
    {"cv3_flow_nonstream", golden_cv3_flow_nonstream, V3, NULL},
    {"cv3_flow_stream_nonfinal", golden_cv3_flow_stream_nonfinal, V3, NULL},
    {"cv3_dit_step", golden_cv3_dit_step, V3, NULL},
    {"cv3_dit_step_stream", golden_cv3_dit_step_stream, V3, NULL},
    {"cv3_hift", golden_cv3_hift, V3, NULL},
    {"t2w_*", golden_cv3_t2w_call, V3, NULL},
    {"cv3_token2wav_stream", golden_cv3_t2w_stream, V3, NULL},
    {"cv3_final_chunk_causal", golden_cv3_final_chunk_causal, V3, NULL},
    {"lm_inference", golden_lm_inference, V3, NULL},
    {"ras_candidates", golden_ras_candidates, V3, NULL},
    {"lm_instruct", golden_lm_instruct, V3, NULL},
    {"lm_bistream", golden_lm_bistream, V3, NULL},
    {NULL, NULL, 0, NULL},
};
#undef V2
#undef V3

/* The first output the case declares ("outputs") that the handler never compared, or NULL. */
static const char *uncompared_output(const golden_ctx *ctx, const cJSON *c)
{
    const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(c, "outputs"), *o;
    cJSON_ArrayForEach(o, outputs) {
        if (!cJSON_IsString(o)) return "(not a string)";
        int seen = 0;
        for (int i = 0; i < ctx->n_compared && !seen; i++) seen = !strcmp(ctx->compared[i], o->valuestring);
        if (!seen) return o->valuestring;
    }
    return NULL;
}

static const golden_handler *find_handler(const char *name, int family)
{
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        const char *h = handlers[i].name;
        if (!h || handlers[i].family != family) continue;
        size_t n = strlen(h);
        if (n && h[n - 1] == '*' ? !strncmp(name, h, n - 1) : !strcmp(name, h)) return &handlers[i];
    }
    return NULL;
}

static cosy_status golden_load_as(golden_ctx *ctx, const char *key, npy_array *out, int ints)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(files, key);
    const cJSON *file = f ? cJSON_GetObjectItemCaseSensitive(f, "file") : NULL;
    char rel[512];
    snprintf(rel, sizeof rel, "%s/golden/%s", ctx->dir, cJSON_IsString(file) ? file->valuestring : key);
    if (!cJSON_IsString(file)) {
        size_t n = strlen(rel);
        if (n < 4 || strcmp(rel + n - 4, ".npy")) strncat(rel, ".npy", sizeof rel - n - 1);
    }
    return ints ? npy_load_int(rel, out) : npy_load(rel, out);
}

cosy_status golden_load(golden_ctx *ctx, const char *key, npy_array *out)
{
    return golden_load_as(ctx, key, out, 0);
}

cosy_status golden_load_int(golden_ctx *ctx, const char *key, npy_array *out)
{
    return golden_load_as(ctx, key, out, 1);
}

/* The tolerance object for `key` in the current case (falls back to the file's own). */
static const cJSON *tolerance_for(golden_ctx *ctx, const char *key)
{
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(ctx->current, "tolerance_per_output");
    const cJSON *t = per ? cJSON_GetObjectItemCaseSensitive(per, key) : NULL;
    if (t) return t;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(ctx->manifest, "files");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(files, key);
    return f ? cJSON_GetObjectItemCaseSensitive(f, "tolerance") : NULL;
}

static double tol_value(const cJSON *tol, const char *name)
{
    const cJSON *v = tol ? cJSON_GetObjectItemCaseSensitive(tol, name) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

void golden_record(golden_ctx *ctx, const char *key, int pass, double abs_err, double rel_err, double tol, double ratio,
                   const char *what)
{
    ctx->outputs_checked++;
    if (!pass) ctx->outputs_failed++;
    if (ctx->n_compared < GOLDEN_MAX_COMPARED) snprintf(ctx->compared[ctx->n_compared++], sizeof ctx->compared[0], "%s", key);
    if (ratio > ctx->worst_ratio || ctx->outputs_checked == 1 || (!pass && ctx->outputs_failed == 1)) {
        ctx->worst_ratio = ratio;
        ctx->worst_abs = abs_err;
        ctx->worst_rel = rel_err;
        ctx->worst_tol = tol;
        snprintf(ctx->worst_name, sizeof ctx->worst_name, "%s", key);
    }
    if (ctx->verbose)
        printf("    %-28s max_abs %.3e  rel %.3e  %s %-9.3g %s\n", key, abs_err, rel_err, what, tol, pass ? "PASS" : "FAIL");
}

int golden_check(golden_ctx *ctx, const char *key, const float *data, int64_t n)
{
    npy_array ref;
    if (golden_load(ctx, key, &ref) != COSY_OK) {
        fprintf(stderr, "golden: %s: %s\n", key, cosy_last_error());
        golden_record(ctx, key, 0, INFINITY, INFINITY, 0, INFINITY, "missing");
        return 0;
    }
    if (ref.numel != n) {
        fprintf(stderr, "golden: %s: engine produced %lld values, the reference has %lld\n", key, (long long)n, (long long)ref.numel);
        npy_free(&ref);
        golden_record(ctx, key, 0, INFINITY, INFINITY, 0, INFINITY, "size");
        return 0;
    }
    double max_abs = 0.0, max_ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)data[i] - (double)ref.f32[i]);
        if (!(d <= max_abs)) max_abs = isnan(d) ? INFINITY : d;
        double r = fabs((double)ref.f32[i]);
        if (r > max_ref) max_ref = r;
    }
    double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
    const cJSON *tol = tolerance_for(ctx, key);
    double t_rel = tol_value(tol, "max_abs_rel"), t_abs = tol_value(tol, "max_abs");
    int pass = 1;
    double ratio = 0, shown = 0;
    const char *what = "tol";
    if (t_rel >= 0) { pass = pass && rel <= t_rel; ratio = t_rel > 0 ? rel / t_rel : (rel > 0 ? INFINITY : 0); shown = t_rel; what = "rel-tol"; }
    if (t_abs >= 0) {
        pass = pass && max_abs <= t_abs;
        double r = t_abs > 0 ? max_abs / t_abs : (max_abs > 0 ? INFINITY : 0);
        if (r >= ratio) { ratio = r; shown = t_abs; what = "abs-tol"; }
    }
    if (t_rel < 0 && t_abs < 0) { pass = 0; what = "no-tol"; }
    /* same_argmax for rows of log-probabilities (lm_logp, lm_bi_logp): the last dimension */
    if (pass && ref.ndim >= 2 && strstr(key, "logp")) {
        int64_t cols = ref.shape[ref.ndim - 1], rows = n / cols;
        for (int64_t r = 0; r < rows && pass; r++) {
            int64_t a = 0, b = 0;
            for (int64_t c = 1; c < cols; c++) {
                if (data[r * cols + c] > data[r * cols + a]) a = c;
                if (ref.f32[r * cols + c] > ref.f32[r * cols + b]) b = c;
            }
            if (a != b) {
                fprintf(stderr, "golden: %s: row %lld argmax %lld, reference %lld\n", key, (long long)r, (long long)a, (long long)b);
                pass = 0;
            }
        }
    }
    npy_free(&ref);
    golden_record(ctx, key, pass, max_abs, rel, shown, ratio, what);
    return pass;
}

int golden_check_ints(golden_ctx *ctx, const char *key, const int64_t *data, int64_t n)
{
    npy_array ref;
    if (golden_load_int(ctx, key, &ref) != COSY_OK) { /* missing, or a float reference holding no integers */
        fprintf(stderr, "golden: %s: %s\n", key, cosy_last_error());
        golden_record(ctx, key, 0, INFINITY, INFINITY, 0, INFINITY, "missing");
        return 0;
    }
    int pass = ref.numel == n;
    int64_t first_bad = -1;
    double max_abs = 0;
    for (int64_t i = 0; pass && i < n; i++) {
        double d = fabs((double)(data[i] - ref.i64[i]));
        if (d > max_abs) max_abs = d;
        if (d != 0 && first_bad < 0) first_bad = i;
    }
    if (ref.numel != n)
        fprintf(stderr, "golden: %s: engine produced %lld values, the reference has %lld\n", key, (long long)n, (long long)ref.numel);
    else if (first_bad >= 0) {
        fprintf(stderr, "golden: %s: first difference at index %lld: %lld, reference %lld\n", key, (long long)first_bad,
                (long long)data[first_bad], (long long)ref.i64[first_bad]);
        pass = 0;
    }
    npy_free(&ref);
    golden_record(ctx, key, pass, max_abs, max_abs, 0, pass ? 0 : INFINITY, "exact");
    return pass;
}

void golden_dump(golden_ctx *ctx, const char *name, const float *data, const int64_t *shape, int ndim)
{
    if (!ctx->dump_dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.npy", ctx->dump_dir, name);
    if (npy_save_f32(path, data, shape, ndim) != COSY_OK) fprintf(stderr, "golden: dump %s: %s\n", path, cosy_last_error());
}

static const cli_usage usage = {
    .cmd = "golden",
    .synopsis = "DIR [--case NAME] [-v] [--dump OUTDIR] [--threads N]",
    .description = "Runs every case of DIR/golden/manifest.json that the engine implements against DIR/model\n"
                   "(converted on the fly, f32; a CosyVoice2 or CosyVoice3 directory) and prints one line per case:\n"
                   "name, max abs error, error relative to the reference's max magnitude, tolerance, PASS/FAIL.\n"
                   "Cases the engine knowingly does not run for the model's family (not implemented yet, or a\n"
                   "tolerance the reference cannot meet) are listed as SKIP with the reason; an unknown case, or a\n"
                   "case whose declared output was never compared, FAILs. Exit status: 1 if any case failed; if any\n"
                   "was skipped, --incomplete-exit's code when given; 77 (skipped) if the fixture set is absent or\n"
                   "every selected case was skipped; else 0.\n",
};

#define MAX_CASES 64
typedef struct {
    const char *names[MAX_CASES];
    int n;
} case_list;

/* --case NAME, repeatable */
static int add_case(const char *cmd, const cli_option *o, const char *value)
{
    case_list *l = o->dest;
    if (l->n == MAX_CASES) return cli_usage_error(cmd, "%s: at most %d cases", o->name, MAX_CASES);
    l->names[l->n++] = value;
    return CLI_GO_ON;
}

int cmd_golden(int argc, char **argv)
{
    const char *dir = NULL;
    case_list cases_wanted = {.n = 0};
    long long threads = 0, incomplete_exit = -1;
    int skip_known = 0;
    golden_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    const cli_option opts[] = {
        {.name = "--case", .kind = CLI_OPT_CUSTOM, .dest = &cases_wanted, .parse = add_case, .hint = "NAME",
         .help = "run only this case (repeatable)"},
        CLI_OPTION_VERBOSE(&ctx.verbose, "one line per output of each case"),
        {.name = "--dump", .kind = CLI_OPT_STRING, .dest = &ctx.dump_dir, .hint = "OUTDIR",
         .help = "write intermediates (.npy) for locating a mismatch stage by stage"},
        CLI_OPTION_THREADS(&threads),
        {.name = "--incomplete-exit", .kind = CLI_OPT_INT, .dest = &incomplete_exit, .hint = "CODE", .min = 0, .max = 255,
         .help = "exit with CODE (77: ctest's SKIP) when no case failed but some were skipped (not implemented, or\n"
                 "deliberately: a tolerance the reference cannot meet)"},
        {.name = "--skip-known", .kind = CLI_OPT_FLAG, .dest = &skip_known,
         .help = "list a case named by --case that is knowingly skipped as SKIP instead of running its handler\n"
                 "(ctest lists such cases as skipped, one entry each)"},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options(&usage, opts, argc, argv, &dir);
    if (rc != CLI_GO_ON) return rc;
    ctx.n_threads = (int)threads;
    const char *const *only = cases_wanted.names;
    const int n_only = cases_wanted.n;
    if (!dir) return cli_usage_error("golden", "the fixture directory is required");
    ctx.dir = dir;

    char path[1024];
    snprintf(path, sizeof path, "%s/golden/manifest.json", dir);
    char *text;
    if (access(path, F_OK) != 0) { /* no fixture set here: the check could not run (ctest SKIP) */
        fprintf(stderr, "cosy golden: %s: no such fixture manifest, skipped\n", path);
        return 77;
    }
    cosy_status st = cosy_file_read_all(path, &text, NULL);
    if (st != COSY_OK) return cli_fail("golden", st);
    ctx.manifest = cJSON_Parse(text);
    free(text);
    const cJSON *cases = ctx.manifest ? cJSON_GetObjectItemCaseSensitive(ctx.manifest, "cases") : NULL;
    if (!cJSON_IsArray(cases)) {
        cJSON_Delete(ctx.manifest);
        fprintf(stderr, "cosy golden: %s: not a manifest (no \"cases\" list)\n", path);
        return 1;
    }

    /* convert the model directory to a temporary f32 model */
    char model_dir[1024], tmp_model[1024];
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    const char *tmpdir = getenv("TMPDIR");
    snprintf(tmp_model, sizeof tmp_model, "%s/cosy-golden-%d.gguf", tmpdir && *tmpdir ? tmpdir : "/tmp", (int)getpid());
    cosy_convert_params cp = cosy_convert_default_params();
    st = cosy_convert(model_dir, tmp_model, &cp);
    if (st == COSY_OK) {
        /* the parity check runs the reference path: every module in f32 */
        cosy_model_params mp = cosy_model_default_params();
        mp.lm_dtype = mp.flow_dtype = mp.hift_dtype = COSY_DTYPE_F32;
        mp.n_threads = ctx.n_threads;
        /* the fixtures check the f32 reference path; AUTO would pick bf16 for the vocoder on CPUs with
         * AMX or AVX512-BF16, whose error against f32 test_hift_bf16 bounds instead */
        mp.hift_dtype = COSY_DTYPE_F32;
        st = cosy_model_load(tmp_model, &mp, &ctx.model);
    }
    unlink(tmp_model); /* the map stays valid until the model is freed */
    if (st != COSY_OK) {
        cJSON_Delete(ctx.manifest);
        return cli_fail("golden", st);
    }

    int n_pass = 0, n_fail = 0, n_skip = 0;
    printf("%-22s %12s %12s %12s  %s\n", "case", "max_abs", "rel", "tolerance", "result");
    for (const cJSON *c = cases->child; c; c = c->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!cJSON_IsString(name)) continue;
        if (n_only) {
            int want = 0;
            for (int k = 0; k < n_only; k++) want |= !strcmp(only[k], name->valuestring);
            if (!want) continue;
        }
        const golden_handler *h = find_handler(name->valuestring, (int)ctx.model->hp.family);
        if (!h) {
            printf("%-22s %12s %12s %12s  FAIL (unknown case: no handler, and not listed as skipped)\n", name->valuestring, "-", "-", "-");
            n_fail++;
            continue;
        }
        if (h->why && !(h->run && n_only && !skip_known)) { /* one with a handler still runs when named by --case (to --dump it) */
            printf("%-22s %12s %12s %12s  SKIP (%s)\n", name->valuestring, "-", "-", "-", h->why);
            n_skip++;
            continue;
        }
        ctx.current = c;
        ctx.n_compared = 0;
        ctx.outputs_checked = ctx.outputs_failed = 0;
        ctx.worst_ratio = 0;
        ctx.worst_name[0] = 0;
        cosy_error_clear();
        if (ctx.verbose) printf("%s:\n", name->valuestring);
        st = h->run(&ctx);
        const char *never = st == COSY_OK ? uncompared_output(&ctx, c) : NULL;
        int pass = st == COSY_OK && ctx.outputs_failed == 0 && ctx.outputs_checked > 0 && !never;
        if (never) printf("%-22s %12s %12s %12s  FAIL (declared output %s was never compared)\n", name->valuestring, "-", "-", "-", never);
        else
        if (st != COSY_OK)
            printf("%-22s %12s %12s %12s  FAIL (%s)\n", name->valuestring, "-", "-", "-", cosy_last_error());
        else
            printf("%-22s %12.3e %12.3e %12.3g  %s%s%s%s\n", name->valuestring, ctx.worst_abs, ctx.worst_rel, ctx.worst_tol,
                   pass ? "PASS" : "FAIL", ctx.outputs_checked > 1 ? " (worst: " : "", ctx.outputs_checked > 1 ? ctx.worst_name : "",
                   ctx.outputs_checked > 1 ? ")" : "");
        if (pass) n_pass++;
        else n_fail++;
    }
    golden_resample_kernels(&ctx, only, n_only, &n_pass, &n_fail);
    printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    cosy_model_free(ctx.model);
    cJSON_Delete(ctx.manifest);
    if (n_only && n_pass + n_fail + n_skip == 0) {
        fprintf(stderr, "cosy golden: no case of %s is named by --case\n", dir);
        return 1;
    }
    if (n_fail) return 1;
    if (n_skip && incomplete_exit >= 0) return (int)incomplete_exit;
    return n_pass == 0 && n_skip > 0 ? 77 : 0;
}
