/* speakers.c: the diarization step of a job (after its chunks are stitched, on the thread
 * that stitches: a dispatcher, never a request thread) and speaker renames. The job's
 * options say whether and how ("diarize", "num_speakers", "min_speakers", "max_speakers");
 * the whole job's audio.wav is diarized, so speakers agree across chunks. */
#include "jobs/jobs_int.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/util.h"
#include "diarize/diarize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dprog {
    jobs *j;
    const char *id;
    double last;
};

static int job_still_running(jobs *j, const char *id)
{
    int running = 0;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT state='running' FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) running = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    return running;
}

static int on_progress(void *ud, double f)
{
    struct dprog *p = ud;
    pthread_mutex_lock(&p->j->lock);
    int stop = p->j->stopping;
    pthread_mutex_unlock(&p->j->lock);
    if (stop || !job_still_running(p->j, p->id)) return 1;
    if (f - p->last >= 0.05 || f >= 1) {
        p->last = f;
        events_publish(p->j->bus, "job.diarizing",
                       json_pack("{s:s,s:f}", "id", p->id, "progress", f), 0);
    }
    return 0;
}

static int opt_int(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int)json_integer_value(v) : 0;
}

int jobs_diarize(jobs *j, const char *id, transcript *t, char *note, size_t n)
{
    note[0] = '\0';
    json_t *opts = NULL;
    store_lock(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT options FROM jobs WHERE id=?");
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            opts = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    }
    sqlite3_finalize(st);
    store_unlock(j->st);
    if (!json_is_true(json_object_get(opts, "diarize"))) {
        json_decref(opts);
        return 0;
    }
    diarize_opts o = {opt_int(opts, "num_speakers"), opt_int(opts, "min_speakers"),
                      opt_int(opts, "max_speakers")};
    json_decref(opts);
    char *wav = xasprintf("%s/jobs/%s/audio.wav", j->data_dir, id);
    struct dprog p = {j, id, -1};
    diarize_result r;
    char err[256] = "";
    double t0 = now_mono();
    LOG_I("jobs", "job %s: diarizing (%s diarizer)", id, diarize_cpu.name);
    on_progress(&p, 0);
    int rc;
    if (fault_armed("diarize_fail")) { /* tests: the diarizer fails */
        memset(&r, 0, sizeof r);
        snprintf(err, sizeof err, "injected failure (GS_FAULT=diarize_fail)");
        rc = DIARIZE_FAILED;
    } else {
        rc = diarize_cpu.run(wav, &o, on_progress, &p, &r, err, sizeof err);
    }
    free(wav);
    if (rc == DIARIZE_STOPPED) {
        LOG_I("jobs", "job %s: diarization stopped", id);
        return 1;
    }
    if (rc != DIARIZE_OK) { /* the transcript is kept, without speakers */
        snprintf(note, n, "speaker diarization failed: %s", err);
        LOG_W("jobs", "job %s: %s", id, note);
        return 0;
    }
    transcript_turn *turns = xmalloc((r.n_turns + 1) * sizeof *turns);
    for (size_t i = 0; i < r.n_turns; i++)
        turns[i] = (transcript_turn){r.turns[i].start, r.turns[i].end, r.turns[i].speaker};
    transcript_assign_speakers(t, turns, r.n_turns, r.n_speakers);
    free(turns);
    LOG_I("jobs", "job %s: %d speaker(s), %zu turns, diarized in %.1f s", id, r.n_speakers,
          r.n_turns, now_mono() - t0);
    diarize_result_release(&r);
    return 0;
}

int jobs_rename_speakers(jobs *j, const char *id, json_t *names, char *err, size_t errlen)
{
    int status = 200;
    store_begin(j->st);
    sqlite3_stmt *st = jobs_prep(j, "SELECT state, transcript FROM jobs WHERE id=?");
    transcript *t = NULL;
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_ROW) {
            status = 404;
            snprintf(err, errlen, "no such job: %s", id);
        } else {
            const char *state = (const char *)sqlite3_column_text(st, 0);
            const char *js = (const char *)sqlite3_column_text(st, 1);
            if (!state || strcmp(state, "done") != 0 || !js) {
                status = 409;
                snprintf(err, errlen, "job %s has no transcript: it is %s", id, state ? state : "?");
            } else if (!(t = transcript_from_json_store(js, err, errlen))) {
                status = 500;
            }
        }
    } else {
        status = 500;
        snprintf(err, errlen, "database error");
    }
    sqlite3_finalize(st);
    if (status == 200 && t->n_speakers == 0) {
        status = 409;
        snprintf(err, errlen, "job %s has no speakers (submit it with diarize=true)", id);
    }
    const char *key;
    json_t *v;
    if (status == 200) json_object_foreach(names, key, v) {
        long k;
        if (parse_long(key, &k) != 0 || k < 1 || (size_t)k > t->n_speakers) {
            status = 400;
            snprintf(err, errlen, "unknown speaker id '%.32s' (the speakers are 1 to %zu)", key,
                     t->n_speakers);
            break;
        }
        const char *name = json_is_string(v) ? json_string_value(v) : NULL;
        if (!(json_is_null(v) || (name && strlen(name) <= 64))) {
            status = 400;
            snprintf(err, errlen, "speaker %ld: a name is a string of at most 64 bytes, or null", k);
            break;
        }
        for (const char *c = name; c && *c; c++)
            if ((unsigned char)*c < 0x20) {
                status = 400;
                snprintf(err, errlen, "speaker %ld: a name has no control characters", k);
                break;
            }
        if (status != 200) break;
        transcript_set_speaker_name(t, (int)k - 1, name);
    }
    if (status == 200) {
        char *js = transcript_to_json_store(t);
        if (store_execf(j->st, "UPDATE jobs SET transcript=? WHERE id=? AND state='done'", "tt",
                        js, id) != 1) {
            status = 500;
            snprintf(err, errlen, "cannot store the names");
        }
        free(js);
    }
    if (status == 200) store_commit(j->st);
    else store_rollback(j->st);
    transcript_free(t);
    return status;
}
