/* speed.c: measured GPU speeds (the store's gpu_speeds table, which this module alone reads),
 * the seed table, and cost per audio hour (speed.h). */
#include "fleet/speed.h"

#include "core/util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The seed table: memory bandwidth in GB/s from NVIDIA's public data sheets. Whisper's
 * decoder reads the weights once per token, so on one model its speed follows the
 * bandwidth; the figure is scaled so that an RTX 4090 (1008 GB/s) runs SPEED_ANCHOR_X times
 * realtime. An estimate, not a measurement: the fleet's own chunks replace it. */
static const struct { const char *gpu; double gbps; } bandwidth[] = {
    {"RTX 3060", 360},   {"RTX 3070", 448},   {"RTX 3080", 760},   {"RTX 3090", 936},
    {"RTX 3090 Ti", 1008}, {"RTX 4060 Ti", 288}, {"RTX 4070", 504}, {"RTX 4070 Ti", 504},
    {"RTX 4080", 717},   {"RTX 4080S", 736},  {"RTX 4090", 1008},  {"RTX 5080", 960},
    {"RTX 5090", 1792},  {"RTX A4000", 448},  {"RTX A5000", 768},  {"RTX A6000", 768},
    {"RTX 6000Ada", 960}, {"A10", 600},       {"A40", 696},        {"L4", 300},
    {"L40", 864},        {"L40S", 864},       {"Tesla T4", 320},   {"Tesla V100", 900},
    {"A100 PCIE", 1555}, {"A100 SXM4", 2039}, {"A100X", 2039},     {"H100 PCIE", 2039},
    {"H100 SXM", 3352},  {"H100 NVL", 3900},  {"H200", 4800},
};

/* "RTX_4090" and "rtx 4090" name the same model */
static int same_model(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '_' ? ' ' : (char)tolower((unsigned char)*a);
        char y = *b == '_' ? ' ' : (char)tolower((unsigned char)*b);
        if (x != y) return 0;
    }
    return *a == *b;
}

double speed_table_x(const char *gpu_name)
{
    if (!gpu_name) return 0;
    for (size_t i = 0; i < ARRAY_LEN(bandwidth); i++)
        if (same_model(gpu_name, bandwidth[i].gpu))
            return SPEED_ANCHOR_X * bandwidth[i].gbps / 1008.0;
    return 0;
}

static int any_engine(const char *engine)
{
    return !engine || !*engine || !strcmp(engine, "auto");
}

void speed_get(store *st, const char *gpu_name, const char *engine, gpu_speed *out)
{
    memset(out, 0, sizeof *out);
    double audio = 0, busy = 0;
    long long n = 0;
    if (st && gpu_name && *gpu_name) {
        store_lock(st);
        sqlite3_stmt *s = store_stmt(st, any_engine(engine) ?
            "SELECT coalesce(sum(audio_s),0), coalesce(sum(busy_s),0), coalesce(sum(chunks),0) "
            "FROM gpu_speeds WHERE replace(lower(gpu_name),'_',' ')=replace(lower(?1),'_',' ')" :
            "SELECT coalesce(sum(audio_s),0), coalesce(sum(busy_s),0), coalesce(sum(chunks),0) "
            "FROM gpu_speeds WHERE replace(lower(gpu_name),'_',' ')=replace(lower(?1),'_',' ') "
            "AND engine=?2");
        if (s) {
            sqlite3_bind_text(s, 1, gpu_name, -1, SQLITE_TRANSIENT);
            if (!any_engine(engine)) sqlite3_bind_text(s, 2, engine, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(s) == SQLITE_ROW) {
                audio = sqlite3_column_double(s, 0);
                busy = sqlite3_column_double(s, 1);
                n = sqlite3_column_int64(s, 2);
            }
            store_stmt_done(st, s);
        }
        store_unlock(st);
    }
    out->audio_s = audio;
    out->chunks = n;
    if (audio >= SPEED_MIN_AUDIO_S && busy > 0) {
        out->x = audio / busy;
        out->source = "measured";
        return;
    }
    double t = speed_table_x(gpu_name);
    out->x = t > 0 ? t : SPEED_DEFAULT_X;
    out->source = t > 0 ? "table" : "default";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double speed_boot_s(store *st)
{
    double v[10];
    size_t n = 0;
    if (st) {
        store_lock(st);
        sqlite3_stmt *s = store_stmt(st, "SELECT ready_at-created_at FROM instances WHERE "
                                         "ready_at IS NOT NULL AND created_at IS NOT NULL AND "
                                         "ready_at>=created_at ORDER BY ready_at DESC LIMIT 10");
        if (s) {
            while (n < ARRAY_LEN(v) && sqlite3_step(s) == SQLITE_ROW)
                v[n++] = sqlite3_column_double(s, 0);
            store_stmt_done(st, s);
        }
        store_unlock(st);
    }
    if (!n) return SPEED_BOOT_DEFAULT_S;
    qsort(v, n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double speed_cost_per_audio_hour(double dph, double x, int slots, double boot_s,
                                 double backlog_s)
{
    if (slots < 1) slots = 1;
    if (!(x > 0)) x = SPEED_DEFAULT_X;
    if (!(boot_s >= 0)) boot_s = SPEED_BOOT_DEFAULT_S;
    return dph / (x * slots) + dph * boot_s / fmax(backlog_s, 3600.0);
}

static int cmp_rank(const void *a, const void *b)
{
    const offer_rank *x = a, *y = b;
    if (x->cost_per_audio_hour != y->cost_per_audio_hour)
        return x->cost_per_audio_hour < y->cost_per_audio_hour ? -1 : 1;
    if (x->dph != y->dph) return x->dph < y->dph ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

void speed_rank(store *st, const char *engine, int slots, double boot_s, double backlog_s,
                const vast_offer *offers, size_t n, offer_rank *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].index = i;
        out[i].dph = offers[i].dph_total;
        speed_get(st, offers[i].gpu_name, engine, &out[i].speed);
        out[i].cost_per_audio_hour = speed_cost_per_audio_hour(
            offers[i].dph_total, out[i].speed.x, slots, boot_s, backlog_s);
    }
    qsort(out, n, sizeof *out, cmp_rank);
}

json_t *speed_json(store *st)
{
    json_t *models = json_array();
    store_lock(st);
    sqlite3_stmt *s = store_stmt(st, "SELECT gpu_name, engine, audio_s, busy_s, chunks FROM "
                                     "gpu_speeds ORDER BY gpu_name, engine");
    if (s) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            double a = sqlite3_column_double(s, 2), b = sqlite3_column_double(s, 3);
            json_array_append_new(models, json_pack(
                "{s:s,s:s,s:f,s:f,s:I,s:b}", "gpu_name", (const char *)sqlite3_column_text(s, 0),
                "engine", (const char *)sqlite3_column_text(s, 1), "x",
                b > 0 ? round(a / b * 100) / 100 : 0.0, "audio_s", round(a * 10) / 10,
                "chunks", (json_int_t)sqlite3_column_int64(s, 4), "used",
                a >= SPEED_MIN_AUDIO_S && b > 0));
        }
        store_stmt_done(st, s);
    }
    store_unlock(st);
    return json_pack("{s:o,s:f,s:f,s:f}", "models", models, "boot_s",
                     round(speed_boot_s(st)), "anchor_x", SPEED_ANCHOR_X, "min_audio_s",
                     SPEED_MIN_AUDIO_S);
}
