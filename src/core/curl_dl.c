/* curl_dl: libcurl by dlopen (controller) or linked (worker). Contract in curl_dl.h. */
#include "core/curl_dl.h"

#include "core/dlib.h"
#include "core/log.h"

#include <stdio.h>

static dlib_once g_once = DLIB_ONCE_INIT;

#ifndef GS_CURL_DLOPEN

struct gs_curl gs_curl = {
#define GS_CURL_INIT(f) .f = f,
    GS_CURL_FUNCS(GS_CURL_INIT)
#undef GS_CURL_INIT
};

static int open_lib(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return 0;
}

#else /* GS_CURL_DLOPEN */

#ifndef GS_SONAME_CURL
#error "GS_SONAME_CURL must be defined (the Makefile does)"
#endif

struct gs_curl gs_curl;

static int open_lib(char *err, size_t errlen)
{
    const char *name = dlib_soname(GS_SONAME_CURL, "GS_CURL_SONAME_TEST");
    void *h = dlib_open(name, "libcurl", err, errlen);
    if (!h) return -1;
    struct gs_curl t;
#define GS_CURL_RESOLVE(f) DLIB_RESOLVE(t, h, name, "libcurl", f);
    GS_CURL_FUNCS(GS_CURL_RESOLVE)
#undef GS_CURL_RESOLVE
    gs_curl = t;
    LOG_D("http", "libcurl loaded: %s", name);
    return 0;
}

#endif /* GS_CURL_DLOPEN */

static int load(char *err, size_t errlen)
{
    if (open_lib(err, errlen) != 0) return -1;
    CURLcode cc = gs_curl.curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl: %s", gs_curl.curl_easy_strerror(cc));
        return -1;
    }
    return 0;
}

int curl_dl_load(char *err, size_t errlen) { return dlib_once_run(&g_once, load, err, errlen); }

CURL *curl_dl_easy(char *err, size_t errlen)
{
    if (curl_dl_load(err, errlen) != 0) return NULL;
    CURL *c = gs_curl.curl_easy_init();
    if (!c && err && errlen) snprintf(err, errlen, "cannot initialise libcurl (out of memory?)");
    return c;
}

void curl_dl_cleanup(void)
{
    if (dlib_once_ok(&g_once)) gs_curl.curl_global_cleanup();
}

int curl_dl_load_count(void) { return dlib_once_loads(&g_once); }
