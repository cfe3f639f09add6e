#include "fleet/ledger.h"

#include "core/log.h"
#include "core/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- arithmetic */

double ledger_cost(double rate, double seconds)
{
    if (!(seconds > 0) || !(rate > 0)) return 0;
    return rate * seconds / 3600.0;
}

double ledger_overlap(double start, double end, double from, double to)
{
    double a = start > from ? start : from, b = end < to ? end : to;
    return b > a ? b - a : 0;
}

double ledger_job_share(double inst_cost, double gpu_rate, double job_gpu_s, double all_gpu_s,
                        int njobs)
{
    if (njobs <= 0 || !(inst_cost > 0)) return 0;
    if (job_gpu_s < 0) job_gpu_s = 0;
    if (all_gpu_s < job_gpu_s) all_gpu_s = job_gpu_s;
    double direct_all = ledger_cost(gpu_rate, all_gpu_s);
    if (direct_all > inst_cost) direct_all = inst_cost; /* never more than was billed */
    double direct = all_gpu_s > 0 ? direct_all * job_gpu_s / all_gpu_s : 0;
    double rest = inst_cost - direct_all;
    double frac = all_gpu_s > 0 ? job_gpu_s / all_gpu_s : 1.0 / njobs;
    return direct + rest * frac;
}

double ledger_per_audio_hour(double cost, double audio_s)
{
    return audio_s > 0 ? cost / (audio_s / 3600.0) : 0;
}

double ledger_day_start(double t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return (double)mktime(&tm);
}

double ledger_month_start(double t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return (double)mktime(&tm);
}

double ledger_gone_end(double noticed_at, double seen_at, double deadman_s)
{
    if (!(seen_at > 0) || !(deadman_s > 0)) return noticed_at;
    double est = seen_at + deadman_s;
    if (est > noticed_at) est = noticed_at;
    return est < seen_at ? seen_at : est;
}

double ledger_running_since(double now, double uptime_s, double not_before)
{
    if (!(uptime_s > 0)) return now;
    double t = now - uptime_s;
    if (t < not_before) t = not_before;
    return t > now ? now : t;
}

double ledger_uptime_s(const json_t *instance)
{
    json_t *v = json_object_get(instance, "uptime_mins");
    return json_is_number(v) && json_number_value(v) > 0 ? json_number_value(v) * 60.0 : 0;
}

void ledger_format_duration(double s, char *out, size_t n)
{
    if (!(s > 0)) s = 0;
    long long t = (long long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%lldh %02lldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) snprintf(out, n, "%lldm %02llds", t / 60, t % 60);
    else snprintf(out, n, "%llds", t);
}

/* ---------------------------------------------------------------- store */

static int step_done(store *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        LOG_E("ledger", "store: %s", sqlite3_errmsg(store_db(st)));
        return -1;
    }
    return 0;
}

/* The open interval of (row, kind): 1 with id/rate/start, 0 none, -1 error. Lock held. */
static int open_of(store *st, long long row, const char *kind, long long *id, double *rate,
                   double *start)
{
    sqlite3_stmt *s = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(store_db(st), "SELECT id, rate_per_hour, start_ts FROM ledger WHERE"
                           " instance_id=? AND kind=? AND end_ts IS NULL ORDER BY id DESC LIMIT 1",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, row);
        sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(s, 0);
            *rate = sqlite3_column_double(s, 1);
            *start = sqlite3_column_double(s, 2);
            found = 1;
        } else if (rc == SQLITE_DONE) {
            found = 0;
        }
    }
    if (found < 0) LOG_E("ledger", "store: %s", sqlite3_errmsg(store_db(st)));
    sqlite3_finalize(s);
    return found;
}

/* sql with two parameters: a double, then an id */
static int exec_d_l(store *st, const char *sql, double a, long long id)
{
    sqlite3_stmt *s = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_double(s, 1, a);
        sqlite3_bind_int64(s, 2, id);
        rc = step_done(st, s);
    } else {
        LOG_E("ledger", "store: %s", sqlite3_errmsg(store_db(st)));
    }
    sqlite3_finalize(s);
    return rc;
}

static int open_new(store *st, long long row, const char *kind, double rate, double ts)
{
    sqlite3_stmt *s = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(store_db(st), "INSERT INTO ledger(instance_id, kind, rate_per_hour,"
                           " start_ts) VALUES(?,?,?,?)", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, row);
        sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 3, rate > 0 ? rate : 0);
        sqlite3_bind_double(s, 4, ts);
        rc = step_done(st, s);
    }
    sqlite3_finalize(s);
    return rc;
}

/* Lock held. */
static int sync_kind(store *st, long long row, const char *kind, bool on, double rate, double ts)
{
    long long id;
    double cur, start;
    int f = open_of(st, row, kind, &id, &cur, &start);
    if (f < 0) return -1;
    if (!on) {
        if (!f) return 0;
        return exec_d_l(st, "UPDATE ledger SET end_ts=max(start_ts, ?) WHERE id=?", ts, id);
    }
    if (!f) return open_new(st, row, kind, rate, ts);
    if (rate < 0 || fabs(rate - cur) < 1e-9) return 0;
    if (cur <= 0) /* the rate was not known when it opened */
        return exec_d_l(st, "UPDATE ledger SET rate_per_hour=? WHERE id=?", rate, id);
    if (ts <= start) /* nothing billed yet at the old rate */
        return exec_d_l(st, "UPDATE ledger SET rate_per_hour=? WHERE id=?", rate, id);
    if (exec_d_l(st, "UPDATE ledger SET end_ts=? WHERE id=?", ts, id) != 0) return -1;
    return open_new(st, row, kind, rate, ts);
}

int ledger_sync(store *st, long long row, bool running, bool exists, double gpu_rate,
                double storage_rate, double ts)
{
    /* one transaction: a rate change closes an interval and opens the next, and a crash
     * between the two must not leave the instance unbilled */
    if (store_begin(st) != 0) return -1;
    int rc = sync_kind(st, row, "gpu", running && exists, gpu_rate, ts);
    if (rc == 0) rc = sync_kind(st, row, "storage", exists, storage_rate, ts);
    if (rc != 0) {
        store_rollback(st);
        return -1;
    }
    return store_commit(st);
}

int ledger_instance(store *st, long long row, double now, ledger_usage *u)
{
    memset(u, 0, sizeof *u);
    sqlite3_stmt *s = NULL;
    int rc = -1;
    store_lock(st);
    if (sqlite3_prepare_v2(store_db(st), "SELECT kind, rate_per_hour, start_ts, end_ts FROM ledger"
                           " WHERE instance_id=? ORDER BY id", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, row);
        int r;
        while ((r = sqlite3_step(s)) == SQLITE_ROW) {
            const char *kind = (const char *)sqlite3_column_text(s, 0);
            double rate = sqlite3_column_double(s, 1), start = sqlite3_column_double(s, 2);
            bool open = sqlite3_column_type(s, 3) == SQLITE_NULL;
            double end = open ? now : sqlite3_column_double(s, 3);
            double secs = end > start ? end - start : 0;
            if (kind && !strcmp(kind, "gpu")) {
                u->gpu_s += secs;
                u->gpu_cost += ledger_cost(rate, secs);
                u->gpu_rate = rate;
                u->gpu_open = open;
            } else {
                u->storage_s += secs;
                u->storage_cost += ledger_cost(rate, secs);
                u->storage_rate = rate;
                u->storage_open = open;
            }
        }
        rc = r == SQLITE_DONE ? 0 : -1;
    }
    if (rc) LOG_E("ledger", "store: %s", sqlite3_errmsg(store_db(st)));
    sqlite3_finalize(s);
    store_unlock(st);
    u->cost = u->gpu_cost + u->storage_cost;
    return rc;
}

int ledger_instance_jobs(store *st, long long row, int *njobs, int *nchunks, double *audio_s,
                         double *gpu_s)
{
    *njobs = *nchunks = 0;
    *audio_s = *gpu_s = 0;
    sqlite3_stmt *s = NULL;
    int rc = -1;
    store_lock(st);
    if (sqlite3_prepare_v2(store_db(st), "SELECT count(DISTINCT job_id), count(*), coalesce(sum(CASE WHEN state='done'"
                           " THEN end_s-start_s END),0), coalesce(sum(gpu_seconds),0) FROM chunks"
                           " WHERE instance_id=?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, row);
        if (sqlite3_step(s) == SQLITE_ROW) {
            *njobs = sqlite3_column_int(s, 0);
            *nchunks = sqlite3_column_int(s, 1);
            *audio_s = sqlite3_column_double(s, 2);
            *gpu_s = sqlite3_column_double(s, 3);
            rc = 0;
        }
    }
    if (rc) LOG_E("ledger", "store: %s", sqlite3_errmsg(store_db(st)));
    sqlite3_finalize(s);
    store_unlock(st);
    return rc;
}

int ledger_finalize(store *st, long long row, double ts)
{
    if (store_begin(st) != 0) return -1;
    int rc = exec_d_l(st, "UPDATE ledger SET end_ts=max(start_ts, ?) WHERE instance_id=?"
                       " AND end_ts IS NULL", ts, row);
    ledger_usage u;
    int njobs, nchunks;
    double audio, gpu_all;
    if (rc == 0 && ledger_instance(st, row, ts, &u) == 0 &&
        ledger_instance_jobs(st, row, &njobs, &nchunks, &audio, &gpu_all) == 0 && nchunks > 0) {
        sqlite3_stmt *s = NULL, *w = NULL;
        /* each chunk run there gets its share; a job's cost is the sum of its chunks' (a job
         * can have run on several instances) */
        if (sqlite3_prepare_v2(store_db(st), "SELECT rowid, coalesce(gpu_seconds,0) FROM chunks"
                               " WHERE instance_id=?", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(store_db(st), "UPDATE chunks SET cost_usd=? WHERE rowid=?", -1, &w,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_int64(s, 1, row);
            while (sqlite3_step(s) == SQLITE_ROW) {
                double share = ledger_job_share(u.cost, u.gpu_rate, sqlite3_column_double(s, 1),
                                                gpu_all, nchunks);
                sqlite3_reset(w);
                sqlite3_bind_double(w, 1, share);
                sqlite3_bind_int64(w, 2, sqlite3_column_int64(s, 0));
                if (step_done(st, w) != 0) rc = -1;
            }
        } else {
            rc = -1;
        }
        sqlite3_finalize(s);
        sqlite3_finalize(w);
        if (rc == 0 &&
            store_execf(st, "UPDATE jobs SET cost_usd=(SELECT sum(cost_usd) FROM chunks c WHERE"
                            " c.job_id=jobs.id) WHERE id IN (SELECT job_id FROM chunks WHERE"
                            " instance_id=?)", "l", row) < 0)
            rc = -1;
    }
    if (rc != 0) {
        store_rollback(st);
        return -1;
    }
    return store_commit(st);
}

double ledger_window(store *st, double from, double to)
{
    sqlite3_stmt *s = NULL;
    double total = 0;
    store_lock(st);
    if (sqlite3_prepare_v2(store_db(st), "SELECT rate_per_hour, start_ts, end_ts FROM ledger WHERE"
                           " start_ts < ? AND (end_ts IS NULL OR end_ts > ?)", -1, &s, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_double(s, 1, to);
        sqlite3_bind_double(s, 2, from);
        while (sqlite3_step(s) == SQLITE_ROW) {
            double end = sqlite3_column_type(s, 2) == SQLITE_NULL ? to : sqlite3_column_double(s, 2);
            total += ledger_cost(sqlite3_column_double(s, 0),
                                 ledger_overlap(sqlite3_column_double(s, 1), end, from, to));
        }
    }
    sqlite3_finalize(s);
    store_unlock(st);
    return total;
}

json_t *ledger_daily_json(store *st, double now, int days)
{
    if (days < 1) days = 1;
    double *start = xcalloc((size_t)days + 1, sizeof *start);
    start[days] = now;
    start[days - 1] = ledger_day_start(now);
    for (int d = days - 2; d >= 0; d--) /* the day before: DST days are 23 or 25 hours */
        start[d] = ledger_day_start(start[d + 1] - 1);
    json_t *out = json_array();
    json_t **rows = xcalloc((size_t)days, sizeof *rows);
    double *total = xcalloc((size_t)days, sizeof *total);
    for (int d = 0; d < days; d++) rows[d] = json_object();
    sqlite3_stmt *s = NULL;
    store_lock(st);
    if (sqlite3_prepare_v2(store_db(st), "SELECT instance_id, rate_per_hour, start_ts, end_ts FROM"
                           " ledger WHERE start_ts < ? AND (end_ts IS NULL OR end_ts > ?)", -1, &s,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_double(s, 1, now);
        sqlite3_bind_double(s, 2, start[0]);
        while (sqlite3_step(s) == SQLITE_ROW) {
            char key[24];
            snprintf(key, sizeof key, "%lld", (long long)sqlite3_column_int64(s, 0));
            double rate = sqlite3_column_double(s, 1), a = sqlite3_column_double(s, 2);
            double b = sqlite3_column_type(s, 3) == SQLITE_NULL ? now : sqlite3_column_double(s, 3);
            for (int d = 0; d < days; d++) {
                double c = ledger_cost(rate, ledger_overlap(a, b, start[d], start[d + 1]));
                if (c <= 0) continue;
                total[d] += c;
                json_t *have = json_object_get(rows[d], key);
                json_object_set_new(rows[d], key, json_real(c + (have ? json_real_value(have) : 0)));
            }
        }
    }
    sqlite3_finalize(s);
    store_unlock(st);
    for (int d = 0; d < days; d++) {
        char date[16];
        time_t t = (time_t)start[d];
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
        json_array_append_new(out, json_pack("{s:s,s:f,s:f,s:f,s:o}", "date", date, "start", start[d],
                                             "end", start[d + 1], "total", total[d], "rows", rows[d]));
    }
    free(rows);
    free(total);
    free(start);
    return out;
}

double ledger_burn_rate(store *st)
{
    sqlite3_stmt *s = NULL;
    double r = 0;
    store_lock(st);
    if (sqlite3_prepare_v2(store_db(st), "SELECT coalesce(sum(rate_per_hour),0) FROM ledger WHERE"
                           " end_ts IS NULL", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        r = sqlite3_column_double(s, 0);
    sqlite3_finalize(s);
    store_unlock(st);
    return r;
}

bool ledger_budgets_any(const ledger_budgets *b)
{
    return !isnan(b->daily) || !isnan(b->monthly) || !isnan(b->total);
}

void ledger_spent(store *st, double now, double *today, double *month, double *all)
{
    *today = ledger_window(st, ledger_day_start(now), now);
    *month = ledger_window(st, ledger_month_start(now), now);
    *all = ledger_window(st, 0, now);
}

int ledger_budget_check(store *st, const ledger_budgets *b, double est, double now, char *msg,
                        size_t msglen)
{
    double sp[3];
    ledger_spent(st, now, &sp[0], &sp[1], &sp[2]);
    const double lim[3] = {b->daily, b->monthly, b->total};
    static const char *const name[3] = {"daily (BUDGET_DAILY_USD)", "monthly (BUDGET_MONTHLY_USD)",
                                        "total (BUDGET_TOTAL_USD)"};
    static const char *const when[3] = {"today", "this month", "in all"};
    for (int i = 0; i < 3; i++) {
        if (isnan(lim[i]) || sp[i] + est <= lim[i]) continue;
        snprintf(msg, msglen, "booting refused: the %s budget of $%.2f would be passed: $%.4f "
                 "spent %s, and this instance is estimated at $%.4f (one hour at its price)",
                 name[i], lim[i], sp[i], when[i], est);
        return -1;
    }
    return 0;
}

json_t *ledger_summary_json(store *st, long long row, double now)
{
    ledger_usage u;
    int njobs = 0, nchunks = 0;
    double audio = 0, gpu = 0;
    ledger_instance(st, row, now, &u);
    ledger_instance_jobs(st, row, &njobs, &nchunks, &audio, &gpu);
    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:i,s:i,s:f}", "uptime_s", round_to(u.storage_s, 10),
                     "running_s", round_to(u.gpu_s, 10), "cost_usd", round_to(u.cost, 1e6),
                     "gpu_cost", round_to(u.gpu_cost, 1e6), "storage_cost",
                     round_to(u.storage_cost, 1e6), "jobs", njobs, "chunks", nchunks, "audio_hours",
                     round_to(audio / 3600.0, 1e6));
}
