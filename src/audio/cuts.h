/* audio/cuts: where to cut long audio into chunks, at pauses.
 *
 * audio_find_cuts reads a 16 kHz mono WAV (audio/wavfile) window by window and returns chunk
 * boundaries in samples: 0 = b[0] < b[1] < ... < b[n] = the file's samples. While more than
 * chunk_s seconds are left after the last boundary, the next one is placed in the quietest
 * stretch within +-search_s of chunk_s past it (energy in 10 ms frames, summed over a 300 ms
 * sliding window; the cut goes to the quietest frame inside the quietest window, ties to
 * the frame nearest the target), never closer than 5 s to the end or than chunk_s / 2 to the
 * previous cut. Audio no longer than chunk_s is one chunk. Memory: one search window
 * (2 * search_s of samples). Pure apart from reading the file; thread-safe. */
#ifndef GS_AUDIO_CUTS_H
#define GS_AUDIO_CUTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CUTS_FRAME 160       /* 10 ms at 16 kHz */
#define CUTS_STRETCH 30      /* frames in the sliding window (300 ms) */

/* The cut inside samples s[0..n): the index (a multiple of CUTS_FRAME) of the quietest
 * frame of the quietest stretch, ties broken towards `target` (an index into s). */
size_t audio_quietest(const int16_t *s, size_t n, size_t target);

/* Boundaries into *bounds (heap, caller frees) and their count (chunks + 1) into *nbounds.
 * 0, or -1 with a sentence in err (the file's error, "cancelled" when *cancel became
 * nonzero, "out of memory"). cancel may be NULL. */
int audio_find_cuts(const char *wav_path, double chunk_s, double search_s, size_t **bounds,
                    size_t *nbounds, const atomic_int *cancel, char *err, size_t errlen);

#endif
