/* audio/opus_dec: Ogg Opus to a 16 kHz mono WAV (libopusfile, 48 kHz, decimated by 3 through
 * our own low-pass FIR). See opus.h. */
#define _GNU_SOURCE
#include "audio/opus.h"

#include "audio/audio.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <opusfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IN_RATE 48000              /* opusfile always decodes at 48 kHz */
#define FACTOR (IN_RATE / AUDIO_RATE)
#define HALF 120                   /* taps = 2 * HALF + 1; HALF % FACTOR == 0 keeps the delay whole */
#define TAPS (2 * HALF + 1)
_Static_assert(HALF % FACTOR == 0 && HALF % 8 == 0, "HALF: a multiple of 3 and of 8");
#define CUTOFF_HZ 7500.0           /* -6 dB point; passband to ~7 kHz, stopband from ~8 kHz */
#define KAISER_BETA 7.857          /* 0.1102 * (80 - 8.7): ~80 dB stopband */
#define READ_FLOATS (5760 * 8)     /* 120 ms of up to 8 channels per op_read_float */
#define OUT_BLOCK 8192             /* samples per write(2) */

int audio_is_ogg_opus(const unsigned char *head, size_t n)
{
    /* Ogg page header: "OggS", version 0, header type (0x02: beginning of stream), granule,
     * serial, sequence, CRC, segment count at 26, the segment table, then the first packet */
    if (!head || n < 27 || memcmp(head, "OggS", 4) != 0 || head[4] != 0 || !(head[5] & 0x02))
        return 0;
    size_t body = 27 + (size_t)head[26];
    return n >= body + 8 && memcmp(head + body, "OpusHead", 8) == 0;
}

/* ---- the decimating low-pass ---------------------------------------------------------------- */

static double bessel_i0(double x)
{
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 64 && term > 1e-12 * sum; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
    }
    return sum;
}

/* Kaiser-windowed sinc, unit DC gain */
static void fir_design(float h[TAPS])
{
    double fc = CUTOFF_HZ / IN_RATE, tmp[TAPS], sum = 0, i0b = bessel_i0(KAISER_BETA);
    for (int k = 0; k < TAPS; k++) {
        double t = k - HALF, r = t / HALF;
        double sinc = t == 0 ? 2 * fc : sin(2 * M_PI * fc * t) / (M_PI * t);
        tmp[k] = sinc * bessel_i0(KAISER_BETA * sqrt(1 - r * r)) / i0b;
        sum += tmp[k];
    }
    for (int k = 0; k < TAPS; k++) h[k] = (float)(tmp[k] / sum);
}

/* Streaming decimator. Input sample i (absolute, from 0) is x[i - base]; output sample m is
 * centred on input 3m, so the FIR's delay (HALF) is compensated and nothing shifts. Input
 * before 0 and after the end reads as zeros. */
typedef struct decim {
    float h[TAPS];
    float *x;
    size_t len, cap;     /* valid samples in x, allocated */
    int64_t base;        /* absolute index of x[0] */
    int64_t nin;         /* absolute count of input samples pushed */
    int64_t m;           /* next output sample */
} decim;

static void decim_init(decim *d)
{
    memset(d, 0, sizeof *d);
    fir_design(d->h);
    d->cap = HALF + READ_FLOATS + TAPS;
    d->x = xcalloc(d->cap, sizeof *d->x);
    d->len = HALF; /* the zeros before sample 0 */
    d->base = -HALF;
}

static void decim_free(decim *d) { free(d->x); }

/* Append n samples and emit every output they complete into out (room for
 * n / FACTOR + 1 + HALF / FACTOR); returns how many. */
static size_t decim_push(decim *d, const float *in, size_t n, int16_t *out)
{
    if (d->len + n > d->cap) {
        d->cap = d->len + n;
        d->x = xrealloc(d->x, d->cap * sizeof *d->x);
    }
    if (in) memcpy(d->x + d->len, in, n * sizeof *in);
    else memset(d->x + d->len, 0, n * sizeof *d->x);
    d->len += n;
    d->nin += (int64_t)n;
    size_t k = 0;
    while (FACTOR * d->m + HALF < d->nin) {
        const float *xs = d->x + (FACTOR * d->m - HALF - d->base);
        /* symmetric taps: h[t] == h[TAPS-1-t]; eight partial sums the compiler can keep in
         * one vector register */
        float acc[8] = {0};
        for (int t = 0; t < HALF; t += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += d->h[t + l] * (xs[t + l] + xs[TAPS - 1 - t - l]);
        double v = (double)d->h[HALF] * xs[HALF];
        for (int l = 0; l < 8; l++) v += acc[l];
        v *= 32768.0;
        out[k++] = (int16_t)(v >= 32767 ? 32767 : v <= -32768 ? -32768 : lrint(v));
        d->m++;
    }
    /* keep from the first input the next output needs */
    size_t drop = (size_t)(FACTOR * d->m - HALF - d->base);
    if (drop > d->len) drop = d->len;
    memmove(d->x, d->x + drop, (d->len - drop) * sizeof *d->x);
    d->len -= drop;
    d->base += (int64_t)drop;
    return k;
}

/* ---- decoding -------------------------------------------------------------------------------- */

static void put_le16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void wav_header(unsigned char h[44], uint32_t data_bytes)
{
    memcpy(h, "RIFF", 4);
    put_le32(h + 4, 36 + data_bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le32(h + 16, 16);
    put_le16(h + 20, 1);            /* PCM */
    put_le16(h + 22, 1);            /* mono */
    put_le32(h + 24, AUDIO_RATE);
    put_le32(h + 28, AUDIO_RATE * 2);
    put_le16(h + 32, 2);
    put_le16(h + 34, 16);
    memcpy(h + 36, "data", 4);
    put_le32(h + 40, data_bytes);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static void op_error(int e, char *err, size_t errlen)
{
    switch (e) {
    case OP_ENOTFORMAT: case OP_ENOTAUDIO:
        snprintf(err, errlen, "not an Ogg Opus stream"); break;
    case OP_HOLE:
        snprintf(err, errlen, "corrupt Opus data: pages are missing or damaged"); break;
    case OP_EBADPACKET:
        snprintf(err, errlen, "corrupt Opus data: a packet cannot be decoded"); break;
    case OP_EBADHEADER:
        snprintf(err, errlen, "corrupt Opus data: bad header"); break;
    case OP_EVERSION:
        snprintf(err, errlen, "corrupt Opus data: unsupported version"); break;
    case OP_EBADTIMESTAMP:
        snprintf(err, errlen, "corrupt Opus data: bad timestamps"); break;
    case OP_EBADLINK:
        snprintf(err, errlen, "corrupt Opus data: a damaged link"); break;
    case OP_EREAD:
        snprintf(err, errlen, "read error: %s", errno ? strerror(errno) : "I/O error"); break;
    case OP_EFAULT:
        snprintf(err, errlen, "out of memory"); break;
    default:
        snprintf(err, errlen, "corrupt Opus data (opusfile error %d)", e); break;
    }
}

int audio_opus_decode_to_wav(const char *opus_path, const char *wav_path, double max_duration_s,
                             size_t *nsamples_out, char *err, size_t errlen)
{
    return audio_opus_decode_to_wav_cancel(opus_path, wav_path, max_duration_s, NULL,
                                           nsamples_out, err, errlen);
}

int audio_opus_decode_to_wav_cancel(const char *opus_path, const char *wav_path,
                                    double max_duration_s, const atomic_int *cancel,
                                    size_t *nsamples_out, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = '\0';
    if (nsamples_out) *nsamples_out = 0;
    double limit = max_duration_s > 0 ? max_duration_s : AUDIO_HARD_LIMIT_S;
    /* the 4 GiB RIFF limit is a limit too (~37 h) */
    if (limit > (double)((UINT32_MAX - 36) / 2) / AUDIO_RATE - 1)
        limit = (double)((UINT32_MAX - 36) / 2) / AUDIO_RATE - 1;

    int fd = open(opus_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) snprintf(err, errlen, "file not found");
        else snprintf(err, errlen, "cannot open file: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    unsigned char head[64];
    ssize_t hn;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fstat(fd, &sb) != 0) snprintf(err, errlen, "read error: %s", strerror(errno));
        else snprintf(err, errlen, "not a regular file");
        close(fd);
        return -1;
    }
    do hn = pread(fd, head, sizeof head, 0); while (hn < 0 && errno == EINTR);
    if (hn < 0) {
        snprintf(err, errlen, "read error: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!audio_is_ogg_opus(head, (size_t)hn)) {
        snprintf(err, errlen, "not an Ogg Opus stream");
        close(fd);
        return -1;
    }
    OpusFileCallbacks cb;
    void *src = op_fdopen(&cb, fd, "rb"); /* the FILE owns fd from here */
    if (!src) {
        snprintf(err, errlen, "cannot open file: %s", strerror(errno));
        close(fd);
        return -1;
    }
    int oe = 0;
    OggOpusFile *of = op_open_callbacks(src, &cb, NULL, 0, &oe);
    if (!of) {
        op_error(oe, err, errlen);
        cb.close(src);
        return -1;
    }
    ogg_int64_t total = op_seekable(of) ? op_pcm_total(of, -1) : -1;
    if (total >= 0 && (double)total / IN_RATE > limit + 0.5) {
        snprintf(err, errlen, "duration %.0f s exceeds the limit of %.0f s",
                 (double)total / IN_RATE, limit);
        op_free(of);
        return -1;
    }

    char *tmp = NULL;
    int out = tmpfile_beside(wav_path, 0600, &tmp);
    if (out < 0) {
        snprintf(err, errlen, "cannot write %s: %s", wav_path, strerror(errno));
        op_free(of);
        return -1;
    }
    decim d;
    decim_init(&d);
    float *pcm = xmalloc(READ_FLOATS * sizeof *pcm), *mono = xmalloc(READ_FLOATS * sizeof *mono);
    size_t out_cap = READ_FLOATS / FACTOR + 2 + HALF / FACTOR + 1;
    int16_t *o16 = xmalloc(out_cap * sizeof *o16);
    unsigned char *ob = xmalloc(out_cap * 2);
    size_t written = 0;
    int rc = -1, eof = 0;
    int64_t limit48 = (int64_t)((limit + 0.5) * IN_RATE), next_poll = IN_RATE;
    unsigned char h[44] = {0};
    if (write_all(out, h, sizeof h) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", wav_path, strerror(errno));
        goto out;
    }
    while (!eof) {
        size_t n = 0;
        if (cancel && d.nin >= next_poll) {
            next_poll += IN_RATE;
            if (atomic_load(cancel)) {
                snprintf(err, errlen, "cancelled");
                goto out;
            }
        }
        int li = -1;
        errno = 0;
        int got = op_read_float(of, pcm, READ_FLOATS, &li);
        if (got < 0) {
            op_error(got, err, errlen);
            goto out;
        }
        if (got == 0) {
            eof = 1;
            if (d.nin == 0) {
                snprintf(err, errlen, "the Opus stream holds no audio");
                goto out;
            }
            /* a seekable stream ends at its last valid page: anything after it is damage */
            opus_int64 pos = op_raw_tell(of);
            if (pos >= 0 && pos < (opus_int64)sb.st_size) {
                snprintf(err, errlen, "corrupt Opus data: the stream ends at byte %lld of %lld",
                         (long long)pos, (long long)sb.st_size);
                goto out;
            }
            n = decim_push(&d, NULL, HALF, o16); /* the zeros after the end */
        } else {
            int ch = op_channel_count(of, li);
            if (ch < 1) ch = 1;
            for (int i = 0; i < got; i++) {
                float s = 0;
                for (int c = 0; c < ch; c++) s += pcm[(size_t)i * (size_t)ch + (size_t)c];
                mono[i] = s / (float)ch;
            }
            if (d.nin + got > limit48) {
                snprintf(err, errlen, "audio is longer than the limit of %.0f s", limit);
                goto out;
            }
            n = decim_push(&d, mono, (size_t)got, o16);
        }
        for (size_t i = 0; i < n; i++) put_le16(ob + 2 * i, (uint16_t)o16[i]);
        if (n && write_all(out, ob, n * 2) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", wav_path, strerror(errno));
            goto out;
        }
        written += n;
    }
    wav_header(h, (uint32_t)(written * 2));
    if (pwrite(out, h, sizeof h, 0) != (ssize_t)sizeof h) {
        snprintf(err, errlen, "cannot write %s: %s", wav_path, strerror(errno ? errno : EIO));
        goto out;
    }
    rc = 0;
out:
    op_free(of);
    decim_free(&d);
    free(pcm);
    free(mono);
    free(o16);
    free(ob);
    if (close(out) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write %s: %s", wav_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, wav_path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", wav_path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp);
    else if (nsamples_out) *nsamples_out = written;
    free(tmp);
    return rc;
}
