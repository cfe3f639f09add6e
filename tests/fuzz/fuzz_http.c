/* fuzz_http: HTTP request handling end to end, in process. The input is the raw bytes a
 * client sends on one connection to a real http_server (libmicrohttpd underneath) whose
 * route table exercises our side of it: the router (patterns, {params}, 404/405, Allow),
 * the Host/Origin/Bearer checks, query and header lookups, JSON bodies (http_body_json,
 * capped), static files (traversal refused), and uploads through the real upload_body
 * (multipart via the post processor, urlencoded forms, raw bodies; field caps; MAX_UPLOAD_MB)
 * followed by upload_finish (audio validation) and api_job_options (field validation).
 * Crashes, sanitizer reports and hangs past libFuzzer's -timeout are the findings. */
#include "api/api.h"
#include "api/upload.h"
#include "app.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static app the_app;
static http_server *srv;
static int port;
static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void h_upload(http_req *r, void *a)
{
    int openai = str_starts(http_path(r), "/v1/");
    upload *u = upload_finish(r, a, openai);
    if (!u) return;
    json_t *o = api_job_options(r, u, openai);
    if (!o) return;
    json_object_set_new(o, "filename", json_string(upload_filename(u)));
    json_object_set_new(o, "size", json_integer(upload_size(u)));
    http_reply_json(r, 202, o);
}

static void h_json(http_req *r, void *a)
{
    (void)a;
    json_t *j = http_body_json(r);
    if (!j) return;
    json_t *id = json_object_get(j, "offer_id");
    if (id && !json_is_integer(id)) {
        json_decref(j);
        http_reply_error(r, 400, "offer_id must be an integer");
        return;
    }
    http_reply_json(r, 200, json_pack("{s:I,s:o}", "keys", (json_int_t)json_object_size(j),
                                      "body", j));
}

static void h_params(http_req *r, void *a)
{
    (void)a;
    const char *q = http_query(r, "q");
    /* echoing a query value into a header must never split the response */
    if (q) http_add_header(r, "X-Echo", q);
    const char *ua = http_header(r, "User-Agent");
    json_t *o = json_pack("{s:s?,s:s?,s:s?,s:s?}", "a", http_param(r, "a"), "b",
                          http_param(r, "b"), "q", q, "ua", ua);
    http_reply_json(r, 200, o ? o : json_object()); /* json_pack refuses invalid UTF-8 */
}

static void h_delete(http_req *r, void *a)
{
    (void)a;
    http_reply_error(r, 404, "no such job: %s", http_param(r, "id"));
}

static const http_route routes[] = {
    {"GET", "/healthz", h_params, HTTP_ROUTE_PUBLIC, NULL, "t", "t", NULL},
    {"POST", "/api/jobs", h_upload, HTTP_ROUTE_STREAM, upload_body, "t", "t", NULL},
    {"POST", "/v1/audio/transcriptions", h_upload, HTTP_ROUTE_STREAM, upload_body, "t", "t", NULL},
    {"POST", "/api/vast/boot", h_json, 0, NULL, "t", "t", NULL},
    {"GET", "/api/p/{a}/x/{b}", h_params, 0, NULL, "t", "t", NULL},
    {"DELETE", "/api/jobs/{id}", h_delete, 0, NULL, "t", "t", NULL},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/gs-fuzz-http-XXXXXX");
    if (!mkdtemp(dir)) abort();
    char *web = xasprintf("%s/web", dir), *data = xasprintf("%s/data", dir);
    char *idx = xasprintf("%s/index.html", web);
    if (mkdir_p(web, 0700) != 0 || write_file_atomic(idx, "<p>hi</p>", 9, 0600) != 0) abort();
    char *args[] = {"fuzz", "--data-dir", data, "--max-upload-mb", "1", NULL};
    char err[256];
    unsetenv("MAX_UPLOAD_MB");
    the_app.cfg = config_load(5, args, NULL, err, sizeof err);
    if (!the_app.cfg) { fprintf(stderr, "%s\n", err); abort(); }
    http_config hc = {.host = "127.0.0.1", .port = 0, .web_dir = web, .api_token = NULL,
                      .threads = 2, .version = "fuzz"};
    srv = http_server_start(&hc, routes, sizeof routes / sizeof routes[0], &the_app, err,
                            sizeof err);
    if (!srv) { fprintf(stderr, "%s\n", err); abort(); }
    port = http_server_port(srv);
    free(web);
    free(data);
    free(idx);
    return 0;
}

/* Send data on a new connection, half-close, and read what comes back until the server
 * closes or stays quiet for idle_ms. Returns the bytes read (at most cap, into out). */
static size_t exchange(const uint8_t *data, size_t size, int idle_ms, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort();
    size_t off = 0, got = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may close early (413, malformed request) */
        off += (size_t)w;
    }
    /* no half-close: libmicrohttpd keeps a half-closed connection whose request is
     * incomplete until its 60 s idle timeout; read until the server closes or goes quiet,
     * then reset the connection */
    char tmp[16384];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, idle_ms) <= 0) break;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) break;
        if (got < cap) {
            size_t k = (size_t)n < cap - got ? (size_t)n : cap - got;
            memcpy(out + got, tmp, k);
            got += k;
        }
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned count;
    if (size > 256 * 1024) return -1;
    char resp[256];
    exchange(data, size, 50, resp, sizeof resp);
    /* now and then: the server must still answer a plain request promptly */
    if (++count % 64 == 0) {
        static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                                 "Connection: close\r\n\r\n";
        int ok = 0;
        for (int i = 0; i < 3 && !ok; i++) { /* pool threads may be busy decoding uploads */
            size_t n = exchange((const uint8_t *)hz, sizeof hz - 1, 10000, resp, sizeof resp - 1);
            resp[n] = '\0';
            ok = strncmp(resp, "HTTP/1.1 200", 12) == 0;
        }
        if (!ok) {
            fprintf(stderr, "the server stopped answering /healthz after this input: '%s'\n",
                    resp);
            abort();
        }
    }
    return 0;
}
