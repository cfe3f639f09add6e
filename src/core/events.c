#include "core/events.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct events_sub {
    events *bus;
    char *data;           /* ring of pending bytes: [head, head+len) modulo cap */
    size_t cap, head, len;
    int closed;
    void (*wake)(void *ud);
    void *ud;
    events_sub *next;
};

struct events {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct store *st;
    events_sub *subs;
    unsigned long long next_id;
    atomic_ullong generation;   /* events published so far (events_generation) */
    double heartbeat_s;
    int stopping;
    int have_thread;
    pthread_t thread;
};

/* caller holds the lock */
static void push(events_sub *s, const char *text, size_t n)
{
    if (s->closed) return;
    if (n > s->cap - s->len) { /* too slow: drop it */
        s->closed = 1;
        s->wake(s->ud);
        return;
    }
    size_t tail = (s->head + s->len) % s->cap;
    size_t first = n < s->cap - tail ? n : s->cap - tail;
    memcpy(s->data + tail, text, first);
    memcpy(s->data, text + first, n - first);
    s->len += n;
    s->wake(s->ud);
}

static void *heartbeat_main(void *arg)
{
    events *bus = arg;
    pthread_mutex_lock(&bus->lock);
    while (!bus->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double when = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + bus->heartbeat_s;
        ts.tv_sec = (time_t)when;
        ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
        int rc = pthread_cond_timedwait(&bus->cond, &bus->lock, &ts);
        if (bus->stopping) break;
        if (rc == ETIMEDOUT) {
            static const char hb[] = ": heartbeat\n\n";
            for (events_sub *s = bus->subs; s; s = s->next) push(s, hb, sizeof hb - 1);
        }
    }
    pthread_mutex_unlock(&bus->lock);
    return NULL;
}

events *events_new(struct store *st, double heartbeat_s)
{
    events *bus = xcalloc(1, sizeof *bus);
    pthread_mutex_init(&bus->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&bus->cond, &ca);
    pthread_condattr_destroy(&ca);
    bus->st = st;
    bus->next_id = 1;
    bus->heartbeat_s = heartbeat_s > 0 ? heartbeat_s : 15;
    if (pthread_create(&bus->thread, NULL, heartbeat_main, bus) == 0) bus->have_thread = 1;
    return bus;
}

void events_shutdown(events *bus)
{
    if (!bus) return;
    pthread_mutex_lock(&bus->lock);
    bus->stopping = 1;
    for (events_sub *s = bus->subs; s; s = s->next) {
        s->closed = 1;
        s->wake(s->ud);
    }
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->lock);
    if (bus->have_thread) {
        pthread_join(bus->thread, NULL);
        bus->have_thread = 0;
    }
}

void events_free(events *bus)
{
    if (!bus) return;
    events_shutdown(bus);
    /* subscriptions still registered belong to streams the HTTP server ends */
    pthread_mutex_lock(&bus->lock);
    while (bus->subs) {
        events_sub *s = bus->subs;
        bus->subs = s->next;
        s->bus = NULL;
    }
    pthread_mutex_unlock(&bus->lock);
    pthread_cond_destroy(&bus->cond);
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}

void events_publish(events *bus, const char *type, json_t *data, int persist)
{
    atomic_fetch_add(&bus->generation, 1); /* the state it reports has already changed */
    if (!data) data = json_object();
    char *js = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(data);
    char *safe = log_redact(js ? js : "{}");
    free(js);
    if (persist && bus->st) {
        const char *subject = NULL;
        json_t *parsed = json_loads(safe, 0, NULL);
        if (parsed) subject = json_string_value(json_object_get(parsed, "id"));
        store_event_add(bus->st, type, subject, safe);
        json_decref(parsed);
    }
    pthread_mutex_lock(&bus->lock);
    char *msg = xasprintf("id: %llu\nevent: %s\ndata: %s\n\n", bus->next_id++, type, safe);
    size_t n = strlen(msg);
    for (events_sub *s = bus->subs; s; s = s->next) push(s, msg, n);
    pthread_mutex_unlock(&bus->lock);
    free(msg);
    free(safe);
}

unsigned long long events_generation(events *bus)
{
    return bus ? atomic_load(&bus->generation) : 0;
}

events_sub *events_subscribe(events *bus, size_t max_buffer, void (*wake)(void *ud), void *ud)
{
    events_sub *s = xcalloc(1, sizeof *s);
    s->bus = bus;
    s->cap = max_buffer ? max_buffer : 256 * 1024;
    s->data = xmalloc(s->cap);
    s->wake = wake;
    s->ud = ud;
    pthread_mutex_lock(&bus->lock);
    if (bus->stopping) s->closed = 1;
    s->next = bus->subs;
    bus->subs = s;
    /* greet: lets clients know the stream is live (and flushes proxies) */
    static const char hello[] = "retry: 3000\n: connected\n\n";
    memcpy(s->data, hello, sizeof hello - 1);
    s->len = sizeof hello - 1;
    pthread_mutex_unlock(&bus->lock);
    return s;
}

long events_read(events_sub *s, char *out, size_t max)
{
    events *bus = s->bus;
    if (!bus) return -1;
    pthread_mutex_lock(&bus->lock);
    long n;
    if (s->len == 0) {
        n = s->closed ? -1 : 0;
    } else {
        size_t take = s->len < max ? s->len : max;
        size_t first = take < s->cap - s->head ? take : s->cap - s->head;
        memcpy(out, s->data + s->head, first);
        memcpy(out + first, s->data, take - first);
        s->head = (s->head + take) % s->cap;
        s->len -= take;
        n = (long)take;
    }
    pthread_mutex_unlock(&bus->lock);
    return n;
}

void events_unsubscribe(events_sub *s)
{
    if (!s) return;
    events *bus = s->bus;
    if (bus) {
        pthread_mutex_lock(&bus->lock);
        for (events_sub **pp = &bus->subs; *pp; pp = &(*pp)->next)
            if (*pp == s) { *pp = s->next; break; }
        pthread_mutex_unlock(&bus->lock);
    }
    free(s->data);
    free(s);
}

size_t events_subscriber_count(events *bus)
{
    size_t n = 0;
    pthread_mutex_lock(&bus->lock);
    for (events_sub *s = bus->subs; s; s = s->next) n++;
    pthread_mutex_unlock(&bus->lock);
    return n;
}
