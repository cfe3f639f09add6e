/* vastsim: a local emulator of the Vast.ai REST API (docs/vast-api.md) whose instances are real.
 *
 * Layout of the program:
 * - main.c      CLI, startup checks, the lifecycle thread (ticks every 50 ms: boots, ledger,
 *               child reaping), orderly shutdown (SIGTERM/SIGINT destroy every instance).
 * - api.c       the libmicrohttpd handler: routing of /api/v0, /api/v1 and /_admin, auth,
 *               injected HTTP faults, the request log, the result URLs of logs/execute.
 * - catalog.c   the generated offer catalog and the search/list filter language (operators,
 *               numeric-string coercion, ordering) shared by bundles and the v1 list.
 * - instance.c  instance records: create/stop/start/destroy, JSON rendering, the state machine
 *               step, the billing ledger, account and instance SSH keys.
 * - sandbox.c   what makes an instance real: per-instance directory, host key, sshd config,
 *               the namespace holder (net+mnt namespaces, private /workspace and /root),
 *               per-connection `sshd -i` run inside the namespaces, the API listener opened
 *               inside each namespace on the same port, process sweeps and teardown; the
 *               network thread that accepts on all those sockets.
 *
 * Concurrency contract: every field of `struct sim` and of every instance/offer is guarded by
 * sim.mu, except where a comment says otherwise. HTTP handlers (MHD pool threads), the lifecycle
 * thread and the network thread take sim.mu for short critical sections. Processes are forked
 * only by the lifecycle thread (namespace holders, onstart scripts, ssh-keygen) and the network
 * thread (sshd per connection); a forked child only makes async-signal-safe calls before execve.
 * Listening sockets are closed only by the network thread (instances hand theirs over through
 * sim.dead_fds), so it never polls a descriptor number that was reused.
 */
#ifndef VASTSIM_SIM_H
#define VASTSIM_SIM_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_TAG "vastsim"

/* One line of the billing ledger; outlives its instance (destroyed instances stay listed). */
typedef struct ledger_entry {
    struct ledger_entry *next;
    long instance_id;
    char *label;              /* copy at destroy time / live label, may be NULL */
    double gpu_rate;          /* $/h while running: dph_base, or the bid price */
    double gpu_prior_cost;    /* GPU cost billed at earlier rates (the bid changed) */
    double gpu_prior_s;       /* running_s when gpu_rate last changed */
    double storage_rate;      /* $/h while the instance exists (storage_total_cost) */
    double running_s, exist_s;
    double last;              /* wall time of the last accrual */
    bool running;             /* accrues GPU time now */
    bool exists;              /* accrues storage now (false after destroy, or offline) */
    bool destroyed;
    double created_at, destroyed_at;
} ledger_entry;

typedef struct ssh_key {
    struct ssh_key *next;
    long id;
    char *public_key;
    double created_at;
} ssh_key;

typedef struct instance {
    struct instance *next;
    long id;
    long ask_id;
    json_t *offer;            /* static offer fields at rent time (owned) */
    char *api_key;            /* per-instance key (CONTAINER_API_KEY) */
    char *image, *label, *onstart, *runtype, *args_str;
    json_t *env;              /* object, as sent */
    json_t *args;             /* array or NULL */
    double disk;              /* GB */
    double dph_base, storage_cost, storage_total_cost;
    double bid_price;         /* > 0 for interruptible */
    const char *actual;       /* NULL, "loading", "running", "exited", ... (static strings) */
    const char *intended, *cur_state, *next_state;
    char *status_msg;
    double created_at, phase_at, start_date;
    double loading_delay, running_delay;
    bool stuck;               /* never leaves loading (fault) */
    bool onstart_done;
    ssh_key *keys;            /* attached to this instance */
    ssh_key *account_keys;    /* snapshot of the account keys at creation */
    ledger_entry *ledger;
    double ssh_refuse_until;  /* wall time; SSH connections refused before it */

    /* sandbox (sandbox.c) */
    char *dir;                /* <state>/instances/<id> */
    const char *image_root;   /* the root file system of its image (--image), or NULL: the host's */
    int ssh_port;
    int ssh_fd;               /* host-side loopback listener for SSH, -1 when none */
    int api_fd;               /* API listener inside the instance's netns, -1 when none */
    pid_t holder;             /* namespace holder process, 0 when none */
    int netns_fd, mntns_fd;   /* open namespace handles, -1 when none */
    dev_t ns_dev;
    ino_t netns_ino, mntns_ino;
    bool setup_done;          /* sandbox_setup ran (successfully or not) */
    char *setup_error;        /* why it failed, NULL on success */
    char *tag;                /* VASTSIM_TAG value marking every process of the instance */
} instance;

typedef struct offer {
    struct offer *next;
    long id;
    json_t *j;                /* static fields (owned); price fields are computed per search */
} offer;

enum fault_style { STYLE_DEFAULT = 0, STYLE_TEXT, STYLE_DETAIL, STYLE_ERROR };

typedef struct http_fault {
    struct http_fault *next;
    int code;                 /* 429 or 503 */
    int remaining;
    char *path;               /* substring the path must contain, or NULL */
    char *method;             /* or NULL */
    enum fault_style style;
} http_fault;

typedef struct boot_fault {
    struct boot_fault *next;
    int remaining;            /* next N creates */
    double loading_delay;     /* < 0: unchanged */
    double running_delay;     /* < 0: unchanged */
    bool stuck;
} boot_fault;

typedef struct request_rec {
    long seq;
    double time;
    char *method, *path, *query;   /* query has api_key redacted */
    int status;
    const char *auth;              /* "account", "instance", "none", "invalid" */
    long auth_instance;
    long source_instance;          /* 0 = host loopback, else the instance whose netns it came from */
    double ms;
} request_rec;

typedef struct result_doc {       /* logs / execute outputs served at result_url */
    struct result_doc *next;
    char *name;
    char *text;
    double ready_at;
    double expires_at;
} result_doc;

struct sim {
    pthread_mutex_t mu;
    /* configuration (read-only after start) */
    int port;
    char *state_dir;
    bool state_dir_owned;     /* created by us (mkdtemp): removed at exit */
    char **account_keys_cfg;  /* --api-key values */
    int n_account_keys_cfg;
    double loading_delay, running_delay;
    uint64_t seed;
    int n_offers;
    bool isolation;           /* namespaces in use */
    char **image_names;       /* --image NAME=ROOT: instances of image NAME run in ROOT */
    char **image_roots;
    int n_images;
    char *isolation_reason;   /* why not, when false */
    char *ssh_user;           /* user sessions log in as */
    bool live_account_keys;   /* account keys apply to existing instances too (else: at creation) */
    char *stop_status;        /* actual_status after a user stop: "exited" or "stopped" */
    double initial_credit;
    int auth_error_code;      /* 401 or 404 */
    bool v0_list_legacy;      /* GET /api/v0/instances/: legacy list instead of 410 */
    bool rate_limit;          /* per-endpoint minimum interval limiter */
    double rate_scale;
    json_t *rate_last;        /* "endpoint|identity" -> last time */

    /* state */
    offer *offers;
    long next_offer_id;
    instance *instances;
    long next_instance_id;
    ledger_entry *ledger;
    ssh_key *account_keys;
    long next_key_id;
    http_fault *http_faults;
    boot_fault *boot_faults;
    json_t *vanish_offers;    /* array of offer ids whose next create fails */
    request_rec *reqs;        /* ring */
    size_t req_cap, req_len, req_head;
    long req_seq;
    result_doc *results;
    long next_result;
    double started_at;
    double ssh_refuse_until;  /* wall time; every instance refuses SSH before it */

    /* threads and descriptors */
    struct MHD_Daemon *mhd;
    int wake_fd[2];           /* wakes the network thread */
    int *dead_fds;            /* listeners to close (network thread closes them) */
    size_t n_dead, cap_dead;
    volatile int stopping;
    pid_t *ssh_pids;          /* sshd -i children: pid, and the instance id beside it */
    long *ssh_pid_inst;
    size_t n_ssh, cap_ssh;
};

extern struct sim g_sim;

/* ---- catalog.c ---- */
/* Generate sim.n_offers deterministic offers from sim.seed. */
void catalog_init(void);
void catalog_free(void);
offer *catalog_find(long id);
/* Remove an offer from the catalog (rented); frees it. */
void catalog_remove(long id);
/* Put a new offer (new id) for the same machine back after an instance is destroyed. */
void catalog_relist(const json_t *offer_static);
/* Offer with price fields computed for allocated_storage GB and rental type; new reference. */
json_t *catalog_priced(const offer *o, double allocated_storage, bool bid);
/* Run a search body ({field: {op: v}}, order, type, limit, allocated_storage). Returns the
 * response object, or NULL with *http and *err (new reference, error body) set. */
json_t *catalog_search(json_t *body, int *http, json_t **err);

/* Filter language shared with the instance list. Compare two JSON values with numeric-string
 * coercion; returns <0, 0, >0; *comparable = false when they cannot be ordered. */
int jv_compare(const json_t *a, const json_t *b, bool *comparable);
/* Does row satisfy every {field: {op: value}} of filters? Unknown operator or a field for which
 * valid_field returns false: returns -1 and *bad (static or pointing into filters) names it. */
int filters_match(const json_t *row, const json_t *filters, bool (*valid_field)(const char *),
                  const char **bad);
/* Sort an array of objects by an order list [[field, dir], ...] or [{"col", "dir"}], id last. */
void rows_sort(json_t *rows, const json_t *order);
int rows_cmp(const json_t *a, const json_t *b, const json_t *order);

/* ---- instance.c ---- */
instance *inst_find(long id);
instance *inst_find_by_key(const char *key);
/* Render the full instance object (new reference). */
json_t *inst_json(const instance *in);
/* Create from a request body; returns the HTTP status and sets *resp (new reference). */
int inst_create(long ask_id, json_t *body, json_t **resp);
/* state "running"/"stopped"; 0 or -1 (*msg static) */
int inst_set_state(instance *in, const char *state, const char **msg);
void inst_reboot(instance *in);
void inst_destroy(instance *in);   /* unlinks, tears down, frees */
void inst_destroy_all(void);
/* One lifecycle step for every instance (called with sim.mu held). */
void inst_tick(double now);
void ledger_accrue(double now);
json_t *ledger_json(void);
/* Bill GPU time at a new rate from now on (a changed bid); earlier time keeps its rate. */
void ledger_set_gpu_rate(ledger_entry *e, double rate);
double credit_left(void);
void ledger_free(void);
/* Account keys. */
ssh_key *key_new(const char *pub);
void keys_free(ssh_key *k);
json_t *key_json(const ssh_key *k);
/* Mark a status change as a fault: exited/unknown/offline/created, with message. */
void inst_force_status(instance *in, const char *actual, const char *msg, bool kill);

/* ---- sandbox.c ---- */
/* Can this process create namespaces? Sets sim.isolation and sim.isolation_reason. */
void sandbox_probe(void);
/* Open the host-side SSH listener (fills ssh_fd/ssh_port); 0 or -1. */
int sandbox_listen_ssh(instance *in);
/* Directories, host key, sshd config, authorized_keys, namespace holder, in-namespace API
 * listener. Sets in->setup_done; on failure in->setup_error. */
void sandbox_setup(instance *in);
/* Rewrite authorized_keys and the sshd config (keys or env changed). */
void sandbox_write_keys(instance *in);
/* Kill every process of the instance except the namespace holder. Returns how many. */
int sandbox_kill_procs(instance *in);
/* Drop every SSH connection of the instance (or of all instances when in == NULL). */
void sandbox_drop_ssh(instance *in);
/* Run the onstart script inside the instance. */
void sandbox_run_onstart(instance *in);
/* Run a command inside the instance and capture its output (execute endpoint); heap string. */
char *sandbox_exec_capture(instance *in, const char *cmd);
/* Kill everything, close (hand over) descriptors, remove the directory. */
void sandbox_teardown(instance *in);
/* Reap exited children (any pid); forget reaped sshd pids. */
void sandbox_reap(void);
/* Kill processes tagged by a vastsim that no longer exists (it was SIGKILLed). */
void sandbox_sweep_orphans(void);
void *net_thread_main(void *arg);
/* Ask the network thread to close fd (listening socket of a destroyed instance). */
void net_close_later(int fd);
void net_wake(void);
/* Remember a connection accepted from an instance's netns: fd -> instance id (api.c reads it). */
void conn_source_set(int fd, long inst);
long conn_source_take(int fd);

/* ---- api.c ---- */
int api_start(void);
void api_stop(void);
void requests_free(void);
void faults_free(void);
void results_free(void);
void results_prune(double now);

/* ---- helpers shared by the files (instance.c) ---- */
char *random_hex(size_t nbytes);
json_t *jerr(const char *error, const char *msg);

#endif
