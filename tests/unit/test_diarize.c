/* Unit tests for src/diarize: option checks, the speech mask, and the core (clustering,
 * resegmentation, speaker counts given or bounded) on synthetic features with known
 * speakers whose feature clouds overlap, as real speakers' MFCCs do (the estimated count on
 * real voices is measured by bench/diarize.sh and tests/integration/test_speakers.sh). */
#include "test.h"

#include "diarize/diarize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIM 19

static unsigned long long rng = 88172645463325252ULL;
static double uni(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2 * log(uni())) * cos(2 * M_PI * uni()); }

/* turns (seconds) of speakers with distinct feature offsets, 0.5 s pauses between; the
 * "phonetic" content varies frame by frame (5 classes) for every speaker alike */
struct conv { float *x, *e; size_t n; };
static void make_conv(struct conv *c, const int *spk, const double *len, int nturns)
{
    double cls[5][DIM];
    for (int k = 0; k < 5; k++)
        for (int d = 0; d < DIM; d++) cls[k][d] = 0.5 * gauss();
    size_t n = 0;
    for (int i = 0; i < nturns; i++) n += (size_t)(len[i] * 100) + 50;
    c->n = n;
    c->x = calloc(n * DIM, sizeof *c->x);
    c->e = calloc(n, sizeof *c->e);
    size_t t = 0;
    for (int i = 0; i < nturns; i++) {
        for (size_t f = 0; f < (size_t)(len[i] * 100); f++, t++) {
            int k = (int)(uni() * 5);
            for (int d = 0; d < DIM; d++)
                c->x[t * DIM + d] = (float)(cls[k][d] + (spk[i] == 0 ? 0.5 : spk[i] == 1 ? -0.5 : (d % 2 ? 0.5 : -0.5)) + 1.0 * gauss());
            c->e[t] = (float)(-25 + 3 * gauss());
        }
        for (int f = 0; f < 50; f++, t++) {
            for (int d = 0; d < DIM; d++) c->x[t * DIM + d] = (float)(0.1 * gauss());
            c->e[t] = (float)(-80 + gauss());
        }
    }
}

static int speaker_at(const diarize_result *r, double s)
{
    for (size_t i = 0; i < r->n_turns; i++)
        if (r->turns[i].start <= s && s < r->turns[i].end) return r->turns[i].speaker;
    return -1;
}

TEST(diarize_opts_check_bounds)
{
    char err[160];
    diarize_opts ok = {0, 2, 4}, ok2 = {3, 0, 0};
    ASSERT_EQ(diarize_opts_check(&ok, err, sizeof err), 0);
    ASSERT_EQ(diarize_opts_check(&ok2, err, sizeof err), 0);
    diarize_opts bad1 = {17, 0, 0}, bad2 = {0, 3, 2}, bad3 = {5, 0, 4}, bad4 = {-1, 0, 0};
    ASSERT_EQ(diarize_opts_check(&bad1, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "num_speakers") != NULL);
    ASSERT_EQ(diarize_opts_check(&bad2, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "min_speakers (3) is greater than max_speakers (2)");
    ASSERT_EQ(diarize_opts_check(&bad3, err, sizeof err), -1);
    ASSERT_EQ(diarize_opts_check(&bad4, err, sizeof err), -1);
}

TEST(diarize_speech_mask_bridges_and_drops)
{
    float e[400];
    for (int i = 0; i < 400; i++) e[i] = -90;
    for (int i = 50; i < 150; i++) e[i] = -20;  /* 1 s of speech */
    for (int i = 160; i < 260; i++) e[i] = -20; /* a 0.1 s pause: bridged */
    for (int i = 330; i < 335; i++) e[i] = -20; /* a 50 ms click: dropped */
    unsigned char m[400];
    diarize_speech_mask(e, 400, m);
    ASSERT_EQ(m[49], 0);
    ASSERT_EQ(m[50], 1);
    ASSERT_EQ(m[155], 1);
    ASSERT_EQ(m[259], 1);
    ASSERT_EQ(m[262], 0);
    ASSERT_EQ(m[332], 0);
}

TEST(diarize_frames_two_speakers_given)
{
    int spk[] = {0, 1, 0, 1, 0, 1, 0, 1};
    double len[] = {8, 6, 0.6, 9, 7, 5, 10, 8};
    struct conv c;
    make_conv(&c, spk, len, 8);
    diarize_opts o = {2, 0, 0};
    diarize_result r;
    char err[128];
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &o, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_EQ(r.n_speakers, 2);
    /* the middle of every turn, the short one too, has its speaker; numbered by appearance */
    double t = 0;
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(speaker_at(&r, t + len[i] / 2), spk[i]);
        t += len[i] + 0.5;
    }
    /* sorted, non-overlapping, none in the pauses */
    for (size_t i = 1; i < r.n_turns; i++) ASSERT_TRUE(r.turns[i].start >= r.turns[i - 1].end);
    ASSERT_EQ(speaker_at(&r, len[0] + 0.3), -1);
    diarize_result_release(&r);
    free(c.x);
    free(c.e);
}

TEST(diarize_frames_count_given_and_bounded)
{
    int spk[] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
    double len[] = {6, 6, 6, 6, 6, 6, 6, 6, 6};
    struct conv c;
    make_conv(&c, spk, len, 9);
    char err[128];
    diarize_result r;
    diarize_opts three = {3, 0, 0};
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &three, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_EQ(r.n_speakers, 3);
    double t = 0;
    for (int i = 0; i < 9; i++) { /* each turn's middle: its speaker (numbered by appearance) */
        ASSERT_EQ(speaker_at(&r, t + len[i] / 2), spk[i]);
        t += len[i] + 0.5;
    }
    diarize_result_release(&r);
    diarize_opts atleast = {0, 3, 5}; /* the estimate is clamped into min..max */
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &atleast, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_TRUE(r.n_speakers >= 3 && r.n_speakers <= 5);
    diarize_result_release(&r);
    diarize_opts two = {2, 0, 0};
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &two, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_EQ(r.n_speakers, 2);
    diarize_result_release(&r);
    diarize_opts atmost = {0, 1, 2};
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &atmost, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_TRUE(r.n_speakers >= 1 && r.n_speakers <= 2);
    diarize_result_release(&r);
    diarize_opts one = {1, 0, 0};
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &one, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_EQ(r.n_speakers, 1);
    diarize_result_release(&r);
    free(c.x);
    free(c.e);
}

static int stop_now(void *ud, double f) { (void)f; return ++*(int *)ud >= 1; }

TEST(diarize_frames_silence_and_stop)
{
    float x[DIM * 300] = {0}, e[300];
    for (int i = 0; i < 300; i++) e[i] = -90;
    diarize_opts o = {0};
    diarize_result r;
    char err[128];
    ASSERT_EQ(diarize_frames(x, e, 300, DIM, &o, NULL, NULL, &r, err, sizeof err), DIARIZE_OK);
    ASSERT_EQ(r.n_speakers, 0);
    ASSERT_EQ(r.n_turns, 0);
    int spk[] = {0, 1};
    double len[] = {5, 5};
    struct conv c;
    make_conv(&c, spk, len, 2);
    int calls = 0;
    ASSERT_EQ(diarize_frames(c.x, c.e, c.n, DIM, &o, stop_now, &calls, &r, err, sizeof err),
              DIARIZE_STOPPED);
    ASSERT_EQ(r.n_turns, 0);
    free(c.x);
    free(c.e);
}

TEST(diarize_cpu_bad_file)
{
    diarize_opts o = {0};
    diarize_result r;
    char err[256];
    ASSERT_EQ(diarize_cpu.run("/nonexistent.wav", &o, NULL, NULL, &r, err, sizeof err), DIARIZE_FAILED);
    ASSERT_TRUE(err[0] != '\0');
}
