#include "api/instance_json.h"

#include "core/util.h"
#include "fleet/remote_setup.h"

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

/* The boot as a timeline: {"created_at", "running_at", "ready_at", "total_s", "done",
 * "stages": [{"name", "seconds", "what"}]}: Vast starting the container (created ->
 * running), setup.sh's timed steps (its GPUSCRIBE-STEP lines, in order), and the rest of
 * created -> ready (or now, while booting): SSH, the upload, the worker's start and health.
 * The stages' seconds add up to total_s. */
static json_t *boot_json(const instance_row *r, const char *sl, double now)
{
    bool done = r->ready_at > 0;
    double end = done ? r->ready_at : now;
    if (end < r->created_at) end = r->created_at;
    json_t *stages = json_array();
    double rent = r->running_at > 0 ? r->running_at - r->created_at : end - r->created_at;
    if (rent < 0) rent = 0;
    if (rent > end - r->created_at) rent = end - r->created_at;
    json_array_append_new(stages, json_pack("{s:s,s:f,s:s}", "name", "rent", "seconds", rent,
                                            "what", "Vast.ai starts the container"));
    double steps = 0;
    json_t *sj = json_array();
    for (const char *p = sl; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *line = xstrndup(p, n), name[32];
        double secs;
        if (fleet_parse_step(line, name, sizeof name, &secs)) {
            json_array_append_new(sj, json_pack("{s:s,s:f,s:s}", "name", name, "seconds", secs,
                                                "what", "setup.sh step"));
            steps += secs;
        }
        free(line);
        p += n + (e ? 1 : 0);
    }
    if (r->running_at > 0) {
        double rest = end - r->running_at - steps;
        json_array_append_new(stages, json_pack("{s:s,s:f,s:s}", "name", "connect", "seconds",
                                                rest > 0 ? rest : 0.0, "what",
                                                "SSH, upload, worker start and health check"));
    }
    json_array_extend(stages, sj);
    json_decref(sj);
    double total = 0;
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st) total += json_real_value(json_object_get(st, "seconds"));
    return json_pack("{s:f,s:o,s:o,s:f,s:b,s:o}", "created_at", r->created_at, "running_at",
                     r->running_at > 0 ? json_real(r->running_at) : json_null(), "ready_at",
                     done ? json_real(r->ready_at) : json_null(), "total_s", total, "done", done,
                     "stages", stages);
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
    json_object_set_new(j, "boot", boot_json(r, v.setup_log, now_wall()));
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
