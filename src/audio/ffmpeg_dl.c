/* ffmpeg_dl: FFmpeg loaded on first use. Contract in ffmpeg_dl.h. */
#include "audio/ffmpeg_dl.h"

#include "core/dlib.h"
#include "core/log.h"

#if !defined(GS_SONAME_AVUTIL) || !defined(GS_SONAME_AVCODEC) || \
    !defined(GS_SONAME_AVFORMAT) || !defined(GS_SONAME_SWRESAMPLE)
#error "GS_SONAME_AVUTIL/AVCODEC/AVFORMAT/SWRESAMPLE must be defined (the Makefile does)"
#endif

enum { LIB_AVUTIL, LIB_AVCODEC, LIB_AVFORMAT, LIB_SWRESAMPLE, NLIBS };
static const char *const g_soname[NLIBS] = {GS_SONAME_AVUTIL, GS_SONAME_AVCODEC,
                                            GS_SONAME_AVFORMAT, GS_SONAME_SWRESAMPLE};

struct gs_ffmpeg gs_ff;

static dlib_once g_once = DLIB_ONCE_INIT;

static int load(char *err, size_t errlen)
{
    void *h[NLIBS] = {0};
    const char *name[NLIBS];
    for (int i = 0; i < NLIBS; i++) name[i] = g_soname[i];
    name[LIB_AVFORMAT] = dlib_soname(g_soname[LIB_AVFORMAT], "GS_FFMPEG_SONAME_TEST");
    /* dependencies first: libavformat needs libavcodec needs libavutil */
    for (int i = 0; i < NLIBS; i++)
        if (!(h[i] = dlib_open(name[i], "FFmpeg", err, errlen))) return -1;
    struct gs_ffmpeg t;
#define GS_FF_RESOLVE(lib, f) DLIB_RESOLVE(t, h[LIB_##lib], name[LIB_##lib], "FFmpeg", f);
    GS_FF_FUNCS(GS_FF_RESOLVE)
#undef GS_FF_RESOLVE
    gs_ff = t;
    LOG_D("audio", "FFmpeg loaded: %s", ffmpeg_dl_sonames());
    return 0;
}

int ffmpeg_dl_load(char *err, size_t errlen) { return dlib_once_run(&g_once, load, err, errlen); }

int ffmpeg_dl_load_count(void) { return dlib_once_loads(&g_once); }

const char *ffmpeg_dl_sonames(void)
{
    return GS_SONAME_AVUTIL " " GS_SONAME_AVCODEC " " GS_SONAME_AVFORMAT " " GS_SONAME_SWRESAMPLE;
}
