#include "api/api.h"
#include "app.h"
#include "core/util.h"
#include "fleet/provision.h"
#include "fleet/reaper.h"
#include "fleet/vastctl.h"

#include "core/events.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void api_healthz(http_req *r, void *appv)
{
    app *a = appv;
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:f,s:b}", "status", "ok", "version", a->version,
                                      "uptime_s", now_wall() - a->started_at, "auth_required",
                                      config_isset(a->cfg, CFG_API_TOKEN)));
}

/* /api/gpu-status is what the UI polls (and the hottest route): its body is rendered once and
 * served from this cache until something it reports on may have changed: an event was
 * published (instance states, warnings, destroys, jobs: events_generation), the current Vast
 * instance changed (VAST_INSTANCE_ID), or GPU_STATUS_TTL_S passed (a worker tunnel dropping
 * publishes nothing; reaper warnings count down). The cache lock is a leaf: rendering, which
 * takes the fleet's and vastctl's locks, runs outside it. */
#define GPU_STATUS_TTL_S 0.1

static struct {
    pthread_mutex_t mu;
    const app *owner;               /* the app it was rendered for */
    unsigned long long gen;         /* events_generation when rendering began */
    char vid[32];                   /* the current Vast instance then */
    double at;                      /* now_mono() when rendering began */
    size_t len;
    char body[2048];
} g_status = {.mu = PTHREAD_MUTEX_INITIALIZER};

static char *render_gpu_status(app *a);

static void current_vid(const app *a, char *vid, size_t n)
{
    vid[0] = '\0';
    if (a->vast) vastctl_current_instance(a->vast, vid, n);
}

void api_gpu_status(http_req *r, void *appv)
{
    app *a = appv;
    char vid[32], body[sizeof g_status.body];
    current_vid(a, vid, sizeof vid);
    unsigned long long gen = events_generation(a->bus);
    double t = now_mono();
    size_t len = 0;
    pthread_mutex_lock(&g_status.mu);
    if (g_status.owner == a && g_status.len && g_status.gen == gen && t - g_status.at < GPU_STATUS_TTL_S &&
        t >= g_status.at && strcmp(g_status.vid, vid) == 0) {
        len = g_status.len;
        memcpy(body, g_status.body, len);
    }
    pthread_mutex_unlock(&g_status.mu);
    if (len) {
        http_reply_data(r, 200, "application/json", body, len);
        return;
    }
    char *s = render_gpu_status(a);
    len = strlen(s);
    pthread_mutex_lock(&g_status.mu);
    /* keep the newest rendering: another thread may have rendered a later view meanwhile */
    if (len < sizeof g_status.body && (g_status.owner != a || gen >= g_status.gen)) {
        g_status.owner = a;
        g_status.gen = gen;
        g_status.at = t;
        snprintf(g_status.vid, sizeof g_status.vid, "%s", vid);
        memcpy(g_status.body, s, len);
        g_status.len = len;
    }
    pthread_mutex_unlock(&g_status.mu);
    http_reply_data(r, 200, "application/json", s, len);
    free(s);
}

static char *render_gpu_status(app *a)
{
    const char *type = "none";
    char msg[1024], vid[32], pmsg[896] = "";
    /* vast only once a worker answers through its tunnel; while an instance is provisioned
     * the message names its stage */
    bool vast = false;
    if (a->fleet) vast = fleet_gpu_status(a->fleet, vid, sizeof vid, pmsg, sizeof pmsg);
    else vid[0] = '\0';
    if (a->vast && !vast) {
        char run[32]; /* keeps vastctl's view fresh (it re-checks VAST_INSTANCE_ID lazily) */
        vastctl_running_instance(a->vast, run, sizeof run);
    }
    char warn[400];
    if (vid[0] && a->reaper && reaper_warning(a->reaper, vid, warn, sizeof warn)) {
        size_t l = strlen(pmsg);
        snprintf(pmsg + l, sizeof pmsg - l, ". Warning: %s", warn);
    }
    if (vast) {
        type = "vast";
        snprintf(msg, sizeof msg, "%s", pmsg);
    } else if (a->gpu.cuda_available) {
        type = "local";
        snprintf(msg, sizeof msg, "Local GPU available: %s", a->gpu.name[0] ? a->gpu.name : "NVIDIA GPU");
    } else if (pmsg[0]) {
        snprintf(msg, sizeof msg, "No GPU available yet: %s", pmsg);
    } else {
        snprintf(msg, sizeof msg, "No GPU available");
    }
    json_t *o = json_pack("{s:b,s:s,s:b,s:s?,s:s}", "available", strcmp(type, "none") != 0,
                          "type", type, "cuda_available", a->gpu.cuda_available,
                          "vast_instance", vid[0] ? vid : NULL, "message", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(o);
    return s ? s : xstrdup("{\"error\":\"internal error: cannot encode response\"}");
}

void api_openapi(http_req *r, void *appv)
{
    app *a = appv;
    http_reply_json(r, 200, http_server_openapi(a->http));
}

void api_docs(http_req *r, void *appv)
{
    app *a = appv;
    char *path = xasprintf("%s/docs.html", config_str(a->cfg, CFG_WEB_DIR));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        http_reply_error(r, 404, "documentation page not installed (WEB_DIR has no docs.html)");
        return;
    }
    http_add_header(r, "Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'");
    http_reply_fd(r, 200, "text/html; charset=utf-8", fd, (size_t)st.st_size);
}

void api_config(http_req *r, void *appv)
{
    app *a = appv;
    http_reply_json(r, 200, config_dump_json(a->cfg));
}
