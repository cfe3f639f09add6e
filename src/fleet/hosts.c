/* hosts.c: reads of the store's bad_hosts table (hosts.h). */
#include "fleet/hosts.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void read_row(sqlite3_stmt *s, double hours, bad_host *h)
{
    memset(h, 0, sizeof *h);
    h->machine_id = sqlite3_column_int64(s, 0);
    const char *r = (const char *)sqlite3_column_text(s, 1);
    const char *v = (const char *)sqlite3_column_text(s, 2);
    snprintf(h->reason, sizeof h->reason, "%s", r ? r : "");
    snprintf(h->vast_id, sizeof h->vast_id, "%s", v ? v : "");
    h->marked_at = sqlite3_column_double(s, 3);
    h->until = h->marked_at + hours * 3600.0;
}

int hosts_bad(store *st, long long machine_id, double hours, double now, bad_host *out)
{
    if (!st || machine_id <= 0 || !(hours > 0)) return 0;
    int found = 0;
    store_lock(st);
    sqlite3_stmt *s = store_stmt(st, "SELECT machine_id, reason, vast_id, marked_at FROM "
                                     "bad_hosts WHERE machine_id=? AND marked_at>?");
    if (s) {
        sqlite3_bind_int64(s, 1, machine_id);
        sqlite3_bind_double(s, 2, now - hours * 3600.0);
        if (sqlite3_step(s) == SQLITE_ROW) {
            found = 1;
            if (out) read_row(s, hours, out);
        }
        store_stmt_done(st, s);
    }
    store_unlock(st);
    return found;
}

json_t *hosts_one_json(const bad_host *h)
{
    return json_pack("{s:I,s:s,s:s?,s:f,s:f}", "machine_id", (json_int_t)h->machine_id,
                     "reason", h->reason, "vast_id", h->vast_id[0] ? h->vast_id : NULL,
                     "marked_at", round(h->marked_at), "until", round(h->until));
}

json_t *hosts_bad_json(store *st, double hours, double now)
{
    json_t *arr = json_array();
    if (!st || !(hours > 0)) return arr;
    store_lock(st);
    sqlite3_stmt *s = store_stmt(st, "SELECT machine_id, reason, vast_id, marked_at FROM "
                                     "bad_hosts WHERE marked_at>? ORDER BY marked_at DESC");
    if (s) {
        sqlite3_bind_double(s, 1, now - hours * 3600.0);
        while (sqlite3_step(s) == SQLITE_ROW) {
            bad_host h;
            read_row(s, hours, &h);
            json_array_append_new(arr, hosts_one_json(&h));
        }
        store_stmt_done(st, s);
    }
    store_unlock(st);
    return arr;
}
