/* jobs: the persistent transcription queue and its dispatcher.
 *
 * A job is a row in the store's `jobs` table plus a directory DATA_DIR/jobs/<id>/ holding
 * the original upload (`upload`) and the validated 16 kHz mono WAV (`audio.wav`) that
 * backends transcribe. jobs_submit persists the row (state `queued`) before it returns, so a
 * job acknowledged to a client survives any crash: at start-up, jobs left `running` by a
 * killed controller go back to `queued` (up to max_attempts runs in all, then `failed`).
 *
 * Dispatcher threads (concurrency) claim the oldest queued job and run it on a backend:
 * the OpenAI API when a key is configured and the upload fits its 25 MB cap, else the local
 * engine (pocketsphinx or whisper.cpp, opened once per thread); GPU_ONLY forbids both, and
 * jobs then wait, visibly, for a GPU. Progress and state
 * changes are published on the event bus (job.created, job.progress, job.state). States:
 * queued -> running -> done | failed | cancelled. Cancelling a running job stops its engine
 * at the next progress callback. All functions are thread-safe.
 */
#ifndef GS_JOBS_H
#define GS_JOBS_H

#include <jansson.h>
#include <stddef.h>

#include "engine/engine.h"
#include "transcript/transcript.h"

struct store;
struct events;
typedef struct jobs jobs;

typedef struct jobs_config {
    const char *data_dir;
    int concurrency;          /* dispatcher threads (>= 1) */
    const char *engine;       /* ENGINE: auto | sphinx | whisper */
    const char *model;        /* WHISPER_MODEL */
    int gpu_only;             /* never run on a CPU engine */
    int max_attempts;         /* runs per job before it fails (default 3) */
    const char *openai_url;   /* OPENAI_BASE_URL */
    const char *openai_key;   /* OPENAI_API_KEY: when set (and not gpu_only), jobs whose upload
                                 fits OpenAI's 25 MB cap go to the OpenAI API, not the CPU */
} jobs_config;

jobs *jobs_new(struct store *st, struct events *bus, const jobs_config *cfg, char *err,
               size_t errlen);
/* Start the dispatcher threads. */
int jobs_start(jobs *j, char *err, size_t errlen);
/* Stop the dispatchers: a running job is interrupted and goes back to `queued`. */
void jobs_stop(jobs *j);
void jobs_free(jobs *j);

/* A fresh random job id (16 hex digits); caller frees. */
char *jobs_new_id(void);
/* DATA_DIR/jobs/<id> (caller frees). */
char *jobs_dir_for(const jobs *j, const char *id);

typedef struct job_submit {
    const char *filename;     /* as the client named it (display only) */
    const char *upload_path;  /* the original file, inside the job's dir */
    long long size_bytes;
    double duration;          /* seconds of validated audio */
    json_t *options;          /* borrowed: language, prompt, model, response_format, ... */
} job_submit;

/* Persist a new queued job and wake a dispatcher. 0 on success. */
int jobs_submit(jobs *j, const char *id, const job_submit *s, char *err, size_t errlen);

/* The job as JSON (new reference), NULL when unknown. */
json_t *jobs_get_json(jobs *j, const char *id);
/* {"jobs": [...], "total", "limit", "offset"}; state may be NULL (all). */
json_t *jobs_list_json(jobs *j, const char *state, int limit, int offset);
/* Cancel an active job or delete a finished one, removing its files. Returns the job's new
 * state ("cancelled" or "deleted"), NULL when unknown (static strings). */
const char *jobs_cancel(jobs *j, const char *id);
/* The stored transcript of a done job (caller frees), NULL when the job is unknown or not
 * done; *state_out (optional) receives the job's state (static string) or NULL. */
transcript *jobs_transcript(jobs *j, const char *id, const char **state_out);

/* Call cb(ud) once, from the thread that finishes the job, when job id reaches a final
 * state. Returns 1 (and registers nothing) when it already has, 0 when registered, -1 when
 * the job is unknown. cb runs with the jobs lock held: it must only wake someone. */
int jobs_wait(jobs *j, const char *id, void (*cb)(void *ud), void *ud);
void jobs_wait_cancel(jobs *j, void *ud);

/* Remote GPU workers (the fleet): consulted before every claim. A job goes to a ready
 * worker first (through its tunnel, with worker_client); while an instance is being set up
 * or its tunnel reconnects (gpu_pending), jobs wait for it instead of falling back to the
 * CPU or the OpenAI API. A remote run that fails (tunnel dropped, worker restarted, host
 * gone) is reported and the job goes back to the queue, keeping its id, so the worker never
 * runs it twice to completion; after max_attempts runs it fails with the last error.
 * A worker gets as many jobs at once as it has slots: with a remote backend the dispatcher
 * runs MAX_REMOTE_JOBS threads, of which the first `concurrency` also run local engines. */
typedef struct jobs_remote {
    /* 0 and the worker's base URL when one is ready; with reserve, only one with a free slot
     * (it advertises its slots in /health), and that slot is taken until
     * release_worker(row_id); without, whether any is ready at all */
    int (*ready_worker)(void *ud, char *url, size_t urllen, long long *row_id, int reserve);
    void (*release_worker)(void *ud, long long row_id);
    /* nonzero while a GPU instance is coming (booting, reconnecting) */
    int (*gpu_pending)(void *ud);
    void (*report_failure)(void *ud, long long row_id, const char *why);
    void *ud;
} jobs_remote;
/* Set before jobs_start (r is copied). */
void jobs_set_remote(jobs *j, const jobs_remote *r);

/* Counts for status displays. */
void jobs_counts(jobs *j, int *queued, int *running);

/* What GET /metrics shows of the queue, from the store (never waits on a peer; new
 * reference): {"states": {state: jobs} (every state, 0 included), "queued_audio_s",
 * "retries" (runs beyond each job's first, ever), "totals": [{"engine", "backend", "jobs",
 * "audio_s", "gpu_s"}] (done jobs ever, by engine and backend)}. The retries and totals
 * only grow: they are kept by the store (job_totals, job_counters), so deleting a finished
 * job does not lower them and they survive restarts. */
json_t *jobs_stats_json(jobs *j);

#endif
