/* audio/cuts.c: chunk boundaries at pauses (see cuts.h). */
#include "audio/cuts.h"
#include "audio/wavfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t audio_quietest(const int16_t *s, size_t n, size_t target)
{
    size_t nf = n / CUTS_FRAME;
    if (nf == 0) return 0;
    double *e = malloc(nf * sizeof *e);
    if (!e) return target / CUTS_FRAME * CUTS_FRAME < n ? target / CUTS_FRAME * CUTS_FRAME : 0;
    for (size_t f = 0; f < nf; f++) {
        double acc = 0;
        for (size_t i = f * CUTS_FRAME; i < (f + 1) * CUTS_FRAME; i++) acc += (double)s[i] * s[i];
        e[f] = acc / CUTS_FRAME;
    }
    size_t tf = target / CUTS_FRAME;
    size_t w = nf < CUTS_STRETCH ? nf : CUTS_STRETCH;
    /* the quietest stretch of w frames (sliding sum), ties to the one nearest the target */
    double sum = 0;
    for (size_t f = 0; f < w; f++) sum += e[f];
    double best = sum;
    size_t best_at = 0;
    for (size_t f = 1; f + w <= nf; f++) {
        sum += e[f + w - 1] - e[f - 1];
        size_t mid = f + w / 2, bmid = best_at + w / 2;
        size_t d = mid > tf ? mid - tf : tf - mid, bd = bmid > tf ? bmid - tf : tf - bmid;
        /* relative tolerance: float sums drift; equal energies count as ties */
        if (sum < best * (1 - 1e-9) - 1e-6 || (sum <= best * (1 + 1e-9) + 1e-6 && d < bd)) {
            best = sum;
            best_at = f;
        }
    }
    /* the quietest frame inside it, ties to the target */
    size_t cut = best_at;
    for (size_t f = best_at; f < best_at + w; f++) {
        size_t d = f > tf ? f - tf : tf - f, cd = cut > tf ? cut - tf : tf - cut;
        if (e[f] < e[cut] || (e[f] == e[cut] && d < cd)) cut = f;
    }
    free(e);
    return cut * CUTS_FRAME;
}

int audio_find_cuts(const char *wav_path, double chunk_s, double search_s, size_t **bounds,
                    size_t *nbounds, const atomic_int *cancel, char *err, size_t errlen)
{
    *bounds = NULL;
    *nbounds = 0;
    wav_file w;
    if (wav_open(&w, wav_path, err, errlen) != 0) return -1;
    const size_t rate = (size_t)w.rate;
    const size_t total = w.nsamples;
    const size_t chunk = (size_t)(chunk_s * (double)rate);
    const size_t search = (size_t)(search_s * (double)rate);
    const size_t tail = 5 * rate;
    size_t cap = 8, n = 0;
    size_t *b = malloc(cap * sizeof *b);
    int16_t *win = NULL;
    if (!b || chunk == 0) goto oom;
    b[n++] = 0;
    size_t pos = 0;
    while (total - pos > chunk) {
        if (cancel && atomic_load(cancel)) {
            snprintf(err, errlen, "cancelled");
            goto fail;
        }
        size_t target = pos + chunk;
        size_t lo = target > search ? target - search : 0;
        if (lo < pos + chunk / 2) lo = pos + chunk / 2;
        size_t hi = target + search;
        if (hi + tail > total) hi = total > tail ? total - tail : 0;
        size_t cut;
        if (hi <= lo + CUTS_FRAME) {
            if (target + tail > total) break; /* too little left to be worth a chunk */
            cut = target;
        } else {
            free(win);
            win = malloc((hi - lo) * sizeof *win);
            if (!win) goto oom;
            long got = wav_read(&w, lo, hi - lo, win);
            if (got < 0) {
                snprintf(err, errlen, "read error: %s", strerror(errno));
                goto fail;
            }
            cut = lo + audio_quietest(win, (size_t)got, target - lo);
        }
        if (cut <= pos) cut = target;
        if (n + 2 > cap) {
            size_t *nb = realloc(b, (cap *= 2) * sizeof *b);
            if (!nb) goto oom;
            b = nb;
        }
        b[n++] = cut;
        pos = cut;
    }
    if (n + 1 > cap) {
        size_t *nb = realloc(b, (cap + 1) * sizeof *b);
        if (!nb) goto oom;
        b = nb;
    }
    if (total > 0 || n == 1) b[n++] = total;
    free(win);
    wav_close(&w);
    *bounds = b;
    *nbounds = n;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(win);
    free(b);
    wav_close(&w);
    return -1;
}
