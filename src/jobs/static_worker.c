#include "jobs/static_worker.h"
#include "core/log.h"
#include "core/util.h"
#include "worker/worker_client.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECHECK_S 2.0
#define HEALTH_TIMEOUT_MS 3000

struct static_worker {
    char *url;
    pthread_mutex_t lock;  /* everything below; never held across the health check */
    pthread_cond_t cond;
    bool stopping, recheck;
    bool checked;        /* a check has finished */
    int healthy;
    int slots;           /* from its /health (1 when it does not say) */
    int inflight;        /* jobs sent and not finished */
    pthread_t thread;
    bool started;
};

/* The checker: one health check every RECHECK_S (or at once after a reported failure),
 * with its own short timeout, on its own thread; claims only read its last answer. */
static void *checker(void *arg)
{
    static_worker *w = arg;
    int was = -1;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        w->recheck = false;
        pthread_mutex_unlock(&w->lock);
        char err[256] = "";
        json_t *h = NULL;
        int ok = worker_client_health_ms(w->url, HEALTH_TIMEOUT_MS, &h, err, sizeof err) == 0;
        json_int_t slots = ok ? json_integer_value(json_object_get(h, "slots")) : 0;
        json_decref(h);
        if (ok != was)
            LOG_I("jobs", "worker %s is %s%s%s", w->url, ok ? "ready" : "not answering",
                  ok ? "" : ": ", ok ? "" : err);
        was = ok;
        pthread_mutex_lock(&w->lock);
        w->healthy = ok;
        w->slots = slots > 0 ? (int)slots : 1;
        w->checked = true;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)RECHECK_S;
        while (!w->stopping && !w->recheck &&
               pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0) {}
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static_worker *static_worker_new(const char *url)
{
    static_worker *w = xcalloc(1, sizeof *w);
    w->url = xstrdup(url);
    size_t n = strlen(w->url);
    while (n && w->url[n - 1] == '/') w->url[--n] = '\0';
    w->slots = 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    w->started = pthread_create(&w->thread, NULL, checker, w) == 0;
    if (!w->started) LOG_E("jobs", "cannot start the health checker of worker %s", w->url);
    return w;
}

void static_worker_free(static_worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->started) pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->url);
    free(w);
}

static int ready_worker(void *ud, char *url, size_t n, long long *row, int reserve)
{
    static_worker *w = ud;
    pthread_mutex_lock(&w->lock);
    int ok = w->healthy && (!reserve || w->inflight < w->slots);
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
    pthread_mutex_lock(&w->lock);
    int pending = !w->healthy;
    pthread_mutex_unlock(&w->lock);
    return pending;
}

static void report_failure(void *ud, long long row, const char *why)
{
    (void)row;
    static_worker *w = ud;
    pthread_mutex_lock(&w->lock);
    w->healthy = 0; /* until the check that this wakes says otherwise */
    w->recheck = true;
    pthread_cond_signal(&w->cond);
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
