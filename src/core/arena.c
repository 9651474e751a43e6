/* arena.c — bump allocator (see arena.h). */
#include "core/arena.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define COSY_ALIGN 64

void *cosy_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = COSY_ALIGN;
    bytes = (bytes + COSY_ALIGN - 1) & ~(size_t)(COSY_ALIGN - 1);
    if (posix_memalign(&p, COSY_ALIGN, bytes) != 0) return NULL;
    return p;
}

void cosy_aligned_free(void *p) { free(p); }

cosy_status cosy_arena_init(cosy_arena *arena, size_t size)
{
    memset(arena, 0, sizeof *arena);
    arena->base = cosy_aligned_alloc(size);
    if (!arena->base) return cosy_error(COSY_ERR_NOMEM, "arena: cannot allocate %zu bytes", size);
    arena->size = size;
    return COSY_OK;
}

void cosy_arena_free(cosy_arena *arena)
{
    cosy_aligned_free(arena->base);
    memset(arena, 0, sizeof *arena);
}

void *cosy_arena_alloc(cosy_arena *arena, size_t bytes)
{
    size_t start = (arena->used + COSY_ALIGN - 1) & ~(size_t)(COSY_ALIGN - 1);
    if (start > arena->size || bytes > arena->size - start) {
        cosy_error(COSY_ERR_NOMEM, "arena: %zu bytes requested, %zu of %zu left", bytes,
                   arena->size - (start < arena->size ? start : arena->size), arena->size);
        return NULL;
    }
    arena->used = start + bytes;
    if (arena->used > arena->high_water) arena->high_water = arena->used;
    return arena->base + start;
}

float *cosy_arena_floats(cosy_arena *arena, size_t count)
{
    return (float *)cosy_arena_alloc(arena, count * sizeof(float));
}
