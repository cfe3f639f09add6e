/* gpuscribe: one binary, several commands. main() picks the command; each command loads the
 * configuration (config.h) for its own flags and runs. */
#include "api/api.h"
#include "api/instance_json.h"
#include "app.h"
#include "cli/cli.h"
#include "core/bgpool.h"
#include "core/config.h"
#include "core/fault.h"
#include "core/gpu.h"
#include "core/log.h"
#include "core/util.h"
#include "api/upload.h"
#include "fleet/provision.h"
#include "fleet/autoscale.h"
#include "fleet/reaper.h"
#include "fleet/vastctl.h"
#include "core/events.h"
#include "engine/engine.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "audio/audio.h"
#include "jobs/static_worker.h"
#include "store/store.h"

#include "core/curl_dl.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "gpuscribe %s: transcribe audio on rented GPUs (Vast.ai) or locally\n\n"
            "Usage: gpuscribe COMMAND [OPTIONS]\n\n"
            "Commands:\n"
            "  serve      run the web UI and REST API (default http://127.0.0.1:8000)\n"
            "  status     show the GPU status of a running server\n"
            "  transcribe transcribe an audio file (locally, or with --server URL)\n"
            "  worker     run the worker API on loopback (GPU instances)\n"
            "  vast       search, boot, list, destroy Vast.ai instances (vast --help)\n"
            "  diarize    who spoke when in a 16 kHz mono WAV (the CPU diarizer; JSON turns)\n"
            "  help       show this help; `gpuscribe COMMAND --help` for a command\n"
            "  version    print the version\n\n",
            GS_VERSION);
    config_print_help(out);
}

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

static config *load_or_die(int argc, char **argv, char ***rest, const char *cmd)
{
    char err[512];
    config *c = config_load(argc, argv, rest, err, sizeof err);
    if (!c) {
        fprintf(stderr, "gpuscribe %s: %s\n", cmd, err);
        return NULL;
    }
    log_set_level((enum log_level)log_parse_level(config_str(c, CFG_LOG_LEVEL)));
    return c;
}

static int reject_positional(char **rest, const char *cmd)
{
    if (rest && rest[0]) {
        fprintf(stderr, "gpuscribe %s: unexpected argument '%s' (see gpuscribe %s --help)\n", cmd,
                rest[0], cmd);
        return 1;
    }
    return 0;
}

/* ---- serve ----

   The fleet's ready workers, as the job dispatcher's remote backend. */
static int fleet_remote_ready(void *ud, char *url, size_t n, long long *row, int reserve)
{
    return fleet_ready_worker(ud, url, n, row, reserve);
}
static void fleet_remote_release(void *ud, long long row) { fleet_release_worker(ud, row); }
static int fleet_remote_pending(void *ud) { return fleet_gpu_pending(ud); }
/* For the idle reaper: jobs queued or running, or uploads arriving. */
static int app_busy(void *ud)
{
    app *a = ud;
    int q = 0, r = 0;
    if (a->jobs) jobs_counts(a->jobs, &q, &r);
    return q + r + upload_in_progress() > 0;
}
static void fleet_remote_failure(void *ud, long long row, const char *why)
{
    fleet_report_failure(ud, row, why);
}
/* For autoscaling: the audio not transcribed yet. */
static void app_backlog(void *ud, double *audio_s, int *njobs)
{
    app *a = ud;
    if (a->jobs) jobs_backlog(a->jobs, audio_s, njobs);
}

/* ------------------------------------------------------------------------------- */

#define BG_THREADS 16  /* requests that may wait on a peer at once */
#define BG_QUEUE 256   /* more wait their turn; beyond that, 503 busy */

/* The HTTP pool: handlers never wait on peers, so threads are for CPU: two per core. */
/* MHD's epoll thread pool: 2 per core (4..32). GS_HTTP_THREADS=N or =per-connection
 * overrides it, for measurements (bench/lean.sh compares the modes). */
static unsigned http_threads(void)
{
    const char *e = getenv("GS_HTTP_THREADS");
    if (e && !strcmp(e, "per-connection")) return HTTP_THREAD_PER_CONNECTION;
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (!*end && v >= 1 && v <= 64) return (unsigned)v;
        LOG_W("main", "GS_HTTP_THREADS=%s ignored (want 1..64 or per-connection)", e);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n = n > 0 ? 2 * n : 4;
    return (unsigned)(n < 4 ? 4 : n > 32 ? 32 : n);
}

static int cmd_serve(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: gpuscribe serve [OPTIONS]\n\nRun the web UI and REST API.\n\n");
        config_print_help(stdout);
        return 0;
    }
    char **rest = NULL;
    config *cfg = load_or_die(argc, argv, &rest, "serve");
    if (!cfg) return 2;
    int rc = 1;
    app a = {.cfg = cfg, .version = GS_VERSION, .started_at = now_wall()};
    static_worker *sw = NULL; /* WORKER_URL: a worker of the user's own */
    if (reject_positional(rest, "serve")) { rc = 2; goto out; }

    const char *host = config_str(cfg, CFG_HOST);
    if (!config_host_is_loopback(host) && !config_isset(cfg, CFG_API_TOKEN)) {
        fprintf(stderr, "gpuscribe serve: refusing to listen on %s without API_TOKEN: anyone "
                        "who can reach it could rent GPUs on your account. Set API_TOKEN "
                        "(in the environment or .env), or keep HOST=127.0.0.1.\n", host);
        rc = 2;
        goto out;
    }

    char err[512];
    fault_init(); /* test-only crash points (GS_FAULT), read before any thread starts */
    a.st = store_open(config_str(cfg, CFG_DATA_DIR), err, sizeof err);
    if (!a.st) {
        LOG_E("store", "%s", err);
        goto out;
    }
    gpu_probe(&a.gpu);

    /* Signals are taken by this thread with sigwait; every other thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    a.bus = events_new(a.st, 15);
    jobs_config jc = {
        .data_dir = config_str(cfg, CFG_DATA_DIR),
        .concurrency = (int)config_int(cfg, CFG_JOBS_CONCURRENCY),
        .engine = config_str(cfg, CFG_ENGINE),
        .model = config_str(cfg, CFG_WHISPER_MODEL),
        .gpu_only = config_bool(cfg, CFG_GPU_ONLY),
        .openai_url = config_str(cfg, CFG_OPENAI_BASE_URL),
        .openai_key = config_str(cfg, CFG_OPENAI_API_KEY),
        .chunk_s = config_num(cfg, CFG_CHUNK_MINUTES) * 60.0,
        .max_audio_s = config_num(cfg, CFG_MAX_AUDIO_HOURS) * 3600.0,
    };
    vast_global_init(); /* after the mask: the Vast status thread inherits it */
    a.vast = vastctl_new(cfg, a.st);
    a.fleet = fleet_new(cfg, a.st, a.bus, a.vast);
    fleet_set_view(a.fleet, api_instance_json); /* the object of `instance.state` */
    a.jobs = jobs_new(a.st, a.bus, &jc, err, sizeof err);
    if (a.jobs) {
        jobs_remote jr = {fleet_remote_ready, fleet_remote_release, fleet_remote_pending,
                          fleet_remote_failure, a.fleet};
        if (config_isset(cfg, CFG_WORKER_URL))
            static_worker_remote(sw = static_worker_new(config_str(cfg, CFG_WORKER_URL)), &jr);
        jobs_set_remote(a.jobs, &jr);
    }
    a.reaper = reaper_new(cfg, a.st, a.bus, a.vast, a.fleet, app_busy, &a);
    a.scale = autoscale_new(cfg, a.st, a.bus, a.vast, a.fleet, app_backlog, &a);
    /* what handlers wait on (Vast calls, .env writes) runs here, never on the HTTP pool */
    a.bg = bgpool_new("gs-bg", BG_THREADS, BG_QUEUE);
    if (!a.bg) {
        LOG_E("main", "cannot start the background pool");
        goto out;
    }
    if (!a.jobs || jobs_start(a.jobs, err, sizeof err) != 0) {
        LOG_E("jobs", "%s", err);
        goto out;
    }

    http_config hc = {
        .host = host,
        .port = (int)config_int(cfg, CFG_PORT),
        .web_dir = config_str(cfg, CFG_WEB_DIR),
        .api_token = config_str(cfg, CFG_API_TOKEN),
        .metrics_token = config_str(cfg, CFG_METRICS_TOKEN),
        .threads = http_threads(),
        .version = GS_VERSION,
    };
    a.http = http_server_start(&hc, api_routes, api_nroutes, &a, err, sizeof err);
    if (!a.http) {
        LOG_E("http", "%s", err);
        goto out;
    }
    int v6 = strchr(host, ':') != NULL;
    LOG_I("main", "gpuscribe %s listening on http://%s%s%s:%d (%s)", GS_VERSION, v6 ? "[" : "",
          host, v6 ? "]" : "", http_server_port(a.http),
          a.gpu.cuda_available ? "local GPU" : "no local GPU");
    fleet_start(a.fleet); /* provisioning and auto-connect (VAST_INSTANCE_ID) */
    reaper_start(a.reaper); /* ledger, idle / hard cap / budget destroys, orphans */
    autoscale_start(a.scale); /* boots for the backlog, within MAX_INSTANCES and budgets */

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    LOG_I("main", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_stop(a.http); /* waits for in-flight requests; waiting ones get 503 */
    a.http = NULL;
    rc = 0;
out:
    http_server_stop(a.http);
    vast_cancel_all();      /* what waits on Vast.ai now ends within a second */
    bgpool_free(a.bg);      /* runs what is queued (failing fast) and joins */
    autoscale_free(a.scale); /* before what it calls: fleet, vastctl, jobs */
    reaper_free(a.reaper); /* before what it calls: fleet, vastctl, jobs */
    jobs_free(a.jobs); /* a running job is interrupted and queued again */
    static_worker_free(sw);
    fleet_free(a.fleet); /* after the jobs that use it; before the bus and vastctl */
    events_free(a.bus);
    if (a.vast) {
        vastctl_free(a.vast);
        vast_global_cleanup();
    }
    store_close(a.st);
    config_free(cfg);
    free(rest);
    return rc;
}

/* ---- status (client of a running server) -------------------------------------------------- */

static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static int cmd_status(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        printf("Usage: gpuscribe status [--json] [--host H] [--port P]\n\n"
               "Ask the running server at HOST:PORT for its GPU status.\n");
        return 0;
    }
    char **rest = NULL;
    config *cfg = load_or_die(argc, argv, &rest, "status");
    if (!cfg) return 2;
    int as_json = 0, rc = 1;
    for (char **p = rest; p && *p; p++) {
        if (strcmp(*p, "--json") == 0) as_json = 1;
        else {
            fprintf(stderr, "gpuscribe status: unexpected argument '%s'\n", *p);
            rc = 2;
            goto out;
        }
    }
    const char *host = config_str(cfg, CFG_HOST);
    int v6 = strchr(host, ':') != NULL;
    char *url = xasprintf("http://%s%s%s:%ld/api/gpu-status", v6 ? "[" : "", host, v6 ? "]" : "",
                          config_int(cfg, CFG_PORT));
    char cerr[256];
    CURL *c = curl_dl_easy(cerr, sizeof cerr);
    if (!c) {
        fprintf(stderr, "gpuscribe status: %s\n", cerr);
        free(url);
        goto out;
    }
    buf body;
    buf_init(&body, 1 << 20);
    struct curl_slist *hdr = NULL;
    if (config_isset(cfg, CFG_API_TOKEN)) {
        char *h = xasprintf("Authorization: Bearer %s", config_str(cfg, CFG_API_TOKEN));
        hdr = gs_curl.curl_slist_append(hdr, h);
        free(h);
    }
    gs_curl.curl_easy_setopt(c, CURLOPT_URL, url);
    gs_curl.curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    gs_curl.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    gs_curl.curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    gs_curl.curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode cc = gs_curl.curl_easy_perform(c);
    long code = 0;
    gs_curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK) {
        fprintf(stderr, "gpuscribe status: cannot reach the server at %s: %s\n"
                        "Is `gpuscribe serve` running?\n", url, gs_curl.curl_easy_strerror(cc));
    } else {
        json_t *j = json_loads(body.data ? body.data : "", 0, NULL);
        if (code != 200 || !j) {
            const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;
            fprintf(stderr, "gpuscribe status: server answered %ld: %s\n", code,
                    e ? e : "unexpected response");
        } else if (as_json) {
            printf("%s\n", body.data);
            rc = 0;
        } else {
            const char *vi = json_string_value(json_object_get(j, "vast_instance"));
            printf("GPU:      %s\ntype:     %s\nCUDA:     %s\ninstance: %s\n",
                   json_string_value(json_object_get(j, "message")),
                   json_string_value(json_object_get(j, "type")),
                   json_is_true(json_object_get(j, "cuda_available")) ? "yes" : "no",
                   vi ? vi : "-");
            rc = json_is_true(json_object_get(j, "available")) ? 0 : 3;
        }
        json_decref(j);
    }
    buf_release(&body);
    gs_curl.curl_slist_free_all(hdr);
    gs_curl.curl_easy_cleanup(c);
    curl_dl_cleanup();
    free(url);
out:
    config_free(cfg);
    free(rest);
    return rc;
}

int main(int argc, char **argv)
{
    /* hidden: what `make doc` writes (build/gpuscribe.1, build/gpuscribe.bash) */
    if (argc == 3 && strcmp(argv[1], "help") == 0 && strcmp(argv[2], "--man") == 0) {
        cli_print_man(stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (argc == 3 && strcmp(argv[1], "help") == 0 && strcmp(argv[2], "--bash-completion") == 0) {
        cli_print_bash_completion(stdout);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        if (argc > 2 && strcmp(argv[2], "--features") == 0) { /* remote/setup.sh asks */
            char f[128];
            printf("%s\n", engine_features(f, sizeof f));
            return 0;
        }
        printf("gpuscribe %s\n", GS_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0) return cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "transcribe") == 0) return cli_transcribe(argc - 1, argv + 1);
    if (strcmp(argv[1], "worker") == 0) return cli_worker(argc - 1, argv + 1);
    if (strcmp(argv[1], "vast") == 0) return cli_vast(argc - 1, argv + 1);
    if (strcmp(argv[1], "diarize") == 0) return cli_diarize(argc - 1, argv + 1);
    fprintf(stderr, "gpuscribe: unknown command '%s' (see gpuscribe --help)\n", argv[1]);
    return 2;
}
