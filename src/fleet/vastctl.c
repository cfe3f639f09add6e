/* vastctl.c: errors, the client from config, VAST_INSTANCE_ID, the poller, lifecycle (see
 * vastctl_int.h for how vastctl is laid out). */
#include "fleet/vastctl_int.h"

#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "store/instances.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char vastctl_no_key_msg[] =
    "no Vast.ai API key configured: set VAST_API_KEY in the .env file or the environment, "
    "or log in with the vast CLI (`vastai set api-key KEY` writes ~/.config/vastai/vast_api_key), "
    "then restart gpuscribe";

const char *vastctl_no_key_message(void) { return vastctl_no_key_msg; }

/* ---- errors */

int vastctl_http_status(vast_err_kind kind)
{
    return gs_err_http_status(vast_err_gs(kind));
}

void vastctl_describe(const vast_error *e, char *out, size_t outlen)
{
    const char *m = e->message;
    switch (e->kind) {
    case VAST_ERR_AUTH:
        snprintf(out, outlen,
                 "Vast.ai rejected the API key (%s). Check VAST_API_KEY in the .env file or the "
                 "environment, or the vast CLI's key file (~/.config/vastai/vast_api_key)", m);
        break;
    case VAST_ERR_RATE_LIMIT:
        snprintf(out, outlen, "Vast.ai is rate-limiting requests (%s); try again in a few seconds", m);
        break;
    case VAST_ERR_NETWORK: snprintf(out, outlen, "Vast.ai could not be reached: %s", m); break;
    case VAST_ERR_TIMEOUT: snprintf(out, outlen, "Vast.ai did not answer in time: %s", m); break;
    case VAST_ERR_SERVER: snprintf(out, outlen, "Vast.ai server error: %s", m); break;
    case VAST_ERR_OFFER_TAKEN:
        snprintf(out, outlen,
                 "This offer is no longer available (%s): it was rented by someone else or "
                 "withdrawn. Search again and pick another offer", m);
        break;
    case VAST_ERR_NO_CREDIT: snprintf(out, outlen, "Vast.ai: insufficient credit (%s)", m); break;
    case VAST_ERR_PARSE: snprintf(out, outlen, "unexpected answer from Vast.ai: %s", m); break;
    default: snprintf(out, outlen, "Vast.ai: %s", m); break;
    }
}

void vastctl_res_set(vastctl_result *res, int status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vastctl_res_set(vastctl_result *res, int status, const char *kind, const char *fmt, ...)
{
    res->http_status = status;
    snprintf(res->kind, sizeof res->kind, "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

void vastctl_res_vast_err(vastctl_result *res, const vast_error *e)
{
    res->http_status = vastctl_http_status(e->kind);
    snprintf(res->kind, sizeof res->kind, "%s", vast_err_kind_name(e->kind));
    vastctl_describe(e, res->message, sizeof res->message);
}

/* ---- client from config */

vast_client *vastctl_client_from_config(const config *cfg, char *err, size_t errlen)
{
    const char *url = config_str(cfg, CFG_VAST_URL);
    vast_client *c = vast_client_new(url, config_str(cfg, CFG_VAST_API_KEY));
    if (!c) snprintf(err, errlen, "VAST_URL: invalid URL '%s' (expected http:// or https://)",
                     url ? url : "");
    long total = (long)config_int(cfg, CFG_VAST_TIMEOUT_SECONDS) * 1000;
    if (c) vast_client_set_timeouts(c, total < 10000 ? total : 10000, total);
    return c;
}

void vastctl_create_params(const config *cfg, const char *label, vast_create *out)
{
    memset(out, 0, sizeof *out);
    out->image = config_str(cfg, CFG_VAST_IMAGE);
    out->disk_gb = (double)config_int(cfg, CFG_VAST_DISK_GB);
    out->label = label;
    out->runtype = "ssh_proxy";
}

/* ---- VAST_INSTANCE_ID */

/* v->lock held: the new VAST_INSTANCE_ID, in memory; save_env writes the .env file after
 * the lock is let go (no file I/O under v->lock, which others take under the store lock) */
static void set_instance_locked(vastctl *v, const char *id)
{
    if (strcmp(v->cur_id, id ? id : "") == 0) return;
    config_set(v->cfg, CFG_VAST_INSTANCE_ID, id);
    snprintf(v->cur_id, sizeof v->cur_id, "%s", id ? id : "");
    v->env_gen++;
    v->cached_running = false;
    v->cached_id[0] = '\0';
    v->poked = true;
    pthread_cond_signal(&v->cond);
}

/* Writes the newest VAST_INSTANCE_ID to the .env file if it has not been written yet.
 * v->env_lock serializes the writers (the newest value is the last one written); it is
 * only ever taken with no other lock held, and v->lock is taken under it only briefly. */
static void save_env(vastctl *v)
{
    pthread_mutex_lock(&v->env_lock);
    pthread_mutex_lock(&v->lock);
    unsigned gen = v->env_gen;
    char id[sizeof v->cur_id];
    snprintf(id, sizeof id, "%s", v->cur_id);
    pthread_mutex_unlock(&v->lock);
    if (gen != v->env_saved) {
        char err[1024];
        const char *path = config_env_path(v->cfg);
        /* a refusal (not a regular file, unwritable) only means the id is not persisted:
         * the server goes on with it in memory */
        if (config_env_set(path, "VAST_INSTANCE_ID", id[0] ? id : NULL, err, sizeof err) != 0)
            LOG_W("vast", "%s; VAST_INSTANCE_ID%s%s is not %s", err, id[0] ? "=" : "", id,
                  id[0] ? "saved" : "removed");
        else if (id[0])
            LOG_I("vast", "VAST_INSTANCE_ID=%s written to %s", id, path);
        else
            LOG_I("vast", "VAST_INSTANCE_ID removed from %s", path);
        v->env_saved = gen;
    }
    pthread_mutex_unlock(&v->env_lock);
}

void vastctl_set_instance(vastctl *v, const char *id, const char *only_if)
{
    pthread_mutex_lock(&v->lock);
    if (id || !only_if || strcmp(v->cur_id, only_if) == 0) set_instance_locked(v, id);
    pthread_mutex_unlock(&v->lock);
    save_env(v);
}

void vastctl_current_instance(vastctl *v, char *id, size_t idlen)
{
    pthread_mutex_lock(&v->lock);
    snprintf(id, idlen, "%s", v->cur_id);
    pthread_mutex_unlock(&v->lock);
}

bool vastctl_running_instance(vastctl *v, char *id, size_t idlen)
{
    pthread_mutex_lock(&v->lock);
    bool run = v->cached_running && v->cur_id[0] && strcmp(v->cached_id, v->cur_id) == 0;
    if (run) snprintf(id, idlen, "%s", v->cur_id);
    /* lazily fresher than the timer: someone is looking, so re-check soon (never waits) */
    if (v->cur_id[0] && !v->poked && now_mono() - v->checked_at > VASTCTL_STALE_S) {
        v->poked = true;
        pthread_cond_signal(&v->cond);
    }
    pthread_mutex_unlock(&v->lock);
    return run;
}

void vastctl_poke(vastctl *v)
{
    pthread_mutex_lock(&v->lock);
    v->poked = true;
    pthread_cond_signal(&v->cond);
    pthread_mutex_unlock(&v->lock);
}

vast_client *vastctl_client(vastctl *v) { return v->client; }
bool vastctl_has_key(const vastctl *v) { return v->has_key; }

/* ---- the poller */

static int parse_id(const char *s, long long *out)
{
    long l;
    if (!s || !*s || parse_long(s, &l) != 0 || l <= 0) return -1;
    *out = l;
    return 0;
}

/* v->lock held: log `note` when it differs from the last one */
static void note_locked(vastctl *v, int level, const char *note)
{
    if (strcmp(v->last_note, note) == 0) return;
    snprintf(v->last_note, sizeof v->last_note, "%s", note);
    if (level == LOG_WARN) LOG_W("vast", "%s", note);
    else LOG_I("vast", "%s", note);
}

static void store_seen(vastctl *v, const vast_instance *in, const char *id)
{
    double t = now_wall();
    instance_facts f = {
        .gpu_name = in->gpu_name, .num_gpus = in->num_gpus, .gpu_ram_gb = in->gpu_ram_gb,
        .dph_total = in->dph_total, .dph_base = in->dph_base,
        .storage_dph = in->storage_total_cost, .ssh_host = in->ssh_host,
        .ssh_port = in->ssh_port,
        .running_at = strcmp(in->actual_status, "running") == 0 ? t : 0,
        .machine_id = in->machine_id,
    };
    instances_observe(v->st, 0, id, &f, t);
}


/* One check of VAST_INSTANCE_ID (no lock held). Returns the next delay in seconds. */
static double poll_once(vastctl *v, const char *id, double backoff)
{
    char note[400];
    long long n;
    if (!id[0]) return POLL_IDLE_S;
    if (!v->has_key) {
        snprintf(note, sizeof note, "VAST_INSTANCE_ID=%.31s is set but %s", id, vastctl_no_key_msg);
        pthread_mutex_lock(&v->lock);
        note_locked(v, LOG_WARN, note);
        pthread_mutex_unlock(&v->lock);
        return POLL_IDLE_S;
    }
    if (parse_id(id, &n) != 0) {
        snprintf(note, sizeof note, "VAST_INSTANCE_ID='%.31s' is not a Vast.ai instance id "
                 "(a positive integer); ignoring it", id);
        pthread_mutex_lock(&v->lock);
        note_locked(v, LOG_WARN, note);
        pthread_mutex_unlock(&v->lock);
        return POLL_IDLE_S;
    }
    vast_instance in;
    vast_error e;
    int rc = vast_show_instance(v->poll_client, n, &in, &e);
    double next = backoff;
    pthread_mutex_lock(&v->lock);
    bool same = strcmp(v->cur_id, id) == 0;  /* a boot or destroy may have changed it */
    v->checked_at = now_mono();
    if (!same) {
        pthread_mutex_unlock(&v->lock);
        if (rc == 0) vast_instance_clear(&in);
        return 0;
    }
    if (rc == 0) {
        bool running = strcmp(in.actual_status, "running") == 0;
        snprintf(v->cached_id, sizeof v->cached_id, "%s", id);
        v->cached_running = running;
        if (running) {
            snprintf(note, sizeof note, "Vast.ai instance %s is running", id);
            next = POLL_RUNNING_S;
        } else {
            snprintf(note, sizeof note, "Vast.ai instance %s is %s; waiting for it to run", id,
                     in.actual_status[0] ? in.actual_status : "being created");
        }
        note_locked(v, LOG_INFO, note);
        pthread_mutex_unlock(&v->lock);
        store_seen(v, &in, id);
        vast_instance_clear(&in);
        return next;
    }
    if (e.kind == VAST_ERR_NOT_FOUND) {
        LOG_W("vast", "Vast.ai instance %s no longer exists (destroyed outside gpuscribe, or "
              "expired); clearing VAST_INSTANCE_ID", id);
        set_instance_locked(v, NULL);
        v->last_note[0] = '\0';
        pthread_mutex_unlock(&v->lock);
        save_env(v);
        vastctl_instance_gone(v, id, "gone", NULL);
        return POLL_IDLE_S;
    }
    char d[640];
    vastctl_describe(&e, d, sizeof d);
    snprintf(note, sizeof note, "cannot check Vast.ai instance %s: %.150s", id, d);
    note_locked(v, LOG_WARN, note);
    pthread_mutex_unlock(&v->lock);
    return next;
}

static void *poller(void *arg)
{
    vastctl *v = arg;
    double backoff = POLL_MIN_S, due = 0, boots_due = 0;
    bool boots = v->nstale_boots > 0;
    pthread_mutex_lock(&v->lock);
    while (!v->stopping) {
        if (boots && now_mono() >= boots_due) {
            pthread_mutex_unlock(&v->lock);
            boots = vastctl_recover_stale_boots(v);
            boots_due = now_mono() + STALE_BOOT_RECHECK_S;
            pthread_mutex_lock(&v->lock);
            continue;
        }
        while (!v->stopping && !v->poked && now_mono() < due && !(boots && now_mono() >= boots_due)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double wait = (boots && boots_due < due ? boots_due : due) - now_mono();
            if (wait > 3600) wait = 3600;
            ts.tv_sec += (time_t)wait;
            ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&v->cond, &v->lock, &ts);
        }
        if (v->stopping) break;
        if (v->poked) backoff = POLL_MIN_S;
        v->poked = false;
        char id[32];
        snprintf(id, sizeof id, "%s", v->cur_id);
        pthread_mutex_unlock(&v->lock);
        double next = poll_once(v, id, backoff);
        if (next == backoff) backoff = backoff * 2 > POLL_MAX_S ? POLL_MAX_S : backoff * 2;
        else backoff = POLL_MIN_S;
        pthread_mutex_lock(&v->lock);
        due = now_mono() + next;
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

/* ---- lifecycle */

vastctl *vastctl_new(config *cfg, store *st)
{
    vastctl *v = xcalloc(1, sizeof *v);
    v->cfg = cfg;
    v->st = st;
    char err[256];
    v->client = vastctl_client_from_config(cfg, err, sizeof err);
    if (!v->client) {
        /* config validation should have caught it; fall back to the default URL */
        LOG_E("vast", "%s; using %s", err, VAST_DEFAULT_URL);
        v->client = vast_client_new(NULL, config_str(cfg, CFG_VAST_API_KEY));
    }
    v->poll_client = vast_client_new(vast_client_base_url(v->client),
                                     config_str(cfg, CFG_VAST_API_KEY));
    vast_client_set_timeouts(v->poll_client, 5000, 10000);
    vast_client_set_retry(v->poll_client, 2, 200, 1000);
    v->has_key = config_isset(cfg, CFG_VAST_API_KEY);
    double dm = config_num(cfg, CFG_DEADMAN_MINUTES);
    v->deadman_s = isnan(dm) ? 1800 : dm * 60.0;
    const char *id = config_str(cfg, CFG_VAST_INSTANCE_ID);
    snprintf(v->cur_id, sizeof v->cur_id, "%s", id ? id : "");
    pthread_mutex_init(&v->lock, NULL);
    pthread_mutex_init(&v->boot_lock, NULL);
    pthread_mutex_init(&v->env_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&v->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!v->has_key) LOG_I("vast", "no Vast.ai API key: GPU rental disabled (set VAST_API_KEY)");
    vastctl_find_stale_boots(v);
    if (pthread_create(&v->thread, NULL, poller, v) == 0) v->thread_started = true;
    else LOG_E("vast", "cannot start the instance status thread");
    return v;
}

void vastctl_free(vastctl *v)
{
    if (!v) return;
    pthread_mutex_lock(&v->lock);
    v->stopping = true;
    pthread_cond_signal(&v->cond);
    pthread_mutex_unlock(&v->lock);
    if (v->thread_started) pthread_join(v->thread, NULL);
    vast_client_free(v->poll_client);
    vast_client_free(v->client);
    pthread_cond_destroy(&v->cond);
    pthread_mutex_destroy(&v->lock);
    pthread_mutex_destroy(&v->boot_lock);
    pthread_mutex_destroy(&v->env_lock);
    free(v->stale_boots);
    free(v);
}

