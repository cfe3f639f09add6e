#include "audio/wavfile.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned le16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static unsigned le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }

static int pread_full(int fd, void *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int)got;
}

int wav_open(wav_file *w, const char *path, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, errno == ENOENT ? "file not found" : "cannot open file: %s",
                 strerror(errno));
        return -1;
    }
    struct stat st;
    unsigned char h[12];
    int fmt_ok = 0;
    off_t pos = 12;
    if (fstat(w->fd, &st) != 0 || !S_ISREG(st.st_mode) || pread_full(w->fd, h, 12, 0) != 12 ||
        memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4))
        goto bad;
    for (int guard = 0; guard < 64; guard++) { /* chunks until "data" */
        unsigned char c[8];
        if (pread_full(w->fd, c, 8, pos) != 8) goto bad;
        unsigned len = le32(c + 4);
        pos += 8;
        if (!memcmp(c, "data", 4)) {
            off_t left = st.st_size - pos;
            size_t bytes = (len == 0 || len == 0xffffffffu || (off_t)len > left) ? (size_t)left : len;
            if (!fmt_ok || w->rate <= 0) goto bad;
            w->data_off = pos;
            w->nsamples = bytes / 2;
            return 0;
        }
        if (!memcmp(c, "fmt ", 4)) {
            unsigned char f[16];
            if (len < 16 || pread_full(w->fd, f, 16, pos) != 16) goto bad;
            fmt_ok = le16(f) == 1 && le16(f + 2) == 1 && le16(f + 14) == 16;
            w->rate = (int)le32(f + 4);
        }
        pos += (off_t)len + (len & 1);
    }
bad:
    close(w->fd);
    w->fd = -1;
    snprintf(err, errlen, "not a 16-bit mono PCM WAV file");
    return -1;
}

long wav_read(wav_file *w, size_t start, size_t n, int16_t *buf)
{
    if (start >= w->nsamples) return 0;
    if (n > w->nsamples - start) n = w->nsamples - start;
    int got = pread_full(w->fd, buf, n * 2, w->data_off + (off_t)start * 2);
    if (got < 0) return -1;
    size_t k = (size_t)got / 2;
    for (size_t i = 0; i < k; i++) /* little-endian on disk */
        buf[i] = (int16_t)le16((const unsigned char *)&buf[i]);
    return (long)k;
}

void wav_close(wav_file *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
}

int wav_read_range(const char *path, size_t start, size_t n, audio_pcm *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    wav_file w;
    if (wav_open(&w, path, err, errlen) != 0) return -1;
    if (start > w.nsamples) start = w.nsamples;
    if (n > w.nsamples - start) n = w.nsamples - start;
    out->samples = malloc((n ? n : 1) * sizeof *out->samples);
    if (!out->samples) {
        wav_close(&w);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    long got = wav_read(&w, start, n, out->samples);
    int e = errno;
    wav_close(&w);
    if (got < 0) {
        audio_pcm_release(out);
        snprintf(err, errlen, "read error: %s", strerror(e));
        return -1;
    }
    out->nsamples = (size_t)got;
    out->rate = w.rate;
    return 0;
}
