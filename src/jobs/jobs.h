/* jobs: the persistent transcription queue: preparation, chunks, and their dispatcher.
 *
 * A job is a row in the store's `jobs` table plus a directory DATA_DIR/jobs/<id>/ holding
 * the original upload (`upload`), the validated 16 kHz mono WAV (`audio.wav`) once prepared,
 * and, while a chunk runs on a worker or the OpenAI API, that chunk's own audio file.
 * jobs_submit persists the row (state `preparing`) before it returns, so a job acknowledged
 * to a client survives any crash. States:
 *   preparing -> queued -> running -> done | failed | cancelled
 * Preparing (PREP_THREADS background threads, never a request thread): the upload is decoded
 * to audio.wav (at most max_audio_s; interruptible within a packet), then cut at pauses into
 * chunks of about chunk_s (audio/cuts), one row each in `chunks` (own state, attempts,
 * backend, engine, instance, timing); audio that turns out bad fails the job with
 * error_kind "audio" (a client error) before any GPU time is spent.
 * Running: dispatcher threads claim chunks of every job (the job with the fewest chunks
 * running first, then the oldest: a short job is not stuck behind a long one) and run each
 * on a free GPU worker slot, else on the OpenAI API when a key is configured, else on the
 * local engine (pocketsphinx or whisper.cpp, opened once per thread, reading only the
 * chunk's samples); GPU_ONLY forbids the last two, and jobs then wait, visibly, for a GPU.
 * When every chunk is done their transcripts are stitched with global timestamps into the
 * job's, and, with the option diarize, speakers are assigned from the whole job's audio
 * (src/diarize, on that thread; events job.diarizing; a failure keeps the transcript and
 * sets the job's "speakers_error"). A job's progress is its done audio over its total audio.
 * At start-up, chunks left `running` by a killed controller go back to `queued` (up to
 * max_attempts runs each, then their job fails), jobs left `preparing` are prepared again,
 * and what a killed controller left on disk (directories of uploads never acknowledged,
 * half-written files) is swept. Progress and state changes are published on the event bus
 * (job.created, job.progress, job.preparing, job.state). Cancelling stops a running chunk at
 * its engine's next progress callback. All functions are thread-safe.
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
    const char *openai_key;   /* OPENAI_API_KEY: when set (and not gpu_only), chunks go to the
                                 OpenAI API instead of the local engine */
    double chunk_s;           /* CHUNK_MINUTES in seconds (0 = 600) */
    double max_audio_s;       /* the longest audio a job may have (0 = 12 h) */
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
    double duration;          /* seconds the container declares (<= 0: unknown); the decoded
                                 length replaces it once prepared */
    json_t *options;          /* borrowed: language, prompt, model, response_format, ... */
} job_submit;

/* Persist a new job (state `preparing`) and wake a preparer. 0 on success. */
int jobs_submit(jobs *j, const char *id, const job_submit *s, char *err, size_t errlen);

/* The job as JSON (new reference), NULL when unknown: its row, "progress" (done audio over
 * total), "preparing_progress" while preparing, "error_kind" ("audio" when the upload was
 * not usable audio, "too_long" over max_audio_s, "space" when the disk was full, "server"), "chunks_total",
 * "chunks_done", and "chunks": [{"index", "start", "end", "state", "attempts", "progress",
 * "backend", "engine", "instance_id", "started_at", "finished_at", "gpu_seconds",
 * "error"}] (jobs_list_json's rows have no "chunks"). */
json_t *jobs_get_json(jobs *j, const char *id);
/* {"jobs": [...], "total", "limit", "offset"}; state may be NULL (all). */
json_t *jobs_list_json(jobs *j, const char *state, int limit, int offset);
/* Cancel an active job or delete a finished one, removing its files. Returns the job's new
 * state ("cancelled" or "deleted"), NULL when unknown (static strings). */
const char *jobs_cancel(jobs *j, const char *id);
/* The stored transcript of a done job (caller frees), NULL when the job is unknown or not
 * done; *state_out (optional) receives the job's state (static string) or NULL. */
transcript *jobs_transcript(jobs *j, const char *id, const char **state_out);

/* Rename speakers of done job id: names maps speaker ids ("1", "2", ...) to a name (a
 * string of at most 64 bytes; null or "" restores "Speaker N"). Returns 200, or 400 (an
 * unknown id, a bad name), 404 (no such job), 409 (not done, or not diarized), 500, with
 * a sentence in err. All or nothing. */
int jobs_rename_speakers(jobs *j, const char *id, json_t *names, char *err, size_t errlen);

/* Call cb(ud) once, from the thread that finishes the job, when job id reaches a final
 * state. Returns 1 (and registers nothing) when it already has, 0 when registered, -1 when
 * the job is unknown. cb runs with the jobs lock held: it must only wake someone. */
int jobs_wait(jobs *j, const char *id, void (*cb)(void *ud), void *ud);
void jobs_wait_cancel(jobs *j, void *ud);

/* Remote GPU workers (the fleet): consulted before every claim. A chunk goes to a ready
 * worker first (through its tunnel, with worker_client); while an instance is being set up
 * or its tunnel reconnects (gpu_pending), jobs wait for it instead of falling back to the
 * CPU or the OpenAI API. A remote run that fails (tunnel dropped, worker restarted, host
 * gone) is reported and only that chunk goes back to the queue, keeping its worker job id
 * ("<job id>.<chunk index>", or the job id for a job of one chunk), so a worker never runs
 * it twice to completion; after max_attempts runs it fails its job with the last error.
 * A refusal or a failure on the worker itself (not retryable) fails the job at once. Every
 * worker gets as many chunks at once as it has slots: with a remote backend the dispatcher
 * runs 16 threads, of which the first `concurrency` also run local engines. */
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

/* The backlog, from the store: audio seconds not transcribed yet (chunks queued or
 * running, and jobs being prepared, by their declared length) and the jobs it belongs to.
 * For autoscaling (fleet/autoscale.h). */
void jobs_backlog(jobs *j, double *audio_s, int *njobs);

/* What GET /metrics shows of the queue, from the store (never waits on a peer; new
 * reference): {"states": {state: jobs} (every state, 0 included), "queued_audio_s",
 * "retries" (runs beyond each job's first, ever), "totals": [{"engine", "backend", "jobs",
 * "audio_s", "gpu_s"}] (done jobs ever, by engine and backend)}. The retries and totals
 * only grow: they are kept by the store (job_totals, job_counters), so deleting a finished
 * job does not lower them and they survive restarts. */
json_t *jobs_stats_json(jobs *j);

#endif
