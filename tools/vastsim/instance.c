/* instance: instance records, their state machine on the wall clock, the billing ledger and
 * SSH keys (docs/vast-api.md 3.2, 3.5-3.9, 3.11, 4, 6). Every function expects sim.mu held. */
#include "sim.h"

#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

char *random_hex(size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw) nbytes = sizeof raw;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(raw + got, nbytes - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            for (; got < nbytes; got++) raw[got] = (unsigned char)(rand() & 0xff);
            break;
        }
        got += (size_t)r;
    }
    char *s = xmalloc(nbytes * 2 + 1);
    for (size_t i = 0; i < nbytes; i++) snprintf(s + 2 * i, 3, "%02x", raw[i]);
    return s;
}

json_t *jerr(const char *error, const char *msg)
{
    json_t *j = json_pack("{s:b}", "success", 0);
    if (error) json_object_set_new(j, "error", json_string(error));
    json_object_set_new(j, "msg", json_string(msg));
    return j;
}

instance *inst_find(long id)
{
    for (instance *in = g_sim.instances; in; in = in->next)
        if (in->id == id) return in;
    return NULL;
}

instance *inst_find_by_key(const char *key)
{
    for (instance *in = g_sim.instances; in; in = in->next)
        if (in->api_key && !strcmp(in->api_key, key)) return in;
    return NULL;
}

/* ---- keys ---- */

ssh_key *key_new(const char *pub)
{
    ssh_key *k = xcalloc(1, sizeof *k);
    k->id = g_sim.next_key_id++;
    k->public_key = xstrdup(pub);
    k->created_at = now_wall();
    return k;
}

static ssh_key *key_copy(const ssh_key *src)
{
    ssh_key *k = xcalloc(1, sizeof *k);
    k->id = src->id;
    k->public_key = xstrdup(src->public_key);
    k->created_at = src->created_at;
    return k;
}

void keys_free(ssh_key *k)
{
    while (k) {
        ssh_key *n = k->next;
        free(k->public_key);
        free(k);
        k = n;
    }
}

json_t *key_json(const ssh_key *k)
{
    char ts[32];
    time_t t = (time_t)k->created_at;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:I, s:i, s:s, s:s, s:s, s:n}", "id", (json_int_t)k->id, "user_id", 1,
                     "public_key", k->public_key, "key", k->public_key, "created_at", ts,
                     "deleted_at");
}

/* ---- ledger ---- */

void ledger_accrue(double now)
{
    for (instance *in = g_sim.instances; in; in = in->next) {
        ledger_entry *e = in->ledger;
        bool run = in->actual && (!strcmp(in->actual, "running") || !strcmp(in->actual, "frozen"));
        bool offline = in->actual && !strcmp(in->actual, "offline");
        double dt = now - e->last;
        if (dt > 0) {
            if (e->running) e->running_s += dt;
            if (e->exists) e->exist_s += dt;
        }
        e->last = now;
        e->running = run;
        e->exists = !offline;
    }
    for (ledger_entry *e = g_sim.ledger; e; e = e->next)
        if (e->destroyed) e->last = now;
}

static double entry_cost(const ledger_entry *e, double *gpu, double *sto)
{
    *gpu = e->gpu_prior_cost + e->gpu_rate * (e->running_s - e->gpu_prior_s) / 3600.0;
    *sto = e->storage_rate * e->exist_s / 3600.0;
    return *gpu + *sto;
}

void ledger_set_gpu_rate(ledger_entry *e, double rate)
{
    ledger_accrue(now_wall());
    e->gpu_prior_cost += e->gpu_rate * (e->running_s - e->gpu_prior_s) / 3600.0;
    e->gpu_prior_s = e->running_s;
    e->gpu_rate = rate;
}

double credit_left(void)
{
    double total = 0, g, s;
    for (ledger_entry *e = g_sim.ledger; e; e = e->next) total += entry_cost(e, &g, &s);
    return g_sim.initial_credit - total;
}

json_t *ledger_json(void)
{
    double now = now_wall();
    ledger_accrue(now);
    json_t *rows = json_array();
    double tg = 0, ts = 0, trun = 0, texist = 0;
    for (ledger_entry *e = g_sim.ledger; e; e = e->next) {
        double g, s;
        double t = entry_cost(e, &g, &s);
        tg += g;
        ts += s;
        trun += e->running_s;
        texist += e->exist_s;
        instance *in = e->destroyed ? NULL : inst_find(e->instance_id);
        const char *label = in ? in->label : e->label;
        json_t *r = json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:b, s:f}",
                              "id", (json_int_t)e->instance_id, "gpu_rate", e->gpu_rate,
                              "storage_rate", e->storage_rate, "running_seconds", e->running_s,
                              "exist_seconds", e->exist_s, "gpu_cost", g, "storage_cost", s,
                              "total_cost", t, "destroyed", e->destroyed, "running", e->running,
                              "created_at", e->created_at);
        json_object_set_new(r, "label", label ? json_string(label) : json_null());
        json_object_set_new(r, "actual_status",
                            in && in->actual ? json_string(in->actual)
                                             : e->destroyed ? json_string("destroyed") : json_null());
        json_object_set_new(r, "destroyed_at", e->destroyed ? json_real(e->destroyed_at) : json_null());
        json_array_append_new(rows, r);
    }
    return json_pack("{s:o, s:{s:f, s:f, s:f, s:f, s:f}, s:f, s:f, s:f}", "instances", rows, "totals",
                     "gpu_cost", tg, "storage_cost", ts, "total_cost", tg + ts, "running_seconds", trun,
                     "exist_seconds", texist, "credit", g_sim.initial_credit, "balance",
                     g_sim.initial_credit - tg - ts, "time", now);
}

void ledger_free(void)
{
    ledger_entry *e = g_sim.ledger;
    while (e) {
        ledger_entry *n = e->next;
        free(e->label);
        free(e);
        e = n;
    }
    g_sim.ledger = NULL;
}

/* ---- rendering ---- */

static bool runtype_direct(const char *rt)
{
    return rt && strstr(rt, "direc") != NULL;
}

static bool runtype_ssh(const char *rt)
{
    return !rt || strstr(rt, "ssh") != NULL || strstr(rt, "jupyter") != NULL;
}

/* The port mappings an env entry "-p SPEC" asks for (SPEC: [HOST:]CONTAINER[/tcp|/udp], the
 * CLI's parse_env shape): "CONTAINER/proto" -> HostPort. The container's port is published as
 * the same port number (identity): that is where a process of the instance listens on the host
 * when vastsim runs without isolation. Ports above 65535 (Vast's "identity, random" requests)
 * get no entry. */
static void env_ports(json_t *ports, const instance *in)
{
    const char *k;
    json_t *v;
    json_object_foreach(in->env, k, v) {
        if (strncmp(k, "-p ", 3)) continue;
        const char *spec = k + 3;
        while (*spec == ' ') spec++;
        const char *slash = strchr(spec, '/');
        const char *proto = slash ? slash + 1 : "tcp";
        if (strcmp(proto, "tcp") && strcmp(proto, "udp")) continue;
        size_t plen = slash ? (size_t)(slash - spec) : strlen(spec);
        char nums[32];
        if (plen == 0 || plen >= sizeof nums) continue;
        memcpy(nums, spec, plen);
        nums[plen] = '\0';
        const char *colon = strrchr(nums, ':');
        long cport;
        if (parse_long(colon ? colon + 1 : nums, &cport) < 0 || cport < 1 || cport > 65535) continue;
        char name[48], hp[16];
        snprintf(name, sizeof name, "%ld/%s", cport, proto);
        if (json_object_get(ports, name)) continue;
        snprintf(hp, sizeof hp, "%ld", cport);
        json_object_set_new(ports, name, json_pack("[{s:s, s:s}]", "HostIp", "0.0.0.0", "HostPort", hp));
    }
}

json_t *inst_json(const instance *in)
{
    static const char *DROP[] = {"id", "ask_contract_id", "bundled_results", "rented", "rentable",
                                 "is_vm_deverified", "vms_enabled", "gpu_total_ram", "hostname",
                                 "start_date", "end_date", "duration", "dph_base", "rn"};
    json_t *j = json_deep_copy(in->offer);
    for (size_t i = 0; i < ARRAY_LEN(DROP); i++) json_object_del(j, DROP[i]);
    double now = now_wall();
    bool running = in->actual && !strcmp(in->actual, "running");
    double gpu_rate = in->bid_price > 0 ? in->bid_price : in->dph_base;
    double total = gpu_rate + in->storage_total_cost;
    json_int_t gram = json_integer_value(json_object_get(in->offer, "gpu_total_ram"));
    json_object_set_new(j, "id", json_integer(in->id));
    json_object_set_new(j, "actual_status", in->actual ? json_string(in->actual) : json_null());
    json_object_set_new(j, "intended_status", json_string(in->intended));
    json_object_set_new(j, "cur_state", json_string(in->cur_state));
    json_object_set_new(j, "next_state", json_string(in->next_state));
    json_object_set_new(j, "status_msg", in->status_msg ? json_string(in->status_msg) : json_null());
    json_object_set_new(j, "label", in->label ? json_string(in->label) : json_null());
    json_object_set_new(j, "ssh_host", json_string("127.0.0.1"));
    json_object_set_new(j, "ssh_port", in->ssh_port ? json_integer(in->ssh_port) : json_null());
    json_object_set_new(j, "ssh_idx", json_string("0"));
    json_object_set_new(j, "machine_dir_ssh_port", in->ssh_port ? json_integer(in->ssh_port) : json_null());
    json_object_set_new(j, "public_ipaddr", json_string("127.0.0.1"));
    json_object_set_new(j, "local_ipaddrs", json_string("127.0.0.1 \n"));
    /* Always an object ({} when nothing is mapped): both CLIs' ssh-url do
     * instance.get("ports", {}).get("22/tcp") and crash on null. */
    json_t *ports = json_object();
    if (running && in->ssh_port && runtype_ssh(in->runtype)) {
        char port[16];
        snprintf(port, sizeof port, "%d", in->ssh_port);
        json_object_set_new(ports, "22/tcp", json_pack("[{s:s, s:s}]", "HostIp", "0.0.0.0", "HostPort", port));
    }
    if (running) env_ports(ports, in);
    json_object_set_new(j, "ports", ports);
    bool direct = runtype_direct(in->runtype) && in->ssh_port;
    json_object_set_new(j, "direct_port_start", json_integer(direct ? in->ssh_port : -1));
    json_object_set_new(j, "direct_port_end", json_integer(direct ? in->ssh_port : -1));
    json_object_set_new(j, "direct_port_count", json_integer(direct ? 1 : -1));
    json_object_set_new(j, "image_uuid", json_string(in->image));
    json_object_set_new(j, "image_runtype", json_string(in->runtype));
    json_object_set_new(j, "image_args", in->args ? json_deep_copy(in->args) : json_array());
    json_t *extra = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(in->env, k, v) json_array_append_new(extra, json_pack("[s,O]", k, v));
    json_object_set_new(j, "extra_env", extra);
    json_object_set_new(j, "onstart", in->onstart ? json_string(in->onstart) : json_null());
    json_object_set_new(j, "jupyter_token", json_string("0000000000000000000000000000000000000000000000000000000000000000"));
    json_object_set_new(j, "template_id", json_null());
    json_object_set_new(j, "template_hash_id", json_null());
    json_object_set_new(j, "template_name", json_null());
    json_object_set_new(j, "gpu_totalram", json_integer(gram));
    json_object_set_new(j, "gpu_util", running ? json_real(0.0) : json_null());
    json_object_set_new(j, "gpu_temp", running ? json_real(35.0) : json_null());
    json_object_set_new(j, "cpu_util", running ? json_real(0.0) : json_null());
    json_object_set_new(j, "mem_usage", running ? json_real(0.1) : json_null());
    json_object_set_new(j, "mem_limit", json_real(json_number_value(json_object_get(in->offer, "cpu_ram")) / 1024.0));
    json_object_set_new(j, "vmem_usage", json_null());
    json_object_set_new(j, "disk_space", json_real(in->disk));
    json_object_set_new(j, "disk_usage", json_real(0.0));
    json_object_set_new(j, "disk_util", json_real(-1));
    json_object_set_new(j, "dph_base", json_real(in->dph_base));
    json_object_set_new(j, "dph_total", json_real(total));
    json_object_set_new(j, "storage_cost", json_real(in->storage_cost));
    json_object_set_new(j, "storage_total_cost", json_real(in->storage_total_cost));
    json_object_set_new(j, "vram_costperhour", json_real(gram > 0 ? total / (gram / 1024.0) : 0));
    json_object_set_new(j, "is_bid", json_boolean(in->bid_price > 0));
    json_object_set_new(j, "search", json_pack("{s:f, s:f, s:f, s:f, s:f}", "gpuCostPerHour", gpu_rate,
                                               "diskHour", in->storage_total_cost, "totalHour", total,
                                               "discountTotalHour", 0.0,
                                               "discountedTotalPerHour", total));
    double cur_gpu = running ? gpu_rate : 0;
    json_object_set_new(j, "instance", json_pack("{s:f, s:f, s:f, s:f, s:f}", "gpuCostPerHour", cur_gpu,
                                                 "diskHour", in->storage_total_cost, "totalHour",
                                                 cur_gpu + in->storage_total_cost,
                                                 "discountTotalHour", 0.0, "discountedTotalPerHour",
                                                 cur_gpu + in->storage_total_cost));
    json_object_set_new(j, "credit_balance", json_null());
    json_object_set_new(j, "credit_discount", json_null());
    json_object_set_new(j, "start_date", json_real(in->start_date));
    double end = json_number_value(json_object_get(in->offer, "end_date"));
    json_object_set_new(j, "end_date", json_real(end));
    json_object_set_new(j, "duration", json_real(end - now));
    double up = in->ledger ? in->ledger->running_s : 0;
    json_object_set_new(j, "uptime_mins", json_real(up / 60.0));
    json_object_set_new(j, "client_run_time", json_real(up / 3600.0));
    json_object_set_new(j, "host_run_time", json_real(up / 3600.0));
    double left = end - now > 0 ? end - now : 0;
    json_object_set_new(j, "time_remaining", json_sprintf("%d Mon %d D %d Hr", (int)(left / 2592000),
                                                          (int)fmod(left / 86400, 30),
                                                          (int)fmod(left / 3600, 24)));
    json_object_set_new(j, "time_remaining_isbid", json_string(""));
    const char *geo = json_string_value(json_object_get(in->offer, "geolocation"));
    size_t gl = geo ? strlen(geo) : 0;
    json_object_set_new(j, "country_code", gl >= 2 ? json_string(geo + gl - 2) : json_null());
    json_object_set_new(j, "volume_info", json_array());
    json_object_set_new(j, "rentable", json_true());
    return j;
}

/* ---- create ---- */

static const char *RUNTYPES[] = {"ssh", "ssh_proxy", "ssh_direc", "ssh_direct", "jupyter",
                                 "jupyter_proxy", "jupyter_direc", "jupyter_direct", "args"};

static bool runtype_valid(const char *rt)
{
    char *copy = xstrdup(rt), *save = NULL;
    bool ok = true, any = false;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        bool found = false;
        for (size_t i = 0; i < ARRAY_LEN(RUNTYPES); i++)
            if (!strcmp(t, RUNTYPES[i])) found = true;
        ok = ok && found;
        any = true;
    }
    free(copy);
    return ok && any;
}

static int bad_args(json_t **resp, long ask, const char *fmt, const char *detail)
{
    char *m = xasprintf(fmt, detail);
    char *msg = xasprintf("error 400/3467: Invalid args: %s", m);
    *resp = jerr("invalid_args", msg);
    json_object_set_new(*resp, "ask_id", json_integer(ask));
    free(m);
    free(msg);
    return 400;
}

static int num_arg(json_t *v, double *out)
{
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    if (json_is_string(v)) return parse_double(json_string_value(v), out);
    return -1;
}

static bool vanish_take(long ask)
{
    size_t i;
    json_t *v;
    json_array_foreach(g_sim.vanish_offers, i, v) {
        if (json_integer_value(v) == ask) {
            json_array_remove(g_sim.vanish_offers, i);
            return true;
        }
    }
    return false;
}

int inst_create(long ask, json_t *body, json_t **resp)
{
    if (!json_is_object(body)) return bad_args(resp, ask, "%s", "request body must be a JSON object");
    json_t *image = json_object_get(body, "image");
    json_t *tmpl = json_object_get(body, "template_hash_id");
    if (!json_is_string(image) || !*json_string_value(image)) {
        if (!json_is_string(tmpl)) return bad_args(resp, ask, "%s", "image is required");
    } else if (strlen(json_string_value(image)) > 1024) {
        return bad_args(resp, ask, "%s", "image is longer than 1024 characters");
    }
    json_t *env = json_object_get(body, "env");
    if (env && !json_is_null(env) && !json_is_object(env)) {
        *resp = jerr("invalid_args", "invalid env type: env must be a dict");
        json_object_set_new(*resp, "ask_id", json_integer(ask));
        return 400;
    }
    size_t env_total = 0;
    if (json_is_object(env)) {
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v) {
            if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v) && !json_is_null(v))
                return bad_args(resp, ask, "env value of %s must be a string", k);
            size_t len = strlen(k) + (json_is_string(v) ? strlen(json_string_value(v)) : 8);
            if (len > 256) return bad_args(resp, ask, "env entry %s is longer than 256 characters", k);
            env_total += len;
        }
        if (env_total > 32768) return bad_args(resp, ask, "%s", "env is longer than 32768 characters");
    }
    json_t *label = json_object_get(body, "label");
    if (label && !json_is_null(label) && (!json_is_string(label) || strlen(json_string_value(label)) > 256))
        return bad_args(resp, ask, "%s", "label must be a string of at most 256 characters");
    json_t *onstart = json_object_get(body, "onstart");
    if (onstart && !json_is_null(onstart) && (!json_is_string(onstart) || strlen(json_string_value(onstart)) > 32768))
        return bad_args(resp, ask, "%s", "onstart must be a string");
    json_t *args = json_object_get(body, "args");
    if (args && !json_is_null(args)) {
        if (!json_is_array(args)) return bad_args(resp, ask, "%s", "args must be a list of strings");
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a) if (!json_is_string(a))
            return bad_args(resp, ask, "%s", "args must be a list of strings");
    }
    json_t *args_str = json_object_get(body, "args_str");
    if (args_str && !json_is_null(args_str) && !json_is_string(args_str))
        return bad_args(resp, ask, "%s", "args_str must be a string");
    const char *runtype;
    json_t *rt = json_object_get(body, "runtype");
    if (rt && !json_is_null(rt)) {
        if (!json_is_string(rt) || !runtype_valid(json_string_value(rt)))
            return bad_args(resp, ask, "unknown runtype %s",
                            json_is_string(rt) ? json_string_value(rt) : "(not a string)");
        runtype = json_string_value(rt);
    } else {
        runtype = (json_is_array(args) || json_is_string(args_str)) ? "args" : "ssh";
    }
    double disk = 8.0;
    json_t *dj = json_object_get(body, "disk");
    if (dj && !json_is_null(dj) && (num_arg(dj, &disk) < 0 || !(disk > 0) || disk > 1e6))
        return bad_args(resp, ask, "%s", "disk must be a positive number of GB");
    double price = 0;
    json_t *pj = json_object_get(body, "price");
    if (pj && !json_is_null(pj)) {
        if (num_arg(pj, &price) < 0 || price < 0.001 || price > 128) {
            *resp = jerr("invalid_price", "error 400/3467: Invalid args: price must be between 0.001 and 128");
            json_object_set_new(*resp, "ask_id", json_integer(ask));
            return 400;
        }
    }
    json_t *ts = json_object_get(body, "target_state");
    if (ts && !json_is_null(ts) && (!json_is_string(ts) || (strcmp(json_string_value(ts), "running") &&
                                                              strcmp(json_string_value(ts), "stopped"))))
        return bad_args(resp, ask, "%s", "target_state must be running or stopped");
    bool start_stopped = json_is_string(ts) && !strcmp(json_string_value(ts), "stopped");
    bool cancel_unavail = json_is_true(json_object_get(body, "cancel_unavail"));

    offer *o = catalog_find(ask);
    if (o && vanish_take(ask)) {
        catalog_remove(ask);
        o = NULL;
        LOG_I(SIM_TAG, "fault: offer %ld vanished", ask);
    }
    if (!o) {
        char *msg;
        int code;
        if (cancel_unavail) {
            msg = xasprintf("error 410/3907: no_such_ask Instance type %ld is no longer available.", ask);
            *resp = jerr("no_such_ask", msg);
            code = 410;
        } else {
            msg = xasprintf("error 404/3603: no_such_ask Instance type by id %ld is not available.", ask);
            *resp = jerr("invalid_args", msg);
            code = 404;
        }
        json_object_set_new(*resp, "ask_id", json_integer(ask));
        free(msg);
        return code;
    }
    double avail = json_number_value(json_object_get(o->j, "disk_space"));
    if (disk > avail) {
        char d[64];
        snprintf(d, sizeof d, "%.1f GB > %.1f GB", disk, avail);
        return bad_args(resp, ask, "requested disk exceeds the offer's disk_space (%s)", d);
    }
    if (credit_left() <= 0) {
        *resp = jerr("insufficient_credit", "Insufficient credit");
        return 411;
    }

    instance *in = xcalloc(1, sizeof *in);
    in->id = g_sim.next_instance_id++;
    in->ask_id = ask;
    in->offer = json_deep_copy(o->j);
    in->api_key = random_hex(32);
    in->image = json_is_string(image) && *json_string_value(image)
                    ? xstrdup(json_string_value(image))
                    : xasprintf("vastai/template:%s", json_string_value(tmpl));
    in->label = json_is_string(label) ? xstrdup(json_string_value(label)) : NULL;
    in->onstart = json_is_string(onstart) ? xstrdup(json_string_value(onstart)) : NULL;
    in->runtype = xstrdup(runtype);
    in->args_str = json_is_string(args_str) ? xstrdup(json_string_value(args_str)) : NULL;
    in->env = json_object();
    if (json_is_object(env)) {
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v) {
            if (json_is_string(v)) json_object_set(in->env, k, v);
            else if (json_is_null(v)) json_object_set_new(in->env, k, json_string(""));
            else {
                char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
                json_object_set_new(in->env, k, json_string(s));
                free(s);
            }
        }
    }
    in->args = json_is_array(args) ? json_deep_copy(args) : NULL;
    in->disk = disk;
    in->dph_base = json_number_value(json_object_get(o->j, "dph_base"));
    in->storage_cost = json_number_value(json_object_get(o->j, "storage_cost"));
    in->storage_total_cost = in->storage_cost * disk / 720.0;
    in->bid_price = price;
    double now = now_wall();
    in->created_at = now;
    in->phase_at = now;
    in->start_date = now;
    in->loading_delay = g_sim.loading_delay;
    in->running_delay = g_sim.running_delay;
    for (boot_fault **bp = &g_sim.boot_faults; *bp; bp = &(*bp)->next) {
        boot_fault *b = *bp;
        if (b->loading_delay >= 0) in->loading_delay = b->loading_delay;
        if (b->running_delay >= 0) in->running_delay = b->running_delay;
        if (b->stuck) in->stuck = true;
        if (--b->remaining <= 0) {
            *bp = b->next;
            free(b);
        }
        break;
    }
    in->ssh_fd = in->api_fd = -1;
    in->netns_fd = in->mntns_fd = -1;
    in->tag = xasprintf("%d.%ld", (int)getpid(), in->id);
    ssh_key **tail = &in->account_keys;
    for (ssh_key *k = g_sim.account_keys; k; k = k->next) {
        *tail = key_copy(k);
        tail = &(*tail)->next;
    }
    bool low_bid = price > 0 && price < json_number_value(json_object_get(o->j, "min_bid"));
    if (start_stopped || low_bid) {
        in->intended = in->cur_state = in->next_state = "stopped";
        in->actual = g_sim.stop_status;
        in->status_msg = low_bid ? xstrdup("outbid: bid price below the current minimum") : NULL;
    } else {
        in->intended = in->cur_state = in->next_state = "running";
        in->actual = NULL;
        in->status_msg = NULL;
        in->onstart_done = false;
    }
    in->phase_at = now;
    ledger_entry *e = xcalloc(1, sizeof *e);
    e->instance_id = in->id;
    e->gpu_rate = price > 0 ? price : in->dph_base;
    e->storage_rate = in->storage_total_cost;
    e->last = now;
    e->exists = true;
    e->created_at = now;
    ledger_entry **lt = &g_sim.ledger;
    while (*lt) lt = &(*lt)->next;
    *lt = e;
    in->ledger = e;
    instance **it = &g_sim.instances;
    while (*it) it = &(*it)->next;
    *it = in;
    catalog_remove(ask);
    if (sandbox_listen_ssh(in) < 0) LOG_W(SIM_TAG, "instance %ld: no SSH listener", in->id);
    /* booting flag: actual_status NULL with intended running means "boot pending" */
    LOG_I(SIM_TAG, "instance %ld created from offer %ld (%s, ssh port %d)", in->id, ask,
          json_string_value(json_object_get(in->offer, "gpu_name")), in->ssh_port);
    if (low_bid) {
        char *msg = xasprintf("error 400/3480: bid price %.4f is below the minimum bid %.4f; "
                              "instance created stopped", price,
                              json_number_value(json_object_get(in->offer, "min_bid")));
        *resp = jerr("invalid_price", msg);
        json_object_set_new(*resp, "new_contract", json_integer(in->id));
        json_object_set_new(*resp, "ask_id", json_integer(ask));
        free(msg);
        return 400;
    }
    *resp = json_pack("{s:b, s:I, s:s, s:I}", "success", 1, "new_contract", (json_int_t)in->id,
                      "instance_api_key", in->api_key, "ask_id", (json_int_t)ask);
    return 200;
}

/* ---- state changes ---- */

static void set_msg(instance *in, const char *msg)
{
    free(in->status_msg);
    in->status_msg = msg ? xstrdup(msg) : NULL;
}

/* Begin a (re)boot: after loading_delay the instance goes loading, then running. */
static void begin_boot(instance *in, const char *actual)
{
    in->intended = in->cur_state = in->next_state = "running";
    in->actual = actual;
    in->phase_at = now_wall();
    in->onstart_done = false;
    set_msg(in, NULL);
}

static bool booting(const instance *in)
{
    /* cur_state "stopped" with intended running: a start waiting to be scheduled */
    return !strcmp(in->intended, "running") &&
           (!in->actual || !strcmp(in->actual, "loading") || !strcmp(in->actual, "rebooting") ||
            !strcmp(in->cur_state, "stopped"));
}

int inst_set_state(instance *in, const char *state, const char **msg)
{
    ledger_accrue(now_wall());
    if (!strcmp(state, "stopped")) {
        if (!strcmp(in->intended, "stopped")) return 0;
        in->intended = in->cur_state = in->next_state = "stopped";
        in->actual = g_sim.stop_status;
        set_msg(in, NULL);
        int n = sandbox_kill_procs(in);
        LOG_I(SIM_TAG, "instance %ld stopped (%d processes killed)", in->id, n);
        return 0;
    }
    if (!strcmp(state, "running")) {
        if (!strcmp(in->intended, "running") && in->actual &&
            (!strcmp(in->actual, "running") || booting(in)))
            return 0;
        /* As Vast: intended_status/next_state running at once; actual_status keeps the stop
         * status and cur_state stays stopped until the machine takes it ("Scheduling" in the
         * console, not an API value), then loading, then running. */
        begin_boot(in, in->actual);
        in->cur_state = "stopped";
        LOG_I(SIM_TAG, "instance %ld starting", in->id);
        return 0;
    }
    *msg = "state must be running or stopped";
    return -1;
}

void inst_reboot(instance *in)
{
    ledger_accrue(now_wall());
    sandbox_kill_procs(in);
    begin_boot(in, "rebooting");
}

void inst_force_status(instance *in, const char *actual, const char *msg, bool kill)
{
    ledger_accrue(now_wall());
    in->actual = actual;
    set_msg(in, msg);
    in->phase_at = now_wall();
    if (kill) sandbox_kill_procs(in);
    if (!strcmp(actual, "loading")) in->stuck = true;
    LOG_I(SIM_TAG, "fault: instance %ld -> %s%s%s", in->id, actual, msg ? ": " : "", msg ? msg : "");
}

static void inst_free(instance *in)
{
    json_decref(in->offer);
    json_decref(in->env);
    json_decref(in->args);
    free(in->api_key);
    free(in->image);
    free(in->label);
    free(in->onstart);
    free(in->runtype);
    free(in->args_str);
    free(in->status_msg);
    free(in->dir);
    free(in->setup_error);
    free(in->tag);
    keys_free(in->keys);
    keys_free(in->account_keys);
    free(in);
}

void inst_destroy(instance *in)
{
    double now = now_wall();
    ledger_accrue(now);
    for (instance **p = &g_sim.instances; *p; p = &(*p)->next) {
        if (*p == in) {
            *p = in->next;
            break;
        }
    }
    ledger_entry *e = in->ledger;
    e->destroyed = true;
    e->running = e->exists = false;
    e->destroyed_at = now;
    e->label = in->label ? xstrdup(in->label) : NULL;
    sandbox_teardown(in);
    catalog_relist(in->offer);
    LOG_I(SIM_TAG, "instance %ld destroyed", in->id);
    inst_free(in);
}

void inst_destroy_all(void)
{
    while (g_sim.instances) inst_destroy(g_sim.instances);
}

void inst_tick(double now)
{
    ledger_accrue(now);
    for (instance *in = g_sim.instances; in; in = in->next) {
        if (!in->setup_done) sandbox_setup(in);
        if (!booting(in)) continue;
        if (in->setup_error) {
            char *m = xasprintf("Error response from daemon: failed to create task for container: "
                                "OCI runtime create failed: %s", in->setup_error);
            in->actual = "created";
            set_msg(in, m);
            free(m);
            continue;
        }
        if (!in->actual || strcmp(in->actual, "loading")) {
            if (now >= in->phase_at + in->loading_delay) {
                in->actual = "loading";
                in->cur_state = "running";
                in->phase_at = now;
                char *m = xasprintf("Pulling image %s", in->image);
                set_msg(in, m);
                free(m);
            }
        } else if (!in->stuck && now >= in->phase_at + in->running_delay) {
            in->actual = "running";
            in->phase_at = now;
            const char *mode = strstr(in->runtype, "jupyter") ? "jupyter"
                               : !strcmp(in->runtype, "args") ? "args" : "ssh";
            char *m = xasprintf("success, running %s/%s", in->image, mode);
            set_msg(in, m);
            free(m);
            LOG_I(SIM_TAG, "instance %ld running", in->id);
            if (!in->onstart_done) {
                in->onstart_done = true;
                if (in->onstart && strcmp(in->runtype, "args")) sandbox_run_onstart(in);
            }
        }
    }
    ledger_accrue(now);
}
