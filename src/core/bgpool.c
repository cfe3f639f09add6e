#define _GNU_SOURCE
#include "core/bgpool.h"
#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define BGPOOL_MAX_THREADS 64

struct task {
    void (*fn)(void *);
    void *arg;
    struct task *next;
};

struct bgpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct task *head, *tail;
    int queued, running, max_queue;
    bool stopping;
    int nthreads;
    pthread_t th[BGPOOL_MAX_THREADS];
    char name[16];
};

static void *run(void *arg)
{
    bgpool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) pthread_cond_wait(&p->cond, &p->lock);
        struct task *t = p->head;
        if (!t) break; /* stopping and drained */
        p->head = t->next;
        if (!p->head) p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->lock);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&p->lock);
        p->running--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

bgpool *bgpool_new(const char *name, int threads, int max_queue)
{
    if (threads < 1) threads = 1;
    if (threads > BGPOOL_MAX_THREADS) threads = BGPOOL_MAX_THREADS;
    bgpool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->max_queue = max_queue > 0 ? max_queue : 1;
    snprintf(p->name, sizeof p->name, "%s", name ? name : "bg");
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->th[p->nthreads], NULL, run, p) != 0) break;
        pthread_setname_np(p->th[p->nthreads], p->name);
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        LOG_E("bgpool", "cannot start any %s thread", p->name);
        bgpool_free(p);
        return NULL;
    }
    return p;
}

int bgpool_submit(bgpool *p, void (*fn)(void *), void *arg)
{
    if (!p) return -1;
    struct task *t = xcalloc(1, sizeof *t);
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&p->lock);
    int rc = -1;
    if (!p->stopping && p->queued < p->max_queue) {
        if (p->tail) p->tail->next = t;
        else p->head = t;
        p->tail = t;
        p->queued++;
        pthread_cond_signal(&p->cond);
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    if (rc != 0) free(t);
    return rc;
}

int bgpool_pending(bgpool *p)
{
    if (!p) return 0;
    pthread_mutex_lock(&p->lock);
    int n = p->queued + p->running;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void bgpool_free(bgpool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
