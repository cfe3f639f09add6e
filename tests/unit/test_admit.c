/* Unit tests for src/audio/admit: what an upload must pass before it is decoded. Files are
 * made at test time (the ffmpeg CLI, espeak-ng, WAV headers written here) and probed for
 * real; the space check and the decode-result mapping are tested on their own. */
#define _GNU_SOURCE
#include "test.h"

#include "audio/admit.h"
#include "audio/audio.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0)
#else
#define LEAK_CHECK() do { } while (0)
#endif

#define HOURS_12 (12 * 3600.0)

static void sh(const char *cmd)
{
    int r = system(cmd);
    if (r != 0) test_fail(__FILE__, __LINE__, "command failed (%d): %s", r, cmd);
}

static void put_le(unsigned char *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A 16-bit mono PCM WAV at rate with nsamples of silence, whose data chunk (and RIFF size)
 * claim claim_bytes (0: the truth). */
static void write_wav(const char *path, uint32_t rate, uint32_t nsamples, uint32_t claim_bytes)
{
    unsigned char h[44];
    uint32_t data = claim_bytes ? claim_bytes : nsamples * 2;
    memcpy(h, "RIFF", 4);
    put_le(h + 4, 36 + data, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, 16, 4);
    put_le(h + 20, 1, 2);
    put_le(h + 22, 1, 2);
    put_le(h + 24, rate, 4);
    put_le(h + 28, rate * 2, 4);
    put_le(h + 32, 2, 2);
    put_le(h + 34, 16, 2);
    memcpy(h + 36, "data", 4);
    put_le(h + 40, data, 4);
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(h, 1, sizeof h, f), sizeof h);
    for (uint32_t i = 0; i < nsamples; i++) ASSERT_EQ(fwrite("\0\0", 1, 2, f), 2);
    ASSERT_EQ(fclose(f), 0);
}

static long long file_size(const char *path)
{
    struct stat sb;
    ASSERT_EQ(stat(path, &sb), 0);
    return (long long)sb.st_size;
}

static int admit(const char *path, double max_s, audio_info *info, char *err, size_t n)
{
    err[0] = '\0';
    return audio_admit(path, ".", max_s, info, err, n);
}

/* ---- the silence bomb: a FLAC of digital silence declaring hours in a few KB */

TEST(admit_refuses_silence_flac_bomb)
{
    /* the largest FLAC block (65535 samples) of silence is a few bytes: 2 h in ~40 KB */
    sh("ffmpeg -nostdin -loglevel error -y -f lavfi -i anullsrc=r=16000:cl=mono -t 7200 "
       "-sample_fmt s16 -c:a flac -frame_size 65535 -strict -2 bomb.flac");
    long long size = file_size("bomb.flac");
    ASSERT_TRUE(size < 7200 * 100);   /* it is a bomb: under the floor */
    audio_info info;
    char err[256];
    ASSERT_EQ(admit("bomb.flac", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    /* what FFmpeg reports is the declared length, not an estimate */
    ASSERT_STR_EQ(info.format, "flac");
    ASSERT_NEAR(info.duration_s, 7200, 0.01);
    ASSERT_EQ(info.duration_estimated, 0);
    ASSERT_CONTAINS(err, "declared length 2 h is implausible for a ");
    ASSERT_CONTAINS(err, " KB file");
    /* implausible wins over too long: the length is the lie, not the complaint */
    ASSERT_EQ(admit("bomb.flac", 3600, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_CONTAINS(err, "implausible");
    LEAK_CHECK();
}

TEST(admit_short_silence_is_not_a_bomb)
{
    /* under AUDIO_ADMIT_PLAUSIBLE_S the floor does not apply: 5 min of silence is fine */
    sh("ffmpeg -nostdin -loglevel error -y -f lavfi -i anullsrc=r=16000:cl=mono -t 300 "
       "-sample_fmt s16 -c:a flac -frame_size 65535 -strict -2 quiet.flac");
    ASSERT_TRUE(file_size("quiet.flac") < 300 * 100);
    audio_info info;
    char err[256];
    ASSERT_EQ(admit("quiet.flac", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_NEAR(info.duration_s, 300, 0.01);
    LEAK_CHECK();
}

/* ---- sample rates */

TEST(admit_refuses_implausible_sample_rates)
{
    audio_info info;
    char err[256];
    write_wav("hz1.wav", 1, 1000, 0); /* 2 KB "of 1000 s" */
    ASSERT_EQ(admit("hz1.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_EQ(info.src_rate, 1);
    ASSERT_NEAR(info.duration_s, 1000, 0.01);
    ASSERT_STR_EQ(err, "sample rate 1 Hz is not plausible for speech (accepted: 2000-768000 Hz)");
    write_wav("r1999.wav", 1999, 1000, 0);
    ASSERT_EQ(admit("r1999.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_CONTAINS(err, "sample rate 1999 Hz");
    write_wav("r800k.wav", 800000, 1000, 0);
    ASSERT_EQ(admit("r800k.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_CONTAINS(err, "sample rate 800000 Hz");
    /* the bounds themselves are accepted */
    write_wav("r2000.wav", 2000, 1000, 0);
    ASSERT_EQ(admit("r2000.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    write_wav("r768k.wav", 768000, 1000, 0);
    ASSERT_EQ(admit("r768k.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    LEAK_CHECK();
}

/* ---- headers that lie about the length */

/* Copy src to dst with the FLAC STREAMINFO's total-samples field set to seconds' worth. */
static void flac_claim(const char *src, const char *dst, double seconds)
{
    FILE *f = fopen(src, "rb");
    ASSERT_NOT_NULL(f);
    static unsigned char d[1 << 22];
    size_t n = fread(d, 1, sizeof d, f);
    fclose(f);
    ASSERT_TRUE(n > 42 && n < sizeof d && memcmp(d, "fLaC", 4) == 0);
    /* fLaC, block header (4), min/max block (4), min/max frame (6), then 64 bits:
     * rate 20, channels-1 3, bits-1 5, total samples 36 */
    unsigned char *p = d + 18;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    uint64_t rate = v >> 44;
    uint64_t total = (uint64_t)(seconds * (double)rate);
    v = (v & ~((1ULL << 36) - 1)) | total;
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)(v & 0xff);
    f = fopen(dst, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(d, 1, n, f), n);
    ASSERT_EQ(fclose(f), 0);
}

TEST(admit_declared_length_liars)
{
    audio_info info;
    char err[256];
    sh("espeak-ng -v en-us -s 150 -w sp.wav 'a short sentence, and a few more words to it' && "
       "ffmpeg -nostdin -loglevel error -y -i sp.wav -c:a flac sp.flac && "
       "ffmpeg -nostdin -loglevel error -y -i sp.wav -c:a libmp3lame -b:a 32k sp.mp3");
    ASSERT_EQ(admit("sp.flac", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    double real = info.duration_s;
    ASSERT_TRUE(real > 2 && real < 10);

    /* a FLAC whose STREAMINFO claims 24 h: refused from its header, as a bomb would be */
    flac_claim("sp.flac", "liar24h.flac", 86400);
    ASSERT_EQ(admit("liar24h.flac", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_NEAR(info.duration_s, 86400, 0.01);
    ASSERT_CONTAINS(err, "declared length 24 h is implausible");
    /* claiming 30 min with the few KB per second its real audio holds: under the floor */
    flac_claim("sp.flac", "liar30m.flac", 1800);
    ASSERT_EQ(admit("liar30m.flac", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_CONTAINS(err, "declared length 30 min is implausible");
    /* claiming 5 min passes admission (short claims cost little); the decode then finds the
     * truncation and the result maps to 400 */
    flac_claim("sp.flac", "liar5m.flac", 300);
    ASSERT_EQ(admit("liar5m.flac", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    int rc = audio_decode_to_wav("liar5m.flac", "liar5m.wav", HOURS_12, NULL, err, sizeof err);
    ASSERT_EQ(rc, -1);
    ASSERT_CONTAINS(err, "truncated or corrupt audio: decoded ");
    ASSERT_CONTAINS(err, "of the declared 300.0 s");
    ASSERT_EQ(audio_admit_decode_status(rc, HOURS_12, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_CONTAINS(err, "truncated");
    ASSERT_EQ(access("liar5m.wav", F_OK), -1);

    /* an MP3 whose Xing/Info header counts frames for hours */
    FILE *f = fopen("sp.mp3", "rb");
    ASSERT_NOT_NULL(f);
    static unsigned char m[1 << 20];
    size_t n = fread(m, 1, sizeof m, f);
    fclose(f);
    unsigned char *x = memmem(m, n < 4096 ? n : 4096, "Info", 4);
    if (!x) x = memmem(m, n < 4096 ? n : 4096, "Xing", 4);
    ASSERT_NOT_NULL(x);
    ASSERT_TRUE(x[7] & 1); /* the frame count is present */
    uint32_t frames = 10000000;
    for (int i = 0; i < 4; i++) x[8 + i] = (unsigned char)(frames >> (8 * (3 - i)));
    f = fopen("liar.mp3", "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(m, 1, n, f), n);
    ASSERT_EQ(fclose(f), 0);
    ASSERT_EQ(admit("liar.mp3", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_TRUE(info.duration_s > 3600);
    ASSERT_CONTAINS(err, "implausible");

    /* a WAV whose data chunk claims 2 GB: FFmpeg bounds it by the file (an estimate of the
     * real 0.5 s), so it is admitted and decodes to what the file holds */
    write_wav("liar.wav", 16000, 8000, 0x7ffffff0u);
    ASSERT_EQ(admit("liar.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_NEAR(info.duration_s, 0.5, 0.01);
    double dur = 0;
    ASSERT_EQ(audio_decode_to_wav("liar.wav", "liar.out.wav", HOURS_12, &dur, err, sizeof err), 0);
    ASSERT_NEAR(dur, 0.5, 0.01);
    LEAK_CHECK();
}

/* ---- real speech is admitted; too long is 413 */

TEST(admit_admits_speech)
{
    audio_info info;
    char err[256];
    sh("espeak-ng -v en-us -s 150 -w sp.wav 'Hello world. This is a test of admission, with a "
       "few more words so that there is something to hear.' && "
       "ffmpeg -nostdin -loglevel error -y -i sp.wav -c:a libopus -b:a 16k sp.ogg && "
       "ffmpeg -nostdin -loglevel error -y -i sp.wav -c:a libopus -f webm - > streamed.webm");
    ASSERT_EQ(admit("sp.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_STR_EQ(info.format, "wav");
    ASSERT_EQ(info.src_rate, 22050);
    ASSERT_TRUE(info.duration_s > 3);
    ASSERT_EQ(admit("sp.ogg", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_STR_EQ(info.codec, "opus");
    /* a streamed webm says no length: admitted, its decode is what bounds it */
    ASSERT_EQ(admit("streamed.webm", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_TRUE(info.duration_s < 0);
    ASSERT_EQ(admit("streamed.webm", 1.0, &info, err, sizeof err), AUDIO_ADMIT_OK);
    int rc = audio_decode_to_wav("streamed.webm", "s.wav", 1.0, NULL, err, sizeof err);
    ASSERT_EQ(rc, -1);
    ASSERT_EQ(audio_admit_decode_status(rc, 1.0, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    ASSERT_STR_EQ(err, "audio is longer than the limit of 1 s (MAX_AUDIO_HOURS=0.000277778)");
    /* info is optional; what the probe refuses is 400 with its message */
    ASSERT_EQ(audio_admit("sp.wav", ".", HOURS_12, NULL, err, sizeof err), AUDIO_ADMIT_OK);
    FILE *f = fopen("notes.txt", "w");
    ASSERT_NOT_NULL(f);
    fputs("meeting notes, not audio", f);
    fclose(f);
    ASSERT_EQ(admit("notes.txt", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_STR_EQ(err, "unrecognised or corrupt audio data");
    ASSERT_EQ(admit("missing.wav", HOURS_12, &info, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_STR_EQ(err, "file not found");
    LEAK_CHECK();
}

TEST(admit_refuses_too_long)
{
    audio_info info;
    char err[256];
    sh("ffmpeg -nostdin -loglevel error -y -f lavfi -i anoisesrc=r=8000:d=60 -c:a pcm_s16le n.wav && "
       "ffmpeg -nostdin -loglevel error -y -i n.wav -c:a libmp3lame -b:a 32k -write_xing 0 n.mp3");
    /* MAX_AUDIO_HOURS=0.01: 36 s */
    ASSERT_EQ(admit("n.wav", 0.01 * 3600, &info, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    ASSERT_STR_EQ(err, "audio is 1 min long; the limit is 36 s (MAX_AUDIO_HOURS=0.01)");
    ASSERT_EQ(admit("n.wav", 60, &info, err, sizeof err), AUDIO_ADMIT_OK);
    /* an MP3 without a Xing header: its length is only a bitrate estimate, refused all the same */
    ASSERT_EQ(admit("n.mp3", 36, &info, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    ASSERT_EQ(info.duration_estimated, 1);
    ASSERT_CONTAINS(err, "audio is about 1 min long");
    LEAK_CHECK();
}

TEST(admit_info_policy_alone)
{
    char err[256];
    audio_info in = {.duration_s = 86400, .src_rate = 16000, .src_channels = 1};
    /* 24 h in 2.4 GB is plausible; too long for 12 h */
    ASSERT_EQ(audio_admit_info(&in, 2400000000LL, HOURS_12, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    ASSERT_STR_EQ(err, "audio is 24 h long; the limit is 12 h (MAX_AUDIO_HOURS=12)");
    /* max_audio_s <= 0 means the hard limit (24 h): admitted */
    ASSERT_EQ(audio_admit_info(&in, 2400000000LL, 0, err, sizeof err), AUDIO_ADMIT_OK);
    /* at the floor exactly: plausible; a byte less: not */
    in.duration_s = 3600;
    ASSERT_EQ(audio_admit_info(&in, 360000, HOURS_12, err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_EQ(audio_admit_info(&in, 359999, HOURS_12, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_STR_EQ(err, "declared length 1 h is implausible for a 352 KB file (under 100 bytes "
                       "per second of audio)");
    /* an unknown size skips the floor; the slack of 0.5 s past the limit is allowed */
    ASSERT_EQ(audio_admit_info(&in, -1, HOURS_12, err, sizeof err), AUDIO_ADMIT_OK);
    in.duration_s = 36.4;
    ASSERT_EQ(audio_admit_info(&in, 1000000, 36, err, sizeof err), AUDIO_ADMIT_OK);
    in.duration_s = 36.6;
    ASSERT_EQ(audio_admit_info(&in, 1000000, 36, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    /* no length known: only the rate counts */
    in.duration_s = -1;
    ASSERT_EQ(audio_admit_info(&in, 10, 36, err, sizeof err), AUDIO_ADMIT_OK);
    in.src_rate = 0;
    ASSERT_EQ(audio_admit_info(&in, 10, 36, err, sizeof err), AUDIO_ADMIT_BAD);
    /* err may be NULL */
    ASSERT_EQ(audio_admit_info(&in, 10, 36, NULL, 0), AUDIO_ADMIT_BAD);
}

/* ---- free space */

TEST(admit_space_check)
{
    char err[256];
    long long gb = 1LL << 30, mb = 1LL << 20;
    ASSERT_EQ(audio_admit_space(1400 * mb, 200 * mb, "prepare this audio", err, sizeof err),
              AUDIO_ADMIT_NO_SPACE);
    ASSERT_STR_EQ(err, "not enough disk space in DATA_DIR to prepare this audio: needs 1.4 GB "
                       "plus 64 MB to spare, 200 MB free");
    /* the spare room counts: 10 MB needed with 70 MB free leaves under 64 MB */
    ASSERT_EQ(audio_admit_space(10 * mb, 70 * mb, "store this upload", err, sizeof err),
              AUDIO_ADMIT_NO_SPACE);
    ASSERT_CONTAINS(err, "to store this upload: needs 10 MB plus 64 MB to spare, 70 MB free");
    ASSERT_EQ(audio_admit_space(10 * mb, 74 * mb, "x", err, sizeof err), AUDIO_ADMIT_OK);
    ASSERT_EQ(audio_admit_space(0, 64 * mb - 1, "x", err, sizeof err), AUDIO_ADMIT_NO_SPACE);
    ASSERT_EQ(audio_admit_space(2 * gb, 3 * gb, "x", err, sizeof err), AUDIO_ADMIT_OK);
    /* unknown free space is never a refusal */
    ASSERT_EQ(audio_admit_space(2 * gb, -1, "x", err, sizeof err), AUDIO_ADMIT_OK);

    /* what a length needs: 36000 B/s and the WAV header */
    ASSERT_EQ(audio_admit_need_bytes(3600), 3600LL * 36000 + 44);
    ASSERT_EQ(audio_admit_need_bytes(-1), 0);
    ASSERT_EQ(audio_admit_need_bytes(0.5), 18044);

    /* statvfs */
    ASSERT_TRUE(audio_admit_free_bytes(".") > 0);
    ASSERT_EQ(audio_admit_free_bytes("does/not/exist"), -1);
    ASSERT_EQ(audio_admit_free_bytes(NULL), -1);
}

/* ---- the decoder's results, as the status to answer */

TEST(admit_decode_status_mapping)
{
    char err[256];
    ASSERT_EQ(audio_admit_decode_status(0, HOURS_12, err, sizeof err), 0);

    snprintf(err, sizeof err, "FFmpeg's libavformat.so.59 is not installed");
    ASSERT_EQ(audio_admit_decode_status(AUDIO_ERR_UNAVAILABLE, HOURS_12, err, sizeof err),
              AUDIO_ADMIT_FAULT);
    ASSERT_STR_EQ(err, "the server cannot decode audio: FFmpeg's libavformat.so.59 is not installed");

    snprintf(err, sizeof err, "cannot write the decoded audio: %s", strerror(ENOSPC));
    ASSERT_EQ(audio_admit_decode_status(-1, HOURS_12, err, sizeof err), AUDIO_ADMIT_NO_SPACE);
    ASSERT_CONTAINS(err, "not enough disk space in DATA_DIR");
    ASSERT_NOT_CONTAINS(err, "cannot write");
    snprintf(err, sizeof err, "cannot write '/srv/data/jobs/x/audio.wav': %s", strerror(EDQUOT));
    ASSERT_EQ(audio_admit_decode_status(-1, HOURS_12, err, sizeof err), AUDIO_ADMIT_NO_SPACE);

    snprintf(err, sizeof err, "cannot write '/srv/x.wav': %s", strerror(EACCES));
    ASSERT_EQ(audio_admit_decode_status(-1, HOURS_12, err, sizeof err), AUDIO_ADMIT_FAULT);
    ASSERT_CONTAINS(err, strerror(EACCES));

    snprintf(err, sizeof err, "audio is longer than the limit of 36 s");
    ASSERT_EQ(audio_admit_decode_status(-1, 36, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    ASSERT_STR_EQ(err, "audio is longer than the limit of 36 s (MAX_AUDIO_HOURS=0.01)");
    snprintf(err, sizeof err, "duration 99999 s exceeds the limit of 43200 s");
    ASSERT_EQ(audio_admit_decode_status(-1, HOURS_12, err, sizeof err), AUDIO_ADMIT_TOO_LONG);
    ASSERT_STR_EQ(err, "audio is longer than the limit of 12 h (MAX_AUDIO_HOURS=12)");

    snprintf(err, sizeof err, "truncated or corrupt audio: no audio could be decoded");
    ASSERT_EQ(audio_admit_decode_status(-1, HOURS_12, err, sizeof err), AUDIO_ADMIT_BAD);
    ASSERT_STR_EQ(err, "truncated or corrupt audio: no audio could be decoded");
}
