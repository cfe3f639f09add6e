/* diarize/mfcc: MFCC features of a 16 kHz mono WAV from sphinxbase's front end (fe_*).
 *
 * In the controller (GS_SPHINX_DLOPEN) libsphinxbase is opened with dlopen on first use, by
 * the soname the Makefile read (GS_SONAME_SPHINXBASE), like src/engine/sphinx_dl.c does for
 * the engine; a build without it linked in gets the linked functions. The file is read in
 * blocks of 10 s: what is kept is the features and the frame energies, not the samples.
 * Thread-safe (each call has its own front end).
 */
#ifndef GS_DIARIZE_MFCC_H
#define GS_DIARIZE_MFCC_H

#include <stddef.h>

#define MFCC_DIM 19   /* cepstra c1..c19 (c0, the energy, is left out) */

typedef struct mfcc_feats {
    float *x;         /* n frames of MFCC_DIM, 10 ms apart */
    float *energy_db; /* n frame energies, dB re full scale (-100 for digital silence) */
    size_t n;
    double duration;  /* seconds of audio */
} mfcc_feats;

/* Features of the WAV at path (16-bit mono PCM, 16 kHz). progress(ud, f) with f 0..1 after
 * each block; a nonzero return stops (-2). 0, or -1 with a sentence in err. */
int mfcc_file(const char *path, mfcc_feats *out, int (*progress)(void *ud, double f), void *ud,
              char *err, size_t errlen);
void mfcc_feats_release(mfcc_feats *f);

#endif
