/* diarize/gmm: diagonal Gaussian mixtures for the diarizer: a background model (UBM) trained
 * by EM on the file's own speech, its posteriors, and mean-only MAP adaptation, from which
 * come speaker supervectors (cluster distances) and speaker models (resegmentation).
 * Plain data; no I/O; every function is reentrant. */
#ifndef GS_DIARIZE_GMM_H
#define GS_DIARIZE_GMM_H

#include <stddef.h>

typedef struct gmm {
    int m, dim;
    double *w;    /* m weights */
    double *mu;   /* m * dim means */
    double *iv;   /* m * dim inverse variances */
    double *k;    /* m: log w - 0.5 * sum log(2 pi v) */
} gmm;

/* Train g (m components) by iters EM passes over the frames t < n of x (dim floats each)
 * with use[t] != 0, at most max_frames of them (evenly spread). 0, or -1 when no frame
 * is usable (g is then empty). */
int gmm_train(gmm *g, int m, const float *x, size_t n, int dim, const unsigned char *use,
              size_t max_frames, int iters);
void gmm_release(gmm *g);
/* A copy of src (release it). */
void gmm_copy(gmm *dst, const gmm *src);
/* log p(f); post (m doubles, optional) receives the component posteriors. */
double gmm_loglik(const gmm *g, const float *f, double *post);
/* Add frames [a, b) to the zeroth- (N: m) and first-order (F: m * dim) statistics. */
void gmm_accumulate(const gmm *g, const float *x, size_t a, size_t b, double *N, double *F);
/* dst = ubm with its means MAP-adapted to the statistics (relevance factor r). dst must be
 * a copy of ubm (gmm_copy). */
void gmm_adapt(gmm *dst, const gmm *ubm, const double *N, const double *F, double r);
/* The supervector of the statistics (m * dim doubles, unit length): the adapted means' shift
 * from the UBM's, scaled by sqrt(weight) / stddev. */
void gmm_supervector(const gmm *ubm, const double *N, const double *F, double r, double *sv);

#endif
