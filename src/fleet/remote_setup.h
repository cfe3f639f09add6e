/* remote_setup: the protocol between the controller and remote/setup.sh on an instance,
 * over the instance's SSH session. Everything lives in REMOTE_DIR (/workspace/gpuscribe):
 *
 * - Uploads: setup.sh and worker.env (the worker's settings: ENGINE, WHISPER_MODEL,
 *   MODELS_PRELOAD, VAD, HF_TOKEN, LOG_LEVEL, DEADMAN_MINUTES, VAST_URL, WORKER_SLOTS, one
 *   KEY=VALUE line each, quoted as config.c's .env reader expects), and, unless the
 *   instance's .worker-source already names our source id, the source bundle (src.tar.gz)
 *   and our own build of the worker (gpuscribe-worker.prebuilt) when we have one.
 * - `sh setup.sh --bg --engine E --model M --port P --src-id ID` starts the setup detached
 *   (a controller killed mid-setup finds it finished or still running); `sh setup.sh --poll
 *   OFFSET` answers a first line "GPUSCRIBE-STATUS running|done <rc>|none" and then the
 *   run's output from byte OFFSET. Output lines "GPUSCRIBE-PROGRESS <pct> <stage>" move the
 *   installing percent (60-90, never backwards), "GPUSCRIBE-ERROR <text>" is the reason
 *   given when the run fails; every line goes to the instance's setup log.
 * - `sh setup.sh --start-worker <same args> --wait 30` (re)starts the worker and waits for
 *   it to answer.
 * - Environment passed through for tests: GS_SETUP_DELAY, GS_SETUP_FAIL.
 *
 * The helpers below are pure or touch only local files and are thread-safe; the step
 * functions are the fleet's (internal, fleet_int.h) and run on an instance's thread.
 */
#ifndef GS_REMOTE_SETUP_H
#define GS_REMOTE_SETUP_H

#include <stddef.h>

/* Parse "GPUSCRIBE-PROGRESS <pct> <stage>": 1 with *pct and stage filled, 0 otherwise. */
int fleet_parse_progress(const char *line, int *pct, char *stage, size_t stagelen);
/* Parse "GPUSCRIBE-STEP <name> <seconds>" (setup.sh's timed install steps: packages, build,
 * worker, models): 1 with name and *seconds filled, 0 otherwise (name: 1-31 characters of
 * [A-Za-z0-9_.-]; seconds: a finite number >= 0). */
int fleet_parse_step(const char *line, char *name, size_t namelen, double *seconds);
/* One KEY=VALUE line for the worker's env file, quoted as config.c's .env reader expects
 * (double quotes with \" \\ \n escapes when needed). Caller frees. */
char *fleet_env_line(const char *key, const char *value);
/* What an instance's worker is made from: the source bundle `make` writes
 * (gpuscribe-src.tar.gz, exactly what `make worker` needs), its sha256 (gpuscribe-src.id,
 * which names the source; an instance's worker is stamped with it) and, when there, our own
 * build of the worker (gpuscribe-worker; setup.sh uses it where it runs). Looked for beside
 * exe, in its parent, in srcdir/build and in /usr/share/gpuscribe. 0, or -1 with err. */
typedef struct fleet_payload {
    char *bundle, *src_id, *worker;   /* heap; worker may be NULL */
} fleet_payload;
int fleet_find_worker_payload(const char *exe, const char *srcdir, fleet_payload *out, char *err,
                              size_t errlen);
void fleet_payload_release(fleet_payload *p);

/* ---- the fleet's steps (src/fleet only) */

struct inst;
struct row;

/* The installing state: follow a setup run already going, or upload and start one, then
 * follow it to its end: starting_worker on success; failed when it fails, dies or cannot be
 * prepared; a broken SSH session counts an attempt (MAX_ATTEMPTS) and the state stays
 * installing for the next try. */
void rsetup_step_install(struct inst *in, struct row *r);
/* Run setup.sh --start-worker on in->ssh (its lines go to the setup log, persisted). 0 the
 * worker answers; -1 otherwise, with why: the SSH error, setup's last GPUSCRIBE-ERROR, or
 * "setup.sh --start-worker failed". */
int rsetup_start_worker(struct inst *in, char *why, size_t whylen);

#endif
