/*
 * file.h — read-only memory maps of input files and small whole-file reads.
 */
#ifndef COSY_FILE_H
#define COSY_FILE_H

#include <stddef.h>
#include "cosy.h"

typedef struct {
    const unsigned char *data;
    size_t size;
    char *path; /* owned copy, for error messages */
    int borrowed; /* data belongs to the caller (cosy_file_borrow): unmap leaves it alone */
} cosy_mapped_file;

cosy_status cosy_file_map(const char *path, cosy_mapped_file *out);
/* A view of bytes already in memory (an upload, a fuzzer's input) that the parsers built on
 * cosy_mapped_file read like a mapped file; `name` is used in messages. The caller keeps `data`
 * alive and unchanged until cosy_file_unmap, which then frees only the name. */
cosy_status cosy_file_borrow(const void *data, size_t size, const char *name, cosy_mapped_file *out);
void cosy_file_unmap(cosy_mapped_file *f);
/* Gives back the physical pages behind [p, p + bytes) of a mapped file (the whole pages inside it):
 * for weights that were repacked into another form at load time, so the file's copy does not stay
 * resident next to the packed one. The bytes stay readable (the kernel reads them again if touched). */
void cosy_file_release(const cosy_mapped_file *f, const void *p, size_t bytes);
/* Whole file into a NUL-terminated malloc'ed buffer. */
cosy_status cosy_file_read_all(const char *path, char **out, size_t *size);
int cosy_file_exists(const char *path);
/* Joins dir and name with one '/', into a malloc'ed string (NULL on OOM). */
char *cosy_path_join(const char *dir, const char *name);

#endif
