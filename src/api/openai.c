/* OpenAI-compatible API: POST /v1/audio/transcriptions (synchronous), GET /v1/models. */
#include "api/api.h"
#include "fleet/provision.h"
#include "api/upload.h"
#include "app.h"
#include "core/util.h"
#include "jobs/jobs.h"

#include <string.h>

static void wake_request(void *ud) { http_resume(ud); }

void api_openai_transcriptions(http_req *r, void *appv)
{
    app *a = appv;
    upload *u = http_ctx(r);
    if (!u || !upload_committed(u)) {
        /* first run: validate, queue, and wait for the job without holding a thread */
        u = upload_finish(r, a, 1);
        if (!u) return;
        json_t *opts = api_job_options(r, u, 1);
        if (!opts) return;
        int rc = api_submit_upload(r, a, u, opts, 1);
        json_decref(opts);
        if (rc != 0) return;
        upload_set_waiter(u, a->jobs, r);
        http_suspend(r);
        if (jobs_wait(a->jobs, upload_id(u), wake_request, r) != 0) http_resume(r);
        return;
    }
    /* resumed: the job has ended */
    const char *state = NULL;
    const char *id = upload_id(u);
    transcript *t = jobs_transcript(a->jobs, id, &state);
    if (!t) {
        if (state && (!strcmp(state, "preparing") || !strcmp(state, "queued") ||
                      !strcmp(state, "running"))) {
            http_suspend(r); /* woken early: wait again */
            if (jobs_wait(a->jobs, id, wake_request, r) != 0) http_resume(r);
            return;
        }
        json_t *j = jobs_get_json(a->jobs, id);
        const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
        const char *kind = j ? json_string_value(json_object_get(j, "error_kind")) : NULL;
        /* refused while prepared (the file, or no room for it): no job stays behind (it is
         * final, so this deletes it and its files) */
        if (kind && (!strcmp(kind, "audio") || !strcmp(kind, "too_long") || !strcmp(kind, "space")))
            jobs_cancel(a->jobs, id);
        if (kind && !strcmp(kind, "audio")) /* found while preparing: the client's file */
            api_error(r, 1, 400, "file", "%s", e ? e : "invalid audio file");
        else if (kind && !strcmp(kind, "too_long"))
            api_error(r, 1, 413, "file", "%s", e ? e : "audio too long");
        else if (kind && !strcmp(kind, "space"))
            api_error(r, 1, 507, NULL, "%s", e ? e : "not enough disk space");
        else
            api_error(r, 1, 500, NULL, "transcription failed: %s", e ? e : (state ? state : "job lost"));
        json_decref(j);
        return;
    }
    const char *fs = upload_field(u, "response_format");
    enum transcript_format fmt = transcript_format_parse(fs && *fs ? fs : "json");
    const char *gran = upload_field(u, "timestamp_granularities[]");
    char *xid = xasprintf("%s", id);
    http_add_header(r, "X-Gpuscribe-Job", xid);
    free(xid);
    api_reply_transcript(r, t, fmt, gran && strstr(gran, "word") != NULL);
    transcript_free(t);
}

void api_openai_models(http_req *r, void *appv)
{
    app *a = appv;
    json_t *data = json_array();
    /* "whisper-1" (OpenAI's name: the default), what the ready GPU workers have, else the
     * configured model; and the local CPU engine */
    json_t *names = json_array();
    json_array_append_new(names, json_string("whisper-1"));
    json_t *remote = fleet_worker_models(a->fleet);
    if (json_array_size(remote) == 0)
        json_array_append_new(remote, json_string(config_str(a->cfg, CFG_WHISPER_MODEL)));
    json_array_extend(names, remote);
    json_decref(remote);
    json_array_append_new(names, json_string("sphinx"));
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(names, i, v) {
        int seen = 0;
        json_array_foreach(data, k, w) seen |= json_equal(json_object_get(w, "id"), v);
        if (seen) continue;
        json_array_append_new(data, json_pack("{s:O,s:s,s:i,s:s}", "id", v, "object", "model",
                                              "created", 0, "owned_by", "gpuscribe"));
    }
    json_decref(names);
    http_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}
