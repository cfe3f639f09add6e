/* tunnel: supervised local port forward over libssh (see tunnel.h).
 *
 * The I/O thread owns the session: one poll() over the wake pipe, the listener, the SSH socket
 * and every forwarded socket; ssh_event_dopoll(0) then lets libssh read and dispatch (channel
 * callbacks copy data into bounded per-connection buffers; what does not fit stays in libssh's
 * channel buffer, which stops the window from growing, and is pulled later with
 * ssh_channel_read_nonblocking). Writes to a channel are capped to its window. Channel
 * callbacks are removed before a channel is freed. The supervisor thread runs health checks
 * through the local port and delivers state-change callbacks. */
#define _GNU_SOURCE
#include "ssh/tunnel.h"
#include "ssh/ssh_int.h"

#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define C2S_CAP (64 * 1024)
#define S2C_CAP (1024 * 1024)
#define MAX_FWD 512

struct fwd {
    tunnel *tn;
    int fd;              /* -1 once closed */
    ssh_channel ch;
    int opening, open;
    int cb_set;
    char *c2s;
    size_t c2s_len;
    char *s2c;
    size_t s2c_off, s2c_len;
    int pending;         /* libssh holds channel data we have not taken yet */
    int pulling;         /* inside ssh_channel_read_nonblocking: callbacks take nothing */
    int cl_eof, eof_sent, ch_eof, shut_wr, ch_closed;
    int done;
    short revents;
    struct ssh_channel_callbacks_struct cb;
    struct fwd *next;
};

struct tunnel {
    /* immutable after start */
    sshc_target t;
    char *host, *user, *key_path, *known_hosts, *alias;
    int remote_port;
    char *health_path;
    double interval;
    int lfd, local_port;
    int wake[2];
    pthread_t io_th, sup_th;
    int sup_started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* shared, under mu */
    enum tunnel_state state;
    char last_error[256];
    gs_err last_kind;
    double rtt_ms, since;
    int reconnects;
    int stop, connected, probe_req, check_now, first_check_done;
    unsigned gen;
    void (*cb)(void *ud, const tunnel_status *st);
    void *cb_ud;

    /* I/O thread only */
    sshc *c;
    ssh_event ev;
    struct ssh_counter_struct rx, tx;
    struct fwd *fwds;
    int nfwd;
};

const char *tunnel_state_name(enum tunnel_state s)
{
    switch (s) {
    case TUNNEL_DOWN: return "down";
    case TUNNEL_CONNECTING: return "connecting";
    case TUNNEL_UP: return "up";
    case TUNNEL_DEGRADED: return "degraded";
    case TUNNEL_RECONNECTING: return "reconnecting";
    }
    return "unknown";
}

static void wake_io(tunnel *tn)
{
    char c = 1;
    ssize_t n = write(tn->wake[1], &c, 1);
    (void)n;
}

/* caller holds mu */
static void set_state_locked(tunnel *tn, enum tunnel_state st, const char *error)
{
    if (error) {
        snprintf(tn->last_error, sizeof tn->last_error, "%s", error);
        tn->last_kind = GS_E_PEER; /* the far side's port or health check */
    }
    if (st != tn->state) {
        LOG_I("tunnel", "127.0.0.1:%d -> %s:%d: %s -> %s%s%s", tn->local_port, tn->host,
              tn->remote_port, tunnel_state_name(tn->state), tunnel_state_name(st),
              error ? ": " : "", error ? error : "");
        tn->state = st;
        tn->since = now_wall();
        tn->gen++;
        pthread_cond_broadcast(&tn->cv);
    }
}

static int stopping(tunnel *tn)
{
    pthread_mutex_lock(&tn->mu);
    int s = tn->stop;
    pthread_mutex_unlock(&tn->mu);
    return s;
}

/* ------------------------------------------------------------------ forwarded connections */

static int fwd_data_cb(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
                       void *ud)
{
    (void)s; (void)ch;
    struct fwd *f = ud;
    if (is_stderr) return (int)len; /* direct-tcpip has no stderr; drop */
    if (f->pulling || f->fd < 0) {
        if (f->fd < 0) return (int)len; /* client gone: discard */
        f->pending = 1;
        return 0;
    }
    if (f->s2c_off && f->s2c_off + f->s2c_len + len > S2C_CAP) {
        memmove(f->s2c, f->s2c + f->s2c_off, f->s2c_len);
        f->s2c_off = 0;
    }
    size_t room = S2C_CAP - f->s2c_off - f->s2c_len;
    size_t n = len < room ? len : room;
    memcpy(f->s2c + f->s2c_off + f->s2c_len, data, n);
    f->s2c_len += n;
    if (n < len) f->pending = 1;
    return (int)n;
}

static void fwd_eof_cb(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s; (void)ch;
    ((struct fwd *)ud)->ch_eof = 1;
}

static void fwd_close_cb(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s; (void)ch;
    struct fwd *f = ud;
    f->ch_eof = 1;
    f->ch_closed = 1;
}

static void fwd_close_fd(struct fwd *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

/* Release the channel (callbacks first) and mark the connection finished. A channel still
 * opening is kept until the open completes. */
static void fwd_finish(struct fwd *f)
{
    fwd_close_fd(f);
    if (f->opening) return;
    if (f->ch) {
        if (f->cb_set) gs_ssh.ssh_remove_channel_callbacks(f->ch, &f->cb);
        f->cb_set = 0;
        if (gs_ssh.ssh_channel_is_open(f->ch)) gs_ssh.ssh_channel_close(f->ch);
        gs_ssh.ssh_channel_free(f->ch);
        f->ch = NULL;
    }
    f->done = 1;
}

static void fwd_free(struct fwd *f)
{
    free(f->c2s);
    free(f->s2c);
    free(f);
}

static void fwd_accept(tunnel *tn)
{
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(tn->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (!tn->c || tn->nfwd >= MAX_FWD) {
            if (tn->c) LOG_W("tunnel", "too many forwarded connections (%d); refusing one", MAX_FWD);
            close(fd);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct fwd *f = xcalloc(1, sizeof *f);
        f->tn = tn;
        f->fd = fd;
        f->c2s = xmalloc(C2S_CAP);
        f->s2c = xmalloc(S2C_CAP);
        f->ch = gs_ssh.ssh_channel_new(tn->c->s);
        if (!f->ch) {
            close(fd);
            fwd_free(f);
            continue;
        }
        f->cb.userdata = f;
        f->cb.channel_data_function = fwd_data_cb;
        f->cb.channel_eof_function = fwd_eof_cb;
        f->cb.channel_close_function = fwd_close_cb;
        ssh_callbacks_init(&f->cb);
        gs_ssh.ssh_set_channel_callbacks(f->ch, &f->cb);
        f->cb_set = 1;
        f->opening = 1;
        f->next = tn->fwds;
        tn->fwds = f;
        tn->nfwd++;
        int rc = gs_ssh.ssh_channel_open_forward(f->ch, "127.0.0.1", tn->remote_port, "127.0.0.1",
                                          ntohs(sa.sin_port));
        if (rc == SSH_OK) {
            f->opening = 0;
            f->open = 1;
        } else if (rc == SSH_ERROR) {
            f->opening = 0;
            fwd_finish(f);
        }
    }
}

static void fwd_pump(tunnel *tn, struct fwd *f)
{
    if (f->done) return;
    if (f->opening) {
        int rc = gs_ssh.ssh_channel_open_forward(f->ch, "127.0.0.1", tn->remote_port, "127.0.0.1", 0);
        if (rc == SSH_AGAIN) return;
        f->opening = 0;
        if (rc != SSH_OK) {
            LOG_D("tunnel", "channel to remote port %d refused: %s", tn->remote_port,
                  gs_ssh.ssh_get_error(tn->c->s));
            fwd_finish(f);
            return;
        }
        f->open = 1;
        if (f->fd < 0) { /* the client left while the channel was opening */
            fwd_finish(f);
            return;
        }
    }
    if (f->fd < 0) {
        fwd_finish(f);
        return;
    }
    /* client -> channel */
    if ((f->revents & (POLLIN | POLLHUP | POLLERR)) && !f->cl_eof && f->c2s_len < C2S_CAP) {
        ssize_t n = read(f->fd, f->c2s + f->c2s_len, C2S_CAP - f->c2s_len);
        if (n > 0) f->c2s_len += (size_t)n;
        else if (n == 0) f->cl_eof = 1;
        else if (errno != EAGAIN && errno != EINTR) {
            fwd_finish(f);
            return;
        }
    }
    if (f->c2s_len && !f->ch_closed) {
        uint32_t win = gs_ssh.ssh_channel_window_size(f->ch);
        size_t n = f->c2s_len < win ? f->c2s_len : win;
        if (n) {
            int w = gs_ssh.ssh_channel_write(f->ch, f->c2s, (uint32_t)n);
            if (w < 0) {
                fwd_finish(f);
                return;
            }
            if (w > 0) {
                memmove(f->c2s, f->c2s + w, f->c2s_len - (size_t)w);
                f->c2s_len -= (size_t)w;
            }
        }
    }
    if (f->cl_eof && !f->c2s_len && !f->eof_sent && !f->ch_closed) {
        gs_ssh.ssh_channel_send_eof(f->ch);
        f->eof_sent = 1;
    }
    /* channel -> client */
    for (int round = 0; round < 4; round++) {
        if (f->s2c_len) {
            ssize_t w = write(f->fd, f->s2c + f->s2c_off, f->s2c_len);
            if (w > 0) {
                f->s2c_off += (size_t)w;
                f->s2c_len -= (size_t)w;
                if (!f->s2c_len) f->s2c_off = 0;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                fwd_finish(f);
                return;
            }
        }
        if (!f->pending || f->s2c_len) break;
        /* buffer drained: take what libssh kept back (this also re-opens the window) */
        f->pulling = 1;
        f->pending = 0;
        int n = gs_ssh.ssh_channel_read_nonblocking(f->ch, f->s2c, S2C_CAP, 0);
        f->pulling = 0;
        if (n > 0) {
            f->s2c_off = 0;
            f->s2c_len = (size_t)n;
            if ((size_t)n == S2C_CAP) f->pending = 1;
        } else if (n < 0) {
            f->pending = 0;
        }
    }
    if (f->ch_eof && !f->pending && !f->s2c_len && !f->shut_wr) {
        shutdown(f->fd, SHUT_WR);
        f->shut_wr = 1;
    }
    if ((f->eof_sent && f->shut_wr) || (f->ch_closed && !f->pending && !f->s2c_len))
        fwd_finish(f);
}

static void fwd_reap(tunnel *tn)
{
    struct fwd **pp = &tn->fwds;
    while (*pp) {
        struct fwd *f = *pp;
        if (f->done) {
            *pp = f->next;
            tn->nfwd--;
            fwd_free(f);
        } else {
            pp = &f->next;
        }
    }
}

/* ------------------------------------------------------------------ session life */

static void session_drop(tunnel *tn)
{
    for (struct fwd *f = tn->fwds; f; f = f->next) {
        fwd_close_fd(f);
        if (f->ch) {
            if (f->cb_set) gs_ssh.ssh_remove_channel_callbacks(f->ch, &f->cb);
            f->cb_set = 0;
            gs_ssh.ssh_channel_free(f->ch);
            f->ch = NULL;
        }
        f->opening = 0;
        f->done = 1;
    }
    fwd_reap(tn);
    if (tn->ev) {
        if (tn->c) gs_ssh.ssh_event_remove_session(tn->ev, tn->c->s);
        gs_ssh.ssh_event_free(tn->ev);
        tn->ev = NULL;
    }
    if (tn->c) {
        gs_ssh.ssh_set_counters(tn->c->s, NULL, NULL);
        sshc_close(tn->c);
        tn->c = NULL;
    }
}

static int session_adopt(tunnel *tn, sshc *c)
{
    tn->c = c;
    gs_ssh.ssh_set_blocking(c->s, 0);
    memset(&tn->rx, 0, sizeof tn->rx);
    memset(&tn->tx, 0, sizeof tn->tx);
    gs_ssh.ssh_set_counters(c->s, &tn->tx, &tn->rx);
    tn->ev = gs_ssh.ssh_event_new();
    if (!tn->ev || gs_ssh.ssh_event_add_session(tn->ev, c->s) != SSH_OK) return -1;
    return 0;
}

static void quickack(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* keepalive@openssh.com with want_reply; in non-blocking mode libssh keeps one request in
 * flight and a call that only collects a previous reply sends nothing, so call until a
 * packet has gone out (at most twice). */
static void send_keepalive(tunnel *tn)
{
    uint64_t before = tn->tx.out_packets;
    gs_ssh.ssh_send_keepalive(tn->c->s);
    if (tn->tx.out_packets == before) gs_ssh.ssh_send_keepalive(tn->c->s);
}

/* Wait up to secs, accepting-and-closing local connections; 1 when asked to stop. */
static int idle_wait(tunnel *tn, double secs)
{
    double end = now_mono() + secs;
    for (;;) {
        if (stopping(tn)) return 1;
        double left = end - now_mono();
        if (left <= 0) return 0;
        struct pollfd p[2] = {{tn->wake[0], POLLIN, 0}, {tn->lfd, POLLIN, 0}};
        int ms = (int)(left * 1000) + 1;
        if (poll(p, 2, ms) > 0) {
            if (p[0].revents) {
                char b[64];
                while (read(tn->wake[0], b, sizeof b) > 0) {}
            }
            if (p[1].revents) fwd_accept(tn); /* no session: accepted and closed */
        }
    }
}

static void lost(tunnel *tn, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "ssh session lost: %s", why);
    LOG_W("tunnel", "%s:%d: %s; reconnecting", tn->host, tn->t.port, msg);
    session_drop(tn);
    pthread_mutex_lock(&tn->mu);
    tn->connected = 0;
    set_state_locked(tn, TUNNEL_RECONNECTING, msg);
    pthread_mutex_unlock(&tn->mu);
}

static void reconnect(tunnel *tn)
{
    double delay = 0.2;
    while (!stopping(tn)) {
        if (idle_wait(tn, delay)) return;
        char err[256] = "";
        enum sshc_err kind;
        sshc_target t = tn->t;
        if (t.connect_timeout_s <= 0 || t.connect_timeout_s > 5) t.connect_timeout_s = 5;
        sshc *c = sshc_connect(&t, &kind, err, sizeof err);
        if (c) {
            if (session_adopt(tn, c) != 0) {
                session_drop(tn);
                continue;
            }
            pthread_mutex_lock(&tn->mu);
            tn->connected = 1;
            tn->reconnects++;
            if (tn->health_path) {
                tn->check_now = 1;
                pthread_cond_broadcast(&tn->cv);
            } else {
                set_state_locked(tn, TUNNEL_UP, NULL);
            }
            pthread_mutex_unlock(&tn->mu);
            LOG_I("tunnel", "reconnected to %s:%d", tn->host, tn->t.port);
            return;
        }
        pthread_mutex_lock(&tn->mu);
        snprintf(tn->last_error, sizeof tn->last_error, "%s", err);
        tn->last_kind = sshc_err_gs(kind);
        pthread_mutex_unlock(&tn->mu);
        if (kind == SSHC_ERR_HOSTKEY) LOG_E("tunnel", "%s", err);
        delay = delay * 2 > 1.0 ? 1.0 : delay * 2;
    }
}

static void *io_main(void *arg)
{
    tunnel *tn = arg;
    double ka = tn->interval < 1 ? 1 : tn->interval > 10 ? 10 : tn->interval;
    double dead_after = ka * 2 < 4 ? 4 : ka * 2;
    struct pollfd *pfd = xcalloc(MAX_FWD + 3, sizeof *pfd);
    struct fwd **pf = xcalloc(MAX_FWD + 3, sizeof *pf);
    double last_rx = now_mono(), ka_sent = 0;
    uint64_t seen_rx = 0;
    while (!stopping(tn)) {
        if (!tn->c) {
            reconnect(tn);
            last_rx = now_mono();
            ka_sent = 0;
            seen_rx = 0;
            continue;
        }
        int sfd = gs_ssh.ssh_get_fd(tn->c->s);
        int n = 0;
        pfd[n++] = (struct pollfd){tn->wake[0], POLLIN, 0};
        pfd[n++] = (struct pollfd){tn->lfd, tn->nfwd < MAX_FWD ? POLLIN : 0, 0};
        short sev = POLLIN;
        if (gs_ssh.ssh_get_poll_flags(tn->c->s) & SSH_WRITE_PENDING) sev |= POLLOUT;
        pfd[n++] = (struct pollfd){sfd, sev, 0};
        int busy = 0;
        for (struct fwd *f = tn->fwds; f; f = f->next) {
            f->revents = 0;
            if (f->fd < 0 || f->done) { busy = 1; continue; }
            short ev = 0;
            if (f->open && !f->cl_eof && f->c2s_len < C2S_CAP) ev |= POLLIN;
            if (f->s2c_len) ev |= POLLOUT;
            if (f->c2s_len || (f->pending && !f->s2c_len)) busy = 1; /* waiting on window/pull */
            pf[n] = f;
            pfd[n++] = (struct pollfd){f->fd, ev, 0};
        }
        int timeout = busy ? 5 : (int)(ka * 1000 / 2);
        int pr = poll(pfd, (nfds_t)n, timeout);
        if (pr < 0 && errno != EINTR) {
            lost(tn, "poll failed");
            continue;
        }
        if (pfd[0].revents) {
            char b[64];
            while (read(tn->wake[0], b, sizeof b) > 0) {}
        }
        for (int i = 3; i < n; i++) pf[i]->revents = pfd[i].revents;
        /* let libssh read and dispatch; a few rounds while data keeps coming (4 KiB each) */
        uint64_t before = tn->rx.in_bytes;
        int err = 0;
        for (int r = 0; r < 128; r++) {
            uint64_t b0 = tn->rx.in_bytes;
            if (gs_ssh.ssh_event_dopoll(tn->ev, 0) == SSH_ERROR) { err = 1; break; }
            if (tn->rx.in_bytes == b0) break;
        }
        if (tn->rx.in_bytes != before) quickack(sfd);
        if (err || !gs_ssh.ssh_is_connected(tn->c->s)) {
            const char *e = gs_ssh.ssh_get_error(tn->c->s);
            lost(tn, e && *e ? e : "connection closed");
            continue;
        }
        for (struct fwd *f = tn->fwds; f; f = f->next) fwd_pump(tn, f);
        if (pfd[1].revents) fwd_accept(tn);
        fwd_reap(tn);
        /* keepalives and liveness */
        double now = now_mono();
        if (tn->rx.in_packets != seen_rx) {
            seen_rx = tn->rx.in_packets;
            last_rx = now;
            ka_sent = 0;
        }
        pthread_mutex_lock(&tn->mu);
        int probe = tn->probe_req;
        tn->probe_req = 0;
        pthread_mutex_unlock(&tn->mu);
        if (!ka_sent && (probe || now - last_rx >= ka)) {
            send_keepalive(tn);
            ka_sent = now;
        }
        if (ka_sent && now - ka_sent > dead_after) {
            char msg[96];
            snprintf(msg, sizeof msg, "no answer to keepalives for %.0f s", now - ka_sent);
            lost(tn, msg);
        }
    }
    session_drop(tn);
    free(pfd);
    free(pf);
    return NULL;
}

/* ------------------------------------------------------------------ supervisor */

/* GET health_path through our own local port. 0 = 2xx (rtt set), else -1 with msg. */
static int health_check(tunnel *tn, double timeout_s, double *rtt_ms, char *msg, size_t msglen)
{
    double t0 = now_mono(), end = t0 + timeout_s;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(msg, msglen, "health check: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tn->local_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[600];
    int reql = snprintf(req, sizeof req,
                        "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: gpuscribe-tunnel\r\n"
                        "Connection: close\r\n\r\n", tn->health_path, tn->remote_port);
    char resp[512];
    size_t got = 0;
    int rc = -1, sent = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        snprintf(msg, msglen, "health check: connect: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        double left = end - now_mono();
        if (left <= 0) {
            snprintf(msg, msglen, "health check: no answer from GET %s within %.1f s",
                     tn->health_path, timeout_s);
            goto out;
        }
        struct pollfd p = {fd, (short)(sent < reql ? POLLOUT : POLLIN), 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
        if (sent < reql) {
            ssize_t w = write(fd, req + sent, (size_t)(reql - sent));
            if (w < 0 && errno != EAGAIN) {
                snprintf(msg, msglen, "health check: %s", strerror(errno));
                goto out;
            }
            if (w > 0) sent += (int)w;
            continue;
        }
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) {
            snprintf(msg, msglen,
                     "health check: connection closed without an answer (is anything listening "
                     "on remote port %d?)", tn->remote_port);
            goto out;
        }
        got += (size_t)r;
        resp[got] = 0;
        char *eol = strstr(resp, "\r\n");
        if (!eol && got < sizeof resp - 1) continue;
        int code = 0;
        if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
            snprintf(msg, msglen, "health check: not an HTTP answer");
            goto out;
        }
        *rtt_ms = (now_mono() - t0) * 1000.0;
        if (code >= 200 && code < 300) rc = 0;
        else snprintf(msg, msglen, "health check: GET %s answered HTTP %d", tn->health_path, code);
        goto out;
    }
out:
    close(fd);
    return rc;
}

static void snapshot_locked(tunnel *tn, tunnel_status *o)
{
    memset(o, 0, sizeof *o);
    o->state = tn->state;
    o->state_name = tunnel_state_name(tn->state);
    snprintf(o->last_error, sizeof o->last_error, "%s", tn->last_error);
    o->last_kind = tn->last_kind;
    o->rtt_ms = tn->rtt_ms;
    o->reconnects = tn->reconnects;
    o->since = tn->since;
    o->local_port = tn->local_port;
}

static void *sup_main(void *arg)
{
    tunnel *tn = arg;
    unsigned notified = 0;
    double next_check = now_mono();
    double hc_timeout = tn->interval < 2 ? 2 : tn->interval > 5 ? 5 : tn->interval;
    pthread_mutex_lock(&tn->mu);
    notified = tn->gen;
    while (!tn->stop) {
        if (tn->gen != notified) {
            notified = tn->gen;
            tunnel_status st;
            snapshot_locked(tn, &st);
            void (*cb)(void *, const tunnel_status *) = tn->cb;
            void *ud = tn->cb_ud;
            pthread_mutex_unlock(&tn->mu);
            if (cb) cb(ud, &st);
            pthread_mutex_lock(&tn->mu);
            continue;
        }
        double now = now_mono();
        if (tn->health_path && tn->connected && (tn->check_now || now >= next_check)) {
            tn->check_now = 0;
            pthread_mutex_unlock(&tn->mu);
            double rtt = 0;
            char msg[256] = "";
            int ok = health_check(tn, hc_timeout, &rtt, msg, sizeof msg) == 0;
            pthread_mutex_lock(&tn->mu);
            next_check = now_mono() + tn->interval;
            tn->first_check_done = 1;
            pthread_cond_broadcast(&tn->cv);
            if (!tn->connected) continue; /* the session went away meanwhile */
            if (ok) {
                tn->rtt_ms = rtt;
                set_state_locked(tn, TUNNEL_UP, NULL);
            } else {
                if (tn->state != TUNNEL_DEGRADED) LOG_W("tunnel", "%s", msg);
                set_state_locked(tn, TUNNEL_DEGRADED, msg);
                tn->probe_req = 1; /* is the session itself still alive? */
                wake_io(tn);
            }
            continue;
        }
        double wait = tn->health_path && tn->connected ? next_check - now : 1.0;
        if (wait < 0.001) wait = 0.001;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(wait * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&tn->cv, &tn->mu, &ts);
    }
    pthread_mutex_unlock(&tn->mu);
    return NULL;
}

/* ------------------------------------------------------------------ public */

static void tunnel_free(tunnel *tn)
{
    if (tn->lfd >= 0) close(tn->lfd);
    if (tn->wake[0] >= 0) close(tn->wake[0]);
    if (tn->wake[1] >= 0) close(tn->wake[1]);
    pthread_mutex_destroy(&tn->mu);
    pthread_cond_destroy(&tn->cv);
    free(tn->host);
    free(tn->user);
    free(tn->key_path);
    free(tn->known_hosts);
    free(tn->alias);
    free(tn->health_path);
    free(tn);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

tunnel *tunnel_start(const sshc_target *t, int remote_port, const char *health_path,
                     double check_interval_s, char *err, size_t errlen)
{
    if (!t || !t->host || remote_port <= 0 || remote_port > 65535) {
        snprintf(err, errlen, "tunnel needs a target host and a remote port");
        return NULL;
    }
    tunnel *tn = xcalloc(1, sizeof *tn);
    tn->lfd = tn->wake[0] = tn->wake[1] = -1;
    pthread_mutex_init(&tn->mu, NULL);
    pthread_cond_init(&tn->cv, NULL);
    tn->host = xstrdup(t->host);
    tn->user = dup_or_null(t->user);
    tn->key_path = dup_or_null(t->key_path);
    tn->known_hosts = dup_or_null(t->known_hosts);
    tn->alias = dup_or_null(t->host_alias);
    tn->t = *t;
    tn->t.host = tn->host;
    tn->t.user = tn->user;
    tn->t.key_path = tn->key_path;
    tn->t.known_hosts = tn->known_hosts;
    tn->t.host_alias = tn->alias;
    if (tn->t.port <= 0) tn->t.port = 22;
    tn->remote_port = remote_port;
    if (health_path && *health_path)
        tn->health_path = health_path[0] == '/' ? xstrdup(health_path) : xasprintf("/%s", health_path);
    tn->interval = check_interval_s > 0 ? check_interval_s : 5;
    tn->state = TUNNEL_CONNECTING;
    tn->since = now_wall();

    if (pipe2(tn->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    tn->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (tn->lfd < 0 || bind(tn->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(tn->lfd, 128) != 0 || getsockname(tn->lfd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1: %s", strerror(errno));
        goto fail;
    }
    tn->local_port = ntohs(sa.sin_port);

    enum sshc_err kind;
    sshc *c = sshc_connect(&tn->t, &kind, err, errlen);
    if (!c) goto fail;
    if (session_adopt(tn, c) != 0) {
        snprintf(err, errlen, "cannot poll the ssh session");
        session_drop(tn);
        goto fail;
    }
    tn->connected = 1;
    if (tn->health_path) tn->check_now = 1;
    else tn->state = TUNNEL_UP;
    if (pthread_create(&tn->io_th, NULL, io_main, tn) != 0) {
        snprintf(err, errlen, "cannot start the tunnel thread");
        session_drop(tn);
        goto fail;
    }
    if (pthread_create(&tn->sup_th, NULL, sup_main, tn) != 0) {
        snprintf(err, errlen, "cannot start the tunnel supervisor");
        pthread_mutex_lock(&tn->mu);
        tn->stop = 1;
        pthread_mutex_unlock(&tn->mu);
        wake_io(tn);
        pthread_join(tn->io_th, NULL);
        goto fail;
    }
    tn->sup_started = 1;
    if (tn->health_path) {
        pthread_mutex_lock(&tn->mu);
        while (!tn->first_check_done && tn->state != TUNNEL_RECONNECTING)
            pthread_cond_wait(&tn->cv, &tn->mu);
        pthread_mutex_unlock(&tn->mu);
    }
    LOG_I("tunnel", "127.0.0.1:%d -> %s:%d -> 127.0.0.1:%d", tn->local_port, tn->host,
          tn->t.port, remote_port);
    return tn;
fail:
    tunnel_free(tn);
    return NULL;
}

int tunnel_local_port(const tunnel *tn) { return tn ? tn->local_port : 0; }

void tunnel_get_status(tunnel *tn, tunnel_status *out)
{
    pthread_mutex_lock(&tn->mu);
    snapshot_locked(tn, out);
    pthread_mutex_unlock(&tn->mu);
}

void tunnel_on_change(tunnel *tn, void (*cb)(void *ud, const tunnel_status *st), void *ud)
{
    pthread_mutex_lock(&tn->mu);
    tn->cb = cb;
    tn->cb_ud = ud;
    pthread_mutex_unlock(&tn->mu);
}

void tunnel_stop(tunnel *tn)
{
    if (!tn) return;
    pthread_mutex_lock(&tn->mu);
    tn->stop = 1;
    pthread_cond_broadcast(&tn->cv);
    pthread_mutex_unlock(&tn->mu);
    wake_io(tn);
    pthread_join(tn->io_th, NULL);
    if (tn->sup_started) pthread_join(tn->sup_th, NULL);
    LOG_D("tunnel", "stopped 127.0.0.1:%d", tn->local_port);
    tunnel_free(tn);
}
