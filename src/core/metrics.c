/* metrics: see metrics.h. Series live in a small hash table of atomic list heads per family
 * (lookups never lock; an insert takes the family's mutex and publishes the new node with a
 * release store), and in a second list for rendering. Nothing is removed before the
 * registry is freed. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NHASH 32

enum mtype { M_COUNTER, M_HISTOGRAM };

struct metrics_series {
    metrics_series *hnext;   /* same hash bucket (immutable once published) */
    metrics_series *anext;   /* all series, newest first (immutable once published) */
    unsigned hash;
    char *values[METRICS_MAX_LABELS];
    _Atomic uint64_t count;      /* counter value; unused for histograms */
    _Atomic uint64_t sum_nano;   /* histogram sum in 1e-9 units */
    int nbuckets;
    const double *bounds;        /* the family's bucket bounds */
    _Atomic uint64_t buckets[];  /* per bucket (not cumulative), nbuckets + 1 (+Inf) */
};

struct metrics_family {
    metrics_family *next;    /* registry order */
    char *name, *help;
    enum mtype type;
    int nlabels;
    char *labels[METRICS_MAX_LABELS];
    int nbuckets;
    double buckets[METRICS_MAX_BUCKETS];
    pthread_mutex_t lock;    /* serialises inserts */
    _Atomic(metrics_series *) heads[NHASH];
    _Atomic(metrics_series *) all;
};

struct metrics_registry {
    pthread_mutex_t lock;    /* guards the family list */
    metrics_family *first, *last;
};

/* ---- registry */

metrics_registry *metrics_registry_new(void)
{
    metrics_registry *reg = xcalloc(1, sizeof *reg);
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

static metrics_registry *default_reg;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static void default_init(void) { default_reg = metrics_registry_new(); }

metrics_registry *metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_reg;
}

static void family_free(metrics_family *f)
{
    metrics_series *s = atomic_load(&f->all);
    while (s) {
        metrics_series *n = s->anext;
        for (int i = 0; i < f->nlabels; i++) free(s->values[i]);
        free(s);
        s = n;
    }
    for (int i = 0; i < f->nlabels; i++) free(f->labels[i]);
    pthread_mutex_destroy(&f->lock);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_registry_free(metrics_registry *reg)
{
    if (!reg) return;
    metrics_family *f = reg->first;
    while (f) {
        metrics_family *n = f->next;
        family_free(f);
        f = n;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

static bool valid_name(const char *s, bool colons)
{
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colons && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static void bug(const char *name, const char *why)
{
    fprintf(stderr, "metrics: BUG: family '%s': %s\n", name ? name : "(null)", why);
    abort();
}

static metrics_family *family_new(metrics_registry *reg, enum mtype type, const char *name,
                                  const char *help, int nlabels, const char *const *labels,
                                  const double *buckets, int nbuckets)
{
    if (!valid_name(name, true)) bug(name, "not a valid metric name");
    if (nlabels < 0 || nlabels > METRICS_MAX_LABELS || (nlabels && !labels))
        bug(name, "bad label count");
    for (int i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], false) || !strncmp(labels[i], "__", 2))
            bug(name, "not a valid label name");
        if (type == M_HISTOGRAM && !strcmp(labels[i], "le")) bug(name, "'le' is reserved");
    }
    if (type == M_HISTOGRAM) {
        if (nbuckets < 1 || nbuckets > METRICS_MAX_BUCKETS || !buckets) bug(name, "bad buckets");
        for (int i = 0; i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i && buckets[i] <= buckets[i - 1]))
                bug(name, "buckets must be finite and ascending");
    }
    pthread_mutex_lock(&reg->lock);
    for (metrics_family *f = reg->first; f; f = f->next) {
        if (strcmp(f->name, name) != 0) continue;
        if (f->type != type || f->nlabels != nlabels) bug(name, "defined twice, differently");
        pthread_mutex_unlock(&reg->lock);
        return f;
    }
    metrics_family *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : "");
    f->type = type;
    f->nlabels = nlabels;
    for (int i = 0; i < nlabels; i++) f->labels[i] = xstrdup(labels[i]);
    f->nbuckets = type == M_HISTOGRAM ? nbuckets : 0;
    for (int i = 0; i < f->nbuckets; i++) f->buckets[i] = buckets[i];
    pthread_mutex_init(&f->lock, NULL);
    if (reg->last) reg->last->next = f;
    else reg->first = f;
    reg->last = f;
    pthread_mutex_unlock(&reg->lock);
    return f;
}

metrics_family *metrics_counter(metrics_registry *reg, const char *name, const char *help,
                                int nlabels, const char *const *labels)
{
    return family_new(reg, M_COUNTER, name, help, nlabels, labels, NULL, 0);
}

metrics_family *metrics_histogram(metrics_registry *reg, const char *name, const char *help,
                                  int nlabels, const char *const *labels,
                                  const double *buckets, int nbuckets)
{
    return family_new(reg, M_HISTOGRAM, name, help, nlabels, labels, buckets, nbuckets);
}

/* ---- series */

static unsigned hash_values(int n, const char *const *values)
{
    unsigned h = 2166136261u;
    for (int i = 0; i < n; i++) {
        for (const char *p = values[i] ? values[i] : ""; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ 0xffu) * 16777619u; /* separator: ("ab","") != ("a","b") */
    }
    return h;
}

static bool same_values(const metrics_series *s, int n, const char *const *values)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0) return false;
    return true;
}

static metrics_series *find(metrics_family *f, unsigned h, const char *const *values)
{
    for (metrics_series *s = atomic_load_explicit(&f->heads[h % NHASH], memory_order_acquire); s;
         s = s->hnext)
        if (s->hash == h && same_values(s, f->nlabels, values)) return s;
    return NULL;
}

metrics_series *metrics_series_get(metrics_family *f, const char *const *values)
{
    static const char *const none[METRICS_MAX_LABELS] = {0};
    if (!values) values = none;
    unsigned h = hash_values(f->nlabels, values);
    metrics_series *s = find(f, h, values);
    if (s) return s;
    pthread_mutex_lock(&f->lock);
    s = find(f, h, values);
    if (!s) {
        int nb = f->type == M_HISTOGRAM ? f->nbuckets + 1 : 0;
        s = xcalloc(1, sizeof *s + (size_t)nb * sizeof s->buckets[0]);
        s->hash = h;
        s->nbuckets = f->nbuckets;
        s->bounds = f->buckets;
        for (int i = 0; i < f->nlabels; i++) s->values[i] = xstrdup(values[i] ? values[i] : "");
        s->hnext = atomic_load_explicit(&f->heads[h % NHASH], memory_order_relaxed);
        s->anext = atomic_load_explicit(&f->all, memory_order_relaxed);
        atomic_store_explicit(&f->heads[h % NHASH], s, memory_order_release);
        atomic_store_explicit(&f->all, s, memory_order_release);
    }
    pthread_mutex_unlock(&f->lock);
    return s;
}

void metrics_add(metrics_series *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

void metrics_observe(metrics_series *s, double v)
{
    if (!s->nbuckets) return; /* not a histogram */
    if (!(v > 0)) v = 0;      /* NaN and negatives */
    int i = 0;
    while (i < s->nbuckets && v > s->bounds[i]) i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    double nano = v * 1e9;
    uint64_t add = nano >= 1.8e19 ? UINT64_MAX / 2 : (uint64_t)llround(nano);
    atomic_fetch_add_explicit(&s->sum_nano, add, memory_order_relaxed);
}

uint64_t metrics_value(const metrics_series *s)
{
    uint64_t n = atomic_load_explicit(&s->count, memory_order_relaxed);
    for (int i = 0; s->nbuckets && i <= s->nbuckets; i++)
        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return n;
}

/* ---- the text writer */

void metrics_format_value(double v, char *out, size_t outlen)
{
    if (isnan(v)) { snprintf(out, outlen, "NaN"); return; }
    if (isinf(v)) { snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf"); return; }
    if (v == 0) { snprintf(out, outlen, "0"); return; }
    if (v == floor(v) && fabs(v) < 1e15) { snprintf(out, outlen, "%.0f", v); return; }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* text with \\ and \n escaped, and \" too when quoted (label values) */
static int append_escaped(buf *b, const char *s, bool quoted)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *esc = NULL;
        if (*p == '\\') esc = "\\\\";
        else if (*p == '\n') esc = "\\n";
        else if (*p == '"' && quoted) esc = "\\\"";
        if (!esc && *p) continue;
        if (p > run && buf_append(b, run, (size_t)(p - run)) != 0) return -1;
        if (!*p) return 0;
        if (buf_append(b, esc, strlen(esc)) != 0) return -1;
        run = p + 1;
    }
}

int metrics_write_family(buf *b, const char *name, const char *type, const char *help)
{
    if (buf_appendf(b, "# HELP %s ", name) != 0) return -1;
    if (append_escaped(b, help ? help : "", false) != 0) return -1;
    return buf_appendf(b, "\n# TYPE %s %s\n", name, type);
}

int metrics_write_sample_v(buf *b, const char *name, int nlabels, const char *const *lnames,
                           const char *const *lvalues, double value)
{
    if (buf_append(b, name, strlen(name)) != 0) return -1;
    for (int i = 0; i < nlabels; i++) {
        if (buf_appendf(b, "%s%s=\"", i ? "," : "{", lnames[i]) != 0) return -1;
        if (append_escaped(b, lvalues[i] ? lvalues[i] : "", true) != 0) return -1;
        if (buf_append(b, "\"", 1) != 0) return -1;
    }
    char v[40];
    metrics_format_value(value, v, sizeof v);
    return buf_appendf(b, "%s %s\n", nlabels ? "}" : "", v);
}

int metrics_write_sample(buf *b, const char *name, double value, ...)
{
    const char *names[METRICS_MAX_LABELS + 2], *values[METRICS_MAX_LABELS + 2];
    int n = 0;
    va_list ap;
    va_start(ap, value);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (n < METRICS_MAX_LABELS + 2) {
            names[n] = k;
            values[n] = v;
            n++;
        }
    }
    va_end(ap);
    return metrics_write_sample_v(b, name, n, names, values, value);
}

/* ---- rendering a registry */

static int render_family(metrics_family *f, buf *b)
{
    if (metrics_write_family(b, f->name, f->type == M_COUNTER ? "counter" : "histogram",
                             f->help) != 0)
        return -1;
    const char *names[METRICS_MAX_LABELS + 1], *values[METRICS_MAX_LABELS + 1];
    for (int i = 0; i < f->nlabels; i++) names[i] = f->labels[i];
    names[f->nlabels] = "le";
    char *bucket = xasprintf("%s_bucket", f->name), *sum = xasprintf("%s_sum", f->name),
         *count = xasprintf("%s_count", f->name);
    int rc = 0;
    /* oldest first: the list is newest first, so collect it */
    size_t n = 0;
    for (metrics_series *s = atomic_load_explicit(&f->all, memory_order_acquire); s; s = s->anext) n++;
    metrics_series **v = xcalloc(n ? n : 1, sizeof *v);
    size_t k = n;
    for (metrics_series *s = atomic_load_explicit(&f->all, memory_order_acquire); s && k; s = s->anext)
        v[--k] = s;
    for (size_t j = k; j < n && rc == 0; j++) {
        metrics_series *s = v[j];
        for (int i = 0; i < f->nlabels; i++) values[i] = s->values[i];
        if (f->type == M_COUNTER) {
            rc = metrics_write_sample_v(b, f->name, f->nlabels, names, values,
                                        (double)atomic_load_explicit(&s->count,
                                                                     memory_order_relaxed));
            continue;
        }
        uint64_t cum = 0;
        for (int i = 0; i <= f->nbuckets && rc == 0; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            char le[40];
            if (i < f->nbuckets) metrics_format_value(f->buckets[i], le, sizeof le);
            else snprintf(le, sizeof le, "+Inf");
            values[f->nlabels] = le;
            rc = metrics_write_sample_v(b, bucket, f->nlabels + 1, names, values, (double)cum);
        }
        if (rc == 0)
            rc = metrics_write_sample_v(b, sum, f->nlabels, names, values,
                                        (double)atomic_load_explicit(&s->sum_nano,
                                                                     memory_order_relaxed) / 1e9);
        if (rc == 0) rc = metrics_write_sample_v(b, count, f->nlabels, names, values, (double)cum);
    }
    free(v);
    free(bucket);
    free(sum);
    free(count);
    return rc;
}

int metrics_render(metrics_registry *reg, buf *b)
{
    pthread_mutex_lock(&reg->lock);
    int rc = 0;
    for (metrics_family *f = reg->first; f && rc == 0; f = f->next) rc = render_family(f, b);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}
