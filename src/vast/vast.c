/* vast: the calls of the Vast.ai REST client (docs/vast-api.md section 3). */
#define _GNU_SOURCE
#include "vast/vast_int.h"

#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include "core/curl_dl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_PAGE_SIZE 25      /* the v1 list's maximum (spec 3.4) */
#define LIST_MAX_PAGES 10000   /* 250,000 instances: a server looping its tokens stops here */

/* ---- lifecycle */

int vast_global_init(void)
{
    json_object_seed(0);   /* seed jansson's hash before any thread parses */
    return 0;   /* libcurl: loaded and initialised by the first request (core/curl_dl) */
}

void vast_global_cleanup(void)
{
    curl_dl_cleanup();
}

vast_client *vast_client_new(const char *base_url, const char *api_key)
{
    const char *b = base_url && *base_url ? base_url : VAST_DEFAULT_URL;
    size_t scheme = !strncasecmp(b, "http://", 7) ? 7 : !strncasecmp(b, "https://", 8) ? 8 : 0;
    if (!scheme || !b[scheme] || b[scheme] == '/') return NULL;   /* a host is required */
    if (strpbrk(b, " \t\r\n?#")) return NULL;
    if (api_key && strpbrk(api_key, "\r\n")) return NULL;   /* no header injection */
    vast_client *c = xcalloc(1, sizeof *c);
    c->base = xstrdup(b);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/') c->base[--n] = '\0';
    /* A base given with the API prefix (".../api/v0") would double it: keep the host. */
    char *api = strstr(c->base + scheme, "/api/v");
    if (api) *api = '\0';
    c->api_key = xstrdup(api_key ? api_key : "");
    if (*c->api_key) {
        c->auth_header = xasprintf("Authorization: Bearer %s", c->api_key);
        log_add_secret(c->api_key);
    }
    c->connect_ms = 10000;
    c->total_ms = 60000;
    c->attempts = 4;
    c->backoff_base_ms = 150;
    c->backoff_max_ms = 5000;
    return c;
}

void vast_client_free(vast_client *c)
{
    if (!c) return;
    free(c->base);
    if (c->api_key) explicit_bzero(c->api_key, strlen(c->api_key));
    if (c->auth_header) explicit_bzero(c->auth_header, strlen(c->auth_header));
    free(c->api_key);
    free(c->auth_header);
    free(c);
}

void vast_client_set_timeouts(vast_client *c, long connect_ms, long total_ms)
{
    if (connect_ms > 0) c->connect_ms = connect_ms;
    if (total_ms > 0) c->total_ms = total_ms;
}

void vast_client_set_retry(vast_client *c, int max_attempts, long base_ms, long max_ms)
{
    c->attempts = max_attempts < 1 ? 1 : max_attempts;
    if (base_ms >= 0) c->backoff_base_ms = base_ms;
    if (max_ms >= 0) c->backoff_max_ms = max_ms;
    if (c->backoff_max_ms < c->backoff_base_ms) c->backoff_max_ms = c->backoff_base_ms;
}

const char *vast_client_base_url(const vast_client *c)
{
    return c->base;
}

/* ---- offers */

static void put_op(json_t *q, const char *field, const char *op, json_t *val)
{
    json_t *f = json_object_get(q, field);
    if (!f) {
        f = json_object();
        json_object_set_new(q, field, f);
    }
    json_object_set_new(f, op, val);
}

static void parse_offer(const json_t *o, vast_offer *v)
{
    memset(v, 0, sizeof *v);
    v->id = vast_j_ll(o, "id", 0);
    v->machine_id = vast_j_ll(o, "machine_id", 0);
    v->host_id = vast_j_ll(o, "host_id", 0);
    vast_j_strcpy(o, "gpu_name", v->gpu_name, sizeof v->gpu_name);
    v->num_gpus = vast_j_int(o, "num_gpus", 0);
    v->gpu_ram_gb = vast_j_num(o, "gpu_ram", 0) / 1000.0;
    v->gpu_total_ram_gb = vast_j_num(o, "gpu_total_ram", 0) / 1000.0;
    v->dph_total = vast_j_num(o, "dph_total", 0);
    v->dph_base = vast_j_num(o, "dph_base", 0);
    v->storage_cost = vast_j_num(o, "storage_cost", 0);
    v->storage_total_cost = vast_j_num(o, "storage_total_cost", 0);
    v->min_bid = vast_j_num(o, "min_bid", 0);
    v->reliability2 = vast_j_num(o, "reliability2", vast_j_num(o, "reliability", 0));
    v->disk_space_gb = vast_j_num(o, "disk_space", 0);
    v->inet_down = vast_j_num(o, "inet_down", 0);
    v->inet_up = vast_j_num(o, "inet_up", 0);
    v->cuda_max_good = vast_j_num(o, "cuda_max_good", 0);
    v->compute_cap = vast_j_int(o, "compute_cap", 0);
    v->cpu_ram_gb = vast_j_num(o, "cpu_ram", 0) / 1000.0;
    v->cpu_cores_effective = vast_j_num(o, "cpu_cores_effective", 0);
    v->direct_port_count = vast_j_int(o, "direct_port_count", 0);
    v->dlperf = vast_j_num(o, "dlperf", 0);
    v->score = vast_j_num(o, "score", 0);
    vast_j_strcpy(o, "geolocation", v->geolocation, sizeof v->geolocation);
    vast_j_strcpy(o, "verification", v->verification, sizeof v->verification);
    v->verified = !strcmp(v->verification, "verified") || vast_j_bool(o, "verified", false);
    v->rented = vast_j_bool(o, "rented", false);
}

/* json_string() refuses invalid UTF-8 (NULL): record that and put a null instead. */
static json_t *jstr(const char *s, bool *bad)
{
    json_t *v = json_string(s);
    if (!v) { *bad = true; return json_null(); }
    return v;
}

static int offer_cmp(const void *a, const void *b)
{
    const vast_offer *x = a, *y = b;
    if (x->dph_total < y->dph_total) return -1;
    if (x->dph_total > y->dph_total) return 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int bad_arg(vast_error *err, const char *what)
{
    vast_set_error(NULL, err, VAST_ERR_INVALID, 0, NULL, "%s", what);
    return -1;
}

int vast_search_offers(vast_client *c, const vast_search *s, vast_offer_list *out,
                       vast_error *err)
{
    static const vast_search defaults;
    if (!s) s = &defaults;
    out->items = NULL;
    out->n = 0;
    if (err) memset(err, 0, sizeof *err);
    if (s->gpu_ram_min_gb < 0 || s->max_dph < 0 || s->min_reliability < 0 ||
        s->min_reliability > 1 || s->min_cuda < 0 || s->min_disk_gb < 0 ||
        s->min_inet_down < 0 || s->num_gpus < 0 || s->limit < 0 || s->allocated_storage < 0 ||
        s->min_compute_cap < 0)
        return bad_arg(err, "search: a filter is out of range");
    const char *type = s->type && *s->type ? s->type : "on-demand";
    if (!strcmp(type, "interruptible")) type = "bid";
    if (strcmp(type, "on-demand") && strcmp(type, "ondemand") && strcmp(type, "bid") &&
        strcmp(type, "reserved"))
        return bad_arg(err, "search: type must be on-demand, bid or reserved");

    json_t *q = json_object();
    /* The official CLI's default filters (spec 3.1). */
    if (!s->include_unverified) put_op(q, "verified", "eq", json_true());
    put_op(q, "external", "eq", json_false());
    put_op(q, "rentable", "eq", json_true());
    put_op(q, "rented", "eq", json_false());
    if (s->gpu_ram_min_gb > 0) put_op(q, "gpu_ram", "gte", json_real(s->gpu_ram_min_gb * 1000.0));
    if (s->max_dph > 0) put_op(q, "dph_total", "lte", json_real(s->max_dph));
    if (s->min_reliability > 0) put_op(q, "reliability2", "gte", json_real(s->min_reliability));
    if (s->min_cuda > 0) put_op(q, "cuda_max_good", "gte", json_real(s->min_cuda));
    if (s->min_compute_cap > 0)
        put_op(q, "compute_cap", "gte", json_integer(s->min_compute_cap));
    if (s->min_disk_gb > 0) put_op(q, "disk_space", "gte", json_real(s->min_disk_gb));
    if (s->min_inet_down > 0) put_op(q, "inet_down", "gte", json_real(s->min_inet_down));
    if (s->num_gpus > 0) put_op(q, "num_gpus", "eq", json_integer(s->num_gpus));
    if (s->offer_id > 0) put_op(q, "id", "eq", json_integer(s->offer_id));
    bool bad = false;
    if (s->gpu_name && *s->gpu_name) {
        char *name = xstrdup(s->gpu_name);
        for (char *p = name; *p; p++) if (*p == '_') *p = ' ';  /* as the CLI does */
        put_op(q, "gpu_name", "eq", jstr(name, &bad));
        free(name);
    }
    json_t *ord = s->order ? json_string(s->order) : NULL;
    if (s->order && !ord) bad = true;
    json_decref(ord);
    if (bad) {
        json_decref(q);
        return bad_arg(err, "search: a text filter is not valid UTF-8");
    }
    bool default_order = !s->order || !*s->order;
    json_object_set_new(q, "order",
        json_pack("[[ss]]", default_order ? "dph_total" : s->order,
                  default_order || !s->order_desc ? "asc" : "desc"));
    json_object_set_new(q, "type", json_string(type));
    json_object_set_new(q, "allocated_storage",
                        json_real(s->allocated_storage > 0 ? s->allocated_storage : 5.0));
    if (s->limit > 0) json_object_set_new(q, "limit", json_integer(s->limit));

    json_t *resp = NULL;
    int rc = vast_request(c, "POST", "/api/v0/bundles/", q, VAST_RETRY_ALL, &resp, err);
    json_decref(q);
    if (rc != 0) { json_decref(resp); return -1; }

    const json_t *arr = json_is_array(resp) ? resp : json_object_get(resp, "offers");
    if (json_is_null(arr)) arr = NULL;
    if (arr && !json_is_array(arr)) {
        json_decref(resp);
        vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL, "search: `offers` is not a list");
        return -1;
    }
    if (!arr && !json_is_object(resp)) {
        json_decref(resp);
        vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL, "search: no `offers` in the answer");
        return -1;
    }
    size_t total = arr ? json_array_size(arr) : 0;
    out->items = xcalloc(total ? total : 1, sizeof *out->items);
    for (size_t i = 0; i < total; i++) {
        const json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) continue;
        vast_offer v;
        parse_offer(o, &v);
        if (v.id <= 0 || v.rented) continue;
        out->items[out->n++] = v;
    }
    json_decref(resp);
    if (default_order) qsort(out->items, out->n, sizeof *out->items, offer_cmp);
    return 0;
}

void vast_offer_list_free(vast_offer_list *l)
{
    if (!l) return;
    SAFE_FREE(l->items);
    l->n = 0;
}

/* ---- create */

int vast_create_instance(vast_client *c, long long offer_id, const vast_create *req,
                         vast_created *out, vast_error *err)
{
    out->instance_id = 0;
    out->instance_api_key = NULL;
    if (err) memset(err, 0, sizeof *err);
    if (offer_id <= 0) return bad_arg(err, "create: the offer id must be positive");
    if (!req || !req->image || !*req->image) return bad_arg(err, "create: an image is required");
    if (strlen(req->image) > 1024) return bad_arg(err, "create: the image name is too long");
    if (req->disk_gb < 0) return bad_arg(err, "create: disk must be positive");
    if (req->price < 0) return bad_arg(err, "create: price must be positive");

    bool bad = false;
    json_t *env = json_object();
    for (size_t i = 0; i < req->n_env; i++) {
        if (!req->env[i].key || !*req->env[i].key) {
            json_decref(env);
            return bad_arg(err, "create: an env entry has no name");
        }
        json_object_set_new(env, req->env[i].key,
                            jstr(req->env[i].value ? req->env[i].value : "", &bad));
        if (!json_object_get(env, req->env[i].key)) bad = true;   /* key not UTF-8 */
    }
    const char *runtype = req->runtype && *req->runtype ? req->runtype
                        : req->direct ? "ssh_direc ssh_proxy" : "ssh_proxy";
    json_t *b = json_object();
    json_object_set_new(b, "client_id", json_string("me"));
    json_object_set_new(b, "image", jstr(req->image, &bad));
    json_object_set_new(b, "disk", json_real(req->disk_gb > 0 ? req->disk_gb : 10.0));
    json_object_set_new(b, "env", env);
    json_object_set_new(b, "runtype", jstr(runtype, &bad));
    json_object_set_new(b, "onstart", req->onstart ? jstr(req->onstart, &bad) : json_null());
    json_object_set_new(b, "label", req->label ? jstr(req->label, &bad) : json_null());
    json_object_set_new(b, "cancel_unavail", json_boolean(!req->allow_stopped));
    json_object_set_new(b, "python_utf8", json_false());
    json_object_set_new(b, "lang_utf8", json_false());
    json_object_set_new(b, "use_jupyter_lab", json_false());
    json_object_set_new(b, "jupyter_dir", json_null());
    json_object_set_new(b, "force", json_false());
    if (req->price > 0) json_object_set_new(b, "price", json_real(req->price));
    if (req->image_login) json_object_set_new(b, "image_login", jstr(req->image_login, &bad));
    if (bad) {
        json_decref(b);
        return bad_arg(err, "create: a field is not valid UTF-8");
    }

    char path[64];
    snprintf(path, sizeof path, "/api/v0/asks/%lld/", offer_id);
    json_t *resp = NULL;
    int rc = vast_request(c, "PUT", path, b, VAST_RETRY_UNSENT, &resp, err);
    json_decref(b);
    long long contract = vast_j_ll(resp, "new_contract", 0);
    if (rc == 0) {
        if (contract <= 0) {
            vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL,
                           "create: Vast's answer has no new_contract");
            json_decref(resp);
            return -1;
        }
        out->instance_id = contract;
        const char *key = vast_j_cstr(resp, "instance_api_key");
        if (key && *key) out->instance_api_key = xstrdup(key);
        json_decref(resp);
        return 0;
    }
    json_decref(resp);
    if (contract > 0) {
        /* Vast created an instance and still reported failure (spec 3.2 spot pitfall):
         * never leave it billing. */
        vast_error derr, orig;
        if (err) orig = *err;
        else memset(&orig, 0, sizeof orig);
        if (vast_destroy_instance(c, contract, &derr) == 0 || derr.kind == VAST_ERR_NOT_FOUND) {
            if (err)
                vast_set_error(c, err, orig.kind, orig.http_status, orig.code,
                               "%s (Vast created instance %lld anyway; it was destroyed)",
                               orig.message, contract);
        } else if (err) {
            vast_set_error(c, err, orig.kind, orig.http_status, orig.code,
                           "%s (Vast created instance %lld anyway and destroying it failed: "
                           "%s; destroy it by hand)", orig.message, contract, derr.message);
        }
    }
    return -1;
}

void vast_created_clear(vast_created *cr)
{
    if (!cr) return;
    if (cr->instance_api_key) explicit_bzero(cr->instance_api_key, strlen(cr->instance_api_key));
    SAFE_FREE(cr->instance_api_key);
    cr->instance_id = 0;
}

/* ---- instances */

static int host_port(const json_t *ports, const char *name)
{
    const json_t *m = json_is_object(ports) ? json_object_get(ports, name) : NULL;
    const json_t *first = json_is_array(m) ? json_array_get(m, 0) : m;
    long long p = vast_j_ll(first, "HostPort", 0);
    return p > 0 && p < 65536 ? (int)p : 0;
}

static void parse_instance(json_t *o, vast_instance *in)
{
    memset(in, 0, sizeof *in);
    in->id = vast_j_ll(o, "id", 0);
    in->actual_status = vast_j_strdup(o, "actual_status", true);
    in->intended_status = vast_j_strdup(o, "intended_status", true);
    in->cur_state = vast_j_strdup(o, "cur_state", true);
    in->next_state = vast_j_strdup(o, "next_state", true);
    in->status_msg = vast_j_strdup(o, "status_msg", true);
    in->label = vast_j_strdup(o, "label", false);
    in->ssh_host = vast_j_strdup(o, "ssh_host", true);
    int sp = vast_j_int(o, "ssh_port", 0);
    in->ssh_port = sp > 0 && sp < 65536 ? sp : 0;
    in->public_ipaddr = vast_j_strdup(o, "public_ipaddr", true);
    in->direct_ssh_port = host_port(json_object_get(o, "ports"), "22/tcp");
    in->image_uuid = vast_j_strdup(o, "image_uuid", true);
    in->image_runtype = vast_j_strdup(o, "image_runtype", true);
    in->gpu_name = vast_j_strdup(o, "gpu_name", true);
    in->num_gpus = vast_j_int(o, "num_gpus", 0);
    in->gpu_ram_gb = vast_j_num(o, "gpu_ram", 0) / 1000.0;
    in->dph_total = vast_j_num(o, "dph_total", 0);
    in->dph_base = vast_j_num(o, "dph_base", 0);
    in->storage_cost = vast_j_num(o, "storage_cost", 0);
    in->storage_total_cost = vast_j_num(o, "storage_total_cost", 0);
    in->disk_space_gb = vast_j_num(o, "disk_space", 0);
    in->inet_down = vast_j_num(o, "inet_down", 0);
    in->inet_up = vast_j_num(o, "inet_up", 0);
    in->reliability2 = vast_j_num(o, "reliability2", 0);
    in->start_date = vast_j_num(o, "start_date", 0);
    in->end_date = vast_j_num(o, "end_date", 0);
    in->duration = vast_j_num(o, "duration", 0);
    in->machine_id = vast_j_ll(o, "machine_id", 0);
    in->geolocation = vast_j_strdup(o, "geolocation", true);
    in->raw = json_incref(o);
}

void vast_instance_clear(vast_instance *in)
{
    if (!in) return;
    free(in->actual_status);
    free(in->intended_status);
    free(in->cur_state);
    free(in->next_state);
    free(in->status_msg);
    free(in->label);
    free(in->ssh_host);
    free(in->public_ipaddr);
    free(in->image_uuid);
    free(in->image_runtype);
    free(in->gpu_name);
    free(in->geolocation);
    json_decref(in->raw);
    memset(in, 0, sizeof *in);
}

void vast_instance_list_free(vast_instance_list *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) vast_instance_clear(&l->items[i]);
    SAFE_FREE(l->items);
    l->n = 0;
}

int vast_list_instances(vast_client *c, vast_instance_list *out, vast_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (err) memset(err, 0, sizeof *err);
    /* As the CLI sends it (spec 3.4): JSON-encoded, then URL-encoded. */
    char *filters = vast_urlencode("{}");
    char *order = vast_urlencode("[{\"col\":\"id\",\"dir\":\"asc\"}]");
    char *token = NULL;
    size_t cap = 0;
    int rc = -1;
    for (int page = 0;; page++) {
        if (page >= LIST_MAX_PAGES) {
            vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL,
                           "list: more than %d pages; giving up", LIST_MAX_PAGES);
            break;
        }
        char *tok = token ? vast_urlencode(token) : NULL;
        char *path = xasprintf("/api/v1/instances/?select_filters=%s&order_by=%s&limit=%d%s%s",
                               filters, order, LIST_PAGE_SIZE, tok ? "&after_token=" : "",
                               tok ? tok : "");
        free(tok);
        json_t *resp = NULL;
        int r = vast_request(c, "GET", path, NULL, VAST_RETRY_ALL, &resp, err);
        free(path);
        if (r != 0) { json_decref(resp); break; }
        const json_t *arr = json_object_get(resp, "instances");
        if (!json_is_array(arr) && !json_is_null(arr)) {
            json_decref(resp);
            vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL,
                           "list: the answer has no `instances` list");
            break;
        }
        size_t k = json_array_size(arr);   /* 0 for null */
        if (out->n + k > cap) {
            cap = (out->n + k) * 2;
            out->items = xrealloc(out->items, cap * sizeof *out->items);
        }
        for (size_t i = 0; i < k; i++) {
            json_t *o = json_array_get(arr, i);
            if (!json_is_object(o)) continue;
            parse_instance(o, &out->items[out->n]);
            if (out->items[out->n].id <= 0) { vast_instance_clear(&out->items[out->n]); continue; }
            out->n++;
        }
        const char *next = vast_j_cstr(resp, "next_token");
        if (!next || !*next) {
            json_decref(resp);
            rc = 0;
            break;
        }
        if (token && !strcmp(token, next)) {
            json_decref(resp);
            vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL,
                           "list: next_token does not advance; giving up");
            break;
        }
        free(token);
        token = xstrdup(next);
        json_decref(resp);
    }
    free(token);
    free(filters);
    free(order);
    if (rc != 0) vast_instance_list_free(out);
    return rc;
}

int vast_show_instance(vast_client *c, long long id, vast_instance *out, vast_error *err)
{
    memset(out, 0, sizeof *out);
    if (err) memset(err, 0, sizeof *err);
    if (id <= 0) return bad_arg(err, "show: the instance id must be positive");
    char path[80];
    snprintf(path, sizeof path, "/api/v0/instances/%lld/?owner=me", id);
    json_t *resp = NULL;
    if (vast_request(c, "GET", path, NULL, VAST_RETRY_ALL, &resp, err) != 0) {
        json_decref(resp);
        return -1;
    }
    /* {"instances": {...}}; null (or, tolerated, an empty list or a non-object) = gone. */
    json_t *o = json_object_get(resp, "instances");
    if (json_is_array(o)) o = json_array_get(o, 0);
    if (!json_is_object(o) || json_object_size(o) == 0) {
        json_decref(resp);
        vast_set_error(c, err, VAST_ERR_NOT_FOUND, 200, NULL,
                       "instance %lld not found (destroyed, or not on this account)", id);
        return -1;
    }
    parse_instance(o, out);
    if (out->id <= 0) out->id = id;
    json_decref(resp);
    return 0;
}

static int simple_call(vast_client *c, const char *method, const char *path, json_t *body,
                       vast_error *err)
{
    json_t *resp = NULL;
    int rc = vast_request(c, method, path, body, VAST_RETRY_ALL, &resp, err);
    json_decref(resp);
    json_decref(body);
    return rc;
}

int vast_destroy_instance(vast_client *c, long long id, vast_error *err)
{
    if (err) memset(err, 0, sizeof *err);
    if (id <= 0) return bad_arg(err, "destroy: the instance id must be positive");
    char path[64];
    snprintf(path, sizeof path, "/api/v0/instances/%lld/", id);
    return simple_call(c, "DELETE", path, json_object(), err);
}

static int set_state(vast_client *c, long long id, const char *state, vast_error *err)
{
    if (err) memset(err, 0, sizeof *err);
    if (id <= 0) return bad_arg(err, "the instance id must be positive");
    char path[64];
    snprintf(path, sizeof path, "/api/v0/instances/%lld/", id);
    return simple_call(c, "PUT", path, json_pack("{ss}", "state", state), err);
}

int vast_start_instance(vast_client *c, long long id, vast_error *err)
{
    return set_state(c, id, "running", err);
}

int vast_stop_instance(vast_client *c, long long id, vast_error *err)
{
    return set_state(c, id, "stopped", err);
}

int vast_label_instance(vast_client *c, long long id, const char *label, vast_error *err)
{
    if (err) memset(err, 0, sizeof *err);
    if (id <= 0) return bad_arg(err, "label: the instance id must be positive");
    json_t *l = label ? json_string(label) : json_null();
    if (!l) return bad_arg(err, "label: not valid UTF-8");
    char path[64];
    snprintf(path, sizeof path, "/api/v0/instances/%lld/", id);
    json_t *b = json_object();
    json_object_set_new(b, "label", l);
    return simple_call(c, "PUT", path, b, err);
}

/* ---- SSH keys */

/* Validate and normalise a public key: one line, trimmed, "type base64 [comment]". */
static char *clean_pubkey(const char *k, vast_error *err)
{
    if (!k) { bad_arg(err, "ssh key: none given"); return NULL; }
    if (strstr(k, "PRIVATE KEY")) {
        bad_arg(err, "ssh key: that is a private key; give the public key");
        return NULL;
    }
    while (isspace((unsigned char)*k)) k++;
    char *s = xstrdup(k);
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    if (strpbrk(s, "\r\n") || !(str_starts(s, "ssh-") || str_starts(s, "ecdsa-") ||
                                str_starts(s, "sk-")) || !strchr(s, ' ')) {
        free(s);
        bad_arg(err, "ssh key: not an OpenSSH public key line");
        return NULL;
    }
    return s;
}

/* Same key when type and blob match (the comment is ignored). */
static bool same_key(const char *a, const char *b)
{
    for (int field = 0; field < 2; field++) {
        while (*a == ' ' || *a == '\t') a++;
        while (*b == ' ' || *b == '\t') b++;
        size_t la = strcspn(a, " \t\r\n"), lb = strcspn(b, " \t\r\n");
        if (la == 0 || la != lb || strncmp(a, b, la) != 0) return false;
        a += la;
        b += lb;
    }
    return true;
}

static void parse_keys(const json_t *arr, vast_ssh_key_list *out)
{
    size_t n = json_array_size(arr);
    out->items = xcalloc(n ? n : 1, sizeof *out->items);
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) continue;
        const json_t *del = json_object_get(o, "deleted_at");
        if (del && !json_is_null(del)) continue;
        const char *field = vast_j_cstr(o, "public_key") ? "public_key"
                          : vast_j_cstr(o, "key") ? "key" : "ssh_key";
        vast_ssh_key *k = &out->items[out->n];
        k->id = vast_j_ll(o, "id", 0);
        if (k->id <= 0) continue;
        k->public_key = vast_j_strdup(o, field, true);
        out->n++;
    }
}

int vast_list_ssh_keys(vast_client *c, vast_ssh_key_list *out, vast_error *err)
{
    out->items = NULL;
    out->n = 0;
    json_t *resp = NULL;
    if (vast_request(c, "GET", "/api/v0/ssh/", NULL, VAST_RETRY_ALL, &resp, err) != 0) {
        json_decref(resp);
        return -1;
    }
    /* The spec's answer is an array; tolerate a wrapper object, and a list sent as a
     * JSON-encoded string (as the per-instance key list is). */
    json_t *arr = resp, *parsed = NULL;
    if (json_is_object(resp)) {
        arr = json_object_get(resp, "ssh_keys");
        if (!arr) arr = json_object_get(resp, "keys");
    }
    if (json_is_string(arr)) arr = parsed = json_loads(json_string_value(arr), 0, NULL);
    if (!json_is_array(arr) && !json_is_null(arr) && arr) {
        json_decref(parsed);
        json_decref(resp);
        vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL, "ssh keys: the answer is not a list");
        return -1;
    }
    parse_keys(arr, out);
    json_decref(parsed);
    json_decref(resp);
    return 0;
}

void vast_ssh_key_list_free(vast_ssh_key_list *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->items[i].public_key);
    SAFE_FREE(l->items);
    l->n = 0;
}

static int find_key(vast_client *c, const char *key, long long *id, vast_error *err)
{
    vast_ssh_key_list l;
    if (vast_list_ssh_keys(c, &l, err) != 0) return -1;
    *id = 0;
    for (size_t i = 0; i < l.n; i++)
        if (same_key(l.items[i].public_key, key)) { *id = l.items[i].id; break; }
    vast_ssh_key_list_free(&l);
    return 0;
}

static bool says_exists(const vast_error *e)
{
    return strcasestr(e->message, "already") || strcasestr(e->message, "exist") ||
           strcasestr(e->message, "duplicate") || strcasestr(e->code, "exist") ||
           strcasestr(e->code, "duplicate");
}

int vast_add_ssh_key(vast_client *c, const char *pubkey, long long *key_id, vast_error *err)
{
    *key_id = 0;
    if (err) memset(err, 0, sizeof *err);
    char *key = clean_pubkey(pubkey, err);
    if (!key) return -1;
    long long id = 0;
    if (find_key(c, key, &id, err) != 0) { free(key); return -1; }
    if (id > 0) { *key_id = id; free(key); return 0; }

    json_t *resp = NULL;
    json_t *b = json_pack("{ss}", "ssh_key", key);
    if (!b) { free(key); return bad_arg(err, "ssh key: not valid UTF-8"); }
    vast_error perr;
    int rc = vast_request(c, "POST", "/api/v0/ssh/", b, VAST_RETRY_ALL, &resp, &perr);
    json_decref(b);
    if (rc == 0) {
        const json_t *k = json_object_get(resp, "key");
        id = vast_j_ll(json_is_object(k) ? k : resp, "id", 0);
    }
    json_decref(resp);
    if (rc != 0 && !says_exists(&perr)) {
        if (err) *err = perr;
        free(key);
        return -1;
    }
    if (id <= 0 && find_key(c, key, &id, err) != 0) { free(key); return -1; }
    free(key);
    if (id <= 0) {
        if (rc != 0) { if (err) *err = perr; }
        else vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL,
                            "ssh key: Vast accepted the key but did not return its id");
        return -1;
    }
    *key_id = id;
    return 0;
}

int vast_attach_ssh_key(vast_client *c, long long instance_id, const char *pubkey,
                        vast_error *err)
{
    if (err) memset(err, 0, sizeof *err);
    if (instance_id <= 0) return bad_arg(err, "attach key: the instance id must be positive");
    char *key = clean_pubkey(pubkey, err);
    if (!key) return -1;
    char path[80];
    snprintf(path, sizeof path, "/api/v0/instances/%lld/ssh/", instance_id);
    json_t *b = json_pack("{ss}", "ssh_key", key);
    free(key);
    if (!b) return bad_arg(err, "ssh key: not valid UTF-8");
    vast_error e;
    int rc = simple_call(c, "POST", path, b, &e);
    if (rc != 0 && (e.kind == VAST_ERR_FAILED || e.kind == VAST_ERR_BAD_REQUEST) &&
        strcasestr(e.message, "already")) {
        if (err) memset(err, 0, sizeof *err);
        return 0;
    }
    if (rc != 0 && err) *err = e;
    return rc;
}

/* ---- account */

int vast_current_user(vast_client *c, vast_user *out, vast_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *resp = NULL;
    if (vast_request(c, "GET", "/api/v0/users/current/", NULL, VAST_RETRY_ALL, &resp, err)
        != 0) {
        json_decref(resp);
        return -1;
    }
    if (!json_is_object(resp)) {
        json_decref(resp);
        vast_set_error(c, err, VAST_ERR_PARSE, 200, NULL, "user: the answer is not an object");
        return -1;
    }
    out->id = vast_j_ll(resp, "id", 0);
    out->email = vast_j_strdup(resp, "email", true);
    out->username = vast_j_strdup(resp, "username", true);
    out->balance = vast_j_num(resp, "balance", 0);
    out->credit = vast_j_num(resp, "credit", 0);
    json_decref(resp);
    return 0;
}

void vast_user_clear(vast_user *u)
{
    if (!u) return;
    free(u->email);
    free(u->username);
    memset(u, 0, sizeof *u);
}
