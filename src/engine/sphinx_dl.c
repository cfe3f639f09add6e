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

#if !defined(GS_SONAME_SPHINXBASE) || !defined(GS_SONAME_POCKETSPHINX)
#error "GS_SONAME_SPHINXBASE and GS_SONAME_POCKETSPHINX must be defined (the Makefile does)"
#endif

enum { LIB_SPHINXBASE, LIB_POCKETSPHINX, NLIBS };

struct gs_sphinx gs_sp;

static dlib_once g_once = DLIB_ONCE_INIT;

static int load(char *err, size_t errlen)
{
    void *h[NLIBS] = {0};
    const char *name[NLIBS] = {GS_SONAME_SPHINXBASE,
                               dlib_soname(GS_SONAME_POCKETSPHINX, "GS_SPHINX_SONAME_TEST")};
    for (int i = 0; i < NLIBS; i++)
        if (!(h[i] = dlib_open(name[i], "pocketsphinx", err, errlen))) return -1;
    struct gs_sphinx t;
#define GS_SP_RESOLVE(lib, f) DLIB_RESOLVE(t, h[LIB_##lib], name[LIB_##lib], "pocketsphinx", f);
    GS_SPHINX_FUNCS(GS_SP_RESOLVE)
#undef GS_SP_RESOLVE
    gs_sp = t;
    LOG_D("engine", "pocketsphinx loaded: %s %s", GS_SONAME_SPHINXBASE, GS_SONAME_POCKETSPHINX);
    return 0;
}

int sphinx_dl_load(char *err, size_t errlen) { return dlib_once_run(&g_once, load, err, errlen); }

int sphinx_dl_load_count(void) { return dlib_once_loads(&g_once); }

#endif /* GS_SPHINX_DLOPEN */
#endif /* HAVE_SPHINX */
