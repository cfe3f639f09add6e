/* curl_dl: libcurl by dlopen (controller) or linked (worker). Contract in curl_dl.h. */
#include "core/curl_dl.h"

#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_rc = -1;
static char g_err[256];
static atomic_int g_loads;
static atomic_int g_ready;   /* set once the load succeeded: curl_dl_cleanup reads it */

#ifndef GS_CURL_DLOPEN

struct gs_curl gs_curl = {
#define GS_CURL_INIT(f) .f = f,
    GS_CURL_FUNCS(GS_CURL_INIT)
#undef GS_CURL_INIT
};

static int open_lib(void) { return 0; }

#else /* GS_CURL_DLOPEN */

#include "core/dlib.h"

#ifndef GS_SONAME_CURL
#error "GS_SONAME_CURL must be defined (the Makefile does)"
#endif

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs wide enough pointers");

struct gs_curl gs_curl;

static int open_lib(void)
{
    const char *name = GS_SONAME_CURL;
    const char *test = getenv("GS_CURL_SONAME_TEST");
    if (test && *test) name = test;
    void *h = dlib_open(name, "libcurl", g_err, sizeof g_err);
    if (!h) return -1;
    struct gs_curl t;
#define GS_CURL_RESOLVE(f)                                                                  \
    {                                                                                       \
        void *p = dlib_sym(h, name, "libcurl", #f, g_err, sizeof g_err);                    \
        if (!p) return -1;                                                                  \
        memcpy(&t.f, &p, sizeof p); /* POSIX: dlsym's pointer is the function's */         \
    }
    GS_CURL_FUNCS(GS_CURL_RESOLVE)
#undef GS_CURL_RESOLVE
    gs_curl = t;
    LOG_D("http", "libcurl loaded: %s", name);
    return 0;
}

#endif /* GS_CURL_DLOPEN */

static void load_once(void)
{
    atomic_fetch_add(&g_loads, 1);
    if (open_lib() != 0) {
        LOG_W("http", "%s", g_err);   /* the handle stays open; a failed load is not retried */
        return;
    }
    CURLcode cc = gs_curl.curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(g_err, sizeof g_err, "cannot initialise libcurl: %s",
                 gs_curl.curl_easy_strerror(cc));
        LOG_W("http", "%s", g_err);
        return;
    }
    g_rc = 0;
    atomic_store(&g_ready, 1);
}

int curl_dl_load(char *err, size_t errlen)
{
    pthread_once(&g_once, load_once);
    if (g_rc != 0 && err && errlen) snprintf(err, errlen, "%s", g_err);
    return g_rc;
}

CURL *curl_dl_easy(char *err, size_t errlen)
{
    if (curl_dl_load(err, errlen) != 0) return NULL;
    CURL *c = gs_curl.curl_easy_init();
    if (!c && err && errlen) snprintf(err, errlen, "cannot initialise libcurl (out of memory?)");
    return c;
}

void curl_dl_cleanup(void)
{
    if (atomic_exchange(&g_ready, 0)) gs_curl.curl_global_cleanup();
}

int curl_dl_load_count(void) { return atomic_load(&g_loads); }
