#include "jobs/jobs.h"
#include "jobs/openai_backend.h"
#include "worker/worker_client.h"
#include "audio/audio.h"
#include "core/err.h"
#include "core/events.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define JOB_MAX_AUDIO_S (24.0 * 3600)
#define OPENAI_MAX_BYTES (25LL * 1024 * 1024) /* OpenAI's upload cap */

struct waiter {
    char *id;
    void (*cb)(void *ud);
    void *ud;
    struct waiter *next;
};

struct live {               /* a job being run by a dispatcher */
    char id[40];
    double progress;
    int cancel;             /* user asked to cancel */
    int in_use;
};

struct jobs {
    store *st;
    events *bus;
    char *data_dir;
    char *engine_name;
    char *model;
    char *openai_url, *openai_key;
    jobs_remote remote;
    int has_remote;
    int concurrency;
    int gpu_only;
    int max_attempts;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopping;
    int started;
    pthread_t threads[MAX_WORKERS];
    struct live live[MAX_WORKERS];
    struct waiter *waiters;
};

static const char *const final_states[] = {"done", "failed", "cancelled"};

static int is_final(const char *state)
{
    for (size_t i = 0; i < ARRAY_LEN(final_states); i++)
        if (state && strcmp(state, final_states[i]) == 0) return 1;
    return 0;
}

static const char *static_state(const char *s)
{
    static const char *const all[] = {"queued", "running", "done", "failed", "cancelled"};
    for (size_t i = 0; i < ARRAY_LEN(all); i++)
        if (s && strcmp(s, all[i]) == 0) return all[i];
    return NULL;
}

char *jobs_new_id(void)
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        unsigned long long t = (unsigned long long)(now_wall() * 1e6) ^ (unsigned long long)getpid();
        memcpy(r, &t, sizeof r);
    }
    char *id = xmalloc(17);
    for (int i = 0; i < 8; i++) snprintf(id + 2 * i, 3, "%02x", r[i]);
    return id;
}

char *jobs_dir_for(const jobs *j, const char *id)
{
    return xasprintf("%s/jobs/%s", j->data_dir, id);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *p = xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- SQL helpers ---------------------------------------------------------------------------- */

static sqlite3_stmt *prep(jobs *j, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_db(j->st), sql, -1, &st, NULL) != SQLITE_OK) {
        LOG_E("jobs", "BUG: cannot prepare '%s': %s", sql, sqlite3_errmsg(store_db(j->st)));
        return NULL;
    }
    return st;
}


static const char JOB_COLS[] =
    "id, state, created_at, started_at, finished_at, filename, size_bytes, audio_duration, "
    "options, progress, engine, backend, attempts, error, instance_id, gpu_seconds, cost_usd";

static json_t *num_or_null(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null()
                                                       : json_real(sqlite3_column_double(st, col));
}

static json_t *text_or_null(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s ? json_string(s) : json_null();
}

static int remote_ready(jobs *j, char *url, size_t n, long long *row, int reserve);
static int gpu_pending(jobs *j);
static void remote_release(jobs *j, long long row);
static void run_remote(jobs *j, int slot, const char *id, const char *options, const char *url,
                       long long row);

/* caller holds j->lock (for live progress) */
static json_t *row_json(jobs *j, sqlite3_stmt *st)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *state = (const char *)sqlite3_column_text(st, 1);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id ? id : ""));
    json_object_set_new(o, "state", json_string(state ? state : ""));
    double progress = sqlite3_column_double(st, 9);
    for (int i = 0; i < MAX_WORKERS; i++)
        if (j->live[i].in_use && id && strcmp(j->live[i].id, id) == 0) progress = j->live[i].progress;
    json_object_set_new(o, "progress", json_real(progress));
    json_object_set_new(o, "created_at", num_or_null(st, 2));
    json_object_set_new(o, "started_at", num_or_null(st, 3));
    json_object_set_new(o, "finished_at", num_or_null(st, 4));
    json_object_set_new(o, "filename", text_or_null(st, 5));
    json_object_set_new(o, "size_bytes", json_integer(sqlite3_column_int64(st, 6)));
    json_object_set_new(o, "audio_duration", num_or_null(st, 7));
    const char *opt = (const char *)sqlite3_column_text(st, 8);
    json_t *oj = opt ? json_loads(opt, 0, NULL) : NULL;
    json_object_set_new(o, "options", oj ? oj : json_object());
    json_object_set_new(o, "engine", text_or_null(st, 10));
    json_object_set_new(o, "backend", text_or_null(st, 11));
    json_object_set_new(o, "attempts", json_integer(sqlite3_column_int(st, 12)));
    json_object_set_new(o, "error", text_or_null(st, 13));
    json_object_set_new(o, "instance_id", sqlite3_column_type(st, 14) == SQLITE_NULL
                                              ? json_null()
                                              : json_integer(sqlite3_column_int64(st, 14)));
    json_object_set_new(o, "gpu_seconds", num_or_null(st, 15));
    /* its share of the GPU instance's cost (set when the instance is destroyed) */
    json_object_set_new(o, "cost_usd", num_or_null(st, 16));
    if (sqlite3_column_type(st, 3) != SQLITE_NULL && sqlite3_column_type(st, 4) != SQLITE_NULL)
        json_object_set_new(o, "processing_s", json_real(sqlite3_column_double(st, 4) -
                                                         sqlite3_column_double(st, 3)));
    if (state && strcmp(state, "queued") == 0) {
        char url[256];
        long long row;
        if (remote_ready(j, url, sizeof url, &row, 0)) {
            /* it will go to the ready worker */
        } else if (gpu_pending(j)) {
            json_object_set_new(o, "waiting_for", json_string("the GPU instance being set up"));
        } else if (j->gpu_only) {
            json_object_set_new(o, "waiting_for", json_string("a GPU (GPU_ONLY=1: no CPU fallback)"));
        }
    }
    return o;
}

json_t *jobs_get_json(jobs *j, const char *id)
{
    char *sql = xasprintf("SELECT %s FROM jobs WHERE id=?", JOB_COLS);
    json_t *o = NULL;
    pthread_mutex_lock(&j->lock);
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, sql);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) o = row_json(j, st);
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    pthread_mutex_unlock(&j->lock);
    free(sql);
    return o;
}

json_t *jobs_list_json(jobs *j, const char *state, int limit, int offset)
{
    char *sql = xasprintf("SELECT %s FROM jobs WHERE (?1 IS NULL OR state=?1) "
                          "ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3", JOB_COLS);
    json_t *arr = json_array();
    long long total = 0;
    pthread_mutex_lock(&j->lock);
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, sql);
    if (st) {
        if (state) sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, limit);
        sqlite3_bind_int(st, 3, offset);
        while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(arr, row_json(j, st));
    }
    sqlite3_finalize(st);
    st = prep(j, "SELECT count(*) FROM jobs WHERE (?1 IS NULL OR state=?1)");
    if (st) {
        if (state) sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) total = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    pthread_mutex_unlock(&j->lock);
    free(sql);
    return json_pack("{s:o,s:I,s:i,s:i}", "jobs", arr, "total", (json_int_t)total, "limit", limit,
                     "offset", offset);
}

void jobs_counts(jobs *j, int *queued, int *running)
{
    *queued = *running = 0;
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, "SELECT sum(state='queued'), sum(state='running') FROM jobs");
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        *queued = sqlite3_column_int(st, 0);
        *running = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
}

json_t *jobs_stats_json(jobs *j)
{
    json_t *states = json_object();
    static const char *const all[] = {"queued", "running", "done", "failed", "cancelled"};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) json_object_set_new(states, all[i], json_integer(0));
    json_t *totals = json_array();
    double queued_audio = 0;
    long long retries = 0;
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, "SELECT state, count(*), coalesce(sum(audio_duration),0) FROM jobs "
                               "GROUP BY state");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        if (!state) continue;
        json_object_set_new(states, state, json_integer(sqlite3_column_int64(st, 1)));
        if (!strcmp(state, "queued")) queued_audio = sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    st = prep(j, "SELECT engine, backend, jobs, audio_s, gpu_s FROM job_totals "
                 "ORDER BY engine, backend");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *e = (const char *)sqlite3_column_text(st, 0);
        const char *b = (const char *)sqlite3_column_text(st, 1);
        json_array_append_new(totals, json_pack("{s:s,s:s,s:I,s:f,s:f}", "engine", e ? e : "",
                                                "backend", b ? b : "", "jobs",
                                                (json_int_t)sqlite3_column_int64(st, 2),
                                                "audio_s", sqlite3_column_double(st, 3),
                                                "gpu_s", sqlite3_column_double(st, 4)));
    }
    sqlite3_finalize(st);
    st = prep(j, "SELECT value FROM job_counters WHERE name='retries'");
    if (st && sqlite3_step(st) == SQLITE_ROW) retries = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    store_unlock(j->st);
    return json_pack("{s:o,s:f,s:I,s:o}", "states", states, "queued_audio_s", queued_audio,
                     "retries", (json_int_t)retries, "totals", totals);
}

static char *job_state(jobs *j, const char *id)
{
    char *s = NULL;
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, "SELECT state FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) s = xstrdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return s;
}

/* ---- events and waiters ---------------------------------------------------------------------- */

static void publish_state(jobs *j, const char *id)
{
    json_t *o = jobs_get_json(j, id);
    if (o) events_publish(j->bus, "job.state", o, 1);
}

/* caller holds j->lock */
static void fire_waiters(jobs *j, const char *id)
{
    for (struct waiter **pp = &j->waiters; *pp;) {
        struct waiter *w = *pp;
        if (strcmp(w->id, id) == 0) {
            *pp = w->next;
            w->cb(w->ud);
            free(w->id);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* A run starts: dispatcher slot `slot` now shows job id (progress 0, not cancelled). */
static struct live *claim_live(jobs *j, int slot, const char *id)
{
    struct live *lv = &j->live[slot];
    pthread_mutex_lock(&j->lock);
    snprintf(lv->id, sizeof lv->id, "%s", id);
    lv->progress = 0;
    lv->cancel = 0;
    lv->in_use = 1;
    pthread_mutex_unlock(&j->lock);
    return lv;
}

/* A run is over: whether the user cancelled it or the server is stopping; frees its slot. */
static void release_live(jobs *j, struct live *lv, int *user_cancel, int *stopping)
{
    pthread_mutex_lock(&j->lock);
    *user_cancel = lv->cancel;
    *stopping = j->stopping;
    lv->in_use = 0;
    pthread_mutex_unlock(&j->lock);
}

/* Interrupted by shutdown: the job runs again at the next start (the attempt is not counted). */
static void requeue_interrupted(jobs *j, const char *id)
{
    store_execf(j->st, "UPDATE jobs SET state='queued', attempts=max(attempts-1,0), progress=0 "
                 "WHERE id=? AND state='running'", "t", id);
    LOG_I("jobs", "job %s interrupted by shutdown; it will run again at the next start", id);
}

static void finished(jobs *j, const char *id)
{
    publish_state(j, id);
    pthread_mutex_lock(&j->lock);
    fire_waiters(j, id);
    pthread_mutex_unlock(&j->lock);
}

int jobs_wait(jobs *j, const char *id, void (*cb)(void *ud), void *ud)
{
    pthread_mutex_lock(&j->lock);
    char *state = job_state(j, id);
    int rc;
    if (!state) rc = -1;
    else if (is_final(state)) rc = 1;
    else {
        struct waiter *w = xcalloc(1, sizeof *w);
        w->id = xstrdup(id);
        w->cb = cb;
        w->ud = ud;
        w->next = j->waiters;
        j->waiters = w;
        rc = 0;
    }
    pthread_mutex_unlock(&j->lock);
    free(state);
    return rc;
}

void jobs_wait_cancel(jobs *j, void *ud)
{
    pthread_mutex_lock(&j->lock);
    for (struct waiter **pp = &j->waiters; *pp;) {
        struct waiter *w = *pp;
        if (w->ud == ud) {
            *pp = w->next;
            free(w->id);
            free(w);
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&j->lock);
}

/* ---- submit, cancel, results ----------------------------------------------------------------- */

int jobs_submit(jobs *j, const char *id, const job_submit *s, char *err, size_t errlen)
{
    char *opts = json_dumps(s->options ? s->options : json_object(), JSON_COMPACT);
    int rc = store_execf(j->st, "INSERT INTO jobs(id, state, created_at, filename, upload_path, "
                          "size_bytes, audio_duration, options) VALUES(?,?,?,?,?,?,?,?)", "ttdttldt", id, "queued", now_wall(), s->filename ? s->filename : "",
                       s->upload_path, (long long)s->size_bytes, s->duration, opts);
    free(opts);
    if (rc != 1) {
        snprintf(err, errlen, "cannot store the job");
        return -1;
    }
    json_t *o = jobs_get_json(j, id);
    if (o) events_publish(j->bus, "job.created", o, 1);
    pthread_mutex_lock(&j->lock);
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
    return 0;
}

const char *jobs_cancel(jobs *j, const char *id)
{
    pthread_mutex_lock(&j->lock);
    char *state = job_state(j, id);
    const char *result = NULL;
    if (!state) {
        pthread_mutex_unlock(&j->lock);
        return NULL;
    }
    if (strcmp(state, "running") == 0) {
        for (int i = 0; i < MAX_WORKERS; i++)
            if (j->live[i].in_use && strcmp(j->live[i].id, id) == 0) j->live[i].cancel = 1;
        /* the dispatcher notices at the next progress callback and records it */
        store_execf(j->st, "UPDATE jobs SET state='cancelled', finished_at=?, error='cancelled by the "
                     "user' WHERE id=? AND state='running'", "dt", now_wall(), id);
        result = "cancelled";
    } else if (strcmp(state, "queued") == 0) {
        store_execf(j->st, "UPDATE jobs SET state='cancelled', finished_at=?, error='cancelled by the "
                     "user' WHERE id=? AND state='queued'", "dt", now_wall(), id);
        result = "cancelled";
    } else {
        store_execf(j->st, "DELETE FROM jobs WHERE id=?", "t", id);
        result = "deleted";
    }
    pthread_mutex_unlock(&j->lock);
    char *dir = jobs_dir_for(j, id);
    int running = strcmp(state, "running") == 0;
    if (!running) remove_dir(dir); /* a running job's dispatcher removes them when it stops */
    free(dir);
    free(state);
    if (strcmp(result, "cancelled") == 0) finished(j, id);
    else events_publish(j->bus, "job.deleted", json_pack("{s:s}", "id", id), 1);
    return result;
}

transcript *jobs_transcript(jobs *j, const char *id, const char **state_out)
{
    transcript *t = NULL;
    if (state_out) *state_out = NULL;
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, "SELECT state, transcript FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(st, 0);
            const char *js = (const char *)sqlite3_column_text(st, 1);
            if (state_out) *state_out = static_state(state);
            if (state && strcmp(state, "done") == 0 && js) {
                char err[128];
                t = transcript_from_json_store(js, err, sizeof err);
                if (!t) LOG_E("jobs", "job %s: stored transcript unreadable: %s", id, err);
            }
        }
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return t;
}

/* ---- dispatcher ------------------------------------------------------------------------------ */

struct run_ctx {
    jobs *j;
    struct live *lv;
    double last_pub;
    double last_frac;
};

static int on_progress(void *ud, double f)
{
    struct run_ctx *rc = ud;
    jobs *j = rc->j;
    pthread_mutex_lock(&j->lock);
    rc->lv->progress = f < 0 ? 0 : f > 1 ? 1 : f;
    int stop = rc->lv->cancel || j->stopping;
    pthread_mutex_unlock(&j->lock);
    double now = now_mono();
    if (!stop && (f - rc->last_frac >= 0.01 || now - rc->last_pub >= 0.5 || f >= 1)) {
        rc->last_pub = now;
        rc->last_frac = f;
        events_publish(j->bus, "job.progress",
                       json_pack("{s:s,s:f}", "id", rc->lv->id, "progress", rc->lv->progress), 0);
    }
    return stop;
}

/* Claim the oldest queued job: returns its id (caller frees) and fills the outputs. */
static char *claim(jobs *j, char **options, double *duration)
{
    char *id = NULL;
    store_lock(j->st);
    sqlite3_stmt *st = prep(j, "UPDATE jobs SET state='running', started_at=?1, attempts=attempts+1, "
                               "progress=0, error=NULL WHERE id=(SELECT id FROM jobs WHERE "
                               "state='queued' ORDER BY created_at, rowid LIMIT 1) "
                               "RETURNING id, options, audio_duration");
    if (st) {
        sqlite3_bind_double(st, 1, now_wall());
        if (sqlite3_step(st) == SQLITE_ROW) {
            id = xstrdup((const char *)sqlite3_column_text(st, 0));
            const char *o = (const char *)sqlite3_column_text(st, 1);
            *options = xstrdup(o ? o : "{}");
            *duration = sqlite3_column_double(st, 2);
        }
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return id;
}

static void fill_opts(engine_opts *eo, json_t *o)
{
    memset(eo, 0, sizeof *eo);
    eo->language = json_string_value(json_object_get(o, "language"));
    eo->prompt = json_string_value(json_object_get(o, "prompt"));
    eo->temperature = json_number_value(json_object_get(o, "temperature"));
    eo->word_timestamps = json_is_true(json_object_get(o, "word_timestamps"));
    eo->translate = json_is_true(json_object_get(o, "translate"));
    eo->beam_size = (int)json_integer_value(json_object_get(o, "beam_size"));
}

/* The model a job asked a worker for: NULL for the worker's default (none named, or OpenAI's
 * "whisper-1" alias). */
static const char *job_model(json_t *o)
{
    const char *m = json_string_value(json_object_get(o, "model"));
    return m && *m && strcmp(m, "whisper-1") != 0 ? m : NULL;
}

static void run_job(jobs *j, int slot, engine **eng, const char *id, const char *options)
{
    struct live *lv = claim_live(j, slot, id);
    publish_state(j, id);

    char err[512] = "";
    transcript *t = NULL;
    json_t *oj = json_loads(options, 0, NULL);
    engine_opts eo;
    fill_opts(&eo, oj);
    double t0 = now_mono();
    char *dir = jobs_dir_for(j, id);
    char *upload = xasprintf("%s/upload", dir);
    struct stat sb;
    const char *backend = "local";
    const char *ename = NULL;
    if (j->openai_key && j->openai_url && stat(upload, &sb) == 0 && sb.st_size <= OPENAI_MAX_BYTES) {
        backend = "openai";
        ename = "openai";
        t = openai_transcribe(j->openai_url, j->openai_key, upload, &eo, err, sizeof err);
        if (t) on_progress(&(struct run_ctx){.j = j, .lv = lv}, 1.0);
    } else if (!*eng) {
        *eng = engine_open(j->engine_name, j->model, err, sizeof err);
        if (*eng) LOG_I("jobs", "engine %s ready (%s) in %.2f s", engine_name(*eng),
                        engine_model(*eng), now_mono() - t0);
    }
    if (!ename && *eng) {
        char *wav = xasprintf("%s/audio.wav", dir);
        audio_pcm pcm = {0};
        if (audio_decode_file(wav, JOB_MAX_AUDIO_S, &pcm, err, sizeof err) == 0) {
            struct run_ctx rc = {.j = j, .lv = lv, .last_pub = now_mono()};
            t = engine_transcribe(*eng, pcm.samples, pcm.nsamples, &eo, on_progress, &rc, err,
                                  sizeof err);
            audio_pcm_release(&pcm);
        }
        free(wav);
    }
    free(upload);
    free(dir);
    json_decref(oj);

    int user_cancel, stopping;
    release_live(j, lv, &user_cancel, &stopping);

    if (!ename) ename = *eng ? engine_name(*eng) : j->engine_name;
    if (t) {
        char *js = transcript_to_json_store(t);
        store_execf(j->st, "UPDATE jobs SET state='done', finished_at=?, progress=1, transcript=?, "
                     "engine=?, backend=?, instance_id=NULL, error=NULL WHERE id=? AND state='running'", "dtttt", now_wall(), js, ename, backend, id);
        free(js);
        transcript_free(t);
        LOG_I("jobs", "job %s done (%s backend, %s engine) in %.1f s", id, backend, ename,
              now_mono() - t0);
    } else if (user_cancel) {
        char *jdir = jobs_dir_for(j, id);
        remove_dir(jdir);
        free(jdir);
        LOG_I("jobs", "job %s cancelled", id);
    } else if (stopping) {
        requeue_interrupted(j, id);
        return;
    } else {
        store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error=?, engine=?, "
                     "backend=? WHERE id=? AND state='running'", "dtttt", now_wall(), err[0] ? err : "transcription failed", ename, backend, id);
        LOG_W("jobs", "job %s failed: %s", id, err);
    }
    finished(j, id);
}

struct worker_arg { jobs *j; int slot; };

static void *dispatcher_main(void *arg)
{
    struct worker_arg *wa = arg;
    jobs *j = wa->j;
    int slot = wa->slot;
    free(wa);
    engine *eng = NULL;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        if (j->stopping) {
            pthread_mutex_unlock(&j->lock);
            break;
        }
        pthread_mutex_unlock(&j->lock);
        char *options = NULL, *id = NULL;
        double duration = 0;
        char url[256];
        long long row = 0;
        int remote = remote_ready(j, url, sizeof url, &row, 1);
        /* a ready worker whose slots are all taken is waited for, not bypassed */
        if (remote || (slot < j->concurrency && !j->gpu_only && !gpu_pending(j) &&
                       !remote_ready(j, url, sizeof url, &row, 0)))
            id = claim(j, &options, &duration);
        if (id && remote) {
            run_remote(j, slot, id, options, url, row);
            remote_release(j, row);
            free(id);
            free(options);
            continue;
        }
        if (remote) remote_release(j, row); /* nothing to send it */
        if (!id) {
            pthread_mutex_lock(&j->lock);
            if (!j->stopping) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 2; /* also re-checks the queue periodically */
                pthread_cond_timedwait(&j->cond, &j->lock, &ts);
            }
            pthread_mutex_unlock(&j->lock);
            continue;
        }
        run_job(j, slot, &eng, id, options);
        free(id);
        free(options);
    }
    engine_close(eng);
    return NULL;
}

void jobs_set_remote(jobs *j, const jobs_remote *r)
{
    j->remote = *r;
    j->has_remote = 1;
}

static int remote_ready(jobs *j, char *url, size_t n, long long *row, int reserve)
{
    return j->has_remote && j->remote.ready_worker &&
           j->remote.ready_worker(j->remote.ud, url, n, row, reserve) == 0;
}

static void remote_release(jobs *j, long long row)
{
    if (j->has_remote && j->remote.release_worker) j->remote.release_worker(j->remote.ud, row);
}

static int gpu_pending(jobs *j)
{
    return j->has_remote && j->remote.gpu_pending && j->remote.gpu_pending(j->remote.ud);
}

/* Run a claimed job on a remote worker. */
static void run_remote(jobs *j, int slot, const char *id, const char *options, const char *url,
                       long long row)
{
    struct live *lv = claim_live(j, slot, id);
    store_execf(j->st, "UPDATE jobs SET backend='remote', instance_id=NULLIF(?,0) WHERE id=?", "lt", row, id);
    publish_state(j, id);

    char err[512] = "";
    json_t *oj = json_loads(options, 0, NULL);
    engine_opts eo;
    fill_opts(&eo, oj);
    char ename[64] = "remote";
    json_t *health = NULL;
    if (worker_client_health(url, &health, err, sizeof err) == 0) {
        const char *e = json_string_value(json_object_get(health, "engine"));
        if (e) snprintf(ename, sizeof ename, "%s", e);
    }
    json_decref(health);
    char *dir = jobs_dir_for(j, id);
    char *wav = xasprintf("%s/audio.wav", dir);
    struct run_ctx rc = {.j = j, .lv = lv, .last_pub = now_mono()};
    double t0 = now_mono();
    gs_err kind = GS_OK;
    transcript *t = worker_client_transcribe_model(url, id, job_model(oj), wav, &eo, on_progress,
                                                   &rc, &kind, err, sizeof err);
    double took = now_mono() - t0;
    free(wav);
    json_decref(oj);

    int user_cancel, stopping;
    release_live(j, lv, &user_cancel, &stopping);

    if (t) {
        char *js = transcript_to_json_store(t);
        store_execf(j->st, "UPDATE jobs SET state='done', finished_at=?, progress=1, transcript=?, "
                     "engine=?, backend='remote', instance_id=NULLIF(?,0), gpu_seconds=coalesce(gpu_seconds,0)+?, "
                     "error=NULL WHERE id=? AND state='running'", "dttldt", now_wall(), js, ename, row, took, id);
        free(js);
        transcript_free(t);
        LOG_I("jobs", "job %s done on the GPU worker (%s) in %.1f s", id, ename, took);
    } else if (user_cancel) {
        remove_dir(dir);
        LOG_I("jobs", "job %s cancelled", id);
    } else if (stopping) {
        requeue_interrupted(j, id);
        free(dir);
        return;
    } else if (!gs_err_retryable(kind)) {
        /* the worker is fine; the job is not for it (refused, or it failed there): fail now,
         * without retries and without blaming the worker or its tunnel */
        store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error=? WHERE id=? AND "
                     "state='running'", "dtt", now_wall(), err, id);
        LOG_W("jobs", "job %s failed on the GPU worker (%s, not retried): %s", id,
              gs_err_name(kind), err);
    } else {
        if (j->remote.report_failure) j->remote.report_failure(j->remote.ud, row, err);
        /* back to the queue (same id: the worker resumes rather than re-runs it), bounded */
        int requeued = store_execf(j->st, "UPDATE jobs SET state='queued', progress=0, error=?, "
                                    "backend=NULL, instance_id=NULL "
                                    "WHERE id=? AND state='running' AND attempts<?", "ttl", err, id, (long long)j->max_attempts);
        if (requeued == 1) {
            LOG_W("jobs", "job %s: GPU worker failed (%s: %s); queued again", id,
                  gs_err_name(kind), err);
            free(dir);
            publish_state(j, id);
            pthread_mutex_lock(&j->lock);
            pthread_cond_broadcast(&j->cond);
            pthread_mutex_unlock(&j->lock);
            return;
        }
        store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error=? WHERE id=? AND "
                     "state='running'", "dtt", now_wall(), err, id);
        LOG_W("jobs", "job %s failed on the GPU worker: %s", id, err);
    }
    free(dir);
    finished(j, id);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

jobs *jobs_new(store *st, events *bus, const jobs_config *cfg, char *err, size_t errlen)
{
    jobs *j = xcalloc(1, sizeof *j);
    j->st = st;
    j->bus = bus;
    j->data_dir = xstrdup(cfg->data_dir);
    j->engine_name = xstrdup(cfg->engine ? cfg->engine : "auto");
    j->model = cfg->model ? xstrdup(cfg->model) : NULL;
    j->openai_url = cfg->openai_url ? xstrdup(cfg->openai_url) : NULL;
    j->openai_key = cfg->openai_key ? xstrdup(cfg->openai_key) : NULL;
    j->concurrency = cfg->concurrency < 1 ? 1 : cfg->concurrency > MAX_WORKERS ? MAX_WORKERS
                                                                                : cfg->concurrency;
    j->gpu_only = cfg->gpu_only;
    j->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    char *dir = xasprintf("%s/jobs", j->data_dir);
    if (mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
        free(dir);
        jobs_free(j);
        return NULL;
    }
    free(dir);
    /* crash recovery: jobs a killed controller left running run again, a bounded number of
     * times */
    int gave_up = store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error='gave up "
                               "after ' || attempts || ' attempts (the controller stopped during "
                               "each)' WHERE state='running' AND attempts>=?", "dl", now_wall(),
                            (long long)j->max_attempts);
    int requeued = store_execf(j->st, "UPDATE jobs SET state='queued', progress=0 WHERE state='running'", "");
    if (requeued > 0) LOG_I("jobs", "%d interrupted job(s) queued again", requeued);
    if (gave_up > 0) LOG_W("jobs", "%d job(s) failed after %d interrupted attempts", gave_up, j->max_attempts);
    return j;
}

int jobs_start(jobs *j, char *err, size_t errlen)
{
    /* threads past `concurrency` only send jobs to remote workers' free slots */
    int n = j->has_remote ? MAX_WORKERS : j->concurrency;
    for (int i = 0; i < n; i++) {
        struct worker_arg *wa = xmalloc(sizeof *wa);
        wa->j = j;
        wa->slot = i;
        if (pthread_create(&j->threads[i], NULL, dispatcher_main, wa) != 0) {
            free(wa);
            snprintf(err, errlen, "cannot start dispatcher thread");
            return -1;
        }
        j->started = i + 1;
    }
    return 0;
}

void jobs_stop(jobs *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->lock);
    j->stopping = 1;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->started; i++) pthread_join(j->threads[i], NULL);
    j->started = 0;
}

void jobs_free(jobs *j)
{
    if (!j) return;
    jobs_stop(j);
    while (j->waiters) {
        struct waiter *w = j->waiters;
        j->waiters = w->next;
        free(w->id);
        free(w);
    }
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j->data_dir);
    free(j->engine_name);
    free(j->model);
    free(j->openai_url);
    free(j->openai_key);
    free(j);
}
