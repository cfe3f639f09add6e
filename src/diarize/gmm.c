/* gmm.c: diagonal GMMs, EM, MAP adaptation. Contract in gmm.h. */
#include "diarize/gmm.h"

#include "core/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VAR_FLOOR 0.01

static void alloc(gmm *g, int m, int dim)
{
    g->m = m;
    g->dim = dim;
    g->w = xcalloc((size_t)m, sizeof *g->w);
    g->k = xcalloc((size_t)m, sizeof *g->k);
    g->mu = xcalloc((size_t)m * (size_t)dim, sizeof *g->mu);
    g->iv = xcalloc((size_t)m * (size_t)dim, sizeof *g->iv);
}

void gmm_release(gmm *g)
{
    if (!g) return;
    free(g->w);
    free(g->k);
    free(g->mu);
    free(g->iv);
    memset(g, 0, sizeof *g);
}

void gmm_copy(gmm *dst, const gmm *src)
{
    alloc(dst, src->m, src->dim);
    size_t md = (size_t)src->m * (size_t)src->dim;
    memcpy(dst->w, src->w, (size_t)src->m * sizeof *dst->w);
    memcpy(dst->k, src->k, (size_t)src->m * sizeof *dst->k);
    memcpy(dst->mu, src->mu, md * sizeof *dst->mu);
    memcpy(dst->iv, src->iv, md * sizeof *dst->iv);
}

static void update_k(gmm *g)
{
    for (int j = 0; j < g->m; j++) {
        double s = 0;
        for (int d = 0; d < g->dim; d++) s += log(g->iv[(size_t)j * g->dim + d]);
        g->k[j] = log(g->w[j] > 1e-12 ? g->w[j] : 1e-12) + 0.5 * s - 0.5 * g->dim * log(2 * M_PI);
    }
}

double gmm_loglik(const gmm *g, const float *f, double *post)
{
    double lp[256], *l = g->m <= 256 ? lp : xmalloc((size_t)g->m * sizeof *l);
    double mx = -INFINITY;
    for (int j = 0; j < g->m; j++) {
        const double *mu = g->mu + (size_t)j * g->dim, *iv = g->iv + (size_t)j * g->dim;
        double s = 0;
        for (int d = 0; d < g->dim; d++) {
            double z = f[d] - mu[d];
            s += z * z * iv[d];
        }
        l[j] = g->k[j] - 0.5 * s;
        if (l[j] > mx) mx = l[j];
    }
    double sum = 0;
    for (int j = 0; j < g->m; j++) sum += exp(l[j] - mx);
    double ll = mx + log(sum);
    if (post)
        for (int j = 0; j < g->m; j++) post[j] = exp(l[j] - ll);
    if (l != lp) free(l);
    return ll;
}

int gmm_train(gmm *g, int m, const float *x, size_t n, int dim, const unsigned char *use,
              size_t max_frames, int iters)
{
    memset(g, 0, sizeof *g);
    size_t nuse = 0;
    for (size_t t = 0; t < n; t++) nuse += use[t] != 0;
    if (nuse == 0 || m < 1) return -1;
    size_t step = max_frames && nuse > max_frames ? (nuse + max_frames - 1) / max_frames : 1;
    size_t ns = 0;
    size_t *idx = xmalloc((nuse / step + 1) * sizeof *idx);
    for (size_t t = 0, u = 0; t < n; t++)
        if (use[t] && u++ % step == 0) idx[ns++] = t;
    if ((size_t)m > ns) m = (int)ns;
    alloc(g, m, dim);
    /* start: means at frames spread evenly over the sample, unit variances, equal weights */
    for (int j = 0; j < m; j++) {
        const float *f = x + idx[(size_t)j * ns / (size_t)m] * (size_t)dim;
        for (int d = 0; d < dim; d++) {
            g->mu[(size_t)j * dim + d] = f[d];
            g->iv[(size_t)j * dim + d] = 1.0;
        }
        g->w[j] = 1.0 / m;
    }
    update_k(g);
    double *post = xmalloc((size_t)m * sizeof *post);
    double *N = xmalloc((size_t)m * sizeof *N);
    double *F = xmalloc((size_t)m * dim * sizeof *F), *S = xmalloc((size_t)m * dim * sizeof *S);
    for (int it = 0; it < iters; it++) {
        memset(N, 0, (size_t)m * sizeof *N);
        memset(F, 0, (size_t)m * dim * sizeof *F);
        memset(S, 0, (size_t)m * dim * sizeof *S);
        for (size_t i = 0; i < ns; i++) {
            const float *f = x + idx[i] * (size_t)dim;
            gmm_loglik(g, f, post);
            for (int j = 0; j < m; j++) {
                if (post[j] < 1e-8) continue;
                N[j] += post[j];
                double *Fj = F + (size_t)j * dim, *Sj = S + (size_t)j * dim;
                for (int d = 0; d < dim; d++) {
                    Fj[d] += post[j] * f[d];
                    Sj[d] += post[j] * (double)f[d] * f[d];
                }
            }
        }
        for (int j = 0; j < m; j++) {
            if (N[j] < 1e-3) { /* a dead component keeps its place with a tiny weight */
                g->w[j] = 1e-6;
                continue;
            }
            g->w[j] = N[j] / (double)ns;
            for (int d = 0; d < dim; d++) {
                double mu = F[(size_t)j * dim + d] / N[j];
                double v = S[(size_t)j * dim + d] / N[j] - mu * mu;
                g->mu[(size_t)j * dim + d] = mu;
                g->iv[(size_t)j * dim + d] = 1.0 / (v > VAR_FLOOR ? v : VAR_FLOOR);
            }
        }
        update_k(g);
    }
    free(S);
    free(F);
    free(N);
    free(post);
    free(idx);
    return 0;
}

void gmm_accumulate(const gmm *g, const float *x, size_t a, size_t b, double *N, double *F)
{
    double pp[256], *post = g->m <= 256 ? pp : xmalloc((size_t)g->m * sizeof *post);
    for (size_t t = a; t < b; t++) {
        const float *f = x + t * (size_t)g->dim;
        gmm_loglik(g, f, post);
        for (int j = 0; j < g->m; j++) {
            if (post[j] < 1e-8) continue;
            N[j] += post[j];
            double *Fj = F + (size_t)j * g->dim;
            for (int d = 0; d < g->dim; d++) Fj[d] += post[j] * f[d];
        }
    }
    if (post != pp) free(post);
}

void gmm_adapt(gmm *dst, const gmm *ubm, const double *N, const double *F, double r)
{
    for (int j = 0; j < ubm->m; j++) {
        double a = N[j] / (N[j] + r);
        for (int d = 0; d < ubm->dim; d++) {
            size_t i = (size_t)j * ubm->dim + d;
            double em = N[j] > 0 ? F[i] / N[j] : ubm->mu[i];
            dst->mu[i] = a * em + (1 - a) * ubm->mu[i];
        }
    }
}

void gmm_supervector(const gmm *ubm, const double *N, const double *F, double r, double *sv)
{
    for (int j = 0; j < ubm->m; j++) {
        double a = N[j] / (N[j] + r), sw = sqrt(ubm->w[j]);
        for (int d = 0; d < ubm->dim; d++) {
            size_t i = (size_t)j * ubm->dim + d;
            double em = N[j] > 0 ? F[i] / N[j] : ubm->mu[i];
            double v = a * (em - ubm->mu[i]) * sw * sqrt(ubm->iv[i]);
            sv[i] = v;
        }
    }
}
