#include "test.h"
#include "http/http.h"
#include "core/util.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void h_item(http_req *r, void *app)
{
    (void)app;
    http_reply_json(r, 200, json_pack("{s:s,s:s?}", "id", http_param(r, "id"), "q", http_query(r, "q")));
}

static void h_echo(http_req *r, void *app)
{
    (void)app;
    json_t *j = http_body_json(r);
    if (!j) return;
    http_reply_json(r, 201, j);
}

struct counter { size_t bytes; int header_calls, late_header_call; };

static int stream_body(http_req *r, const char *data, size_t n, void *app)
{
    (void)app;
    (void)data;
    struct counter *c = http_ctx(r);
    if (!c) {
        c = xcalloc(1, sizeof *c);
        http_set_ctx(r, c, free);
    }
    if (n == 0) { /* the headers' call, before any of the body */
        c->header_calls++;
        if (c->bytes) c->late_header_call = 1;
        const char *cl = http_header(r, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > 64u << 20) {
            http_reply_error(r, 413, "declared too big");
            return -1;
        }
        return 0;
    }
    c->bytes += n;
    if (c->bytes > 8u << 20) {
        http_reply_error(r, 413, "too big");
        return -1;
    }
    return 0;
}

static void h_stream(http_req *r, void *app)
{
    (void)app;
    struct counter *c = http_ctx(r);
    http_reply_json(r, 200, json_pack("{s:I,s:i,s:b}", "bytes", (json_int_t)(c ? c->bytes : 0),
                                      "header_calls", c ? c->header_calls : 0, "late",
                                      c ? c->late_header_call : 0));
}

static void h_silent(http_req *r, void *app) { (void)r; (void)app; }

static void h_ok(http_req *r, void *app)
{
    (void)app;
    http_reply_data(r, 200, "text/plain", "ok\n", 3);
}

static const http_route routes[] = {
    {"GET", "/api/items/{id}", h_item, 0, NULL, "t", "item", NULL},
    {"DELETE", "/api/items/{id}", h_item, 0, NULL, "t", "delete item", NULL},
    {"POST", "/api/echo", h_echo, 0, NULL, "t", "echo", "{\"responses\":{\"201\":{\"description\":\"echoed\"}}}"},
    {"POST", "/api/upload", h_stream, HTTP_ROUTE_STREAM, stream_body, "t", "upload", NULL},
    {"GET", "/api/open", h_item, HTTP_ROUTE_PUBLIC, NULL, "t", "open", NULL},
    {"GET", "/api/silent", h_silent, 0, NULL, "t", "forgets to reply", NULL},
    {"GET", "/metrics", h_ok, HTTP_ROUTE_METRICS, NULL, "t", "metrics", NULL},
};

struct resp { long status; buf body; char allow[64]; };

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *rs = ud;
    if (strncasecmp(p, "Allow:", 6) == 0) snprintf(rs->allow, sizeof rs->allow, "%.*s", (int)(sz * n - 9), p + 7);
    return sz * n;
}

static json_t *call(int port, const char *method, const char *path, const char *ctype,
                    const char *body, size_t blen, const char *extra_header, long *status)
{
    CURL *c = curl_easy_init();
    struct resp rs = {0};
    buf_init(&rs.body, 0);
    char *url = xasprintf("http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = NULL;
    if (ctype) {
        char *ct = xasprintf("Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
        free(ct);
    }
    if (extra_header) h = curl_slist_append(h, extra_header);
    if (!extra_header || strncmp(extra_header, "Expect", 6) != 0) h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rs.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &rs);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    CURLcode cc = curl_easy_perform(c);
    ASSERT_EQ(cc, CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    json_t *j = json_loads(rs.body.data ? rs.body.data : "", 0, NULL);
    if (!j) j = json_pack("{s:s}", "raw", rs.body.data ? rs.body.data : "");
    if (rs.allow[0]) json_object_set_new(j, "_allow", json_string(rs.allow));
    buf_release(&rs.body);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    return j;
}

static http_server *start_tokens(const char *token, const char *metrics_token, const char *web)
{
    char err[256];
    http_config cfg = {.host = "127.0.0.1", .port = 0, .api_token = token,
                       .metrics_token = metrics_token, .web_dir = web, .threads = 2};
    http_server *s = http_server_start(&cfg, routes, ARRAY_LEN(routes), NULL, err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_TRUE(http_server_port(s) > 0);
    return s;
}

static http_server *start(const char *token, const char *web)
{
    return start_tokens(token, NULL, web);
}

#define STR(j, k) json_string_value(json_object_get((j), (k)))

TEST(http_routing_params_and_errors)
{
    http_server *s = start(NULL, NULL);
    int port = http_server_port(s);
    long st;
    json_t *j = call(port, "GET", "/api/items/abc?q=hello%20world", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(STR(j, "id"), "abc");
    ASSERT_STR_EQ(STR(j, "q"), "hello world");
    json_decref(j);
    j = call(port, "GET", "/api/items/", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 404);
    ASSERT_CONTAINS(STR(j, "error"), "no such endpoint");
    json_decref(j);
    j = call(port, "GET", "/api/items/a/b", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 404);
    json_decref(j);
    j = call(port, "PUT", "/api/items/abc", "application/json", "{}", 2, NULL, &st);
    ASSERT_EQ(st, 405);
    ASSERT_STR_EQ(STR(j, "_allow"), "GET, DELETE");
    json_decref(j);
    j = call(port, "GET", "/api/silent", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 500);
    ASSERT_CONTAINS(STR(j, "error"), "no reply");
    json_decref(j);
    j = call(port, "GET", "/index.html", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 404); /* no web dir */
    json_decref(j);
    http_server_stop(s);
}

TEST(http_json_bodies)
{
    http_server *s = start(NULL, NULL);
    int port = http_server_port(s);
    long st;
    json_t *j = call(port, "POST", "/api/echo", "application/json", "{\"a\":[1,2]}", 11, NULL, &st);
    ASSERT_EQ(st, 201);
    ASSERT_EQ(json_array_size(json_object_get(j, "a")), 2);
    json_decref(j);
    const char *bad[] = {"{\"a\":", "[1,2]", "\"str\"", "{\"a\":1,\"a\":2}", ""};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        j = call(port, "POST", "/api/echo", "application/json", bad[i], strlen(bad[i]), NULL, &st);
        ASSERT_EQ(st, 400);
        ASSERT_NOT_NULL(STR(j, "error"));
        json_decref(j);
    }
    j = call(port, "POST", "/api/echo", "text/plain", "{}", 2, NULL, &st);
    ASSERT_EQ(st, 415);
    json_decref(j);
    size_t big = HTTP_JSON_BODY_MAX + 10;
    char *b = xmalloc(big);
    memset(b, ' ', big);
    j = call(port, "POST", "/api/echo", "application/json", b, big, NULL, &st);
    ASSERT_EQ(st, 413);
    ASSERT_CONTAINS(STR(j, "error"), "too large");
    json_decref(j);
    free(b);
    http_server_stop(s);
}

TEST(http_streamed_body)
{
    http_server *s = start(NULL, NULL);
    int port = http_server_port(s);
    long st;
    size_t n = 3u << 20;
    char *b = xmalloc(n);
    memset(b, 'x', n);
    json_t *j = call(port, "POST", "/api/upload", "application/octet-stream", b, n, NULL, &st);
    ASSERT_EQ(st, 200);
    ASSERT_EQ(json_integer_value(json_object_get(j, "bytes")), (long long)n);
    /* body_fn saw the headers once, before the first chunk */
    ASSERT_EQ(json_integer_value(json_object_get(j, "header_calls")), 1);
    ASSERT_TRUE(json_is_false(json_object_get(j, "late")));
    json_decref(j);
    free(b);
    /* no body: no call at all */
    j = call(port, "POST", "/api/upload", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 200);
    ASSERT_EQ(json_integer_value(json_object_get(j, "header_calls")), 0);
    json_decref(j);
    n = 9u << 20; /* declared under the route's 64 MB, refused by its chunk cap (8 MB) */
    b = xmalloc(n);
    memset(b, 'y', n);
    j = call(port, "POST", "/api/upload", "application/octet-stream", b, n, NULL, &st);
    ASSERT_EQ(st, 413);
    json_decref(j);
    free(b);
    http_server_stop(s);
}

/* A streamed route refuses on the headers alone: the reply comes while the client has sent
 * none of the body, and the connection closes. */
TEST(http_streamed_body_refused_from_headers)
{
    http_server *s = start(NULL, NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_TRUE(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_server_port(s))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 10};
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    const char *req = "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/octet-stream\r\nContent-Length: 100000000\r\n\r\n";
    ASSERT_EQ(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char reply[4096];
    size_t got = 0;
    int closed = 0;
    while (got < sizeof reply - 1) {
        ssize_t k = read(fd, reply + got, sizeof reply - 1 - got);
        if (k == 0) { closed = 1; break; }
        ASSERT_TRUE(k > 0); /* not the 10 s timeout: the server did not wait for the body */
        got += (size_t)k;
    }
    reply[got] = '\0';
    close(fd);
    ASSERT_TRUE(closed);
    ASSERT_TRUE(strncmp(reply, "HTTP/1.1 413", 12) == 0);
    ASSERT_CONTAINS(reply, "{\"error\":\"declared too big\"}");
    http_server_stop(s);
}

TEST(http_auth_and_origin)
{
    http_server *s = start("tok-0123456789", NULL);
    int port = http_server_port(s);
    long st;
    json_t *j = call(port, "GET", "/api/items/1", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 401);
    json_decref(j);
    j = call(port, "GET", "/api/items/1", NULL, NULL, 0, "Authorization: Bearer tok-012345678", &st);
    ASSERT_EQ(st, 401);
    json_decref(j);
    j = call(port, "GET", "/api/items/1", NULL, NULL, 0, "Authorization: Bearer tok-0123456789", &st);
    ASSERT_EQ(st, 200);
    json_decref(j);
    j = call(port, "GET", "/api/open", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 200);
    json_decref(j);
    /* unauthenticated upload is refused before the body is read */
    size_t n = 2u << 20;
    char *b = xcalloc(1, n);
    j = call(port, "POST", "/api/upload", "application/octet-stream", b, n, "Expect: 100-continue", &st);
    ASSERT_EQ(st, 401);
    json_decref(j);
    free(b);
    j = call(port, "DELETE", "/api/items/1", NULL, NULL, 0, "Origin: http://evil.example", &st);
    ASSERT_EQ(st, 403);
    json_decref(j);
    j = call(port, "DELETE", "/api/items/1", NULL, NULL, 0, "Origin: null", &st);
    ASSERT_EQ(st, 403);
    json_decref(j);
    char same[64];
    snprintf(same, sizeof same, "Origin: http://127.0.0.1:%d", port);
    j = call(port, "DELETE", "/api/items/1", NULL, NULL, 0, same, &st);
    ASSERT_EQ(st, 401); /* origin fine; token still required */
    json_decref(j);
    j = call(port, "GET", "/api/open", NULL, NULL, 0, "Host: rebind.example.com", &st);
    ASSERT_EQ(st, 421);
    json_decref(j);
    http_server_stop(s);
}

TEST(http_static_files_and_traversal)
{
    mkdir_p("web/sub", 0755);
    FILE *f = fopen("web/index.html", "w");
    fputs("<h1>home</h1>", f);
    fclose(f);
    f = fopen("web/sub/a.js", "w");
    fputs("let a = 1;", f);
    fclose(f);
    f = fopen("web/.hidden", "w");
    fputs("secret", f);
    fclose(f);
    f = fopen("outside.txt", "w");
    fputs("outside", f);
    fclose(f);
    ASSERT_EQ(symlink("../outside.txt", "web/link.txt"), 0);
    http_server *s = start(NULL, "web");
    int port = http_server_port(s);
    long st;
    json_t *j = call(port, "GET", "/", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(STR(j, "raw"), "<h1>home</h1>");
    json_decref(j);
    j = call(port, "GET", "/sub/a.js", NULL, NULL, 0, NULL, &st);
    ASSERT_EQ(st, 200);
    json_decref(j);
    const char *bad[] = {"/../outside.txt", "/sub/../../outside.txt", "/%2e%2e/outside.txt",
                         "/.hidden", "/link.txt", "/sub/", "/sub", "//etc/passwd", "/sub\\..\\..\\outside.txt"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        j = call(port, "GET", bad[i], NULL, NULL, 0, NULL, &st);
        if (st < 400 || st >= 500) test_fail(__FILE__, __LINE__, "%s gave %ld", bad[i], st);
        ASSERT_NOT_NULL(STR(j, "error"));
        json_decref(j);
    }
    http_server_stop(s);
}

TEST(http_keepalive_reuses_connection)
{
    http_server *s = start(NULL, NULL);
    char *url = xasprintf("http://127.0.0.1:%d/api/items/1", http_server_port(s));
    CURL *c = curl_easy_init();
    buf b;
    buf_init(&b, 0);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(curl_easy_perform(c), CURLE_OK);
        long nconn = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nconn);
        ASSERT_EQ(nconn, i == 0 ? 1 : 0);
    }
    buf_release(&b);
    curl_easy_cleanup(c);
    free(url);
    http_server_stop(s);
}

TEST(http_openapi_from_routes)
{
    http_server *s = start(NULL, NULL);
    json_t *o = http_server_openapi(s);
    json_t *paths = json_object_get(o, "paths");
    ASSERT_EQ(json_object_size(paths), 6);
    json_t *item = json_object_get(json_object_get(paths, "/api/items/{id}"), "get");
    ASSERT_NOT_NULL(item);
    json_t *p0 = json_array_get(json_object_get(item, "parameters"), 0);
    ASSERT_STR_EQ(STR(p0, "name"), "id");
    ASSERT_STR_EQ(STR(p0, "in"), "path");
    ASSERT_NOT_NULL(json_object_get(json_object_get(json_object_get(paths, "/api/items/{id}"), "delete"), "summary"));
    json_t *echo = json_object_get(json_object_get(paths, "/api/echo"), "post");
    ASSERT_STR_EQ(STR(json_object_get(json_object_get(echo, "responses"), "201"), "description"), "echoed");
    ASSERT_NULL(json_object_get(json_object_get(json_object_get(paths, "/api/open"), "get"), "security"));
    json_decref(o);
    http_server_stop(s);
}

TEST(http_bind_failure_is_reported)
{
    char err[256];
    http_server *a = start(NULL, NULL);
    http_config cfg = {.host = "127.0.0.1", .port = http_server_port(a)};
    http_server *b = http_server_start(&cfg, routes, ARRAY_LEN(routes), NULL, err, sizeof err);
    ASSERT_NULL(b);
    ASSERT_CONTAINS(err, "cannot listen on 127.0.0.1");
    http_config bad = {.host = "no-such-host.invalid", .port = 0};
    ASSERT_NULL(http_server_start(&bad, routes, ARRAY_LEN(routes), NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "cannot resolve HOST");
    http_server_stop(a);
}

static long status_of(int port, const char *path, const char *header)
{
    long st = 0;
    json_decref(call(port, "GET", path, NULL, NULL, 0, header, &st));
    return st;
}

TEST(http_metrics_route_auth)
{
    /* no token at all (loopback): open */
    http_server *s = start_tokens(NULL, NULL, NULL);
    ASSERT_EQ(status_of(http_server_port(s), "/metrics", NULL), 200);
    http_server_stop(s);

    /* API_TOKEN only: /metrics is behind it, although it is not under /api/ */
    s = start_tokens("api-tok-1", NULL, NULL);
    int port = http_server_port(s);
    ASSERT_EQ(status_of(port, "/metrics", NULL), 401);
    ASSERT_EQ(status_of(port, "/metrics", "Authorization: Bearer wrong"), 401);
    ASSERT_EQ(status_of(port, "/metrics", "Authorization: Bearer api-tok-1"), 200);
    http_server_stop(s);

    /* METRICS_TOKEN (with or without API_TOKEN): either token opens /metrics; the metrics
     * token opens nothing else */
    s = start_tokens("api-tok-1", "met-tok-2", NULL);
    port = http_server_port(s);
    ASSERT_EQ(status_of(port, "/metrics", NULL), 401);
    ASSERT_EQ(status_of(port, "/metrics", "Authorization: Bearer met-tok-"), 401);
    ASSERT_EQ(status_of(port, "/metrics", "Authorization: Bearer met-tok-2"), 200);
    ASSERT_EQ(status_of(port, "/metrics", "Authorization: Bearer api-tok-1"), 200);
    ASSERT_EQ(status_of(port, "/api/items/1", "Authorization: Bearer met-tok-2"), 401);
    ASSERT_EQ(status_of(port, "/api/items/1", "Authorization: Bearer api-tok-1"), 200);
    http_server_stop(s);

    s = start_tokens(NULL, "met-tok-2", NULL);
    port = http_server_port(s);
    ASSERT_EQ(status_of(port, "/metrics", NULL), 401);
    ASSERT_EQ(status_of(port, "/metrics", "Authorization: Bearer met-tok-2"), 200);
    ASSERT_EQ(status_of(port, "/api/items/1", NULL), 200); /* no API_TOKEN: /api/ stays open */
    http_server_stop(s);

    /* the OpenAPI description marks it as needing the bearer token */
    s = start_tokens("api-tok-1", NULL, NULL);
    json_t *doc = http_server_openapi(s);
    ASSERT_NOT_NULL(json_object_get(json_object_get(json_object_get(json_object_get(doc, "paths"),
                                                                    "/metrics"), "get"),
                                    "security"));
    json_decref(doc);
    http_server_stop(s);
}

TEST(http_requests_are_counted_by_route_pattern)
{
    http_server *s = start(NULL, NULL);
    int port = http_server_port(s);
    ASSERT_EQ(status_of(port, "/api/items/secret-id-1", NULL), 200);
    ASSERT_EQ(status_of(port, "/api/items/secret-id-2", NULL), 200);
    ASSERT_EQ(status_of(port, "/api/nothing/here", NULL), 404);
    long st;
    json_decref(call(port, "BREW", "/api/items/x", NULL, NULL, 0, NULL, &st));
    ASSERT_EQ(st, 405);
    http_server_stop(s);
    buf b;
    buf_init(&b, 1 << 20);
    ASSERT_EQ(metrics_render(metrics_default(), &b), 0);
    char *out = buf_take(&b);
    ASSERT_CONTAINS(out, "# TYPE gpuscribe_http_requests_total counter\n");
    ASSERT_CONTAINS(out, "# TYPE gpuscribe_http_request_duration_seconds histogram\n");
    ASSERT_CONTAINS(out, "gpuscribe_http_requests_total{route=\"/api/items/{id}\",method=\"GET\","
                         "code=\"200\"} 2\n");
    ASSERT_CONTAINS(out, "gpuscribe_http_requests_total{route=\"unmatched\",method=\"GET\","
                         "code=\"404\"} 1\n");
    /* an unknown method is "other", not the client's text */
    ASSERT_CONTAINS(out, "gpuscribe_http_requests_total{route=\"unmatched\",method=\"other\","
                         "code=\"405\"} 1\n");
    ASSERT_CONTAINS(out, "gpuscribe_http_request_duration_seconds_count{route=\"/api/items/{id}\","
                         "method=\"GET\",status_class=\"2xx\"} 2\n");
    ASSERT_CONTAINS(out, "gpuscribe_http_request_duration_seconds_bucket{route=\"/api/items/{id}\","
                         "method=\"GET\",status_class=\"2xx\",le=\"+Inf\"} 2\n");
    /* never the raw path */
    ASSERT_TRUE(strstr(out, "secret-id") == NULL);
    ASSERT_TRUE(strstr(out, "BREW") == NULL);
    free(out);
}
