/* metrics: Prometheus metrics in the text exposition format (version 0.0.4).
 *
 * Two halves:
 * - a registry of counter and histogram families with labels, updated from any thread
 *   (what a module counts as it goes: HTTP requests, Vast API calls). A family is created
 *   once (metrics_counter / metrics_histogram: idempotent by name, usually from a
 *   constructor or an init function) and lives until metrics_registry_free; its series
 *   (one per combination of label values) are created on first use and never removed, so
 *   label values must come from a small, bounded set (a route pattern, never a raw path).
 *   Updates are lock-free (atomics); creating a series takes the family's mutex once.
 *   Counter values are integers; a histogram's buckets are upper bounds (le), ascending,
 *   with +Inf added; its sum is kept in units of 1e-9 (nanoseconds for _seconds).
 * - the text writer, for what is computed at scrape time (gauges from the store, the
 *   ledger, the fleet): metrics_write_family writes the HELP and TYPE lines, then
 *   metrics_write_sample one line per series. Label values are escaped (\\, \", \n), HELP
 *   text too (\\, \n); values are written so they read back exactly (NaN, +Inf, -Inf).
 *
 * metrics_render writes every family of a registry (HELP and TYPE even with no series
 * yet); histograms as _bucket{le=...} (cumulative, ending in +Inf), _sum and _count (equal
 * to the +Inf bucket). The content type of the whole page is METRICS_CONTENT_TYPE.
 * Thread-safe throughout; a render running beside updates sees each number atomically (not
 * a snapshot of all of them together).
 */
#ifndef GS_METRICS_H
#define GS_METRICS_H

#include "core/util.h"

#include <stddef.h>
#include <stdint.h>

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 16

typedef struct metrics_registry metrics_registry;
typedef struct metrics_family metrics_family;
typedef struct metrics_series metrics_series;

/* The process-wide registry (what GET /metrics shows). */
metrics_registry *metrics_default(void);
/* A registry of one's own (tests). */
metrics_registry *metrics_registry_new(void);
void metrics_registry_free(metrics_registry *reg);

/* Create (or find, by name) a family. labels: nlabels names (<= METRICS_MAX_LABELS).
 * Histogram buckets: nbuckets (<= METRICS_MAX_BUCKETS) ascending finite upper bounds.
 * A bad definition is a programming error: it aborts with a message. */
metrics_family *metrics_counter(metrics_registry *reg, const char *name, const char *help,
                                int nlabels, const char *const *labels);
metrics_family *metrics_histogram(metrics_registry *reg, const char *name, const char *help,
                                  int nlabels, const char *const *labels,
                                  const double *buckets, int nbuckets);

/* The series of f for these label values (as many as the family has labels; NULL reads as
 * ""). Never NULL. */
metrics_series *metrics_series_get(metrics_family *f, const char *const *values);
/* Counters: add n. */
void metrics_add(metrics_series *s, uint64_t n);
/* Histograms: count one observation of v (negative and NaN count as 0). */
void metrics_observe(metrics_series *s, double v);
/* A counter's value, or a histogram's count (tests). */
uint64_t metrics_value(const metrics_series *s);

/* Every family of reg, in the order they were created. -1 when b is full. */
int metrics_render(metrics_registry *reg, buf *b);

/* ---- the text writer */

/* "# HELP name help\n# TYPE name type\n"; type: counter, gauge, histogram, summary, untyped. */
int metrics_write_family(buf *b, const char *name, const char *type, const char *help);
/* One sample line: name{k1="v1",...} value. The labels are nlabels names and values. */
int metrics_write_sample_v(buf *b, const char *name, int nlabels, const char *const *lnames,
                           const char *const *lvalues, double value);
/* The same with the labels as name, value pairs ending in NULL:
 * metrics_write_sample(b, "gpuscribe_jobs", 3, "state", "queued", NULL). */
int metrics_write_sample(buf *b, const char *name, double value, ...)
    __attribute__((sentinel));
/* A value as the format writes it: shortest text that reads back exactly; NaN, +Inf, -Inf. */
void metrics_format_value(double v, char *out, size_t outlen);

#endif
