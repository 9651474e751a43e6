/* test_cli.c — the `cosy` command as a user runs it: exit codes, one clear line on stderr for
 * every refusal, no partial output, and `cosy info` showing the real dimensions. */
#include "test.h"

#include <stdarg.h>

#include <sys/wait.h>
#include <unistd.h>

/* Runs a shell command; captures stdout+stderr into out (truncated); returns the exit code. */
static int run(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t size, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

int main(void)
{
    static char out[1 << 16];
    const char *model = test_tmp("cli.gguf");
    unlink(model);
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_data("cv2-tiny/model"), model) == 0);
    CHECK(access(model, F_OK) == 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, model) == 0);
    CHECK(strstr(out, "Qwen2 2 layers, hidden 64, heads 4/2 (q/kv), head_dim 16, MLP 128") != NULL);
    CHECK(strstr(out, "speech head 6564") != NULL);
    CHECK(strstr(out, "tokenizer: 1996 tokens, 1720 merges") != NULL);
    CHECK(strstr(out, "tensors: 506") != NULL);

    /* refusals: exit 1, one line naming the problem, nothing written */
    const char *bad_out = test_tmp("cli-bad.gguf");
    unlink(bad_out);
    CHECK(run(out, sizeof out, "%s convert %s -o %s", COSY_BIN, test_tmp("missing-dir"), bad_out) == 1);
    CHECK(lines(out) == 1 && strstr(out, "cosy convert: ") == out && strstr(out, "missing-dir/CosyVoice-BlankEN/config.json"));
    CHECK(access(bad_out, F_OK) != 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_data("cv2-tiny/model/llm.pt")) == 1);
    CHECK(lines(out) == 1 && strstr(out, "not a GGUF file"));
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_tmp("nothing.gguf")) == 1);
    CHECK(lines(out) == 1 && strstr(out, "nothing.gguf: No such file"));

    /* usage errors: exit 2 */
    CHECK(run(out, sizeof out, "%s convert %s", COSY_BIN, test_data("cv2-tiny/model")) == 2);
    CHECK(strstr(out, "-o OUT.gguf is required") != NULL);
    CHECK(run(out, sizeof out, "%s convert --random cv2-tiny -o %s --dtype q4", COSY_BIN, bad_out) == 2);
    CHECK(strstr(out, "unknown --dtype 'q4'") != NULL);
    CHECK(run(out, sizeof out, "%s convert --random cv2-tiny -o %s --seed -3", COSY_BIN, bad_out) == 2);
    CHECK(run(out, sizeof out, "%s frobnicate", COSY_BIN) == 2);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK(run(out, sizeof out, "%s info", COSY_BIN) == 2);
    CHECK(run(out, sizeof out, "%s --help", COSY_BIN) == 0 && strstr(out, "convert"));
    CHECK(access(bad_out, F_OK) != 0);

    /* random weights with the fixture's shapes */
    CHECK(run(out, sizeof out, "%s convert --random cv2-tiny --seed 3 --dtype bf16 -o %s", COSY_BIN, test_tmp("cli-rand.gguf")) == 0);
    CHECK(run(out, sizeof out, "%s info %s", COSY_BIN, test_tmp("cli-rand.gguf")) == 0);
    CHECK(strstr(out, "weights                    random") && strstr(out, "bf16"));
    return test_finish("test_cli");
}
