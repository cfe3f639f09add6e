/* dlib: open a shared library by soname on first use, with an error a user can act on.
 *
 * The controller never links FFmpeg, pocketsphinx, libcurl or libssh (src/audio/ffmpeg_dl.c,
 * src/engine/sphinx_dl.c, src/core/curl_dl.c, src/ssh/ssh_dl.c): their sonames are fixed at
 * build time (the Makefile reads them from the -dev packages' .so links) and opened here when
 * first needed, so a server that never decodes, transcribes locally, sends a request or opens
 * an SSH session maps none of them (nor their ~150 dependencies, OpenSSL among them).
 * Libraries opened here are never closed (their code stays valid for the process).
 */
#ifndef GS_DLIB_H
#define GS_DLIB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* dlopen(soname, RTLD_NOW | RTLD_LOCAL). On failure writes to err, e.g.
 * "FFmpeg's libavformat.so.59 is not installed: apt install libavformat59" when the file is
 * absent ("what" is "FFmpeg" here), or "cannot load FFmpeg's libavformat.so.59: <dlerror>"
 * when it is present but fails to load; returns NULL. */
void *dlib_open(const char *soname, const char *what, char *err, size_t errlen);

/* dlsym; NULL with "FFmpeg's libavformat.so.59 has no symbol avformat_open_input" in err. */
void *dlib_sym(void *h, const char *soname, const char *what, const char *name, char *err,
               size_t errlen);

/* The soname to open: the test variable test_env's value when set and not empty (tests use it
 * to name a missing library, e.g. GS_SSH_SONAME_TEST=libssh.so.999), else soname. */
const char *dlib_soname(const char *soname, const char *test_env);

/* dlsym into a function pointer: *(fn type *)slot = the symbol (slot_size is sizeof *slot,
 * as wide as a data pointer); 0, or -1 with dlib_sym's error in err. */
int dlib_sym_into(void *h, const char *soname, const char *what, const char *name, void *slot,
                  size_t slot_size, char *err, size_t errlen);

/* A loader's table entry: resolve `f` from handle h into t.f, or return -1 from the loader
 * (err, errlen in scope). */
#define DLIB_RESOLVE(t, h, soname, what, f)                                                 \
    if (dlib_sym_into(h, soname, what, #f, &(t).f, sizeof (t).f, err, errlen) != 0) return -1

/* A loader that runs once per process, on the first ask from any thread: load(err, errlen)
 * returns 0, or -1 with the reason in err; that first result is every later caller's answer
 * (a failed load is not retried: the error stays the same and actionable). */
typedef struct dlib_once {
    pthread_mutex_t mu;
    atomic_int done;    /* set (release) once load has run */
    atomic_int loads;   /* how many times load ran: 0 or 1 */
    int rc;
    char err[256];
} dlib_once;
#define DLIB_ONCE_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1, ""}

/* Runs o's load if it has not run; returns its result, copying its error to err (may be NULL).
 * Thread-safe. */
int dlib_once_run(dlib_once *o, int (*load)(char *err, size_t errlen), char *err, size_t errlen);
/* How many times o's load ran (0 or 1). */
int dlib_once_loads(dlib_once *o);
/* Whether o's load ran and succeeded (without running it). */
int dlib_once_ok(dlib_once *o);

/* The Debian package that ships soname: "libavformat.so.59" -> "libavformat59",
 * "libfoo2.so.1" -> "libfoo2-1" (Debian's policy for names ending in a digit); the few that
 * depart from the policy by a table ("libssh.so.4" -> "libssh-4"). */
void dlib_package(const char *soname, char *out, size_t n);

#endif
