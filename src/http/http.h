/* http: the HTTP server (libmicrohttpd, internal thread pool with epoll), router, JSON
 * replies, static files, auth and origin checks.
 *
 * Routes are a static table of {method, pattern, handler, flags, openapi}. Patterns match
 * segment by segment; "{name}" matches one non-empty segment, read with http_param(). The
 * handler runs once the whole request body has arrived (JSON routes buffer it, capped at
 * HTTP_JSON_BODY_MAX -> 413), except for HTTP_ROUTE_STREAM routes, whose body_fn receives
 * each chunk as it arrives (for uploads of any size). Every handler must answer exactly once
 * with one of the http_reply_* functions.
 *
 * Before a handler runs the server checks, in order: Host is a loopback name when listening
 * on loopback (DNS rebinding), Origin matches Host on state-changing methods, and the
 * Bearer token on /api/ and /v1/ when one is configured (and on HTTP_ROUTE_METRICS routes
 * when an API or metrics token is). Failures, unknown routes (404),
 * wrong methods (405 with Allow) and oversized bodies (413) all answer JSON {"error": "..."}.
 * GET requests no route claims are served from the static directory (traversal refused).
 *
 * Every answered request is counted in the default metrics registry (core/metrics.h):
 * gpuscribe_http_requests_total{route,method,code} and the latency histogram
 * gpuscribe_http_request_duration_seconds{route,method,status_class}, labelled with the
 * route's pattern ("static" for files, "unmatched" for the rest), never the raw path;
 * counted when the reply is queued (the duration is the time to the reply: a streamed
 * file's or event stream's transfer is not in it).
 *
 * Threads: handlers run on MHD's pool threads, several at once; they must not block for
 * long.
 */
#ifndef GS_HTTP_H
#define GS_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_JSON_BODY_MAX (1u << 20)

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef void (*http_handler)(http_req *r, void *app);
/* Called with each chunk of a streamed body; return 0 to go on, or reply with an error
 * (http_reply_error) and return -1 to stop accepting the body. A request that has a body
 * (a Content-Length other than 0, or Transfer-Encoding) gets a first call with n 0 (data "")
 * as soon as its headers are in, before any of the body is read, so a route can refuse on
 * the headers alone (a Content-Length over its cap): replied then, the body is never read
 * and the connection closes after the reply. */
typedef int (*http_body_fn)(http_req *r, const char *data, size_t n, void *app);

enum {
    HTTP_ROUTE_STREAM = 1 << 0, /* body goes to body_fn chunk by chunk */
    HTTP_ROUTE_PUBLIC = 1 << 1, /* no Bearer token needed even under /api/ */
    /* behind the Bearer token wherever it is: API_TOKEN or, when set, the metrics token
     * (either is accepted); open only when neither is configured */
    HTTP_ROUTE_METRICS = 1 << 2,
};

typedef struct http_route {
    const char *method;
    const char *pattern;
    http_handler handler;
    unsigned flags;
    http_body_fn body_fn;
    const char *tag;      /* OpenAPI tag */
    const char *summary;  /* OpenAPI summary */
    const char *openapi;  /* optional JSON object merged into the OpenAPI operation */
} http_route;

#define HTTP_THREAD_PER_CONNECTION 0xffffffffu

typedef struct http_config {
    const char *host;      /* address to bind */
    int port;              /* 0 = ephemeral */
    const char *web_dir;   /* static files; NULL = none */
    const char *api_token; /* NULL = no auth */
    const char *metrics_token; /* also accepted on HTTP_ROUTE_METRICS routes; NULL = none */
    unsigned threads;      /* epoll thread pool size (default 2); HTTP_THREAD_PER_CONNECTION:
                            * a thread per connection instead (poll; for measurements) */
    const char *version;
} http_config;

/* Start listening. routes must outlive the server. NULL with err on failure. */
http_server *http_server_start(const http_config *cfg, const http_route *routes, size_t nroutes,
                               void *app, char *err, size_t errlen);
int http_server_port(const http_server *s);
/* Stop accepting, close connections, join threads, free. NULL is fine. */
void http_server_stop(http_server *s);
/* The OpenAPI 3 description of every route (new reference). */
json_t *http_server_openapi(const http_server *s);

/* ---- request accessors (valid until the reply completes) */
const char *http_method(const http_req *r);
const char *http_path(const http_req *r);
const char *http_param(const http_req *r, const char *name);
const char *http_query(const http_req *r, const char *name);
const char *http_header(const http_req *r, const char *name);
const char *http_body(const http_req *r, size_t *len);
/* Parse the body as a JSON object. On failure replies 400/415 itself and returns NULL. */
json_t *http_body_json(http_req *r);
/* Per-request user state, freed with free_fn when the request ends. */
void http_set_ctx(http_req *r, void *ctx, void (*free_fn)(void *));
void *http_ctx(const http_req *r);
http_server *http_req_server(const http_req *r);

/* ---- replies: exactly one per request */
void http_add_header(http_req *r, const char *name, const char *value);
void http_reply_json(http_req *r, int status, json_t *body /* stolen */);
void http_reply_error(http_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_reply_data(http_req *r, int status, const char *content_type, const char *data,
                     size_t len);
/* Stream a file (fd is taken). */
void http_reply_fd(http_req *r, int status, const char *content_type, int fd, size_t size);
/* ---- form bodies (multipart/form-data or urlencoded), parsed as they stream in
 * Create on the first body chunk of an HTTP_ROUTE_STREAM route, feed every chunk. fn gets
 * each field's data in pieces (off = offset within the field); return 0 to go on, -1 to
 * stop. http_form_new returns NULL when the Content-Type is not a form. */
typedef struct http_form http_form;
typedef int (*http_form_fn)(void *ud, const char *key, const char *filename,
                            const char *content_type, const char *data, uint64_t off,
                            size_t size);
http_form *http_form_new(http_req *r, http_form_fn fn, void *ud);
int http_form_feed(http_form *f, const char *data, size_t n);
void http_form_free(http_form *f);

/* ---- long waits and streams
 * From a handler: http_suspend(r) and return without replying; later, from any thread,
 * http_resume(r) runs the route's handler again (it then replies, or suspends again). The
 * caller that will resume must learn when the request goes away: register through
 * http_set_ctx's free_fn. While the server stops, suspended requests get 503 without their
 * handler being called. */
void http_suspend(http_req *r);
void http_resume(http_req *r);

/* A streamed reply (Server-Sent Events). fn copies up to max bytes into out and returns the
 * count, 0 when it has nothing now (the connection then sleeps until http_stream_wake), or
 * -1 to end the stream. fn runs on a pool thread, never concurrently with itself. cls_free
 * runs when the connection ends; the returned handle is valid until then. */
typedef struct http_stream http_stream;
typedef long (*http_stream_fn)(void *cls, char *out, size_t max);
http_stream *http_reply_stream(http_req *r, int status, const char *content_type,
                               http_stream_fn fn, void *cls, void (*cls_free)(void *));
/* Any thread: fn has something to say (or should end). */
void http_stream_wake(http_stream *st);

/* Served from web/ and the API alike. */
const char *http_status_text(int status);

#endif
