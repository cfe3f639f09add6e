/* tunnel: a supervised local port forward over SSH (like `ssh -N -L`, in-process).
 *
 * tunnel_start connects (sshc_connect: pinned host key, our key), listens on 127.0.0.1:0 and
 * forwards each accepted connection over its own direct-tcpip channel to
 * 127.0.0.1:remote_port on the far side. Many connections at once; bounded buffers both ways
 * (backpressure through the SSH channel window); half-close is passed through (shutdown of
 * one direction keeps the other open).
 *
 * Threads: one I/O thread owns the libssh session (poll loop, keepalives, reconnects); one
 * supervisor thread GETs health_path through the tunnel every check_interval_s (default 5),
 * measures the round trip (rtt_ms), and calls the on_change callback on every state change.
 *
 * States: CONNECTING (first connect), UP (session up, health check passing or none set),
 * DEGRADED (session up but the health check fails: remote port refused, non-2xx, slow),
 * RECONNECTING (session lost: keepalives unanswered or the connection broke; retries with
 * backoff 0.2 s doubling to 1 s, so it is back within ~1-2 s once sshd answers), DOWN (stopped).
 * A session loss closes every forwarded connection (clients see the connection close); while
 * reconnecting new connections are accepted and closed at once; after reconnecting they are
 * forwarded again on the same local port. A changed host key while reconnecting is not
 * retried quietly: the state stays RECONNECTING with the hostkey error in last_error.
 *
 * tunnel_start returns once the first health check is done (state UP or DEGRADED), or NULL
 * when the first connection fails (err says why). tunnel_get_status and tunnel_local_port are
 * safe from any thread. tunnel_stop closes everything and frees the tunnel; do not call it
 * from inside the on_change callback.
 */
#ifndef GS_TUNNEL_H
#define GS_TUNNEL_H

#include "ssh/ssh.h"

typedef struct tunnel tunnel;

enum tunnel_state { TUNNEL_DOWN, TUNNEL_CONNECTING, TUNNEL_UP, TUNNEL_DEGRADED, TUNNEL_RECONNECTING };

typedef struct tunnel_status {
    enum tunnel_state state;
    const char *state_name;   /* "down", "connecting", "up", "degraded", "reconnecting" (static) */
    char last_error[256];     /* most recent problem ("" when none since start) */
    gs_err last_kind;         /* its kind (core/err.h): GS_E_HOSTKEY is final, not a hiccup */
    double rtt_ms;            /* last successful health check round trip; 0 before the first */
    int reconnects;           /* successful reconnections since start */
    double since;             /* now_wall() when the current state began */
    int local_port;
} tunnel_status;

/* check_interval_s <= 0: 5. health_path NULL: no health checks (UP follows the session). */
tunnel *tunnel_start(const sshc_target *t, int remote_port, const char *health_path,
                     double check_interval_s, char *err, size_t errlen);
int tunnel_local_port(const tunnel *tn);
void tunnel_get_status(tunnel *tn, tunnel_status *out);
/* Called from the supervisor thread on each state change (with a snapshot); replaces any
 * previous callback. cb NULL removes it. */
void tunnel_on_change(tunnel *tn, void (*cb)(void *ud, const tunnel_status *st), void *ud);
void tunnel_stop(tunnel *tn);
const char *tunnel_state_name(enum tunnel_state s);

#endif
