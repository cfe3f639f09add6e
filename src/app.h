/* app: the controller's shared state, handed to every API handler as `void *app`.
 * Fields are set up in main.c before the HTTP server starts and torn down after it stops;
 * handlers only read the pointers (each module guards its own mutable state).
 *
 * Threads. HTTP handlers run on the HTTP pool (two threads per core) and never wait on a
 * peer: what waits on Vast.ai, a worker or a .env write runs on the background pool
 * (app.bg, through api_defer) while the request is suspended. Long-lived threads: the jobs
 * dispatchers (jobs/), one per instance (fleet/instance), the fleet supervisor, the Vast
 * status poller (vastctl), the reaper, the autoscaler, the WORKER_URL health checker, the tunnels' I/O and
 * supervisor threads, the event bus's heartbeat.
 *
 * Lock order (the one place it is written). A thread holding a lock may take only locks
 * listed after it; none is held across network I/O, and only the store lock (SQLite) and
 * the .env locks (the file edit itself) are held across disk I/O:
 *   1. api/defer's per-request lock         -> the HTTP server's lock (http_resume)
 *   2. vastctl env_lock (the .env writer)    -> vastctl lock -> config's env lock
 *   3. jobs lock                             -> store lock (recursive)
 *   4. fleet lock                            -> a tunnel's lock (tunnel_get_status)
 *      autoscale lock                        -> config's locks (config_set)
 *   5. leaves, never held while taking another: store lock, config locks, the event bus,
 *      static_worker's lock, bgpool's lock, log's lock.
 * Callbacks that cross modules (jobs -> fleet/static_worker claims, fleet -> events
 * publishing) are made with the caller's own locks released, except row listing's
 * gpu_pending, which only reads leaves. */
#ifndef GS_APP_H
#define GS_APP_H

#include "core/config.h"
#include "core/gpu.h"
#include "store/store.h"

struct http_server;
struct events;
struct jobs;
struct vastctl;
struct fleet;
struct reaper;
struct autoscale;
struct bgpool;

typedef struct app {
    config *cfg;
    store *st;
    struct http_server *http;
    gpu_info gpu;
    double started_at;   /* wall clock */
    const char *version;
    struct events *bus;    /* core/events.h: the event bus behind /api/events */
    struct jobs *jobs;     /* jobs/jobs.h: the transcription queue */
    struct vastctl *vast;  /* fleet/vastctl.h: Vast client, cached instance status, boots */
    struct fleet *fleet;   /* fleet/provision.h: instance state machines, workers, tunnels */
    struct reaper *reaper; /* fleet/reaper.h: ledger, idle/hard-cap/budget destroys, orphans */
    struct autoscale *scale; /* fleet/autoscale.h: boots for the backlog (MAX_INSTANCES) */
    struct bgpool *bg;     /* core/bgpool.h: where handlers' waits on peers run (api_defer) */
} app;

#endif
