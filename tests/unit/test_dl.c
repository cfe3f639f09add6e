/* Unit tests for the lazy loading of FFmpeg (src/audio/ffmpeg_dl.c), pocketsphinx
 * (src/engine/sphinx_dl.c), libcurl (src/core/curl_dl.c), libssh (src/ssh/ssh_dl.c) and
 * core/dlib: nothing is mapped before the first use, a missing
 * library gives an actionable error (and callers report it as the server's fault), the load
 * runs once however often it is asked for. Each test runs in a fresh forked process, so every
 * test sees the loaders' pthread_once unrun. */
#include "test.h"

#include "audio/audio.h"
#include "audio/ffmpeg_dl.h"
#include "core/curl_dl.h"
#include "core/dlib.h"
#include "core/util.h"
#include "engine/engine.h"
#include "engine/sphinx_dl.h"
#include "ssh/ssh.h"
#include "ssh/ssh_dl.h"
#include "vast/vast.h"
#include "worker/worker_client.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    dlib_package("libssh.so.4", p, sizeof p);   /* departs from the policy: by the table */
    ASSERT_STR_EQ(p, "libssh-4");
    dlib_package("libcurl.so.4", p, sizeof p);
    ASSERT_STR_EQ(p, "libcurl4");
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

/* ---- dlib_once: the loaders' run-once */

static atomic_int g_runs;

static int slow_load(char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    atomic_fetch_add(&g_runs, 1);
    usleep(20000);   /* long enough for every thread below to arrive while it runs */
    return 0;
}

static dlib_once g_test_once = DLIB_ONCE_INIT;

static void *ask(void *rc)
{
    *(int *)rc = dlib_once_run(&g_test_once, slow_load, NULL, 0);
    return NULL;
}

TEST(dlib_once_runs_once_across_threads)
{
    pthread_t th[8];
    int rc[8];
    for (int i = 0; i < 8; i++) {
        rc[i] = -2;
        ASSERT_EQ(pthread_create(&th[i], NULL, ask, &rc[i]), 0);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) ASSERT_EQ(rc[i], 0);
    ASSERT_EQ(atomic_load(&g_runs), 1);
    ASSERT_EQ(dlib_once_loads(&g_test_once), 1);
    ASSERT_EQ(dlib_once_ok(&g_test_once), 1);
}

static int failing_load(char *err, size_t errlen)
{
    atomic_fetch_add(&g_runs, 1);
    snprintf(err, errlen, "libnope's libnope.so.1 is not installed: apt install libnope1");
    return -1;
}

TEST(dlib_once_keeps_a_failure)
{
    dlib_once o = DLIB_ONCE_INIT;
    ASSERT_EQ(dlib_once_ok(&o), 0);
    ASSERT_EQ(dlib_once_loads(&o), 0);
    char err[128] = "";
    ASSERT_EQ(dlib_once_run(&o, failing_load, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "libnope's libnope.so.1 is not installed: apt install libnope1");
    err[0] = '\0';
    ASSERT_EQ(dlib_once_run(&o, failing_load, err, sizeof err), -1);   /* not retried */
    ASSERT_STR_EQ(err, "libnope's libnope.so.1 is not installed: apt install libnope1");
    ASSERT_EQ(atomic_load(&g_runs), 1);
    ASSERT_EQ(dlib_once_loads(&o), 1);
    ASSERT_EQ(dlib_once_ok(&o), 0);
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

/* ---- libcurl (the unit tests link it for their own requests: mapping is checked on the
 * server, tests/integration/test_worker_build.sh) */

TEST(dl_curl_loaded_once)
{
    ASSERT_EQ(curl_dl_load_count(), 0);
    char err[256] = "";
    ASSERT_EQ(curl_dl_load(err, sizeof err), 0);
    CURL *c = curl_dl_easy(err, sizeof err);
    ASSERT_NOT_NULL(c);
    gs_curl.curl_easy_cleanup(c);
    ASSERT_EQ(curl_dl_load_count(), 1);
    ASSERT_STR_EQ(gs_curl.curl_easy_strerror(CURLE_OK), "No error");
    curl_dl_cleanup();
}

TEST(dl_curl_missing_library_clear_error)
{
    setenv("GS_CURL_SONAME_TEST", "libcurl.so.999", 1);
    char err[256] = "";
    ASSERT_TRUE(curl_dl_easy(err, sizeof err) == NULL);
    ASSERT_STR_EQ(err, "libcurl's libcurl.so.999 is not installed: apt install libcurl999");
    /* every client says so instead of failing a request it never sent */
    vast_client *vc = vast_client_new("http://127.0.0.1:9", "made-up-key");
    vast_instance in;
    vast_error e;
    ASSERT_EQ(vast_show_instance(vc, 1, &in, &e), -1);
    ASSERT_EQ(e.kind, VAST_ERR_NETWORK);
    ASSERT_CONTAINS(e.message, "apt install libcurl999");
    vast_client_free(vc);
    json_t *h = NULL;
    err[0] = '\0';
    ASSERT_EQ(worker_client_health("http://127.0.0.1:9", &h, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "libcurl's libcurl.so.999 is not installed");
    ASSERT_TRUE(h == NULL);
    ASSERT_EQ(curl_dl_load_count(), 1);
    curl_dl_cleanup();   /* nothing loaded: nothing to clean */
}

/* ---- libssh (not linked into the tests either) */

static char *keygen(const char *data)
{
    char *cmd = xasprintf("mkdir -p %s/ssh && ssh-keygen -q -t ed25519 -N '' -C someone "
                          "-f %s/ssh/id_ed25519", data, data);
    ASSERT_EQ(system(cmd), 0);
    free(cmd);
    char *pub = xasprintf("%s/ssh/id_ed25519.pub", data);
    char *text = read_file(pub, 4096, NULL);
    free(pub);
    ASSERT_NOT_NULL(text);
    text[strcspn(text, " ")] = '\0';
    char *b64 = text + strlen(text) + 1;
    b64[strcspn(b64, " \n")] = '\0';
    char *line = xasprintf("%s %s gpuscribe", text, b64);
    free(text);
    return line;
}

TEST(dl_ssh_existing_key_read_without_libssh)
{
    char *data = xasprintf("%s/data", test_tmpdir());
    char *want = keygen(data);   /* OpenSSH's key and .pub, as after a first start */
    ASSERT_EQ(mapped("/libssh.so"), 0);
    char err[256] = "";
    char *pub = sshc_app_key(data, err, sizeof err);
    ASSERT_STR_EQ(pub, want);
    ASSERT_EQ(mapped("/libssh.so"), 0);
    ASSERT_EQ(ssh_dl_load_count(), 0);
    /* a client needs it: connecting loads it (and fails here: nothing listens on port 9) */
    char *key = sshc_app_key_path(data), *kh = xasprintf("%s/known_hosts", data);
    sshc_target t = {.host = "127.0.0.1", .port = 9, .key_path = key, .known_hosts = kh,
                     .connect_timeout_s = 2};
    enum sshc_err kind = SSHC_OK;
    ASSERT_TRUE(sshc_connect(&t, &kind, err, sizeof err) == NULL);
    ASSERT_EQ(kind, SSHC_ERR_CONNECT);
    ASSERT_EQ(mapped("/libssh.so"), 1);
    ASSERT_EQ(ssh_dl_load_count(), 1);
    free(data); free(want); free(pub); free(key); free(kh);
}

TEST(dl_ssh_stale_or_foreign_pub_is_derived_from_the_key)
{
    char *data = xasprintf("%s/data", test_tmpdir());
    char *want = keygen(data);
    char *key = sshc_app_key_path(data), *pubf = xasprintf("%s.pub", key);
    /* a .pub older than the key (the key replaced by hand): not trusted, rewritten */
    const char *other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOther x\n";
    ASSERT_EQ(write_file_atomic(pubf, other, strlen(other), 0644), 0);
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    ASSERT_EQ(utimensat(AT_FDCWD, pubf, old, 0), 0);
    char err[256] = "";
    char *pub = sshc_app_key(data, err, sizeof err);
    ASSERT_STR_EQ(pub, want);
    ASSERT_EQ(mapped("/libssh.so"), 1);
    char *text = read_file(pubf, 4096, NULL);
    ASSERT_TRUE(str_starts(text, want));
    free(text);
    free(pub);
    /* a newer file that is not a public key line: derived too */
    ASSERT_EQ(write_file_atomic(pubf, "hello\n", 6, 0644), 0);
    pub = sshc_app_key(data, err, sizeof err);
    ASSERT_STR_EQ(pub, want);
    text = read_file(pubf, 4096, NULL);
    ASSERT_TRUE(str_starts(text, want));
    free(text);
    free(pub); free(data); free(want); free(key); free(pubf);
}

TEST(dl_ssh_missing_library_clear_error)
{
    setenv("GS_SSH_SONAME_TEST", "libssh.so.999", 1);
    char *data = xasprintf("%s/data", test_tmpdir());
    char err[256] = "";
    ASSERT_TRUE(sshc_app_key(data, err, sizeof err) == NULL);   /* a new key needs libssh */
    ASSERT_STR_EQ(err, "libssh's libssh.so.999 is not installed: apt install libssh999");
    char *key = sshc_app_key_path(data), *kh = xasprintf("%s/known_hosts", data);
    sshc_target t = {.host = "127.0.0.1", .port = 9, .key_path = key, .known_hosts = kh};
    enum sshc_err kind = SSHC_OK;
    err[0] = '\0';
    ASSERT_TRUE(sshc_connect(&t, &kind, err, sizeof err) == NULL);
    ASSERT_EQ(kind, SSHC_ERR_IO);
    ASSERT_CONTAINS(err, "apt install libssh999");
    ASSERT_EQ(ssh_dl_load_count(), 1);
    ASSERT_EQ(mapped("/libssh.so"), 0);
    free(data); free(key); free(kh);
}
