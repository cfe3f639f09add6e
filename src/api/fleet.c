/* api/fleet.c: GET /api/fleet (the fleet panel's data) and PUT /api/fleet (MAX_INSTANCES).
 * Everything here is local (the store, the fleet's snapshot, the autoscaler's last plan):
 * nothing waits on a peer. */
#include "api/api.h"
#include "api/instance_json.h"
#include "app.h"
#include "core/util.h"
#include "fleet/autoscale.h"
#include "fleet/hosts.h"
#include "fleet/provision.h"
#include "fleet/speed.h"
#include "store/instances.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t *fleet_body(app *a)
{
    double now = now_wall();
    const char *engine = config_str(a->cfg, CFG_ENGINE);
    json_t *list = json_array();
    instance_row *rows = NULL;
    size_t n = 0;
    if (instances_list(a->st, INSTANCES_LIVE, 0, 0, &rows, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            json_t *j = api_instance_json(a->fleet, rows[i].vast_id);
            if (!j) continue;
            json_object_del(j, "log"); /* the panel does not show setup logs */
            int slots = 0;
            int inflight = fleet_inflight(a->fleet, rows[i].id, &slots);
            gpu_speed sp;
            speed_get(a->st, rows[i].gpu_name, engine, &sp);
            json_object_set_new(j, "slots", json_integer(slots));
            json_object_set_new(j, "inflight", json_integer(inflight));
            json_object_set_new(j, "speed_x", json_real(round(sp.x * 100) / 100));
            json_object_set_new(j, "speed_source", json_string(sp.source));
            json_object_set_new(j, "machine_id", rows[i].machine_id > 0 ?
                                json_integer(rows[i].machine_id) : json_null());
            json_array_append_new(list, j);
        }
        free(rows);
    }
    double hours = config_num(a->cfg, CFG_BAD_HOST_HOURS);
    return json_pack("{s:i,s:o,s:o,s:o,s:o,s:f}", "max_instances", autoscale_max(a->scale),
                     "plan", autoscale_plan_json(a->scale), "instances", list, "speeds",
                     speed_json(a->st), "bad_hosts", hosts_bad_json(a->st, hours, now),
                     "bad_host_hours", hours);
}

void api_fleet_get(http_req *r, void *appv)
{
    http_reply_json(r, 200, fleet_body(appv));
}

void api_fleet_put(http_req *r, void *appv)
{
    app *a = appv;
    json_t *body = http_body_json(r);
    if (!body) return;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "max_instances") != 0) {
            http_reply_error(r, 400, "unknown field '%.64s' (known: max_instances)", k);
            json_decref(body);
            return;
        }
    }
    v = json_object_get(body, "max_instances");
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (n < 1 || n > 64 || autoscale_set_max(a->scale, (int)n) != 0) {
        http_reply_error(r, 400, "max_instances must be an integer from 1 to 64");
        json_decref(body);
        return;
    }
    json_decref(body);
    http_reply_json(r, 200, fleet_body(a));
}
