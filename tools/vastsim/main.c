/* vastsim main: command line, startup, the lifecycle thread, and shutdown.
 *
 *   build/vastsim [--port N] [--port-file F] [--state-dir DIR] [--api-key KEY]...
 *                 [--loading-delay S] [--running-delay S] [--seed N] [--offers N]
 *                 [--log-level error|warn|info|debug] [--isolation auto|off]
 *                 [--stop-status exited|stopped] [--credit USD] [--auth-error-code 401|404]
 *                 [--v0-list 410|legacy] [--rate-limit] [--account-keys at-create|live]
 *                 [--host 127.0.0.1]
 *
 * Environment defaults (flags win): VASTSIM_LOADING_DELAY, VASTSIM_RUNNING_DELAY, VASTSIM_SEED,
 * VASTSIM_API_KEY. The first stdout line is `vastsim listening on http://127.0.0.1:PORT`.
 * SIGTERM/SIGINT/SIGHUP: destroy every instance (killing all their processes), remove their
 * files, exit 0.
 */
#define _GNU_SOURCE
#include "sim.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sim g_sim = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void usage(FILE *f)
{
    fputs("usage: vastsim [options]\n"
          "  --port N               API port on 127.0.0.1 (0 = ephemeral; default 0)\n"
          "  --port-file F          write the chosen port to F\n"
          "  --state-dir DIR        instance directories live in DIR/instances (default: a temp dir)\n"
          "  --api-key KEY          a valid account key (repeatable; default $VASTSIM_API_KEY)\n"
          "  --loading-delay S      seconds from create (or start) to actual_status loading (default 1)\n"
          "  --running-delay S      seconds from loading to running (default 2)\n"
          "  --seed N               catalog seed (default 1)\n"
          "  --offers N             catalog size (default 120)\n"
          "  --log-level L          error, warn, info, debug (default info)\n"
          "  --isolation auto|off   namespaces when root (auto, default) or never\n"
          "  --image NAME=ROOT      instances of image NAME (the create request's \"image\", tag and\n"
          "                         all) run in the root file system ROOT (with isolation: an\n"
          "                         overlay private to each instance, pivot_root into it; its own\n"
          "                         /bin/sh and /usr/sbin/sshd serve SSH). Repeatable\n"
          "  --stop-status S        actual_status after a user stop: exited (default) or stopped\n"
          "  --credit USD           account credit (default 100)\n"
          "  --auth-error-code C    401 (default) or 404 for a bad key\n"
          "  --v0-list M            GET /api/v0/instances/: 410 (default) or legacy\n"
          "  --account-keys M       at-create (default: account keys are copied into an instance\n"
          "                         when it is created, as Vast's docs say) or live (every instance\n"
          "                         always trusts the current account keys)\n"
          "  --rate-limit           enforce the per-endpoint minimum intervals (off by default)\n"
          "  --host H               must be 127.0.0.1 or localhost: vastsim only listens on loopback\n",
          f);
}

static int num_opt(const char *name, const char *v, double *out)
{
    if (!v || parse_double(v, out) < 0 || *out < 0) {
        fprintf(stderr, "vastsim: %s needs a non-negative number\n", name);
        return -1;
    }
    return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void *tick_main(void *arg)
{
    (void)arg;
    while (!g_sim.stopping) {
        pthread_mutex_lock(&g_sim.mu);
        double now = now_wall();
        sandbox_reap();
        inst_tick(now);
        results_prune(now);
        pthread_mutex_unlock(&g_sim.mu);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    g_sim.loading_delay = 1.0;
    g_sim.running_delay = 2.0;
    g_sim.seed = 1;
    g_sim.n_offers = 120;
    g_sim.isolation = true;
    g_sim.initial_credit = 100.0;
    g_sim.auth_error_code = 401;
    g_sim.rate_scale = 1.0;
    g_sim.next_offer_id = 8000001;
    g_sim.next_instance_id = 24000001;
    g_sim.next_key_id = 101;
    const char *stop_status = "exited";
    const char *port_file = NULL;
    const char *state_dir = NULL;
    double d;
    const char *e;
    if ((e = getenv("VASTSIM_LOADING_DELAY")) && parse_double(e, &d) == 0 && d >= 0) g_sim.loading_delay = d;
    if ((e = getenv("VASTSIM_RUNNING_DELAY")) && parse_double(e, &d) == 0 && d >= 0) g_sim.running_delay = d;
    if ((e = getenv("VASTSIM_SEED")) && parse_double(e, &d) == 0 && d >= 0) g_sim.seed = (uint64_t)d;
    g_sim.account_keys_cfg = xcalloc((size_t)argc + 2, sizeof *g_sim.account_keys_cfg);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--rate-limit")) { g_sim.rate_limit = true; takes = false; }
        else if (!v) { fprintf(stderr, "vastsim: %s needs a value (or is unknown)\n", a); usage(stderr); return 2; }
        else if (!strcmp(a, "--port")) {
            long p;
            if (parse_long(v, &p) < 0 || p < 0 || p > 65535) { fprintf(stderr, "vastsim: bad --port\n"); return 2; }
            g_sim.port = (int)p;
        } else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--state-dir")) state_dir = v;
        else if (!strcmp(a, "--api-key")) {
            if (!*v) { fprintf(stderr, "vastsim: empty --api-key\n"); return 2; }
            g_sim.account_keys_cfg[g_sim.n_account_keys_cfg++] = xstrdup(v);
        } else if (!strcmp(a, "--loading-delay")) { if (num_opt(a, v, &g_sim.loading_delay) < 0) return 2; }
        else if (!strcmp(a, "--running-delay")) { if (num_opt(a, v, &g_sim.running_delay) < 0) return 2; }
        else if (!strcmp(a, "--seed")) { if (num_opt(a, v, &d) < 0) return 2; g_sim.seed = (uint64_t)d; }
        else if (!strcmp(a, "--offers")) {
            if (num_opt(a, v, &d) < 0 || d < 1 || d > 100000) { fprintf(stderr, "vastsim: bad --offers\n"); return 2; }
            g_sim.n_offers = (int)d;
        } else if (!strcmp(a, "--credit")) { if (num_opt(a, v, &g_sim.initial_credit) < 0) return 2; }
        else if (!strcmp(a, "--log-level")) {
            int l = log_parse_level(v);
            if (l < 0) { fprintf(stderr, "vastsim: bad --log-level\n"); return 2; }
            log_set_level((enum log_level)l);
        } else if (!strcmp(a, "--isolation")) {
            if (!strcmp(v, "off")) g_sim.isolation = false;
            else if (strcmp(v, "auto") && strcmp(v, "on")) { fprintf(stderr, "vastsim: --isolation auto|off\n"); return 2; }
        } else if (!strcmp(a, "--image")) {
            const char *eq = strchr(v, '=');
            struct stat ist;
            if (!eq || eq == v || eq[1] != '/') { fprintf(stderr, "vastsim: --image NAME=/ROOT\n"); return 2; }
            char *root = xstrdup(eq + 1), *sh = xasprintf("%s/bin/sh", root), *sd = xasprintf("%s/usr/sbin/sshd", root);
            bool ok = stat(root, &ist) == 0 && S_ISDIR(ist.st_mode) && access(sh, X_OK) == 0 && access(sd, X_OK) == 0;
            free(sh);
            free(sd);
            if (!ok) {
                fprintf(stderr, "vastsim: --image %s: %s is not a root file system with /bin/sh and /usr/sbin/sshd\n", v, root);
                free(root);
                return 2;
            }
            g_sim.image_names = xrealloc(g_sim.image_names, (size_t)(g_sim.n_images + 1) * sizeof(char *));
            g_sim.image_roots = xrealloc(g_sim.image_roots, (size_t)(g_sim.n_images + 1) * sizeof(char *));
            g_sim.image_names[g_sim.n_images] = xstrndup(v, (size_t)(eq - v));
            g_sim.image_roots[g_sim.n_images++] = root;
        } else if (!strcmp(a, "--stop-status")) {
            if (strcmp(v, "exited") && strcmp(v, "stopped")) { fprintf(stderr, "vastsim: --stop-status exited|stopped\n"); return 2; }
            stop_status = !strcmp(v, "exited") ? "exited" : "stopped";
        } else if (!strcmp(a, "--auth-error-code")) {
            if (strcmp(v, "401") && strcmp(v, "404")) { fprintf(stderr, "vastsim: --auth-error-code 401|404\n"); return 2; }
            g_sim.auth_error_code = atoi(v);
        } else if (!strcmp(a, "--v0-list")) {
            if (strcmp(v, "410") && strcmp(v, "legacy")) { fprintf(stderr, "vastsim: --v0-list 410|legacy\n"); return 2; }
            g_sim.v0_list_legacy = !strcmp(v, "legacy");
        } else if (!strcmp(a, "--account-keys")) {
            if (strcmp(v, "at-create") && strcmp(v, "live")) { fprintf(stderr, "vastsim: --account-keys at-create|live\n"); return 2; }
            g_sim.live_account_keys = !strcmp(v, "live");
        } else if (!strcmp(a, "--host")) {
            if (strcmp(v, "127.0.0.1") && strcmp(v, "localhost")) {
                fprintf(stderr, "vastsim: refusing to listen on %s: vastsim only listens on 127.0.0.1\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "vastsim: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (takes) i++;
    }
    g_sim.stop_status = (char *)stop_status;
    if (g_sim.n_account_keys_cfg == 0) {
        const char *k = getenv("VASTSIM_API_KEY");
        g_sim.account_keys_cfg[g_sim.n_account_keys_cfg++] = xstrdup(k && *k ? k : "vastsim-test-key");
        if (!(k && *k)) LOG_W(SIM_TAG, "no --api-key given: the account key is \"vastsim-test-key\"");
    }
    for (int i = 0; i < g_sim.n_account_keys_cfg; i++) log_add_secret(g_sim.account_keys_cfg[i]);

    if (state_dir) {
        g_sim.state_dir = realpath(state_dir, NULL);
        if (!g_sim.state_dir) {
            if (mkdir_p(state_dir, 0700) < 0 || !(g_sim.state_dir = realpath(state_dir, NULL))) {
                fprintf(stderr, "vastsim: cannot create --state-dir %s: %s\n", state_dir, strerror(errno));
                return 1;
            }
        }
    } else {
        char tmpl[] = "/tmp/vastsim.XXXXXX";
        if (!mkdtemp(tmpl)) { fprintf(stderr, "vastsim: mkdtemp: %s\n", strerror(errno)); return 1; }
        g_sim.state_dir = xstrdup(tmpl);
        g_sim.state_dir_owned = true;
    }
    char *inst_dir = xasprintf("%s/instances", g_sim.state_dir);
    rm_rf(inst_dir);       /* leftovers of an earlier run are stale */
    if (mkdir_p(inst_dir, 0700) < 0) {
        fprintf(stderr, "vastsim: cannot create %s: %s\n", inst_dir, strerror(errno));
        return 1;
    }
    if (pipe2(g_sim.wake_fd, O_CLOEXEC | O_NONBLOCK) < 0) { perror("vastsim: pipe"); return 1; }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    g_sim.started_at = now_wall();
    g_sim.rate_last = json_object();
    g_sim.vanish_offers = json_array();
    sandbox_probe();
    sandbox_sweep_orphans();
    catalog_init();
    if (api_start() < 0) {
        fprintf(stderr, "vastsim: cannot listen on 127.0.0.1:%d: %s\n", g_sim.port, strerror(errno));
        return 1;
    }
    printf("vastsim listening on http://127.0.0.1:%d\n", g_sim.port);
    fflush(stdout);
    if (port_file) {
        char *txt = xasprintf("%d\n", g_sim.port);
        if (write_file_atomic(port_file, txt, strlen(txt), 0644) < 0)
            LOG_E(SIM_TAG, "cannot write %s: %s", port_file, strerror(errno));
        free(txt);
    }
    LOG_I(SIM_TAG, "listening on http://127.0.0.1:%d: %d offers (seed %llu), state in %s, delays %.1fs + %.1fs",
          g_sim.port, g_sim.n_offers, (unsigned long long)g_sim.seed, g_sim.state_dir, g_sim.loading_delay,
          g_sim.running_delay);

    pthread_t net, tick;
    pthread_create(&net, NULL, net_thread_main, NULL);
    pthread_create(&tick, NULL, tick_main, NULL);

    int sig = 0;
    sigwait(&sigs, &sig);
    LOG_I(SIM_TAG, "signal %d: destroying every instance and exiting", sig);
    g_sim.stopping = 1;
    net_wake();
    pthread_join(net, NULL);
    pthread_join(tick, NULL);
    api_stop();

    pthread_mutex_lock(&g_sim.mu);
    inst_destroy_all();
    sandbox_reap();
    for (size_t i = 0; i < g_sim.n_dead; i++) close(g_sim.dead_fds[i]);
    g_sim.n_dead = 0;
    pthread_mutex_unlock(&g_sim.mu);

    rm_rf(inst_dir);
    if (g_sim.state_dir_owned) rm_rf(g_sim.state_dir);
    free(inst_dir);
    catalog_free();
    ledger_free();
    keys_free(g_sim.account_keys);
    faults_free();
    requests_free();
    results_free();
    json_decref(g_sim.rate_last);
    json_decref(g_sim.vanish_offers);
    for (int i = 0; i < g_sim.n_account_keys_cfg; i++) free(g_sim.account_keys_cfg[i]);
    free(g_sim.account_keys_cfg);
    free(g_sim.dead_fds);
    free(g_sim.ssh_pids);
    free(g_sim.ssh_pid_inst);
    free(g_sim.state_dir);
    free(g_sim.isolation_reason);
    for (int k = 0; k < g_sim.n_images; k++) {
        free(g_sim.image_names[k]);
        free(g_sim.image_roots[k]);
    }
    free(g_sim.image_names);
    free(g_sim.image_roots);
    free(g_sim.ssh_user);
    log_clear_secrets();
    close(g_sim.wake_fd[0]);
    close(g_sim.wake_fd[1]);
    LOG_I(SIM_TAG, "bye");
    return 0;
}
