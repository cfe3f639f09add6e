/* log: leveled logging to stderr with a subsystem tag on every line, and secret redaction.
 *
 * Lines look like `2026-11-29T00:41:02Z info  http: listening on http://127.0.0.1:8000`.
 * Use the macros: LOG_I("http", "listening on %s", url). The level test happens before any
 * formatting. Every configured secret (registered with log_add_secret) is replaced by
 * "[REDACTED]" wherever it would appear in a line; log_redact() and log_vredactf() offer the
 * same to other outputs (responses, events). Thread-safe: lines are written whole with one write().
 */
#ifndef GS_LOG_H
#define GS_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 when unknown. */
int log_parse_level(const char *s);
/* Register a secret value to redact (values shorter than 4 chars are ignored). Copies it. */
void log_add_secret(const char *value);
/* Forget every registered secret (tests, config reload). */
void log_clear_secrets(void);
/* Return a heap copy of s with every registered secret replaced; caller frees. */
char *log_redact(const char *s);
/* vsnprintf into a heap string, then log_redact it; caller frees. */
char *log_vredactf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Redirect log output to fd (default 2). */
void log_set_fd(int fd);

void log_write(enum log_level lvl, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, tag, ...) \
    do { if ((lvl) <= log_get_level()) log_write((lvl), (tag), __VA_ARGS__); } while (0)
#define LOG_E(tag, ...) LOG_AT(LOG_ERROR, tag, __VA_ARGS__)
#define LOG_W(tag, ...) LOG_AT(LOG_WARN, tag, __VA_ARGS__)
#define LOG_I(tag, ...) LOG_AT(LOG_INFO, tag, __VA_ARGS__)
#define LOG_D(tag, ...) LOG_AT(LOG_DEBUG, tag, __VA_ARGS__)

#endif
