/* api/cost.c: GET /api/cost (the ledger: per-instance running cost, totals, cost per audio
 * hour, budgets) and POST /api/vast/keepalive/{instance_id} (postpone the idle destroy).
 * Both read fleet/reaper, which keeps the ledger and the destroy deadlines. */
#include "api/api.h"
#include "app.h"
#include "core/util.h"
#include "fleet/reaper.h"

#include <math.h>
#include <stdio.h>

void api_cost(http_req *r, void *appv)
{
    app *a = appv;
    if (!a->reaper) {
        http_reply_error(r, 503, "cost tracking is not running");
        return;
    }
    http_reply_json(r, 200, reaper_cost_json(a->reaper));
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
