/* static_worker: a fixed GPU worker for the job dispatcher (WORKER_URL), for users who run
 * `gpuscribe worker` on a machine of their own and reach it through their own tunnel
 * (e.g. `ssh -L 8765:127.0.0.1:8765 gpu-box`). It plugs into jobs_set_remote: the worker is
 * "ready" while its /health answered at the last check; a thread of its own checks every 2 s
 * (3 s timeout), and at once after a reported failure, so that a claim or a job listing
 * never waits on the worker. While it does not answer, jobs wait for it (gpu_pending)
 * rather than fall back to the CPU. Thread-safe. */
#ifndef GS_STATIC_WORKER_H
#define GS_STATIC_WORKER_H

#include "jobs/jobs.h"

typedef struct static_worker static_worker;

static_worker *static_worker_new(const char *url);
void static_worker_free(static_worker *w);
/* Fill r with callbacks bound to w. */
void static_worker_remote(static_worker *w, jobs_remote *r);

#endif
