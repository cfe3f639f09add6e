/* upload: receiving audio uploads for /api/jobs and /v1/audio/transcriptions.
 *
 * A route flagged HTTP_ROUTE_STREAM uses upload_body as its body_fn: the body streams to
 * DATA_DIR/jobs/<new id>/upload as it arrives, never held in memory, capped at
 * MAX_UPLOAD_MB (413). A Content-Length over that cap (413), or over DATA_DIR's free space
 * less 64 MB (507), is answered from the headers, before any of the body is read. Bodies
 * are multipart/form-data (the file in any field that carries a filename, usually `file`; other fields are kept as text) or a raw audio body (any other
 * Content-Type; fields then come from the query string). In the handler, upload_finish
 * admits it (audio/admit.h, from the headers alone: 400 not audio or implausible, 413 over
 * MAX_AUDIO_HOURS, 507 no room in DATA_DIR to prepare it) before any job exists; the probe
 * runs on the background pool (app.bg) while the request is suspended, never on an HTTP
 * thread. Decoding is the job's preparation (jobs.h), after the job is acknowledged. If the
 * request ends without upload_commit, the job directory is removed: nothing
 * half-done stays.
 */
#ifndef GS_API_UPLOAD_H
#define GS_API_UPLOAD_H

#include "http/http.h"

typedef struct upload upload;

int upload_body(http_req *r, const char *data, size_t n, void *app);
/* Validate (the header probe). NULL after replying with an error (OpenAI's error shape when
 * openai_style), or while the probe runs: the request is then suspended and the handler
 * runs again when it is over, and calls upload_finish again, which then returns the upload
 * (or replies with the audio's error). Either way a NULL means: return at once. */
upload *upload_finish(http_req *r, void *app, int openai_style);
const char *upload_field(const upload *u, const char *name);
const char *upload_id(const upload *u);
const char *upload_path(const upload *u);
const char *upload_filename(const upload *u);
long long upload_size(const upload *u);
double upload_duration(const upload *u); /* declared by the container; < 0 unknown */
/* The job now owns the files: keep them when the request ends. */
void upload_commit(upload *u);
int upload_committed(const upload *u);
/* While the request waits on job completion (jobs_wait with ud = r): cancel that wait when
 * the request goes away. */
struct jobs;
void upload_set_waiter(upload *u, struct jobs *j, http_req *r);

/* How many uploads are arriving or being probed now (the idle reaper counts them as work). */
int upload_in_progress(void);

/* Reply with an error: {"error": msg}, or OpenAI's {"error": {"message", "type", "param",
 * "code"}} when openai_style. */
void api_error(http_req *r, int openai_style, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
