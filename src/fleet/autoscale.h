/* autoscale: grows the fleet to the backlog, within MAX_INSTANCES and the budgets.
 *
 * One thread looks every AUTOSCALE_PERIOD_S (and when poked) at the backlog (audio not
 * transcribed yet, from the jobs) and the fleet (every instance from boot to ready, and
 * boots not answered yet), each at its speed (fleet/speed.h: measured per GPU model, else
 * the seed table) times WORKER_SLOTS, and estimates the wait: backlog / the fleet's speed.
 * While that wait is longer than SCALE_UP_WAIT_MINUTES, the fleet is below MAX_INSTANCES and
 * no boot is in flight, it boots the offer with the lowest expected cost per audio hour
 * (speed.h) that fits VAST_IMAGE and is not on a bad host (fleet/hosts.h), provided the
 * budgets allow one more hour of every instance of the fleet plus the new one's first hour
 * (ledger_budget_check on that sum). Boots go through vastctl_boot (the store row first;
 * the fleet provisions it). Instances leave by the reaper's rules (idle, hard cap, budget):
 * this module never destroys.
 *
 * MAX_INSTANCES 1 (the default) keeps today's behaviour: nothing is booted by itself and the
 * autoscaler makes no Vast.ai call; the plan (backlog, fleet, wait) is still computed. The limit can be changed while running
 * (autoscale_set_max: in memory at once, written to .env by the thread).
 *
 * Every decision that differs from the last (boot, or hold and why) is logged and published
 * as `fleet.scale` {decision, reason, message, backlog_audio_s, jobs, fleet, fleet_speed_x,
 * wait_s, wait_limit_s, max_instances, offer?}; boots are persisted in the store's events.
 * The plan (autoscale_plan_json) adds what more GPUs would do: {more, finish_s, cost_usd,
 * text} ("2 more GPUs would finish in 14 min for about $0.09").
 *
 * Contract: autoscale_new after fleet_new and reaper_new; autoscale_start once the server
 * runs; autoscale_free before fleet_free (joins the thread: at most one Vast call, bounded
 * by VAST_TIMEOUT_SECONDS). All functions are thread-safe; only the thread calls Vast.ai.
 */
#ifndef GS_FLEET_AUTOSCALE_H
#define GS_FLEET_AUTOSCALE_H

#include "core/config.h"
#include "core/events.h"
#include "fleet/provision.h"
#include "fleet/vastctl.h"
#include "store/store.h"

#include <jansson.h>
#include <stddef.h>

#define AUTOSCALE_PERIOD_S 3.0
#define AUTOSCALE_OFFERS_TTL_S 30.0   /* a search is reused this long */
#define AUTOSCALE_RETRY_S 30.0        /* after a refused or failed boot */

typedef struct autoscale autoscale;
/* The backlog: audio seconds not transcribed yet and the jobs they belong to. */
typedef void (*autoscale_backlog_fn)(void *ud, double *audio_s, int *njobs);

autoscale *autoscale_new(config *cfg, store *st, events *bus, vastctl *vc, fleet *f,
                         autoscale_backlog_fn backlog, void *ud);
void autoscale_start(autoscale *a);
void autoscale_free(autoscale *a);
/* Look again now (a job arrived, an instance left). */
void autoscale_poke(autoscale *a);
/* The last plan (new reference): the fields of `fleet.scale` plus "enabled", "suggestion"
 * (null when nothing more would help) and "updated_at". */
json_t *autoscale_plan_json(autoscale *a);
/* Change MAX_INSTANCES (1..64) now; the thread writes it to .env. 0, or -1 out of range. */
int autoscale_set_max(autoscale *a, int n);
int autoscale_max(autoscale *a);

#endif
