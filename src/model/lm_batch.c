/*
 * lm_batch.c — batched decode across sequences: the queue where concurrent short feeds of different
 * sequences meet, and the leader that runs them as one forward (lm_batch.h).
 *
 * A feed queues itself under the mutex. If no forward is being led, its caller becomes the leader: it
 * runs a forward of everything queued (lm.c's lm_batch, one layer at a time) on its own thread, then
 * wakes the members and hands the lead to the first request still waiting, if any. Callers that come
 * while a forward runs either join it at the next layer boundary — their rows go through the layers
 * already done first (alone or with other newcomers), then on with the others — or, when the forward
 * is too far along (the others would wait for the catch-up) or full, wait for the next one.
 *
 * Joining mid-forward is what makes batches form at all. Two sessions decoding come back from a shared
 * forward a few tens of µs apart (each samples its token on its own thread, and one of them must be
 * woken first); if the first to come back started a forward only the requests queued at that moment
 * could use, it would run alone, the other would queue behind it, and the two would alternate between
 * one-row forwards forever — measured: 1.03 feeds per forward over 1,200 two-sequence steps. Joining
 * at a layer boundary costs the late one a layer or two alone and leaves the other 22 of 24 layers
 * shared (1.98 feeds per forward). Nobody ever waits for anybody: a forward starts as soon as one
 * feed is queued, no timer, no spinning.
 */
#include "model/lm_batch.h"

#include <string.h>

void lm_batcher_init(lm_batcher *b, int layers)
{
    memset(b, 0, sizeof *b);
    b->join_layers = (layers + 1) / 2;
    pthread_mutex_init(&b->mu, NULL);
}

void lm_batcher_destroy(lm_batcher *b) { pthread_mutex_destroy(&b->mu); }

/* Takes the queued requests that may join `f` now, in order: while their rows fit, and while the
 * forward is early enough that catching up delays the others little. Called with the mutex held. */
static int take_joiners(lm_batcher *bt, const lm_batch *f, lm_request **take)
{
    int k = 0, rows = f->n ? f->rows : 0;
    if (f->n && f->layer[0] >= bt->join_layers) return 0;
    while (bt->head && rows + bt->head->n <= LM_BATCH_ROWS) {
        rows += bt->head->n;
        take[k++] = bt->head;
        bt->head = bt->head->next;
    }
    if (!bt->head) bt->tail = NULL;
    return k;
}

/* The leader's work: one forward, from the requests queued now (its own first) to the last layer.
 * Called and returns with the mutex held. */
static void lead(lm_batcher *bt)
{
    lm_batch f = {.n = 0};
    lm_request *take[LM_BATCH_ROWS];
    int done = 0;
    while (!done) {
        int k = take_joiners(bt, &f, take);
        pthread_mutex_unlock(&bt->mu);
        for (int i = 0; i < k; i++) lm_batch_admit(&f, take[i]);
        done = lm_batch_step(&f);
        pthread_mutex_lock(&bt->mu);
        bt->counts.passes++;
    }
    bt->counts.forwards++;
    bt->counts.requests += f.n;
    if (f.n > 1) bt->counts.shared++;
    if (f.n > bt->counts.largest) bt->counts.largest = f.n;
    for (int i = 0; i < f.n; i++) {
        f.req[i]->done = 1;
        pthread_cond_signal(f.req[i]->done_cv);
    }
    /* the next forward is led by the first request that could not join this one */
    bt->leading = bt->head != NULL;
    if (bt->head) {
        bt->head->lead = 1;
        pthread_cond_signal(bt->head->done_cv);
    }
}

void lm_batcher_submit(lm_batcher *bt, lm_request *req)
{
    pthread_mutex_lock(&bt->mu);
    req->done = 0;
    req->next = NULL;
    /* nobody leading means nothing is queued: this request will head the queue and lead */
    req->lead = !bt->leading;
    bt->leading = 1;
    if (bt->tail) bt->tail->next = req;
    else bt->head = req;
    bt->tail = req;
    while (!req->done && !req->lead) pthread_cond_wait(req->done_cv, &bt->mu);
    if (!req->done) lead(bt); /* req heads the queue: its forward is the first one */
    pthread_mutex_unlock(&bt->mu);
}

void lm_batcher_counts(lm_batcher *b, cosy_lm_batch_counts *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->counts;
    pthread_mutex_unlock(&b->mu);
}
