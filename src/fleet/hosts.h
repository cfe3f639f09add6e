/* hosts: Vast.ai hosts (machine_id) remembered as bad. A host whose instance failed (to
 * start, in setup, or later) or vanished from Vast.ai is recorded by a store trigger
 * (migration 6: the instance row's state becomes failed, or destroyed with reason "gone",
 * and its machine_id is known, from the offer at boot or Vast's instance record), with the
 * reason. For BAD_HOST_HOURS after that (0: never) search hides its offers (listing them
 * apart with the reason) and autoscaling never boots on it. This module alone reads the
 * bad_hosts table.
 *
 * Contract: store reads only; thread-safe. now is wall-clock seconds.
 */
#ifndef GS_FLEET_HOSTS_H
#define GS_FLEET_HOSTS_H

#include "store/store.h"

#include <jansson.h>
#include <stddef.h>

typedef struct bad_host {
    long long machine_id;
    char reason[400];
    char vast_id[32];
    double marked_at, until;
} bad_host;

/* 1 when machine_id was marked within the last hours (out filled when given), else 0. */
int hosts_bad(store *st, long long machine_id, double hours, double now, bad_host *out);
/* The hosts bad now: [{machine_id, reason, vast_id, marked_at, until}] (new reference). */
json_t *hosts_bad_json(store *st, double hours, double now);
/* One host as JSON (new reference). */
json_t *hosts_one_json(const bad_host *h);

#endif
