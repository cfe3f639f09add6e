/* Unit tests for src/fleet/provision helpers: setup progress lines, the worker env file's
 * quoting (read back by config.c's .env reader), and the worker's source bundle as the
 * controller finds it, checked by `remote/setup.sh --check-build` (a dry run). */
#include "test.h"

#include "core/config.h"
#include "core/util.h"
#include "fleet/remote_setup.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef GS_SRCDIR
#define GS_SRCDIR "."
#endif

TEST(provision_progress_lines)
{
    int pct = -1;
    char stage[64];
    ASSERT_EQ(fleet_parse_progress("GPUSCRIBE-PROGRESS 70 installing engine (sphinx)", &pct,
                                   stage, sizeof stage), 1);
    ASSERT_EQ(pct, 70);
    ASSERT_STR_EQ(stage, "installing engine (sphinx)");
    ASSERT_EQ(fleet_parse_progress("GPUSCRIBE-PROGRESS 101 too much", &pct, stage, sizeof stage), 0);
    ASSERT_EQ(fleet_parse_progress("GPUSCRIBE-PROGRESS x", &pct, stage, sizeof stage), 0);
    ASSERT_EQ(fleet_parse_progress("progress 50 no", &pct, stage, sizeof stage), 0);
    ASSERT_EQ(fleet_parse_progress("GPUSCRIBE-PROGRESS 5", &pct, stage, sizeof stage), 1);
    ASSERT_STR_EQ(stage, "");
}

TEST(provision_step_lines)
{
    char name[32];
    double secs = -1;
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP packages 12.34", name, sizeof name, &secs), 1);
    ASSERT_STR_EQ(name, "packages");
    ASSERT_NEAR(secs, 12.34, 1e-9);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP models 0.00\r", name, sizeof name, &secs), 1);
    ASSERT_STR_EQ(name, "models");
    ASSERT_NEAR(secs, 0, 1e-9);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP build -1", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP build x", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP build 3 extra", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP build", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP b<a>d 3", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP inf inf", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-PROGRESS 70 installing", name, sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP a-very-long-step-name-of-40-chars-x 1", name,
                               sizeof name, &secs), 0);
    ASSERT_EQ(fleet_parse_step("GPUSCRIBE-STEP worker 1.5", name, 4, &secs), 0); /* no room */
}

TEST(provision_env_line_round_trips)
{
    const char *vals[] = {"plain-value_1.2", "with space", "q\"uo'te", "back\\slash", "$HOME `x`",
                          "line\nbreak", "a #not-comment"};
    FILE *f = fopen("w.env", "w");
    ASSERT_NOT_NULL(f);
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        char *l = fleet_env_line("HF_TOKEN", vals[i]);
        fputs(l, f);
        free(l);
    }
    fclose(f);
    /* each line alone, read back through the real .env reader (the last one wins) */
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        char *l = fleet_env_line("HF_TOKEN", vals[i]);
        FILE *g = fopen("one.env", "w");
        fputs(l, g);
        fclose(g);
        free(l);
        char *argv[] = {"x", "--env-file", "one.env", NULL};
        char err[256];
        unsetenv("HF_TOKEN");
        config *c = config_load(3, argv, NULL, err, sizeof err);
        ASSERT_NOT_NULL(c);
        ASSERT_STR_EQ(config_str(c, CFG_HF_TOKEN), vals[i]);
        config_free(c);
    }
}

TEST(provision_worker_payload_and_check_build)
{
    char err[256];
    fleet_payload p;
    ASSERT_EQ(fleet_find_worker_payload("/nonexistent/bin/gpuscribe", "/nonexistent-src", &p, err,
                                        sizeof err), -1);
    ASSERT_CONTAINS(err, "no worker source bundle");
    ASSERT_NULL(p.bundle);
    /* the build tree's bundle, found from a binary in build/asan/ (its parent) */
    char *exe = xasprintf("%s/build/asan/gpuscribe", GS_SRCDIR);
    ASSERT_EQ(fleet_find_worker_payload(exe, "/nonexistent-src", &p, err, sizeof err), 0);
    free(exe);
    ASSERT_CONTAINS(p.bundle, "/gpuscribe-src.tar.gz");
    ASSERT_EQ(strlen(p.src_id), 64);
    ASSERT_NOT_NULL(p.worker);
    ASSERT_CONTAINS(p.worker, "/gpuscribe-worker");
    /* the id is the bundle's sha256 */
    char *cmd = xasprintf("sha256sum %s | cut -c1-64 >sum.out", p.bundle);
    ASSERT_EQ(system(cmd), 0);
    free(cmd);
    char *sum = read_file("sum.out", 256, NULL);
    ASSERT_NOT_NULL(sum);
    sum[strcspn(sum, "\n")] = '\0';
    ASSERT_STR_EQ(sum, p.src_id);
    free(sum);
    mkdir("inst", 0700);
    cmd = xasprintf("GS_DIR=%s/inst sh %s/remote/setup.sh --check-build %s --engine sphinx "
                    ">check.out 2>&1", test_tmpdir(), GS_SRCDIR, p.bundle);
    int rc = system(cmd);
    free(cmd);
    char *out = read_file("check.out", 1 << 16, NULL);
    ASSERT_NOT_NULL(out);
    if (rc != 0) test_fail(__FILE__, __LINE__, "check-build failed: %s", out);
    ASSERT_CONTAINS(out, "bundle ok");
    ASSERT_CONTAINS(out, "engine: sphinx");
    ASSERT_CONTAINS(out, "make -C build-src worker");
    free(out);
    fleet_payload_release(&p);
    /* a bundle without the sources is refused */
    ASSERT_EQ(system("echo x > junk && tar -czf bad.tar.gz junk"), 0);
    cmd = xasprintf("GS_DIR=%s/inst sh %s/remote/setup.sh --check-build %s/bad.tar.gz >bad.out 2>&1",
                    test_tmpdir(), GS_SRCDIR, test_tmpdir());
    rc = system(cmd);
    free(cmd);
    ASSERT_NE(rc, 0);
    out = read_file("bad.out", 1 << 16, NULL);
    ASSERT_CONTAINS(out, "lacks Makefile");
    free(out);
}
