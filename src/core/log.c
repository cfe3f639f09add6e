#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SECRETS 32

static _Atomic int g_level = LOG_INFO;
static _Atomic int g_fd = 2;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_secrets[MAX_SECRETS];
static int g_nsecrets;

static const char *level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl) { atomic_store(&g_level, (int)lvl); }
enum log_level log_get_level(void) { return (enum log_level)atomic_load(&g_level); }
void log_set_fd(int fd) { atomic_store(&g_fd, fd); }

int log_parse_level(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (s && strcmp(s, level_names[i]) == 0) return (int)i;
    return -1;
}

void log_add_secret(const char *value)
{
    if (!value || strlen(value) < 4) return;
    pthread_mutex_lock(&g_lock);
    int known = 0;
    for (int i = 0; i < g_nsecrets; i++)
        if (strcmp(g_secrets[i], value) == 0) known = 1;
    if (!known && g_nsecrets < MAX_SECRETS) g_secrets[g_nsecrets++] = xstrdup(value);
    pthread_mutex_unlock(&g_lock);
}

void log_clear_secrets(void)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_nsecrets; i++) SAFE_FREE(g_secrets[i]);
    g_nsecrets = 0;
    pthread_mutex_unlock(&g_lock);
}

char *log_redact(const char *s)
{
    static const char mask[] = "[REDACTED]";
    buf out;
    buf_init(&out, 0);
    pthread_mutex_lock(&g_lock);
    const char *p = s ? s : "";
    while (*p) {
        size_t best = 0;
        for (int i = 0; i < g_nsecrets; i++) {
            size_t n = strlen(g_secrets[i]);
            if (n > best && strncmp(p, g_secrets[i], n) == 0) best = n;
        }
        if (best) {
            if (buf_append(&out, mask, sizeof mask - 1) != 0) break;
            p += best;
        } else {
            if (buf_append(&out, p, 1) != 0) break;
            p++;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return buf_take(&out);
}

char *log_vredactf(const char *fmt, va_list ap)
{
    char *msg = xvasprintf(fmt, ap);
    char *safe = log_redact(msg);
    free(msg);
    return safe;
}

void log_write(enum log_level lvl, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *safe = log_vredactf(fmt, ap);
    va_end(ap);

    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int li = (lvl >= LOG_ERROR && lvl <= LOG_DEBUG) ? (int)lvl : LOG_INFO;
    /* strip control characters (no log injection through newlines in messages) */
    for (char *c = safe; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\t') *c = ' ';
    char *line = xasprintf("%s %-5s %s: %s\n", ts, level_names[li], tag ? tag : "main", safe);
    free(safe);
    size_t len = strlen(line), off = 0;
    int fd = atomic_load(&g_fd);
    while (off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(line);
}
