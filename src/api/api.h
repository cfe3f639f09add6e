/* api: the controller's REST handlers, one file per resource, and the route table
 * (routes.c) that the HTTP server serves and /openapi.json describes. Handlers receive the
 * `app` (app.h) as their second argument. */
#ifndef GS_API_H
#define GS_API_H

#include "http/http.h"

extern const http_route api_routes[];
extern const size_t api_nroutes;

/* defer.c: work that may wait on a peer runs on the app's background pool (core/bgpool.h)
 * while the request is suspended; no request thread ever waits.
 *   first run:  parse and validate, allocate a job, api_defer(r, a, job, work, job_free)
 *               and return (on failure it has replied 503 and freed the job);
 *   work(job):  runs on a background thread; it must not touch r;
 *   resumed:    the handler runs again and api_deferred(r) returns the finished job; it
 *               replies from it. job_free runs when the request ends (or, when the client
 *               went away, when work returns). */
struct app;
int api_defer(http_req *r, struct app *a, void *job, void (*work)(void *job),
              void (*job_free)(void *job));
void *api_deferred(http_req *r);

/* status.c */
void api_healthz(http_req *r, void *app);
void api_gpu_status(http_req *r, void *app);
void api_openapi(http_req *r, void *app);
void api_docs(http_req *r, void *app);
void api_config(http_req *r, void *app);

/* vast.c */
void api_vast_search(http_req *r, void *app);
void api_vast_boot(http_req *r, void *app);
void api_vast_destroy(http_req *r, void *app);
void api_vast_instances(http_req *r, void *app);
void api_vast_instance(http_req *r, void *app);

/* vast.c: the {instance_id} path parameter as a positive integer; 0 after replying 400 */
long api_instance_id(http_req *r, char *ids, size_t idslen);

/* jobs.c */
struct upload;
struct app;
void api_jobs_create(http_req *r, void *app);
void api_jobs_list(http_req *r, void *app);
void api_jobs_get(http_req *r, void *app);
void api_jobs_delete(http_req *r, void *app);
void api_jobs_transcript(http_req *r, void *app);
void api_jobs_audio(http_req *r, void *app);
void api_jobs_speakers(http_req *r, void *app);
void api_jobs_peaks(http_req *r, void *app);
json_t *api_job_options(http_req *r, const struct upload *u, int openai_style);
int api_submit_upload(http_req *r, struct app *a, struct upload *u, json_t *opts, int openai_style);
#include "transcript/transcript.h"
void api_reply_transcript(http_req *r, const transcript *t, enum transcript_format fmt, int words);

/* fleet.c */
void api_fleet_get(http_req *r, void *app);
void api_fleet_put(http_req *r, void *app);

/* cost.c */
void api_cost(http_req *r, void *app);
void api_cost_history(http_req *r, void *app);
void api_vast_keepalive(http_req *r, void *app);

/* metrics.c: GET /metrics (Prometheus text format; HTTP_ROUTE_METRICS auth) */
void api_metrics(http_req *r, void *app);

/* events.c */
void api_events(http_req *r, void *app);

/* openai.c */
void api_openai_transcriptions(http_req *r, void *app);
void api_openai_models(http_req *r, void *app);

#endif
