/* ssh: SSH client sessions on libssh 0.10 — the app's own key, host-key pinning, exec with
 * streamed output, SFTP upload, shell quoting.
 *
 * - Keys: sshc_app_key() creates DATA_DIR/ssh/id_ed25519 (0600, directory 0700) once, plus
 *   id_ed25519.pub, and returns the OpenSSH public key line ("ssh-ed25519 AAAA... gpuscribe").
 * - libssh is opened on first use (ssh_dl.h): by sshc_connect and by sshc_app_key when it must
 *   read or make a key; the other functions here are plain C.
 * - Host keys are pinned in our own known_hosts file (never ~/.ssh, never /etc/ssh), one plain
 *   OpenSSH-format line per name: `NAME TYPE BASE64`. NAME is t->host_alias when set (a Vast
 *   SSH proxy host:port is reused by other instances over time, so pin per instance), else
 *   "[host]:port" (or "host" on port 22). Trust on first use: an unknown name is recorded; a
 *   known name presenting any other key fails with SSHC_ERR_HOSTKEY and says so, and the
 *   file is left as it is. sshc_forget_host() removes a name (instance destroyed).
 * - Connections: TCP_NODELAY on (off costs ~40 ms per round trip), ~/.ssh/config ignored,
 *   ciphers aes128-gcm first with chacha20-poly1305 as fallback, ed25519 host keys preferred,
 *   publickey auth with t->key_path only (no agent, no password).
 * - Errors: every function fills `err` with one lowercase line; functions returning int return
 *   0 (SSHC_OK) on success or an enum sshc_err value.
 * - Threads: an sshc is not thread-safe (libssh sessions are not); use it from one thread at a
 *   time. Different sshc may be used on different threads at once. sshc_app_key and the
 *   known_hosts updates are safe to call concurrently within one process.
 * - No automatic keepalive on an sshc; tunnels (tunnel.h) run their own.
 */
#ifndef GS_SSH_H
#define GS_SSH_H

#include "core/err.h"
#include <stddef.h>

typedef struct sshc sshc; /* one connected, authenticated session */

typedef struct sshc_target {
    const char *host;
    int port;                 /* 0 = 22 */
    const char *user;         /* "root" on Vast; NULL = "root" */
    const char *key_path;     /* our ed25519 private key (sshc_app_key's file) */
    const char *known_hosts;  /* our own file; created when missing */
    const char *host_alias;   /* pin under this name (e.g. "vast-29040483"); NULL = [host]:port */
    int connect_timeout_s;    /* TCP connect + each blocking step; 0 = 10 */
} sshc_target;

enum sshc_err {
    SSHC_OK = 0,
    SSHC_ERR_CONNECT, /* refused / unreachable / timed out / dropped during handshake: retry */
    SSHC_ERR_HOSTKEY, /* the host presented a key other than the pinned one: refuse */
    SSHC_ERR_AUTH,    /* our key was refused (on Vast: maybe not attached yet) */
    SSHC_ERR_IO,      /* local file error or the session broke mid-operation */
    SSHC_ERR_TIMEOUT, /* an operation ran past its timeout */
    SSHC_ERR_REMOTE,  /* the remote side refused (sftp permission, exec request denied...) */
};

/* "ok", "connect", "hostkey", "auth", "io", "timeout", "remote". */
const char *sshc_err_name(enum sshc_err e);
/* The project-wide kind (core/err.h): connect/io/timeout are worth a retry; a changed host
 * key, a refused key or a remote refusal are not. */
gs_err sshc_err_gs(enum sshc_err e);

/* Generate (if missing) DATA_DIR/ssh/id_ed25519 (0600, dir 0700) and its .pub, and return the
 * OpenSSH public key line without a newline (caller frees). Idempotent: an existing key is
 * never replaced (its mode is tightened to 0600 if looser); its line is read from the .pub
 * beside it when that holds one and is not older than the key (no libssh loaded: a server
 * start maps none), else derived from the key, which rewrites the .pub. NULL on error. */
char *sshc_app_key(const char *data_dir, char *err, size_t errlen);
/* The private key path sshc_app_key uses: DATA_DIR/ssh/id_ed25519 (caller frees). */
char *sshc_app_key_path(const char *data_dir);

/* Connect, verify the host key (TOFU, see above), authenticate. NULL on failure with *kind
 * (optional) set and err filled. */
sshc *sshc_connect(const sshc_target *t, enum sshc_err *kind, char *err, size_t errlen);

/* sshc_connect with retries while sshd comes up: attempts until deadline_s seconds have
 * passed in total, with capped exponential backoff (0.25 s doubling to 2 s). Stops at once on
 * SSHC_ERR_HOSTKEY, and on SSHC_ERR_AUTH unless retry_auth is non-zero (keys may be attached
 * late on Vast). The last attempt's error is reported. */
sshc *sshc_connect_retry(const sshc_target *t, double deadline_s, int retry_auth,
                         enum sshc_err *kind, char *err, size_t errlen);

/* Run cmd through the remote user's shell. stdout and stderr are streamed line by line (no
 * newline; a final unterminated line is delivered too; lines over 64 KiB are split) to on_line
 * (may be NULL) in arrival order. `in` (inlen bytes, may be NULL) is sent as stdin, then EOF.
 * timeout_s <= 0: no timeout; on timeout the command is sent SIGKILL, the channel closed, and
 * SSHC_ERR_TIMEOUT returned (the session stays usable). *exit_status (optional) gets the exit
 * status, or 128+N when killed by signal N (-1 when the server reported neither). Returns
 * SSHC_OK when the command ran to its end, whatever its status. */
int sshc_exec(sshc *c, const char *cmd, const char *in, size_t inlen,
              void (*on_line)(void *ud, int is_stderr, const char *line), void *ud,
              int timeout_s, int *exit_status, char *err, size_t errlen);

/* sshc_exec collecting stdout into *out (NUL-terminated, caller frees; capped at max_out bytes,
 * the rest dropped) and stderr into *err_out (optional, capped the same). Raw bytes, not lines. */
int sshc_exec_capture(sshc *c, const char *cmd, const char *in, size_t inlen, size_t max_out,
                      char **out, char **err_out, int timeout_s, int *exit_status,
                      char *err, size_t errlen);

/* SFTP upload of a local file to remote_path (relative paths are from the login directory; the
 * directory must exist). Atomic: written to remote_path.tmp, chmod mode, then renamed over
 * remote_path (POSIX rename, replacing an existing file). */
int sshc_upload(sshc *c, const char *local_path, const char *remote_path, int mode,
                char *err, size_t errlen);
int sshc_upload_data(sshc *c, const void *data, size_t len, const char *remote_path, int mode,
                     char *err, size_t errlen);

void sshc_close(sshc *c);

/* Quote a string for a POSIX shell (single quotes; ' becomes '\''), caller frees. */
char *sshc_shell_quote(const char *s);

/* The known_hosts name t pins under (see above), caller frees. */
char *sshc_pin_name(const sshc_target *t);
/* Remove every known_hosts line for name. 0 when done (also when absent), -1 on error. */
int sshc_forget_host(const char *known_hosts, const char *name, char *err, size_t errlen);

#endif
