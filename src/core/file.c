/* file.c — memory maps and whole-file reads (see file.h). */
#define _GNU_SOURCE
#include "core/file.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

cosy_status cosy_file_map(const char *path, cosy_mapped_file *out)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cosy_error(errno == ENOENT ? COSY_ERR_MISSING : COSY_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cosy_error(COSY_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cosy_error(COSY_ERR_IO, "%s: not a regular file", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return cosy_error(COSY_ERR_IO, "%s: mmap: %s", path, strerror(e));
        }
        out->data = p;
    } else {
        out->data = (const unsigned char *)"";
    }
    close(fd);
    out->path = strdup(path);
    if (!out->path) {
        cosy_file_unmap(out);
        return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", path);
    }
    return COSY_OK;
}

cosy_status cosy_file_borrow(const void *data, size_t size, const char *name, cosy_mapped_file *out)
{
    memset(out, 0, sizeof *out);
    out->data = size ? data : (const unsigned char *)"";
    out->size = size;
    out->borrowed = 1;
    out->path = strdup(name);
    if (!out->path) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
    return COSY_OK;
}

void cosy_file_unmap(cosy_mapped_file *f)
{
    if (f->data && f->size > 0 && !f->borrowed) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

cosy_status cosy_file_read_all(const char *path, char **out, size_t *size)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return cosy_error(errno == ENOENT ? COSY_ERR_MISSING : COSY_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(fp); return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, fp);
        len += n;
        if (len < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) { free(buf); fclose(fp); return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", path); }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) { free(buf); return cosy_error(COSY_ERR_IO, "%s: read error", path); }
    buf[len] = '\0';
    *out = buf;
    if (size) *size = len;
    return COSY_OK;
}

int cosy_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *cosy_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t at = a;
    if (a > 0 && dir[a - 1] != '/') p[at++] = '/';
    memcpy(p + at, name, b + 1);
    return p;
}

void cosy_file_release(const cosy_mapped_file *f, const void *p, size_t bytes)
{
    const unsigned char *b = p, *e = b + bytes;
    /* borrowed bytes are the caller's memory: MADV_DONTNEED would zero them, not re-read a file */
    if (!f->data || f->borrowed || b < f->data || e > f->data + f->size) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)b + page - 1) / page * page, hi = (uintptr_t)e / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
