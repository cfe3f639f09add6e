/* api/vast.c: /api/vast/search, /api/vast/boot, /api/vast/destroy/{id}, /api/vast/instances,
 * /api/vast/instances/{id}. The Vast state (client, boots, VAST_INSTANCE_ID) lives in
 * fleet/vastctl, provisioning (states, setup, workers, tunnels) in fleet/provision. Each
 * handler validates its request on the HTTP thread, then waits on the Vast API on the
 * background pool (api_defer) and replies when resumed: a hung Vast.ai never holds an HTTP
 * thread, and each wait ends after VAST_TIMEOUT_SECONDS (per attempt). */
#include "api/api.h"
#include "api/instance_json.h"
#include "app.h"
#include "core/log.h"
#include "core/util.h"
#include "fleet/hosts.h"
#include "fleet/ledger.h"
#include "fleet/provision.h"
#include "fleet/speed.h"
#include "jobs/jobs.h"
#include "fleet/vastctl.h"
#include "store/instances.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SEARCH_DEFAULT_LIMIT 20
#define SEARCH_MAX_LIMIT 1000

static void reply_fail(http_req *r, int status, const char *kind, const char *msg)
{
    if (status == 503 && strcmp(kind, "rate_limit") == 0) http_add_header(r, "Retry-After", "5");
    http_reply_json(r, status, json_pack("{s:s,s:s,s:b}", "error", msg, "kind", kind,
                                         "success", 0));
}

static void reply_vast_err(http_req *r, const vast_error *e)
{
    char msg[640];
    vastctl_describe(e, msg, sizeof msg);
    reply_fail(r, vastctl_http_status(e->kind), vast_err_kind_name(e->kind), msg);
}

static int need_key(http_req *r, app *a)
{
    if (vastctl_has_key(a->vast)) return 0;
    reply_fail(r, 503, "no_key", vastctl_no_key_message());
    return -1;
}


/* ---- POST /api/vast/search */

/* Reads a non-negative number (or null) into *out. -1 after replying 400. */
static int get_num(http_req *r, json_t *body, const char *name, double max, double *out)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        http_reply_error(r, 400, "%s must be a number", name);
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < 0 || d > max) {
        http_reply_error(r, 400, "%s must be a number from 0 to %g", name, max);
        return -1;
    }
    *out = d;
    return 0;
}

static int get_int(http_req *r, json_t *body, const char *name, long min, long max, int *out)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        http_reply_error(r, 400, "%s must be an integer from %ld to %ld", name, min, max);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static const char *const search_fields[] = {
    "gpu_ram_min", "max_price", "min_reliability", "min_cuda", "min_disk", "min_inet_down",
    "num_gpus", "gpu_name", "limit", "type", "include_unverified", "disk", "min_compute_cap",
    "explain", "sort",
};

/* explain: the same search without the image's requirements, run beside the real one (on
 * its own thread, so the request waits for the slower of the two, not their sum). */
typedef struct relaxed_search {
    vast_client *client;
    vast_search s;
    vast_offer_list l;
    vast_error e;
    int rc;
} relaxed_search;

static void *relaxed_run(void *arg)
{
    relaxed_search *x = arg;
    x->rc = vast_search_offers(x->client, &x->s, &x->l, &x->e);
    return NULL;
}

/* The offers of the relaxed search that the image excludes, each with its reasons. */
static json_t *excluded_json(const image_req *req, const vast_offer_list *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++) {
        char why[768];
        if (image_req_check(req, &l->items[i], why, sizeof why) == 0) continue;
        json_t *j = vastctl_offer_json(&l->items[i]);
        json_object_set_new(j, "reason", json_string(why));
        json_t *reasons = json_array();
        for (char *p = why, *next; p && *p; p = next) {
            next = strstr(p, "; ");
            if (next) { *next = '\0'; next += 2; }
            json_array_append_new(reasons, json_string(p));
        }
        json_object_set_new(j, "reasons", reasons);
        json_array_append_new(arr, j);
    }
    return arr;
}

typedef struct search_job {
    app *a;
    vast_search s;
    char gpu_name[64];
    bool explain, relax;
    bool by_cost;          /* sort=cost_per_audio_hour */
    int limit;             /* offers answered (by_cost asks Vast.ai for more, to rank) */
    image_req req;
    relaxed_search rx;
    bool rx_started;
    vast_offer_list l;
    vast_error e;
    int rc;
} search_job;

static void search_work(void *jv)
{
    search_job *j = jv;
    pthread_t th;
    j->rx_started = j->relax && pthread_create(&th, NULL, relaxed_run, &j->rx) == 0;
    j->rc = vast_search_offers(vastctl_client(j->a->vast), &j->s, &j->l, &j->e);
    if (j->rx_started) pthread_join(th, NULL);
}

static void search_free(void *jv)
{
    search_job *j = jv;
    if (j->rc == 0) vast_offer_list_free(&j->l);
    if (j->rx_started && j->rx.rc == 0) vast_offer_list_free(&j->rx.l);
    free(j);
}

static void search_reply(http_req *r, search_job *j)
{
    if (j->rc != 0) {
        reply_vast_err(r, &j->e);
        return;
    }
    /* every offer with its expected cost per audio hour (fleet/speed.h); offers on hosts
     * remembered as bad (fleet/hosts.h) apart, with the reason */
    app *a = j->a;
    double backlog = 0, now = now_wall();
    if (a->jobs) jobs_backlog(a->jobs, &backlog, NULL);
    int slots = (int)config_int(a->cfg, CFG_WORKER_SLOTS);
    double boot_s = speed_boot_s(a->st), hours = config_num(a->cfg, CFG_BAD_HOST_HOURS);
    offer_rank *rk = xcalloc(j->l.n ? j->l.n : 1, sizeof *rk);
    speed_rank(a->st, config_str(a->cfg, CFG_ENGINE), slots, boot_s, backlog, j->l.items,
               j->l.n, rk);
    json_t *by_index = json_array(), *arr = json_array(), *bad = json_array();
    for (size_t i = 0; i < j->l.n; i++) json_array_append_new(by_index, json_null());
    for (size_t i = 0; i < j->l.n; i++) {
        const vast_offer *o = &j->l.items[rk[i].index];
        json_t *oj = vastctl_offer_json(o);
        json_object_set_new(oj, "speed_x", json_real(round(rk[i].speed.x * 100) / 100));
        json_object_set_new(oj, "speed_source", json_string(rk[i].speed.source));
        json_object_set_new(oj, "cost_per_audio_hour",
                            json_real(round(rk[i].cost_per_audio_hour * 1e4) / 1e4));
        bad_host h;
        if (hosts_bad(a->st, o->machine_id, hours, now, &h)) {
            json_object_set_new(oj, "bad_host", hosts_one_json(&h));
            json_array_append_new(bad, oj);
        } else if (j->by_cost) {
            if ((int)json_array_size(arr) < j->limit) json_array_append_new(arr, oj);
            else json_decref(oj);
        } else {
            json_array_set_new(by_index, rk[i].index, oj);
        }
    }
    if (!j->by_cost) {
        size_t i;
        json_t *v;
        json_array_foreach(by_index, i, v) if (!json_is_null(v)) json_array_append(arr, v);
    }
    json_decref(by_index);
    free(rk);
    json_t *out = json_pack("{s:o,s:o,s:s,s:o,s:f}", "offers", arr, "requirements",
                            vastctl_image_req_json(&j->req), "sort",
                            j->by_cost ? "cost_per_audio_hour" : "dph_total", "bad_hosts", bad,
                            "backlog_audio_s", round(backlog));
    if (j->explain) {
        if (!j->relax) {
            json_object_set_new(out, "excluded", json_array()); /* nothing to exclude */
        } else if (!j->rx_started) {
            json_object_set_new(out, "excluded", json_array());
            json_object_set_new(out, "explain_error",
                                json_string("cannot start the search for excluded offers"));
        } else if (j->rx.rc != 0) {
            char msg[640];
            vastctl_describe(&j->rx.e, msg, sizeof msg);
            json_object_set_new(out, "excluded", json_array());
            json_object_set_new(out, "explain_error", json_string(msg));
        } else {
            json_object_set_new(out, "excluded", excluded_json(&j->req, &j->rx.l));
        }
    }
    http_reply_json(r, 200, out);
}

void api_vast_search(http_req *r, void *appv)
{
    app *a = appv;
    search_job *done = api_deferred(r);
    if (done) {
        search_reply(r, done);
        return;
    }
    size_t blen = 0;
    http_body(r, &blen);
    json_t *body = blen ? http_body_json(r) : json_object();
    if (!body) return;
    const char *k;
    json_t *val;
    json_object_foreach(body, k, val) {
        bool known = false;
        for (size_t i = 0; i < ARRAY_LEN(search_fields); i++)
            if (strcmp(k, search_fields[i]) == 0) known = true;
        if (!known) {
            http_reply_error(r, 400, "unknown field '%.64s' (known: gpu_ram_min, max_price, "
                             "min_reliability, min_cuda, min_compute_cap, min_disk, "
                             "min_inet_down, num_gpus, gpu_name, limit, type, "
                             "include_unverified, disk, explain, sort)", k);
            json_decref(body);
            return;
        }
    }
    vast_search s = {0};
    double disk = (double)config_int(a->cfg, CFG_VAST_DISK_GB);
    s.limit = SEARCH_DEFAULT_LIMIT;
    if (get_num(r, body, "gpu_ram_min", 1e4, &s.gpu_ram_min_gb) ||
        get_num(r, body, "max_price", 1e4, &s.max_dph) ||
        get_num(r, body, "min_reliability", 1, &s.min_reliability) ||
        get_num(r, body, "min_cuda", 100, &s.min_cuda) ||
        get_num(r, body, "min_disk", 1e6, &s.min_disk_gb) ||
        get_num(r, body, "min_inet_down", 1e6, &s.min_inet_down) ||
        get_num(r, body, "disk", 1e5, &disk) ||
        get_int(r, body, "num_gpus", 0, 64, &s.num_gpus) ||
        get_int(r, body, "min_compute_cap", 0, 10000, &s.min_compute_cap) ||
        get_int(r, body, "limit", 1, SEARCH_MAX_LIMIT, &s.limit)) {
        json_decref(body);
        return;
    }
    json_t *v = json_object_get(body, "gpu_name");
    if (v && !json_is_null(v)) {
        const char *g = json_string_value(v);
        bool ok = g && *g && strlen(g) < 64;
        for (const char *p = g; ok && *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr(" _-.+/", *p)) ok = false;
        if (!ok) {
            http_reply_error(r, 400, "gpu_name must be a GPU model name such as \"RTX 4090\"");
            json_decref(body);
            return;
        }
        s.gpu_name = g;
    }
    v = json_object_get(body, "type");
    if (v && !json_is_null(v)) {
        const char *t = json_string_value(v);
        if (!t || (strcmp(t, "on-demand") && strcmp(t, "bid") && strcmp(t, "interruptible") &&
                   strcmp(t, "reserved"))) {
            http_reply_error(r, 400, "type must be \"on-demand\", \"interruptible\" or \"reserved\"");
            json_decref(body);
            return;
        }
        s.type = strcmp(t, "interruptible") == 0 ? "bid" : t;
    }
    v = json_object_get(body, "include_unverified");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            http_reply_error(r, 400, "include_unverified must be true or false");
            json_decref(body);
            return;
        }
        s.include_unverified = json_is_true(v);
    }
    bool explain = false;
    v = json_object_get(body, "explain");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            http_reply_error(r, 400, "explain must be true or false");
            json_decref(body);
            return;
        }
        explain = json_is_true(v);
    }
    bool by_cost = false;
    v = json_object_get(body, "sort");
    if (v && !json_is_null(v)) {
        const char *t = json_string_value(v);
        if (!t || (strcmp(t, "dph_total") && strcmp(t, "cost_per_audio_hour"))) {
            http_reply_error(r, 400, "sort must be \"dph_total\" (cheapest $/h first) or "
                             "\"cost_per_audio_hour\" (cheapest transcription first)");
            json_decref(body);
            return;
        }
        by_cost = !strcmp(t, "cost_per_audio_hour");
    }
    if (disk < 1) disk = 1;
    s.allocated_storage = disk; /* price offers for the disk a boot rents */
    if (s.min_disk_gb <= 0) s.min_disk_gb = disk;

    search_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->rc = -1;
    j->explain = explain;
    j->by_cost = by_cost;
    j->limit = s.limit;
    /* Vast.ai sorts by $/h: the cheapest per audio hour may be further down its list */
    if (by_cost) s.limit = s.limit * 4 > 64 ? (s.limit * 4 < SEARCH_MAX_LIMIT ? s.limit * 4 : SEARCH_MAX_LIMIT) : 64;
    if (s.gpu_name) { /* it points into the body */
        snprintf(j->gpu_name, sizeof j->gpu_name, "%s", s.gpu_name);
        s.gpu_name = j->gpu_name;
    }
    json_decref(body);
    /* the image's requirements: the caller's filters can only tighten them */
    vastctl_image_req(a->cfg, &j->req);
    j->rx = (relaxed_search){.client = vastctl_client(a->vast), .s = s, .rc = -1};
    image_req_apply(&j->req, &s);
    j->relax = explain && (s.min_cuda != j->rx.s.min_cuda ||
                           s.min_compute_cap != j->rx.s.min_compute_cap ||
                           s.min_disk_gb != j->rx.s.min_disk_gb);
    j->s = s;
    api_defer(r, a, j, search_work, search_free);
}

/* ---- POST /api/vast/boot */

typedef struct boot_job {
    app *a;
    long long offer;
    char key[208];
    bool has_key;
    vastctl_result res;
} boot_job;

static void boot_work(void *jv)
{
    boot_job *j = jv;
    vastctl_boot(j->a->vast, j->offer, j->has_key ? j->key : NULL, &j->res);
    if (j->res.http_status == 200) fleet_poke(j->a->fleet); /* provision it: SSH, setup, worker */
}

static void boot_reply(http_req *r, const boot_job *j)
{
    const vastctl_result *res = &j->res;
    if (res->http_status != 200) {
        reply_fail(r, res->http_status, res->kind, res->message);
        return;
    }
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", res->instance_id);
    char label[64];
    snprintf(label, sizeof label, VASTCTL_LABEL_PREFIX "-%lld", res->row_id);
    http_reply_json(r, 200, json_pack("{s:b,s:s,s:s,s:I,s:s,s:b}", "success", 1, "instance_id",
                                      ids, "message", res->message, "offer_id",
                                      (json_int_t)j->offer, "label", label, "reused",
                                      res->reused));
}

void api_vast_boot(http_req *r, void *appv)
{
    app *a = appv;
    boot_job *done = api_deferred(r);
    if (done) {
        boot_reply(r, done);
        return;
    }
    json_t *body = http_body_json(r);
    if (!body) return;
    json_t *o = json_object_get(body, "offer_id");
    if (!json_is_integer(o) || json_integer_value(o) <= 0) {
        json_decref(body);
        http_reply_error(r, 400, "offer_id must be a positive integer (an offer id from "
                         "POST /api/vast/search)");
        return;
    }
    long long offer = json_integer_value(o);
    json_decref(body);
    const char *key = http_header(r, "Idempotency-Key");
    if (key) {
        size_t n = strlen(key);
        bool ok = n > 0 && n <= 200;
        for (const char *p = key; ok && *p; p++)
            if (*p < 0x21 || *p > 0x7e) ok = false;
        if (!ok) {
            http_reply_error(r, 400, "Idempotency-Key must be 1 to 200 visible ASCII characters");
            return;
        }
    }
    if (need_key(r, a)) return;
    boot_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->offer = offer;
    j->has_key = key != NULL;
    if (key) snprintf(j->key, sizeof j->key, "%s", key);
    api_defer(r, a, j, boot_work, free);
}

/* The {instance_id} path parameter as a positive integer; 0 after replying 400. */
long api_instance_id(http_req *r, char *ids, size_t idslen)
{
    const char *p = http_param(r, "instance_id");
    long id;
    if (!p || parse_long(p, &id) != 0 || id <= 0) {
        http_reply_error(r, 400, "instance id must be a positive integer (Vast.ai's instance id)");
        return 0;
    }
    if (ids) snprintf(ids, idslen, "%ld", id);
    return id;
}

/* ---- POST /api/vast/destroy/{instance_id} */

typedef struct destroy_job {
    app *a;
    long id;
    vastctl_result res;
    json_t *cost; /* the cost summary of what was destroyed */
} destroy_job;

static void destroy_work(void *jv)
{
    destroy_job *j = jv;
    app *a = j->a;
    vastctl_destroy(a->vast, j->id, &j->res);
    if (j->res.http_status == 200 || j->res.http_status == 404) fleet_forget(a->fleet, j->id);
    if (j->res.http_status != 200) return;
    /* the cost summary of what was destroyed (the ledger is closed by now) */
    char ids[32];
    snprintf(ids, sizeof ids, "%ld", j->id);
    long long row = instances_id_of(a->st, ids);
    j->cost = row > 0 ? ledger_summary_json(a->st, row, now_wall())
                  : json_pack("{s:f,s:f,s:i,s:f}", "uptime_s", 0.0, "cost_usd", 0.0, "jobs",
                              0, "audio_hours", 0.0);
    LOG_I("vast", "%s (up %.0f s, cost $%.4f)", j->res.message,
          json_real_value(json_object_get(j->cost, "uptime_s")),
          json_real_value(json_object_get(j->cost, "cost_usd")));
    if (a->fleet) fleet_publish(a->fleet, ids);
}

static void destroy_free(void *jv)
{
    destroy_job *j = jv;
    json_decref(j->cost);
    free(j);
}

void api_vast_destroy(http_req *r, void *appv)
{
    app *a = appv;
    destroy_job *done = api_deferred(r);
    if (done) {
        if (done->res.http_status != 200) {
            reply_fail(r, done->res.http_status, done->res.kind, done->res.message);
            return;
        }
        http_reply_json(r, 200, json_pack("{s:b,s:s,s:O}", "success", 1, "message",
                                          done->res.message, "cost", done->cost));
        return;
    }
    long id = api_instance_id(r, NULL, 0);
    if (!id) return;
    if (need_key(r, a)) return;
    destroy_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->id = id;
    api_defer(r, a, j, destroy_work, destroy_free);
}

/* ---- GET /api/vast/instances */

typedef struct list_job {
    app *a;
    int rc;
    vast_instance_list l;
    vast_error e;
} list_job;

static void list_work(void *jv)
{
    list_job *j = jv;
    j->rc = vast_list_instances(vastctl_client(j->a->vast), &j->l, &j->e);
}

static void list_free(void *jv)
{
    list_job *j = jv;
    if (j->rc == 0) vast_instance_list_free(&j->l);
    free(j);
}

static void list_reply(http_req *r, app *a, list_job *job);

void api_vast_instances(http_req *r, void *appv)
{
    app *a = appv;
    list_job *done = api_deferred(r);
    if (done) {
        list_reply(r, a, done);
        return;
    }
    if (need_key(r, a)) return;
    list_job *j = xcalloc(1, sizeof *j);
    j->a = a;
    j->rc = -1;
    api_defer(r, a, j, list_work, list_free);
}

/* Vast's list joined with the store's rows (the store is local: read here) */
static void list_reply(http_req *r, app *a, list_job *job)
{
    if (job->rc != 0) {
        reply_vast_err(r, &job->e);
        return;
    }
    const vast_instance_list l = job->l;
    char cur[32];
    vastctl_current_instance(a->vast, cur, sizeof cur);
    json_t *ours = json_object(); /* vast_id -> store row */
    instance_row *rows = NULL;
    size_t nrows = 0;
    if (instances_list(a->st, INSTANCES_OURS, 0, 0, &rows, &nrows) == 0) {
        for (size_t i = 0; i < nrows; i++) {
            const instance_row *x = &rows[i];
            json_object_set_new(ours, x->vast_id,
                json_pack("{s:s?,s:s?,s:i,s:s?,s:f,s:I,s:s?,s:I}",
                          "state", x->state[0] ? x->state : NULL,
                          "stage", x->stage[0] ? x->stage : NULL,
                          "percent", x->percent,
                          "label", x->label[0] ? x->label : NULL,
                          "created_at", x->created_at,
                          "offer_id", (json_int_t)x->offer_id,
                          "error", x->error[0] ? x->error : NULL,
                          "row_id", (json_int_t)x->id));
        }
    }
    free(rows);

    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const vast_instance *in = &l.items[i];
        char ids[32];
        snprintf(ids, sizeof ids, "%lld", in->id);
        json_t *row = json_object_get(ours, ids);
        bool labelled = strncmp(in->label, VASTCTL_LABEL_PREFIX, strlen(VASTCTL_LABEL_PREFIX)) == 0;
        json_t *j = vastctl_instance_json(in);
        json_object_set_new(j, "state", row ? json_incref(json_object_get(row, "state")) : json_null());
        json_object_set_new(j, "stage", row ? json_incref(json_object_get(row, "stage")) : json_null());
        json_object_set_new(j, "percent", row ? json_incref(json_object_get(row, "percent")) : json_null());
        json_object_set_new(j, "error", row ? json_incref(json_object_get(row, "error")) : json_null());
        json_object_set_new(j, "row_id", row ? json_incref(json_object_get(row, "row_id")) : json_null());
        double created = in->start_date > 0 ? in->start_date
                         : row ? json_real_value(json_object_get(row, "created_at")) : 0;
        json_object_set_new(j, "created_at", created > 0 ? json_real(created) : json_null());
        json_object_set_new(j, "ours", json_boolean(row != NULL || labelled));
        const char *rs = row ? json_string_value(json_object_get(row, "state")) : NULL;
        json_object_set_new(j, "orphan", json_boolean((labelled && !row) ||
                                                      (rs && !strcmp(rs, "orphan"))));
        json_object_set_new(j, "current", json_boolean(strcmp(ids, cur) == 0));
        json_array_append_new(arr, j);
        if (row) json_object_del(ours, ids);
    }
    /* rows we believe alive that Vast no longer lists */
    const char *vid;
    json_t *row;
    json_object_foreach(ours, vid, row) {
        const char *state = json_string_value(json_object_get(row, "state"));
        if (!state || !strcmp(state, "destroyed") || !strcmp(state, "failed") ||
            !strcmp(state, "orphan"))
            continue;
        json_t *j = json_pack("{s:I,s:O,s:n,s:O,s:O,s:O,s:O,s:b,s:b,s:b}", "id",
                              (json_int_t)strtoll(vid, NULL, 10), "label",
                              json_object_get(row, "label"), "actual_status", "state",
                              json_object_get(row, "state"), "stage", json_object_get(row, "stage"),
                              "percent", json_object_get(row, "percent"), "created_at",
                              json_object_get(row, "created_at"), "ours", 1, "current",
                              strcmp(vid, cur) == 0, "vanished", 1);
        if (j) json_array_append_new(arr, j);
    }
    json_decref(ours);
    http_reply_json(r, 200, json_pack("{s:o,s:s?}", "instances", arr, "vast_instance",
                                      cur[0] ? cur : NULL));
}

/* ---- GET /api/vast/instances/{instance_id}: one instance's provisioning view */

void api_vast_instance(http_req *r, void *appv)
{
    app *a = appv;
    char ids[32];
    if (!api_instance_id(r, ids, sizeof ids)) return;
    json_t *j = a->fleet ? api_instance_json(a->fleet, ids) : NULL;
    if (!j) {
        http_reply_error(r, 404, "instance %s is not known to gpuscribe (boot it with POST "
                         "/api/vast/boot, or set VAST_INSTANCE_ID to adopt it)", ids);
        return;
    }
    http_reply_json(r, 200, j);
}
