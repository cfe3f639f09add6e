/* events: the in-process event bus behind GET /api/events (Server-Sent Events).
 *
 * events_publish(bus, "job.progress", data) formats one SSE message
 * (`id: N\nevent: TYPE\ndata: JSON\n\n`) and appends it to every subscriber's buffer; with
 * persist=1 it is also written to the store's events table (a bounded history: the newest
 * STORE_EVENTS_KEEP rows, pruned by the store). The stream is live only: nothing is replayed
 * from the table, and a Last-Event-ID is not honoured. Each subscriber has a bounded
 * buffer: a client too slow to keep up is dropped (its reads then end the stream), so a slow
 * client never blocks a publisher. A heartbeat comment goes to every subscriber every
 * heartbeat_s seconds. Subscribers are woken through their wake callback, called with the
 * bus lock held (it must not call back into the bus). Secrets are redacted from every
 * message. All functions are thread-safe.
 */
#ifndef GS_EVENTS_H
#define GS_EVENTS_H

#include <jansson.h>
#include <stddef.h>

struct store;
typedef struct events events;
typedef struct events_sub events_sub;

events *events_new(struct store *st, double heartbeat_s);
/* Ends every subscription (their reads return -1) and stops the heartbeat. */
void events_shutdown(events *bus);
void events_free(events *bus);

/* data is stolen (may be NULL). */
void events_publish(events *bus, const char *type, json_t *data, int persist);

events_sub *events_subscribe(events *bus, size_t max_buffer, void (*wake)(void *ud), void *ud);
/* Copy up to max bytes of pending SSE text; >0 bytes, 0 when nothing is pending, -1 when the
 * subscription ended (dropped for slowness or bus shut down). */
long events_read(events_sub *sub, char *out, size_t max);
void events_unsubscribe(events_sub *sub);
size_t events_subscriber_count(events *bus);
/* How many events have been published (a change counter: caches of views that events report
 * on, such as /api/gpu-status, compare it). Lock-free; 0 for a NULL bus. */
unsigned long long events_generation(events *bus);

#endif
