/* worker: the HTTP API that runs beside the engine on a GPU instance (or locally), reached by
 * the controller through an SSH tunnel. It listens on loopback only and has no
 * authentication of its own: the tunnel is the access control (worker_start refuses any
 * non-loopback host).
 *
 * One engine, loaded once at start with `slots` slots (engine.h: one model shared by that
 * many concurrent transcriptions); `slots` job threads run that many jobs at once, the others
 * wait in a bounded FIFO queue (503 when full). A job may name another model the worker has
 * (a ggml-NAME.bin in $GS_MODELS_DIR, default /workspace/models): it is opened on a job
 * thread the first time and kept. Routes (errors are {"error": "..."}):
 *
 *   GET    /health              {"status":"ok","engine","model" (path),"default_model"
 *                                (name),"models" (names it can run, the default first),
 *                                "slots","running","gpu","gpu_name","busy","version",
 *                                "jobs_done","queued","max_queue","deadman_s" (0 when the
 *                                dead-man switch is not armed),"audio_formats":["wav","opus"]
 *                                (the bodies POST /transcribe takes)}
 *   POST   /transcribe?job_id=ID[&language=en][&prompt=...][&temperature=0..1]
 *                              [&word_timestamps=0|1][&translate=0|1][&beam_size=1..8]
 *                              [&model=NAME (one of /health's models; 400 otherwise)]
 *          body: a RIFF/WAVE file, PCM 16-bit mono 16 kHz, or an Ogg Opus stream (any
 *          rate and channel count; audio/opus.h), told apart by their content, not by the
 *          Content-Type (streamed to the work dir, capped at max_body bytes: 413; neither
 *          or a WAV of another format: 415; empty: 400). An Opus body is decoded to 16 kHz
 *          on the job thread when the job starts, never on the HTTP thread: until then its
 *          "audio_seconds" is 0; corrupt Opus data, or more audio than a max_body WAV
 *          holds, fails the job with the decoder's message ("corrupt Opus data...").
 *          202 {"job_id","state":"queued"|"running",...} for a new job; for a job_id the
 *          worker already knows: 200 with that job's current state (the body is discarded,
 *          the job never runs twice). job_id: 1-64 of [A-Za-z0-9._-], not starting with '.'.
 *   GET    /jobs/{id}           {"job_id","state","progress":0..1,"error":null|"...",
 *                                "audio_seconds","elapsed_seconds","deleted":bool}
 *          state: queued | running | done | failed | cancelled
 *   GET    /jobs/{id}/result    200 the transcript in transcript_to_json_store form when done;
 *                               409 while queued/running or when failed/cancelled; 404 once
 *                               deleted or unknown
 *   DELETE /jobs/{id}           cancels a queued/running job (the engine polls the job's
 *                               cancel flag and stops within about a second) and deletes
 *                               the job's audio and result;
 *                               200 {"job_id","state","deleted":true}. Idempotent.
 *
 * The audio files (the upload, and the WAV an Opus upload is decoded to) are deleted as
 * soon as the job ends; the result file when the job is DELETEd
 * or result_ttl_s after the job ended, whichever comes first. A job's record (for the
 * idempotent POST and GET /jobs/{id}) is forgotten result_ttl_s after it ended.
 *
 * Threads: handlers run on the HTTP pool; engines run on the `slots` job threads; all job
 * state is guarded by one mutex (the extra models by their own, held while one is opened). worker_stop cancels the running job, joins everything, deletes
 * every file the worker made (and the work dir when the worker created it).
 */
#ifndef GS_WORKER_H
#define GS_WORKER_H

#include <stddef.h>

typedef struct worker worker;

typedef struct worker_config {
    const char *host;        /* must be loopback (127.0.0.0/8, ::1, localhost) */
    int port;                /* 0 = ephemeral */
    const char *engine;      /* "auto" | "sphinx" | "whisper" | "parakeet" (NULL = auto) */
    const char *model;       /* engine model (NULL = the engine's default) */
    const char *work_dir;    /* NULL = a fresh directory under $TMPDIR, removed at stop */
    size_t max_body;         /* largest accepted body in bytes, and the largest WAV an
                              * Opus body may decode to (0 = 2 GiB) */
    int max_queue;           /* jobs waiting behind the running ones (0 = 16) */
    int slots;               /* jobs run at once on one loaded model (0 = 1; WORKER_SLOTS) */
    double result_ttl_s;     /* keep finished results/records this long (0 = 30 min) */
    const char *version;     /* reported by /health */
    /* Dead-man switch (armed when deadman_s > 0 and all three strings are set): when no
     * request has arrived for deadman_s seconds (the controller's tunnel checks /health
     * every few seconds, so silence means the controller is gone) and no job is queued or
     * running, the worker destroys its own instance: DELETE {vast_url}/api/v0/instances/
     * {instance_id}/ with the per-instance key (CONTAINER_API_KEY), never the account key;
     * retried every 30 s until Vast accepts. */
    double deadman_s;
    const char *vast_url;
    const char *instance_id;   /* CONTAINER_ID */
    const char *instance_key;  /* CONTAINER_API_KEY (secret: never logged) */
} worker_config;

/* Open the engine, create the work dir, start the job thread and the HTTP server.
 * NULL with err set on failure ("refusing to listen on ...: the worker only listens on
 * loopback", engine errors, bind errors). */
worker *worker_start(const worker_config *cfg, char *err, size_t errlen);
int worker_port(const worker *w);
const char *worker_engine_name(const worker *w);
/* Cancel the running job, stop serving, join threads, delete the worker's files, free.
 * NULL is fine. */
void worker_stop(worker *w);

/* Job ids the worker accepts (also used by the client before sending). */
int worker_job_id_ok(const char *id);

#endif
