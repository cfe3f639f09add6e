/* Unit tests for src/engine/whisper.c against real whisper.cpp: times clamped to the audio,
 * cancel through the cancel flag (set from another thread) and through progress,
 * English-only models, beam size, short input, DTW, VAD, detected language, slots.
 *
 * They need a build with whisper.cpp (HAVE_WHISPER) and models with random weights (made
 * with whisper-random-model.py from whisper.cpp's models/for-tests-ggml-*.bin):
 *   GS_TEST_WHISPER_MODEL     a multilingual tiny model (ggml-tiny.bin)
 *   GS_TEST_WHISPER_EN_MODEL  an English-only one (ggml-tiny.en.bin)
 *   GS_TEST_VAD_MODEL         a Silero VAD model (ggml-silero-v6.2.0.bin)
 * Without them each test is skipped with the reason.
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

/* ---------------------------------------------------------------- helpers */

static const char *need_model(const char *var)
{
    if (!engine_whisper_built_in()) SKIP_NOT_PACKAGED("whisper.cpp", "not built in (no HAVE_WHISPER)");
    const char *p = getenv(var);
    if (!p || !*p || access(p, R_OK) != 0)
        SKIP_NOT_PACKAGED("whisper.cpp's test models", "%s not set or not readable (a random-weight ggml model)", var);
    return p;
}

static engine *open_model(const char *path, int slots)
{
    char err[256] = "";
    setenv("VAD", "off", 1);
    engine *e = engine_open_slots("whisper", path, slots, err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "engine_open: %s", err);
    return e;
}

/* A 127 Hz tone whose level steps every 0.5 s, with a little noise: the random-weight tiny
 * model decodes a 30 s window of it in about a second (speech-like signals can make it
 * run to its token limit with every temperature fallback). */
static int16_t *voice(double secs, size_t *n)
{
    *n = (size_t)(secs * ENGINE_SAMPLE_RATE);
    int16_t *pcm = xmalloc((*n ? *n : 1) * sizeof *pcm);
    uint32_t r = 1;
    for (size_t i = 0; i < *n; i++) {
        r = r * 1664525u + 1013904223u;
        double v = 3000 * sin((double)i * 0.05) * (double)(1 + (i / 8000) % 3);
        pcm[i] = (int16_t)(v + (double)((int)(r >> 20) % 200));
    }
    return pcm;
}

/* Digital silence: the random model decodes a 30 s window of it quickly, so long inputs
 * have many short windows (for the cancel tests). */
static int16_t *hiss(double secs, size_t *n)
{
    *n = (size_t)(secs * ENGINE_SAMPLE_RATE);
    return xcalloc(*n ? *n : 1, sizeof(int16_t));
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
        double wp = s->start;
        for (size_t k = 0; k < s->n_words; k++) {
            ASSERT_TRUE(s->words[k].start >= wp - 1e-9);
            ASSERT_TRUE(s->words[k].end >= s->words[k].start);
            ASSERT_TRUE(s->words[k].end <= dur + 1e-9);
            wp = s->words[k].start;
        }
        prev = s->end;
    }
}

static size_t n_words(const transcript *t)
{
    size_t w = 0;
    for (size_t i = 0; i < t->n_segments; i++) w += t->segments[i].n_words;
    return w;
}

/* ---------------------------------------------------------------- cancel */

/* A call running on another thread, cancelled through its flag. */
struct job {
    engine *e;
    const int16_t *pcm;
    size_t n;
    engine_opts o;
    atomic_int cancel;
    sem_t started, resumed; /* handshake with the progress callback */
    int handshake, calls;
    transcript *t;
    char err[256];
    double done;
};

/* Progress comes from engine.c's start (0), then from whisper's main loop at the start of
 * every 30 s window: the second call is inside whisper_full, before the first encoder. */
static int job_progress(void *ud, double f)
{
    struct job *j = ud;
    (void)f;
    if (j->handshake && ++j->calls == 2) { /* inside the run */
        j->handshake = 0;
        sem_post(&j->started);
        sem_wait(&j->resumed);
    }
    return 0;
}

static void *job_run(void *p)
{
    struct job *j = p;
    j->o.cancel = &j->cancel;
    j->t = engine_transcribe(j->e, j->pcm, j->n, &j->o, j->handshake ? job_progress : NULL, j,
                             j->err, sizeof j->err);
    j->done = now_mono();
    return NULL;
}

static void job_init(struct job *j, engine *e, const int16_t *pcm, size_t n)
{
    memset(j, 0, sizeof *j);
    j->e = e;
    j->pcm = pcm;
    j->n = n;
    atomic_init(&j->cancel, 0);
    sem_init(&j->started, 0, 0);
    sem_init(&j->resumed, 0, 0);
}

static void job_destroy(struct job *j)
{
    transcript_free(j->t);
    sem_destroy(&j->started);
    sem_destroy(&j->resumed);
}

/* No progress callback at all: only the flag, set from this thread while the call runs,
 * can stop it (before: the engine had no flag, and cancel waited for the 30 s window). */
TEST(whisper_cancel_flag_from_another_thread)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = hiss(300, &n); /* ten 30 s windows */
    struct job j;
    job_init(&j, e, pcm, n);
    j.o.language = "en";
    pthread_t th;
    double t0 = now_mono();
    pthread_create(&th, NULL, job_run, &j);
    usleep(1500000);
    double set = now_mono();
    atomic_store(&j.cancel, 1);
    pthread_join(th, NULL);
    ASSERT_NULL(j.t);
    ASSERT_STR_EQ(j.err, "cancelled");
    fprintf(stderr, "    no callback: cancel honoured %.3f s after the flag (set %.1f s in)\n",
            j.done - set, set - t0);
    job_destroy(&j);
    free(pcm);
    engine_close(e);
}

static int post_first(void *ud, double f)
{
    struct job *j = ud;
    (void)f;
    if (++j->calls == 2) sem_post(&j->started);
    return 0;
}

static void *job_run_posting(void *p)
{
    struct job *j = p;
    j->o.cancel = &j->cancel;
    j->t = engine_transcribe(j->e, j->pcm, j->n, &j->o, post_first, j, j->err, sizeof j->err);
    j->done = now_mono();
    return NULL;
}

/* The flag set 0.3 s into the first window (inside whisper's encoder or decoder graphs):
 * the measured delay is printed, not asserted. */
TEST(whisper_cancel_flag_inside_a_window)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = hiss(300, &n);
    struct job j;
    job_init(&j, e, pcm, n);
    j.o.language = "en";
    pthread_t th;
    pthread_create(&th, NULL, job_run_posting, &j);
    sem_wait(&j.started);
    usleep(300000);
    double set = now_mono();
    atomic_store(&j.cancel, 1);
    pthread_join(th, NULL);
    ASSERT_NULL(j.t);
    ASSERT_STR_EQ(j.err, "cancelled");
    fprintf(stderr, "    in a window: cancel honoured %.3f s after the flag\n", j.done - set);
    job_destroy(&j);
    free(pcm);
    engine_close(e);
}

/* The flag set at a known point inside the run (whisper's first progress report, with
 * every window still to decode) stops the run: no transcript. */
TEST(whisper_cancel_flag_mid_run)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = hiss(150, &n);
    struct job j;
    job_init(&j, e, pcm, n);
    j.o.language = "en";
    j.handshake = 1;
    pthread_t th;
    pthread_create(&th, NULL, job_run, &j);
    sem_wait(&j.started);
    atomic_store(&j.cancel, 1);
    sem_post(&j.resumed);
    pthread_join(th, NULL);
    ASSERT_NULL(j.t);
    ASSERT_STR_EQ(j.err, "cancelled");
    job_destroy(&j);
    free(pcm);
    engine_close(e);
}

static int stop_after_start(void *ud, double f)
{
    int *calls = ud;
    (void)f;
    return ++*calls >= 2; /* the first report inside whisper_full asks to stop */
}

TEST(whisper_cancel_by_progress_callback)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = hiss(150, &n);
    int calls = 0;
    char err[256] = "";
    engine_opts en = {.language = "en"};
    transcript *t = engine_transcribe(e, pcm, n, &en, stop_after_start, &calls, err, sizeof err);
    ASSERT_NULL(t);
    ASSERT_STR_EQ(err, "cancelled");
    ASSERT_TRUE(calls >= 2);
    /* a flag set before the call: cancelled before any work, no progress at all */
    atomic_int flag;
    atomic_init(&flag, 1);
    engine_opts o = {.cancel = &flag};
    calls = 0;
    t = engine_transcribe(e, pcm, n, &o, stop_after_start, &calls, err, sizeof err);
    ASSERT_NULL(t);
    ASSERT_STR_EQ(err, "cancelled");
    ASSERT_EQ(calls, 0);
    free(pcm);
    engine_close(e);
}

/* ---------------------------------------------------------------- results */

/* whisper's last segment ends at seek + seek_delta (a whole window): before, a 6 s input
 * got duration 14.62 and a segment ending there. Now everything lies within 6.0 s. */
TEST(whisper_times_clamped_to_audio)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = voice(6, &n);
    engine_opts o = {.word_timestamps = 1};
    char err[256] = "";
    transcript *t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
    ASSERT_TRUE(t->n_segments >= 1);
    ASSERT_TRUE(n_words(t) >= 1);
    assert_within(t, 6.0);
    /* detected language: a real code, reported */
    ASSERT_NOT_NULL(t->language);
    ASSERT_TRUE(strlen(t->language) >= 2 && strlen(t->language) <= 3);
    transcript_free(t);
    /* an explicit language is kept */
    o.language = "de";
    t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe de: %s", err);
    ASSERT_STR_EQ(t->language, "de");
    assert_within(t, 6.0);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

TEST(whisper_english_only_model)
{
    const char *path = need_model("GS_TEST_WHISPER_EN_MODEL");
    engine *e = open_model(path, 1);
    size_t n;
    int16_t *pcm = voice(3, &n);
    char err[256] = "";
    /* auto on a .en model: English, not a "detected" language */
    transcript *t = engine_transcribe(e, pcm, n, NULL, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
    ASSERT_STR_EQ(t->language, "en");
    transcript_free(t);
    engine_opts o = {.translate = 1};
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "is English-only: translate is not supported");
    ASSERT_CONTAINS(err, "model tiny.en"); /* named after the file (ggml-tiny.en.bin) */
    /* the same refusal for input too short to decode */
    ASSERT_NULL(engine_transcribe(e, pcm, 100, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "translate is not supported");
    o = (engine_opts){.language = "fr"};
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "is English-only: language 'fr' is not supported");
    o.language = "en";
    t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_STR_EQ(t->language, "en");
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

TEST(whisper_beam_size_checked)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = voice(2, &n);
    char err[256] = "";
    int bad[] = {9, 16, -1};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        engine_opts o = {.beam_size = bad[i]};
        ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
        ASSERT_CONTAINS(err, "beam_size must be from 1 to 8");
    }
    engine_opts o = {.beam_size = 2, .language = "en"};
    transcript *t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "beam 2: %s", err);
    assert_within(t, 2.0);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

static int count_calls(void *ud, double f)
{
    double *last = ud;
    *last = f;
    return 0;
}

/* Under 100 ms (and empty input): an empty transcript, whisper not run, progress 0 then 1
 * (before: empty input with auto language failed with -3). */
TEST(whisper_short_input_empty)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = voice(1, &n);
    size_t lens[] = {0, 1, ENGINE_MIN_SAMPLES - 1};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        char err[256] = "";
        double last = -1;
        transcript *t = engine_transcribe(e, pcm, lens[i], NULL, count_calls, &last, err,
                                          sizeof err);
        if (!t) test_fail(__FILE__, __LINE__, "n=%zu: %s", lens[i], err);
        ASSERT_EQ(t->n_segments, 0);
        ASSERT_NULL(t->language);
        ASSERT_NEAR(t->duration, (double)lens[i] / ENGINE_SAMPLE_RATE, 1e-12);
        ASSERT_NEAR(last, 1.0, 0);
        transcript_free(t);
    }
    /* an unknown language is still an error */
    engine_opts o = {.language = "xx"};
    char err[256] = "";
    ASSERT_NULL(engine_transcribe(e, pcm, 10, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "unknown language");
    free(pcm);
    engine_close(e);
}

/* DTW with the tiny preset (from the file's shapes); GS_WHISPER_DTW=0: token timestamps.
 * Either way words lie inside the audio, in order. This build has no GPU backend. */
TEST(whisper_dtw_words_and_device)
{
    const char *path = need_model("GS_TEST_WHISPER_MODEL");
    engine *e = open_model(path, 1);
    ASSERT_STR_EQ(engine_word_timing(e), "dtw");
    ASSERT_FALSE(engine_uses_gpu(e));
    ASSERT_STR_EQ(engine_device(e), "CPU");
    size_t n;
    int16_t *pcm = voice(4, &n);
    engine_opts o = {.word_timestamps = 1, .language = "en"};
    char err[256] = "";
    transcript *t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "dtw: %s", err);
    ASSERT_TRUE(n_words(t) >= 1);
    assert_within(t, 4.0);
    transcript_free(t);
    engine_close(e);
    setenv("GS_WHISPER_DTW", "0", 1);
    e = open_model(path, 1);
    ASSERT_STR_EQ(engine_word_timing(e), "tokens");
    t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "tokens: %s", err);
    ASSERT_TRUE(n_words(t) >= 1);
    assert_within(t, 4.0);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

/* ---------------------------------------------------------------- VAD */

/* A models dir holding the whisper model (and the VAD model when vad is set). */
static void models_dir(const char *model, const char *vad)
{
    char *m = xasprintf("%s/ggml-tiny.bin", test_tmpdir());
    ASSERT_EQ(symlink(model, m), 0);
    free(m);
    if (vad) {
        char *v = xasprintf("%s/ggml-silero-v6.2.0.bin", test_tmpdir());
        ASSERT_EQ(symlink(vad, v), 0);
        free(v);
    }
    setenv("GS_MODELS_DIR", test_tmpdir(), 1);
    unsetenv("GS_VAD_MODEL");
}

TEST(whisper_vad_on_needs_a_model)
{
    models_dir(need_model("GS_TEST_WHISPER_MODEL"), NULL);
    char err[256] = "";
    setenv("VAD", "on", 1);
    ASSERT_NULL(engine_open("whisper", "tiny", err, sizeof err));
    ASSERT_CONTAINS(err, "VAD=on but no VAD model");
    setenv("VAD", "sometimes", 1);
    ASSERT_NULL(engine_open("whisper", "tiny", err, sizeof err));
    ASSERT_CONTAINS(err, "VAD must be auto, on or off");
    setenv("GS_VAD_MODEL", "/nonexistent/ggml-silero.bin", 1);
    setenv("VAD", "auto", 1);
    ASSERT_NULL(engine_open("whisper", "tiny", err, sizeof err));
    ASSERT_CONTAINS(err, "GS_VAD_MODEL");
    unsetenv("GS_VAD_MODEL");
    /* auto without a model: opens, and a per-call VAD_ON is a clear error */
    engine *e = engine_open("whisper", "tiny", err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "auto: %s", err);
    size_t n;
    int16_t *pcm = voice(1, &n);
    engine_opts o = {.vad = ENGINE_VAD_ON};
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "no VAD model");
    free(pcm);
    engine_close(e);
}

/* VAD=auto finds ggml-silero-*.bin beside the model. Silence: VAD finds no speech, so the
 * transcript is empty, while the same audio without VAD makes the random model talk. */
TEST(whisper_vad_auto_skips_silence)
{
    const char *vad = getenv("GS_TEST_VAD_MODEL");
    const char *model = need_model("GS_TEST_WHISPER_MODEL");
    if (!vad || access(vad, R_OK) != 0)
        SKIP_NOT_PACKAGED("a Silero VAD ggml model", "GS_TEST_VAD_MODEL not set");
    models_dir(model, vad);
    setenv("VAD", "auto", 1);
    char err[256] = "";
    engine *e = engine_open("whisper", "tiny", err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "open: %s", err);
    size_t n = 5 * ENGINE_SAMPLE_RATE;
    int16_t *pcm = xcalloc(n, sizeof *pcm);
    double last = -1;
    transcript *t = engine_transcribe(e, pcm, n, NULL, count_calls, &last, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "vad: %s", err);
    ASSERT_EQ(t->n_segments, 0);
    ASSERT_NEAR(t->duration, 5.0, 1e-9);
    ASSERT_NEAR(last, 1.0, 0);
    transcript_free(t);
    engine_opts o = {.vad = ENGINE_VAD_OFF};
    t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "no vad: %s", err);
    ASSERT_TRUE(t->n_segments >= 1);
    assert_within(t, 5.0);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

/* Real speech (a librivox clip from pocketsphinx's test data) between 4 s of silence on
 * each side: VAD keeps the speech only, and every time maps back into the clip's place. */
TEST(whisper_vad_maps_times_back)
{
    const char *vad = getenv("GS_TEST_VAD_MODEL");
    const char *model = need_model("GS_TEST_WHISPER_MODEL");
    if (!vad || access(vad, R_OK) != 0)
        SKIP_NOT_PACKAGED("a Silero VAD ggml model", "GS_TEST_VAD_MODEL not set");
    const char *clip = "/usr/share/pocketsphinx/test/data/librivox/"
                       "sense_and_sensibility_01_austen_64kb-0870.wav";
    size_t len = 0;
    char *wav = read_file(clip, 16u << 20, &len);
    if (!wav || len < 44 + 16000) SKIP("pocketsphinx test data not installed (%s)", clip);
    size_t ns = (len - 44) / 2, pad = 4 * ENGINE_SAMPLE_RATE, n = pad + ns + pad;
    int16_t *pcm = xcalloc(n, sizeof *pcm);
    memcpy(pcm + pad, wav + 44, ns * 2); /* the canonical 44-byte header */
    free(wav);
    models_dir(model, vad);
    setenv("VAD", "on", 1);
    char err[256] = "";
    engine *e = engine_open("whisper", "tiny", err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "open: %s", err);
    engine_opts o = {.language = "en", .word_timestamps = 1};
    double dur = (double)n / ENGINE_SAMPLE_RATE, lo = 4.0 - 0.5, hi = dur - 4.0 + 0.5;
    transcript *t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "vad: %s", err);
    assert_within(t, dur);
    ASSERT_TRUE(t->n_segments >= 1);
    for (size_t i = 0; i < t->n_segments; i++) {
        ASSERT_TRUE(t->segments[i].start >= lo);
        ASSERT_TRUE(t->segments[i].end <= hi);
        for (size_t k = 0; k < t->segments[i].n_words; k++)
            ASSERT_TRUE(t->segments[i].words[k].start >= lo && t->segments[i].words[k].end <= hi);
    }
    fprintf(stderr, "    VAD: %zu segments within [%.2f, %.2f] of %.2f s\n", t->n_segments,
            t->segments[0].start, t->segments[t->n_segments - 1].end, dur);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

/* ---------------------------------------------------------------- slots */

/* Two slots: two calls at once, each on a fresh state, give what a fresh single-slot
 * engine gives (whisper's sampling RNG lives in the state, so only fresh states compare);
 * a third caller waits for a slot and succeeds too. */
TEST(whisper_slots_share_one_model)
{
    const char *path = need_model("GS_TEST_WHISPER_MODEL");
    size_t n;
    int16_t *pcm = voice(3, &n);
    engine_opts o = {.language = "en"};
    char err[256] = "";
    engine *one = open_model(path, 1);
    ASSERT_EQ(engine_slots(one), 1);
    transcript *ref = engine_transcribe(one, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!ref) test_fail(__FILE__, __LINE__, "ref: %s", err);
    char *want = transcript_text(ref);
    transcript_free(ref);
    engine_close(one);
    engine *e = open_model(path, 2);
    ASSERT_EQ(engine_slots(e), 2);
    struct job j[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        job_init(&j[i], e, pcm, n);
        j[i].o.language = "en";
        pthread_create(&th[i], NULL, job_run, &j[i]);
    }
    int same = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        if (!j[i].t) test_fail(__FILE__, __LINE__, "job %d: %s", i, j[i].err);
        assert_within(j[i].t, 3.0);
        char *got = transcript_text(j[i].t);
        same += strcmp(got, want) == 0;
        free(got);
    }
    ASSERT_TRUE(same >= 2); /* the two that ran first, on fresh states */
    for (int i = 0; i < 3; i++) job_destroy(&j[i]);
    free(want);
    free(pcm);
    engine_close(e);
}

/* A caller waiting for a slot returns "cancelled" when its flag is set while it waits. */
TEST(whisper_cancel_while_waiting_for_a_slot)
{
    engine *e = open_model(need_model("GS_TEST_WHISPER_MODEL"), 1);
    size_t n;
    int16_t *pcm = hiss(150, &n);
    struct job busy, waiting;
    job_init(&busy, e, pcm, n);
    busy.o.language = "en";
    busy.handshake = 1;
    job_init(&waiting, e, pcm, n);
    pthread_t a, b;
    pthread_create(&a, NULL, job_run, &busy);
    sem_wait(&busy.started); /* busy holds the only slot and is paused in its callback */
    pthread_create(&b, NULL, job_run, &waiting);
    usleep(200000);
    atomic_store(&waiting.cancel, 1);
    pthread_join(b, NULL);
    ASSERT_NULL(waiting.t);
    ASSERT_STR_EQ(waiting.err, "cancelled");
    atomic_store(&busy.cancel, 1);
    sem_post(&busy.resumed);
    pthread_join(a, NULL);
    ASSERT_STR_EQ(busy.err, "cancelled");
    job_destroy(&busy);
    job_destroy(&waiting);
    free(pcm);
    engine_close(e);
}
