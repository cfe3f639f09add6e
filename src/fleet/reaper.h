/* reaper: the controller's side of cost safety, one thread that
 *
 * - destroys an instance idle for IDLE_DESTROY_MINUTES (idle: no queued or running job, no
 *   upload arriving, no setup running; the clock restarts at each job, at ready, at a
 *   keepalive, and when the controller starts), one running AUTO_DESTROY_AFTER_HOURS since
 *   it was created (even busy), and every instance once a budget (BUDGET_DAILY_USD,
 *   BUDGET_MONTHLY_USD, BUDGET_TOTAL_USD) is reached at the current burn rate;
 * - warns IDLE_WARN_MINUTES before each destroy (event `instance.warning`, the instance
 *   view's `warning`, /api/gpu-status's message), and never destroys sooner than that after
 *   the warning; a keepalive postpones the idle destroy only (not the hard cap or a budget);
 * - warns once per period when 80% of a budget is spent (event `budget.warning`);
 * - every vast_check interval (and at start) lists the account: keeps the ledger in step
 *   with the API (running / stopped / rates), finds instances the store lost (a row whose
 *   instance is gone: destroyed, reason "gone", the ledger closed at ledger_gone_end's
 *   estimate), and orphans: instances labelled gpuscribe* the store does not know (not
 *   VAST_INSTANCE_ID's, which the fleet adopts). An orphan gets a row in state "orphan"
 *   (its cost is ours too: ledger from Vast's start date), is logged and published
 *   (`instance.orphan`), and destroyed when DESTROY_ORPHANS=1.
 * - records when each ready worker was last reached (seen_at) for those estimates.
 *
 * Every automatic destroy goes through vastctl_destroy_for (destroy_reason idle, hard_cap,
 * budget, orphan), is logged with its reason and cost, and published as
 * `instance.destroyed` {id, reason, message, cost}.
 *
 * Contract: reaper_new after fleet_new (it installs the fleet's json hook); reaper_start
 * once the server runs; reaper_free before fleet_free. busy(ud) says whether jobs or
 * uploads are in progress (called from the reaper thread). All functions are thread-safe;
 * none blocks on the network except reaper_free (joins the thread: at most one Vast call).
 */
#ifndef GS_REAPER_H
#define GS_REAPER_H

#include "core/config.h"
#include "core/events.h"
#include "fleet/provision.h"
#include "fleet/vastctl.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct reaper reaper;

reaper *reaper_new(config *cfg, store *st, events *bus, vastctl *vc, fleet *f,
                   int (*busy)(void *ud), void *ud);
void reaper_start(reaper *r);
void reaper_free(reaper *r);

/* Postpone the idle destroy of vast_id by IDLE_DESTROY_MINUTES from now (clears a pending
 * idle warning). 0 with *until set, -1 when no live instance has that id. */
int reaper_keepalive(reaper *r, const char *vast_id, double *until);
/* The pending destroy warning for vast_id: true with msg filled. */
bool reaper_warning(reaper *r, const char *vast_id, char *msg, size_t msglen);
/* The body of GET /api/cost (new reference). */
json_t *reaper_cost_json(reaper *r);
/* Run one pass now (tests and after a keepalive). */
void reaper_poke(reaper *r);

#endif
