#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(void)
{
    static const char msg[] = "gpuscribe: out of memory\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom();
    return q;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p) oom();
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) oom();
    return s;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void buf_init(buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX - 1;
}

void buf_release(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int buf_append(buf *b, const void *data, size_t n)
{
    if (n > b->max - b->len) return -1;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc = nc > SIZE_MAX / 2 ? b->len + n + 1 : nc * 2;
        b->data = xrealloc(b->data, nc);
        b->cap = nc;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_appendf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    int rc = buf_append(b, s, strlen(s));
    free(s);
    return rc;
}

char *buf_take(buf *b)
{
    char *d = b->data ? b->data : xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double round_to(double x, double scale) { return round(x * scale) / scale; }

int mkdir_p(const char *path, unsigned mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) return -1;
    return 0;
}

char *read_file(const char *path, size_t max, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    char *s = read_fd(fd, max, len_out);
    int e = errno;
    close(fd);
    errno = e;
    return s;
}

char *read_fd(int fd, size_t max, size_t *len_out)
{
    buf b;
    buf_init(&b, max);
    char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { int e = errno; buf_release(&b); errno = e; return NULL; }
        if (r == 0) break;
        if (buf_append(&b, chunk, (size_t)r) != 0) {
            buf_release(&b); errno = EFBIG; return NULL;
        }
    }
    if (len_out) *len_out = b.len;
    return buf_take(&b);
}

const char *file_kind(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a fifo";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symlink";
    default: return "not a regular file";
    }
}

/* the directory part of path ("." when none) */
static char *dir_part(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

char *resolve_symlinks(const char *path)
{
    if (!path || !*path) { errno = ENOENT; return NULL; }
    char *cur = xstrdup(path);
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0) {
            if (errno == ENOENT) return cur; /* a file (or a link's target) still to create */
            int e = errno; free(cur); errno = e; return NULL;
        }
        if (!S_ISLNK(st.st_mode)) return cur;
        if (hops >= 40) { free(cur); errno = ELOOP; return NULL; }
        char target[PATH_MAX];
        ssize_t n = readlink(cur, target, sizeof target);
        if (n < 0) { int e = errno; free(cur); errno = e; return NULL; }
        if ((size_t)n >= sizeof target) { free(cur); errno = ENAMETOOLONG; return NULL; }
        target[n] = '\0';
        char *next;
        if (target[0] == '/') {
            next = xstrdup(target);
        } else {
            char *dir = dir_part(cur);
            next = strcmp(dir, ".") == 0 ? xstrdup(target) : xasprintf("%s/%s", dir, target);
            free(dir);
        }
        free(cur);
        cur = next;
    }
}

static void random_suffix(char out[13])
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char r[12];
    ssize_t got = getrandom(r, sizeof r, GRND_NONBLOCK);
    if (got != (ssize_t)sizeof r) { /* no entropy source: still unique, less unpredictable */
        static unsigned long counter;
        unsigned long long x = (unsigned long long)now_wall() * 1000003ULL ^
                               (unsigned long long)getpid() << 20 ^
                               __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 0x9e3779b97f4a7c15ULL;
        for (size_t i = 0; i < sizeof r; i++) {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
            r[i] = (unsigned char)((x * 0x2545f4914f6cdd1dULL) >> 56);
        }
    }
    for (size_t i = 0; i < sizeof r; i++) out[i] = set[r[i] % (sizeof set - 1)];
    out[12] = '\0';
}

int tmpfile_beside(const char *path, unsigned mode, char **tmp_out)
{
    *tmp_out = NULL;
    char *dir = dir_part(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    for (int attempt = 0; attempt < 100; attempt++) {
        char sfx[13];
        random_suffix(sfx);
        char *tmp = xasprintf("%s/.%s.%s.tmp", dir, base, sfx);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0) { free(dir); *tmp_out = tmp; return fd; }
        int e = errno;
        free(tmp);
        if (e != EEXIST) { free(dir); errno = e; return -1; }
    }
    free(dir);
    errno = EEXIST;
    return -1;
}

int fsync_dir_of(const char *path)
{
    char *dir = dir_part(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    /* some file systems cannot fsync a directory: the rename is still done */
    if (rc != 0 && (errno == EINVAL || errno == EROFS)) rc = 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* -1 with errno EISDIR / EINVAL when path exists and is not a regular file (a symlink
 * included: the callers resolved links before) */
static int refuse_non_regular(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (S_ISREG(st.st_mode)) return 0;
    errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    return -1;
}

int write_file_replace(const char *path, const void *data, size_t len, unsigned mode,
                       long long uid, long long gid)
{
    if (refuse_non_regular(path) != 0) return -1;
    char *tmp = NULL;
    int fd = tmpfile_beside(path, 0600, &tmp);
    if (fd < 0) return -1;
    int rc = 0;
    struct stat ts;
    if (fstat(fd, &ts) != 0) rc = -1;
    /* chown only what differs (a user may chown to itself, not always to its old group) */
    if (rc == 0 && uid >= 0 && (uid_t)uid == ts.st_uid) uid = -1;
    if (rc == 0 && gid >= 0 && (gid_t)gid == ts.st_gid) gid = -1;
    if (rc == 0 && (uid >= 0 || gid >= 0) &&
        fchown(fd, uid >= 0 ? (uid_t)uid : (uid_t)-1, gid >= 0 ? (gid_t)gid : (gid_t)-1) != 0)
        rc = -1;
    if (rc == 0 && fchmod(fd, (mode_t)mode) != 0) rc = -1;
    const char *p = data;
    size_t left = len;
    while (rc == 0 && left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { rc = -1; break; }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0) rc = -1;
    if (close(fd) != 0 && rc == 0) rc = -1;
    /* look again just before the rename: what is at path may have changed meanwhile */
    if (rc == 0 && refuse_non_regular(path) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        errno = e;
        return -1;
    }
    free(tmp);
    /* the rename is done: a directory that cannot be synced does not undo it */
    (void)fsync_dir_of(path);
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    char *target = resolve_symlinks(path);
    if (!target) return -1;
    int rc = write_file_replace(target, data, len, mode, -1, -1);
    int e = errno;
    free(target);
    errno = e;
    return rc;
}

int str_starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int parse_long(const char *s, long *out)
{
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0') return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v)) return -1;
    *out = v;
    return 0;
}
