/* test.h: the unit-test framework (one runner binary, one file per module).
 *
 *   #include "test.h"
 *   TEST(config_defaults) { ASSERT_STR_EQ(x, "y"); ... }
 *
 * Tests register themselves (constructor attribute); tests/unit/runner.c runs each one in a
 * forked child with a timeout (isolation: globals, fds and crashes stay in the child), in a
 * fresh temporary directory returned by test_tmpdir() and used as the cwd. A failed ASSERT
 * prints file:line and ends the test. `build/unit_tests [substring]` runs a subset (a
 * substring that matches no test fails); TEST_JOBS=N runs N tests at once (default: the
 * online CPUs), each one's output printed whole, in order, when it ends.
 * SKIP("reason %s", ...) ends a test that cannot run here: the runner prints
 * "skip NAME  reason" and counts it as skipped, not passed. Under CI=true such a skip is a
 * failure ("unexpected skip under CI"): CI runs on Debian 12 with scripts/setup.sh --test,
 * where every Debian package is there. SKIP_NOT_PACKAGED("whisper.cpp", "reason %s", ...) is
 * the one skip CI accepts: the test needs something no Debian 12 package provides (the
 * reason reads "needs whisper.cpp (not a Debian package): reason").
 */
#ifndef GS_TEST_H
#define GS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
void test_register(const char *name, const char *file, test_fn fn);
const char *test_tmpdir(void);
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* How many entries of dir end in ".tmp" (temp files a writer left behind); fails the test
 * when dir cannot be read. */
int test_temp_files(const char *dir);
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void test_skip_not_packaged(const char *what, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#define SKIP(...) test_skip(__VA_ARGS__)
#define SKIP_NOT_PACKAGED(what, ...) test_skip_not_packaged(what, __VA_ARGS__)

#define TEST(name)                                                        \
    static void test_##name(void);                                        \
    __attribute__((constructor)) static void test_reg_##name(void)        \
    { test_register(#name, __FILE__, test_##name); }                      \
    static void test_##name(void)

#define ASSERT_TRUE(c) \
    do { if (!(c)) test_fail(__FILE__, __LINE__, "expected true: %s", #c); } while (0)
#define ASSERT_FALSE(c) \
    do { if (c) test_fail(__FILE__, __LINE__, "expected false: %s", #c); } while (0)
#define ASSERT_EQ(a, b)                                                              \
    do { long long a_ = (long long)(a), b_ = (long long)(b);                         \
         if (a_ != b_) test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld",       \
                                 #a, #b, a_, b_); } while (0)
#define ASSERT_NE(a, b)                                                              \
    do { long long a_ = (long long)(a), b_ = (long long)(b);                         \
         if (a_ == b_) test_fail(__FILE__, __LINE__, "%s != %s: both %lld",          \
                                 #a, #b, a_); } while (0)
#define ASSERT_NEAR(a, b, eps)                                                       \
    do { double a_ = (double)(a), b_ = (double)(b);                                  \
         if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                                \
             test_fail(__FILE__, __LINE__, "%s ~= %s: %g vs %g", #a, #b, a_, b_);    \
    } while (0)
#define ASSERT_NULL(p) \
    do { if ((p) != NULL) test_fail(__FILE__, __LINE__, "expected NULL: %s", #p); } while (0)
#define ASSERT_NOT_NULL(p) \
    do { if ((p) == NULL) test_fail(__FILE__, __LINE__, "expected non-NULL: %s", #p); } while (0)
#define ASSERT_STR_EQ(a, b)                                                          \
    do { const char *a_ = (a), *b_ = (b);                                            \
         if (!a_ || !b_ || strcmp(a_, b_) != 0)                                      \
             test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,     \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
#define ASSERT_CONTAINS(hay, needle)                                                 \
    do { const char *h_ = (hay), *n_ = (needle);                                     \
         if (!h_ || !strstr(h_, n_))                                                 \
             test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"",         \
                       h_ ? h_ : "(null)", n_); } while (0)
#define ASSERT_NOT_CONTAINS(hay, needle)                                             \
    do { const char *h_ = (hay), *n_ = (needle);                                     \
         if (h_ && strstr(h_, n_))                                                   \
             test_fail(__FILE__, __LINE__, "\"%s\" contains \"%s\"", h_, n_);        \
    } while (0)

#endif
