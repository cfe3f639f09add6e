#include "api/api.h"
#include "app.h"
#include "core/util.h"
#include "fleet/vastctl.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void api_healthz(http_req *r, void *appv)
{
    app *a = appv;
    http_reply_json(r, 200, json_pack("{s:s,s:s,s:f}", "status", "ok", "version", a->version,
                                      "uptime_s", now_wall() - a->started_at));
}

void api_gpu_status(http_req *r, void *appv)
{
    app *a = appv;
    const char *type = "none";
    char msg[192], vid[32];
    bool vast = a->vast && vastctl_running_instance(a->vast, vid, sizeof vid);
    if (vast) {
        type = "vast";
        snprintf(msg, sizeof msg, "Vast.ai GPU available: Instance %s", vid);
    } else if (a->gpu.cuda_available) {
        type = "local";
        snprintf(msg, sizeof msg, "Local GPU available: %s", a->gpu.name[0] ? a->gpu.name : "NVIDIA GPU");
    } else {
        snprintf(msg, sizeof msg, "No GPU available");
    }
    http_reply_json(r, 200, json_pack("{s:b,s:s,s:b,s:s?,s:s}", "available", strcmp(type, "none") != 0,
                                      "type", type, "cuda_available", a->gpu.cuda_available,
                                      "vast_instance", vast ? vid : NULL, "message", msg));
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
