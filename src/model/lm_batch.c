/*
 * lm_batch.c — batched decode across sequences: the queue where concurrent short feeds of different
 * sequences meet, and the thread that runs whatever is queued as one forward pass (lm_batch.h).
 *
 * Why a thread of its own rather than "the first caller leads": with two sessions decoding, the
 * caller that led a batch gets its answer first, samples its next token (~40 µs) and comes back
 * before the other member has even been woken; finding nothing running it would lead again, alone,
 * and the two sequences settle into alternating one-row forwards that never share a pass. Here every
 * member of a batch is woken the same way, and the batch thread, woken by the first to come back,
 * takes everything queued when it runs — the others are back by then, and a batch re-forms step
 * after step. Nobody waits for anybody: the thread runs as soon as one request is queued (no timer,
 * no spinning), and a request that comes late is simply in the next forward.
 *
 * The batch thread starts on the first queued request and lives until the LM is freed. lm.c only
 * queues when another sequence exists (a lone sequence feeds on its own thread, at no extra cost) and
 * only feeds of at most LM_BATCH_ROWS positions (a prefill runs alone, on its caller's thread).
 */
#include "model/lm_batch.h"

#include <string.h>

void lm_batcher_init(lm_batcher *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake, NULL);
}

void lm_batcher_destroy(lm_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->wake);
    int running = b->thread_state == 1;
    pthread_mutex_unlock(&b->mu);
    if (running) pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
}

static void *batch_main(void *arg)
{
    lm_batcher *b = arg;
    lm_request *take[LM_BATCH_ROWS];
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop) pthread_cond_wait(&b->wake, &b->mu);
        if (!b->head) break;
        /* first come, first served: take requests in order while their rows fit in one pass */
        int n = 0, rows = 0;
        while (b->head && rows + b->head->n <= LM_BATCH_ROWS) {
            rows += b->head->n;
            take[n++] = b->head;
            b->head = b->head->next;
        }
        if (!b->head) b->tail = NULL;
        pthread_mutex_unlock(&b->mu);
        lm_forward_requests(take, n);
        pthread_mutex_lock(&b->mu);
        b->counts.forwards++;
        b->counts.requests += n;
        if (n > 1) b->counts.shared++;
        if (n > b->counts.largest) b->counts.largest = n;
        for (int i = 0; i < n; i++) {
            take[i]->done = 1;
            pthread_cond_signal(take[i]->done_cv);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

void lm_batcher_submit(lm_batcher *b, lm_request *req)
{
    pthread_mutex_lock(&b->mu);
    if (b->thread_state == 0) b->thread_state = pthread_create(&b->thread, NULL, batch_main, b) == 0 ? 1 : -1;
    if (b->thread_state < 0) {
        pthread_mutex_unlock(&b->mu);
        lm_forward_requests(&req, 1);
        return;
    }
    req->done = 0;
    req->next = NULL;
    if (b->tail) b->tail->next = req;
    else b->head = req;
    b->tail = req;
    pthread_cond_signal(&b->wake);
    while (!req->done) pthread_cond_wait(req->done_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

void lm_batcher_counts(lm_batcher *b, cosy_lm_batch_counts *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->counts;
    pthread_mutex_unlock(&b->mu);
}
