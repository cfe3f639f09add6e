/* diarize: who spoke when, from a 16 kHz mono WAV, on the CPU, with no model to download.
 *
 * The interface is a diarizer (a name and a run function: diarize_cpu is the one built in;
 * a model-based one, e.g. pyannote on a GPU worker, would be another) that turns a WAV file
 * into speaker turns: [start, end) in seconds, speaker 0..n_speakers-1 numbered by first
 * appearance, sorted, never overlapping. Silence belongs to no turn.
 *
 * The CPU diarizer (diarize.c, cluster.c, mfcc.c):
 *   1. speech regions: 10 ms frame energy against a threshold between the noise floor and the
 *      speech level; pauses under 0.25 s are bridged, islands under 0.1 s dropped;
 *   2. features: sphinxbase's MFCC front end (fe_*, opened with dlopen like the engine's
 *      pocketsphinx), 20 cepstra without c0, normalised over the speech frames;
 *   3. speaker-change detection inside each region: a symmetric KL distance between diagonal
 *      Gaussians of the 1 s on either side of every 50 ms point, its peaks over an adaptive
 *      threshold cutting the region;
 *   4. clustering: a 32-component background GMM is trained by EM on the file's own speech;
 *      the pieces of at least 1 s start as clusters, each represented by its supervector
 *      (the GMM's means MAP-adapted to the cluster, scaled so that the squared distance
 *      between two is a bound on the KL divergence of their GMMs); the closest two are merged
 *      (statistics summed) until the closest pair is further apart than a fixed distance
 *      (the estimate, clamped to min/max_speakers) or num_speakers remain; shorter pieces
 *      (back-channels) join the speaker whose GMM explains them best;
 *   5. resegmentation: a Viterbi pass over the speech frames with each speaker's adapted GMM
 *      and a switching penalty, twice (models re-adapted), refining the turn boundaries.
 * Memory: the features (19 floats per 10 ms, 27 MB an hour, twice while normalised) plus
 * the frame energies and labels; clustering at most 1500 pieces (an 18 MB distance matrix).
 *
 * Thread-safety: diarizers keep no state between runs; run them from any thread, several at
 * once. They never log (the caller does).
 */
#ifndef GS_DIARIZE_H
#define GS_DIARIZE_H

#include <stddef.h>

#define DIARIZE_MAX_SPEAKERS 16

typedef struct diarize_opts {
    int num_speakers;   /* exact count, 1..DIARIZE_MAX_SPEAKERS; 0 = estimate */
    int min_speakers;   /* bounds of the estimate; 0 = 1 */
    int max_speakers;   /* 0 = DIARIZE_MAX_SPEAKERS */
} diarize_opts;

typedef struct diarize_turn {
    double start, end;  /* seconds */
    int speaker;        /* 0-based, numbered by first appearance */
} diarize_turn;

typedef struct diarize_result {
    diarize_turn *turns;
    size_t n_turns;
    int n_speakers;
} diarize_result;

/* Progress 0..1; return nonzero to stop the run (it then fails with DIARIZE_STOPPED). */
typedef int (*diarize_progress_fn)(void *ud, double fraction);

enum { DIARIZE_OK = 0, DIARIZE_FAILED = -1, DIARIZE_STOPPED = -2 };

typedef struct diarizer {
    const char *name;
    /* Diarize the 16-bit mono PCM WAV at path (16 kHz). DIARIZE_OK with *out filled (release
     * with diarize_result_release), DIARIZE_FAILED with a sentence in err, or DIARIZE_STOPPED
     * when progress asked to stop; *out is empty on error. progress may be NULL. */
    int (*run)(const char *wav_path, const diarize_opts *o, diarize_progress_fn progress,
               void *ud, diarize_result *out, char *err, size_t errlen);
} diarizer;

extern const diarizer diarize_cpu;

/* Check opts (fields 0 = unset): 0, or -1 with a client-facing sentence in err, e.g.
 * "min_speakers (3) is greater than max_speakers (2)". */
int diarize_opts_check(const diarize_opts *o, char *err, size_t errlen);

void diarize_result_release(diarize_result *r);

/* ---- the core on features (cluster.c; no I/O, no sphinxbase), for tests and the bench ----
 * x: n frames of dim floats (10 ms apart, normalised or not); energy_db: n frame energies in
 * dB. Fills *out (see above). Returns DIARIZE_OK, DIARIZE_STOPPED (progress said stop, from
 * 0.7 to 1 of the whole run), or DIARIZE_FAILED for a bad dim (err). No speech at all is
 * DIARIZE_OK with no turns and no speakers. */
int diarize_frames(const float *x, const float *energy_db, size_t n, int dim,
                   const diarize_opts *o, diarize_progress_fn progress, void *ud,
                   diarize_result *out, char *err, size_t errlen);

/* The speech mask of diarize_frames' step 1: mask[i] = 1 for a speech frame. */
void diarize_speech_mask(const float *energy_db, size_t n, unsigned char *mask);

#endif
