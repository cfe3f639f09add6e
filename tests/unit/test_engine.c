/* Unit tests for src/engine: pocketsphinx on real speech (WER bound), JSGF-exact decoding of
 * espeak-ng speech, progress and cancel, error paths, whisper availability, model names. */
#define _GNU_SOURCE
#include "test.h"

#include "core/util.h"
#include "engine/engine.h"
#include "engine/engine_impl.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#define LIBRIVOX "/usr/share/pocketsphinx/test/data/librivox"
/* Measured 0.282 (20 edits over 71 reference words; pocketsphinx's own errors such as
 * "mister" -> "mr", "dashwood" -> "guess would"). Decoding is deterministic; a pipeline that
 * drops, misaligns or garbles pieces (wrong header offset, wrong CMN, lost words) lands far
 * above this bound. */
#define LIBRIVOX_MAX_WER 0.35

/* ---------------------------------------------------------------- helpers */

/* Read a 16 kHz mono s16 PCM WAV, walking the RIFF chunks (headers are not always 44 bytes). */
static int16_t *load_wav(const char *path, size_t *n)
{
    size_t len = 0;
    char *d = read_file(path, 64u << 20, &len);
    if (!d) test_fail(__FILE__, __LINE__, "cannot read %s", path);
    if (len < 12 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WAVE", 4) != 0)
        test_fail(__FILE__, __LINE__, "%s: not a RIFF/WAVE file", path);
    int fmt_ok = 0;
    int16_t *pcm = NULL;
    size_t off = 12;
    while (off + 8 <= len) {
        uint32_t sz;
        memcpy(&sz, d + off + 4, 4);
        const char *body = d + off + 8;
        size_t avail = len - off - 8;
        if (memcmp(d + off, "fmt ", 4) == 0 && sz >= 16 && avail >= 16) {
            uint16_t fmt, ch, bits;
            uint32_t rate;
            memcpy(&fmt, body, 2);
            memcpy(&ch, body + 2, 2);
            memcpy(&rate, body + 4, 4);
            memcpy(&bits, body + 14, 2);
            fmt_ok = fmt == 1 && ch == 1 && rate == 16000 && bits == 16;
        } else if (memcmp(d + off, "data", 4) == 0) {
            if (!fmt_ok) test_fail(__FILE__, __LINE__, "%s: not 16 kHz mono s16 PCM", path);
            size_t m = sz < avail ? sz : avail;
            *n = m / 2;
            pcm = xmalloc(m + 2);
            memcpy(pcm, body, m);
            break;
        }
        off += 8 + (size_t)sz + (sz & 1);
    }
    free(d);
    if (!pcm) test_fail(__FILE__, __LINE__, "%s: no data chunk", path);
    return pcm;
}

/* Split lowercase words into a heap array of heap strings; returns the count. */
static size_t words_of(const char *s, char ***out)
{
    char **v = NULL;
    size_t n = 0;
    while (*s) {
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) break;
        size_t k = 0;
        while (s[k] && !isspace((unsigned char)s[k])) k++;
        char *w = xstrndup(s, k);
        for (char *p = w; *p; p++) *p = (char)tolower((unsigned char)*p);
        v = xrealloc(v, (n + 1) * sizeof *v);
        v[n++] = w;
        s += k;
    }
    *out = v;
    return n;
}

static void free_words(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Word-level Levenshtein distance between ref and hyp (case-insensitive); *nref = ref words. */
static size_t word_edits(const char *ref, const char *hyp, size_t *nref)
{
    char **r, **h;
    size_t nr = words_of(ref, &r), nh = words_of(hyp, &h);
    size_t *prev = xcalloc(nh + 1, sizeof *prev), *cur = xcalloc(nh + 1, sizeof *cur);
    for (size_t j = 0; j <= nh; j++) prev[j] = j;
    for (size_t i = 1; i <= nr; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nh; j++) {
            size_t sub = prev[j - 1] + (strcmp(r[i - 1], h[j - 1]) != 0);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[nh];
    free(prev);
    free(cur);
    free_words(r, nr);
    free_words(h, nh);
    *nref = nr;
    return d;
}

static double wer(const char *ref, const char *hyp)
{
    size_t nr;
    size_t d = word_edits(ref, hyp, &nr);
    return nr ? (double)d / (double)nr : (double)d;
}

/* Reference text of a librivox clip from the "transcription" file (without <s>, </s>). */
static char *librivox_ref(const char *id)
{
    char *all = read_file(LIBRIVOX "/transcription", 1 << 20, NULL);
    ASSERT_NOT_NULL(all);
    char *key = xasprintf("(%s)", id);
    char *hit = strstr(all, key);
    ASSERT_NOT_NULL(hit);
    char *line = hit;
    while (line > all && line[-1] != '\n') line--;
    buf b;
    buf_init(&b, 0);
    char **w;
    char *l = xstrndup(line, (size_t)(hit - line));
    size_t nw = words_of(l, &w);
    free(l);
    free(all);
    free(key);
    for (size_t i = 0; i < nw; i++) {
        if (strcmp(w[i], "<s>") && strcmp(w[i], "</s>"))
            (void)buf_appendf(&b, "%s%s", b.len ? " " : "", w[i]);
    }
    free_words(w, nw);
    return buf_take(&b);
}

static void assert_times_sane(const transcript *t, double dur)
{
    double prev = 0;
    for (size_t i = 0; i < t->n_segments; i++) {
        const transcript_segment *s = &t->segments[i];
        ASSERT_TRUE(s->start >= prev - 1e-9);
        ASSERT_TRUE(s->end >= s->start);
        ASSERT_TRUE(s->end <= dur + 1e-6);
        double wp = s->start;
        for (size_t k = 0; k < s->n_words; k++) {
            const transcript_word *w = &s->words[k];
            ASSERT_TRUE(w->start >= wp - 1e-9);
            ASSERT_TRUE(w->end >= w->start);
            ASSERT_TRUE(w->end <= s->end + 1e-9);
            ASSERT_TRUE(w->confidence <= 1.0);
            ASSERT_TRUE(strchr(w->word, '(') == NULL && w->word[0] != '<' && w->word[0] != '[');
            wp = w->end;
        }
        prev = s->end;
    }
}

static engine *open_sphinx(void)
{
    char err[256] = "";
    engine *e = engine_open("sphinx", NULL, err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "engine_open: %s", err);
    return e;
}

static const char *clips[] = {
    "sense_and_sensibility_01_austen_64kb-0870", "sense_and_sensibility_01_austen_64kb-0880",
    "sense_and_sensibility_01_austen_64kb-0890", "sense_and_sensibility_01_austen_64kb-0920",
    "sense_and_sensibility_01_austen_64kb-0930",
};

/* ---------------------------------------------------------------- tests */

TEST(engine_wer_helper)
{
    ASSERT_NEAR(wer("a b c d", "a b c d"), 0, 0);
    ASSERT_NEAR(wer("a b c d", "A x c"), 0.5, 1e-12);    /* one substitution, one deletion */
    ASSERT_NEAR(wer("a b", "a b c d"), 1.0, 1e-12);      /* two insertions */
    ASSERT_NEAR(wer("a b c", ""), 1.0, 1e-12);
}

TEST(engine_sphinx_librivox_wer)
{
    engine *e = open_sphinx();
    ASSERT_STR_EQ(engine_name(e), "sphinx");
    ASSERT_FALSE(engine_uses_gpu(e));
    size_t edits = 0, nref = 0;
    double audio = 0, t0 = now_mono();
    for (size_t i = 0; i < ARRAY_LEN(clips); i++) {
        char *path = xasprintf(LIBRIVOX "/%s.wav", clips[i]);
        size_t n = 0;
        int16_t *pcm = load_wav(path, &n);
        double dur = (double)n / 16000;
        audio += dur;
        char err[256] = "";
        engine_opts o = {.language = "en", .word_timestamps = 1};
        transcript *t = engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err);
        if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
        ASSERT_STR_EQ(t->language, "en");
        ASSERT_NEAR(t->duration, dur, 1e-9);
        ASSERT_TRUE(t->n_segments >= 1);
        assert_times_sane(t, dur);
        char *hyp = transcript_text(t), *ref = librivox_ref(clips[i]);
        size_t nr;
        edits += word_edits(ref, hyp, &nr);
        nref += nr;
        if (wer(ref, hyp) > 0.6) fprintf(stderr, "    ref: %s\n    hyp: %s\n", ref, hyp);
        free(hyp);
        free(ref);
        transcript_free(t);
        free(pcm);
        free(path);
    }
    double w = (double)edits / (double)nref;
    fprintf(stderr, "    librivox WER %.3f (%zu/%zu), RTF %.3f\n", w, edits, nref,
            (now_mono() - t0) / audio);
    ASSERT_TRUE(w < LIBRIVOX_MAX_WER);
    engine_close(e);
}

/* The five clips joined with 1 s of silence: one segment per clip, at the right place. */
TEST(engine_sphinx_segments_at_pauses)
{
    engine *e = open_sphinx();
    int16_t *all = NULL;
    size_t nall = 0;
    double starts[ARRAY_LEN(clips)], ends[ARRAY_LEN(clips)];
    for (size_t i = 0; i < ARRAY_LEN(clips); i++) {
        char *path = xasprintf(LIBRIVOX "/%s.wav", clips[i]);
        size_t n = 0;
        int16_t *pcm = load_wav(path, &n);
        all = xrealloc(all, (nall + 16000 + n) * sizeof *all);
        memset(all + nall, 0, 16000 * sizeof *all);
        memcpy(all + nall + 16000, pcm, n * sizeof *all);
        starts[i] = (double)(nall + 16000) / 16000;
        nall += 16000 + n;
        ends[i] = (double)nall / 16000;
        free(pcm);
        free(path);
    }
    char err[256] = "";
    transcript *t = engine_transcribe(e, all, nall, NULL, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
    ASSERT_EQ(t->n_segments, ARRAY_LEN(clips));
    assert_times_sane(t, (double)nall / 16000);
    for (size_t i = 0; i < ARRAY_LEN(clips); i++) {
        /* pieces keep 0.2 s of the pause around them; the first word may absorb it */
        ASSERT_TRUE(t->segments[i].start >= starts[i] - 0.25);
        ASSERT_TRUE(t->segments[i].end <= ends[i] + 0.25);
        ASSERT_TRUE(t->segments[i].n_words >= 3);
        ASSERT_TRUE(t->segments[i].confidence >= 0 && t->segments[i].confidence <= 1);
    }
    char *srt = transcript_to_srt(t);
    ASSERT_CONTAINS(srt, "5\n00:00:2");
    free(srt);
    transcript_free(t);
    free(all);
    engine_close(e);
}

static void need_tools(void)
{
    if (system("command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1") != 0)
        SKIP("espeak-ng or sox not installed (apt-get install espeak-ng sox)");
}

/* espeak-ng speech decoded with a JSGF grammar of the expected sentences: exact words. */
TEST(engine_sphinx_jsgf_espeak_exact)
{
    need_tools();
    static const char *sent[] = {
        "the quick brown fox jumps over the lazy dog",
        "please send the report before friday",
        "we will meet at the station at noon",
    };
    FILE *f = fopen("ref.txt", "w");
    ASSERT_NOT_NULL(f);
    for (size_t i = 0; i < ARRAY_LEN(sent); i++) fprintf(f, "%s.\n", sent[i]);
    fclose(f);
    f = fopen("ref.gram", "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "#JSGF V1.0;\ngrammar ref;\npublic <utt> = <sent>+;\n<sent> = %s | %s | %s;\n",
            sent[0], sent[1], sent[2]);
    fclose(f);
    ASSERT_EQ(system("espeak-ng -v en-us -s 150 -f ref.txt -w e.wav >/dev/null 2>&1 && "
                     "sox -D e.wav -r 16000 -c 1 -b 16 t.wav"), 0);
    char *gram = xasprintf("%s/ref.gram", test_tmpdir());
    setenv("GS_SPHINX_JSGF", gram, 1);
    free(gram);
    engine *e = open_sphinx();
    size_t n = 0;
    int16_t *pcm = load_wav("t.wav", &n);
    char err[256] = "";
    transcript *t = engine_transcribe(e, pcm, n, NULL, NULL, NULL, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
    char *hyp = transcript_text(t);
    ASSERT_STR_EQ(hyp, "the quick brown fox jumps over the lazy dog please send the report "
                       "before friday we will meet at the station at noon");
    ASSERT_TRUE(t->n_segments >= 1);
    assert_times_sane(t, (double)n / 16000);
    free(hyp);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

struct prog { int calls, cancel_at; double last; int monotone; };

static int on_progress(void *ud, double f)
{
    struct prog *p = ud;
    if (f < p->last || f < 0 || f > 1) p->monotone = 0;
    p->last = f;
    return ++p->calls == p->cancel_at;
}

static int16_t *concat_clips(size_t *n_out)
{
    int16_t *all = NULL;
    size_t nall = 0;
    for (size_t i = 0; i < 3; i++) {
        char *path = xasprintf(LIBRIVOX "/%s.wav", clips[i]);
        size_t n = 0;
        int16_t *pcm = load_wav(path, &n);
        all = xrealloc(all, (nall + 16000 + n) * sizeof *all);
        memset(all + nall, 0, 16000 * sizeof *all);
        memcpy(all + nall + 16000, pcm, n * sizeof *all);
        nall += 16000 + n;
        free(pcm);
        free(path);
    }
    *n_out = nall;
    return all;
}

TEST(engine_progress_and_cancel)
{
    engine *e = open_sphinx();
    size_t n = 0;
    int16_t *pcm = concat_clips(&n);
    char err[256] = "";
    /* no cancel: fractions nondecreasing, ending at 1, at least one per piece */
    struct prog p = {.cancel_at = -1, .monotone = 1};
    transcript *t = engine_transcribe(e, pcm, n, NULL, on_progress, &p, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_TRUE(p.monotone);
    ASSERT_NEAR(p.last, 1.0, 0);
    ASSERT_TRUE(p.calls >= 2 + (int)t->n_segments);
    transcript_free(t);
    /* cancel at the first call (before any decoding) and after the first piece */
    for (int at = 1; at <= 2; at++) {
        struct prog q = {.cancel_at = at, .monotone = 1};
        err[0] = '\0';
        t = engine_transcribe(e, pcm, n, NULL, on_progress, &q, err, sizeof err);
        ASSERT_NULL(t);
        ASSERT_STR_EQ(err, "cancelled");
        ASSERT_EQ(q.calls, at);
    }
    /* the engine still works after a cancel */
    t = engine_transcribe(e, pcm, n, NULL, NULL, NULL, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_EQ(t->n_segments, 3);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

TEST(engine_sphinx_rejects_other_languages)
{
    engine *e = open_sphinx();
    int16_t pcm[1600] = {0};
    char err[256] = "";
    engine_opts o = {.language = "de"};
    ASSERT_NULL(engine_transcribe(e, pcm, ARRAY_LEN(pcm), &o, NULL, NULL, err, sizeof err));
    ASSERT_STR_EQ(err, "the CPU engine (pocketsphinx) only supports English");
    static const char *ok[] = {NULL, "", "auto", "en", "EN", "en-US", "english"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        o.language = ok[i];
        transcript *t = engine_transcribe(e, pcm, ARRAY_LEN(pcm), &o, NULL, NULL, err, sizeof err);
        ASSERT_NOT_NULL(t);
        transcript_free(t);
    }
    engine_close(e);
}

TEST(engine_sphinx_silence_and_empty)
{
    engine *e = open_sphinx();
    char err[256] = "";
    size_t n = 3 * 16000;
    int16_t *pcm = xcalloc(n, sizeof *pcm);
    for (size_t i = 0; i < n; i++) pcm[i] = (int16_t)((i * 7919) % 5) - 2; /* faint noise */
    transcript *t = engine_transcribe(e, pcm, n, NULL, NULL, NULL, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_EQ(t->n_segments, 0);
    ASSERT_NEAR(t->duration, 3.0, 1e-9);
    transcript_free(t);
    t = engine_transcribe(e, pcm, 0, NULL, NULL, NULL, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_EQ(t->n_segments, 0);
    transcript_free(t);
    ASSERT_NULL(engine_transcribe(e, NULL, 10, NULL, NULL, NULL, err, sizeof err));
    free(pcm);
    engine_close(e);
}

TEST(engine_open_errors)
{
    char err[256] = "";
    ASSERT_NULL(engine_open("kaldi", NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "unknown engine 'kaldi'");
    err[0] = '\0';
    ASSERT_NULL(engine_open("sphinx", "/nonexistent/model", err, sizeof err));
    ASSERT_CONTAINS(err, "pocketsphinx model not found in /nonexistent/model");
    setenv("GS_SPHINX_MODEL_DIR", "/nonexistent/env", 1);
    err[0] = '\0';
    ASSERT_NULL(engine_open("sphinx", NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "/nonexistent/env");
    unsetenv("GS_SPHINX_MODEL_DIR");
    setenv("GS_SPHINX_JSGF", "/nonexistent/g.gram", 1);
    err[0] = '\0';
    ASSERT_NULL(engine_open("sphinx", NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "grammar /nonexistent/g.gram not found");
}

TEST(engine_whisper_availability)
{
    char err[256] = "";
    engine *e = engine_open("whisper", "large-v3", err, sizeof err);
    if (!engine_whisper_built_in()) {
        ASSERT_NULL(e);
        ASSERT_STR_EQ(err, "whisper engine not built in (whisper.cpp not installed)");
    } else {
        /* built in: a model that is not there is a clear error */
        engine_close(e);
        setenv("GS_MODELS_DIR", test_tmpdir(), 1);
        ASSERT_NULL(engine_open("whisper", "large-v3", err, sizeof err));
        ASSERT_CONTAINS(err, "not found");
    }
    /* auto: no whisper model here -> pocketsphinx, whatever the model argument */
    setenv("GS_MODELS_DIR", test_tmpdir(), 1);
    e = engine_open("auto", "large-v3", err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "auto: %s", err);
    ASSERT_STR_EQ(engine_name(e), "sphinx");
    ASSERT_STR_EQ(engine_model(e), "/usr/share/pocketsphinx/model/en-us");
    ASSERT_FALSE(engine_uses_gpu(e));
    engine_close(e);
    e = engine_open(NULL, NULL, err, sizeof err);
    ASSERT_NOT_NULL(e);
    ASSERT_STR_EQ(engine_name(e), "sphinx");
    engine_close(e);
    engine_close(NULL);
}

TEST(engine_whisper_model_names)
{
    unsetenv("GS_MODELS_DIR");
    char *p = engine_whisper_model_path("large-v3");
    ASSERT_STR_EQ(p, "/workspace/models/ggml-large-v3.bin");
    free(p);
    p = engine_whisper_model_path(NULL);
    ASSERT_STR_EQ(p, "/workspace/models/ggml-large-v3.bin");
    free(p);
    setenv("GS_MODELS_DIR", "/m", 1);
    p = engine_whisper_model_path("large-v3-turbo");
    ASSERT_STR_EQ(p, "/m/ggml-large-v3-turbo.bin");
    free(p);
    p = engine_whisper_model_path("/data/ggml-base.en.bin");
    ASSERT_STR_EQ(p, "/data/ggml-base.en.bin");
    free(p);
    p = engine_whisper_model_path("ggml-tiny.bin");   /* a file name: used as given */
    ASSERT_STR_EQ(p, "ggml-tiny.bin");
    free(p);
}

struct fracs { double v[64]; int n; };

static int record(void *ud, double f)
{
    struct fracs *r = ud;
    if (r->n < 64) r->v[r->n++] = f;
    return 0;
}

/* 40 s without any pause: cut into pieces of at most 25 s (progress is reported per piece). */
TEST(engine_sphinx_long_input_is_cut)
{
    engine *e = open_sphinx();
    size_t n = 40 * 16000;
    int16_t *pcm = xmalloc(n * sizeof *pcm);
    for (size_t i = 0; i < n; i++)
        pcm[i] = (int16_t)(8000 * sin(2 * M_PI * 440 * (double)i / 16000) *
                           (0.6 + 0.4 * sin(2 * M_PI * 3 * (double)i / 16000)));
    struct fracs r = {.n = 0};
    char err[256] = "";
    transcript *t = engine_transcribe(e, pcm, n, NULL, record, &r, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "transcribe: %s", err);
    assert_times_sane(t, 40);
    ASSERT_EQ(r.n, 4); /* start, two pieces, end */
    ASSERT_NEAR(r.v[0], 0, 0);
    ASSERT_TRUE(r.v[1] * 40 <= 25.01 && r.v[1] * 40 >= 12.5);
    ASSERT_NEAR(r.v[2], 1.0, 1e-9);
    ASSERT_NEAR(r.v[3], 1.0, 0);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

/* ---------------------------------------------------------------- slots, checks, names */

TEST(engine_beam_size_limits)
{
    ASSERT_EQ(ENGINE_MAX_BEAM, 8);
    ASSERT_TRUE(engine_beam_size_ok(0));
    ASSERT_TRUE(engine_beam_size_ok(1));
    ASSERT_TRUE(engine_beam_size_ok(8));
    ASSERT_FALSE(engine_beam_size_ok(9));
    ASSERT_FALSE(engine_beam_size_ok(16));
    ASSERT_FALSE(engine_beam_size_ok(-1));
    /* checked for every engine, before any work */
    engine *e = open_sphinx();
    int16_t pcm[16000] = {0};
    engine_opts o = {.beam_size = 9};
    char err[256] = "";
    ASSERT_NULL(engine_transcribe(e, pcm, ARRAY_LEN(pcm), &o, NULL, NULL, err, sizeof err));
    ASSERT_STR_EQ(err, "beam_size must be from 1 to 8 (got 9)");
    engine_close(e);
}

TEST(engine_slots_argument)
{
    char err[256] = "";
    ASSERT_NULL(engine_open_slots("sphinx", NULL, 0, err, sizeof err));
    ASSERT_CONTAINS(err, "slots must be 1..64");
    ASSERT_NULL(engine_open_slots("sphinx", NULL, ENGINE_MAX_SLOTS + 1, err, sizeof err));
    engine *e = open_sphinx();
    ASSERT_EQ(engine_slots(e), 1);
    ASSERT_STR_EQ(engine_device(e), "CPU");
    ASSERT_STR_EQ(engine_word_timing(e), "native");
    engine_close(e);
}

TEST(engine_threads_per_slot)
{
    int all = engine_threads_per_slot(1);
    ASSERT_TRUE(all >= 1);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    ASSERT_TRUE(all <= online);
    ASSERT_EQ(engine_threads_per_slot(2), all / 2 ? all / 2 : 1);
    ASSERT_EQ(engine_threads_per_slot(all * 4), 1);
}

struct sjob {
    engine *e;
    const int16_t *pcm;
    size_t n;
    transcript *t;
    char err[256];
};

static void *sjob_run(void *p)
{
    struct sjob *j = p;
    engine_opts o = {.language = "en", .word_timestamps = 1};
    j->t = engine_transcribe(j->e, j->pcm, j->n, &o, NULL, NULL, j->err, sizeof j->err);
    return NULL;
}

/* Two sphinx slots (a decoder each): three calls at once; the two that start on fresh
 * decoders give the text of a fresh single-slot engine (a decoder carries some state, its
 * CMN estimate, from one call to the next, so a reused one may differ in a word). */
TEST(engine_sphinx_slots_run_in_parallel)
{
    char *path = xasprintf(LIBRIVOX "/%s.wav", clips[0]);
    size_t n = 0;
    int16_t *pcm = load_wav(path, &n);
    free(path);
    engine *one = open_sphinx();
    char err[256] = "";
    engine_opts o = {.language = "en", .word_timestamps = 1};
    transcript *ref = engine_transcribe(one, pcm, n, &o, NULL, NULL, err, sizeof err);
    if (!ref) test_fail(__FILE__, __LINE__, "ref: %s", err);
    char *want = transcript_text(ref);
    transcript_free(ref);
    engine_close(one);
    engine *e = engine_open_slots("sphinx", NULL, 2, err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "open: %s", err);
    ASSERT_EQ(engine_slots(e), 2);
    struct sjob j[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        j[i] = (struct sjob){.e = e, .pcm = pcm, .n = n};
        pthread_create(&th[i], NULL, sjob_run, &j[i]);
    }
    int same = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        if (!j[i].t) test_fail(__FILE__, __LINE__, "job %d: %s", i, j[i].err);
        char *got = transcript_text(j[i].t);
        same += strcmp(got, want) == 0;
        free(got);
        transcript_free(j[i].t);
    }
    ASSERT_TRUE(same >= 2);
    free(want);
    free(pcm);
    engine_close(e);
}

static int flag_on_first_piece(void *ud, double f)
{
    atomic_int *flag = ud;
    if (f > 0) atomic_store(flag, 1); /* the caller's flag, not the return value */
    return 0;
}

/* The cancel flag: set before the call -> cancelled at once; set while it runs (40 s: two
 * pieces) -> cancelled after the current piece. Short input: empty, no decoding. */
TEST(engine_sphinx_cancel_flag_and_short_input)
{
    engine *e = open_sphinx();
    size_t n = 40 * 16000;
    int16_t *pcm = xmalloc(n * sizeof *pcm);
    for (size_t i = 0; i < n; i++)
        pcm[i] = (int16_t)(8000 * sin(2 * M_PI * 440 * (double)i / 16000) *
                           (0.6 + 0.4 * sin(2 * M_PI * 3 * (double)i / 16000)));
    atomic_int flag;
    atomic_init(&flag, 1);
    engine_opts o = {.cancel = &flag};
    char err[256] = "";
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, NULL, NULL, err, sizeof err));
    ASSERT_STR_EQ(err, "cancelled");
    atomic_store(&flag, 0);
    ASSERT_NULL(engine_transcribe(e, pcm, n, &o, flag_on_first_piece, &flag, err, sizeof err));
    ASSERT_STR_EQ(err, "cancelled");
    atomic_store(&flag, 0);
    transcript *t = engine_transcribe(e, pcm, ENGINE_MIN_SAMPLES - 1, &o, NULL, NULL, err,
                                      sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_EQ(t->n_segments, 0);
    ASSERT_STR_EQ(t->language, "en");
    ASSERT_NEAR(t->duration, (double)(ENGINE_MIN_SAMPLES - 1) / 16000, 1e-12);
    transcript_free(t);
    free(pcm);
    engine_close(e);
}

TEST(engine_parakeet_model_names_and_auto)
{
    setenv("GS_MODELS_DIR", test_tmpdir(), 1);
    char *p = engine_parakeet_model_path(NULL);
    char *want = xasprintf("%s/ggml-parakeet-tdt-0.6b-v3.bin", test_tmpdir());
    ASSERT_STR_EQ(p, want);
    free(p);
    /* only the -f16 file (ggml-org/parakeet-GGUF's name) exists: that one */
    char *f16 = xasprintf("%s/ggml-parakeet-tdt-0.6b-v3-f16.bin", test_tmpdir());
    ASSERT_TRUE(write_file_atomic(f16, "x", 1, 0600) == 0);
    p = engine_parakeet_model_path("parakeet-tdt-0.6b-v3");
    ASSERT_STR_EQ(p, f16);
    free(p);
    p = engine_parakeet_model_path("/m/ggml-parakeet.bin");
    ASSERT_STR_EQ(p, "/m/ggml-parakeet.bin");
    free(p);
    free(f16);
    free(want);
    char err[256] = "";
    engine *e = engine_open("parakeet", "parakeet-none", err, sizeof err);
    if (!engine_parakeet_built_in()) {
        ASSERT_NULL(e);
        ASSERT_CONTAINS(err, "parakeet engine not built in");
    } else {
        ASSERT_NULL(e);
        ASSERT_CONTAINS(err, "not found");
    }
    /* auto with a parakeet model that is not there (or not built in): pocketsphinx */
    e = engine_open("auto", "parakeet-none", err, sizeof err);
    if (!e) test_fail(__FILE__, __LINE__, "auto: %s", err);
    ASSERT_STR_EQ(engine_name(e), "sphinx");
    engine_close(e);
}
