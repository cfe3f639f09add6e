/* instances: the store's instances table, one row per Vast.ai instance this controller
 * rents, boots or finds on the account. This module is the only code that knows that
 * table's columns; everything else reads and writes typed rows through it.
 *
 * A row's life (the state column): requested | creating (a boot written before Vast is
 * called; vast_id empty) -> loading -> ssh_wait -> installing -> starting_worker -> ready,
 * and failed, destroying, destroyed; orphan for an instance found on the account that no
 * boot of ours recorded. vast_id is Vast's id ("" until Vast created it); label is what the
 * instance carries on Vast ("" when none).
 *
 * Contract:
 * - Every function takes the store lock (store.h) and is thread-safe. A change that spans
 *   statements runs in one transaction (store_begin ... store_commit), so a crash leaves
 *   either all of it or none of it; callers may wrap several calls in their own
 *   store_begin/store_commit (they nest).
 * - Lookups return 1 (found, *out filled), 0 (none: *out zeroed) or -1 (a store error,
 *   logged). Writers return the number of rows changed (>= 0) or -1 (logged), except where
 *   said otherwise. Text columns that are NULL read as ""; numeric NULLs read as 0 (the
 *   has_* flags tell NULL from 0 where it matters).
 * - An empty label never matches anything: instances_by_label("") is 0, and
 *   instances_label_pending ignores an empty label. Unlabelled instances on the account
 *   belong to other tools as far as we know.
 * - The secrets (instance_api_key) and the host key are written here but never read back
 *   into instance_row.
 */
#ifndef GS_INSTANCES_H
#define GS_INSTANCES_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct instance_row {
    long long id;               /* our row id */
    char vast_id[32];           /* Vast's id, "" before Vast created it */
    long long offer_id;         /* 0 when unknown (found on the account) */
    char idem_key[300];         /* "key:<Idempotency-Key>", "offer:<offer>:<row>", "" */
    char state[24];
    char stage[200];
    int percent;
    char label[64];
    char gpu_name[64];
    int num_gpus;
    double gpu_ram_gb;
    double dph_total, dph_base, storage_dph;  /* $/h; 0 when unknown */
    char ssh_host[256];
    int ssh_port;
    int worker_port;
    char error[640];
    double created_at, updated_at;
    double running_at, ready_at, destroyed_at, last_busy_at;  /* 0 when NULL */
    long long ssh_key_id;
    bool has_ssh_key_id;        /* ssh_key_id is set (our key was attached) */
    int attempts;
    double deadline_at, keepalive_until, warned_at, seen_at;  /* 0 when NULL */
    char destroy_reason[24];    /* user|idle|hard_cap|budget|orphan|failed|gone, "" */
    long long machine_id;       /* the host's machine_id on Vast.ai; 0 when unknown */
} instance_row;

/* ---- lookups */

int instances_get(store *st, long long id, instance_row *out);
int instances_by_vast_id(store *st, const char *vast_id, instance_row *out);
int instances_by_idem_key(store *st, const char *idem_key, instance_row *out);
/* The newest row labelled label. An empty (or NULL) label finds nothing (0). */
int instances_by_label(store *st, const char *label, instance_row *out);
/* The newest boot of offer_id created after since that is neither failed nor destroyed. */
int instances_recent_boot(store *st, long long offer_id, double since, instance_row *out);
/* The row id of vast_id: > 0, 0 when the store has none, -1 on a store error. (For
 * POST /api/vast/destroy's cost summary.) */
long long instances_id_of(store *st, const char *vast_id);
/* True when a row has vast_id, or a row still without a vast_id (a boot whose create is
 * unanswered) carries label; an empty label only checks vast_id. */
bool instances_label_pending(store *st, const char *label, const char *vast_id);
/* The setup log (newline-separated recent lines) of row id; NULL when none. Caller frees. */
char *instances_setup_log(store *st, long long id);

typedef enum instances_filter {
    INSTANCES_OURS,          /* every row with a vast_id, oldest first */
    INSTANCES_OURS_NEWEST,   /* the same, newest first */
    INSTANCES_ACTIVE,        /* vast_id set, not failed/destroying/destroyed/orphan: provisioned */
    INSTANCES_LIVE,          /* vast_id set, not destroying/destroyed/orphan: cost safety */
    INSTANCES_PROVISIONING,  /* vast_id set, requested..ready: a GPU is (about to be) there */
    INSTANCES_RECENT,        /* not destroyed, or destroyed after since; newest first */
    INSTANCES_STALE_LEDGER,  /* destroyed, with a ledger interval still open */
    INSTANCES_PENDING_BOOT,  /* requested/creating without a vast_id: a create unanswered */
} instances_filter;

/* The rows matching which (since: for INSTANCES_RECENT), at most max (0: all). 0 with *rows
 * (heap, free() it; NULL when *n is 0) and *n, or -1. */
int instances_list(store *st, instances_filter which, double since, size_t max,
                   instance_row **rows, size_t *n);
/* How many rows match which; -1 on a store error. */
int instances_count(store *st, instances_filter which, double since);
/* Every row counted by state: fn(ud, state, rows) once per state present (by name), called
 * with the store lock held (fn must take no lock). 0, or -1 on a store error. */
int instances_count_by_state(store *st, void (*fn)(void *ud, const char *state, long long n),
                             void *ud);

/* ---- boots */

/* Record a boot of offer_id in one transaction: the row (state creating, 5%, "creating
 * instance", the offer's rates when > 0) and its label, label_prefix "-" <row id>, written
 * together, so no row ever exists without its label. idem_key: the caller's key as stored
 * ("key:..."), or NULL for "offer:<offer_id>:<row id>". Returns the row id (> 0), with the
 * label copied to label, or -1. */
long long instances_insert_boot(store *st, long long offer_id, const char *idem_key,
                                const char *label_prefix, double dph_total, double dph_base,
                                double storage_dph, double now, char *label, size_t labellen);
/* Vast created (or an unanswered create turned out to have created) vast_id for row id:
 * state loading, 10%, error cleared. api_key (Vast's per-instance key) and created_at are
 * written when non-NULL / > 0. */
int instances_set_created(store *st, long long id, const char *vast_id, const char *api_key,
                          double created_at, double now);
/* The last error of an attempt whose outcome is not known yet. */
int instances_set_error(store *st, long long id, const char *error, double now);
/* A boot certainly rented nothing: state failed. error replaces the error; NULL keeps it,
 * or writes "no instance was created" when there was none. */
int instances_boot_failed(store *st, long long id, const char *error, double now);
/* Free row id's idempotency key for a new attempt (the old key gets "#<id>" appended). */
int instances_release_idem_key(store *st, long long id);

/* ---- instances found on the account */

/* Insert r as a new row (its vast_id, state, stage, percent, label, gpu_name, num_gpus,
 * dph_total, dph_base, storage_dph, ssh_host, ssh_port, created_at, updated_at, running_at;
 * "" and 0 become NULL where the column allows). Returns the new row id, or -1 (also when
 * vast_id already has a row). */
long long instances_insert_found(store *st, const instance_row *r);
/* Bring row id back to life for VAST_INSTANCE_ID found on the account: state, stage,
 * percent, the SSH address; error, attempts, deadline and destroyed_at cleared. */
int instances_resume(store *st, long long id, const char *state, const char *stage,
                     int percent, const char *ssh_host, int ssh_port, double now);

/* What the API said about an instance (instances_observe). */
typedef struct instance_facts {
    const char *gpu_name;    /* NULL/"" unknown */
    int num_gpus;
    double gpu_ram_gb;
    double dph_total, dph_base, storage_dph;  /* <= 0 unknown */
    const char *ssh_host;    /* NULL/"" unknown */
    int ssh_port;            /* <= 0 unknown */
    double running_at;       /* > 0: running since (written only when not yet known) */
    long long machine_id;    /* > 0: the host (written only when not yet known) */
} instance_facts;
/* Merge f into row id (or, with id 0, the row of vast_id) unless it is destroyed: the GPU
 * fields fill only what is unknown, rates and the SSH address replace the stored ones when
 * known. */
int instances_observe(store *st, long long id, const char *vast_id, const instance_facts *f,
                      double now);

/* The host of row id (its offer's machine_id; <= 0 does nothing). A row whose state then
 * becomes failed, or destroyed with reason "gone", marks that host bad (store migration 6's
 * trigger; fleet/hosts.h reads it). */
int instances_set_machine(store *st, long long id, long long machine_id);

/* ---- provisioning */

/* Move row id to state (percent, stage, error: NULL clears it) unless it is destroying or
 * destroyed; ready also stamps ready_at. 1 done, 0 when the row is being destroyed (the
 * caller stops), -1 error. */
int instances_set_state(store *st, long long id, const char *state, int percent,
                        const char *stage, const char *error, double now);
/* deadline_at (at <= 0: NULL). */
int instances_set_deadline(store *st, long long id, double at);
int instances_set_setup_log(store *st, long long id, const char *log);
int instances_set_ssh_key(store *st, long long id, long long key_id);
/* attempts + 1 */
int instances_add_attempt(store *st, long long id);
/* The worker answers: attempts 0, worker_port, no deadline. */
int instances_set_worker(store *st, long long id, int worker_port);

/* ---- cost safety */

int instances_set_seen(store *st, long long id, double at);
int instances_set_busy(store *st, long long id, double at);
/* warned_at (at <= 0: NULL) */
int instances_set_warned(store *st, long long id, double at);
/* Postpone vast_id's idle destroy to until (last_busy_at now, warning cleared), when it is
 * live (not destroyed/destroying/orphan). Rows changed (1), or 0 / -1. */
int instances_keepalive(store *st, const char *vast_id, double until, double now);

/* ---- destroy */

/* state destroying (unless destroyed). */
int instances_set_destroying(store *st, long long id, double now);
/* A failed destroy: back to state (unless destroyed meanwhile). */
int instances_restore_state(store *st, long long id, const char *state, double now);
/* Row id is gone: state destroyed, stage (NULL: "destroyed"), destroyed_at=at, the reason
 * unless one is recorded already. 1 marked, 0 it was destroyed already, -1 error. Callers
 * close its ledger in the same transaction (vastctl_close_row). */
int instances_mark_destroyed(store *st, long long id, const char *stage, const char *reason,
                             double at, double now);
/* For a row destroyed earlier whose ledger was left open: destroyed_at=at, reason "gone"
 * unless one is recorded. */
int instances_set_destroyed_at(store *st, long long id, double at);

#endif
