/* GET /api/events: Server-Sent Events from the event bus (core/events.h). */
#include "api/api.h"
#include "app.h"
#include "core/events.h"

#include <stdatomic.h>
#include <stdlib.h>

struct sse {
    events_sub *sub;
    _Atomic(http_stream *) stream; /* set by the request, read by publishers' wakes */
};

static void sse_wake(void *ud)
{
    struct sse *s = ud;
    http_stream *st = atomic_load(&s->stream);
    if (st) http_stream_wake(st);
}

static long sse_read(void *cls, char *out, size_t max)
{
    struct sse *s = cls;
    return events_read(s->sub, out, max);
}

static void sse_free(void *cls)
{
    struct sse *s = cls;
    events_unsubscribe(s->sub);
    free(s);
}

void api_events(http_req *r, void *appv)
{
    app *a = appv;
    struct sse *s = calloc(1, sizeof *s);
    if (!s) {
        http_reply_error(r, 503, "out of memory");
        return;
    }
    s->sub = events_subscribe(a->bus, 256 * 1024, sse_wake, s);
    /* a wake before the stream pointer is set finds NULL and is harmless: the first read
     * happens after the reply is queued */
    http_stream *st = http_reply_stream(r, 200, "text/event-stream", sse_read, s, sse_free);
    atomic_store(&s->stream, st);
}
