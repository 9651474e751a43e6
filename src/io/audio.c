/* audio.c — prompt audio through libsndfile (see audio.h). */
#include "io/audio.h"
#include "core/error.h"

#include <errno.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_AUDIO_FRAMES (1ll << 31)
#define MAX_AUDIO_CHANNELS 64

/* Reads every frame of an open file and averages the channels. Closes `sf`. */
static cosy_status decode(SNDFILE *sf, const SF_INFO *info, const char *name, cosy_wav *out)
{
    cosy_status st = COSY_OK;
    float *block = NULL, *mono = NULL;
    int64_t n = 0, cap = 0;
    const int channels = info->channels;
    enum { BLOCK_FRAMES = 8192 };
    if (channels < 1 || channels > MAX_AUDIO_CHANNELS) {
        st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: %d channels (1 to %d supported)", name, channels, MAX_AUDIO_CHANNELS);
        goto done;
    }
    if (info->samplerate < 1 || info->samplerate > 768000) {
        st = cosy_error(COSY_ERR_FORMAT, "%s: sample rate %d Hz is out of range", name, info->samplerate);
        goto done;
    }
    block = malloc(sizeof(float) * BLOCK_FRAMES * (size_t)channels);
    /* the header's frame count is a hint only (streamed files may not know it) */
    cap = info->frames > 0 && info->frames < MAX_AUDIO_FRAMES ? info->frames : BLOCK_FRAMES;
    mono = malloc(sizeof(float) * (size_t)cap);
    if (!block || !mono) {
        st = cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (;;) {
        sf_count_t got = sf_readf_float(sf, block, BLOCK_FRAMES);
        if (got <= 0) break;
        if (n + got > MAX_AUDIO_FRAMES) {
            st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: more than %lld frames", name, MAX_AUDIO_FRAMES);
            goto done;
        }
        if (n + got > cap) {
            int64_t want = cap * 2 > n + got ? cap * 2 : n + got;
            float *grown = realloc(mono, sizeof(float) * (size_t)want);
            if (!grown) {
                st = cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
                goto done;
            }
            mono = grown;
            cap = want;
        }
        for (sf_count_t i = 0; i < got; i++) {
            const float *frame = block + (size_t)i * (size_t)channels;
            float sum = frame[0];
            for (int c = 1; c < channels; c++) sum += frame[c];
            mono[n + i] = channels == 1 ? sum : sum / (float)channels;
        }
        n += got;
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        st = cosy_error(COSY_ERR_FORMAT, "%s: decoding failed after %lld frames: %s", name, (long long)n, sf_strerror(sf));
        goto done;
    }
    if (n == 0) {
        st = cosy_error(COSY_ERR_FORMAT, "%s: the file holds no audio (0 frames)", name);
        goto done;
    }
    out->samples = mono;
    out->n_samples = n;
    out->sample_rate = info->samplerate;
    out->channels = channels;
    mono = NULL;
done:
    free(block);
    free(mono);
    sf_close(sf);
    return st;
}

cosy_status cosy_audio_read(const char *path, cosy_wav *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0) return cosy_error(errno == ENOENT ? COSY_ERR_MISSING : COSY_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return cosy_error(COSY_ERR_IO, "%s: is a directory, not an audio file", path);
    if (sb.st_size == 0) return cosy_error(COSY_ERR_FORMAT, "%s: the file is empty", path);
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf) return cosy_error(COSY_ERR_FORMAT, "%s: not a readable audio file: %s", path, sf_strerror(NULL));
    return decode(sf, &info, path, out);
}

/* libsndfile's virtual I/O over a memory buffer */
typedef struct {
    const unsigned char *data;
    sf_count_t size, pos;
} memory_source;

static sf_count_t mem_length(void *user) { return ((memory_source *)user)->size; }
static sf_count_t mem_tell(void *user) { return ((memory_source *)user)->pos; }
static sf_count_t mem_seek(sf_count_t offset, int whence, void *user)
{
    memory_source *m = user;
    sf_count_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
    sf_count_t at = base + offset;
    if (at < 0 || at > m->size) return -1;
    m->pos = at;
    return at;
}
static sf_count_t mem_read(void *ptr, sf_count_t count, void *user)
{
    memory_source *m = user;
    sf_count_t left = m->size - m->pos;
    if (count > left) count = left;
    if (count > 0) memcpy(ptr, m->data + m->pos, (size_t)count);
    m->pos += count;
    return count;
}
static sf_count_t mem_write(const void *ptr, sf_count_t count, void *user) { return 0; }

cosy_status cosy_audio_parse(const void *data, size_t size, const char *name, cosy_wav *out)
{
    memset(out, 0, sizeof *out);
    if (size == 0) return cosy_error(COSY_ERR_FORMAT, "%s: the audio is empty", name);
    memory_source m = {data, (sf_count_t)size, 0};
    SF_VIRTUAL_IO io = {mem_length, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    if (!sf) return cosy_error(COSY_ERR_FORMAT, "%s: not a readable audio file: %s", name, sf_strerror(NULL));
    return decode(sf, &info, name, out);
}
