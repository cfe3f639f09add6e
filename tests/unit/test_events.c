#include "test.h"
#include "core/events.h"
#include "core/log.h"
#include "core/util.h"

#include <unistd.h>

static int wakes;
static void on_wake(void *ud) { (void)ud; wakes++; }

static char *drain(events_sub *s, long *rc)
{
    buf b;
    buf_init(&b, 0);
    char tmp[100];
    long n;
    while ((n = events_read(s, tmp, sizeof tmp)) > 0) ASSERT_EQ(buf_append(&b, tmp, (size_t)n), 0);
    *rc = n;
    return buf_take(&b);
}

TEST(events_publish_formats_sse_and_redacts)
{
    events *bus = events_new(NULL, 60);
    events_sub *s = events_subscribe(bus, 4096, on_wake, NULL);
    log_add_secret("super-secret-token-42");
    events_publish(bus, "job.state", json_pack("{s:s,s:s}", "id", "j1", "note", "super-secret-token-42"), 0);
    events_publish(bus, "job.progress", json_pack("{s:f}", "progress", 0.5), 0);
    long rc;
    char *text = drain(s, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_CONTAINS(text, "retry: 3000\n");
    ASSERT_CONTAINS(text, "id: 1\nevent: job.state\ndata: {\"id\":\"j1\",\"note\":\"[REDACTED]\"}\n\n");
    ASSERT_CONTAINS(text, "id: 2\nevent: job.progress\ndata: {\"progress\":0.5}\n\n");
    ASSERT_TRUE(wakes >= 2);
    free(text);
    ASSERT_EQ(events_subscriber_count(bus), 1);
    events_unsubscribe(s);
    ASSERT_EQ(events_subscriber_count(bus), 0);
    events_free(bus);
    log_clear_secrets();
}

TEST(events_slow_subscriber_is_dropped_not_blocking)
{
    events *bus = events_new(NULL, 60);
    events_sub *slow = events_subscribe(bus, 1024, on_wake, NULL);
    events_sub *fast = events_subscribe(bus, 1 << 20, on_wake, NULL);
    for (int i = 0; i < 200; i++) events_publish(bus, "tick", json_pack("{s:i}", "i", i), 0);
    long rc;
    char *a = drain(slow, &rc);
    ASSERT_EQ(rc, -1); /* ended: it could not keep up */
    ASSERT_TRUE(strlen(a) < 1024);
    char *b = drain(fast, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_CONTAINS(b, "data: {\"i\":199}");
    free(a);
    free(b);
    events_unsubscribe(slow);
    events_unsubscribe(fast);
    events_free(bus);
}

TEST(events_heartbeat_and_shutdown)
{
    events *bus = events_new(NULL, 0.05);
    events_sub *s = events_subscribe(bus, 4096, on_wake, NULL);
    usleep(200000);
    long rc;
    char *t = drain(s, &rc);
    ASSERT_CONTAINS(t, ": heartbeat\n\n");
    free(t);
    events_shutdown(bus);
    char tmp[64];
    long n = 0;
    for (int i = 0; i < 100 && (n = events_read(s, tmp, sizeof tmp)) > 0; i++) {
        /* a heartbeat may still be pending: the end comes after it */
    }
    ASSERT_EQ(n, -1);
    events_unsubscribe(s);
    events_free(bus);
}
