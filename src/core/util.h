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

int mkdir_p(const char *path, unsigned mode);
/* Read a whole file (up to max bytes) into a NUL-terminated heap string; NULL on error
 * (errno set; EFBIG when larger than max). *len_out optional. */
char *read_file(const char *path, size_t max, size_t *len_out);
/* Write data to path atomically (temp file in the same dir, fsync, rename) with mode. */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Case-sensitive prefix test. */
int str_starts(const char *s, const char *prefix);
/* Parse a decimal integer / double strictly (whole string, no trailing junk). 0 on success. */
int parse_long(const char *s, long *out);
int parse_double(const char *s, double *out);

#endif
