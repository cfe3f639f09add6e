/* Unit tests for the lazy loading of FFmpeg (src/audio/ffmpeg_dl.c) and pocketsphinx
 * (src/engine/sphinx_dl.c) and core/dlib: nothing is mapped before the first use, a missing
 * library gives an actionable error (and callers report it as the server's fault), the load
 * runs once however often it is asked for. Each test runs in a fresh forked process, so every
 * test sees the loaders' pthread_once unrun. */
#include "test.h"

#include "audio/audio.h"
#include "audio/ffmpeg_dl.h"
#include "core/dlib.h"
#include "engine/engine.h"
#include "engine/sphinx_dl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Is a library whose path contains name mapped into this process? */
static int mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

static void write_tone(const char *path)
{
    int16_t s[16000];
    for (size_t i = 0; i < 16000; i++) s[i] = (int16_t)((i % 40) * 400 - 8000);
    audio_pcm p = {.samples = s, .nsamples = 16000, .rate = AUDIO_RATE};
    ASSERT_EQ(audio_write_wav(path, &p), 0);
}

TEST(dlib_package_names)
{
    char p[64];
    dlib_package("libavformat.so.59", p, sizeof p);
    ASSERT_STR_EQ(p, "libavformat59");
    dlib_package("libswresample.so.4", p, sizeof p);
    ASSERT_STR_EQ(p, "libswresample4");
    dlib_package("libfoo2.so.1", p, sizeof p);   /* Debian: a digit before .so gets a dash */
    ASSERT_STR_EQ(p, "libfoo2-1");
    dlib_package("libplain.so", p, sizeof p);
    ASSERT_STR_EQ(p, "libplain");
}

TEST(dlib_missing_symbol_is_named)
{
    char err[256] = "";
    void *h = dlib_open("libm.so.6", "libm", err, sizeof err);
    ASSERT_NOT_NULL(h);
    ASSERT_TRUE(dlib_sym(h, "libm.so.6", "libm", "cos", err, sizeof err) != NULL);
    ASSERT_TRUE(dlib_sym(h, "libm.so.6", "libm", "gs_no_such_function", err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "libm's libm.so.6 has no symbol gs_no_such_function");
}

TEST(dl_ffmpeg_not_mapped_until_used_and_loaded_once)
{
    write_tone("x.wav"); /* our own WAV writer: no FFmpeg */
    ASSERT_EQ(mapped("libavformat"), 0);
    ASSERT_EQ(mapped("libavcodec"), 0);
    ASSERT_EQ(ffmpeg_dl_load_count(), 0);

    char err[256] = "";
    audio_info info;
    ASSERT_EQ(audio_probe("x.wav", &info, err, sizeof err), 0);
    ASSERT_STR_EQ(info.format, "wav");
    ASSERT_EQ(mapped("libavformat"), 1);
    ASSERT_EQ(ffmpeg_dl_load_count(), 1);

    /* later calls, direct or through a decode, do not load again */
    ASSERT_EQ(ffmpeg_dl_load(err, sizeof err), 0);
    ASSERT_EQ(ffmpeg_dl_load(NULL, 0), 0);
    audio_pcm pcm;
    ASSERT_EQ(audio_decode_file("x.wav", 60, &pcm, err, sizeof err), 0);
    ASSERT_EQ(pcm.nsamples, 16000);
    audio_pcm_release(&pcm);
    ASSERT_EQ(ffmpeg_dl_load_count(), 1);
    ASSERT_STR_EQ(gs_ff.avcodec_get_name(AV_CODEC_ID_PCM_S16LE), "pcm_s16le");
}

TEST(dl_ffmpeg_missing_library_clear_error)
{
    setenv("GS_FFMPEG_SONAME_TEST", "libavformat.so.999", 1);
    write_tone("x.wav");
    char err[256] = "";
    ASSERT_EQ(ffmpeg_dl_load(err, sizeof err), -1);
    ASSERT_STR_EQ(err, "FFmpeg's libavformat.so.999 is not installed: apt install libavformat999");
    ASSERT_EQ(ffmpeg_dl_load_count(), 1);

    /* every entry point reports it as AUDIO_ERR_UNAVAILABLE (the server's fault, not the
     * file's), without retrying the load */
    err[0] = '\0';
    audio_info info;
    ASSERT_EQ(audio_probe("x.wav", &info, err, sizeof err), AUDIO_ERR_UNAVAILABLE);
    ASSERT_STR_EQ(err, "FFmpeg's libavformat.so.999 is not installed: apt install libavformat999");
    audio_pcm pcm;
    ASSERT_EQ(audio_decode_file("x.wav", 60, &pcm, err, sizeof err), AUDIO_ERR_UNAVAILABLE);
    ASSERT_TRUE(pcm.samples == NULL);
    ASSERT_EQ(audio_decode_to_wav("x.wav", "y.wav", 60, NULL, err, sizeof err),
              AUDIO_ERR_UNAVAILABLE);
    ASSERT_CONTAINS(err, "apt install libavformat999");
    ASSERT_TRUE(access("y.wav", F_OK) != 0);
    ASSERT_EQ(ffmpeg_dl_load_count(), 1);
    ASSERT_EQ(mapped("libavformat"), 0);
}

#ifdef HAVE_SPHINX
TEST(dl_sphinx_missing_library_clear_error)
{
    setenv("GS_SPHINX_SONAME_TEST", "libpocketsphinx.so.999", 1);
    char err[256] = "";
    engine *e = engine_open("sphinx", NULL, err, sizeof err);
    ASSERT_TRUE(e == NULL);
    ASSERT_CONTAINS(err, "pocketsphinx's libpocketsphinx.so.999 is not installed: "
                         "apt install libpocketsphinx999");
    e = engine_open("sphinx", NULL, err, sizeof err);
    ASSERT_TRUE(e == NULL);
    ASSERT_EQ(sphinx_dl_load_count(), 1);
}

TEST(dl_sphinx_not_mapped_until_used_and_loaded_once)
{
    ASSERT_EQ(mapped("libpocketsphinx"), 0);
    char err[256] = "";
    ASSERT_EQ(sphinx_dl_load(err, sizeof err), 0);
    ASSERT_EQ(sphinx_dl_load(err, sizeof err), 0);
    ASSERT_EQ(sphinx_dl_load_count(), 1);
    ASSERT_EQ(mapped("libpocketsphinx"), 1);
    ASSERT_TRUE(gs_sp.ps_init != NULL && gs_sp.cmd_ln_init != NULL);
}
#endif
