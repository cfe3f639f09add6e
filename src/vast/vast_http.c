/* vast_http: the transport under every Vast call: one CURL easy handle per attempt,
 * timeouts, bounded retries with exponential backoff and jitter, and the mapping of Vast's
 * answers (docs/vast-api.md section 5) to vast_error. */
#define _GNU_SOURCE
#include "vast/vast_int.h"

#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

#include "core/curl_dl.h"
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif

#define VAST_MAX_RESPONSE (64u * 1024 * 1024)

/* ---- errors */

const char *vast_err_kind_name(vast_err_kind kind)
{
    switch (kind) {
    case VAST_OK: return "ok";
    case VAST_ERR_AUTH: return "auth";
    case VAST_ERR_NOT_FOUND: return "not_found";
    case VAST_ERR_OFFER_TAKEN: return "offer_taken";
    case VAST_ERR_RATE_LIMIT: return "rate_limit";
    case VAST_ERR_NETWORK: return "network";
    case VAST_ERR_TIMEOUT: return "timeout";
    case VAST_ERR_SERVER: return "server";
    case VAST_ERR_BAD_REQUEST: return "bad_request";
    case VAST_ERR_FORBIDDEN: return "forbidden";
    case VAST_ERR_NO_CREDIT: return "no_credit";
    case VAST_ERR_FAILED: return "failed";
    case VAST_ERR_PARSE: return "parse";
    case VAST_ERR_INVALID: return "invalid";
    }
    return "unknown";
}

gs_err vast_err_gs(vast_err_kind kind)
{
    switch (kind) {
    case VAST_OK: return GS_OK;
    case VAST_ERR_AUTH: return GS_E_UNAUTHORIZED;
    case VAST_ERR_NOT_FOUND: return GS_E_NOT_FOUND;
    case VAST_ERR_OFFER_TAKEN: return GS_E_CONFLICT;
    case VAST_ERR_RATE_LIMIT: return GS_E_RATE_LIMIT;
    case VAST_ERR_NETWORK: return GS_E_NETWORK;
    case VAST_ERR_TIMEOUT: return GS_E_TIMEOUT;
    case VAST_ERR_SERVER: return GS_E_PEER;
    case VAST_ERR_BAD_REQUEST: return GS_E_INVALID;
    case VAST_ERR_FORBIDDEN: return GS_E_FORBIDDEN;
    case VAST_ERR_NO_CREDIT: return GS_E_NO_CREDIT;
    case VAST_ERR_FAILED: return GS_E_FAILED;
    case VAST_ERR_PARSE: return GS_E_PROTOCOL;
    case VAST_ERR_INVALID: return GS_E_INVALID;
    }
    return GS_E_PEER;
}

/* Replace every occurrence of key in s (capacity cap) with [REDACTED], truncating. */
static void scrub(char *s, size_t cap, const char *key)
{
    if (!key || !*key || !strstr(s, key)) return;
    char *tmp = xmalloc(cap);
    size_t klen = strlen(key), o = 0;
    const char *p = s;
    while (*p && o + 1 < cap) {
        if (strncmp(p, key, klen) == 0) {
            const char *r = "[REDACTED]";
            while (*r && o + 1 < cap) tmp[o++] = *r++;
            p += klen;
        } else {
            tmp[o++] = *p++;
        }
    }
    tmp[o] = '\0';
    memcpy(s, tmp, o + 1);
    free(tmp);
}

void vast_set_error(const vast_client *c, vast_error *err, vast_err_kind kind, int status,
                    const char *code, const char *fmt, ...)
{
    if (!err) return;
    err->kind = kind;
    err->http_status = status;
    /* Scrub the whole text before it is cut to size: a key cut in half by the truncation
     * would no longer match (found by tests/fuzz/fuzz_vast.c). */
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *cod = xstrdup(code ? code : "");
    if (c) {
        /* room for every occurrence to grow to "[REDACTED]" */
        size_t ml = strlen(msg), cl = strlen(cod);
        msg = xrealloc(msg, ml * 10 + 11);
        cod = xrealloc(cod, cl * 10 + 11);
        scrub(msg, ml * 10 + 11, c->api_key);
        scrub(cod, cl * 10 + 11, c->api_key);
    }
    snprintf(err->message, sizeof err->message, "%s", msg);
    snprintf(err->code, sizeof err->code, "%s", cod);
    free(msg);
    free(cod);
    /* Control characters (from a server's text) never reach a log line or a terminal. */
    for (char *p = err->message; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
}

char *vast_urlencode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = xmalloc(n * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static bool contains_ci(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

/* Map a non-success answer to an error (spec 5.1, 5.4). body may be NULL (not JSON). */
static void map_error(const vast_client *c, int status, const json_t *body, const char *raw,
                      vast_error *err)
{
    const char *code = vast_j_cstr(body, "error");
    const char *msg = vast_j_cstr(body, "msg");
    if (!msg || !*msg) msg = vast_j_cstr(body, "message");
    if (!msg || !*msg) msg = vast_j_cstr(body, "detail");
    if (!code) code = "";

    vast_err_kind kind;
    if (!strcmp(code, "auth_error")) kind = VAST_ERR_AUTH;
    else if (!strcmp(code, "no_such_ask") || contains_ci(msg, "no_such_ask"))
        kind = VAST_ERR_OFFER_TAKEN;
    else if (status == 401) kind = VAST_ERR_AUTH;
    else if (contains_ci(msg, "Session expired")) kind = VAST_ERR_AUTH;
    else if (!strcmp(code, "no_such_instance") || !strcmp(code, "not_found") ||
             !strcmp(code, "no_such_ssh_key"))
        kind = VAST_ERR_NOT_FOUND;
    else if (status == 429 || !strcmp(code, "rate_limit_exceeded")) kind = VAST_ERR_RATE_LIMIT;
    else if (status == 411 || contains_ci(msg, "Insufficient credit")) kind = VAST_ERR_NO_CREDIT;
    else if (status == 403) kind = VAST_ERR_FORBIDDEN;
    else if (status == 404) kind = VAST_ERR_NOT_FOUND;
    else if (status >= 500 || (status >= 300 && status < 400)) kind = VAST_ERR_SERVER;
    else if (status >= 400) kind = VAST_ERR_BAD_REQUEST;
    else kind = VAST_ERR_FAILED;

    if (msg && *msg) {
        vast_set_error(c, err, kind, status, code, "%s", msg);
        return;
    }
    if (*code) {
        vast_set_error(c, err, kind, status, code, "Vast API error %s (HTTP %d)", code, status);
        return;
    }
    /* Not JSON (or JSON without a message): quote a short plain-text body, never HTML. */
    char snippet[200] = "";
    if (!body && raw) {
        const char *p = raw;
        while (isspace((unsigned char)*p)) p++;
        if (*p && *p != '<') snprintf(snippet, sizeof snippet, "%s", p);
        size_t n = strlen(snippet);
        while (n && isspace((unsigned char)snippet[n - 1])) snippet[--n] = '\0';
    }
    if (*snippet) {
        vast_set_error(c, err, kind, status, code, "%s (HTTP %d)", snippet, status);
    } else if (kind == VAST_ERR_AUTH) {
        vast_set_error(c, err, kind, status, code,
                       "Vast rejected the API key (HTTP %d): log in or set VAST_API_KEY", status);
    } else if (kind == VAST_ERR_FAILED) {
        vast_set_error(c, err, kind, status, code, "Vast refused the request (success: false)");
    } else {
        vast_set_error(c, err, kind, status, code, "Vast API answered HTTP %d", status);
    }
}

/* ---- one attempt */

struct sink { buf b; bool overflow; };

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (buf_append(&s->b, ptr, n) != 0) { s->overflow = true; return 0; }
    return n;
}

struct attempt {
    CURLcode cc;
    long status;
    char errbuf[CURL_ERROR_SIZE];
    struct sink sink;
};

/* ---- shutdown */

static atomic_bool cancelled;

void vast_cancel_all(void) { atomic_store(&cancelled, true); }

/* curl calls this about once a second even while nothing arrives */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)ud; (void)dt; (void)dn; (void)ut; (void)un;
    return atomic_load(&cancelled) ? 1 : 0;
}

static void perform(const vast_client *c, const char *method, const char *url,
                    const char *body, struct attempt *a)
{
    memset(a, 0, sizeof *a);
    buf_init(&a->sink.b, VAST_MAX_RESPONSE);
    CURL *h = curl_dl_easy(a->errbuf, sizeof a->errbuf);
    if (!h) { a->cc = CURLE_FAILED_INIT; return; }
    struct curl_slist *hdr = NULL;
    if (c->auth_header) hdr = gs_curl.curl_slist_append(hdr, c->auth_header);
    hdr = gs_curl.curl_slist_append(hdr, "Accept: application/json");
    if (body) hdr = gs_curl.curl_slist_append(hdr, "Content-Type: application/json");
    hdr = gs_curl.curl_slist_append(hdr, "Expect:");

    gs_curl.curl_easy_setopt(h, CURLOPT_URL, url);
    gs_curl.curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    gs_curl.curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    gs_curl.curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    gs_curl.curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    gs_curl.curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->total_ms);
    gs_curl.curl_easy_setopt(h, CURLOPT_USERAGENT, "gpuscribe/" GS_VERSION);
    gs_curl.curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    gs_curl.curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    gs_curl.curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->errbuf);
    gs_curl.curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    gs_curl.curl_easy_setopt(h, CURLOPT_WRITEDATA, &a->sink);
    gs_curl.curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    gs_curl.curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    if (!strcmp(method, "POST")) {
        gs_curl.curl_easy_setopt(h, CURLOPT_POST, 1L);
    } else if (strcmp(method, "GET") != 0) {
        gs_curl.curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body) {
        gs_curl.curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        gs_curl.curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    a->cc = gs_curl.curl_easy_perform(h);
    if (a->cc == CURLE_OK) gs_curl.curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    gs_curl.curl_easy_cleanup(h);
    gs_curl.curl_slist_free_all(hdr);
}

static bool cc_retryable(CURLcode cc, enum vast_retry_mode mode)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return true;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return mode == VAST_RETRY_ALL;
    default:
        return false;
    }
}

static bool status_retryable(long st, enum vast_retry_mode mode)
{
    if (st == 429) return true;
    if (mode != VAST_RETRY_ALL) return false;
    return st == 502 || st == 503 || st == 504;
}

/* sleeps in slices, so that a cancel ends the wait */
static void sleep_ms(long ms)
{
    while (ms > 0 && !atomic_load(&cancelled)) {
        long step = ms < 50 ? ms : 50;
        struct timespec ts = { 0, step * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        ms -= step;
    }
}

static long backoff_ms(const vast_client *c, int attempt /* 1-based, just failed */,
                       unsigned *seed)
{
    double d = (double)c->backoff_base_ms;
    for (int i = 1; i < attempt && d < (double)c->backoff_max_ms; i++) d *= 2;
    if (d > (double)c->backoff_max_ms) d = (double)c->backoff_max_ms;
    /* Jitter to [d/2, d] so clients that failed together do not retry together. */
    double j = d / 2 + (d / 2) * ((double)rand_r(seed) / (double)RAND_MAX);
    return (long)j;
}

/* ---- metrics: every call, its retries and how it failed, in the default registry */

static metrics_family *m_calls, *m_errors, *m_retries;

__attribute__((constructor)) static void vast_metrics_init(void)
{
    metrics_registry *reg = metrics_default();
    m_calls = metrics_counter(reg, "gpuscribe_vast_api_calls_total",
                              "Vast.ai API calls (each with its retries counted once), by HTTP "
                              "method.", 1, (const char *const[]){"method"});
    m_errors = metrics_counter(reg, "gpuscribe_vast_api_errors_total",
                               "Vast.ai API calls that ended in an error (after retries), by "
                               "HTTP method and error kind.",
                               2, (const char *const[]){"method", "kind"});
    m_retries = metrics_counter(reg, "gpuscribe_vast_api_retries_total",
                                "Vast.ai API attempts beyond each call's first (429, 5xx, "
                                "connection errors), by HTTP method.",
                                1, (const char *const[]){"method"});
}

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "POST", "PUT", "DELETE"};
    for (size_t i = 0; i < ARRAY_LEN(known); i++)
        if (!strcmp(m, known[i])) return known[i];
    return "other";
}

static int request(vast_client *c, const char *method, const char *path_query,
                   const json_t *body, enum vast_retry_mode mode, json_t **out,
                   vast_error *err, int *attempts);

int vast_request(vast_client *c, const char *method, const char *path_query,
                 const json_t *body, enum vast_retry_mode mode, json_t **out,
                 vast_error *err)
{
    vast_error own;
    if (!err) err = &own; /* the kind is counted even when the caller does not want it */
    int attempts = 0;
    int rc = request(c, method, path_query, body, mode, out, err, &attempts);
    const char *m = method_label(method);
    metrics_add(metrics_series_get(m_calls, (const char *const[]){m}), 1);
    if (attempts > 1)
        metrics_add(metrics_series_get(m_retries, (const char *const[]){m}),
                    (uint64_t)(attempts - 1));
    if (rc != 0)
        metrics_add(metrics_series_get(m_errors, (const char *const[]){
                                                     m, vast_err_kind_name(err->kind)}),
                    1);
    return rc;
}

static int request(vast_client *c, const char *method, const char *path_query,
                   const json_t *body, enum vast_retry_mode mode, json_t **out,
                   vast_error *err, int *attempts)
{
    if (out) *out = NULL;
    if (err) memset(err, 0, sizeof *err);
    char *url = xasprintf("%s%s", c->base, path_query);
    char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !payload) {
        free(url);
        vast_set_error(c, err, VAST_ERR_INVALID, 0, NULL, "cannot encode the request body");
        return -1;
    }
    unsigned seed = (unsigned)((uint64_t)(now_mono() * 1e9) ^ (uint64_t)(uintptr_t)&seed ^
                               (uint64_t)pthread_self());
    if (atomic_load(&cancelled)) {
        free(url);
        free(payload);
        vast_set_error(c, err, VAST_ERR_NETWORK, 0, NULL,
                       "cancelled: gpuscribe is stopping (%s %s not sent)", method, path_query);
        return -1;
    }
    char lerr[256];
    if (curl_dl_load(lerr, sizeof lerr) != 0) {   /* libcurl absent: nothing can be sent */
        free(url);
        free(payload);
        vast_set_error(c, err, VAST_ERR_NETWORK, 0, NULL, "cannot reach the Vast API: %s", lerr);
        return -1;
    }
    struct attempt a;
    int n = 0;
    for (;;) {
        n++;
        double t0 = now_mono();
        perform(c, method, url, payload, &a);
        LOG_D("vast", "%s %s -> %ld%s%s (%.0f ms, attempt %d)", method, path_query, a.status,
              a.cc ? " " : "", a.cc ? gs_curl.curl_easy_strerror(a.cc) : "", (now_mono() - t0) * 1e3, n);
        bool again = a.cc != CURLE_OK ? cc_retryable(a.cc, mode)
                                      : status_retryable(a.status, mode);
        if (!again || n >= c->attempts || atomic_load(&cancelled)) break;
        buf_release(&a.sink.b);
        sleep_ms(backoff_ms(c, n, &seed));
    }
    *attempts = n;
    free(url);
    free(payload);

    int rc = -1;
    if (a.cc != CURLE_OK) {
        if (a.cc == CURLE_ABORTED_BY_CALLBACK) {
            vast_set_error(c, err, VAST_ERR_NETWORK, 0, NULL,
                           "cancelled: gpuscribe is stopping (%s %s interrupted)", method,
                           path_query);
        } else if (a.sink.overflow) {
            vast_set_error(c, err, VAST_ERR_PARSE, (int)a.status, NULL,
                           "Vast's answer is larger than %u MB", VAST_MAX_RESPONSE >> 20);
        } else {
            const char *why = a.errbuf[0] ? a.errbuf : gs_curl.curl_easy_strerror(a.cc);
            bool to = a.cc == CURLE_OPERATION_TIMEDOUT;
            vast_set_error(c, err, to ? VAST_ERR_TIMEOUT : VAST_ERR_NETWORK, 0, NULL,
                           "%s Vast API at %s: %s (%d attempt%s)",
                           to ? "timed out talking to the" : "cannot reach the", c->base, why,
                           n, n == 1 ? "" : "s");
        }
        buf_release(&a.sink.b);
        return -1;
    }

    int status = (int)a.status;
    const char *text = a.sink.b.data ? a.sink.b.data : "";
    json_t *doc = NULL;
    json_error_t jerr;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (*p) doc = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    else if (status >= 200 && status < 300) doc = json_object();

    if (status >= 200 && status < 300) {
        if (!doc) {
            vast_set_error(c, err, VAST_ERR_PARSE, status, NULL,
                           "Vast's answer is not valid JSON (HTTP %d): %s at line %d column %d",
                           status, jerr.text, jerr.line, jerr.column);
        } else {
            const json_t *succ = json_is_object(doc) ? json_object_get(doc, "success") : NULL;
            if (succ && (json_is_false(succ) || (json_is_integer(succ) &&
                                                 json_integer_value(succ) == 0)))
                map_error(c, status, doc, text, err);
            else
                rc = 0;
        }
    } else {
        if (status == 429 && n > 1) {
            /* Say how hard we tried, keeping Vast's text. */
            map_error(c, status, doc, text, err);
            if (err) {
                char tmp[sizeof err->message], code[sizeof err->code];
                snprintf(tmp, sizeof tmp, "%s", err->message);
                snprintf(code, sizeof code, "%s", err->code);
                vast_set_error(c, err, err->kind, status, code,
                               "rate limited after %d attempts: %s", n, tmp);
            }
        } else {
            map_error(c, status, doc, text, err);
        }
    }
    buf_release(&a.sink.b);
    if (out) *out = doc;
    else json_decref(doc);
    return rc;
}
