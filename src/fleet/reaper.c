#include "fleet/reaper.h"

#include "core/log.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "store/instances.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROWS 256
#define RETRY_DESTROY_S 10.0
#define GONE_GRACE_S 15.0   /* an instance this new may not be listed yet */

typedef struct pending {
    long long row;
    char vid[32];
    double idle_at;          /* INFINITY when not idle */
    double destroy_at;       /* the earliest deadline, INFINITY when none */
    char reason[16];         /* idle | hard_cap | budget */
    char detail[160];        /* for budget: which one */
    bool warned;
    double warned_at;
    double next_try;         /* after a failed destroy */
} pending;

struct reaper {
    config *cfg;
    store *st;
    events *bus;
    vastctl *vc;
    fleet *f;
    int (*busy)(void *ud);
    void *busy_ud;
    vast_client *client;

    double idle_s, warn_s, cap_s, deadman_s, tick_s, check_s;
    ledger_budgets budgets;
    bool destroy_orphans;
    double started;          /* wall clock: the idle clock restarts with the controller */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, poked, started_thread;
    pthread_t th;
    pending p[MAX_ROWS];
    int np;
    double budget_warned[3]; /* period start of the last 80% warning per budget, -1 none */
    double next_check;       /* monotonic */
};

/* ---------------------------------------------------------------- helpers */


static double minutes(const config *c, enum cfg_id id, double dflt)
{
    double m = config_num(c, id);
    return isnan(m) ? dflt : m * 60.0;
}

static pending *find_p(reaper *r, long long row)
{
    for (int i = 0; i < r->np; i++)
        if (r->p[i].row == row) return &r->p[i];
    return NULL;
}

static bool setup_state(const char *s)
{
    static const char *const st[] = {"requested", "creating", "loading", "ssh_wait",
                                     "installing", "starting_worker"};
    for (size_t i = 0; i < ARRAY_LEN(st); i++)
        if (!strcmp(s, st[i])) return true;
    return false;
}

static void warning_text(const pending *p, double now, char *out, size_t n)
{
    char left[32];
    ledger_format_duration(p->destroy_at - now, left, sizeof left);
    if (!strcmp(p->reason, "idle"))
        snprintf(out, n, "Instance %s is idle: it will be destroyed in %s unless a job arrives "
                 "or you keep it alive (POST /api/vast/keepalive/%s)", p->vid, left, p->vid);
    else if (!strcmp(p->reason, "hard_cap"))
        snprintf(out, n, "Instance %s reaches its uptime limit (AUTO_DESTROY_AFTER_HOURS): it "
                 "will be destroyed in %s, even if busy", p->vid, left);
    else
        snprintf(out, n, "%s: instance %s will be destroyed in %s", p->detail, p->vid, left);
}

/* ---------------------------------------------------------------- destroy */

static void auto_destroy(reaper *r, long long row, const char *vid, const char *reason,
                         const char *why)
{
    long long id = strtoll(vid, NULL, 10);
    vastctl_result res;
    vastctl_destroy_for(r->vc, id, reason, &res);
    if (res.http_status != 200 && res.http_status != 404) {
        LOG_E("reaper", "cannot destroy instance %s (%s): %s; retrying", vid, reason, res.message);
        pthread_mutex_lock(&r->lock);
        pending *p = find_p(r, row);
        if (p) p->next_try = now_mono() + RETRY_DESTROY_S;
        pthread_mutex_unlock(&r->lock);
        return;
    }
    fleet_forget(r->f, id);
    json_t *cost = ledger_summary_json(r->st, row, now_wall());
    char up[32];
    ledger_format_duration(json_real_value(json_object_get(cost, "uptime_s")), up, sizeof up);
    char msg[512];
    snprintf(msg, sizeof msg, "Instance %s destroyed automatically (%s: %s) after %s; it cost "
             "$%.4f", vid, reason, why, up, json_real_value(json_object_get(cost, "cost_usd")));
    LOG_W("reaper", "%s", msg);
    json_t *ev = json_pack("{s:s,s:s,s:s,s:o}", "id", vid, "reason", reason, "message", msg,
                           "cost", cost);
    if (r->bus && ev) events_publish(r->bus, "instance.destroyed", ev, 1);
    else json_decref(ev);
    fleet_publish(r->f, vid);
    pthread_mutex_lock(&r->lock);
    pending *p = find_p(r, row);
    if (p) {
        p->warned = false;
        p->destroy_at = p->idle_at = INFINITY;
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---------------------------------------------------------------- account check */

typedef struct known {
    long long row;
    char vid[32];
    char state[24];
    char label[64];
    double created, seen;
} known;

static int load_known(reaper *r, known *k, int max)
{
    instance_row *rows;
    size_t n;
    if (instances_list(r->st, INSTANCES_RECENT, now_wall() - 3600, (size_t)max, &rows, &n) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        k[i].row = rows[i].id;
        snprintf(k[i].vid, sizeof k[i].vid, "%s", rows[i].vast_id);
        snprintf(k[i].state, sizeof k[i].state, "%s", rows[i].state);
        snprintf(k[i].label, sizeof k[i].label, "%s", rows[i].label);
        k[i].created = rows[i].created_at;
        k[i].seen = rows[i].seen_at;
    }
    free(rows);
    return (int)n;
}

static void found_orphan(reaper *r, const vast_instance *vi, double now)
{
    char vid[32];
    snprintf(vid, sizeof vid, "%lld", vi->id);
    double start = vi->start_date > 0 && vi->start_date < now ? vi->start_date : now;
    bool running = !strcmp(vi->actual_status, "running");
    instance_row nr;
    memset(&nr, 0, sizeof nr);
    snprintf(nr.vast_id, sizeof nr.vast_id, "%s", vid);
    snprintf(nr.state, sizeof nr.state, "orphan");
    snprintf(nr.stage, sizeof nr.stage, "not in gpuscribe's store");
    snprintf(nr.label, sizeof nr.label, "%s", vi->label);
    snprintf(nr.gpu_name, sizeof nr.gpu_name, "%s", vi->gpu_name);
    nr.num_gpus = vi->num_gpus;
    nr.dph_total = vi->dph_total;
    nr.dph_base = vi->dph_base;
    nr.storage_dph = vi->storage_total_cost;
    snprintf(nr.ssh_host, sizeof nr.ssh_host, "%s", vi->ssh_host);
    nr.ssh_port = vi->ssh_port;
    nr.created_at = start;
    nr.updated_at = now;
    nr.running_at = running ? start : 0;
    long long row = instances_insert_found(r->st, &nr);
    if (row <= 0) return;
    /* what it has cost us since Vast created it (GPU since it runs, by its uptime) */
    ledger_sync(r->st, row, false, true, vi->dph_base, vi->storage_total_cost, start);
    if (running)
        ledger_sync(r->st, row, true, true, vi->dph_base, vi->storage_total_cost,
                    ledger_running_since(now, ledger_uptime_s(vi->raw), start));
    char msg[600];
    snprintf(msg, sizeof msg, "orphan instance %s (label %s, %s, $%.4f/h, %s) is on the Vast.ai "
             "account but not in gpuscribe's store (was the data directory wiped?); %s", vid,
             vi->label, vi->gpu_name[0] ? vi->gpu_name : "GPU", vi->dph_total,
             vi->actual_status[0] ? vi->actual_status : "starting",
             r->destroy_orphans ? "destroying it (DESTROY_ORPHANS=1)"
                                : "set DESTROY_ORPHANS=1 to destroy such instances, or destroy it "
                                  "with POST /api/vast/destroy/<id>");
    LOG_W("reaper", "%s", msg);
    json_t *ev = json_pack("{s:s,s:s,s:f,s:s,s:b}", "id", vid, "label", vi->label, "dph_total",
                           vi->dph_total, "message", msg, "destroy", r->destroy_orphans);
    if (r->bus && ev) events_publish(r->bus, "instance.orphan", ev, 1);
    else json_decref(ev);
    if (r->destroy_orphans) auto_destroy(r, row, vid, "orphan", "DESTROY_ORPHANS=1");
}

static void mark_gone(reaper *r, const known *k, double now)
{
    double end;
    if (vastctl_instance_gone(r->vc, k->vid, "gone", &end) != 1) return;
    LOG_W("reaper", "instance %s is no longer on the Vast.ai account (destroyed outside "
          "gpuscribe, by its worker's dead-man switch, or lost); its cost is counted up to "
          "%.0f s ago", k->vid, now - end);
    fleet_forget(r->f, strtoll(k->vid, NULL, 10));
    fleet_publish(r->f, k->vid);
}

static void account_check(reaper *r, double now)
{
    vast_instance_list l;
    vast_error e;
    if (vast_list_instances(r->client, &l, &e) != 0) {
        LOG_D("reaper", "cannot list the account's instances: %s", e.message);
        return;
    }
    known *k = xcalloc(MAX_ROWS, sizeof *k);
    int nk = load_known(r, k, MAX_ROWS);
    char cur[32];
    vastctl_current_instance(r->vc, cur, sizeof cur);
    size_t plen = strlen(VASTCTL_LABEL_PREFIX);
    for (size_t i = 0; i < l.n; i++) {
        const vast_instance *vi = &l.items[i];
        char vid[32];
        snprintf(vid, sizeof vid, "%lld", vi->id);
        const known *kk = NULL;
        for (int j = 0; j < nk && !kk; j++)
            if (!strcmp(k[j].vid, vid)) kk = &k[j];
        if (kk) {
            if (!strcmp(kk->state, "destroyed") || !strcmp(kk->state, "destroying")) continue;
            bool running = !strcmp(vi->actual_status, "running");
            bool exists = strcmp(vi->actual_status, "offline") != 0;
            double t = now_wall();
            ledger_sync(r->st, kk->row, running, exists, vi->dph_base > 0 ? vi->dph_base : -1,
                        vi->storage_total_cost > 0 ? vi->storage_total_cost : -1,
                        running ? ledger_running_since(t, ledger_uptime_s(vi->raw),
                                                       fmax(kk->created, t - r->check_s - 1))
                                : t); /* (a restart after a stop: at most since the last check) */
            instance_facts fx = {.dph_total = vi->dph_total, .dph_base = vi->dph_base,
                                 .storage_dph = vi->storage_total_cost};
            instances_observe(r->st, kk->row, NULL, &fx, t);
            continue;
        }
        if (strncmp(vi->label, VASTCTL_LABEL_PREFIX, plen) != 0) continue;
        if (!strcmp(vid, cur)) continue;              /* the fleet adopts it */
        if (instances_label_pending(r->st, vi->label, vid)) continue; /* a boot being recorded */
        found_orphan(r, vi, now);
    }
    /* rows the account no longer has */
    for (int j = 0; j < nk; j++) {
        if (!k[j].vid[0] || !strcmp(k[j].state, "destroyed") || now - k[j].created < GONE_GRACE_S)
            continue;
        bool listed = false;
        for (size_t i = 0; i < l.n && !listed; i++) listed = l.items[i].id == strtoll(k[j].vid, NULL, 10);
        if (listed) continue;
        vast_instance vi;
        if (vast_show_instance(r->client, strtoll(k[j].vid, NULL, 10), &vi, &e) == 0) {
            vast_instance_clear(&vi);
            continue;
        }
        if (e.kind == VAST_ERR_NOT_FOUND) mark_gone(r, &k[j], now);
    }
    vast_instance_list_free(&l);
    free(k);
}

/* rows marked destroyed elsewhere (the fleet or vastctl noticed them gone) with the ledger
 * still open: close it at the best estimate */
static void close_stale(reaper *r)
{
    instance_row *rows;
    size_t n;
    if (instances_list(r->st, INSTANCES_STALE_LEDGER, 0, 64, &rows, &n) != 0) return;
    for (size_t i = 0; i < n; i++) {
        double noticed = rows[i].destroyed_at > 0 ? rows[i].destroyed_at : now_wall();
        double end = ledger_gone_end(noticed, rows[i].seen_at, r->deadman_s);
        if (store_begin(r->st) != 0) break;
        if (ledger_finalize(r->st, rows[i].id, end) == 0 &&
            instances_set_destroyed_at(r->st, rows[i].id, end) >= 0)
            store_commit(r->st);
        else
            store_rollback(r->st);
    }
    free(rows);
}

/* ---------------------------------------------------------------- budgets */

/* The wall time at which spending reaches the first budget at the current burn rate
 * (INFINITY when none will); detail names it. Also sends the 80% warnings. */
static double budget_deadline(reaper *r, double now, char *detail, size_t dlen)
{
    if (!ledger_budgets_any(&r->budgets)) return INFINITY;
    double sp[3];
    ledger_spent(r->st, now, &sp[0], &sp[1], &sp[2]);
    const double lim[3] = {r->budgets.daily, r->budgets.monthly, r->budgets.total};
    const double period[3] = {ledger_day_start(now), ledger_month_start(now), 0};
    static const char *const name[3] = {"daily", "monthly", "total"};
    static const char *const var[3] = {"BUDGET_DAILY_USD", "BUDGET_MONTHLY_USD", "BUDGET_TOTAL_USD"};
    double burn = ledger_burn_rate(r->st) / 3600.0; /* $/s */
    double best = INFINITY;
    for (int i = 0; i < 3; i++) {
        if (isnan(lim[i])) continue;
        if (sp[i] >= 0.8 * lim[i]) {
            pthread_mutex_lock(&r->lock);
            bool send = r->budget_warned[i] != period[i];
            r->budget_warned[i] = period[i];
            pthread_mutex_unlock(&r->lock);
            if (send) {
                char msg[300];
                snprintf(msg, sizeof msg, "%.0f%% of the %s budget (%s=%.2f) is spent: $%.4f",
                         100.0 * sp[i] / (lim[i] > 0 ? lim[i] : 1), name[i], var[i], lim[i], sp[i]);
                LOG_W("reaper", "%s", msg);
                json_t *ev = json_pack("{s:s,s:f,s:f,s:f,s:s}", "budget", name[i], "limit", lim[i],
                                       "spent", sp[i], "percent",
                                       100.0 * sp[i] / (lim[i] > 0 ? lim[i] : 1), "message", msg);
                if (r->bus && ev) events_publish(r->bus, "budget.warning", ev, 1);
                else json_decref(ev);
            }
        }
        double at = sp[i] >= lim[i] ? now : burn > 0 ? now + (lim[i] - sp[i]) / burn : INFINITY;
        if (at < best) {
            best = at;
            snprintf(detail, dlen, "The %s budget (%s=%.2f) %s", name[i], var[i], lim[i],
                     sp[i] >= lim[i] ? "is spent" : "is about to be spent");
        }
    }
    return best;
}

/* ---------------------------------------------------------------- the pass */

typedef struct live {
    long long row;
    char vid[32];
    char state[24];
    double created, ready, updated, last_busy, keepalive, warned_at;
} live;

static void pass(reaper *r)
{
    double now = now_wall();
    if (now_mono() >= r->next_check && vastctl_has_key(r->vc)) {
        account_check(r, now);
        r->next_check = now_mono() + r->check_s;
    }
    close_stale(r);
    int busy = r->busy ? r->busy(r->busy_ud) : 0;
    live *lv = xcalloc(MAX_ROWS, sizeof *lv);
    int n = 0;
    instance_row *rows;
    size_t nrows;
    if (instances_list(r->st, INSTANCES_LIVE, 0, MAX_ROWS, &rows, &nrows) == 0) {
        for (size_t i = 0; i < nrows; i++) {
            live *x = &lv[n++];
            x->row = rows[i].id;
            snprintf(x->vid, sizeof x->vid, "%s", rows[i].vast_id);
            snprintf(x->state, sizeof x->state, "%s", rows[i].state);
            x->created = rows[i].created_at;
            x->ready = rows[i].ready_at;
            x->updated = rows[i].updated_at;
            x->last_busy = rows[i].last_busy_at;
            x->keepalive = rows[i].keepalive_until;
            x->warned_at = rows[i].warned_at;
        }
        free(rows);
    }
    now = now_wall();
    char bdetail[160] = "";
    double budget_at = n ? budget_deadline(r, now, bdetail, sizeof bdetail) : INFINITY;

    /* rebuild the pending table: keep entries of live rows */
    pthread_mutex_lock(&r->lock);
    pending *old = xcalloc(MAX_ROWS, sizeof *old);
    int nold = r->np;
    memcpy(old, r->p, sizeof(pending) * (size_t)nold);
    r->np = 0;
    for (int i = 0; i < n; i++) {
        pending *p = &r->p[r->np++];
        memset(p, 0, sizeof *p);
        p->row = lv[i].row;
        snprintf(p->vid, sizeof p->vid, "%s", lv[i].vid);
        for (int j = 0; j < nold; j++)
            if (old[j].row == p->row) {
                p->warned = old[j].warned;
                p->warned_at = old[j].warned_at;
                p->next_try = old[j].next_try;
                snprintf(p->reason, sizeof p->reason, "%s", old[j].reason);
            }
        if (!p->warned && lv[i].warned_at > 0) { /* warned before a restart */
            p->warned = true;
            p->warned_at = lv[i].warned_at;
        }
    }
    pthread_mutex_unlock(&r->lock);
    free(old);

    for (int i = 0; i < n; i++) {
        live *x = &lv[i];
        if (fleet_worker_up(r->f, x->row))
            instances_set_seen(r->st, x->row, now);
        bool setup = setup_state(x->state);
        if (busy || setup) {
            instances_set_busy(r->st, x->row, now);
            x->last_busy = now;
        }
        bool idle_ok = !busy && !setup && (!strcmp(x->state, "ready") || !strcmp(x->state, "failed"));
        double since = x->last_busy;
        if (x->ready > since) since = x->ready;
        if (!strcmp(x->state, "failed") && x->updated > since) since = x->updated;
        if (r->started > since) since = r->started;
        double idle_at = INFINITY;
        if (idle_ok && r->idle_s > 0) {
            idle_at = since + r->idle_s;
            if (x->keepalive > idle_at) idle_at = x->keepalive;
        }
        double cap_at = r->cap_s > 0 ? x->created + r->cap_s : INFINITY;
        double at = idle_at;
        const char *reason = "idle";
        if (cap_at < at) { at = cap_at; reason = "hard_cap"; }
        if (budget_at < at) { at = budget_at; reason = "budget"; }

        pthread_mutex_lock(&r->lock);
        pending *p = find_p(r, x->row);
        if (!p) { pthread_mutex_unlock(&r->lock); continue; }
        p->idle_at = idle_at;
        bool reason_changed = strcmp(p->reason, reason) != 0;
        snprintf(p->reason, sizeof p->reason, "%s", reason);
        snprintf(p->detail, sizeof p->detail, "%s", bdetail);
        p->destroy_at = at;
        bool clear = false, warn_now = false, destroy = false;
        if (isinf(at) || now < at - r->warn_s) {
            clear = p->warned;
            p->warned = false;
        } else {
            if (!p->warned || reason_changed) {
                p->warned = true;
                p->warned_at = now;
                warn_now = true;
            }
            double eff = p->warned_at + r->warn_s > at ? p->warned_at + r->warn_s : at;
            p->destroy_at = eff;
            destroy = now >= eff && now_mono() >= p->next_try;
        }
        char msg[400] = "";
        if (p->warned) warning_text(p, now, msg, sizeof msg);
        char vid[32], rs[16];
        snprintf(vid, sizeof vid, "%s", p->vid);
        snprintf(rs, sizeof rs, "%s", p->reason);
        double dat = p->destroy_at;
        pthread_mutex_unlock(&r->lock);

        if (clear) {
            instances_set_warned(r->st, x->row, 0);
            LOG_I("reaper", "instance %s: destroy warning withdrawn", vid);
            fleet_publish(r->f, vid);
        }
        if (warn_now) {
            instances_set_warned(r->st, x->row, now);
            LOG_W("reaper", "%s", msg);
            json_t *ev = json_pack("{s:s,s:s,s:f,s:s}", "id", vid, "reason", rs, "destroy_at", dat,
                                   "message", msg);
            if (r->bus && ev) events_publish(r->bus, "instance.warning", ev, 1);
            else json_decref(ev);
            fleet_publish(r->f, vid);
        }
        if (destroy) {
            char why[200];
            if (!strcmp(rs, "idle"))
                snprintf(why, sizeof why, "idle for %.1f min", (now - since) / 60);
            else if (!strcmp(rs, "hard_cap"))
                snprintf(why, sizeof why, "up %.2f h, AUTO_DESTROY_AFTER_HOURS=%g",
                         (now - x->created) / 3600, r->cap_s / 3600);
            else
                snprintf(why, sizeof why, "%s", bdetail);
            auto_destroy(r, x->row, vid, rs, why);
        }
    }
    free(lv);
}

static void *thread_main(void *arg)
{
    reaper *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        r->poked = false;
        pthread_mutex_unlock(&r->lock);
        pass(r);
        pthread_mutex_lock(&r->lock);
        if (r->stopping || r->poked) continue;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)r->tick_s;
        ts.tv_nsec += (long)((r->tick_s - (double)(time_t)r->tick_s) * 1e9);
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---------------------------------------------------------------- json hook and API */

static void json_hook(void *ud, long long row, json_t *j)
{
    reaper *r = ud;
    double now = now_wall();
    ledger_usage u;
    ledger_instance(r->st, row, now, &u);
    json_object_set_new(j, "uptime_s", json_real(round(u.storage_s * 10) / 10));
    json_object_set_new(j, "running_s", json_real(round(u.gpu_s * 10) / 10));
    json_object_set_new(j, "cost_usd", json_real(round(u.cost * 1e6) / 1e6));
    pthread_mutex_lock(&r->lock);
    pending *p = find_p(r, row);
    char msg[400] = "";
    double idle_at = p ? p->idle_at : INFINITY, dat = p ? p->destroy_at : INFINITY;
    char reason[16] = "";
    if (p && p->warned) warning_text(p, now, msg, sizeof msg);
    if (p) snprintf(reason, sizeof reason, "%s", p->reason);
    pthread_mutex_unlock(&r->lock);
    json_object_set_new(j, "idle_destroy_at", isinf(idle_at) || idle_at <= 0 ? json_null()
                                                                           : json_real(round(idle_at)));
    json_object_set_new(j, "destroy_at", isinf(dat) || dat <= 0 ? json_null() : json_real(round(dat)));
    json_object_set_new(j, "destroy_reason_pending",
                        isinf(dat) || dat <= 0 ? json_null() : json_string(reason));
    json_object_set_new(j, "warning", msg[0] ? json_string(msg) : json_null());
}

reaper *reaper_new(config *cfg, store *st, events *bus, vastctl *vc, fleet *f,
                   int (*busy)(void *ud), void *ud)
{
    reaper *r = xcalloc(1, sizeof *r);
    r->cfg = cfg;
    r->st = st;
    r->bus = bus;
    r->vc = vc;
    r->f = f;
    r->busy = busy;
    r->busy_ud = ud;
    char err[256];
    r->client = vastctl_client_from_config(cfg, err, sizeof err);
    if (!r->client) r->client = vast_client_new(NULL, config_str(cfg, CFG_VAST_API_KEY));
    vast_client_set_timeouts(r->client, 5000, 15000);
    vast_client_set_retry(r->client, 2, 300, 2000);
    r->idle_s = minutes(cfg, CFG_IDLE_DESTROY_MINUTES, 900);
    r->warn_s = minutes(cfg, CFG_IDLE_WARN_MINUTES, 300);
    double h = config_num(cfg, CFG_AUTO_DESTROY_AFTER_HOURS);
    r->cap_s = isnan(h) ? 0 : h * 3600;
    r->deadman_s = minutes(cfg, CFG_DEADMAN_MINUTES, 1800);
    r->budgets = vastctl_budgets(cfg);
    r->destroy_orphans = config_bool(cfg, CFG_DESTROY_ORPHANS);
    double shortest = INFINITY;
    if (r->idle_s > 0) shortest = r->idle_s;
    if (r->warn_s > 0 && r->warn_s < shortest) shortest = r->warn_s;
    if (r->cap_s > 0 && r->cap_s < shortest) shortest = r->cap_s;
    r->tick_s = isinf(shortest) ? 5 : shortest / 10;
    if (r->tick_s < 0.25) r->tick_s = 0.25;
    if (r->tick_s > 5) r->tick_s = 5;
    r->check_s = r->idle_s > 0 ? r->idle_s / 5 : 60;
    if (r->check_s < 2) r->check_s = 2;
    if (r->check_s > 60) r->check_s = 60;
    for (int i = 0; i < 3; i++) r->budget_warned[i] = -1;
    r->started = now_wall();
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    fleet_set_json_hook(f, json_hook, r);
    return r;
}

void reaper_start(reaper *r)
{
    if (!r || r->started_thread) return;
    if (pthread_create(&r->th, NULL, thread_main, r) == 0) r->started_thread = true;
    else LOG_E("reaper", "cannot start the idle reaper thread: instances are not destroyed "
               "automatically");
    char idle[32], warn[32];
    ledger_format_duration(r->idle_s, idle, sizeof idle);
    ledger_format_duration(r->warn_s, warn, sizeof warn);
    LOG_I("reaper", "cost safety: idle instances destroyed after %s (warning %s before)%s%s",
          r->idle_s > 0 ? idle : "never", warn, r->cap_s > 0 ? ", hard cap " : "",
          r->cap_s > 0 ? "set" : "");
}

void reaper_free(reaper *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->started_thread) pthread_join(r->th, NULL);
    fleet_set_json_hook(r->f, NULL, NULL);
    vast_client_free(r->client);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void reaper_poke(reaper *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->poked = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

int reaper_keepalive(reaper *r, const char *vast_id, double *until)
{
    double now = now_wall();
    double u = now + (r->idle_s > 0 ? r->idle_s : 0);
    int n = instances_keepalive(r->st, vast_id, u, now);
    if (n != 1) return -1;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->np; i++)
        if (!strcmp(r->p[i].vid, vast_id) && !strcmp(r->p[i].reason, "idle")) {
            r->p[i].idle_at = u;
            r->p[i].destroy_at = u;
            r->p[i].warned = false;
        }
    pthread_mutex_unlock(&r->lock);
    LOG_I("reaper", "instance %s kept alive: idle destroy postponed by %.1f min", vast_id,
          r->idle_s / 60);
    reaper_poke(r);
    *until = u;
    return 0;
}

bool reaper_warning(reaper *r, const char *vast_id, char *msg, size_t msglen)
{
    msg[0] = '\0';
    if (!r) return false;
    double now = now_wall();
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->np; i++)
        if (r->p[i].warned && !strcmp(r->p[i].vid, vast_id)) warning_text(&r->p[i], now, msg, msglen);
    pthread_mutex_unlock(&r->lock);
    return msg[0] != '\0';
}

static json_t *budget_json(double limit, double spent)
{
    if (isnan(limit))
        return json_pack("{s:n,s:f,s:n,s:b}", "limit", "spent", round(spent * 1e6) / 1e6, "percent",
                         "warning", 0);
    double pct = limit > 0 ? 100.0 * spent / limit : 100.0;
    return json_pack("{s:f,s:f,s:f,s:b,s:b}", "limit", limit, "spent", round(spent * 1e6) / 1e6,
                     "percent", round(pct * 10) / 10, "warning", pct >= 80, "reached", pct >= 100);
}

json_t *reaper_cost_json(reaper *r)
{
    double now = now_wall();
    json_t *arr = json_array();
    typedef struct { long long row; char vid[32], label[64], state[24], reason[24], gpu[64];
                     double dph, created, destroyed; } irow;
    irow *rows = xcalloc(200, sizeof *rows);
    int n = 0;
    instance_row *all_rows;
    size_t nall;
    if (instances_list(r->st, INSTANCES_OURS_NEWEST, 0, 200, &all_rows, &nall) == 0) {
        for (size_t i = 0; i < nall; i++) {
            irow *x = &rows[n++];
            const instance_row *y = &all_rows[i];
            x->row = y->id;
            snprintf(x->vid, sizeof x->vid, "%s", y->vast_id);
            snprintf(x->label, sizeof x->label, "%s", y->label);
            snprintf(x->state, sizeof x->state, "%s", y->state);
            x->dph = y->dph_total;
            x->created = y->created_at;
            x->destroyed = y->destroyed_at;
            snprintf(x->reason, sizeof x->reason, "%s", y->destroy_reason);
            snprintf(x->gpu, sizeof x->gpu, "%s", y->gpu_name);
        }
        free(all_rows);
    }
    double total_cost = 0;
    for (int i = 0; i < n; i++) {
        irow *x = &rows[i];
        ledger_usage u;
        ledger_instance(r->st, x->row, now, &u);
        int njobs, nchunks;
        double audio, gpu;
        ledger_instance_jobs(r->st, x->row, &njobs, &nchunks, &audio, &gpu);
        total_cost += u.cost;
        char up[32], summary[96];
        ledger_format_duration(u.storage_s, up, sizeof up);
        bool alive = strcmp(x->state, "destroyed") != 0;
        snprintf(summary, sizeof summary, "%s: %s ($%.2f)", alive ? "Running" : "Ran", up, u.cost);
        json_t *j = json_object();
        json_object_set_new(j, "id", json_string(x->vid));
        json_object_set_new(j, "row_id", json_integer(x->row));
        json_object_set_new(j, "label", x->label[0] ? json_string(x->label) : json_null());
        json_object_set_new(j, "state", json_string(x->state));
        json_object_set_new(j, "gpu_name", x->gpu[0] ? json_string(x->gpu) : json_null());
        json_object_set_new(j, "running", json_boolean(u.gpu_open));
        json_object_set_new(j, "uptime_s", json_real(round(u.storage_s * 10) / 10));
        json_object_set_new(j, "running_s", json_real(round(u.gpu_s * 10) / 10));
        json_object_set_new(j, "dph_total", json_real(x->dph));
        json_object_set_new(j, "gpu_rate", json_real(u.gpu_rate));
        json_object_set_new(j, "storage_rate", json_real(u.storage_rate));
        json_object_set_new(j, "cost_usd", json_real(round(u.cost * 1e6) / 1e6));
        json_object_set_new(j, "gpu_cost", json_real(round(u.gpu_cost * 1e6) / 1e6));
        json_object_set_new(j, "storage_cost", json_real(round(u.storage_cost * 1e6) / 1e6));
        json_object_set_new(j, "started_at", x->created > 0 ? json_real(x->created) : json_null());
        json_object_set_new(j, "destroyed_at", x->destroyed > 0 ? json_real(x->destroyed) : json_null());
        json_object_set_new(j, "destroy_reason", x->reason[0] ? json_string(x->reason) : json_null());
        json_object_set_new(j, "orphan", json_boolean(!strcmp(x->state, "orphan") ||
                                                      !strcmp(x->reason, "orphan")));
        json_object_set_new(j, "jobs", json_integer(njobs));
        json_object_set_new(j, "audio_hours", json_real(round(audio / 3600.0 * 1e6) / 1e6));
        json_object_set_new(j, "summary", json_string(summary));
        json_hook(r, x->row, j); /* warning, idle_destroy_at (its uptime/cost are the same) */
        json_array_append_new(arr, j);
    }
    free(rows);
    double today, month, all;
    ledger_spent(r->st, now, &today, &month, &all);
    /* audio transcribed on GPU instances, and what those instances cost */
    double audio_s = 0;
    sqlite3_stmt *s = NULL;
    store_lock(r->st);
    if (sqlite3_prepare_v2(store_db(r->st), "SELECT coalesce(sum(end_s-start_s),0) FROM chunks"
                           " WHERE state='done' AND instance_id IS NOT NULL", -1, &s, NULL) ==
            SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        audio_s = sqlite3_column_double(s, 0);
    sqlite3_finalize(s);
    store_unlock(r->st);
    (void)total_cost;
    json_t *budgets = json_pack("{s:o,s:o,s:o}", "daily", budget_json(r->budgets.daily, today),
                                "monthly", budget_json(r->budgets.monthly, month), "total",
                                budget_json(r->budgets.total, all));
    json_t *policy = json_pack("{s:f,s:f,s:o,s:b,s:f}", "idle_destroy_minutes", r->idle_s / 60,
                               "idle_warn_minutes", r->warn_s / 60, "auto_destroy_after_hours",
                               r->cap_s > 0 ? json_real(r->cap_s / 3600) : json_null(),
                               "destroy_orphans", r->destroy_orphans, "deadman_minutes",
                               r->deadman_s / 60);
    return json_pack("{s:o,s:{s:f,s:f,s:f},s:f,s:f,s:f,s:o,s:o}",
                     "instances", arr, "totals", "today", round(today * 1e6) / 1e6, "month",
                     round(month * 1e6) / 1e6, "all_time", round(all * 1e6) / 1e6,
                     "cost_per_audio_hour", round(ledger_per_audio_hour(all, audio_s) * 1e4) / 1e4,
                     "audio_hours", round(audio_s / 3600.0 * 1e6) / 1e6, "burn_rate_per_hour",
                     round(ledger_burn_rate(r->st) * 1e6) / 1e6, "budgets", budgets, "policy",
                     policy);
}
