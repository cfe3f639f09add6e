/* jobs_int.h: what jobs.c (the public face: submit, views, cancel, waiters, lifecycle),
 * prepare.c (decode and cut, in the background) and dispatch.c (chunks on workers and
 * engines) share. Not for other modules. The jobs and chunks tables are this module's. */
#ifndef GS_JOBS_INT_H
#define GS_JOBS_INT_H

#include "jobs/jobs.h"
#include "core/events.h"
#include "store/store.h"

#include <pthread.h>
#include <stdatomic.h>

#define MAX_WORKERS 16
#define PREP_THREADS 2

struct waiter {
    char *id;
    void (*cb)(void *ud);
    void *ud;
    struct waiter *next;
};

struct live {               /* a chunk being run by a dispatcher thread */
    char id[40];
    int chunk;
    double dur;             /* the chunk's seconds */
    double progress;        /* of the chunk, 0..1 */
    int cancel;             /* the user cancelled the job */
    int abort;              /* another chunk of the job failed: stop, record nothing */
    int in_use;
};

struct prep {               /* a job being prepared */
    char id[40];
    atomic_int cancel;      /* the user cancelled it, or the server stops */
    double progress;        /* of the decode, 0..1 */
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
    double chunk_s, max_audio_s;
    pthread_mutex_t lock;   /* guards live[], prep[], waiters, stopping */
    pthread_cond_t cond;    /* dispatchers: a chunk may be ready */
    pthread_cond_t prep_cond; /* preparers: a job may need preparing */
    int stopping;
    int started, prep_started;
    pthread_t threads[MAX_WORKERS];
    pthread_t prep_threads[PREP_THREADS];
    struct live live[MAX_WORKERS];
    struct prep prep[PREP_THREADS];
    struct waiter *waiters;
};

/* jobs.c */
sqlite3_stmt *jobs_prep(jobs *j, const char *sql);
void jobs_publish_state(jobs *j, const char *id);
void jobs_finished(jobs *j, const char *id);      /* publish + fire waiters */
void jobs_remove_dir(const char *dir);
void jobs_wake(jobs *j);                          /* dispatchers */
/* The job's progress: done chunks' audio plus live chunks' share, over the total. Caller
 * holds j->lock and the store lock. */
double jobs_progress_locked(jobs *j, const char *id, double stored);

int jobs_remote_ready(jobs *j, char *url, size_t n, long long *row, int reserve);
int jobs_gpu_pending(jobs *j);

/* prepare.c */
void jobs_sweep(jobs *j); /* at start: leftovers of a killed controller */
void *jobs_prepare_main(void *arg);

/* dispatch.c */
void *jobs_dispatcher_main(void *arg);
/* Every chunk of running job id is done: stitch its transcript, and the job is done. */
void jobs_stitch(jobs *j, const char *id, double total);
struct thread_arg { jobs *j; int slot; };

/* speakers.c: diarize the stitched transcript t of job id when its options ask for it
 * ("diarize": true), publishing job.diarizing events. 0: store t (note holds a sentence
 * when diarizing failed: t is then as it was); 1: stopped (the server stops or the job was
 * cancelled): store nothing (a restart stitches the job again). */
int jobs_diarize(jobs *j, const char *id, transcript *t, char *note, size_t n);

#endif
