/* err: the project's one error vocabulary (as curl has CURLcode). Every module that talks to
 * a peer (vast, ssh, tunnel, the worker client, the OpenAI backend) says what went wrong as
 * a gs_err, besides its own message text; the jobs dispatcher decides about retries with
 * gs_err_retryable; api/ answers gs_err_http_status. Modules keep their finer kinds (e.g.
 * vast_err_kind, enum sshc_err) and map them here with one function each
 * (vast_err_gs, sshc_err_gs).
 *
 * A kind names the cause from the controller's point of view: GS_E_UNAUTHORIZED is "a peer
 * refused our credentials" (a 502 to our client, who is not at fault), GS_E_INVALID is "the
 * request is wrong" (400, and resending it cannot help). Pure functions; thread-safe. */
#ifndef GS_ERR_H
#define GS_ERR_H

#include <stdbool.h>

typedef enum gs_err {
    GS_OK = 0,
    GS_E_INVALID,      /* the request is wrong: bad parameters, a model the worker lacks */
    GS_E_NOT_FOUND,    /* no such instance, job, offer */
    GS_E_CONFLICT,     /* the thing changed under us: an offer already rented */
    GS_E_TOO_LARGE,    /* over a peer's or our cap (audio length, body size) */
    GS_E_UNSUPPORTED,  /* audio a peer cannot decode */
    GS_E_FORBIDDEN,    /* a peer refuses the operation for this account */
    GS_E_NO_CREDIT,    /* the Vast.ai account has no credit */
    GS_E_UNAUTHORIZED, /* a peer refused our credentials (API key, SSH key) */
    GS_E_HOSTKEY,      /* an SSH host presented a key other than the pinned one */
    GS_E_FAILED,       /* a peer ran the work and it failed (a worker job's own error) */
    GS_E_RATE_LIMIT,   /* a peer asks us to slow down */
    GS_E_BUSY,         /* a peer (or we) have no free capacity now */
    GS_E_NETWORK,      /* cannot reach the peer, or the connection broke */
    GS_E_TIMEOUT,      /* the peer did not answer in time */
    GS_E_PEER,         /* the peer failed: a 5xx, a crash, a lost job */
    GS_E_PROTOCOL,     /* the peer's answer makes no sense (not JSON, fields missing) */
    GS_E_CANCELLED,    /* we stopped it: shutdown or a user's cancel */
    GS_E_INTERNAL,     /* our own fault: out of memory, a local file, a bug */
} gs_err;

/* "ok", "invalid", "not_found", ... (stable: used in JSON "kind" fields). */
const char *gs_err_name(gs_err e);
/* The HTTP status our API answers for it (200 for GS_OK). */
int gs_err_http_status(gs_err e);
/* Whether trying the same thing again later (or elsewhere) can succeed. */
bool gs_err_retryable(gs_err e);
/* A peer's HTTP error status as a kind (>= 400; anything else is GS_E_PROTOCOL). */
gs_err gs_err_from_http_status(long status);

#endif
