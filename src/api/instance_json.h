/* instance_json: the instance view, the body of GET /api/vast/instances/{id} and the object
 * of every `instance.state` event (main.c installs it as the fleet's view):
 *
 *   {id (Vast id, string), row_id, label, state, stage, percent, error, log (the last 50
 *    setup lines; bytes that are not UTF-8 read '?'), gpu_name, num_gpus, dph_total,
 *    ssh_host, ssh_port, created_at, ready_at, worker {engine, model, gpu} | null,
 *    tunnel {state, rtt_ms, last_error, reconnects} | null}
 *
 * plus what cost safety adds through the fleet's json hook (reaper.h: uptime_s, running_s,
 * cost_usd, idle_destroy_at, destroy_at, destroy_reason_pending, warning). Built from the
 * fleet's snapshot (fleet_instance_view_get); never blocks on the network; thread-safe.
 */
#ifndef GS_API_INSTANCE_JSON_H
#define GS_API_INSTANCE_JSON_H

#include "fleet/provision.h"

#include <jansson.h>

/* The view of vast_id (new reference), NULL when the store has no row for it. */
json_t *api_instance_json(fleet *f, const char *vast_id);

#endif
