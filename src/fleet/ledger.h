/* ledger: what each rented instance costs, kept as intervals in the store's ledger table.
 *
 * Vast.ai bills per second: the GPU (dph_base) only while an instance is running, storage
 * (storage_total_cost) for every second it exists (stopped included, offline excluded). The
 * ledger mirrors that with one row per interval (instance row, kind "gpu"|"storage", rate in
 * $/h, start_ts, end_ts): an open interval (end_ts NULL) is still accruing; it is closed
 * when the instance stops or is destroyed, and a rate change (refreshed from the API)
 * closes it and opens a new one (an open interval whose rate was not known yet, 0, takes
 * the rate in place). Everything lives in SQLite, so costs survive restarts; after a
 * restart the reaper reconciles open intervals with the API's view (ledger_sync), and an
 * instance that vanished while nobody watched is closed at ledger_gone_end's estimate.
 *
 * A job's share of its instance's cost: its own GPU seconds at the GPU rate, plus a share of
 * the rest (boot, setup, idle time, storage) proportional to its GPU seconds (equal shares
 * when none has any). Cost per audio hour: cost / (audio seconds / 3600).
 *
 * Contract: the arithmetic helpers are pure; the store functions take the store's lock and
 * are thread-safe; timestamps are Unix seconds (double); they return 0 or -1 on a store
 * error (logged).
 */
#ifndef GS_LEDGER_H
#define GS_LEDGER_H

#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- arithmetic (pure) */

/* rate ($/h) for seconds; negative seconds count as 0 */
double ledger_cost(double rate_per_hour, double seconds);
/* seconds of [start, end) inside [from, to) */
double ledger_overlap(double start, double end, double from, double to);
/* A job's share (see above): inst_cost = the instance's whole cost, gpu_rate its GPU $/h,
 * job_gpu_s the job's GPU seconds, all_gpu_s the sum over the instance's njobs jobs. */
double ledger_job_share(double inst_cost, double gpu_rate, double job_gpu_s, double all_gpu_s,
                        int njobs);
/* $ per hour of audio; 0 when there was no audio */
double ledger_per_audio_hour(double cost, double audio_s);
/* Local midnight of t's day, and 00:00 on the 1st of t's month. */
double ledger_day_start(double t);
double ledger_month_start(double t);
/* When an instance that vanished unseen most likely went: its worker's dead-man switch
 * fires deadman_s after the controller's last contact (seen_at), so min(noticed_at,
 * seen_at + deadman_s); noticed_at when seen_at is unknown (0) or deadman_s <= 0. Never
 * before seen_at. */
double ledger_gone_end(double noticed_at, double seen_at, double deadman_s);
/* When an instance first seen running at now started running: now - uptime_s (Vast's
 * uptime_mins * 60; 0 when absent), never before not_before (its creation) nor after now. */
double ledger_running_since(double now, double uptime_s, double not_before);
/* uptime_mins * 60 from an instance object (0 when absent). */
double ledger_uptime_s(const json_t *instance);
/* "1h 23m", "4m 05s", "12s" */
void ledger_format_duration(double seconds, char *out, size_t outlen);

/* ---- the store */

/* Apply the API's view of instance row at time ts: GPU accrues while running, storage
 * while exists. A rate < 0 keeps the current one (or 0 when opening). One transaction (a
 * rate change's close and open happen together or not at all). */
int ledger_sync(store *st, long long row, bool running, bool exists, double gpu_rate,
                double storage_rate, double ts);
/* Close every open interval of row at ts (not before each interval's start), and write each
 * of the instance's jobs' share into jobs.cost_usd; one transaction (nests in the caller's). */
int ledger_finalize(store *st, long long row, double ts);

typedef struct ledger_usage {
    double gpu_s, storage_s;         /* billed seconds so far */
    double gpu_cost, storage_cost, cost;
    double gpu_rate, storage_rate;   /* of the latest interval of each kind, 0 when none */
    bool gpu_open, storage_open;     /* accruing now */
} ledger_usage;
/* One instance's usage up to now. */
int ledger_instance(store *st, long long row, double now, ledger_usage *u);
/* Cost of every interval (all instances) inside [from, to). */
double ledger_window(store *st, double from, double to);
/* Spending per local day, the last `days` days up to now, oldest first (new reference):
 * [{"date": "YYYY-MM-DD", "start", "end" (Unix s; the last ends now), "total",
 *   "rows": {"<instance row>": cost}}] (rows with no cost that day left out). */
json_t *ledger_daily_json(store *st, double now, int days);
/* $ per hour of every open interval together. */
double ledger_burn_rate(store *st);

/* Spending limits in $ (NAN = none). */
typedef struct ledger_budgets {
    double daily, monthly, total;
} ledger_budgets;
bool ledger_budgets_any(const ledger_budgets *b);
/* Spent today (since local midnight), this month and ever, up to now. */
void ledger_spent(store *st, double now, double *today, double *month, double *all);
/* 0 when spending est more now stays within every budget; -1 with msg naming the first one
 * it would pass (spent, limit and est in the text). */
int ledger_budget_check(store *st, const ledger_budgets *b, double est, double now, char *msg,
                        size_t msglen);

/* What ran on row: jobs, their chunks, audio seconds done, GPU seconds. */
int ledger_instance_jobs(store *st, long long row, int *njobs, int *nchunks, double *audio_s,
                         double *gpu_s);

/* {"uptime_s" (billed existence), "running_s", "cost_usd", "gpu_cost", "storage_cost",
 * "jobs", "audio_hours"} of row up to now (new reference). */
json_t *ledger_summary_json(store *st, long long row, double now);

#endif
