/*
 * test_server.c — `cosy serve` in-process on the fixture model: authorisation, every refusal of the
 * speech route with its status and message, determinism, the wav and SSE framings against the pcm
 * bytes, the token2wav route against cosy_token2wav in-process, metrics, a client that hangs up,
 * and a load test: 50 concurrent clients, a fifth of them hanging up mid-stream, every completed
 * answer byte-identical to the same request made alone (run under ASan by CI: no crash, no leak).
 */
#define _GNU_SOURCE
#include "test.h"
#include "http_test_client.h"

#include "core/clock.h"
#include "io/wav.h"
#include "server/server.h"

#include <pthread.h>
#include <sys/stat.h>

static int port;
#define KEY_HEADER "Authorization: Bearer sekret\r\nContent-Type: application/json\r\n"

static int post(const char *path, const char *json, http_reply *r)
{
    return http_request(port, "POST", path, KEY_HEADER, json, strlen(json), 0, r);
}

/* status and a piece of the message */
static void expect_error(const char *json, int status, const char *needle)
{
    http_reply r;
    CHECK(post("/v1/audio/speech", json, &r) == 0);
    CHECK(r.status == status);
    CHECK(r.body && strstr(r.body, needle) != NULL);
    CHECK(r.body && strstr(r.body, "\"error\"") != NULL);
    if (r.status != status || !r.body || !strstr(r.body, needle)) fprintf(stderr, "  %s -> %d %s\n", json, r.status, r.body ? r.body : "");
    http_reply_free(&r);
}

static char *speech_json(const char *text, const char *format, int seed, const char *extra)
{
    char *j = malloc(strlen(text) + 512);
    /* extra first: cJSON takes the first of repeated keys, so extra may override the cap */
    sprintf(j, "{\"model\":\"tts-1\",\"input\":\"%s\",\"voice\":\"fox\",\"response_format\":\"%s\",\"seed\":%d%s,\"max_speech_tokens\":60}", text,
            format, seed, extra ? extra : "");
    return j;
}

static const char *const texts[] = {"Hello there.", "A second, slightly longer sentence to speak.", "Numbers like 42 and 7.",
                                    "Short one.", "The last of the five texts, with a comma, and more words."};

/* ---- load test ---- */

typedef struct {
    int index, hang_up;
    const char *extra; /* more request fields */
    http_reply reply;
    int rc;
} load_job;

static void *load_main(void *arg)
{
    load_job *j = arg;
    char *json = speech_json(texts[j->index % 5], "pcm", j->index % 5, j->extra);
    j->rc = http_request(port, "POST", "/v1/audio/speech", KEY_HEADER, json, strlen(json), j->hang_up ? 2000 : 0, &j->reply);
    free(json);
    return NULL;
}

static int metric_value(const char *name, double *out)
{
    http_reply r;
    if (http_request(port, "GET", "/metrics", KEY_HEADER, NULL, 0, 0, &r) || r.status != 200) return -1;
    const char *p = strstr(r.body, name);
    while (p && p > r.body && p[-1] != '\n') p = strstr(p + 1, name);
    int ok = p && sscanf(p + strlen(name), " %lf", out) == 1;
    http_reply_free(&r);
    return ok ? 0 : -1;
}

/* Whether every session has ended within 60 s (/readyz). */
static int wait_idle(void)
{
    for (int tries = 0; tries < 1200; tries++) {
        http_reply r;
        if (http_request(port, "GET", "/readyz", NULL, NULL, 0, 0, &r)) return 0;
        int idle = r.body && strstr(r.body, "\"active_sessions\":0") && strstr(r.body, "\"queued\":0");
        http_reply_free(&r);
        if (idle) return 1;
        usleep(50000);
    }
    return 0;
}

int main(void)
{
    cosy_convert_params cp = cosy_convert_default_params();
    CHECK_OK(cosy_convert(test_data("cv2-voice-tiny/model"), test_tmp("server-model.gguf"), &cp));
    cosy_model_params mp = cosy_model_default_params();
    cosy_model *model = NULL;
    CHECK_OK(cosy_model_load(test_tmp("server-model.gguf"), &mp, &model));
    if (!model) return test_finish("test_server");
    cosy_voice *voice = NULL;
    CHECK_OK(cosy_voice_from_audio_file(model, test_data("cv2-voice-tiny/golden/en_16k_prompt.wav"),
                                        "The quick brown fox jumps over the lazy dog near the riverbank.", &voice));
    mkdir(test_tmp("server-voices"), 0755);
    char voice_path[1100];
    snprintf(voice_path, sizeof voice_path, "%s/fox.voice", test_tmp("server-voices"));
    CHECK_OK(cosy_voice_save(voice, voice_path));

    cosy_server_params sp = cosy_server_default_params();
    sp.port = 0;
    sp.api_key = "sekret";
    sp.voices_dir = test_tmp("server-voices");
    sp.max_sessions = 3;
    sp.max_queue = 64;
    sp.max_input_chars = 500;
    sp.max_body_bytes = 8192;
    sp.quiet = 1;
    sp.t2w_ttl_seconds = 5; /* short, to see it expire; longer than any gap between one utterance's calls here */
    cosy_server *srv = NULL;
    CHECK_FAILS(cosy_server_start(model, &(cosy_server_params){.port = 70000, .max_sessions = 1}, &srv), COSY_ERR_INVALID_ARG, "port");
    CHECK_OK(cosy_server_start(model, &sp, &srv));
    if (!srv) return test_finish("test_server");
    port = cosy_server_port(srv);
    CHECK(port > 0);

    /* authorisation: health and the page are public, everything else needs the key */
    http_reply r;
    CHECK(http_request(port, "GET", "/healthz", NULL, NULL, 0, 0, &r) == 0 && r.status == 200);
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/", NULL, NULL, 0, 0, &r) == 0 && r.status == 200 && strstr(r.body, "<html"));
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/v1/voices", NULL, NULL, 0, 0, &r) == 0 && r.status == 401 && strstr(r.body, "API key"));
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/v1/voices", "Authorization: Bearer wrong\r\n", NULL, 0, 0, &r) == 0 && r.status == 401);
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/v1/voices", KEY_HEADER, NULL, 0, 0, &r) == 0 && r.status == 200 && strstr(r.body, "\"fox\""));
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/v1/models", KEY_HEADER, NULL, 0, 0, &r) == 0 && r.status == 200 && strstr(r.body, "cosyvoice2"));
    http_reply_free(&r);

    /* refusals: status, OpenAI's error shape, and a message naming the problem */
    expect_error("{\"input\":\"hi\",", 400, "not a JSON object");
    expect_error("[1,2]", 400, "not a JSON object");
    expect_error("{\"input\":\"h\xff\xfei\",\"voice\":\"fox\"}", 400, "not valid UTF-8");
    expect_error("{\"voice\":\"fox\"}", 400, "input");
    expect_error("{\"input\":\"\",\"voice\":\"fox\"}", 400, "input is empty");
    expect_error("{\"input\":42,\"voice\":\"fox\"}", 400, "must be a string");
    expect_error("{\"input\":\"hi\"}", 400, "voice is required");
    expect_error("{\"input\":\"hi\",\"voice\":\"alloy\"}", 400, "unknown voice 'alloy'");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"model\":\"whisper-1\"}", 400, "not served here");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"response_format\":\"aac\"}", 400, "'aac' is not supported");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"response_format\":\"ogg\"}", 400, "'ogg' is not supported");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"speed\":1.25}", 400, "speed 1.25 is not supported");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"stream_format\":\"chunks\"}", 400, "stream_format");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"mode\":\"sft\"}", 400, "built-in speaker");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"mode\":\"instruct\"}", 400, "needs instructions");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"mode\":\"loud\"}", 400, "mode must be");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"chunk_tokens\":0}", 400, "chunk_tokens must be an integer in 1..10000");
    expect_error("{\"input\":\"hi\",\"voice\":\"fox\",\"seed\":-1}", 400, "seed must be");
    expect_error("{\"input\":\"...\",\"voice\":\"fox\"}", 400, "nothing to say");
    {
        char big[700];
        memset(big, 'a', sizeof big);
        big[sizeof big - 1] = 0;
        char *j = speech_json(big, "pcm", 0, NULL);
        expect_error(j, 400, "the limit is 500");
        free(j);
        char *huge = malloc(9000);
        memset(huge, ' ', 8999);
        huge[8999] = 0;
        memcpy(huge, "{\"input\":\"x\"", 12);
        huge[8998] = '}';
        expect_error(huge, 413, "the limit is 8192 bytes");
        free(huge);
    }
    CHECK(http_request(port, "GET", "/v1/audio/speech", KEY_HEADER, NULL, 0, 0, &r) == 0 && r.status == 405);
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/v1/nothing", KEY_HEADER, NULL, 0, 0, &r) == 0 && r.status == 404);
    http_reply_free(&r);
    CHECK(http_request(port, "GET", "/v1/text-to-speech/fox/stream-input", KEY_HEADER, NULL, 0, 0, &r) == 0 && r.status == 426);
    http_reply_free(&r);

    /* the same request twice gives the same bytes; wav = header + those bytes; SSE deltas decode to them */
    char *solo[5] = {0};
    size_t n_solo[5] = {0};
    for (int i = 0; i < 5; i++) {
        char *j = speech_json(texts[i], "pcm", i, NULL);
        CHECK(post("/v1/audio/speech", j, &r) == 0 && r.status == 200 && r.complete && r.n_body > 0 && r.n_body % 2 == 0);
        CHECK(strcasestr(r.headers, "Content-Type: audio/pcm") != NULL);
        solo[i] = r.body, n_solo[i] = r.n_body;
        r.body = NULL;
        free(j);
    }
    {
        char *j = speech_json(texts[0], "pcm", 0, NULL);
        CHECK(post("/v1/audio/speech", j, &r) == 0 && r.n_body == n_solo[0] && !memcmp(r.body, solo[0], n_solo[0]));
        http_reply_free(&r);
        free(j);
        j = speech_json(texts[0], "wav", 0, NULL);
        CHECK(post("/v1/audio/speech", j, &r) == 0 && r.status == 200 && r.n_body == n_solo[0] + 44 && !memcmp(r.body + 44, solo[0], n_solo[0]));
        CHECK(r.n_body > 44 && !memcmp(r.body, "RIFF", 4) && !memcmp(r.body + 40, "\xff\xff\xff\xff", 4));
        http_reply_free(&r);
        free(j);
        j = speech_json(texts[0], "pcm", 0, ",\"stream_format\":\"sse\"");
        CHECK(post("/v1/audio/speech", j, &r) == 0 && r.status == 200 && strcasestr(r.headers, "text/event-stream"));
        /* concatenate the base64 of every delta, decode, compare */
        size_t got = 0, deltas = 0;
        unsigned char *pcm = malloc(n_solo[0] + 16);
        const char *needle = "\"speech.audio.delta\",\"audio\":\"";
        for (const char *p = r.body; (p = strstr(p, needle)); deltas++) {
            p += strlen(needle);
            unsigned v = 0;
            int bits = 0;
            for (; *p && *p != '"'; p++) {
                const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                const char *at = strchr(tab, *p);
                if (*p == '=' || !at) continue;
                v = v << 6 | (unsigned)(at - tab);
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    if (got < n_solo[0] + 16) pcm[got] = (unsigned char)(v >> bits);
                    got++;
                }
            }
        }
        CHECK(deltas >= 1);
        CHECK(got == n_solo[0] && !memcmp(pcm, solo[0], n_solo[0]));
        CHECK(strstr(r.body, "\"type\":\"speech.audio.done\"") && strstr(r.body, "\"output_tokens\":"));
        free(pcm);
        http_reply_free(&r);
        free(j);
    }

    /* token2wav: the calls of a Triton client give what cosy_token2wav gives in-process */
    {
        int32_t tokens[80];
        for (int i = 0; i < 80; i++) tokens[i] = (i * 97 + 13) % 6561;
        cosy_token2wav *t2w = NULL;
        cosy_token2wav_params tp = cosy_token2wav_default_params();
        tp.seed = 5;
        CHECK_OK(cosy_token2wav_create(model, voice, &tp, &t2w));
        const int cuts[][3] = {{28, 0, 0}, {53, 25, 0}, {80, 50, 1}}; /* tokens so far, offset, finalize */
        for (int c = 0; c < 3 && t2w; c++) {
            const float *audio;
            int ns = 0;
            CHECK_OK(cosy_token2wav_call(t2w, tokens, cuts[c][0], cuts[c][1], cuts[c][2], &audio, &ns));
            int16_t *want = malloc(sizeof(int16_t) * (size_t)(ns + 1));
            cosy_float_to_pcm16(want, audio, ns);
            char json[4096];
            int o = snprintf(json, sizeof json, "{\"request_id\":\"utt-1\",\"voice\":\"fox\",\"seed\":5,\"token_offset\":%d,\"finalize\":%s,\"tokens\":[",
                             cuts[c][1], cuts[c][2] ? "true" : "false");
            for (int i = 0; i < cuts[c][0]; i++) o += snprintf(json + o, sizeof json - (size_t)o, "%s%d", i ? "," : "", tokens[i]);
            snprintf(json + o, sizeof json - (size_t)o, "]}");
            CHECK(post("/v1/token2wav", json, &r) == 0 && r.status == 200);
            CHECK(r.n_body == (size_t)ns * 2 && !memcmp(r.body, want, r.n_body));
            http_reply_free(&r);
            free(want);
        }
        cosy_token2wav_free(t2w);
        /* an utterance left open is dropped once idle for the TTL (5 s here) */
        double open = -1;
        CHECK(post("/v1/token2wav", "{\"request_id\":\"left-open\",\"voice\":\"fox\",\"token_offset\":0,\"tokens\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28]}", &r) == 0 &&
              r.status == 200);
        http_reply_free(&r);
        CHECK(metric_value("cosy_token2wav_open", &open) == 0 && open == 1);
        for (int tries = 0; tries < 200 && open != 0; tries++) {
            usleep(100000);
            CHECK(metric_value("cosy_token2wav_open", &open) == 0);
        }
        CHECK(open == 0);
        /* refusals: token out of range, offset beyond the tokens, a finished request id starts afresh */
        CHECK(post("/v1/token2wav", "{\"request_id\":\"x\",\"voice\":\"fox\",\"token_offset\":0,\"tokens\":[1,2,7000]}", &r) == 0 &&
              r.status == 400 && strstr(r.body, "tokens[2]"));
        http_reply_free(&r);
        CHECK(post("/v1/token2wav", "{\"request_id\":\"x\",\"voice\":\"fox\",\"token_offset\":9,\"tokens\":[1,2,3]}", &r) == 0 &&
              r.status == 400 && strstr(r.body, "token_offset"));
        http_reply_free(&r);
        CHECK(post("/v1/token2wav", "{\"voice\":\"fox\",\"token_offset\":0,\"tokens\":[1]}", &r) == 0 && r.status == 400 &&
              strstr(r.body, "request_id"));
        http_reply_free(&r);
    }

    /* POST /v1/voices: a voice from a recording and its transcript, offered at once and saved */
    {
        FILE *f = fopen(test_data("cv2-voice-tiny/golden/en_16k_prompt.wav"), "rb");
        CHECK(f != NULL);
        static char wav[1 << 20];
        size_t n_wav = f ? fread(wav, 1, sizeof wav, f) : 0;
        if (f) fclose(f);
        const char *b = "----cosyboundary";
        char *form = malloc(n_wav + 2048);
        size_t n = 0;
        n += (size_t)sprintf(form + n, "--%s\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nfox2\r\n", b);
        n += (size_t)sprintf(form + n, "--%s\r\nContent-Disposition: form-data; name=\"transcript\"\r\n\r\n"
                                       "The quick brown fox jumps over the lazy dog near the riverbank.\r\n", b);
        n += (size_t)sprintf(form + n, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fox.wav\"\r\n"
                                       "Content-Type: audio/wav\r\n\r\n", b);
        memcpy(form + n, wav, n_wav);
        n += n_wav;
        n += (size_t)sprintf(form + n, "\r\n--%s--\r\n", b);
        char headers[256];
        snprintf(headers, sizeof headers, "Authorization: Bearer sekret\r\nContent-Type: multipart/form-data; boundary=%s\r\n", b);
        CHECK(http_request(port, "POST", "/v1/voices", headers, form, n, 0, &r) == 0 && r.status == 201 && strstr(r.body, "\"id\":\"fox2\""));
        http_reply_free(&r);
        CHECK(http_request(port, "POST", "/v1/voices", headers, form, n, 0, &r) == 0 && r.status == 409 && strstr(r.body, "exists already"));
        http_reply_free(&r);
        char saved[1100];
        snprintf(saved, sizeof saved, "%s/fox2.voice", test_tmp("server-voices"));
        CHECK(access(saved, R_OK) == 0);
        unlink(saved);
        /* the new voice speaks as the one made in-process from the same recording */
        char *j = speech_json(texts[0], "pcm", 0, NULL);
        char *j2 = malloc(strlen(j) + 2); /* room for the one character "fox2" adds */
        strcpy(j2, j);
        char *at = strstr(j2, "\"fox\"");
        memmove(at + 5, at + 4, strlen(at + 4) + 1);
        memcpy(at, "\"fox2", 5);
        CHECK(post("/v1/audio/speech", j2, &r) == 0 && r.status == 200 && r.n_body == n_solo[0] && !memcmp(r.body, solo[0], n_solo[0]));
        http_reply_free(&r);
        free(j);
        free(j2);
        /* refusals: no transcript, a bad name, not a form */
        n = (size_t)sprintf(form, "--%s\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nfox3\r\n--%s\r\n"
                                  "Content-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\nRIFF\r\n--%s--\r\n", b, b, b);
        CHECK(http_request(port, "POST", "/v1/voices", headers, form, n, 0, &r) == 0 && r.status == 400 && strstr(r.body, "transcript"));
        http_reply_free(&r);
        n = (size_t)sprintf(form, "--%s\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n../evil\r\n--%s\r\n"
                                  "Content-Disposition: form-data; name=\"transcript\"\r\n\r\nhi\r\n--%s\r\n"
                                  "Content-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\nRIFF\r\n--%s--\r\n", b, b, b, b);
        CHECK(http_request(port, "POST", "/v1/voices", headers, form, n, 0, &r) == 0 && r.status == 400 && strstr(r.body, "'name'"));
        http_reply_free(&r);
        n = (size_t)sprintf(form, "--%s\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nfox4\r\n--%s\r\n"
                                  "Content-Disposition: form-data; name=\"transcript\"\r\n\r\nhi\r\n--%s\r\n"
                                  "Content-Disposition: form-data; name=\"file\"; filename=\"x.wav\"\r\n\r\nnot audio at all\r\n--%s--\r\n", b, b, b, b);
        CHECK(http_request(port, "POST", "/v1/voices", headers, form, n, 0, &r) == 0 && r.status == 400);
        http_reply_free(&r);
        CHECK(post("/v1/voices", "{\"name\":\"x\"}", &r) == 0 && r.status == 415);
        http_reply_free(&r);
        free(form);
    }

    /* a client that hangs up mid-stream: its session is cancelled, the slot comes back */
    {
        double before = 0, after = 0;
        CHECK(metric_value("cosy_disconnects_total", &before) == 0);
        char long_text[600] = "";
        for (int i = 0; i < 8; i++) strcat(long_text, "This sentence is here to make a long answer. ");
        char *j = malloc(1024);
        snprintf(j, 1024, "{\"input\":\"%s\",\"voice\":\"fox\",\"response_format\":\"pcm\",\"strategy\":\"equal\",\"chunk_tokens\":10}", long_text);
        CHECK(http_request(port, "POST", "/v1/audio/speech", KEY_HEADER, j, strlen(j), 100, &r) == 0 && r.status == 200 && !r.complete);
        http_reply_free(&r);
        free(j);
        /* the next write after the hang-up fails; wait for the session to go (readyz shows it) */
        CHECK(wait_idle());
        CHECK(metric_value("cosy_disconnects_total", &after) == 0 && after == before + 1);
    }

    /* load: 50 clients at once, every fifth hangs up after 2000 bytes; the rest must get exactly the solo answers */
    {
        enum { N = 50 };
        load_job jobs[N];
        pthread_t th[N];
        srand(1234);
        int hangups = 0;
        for (int i = 0; i < N; i++) {
            memset(&jobs[i], 0, sizeof jobs[i]);
            jobs[i].index = i;
            jobs[i].hang_up = rand() % 5 == 0;
            hangups += jobs[i].hang_up;
            pthread_create(&th[i], NULL, load_main, &jobs[i]);
        }
        int complete = 0, identical = 0;
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            load_job *j = &jobs[i];
            if (!j->hang_up) {
                complete += j->rc == 0 && j->reply.status == 200 && j->reply.complete;
                identical += j->reply.n_body == n_solo[i % 5] && j->reply.body && !memcmp(j->reply.body, solo[i % 5], n_solo[i % 5]);
            } else CHECK(j->rc == 0 && j->reply.status == 200);
            http_reply_free(&j->reply);
        }
        printf("load: %d clients, %d hung up, %d of %d others complete, %d byte-identical to solo\n", N, hangups, complete, N - hangups, identical);
        CHECK(hangups > 0);
        CHECK(complete == N - hangups);
        CHECK(identical == N - hangups);
        /* the hung-up clients' sessions end at their next chunk */
        CHECK(wait_idle());
    }

    /* metrics: counters by route and status, histograms with their counts */
    CHECK(http_request(port, "GET", "/metrics", KEY_HEADER, NULL, 0, 0, &r) == 0 && r.status == 200);
    CHECK(r.body && strstr(r.body, "cosy_requests_total{route=\"speech\",status=\"200\"}") && strstr(r.body, "status=\"401\"") &&
          strstr(r.body, "cosy_first_audio_seconds_bucket{le=\"+Inf\"}") && strstr(r.body, "cosy_stage_flow_seconds_count"));
    CHECK(r.body && !strstr(r.body, "sekret"));
    {
        FILE *f = fopen(test_tmp("server-metrics.txt"), "wb");
        if (f && r.body) fwrite(r.body, 1, r.n_body, f);
        if (f) fclose(f);
    }
    http_reply_free(&r);

    cosy_server_stop(srv);

    /* a full server: one session, no queue; a second request meanwhile gets 503 with Retry-After */
    {
        cosy_server_params busy = sp;
        busy.max_sessions = 1;
        busy.max_queue = 0;
        busy.api_key = NULL;
        cosy_server *one = NULL;
        CHECK_OK(cosy_server_start(model, &busy, &one));
        port = cosy_server_port(one);
        load_job slow;
        memset(&slow, 0, sizeof slow);
        pthread_t t;
        slow.index = 1;
        slow.extra = ",\"max_speech_tokens\":600"; /* long enough to be seen running */
        pthread_create(&t, NULL, load_main, &slow);
        for (int tries = 0; tries < 1200; tries++) { /* until it holds the one session */
            CHECK(http_request(port, "GET", "/readyz", NULL, NULL, 0, 0, &r) == 0);
            int held = r.body && strstr(r.body, "\"active_sessions\":1");
            http_reply_free(&r);
            if (held) break;
            usleep(5000);
        }
        int saw_busy = 0;
        for (int tries = 0; tries < 200 && !saw_busy; tries++) {
            char *j = speech_json(texts[0], "pcm", 0, NULL);
            CHECK(post("/v1/audio/speech", j, &r) == 0);
            saw_busy = r.status == 503 && strstr(r.headers, "Retry-After: 1") && strstr(r.body, "busy");
            http_reply_free(&r);
            free(j);
        }
        CHECK(saw_busy);
        pthread_join(t, NULL);
        CHECK(slow.rc == 0 && slow.reply.status == 200 && slow.reply.complete && slow.reply.n_body > n_solo[1]);
        http_reply_free(&slow.reply);
        cosy_server_stop(one);
    }

    for (int i = 0; i < 5; i++) free(solo[i]);
    cosy_voice_free(voice);
    cosy_model_free(model);
    return test_finish("test_server");
}
