/* cli worker: `gpuscribe worker --listen 127.0.0.1:PORT [--engine auto|sphinx|whisper]
 * [--model NAME] [--work-dir DIR] [--max-queue N] [--result-ttl-minutes M]` runs the worker
 * HTTP API (worker.h) until SIGINT/SIGTERM. ENGINE and WHISPER_MODEL from the configuration
 * are the defaults. Any non-loopback --listen address is refused (exit 2). */
#include "cli/cli.h"

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "vast/vast.h"
#include "worker/worker.h"

#include <math.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif

static void worker_usage(FILE *out)
{
    fprintf(out,
            "Usage: gpuscribe worker [--listen 127.0.0.1:PORT] [--engine auto|sphinx|whisper]\n"
            "                        [--model NAME] [--work-dir DIR] [--max-queue N]\n"
            "                        [--result-ttl-minutes M]\n\n"
            "Run the worker API (used by the controller through an SSH tunnel). It listens on\n"
            "loopback only (default 127.0.0.1:8765; PORT 0 = any free port), loads the engine\n"
            "once (ENGINE, WHISPER_MODEL are the defaults) and runs WORKER_SLOTS jobs at once.\n");
}

/* "127.0.0.1:8000", "[::1]:8000", "localhost:0" -> host (heap) and port. */
static int parse_listen(const char *s, char **host, int *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || e[1] != ':') return -1;
        *host = xstrndup(s + 1, (size_t)(e - s - 1));
        colon = e + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s) return -1;
        *host = xstrndup(s, (size_t)(colon - s));
    }
    long p;
    if (parse_long(colon + 1, &p) != 0 || p < 0 || p > 65535) {
        SAFE_FREE(*host);
        return -1;
    }
    *port = (int)p;
    return 0;
}

/* Take the value of --name VALUE / --name=VALUE at rest[*i]; NULL when rest[*i] is not it. */
static const char *flag_value(char **rest, int *i, const char *name, int *missing)
{
    const char *a = rest[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != '\0') return NULL;
    if (!rest[*i + 1]) {
        *missing = 1;
        return NULL;
    }
    return rest[++*i];
}

int cli_worker(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            worker_usage(stdout);
            return 0;
        }
    char err[512];
    char **rest = NULL;
    config *cfg = config_load(argc, argv, &rest, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "gpuscribe worker: %s\n", err);
        return 2;
    }
    log_set_level((enum log_level)log_parse_level(config_str(cfg, CFG_LOG_LEVEL)));
    int rc = 2;
    const char *listen = "127.0.0.1:8765", *model = NULL, *work_dir = NULL;
    long max_queue = 0;
    double ttl_min = 0;
    char *host = NULL;
    int port = 0;
    for (int i = 0; rest && rest[i]; i++) {
        int missing = 0;
        const char *v;
        if ((v = flag_value(rest, &i, "--listen", &missing))) listen = v;
        else if ((v = flag_value(rest, &i, "--model", &missing))) model = v;
        else if ((v = flag_value(rest, &i, "--work-dir", &missing))) work_dir = v;
        else if ((v = flag_value(rest, &i, "--max-queue", &missing))) {
            if (parse_long(v, &max_queue) != 0 || max_queue < 1 || max_queue > 100000) {
                fprintf(stderr, "gpuscribe worker: --max-queue takes a number from 1 to 100000\n");
                goto out;
            }
        } else if ((v = flag_value(rest, &i, "--result-ttl-minutes", &missing))) {
            if (parse_double(v, &ttl_min) != 0 || !(ttl_min > 0) || ttl_min > 1e6) {
                fprintf(stderr, "gpuscribe worker: --result-ttl-minutes takes a positive number\n");
                goto out;
            }
        } else if (missing) {
            /* fallthrough to the message below */
        } else {
            fprintf(stderr, "gpuscribe worker: unexpected argument '%s' (see gpuscribe worker "
                            "--help)\n", rest[i]);
            goto out;
        }
        if (missing) {
            fprintf(stderr, "gpuscribe worker: %s needs a value\n", rest[i]);
            goto out;
        }
    }
    if (parse_listen(listen, &host, &port) != 0) {
        fprintf(stderr, "gpuscribe worker: --listen takes HOST:PORT (e.g. 127.0.0.1:8765), "
                        "not '%s'\n", listen);
        goto out;
    }
    if (!config_host_is_loopback(host)) {
        fprintf(stderr, "gpuscribe worker: refusing to listen on %s: the worker has no "
                        "authentication and only listens on loopback (127.0.0.1 or ::1); the "
                        "controller reaches it through an SSH tunnel\n", host);
        goto out;
    }
    const char *eng = config_str(cfg, CFG_ENGINE);
    if (!model && strcmp(eng, "sphinx") != 0) model = config_str(cfg, CFG_WHISPER_MODEL);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    worker_config wc = {
        .host = host,
        .port = port,
        .engine = eng,
        .model = model,
        .work_dir = work_dir,
        .max_body = (size_t)config_int(cfg, CFG_MAX_UPLOAD_MB) << 20,
        .max_queue = (int)max_queue,
        .slots = (int)config_int(cfg, CFG_WORKER_SLOTS),
        .result_ttl_s = ttl_min * 60.0,
        .version = GS_VERSION,
        /* the dead-man switch: armed on a Vast instance, where the container's environment
         * carries its own id and per-instance key (setup.sh keeps them in instance.env) */
        .deadman_s = isnan(config_num(cfg, CFG_DEADMAN_MINUTES)) ? 0
                     : config_num(cfg, CFG_DEADMAN_MINUTES) * 60.0,
        .vast_url = config_str(cfg, CFG_VAST_URL),
        .instance_id = getenv("CONTAINER_ID"),
        .instance_key = getenv("CONTAINER_API_KEY"),
    };
    int armed = wc.deadman_s > 0 && wc.instance_id && *wc.instance_id && wc.instance_key &&
                *wc.instance_key && wc.vast_url;
    if (armed) vast_global_init();
    worker *w = worker_start(&wc, err, sizeof err);
    if (!w) {
        LOG_E("worker", "%s", err);
        if (armed) vast_global_cleanup();
        rc = 1;
        goto out;
    }
    if (armed)
        LOG_I("worker", "dead-man switch armed: instance %s destroys itself after %g min without "
              "the controller (DEADMAN_MINUTES) while idle", wc.instance_id, wc.deadman_s / 60);
    int v6 = strchr(host, ':') != NULL;
    LOG_I("worker", "worker listening on http://%s%s%s:%d (engine %s)", v6 ? "[" : "", host,
          v6 ? "]" : "", worker_port(w), worker_engine_name(w));
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    LOG_I("worker", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    worker_stop(w);
    if (armed) vast_global_cleanup();
    rc = 0;
out:
    free(host);
    free(rest);
    config_free(cfg);
    return rc;
}
