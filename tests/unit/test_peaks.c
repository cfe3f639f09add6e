/* tests of audio/peaks: the waveform outline the UI draws */
#include "test.h"

#include "audio/audio.h"
#include "audio/peaks.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(peaks_slices)
{
    /* 10 samples in 5 slices of 2: each pair the slice's extremes */
    const int16_t s[10] = {1, -3, 7, 2, -100, 50, 0, 0, 32767, -32768};
    audio_peaks p;
    ASSERT_EQ(audio_peaks_compute(s, 10, 5, &p), 0);
    ASSERT_EQ(p.n, 5);
    const int16_t mn[5] = {-3, 2, -100, 0, -32768}, mx[5] = {1, 7, 50, 0, 32767};
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(p.min[i], mn[i]);
        ASSERT_EQ(p.max[i], mx[i]);
    }
    audio_peaks_release(&p);
}

TEST(peaks_uneven_and_short)
{
    /* 7 samples in 3 slices: sample i in slice floor(i*3/7): [0,3) [3,5) [5,7) */
    const int16_t s[7] = {5, 6, -1, -2, 9, 8, -9};
    audio_peaks p;
    ASSERT_EQ(audio_peaks_compute(s, 7, 3, &p), 0);
    ASSERT_EQ(p.n, 3);
    ASSERT_EQ(p.min[0], -1); ASSERT_EQ(p.max[0], 6);
    ASSERT_EQ(p.min[1], -2); ASSERT_EQ(p.max[1], 9);
    ASSERT_EQ(p.min[2], -9); ASSERT_EQ(p.max[2], 8);
    audio_peaks_release(&p);
    /* fewer samples than pairs: one pair per sample */
    ASSERT_EQ(audio_peaks_compute(s, 2, 800, &p), 0);
    ASSERT_EQ(p.n, 2);
    ASSERT_EQ(p.min[1], 6);
    audio_peaks_release(&p);
    ASSERT_EQ(audio_peaks_compute(s, 0, 800, &p), 0);
    ASSERT_EQ(p.n, 0);
    audio_peaks_release(&p);
    ASSERT_EQ(audio_peaks_compute(s, 7, 0, &p), -1);
}

/* a 16 kHz mono WAV of a 440 Hz tone whose amplitude rises linearly to 30000 */
static void tone(audio_pcm *pcm, size_t ns)
{
    pcm->samples = malloc(ns * sizeof *pcm->samples);
    pcm->nsamples = ns;
    pcm->rate = AUDIO_RATE;
    for (size_t i = 0; i < ns; i++) {
        double amp = 30000.0 * (double)i / (double)ns;
        pcm->samples[i] = (int16_t)(amp * __builtin_sin(2 * 3.14159265358979 * 440 * (double)i / AUDIO_RATE));
    }
}

TEST(peaks_file_matches_memory)
{
    audio_pcm pcm;
    tone(&pcm, 3 * AUDIO_RATE + 123); /* 3 s, not a multiple of the slices, over several blocks */
    ASSERT_EQ(audio_write_wav("a.wav", &pcm), 0);
    audio_peaks f, m;
    char err[128] = "";
    ASSERT_EQ(audio_peaks_file("a.wav", 800, &f, err, sizeof err), 0);
    ASSERT_EQ(audio_peaks_compute(pcm.samples, pcm.nsamples, 800, &m), 0);
    ASSERT_EQ(f.n, 800);
    ASSERT_EQ(f.nsamples, pcm.nsamples);
    ASSERT_EQ(f.rate, AUDIO_RATE);
    ASSERT_TRUE(memcmp(f.min, m.min, 800 * sizeof *f.min) == 0);
    ASSERT_TRUE(memcmp(f.max, m.max, 800 * sizeof *f.max) == 0);
    /* the envelope rises: the last slice is loud, the first quiet */
    ASSERT_TRUE(f.max[0] < 200 && f.max[799] > 29000 && f.min[799] < -29000);
    audio_peaks_release(&f);
    audio_peaks_release(&m);
    audio_pcm_release(&pcm);
}

TEST(peaks_file_streamed_header_and_chunks)
{
    /* a fmt chunk with an extension, a LIST chunk of odd length (padded), a data size of 0
     * (a streamed writer's) */
    FILE *fp = fopen("s.wav", "wb");
    ASSERT_TRUE(fp != NULL);
    const unsigned char hdr[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E',
        'f', 'm', 't', ' ', 18, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0, 0, 0,
        'L', 'I', 'S', 'T', 3, 0, 0, 0, 'a', 'b', 'c', 0,
        'd', 'a', 't', 'a', 0, 0, 0, 0};
    fwrite(hdr, 1, sizeof hdr, fp);
    const int16_t s[4] = {100, -200, 300, -400};
    fwrite(s, sizeof s[0], 4, fp);
    fclose(fp);
    audio_peaks p;
    char err[128] = "";
    ASSERT_EQ(audio_peaks_file("s.wav", 2, &p, err, sizeof err), 0);
    ASSERT_EQ(p.n, 2);
    ASSERT_EQ(p.nsamples, 4);
    ASSERT_EQ(p.min[0], -200); ASSERT_EQ(p.max[0], 100);
    ASSERT_EQ(p.min[1], -400); ASSERT_EQ(p.max[1], 300);
    audio_peaks_release(&p);
}

TEST(peaks_file_refusals)
{
    audio_peaks p;
    char err[128] = "";
    ASSERT_EQ(audio_peaks_file("missing.wav", 800, &p, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "file not found");
    FILE *fp = fopen("junk.wav", "wb");
    fputs("this is not a wav file at all", fp);
    fclose(fp);
    ASSERT_EQ(audio_peaks_file("junk.wav", 800, &p, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "not a 16-bit mono PCM WAV file");
    /* stereo is refused (the UI's audio.wav is always mono) */
    fp = fopen("st.wav", "wb");
    const unsigned char hdr[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E',
        'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 2, 0, 0x80, 0x3e, 0, 0, 0, 0xfa, 0, 0, 4, 0, 16, 0,
        'd', 'a', 't', 'a', 4, 0, 0, 0, 1, 0, 2, 0};
    fwrite(hdr, 1, sizeof hdr, fp);
    fclose(fp);
    ASSERT_EQ(audio_peaks_file("st.wav", 800, &p, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "not a 16-bit mono PCM WAV file");
    /* a header that claims more data than there is: the slices reached */
    fp = fopen("t.wav", "wb");
    const unsigned char h2[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E',
        'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0,
        'd', 'a', 't', 'a', 8, 0, 0, 0, 1, 0, 2, 0};
    fwrite(h2, 1, sizeof h2, fp);
    fclose(fp);
    ASSERT_EQ(audio_peaks_file("t.wav", 4, &p, err, sizeof err), 0);
    ASSERT_EQ(p.nsamples, 2);
    ASSERT_EQ(p.n, 2);
    audio_peaks_release(&p);
}
