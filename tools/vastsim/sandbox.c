/* sandbox: what makes an emulated instance real.
 *
 * With isolation (root and unshare() works): a holder process per instance sits in its own
 * network + mount namespace (lo up, mounts private, <dir>/workspace bind-mounted on /workspace
 * and <dir>/root on /root). For every TCP connection accepted on the instance's host loopback
 * SSH port, the network thread forks a child that setns()es into both namespaces and execs
 * `/usr/sbin/sshd -i -e -f <dir>/sshd_config` with the socket as stdin/stdout, so sessions and
 * whatever they start (and the ports they listen on) live inside the instance. A listener on
 * 127.0.0.1:<API port> is opened inside each netns (from a thread that setns()es) and its
 * connections are handed to libmicrohttpd, so code inside reaches VAST_URL unchanged.
 * Environment of sessions: sshd `SetEnv` in the per-instance config carries CONTAINER_API_KEY,
 * CONTAINER_ID, VAST_CONTAINERLABEL, VAST_TCP_PORT_22, PUBLIC_IPADDR, VASTSIM_TAG and the
 * instance's env dict (entries whose key is a shell name); onstart gets the same environment.
 *
 * Images (--image NAME=ROOT): an instance whose image is NAME runs in its own root. The holder
 * mounts an overlay (lower: ROOT, read-only and shared by every instance; upper and work dirs
 * in <dir>, so writes stay private to the instance) on <dir>/rootfs, binds /workspace, /root
 * and <dir> itself (sshd's config and keys, at the same path) into it, gives it a /proc, a
 * tmpfs /dev of its own (null, zero, full, random, urandom, tty made with mknod, a private
 * devpts, /dev/shm: nothing of the host's /dev is reachable from inside) and pivot_root()s
 * into it, so that every process that setns()es into the instance's mount namespace gets that
 * root: the image's /bin/sh, /usr/sbin/sshd and libraries, none of the host's.
 *
 * Chroot check: setns() into a mount namespace sets the caller's root to the namespace's root,
 * not to a chroot the caller was in; vastsim run inside a chroot would then start instance
 * processes in the host's real root. sandbox_probe detects that (its own root is not its
 * namespace's) and turns isolation off, saying why, rather than touch the host.
 *
 * Without isolation the same per-connection sshd runs without setns, as the current user,
 * with the instance directory as its home-like place; processes are found by VASTSIM_TAG.
 *
 * Process sweeps: every process whose /proc/PID/ns/net or ns/mnt is the instance's, or whose
 * environment carries the instance's VASTSIM_TAG, is SIGKILLed, repeatedly until none is left.
 */
#define _GNU_SOURCE
#include "sim.h"

#include "core/log.h"
#include "core/util.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define SSHD_PATH "/usr/sbin/sshd"
#define SSH_KEYGEN "/usr/bin/ssh-keygen"
#define CHILD_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- connection source table (fd -> instance id) ---- */

#define SRC_MAX 65536
static _Atomic long g_src[SRC_MAX];

void conn_source_set(int fd, long inst)
{
    if (fd >= 0 && fd < SRC_MAX) atomic_store(&g_src[fd], inst);
}

long conn_source_take(int fd)
{
    if (fd < 0 || fd >= SRC_MAX) return 0;
    return atomic_exchange(&g_src[fd], 0);
}

/* ---- small helpers ---- */

void net_wake(void)
{
    char c = 1;
    ssize_t w = write(g_sim.wake_fd[1], &c, 1);
    (void)w;
}

void net_close_later(int fd)
{
    if (fd < 0) return;
    if (g_sim.n_dead == g_sim.cap_dead) {
        g_sim.cap_dead = g_sim.cap_dead ? g_sim.cap_dead * 2 : 16;
        g_sim.dead_fds = xrealloc(g_sim.dead_fds, g_sim.cap_dead * sizeof *g_sim.dead_fds);
    }
    g_sim.dead_fds[g_sim.n_dead++] = fd;
    net_wake();
}

static void ssh_pid_add(pid_t pid, long inst)
{
    if (g_sim.n_ssh == g_sim.cap_ssh) {
        g_sim.cap_ssh = g_sim.cap_ssh ? g_sim.cap_ssh * 2 : 16;
        g_sim.ssh_pids = xrealloc(g_sim.ssh_pids, g_sim.cap_ssh * sizeof *g_sim.ssh_pids);
        g_sim.ssh_pid_inst = xrealloc(g_sim.ssh_pid_inst, g_sim.cap_ssh * sizeof *g_sim.ssh_pid_inst);
    }
    g_sim.ssh_pids[g_sim.n_ssh] = pid;
    g_sim.ssh_pid_inst[g_sim.n_ssh++] = inst;
}

static void ssh_pid_del(pid_t pid)
{
    for (size_t i = 0; i < g_sim.n_ssh; i++) {
        if (g_sim.ssh_pids[i] == pid) {
            g_sim.ssh_pids[i] = g_sim.ssh_pids[g_sim.n_ssh - 1];
            g_sim.ssh_pid_inst[i] = g_sim.ssh_pid_inst[g_sim.n_ssh - 1];
            g_sim.n_ssh--;
            return;
        }
    }
}

/* In a forked child: undo what the emulator set for itself. Async-signal-safe. */
static void child_reset_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
}

/* Fork + exec argv, output to /dev/null, wait. Returns the exit status or -1. */
static int run_wait(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        child_reset_signals();
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) { dup2(dn, 0); dup2(dn, 1); dup2(dn, 2); }
        close_range(3, ~0U, 0);
        char *envp[] = {CHILD_PATH, NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static ino_t self_ns_ino(const char *which)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/ns/%s", which);
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* ---- probe ---- */

/* 1 when this process's root is not the root of its mount namespace (a chroot): a child
 * enters its own mount namespace (setns() sets its root to the namespace's) and compares;
 * 0 when it is; -1 when it cannot tell (no /proc, say), which counts as a chroot. */
static int in_chroot(void)
{
    struct stat before;
    if (stat("/", &before) < 0) return -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        child_reset_signals();
        char r = 'e';
        int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        struct stat after;
        if (fd >= 0 && setns(fd, CLONE_NEWNS) == 0 && stat("/", &after) == 0)
            r = after.st_dev == before.st_dev && after.st_ino == before.st_ino ? 'n' : 'y';
        ssize_t w = write(p[1], &r, 1);
        (void)w;
        _exit(0);
    }
    close(p[1]);
    char r = 'e';
    if (pid > 0) {
        ssize_t n = read(p[0], &r, 1);
        (void)n;
        waitpid(pid, NULL, 0);
    }
    close(p[0]);
    return r == 'y' ? 1 : r == 'n' ? 0 : -1;
}

void sandbox_probe(void)
{
    struct passwd *pw = getpwuid(geteuid());
    g_sim.ssh_user = xstrdup(pw ? pw->pw_name : "root");
    if (access(SSHD_PATH, X_OK) < 0)
        LOG_E(SIM_TAG, "%s is missing: instances will refuse SSH (install openssh-server)", SSHD_PATH);
    if (geteuid() != 0) {
        g_sim.isolation = false;
        g_sim.isolation_reason = xstrdup("not running as root");
    } else if (!g_sim.isolation) {
        if (!g_sim.isolation_reason) g_sim.isolation_reason = xstrdup("disabled with --isolation off");
    } else {
        pid_t pid = fork();
        if (pid == 0) {
            child_reset_signals();
            _exit(unshare(CLONE_NEWNET | CLONE_NEWNS) < 0 ? 1 : 0);
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            g_sim.isolation = false;
            g_sim.isolation_reason = xstrdup("unshare(CLONE_NEWNET|CLONE_NEWNS) failed");
        } else {
            int c = in_chroot();
            if (c != 0) {
                g_sim.isolation = false;
                g_sim.isolation_reason = xstrdup(
                    c > 0 ? "vastsim runs inside a chroot: entering an instance's mount namespace "
                            "would land in this machine's real root, not the chroot (use "
                            "pivot_root or a container)"
                          : "cannot tell whether vastsim runs inside a chroot (is /proc "
                            "mounted?): entering instance namespaces could land in this "
                            "machine's real root");
                LOG_E(SIM_TAG, "refusing namespace isolation: %s", g_sim.isolation_reason);
            }
        }
    }
    if (g_sim.isolation) {
        if (mkdir("/workspace", 0755) < 0 && errno != EEXIST) {
            g_sim.isolation = false;
            g_sim.isolation_reason = xasprintf("cannot create the /workspace mount point: %s", strerror(errno));
        }
    }
    if (geteuid() == 0 && mkdir("/run/sshd", 0755) < 0 && errno != EEXIST)
        LOG_W(SIM_TAG, "cannot create /run/sshd: %s", strerror(errno));
    if (g_sim.isolation) {
        LOG_I(SIM_TAG, "isolation on: each instance gets its own network and mount namespace");
    } else {
        LOG_W(SIM_TAG, "isolation OFF (%s): instances share this machine's network and files; "
              "SSH logs in as %s via an unprivileged per-instance sshd", g_sim.isolation_reason,
              g_sim.ssh_user);
    }
}

/* ---- listeners ---- */

static int listen_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int sandbox_listen_ssh(instance *in)
{
    int fd = listen_loopback(0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    in->ssh_fd = fd;
    in->ssh_port = ntohs(a.sin_port);
    net_wake();
    return 0;
}

struct ns_listen {
    int netns_fd, port, fd, err;
};

static void *ns_listen_thread(void *arg)
{
    struct ns_listen *r = arg;
    if (setns(r->netns_fd, CLONE_NEWNET) < 0) {
        r->err = errno;
        return NULL;
    }
    r->fd = listen_loopback(r->port);
    if (r->fd < 0) r->err = errno;
    return NULL;
}

/* ---- files ---- */

static bool env_name_ok(const char *k)
{
    if (!*k || !((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_')) return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* The environment every process of the instance gets, as NAME=VALUE strings (json array). */
static json_t *instance_env(const instance *in)
{
    json_t *e = json_array();
    json_array_append_new(e, json_sprintf("CONTAINER_API_KEY=%s", in->api_key));
    json_array_append_new(e, json_sprintf("CONTAINER_ID=%ld", in->id));
    json_array_append_new(e, json_sprintf("VAST_CONTAINERLABEL=C.%ld", in->id));
    json_array_append_new(e, json_sprintf("VAST_TCP_PORT_22=%d", in->ssh_port));
    json_array_append_new(e, json_string("PUBLIC_IPADDR=127.0.0.1"));
    json_array_append_new(e, json_sprintf("VASTSIM_TAG=%s", in->tag));
    const char *k;
    json_t *v;
    json_object_foreach(in->env, k, v) {
        if (!env_name_ok(k)) continue;
        const char *s = json_string_value(v);
        if (!s) continue;
        json_array_append_new(e, json_sprintf("%s=%s", k, s));
    }
    return e;
}

static int write_text(const char *path, const char *text, unsigned mode)
{
    return write_file_atomic(path, text, strlen(text), mode);
}

static void write_config(instance *in)
{
    buf b;
    buf_init(&b, 0);
    buf_appendf(&b,
                "# vastsim instance %ld (generated)\n"
                "HostKey %s/ssh_host_ed25519_key\n"
                "AuthorizedKeysFile %s/authorized_keys\n"
                "PidFile none\n"
                "PermitRootLogin prohibit-password\n"
                "PubkeyAuthentication yes\n"
                "PasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\n"
                "UsePAM no\n"
                "StrictModes no\n"
                "AllowTcpForwarding yes\n"
                "AllowStreamLocalForwarding yes\n"
                "AllowAgentForwarding yes\n"
                "X11Forwarding no\n"
                "PrintMotd no\n"
                "UseDNS no\n"
                "LogLevel INFO\n"
                "Subsystem sftp internal-sftp\n",
                in->id, in->dir, in->dir);
    json_t *env = instance_env(in);
    buf_appendf(&b, "SetEnv");
    buf envfile;
    buf_init(&envfile, 0);
    size_t i;
    json_t *v;
    json_array_foreach(env, i, v) {
        const char *s = json_string_value(v);
        if (strpbrk(s, "\r\n")) {
            LOG_W(SIM_TAG, "instance %ld: env entry with a newline left out of SSH sessions", in->id);
            continue;
        }
        buf_appendf(&b, " \"");
        for (const char *p = s; *p; p++) {
            if (*p == '"' || *p == '\\') buf_appendf(&b, "\\");
            buf_appendf(&b, "%c", *p);
        }
        buf_appendf(&b, "\"");
        /* the same, shell-quoted, for people and scripts that want to source it */
        const char *eq = strchr(s, '=');
        buf_appendf(&envfile, "export %.*s='", (int)(eq - s), s);
        for (const char *p = eq + 1; *p; p++) {
            if (*p == '\'') buf_appendf(&envfile, "'\\''");
            else buf_appendf(&envfile, "%c", *p);
        }
        buf_appendf(&envfile, "'\n");
    }
    buf_appendf(&b, "\n");
    json_decref(env);
    char *path = xasprintf("%s/sshd_config", in->dir);
    if (write_text(path, b.data, 0600) < 0) LOG_E(SIM_TAG, "cannot write %s: %s", path, strerror(errno));
    free(path);
    path = xasprintf("%s/environment", in->dir);
    if (write_text(path, envfile.data ? envfile.data : "", 0600) < 0)
        LOG_E(SIM_TAG, "cannot write %s: %s", path, strerror(errno));
    free(path);
    buf_release(&envfile);
    buf_release(&b);
}

void sandbox_write_keys(instance *in)
{
    if (!in->dir) return;
    buf b;
    buf_init(&b, 0);
    buf_appendf(&b, "%s", "");
    for (ssh_key *k = g_sim.live_account_keys ? g_sim.account_keys : in->account_keys; k; k = k->next)
        buf_appendf(&b, "%s\n", k->public_key);
    for (ssh_key *k = in->keys; k; k = k->next) buf_appendf(&b, "%s\n", k->public_key);
    char *path = xasprintf("%s/authorized_keys", in->dir);
    if (write_text(path, b.data, 0600) < 0) LOG_E(SIM_TAG, "cannot write %s: %s", path, strerror(errno));
    free(path);
    buf_release(&b);
    write_config(in);
}

/* ---- the namespace holder ---- */

struct holder_status {
    int step, err;
};

static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc;
}

/* In the holder, after its mounts went private: the instance's own root from its image
 * (see the header). 0, or the failed step (errno set). Not async-signal-safe-critical: the
 * holder is a fresh single-threaded child that allocates nothing here. */
enum { IMG_OK, IMG_DIRS, IMG_OVERLAY, IMG_BINDS, IMG_PROC, IMG_DEV, IMG_PIVOT };

/* out = a followed by b; -1 (ENAMETOOLONG) when it does not fit */
static int pjoin(char *out, size_t n, const char *a, const char *b)
{
    int k = snprintf(out, n, "%s%s", a, b);
    if (k < 0 || (size_t)k >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static int mkdir_in(const char *root, const char *sub, unsigned mode, char *path, size_t n)
{
    if (pjoin(path, n, root, sub) < 0) return -1;
    return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -1;
}

static int bind_into(const char *rootfs, const char *src, const char *dst, int is_dir)
{
    char path[PATH_MAX];
    if (pjoin(path, sizeof path, rootfs, dst) < 0) return -1;
    if (is_dir) {
        /* mkdir -p: dst may be deep (the instance's own directory, at its host path) */
        for (char *q = path + strlen(rootfs) + 1; *q; q++) {
            if (*q != '/') continue;
            *q = '\0';
            if (mkdir(path, 0755) < 0 && errno != EEXIST) return -1;
            *q = '/';
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST) return -1;
    } else {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return -1;
        close(fd);
    }
    return mount(src, path, NULL, MS_BIND, NULL);
}

static int enter_image(const instance *in, const char *ws, const char *home)
{
    char rootfs[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], path[PATH_MAX];
    if (pjoin(rootfs, sizeof rootfs, in->dir, "/rootfs") < 0 || pjoin(upper, sizeof upper, in->dir, "/upper") < 0 ||
        pjoin(work, sizeof work, in->dir, "/work") < 0)
        return IMG_DIRS;
    if ((mkdir(rootfs, 0755) < 0 && errno != EEXIST) || (mkdir(upper, 0755) < 0 && errno != EEXIST) ||
        (mkdir(work, 0700) < 0 && errno != EEXIST))
        return IMG_DIRS;
    char opts[3 * PATH_MAX + 64];
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", in->image_root, upper, work);
    if (mount("overlay", rootfs, "overlay", 0, opts) < 0) return IMG_OVERLAY;
    if (bind_into(rootfs, ws, "/workspace", 1) < 0 || bind_into(rootfs, home, "/root", 1) < 0 ||
        bind_into(rootfs, in->dir, in->dir, 1) < 0)
        return IMG_BINDS;
    if (mkdir_in(rootfs, "/proc", 0555, path, sizeof path) < 0 ||
        mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return IMG_PROC;
    /* a /dev of its own: device nodes made here, never the host's */
    if (mkdir_in(rootfs, "/dev", 0755, path, sizeof path) < 0 ||
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m") < 0)
        return IMG_DEV;
    static const struct { const char *name; unsigned maj, min; } nodes[] = {
        {"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
        {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        if (pjoin(path, sizeof path, rootfs, nodes[i].name) < 0) return IMG_DEV;
        if (mknod(path, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0 || chmod(path, 0666) < 0)
            return IMG_DEV;
    }
    if (mkdir_in(rootfs, "/dev/pts", 0755, path, sizeof path) < 0 ||
        mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0)
        return IMG_DEV;
    if (pjoin(path, sizeof path, rootfs, "/dev/ptmx") < 0) return IMG_DEV;
    if (symlink("pts/ptmx", path) < 0) return IMG_DEV;
    if (mkdir_in(rootfs, "/dev/shm", 01777, path, sizeof path) < 0 ||
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
        return IMG_DEV;
    mkdir_in(rootfs, "/run/sshd", 0755, path, sizeof path);
    /* pivot_root(".", "."): the old root ends up on top of the new one, then is detached */
    if (chdir(rootfs) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
        chdir("/") < 0)
        return IMG_PIVOT;
    return IMG_OK;
}

static pid_t spawn_holder(instance *in)
{
    char *ws = xasprintf("%s/workspace", in->dir);
    char *home = xasprintf("%s/root", in->dir);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        in->setup_error = xasprintf("pipe: %s", strerror(errno));
        free(ws);
        free(home);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        child_reset_signals();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        setpgid(0, 0);
        struct holder_status hs = {0, 0};
        if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) hs.step = 1;
        else if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) hs.step = 2;
        else if (lo_up() < 0) hs.step = 3;
        else if (!in->image_root && mount(ws, "/workspace", NULL, MS_BIND, NULL) < 0) hs.step = 4;
        else if (!in->image_root && mount(home, "/root", NULL, MS_BIND, NULL) < 0) hs.step = 5;
        else if (in->image_root) {
            int r = enter_image(in, ws, home);
            if (r) hs.step = 9 + r;
        }
        if (hs.step) hs.err = errno;
        ssize_t w = write(p[1], &hs, sizeof hs);
        (void)w;
        if (hs.step) _exit(1);
        close_range(0, ~0U, 0);
        for (;;) pause();
    }
    close(p[1]);
    free(ws);
    free(home);
    if (pid < 0) {
        in->setup_error = xasprintf("fork: %s", strerror(errno));
        close(p[0]);
        return -1;
    }
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    struct holder_status hs = {9, ETIMEDOUT};
    if (poll(&pf, 1, 5000) == 1 && read(p[0], &hs, sizeof hs) != (ssize_t)sizeof hs) hs.step = 8;
    close(p[0]);
    if (hs.step) {
        static const char *STEPS[] = {"", "unshare", "make mounts private", "bring up lo",
                                      "bind /workspace", "bind /root", "", "", "holder died",
                                      "holder timed out", "image: create its directories",
                                      "image: mount its overlay", "image: bind /workspace, /root "
                                      "and the instance directory", "image: mount /proc",
                                      "image: make /dev", "image: pivot_root"};
        in->setup_error = xasprintf("namespace setup: %s: %s", STEPS[hs.step], strerror(hs.err));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* The root of image (--image NAME or NAME:TAG), or NULL when it runs on the host's root. */
static const char *image_root_of(const char *image)
{
    for (int i = 0; image && i < g_sim.n_images; i++) {
        size_t n = strlen(g_sim.image_names[i]);
        if (!strncmp(image, g_sim.image_names[i], n) && (image[n] == '\0' || image[n] == ':'))
            return g_sim.image_roots[i];
    }
    return NULL;
}

void sandbox_setup(instance *in)
{
    in->setup_done = true;
    in->dir = xasprintf("%s/instances/%ld", g_sim.state_dir, in->id);
    char *ws = xasprintf("%s/workspace", in->dir);
    char *home = xasprintf("%s/root", in->dir);
    char *key = xasprintf("%s/ssh_host_ed25519_key", in->dir);
    char *comment = xasprintf("vastsim-instance-%ld", in->id);
    if (mkdir_p(ws, 0755) < 0 || mkdir_p(home, 0700) < 0) {
        in->setup_error = xasprintf("cannot create %s: %s", in->dir, strerror(errno));
        goto out;
    }
    char *kg[] = {SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key, NULL};
    unlink(key);
    if (run_wait(kg) != 0) {
        in->setup_error = xasprintf("ssh-keygen failed for %s", key);
        goto out;
    }
    sandbox_write_keys(in);
    in->image_root = image_root_of(in->image);
    if (in->image_root && !g_sim.isolation) {
        in->setup_error = xasprintf("image %s has its own root (--image), which needs namespace "
                                    "isolation (%s)", in->image, g_sim.isolation_reason);
        goto out;
    }
    if (!g_sim.isolation) goto out;
    pid_t h = spawn_holder(in);
    if (h < 0) goto out;
    in->holder = h;
    char *np = xasprintf("/proc/%d/ns/net", (int)h);
    char *mp = xasprintf("/proc/%d/ns/mnt", (int)h);
    in->netns_fd = open(np, O_RDONLY | O_CLOEXEC);
    in->mntns_fd = open(mp, O_RDONLY | O_CLOEXEC);
    free(np);
    free(mp);
    struct stat st;
    if (in->netns_fd < 0 || in->mntns_fd < 0 || fstat(in->netns_fd, &st) < 0) {
        in->setup_error = xasprintf("cannot open the namespaces of pid %d: %s", (int)h, strerror(errno));
        goto out;
    }
    in->ns_dev = st.st_dev;
    in->netns_ino = st.st_ino;
    if (fstat(in->mntns_fd, &st) == 0) in->mntns_ino = st.st_ino;
    if (in->netns_ino == self_ns_ino("net") || in->mntns_ino == self_ns_ino("mnt")) {
        in->netns_ino = in->mntns_ino = 0;
        in->setup_error = xstrdup("the holder did not get its own namespaces");
        goto out;
    }
    struct ns_listen r = {in->netns_fd, g_sim.port, -1, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, ns_listen_thread, &r) == 0) pthread_join(t, NULL);
    if (r.fd < 0) {
        in->setup_error = xasprintf("cannot listen on 127.0.0.1:%d inside the instance: %s", g_sim.port,
                                    strerror(r.err));
        goto out;
    }
    in->api_fd = r.fd;
    net_wake();
    LOG_D(SIM_TAG, "instance %ld: namespaces ready (holder %d)", in->id, (int)h);
out:
    if (in->setup_error) LOG_E(SIM_TAG, "instance %ld: %s", in->id, in->setup_error);
    free(ws);
    free(home);
    free(key);
    free(comment);
}

/* ---- process sweeps ---- */

static bool environ_has(int pid, const char *needle, size_t nlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    for (ssize_t i = 0; i + (ssize_t)nlen <= n; i++) {
        if ((i == 0 || buf[i - 1] == '\0') && !memcmp(buf + i, needle, nlen) &&
            (i + (ssize_t)nlen == n || buf[i + nlen] == '\0'))
            return true;
    }
    return false;
}

static bool same_ns(int pid, const char *which, dev_t dev, ino_t ino)
{
    /* never match the emulator's own namespaces: that would sweep the whole machine */
    if (!ino || ino == self_ns_ino(which)) return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, which);
    struct stat st;
    return stat(path, &st) == 0 && st.st_ino == ino && st.st_dev == dev;
}

static bool is_sshd(int pid)
{
    char path[64], exe[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    return !strcmp(exe, SSHD_PATH);
}

/* One pass over /proc: SIGKILL the instance's processes. only_sshd: just sshd processes. */
static int sweep_once(const instance *in, bool only_sshd)
{
    DIR *d = opendir("/proc");
    if (!d) return 0;
    char *needle = xasprintf("VASTSIM_TAG=%s", in->tag);
    size_t nlen = strlen(needle);
    int self = (int)getpid(), killed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == self || pid == in->holder) continue;
        bool mine = same_ns((int)pid, "net", in->ns_dev, in->netns_ino) ||
                    same_ns((int)pid, "mnt", in->ns_dev, in->mntns_ino) ||
                    (!only_sshd && environ_has((int)pid, needle, nlen));
        if (!mine && only_sshd && !g_sim.isolation) {
            for (size_t i = 0; i < g_sim.n_ssh; i++)
                if (g_sim.ssh_pid_inst[i] == in->id && getpgid((pid_t)pid) == g_sim.ssh_pids[i]) mine = true;
        }
        if (!mine) continue;
        if (only_sshd && !is_sshd((int)pid)) continue;
        if (kill((pid_t)pid, SIGKILL) == 0) killed++;
    }
    closedir(d);
    free(needle);
    return killed;
}

static int sweep(const instance *in, bool only_sshd)
{
    int total = 0;
    for (int pass = 0; pass < 100; pass++) {
        int n = sweep_once(in, only_sshd);
        total += n;
        if (n == 0) break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        sandbox_reap();
    }
    return total;
}

static void kill_ssh_children(long inst)
{
    for (size_t i = 0; i < g_sim.n_ssh; i++) {
        if (inst && g_sim.ssh_pid_inst[i] != inst) continue;
        kill(-g_sim.ssh_pids[i], SIGKILL);
        kill(g_sim.ssh_pids[i], SIGKILL);
    }
}

int sandbox_kill_procs(instance *in)
{
    kill_ssh_children(in->id);
    return sweep(in, false);
}

void sandbox_drop_ssh(instance *in)
{
    if (in) {
        kill_ssh_children(in->id);
        sweep(in, true);
        return;
    }
    for (instance *i = g_sim.instances; i; i = i->next) sandbox_drop_ssh(i);
}

void sandbox_reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        ssh_pid_del(pid);
        for (instance *in = g_sim.instances; in; in = in->next) {
            if (in->holder == pid) {
                LOG_W(SIM_TAG, "instance %ld: namespace holder %d exited", in->id, (int)pid);
                in->holder = 0;
            }
        }
    }
}

void sandbox_sweep_orphans(void)
{
    DIR *d = opendir("/proc");
    if (!d) return;
    static const char NEEDLE[] = "VASTSIM_TAG=";
    int killed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid()) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char buf[16384];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
            if (strncmp(buf + i, NEEDLE, sizeof NEEDLE - 1)) continue;
            long owner = strtol(buf + i + sizeof NEEDLE - 1, NULL, 10);
            /* the emulator that started it is gone: an orphan of a SIGKILLed vastsim */
            if (owner > 0 && kill((pid_t)owner, 0) < 0 && errno == ESRCH && kill((pid_t)pid, SIGKILL) == 0) killed++;
            break;
        }
    }
    closedir(d);
    if (killed) LOG_W(SIM_TAG, "killed %d processes left behind by an earlier vastsim that died", killed);
}

/* ---- running things inside ---- */

/* Build argv-style env for a child (heap; free with free_strv). */
static char **child_env(const instance *in)
{
    json_t *e = instance_env(in);
    size_t n = json_array_size(e);
    char **v = xcalloc(n + 4, sizeof *v);
    size_t k = 0;
    v[k++] = xstrdup(CHILD_PATH);
    v[k++] = g_sim.isolation ? xstrdup("HOME=/root") : xasprintf("HOME=%s", getenv("HOME") ? getenv("HOME") : "/");
    v[k++] = xstrdup("LANG=C.UTF-8");
    for (size_t i = 0; i < n; i++) v[k++] = xstrdup(json_string_value(json_array_get(e, i)));
    json_decref(e);
    return v;
}

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++) free(*p);
    free(v);
}

/* Fork a child inside the instance running /bin/sh -c script; out_fd becomes its stdout and
 * stderr. Returns the pid or -1. */
static pid_t spawn_shell(instance *in, const char *script, int out_fd, const char *cwd)
{
    char **envp = child_env(in);
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    char *wd = xstrdup(cwd);
    int netfd = in->netns_fd, mntfd = in->mntns_fd;
    pid_t pid = fork();
    if (pid == 0) {
        child_reset_signals();
        setsid();
        if (netfd >= 0 && (setns(netfd, CLONE_NEWNET) < 0 || setns(mntfd, CLONE_NEWNS) < 0)) _exit(126);
        if (chdir(wd) < 0 && chdir("/") < 0) _exit(126);
        int dn = open("/dev/null", O_RDONLY);
        if (dn >= 0) dup2(dn, 0);
        dup2(out_fd, 1);
        dup2(out_fd, 2);
        close_range(3, ~0U, 0);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    free(wd);
    free_strv(envp);
    return pid;
}

void sandbox_run_onstart(instance *in)
{
    if (!in->dir || (g_sim.isolation && in->netns_fd < 0)) return;
    char *log = xasprintf("%s/onstart.log", in->dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    free(log);
    if (fd < 0) return;
    char *cwd = g_sim.isolation ? xstrdup("/") : xasprintf("%s/workspace", in->dir);
    pid_t pid = spawn_shell(in, in->onstart, fd, cwd);
    free(cwd);
    close(fd);
    LOG_I(SIM_TAG, "instance %ld: onstart started (pid %d)", in->id, (int)pid);
}

char *sandbox_exec_capture(instance *in, const char *cmd)
{
    if (!in->dir || (g_sim.isolation && in->netns_fd < 0)) return xstrdup("");
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return xstrdup("");
    char *cwd = g_sim.isolation ? xstrdup("/workspace") : xasprintf("%s/workspace", in->dir);
    pid_t pid = spawn_shell(in, cmd, p[1], cwd);
    free(cwd);
    close(p[1]);
    buf b;
    buf_init(&b, 1 << 20);
    double deadline = now_mono() + 5.0;
    for (;;) {
        int left = (int)((deadline - now_mono()) * 1000);
        if (left <= 0) break;
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, left) <= 0) break;
        char tmp[4096];
        ssize_t n = read(p[0], tmp, sizeof tmp);
        if (n <= 0) break;
        if (buf_append(&b, tmp, (size_t)n) < 0) break;
    }
    close(p[0]);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return buf_take(&b);
}

/* ---- teardown ---- */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void sandbox_teardown(instance *in)
{
    if (in->ssh_fd >= 0) net_close_later(in->ssh_fd);
    if (in->api_fd >= 0) net_close_later(in->api_fd);
    in->ssh_fd = in->api_fd = -1;
    int n = sandbox_kill_procs(in);
    if (in->holder > 0) {
        kill(in->holder, SIGKILL);
        waitpid(in->holder, NULL, 0);
        in->holder = 0;
    }
    n += sweep(in, false);
    if (in->netns_fd >= 0) close(in->netns_fd);
    if (in->mntns_fd >= 0) close(in->mntns_fd);
    in->netns_fd = in->mntns_fd = -1;
    sandbox_reap();
    if (in->dir && strstr(in->dir, "/instances/"))
        nftw(in->dir, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    LOG_D(SIM_TAG, "instance %ld: torn down (%d processes killed)", in->id, n);
}

/* ---- the network thread ---- */

struct watch {
    int fd;
    long inst;
    bool ssh;
};

static void refuse(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void handle_ssh(long id, int cfd)
{
    pthread_mutex_lock(&g_sim.mu);
    instance *in = inst_find(id);
    double now = now_wall();
    bool ok = in && in->actual && !strcmp(in->actual, "running") && in->setup_done && !in->setup_error &&
              now >= in->ssh_refuse_until && now >= g_sim.ssh_refuse_until && strcmp(in->runtype, "args") &&
              (!g_sim.isolation || in->netns_fd >= 0) && access(SSHD_PATH, X_OK) == 0;
    if (!ok) {
        pthread_mutex_unlock(&g_sim.mu);
        LOG_D(SIM_TAG, "instance %ld: SSH connection refused", id);
        refuse(cfd);
        return;
    }
    int netfd = in->netns_fd >= 0 ? fcntl(in->netns_fd, F_DUPFD_CLOEXEC, 0) : -1;
    int mntfd = in->mntns_fd >= 0 ? fcntl(in->mntns_fd, F_DUPFD_CLOEXEC, 0) : -1;
    char *cfg = xasprintf("%s/sshd_config", in->dir);
    char *log = xasprintf("%s/sshd.log", in->dir);
    pthread_mutex_unlock(&g_sim.mu);
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    char *argv[] = {SSHD_PATH, "-i", "-e", "-f", cfg, NULL};
    char *envp[] = {CHILD_PATH, NULL};
    bool iso = g_sim.isolation;
    pid_t pid = fork();
    if (pid == 0) {
        child_reset_signals();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);
        if (iso && (netfd < 0 || setns(netfd, CLONE_NEWNET) < 0 || setns(mntfd, CLONE_NEWNS) < 0)) _exit(126);
        if (chdir("/") < 0) _exit(126);
        dup2(cfd, 0);
        dup2(cfd, 1);
        if (logfd >= 0) dup2(logfd, 2);
        close_range(3, ~0U, 0);
        execve(SSHD_PATH, argv, envp);
        _exit(127);
    }
    close(cfd);
    if (logfd >= 0) close(logfd);
    if (netfd >= 0) close(netfd);
    if (mntfd >= 0) close(mntfd);
    free(cfg);
    free(log);
    if (pid < 0) return;
    pthread_mutex_lock(&g_sim.mu);
    if (!inst_find(id)) {
        kill(pid, SIGKILL);
    } else {
        ssh_pid_add(pid, id);
    }
    pthread_mutex_unlock(&g_sim.mu);
    LOG_D(SIM_TAG, "instance %ld: SSH connection -> sshd pid %d", id, (int)pid);
}

void *net_thread_main(void *arg)
{
    (void)arg;
    struct watch *w = NULL;
    struct pollfd *pf = NULL;
    size_t cap = 0;
    while (!g_sim.stopping) {
        pthread_mutex_lock(&g_sim.mu);
        for (size_t i = 0; i < g_sim.n_dead; i++) close(g_sim.dead_fds[i]);
        g_sim.n_dead = 0;
        size_t n = 1;
        for (instance *in = g_sim.instances; in; in = in->next) n += 2;
        if (n > cap) {
            cap = n * 2;
            w = xrealloc(w, cap * sizeof *w);
            pf = xrealloc(pf, cap * sizeof *pf);
        }
        size_t k = 0;
        w[k] = (struct watch){g_sim.wake_fd[0], 0, false};
        k++;
        for (instance *in = g_sim.instances; in; in = in->next) {
            if (in->ssh_fd >= 0) w[k++] = (struct watch){in->ssh_fd, in->id, true};
            if (in->api_fd >= 0) w[k++] = (struct watch){in->api_fd, in->id, false};
        }
        pthread_mutex_unlock(&g_sim.mu);
        for (size_t i = 0; i < k; i++) pf[i] = (struct pollfd){.fd = w[i].fd, .events = POLLIN};
        int r = poll(pf, k, 1000);
        if (r <= 0) continue;
        if (pf[0].revents) {
            char tmp[256];
            while (read(g_sim.wake_fd[0], tmp, sizeof tmp) > 0) {}
        }
        for (size_t i = 1; i < k; i++) {
            if (!pf[i].revents) continue;
            for (;;) {
                struct sockaddr_in a;
                socklen_t al = sizeof a;
                int cfd = accept4(w[i].fd, (struct sockaddr *)&a, &al, SOCK_CLOEXEC);
                if (cfd < 0) break;
                if (w[i].ssh) {
                    handle_ssh(w[i].inst, cfd);
                } else {
                    conn_source_set(cfd, w[i].inst);
                    if (MHD_add_connection(g_sim.mhd, cfd, (struct sockaddr *)&a, al) != MHD_YES)
                        conn_source_take(cfd);
                }
            }
        }
    }
    pthread_mutex_lock(&g_sim.mu);
    for (size_t i = 0; i < g_sim.n_dead; i++) close(g_sim.dead_fds[i]);
    g_sim.n_dead = 0;
    pthread_mutex_unlock(&g_sim.mu);
    free(w);
    free(pf);
    return NULL;
}
