/* runner: runs every registered unit test in a forked child, in its own temp dir, with a
 * timeout; prints one line per test and the closing "N passed, N failed". */
#define _GNU_SOURCE
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define MAX_TESTS 2048
#define TEST_TIMEOUT_S 120
#define SKIP_EXIT 77          /* a child that called test_skip */
#define SKIP_FILE ".skip"     /* its reason, in the test's temp dir */

struct test { const char *name, *file; test_fn fn; };
static struct test tests[MAX_TESTS];
static int ntests;
static char tmpdir[PATH_MAX];

void test_register(const char *name, const char *file, test_fn fn)
{
    if (ntests < MAX_TESTS) tests[ntests++] = (struct test){name, file, fn};
}

const char *test_tmpdir(void) { return tmpdir; }

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

void test_skip(const char *fmt, ...)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" SKIP_FILE, tmpdir);
    FILE *f = fopen(path, "w");
    if (f) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fclose(f);
    }
    fflush(NULL);
    _exit(SKIP_EXIT);
}

/* The reason a skipped test left (first line), or "". */
static void skip_reason(char *out, size_t len)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" SKIP_FILE, tmpdir);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(out, (int)len, f)) out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int cmp(const void *a, const void *b)
{
    const struct test *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    qsort(tests, (size_t)ntests, sizeof tests[0], cmp);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter)) continue;
        snprintf(tmpdir, sizeof tmpdir, "/tmp/gs-unit-XXXXXX");
        if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = fork();
        if (pid == 0) {
            if (chdir(tmpdir) != 0) _exit(3);
            alarm(TEST_TIMEOUT_S);
            tests[i].fn();
            fflush(NULL);
            /* _exit skips LeakSanitizer's exit hook: check for leaks explicitly */
            if (LEAK_CHECK()) {
                fprintf(stderr, "    leak detected (see the report above)\n");
                _exit(1);
            }
            _exit(0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        char why[512];
        int skip = WIFEXITED(st) && WEXITSTATUS(st) == SKIP_EXIT;
        if (skip) skip_reason(why, sizeof why);
        nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (skip) {
            skipped++;
            printf("skip %-40s %s\n", tests[i].name, why[0] ? why : "(no reason given)");
        } else if (ok) {
            passed++;
            printf("ok   %-40s (%.0f ms)\n", tests[i].name, ms);
        } else {
            failed++;
            if (WIFSIGNALED(st))
                printf("FAIL %-40s killed by signal %d%s\n", tests[i].name, WTERMSIG(st),
                       WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
            else
                printf("FAIL %-40s exit %d\n", tests[i].name, WEXITSTATUS(st));
        }
    }
    if (skipped) printf("unit: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
