/* audio/peaks.c: min/max outlines of 16-bit mono audio (see peaks.h). */
#include "audio/peaks.h"

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

static unsigned le32(const unsigned char *b) { return b[0] | b[1] << 8 | b[2] << 16 | (unsigned)b[3] << 24; }
static unsigned le16(const unsigned char *b) { return b[0] | b[1] << 8; }

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (int)got;
}

int audio_peaks_file(const char *path, size_t n, audio_peaks *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n == 0) {
        snprintf(err, errlen, "no peaks asked for");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, errno == ENOENT ? "file not found" : "cannot open file: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    unsigned char h[12];
    int rate = 0, fmt_ok = 0;
    off_t pos = 12;
    size_t data_len = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || read_full(fd, h, 12) != 12 ||
        memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4))
        goto bad;
    for (;;) { /* chunks until "data" */
        unsigned char c[8];
        if (read_full(fd, c, 8) != 8) goto bad;
        unsigned len = le32(c + 4);
        pos += 8;
        if (!memcmp(c, "data", 4)) {
            off_t left = st.st_size - pos;
            data_len = (len == 0 || len == 0xffffffffu || (off_t)len > left) ? (size_t)left : len;
            break;
        }
        if (!memcmp(c, "fmt ", 4)) {
            unsigned char f[16];
            if (len < 16 || read_full(fd, f, 16) != 16) goto bad;
            fmt_ok = le16(f) == 1 && le16(f + 2) == 1 && le16(f + 14) == 16;
            rate = (int)le32(f + 4);
            len -= 16;
            pos += 16;
        }
        off_t skip = (off_t)len + (len & 1);
        if (lseek(fd, pos + skip, SEEK_SET) < 0) goto bad;
        pos += skip;
    }
    if (!fmt_ok || rate <= 0) goto bad;
    size_t total = data_len / 2;
    acc a;
    acc_init(&a, out, total, n, rate);
    enum { BLOCK = 32768 };
    int16_t *blk = xmalloc(BLOCK * sizeof *blk);
    size_t seen = 0;
    while (seen < total) {
        size_t want = total - seen < BLOCK ? total - seen : BLOCK;
        int got = read_full(fd, blk, want * 2);
        if (got < 0) {
            snprintf(err, errlen, "read error: %s", strerror(errno));
            free(blk);
            close(fd);
            audio_peaks_release(out);
            return -1;
        }
        size_t k = (size_t)got / 2;
        if (k == 0) break;
        for (size_t i = 0; i < k; i++) /* little-endian on disk */
            blk[i] = (int16_t)le16((const unsigned char *)&blk[i]);
        acc_add(&a, blk, k);
        seen += k;
    }
    free(blk);
    close(fd);
    out->nsamples = seen;
    if (seen < total) /* shorter than its header said: the slices reached (the rest stay 0) */
        out->n = seen ? (size_t)((unsigned long long)(seen - 1) * out->n / total) + 1 : 0;
    return 0;
bad:
    close(fd);
    snprintf(err, errlen, "not a 16-bit mono PCM WAV file");
    return -1;
}
