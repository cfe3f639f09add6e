/* Unit tests for src/engine/parakeet.c against whisper.cpp's libparakeet: words and times
 * within the audio, chunked progress, cancel through the flag (set from another thread)
 * and through progress, translate refused, short input, "auto" picking parakeet, slots.
 *
 * They need a build with libparakeet (HAVE_PARAKEET) and GS_TEST_PARAKEET_MODEL: a
 * parakeet ggml model (whisper.cpp's models/for-tests-ggml-parakeet-tdt.bin has random
 * weights and a 32 s audio context). Without them each test is skipped with the reason.
 */
#define _GNU_SOURCE
#include "test.h"

#include "core/util.h"
#include "engine/engine.h"
#include "engine/engine_impl.h"

#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static const char *need_model(void)
{
    if (!engine_parakeet_built_in()) SKIP_NOT_PACKAGED("libparakeet", "not built in (no HAVE_PARAKEET)");
    const char *p = getenv("GS_TEST_PARAKEET_MODEL");
    if (!p || !*p || access(p, R_OK) != 0)
        SKIP_NOT_PACKAGED("a parakeet ggml model", "GS_TEST_PARAKEET_MODEL not set or not readable");
    return p;
}

static engine *open_pk(int slots)
{
    char err[256] = "";
    engine *e = engine_open_slots("parakeet", need_model(), slots, err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "engine_open: %s", err);
    return e;
}

static int16_t *voice(double secs, size_t *n)
{
    *n = (size_t)(secs * ENGINE_SAMPLE_RATE);
    int16_t *pcm = xmalloc((*n ? *n : 1) * sizeof *pcm);
    uint32_t r = 7;
    for (size_t i = 0; i < *n; i++) {
        double t = (double)i / ENGINE_SAMPLE_RATE;
        r = r * 1664525u + 1013904223u;
        double env = 0.5 + 0.5 * sin(2 * M_PI * 3 * t);
        pcm[i] = (int16_t)(7000 * env * sin(2 * M_PI * (150 + 60 * sin(t)) * t) +
                           (double)((int)(r >> 20) % 400));
    }
    return pcm;
}

static void assert_within(const transcript *t, double dur)
{
    ASSERT_NEAR(t->duration, dur, 1e-9);
    double prev = 0;
    for (size_t i = 0; i < t->n_segments; i++) {
        const transcript_segment *s = &t->segments[i];
        ASSERT_TRUE(s->start >= prev - 1e-9);
        ASSERT_TRUE(s->end >= s->start);
        ASSERT_TRUE(s->end <= dur + 1e-9);
        for (size_t k = 0; k < s->n_words; k++) {
            ASSERT_TRUE(s->words[k].start >= s->start - 1e-9);
            ASSERT_TRUE(s->words[k].end <= s->end + 1e-9);
            ASSERT_TRUE(s->words[k].word[0] != '\0');
            ASSERT_TRUE(s->words[k].word[0] != ' ');
        }
        prev = s->end;
    }
}

struct fracs { double v[256]; int n; };

static int record(void *ud, double f)
{
    struct fracs *r = ud;
    if (r->n < 256) r->v[r->n++] = f;
    return 0;
}

TEST(parakeet_transcribes_in_chunks)
{
    engine *e = open_pk(1);
    ASSERT_STR_EQ(engine_name(e), "parakeet");
    ASSERT_STR_EQ(engine_word_timing(e), "native");
    ASSERT_FALSE(engine_uses_gpu(e));
    size_t n;
    int16_t *pcm = voice(100, &n); /* the test model's context is 32 s: at least 4 chunks */
    struct fracs r = {.n = 0};
    char err[256] = "";
    engine_opts o = {.word_timestamps = 1};
    transcript *t = engine_transcribe(e, pcm, n, &o, record, &r, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
    assert_within(t, 100.0);
    ASSERT_NULL(t->language); /* the model does not report it */
    ASSERT_TRUE(r.n >= 6);    /* 0, one per chunk (>= 4), 1 */
    ASSERT_NEAR(r.v[0], 0, 0);
    ASSERT_NEAR(r.v[r.n - 1], 1.0, 0);
    for (int i = 1; i < r.n; i++) ASSERT_TRUE(r.v[i] >= r.v[i - 1]);
    ASSERT_TRUE(r.v[1] > 0 && r.v[1] < 0.4);
    size_t words = 0;
    for (size_t i = 0; i < t->n_segments; i++) words += t->segments[i].n_words;
    fprintf(stderr, "    100 s: %zu segments, %zu words, %d progress reports\n", t->n_segments,
            words, r.n);
    transcript_free(t);
    o.language = "de";
    t = engine_transcribe(e, pcm, 3 * ENGINE_SAMPLE_RATE, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "de: %s", err);
    ASSERT_STR_EQ(t->language, "de");
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

TEST(parakeet_refusals_and_short_input)
{
    engine *e = open_pk(1);
    size_t n;
    int16_t *pcm = voice(2, &n);
    char err[256] = "";
    engine_opts o = {.translate = 1};
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "does not translate");
    o = (engine_opts){.beam_size = 9};
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "beam_size");
    transcript *t = engine_transcribe(e, pcm, ENGINE_MIN_SAMPLES - 1, NULL, NULL, NULL, err,
                                      sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_EQ(t->n_segments, 0);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

struct job {
    engine *e;
    const int16_t *pcm;
    size_t n;
    atomic_int cancel;
    sem_t started, resumed;
    int handshake;
    transcript *t;
    char err[256];
};

static int job_progress(void *ud, double f)
{
    struct job *j = ud;
    if (j->handshake && f > 0 && f < 1) {
        j->handshake = 0;
        sem_post(&j->started);
        sem_wait(&j->resumed);
    }
    return 0;
}

static void *job_run(void *p)
{
    struct job *j = p;
    engine_opts o = {.cancel = &j->cancel};
    j->t = engine_transcribe(j->e, j->pcm, j->n, &o, job_progress, j, j->err, sizeof j->err);
    return NULL;
}

/* The flag, set from another thread after the first chunk, stops the rest. */
TEST(parakeet_cancel_flag_from_another_thread)
{
    engine *e = open_pk(1);
    struct job j = {.e = e, .handshake = 1};
    int16_t *pcm = voice(200, &j.n);
    j.pcm = pcm;
    atomic_init(&j.cancel, 0);
    sem_init(&j.started, 0, 0);
    sem_init(&j.resumed, 0, 0);
    pthread_t th;
    pthread_create(&th, NULL, job_run, &j);
    sem_wait(&j.started);
    atomic_store(&j.cancel, 1);
    sem_post(&j.resumed);
    pthread_join(th, NULL);
    ASSERT_NULL(j.t);
    ASSERT_STR_EQ(j.err, "cancelled");
    sem_destroy(&j.started);
    sem_destroy(&j.resumed);
    free(pcm);
    engine_close(e);
}

static int stop_at_first_chunk(void *ud, double f)
{
    (void)ud;
    return f > 0;
}

TEST(parakeet_cancel_by_progress)
{
    engine *e = open_pk(1);
    size_t n;
    int16_t *pcm = voice(100, &n);
    char err[256] = "";
    ASSERT_NULL(engine_transcribe(e, pcm, n, NULL, stop_at_first_chunk, NULL, err, sizeof err));
    ASSERT_STR_EQ(err, "cancelled");
    free(pcm);
    engine_close(e);
}

/* "auto" with a model named parakeet-... picks parakeet when its file exists. */
TEST(parakeet_auto_by_model_name)
{
    const char *model = need_model();
    char *link = xasprintf("%s/ggml-parakeet-tdt-test.bin", test_tmpdir());
    ASSERT_EQ(symlink(model, link), 0);
    setenv("GS_MODELS_DIR", test_tmpdir(), 1);
    char err[256] = "";
    engine *e = engine_open("auto", "parakeet-tdt-test", err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "auto: %s", err);
    ASSERT_STR_EQ(engine_name(e), "parakeet");
    ASSERT_STR_EQ(engine_model(e), link);
    engine_close(e);
    free(link);
}

static void *plain_run(void *p)
{
    struct job *j = p;
    j->t = engine_transcribe(j->e, j->pcm, j->n, NULL, NULL, NULL, j->err, sizeof j->err);
    return NULL;
}

TEST(parakeet_slots_share_one_model)
{
    engine *e = open_pk(2);
    ASSERT_EQ(engine_slots(e), 2);
    size_t n;
    int16_t *pcm = voice(40, &n);
    char err[256] = "";
    transcript *ref = engine_transcribe(e, pcm, n, NULL, NULL, NULL, err, sizeof err);
    if (!ref) test_fail(__FILE__, __LINE__, "ref: %s", err);
    char *want = transcript_text(ref);
    struct job j[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        j[i] = (struct job){.e = e, .pcm = pcm, .n = n};
        pthread_create(&th[i], NULL, plain_run, &j[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        if (!j[i].t) test_fail(__FILE__, __LINE__, "job %d: %s", i, j[i].err);
        char *got = transcript_text(j[i].t);
        ASSERT_STR_EQ(got, want);
        free(got);
        transcript_free(j[i].t);
    }
    free(want);
    transcript_free(ref);
    free(pcm);
    engine_close(e);
}
