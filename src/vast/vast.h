/* vast: the Vast.ai REST client (libcurl + jansson), following docs/vast-api.md.
 *
 * Contract:
 * - Call vast_global_init() once, before any thread uses a client (it seeds jansson; libcurl
 *   is loaded and initialised by the first request, core/curl_dl.h, so a server that never
 *   calls Vast never maps it). vast_global_cleanup() at exit, after every client is freed.
 * - vast_client_new(base_url, api_key): base_url NULL means https://console.vast.ai (a
 *   trailing slash is dropped; only http:// and https:// are accepted, else NULL). The key
 *   travels only in an `Authorization: Bearer` header: never in a URL, an error message or a
 *   log line (it is also registered with log_add_secret). An empty/NULL key sends no header
 *   (unauthenticated search works on Vast).
 * - Configure (vast_client_set_*) before sharing the client. After that one client may be
 *   used from several threads at once: every call uses its own CURL easy handle and the
 *   client itself is read-only.
 * - Every call has a connect timeout and a total timeout per attempt, and retries with
 *   exponential backoff and jitter on 429, 502, 503, 504 and connection errors/timeouts,
 *   up to max_attempts attempts in all. Exception, to never rent twice: creating an instance
 *   is retried only when the request certainly did not act (429, connection refused, DNS
 *   failure), never after a timeout, a dropped connection, 502, 503 or 504.
 * - Every call returns 0 on success or -1 with *err filled (err may be NULL). Outputs are
 *   only valid on success, and then belong to the caller (free with the matching *_free or
 *   *_clear). Error messages carry Vast's `msg` (or `error`/`detail`) when it sent one.
 * - The module does not log except LOG_D lines (method, path, status, time).
 */
#ifndef GS_VAST_H
#define GS_VAST_H

#include "core/err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define VAST_DEFAULT_URL "https://console.vast.ai"

typedef enum vast_err_kind {
    VAST_OK = 0,
    VAST_ERR_AUTH,         /* bad/revoked/scoped key: `error: auth_error` at any status, 401 */
    VAST_ERR_NOT_FOUND,    /* no such instance/key; show answering {"instances": null} */
    VAST_ERR_OFFER_TAKEN,  /* create: `no_such_ask` (404/410): search again */
    VAST_ERR_RATE_LIMIT,   /* 429 still after every retry */
    VAST_ERR_NETWORK,      /* no HTTP answer: refused, DNS, TLS, reset (after retries) */
    VAST_ERR_TIMEOUT,      /* connect or total timeout (after retries) */
    VAST_ERR_SERVER,       /* 5xx (after retries for 502/503/504) */
    VAST_ERR_BAD_REQUEST,  /* other 4xx: invalid args, deprecated endpoint, ... */
    VAST_ERR_FORBIDDEN,    /* 403 without auth_error (e.g. "offer is not your own") */
    VAST_ERR_NO_CREDIT,    /* 411 / "Insufficient credit" */
    VAST_ERR_FAILED,       /* HTTP 2xx with `success: false` */
    VAST_ERR_PARSE,        /* the answer is not the JSON the spec describes */
    VAST_ERR_INVALID,      /* a bad argument, refused before sending anything */
} vast_err_kind;

typedef struct vast_error {
    vast_err_kind kind;
    int http_status;       /* 0 when no HTTP answer came back */
    char code[64];         /* Vast's `error` field (e.g. "no_such_ask"), "" when none */
    char message[512];     /* human text for the user; never contains the API key */
} vast_error;

/* "auth", "not_found", "offer_taken", ... (static string). */
/* The project-wide kind (core/err.h) of a Vast error: what the API answers, whether a retry
 * can help. */
gs_err vast_err_gs(vast_err_kind kind);
const char *vast_err_kind_name(vast_err_kind kind);

int vast_global_init(void);
void vast_global_cleanup(void);

typedef struct vast_client vast_client;

vast_client *vast_client_new(const char *base_url, const char *api_key);
void vast_client_free(vast_client *c);
/* Per-attempt timeouts in milliseconds (defaults 10000 connect, 60000 total); <=0 keeps. */
void vast_client_set_timeouts(vast_client *c, long connect_ms, long total_ms);
/* Attempts in all (default 4, min 1); first backoff base_ms (default 150) doubling up to
 * max_ms (default 5000), each sleep jittered to [d/2, d]. */
void vast_client_set_retry(vast_client *c, int max_attempts, long base_ms, long max_ms);
/* Any thread, for shutdown: every client's calls in progress end within about a second and
 * later ones fail at once (VAST_ERR_NETWORK, "cancelled"), so that no thread waits out a
 * hung API. There is no undo: the process is stopping. */
void vast_cancel_all(void);
/* The base URL in use (no trailing slash). */
const char *vast_client_base_url(const vast_client *c);

/* ---- offers: POST /api/v0/bundles/ (spec 3.1) */

typedef struct vast_search {
    double gpu_ram_min_gb;     /* per GPU; sent as gpu_ram gte GB*1000 (MB); 0 = any */
    double max_dph;            /* dph_total lte ($/h, priced for allocated_storage); 0 = any */
    double min_reliability;    /* reliability2 gte (0..1); 0 = any */
    double min_cuda;           /* cuda_max_good gte; 0 = any */
    int min_compute_cap;       /* compute_cap gte (CC x 100, e.g. 750); 0 = any */
    double min_disk_gb;        /* disk_space gte; 0 = any */
    double min_inet_down;      /* inet_down gte (Mb/s); 0 = any */
    int num_gpus;              /* num_gpus eq; 0 = any */
    const char *gpu_name;      /* gpu_name eq ("RTX_4090" == "RTX 4090"); NULL = any */
    bool include_unverified;   /* false: verified eq true (the CLI default) */
    const char *type;          /* "on-demand" (NULL), "bid", "reserved" */
    const char *order;         /* sort field; NULL: dph_total ascending (cheapest first) */
    bool order_desc;           /* with order */
    int limit;                 /* 0: not sent (server default) */
    double allocated_storage;  /* GB used to price offers; 0: 5.0 (the CLI default) */
    long long offer_id;        /* id eq (one offer, e.g. to price it before renting); 0 = any */
} vast_search;
/* A zero vast_search is the CLI's default search (verified, rentable, not rented, not
 * external, on-demand), ordered cheapest first. */

typedef struct vast_offer {
    long long id;              /* the ask id to rent with vast_create_instance */
    long long machine_id, host_id;
    char gpu_name[64];
    int num_gpus;
    double gpu_ram_gb;         /* per GPU (API: MB / 1000) */
    double gpu_total_ram_gb;
    double dph_total, dph_base; /* $/h for the whole offer */
    double storage_cost;       /* $/GB/month */
    double storage_total_cost; /* $/h for allocated_storage */
    double min_bid;
    double reliability2;
    double disk_space_gb;
    double inet_down, inet_up; /* Mb/s */
    double cuda_max_good;
    int compute_cap;           /* CC x 100 (890 for 8.9); 0 when absent (AMD) */
    double cpu_ram_gb;
    double cpu_cores_effective;
    int direct_port_count;
    double dlperf, score;
    bool verified;             /* verification == "verified" */
    bool rented;
    char geolocation[96];
    char verification[24];
} vast_offer;

typedef struct vast_offer_list {
    vast_offer *items;
    size_t n;
} vast_offer_list;

/* Offers matching s (NULL = defaults), cheapest (dph_total) first unless s->order is set;
 * offers marked rented are dropped, as the CLI does. */
int vast_search_offers(vast_client *c, const vast_search *s, vast_offer_list *out,
                       vast_error *err);
void vast_offer_list_free(vast_offer_list *l);

/* ---- create: PUT /api/v0/asks/{id}/ (spec 3.2) */

typedef struct vast_env_kv {
    const char *key;           /* "HF_TOKEN", or docker-style "-p 8000:8000" (value "1") */
    const char *value;
} vast_env_kv;

typedef struct vast_create {
    const char *image;         /* required */
    double disk_gb;            /* 0: 10 (the CLI default) */
    const char *label;         /* NULL: none */
    const char *onstart;       /* NULL: null */
    bool direct;               /* runtype "ssh_direc ssh_proxy" instead of "ssh_proxy" */
    const char *runtype;       /* overrides the above when set */
    const vast_env_kv *env;    /* sent as a JSON object (never a string) */
    size_t n_env;
    double price;              /* > 0: interruptible bid $/h; 0: on-demand (not sent) */
    const char *image_login;   /* NULL: not sent */
    bool allow_stopped;        /* false: cancel_unavail true (fail rather than a stopped
                                  instance that bills storage) */
} vast_create;

typedef struct vast_created {
    long long instance_id;     /* new_contract */
    char *instance_api_key;    /* per-instance key when Vast returns one, else NULL */
} vast_created;

/* Rent offer_id. If the create fails but the answer names a new_contract (e.g. a losing
 * bid that still created a stopped instance), that instance is destroyed before returning
 * the error (the message says whether the destroy worked). */
int vast_create_instance(vast_client *c, long long offer_id, const vast_create *req,
                         vast_created *out, vast_error *err);
void vast_created_clear(vast_created *cr);

/* ---- instances (spec 3.4-3.9) */

typedef struct vast_instance {
    long long id;
    /* Strings are never NULL: "" when absent or null. */
    char *actual_status;       /* "" (provisioning), created, loading, running, stopped, ... */
    char *intended_status;
    char *cur_state;
    char *next_state;
    char *status_msg;
    char *label;
    char *ssh_host;
    int ssh_port;              /* 0 when not yet known */
    char *public_ipaddr;       /* whitespace trimmed */
    int direct_ssh_port;       /* ports["22/tcp"][0].HostPort; 0 when none */
    char *image_uuid;
    char *image_runtype;
    char *gpu_name;
    int num_gpus;
    double gpu_ram_gb;
    double dph_total, dph_base, storage_cost, storage_total_cost;
    double disk_space_gb;
    double inet_down, inet_up;
    double reliability2;
    double start_date, end_date; /* epoch s; 0 when unknown */
    double duration;           /* s, as sent (0 when absent) */
    long long machine_id;
    char *geolocation;
    json_t *raw;               /* the whole object as Vast sent it (owned reference) */
} vast_instance;

typedef struct vast_instance_list {
    vast_instance *items;
    size_t n;
} vast_instance_list;

/* GET /api/v1/instances/ following next_token until the last page. */
int vast_list_instances(vast_client *c, vast_instance_list *out, vast_error *err);
void vast_instance_list_free(vast_instance_list *l);

/* GET /api/v0/instances/{id}/?owner=me; {"instances": null} -> VAST_ERR_NOT_FOUND. */
int vast_show_instance(vast_client *c, long long id, vast_instance *out, vast_error *err);
void vast_instance_clear(vast_instance *in);

/* DELETE /api/v0/instances/{id}/ (body {}); an unknown id -> VAST_ERR_NOT_FOUND, which
 * callers that only want it gone may treat as success. */
int vast_destroy_instance(vast_client *c, long long id, vast_error *err);
/* PUT /api/v0/instances/{id}/ {"state": "running"|"stopped"}. */
int vast_start_instance(vast_client *c, long long id, vast_error *err);
int vast_stop_instance(vast_client *c, long long id, vast_error *err);
/* PUT /api/v0/instances/{id}/ {"label": label} (NULL sends null, clearing it). */
int vast_label_instance(vast_client *c, long long id, const char *label, vast_error *err);

/* ---- SSH keys (spec 3.11) */

typedef struct vast_ssh_key {
    long long id;
    char *public_key;
} vast_ssh_key;

typedef struct vast_ssh_key_list {
    vast_ssh_key *items;
    size_t n;
} vast_ssh_key_list;

/* GET /api/v0/ssh/ (an array; `public_key`, or `key` as OpenAPI names it). */
int vast_list_ssh_keys(vast_client *c, vast_ssh_key_list *out, vast_error *err);
void vast_ssh_key_list_free(vast_ssh_key_list *l);
/* Register pubkey on the account and return its id. The spec lists no "already exists"
 * answer, so: if the account already holds the key (same type and base64 blob, comment
 * ignored) its id is returned without a POST; if the POST is refused with a message saying
 * the key exists, the list is read again and the matching id returned. Private keys and
 * text not starting with "ssh-"/"ecdsa-"/"sk-" are refused (VAST_ERR_INVALID) unsent. */
int vast_add_ssh_key(vast_client *c, const char *pubkey, long long *key_id, vast_error *err);
/* POST /api/v0/instances/{id}/ssh/ {"ssh_key": pubkey}; "already" answers count as done. */
int vast_attach_ssh_key(vast_client *c, long long instance_id, const char *pubkey,
                        vast_error *err);

/* ---- account (spec 3.15): GET /api/v0/users/current/ */

typedef struct vast_user {
    long long id;
    char *email;               /* never NULL */
    char *username;            /* never NULL */
    double balance;
    double credit;
} vast_user;

int vast_current_user(vast_client *c, vast_user *out, vast_error *err);
void vast_user_clear(vast_user *u);

#endif
