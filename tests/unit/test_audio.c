/* Unit tests for src/audio: decode every supported format made at test time with espeak-ng
 * and the ffmpeg CLI, pocketsphinx's real speech, and refuse every kind of bad input. */
#define _GNU_SOURCE
#include "test.h"

#include "audio/audio.h"
#include "core/log.h"
#include "core/util.h"

#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* The runner ends test children with _exit(), which skips LeakSanitizer's exit-time check;
 * run it explicitly so every error path below is leak-checked. */
#define LEAK_CHECK() ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0)
#else
#define LEAK_CHECK() do { } while (0)
#endif

#define SPEECH "Hello world. This is a test of the audio decoder, with a few more words " \
               "so that every codec has several seconds to work with."
#define LIBRIVOX "/usr/share/pocketsphinx/test/data/librivox"
#define LIMIT 14400.0

static void sh(const char *cmd)
{
    int r = system(cmd);
    if (r != 0) test_fail(__FILE__, __LINE__, "command failed (%d): %s", r, cmd);
}

/* The reference speech: x.wav, 22050 Hz mono from espeak-ng; returns its exact duration. */
static double make_speech(void)
{
    sh("espeak-ng -v en-us -s 150 -w x.wav \"" SPEECH "\"");
    audio_info info;
    char err[256] = "";
    if (audio_probe("x.wav", &info, err, sizeof err) != 0)
        test_fail(__FILE__, __LINE__, "probe x.wav: %s", err);
    ASSERT_TRUE(info.duration_s > 3.0);
    return info.duration_s;
}

static double rms(const audio_pcm *p)
{
    double acc = 0;
    for (size_t i = 0; i < p->nsamples; i++) acc += (double)p->samples[i] * p->samples[i];
    return p->nsamples ? sqrt(acc / (double)p->nsamples) : 0;
}

/* Decode path and check rate, length (expected seconds +- tol) and that it is not silent. */
static void check_decode(const char *path, double expect_s, double tol_s)
{
    audio_pcm pcm;
    char err[256] = "";
    int r = audio_decode_file(path, LIMIT, &pcm, err, sizeof err);
    if (r != 0) test_fail(__FILE__, __LINE__, "decode %s: %s", path, err);
    ASSERT_EQ(pcm.rate, 16000);
    ASSERT_NOT_NULL(pcm.samples);
    ASSERT_NEAR((double)pcm.nsamples, expect_s * 16000.0, tol_s * 16000.0);
    ASSERT_TRUE(rms(&pcm) > 300.0);
    audio_pcm_release(&pcm);
    ASSERT_NULL(pcm.samples);
    ASSERT_EQ(pcm.nsamples, 0);
}

/* Make x.wav, convert it with `ffmpeg <args> out`, check probe names and the decode. */
static void check_format(const char *args, const char *out, const char *format,
                         const char *codec)
{
    double dur = make_speech();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -loglevel error -y -i x.wav %s %s", args, out);
    sh(cmd);
    audio_info info;
    char err[256] = "";
    if (audio_probe(out, &info, err, sizeof err) != 0)
        test_fail(__FILE__, __LINE__, "probe %s: %s", out, err);
    ASSERT_STR_EQ(info.format, format);
    ASSERT_STR_EQ(info.codec, codec);
    ASSERT_TRUE(info.src_rate > 0);
    ASSERT_TRUE(info.src_channels >= 1);
    check_decode(out, dur, 0.1);
    LEAK_CHECK();
}

/* Decoding must fail with err containing want (and leave out zeroed). */
static void expect_refused(const char *path, double max_s, const char *want)
{
    audio_pcm pcm;
    char err[256] = "";
    int r = audio_decode_file(path, max_s, &pcm, err, sizeof err);
    if (r == 0) test_fail(__FILE__, __LINE__, "%s decoded (%zu samples), expected \"%s\"",
                          path, pcm.nsamples, want);
    ASSERT_EQ(r, -1);
    ASSERT_NULL(pcm.samples);
    ASSERT_EQ(pcm.nsamples, 0);
    ASSERT_CONTAINS(err, want);
    LEAK_CHECK();
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(data, 1, n, f), n);
    ASSERT_EQ(fclose(f), 0);
}

/* Copy the first n bytes of src to dst (n < 0: half of src). */
static void truncate_copy(const char *src, const char *dst, long n)
{
    struct stat sb;
    ASSERT_EQ(stat(src, &sb), 0);
    if (n < 0) n = (long)sb.st_size / 2;
    ASSERT_TRUE(n < (long)sb.st_size);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "head -c %ld %s > %s", n, src, dst);
    sh(cmd);
}

static int has_encoder(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -hide_banner -encoders 2>/dev/null | grep -q ' %s '", name);
    return system(cmd) == 0;
}

/* ---- good inputs */

TEST(audio_wav_espeak)
{
    double dur = make_speech();
    audio_info info;
    char err[256] = "";
    ASSERT_EQ(audio_probe("x.wav", &info, err, sizeof err), 0);
    ASSERT_STR_EQ(info.format, "wav");
    ASSERT_STR_EQ(info.codec, "pcm_s16le");
    ASSERT_EQ(info.src_rate, 22050);
    ASSERT_EQ(info.src_channels, 1);
    ASSERT_EQ(info.duration_estimated, 0);
    check_decode("x.wav", dur, 0.02);
    LEAK_CHECK();
}

TEST(audio_wav_44k_stereo)
{
    check_format("-ar 44100 -ac 2", "st.wav", "wav", "pcm_s16le");
}

TEST(audio_wav_big_header)
{
    /* bext chunk (602 bytes), LIST/INFO metadata, 24-bit: WAVE_FORMAT_EXTENSIBLE fmt chunk. */
    check_format("-write_bext 1 -metadata title=gpuscribe -metadata artist=tests "
                 "-c:a pcm_s24le -ac 3", "big.wav", "wav", "pcm_s24le");
}

TEST(audio_wav_float_rf64)
{
    check_format("-c:a pcm_f32le -rf64 always", "f.wav", "wav", "pcm_f32le");
}

TEST(audio_wav_streamed_header)
{
    /* espeak-ng --stdout cannot seek back, so its RIFF/data sizes say 0x7ffff000. */
    double dur = make_speech();
    sh("espeak-ng -v en-us -s 150 --stdout \"" SPEECH "\" > s.wav");
    check_decode("s.wav", dur, 0.02);
    LEAK_CHECK();
}

TEST(audio_flac) { check_format("-c:a flac", "x.flac", "flac", "flac"); }
TEST(audio_mp3) { check_format("-c:a libmp3lame", "x.mp3", "mp3", "mp3"); }
TEST(audio_m4a_aac) { check_format("-c:a aac", "x.m4a", "mov", "aac"); }
TEST(audio_ogg_vorbis) { check_format("-c:a libvorbis", "x.ogg", "ogg", "vorbis"); }
TEST(audio_opus) { check_format("-c:a libopus", "x.opus", "ogg", "opus"); }
TEST(audio_webm_opus) { check_format("-c:a libopus", "x.webm", "matroska", "opus"); }
TEST(audio_adts_aac) { check_format("-c:a aac -f adts", "x.aac", "aac", "aac"); }

TEST(audio_webm_streamed_unknown_duration)
{
    /* Written to a pipe, like a browser's MediaRecorder: the container has no duration. */
    double dur = make_speech();
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a libopus -f webm - > p.webm");
    audio_info info;
    char err[256] = "";
    ASSERT_EQ(audio_probe("p.webm", &info, err, sizeof err), 0);
    ASSERT_TRUE(info.duration_s < 0);
    check_decode("p.webm", dur, 0.1);
    LEAK_CHECK();
}

TEST(audio_ignores_extension)
{
    /* An mp3 named .wav and a wav named .txt decode by content. */
    double dur = make_speech();
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a libmp3lame -f mp3 mp3.wav && cp x.wav w.txt");
    audio_info info;
    char err[256] = "";
    ASSERT_EQ(audio_probe("mp3.wav", &info, err, sizeof err), 0);
    ASSERT_STR_EQ(info.format, "mp3");
    check_decode("mp3.wav", dur, 0.1);
    check_decode("w.txt", dur, 0.02);
    LEAK_CHECK();
}

TEST(audio_video_with_audio_track)
{
    if (!has_encoder("mpeg4")) SKIP("ffmpeg has no mpeg4 encoder");
    double dur = make_speech();
    sh("ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=d=3:s=160x120 -i x.wav "
       "-map 0:v -map 1:a -c:v mpeg4 -c:a aac v.mp4");
    check_decode("v.mp4", dur, 0.1);
    LEAK_CHECK();
}

TEST(audio_librivox)
{
    glob_t g;
    if (glob(LIBRIVOX "/*.wav", 0, NULL, &g) != 0) SKIP("no %s (pocketsphinx-testdata)", LIBRIVOX);
    ASSERT_TRUE(g.gl_pathc >= 1);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        audio_info info;
        char err[256] = "";
        if (audio_probe(g.gl_pathv[i], &info, err, sizeof err) != 0)
            test_fail(__FILE__, __LINE__, "probe %s: %s", g.gl_pathv[i], err);
        ASSERT_TRUE(info.duration_s > 1.0);
        check_decode(g.gl_pathv[i], info.duration_s, 0.02);
    }
    globfree(&g);
    LEAK_CHECK();
}

TEST(audio_write_wav_roundtrip)
{
    make_speech();
    audio_pcm a, b;
    char err[256] = "";
    ASSERT_EQ(audio_decode_file("x.wav", LIMIT, &a, err, sizeof err), 0);
    ASSERT_EQ(audio_write_wav("out.wav", &a), 0);

    /* Canonical 44-byte header, then the samples unchanged. */
    FILE *f = fopen("out.wav", "rb");
    ASSERT_NOT_NULL(f);
    unsigned char h[44];
    ASSERT_EQ(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    ASSERT_EQ(memcmp(h, "RIFF", 4), 0);
    ASSERT_EQ(memcmp(h + 8, "WAVEfmt ", 8), 0);
    ASSERT_EQ(h[20] | h[21] << 8, 1);   /* PCM */
    ASSERT_EQ(h[22] | h[23] << 8, 1);   /* mono */
    ASSERT_EQ(h[24] | h[25] << 8 | h[26] << 16, 16000);
    ASSERT_EQ(h[34], 16);
    ASSERT_EQ(memcmp(h + 36, "data", 4), 0);
    ASSERT_EQ((size_t)(h[40] | h[41] << 8 | h[42] << 16 | (size_t)h[43] << 24), a.nsamples * 2);
    struct stat sb;
    ASSERT_EQ(stat("out.wav", &sb), 0);
    ASSERT_EQ(sb.st_size, 44 + (long long)a.nsamples * 2);

    ASSERT_EQ(audio_decode_file("out.wav", LIMIT, &b, err, sizeof err), 0);
    ASSERT_EQ(b.nsamples, a.nsamples);
    ASSERT_EQ(memcmp(a.samples, b.samples, a.nsamples * 2), 0);
    audio_pcm_release(&a);
    audio_pcm_release(&b);

    /* Bad arguments and unwritable places. */
    audio_pcm bad = {NULL, 10, 16000};
    ASSERT_EQ(audio_write_wav("bad.wav", &bad), -1);
    ASSERT_EQ(access("bad.wav", F_OK), -1);
    audio_pcm empty = {NULL, 0, 16000};
    ASSERT_EQ(audio_write_wav("no-such-dir/x.wav", &empty), -1);
    ASSERT_EQ(audio_write_wav("empty.wav", &empty), 0);
    ASSERT_EQ(stat("empty.wav", &sb), 0);
    ASSERT_EQ(sb.st_size, 44);
    LEAK_CHECK();
}

/* ---- bad inputs */

TEST(audio_refuses_missing_file)
{
    expect_refused("does-not-exist.wav", LIMIT, "file not found");
    audio_info info;
    char err[256] = "";
    ASSERT_EQ(audio_probe("does-not-exist.wav", &info, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "file not found");
    LEAK_CHECK();
}

TEST(audio_refuses_directory)
{
    ASSERT_EQ(mkdir("d.wav", 0700), 0);
    expect_refused("d.wav", LIMIT, "not a regular file");
}

TEST(audio_refuses_empty_file)
{
    write_bytes("empty.wav", "", 0);
    expect_refused("empty.wav", LIMIT, "file is empty");
    audio_info info;
    char err[256] = "";
    ASSERT_EQ(audio_probe("empty.wav", &info, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "file is empty");
}

TEST(audio_refuses_random_bytes)
{
    unsigned char data[65536];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof data; i++) {
        x = x * 1664525u + 1013904223u;
        data[i] = (unsigned char)(x >> 24);
    }
    write_bytes("noise.mp3", data, sizeof data);
    expect_refused("noise.mp3", LIMIT, "unrecognised or corrupt audio data");
    write_bytes("noise.wav", data, 100);
    expect_refused("noise.wav", LIMIT, "unrecognised or corrupt audio data");
}

TEST(audio_refuses_text_named_wav)
{
    const char *text = "This is not audio at all, just a text file with a .wav name.\n";
    write_bytes("notes.wav", text, strlen(text));
    expect_refused("notes.wav", LIMIT, "unrecognised or corrupt audio data");
    audio_info info;
    char err[256] = "";
    ASSERT_EQ(audio_probe("notes.wav", &info, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "unrecognised or corrupt audio data");
}

TEST(audio_refuses_truncated_mp3)
{
    make_speech();
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a libmp3lame x.mp3");
    truncate_copy("x.mp3", "half.mp3", -1);
    expect_refused("half.mp3", LIMIT, "truncated or corrupt audio: decoded ");
    truncate_copy("x.mp3", "tiny.mp3", 100);
    expect_refused("tiny.mp3", LIMIT, "unrecognised or corrupt audio data");
}

TEST(audio_refuses_truncated_m4a)
{
    make_speech();
    /* moov at the end (ffmpeg's default): half a file has no index at all. */
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a aac x.m4a");
    truncate_copy("x.m4a", "half.m4a", -1);
    expect_refused("half.m4a", LIMIT, "unrecognised or corrupt audio data");
    truncate_copy("x.m4a", "tiny.m4a", 100);
    expect_refused("tiny.m4a", LIMIT, "unrecognised or corrupt audio data");
    /* moov first (faststart, as phones write): the index promises more than is there. */
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a aac -movflags +faststart fs.m4a");
    truncate_copy("fs.m4a", "fshalf.m4a", -1);
    expect_refused("fshalf.m4a", LIMIT, "truncated or corrupt audio: decoded ");
    truncate_copy("fs.m4a", "fstiny.m4a", 100);
    expect_refused("fstiny.m4a", LIMIT, "unrecognised or corrupt audio data");
}

TEST(audio_refuses_no_audio_stream)
{
    if (has_encoder("mpeg4")) {
        sh("ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=d=1:s=160x120 -c:v mpeg4 v.mp4");
        expect_refused("v.mp4", LIMIT, "not an audio file: no audio stream");
        audio_info info;
        char err[256] = "";
        ASSERT_EQ(audio_probe("v.mp4", &info, err, sizeof err), -1);
        ASSERT_STR_EQ(err, "not an audio file: no audio stream");
    } else {
        printf("    (no mpeg4 encoder: subtitle-only check only)\n");
    }
    write_bytes("s.srt", "1\n00:00:00,000 --> 00:00:01,000\nhello\n\n", 40);
    sh("ffmpeg -nostdin -loglevel error -i s.srt -c:s srt subs.mkv");
    expect_refused("subs.mkv", LIMIT, "not an audio file: no audio stream");
}

TEST(audio_refuses_too_long_known_duration)
{
    make_speech();
    expect_refused("x.wav", 1.0, "exceeds the limit of 1 s");
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a libopus x.opus");
    audio_pcm pcm;
    char err[256] = "";
    ASSERT_EQ(audio_decode_file("x.opus", 1.0, &pcm, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "duration ");
    ASSERT_CONTAINS(err, " s exceeds the limit of 1 s");
    LEAK_CHECK();
}

TEST(audio_refuses_too_long_while_decoding)
{
    /* No duration in the container: the limit is enforced as samples come out. */
    make_speech();
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a libopus -f webm - > p.webm");
    expect_refused("p.webm", 1.0, "audio is longer than the limit of 1 s");
}

TEST(audio_null_err_buffer)
{
    audio_pcm pcm;
    audio_info info;
    ASSERT_EQ(audio_decode_file("missing.wav", LIMIT, &pcm, NULL, 0), -1);
    ASSERT_EQ(audio_probe("missing.wav", &info, NULL, 0), -1);
    char tiny[8];
    ASSERT_EQ(audio_decode_file("missing.wav", LIMIT, &pcm, tiny, sizeof tiny), -1);
    ASSERT_STR_EQ(tiny, "file no");
    LEAK_CHECK();
}

TEST(audio_ffmpeg_log_is_quiet_and_routed)
{
    /* FFmpeg complains about a cut mp4 ("moov atom not found"): nothing reaches stderr at
     * the default level; at debug it comes through our log with the "ffmpeg" tag. */
    make_speech();
    sh("ffmpeg -nostdin -loglevel error -i x.wav -c:a aac x.m4a");
    truncate_copy("x.m4a", "half.m4a", -1);
    int fd = open("stderr.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_TRUE(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    ASSERT_TRUE(saved >= 0);
    ASSERT_EQ(dup2(fd, 2), 2);
    close(fd);
    log_set_level(LOG_INFO);
    expect_refused("half.m4a", LIMIT, "unrecognised or corrupt audio data");
    log_set_level(LOG_DEBUG);
    expect_refused("half.m4a", LIMIT, "unrecognised or corrupt audio data");
    log_set_level(LOG_INFO);
    fflush(stderr);
    ASSERT_EQ(dup2(saved, 2), 2);
    close(saved);
    char *text = read_file("stderr.txt", 1 << 20, NULL);
    ASSERT_NOT_NULL(text);
    /* Exactly the debug pass wrote lines, all of them through our logger. */
    ASSERT_CONTAINS(text, "ffmpeg: ");
    ASSERT_CONTAINS(text, "moov atom not found");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        ASSERT_CONTAINS(line, "debug");
    free(text);
    LEAK_CHECK();
}

/* Streaming decode to a WAV file gives exactly the samples of the in-memory decode, and a
 * refused input leaves no file behind. */
TEST(audio_decode_to_wav_matches_memory_decode)
{
    ASSERT_EQ(system("espeak-ng -v en-us -s 170 -w sp.wav 'streaming decode to a file keeps memory flat' "
                     "&& ffmpeg -loglevel error -y -i sp.wav -ac 2 -ar 44100 -c:a libmp3lame sp.mp3"), 0);
    char err[256];
    audio_pcm mem = {0}, back = {0};
    ASSERT_EQ(audio_decode_file("sp.mp3", 0, &mem, err, sizeof err), 0);
    double dur = 0;
    ASSERT_EQ(audio_decode_to_wav("sp.mp3", "out.wav", 0, &dur, err, sizeof err), 0);
    ASSERT_NEAR(dur, (double)mem.nsamples / 16000, 1e-9);
    ASSERT_EQ(audio_decode_file("out.wav", 0, &back, err, sizeof err), 0);
    ASSERT_EQ(back.nsamples, mem.nsamples);
    ASSERT_EQ(memcmp(back.samples, mem.samples, mem.nsamples * 2), 0);
    audio_pcm_release(&mem);
    audio_pcm_release(&back);
    FILE *f = fopen("junk.bin", "w");
    fputs("this is not audio at all, not even close", f);
    fclose(f);
    ASSERT_EQ(audio_decode_to_wav("junk.bin", "bad.wav", 0, NULL, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "unrecognised or corrupt");
    ASSERT_EQ(access("bad.wav", F_OK), -1);
    ASSERT_EQ(audio_decode_to_wav("sp.mp3", "long.wav", 1.0, NULL, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "limit");
    ASSERT_EQ(access("long.wav", F_OK), -1);
    ASSERT_EQ(audio_decode_to_wav("sp.mp3", "/nonexistent/dir/x.wav", 0, NULL, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "cannot write");
}

/* A write that fails mid-decode (here a file-size limit; on a server, a full disk) ends the
 * decode with "cannot write ...", not "out of memory", and leaves no temporary file. */
TEST(audio_decode_to_wav_write_failure_mid_decode)
{
    ASSERT_EQ(system("ffmpeg -nostdin -loglevel error -y -f lavfi -i anoisesrc=r=8000:d=60 "
                     "-c:a libmp3lame -b:a 32k n.mp3"), 0);
    /* 60 s decode to 1.9 MB of WAV; allow 256 KB (this test's own process only) */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 256 * 1024, .rlim_max = RLIM_INFINITY};
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
    char err[256] = "";
    ASSERT_EQ(audio_decode_to_wav("n.mp3", "n.wav", 0, NULL, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "cannot write");
    ASSERT_CONTAINS(err, strerror(EFBIG));
    ASSERT_EQ(access("n.wav", F_OK), -1);
    ASSERT_EQ(test_temp_files("."), 0);
    glob_t g;
    ASSERT_EQ(glob("n.wav*", 0, NULL, &g), GLOB_NOMATCH);
    globfree(&g);
    rl.rlim_cur = RLIM_INFINITY;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
    LEAK_CHECK();
}
