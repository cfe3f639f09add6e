/* ssh: libssh sessions, host-key pinning, app key, exec, SFTP upload (see ssh.h). */
#define _GNU_SOURCE
#include "ssh/ssh_int.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CIPHERS "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes256-gcm@openssh.com," \
                "aes128-ctr,aes256-ctr"
#define HOSTKEYS "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521," \
                 "rsa-sha2-512,rsa-sha2-256"
#define LINE_MAX_BYTES (64 * 1024)
#define UPLOAD_CHUNK (64 * 1024)

static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;

/* append to an uncapped (or deliberately capped) buffer; a refused append is dropped */
static void bput(buf *b, const void *p, size_t n)
{
    if (n && buf_append(b, p, n) != 0) {}
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *sshc_err_name(enum sshc_err e)
{
    switch (e) {
    case SSHC_OK: return "ok";
    case SSHC_ERR_CONNECT: return "connect";
    case SSHC_ERR_HOSTKEY: return "hostkey";
    case SSHC_ERR_AUTH: return "auth";
    case SSHC_ERR_IO: return "io";
    case SSHC_ERR_TIMEOUT: return "timeout";
    case SSHC_ERR_REMOTE: return "remote";
    }
    return "unknown";
}

gs_err sshc_err_gs(enum sshc_err e)
{
    switch (e) {
    case SSHC_OK: return GS_OK;
    case SSHC_ERR_CONNECT: return GS_E_NETWORK;
    case SSHC_ERR_HOSTKEY: return GS_E_HOSTKEY;
    case SSHC_ERR_AUTH: return GS_E_UNAUTHORIZED;
    case SSHC_ERR_IO: return GS_E_NETWORK;
    case SSHC_ERR_TIMEOUT: return GS_E_TIMEOUT;
    case SSHC_ERR_REMOTE: return GS_E_FORBIDDEN;
    }
    return GS_E_PEER;
}

char *sshc_shell_quote(const char *s)
{
    buf b;
    buf_init(&b, 0);
    bput(&b, "'", 1);
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\'') bput(&b, "'\\''", 4);
        else bput(&b, p, 1);
    }
    bput(&b, "'", 1);
    return buf_take(&b);
}

/* ------------------------------------------------------------------ app key */

char *sshc_app_key_path(const char *data_dir)
{
    return xasprintf("%s/ssh/id_ed25519", data_dir);
}

static char *pubkey_line(ssh_key key, char *err, size_t errlen)
{
    char *b64 = NULL;
    if (gs_ssh.ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK || !b64) {
        seterr(err, errlen, "cannot export the public key");
        return NULL;
    }
    char *line = xasprintf("%s %s gpuscribe", gs_ssh.ssh_key_type_to_char(gs_ssh.ssh_key_type(key)), b64);
    gs_ssh.ssh_string_free_char(b64);
    return line;
}

/* The public key line of our own .pub beside the key, when it holds one ("TYPE BASE64 ...")
 * and is not older than the key (a key replaced by hand is read again): starting a server then
 * needs no libssh. NULL otherwise. */
static char *pub_beside(const char *pubpath, const struct stat *key_st)
{
    struct stat ps;
    if (stat(pubpath, &ps) != 0 || !S_ISREG(ps.st_mode)) return NULL;
    if (ps.st_mtim.tv_sec < key_st->st_mtim.tv_sec ||
        (ps.st_mtim.tv_sec == key_st->st_mtim.tv_sec && ps.st_mtim.tv_nsec < key_st->st_mtim.tv_nsec))
        return NULL;
    char *text = read_file(pubpath, 16384, NULL);
    if (!text) return NULL;
    char *line = NULL;
    size_t tl = strcspn(text, " \t\r\n");
    const char *b = text + tl + strspn(text + tl, " \t");
    size_t bl = strspn(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");
    if (str_starts(text, "ssh-") && tl > 4 && bl >= 16 && strchr(" \t\r\n", b[bl]))
        line = xasprintf("%.*s %.*s gpuscribe", (int)tl, text, (int)bl, b);
    free(text);
    return line;
}

char *sshc_app_key(const char *data_dir, char *err, size_t errlen)
{
    if (!data_dir || !*data_dir) {
        seterr(err, errlen, "no data directory");
        return NULL;
    }
    char *dir = xasprintf("%s/ssh", data_dir);
    char *path = xasprintf("%s/id_ed25519", dir);
    char *pubpath = xasprintf("%s.pub", path);
    char *line = NULL;
    ssh_key key = NULL;
    char *b64 = NULL;
    pthread_mutex_lock(&file_lock);
    if (mkdir_p(dir, 0700) != 0) {
        seterr(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    (void)chmod(dir, 0700);
    struct stat st;
    if (stat(path, &st) == 0) {
        if ((st.st_mode & 077) != 0) (void)chmod(path, 0600);
        if ((line = pub_beside(pubpath, &st))) goto out;
        if (ssh_dl_load(err, errlen) != 0) goto out;
        if (gs_ssh.ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) != SSH_OK) {
            seterr(err, errlen, "cannot read the ssh key %s (not an unencrypted private key?)", path);
            goto out;
        }
        line = pubkey_line(key, err, errlen);
        if (line) {   /* missing, older than the key or not a public key line: rewritten */
            char *l = xasprintf("%s\n", line);
            (void)write_file_atomic(pubpath, l, strlen(l), 0644);
            free(l);
        }
        goto out;
    }
    if (ssh_dl_load(err, errlen) != 0) goto out;
    if (gs_ssh.ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        seterr(err, errlen, "cannot generate an ed25519 key");
        goto out;
    }
    if (gs_ssh.ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &b64) != SSH_OK || !b64) {
        seterr(err, errlen, "cannot export the private key");
        goto out;
    }
    line = pubkey_line(key, err, errlen);
    if (!line) goto out;
    if (write_file_atomic(path, b64, strlen(b64), 0600) != 0) {
        seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
        SAFE_FREE(line);
        goto out;
    }
    char *l = xasprintf("%s\n", line);
    if (write_file_atomic(pubpath, l, strlen(l), 0644) != 0)
        LOG_W("ssh", "cannot write %s: %s", pubpath, strerror(errno));
    free(l);
    LOG_I("ssh", "created the app's ssh key %s", path);
out:
    pthread_mutex_unlock(&file_lock);
    if (b64) {
        explicit_bzero(b64, strlen(b64));
        gs_ssh.ssh_string_free_char(b64);
    }
    if (key) gs_ssh.ssh_key_free(key);   /* key and b64 are set only once libssh is loaded */
    free(dir);
    free(path);
    free(pubpath);
    return line;
}

/* ------------------------------------------------------------------ known hosts */

static int target_port(const sshc_target *t) { return t->port > 0 ? t->port : 22; }

char *sshc_pin_name(const sshc_target *t)
{
    if (t->host_alias && *t->host_alias) return xstrdup(t->host_alias);
    if (target_port(t) == 22) return xstrdup(t->host);
    return xasprintf("[%s]:%d", t->host, target_port(t));
}

/* Does a known_hosts host field (comma-separated names) contain name? */
static int hostfield_has(const char *field, size_t flen, const char *name)
{
    size_t nl = strlen(name);
    const char *p = field, *end = field + flen;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t l = c ? (size_t)(c - p) : (size_t)(end - p);
        if (l == nl && memcmp(p, name, nl) == 0) return 1;
        p += l + 1;
    }
    return 0;
}

/* 0 = match, 1 = unknown (name absent), 2 = changed (name present, other key), -1 error */
static int pin_check(const char *file, const char *name, const char *type, const char *b64,
                     char *found_type, size_t ftlen)
{
    size_t len = 0;
    char *data = read_file(file, 16u << 20, &len);
    if (!data) return errno == ENOENT ? 1 : -1;
    int seen = 0, match = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t') line++;
        if (*line == '#' || !*line) continue;
        char *sp1 = strpbrk(line, " \t");
        if (!sp1) continue;
        if (!hostfield_has(line, (size_t)(sp1 - line), name)) continue;
        char *kt = sp1 + strspn(sp1, " \t");
        char *sp2 = strpbrk(kt, " \t");
        if (!sp2) continue;
        *sp2 = 0;
        char *kb = sp2 + 1 + strspn(sp2 + 1, " \t");
        size_t kbl = strcspn(kb, " \t\r");
        seen = 1;
        if (found_type && !found_type[0]) snprintf(found_type, ftlen, "%s", kt);
        if (!strcmp(kt, type) && kbl == strlen(b64) && !memcmp(kb, b64, kbl)) match = 1;
    }
    free(data);
    return match ? 0 : seen ? 2 : 1;
}

static int pin_add(const char *file, const char *name, const char *type, const char *b64)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    (void)flock(fd, LOCK_EX);
    char *l = xasprintf("%s %s %s\n", name, type, b64);
    ssize_t n = write(fd, l, strlen(l));
    int ok = n == (ssize_t)strlen(l);
    free(l);
    (void)flock(fd, LOCK_UN);
    if (close(fd) != 0) ok = 0;
    return ok ? 0 : -1;
}

int sshc_forget_host(const char *known_hosts, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&file_lock);
    size_t len = 0;
    int rc = 0;
    char *data = read_file(known_hosts, 16u << 20, &len);
    if (!data) {
        if (errno != ENOENT) {
            seterr(err, errlen, "cannot read %s: %s", known_hosts, strerror(errno));
            rc = -1;
        }
        goto out;
    }
    buf b;
    buf_init(&b, 0);
    char *p = data;
    int removed = 0;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);
        size_t hl = strcspn(p, " \t\n");
        if (p[0] != '#' && hl < l && hostfield_has(p, hl, name)) removed = 1;
        else bput(&b, p, l);
        p += l;
    }
    if (removed && write_file_atomic(known_hosts, b.data ? b.data : "", b.len, 0600) != 0) {
        seterr(err, errlen, "cannot write %s: %s", known_hosts, strerror(errno));
        rc = -1;
    }
    buf_release(&b);
    free(data);
out:
    pthread_mutex_unlock(&file_lock);
    return rc;
}

static enum sshc_err verify_host(ssh_session s, const sshc_target *t, char *err, size_t errlen)
{
    ssh_key key = NULL;
    if (gs_ssh.ssh_get_server_publickey(s, &key) != SSH_OK || !key) {
        seterr(err, errlen, "no host key from %s:%d", t->host, target_port(t));
        return SSHC_ERR_CONNECT;
    }
    char *b64 = NULL;
    if (gs_ssh.ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK || !b64) {
        gs_ssh.ssh_key_free(key);
        seterr(err, errlen, "cannot read the host key of %s:%d", t->host, target_port(t));
        return SSHC_ERR_IO;
    }
    const char *type = gs_ssh.ssh_key_type_to_char(gs_ssh.ssh_key_type(key));
    char *name = sshc_pin_name(t);
    char found[64] = "";
    enum sshc_err rc = SSHC_OK;
    pthread_mutex_lock(&file_lock);
    int r = pin_check(t->known_hosts, name, type, b64, found, sizeof found);
    if (r == 1) {
        if (pin_add(t->known_hosts, name, type, b64) != 0) {
            seterr(err, errlen, "cannot record the host key in %s: %s", t->known_hosts,
                   strerror(errno));
            rc = SSHC_ERR_IO;
        } else {
            LOG_I("ssh", "pinned the %s host key of %s in %s", type, name, t->known_hosts);
        }
    } else if (r == 2) {
        unsigned char *hash = NULL;
        size_t hlen = 0;
        char *fp = NULL;
        if (gs_ssh.ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0) {
            fp = gs_ssh.ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
            gs_ssh.ssh_clean_pubkey_hash(&hash);
        }
        seterr(err, errlen,
               "host key for %s changed: %s:%d now presents %s %s, but %s pins a different "
               "%s key; refusing to connect (possible man-in-the-middle; if the instance was "
               "really replaced, remove its line from that file)",
               name, t->host, target_port(t), type, fp ? fp : "?", t->known_hosts, found);
        if (fp) gs_ssh.ssh_string_free_char(fp);
        rc = SSHC_ERR_HOSTKEY;
    } else if (r < 0) {
        seterr(err, errlen, "cannot read %s: %s", t->known_hosts, strerror(errno));
        rc = SSHC_ERR_IO;
    }
    pthread_mutex_unlock(&file_lock);
    free(name);
    gs_ssh.ssh_string_free_char(b64);
    gs_ssh.ssh_key_free(key);
    return rc;
}

/* ------------------------------------------------------------------ connect */

sshc *sshc_connect(const sshc_target *t, enum sshc_err *kind, char *err, size_t errlen)
{
    enum sshc_err k = SSHC_ERR_CONNECT;
    sshc *c = NULL;
    ssh_key key = NULL;
    if (ssh_dl_load(err, errlen) != 0) {
        if (kind) *kind = SSHC_ERR_IO;
        return NULL;
    }
    if (!t || !t->host || !t->key_path || !t->known_hosts) {
        seterr(err, errlen, "ssh target needs host, key_path and known_hosts");
        k = SSHC_ERR_IO;
        goto fail;
    }
    const char *user = t->user ? t->user : "root";
    int port = target_port(t);
    long timeout = t->connect_timeout_s > 0 ? t->connect_timeout_s : 10;
    if (gs_ssh.ssh_pki_import_privkey_file(t->key_path, NULL, NULL, NULL, &key) != SSH_OK) {
        seterr(err, errlen, "cannot read the ssh key %s", t->key_path);
        k = SSHC_ERR_IO;
        goto fail;
    }
    ssh_session s = gs_ssh.ssh_new();
    if (!s) {
        seterr(err, errlen, "out of memory");
        k = SSHC_ERR_IO;
        goto fail;
    }
    c = xcalloc(1, sizeof *c);
    c->s = s;
    c->where = xasprintf("%s@%s:%d", user, t->host, port);
    int one = 1, zero = 0;
    unsigned uport = (unsigned)port;
    if (gs_ssh.ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &zero) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_HOST, t->host) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_PORT, &uport) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_USER, user) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, t->known_hosts) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_NODELAY, &one) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, CIPHERS) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, CIPHERS) < 0 ||
        gs_ssh.ssh_options_set(s, SSH_OPTIONS_HOSTKEYS, HOSTKEYS) < 0) {
        seterr(err, errlen, "ssh options: %s", gs_ssh.ssh_get_error(s));
        k = SSHC_ERR_IO;
        goto fail;
    }
    if (gs_ssh.ssh_connect(s) != SSH_OK) {
        seterr(err, errlen, "cannot connect to %s: %s", c->where, gs_ssh.ssh_get_error(s));
        k = SSHC_ERR_CONNECT;
        goto fail;
    }
    k = verify_host(s, t, err, errlen);
    if (k != SSHC_OK) goto fail;
    int rc = gs_ssh.ssh_userauth_publickey(s, NULL, key);
    if (rc != SSH_AUTH_SUCCESS) {
        if (rc == SSH_AUTH_ERROR) {
            seterr(err, errlen, "authentication with %s broke: %s", c->where, gs_ssh.ssh_get_error(s));
            k = SSHC_ERR_CONNECT;
        } else {
            seterr(err, errlen, "%s refused our key %s (publickey authentication failed)",
                   c->where, t->key_path);
            k = SSHC_ERR_AUTH;
        }
        goto fail;
    }
    gs_ssh.ssh_key_free(key);
    if (kind) *kind = SSHC_OK;
    LOG_D("ssh", "connected to %s", c->where);
    return c;
fail:
    gs_ssh.ssh_key_free(key);
    sshc_close(c);
    if (kind) *kind = k;
    return NULL;
}

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

sshc *sshc_connect_retry(const sshc_target *t, double deadline_s, int retry_auth,
                         enum sshc_err *kind, char *err, size_t errlen)
{
    double end = now_mono() + deadline_s, delay = 0.25;
    enum sshc_err k = SSHC_ERR_CONNECT;
    for (int attempt = 1;; attempt++) {
        sshc_target tt = *t;
        double left = end - now_mono();
        int ct = t->connect_timeout_s > 0 ? t->connect_timeout_s : 10;
        if (left < ct) ct = left < 1 ? 1 : (int)(left + 0.999);
        tt.connect_timeout_s = ct;
        sshc *c = sshc_connect(&tt, &k, err, errlen);
        if (c) {
            if (kind) *kind = SSHC_OK;
            return c;
        }
        if (k == SSHC_ERR_HOSTKEY || (k == SSHC_ERR_AUTH && !retry_auth) || k == SSHC_ERR_IO)
            break;
        left = end - now_mono();
        if (left <= 0) break;
        LOG_D("ssh", "attempt %d: %s; retrying in %.2f s", attempt, err ? err : "", delay);
        sleep_s(delay < left ? delay : left);
        delay = delay * 2 > 2 ? 2 : delay * 2;
        if (end - now_mono() <= 0) break;
    }
    if (kind) *kind = k;
    return NULL;
}

void sshc_close(sshc *c)
{
    if (!c) return;
    if (c->sftp) gs_ssh.sftp_free(c->sftp);
    if (c->s) {
        if (gs_ssh.ssh_is_connected(c->s)) gs_ssh.ssh_disconnect(c->s);
        gs_ssh.ssh_free(c->s);
    }
    free(c->where);
    free(c);
}

/* ------------------------------------------------------------------ exec */

struct exec_ctx {
    void (*on_line)(void *ud, int is_stderr, const char *line);
    void *ud;
    buf line[2];
    buf *cap[2];      /* sshc_exec_capture: raw collection */
    int got_eof, got_close, got_exit, exit_status;
};

static void emit_line(struct exec_ctx *x, int e)
{
    buf *b = &x->line[e];
    if (x->on_line) {
        if (b->len && b->data[b->len - 1] == '\r') b->data[--b->len] = 0;
        x->on_line(x->ud, e, b->data ? b->data : "");
    }
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

static int exec_data_cb(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
                        void *ud)
{
    (void)s; (void)ch;
    struct exec_ctx *x = ud;
    int e = is_stderr ? 1 : 0;
    const char *p = data;
    if (x->cap[e]) {
        size_t room = x->cap[e]->max - x->cap[e]->len;
        bput(x->cap[e], p, len < room ? len : room);
    }
    if (!x->on_line) return (int)len;
    size_t left = len;
    while (left) {
        const char *nl = memchr(p, '\n', left);
        size_t n = nl ? (size_t)(nl - p) : left;
        size_t room = LINE_MAX_BYTES - x->line[e].len;
        if (n >= room) {
            bput(&x->line[e], p, room);
            emit_line(x, e);
            p += room;
            left -= room;
            continue;
        }
        bput(&x->line[e], p, n);
        p += n;
        left -= n;
        if (nl) {
            emit_line(x, e);
            p++;
            left--;
        }
    }
    return (int)len;
}

static void exec_eof_cb(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s; (void)ch;
    ((struct exec_ctx *)ud)->got_eof = 1;
}

static void exec_close_cb(ssh_session s, ssh_channel ch, void *ud)
{
    (void)s; (void)ch;
    ((struct exec_ctx *)ud)->got_close = 1;
}

static void exec_status_cb(ssh_session s, ssh_channel ch, int status, void *ud)
{
    (void)s; (void)ch;
    struct exec_ctx *x = ud;
    x->got_exit = 1;
    x->exit_status = status;
}

static int signum_of(const char *name)
{
    static const struct { const char *n; int v; } sigs[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"ABRT", SIGABRT},
        {"FPE", SIGFPE}, {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE},
        {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
        {"BUS", SIGBUS}};
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
        if (name && !strcmp(name, sigs[i].n)) return sigs[i].v;
    return 0;
}

static void exec_signal_cb(ssh_session s, ssh_channel ch, const char *sig, int core,
                           const char *errmsg, const char *lang, void *ud)
{
    (void)s; (void)ch; (void)core; (void)errmsg; (void)lang;
    struct exec_ctx *x = ud;
    x->got_exit = 1;
    int n = signum_of(sig);
    x->exit_status = n ? 128 + n : 255;
}

static int exec_run(sshc *c, const char *cmd, const char *in, size_t inlen,
                    struct exec_ctx *x, int timeout_s, int *exit_status, char *err,
                    size_t errlen)
{
    if (exit_status) *exit_status = -1;
    if (!c || !c->s || !cmd) {
        seterr(err, errlen, "no session");
        return SSHC_ERR_IO;
    }
    ssh_session s = c->s;
    ssh_channel ch = gs_ssh.ssh_channel_new(s);
    if (!ch) {
        seterr(err, errlen, "cannot create a channel: %s", gs_ssh.ssh_get_error(s));
        return SSHC_ERR_IO;
    }
    int rc = SSHC_OK;
    struct ssh_channel_callbacks_struct cb;
    memset(&cb, 0, sizeof cb);
    cb.userdata = x;
    cb.channel_data_function = exec_data_cb;
    cb.channel_eof_function = exec_eof_cb;
    cb.channel_close_function = exec_close_cb;
    cb.channel_exit_status_function = exec_status_cb;
    cb.channel_exit_signal_function = exec_signal_cb;
    ssh_callbacks_init(&cb);
    ssh_event ev = NULL;
    int cb_set = 0;
    if (gs_ssh.ssh_channel_open_session(ch) != SSH_OK) {
        seterr(err, errlen, "cannot open a session channel on %s: %s", c->where, gs_ssh.ssh_get_error(s));
        rc = gs_ssh.ssh_is_connected(s) ? SSHC_ERR_REMOTE : SSHC_ERR_IO;
        goto out;
    }
    gs_ssh.ssh_set_channel_callbacks(ch, &cb);
    cb_set = 1;
    if (gs_ssh.ssh_channel_request_exec(ch, cmd) != SSH_OK) {
        seterr(err, errlen, "exec refused by %s: %s", c->where, gs_ssh.ssh_get_error(s));
        rc = gs_ssh.ssh_is_connected(s) ? SSHC_ERR_REMOTE : SSHC_ERR_IO;
        goto out;
    }
    ev = gs_ssh.ssh_event_new();
    if (!ev || gs_ssh.ssh_event_add_session(ev, s) != SSH_OK) {
        seterr(err, errlen, "cannot poll the session");
        rc = SSHC_ERR_IO;
        goto out;
    }
    double deadline = timeout_s > 0 ? now_mono() + timeout_s : 0;
    size_t sent = 0;
    int eof_sent = 0;
    while (!(x->got_close || (x->got_eof && x->got_exit))) {
        if (!eof_sent) {
            while (in && sent < inlen) {
                uint32_t win = gs_ssh.ssh_channel_window_size(ch);
                if (win == 0) break;
                size_t n = inlen - sent;
                if (n > win) n = win;
                if (n > 32768) n = 32768;
                int w = gs_ssh.ssh_channel_write(ch, in + sent, (uint32_t)n);
                if (w < 0) {
                    seterr(err, errlen, "writing stdin to %s: %s", c->where, gs_ssh.ssh_get_error(s));
                    rc = SSHC_ERR_IO;
                    goto out;
                }
                sent += (size_t)w;
                if (w == 0) break;
            }
            if (!in || sent >= inlen) {
                gs_ssh.ssh_channel_send_eof(ch);
                eof_sent = 1;
            }
        }
        int wait_ms = 200;
        if (deadline) {
            double left = deadline - now_mono();
            if (left <= 0) {
                gs_ssh.ssh_channel_request_send_signal(ch, "KILL");
                seterr(err, errlen, "command timed out after %d s on %s", timeout_s, c->where);
                rc = SSHC_ERR_TIMEOUT;
                goto out;
            }
            if (left * 1000 < wait_ms) wait_ms = (int)(left * 1000) + 1;
        }
        if (gs_ssh.ssh_event_dopoll(ev, wait_ms) == SSH_ERROR || !gs_ssh.ssh_is_connected(s)) {
            if (x->got_close || (x->got_eof && x->got_exit)) break;
            seterr(err, errlen, "connection to %s lost during a command: %s", c->where,
                   gs_ssh.ssh_get_error(s));
            rc = SSHC_ERR_IO;
            goto out;
        }
    }
    for (int e = 0; e < 2; e++)
        if (x->line[e].len) emit_line(x, e);
    if (exit_status) *exit_status = x->got_exit ? x->exit_status : -1;
out:
    if (ev) {
        gs_ssh.ssh_event_remove_session(ev, s);
        gs_ssh.ssh_event_free(ev);
    }
    if (cb_set) gs_ssh.ssh_remove_channel_callbacks(ch, &cb);
    if (gs_ssh.ssh_channel_is_open(ch)) gs_ssh.ssh_channel_close(ch);
    gs_ssh.ssh_channel_free(ch);
    return rc;
}

int sshc_exec(sshc *c, const char *cmd, const char *in, size_t inlen,
              void (*on_line)(void *ud, int is_stderr, const char *line), void *ud,
              int timeout_s, int *exit_status, char *err, size_t errlen)
{
    struct exec_ctx x;
    memset(&x, 0, sizeof x);
    x.on_line = on_line;
    x.ud = ud;
    buf_init(&x.line[0], 0);
    buf_init(&x.line[1], 0);
    int rc = exec_run(c, cmd, in, inlen, &x, timeout_s, exit_status, err, errlen);
    buf_release(&x.line[0]);
    buf_release(&x.line[1]);
    return rc;
}

int sshc_exec_capture(sshc *c, const char *cmd, const char *in, size_t inlen, size_t max_out,
                      char **out, char **err_out, int timeout_s, int *exit_status,
                      char *err, size_t errlen)
{
    struct exec_ctx x;
    memset(&x, 0, sizeof x);
    buf o, e;
    if (max_out == 0) max_out = 1;
    buf_init(&o, max_out);
    buf_init(&e, max_out);
    x.cap[0] = &o;
    x.cap[1] = &e;
    int rc = exec_run(c, cmd, in, inlen, &x, timeout_s, exit_status, err, errlen);
    if (out) *out = buf_take(&o);
    if (err_out) *err_out = buf_take(&e);
    buf_release(&o);
    buf_release(&e);
    return rc;
}

/* ------------------------------------------------------------------ sftp */

static const char *sftp_msg(int code)
{
    switch (code) {
    case SSH_FX_NO_SUCH_FILE: return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED: return "permission denied";
    case SSH_FX_FAILURE: return "failure";
    case SSH_FX_BAD_MESSAGE: return "bad message";
    case SSH_FX_NO_CONNECTION: return "no connection";
    case SSH_FX_CONNECTION_LOST: return "connection lost";
    case SSH_FX_OP_UNSUPPORTED: return "operation unsupported";
    case SSH_FX_FILE_ALREADY_EXISTS: return "file already exists";
    case SSH_FX_WRITE_PROTECT: return "write protected";
    case SSH_FX_NO_MEDIA: return "no media";
    default: return "error";
    }
}

static int sftp_fail(sshc *c, const char *what, const char *path, char *err, size_t errlen)
{
    int code = c->sftp ? gs_ssh.sftp_get_error(c->sftp) : 0;
    int alive = gs_ssh.ssh_is_connected(c->s);
    if (code && alive)
        seterr(err, errlen, "sftp %s %s on %s: %s", what, path, c->where, sftp_msg(code));
    else
        seterr(err, errlen, "sftp %s %s on %s: %s", what, path, c->where, gs_ssh.ssh_get_error(c->s));
    return alive && code ? SSHC_ERR_REMOTE : SSHC_ERR_IO;
}

typedef ssize_t (*chunk_fn)(void *ud, char *dst, size_t n);

static int upload(sshc *c, chunk_fn next, void *ud, const char *remote_path, int mode,
                  char *err, size_t errlen)
{
    if (!c || !c->s || !remote_path || !*remote_path) {
        seterr(err, errlen, "no session or remote path");
        return SSHC_ERR_IO;
    }
    if (!c->sftp) {
        c->sftp = gs_ssh.sftp_new(c->s);
        if (!c->sftp) {
            seterr(err, errlen, "cannot start sftp on %s: %s", c->where, gs_ssh.ssh_get_error(c->s));
            return gs_ssh.ssh_is_connected(c->s) ? SSHC_ERR_REMOTE : SSHC_ERR_IO;
        }
        if (gs_ssh.sftp_init(c->sftp) != SSH_OK) {
            seterr(err, errlen, "cannot start sftp on %s: %s", c->where, gs_ssh.ssh_get_error(c->s));
            gs_ssh.sftp_free(c->sftp);
            c->sftp = NULL;
            return gs_ssh.ssh_is_connected(c->s) ? SSHC_ERR_REMOTE : SSHC_ERR_IO;
        }
    }
    char *tmp = xasprintf("%s.tmp", remote_path);
    char *chunk = xmalloc(UPLOAD_CHUNK);
    int rc = SSHC_OK;
    sftp_file f = gs_ssh.sftp_open(c->sftp, tmp, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)(mode & 07777));
    if (!f) {
        rc = sftp_fail(c, "open", tmp, err, errlen);
        goto out;
    }
    for (;;) {
        ssize_t n = next(ud, chunk, UPLOAD_CHUNK);
        if (n < 0) {
            seterr(err, errlen, "reading the local file: %s", strerror(errno));
            rc = SSHC_ERR_IO;
            break;
        }
        if (n == 0) break;
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = gs_ssh.sftp_write(f, chunk + off, (size_t)(n - off));
            if (w <= 0) {
                rc = sftp_fail(c, "write", tmp, err, errlen);
                goto close_file;
            }
            off += w;
        }
    }
close_file:
    if (gs_ssh.sftp_close(f) != SSH_NO_ERROR && rc == SSHC_OK) rc = sftp_fail(c, "close", tmp, err, errlen);
    if (rc == SSHC_OK && gs_ssh.sftp_chmod(c->sftp, tmp, (mode_t)(mode & 07777)) != 0)
        rc = sftp_fail(c, "chmod", tmp, err, errlen);
    if (rc == SSHC_OK && gs_ssh.sftp_rename(c->sftp, tmp, remote_path) != 0) {
        /* without posix-rename a plain SFTP rename refuses to replace: unlink, then rename */
        (void)gs_ssh.sftp_unlink(c->sftp, remote_path);
        if (gs_ssh.sftp_rename(c->sftp, tmp, remote_path) != 0)
            rc = sftp_fail(c, "rename", tmp, err, errlen);
    }
    if (rc != SSHC_OK && gs_ssh.ssh_is_connected(c->s)) (void)gs_ssh.sftp_unlink(c->sftp, tmp);
out:
    free(chunk);
    free(tmp);
    return rc;
}

static ssize_t fd_chunk(void *ud, char *dst, size_t n)
{
    int fd = *(int *)ud;
    for (;;) {
        ssize_t r = read(fd, dst, n);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

struct mem_src { const char *p; size_t left; };

static ssize_t mem_chunk(void *ud, char *dst, size_t n)
{
    struct mem_src *m = ud;
    if (n > m->left) n = m->left;
    memcpy(dst, m->p, n);
    m->p += n;
    m->left -= n;
    return (ssize_t)n;
}

int sshc_upload(sshc *c, const char *local_path, const char *remote_path, int mode,
                char *err, size_t errlen)
{
    int fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "cannot open %s: %s", local_path, strerror(errno));
        return SSHC_ERR_IO;
    }
    int rc = upload(c, fd_chunk, &fd, remote_path, mode, err, errlen);
    close(fd);
    return rc;
}

int sshc_upload_data(sshc *c, const void *data, size_t len, const char *remote_path, int mode,
                     char *err, size_t errlen)
{
    struct mem_src m = {data ? data : "", data ? len : 0};
    return upload(c, mem_chunk, &m, remote_path, mode, err, errlen);
}
