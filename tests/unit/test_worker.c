/* Unit tests for src/worker: the worker HTTP API in-process (sphinx engine, port 0) and its
 * client: librivox speech end to end with a WER bound, idempotent POST, cancel (running and
 * queued), 404/409, refused bodies (not WAV, wrong format, empty, oversized, queue full),
 * loopback-only, result expiry, client errors; Ogg Opus bodies (the same transcript as the
 * WAV, decoded on the job thread; corrupt ones fail the job; /health lists "opus"). */
#define _GNU_SOURCE
#include "test.h"

#include "audio/audio.h"
#include "audio/opus.h"
#include "core/util.h"
#include "worker/worker.h"
#include "worker/worker_client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIBRIVOX "/usr/share/pocketsphinx/test/data/librivox"
#define CLIP(i) LIBRIVOX "/sense_and_sensibility_01_austen_64kb-0" i ".wav"
/* pocketsphinx measures 0.282 on these five clips (see test_engine.c); the worker must not
 * lose anything on the way */
#define MAX_WER 0.35

static const char *clip_ids[] = {"870", "880", "890", "920", "930"};

/* ---------------------------------------------------------------- helpers */

static worker *start_worker(size_t max_body, int max_queue, double ttl)
{
    char err[512] = "";
    char *dir = xasprintf("%s/work", test_tmpdir());
    worker_config c = {.host = "127.0.0.1", .port = 0, .engine = "sphinx", .work_dir = dir,
                       .max_body = max_body, .max_queue = max_queue, .result_ttl_s = ttl,
                       .version = "test"};
    worker *w = worker_start(&c, err, sizeof err);
    free(dir);
    if (!w) test_fail(__FILE__, __LINE__, "worker_start: %s", err);
    return w;
}

static char *base_of(worker *w) { return xasprintf("http://127.0.0.1:%d", worker_port(w)); }

static int work_dir_files(void)
{
    char *dir = xasprintf("%s/work", test_tmpdir());
    DIR *d = opendir(dir);
    free(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    return buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

/* Raw request; returns the parsed JSON body (or {"raw": ...}) and the status. */
static json_t *call(worker *w, const char *method, const char *path, const void *body,
                    size_t blen, long *status)
{
    CURL *c = curl_easy_init();
    buf b;
    buf_init(&b, 0);
    char *url = xasprintf("http://127.0.0.1:%d%s", worker_port(w), path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) test_fail(__FILE__, __LINE__, "%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    json_t *j = json_loads(b.data ? b.data : "", 0, NULL);
    if (!j) j = json_pack("{s:s}", "raw", b.data ? b.data : "");
    buf_release(&b);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    return j;
}

static const char *jstr(json_t *j, const char *k) { return json_string_value(json_object_get(j, k)); }

/* Decode clips (FFmpeg) and concatenate them `times` times with 0.5 s gaps; write a WAV. */
static char *make_wav(const char *name, const char *const *ids, size_t nids, int times)
{
    audio_pcm all = {.rate = AUDIO_RATE};
    for (int t = 0; t < times; t++)
        for (size_t i = 0; i < nids; i++) {
            char *p = xasprintf(LIBRIVOX "/sense_and_sensibility_01_austen_64kb-0%s.wav", ids[i]);
            char err[256];
            audio_pcm one;
            if (audio_decode_file(p, 0, &one, err, sizeof err) != 0)
                test_fail(__FILE__, __LINE__, "%s: %s", p, err);
            all.samples = xrealloc(all.samples, (all.nsamples + 8000 + one.nsamples) * 2);
            memset(all.samples + all.nsamples, 0, 8000 * 2);
            memcpy(all.samples + all.nsamples + 8000, one.samples, one.nsamples * 2);
            all.nsamples += 8000 + one.nsamples;
            audio_pcm_release(&one);
            free(p);
        }
    char *path = xasprintf("%s/%s", test_tmpdir(), name);
    ASSERT_EQ(audio_write_wav(path, &all), 0);
    audio_pcm_release(&all);
    return path;
}

static char *read_all(const char *path, size_t *len)
{
    char *d = read_file(path, 64u << 20, len);
    if (!d) test_fail(__FILE__, __LINE__, "cannot read %s", path);
    return d;
}

/* Word-level edit distance (lowercase words). */
static size_t split_words(const char *s, char ***out)
{
    char **v = NULL;
    size_t n = 0;
    while (*s) {
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) break;
        size_t k = strcspn(s, " \t\r\n");
        char *wd = xstrndup(s, k);
        for (char *p = wd; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (strcmp(wd, "<s>") && strcmp(wd, "</s>") && wd[0] != '(') {
            v = xrealloc(v, (n + 1) * sizeof *v);
            v[n++] = wd;
        } else {
            free(wd);
        }
        s += k;
    }
    *out = v;
    return n;
}

static size_t edits(const char *ref, const char *hyp, size_t *nref)
{
    char **r, **h;
    size_t nr = split_words(ref, &r), nh = split_words(hyp, &h);
    size_t *d = xcalloc((nr + 1) * (nh + 1), sizeof *d);
#define D(i, j) d[(i) * (nh + 1) + (j)]
    for (size_t i = 0; i <= nr; i++) D(i, 0) = i;
    for (size_t j = 0; j <= nh; j++) D(0, j) = j;
    for (size_t i = 1; i <= nr; i++)
        for (size_t j = 1; j <= nh; j++) {
            size_t best = D(i - 1, j - 1) + (strcmp(r[i - 1], h[j - 1]) != 0);
            if (D(i - 1, j) + 1 < best) best = D(i - 1, j) + 1;
            if (D(i, j - 1) + 1 < best) best = D(i, j - 1) + 1;
            D(i, j) = best;
        }
    size_t e = D(nr, nh);
#undef D
    for (size_t i = 0; i < nr; i++) free(r[i]);
    for (size_t i = 0; i < nh; i++) free(h[i]);
    free(r);
    free(h);
    free(d);
    *nref = nr;
    return e;
}

/* The reference line of a clip from the "transcription" file. */
static char *reference(const char *id)
{
    char *all = read_all(LIBRIVOX "/transcription", NULL);
    char *key = xasprintf("-0%s)", id);
    char *hit = strstr(all, key);
    ASSERT_NOT_NULL(hit);
    char *line = hit;
    while (line > all && line[-1] != '\n') line--;
    char *ref = xstrndup(line, (size_t)(hit - line));
    free(key);
    free(all);
    return ref;
}

struct prog_rec { double last; int calls, monotone, cancel_at_calls; };

static int rec_progress(void *ud, double f)
{
    struct prog_rec *p = ud;
    if (f < p->last || f < 0 || f > 1) p->monotone = 0;
    p->last = f;
    p->calls++;
    return p->cancel_at_calls && f > 0 && p->calls >= p->cancel_at_calls;
}

static void wait_state(worker *w, const char *id, const char *state, double max_s)
{
    char *path = xasprintf("/jobs/%s", id);
    double t0 = now_mono();
    for (;;) {
        long st;
        json_t *j = call(w, "GET", path, NULL, 0, &st);
        int ok = st == 200 && jstr(j, "state") && strcmp(jstr(j, "state"), state) == 0;
        json_decref(j);
        if (ok) break;
        if (now_mono() - t0 > max_s) test_fail(__FILE__, __LINE__, "job %s never became %s", id, state);
        usleep(50 * 1000);
    }
    free(path);
}

/* ---------------------------------------------------------------- tests */

TEST(worker_librivox_end_to_end)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    worker *w = start_worker(0, 0, 0);
    ASSERT_STR_EQ(worker_engine_name(w), "sphinx");
    char *base = base_of(w);
    char err[512] = "";
    json_t *h = NULL;
    ASSERT_EQ(worker_client_health(base, &h, err, sizeof err), 0);
    ASSERT_STR_EQ(jstr(h, "status"), "ok");
    ASSERT_STR_EQ(jstr(h, "engine"), "sphinx");
    ASSERT_STR_EQ(jstr(h, "version"), "test");
    ASSERT_TRUE(json_is_false(json_object_get(h, "gpu")));
    ASSERT_TRUE(json_is_false(json_object_get(h, "busy")));
    ASSERT_TRUE(json_is_string(json_object_get(h, "model")));
    ASSERT_TRUE(json_is_string(json_object_get(h, "gpu_name")));
    ASSERT_EQ(json_integer_value(json_object_get(h, "jobs_done")), 0);
    json_decref(h);

    size_t tot_edits = 0, tot_ref = 0;
    double audio = 0, t0 = now_mono();
    for (size_t i = 0; i < ARRAY_LEN(clip_ids); i++) {
        char *wav = xasprintf(LIBRIVOX "/sense_and_sensibility_01_austen_64kb-0%s.wav", clip_ids[i]);
        char *id = xasprintf("clip-%s", clip_ids[i]);
        struct prog_rec pr = {.last = 0, .monotone = 1};
        engine_opts o = {.language = "en", .word_timestamps = 1};
        transcript *t = worker_client_transcribe(base, id, wav, &o, rec_progress, &pr, err, sizeof err);
        if (!t) test_fail(__FILE__, __LINE__, "transcribe %s: %s", id, err);
        ASSERT_TRUE(pr.monotone);
        ASSERT_NEAR(pr.last, 1.0, 1e-9);
        ASSERT_STR_EQ(t->language, "en");
        ASSERT_TRUE(t->n_segments >= 1);
        ASSERT_TRUE(t->segments[0].n_words >= 1);
        audio += t->duration;
        char *hyp = transcript_text(t), *ref = reference(clip_ids[i]);
        size_t nr;
        tot_edits += edits(ref, hyp, &nr);
        tot_ref += nr;
        free(hyp);
        free(ref);
        transcript_free(t);
        /* the client deleted the job: the worker keeps no audio and no result */
        ASSERT_EQ(work_dir_files(), 0);
        long st;
        char *p = xasprintf("/jobs/%s/result", id);
        json_t *j = call(w, "GET", p, NULL, 0, &st);
        ASSERT_EQ(st, 404);
        json_decref(j);
        free(p);
        free(id);
        free(wav);
    }
    double wer = (double)tot_edits / (double)tot_ref;
    fprintf(stderr, "    worker librivox WER %.3f (%zu/%zu), %.1f s audio, RTF %.3f (incl. HTTP)\n",
            wer, tot_edits, tot_ref, audio, (now_mono() - t0) / audio);
    ASSERT_TRUE(wer < MAX_WER);
    ASSERT_EQ(worker_client_health(base, &h, err, sizeof err), 0);
    ASSERT_EQ(json_integer_value(json_object_get(h, "jobs_done")), 5);
    json_decref(h);
    free(base);
    worker_stop(w);
    curl_global_cleanup();
}

TEST(worker_idempotent_post)
{
    worker *w = start_worker(0, 0, 0);
    size_t len;
    char *wav = read_all(CLIP("880"), &len);
    long st;
    json_t *j = call(w, "POST", "/transcribe?job_id=same&language=en", wav, len, &st);
    ASSERT_EQ(st, 202);
    ASSERT_STR_EQ(jstr(j, "job_id"), "same");
    ASSERT_TRUE(!strcmp(jstr(j, "state"), "queued") || !strcmp(jstr(j, "state"), "running"));
    json_decref(j);
    /* again while it runs, and again once done: the existing job, never a second run */
    j = call(w, "POST", "/transcribe?job_id=same&language=en", wav, len, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(jstr(j, "job_id"), "same");
    json_decref(j);
    wait_state(w, "same", "done", 60);
    j = call(w, "POST", "/transcribe?job_id=same", wav, len, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(jstr(j, "state"), "done");
    ASSERT_NEAR(json_number_value(json_object_get(j, "progress")), 1.0, 1e-9);
    json_decref(j);
    usleep(300 * 1000);
    j = call(w, "GET", "/health", NULL, 0, &st);
    ASSERT_EQ(json_integer_value(json_object_get(j, "jobs_done")), 1);
    ASSERT_TRUE(json_is_false(json_object_get(j, "busy")));
    json_decref(j);
    /* the result is the lossless store form */
    j = call(w, "GET", "/jobs/same/result", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    char *s = json_dumps(j, 0);
    char perr[128];
    transcript *t = transcript_from_json_store(s, perr, sizeof perr);
    ASSERT_NOT_NULL(t);
    char *text = transcript_text(t);
    ASSERT_CONTAINS(text, "young man");
    free(text);
    transcript_free(t);
    free(s);
    json_decref(j);
    /* DELETE twice: idempotent; the record stays (a late POST does not run it again) */
    j = call(w, "DELETE", "/jobs/same", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    ASSERT_TRUE(json_is_true(json_object_get(j, "deleted")));
    json_decref(j);
    j = call(w, "DELETE", "/jobs/same", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=same", wav, len, &st);
    ASSERT_EQ(st, 200);
    ASSERT_TRUE(json_is_true(json_object_get(j, "deleted")));
    json_decref(j);
    ASSERT_EQ(work_dir_files(), 0);
    free(wav);
    worker_stop(w);
}

TEST(worker_cancel_running_and_queued)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *longwav = make_wav("long.wav", clip_ids, ARRAY_LEN(clip_ids), 3); /* ~100 s */
    worker *w = start_worker(0, 0, 0);
    char *base = base_of(w);
    char err[512] = "";
    /* the client cancels through its progress callback once the engine has made progress */
    struct prog_rec pr = {.monotone = 1, .cancel_at_calls = 1};
    double t0 = now_mono();
    transcript *t = worker_client_transcribe(base, "long-1", longwav, NULL, rec_progress, &pr,
                                             err, sizeof err);
    ASSERT_NULL(t);
    ASSERT_STR_EQ(err, "cancelled");
    long st;
    json_t *j = call(w, "GET", "/jobs/long-1", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(jstr(j, "state"), "cancelled");
    ASSERT_TRUE(json_is_true(json_object_get(j, "deleted")));
    ASSERT_TRUE(json_number_value(json_object_get(j, "progress")) < 1.0);
    json_decref(j);
    /* the engine stops at its next progress callback: the worker is free again (the bound
     * is generous: a loaded machine runs the sanitizer build slowly) */
    for (int i = 0; i < 1600; i++) {
        j = call(w, "GET", "/health", NULL, 0, &st);
        int busy = json_is_true(json_object_get(j, "busy"));
        json_decref(j);
        if (!busy) break;
        usleep(50 * 1000);
    }
    fprintf(stderr, "    cancel took effect after %.2f s\n", now_mono() - t0);
    j = call(w, "GET", "/health", NULL, 0, &st);
    ASSERT_TRUE(json_is_false(json_object_get(j, "busy")));
    ASSERT_EQ(json_integer_value(json_object_get(j, "jobs_done")), 0);
    json_decref(j);
    j = call(w, "GET", "/jobs/long-1/result", NULL, 0, &st);
    ASSERT_EQ(st, 404);
    json_decref(j);

    /* a queued job cancelled before it starts; the running one cancelled by DELETE */
    size_t len;
    char *wav = read_all(longwav, &len);
    j = call(w, "POST", "/transcribe?job_id=long-2", wav, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=long-3", wav, len, &st);
    ASSERT_EQ(st, 202);
    ASSERT_STR_EQ(jstr(j, "state"), "queued");
    json_decref(j);
    wait_state(w, "long-2", "running", 20);
    j = call(w, "GET", "/jobs/long-2/result", NULL, 0, &st);
    ASSERT_EQ(st, 409);
    ASSERT_CONTAINS(jstr(j, "error"), "running");
    json_decref(j);
    j = call(w, "DELETE", "/jobs/long-3", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(jstr(j, "state"), "cancelled");
    json_decref(j);
    j = call(w, "DELETE", "/jobs/long-2", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    ASSERT_STR_EQ(jstr(j, "state"), "cancelled");
    json_decref(j);
    for (int i = 0; i < 1600; i++) {
        j = call(w, "GET", "/health", NULL, 0, &st);
        int busy = json_is_true(json_object_get(j, "busy"));
        json_decref(j);
        if (!busy) break;
        usleep(50 * 1000);
    }
    usleep(100 * 1000);
    j = call(w, "GET", "/jobs/long-3", NULL, 0, &st);
    ASSERT_STR_EQ(jstr(j, "state"), "cancelled");
    json_decref(j);
    ASSERT_EQ(work_dir_files(), 0);
    free(wav);
    free(base);
    free(longwav);
    worker_stop(w);
    curl_global_cleanup();
}

TEST(worker_unknown_jobs_404)
{
    worker *w = start_worker(0, 0, 0);
    long st;
    json_t *j = call(w, "GET", "/jobs/nope", NULL, 0, &st);
    ASSERT_EQ(st, 404);
    ASSERT_CONTAINS(jstr(j, "error"), "unknown job");
    json_decref(j);
    j = call(w, "GET", "/jobs/nope/result", NULL, 0, &st);
    ASSERT_EQ(st, 404);
    json_decref(j);
    j = call(w, "DELETE", "/jobs/nope", NULL, 0, &st);
    ASSERT_EQ(st, 404);
    json_decref(j);
    j = call(w, "GET", "/nothing", NULL, 0, &st);
    ASSERT_EQ(st, 404);
    json_decref(j);
    j = call(w, "PUT", "/health", NULL, 0, &st);
    ASSERT_EQ(st, 405);
    json_decref(j);
    worker_stop(w);
}

/* A WAV header with the given format fields followed by n bytes of silence. */
static char *fake_wav(unsigned ch, unsigned rate, unsigned bits, size_t n, size_t *len)
{
    *len = 44 + n;
    unsigned char *d = xcalloc(1, *len);
    memcpy(d, "RIFF", 4);
    uint32_t v = (uint32_t)(36 + n);
    memcpy(d + 4, &v, 4);
    memcpy(d + 8, "WAVEfmt ", 8);
    v = 16;
    memcpy(d + 16, &v, 4);
    uint16_t s = 1;
    memcpy(d + 20, &s, 2);
    s = (uint16_t)ch;
    memcpy(d + 22, &s, 2);
    v = rate;
    memcpy(d + 24, &v, 4);
    v = rate * ch * bits / 8;
    memcpy(d + 28, &v, 4);
    s = (uint16_t)(ch * bits / 8);
    memcpy(d + 32, &s, 2);
    s = (uint16_t)bits;
    memcpy(d + 34, &s, 2);
    memcpy(d + 36, "data", 4);
    v = (uint32_t)n;
    memcpy(d + 40, &v, 4);
    return (char *)d;
}

TEST(worker_refuses_bad_bodies)
{
    worker *w = start_worker(100000, 0, 0);
    long st;
    json_t *j;
    const char *junk = "this is plainly not a wav file, it is text";
    j = call(w, "POST", "/transcribe?job_id=a1", junk, strlen(junk), &st);
    ASSERT_EQ(st, 415);
    ASSERT_CONTAINS(jstr(j, "error"), "not a WAV file");
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=a2", "RIFF", 4, &st);
    ASSERT_EQ(st, 415);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=a3", NULL, 0, &st);
    ASSERT_EQ(st, 400);
    ASSERT_CONTAINS(jstr(j, "error"), "empty body");
    json_decref(j);
    size_t len;
    char *wav = fake_wav(1, 16000, 16, 32000, &len);
    j = call(w, "POST", "/transcribe", wav, len, &st);
    ASSERT_EQ(st, 400);
    ASSERT_CONTAINS(jstr(j, "error"), "job_id");
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=..%2Fetc", wav, len, &st);
    ASSERT_EQ(st, 400);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=ok1&temperature=7", wav, len, &st);
    ASSERT_EQ(st, 400);
    ASSERT_CONTAINS(jstr(j, "error"), "temperature");
    json_decref(j);
    free(wav);
    wav = fake_wav(2, 44100, 16, 32000, &len);
    j = call(w, "POST", "/transcribe?job_id=a4", wav, len, &st);
    ASSERT_EQ(st, 415);
    ASSERT_CONTAINS(jstr(j, "error"), "16 kHz mono 16-bit");
    json_decref(j);
    free(wav);
    wav = fake_wav(1, 16000, 16, 0, &len);
    j = call(w, "POST", "/transcribe?job_id=a5", wav, len, &st);
    ASSERT_EQ(st, 415);
    ASSERT_CONTAINS(jstr(j, "error"), "no audio");
    json_decref(j);
    free(wav);
    wav = fake_wav(1, 16000, 16, 200000, &len); /* over max_body */
    j = call(w, "POST", "/transcribe?job_id=a6", wav, len, &st);
    ASSERT_EQ(st, 413);
    ASSERT_CONTAINS(jstr(j, "error"), "too large");
    json_decref(j);
    free(wav);
    /* nothing refused left a file behind */
    usleep(200 * 1000);
    worker_stop(w);
    ASSERT_EQ(work_dir_files(), 0);
}

TEST(worker_queue_full_503)
{
    char *longwav = make_wav("long.wav", clip_ids, 2, 2);
    worker *w = start_worker(0, 1, 0);
    size_t len;
    char *wav = read_all(longwav, &len);
    long st;
    json_t *j = call(w, "POST", "/transcribe?job_id=r0", wav, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    wait_state(w, "r0", "running", 10);
    j = call(w, "POST", "/transcribe?job_id=r1", wav, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=r2", wav, len, &st);
    ASSERT_EQ(st, 503);
    ASSERT_CONTAINS(jstr(j, "error"), "queue is full");
    json_decref(j);
    j = call(w, "GET", "/jobs/r2", NULL, 0, &st);
    ASSERT_EQ(st, 404);
    json_decref(j);
    j = call(w, "GET", "/health", NULL, 0, &st);
    ASSERT_TRUE(json_is_true(json_object_get(j, "busy")));
    ASSERT_EQ(json_integer_value(json_object_get(j, "queued")), 1);
    json_decref(j);
    free(wav);
    free(longwav);
    worker_stop(w); /* cancels the running job, deletes everything */
    ASSERT_EQ(work_dir_files(), 0);
}

TEST(worker_loopback_only)
{
    char err[512] = "";
    const char *hosts[] = {"0.0.0.0", "::", "192.0.2.1", "example.com"};
    for (size_t i = 0; i < ARRAY_LEN(hosts); i++) {
        worker_config c = {.host = hosts[i], .engine = "sphinx"};
        ASSERT_NULL(worker_start(&c, err, sizeof err));
        ASSERT_CONTAINS(err, "refusing to listen");
    }
    worker_config c = {.host = "127.0.0.1", .engine = "nosuch"};
    ASSERT_NULL(worker_start(&c, err, sizeof err));
    ASSERT_CONTAINS(err, "unknown engine");
}

TEST(worker_results_expire)
{
    worker *w = start_worker(0, 0, 0.3);
    size_t len;
    char *wav = fake_wav(1, 16000, 16, 16000, &len);
    long st;
    json_t *j = call(w, "POST", "/transcribe?job_id=ttl", wav, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    wait_state(w, "ttl", "done", 10);
    ASSERT_EQ(work_dir_files(), 1); /* the result */
    double t0 = now_mono();
    for (;;) {
        j = call(w, "GET", "/jobs/ttl", NULL, 0, &st);
        json_decref(j);
        if (st == 404) break;
        ASSERT_TRUE(now_mono() - t0 < 5);
        usleep(100 * 1000);
    }
    ASSERT_EQ(work_dir_files(), 0);
    free(wav);
    worker_stop(w);
}

TEST(worker_client_errors)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char err[512] = "";
    json_t *h = NULL;
    /* a port nothing listens on */
    ASSERT_EQ(worker_client_health("http://127.0.0.1:1", &h, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "cannot reach the worker");
    ASSERT_NULL(worker_client_transcribe("http://127.0.0.1:1", "x", CLIP("880"), NULL, NULL, NULL,
                                         err, sizeof err));
    ASSERT_CONTAINS(err, "cannot reach the worker");
    ASSERT_NULL(worker_client_transcribe("http://127.0.0.1:1", "bad/id", CLIP("880"), NULL, NULL,
                                         NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "invalid job id");
    ASSERT_NULL(worker_client_transcribe("http://127.0.0.1:1", "x", "/nonexistent.wav", NULL, NULL,
                                         NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "cannot open");
    /* the worker's refusal comes through with its status */
    worker *w = start_worker(0, 0, 0);
    char *base = base_of(w);
    char *txt = xasprintf("%s/notwav.wav", test_tmpdir());
    ASSERT_EQ(write_file_atomic(txt, "hello there, not audio", 22, 0600), 0);
    ASSERT_NULL(worker_client_transcribe(base, "nw", txt, NULL, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "worker refused the job (HTTP 415)");
    /* a language the CPU engine does not have: the job fails with the engine's message */
    engine_opts o = {.language = "de"};
    ASSERT_NULL(worker_client_transcribe(base, "de", CLIP("880"), &o, NULL, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "worker job failed: the CPU engine (pocketsphinx) only supports English");
    ASSERT_EQ(work_dir_files(), 0);
    free(txt);
    free(base);
    worker_stop(w);
    curl_global_cleanup();
}

/* WORKER_SLOTS: two jobs run at once on one loaded engine (both `running` together, /health
 * says so), both finish with the same words as alone; a model the worker lacks is refused
 * with the list of those it has; beam_size past whisper's 8 decoders is refused. */
TEST(worker_slots_and_models)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *longwav = make_wav("long2.wav", clip_ids, ARRAY_LEN(clip_ids), 1); /* ~35 s */
    char *mdir = xasprintf("%s/models", test_tmpdir());
    mkdir(mdir, 0700);
    char *fake = xasprintf("%s/ggml-tiny-fake.bin", mdir);
    ASSERT_EQ(write_file_atomic(fake, "x", 1, 0600), 0);
    setenv("GS_MODELS_DIR", mdir, 1);
    char err[512] = "";
    char *dir = xasprintf("%s/work", test_tmpdir());
    worker_config c = {.host = "127.0.0.1", .engine = "sphinx", .work_dir = dir, .slots = 2,
                       .version = "test"};
    worker *w = worker_start(&c, err, sizeof err);
    free(dir);
    if (!w) test_fail(__FILE__, __LINE__, "worker_start: %s", err);
    long st;
    json_t *h = call(w, "GET", "/health", NULL, 0, &st);
    ASSERT_EQ(json_integer_value(json_object_get(h, "slots")), 2);
    ASSERT_STR_EQ(jstr(h, "default_model"), "sphinx");
    json_t *models = json_object_get(h, "models");
    ASSERT_STR_EQ(json_string_value(json_array_get(models, 0)), "sphinx");
    json_decref(h);

    size_t len;
    char *wav = read_all(longwav, &len);
    json_t *j = call(w, "POST", "/transcribe?job_id=s-1", wav, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=s-2", wav, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    /* both running at the same time */
    int both = 0;
    for (int i = 0; i < 400 && !both; i++) {
        json_t *a = call(w, "GET", "/jobs/s-1", NULL, 0, &st), *b = call(w, "GET", "/jobs/s-2", NULL, 0, &st);
        both = !strcmp(jstr(a, "state"), "running") && !strcmp(jstr(b, "state"), "running");
        json_decref(a);
        json_decref(b);
        if (both) {
            h = call(w, "GET", "/health", NULL, 0, &st);
            ASSERT_EQ(json_integer_value(json_object_get(h, "running")), 2);
            json_decref(h);
        } else {
            usleep(25 * 1000);
        }
    }
    ASSERT_TRUE(both);
    wait_state(w, "s-1", "done", 120);
    wait_state(w, "s-2", "done", 120);
    json_t *r1 = call(w, "GET", "/jobs/s-1/result", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    json_t *r2 = call(w, "GET", "/jobs/s-2/result", NULL, 0, &st);
    ASSERT_EQ(st, 200);
    /* the same words and times as each other: the two slots do not disturb each other */
    ASSERT_TRUE(json_array_size(json_object_get(r1, "segments")) >= 3);
    char *t1 = json_dumps(json_object_get(r1, "segments"), JSON_COMPACT);
    char *t2 = json_dumps(json_object_get(r2, "segments"), JSON_COMPACT);
    ASSERT_STR_EQ(t1, t2);
    free(t1);
    free(t2);
    json_decref(r1);
    json_decref(r2);

    /* models: one the worker lacks is refused, naming what it has */
    j = call(w, "POST", "/transcribe?job_id=m-1&model=large-v3", wav, len, &st);
    ASSERT_EQ(st, 400);
    ASSERT_CONTAINS(jstr(j, "error"), "model 'large-v3' is not on this worker");
    ASSERT_CONTAINS(jstr(j, "error"), "sphinx");
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=m-2&model=sphinx", wav, len, &st);
    ASSERT_EQ(st, 202); /* the default, by name */
    json_decref(j);
    j = call(w, "DELETE", "/jobs/m-2", NULL, 0, &st);
    json_decref(j);
    j = call(w, "POST", "/transcribe?job_id=b-1&beam_size=9", wav, len, &st);
    ASSERT_EQ(st, 400);
    ASSERT_CONTAINS(jstr(j, "error"), "beam_size must be an integer from 1 to 8");
    json_decref(j);
    free(wav);
    free(longwav);
    free(fake);
    free(mdir);
    worker_stop(w);
    unsetenv("GS_MODELS_DIR");
    curl_global_cleanup();
}

/* ---------------------------------------------------------------- Ogg Opus bodies */

static const char *const opus_sent[] = {
    "the quick brown fox jumps over the lazy dog",
    "please send the report before friday",
    "we will meet at the station at noon",
};

/* espeak-ng speech of opus_sent as a canonical 16 kHz WAV, and a JSGF grammar of the
 * sentences in GS_SPHINX_JSGF (exact words, so PCM and Opus must agree word for word) */
static size_t espeak_wav(const char *wav)
{
    if (system("command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1") != 0)
        SKIP("espeak-ng or sox not installed (apt-get install espeak-ng sox)");
    FILE *f = fopen("ref.txt", "w");
    ASSERT_NOT_NULL(f);
    for (size_t i = 0; i < ARRAY_LEN(opus_sent); i++) fprintf(f, "%s.\n", opus_sent[i]);
    fclose(f);
    f = fopen("ref.gram", "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "#JSGF V1.0;\ngrammar ref;\npublic <utt> = <sent>+;\n<sent> = %s | %s | %s;\n",
            opus_sent[0], opus_sent[1], opus_sent[2]);
    fclose(f);
    ASSERT_EQ(system("espeak-ng -v en-us -s 150 -f ref.txt -w e.wav >/dev/null 2>&1 && "
                     "sox -D e.wav -r 16000 -c 1 -b 16 t.wav"), 0);
    char *gram = xasprintf("%s/ref.gram", test_tmpdir());
    setenv("GS_SPHINX_JSGF", gram, 1);
    free(gram);
    char err[256];
    audio_pcm p;
    if (audio_decode_file("t.wav", 0, &p, err, sizeof err) != 0) test_fail(__FILE__, __LINE__, "%s", err);
    ASSERT_EQ(audio_write_wav(wav, &p), 0);
    size_t n = p.nsamples;
    audio_pcm_release(&p);
    return n;
}

TEST(worker_opus_body_same_transcript)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    size_t n = espeak_wav("speech.wav");
    char err[512] = "";
    ASSERT_EQ(audio_opus_encode_wav_range("speech.wav", 0, n, "speech.opus", AUDIO_OPUS_BITRATE,
                                          NULL, err, sizeof err), 0);
    worker *w = start_worker(0, 0, 0);
    char *base = base_of(w);
    json_t *h = NULL;
    ASSERT_EQ(worker_client_health(base, &h, err, sizeof err), 0);
    json_t *fmts = json_object_get(h, "audio_formats");
    ASSERT_EQ(json_array_size(fmts), 2);
    ASSERT_STR_EQ(json_string_value(json_array_get(fmts, 0)), "wav");
    ASSERT_STR_EQ(json_string_value(json_array_get(fmts, 1)), "opus");
    ASSERT_TRUE(worker_client_accepts_opus(h));
    json_decref(h);
    h = json_pack("{s:s,s:[s]}", "status", "ok", "audio_formats", "wav");
    ASSERT_FALSE(worker_client_accepts_opus(h)); /* a worker that takes only WAV */
    json_decref(h);
    h = json_pack("{s:s}", "status", "ok");
    ASSERT_FALSE(worker_client_accepts_opus(h)); /* an older worker */
    json_decref(h);
    ASSERT_FALSE(worker_client_accepts_opus(NULL));

    const char *want = "the quick brown fox jumps over the lazy dog please send the report "
                       "before friday we will meet at the station at noon";
    engine_opts o = {.language = "en"};
    transcript *tw = worker_client_transcribe(base, "pcm-1", "speech.wav", &o, NULL, NULL, err, sizeof err);
    if (!tw) test_fail(__FILE__, __LINE__, "wav: %s", err);
    transcript *to = worker_client_transcribe(base, "opus-1", "speech.opus", &o, NULL, NULL, err, sizeof err);
    if (!to) test_fail(__FILE__, __LINE__, "opus: %s", err);
    char *a = transcript_text(tw), *b = transcript_text(to);
    ASSERT_STR_EQ(a, want);
    ASSERT_STR_EQ(b, a);
    ASSERT_NEAR(to->duration, tw->duration, 0.02);
    ASSERT_NEAR(to->duration, (double)n / 16000, 0.02);
    free(a);
    free(b);
    transcript_free(tw);
    transcript_free(to);
    ASSERT_EQ(work_dir_files(), 0); /* neither the .opus nor its decoded .wav is left */

    /* a raw POST: 202 while the Opus is not decoded yet; the job then runs and knows its length */
    size_t len;
    char *ob = read_all("speech.opus", &len);
    long st;
    json_t *j = call(w, "POST", "/transcribe?job_id=opus-2", ob, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    wait_state(w, "opus-2", "done", 30);
    j = call(w, "GET", "/jobs/opus-2", NULL, 0, &st);
    ASSERT_NEAR(json_number_value(json_object_get(j, "audio_seconds")), (double)n / 16000, 0.02);
    json_decref(j);
    j = call(w, "DELETE", "/jobs/opus-2", NULL, 0, &st);
    json_decref(j);

    /* Opus magic, then damaged data: accepted (the magic is right), the job fails */
    char *bad = xmalloc(len);
    memcpy(bad, ob, len);
    for (size_t i = len / 3; i < len; i++) bad[i] = (char)(i * 13);
    j = call(w, "POST", "/transcribe?job_id=opus-bad", bad, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    wait_state(w, "opus-bad", "failed", 30);
    j = call(w, "GET", "/jobs/opus-bad", NULL, 0, &st);
    ASSERT_CONTAINS(jstr(j, "error"), "corrupt Opus data");
    json_decref(j);
    ASSERT_EQ(work_dir_files(), 0); /* the failed job's files are gone too */
    /* Ogg, but not Opus: refused at POST */
    memcpy(bad + 28, "\x01vorbis\0", 8);
    j = call(w, "POST", "/transcribe?job_id=ogg-vorbis", bad, len, &st);
    ASSERT_EQ(st, 415);
    ASSERT_CONTAINS(jstr(j, "error"), "not a WAV file or an Ogg Opus stream");
    json_decref(j);
    free(base);
    worker_stop(w);

    /* an Opus body that decodes to more than a max_body WAV: the job fails, saying so */
    w = start_worker(len + 1000, 0, 0);
    j = call(w, "POST", "/transcribe?job_id=opus-big", ob, len, &st);
    ASSERT_EQ(st, 202);
    json_decref(j);
    wait_state(w, "opus-big", "failed", 30);
    j = call(w, "GET", "/jobs/opus-big", NULL, 0, &st);
    ASSERT_CONTAINS(jstr(j, "error"), "exceeds the limit of");
    json_decref(j);
    worker_stop(w);
    ASSERT_EQ(work_dir_files(), 0);
    free(bad);
    free(ob);
    unsetenv("GS_SPHINX_JSGF");
    curl_global_cleanup();
}
