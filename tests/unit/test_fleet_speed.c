/* Unit tests for src/fleet/speed (measured GPU speeds, the seed table, cost per audio hour,
 * the ranking) and src/fleet/hosts (hosts remembered as bad), on a real store: speeds are
 * learned through migration 6's trigger from chunks marked done, bad hosts from instance
 * rows that fail or vanish. */
#include "test.h"

#include "core/util.h"
#include "fleet/hosts.h"
#include "fleet/speed.h"
#include "store/instances.h"

#include <math.h>
#include <stdlib.h>

static store *open_st(void)
{
    char err[256];
    store *st = store_open("data", err, sizeof err);
    ASSERT_NOT_NULL(st);
    return st;
}

/* An instance row of gpu (vast id vid) and one job with n done chunks of audio_s seconds
 * each, each busy busy_s on that instance, as the dispatcher writes them. */
static long long add_measured(store *st, const char *vid, const char *gpu, int n, double audio_s,
                              double busy_s, const char *engine)
{
    instance_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.vast_id, sizeof r.vast_id, "%s", vid);
    snprintf(r.state, sizeof r.state, "ready");
    snprintf(r.gpu_name, sizeof r.gpu_name, "%s", gpu);
    r.created_at = r.updated_at = now_wall();
    long long row = instances_insert_found(st, &r);
    ASSERT_TRUE(row > 0);
    char job[32];
    snprintf(job, sizeof job, "job-%s", vid);
    ASSERT_EQ(store_execf(st, "INSERT INTO jobs(id, state, filename, created_at) VALUES(?, "
                              "'running', 'a.wav', 0)", "t", job), 1);
    for (int i = 0; i < n; i++) {
        ASSERT_EQ(store_execf(st, "INSERT INTO chunks(job_id, idx, start_s, end_s, state) "
                                  "VALUES(?,?,?,?,'running')", "tldd", job, (long long)i,
                              i * audio_s, (i + 1) * audio_s), 1);
        ASSERT_EQ(store_execf(st, "UPDATE chunks SET state='done', backend='remote', engine=?, "
                                  "instance_id=?, gpu_seconds=? WHERE job_id=? AND idx=?",
                              "tldtl", engine, row, busy_s, job, (long long)i), 1);
    }
    return row;
}

TEST(speed_table_and_default_before_measuring)
{
    store *st = open_st();
    gpu_speed sp;
    speed_get(st, "RTX 4090", NULL, &sp);
    ASSERT_STR_EQ(sp.source, "table");
    ASSERT_NEAR(sp.x, SPEED_ANCHOR_X, 1e-9);
    speed_get(st, "RTX_4090", "whisper", &sp); /* Vast's spelling */
    ASSERT_NEAR(sp.x, SPEED_ANCHOR_X, 1e-9);
    speed_get(st, "H100 SXM", NULL, &sp);
    ASSERT_TRUE(sp.x > 3 * SPEED_ANCHOR_X); /* 3352 GB/s against 1008 */
    speed_get(st, "Imaginary GPU 9000", NULL, &sp);
    ASSERT_STR_EQ(sp.source, "default");
    ASSERT_NEAR(sp.x, SPEED_DEFAULT_X, 1e-9);
    ASSERT_NEAR(speed_boot_s(st), SPEED_BOOT_DEFAULT_S, 1e-9);
    store_close(st);
}

TEST(speed_learned_from_done_chunks)
{
    store *st = open_st();
    /* 2 chunks of 100 s: below SPEED_MIN_AUDIO_S, the table still answers */
    add_measured(st, "11", "RTX 4090", 2, 100, 10, "whisper");
    gpu_speed sp;
    speed_get(st, "RTX 4090", NULL, &sp);
    ASSERT_STR_EQ(sp.source, "table");
    ASSERT_NEAR(sp.audio_s, 200, 1e-9);
    ASSERT_EQ(sp.chunks, 2);
    /* 4 more of 100 s in 50 s each: 600 s of audio in 300 s busy -> 2x */
    add_measured(st, "12", "RTX 4090", 4, 100, 50, "whisper");
    speed_get(st, "RTX 4090", NULL, &sp);
    ASSERT_STR_EQ(sp.source, "measured");
    ASSERT_NEAR(sp.x, 600.0 / 220.0, 1e-9);
    speed_get(st, "RTX 4090", "whisper", &sp);
    ASSERT_STR_EQ(sp.source, "measured");
    speed_get(st, "RTX 4090", "parakeet", &sp); /* nothing measured for that engine */
    ASSERT_STR_EQ(sp.source, "table");
    /* a chunk done locally, or failed, teaches nothing */
    ASSERT_EQ(store_execf(st, "INSERT INTO chunks(job_id, idx, start_s, end_s, state) VALUES("
                              "'job-11', 9, 0, 1000, 'running')", ""), 1);
    ASSERT_EQ(store_execf(st, "UPDATE chunks SET state='done', backend='local', gpu_seconds=1 "
                              "WHERE job_id='job-11' AND idx=9", ""), 1);
    speed_get(st, "RTX 4090", NULL, &sp);
    ASSERT_EQ(sp.chunks, 6);
    /* deleting the jobs keeps what they taught */
    ASSERT_TRUE(store_execf(st, "DELETE FROM chunks", "") > 0);
    speed_get(st, "RTX 4090", NULL, &sp);
    ASSERT_STR_EQ(sp.source, "measured");
    json_t *j = speed_json(st);
    ASSERT_EQ(json_array_size(json_object_get(j, "models")), 1);
    json_decref(j);
    store_close(st);
}

TEST(cost_per_audio_hour_formula)
{
    /* $1/h at 10x with 1 slot: $0.10 per audio hour, plus 600 s of boot ($0.1667) spread
     * over an hour of backlog (at least one) */
    ASSERT_NEAR(speed_cost_per_audio_hour(1.0, 10, 1, 0, 0), 0.1, 1e-12);
    ASSERT_NEAR(speed_cost_per_audio_hour(1.0, 10, 1, 600, 0), 0.1 + 600.0 / 3600, 1e-12);
    ASSERT_NEAR(speed_cost_per_audio_hour(1.0, 10, 2, 600, 36000), 0.05 + 600.0 / 36000, 1e-12);
}

/* The ranking test of issue 14: with two GPU models of known measured speed, the one
 * cheaper per audio hour comes first even though its $/h is higher. */
TEST(rank_by_cost_per_audio_hour_not_price)
{
    store *st = open_st();
    add_measured(st, "21", "RTX 3060", 4, 100, 50, "whisper");  /* 2x */
    add_measured(st, "22", "H100 SXM", 4, 100, 2, "whisper");   /* 50x */
    vast_offer offers[3];
    memset(offers, 0, sizeof offers);
    snprintf(offers[0].gpu_name, sizeof offers[0].gpu_name, "RTX 3060");
    offers[0].dph_total = 0.10; /* 0.05 $/audio h */
    snprintf(offers[1].gpu_name, sizeof offers[1].gpu_name, "H100 SXM");
    offers[1].dph_total = 2.00; /* 0.04 $/audio h */
    snprintf(offers[2].gpu_name, sizeof offers[2].gpu_name, "RTX 3060");
    offers[2].dph_total = 0.12;
    offer_rank rk[3];
    speed_rank(st, "whisper", 1, 0, 3600, offers, 3, rk);
    ASSERT_EQ(rk[0].index, 1);
    ASSERT_EQ(rk[1].index, 0);
    ASSERT_EQ(rk[2].index, 2);
    ASSERT_STR_EQ(rk[0].speed.source, "measured");
    ASSERT_NEAR(rk[0].cost_per_audio_hour, 2.0 / 50, 1e-9);
    ASSERT_NEAR(rk[1].cost_per_audio_hour, 0.10 / 2, 1e-9);
    /* a long boot spread over a short backlog turns it round: 2 h of boot costs the H100 $4 */
    speed_rank(st, "whisper", 1, 7200, 3600, offers, 3, rk);
    ASSERT_EQ(rk[0].index, 0);
    store_close(st);
}

TEST(hosts_failed_or_vanished_are_remembered)
{
    store *st = open_st();
    double now = now_wall();
    long long a = add_measured(st, "31", "RTX 4090", 0, 0, 0, "whisper");
    long long b = add_measured(st, "32", "RTX 4090", 0, 0, 0, "whisper");
    long long c = add_measured(st, "33", "RTX 4090", 0, 0, 0, "whisper");
    ASSERT_EQ(instances_set_machine(st, a, 7001), 1);
    ASSERT_EQ(instances_set_machine(st, b, 7002), 1);
    ASSERT_EQ(instances_set_machine(st, c, 7003), 1);
    ASSERT_EQ(hosts_bad(st, 7001, 24, now, NULL), 0);
    /* a failed instance marks its host, with the error */
    ASSERT_EQ(instances_set_state(st, a, "failed", 0, "setup", "setup.sh exited 1", now), 1);
    bad_host h;
    ASSERT_EQ(hosts_bad(st, 7001, 24, now, &h), 1);
    ASSERT_TRUE(strstr(h.reason, "setup.sh exited 1") != NULL);
    ASSERT_STR_EQ(h.vast_id, "31");
    ASSERT_NEAR(h.until - h.marked_at, 24 * 3600.0, 1e-6);
    /* only for BAD_HOST_HOURS, and never with 0 */
    ASSERT_EQ(hosts_bad(st, 7001, 24, now + 25 * 3600, NULL), 0);
    ASSERT_EQ(hosts_bad(st, 7001, 0, now, NULL), 0);
    /* vanished (destroyed, reason gone): marked; destroyed by the user: not */
    ASSERT_EQ(instances_mark_destroyed(st, b, "gone from Vast.ai", "gone", now, now), 1);
    ASSERT_EQ(hosts_bad(st, 7002, 24, now, &h), 1);
    ASSERT_TRUE(strstr(h.reason, "vanished") != NULL);
    ASSERT_EQ(instances_mark_destroyed(st, c, NULL, "user", now, now), 1);
    ASSERT_EQ(hosts_bad(st, 7003, 24, now, NULL), 0);
    json_t *j = hosts_bad_json(st, 24, now);
    ASSERT_EQ(json_array_size(j), 2);
    json_decref(j);
    /* the row shows its host */
    instance_row r;
    ASSERT_EQ(instances_get(st, a, &r), 1);
    ASSERT_EQ(r.machine_id, 7001);
    store_close(st);
}
