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

#include <stddef.h>

/* dlopen(soname, RTLD_NOW | RTLD_LOCAL). On failure writes to err, e.g.
 * "FFmpeg's libavformat.so.59 is not installed: apt install libavformat59" when the file is
 * absent ("what" is "FFmpeg" here), or "cannot load FFmpeg's libavformat.so.59: <dlerror>"
 * when it is present but fails to load; returns NULL. */
void *dlib_open(const char *soname, const char *what, char *err, size_t errlen);

/* dlsym; NULL with "FFmpeg's libavformat.so.59 has no symbol avformat_open_input" in err. */
void *dlib_sym(void *h, const char *soname, const char *what, const char *name, char *err,
               size_t errlen);

/* The Debian package that ships soname: "libavformat.so.59" -> "libavformat59",
 * "libfoo2.so.1" -> "libfoo2-1" (Debian's policy for names ending in a digit); the few that
 * depart from the policy by a table ("libssh.so.4" -> "libssh-4"). */
void dlib_package(const char *soname, char *out, size_t n);

#endif
