#include "fleet/remote_setup.h"

#include "core/log.h"
#include "core/util.h"
#include "fleet/fleet_int.h"
#include "fleet/instance.h"
#include "store/instances.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REMOTE_DIR "/workspace/gpuscribe"
#ifndef GS_SHAREDIR
#define GS_SHAREDIR "/usr/share/gpuscribe"
#endif

typedef struct exec_ctx {
    inst *in;
    char last_error[400];
    char last_line[400];
    int progress_seen;
} exec_ctx;

/* ------------------------------------------------------------------ pure helpers and the payload */

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

int fleet_parse_step(const char *line, char *name, size_t namelen, double *seconds)
{
    static const char tag[] = "GPUSCRIBE-STEP ";
    if (strncmp(line, tag, sizeof tag - 1) != 0) return 0;
    const char *p = line + sizeof tag - 1;
    size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    if (n == 0 || n > 31 || n >= namelen || p[n] != ' ') return 0;
    char *end;
    double v = strtod(p + n + 1, &end);
    if (end == p + n + 1 || !isfinite(v) || v < 0) return 0;
    while (*end == ' ' || *end == '\r') end++;
    if (*end) return 0;
    memcpy(name, p, n);
    name[n] = '\0';
    *seconds = v;
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
    /* beside the binary (build/), its parent, the source tree's build/, the installed data
     * directory (the package's /usr/share/gpuscribe) */
    char *dirs[] = {xstrdup(d), xasprintf("%s/..", d), xasprintf("%s/build", srcdir),
                    xstrdup(GS_SHAREDIR), xstrdup("/usr/share/gpuscribe")};
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
                 "beside %s, in %s/build or in " GS_SHAREDIR ": run make", exe, srcdir);
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

/* ------------------------------------------------------------------ the protocol */

static void on_setup_line(void *ud, int is_stderr, const char *line)
{
    (void)is_stderr;
    exec_ctx *x = ud;
    int pct;
    char stage[200];
    if (!strncmp(line, "GPUSCRIBE-STATUS ", 17)) return;
    inst_log_line(x->in, line);
    if (fleet_parse_progress(line, &pct, stage, sizeof stage)) {
        /* a copy, under the lock: fleet_forget writes the state from other threads, and
         * inst_set_state writes it from the argument */
        char state[sizeof x->in->state];
        pthread_mutex_lock(&x->in->f->lock);
        snprintf(state, sizeof state, "%s", x->in->state);
        int cur = x->in->percent;
        pthread_mutex_unlock(&x->in->f->lock);
        if (pct < cur) pct = cur; /* never backwards */
        if (pct < 60) pct = 60;
        if (pct > 90 && !strcmp(state, "installing")) pct = 90;
        inst_set_state(x->in, state, pct, stage, NULL);
        x->progress_seen++;
    } else if (!strncmp(line, "GPUSCRIBE-ERROR ", 16)) {
        snprintf(x->last_error, sizeof x->last_error, "%s", line + 16);
    } else if (line[0]) {
        snprintf(x->last_line, sizeof x->last_line, "%s", line);
    }
}

/* remote/setup.sh: in the source tree, beside the binary or its parent, or installed */
static char *setup_path(fleet *f)
{
    char *dir = dir_of(f->exe);
    char *cand[] = {xasprintf("%s/remote/setup.sh", f->srcdir), xasprintf("%s/remote/setup.sh", dir),
                    xasprintf("%s/../remote/setup.sh", dir), xstrdup(GS_SHAREDIR "/remote/setup.sh")};
    free(dir);
    char *p = NULL;
    for (size_t i = 0; i < ARRAY_LEN(cand); i++) {
        if (!p && access(cand[i], R_OK) == 0) p = cand[i];
        else free(cand[i]);
    }
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
        inst_set_state(in, "installing", 62, stage, NULL);
        inst_log_line(in, stage);
        if (sshc_upload(in->ssh, f->payload.bundle, REMOTE_DIR "/src.tar.gz", 0600, err, errlen) != SSHC_OK)
            return -1;
        if (f->payload.worker &&
            sshc_upload(in->ssh, f->payload.worker, REMOTE_DIR "/gpuscribe-worker.prebuilt", 0755,
                        err, errlen) != SSHC_OK)
            return -1;
    } else {
        inst_log_line(in, "the instance's worker is built from this source already");
    }
    char *sp = setup_path(f);
    if (!sp) {
        snprintf(err, errlen, "remote/setup.sh not found (looked in %s/remote, beside %s and in "
                 GS_SHAREDIR "/remote); set GS_SRCDIR", f->srcdir, f->exe);
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

void rsetup_step_install(inst *in, row *r)
{
    fleet *f = in->f;
    if (inst_ensure_ssh(in, r) != 0) return;
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
    if (following) inst_log_line(in, "following the setup run already in progress");
    x = (exec_ctx){.in = in};
    if (!f->payload.src_id) {
        inst_fail(in, "cannot prepare the setup: %s", f->payload_err);
        return;
    }
    for (;;) {
        if (!following) {
            int u = upload_files(in, err, sizeof err);
            if (u == -1) goto ssh_broke;
            if (u == -2) { inst_fail(in, "cannot prepare the setup: %s", err); return; }
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
                inst_log_line(in, out);
            }
            free(out);
            if (erc != SSHC_OK) goto ssh_broke;
            if (st != 0) { inst_fail(in, "setup.sh could not start (exit status %d)", st); return; }
            in->out_off = 0;
            x.last_error[0] = '\0';
        }
        following = false;
        /* follow the run */
        double delay = 0.2;
        int last_lines = -1;
        for (;;) {
            if (inst_should_stop(in)) return;
            pr = poll_setup(in, &x, &rc, err, sizeof err);
            if (pr == -1) goto ssh_broke;
            if (in->nlines != last_lines) {
                inst_log_persist(in);
                last_lines = in->nlines;
            }
            if (pr == -2) {
                if (inst_vast_check(in, NULL) == 0) return;
                inst_fail(in, "setup on instance %s stopped without finishing (%s)", in->vid,
                     err[0] ? err : "its process died");
                return;
            }
            if (pr == 1) break;
            if (now_mono() - in->last_vast_check > 10 && inst_vast_check(in, NULL) == 0) return;
            inst_wait(in, delay);
            delay = delay * 1.5 > 1.0 ? 1.0 : delay * 1.5;
        }
        inst_log_persist(in);
        break;
    }
    if (rc != 0) {
        if (inst_vast_check(in, NULL) == 0) return;
        inst_fail(in, "setup failed on instance %s (exit status %d): %s", in->vid, rc,
             x.last_error[0] ? x.last_error : x.last_line[0] ? x.last_line : "no output");
        return;
    }
    instances_set_deadline(f->st, in->row, 0);
    inst_set_state(in, "starting_worker", 95, "starting worker", NULL);
    return;

ssh_broke:
    inst_ssh_drop(in);
    if (inst_should_stop(in)) return;
    if (inst_vast_check(in, NULL) == 0) return;
    {
        instances_add_attempt(f->st, in->row);
        if (r->attempts + 1 >= MAX_ATTEMPTS) {
            inst_fail(in, "setup on instance %s kept losing its SSH session (%s)", in->vid, err);
            return;
        }
        char line[600];
        snprintf(line, sizeof line, "SSH session lost during setup (%s); retrying", err);
        inst_log_line(in, line);
        inst_log_persist(in);
    }
}

int rsetup_start_worker(inst *in, char *why, size_t whylen)
{
    char *args = setup_args(in->f);
    char *cmd = xasprintf("cd " REMOTE_DIR " && sh setup.sh --start-worker %s --wait 30", args);
    free(args);
    exec_ctx x = {.in = in};
    char err[512] = "";
    int st = -1;
    int rc = sshc_exec(in->ssh, cmd, NULL, 0, on_setup_line, &x, 90, &st, err, sizeof err);
    free(cmd);
    inst_log_persist(in);
    if (rc == SSHC_OK && st == 0) return 0;
    snprintf(why, whylen, "%s", rc != SSHC_OK ? err : x.last_error[0] ? x.last_error
                                                 : "setup.sh --start-worker failed");
    return -1;
}
