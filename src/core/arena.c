/* arena.c — bump allocator (see arena.h). */
#include "core/arena.h"
#include "core/error.h"

#include <pthread.h>
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

/* Per-thread scratch that persists between calls: allocating ~100 KB-1 MB per product made glibc map
 * and unmap (or trim and regrow) memory thousands of times per flow chunk, doubling its time. */
typedef struct {
    void *p;
    size_t size;
} tls_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *v)
{
    tls_scratch *t = v;
    if (!t) return;
    cosy_aligned_free(t->p);
    free(t);
}

static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

void *cosy_thread_scratch(size_t bytes)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok) return NULL;
    tls_scratch *t = pthread_getspecific(scratch_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        if (pthread_setspecific(scratch_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (t->size < bytes) {
        size_t n = bytes + bytes / 4 + 4096;
        void *p = cosy_aligned_alloc(n);
        if (!p) return NULL;
        cosy_aligned_free(t->p);
        t->p = p;
        t->size = n;
    }
    return t->p;
}
