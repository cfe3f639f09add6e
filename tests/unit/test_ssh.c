/* Unit tests for src/ssh against a real OpenSSH sshd on 127.0.0.1 (ephemeral port, config and
 * keys in the test's temp dir): app key, TOFU pinning and a changed host key, auth failure,
 * connect_retry while sshd starts late, exec (lines, exit status, stdin, signal, timeout),
 * SFTP upload (file/data, atomic, mode), shell quoting, and the tunnel (HTTP through it,
 * concurrency, 50 MB integrity, echo with half-close, remote port refused -> degraded, sshd
 * killed -> reconnecting -> restarted -> up). Skipped (with a reason) unless root with
 * /usr/sbin/sshd. */
#define _GNU_SOURCE
#include "test.h"

#include "core/util.h"
#include "ssh/ssh.h"
#include "ssh/tunnel.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SSHD "/usr/sbin/sshd"

/* ---------------------------------------------------------------- helpers */

static void need_sshd(void)
{
    if (geteuid() != 0) SKIP("not root (the test sshd needs root)");
    if (access(SSHD, X_OK) != 0) SKIP("%s missing (apt-get install openssh-server)", SSHD);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        test_fail(__FILE__, __LINE__, "bind: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void run_ok(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) test_fail(__FILE__, __LINE__, "command failed (%d): %s", rc, cmd);
}

typedef struct sshd_t {
    char dir[512], cfg[600], log[600], key[600], kh[600];
    int port;
    pid_t pid;
} sshd_t;

static pid_t spawn(const char *sh_cmd, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        execl("/bin/sh", "sh", "-c", sh_cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Write config and keys (host key made when missing; our app key authorized). */
static void sshd_prepare(sshd_t *d, const char *name)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s/%s", test_tmpdir(), name);
    mkdir_p(d->dir, 0755);
    mkdir("/run/sshd", 0755);
    snprintf(d->cfg, sizeof d->cfg, "%s/sshd_config", d->dir);
    snprintf(d->log, sizeof d->log, "%s/sshd.log", d->dir);
    snprintf(d->kh, sizeof d->kh, "%s/known_hosts", test_tmpdir());
    char err[256] = "";
    char *pub = sshc_app_key(test_tmpdir(), err, sizeof err);
    if (!pub) test_fail(__FILE__, __LINE__, "app key: %s", err);
    char *kp = sshc_app_key_path(test_tmpdir());
    snprintf(d->key, sizeof d->key, "%s", kp);
    free(kp);
    char *ak = xasprintf("%s/authorized_keys", d->dir);
    char *line = xasprintf("%s\n", pub);
    write_file_atomic(ak, line, strlen(line), 0600);
    free(line);
    free(ak);
    free(pub);
    char *hk = xasprintf("%s/host_ed25519", d->dir);
    if (access(hk, F_OK) != 0) {
        char *cmd = xasprintf("ssh-keygen -q -t ed25519 -N '' -f %s", hk);
        run_ok(cmd);
        free(cmd);
    }
    free(hk);
}

static void sshd_write_cfg(sshd_t *d)
{
    char *cfg = xasprintf(
        "Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_ed25519\nPidFile %s/sshd.pid\n"
        "AuthorizedKeysFile %s/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nAllowTcpForwarding yes\nSubsystem sftp internal-sftp\n"
        "LogLevel VERBOSE\n",
        d->port, d->dir, d->dir, d->dir);
    write_file_atomic(d->cfg, cfg, strlen(cfg), 0644);
    free(cfg);
}

/* Start sshd (after delay_ms when > 0, without waiting); pick a free port unless d->port
 * is set and keep_port. Returns once it accepts connections (delay_ms == 0). */
static void sshd_start_ex(sshd_t *d, int keep_port, int delay_ms)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        if (!keep_port || !d->port) d->port = free_port();
        sshd_write_cfg(d);
        char *cmd = delay_ms > 0
                        ? xasprintf("sleep %.3f; exec %s -D -e -f %s", delay_ms / 1000.0, SSHD, d->cfg)
                        : xasprintf("exec %s -D -e -f %s", SSHD, d->cfg);
        d->pid = spawn(cmd, d->log);
        free(cmd);
        if (delay_ms > 0) return;
        for (int i = 0; i < 300; i++) {
            if (port_open(d->port)) return;
            int st;
            if (waitpid(d->pid, &st, WNOHANG) == d->pid) break;
            sleep_ms(10);
        }
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        if (keep_port) sleep_ms(200);
    }
    char *log = read_file(d->log, 1 << 16, NULL);
    test_fail(__FILE__, __LINE__, "sshd did not start: %s", log ? log : "(no log)");
}

/* How many connections sshd has accepted so far ("Connection from" lines in its log). */
static int sshd_connections(const sshd_t *d)
{
    char *log = read_file(d->log, 1 << 20, NULL);
    int n = 0;
    for (const char *p = log; p && (p = strstr(p, "Connection from ")); p++) n++;
    free(log);
    return n;
}

/* sshd logs a connection from its own process, a moment after the client may
 * already have its answer: wait (up to 10 s) until at least `min` are logged */
static int sshd_connections_at_least(const sshd_t *d, int min)
{
    double end = now_mono() + 10;
    int n;
    while ((n = sshd_connections(d)) < min && now_mono() < end) sleep_ms(20);
    return n;
}

/* the count once it has stayed the same for 300 ms */
static int sshd_connections_settled(const sshd_t *d)
{
    int n = sshd_connections(d), m;
    for (;;) {
        sleep_ms(300);
        if ((m = sshd_connections(d)) == n) return n;
        n = m;
    }
}

static void sshd_start(sshd_t *d, const char *name)
{
    sshd_prepare(d, name);
    sshd_start_ex(d, 0, 0);
}

static pid_t ppid_of(pid_t pid)
{
    char path[64], b[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return -1;
    b[n] = 0;
    char *p = strrchr(b, ')');
    int pp = -1;
    if (p && sscanf(p + 2, "%*c %d", &pp) == 1) return pp;
    return -1;
}

/* Kill sshd and every session process under it (like a host going away). */
static void kill_tree(pid_t pid)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        int p = atoi(e->d_name);
        if (p > 0 && ppid_of(p) == pid) kill_tree(p);
    }
    if (dir) closedir(dir);
    kill(pid, SIGKILL);
}

static void sshd_stop(sshd_t *d)
{
    if (d->pid <= 0) return;
    kill_tree(d->pid);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

static sshc_target target_of(const sshd_t *d)
{
    return (sshc_target){.host = "127.0.0.1", .port = d->port, .user = "root", .key_path = d->key,
                         .known_hosts = d->kh, .connect_timeout_s = 5};
}

static sshc *connect_ok(const sshd_t *d)
{
    char err[512] = "";
    enum sshc_err k;
    sshc_target t = target_of(d);
    sshc *c = sshc_connect(&t, &k, err, sizeof err);
    if (!c) test_fail(__FILE__, __LINE__, "connect (%s): %s", sshc_err_name(k), err);
    return c;
}

/* ---------------------------------------------------------------- app key, quoting */

TEST(ssh_app_key_created_once)
{
    char err[256] = "";
    char *data = xasprintf("%s/data", test_tmpdir());
    char *pub = sshc_app_key(data, err, sizeof err);
    ASSERT_NOT_NULL(pub);
    ASSERT_TRUE(str_starts(pub, "ssh-ed25519 AAAA"));
    ASSERT_NULL(strchr(pub, '\n'));
    char *dir = xasprintf("%s/ssh", data), *key = sshc_app_key_path(data);
    char *pubf = xasprintf("%s.pub", key);
    struct stat st;
    ASSERT_EQ(stat(dir, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    ASSERT_EQ(stat(key, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    char *pf = read_file(pubf, 4096, NULL);
    ASSERT_NOT_NULL(pf);
    ASSERT_TRUE(str_starts(pf, pub));
    char *priv = read_file(key, 8192, NULL);
    ASSERT_CONTAINS(priv, "PRIVATE KEY");
    /* idempotent: same key, mode tightened if loosened */
    chmod(key, 0644);
    char *pub2 = sshc_app_key(data, err, sizeof err);
    ASSERT_STR_EQ(pub2, pub);
    ASSERT_EQ(stat(key, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    char *priv2 = read_file(key, 8192, NULL);
    ASSERT_STR_EQ(priv2, priv);
    /* OpenSSH accepts it */
    char *cmd = xasprintf("ssh-keygen -y -f %s > %s/derived.pub", key, test_tmpdir());
    run_ok(cmd);
    free(cmd);
    /* errors */
    ASSERT_NULL(sshc_app_key("", err, sizeof err));
    ASSERT_NULL(sshc_app_key("/proc/nope", err, sizeof err));
    ASSERT_CONTAINS(err, "cannot create");
    free(data); free(pub); free(dir); free(key); free(pubf); free(pf); free(priv); free(pub2);
    free(priv2);
}

TEST(ssh_shell_quote_roundtrip)
{
    const char *cases[] = {"", "plain", "with space", "it's", "''", "$(id) `id` $HOME",
                           "a\nb", "\\ \" ; & | * ? ~ !", "--flag=x"};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *q = sshc_shell_quote(cases[i]);
        char *cmd = xasprintf("printf %%s %s", q);
        FILE *p = popen(cmd, "r");
        char out[256] = "";
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        pclose(p);
        ASSERT_STR_EQ(out, cases[i]);
        free(q);
        free(cmd);
    }
    char *q = sshc_shell_quote("it's");
    ASSERT_STR_EQ(q, "'it'\\''s'");
    free(q);
    ASSERT_STR_EQ(sshc_err_name(SSHC_ERR_HOSTKEY), "hostkey");
}

/* ---------------------------------------------------------------- connect, pinning, auth */

TEST(ssh_connect_tofu_and_changed_key)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    ASSERT_NE(access(d.kh, F_OK), 0);
    sshc *c = connect_ok(&d);
    sshc_close(c);
    char *kh = read_file(d.kh, 1 << 16, NULL);
    char *want = xasprintf("[127.0.0.1]:%d ssh-ed25519 AAAA", d.port);
    ASSERT_TRUE(str_starts(kh, want));
    struct stat st;
    ASSERT_EQ(stat(d.kh, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    c = connect_ok(&d); /* pinned: ok, file unchanged */
    sshc_close(c);
    char *kh2 = read_file(d.kh, 1 << 16, NULL);
    ASSERT_STR_EQ(kh2, kh);
    /* a pin under an alias */
    sshc_target t = target_of(&d);
    t.host_alias = "vast-123";
    char err[512] = "";
    enum sshc_err k;
    c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NOT_NULL(c);
    sshc_close(c);
    char *kh3 = read_file(d.kh, 1 << 16, NULL);
    ASSERT_CONTAINS(kh3, "\nvast-123 ssh-ed25519 AAAA");
    char *pn = sshc_pin_name(&t);
    ASSERT_STR_EQ(pn, "vast-123");
    free(pn);

    /* same address, new host key: refused, file untouched */
    sshd_stop(&d);
    char *rm = xasprintf("rm -f %s/host_ed25519*", d.dir);
    run_ok(rm);
    free(rm);
    sshd_prepare(&d, "sshd");
    int port = d.port;
    (void)port;
    sshd_start_ex(&d, 0, 0);
    /* re-point the pins at the new port so both names are known */
    char *fix = xasprintf("sed -i 's/^\\[127.0.0.1\\]:[0-9]*/[127.0.0.1]:%d/' %s", d.port, d.kh);
    run_ok(fix);
    free(fix);
    char *before = read_file(d.kh, 1 << 16, NULL);
    t = target_of(&d);
    c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_HOSTKEY);
    ASSERT_CONTAINS(err, "host key for [127.0.0.1]:");
    ASSERT_CONTAINS(err, "changed");
    ASSERT_CONTAINS(err, "SHA256:");
    t.host_alias = "vast-123";
    c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_HOSTKEY);
    /* connect_retry stops at once on a changed key: one connection, not retries */
    int conns = sshd_connections_settled(&d);
    c = sshc_connect_retry(&t, 10, 1, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_HOSTKEY);
    sshd_connections_at_least(&d, conns + 1);
    ASSERT_EQ(sshd_connections_settled(&d) - conns, 1);
    char *after = read_file(d.kh, 1 << 16, NULL);
    ASSERT_STR_EQ(after, before);
    /* forgetting the alias lets it pin again; the other name stays pinned */
    ASSERT_EQ(sshc_forget_host(d.kh, "vast-123", err, sizeof err), 0);
    char *kh4 = read_file(d.kh, 1 << 16, NULL);
    ASSERT_NOT_CONTAINS(kh4, "vast-123");
    ASSERT_CONTAINS(kh4, "[127.0.0.1]:");
    c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NOT_NULL(c);
    sshc_close(c);
    sshd_stop(&d);
    free(kh); free(kh2); free(kh3); free(kh4); free(want); free(before); free(after);
}

TEST(ssh_auth_and_connect_errors)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    char err[512] = "";
    enum sshc_err k;
    /* a key the server does not know */
    char *other = xasprintf("%s/other", test_tmpdir());
    char *pub = sshc_app_key(other, err, sizeof err);
    ASSERT_NOT_NULL(pub);
    char *okey = sshc_app_key_path(other);
    sshc_target t = target_of(&d);
    t.key_path = okey;
    sshc *c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_AUTH);
    ASSERT_CONTAINS(err, "refused our key");
    /* without retry_auth, connect_retry gives up at once: one connection */
    sshd_connections_at_least(&d, 1);
    int conns = sshd_connections_settled(&d);
    c = sshc_connect_retry(&t, 10, 0, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_AUTH);
    sshd_connections_at_least(&d, conns + 1);
    ASSERT_EQ(sshd_connections_settled(&d) - conns, 1);
    /* with retry_auth it keeps trying until the deadline */
    conns = sshd_connections_settled(&d);
    double t0 = now_mono();
    c = sshc_connect_retry(&t, 1.0, 1, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_AUTH);
    ASSERT_TRUE(now_mono() - t0 >= 0.9); /* a lower bound: a loaded machine only adds to it */
    ASSERT_TRUE(sshd_connections_at_least(&d, conns + 2) - conns >= 2);
    /* missing key file */
    t.key_path = "/nonexistent/key";
    c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_IO);
    /* nothing listening */
    t = target_of(&d);
    t.port = free_port();
    c = sshc_connect(&t, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_CONNECT);
    ASSERT_CONTAINS(err, "cannot connect");
    sshd_stop(&d);
    free(other); free(pub); free(okey);
}

TEST(ssh_connect_retry_waits_for_sshd)
{
    need_sshd();
    sshd_t d;
    sshd_prepare(&d, "sshd");
    d.port = free_port();
    double t0 = now_mono();
    sshd_start_ex(&d, 1, 1200); /* comes up after 1.2 s */
    char err[512] = "";
    enum sshc_err k;
    sshc_target t = target_of(&d);
    sshc *c = sshc_connect_retry(&t, 15, 0, &k, err, sizeof err);
    if (!c) test_fail(__FILE__, __LINE__, "connect_retry: %s", err);
    ASSERT_TRUE(now_mono() - t0 >= 1.1); /* it waited for sshd (lower bounds only) */
    int st = -1;
    ASSERT_EQ(sshc_exec(c, "true", NULL, 0, NULL, NULL, 5, &st, err, sizeof err), 0);
    ASSERT_EQ(st, 0);
    sshc_close(c);
    /* a deadline that passes first */
    t.port = free_port();
    c = sshc_connect_retry(&t, 0.8, 0, &k, err, sizeof err);
    ASSERT_NULL(c);
    ASSERT_EQ(k, SSHC_ERR_CONNECT);
    sshd_stop(&d);
}

/* ---------------------------------------------------------------- exec */

struct lines { buf out, err; int n_out, n_err; };

static void on_line(void *ud, int is_stderr, const char *line)
{
    struct lines *l = ud;
    buf *b = is_stderr ? &l->err : &l->out;
    if (buf_append(b, line, strlen(line)) != 0 || buf_append(b, "|", 1) != 0) abort();
    if (is_stderr) l->n_err++;
    else l->n_out++;
}

TEST(ssh_exec_lines_status_stdin_timeout)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    sshc *c = connect_ok(&d);
    char err[512] = "";
    struct lines l;
    memset(&l, 0, sizeof l);
    buf_init(&l.out, 0);
    buf_init(&l.err, 0);
    int st = -1;
    int rc = sshc_exec(c, "echo one; echo two; echo oops >&2; printf 'last'; exit 3", NULL, 0,
                       on_line, &l, 10, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 3);
    ASSERT_STR_EQ(l.out.data, "one|two|last|");
    ASSERT_STR_EQ(l.err.data, "oops|");
    /* stdin */
    buf_release(&l.out); buf_release(&l.err);
    memset(&l, 0, sizeof l);
    buf_init(&l.out, 0);
    buf_init(&l.err, 0);
    size_t big = 3u << 20;
    char *in = xmalloc(big);
    for (size_t i = 0; i < big; i++) in[i] = (char)('a' + i % 26);
    rc = sshc_exec(c, "wc -c; head -c 5 /dev/null", in, big, on_line, &l, 20, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 0);
    ASSERT_STR_EQ(l.out.data, "3145728|");
    char *out = NULL, *eout = NULL;
    rc = sshc_exec_capture(c, "cat; echo E >&2", "hello\nworld", 11, 1 << 20, &out, &eout, 10,
                           &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(out, "hello\nworld");
    ASSERT_STR_EQ(eout, "E\n");
    free(out); free(eout);
    /* many lines, in order */
    buf_release(&l.out); buf_release(&l.err);
    memset(&l, 0, sizeof l);
    buf_init(&l.out, 0);
    buf_init(&l.err, 0);
    rc = sshc_exec(c, "seq 1 50000", NULL, 0, on_line, &l, 20, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(l.n_out, 50000);
    ASSERT_TRUE(str_starts(l.out.data, "1|2|3|"));
    /* stdin closed when none is given (cat ends) */
    rc = sshc_exec(c, "cat", NULL, 0, NULL, NULL, 5, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 0);
    /* killed by a signal */
    rc = sshc_exec(c, "kill -9 $$", NULL, 0, NULL, NULL, 5, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 128 + 9);
    /* timeout: a timed-out result, and the session stays usable */
    rc = sshc_exec(c, "sleep 30", NULL, 0, NULL, NULL, 1, &st, err, sizeof err);
    ASSERT_EQ(rc, SSHC_ERR_TIMEOUT);
    ASSERT_CONTAINS(err, "timed out");
    rc = sshc_exec(c, "echo still", NULL, 0, NULL, NULL, 30, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(st, 0);
    /* quoting through the remote shell */
    char *q = sshc_shell_quote("it's $(id) `x` a  b");
    char *cmd = xasprintf("printf %%s %s", q);
    rc = sshc_exec_capture(c, cmd, NULL, 0, 4096, &out, NULL, 5, &st, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(out, "it's $(id) `x` a  b");
    free(out); free(q); free(cmd);
    /* the session broke under us */
    sshd_stop(&d);
    rc = sshc_exec(c, "true", NULL, 0, NULL, NULL, 5, &st, err, sizeof err);
    ASSERT_TRUE(rc == SSHC_ERR_IO || rc == SSHC_ERR_REMOTE);
    sshc_close(c);
    buf_release(&l.out); buf_release(&l.err);
    free(in);
}

/* ---------------------------------------------------------------- upload */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

TEST(ssh_upload_atomic_mode)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    sshc *c = connect_ok(&d);
    char err[512] = "";
    size_t n = 3u << 20;
    unsigned char *data = xmalloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; data[i] = (unsigned char)(x >> 16); }
    char *local = xasprintf("%s/local.bin", test_tmpdir());
    ASSERT_EQ(write_file_atomic(local, data, n, 0644), 0);
    char *remote = xasprintf("%s/remote/up.bin", test_tmpdir());
    char *rdir = xasprintf("%s/remote", test_tmpdir());
    mkdir_p(rdir, 0755);
    ASSERT_EQ(sshc_upload(c, local, remote, 0640, err, sizeof err), 0);
    size_t got = 0;
    char *back = read_file(remote, n + 1, &got);
    ASSERT_EQ(got, n);
    ASSERT_TRUE(memcmp(back, data, n) == 0);
    struct stat st;
    ASSERT_EQ(stat(remote, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0640);
    char *tmp = xasprintf("%s.tmp", remote);
    ASSERT_NE(access(tmp, F_OK), 0);
    /* overwrite with data (rename replaces), executable mode */
    const char *script = "#!/bin/sh\necho hi\n";
    ASSERT_EQ(sshc_upload_data(c, script, strlen(script), remote, 0755, err, sizeof err), 0);
    char *b2 = read_file(remote, 1 << 20, NULL);
    ASSERT_STR_EQ(b2, script);
    ASSERT_EQ(stat(remote, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0755);
    ASSERT_NE(access(tmp, F_OK), 0);
    int es = -1;
    char *cmd = xasprintf("%s", remote);
    char *out = NULL;
    ASSERT_EQ(sshc_exec_capture(c, cmd, NULL, 0, 100, &out, NULL, 5, &es, err, sizeof err), 0);
    ASSERT_STR_EQ(out, "hi\n");
    /* empty data */
    ASSERT_EQ(sshc_upload_data(c, NULL, 0, remote, 0600, err, sizeof err), 0);
    ASSERT_EQ(stat(remote, &st), 0);
    ASSERT_EQ(st.st_size, 0);
    /* errors: missing remote dir, missing local file */
    char *bad = xasprintf("%s/nope/x", test_tmpdir());
    int rc = sshc_upload_data(c, "x", 1, bad, 0600, err, sizeof err);
    ASSERT_EQ(rc, SSHC_ERR_REMOTE);
    ASSERT_CONTAINS(err, "no such file");
    rc = sshc_upload(c, "/nonexistent/file", remote, 0600, err, sizeof err);
    ASSERT_EQ(rc, SSHC_ERR_IO);
    /* the session still works after sftp errors */
    ASSERT_EQ(sshc_upload_data(c, "ok", 2, remote, 0600, err, sizeof err), 0);
    sshc_close(c);
    sshd_stop(&d);
    free(data); free(local); free(remote); free(rdir); free(back); free(tmp); free(b2); free(cmd);
    free(out); free(bad);
}

/* ---------------------------------------------------------------- tunnel helpers */

typedef struct pyhttp { pid_t pid; int port; char dir[512]; } pyhttp;

static void py_start(pyhttp *p)
{
    snprintf(p->dir, sizeof p->dir, "%s/www", test_tmpdir());
    mkdir_p(p->dir, 0755);
    char *h = xasprintf("%s/health.json", p->dir);
    write_file_atomic(h, "{\"ok\":true}\n", 12, 0644);
    free(h);
    for (int attempt = 0; attempt < 5; attempt++) {
        p->port = free_port();
        char *cmd = xasprintf("exec python3 -m http.server %d --bind 127.0.0.1 --directory %s",
                              p->port, p->dir);
        char *log = xasprintf("%s/py.log", test_tmpdir());
        p->pid = spawn(cmd, log);
        free(cmd);
        free(log);
        for (int i = 0; i < 500; i++) {
            if (port_open(p->port)) return;
            if (waitpid(p->pid, NULL, WNOHANG) == p->pid) break;
            sleep_ms(10);
        }
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    test_fail(__FILE__, __LINE__, "python http.server did not start");
}

static void py_stop(pyhttp *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = 0;
}

struct dl { uint64_t h; size_t n; };

static size_t dl_cb(char *ptr, size_t sz, size_t nm, void *ud)
{
    struct dl *d = ud;
    d->h = fnv(ptr, sz * nm, d->h);
    d->n += sz * nm;
    return sz * nm;
}

/* GET through the tunnel; returns the HTTP status (0 on transport error). */
static long http_get(int port, const char *path, struct dl *d)
{
    CURL *h = curl_easy_init();
    char *url = xasprintf("http://127.0.0.1:%d%s", port, path);
    d->h = 1469598103934665603ULL;
    d->n = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    free(url);
    return code;
}

static void wait_state(tunnel *tn, enum tunnel_state want, double secs, int line)
{
    double end = now_mono() + secs;
    tunnel_status st;
    for (;;) {
        tunnel_get_status(tn, &st);
        if (st.state == want) return;
        if (now_mono() > end)
            test_fail(__FILE__, line, "tunnel state %s, want %s (last error: %s)", st.state_name,
                      tunnel_state_name(want), st.last_error);
        sleep_ms(20);
    }
}

/* echo server on the "remote" side: each connection echoes until EOF, then closes */
struct echo_srv { int lfd, port; pthread_t th; };

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char b[65536];
    for (;;) {
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0) break;
        for (ssize_t o = 0; o < n;) {
            ssize_t w = write(fd, b + o, (size_t)(n - o));
            if (w <= 0) goto done;
            o += w;
        }
    }
done:
    close(fd);
    return NULL;
}

static void *echo_main(void *arg)
{
    struct echo_srv *e = arg;
    pthread_t th[64];
    int n = 0;
    for (;;) {
        int fd = accept(e->lfd, NULL, NULL);
        if (fd < 0) break;
        if (n == 64 || pthread_create(&th[n], NULL, echo_conn, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        n++;
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    return NULL;
}

static void echo_start(struct echo_srv *e)
{
    e->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    bind(e->lfd, (struct sockaddr *)&sa, sizeof sa);
    listen(e->lfd, 64);
    getsockname(e->lfd, (struct sockaddr *)&sa, &sl);
    e->port = ntohs(sa.sin_port);
    pthread_create(&e->th, NULL, echo_main, e);
}

static void echo_stop(struct echo_srv *e)
{
    shutdown(e->lfd, SHUT_RDWR);
    close(e->lfd);
    pthread_join(e->th, NULL);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* send n pseudo-random bytes, half-close, read everything back; 0 when identical */
static int echo_roundtrip(int port, size_t n)
{
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    uint64_t hs = 1469598103934665603ULL, hr = hs;
    size_t sent = 0, got = 0;
    char b[65536];
    uint32_t x = 7;
    char pendb[65536];
    size_t pend = 0, poff = 0;
    int shut = 0;
    double end = now_mono() + 30;
    for (;;) {
        if (now_mono() > end) { close(fd); return -2; }
        if (!pend && sent < n) {
            size_t k = n - sent < sizeof pendb ? n - sent : sizeof pendb;
            for (size_t i = 0; i < k; i++) { x = x * 1103515245u + 12345u; pendb[i] = (char)(x >> 16); }
            hs = fnv(pendb, k, hs);
            pend = k;
            poff = 0;
        }
        if (!pend && sent == n && !shut) { shutdown(fd, SHUT_WR); shut = 1; }
        struct pollfd p = {fd, (short)(POLLIN | (pend ? POLLOUT : 0)), 0};
        poll(&p, 1, 1000);
        if (pend && (p.revents & POLLOUT)) {
            ssize_t w = write(fd, pendb + poff, pend);
            if (w > 0) { poff += (size_t)w; pend -= (size_t)w; sent += (size_t)w; }
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t r = read(fd, b, sizeof b);
            if (r > 0) { hr = fnv(b, (size_t)r, hr); got += (size_t)r; }
            else if (r == 0) break;
            else if (errno != EAGAIN) { close(fd); return -3; }
        }
    }
    close(fd);
    return (got == n && hs == hr) ? 0 : -4;
}

struct par { int port; int ok; };

static void *par_get(void *arg)
{
    struct par *p = arg;
    p->ok = 1;
    for (int i = 0; i < 15; i++) {
        struct dl d;
        if (http_get(p->port, "/health.json", &d) != 200 || d.n != 12) p->ok = 0;
    }
    return NULL;
}

/* ---------------------------------------------------------------- tunnel tests */

TEST(ssh_tunnel_forwarding)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    pyhttp py;
    py_start(&py);
    /* 50 MB body */
    size_t n = 50u << 20;
    char *big = xmalloc(n);
    uint32_t x = 99;
    for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; big[i] = (char)(x >> 16); }
    char *bp = xasprintf("%s/big.bin", py.dir);
    write_file_atomic(bp, big, n, 0644);
    uint64_t want = fnv(big, n, 1469598103934665603ULL);
    free(big);
    free(bp);

    char err[512] = "";
    sshc_target t = target_of(&d);
    tunnel *tn = tunnel_start(&t, py.port, "/health.json", 0.5, err, sizeof err);
    if (!tn) test_fail(__FILE__, __LINE__, "tunnel_start: %s", err);
    tunnel_status st;
    tunnel_get_status(tn, &st);
    ASSERT_EQ(st.state, TUNNEL_UP);
    ASSERT_STR_EQ(st.state_name, "up");
    ASSERT_TRUE(st.rtt_ms > 0 && st.rtt_ms < 1000);
    ASSERT_EQ(st.reconnects, 0);
    ASSERT_EQ(st.local_port, tunnel_local_port(tn));
    ASSERT_TRUE(st.local_port > 0);
    ASSERT_TRUE(st.since > 1e9);
    int port = tunnel_local_port(tn);

    struct dl dd;
    ASSERT_EQ(http_get(port, "/health.json", &dd), 200);
    ASSERT_EQ(dd.n, 12);
    ASSERT_EQ(http_get(port, "/missing", &dd), 404);
    ASSERT_EQ(http_get(port, "/big.bin", &dd), 200);
    ASSERT_EQ(dd.n, n);
    ASSERT_TRUE(dd.h == want);

    /* concurrent clients */
    pthread_t th[8];
    struct par ps[8];
    for (int i = 0; i < 8; i++) {
        ps[i].port = port;
        pthread_create(&th[i], NULL, par_get, &ps[i]);
    }
    struct dl d2;
    ASSERT_EQ(http_get(port, "/big.bin", &d2), 200); /* one big transfer alongside */
    ASSERT_TRUE(d2.h == want);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ASSERT_TRUE(ps[i].ok);
    }
    tunnel_get_status(tn, &st);
    ASSERT_EQ(st.state, TUNNEL_UP);
    tunnel_stop(tn);
    ASSERT_FALSE(port_open(port)); /* listener gone */

    /* remote port with nothing behind it: up over ssh, but degraded */
    tn = tunnel_start(&t, free_port(), "/health", 0.5, err, sizeof err);
    ASSERT_NOT_NULL(tn);
    tunnel_get_status(tn, &st);
    ASSERT_EQ(st.state, TUNNEL_DEGRADED);
    ASSERT_CONTAINS(st.last_error, "health check");
    tunnel_stop(tn);
    /* bad host key file path / nothing listening: start fails with the reason */
    sshc_target t2 = t;
    t2.port = free_port();
    ASSERT_NULL(tunnel_start(&t2, py.port, "/health.json", 1, err, sizeof err));
    ASSERT_CONTAINS(err, "cannot connect");
    py_stop(&py);
    sshd_stop(&d);
}

TEST(ssh_tunnel_echo_halfclose_parallel)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    struct echo_srv e;
    echo_start(&e);
    char err[512] = "";
    sshc_target t = target_of(&d);
    tunnel *tn = tunnel_start(&t, e.port, NULL, 1, err, sizeof err);
    if (!tn) test_fail(__FILE__, __LINE__, "tunnel_start: %s", err);
    tunnel_status st;
    tunnel_get_status(tn, &st);
    ASSERT_EQ(st.state, TUNNEL_UP);
    int port = tunnel_local_port(tn);
    ASSERT_EQ(echo_roundtrip(port, 1), 0);
    ASSERT_EQ(echo_roundtrip(port, 20u << 20), 0);
    /* several at once, both directions busy */
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = tcp_connect(port);
        ASSERT_TRUE(fds[i] >= 0);
    }
    for (int i = 0; i < 6; i++) {
        char msg[32];
        int l = snprintf(msg, sizeof msg, "conn %d", i);
        ASSERT_EQ(write(fds[i], msg, (size_t)l), l);
        shutdown(fds[i], SHUT_WR);
    }
    for (int i = 5; i >= 0; i--) {
        char b[64], msg[32];
        int l = snprintf(msg, sizeof msg, "conn %d", i);
        size_t got = 0;
        for (;;) {
            ssize_t r = read(fds[i], b + got, sizeof b - 1 - got);
            if (r <= 0) break;
            got += (size_t)r;
        }
        b[got] = 0;
        ASSERT_EQ(got, (size_t)l);
        ASSERT_STR_EQ(b, msg);
        close(fds[i]);
    }
    tunnel_stop(tn);
    echo_stop(&e);
    sshd_stop(&d);
}

struct changes { pthread_mutex_t mu; char seq[512]; };

static void on_change(void *ud, const tunnel_status *st)
{
    struct changes *c = ud;
    pthread_mutex_lock(&c->mu);
    size_t l = strlen(c->seq);
    snprintf(c->seq + l, sizeof c->seq - l, "%s,", st->state_name);
    pthread_mutex_unlock(&c->mu);
}

TEST(ssh_tunnel_reconnects_after_sshd_restart)
{
    need_sshd();
    sshd_t d;
    sshd_start(&d, "sshd");
    pyhttp py;
    py_start(&py);
    struct echo_srv e;
    echo_start(&e);
    char err[512] = "";
    sshc_target t = target_of(&d);
    tunnel *tn = tunnel_start(&t, py.port, "/health.json", 0.5, err, sizeof err);
    if (!tn) test_fail(__FILE__, __LINE__, "tunnel_start: %s", err);
    struct changes ch;
    memset(&ch, 0, sizeof ch);
    pthread_mutex_init(&ch.mu, NULL);
    tunnel_on_change(tn, on_change, &ch);
    int port = tunnel_local_port(tn);
    struct dl dd;
    ASSERT_EQ(http_get(port, "/health.json", &dd), 200);
    /* an open forwarded connection that will be cut */
    tunnel *te = tunnel_start(&t, e.port, NULL, 0.5, err, sizeof err);
    ASSERT_NOT_NULL(te);
    int efd = tcp_connect(tunnel_local_port(te));
    ASSERT_TRUE(efd >= 0);
    ASSERT_EQ(write(efd, "x", 1), 1);
    char b[16];
    ASSERT_EQ(read(efd, b, 1), 1);

    sshd_stop(&d); /* the host goes away, sessions included */
    wait_state(tn, TUNNEL_RECONNECTING, 5, __LINE__);
    struct pollfd p = {efd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    ASSERT_TRUE(read(efd, b, sizeof b) <= 0); /* the client saw the connection close */
    close(efd);
    tunnel_status st;
    tunnel_get_status(tn, &st);
    ASSERT_CONTAINS(st.last_error, "ssh session lost");
    ASSERT_EQ(http_get(port, "/health.json", &dd), 0); /* refused while down */
    sleep_ms(1500);

    sshd_start_ex(&d, 1, 0); /* same port, same host key */
    /* back up within 5 s (bench/tunnel.sh measures how soon) */
    wait_state(tn, TUNNEL_UP, 5, __LINE__);
    tunnel_get_status(tn, &st);
    ASSERT_EQ(st.reconnects, 1);
    ASSERT_EQ(st.local_port, port);
    ASSERT_EQ(http_get(port, "/health.json", &dd), 200);
    wait_state(te, TUNNEL_UP, 5, __LINE__);
    ASSERT_EQ(echo_roundtrip(tunnel_local_port(te), 100000), 0);
    sleep_ms(100);
    pthread_mutex_lock(&ch.mu);
    ASSERT_CONTAINS(ch.seq, "reconnecting,up,");
    pthread_mutex_unlock(&ch.mu);
    tunnel_stop(te);
    tunnel_stop(tn);
    pthread_mutex_destroy(&ch.mu);
    echo_stop(&e);
    py_stop(&py);
    sshd_stop(&d);
}
