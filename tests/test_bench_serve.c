/* test_bench_serve.c — `cosy bench serve` against a real `cosy serve` on the tiny fixture model:
 * HTTP and WebSocket runs whose JSON says every request succeeded, with ordered percentiles,
 * first chunk before the end and some audio; and the refusals (no server, https, bad ranges). */
#define _GNU_SOURCE
#include "test.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t server_pid = -1;

static void stop_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        int status;
        /* up to 10 s for a clean stop, then SIGKILL */
        for (int i = 0; i < 100 && waitpid(server_pid, &status, WNOHANG) == 0; i++) usleep(100000);
        if (waitpid(server_pid, &status, WNOHANG) == 0) {
            kill(server_pid, SIGKILL);
            waitpid(server_pid, &status, 0);
        }
        server_pid = -1;
    }
}

static void on_signal(int sig)
{
    stop_server();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Runs a shell command; stdout into out (truncated), stderr into err; returns the exit code. */
static int run(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t size, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void dump_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fclose(f);
}

/* Starts cosy serve on a free port; returns the port, or -1 (log in log_path). */
static int start_server(const char *model, const char *voices, const char *log_path)
{
    unlink(log_path);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the server goes when the test does, however it ends */
        FILE *f = freopen(log_path, "w", stderr);
        if (!f) _exit(127);
        execl(COSY_BIN, COSY_BIN, "serve", "-m", model, "--voices", voices, "--port", "0", "--quiet", "--max-sessions", "2", (char *)NULL);
        _exit(127);
    }
    server_pid = pid;
    for (int i = 0; i < 1200; i++) { /* up to 120 s (ASan builds load slowly) */
        FILE *f = fopen(log_path, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            const char *at = strstr(line, "listening on http://127.0.0.1:");
            if (at) {
                fclose(f);
                return atoi(at + strlen("listening on http://127.0.0.1:"));
            }
        }
        if (f) fclose(f);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            server_pid = -1;
            return -1;
        }
        usleep(100000);
    }
    return -1;
}

static const cJSON *item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) fprintf(stderr, "bench JSON: no \"%s\"\n", key);
    return v;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = item(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* n > 0 and avg, p50 <= p90 <= p95 <= p99 <= max, all >= 0 */
static void check_summary(const cJSON *s, const char *name, int min_n)
{
    double p50 = num(s, "p50"), p90 = num(s, "p90"), p95 = num(s, "p95"), p99 = num(s, "p99"), mx = num(s, "max"), avg = num(s, "avg");
    int ok = num(s, "n") >= min_n && p50 >= 0 && p50 <= p90 && p90 <= p95 && p95 <= p99 && p99 <= mx && avg >= 0 && avg <= mx;
    if (!ok) fprintf(stderr, "%s: n %g avg %g p50 %g p90 %g p95 %g p99 %g max %g\n", name, num(s, "n"), avg, p50, p90, p95, p99, mx);
    CHECK(ok);
}

static void check_run(const char *out, const char *transport, int requests)
{
    const char *brace = strchr(out, '{');
    cJSON *j = brace ? cJSON_Parse(brace) : NULL;
    CHECK(j != NULL);
    if (!j) {
        fprintf(stderr, "bench output: %.1000s\n", out);
        return;
    }
    CHECK(!strcmp(cJSON_GetStringValue(item(j, "transport")) ? cJSON_GetStringValue(item(j, "transport")) : "", transport));
    CHECK(num(j, "requests") == requests);
    CHECK(num(j, "ok") == requests);
    CHECK(num(j, "failed") == 0);
    CHECK(cJSON_GetArraySize(item(j, "errors")) == 0);
    const cJSON *first = item(j, "first_chunk_ms"), *second = item(j, "second_chunk_ms"), *total = item(j, "total_ms"), *gap = item(j, "gap_ms");
    check_summary(first, "first_chunk_ms", requests);
    check_summary(total, "total_ms", requests);
    check_summary(second, "second_chunk_ms", 0);
    check_summary(gap, "gap_ms", 0);
    /* every request's first chunk comes before its end, so each order statistic does too */
    CHECK(num(first, "p50") <= num(total, "p50"));
    CHECK(num(first, "max") <= num(total, "max"));
    CHECK(num(first, "avg") <= num(total, "avg"));
    if (num(second, "n") > 0) CHECK(num(first, "p50") <= num(second, "p50"));
    CHECK(num(j, "audio_s") > 0);
    CHECK(num(j, "rtf") > 0);
    CHECK(num(j, "throughput") > 0);
    CHECK(num(j, "chunks") >= requests);
    const cJSON *u = item(j, "underruns");
    CHECK(num(u, "events") >= 0 && num(u, "stall_ms") >= 0);
    if (test_failures_) fprintf(stderr, "bench output: %.3000s\n", out);
    cJSON_Delete(j);
}

int main(void)
{
    atexit(stop_server);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGALRM, on_signal);
    alarm(900);

    static char out[1 << 16];
    char model[1024], voices[1024], voice[1200], log_path[1024];
    snprintf(model, sizeof model, "%s", test_tmp("bench-serve.gguf"));
    snprintf(voices, sizeof voices, "%s", test_tmp("bench-serve-voices"));
    snprintf(log_path, sizeof log_path, "%s", test_tmp("bench-serve.log"));
    snprintf(voice, sizeof voice, "%s/fox.voice", voices);
    mkdir(voices, 0755);

    /* refusals that need no server */
    CHECK(run(out, sizeof out, "%s bench serve --url https://127.0.0.1:1/ 2>&1", COSY_BIN) == 2 && strstr(out, "https is not supported"));
    CHECK(run(out, sizeof out, "%s bench serve --concurrency 257 2>&1", COSY_BIN) == 2 && strstr(out, "--concurrency needs 1..256"));
    CHECK(run(out, sizeof out, "%s bench serve --requests 0 2>&1", COSY_BIN) == 2 && strstr(out, "--requests needs 1..100000"));
    CHECK(run(out, sizeof out, "%s bench serve --url http://127.0.0.1:8080/v1 2>&1", COSY_BIN) == 2);

    CHECK(run(out, sizeof out, "%s convert %s -o %s 2>&1", COSY_BIN, test_data("cv2-voice-tiny/model"), model) == 0);
    CHECK(run(out, sizeof out,
              "%s voice import -m %s --wav %s --text 'The quick brown fox jumps over the lazy dog near the riverbank.' -o %s 2>&1", COSY_BIN,
              model, test_data("cv2-voice-tiny/golden/en_16k_prompt.wav"), voice) == 0);
    if (test_failures_) return test_finish("test_bench_serve");

    int port = start_server(model, voices, log_path);
    CHECK(port > 0);
    if (port <= 0) {
        dump_file(log_path);
        return test_finish("test_bench_serve");
    }
    const char *text = "Hello there. How are you?";
    int rc = run(out, sizeof out, "%s bench serve --url http://127.0.0.1:%d/ --concurrency 2 --requests 6 --text '%s' --json", COSY_BIN, port, text);
    CHECK(rc == 0);
    check_run(out, "http", 6);
    rc = run(out, sizeof out, "%s bench serve --url http://127.0.0.1:%d/ --concurrency 2 --requests 6 --warmup 1 --text '%s' --ws --json", COSY_BIN,
             port, text);
    CHECK(rc == 0);
    check_run(out, "ws", 6);
    /* the table, and an unknown voice refused before any load */
    rc = run(out, sizeof out, "%s bench serve --url http://127.0.0.1:%d/ --requests 1 --format wav --text 'Hi there.'", COSY_BIN, port);
    CHECK(rc == 0 && strstr(out, "first chunk") && strstr(out, "1 ok, 0 failed") && strstr(out, "underruns:"));
    if (rc) fprintf(stderr, "bench output: %s\n", out);
    CHECK(run(out, sizeof out, "%s bench serve --url http://127.0.0.1:%d/ --voice nobody 2>&1", COSY_BIN, port) == 1 &&
          strstr(out, "does not offer voice 'nobody'"));
    stop_server();
    if (test_failures_) dump_file(log_path);

    /* the server is gone: a clean refusal, exit 1 */
    CHECK(run(out, sizeof out, "%s bench serve --url http://127.0.0.1:%d/ 2>&1", COSY_BIN, port) == 1 && strstr(out, "not reachable"));
    return test_finish("test_bench_serve");
}
