/* app: the controller's shared state, handed to every API handler as `void *app`.
 * Fields are set up in main.c before the HTTP server starts and torn down after it stops;
 * handlers only read the pointers (each module guards its own mutable state). */
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
    struct bgpool *bg;     /* core/bgpool.h: where handlers' waits on peers run (api_defer) */
} app;

#endif
