/* threadpool.c — persistent workers with a bounded spin before sleeping (see threadpool.h). */
#define _GNU_SOURCE
#include "core/threadpool.h"
#include "core/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* ~50-100 µs of spinning: long enough to bridge consecutive kernels, short enough not to
 * burn a core when the engine is idle. */
#define SPIN_ITERATIONS 20000

struct cosy_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t run_lock; /* one parallel region at a time */
    pthread_mutex_t mutex;
    pthread_cond_t work_cond, done_cond;
    atomic_uint generation;       /* the current region's number; workers wake when it changes */
    atomic_int tasks_done, stop;
    /* Tasks are claimed from one word holding the region number (24 bits), the region's task
     * count and the next index (20 bits each). A worker late leaving region r can never claim a
     * task of region r + 1: its compare-and-swap carries r and fails; and a successful claim
     * proves region r was still open, so the function and context it read were region r's. */
    _Atomic uint64_t claim;
    _Atomic(cosy_task_fn) fn;
    _Atomic(void *) ctx;
};

static _Thread_local int inside_region;

int cosy_online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#define CLAIM_BITS 20
#define CLAIM_MASK ((1u << CLAIM_BITS) - 1u)
#define REGION_MASK 0xffffffu
#define MAX_TASKS ((int)CLAIM_MASK)

static uint64_t claim_word(unsigned region, int n, int next)
{
    return (uint64_t)(region & REGION_MASK) << (2 * CLAIM_BITS) | (uint64_t)n << CLAIM_BITS | (uint64_t)next;
}

/* Runs tasks of region `region` until none are left (or the region is over). */
static void run_tasks(cosy_pool *pool, unsigned region)
{
    cosy_task_fn fn = atomic_load_explicit(&pool->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&pool->ctx, memory_order_relaxed);
    uint64_t v = atomic_load(&pool->claim);
    for (;;) {
        if ((unsigned)(v >> (2 * CLAIM_BITS)) != (region & REGION_MASK)) return;
        int n = (int)((v >> CLAIM_BITS) & CLAIM_MASK), i = (int)(v & CLAIM_MASK);
        if (i >= n) return;
        if (!atomic_compare_exchange_weak(&pool->claim, &v, v + 1)) continue; /* v reloaded */
        fn(ctx, i);
        if (atomic_fetch_add(&pool->tasks_done, 1) + 1 == n) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done_cond);
            pthread_mutex_unlock(&pool->mutex);
        }
        v = atomic_load(&pool->claim);
    }
}

static void *worker_main(void *arg)
{
    cosy_pool *pool = arg;
    unsigned seen = 0;
    inside_region = 1;
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop) &&
               spins < SPIN_ITERATIONS) {
            cpu_relax();
            spins++;
        }
        if (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop)) {
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->work_cond, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = atomic_load(&pool->generation);
        run_tasks(pool, seen);
    }
}

cosy_status cosy_pool_create(int n_threads, cosy_pool **out)
{
    *out = NULL;
    if (n_threads <= 0) n_threads = cosy_online_cpus();
    if (n_threads > 256) return cosy_error(COSY_ERR_INVALID_ARG, "thread pool: %d threads is too many", n_threads);
    cosy_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return cosy_error(COSY_ERR_NOMEM, "thread pool: out of memory");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->work_cond, NULL);
    pthread_cond_init(&pool->done_cond, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->claim, 0);
    atomic_init(&pool->fn, NULL);
    atomic_init(&pool->ctx, NULL);
    atomic_init(&pool->tasks_done, 0);
    atomic_init(&pool->stop, 0);
    pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!pool->threads) { free(pool); return cosy_error(COSY_ERR_NOMEM, "thread pool: out of memory"); }
    for (int i = 1; i < n_threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
            pool->n_threads = i;
            cosy_pool_free(pool);
            return cosy_error(COSY_ERR_NOMEM, "thread pool: cannot start thread %d", i);
        }
    }
    *out = pool;
    return COSY_OK;
}

void cosy_pool_free(cosy_pool *pool)
{
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->work_cond);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->work_cond);
    pthread_cond_destroy(&pool->done_cond);
    pthread_mutex_destroy(&pool->mutex);
    pthread_mutex_destroy(&pool->run_lock);
    free(pool->threads);
    free(pool);
}

int cosy_pool_size(const cosy_pool *pool) { return pool ? pool->n_threads : 1; }

void cosy_pool_run(cosy_pool *pool, int n_tasks, cosy_task_fn fn, void *ctx)
{
    if (n_tasks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1 || inside_region || n_tasks > MAX_TASKS) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&pool->run_lock);
    inside_region = 1;
    unsigned region = atomic_load(&pool->generation) + 1;
    atomic_store_explicit(&pool->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool->ctx, ctx, memory_order_relaxed);
    atomic_store(&pool->tasks_done, 0);
    atomic_store(&pool->claim, claim_word(region, n_tasks, 0));
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->generation, region); /* publishes the fields above */
    pthread_cond_broadcast(&pool->work_cond);
    pthread_mutex_unlock(&pool->mutex);

    run_tasks(pool, region);

    int spins = 0;
    while (atomic_load(&pool->tasks_done) < n_tasks && spins < SPIN_ITERATIONS) { cpu_relax(); spins++; }
    if (atomic_load(&pool->tasks_done) < n_tasks) {
        pthread_mutex_lock(&pool->mutex);
        while (atomic_load(&pool->tasks_done) < n_tasks) pthread_cond_wait(&pool->done_cond, &pool->mutex);
        pthread_mutex_unlock(&pool->mutex);
    }
    inside_region = 0;
    pthread_mutex_unlock(&pool->run_lock);
}
