/* core/metrics: the Prometheus text writer and the counter/histogram registry. */
#include "test.h"

#include "core/metrics.h"
#include "core/util.h"

#include <math.h>
#include <pthread.h>

static char *render(metrics_registry *reg)
{
    buf b;
    buf_init(&b, 1 << 20);
    ASSERT_EQ(metrics_render(reg, &b), 0);
    char *s = buf_take(&b);
    return s ? s : xstrdup("");
}

TEST(metrics_help_and_type_lines_escape_help)
{
    buf b;
    buf_init(&b, 4096);
    ASSERT_EQ(metrics_write_family(&b, "gpuscribe_x", "gauge", "a \\ back\nslash \"quoted\""), 0);
    char *s = buf_take(&b);
    ASSERT_STR_EQ(s, "# HELP gpuscribe_x a \\\\ back\\nslash \"quoted\"\n"
                     "# TYPE gpuscribe_x gauge\n");
    free(s);
}

TEST(metrics_label_values_are_escaped)
{
    buf b;
    buf_init(&b, 4096);
    ASSERT_EQ(metrics_write_sample(&b, "gpuscribe_jobs", 3, "state", "q\"u\\e\nd", "e", "",
                                   NULL), 0);
    ASSERT_EQ(metrics_write_sample(&b, "gpuscribe_up", 1, NULL), 0);
    char *s = buf_take(&b);
    ASSERT_STR_EQ(s, "gpuscribe_jobs{state=\"q\\\"u\\\\e\\nd\",e=\"\"} 3\n"
                     "gpuscribe_up 1\n");
    free(s);
}

TEST(metrics_values_read_back_exactly)
{
    char v[40];
    metrics_format_value(0, v, sizeof v);
    ASSERT_STR_EQ(v, "0");
    metrics_format_value(42, v, sizeof v);
    ASSERT_STR_EQ(v, "42");
    metrics_format_value(-3, v, sizeof v);
    ASSERT_STR_EQ(v, "-3");
    metrics_format_value(0.1, v, sizeof v);
    ASSERT_STR_EQ(v, "0.1");
    metrics_format_value(NAN, v, sizeof v);
    ASSERT_STR_EQ(v, "NaN");
    metrics_format_value(INFINITY, v, sizeof v);
    ASSERT_STR_EQ(v, "+Inf");
    metrics_format_value(-INFINITY, v, sizeof v);
    ASSERT_STR_EQ(v, "-Inf");
    double odd[] = {1.0 / 3, 0.000123456789012345678, 2.5e-9, 1e300, 123456.789};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        metrics_format_value(odd[i], v, sizeof v);
        ASSERT_TRUE(strtod(v, NULL) == odd[i]);
    }
}

TEST(metrics_counter_families_render_with_labels)
{
    metrics_registry *reg = metrics_registry_new();
    metrics_family *f = metrics_counter(reg, "gpuscribe_things_total", "Things done.", 2,
                                        (const char *const[]){"kind", "method"});
    /* the same name again is the same family */
    ASSERT_TRUE(metrics_counter(reg, "gpuscribe_things_total", "x", 2,
                                (const char *const[]){"kind", "method"}) == f);
    char *empty = render(reg);
    ASSERT_STR_EQ(empty, "# HELP gpuscribe_things_total Things done.\n"
                         "# TYPE gpuscribe_things_total counter\n");
    free(empty);
    metrics_series *a = metrics_series_get(f, (const char *const[]){"auth", "GET"});
    metrics_add(a, 2);
    metrics_add(metrics_series_get(f, (const char *const[]){"auth", "GET"}), 1);
    metrics_add(metrics_series_get(f, (const char *const[]){"network", "POST"}), 5);
    /* ("ab","") and ("a","b") are different series */
    metrics_add(metrics_series_get(f, (const char *const[]){"ab", ""}), 1);
    metrics_add(metrics_series_get(f, (const char *const[]){"a", "b"}), 7);
    ASSERT_EQ(metrics_value(a), 3);
    char *s = render(reg);
    ASSERT_STR_EQ(s, "# HELP gpuscribe_things_total Things done.\n"
                     "# TYPE gpuscribe_things_total counter\n"
                     "gpuscribe_things_total{kind=\"auth\",method=\"GET\"} 3\n"
                     "gpuscribe_things_total{kind=\"network\",method=\"POST\"} 5\n"
                     "gpuscribe_things_total{kind=\"ab\",method=\"\"} 1\n"
                     "gpuscribe_things_total{kind=\"a\",method=\"b\"} 7\n");
    free(s);
    metrics_registry_free(reg);
}

TEST(metrics_histogram_buckets_sum_count_and_inf)
{
    metrics_registry *reg = metrics_registry_new();
    static const double b[] = {0.01, 0.1, 1};
    metrics_family *h = metrics_histogram(reg, "gpuscribe_latency_seconds", "Latency.", 1,
                                          (const char *const[]){"route"}, b, 3);
    metrics_series *s = metrics_series_get(h, (const char *const[]){"/api/jobs/{id}"});
    metrics_observe(s, 0.005);
    metrics_observe(s, 0.01); /* le is inclusive */
    metrics_observe(s, 0.5);
    metrics_observe(s, 7);
    metrics_observe(s, -1);   /* counts as 0 */
    ASSERT_EQ(metrics_value(s), 5);
    char *out = render(reg);
    ASSERT_STR_EQ(out,
                  "# HELP gpuscribe_latency_seconds Latency.\n"
                  "# TYPE gpuscribe_latency_seconds histogram\n"
                  "gpuscribe_latency_seconds_bucket{route=\"/api/jobs/{id}\",le=\"0.01\"} 3\n"
                  "gpuscribe_latency_seconds_bucket{route=\"/api/jobs/{id}\",le=\"0.1\"} 3\n"
                  "gpuscribe_latency_seconds_bucket{route=\"/api/jobs/{id}\",le=\"1\"} 4\n"
                  "gpuscribe_latency_seconds_bucket{route=\"/api/jobs/{id}\",le=\"+Inf\"} 5\n"
                  "gpuscribe_latency_seconds_sum{route=\"/api/jobs/{id}\"} 7.515\n"
                  "gpuscribe_latency_seconds_count{route=\"/api/jobs/{id}\"} 5\n");
    free(out);
    metrics_registry_free(reg);
}

struct race { metrics_family *c, *h; };

static void *hammer(void *arg)
{
    struct race *r = arg;
    char v[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(v, sizeof v, "%d", i % 50);
        metrics_add(metrics_series_get(r->c, (const char *const[]){v}), 1);
        metrics_observe(metrics_series_get(r->h, NULL), 0.001);
    }
    return NULL;
}

TEST(metrics_updates_from_many_threads_add_up)
{
    metrics_registry *reg = metrics_registry_new();
    static const double b[] = {1};
    struct race r = {
        metrics_counter(reg, "gpuscribe_n_total", "n", 1, (const char *const[]){"k"}),
        metrics_histogram(reg, "gpuscribe_h_seconds", "h", 0, NULL, b, 1),
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++) ASSERT_EQ(pthread_create(&t[i], NULL, hammer, &r), 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    uint64_t total = 0;
    for (int i = 0; i < 50; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        uint64_t n = metrics_value(metrics_series_get(r.c, (const char *const[]){v}));
        ASSERT_EQ(n, 4 * 20000 / 50);
        total += n;
    }
    ASSERT_EQ(total, 80000);
    ASSERT_EQ(metrics_value(metrics_series_get(r.h, NULL)), 80000);
    char *out = render(reg);
    ASSERT_TRUE(strstr(out, "gpuscribe_h_seconds_bucket{le=\"+Inf\"} 80000\n") != NULL);
    ASSERT_TRUE(strstr(out, "gpuscribe_h_seconds_sum 80\n") != NULL);
    free(out);
    metrics_registry_free(reg);
}
