#include "test.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <jansson.h>
#include <math.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static config *load(char **argv, int argc, char *err)
{
    return config_load(argc, argv, NULL, err, 512);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

TEST(config_defaults)
{
    char err[512];
    setenv("HOME", test_tmpdir(), 1);
    unsetenv("XDG_DATA_HOME");
    char *argv[] = {"serve"};
    config *c = load(argv, 1, err);
    ASSERT_NOT_NULL(c);
    ASSERT_STR_EQ(config_str(c, CFG_HOST), "127.0.0.1");
    ASSERT_EQ(config_int(c, CFG_PORT), 8000);
    ASSERT_STR_EQ(config_str(c, CFG_VAST_URL), "https://console.vast.ai");
    ASSERT_NULL(config_str(c, CFG_VAST_API_KEY));
    ASSERT_TRUE(isnan(config_num(c, CFG_AUTO_DESTROY_AFTER_HOURS)));
    ASSERT_NEAR(config_num(c, CFG_IDLE_DESTROY_MINUTES), 15, 1e-9);
    ASSERT_FALSE(config_bool(c, CFG_GPU_ONLY));
    char *want = xasprintf("%s/.local/share/gpuscribe", test_tmpdir());
    ASSERT_STR_EQ(config_str(c, CFG_DATA_DIR), want);
    free(want);
    config_free(c);
}

/* WEB_DIR: the source tree's web/ for a development build (this one), else the installed one */
TEST(config_web_dir_default)
{
    char err[512];
    setenv("HOME", test_tmpdir(), 1);
    char *argv[] = {"serve"};
    config *c = load(argv, 1, err);
    ASSERT_NOT_NULL(c);
    ASSERT_STR_EQ(config_str(c, CFG_WEB_DIR), GS_SRCDIR "/web");
    ASSERT_EQ(config_source(c, CFG_WEB_DIR), CFG_SRC_DEFAULT);
    ASSERT_STR_EQ(config_default_web_dir(), GS_SRCDIR "/web");
    config_free(c);
    /* a tree without web/ (the package's build: SRCDIR is no tree) or with a file there */
    ASSERT_STR_EQ(config_pick_web_dir("nope/web", "/usr/share/gpuscribe/web"), "/usr/share/gpuscribe/web");
    write_text("web", "not a directory");
    ASSERT_STR_EQ(config_pick_web_dir("web", "/usr/share/gpuscribe/web"), "/usr/share/gpuscribe/web");
    ASSERT_EQ(unlink("web"), 0);
    ASSERT_EQ(mkdir("web", 0700), 0);
    ASSERT_STR_EQ(config_pick_web_dir("web", "/usr/share/gpuscribe/web"), "web");
    /* a flag still wins */
    char *argv2[] = {"serve", "--web-dir", "/srv/ui"};
    c = load(argv2, 3, err);
    ASSERT_NOT_NULL(c);
    ASSERT_STR_EQ(config_str(c, CFG_WEB_DIR), "/srv/ui");
    config_free(c);
}

/* gpuscribe(1)'s options and the completion's flags come from the table: every setting */
TEST(config_man_and_flags_list_every_setting)
{
    char *man = NULL, *flags = NULL;
    size_t nm = 0, nf = 0;
    FILE *f = open_memstream(&man, &nm);
    config_print_man_options(f);
    fclose(f);
    f = open_memstream(&flags, &nf);
    config_print_flags(f);
    fclose(f);
    ASSERT_CONTAINS(man, ".B VAST_API_KEY\n");
    ASSERT_CONTAINS(man, ".BR \"\\-\\-data\\-dir\" \" \\fIVALUE\\fR, \" DATA_DIR\n");
    ASSERT_CONTAINS(man, "(default: 8000).");
    ASSERT_CONTAINS(man, "one of error|warn|info|debug (default: info).");
    ASSERT_CONTAINS(man, "\\-\\-env\\-file");
    ASSERT_CONTAINS(flags, "--data-dir ");
    ASSERT_CONTAINS(flags, "--env-file");
    ASSERT_TRUE(strstr(flags, "--vast-api-key") == NULL); /* a secret is no flag */
    ASSERT_TRUE(strstr(flags, "--api-token") == NULL);
    ASSERT_TRUE(strchr(flags, '\n') == NULL);
    for (int i = 0; i < CFG_COUNT; i++) {
        char *line = xasprintf(" %s\n", config_name((enum cfg_id)i)); /* ".BR ... NAME" / ".B NAME" */
        ASSERT_CONTAINS(man, line);
        free(line);
    }
    /* no line may start a roff request by accident: every line is a request we wrote or text
     * that does not start with '.' or '\'' */
    int requests = 0;
    for (char *l = man; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (*l == '.') {
            ASSERT_TRUE(!strncmp(l, ".TP\n", 4) || !strncmp(l, ".B ", 3) || !strncmp(l, ".BR ", 4) ||
                        !strncmp(l, ".BI ", 4));
            requests++;
        }
    ASSERT_TRUE(requests >= 2 * CFG_COUNT);
    free(man);
    free(flags);
}

TEST(config_precedence)
{
    char err[512];
    write_text(".env", "PORT=8101\nLOG_LEVEL=debug\nVAST_URL=http://127.0.0.1:1\n");
    setenv("PORT", "8102", 1);
    setenv("IDLE_DESTROY_MINUTES", "0.5", 1);
    char *argv[] = {"serve", "--port", "8103", "--gpu-only=1"};
    config *c = load(argv, 4, err);
    ASSERT_NOT_NULL(c);
    ASSERT_EQ(config_int(c, CFG_PORT), 8103);
    ASSERT_EQ(config_source(c, CFG_PORT), CFG_SRC_FLAG);
    ASSERT_STR_EQ(config_str(c, CFG_LOG_LEVEL), "debug");
    ASSERT_EQ(config_source(c, CFG_LOG_LEVEL), CFG_SRC_ENVFILE);
    ASSERT_NEAR(config_num(c, CFG_IDLE_DESTROY_MINUTES), 0.5, 1e-9);
    ASSERT_TRUE(config_bool(c, CFG_GPU_ONLY));
    config_free(c);
    char *argv2[] = {"serve"};
    c = load(argv2, 1, err);
    ASSERT_EQ(config_int(c, CFG_PORT), 8102);
    ASSERT_EQ(config_source(c, CFG_PORT), CFG_SRC_ENV);
    config_free(c);
    unsetenv("PORT");
    unsetenv("IDLE_DESTROY_MINUTES");
}

TEST(config_env_file_syntax)
{
    char err[512];
    write_text("x.env",
               "# a comment\n"
               "\n"
               "export VAST_INSTANCE_ID=29040483\n"
               "HF_TOKEN = 'single quoted # kept'\n"
               "OPENAI_BASE_URL=\"http://127.0.0.1:9/v1\" \n"
               "WHISPER_MODEL=large-v3-turbo # inline comment\n"
               "API_TOKEN=\"with \\\"escaped\\\" quotes\"\n"
               "UNKNOWN_KEY=ignored\n");
    char *argv[] = {"serve", "--env-file", "x.env"};
    config *c = load(argv, 3, err);
    ASSERT_NOT_NULL(c);
    ASSERT_STR_EQ(config_str(c, CFG_VAST_INSTANCE_ID), "29040483");
    ASSERT_STR_EQ(config_str(c, CFG_HF_TOKEN), "single quoted # kept");
    ASSERT_STR_EQ(config_str(c, CFG_OPENAI_BASE_URL), "http://127.0.0.1:9/v1");
    ASSERT_STR_EQ(config_str(c, CFG_WHISPER_MODEL), "large-v3-turbo");
    ASSERT_STR_EQ(config_str(c, CFG_API_TOKEN), "with \"escaped\" quotes");
    ASSERT_STR_EQ(config_env_path(c), "x.env");
    config_free(c);
    log_clear_secrets();
}

TEST(config_invalid_values)
{
    char err[512];
    struct { const char *flag, *val, *want; } cases[] = {
        {"--port", "abc", "PORT: invalid value 'abc'"},
        {"--port", "70000", "PORT: invalid value '70000'"},
        {"--log-level", "loud", "LOG_LEVEL: invalid value 'loud' (expected one of error|warn|info|debug)"},
        {"--gpu-only", "maybe", "GPU_ONLY: invalid value 'maybe'"},
        {"--idle-destroy-minutes", "-3", "IDLE_DESTROY_MINUTES"},
        {"--idle-destroy-minutes", "nan", "IDLE_DESTROY_MINUTES"},
        {"--max-upload-mb", "0", "MAX_UPLOAD_MB"},
        {"--engine", "gpt", "ENGINE"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *argv[] = {"serve", (char *)cases[i].flag, (char *)cases[i].val};
        config *c = load(argv, 3, err);
        ASSERT_NULL(c);
        ASSERT_CONTAINS(err, cases[i].want);
    }
    char *argv[] = {"serve", "--port"};
    ASSERT_NULL(load(argv, 2, err));
    ASSERT_CONTAINS(err, "--port needs a value");
    char *argv2[] = {"serve", "--vast-api-key", "secret-value-1234"};
    ASSERT_NULL(load(argv2, 3, err));
    ASSERT_CONTAINS(err, "secrets are not accepted");
    ASSERT_NOT_CONTAINS(err, "secret-value-1234");
    write_text("bad.env", "PORT=1\nthis line is wrong\n");
    char *argv3[] = {"serve", "--env-file", "bad.env"};
    ASSERT_NULL(load(argv3, 3, err));
    ASSERT_CONTAINS(err, "bad.env:2: malformed line");
}

TEST(config_positional_and_unknown_flags_are_left)
{
    char err[512];
    char **rest = NULL;
    char *argv[] = {"transcribe", "file.wav", "--format", "srt", "--port", "9000"};
    config *c = config_load(6, argv, &rest, err, sizeof err);
    ASSERT_NOT_NULL(c);
    ASSERT_STR_EQ(rest[0], "file.wav");
    ASSERT_STR_EQ(rest[1], "--format");
    ASSERT_STR_EQ(rest[2], "srt");
    ASSERT_NULL(rest[3]);
    ASSERT_EQ(config_int(c, CFG_PORT), 9000);
    free(rest);
    config_free(c);
}

TEST(config_vast_key_file)
{
    char err[512];
    setenv("HOME", test_tmpdir(), 1);
    setenv("XDG_CONFIG_HOME", "xdg", 1);
    mkdir_p("xdg/vastai", 0700);
    write_text("xdg/vastai/vast_api_key", "  key-from-xdg-file-0001 \n");
    write_text(".vast_api_key", "key-from-home-0002\n");
    char *argv[] = {"serve"};
    config *c = load(argv, 1, err);
    ASSERT_STR_EQ(config_str(c, CFG_VAST_API_KEY), "key-from-xdg-file-0001");
    ASSERT_EQ(config_source(c, CFG_VAST_API_KEY), CFG_SRC_KEYFILE);
    config_free(c);
    unlink("xdg/vastai/vast_api_key");
    c = load(argv, 1, err);
    ASSERT_STR_EQ(config_str(c, CFG_VAST_API_KEY), "key-from-home-0002");
    config_free(c);
    setenv("VAST_API_KEY", "key-from-env-0003", 1);
    c = load(argv, 1, err);
    ASSERT_STR_EQ(config_str(c, CFG_VAST_API_KEY), "key-from-env-0003");
    config_free(c);
    unsetenv("VAST_API_KEY");
    log_clear_secrets();
}

TEST(config_secrets_redacted_in_dump_and_logs)
{
    char err[512];
    setenv("OPENAI_API_KEY", "sk-test-not-real-abcdef", 1);
    char *argv[] = {"serve"};
    config *c = load(argv, 1, err);
    json_t *j = config_dump_json(c);
    char *s = json_dumps(j, 0);
    ASSERT_NOT_CONTAINS(s, "sk-test-not-real-abcdef");
    ASSERT_TRUE(json_is_true(json_object_get(j, "OPENAI_API_KEY")));
    ASSERT_TRUE(json_is_false(json_object_get(j, "HF_TOKEN")));
    char *r = log_redact("Authorization: Bearer sk-test-not-real-abcdef!");
    ASSERT_STR_EQ(r, "Authorization: Bearer [REDACTED]!");
    free(r);
    free(s);
    json_decref(j);
    config_free(c);
    unsetenv("OPENAI_API_KEY");
    log_clear_secrets();
}

TEST(config_env_set_keeps_other_lines)
{
    char err[256];
    write_text(".env", "# my settings\nVAST_API_KEY=abc\n\nVAST_INSTANCE_ID=111 # old\nexport LOG_LEVEL=debug\n");
    chmod(".env", 0644);
    ASSERT_EQ(config_env_set(".env", "VAST_INSTANCE_ID", "29040484", err, sizeof err), 0);
    char *t = read_file(".env", 4096, NULL);
    ASSERT_STR_EQ(t, "# my settings\nVAST_API_KEY=abc\n\nVAST_INSTANCE_ID=29040484\nexport LOG_LEVEL=debug\n");
    free(t);
    struct stat st;
    ASSERT_EQ(stat(".env", &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0644); /* the file's own mode is kept */
    /* clear */
    ASSERT_EQ(config_env_set(".env", "VAST_INSTANCE_ID", NULL, err, sizeof err), 0);
    t = read_file(".env", 4096, NULL);
    ASSERT_STR_EQ(t, "# my settings\nVAST_API_KEY=abc\n\nexport LOG_LEVEL=debug\n");
    free(t);
    /* append a value that needs quoting, and read it back through config_load */
    ASSERT_EQ(config_env_set(".env", "HF_TOKEN", "a b\"c\\d#e", err, sizeof err), 0);
    char *argv[] = {"serve"};
    config *c = config_load(1, argv, NULL, err, sizeof err);
    ASSERT_NOT_NULL(c);
    ASSERT_STR_EQ(config_str(c, CFG_HF_TOKEN), "a b\"c\\d#e");
    config_free(c);
    log_clear_secrets();
    /* no file yet: created with 0600; a file without a final newline keeps its last line */
    ASSERT_EQ(config_env_set("new.env", "PORT", "1234", err, sizeof err), 0);
    ASSERT_EQ(stat("new.env", &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    write_text("nonl.env", "A=1");
    ASSERT_EQ(config_env_set("nonl.env", "B", "2", err, sizeof err), 0);
    t = read_file("nonl.env", 4096, NULL);
    ASSERT_STR_EQ(t, "A=1\nB=2\n");
    free(t);
    ASSERT_NE(config_env_set(".env", "BAD KEY", "x", err, sizeof err), 0);
    /* duplicate keys collapse to one line */
    write_text("dup.env", "X=1\nX=2\n");
    ASSERT_EQ(config_env_set("dup.env", "X", "3", err, sizeof err), 0);
    t = read_file("dup.env", 4096, NULL);
    ASSERT_STR_EQ(t, "X=3\n");
    free(t);
}

TEST(config_loopback_detection)
{
    ASSERT_TRUE(config_host_is_loopback("127.0.0.1"));
    ASSERT_TRUE(config_host_is_loopback("127.3.2.1"));
    ASSERT_TRUE(config_host_is_loopback("::1"));
    ASSERT_TRUE(config_host_is_loopback("localhost"));
    ASSERT_FALSE(config_host_is_loopback("0.0.0.0"));
    ASSERT_FALSE(config_host_is_loopback("192.168.1.2"));
    ASSERT_FALSE(config_host_is_loopback("::"));
    ASSERT_FALSE(config_host_is_loopback("localhost.evil.com"));
    ASSERT_FALSE(config_host_is_loopback(""));
}

/* config_set from one thread while others read the same value: every string a reader got
 * stays valid (ASan would report a use after free), and readers see whole values. */
#include <pthread.h>

static config *race_cfg;
static int race_stop; /* accessed with __atomic builtins */

static void *race_reader(void *arg)
{
    (void)arg;
    long seen = 0;
    while (!__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE)) {
        const char *v = config_str(race_cfg, CFG_VAST_INSTANCE_ID);
        if (v && strncmp(v, "inst-", 5) != 0) return (void *)-1;
        if (v) seen += (long)strlen(v) > 0;
    }
    return (void *)seen;
}

TEST(config_set_is_safe_against_concurrent_readers)
{
    char err[256];
    char *argv[] = {"serve"};
    race_cfg = config_load(1, argv, NULL, err, sizeof err);
    ASSERT_NOT_NULL(race_cfg);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, race_reader, NULL);
    for (int i = 0; i < 2000; i++) {
        char v[32];
        snprintf(v, sizeof v, "inst-%d", i);
        config_set(race_cfg, CFG_VAST_INSTANCE_ID, i % 7 == 0 ? NULL : v);
    }
    __atomic_store_n(&race_stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        ASSERT_TRUE(r != (void *)-1);
    }
    config_set(race_cfg, CFG_PORT, "9001");
    ASSERT_EQ(config_int(race_cfg, CFG_PORT), 9001);
    config_free(race_cfg);
}

/* ---- .env edits through symlinks, and refusals of what is not a regular file ----------- */


static char *slurp(const char *path)
{
    char *t = read_file(path, 1 << 16, NULL);
    ASSERT_NOT_NULL(t);
    return t;
}

static void assert_link(const char *path, const char *target)
{
    struct stat st;
    ASSERT_EQ(lstat(path, &st), 0);
    ASSERT_TRUE(S_ISLNK(st.st_mode));
    char buf[512];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    ASSERT_TRUE(n > 0);
    buf[n] = '\0';
    ASSERT_STR_EQ(buf, target);
}

TEST(config_env_set_symlink_edits_target_keeping_mode_and_owner)
{
    char err[1024];
    write_text("real.env", "# keep me\nVAST_API_KEY=abc\n");
    ASSERT_EQ(chmod("real.env", 0640), 0);
    int chowned = geteuid() == 0 && chown("real.env", 1234, 5678) == 0;
    ASSERT_EQ(symlink("real.env", ".env"), 0);
    ASSERT_EQ(config_env_set(".env", "VAST_INSTANCE_ID", "42", err, sizeof err), 0);
    assert_link(".env", "real.env");
    char *t = slurp("real.env");
    ASSERT_STR_EQ(t, "# keep me\nVAST_API_KEY=abc\nVAST_INSTANCE_ID=42\n");
    free(t);
    struct stat st;
    ASSERT_EQ(stat("real.env", &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0640);
    if (chowned) {
        ASSERT_EQ(st.st_uid, 1234);
        ASSERT_EQ(st.st_gid, 5678);
    }
    ASSERT_EQ(config_env_set(".env", "VAST_INSTANCE_ID", NULL, err, sizeof err), 0);
    assert_link(".env", "real.env");
    t = slurp("real.env");
    ASSERT_STR_EQ(t, "# keep me\nVAST_API_KEY=abc\n");
    free(t);
    ASSERT_EQ(stat("real.env", &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0640);
    ASSERT_EQ(test_temp_files("."), 0);
    /* an absolute link */
    char *abs = xasprintf("%s/real.env", test_tmpdir());
    ASSERT_EQ(symlink(abs, "abs.env"), 0);
    ASSERT_EQ(config_env_set("abs.env", "PORT", "9", err, sizeof err), 0);
    assert_link("abs.env", abs);
    t = slurp("real.env");
    ASSERT_STR_EQ(t, "# keep me\nVAST_API_KEY=abc\nPORT=9\n");
    free(t);
    free(abs);
    ASSERT_EQ(test_temp_files("."), 0);
}

TEST(config_env_set_symlink_chain_relative_to_each_link)
{
    char err[1024];
    ASSERT_EQ(mkdir_p("a/b", 0755), 0);
    ASSERT_EQ(mkdir_p("conf", 0755), 0);
    write_text("conf/app.env", "X=1\n");
    /* .env -> a/link1, a/link1 -> b/link2 (relative to a/), a/b/link2 -> ../../conf/app.env */
    ASSERT_EQ(symlink("a/link1", ".env"), 0);
    ASSERT_EQ(symlink("b/link2", "a/link1"), 0);
    ASSERT_EQ(symlink("../../conf/app.env", "a/b/link2"), 0);
    ASSERT_EQ(config_env_set(".env", "Y", "2", err, sizeof err), 0);
    assert_link(".env", "a/link1");
    assert_link("a/link1", "b/link2");
    assert_link("a/b/link2", "../../conf/app.env");
    char *t = slurp("conf/app.env");
    ASSERT_STR_EQ(t, "X=1\nY=2\n");
    free(t);
    ASSERT_EQ(test_temp_files("."), 0);
    ASSERT_EQ(test_temp_files("a"), 0);
    ASSERT_EQ(test_temp_files("conf"), 0);
    /* a loop is an error naming the path, not a hang */
    ASSERT_EQ(symlink("loop2", "loop1"), 0);
    ASSERT_EQ(symlink("loop1", "loop2"), 0);
    ASSERT_NE(config_env_set("loop1", "Y", "2", err, sizeof err), 0);
    ASSERT_CONTAINS(err, "loop1");
    ASSERT_CONTAINS(err, "symbolic links");
    assert_link("loop1", "loop2");
}

TEST(config_env_set_dangling_symlink_creates_target)
{
    char err[1024];
    ASSERT_EQ(mkdir_p("conf", 0755), 0);
    ASSERT_EQ(symlink("conf/new.env", ".env"), 0);
    ASSERT_EQ(config_env_set(".env", "VAST_INSTANCE_ID", "7", err, sizeof err), 0);
    assert_link(".env", "conf/new.env");
    char *t = slurp("conf/new.env");
    ASSERT_STR_EQ(t, "VAST_INSTANCE_ID=7\n");
    free(t);
    struct stat st;
    ASSERT_EQ(lstat("conf/new.env", &st), 0);
    ASSERT_TRUE(S_ISREG(st.st_mode));
    ASSERT_EQ(st.st_mode & 07777, 0600);
    /* the target's directory does not exist: an error naming both, nothing created */
    ASSERT_EQ(symlink("nodir/x.env", "bad.env"), 0);
    ASSERT_NE(config_env_set("bad.env", "VAST_INSTANCE_ID", "7", err, sizeof err), 0);
    ASSERT_CONTAINS(err, "bad.env (a symlink to nodir/x.env)");
    ASSERT_CONTAINS(err, "No such file or directory");
    assert_link("bad.env", "nodir/x.env");
    ASSERT_EQ(access("nodir", F_OK), -1);
    ASSERT_EQ(test_temp_files("."), 0);
    ASSERT_EQ(test_temp_files("conf"), 0);
}

static void assert_refused(const char *path, const char *kind)
{
    char err[1024];
    struct stat before, after;
    ASSERT_EQ(lstat(path, &before), 0);
    ASSERT_NE(config_env_set(path, "VAST_INSTANCE_ID", "42", err, sizeof err), 0);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, kind);
    ASSERT_CONTAINS(err, "not editing it");
    ASSERT_NE(config_env_set(path, "VAST_INSTANCE_ID", NULL, err, sizeof err), 0);
    ASSERT_EQ(lstat(path, &after), 0);
    ASSERT_EQ(after.st_ino, before.st_ino);
    ASSERT_EQ(after.st_mode, before.st_mode);
    ASSERT_EQ(after.st_rdev, before.st_rdev);
    ASSERT_EQ(after.st_mtime, before.st_mtime);
    ASSERT_EQ(test_temp_files("."), 0);
}

TEST(config_env_set_refuses_what_is_not_a_regular_file)
{
    ASSERT_EQ(mkdir("dir.env", 0755), 0);
    assert_refused("dir.env", "is a directory");
    ASSERT_EQ(mkfifo("fifo.env", 0600), 0); /* refused before any open: never blocks */
    assert_refused("fifo.env", "is a fifo");
    /* a character device like /dev/null (1,3), made here: the real one is never involved */
    struct stat dn;
    ASSERT_EQ(stat("/dev/null", &dn), 0);
    if (mknod("null.env", S_IFCHR | 0666, dn.st_rdev) != 0)
        SKIP("mknod of a character device is not permitted here: %s", strerror(errno));
    assert_refused("null.env", "is a character device");
    char err[1024];
    ASSERT_EQ(symlink("null.env", "link-to-null.env"), 0);
    ASSERT_NE(config_env_set("link-to-null.env", "VAST_INSTANCE_ID", "1", err, sizeof err), 0);
    ASSERT_STR_EQ(err, "env file link-to-null.env (a symlink to null.env) is a character device: "
                       "not editing it");
    assert_link("link-to-null.env", "null.env");
    struct stat st;
    ASSERT_EQ(lstat("null.env", &st), 0);
    ASSERT_TRUE(S_ISCHR(st.st_mode));
    ASSERT_EQ(st.st_rdev, dn.st_rdev);
    /* and such a node reads as an empty env file */
    char *argv[] = {"serve", "--env-file", "null.env"};
    config *c = config_load(3, argv, NULL, err, sizeof err);
    ASSERT_NOT_NULL(c);
    ASSERT_NULL(config_str(c, CFG_VAST_INSTANCE_ID));
    config_free(c);
    ASSERT_EQ(test_temp_files("."), 0);
}
