/* audio/peaks.c: min/max outlines of 16-bit mono audio (see peaks.h). */
#include "audio/peaks.h"
#include "audio/wavfile.h"

#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the accumulator: pairs filled as samples stream by */
typedef struct acc {
    audio_peaks *p;
    size_t total, seen, cur;
    int has;
} acc;

static void acc_init(acc *a, audio_peaks *p, size_t total, size_t n, int rate)
{
    memset(p, 0, sizeof *p);
    p->n = total < n ? total : n;
    p->rate = rate;
    p->min = xcalloc(p->n ? p->n : 1, sizeof *p->min);
    p->max = xcalloc(p->n ? p->n : 1, sizeof *p->max);
    *a = (acc){.p = p, .total = total};
}

static void acc_add(acc *a, const int16_t *s, size_t k)
{
    audio_peaks *p = a->p;
    for (size_t i = 0; i < k && a->seen < a->total; i++, a->seen++) {
        /* slice of sample `seen`: floor(seen * n / total) (64-bit: 24 h * 16 kHz * 4000 fits) */
        size_t b = (size_t)((unsigned long long)a->seen * p->n / a->total);
        if (b != a->cur || !a->has) {
            a->cur = b;
            a->has = 1;
            p->min[b] = p->max[b] = s[i];
            continue;
        }
        if (s[i] < p->min[b]) p->min[b] = s[i];
        if (s[i] > p->max[b]) p->max[b] = s[i];
    }
}

int audio_peaks_compute(const int16_t *samples, size_t ns, size_t n, audio_peaks *out)
{
    if (n == 0) return -1;
    acc a;
    acc_init(&a, out, ns, n, 16000);
    acc_add(&a, samples, ns);
    out->nsamples = ns;
    return 0;
}

void audio_peaks_release(audio_peaks *p)
{
    if (!p) return;
    free(p->min);
    free(p->max);
    memset(p, 0, sizeof *p);
}



int audio_peaks_file(const char *path, size_t n, audio_peaks *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n == 0) {
        snprintf(err, errlen, "no peaks asked for");
        return -1;
    }
    wav_file w;
    if (wav_open(&w, path, err, errlen) != 0) return -1;
    size_t total = w.nsamples;
    acc a;
    acc_init(&a, out, total, n, w.rate);
    enum { BLOCK = 32768 };
    int16_t *blk = xmalloc(BLOCK * sizeof *blk);
    size_t seen = 0;
    while (seen < total) {
        long k = wav_read(&w, seen, BLOCK, blk);
        if (k < 0) {
            snprintf(err, errlen, "read error: %s", strerror(errno));
            free(blk);
            wav_close(&w);
            audio_peaks_release(out);
            return -1;
        }
        if (k == 0) break;
        acc_add(&a, blk, (size_t)k);
        seen += (size_t)k;
    }
    free(blk);
    wav_close(&w);
    out->nsamples = seen;
    if (seen < total) /* shorter than its header said: the slices reached (the rest stay 0) */
        out->n = seen ? (size_t)((unsigned long long)(seen - 1) * out->n / total) + 1 : 0;
    return 0;
}
