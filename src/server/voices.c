/*
 * voices.c — the voices a server offers: the model's built-in speakers (SFT), every *.voice file
 * in --voices (zero-shot), and voices made from a recording with POST /v1/voices. Entries are
 * only ever added, so a request may keep a voice pointer for as long as it runs.
 */
#define _GNU_SOURCE
#include "server/server_internal.h"

#include "core/error.h"
#include "model/model.h"
#include "model/voice/voice.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64 || id[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static const server_voice *find_locked(server_voices *v, const char *id)
{
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->items[i].id, id)) return &v->items[i];
    return NULL;
}

/* Takes ownership of voice. */
static cosy_status add_voice(server_voices *v, const char *id, cosy_voice *voice, int builtin)
{
    pthread_mutex_lock(&v->mu);
    cosy_status st = COSY_OK;
    if (find_locked(v, id)) st = cosy_error(COSY_ERR_INVALID_ARG, "a voice called '%s' exists already", id);
    if (st == COSY_OK && v->n == v->cap) {
        int ncap = v->cap ? v->cap * 2 : 16;
        server_voice *ni = realloc(v->items, sizeof *ni * (size_t)ncap);
        if (!ni) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
        else v->items = ni, v->cap = ncap;
    }
    char *copy = st == COSY_OK ? strdup(id) : NULL;
    if (st == COSY_OK && !copy) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) {
        server_voice *e = &v->items[v->n++];
        e->id = copy;
        e->voice = voice;
        e->builtin = builtin;
        e->has_prompt = voice->n_prompt_text > 0 && voice->n_llm_prompt_tokens > 0;
    }
    pthread_mutex_unlock(&v->mu);
    if (st != COSY_OK) cosy_voice_free(voice);
    return st;
}

const server_voice *voices_find(cosy_server *srv, const char *id)
{
    pthread_mutex_lock(&srv->voices.mu);
    const server_voice *e = find_locked(&srv->voices, id);
    pthread_mutex_unlock(&srv->voices.mu);
    return e;
}

cosy_status voices_load(cosy_server *srv)
{
    cosy_model *m = srv->model;
    for (int i = 0; i < m->n_speakers; i++) {
        cosy_voice *v;
        COSY_TRY(cosy_voice_from_speaker(m, m->speakers[i], &v));
        COSY_TRY(add_voice(&srv->voices, m->speakers[i], v, 1));
    }
    if (!srv->voices_dir) return COSY_OK;
    DIR *d = opendir(srv->voices_dir);
    if (!d) return cosy_error(COSY_ERR_IO, "serve: cannot open the voices directory %s", srv->voices_dir);
    struct dirent *de;
    cosy_status st = COSY_OK;
    while (st == COSY_OK && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= 6 || strcmp(de->d_name + n - 6, ".voice")) continue;
        char id[256], path[4096];
        snprintf(id, sizeof id, "%.*s", (int)(n - 6), de->d_name);
        snprintf(path, sizeof path, "%s/%s", srv->voices_dir, de->d_name);
        if (!valid_id(id)) {
            fprintf(stderr, "cosy serve: skipping %s (a voice name is 1-64 of A-Z a-z 0-9 _ - .)\n", path);
            continue;
        }
        cosy_voice *v = NULL;
        st = cosy_voice_load(path, &v);
        if (st == COSY_OK) st = cosy_voice_validate(v, m);
        if (st == COSY_OK) st = add_voice(&srv->voices, id, v, 0);
        else if (v) cosy_voice_free(v);
        if (st != COSY_OK) cosy_error_prefix(st, "serve: voice %s", path);
    }
    closedir(d);
    return st;
}

void voices_free(server_voices *v)
{
    for (int i = 0; i < v->n; i++) {
        free(v->items[i].id);
        cosy_voice_free(v->items[i].voice);
    }
    free(v->items);
    pthread_mutex_destroy(&v->mu);
    memset(v, 0, sizeof *v);
}

static cJSON *voice_json(const server_voice *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", e->id);
    cJSON_AddStringToObject(o, "object", "voice");
    cJSON_AddStringToObject(o, "kind", e->builtin ? "builtin" : "prompt");
    cJSON *modes = cJSON_AddArrayToObject(o, "modes");
    if (e->builtin) cJSON_AddItemToArray(modes, cJSON_CreateString("sft"));
    if (e->has_prompt) cJSON_AddItemToArray(modes, cJSON_CreateString("zero-shot"));
    cJSON_AddItemToArray(modes, cJSON_CreateString("cross-lingual"));
    cJSON_AddItemToArray(modes, cJSON_CreateString("instruct"));
    cJSON_AddNumberToObject(o, "prompt_seconds", e->voice->n_prompt_frames / 50.0);
    if (e->voice->transcript) cJSON_AddStringToObject(o, "transcript", e->voice->transcript);
    return o;
}

/* ---- POST /v1/voices: multipart form with `file` (a recording) and `transcript` ---- */

typedef struct {
    char *audio;
    size_t n_audio, limit;
    char *transcript, *name;
    size_t n_transcript, n_name;
    int too_big;
    char field;      /* the field being received: 'f'ile, 'n'ame, 't'ranscript */
} voice_form;

static int form_found(const char *key, const char *filename, char *path, size_t pathlen, void *user)
{
    (void)filename, (void)path, (void)pathlen, (void)user;
    if (!strcmp(key, "file") || !strcmp(key, "audio") || !strcmp(key, "transcript") || !strcmp(key, "text") || !strcmp(key, "name"))
        return MG_FORM_FIELD_STORAGE_GET;
    return MG_FORM_FIELD_STORAGE_SKIP;
}

static int append(char **buf, size_t *n, const char *data, size_t len, size_t limit, int *too_big)
{
    if (*n + len > limit) {
        *too_big = 1;
        return MG_FORM_FIELD_HANDLE_ABORT;
    }
    char *nb = realloc(*buf, *n + len + 1);
    if (!nb) {
        *too_big = 1;
        return MG_FORM_FIELD_HANDLE_ABORT;
    }
    memcpy(nb + *n, data, len);
    *n += len;
    nb[*n] = 0;
    *buf = nb;
    return MG_FORM_FIELD_HANDLE_GET;
}

static int form_get(const char *key, const char *value, size_t len, void *user)
{
    voice_form *f = user;
    /* civetweb passes a long field in pieces, the later ones with an empty key */
    if (key && key[0]) f->field = !strcmp(key, "file") || !strcmp(key, "audio") ? 'f' : !strcmp(key, "name") ? 'n' : 't';
    if (f->field == 'f') return append(&f->audio, &f->n_audio, value, len, f->limit, &f->too_big);
    if (f->field == 'n') return append(&f->name, &f->n_name, value, len, 256, &f->too_big);
    return append(&f->transcript, &f->n_transcript, value, len, 64 * 1024, &f->too_big);
}

static int create_voice(http_req *r)
{
    const size_t limit = 16u << 20;
    if (r->ri->content_length > (long long)limit)
        return http_error(r, 413, "file", "the upload is %lld bytes; the limit is %zu bytes", r->ri->content_length, limit);
    const char *ct = mg_get_header(r->conn, "Content-Type");
    if (!ct || strncasecmp(ct, "multipart/form-data", 19))
        return http_error(r, 415, NULL, "send multipart/form-data with fields file (a recording), transcript and name");
    voice_form f;
    memset(&f, 0, sizeof f);
    f.limit = limit;
    struct mg_form_data_handler h = {form_found, form_get, NULL, &f};
    int fields = mg_handle_form_request(r->conn, &h);
    char tmp[] = "/tmp/cosy-voice-XXXXXX";
    int fd = -1, done = 0;
    cosy_voice *v = NULL;
    if (f.too_big) done = http_error(r, 413, "file", "a form field is larger than its limit (file: %zu bytes)", limit);
    else if (fields < 0) done = http_error(r, 400, NULL, "the multipart form could not be read");
    else if (!f.n_audio) done = http_error(r, 400, "file", "no recording: send it in the form field 'file'");
    else if (!f.transcript || !f.n_transcript) done = http_error(r, 400, "transcript", "no transcript: send what the recording says in 'transcript'");
    else if (!f.name || !valid_id(f.name)) done = http_error(r, 400, "name", "'name' must be 1-64 characters of A-Z a-z 0-9 _ - . (not starting with .)");
    else if (voices_find(r->srv, f.name)) done = http_error(r, 409, "name", "a voice called '%s' exists already", f.name);
    if (!done) {
        fd = mkstemp(tmp);
        if (fd < 0 || write(fd, f.audio, f.n_audio) != (ssize_t)f.n_audio) done = http_error(r, 500, NULL, "cannot store the upload");
    }
    if (!done) {
        cosy_status st = cosy_voice_from_audio_file(r->srv->model, tmp, f.transcript, &v);
        if (st != COSY_OK) done = http_error(r, http_status_of(st), "file", "%s", cosy_last_error());
    }
    if (!done && r->srv->voices_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.voice", r->srv->voices_dir, f.name);
        cosy_status st = cosy_voice_save(v, path);
        if (st != COSY_OK) done = http_error(r, 500, NULL, "cannot save the voice: %s", cosy_last_error());
    }
    if (!done) {
        cosy_voice *keep = v;
        v = NULL;
        cosy_status st = add_voice(&r->srv->voices, f.name, keep, 0);
        if (st != COSY_OK) done = http_error(r, 409, "name", "%s", cosy_last_error());
        else done = http_json(r, 201, voice_json(voices_find(r->srv, f.name)));
    }
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    cosy_voice_free(v);
    free(f.audio);
    free(f.transcript);
    free(f.name);
    return done;
}

int route_voices(http_req *r)
{
    if (!strcmp(r->ri->request_method, "POST")) return create_voice(r);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    pthread_mutex_lock(&r->srv->voices.mu);
    for (int i = 0; i < r->srv->voices.n; i++) cJSON_AddItemToArray(data, voice_json(&r->srv->voices.items[i]));
    pthread_mutex_unlock(&r->srv->voices.mu);
    return http_json(r, 200, root);
}

int route_models(http_req *r)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->srv->model_id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", 0);
    cJSON_AddStringToObject(o, "owned_by", "cosy");
    cJSON_AddNumberToObject(o, "sample_rate", cosy_model_sample_rate(r->srv->model));
    cJSON_AddItemToArray(data, o);
    return http_json(r, 200, root);
}
