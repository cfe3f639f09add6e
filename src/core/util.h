/* util: small helpers shared by every module.
 *
 * - xmalloc/xcalloc/xrealloc/xstrdup/xasprintf abort on out-of-memory (small allocations are
 *   not threaded through every caller); all accept the usual arguments, never return NULL.
 * - buf: a growable byte buffer with a hard cap set at init (untrusted input never grows
 *   past it); buf_append returns -1 when the cap would be exceeded, leaving the buffer intact.
 * - now_mono()/now_wall(): seconds as double (monotonic / Unix time).
 * - mkdir_p: create a directory and its parents (mode for the last component).
 * Thread-safe: everything here is reentrant.
 */
#ifndef GS_UTIL_H
#define GS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SAFE_FREE(p) do { free(p); (p) = NULL; } while (0)
#define UNUSED(x) (void)(x)

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

typedef struct buf {
    char *data;   /* always NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max;   /* hard cap on len; 0 = SIZE_MAX */
} buf;

void buf_init(buf *b, size_t max);
void buf_release(buf *b);
int buf_append(buf *b, const void *data, size_t n) __attribute__((warn_unused_result));
int buf_appendf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the data to the caller (caller frees); the buffer is reset. Never NULL. */
char *buf_take(buf *b);

double now_mono(void);
double now_wall(void);
/* x rounded to 1/scale (scale 1e4: four decimals), dividing last so that it prints short
 * (16.4, not 16.400000000000002): for figures in JSON */
double round_to(double x, double scale);

int mkdir_p(const char *path, unsigned mode);
/* Read a whole file (up to max bytes) into a NUL-terminated heap string; NULL on error
 * (errno set; EFBIG when larger than max). *len_out optional. */
char *read_file(const char *path, size_t max, size_t *len_out);
/* The same from an open descriptor (read to its end; the descriptor stays open). */
char *read_fd(int fd, size_t max, size_t *len_out);

/* "a regular file", "a directory", "a character device", "a block device", "a fifo",
 * "a socket", "a symlink" for a stat st_mode. */
const char *file_kind(unsigned mode);
/* Follow the symlink chain at path (a relative link is relative to the link's directory; at
 * most 40 hops, else ELOOP) to the path of the file it names, which may not exist yet (a
 * dangling link gives its target). Caller frees; NULL with errno on an lstat/readlink error. */
char *resolve_symlinks(const char *path);
/* Create a new file beside path (same directory) with an unpredictable name
 * ".BASENAME.<12 random chars>.tmp", open(O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode),
 * retrying on a clash. Returns the fd and *tmp_out (caller frees), or -1 with errno. */
int tmpfile_beside(const char *path, unsigned mode, char **tmp_out);
/* fsync the directory that holds path (best effort where the file system cannot). */
int fsync_dir_of(const char *path);
/* Replace the regular file at path (no symlink is followed: path is the final name)
 * atomically: a temp file from tmpfile_beside, fchown to uid/gid when >= 0, fchmod mode,
 * write, fsync, rename over path, fsync the directory. Refuses, leaving everything as it
 * was, when path exists and is not a regular file (errno EISDIR for a directory, EINVAL for
 * anything else: device, fifo, socket, symlink). No temp file is left behind. */
int write_file_replace(const char *path, const void *data, size_t len, unsigned mode,
                       long long uid, long long gid);
/* Write data to path atomically with mode: symlinks at path are followed (the link stays, its
 * target is replaced, see resolve_symlinks), then write_file_replace (so a device, fifo or
 * directory is refused, never replaced). */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Case-sensitive prefix test. */
int str_starts(const char *s, const char *prefix);
/* Parse a decimal integer / double strictly (whole string, no trailing junk). 0 on success. */
int parse_long(const char *s, long *out);
int parse_double(const char *s, double *out);

#endif
