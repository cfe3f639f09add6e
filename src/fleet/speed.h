/* speed: how fast a GPU model transcribes, and what an audio hour costs on an offer.
 *
 * A speed is audio seconds transcribed per wall second by one worker slot (x realtime).
 * It is measured: every chunk done on an instance adds its audio and busy seconds to the
 * store's gpu_speeds row of that instance's GPU model and engine (a trigger, migration 6;
 * deleting a job keeps what it taught). Until a model has SPEED_MIN_AUDIO_S of audio
 * measured, the seed table is used: an estimate, documented in speed.c and the README, from
 * each GPU's memory bandwidth (public spec-sheet figures; whisper's decoder is bound by it),
 * scaled to SPEED_ANCHOR_X for an RTX 4090; a model the table lacks gets SPEED_DEFAULT_X.
 *
 * Expected cost per audio hour of an offer:
 *     dph / (speed x slots)  +  dph x boot_s / max(backlog_s, 3600)
 * the first term what transcribing costs once it runs, the second the boot and setup time
 * (measured: the median of the last instances' created -> ready; SPEED_BOOT_DEFAULT_S
 * before any) spread over the backlog's audio hours (at least one).
 *
 * Contract: pure functions and store reads; thread-safe (the store has its own lock).
 */
#ifndef GS_FLEET_SPEED_H
#define GS_FLEET_SPEED_H

#include "store/store.h"
#include "vast/vast.h"

#include <jansson.h>
#include <stddef.h>

#define SPEED_MIN_AUDIO_S 300.0    /* measured audio before a measurement replaces the table */
#define SPEED_ANCHOR_X 35.0        /* the table's RTX 4090 (1008 GB/s), whisper large-v3 */
#define SPEED_DEFAULT_X 10.0       /* a GPU model the table does not know */
#define SPEED_BOOT_DEFAULT_S 600.0 /* created -> ready before any was measured */

typedef struct gpu_speed {
    double x;             /* audio seconds per second, one slot */
    const char *source;   /* "measured", "table" or "default" (static strings) */
    double audio_s;       /* audio measured on that model (0: none) */
    long long chunks;     /* chunks measured */
} gpu_speed;

/* The speed of gpu_name running engine (NULL, "" or "auto": every engine measured on that
 * model together). */
void speed_get(store *st, const char *gpu_name, const char *engine, gpu_speed *out);
/* The seed table's figure for gpu_name ("RTX_4090" == "RTX 4090"), 0 when it has none. */
double speed_table_x(const char *gpu_name);
/* The median created -> ready seconds of the last ten instances that got ready. */
double speed_boot_s(store *st);
/* The formula above; slots < 1 counts as 1. */
double speed_cost_per_audio_hour(double dph, double x, int slots, double boot_s,
                                 double backlog_s);

/* One offer's estimate. */
typedef struct offer_rank {
    size_t index;         /* in the list ranked */
    double dph;           /* its $/h */
    gpu_speed speed;
    double cost_per_audio_hour;
} offer_rank;
/* Rank offers by cost per audio hour, cheapest first (ties: lower $/h, then the list's
 * order): out[0..n) (caller's array). */
void speed_rank(store *st, const char *engine, int slots, double boot_s, double backlog_s,
                const vast_offer *offers, size_t n, offer_rank *out);

/* {"models": [{gpu_name, engine, x, audio_s, chunks}], "boot_s", "anchor_x"} (new ref). */
json_t *speed_json(store *st);

#endif
