/* worker: see worker.h. Job files in the work dir: upload-N.part while a body arrives,
 * job-ID.wav once accepted (deleted when the job ends), job-ID.json for the result. An Ogg
 * Opus body becomes job-ID.opus, decoded to job-ID.wav on the job thread (then deleted). */
#define _GNU_SOURCE
#include "worker/worker.h"

#include "core/config.h"
#include "core/gpu.h"
#include "core/log.h"
#include "core/util.h"
#include "audio/audio.h"
#include "audio/opus.h"
#include "engine/engine.h"
#include "http/http.h"
#include "transcript/transcript.h"
#include "vast/vast.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY ((size_t)2 << 30)
#define DEFAULT_MAX_QUEUE 16
#define DEFAULT_TTL_S (30.0 * 60.0)
#define WAV_HEADER_SCAN (1u << 20) /* chunks before "data" must fit in this */

enum wstate { WS_QUEUED, WS_RUNNING, WS_DONE, WS_FAILED, WS_CANCELLED };

static const char *state_name(enum wstate s)
{
    switch (s) {
    case WS_QUEUED: return "queued";
    case WS_RUNNING: return "running";
    case WS_DONE: return "done";
    case WS_FAILED: return "failed";
    case WS_CANCELLED: return "cancelled";
    }
    return "unknown";
}

typedef struct wjob {
    char id[65];
    enum wstate state;
    double progress;
    char *error;
    char *wav_path, *result_path;
    char *opus_path;           /* an Ogg Opus upload, until the job thread decodes it */
    size_t data_off, nsamples; /* PCM data chunk in the WAV (0 samples until decoded) */
    char *language, *prompt;
    char *model;               /* the job's own model (a name), NULL: the worker's default */
    engine_opts opts;          /* language/prompt point at the fields above, cancel at cancel */
    atomic_int cancel;         /* set by DELETE and worker_stop; the engine polls it */
    int active;                /* a job thread is running it (never freed meanwhile) */
    int deleted;               /* files deleted by DELETE or expiry */
    double started, finished;  /* monotonic; 0 = not yet */
    struct wjob *next;
} wjob;

struct worker {
    char *host;
    char *work_dir;
    int own_work_dir;
    size_t max_body;
    int max_queue;
    double ttl_s;
    char *version;
    engine *eng;         /* the default engine and model, opened at start */
    char *default_model; /* its model's name ("large-v3"; "sphinx" for pocketsphinx) */
    char *models_dir;    /* where ggml-NAME.bin models are ($GS_MODELS_DIR, /workspace/models) */
    int slots;           /* jobs run at once (one job thread each) */
    pthread_mutex_t models_mu;   /* guards models; held while one is opened */
    struct wmodel { char *name; engine *eng; struct wmodel *next; } *models;
    gpu_info gpu;
    http_server *http;
    pthread_t thr[ENGINE_MAX_SLOTS];
    int nthr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wjob *jobs, *tail;   /* every known job, oldest first (FIFO for the queue) */
    int nrunning;
    int deadman_busy;    /* one job thread is calling Vast for the dead-man switch */
    int nqueued;
    int stopping;
    unsigned long jobs_done;
    unsigned long seq;
    /* dead-man switch */
    double deadman_s;
    char *vast_url, *instance_id, *instance_key;
    double last_contact;     /* monotonic: the last request */
    double deadman_next;     /* monotonic: next destroy attempt after one failed */
    int deadman_done;
};

int worker_job_id_ok(const char *id)
{
    if (!id || !*id || id[0] == '.' || strlen(id) > 64) return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* ---- WAV header ---------------------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static unsigned le16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

/* Find the PCM data of a 16 kHz mono s16 WAV file. 0 on success; -1 with err. */
static int wav_locate(int fd, size_t *data_off, size_t *nsamples, char *err, size_t errlen)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "cannot read the upload: %s", strerror(errno));
        return -1;
    }
    size_t fsize = (size_t)sb.st_size;
    size_t want = fsize < WAV_HEADER_SCAN ? fsize : WAV_HEADER_SCAN;
    unsigned char *h = xmalloc(want + 1);
    ssize_t got = pread(fd, h, want, 0);
    int rc = -1;
    if (got < 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0) {
        snprintf(err, errlen, "body is not a WAV file (expected RIFF/WAVE, 16 kHz mono 16-bit PCM)");
        goto out;
    }
    size_t len = (size_t)got, off = 12;
    int fmt_ok = 0;
    while (off + 8 <= len) {
        uint32_t sz = le32(h + off + 4);
        const unsigned char *body = h + off + 8;
        if (memcmp(h + off, "fmt ", 4) == 0) {
            if (sz < 16 || off + 8 + 16 > len) break;
            unsigned fmt = le16(body), ch = le16(body + 2), bits = le16(body + 14);
            uint32_t rate = le32(body + 4);
            if (fmt == 0xFFFE && sz >= 40 && off + 8 + 26 <= len) fmt = le16(body + 24);
            if (fmt != 1 || ch != 1 || rate != ENGINE_SAMPLE_RATE || bits != 16) {
                snprintf(err, errlen, "unsupported WAV format (format %u, %u channels, %u Hz, "
                         "%u bits): the worker takes 16 kHz mono 16-bit PCM", fmt, ch,
                         (unsigned)rate, bits);
                goto out;
            }
            fmt_ok = 1;
        } else if (memcmp(h + off, "data", 4) == 0) {
            if (!fmt_ok) break;
            size_t avail = fsize - (off + 8);
            /* streamed writers leave 0 or 0xFFFFFFFF: take the rest of the file */
            size_t n = (sz == 0 || sz == 0xFFFFFFFFu || sz > avail) ? avail : sz;
            *data_off = off + 8;
            *nsamples = n / 2;
            if (*nsamples == 0) {
                snprintf(err, errlen, "the WAV file holds no audio samples");
                goto out;
            }
            rc = 0;
            goto out;
        }
        off += 8 + (size_t)sz + (sz & 1);
    }
    snprintf(err, errlen, fmt_ok ? "WAV file has no data chunk" : "WAV file has no usable fmt chunk");
out:
    free(h);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static wjob *find_job(worker *w, const char *id)
{
    for (wjob *j = w->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0) return j;
    return NULL;
}

static void job_delete_files(wjob *j)
{
    if (j->wav_path) unlink(j->wav_path);
    if (j->opus_path) unlink(j->opus_path);
    if (j->result_path) unlink(j->result_path);
    j->deleted = 1;
}

static void job_free(wjob *j)
{
    free(j->error);
    free(j->wav_path);
    free(j->opus_path);
    free(j->result_path);
    free(j->language);
    free(j->prompt);
    free(j->model);
    free(j);
}

static json_t *job_json(const wjob *j)
{
    double elapsed = j->started ? (j->finished ? j->finished : now_mono()) - j->started : 0;
    return json_pack("{s:s,s:s,s:f,s:s?,s:f,s:f,s:b}", "job_id", j->id, "state",
                     state_name(j->state), "progress", j->progress, "error", j->error,
                     "audio_seconds", (double)j->nsamples / ENGINE_SAMPLE_RATE, "elapsed_seconds",
                     elapsed, "deleted", j->deleted);
}

/* Forget finished jobs older than the TTL. Caller holds the lock. */
static void purge_expired(worker *w)
{
    double now = now_mono();
    wjob **pp = &w->jobs, *prev = NULL;
    while (*pp) {
        wjob *j = *pp;
        int terminal = j->state == WS_DONE || j->state == WS_FAILED || j->state == WS_CANCELLED;
        if (terminal && !j->active && j->finished && now - j->finished >= w->ttl_s) {
            if (!j->deleted) LOG_I("worker", "job %s: result expired unfetched, deleted", j->id);
            job_delete_files(j);
            *pp = j->next;
            if (w->tail == j) w->tail = prev;
            job_free(j);
            continue;
        }
        prev = j;
        pp = &j->next;
    }
}

struct prog { worker *w; wjob *j; };

static int on_progress(void *ud, double f)
{
    struct prog *p = ud;
    pthread_mutex_lock(&p->w->mu);
    if (f > p->j->progress) p->j->progress = f > 1 ? 1 : f;
    int stop = atomic_load(&p->j->cancel) || p->w->stopping;
    pthread_mutex_unlock(&p->w->mu);
    return stop;
}

static int16_t *read_pcm(const wjob *j, char *err, size_t errlen)
{
    int fd = open(j->wav_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the job's audio: %s", strerror(errno));
        return NULL;
    }
    size_t bytes = j->nsamples * 2;
    int16_t *pcm = xmalloc(bytes ? bytes : 2);
    size_t done = 0;
    while (done < bytes) {
        ssize_t n = pread(fd, (char *)pcm + done, bytes - done, (off_t)(j->data_off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot read the job's audio: %s", n < 0 ? strerror(errno) : "short file");
            close(fd);
            free(pcm);
            return NULL;
        }
        done += (size_t)n;
    }
    close(fd);
    /* WAV is little-endian, as are the hosts we build for */
    return pcm;
}

/* ---- models ----------------------------------------------------------------------------------- */

/* "ggml-large-v3.bin" -> "large-v3" (heap), NULL when the file is not a speech model */
static char *model_name_of_file(const char *file)
{
    size_t n = strlen(file);
    if (strncmp(file, "ggml-", 5) != 0 || n <= 9 || strcmp(file + n - 4, ".bin") != 0) return NULL;
    if (strstr(file, "silero")) return NULL; /* the VAD model */
    return xstrndup(file + 5, n - 9);
}

/* The models this worker can run: its default and every ggml-*.bin in models_dir. */
static json_t *models_json(const worker *w)
{
    json_t *a = json_array();
    json_array_append_new(a, json_string(w->default_model));
    DIR *d = opendir(w->models_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *name = model_name_of_file(de->d_name);
        if (name && strcmp(name, w->default_model) != 0 &&
            (engine_whisper_built_in() || !strncmp(name, "parakeet", 8)))
            json_array_append_new(a, json_string(name));
        free(name);
    }
    if (d) closedir(d);
    return a;
}

static int model_available(const worker *w, const char *name)
{
    json_t *a = models_json(w);
    size_t i;
    json_t *v;
    int ok = 0;
    json_array_foreach(a, i, v) ok |= !strcmp(json_string_value(v), name);
    json_decref(a);
    return ok;
}

/* The engine for a job's model: the default, or one opened on first use (on a job thread,
 * never a request thread) and kept for later jobs. NULL with err when it cannot be opened. */
static engine *engine_for(worker *w, const char *model, char *err, size_t errlen)
{
    if (!model) return w->eng;
    pthread_mutex_lock(&w->models_mu);
    struct wmodel *m = w->models;
    while (m && strcmp(m->name, model) != 0) m = m->next;
    if (!m) {
        const char *ename = !strncmp(model, "parakeet", 8) ? "parakeet" : "whisper";
        double t0 = now_mono();
        engine *e = engine_open_slots(ename, model, w->slots, err, errlen);
        if (e) {
            m = xcalloc(1, sizeof *m);
            m->name = xstrdup(model);
            m->eng = e;
            m->next = w->models;
            w->models = m;
            LOG_I("worker", "model %s loaded for a job (%s, %.1f s)", model, ename, now_mono() - t0);
        }
    }
    pthread_mutex_unlock(&w->models_mu);
    return m ? m->eng : NULL;
}

/* An Ogg Opus upload to the job's WAV (on the job thread: decoding an hour takes seconds).
 * The decoded WAV is held to the size of the largest WAV the worker accepts. */
static int decode_opus(worker *w, wjob *j, char *err, size_t errlen)
{
    double limit = (double)(w->max_body > 44 ? w->max_body - 44 : 0) / (2.0 * ENGINE_SAMPLE_RATE);
    if (limit > AUDIO_HARD_LIMIT_S) limit = AUDIO_HARD_LIMIT_S;
    size_t n = 0;
    double t0 = now_mono();
    if (audio_opus_decode_to_wav_cancel(j->opus_path, j->wav_path, limit > 0 ? limit : 1,
                                        &j->cancel, &n, err, errlen) != 0)
        return -1;
    unlink(j->opus_path);
    LOG_I("worker", "job %s: Opus decoded, %.1f s of audio in %.2f s", j->id,
          (double)n / ENGINE_SAMPLE_RATE, now_mono() - t0);
    pthread_mutex_lock(&w->mu);
    j->data_off = 44; /* audio_opus_decode_to_wav writes the canonical header */
    j->nsamples = n;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static void run_job(worker *w, wjob *j)
{
    char err[512] = "";
    double t0 = now_mono();
    transcript *t = NULL;
    char *tmp = NULL;
    int ok = !j->opus_path || decode_opus(w, j, err, sizeof err) == 0;
    engine *e = ok ? engine_for(w, j->model, err, sizeof err) : NULL;
    int16_t *pcm = e ? read_pcm(j, err, sizeof err) : NULL;
    if (pcm) {
        struct prog p = {w, j};
        t = engine_transcribe(e, pcm, j->nsamples, &j->opts, on_progress, &p, err, sizeof err);
        free(pcm);
    }
    if (t) {
        char *json = transcript_to_json_store(t);
        tmp = xasprintf("%s.part", j->result_path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        size_t len = strlen(json), off = 0;
        while (fd >= 0 && off < len) {
            ssize_t n = write(fd, json + off, len - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            off += (size_t)n;
        }
        if (fd < 0 || off < len || close(fd) != 0) {
            snprintf(err, sizeof err, "cannot store the result: %s", strerror(errno ? errno : EIO));
            unlink(tmp);
            SAFE_FREE(tmp);
        }
        free(json);
    }
    double secs = now_mono() - t0;
    pthread_mutex_lock(&w->mu);
    if (atomic_load(&j->cancel) || w->stopping) {
        if (tmp) unlink(tmp);
        j->state = WS_CANCELLED;
        free(j->error);
        j->error = xstrdup("cancelled");
    } else if (t && tmp && rename(tmp, j->result_path) == 0) {
        j->state = WS_DONE;
        j->progress = 1;
        w->jobs_done++;
    } else {
        if (tmp) {
            snprintf(err, sizeof err, "cannot store the result: %s", strerror(errno));
            unlink(tmp);
        }
        j->state = WS_FAILED;
        free(j->error);
        j->error = xstrdup(err[0] ? err : "transcription failed");
    }
    unlink(j->wav_path); /* the audio is not needed any more */
    if (j->opus_path) unlink(j->opus_path);
    j->finished = now_mono();
    double audio = (double)j->nsamples / ENGINE_SAMPLE_RATE;
    LOG_I("worker", "job %s %s: %.1f s of audio in %.2f s (RTF %.3f)%s%s", j->id,
          state_name(j->state), audio, secs, audio > 0 ? secs / audio : 0,
          j->error ? ": " : "", j->error ? j->error : "");
    pthread_mutex_unlock(&w->mu);
    free(tmp);
    transcript_free(t);
}

/* Any request counts as contact from the controller. */
static void touch(worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->last_contact = now_mono();
    pthread_mutex_unlock(&w->mu);
}

/* Caller holds the lock; it is released while Vast is called. */
static void deadman_check(worker *w)
{
    if (w->deadman_s <= 0 || w->deadman_done || w->deadman_busy || w->nrunning || w->nqueued > 0)
        return;
    double now = now_mono(), silent = now - w->last_contact;
    if (silent < w->deadman_s || now < w->deadman_next) return;
    w->deadman_next = now + 30;
    w->deadman_busy = 1;
    pthread_mutex_unlock(&w->mu);
    LOG_W("worker", "dead-man switch: no word from the controller for %.0f s (DEADMAN_MINUTES="
          "%g) and no job: destroying instance %s so that it stops costing money", silent,
          w->deadman_s / 60, w->instance_id);
    vast_client *c = vast_client_new(w->vast_url, w->instance_key);
    int ok = 0;
    if (!c) {
        LOG_E("worker", "dead-man switch: VAST_URL '%s' is not a valid URL", w->vast_url);
    } else {
        vast_client_set_timeouts(c, 5000, 20000);
        vast_client_set_retry(c, 3, 500, 4000);
        vast_error e;
        if (vast_destroy_instance(c, strtoll(w->instance_id, NULL, 10), &e) == 0 ||
            e.kind == VAST_ERR_NOT_FOUND) {
            ok = 1;
            LOG_W("worker", "dead-man switch: instance %s destroyed", w->instance_id);
        } else {
            LOG_E("worker", "dead-man switch: destroying instance %s failed: %s; retrying in 30 s",
                  w->instance_id, e.message);
        }
        vast_client_free(c);
    }
    pthread_mutex_lock(&w->mu);
    w->deadman_busy = 0;
    if (ok) w->deadman_done = 1;
}

static void *job_thread(void *arg)
{
    worker *w = arg;
    double tick = w->deadman_s > 0 && w->deadman_s / 20 < 1 ? w->deadman_s / 20 : 1;
    if (tick < 0.1) tick = 0.1;
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        purge_expired(w);
        wjob *j = NULL;
        for (wjob *x = w->jobs; x; x = x->next)
            if (x->state == WS_QUEUED) { j = x; break; }
        if (!j) {
            deadman_check(w);
            if (w->stopping) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)tick;
            ts.tv_nsec += (long)((tick - (double)(time_t)tick) * 1e9);
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            continue;
        }
        j->state = WS_RUNNING;
        j->started = now_mono();
        j->active = 1;
        w->nqueued--;
        w->nrunning++;
        pthread_mutex_unlock(&w->mu);
        run_job(w, j);
        pthread_mutex_lock(&w->mu);
        j->active = 0;
        w->nrunning--;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- HTTP handlers --------------------------------------------------------------------------- */

static void h_health(http_req *r, void *app)
{
    worker *w = app;
    touch(w);
    json_t *models = models_json(w);
    pthread_mutex_lock(&w->mu);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:b,s:s,s:b,s:s,s:I,s:i,s:i,s:f,s:i,s:i,s:o,s:[s,s]}",
                          "status",
                          "ok", "engine", engine_name(w->eng), "model", engine_model(w->eng),
                          "default_model", w->default_model, "gpu", engine_uses_gpu(w->eng),
                          "gpu_name", w->gpu.name, "busy", w->nrunning > 0, "version", w->version,
                          "jobs_done", (json_int_t)w->jobs_done, "queued", w->nqueued,
                          "max_queue", w->max_queue, "deadman_s", w->deadman_s, "slots",
                          w->slots, "running", w->nrunning, "models", models, "audio_formats",
                          "wav", "opus");
    pthread_mutex_unlock(&w->mu);
    http_reply_json(r, 200, j);
}

#define NOT_AUDIO "body is not a WAV file or an Ogg Opus stream (expected RIFF/WAVE, 16 kHz " \
                  "mono 16-bit PCM, or Ogg Opus)"

struct upload {
    worker *w;
    int fd;
    char *tmp;        /* unlinked at request end unless claimed */
    size_t n;
    unsigned char head[64];   /* the body's first bytes: WAV or Ogg Opus magic */
    int dup;          /* the job is known already: discard the body */
};

static void upload_free(void *p)
{
    struct upload *u = p;
    if (u->fd >= 0) close(u->fd);
    if (u->tmp) {
        unlink(u->tmp);
        free(u->tmp);
    }
    free(u);
}

static int body_chunk(http_req *r, const char *data, size_t n, void *app)
{
    worker *w = app;
    touch(w);
    struct upload *u = http_ctx(r);
    if (!u) {
        const char *id = http_query(r, "job_id");
        if (!worker_job_id_ok(id)) {
            http_reply_error(r, 400, "missing or invalid job_id (1-64 of A-Z a-z 0-9 . _ -)");
            return -1;
        }
        const char *cl = http_header(r, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > w->max_body) {
            http_reply_error(r, 413, "audio too large (limit %zu bytes)", w->max_body);
            return -1;
        }
        u = xcalloc(1, sizeof *u);
        u->w = w;
        u->fd = -1;
        http_set_ctx(r, u, upload_free);
        pthread_mutex_lock(&w->mu);
        int known = find_job(w, id) != NULL, full = w->nqueued >= w->max_queue;
        unsigned long seq = ++w->seq;
        pthread_mutex_unlock(&w->mu);
        if (known) {
            u->dup = 1;
        } else if (full) {
            http_reply_error(r, 503, "worker queue is full (%d jobs waiting); retry later",
                             w->max_queue);
            return -1;
        } else {
            u->tmp = xasprintf("%s/upload-%lu.part", w->work_dir, seq);
            u->fd = open(u->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (u->fd < 0) {
                http_reply_error(r, 500, "cannot store the upload: %s", strerror(errno));
                return -1;
            }
        }
    }
    if (u->dup) return 0;
    if (n > w->max_body - u->n) {
        http_reply_error(r, 413, "audio too large (limit %zu bytes)", w->max_body);
        return -1;
    }
    if (u->n < sizeof u->head) {
        size_t k = sizeof u->head - u->n < n ? sizeof u->head - u->n : n;
        memcpy(u->head + u->n, data, k);
        /* refuse early what is neither (the whole check runs when the body is in) */
        if (u->n < 12 && u->n + k >= 12 && memcmp(u->head, "OggS", 4) != 0 &&
            (memcmp(u->head, "RIFF", 4) != 0 || memcmp(u->head + 8, "WAVE", 4) != 0)) {
            http_reply_error(r, 415, "%s", NOT_AUDIO);
            return -1;
        }
    }
    size_t off = 0;
    while (off < n) {
        ssize_t k = write(u->fd, data + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            http_reply_error(r, 500, "cannot store the upload: %s", strerror(errno ? errno : EIO));
            return -1;
        }
        off += (size_t)k;
    }
    u->n += n;
    return 0;
}

static int query_bool(const char *v, int *out)
{
    if (!v) return 0;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !*v) *out = 0;
    else return -1;
    return 0;
}

static void h_transcribe(http_req *r, void *app)
{
    worker *w = app;
    touch(w);
    struct upload *u = http_ctx(r);
    const char *id = http_query(r, "job_id");
    if (!worker_job_id_ok(id)) {
        http_reply_error(r, 400, "missing or invalid job_id (1-64 of A-Z a-z 0-9 . _ -)");
        return;
    }
    pthread_mutex_lock(&w->mu);
    wjob *known = find_job(w, id);
    if (known) {
        json_t *j = job_json(known);
        pthread_mutex_unlock(&w->mu);
        http_reply_json(r, 200, j);
        return;
    }
    pthread_mutex_unlock(&w->mu);

    engine_opts o = {0};
    const char *lang = http_query(r, "language"), *prompt = http_query(r, "prompt");
    const char *temp = http_query(r, "temperature"), *beam = http_query(r, "beam_size");
    if (lang && (strlen(lang) > 16 || strspn(lang, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != strlen(lang))) {
        http_reply_error(r, 400, "invalid language");
        return;
    }
    if (prompt && strlen(prompt) > 4096) {
        http_reply_error(r, 400, "prompt too long (limit 4096 bytes)");
        return;
    }
    if (temp && *temp && (parse_double(temp, &o.temperature) != 0 || !(o.temperature >= 0) ||
                          o.temperature > 1)) {
        http_reply_error(r, 400, "temperature must be a number from 0 to 1");
        return;
    }
    long bs = 0;
    if (beam && *beam && (parse_long(beam, &bs) != 0 || bs < 0 || bs > ENGINE_MAX_BEAM)) {
        http_reply_error(r, 400, "beam_size must be an integer from 1 to %d (0: the default)",
                         ENGINE_MAX_BEAM);
        return;
    }
    const char *model = http_query(r, "model");
    if (model && (!*model || !strcmp(model, w->default_model))) model = NULL;
    if (model && !model_available(w, model)) {
        json_t *have = models_json(w);
        char *list = json_dumps(have, JSON_COMPACT);
        json_decref(have);
        http_reply_error(r, 400, "model '%.64s' is not on this worker (it has %s)", model, list);
        free(list);
        return;
    }
    o.beam_size = (int)bs;
    if (query_bool(http_query(r, "word_timestamps"), &o.word_timestamps) != 0 ||
        query_bool(http_query(r, "translate"), &o.translate) != 0) {
        http_reply_error(r, 400, "word_timestamps and translate take 0 or 1");
        return;
    }
    if (!u || u->n == 0) {
        http_reply_error(r, 400, "empty body: send the audio as a 16 kHz mono 16-bit PCM WAV "
                                 "or as Ogg Opus");
        return;
    }
    /* the content decides, not the Content-Type (decoded on the job thread) */
    int opus = audio_is_ogg_opus(u->head, u->n < sizeof u->head ? u->n : sizeof u->head);
    if (!opus && (u->n < 12 || memcmp(u->head, "RIFF", 4) != 0)) {
        http_reply_error(r, 415, "%s", NOT_AUDIO);
        return;
    }
    char err[256];
    size_t data_off = 0, nsamples = 0;
    if (!opus && wav_locate(u->fd, &data_off, &nsamples, err, sizeof err) != 0) {
        http_reply_error(r, 415, "%s", err);
        return;
    }
    close(u->fd);
    u->fd = -1;

    pthread_mutex_lock(&w->mu);
    known = find_job(w, id); /* a concurrent POST of the same id may have won */
    if (known) {
        json_t *j = job_json(known);
        pthread_mutex_unlock(&w->mu);
        http_reply_json(r, 200, j);
        return;
    }
    if (w->nqueued >= w->max_queue) {
        pthread_mutex_unlock(&w->mu);
        http_reply_error(r, 503, "worker queue is full (%d jobs waiting); retry later", w->max_queue);
        return;
    }
    wjob *j = xcalloc(1, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    j->wav_path = xasprintf("%s/job-%s.wav", w->work_dir, id);
    j->result_path = xasprintf("%s/job-%s.json", w->work_dir, id);
    if (opus) j->opus_path = xasprintf("%s/job-%s.opus", w->work_dir, id);
    if (rename(u->tmp, opus ? j->opus_path : j->wav_path) != 0) {
        int e = errno;
        pthread_mutex_unlock(&w->mu);
        job_free(j);
        http_reply_error(r, 500, "cannot store the upload: %s", strerror(e));
        return;
    }
    SAFE_FREE(u->tmp);
    j->data_off = data_off;
    j->nsamples = nsamples;
    j->language = lang && *lang ? xstrdup(lang) : NULL;
    j->prompt = prompt && *prompt ? xstrdup(prompt) : NULL;
    j->model = model ? xstrdup(model) : NULL;
    o.language = j->language;
    o.prompt = j->prompt;
    o.cancel = &j->cancel;
    j->opts = o;
    j->state = WS_QUEUED;
    if (w->tail) w->tail->next = j;
    else w->jobs = j;
    w->tail = j;
    w->nqueued++;
    pthread_cond_broadcast(&w->cv);
    json_t *body = job_json(j);
    pthread_mutex_unlock(&w->mu);
    size_t body_bytes = u->n;
    if (opus) LOG_I("worker", "job %s accepted: Ogg Opus, %zu bytes", id, body_bytes);
    else LOG_I("worker", "job %s accepted: %.1f s of audio", id, (double)nsamples / ENGINE_SAMPLE_RATE);
    http_reply_json(r, 202, body);
}

static void h_job(http_req *r, void *app)
{
    worker *w = app;
    touch(w);
    const char *id = http_param(r, "id");
    pthread_mutex_lock(&w->mu);
    wjob *j = find_job(w, id);
    json_t *body = j ? job_json(j) : NULL;
    pthread_mutex_unlock(&w->mu);
    if (!body) http_reply_error(r, 404, "unknown job: %s", id);
    else http_reply_json(r, 200, body);
}

static void h_result(http_req *r, void *app)
{
    worker *w = app;
    touch(w);
    const char *id = http_param(r, "id");
    pthread_mutex_lock(&w->mu);
    wjob *j = find_job(w, id);
    int fd = -1, status = 0;
    char msg[600] = "";
    if (!j) {
        status = 404;
        snprintf(msg, sizeof msg, "unknown job: %s", id);
    } else if (j->deleted) {
        status = 404;
        snprintf(msg, sizeof msg, "the result of job %s was deleted", id);
    } else if (j->state != WS_DONE) {
        status = 409;
        snprintf(msg, sizeof msg, "job %s is %s%s%s", id, state_name(j->state),
                 j->error ? ": " : "", j->error ? j->error : "");
    } else {
        fd = open(j->result_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            status = 500;
            snprintf(msg, sizeof msg, "cannot read the result: %s", strerror(errno));
        }
    }
    pthread_mutex_unlock(&w->mu);
    if (status) {
        http_reply_error(r, status, "%s", msg);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        http_reply_error(r, 500, "cannot read the result");
        return;
    }
    http_reply_fd(r, 200, "application/json", fd, (size_t)sb.st_size);
}

static void h_delete(http_req *r, void *app)
{
    worker *w = app;
    touch(w);
    const char *id = http_param(r, "id");
    pthread_mutex_lock(&w->mu);
    wjob *j = find_job(w, id);
    if (!j) {
        pthread_mutex_unlock(&w->mu);
        http_reply_error(r, 404, "unknown job: %s", id);
        return;
    }
    if (j->state == WS_QUEUED) {
        j->state = WS_CANCELLED;
        j->error = xstrdup("cancelled");
        j->finished = now_mono();
        w->nqueued--;
        LOG_I("worker", "job %s cancelled before it started", id);
    } else if (j->state == WS_RUNNING) {
        atomic_store(&j->cancel, 1); /* the engine polls it and stops within a second */
        j->state = WS_CANCELLED;
        LOG_I("worker", "job %s cancelled while running", id);
    }
    job_delete_files(j);
    json_t *body = json_pack("{s:s,s:s,s:b}", "job_id", j->id, "state", state_name(j->state),
                             "deleted", 1);
    pthread_mutex_unlock(&w->mu);
    http_reply_json(r, 200, body);
}

static const http_route worker_routes[] = {
    {"GET", "/health", h_health, 0, NULL, "worker", "worker status", NULL},
    {"POST", "/transcribe", h_transcribe, HTTP_ROUTE_STREAM, body_chunk, "worker",
     "submit a 16 kHz mono WAV or Ogg Opus for transcription", NULL},
    {"GET", "/jobs/{id}", h_job, 0, NULL, "worker", "job state and progress", NULL},
    {"GET", "/jobs/{id}/result", h_result, 0, NULL, "worker", "the finished transcript", NULL},
    {"DELETE", "/jobs/{id}", h_delete, 0, NULL, "worker", "cancel a job and delete its files",
     NULL},
};

/* ---- lifecycle ------------------------------------------------------------------------------- */

worker *worker_start(const worker_config *cfg, char *err, size_t errlen)
{
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    if (!config_host_is_loopback(host)) {
        snprintf(err, errlen, "refusing to listen on %s: the worker has no authentication and "
                 "only listens on loopback (127.0.0.1 or ::1); the controller reaches it "
                 "through an SSH tunnel", host);
        return NULL;
    }
    worker *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->models_mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->host = xstrdup(host);
    w->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    w->max_queue = cfg->max_queue > 0 ? cfg->max_queue : DEFAULT_MAX_QUEUE;
    w->ttl_s = cfg->result_ttl_s > 0 ? cfg->result_ttl_s : DEFAULT_TTL_S;
    w->version = xstrdup(cfg->version ? cfg->version : "dev");
    w->last_contact = now_mono();
    if (cfg->deadman_s > 0 && cfg->vast_url && *cfg->vast_url && cfg->instance_id &&
        *cfg->instance_id && cfg->instance_key && *cfg->instance_key) {
        w->deadman_s = cfg->deadman_s;
        w->vast_url = xstrdup(cfg->vast_url);
        w->instance_id = xstrdup(cfg->instance_id);
        w->instance_key = xstrdup(cfg->instance_key);
    }
    if (cfg->work_dir && *cfg->work_dir) {
        if (mkdir_p(cfg->work_dir, 0700) != 0) {
            snprintf(err, errlen, "cannot create the work directory %s: %s", cfg->work_dir,
                     strerror(errno));
            goto fail;
        }
        w->work_dir = xstrdup(cfg->work_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        char *tpl = xasprintf("%s/gpuscribe-worker-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tpl)) {
            snprintf(err, errlen, "cannot create a work directory in %s: %s",
                     tmp && *tmp ? tmp : "/tmp", strerror(errno));
            free(tpl);
            goto fail;
        }
        w->work_dir = tpl;
        w->own_work_dir = 1;
    }
    w->slots = cfg->slots > 0 ? (cfg->slots > ENGINE_MAX_SLOTS ? ENGINE_MAX_SLOTS : cfg->slots) : 1;
    const char *md = getenv("GS_MODELS_DIR");
    w->models_dir = xstrdup(md && *md ? md : "/workspace/models");
    w->eng = engine_open_slots(cfg->engine ? cfg->engine : "auto", cfg->model, w->slots, err, errlen);
    if (!w->eng) goto fail;
    if (!strcmp(engine_name(w->eng), "sphinx")) {
        w->default_model = xstrdup("sphinx");
    } else {
        const char *mp = engine_model(w->eng), *base = strrchr(mp, '/');
        w->default_model = model_name_of_file(base ? base + 1 : mp);
        if (!w->default_model) w->default_model = xstrdup(base ? base + 1 : mp);
    }
    gpu_probe(&w->gpu);
    LOG_I("worker", "engine %s, model %s on %s, %d slot%s, word times: %s", engine_name(w->eng),
          w->default_model, engine_device(w->eng), w->slots, w->slots == 1 ? "" : "s",
          engine_word_timing(w->eng));
    for (int i = 0; i < w->slots; i++) {
        if (pthread_create(&w->thr[i], NULL, job_thread, w) != 0) {
            snprintf(err, errlen, "cannot start the job threads");
            goto fail;
        }
        w->nthr++;
    }
    http_config hc = {.host = host, .port = cfg->port, .threads = 4, .version = w->version};
    w->http = http_server_start(&hc, worker_routes, ARRAY_LEN(worker_routes), w, err, errlen);
    if (!w->http) goto fail;
    return w;
fail:
    worker_stop(w);
    return NULL;
}

int worker_port(const worker *w) { return http_server_port(w->http); }
const char *worker_engine_name(const worker *w) { return engine_name(w->eng); }

void worker_stop(worker *w)
{
    if (!w) return;
    http_server_stop(w->http); /* no handler runs after this */
    w->http = NULL;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    for (wjob *j = w->jobs; j; j = j->next)
        if (j->active) atomic_store(&j->cancel, 1);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthr; i++) pthread_join(w->thr[i], NULL);
    while (w->jobs) {
        wjob *j = w->jobs;
        w->jobs = j->next;
        job_delete_files(j);
        job_free(j);
    }
    engine_close(w->eng);
    while (w->models) {
        struct wmodel *m = w->models;
        w->models = m->next;
        engine_close(m->eng);
        free(m->name);
        free(m);
    }
    free(w->default_model);
    free(w->models_dir);
    if (w->own_work_dir && w->work_dir && rmdir(w->work_dir) != 0)
        LOG_W("worker", "cannot remove %s: %s", w->work_dir, strerror(errno));
    free(w->work_dir);
    free(w->host);
    free(w->version);
    free(w->vast_url);
    free(w->instance_id);
    if (w->instance_key) {
        memset(w->instance_key, 0, strlen(w->instance_key));
        free(w->instance_key);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->models_mu);
    free(w);
}
