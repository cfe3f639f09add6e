/* Unit tests for src/audio/opus: a 10 s range from the middle of real speech (LibriVox) in a
 * WAV with an extra chunk before its data, encoded and decoded back: length, size per audio
 * hour, alignment and correlation with the original; the decimating low-pass (a 12 kHz tone
 * in a 48 kHz stereo stream must not alias to 4 kHz; 1 kHz passes at unit gain; channels are
 * averaged); cancel; refusals (not Opus, corrupt, too long, bad ranges and arguments). */
#define _GNU_SOURCE
#include "test.h"

#include "audio/audio.h"
#include "audio/opus.h"
#include "core/util.h"

#include <math.h>
#include <opusenc.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIBRIVOX "/usr/share/pocketsphinx/test/data/librivox"

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i)); }

/* A 16 kHz mono WAV whose data chunk does not start at byte 44: fmt, then a LIST chunk of odd
 * size (padded), then data. */
static void write_wav_with_list(const char *path, const int16_t *s, size_t n)
{
    unsigned char h[12 + 24 + 8 + 7 + 1 + 8];
    memcpy(h, "RIFF", 4);
    put32(h + 4, (uint32_t)(sizeof h - 8 + n * 2));
    memcpy(h + 8, "WAVEfmt ", 8);
    put32(h + 16, 16);
    put16(h + 20, 1);
    put16(h + 22, 1);
    put32(h + 24, 16000);
    put32(h + 28, 32000);
    put16(h + 32, 2);
    put16(h + 34, 16);
    memcpy(h + 36, "LIST", 4);
    put32(h + 40, 7);
    memcpy(h + 44, "INFOabc\0", 8); /* 7 bytes and the pad byte */
    memcpy(h + 52, "data", 4);
    put32(h + 56, (uint32_t)(n * 2));
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(h, 1, sizeof h, f), sizeof h);
    ASSERT_EQ(fwrite(s, 2, n, f), n);
    ASSERT_EQ(fclose(f), 0);
}

/* The five LibriVox clips one after the other (~24.8 s of speech). */
static audio_pcm speech(void)
{
    static const char *ids[] = {"870", "880", "890", "920", "930"};
    audio_pcm all = {.rate = AUDIO_RATE};
    for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
        char *p = xasprintf(LIBRIVOX "/sense_and_sensibility_01_austen_64kb-0%s.wav", ids[i]);
        char err[256];
        audio_pcm one;
        if (audio_decode_file(p, 0, &one, err, sizeof err) != 0)
            test_fail(__FILE__, __LINE__, "%s: %s", p, err);
        all.samples = xrealloc(all.samples, (all.nsamples + one.nsamples) * 2);
        memcpy(all.samples + all.nsamples, one.samples, one.nsamples * 2);
        all.nsamples += one.nsamples;
        audio_pcm_release(&one);
        free(p);
    }
    return all;
}

/* the samples of a canonical WAV (what the decoder writes) */
static int16_t *read_wav44(const char *path, size_t *n)
{
    size_t len = 0;
    char *d = read_file(path, 64u << 20, &len);
    ASSERT_NOT_NULL(d);
    ASSERT_TRUE(len >= 44);
    ASSERT_TRUE(memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WAVEfmt ", 8) == 0 &&
                memcmp(d + 36, "data", 4) == 0);
    const unsigned char *u = (const unsigned char *)d;
    ASSERT_EQ(u[22] | u[23] << 8, 1);                                  /* mono */
    ASSERT_EQ(u[24] | u[25] << 8 | u[26] << 16 | (uint32_t)u[27] << 24, 16000);
    ASSERT_EQ(u[40] | u[41] << 8 | u[42] << 16 | (uint32_t)u[43] << 24, len - 44);
    *n = (len - 44) / 2;
    int16_t *s = xmalloc(*n * 2 + 2);
    memcpy(s, d + 44, *n * 2);
    free(d);
    return s;
}

/* normalised cross-correlation of a[i] with b[i + lag] over the first n samples */
static double ncc(const int16_t *a, const int16_t *b, size_t n, int lag)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 200; i + 200 < n; i++) {
        double x = a[i], y = b[(size_t)((long)i + lag)];
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    return ab / sqrt(aa * bb + 1e-9);
}

TEST(opus_speech_range_round_trip)
{
    audio_pcm all = speech();
    ASSERT_TRUE(all.nsamples > 20 * AUDIO_RATE);
    write_wav_with_list("in.wav", all.samples, all.nsamples);
    /* 10 s from 7.3 s in: not on a 20 ms frame boundary, not at the start */
    size_t start = 7 * AUDIO_RATE + 4800, n = 10 * AUDIO_RATE;
    char err[256] = "";
    int rc = audio_opus_encode_wav_range("in.wav", start, n, "x.opus", AUDIO_OPUS_BITRATE, NULL,
                                         err, sizeof err);
    if (rc != 0) test_fail(__FILE__, __LINE__, "encode: %s", err);
    struct stat sb;
    ASSERT_EQ(stat("x.opus", &sb), 0);
    double mb_per_hour = (double)sb.st_size / 10.0 * 3600 / 1e6;
    fprintf(stderr, "    %lld bytes for 10 s at %d bit/s: %.1f MB per audio hour\n",
            (long long)sb.st_size, AUDIO_OPUS_BITRATE, mb_per_hour);
    ASSERT_TRUE(mb_per_hour <= 16.0);
    ASSERT_TRUE(mb_per_hour > 5.0); /* it is really coded at ~24 kbit/s, not silence */
    unsigned char head[64];
    FILE *f = fopen("x.opus", "rb");
    ASSERT_NOT_NULL(f);
    size_t hn = fread(head, 1, sizeof head, f);
    fclose(f);
    ASSERT_TRUE(audio_is_ogg_opus(head, hn));

    size_t m = 0;
    rc = audio_opus_decode_to_wav("x.opus", "y.wav", 0, &m, err, sizeof err);
    if (rc != 0) test_fail(__FILE__, __LINE__, "decode: %s", err);
    size_t got = 0;
    int16_t *y = read_wav44("y.wav", &got);
    ASSERT_EQ(got, m);
    /* pre-skip and end padding trimmed: the encoded length, within one 20 ms frame */
    ASSERT_TRUE(m + 320 >= n && m <= n + 320);
    const int16_t *x = all.samples + start;
    size_t cmp = m < n ? m : n;
    double best = -2;
    int best_lag = 0;
    for (int lag = -40; lag <= 40; lag++) {
        double c = ncc(x + 40, y + 40, cmp - 80, lag);
        if (c > best) { best = c; best_lag = lag; }
    }
    double c0 = ncc(x, y, cmp, 0);
    /* the same range: a decoded 10 s that started elsewhere correlates at ~0 */
    double other = ncc(all.samples + start - 16000, y, cmp, 0);
    fprintf(stderr, "    correlation %.3f at lag 0 (best %.3f at %d), %.3f one second off\n", c0,
            best, best_lag, other);
    ASSERT_TRUE(best_lag >= -1 && best_lag <= 1); /* aligned: the FIR delay is compensated */
    ASSERT_TRUE(c0 > 0.9);
    ASSERT_TRUE(other < 0.3);
    ASSERT_EQ(test_temp_files(test_tmpdir()), 0);
    free(y);
    audio_pcm_release(&all);
}

/* Goertzel: the amplitude of the f Hz component of s (rate 16 kHz) */
static double tone_amp(const int16_t *s, size_t n, double f)
{
    double w = 2 * M_PI * f / AUDIO_RATE, c = 2 * cos(w), s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double s0 = s[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double re = s1 - s2 * cos(w), im = s2 * sin(w);
    return 2 * sqrt(re * re + im * im) / (double)n;
}

/* A 48 kHz stereo Ogg Opus stream (libopusenc) of sin(1 kHz) * a1 + sin(12 kHz) * a12 in
 * both channels, secs long. */
static void write_stereo48(const char *path, double a1, double a12, double secs)
{
    int e = 0;
    OggOpusComments *com = ope_comments_create();
    OggOpusEnc *enc = ope_encoder_create_file(path, com, 48000, 2, 0, &e);
    ASSERT_NOT_NULL(enc);
    ASSERT_EQ(ope_encoder_ctl(enc, OPUS_SET_BITRATE(128000)), OPE_OK);
    size_t n = (size_t)(secs * 48000);
    float *pcm = xmalloc(n * 2 * sizeof *pcm);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / 48000;
        float v = (float)(a1 * sin(2 * M_PI * 1000 * t) + a12 * sin(2 * M_PI * 12000 * t));
        pcm[2 * i] = pcm[2 * i + 1] = v;
    }
    ASSERT_EQ(ope_encoder_write_float(enc, pcm, (int)n), OPE_OK);
    ASSERT_EQ(ope_encoder_drain(enc), OPE_OK);
    ope_encoder_destroy(enc);
    ope_comments_destroy(com);
    free(pcm);
}

TEST(opus_decimation_low_pass)
{
    char err[256] = "";
    size_t m = 0;
    /* 12 kHz (fullband Opus keeps it) must be gone at 16 kHz, not folded to 4 kHz */
    write_stereo48("hf.opus", 0.25, 0.5, 2.0);
    ASSERT_EQ(audio_opus_decode_to_wav("hf.opus", "hf.wav", 0, &m, err, sizeof err), 0);
    ASSERT_EQ(m, 2 * AUDIO_RATE); /* 96000 samples at 48 kHz, exactly a third */
    size_t n = 0;
    int16_t *y = read_wav44("hf.wav", &n);
    const int16_t *mid = y + 4000; /* away from the codec's start-up */
    size_t len = n - 8000;
    double a1 = tone_amp(mid, len, 1000) / 32768, a4 = tone_amp(mid, len, 4000) / 32768;
    fprintf(stderr, "    1 kHz %.4f (sent 0.25), alias at 4 kHz %.2e (12 kHz sent at 0.5): %.0f dB\n",
            a1, a4, 20 * log10(a4 / 0.5 + 1e-12));
    ASSERT_NEAR(a1, 0.25, 0.25 * 0.06); /* passband: unit gain (+-0.5 dB), both channels averaged */
    ASSERT_TRUE(a4 < 0.5 * 1e-3);       /* >= 60 dB down (the FIR's stopband is ~80 dB) */
    free(y);
}

TEST(opus_cancel)
{
    audio_pcm p = {.rate = AUDIO_RATE, .nsamples = 5 * AUDIO_RATE};
    p.samples = xcalloc(p.nsamples, 2);
    for (size_t i = 0; i < p.nsamples; i++) p.samples[i] = (int16_t)(8000 * sin((double)i * 0.2));
    ASSERT_EQ(audio_write_wav("in.wav", &p), 0);
    atomic_int cancel = 1;
    char err[256] = "";
    ASSERT_EQ(audio_opus_encode_wav_range("in.wav", 0, p.nsamples, "x.opus", 24000, &cancel, err,
                                          sizeof err), -1);
    ASSERT_STR_EQ(err, "cancelled");
    ASSERT_EQ(access("x.opus", F_OK), -1);
    ASSERT_EQ(test_temp_files(test_tmpdir()), 0);
    atomic_store(&cancel, 0);
    ASSERT_EQ(audio_opus_encode_wav_range("in.wav", 0, p.nsamples, "x.opus", 24000, &cancel, err,
                                          sizeof err), 0);
    atomic_store(&cancel, 1);
    size_t m = 7;
    ASSERT_EQ(audio_opus_decode_to_wav_cancel("x.opus", "y.wav", 0, &cancel, &m, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "cancelled");
    ASSERT_EQ(m, 0);
    ASSERT_EQ(access("y.wav", F_OK), -1);
    ASSERT_EQ(test_temp_files(test_tmpdir()), 0);
    ASSERT_EQ(audio_opus_decode_to_wav_cancel("x.opus", "y.wav", 0, NULL, &m, err, sizeof err), 0);
    ASSERT_EQ(m, p.nsamples);
    audio_pcm_release(&p);
}

TEST(opus_refusals)
{
    audio_pcm p = {.rate = AUDIO_RATE, .nsamples = 10 * AUDIO_RATE};
    p.samples = xcalloc(p.nsamples, 2);
    for (size_t i = 0; i < p.nsamples; i++) p.samples[i] = (int16_t)(6000 * sin((double)i * 0.05));
    ASSERT_EQ(audio_write_wav("in.wav", &p), 0);
    char err[256] = "";
    size_t m = 0;
    /* the encoder's arguments and inputs */
    ASSERT_EQ(audio_opus_encode_wav_range("nope.wav", 0, 10, "x.opus", 24000, NULL, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "file not found");
    ASSERT_EQ(audio_opus_encode_wav_range("in.wav", 0, 10, "x.opus", 100, NULL, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "invalid bitrate 100 (6000-256000 bit/s)");
    ASSERT_EQ(audio_opus_encode_wav_range("in.wav", p.nsamples - 5, 10, "x.opus", 24000, NULL, err,
                                          sizeof err), -1);
    ASSERT_STR_EQ(err, "sample range [159995, 160005) is outside the audio (160000 samples)");
    ASSERT_EQ(audio_opus_encode_wav_range("in.wav", 0, 0, "x.opus", 24000, NULL, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "is outside the audio");
    ASSERT_EQ(write_file_atomic("junk.bin", "hello, this is not audio at all......", 37, 0600), 0);
    ASSERT_EQ(audio_opus_encode_wav_range("junk.bin", 0, 1, "x.opus", 24000, NULL, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "not a WAV file");
    ASSERT_EQ(access("x.opus", F_OK), -1);
    /* the last sample exactly: fine */
    ASSERT_EQ(audio_opus_encode_wav_range("in.wav", 0, p.nsamples, "x.opus", 24000, NULL, err,
                                          sizeof err), 0);

    /* the decoder */
    ASSERT_EQ(audio_opus_decode_to_wav("nope.opus", "y.wav", 0, &m, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "file not found");
    ASSERT_EQ(audio_opus_decode_to_wav("in.wav", "y.wav", 0, &m, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "not an Ogg Opus stream");
    ASSERT_EQ(audio_opus_decode_to_wav("junk.bin", "y.wav", 0, &m, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "not an Ogg Opus stream");
    ASSERT_EQ(audio_opus_decode_to_wav("x.opus", "y.wav", 4, &m, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "duration 10 s exceeds the limit of 4 s");
    ASSERT_EQ(access("y.wav", F_OK), -1);

    size_t len = 0;
    char *d = read_file("x.opus", 1 << 20, &len);
    ASSERT_NOT_NULL(d);
    ASSERT_TRUE(len > 4000);
    /* damaged pages in the middle (their CRCs fail) */
    char *bad = xmalloc(len);
    memcpy(bad, d, len);
    for (size_t i = len / 2; i < len / 2 + 64; i++) bad[i] ^= 0x5a;
    ASSERT_EQ(write_file_atomic("bad.opus", bad, len, 0600), 0);
    ASSERT_EQ(audio_opus_decode_to_wav("bad.opus", "y.wav", 0, &m, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "corrupt Opus data");
    ASSERT_EQ(m, 0);
    ASSERT_EQ(access("y.wav", F_OK), -1);
    /* a valid first page, then garbage */
    memcpy(bad, d, len);
    for (size_t i = 100; i < len; i++) bad[i] = (char)(i * 7);
    ASSERT_EQ(write_file_atomic("bad2.opus", bad, len, 0600), 0);
    ASSERT_EQ(audio_opus_decode_to_wav("bad2.opus", "y.wav", 0, &m, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "corrupt Opus data");
    /* the whole stream, then bytes that are not Opus: not silently cut short */
    bad = xrealloc(bad, len + 5000);
    memcpy(bad, d, len);
    for (size_t i = len; i < len + 5000; i++) bad[i] = (char)(i * 31);
    ASSERT_EQ(write_file_atomic("bad3.opus", bad, len + 5000, 0600), 0);
    ASSERT_EQ(audio_opus_decode_to_wav("bad3.opus", "y.wav", 0, &m, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "corrupt Opus data: the stream ends at byte");
    /* the magic check itself */
    ASSERT_TRUE(audio_is_ogg_opus((const unsigned char *)d, len));
    ASSERT_FALSE(audio_is_ogg_opus((const unsigned char *)d, 30));
    ASSERT_FALSE(audio_is_ogg_opus((const unsigned char *)"OggS", 4));
    ASSERT_FALSE(audio_is_ogg_opus(NULL, 0));
    memcpy(bad, d, 64);
    memcpy(bad + 28, "OpusHexd", 8);
    ASSERT_FALSE(audio_is_ogg_opus((const unsigned char *)bad, 64));
    ASSERT_EQ(test_temp_files(test_tmpdir()), 0);
    free(bad);
    free(d);
    audio_pcm_release(&p);
}
