#include "store/store.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct store {
    sqlite3 *db;
    pthread_mutex_t lock;
    long long events_keep;  /* newest events rows kept (STORE_EVENTS_KEEP) */
    int events_every;       /* prune once per this many inserts (STORE_EVENTS_PRUNE_EVERY) */
    int tx_depth;           /* store_begin nesting, under lock */
    /* prepared statements, kept by their SQL text (under lock): see store_stmt */
    struct cached_stmt {
        char *sql;
        sqlite3_stmt *st;
        bool busy;
    } cache[STORE_STMT_CACHE];
    int ncache;
    unsigned long long prepares; /* sqlite3_prepare_v2 calls (tests look) */
};

/* Migrations: append only; migration N brings user_version from N-1 to N. */
static const char *migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE instances ("
    "  id INTEGER PRIMARY KEY,"            /* our row id */
    "  vast_id TEXT UNIQUE,"                /* Vast's instance id, once created */
    "  offer_id INTEGER,"
    "  idem_key TEXT UNIQUE,"               /* one rental per idempotency key */
    "  state TEXT NOT NULL,"                /* requested|creating|loading|ssh_wait|installing|"
                                            "  starting_worker|ready|failed|destroying|destroyed */
    "  stage TEXT NOT NULL DEFAULT '',"
    "  percent INTEGER NOT NULL DEFAULT 0,"
    "  label TEXT,"
    "  gpu_name TEXT, num_gpus INTEGER, gpu_ram_gb REAL,"
    "  dph_total REAL, dph_base REAL, storage_dph REAL,"
    "  ssh_host TEXT, ssh_port INTEGER, host_key TEXT,"
    "  worker_port INTEGER,"
    "  error TEXT,"
    "  created_at REAL NOT NULL, updated_at REAL NOT NULL,"
    "  running_at REAL, ready_at REAL, destroyed_at REAL,"
    "  last_busy_at REAL"
    ");"
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"                /* queued|running|done|failed|cancelled */
    "  created_at REAL NOT NULL, started_at REAL, finished_at REAL,"
    "  filename TEXT, upload_path TEXT, size_bytes INTEGER,"
    "  audio_duration REAL,"
    "  options TEXT NOT NULL DEFAULT '{}',"  /* JSON: language, model, format, prompt, ... */
    "  progress REAL NOT NULL DEFAULT 0,"
    "  engine TEXT, backend TEXT, instance_id INTEGER REFERENCES instances(id),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  transcript TEXT,"                     /* JSON (transcript store format) */
    "  cost_usd REAL"
    ");"
    "CREATE INDEX jobs_state ON jobs(state, created_at);"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ts REAL NOT NULL, kind TEXT NOT NULL, subject TEXT, data TEXT"
    ");"
    "CREATE TABLE ledger ("
    "  id INTEGER PRIMARY KEY,"
    "  instance_id INTEGER NOT NULL REFERENCES instances(id),"
    "  kind TEXT NOT NULL,"                  /* gpu|storage */
    "  rate_per_hour REAL NOT NULL,"
    "  start_ts REAL NOT NULL, end_ts REAL"  /* end NULL = still accruing */
    ");"
    "CREATE INDEX ledger_instance ON ledger(instance_id);",
    /* 2: provisioning and cost safety */
    "ALTER TABLE instances ADD COLUMN instance_api_key TEXT;"  /* Vast's per-instance key (dead-man switch) */
    "ALTER TABLE instances ADD COLUMN ssh_key_id INTEGER;"     /* our account key id on Vast */
    "ALTER TABLE instances ADD COLUMN setup_log TEXT;"         /* recent setup lines, newline-separated */
    "ALTER TABLE instances ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE instances ADD COLUMN deadline_at REAL;"       /* give up on the current stage after */
    "ALTER TABLE instances ADD COLUMN keepalive_until REAL;"   /* idle destroy postponed until */
    "ALTER TABLE instances ADD COLUMN warned_at REAL;"         /* destroy warning sent */
    "ALTER TABLE instances ADD COLUMN destroy_reason TEXT;"    /* user|idle|hard_cap|budget|orphan|failed|gone */
    "ALTER TABLE jobs ADD COLUMN gpu_seconds REAL;"             /* time the job held a GPU worker */
    "ALTER TABLE jobs ADD COLUMN remote_job_id TEXT;",
    /* 3: cost safety: when the controller last heard from the instance's worker (dead-man
     * estimate), and a fast lookup of open ledger intervals */
    "ALTER TABLE instances ADD COLUMN seen_at REAL;"
    "CREATE INDEX ledger_open ON ledger(end_ts) WHERE end_ts IS NULL;",
    /* 4: metrics (GET /metrics): totals that only grow, kept by triggers, so deleting a
     * finished job never takes its audio or GPU time out of the counters. job_totals: done
     * jobs by engine and backend; job_counters: 'retries' (runs beyond each job's first:
     * a claim of a job that had run before). Seeded from the jobs there are. */
    "CREATE TABLE job_totals ("
    "  engine TEXT NOT NULL, backend TEXT NOT NULL,"
    "  jobs INTEGER NOT NULL DEFAULT 0, audio_s REAL NOT NULL DEFAULT 0,"
    "  gpu_s REAL NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (engine, backend)"
    ");"
    "CREATE TABLE job_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0);"
    "INSERT INTO job_totals SELECT coalesce(engine,''), coalesce(backend,''), count(*),"
    "  coalesce(sum(audio_duration),0), coalesce(sum(gpu_seconds),0) FROM jobs"
    "  WHERE state='done' GROUP BY 1, 2;"
    "INSERT INTO job_counters VALUES ('retries',"
    "  (SELECT coalesce(sum(max(attempts-1,0)),0) FROM jobs));"
    "CREATE TRIGGER job_totals_done AFTER UPDATE OF state ON jobs"
    "  WHEN NEW.state='done' AND OLD.state IS NOT 'done' BEGIN"
    "  INSERT OR IGNORE INTO job_totals(engine, backend)"
    "    VALUES (coalesce(NEW.engine,''), coalesce(NEW.backend,''));"
    "  UPDATE job_totals SET jobs=jobs+1, audio_s=audio_s+coalesce(NEW.audio_duration,0),"
    "    gpu_s=gpu_s+coalesce(NEW.gpu_seconds,0)"
    "    WHERE engine=coalesce(NEW.engine,'') AND backend=coalesce(NEW.backend,'');"
    "  END;"
    "CREATE TRIGGER job_counters_retry AFTER UPDATE OF attempts ON jobs"
    "  WHEN NEW.attempts > OLD.attempts AND OLD.attempts >= 1 BEGIN"
    "  UPDATE job_counters SET value=value+NEW.attempts-OLD.attempts WHERE name='retries';"
    "  END;",
    /* 5: long audio: a job is prepared (decoded, cut at pauses) in the background, then
     * runs as chunks, each with its own state, attempts, backend and timing; retries are
     * counted per chunk. Jobs queued or running before this migration become one chunk. */
    "CREATE TABLE chunks ("
    "  job_id TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  start_s REAL NOT NULL, end_s REAL NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'queued',"  /* queued|running|done|failed|cancelled */
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  backend TEXT, engine TEXT, instance_id INTEGER,"
    "  started_at REAL, finished_at REAL, gpu_seconds REAL,"
    "  error TEXT, transcript TEXT,"
    "  cost_usd REAL,"                         /* its share of its instance's cost */
    "  PRIMARY KEY (job_id, idx)"
    ");"
    "CREATE INDEX chunks_state ON chunks(state);"
    "ALTER TABLE jobs ADD COLUMN error_kind TEXT;"      /* 'audio': the upload was bad audio */
    "INSERT INTO chunks(job_id, idx, start_s, end_s, state, attempts)"
    "  SELECT id, 0, 0, coalesce(audio_duration,0), 'queued', attempts FROM jobs"
    "  WHERE state IN ('queued','running');"
    "INSERT INTO chunks(job_id, idx, start_s, end_s, state, attempts, backend, engine,"
    "  instance_id, started_at, finished_at, gpu_seconds, cost_usd)"
    "  SELECT id, 0, 0, coalesce(audio_duration,0), 'done', attempts, backend, engine,"
    "  instance_id, started_at, finished_at, gpu_seconds, cost_usd FROM jobs"
    "  WHERE state='done' AND instance_id IS NOT NULL;"
    "CREATE INDEX chunks_instance ON chunks(instance_id) WHERE instance_id IS NOT NULL;"
    "DROP TRIGGER job_counters_retry;"
    "CREATE TRIGGER chunk_counters_retry AFTER UPDATE OF attempts ON chunks"
    "  WHEN NEW.attempts > OLD.attempts AND OLD.attempts >= 1 BEGIN"
    "  UPDATE job_counters SET value=value+NEW.attempts-OLD.attempts WHERE name='retries';"
    "  END;",
    /* 6: the fleet. Each instance's host (machine_id), so a host whose instance failed or
     * vanished is remembered (bad_hosts, kept by a trigger: fleet/hosts.h); and the speed
     * each GPU model and engine was measured at (gpu_speeds: audio and busy seconds of the
     * chunks done on it, kept by a trigger, so deleting a job keeps what it taught:
     * fleet/speed.h). */
    "ALTER TABLE instances ADD COLUMN machine_id INTEGER;"
    "CREATE TABLE bad_hosts ("
    "  machine_id INTEGER PRIMARY KEY,"
    "  reason TEXT NOT NULL,"
    "  vast_id TEXT,"
    "  marked_at REAL NOT NULL"
    ");"
    "CREATE TRIGGER bad_host_failed AFTER UPDATE OF state ON instances"
    "  WHEN NEW.machine_id IS NOT NULL AND NEW.vast_id IS NOT NULL AND NEW.state IS NOT OLD.state"
    "  AND (NEW.state='failed' OR (NEW.state='destroyed' AND NEW.destroy_reason='gone')) BEGIN"
    "  INSERT OR REPLACE INTO bad_hosts(machine_id, reason, vast_id, marked_at) VALUES ("
    "    NEW.machine_id, CASE WHEN NEW.state='failed'"
    "    THEN 'instance ' || NEW.vast_id || ' failed: ' || coalesce(NEW.error, NEW.stage, '?')"
    "    ELSE 'instance ' || NEW.vast_id || ' vanished from Vast.ai' END,"
    "    NEW.vast_id, coalesce(NEW.updated_at, (julianday('now')-2440587.5)*86400));"
    "  END;"
    "CREATE TABLE gpu_speeds ("
    "  gpu_name TEXT NOT NULL, engine TEXT NOT NULL,"
    "  audio_s REAL NOT NULL DEFAULT 0, busy_s REAL NOT NULL DEFAULT 0,"
    "  chunks INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (gpu_name, engine)"
    ");"
    "CREATE TRIGGER gpu_speed_chunk AFTER UPDATE OF state ON chunks"
    "  WHEN NEW.state='done' AND OLD.state IS NOT 'done' AND NEW.backend='remote'"
    "  AND NEW.instance_id IS NOT NULL AND coalesce(NEW.gpu_seconds,0) > 0"
    "  AND (SELECT gpu_name FROM instances WHERE id=NEW.instance_id) IS NOT NULL BEGIN"
    "  INSERT OR IGNORE INTO gpu_speeds(gpu_name, engine) SELECT gpu_name,"
    "    coalesce(NEW.engine,'') FROM instances WHERE id=NEW.instance_id;"
    "  UPDATE gpu_speeds SET audio_s=audio_s+(NEW.end_s-NEW.start_s),"
    "    busy_s=busy_s+NEW.gpu_seconds, chunks=chunks+1"
    "    WHERE gpu_name=(SELECT gpu_name FROM instances WHERE id=NEW.instance_id)"
    "    AND engine=coalesce(NEW.engine,'');"
    "  END;",
    /* 7: speakers (issue 16): why diarizing a done job failed (its transcript has no speakers) */
    "ALTER TABLE jobs ADD COLUMN speakers_error TEXT;",
};

static int run_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int user_version(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    int v = user_version(db);
    int n = (int)ARRAY_LEN(migrations);
    if (v < 0) { snprintf(err, errlen, "cannot read schema version"); return -1; }
    if (v > n) {
        snprintf(err, errlen, "database schema version %d is newer than this program (%d)", v, n);
        return -1;
    }
    for (int i = v; i < n; i++) {
        char sql[64];
        if (run_sql(db, "BEGIN IMMEDIATE", err, errlen) != 0) return -1;
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", i + 1);
        if (run_sql(db, migrations[i], err, errlen) != 0 || run_sql(db, sql, err, errlen) != 0) {
            char e2[16];
            run_sql(db, "ROLLBACK", e2, sizeof e2);
            return -1;
        }
        if (run_sql(db, "COMMIT", err, errlen) != 0) return -1;
    }
    return 0;
}

static void events_prune(store *s, long long last_id);

store *store_open(const char *data_dir, char *err, size_t errlen)
{
    if (mkdir_p(data_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create data directory '%s': %s", data_dir, strerror(errno));
        return NULL;
    }
    char *path = xasprintf("%s/gpuscribe.db", data_dir);
    store *s = xcalloc(1, sizeof *s);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database '%s': %s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    chmod(path, 0600);
    sqlite3_busy_timeout(s->db, 5000);
    if (run_sql(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                       "PRAGMA foreign_keys=ON;", err, errlen) != 0)
        goto fail;
    if (migrate(s->db, err, errlen) != 0) goto fail;
    s->events_keep = STORE_EVENTS_KEEP;
    s->events_every = STORE_EVENTS_PRUNE_EVERY;
    events_prune(s, -1); /* a database from before the bound, or one that grew past it */
    free(path);
    return s;
fail:
    free(path);
    store_close(s);
    return NULL;
}

void store_close(store *s)
{
    if (!s) return;
    for (int i = 0; i < s->ncache; i++) {
        sqlite3_finalize(s->cache[i].st);
        free(s->cache[i].sql);
    }
    if (s->db) sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

sqlite3 *store_db(store *s) { return s->db; }
int store_schema_version(store *s) { return user_version(s->db); }
void store_lock(store *s) { pthread_mutex_lock(&s->lock); }
void store_unlock(store *s) { pthread_mutex_unlock(&s->lock); }

/* Lock held: "VERB" (sp < 0) or "VERB spN". */
static int tx_sql(store *s, const char *verb, int sp)
{
    char sql[64], err[256];
    if (sp < 0) snprintf(sql, sizeof sql, "%s", verb);
    else snprintf(sql, sizeof sql, "%s sp%d", verb, sp);
    if (run_sql(s->db, sql, err, sizeof err) == 0) return 0;
    LOG_E("store", "database error: %s (in: %s)", err, sql);
    return -1;
}

/* Lock held: undo the innermost level d (0: the whole transaction). */
static void tx_undo(store *s, int d)
{
    if (d == 0) {
        if (!sqlite3_get_autocommit(s->db)) tx_sql(s, "ROLLBACK", -1);
    } else if (tx_sql(s, "ROLLBACK TO", d) == 0) {
        tx_sql(s, "RELEASE", d);
    }
}

int store_begin(store *s)
{
    store_lock(s);
    int d = s->tx_depth;
    if (tx_sql(s, d == 0 ? "BEGIN IMMEDIATE" : "SAVEPOINT", d == 0 ? -1 : d) != 0) {
        store_unlock(s);
        return -1;
    }
    s->tx_depth = d + 1;
    return 0;
}

int store_commit(store *s)
{
    int d = --s->tx_depth;
    int rc = tx_sql(s, d == 0 ? "COMMIT" : "RELEASE", d == 0 ? -1 : d);
    if (rc != 0) tx_undo(s, d);
    store_unlock(s);
    return rc;
}

void store_rollback(store *s)
{
    tx_undo(s, --s->tx_depth);
    store_unlock(s);
}

int store_exec(store *s, const char *sql, char *err, size_t errlen)
{
    store_lock(s);
    int rc = run_sql(s->db, sql, err, errlen);
    store_unlock(s);
    return rc;
}

sqlite3_stmt *store_stmt(store *s, const char *sql)
{
    for (int i = 0; i < s->ncache; i++) {
        struct cached_stmt *c = &s->cache[i];
        if (strcmp(c->sql, sql) != 0) continue;
        if (c->busy) break; /* in use further up this thread's stack: a fresh one */
        c->busy = true;
        return c->st;
    }
    sqlite3_stmt *st = NULL;
    s->prepares++;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    bool known = false;
    for (int i = 0; i < s->ncache; i++) known |= strcmp(s->cache[i].sql, sql) == 0;
    if (!known && s->ncache < STORE_STMT_CACHE) {
        s->cache[s->ncache++] = (struct cached_stmt){xstrdup(sql), st, true};
    }
    return st;
}

void store_stmt_done(store *s, sqlite3_stmt *st)
{
    if (!st) return;
    for (int i = 0; i < s->ncache; i++) {
        if (s->cache[i].st != st) continue;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        s->cache[i].busy = false;
        return;
    }
    sqlite3_finalize(st); /* not cached: a fresh one */
}

unsigned long long store_prepares(store *s)
{
    store_lock(s);
    unsigned long long n = s->prepares;
    store_unlock(s);
    return n;
}

void store_bind(sqlite3_stmt *st, const char *fmt, va_list ap)
{
    for (int i = 0; fmt[i]; i++) {
        switch (fmt[i]) {
        case 't': {
            const char *x = va_arg(ap, const char *);
            if (x) sqlite3_bind_text(st, i + 1, x, -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(st, i + 1);
            break;
        }
        case 'l': sqlite3_bind_int64(st, i + 1, va_arg(ap, long long)); break;
        case 'i': sqlite3_bind_int(st, i + 1, va_arg(ap, int)); break;
        case 'd': sqlite3_bind_double(st, i + 1, va_arg(ap, double)); break;
        default: LOG_E("store", "BUG: bad parameter letter '%c'", fmt[i]); break;
        }
    }
}

int store_vexecf(store *s, const char *sql, const char *fmt, va_list ap)
{
    store_lock(s);
    sqlite3_stmt *st = store_stmt(s, sql);
    int rc = st ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK) {
        va_list aq;
        va_copy(aq, ap);
        store_bind(st, fmt, aq);
        va_end(aq);
        rc = sqlite3_step(st);
    }
    int changed = -1;
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) changed = sqlite3_changes(s->db);
    else LOG_E("store", "database error: %s (in: %.120s)", sqlite3_errmsg(s->db), sql);
    store_stmt_done(s, st);
    store_unlock(s);
    return changed;
}

int store_execf(store *s, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = store_vexecf(s, sql, fmt, ap);
    va_end(ap);
    return n;
}

/* Keep the newest events_keep rows: ids are AUTOINCREMENT (never reused, increasing), so
 * everything at or below last_id - keep is older; one range delete on the primary key. With
 * last_id < 0 the newest id is looked up. Caller may or may not hold the store lock. */
static void events_prune(store *s, long long last_id)
{
    if (s->events_keep <= 0) return;
    store_lock(s);
    sqlite3_stmt *st = NULL;
    if (last_id < 0 &&
        sqlite3_prepare_v2(s->db, "SELECT coalesce(max(id), 0) FROM events", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        last_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (last_id > s->events_keep &&
        sqlite3_prepare_v2(s->db, "DELETE FROM events WHERE id <= ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, last_id - s->events_keep);
        if (sqlite3_step(st) != SQLITE_DONE)
            LOG_W("store", "cannot prune old events: %s", sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(st);
    store_unlock(s);
}

void store_set_events_limit(store *s, long long keep, int prune_every)
{
    store_lock(s);
    s->events_keep = keep;
    s->events_every = prune_every > 0 ? prune_every : 1;
    store_unlock(s);
    events_prune(s, -1);
}

long long store_event_add(store *s, const char *kind, const char *subject, const char *data_json)
{
    sqlite3_stmt *st = NULL;
    long long id = -1;
    store_lock(s);
    if (sqlite3_prepare_v2(s->db, "INSERT INTO events(ts, kind, subject, data) VALUES(?,?,?,?)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_double(st, 1, now_wall());
        sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, subject, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, data_json, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_DONE) id = sqlite3_last_insert_rowid(s->db);
    }
    sqlite3_finalize(st);
    if (id > 0 && id % s->events_every == 0) events_prune(s, id);
    store_unlock(s);
    return id;
}
