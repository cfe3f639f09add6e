/* runner: runs every registered unit test in a forked child, in its own temp dir, with a
 * timeout, up to TEST_JOBS children at once (default: the online CPUs). Each child's stdout
 * and stderr go to an unlinked temp file; the runner prints that output and the test's
 * result line in the tests' sorted order, and the closing "N passed, N failed, N skipped".
 * Under CI=true a skip fails unless the test declared it expected on Debian 12
 * (SKIP_NOT_PACKAGED). A filter that matches no test is an error. */
#define _GNU_SOURCE
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#define MAX_JOBS 64
#define TEST_TIMEOUT_S 120
#define SKIP_EXIT 77          /* a child that called test_skip */
#define SKIP_OK_EXIT 78       /* a child that called test_skip_not_packaged */
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

int test_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) test_fail(__FILE__, __LINE__, "cannot read %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) n++;
    }
    closedir(d);
    return n;
}

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

static void __attribute__((noreturn)) skip_with(int code, const char *prefix, const char *fmt,
                                                va_list ap)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" SKIP_FILE, tmpdir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(prefix, f);
        vfprintf(f, fmt, ap);
        fclose(f);
    }
    fflush(NULL);
    _exit(code);
}

void test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    skip_with(SKIP_EXIT, "", fmt, ap);
}

void test_skip_not_packaged(const char *what, const char *fmt, ...)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "needs %s (not a Debian package): ", what);
    va_list ap;
    va_start(ap, fmt);
    skip_with(SKIP_OK_EXIT, prefix, fmt, ap);
}

/* The reason a skipped test left in DIR (first line), or "". */
static void skip_reason(const char *dir, char *out, size_t len)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" SKIP_FILE, dir);
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

/* One selected test: its child while it runs, then its result until printed. */
struct run {
    const struct test *t;
    pid_t pid;
    int out;                /* the child's stdout and stderr (unlinked temp file), or -1 */
    char dir[32];           /* its temp dir */
    struct timespec t0;
    int done, status;
    double ms;
    char *text;             /* what it printed */
    size_t text_len;
    char why[512];          /* a skip's reason */
};

static int jobs_wanted(void)
{
    const char *s = getenv("TEST_JOBS");
    long n = s && *s ? strtol(s, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    return n > MAX_JOBS ? MAX_JOBS : (int)n;
}

static struct run runs[MAX_TESTS];
static int nruns;

static int start(struct run *r)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/gs-unit-XXXXXX");
    if (!mkdtemp(r->dir)) { perror("mkdtemp"); return -1; }
    char tmpl[] = "/tmp/gs-unit-out-XXXXXX";
    r->out = mkstemp(tmpl);
    if (r->out < 0) { perror("mkstemp"); return -1; }
    unlink(tmpl);
    snprintf(tmpdir, sizeof tmpdir, "%s", r->dir);  /* the child's test_tmpdir() */
    fflush(NULL);
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    r->pid = fork();
    if (r->pid < 0) { perror("fork"); return -1; }
    if (r->pid == 0) {
        if (dup2(r->out, STDOUT_FILENO) < 0 || dup2(r->out, STDERR_FILENO) < 0) _exit(3);
        for (int i = 0; i < nruns; i++) /* its own file and the other children's */
            if (runs[i].out >= 0) close(runs[i].out);
        if (chdir(tmpdir) != 0) _exit(3);
        alarm(TEST_TIMEOUT_S);
        r->t->fn();
        fflush(NULL);
        /* _exit skips LeakSanitizer's exit hook: check for leaks explicitly */
        if (LEAK_CHECK()) {
            fprintf(stderr, "    leak detected (see the report above)\n");
            _exit(1);
        }
        _exit(0);
    }
    return 0;
}

/* A child ended: keep what it printed and its skip reason, remove its files. */
static void finish_run(struct run *r, int st)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
    r->status = st;
    r->done = 1;
    off_t len = lseek(r->out, 0, SEEK_END);
    if (len > 0) {
        r->text = malloc((size_t)len);
        ssize_t got = r->text ? pread(r->out, r->text, (size_t)len, 0) : -1;
        r->text_len = got > 0 ? (size_t)got : 0;
    }
    close(r->out);
    r->out = -1;
    r->why[0] = '\0';
    if (WIFEXITED(st) && (WEXITSTATUS(st) == SKIP_EXIT || WEXITSTATUS(st) == SKIP_OK_EXIT))
        skip_reason(r->dir, r->why, sizeof r->why);
    nftw(r->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct totals { int passed, failed, skipped; };

static void report(struct run *r, int ci, struct totals *n)
{
    if (r->text_len) fwrite(r->text, 1, r->text_len, stdout);
    free(r->text);
    r->text = NULL;
    int st = r->status, code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    const char *name = r->t->name, *why = r->why[0] ? r->why : "(no reason given)";
    if (code == SKIP_OK_EXIT || (code == SKIP_EXIT && !ci)) {
        n->skipped++;
        printf("skip %-40s %s\n", name, why);
    } else if (code == SKIP_EXIT) {
        n->failed++;
        printf("FAIL %-40s unexpected skip under CI: %s\n", name, why);
    } else if (code == 0) {
        n->passed++;
        printf("ok   %-40s (%.0f ms)\n", name, r->ms);
    } else {
        n->failed++;
        if (WIFSIGNALED(st))
            printf("FAIL %-40s killed by signal %d%s\n", name, WTERMSIG(st),
                   WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
        else
            printf("FAIL %-40s exit %d\n", name, code);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *ci_env = getenv("CI");
    int ci = ci_env && strcmp(ci_env, "true") == 0;
    qsort(tests, (size_t)ntests, sizeof tests[0], cmp);
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter) && !strstr(tests[i].file, filter)) continue;
        runs[nruns++] = (struct run){.t = &tests[i], .out = -1};
    }
    int n = nruns;
    if (n == 0) {
        printf("unit: no test matches '%s'\n", filter ? filter : "");
        printf("unit: 0 passed, 1 failed, 0 skipped\n");
        return 1;
    }

    int jobs = jobs_wanted(), next = 0, running = 0, shown = 0;
    struct totals tot = {0, 0, 0};
    while (shown < n) {
        while (running < jobs && next < n) {
            if (start(&runs[next]) != 0) return 2;
            next++;
            running++;
        }
        int st = 0;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            perror("waitpid");
            return 2;
        }
        for (int i = shown; i < next; i++)
            if (!runs[i].done && runs[i].pid == pid) {
                finish_run(&runs[i], st);
                running--;
                break;
            }
        while (shown < n && runs[shown].done) report(&runs[shown++], ci, &tot);
    }
    printf("unit: %d passed, %d failed, %d skipped\n", tot.passed, tot.failed, tot.skipped);
    return tot.failed ? 1 : 0;
}
