/* api: the HTTP side of vastsim (libmicrohttpd). Routes the Vast.ai REST surface of
 * docs/vast-api.md (v0/v1, trailing slash optional), bearer or api_key auth, injected faults,
 * the per-endpoint rate limiter, the request log, result URLs, and the /_admin endpoints.
 * Every handler runs with sim.mu held for the whole request (requests are short). */
#include "sim.h"

#include "core/log.h"
#include "core/util.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (4u << 20)
#define REQ_CAP 20000

struct req {
    buf body;
    bool too_big;
    double t0;
};

struct reply {
    int status;
    json_t *j;          /* JSON body, or */
    char *text;         /* a text body */
    const char *ctype;
};

enum auth_kind { AUTH_NONE, AUTH_INVALID, AUTH_ACCOUNT, AUTH_INSTANCE };
struct auth {
    enum auth_kind kind;
    instance *inst;     /* the key's instance; dangling once that instance is destroyed */
    long inst_id;       /* its id, safe to read at any time */
    const char *key;    /* the account key the caller authenticated with (AUTH_ACCOUNT only); points
                           into the connection's headers or arguments, valid during the request */
};

static const char *AUTH_NAMES[] = {"none", "invalid", "account", "instance"};

/* ---- replies ---- */

static void rj(struct reply *r, int status, json_t *j)
{
    r->status = status;
    json_decref(r->j);
    r->j = j;
}

static void rerr(struct reply *r, int status, const char *error, const char *msg)
{
    rj(r, status, jerr(error, msg));
}

static void rtext(struct reply *r, int status, const char *ctype, const char *text)
{
    r->status = status;
    free(r->text);
    r->text = xstrdup(text);
    r->ctype = ctype;
}

static void auth_error(struct reply *r)
{
    rerr(r, g_sim.auth_error_code, "auth_error", "Invalid user key");
}

static void forbidden(struct reply *r)
{
    rerr(r, 403, "forbidden", "error 403/3100: This API key does not have permission for this operation.");
}

/* ---- request log ---- */

static void req_log(const char *method, const char *path, const char *query, int status,
                    const struct auth *a, long source, double ms)
{
    if (!g_sim.reqs) {
        g_sim.req_cap = REQ_CAP;
        g_sim.reqs = xcalloc(g_sim.req_cap, sizeof *g_sim.reqs);
    }
    size_t idx;
    if (g_sim.req_len < g_sim.req_cap) {
        idx = (g_sim.req_head + g_sim.req_len++) % g_sim.req_cap;
    } else {
        idx = g_sim.req_head;
        g_sim.req_head = (g_sim.req_head + 1) % g_sim.req_cap;
        free(g_sim.reqs[idx].method);
        free(g_sim.reqs[idx].path);
        free(g_sim.reqs[idx].query);
    }
    request_rec *q = &g_sim.reqs[idx];
    q->seq = ++g_sim.req_seq;
    q->time = now_wall();
    q->method = xstrdup(method);
    q->path = xstrdup(path);
    q->query = query ? xstrdup(query) : NULL;
    q->status = status;
    q->auth = AUTH_NAMES[a->kind];
    q->auth_instance = a->kind == AUTH_INSTANCE ? a->inst_id : 0;
    q->source_instance = source;
    q->ms = ms;
}

void requests_free(void)
{
    for (size_t i = 0; i < g_sim.req_len; i++) {
        request_rec *q = &g_sim.reqs[(g_sim.req_head + i) % g_sim.req_cap];
        free(q->method);
        free(q->path);
        free(q->query);
    }
    free(g_sim.reqs);
    g_sim.reqs = NULL;
    g_sim.req_len = g_sim.req_head = 0;
}

static json_t *requests_json(long since)
{
    json_t *a = json_array();
    for (size_t i = 0; i < g_sim.req_len; i++) {
        request_rec *q = &g_sim.reqs[(g_sim.req_head + i) % g_sim.req_cap];
        if (q->seq <= since) continue;
        json_t *o = json_pack("{s:I, s:f, s:s, s:s, s:i, s:s, s:f}", "seq", (json_int_t)q->seq, "time",
                              q->time, "method", q->method, "path", q->path, "status", q->status,
                              "auth", q->auth, "ms", q->ms);
        json_object_set_new(o, "query", q->query ? json_string(q->query) : json_null());
        json_object_set_new(o, "instance_id", q->auth_instance ? json_integer(q->auth_instance) : json_null());
        json_object_set_new(o, "source", q->source_instance ? json_sprintf("instance:%ld", q->source_instance)
                                                            : json_string("host"));
        json_array_append_new(a, o);
    }
    return json_pack("{s:o, s:I}", "requests", a, "last_seq", (json_int_t)g_sim.req_seq);
}

/* ---- faults ---- */

void faults_free(void)
{
    while (g_sim.http_faults) {
        http_fault *f = g_sim.http_faults;
        g_sim.http_faults = f->next;
        free(f->path);
        free(f->method);
        free(f);
    }
    while (g_sim.boot_faults) {
        boot_fault *b = g_sim.boot_faults;
        g_sim.boot_faults = b->next;
        free(b);
    }
    json_array_clear(g_sim.vanish_offers);
}

static json_t *faults_json(void)
{
    json_t *a = json_array();
    for (http_fault *f = g_sim.http_faults; f; f = f->next) {
        json_t *o = json_pack("{s:s, s:i, s:i}", "type", f->code == 429 ? "http_429" : "http_503",
                              "code", f->code, "remaining", f->remaining);
        json_object_set_new(o, "path", f->path ? json_string(f->path) : json_null());
        json_object_set_new(o, "method", f->method ? json_string(f->method) : json_null());
        json_array_append_new(a, o);
    }
    for (boot_fault *b = g_sim.boot_faults; b; b = b->next)
        json_array_append_new(a, json_pack("{s:s, s:i, s:f, s:f, s:b}", "type", b->stuck ? "stuck_loading" : "slow_boot",
                                           "remaining", b->remaining, "loading_delay", b->loading_delay,
                                           "running_delay", b->running_delay, "stuck", b->stuck));
    size_t i;
    json_t *v;
    json_array_foreach(g_sim.vanish_offers, i, v)
        json_array_append_new(a, json_pack("{s:s, s:O}", "type", "vanish_offer", "offer_id", v));
    return json_pack("{s:o, s:i, s:s, s:b, s:f}", "pending", a, "auth_error_code", g_sim.auth_error_code,
                     "v0_list", g_sim.v0_list_legacy ? "legacy" : "410", "rate_limit", g_sim.rate_limit,
                     "ssh_refuse_until", g_sim.ssh_refuse_until);
}

static double jnum_or(const json_t *o, const char *k, double dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* Apply one fault object; 0 or -1 with *msg (heap) set. */
static int fault_apply(json_t *f, char **msg)
{
    const char *type = json_string_value(json_object_get(f, "type"));
    if (!type) { *msg = xstrdup("fault needs a \"type\""); return -1; }
    json_t *iid = json_object_get(f, "instance_id");
    instance *in = NULL;
    if (iid) {
        in = inst_find((long)json_number_value(iid));
        if (!in) { *msg = xasprintf("%s: no such instance", type); return -1; }
    }
    double now = now_wall();
    if (!strcmp(type, "http_429") || !strcmp(type, "http_503") || !strcmp(type, "http_error")) {
        http_fault *h = xcalloc(1, sizeof *h);
        h->code = !strcmp(type, "http_429") ? 429 : !strcmp(type, "http_503") ? 503
                                                  : (int)jnum_or(f, "code", 503);
        h->remaining = (int)jnum_or(f, "count", 1);
        const char *p = json_string_value(json_object_get(f, "path"));
        const char *m = json_string_value(json_object_get(f, "method"));
        h->path = p ? xstrdup(p) : NULL;
        h->method = m ? xstrdup(m) : NULL;
        const char *st = json_string_value(json_object_get(f, "style"));
        h->style = !st ? STYLE_DEFAULT : !strcmp(st, "text") ? STYLE_TEXT : !strcmp(st, "detail") ? STYLE_DETAIL
                                                                          : STYLE_ERROR;
        http_fault **t = &g_sim.http_faults;
        while (*t) t = &(*t)->next;
        *t = h;
        return 0;
    }
    if (!strcmp(type, "vanish_offer")) {
        json_t *o = json_object_get(f, "offer_id");
        if (!json_is_integer(o)) { *msg = xstrdup("vanish_offer needs offer_id"); return -1; }
        json_array_append(g_sim.vanish_offers, o);
        return 0;
    }
    if (!strcmp(type, "exit_instance") || !strcmp(type, "set_status")) {
        if (!in) { *msg = xasprintf("%s needs instance_id", type); return -1; }
        const char *st = !strcmp(type, "exit_instance") ? "exited"
                                                        : json_string_value(json_object_get(f, "actual_status"));
        static const char *OK[] = {"exited", "created", "unknown", "offline", "frozen", "loading",
                                   "running", "stopped", "rebooting"};
        const char *stat = NULL;
        for (size_t i = 0; st && i < ARRAY_LEN(OK); i++)
            if (!strcmp(st, OK[i])) stat = OK[i];
        if (!stat) { *msg = xstrdup("set_status: actual_status must be one of exited, created, unknown, "
                                    "offline, frozen, loading, running, stopped, rebooting"); return -1; }
        const char *sm = json_string_value(json_object_get(f, "status_msg"));
        bool kill = !strcmp(type, "exit_instance") || json_is_true(json_object_get(f, "kill"));
        if (!sm && !strcmp(stat, "exited")) sm = "Exited (137) container killed";
        if (!sm && !strcmp(stat, "created")) sm = "Error response from daemon: failed to create task for container: "
                                                  "OCI runtime create failed: runc create failed";
        inst_force_status(in, stat, sm, kill);
        return 0;
    }
    if (!strcmp(type, "outbid")) {
        if (!in) { *msg = xstrdup("outbid needs instance_id"); return -1; }
        const char *m;
        inst_set_state(in, "stopped", &m);
        free(in->status_msg);
        in->status_msg = xstrdup("outbid: instance stopped because a higher bid won this machine");
        return 0;
    }
    if (!strcmp(type, "kill_processes")) {
        if (!in) { *msg = xstrdup("kill_processes needs instance_id"); return -1; }
        int n = sandbox_kill_procs(in);
        LOG_I(SIM_TAG, "fault: instance %ld: %d processes killed", in->id, n);
        return 0;
    }
    if (!strcmp(type, "ssh_refuse")) {
        double until = now + jnum_or(f, "seconds", 30);
        if (in) in->ssh_refuse_until = until;
        else g_sim.ssh_refuse_until = until;
        return 0;
    }
    if (!strcmp(type, "ssh_drop")) {
        sandbox_drop_ssh(in);
        return 0;
    }
    if (!strcmp(type, "slow_boot") || !strcmp(type, "stuck_loading")) {
        bool stuck = !strcmp(type, "stuck_loading");
        double ld = jnum_or(f, "loading_delay", -1), rd = jnum_or(f, "running_delay", -1);
        if (!stuck && ld < 0 && rd < 0) ld = jnum_or(f, "seconds", 30);
        if (in) {
            if (ld >= 0) in->loading_delay = ld;
            if (rd >= 0) in->running_delay = rd;
            if (stuck) {
                in->stuck = true;
                if (in->actual && !strcmp(in->actual, "running")) inst_force_status(in, "loading", "Pulling image", true);
            }
            return 0;
        }
        boot_fault *b = xcalloc(1, sizeof *b);
        b->remaining = (int)jnum_or(f, "count", 1);
        b->loading_delay = ld;
        b->running_delay = rd;
        b->stuck = stuck;
        boot_fault **t = &g_sim.boot_faults;
        while (*t) t = &(*t)->next;
        *t = b;
        return 0;
    }
    if (!strcmp(type, "auth_error_code")) {
        int c = (int)jnum_or(f, "code", 401);
        if (c != 401 && c != 404) { *msg = xstrdup("auth_error_code: code must be 401 or 404"); return -1; }
        g_sim.auth_error_code = c;
        return 0;
    }
    if (!strcmp(type, "v0_list")) {
        const char *m = json_string_value(json_object_get(f, "mode"));
        if (!m || (strcmp(m, "legacy") && strcmp(m, "410"))) { *msg = xstrdup("v0_list: mode is legacy or 410"); return -1; }
        g_sim.v0_list_legacy = !strcmp(m, "legacy");
        return 0;
    }
    if (!strcmp(type, "rate_limit")) {
        g_sim.rate_limit = !json_is_false(json_object_get(f, "enabled"));
        g_sim.rate_scale = jnum_or(f, "scale", 1.0);
        json_object_clear(g_sim.rate_last);
        return 0;
    }
    if (!strcmp(type, "credit")) {
        double spent = g_sim.initial_credit - credit_left();
        g_sim.initial_credit = jnum_or(f, "credit", 0) + spent;
        return 0;
    }
    *msg = xasprintf("unknown fault type %s", type);
    return -1;
}

/* ---- results (logs / execute) ---- */

static json_t *result_new(const char *text, double delay)
{
    result_doc *d = xcalloc(1, sizeof *d);
    char *h = random_hex(16);
    d->name = xasprintf("%s.log", h);
    free(h);
    d->text = xstrdup(text);
    d->ready_at = now_wall() + delay;
    d->expires_at = d->ready_at + 600;
    d->next = g_sim.results;
    g_sim.results = d;
    return json_sprintf("http://127.0.0.1:%d/_results/%s", g_sim.port, d->name);
}

void results_prune(double now)
{
    for (result_doc **p = &g_sim.results; *p;) {
        result_doc *d = *p;
        if (now > d->expires_at) {
            *p = d->next;
            free(d->name);
            free(d->text);
            free(d);
        } else {
            p = &d->next;
        }
    }
}

void results_free(void)
{
    results_prune(INFINITY * 0 + 1e300);
}

static char *tail_file(const char *path, long lines, const char *filter)
{
    size_t len = 0;
    char *all = read_file(path, 8u << 20, &len);
    if (!all) return xstrdup("");
    buf b;
    buf_init(&b, 0);
    buf_appendf(&b, "%s", "");
    /* keep lines matching filter, then the last `lines` of them */
    char *save = NULL;
    json_t *kept = json_array();
    for (char *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (!filter || !*filter || strstr(l, filter)) json_array_append_new(kept, json_string(l));
    size_t n = json_array_size(kept);
    size_t from = lines > 0 && (size_t)lines < n ? n - (size_t)lines : 0;
    for (size_t i = from; i < n; i++) buf_appendf(&b, "%s\n", json_string_value(json_array_get(kept, i)));
    json_decref(kept);
    free(all);
    return buf_take(&b);
}

/* ---- helpers ---- */

static int parse_id(const char *s, long *out)
{
    return parse_long(s, out) == 0 && *out > 0 ? 0 : -1;
}

static char *strip(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    return xstrndup(s, n);
}

/* Validate a public key text; returns heap copy or NULL with *err set. */
static char *pubkey_arg(json_t *body, const char **error, const char **msg)
{
    const char *k = json_string_value(json_object_get(body, "ssh_key"));
    char *s = k ? strip(k) : NULL;
    if (!s || !*s) {
        free(s);
        *error = "no_ssh_key";
        *msg = "error 400/3301: No SSH key provided.";
        return NULL;
    }
    if (strstr(s, "PRIVATE KEY") || strchr(s, '\n') ||
        !(str_starts(s, "ssh-") || str_starts(s, "ecdsa-") || str_starts(s, "sk-"))) {
        free(s);
        *error = "invalid_args";
        *msg = "error 400/3302: Invalid SSH key: expected an OpenSSH public key (ssh-ed25519 AAAA...).";
        return NULL;
    }
    return s;
}

static json_t *show_row(const instance *in)
{
    return inst_json(in);
}

/* ---- geolocation filters ----
 * Offers and instances carry `geolocation` as free text ending in a two-letter country code
 * ("Oslo, NO"); Vast's filter on it compares that code (the CLI's help: "geolocation: Two letter
 * country code. Works with operators =, !=, in, notin"). The catalog's filter language compares
 * whole values, so a geolocation condition is rewritten into in/notin lists of the full texts
 * whose country code (or whole text) matches. */

/* The upper-case country code ending geo ("Oslo, NO" -> "NO"); false when it ends otherwise. */
static bool geo_country(const char *geo, char cc[3])
{
    size_t n = strlen(geo);
    while (n && geo[n - 1] == ' ') n--;
    if (n < 2) return false;
    const char *p = geo + n - 2;
    if (!isalpha((unsigned char)p[0]) || !isalpha((unsigned char)p[1])) return false;
    if (n > 2 && p[-1] != ' ' && p[-1] != ',') return false;
    cc[0] = (char)toupper((unsigned char)p[0]);
    cc[1] = (char)toupper((unsigned char)p[1]);
    cc[2] = '\0';
    return true;
}

static bool geo_value_matches(const char *geo, const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s) return false;
    if (!strcmp(geo, s)) return true;
    char cc[3];
    return strlen(s) == 2 && geo_country(geo, cc) && !strcasecmp(cc, s);
}

/* Only string operands (or lists of strings) are about country codes; others pass through. */
static bool geo_operand_ok(const json_t *arg)
{
    if (json_is_string(arg)) return true;
    if (!json_is_array(arg)) return false;
    size_t i;
    json_t *e;
    json_array_foreach(arg, i, e) if (!json_is_string(e)) return false;
    return true;
}

static bool geo_arg_matches(const char *geo, const json_t *arg)
{
    if (!json_is_array(arg)) return geo_value_matches(geo, arg);
    size_t i;
    json_t *e;
    json_array_foreach(arg, i, e) if (geo_value_matches(geo, e)) return true;
    return false;
}

static bool array_has(const json_t *a, const json_t *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) if (json_equal(e, v)) return true;
    return false;
}

/* Add row's geolocation text to the set `known` (an array of distinct strings). */
static void geo_collect(json_t *known, const json_t *row)
{
    json_t *g = json_object_get(row, "geolocation");
    if (json_is_string(g) && !array_has(known, g)) json_array_append(known, g);
}

/* q with its geolocation condition rewritten against the texts in `known`; new reference (q
 * itself when there is nothing to rewrite). */
static json_t *geo_rewrite(json_t *q, const json_t *known)
{
    json_t *cond = json_object_get(q, "geolocation");
    if (!cond) return json_incref(q);
    json_t *ops = json_is_object(cond) ? json_incref(cond) : json_pack("{s:O}", "eq", cond);
    json_t *nc = json_object();
    json_t *in = NULL, *out = NULL;
    const char *op;
    json_t *arg;
    json_object_foreach(ops, op, arg) {
        bool pos = !strcmp(op, "eq") || !strcmp(op, "in");
        bool neg = !strcmp(op, "neq") || !strcmp(op, "notin") || !strcmp(op, "nin");
        if ((!pos && !neg) || !geo_operand_ok(arg)) {
            json_object_set(nc, op, arg);
            continue;
        }
        json_t *set = json_array();
        size_t i;
        json_t *g;
        json_array_foreach(known, i, g)
            if (geo_arg_matches(json_string_value(g), arg)) json_array_append(set, g);
        if (pos && !in) {
            in = set;
        } else if (pos) {                  /* two positive conditions: both must hold */
            json_t *both = json_array();
            json_array_foreach(in, i, g) if (array_has(set, g)) json_array_append(both, g);
            json_decref(in);
            json_decref(set);
            in = both;
        } else if (!out) {
            out = set;
        } else {                           /* two negative ones: neither may hold */
            json_array_foreach(set, i, g) if (!array_has(out, g)) json_array_append(out, g);
            json_decref(set);
        }
    }
    json_decref(ops);
    if (in) json_object_set_new(nc, "in", in);
    if (out) json_object_set_new(nc, "notin", out);
    json_t *nq = json_copy(q);
    json_object_set_new(nq, "geolocation", nc);
    return nq;
}

/* Search the catalog with q (geolocation by country code); NULL with *code and *err set on error. */
static json_t *search_offers(json_t *q, int *code, json_t **err)
{
    json_t *nq = q;
    if (json_is_object(q) && json_object_get(q, "geolocation")) {
        json_t *known = json_array();
        for (offer *o = g_sim.offers; o; o = o->next) geo_collect(known, o->j);
        nq = geo_rewrite(q, known);
        json_decref(known);
    } else {
        json_incref(nq);
    }
    json_t *res = catalog_search(nq, code, err);
    json_decref(nq);
    return res;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* GET /api/v0/gpu_names/unique/: every GPU model of the catalog (listed or rented), sorted. */
static json_t *gpu_names_json(void)
{
    json_t *set = json_object();
    for (offer *o = g_sim.offers; o; o = o->next) {
        const char *n = json_string_value(json_object_get(o->j, "gpu_name"));
        if (n) json_object_set_new(set, n, json_true());
    }
    for (instance *in = g_sim.instances; in; in = in->next) {
        const char *n = json_string_value(json_object_get(in->offer, "gpu_name"));
        if (n) json_object_set_new(set, n, json_true());
    }
    size_t n = json_object_size(set), k = 0;
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    const char *key;
    json_t *v;
    json_object_foreach(set, key, v) names[k++] = key;
    qsort(names, k, sizeof *names, cmp_str);
    json_t *a = json_array();
    for (size_t i = 0; i < k; i++) json_array_append_new(a, json_string(names[i]));
    free(names);
    json_decref(set);
    return json_pack("{s:o}", "gpu_names", a);
}

/* GET /api/v0/instances/filters/: the distinct (actual_status, verification, gpu_name)
 * combinations of the account's instances, which the CLI shows as filterable values. */
static json_t *instance_filters_json(void)
{
    json_t *a = json_array();
    for (instance *in = g_sim.instances; in; in = in->next) {
        json_t *c = json_object();
        json_object_set_new(c, "actual_status", in->actual ? json_string(in->actual) : json_null());
        json_t *v = json_object_get(in->offer, "verification");
        json_object_set(c, "verification", v ? v : json_null());
        v = json_object_get(in->offer, "gpu_name");
        json_object_set(c, "gpu_name", v ? v : json_null());
        if (array_has(a, c)) json_decref(c);
        else json_array_append_new(a, c);
    }
    return json_pack("{s:o}", "filters", a);
}

/* ---- rate limiter ---- */

struct endpoint_class {
    const char *name;
    double threshold;
    enum fault_style style;
};

static struct endpoint_class classify(const char *method, char **seg, int nseg)
{
    struct endpoint_class c = {"other", 0.5, STYLE_TEXT};
    if (nseg >= 1 && !strcmp(seg[0], "asks")) return (struct endpoint_class){"create", 4.5, STYLE_DETAIL};
    if (nseg >= 1 && !strcmp(seg[0], "bundles")) return (struct endpoint_class){"bundles", 6.0, STYLE_TEXT};
    if (nseg == 1 && !strcmp(seg[0], "launch_instance")) return (struct endpoint_class){"launch", 5.0, STYLE_DETAIL};
    if (nseg >= 1 && !strcmp(seg[0], "instances")) {
        if (nseg == 3 && !strcmp(seg[1], "bid_price")) return (struct endpoint_class){"bid_price", 5.5, STYLE_ERROR};
        if (nseg == 2 && !strcmp(seg[1], "filters")) return (struct endpoint_class){"instances_other", 1.0, STYLE_ERROR};
        if (nseg == 2 && !strcmp(method, "DELETE")) return (struct endpoint_class){"destroy", 3.0, STYLE_ERROR};
        if (nseg == 2 && !strcmp(method, "GET")) return (struct endpoint_class){"show", 2.0, STYLE_ERROR};
        if (nseg == 2 && !strcmp(method, "PUT")) return (struct endpoint_class){"manage", 1.0, STYLE_ERROR};
        if (nseg == 1) return (struct endpoint_class){"list", 1.0, STYLE_ERROR};
        return (struct endpoint_class){"instances_other", 1.0, STYLE_ERROR};
    }
    if (nseg >= 1 && !strcmp(seg[0], "ssh") && !strcmp(method, "POST"))
        return (struct endpoint_class){"ssh_add", 1.0, STYLE_TEXT};
    return c;
}

static void too_many(struct reply *r, struct endpoint_class c, enum fault_style style)
{
    char *m = xasprintf("API requests too frequent endpoint threshold=%.1f", c.threshold);
    if (style == STYLE_DEFAULT) style = c.style;
    if (style == STYLE_DETAIL) rj(r, 429, json_pack("{s:s}", "detail", m));
    else if (style == STYLE_ERROR) rerr(r, 429, "rate_limit_exceeded", m);
    else rtext(r, 429, "text/plain", m);
    free(m);
}

/* ---- the v1 list ---- */

static const char *LIST_COLS[] = {"id", "label", "actual_status", "intended_status", "cur_state",
                                  "next_state", "status_msg", "gpu_name", "verification", "machine_id",
                                  "host_id", "image_uuid", "start_date", "end_date", "geolocation",
                                  "is_bid", "template_id", "disk_space", "ssh_port"};

static bool list_col_ok(const char *c)
{
    for (size_t i = 0; i < ARRAY_LEN(LIST_COLS); i++)
        if (!strcmp(c, LIST_COLS[i])) return true;
    return false;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const char *s)
{
    size_t n = strlen(s);
    char *o = xmalloc(4 * ((n + 2) / 3) + 1), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)s[i + 2];
        *p++ = B64[(v >> 18) & 63];
        *p++ = B64[(v >> 12) & 63];
        *p++ = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        *p++ = i + 2 < n ? B64[v & 63] : '=';
    }
    *p = '\0';
    return o;
}

static char *b64_decode(const char *s)
{
    size_t n = strlen(s);
    char *o = xmalloc(n + 1);
    size_t k = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d;
        if (c >= 'A' && c <= 'Z') d = c - 'A';
        else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
        else if (c >= '0' && c <= '9') d = c - '0' + 52;
        else if (c == '+' || c == '-') d = 62;
        else if (c == '/' || c == '_') d = 63;
        else if (c == '=') break;
        else { free(o); return NULL; }
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (char)((v >> bits) & 0xff);
        }
    }
    o[k] = '\0';
    return o;
}

static json_t *qjson(struct MHD_Connection *c, const char *name, bool *bad)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (!v || !*v) return NULL;
    json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
    if (!j) *bad = true;
    return j;
}

static void list_v1(struct MHD_Connection *c, struct reply *r)
{
    bool bad = false;
    long limit = 25;
    const char *ls = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    if (ls && *ls) {
        if (parse_long(ls, &limit) < 0) {
            rerr(r, 400, "invalid_args", "error 400/3410: Error in query parameters: limit must be an integer");
            return;
        }
        if (limit <= 0) limit = 5;
        if (limit > 25) limit = 25;
    }
    json_t *order = qjson(c, "order_by", &bad);
    json_t *filters = qjson(c, "select_filters", &bad);
    json_t *cols = qjson(c, "select_cols", &bad);
    json_t *token_row = NULL;
    const char *tok = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after_token");
    if (bad || (order && !json_is_array(order)) || (filters && !json_is_object(filters)) ||
        (cols && !json_is_array(cols))) {
        rerr(r, 400, "invalid_args", "error 400/3410: Error in query parameters: order_by, select_filters "
                                     "and select_cols must be JSON (list, object, list)");
        goto out;
    }
    if (tok && *tok) {
        char *dec = b64_decode(tok);
        json_t *tj = dec ? json_loads(dec, 0, NULL) : NULL;
        free(dec);
        json_t *vals = json_object_get(tj, "values");
        if (!json_is_object(vals) || !json_is_integer(json_object_get(vals, "id"))) {
            json_decref(tj);
            rerr(r, 400, "invalid_token", "error 400/3411: Invalid after_token.");
            goto out;
        }
        token_row = json_incref(vals);
        json_decref(tj);
    }
    if (json_is_object(filters) && json_object_get(filters, "geolocation")) {
        json_t *known = json_array();
        for (instance *in = g_sim.instances; in; in = in->next) geo_collect(known, in->offer);
        json_t *nf = geo_rewrite(filters, known);
        json_decref(known);
        json_decref(filters);
        filters = nf;
    }
    size_t i;
    json_t *e;
    json_array_foreach(order, i, e) {
        const char *col = json_string_value(json_object_get(e, "col"));
        if (json_is_array(e)) col = json_string_value(json_array_get(e, 0));
        if (!col || !list_col_ok(col)) {
            char *m = xasprintf("error 400/3410: Error in query parameters: %s is not a valid order column",
                                col ? col : "(missing col)");
            rerr(r, 400, "invalid_args", m);
            free(m);
            goto out;
        }
    }
    json_t *rows = json_array();
    const char *badk = NULL;
    for (instance *in = g_sim.instances; in; in = in->next) {
        json_t *row = show_row(in);
        int m = filters ? filters_match(row, filters, list_col_ok, &badk) : 1;
        if (m < 0) {
            json_decref(row);
            break;
        }
        if (m) json_array_append_new(rows, row);
        else json_decref(row);
    }
    if (badk) {
        json_decref(rows);
        char *m = xasprintf("Error in query parameters: %s is not a valid search key", badk);
        rerr(r, 400, "invalid_args", m);
        free(m);
        goto out;
    }
    rows_sort(rows, order);
    json_t *counts = json_object();
    json_array_foreach(rows, i, e) {
        const char *l = json_string_value(json_object_get(e, "label"));
        if (!l) l = "";
        json_object_set_new(counts, l, json_integer(json_integer_value(json_object_get(counts, l)) + 1));
    }
    size_t total = json_array_size(rows);
    json_t *page = json_array();
    json_t *last = NULL;
    bool more = false;
    json_array_foreach(rows, i, e) {
        if (token_row && rows_cmp(e, token_row, order) <= 0) continue;
        if ((long)json_array_size(page) == limit) {
            more = true;
            break;
        }
        json_array_append(page, e);
        last = e;
    }
    json_t *next = json_null();
    if (more && last) {
        json_t *vals = json_object();
        json_array_foreach(order, i, e) {
            const char *col = json_is_array(e) ? json_string_value(json_array_get(e, 0))
                                               : json_string_value(json_object_get(e, "col"));
            json_t *v = json_object_get(last, col);
            json_object_set(vals, col, v ? v : json_null());
        }
        json_object_set(vals, "id", json_object_get(last, "id"));
        json_t *tj = json_pack("{s:o}", "values", vals);
        char *s = json_dumps(tj, JSON_COMPACT | JSON_SORT_KEYS);
        char *b = b64_encode(s);
        next = json_string(b);
        free(b);
        free(s);
        json_decref(tj);
    }
    /* select_cols */
    bool star = !cols;
    json_array_foreach(cols, i, e) if (json_is_string(e) && !strcmp(json_string_value(e), "*")) star = true;
    if (!star) {
        json_t *sel = json_array();
        json_t *row;
        json_array_foreach(page, i, row) {
            json_t *o = json_object();
            size_t j;
            json_t *cn;
            json_array_foreach(cols, j, cn) {
                const char *name = json_string_value(cn);
                if (!name) continue;
                json_t *v = json_object_get(row, name);
                json_object_set(o, name, v ? v : json_null());
            }
            json_array_append_new(sel, o);
        }
        json_decref(page);
        page = sel;
    }
    rj(r, 200, json_pack("{s:b, s:I, s:I, s:o, s:o, s:o}", "success", 1, "instances_found",
                         (json_int_t)json_array_size(page), "total_instances", (json_int_t)total,
                         "label_counts", counts, "next_token", next, "instances", page));
    json_decref(rows);
out:
    json_decref(order);
    json_decref(filters);
    json_decref(cols);
    json_decref(token_row);
}

/* ---- routes ---- */

static void no_instance(struct reply *r, long id)
{
    char *m = xasprintf("error 404/3101: Instance %ld not found.", id);
    rerr(r, 404, "no_such_instance", m);
    free(m);
}

static void instance_ssh(const char *method, instance *in, char **seg, int nseg, json_t *body,
                         struct reply *r)
{
    if (nseg == 3 && !strcmp(method, "POST")) {
        const char *err, *msg;
        char *pub = pubkey_arg(body, &err, &msg);
        if (!pub) { rerr(r, 400, err, msg); return; }
        bool dup = false;
        for (ssh_key *k = in->keys; k; k = k->next) dup = dup || !strcmp(k->public_key, pub);
        for (ssh_key *k = in->account_keys; k; k = k->next) dup = dup || !strcmp(k->public_key, pub);
        if (!dup) {
            ssh_key *k = key_new(pub);
            ssh_key **t = &in->keys;
            while (*t) t = &(*t)->next;
            *t = k;
            sandbox_write_keys(in);
        }
        free(pub);
        rj(r, 200, json_pack("{s:b, s:s}", "success", 1, "msg", "SSH key added to instance."));
        return;
    }
    if (nseg == 3 && !strcmp(method, "GET")) {
        json_t *a = json_array();
        for (int pass = 0; pass < 2; pass++)
            for (ssh_key *k = pass ? in->keys : in->account_keys; k; k = k->next) {
                const char *sp = strrchr(k->public_key, ' ');
                const char *sp1 = strchr(k->public_key, ' ');
                json_array_append_new(a, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)k->id, "name",
                                                   sp && sp != sp1 ? sp + 1 : "", "public_key", k->public_key));
            }
        char *s = json_dumps(a, JSON_COMPACT);
        json_decref(a);
        rj(r, 200, json_pack("{s:b, s:s}", "success", 1, "ssh_keys", s));
        free(s);
        return;
    }
    if (nseg == 4 && !strcmp(method, "DELETE")) {
        long kid;
        if (parse_id(seg[3], &kid) < 0) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid ssh key id"); return; }
        for (int pass = 0; pass < 2; pass++)
            for (ssh_key **p = pass ? &in->keys : &in->account_keys; *p; p = &(*p)->next) {
                if ((*p)->id == kid) {
                    ssh_key *k = *p;
                    *p = k->next;
                    k->next = NULL;
                    keys_free(k);
                    sandbox_write_keys(in);
                    rj(r, 200, json_pack("{s:b, s:s}", "success", 1, "msg", "SSH key removed from instance."));
                    return;
                }
            }
        rerr(r, 404, "no_such_ssh_key", "error 404/3303: No such SSH key on this instance.");
        return;
    }
    rerr(r, 405, "invalid_request", "Method not allowed");
}

/* PUT /api/v0/instances/bid_price/{id}/ {"client_id": "me", "price": $/h | null} (3.10): a new
 * bid for an interruptible instance; null bids the current minimum (a winning bid). A bid below
 * the minimum is outbid at once (stopped, storage still billed); raising the bid of an outbid
 * instance to the minimum or more starts it again. GPU time is billed at the new bid from now. */
static void change_bid(instance *in, json_t *body, struct reply *r)
{
    if (!json_is_object(body)) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: body must be a JSON object"); return; }
    double min_bid = json_number_value(json_object_get(in->offer, "min_bid"));
    json_t *p = json_object_get(body, "price");
    double price = min_bid;
    if (p && !json_is_null(p)) {
        bool num = json_is_number(p) || (json_is_string(p) && parse_double(json_string_value(p), &price) == 0);
        if (json_is_number(p)) price = json_number_value(p);
        if (!num || !(price >= 0.001 && price <= 128)) {
            rerr(r, 400, "invalid_price", "error 400/3467: Invalid args: price must be between 0.001 and 128");
            return;
        }
    }
    if (!(in->bid_price > 0)) {
        char *m = xasprintf("error 400/3467: Invalid args: instance %ld is on-demand; only interruptible "
                            "instances have a bid price", in->id);
        rerr(r, 400, "invalid_args", m);
        free(m);
        return;
    }
    ledger_set_gpu_rate(in->ledger, price);
    in->bid_price = price;
    const char *m;
    bool outbid = in->status_msg && str_starts(in->status_msg, "outbid");
    if (price < min_bid && strcmp(in->intended, "stopped")) {
        inst_set_state(in, "stopped", &m);
        free(in->status_msg);
        in->status_msg = xstrdup("outbid: bid price below the current minimum");
    } else if (price >= min_bid && !strcmp(in->intended, "stopped") && outbid) {
        inst_set_state(in, "running", &m);
    }
    LOG_I(SIM_TAG, "instance %ld: bid price now %.4f $/h (minimum %.4f)", in->id, price, min_bid);
    rj(r, 200, json_pack("{s:b, s:s}", "success", 1, "msg", "Bid price changed."));
}

static void route_instances(const char *method, char **seg, int nseg, json_t *body, struct auth *a,
                            struct MHD_Connection *c, struct reply *r)
{
    (void)c;
    bool acct = a->kind == AUTH_ACCOUNT;
    if (nseg == 1) {                       /* collection */
        if (!acct) { forbidden(r); return; }
        if (!strcmp(method, "GET")) {
            if (!g_sim.v0_list_legacy) {
                rj(r, 410, json_pack("{s:b, s:s, s:s}", "success", 0, "error", "deprecated_endpoint", "msg",
                                     "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."));
                return;
            }
            json_t *arr = json_array();
            for (instance *in = g_sim.instances; in; in = in->next) json_array_append_new(arr, show_row(in));
            rj(r, 200, json_pack("{s:I, s:o}", "instances_found", (json_int_t)json_array_size(arr), "instances", arr));
            return;
        }
        if (!strcmp(method, "DELETE") || !strcmp(method, "PUT")) {      /* bulk */
            json_t *ids = json_object_get(body, !strcmp(method, "DELETE") ? "instance_ids" : "ids");
            if (!json_is_array(ids)) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: ids must be a list"); return; }
            const char *state = json_string_value(json_object_get(body, "state"));
            size_t i;
            json_t *v;
            json_t *done = json_array();
            json_array_foreach(ids, i, v) {
                instance *in = inst_find((long)json_integer_value(v));
                if (!in) continue;
                const char *m;
                if (!strcmp(method, "DELETE")) inst_destroy(in);
                else if (!state || inst_set_state(in, state, &m) < 0) continue;
                json_array_append(done, v);
            }
            rj(r, 200, json_pack("{s:b, s:o}", "success", 1, "ids", done));
            return;
        }
        rerr(r, 405, "invalid_request", "Method not allowed");
        return;
    }
    if (nseg == 2 && !strcmp(seg[1], "start") && !strcmp(method, "POST")) {
        if (!acct) { forbidden(r); return; }
        json_t *ids = json_object_get(body, "IDs");
        size_t i;
        json_t *v;
        json_array_foreach(ids, i, v) {
            instance *in = inst_find((long)json_integer_value(v));
            const char *m;
            if (in) inst_set_state(in, "running", &m);
        }
        rj(r, 200, json_pack("{s:b}", "success", 1));
        return;
    }
    if (nseg == 2 && !strcmp(seg[1], "filters")) {
        if (!acct) { forbidden(r); return; }
        if (strcmp(method, "GET")) { rerr(r, 405, "invalid_request", "Method not allowed"); return; }
        rj(r, 200, instance_filters_json());
        return;
    }
    /* /instances/<verb>/<id>/ */
    if (nseg == 3 && !strcmp(seg[1], "bid_price")) {
        long id;
        if (parse_id(seg[2], &id) < 0) { rerr(r, 400, "invalid_args", "error 400/3102: Invalid instance id."); return; }
        if (!acct) { forbidden(r); return; }
        if (strcmp(method, "PUT")) { rerr(r, 405, "invalid_request", "Method not allowed"); return; }
        instance *in = inst_find(id);
        if (!in) { no_instance(r, id); return; }
        change_bid(in, body, r);
        return;
    }
    if (nseg == 3 && (!strcmp(seg[1], "reboot") || !strcmp(seg[1], "recycle") ||
                      !strcmp(seg[1], "request_logs") || !strcmp(seg[1], "command"))) {
        long id;
        if (parse_id(seg[2], &id) < 0) { rerr(r, 400, "invalid_args", "error 400/3102: Invalid instance id."); return; }
        instance *in = inst_find(id);
        if (a->kind == AUTH_INSTANCE && (a->inst != in || strcmp(seg[1], "reboot"))) { forbidden(r); return; }
        if (!in) {
            if (!strcmp(seg[1], "request_logs")) rerr(r, 404, "invalid_id", "Invalid instance id.");
            else no_instance(r, id);
            return;
        }
        if (!strcmp(seg[1], "reboot") || !strcmp(seg[1], "recycle")) {
            inst_reboot(in);
            rj(r, 200, json_pack("{s:b}", "success", 1));
            return;
        }
        if (!strcmp(seg[1], "request_logs")) {
            json_t *t = json_object_get(body, "tail");
            long tail = 0;
            if (json_is_string(t)) parse_long(json_string_value(t), &tail);
            else if (json_is_integer(t)) tail = (long)json_integer_value(t);
            const char *filter = json_string_value(json_object_get(body, "filter"));
            json_t *dl = json_object_get(body, "daemon_logs");
            bool daemon = json_is_true(dl) || (json_is_string(dl) && !strcmp(json_string_value(dl), "true"));
            char *path = xasprintf("%s/%s", in->dir ? in->dir : "/nonexistent", daemon ? "sshd.log" : "onstart.log");
            char *text = tail_file(path, tail, filter);
            free(path);
            rj(r, 200, json_pack("{s:b, s:o, s:s}", "success", 1, "result_url", result_new(text, 0.5), "msg",
                                 "Logs will be ready shortly."));
            free(text);
            return;
        }
        const char *cmd = json_string_value(json_object_get(body, "command"));
        if (!cmd || !*cmd || strlen(cmd) > 512) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: command"); return; }
        char *first = xstrndup(cmd, strcspn(cmd, " \t"));
        bool allowed = !strcmp(first, "ls") || !strcmp(first, "rm") || !strcmp(first, "du");
        free(first);
        if (!allowed) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: only ls, rm and du are allowed"); return; }
        char *out = sandbox_exec_capture(in, cmd);
        rj(r, 200, json_pack("{s:b, s:s, s:o, s:s}", "success", 1, "writeable_path", "/workspace", "result_url",
                             result_new(out, 0.5), "msg", "Command is executing, wait a few seconds..."));
        free(out);
        return;
    }
    long id;
    if (parse_id(seg[1], &id) < 0) { rerr(r, 400, "invalid_args", "error 400/3102: Invalid instance id."); return; }
    instance *in = inst_find(id);
    if (a->kind == AUTH_INSTANCE && a->inst != in) { forbidden(r); return; }
    if (nseg >= 3 && !strcmp(seg[2], "ssh")) {
        if (!acct) { forbidden(r); return; }
        if (!in) { no_instance(r, id); return; }
        instance_ssh(method, in, seg, nseg, body, r);
        return;
    }
    if (nseg != 2) { rerr(r, 404, "not_found", "No such endpoint."); return; }
    if (!strcmp(method, "GET")) {
        rj(r, 200, json_pack("{s:o}", "instances", in ? show_row(in) : json_null()));
        return;
    }
    if (!strcmp(method, "DELETE")) {
        if (!in) { no_instance(r, id); return; }
        inst_destroy(in);
        rj(r, 200, json_pack("{s:b, s:s}", "success", 1, "msg", "Instance destroyed."));
        return;
    }
    if (!strcmp(method, "PUT")) {
        if (!in) { no_instance(r, id); return; }
        if (!json_is_object(body)) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: body must be a JSON object"); return; }
        json_t *st = json_object_get(body, "state");
        json_t *lb = json_object_get(body, "label");
        if (!st && !lb) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: expected state or label"); return; }
        if (lb && !json_is_null(lb) && (!json_is_string(lb) || strlen(json_string_value(lb)) > 1024)) {
            rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: label must be a string of at most 1024 characters");
            return;
        }
        if (st) {
            const char *m = "state must be running or stopped";
            if (!json_is_string(st) || inst_set_state(in, json_string_value(st), &m) < 0) {
                char *mm = xasprintf("error 400/3467: Invalid args: %s", m);
                rerr(r, 400, "invalid_args", mm);
                free(mm);
                return;
            }
        }
        if (lb) {
            free(in->label);
            in->label = json_is_string(lb) ? xstrdup(json_string_value(lb)) : NULL;
        }
        rj(r, 200, json_pack("{s:b}", "success", 1));
        return;
    }
    rerr(r, 405, "invalid_request", "Method not allowed");
}

static void route_ssh(const char *method, char **seg, int nseg, json_t *body, struct reply *r)
{
    if (nseg == 1 && !strcmp(method, "GET")) {
        json_t *a = json_array();
        for (ssh_key *k = g_sim.account_keys; k; k = k->next) json_array_append_new(a, key_json(k));
        rj(r, 200, a);
        return;
    }
    if (nseg == 1 && !strcmp(method, "POST")) {
        const char *err, *msg;
        char *pub = pubkey_arg(body, &err, &msg);
        if (!pub) { rerr(r, 400, err, msg); return; }
        ssh_key *k = NULL;
        for (ssh_key *e = g_sim.account_keys; e; e = e->next)
            if (!strcmp(e->public_key, pub)) k = e;
        if (!k) {
            k = key_new(pub);
            ssh_key **t = &g_sim.account_keys;
            while (*t) t = &(*t)->next;
            *t = k;
            if (g_sim.live_account_keys)
                for (instance *in = g_sim.instances; in; in = in->next) sandbox_write_keys(in);
        }
        free(pub);
        rj(r, 200, json_pack("{s:b, s:o}", "success", 1, "key", key_json(k)));
        return;
    }
    long id;
    if (nseg != 2 || parse_id(seg[1], &id) < 0) { rerr(r, 404, "not_found", "No such endpoint."); return; }
    for (ssh_key **p = &g_sim.account_keys; *p; p = &(*p)->next) {
        ssh_key *k = *p;
        if (k->id != id) continue;
        if (!strcmp(method, "DELETE")) {
            *p = k->next;
            k->next = NULL;
            keys_free(k);
            if (g_sim.live_account_keys)
                for (instance *in = g_sim.instances; in; in = in->next) sandbox_write_keys(in);
            rj(r, 200, json_pack("{s:b}", "success", 1));
            return;
        }
        if (!strcmp(method, "PUT")) {
            const char *err, *msg;
            char *pub = pubkey_arg(body, &err, &msg);
            if (!pub) { rerr(r, 400, err, msg); return; }
            free(k->public_key);
            k->public_key = pub;
            if (g_sim.live_account_keys)
                for (instance *in = g_sim.instances; in; in = in->next) sandbox_write_keys(in);
            rj(r, 200, json_pack("{s:b, s:o}", "success", 1, "key", key_json(k)));
            return;
        }
        rerr(r, 405, "invalid_request", "Method not allowed");
        return;
    }
    rerr(r, 404, "no_such_ssh_key", "error 404/3303: No such SSH key.");
}

/* PUT /api/v0/launch_instance/ (docs/vast-api.md 3.3): search with body.q, rent the top offer
 * with the rest of the body as a create. */
static void launch_instance(json_t *body, struct reply *r)
{
    json_t *q = json_object_get(body, "q");
    if (!json_is_object(body) || !json_is_object(q)) {
        rerr(r, 400, "invalid_args", "error 400/3467: Invalid args: q must be a search query object");
        return;
    }
    int code = 200;
    json_t *err = NULL;
    json_t *res = search_offers(q, &code, &err);
    if (!res) { rj(r, code, err); return; }
    json_t *top = json_array_get(json_object_get(res, "offers"), 0);
    if (!top) {
        json_decref(res);
        const char *m = "error 404/3603: no_such_ask No offer matches the query.";
        json_t *e = jerr("no_such_ask", m);
        json_object_set_new(e, "message", json_string(m));
        rj(r, 404, e);
        return;
    }
    long ask = (long)json_integer_value(json_object_get(top, "id"));
    json_decref(res);
    json_t *cb = json_copy(body);
    json_object_del(cb, "q");
    json_t *resp = NULL;
    code = inst_create(ask, cb, &resp);
    json_decref(cb);
    rj(r, code, resp);
}

static void route_api(struct MHD_Connection *c, const char *method, char **seg, int nseg, json_t *body,
                      bool body_bad, struct auth *a, struct reply *r)
{
    /* seg[0] is "v0"/"v1" */
    int vers = !strcmp(seg[0], "v1") ? 1 : 0;
    seg++;
    nseg--;
    if (nseg < 1) { rerr(r, 404, "not_found", "No such endpoint."); return; }
    if (nseg == 2 && !strcmp(seg[0], "gpu_names") && !strcmp(seg[1], "unique")) {
        /* The CLIs fetch it at start without any key (headers={}). */
        if (strcmp(method, "GET")) { rerr(r, 405, "invalid_request", "Method not allowed"); return; }
        rj(r, 200, gpu_names_json());
        return;
    }
    bool search = !strcmp(seg[0], "bundles") || (nseg == 2 && !strcmp(seg[0], "search") && !strcmp(seg[1], "asks"));
    if (search) {
        if (a->kind == AUTH_INVALID) { auth_error(r); return; }
        json_t *q = NULL;
        if (!strcmp(method, "GET")) {
            bool bad = false;
            q = qjson(c, "q", &bad);
            if (!q && !bad) q = json_object();
        } else if (!strcmp(seg[0], "search")) {
            q = json_incref(json_object_get(body, "q"));
        } else {
            q = json_incref(body);
            if (!q && !body_bad) q = json_object();
        }
        if (!q || body_bad) {
            json_decref(q);
            rerr(r, 400, "invalid_args", "error 400/3410: Invalid args: search query must be JSON");
            return;
        }
        int code = 200;
        json_t *err = NULL;
        json_t *res = search_offers(q, &code, &err);
        json_decref(q);
        if (res) rj(r, 200, res);
        else rj(r, code, err);
        return;
    }
    if (a->kind == AUTH_NONE || a->kind == AUTH_INVALID) { auth_error(r); return; }
    if (body_bad) {
        rerr(r, 400, "invalid_request", "error 400/3400: Invalid JSON body.");
        return;
    }
    if (vers == 1) {
        if (nseg == 1 && !strcmp(seg[0], "instances") && !strcmp(method, "GET")) {
            if (a->kind != AUTH_ACCOUNT) { forbidden(r); return; }
            list_v1(c, r);
            return;
        }
        rerr(r, 404, "not_found", "No such endpoint.");
        return;
    }
    if (!strcmp(seg[0], "asks") && nseg == 2 && !strcmp(method, "PUT")) {
        if (a->kind != AUTH_ACCOUNT) { forbidden(r); return; }
        long ask;
        if (parse_id(seg[1], &ask) < 0) { rerr(r, 400, "invalid_args", "error 400/3467: Invalid ask id."); return; }
        json_t *resp = NULL;
        int code = inst_create(ask, body, &resp);
        rj(r, code, resp);
        return;
    }
    if (!strcmp(seg[0], "launch_instance") && nseg == 1) {
        if (strcmp(method, "PUT")) { rerr(r, 405, "invalid_request", "Method not allowed"); return; }
        if (a->kind != AUTH_ACCOUNT) { forbidden(r); return; }
        launch_instance(body, r);
        return;
    }
    if (!strcmp(seg[0], "instances")) {
        route_instances(method, seg, nseg, body, a, c, r);
        return;
    }
    if (a->kind != AUTH_ACCOUNT) { forbidden(r); return; }
    if (!strcmp(seg[0], "ssh")) {
        route_ssh(method, seg, nseg, body, r);
        return;
    }
    if (nseg == 2 && !strcmp(seg[0], "users") && !strcmp(seg[1], "current") && !strcmp(method, "GET")) {
        double credit = credit_left();
        json_t *u = json_pack("{s:i, s:i, s:s, s:s, s:s, s:f, s:f, s:s, s:b, s:b, s:b, s:s}", "id", 1, "key_id", 1,
                              "username", "vastsim", "email", "vastsim@example.invalid", "fullname", "Vast Sim",
                              "balance", credit, "credit", credit, "sid", "vastsim-session", "can_pay", 1,
                              "has_billing", 1, "got_signup_credit", 0, "billaddress_country", "US");
        json_object_set_new(u, "ssh_key", g_sim.account_keys ? json_string(g_sim.account_keys->public_key) : json_null());
        /* The real API returns the key to its owner (the CLIs pop it before printing): the key this
         * request authenticated with, never another account key. Responses are not logged. */
        json_object_set_new(u, "api_key", json_string(a->key ? a->key : ""));
        rj(r, 200, u);
        return;
    }
    rerr(r, 404, "not_found", "No such endpoint.");
}

/* ---- admin ---- */

static json_t *state_json(void)
{
    json_t *arr = json_array();
    for (instance *in = g_sim.instances; in; in = in->next) {
        json_t *j = inst_json(in);
        json_object_set_new(j, "instance_api_key", json_string(in->api_key));
        json_object_set_new(j, "dir", in->dir ? json_string(in->dir) : json_null());
        json_object_set_new(j, "holder_pid", json_integer(in->holder));
        json_object_set_new(j, "netns_inode", json_integer((json_int_t)in->netns_ino));
        json_object_set_new(j, "setup_error", in->setup_error ? json_string(in->setup_error) : json_null());
        json_object_set_new(j, "stuck", json_boolean(in->stuck));
        json_object_set_new(j, "loading_delay", json_real(in->loading_delay));
        json_object_set_new(j, "running_delay", json_real(in->running_delay));
        json_object_set_new(j, "ask_id", json_integer(in->ask_id));
        json_t *sp = json_array();
        for (size_t i = 0; i < g_sim.n_ssh; i++)
            if (g_sim.ssh_pid_inst[i] == in->id) json_array_append_new(sp, json_integer(g_sim.ssh_pids[i]));
        json_object_set_new(j, "sshd_pids", sp);
        json_array_append_new(arr, j);
    }
    json_t *keys = json_array();
    for (ssh_key *k = g_sim.account_keys; k; k = k->next) json_array_append_new(keys, key_json(k));
    long n_off = 0;
    for (offer *o = g_sim.offers; o; o = o->next) n_off++;
    json_t *s = json_pack("{s:b, s:s, s:i, s:s, s:i, s:f, s:f, s:f, s:I, s:o, s:o, s:s, s:f}", "isolation",
                          g_sim.isolation, "ssh_user", g_sim.ssh_user, "port", g_sim.port, "state_dir",
                          g_sim.state_dir, "pid", (int)getpid(), "started_at", g_sim.started_at,
                          "loading_delay", g_sim.loading_delay, "running_delay", g_sim.running_delay,
                          "offers_available", (json_int_t)n_off, "instances", arr, "account_keys", keys,
                          "stop_status", g_sim.stop_status, "credit", credit_left());
    json_object_set_new(s, "isolation_reason", g_sim.isolation_reason ? json_string(g_sim.isolation_reason) : json_null());
    return s;
}

static void route_admin(struct MHD_Connection *c, const char *method, char **seg, int nseg, json_t *body,
                        bool body_bad, struct reply *r)
{
    if (nseg < 2) {
        rj(r, 200, json_pack("{s:[s,s,s,s,s]}", "endpoints", "/_admin/state", "/_admin/requests",
                             "/_admin/ledger", "/_admin/faults", "/_admin/offers"));
        return;
    }
    const char *what = seg[1];
    if (!strcmp(what, "state") && !strcmp(method, "GET")) { rj(r, 200, state_json()); return; }
    if (!strcmp(what, "ledger") && !strcmp(method, "GET")) { rj(r, 200, ledger_json()); return; }
    if (!strcmp(what, "requests")) {
        if (!strcmp(method, "DELETE")) {
            requests_free();
            rj(r, 200, json_pack("{s:b}", "success", 1));
            return;
        }
        long since = 0;
        const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
        if (s) parse_long(s, &since);
        rj(r, 200, requests_json(since));
        return;
    }
    if (!strcmp(what, "faults")) {
        if (!strcmp(method, "GET")) { rj(r, 200, faults_json()); return; }
        if (!strcmp(method, "DELETE")) {
            faults_free();
            g_sim.ssh_refuse_until = 0;
            for (instance *in = g_sim.instances; in; in = in->next) in->ssh_refuse_until = 0;
            rj(r, 200, json_pack("{s:b}", "success", 1));
            return;
        }
        if (!strcmp(method, "POST")) {
            if (body_bad || !(json_is_object(body) || json_is_array(body))) {
                rerr(r, 400, "invalid_args", "body must be a fault object or a list of them");
                return;
            }
            json_t *list = json_is_array(body) ? json_incref(body) : json_pack("[O]", body);
            size_t i;
            json_t *f;
            int applied = 0;
            json_array_foreach(list, i, f) {
                char *msg = NULL;
                if (fault_apply(f, &msg) < 0) {
                    json_t *e = jerr("invalid_args", msg);
                    json_object_set_new(e, "applied", json_integer(applied));
                    rj(r, 400, e);
                    free(msg);
                    json_decref(list);
                    return;
                }
                applied++;
            }
            json_decref(list);
            json_t *o = faults_json();
            json_object_set_new(o, "success", json_true());
            json_object_set_new(o, "applied", json_integer(applied));
            rj(r, 200, o);
            return;
        }
    }
    if (!strcmp(what, "offers")) {
        if (!strcmp(method, "GET")) {
            json_t *a = json_array();
            for (offer *o = g_sim.offers; o; o = o->next) json_array_append(a, o->j);
            rj(r, 200, json_pack("{s:o}", "offers", a));
            return;
        }
        if (!strcmp(method, "POST") && json_is_object(body) && g_sim.offers) {
            offer *tmpl = g_sim.offers;
            while (tmpl->next) tmpl = tmpl->next;
            json_t *j = json_deep_copy(tmpl->j);
            json_object_update(j, body);
            catalog_relist(j);
            json_decref(j);
            rj(r, 200, json_pack("{s:b, s:O}", "success", 1, "offer", g_sim.offers->j));
            return;
        }
    }
    rerr(r, 404, "not_found", "No such admin endpoint.");
}

/* ---- the MHD callbacks ---- */

static int split_path(char *p, char **seg, int max)
{
    int n = 0;
    for (char *s = strtok(p, "/"); s && n < max; s = strtok(NULL, "/")) seg[n++] = s;
    return n;
}

struct qbuild {
    buf *b;
};

static enum MHD_Result q_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    buf *b = cls;
    if (b->len) buf_appendf(b, "&");
    bool secret = !strcmp(key, "api_key");
    buf_appendf(b, "%s=%s", key, secret ? "[REDACTED]" : value ? value : "");
    return MHD_YES;
}

static void handle(struct MHD_Connection *c, const char *url, const char *method, struct req *rq,
                   struct reply *r, struct auth *a, long source)
{
    char path[2048];
    snprintf(path, sizeof path, "%s", url);
    char *seg[16];
    int nseg = split_path(path, seg, 16);
    json_t *body = NULL;
    bool body_bad = false;
    if (rq->body.len) {
        body = json_loadb(rq->body.data, rq->body.len, JSON_DECODE_ANY, NULL);
        if (!body) body_bad = true;
    }
    if (rq->too_big) {
        rerr(r, 413, "invalid_request", "Request body too large.");
        goto out;
    }
    if (nseg >= 1 && !strcmp(seg[0], "_admin")) {
        if (source) { forbidden(r); goto out; }
        route_admin(c, method, seg, nseg, body, body_bad, r);
        goto out;
    }
    if (nseg == 2 && !strcmp(seg[0], "_results")) {
        for (result_doc *d = g_sim.results; d; d = d->next) {
            if (strcmp(d->name, seg[1])) continue;
            if (now_wall() < d->ready_at) break;
            rtext(r, 200, "text/plain", d->text);
            goto out;
        }
        rtext(r, 404, "application/xml",
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
              "<Message>The specified key does not exist.</Message></Error>\n");
        goto out;
    }
    if (nseg == 0 || (nseg == 1 && !strcmp(seg[0], "health"))) {
        rj(r, 200, json_pack("{s:b, s:s}", "success", 1, "service", "vastsim"));
        goto out;
    }
    if (nseg < 2 || strcmp(seg[0], "api") || (strcmp(seg[1], "v0") && strcmp(seg[1], "v1"))) {
        rerr(r, 404, "not_found", "No such endpoint.");
        goto out;
    }
    /* key: the Authorization header wins over ?api_key= */
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = NULL;
    if (h && !strncasecmp(h, "Bearer ", 7)) key = h + 7;
    else if (h && *h) key = "";
    if (!key) key = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api_key");
    if (key) {
        while (*key == ' ') key++;
        a->kind = AUTH_INVALID;
        for (int i = 0; i < g_sim.n_account_keys_cfg; i++)
            if (*key && !strcmp(key, g_sim.account_keys_cfg[i])) {
                a->kind = AUTH_ACCOUNT;
                a->key = g_sim.account_keys_cfg[i];
            }
        if (a->kind == AUTH_INVALID && *key && (a->inst = inst_find_by_key(key))) {
            a->kind = AUTH_INSTANCE;
            a->inst_id = a->inst->id;
        }
    }
    /* injected HTTP faults, then the limiter */
    struct endpoint_class cls = classify(method, seg + 2, nseg - 2);
    for (http_fault **p = &g_sim.http_faults; *p; p = &(*p)->next) {
        http_fault *f = *p;
        if (f->path && !strstr(url, f->path)) continue;
        if (f->method && strcasecmp(f->method, method)) continue;
        if (f->code == 429) too_many(r, cls, f->style);
        else if (f->code == 503) rtext(r, 503, "text/html", "<html><body><h1>503 Service Unavailable</h1>\n"
                                                            "No server is available to handle this request.\n</body></html>\n");
        else rerr(r, f->code, "server_error", "Injected error.");
        if (--f->remaining <= 0) {
            *p = f->next;
            free(f->path);
            free(f->method);
            free(f);
        }
        goto out;
    }
    if (g_sim.rate_limit) {
        char *k = xasprintf("%s|%s", cls.name, key ? key : "anon");
        double now = now_mono();
        json_t *last = json_object_get(g_sim.rate_last, k);
        double thr = cls.threshold * g_sim.rate_scale;
        if (last && now - json_real_value(last) < thr) {
            too_many(r, cls, STYLE_DEFAULT);
            free(k);
            goto out;
        }
        json_object_set_new(g_sim.rate_last, k, json_real(now));
        free(k);
    }
    route_api(c, method, seg + 1, nseg - 1, body, body_bad, a, r);
out:
    json_decref(body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)version;
    struct req *rq = *con_cls;
    if (!rq) {
        rq = xcalloc(1, sizeof *rq);
        buf_init(&rq->body, MAX_BODY);
        rq->t0 = now_mono();
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rq->too_big && buf_append(&rq->body, upload_data, *upload_data_size) < 0) rq->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    long source = ci && ci->socket_context ? *(long *)ci->socket_context : 0;
    struct reply r = {0, NULL, NULL, NULL};
    struct auth a = {AUTH_NONE, NULL, 0, NULL};
    pthread_mutex_lock(&g_sim.mu);
    handle(c, url, method, rq, &r, &a, source);
    buf qb;
    buf_init(&qb, 4096);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, q_iter, &qb);
    double ms = (now_mono() - rq->t0) * 1000.0;
    req_log(method, url, qb.len ? qb.data : NULL, r.status, &a, source, ms);
    pthread_mutex_unlock(&g_sim.mu);
    LOG_D(SIM_TAG, "%s %s -> %d (%s%s)", method, url, r.status, AUTH_NAMES[a.kind], source ? ", from an instance" : "");
    buf_release(&qb);
    char *text = r.text;
    const char *ctype = r.ctype ? r.ctype : "application/json";
    if (r.j) text = json_dumps(r.j, JSON_COMPACT | JSON_REAL_PRECISION(12) | JSON_ENCODE_ANY);
    if (!text) text = xstrdup("");
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    json_decref(r.j);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct req *rq = *con_cls;
    if (!rq) return;
    buf_release(&rq->body);
    free(rq);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        long src = ci ? conn_source_take(ci->connect_fd) : 0;
        if (src) {
            long *p = xmalloc(sizeof *p);
            *p = src;
            *socket_context = p;
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
    }
}

int api_start(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_sim.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_sim.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                                 (uint16_t)g_sim.port, NULL, NULL, on_request, NULL,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                                 MHD_OPTION_THREAD_POOL_SIZE, 4u,
                                 MHD_OPTION_CONNECTION_LIMIT, 1024u,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                                 MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                                 MHD_OPTION_END);
    if (!g_sim.mhd) return -1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g_sim.mhd, MHD_DAEMON_INFO_BIND_PORT);
    if (di) g_sim.port = di->port;
    return 0;
}

void api_stop(void)
{
    if (g_sim.mhd) MHD_stop_daemon(g_sim.mhd);
    g_sim.mhd = NULL;
}
