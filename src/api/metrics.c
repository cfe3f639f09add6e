/* api/metrics.c: GET /metrics, the Prometheus text exposition format (0.0.4).
 *
 * Everything comes from memory or the local store, so the handler answers at once (it never
 * waits on a peer): the jobs table (jobs_stats_json), the instances table, the fleet's
 * tunnels (fleet_instance_view_get: a status copy, no network), the ledger through
 * reaper_cost_json (the very body of GET /api/cost, so the two always agree), and the
 * default metrics registry (core/metrics.h: HTTP requests and latency from http.c, Vast API
 * calls from vast_http.c). Auth: the route is HTTP_ROUTE_METRICS (http.h): open on
 * loopback without tokens, else API_TOKEN or METRICS_TOKEN.
 *
 * Names follow Prometheus' guide: the gpuscribe_ prefix, base units (seconds, dollars,
 * ratios), _total on counters. Counters derived from the store (audio and GPU seconds, job
 * retries, costs) only grow and survive restarts. */
#include "api/api.h"
#include "app.h"
#include "core/metrics.h"
#include "core/util.h"
#include "fleet/provision.h"
#include "fleet/reaper.h"
#include "jobs/jobs.h"
#include "store/instances.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define METRICS_PAGE_MAX ((size_t)16 << 20)

static double jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- jobs */

static int write_jobs(buf *b, jobs *j)
{
    json_t *s = jobs_stats_json(j);
    int rc = metrics_write_family(b, "gpuscribe_jobs", "gauge", "Jobs in the store, by state.");
    const char *state;
    json_t *v;
    json_object_foreach(json_object_get(s, "states"), state, v)
        rc |= metrics_write_sample(b, "gpuscribe_jobs", (double)json_integer_value(v), "state",
                                   state, NULL);
    rc |= metrics_write_family(b, "gpuscribe_queue_jobs", "gauge", "Jobs waiting to run.");
    rc |= metrics_write_sample(b, "gpuscribe_queue_jobs",
                               (double)json_integer_value(json_object_get(
                                   json_object_get(s, "states"), "queued")), NULL);
    rc |= metrics_write_family(b, "gpuscribe_queue_audio_seconds", "gauge",
                               "Audio waiting to be transcribed (queued jobs), in seconds.");
    rc |= metrics_write_sample(b, "gpuscribe_queue_audio_seconds", jnum(s, "queued_audio_s"), NULL);
    rc |= metrics_write_family(b, "gpuscribe_job_retries_total", "counter",
                               "Job runs beyond each job's first (a job run again after its "
                               "worker, tunnel or the controller failed).");
    rc |= metrics_write_sample(b, "gpuscribe_job_retries_total",
                               (double)json_integer_value(json_object_get(s, "retries")), NULL);

    static const struct { const char *name, *key, *help; } per[] = {
        {"gpuscribe_jobs_done_total", "jobs", "Jobs transcribed, by engine and backend."},
        {"gpuscribe_audio_transcribed_seconds_total", "audio_s",
         "Audio transcribed (done jobs), in seconds, by engine and backend."},
        {"gpuscribe_gpu_seconds_total", "gpu_s",
         "Time done jobs held a GPU worker, in seconds, by engine and backend."},
    };
    json_t *totals = json_object_get(s, "totals");
    for (size_t k = 0; k < ARRAY_LEN(per); k++) {
        rc |= metrics_write_family(b, per[k].name, "counter", per[k].help);
        size_t i;
        json_t *t;
        json_array_foreach(totals, i, t) {
            const char *e = json_string_value(json_object_get(t, "engine"));
            const char *bk = json_string_value(json_object_get(t, "backend"));
            rc |= metrics_write_sample(b, per[k].name, jnum(t, per[k].key), "engine",
                                       e && *e ? e : "unknown", "backend",
                                       bk && *bk ? bk : "unknown", NULL);
        }
    }
    json_decref(s);
    return rc;
}

/* ---- instances and tunnels */

static const char *const instance_states[] = {
    "requested", "creating", "loading",   "ssh_wait",  "installing", "starting_worker",
    "ready",     "failed",   "destroying", "destroyed", "orphan",
};

struct state_counts {
    long long n[ARRAY_LEN(instance_states)];
    char other[8][24];
    long long other_n[8];
    int nother;
};

static void count_state(void *ud, const char *state, long long n)
{
    struct state_counts *c = ud;
    for (size_t i = 0; i < ARRAY_LEN(instance_states); i++)
        if (!strcmp(state, instance_states[i])) {
            c->n[i] = n;
            return;
        }
    if (c->nother < (int)ARRAY_LEN(c->other)) {
        snprintf(c->other[c->nother], sizeof c->other[0], "%s", state);
        c->other_n[c->nother++] = n;
    }
}

static int write_instances(buf *b, app *a)
{
    struct state_counts c = {0};
    int rc = metrics_write_family(b, "gpuscribe_instances", "gauge",
                                  "Instances in the store (rented, booting or gone), by state.");
    if (instances_count_by_state(a->st, count_state, &c) == 0) {
        for (size_t i = 0; i < ARRAY_LEN(instance_states); i++)
            rc |= metrics_write_sample(b, "gpuscribe_instances", (double)c.n[i], "state",
                                       instance_states[i], NULL);
        for (int i = 0; i < c.nother; i++)
            rc |= metrics_write_sample(b, "gpuscribe_instances", (double)c.other_n[i], "state",
                                       c.other[i], NULL);
    }

    static const char *const tstates[] = {"connecting", "up", "degraded", "reconnecting", "down"};
    rc |= metrics_write_family(b, "gpuscribe_tunnel_state", "gauge",
                               "The SSH tunnel to each ready instance's worker: 1 for its "
                               "current state, 0 for the others.");
    buf rtt, rec;
    buf_init(&rtt, METRICS_PAGE_MAX);
    buf_init(&rec, METRICS_PAGE_MAX);
    rc |= metrics_write_family(&rtt, "gpuscribe_tunnel_rtt_seconds", "gauge",
                               "Round trip of the last successful health check through each "
                               "ready instance's tunnel, in seconds.");
    rc |= metrics_write_family(&rec, "gpuscribe_tunnel_reconnects_total", "counter",
                               "Successful tunnel reconnections since the controller started, "
                               "per ready instance.");
    instance_row *rows = NULL;
    size_t n = 0;
    if (a->fleet && instances_list(a->st, INSTANCES_ACTIVE, 0, 0, &rows, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rows[i].state, "ready") != 0) continue;
            fleet_instance_view v;
            if (fleet_instance_view_get(a->fleet, rows[i].vast_id, &v) != 1) continue;
            const char *id = rows[i].vast_id;
            const char *cur = v.has_tunnel ? v.tunnel.state_name : "down";
            for (size_t k = 0; k < ARRAY_LEN(tstates); k++)
                rc |= metrics_write_sample(b, "gpuscribe_tunnel_state",
                                           cur && !strcmp(cur, tstates[k]) ? 1 : 0,
                                           "instance_id", id, "state", tstates[k], NULL);
            if (v.has_tunnel && v.tunnel.rtt_ms > 0)
                rc |= metrics_write_sample(&rtt, "gpuscribe_tunnel_rtt_seconds",
                                           v.tunnel.rtt_ms / 1000.0, "instance_id", id, NULL);
            if (v.has_tunnel)
                rc |= metrics_write_sample(&rec, "gpuscribe_tunnel_reconnects_total",
                                           v.tunnel.reconnects, "instance_id", id, NULL);
            fleet_instance_view_release(&v);
        }
    }
    free(rows);
    if (rtt.len) rc |= buf_append(b, rtt.data, rtt.len);
    if (rec.len) rc |= buf_append(b, rec.data, rec.len);
    buf_release(&rtt);
    buf_release(&rec);
    return rc;
}

/* ---- cost (the body of GET /api/cost) */

static int write_cost(buf *b, reaper *rp)
{
    json_t *c = reaper_cost_json(rp);
    int rc = metrics_write_family(b, "gpuscribe_cost_dollars_total", "counter",
                                  "What every instance has cost, in dollars (the ledger: "
                                  "/api/cost totals.all_time).");
    rc |= metrics_write_sample(b, "gpuscribe_cost_dollars_total",
                               jnum(json_object_get(c, "totals"), "all_time"), NULL);
    rc |= metrics_write_family(b, "gpuscribe_instance_cost_dollars_total", "counter",
                               "What each instance has cost so far, in dollars (/api/cost "
                               "instances[].cost_usd).");
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(c, "instances"), i, in) {
        const char *id = json_string_value(json_object_get(in, "id"));
        if (!id || !*id) continue;
        rc |= metrics_write_sample(b, "gpuscribe_instance_cost_dollars_total",
                                   jnum(in, "cost_usd"), "instance_id", id, NULL);
    }
    static const char *const periods[] = {"daily", "monthly", "total"};
    json_t *budgets = json_object_get(c, "budgets");
    rc |= metrics_write_family(b, "gpuscribe_budget_spent_dollars", "gauge",
                               "Spent in each budget period (daily: since local midnight, "
                               "monthly: since the 1st, total: ever), in dollars.");
    for (size_t k = 0; k < ARRAY_LEN(periods); k++)
        rc |= metrics_write_sample(b, "gpuscribe_budget_spent_dollars",
                                   jnum(json_object_get(budgets, periods[k]), "spent"), "period",
                                   periods[k], NULL);
    rc |= metrics_write_family(b, "gpuscribe_budget_limit_dollars", "gauge",
                               "Spending limit of each period that has one (BUDGET_DAILY_USD, "
                               "BUDGET_MONTHLY_USD, BUDGET_TOTAL_USD), in dollars.");
    for (size_t k = 0; k < ARRAY_LEN(periods); k++) {
        double limit = jnum(json_object_get(budgets, periods[k]), "limit");
        if (!isnan(limit))
            rc |= metrics_write_sample(b, "gpuscribe_budget_limit_dollars", limit, "period",
                                       periods[k], NULL);
    }
    rc |= metrics_write_family(b, "gpuscribe_budget_used_ratio", "gauge",
                               "Spent / limit for each period that has a limit (1: reached).");
    for (size_t k = 0; k < ARRAY_LEN(periods); k++) {
        json_t *bj = json_object_get(budgets, periods[k]);
        double limit = jnum(bj, "limit"), spent = jnum(bj, "spent");
        if (!isnan(limit))
            rc |= metrics_write_sample(b, "gpuscribe_budget_used_ratio",
                                       limit > 0 ? spent / limit : 1, "period", periods[k], NULL);
    }
    json_decref(c);
    return rc;
}

void api_metrics(http_req *r, void *appv)
{
    app *a = appv;
    buf b;
    buf_init(&b, METRICS_PAGE_MAX);
    int rc = metrics_write_family(&b, "gpuscribe_build_info", "gauge",
                                  "Always 1; the version in a label.");
    rc |= metrics_write_sample(&b, "gpuscribe_build_info", 1, "version",
                               a->version ? a->version : "dev", NULL);
    rc |= metrics_write_family(&b, "gpuscribe_start_time_seconds", "gauge",
                               "When the controller started, in Unix seconds.");
    rc |= metrics_write_sample(&b, "gpuscribe_start_time_seconds", a->started_at, NULL);
    if (a->jobs) rc |= write_jobs(&b, a->jobs);
    if (a->st) rc |= write_instances(&b, a);
    if (a->reaper) rc |= write_cost(&b, a->reaper);
    rc |= metrics_render(metrics_default(), &b);
    if (rc != 0) {
        buf_release(&b);
        http_reply_error(r, 500, "the metrics page is larger than %zu MB", METRICS_PAGE_MAX >> 20);
        return;
    }
    http_reply_data(r, 200, METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
    buf_release(&b);
}
