/* api/cost.c: GET /api/cost (the ledger: per-instance running cost, totals, cost per audio
 * hour, budgets) and POST /api/vast/keepalive/{instance_id} (postpone the idle destroy).
 * Both read fleet/reaper, which keeps the ledger and the destroy deadlines. */
#include "api/api.h"
#include "app.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "fleet/reaper.h"
#include "store/instances.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void api_cost(http_req *r, void *appv)
{
    app *a = appv;
    if (!a->reaper) {
        http_reply_error(r, 503, "cost tracking is not running");
        return;
    }
    http_reply_json(r, 200, reaper_cost_json(a->reaper));
}

/* GET /api/cost/history?days=N: spending per local day and per instance, from the ledger
 * (the local store only: no peer is asked). */
void api_cost_history(http_req *r, void *appv)
{
    app *a = appv;
    long days = 14;
    const char *ds = http_query(r, "days");
    if (ds && (parse_long(ds, &days) != 0 || days < 1 || days > 366)) {
        http_reply_error(r, 400, "days must be an integer from 1 to 366");
        return;
    }
    json_t *daily = ledger_daily_json(a->st, now_wall(), (int)days);
    json_t *insts = json_object(); /* vast id (or "row N") -> {"id", "label", "total"} */
    json_t *rowname = json_object(); /* row -> that key */
    double all = 0;
    size_t i;
    json_t *day;
    json_array_foreach(daily, i, day) {
        json_t *by = json_object(), *rows = json_object_get(day, "rows");
        const char *row;
        json_t *c;
        json_object_foreach(rows, row, c) {
            json_t *name = json_object_get(rowname, row);
            if (!name) {
                instance_row ir;
                char key[48];
                int found = instances_get(a->st, strtoll(row, NULL, 10), &ir) == 1 && ir.vast_id[0];
                if (found) snprintf(key, sizeof key, "%s", ir.vast_id);
                else snprintf(key, sizeof key, "row %s", row);
                name = json_string(key);
                json_object_set_new(rowname, row, name);
                json_object_set_new(insts, key, json_pack("{s:s,s:s?,s:f}", "id", key, "label",
                                                          found && ir.label[0] ? ir.label : NULL,
                                                          "total", 0.0));
            }
            const char *key = json_string_value(name);
            json_t *ij = json_object_get(insts, key);
            json_object_set_new(ij, "total", json_real(json_real_value(json_object_get(ij, "total")) +
                                                        json_real_value(c)));
            json_object_set(by, key, c);
            all += json_real_value(c);
        }
        json_object_del(day, "rows");
        json_object_set_new(day, "instances", by);
    }
    json_t *list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(insts, k, v) json_array_append(list, v);
    json_decref(insts);
    json_decref(rowname);
    http_reply_json(r, 200, json_pack("{s:i,s:o,s:o,s:f}", "days", (int)days, "per_day", daily,
                                      "instances", list, "total", all));
}

void api_vast_keepalive(http_req *r, void *appv)
{
    app *a = appv;
    char ids[32];
    if (!api_instance_id(r, ids, sizeof ids)) return;
    double until = 0;
    if (!a->reaper || reaper_keepalive(a->reaper, ids, &until) != 0) {
        http_reply_error(r, 404, "instance %s is not a live instance of gpuscribe's", ids);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "Instance %s kept alive: not destroyed for being idle before %.0f "
             "(Unix time)", ids, until);
    http_reply_json(r, 200, json_pack("{s:b,s:s,s:s,s:f}", "success", 1, "message", msg,
                                      "instance_id", ids, "idle_destroy_at", round(until)));
}
