/*
 * lm_batch.h — internal to the LM (lm.c, lm_batch.c): the rendezvous that turns short feeds of
 * different sequences, made at the same time by different threads (one LM producer per session),
 * into one forward pass, so that each weight matrix is read once for all of them (see lm.h,
 * "Batched decode across sequences").
 *
 * lm.c owns the forward pass (lm_forward_alone, lm_batch_*); lm_batch.c owns the queue and the
 * batch thread that runs it. A caller's request lives on its stack until lm_batcher_submit returns.
 */
#ifndef COSY_LM_BATCH_H
#define COSY_LM_BATCH_H

#include <pthread.h>
#include <stdint.h>
#include "model/lm/lm.h"

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

/* Runs one request alone, on the calling thread (lm.c). */
void lm_forward_alone(lm_request *r);

/*
 * A forward of several requests (distinct states of one LM, LM_BATCH_ROWS positions at most in all)
 * advanced one layer at a time, so that a request can join while it runs: the rows are stacked in
 * the buffers of the first request's state, in admission order; a newcomer starts at layer 0 and goes
 * through the layers the others have done (alone, or with other newcomers) until it has caught up,
 * then with them. All of them finish together. (lm.c)
 */
typedef struct {
    lm_request *req[LM_BATCH_ROWS];
    int layer[LM_BATCH_ROWS];   /* the next layer of each request: non-increasing in admission order */
    int row0[LM_BATCH_ROWS];    /* its first row in the stack */
    int n, rows;
} lm_batch;

int lm_layers(const cosy_lm *lm);
/* Stacks r (b->rows + r->n <= LM_BATCH_ROWS) at layer 0. */
void lm_batch_admit(lm_batch *b, lm_request *r);
/* Runs one layer for the requests at the lowest one; returns 1 when all have run every layer and have
 * their log-probabilities (the batch is then over: b->n must be reset before the next admit). */
int lm_batch_step(lm_batch *b);

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* the batch thread: a request was queued, or stop */
    lm_request *head, *tail;    /* FIFO of waiting requests */
    int thread_state;           /* 0 not started, 1 running, -1 could not start (requests run inline) */
    int stop;
    int join_layers;            /* a newcomer joins a forward whose first requests are before this layer */
    pthread_t thread;
    cosy_lm_batch_counts counts;
} lm_batcher;

void lm_batcher_init(lm_batcher *b, int layers);
/* Stops and joins the batch thread (no request may be pending). */
void lm_batcher_destroy(lm_batcher *b);
/* Queues `req` for the batch thread and returns when it has run; runs it on the caller's thread
 * when the batch thread cannot be started. */
void lm_batcher_submit(lm_batcher *b, lm_request *req);
void lm_batcher_counts(lm_batcher *b, cosy_lm_batch_counts *out);

#endif
