/* ffmpeg_dl: FFmpeg loaded on first use. Contract in ffmpeg_dl.h. */
#include "audio/ffmpeg_dl.h"

#include "core/dlib.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs code pointers as wide as data pointers");

#if !defined(GS_SONAME_AVUTIL) || !defined(GS_SONAME_AVCODEC) || \
    !defined(GS_SONAME_AVFORMAT) || !defined(GS_SONAME_SWRESAMPLE)
#error "GS_SONAME_AVUTIL/AVCODEC/AVFORMAT/SWRESAMPLE must be defined (the Makefile does)"
#endif

enum { LIB_AVUTIL, LIB_AVCODEC, LIB_AVFORMAT, LIB_SWRESAMPLE, NLIBS };
static const char *const g_soname[NLIBS] = {GS_SONAME_AVUTIL, GS_SONAME_AVCODEC,
                                            GS_SONAME_AVFORMAT, GS_SONAME_SWRESAMPLE};

struct gs_ffmpeg gs_ff;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_rc = -1;
static char g_err[256];
static atomic_int g_loads;

static void load_once(void)
{
    atomic_fetch_add(&g_loads, 1);
    void *h[NLIBS] = {0};
    const char *name[NLIBS];
    for (int i = 0; i < NLIBS; i++) name[i] = g_soname[i];
    const char *test = getenv("GS_FFMPEG_SONAME_TEST");
    if (test && *test) name[LIB_AVFORMAT] = test;
    /* dependencies first: libavformat needs libavcodec needs libavutil */
    for (int i = 0; i < NLIBS; i++)
        if (!(h[i] = dlib_open(name[i], "FFmpeg", g_err, sizeof g_err))) goto fail;
    struct gs_ffmpeg t;
#define GS_FF_RESOLVE(lib, f)                                                               \
    {                                                                                       \
        void *p = dlib_sym(h[LIB_##lib], name[LIB_##lib], "FFmpeg", #f, g_err, sizeof g_err); \
        if (!p) goto fail;                                                                  \
        memcpy(&t.f, &p, sizeof p); /* POSIX: a data pointer from dlsym is the function's */ \
    }
    GS_FF_FUNCS(GS_FF_RESOLVE)
#undef GS_FF_RESOLVE
    gs_ff = t;
    g_rc = 0;
    LOG_D("audio", "FFmpeg loaded: %s", ffmpeg_dl_sonames());
    return;
fail:
    /* handles stay open: closing FFmpeg's libraries is not worth the risk, and a failed load
     * is not retried */
    LOG_W("audio", "%s", g_err);
}

int ffmpeg_dl_load(char *err, size_t errlen)
{
    pthread_once(&g_once, load_once);
    if (g_rc != 0 && err && errlen) snprintf(err, errlen, "%s", g_err);
    return g_rc;
}

int ffmpeg_dl_load_count(void) { return atomic_load(&g_loads); }

const char *ffmpeg_dl_sonames(void)
{
    return GS_SONAME_AVUTIL " " GS_SONAME_AVCODEC " " GS_SONAME_AVFORMAT " " GS_SONAME_SWRESAMPLE;
}
