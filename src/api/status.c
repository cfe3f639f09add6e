#include "api/api.h"
#include "app.h"
#include "core/util.h"
#include "fleet/provision.h"
#include "fleet/reaper.h"
#include "fleet/vastctl.h"

#include <fcntl.h>
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

void api_gpu_status(http_req *r, void *appv)
{
    app *a = appv;
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
    http_reply_json(r, 200, json_pack("{s:b,s:s,s:b,s:s?,s:s}", "available", strcmp(type, "none") != 0,
                                      "type", type, "cuda_available", a->gpu.cuda_available,
                                      "vast_instance", vid[0] ? vid : NULL, "message", msg));
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
