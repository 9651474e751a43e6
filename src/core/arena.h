/*
 * arena.h — bump allocator for scratch memory.
 *
 * Per DESIGN.md §3 memory is allocated at load/session start, not per token: a module sizes an
 * arena once, then carves its temporaries out of it on every call and resets it afterwards.
 * All blocks are 64-byte aligned (one cache line, one AVX-512 register).
 */
#ifndef COSY_ARENA_H
#define COSY_ARENA_H

#include <stddef.h>
#include "cosy.h"

typedef struct {
    char *base;
    size_t size;
    size_t used;
    size_t high_water;  /* largest `used` ever seen, to size arenas from measurements */
} cosy_arena;

cosy_status cosy_arena_init(cosy_arena *arena, size_t size);
void cosy_arena_free(cosy_arena *arena);
/* NULL (with an error message set) if the arena is exhausted. */
void *cosy_arena_alloc(cosy_arena *arena, size_t bytes);
float *cosy_arena_floats(cosy_arena *arena, size_t count);
static inline size_t cosy_arena_mark(const cosy_arena *arena) { return arena->used; }
static inline void cosy_arena_release(cosy_arena *arena, size_t mark) { arena->used = mark; }
static inline void cosy_arena_reset(cosy_arena *arena) { arena->used = 0; }

/* 64-byte aligned malloc/free for long-lived buffers. */
void *cosy_aligned_alloc(size_t bytes);
void cosy_aligned_free(void *p);

/* This thread's scratch of at least `bytes` (kept between calls, grown when asked for more, freed when
 * the thread ends); NULL if out of memory. One user per thread at a time: a kernel takes it, uses it
 * and is done before it calls anything else that takes it. */
void *cosy_thread_scratch(size_t bytes);

#endif
