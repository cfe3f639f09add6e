/* audio/peaks: a waveform's outline for the UI: n (min, max) pairs over 16-bit mono samples,
 * pair i the extremes of slice i of n equal slices (slice i: the samples k with
 * i <= k*n/N < i+1).
 * With fewer samples than n, one pair per sample (n becomes N). Pure, thread-safe. */
#ifndef GS_AUDIO_PEAKS_H
#define GS_AUDIO_PEAKS_H

#include <stddef.h>
#include <stdint.h>

#define PEAKS_MIN_N 16
#define PEAKS_MAX_N 4000

typedef struct audio_peaks {
    size_t n;          /* pairs in min/max (<= the n asked for) */
    int16_t *min, *max;/* heap; release with audio_peaks_release */
    size_t nsamples;   /* samples read */
    int rate;          /* Hz (the WAV's) */
} audio_peaks;

/* Peaks of samples[0..ns) into out (n >= 1). 0, or -1 when n is 0. */
int audio_peaks_compute(const int16_t *samples, size_t ns, size_t n, audio_peaks *out);

/* Peaks of a 16-bit PCM mono WAV file (RIFF chunks walked: fmt must be PCM 16-bit mono;
 * a data size of 0 or 0xFFFFFFFF, as a streamed writer may leave it, means "to the end"),
 * read in blocks (memory stays small whatever the length). 0, or -1 with a sentence in err:
 * "file not found", "not a 16-bit mono PCM WAV file", "read error: <reason>". */
int audio_peaks_file(const char *path, size_t n, audio_peaks *out, char *err, size_t errlen);

void audio_peaks_release(audio_peaks *p);

#endif
