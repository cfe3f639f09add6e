/* provision: the fleet of Vast.ai instances this controller uses, each driven from boot to a
 * ready worker by its own thread, through states persisted in the store's instances table:
 *
 *   requested -> creating -> loading -> ssh_wait -> installing -> starting_worker -> ready
 *   (and failed, destroying, destroyed)
 *
 * with a percent and a stage text (creating 10, loading 20, waiting for SSH 30, installing
 * 60-90 from the setup script's GPUSCRIBE-PROGRESS lines, starting worker 95, ready 100).
 *
 * Contract:
 * - fleet_new after vastctl_new (it uses vastctl's configuration, key and VAST_INSTANCE_ID);
 *   fleet_start once the HTTP server may call in; fleet_free before vastctl_free. Nothing
 *   here blocks the caller on the network except fleet_free (joins threads: each blocks at
 *   most one SSH connect or short exec, ~10 s).
 * - The app's SSH key (sshc_app_key in DATA_DIR) is registered once as an account key (its id
 *   kept in DATA_DIR/ssh/vast_key_id) and attached to every instance through the API.
 * - Every row with a vast_id in a non-final state (not failed, destroying, destroyed or
 *   orphan: an instance found on the account that the store did not know) gets a thread; after a controller restart
 *   each resumes where it was: every step is idempotent (uploads skipped when the instance
 *   already has the same binary, setup.sh checks before it acts and runs detached on the
 *   instance, so a controller killed mid-setup finds it finished or still running).
 * - Failures (Vast says exited/unknown/offline or an error in status_msg, SSH not answering
 *   within SSH_WAIT_MINUTES, a changed host key, setup exiting non-zero) set state failed
 *   with an error that says the instance is still rented and how to destroy it. Nothing is
 *   destroyed automatically here.
 * - The ledger (ledger.h): the GPU interval opens when an instance is seen running; an
 *   adopted instance's storage from Vast's start date.
 * - Ready means: the worker answered /health through a supervised tunnel (tunnel.h) that the
 *   fleet keeps open, one per ready instance.
 * - At start, VAST_INSTANCE_ID is verified through the API; a running instance without a row
 *   is adopted and brought to ready (setup re-runs only what is missing). The log line
 *   "Vast.ai GPU available: Instance N" is written when an instance becomes ready.
 * - Every state or percent change is published on the event bus as `instance.state` with the
 *   object the installed view (fleet_set_view) builds from fleet_instance_view_get.
 * - All functions are thread-safe.
 *
 * The fleet's files (fleet_int.h): this public API and the supervisor (provision.c), the
 * per-instance state machine (instance.h), the remote-setup protocol (remote_setup.h), SSH
 * keys and host-key pinning (keys.h), adoption at start (adopt.h), Vast.ai status
 * classification (vast_status.h).
 */
#ifndef GS_PROVISION_H
#define GS_PROVISION_H

#include "core/config.h"
#include "core/events.h"
#include "fleet/vastctl.h"
#include "ssh/tunnel.h"
#include "store/instances.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct fleet fleet;

fleet *fleet_new(config *cfg, store *st, events *bus, vastctl *vc);
void fleet_start(fleet *f);
void fleet_free(fleet *f);

/* A ready instance whose tunnel is UP: 0 with url "http://127.0.0.1:<local port>" and its
 * store row id; -1 when none. Prefers VAST_INSTANCE_ID's instance. Never blocks. */
int fleet_ready_worker(fleet *f, char *url, size_t urllen, long long *row_id, int reserve);
/* The model names the ready workers can run (their /health "models"), each once. */
json_t *fleet_worker_models(fleet *f);
/* A job sent with a reserved slot (fleet_ready_worker with reserve) is over. */
void fleet_release_worker(fleet *f, long long row_id);
/* Chunks in flight on row_id's worker now; *slots (optional) gets the slots its /health
 * advertised (0 while it has no worker). Never blocks. */
int fleet_inflight(fleet *f, long long row_id, int *slots);
/* Nonzero while the store holds an instance on its way to ready (booting, installing) or
 * ready (its worker may be reconnecting, or not yet reconnected after a restart): jobs the
 * dispatcher cannot hand to a ready worker then wait for it rather than fall back. */
int fleet_gpu_pending(fleet *f);
/* The job dispatcher saw the worker of row_id fail: recheck it now (instance status, worker
 * restarted when dead, tunnel). */
void fleet_report_failure(fleet *f, long long row_id, const char *why);

/* Look for new rows now (after a boot). */
void fleet_poke(fleet *f);
/* The instance was destroyed (by the API): stop its thread and tunnel, forget its host key. */
void fleet_forget(fleet *f, long long vast_id);

/* For /api/gpu-status, about VAST_INSTANCE_ID's instance only: true when its worker is ready
 * (vid = its id, msg "Vast.ai GPU available: Instance N"). Otherwise, while it is being
 * provisioned (or failed), vid is its id and msg names the stage (or the error); both ""
 * when there is none. Never blocks on the network or the store. */
bool fleet_gpu_status(fleet *f, char *vid, size_t vidlen, char *msg, size_t msglen);

/* One instance as the fleet knows it, for views (api/instance_json.h builds the JSON the
 * API and the `instance.state` event carry): its store row and setup log and, while the
 * fleet has a tunnel to its worker, the tunnel's status and the worker's /health summary. */
typedef struct fleet_instance_view {
    instance_row row;         /* the store's row */
    char *setup_log;          /* newline-separated recent setup lines (heap); NULL when none */
    bool has_tunnel;          /* the fleet holds a tunnel to its worker: */
    tunnel_status tunnel;     /*   its status */
    json_t *worker;           /*   {engine, model, gpu} from /health (own reference) or NULL */
} fleet_instance_view;
/* Fill out for vast_id (Vast id as string): 1 (release it), 0 when the store has no row
 * for it (or cannot read it; out zeroed). Never blocks on the network. */
int fleet_instance_view_get(fleet *f, const char *vast_id, fleet_instance_view *out);
void fleet_instance_view_release(fleet_instance_view *v);

/* Cost safety (reaper.h) decorates the instance view: hook(ud, row_id, j) adds fields to j
 * (called without the fleet's lock held). fleet_json_decorate runs it on j (no-op when
 * none is installed). */
typedef void (*fleet_json_hook)(void *ud, long long row_id, json_t *j);
void fleet_set_json_hook(fleet *f, fleet_json_hook hook, void *ud);
void fleet_json_decorate(fleet *f, long long row_id, json_t *j);

/* What the fleet publishes as `instance.state`: view(f, vast_id) returns the object (new
 * reference; NULL: nothing published). Installed once, before fleet_start (main.c installs
 * api_instance_json); without one nothing is published. */
typedef json_t *(*fleet_view_fn)(fleet *f, const char *vast_id);
void fleet_set_view(fleet *f, fleet_view_fn view);
/* True when row_id's worker is ready and its tunnel UP (its /health is being checked). */
bool fleet_worker_up(fleet *f, long long row_id);
/* Publish `instance.state` for the instance now (e.g. a warning appeared or cleared). */
void fleet_publish(fleet *f, const char *vast_id);

#endif
