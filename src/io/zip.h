/*
 * zip.h — read-only access to the zip archives PyTorch writes (torch.save): entries are found
 * through the central directory (zip64 included), their data through each local header, and
 * stored entries are used in place from the memory map. Deflated entries (an archive re-packed
 * by another tool) are inflated with zlib.
 */
#ifndef COSY_ZIP_H
#define COSY_ZIP_H

#include <stddef.h>
#include <stdint.h>
#include "core/file.h"

typedef struct {
    char *name;
    const unsigned char *data; /* into the map, or into `owned` when inflated */
    uint64_t size;
    unsigned char *owned;
} zip_entry;

typedef struct {
    cosy_mapped_file file;
    zip_entry *entries;
    int64_t n_entries;
} zip_archive;

cosy_status zip_open(const char *path, zip_archive *out);
/* The same over bytes in memory (kept alive by the caller until zip_close); `name` for messages. */
cosy_status zip_open_mem(const void *data, size_t size, const char *name, zip_archive *out);
void zip_close(zip_archive *z);
const zip_entry *zip_find(const zip_archive *z, const char *name);

#endif
