#include "fleet/provision.h"

#include "core/log.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "fleet/vast_status.h"
#include "ssh/ssh.h"
#include "store/instances.h"
#include "ssh/tunnel.h"
#include "worker/worker_client.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif
#ifndef GS_SRCDIR
#define GS_SRCDIR "."
#endif

#define REMOTE_DIR "/workspace/gpuscribe"
#define LOG_KEEP 200              /* setup lines kept per instance */
#define LOG_SHOW 50               /* lines in the API view */
#define LOADING_TIMEOUT_S 1800.0  /* image pull + container start */
#define INSTALL_TIMEOUT_S 3600.0  /* setup (build + model download) */
#define MAX_ATTEMPTS 4            /* install/start retries after broken sessions */
#define TUNNEL_CHECK_S 2.0
#define READY_RECHECK_S 30.0      /* tunnel not UP this long: recheck the instance */
#define READY_VAST_CHECK_S 60.0

typedef struct inst {
    struct fleet *f;
    long long row;
    char vid[32];
    pthread_t th;
    bool has_thread, finished, stop, recheck, resumed;
    char recheck_why[256];
    /* guarded by f->lock; the thread owns the objects */
    tunnel *tn;
    json_t *worker;       /* its /health answer */
    int inflight;         /* jobs sent to it and not finished (at most its slots) */
    char state[24];
    char stage[200];
    int percent;
    char error[512];
    /* thread-only */
    sshc *ssh;
    char *lines[LOG_KEEP];
    int nlines;
    size_t out_off;
    int empty_polls;          /* empty answers to --poll in a row */
    double last_vast_check;
    struct inst *next;
} inst;

struct fleet {
    config *cfg;
    store *st;
    events *bus;
    vastctl *vc;
    vast_client *client;
    char *data_dir;
    char *pubkey;
    char *key_path;
    char *known_hosts;
    char *exe;
    char *srcdir;
    fleet_payload payload;       /* what setup builds the worker from (src_id NULL: none found) */
    char payload_err[400];
    double ssh_wait_s;
    int worker_port;
    long long account_key_id;

    fleet_json_hook json_hook;   /* adds cost fields to fleet_instance_json */
    void *json_hook_ud;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    inst *insts;
    bool stopping, poked, started;
    pthread_t sup;
};

typedef struct row {
    long long id;
    char vid[32];
    char state[24];
    char label[64];
    char ssh_host[256];
    int ssh_port;
    double deadline;
    int attempts;
    bool key_attached;
    int percent;
    char stage[200];
} row;

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

static bool final_state(const char *s)
{
    return !strcmp(s, "failed") || !strcmp(s, "destroying") || !strcmp(s, "destroyed") ||
           !strcmp(s, "orphan");
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static bool should_stop(inst *in)
{
    fleet *f = in->f;
    pthread_mutex_lock(&f->lock);
    bool s = in->stop || f->stopping;
    pthread_mutex_unlock(&f->lock);
    return s;
}

/* Wait up to s seconds; returns early on stop or recheck. */
static void wait_s(inst *in, double s)
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

int fleet_parse_progress(const char *line, int *pct, char *stage, size_t stagelen)
{
    static const char tag[] = "GPUSCRIBE-PROGRESS ";
    if (strncmp(line, tag, sizeof tag - 1) != 0) return 0;
    const char *p = line + sizeof tag - 1;
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > 100) return 0;
    while (*end == ' ') end++;
    *pct = (int)v;
    snprintf(stage, stagelen, "%s", end);
    return 1;
}

char *fleet_env_line(const char *key, const char *value)
{
    bool plain = true;
    for (const char *p = value; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("-_./:@+,", *p))) plain = false;
    if (plain) return xasprintf("%s=%s\n", key, value);
    buf b;
    buf_init(&b, 0);
    int ok = buf_appendf(&b, "%s=\"", key) == 0;
    for (const char *p = value; *p; p++) {
        if (*p == '\n') { ok &= buf_append(&b, "\\n", 2) == 0; continue; }
        if (*p == '\r') continue;
        if (*p == '"' || *p == '\\') ok &= buf_append(&b, "\\", 1) == 0;
        ok &= buf_append(&b, p, 1) == 0;
    }
    ok &= buf_append(&b, "\"\n", 2) == 0;
    (void)ok;
    return buf_take(&b);
}

/* dir of path (heap) */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
}

int fleet_find_worker_payload(const char *exe, const char *srcdir, fleet_payload *out, char *err,
                              size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *d = dir_of(exe);
    char *dirs[] = {xstrdup(d), xasprintf("%s/..", d), xasprintf("%s/build", srcdir),
                    xstrdup("/usr/share/gpuscribe")};
    free(d);
    int rc = -1;
    for (size_t i = 0; i < ARRAY_LEN(dirs) && rc != 0; i++) {
        char *b = xasprintf("%s/gpuscribe-src.tar.gz", dirs[i]), *id = xasprintf("%s/gpuscribe-src.id", dirs[i]);
        char *text = access(b, R_OK) == 0 ? read_file(id, 256, NULL) : NULL;
        size_t n = text ? strspn(text, "0123456789abcdef") : 0;
        if (text && n == 64) {
            text[64] = '\0';
            out->bundle = b;
            out->src_id = text;
            b = text = NULL;
            char *w = xasprintf("%s/gpuscribe-worker", dirs[i]);
            if (access(w, X_OK) == 0) out->worker = w;
            else free(w);
            rc = 0;
        }
        free(b);
        free(id);
        free(text);
    }
    if (rc != 0)
        snprintf(err, errlen, "no worker source bundle (gpuscribe-src.tar.gz with gpuscribe-src.id) "
                 "beside %s or in %s/build: run make", exe, srcdir);
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) free(dirs[i]);
    return rc;
}

void fleet_payload_release(fleet_payload *p)
{
    free(p->bundle);
    free(p->src_id);
    free(p->worker);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ state and events */

static void publish(inst *in, int persist)
{
    fleet *f = in->f;
    if (!f->bus) return;
    json_t *j = fleet_instance_json(f, in->vid);
    if (j) events_publish(f->bus, "instance.state", j, persist);
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
static void set_state(inst *in, const char *state, int pct, const char *stage, const char *error)
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

static void fail(inst *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(inst *in, const char *fmt, ...)
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
    set_state(in, "failed", pct, "failed: still rented, destroy it", msg);
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
static void log_lines_persist(inst *in)
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

static void log_line(inst *in, const char *line)
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
static int vast_check(inst *in, vast_instance *vi_out)
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
        fail(in, "%s", why);
        return 0;
    }
    if (vi_out) *vi_out = vi;
    else vast_instance_clear(&vi);
    return 1;
}

static void attach_key(inst *in, row *r)
{
    fleet *f = in->f;
    vast_error e;
    if (vast_attach_ssh_key(f->client, strtoll(in->vid, NULL, 10), f->pubkey, &e) != 0) {
        LOG_D("fleet", "instance %s: attaching the SSH key: %s", in->vid, e.message);
        return;
    }
    instances_set_ssh_key(f->st, in->row, f->account_key_id);
    r->key_attached = true;
}

/* ------------------------------------------------------------------ SSH */

static void target_of(inst *in, const row *r, sshc_target *t, char *alias, size_t alen)
{
    fleet *f = in->f;
    snprintf(alias, alen, "vast-%s", in->vid);
    memset(t, 0, sizeof *t);
    t->host = r->ssh_host;
    t->port = r->ssh_port;
    t->user = "root";
    t->key_path = f->key_path;
    t->known_hosts = f->known_hosts;
    t->host_alias = alias;
    t->connect_timeout_s = 5;
}

static void ssh_drop(inst *in)
{
    if (in->ssh) sshc_close(in->ssh);
    in->ssh = NULL;
}

static void enter_ssh_wait(inst *in, const char *why)
{
    ssh_drop(in);
    set_deadline(in, now_wall() + in->f->ssh_wait_s);
    if (why) log_line(in, why);
    set_state(in, "ssh_wait", 30, "waiting for SSH", NULL);
}

/* A session for install/start steps: 0 ok; -1 handled (state changed or stopping). */
static int ensure_ssh(inst *in, row *r)
{
    if (in->ssh) return 0;
    sshc_target t;
    char alias[48], err[512];
    target_of(in, r, &t, alias, sizeof alias);
    enum sshc_err k;
    double end = now_mono() + 20;
    while (!should_stop(in)) {
        in->ssh = sshc_connect(&t, &k, err, sizeof err);
        if (in->ssh) return 0;
        if (k == SSHC_ERR_HOSTKEY) {
            fail(in, "SSH refused: %s", err);
            return -1;
        }
        if (now_mono() > end) break;
        wait_s(in, 1);
    }
    if (should_stop(in)) return -1;
    if (vast_check(in, NULL) == 0) return -1;
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
    if (!r->key_attached) attach_key(in, r);
    vast_instance vi;
    int rc = vast_check(in, &vi);
    if (rc == 0) return;
    if (rc > 0) {
        bool running = !strcmp(vi.actual_status, "running");
        if (running && vi.ssh_port > 0 && vi.ssh_host[0]) {
            double t = now_wall();
            instance_facts fx = {
                .gpu_name = vi.gpu_name, .num_gpus = vi.num_gpus, .dph_total = vi.dph_total,
                .dph_base = vi.dph_base, .storage_dph = vi.storage_total_cost,
                .ssh_host = vi.ssh_host, .ssh_port = vi.ssh_port, .running_at = t,
            };
            instances_observe(f->st, in->row, NULL, &fx, t);
            /* Vast bills the GPU since it started running (its uptime says when) */
            ledger_sync(f->st, in->row, true, true, vi.dph_base > 0 ? vi.dph_base : -1,
                        vi.storage_total_cost > 0 ? vi.storage_total_cost : -1,
                        ledger_running_since(t, ledger_uptime_s(vi.raw), vi.start_date));
            vast_instance_clear(&vi);
            if (!r->key_attached) attach_key(in, r);
            set_deadline(in, now_wall() + f->ssh_wait_s);
            set_state(in, "ssh_wait", 30, "waiting for SSH", NULL);
            *delay = 1;
            return;
        }
        if (!vi.actual_status[0]) set_state(in, "loading", 10, "creating instance", NULL);
        else set_state(in, "loading", 20, "loading image", NULL);
        vast_instance_clear(&vi);
    }
    if (now_wall() > r->deadline) {
        fail(in, "instance %s did not reach running within %.0f minutes", in->vid,
             LOADING_TIMEOUT_S / 60);
        return;
    }
    wait_s(in, *delay);
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
        set_state(in, "loading", 20, "waiting for the instance's SSH address", NULL);
        return;
    }
    sshc_target t;
    char alias[48], err[512] = "";
    target_of(in, r, &t, alias, sizeof alias);
    double delay = 0.25, last_key = now_mono();
    int attempt = 0;
    in->last_vast_check = now_mono();
    while (!should_stop(in)) {
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
            log_line(in, line);
            instances_set_deadline(f->st, in->row, now_wall() + INSTALL_TIMEOUT_S);
            set_state(in, "installing", 60, "installing", NULL);
            return;
        }
        if (k == SSHC_ERR_HOSTKEY) {
            fail(in, "SSH refused: %s", err);
            return;
        }
        if (k == SSHC_ERR_AUTH && now_mono() - last_key > 10) { /* keys may be attached late */
            attach_key(in, r);
            last_key = now_mono();
        }
        if (now_mono() - in->last_vast_check > 5 && vast_check(in, NULL) == 0) return;
        double l2 = deadline - now_wall();
        wait_s(in, delay < l2 ? delay : (l2 > 0 ? l2 : 0));
        delay = delay * 2 > 2 ? 2 : delay * 2;
    }
    if (should_stop(in)) return;
    if (vast_check(in, NULL) == 0) return;
    fail(in, "instance %s did not answer SSH at %s:%d within %.1f minutes (last error: %s)",
         in->vid, r->ssh_host, r->ssh_port, f->ssh_wait_s / 60, err[0] ? err : "none");
}

typedef struct exec_ctx {
    inst *in;
    char last_error[400];
    char last_line[400];
    int progress_seen;
} exec_ctx;

static void on_setup_line(void *ud, int is_stderr, const char *line)
{
    (void)is_stderr;
    exec_ctx *x = ud;
    int pct;
    char stage[200];
    if (!strncmp(line, "GPUSCRIBE-STATUS ", 17)) return;
    log_line(x->in, line);
    if (fleet_parse_progress(line, &pct, stage, sizeof stage)) {
        if (pct < x->in->percent) pct = x->in->percent; /* never backwards */
        if (pct < 60) pct = 60;
        if (pct > 90 && !strcmp(x->in->state, "installing")) pct = 90;
        set_state(x->in, x->in->state, pct, stage, NULL);
        x->progress_seen++;
    } else if (!strncmp(line, "GPUSCRIBE-ERROR ", 16)) {
        snprintf(x->last_error, sizeof x->last_error, "%s", line + 16);
    } else if (line[0]) {
        snprintf(x->last_line, sizeof x->last_line, "%s", line);
    }
}

static char *setup_path(fleet *f)
{
    char *p = xasprintf("%s/remote/setup.sh", f->srcdir);
    if (access(p, R_OK) == 0) return p;
    free(p);
    char *dir = dir_of(f->exe);
    p = xasprintf("%s/remote/setup.sh", dir);
    if (access(p, R_OK) != 0) {
        free(p);
        p = xasprintf("%s/../remote/setup.sh", dir);
        if (access(p, R_OK) != 0) SAFE_FREE(p);
    }
    free(dir);
    return p;
}

static char *worker_env(fleet *f)
{
    buf b;
    buf_init(&b, 0);
    int ok = buf_appendf(&b, "# gpuscribe worker settings, written by the controller\n") == 0;
    static const enum cfg_id keys[] = {CFG_ENGINE, CFG_WHISPER_MODEL, CFG_MODELS_PRELOAD, CFG_VAD,
                                       CFG_HF_TOKEN, CFG_LOG_LEVEL, CFG_DEADMAN_MINUTES,
                                       CFG_VAST_URL, CFG_WORKER_SLOTS};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const char *v = config_str(f->cfg, keys[i]);
        if (!v) continue;
        char *l = fleet_env_line(config_name(keys[i]), v);
        ok &= buf_append(&b, l, strlen(l)) == 0;
        free(l);
    }
    (void)ok;
    return buf_take(&b);
}

static char *setup_args(fleet *f)
{
    char *e = sshc_shell_quote(config_str(f->cfg, CFG_ENGINE));
    char *m = sshc_shell_quote(config_str(f->cfg, CFG_WHISPER_MODEL));
    char *s = xasprintf("--engine %s --model %s --port %d --src-id %s", e, m, f->worker_port,
                        f->payload.src_id);
    free(e);
    free(m);
    return s;
}

/* Upload setup.sh and worker.env, and, unless the instance's worker was built from this very
 * source (its .worker-source is our src_id), the source bundle and our own build of the worker
 * (setup.sh uses it where it runs, and builds from the bundle where it does not). 0 ok, -1
 * ssh error (err), -2 local problem (err). */
static int upload_files(inst *in, char *err, size_t errlen)
{
    fleet *f = in->f;
    char *out = NULL;
    int st = -1;
    int rc = sshc_exec_capture(in->ssh, "mkdir -p " REMOTE_DIR " && cat " REMOTE_DIR
                               "/.worker-source 2>/dev/null; true", NULL, 0, 4096, &out, NULL, 30,
                               &st, err, errlen);
    if (rc != SSHC_OK) {
        free(out);
        return -1;
    }
    if (out) out[strcspn(out, "\r\n")] = '\0';
    bool same = out && !strcmp(out, f->payload.src_id);
    free(out);
    if (!same) {
        struct stat sb, wb;
        double mb = stat(f->payload.bundle, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
        if (f->payload.worker && stat(f->payload.worker, &wb) == 0) mb += (double)wb.st_size / 1e6;
        char stage[120];
        snprintf(stage, sizeof stage, "uploading the worker's source%s (%.1f MB)",
                 f->payload.worker ? " and build" : "", mb);
        set_state(in, "installing", 62, stage, NULL);
        log_line(in, stage);
        if (sshc_upload(in->ssh, f->payload.bundle, REMOTE_DIR "/src.tar.gz", 0600, err, errlen) != SSHC_OK)
            return -1;
        if (f->payload.worker &&
            sshc_upload(in->ssh, f->payload.worker, REMOTE_DIR "/gpuscribe-worker.prebuilt", 0755,
                        err, errlen) != SSHC_OK)
            return -1;
    } else {
        log_line(in, "the instance's worker is built from this source already");
    }
    char *sp = setup_path(f);
    if (!sp) {
        snprintf(err, errlen, "remote/setup.sh not found (looked in %s/remote and beside %s); set "
                 "GS_SRCDIR", f->srcdir, f->exe);
        return -2;
    }
    rc = sshc_upload(in->ssh, sp, REMOTE_DIR "/setup.sh", 0755, err, errlen);
    free(sp);
    if (rc != SSHC_OK) return -1;
    char *env = worker_env(f);
    rc = sshc_upload_data(in->ssh, env, strlen(env), REMOTE_DIR "/worker.env", 0600, err, errlen);
    free(env);
    return rc == SSHC_OK ? 0 : -1;
}

/* One poll of the detached setup run: 1 finished (*rc set), 0 running, -1 ssh error, -2 the
 * run is gone (died / never started). */
static int poll_setup(inst *in, exec_ctx *x, int *rc_out, char *err, size_t errlen)
{
    char cmd[256];
    /* every answer starts with a status line (none: no setup there yet); an empty answer is
     * the transport's hiccup */
    snprintf(cmd, sizeof cmd, "if cd " REMOTE_DIR " 2>/dev/null && [ -f setup.sh ]; then "
             "sh setup.sh --poll %zu; else echo 'GPUSCRIBE-STATUS none'; fi", in->out_off);
    char *out = NULL;
    int st = -1;
    if (sshc_exec_capture(in->ssh, cmd, NULL, 0, 1 << 20, &out, NULL, 30, &st, err, errlen) !=
        SSHC_OK) {
        free(out);
        return -1;
    }
    int result = 0;
    char *nl = out ? strchr(out, '\n') : NULL;
    if ((!out || !*out) && ++in->empty_polls < 5) {
        /* an empty answer (the session's channel closed before the output came): a hiccup
         * of the transport, not a verdict on the setup run; ask again */
        free(out);
        return 0;
    }
    if (!out || !nl || strncmp(out, "GPUSCRIBE-STATUS ", 17) != 0) {
        if (!out || !*out) snprintf(err, errlen, "setup.sh --poll answered nothing %d times in a row", in->empty_polls);
        else snprintf(err, errlen, "unexpected answer from setup.sh --poll: %.200s", out);
        free(out);
        return -2;
    }
    in->empty_polls = 0;
    *nl = '\0';
    const char *status = out + 17;
    if (!strncmp(status, "done", 4)) {
        *rc_out = atoi(status + 4);
        result = 1;
    } else if (strcmp(status, "running") != 0) {
        result = -2;
    }
    /* complete lines only; a partial last line waits for the next poll (unless done) */
    char *p = nl + 1;
    size_t consumed = 0;
    for (;;) {
        char *e = strchr(p, '\n');
        if (!e) break;
        *e = '\0';
        on_setup_line(x, 0, p);
        consumed += (size_t)(e - p) + 1;
        p = e + 1;
    }
    if (result != 0 && *p) {
        on_setup_line(x, 0, p);
        consumed += strlen(p);
    }
    in->out_off += consumed;
    free(out);
    return result;
}

static void step_install(inst *in, row *r)
{
    fleet *f = in->f;
    if (ensure_ssh(in, r) != 0) return;
    char err[512] = "";
    exec_ctx x = {.in = in};
    /* a run already going (controller restarted mid-setup, or the session broke): follow
     * it from where this process left it (the start after a restart) */
    int rc = 0;
    size_t off = in->out_off;
    in->out_off = (size_t)1 << 40; /* status only */
    int pr = poll_setup(in, &x, &rc, err, sizeof err);
    in->out_off = off;
    bool following = pr == 0;
    if (pr == -1) goto ssh_broke;
    if (following) log_line(in, "following the setup run already in progress");
    x = (exec_ctx){.in = in};
    if (!f->payload.src_id) {
        fail(in, "cannot prepare the setup: %s", f->payload_err);
        return;
    }
    for (;;) {
        if (!following) {
            int u = upload_files(in, err, sizeof err);
            if (u == -1) goto ssh_broke;
            if (u == -2) { fail(in, "cannot prepare the setup: %s", err); return; }
            char *args = setup_args(f);
            const char *delay = getenv("GS_SETUP_DELAY"), *failat = getenv("GS_SETUP_FAIL");
            char *d = delay ? sshc_shell_quote(delay) : NULL, *fa = failat ? sshc_shell_quote(failat) : NULL;
            char *cmd = xasprintf("cd " REMOTE_DIR " && %s%s%s%s%s%ssh setup.sh --bg %s",
                                  d ? "GS_SETUP_DELAY=" : "", d ? d : "", d ? " " : "",
                                  fa ? "GS_SETUP_FAIL=" : "", fa ? fa : "", fa ? " " : "", args);
            free(d);
            free(fa);
            free(args);
            int st = -1;
            char *out = NULL;
            int erc = sshc_exec_capture(in->ssh, cmd, NULL, 0, 4096, &out, NULL, 60, &st, err,
                                        sizeof err);
            free(cmd);
            if (out) {
                out[strcspn(out, "\n")] = '\0';
                log_line(in, out);
            }
            free(out);
            if (erc != SSHC_OK) goto ssh_broke;
            if (st != 0) { fail(in, "setup.sh could not start (exit status %d)", st); return; }
            in->out_off = 0;
            x.last_error[0] = '\0';
        }
        following = false;
        /* follow the run */
        double delay = 0.2;
        int last_lines = -1;
        for (;;) {
            if (should_stop(in)) return;
            pr = poll_setup(in, &x, &rc, err, sizeof err);
            if (pr == -1) goto ssh_broke;
            if (in->nlines != last_lines) {
                log_lines_persist(in);
                last_lines = in->nlines;
            }
            if (pr == -2) {
                if (vast_check(in, NULL) == 0) return;
                fail(in, "setup on instance %s stopped without finishing (%s)", in->vid,
                     err[0] ? err : "its process died");
                return;
            }
            if (pr == 1) break;
            if (now_mono() - in->last_vast_check > 10 && vast_check(in, NULL) == 0) return;
            wait_s(in, delay);
            delay = delay * 1.5 > 1.0 ? 1.0 : delay * 1.5;
        }
        log_lines_persist(in);
        break;
    }
    if (rc != 0) {
        if (vast_check(in, NULL) == 0) return;
        fail(in, "setup failed on instance %s (exit status %d): %s", in->vid, rc,
             x.last_error[0] ? x.last_error : x.last_line[0] ? x.last_line : "no output");
        return;
    }
    instances_set_deadline(f->st, in->row, 0);
    set_state(in, "starting_worker", 95, "starting worker", NULL);
    return;

ssh_broke:
    ssh_drop(in);
    if (should_stop(in)) return;
    if (vast_check(in, NULL) == 0) return;
    {
        instances_add_attempt(f->st, in->row);
        if (r->attempts + 1 >= MAX_ATTEMPTS) {
            fail(in, "setup on instance %s kept losing its SSH session (%s)", in->vid, err);
            return;
        }
        char line[600];
        snprintf(line, sizeof line, "SSH session lost during setup (%s); retrying", err);
        log_line(in, line);
        log_lines_persist(in);
    }
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
    if (ensure_ssh(in, r) != 0) return;
    char *args = setup_args(f);
    char *cmd = xasprintf("cd " REMOTE_DIR " && sh setup.sh --start-worker %s --wait 30", args);
    free(args);
    exec_ctx x = {.in = in};
    char err[512] = "";
    int st = -1;
    int rc = sshc_exec(in->ssh, cmd, NULL, 0, on_setup_line, &x, 90, &st, err, sizeof err);
    free(cmd);
    log_lines_persist(in);
    if (rc != SSHC_OK || st != 0) {
        ssh_drop(in);
        if (should_stop(in)) return;
        if (vast_check(in, NULL) == 0) return;
        instances_add_attempt(f->st, in->row);
        if (r->attempts + 1 >= MAX_ATTEMPTS) {
            fail(in, "the worker on instance %s did not start: %s", in->vid,
                 rc != SSHC_OK ? err : x.last_error[0] ? x.last_error : "setup.sh --start-worker failed");
            return;
        }
        /* maybe something is missing: run the (idempotent) setup again */
        set_state(in, "installing", 60, "installing (again)", NULL);
        return;
    }
    ssh_drop(in);
    sshc_target t;
    char alias[48];
    target_of(in, r, &t, alias, sizeof alias);
    t.connect_timeout_s = 10;
    tunnel *tn = tunnel_start(&t, f->worker_port, "/health", TUNNEL_CHECK_S, err, sizeof err);
    if (!tn) {
        if (strstr(err, "host key")) { fail(in, "SSH refused: %s", err); return; }
        if (vast_check(in, NULL) == 0) return;
        char line[600];
        snprintf(line, sizeof line, "cannot open the tunnel: %s", err);
        enter_ssh_wait(in, line);
        return;
    }
    tunnel_status ts;
    double end = now_mono() + 30;
    for (;;) {
        tunnel_get_status(tn, &ts);
        if (ts.state == TUNNEL_UP || now_mono() > end || should_stop(in)) break;
        sleep_s(0.1);
    }
    if (ts.state != TUNNEL_UP) {
        tunnel_stop(tn);
        if (should_stop(in)) return;
        instances_add_attempt(f->st, in->row);
        if (r->attempts + 1 >= MAX_ATTEMPTS) {
            fail(in, "the worker on instance %s does not answer /health through the tunnel: %s",
                 in->vid, ts.last_error);
            return;
        }
        set_state(in, "starting_worker", 95, "starting worker (retrying)", NULL);
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ts.local_port);
    json_t *h = NULL;
    json_t *w = NULL;
    if (worker_client_health(url, &h, err, sizeof err) == 0) {
        w = json_pack("{s:O?,s:O?,s:O?}", "engine", json_object_get(h, "engine"), "model",
                      json_object_get(h, "model"), "gpu", json_object_get(h, "gpu_name"));
        if (w && json_is_null(json_object_get(w, "gpu")))
            json_object_set(w, "gpu", json_object_get(h, "gpu"));
        json_decref(h);
    }
    if (!w) w = json_pack("{s:n,s:n,s:n}", "engine", "model", "gpu");
    set_worker(in, tn, w);
    instances_set_worker(f->st, in->row, f->worker_port);
    set_state(in, "ready", 100, "ready", NULL);
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
        set_state(in, "starting_worker", 95, "reconnecting to the worker", NULL);
        return;
    }
    (void)r;
    double bad_since = 0;
    char last_tstate[24] = "up";
    while (!should_stop(in)) {
        wait_s(in, 1.0);
        if (should_stop(in)) return;
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
            fail(in, "SSH refused: %s", ts.last_error);
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
        if (vast_check(in, NULL) == 0) {
            set_worker(in, NULL, NULL);
            return;
        }
        if (!why[0]) continue;
        LOG_W("fleet", "instance %s: rechecking the worker (%s)", in->vid, why);
        char line[400];
        snprintf(line, sizeof line, "recheck: %s", why);
        log_line(in, line);
        set_worker(in, NULL, NULL);
        set_state(in, "starting_worker", 95, "rechecking the worker", NULL);
        return;
    }
}

static void *drive(void *arg)
{
    inst *in = arg;
    fleet *f = in->f;
    double delay = 1;
    while (!should_stop(in)) {
        row r;
        if (row_load(f->st, in->row, &r) <= 0) break;
        if (final_state(r.state)) {
            snapshot(in, r.state, r.percent, r.stage, NULL);
            break;
        }
        if (!in->state[0]) snapshot(in, r.state, r.percent, r.stage, NULL);
        if (!strcmp(r.state, "requested") || !strcmp(r.state, "creating") ||
            !strcmp(r.state, "loading"))
            step_loading(in, &r, &delay);
        else if (!strcmp(r.state, "ssh_wait")) step_ssh_wait(in, &r);
        else if (!strcmp(r.state, "installing")) step_install(in, &r);
        else if (!strcmp(r.state, "starting_worker")) step_start(in, &r);
        else if (!strcmp(r.state, "ready")) step_ready(in, &r);
        else {
            LOG_W("fleet", "instance %s: unknown state '%s'", in->vid, r.state);
            break;
        }
    }
    ssh_drop(in);
    set_worker(in, NULL, NULL);
    log_clear(in);
    pthread_mutex_lock(&f->lock);
    in->finished = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

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
        if (pthread_create(&in->th, NULL, drive, in) == 0) in->has_thread = true;
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

static void register_key(fleet *f)
{
    if (f->account_key_id > 0 || !vastctl_has_key(f->vc)) return;
    char *path = xasprintf("%s/ssh/vast_key_id", f->data_dir);
    const char *url = vast_client_base_url(f->client);
    char *txt = read_file(path, 4096, NULL);
    if (txt) {
        char *sp = strrchr(txt, ' ');
        if (sp) {
            *sp = '\0';
            if (!strcmp(txt, url)) f->account_key_id = strtoll(sp + 1, NULL, 10);
        }
        free(txt);
    }
    if (f->account_key_id <= 0) {
        long long id = 0;
        vast_error e;
        if (vast_add_ssh_key(f->client, f->pubkey, &id, &e) == 0 && id > 0) {
            f->account_key_id = id;
            char *line = xasprintf("%s %lld\n", url, id);
            write_file_atomic(path, line, strlen(line), 0600);
            free(line);
            LOG_I("fleet", "registered gpuscribe's SSH key on the Vast.ai account (key %lld)", id);
        } else {
            LOG_W("fleet", "cannot register gpuscribe's SSH key on the Vast.ai account yet: %s "
                  "(it is attached to each instance instead)", e.message);
        }
    }
    free(path);
}

/* VAST_INSTANCE_ID at start: 1 done (adopted, already known, or nothing to do), 0 retry later */
static int auto_connect(fleet *f)
{
    char cur[32];
    vastctl_current_instance(f->vc, cur, sizeof cur);
    long id;
    if (!cur[0] || !vastctl_has_key(f->vc) || parse_long(cur, &id) != 0 || id <= 0) return 1;
    instance_row known;
    int have = instances_by_vast_id(f->st, cur, &known);
    if (have < 0) return 0;
    long long rowid = have ? known.id : 0;
    const char *state = known.state;
    if (rowid && !final_state(state)) {
        LOG_I("fleet", "VAST_INSTANCE_ID=%s: resuming instance %s (%s)", cur, cur, state);
        return 1;
    }
    vast_instance vi;
    vast_error e;
    if (vast_show_instance(f->client, id, &vi, &e) != 0) {
        if (e.kind == VAST_ERR_NOT_FOUND) return 1; /* vastctl reports and clears it */
        LOG_W("fleet", "VAST_INSTANCE_ID=%s: cannot check it yet: %s", cur, e.message);
        return 0;
    }
    char why[400];
    if (vast_status_classify(&vi, why, sizeof why) == VAST_STATUS_FAILED) {
        LOG_W("fleet", "VAST_INSTANCE_ID=%s: not usable: %s", cur, why);
        vast_instance_clear(&vi);
        return 1;
    }
    bool running = !strcmp(vi.actual_status, "running") && vi.ssh_port > 0;
    const char *st = running ? "ssh_wait" : "loading";
    const char *stage = running ? "waiting for SSH" : "loading image";
    int pct = running ? 30 : 20;
    double t = now_wall();
    bool fresh = !rowid;
    if (rowid) {
        instances_resume(f->st, rowid, st, stage, pct, vi.ssh_host, vi.ssh_port, t);
    } else {
        instance_row nr;
        memset(&nr, 0, sizeof nr);
        snprintf(nr.vast_id, sizeof nr.vast_id, "%s", cur);
        snprintf(nr.state, sizeof nr.state, "%s", st);
        snprintf(nr.stage, sizeof nr.stage, "%s", stage);
        nr.percent = pct;
        snprintf(nr.label, sizeof nr.label, "%s", vi.label);
        snprintf(nr.gpu_name, sizeof nr.gpu_name, "%s", vi.gpu_name);
        nr.num_gpus = vi.num_gpus;
        nr.dph_total = vi.dph_total;
        nr.dph_base = vi.dph_base;
        nr.storage_dph = vi.storage_total_cost;
        snprintf(nr.ssh_host, sizeof nr.ssh_host, "%s", vi.ssh_host);
        nr.ssh_port = vi.ssh_port;
        nr.created_at = vi.start_date > 0 ? vi.start_date : t;
        nr.updated_at = t;
        nr.running_at = running ? t : 0;
        rowid = instances_insert_found(f->st, &nr);
    }
    /* the ledger: storage since Vast's start date for an instance new to the store, GPU from
     * now while it runs (the reaper refines both from the API) */
    if (rowid > 0) {
        instance_facts fx = {.dph_total = vi.dph_total, .dph_base = vi.dph_base,
                             .storage_dph = vi.storage_total_cost};
        instances_observe(f->st, rowid, NULL, &fx, t);
        if (fresh) ledger_sync(f->st, rowid, false, true, vi.dph_base, vi.storage_total_cost,
                               vi.start_date > 0 && vi.start_date < t ? vi.start_date : t);
        ledger_sync(f->st, rowid, running, true, vi.dph_base, vi.storage_total_cost,
                    running ? ledger_running_since(t, ledger_uptime_s(vi.raw), vi.start_date) : t);
    }
    LOG_I("fleet", "VAST_INSTANCE_ID=%s: instance %s is %s on Vast.ai; connecting to it (setup "
          "only where something is missing)", cur, cur,
          vi.actual_status[0] ? vi.actual_status : "being created");
    vast_instance_clear(&vi);
    return 1;
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
            register_key(f);
            if (!connected) connected = auto_connect(f) == 1;
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
    char alias[48], err[256];
    snprintf(alias, sizeof alias, "vast-%s", vid);
    if (sshc_forget_host(f->known_hosts, alias, err, sizeof err) != 0)
        LOG_W("fleet", "cannot forget the host key of instance %s: %s", vid, err);
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

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

/* The setup log's last LOG_SHOW lines, as a JSON array (bytes that are not UTF-8: '?'). */
static json_t *log_json(const char *sl)
{
    json_t *log = json_array();
    if (!sl) return log;
    int total = 0;
    for (const char *p = sl; *p; p++) total += *p == '\n';
    int skip = total > LOG_SHOW ? total - LOG_SHOW : 0;
    const char *p = sl;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (skip > 0) skip--;
        else {
            json_t *line = json_stringn(p, n); /* NULL: not UTF-8 */
            if (!line) {
                char *c = xstrndup(p, n);
                for (char *q = c; *q; q++)
                    if ((unsigned char)*q >= 0x80) *q = '?';
                line = json_string(c);
                free(c);
            }
            json_array_append_new(log, line);
        }
        p += n + (e ? 1 : 0);
    }
    return log;
}

json_t *fleet_instance_json(fleet *f, const char *vast_id)
{
    instance_row r;
    if (instances_by_vast_id(f->st, vast_id, &r) != 1) return NULL;
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(vast_id));
    json_object_set_new(j, "row_id", json_integer(r.id));
    json_object_set_new(j, "label", str_or_null(r.label));
    json_object_set_new(j, "state", str_or_null(r.state));
    json_object_set_new(j, "stage", json_string(r.stage));
    json_object_set_new(j, "percent", json_integer(r.percent));
    json_object_set_new(j, "error", str_or_null(r.error));
    char *sl = instances_setup_log(f->st, r.id);
    json_object_set_new(j, "log", log_json(sl));
    free(sl);
    json_object_set_new(j, "gpu_name", str_or_null(r.gpu_name));
    json_object_set_new(j, "num_gpus", r.num_gpus > 0 ? json_integer(r.num_gpus) : json_null());
    json_object_set_new(j, "dph_total", r.dph_total > 0 ? json_real(r.dph_total) : json_null());
    json_object_set_new(j, "ssh_host", str_or_null(r.ssh_host));
    json_object_set_new(j, "ssh_port", r.ssh_port > 0 ? json_integer(r.ssh_port) : json_null());
    json_object_set_new(j, "created_at", json_real(r.created_at));
    json_object_set_new(j, "ready_at", r.ready_at > 0 ? json_real(r.ready_at) : json_null());
    if (!j) return NULL;
    json_t *worker = json_null(), *tj = json_null();
    pthread_mutex_lock(&f->lock);
    inst *in = find_vid(f, vast_id);
    if (in && in->tn) {
        tunnel_status ts;
        tunnel_get_status(in->tn, &ts);
        tj = json_pack("{s:s,s:f,s:s?,s:i}", "state", ts.state_name, "rtt_ms", ts.rtt_ms,
                       "last_error", ts.last_error[0] ? ts.last_error : NULL, "reconnects",
                       ts.reconnects);
        if (in->worker) worker = json_deep_copy(in->worker);
    }
    pthread_mutex_unlock(&f->lock);
    json_object_set_new(j, "worker", worker ? worker : json_null());
    json_object_set_new(j, "tunnel", tj ? tj : json_null());
    pthread_mutex_lock(&f->lock);
    fleet_json_hook hook = f->json_hook;
    void *hud = f->json_hook_ud;
    pthread_mutex_unlock(&f->lock);
    if (hook) hook(hud, json_integer_value(json_object_get(j, "row_id")), j);
    return j;
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
    if (!f || !f->bus) return;
    json_t *j = fleet_instance_json(f, vast_id);
    if (j) events_publish(f->bus, "instance.state", j, 0);
}
