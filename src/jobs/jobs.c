#include "jobs/jobs.h"
#include "jobs/jobs_int.h"
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

#define CHUNK_SEARCH_S 30.0   /* a cut is searched for within this of its target */

static const char *const final_states[] = {"done", "failed", "cancelled"};

static int is_final(const char *state)
{
    for (size_t i = 0; i < ARRAY_LEN(final_states); i++)
        if (state && strcmp(state, final_states[i]) == 0) return 1;
    return 0;
}

static const char *static_state(const char *s)
{
    static const char *const all[] = {"preparing", "queued", "running", "done", "failed",
                                      "cancelled"};
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

void jobs_remove_dir(const char *dir)
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

sqlite3_stmt *jobs_prep(jobs *j, const char *sql)
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
    "options, progress, engine, backend, attempts, error, instance_id, gpu_seconds, cost_usd, "
    "error_kind, (SELECT count(*) FROM chunks c WHERE c.job_id=jobs.id), "
    "(SELECT count(*) FROM chunks c WHERE c.job_id=jobs.id AND c.state='done'), speakers_error";

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

/* jobs_remote's callbacks, when set (dispatch.c uses them too) */
int jobs_remote_ready(jobs *j, char *url, size_t n, long long *row, int reserve)
{
    return j->has_remote && j->remote.ready_worker &&
           j->remote.ready_worker(j->remote.ud, url, n, row, reserve) == 0;
}

int jobs_gpu_pending(jobs *j)
{
    return j->has_remote && j->remote.gpu_pending && j->remote.gpu_pending(j->remote.ud);
}

double jobs_progress_locked(jobs *j, const char *id, double stored)
{
    double total = 0, live = 0;
    int any = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        if (j->live[i].in_use && strcmp(j->live[i].id, id) == 0) {
            live += j->live[i].progress * j->live[i].dur;
            any = 1;
        }
    if (!any) return stored;
    sqlite3_stmt *st = jobs_prep(j, "SELECT coalesce(sum(end_s-start_s),0) FROM chunks WHERE job_id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) total = sqlite3_column_double(st, 0);
    }
    sqlite3_finalize(st);
    if (!(total > 0)) return stored;
    double p = stored + live / total;
    return p > 1 ? 1 : p;
}

/* A job's chunks: where and how each ran (for GET /api/jobs/{id}). Caller holds the store
 * lock and j->lock. */
static json_t *chunks_json(jobs *j, const char *id)
{
    json_t *arr = json_array();
    sqlite3_stmt *st = jobs_prep(j, "SELECT idx, start_s, end_s, state, attempts, backend, engine, "
                                    "instance_id, started_at, finished_at, gpu_seconds, error "
                                    "FROM chunks WHERE job_id=? ORDER BY idx");
    if (!st) return arr;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int idx = sqlite3_column_int(st, 0);
        const char *state = (const char *)sqlite3_column_text(st, 3);
        double progress = state && !strcmp(state, "done") ? 1.0 : 0.0;
        for (int i = 0; i < MAX_WORKERS; i++)
            if (j->live[i].in_use && j->live[i].chunk == idx && !strcmp(j->live[i].id, id))
                progress = j->live[i].progress;
        json_t *c = json_pack("{s:i,s:f,s:f,s:s,s:i,s:f}", "index", idx, "start",
                              sqlite3_column_double(st, 1), "end", sqlite3_column_double(st, 2),
                              "state", state ? state : "", "attempts", sqlite3_column_int(st, 4),
                              "progress", progress);
        json_object_set_new(c, "backend", text_or_null(st, 5));
        json_object_set_new(c, "engine", text_or_null(st, 6));
        json_object_set_new(c, "instance_id", sqlite3_column_type(st, 7) == SQLITE_NULL
                                                  ? json_null()
                                                  : json_integer(sqlite3_column_int64(st, 7)));
        json_object_set_new(c, "started_at", num_or_null(st, 8));
        json_object_set_new(c, "finished_at", num_or_null(st, 9));
        json_object_set_new(c, "gpu_seconds", num_or_null(st, 10));
        json_object_set_new(c, "error", text_or_null(st, 11));
        json_array_append_new(arr, c);
    }
    sqlite3_finalize(st);
    return arr;
}

/* caller holds j->lock (for live progress) */
static json_t *row_json(jobs *j, sqlite3_stmt *st)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *state = (const char *)sqlite3_column_text(st, 1);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id ? id : ""));
    json_object_set_new(o, "state", json_string(state ? state : ""));
    double progress = sqlite3_column_double(st, 9);
    if (id) progress = jobs_progress_locked(j, id, progress);
    json_object_set_new(o, "progress", json_real(progress));
    if (state && !strcmp(state, "preparing")) {
        double pp = 0;
        for (int i = 0; i < PREP_THREADS; i++)
            if (j->prep[i].in_use && id && !strcmp(j->prep[i].id, id)) pp = j->prep[i].progress;
        json_object_set_new(o, "preparing_progress", json_real(pp));
    }
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
    /* "audio" when the upload turned out not to be usable audio (a client error) */
    json_object_set_new(o, "error_kind", text_or_null(st, 17));
    json_object_set_new(o, "chunks_total", json_integer(sqlite3_column_int(st, 18)));
    json_object_set_new(o, "chunks_done", json_integer(sqlite3_column_int(st, 19)));
    /* set when diarize was asked for and failed (the transcript is there, without speakers) */
    json_object_set_new(o, "speakers_error", text_or_null(st, 20));
    if (sqlite3_column_type(st, 3) != SQLITE_NULL && sqlite3_column_type(st, 4) != SQLITE_NULL)
        json_object_set_new(o, "processing_s", json_real(sqlite3_column_double(st, 4) -
                                                         sqlite3_column_double(st, 3)));
    if (state && strcmp(state, "queued") == 0) {
        char url[256];
        long long row;
        if (jobs_remote_ready(j, url, sizeof url, &row, 0)) {
            /* it will go to the ready worker */
        } else if (jobs_gpu_pending(j)) {
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
    sqlite3_stmt *st = jobs_prep(j, sql);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            o = row_json(j, st);
            json_object_set_new(o, "chunks", chunks_json(j, id));
        }
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
    sqlite3_stmt *st = jobs_prep(j, sql);
    if (st) {
        if (state) sqlite3_bind_text(st, 1, state, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, limit);
        sqlite3_bind_int(st, 3, offset);
        while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(arr, row_json(j, st));
    }
    sqlite3_finalize(st);
    st = jobs_prep(j, "SELECT count(*) FROM jobs WHERE (?1 IS NULL OR state=?1)");
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
    sqlite3_stmt *st = jobs_prep(j, "SELECT sum(state IN ('preparing','queued')), sum(state='running') "
                                    "FROM jobs");
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
    static const char *const all[] = {"preparing", "queued", "running", "done", "failed",
                                      "cancelled"};
    for (size_t i = 0; i < ARRAY_LEN(all); i++) json_object_set_new(states, all[i], json_integer(0));
    json_t *totals = json_array();
    double queued_audio = 0;
    long long retries = 0;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT state, count(*), coalesce(sum(audio_duration),0) FROM jobs "
                               "GROUP BY state");
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        if (!state) continue;
        json_object_set_new(states, state, json_integer(sqlite3_column_int64(st, 1)));
        if (!strcmp(state, "queued")) queued_audio = sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    st = jobs_prep(j, "SELECT engine, backend, jobs, audio_s, gpu_s FROM job_totals "
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
    st = jobs_prep(j, "SELECT value FROM job_counters WHERE name='retries'");
    if (st && sqlite3_step(st) == SQLITE_ROW) retries = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    store_unlock(j->st);
    return json_pack("{s:o,s:f,s:I,s:o}", "states", states, "queued_audio_s", queued_audio,
                     "retries", (json_int_t)retries, "totals", totals);
}

void jobs_backlog(jobs *j, double *audio_s, int *njobs)
{
    double a = 0;
    int n = 0;
    store_lock(j->st);
    /* chunks not done yet (running ones count whole: a slot is busy with them), and the
     * audio of jobs still being prepared, as their headers declared it */
    sqlite3_stmt *st = jobs_prep(j,
        "SELECT coalesce((SELECT sum(c.end_s-c.start_s) FROM chunks c JOIN jobs k ON "
        "k.id=c.job_id WHERE c.state IN ('queued','running') AND k.state IN ('queued',"
        "'running')),0) + coalesce((SELECT sum(audio_duration) FROM jobs WHERE "
        "state='preparing'),0), (SELECT count(*) FROM jobs WHERE state IN ('preparing',"
        "'queued','running'))");
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        a = sqlite3_column_double(st, 0);
        n = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    if (audio_s) *audio_s = a;
    if (njobs) *njobs = n;
}

static char *job_state(jobs *j, const char *id)
{
    char *s = NULL;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT state FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) s = xstrdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return s;
}

/* ---- events and waiters ---------------------------------------------------------------------- */

void jobs_publish_state(jobs *j, const char *id)
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

void jobs_finished(jobs *j, const char *id)
{
    jobs_publish_state(j, id);
    pthread_mutex_lock(&j->lock);
    fire_waiters(j, id);
    pthread_mutex_unlock(&j->lock);
}

void jobs_wake(jobs *j)
{
    pthread_mutex_lock(&j->lock);
    pthread_cond_broadcast(&j->cond);
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
                         "size_bytes, audio_duration, options) VALUES(?,?,?,?,?,?,NULLIF(?,-1),?)",
                         "ttdttldt", id, "preparing", now_wall(), s->filename ? s->filename : "",
                         s->upload_path, (long long)s->size_bytes,
                         s->duration > 0 ? s->duration : -1.0, opts);
    free(opts);
    if (rc != 1) {
        snprintf(err, errlen, "cannot store the job");
        return -1;
    }
    json_t *o = jobs_get_json(j, id);
    if (o) events_publish(j->bus, "job.created", o, 1);
    pthread_mutex_lock(&j->lock);
    pthread_cond_signal(&j->prep_cond);
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
    int busy = 0; /* a dispatcher or preparer is on it: the last one out removes the files */
    if (!is_final(state)) {
        for (int i = 0; i < MAX_WORKERS; i++)
            if (j->live[i].in_use && strcmp(j->live[i].id, id) == 0) {
                j->live[i].cancel = 1; /* noticed at the next progress callback */
                busy = 1;
            }
        for (int i = 0; i < PREP_THREADS; i++)
            if (j->prep[i].in_use && strcmp(j->prep[i].id, id) == 0) {
                atomic_store(&j->prep[i].cancel, 1);
                busy = 1;
            }
        store_begin(j->st);
        store_execf(j->st, "UPDATE jobs SET state='cancelled', finished_at=?, error='cancelled by the "
                    "user' WHERE id=? AND state IN ('preparing','queued','running')", "dt",
                    now_wall(), id);
        store_execf(j->st, "UPDATE chunks SET state='cancelled' WHERE job_id=? AND state IN "
                    "('queued','running')", "t", id);
        store_commit(j->st);
        result = "cancelled";
    } else {
        store_begin(j->st);
        store_execf(j->st, "DELETE FROM chunks WHERE job_id=?", "t", id);
        store_execf(j->st, "DELETE FROM jobs WHERE id=?", "t", id);
        store_commit(j->st);
        result = "deleted";
    }
    pthread_mutex_unlock(&j->lock);
    char *dir = jobs_dir_for(j, id);
    if (!busy) jobs_remove_dir(dir);
    free(dir);
    free(state);
    if (strcmp(result, "cancelled") == 0) jobs_finished(j, id);
    else events_publish(j->bus, "job.deleted", json_pack("{s:s}", "id", id), 1);
    return result;
}

transcript *jobs_transcript(jobs *j, const char *id, const char **state_out)
{
    transcript *t = NULL;
    if (state_out) *state_out = NULL;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT state, transcript FROM jobs WHERE id=?");
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
    j->chunk_s = cfg->chunk_s > 0 ? cfg->chunk_s : 600;
    j->max_audio_s = cfg->max_audio_s > 0 ? cfg->max_audio_s : 12 * 3600.0;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    pthread_cond_init(&j->prep_cond, NULL);
    char *dir = xasprintf("%s/jobs", j->data_dir);
    if (mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
        free(dir);
        jobs_free(j);
        return NULL;
    }
    free(dir);
    /* crash recovery: chunks a killed controller left running run again, a bounded number of
     * times (a job whose chunk ran out of attempts fails); jobs left preparing are prepared
     * again from their upload */
    store_begin(j->st);
    int gave_up = store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error='gave up "
                              "after ' || (SELECT max(attempts) FROM chunks c WHERE c.job_id=jobs.id"
                              " AND c.state='running') || ' attempts (the controller stopped during"
                              " each)' WHERE state='running' AND EXISTS (SELECT 1 FROM chunks c "
                              "WHERE c.job_id=jobs.id AND c.state='running' AND c.attempts>=?)",
                              "dl", now_wall(), (long long)j->max_attempts);
    store_execf(j->st, "UPDATE chunks SET state='cancelled' WHERE state IN ('queued','running') AND "
                "job_id IN (SELECT id FROM jobs WHERE state IN ('failed','cancelled','done'))", "");
    int requeued = store_execf(j->st, "UPDATE chunks SET state='queued' WHERE state='running'", "");
    store_execf(j->st, "UPDATE jobs SET state='queued', backend=NULL, instance_id=NULL WHERE "
                "state='running' AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.job_id=jobs.id AND "
                "c.state='done')", "");
    store_commit(j->st);
    if (requeued > 0) LOG_I("jobs", "%d interrupted chunk(s) queued again", requeued);
    /* a controller killed between a job's last chunk and its stitching */
    char **ready = NULL;
    double *total = NULL;
    size_t nready = 0;
    store_lock(j->st);
    sqlite3_stmt *q = jobs_prep(j, "SELECT id, coalesce(audio_duration,0) FROM jobs WHERE "
                                    "state='running' AND NOT EXISTS (SELECT 1 FROM chunks c WHERE "
                                    "c.job_id=jobs.id AND c.state!='done') AND EXISTS (SELECT 1 "
                                    "FROM chunks c WHERE c.job_id=jobs.id)");
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        ready = xrealloc(ready, (nready + 1) * sizeof *ready);
        total = xrealloc(total, (nready + 1) * sizeof *total);
        ready[nready] = xstrdup((const char *)sqlite3_column_text(q, 0));
        total[nready++] = sqlite3_column_double(q, 1);
    }
    sqlite3_finalize(q);
    store_unlock(j->st);
    for (size_t i = 0; i < nready; i++) {
        LOG_I("jobs", "job %s: every chunk was done before the stop; stitching it now", ready[i]);
        jobs_stitch(j, ready[i], total[i]);
        free(ready[i]);
    }
    free(ready);
    free(total);
    if (gave_up > 0) LOG_W("jobs", "%d job(s) failed after %d interrupted attempts", gave_up, j->max_attempts);
    jobs_sweep(j);
    return j;
}

int jobs_start(jobs *j, char *err, size_t errlen)
{
    for (int i = 0; i < PREP_THREADS; i++) {
        struct thread_arg *ta = xmalloc(sizeof *ta);
        *ta = (struct thread_arg){j, i};
        if (pthread_create(&j->prep_threads[i], NULL, jobs_prepare_main, ta) != 0) {
            free(ta);
            snprintf(err, errlen, "cannot start a preparing thread");
            return -1;
        }
        j->prep_started = i + 1;
    }
    /* threads past `concurrency` only send chunks to remote workers' free slots */
    int n = j->has_remote ? MAX_WORKERS : j->concurrency;
    for (int i = 0; i < n; i++) {
        struct thread_arg *ta = xmalloc(sizeof *ta);
        *ta = (struct thread_arg){j, i};
        if (pthread_create(&j->threads[i], NULL, jobs_dispatcher_main, ta) != 0) {
            free(ta);
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
    for (int i = 0; i < PREP_THREADS; i++) atomic_store(&j->prep[i].cancel, 1);
    pthread_cond_broadcast(&j->cond);
    pthread_cond_broadcast(&j->prep_cond);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->prep_started; i++) pthread_join(j->prep_threads[i], NULL);
    for (int i = 0; i < j->started; i++) pthread_join(j->threads[i], NULL);
    j->started = j->prep_started = 0;
}

void jobs_set_remote(jobs *j, const jobs_remote *r)
{
    j->remote = *r;
    j->has_remote = 1;
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
    pthread_cond_destroy(&j->prep_cond);
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    free(j->data_dir);
    free(j->engine_name);
    free(j->model);
    free(j->openai_url);
    free(j->openai_key);
    free(j);
}
