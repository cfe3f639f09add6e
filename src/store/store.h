/* store: the SQLite database in DATA_DIR (gpuscribe.db): WAL, synchronous=NORMAL, busy
 * timeout, foreign keys, and versioned migrations (PRAGMA user_version).
 *
 * Tables (see the migrations in store.c for the columns):
 *   instances  one row per Vast instance we rent or adopt, with its state machine fields;
 *              read and written only through store/instances.h
 *   jobs       the persistent transcription queue
 *   events     a log of what happened (job, instance, cost events), bounded: the newest
 *              STORE_EVENTS_KEEP rows are kept (see store_event_add)
 *   ledger     cost intervals per instance (GPU while running, storage while existing)
 *
 * One connection in serialized mode shared by every thread. A module that runs several
 * statements that must not interleave with other threads' wraps them in store_lock /
 * store_unlock (a recursive mutex), e.g. around BEGIN ... COMMIT. Errors are returned as -1
 * with a message in err; nothing is logged here, except by store_execf (below).
 */
#ifndef GS_STORE_H
#define GS_STORE_H

#include <stdarg.h>
#include <stddef.h>
#include <sqlite3.h>

typedef struct store store;

/* Open (creating dir and file as needed, mode 0700/0600) and migrate. NULL on error. */
store *store_open(const char *data_dir, char *err, size_t errlen);
void store_close(store *s);
sqlite3 *store_db(store *s);
int store_schema_version(store *s);
void store_lock(store *s);
void store_unlock(store *s);

/* Transactions that nest: store_begin takes the store lock and starts BEGIN IMMEDIATE, or,
 * inside a transaction this thread already holds, a SAVEPOINT; store_commit (COMMIT or
 * RELEASE) and store_rollback (ROLLBACK, or ROLLBACK TO and RELEASE) end the innermost one
 * and drop the lock. Every store_begin that returned 0 must be ended by exactly one of
 * them; on -1 (logged) nothing is held. store_commit returns -1 (logged) when the commit
 * failed: the transaction was rolled back. */
int store_begin(store *s);
int store_commit(store *s);
void store_rollback(store *s);

/* Run SQL with no result rows (one or several statements). 0 on success. */
int store_exec(store *s, const char *sql, char *err, size_t errlen);

/* Run one statement with parameters bound by fmt, one letter each: t text (NULL binds
 * NULL), l long long, i int, d double. Returns the number of rows changed (>= 0), or -1
 * after logging the database error (these are bugs or I/O failures). Takes the store lock. */
int store_execf(store *s, const char *sql, const char *fmt, ...);
int store_vexecf(store *s, const char *sql, const char *fmt, va_list ap);
/* Bind parameters by fmt as store_execf does, to a statement of the caller's. */
void store_bind(sqlite3_stmt *st, const char *fmt, va_list ap);

/* Prepared statements kept by their SQL text, so that a statement run again is not parsed
 * again (store_execf and the instances module use them). Store lock held around both calls:
 * store_stmt returns a statement ready to bind (NULL on a prepare error: see
 * sqlite3_errmsg); store_stmt_done resets it for the next caller. A statement already in use
 * further up the same thread (the lock is recursive) is not handed out twice: that caller
 * gets a fresh one, finalized by store_stmt_done. At most STORE_STMT_CACHE are kept. */
#define STORE_STMT_CACHE 128
sqlite3_stmt *store_stmt(store *s, const char *sql);
void store_stmt_done(store *s, sqlite3_stmt *st);
/* How many statements were prepared so far (the cache's misses). */
unsigned long long store_prepares(store *s);

/* Append an event; data_json may be NULL. Returns the event id (> 0) or -1. The table keeps
 * a bounded history: every STORE_EVENTS_PRUNE_EVERY-th insert (and store_open) deletes the
 * rows older than the newest STORE_EVENTS_KEEP (one range delete on the primary key), so it
 * holds at most KEEP + PRUNE_EVERY - 1 rows. Nothing replays from it: the SSE stream
 * (/api/events) is live only, its ids are the bus's own and Last-Event-ID is not honoured
 * (a reconnecting client re-reads state through the REST routes). */
#define STORE_EVENTS_KEEP 10000
#define STORE_EVENTS_PRUNE_EVERY 100
long long store_event_add(store *s, const char *kind, const char *subject, const char *data_json);
/* Change the bound (tests; keep <= 0: unbounded) and prune to it now. */
void store_set_events_limit(store *s, long long keep, int prune_every);

#endif
