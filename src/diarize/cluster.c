/* cluster.c: the diarizer's core on features: speech mask, change detection, agglomerative
 * clustering of GMM supervectors and Viterbi resegmentation (the steps of diarize.h). */
#include "diarize/diarize.h"

#include "core/util.h"
#include "diarize/gmm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXD 32             /* feature dimensions at most */
#define GAP_BRIDGE 25       /* frames: pauses shorter than this are speech */
#define MIN_ISLAND 10       /* frames: speech runs shorter than this are not */
#define CD_WIN 100          /* change detection: frames on each side */
#define CD_MINWIN 50        /* ... at least (near a region's edge) */
#define CD_STEP 5           /* frames between candidate points */
#define CD_PEAK 10          /* candidates on each side a peak must top */
#define CD_THR_STD 0.5      /* threshold: mean + this many standard deviations */
#define MIN_PIECE 50        /* frames: no cut leaves a piece shorter */
#define LONG_PIECE 100      /* frames: pieces this long start as clusters */
#define MAX_CLUSTERS 1500   /* initial clusters at most (the longest pieces) */
#define VAR_FLOOR 1e-3
#define UBM_COMPONENTS 32
#define UBM_FRAMES 60000    /* EM on at most this many speech frames */
#define UBM_ITERS 8
#define UBM_FRAMES_PER_COMPONENT 200
#define RELEVANCE 16.0      /* MAP adaptation's relevance factor */
#define STOP_DISTANCE 2.2   /* clusters this far apart (squared supervector distance): two speakers */
#define SWITCH_PENALTY 150.0 /* nats to change speaker between two frames */
#define RESEG_ITERS 2

typedef struct gstat {
    double n;
    double s1[MAXD], s2[MAXD];
} gstat;

typedef struct piece {
    size_t a, b;     /* frames [a, b) */
    int cluster;     /* initial cluster index, -1 for short pieces */
} piece;

static void gs_add_frames(gstat *g, const float *x, int dim, size_t a, size_t b)
{
    for (size_t t = a; t < b; t++) {
        const float *f = x + t * (size_t)dim;
        for (int d = 0; d < dim; d++) {
            g->s1[d] += f[d];
            g->s2[d] += (double)f[d] * f[d];
        }
    }
    g->n += (double)(b - a);
}

static double gs_var(const gstat *g, int d)
{
    double m = g->s1[d] / g->n, v = g->s2[d] / g->n - m * m;
    return v > VAR_FLOOR ? v : VAR_FLOOR;
}

/* symmetric KL divergence between the diagonal Gaussians of a and b */
static double kl2(const gstat *a, const gstat *b, int dim)
{
    double s = 0;
    for (int d = 0; d < dim; d++) {
        double va = gs_var(a, d), vb = gs_var(b, d);
        double dm = a->s1[d] / a->n - b->s1[d] / b->n;
        s += va / vb + vb / va - 2 + dm * dm * (1 / va + 1 / vb);
    }
    return 0.5 * s;
}

/* ---- step 1: speech mask */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void diarize_speech_mask(const float *e, size_t n, unsigned char *m)
{
    if (!n) return;
    float *s = xmalloc(n * sizeof *s);
    memcpy(s, e, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_float);
    double floor_db = s[n / 10], peak = s[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1];
    free(s);
    double thr = floor_db + 0.35 * (peak - floor_db);
    if (peak - floor_db < 10) thr = peak > -60 ? floor_db - 1 : peak + 1; /* flat: all or none */
    for (size_t i = 0; i < n; i++) m[i] = e[i] > thr;
    /* bridge short pauses between speech */
    size_t i = 0;
    while (i < n) {
        if (m[i]) { i++; continue; }
        size_t j = i;
        while (j < n && !m[j]) j++;
        if (i > 0 && j < n && j - i < GAP_BRIDGE) memset(m + i, 1, j - i);
        i = j;
    }
    /* drop short islands */
    i = 0;
    while (i < n) {
        if (!m[i]) { i++; continue; }
        size_t j = i;
        while (j < n && m[j]) j++;
        if (j - i < MIN_ISLAND) memset(m + i, 0, j - i);
        i = j;
    }
}

/* ---- step 3: pieces (regions cut at speaker changes) */

typedef struct pieces {
    piece *p;
    size_t n, cap;
} pieces;

static void pieces_add(pieces *ps, size_t a, size_t b)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->p = xrealloc(ps->p, ps->cap * sizeof *ps->p);
    }
    ps->p[ps->n++] = (piece){a, b, -1};
}

static void make_pieces(const float *x, const unsigned char *mask, size_t n, int dim, pieces *ps)
{
    /* regions */
    size_t nreg = 0, capreg = 0;
    size_t (*reg)[2] = NULL;
    for (size_t i = 0; i < n;) {
        if (!mask[i]) { i++; continue; }
        size_t j = i;
        while (j < n && mask[j]) j++;
        if (nreg == capreg) {
            capreg = capreg ? capreg * 2 : 64;
            reg = xrealloc(reg, capreg * sizeof *reg);
        }
        reg[nreg][0] = i;
        reg[nreg][1] = j;
        nreg++;
        i = j;
    }
    /* distances at candidate points, over the whole file (for the adaptive threshold) */
    size_t nc = 0, capc = 0;
    size_t *ct = NULL;
    double *cd = NULL;
    size_t *first = xcalloc(nreg + 1, sizeof *first);
    for (size_t r = 0; r < nreg; r++) {
        first[r] = nc;
        size_t ra = reg[r][0], rb = reg[r][1];
        if (rb - ra < 2 * CD_MINWIN) continue;
        for (size_t t = ra + CD_MINWIN; t + CD_MINWIN <= rb; t += CD_STEP) {
            size_t wl = t - ra > CD_WIN ? t - CD_WIN : ra, wr = rb - t > CD_WIN ? t + CD_WIN : rb;
            gstat L = {0}, R = {0};
            gs_add_frames(&L, x, dim, wl, t);
            gs_add_frames(&R, x, dim, t, wr);
            if (nc == capc) {
                capc = capc ? capc * 2 : 1024;
                ct = xrealloc(ct, capc * sizeof *ct);
                cd = xrealloc(cd, capc * sizeof *cd);
            }
            ct[nc] = t;
            cd[nc] = kl2(&L, &R, dim);
            nc++;
        }
    }
    first[nreg] = nc;
    double mean = 0, var = 0;
    for (size_t i = 0; i < nc; i++) mean += cd[i];
    if (nc) mean /= (double)nc;
    for (size_t i = 0; i < nc; i++) var += (cd[i] - mean) * (cd[i] - mean);
    if (nc) var /= (double)nc;
    double thr = mean + CD_THR_STD * sqrt(var);
    for (size_t r = 0; r < nreg; r++) {
        size_t ra = reg[r][0], rb = reg[r][1], last = ra;
        for (size_t i = first[r]; i < first[r + 1]; i++) {
            if (cd[i] <= thr) continue;
            int peak = 1;
            size_t lo = i >= first[r] + CD_PEAK ? i - CD_PEAK : first[r];
            size_t hi = i + CD_PEAK < first[r + 1] ? i + CD_PEAK : first[r + 1] - 1;
            for (size_t k = lo; k <= hi && peak; k++)
                if (k != i && (cd[k] > cd[i] || (cd[k] == cd[i] && k < i))) peak = 0;
            if (!peak || ct[i] - last < MIN_PIECE || rb - ct[i] < MIN_PIECE) continue;
            pieces_add(ps, last, ct[i]);
            last = ct[i];
        }
        pieces_add(ps, last, rb);
    }
    free(first);
    free(ct);
    free(cd);
    free(reg);
}

/* ---- step 4: agglomerative clustering of supervectors */

struct merge { int into, from; double cost; };

static int find(int *parent, int i)
{
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

/* squared distance between supervectors: twice the KL divergence bound between the two
 * adapted GMMs (same weights and variances) */
static double sv_dist(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return s;
}

/* Cluster C initial clusters given by their UBM statistics (N: C * m, F: C * m * dim; both
 * changed: merged clusters' statistics are summed); linkage: the cosine distance between
 * the clusters' supervectors. Fills label[0..C) with 0..K-1, returns K. */
static int agglomerate(const gmm *ubm, double *N, double *F, int C, const diarize_opts *o,
                       int *label)
{
    if (C <= 1) {
        if (C == 1) label[0] = 0;
        return C;
    }
    size_t m = (size_t)ubm->m, md = m * (size_t)ubm->dim;
    double *sv = xmalloc((size_t)C * md * sizeof *sv);
    for (int i = 0; i < C; i++) gmm_supervector(ubm, N + i * m, F + i * md, RELEVANCE, sv + i * md);
    double *D = xmalloc((size_t)C * (size_t)C * sizeof *D);
    int *nn = xmalloc((size_t)C * sizeof *nn);
    double *nnd = xmalloc((size_t)C * sizeof *nnd);
    char *alive = xmalloc((size_t)C);
    memset(alive, 1, (size_t)C);
    for (int i = 0; i < C; i++)
        for (int k = i + 1; k < C; k++)
            D[(size_t)i * C + k] = D[(size_t)k * C + i] = sv_dist(sv + i * md, sv + k * md, md);
#define ROWMIN(i)                                                                            \
    do {                                                                                     \
        nn[i] = -1;                                                                          \
        nnd[i] = INFINITY;                                                                   \
        for (int k_ = 0; k_ < C; k_++)                                                       \
            if (k_ != (i) && alive[k_] && D[(size_t)(i) * C + k_] < nnd[i]) {                \
                nnd[i] = D[(size_t)(i) * C + k_];                                            \
                nn[i] = k_;                                                                  \
            }                                                                                \
    } while (0)
    for (int i = 0; i < C; i++) ROWMIN(i);
    struct merge *hist = xmalloc((size_t)C * sizeof *hist);
    int nh = 0;
    for (int left = C; left > 1; left--) {
        int bi = -1;
        for (int i = 0; i < C; i++)
            if (alive[i] && nn[i] >= 0 && (bi < 0 || nnd[i] < nnd[bi])) bi = i;
        if (bi < 0) break;
        int a = bi, b = nn[bi];
        if (b < a) { int t = a; a = b; b = t; }
        hist[nh++] = (struct merge){a, b, nnd[bi]};
        for (size_t j = 0; j < m; j++) N[a * m + j] += N[b * m + j];
        for (size_t j = 0; j < md; j++) F[a * md + j] += F[b * md + j];
        gmm_supervector(ubm, N + a * m, F + a * md, RELEVANCE, sv + a * md);
        alive[b] = 0;
        for (int k = 0; k < C; k++)
            if (alive[k] && k != a)
                D[(size_t)a * C + k] = D[(size_t)k * C + a] = sv_dist(sv + a * md, sv + k * md, md);
        ROWMIN(a);
        for (int k = 0; k < C; k++) {
            if (!alive[k] || k == a) continue;
            if (nn[k] == a || nn[k] == b) ROWMIN(k);
            else if (D[(size_t)k * C + a] < nnd[k]) { nnd[k] = D[(size_t)k * C + a]; nn[k] = a; }
        }
    }
#undef ROWMIN
    /* how many clusters: given, or where the closest pair got too far apart */
    int K;
    if (o->num_speakers > 0) {
        K = o->num_speakers;
    } else {
        int stop = nh;
        for (int i = 0; i < nh; i++)
            if (hist[i].cost > STOP_DISTANCE) { stop = i; break; }
        K = C - stop;
        int lo = o->min_speakers > 0 ? o->min_speakers : 1;
        int hi = o->max_speakers > 0 ? o->max_speakers : DIARIZE_MAX_SPEAKERS;
        if (K < lo) K = lo;
        if (K > hi) K = hi;
    }
    if (K > DIARIZE_MAX_SPEAKERS) K = DIARIZE_MAX_SPEAKERS;
    if (K > C) K = C;
    if (K < 1) K = 1;
    int *parent = xmalloc((size_t)C * sizeof *parent);
    for (int i = 0; i < C; i++) parent[i] = i;
    for (int i = 0; i < C - K && i < nh; i++) parent[hist[i].from] = hist[i].into;
    int *root_label = xmalloc((size_t)C * sizeof *root_label);
    for (int i = 0; i < C; i++) root_label[i] = -1;
    int nl = 0;
    for (int i = 0; i < C; i++) {
        int r = find(parent, i);
        if (root_label[r] < 0) root_label[r] = nl++;
        label[i] = root_label[r];
    }
    free(root_label);
    free(parent);
    free(hist);
    free(alive);
    free(nnd);
    free(nn);
    free(D);
    free(sv);
    return nl;
}

/* ---- step 5: Viterbi resegmentation over one region, with per-speaker GMMs */

static void viterbi(const float *x, int dim, size_t a, size_t b, const gmm *G, int K,
                    int *label, unsigned char *bp, double *cost, double *next)
{
    size_t L = b - a;
    for (int k = 0; k < K; k++) cost[k] = -gmm_loglik(&G[k], x + a * (size_t)dim, NULL);
    for (size_t t = 1; t < L; t++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (cost[k] < cost[best]) best = k;
        const float *f = x + (a + t) * (size_t)dim;
        for (int k = 0; k < K; k++) {
            double stay = cost[k], sw = cost[best] + SWITCH_PENALTY;
            int from = k;
            if (best != k && sw < stay) { stay = sw; from = best; }
            next[k] = stay - gmm_loglik(&G[k], f, NULL);
            bp[t * (size_t)K + (size_t)k] = (unsigned char)from;
        }
        memcpy(cost, next, (size_t)K * sizeof *cost);
    }
    int s = 0;
    for (int k = 1; k < K; k++)
        if (cost[k] < cost[s]) s = k;
    for (size_t t = L; t-- > 0;) {
        label[a + t] = s;
        if (t) s = bp[t * (size_t)K + (size_t)s];
    }
}

/* speaker models: the UBM adapted to each label's frames */
static void speaker_models(const gmm *ubm, const float *z, size_t n, const int *label, int K,
                           gmm *G)
{
    size_t m = (size_t)ubm->m, md = m * (size_t)ubm->dim;
    double *N = xcalloc((size_t)K * m, sizeof *N), *F = xcalloc((size_t)K * md, sizeof *F);
    for (size_t t = 0; t < n; t++)
        if (label[t] >= 0) gmm_accumulate(ubm, z, t, t + 1, N + (size_t)label[t] * m,
                                          F + (size_t)label[t] * md);
    for (int k = 0; k < K; k++) gmm_adapt(&G[k], ubm, N + (size_t)k * m, F + (size_t)k * md, RELEVANCE);
    free(F);
    free(N);
}

static int cmp_piece_len_desc(const void *pa, const void *pb)
{
    const piece *a = *(piece *const *)pa, *b = *(piece *const *)pb;
    size_t la = a->b - a->a, lb = b->b - b->a;
    if (la != lb) return la < lb ? 1 : -1;
    return a->a < b->a ? -1 : a->a > b->a;
}

int diarize_frames(const float *x, const float *energy_db, size_t n, int dim,
                   const diarize_opts *o, diarize_progress_fn progress, void *ud,
                   diarize_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (dim < 1 || dim > MAXD) {
        snprintf(err, errlen, "feature dimension %d out of range", dim);
        return DIARIZE_FAILED;
    }
    int rc = DIARIZE_OK;
    unsigned char *mask = xcalloc(n ? n : 1, 1);
    diarize_speech_mask(energy_db, n, mask);
    size_t nspeech = 0;
    for (size_t i = 0; i < n; i++) nspeech += mask[i];
    if (nspeech == 0) {
        free(mask);
        return DIARIZE_OK; /* no speech: no turns, no speakers */
    }
    /* normalise over the speech frames (a copy: x is the caller's) */
    float *z = xmalloc(n * (size_t)dim * sizeof *z);
    double mu[MAXD] = {0}, sd[MAXD] = {0};
    for (size_t t = 0; t < n; t++)
        if (mask[t])
            for (int d = 0; d < dim; d++) mu[d] += x[t * (size_t)dim + d];
    for (int d = 0; d < dim; d++) mu[d] /= (double)nspeech;
    for (size_t t = 0; t < n; t++)
        if (mask[t])
            for (int d = 0; d < dim; d++) {
                double v = x[t * (size_t)dim + d] - mu[d];
                sd[d] += v * v;
            }
    for (int d = 0; d < dim; d++) sd[d] = sqrt(sd[d] / (double)nspeech) + 1e-6;
    for (size_t t = 0; t < n; t++)
        for (int d = 0; d < dim; d++)
            z[t * (size_t)dim + d] = (float)((x[t * (size_t)dim + d] - mu[d]) / sd[d]);

    pieces ps = {0};
    make_pieces(z, mask, n, dim, &ps);
    gmm ubm;
    /* fewer components for little speech (about 2 s of it per component at least) */
    int ncomp = (int)(nspeech / UBM_FRAMES_PER_COMPONENT);
    ncomp = ncomp < 4 ? 4 : ncomp > UBM_COMPONENTS ? UBM_COMPONENTS : ncomp;
    gmm_train(&ubm, ncomp, z, n, dim, mask, UBM_FRAMES, UBM_ITERS); /* speech exists */
    if (progress && progress(ud, 0.8)) { rc = DIARIZE_STOPPED; goto out_ubm; }

    /* initial clusters: the pieces of at least LONG_PIECE (the MAX_CLUSTERS longest), or all
     * of them when fewer than two are that long */
    piece **order = xmalloc(ps.n * sizeof *order);
    for (size_t i = 0; i < ps.n; i++) order[i] = &ps.p[i];
    qsort(order, ps.n, sizeof *order, cmp_piece_len_desc);
    size_t nlong = 0;
    while (nlong < ps.n && order[nlong]->b - order[nlong]->a >= LONG_PIECE) nlong++;
    if (nlong < 2) nlong = ps.n;
    if (nlong > MAX_CLUSTERS) nlong = MAX_CLUSTERS;
    int C = (int)nlong;
    size_t m = (size_t)ubm.m, md = m * (size_t)dim;
    double *SN = xcalloc((size_t)C * m, sizeof *SN), *SF = xcalloc((size_t)C * md, sizeof *SF);
    for (int i = 0; i < C; i++) gmm_accumulate(&ubm, z, order[i]->a, order[i]->b, SN + i * m, SF + i * md);
    int *lab = xmalloc((size_t)C * sizeof *lab);
    int K = agglomerate(&ubm, SN, SF, C, o, lab);
    for (int i = 0; i < C; i++) order[i]->cluster = lab[i];
    free(lab);
    free(SF);
    free(SN);
    free(order);
    if (progress && progress(ud, 0.9)) { rc = DIARIZE_STOPPED; goto out_ubm; }

    /* speaker models; short pieces join the one that explains them best */
    int *label = xmalloc(n * sizeof *label);
    for (size_t t = 0; t < n; t++) label[t] = -1;
    for (size_t i = 0; i < ps.n; i++)
        if (ps.p[i].cluster >= 0)
            for (size_t t = ps.p[i].a; t < ps.p[i].b; t++) label[t] = ps.p[i].cluster;
    gmm *G = xcalloc((size_t)K, sizeof *G);
    for (int k = 0; k < K; k++) gmm_copy(&G[k], &ubm);
    speaker_models(&ubm, z, n, label, K, G);
    for (size_t i = 0; i < ps.n; i++) {
        piece *p = &ps.p[i];
        if (p->cluster < 0) {
            double best = -INFINITY;
            for (int k = 0; k < K; k++) {
                double s = 0;
                for (size_t t = p->a; t < p->b; t++) s += gmm_loglik(&G[k], z + t * (size_t)dim, NULL);
                if (s > best) { best = s; p->cluster = k; }
            }
        }
        for (size_t t = p->a; t < p->b; t++) label[t] = p->cluster;
    }
    /* resegmentation */
    if (K > 1) {
        size_t maxlen = 0;
        for (size_t i = 0; i < n;) {
            if (!mask[i]) { i++; continue; }
            size_t j = i;
            while (j < n && mask[j]) j++;
            if (j - i > maxlen) maxlen = j - i;
            i = j;
        }
        unsigned char *bp = xmalloc(maxlen * (size_t)K);
        double cost[DIARIZE_MAX_SPEAKERS], next[DIARIZE_MAX_SPEAKERS];
        for (int it = 0; it < RESEG_ITERS; it++) {
            speaker_models(&ubm, z, n, label, K, G);
            for (size_t i = 0; i < n;) {
                if (!mask[i]) { i++; continue; }
                size_t j = i;
                while (j < n && mask[j]) j++;
                viterbi(z, dim, i, j, G, K, label, bp, cost, next);
                i = j;
            }
        }
        free(bp);
    }
    for (int k = 0; k < K; k++) gmm_release(&G[k]);
    free(G);
    /* turns, speakers numbered by first appearance */
    int map[DIARIZE_MAX_SPEAKERS];
    for (int k = 0; k < DIARIZE_MAX_SPEAKERS; k++) map[k] = -1;
    int nspk = 0;
    size_t cap = 0;
    for (size_t i = 0; i < n;) {
        if (label[i] < 0) { i++; continue; }
        size_t j = i;
        while (j < n && label[j] == label[i]) j++;
        if (map[label[i]] < 0) map[label[i]] = nspk++;
        if (out->n_turns == cap) {
            cap = cap ? cap * 2 : 64;
            out->turns = xrealloc(out->turns, cap * sizeof *out->turns);
        }
        out->turns[out->n_turns++] = (diarize_turn){(double)i / 100.0, (double)j / 100.0,
                                                    map[label[i]]};
        i = j;
    }
    out->n_speakers = nspk;
    free(label);
    if (progress && progress(ud, 1.0)) {
        rc = DIARIZE_STOPPED;
        diarize_result_release(out);
    }
out_ubm:
    gmm_release(&ubm);
    free(ps.p);
    free(z);
    free(mask);
    return rc;
}

void diarize_result_release(diarize_result *r)
{
    if (!r) return;
    free(r->turns);
    memset(r, 0, sizeof *r);
}

int diarize_opts_check(const diarize_opts *o, char *err, size_t errlen)
{
    const struct { const char *name; int v; } f[] = {
        {"num_speakers", o->num_speakers}, {"min_speakers", o->min_speakers},
        {"max_speakers", o->max_speakers}};
    for (size_t i = 0; i < ARRAY_LEN(f); i++)
        if (f[i].v < 0 || f[i].v > DIARIZE_MAX_SPEAKERS) {
            snprintf(err, errlen, "%s must be an integer from 1 to %d", f[i].name,
                     DIARIZE_MAX_SPEAKERS);
            return -1;
        }
    if (o->min_speakers && o->max_speakers && o->min_speakers > o->max_speakers) {
        snprintf(err, errlen, "min_speakers (%d) is greater than max_speakers (%d)",
                 o->min_speakers, o->max_speakers);
        return -1;
    }
    if (o->num_speakers && ((o->min_speakers && o->num_speakers < o->min_speakers) ||
                            (o->max_speakers && o->num_speakers > o->max_speakers))) {
        snprintf(err, errlen, "num_speakers (%d) is outside min_speakers..max_speakers",
                 o->num_speakers);
        return -1;
    }
    return 0;
}
