/* curl_dl: the libcurl functions gpuscribe calls, through one table, and libcurl's global
 * initialisation, once per process, on first use.
 *
 * In the controller (built with GS_CURL_DLOPEN and GS_SONAME_CURL from the Makefile) libcurl
 * is opened with dlopen when the first request leaves: it maps OpenSSL, Kerberos, LDAP,
 * nghttp2, librtmp and libssh2 (~5 MB of an idle server's RSS), and a server with no Vast key
 * and no OpenAI key never sends a request. The lean worker (make worker) links libcurl as
 * before (its bundle builds on GPU images without the soname lookup): there the table holds
 * the linked functions.
 *
 * Code calls libcurl only as gs_curl.name(...), and only after curl_dl_load() (or
 * curl_dl_easy()) succeeded. This header must come before any <curl/curl.h>: it turns off
 * curl's GCC type-checking macros, whose curl_easy_setopt(...) would expand inside
 * gs_curl.curl_easy_setopt(...) (the plain ones left, which only count arguments, are
 * harmless).
 * GS_CURL_SONAME_TEST (tests only) replaces libcurl's soname, e.g. by a missing one.
 */
#ifndef GS_CURL_DL_H
#define GS_CURL_DL_H

#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK 1
#endif
#include <curl/curl.h>

#include <stddef.h>

#ifdef CURLINC_TYPECHECK_GCC_H
#error "<curl/curl.h> was included before core/curl_dl.h with its type-checking macros"
#endif

/* every libcurl function gpuscribe calls (a missing entry fails the controller's link) */
#define GS_CURL_FUNCS(X)                                                                    \
    X(curl_global_init) X(curl_global_cleanup) X(curl_easy_init) X(curl_easy_cleanup)       \
    X(curl_easy_reset) X(curl_easy_setopt) X(curl_easy_getinfo) X(curl_easy_perform)       \
    X(curl_easy_strerror) X(curl_easy_escape) X(curl_free) X(curl_slist_append)            \
    X(curl_slist_free_all) X(curl_mime_init) X(curl_mime_free) X(curl_mime_addpart)        \
    X(curl_mime_name) X(curl_mime_data) X(curl_mime_filedata) X(curl_mime_filename)

struct gs_curl {
#define GS_CURL_MEMBER(f) __typeof__(f) *f;
    GS_CURL_FUNCS(GS_CURL_MEMBER)
#undef GS_CURL_MEMBER
};

/* Filled by a successful curl_dl_load; read only after one. */
extern struct gs_curl gs_curl;

/* 0 when libcurl is loaded and curl_global_init has run (now or by an earlier call); -1 with
 * e.g. "libcurl's libcurl.so.4 is not installed: apt install libcurl4" in err (every later
 * call gives the same answer: nothing is retried within a process). Thread-safe. */
int curl_dl_load(char *err, size_t errlen);

/* curl_dl_load, then curl_easy_init: a fresh handle, or NULL with the reason in err. */
CURL *curl_dl_easy(char *err, size_t errlen);

/* curl_global_cleanup when curl_dl_load succeeded (at exit, after every handle is freed). */
void curl_dl_cleanup(void);

/* How many times the loading itself ran (0 or 1). */
int curl_dl_load_count(void);

#endif
