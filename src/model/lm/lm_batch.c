/*
 * lm_batch.c — batched decode across sequences: the queue where concurrent short feeds of different
 * sequences meet, and the thread that runs them as one forward (lm_batch.h).
 *
 * A caller queues its feed and sleeps on its state's condition variable. The batch thread sleeps
 * until something is queued, then runs a forward (lm.c's lm_batch, one layer at a time) of every feed
 * queued by then; between layers it lets newcomers join — their rows go through the layers already
 * done (alone, or with other newcomers), then on with the others — while the forward is in its first
 * half (later, the others would wait too long for the catch-up) and the rows fit; the rest wait for
 * the next forward. When a forward ends, all its callers are woken. Nobody waits for anybody: a
 * forward starts as soon as one feed is queued, no timer, no spinning.
 *
 * Why joining mid-forward, and why a thread of its own (measured with `cosy bench lm --sequences 2`,
 * q4_0, full size, 2 cores; a lone sequence decodes 97 tokens/s):
 *   - a forward of only what is queued when it starts: of the members of a forward, one is back with
 *     its next token first, finds nothing running and starts a forward alone; the other queues behind
 *     it, and the two alternate one-row forwards for ever (1.03 feeds per forward, this thread without
 *     joining). Whoever runs forwards, a late member has to be able to join one under way.
 *   - the first caller leading on its own thread, with joining: the leader gets its answer first and
 *     is back (its sampling takes ~40 µs) before the other member has even been woken, so that one
 *     joins a few layers late and catches up alone: 1.86 feeds and 30.6 layer passes per forward (24
 *     when nothing catches up), 126-130 tokens/s.
 *   - this thread, with joining: every member is woken alike and the thread, woken by the first to
 *     queue, finds the others queued or about to be: 2.00 feeds and 24.5-24.8 layer passes per
 *     forward, 147-159 tokens/s (four sequences: 3.90 feeds, 204 tokens/s against 175 led).
 * The price is a hand-off to this thread and back per feed while two or more sequences exist (a
 * lone sequence never queues).
 *
 * The batch thread starts on the first queued feed and lives until the LM is freed. lm.c only queues
 * feeds of at most LM_BATCH_ROWS positions (a prefill runs alone, on its caller's thread).
 */
#include "model/lm/lm_batch.h"

#include <string.h>

void lm_batcher_init(lm_batcher *b, int layers)
{
    memset(b, 0, sizeof *b);
    b->join_layers = (layers + 1) / 2;
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
    lm_batcher *bt = arg;
    lm_batch b = {.n = 0};
    lm_request *take[LM_BATCH_ROWS];
    pthread_mutex_lock(&bt->mu);
    for (;;) {
        while (b.n == 0 && !bt->head && !bt->stop) pthread_cond_wait(&bt->wake, &bt->mu);
        if (b.n == 0 && !bt->head) break;
        /* first come, first served, while the rows fit and the forward is early enough for a newcomer
         * to catch up (it delays the others by the layers it has to do alone) */
        int k = 0, rows = b.n ? b.rows : 0;
        if (b.n == 0 || b.layer[0] < bt->join_layers)
            while (bt->head && rows + bt->head->n <= LM_BATCH_ROWS) {
                rows += bt->head->n;
                take[k++] = bt->head;
                bt->head = bt->head->next;
            }
        if (!bt->head) bt->tail = NULL;
        pthread_mutex_unlock(&bt->mu);
        for (int i = 0; i < k; i++) lm_batch_admit(&b, take[i]);
        int done = lm_batch_step(&b);
        pthread_mutex_lock(&bt->mu);
        bt->counts.passes++;
        if (!done) continue;
        bt->counts.forwards++;
        bt->counts.requests += b.n;
        if (b.n > 1) bt->counts.shared++;
        if (b.n > bt->counts.largest) bt->counts.largest = b.n;
        for (int i = 0; i < b.n; i++) {
            b.req[i]->done = 1;
            pthread_cond_signal(b.req[i]->done_cv);
        }
        b.n = 0;
    }
    pthread_mutex_unlock(&bt->mu);
    return NULL;
}

void lm_batcher_submit(lm_batcher *b, lm_request *req)
{
    pthread_mutex_lock(&b->mu);
    if (b->thread_state == 0) b->thread_state = pthread_create(&b->thread, NULL, batch_main, b) == 0 ? 1 : -1;
    if (b->thread_state < 0) {
        pthread_mutex_unlock(&b->mu);
        lm_forward_alone(req);
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
