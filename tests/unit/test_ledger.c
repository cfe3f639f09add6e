/* Unit tests for src/fleet/ledger: the cost arithmetic (per-second billing, windows, job
 * shares, cost per audio hour, the dead-man estimate) and the interval bookkeeping in the
 * store (open while accruing, rate refresh, close, budgets). */
#include "test.h"

#include "core/util.h"
#include "fleet/ledger.h"

#include <math.h>

TEST(ledger_cost_per_second)
{
    ASSERT_NEAR(ledger_cost(0.36, 3600), 0.36, 1e-12);
    ASSERT_NEAR(ledger_cost(0.36, 1), 0.0001, 1e-12);
    ASSERT_NEAR(ledger_cost(0.36, -5), 0, 0);
    ASSERT_NEAR(ledger_cost(-1, 100), 0, 0);
    ASSERT_NEAR(ledger_overlap(10, 20, 0, 15), 5, 1e-12);
    ASSERT_NEAR(ledger_overlap(10, 20, 12, 18), 6, 1e-12);
    ASSERT_NEAR(ledger_overlap(10, 20, 20, 30), 0, 0);
    ASSERT_NEAR(ledger_overlap(10, 20, 0, 5), 0, 0);
}

TEST(ledger_job_shares_add_up)
{
    /* instance cost $1.00, GPU $0.36/h; jobs used 600 s and 1200 s of GPU */
    double a = ledger_job_share(1.0, 0.36, 600, 1800, 2);
    double b = ledger_job_share(1.0, 0.36, 1200, 1800, 2);
    ASSERT_NEAR(a + b, 1.0, 1e-12);
    ASSERT_NEAR(a, 0.06 + (1.0 - 0.18) / 3, 1e-12);
    /* no GPU seconds recorded: equal shares */
    ASSERT_NEAR(ledger_job_share(0.9, 0.36, 0, 0, 3), 0.3, 1e-12);
    /* the direct part never exceeds what was billed */
    ASSERT_NEAR(ledger_job_share(0.01, 0.36, 3600, 3600, 1), 0.01, 1e-12);
    ASSERT_NEAR(ledger_job_share(1.0, 0.36, 10, 10, 0), 0, 0);
    ASSERT_NEAR(ledger_per_audio_hour(0.5, 7200), 0.25, 1e-12);
    ASSERT_NEAR(ledger_per_audio_hour(0.5, 0), 0, 0);
}

TEST(ledger_gone_estimate)
{
    ASSERT_NEAR(ledger_gone_end(1000, 900, 30), 930, 1e-9);    /* dead-man fired */
    ASSERT_NEAR(ledger_gone_end(1000, 990, 30), 1000, 1e-9);   /* noticed sooner */
    ASSERT_NEAR(ledger_gone_end(1000, 0, 30), 1000, 1e-9);     /* never seen */
    ASSERT_NEAR(ledger_gone_end(1000, 900, 0), 1000, 1e-9);    /* no dead-man */
    ASSERT_NEAR(ledger_running_since(1000, 4.5, 900), 995.5, 1e-9);
    ASSERT_NEAR(ledger_running_since(1000, 400, 900), 900, 1e-9);  /* not before creation */
    ASSERT_NEAR(ledger_running_since(1000, 0, 900), 1000, 1e-9);   /* unknown: now */
    json_t *vi = json_pack("{s:f}", "uptime_mins", 0.5);
    ASSERT_NEAR(ledger_uptime_s(vi), 30, 1e-9);
    json_decref(vi);
    ASSERT_NEAR(ledger_uptime_s(NULL), 0, 0);
    char b[32];
    ledger_format_duration(4980, b, sizeof b);
    ASSERT_STR_EQ(b, "1h 23m");
    ledger_format_duration(245, b, sizeof b);
    ASSERT_STR_EQ(b, "4m 05s");
    ledger_format_duration(12.4, b, sizeof b);
    ASSERT_STR_EQ(b, "12s");
    double t = 1714567890; /* any moment: its day and month start before it, in order */
    ASSERT_TRUE(ledger_day_start(t) <= t && t - ledger_day_start(t) < 86400 + 3600);
    ASSERT_TRUE(ledger_month_start(t) <= ledger_day_start(t));
}

static store *open_store(long long *row)
{
    char err[256];
    store *st = store_open("data", err, sizeof err);
    ASSERT_NOT_NULL(st);
    ASSERT_EQ(store_exec(st, "INSERT INTO instances(id, vast_id, state, created_at, updated_at)"
                             " VALUES(7, '1007', 'ready', 1000, 1000);"
                             "INSERT INTO jobs(id, state, created_at, instance_id, gpu_seconds,"
                             " audio_duration) VALUES('j1','done',1,7,600,3600),"
                             "('j2','done',1,7,1200,3600);"
                             /* j2 ran as two chunks there: costs go to chunks, summed per job */
                             "INSERT INTO chunks(job_id, idx, start_s, end_s, state, instance_id,"
                             " gpu_seconds) VALUES('j1',0,0,3600,'done',7,600),"
                             "('j2',0,0,1800,'done',7,500),('j2',1,1800,3600,'done',7,700)",
                             err, sizeof err), 0);
    *row = 7;
    return st;
}

TEST(ledger_intervals_in_the_store)
{
    long long row;
    store *st = open_store(&row);
    /* created at 1000 (storage only; rate not known yet), running at 1010, rate known at 1020 */
    ASSERT_EQ(ledger_sync(st, row, false, true, -1, -1, 1000), 0);
    ASSERT_EQ(ledger_sync(st, row, true, true, 0.36, 0.036, 1010), 0);
    ledger_usage u;
    ASSERT_EQ(ledger_instance(st, row, 1010 + 3600, &u), 0);
    ASSERT_TRUE(u.gpu_open && u.storage_open);
    ASSERT_NEAR(u.storage_s, 3610, 1e-6);
    ASSERT_NEAR(u.gpu_s, 3600, 1e-6);
    ASSERT_NEAR(u.gpu_cost, 0.36, 1e-9);
    ASSERT_NEAR(u.storage_cost, 0.036 * 3610 / 3600, 1e-9); /* the unknown rate took 0.036 */
    /* a repeat changes nothing; a new rate splits the interval */
    ASSERT_EQ(ledger_sync(st, row, true, true, 0.36, 0.036, 2000), 0);
    ASSERT_EQ(ledger_sync(st, row, true, true, 0.72, 0.036, 4610), 0);
    ASSERT_EQ(ledger_instance(st, row, 4610 + 3600, &u), 0);
    ASSERT_NEAR(u.gpu_cost, 0.36 + 0.72, 1e-9);
    ASSERT_NEAR(u.gpu_rate, 0.72, 1e-12);
    ASSERT_NEAR(ledger_burn_rate(st), 0.72 + 0.036, 1e-9);
    /* stopped: GPU closes, storage goes on */
    ASSERT_EQ(ledger_sync(st, row, false, true, -1, -1, 8210), 0);
    ASSERT_EQ(ledger_instance(st, row, 9000, &u), 0);
    ASSERT_FALSE(u.gpu_open);
    ASSERT_TRUE(u.storage_open);
    ASSERT_NEAR(u.gpu_s, 7200, 1e-6);
    /* destroyed at 9000: all closed; job shares add up to the instance's cost */
    ASSERT_EQ(ledger_finalize(st, row, 9000), 0);
    ASSERT_EQ(ledger_instance(st, row, 99999, &u), 0);
    ASSERT_FALSE(u.gpu_open || u.storage_open);
    ASSERT_NEAR(u.storage_s, 8000, 1e-6);
    double expect = 1.08 + 0.036 * 8000 / 3600;
    ASSERT_NEAR(u.cost, expect, 1e-9);
    sqlite3_stmt *s = NULL;
    ASSERT_EQ(sqlite3_prepare_v2(store_db(st), "SELECT sum(cost_usd), count(cost_usd) FROM jobs",
                                 -1, &s, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
    ASSERT_NEAR(sqlite3_column_double(s, 0), expect, 1e-9);
    ASSERT_EQ(sqlite3_column_int(s, 1), 2);
    sqlite3_finalize(s);
    /* windows: the whole life, and a slice */
    ASSERT_NEAR(ledger_window(st, 0, 1e10), expect, 1e-9);
    ASSERT_NEAR(ledger_window(st, 1010, 4610), 0.36 + 0.036, 1e-9);
    json_t *j = ledger_summary_json(st, row, 99999);
    ASSERT_EQ(json_integer_value(json_object_get(j, "jobs")), 2);
    ASSERT_NEAR(json_real_value(json_object_get(j, "audio_hours")), 2, 1e-9);
    ASSERT_NEAR(json_real_value(json_object_get(j, "uptime_s")), 8000, 1e-6);
    json_decref(j);
    store_close(st);
}

TEST(ledger_budget_refusal)
{
    long long row;
    store *st = open_store(&row);
    double now = now_wall();
    ASSERT_EQ(ledger_sync(st, row, true, true, 3.6, 0, now - 1000), 0); /* $1 so far */
    ledger_budgets none = {NAN, NAN, NAN}, b = {NAN, NAN, 1.5};
    ASSERT_FALSE(ledger_budgets_any(&none));
    ASSERT_TRUE(ledger_budgets_any(&b));
    char msg[512];
    ASSERT_EQ(ledger_budget_check(st, &b, 0.4, now, msg, sizeof msg), 0);
    ASSERT_EQ(ledger_budget_check(st, &b, 0.6, now, msg, sizeof msg), -1);
    ASSERT_CONTAINS(msg, "BUDGET_TOTAL_USD");
    ASSERT_CONTAINS(msg, "$1.50");
    double today, month, all;
    ledger_spent(st, now, &today, &month, &all);
    ASSERT_NEAR(all, 1.0, 1e-6);
    ASSERT_TRUE(today <= all + 1e-12 && month <= all + 1e-12);
    store_close(st);
}
