#include "store/instances.h"

#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every column instance_row holds, in the order row_read reads them. */
#define COLS                                                                               \
    "SELECT id, vast_id, offer_id, idem_key, state, stage, percent, label, gpu_name,"      \
    " num_gpus, gpu_ram_gb, dph_total, dph_base, storage_dph, ssh_host, ssh_port,"         \
    " worker_port, error, created_at, updated_at, running_at, ready_at, destroyed_at,"     \
    " last_busy_at, ssh_key_id, attempts, deadline_at, keepalive_until, warned_at,"        \
    " destroy_reason, seen_at, machine_id FROM instances "

#define FINAL_STATES "('failed','destroying','destroyed','orphan')"

static void col_text(sqlite3_stmt *s, int i, char *out, size_t n)
{
    const char *x = (const char *)sqlite3_column_text(s, i);
    snprintf(out, n, "%s", x ? x : "");
}

static void row_read(sqlite3_stmt *s, instance_row *r)
{
    memset(r, 0, sizeof *r);
    int i = 0;
    r->id = sqlite3_column_int64(s, i++);
    col_text(s, i++, r->vast_id, sizeof r->vast_id);
    r->offer_id = sqlite3_column_int64(s, i++);
    col_text(s, i++, r->idem_key, sizeof r->idem_key);
    col_text(s, i++, r->state, sizeof r->state);
    col_text(s, i++, r->stage, sizeof r->stage);
    r->percent = sqlite3_column_int(s, i++);
    col_text(s, i++, r->label, sizeof r->label);
    col_text(s, i++, r->gpu_name, sizeof r->gpu_name);
    r->num_gpus = sqlite3_column_int(s, i++);
    r->gpu_ram_gb = sqlite3_column_double(s, i++);
    r->dph_total = sqlite3_column_double(s, i++);
    r->dph_base = sqlite3_column_double(s, i++);
    r->storage_dph = sqlite3_column_double(s, i++);
    col_text(s, i++, r->ssh_host, sizeof r->ssh_host);
    r->ssh_port = sqlite3_column_int(s, i++);
    r->worker_port = sqlite3_column_int(s, i++);
    col_text(s, i++, r->error, sizeof r->error);
    r->created_at = sqlite3_column_double(s, i++);
    r->updated_at = sqlite3_column_double(s, i++);
    r->running_at = sqlite3_column_double(s, i++);
    r->ready_at = sqlite3_column_double(s, i++);
    r->destroyed_at = sqlite3_column_double(s, i++);
    r->last_busy_at = sqlite3_column_double(s, i++);
    r->has_ssh_key_id = sqlite3_column_type(s, i) != SQLITE_NULL;
    r->ssh_key_id = sqlite3_column_int64(s, i++);
    r->attempts = sqlite3_column_int(s, i++);
    r->deadline_at = sqlite3_column_double(s, i++);
    r->keepalive_until = sqlite3_column_double(s, i++);
    r->warned_at = sqlite3_column_double(s, i++);
    col_text(s, i++, r->destroy_reason, sizeof r->destroy_reason);
    r->seen_at = sqlite3_column_double(s, i++);
    r->machine_id = sqlite3_column_int64(s, i++);
}

static void db_error(store *st, const char *sql)
{
    LOG_E("store", "instances: %s (in: %.100s)", sqlite3_errmsg(store_db(st)), sql);
}

/* The first row of COLS + where: 1, 0 or -1. */
static int find_one(store *st, instance_row *out, const char *where, const char *fmt, ...)
{
    char *sql = xasprintf(COLS "%s LIMIT 1", where);
    sqlite3_stmt *s = NULL;
    int found = -1;
    memset(out, 0, sizeof *out);
    store_lock(st);
    if ((s = store_stmt(st, sql)) != NULL) {
        va_list ap;
        va_start(ap, fmt);
        store_bind(s, fmt, ap);
        va_end(ap);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            row_read(s, out);
            found = 1;
        } else if (rc == SQLITE_DONE) {
            found = 0;
        }
    }
    if (found < 0) db_error(st, sql);
    store_stmt_done(st, s);
    store_unlock(st);
    free(sql);
    return found;
}

/* One statement; rows changed or -1 (logged by store_vexecf). */
static int exec(store *st, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = store_vexecf(st, sql, fmt, ap);
    va_end(ap);
    return n;
}

/* ---------------------------------------------------------------- lookups */

int instances_get(store *st, long long id, instance_row *out)
{
    return find_one(st, out, "WHERE id=?", "l", id);
}

int instances_by_vast_id(store *st, const char *vast_id, instance_row *out)
{
    if (!vast_id || !*vast_id) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return find_one(st, out, "WHERE vast_id=?", "t", vast_id);
}

int instances_by_idem_key(store *st, const char *idem_key, instance_row *out)
{
    if (!idem_key || !*idem_key) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return find_one(st, out, "WHERE idem_key=?", "t", idem_key);
}

int instances_by_label(store *st, const char *label, instance_row *out)
{
    if (!label || !*label) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return find_one(st, out, "WHERE label=? ORDER BY id DESC", "t", label);
}

int instances_recent_boot(store *st, long long offer_id, double since, instance_row *out)
{
    return find_one(st, out, "WHERE offer_id=? AND created_at>? AND state NOT IN"
                    " ('failed','destroyed') ORDER BY id DESC", "ld", offer_id, since);
}

long long instances_id_of(store *st, const char *vast_id)
{
    instance_row r;
    int f = instances_by_vast_id(st, vast_id, &r);
    return f < 0 ? -1 : f ? r.id : 0;
}

bool instances_label_pending(store *st, const char *label, const char *vast_id)
{
    instance_row r;
    if (vast_id && *vast_id && instances_by_vast_id(st, vast_id, &r) == 1) return true;
    if (!label || !*label) return false;
    return find_one(st, &r, "WHERE label=? AND vast_id IS NULL", "t", label) == 1;
}

char *instances_setup_log(store *st, long long id)
{
    static const char sql[] = "SELECT setup_log FROM instances WHERE id=?";
    sqlite3_stmt *s = NULL;
    char *out = NULL;
    store_lock(st);
    if ((s = store_stmt(st, sql)) != NULL) {
        sqlite3_bind_int64(s, 1, id);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
            out = xstrdup((const char *)sqlite3_column_text(s, 0));
        else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            db_error(st, sql);
    } else {
        db_error(st, sql);
    }
    store_stmt_done(st, s);
    store_unlock(st);
    return out;
}

static const char *filter_where(instances_filter which)
{
    switch (which) {
    case INSTANCES_OURS: return "WHERE vast_id IS NOT NULL ORDER BY id";
    case INSTANCES_OURS_NEWEST: return "WHERE vast_id IS NOT NULL ORDER BY id DESC";
    case INSTANCES_ACTIVE:
        return "WHERE vast_id IS NOT NULL AND state NOT IN " FINAL_STATES " ORDER BY id";
    case INSTANCES_LIVE:
        return "WHERE vast_id IS NOT NULL AND state NOT IN ('destroyed','destroying','orphan')"
               " ORDER BY id";
    case INSTANCES_PROVISIONING:
        return "WHERE vast_id IS NOT NULL AND state IN ('requested','creating','loading',"
               "'ssh_wait','installing','starting_worker','ready') ORDER BY id";
    case INSTANCES_RECENT: return "WHERE state<>'destroyed' OR destroyed_at>?1 ORDER BY id DESC";
    case INSTANCES_STALE_LEDGER:
        return "WHERE state='destroyed' AND EXISTS (SELECT 1 FROM ledger l WHERE"
               " l.instance_id=instances.id AND l.end_ts IS NULL) ORDER BY id";
    case INSTANCES_PENDING_BOOT:
        return "WHERE vast_id IS NULL AND state IN ('requested','creating') ORDER BY id";
    }
    return "WHERE 0";
}

int instances_list(store *st, instances_filter which, double since, size_t max,
                   instance_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    char *sql = xasprintf(COLS "%s", filter_where(which));
    sqlite3_stmt *s = NULL;
    size_t cap = 0;
    int rc = -1;
    store_lock(st);
    if ((s = store_stmt(st, sql)) != NULL) {
        if (which == INSTANCES_RECENT) sqlite3_bind_double(s, 1, since);
        int step = SQLITE_DONE;
        while ((max == 0 || *n < max) && (step = sqlite3_step(s)) == SQLITE_ROW) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                *rows = xrealloc(*rows, cap * sizeof **rows);
            }
            row_read(s, &(*rows)[(*n)++]);
        }
        rc = (max && *n == max) || step == SQLITE_DONE ? 0 : -1;
    }
    if (rc < 0) {
        db_error(st, sql);
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
    store_stmt_done(st, s);
    store_unlock(st);
    free(sql);
    return rc;
}

int instances_count(store *st, instances_filter which, double since)
{
    char *sql = xasprintf("SELECT count(*) FROM instances %s", filter_where(which));
    sqlite3_stmt *s = NULL;
    int n = -1;
    store_lock(st);
    if ((s = store_stmt(st, sql)) != NULL) {
        if (which == INSTANCES_RECENT) sqlite3_bind_double(s, 1, since);
        if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int(s, 0);
    }
    if (n < 0) db_error(st, sql);
    store_stmt_done(st, s);
    store_unlock(st);
    free(sql);
    return n;
}

int instances_count_by_state(store *st, void (*fn)(void *ud, const char *state, long long n),
                             void *ud)
{
    static const char sql[] = "SELECT state, count(*) FROM instances GROUP BY state ORDER BY state";
    sqlite3_stmt *s = NULL;
    int rc = -1;
    store_lock(st);
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) == SQLITE_OK) {
        int r;
        while ((r = sqlite3_step(s)) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(s, 0);
            fn(ud, state ? state : "", sqlite3_column_int64(s, 1));
        }
        if (r == SQLITE_DONE) rc = 0;
    }
    if (rc < 0) db_error(st, sql);
    sqlite3_finalize(s);
    store_unlock(st);
    return rc;
}

/* ---------------------------------------------------------------- boots */

long long instances_insert_boot(store *st, long long offer_id, const char *idem_key,
                                const char *label_prefix, double dph_total, double dph_base,
                                double storage_dph, double now, char *label, size_t labellen)
{
    if (store_begin(st) != 0) return -1;
    long long row = -1;
    /* without a caller's key the key, like the label, names the row id: NULL until then */
    if (exec(st, "INSERT INTO instances(offer_id, idem_key, state, stage, percent, created_at,"
             " updated_at, dph_total, dph_base, storage_dph) VALUES(?,?,'creating',"
             "'creating instance',5,?,?,NULLIF(?,0),NULLIF(?,0),NULLIF(?,0))", "ltddddd", offer_id, idem_key, now, now, dph_total > 0 ? dph_total : 0.0,
             dph_base > 0 ? dph_base : 0.0, storage_dph > 0 ? storage_dph : 0.0) == 1) {
        row = sqlite3_last_insert_rowid(store_db(st));
        char lb[64], key[64];
        snprintf(lb, sizeof lb, "%s-%lld", label_prefix, row);
        snprintf(key, sizeof key, "offer:%lld:%lld", offer_id, row);
        if (exec(st, "UPDATE instances SET label=?, idem_key=COALESCE(idem_key,?) WHERE id=?",
                 "ttl", lb, key, row) != 1)
            row = -1;
        else
            snprintf(label, labellen, "%s", lb);
    }
    if (row < 0) {
        store_rollback(st);
        return -1;
    }
    return store_commit(st) == 0 ? row : -1;
}

int instances_set_created(store *st, long long id, const char *vast_id, const char *api_key,
                          double created_at, double now)
{
    return exec(st, "UPDATE instances SET vast_id=?, state='loading', stage='creating instance',"
                " percent=10, error=NULL, instance_api_key=COALESCE(?,instance_api_key),"
                " created_at=CASE WHEN ?>0 THEN ? ELSE created_at END, updated_at=? WHERE id=?",
                "ttdddl", vast_id, api_key, created_at, created_at, now, id);
}

int instances_set_error(store *st, long long id, const char *error, double now)
{
    return exec(st, "UPDATE instances SET error=?, updated_at=? WHERE id=?", "tdl", error, now,
                id);
}

int instances_boot_failed(store *st, long long id, const char *error, double now)
{
    return exec(st, "UPDATE instances SET state='failed', stage='failed',"
                " error=COALESCE(NULLIF(?,''),NULLIF(error,''),'no instance was created'),"
                " updated_at=? WHERE id=?",
                "tdl", error, now, id);
}

int instances_release_idem_key(store *st, long long id)
{
    return exec(st, "UPDATE instances SET idem_key=idem_key||'#'||id WHERE id=?", "l", id);
}

/* ---------------------------------------------------------------- found on the account */

static const char *or_null(const char *s) { return s && *s ? s : NULL; }

long long instances_insert_found(store *st, const instance_row *r)
{
    long long row = -1;
    store_lock(st);
    if (exec(st, "INSERT INTO instances(vast_id, state, stage, percent, label, gpu_name,"
             " num_gpus, dph_total, dph_base, storage_dph, ssh_host, ssh_port, created_at,"
             " updated_at, running_at) VALUES(?,?,?,?,?,?,?,NULLIF(?,0),NULLIF(?,0),NULLIF(?,0),"
             "?,NULLIF(?,0),?,?,NULLIF(?,0))", "tttlttldddtlddd", r->vast_id, r->state, r->stage,
             (long long)r->percent, or_null(r->label), or_null(r->gpu_name),
             (long long)r->num_gpus, r->dph_total, r->dph_base, r->storage_dph,
             or_null(r->ssh_host), (long long)r->ssh_port, r->created_at, r->updated_at,
             r->running_at) == 1)
        row = sqlite3_last_insert_rowid(store_db(st));
    store_unlock(st);
    return row;
}

int instances_resume(store *st, long long id, const char *state, const char *stage,
                     int percent, const char *ssh_host, int ssh_port, double now)
{
    return exec(st, "UPDATE instances SET state=?, stage=?, percent=?, error=NULL, attempts=0,"
                " deadline_at=NULL, ssh_host=COALESCE(?,ssh_host),"
                " ssh_port=COALESCE(NULLIF(?,0),ssh_port), destroyed_at=NULL, updated_at=?"
                " WHERE id=?", "ttltldl", state, stage, (long long)percent, or_null(ssh_host),
                (long long)ssh_port, now, id);
}

int instances_observe(store *st, long long id, const char *vast_id, const instance_facts *f,
                      double now)
{
    static const char set[] =
        "UPDATE instances SET gpu_name=COALESCE(gpu_name,?), num_gpus=COALESCE(num_gpus,"
        " NULLIF(?,0)), gpu_ram_gb=COALESCE(gpu_ram_gb,NULLIF(?,0)),"
        " dph_total=COALESCE(NULLIF(?,0),dph_total), dph_base=COALESCE(NULLIF(?,0),dph_base),"
        " storage_dph=COALESCE(NULLIF(?,0),storage_dph), ssh_host=COALESCE(?,ssh_host),"
        " ssh_port=COALESCE(NULLIF(?,0),ssh_port), running_at=COALESCE(running_at,NULLIF(?,0)),"
        " machine_id=COALESCE(machine_id,NULLIF(?,0)), updated_at=? WHERE state<>'destroyed' AND ";
    char *sql = xasprintf("%s%s", set, id > 0 ? "id=?" : "vast_id=?");
    double z = 0;
    int n = id > 0 ?
        exec(st, sql, "tlddddtldldl", or_null(f->gpu_name), (long long)f->num_gpus, f->gpu_ram_gb,
             f->dph_total > 0 ? f->dph_total : z, f->dph_base > 0 ? f->dph_base : z,
             f->storage_dph > 0 ? f->storage_dph : z, or_null(f->ssh_host),
             (long long)(f->ssh_port > 0 ? f->ssh_port : 0), f->running_at > 0 ? f->running_at : z,
             f->machine_id > 0 ? f->machine_id : 0, now, id) :
        exec(st, sql, "tlddddtldldt", or_null(f->gpu_name), (long long)f->num_gpus, f->gpu_ram_gb,
             f->dph_total > 0 ? f->dph_total : z, f->dph_base > 0 ? f->dph_base : z,
             f->storage_dph > 0 ? f->storage_dph : z, or_null(f->ssh_host),
             (long long)(f->ssh_port > 0 ? f->ssh_port : 0), f->running_at > 0 ? f->running_at : z,
             f->machine_id > 0 ? f->machine_id : 0, now, vast_id);
    free(sql);
    return n;
}

int instances_set_machine(store *st, long long id, long long machine_id)
{
    if (machine_id <= 0) return 0;
    return exec(st, "UPDATE instances SET machine_id=? WHERE id=?", "ll", machine_id, id);
}

/* ---------------------------------------------------------------- provisioning */

int instances_set_state(store *st, long long id, const char *state, int percent,
                        const char *stage, const char *error, double now)
{
    /* a failed state always carries its reason */
    char why[300];
    if (state && !strcmp(state, "failed") && (!error || !*error)) {
        snprintf(why, sizeof why, "failed while %s, and the step that failed gave no reason",
                 stage && *stage ? stage : "provisioning");
        error = why;
        LOG_W("store", "instance row %lld: %s", id, why);
    }
    int n = exec(st, "UPDATE instances SET state=?, percent=?, stage=?, error=?, updated_at=?,"
                 " ready_at=CASE WHEN ?='ready' THEN ? ELSE ready_at END"
                 " WHERE id=? AND state NOT IN ('destroying','destroyed')", "tlttdtdl", state,
                 (long long)percent, stage, error, now, state, now, id);
    return n < 0 ? -1 : n > 0;
}

int instances_set_deadline(store *st, long long id, double at)
{
    return exec(st, "UPDATE instances SET deadline_at=NULLIF(?,0) WHERE id=?", "dl",
                at > 0 ? at : 0.0, id);
}

int instances_set_setup_log(store *st, long long id, const char *log)
{
    return exec(st, "UPDATE instances SET setup_log=? WHERE id=?", "tl", log ? log : "", id);
}

int instances_set_ssh_key(store *st, long long id, long long key_id)
{
    return exec(st, "UPDATE instances SET ssh_key_id=? WHERE id=?", "ll", key_id, id);
}

int instances_add_attempt(store *st, long long id)
{
    return exec(st, "UPDATE instances SET attempts=attempts+1 WHERE id=?", "l", id);
}

int instances_set_worker(store *st, long long id, int worker_port)
{
    return exec(st, "UPDATE instances SET attempts=0, worker_port=?, deadline_at=NULL WHERE id=?",
                "ll", (long long)worker_port, id);
}

/* ---------------------------------------------------------------- cost safety */

int instances_set_seen(store *st, long long id, double at)
{
    return exec(st, "UPDATE instances SET seen_at=? WHERE id=?", "dl", at, id);
}

int instances_set_busy(store *st, long long id, double at)
{
    return exec(st, "UPDATE instances SET last_busy_at=? WHERE id=?", "dl", at, id);
}

int instances_set_warned(store *st, long long id, double at)
{
    return exec(st, "UPDATE instances SET warned_at=NULLIF(?,0) WHERE id=?", "dl",
                at > 0 ? at : 0.0, id);
}

int instances_keepalive(store *st, const char *vast_id, double until, double now)
{
    return exec(st, "UPDATE instances SET keepalive_until=?, last_busy_at=?, warned_at=NULL"
                " WHERE vast_id=? AND state NOT IN ('destroyed','destroying','orphan')", "ddt",
                until, now, vast_id);
}

/* ---------------------------------------------------------------- destroy */

int instances_set_destroying(store *st, long long id, double now)
{
    return exec(st, "UPDATE instances SET state='destroying', stage='destroying', updated_at=?"
                " WHERE id=? AND state<>'destroyed'", "dl", now, id);
}

int instances_restore_state(store *st, long long id, const char *state, double now)
{
    return exec(st, "UPDATE instances SET state=?, updated_at=? WHERE id=? AND state<>'destroyed'",
                "tdl", state, now, id);
}

int instances_mark_destroyed(store *st, long long id, const char *stage, const char *reason,
                             double at, double now)
{
    int n = exec(st, "UPDATE instances SET state='destroyed', stage=?, destroyed_at=?,"
                 " destroy_reason=COALESCE(destroy_reason,?), updated_at=? WHERE id=? AND"
                 " state<>'destroyed'", "tdtdl", stage ? stage : "destroyed", at, reason, now, id);
    return n < 0 ? -1 : n > 0;
}

int instances_set_destroyed_at(store *st, long long id, double at)
{
    return exec(st, "UPDATE instances SET destroyed_at=?, destroy_reason=COALESCE(destroy_reason,"
                "'gone') WHERE id=?", "dl", at, id);
}
