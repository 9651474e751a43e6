/* zip.c — zip reader for torch checkpoints (see zip.h). */
#include "io/zip.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOCATOR 0x07064b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_LOCAL 0x04034b50u

static uint16_t u16at(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32at(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64at(const unsigned char *p) { return (uint64_t)u32at(p) | (uint64_t)u32at(p + 4) << 32; }

static cosy_status inflate_entry(const char *path, zip_entry *e, const unsigned char *src, uint64_t comp, uint64_t size)
{
    /* deflate expands at most ~1032:1, so a claim beyond that (plus slack) is a lie, not a reason to malloc */
    if (size > (1ull << 34) || size > comp * 1032 + 4096 || size > (uint64_t)(uInt)-1)
        return cosy_error(COSY_ERR_FORMAT, "%s: entry %s claims %llu bytes from %llu compressed bytes", path, e->name,
                          (unsigned long long)size, (unsigned long long)comp);
    e->owned = malloc(size ? (size_t)size : 1);
    if (!e->owned) return cosy_error(COSY_ERR_NOMEM, "%s: cannot inflate %s (%llu bytes)", path, e->name, (unsigned long long)size);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK) return cosy_error(COSY_ERR_NOMEM, "%s: zlib init failed", path);
    zs.next_in = (unsigned char *)src;
    zs.avail_in = (uInt)(comp > 0xffffffffu ? 0xffffffffu : comp);
    zs.next_out = e->owned;
    zs.avail_out = (uInt)size;
    int rc = inflate(&zs, Z_FINISH);
    uint64_t got = zs.total_out;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || got != size)
        return cosy_error(COSY_ERR_FORMAT, "%s: entry %s: corrupt deflate data (zlib %d, %llu of %llu bytes)", path, e->name, rc,
                          (unsigned long long)got, (unsigned long long)size);
    e->data = e->owned;
    e->size = size;
    return COSY_OK;
}

static cosy_status parse(zip_archive *z)
{
    const unsigned char *p = z->file.data;
    size_t size = z->file.size;
    const char *path = z->file.path;
    if (size < 22) return cosy_error(COSY_ERR_FORMAT, "%s: not a zip archive (only %zu bytes): truncated?", path, size);
    size_t eocd = (size_t)-1;
    size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (size_t i = size - 22 + 1; i-- > lowest;) {
        if (u32at(p + i) == SIG_EOCD) { eocd = i; break; }
    }
    if (eocd == (size_t)-1)
        return cosy_error(COSY_ERR_FORMAT, "%s: no zip end-of-central-directory record: truncated or not a PyTorch checkpoint", path);
    uint64_t n = u16at(p + eocd + 10), cd_size = u32at(p + eocd + 12), cd_off = u32at(p + eocd + 16);
    if ((n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) && eocd >= 20 && u32at(p + eocd - 20) == SIG_EOCD64_LOCATOR) {
        uint64_t rec = u64at(p + eocd - 20 + 8);
        if (size < 56 || rec > size - 56 || u32at(p + rec) != SIG_EOCD64)
            return cosy_error(COSY_ERR_FORMAT, "%s: bad zip64 end-of-central-directory record at byte %llu", path, (unsigned long long)rec);
        n = u64at(p + rec + 32);
        cd_size = u64at(p + rec + 40);
        cd_off = u64at(p + rec + 48);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return cosy_error(COSY_ERR_FORMAT, "%s: zip central directory (byte %llu, %llu bytes) lies outside the file: truncated?", path,
                          (unsigned long long)cd_off, (unsigned long long)cd_size);
    if (n > cd_size / 46) return cosy_error(COSY_ERR_FORMAT, "%s: zip claims %llu entries in a %llu-byte directory", path, (unsigned long long)n, (unsigned long long)cd_size);
    z->entries = calloc((size_t)n + 1, sizeof(zip_entry));
    if (!z->entries) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", path);
    size_t pos = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < n; i++) {
        if (pos + 46 > end || u32at(p + pos) != SIG_CENTRAL)
            return cosy_error(COSY_ERR_FORMAT, "%s: corrupt zip central directory entry %llu at byte %zu", path, (unsigned long long)i, pos);
        uint16_t method = u16at(p + pos + 10);
        uint64_t comp = u32at(p + pos + 20), usize = u32at(p + pos + 24);
        uint16_t nlen = u16at(p + pos + 28), xlen = u16at(p + pos + 30), clen = u16at(p + pos + 32);
        uint64_t local = u32at(p + pos + 42);
        if (pos + 46 + (size_t)nlen + xlen + clen > end)
            return cosy_error(COSY_ERR_FORMAT, "%s: zip central directory entry %llu overruns the directory", path, (unsigned long long)i);
        zip_entry *e = &z->entries[i];
        z->n_entries = (int64_t)i + 1;
        e->name = malloc((size_t)nlen + 1);
        if (!e->name) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", path);
        memcpy(e->name, p + pos + 46, nlen);
        e->name[nlen] = '\0';
        /* zip64 extended information: the 0xffffffff fields, in order */
        const unsigned char *x = p + pos + 46 + nlen, *xend = x + xlen;
        while (x + 4 <= xend) {
            uint16_t id = u16at(x), len = u16at(x + 2);
            const unsigned char *f = x + 4;
            if (f + len > xend) break;
            if (id == 0x0001) {
                const unsigned char *q = f;
                if (usize == 0xffffffffu && q + 8 <= f + len) { usize = u64at(q); q += 8; }
                if (comp == 0xffffffffu && q + 8 <= f + len) { comp = u64at(q); q += 8; }
                if (local == 0xffffffffu && q + 8 <= f + len) { local = u64at(q); q += 8; }
            }
            x = f + len;
        }
        if (size < 30 || local > size - 30 || u32at(p + local) != SIG_LOCAL)
            return cosy_error(COSY_ERR_FORMAT, "%s: entry %s: bad local header at byte %llu", path, e->name, (unsigned long long)local);
        uint64_t data = local + 30 + u16at(p + local + 26) + u16at(p + local + 28);
        if (data > size || comp > size - data)
            return cosy_error(COSY_ERR_FORMAT, "%s: entry %s (%llu bytes at byte %llu) runs past the end of the file: truncated?", path,
                              e->name, (unsigned long long)comp, (unsigned long long)data);
        if (method == 0) {
            if (comp != usize)
                return cosy_error(COSY_ERR_FORMAT, "%s: stored entry %s has size %llu but %llu compressed", path, e->name,
                                  (unsigned long long)usize, (unsigned long long)comp);
            e->data = p + data;
            e->size = usize;
        } else if (method == 8) {
            COSY_TRY(inflate_entry(path, e, p + data, comp, usize));
        } else {
            return cosy_error(COSY_ERR_UNSUPPORTED, "%s: entry %s uses zip compression method %u", path, e->name, method);
        }
        pos += 46 + (size_t)nlen + xlen + clen;
    }
    return COSY_OK;
}

cosy_status zip_open(const char *path, zip_archive *out)
{
    memset(out, 0, sizeof *out);
    COSY_TRY(cosy_file_map(path, &out->file));
    cosy_status st = parse(out);
    if (st != COSY_OK) zip_close(out);
    return st;
}

cosy_status zip_open_mem(const void *data, size_t size, const char *name, zip_archive *out)
{
    memset(out, 0, sizeof *out);
    COSY_TRY(cosy_file_borrow(data, size, name, &out->file));
    cosy_status st = parse(out);
    if (st != COSY_OK) zip_close(out);
    return st;
}

void zip_close(zip_archive *z)
{
    if (z->entries)
        for (int64_t i = 0; i < z->n_entries; i++) {
            free(z->entries[i].name);
            free(z->entries[i].owned);
        }
    free(z->entries);
    cosy_file_unmap(&z->file);
    memset(z, 0, sizeof *z);
}

const zip_entry *zip_find(const zip_archive *z, const char *name)
{
    for (int64_t i = 0; i < z->n_entries; i++)
        if (!strcmp(z->entries[i].name, name)) return &z->entries[i];
    return NULL;
}
