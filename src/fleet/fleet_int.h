/* fleet_int: internals shared by the files of src/fleet/ that make up the fleet (not for
 * other modules): struct fleet, struct inst (one per instance row the fleet drives) and the
 * store row as an instance thread reads it. The files:
 *
 *   provision.c    the public API (provision.h): lifecycle, the supervisor thread that
 *                  gives each active row its thread, and the queries the dispatcher and
 *                  the API make (ready workers, GPU status, the instance view)
 *   instance.c     the per-instance state machine and its thread (instance.h)
 *   remote_setup.c the remote-setup protocol: uploads, worker.env, setup.sh (remote_setup.h)
 *   keys.c         the app's SSH key on the account and on each instance, pinned host keys
 *   adopt.c        adoption at start: VAST_INSTANCE_ID (adopt.h)
 *   vast_status.c  what Vast.ai's status fields mean (pure; vast_status.h)
 *
 * Locking: f->lock guards f->insts, f->stopping/poked, the json hook and view, and in each
 * inst the fields marked "guarded" below; an instance's thread reads and writes its
 * "thread-only" fields without it. Other threads only write an inst's stop, recheck (and
 * recheck_why), inflight, and state ("destroyed", from fleet_forget), all under f->lock.
 */
#ifndef GS_FLEET_INT_H
#define GS_FLEET_INT_H

#include "core/config.h"
#include "core/events.h"
#include "fleet/provision.h"
#include "fleet/remote_setup.h"
#include "fleet/vastctl.h"
#include "ssh/ssh.h"
#include "ssh/tunnel.h"
#include "store/store.h"
#include "vast/vast.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define LOG_KEEP 200              /* setup lines kept per instance */
#define LOADING_TIMEOUT_S 1800.0  /* image pull + container start */
#define INSTALL_TIMEOUT_S 3600.0  /* setup (build + model download) */
#define MAX_ATTEMPTS 4            /* install/start retries after broken sessions */
#define TUNNEL_CHECK_S 2.0
#define READY_RECHECK_S 30.0      /* tunnel not UP this long: recheck the instance */
#define READY_VAST_CHECK_S 60.0

typedef struct inst {
    struct fleet *f;
    long long row;
    char vid[32];
    pthread_t th;
    bool has_thread, finished, stop, recheck, resumed;
    char recheck_why[256];
    /* guarded by f->lock; the thread owns the objects */
    tunnel *tn;
    json_t *worker;       /* its /health answer */
    int inflight;         /* jobs sent to it and not finished (at most its slots) */
    char state[24];
    char stage[200];
    int percent;
    char error[512];
    /* thread-only */
    sshc *ssh;
    char *lines[LOG_KEEP];
    int nlines;
    size_t out_off;           /* setup output consumed (setup.sh --poll's offset) */
    int empty_polls;          /* empty answers to --poll in a row */
    double last_vast_check;
    struct inst *next;
} inst;

struct fleet {
    config *cfg;
    store *st;
    events *bus;
    vastctl *vc;
    vast_client *client;
    char *data_dir;
    char *pubkey;
    char *key_path;
    char *known_hosts;
    char *exe;
    char *srcdir;
    fleet_payload payload;       /* what setup builds the worker from (src_id NULL: none found) */
    char payload_err[400];
    double ssh_wait_s;
    int worker_port;
    long long account_key_id;    /* the supervisor thread's */

    fleet_json_hook json_hook;   /* adds cost fields to the instance view */
    void *json_hook_ud;
    fleet_view_fn view;          /* builds the instance.state event's object */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    inst *insts;
    bool stopping, poked, started;
    pthread_t sup;
};

/* The store row as an instance's thread reads it (instance.c: row_load). */
typedef struct row {
    long long id;
    char vid[32];
    char state[24];
    char label[64];
    char ssh_host[256];
    int ssh_port;
    double deadline;
    int attempts;
    bool key_attached;
    int percent;
    char stage[200];
} row;

/* Publish `instance.state` for vast_id through the installed view (persist: kept in the
 * store's events table, for state changes). provision.c. */
void fleet_publish_state(fleet *f, const char *vast_id, int persist);

#endif
