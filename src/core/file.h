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
} cosy_mapped_file;

cosy_status cosy_file_map(const char *path, cosy_mapped_file *out);
void cosy_file_unmap(cosy_mapped_file *f);
/* Whole file into a NUL-terminated malloc'ed buffer. */
cosy_status cosy_file_read_all(const char *path, char **out, size_t *size);
int cosy_file_exists(const char *path);
/* Joins dir and name with one '/', into a malloc'ed string (NULL on OOM). */
char *cosy_path_join(const char *dir, const char *name);

#endif
