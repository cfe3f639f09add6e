#include "test.h"
#include "core/log.h"
#include "core/util.h"

#include <fcntl.h>
#include <unistd.h>

static char *capture(void (*fn)(void))
{
    int fd = open("log.txt", O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ASSERT_TRUE(fd >= 0);
    log_set_fd(fd);
    fn();
    log_set_fd(2);
    close(fd);
    return read_file("log.txt", 1 << 16, NULL);
}

static void emit_levels(void)
{
    log_set_level(LOG_WARN);
    LOG_E("store", "an error %d", 1);
    LOG_W("vast", "a warning");
    LOG_I("http", "hidden info");
    LOG_D("http", "hidden debug");
}

TEST(log_levels_and_tags)
{
    char *s = capture(emit_levels);
    ASSERT_CONTAINS(s, "error store: an error 1\n");
    ASSERT_CONTAINS(s, "warn  vast: a warning\n");
    ASSERT_NOT_CONTAINS(s, "hidden");
    free(s);
    ASSERT_EQ(log_parse_level("debug"), LOG_DEBUG);
    ASSERT_EQ(log_parse_level("loud"), -1);
}

static void emit_secret(void)
{
    log_set_level(LOG_INFO);
    log_add_secret("hunter2-secret-value");
    log_add_secret("abc"); /* too short to redact safely: ignored */
    LOG_I("vast", "calling with key hunter2-secret-value and again hunter2-secret-value");
    LOG_I("main", "line one\nfake line two");
    LOG_I("main", "short abc stays");
}

TEST(log_redacts_secrets_and_newlines)
{
    char *s = capture(emit_secret);
    ASSERT_NOT_CONTAINS(s, "hunter2");
    ASSERT_CONTAINS(s, "key [REDACTED] and again [REDACTED]");
    ASSERT_CONTAINS(s, "line one fake line two\n");
    ASSERT_CONTAINS(s, "abc"); /* not masked */
    free(s);
    log_clear_secrets();
    char *r = log_redact("hunter2-secret-value");
    ASSERT_STR_EQ(r, "hunter2-secret-value");
    free(r);
}

TEST(log_redact_overlapping_secrets)
{
    log_add_secret("token-AAAA");
    log_add_secret("token-AAAA-BBBB");
    char *r = log_redact("x token-AAAA-BBBB y token-AAAA z");
    ASSERT_STR_EQ(r, "x [REDACTED] y [REDACTED] z");
    free(r);
    log_clear_secrets();
}
