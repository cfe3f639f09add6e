#include "jobs/static_worker.h"
#include "core/log.h"
#include "core/util.h"
#include "worker/worker_client.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RECHECK_S 2.0

struct static_worker {
    char *url;
    pthread_mutex_t lock;
    double checked_at;   /* monotonic; 0 = never */
    int healthy;
    int was_healthy;
    int slots;           /* from its /health (1 when it does not say) */
    int inflight;        /* jobs sent and not finished */
};

static_worker *static_worker_new(const char *url)
{
    static_worker *w = xcalloc(1, sizeof *w);
    w->url = xstrdup(url);
    size_t n = strlen(w->url);
    while (n && w->url[n - 1] == '/') w->url[--n] = '\0';
    pthread_mutex_init(&w->lock, NULL);
    return w;
}

void static_worker_free(static_worker *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->lock);
    free(w->url);
    free(w);
}

static int healthy(static_worker *w)
{
    pthread_mutex_lock(&w->lock);
    double now = now_mono();
    if (w->checked_at == 0 || now - w->checked_at >= RECHECK_S) {
        char err[256];
        json_t *h = NULL;
        int ok = worker_client_health(w->url, &h, err, sizeof err) == 0;
        json_int_t slots = ok ? json_integer_value(json_object_get(h, "slots")) : 0;
        w->slots = slots > 0 ? (int)slots : 1;
        json_decref(h);
        w->checked_at = now_mono();
        w->healthy = ok;
        if (ok != w->was_healthy || w->checked_at == 0)
            LOG_I("jobs", "worker %s is %s%s%s", w->url, ok ? "ready" : "not answering",
                  ok ? "" : ": ", ok ? "" : err);
        w->was_healthy = ok;
    }
    int ok = w->healthy;
    pthread_mutex_unlock(&w->lock);
    return ok;
}

static int ready_worker(void *ud, char *url, size_t n, long long *row, int reserve)
{
    static_worker *w = ud;
    if (!healthy(w)) return -1;
    pthread_mutex_lock(&w->lock);
    int ok = !reserve || w->inflight < w->slots;
    if (ok && reserve) w->inflight++;
    pthread_mutex_unlock(&w->lock);
    if (!ok) return -1;
    snprintf(url, n, "%s", w->url);
    *row = 0;
    return 0;
}

static void release_worker(void *ud, long long row)
{
    (void)row;
    static_worker *w = ud;
    pthread_mutex_lock(&w->lock);
    if (w->inflight > 0) w->inflight--;
    pthread_mutex_unlock(&w->lock);
}

static int gpu_pending(void *ud)
{
    static_worker *w = ud;
    return !healthy(w);
}

static void report_failure(void *ud, long long row, const char *why)
{
    (void)row;
    static_worker *w = ud;
    pthread_mutex_lock(&w->lock);
    w->checked_at = 0; /* re-check at the next claim */
    pthread_mutex_unlock(&w->lock);
    LOG_W("jobs", "worker %s failed: %s", w->url, why);
}

void static_worker_remote(static_worker *w, jobs_remote *r)
{
    r->ready_worker = ready_worker;
    r->release_worker = release_worker;
    r->gpu_pending = gpu_pending;
    r->report_failure = report_failure;
    r->ud = w;
}
