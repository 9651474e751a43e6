/*
 * lm_batch.h — internal to the LM (lm.c, lm_batch.c): the rendezvous that turns short feeds of
 * different sequences, made at the same time by different threads (one LM producer per session),
 * into one forward pass, so that each weight matrix is read once for all of them (see lm.h,
 * "Batched decode across sequences").
 *
 * lm.c owns the forward pass (lm_forward_requests); lm_batch.c owns the queue and the batch thread
 * that calls it. A caller's request lives on its stack until lm_batcher_submit returns.
 */
#ifndef COSY_LM_BATCH_H
#define COSY_LM_BATCH_H

#include <pthread.h>
#include <stdint.h>
#include "model/lm.h"

/* Rows one forward may stack: the gemv kernels' rows per pass over the weights (COSY_GEMV_MAX_T).
 * A batch never exceeds it, so a batched row goes through exactly the kernels of a solo feed. */
#define LM_BATCH_ROWS COSY_LM_BATCH_MAX

typedef struct lm_request {
    cosy_lm_state *st;
    const cosy_lm_kind *kinds;  /* with ids: positions by table and id ... */
    const int32_t *ids;
    const float *embeds;        /* ... or caller-made embeddings [n][lm_hidden] (kinds == NULL) */
    int n;                      /* positions, already validated, the cache already grown */
    float *logp;                /* NULL: no head */
    pthread_cond_t *done_cv;    /* signalled (under the batcher's mutex) when `done` is set */
    int done;
    struct lm_request *next;
} lm_request;

/* Runs the requests (distinct states of one LM, at most LM_BATCH_ROWS positions in all when n > 1)
 * as one forward pass on the calling thread (lm.c). */
void lm_forward_requests(lm_request *const *reqs, int n);

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* the batch thread: a request was queued, or stop */
    lm_request *head, *tail;    /* FIFO of waiting requests */
    int thread_state;           /* 0 not started, 1 running, -1 could not start (requests run inline) */
    int stop;
    pthread_t thread;
    cosy_lm_batch_counts counts;
} lm_batcher;

void lm_batcher_init(lm_batcher *b);
/* Stops and joins the batch thread (no request may be pending). */
void lm_batcher_destroy(lm_batcher *b);
/* Queues `req` for the batch thread and returns when it has run; runs it on the caller's thread
 * when the batch thread cannot be started. */
void lm_batcher_submit(lm_batcher *b, lm_request *req);
void lm_batcher_counts(lm_batcher *b, cosy_lm_batch_counts *out);

#endif
