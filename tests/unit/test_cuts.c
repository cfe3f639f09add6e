/* Unit tests for src/audio/cuts (chunk boundaries at pauses), src/audio/wavfile (window by
 * window access) and transcript_append (a chunk's transcript into its job's). */
#define _GNU_SOURCE
#include "test.h"

#include "audio/audio.h"
#include "audio/cuts.h"
#include "audio/wavfile.h"
#include "transcript/transcript.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RATE 16000

/* seconds of "speech" (a loud tone) with silent gaps at the given [start, end) spans */
static void write_tone_with_gaps(const char *path, double total_s, const double (*gaps)[2],
                                 int ngaps)
{
    size_t n = (size_t)(total_s * RATE);
    audio_pcm p = {.samples = malloc(n * sizeof(int16_t)), .nsamples = n, .rate = RATE};
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / RATE;
        int quiet = 0;
        for (int g = 0; g < ngaps; g++) quiet |= t >= gaps[g][0] && t < gaps[g][1];
        p.samples[i] = quiet ? (int16_t)((i * 7919) % 21) - 10 /* faint noise */
                             : (int16_t)(8000 * sin(2 * M_PI * 220 * t));
    }
    ASSERT_EQ(audio_write_wav(path, &p), 0);
    audio_pcm_release(&p);

}

TEST(cuts_quietest_stretch)
{
    /* loud everywhere but a 0.5 s gap at 2.0-2.5 s and a shorter, farther one at 0.3-0.5 s */
    size_t n = 4 * RATE;
    int16_t *s = malloc(n * sizeof *s);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / RATE;
        s[i] = (t >= 2.0 && t < 2.5) || (t >= 0.3 && t < 0.5) ? 0 : (int16_t)(5000 * sin(t * 1000));
    }
    size_t cut = audio_quietest(s, n, 3 * RATE);
    ASSERT_TRUE(cut >= (size_t)(2.0 * RATE) && cut < (size_t)(2.5 * RATE));
    ASSERT_EQ(cut % CUTS_FRAME, 0);
    /* all equally quiet: the frame nearest the target */
    memset(s, 0, n * sizeof *s);
    ASSERT_EQ(audio_quietest(s, n, 234 * CUTS_FRAME + 5), 234 * CUTS_FRAME);
    free(s);
}

TEST(cuts_at_the_pauses_near_each_target)
{
    /* 25 min of tone; pauses at 9:50 (within 30 s of 10:00) and at 20:20 (within 30 s of the
     * second target, 10 min after the first cut) */
    const double gaps[][2] = {{590.0, 590.6}, {1220.0, 1220.6}};
    write_tone_with_gaps("a.wav", 1500, gaps, 2);
    size_t *b = NULL, nb = 0;
    char err[128];
    ASSERT_EQ(audio_find_cuts("a.wav", 600, 30, &b, &nb, NULL, err, sizeof err), 0);
    ASSERT_EQ(nb, 4);
    ASSERT_EQ(b[0], 0);
    ASSERT_TRUE(b[1] >= 590 * RATE && b[1] < (size_t)(590.6 * RATE));
    ASSERT_TRUE(b[2] >= 1220 * RATE && b[2] < (size_t)(1220.6 * RATE));
    ASSERT_EQ(b[3], 1500 * RATE);
    free(b);
    /* no longer than a chunk: one chunk; a cancel flag set: "cancelled" */
    ASSERT_EQ(audio_find_cuts("a.wav", 1500, 30, &b, &nb, NULL, err, sizeof err), 0);
    ASSERT_EQ(nb, 2);
    ASSERT_EQ(b[1], 1500 * RATE);
    free(b);
    atomic_int stop = 1;
    ASSERT_EQ(audio_find_cuts("a.wav", 600, 30, &b, &nb, &stop, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "cancelled");
    ASSERT_NULL(b);
    ASSERT_EQ(audio_find_cuts("missing.wav", 600, 30, &b, &nb, NULL, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "file not found");
}

TEST(cuts_never_a_tiny_last_chunk)
{
    /* 10 min + 3 s: a cut would leave 3 s; one chunk then (the tail is under 5 s) */
    write_tone_with_gaps("b.wav", 603, NULL, 0);
    size_t *b = NULL, nb = 0;
    char err[128];
    ASSERT_EQ(audio_find_cuts("b.wav", 600, 30, &b, &nb, NULL, err, sizeof err), 0);
    for (size_t i = 1; i < nb; i++) ASSERT_TRUE(b[i] - b[i - 1] >= 5 * RATE);
    ASSERT_EQ(b[nb - 1], 603 * RATE);
    free(b);
}

TEST(wavfile_reads_ranges)
{
    size_t n = 5 * RATE;
    audio_pcm p = {.samples = malloc(n * sizeof(int16_t)), .nsamples = n, .rate = RATE};
    for (size_t i = 0; i < n; i++) p.samples[i] = (int16_t)(i % 30000) - 15000;
    ASSERT_EQ(audio_write_wav("c.wav", &p), 0);
    audio_pcm r;
    char err[128];
    ASSERT_EQ(wav_read_range("c.wav", 3 * RATE, RATE, &r, err, sizeof err), 0);
    ASSERT_EQ(r.nsamples, RATE);
    ASSERT_EQ(r.rate, RATE);
    ASSERT_EQ(memcmp(r.samples, p.samples + 3 * RATE, RATE * 2), 0);
    audio_pcm_release(&r);
    /* past the end: cut at the end */
    ASSERT_EQ(wav_read_range("c.wav", 4 * RATE + 10, RATE, &r, err, sizeof err), 0);
    ASSERT_EQ(r.nsamples, RATE - 10);
    ASSERT_EQ(r.samples[0], p.samples[4 * RATE + 10]);
    audio_pcm_release(&r);
    audio_pcm_release(&p);
    FILE *f = fopen("bad.wav", "w");
    fputs("RIFF....WAVEjunk", f);
    fclose(f);
    ASSERT_EQ(wav_read_range("bad.wav", 0, 1, &r, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "not a 16-bit mono PCM WAV file");
}

TEST(transcript_append_shifts_and_caps)
{
    transcript *job = transcript_new(NULL, 1200);
    transcript *c0 = transcript_new("en", 600);
    transcript_segment *s = transcript_add_segment(c0, 1.0, 2.0, "hello there");
    segment_add_word(s, 1.0, 1.4, "hello", 0.9);
    segment_add_word(s, 1.5, 2.0, "there", 0.8);
    transcript *c1 = transcript_new("en", 600);
    s = transcript_add_segment(c1, 0.5, 1.5, "again");
    segment_add_word(s, 0.5, 1.5, "again", 0.7);
    transcript_add_segment(c1, 599.0, 700.0, "past the end"); /* capped at the job's end */
    transcript_append(job, c0, 0);
    transcript_append(job, c1, 600);
    ASSERT_EQ(job->n_segments, 3);
    ASSERT_NEAR(job->segments[1].start, 600.5, 1e-9);
    ASSERT_NEAR(job->segments[1].words[0].end, 601.5, 1e-9);
    ASSERT_NEAR(job->segments[0].words[1].confidence, 0.8, 1e-9);
    ASSERT_NEAR(job->segments[2].end, 1200, 1e-9);
    ASSERT_EQ(job->segments[2].id, 2);
    ASSERT_NEAR(job->duration, 1200, 1e-9);
    transcript_free(c0);
    transcript_free(c1);
    transcript_free(job);
}
