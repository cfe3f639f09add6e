/* worker_client: see worker_client.h. */
#define _GNU_SOURCE
#include "worker/worker_client.h"

#include "core/log.h"
#include "core/httpc.h"
#include "core/util.h"
#include "worker/worker.h"

#include "core/curl_dl.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif

#define POLL_MS 200
#define RESULT_MAX ((size_t)512 << 20)
#define OUTAGE_MAX_S 30.0

typedef struct wc_resp {
    long status;
    buf body;
    char errbuf[CURL_ERROR_SIZE];
} wc_resp;

static char *url_join(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    return xasprintf("%.*s%s", (int)bl, base, path);
}

/* One request. upload: a FILE* to POST (size bytes, Content-Type ctype) or NULL. Returns the
 * CURLcode. */
static CURLcode do_req(CURL *c, const char *method, const char *url, FILE *upload, size_t size,
                       const char *ctype, long timeout_ms, size_t max, wc_resp *out)
{
    gs_curl.curl_easy_reset(c);
    buf_release(&out->body);
    buf_init(&out->body, max);
    out->status = 0;
    out->errbuf[0] = '\0';
    struct curl_slist *h = gs_curl.curl_slist_append(NULL, "Expect:");
    char cth[64];
    snprintf(cth, sizeof cth, "Content-Type: %s", ctype ? ctype : "audio/wav");
    if (upload) h = gs_curl.curl_slist_append(h, cth);
    httpc_setup(c, url, h, &out->body, out->errbuf);
    gs_curl.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    gs_curl.curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    gs_curl.curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (timeout_ms > 0) gs_curl.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (upload) {
        gs_curl.curl_easy_setopt(c, CURLOPT_POST, 1L);
        gs_curl.curl_easy_setopt(c, CURLOPT_READDATA, upload); /* default read function: fread */
        gs_curl.curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    } else if (strcmp(method, "GET") != 0) {
        gs_curl.curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = gs_curl.curl_easy_perform(c);
    gs_curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    gs_curl.curl_slist_free_all(h);
    return cc;
}

/* The worker's {"error": "..."} or a placeholder. */
static const char *err_of(json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    return e ? e : "unexpected response";
}

/* The message, and the kind: a timeout or an unreachable worker (both worth a retry) */
static gs_err conn_error(char *err, size_t errlen, const char *base, CURLcode cc,
                         const wc_resp *r)
{
    snprintf(err, errlen, "cannot reach the worker at %s: %s", base,
             r->errbuf[0] ? r->errbuf : gs_curl.curl_easy_strerror(cc));
    return cc == CURLE_OPERATION_TIMEDOUT ? GS_E_TIMEOUT : GS_E_NETWORK;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int worker_client_health(const char *base_url, json_t **out, char *err, size_t errlen)
{
    return worker_client_health_ms(base_url, 10000, out, err, errlen);
}

int worker_client_health_ms(const char *base_url, long timeout_ms, json_t **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    CURL *c = curl_dl_easy(err, errlen);
    if (!c) return -1;
    wc_resp r = {0};
    char *url = url_join(base_url, "/health");
    CURLcode cc = do_req(c, "GET", url, NULL, 0, NULL, timeout_ms, 1 << 20, &r);
    int rc = -1;
    if (cc != CURLE_OK) {
        conn_error(err, errlen, base_url, cc, &r);
    } else {
        json_t *j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
        if (r.status != 200 || !json_is_object(j)) {
            snprintf(err, errlen, "worker health check failed (HTTP %ld): %s", r.status,
                     j ? err_of(j) : "not JSON");
            json_decref(j);
        } else {
            *out = j;
            rc = 0;
        }
    }
    buf_release(&r.body);
    free(url);
    gs_curl.curl_easy_cleanup(c);
    return rc;
}

int worker_client_accepts_opus(const json_t *health)
{
    const json_t *a = json_object_get(health, "audio_formats");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *f = json_string_value(json_array_get(a, i));
        if (f && !strcmp(f, "opus")) return 1;
    }
    return 0;
}

static void append_q(buf *q, CURL *c, const char *name, const char *val)
{
    char *e = gs_curl.curl_easy_escape(c, val, 0);
    (void)!buf_appendf(q, "&%s=%s", name, e ? e : "");
    gs_curl.curl_free(e);
}

/* DELETE the job; failures are only logged (the worker's TTL cleans up eventually). */
static void delete_job(CURL *c, const char *base, const char *id)
{
    wc_resp r = {0};
    char *path = xasprintf("/jobs/%s", id);
    char *url = url_join(base, path);
    CURLcode cc = do_req(c, "DELETE", url, NULL, 0, NULL, 10000, 1 << 16, &r);
    if (cc != CURLE_OK || (r.status != 200 && r.status != 404))
        LOG_W("worker", "could not delete job %s on the worker (%s)", id,
              cc != CURLE_OK ? gs_curl.curl_easy_strerror(cc) : "unexpected status");
    buf_release(&r.body);
    free(url);
    free(path);
}

transcript *worker_client_transcribe(const char *base_url, const char *job_id,
                                     const char *wav_path, const engine_opts *o,
                                     int (*progress)(void *ud, double f), void *ud, char *err,
                                     size_t errlen)
{
    return worker_client_transcribe_model(base_url, job_id, NULL, wav_path, o, progress, ud, NULL,
                                          err, errlen);
}

transcript *worker_client_transcribe_model(const char *base_url, const char *job_id,
                                           const char *model, const char *wav_path,
                                           const engine_opts *o,
                                           int (*progress)(void *ud, double f), void *ud,
                                           gs_err *kind, char *err, size_t errlen)
{
    gs_err dummy;
    if (!kind) kind = &dummy;
    *kind = GS_OK;
    if (!worker_job_id_ok(job_id)) {
        snprintf(err, errlen, "invalid job id '%s'", job_id ? job_id : "");
        *kind = GS_E_INVALID;
        return NULL;
    }
    FILE *f = fopen(wav_path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", wav_path, strerror(errno));
        if (f) fclose(f);
        *kind = GS_E_INTERNAL;
        return NULL;
    }
    CURL *c = curl_dl_easy(err, errlen);
    if (!c) {
        fclose(f);
        *kind = GS_E_INTERNAL;
        return NULL;
    }
    gs_err k = GS_E_PEER; /* what went wrong, when something did */
    transcript *t = NULL;
    wc_resp r = {0};
    json_t *j = NULL;
    char *url = NULL;
    int posted = 0;

    /* ---- submit */
    buf q;
    buf_init(&q, 0);
    (void)!buf_appendf(&q, "/transcribe?job_id=%s", job_id);
    if (o && o->language && *o->language) append_q(&q, c, "language", o->language);
    if (o && o->prompt && *o->prompt) append_q(&q, c, "prompt", o->prompt);
    if (model && *model) append_q(&q, c, "model", model);
    if (o) {
        (void)!buf_appendf(&q, "&temperature=%.3f&word_timestamps=%d&translate=%d",
                           o->temperature, o->word_timestamps ? 1 : 0, o->translate ? 1 : 0);
        if (o->beam_size > 0) (void)!buf_appendf(&q, "&beam_size=%d", o->beam_size);
    }
    url = url_join(base_url, q.data);
    buf_release(&q);
    /* the worker tells the formats apart by their content; the type is for the record */
    unsigned char magic[4] = {0};
    int is_ogg = fread(magic, 1, 4, f) == 4 && memcmp(magic, "OggS", 4) == 0;
    rewind(f);
    CURLcode cc = do_req(c, "POST", url, f, (size_t)sb.st_size, is_ogg ? "audio/ogg" : "audio/wav",
                         0, 1 << 20, &r);
    SAFE_FREE(url);
    if (cc != CURLE_OK) {
        k = conn_error(err, errlen, base_url, cc, &r);
        goto out;
    }
    j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    if (r.status != 202 && r.status != 200) {
        snprintf(err, errlen, "worker refused the job (HTTP %ld): %s", r.status,
                 j ? err_of(j) : "unexpected response");
        /* 400, 413, 415: the job itself is wrong for this worker, no retry can help;
         * 503: busy; 5xx: the worker failed */
        k = gs_err_from_http_status(r.status);
        goto out;
    }
    posted = 1;

    /* ---- poll */
    char *jpath = xasprintf("/jobs/%s", job_id);
    url = url_join(base_url, jpath);
    free(jpath);
    double last = -1, outage_since = 0;
    for (;;) {
        const char *state = json_string_value(json_object_get(j, "state"));
        if (!state) {
            snprintf(err, errlen, "bad answer from the worker: no job state");
            k = GS_E_PROTOCOL;
            goto out;
        }
        double fr = json_number_value(json_object_get(j, "progress"));
        if (progress && fr > last) {
            last = fr;
            if (progress(ud, fr)) {
                snprintf(err, errlen, "cancelled");
                k = GS_E_CANCELLED;
                goto out;
            }
        }
        if (strcmp(state, "done") == 0) break;
        if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0) {
            const char *e = json_string_value(json_object_get(j, "error"));
            if (strcmp(state, "cancelled") == 0) {
                /* not by us: the worker stopped (shutdown, dead-man): elsewhere it may run */
                snprintf(err, errlen, "cancelled on the worker");
                k = GS_E_PEER;
            } else {
                /* it ran and failed there: the audio or options, not the worker */
                snprintf(err, errlen, "worker job failed: %s", e ? e : "unknown error");
                k = GS_E_FAILED;
            }
            goto out;
        }
        sleep_ms(POLL_MS);
        for (;;) {
            cc = do_req(c, "GET", url, NULL, 0, NULL, 10000, 1 << 20, &r);
            if (cc == CURLE_OK && r.status != 502 && r.status != 503) break;
            if (!outage_since) outage_since = now_mono();
            if (now_mono() - outage_since > OUTAGE_MAX_S) {
                if (cc != CURLE_OK) k = conn_error(err, errlen, base_url, cc, &r);
                else snprintf(err, errlen, "worker unavailable (HTTP %ld)", r.status);
                goto out;
            }
            if (progress && progress(ud, last < 0 ? 0 : last)) {
                snprintf(err, errlen, "cancelled");
                k = GS_E_CANCELLED;
                goto out;
            }
            sleep_ms(500);
        }
        outage_since = 0;
        json_decref(j);
        j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
        if (r.status == 404) {
            snprintf(err, errlen, "the worker lost job %s (restarted?)", job_id);
            posted = 0;
            goto out;
        }
        if (r.status != 200 || !json_is_object(j)) {
            snprintf(err, errlen, "bad answer from the worker (HTTP %ld): %s", r.status,
                     j ? err_of(j) : "not JSON");
            k = GS_E_PROTOCOL;
            goto out;
        }
    }

    /* ---- result */
    free(url);
    jpath = xasprintf("/jobs/%s/result", job_id);
    url = url_join(base_url, jpath);
    free(jpath);
    cc = do_req(c, "GET", url, NULL, 0, NULL, 0, RESULT_MAX, &r);
    if (cc != CURLE_OK) {
        k = conn_error(err, errlen, base_url, cc, &r);
        goto out;
    }
    if (r.status != 200) {
        json_decref(j);
        j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
        snprintf(err, errlen, "cannot fetch the result (HTTP %ld): %s", r.status,
                 j ? err_of(j) : "unexpected response");
        goto out;
    }
    char perr[256];
    t = transcript_from_json_store(r.body.data ? r.body.data : "", perr, sizeof perr);
    if (!t) {
        snprintf(err, errlen, "bad result from the worker: %s", perr);
        k = GS_E_PROTOCOL;
    }
out:
    *kind = t ? GS_OK : k;
    if (posted) delete_job(c, base_url, job_id);
    json_decref(j);
    free(url);
    buf_release(&r.body);
    gs_curl.curl_easy_cleanup(c);
    fclose(f);
    return t;
}
