/* Unit tests for src/fleet/provision helpers: setup progress lines, the worker env file's
 * quoting (read back by config.c's .env reader), and the source bundle for the
 * build-from-source path, checked by `remote/setup.sh --check-build` (a dry run). */
#include "test.h"

#include "core/config.h"
#include "core/util.h"
#include "fleet/provision.h"

#include <stdlib.h>
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

TEST(provision_bundle_and_check_build)
{
    char err[256];
    ASSERT_EQ(fleet_make_bundle("/nonexistent-src", "b.tgz", err, sizeof err), -1);
    ASSERT_CONTAINS(err, "no gpuscribe source tree");
    ASSERT_EQ(fleet_make_bundle(GS_SRCDIR, "bundle.tar.gz", err, sizeof err), 0);
    struct stat st;
    ASSERT_EQ(stat("bundle.tar.gz", &st), 0);
    ASSERT_TRUE(st.st_size > 10000);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    mkdir("inst", 0700);
    char *cmd = xasprintf("GS_DIR=%s/inst sh %s/remote/setup.sh --check-build %s/bundle.tar.gz "
                          "--engine sphinx >check.out 2>&1", test_tmpdir(), GS_SRCDIR,
                          test_tmpdir());
    int rc = system(cmd);
    free(cmd);
    char *out = read_file("check.out", 1 << 16, NULL);
    ASSERT_NOT_NULL(out);
    if (rc != 0) test_fail(__FILE__, __LINE__, "check-build failed: %s", out);
    ASSERT_CONTAINS(out, "bundle ok");
    ASSERT_CONTAINS(out, "engine: sphinx");
    ASSERT_CONTAINS(out, "would run: tar -xzf");
    free(out);
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
