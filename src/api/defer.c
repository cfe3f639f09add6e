/* api/defer.c: run a handler's slow part on the background pool while its request is
 * suspended (see api.h). The deferral is shared by the request and the pool thread and
 * freed by whichever lets go last. Lock order: d->lock, then the HTTP server's own lock
 * (inside http_resume); nothing else is taken under d->lock. */
#include "api/api.h"
#include "app.h"
#include "core/bgpool.h"
#include "core/util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define DEFERRAL_MAGIC 0x64656672u

typedef struct deferral {
    unsigned magic;    /* tells a deferral from another route's ctx */
    pthread_mutex_t lock;
    int refs;          /* the request's and the task's */
    http_req *r;       /* NULL once the request has ended */
    bool done;
    void *job;
    void (*work)(void *);
    void (*job_free)(void *);
} deferral;

static void unref(deferral *d)
{
    pthread_mutex_lock(&d->lock);
    int left = --d->refs;
    pthread_mutex_unlock(&d->lock);
    if (left) return;
    if (d->job_free) d->job_free(d->job);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static void request_gone(void *ctx)
{
    deferral *d = ctx;
    pthread_mutex_lock(&d->lock);
    d->r = NULL;
    pthread_mutex_unlock(&d->lock);
    unref(d);
}

static void run(void *arg)
{
    deferral *d = arg;
    d->work(d->job);
    pthread_mutex_lock(&d->lock);
    d->done = true;
    /* a suspended request stays alive until resumed, and request_gone waits for the lock */
    if (d->r) http_resume(d->r);
    pthread_mutex_unlock(&d->lock);
    unref(d);
}

int api_defer(http_req *r, struct app *a, void *job, void (*work)(void *),
              void (*job_free)(void *))
{
    deferral *d = xcalloc(1, sizeof *d);
    d->magic = DEFERRAL_MAGIC;
    pthread_mutex_init(&d->lock, NULL);
    d->refs = 2;
    d->r = r;
    d->job = job;
    d->work = work;
    d->job_free = job_free;
    http_set_ctx(r, d, request_gone);
    /* suspended before the task can resume it: run() takes d->lock first */
    pthread_mutex_lock(&d->lock);
    int rc = bgpool_submit(a->bg, run, d);
    if (rc == 0) http_suspend(r);
    else d->refs--; /* the task's */
    pthread_mutex_unlock(&d->lock);
    if (rc != 0) {
        http_add_header(r, "Retry-After", "2");
        http_reply_json(r, 503, json_pack("{s:s,s:s}", "error",
                                          "the server is busy: too many requests are waiting "
                                          "on Vast.ai or workers; retry shortly",
                                          "kind", "busy"));
        return -1;
    }
    return 0;
}

void *api_deferred(http_req *r)
{
    deferral *d = http_ctx(r);
    if (!d || d->magic != DEFERRAL_MAGIC) return NULL;
    pthread_mutex_lock(&d->lock);
    bool done = d->done;
    pthread_mutex_unlock(&d->lock);
    return done ? d->job : NULL;
}
