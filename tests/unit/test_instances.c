/* Unit tests for src/store/instances (the instances table's only module) and the store's
 * nested transactions: a boot row is never on record without its label, an empty label
 * matches nothing, the list filters, and vastctl_instance_gone (the one path for an
 * instance that vanished) closing the ledger with its reason. */
#include "test.h"

#include "core/config.h"
#include "core/util.h"
#include "fleet/ledger.h"
#include "fleet/vastctl.h"
#include "store/instances.h"

#include <stdlib.h>

static store *open_st(void)
{
    char err[256];
    store *st = store_open("data", err, sizeof err);
    ASSERT_NOT_NULL(st);
    return st;
}

static long long count(store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    long long n = -1;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

TEST(store_transactions_nest)
{
    store *st = open_st();
    char err[256];
    ASSERT_EQ(store_exec(st, "CREATE TABLE t(x INTEGER)", err, sizeof err), 0);
    ASSERT_EQ(store_begin(st), 0);
    ASSERT_EQ(store_execf(st, "INSERT INTO t VALUES(1)", ""), 1);
    ASSERT_EQ(store_begin(st), 0);           /* a savepoint inside */
    ASSERT_EQ(store_execf(st, "INSERT INTO t VALUES(2)", ""), 1);
    store_rollback(st);                      /* undoes 2 only */
    ASSERT_EQ(store_begin(st), 0);
    ASSERT_EQ(store_execf(st, "INSERT INTO t VALUES(3)", ""), 1);
    ASSERT_EQ(store_commit(st), 0);
    ASSERT_EQ(store_commit(st), 0);
    ASSERT_EQ(count(st, "SELECT group_concat(x) = '1,3' FROM t"), 1);
    ASSERT_EQ(store_begin(st), 0);
    ASSERT_EQ(store_execf(st, "INSERT INTO t VALUES(4)", ""), 1);
    store_rollback(st);
    ASSERT_EQ(count(st, "SELECT count(*) FROM t"), 2);
    ASSERT_TRUE(sqlite3_get_autocommit(store_db(st)));
    store_close(st);
}

TEST(instances_boot_row_carries_its_label)
{
    store *st = open_st();
    char label[64];
    long long a = instances_insert_boot(st, 42, NULL, "gpuscribe", 0.5, 0.4, 0.01, 1000, label,
                                        sizeof label);
    ASSERT_TRUE(a > 0);
    char want[64];
    snprintf(want, sizeof want, "gpuscribe-%lld", a);
    ASSERT_STR_EQ(label, want);
    instance_row r;
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_STR_EQ(r.label, want);
    ASSERT_STR_EQ(r.state, "creating");
    ASSERT_STR_EQ(r.vast_id, "");
    ASSERT_EQ(r.offer_id, 42);
    ASSERT_NEAR(r.dph_base, 0.4, 1e-12);
    char key[64];
    snprintf(key, sizeof key, "offer:42:%lld", a);
    ASSERT_STR_EQ(r.idem_key, key);
    /* a caller's key is kept; the label still names the row */
    long long b = instances_insert_boot(st, 43, "key:k1", "gpuscribe", 0, 0, 0, 1001, label,
                                        sizeof label);
    ASSERT_TRUE(b > a);
    ASSERT_EQ(instances_by_idem_key(st, "key:k1", &r), 1);
    ASSERT_EQ(r.id, b);
    ASSERT_NEAR(r.dph_total, 0, 0);          /* unknown rates stay NULL */
    ASSERT_EQ(count(st, "SELECT count(*) FROM instances WHERE dph_total IS NULL"), 1);
    /* the same key twice: refused, and nothing half-written is left behind */
    ASSERT_EQ(instances_insert_boot(st, 43, "key:k1", "gpuscribe", 0, 0, 0, 1002, label,
                                    sizeof label), -1);
    ASSERT_EQ(count(st, "SELECT count(*) FROM instances"), 2);
    ASSERT_EQ(instances_by_label(st, label, &r), 1);
    ASSERT_EQ(r.id, b);
    store_close(st);
}

TEST(instances_boot_insert_is_atomic)
{
    store *st = open_st();
    char err[256], label[64] = "untouched";
    /* the label write fails (as a crash between the two statements would stop it): the row
     * must not exist without it */
    ASSERT_EQ(store_exec(st, "CREATE TRIGGER no_label BEFORE UPDATE OF label ON instances"
                             " BEGIN SELECT RAISE(ABORT, 'no label today'); END", err,
                         sizeof err), 0);
    ASSERT_EQ(instances_insert_boot(st, 7, "key:x", "gpuscribe", 0, 0, 0, 1000, label,
                                    sizeof label), -1);
    ASSERT_STR_EQ(label, "untouched");
    ASSERT_EQ(count(st, "SELECT count(*) FROM instances"), 0);
    ASSERT_TRUE(sqlite3_get_autocommit(store_db(st)));
    ASSERT_EQ(store_exec(st, "DROP TRIGGER no_label", err, sizeof err), 0);
    ASSERT_TRUE(instances_insert_boot(st, 7, "key:x", "gpuscribe", 0, 0, 0, 1000, label,
                                      sizeof label) > 0);
    ASSERT_EQ(count(st, "SELECT count(*) FROM instances WHERE label IS NULL"), 0);
    store_close(st);
}

TEST(instances_empty_label_matches_nothing)
{
    store *st = open_st();
    char err[256];
    /* rows without a label (an old boot, an unlabelled adopted instance), with and without a
     * vast_id */
    ASSERT_EQ(store_exec(st, "INSERT INTO instances(id, state, created_at, updated_at)"
                             " VALUES(1, 'requested', 1, 1);"
                             "INSERT INTO instances(id, vast_id, state, label, created_at,"
                             " updated_at) VALUES(2, '502', 'ready', '', 1, 1)", err, sizeof err),
              0);
    instance_row r;
    ASSERT_EQ(instances_by_label(st, "", &r), 0);
    ASSERT_EQ(instances_by_label(st, NULL, &r), 0);
    ASSERT_EQ(r.id, 0);
    ASSERT_FALSE(instances_label_pending(st, "", "999"));
    ASSERT_FALSE(instances_label_pending(st, NULL, NULL));
    ASSERT_TRUE(instances_label_pending(st, "", "502"));          /* by its vast_id */
    ASSERT_FALSE(instances_label_pending(st, "gpuscribe-9", "999"));
    ASSERT_EQ(instances_by_vast_id(st, "", &r), 0);
    ASSERT_EQ(instances_by_idem_key(st, "", &r), 0);
    /* a pending boot with a label is found by it */
    char label[64];
    long long id = instances_insert_boot(st, 5, NULL, "gpuscribe", 0, 0, 0, 10, label, sizeof label);
    ASSERT_TRUE(instances_label_pending(st, label, "777"));
    ASSERT_EQ(instances_id_of(st, "502"), 2);
    ASSERT_EQ(instances_id_of(st, "503"), 0);
    /* the row from before the fix is a pending boot too (vastctl fails it: never labelled) */
    instance_row *rows;
    size_t n;
    ASSERT_EQ(instances_list(st, INSTANCES_PENDING_BOOT, 0, 0, &rows, &n), 0);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(rows[0].id, 1);
    ASSERT_EQ(rows[1].id, id);
    free(rows);
    store_close(st);
}

TEST(instances_lifecycle_and_filters)
{
    store *st = open_st();
    char label[64];
    long long a = instances_insert_boot(st, 1, NULL, "gpuscribe", 0, 0, 0, 100, label, sizeof label);
    long long b = instances_insert_boot(st, 2, NULL, "gpuscribe", 0, 0, 0, 100, label, sizeof label);
    ASSERT_EQ(instances_set_created(st, a, "9001", "secret-key", 110, 110), 1);
    ASSERT_EQ(instances_set_error(st, b, "503 from Vast", 111), 1);
    ASSERT_EQ(instances_boot_failed(st, b, NULL, 112), 1);
    instance_row r;
    ASSERT_EQ(instances_get(st, b, &r), 1);
    ASSERT_STR_EQ(r.state, "failed");
    ASSERT_STR_EQ(r.error, "503 from Vast");   /* NULL keeps the error */
    ASSERT_EQ(instances_release_idem_key(st, b), 1);
    ASSERT_EQ(instances_get(st, b, &r), 1);
    ASSERT_CONTAINS(r.idem_key, "#");
    ASSERT_EQ(instances_by_vast_id(st, "9001", &r), 1);
    ASSERT_STR_EQ(r.state, "loading");
    ASSERT_NEAR(r.created_at, 110, 1e-9);
    ASSERT_EQ(count(st, "SELECT count(*) FROM instances WHERE instance_api_key='secret-key'"), 1);
    instance_facts f = {.gpu_name = "RTX 4090", .num_gpus = 1, .dph_total = 0.5,
                        .dph_base = 0.45, .ssh_host = "ssh1.example", .ssh_port = 2222,
                        .running_at = 120};
    ASSERT_EQ(instances_observe(st, 0, "9001", &f, 120), 1);
    instance_facts g = {.gpu_name = "other", .running_at = 130};  /* fills only unknowns */
    ASSERT_EQ(instances_observe(st, a, NULL, &g, 130), 1);
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_STR_EQ(r.gpu_name, "RTX 4090");
    ASSERT_NEAR(r.running_at, 120, 1e-9);
    ASSERT_NEAR(r.dph_total, 0.5, 1e-12);
    ASSERT_EQ(r.ssh_port, 2222);
    ASSERT_EQ(instances_set_state(st, a, "ready", 100, "ready", NULL, 140), 1);
    ASSERT_EQ(instances_set_worker(st, a, 8123), 1);
    ASSERT_EQ(instances_set_ssh_key(st, a, 0), 1);
    ASSERT_EQ(instances_set_setup_log(st, a, "one\ntwo\n"), 1);
    char *log = instances_setup_log(st, a);
    ASSERT_STR_EQ(log, "one\ntwo\n");
    free(log);
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_NEAR(r.ready_at, 140, 1e-9);
    ASSERT_EQ(r.worker_port, 8123);
    ASSERT_TRUE(r.has_ssh_key_id);
    ASSERT_EQ(instances_count(st, INSTANCES_PROVISIONING, 0), 1);
    ASSERT_EQ(instances_count(st, INSTANCES_ACTIVE, 0), 1);
    ASSERT_EQ(instances_keepalive(st, "9001", 999, 150), 1);
    ASSERT_EQ(instances_keepalive(st, "9002", 999, 150), 0);
    /* destroying: set_state no longer moves it (the fleet's thread stops) */
    ASSERT_EQ(instances_set_destroying(st, a, 160), 1);
    ASSERT_EQ(instances_set_state(st, a, "ready", 100, "ready", NULL, 161), 0);
    ASSERT_EQ(instances_count(st, INSTANCES_LIVE, 0), 0);
    ASSERT_EQ(instances_restore_state(st, a, "ready", 162), 1);
    ASSERT_EQ(instances_count(st, INSTANCES_LIVE, 0), 1);
    ASSERT_EQ(instances_mark_destroyed(st, a, NULL, "user", 170, 170), 1);
    ASSERT_EQ(instances_mark_destroyed(st, a, NULL, "idle", 171, 171), 0);
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_STR_EQ(r.destroy_reason, "user");
    ASSERT_STR_EQ(r.stage, "destroyed");
    ASSERT_EQ(instances_count(st, INSTANCES_RECENT, 169), 2);  /* b (failed), a (destroyed at 170) */
    ASSERT_EQ(instances_count(st, INSTANCES_RECENT, 171), 1);
    /* a row found on the account */
    instance_row nr;
    memset(&nr, 0, sizeof nr);
    snprintf(nr.vast_id, sizeof nr.vast_id, "9005");
    snprintf(nr.state, sizeof nr.state, "orphan");
    nr.created_at = nr.updated_at = 200;
    long long c = instances_insert_found(st, &nr);
    ASSERT_TRUE(c > b);
    ASSERT_EQ(instances_insert_found(st, &nr), -1);   /* one row per vast_id */
    ASSERT_EQ(count(st, "SELECT count(*) FROM instances WHERE id=3 AND label IS NULL AND"
                        " running_at IS NULL"), 1);
    instance_row *rows;
    size_t n;
    ASSERT_EQ(instances_list(st, INSTANCES_OURS_NEWEST, 0, 1, &rows, &n), 0);
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(rows[0].vast_id, "9005");
    free(rows);
    ASSERT_EQ(instances_list(st, INSTANCES_OURS, 0, 0, &rows, &n), 0);
    ASSERT_EQ(n, 2);
    ASSERT_STR_EQ(rows[0].vast_id, "9001");
    free(rows);
    store_close(st);
}

static config *test_config(void)
{
    setenv("HOME", test_tmpdir(), 1);
    unsetenv("VAST_API_KEY");
    unsetenv("VAST_INSTANCE_ID");
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("DEADMAN_MINUTES");
    FILE *f = fopen("app.env", "w");
    ASSERT_NOT_NULL(f);
    fputs("DEADMAN_MINUTES=1\nVAST_INSTANCE_ID=9001\n", f);
    fclose(f);
    char *argv[] = {"x", "--env-file", "app.env", NULL};
    char err[256];
    config *c = config_load(3, argv, NULL, err, sizeof err);
    ASSERT_NOT_NULL(c);
    return c;
}

TEST(instances_vanished_closes_ledger_with_reason)
{
    store *st = open_st();
    config *cfg = test_config();
    vastctl *v = vastctl_new(cfg, st);
    char label[64];
    double now = now_wall();
    long long a = instances_insert_boot(st, 1, NULL, "gpuscribe", 0.5, 0.4, 0.036, now - 3600,
                                        label, sizeof label);
    ASSERT_EQ(instances_set_created(st, a, "9001", NULL, now - 3600, now - 3600), 1);
    ASSERT_EQ(ledger_sync(st, a, true, true, 0.4, 0.036, now - 3600), 0);
    ASSERT_EQ(instances_set_seen(st, a, now - 600), 1);      /* last heard 10 min ago */
    char cur[32];
    vastctl_current_instance(v, cur, sizeof cur);
    ASSERT_STR_EQ(cur, "9001");

    double end = 0;
    ASSERT_EQ(vastctl_instance_gone(v, "9001", "gone", &end), 1);
    /* the dead-man switch (1 min) fired a minute after the last contact */
    ASSERT_NEAR(end, now - 540, 2);
    instance_row r;
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_STR_EQ(r.state, "destroyed");
    ASSERT_STR_EQ(r.destroy_reason, "gone");
    ASSERT_STR_EQ(r.stage, "gone from Vast.ai");
    ASSERT_NEAR(r.destroyed_at, end, 1e-6);
    ledger_usage u;
    ASSERT_EQ(ledger_instance(st, a, now + 3600, &u), 0);
    ASSERT_FALSE(u.gpu_open || u.storage_open);
    ASSERT_NEAR(u.gpu_s, 3060, 3);
    ASSERT_EQ(count(st, "SELECT count(*) FROM ledger WHERE end_ts IS NULL"), 0);
    ASSERT_EQ(count(st, "SELECT count(*) FROM events WHERE kind='instance.gone' AND"
                        " subject='9001' AND data LIKE '%\"reason\":\"gone\"%'"), 1);
    vastctl_current_instance(v, cur, sizeof cur);
    ASSERT_STR_EQ(cur, "");                                  /* VAST_INSTANCE_ID cleared */
    /* a second report (another module noticed too) changes nothing */
    ASSERT_EQ(vastctl_instance_gone(v, "9001", "gone", &end), 0);
    ASSERT_EQ(count(st, "SELECT count(*) FROM events WHERE kind='instance.gone'"), 1);
    ASSERT_EQ(vastctl_instance_gone(v, "424242", "gone", NULL), 0);
    /* a reason recorded earlier (a user destroy under way) is kept */
    long long b = instances_insert_boot(st, 2, NULL, "gpuscribe", 0, 0, 0, now, label, sizeof label);
    ASSERT_EQ(instances_set_created(st, b, "9002", NULL, now, now), 1);
    ASSERT_EQ(store_execf(st, "UPDATE instances SET destroy_reason='idle' WHERE id=?", "l", b), 1);
    ASSERT_EQ(vastctl_instance_gone(v, "9002", "gone", NULL), 1);
    ASSERT_EQ(instances_get(st, b, &r), 1);
    ASSERT_STR_EQ(r.destroy_reason, "idle");
    vastctl_free(v);
    config_free(cfg);
    store_close(st);
}

TEST(instances_failed_always_carries_a_reason)
{
    store *st = open_st();
    char label[64];
    long long a = instances_insert_boot(st, 1, NULL, "gpuscribe", 0, 0, 0, 100, label, sizeof label);
    long long b = instances_insert_boot(st, 2, NULL, "gpuscribe", 0, 0, 0, 100, label, sizeof label);
    ASSERT_EQ(instances_set_created(st, a, "9101", NULL, 110, 110), 1);
    /* a step that failed without a message: the row still says what failed */
    ASSERT_EQ(instances_set_state(st, a, "failed", 60, "installing", "", 120), 1);
    instance_row r;
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_STR_EQ(r.state, "failed");
    ASSERT_CONTAINS(r.error, "installing");
    ASSERT_CONTAINS(r.error, "no reason");
    /* an empty error on a failed boot is not kept either */
    ASSERT_EQ(instances_set_error(st, b, "", 111), 1);
    ASSERT_EQ(instances_boot_failed(st, b, "", 112), 1);
    ASSERT_EQ(instances_get(st, b, &r), 1);
    ASSERT_STR_EQ(r.error, "no instance was created");
    /* a given reason is kept as it is */
    ASSERT_EQ(instances_set_state(st, a, "failed", 60, "installing", "setup.sh exited 3", 130), 1);
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_STR_EQ(r.error, "setup.sh exited 3");
    store_close(st);
}

struct by_state { char seen[256]; };

static void add_state(void *ud, const char *state, long long n)
{
    struct by_state *b = ud;
    size_t l = strlen(b->seen);
    snprintf(b->seen + l, sizeof b->seen - l, "%s=%lld;", state, n);
}

TEST(instances_count_by_state_counts_every_row)
{
    store *st = open_st();
    struct by_state b = {""};
    ASSERT_EQ(instances_count_by_state(st, add_state, &b), 0);
    ASSERT_STR_EQ(b.seen, "");
    char label[64];
    long long r1 = instances_insert_boot(st, 1, NULL, "gpuscribe", 0, 0, 0, 1000, label, sizeof label);
    ASSERT_TRUE(instances_insert_boot(st, 2, NULL, "gpuscribe", 0, 0, 0, 1000, label, sizeof label) > 0);
    ASSERT_TRUE(instances_insert_boot(st, 3, NULL, "gpuscribe", 0, 0, 0, 1000, label, sizeof label) > 0);
    ASSERT_EQ(instances_boot_failed(st, r1, "no", 1001), 1);
    ASSERT_EQ(instances_count_by_state(st, add_state, &b), 0);
    ASSERT_STR_EQ(b.seen, "creating=2;failed=1;");
    store_close(st);
}
