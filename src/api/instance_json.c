#include "api/instance_json.h"

#include "core/util.h"

#include <stdlib.h>
#include <string.h>

#define LOG_SHOW 50 /* setup lines in the view */

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

json_t *api_instance_json(fleet *f, const char *vast_id)
{
    fleet_instance_view v;
    if (fleet_instance_view_get(f, vast_id, &v) != 1) return NULL;
    const instance_row *r = &v.row;
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(vast_id));
    json_object_set_new(j, "row_id", json_integer(r->id));
    json_object_set_new(j, "label", str_or_null(r->label));
    json_object_set_new(j, "state", str_or_null(r->state));
    json_object_set_new(j, "stage", json_string(r->stage));
    json_object_set_new(j, "percent", json_integer(r->percent));
    json_object_set_new(j, "error", str_or_null(r->error));
    json_object_set_new(j, "log", log_json(v.setup_log));
    json_object_set_new(j, "gpu_name", str_or_null(r->gpu_name));
    json_object_set_new(j, "num_gpus", r->num_gpus > 0 ? json_integer(r->num_gpus) : json_null());
    json_object_set_new(j, "dph_total", r->dph_total > 0 ? json_real(r->dph_total) : json_null());
    json_object_set_new(j, "ssh_host", str_or_null(r->ssh_host));
    json_object_set_new(j, "ssh_port", r->ssh_port > 0 ? json_integer(r->ssh_port) : json_null());
    json_object_set_new(j, "created_at", json_real(r->created_at));
    json_object_set_new(j, "ready_at", r->ready_at > 0 ? json_real(r->ready_at) : json_null());
    if (!j) {
        fleet_instance_view_release(&v);
        return NULL;
    }
    json_t *worker = json_null(), *tj = json_null();
    if (v.has_tunnel) {
        const tunnel_status *ts = &v.tunnel;
        tj = json_pack("{s:s,s:f,s:s?,s:i}", "state", ts->state_name, "rtt_ms", ts->rtt_ms,
                       "last_error", ts->last_error[0] ? ts->last_error : NULL, "reconnects",
                       ts->reconnects);
        if (v.worker) worker = json_incref(v.worker);
    }
    json_object_set_new(j, "worker", worker ? worker : json_null());
    json_object_set_new(j, "tunnel", tj ? tj : json_null());
    long long row_id = r->id;
    fleet_instance_view_release(&v);
    fleet_json_decorate(f, row_id, j);
    return j;
}
