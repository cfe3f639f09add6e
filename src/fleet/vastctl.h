/* vastctl: the controller's shared Vast.ai state: the REST client built from the
 * configuration, the cached status of the instance named by VAST_INSTANCE_ID (kept fresh
 * by a background thread, so /api/gpu-status never waits on the API), and boots and
 * destroys that are persisted in the store and never rent twice. Its files: vastctl.c (the
 * client, VAST_INSTANCE_ID, the poller), boot.c (boots and destroys), offers.c (pricing,
 * budgets, JSON views), sharing fleet/vastctl_int.h.
 *
 * Contract:
 * - vastctl_new(cfg, st) after the store is open and before the HTTP server starts;
 *   vastctl_free after the server stopped and before the store closes. vastctl_new never
 *   fails: without a key (VAST_API_KEY, from .env, the environment or the vast CLI's key
 *   file) the client still searches (Vast allows it unauthenticated), and every call that
 *   needs the account answers VASTCTL_NO_KEY.
 * - The poller thread checks VAST_INSTANCE_ID at start, then every 30 s while it runs and
 *   every 2-30 s (backing off) while it does not; vastctl_poke wakes it. When Vast says the
 *   instance no longer exists it logs so and hands it to vastctl_instance_gone.
 * - Boots are serialised by one mutex. Each boot is a store row (state requested ->
 *   creating -> loading, or failed) written BEFORE Vast is called, found again by its
 *   idempotency key: the Idempotency-Key header when the caller sends one, else the offer id
 *   within VASTCTL_BOOT_WINDOW_S. A repeat returns the existing instance. The row and its
 *   unique label (gpuscribe-<row id>) are written in one transaction before Vast is called
 *   (store/instances.h), so a boot is never on record without its label. A create whose
 *   outcome is unknown (timeout, 5xx, dropped connection, controller killed) is reconciled by
 *   looking for that label on the account before anything is rented again; an empty label
 *   matches no instance (unlabelled instances are other tools'), and a labelled duplicate is
 *   the only thing ever destroyed as one. Test-only fault points (core/fault.h):
 *   boot_after_insert (the row is written, Vast not called yet) and boot_after_create (Vast
 *   created the instance, its id not recorded yet).
 * - Boots an earlier run left pending (requested/creating, a label, no vast_id: killed
 *   mid-boot) are listed by vastctl_new and settled by the poller thread even when nobody
 *   retries them, each under the boot mutex: an instance carrying the row's exact label is
 *   adopted (its id recorded, storage billed from Vast's start date, VAST_INSTANCE_ID set as
 *   by a boot; the fleet provisions it and cost safety applies); when none does once the
 *   create is certainly over (VAST_TIMEOUT_SECONDS after the start, plus a margin) the row
 *   fails with "the controller stopped during the boot; Vast.ai has no instance labelled
 *   L: nothing is rented". A row without a label fails at once. Each decision is logged.
 * - VAST_INSTANCE_ID is only written under this module's lock (config_set + config_env_set);
 *   other modules read it through vastctl_current_instance.
 * - Cost: a boot first prices the offer (for VAST_DISK_GB) and is refused (402, kind
 *   "budget") when one hour at its dph_total would pass a configured budget; the row keeps
 *   the offer's rates, and the ledger's storage interval opens when Vast confirms the
 *   create. A destroy records its reason and closes the instance's ledger.
 * - Image fit: a boot re-reads the offer (the same search that prices it) and refuses it
 *   (409, kind "image_mismatch") when the host cannot run VAST_IMAGE (vast/image_req.h:
 *   CUDA, compute capability, disk), or when VAST_DISK_GB is smaller than the image and
 *   model need, before any store row or rental. When the image has requirements and the
 *   offer cannot be read, the boot is refused with that read's error (its status and
 *   kind) rather than renting blind. An offer the search no longer lists goes on to the create, whose answer
 *   (no_such_ask, 409) says it is gone.
 * - All functions are thread-safe. Errors carry an HTTP status and a user-facing message
 *   (never the API key).
 */
#ifndef GS_VASTCTL_H
#define GS_VASTCTL_H

#include "core/config.h"
#include "fleet/ledger.h"
#include "store/store.h"
#include "vast/image_req.h"
#include "vast/vast.h"

#include <stdbool.h>
#include <stddef.h>

#define VASTCTL_LABEL_PREFIX "gpuscribe"
#define VASTCTL_BOOT_WINDOW_S 600.0

typedef struct vastctl vastctl;

vastctl *vastctl_new(config *cfg, store *st);
void vastctl_free(vastctl *v);


/* The shared client (never NULL once vastctl_new returned); has_key says whether it
 * carries an account key. */
vast_client *vastctl_client(vastctl *v);
bool vastctl_has_key(const vastctl *v);
/* The message explaining how to configure a key (static string). */
const char *vastctl_no_key_message(void);

/* The cached view for /api/gpu-status: true when VAST_INSTANCE_ID names an instance the
 * last check found running; its id is copied to id. Never blocks on the network. */
bool vastctl_running_instance(vastctl *v, char *id, size_t idlen);
/* VAST_INSTANCE_ID as currently set ("" when unset), copied to id. */
void vastctl_current_instance(vastctl *v, char *id, size_t idlen);
/* Set (id != NULL) or clear VAST_INSTANCE_ID in memory and in the .env file, and wake the
 * poller. Clearing with only_if != NULL clears only when the current value equals it. */
void vastctl_set_instance(vastctl *v, const char *id, const char *only_if);
void vastctl_poke(vastctl *v);

/* Outcome of a boot or destroy, ready to become an HTTP answer. */
typedef struct vastctl_result {
    int http_status;            /* 200 on success */
    char kind[24];              /* vast_err_kind_name, "no_key", "conflict", ... ("" on success) */
    char message[640];
    long long instance_id;      /* Vast's id, 0 when none */
    long long row_id;           /* our store row, 0 when none */
    bool reused;                /* boot: an earlier boot with the same key answered */
} vastctl_result;

/* Rent offer_id (> 0). idem_key: the caller's Idempotency-Key, or NULL to derive one. */
void vastctl_boot(vastctl *v, long long offer_id, const char *idem_key, vastctl_result *res);
/* Destroy instance_id (> 0): Vast first, then the store row and VAST_INSTANCE_ID. An id
 * Vast does not know is 404 (its row, if any, is marked destroyed too). */
void vastctl_destroy(vastctl *v, long long instance_id, vastctl_result *res);

/* The same, recording why (user, idle, hard_cap, budget, orphan): the row gets
 * destroy_reason and its ledger is closed (ledger_finalize). */
void vastctl_destroy_for(vastctl *v, long long instance_id, const char *reason,
                         vastctl_result *res);

/* The one path for an instance Vast.ai says no longer exists (found by the poller, the
 * fleet or the reaper): in one transaction its row is marked destroyed (stage "gone from
 * Vast.ai", destroy_reason reason unless one is recorded, destroyed_at = ledger_gone_end's
 * estimate from its seen_at and DEADMAN_MINUTES) and its ledger is closed at that time;
 * then VAST_INSTANCE_ID is cleared if it names it, and `instance.gone` {reason,
 * billed_until} is recorded. 1 marked, 0 no row or destroyed already, -1 store error.
 * *end (optional) gets the time billing stopped. Does not log (the caller says who saw it). */
int vastctl_instance_gone(vastctl *v, const char *vast_id, const char *reason, double *end);

/* The offer's prices for a boot of VAST_DISK_GB: 1 found, 0 not offered (taken), -1 error
 * (e filled). */
int vastctl_offer_price(vastctl *v, long long offer_id, double *dph_total, double *dph_base,
                        double *storage, vast_error *e);
/* The offer as a boot sees it (a search by id for VAST_DISK_GB, unverified included):
 * 1 found (*out filled), 0 not offered (taken), -1 error (e filled). */
int vastctl_offer_get(vastctl *v, long long offer_id, vast_offer *out, vast_error *e);
/* What VAST_IMAGE needs for WHISPER_MODEL and MODELS_PRELOAD, with VAST_IMAGE_MIN_CUDA
 * applied. */
void vastctl_image_req(const config *cfg, image_req *out);
/* {"image", "known", "min_cuda", "min_compute_cap", "min_disk_gb", "model", "model_gb",
 *  "image_gb", "cuda_source" ("table"|"VAST_IMAGE_MIN_CUDA"|null)} (new reference). */
json_t *vastctl_image_req_json(const image_req *r);
/* 0 when the offer fits r (o NULL: not checked) and a boot's disk (VAST_DISK_GB) holds what
 * r needs; else a user-facing message naming the offer, every unmet requirement and what
 * to do. */
int vastctl_offer_mismatch(const config *cfg, const image_req *r, const vast_offer *o,
                           char *msg, size_t msglen);

/* BUDGET_DAILY_USD, BUDGET_MONTHLY_USD, BUDGET_TOTAL_USD (NAN when unset). */
ledger_budgets vastctl_budgets(const config *cfg);

/* HTTP status for a client error kind (auth 502, rate limit 503, network 502, timeout 504,
 * offer taken 409, not found 404, no credit 402, bad request 400, ...). */
int vastctl_http_status(vast_err_kind kind);
/* "Vast.ai rejected the API key: ..." etc.: a user-facing message for err. */
void vastctl_describe(const vast_error *err, char *out, size_t outlen);

/* Shared with the CLI: build a client from the configuration (NULL with err filled when the
 * URL is invalid), and the create parameters a boot uses (image VAST_IMAGE, disk
 * VAST_DISK_GB, the given label, on-demand, ssh runtype). */
vast_client *vastctl_client_from_config(const config *cfg, char *err, size_t errlen);
void vastctl_create_params(const config *cfg, const char *label, vast_create *out);

/* JSON views (new references) shared by the API and the CLI: an offer {id, gpu_name,
 * num_gpus, gpu_ram (GiB), dph_total ($/h), reliability2, disk_space, inet_down, inet_up,
 * cuda_max_good, compute_cap, geolocation, ...}; an instance {id, label, actual_status, intended_status,
 * status_msg, gpu_name, num_gpus, gpu_ram, dph_total, ssh_host, ssh_port, geolocation,
 * created_at}. */
json_t *vastctl_offer_json(const vast_offer *o);
json_t *vastctl_instance_json(const vast_instance *in);

#endif
