/* bgpool: a small, bounded pool of background threads for work that may wait on a peer
 * (the Vast API, a worker, the disk), so that no HTTP request thread ever does.
 *
 * bgpool_submit queues fn(arg); up to `threads` run at once, at most `max_queue` wait (the
 * caller learns at once when the pool is full and answers "busy" rather than queueing
 * without bound). Tasks run in submission order. bgpool_free stops taking tasks, runs the
 * ones already queued (callers make their peers fail fast first, e.g. vast_client_cancel),
 * and joins the threads: every task submitted successfully runs exactly once.
 *
 * Thread-safe. Locks: the pool's own mutex, held only to queue and dequeue, never while a
 * task runs; a task may submit further tasks. */
#ifndef GS_BGPOOL_H
#define GS_BGPOOL_H

typedef struct bgpool bgpool;

/* NULL when no thread could be started. */
bgpool *bgpool_new(const char *name, int threads, int max_queue);
/* 0 when queued; -1 when the pool is full or stopping (fn is not called). */
int bgpool_submit(bgpool *p, void (*fn)(void *arg), void *arg);
/* Tasks queued or running now. */
int bgpool_pending(bgpool *p);
void bgpool_free(bgpool *p);

#endif
