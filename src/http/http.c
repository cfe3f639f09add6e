#include "http/http.h"
#include "core/log.h"
#include "core/util.h"
#include "core/config.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PARAMS 4
#define MAX_EXTRA_HEADERS 8
#define HTTP_DRAIN_MAX ((size_t)64 << 20) /* refused bodies longer than this: drop the connection */

struct http_server {
    struct MHD_Daemon *d;
    const http_route *routes;
    size_t nroutes;
    void *app;
    char *web_dir;      /* realpath, or NULL */
    char *api_token;
    char *metrics_token;
    char *version;
    int port;
    int loopback;
    pthread_mutex_t lock;      /* guards the suspended lists and stopping */
    int stopping;
    struct http_req *susp_reqs;
    struct http_stream *streams;
};

struct http_stream {
    http_server *srv;
    struct MHD_Connection *conn;
    http_stream_fn fn;
    void *cls;
    void (*cls_free)(void *);
    int suspended;
    int wake_pending;          /* a wake that came while fn was running */
    struct http_stream *next;
};

struct http_req {
    struct MHD_Connection *conn;
    http_server *srv;
    const http_route *route;
    char method[16];
    char *path;
    const char *pnames[MAX_PARAMS];
    char *pvals[MAX_PARAMS];
    int nparams;
    buf body;
    int pending_status;  /* error decided before the body was read */
    char *pending_msg;
    int streaming_failed;
    int in_body;                     /* inside an upload chunk: replies are deferred */
    struct MHD_Response *deferred;   /* reply decided while the body was still arriving */
    int deferred_status;
    size_t drained;
    int responded;
    int status;          /* the reply's status, once responded */
    int is_static;       /* served from the static directory */
    void *ctx;
    void (*ctx_free)(void *);
    char *hname[MAX_EXTRA_HEADERS], *hval[MAX_EXTRA_HEADERS];
    int nheaders;
    double t0;
    int suspended;
    int suspend_called;  /* http_suspend ran during the current handler call (s->lock) */
    struct http_req *susp_next;
};

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

/* ---- accessors -------------------------------------------------------------------------- */

const char *http_method(const http_req *r) { return r->method; }
const char *http_path(const http_req *r) { return r->path; }
http_server *http_req_server(const http_req *r) { return r->srv; }
void *http_ctx(const http_req *r) { return r->ctx; }

void http_set_ctx(http_req *r, void *ctx, void (*free_fn)(void *))
{
    r->ctx = ctx;
    r->ctx_free = free_fn;
}

const char *http_param(const http_req *r, const char *name)
{
    for (int i = 0; i < r->nparams; i++) {
        const char *n = r->pnames[i];
        size_t len = strcspn(n, "}");
        if (strlen(name) == len && strncmp(n, name, len) == 0) return r->pvals[i];
    }
    return NULL;
}

const char *http_query(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_body(const http_req *r, size_t *len)
{
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

json_t *http_body_json(http_req *r)
{
    const char *ct = http_header(r, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) != 0) {
        http_reply_error(r, 415, "expected a JSON body (Content-Type: application/json)");
        return NULL;
    }
    if (r->body.len == 0) {
        http_reply_error(r, 400, "request body is empty; expected a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        http_reply_error(r, 400, "malformed JSON at line %d column %d: %s", je.line, je.column,
                         je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_reply_error(r, 400, "expected a JSON object");
        return NULL;
    }
    return j;
}

/* ---- replies ------------------------------------------------------------------------------ */

void http_add_header(http_req *r, const char *name, const char *value)
{
    if (r->nheaders >= MAX_EXTRA_HEADERS) return;
    r->hname[r->nheaders] = xstrdup(name);
    r->hval[r->nheaders] = xstrdup(value);
    r->nheaders++;
}

/* ---- request metrics ----------------------------------------------------------------------- */

static metrics_family *m_requests, *m_duration;
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void metrics_init(void)
{
    static const double buckets[] = {.001, .005, .01, .05, .1, .5, 1, 5};
    m_requests = metrics_counter(metrics_default(), "gpuscribe_http_requests_total",
                                 "HTTP requests answered, by route pattern, method and status "
                                 "code.",
                                 3, (const char *const[]){"route", "method", "code"});
    m_duration = metrics_histogram(metrics_default(), "gpuscribe_http_request_duration_seconds",
                                   "Time from a request's arrival to its reply, by "
                                   "route pattern, method and status class (2xx, 4xx, 5xx).",
                                   3, (const char *const[]){"route", "method", "status_class"},
                                   buckets, (int)ARRAY_LEN(buckets));
}

/* a bounded set of method names (the request's own is the client's choice) */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < ARRAY_LEN(known); i++)
        if (strcmp(m, known[i]) == 0) return known[i];
    return "other";
}

/* Counted when the reply is queued, so a client that has its answer sees it counted; the
 * duration is the time to the reply (a file's or a stream's transfer is not in it). */
static void record_request(http_req *r)
{
    pthread_once(&m_once, metrics_init);
    /* the route's pattern, never the raw path (unbounded, and it may carry ids) */
    const char *route = r->route ? r->route->pattern : r->is_static ? "static" : "unmatched";
    const char *method = method_label(r->method);
    char code[12], cls[12];
    snprintf(code, sizeof code, "%d", r->status);
    snprintf(cls, sizeof cls, "%dxx", r->status / 100 % 10);
    metrics_add(metrics_series_get(m_requests, (const char *const[]){route, method, code}), 1);
    metrics_observe(metrics_series_get(m_duration, (const char *const[]){route, method, cls}),
                    now_mono() - r->t0);
}

static void send_response(http_req *r, int status, struct MHD_Response *resp, const char *ctype)
{
    if (r->responded) {
        LOG_E("http", "BUG: second reply to %s %s", r->method, r->path);
        MHD_destroy_response(resp);
        return;
    }
    r->responded = 1;
    r->status = status;
    record_request(r);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    if (r->in_body) {
        /* libmicrohttpd cannot queue a reply while the body is arriving: keep it for the
         * end of the request (the rest of the body is discarded) */
        for (int i = 0; i < r->nheaders; i++) MHD_add_response_header(resp, r->hname[i], r->hval[i]);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        r->deferred = resp;
        r->deferred_status = status;
        return;
    }
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (str_starts(r->path, "/api/") || str_starts(r->path, "/v1/"))
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    for (int i = 0; i < r->nheaders; i++) MHD_add_response_header(resp, r->hname[i], r->hval[i]);
    if (MHD_queue_response(r->conn, (unsigned)status, resp) != MHD_YES)
        LOG_W("http", "could not queue response for %s %s", r->method, r->path);
    MHD_destroy_response(resp);
    LOG_D("http", "%s %s -> %d (%.2f ms)", r->method, r->path, status, (now_mono() - r->t0) * 1e3);
}

void http_reply_data(http_req *r, int status, const char *content_type, const char *data,
                     size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    send_response(r, status, resp, content_type);
}

void http_reply_json(http_req *r, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(body);
    if (!s) s = xstrdup("{\"error\":\"internal error: cannot encode response\"}");
    size_t n = strlen(s);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    send_response(r, status, resp, "application/json");
}

void http_reply_error(http_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *safe = log_vredactf(fmt, ap);
    va_end(ap);
    if (status >= 500) LOG_W("http", "%s %s -> %d: %s", r->method, r->path, status, safe);
    http_reply_json(r, status, json_pack("{s:s}", "error", safe));
    free(safe);
}

/* Parse a single "bytes=a-b" / "bytes=a-" / "bytes=-n" range against size. 1 when usable. */
static int parse_range(const char *h, size_t size, size_t *from, size_t *to)
{
    if (!h || strncmp(h, "bytes=", 6) != 0 || size == 0 || strchr(h, ',')) return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (*end || n == 0) return 0;
        *from = n >= size ? 0 : size - (size_t)n;
        *to = size - 1;
        return 1;
    }
    unsigned long long a = strtoull(p, &end, 10);
    if (end == p || *end != '-' || a >= size) return 0;
    p = end + 1;
    unsigned long long b = size - 1;
    if (*p) {
        b = strtoull(p, &end, 10);
        if (*end || b < a) return 0;
        if (b >= size) b = size - 1;
    }
    *from = (size_t)a;
    *to = (size_t)b;
    return 1;
}

void http_reply_fd(http_req *r, int status, const char *content_type, int fd, size_t size)
{
    size_t from = 0, to = 0;
    struct MHD_Response *resp;
    const char *range = status == 200 ? http_header(r, "Range") : NULL;
    if (range && parse_range(range, size, &from, &to)) {
        resp = MHD_create_response_from_fd_at_offset64(to - from + 1, fd, from);
        if (resp) {
            char cr[96];
            snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", from, to, size);
            MHD_add_response_header(resp, "Content-Range", cr);
            status = 206;
        }
    } else if (range && size) {
        close(fd);
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%zu", size);
        http_add_header(r, "Content-Range", cr);
        http_reply_error(r, 416, "requested range not satisfiable");
        return;
    } else {
        resp = MHD_create_response_from_fd64(size, fd);
    }
    if (!resp) {
        close(fd);
        http_reply_error(r, 500, "cannot send file");
        return;
    }
    MHD_add_response_header(resp, "Accept-Ranges", "bytes");
    send_response(r, status, resp, content_type);
}

/* ---- forms ------------------------------------------------------------------------------------ */

struct http_form {
    struct MHD_PostProcessor *pp;
    http_form_fn fn;
    void *ud;
    int failed;
};

static enum MHD_Result form_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size)
{
    (void)kind;
    (void)transfer_encoding;
    http_form *f = cls;
    if (f->failed) return MHD_NO;
    if (f->fn(f->ud, key, filename, content_type, data, off, size) != 0) {
        f->failed = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

http_form *http_form_new(http_req *r, http_form_fn fn, void *ud)
{
    http_form *f = xcalloc(1, sizeof *f);
    f->fn = fn;
    f->ud = ud;
    f->pp = MHD_create_post_processor(r->conn, 64 * 1024, form_iter, f);
    if (!f->pp) {
        free(f);
        return NULL;
    }
    return f;
}

int http_form_feed(http_form *f, const char *data, size_t n)
{
    if (f->failed) return -1;
    if (MHD_post_process(f->pp, data, n) != MHD_YES) return -1;
    return f->failed ? -1 : 0;
}

void http_form_free(http_form *f)
{
    if (!f) return;
    MHD_destroy_post_processor(f->pp);
    free(f);
}

/* ---- suspend / resume / streams ----------------------------------------------------------- */

void http_suspend(http_req *r)
{
    http_server *s = r->srv;
    pthread_mutex_lock(&s->lock);
    r->suspend_called = 1; /* read when the handler returns (a resume may already have come) */
    if (!r->suspended) {
        r->suspended = 1;
        r->susp_next = s->susp_reqs;
        s->susp_reqs = r;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&s->lock);
}

/* caller holds s->lock */
static void resume_locked(http_server *s, http_req *r)
{
    if (!r->suspended) return;
    r->suspended = 0;
    for (http_req **pp = &s->susp_reqs; *pp; pp = &(*pp)->susp_next)
        if (*pp == r) { *pp = r->susp_next; break; }
    MHD_resume_connection(r->conn);
}

void http_resume(http_req *r)
{
    http_server *s = r->srv;
    pthread_mutex_lock(&s->lock);
    resume_locked(s, r);
    pthread_mutex_unlock(&s->lock);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    http_stream *st = cls;
    http_server *s = st->srv;
    pthread_mutex_lock(&s->lock);
    long n = s->stopping ? -1 : 0;
    if (!s->stopping) {
        st->wake_pending = 0;
        pthread_mutex_unlock(&s->lock);
        n = st->fn(st->cls, out, max);
        pthread_mutex_lock(&s->lock);
        if (n == 0 && s->stopping) n = -1;
    }
    if (n == 0 && !st->wake_pending) {
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
    }
    pthread_mutex_unlock(&s->lock);
    return n < 0 ? (ssize_t)MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
    http_stream *st = cls;
    http_server *s = st->srv;
    pthread_mutex_lock(&s->lock);
    for (http_stream **pp = &s->streams; *pp; pp = &(*pp)->next)
        if (*pp == st) { *pp = st->next; break; }
    pthread_mutex_unlock(&s->lock);
    if (st->cls_free) st->cls_free(st->cls);
    free(st);
}

http_stream *http_reply_stream(http_req *r, int status, const char *content_type,
                               http_stream_fn fn, void *cls, void (*cls_free)(void *))
{
    http_stream *st = xcalloc(1, sizeof *st);
    st->srv = r->srv;
    st->conn = r->conn;
    st->fn = fn;
    st->cls = cls;
    st->cls_free = cls_free;
    pthread_mutex_lock(&r->srv->lock);
    st->next = r->srv->streams;
    r->srv->streams = st;
    pthread_mutex_unlock(&r->srv->lock);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, st, stream_free);
    http_add_header(r, "Cache-Control", "no-store");
    http_add_header(r, "X-Accel-Buffering", "no");
    send_response(r, status, resp, content_type);
    return st;
}

void http_stream_wake(http_stream *st)
{
    http_server *s = st->srv;
    pthread_mutex_lock(&s->lock);
    if (st->suspended) {
        st->suspended = 0;
        MHD_resume_connection(st->conn);
    } else {
        st->wake_pending = 1;
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- static files ------------------------------------------------------------------------- */

static const char *mime_for(const char *path)
{
    static const struct { const char *ext, *type; } m[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"}, {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(path, '.');
    if (dot)
        for (size_t i = 0; i < ARRAY_LEN(m); i++)
            if (strcasecmp(dot, m[i].ext) == 0) return m[i].type;
    return "application/octet-stream";
}

/* Path segments may not be empty-dot forms, hidden files or contain backslashes. */
static int safe_static_path(const char *p)
{
    if (p[0] != '/' || strchr(p, '\\') || strstr(p, "//")) return 0;
    for (const char *s = p; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
        if (*s == '/' && s[1] == '.') return 0; /* "..", ".x" and "/." */
    }
    return 1;
}

static void serve_static(http_req *r)
{
    http_server *s = r->srv;
    const char *p = r->path;
    if (!s->web_dir) { http_reply_error(r, 404, "not found: %s", p); return; }
    if (!safe_static_path(p)) { http_reply_error(r, 400, "invalid path"); return; }
    char *rel = xasprintf("%s%s%s", s->web_dir, p, p[strlen(p) - 1] == '/' ? "index.html" : "");
    char real[PATH_MAX];
    if (!realpath(rel, real)) {
        free(rel);
        http_reply_error(r, 404, "not found: %s", p);
        return;
    }
    free(rel);
    size_t wl = strlen(s->web_dir);
    if (strncmp(real, s->web_dir, wl) != 0 || real[wl] != '/') {
        http_reply_error(r, 404, "not found: %s", p);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        http_reply_error(r, 404, "not found: %s", p);
        return;
    }
    const char *mime = mime_for(real);
    if (str_starts(mime, "text/html"))
        http_add_header(r, "Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
    http_add_header(r, "Cache-Control", "no-cache");
    http_reply_fd(r, 200, mime, fd, (size_t)st.st_size);
}

/* ---- routing and checks --------------------------------------------------------------------- */

static int match(const char *pattern, const char *path, http_req *r)
{
    const char *p = pattern, *u = path;
    int np = 0;
    while (*p && *u) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            size_t ul = strcspn(u, "/");
            if (!pe || ul == 0) return 0;
            if (r && np < MAX_PARAMS) {
                r->pnames[np] = p + 1;
                r->pvals[np] = xstrndup(u, ul);
            }
            np++;
            p = pe + 1;
            u += ul;
            continue;
        }
        if (*p != *u) return 0;
        p++;
        u++;
    }
    if (*p || *u) {
        if (r)
            for (int i = 0; i < np && i < MAX_PARAMS; i++) SAFE_FREE(r->pvals[i]);
        return 0;
    }
    if (r) r->nparams = np < MAX_PARAMS ? np : MAX_PARAMS;
    return 1;
}

static int ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++) d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

/* hostname part of a Host header value ("[::1]:8000" -> "::1") */
static void host_only(const char *h, char *out, size_t n)
{
    if (*h == '[') {
        const char *e = strchr(h, ']');
        size_t l = e ? (size_t)(e - h - 1) : 0;
        if (l >= n) l = n - 1;
        memcpy(out, h + 1, l);
        out[l] = '\0';
        return;
    }
    size_t l = strcspn(h, ":");
    if (l >= n) l = n - 1;
    memcpy(out, h, l);
    out[l] = '\0';
}

/* Decide route and pre-body checks; on failure set pending_status/msg. */
static void route_request(http_req *r)
{
    http_server *s = r->srv;
    int is_api = str_starts(r->path, "/api/") || str_starts(r->path, "/v1/");
    int state_changing = strcmp(r->method, "GET") && strcmp(r->method, "HEAD") &&
                         strcmp(r->method, "OPTIONS");
    const char *host = http_header(r, "Host");

    if (s->loopback) {
        char h[256];
        host_only(host ? host : "", h, sizeof h);
        if (!host || !config_host_is_loopback(h)) {
            r->pending_status = 421;
            r->pending_msg = xstrdup("unexpected Host header: this server only answers to "
                                     "localhost names (DNS rebinding protection)");
            return;
        }
    }
    const char *origin = http_header(r, "Origin");
    if (state_changing && origin && strcmp(origin, "null") != 0) {
        const char *o = strstr(origin, "://");
        if (!host || !o || strcasecmp(o + 3, host) != 0) {
            r->pending_status = 403;
            r->pending_msg = xstrdup("cross-origin request refused");
            return;
        }
    } else if (state_changing && origin) {
        r->pending_status = 403;
        r->pending_msg = xstrdup("cross-origin request refused");
        return;
    }

    int path_known = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        if (!match(s->routes[i].pattern, r->path, NULL)) continue;
        path_known = 1;
        const char *m = s->routes[i].method;
        if (strcmp(m, r->method) == 0 || (strcmp(r->method, "HEAD") == 0 && strcmp(m, "GET") == 0)) {
            match(s->routes[i].pattern, r->path, r);
            r->route = &s->routes[i];
            break;
        }
    }

    /* the Bearer token: on /api/ and /v1/ (API_TOKEN), and on HTTP_ROUTE_METRICS routes
     * wherever they are (API_TOKEN or METRICS_TOKEN); open when no token applies */
    int metrics_route = r->route && (r->route->flags & HTTP_ROUTE_METRICS);
    int public_route = r->route && (r->route->flags & HTTP_ROUTE_PUBLIC);
    const char *tok_metrics = metrics_route ? s->metrics_token : NULL;
    if (((is_api && !public_route) || metrics_route) && (s->api_token || tok_metrics)) {
        const char *auth = http_header(r, "Authorization");
        int ok = 0;
        if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
            /* both compared, so the time taken does not tell which one matched */
            int a = s->api_token ? ct_equal(auth + 7, s->api_token) : 0;
            int m = tok_metrics ? ct_equal(auth + 7, tok_metrics) : 0;
            ok = a | m;
        }
        if (!ok) {
            r->pending_status = 401;
            r->pending_msg = xstrdup(metrics_route
                                         ? "missing or invalid token (send Authorization: Bearer "
                                           "<METRICS_TOKEN or API_TOKEN>)"
                                         : "missing or invalid API token (send Authorization: "
                                           "Bearer <API_TOKEN>)");
            http_add_header(r, "WWW-Authenticate", "Bearer");
            return;
        }
    }

    if (r->route) return;
    if (path_known) {
        buf allow;
        buf_init(&allow, 256);
        for (size_t i = 0; i < s->nroutes; i++)
            if (match(s->routes[i].pattern, r->path, NULL))
                (void)!buf_appendf(&allow, "%s%s", allow.len ? ", " : "", s->routes[i].method);
        http_add_header(r, "Allow", allow.data ? allow.data : "");
        r->pending_status = 405;
        r->pending_msg = xasprintf("method %s not allowed on %s (allowed: %s)", r->method,
                                   r->path, allow.data ? allow.data : "");
        buf_release(&allow);
        return;
    }
    if (is_api || (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))) {
        r->pending_status = 404;
        r->pending_msg = xasprintf("no such endpoint: %s %s", r->method, r->path);
    }
}

static int has_body(http_req *r)
{
    const char *cl = http_header(r, "Content-Length");
    const char *te = http_header(r, "Transfer-Encoding");
    return (cl && strcmp(cl, "0") != 0) || te;
}

static void req_free(http_req *r)
{
    if (!r) return;
    if (r->suspended) http_resume(r); /* cannot happen while MHD owns it; keep lists sane */
    if (r->ctx_free) r->ctx_free(r->ctx);
    if (r->deferred) MHD_destroy_response(r->deferred);
    for (int i = 0; i < r->nparams; i++) free(r->pvals[i]);
    for (int i = 0; i < r->nheaders; i++) { free(r->hname[i]); free(r->hval[i]); }
    buf_release(&r->body);
    free(r->pending_msg);
    free(r->path);
    free(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->conn = conn;
        r->srv = s;
        r->t0 = now_mono();
        snprintf(r->method, sizeof r->method, "%s", method);
        r->path = xstrdup(url);
        buf_init(&r->body, HTTP_JSON_BODY_MAX);
        *con_cls = r;
        route_request(r);
        const char *cl = http_header(r, "Content-Length");
        if (!r->pending_status && r->route && !(r->route->flags & HTTP_ROUTE_STREAM) && cl &&
            strtoull(cl, NULL, 10) > HTTP_JSON_BODY_MAX) {
            r->pending_status = 413;
            r->pending_msg = xasprintf("request body too large (limit %u bytes)", HTTP_JSON_BODY_MAX);
        }
        /* a streamed body's route sees the headers before any of the body is read (its
         * body_fn with n 0): it may refuse on them alone, e.g. a Content-Length over a cap */
        if (!r->pending_status && r->route && (r->route->flags & HTTP_ROUTE_STREAM) &&
            r->route->body_fn && has_body(r)) {
            if (r->route->body_fn(r, "", 0, s->app) != 0) {
                if (!r->responded) http_reply_error(r, 400, "upload refused");
                return MHD_YES; /* answered before the body: the connection closes */
            }
        }
        /* an error decided before a large body arrives: answer now (connection closes) */
        if (r->pending_status && has_body(r)) {
            http_reply_error(r, r->pending_status, "%s", r->pending_msg);
            return MHD_YES;
        }
        return MHD_YES; /* queue on a later call: keeps keep-alive (see dependencies.md) */
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->responded || r->pending_status) {
            /* discard the rest of a refused body, but not forever */
            r->drained += n;
            return r->drained > HTTP_DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        r->in_body = 1;
        if (r->route && (r->route->flags & HTTP_ROUTE_STREAM) && r->route->body_fn) {
            if (r->route->body_fn(r, upload_data, n, s->app) != 0 && !r->responded)
                http_reply_error(r, 400, "upload refused");
        } else if (buf_append(&r->body, upload_data, n) != 0) {
            http_reply_error(r, 413, "request body too large (limit %u bytes)", HTTP_JSON_BODY_MAX);
        }
        r->in_body = 0;
        return MHD_YES;
    }
    /* the request is complete */
    if (r->deferred) {
        if (MHD_queue_response(conn, (unsigned)r->deferred_status, r->deferred) != MHD_YES)
            LOG_W("http", "could not queue response for %s %s", r->method, r->path);
        MHD_destroy_response(r->deferred);
        r->deferred = NULL;
    } else if (r->responded) {
        /* answered on the first call */
    } else if (r->pending_status) {
        http_reply_error(r, r->pending_status, "%s", r->pending_msg);
    } else if (r->route) {
        pthread_mutex_lock(&s->lock);
        int stopping = s->stopping;
        r->suspend_called = 0;
        pthread_mutex_unlock(&s->lock);
        if (stopping) {
            http_reply_error(r, 503, "server is shutting down");
            return MHD_YES;
        }
        r->route->handler(r, s->app);
        pthread_mutex_lock(&s->lock);
        int waits = r->suspend_called;
        pthread_mutex_unlock(&s->lock);
        if (!r->responded && !waits)
            http_reply_error(r, 500, "internal error: handler gave no reply");
    } else {
        r->is_static = 1;
        serve_static(r);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    req_free(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char *m = xvasprintf(fmt, ap);
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == '\r')) m[--n] = '\0';
    LOG_D("http", "libmicrohttpd: %s", m);
    free(m);
}

http_server *http_server_start(const http_config *cfg, const http_route *routes, size_t nroutes,
                               void *app, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve HOST '%s': %s", cfg->host, gai_strerror(gai));
        return NULL;
    }
    http_server *s = xcalloc(1, sizeof *s);
    s->routes = routes;
    s->nroutes = nroutes;
    s->app = app;
    s->api_token = cfg->api_token ? xstrdup(cfg->api_token) : NULL;
    s->metrics_token = cfg->metrics_token ? xstrdup(cfg->metrics_token) : NULL;
    pthread_once(&m_once, metrics_init); /* the families show before the first request */
    s->version = xstrdup(cfg->version ? cfg->version : "dev");
    s->loopback = config_host_is_loopback(cfg->host);
    if (cfg->web_dir) {
        char real[PATH_MAX];
        if (realpath(cfg->web_dir, real)) s->web_dir = xstrdup(real);
        else LOG_W("http", "web directory '%s' not found; the UI is not served", cfg->web_dir);
    }
    pthread_mutex_init(&s->lock, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    unsigned pool = cfg->threads ? cfg->threads : 2u;
    if (pool == HTTP_THREAD_PER_CONNECTION) { /* MHD: no epoll and no pool in this mode */
        flags = (flags & ~(unsigned)MHD_USE_EPOLL) | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
        pool = 0;
    }
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_THREAD_POOL_SIZE, pool,
                            MHD_OPTION_CONNECTION_LIMIT, 1024u,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024,
                            MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_END);
    int e = errno;
    freeaddrinfo(ai);
    if (!s->d) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                 e ? strerror(e) : "libmicrohttpd failed to start");
        http_server_stop(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_stop(http_server *s)
{
    if (!s) return;
    if (s->d) {
        /* libmicrohttpd must not stop with suspended connections: end every stream and
         * answer every waiting request first */
        pthread_mutex_lock(&s->lock);
        s->stopping = 1;
        while (s->susp_reqs) resume_locked(s, s->susp_reqs);
        for (http_stream *st = s->streams; st; st = st->next)
            if (st->suspended) {
                st->suspended = 0;
                MHD_resume_connection(st->conn);
            }
        pthread_mutex_unlock(&s->lock);
        for (int i = 0; i < 100; i++) { /* let resumed connections finish (at most ~1 s) */
            pthread_mutex_lock(&s->lock);
            int busy = s->streams != NULL;
            pthread_mutex_unlock(&s->lock);
            if (!busy) break;
            usleep(10000);
        }
        MHD_stop_daemon(s->d);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->web_dir);
    free(s->api_token);
    free(s->metrics_token);
    free(s->version);
    free(s);
}

/* ---- OpenAPI ------------------------------------------------------------------------------ */

json_t *http_server_openapi(const http_server *s)
{
    json_t *paths = json_object();
    for (size_t i = 0; i < s->nroutes; i++) {
        const http_route *rt = &s->routes[i];
        json_t *item = json_object_get(paths, rt->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt->pattern, item);
        }
        json_t *op = json_object();
        if (rt->summary) json_object_set_new(op, "summary", json_string(rt->summary));
        if (rt->tag) json_object_set_new(op, "tags", json_pack("[s]", rt->tag));
        json_t *params = json_array();
        for (const char *p = strchr(rt->pattern, '{'); p; p = strchr(p + 1, '{')) {
            const char *e = strchr(p, '}');
            if (!e) break;
            json_array_append_new(params, json_pack("{s:s%,s:s,s:b,s:{s:s}}", "name", p + 1,
                                                    (size_t)(e - p - 1), "in", "path",
                                                    "required", 1, "schema", "type", "string"));
        }
        if (json_array_size(params)) json_object_set_new(op, "parameters", params);
        else json_decref(params);
        json_t *responses = json_pack("{s:{s:s}}", "default",
                                      "description", "error: {\"error\": message}");
        json_object_set_new(op, "responses", responses);
        if (rt->openapi) {
            json_error_t je;
            json_t *extra = json_loads(rt->openapi, 0, &je);
            if (json_is_object(extra)) {
                json_t *er = json_object_get(extra, "responses");
                if (json_is_object(er)) json_object_update(responses, er);
                json_object_del(extra, "responses");
                json_object_update(op, extra);
            } else {
                LOG_E("http", "BUG: bad OpenAPI fragment for %s %s: %s", rt->method, rt->pattern,
                      je.text);
            }
            json_decref(extra);
        }
        if (!json_object_get(responses, "200") && !json_object_get(responses, "202") &&
            !json_object_get(responses, "201"))
            json_object_set_new(responses, "200", json_pack("{s:s}", "description", "success"));
        if ((!(rt->flags & HTTP_ROUTE_PUBLIC) &&
             (str_starts(rt->pattern, "/api/") || str_starts(rt->pattern, "/v1/"))) ||
            (rt->flags & HTTP_ROUTE_METRICS))
            json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
        char m[16];
        size_t k = 0;
        for (; rt->method[k] && k + 1 < sizeof m; k++) m[k] = (char)(rt->method[k] | 0x20);
        m[k] = '\0';
        json_object_set_new(item, m, op);
    }
    return json_pack("{s:s,s:{s:s,s:s,s:s},s:o,s:{s:{s:{s:s,s:s,s:s}}}}",
                     "openapi", "3.0.3",
                     "info", "title", "gpuscribe", "version", s->version,
                     "description", "Transcribe audio on rented GPUs (Vast.ai) or locally.",
                     "paths", paths,
                     "components", "securitySchemes", "bearer", "type", "http", "scheme",
                     "bearer", "description", "required when API_TOKEN is set");
}
