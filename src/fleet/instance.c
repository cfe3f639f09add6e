#include "fleet/instance.h"

#include "core/log.h"
#include "core/util.h"
#include "fleet/keys.h"
#include "fleet/ledger.h"
#include "fleet/remote_setup.h"
#include "fleet/vast_status.h"
#include "store/instances.h"
#include "worker/worker_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ small helpers */

/* 1 found, 0 none, -1 error */
static int row_load(store *st, long long id, row *r)
{
    instance_row x;
    int found = instances_get(st, id, &x);
    memset(r, 0, sizeof *r);
    if (found <= 0) return found;
    r->id = x.id;
    snprintf(r->vid, sizeof r->vid, "%s", x.vast_id);
    snprintf(r->state, sizeof r->state, "%s", x.state);
    snprintf(r->label, sizeof r->label, "%s", x.label);
    snprintf(r->ssh_host, sizeof r->ssh_host, "%s", x.ssh_host);
    r->ssh_port = x.ssh_port;
    r->deadline = x.deadline_at;
    r->attempts = x.attempts;
    r->key_attached = x.has_ssh_key_id;
    r->percent = x.percent;
    snprintf(r->stage, sizeof r->stage, "%s", x.stage);
    return 1;
}

bool inst_final_state(const char *s)
{
    return !strcmp(s, "failed") || !strcmp(s, "destroying") || !strcmp(s, "destroyed") ||
           !strcmp(s, "orphan");
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

bool inst_should_stop(inst *in)
{
    fleet *f = in->f;
    pthread_mutex_lock(&f->lock);
    bool s = in->stop || f->stopping;
    pthread_mutex_unlock(&f->lock);
    return s;
}

/* Wait up to s seconds; returns early on stop or recheck. */
void inst_wait(inst *in, double s)
{
    fleet *f = in->f;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)s;
    ts.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&f->lock);
    while (!in->stop && !f->stopping && !in->recheck)
        if (pthread_cond_timedwait(&f->cond, &f->lock, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&f->lock);
}

/* ------------------------------------------------------------------ state and events */

static void publish(inst *in, int persist)
{
    fleet_publish_state(in->f, in->vid, persist);
}

static void snapshot(inst *in, const char *state, int pct, const char *stage, const char *error)
{
    fleet *f = in->f;
    pthread_mutex_lock(&f->lock);
    snprintf(in->state, sizeof in->state, "%s", state);
    in->percent = pct;
    snprintf(in->stage, sizeof in->stage, "%s", stage);
    snprintf(in->error, sizeof in->error, "%s", error ? error : "");
    pthread_mutex_unlock(&f->lock);
}

/* Move the row to state (unless it is being destroyed: then the thread stops). */
void inst_set_state(inst *in, const char *state, int pct, const char *stage, const char *error)
{
    fleet *f = in->f;
    pthread_mutex_lock(&f->lock); /* fleet_forget writes them from other threads */
    bool changed_state = strcmp(in->state, state) != 0;
    bool same = !changed_state && in->percent == pct && !strcmp(in->stage, stage) && !error;
    pthread_mutex_unlock(&f->lock);
    if (same) return;
    int n = instances_set_state(f->st, in->row, state, pct, stage, error, now_wall());
    if (n == 0) {
        pthread_mutex_lock(&f->lock);
        in->stop = true;
        pthread_mutex_unlock(&f->lock);
        return;
    }
    snapshot(in, state, pct, stage, error);
    if (changed_state)
        LOG_I("fleet", "instance %s: %s (%d%%, %s)", in->vid, state, pct, stage);
    publish(in, changed_state);
}

static void set_deadline(inst *in, double at)
{
    instances_set_deadline(in->f->st, in->row, at);
}

void inst_fail(inst *in, const char *fmt, ...)
{
    char why[400], msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "%s. The instance is still rented (not destroyed automatically): "
             "destroy it from the UI or with POST /api/vast/destroy/%s", why, in->vid);
    LOG_W("fleet", "instance %s failed: %s", in->vid, why);
    pthread_mutex_lock(&in->f->lock);
    int pct = in->percent;
    pthread_mutex_unlock(&in->f->lock);
    inst_set_state(in, "failed", pct, "failed: still rented, destroy it", msg);
    instances_set_deadline(in->f->st, in->row, 0);
}

static void mark_gone(inst *in)
{
    fleet *f = in->f;
    LOG_W("fleet", "instance %s no longer exists on Vast.ai", in->vid);
    vastctl_instance_gone(f->vc, in->vid, "gone", NULL);
    snapshot(in, "destroyed", in->percent, "gone from Vast.ai", NULL);
    publish(in, 1);
    pthread_mutex_lock(&f->lock);
    in->stop = true;
    pthread_mutex_unlock(&f->lock);
}

/* setup lines: kept in a ring, persisted as setup_log */
void inst_log_persist(inst *in)
{
    buf b;
    buf_init(&b, 0);
    for (int i = 0; i < in->nlines; i++) {
        if (buf_append(&b, in->lines[i], strlen(in->lines[i])) != 0 || buf_append(&b, "\n", 1) != 0)
            break;
    }
    instances_set_setup_log(in->f->st, in->row, b.data ? b.data : "");
    buf_release(&b);
}

void inst_log_line(inst *in, const char *line)
{
    if (in->nlines == LOG_KEEP) {
        free(in->lines[0]);
        memmove(in->lines, in->lines + 1, sizeof in->lines[0] * (LOG_KEEP - 1));
        in->nlines--;
    }
    size_t n = strlen(line);
    in->lines[in->nlines++] = xstrndup(line, n > 1000 ? 1000 : n);
    LOG_D("fleet", "instance %s setup: %s", in->vid, line);
}

static void log_clear(inst *in)
{
    for (int i = 0; i < in->nlines; i++) free(in->lines[i]);
    in->nlines = 0;
}

/* ------------------------------------------------------------------ Vast checks */

/* Ask Vast about the instance. 1 fine (vi filled if given), 0 gone or failed (handled),
 * -1 cannot tell now. */
int inst_vast_check(inst *in, vast_instance *vi_out)
{
    long long id = strtoll(in->vid, NULL, 10);
    vast_instance vi;
    vast_error e;
    in->last_vast_check = now_mono();
    if (vast_show_instance(in->f->client, id, &vi, &e) != 0) {
        if (e.kind == VAST_ERR_NOT_FOUND) {
            mark_gone(in);
            return 0;
        }
        LOG_D("fleet", "instance %s: cannot check Vast.ai: %s", in->vid, e.message);
        return -1;
    }
    char why[400];
    if (vast_status_classify(&vi, why, sizeof why) == VAST_STATUS_FAILED) {
        vast_instance_clear(&vi);
        inst_fail(in, "%s", why);
        return 0;
    }
    if (vi_out) *vi_out = vi;
    else vast_instance_clear(&vi);
    return 1;
}

/* ------------------------------------------------------------------ SSH */

void inst_ssh_drop(inst *in)
{
    if (in->ssh) sshc_close(in->ssh);
    in->ssh = NULL;
}

static void enter_ssh_wait(inst *in, const char *why)
{
    inst_ssh_drop(in);
    set_deadline(in, now_wall() + in->f->ssh_wait_s);
    if (why) inst_log_line(in, why);
    inst_set_state(in, "ssh_wait", 30, "waiting for SSH", NULL);
}

/* A session for install/start steps: 0 ok; -1 handled (state changed or stopping). */
int inst_ensure_ssh(inst *in, row *r)
{
    if (in->ssh) return 0;
    sshc_target t;
    char alias[48], err[512];
    keys_target(in, r, &t, alias, sizeof alias);
    enum sshc_err k;
    double end = now_mono() + 20;
    while (!inst_should_stop(in)) {
        in->ssh = sshc_connect(&t, &k, err, sizeof err);
        if (in->ssh) return 0;
        if (k == SSHC_ERR_HOSTKEY) {
            inst_fail(in, "SSH refused: %s", err);
            return -1;
        }
        if (now_mono() > end) break;
        inst_wait(in, 1);
    }
    if (inst_should_stop(in)) return -1;
    if (inst_vast_check(in, NULL) == 0) return -1;
    char line[600];
    snprintf(line, sizeof line, "SSH lost (%s): waiting for it again", err);
    enter_ssh_wait(in, line);
    return -1;
}

/* ------------------------------------------------------------------ steps */

static void step_loading(inst *in, row *r, double *delay)
{
    fleet *f = in->f;
    if (r->deadline <= 0) {
        r->deadline = now_wall() + LOADING_TIMEOUT_S;
        set_deadline(in, r->deadline);
    }
    if (!r->key_attached) keys_attach(in, r);
    vast_instance vi;
    int rc = inst_vast_check(in, &vi);
    if (rc == 0) return;
    if (rc > 0) {
        bool running = !strcmp(vi.actual_status, "running");
        if (running && vi.ssh_port > 0 && vi.ssh_host[0]) {
            double t = now_wall();
            instance_facts fx = {
                .gpu_name = vi.gpu_name, .num_gpus = vi.num_gpus, .dph_total = vi.dph_total,
                .dph_base = vi.dph_base, .storage_dph = vi.storage_total_cost,
                .ssh_host = vi.ssh_host, .ssh_port = vi.ssh_port, .running_at = t,
                .machine_id = vi.machine_id,
            };
            instances_observe(f->st, in->row, NULL, &fx, t);
            /* Vast bills the GPU since it started running (its uptime says when) */
            ledger_sync(f->st, in->row, true, true, vi.dph_base > 0 ? vi.dph_base : -1,
                        vi.storage_total_cost > 0 ? vi.storage_total_cost : -1,
                        ledger_running_since(t, ledger_uptime_s(vi.raw), vi.start_date));
            vast_instance_clear(&vi);
            if (!r->key_attached) keys_attach(in, r);
            set_deadline(in, now_wall() + f->ssh_wait_s);
            inst_set_state(in, "ssh_wait", 30, "waiting for SSH", NULL);
            *delay = 1;
            return;
        }
        if (!vi.actual_status[0]) inst_set_state(in, "loading", 10, "creating instance", NULL);
        else inst_set_state(in, "loading", 20, "loading image", NULL);
        vast_instance_clear(&vi);
    }
    if (now_wall() > r->deadline) {
        inst_fail(in, "instance %s did not reach running within %.0f minutes", in->vid,
             LOADING_TIMEOUT_S / 60);
        return;
    }
    inst_wait(in, *delay);
    *delay = *delay * 1.5 > 10 ? 10 : *delay * 1.5;
}

static void step_ssh_wait(inst *in, row *r)
{
    fleet *f = in->f;
    double deadline = r->deadline;
    if (deadline <= 0) {
        deadline = now_wall() + f->ssh_wait_s;
        set_deadline(in, deadline);
    } else if (in->resumed && deadline < now_wall() + 20) {
        deadline = now_wall() + (f->ssh_wait_s < 20 ? f->ssh_wait_s : 20); /* one more try */
        set_deadline(in, deadline);
    }
    in->resumed = false;
    if (!r->ssh_host[0] || r->ssh_port <= 0) { /* adopted without an address yet */
        inst_set_state(in, "loading", 20, "waiting for the instance's SSH address", NULL);
        return;
    }
    sshc_target t;
    char alias[48], err[512] = "";
    keys_target(in, r, &t, alias, sizeof alias);
    double delay = 0.25, last_key = now_mono();
    int attempt = 0;
    in->last_vast_check = now_mono();
    while (!inst_should_stop(in)) {
        double left = deadline - now_wall();
        if (left <= 0) break;
        t.connect_timeout_s = left < 5 ? (int)(left + 0.999) : 5;
        enum sshc_err k;
        attempt++;
        in->ssh = sshc_connect(&t, &k, err, sizeof err);
        if (in->ssh) {
            char line[300];
            snprintf(line, sizeof line, "SSH ready at %s:%d after %d attempt%s", r->ssh_host,
                     r->ssh_port, attempt, attempt == 1 ? "" : "s");
            inst_log_line(in, line);
            instances_set_deadline(f->st, in->row, now_wall() + INSTALL_TIMEOUT_S);
            inst_set_state(in, "installing", 60, "installing", NULL);
            return;
        }
        if (k == SSHC_ERR_HOSTKEY) {
            inst_fail(in, "SSH refused: %s", err);
            return;
        }
        if (k == SSHC_ERR_AUTH && now_mono() - last_key > 10) { /* keys may be attached late */
            keys_attach(in, r);
            last_key = now_mono();
        }
        if (now_mono() - in->last_vast_check > 5 && inst_vast_check(in, NULL) == 0) return;
        double l2 = deadline - now_wall();
        inst_wait(in, delay < l2 ? delay : (l2 > 0 ? l2 : 0));
        delay = delay * 2 > 2 ? 2 : delay * 2;
    }
    if (inst_should_stop(in)) return;
    if (inst_vast_check(in, NULL) == 0) return;
    inst_fail(in, "instance %s did not answer SSH at %s:%d within %.1f minutes (last error: %s)",
         in->vid, r->ssh_host, r->ssh_port, f->ssh_wait_s / 60, err[0] ? err : "none");
}

static void set_worker(inst *in, tunnel *tn, json_t *worker)
{
    fleet *f = in->f;
    pthread_mutex_lock(&f->lock);
    tunnel *old = in->tn;
    json_t *oldw = in->worker;
    in->tn = tn;
    in->worker = worker;
    pthread_mutex_unlock(&f->lock);
    if (old && old != tn) tunnel_stop(old);
    if (oldw && oldw != worker) json_decref(oldw);
}

static void step_start(inst *in, row *r)
{
    fleet *f = in->f;
    set_worker(in, NULL, NULL);
    if (inst_ensure_ssh(in, r) != 0) return;
    char err[512] = "";
    if (rsetup_start_worker(in, err, sizeof err) != 0) {
        inst_ssh_drop(in);
        if (inst_should_stop(in)) return;
        if (inst_vast_check(in, NULL) == 0) return;
        instances_add_attempt(f->st, in->row);
        if (r->attempts + 1 >= MAX_ATTEMPTS) {
            inst_fail(in, "the worker on instance %s did not start: %s", in->vid, err);
            return;
        }
        /* maybe something is missing: run the (idempotent) setup again */
        inst_set_state(in, "installing", 60, "installing (again)", NULL);
        return;
    }
    inst_ssh_drop(in);
    sshc_target t;
    char alias[48];
    keys_target(in, r, &t, alias, sizeof alias);
    t.connect_timeout_s = 10;
    tunnel *tn = tunnel_start(&t, f->worker_port, "/health", TUNNEL_CHECK_S, err, sizeof err);
    if (!tn) {
        if (strstr(err, "host key")) { inst_fail(in, "SSH refused: %s", err); return; }
        if (inst_vast_check(in, NULL) == 0) return;
        char line[600];
        snprintf(line, sizeof line, "cannot open the tunnel: %s", err);
        enter_ssh_wait(in, line);
        return;
    }
    tunnel_status ts;
    double end = now_mono() + 30;
    for (;;) {
        tunnel_get_status(tn, &ts);
        if (ts.state == TUNNEL_UP || now_mono() > end || inst_should_stop(in)) break;
        sleep_s(0.1);
    }
    if (ts.state != TUNNEL_UP) {
        tunnel_stop(tn);
        if (inst_should_stop(in)) return;
        instances_add_attempt(f->st, in->row);
        if (r->attempts + 1 >= MAX_ATTEMPTS) {
            inst_fail(in, "the worker on instance %s does not answer /health through the tunnel: %s",
                 in->vid, ts.last_error);
            return;
        }
        inst_set_state(in, "starting_worker", 95, "starting worker (retrying)", NULL);
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ts.local_port);
    json_t *h = NULL;
    json_t *w = NULL;
    if (worker_client_health(url, &h, err, sizeof err) == 0) {
        /* slots and models: what the dispatcher reserves (fleet_ready_worker) and what
         * /v1/models lists (fleet_worker_models) */
        w = json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?}", "engine", json_object_get(h, "engine"),
                      "model", json_object_get(h, "model"), "gpu",
                      json_object_get(h, "gpu_name"), "slots", json_object_get(h, "slots"),
                      "models", json_object_get(h, "models"));
        if (w && json_is_null(json_object_get(w, "gpu")))
            json_object_set(w, "gpu", json_object_get(h, "gpu"));
        json_decref(h);
    }
    if (!w) w = json_pack("{s:n,s:n,s:n}", "engine", "model", "gpu");
    set_worker(in, tn, w);
    instances_set_worker(f->st, in->row, f->worker_port);
    inst_set_state(in, "ready", 100, "ready", NULL);
    const char *eng = json_string_value(json_object_get(w, "engine"));
    LOG_I("fleet", "Vast.ai GPU available: Instance %s (worker %s through the SSH tunnel on "
          "127.0.0.1:%d)", in->vid, eng ? eng : "?", ts.local_port);
}

static void step_ready(inst *in, row *r)
{
    fleet *f = in->f;
    pthread_mutex_lock(&f->lock);
    tunnel *tn = in->tn;
    pthread_mutex_unlock(&f->lock);
    if (!tn) { /* resumed after a restart: reconnect (setup is a no-op when all is there) */
        inst_set_state(in, "starting_worker", 95, "reconnecting to the worker", NULL);
        return;
    }
    (void)r;
    double bad_since = 0;
    char last_tstate[24] = "up";
    while (!inst_should_stop(in)) {
        inst_wait(in, 1.0);
        if (inst_should_stop(in)) return;
        row cur;
        if (row_load(f->st, in->row, &cur) <= 0 || strcmp(cur.state, "ready") != 0) return;
        tunnel_status ts;
        tunnel_get_status(tn, &ts);
        if (strcmp(last_tstate, ts.state_name) != 0) {
            snprintf(last_tstate, sizeof last_tstate, "%s", ts.state_name);
            LOG_I("fleet", "instance %s: tunnel %s%s%s", in->vid, ts.state_name,
                  ts.last_error[0] ? ": " : "", ts.last_error);
            publish(in, 0);
        }
        if (ts.state == TUNNEL_RECONNECTING && strstr(ts.last_error, "host key")) {
            set_worker(in, NULL, NULL);
            inst_fail(in, "SSH refused: %s", ts.last_error);
            return;
        }
        if (ts.state == TUNNEL_UP) bad_since = 0;
        else if (bad_since == 0) bad_since = now_mono();
        char why[300] = "";
        pthread_mutex_lock(&f->lock);
        if (in->recheck) {
            snprintf(why, sizeof why, "%s", in->recheck_why);
            in->recheck = false;
        }
        pthread_mutex_unlock(&f->lock);
        if (!why[0] && bad_since > 0 && now_mono() - bad_since > READY_RECHECK_S)
            snprintf(why, sizeof why, "tunnel %s for %.0f s: %s", ts.state_name,
                     now_mono() - bad_since, ts.last_error);
        if (!why[0] && now_mono() - in->last_vast_check < READY_VAST_CHECK_S) continue;
        if (inst_vast_check(in, NULL) == 0) {
            set_worker(in, NULL, NULL);
            return;
        }
        if (!why[0]) continue;
        LOG_W("fleet", "instance %s: rechecking the worker (%s)", in->vid, why);
        char line[400];
        snprintf(line, sizeof line, "recheck: %s", why);
        inst_log_line(in, line);
        set_worker(in, NULL, NULL);
        inst_set_state(in, "starting_worker", 95, "rechecking the worker", NULL);
        return;
    }
}

/* ------------------------------------------------------------------ the thread */

void *inst_drive(void *arg)
{
    inst *in = arg;
    fleet *f = in->f;
    double delay = 1;
    while (!inst_should_stop(in)) {
        row r;
        if (row_load(f->st, in->row, &r) <= 0) break;
        if (inst_final_state(r.state)) {
            snapshot(in, r.state, r.percent, r.stage, NULL);
            break;
        }
        pthread_mutex_lock(&f->lock); /* fleet_forget writes it from other threads */
        bool fresh = !in->state[0];
        pthread_mutex_unlock(&f->lock);
        if (fresh) snapshot(in, r.state, r.percent, r.stage, NULL);
        if (!strcmp(r.state, "requested") || !strcmp(r.state, "creating") ||
            !strcmp(r.state, "loading"))
            step_loading(in, &r, &delay);
        else if (!strcmp(r.state, "ssh_wait")) step_ssh_wait(in, &r);
        else if (!strcmp(r.state, "installing")) rsetup_step_install(in, &r);
        else if (!strcmp(r.state, "starting_worker")) step_start(in, &r);
        else if (!strcmp(r.state, "ready")) step_ready(in, &r);
        else {
            LOG_W("fleet", "instance %s: unknown state '%s'", in->vid, r.state);
            break;
        }
    }
    inst_ssh_drop(in);
    set_worker(in, NULL, NULL);
    log_clear(in);
    pthread_mutex_lock(&f->lock);
    in->finished = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}
