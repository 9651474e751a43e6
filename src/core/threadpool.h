/*
 * threadpool.h — one pool of worker threads sized to the cores; kernels split work over it.
 *
 * cosy_pool_run(pool, n, fn, ctx) calls fn(ctx, i) for i in [0, n) on the pool's threads (the
 * calling thread takes part) and returns when all calls are done. One parallel region runs at a
 * time per pool; a call from inside a region (nested) runs inline on the calling thread.
 *
 * Waking a sleeping thread costs ~10 µs, and an LM decode step issues ~170 parallel regions,
 * so idle workers spin briefly (bounded, with `pause`) before sleeping on a condition variable.
 * This is a latency optimisation for back-to-back kernels, not a way of waiting for data: the
 * stream layer waits for tokens on condition variables only.
 */
#ifndef COSY_THREADPOOL_H
#define COSY_THREADPOOL_H

#include "cosy.h"

typedef struct cosy_pool cosy_pool;
typedef void (*cosy_task_fn)(void *ctx, int task);

/* n_threads counts the caller; 0 = number of online CPUs. */
cosy_status cosy_pool_create(int n_threads, cosy_pool **out);
void cosy_pool_free(cosy_pool *pool);
int cosy_pool_size(const cosy_pool *pool);
void cosy_pool_run(cosy_pool *pool, int n_tasks, cosy_task_fn fn, void *ctx);

/* Splits [0, n) into `parts` nearly equal ranges; range `part` is [*begin, *end). */
static inline void cosy_split_range(int n, int parts, int part, int *begin, int *end)
{
    int base = n / parts, extra = n % parts;
    *begin = part * base + (part < extra ? part : extra);
    *end = *begin + base + (part < extra ? 1 : 0);
}

int cosy_online_cpus(void);

#endif
