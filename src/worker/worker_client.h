/* worker_client: the controller's side of the worker API (worker.h), over libcurl. The
 * base_url is the worker's root, e.g. "http://127.0.0.1:8765" (the local end of an SSH
 * tunnel); no trailing slash needed.
 *
 * worker_client_transcribe uploads the audio file as job job_id (a 16 kHz mono 16-bit PCM WAV,
 * or Ogg Opus for a worker whose /health lists it: worker_client_accepts_opus; sent as
 * Content-Type audio/ogg when the file starts with "OggS", else audio/wav), polls
 * GET /jobs/{id} every ~200 ms, reports the worker's progress (0..1, nondecreasing) to
 * progress(ud, f) when given, fetches /jobs/{id}/result and DELETEs the job on the worker
 * (its audio and result go away). When progress returns nonzero the remote job is cancelled
 * (DELETE) and the call fails with "cancelled". Posting a job_id the worker already knows
 * resumes that job (the worker never runs it twice), so a caller may retry the whole call
 * with the same job_id after a dropped tunnel. Polling survives up to 30 s of consecutive
 * connection failures (a tunnel reconnecting) before giving up.
 *
 * Errors (lowercase, never containing secrets): "cannot reach the worker at URL: <reason>",
 * "worker refused the job (HTTP 415): <worker's message>", "worker job failed: <message>",
 * "cancelled", "the worker lost job ID (restarted?)", "bad result from the worker: ...".
 *
 * Timeouts: connect 10 s; each request aborts below 1 byte/s for 60 s; polls 10 s each.
 * Thread-safe: every call uses its own curl handle (libcurl is loaded and initialised by the
 * first call, core/curl_dl.h).
 */
#ifndef GS_WORKER_CLIENT_H
#define GS_WORKER_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "engine/engine.h"
#include "transcript/transcript.h"

transcript *worker_client_transcribe(const char *base_url, const char *job_id,
                                     const char *wav_path, const engine_opts *o,
                                     int (*progress)(void *ud, double f), void *ud, char *err,
                                     size_t errlen);

/* The same, asking the worker for one of its models (NULL: its default). *kind (may be NULL)
 * says what went wrong (core/err.h), so the caller retries only what a retry can fix:
 * GS_E_INVALID / GS_E_TOO_LARGE / GS_E_UNSUPPORTED (the worker refused the job itself: 400,
 * 413, 415), GS_E_FAILED (it ran there and failed), GS_E_CANCELLED (progress asked to stop)
 * are final; GS_E_NETWORK, GS_E_TIMEOUT, GS_E_BUSY, GS_E_PEER, GS_E_PROTOCOL (the worker or
 * its tunnel) are worth another try. GS_OK with a transcript. */
transcript *worker_client_transcribe_model(const char *base_url, const char *job_id,
                                           const char *model, const char *wav_path,
                                           const engine_opts *o,
                                           int (*progress)(void *ud, double f), void *ud,
                                           gs_err *kind, char *err, size_t errlen);

/* 1 when a worker's /health object lists "opus" in "audio_formats" (it takes Ogg Opus
 * bodies: audio/opus.h); 0 for older workers, NULL or anything else. */
int worker_client_accepts_opus(const json_t *health);

/* GET /health: 0 and the parsed object in *out (caller decrefs), or -1 with err. */
int worker_client_health(const char *base_url, json_t **out, char *err, size_t errlen);
/* The same with its own timeout (worker_client_health: 10 s). */
int worker_client_health_ms(const char *base_url, long timeout_ms, json_t **out, char *err,
                            size_t errlen);

#endif
