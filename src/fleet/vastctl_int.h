/* vastctl_int: what the files of vastctl share (not for other modules): the struct, the
 * timing constants, and the helpers one file defines for another.
 *   vastctl.c  errors, the client from config, VAST_INSTANCE_ID and its .env writes, the
 *              status poller, lifecycle
 *   boot.c     boots (persisted before renting, reconciled by label, never twice), pending
 *              boots settled at start, the end of an instance, destroys
 *   offers.c   pricing, the image's requirements, budgets, and the JSON views of offers and
 *              instances shared by the API and the CLI
 * Locks: v->lock guards the poller's state and VAST_INSTANCE_ID; v->boot_lock serializes
 * boots (held across Vast calls: only ever taken on background threads, never with another
 * lock); v->env_lock the .env writer (see app.h for the order). */
#ifndef GS_VASTCTL_INT_H
#define GS_VASTCTL_INT_H

#include "fleet/vastctl.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define POLL_RUNNING_S 30.0
#define POLL_MIN_S 2.0
#define POLL_MAX_S 30.0
#define POLL_IDLE_S 3600.0
#define VASTCTL_STALE_S 5.0
#define BOOT_ATTEMPTS 3
#define STALE_BOOT_RECHECK_S 2.0   /* a pending boot from before the start: next look */
#define STALE_BOOT_MARGIN_S 2.0    /* past the create's timeout before "nothing rented" */

struct vastctl {
    config *cfg;
    store *st;
    vast_client *client;       /* user requests: default timeouts and retries */
    vast_client *poll_client;  /* the poller: short timeouts so shutdown stays quick */
    bool has_key;

    pthread_mutex_t lock;      /* everything below but env_saved */
    pthread_cond_t cond;
    char cur_id[32];           /* VAST_INSTANCE_ID */
    char cached_id[32];        /* what the last check was about */
    bool cached_running;
    char last_note[400];       /* last state logged, to log each change once */
    bool poked, stopping;
    double checked_at;         /* now_mono() of the last check's answer */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t boot_lock; /* one boot at a time */
    pthread_mutex_t env_lock;  /* the .env writes (save_env); env_saved */
    unsigned env_gen;          /* VAST_INSTANCE_ID changes (under lock) */
    unsigned env_saved;        /* the change last written to .env (under env_lock) */
    double deadman_s;          /* DEADMAN_MINUTES: the vanished-instance estimate */

    /* boots an earlier process left pending (a row with its label, no vast_id): found by
     * vastctl_new, reconciled by the poller thread (thread-only after the start) */
    long long *stale_boots;
    size_t nstale_boots;
    double stale_settled_at;   /* now_wall() after which their creates are certainly over */
    bool stale_warned;         /* "cannot check yet" logged */
};

extern const char vastctl_no_key_msg[];

/* vastctl.c */
void vastctl_res_set(vastctl_result *res, int status, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vastctl_res_vast_err(vastctl_result *res, const vast_error *e);

/* boot.c: called by vastctl_new (before any thread) and by the poller thread */
void vastctl_find_stale_boots(vastctl *v);
bool vastctl_recover_stale_boots(vastctl *v);

#endif
