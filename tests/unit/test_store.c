#include "test.h"
#include "store/store.h"
#include "core/util.h"

#include <sys/stat.h>

static int count(store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

TEST(store_open_migrates_and_reopens)
{
    char err[256];
    store *s = store_open("data/sub", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(store_schema_version(s), 7);
    ASSERT_EQ(count(s, "SELECT count(*) FROM pragma_table_info('instances') WHERE name IN ('instance_api_key','keepalive_until','destroy_reason')"), 3);
    ASSERT_EQ(count(s, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('instances','jobs','events','ledger')"), 4);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(store_db(s), "PRAGMA journal_mode", -1, &st, NULL);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    ASSERT_EQ(count(s, "PRAGMA foreign_keys"), 1);
    ASSERT_TRUE(store_event_add(s, "job.created", "job-1", "{\"a\":1}") > 0);
    store_close(s);
    struct stat stt;
    ASSERT_EQ(stat("data/sub/gpuscribe.db", &stt), 0);
    ASSERT_EQ(stt.st_mode & 0777, 0600);
    s = store_open("data/sub", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(count(s, "SELECT count(*) FROM events WHERE kind='job.created' AND subject='job-1'"), 1);
    store_close(s);
}

TEST(store_foreign_keys_enforced)
{
    char err[256];
    store *s = store_open("d", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_NE(store_exec(s, "INSERT INTO ledger(instance_id, kind, rate_per_hour, start_ts) VALUES(42,'gpu',0.2,0)", err, sizeof err), 0);
    ASSERT_CONTAINS(err, "FOREIGN KEY");
    store_close(s);
}

TEST(store_refuses_newer_schema)
{
    char err[256];
    store *s = store_open("d", err, sizeof err);
    ASSERT_EQ(store_exec(s, "PRAGMA user_version=99", err, sizeof err), 0);
    store_close(s);
    ASSERT_NULL(store_open("d", err, sizeof err));
    ASSERT_CONTAINS(err, "newer than this program");
}

TEST(store_bad_directory)
{
    char err[256];
    FILE *f = fopen("file", "w");
    fclose(f);
    ASSERT_NULL(store_open("file/sub", err, sizeof err));
    ASSERT_CONTAINS(err, "cannot create data directory");
}

TEST(store_events_bounded_keeps_newest)
{
    char err[256];
    store *s = store_open("d", err, sizeof err);
    ASSERT_NOT_NULL(s);
    store_set_events_limit(s, 50, 10);
    long long last = 0;
    for (int i = 1; i <= 1000; i++) {
        char subj[32];
        snprintf(subj, sizeof subj, "job-%d", i);
        last = store_event_add(s, "job.progress", subj, "{}");
        ASSERT_TRUE(last > 0);
        ASSERT_TRUE(count(s, "SELECT count(*) FROM events") <= 50 + 10 - 1);
    }
    ASSERT_EQ(last, 1000);
    /* the 1000th insert pruned: exactly the newest 50 are left, in order */
    ASSERT_EQ(count(s, "SELECT count(*) FROM events"), 50);
    ASSERT_EQ(count(s, "SELECT min(id) FROM events"), 951);
    ASSERT_EQ(count(s, "SELECT max(id) FROM events"), 1000);
    ASSERT_EQ(count(s, "SELECT count(*) FROM events WHERE subject='job-1000'"), 1);
    ASSERT_EQ(count(s, "SELECT count(*) FROM events WHERE subject='job-950'"), 0);
    /* unbounded: nothing is pruned; ids keep growing (AUTOINCREMENT: never reused) */
    store_set_events_limit(s, 0, 10);
    for (int i = 0; i < 30; i++) ASSERT_TRUE(store_event_add(s, "x", NULL, NULL) > 1000);
    ASSERT_EQ(count(s, "SELECT count(*) FROM events"), 80);
    store_close(s);
    /* a database that grew past the default bound is pruned when it is opened */
    s = store_open("d", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(store_execf(s, "INSERT INTO events(ts, kind) SELECT 0, 'bulk' FROM "
                             "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                             "WHERE i < ?) SELECT i FROM n)", "i", STORE_EVENTS_KEEP + 500),
              STORE_EVENTS_KEEP + 500);
    long long top = count(s, "SELECT max(id) FROM events");
    store_close(s);
    s = store_open("d", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(count(s, "SELECT count(*) FROM events"), STORE_EVENTS_KEEP);
    ASSERT_EQ(count(s, "SELECT max(id) FROM events"), top);
    store_close(s);
}

static double num(store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    double v = -1;
    if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

TEST(store_job_totals_only_grow)
{
    char err[256];
    store *s = store_open("data", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(count(s, "SELECT value FROM job_counters WHERE name='retries'"), 0);
    ASSERT_EQ(store_execf(s, "INSERT INTO jobs(id, state, created_at, audio_duration) "
                             "VALUES('a','queued',1,30), ('b','queued',2,12.5)", ""), 2);
    ASSERT_EQ(store_execf(s, "INSERT INTO chunks(job_id, idx, start_s, end_s) "
                             "VALUES('a',0,0,30), ('b',0,0,12.5)", ""), 2);
    /* first run: no retry; a run interrupted by a stop gives its attempt back (not a retry) */
    ASSERT_EQ(store_execf(s, "UPDATE chunks SET state='running', attempts=attempts+1", ""), 2);
    ASSERT_EQ(store_execf(s, "UPDATE chunks SET state='queued', attempts=max(attempts-1,0) "
                             "WHERE job_id='b'", ""), 1);
    ASSERT_EQ(store_execf(s, "UPDATE chunks SET state='running', attempts=attempts+1 WHERE job_id='b'", ""), 1);
    ASSERT_EQ(count(s, "SELECT value FROM job_counters WHERE name='retries'"), 0);
    /* a's worker failed: its chunk queued again and run a second time (one retry) */
    ASSERT_EQ(store_execf(s, "UPDATE chunks SET state='queued' WHERE job_id='a'", ""), 1);
    ASSERT_EQ(store_execf(s, "UPDATE chunks SET state='running', attempts=attempts+1 WHERE job_id='a'", ""), 1);
    ASSERT_EQ(count(s, "SELECT value FROM job_counters WHERE name='retries'"), 1);
    /* the job's own attempts (the most of its chunks') count nothing more */
    ASSERT_EQ(store_execf(s, "UPDATE jobs SET attempts=2 WHERE id='a'", ""), 1);
    ASSERT_EQ(count(s, "SELECT value FROM job_counters WHERE name='retries'"), 1);
    ASSERT_EQ(store_execf(s, "UPDATE jobs SET state='done', engine='whisper', backend='remote', "
                             "gpu_seconds=3.5 WHERE id='a'", ""), 1);
    ASSERT_EQ(store_execf(s, "UPDATE jobs SET state='done', engine='sphinx', backend='local' "
                             "WHERE id='b'", ""), 1);
    /* an update that leaves a done job done counts nothing again */
    ASSERT_EQ(store_execf(s, "UPDATE jobs SET state='done' WHERE id='b'", ""), 1);
    ASSERT_EQ(count(s, "SELECT jobs FROM job_totals WHERE engine='whisper' AND backend='remote'"), 1);
    ASSERT_NEAR(num(s, "SELECT audio_s FROM job_totals WHERE engine='whisper'"), 30, 1e-9);
    ASSERT_NEAR(num(s, "SELECT gpu_s FROM job_totals WHERE engine='whisper'"), 3.5, 1e-9);
    ASSERT_EQ(count(s, "SELECT jobs FROM job_totals WHERE engine='sphinx' AND backend='local'"), 1);
    ASSERT_NEAR(num(s, "SELECT audio_s FROM job_totals WHERE engine='sphinx'"), 12.5, 1e-9);
    /* deleting finished jobs does not lower the totals; they survive a reopen */
    ASSERT_EQ(store_execf(s, "DELETE FROM jobs", ""), 2);
    store_close(s);
    s = store_open("data", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(count(s, "SELECT sum(jobs) FROM job_totals"), 2);
    ASSERT_NEAR(num(s, "SELECT sum(audio_s) FROM job_totals"), 42.5, 1e-9);
    ASSERT_EQ(count(s, "SELECT value FROM job_counters WHERE name='retries'"), 1);
    store_close(s);
}

TEST(store_statements_are_prepared_once)
{
    char err[256];
    store *s = store_open("data", err, sizeof err);
    ASSERT_NOT_NULL(s);
    ASSERT_EQ(store_exec(s, "CREATE TABLE t(a INTEGER, b TEXT)", err, sizeof err), 0);
    unsigned long long p0 = store_prepares(s);
    for (int i = 0; i < 50; i++)
        ASSERT_EQ(store_execf(s, "INSERT INTO t(a, b) VALUES(?, ?)", "it", i, i % 2 ? "x" : NULL), 1);
    ASSERT_EQ(store_prepares(s) - p0, 1); /* one parse for 50 runs */
    ASSERT_EQ(count(s, "SELECT count(*) FROM t WHERE b IS NULL"), 25); /* bindings cleared */
    /* the same statement in use further up this thread (the lock is recursive): a fresh one */
    store_lock(s);
    sqlite3_stmt *a = store_stmt(s, "SELECT a FROM t ORDER BY a");
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(sqlite3_step(a), SQLITE_ROW);
    sqlite3_stmt *b = store_stmt(s, "SELECT a FROM t ORDER BY a");
    ASSERT_NOT_NULL(b);
    ASSERT_TRUE(a != b);
    ASSERT_EQ(sqlite3_step(b), SQLITE_ROW);
    ASSERT_EQ(sqlite3_step(a), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(a, 0), 1); /* a went on where it was */
    store_stmt_done(s, b);
    store_stmt_done(s, a);
    ASSERT_TRUE(store_stmt(s, "SELECT a FROM t ORDER BY a") == a); /* the cached one again */
    store_stmt_done(s, a);
    ASSERT_NULL(store_stmt(s, "SELECT nonsense FROM nowhere"));
    store_unlock(s);
    ASSERT_EQ(store_execf(s, "UPDATE nowhere SET x=1", ""), -1);
    store_close(s);
}
