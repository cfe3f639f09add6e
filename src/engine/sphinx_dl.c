/* sphinx_dl: pocketsphinx by dlopen (controller) or linked (worker). Contract in sphinx_dl.h. */
#include "engine/sphinx_dl.h"

#ifdef HAVE_SPHINX

#ifndef GS_SPHINX_DLOPEN

struct gs_sphinx gs_sp = {
#define GS_SP_INIT(lib, f) .f = f,
    GS_SPHINX_FUNCS(GS_SP_INIT)
#undef GS_SP_INIT
};

int sphinx_dl_load(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    return 0;
}

int sphinx_dl_load_count(void) { return 0; }

#else /* GS_SPHINX_DLOPEN */

#include "core/dlib.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(GS_SONAME_SPHINXBASE) || !defined(GS_SONAME_POCKETSPHINX)
#error "GS_SONAME_SPHINXBASE and GS_SONAME_POCKETSPHINX must be defined (the Makefile does)"
#endif

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs wide enough pointers");

enum { LIB_SPHINXBASE, LIB_POCKETSPHINX, NLIBS };

struct gs_sphinx gs_sp;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_rc = -1;
static char g_err[256];
static atomic_int g_loads;

static void load_once(void)
{
    atomic_fetch_add(&g_loads, 1);
    void *h[NLIBS] = {0};
    const char *name[NLIBS] = {GS_SONAME_SPHINXBASE, GS_SONAME_POCKETSPHINX};
    const char *test = getenv("GS_SPHINX_SONAME_TEST");
    if (test && *test) name[LIB_POCKETSPHINX] = test;
    for (int i = 0; i < NLIBS; i++)
        if (!(h[i] = dlib_open(name[i], "pocketsphinx", g_err, sizeof g_err))) goto fail;
    struct gs_sphinx t;
#define GS_SP_RESOLVE(lib, f)                                                               \
    {                                                                                       \
        void *p = dlib_sym(h[LIB_##lib], name[LIB_##lib], "pocketsphinx", #f, g_err,       \
                           sizeof g_err);                                                   \
        if (!p) goto fail;                                                                  \
        memcpy(&t.f, &p, sizeof p); /* POSIX: dlsym's pointer is the function's */         \
    }
    GS_SPHINX_FUNCS(GS_SP_RESOLVE)
#undef GS_SP_RESOLVE
    gs_sp = t;
    g_rc = 0;
    LOG_D("engine", "pocketsphinx loaded: %s %s", GS_SONAME_SPHINXBASE, GS_SONAME_POCKETSPHINX);
    return;
fail:
    LOG_W("engine", "%s", g_err);
}

int sphinx_dl_load(char *err, size_t errlen)
{
    pthread_once(&g_once, load_once);
    if (g_rc != 0 && err && errlen) snprintf(err, errlen, "%s", g_err);
    return g_rc;
}

int sphinx_dl_load_count(void) { return atomic_load(&g_loads); }

#endif /* GS_SPHINX_DLOPEN */
#endif /* HAVE_SPHINX */
