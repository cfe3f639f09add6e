#include "fleet/vastctl.h"

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

#define POLL_RUNNING_S 30.0
#define POLL_MIN_S 2.0
#define POLL_MAX_S 30.0
#define POLL_IDLE_S 3600.0
#define VASTCTL_STALE_S 5.0
#define BOOT_ATTEMPTS 3
#define STALE_BOOT_RECHECK_S 2.0   /* a pending boot from before the start: next look */
#define STALE_BOOT_MARGIN_S 2.0    /* past the create's timeout before "nothing rented" */

struct vastctl {
    config *cfg;
    store *st;
    vast_client *client;       /* user requests: default timeouts and retries */
    vast_client *poll_client;  /* the poller: short timeouts so shutdown stays quick */
    bool has_key;

    pthread_mutex_t lock;      /* everything below but env_saved */
    pthread_cond_t cond;
    char cur_id[32];           /* VAST_INSTANCE_ID */
    char cached_id[32];        /* what the last check was about */
    bool cached_running;
    char last_note[400];       /* last state logged, to log each change once */
    bool poked, stopping;
    double checked_at;         /* now_mono() of the last check's answer */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t boot_lock; /* one boot at a time */
    pthread_mutex_t env_lock;  /* the .env writes (save_env); env_saved */
    unsigned env_gen;          /* VAST_INSTANCE_ID changes (under lock) */
    unsigned env_saved;        /* the change last written to .env (under env_lock) */
    double deadman_s;          /* DEADMAN_MINUTES: the vanished-instance estimate */

    /* boots an earlier process left pending (a row with its label, no vast_id): found by
     * vastctl_new, reconciled by the poller thread (thread-only after the start) */
    long long *stale_boots;
    size_t nstale_boots;
    double stale_settled_at;   /* now_wall() after which their creates are certainly over */
    bool stale_warned;         /* "cannot check yet" logged */
};

static const char no_key_msg[] =
    "no Vast.ai API key configured: set VAST_API_KEY in the .env file or the environment, "
    "or log in with the vast CLI (`vastai set api-key KEY` writes ~/.config/vastai/vast_api_key), "
    "then restart gpuscribe";

const char *vastctl_no_key_message(void) { return no_key_msg; }

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

static void res_set(vastctl_result *res, int status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void res_set(vastctl_result *res, int status, const char *kind, const char *fmt, ...)
{
    res->http_status = status;
    snprintf(res->kind, sizeof res->kind, "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

static void res_vast_err(vastctl_result *res, const vast_error *e)
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
    };
    instances_observe(v->st, 0, id, &f, t);
}

static void find_stale_boots(vastctl *v);
static bool recover_stale_boots(vastctl *v);

/* One check of VAST_INSTANCE_ID (no lock held). Returns the next delay in seconds. */
static double poll_once(vastctl *v, const char *id, double backoff)
{
    char note[400];
    long long n;
    if (!id[0]) return POLL_IDLE_S;
    if (!v->has_key) {
        snprintf(note, sizeof note, "VAST_INSTANCE_ID=%.31s is set but %s", id, no_key_msg);
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
            boots = recover_stale_boots(v);
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
    find_stale_boots(v);
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

/* ---- pricing and budgets */

int vastctl_offer_get(vastctl *v, long long offer_id, vast_offer *out, vast_error *e)
{
    vast_search s = {0};
    s.offer_id = offer_id;
    s.include_unverified = true;
    s.limit = 1;
    s.allocated_storage = (double)config_int(v->cfg, CFG_VAST_DISK_GB);
    vast_offer_list l;
    if (vast_search_offers(v->client, &s, &l, e) != 0) return -1;
    int found = 0;
    for (size_t i = 0; i < l.n && !found; i++) {
        if (l.items[i].id != offer_id) continue;
        *out = l.items[i];
        found = 1;
    }
    vast_offer_list_free(&l);
    return found;
}

int vastctl_offer_price(vastctl *v, long long offer_id, double *dph_total, double *dph_base,
                        double *storage, vast_error *e)
{
    vast_offer o;
    int found = vastctl_offer_get(v, offer_id, &o, e);
    if (found == 1) {
        *dph_total = o.dph_total;
        *dph_base = o.dph_base;
        *storage = o.storage_total_cost;
    }
    return found;
}

void vastctl_image_req(const config *cfg, image_req *out)
{
    image_req_for(config_str(cfg, CFG_VAST_IMAGE), config_str(cfg, CFG_WHISPER_MODEL),
                  config_num(cfg, CFG_VAST_IMAGE_MIN_CUDA), out);
    image_req_add_models(out, config_str(cfg, CFG_MODELS_PRELOAD));
}

json_t *vastctl_image_req_json(const image_req *r)
{
    const char *src = r->cuda_overridden ? "VAST_IMAGE_MIN_CUDA" : r->known ? "table" : NULL;
    return json_pack("{s:s,s:b,s:f,s:i,s:f,s:s,s:f,s:f,s:s?}", "image", r->image, "known",
                     r->known, "min_cuda", r->min_cuda, "min_compute_cap", r->min_compute_cap,
                     "min_disk_gb", r->min_disk_gb, "model", r->model, "model_gb", r->model_gb,
                     "image_gb", r->image_gb, "cuda_source", src);
}

int vastctl_offer_mismatch(const config *cfg, const image_req *r, const vast_offer *o,
                           char *msg, size_t msglen)
{
    char why[512];
    int n = o ? image_req_check(r, o, why, sizeof why) : 0;
    long disk = config_int(cfg, CFG_VAST_DISK_GB);
    if (n > 0) {
        snprintf(msg, msglen, "Offer %lld (%s) does not fit the image: %s. Nothing was rented; "
                 "pick another offer (search lists only the hosts that fit)%s", o->id,
                 o->gpu_name[0] ? o->gpu_name : "GPU", why,
                 r->cuda_overridden || r->min_cuda <= 0 ? ""
                 : ", or set VAST_IMAGE_MIN_CUDA if a custom image needs less");
        return n;
    }
    if ((double)disk + 1e-6 < r->min_disk_gb) {
        snprintf(msg, msglen, "VAST_DISK_GB=%ld is smaller than the %.0f GB that %s with model "
                 "%s needs (image ~%.1f GB + model %.2f GB + %.0f GB margin). Nothing was "
                 "rented; raise VAST_DISK_GB", disk, r->min_disk_gb, r->image,
                 r->model[0] ? r->model : "(any)", r->image_gb, r->model_gb,
                 IMAGE_REQ_MARGIN_GB);
        return 1;
    }
    if (msglen) msg[0] = '\0';
    return 0;
}

ledger_budgets vastctl_budgets(const config *cfg)
{
    ledger_budgets b = {config_num(cfg, CFG_BUDGET_DAILY_USD), config_num(cfg, CFG_BUDGET_MONTHLY_USD),
                        config_num(cfg, CFG_BUDGET_TOTAL_USD)};
    return b;
}

/* ---- boot */

static void boot_ok(vastctl *v, vastctl_result *res, long long vast_id, long long row_id,
                    bool reused)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", vast_id);
    vastctl_set_instance(v, ids, NULL);
    res->http_status = 200;
    res->kind[0] = '\0';
    res->instance_id = vast_id;
    res->row_id = row_id;
    res->reused = reused;
    snprintf(res->message, sizeof res->message,
             "Instance created. Setting up dependencies in background...");
}

/* Instances on the account carrying label: 1 found (*id = the first, *start its Vast start
 * date or 0, *others counts the rest), 0 none, -1 cannot tell (e filled). An empty label
 * matches nothing: unlabelled instances are other tools' as far as we know. */
static int find_label(vastctl *v, const char *label, long long *id, double *start, int *others,
                      vast_error *e)
{
    *id = 0;
    *start = 0;
    *others = 0;
    if (!label || !*label) {
        LOG_W("vast", "BUG: looking for an instance by an empty label; matching none (an "
              "unlabelled instance is never taken for ours)");
        return 0;
    }
    vast_instance_list l;
    if (vast_list_instances(v->client, &l, e) != 0) return -1;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].label, label) != 0) continue;
        if (*id) {
            (*others)++;
        } else {
            *id = l.items[i].id;
            *start = l.items[i].start_date;
        }
    }
    vast_instance_list_free(&l);
    return *id ? 1 : 0;
}

/* Destroys every instance labelled label except keep (a duplicate left by an unanswered
 * create that Vast did carry out after all). Never with an empty label. */
static void destroy_duplicates(vastctl *v, const char *label, long long keep)
{
    if (!label || !*label) {
        LOG_W("vast", "BUG: asked to destroy duplicates of instance %lld by an empty label; "
              "destroying nothing", keep);
        return;
    }
    vast_instance_list l;
    vast_error e;
    if (vast_list_instances(v->client, &l, &e) != 0) return;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.items[i].label, label) != 0 || l.items[i].id == keep) continue;
        LOG_W("vast", "instance %lld duplicates %lld (label %s): destroying it", l.items[i].id,
              keep, label);
        if (vast_destroy_instance(v->client, l.items[i].id, &e) != 0)
            LOG_E("vast", "cannot destroy duplicate instance %lld: %s; destroy it by hand",
                  l.items[i].id, e.message);
    }
    vast_instance_list_free(&l);
}

/* Row `row` rented `found` after all (an unanswered create): record it, and bill its
 * storage from Vast's start date (start, 0 when unknown). */
static void adopt(vastctl *v, long long row, long long found, double start,
                  vastctl_result *res)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", found);
    LOG_I("vast", "boot #%lld: found instance %s created by an unanswered attempt; adopting it",
          row, ids);
    double t = now_wall();
    instance_row r;
    if (store_begin(v->st) == 0) {
        instances_set_created(v->st, row, ids, NULL, 0, t);
        if (instances_get(v->st, row, &r) == 1)
            ledger_sync(v->st, row, false, true, r.dph_base, r.storage_dph,
                        start > 0 && start < t ? start : t);
        store_commit(v->st);
    }
    store_event_add(v->st, "instance.created", ids, NULL);
    boot_ok(v, res, found, row, true);
}

/* Looks for the row's label on the account. 1 adopted (res filled), 0 certainly absent
 * (row marked failed), -1 cannot tell (res filled with the error). */
static int reconcile(vastctl *v, const instance_row *r, vastctl_result *res)
{
    if (!r->label[0]) {
        /* a row from before boots were recorded atomically: it was labelled before Vast
         * was ever called, so without a label nothing was rented */
        LOG_W("vast", "boot #%lld has no label: it never reached Vast.ai; marking it failed "
              "(no instance on the account is matched by an empty label)", r->id);
        instances_boot_failed(v->st, r->id, NULL, now_wall());
        return 0;
    }
    long long found;
    double start;
    int others;
    vast_error e;
    int rc = find_label(v, r->label, &found, &start, &others, &e);
    if (rc < 0) {
        char d[512];
        vastctl_describe(&e, d, sizeof d);
        res_set(res, vastctl_http_status(e.kind), vast_err_kind_name(e.kind),
                "an earlier boot of offer %lld did not finish and whether it rented an instance "
                "cannot be checked now (%s); nothing was rented again. Retry shortly",
                r->offer_id, d);
        return -1;
    }
    if (rc == 0) {
        instances_boot_failed(v->st, r->id, NULL, now_wall());
        return 0;
    }
    if (others) destroy_duplicates(v, r->label, found);
    adopt(v, r->id, found, start, res);
    return 1;
}

/* ---- boots an earlier process left pending

   A controller killed between recording a boot and recording what Vast.ai answered leaves
   a row requested/creating with its label and no vast_id. A retry of the boot reconciles
   it (reconcile); without one, the poller does, so that an instance rented that way is
   never left running unaccounted: the rows are listed here before any request can start a
   boot of this process, then looked for by label on the account, each under boot_lock. */

static void find_stale_boots(vastctl *v)
{
    instance_row *rows;
    size_t n;
    if (instances_list(v->st, INSTANCES_PENDING_BOOT, 0, 0, &rows, &n) != 0 || n == 0) return;
    v->stale_boots = xcalloc(n, sizeof *v->stale_boots);
    for (size_t i = 0; i < n; i++) v->stale_boots[v->nstale_boots++] = rows[i].id;
    free(rows);
    /* the killed process's last create was sent before this one started: it is over once
     * the create's own timeout has passed */
    v->stale_settled_at = now_wall() + (double)config_int(v->cfg, CFG_VAST_TIMEOUT_SECONDS) +
                          STALE_BOOT_MARGIN_S;
    LOG_I("vast", "%zu boot%s left unfinished by an earlier run: looking for %s on Vast.ai",
          n, n == 1 ? "" : "s", n == 1 ? "its instance" : "their instances");
}

/* boot_lock held. 1 settled (adopted, failed, or settled meanwhile by a retry), 0 not yet. */
static int recover_stale_boot(vastctl *v, long long id)
{
    instance_row r;
    int got = instances_get(v->st, id, &r);
    if (got < 0) return 0;
    if (got == 0 || r.vast_id[0] ||
        (strcmp(r.state, "requested") != 0 && strcmp(r.state, "creating") != 0))
        return 1; /* a retry of the boot (or a destroy) settled it */
    if (!r.label[0]) {
        LOG_W("vast", "boot #%lld has no label: it never reached Vast.ai; marking it failed "
              "(no instance on the account is matched by an empty label)", r.id);
        instances_boot_failed(v->st, r.id, NULL, now_wall());
        return 1;
    }
    long long found;
    double start;
    int others;
    vast_error e;
    int rc = find_label(v, r.label, &found, &start, &others, &e);
    if (rc < 0) {
        char d[512];
        vastctl_describe(&e, d, sizeof d);
        if (!v->stale_warned)
            LOG_W("vast", "boot #%lld (label %s) did not finish before the controller stopped; "
                  "cannot look for its instance yet (%s); trying again", r.id, r.label, d);
        v->stale_warned = true;
        return 0;
    }
    if (rc == 1) {
        LOG_W("vast", "boot #%lld: the controller stopped during the boot; Vast.ai has instance "
              "%lld labelled %s: adopting it (provisioning continues, cost safety applies)",
              r.id, found, r.label);
        if (others) destroy_duplicates(v, r.label, found);
        vastctl_result res;
        memset(&res, 0, sizeof res);
        adopt(v, r.id, found, start, &res);
        return 1;
    }
    if (now_wall() < v->stale_settled_at) return 0; /* its create may still be answered */
    char why[200];
    snprintf(why, sizeof why, "the controller stopped during the boot; Vast.ai has no instance "
             "labelled %s: nothing is rented", r.label);
    LOG_W("vast", "boot #%lld: %s; marking it failed", r.id, why);
    instances_boot_failed(v->st, r.id, why, now_wall());
    return 1;
}

/* Poller thread: one look at each stale boot still open. True while some remain. */
static bool recover_stale_boots(vastctl *v)
{
    if (!v->has_key) {
        LOG_W("vast", "%zu boot%s left unfinished by an earlier run cannot be checked without "
              "a Vast.ai API key; a retry of the boot checks before renting", v->nstale_boots,
              v->nstale_boots == 1 ? "" : "s");
        v->nstale_boots = 0;
        return false;
    }
    size_t keep = 0;
    for (size_t i = 0; i < v->nstale_boots; i++) {
        pthread_mutex_lock(&v->lock);
        bool stopping = v->stopping;
        pthread_mutex_unlock(&v->lock);
        int done = 0;
        if (!stopping) {
            pthread_mutex_lock(&v->boot_lock);
            done = recover_stale_boot(v, v->stale_boots[i]);
            pthread_mutex_unlock(&v->boot_lock);
        }
        if (!done) v->stale_boots[keep++] = v->stale_boots[i];
    }
    v->nstale_boots = keep;
    return keep > 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Errors after which Vast certainly did not create anything. */
static bool certain_failure(vast_err_kind k)
{
    return k == VAST_ERR_AUTH || k == VAST_ERR_OFFER_TAKEN || k == VAST_ERR_RATE_LIMIT ||
           k == VAST_ERR_BAD_REQUEST || k == VAST_ERR_FORBIDDEN || k == VAST_ERR_NO_CREDIT ||
           k == VAST_ERR_INVALID || k == VAST_ERR_NOT_FOUND || k == VAST_ERR_FAILED;
}

static void boot_locked(vastctl *v, long long offer_id, const char *idem_key,
                        vastctl_result *res)
{
    char key[300];
    instance_row r;
    int found;
    if (idem_key) {
        snprintf(key, sizeof key, "key:%s", idem_key);
        found = instances_by_idem_key(v->st, key, &r);
    } else {
        found = instances_recent_boot(v->st, offer_id, now_wall() - VASTCTL_BOOT_WINDOW_S, &r);
    }
    if (found < 0) {
        res_set(res, 500, "store", "cannot read the instance store");
        return;
    }
    long long r_vast_id = found ? strtoll(r.vast_id, NULL, 10) : 0;
    if (found) {
        if (idem_key && r.offer_id != offer_id) {
            res_set(res, 409, "conflict", "Idempotency-Key already used for a boot of offer %lld; "
                    "send a new key for another offer", r.offer_id);
            return;
        }
        if (strcmp(r.state, "destroyed") == 0) {
            res_set(res, 409, "conflict", "Idempotency-Key already used for instance %lld, which "
                    "has been destroyed; send a new key to boot again", r_vast_id);
            return;
        }
        if (r_vast_id > 0 && strcmp(r.state, "failed") != 0) {
            LOG_I("vast", "boot of offer %lld repeated: answering with instance %lld (no new "
                  "rental)", offer_id, r_vast_id);
            boot_ok(v, res, r_vast_id, r.id, true);
            return;
        }
        if (strcmp(r.state, "failed") != 0) {
            /* requested/creating without an id: an attempt whose outcome is unknown */
            int rc = reconcile(v, &r, res);
            if (rc != 0) return;
        }
        /* certainly failed: free the key for a new attempt */
        if (idem_key) instances_release_idem_key(v->st, r.id);
    }

    /* re-read the offer: it must fit the image; its prices are the ledger's rates until
     * the API's own, and they are checked against the budgets */
    double dph_total = 0, dph_base = 0, sto = 0;
    vast_error pe;
    vast_offer off;
    int priced = vastctl_offer_get(v, offer_id, &off, &pe);
    image_req req;
    vastctl_image_req(v->cfg, &req);
    bool has_req = req.min_cuda > 0 || req.min_compute_cap > 0;
    char why[640];
    if (vastctl_offer_mismatch(v->cfg, &req, priced > 0 ? &off : NULL, why, sizeof why) != 0) {
        LOG_W("vast", "boot of offer %lld refused: %s", offer_id, why);
        res_set(res, 409, "image_mismatch", "%s", why);
        return;
    }
    if (priced < 0 && has_req) {
        char d[512];
        vastctl_describe(&pe, d, sizeof d);
        res_set(res, vastctl_http_status(pe.kind), vast_err_kind_name(pe.kind),
                "booting refused: offer %lld cannot be read to check that it runs %s (%s); "
                "nothing was rented", offer_id, req.image, d);
        return;
    }
    if (priced > 0) {
        dph_total = off.dph_total;
        dph_base = off.dph_base;
        sto = off.storage_total_cost;
    }
    ledger_budgets bud = vastctl_budgets(v->cfg);
    if (ledger_budgets_any(&bud)) {
        char bmsg[512];
        if (priced < 0) {
            char d[512];
            vastctl_describe(&pe, d, sizeof d);
            res_set(res, 503, "budget", "booting refused: offer %lld cannot be priced to check "
                    "the budget (%s); try again", offer_id, d);
            return;
        }
        if (priced > 0 && ledger_budget_check(v->st, &bud, dph_total, now_wall(), bmsg,
                                              sizeof bmsg) != 0) {
            LOG_W("vast", "boot of offer %lld at $%.4f/h: %s", offer_id, dph_total, bmsg);
            res_set(res, 402, "budget", "%s", bmsg);
            return;
        }
    }

    /* the row and its label in one transaction: a boot is never on record without the
     * label that finds its instance again */
    char label[64];
    long long row = instances_insert_boot(v->st, offer_id, idem_key ? key : NULL,
                                          VASTCTL_LABEL_PREFIX, dph_total, dph_base, sto,
                                          now_wall(), label, sizeof label);
    if (row <= 0) {
        res_set(res, 500, "store", "cannot record the boot in the store");
        return;
    }
    res->row_id = row;
    LOG_I("vast", "boot #%lld: renting offer %lld (label %s)", row, offer_id, label);
    fault_point("boot_after_insert");

    vast_create cr;
    vastctl_create_params(v->cfg, label, &cr);
    vast_created out;
    vast_error e;
    char d[640];
    for (int attempt = 1;; attempt++) {
        if (vast_create_instance(v->client, offer_id, &cr, &out, &e) == 0) {
            fault_point("boot_after_create");
            char ids[32];
            snprintf(ids, sizeof ids, "%lld", out.instance_id);
            double created = now_wall();
            if (store_begin(v->st) == 0) {
                instances_set_created(v->st, row, ids, out.instance_api_key, created, created);
                ledger_sync(v->st, row, false, true, dph_base, sto, created); /* storage billed */
                store_commit(v->st);
            }
            char *data = xasprintf("{\"offer_id\":%lld,\"label\":\"%s\"}", offer_id, label);
            store_event_add(v->st, "instance.created", ids, data);
            free(data);
            LOG_I("vast", "boot #%lld: instance %s created from offer %lld", row, ids, offer_id);
            long long vid = out.instance_id;
            vast_created_clear(&out);
            /* an earlier unanswered attempt may have rented after all */
            if (attempt > 1) destroy_duplicates(v, label, vid);
            boot_ok(v, res, vid, row, false);
            return;
        }
        vastctl_describe(&e, d, sizeof d);
        LOG_W("vast", "boot #%lld: renting offer %lld failed (attempt %d): %s", row, offer_id,
              attempt, d);
        if (certain_failure(e.kind)) break;
        /* Unknown outcome (5xx, timeout, dropped connection): before trying again, look for
         * the row's label on the account, so that nothing is ever rented twice. */
        instances_set_error(v->st, row, d, now_wall());
        sleep_s(0.3 * attempt);
        long long got;
        double start;
        int others;
        vast_error le;
        int rc = find_label(v, label, &got, &start, &others, &le);
        if (rc == 1) {
            if (others) destroy_duplicates(v, label, got);
            adopt(v, row, got, start, res);
            return;
        }
        if (rc < 0) {
            res_vast_err(res, &e);
            snprintf(res->message + strlen(res->message),
                     sizeof res->message - strlen(res->message),
                     ". Whether an instance was rented is not known yet; repeating this "
                     "request checks first and never rents twice");
            return;
        }
        if (attempt >= BOOT_ATTEMPTS) break; /* certainly nothing rented: give up cleanly */
    }
    instances_boot_failed(v->st, row, d, now_wall());
    res_vast_err(res, &e);
    if (e.kind == VAST_ERR_OFFER_TAKEN)
        snprintf(res->message, sizeof res->message,
                 "Offer %lld is no longer available: it was rented by someone else or "
                 "withdrawn. Search again and pick another offer (Vast.ai: %.400s)",
                 offer_id, e.message);
}

void vastctl_boot(vastctl *v, long long offer_id, const char *idem_key, vastctl_result *res)
{
    memset(res, 0, sizeof *res);
    if (!v->has_key) {
        res_set(res, 503, "no_key", "%s", no_key_msg);
        return;
    }
    if (offer_id <= 0) {
        res_set(res, 400, "invalid", "offer_id must be a positive integer");
        return;
    }
    pthread_mutex_lock(&v->boot_lock);
    boot_locked(v, offer_id, idem_key, res);
    pthread_mutex_unlock(&v->boot_lock);
}

/* ---- the end of an instance */

/* Row id is gone: mark it destroyed (stage, reason, at) and close its ledger at `at`, in one
 * transaction. 1 marked, 0 it was destroyed already (its ledger closed anyway), -1 error. */
static int close_row(vastctl *v, long long id, const char *stage, const char *reason, double at)
{
    if (store_begin(v->st) != 0) return -1;
    int n = instances_mark_destroyed(v->st, id, stage, reason, at, now_wall());
    if (n < 0 || ledger_finalize(v->st, id, at) != 0) {
        store_rollback(v->st);
        return -1;
    }
    return store_commit(v->st) == 0 ? n : -1;
}

int vastctl_instance_gone(vastctl *v, const char *vast_id, const char *reason, double *end)
{
    instance_row r;
    double now = now_wall();
    if (end) *end = now;
    int found = instances_by_vast_id(v->st, vast_id, &r);
    if (found <= 0) return found;
    if (strcmp(r.state, "destroyed") == 0) return 0;
    double at = ledger_gone_end(now, r.seen_at, v->deadman_s);
    if (end) *end = at;
    int n = close_row(v, r.id, "gone from Vast.ai", reason ? reason : "gone", at);
    if (n <= 0) return n;
    vastctl_set_instance(v, NULL, vast_id);
    char *data = xasprintf("{\"reason\":\"%s\",\"billed_until\":%.3f}", reason ? reason : "gone",
                           at);
    store_event_add(v->st, "instance.gone", vast_id, data);
    free(data);
    return 1;
}

/* ---- destroy */

void vastctl_destroy(vastctl *v, long long id, vastctl_result *res)
{
    vastctl_destroy_for(v, id, "user", res);
}

void vastctl_destroy_for(vastctl *v, long long id, const char *reason, vastctl_result *res)
{
    memset(res, 0, sizeof *res);
    res->instance_id = id;
    if (!v->has_key) {
        res_set(res, 503, "no_key", "%s", no_key_msg);
        return;
    }
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", id);
    instance_row r;
    int have = instances_by_vast_id(v->st, ids, &r);
    if (have > 0 && strcmp(r.state, "destroyed") != 0)
        instances_set_destroying(v->st, r.id, now_wall());
    vast_error e;
    int rc = vast_destroy_instance(v->client, id, &e);
    if (rc != 0 && e.kind != VAST_ERR_NOT_FOUND) {
        if (have > 0 && strcmp(r.state, "destroyed") != 0)
            instances_restore_state(v->st, r.id, r.state, now_wall());
        res_vast_err(res, &e);
        return;
    }
    if (have > 0) close_row(v, r.id, "destroyed", rc == 0 ? reason : "gone", now_wall());
    vastctl_set_instance(v, NULL, ids);
    if (rc != 0) {
        res_set(res, 404, "not_found", "Instance %lld not found on this Vast.ai account "
                "(already destroyed, or not yours)", id);
        return;
    }
    store_event_add(v->st, "instance.destroyed", ids, NULL);
    LOG_I("vast", "instance %s destroyed", ids);
    res_set(res, 200, "", "Instance %lld destroyed", id);
}

/* ---- JSON views shared by the API and the CLI */

/* x rounded to 1/scale, dividing last so that it prints short (16.4, not 16.400000000000002) */
static double round_to(double x, double scale) { return round(x * scale) / scale; }
/* Vast's gpu_ram is MiB; the client reports MB/1000. Whole GiB is what people call it. */
static json_int_t gib(double gb) { return (json_int_t)llround(gb * 1000.0 / 1024.0); }
static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

json_t *vastctl_offer_json(const vast_offer *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(o->id));
    json_object_set_new(j, "gpu_name", json_string(o->gpu_name));
    json_object_set_new(j, "num_gpus", json_integer(o->num_gpus));
    json_object_set_new(j, "gpu_ram", json_integer(gib(o->gpu_ram_gb)));
    json_object_set_new(j, "gpu_total_ram", json_integer(gib(o->gpu_total_ram_gb)));
    json_object_set_new(j, "dph_total", json_real(round_to(o->dph_total, 1e4)));
    json_object_set_new(j, "dph_base", json_real(round_to(o->dph_base, 1e4)));
    json_object_set_new(j, "storage_total_cost", json_real(round_to(o->storage_total_cost, 1e4)));
    json_object_set_new(j, "min_bid", json_real(round_to(o->min_bid, 1e4)));
    json_object_set_new(j, "reliability2", json_real(round_to(o->reliability2, 1e4)));
    json_object_set_new(j, "disk_space", json_real(round_to(o->disk_space_gb, 10)));
    json_object_set_new(j, "inet_down", json_real(round_to(o->inet_down, 10)));
    json_object_set_new(j, "inet_up", json_real(round_to(o->inet_up, 10)));
    json_object_set_new(j, "cuda_max_good", json_real(o->cuda_max_good));
    json_object_set_new(j, "compute_cap", json_integer(o->compute_cap));
    json_object_set_new(j, "cpu_ram", json_real(round_to(o->cpu_ram_gb, 10)));
    json_object_set_new(j, "cpu_cores_effective", json_real(round_to(o->cpu_cores_effective, 10)));
    json_object_set_new(j, "direct_port_count", json_integer(o->direct_port_count));
    json_object_set_new(j, "dlperf", json_real(round_to(o->dlperf, 100)));
    json_object_set_new(j, "score", json_real(round_to(o->score, 100)));
    json_object_set_new(j, "geolocation", json_string(o->geolocation));
    json_object_set_new(j, "verified", json_boolean(o->verified));
    json_object_set_new(j, "machine_id", json_integer(o->machine_id));
    return j;
}

json_t *vastctl_instance_json(const vast_instance *in)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(in->id));
    json_object_set_new(j, "label", str_or_null(in->label));
    json_object_set_new(j, "actual_status", str_or_null(in->actual_status));
    json_object_set_new(j, "intended_status", str_or_null(in->intended_status));
    json_object_set_new(j, "status_msg", str_or_null(in->status_msg));
    json_object_set_new(j, "gpu_name", str_or_null(in->gpu_name));
    json_object_set_new(j, "num_gpus", json_integer(in->num_gpus));
    json_object_set_new(j, "gpu_ram", json_integer(gib(in->gpu_ram_gb)));
    json_object_set_new(j, "dph_total", json_real(round_to(in->dph_total, 1e4)));
    json_object_set_new(j, "ssh_host", str_or_null(in->ssh_host));
    json_object_set_new(j, "ssh_port", in->ssh_port ? json_integer(in->ssh_port) : json_null());
    json_object_set_new(j, "geolocation", str_or_null(in->geolocation));
    json_object_set_new(j, "created_at", in->start_date > 0 ? json_real(in->start_date) : json_null());
    return j;
}
