/* autoscale.c: the autoscaling thread (autoscale.h). */
#include "fleet/autoscale.h"

#include "fleet/hosts.h"
#include "fleet/ledger.h"
#include "fleet/speed.h"
#include "core/log.h"
#include "core/util.h"
#include "store/instances.h"
#include "vast/image_req.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct autoscale {
    config *cfg;
    store *st;
    events *bus;
    vastctl *vc;
    fleet *fleet;
    autoscale_backlog_fn backlog;
    void *ud;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, poked, started;
    int max;              /* MAX_INSTANCES now */
    bool max_dirty;       /* to be written to .env (by the thread) */
    json_t *plan;         /* the last plan */
    pthread_t th;

    /* thread-only */
    vast_offer_list offers;
    bool have_offers;
    double offers_at;
    char offers_err[400];
    double retry_at;      /* no boot before (a refusal or failure) */
    char last_key[400];   /* the last decision published: decision + reason + message */
};

static void wake(autoscale *a)
{
    pthread_mutex_lock(&a->lock);
    a->poked = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

void autoscale_poke(autoscale *a)
{
    if (a) wake(a);
}

int autoscale_set_max(autoscale *a, int n)
{
    if (!a || n < 1 || n > 64) return -1;
    pthread_mutex_lock(&a->lock);
    if (a->max != n) {
        a->max = n;
        a->max_dirty = true;
        char v[16];
        snprintf(v, sizeof v, "%d", n);
        config_set(a->cfg, CFG_MAX_INSTANCES, v);
    }
    a->poked = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    return 0;
}

int autoscale_max(autoscale *a)
{
    if (!a) return 1;
    pthread_mutex_lock(&a->lock);
    int n = a->max;
    pthread_mutex_unlock(&a->lock);
    return n;
}

json_t *autoscale_plan_json(autoscale *a)
{
    if (!a) return json_pack("{s:b}", "enabled", 0);
    pthread_mutex_lock(&a->lock);
    json_t *p = a->plan ? json_deep_copy(a->plan) : NULL;
    int max = a->max;
    pthread_mutex_unlock(&a->lock);
    if (!p) p = json_pack("{s:b,s:i,s:s,s:s}", "enabled", max > 1, "max_instances", max,
                          "decision", "hold", "reason", "starting");
    return p;
}

/* ---- one pass ------------------------------------------------------------------------------ */

static double r2(double x) { return round_to(x, 100); }
static double r4(double x) { return round_to(x, 1e4); }

/* A fresh enough search for offers that fit VAST_IMAGE (thread-only). */
static int refresh_offers(autoscale *a, double now)
{
    if (a->have_offers && now - a->offers_at < AUTOSCALE_OFFERS_TTL_S) return 0;
    if (a->have_offers) vast_offer_list_free(&a->offers);
    a->have_offers = false;
    vast_search s = {0};
    double disk = (double)config_int(a->cfg, CFG_VAST_DISK_GB);
    s.limit = 64;
    s.allocated_storage = disk;
    s.min_disk_gb = disk;
    image_req req;
    vastctl_image_req(a->cfg, &req);
    image_req_apply(&req, &s);
    vast_error e;
    if (vast_search_offers(vastctl_client(a->vc), &s, &a->offers, &e) != 0) {
        vastctl_describe(&e, a->offers_err, sizeof a->offers_err);
        a->offers_at = now;
        return -1;
    }
    a->offers_err[0] = 0;
    a->have_offers = true;
    a->offers_at = now;
    return 0;
}

struct candidate {
    const vast_offer *o;
    gpu_speed sp;
    double cpah;
};

/* The offers ranked, bad hosts left out: up to max candidates. */
static size_t ranked(autoscale *a, double boot_s, double backlog, int slots, double now,
                     struct candidate *out, size_t max)
{
    if (!a->have_offers || !a->offers.n) return 0;
    offer_rank *rk = xcalloc(a->offers.n, sizeof *rk);
    speed_rank(a->st, config_str(a->cfg, CFG_ENGINE), slots, boot_s, backlog, a->offers.items,
               a->offers.n, rk);
    double hours = config_num(a->cfg, CFG_BAD_HOST_HOURS);
    size_t n = 0;
    for (size_t i = 0; i < a->offers.n && n < max; i++) {
        const vast_offer *o = &a->offers.items[rk[i].index];
        if (hosts_bad(a->st, o->machine_id, hours, now, NULL)) continue;
        out[n++] = (struct candidate){o, rk[i].speed, rk[i].cost_per_audio_hour};
    }
    free(rk);
    return n;
}

static json_t *offer_json(const struct candidate *c)
{
    return json_pack("{s:I,s:s,s:f,s:f,s:s,s:f,s:I}", "id", (json_int_t)c->o->id, "gpu_name",
                     c->o->gpu_name, "dph_total", r4(c->o->dph_total), "speed_x", r2(c->sp.x),
                     "speed_source", c->sp.source, "cost_per_audio_hour", r4(c->cpah),
                     "machine_id", (json_int_t)c->o->machine_id);
}

static void fmt_minutes(char *out, size_t n, double s)
{
    if (s < 90) snprintf(out, n, "%.0f s", s);
    else if (s < 5400) snprintf(out, n, "%.0f min", s / 60);
    else snprintf(out, n, "%.1f h", s / 3600);
}

/* What k more GPUs (the best candidates) would do: the smallest k that finishes within the
 * wait limit, else the most the limit allows. NULL when nothing would help. */
static json_t *suggestion(double backlog, double speed, double boot_s, double limit_s,
                          const struct candidate *c, size_t nc, int room, int slots)
{
    if (backlog <= 0 || room <= 0 || !nc) return NULL;
    double add = 0, dph = 0, finish = 0;
    int k = 0;
    for (size_t i = 0; i < nc && k < room; i++) {
        add += c[i].sp.x * slots;
        dph += c[i].o->dph_total;
        k++;
        double rest = fmax(0, backlog - speed * boot_s); /* the fleet works while they boot */
        finish = rest > 0 ? boot_s + rest / (speed + add) : backlog / speed;
        if (finish <= limit_s) break;
    }
    double now_finish = speed > 0 ? backlog / speed : INFINITY;
    if (!(finish < now_finish)) return NULL;
    double cost = dph * finish / 3600.0;
    char t[64], text[200];
    fmt_minutes(t, sizeof t, finish);
    snprintf(text, sizeof text, "%d more GPU%s would finish in %s for about $%.2f", k,
             k == 1 ? "" : "s", t, cost);
    return json_pack("{s:i,s:f,s:f,s:s}", "more", k, "finish_s", round(finish), "cost_usd",
                     r4(cost), "text", text);
}

static void publish(autoscale *a, json_t *plan, bool boot)
{
    const char *d = json_string_value(json_object_get(plan, "decision"));
    const char *r = json_string_value(json_object_get(plan, "reason"));
    const char *m = json_string_value(json_object_get(plan, "message"));
    char key[sizeof a->last_key];
    snprintf(key, sizeof key, "%s|%s|%s", d, r, m);
    if (!boot && !strcmp(key, a->last_key)) return;
    snprintf(a->last_key, sizeof a->last_key, "%s", key);
    if (boot) LOG_I("fleet", "autoscale: %s", m);
    else LOG_I("fleet", "autoscale: %s: %s", r, m);
    json_t *ev = json_deep_copy(plan);
    json_object_del(ev, "suggestion");
    json_object_del(ev, "updated_at");
    if (a->bus) events_publish(a->bus, "fleet.scale", ev, boot);
    else json_decref(ev);
}

static json_t *hold(json_t *plan, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *hold(json_t *plan, const char *reason, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object_set_new(plan, "decision", json_string("hold"));
    json_object_set_new(plan, "reason", json_string(reason));
    json_object_set_new(plan, "message", json_string(msg));
    return plan;
}

/* True when one more hour of the fleet (fleet_dph) and the new instance's first (dph) would
 * pass a budget; msg names it with the figures. */
static bool budget_blocks(autoscale *a, const ledger_budgets *b, double fleet_dph, double dph,
                          double now, char *msg, size_t msglen)
{
    if (!ledger_budgets_any(b)) return false;
    double sp[3];
    ledger_spent(a->st, now, &sp[0], &sp[1], &sp[2]);
    const double lim[3] = {b->daily, b->monthly, b->total};
    static const char *const var[3] = {"BUDGET_DAILY_USD", "BUDGET_MONTHLY_USD",
                                       "BUDGET_TOTAL_USD"};
    static const char *const when[3] = {"today", "this month", "in all"};
    for (int i = 0; i < 3; i++) {
        if (isnan(lim[i]) || sp[i] + fleet_dph + dph <= lim[i]) continue;
        snprintf(msg, msglen, "%s=%.2f would be passed ($%.4f spent %s + $%.4f)", var[i],
                 lim[i], sp[i], when[i], fleet_dph + dph);
        return true;
    }
    return false;
}

static void pass(autoscale *a)
{
    double now = now_wall();
    pthread_mutex_lock(&a->lock);
    int max = a->max;
    pthread_mutex_unlock(&a->lock);
    int slots = (int)config_int(a->cfg, CFG_WORKER_SLOTS);
    if (slots < 1) slots = 1;
    double limit_s = config_num(a->cfg, CFG_SCALE_UP_WAIT_MINUTES) * 60.0;
    const char *engine = config_str(a->cfg, CFG_ENGINE);

    double backlog = 0;
    int njobs = 0;
    if (a->backlog) a->backlog(a->ud, &backlog, &njobs);

    instance_row *rows = NULL;
    size_t nrows = 0;
    instances_list(a->st, INSTANCES_PROVISIONING, 0, 0, &rows, &nrows);
    int pending = instances_count(a->st, INSTANCES_PENDING_BOOT, 0);
    if (pending < 0) pending = 0;
    double speed = 0, fleet_dph = 0;
    for (size_t i = 0; i < nrows; i++) {
        gpu_speed sp;
        speed_get(a->st, rows[i].gpu_name, engine, &sp);
        speed += sp.x * slots;
        fleet_dph += rows[i].dph_total;
    }
    speed += pending * SPEED_DEFAULT_X * slots;
    int nfleet = (int)nrows + pending;
    free(rows);
    double wait = backlog <= 0 ? 0 : speed > 0 ? backlog / speed : INFINITY;
    double boot_s = speed_boot_s(a->st);

    json_t *plan = json_pack("{s:b,s:i,s:f,s:f,s:i,s:i,s:f,s:f,s:f}", "enabled", max > 1,
                             "max_instances", max, "scale_up_wait_minutes", limit_s / 60,
                             "backlog_audio_s", round(backlog), "jobs", njobs, "fleet", nfleet,
                             "fleet_speed_x", r2(speed), "wait_limit_s", round(limit_s),
                             "boot_s", round(boot_s));
    json_object_set_new(plan, "wait_s", isfinite(wait) ? json_real(round(wait)) : json_null());
    json_object_set_new(plan, "updated_at", json_real(round(now)));

    bool want = backlog > 0 && wait > limit_s;
    struct candidate cands[8];
    size_t nc = 0;
    int room = max - nfleet;
    bool searched = false;
    /* off (MAX_INSTANCES 1): no Vast.ai call of its own, as before autoscaling existed */
    if (want && max > 1 && room > 0 && vastctl_has_key(a->vc)) {
        searched = refresh_offers(a, now) == 0;
        if (searched) nc = ranked(a, boot_s, backlog, slots, now, cands, ARRAY_LEN(cands));
    }
    json_t *sug = want ? suggestion(backlog, speed, boot_s, limit_s, cands, nc, room, slots)
                       : NULL;
    json_object_set_new(plan, "suggestion", sug ? sug : json_null());
    if (nc) json_object_set_new(plan, "offer", offer_json(&cands[0]));

    char w[160], t[64], l[64];
    fmt_minutes(t, sizeof t, isfinite(wait) ? wait : 0);
    if (isfinite(wait))
        snprintf(w, sizeof w, "would take about %s with %d instance%s", t, nfleet,
                 nfleet == 1 ? "" : "s");
    else
        snprintf(w, sizeof w, "has no GPU to run on");
    fmt_minutes(l, sizeof l, limit_s);
    bool boot = false;
    if (max <= 1)
        hold(plan, "disabled", "autoscaling is off (MAX_INSTANCES=%d)", max);
    else if (backlog <= 0)
        hold(plan, "no_backlog", "nothing to transcribe; %d instance%s", nfleet,
             nfleet == 1 ? "" : "s");
    else if (!want)
        hold(plan, "wait_ok", "%.0f s of audio in %d job%s %s (limit %s)", backlog, njobs,
             njobs == 1 ? "" : "s", w, l);
    else if (room <= 0)
        hold(plan, "max", "at MAX_INSTANCES=%d: %.0f s of audio %s", max, backlog, w);
    else if (pending > 0)
        hold(plan, "booting", "a boot is in flight; waiting for Vast.ai to answer it");
    else if (!vastctl_has_key(a->vc))
        hold(plan, "no_key", "%s", vastctl_no_key_message());
    else if (now < a->retry_at)
        hold(plan, "retry", "retrying in %.0f s after the last refusal", a->retry_at - now);
    else if (!searched)
        hold(plan, "search_failed", "cannot search offers: %s", a->offers_err);
    else if (!nc)
        hold(plan, "no_offer", "no offer fits %s (bad hosts left out)",
             config_str(a->cfg, CFG_VAST_IMAGE));
    else {
        ledger_budgets bud = vastctl_budgets(a->cfg);
        char bmsg[400];
        if (budget_blocks(a, &bud, fleet_dph, cands[0].o->dph_total, now, bmsg, sizeof bmsg)) {
            hold(plan, "budget", "not booting a %s ($%.4f/h): %s; counted: the next hour of "
                 "the %d instance%s there ($%.4f) and the new one's first ($%.4f)",
                 cands[0].o->gpu_name, cands[0].o->dph_total, bmsg, nfleet,
                 nfleet == 1 ? "" : "s", fleet_dph, cands[0].o->dph_total);
        } else {
            boot = true;
        }
    }
    if (!boot) {
        publish(a, plan, false);
    } else {
        const struct candidate *c = &cands[0];
        char key[64];
        snprintf(key, sizeof key, "autoscale-%.0f", now * 1000);
        vastctl_result res;
        vastctl_boot(a->vc, c->o->id, key, &res);
        char msg[700];
        if (res.http_status == 200) {
            snprintf(msg, sizeof msg, "booted instance %lld (%s, $%.4f/h, about $%.4f per audio "
                     "hour): %.0f s of audio in %d job%s %s (limit %s)", res.instance_id,
                     c->o->gpu_name, c->o->dph_total, c->cpah, backlog, njobs,
                     njobs == 1 ? "" : "s", w, l);
            json_object_set_new(plan, "decision", json_string("boot"));
            json_object_set_new(plan, "reason", json_string("wait"));
            json_object_set_new(plan, "message", json_string(msg));
            json_object_set_new(plan, "instance_id", json_integer(res.instance_id));
            fleet_poke(a->fleet);
            publish(a, plan, true);
        } else {
            hold(plan, res.kind[0] ? res.kind : "boot_failed", "booting offer %lld failed: %s",
                 c->o->id, res.message);
            a->retry_at = now + AUTOSCALE_RETRY_S;
            publish(a, plan, false);
        }
        /* that offer is taken now; c points into the list, so this comes last */
        if (a->have_offers) vast_offer_list_free(&a->offers);
        a->have_offers = false;
    }
    pthread_mutex_lock(&a->lock);
    json_decref(a->plan);
    a->plan = plan;
    if (boot) a->poked = true; /* look again at once: the next boot counts this one */
    pthread_mutex_unlock(&a->lock);
}

static void save_max(autoscale *a)
{
    pthread_mutex_lock(&a->lock);
    bool dirty = a->max_dirty;
    int max = a->max;
    a->max_dirty = false;
    pthread_mutex_unlock(&a->lock);
    if (!dirty) return;
    char v[16], err[1024];
    snprintf(v, sizeof v, "%d", max);
    const char *path = config_env_path(a->cfg);
    if (config_env_set(path, "MAX_INSTANCES", v, err, sizeof err) != 0)
        LOG_W("fleet", "%s; MAX_INSTANCES=%d is not saved", err, max);
    else
        LOG_I("fleet", "MAX_INSTANCES=%d written to %s", max, path);
}

static void *thread_main(void *arg)
{
    autoscale *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        bool stop = a->stopping;
        a->poked = false;
        pthread_mutex_unlock(&a->lock);
        if (stop) break;
        save_max(a);
        pass(a);
        pthread_mutex_lock(&a->lock);
        if (!a->stopping && !a->poked) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double t = ts.tv_sec + ts.tv_nsec / 1e9 + AUTOSCALE_PERIOD_S;
            ts.tv_sec = (time_t)t;
            ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
            pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
        pthread_mutex_unlock(&a->lock);
    }
    return NULL;
}

autoscale *autoscale_new(config *cfg, store *st, events *bus, vastctl *vc, fleet *f,
                         autoscale_backlog_fn backlog, void *ud)
{
    autoscale *a = xcalloc(1, sizeof *a);
    a->cfg = cfg;
    a->st = st;
    a->bus = bus;
    a->vc = vc;
    a->fleet = f;
    a->backlog = backlog;
    a->ud = ud;
    a->max = (int)config_int(cfg, CFG_MAX_INSTANCES);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    return a;
}

void autoscale_start(autoscale *a)
{
    if (!a || a->started) return;
    a->started = pthread_create(&a->th, NULL, thread_main, a) == 0;
    if (!a->started) LOG_E("fleet", "cannot start the autoscaling thread");
}

void autoscale_free(autoscale *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->started) pthread_join(a->th, NULL);
    if (a->have_offers) vast_offer_list_free(&a->offers);
    json_decref(a->plan);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
