#include "fleet/provision.h"

#include "core/log.h"
#include "core/util.h"
#include "fleet/adopt.h"
#include "fleet/fleet_int.h"
#include "fleet/instance.h"
#include "fleet/keys.h"
#include "store/instances.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef GS_SRCDIR
#define GS_SRCDIR "."
#endif

/* ------------------------------------------------------------------ supervisor */

/* f->lock held */
static inst *find_row(fleet *f, long long row_id)
{
    for (inst *in = f->insts; in; in = in->next)
        if (in->row == row_id) return in;
    return NULL;
}

static inst *find_vid(fleet *f, const char *vid)
{
    for (inst *in = f->insts; in; in = in->next)
        if (!strcmp(in->vid, vid)) return in;
    return NULL;
}

static void inst_free(inst *in)
{
    json_decref(in->worker);
    free(in);
}

static void spawn_rows(fleet *f)
{
    instance_row *rows;
    size_t n;
    if (instances_list(f->st, INSTANCES_ACTIVE, 0, 64, &rows, &n) != 0) return;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < n && !f->stopping; i++) {
        inst *in = find_row(f, rows[i].id);
        if (in && !in->finished) continue;
        if (in) { /* finished earlier (failed), now active again: restart its thread */
            if (in->has_thread) pthread_join(in->th, NULL);
            in->has_thread = in->finished = in->stop = false;
        } else {
            in = xcalloc(1, sizeof *in);
            in->f = f;
            in->row = rows[i].id;
            snprintf(in->vid, sizeof in->vid, "%s", rows[i].vast_id);
            in->next = f->insts;
            f->insts = in;
        }
        in->resumed = true;
        in->state[0] = '\0';
        if (pthread_create(&in->th, NULL, inst_drive, in) == 0) in->has_thread = true;
        else in->finished = true;
    }
    /* reap threads of destroyed instances */
    for (inst **pp = &f->insts; *pp;) {
        inst *in = *pp;
        if (in->finished && !strcmp(in->state, "destroyed")) {
            *pp = in->next;
            if (in->has_thread) pthread_join(in->th, NULL);
            inst_free(in);
            continue;
        }
        pp = &in->next;
    }
    pthread_mutex_unlock(&f->lock);
    free(rows);
}



static void *supervisor(void *arg)
{
    fleet *f = arg;
    bool connected = false;
    double next_try = 0;
    pthread_mutex_lock(&f->lock);
    while (!f->stopping) {
        f->poked = false;
        pthread_mutex_unlock(&f->lock);
        if (now_mono() >= next_try) {
            keys_register_account(f);
            if (!connected) connected = adopt_current_instance(f) == 1;
            next_try = now_mono() + 10;
        }
        spawn_rows(f);
        pthread_mutex_lock(&f->lock);
        if (f->stopping) break;
        if (!f->poked) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 2;
            pthread_cond_timedwait(&f->cond, &f->lock, &ts);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* ------------------------------------------------------------------ public */

fleet *fleet_new(config *cfg, store *st, events *bus, vastctl *vc)
{
    fleet *f = xcalloc(1, sizeof *f);
    f->cfg = cfg;
    f->st = st;
    f->bus = bus;
    f->vc = vc;
    char err[256];
    f->client = vastctl_client_from_config(cfg, err, sizeof err);
    if (!f->client) f->client = vast_client_new(NULL, config_str(cfg, CFG_VAST_API_KEY));
    vast_client_set_timeouts(f->client, 5000, 20000);
    vast_client_set_retry(f->client, 4, 300, 4000);
    f->data_dir = xstrdup(config_str(cfg, CFG_DATA_DIR));
    f->key_path = sshc_app_key_path(f->data_dir);
    f->known_hosts = xasprintf("%s/ssh/known_hosts", f->data_dir);
    double m = config_num(cfg, CFG_SSH_WAIT_MINUTES);
    f->ssh_wait_s = m > 0 ? m * 60 : 180;
    f->worker_port = (int)config_int(cfg, CFG_WORKER_PORT);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    f->exe = xstrdup(exe);
    const char *sd = getenv("GS_SRCDIR");
    f->srcdir = xstrdup(sd && *sd ? sd : GS_SRCDIR);
    if (fleet_find_worker_payload(f->exe, f->srcdir, &f->payload, f->payload_err,
                                  sizeof f->payload_err) != 0)
        LOG_W("fleet", "%s; instances cannot be set up", f->payload_err);
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    return f;
}

void fleet_start(fleet *f)
{
    if (!f || f->started) return;
    char err[256];
    f->pubkey = sshc_app_key(f->data_dir, err, sizeof err);
    if (!f->pubkey) {
        LOG_E("fleet", "cannot create gpuscribe's SSH key: %s; instances cannot be set up", err);
        return;
    }
    if (pthread_create(&f->sup, NULL, supervisor, f) == 0) f->started = true;
    else LOG_E("fleet", "cannot start the provisioning thread");
}

void fleet_free(fleet *f)
{
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->started) pthread_join(f->sup, NULL);
    for (inst *in = f->insts; in; in = in->next)
        if (in->has_thread) pthread_join(in->th, NULL);
    while (f->insts) {
        inst *in = f->insts;
        f->insts = in->next;
        if (in->tn) tunnel_stop(in->tn);
        inst_free(in);
    }
    vast_client_free(f->client);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f->data_dir);
    free(f->pubkey);
    free(f->key_path);
    free(f->known_hosts);
    free(f->exe);
    free(f->srcdir);
    fleet_payload_release(&f->payload);
    free(f);
}

void fleet_poke(fleet *f)
{
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    f->poked = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

void fleet_forget(fleet *f, long long vast_id)
{
    if (!f) return;
    char vid[32];
    snprintf(vid, sizeof vid, "%lld", vast_id);
    pthread_mutex_lock(&f->lock);
    inst *in = find_vid(f, vid);
    if (in) {
        in->stop = true;
        snprintf(in->state, sizeof in->state, "destroyed");
    }
    f->poked = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    keys_forget_host(f, vid);
}

/* the slots a ready worker advertised in /health (1 when it does not say). Lock held. */
static int worker_slots(const inst *in)
{
    json_int_t n = in->worker ? json_integer_value(json_object_get(in->worker, "slots")) : 0;
    return n > 0 ? (int)n : 1;
}

int fleet_ready_worker(fleet *f, char *url, size_t urllen, long long *row_id, int reserve)
{
    if (!f) return -1;
    char cur[32];
    vastctl_current_instance(f->vc, cur, sizeof cur);
    int rc = -1;
    pthread_mutex_lock(&f->lock);
    for (int pass = 0; pass < 2 && rc != 0; pass++) {
        for (inst *in = f->insts; in; in = in->next) {
            if (!in->tn || strcmp(in->state, "ready") != 0) continue;
            if (pass == 0 && strcmp(in->vid, cur) != 0) continue;
            if (reserve && in->inflight >= worker_slots(in)) continue;
            tunnel_status ts;
            tunnel_get_status(in->tn, &ts);
            if (ts.state != TUNNEL_UP) continue;
            snprintf(url, urllen, "http://127.0.0.1:%d", ts.local_port);
            if (row_id) *row_id = in->row;
            if (reserve) in->inflight++;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

json_t *fleet_worker_models(fleet *f)
{
    json_t *all = json_array();
    if (!f) return all;
    pthread_mutex_lock(&f->lock);
    for (inst *in = f->insts; in; in = in->next) {
        if (!in->worker || strcmp(in->state, "ready") != 0) continue;
        size_t i, k;
        json_t *v, *w;
        json_array_foreach(json_object_get(in->worker, "models"), i, v) {
            int seen = 0;
            json_array_foreach(all, k, w) seen |= json_equal(v, w);
            if (!seen && json_is_string(v)) json_array_append(all, v);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return all;
}

void fleet_release_worker(fleet *f, long long row_id)
{
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    for (inst *in = f->insts; in; in = in->next)
        if (in->row == row_id && in->inflight > 0) in->inflight--;
    pthread_mutex_unlock(&f->lock);
}

int fleet_inflight(fleet *f, long long row_id, int *slots)
{
    int n = 0, sl = 0;
    if (f) {
        pthread_mutex_lock(&f->lock);
        inst *in = find_row(f, row_id);
        if (in) {
            n = in->inflight;
            sl = in->worker ? worker_slots(in) : 0;
        }
        pthread_mutex_unlock(&f->lock);
    }
    if (slots) *slots = sl;
    return n;
}

int fleet_gpu_pending(fleet *f)
{
    if (!f) return 0;
    /* the store, not the loaded threads: right after a restart the rows are known before
     * their threads and tunnels are back */
    int n = instances_count(f->st, INSTANCES_PROVISIONING, 0);
    return n > 0;
}

void fleet_report_failure(fleet *f, long long row_id, const char *why)
{
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    inst *in = find_row(f, row_id);
    if (in && !strcmp(in->state, "ready")) {
        in->recheck = true;
        snprintf(in->recheck_why, sizeof in->recheck_why, "%s", why ? why : "worker failed");
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
    if (in) LOG_W("fleet", "row %lld: the dispatcher reports a worker failure (%s); rechecking",
                  row_id, why ? why : "");
}

bool fleet_gpu_status(fleet *f, char *vid, size_t vidlen, char *msg, size_t msglen)
{
    vid[0] = msg[0] = '\0';
    if (!f) return false;
    char cur[32];
    vastctl_current_instance(f->vc, cur, sizeof cur);
    bool ready = false;
    inst *prov = NULL;
    if (!cur[0]) return false;
    pthread_mutex_lock(&f->lock);
    {
        for (inst *in = f->insts; in; in = in->next) {
            if (strcmp(in->vid, cur) != 0) continue;
            if (in->tn && !strcmp(in->state, "ready")) {
                tunnel_status ts;
                tunnel_get_status(in->tn, &ts);
                if (ts.state == TUNNEL_UP) {
                    snprintf(vid, vidlen, "%s", in->vid);
                    snprintf(msg, msglen, "Vast.ai GPU available: Instance %s", in->vid);
                    ready = true;
                    break;
                }
            }
            if (!prov && in->state[0] && strcmp(in->state, "destroyed") != 0) prov = in;
        }
    }
    if (!ready && prov) {
        snprintf(vid, vidlen, "%s", prov->vid);
        if (!strcmp(prov->state, "failed"))
            snprintf(msg, msglen, "Vast.ai instance %s failed: %.300s", prov->vid, prov->error);
        else if (!strcmp(prov->state, "ready"))
            snprintf(msg, msglen, "Vast.ai instance %s: worker tunnel reconnecting", prov->vid);
        else
            snprintf(msg, msglen, "Vast.ai instance %s: %s (%d%%)", prov->vid, prov->stage,
                     prov->percent);
    }
    pthread_mutex_unlock(&f->lock);
    return ready;
}

int fleet_instance_view_get(fleet *f, const char *vast_id, fleet_instance_view *out)
{
    memset(out, 0, sizeof *out);
    if (!f || instances_by_vast_id(f->st, vast_id, &out->row) != 1) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    out->setup_log = instances_setup_log(f->st, out->row.id);
    pthread_mutex_lock(&f->lock);
    inst *in = find_vid(f, vast_id);
    if (in && in->tn) {
        out->has_tunnel = true;
        tunnel_get_status(in->tn, &out->tunnel);
        if (in->worker) out->worker = json_deep_copy(in->worker);
    }
    pthread_mutex_unlock(&f->lock);
    return 1;
}

void fleet_instance_view_release(fleet_instance_view *v)
{
    free(v->setup_log);
    json_decref(v->worker);
    memset(v, 0, sizeof *v);
}

void fleet_json_decorate(fleet *f, long long row_id, json_t *j)
{
    if (!f || !j) return;
    pthread_mutex_lock(&f->lock);
    fleet_json_hook hook = f->json_hook;
    void *hud = f->json_hook_ud;
    pthread_mutex_unlock(&f->lock);
    if (hook) hook(hud, row_id, j);
}

void fleet_set_view(fleet *f, fleet_view_fn view)
{
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    f->view = view;
    pthread_mutex_unlock(&f->lock);
}

void fleet_set_json_hook(fleet *f, fleet_json_hook hook, void *ud)
{
    if (!f) return;
    pthread_mutex_lock(&f->lock);
    f->json_hook = hook;
    f->json_hook_ud = ud;
    pthread_mutex_unlock(&f->lock);
}

bool fleet_worker_up(fleet *f, long long row_id)
{
    if (!f) return false;
    bool up = false;
    pthread_mutex_lock(&f->lock);
    inst *in = find_row(f, row_id);
    if (in && in->tn && !strcmp(in->state, "ready")) {
        tunnel_status ts;
        tunnel_get_status(in->tn, &ts);
        up = ts.state == TUNNEL_UP;
    }
    pthread_mutex_unlock(&f->lock);
    return up;
}

void fleet_publish(fleet *f, const char *vast_id)
{
    fleet_publish_state(f, vast_id, 0);
}

void fleet_publish_state(fleet *f, const char *vast_id, int persist)
{
    if (!f || !f->bus) return;
    pthread_mutex_lock(&f->lock);
    fleet_view_fn view = f->view;
    pthread_mutex_unlock(&f->lock);
    json_t *j = view ? view(f, vast_id) : NULL;
    if (j) events_publish(f->bus, "instance.state", j, persist);
}
