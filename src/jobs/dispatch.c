/* dispatch.c: the dispatcher threads. Each claims a chunk (the chunks of every job, fairly:
 * the job with the fewest chunks running first, then the oldest) and runs it where it can: a
 * free slot of a ready GPU worker (through its tunnel, with worker_client; 16 kHz mono Opus
 * when the worker takes it, else a WAV of the chunk), else, when allowed, the OpenAI API or
 * the local engine, reading only the chunk's samples from audio.wav. A finished chunk's
 * transcript is stored on its row; the last one stitches the job's transcript with global
 * timestamps. A lost worker costs only its chunks in flight: they go back to the queue (up
 * to max_attempts runs each); a chunk that cannot succeed fails its job and stops the rest. */
#include "jobs/jobs_int.h"
#include "jobs/openai_backend.h"
#include "audio/audio.h"
#include "audio/opus.h"
#include "audio/wavfile.h"
#include "core/err.h"
#include "core/fault.h"
#include "core/events.h"
#include "core/log.h"
#include "core/util.h"
#include "worker/worker_client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct claim {
    char id[40];
    int idx, nchunks, attempts;
    double start, end, total;
    char *options;
};

/* ---- claiming ------------------------------------------------------------------------------- */

static int claim_chunk(jobs *j, struct claim *c)
{
    int found = 0;
    memset(c, 0, sizeof *c);
    store_begin(j->st);
    sqlite3_stmt *st = jobs_prep(j,
        "UPDATE chunks SET state='running', attempts=attempts+1, started_at=?1, error=NULL, "
        "backend=NULL, engine=NULL, instance_id=NULL WHERE rowid=(SELECT c.rowid FROM chunks c "
        "JOIN jobs j ON j.id=c.job_id WHERE c.state='queued' AND j.state IN ('queued','running') "
        "ORDER BY (SELECT count(*) FROM chunks r WHERE r.job_id=c.job_id AND r.state='running'), "
        "j.created_at, j.rowid, c.idx LIMIT 1) RETURNING job_id, idx, start_s, end_s, attempts");
    if (st) {
        sqlite3_bind_double(st, 1, now_wall());
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(c->id, sizeof c->id, "%s", (const char *)sqlite3_column_text(st, 0));
            c->idx = sqlite3_column_int(st, 1);
            c->start = sqlite3_column_double(st, 2);
            c->end = sqlite3_column_double(st, 3);
            c->attempts = sqlite3_column_int(st, 4);
            found = 1;
        }
    }
    sqlite3_finalize(st);
    if (found) {
        st = jobs_prep(j, "SELECT options, coalesce(audio_duration,0), (SELECT count(*) FROM chunks "
                          "WHERE job_id=?1) FROM jobs WHERE id=?1");
        if (st) {
            sqlite3_bind_text(st, 1, c->id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW) {
                const char *o = (const char *)sqlite3_column_text(st, 0);
                c->options = xstrdup(o ? o : "{}");
                c->total = sqlite3_column_double(st, 1);
                c->nchunks = sqlite3_column_int(st, 2);
            }
        }
        sqlite3_finalize(st);
        store_execf(j->st, "UPDATE jobs SET state='running', started_at=coalesce(started_at,?), "
                    "attempts=max(attempts,?) WHERE id=?", "dlt", now_wall(),
                    (long long)c->attempts, c->id);
        if (!c->options) c->options = xstrdup("{}");
    }
    store_commit(j->st);
    return found;
}

static struct live *claim_live(jobs *j, int slot, const struct claim *c)
{
    struct live *lv = &j->live[slot];
    pthread_mutex_lock(&j->lock);
    snprintf(lv->id, sizeof lv->id, "%s", c->id);
    lv->chunk = c->idx;
    lv->dur = c->end - c->start;
    lv->progress = 0;
    lv->cancel = lv->abort = 0;
    lv->in_use = 1;
    pthread_mutex_unlock(&j->lock);
    return lv;
}

struct outcome { int user_cancel, abort, stopping, others; };

/* A run is over: what stopped it, and whether other chunks of the job are still running. */
static struct outcome release_live(jobs *j, struct live *lv)
{
    struct outcome o = {0};
    pthread_mutex_lock(&j->lock);
    o.user_cancel = lv->cancel;
    o.abort = lv->abort;
    o.stopping = j->stopping;
    lv->in_use = 0;
    for (int i = 0; i < MAX_WORKERS; i++)
        o.others |= j->live[i].in_use && !strcmp(j->live[i].id, lv->id);
    for (int i = 0; i < PREP_THREADS; i++)
        o.others |= j->prep[i].in_use && !strcmp(j->prep[i].id, lv->id);
    pthread_mutex_unlock(&j->lock);
    return o;
}

/* ---- progress ------------------------------------------------------------------------------- */

struct run_ctx {
    jobs *j;
    struct live *lv;
    double last_pub, last_frac;
};

static int on_progress(void *ud, double f)
{
    struct run_ctx *rc = ud;
    jobs *j = rc->j;
    pthread_mutex_lock(&j->lock);
    rc->lv->progress = f < 0 ? 0 : f > 1 ? 1 : f;
    int stop = rc->lv->cancel || rc->lv->abort || j->stopping;
    pthread_mutex_unlock(&j->lock);
    double now = now_mono();
    if (!stop && (f - rc->last_frac >= 0.01 || now - rc->last_pub >= 0.5 || f >= 1)) {
        rc->last_pub = now;
        rc->last_frac = f;
        double p = 0;
        pthread_mutex_lock(&j->lock);
        store_lock(j->st);
        sqlite3_stmt *st = jobs_prep(j, "SELECT progress FROM jobs WHERE id=?");
        if (st) {
            sqlite3_bind_text(st, 1, rc->lv->id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW) p = sqlite3_column_double(st, 0);
        }
        sqlite3_finalize(st);
        p = jobs_progress_locked(j, rc->lv->id, p);
        store_unlock(j->st);
        char id[40];
        snprintf(id, sizeof id, "%s", rc->lv->id);
        pthread_mutex_unlock(&j->lock);
        events_publish(j->bus, "job.progress", json_pack("{s:s,s:f}", "id", id, "progress", p), 0);
    }
    return stop;
}

/* ---- options ---------------------------------------------------------------------------------- */

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

static size_t to_sample(double s) { return (size_t)llround(s * AUDIO_RATE); }

/* The chunk's audio as a file of its own in the job's directory (made once, kept until the
 * chunk is done): 16 kHz mono Ogg Opus (audio/opus.h: ~12 MB per audio hour) when opus, else
 * a WAV of its samples (a job of one chunk then uses audio.wav itself). Never more than a
 * window of samples in memory for Opus; the chunk's samples for a WAV. Returns the path
 * (caller frees) or NULL with err. */
static char *chunk_file(jobs *j, const struct claim *c, int opus, const atomic_int *cancel,
                        char *err, size_t errlen)
{
    char *dir = jobs_dir_for(j, c->id);
    char *wav = xasprintf("%s/audio.wav", dir);
    if (!opus && c->nchunks <= 1) {
        free(dir);
        return wav;
    }
    char *path = xasprintf("%s/chunk-%d.%s", dir, c->idx, opus ? "opus" : "wav");
    free(dir);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        free(wav);
        return path;
    }
    size_t s0 = to_sample(c->start), n = to_sample(c->end) - s0;
    int rc;
    if (opus) {
        rc = audio_opus_encode_wav_range(wav, s0, n, path, AUDIO_OPUS_BITRATE, cancel, err, errlen);
    } else {
        audio_pcm pcm;
        rc = wav_read_range(wav, s0, n, &pcm, err, errlen);
        if (rc == 0) {
            rc = audio_write_wav(path, &pcm);
            if (rc != 0) snprintf(err, errlen, "cannot write the chunk's audio: %s", strerror(errno));
            audio_pcm_release(&pcm);
        }
    }
    free(wav);
    if (rc != 0) {
        free(path);
        return NULL;
    }
    return path;
}

static void remove_chunk_files(jobs *j, const char *id, int idx)
{
    char *dir = jobs_dir_for(j, id);
    static const char *const ext[] = {"wav", "opus"};
    for (size_t i = 0; i < ARRAY_LEN(ext); i++) {
        char *p = xasprintf("%s/chunk-%d.%s", dir, idx, ext[i]);
        unlink(p);
        free(p);
    }
    free(dir);
}

/* ---- stitching ------------------------------------------------------------------------------ */

/* All chunks are done: the job's transcript, with global timestamps, and the job done. */
void jobs_stitch(jobs *j, const char *id, double total)
{
    transcript *t = transcript_new(NULL, total);
    char backend[32] = "", engine[64] = "";
    int mixed_b = 0, mixed_e = 0, ninst = 0, bad = 0;
    long long inst = 0;
    double gpu = 0;
    int any_gpu = 0;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT idx, start_s, transcript, backend, engine, instance_id, "
                                    "gpu_seconds FROM chunks WHERE job_id=? ORDER BY idx");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *js = (const char *)sqlite3_column_text(st, 2);
            char err[128];
            transcript *ct = js ? transcript_from_json_store(js, err, sizeof err) : NULL;
            if (!ct) {
                LOG_E("jobs", "job %s: chunk %d's transcript is unreadable", id, sqlite3_column_int(st, 0));
                bad = 1;
                continue;
            }
            if (!t->language && ct->language) transcript_set_language(t, ct->language);
            if (sqlite3_column_int(st, 0) == 0) {
                t->translated = ct->translated;
                t->temperature = ct->temperature;
            }
            transcript_append(t, ct, sqlite3_column_double(st, 1));
            transcript_free(ct);
            const char *b = (const char *)sqlite3_column_text(st, 3);
            const char *e = (const char *)sqlite3_column_text(st, 4);
            if (b) {
                if (!*backend) snprintf(backend, sizeof backend, "%s", b);
                else mixed_b |= strcmp(backend, b) != 0;
            }
            if (e) {
                if (!*engine) snprintf(engine, sizeof engine, "%s", e);
                else mixed_e |= strcmp(engine, e) != 0;
            }
            if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
                long long i = sqlite3_column_int64(st, 5);
                if (ninst == 0 || i != inst) ninst++;
                inst = i;
            }
            if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
                gpu += sqlite3_column_double(st, 6);
                any_gpu = 1;
            }
        }
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    int changed;
    if (bad) {
        changed = store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error='a chunk''s "
                              "transcript could not be read' WHERE id=? AND state='running'", "dt",
                              now_wall(), id);
    } else {
        char note[300];
        if (jobs_diarize(j, id, t, note, sizeof note) != 0) { /* stopped: stitched again later */
            transcript_free(t);
            return;
        }
        char *js = transcript_to_json_store(t);
        store_begin(j->st);
        changed = store_execf(j->st, "UPDATE jobs SET state='done', finished_at=?, progress=1, "
                              "transcript=?, engine=?, backend=?, instance_id=NULLIF(?,0), "
                              "gpu_seconds=NULLIF(?,-1), error=NULL, speakers_error=NULLIF(?,'') "
                              "WHERE id=? AND state='running'",
                              "dtttldtt", now_wall(), js, mixed_e ? "mixed" : engine,
                              mixed_b ? "mixed" : backend, ninst == 1 ? inst : 0LL,
                              any_gpu ? gpu : -1.0, note, id);
        if (changed == 1) /* the job's transcript is the record now */
            store_execf(j->st, "UPDATE chunks SET transcript=NULL WHERE job_id=?", "t", id);
        store_commit(j->st);
        free(js);
    }
    transcript_free(t);
    if (changed == 1) {
        LOG_I("jobs", "job %s done (%s backend, %s engine)", id, mixed_b ? "mixed" : backend,
              mixed_e ? "mixed" : engine);
        jobs_finished(j, id);
    }
}

/* ---- outcomes ------------------------------------------------------------------------------- */

static void chunk_done(jobs *j, const struct claim *c, transcript *t, const char *backend,
                       const char *ename, long long row, double gpu_s)
{
    char *js = transcript_to_json_store(t);
    long long left = -1;
    store_begin(j->st);
    int ok = store_execf(j->st, "UPDATE chunks SET state='done', finished_at=?, transcript=?, "
                         "backend=?, engine=?, instance_id=NULLIF(?,0), gpu_seconds=NULLIF(?,-1), "
                         "error=NULL WHERE job_id=? AND idx=? AND state='running'", "dtttldtl",
                         now_wall(), js, backend, ename, row, gpu_s, c->id, (long long)c->idx) == 1;
    if (ok) {
        store_execf(j->st, "UPDATE jobs SET progress=min(1, (SELECT coalesce(sum(end_s-start_s),0) "
                    "FROM chunks WHERE job_id=?1 AND state='done') / max(?2, 0.001)) WHERE id=?1",
                    "td", c->id, c->total);
        sqlite3_stmt *st = jobs_prep(j, "SELECT count(*) FROM chunks WHERE job_id=? AND state!='done'");
        if (st) {
            sqlite3_bind_text(st, 1, c->id, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW) left = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    store_commit(j->st);
    free(js);
    remove_chunk_files(j, c->id, c->idx);
    if (c->nchunks > 1)
        LOG_I("jobs", "job %s: chunk %d/%d done (%s, %s)", c->id, c->idx + 1, c->nchunks, backend, ename);
    if (left == 0) {
        fault_point("job_before_stitch"); /* tests: a stop between the last chunk and stitching */
        jobs_stitch(j, c->id, c->total);
    }
    else if (ok) jobs_publish_state(j, c->id);
}

/* The chunk cannot succeed: it fails, and its job with it (the other chunks stop). */
static void chunk_fail(jobs *j, const struct claim *c, const char *err, const char *backend,
                       const char *ename)
{
    char *msg = c->nchunks > 1
                    ? xasprintf("chunk %d of %d (%.1f-%.1f s): %s", c->idx + 1, c->nchunks,
                                c->start, c->end, err[0] ? err : "transcription failed")
                    : xstrdup(err[0] ? err : "transcription failed");
    store_begin(j->st);
    store_execf(j->st, "UPDATE chunks SET state='failed', finished_at=?, error=? WHERE job_id=? AND "
                "idx=? AND state='running'", "dttl", now_wall(), err, c->id, (long long)c->idx);
    int changed = store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error=?, "
                              "engine=coalesce(?, engine), backend=coalesce(?, backend) WHERE id=? "
                              "AND state IN ('queued','running')", "dtttt", now_wall(), msg,
                              ename, backend, c->id);
    store_execf(j->st, "UPDATE chunks SET state='cancelled' WHERE job_id=? AND state='queued'", "t", c->id);
    store_commit(j->st);
    pthread_mutex_lock(&j->lock);
    for (int i = 0; i < MAX_WORKERS; i++)
        if (j->live[i].in_use && !strcmp(j->live[i].id, c->id)) j->live[i].abort = 1;
    pthread_mutex_unlock(&j->lock);
    remove_chunk_files(j, c->id, c->idx);
    LOG_W("jobs", "job %s failed: %s", c->id, msg);
    free(msg);
    if (changed == 1) jobs_finished(j, c->id);
}

/* A job none of whose chunks runs or is done is `queued` again (not `running`), with no
 * backend or instance: it waits, visibly. */
static void job_back_to_queue(jobs *j, const char *id)
{
    store_execf(j->st, "UPDATE jobs SET state='queued', backend=NULL, instance_id=NULL WHERE id=?1 "
                "AND state='running' AND NOT EXISTS (SELECT 1 FROM chunks WHERE job_id=?1 AND "
                "state IN ('running','done'))", "t", id);
}

/* Interrupted by shutdown: the chunk runs again at the next start (the run is not counted). */
static void requeue_interrupted(jobs *j, const struct claim *c)
{
    store_execf(j->st, "UPDATE chunks SET state='queued', attempts=max(attempts-1,0) WHERE job_id=? "
                "AND idx=? AND state='running'", "tl", c->id, (long long)c->idx);
    job_back_to_queue(j, c->id);
    LOG_I("jobs", "job %s: chunk %d interrupted by shutdown; it runs again at the next start",
          c->id, c->idx);
}

/* Cancelled by the user, or stopped because another chunk failed. */
static void after_stop(jobs *j, const struct claim *c, const struct outcome *o)
{
    remove_chunk_files(j, c->id, c->idx);
    if (o->user_cancel && !o->others) { /* the last one out removes the job's files */
        char *dir = jobs_dir_for(j, c->id);
        jobs_remove_dir(dir);
        free(dir);
        LOG_I("jobs", "job %s cancelled", c->id);
    }
}

/* ---- runs ----------------------------------------------------------------------------------- */

static void run_local(jobs *j, int slot, engine **eng, struct claim *c)
{
    struct live *lv = claim_live(j, slot, c);
    jobs_publish_state(j, c->id);
    char err[512] = "";
    transcript *t = NULL;
    json_t *oj = json_loads(c->options, 0, NULL);
    engine_opts eo;
    fill_opts(&eo, oj);
    double t0 = now_mono();
    const char *backend = "local";
    const char *ename = NULL;
    struct run_ctx rc = {.j = j, .lv = lv, .last_pub = now_mono()};
    if (j->openai_key && j->openai_url) {
        backend = "openai";
        ename = "openai";
        /* Ogg Opus: a 10-minute chunk is ~1 MB, far below the API's 25 MB cap */
        char *path = chunk_file(j, c, 1, NULL, err, sizeof err);
        if (path) t = openai_transcribe(j->openai_url, j->openai_key, path, &eo, err, sizeof err);
        free(path);
        if (t) on_progress(&rc, 1.0);
    } else if (!*eng) {
        *eng = engine_open(j->engine_name, j->model, err, sizeof err);
        if (*eng) LOG_I("jobs", "engine %s ready (%s) in %.2f s", engine_name(*eng),
                        engine_model(*eng), now_mono() - t0);
    }
    if (!ename && *eng) {
        char *dir = jobs_dir_for(j, c->id);
        char *wav = xasprintf("%s/audio.wav", dir);
        audio_pcm pcm;
        size_t s0 = to_sample(c->start);
        if (wav_read_range(wav, s0, to_sample(c->end) - s0, &pcm, err, sizeof err) == 0) {
            t = engine_transcribe(*eng, pcm.samples, pcm.nsamples, &eo, on_progress, &rc, err,
                                  sizeof err);
            audio_pcm_release(&pcm);
        }
        free(wav);
        free(dir);
    }
    json_decref(oj);
    struct outcome o = release_live(j, lv);
    if (!ename) ename = *eng ? engine_name(*eng) : j->engine_name;
    if (t) {
        chunk_done(j, c, t, backend, ename, 0, -1);
        transcript_free(t);
    } else if (o.user_cancel || o.abort) {
        after_stop(j, c, &o);
    } else if (o.stopping) {
        requeue_interrupted(j, c);
    } else {
        chunk_fail(j, c, err, backend, ename);
    }
}

static void run_remote(jobs *j, int slot, struct claim *c, const char *url, long long row)
{
    struct live *lv = claim_live(j, slot, c);
    store_execf(j->st, "UPDATE chunks SET backend='remote', instance_id=NULLIF(?,0) WHERE job_id=? "
                "AND idx=?", "ltl", row, c->id, (long long)c->idx);
    store_execf(j->st, "UPDATE jobs SET backend='remote', instance_id=NULLIF(?,0) WHERE id=? AND "
                "backend IS NULL", "lt", row, c->id);
    jobs_publish_state(j, c->id);

    char err[512] = "";
    json_t *oj = json_loads(c->options, 0, NULL);
    engine_opts eo;
    fill_opts(&eo, oj);
    char ename[64] = "remote";
    json_t *health = NULL;
    int opus = 0; /* the worker takes Ogg Opus: a tenth of the bytes through the tunnel */
    if (worker_client_health(url, &health, err, sizeof err) == 0) {
        const char *e = json_string_value(json_object_get(health, "engine"));
        if (e) snprintf(ename, sizeof ename, "%s", e);
        opus = worker_client_accepts_opus(health);
    }
    json_decref(health);
    err[0] = 0;
    struct run_ctx rc = {.j = j, .lv = lv, .last_pub = now_mono()};
    double t0 = now_mono();
    gs_err kind = GS_OK;
    transcript *t = NULL;
    char *path = chunk_file(j, c, opus, NULL, err, sizeof err);
    /* the worker's job id: the same for every run of this chunk, so a worker that already
     * has it resumes it instead of running it twice */
    char *rid = c->nchunks > 1 ? xasprintf("%s.%d", c->id, c->idx) : xstrdup(c->id);
    if (path)
        t = worker_client_transcribe_model(url, rid, job_model(oj), path, &eo, on_progress, &rc,
                                           &kind, err, sizeof err);
    else
        kind = GS_E_INTERNAL;
    free(rid);
    free(path);
    double took = now_mono() - t0;
    json_decref(oj);
    struct outcome o = release_live(j, lv);
    if (t) {
        chunk_done(j, c, t, "remote", ename, row, took);
        transcript_free(t);
        LOG_I("jobs", "job %s: chunk %d done on the GPU worker (%s) in %.1f s", c->id, c->idx, ename, took);
    } else if (o.user_cancel || o.abort) {
        after_stop(j, c, &o);
    } else if (o.stopping) {
        requeue_interrupted(j, c);
    } else if (!gs_err_retryable(kind)) {
        /* the worker is fine; the chunk is not for it (refused, or it failed there): fail now,
         * without retries and without blaming the worker or its tunnel */
        if (c->nchunks > 1)
            LOG_W("jobs", "job %s: chunk %d failed on the GPU worker (%s, not retried): %s", c->id,
                  c->idx, gs_err_name(kind), err);
        else
            LOG_W("jobs", "job %s failed on the GPU worker (%s, not retried): %s", c->id,
                  gs_err_name(kind), err);
        chunk_fail(j, c, err, "remote", ename);
    } else {
        if (j->remote.report_failure) j->remote.report_failure(j->remote.ud, row, err);
        /* back to the queue (same worker job id: a worker that has it resumes), bounded */
        int requeued = store_execf(j->st, "UPDATE chunks SET state='queued', error=?, backend=NULL, "
                                   "instance_id=NULL WHERE job_id=? AND idx=? AND state='running' "
                                   "AND attempts<?", "ttll", err, c->id, (long long)c->idx,
                                   (long long)j->max_attempts);
        if (requeued == 1) {
            if (c->nchunks > 1)
                LOG_W("jobs", "job %s: chunk %d: GPU worker failed (%s: %s); queued again", c->id,
                      c->idx, gs_err_name(kind), err);
            else
                LOG_W("jobs", "job %s: GPU worker failed (%s: %s); queued again", c->id,
                      gs_err_name(kind), err);
            store_execf(j->st, "UPDATE jobs SET error=? WHERE id=?", "tt", err, c->id);
            job_back_to_queue(j, c->id);
            jobs_publish_state(j, c->id);
            jobs_wake(j);
            return;
        }
        chunk_fail(j, c, err, "remote", ename);
    }
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void remote_release(jobs *j, long long row)
{
    if (j->has_remote && j->remote.release_worker) j->remote.release_worker(j->remote.ud, row);
}

void *jobs_dispatcher_main(void *arg)
{
    struct thread_arg *ta = arg;
    jobs *j = ta->j;
    int slot = ta->slot;
    free(ta);
    engine *eng = NULL;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        int stopping = j->stopping;
        pthread_mutex_unlock(&j->lock);
        if (stopping) break;
        struct claim c;
        int have = 0;
        char url[256];
        long long row = 0;
        int remote = jobs_remote_ready(j, url, sizeof url, &row, 1);
        /* a ready worker whose slots are all taken is waited for, not bypassed */
        if (remote || (slot < j->concurrency && !j->gpu_only && !jobs_gpu_pending(j) &&
                       !jobs_remote_ready(j, url, sizeof url, &row, 0)))
            have = claim_chunk(j, &c);
        if (have && remote) run_remote(j, slot, &c, url, row);
        if (remote) remote_release(j, row);
        if (have && !remote) run_local(j, slot, &eng, &c);
        if (have) {
            free(c.options);
            continue;
        }
        pthread_mutex_lock(&j->lock);
        if (!j->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 2; /* also re-checks the queue periodically */
            pthread_cond_timedwait(&j->cond, &j->lock, &ts);
        }
        pthread_mutex_unlock(&j->lock);
    }
    engine_close(eng);
    return NULL;
}
