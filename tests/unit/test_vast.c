/* test_vast: the Vast REST client against a canned-response HTTP server (libmicrohttpd on
 * 127.0.0.1, ephemeral port) that records every request and answers from a script. */
#define _GNU_SOURCE
#include "test.h"

#include "vast/vast.h"
#include "vast/vast_int.h"

#include "core/log.h"
#include "core/util.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0)
#else
#define LEAK_CHECK() do {} while (0)
#endif

#define KEY "k-secret-0123456789abcdef"

/* ---- the canned server */

struct canned { int status; const char *body; int delay_ms; };

struct rec {
    char method[16];
    char *uri;        /* raw request target, query included, as sent */
    char *path;       /* decoded path */
    char *auth;       /* Authorization header or NULL */
    char *ctype;      /* Content-Type header or NULL */
    char *body;       /* "" when none */
    json_t *query;    /* decoded query arguments */
};

#define MAX_SCRIPT 64
#define MAX_REQS 256

static struct {
    struct MHD_Daemon *d;
    int port;
    char url[64];
    pthread_mutex_t mu;
    struct canned script[MAX_SCRIPT];
    int nscript, next;
    struct canned dflt;
    struct rec reqs[MAX_REQS];
    int nreq;
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

struct conn_ctx { char *uri; buf body; bool started; };

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls; (void)con;
    struct conn_ctx *x = xcalloc(1, sizeof *x);
    x->uri = xstrdup(uri);
    buf_init(&x->body, 1 << 20);
    return x;
}

static void done_cb(void *cls, struct MHD_Connection *con, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls; (void)con; (void)toe;
    struct conn_ctx *x = *con_cls;
    if (!x) return;
    free(x->uri);
    buf_release(&x->body);
    free(x);
    *con_cls = NULL;
}

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    json_object_set_new(cls, k, json_string(v ? v : ""));
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url,
                               const char *method, const char *version,
                               const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls; (void)version;
    struct conn_ctx *x = *con_cls;
    if (!x->started) { x->started = true; return MHD_YES; }
    if (*upload_size) {
        if (buf_append(&x->body, upload, *upload_size) != 0) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    struct canned c;
    pthread_mutex_lock(&S.mu);
    if (S.nreq < MAX_REQS) {
        struct rec *r = &S.reqs[S.nreq++];
        snprintf(r->method, sizeof r->method, "%s", method);
        r->uri = xstrdup(x->uri);
        r->path = xstrdup(url);
        const char *a = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
        r->auth = a ? xstrdup(a) : NULL;
        const char *t = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Content-Type");
        r->ctype = t ? xstrdup(t) : NULL;
        r->body = xstrdup(x->body.data ? x->body.data : "");
        r->query = json_object();
        MHD_get_connection_values(con, MHD_GET_ARGUMENT_KIND, arg_cb, r->query);
    }
    c = S.next < S.nscript ? S.script[S.next++] : S.dflt;
    pthread_mutex_unlock(&S.mu);
    if (c.delay_ms) usleep((useconds_t)c.delay_ms * 1000);
    const char *body = c.body ? c.body : "";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(con, (unsigned)c.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void srv_start(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    S.dflt = (struct canned){ 500, "{\"success\": false, \"msg\": \"script exhausted\"}", 0 };
    S.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                           0, NULL, NULL, handler, NULL,
                           MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                           MHD_OPTION_URI_LOG_CALLBACK, uri_cb, NULL,
                           MHD_OPTION_NOTIFY_COMPLETED, done_cb, NULL,
                           MHD_OPTION_END);
    ASSERT_NOT_NULL(S.d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT);
    ASSERT_NOT_NULL(info);
    S.port = info->port;
    ASSERT_TRUE(S.port > 0);
    snprintf(S.url, sizeof S.url, "http://127.0.0.1:%d", S.port);
}

static void srv_stop(void)
{
    if (S.d) MHD_stop_daemon(S.d);
    S.d = NULL;
    for (int i = 0; i < S.nreq; i++) {
        free(S.reqs[i].uri);
        free(S.reqs[i].path);
        free(S.reqs[i].auth);
        free(S.reqs[i].ctype);
        free(S.reqs[i].body);
        json_decref(S.reqs[i].query);
    }
    S.nreq = 0;
    S.nscript = S.next = 0;
}

static void push(int status, const char *body)
{
    ASSERT_TRUE(S.nscript < MAX_SCRIPT);
    S.script[S.nscript++] = (struct canned){ status, body, 0 };
}

static void push_slow(int status, const char *body, int delay_ms)
{
    ASSERT_TRUE(S.nscript < MAX_SCRIPT);
    S.script[S.nscript++] = (struct canned){ status, body, delay_ms };
}

static int nreq(void)
{
    pthread_mutex_lock(&S.mu);
    int n = S.nreq;
    pthread_mutex_unlock(&S.mu);
    return n;
}

static struct rec *req(int i)
{
    ASSERT_TRUE(i < nreq());
    return &S.reqs[i];
}

static json_t *req_json(int i)
{
    json_error_t e;
    json_t *j = json_loads(req(i)->body, 0, &e);
    if (!j) test_fail(__FILE__, __LINE__, "request %d body is not JSON: %s", i, req(i)->body);
    return j;
}

static const char *qarg(int i, const char *k)
{
    return json_string_value(json_object_get(req(i)->query, k));
}

/* A fresh server and a fast client (ms backoff, short timeouts). */
static vast_client *setup(void)
{
    ASSERT_EQ(vast_global_init(), 0);
    srv_start();
    vast_client *c = vast_client_new(S.url, KEY);
    ASSERT_NOT_NULL(c);
    vast_client_set_retry(c, 4, 1, 4);
    vast_client_set_timeouts(c, 2000, 5000);
    return c;
}

static void teardown(vast_client *c)
{
    vast_client_free(c);
    srv_stop();
    vast_global_cleanup();
    LEAK_CHECK();
}

static void assert_auth(int i)
{
    ASSERT_STR_EQ(req(i)->auth, "Bearer " KEY);
    ASSERT_NOT_CONTAINS(req(i)->uri, KEY);
    ASSERT_NOT_CONTAINS(req(i)->uri, "api_key");
}

static double jnum(const json_t *j, const char *path1, const char *op)
{
    const json_t *f = json_object_get(j, path1);
    if (!f) test_fail(__FILE__, __LINE__, "no field %s", path1);
    const json_t *v = op ? json_object_get(f, op) : f;
    if (!json_is_number(v)) test_fail(__FILE__, __LINE__, "%s.%s is not a number", path1, op);
    return json_number_value(v);
}

/* ---- search */

static const char *OFFERS =
    "{\"offers\": ["
    " {\"id\": 3, \"gpu_name\": \"RTX 4090\", \"num_gpus\": 1, \"gpu_ram\": 24564,"
    "  \"dph_total\": 0.45, \"dph_base\": 0.40, \"storage_cost\": 0.15,"
    "  \"storage_total_cost\": 0.0083, \"reliability2\": 0.995, \"disk_space\": 120.5,"
    "  \"inet_down\": 900.1, \"inet_up\": 500, \"cuda_max_good\": 12.4,"
    "  \"geolocation\": \"Florida, US\", \"verification\": \"verified\", \"machine_id\": 77,"
    "  \"rented\": null},"
    " {\"id\": \"2\", \"gpu_name\": \"RTX 3090\", \"num_gpus\": \"1\", \"gpu_ram\": \"24576\","
    "  \"dph_total\": \"0.21\", \"dph_base\": \"0.2\", \"reliability2\": \"0.99\","
    "  \"disk_space\": null, \"inet_down\": \" 300 \", \"cuda_max_good\": \"12.2\","
    "  \"geolocation\": null},"
    " {\"id\": 9, \"gpu_name\": \"A100\", \"dph_total\": 0.10, \"rented\": true},"
    " \"junk\", {\"gpu_name\": \"no id\"},"
    " {\"id\": 4, \"dph_total\": 0.30}"
    "]}";

TEST(vast_search_request_and_parse)
{
    vast_client *c = setup();
    push(200, OFFERS);
    vast_search s = {
        .gpu_ram_min_gb = 24, .max_dph = 0.5, .min_reliability = 0.98, .min_cuda = 12.1,
        .min_disk_gb = 40, .min_inet_down = 200, .num_gpus = 1, .gpu_name = "RTX_4090",
        .limit = 50, .allocated_storage = 40,
    };
    vast_offer_list l;
    vast_error e;
    ASSERT_EQ(vast_search_offers(c, &s, &l, &e), 0);
    ASSERT_EQ(nreq(), 1);
    ASSERT_STR_EQ(req(0)->method, "POST");
    ASSERT_STR_EQ(req(0)->uri, "/api/v0/bundles/");
    ASSERT_STR_EQ(req(0)->ctype, "application/json");
    assert_auth(0);
    json_t *b = req_json(0);
    ASSERT_TRUE(json_is_true(json_object_get(json_object_get(b, "verified"), "eq")));
    ASSERT_TRUE(json_is_false(json_object_get(json_object_get(b, "external"), "eq")));
    ASSERT_TRUE(json_is_true(json_object_get(json_object_get(b, "rentable"), "eq")));
    ASSERT_TRUE(json_is_false(json_object_get(json_object_get(b, "rented"), "eq")));
    ASSERT_NEAR(jnum(b, "gpu_ram", "gte"), 24000, 1e-9);   /* GB -> MB, x1000 as the CLI */
    ASSERT_NEAR(jnum(b, "dph_total", "lte"), 0.5, 1e-9);
    ASSERT_NEAR(jnum(b, "reliability2", "gte"), 0.98, 1e-9);
    ASSERT_NEAR(jnum(b, "cuda_max_good", "gte"), 12.1, 1e-9);
    ASSERT_NEAR(jnum(b, "disk_space", "gte"), 40, 1e-9);
    ASSERT_NEAR(jnum(b, "inet_down", "gte"), 200, 1e-9);
    ASSERT_NEAR(jnum(b, "num_gpus", "eq"), 1, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(b, "gpu_name"), "eq")),
                  "RTX 4090");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "type")), "on-demand");
    ASSERT_NEAR(jnum(b, "limit", NULL), 50, 1e-9);
    ASSERT_NEAR(jnum(b, "allocated_storage", NULL), 40, 1e-9);
    char *order = json_dumps(json_object_get(b, "order"), JSON_COMPACT);
    ASSERT_STR_EQ(order, "[[\"dph_total\",\"asc\"]]");
    free(order);
    json_decref(b);

    /* rented, id-less and non-object entries dropped; cheapest first. */
    ASSERT_EQ(l.n, 3);
    ASSERT_EQ(l.items[0].id, 2);
    ASSERT_EQ(l.items[1].id, 4);
    ASSERT_EQ(l.items[2].id, 3);
    vast_offer *o = &l.items[0];   /* numbers as strings, nulls */
    ASSERT_STR_EQ(o->gpu_name, "RTX 3090");
    ASSERT_EQ(o->num_gpus, 1);
    ASSERT_NEAR(o->gpu_ram_gb, 24.576, 1e-9);
    ASSERT_NEAR(o->dph_total, 0.21, 1e-9);
    ASSERT_NEAR(o->inet_down, 300, 1e-9);
    ASSERT_NEAR(o->disk_space_gb, 0, 1e-9);
    ASSERT_STR_EQ(o->geolocation, "");
    ASSERT_FALSE(o->verified);
    o = &l.items[2];
    ASSERT_STR_EQ(o->gpu_name, "RTX 4090");
    ASSERT_NEAR(o->gpu_ram_gb, 24.564, 1e-9);
    ASSERT_NEAR(o->dph_base, 0.40, 1e-9);
    ASSERT_NEAR(o->storage_cost, 0.15, 1e-9);
    ASSERT_NEAR(o->storage_total_cost, 0.0083, 1e-9);
    ASSERT_NEAR(o->reliability2, 0.995, 1e-9);
    ASSERT_NEAR(o->disk_space_gb, 120.5, 1e-9);
    ASSERT_NEAR(o->inet_up, 500, 1e-9);
    ASSERT_NEAR(o->cuda_max_good, 12.4, 1e-9);
    ASSERT_STR_EQ(o->geolocation, "Florida, US");
    ASSERT_EQ(o->machine_id, 77);
    ASSERT_TRUE(o->verified);
    vast_offer_list_free(&l);
    teardown(c);
}

TEST(vast_search_defaults)
{
    vast_client *c = setup();
    push(200, "{\"offers\": []}");
    push(200, "{\"offers\": null}");
    vast_offer_list l;
    vast_error e;
    ASSERT_EQ(vast_search_offers(c, NULL, &l, &e), 0);
    ASSERT_EQ(l.n, 0);
    vast_offer_list_free(&l);
    json_t *b = req_json(0);
    /* Exactly the CLI defaults plus the control keys. */
    ASSERT_EQ(json_object_size(b), 7);
    ASSERT_TRUE(json_is_true(json_object_get(json_object_get(b, "verified"), "eq")));
    ASSERT_NEAR(jnum(b, "allocated_storage", NULL), 5.0, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "type")), "on-demand");
    ASSERT_NULL(json_object_get(b, "limit"));
    json_decref(b);

    vast_search s = { .include_unverified = true, .order = "score", .order_desc = true,
                      .type = "interruptible" };
    ASSERT_EQ(vast_search_offers(c, &s, &l, &e), 0);
    vast_offer_list_free(&l);
    b = req_json(1);
    ASSERT_NULL(json_object_get(b, "verified"));
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "type")), "bid");
    char *order = json_dumps(json_object_get(b, "order"), JSON_COMPACT);
    ASSERT_STR_EQ(order, "[[\"score\",\"desc\"]]");
    free(order);
    json_decref(b);

    s = (vast_search){ .min_reliability = 2 };
    ASSERT_EQ(vast_search_offers(c, &s, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_INVALID);
    ASSERT_EQ(nreq(), 2);
    teardown(c);
}

TEST(vast_search_parse_errors)
{
    vast_client *c = setup();
    push(200, "<html>not json</html>");
    push(200, "{\"offers\": 5}");
    push(500, "<html><body>Internal Server Error</body></html>");
    vast_offer_list l;
    vast_error e;
    ASSERT_EQ(vast_search_offers(c, NULL, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_PARSE);
    ASSERT_EQ(e.http_status, 200);
    ASSERT_CONTAINS(e.message, "not valid JSON");
    ASSERT_EQ(vast_search_offers(c, NULL, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_PARSE);
    ASSERT_CONTAINS(e.message, "offers");
    vast_client_set_retry(c, 1, 1, 1);
    ASSERT_EQ(vast_search_offers(c, NULL, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_SERVER);
    ASSERT_EQ(e.http_status, 500);
    ASSERT_CONTAINS(e.message, "HTTP 500");
    ASSERT_NOT_CONTAINS(e.message, "<html>");
    teardown(c);
}

/* ---- create */

TEST(vast_create_request_and_parse)
{
    vast_client *c = setup();
    push(200, "{\"success\": true, \"new_contract\": \"4242\", "
              "\"instance_api_key\": \"inst-key-1\", \"ask_id\": 123}");
    vast_env_kv env[] = { { "HF_TOKEN", "hf_x" }, { "-p 8000:8000", "1" } };
    vast_create r = { .image = "ghcr.io/ggml-org/whisper.cpp:main-cuda", .disk_gb = 40,
                      .label = "gpuscribe-1", .onstart = "touch ~/.no_auto_tmux",
                      .env = env, .n_env = 2 };
    vast_created out;
    vast_error e;
    ASSERT_EQ(vast_create_instance(c, 123, &r, &out, &e), 0);
    ASSERT_EQ(out.instance_id, 4242);
    ASSERT_STR_EQ(out.instance_api_key, "inst-key-1");
    vast_created_clear(&out);
    ASSERT_NULL(out.instance_api_key);

    ASSERT_EQ(nreq(), 1);
    ASSERT_STR_EQ(req(0)->method, "PUT");
    ASSERT_STR_EQ(req(0)->uri, "/api/v0/asks/123/");
    ASSERT_STR_EQ(req(0)->ctype, "application/json");
    assert_auth(0);
    json_t *b = req_json(0);
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "client_id")), "me");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "image")),
                  "ghcr.io/ggml-org/whisper.cpp:main-cuda");
    ASSERT_NEAR(jnum(b, "disk", NULL), 40, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "label")), "gpuscribe-1");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "onstart")), "touch ~/.no_auto_tmux");
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "runtype")), "ssh_proxy");
    json_t *je = json_object_get(b, "env");
    ASSERT_TRUE(json_is_object(je));   /* never a string: the server rejects that */
    ASSERT_STR_EQ(json_string_value(json_object_get(je, "HF_TOKEN")), "hf_x");
    ASSERT_STR_EQ(json_string_value(json_object_get(je, "-p 8000:8000")), "1");
    ASSERT_TRUE(json_is_true(json_object_get(b, "cancel_unavail")));
    ASSERT_NULL(json_object_get(b, "price"));   /* absent = on-demand */
    json_decref(b);

    /* Direct SSH, a bid, defaults for disk, no label, no key in the answer. */
    push(200, "{\"success\": true, \"new_contract\": 5}");
    vast_create r2 = { .image = "img", .direct = true, .price = 0.25, .allow_stopped = true };
    ASSERT_EQ(vast_create_instance(c, 7, &r2, &out, &e), 0);
    ASSERT_EQ(out.instance_id, 5);
    ASSERT_NULL(out.instance_api_key);
    b = req_json(1);
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "runtype")), "ssh_direc ssh_proxy");
    ASSERT_NEAR(jnum(b, "price", NULL), 0.25, 1e-9);
    ASSERT_NEAR(jnum(b, "disk", NULL), 10, 1e-9);
    ASSERT_TRUE(json_is_null(json_object_get(b, "label")));
    ASSERT_TRUE(json_is_null(json_object_get(b, "onstart")));
    ASSERT_TRUE(json_is_false(json_object_get(b, "cancel_unavail")));
    ASSERT_EQ(json_object_size(json_object_get(b, "env")), 0);
    json_decref(b);

    /* success without new_contract is a parse error; a missing image is refused unsent. */
    push(200, "{\"success\": true}");
    ASSERT_EQ(vast_create_instance(c, 7, &r2, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_PARSE);
    vast_create r3 = { .image = NULL };
    ASSERT_EQ(vast_create_instance(c, 7, &r3, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_INVALID);
    ASSERT_EQ(nreq(), 3);
    teardown(c);
}

TEST(vast_create_offer_taken)
{
    vast_client *c = setup();
    push(404, "{\"success\": false, \"error\": \"invalid_args\", \"msg\": \"error 404/3603: "
              "no_such_ask Instance type by id 123 is not available.\", \"ask_id\": 123}");
    push(410, "{\"success\": false, \"error\": \"no_such_ask\", \"msg\": \"error 410/3907: "
              "Instance type 124 is no longer available.\", \"ask_id\": 124}");
    vast_create r = { .image = "img" };
    vast_created out;
    vast_error e;
    ASSERT_EQ(vast_create_instance(c, 123, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_OFFER_TAKEN);
    ASSERT_EQ(e.http_status, 404);
    ASSERT_CONTAINS(e.message, "is not available");
    ASSERT_STR_EQ(vast_err_kind_name(e.kind), "offer_taken");
    ASSERT_EQ(vast_create_instance(c, 124, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_OFFER_TAKEN);
    ASSERT_EQ(e.http_status, 410);
    ASSERT_STR_EQ(e.code, "no_such_ask");
    ASSERT_EQ(nreq(), 2);   /* never retried */
    teardown(c);
}

TEST(vast_create_failure_naming_contract_destroys_it)
{
    vast_client *c = setup();
    push(200, "{\"success\": false, \"error\": \"invalid_price\", \"msg\": \"bid too low\", "
              "\"new_contract\": 777}");
    push(200, "{\"success\": true}");
    push(400, "{\"success\": false, \"error\": \"invalid_args\", \"msg\": \"nope\", "
              "\"new_contract\": \"778\"}");
    push(500, "{\"success\": false, \"msg\": \"db down\"}");
    vast_client_set_retry(c, 1, 1, 1);
    vast_create r = { .image = "img", .price = 0.01 };
    vast_created out;
    vast_error e;
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_FAILED);
    ASSERT_STR_EQ(e.code, "invalid_price");
    ASSERT_CONTAINS(e.message, "bid too low");
    ASSERT_CONTAINS(e.message, "777");
    ASSERT_CONTAINS(e.message, "destroyed");
    ASSERT_EQ(nreq(), 2);
    ASSERT_STR_EQ(req(1)->method, "DELETE");
    ASSERT_STR_EQ(req(1)->uri, "/api/v0/instances/777/");
    ASSERT_STR_EQ(req(1)->body, "{}");
    assert_auth(1);

    /* The destroy fails too: the message says so, and the create's kind stays. */
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_BAD_REQUEST);
    ASSERT_EQ(e.http_status, 400);
    ASSERT_STR_EQ(req(3)->uri, "/api/v0/instances/778/");
    ASSERT_CONTAINS(e.message, "destroying it failed");
    ASSERT_CONTAINS(e.message, "db down");
    teardown(c);
}

TEST(vast_create_never_retried_when_it_may_have_acted)
{
    vast_client *c = setup();
    push(502, "bad gateway");
    push(504, "{}");
    push(429, "{\"detail\": \"API requests too frequent endpoint threshold=4.5\"}");
    push(200, "{\"success\": true, \"new_contract\": 9}");
    vast_create r = { .image = "img" };
    vast_created out;
    vast_error e;
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_SERVER);
    ASSERT_EQ(nreq(), 1);
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_SERVER);
    ASSERT_EQ(nreq(), 2);
    /* 429 means the call was refused before acting: retried. */
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), 0);
    ASSERT_EQ(out.instance_id, 9);
    ASSERT_EQ(nreq(), 4);
    vast_created_clear(&out);
    teardown(c);
}

/* ---- instances */

static const char *INST_A =
    "{\"id\": 101, \"actual_status\": \"running\", \"intended_status\": \"running\","
    " \"cur_state\": \"running\", \"next_state\": \"running\","
    " \"status_msg\": \"success, running img/ssh\", \"label\": \"gpuscribe\","
    " \"ssh_host\": \"ssh5.vast.ai\", \"ssh_port\": \"20101\","
    " \"public_ipaddr\": \"203.0.113.7\\n\", "
    " \"ports\": {\"22/tcp\": [{\"HostIp\": \"0.0.0.0\", \"HostPort\": \"41022\"}],"
    "             \"8080/tcp\": [{\"HostIp\": \"0.0.0.0\", \"HostPort\": \"41080\"}]},"
    " \"dph_total\": 0.4520741, \"dph_base\": 0.45, \"storage_cost\": 0.149333,"
    " \"storage_total_cost\": \"0.0020741\", \"gpu_name\": \"RTX 4090\", \"num_gpus\": 1,"
    " \"gpu_ram\": 24564, \"disk_space\": 40, \"start_date\": 1764374400.5,"
    " \"duration\": 3600, \"machine_id\": 9, \"geolocation\": \"Oregon, US\","
    " \"image_uuid\": \"img\", \"image_runtype\": \"ssh ssh_proxy\", \"extra\": {\"x\": 1}}";

static const char *INST_B =
    "{\"id\": \"102\", \"actual_status\": null, \"intended_status\": \"running\","
    " \"label\": null, \"ssh_host\": null, \"ssh_port\": null, \"ports\": null,"
    " \"public_ipaddr\": null, \"dph_total\": null}";

TEST(vast_list_follows_next_token)
{
    vast_client *c = setup();
    char *p1 = xasprintf("{\"success\": true, \"instances_found\": 1, \"total_instances\": 3,"
                         " \"next_token\": \"eyJ2=+/&x\", \"instances\": [%s]}", INST_A);
    char *p2 = xasprintf("{\"success\": true, \"next_token\": \"tok2\", \"instances\": [%s, 5]}",
                         INST_B);
    push(200, p1);
    push(200, p2);
    push(200, "{\"success\": true, \"next_token\": null, "
              "\"instances\": [{\"id\": 103, \"actual_status\": \"loading\"}]}");
    vast_instance_list l;
    vast_error e;
    ASSERT_EQ(vast_list_instances(c, &l, &e), 0);
    ASSERT_EQ(nreq(), 3);
    for (int i = 0; i < 3; i++) {
        ASSERT_STR_EQ(req(i)->method, "GET");
        ASSERT_STR_EQ(req(i)->path, "/api/v1/instances/");
        ASSERT_STR_EQ(req(i)->body, "");
        assert_auth(i);
        ASSERT_STR_EQ(qarg(i, "select_filters"), "{}");
        ASSERT_STR_EQ(qarg(i, "order_by"), "[{\"col\":\"id\",\"dir\":\"asc\"}]");
        ASSERT_STR_EQ(qarg(i, "limit"), "25");
        ASSERT_NULL(qarg(i, "owner"));
    }
    /* JSON-encoded then URL-encoded, as the CLI sends it. */
    ASSERT_CONTAINS(req(0)->uri, "select_filters=%7B%7D");
    ASSERT_NULL(qarg(0, "after_token"));
    ASSERT_STR_EQ(qarg(1, "after_token"), "eyJ2=+/&x");
    ASSERT_CONTAINS(req(1)->uri, "after_token=eyJ2%3D%2B%2F%26x");
    ASSERT_STR_EQ(qarg(2, "after_token"), "tok2");

    ASSERT_EQ(l.n, 3);
    vast_instance *a = &l.items[0];
    ASSERT_EQ(a->id, 101);
    ASSERT_STR_EQ(a->actual_status, "running");
    ASSERT_STR_EQ(a->intended_status, "running");
    ASSERT_STR_EQ(a->cur_state, "running");
    ASSERT_STR_EQ(a->status_msg, "success, running img/ssh");
    ASSERT_STR_EQ(a->label, "gpuscribe");
    ASSERT_STR_EQ(a->ssh_host, "ssh5.vast.ai");
    ASSERT_EQ(a->ssh_port, 20101);
    ASSERT_STR_EQ(a->public_ipaddr, "203.0.113.7");
    ASSERT_EQ(a->direct_ssh_port, 41022);
    ASSERT_NEAR(a->dph_total, 0.4520741, 1e-12);
    ASSERT_NEAR(a->dph_base, 0.45, 1e-12);
    ASSERT_NEAR(a->storage_cost, 0.149333, 1e-12);
    ASSERT_NEAR(a->storage_total_cost, 0.0020741, 1e-12);
    ASSERT_STR_EQ(a->gpu_name, "RTX 4090");
    ASSERT_EQ(a->num_gpus, 1);
    ASSERT_NEAR(a->start_date, 1764374400.5, 1e-6);
    ASSERT_NEAR(a->duration, 3600, 1e-9);
    ASSERT_EQ(a->machine_id, 9);
    ASSERT_STR_EQ(a->geolocation, "Oregon, US");
    ASSERT_STR_EQ(a->image_runtype, "ssh ssh_proxy");
    ASSERT_EQ(json_integer_value(json_object_get(json_object_get(a->raw, "extra"), "x")), 1);
    vast_instance *b = &l.items[1];
    ASSERT_EQ(b->id, 102);
    ASSERT_STR_EQ(b->actual_status, "");
    ASSERT_STR_EQ(b->label, "");
    ASSERT_STR_EQ(b->ssh_host, "");
    ASSERT_EQ(b->ssh_port, 0);
    ASSERT_EQ(b->direct_ssh_port, 0);
    ASSERT_NEAR(b->dph_total, 0, 1e-12);
    ASSERT_EQ(l.items[2].id, 103);
    ASSERT_STR_EQ(l.items[2].actual_status, "loading");
    vast_instance_list_free(&l);
    ASSERT_EQ(l.n, 0);
    free(p1);
    free(p2);
    teardown(c);
}

TEST(vast_list_stops_on_bad_pages)
{
    vast_client *c = setup();
    push(200, "{\"next_token\": \"same\", \"instances\": [{\"id\": 1}]}");
    push(200, "{\"next_token\": \"same\", \"instances\": [{\"id\": 2}]}");
    push(200, "{\"next_token\": null, \"instances\": {\"id\": 1}}");
    push(410, "{\"success\": false, \"error\": \"deprecated_endpoint\", \"msg\": "
              "\"/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.\"}");
    vast_instance_list l;
    vast_error e;
    ASSERT_EQ(vast_list_instances(c, &l, &e), -1);   /* a token that does not advance */
    ASSERT_EQ(e.kind, VAST_ERR_PARSE);
    ASSERT_EQ(l.n, 0);
    ASSERT_NULL(l.items);
    ASSERT_EQ(vast_list_instances(c, &l, &e), -1);   /* instances not a list */
    ASSERT_EQ(e.kind, VAST_ERR_PARSE);
    ASSERT_EQ(vast_list_instances(c, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_BAD_REQUEST);
    ASSERT_STR_EQ(e.code, "deprecated_endpoint");
    ASSERT_CONTAINS(e.message, "deprecated");
    teardown(c);
}

TEST(vast_show_instance_and_gone)
{
    vast_client *c = setup();
    char *one = xasprintf("{\"instances\": %s}", INST_A);
    push(200, one);
    push(200, "{\"instances\": null}");
    push(200, "{\"instances\": []}");
    push(200, "{}");
    push(200, "{\"instances\": {\"actual_status\": \"loading\"}}");
    vast_instance in;
    vast_error e;
    ASSERT_EQ(vast_show_instance(c, 101, &in, &e), 0);
    ASSERT_STR_EQ(req(0)->method, "GET");
    ASSERT_STR_EQ(req(0)->uri, "/api/v0/instances/101/?owner=me");
    ASSERT_STR_EQ(qarg(0, "owner"), "me");
    assert_auth(0);
    ASSERT_EQ(in.id, 101);
    ASSERT_STR_EQ(in.ssh_host, "ssh5.vast.ai");
    ASSERT_EQ(in.ssh_port, 20101);
    ASSERT_NOT_NULL(in.raw);
    ASSERT_STR_EQ(json_string_value(json_object_get(in.raw, "status_msg")),
                  "success, running img/ssh");
    vast_instance_clear(&in);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(vast_show_instance(c, 55, &in, &e), -1);
        ASSERT_EQ(e.kind, VAST_ERR_NOT_FOUND);
        ASSERT_CONTAINS(e.message, "55");
    }
    ASSERT_EQ(vast_show_instance(c, 56, &in, &e), 0);   /* id filled from the request */
    ASSERT_EQ(in.id, 56);
    ASSERT_STR_EQ(in.actual_status, "loading");
    vast_instance_clear(&in);
    ASSERT_EQ(vast_show_instance(c, 0, &in, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_INVALID);
    ASSERT_EQ(nreq(), 5);
    free(one);
    teardown(c);
}

TEST(vast_destroy_start_stop_label)
{
    vast_client *c = setup();
    push(200, "{\"success\": true}");
    push(200, "{\"success\": true}");
    push(200, "{\"success\": true}");
    push(200, "{\"success\": true}");
    push(200, "");
    push(404, "{\"success\": false, \"error\": \"no_such_instance\", \"msg\": \"Instance 8 "
              "not found\"}");
    push(200, "{\"success\": false, \"msg\": \"Required resources are currently unavailable\"}");
    vast_error e;
    ASSERT_EQ(vast_destroy_instance(c, 8, &e), 0);
    ASSERT_STR_EQ(req(0)->method, "DELETE");
    ASSERT_STR_EQ(req(0)->uri, "/api/v0/instances/8/");
    ASSERT_STR_EQ(req(0)->body, "{}");
    assert_auth(0);
    ASSERT_EQ(vast_start_instance(c, 8, &e), 0);
    ASSERT_STR_EQ(req(1)->method, "PUT");
    ASSERT_STR_EQ(req(1)->uri, "/api/v0/instances/8/");
    ASSERT_STR_EQ(req(1)->body, "{\"state\":\"running\"}");
    ASSERT_EQ(vast_stop_instance(c, 8, &e), 0);
    ASSERT_STR_EQ(req(2)->body, "{\"state\":\"stopped\"}");
    ASSERT_EQ(vast_label_instance(c, 8, "gpuscribe \"x\"", &e), 0);
    ASSERT_STR_EQ(req(3)->method, "PUT");
    ASSERT_STR_EQ(req(3)->uri, "/api/v0/instances/8/");
    ASSERT_STR_EQ(req(3)->body, "{\"label\":\"gpuscribe \\\"x\\\"\"}");
    assert_auth(3);
    ASSERT_EQ(vast_label_instance(c, 8, NULL, &e), 0);   /* an empty 200 counts as {} */
    ASSERT_STR_EQ(req(4)->body, "{\"label\":null}");
    ASSERT_EQ(vast_destroy_instance(c, 8, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NOT_FOUND);
    ASSERT_STR_EQ(e.code, "no_such_instance");
    ASSERT_EQ(vast_start_instance(c, 8, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_FAILED);
    ASSERT_EQ(e.http_status, 200);
    ASSERT_STR_EQ(e.message, "Required resources are currently unavailable");
    ASSERT_EQ(nreq(), 7);
    teardown(c);
}

/* ---- keys and account */

#define PUB "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsc6c gpuscribe@host"

TEST(vast_ssh_keys)
{
    vast_client *c = setup();
    /* list */
    push(200, "[{\"id\": 1, \"user_id\": 5, \"public_key\": \"ssh-rsa AAAAB3 a@b\","
              "  \"deleted_at\": null},"
              " {\"id\": \"2\", \"key\": \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsc6c old\"},"
              " {\"id\": 3, \"public_key\": \"ssh-rsa GONE\", \"deleted_at\": \"2026-01-01\"}]");
    vast_ssh_key_list l;
    vast_error e;
    ASSERT_EQ(vast_list_ssh_keys(c, &l, &e), 0);
    ASSERT_STR_EQ(req(0)->method, "GET");
    ASSERT_STR_EQ(req(0)->uri, "/api/v0/ssh/");
    assert_auth(0);
    ASSERT_EQ(l.n, 2);
    ASSERT_EQ(l.items[0].id, 1);
    ASSERT_STR_EQ(l.items[0].public_key, "ssh-rsa AAAAB3 a@b");
    ASSERT_EQ(l.items[1].id, 2);
    vast_ssh_key_list_free(&l);

    /* add: a new key is POSTed and its id read from "key". */
    push(200, "[]");
    push(200, "{\"success\": true, \"key\": {\"id\": 31, \"public_key\": \"" PUB "\"}}");
    long long id = 0;
    ASSERT_EQ(vast_add_ssh_key(c, "  " PUB "\n", &id, &e), 0);
    ASSERT_EQ(id, 31);
    ASSERT_STR_EQ(req(1)->uri, "/api/v0/ssh/");
    ASSERT_STR_EQ(req(2)->method, "POST");
    ASSERT_STR_EQ(req(2)->uri, "/api/v0/ssh/");
    ASSERT_STR_EQ(req(2)->ctype, "application/json");
    assert_auth(2);
    json_t *b = req_json(2);
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "ssh_key")), PUB);
    ASSERT_EQ(json_object_size(b), 1);
    json_decref(b);

    /* add: already on the account (comment differs) -> its id, no POST. */
    push(200, "[{\"id\": 2, \"public_key\": \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsc6c x\"}]");
    ASSERT_EQ(vast_add_ssh_key(c, PUB, &id, &e), 0);
    ASSERT_EQ(id, 2);
    ASSERT_EQ(nreq(), 4);

    /* add: the POST says it exists (a race) -> list again. */
    push(200, "[]");
    push(400, "{\"success\": false, \"error\": \"invalid_args\", \"msg\": \"SSH key already "
              "exists\"}");
    push(200, "[{\"id\": 44, \"public_key\": \"" PUB "\"}]");
    ASSERT_EQ(vast_add_ssh_key(c, PUB, &id, &e), 0);
    ASSERT_EQ(id, 44);
    ASSERT_EQ(nreq(), 7);

    /* add: other refusals come back as they are. */
    push(200, "[]");
    push(400, "{\"success\": false, \"error\": \"team_ssh_keys_not_supported\", \"msg\": "
              "\"Team SSH keys are not supported.\"}");
    ASSERT_EQ(vast_add_ssh_key(c, PUB, &id, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_BAD_REQUEST);
    ASSERT_STR_EQ(e.code, "team_ssh_keys_not_supported");
    ASSERT_EQ(nreq(), 9);

    /* refused unsent */
    ASSERT_EQ(vast_add_ssh_key(c, "-----BEGIN OPENSSH PRIVATE KEY-----\nabc", &id, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_INVALID);
    ASSERT_EQ(vast_add_ssh_key(c, "hello world", &id, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_INVALID);
    ASSERT_EQ(nreq(), 9);

    /* attach */
    push(200, "{\"success\": true, \"msg\": \"SSH key added to instance.\"}");
    push(200, "{\"success\": false, \"msg\": \"Key already attached to instance\"}");
    push(404, "{\"success\": false, \"error\": \"no_such_instance\", \"msg\": \"no\"}");
    ASSERT_EQ(vast_attach_ssh_key(c, 77, PUB, &e), 0);
    ASSERT_STR_EQ(req(9)->method, "POST");
    ASSERT_STR_EQ(req(9)->uri, "/api/v0/instances/77/ssh/");
    assert_auth(9);
    b = req_json(9);
    ASSERT_STR_EQ(json_string_value(json_object_get(b, "ssh_key")), PUB);
    json_decref(b);
    ASSERT_EQ(vast_attach_ssh_key(c, 77, PUB, &e), 0);
    ASSERT_EQ(vast_attach_ssh_key(c, 77, PUB, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NOT_FOUND);
    teardown(c);
}

TEST(vast_current_user)
{
    vast_client *c = setup();
    push(200, "{\"id\": 12, \"email\": \"a@example.com\", \"username\": \"ann\","
              " \"balance\": \"12.5\", \"credit\": 3, \"can_pay\": true}");
    vast_user u;
    vast_error e;
    ASSERT_EQ(vast_current_user(c, &u, &e), 0);
    ASSERT_STR_EQ(req(0)->method, "GET");
    ASSERT_STR_EQ(req(0)->uri, "/api/v0/users/current/");
    assert_auth(0);
    ASSERT_EQ(u.id, 12);
    ASSERT_STR_EQ(u.email, "a@example.com");
    ASSERT_STR_EQ(u.username, "ann");
    ASSERT_NEAR(u.balance, 12.5, 1e-9);
    ASSERT_NEAR(u.credit, 3, 1e-9);
    vast_user_clear(&u);
    teardown(c);
}

/* ---- retries, errors, timeouts */

TEST(vast_retries_then_success)
{
    vast_client *c = setup();
    push(429, "API requests too frequent");
    push(503, "{\"success\": false, \"msg\": \"unavailable\"}");
    push(502, "");
    push(200, "{\"instances\": {\"id\": 5, \"actual_status\": \"running\"}}");
    vast_instance in;
    vast_error e;
    ASSERT_EQ(vast_show_instance(c, 5, &in, &e), 0);
    ASSERT_EQ(nreq(), 4);
    for (int i = 0; i < 4; i++) {
        ASSERT_STR_EQ(req(i)->uri, "/api/v0/instances/5/?owner=me");
        assert_auth(i);
    }
    ASSERT_STR_EQ(in.actual_status, "running");
    vast_instance_clear(&in);
    teardown(c);
}

TEST(vast_retries_are_bounded)
{
    vast_client *c = setup();
    vast_client_set_retry(c, 3, 1, 2);
    for (int i = 0; i < 3; i++) push(503, "{\"success\": false, \"msg\": \"maintenance\"}");
    for (int i = 0; i < 3; i++)
        push(429, "{\"success\": false, \"error\": \"rate_limit_exceeded\", \"msg\": "
                  "\"API requests too frequent endpoint threshold=3.0\"}");
    push(200, "{\"success\": true}");
    vast_error e;
    ASSERT_EQ(vast_destroy_instance(c, 3, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_SERVER);
    ASSERT_EQ(e.http_status, 503);
    ASSERT_STR_EQ(e.message, "maintenance");
    ASSERT_EQ(nreq(), 3);
    ASSERT_EQ(vast_destroy_instance(c, 3, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_RATE_LIMIT);
    ASSERT_EQ(e.http_status, 429);
    ASSERT_CONTAINS(e.message, "threshold=3.0");
    ASSERT_CONTAINS(e.message, "3 attempts");
    ASSERT_EQ(nreq(), 6);
    /* Not retried: other 4xx and 500. */
    push(400, "{\"success\": false, \"error\": \"invalid_args\", \"msg\": \"bad\"}");
    push(500, "{\"msg\": \"boom\"}");
    ASSERT_EQ(vast_destroy_instance(c, 3, &e), 0);
    ASSERT_EQ(vast_destroy_instance(c, 3, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_BAD_REQUEST);
    ASSERT_EQ(vast_destroy_instance(c, 3, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_SERVER);
    ASSERT_EQ(nreq(), 9);
    teardown(c);
    /* the calls, their retries and their errors by kind, counted (this test's process only) */
    buf b;
    buf_init(&b, 1 << 20);
    ASSERT_EQ(metrics_render(metrics_default(), &b), 0);
    char *out = buf_take(&b);
    ASSERT_CONTAINS(out, "# TYPE gpuscribe_vast_api_calls_total counter\n");
    ASSERT_CONTAINS(out, "gpuscribe_vast_api_calls_total{method=\"DELETE\"} 5\n");
    ASSERT_CONTAINS(out, "gpuscribe_vast_api_retries_total{method=\"DELETE\"} 4\n");
    ASSERT_CONTAINS(out, "gpuscribe_vast_api_errors_total{method=\"DELETE\",kind=\"server\"} 2\n");
    ASSERT_CONTAINS(out, "gpuscribe_vast_api_errors_total{method=\"DELETE\",kind=\"rate_limit\"} 1\n");
    ASSERT_CONTAINS(out, "gpuscribe_vast_api_errors_total{method=\"DELETE\",kind=\"bad_request\"} 1\n");
    free(out);
}

TEST(vast_auth_error_any_status)
{
    vast_client *c = setup();
    static const int codes[] = { 200, 401, 403, 404 };
    for (size_t i = 0; i < ARRAY_LEN(codes); i++)
        push(codes[i], "{\"success\": false, \"error\": \"auth_error\", "
                       "\"msg\": \"Invalid user key\"}");
    push(401, "Unauthorized");
    push(404, "{\"success\": false, \"msg\": \"Session expired. Please log in again.\"}");
    vast_user u;
    vast_error e;
    for (size_t i = 0; i < ARRAY_LEN(codes); i++) {
        ASSERT_EQ(vast_current_user(c, &u, &e), -1);
        ASSERT_EQ(e.kind, VAST_ERR_AUTH);
        ASSERT_EQ(e.http_status, codes[i]);
        ASSERT_STR_EQ(e.code, "auth_error");
        ASSERT_STR_EQ(e.message, "Invalid user key");
    }
    ASSERT_EQ(vast_current_user(c, &u, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_AUTH);
    ASSERT_CONTAINS(e.message, "Unauthorized");
    ASSERT_EQ(vast_current_user(c, &u, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_AUTH);
    ASSERT_EQ(nreq(), 6);   /* never retried */
    teardown(c);
}

TEST(vast_other_error_kinds)
{
    vast_client *c = setup();
    push(411, "{\"success\": false, \"msg\": \"Insufficient credit\"}");
    push(403, "{\"success\": false, \"error\": \"invalid_args\", \"msg\": \"error 403/3586: "
              "Offer 5 is not your own.\"}");
    push(483, "{\"success\": false, \"error\": \"invalid_args\", \"msg\": \"Invalid json_body\"}");
    vast_create r = { .image = "img" };
    vast_created out;
    vast_error e;
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NO_CREDIT);
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_FORBIDDEN);
    ASSERT_CONTAINS(e.message, "not your own");
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_BAD_REQUEST);
    for (int k = VAST_OK; k <= VAST_ERR_INVALID; k++)
        ASSERT_NOT_CONTAINS(vast_err_kind_name((vast_err_kind)k), "unknown");
    teardown(c);
}

TEST(vast_key_never_in_errors)
{
    vast_client *c = setup();
    push(401, "{\"success\": false, \"error\": \"auth_error\", \"msg\": \"Invalid user key "
              KEY "\"}");
    push(400, "bad key " KEY " given");
    push(200, "{\"success\": false, \"error\": \"" KEY "\"}");
    /* Debug logging on, into a file we read back. */
    int fd = open("log.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_TRUE(fd >= 0);
    log_set_fd(fd);
    log_set_level(LOG_DEBUG);
    vast_user u;
    vast_error e;
    ASSERT_EQ(vast_current_user(c, &u, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_AUTH);
    ASSERT_NOT_CONTAINS(e.message, KEY);
    ASSERT_CONTAINS(e.message, "[REDACTED]");
    ASSERT_EQ(vast_current_user(c, &u, &e), -1);
    ASSERT_NOT_CONTAINS(e.message, KEY);
    ASSERT_CONTAINS(e.message, "bad key");
    ASSERT_EQ(vast_current_user(c, &u, &e), -1);
    ASSERT_NOT_CONTAINS(e.message, KEY);
    ASSERT_NOT_CONTAINS(e.code, KEY);
    /* No key anywhere in a network error either. */
    srv_stop();
    vast_client_set_retry(c, 1, 1, 1);
    ASSERT_EQ(vast_current_user(c, &u, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NETWORK);
    ASSERT_NOT_CONTAINS(e.message, KEY);
    log_set_fd(2);
    close(fd);
    char *log = read_file("log.txt", 1 << 20, NULL);
    ASSERT_NOT_NULL(log);
    ASSERT_CONTAINS(log, "/api/v0/users/current/");
    ASSERT_NOT_CONTAINS(log, KEY);
    free(log);
    teardown(c);
}

/* A loopback port with nothing listening. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

TEST(vast_network_error_bounded_retries)
{
    ASSERT_EQ(vast_global_init(), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", dead_port());
    vast_client *c = vast_client_new(url, KEY);
    ASSERT_NOT_NULL(c);
    vast_client_set_retry(c, 3, 1, 2);
    vast_instance_list l;
    vast_error e;
    ASSERT_EQ(vast_list_instances(c, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NETWORK);
    ASSERT_EQ(e.http_status, 0);
    ASSERT_CONTAINS(e.message, "3 attempts");
    ASSERT_CONTAINS(e.message, "127.0.0.1");
    ASSERT_NOT_CONTAINS(e.message, KEY);
    /* Create retries a refused connection too: nothing was sent. */
    vast_create r = { .image = "img" };
    vast_created out;
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NETWORK);
    ASSERT_CONTAINS(e.message, "3 attempts");
    vast_client_free(c);
    vast_global_cleanup();
    LEAK_CHECK();
}

TEST(vast_timeouts)
{
    vast_client *c = setup();
    vast_client_set_timeouts(c, 1000, 400);
    vast_client_set_retry(c, 2, 1, 1);
    push_slow(200, "{\"instances\": null}", 1200);
    push_slow(200, "{\"instances\": null}", 1200);
    push_slow(200, "{\"success\": true, \"new_contract\": 1}", 1200);
    vast_instance in;
    vast_error e;
    ASSERT_EQ(vast_show_instance(c, 5, &in, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_TIMEOUT); /* each 1.2 s answer is cut by the 1 s limit */
    ASSERT_EQ(e.http_status, 0);
    ASSERT_CONTAINS(e.message, "timed out");
    ASSERT_CONTAINS(e.message, "2 attempts");
    /* A create that timed out may have rented: never sent twice. */
    vast_create r = { .image = "img" };
    vast_created out;
    ASSERT_EQ(vast_create_instance(c, 5, &r, &out, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_TIMEOUT);
    ASSERT_CONTAINS(e.message, "(1 attempt)");
    for (int i = 0; i < 300 && nreq() < 3; i++) usleep(10 * 1000);
    usleep(200 * 1000);
    ASSERT_EQ(nreq(), 3);
    ASSERT_STR_EQ(req(2)->uri, "/api/v0/asks/5/");
    teardown(c);
}

struct thr { vast_client *c; int ok; };

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < 10; i++) {
        vast_instance in;
        vast_error e;
        if (vast_show_instance(t->c, 1000 + i, &in, &e) == 0 && in.id == 9) t->ok++;
        vast_instance_clear(&in);
    }
    return NULL;
}

TEST(vast_one_client_many_threads)
{
    vast_client *c = setup();
    S.dflt = (struct canned){ 200, "{\"instances\": {\"id\": 9, \"actual_status\": \"running\"}}",
                              0 };
    pthread_t th[8];
    struct thr t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (struct thr){ c, 0 };
        ASSERT_EQ(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(t[i].ok, 10);
    }
    ASSERT_EQ(nreq(), 80);
    for (int i = 0; i < 80; i++) assert_auth(i);
    teardown(c);
}

TEST(vast_client_construction)
{
    ASSERT_EQ(vast_global_init(), 0);
    ASSERT_NULL(vast_client_new("ftp://x", KEY));
    ASSERT_NULL(vast_client_new("console.vast.ai", KEY));
    ASSERT_NULL(vast_client_new("http://", KEY));
    ASSERT_NULL(vast_client_new("https:///x", KEY));
    ASSERT_NULL(vast_client_new("https://x?api_key=1", KEY));
    ASSERT_NULL(vast_client_new("https://x", "a\r\nX-Evil: 1"));
    vast_client *c = vast_client_new(NULL, KEY);
    ASSERT_STR_EQ(vast_client_base_url(c), "https://console.vast.ai");
    vast_client_free(c);
    c = vast_client_new("http://127.0.0.1:9/api/v0/", KEY);
    ASSERT_STR_EQ(vast_client_base_url(c), "http://127.0.0.1:9");
    vast_client_free(c);

    /* No key: no Authorization header (Vast allows an anonymous search). */
    srv_start();
    c = vast_client_new(S.url, NULL);
    push(200, "{\"offers\": []}");
    vast_offer_list l;
    vast_error e;
    ASSERT_EQ(vast_search_offers(c, NULL, &l, &e), 0);
    ASSERT_NULL(req(0)->auth);
    vast_offer_list_free(&l);
    teardown(c);
}

TEST(vast_json_tolerance)
{
    json_t *o = json_loads("{\"a\": \"12\", \"b\": \" 1.5 \", \"c\": null, \"d\": \"x\","
                           " \"e\": 3.9, \"f\": true, \"g\": \"false\", \"h\": \"\","
                           " \"i\": \"9007199254740993\", \"j\": 7, \"k\": \"  pad \\n\","
                           " \"l\": [1], \"m\": \"1e400\"}", 0, NULL);
    ASSERT_NOT_NULL(o);
    ASSERT_NEAR(vast_j_num(o, "a", -1), 12, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "b", -1), 1.5, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "c", -1), -1, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "d", -1), -1, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "h", -1), -1, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "m", -1), -1, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "missing", -1), -1, 1e-12);
    ASSERT_NEAR(vast_j_num(o, "l", -1), -1, 1e-12);
    ASSERT_EQ(vast_j_ll(o, "e", 0), 3);
    ASSERT_EQ(vast_j_ll(o, "i", 0), 9007199254740993LL);
    ASSERT_EQ(vast_j_int(o, "i", -2), -2);
    ASSERT_EQ(vast_j_int(o, "a", 0), 12);
    ASSERT_TRUE(vast_j_bool(o, "f", false));
    ASSERT_FALSE(vast_j_bool(o, "g", true));
    ASSERT_TRUE(vast_j_bool(o, "j", false));
    ASSERT_TRUE(vast_j_bool(o, "c", true));
    char *s = vast_j_strdup(o, "k", true);
    ASSERT_STR_EQ(s, "pad");
    free(s);
    s = vast_j_strdup(o, "j", false);
    ASSERT_STR_EQ(s, "7");
    free(s);
    s = vast_j_strdup(o, "c", false);
    ASSERT_STR_EQ(s, "");
    free(s);
    s = vast_j_strdup(NULL, "x", false);
    ASSERT_STR_EQ(s, "");
    free(s);
    char small[4];
    vast_j_strcpy(o, "d", small, sizeof small);
    ASSERT_STR_EQ(small, "x");
    vast_j_strcpy(o, "i", small, sizeof small);
    ASSERT_STR_EQ(small, "900");
    ASSERT_NULL(vast_j_cstr(o, "j"));
    ASSERT_STR_EQ(vast_j_cstr(o, "d"), "x");
    json_decref(o);
    char *u = vast_urlencode("{\"a\": [1]}~-._");
    ASSERT_STR_EQ(u, "%7B%22a%22%3A%20%5B1%5D%7D~-._");
    free(u);
    LEAK_CHECK();
}

/* fuzz finding: a key near the end of a long message was cut by the truncation to the
 * message size before it was scrubbed, so a prefix of the key stayed in the message */
TEST(vast_error_scrubs_key_before_truncation)
{
    const char *key = "k0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
    vast_client *c = vast_client_new("http://127.0.0.1:9", key);
    vast_error e;
    char pad[600];
    for (size_t n = 440; n < 520; n += 7) {
        memset(pad, 'x', n);
        pad[n] = '\0';
        vast_set_error(c, &e, VAST_ERR_FAILED, 400, key, "%s%s tail", pad, key);
        char prefix[17];
        memcpy(prefix, key, 16);
        prefix[16] = '\0';
        ASSERT_TRUE(strstr(e.message, prefix) == NULL);
        ASSERT_TRUE(strstr(e.code, prefix) == NULL);
    }
    vast_client_free(c);
}

/* ---- image requirements (vast/image_req.h) */

#include "vast/image_req.h"
#include <math.h>

#define MAIN_CUDA "ghcr.io/ggml-org/whisper.cpp:main-cuda"

TEST(vast_image_req_table)
{
    image_req r;
    image_req_for(MAIN_CUDA, "large-v3", NAN, &r);
    ASSERT_TRUE(r.known);
    ASSERT_FALSE(r.cuda_overridden);
    ASSERT_NEAR(r.min_cuda, 13.0, 1e-9);
    ASSERT_EQ(r.min_compute_cap, 750);
    ASSERT_NEAR(r.model_gb, 3.1, 1e-9);
    ASSERT_NEAR(r.min_disk_gb, 10, 1e-9);   /* 4 + 3.1 + 2, rounded up */
    ASSERT_STR_EQ(r.image, MAIN_CUDA);
    ASSERT_STR_EQ(r.model, "large-v3");

    /* the disk follows the model */
    image_req_for(MAIN_CUDA, "large-v3-turbo", NAN, &r);
    ASSERT_NEAR(r.min_disk_gb, 8, 1e-9);
    image_req_for(MAIN_CUDA, "parakeet-tdt-0.6b-v3", NAN, &r);
    ASSERT_NEAR(r.model_gb, 1.3, 1e-9);
    ASSERT_NEAR(r.min_disk_gb, 8, 1e-9);
    image_req_for(MAIN_CUDA, "tiny.en", NAN, &r);
    ASSERT_NEAR(r.min_disk_gb, 7, 1e-9);

    /* tags, digests, case of the registry */
    static const char *const same[] = {
        MAIN_CUDA "-b6123", MAIN_CUDA "@sha256:0123abcd", MAIN_CUDA "-1.9.3@sha256:0123abcd",
        "GHCR.IO/ggml-org/whisper.cpp:main-cuda",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        image_req_for(same[i], "large-v3", NAN, &r);
        if (!r.known || r.min_cuda != 13.0 || r.min_compute_cap != 750)
            test_fail(__FILE__, __LINE__, "%s: not main-cuda's requirements", same[i]);
    }
    static const char *const other[] = {
        "ghcr.io/ggml-org/whisper.cpp:main", "ghcr.io/ggml-org/whisper.cpp:main-cudax",
        "ghcr.io/ggml-org/whisper.cpp:main-cuda-", "ghcr.io/ggml-org/whisper.cpp@sha256:0123",
        "ghcr.io/ggml-org/whisper.cpp.fork:main-cuda", "ghcr.io/ggml-org/whisper.cpp",
        "docker.io/library/ubuntu:22.04", "", "main-cuda",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        image_req_for(other[i], "large-v3", NAN, &r);
        if (r.known || r.min_cuda != 0 || r.min_compute_cap != 0)
            test_fail(__FILE__, __LINE__, "'%s': should be unknown, no GPU requirement",
                      other[i]);
        ASSERT_NEAR(r.image_gb, IMAGE_REQ_UNKNOWN_IMAGE_GB, 1e-9);
        ASSERT_NEAR(r.min_disk_gb, 11, 1e-9);   /* 5 + 3.1 + 2 */
    }
    image_req_for(NULL, NULL, NAN, &r);
    ASSERT_FALSE(r.known);
    ASSERT_STR_EQ(r.image, "");
    ASSERT_NEAR(r.model_gb, 3.1, 1e-9);

    /* a very long name is shortened, never overflowed */
    char longname[600];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    image_req_for(longname, "large-v3", NAN, &r);
    ASSERT_EQ(strlen(r.image), sizeof r.image - 1);
    ASSERT_STR_EQ(r.image + sizeof r.image - 4, "...");
}

TEST(vast_image_req_model_sizes)
{
    ASSERT_NEAR(image_req_model_gb("large-v3"), 3.1, 1e-9);
    ASSERT_NEAR(image_req_model_gb("ggml-large-v3.bin"), 3.1, 1e-9);
    ASSERT_NEAR(image_req_model_gb("LARGE-V3-TURBO"), 1.62, 1e-9);
    ASSERT_NEAR(image_req_model_gb("large-v3-turbo-q5_0"), 0.57, 1e-9);
    ASSERT_NEAR(image_req_model_gb("base.en"), 0.15, 1e-9);
    /* unknown: the largest, so the disk is never too small */
    ASSERT_NEAR(image_req_model_gb("my-finetune"), 3.1, 1e-9);
    ASSERT_NEAR(image_req_model_gb(""), 3.1, 1e-9);
    ASSERT_NEAR(image_req_model_gb(NULL), 3.1, 1e-9);
    ASSERT_NEAR(image_req_model_gb(".bin"), 3.1, 1e-9);
}

TEST(vast_image_req_override)
{
    image_req r;
    /* a custom image gets a CUDA requirement only through VAST_IMAGE_MIN_CUDA */
    image_req_for("registry.example/me/asr:cu124", "large-v3", 12.4, &r);
    ASSERT_FALSE(r.known);
    ASSERT_TRUE(r.cuda_overridden);
    ASSERT_NEAR(r.min_cuda, 12.4, 1e-9);
    ASSERT_EQ(r.min_compute_cap, 0);
    /* on a known image it replaces the table's CUDA, not its compute capability */
    image_req_for(MAIN_CUDA, "large-v3", 12.8, &r);
    ASSERT_NEAR(r.min_cuda, 12.8, 1e-9);
    ASSERT_EQ(r.min_compute_cap, 750);
    image_req_for(MAIN_CUDA, "large-v3", 0, &r);
    ASSERT_NEAR(r.min_cuda, 0, 1e-9);
    ASSERT_TRUE(r.cuda_overridden);
    /* NAN (unset) and negative keep the table */
    image_req_for(MAIN_CUDA, "large-v3", -1, &r);
    ASSERT_NEAR(r.min_cuda, 13.0, 1e-9);
    ASSERT_FALSE(r.cuda_overridden);
}

TEST(vast_image_req_apply_only_tightens)
{
    image_req r;
    image_req_for(MAIN_CUDA, "large-v3", NAN, &r);
    vast_search s = {0};
    image_req_apply(&r, &s);
    ASSERT_NEAR(s.min_cuda, 13.0, 1e-9);
    ASSERT_EQ(s.min_compute_cap, 750);
    ASSERT_NEAR(s.min_disk_gb, 10, 1e-9);
    /* looser user filters are raised ... */
    s = (vast_search){.min_cuda = 12, .min_compute_cap = 600, .min_disk_gb = 5, .max_dph = 0.5};
    image_req_apply(&r, &s);
    ASSERT_NEAR(s.min_cuda, 13.0, 1e-9);
    ASSERT_EQ(s.min_compute_cap, 750);
    ASSERT_NEAR(s.min_disk_gb, 10, 1e-9);
    ASSERT_NEAR(s.max_dph, 0.5, 1e-9);
    /* ... stricter ones kept */
    s = (vast_search){.min_cuda = 13.1, .min_compute_cap = 890, .min_disk_gb = 40};
    image_req_apply(&r, &s);
    ASSERT_NEAR(s.min_cuda, 13.1, 1e-9);
    ASSERT_EQ(s.min_compute_cap, 890);
    ASSERT_NEAR(s.min_disk_gb, 40, 1e-9);
    /* an unknown image adds only the disk */
    image_req_for("me/custom:1", "large-v3", NAN, &r);
    s = (vast_search){0};
    image_req_apply(&r, &s);
    ASSERT_NEAR(s.min_cuda, 0, 1e-9);
    ASSERT_EQ(s.min_compute_cap, 0);
    ASSERT_NEAR(s.min_disk_gb, 11, 1e-9);
}

TEST(vast_image_req_check_reasons)
{
    image_req r;
    image_req_for(MAIN_CUDA, "large-v3", NAN, &r);
    char why[512];
    vast_offer o = {.id = 1, .cuda_max_good = 12.4, .compute_cap = 860, .disk_space_gb = 100};
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 1);
    ASSERT_STR_EQ(why, "CUDA 12.4 < 13.0 required by " MAIN_CUDA);
    o.cuda_max_good = 13.0;
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 0);
    ASSERT_STR_EQ(why, "");
    o.cuda_max_good = 12.9999999;   /* float noise from a JSON number */
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 0);
    o.cuda_max_good = 13.1;
    o.compute_cap = 750;            /* T4: exactly enough */
    o.disk_space_gb = 10;
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 0);

    /* a Volta host on an old driver with a small disk: every reason, in order */
    o = (vast_offer){.cuda_max_good = 12.2, .compute_cap = 700, .disk_space_gb = 9.5};
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 3);
    ASSERT_CONTAINS(why, "CUDA 12.2 < 13.0 required by " MAIN_CUDA "; compute capability "
                         "7.0 < 7.5 required by " MAIN_CUDA "; disk 9 GB < 10 GB needed by "
                         MAIN_CUDA " with model large-v3");
    /* an AMD host */
    o = (vast_offer){.cuda_max_good = 0, .compute_cap = 0, .disk_space_gb = 500};
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 2);
    ASSERT_CONTAINS(why, "no CUDA driver");
    ASSERT_CONTAINS(why, "not an NVIDIA GPU");
    /* two decimals are kept */
    o = (vast_offer){.cuda_max_good = 12.45, .compute_cap = 890, .disk_space_gb = 500};
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 1);
    ASSERT_CONTAINS(why, "CUDA 12.45 < 13.0");
    /* the override says where the requirement comes from */
    image_req_for("me/custom:1", "large-v3", 12.8, &r);
    o = (vast_offer){.cuda_max_good = 12.4, .compute_cap = 610, .disk_space_gb = 500};
    ASSERT_EQ(image_req_check(&r, &o, why, sizeof why), 1);
    ASSERT_STR_EQ(why, "CUDA 12.4 < 12.8 required by VAST_IMAGE_MIN_CUDA for me/custom:1");
    /* a short buffer is cut, still terminated; none at all is fine */
    char tiny[12];
    ASSERT_EQ(image_req_check(&r, &o, tiny, sizeof tiny), 1);
    ASSERT_EQ(strlen(tiny), sizeof tiny - 1);
    ASSERT_EQ(image_req_check(&r, &o, NULL, 0), 1);
}

TEST(vast_search_sends_image_filters)
{
    vast_client *c = setup();
    push(200, "{\"offers\": [{\"id\": 5, \"cuda_max_good\": 13.0, \"compute_cap\": \"890\","
              " \"disk_space\": 80}, {\"id\": 6, \"dph_total\": 1}]}");
    image_req r;
    image_req_for(MAIN_CUDA, "large-v3", NAN, &r);
    vast_search s = {.min_cuda = 12, .min_disk_gb = 40};   /* the user asked for CUDA >= 12 */
    image_req_apply(&r, &s);
    vast_offer_list l;
    vast_error e;
    ASSERT_EQ(vast_search_offers(c, &s, &l, &e), 0);
    json_t *b = req_json(0);
    ASSERT_NEAR(jnum(b, "cuda_max_good", "gte"), 13.0, 1e-9);
    ASSERT_NEAR(jnum(b, "compute_cap", "gte"), 750, 1e-9);
    ASSERT_NEAR(jnum(b, "disk_space", "gte"), 40, 1e-9);
    json_decref(b);
    ASSERT_EQ(l.n, 2);
    ASSERT_EQ(l.items[0].id, 5);
    ASSERT_EQ(l.items[0].compute_cap, 890);   /* a string number is read too */
    ASSERT_EQ(l.items[1].compute_cap, 0);     /* absent */
    vast_offer_list_free(&l);
    /* no requirement: no compute_cap filter sent */
    push(200, "{\"offers\": []}");
    s = (vast_search){0};
    ASSERT_EQ(vast_search_offers(c, &s, &l, &e), 0);
    vast_offer_list_free(&l);
    b = req_json(1);
    ASSERT_NULL(json_object_get(b, "compute_cap"));
    ASSERT_NULL(json_object_get(b, "cuda_max_good"));
    json_decref(b);
    s = (vast_search){.min_compute_cap = -1};
    ASSERT_EQ(vast_search_offers(c, &s, &l, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_INVALID);
    teardown(c);
}

TEST(vast_image_req_preloaded_models)
{
    image_req r;
    image_req_for(MAIN_CUDA, "large-v3", NAN, &r);
    image_req_add_models(&r, NULL);
    ASSERT_NEAR(r.min_disk_gb, 10, 1e-9);
    image_req_add_models(&r, "");
    ASSERT_NEAR(r.min_disk_gb, 10, 1e-9);
    /* 4 + 3.1 + 1.62 + 1.3 + 2 = 12.02 -> 13; the main model and repeats counted once */
    image_req_add_models(&r, " large-v3-turbo, ,parakeet-tdt-0.6b-v3,LARGE-V3 , large-v3-turbo,");
    ASSERT_NEAR(r.model_gb, 3.1 + 1.62 + 1.3, 1e-9);
    ASSERT_NEAR(r.min_disk_gb, 13, 1e-9);
    /* an unknown preloaded model counts as the largest */
    image_req_for(MAIN_CUDA, "tiny", NAN, &r);
    image_req_add_models(&r, "my-finetune");
    ASSERT_NEAR(r.model_gb, 0.08 + 3.1, 1e-9);
    ASSERT_NEAR(r.min_disk_gb, 10, 1e-9);
}
