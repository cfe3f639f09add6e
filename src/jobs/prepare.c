/* prepare.c: a job's preparation, off every request thread: its upload is decoded to the
 * 16 kHz mono audio.wav (bounded by MAX_AUDIO_HOURS, interruptible), cut at pauses into
 * chunks (audio/cuts), and the chunks are stored with the job moving from `preparing` to
 * `queued` in one transaction; audio that turns out bad fails the job with error_kind
 * 'audio' before any GPU time is spent. PREP_THREADS threads take the oldest preparing jobs
 * from the store, so a job acknowledged while preparing survives a restart and is prepared
 * again. Also the start-up sweep of what a killed controller left behind. */
#include "jobs/jobs_int.h"
#include "audio/admit.h"
#include "audio/audio.h"
#include "audio/cuts.h"
#include "core/events.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CUT_SEARCH_S 30.0

struct prep_ctx { jobs *j; struct prep *p; double last_pub; };

static void on_decode_progress(void *ud, double f)
{
    struct prep_ctx *c = ud;
    pthread_mutex_lock(&c->j->lock);
    c->p->progress = f;
    pthread_mutex_unlock(&c->j->lock);
    double now = now_mono();
    if (now - c->last_pub >= 0.5) {
        c->last_pub = now;
        events_publish(c->j->bus, "job.preparing",
                       json_pack("{s:s,s:f}", "id", c->p->id, "progress", f), 0);
    }
}

static void fail_job(jobs *j, const char *id, const char *kind, const char *msg)
{
    store_execf(j->st, "UPDATE jobs SET state='failed', finished_at=?, error=?, error_kind=? "
                "WHERE id=? AND state='preparing'", "dttt", now_wall(), msg, kind, id);
    LOG_W("jobs", "job %s cannot be prepared: %s", id, msg);
}

/* Decode, cut, store. Returns 1 when the job moved on (queued or failed), 0 when it was
 * interrupted (cancelled or stopping). */
static int prepare(jobs *j, struct prep *p, const char *id)
{
    char *dir = jobs_dir_for(j, id);
    char *upload = xasprintf("%s/upload", dir);
    char *wav = xasprintf("%s/audio.wav", dir);
    char *fname = NULL;
    sqlite3_stmt *st;
    store_lock(j->st);
    st = jobs_prep(j, "SELECT filename FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            fname = xstrdup(sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    char err[512] = "";
    double t0 = now_mono(), dur = 0;
    struct prep_ctx c = {j, p, 0};
    audio_decode_ctl ctl = {&p->cancel, on_decode_progress, &c};
    int moved = 1;
    int rc = audio_decode_to_wav_ctl(upload, wav, j->max_audio_s, &ctl, &dur, err, sizeof err);
    if (rc != 0 && atomic_load(&p->cancel)) {
        moved = 0;
        goto out;
    }
    if (rc != 0) {
        /* the file's fault (400, 413) or the server's (500, 507): the same statuses an upload
         * gets from its headers (audio/admit.h) */
        int status = audio_admit_decode_status(rc, j->max_audio_s, err, sizeof err);
        const char *kind = status == AUDIO_ADMIT_BAD        ? "audio"
                           : status == AUDIO_ADMIT_TOO_LONG ? "too_long"
                           : status == AUDIO_ADMIT_NO_SPACE ? "space"
                                                            : "server";
        char *m = status == AUDIO_ADMIT_BAD
                      ? xasprintf("invalid audio file '%s': %s", fname ? fname : "upload", err)
                      : xasprintf("cannot prepare the audio: %s", err);
        fail_job(j, id, kind, m);
        free(m);
        goto out;
    }
    if (dur < 0.01) {
        char *m = xasprintf("invalid audio file '%s': no audio could be decoded", fname ? fname : "upload");
        fail_job(j, id, "audio", m);
        free(m);
        unlink(wav);
        goto out;
    }
    size_t *b = NULL, nb = 0;
    if (audio_find_cuts(wav, j->chunk_s, CUT_SEARCH_S, &b, &nb, &p->cancel, err, sizeof err) != 0) {
        if (atomic_load(&p->cancel)) {
            moved = 0;
            goto out;
        }
        char *m = xasprintf("cannot cut the audio into chunks: %s", err);
        fail_job(j, id, "server", m);
        free(m);
        goto out;
    }
    store_begin(j->st);
    int ok = store_execf(j->st, "UPDATE jobs SET state='queued', audio_duration=?, progress=0 "
                         "WHERE id=? AND state='preparing'", "dt", dur, id) == 1;
    for (size_t i = 0; ok && i + 1 < nb; i++)
        ok = store_execf(j->st, "INSERT OR REPLACE INTO chunks(job_id, idx, start_s, end_s, state) "
                         "VALUES(?,?,?,?,'queued')", "tldd", id, (long long)i,
                         (double)b[i] / AUDIO_RATE, (double)b[i + 1] / AUDIO_RATE) == 1;
    if (ok) store_commit(j->st);
    else store_rollback(j->st);
    free(b);
    if (!ok) { /* cancelled meanwhile (or the store failed: it stays preparing) */
        moved = atomic_load(&p->cancel) ? 0 : 1;
        goto out;
    }
    LOG_I("jobs", "job %s prepared: %.1f s of audio in %zu chunk(s), in %.2f s", id, dur, nb - 1,
          now_mono() - t0);
    jobs_wake(j);
out:
    free(fname);
    free(upload);
    free(wav);
    free(dir);
    return moved;
}

/* The oldest preparing job nobody prepares now (caller holds j->lock): copied into id. */
static int next_job(jobs *j, char *id, size_t n)
{
    int found = 0;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT id FROM jobs WHERE state='preparing' "
                                    "ORDER BY created_at, rowid LIMIT ?");
    if (st) {
        sqlite3_bind_int(st, 1, PREP_THREADS + 1);
        while (!found && sqlite3_step(st) == SQLITE_ROW) {
            const char *cand = (const char *)sqlite3_column_text(st, 0);
            int taken = 0;
            for (int i = 0; i < PREP_THREADS; i++)
                taken |= j->prep[i].in_use && !strcmp(j->prep[i].id, cand);
            if (!taken) {
                snprintf(id, n, "%s", cand);
                found = 1;
            }
        }
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return found;
}

void *jobs_prepare_main(void *arg)
{
    struct thread_arg *ta = arg;
    jobs *j = ta->j;
    struct prep *p = &j->prep[ta->slot];
    free(ta);
    pthread_mutex_lock(&j->lock);
    while (!j->stopping) {
        char id[40];
        if (!next_job(j, id, sizeof id)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 5;
            pthread_cond_timedwait(&j->prep_cond, &j->lock, &ts);
            continue;
        }
        snprintf(p->id, sizeof p->id, "%s", id);
        p->progress = 0;
        atomic_store(&p->cancel, 0);
        p->in_use = 1;
        pthread_mutex_unlock(&j->lock);
        int moved = prepare(j, p, id);
        pthread_mutex_lock(&j->lock);
        p->in_use = 0;
        int stopping = j->stopping;
        pthread_mutex_unlock(&j->lock);
        if (!moved && !stopping) { /* cancelled by the user: its files go */
            char *dir = jobs_dir_for(j, id);
            jobs_remove_dir(dir);
            free(dir);
        }
        if (moved) jobs_publish_state(j, id);
        char *state = NULL;
        if (moved) {
            store_lock(j->st);
            sqlite3_stmt *st = jobs_prep(j, "SELECT state FROM jobs WHERE id=?");
            if (st) {
                sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) == SQLITE_ROW)
                    state = xstrdup((const char *)sqlite3_column_text(st, 0));
            }
            sqlite3_finalize(st);
            store_unlock(j->st);
        }
        if (state && !strcmp(state, "failed")) jobs_finished(j, id);
        free(state);
        pthread_mutex_lock(&j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* ---- the start-up sweep ---------------------------------------------------------------------- */

static int job_known(jobs *j, const char *id)
{
    int known = 0;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT 1 FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        known = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return known;
}

void jobs_sweep(jobs *j)
{
    char *root = xasprintf("%s/jobs", j->data_dir);
    DIR *d = opendir(root);
    int dirs = 0, files = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *dir = xasprintf("%s/%s", root, e->d_name);
        struct stat sb;
        if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(dir);
            continue;
        }
        if (!job_known(j, e->d_name)) { /* an upload the controller died receiving */
            jobs_remove_dir(dir);
            dirs++;
        } else {
            DIR *jd = opendir(dir);
            struct dirent *f;
            while (jd && (f = readdir(jd))) {
                /* half-written files (name.tmp.PID) and chunk files made for a run */
                if (strstr(f->d_name, ".tmp.") || str_starts(f->d_name, "chunk-")) {
                    char *p = xasprintf("%s/%s", dir, f->d_name);
                    if (unlink(p) == 0) files++;
                    free(p);
                }
            }
            if (jd) closedir(jd);
        }
        free(dir);
    }
    if (d) closedir(d);
    free(root);
    if (dirs || files)
        LOG_I("jobs", "swept what a stopped controller left: %d upload director%s, %d file(s)",
              dirs, dirs == 1 ? "y" : "ies", files);
}
