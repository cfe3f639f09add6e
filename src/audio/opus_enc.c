/* audio/opus_enc: a sample range of a 16 kHz mono WAV to Ogg Opus (libopusenc). See opus.h. */
#define _GNU_SOURCE
#include "audio/opus.h"

#include "audio/audio.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <opusenc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW AUDIO_RATE          /* samples read and encoded per step (1 s) */
#define HEADER_SCAN 65536          /* the chunks before "data" must fit in this */
/* bench/opus_wer.sh builds its round trip with each of OPUS_APPLICATION_AUDIO / _VOIP */
#ifndef GS_OPUS_APPLICATION
#define GS_OPUS_APPLICATION OPUS_APPLICATION_AUDIO
#endif

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static unsigned le16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

/* The data chunk of a 16 kHz mono s16 WAV: byte offset and sample count. */
static int wav_data(int fd, size_t fsize, size_t *off_out, size_t *n_out, char *err,
                    size_t errlen)
{
    size_t want = fsize < HEADER_SCAN ? fsize : HEADER_SCAN;
    unsigned char *h = xmalloc(want ? want : 1);
    ssize_t got;
    do got = pread(fd, h, want, 0); while (got < 0 && errno == EINTR);
    int rc = -1, fmt_ok = 0;
    if (got < 0) {
        snprintf(err, errlen, "read error: %s", strerror(errno));
        goto out;
    }
    if (got < 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "WAVE", 4) != 0) {
        snprintf(err, errlen, "not a WAV file");
        goto out;
    }
    size_t len = (size_t)got, off = 12;
    while (off + 8 <= len) {
        uint32_t sz = le32(h + off + 4);
        const unsigned char *b = h + off + 8;
        if (memcmp(h + off, "fmt ", 4) == 0) {
            if (sz < 16 || off + 8 + 16 > len) break;
            unsigned fmt = le16(b), ch = le16(b + 2), bits = le16(b + 14);
            uint32_t rate = le32(b + 4);
            if (fmt == 0xFFFE && sz >= 40 && off + 8 + 26 <= len) fmt = le16(b + 24);
            if (fmt != 1 || ch != 1 || rate != AUDIO_RATE || bits != 16) {
                snprintf(err, errlen, "unsupported WAV format (format %u, %u channels, %u Hz, "
                         "%u bits): expected 16 kHz mono 16-bit PCM", fmt, ch, (unsigned)rate,
                         bits);
                goto out;
            }
            fmt_ok = 1;
        } else if (memcmp(h + off, "data", 4) == 0 && fmt_ok) {
            size_t avail = fsize - (off + 8);
            /* streamed writers leave 0 or 0xFFFFFFFF: take the rest of the file */
            size_t n = (sz == 0 || sz == 0xFFFFFFFFu || sz > avail) ? avail : sz;
            *off_out = off + 8;
            *n_out = n / 2;
            rc = 0;
            goto out;
        }
        off += 8 + (size_t)sz + (sz & 1);
    }
    snprintf(err, errlen, fmt_ok ? "WAV file has no data chunk" : "unsupported WAV format "
             "(no usable fmt chunk): expected 16 kHz mono 16-bit PCM");
out:
    free(h);
    return rc;
}

struct sink {
    int fd;
    int err; /* errno of the first failed write */
};

static int sink_write(void *ud, const unsigned char *p, opus_int32 len)
{
    struct sink *s = ud;
    size_t done = 0;
    while (!s->err && done < (size_t)len) {
        ssize_t k = write(s->fd, p + done, (size_t)len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) s->err = k < 0 ? errno : EIO;
        else done += (size_t)k;
    }
    return s->err ? 1 : 0;
}

static int sink_close(void *ud)
{
    (void)ud; /* the fd is ours: closed (and checked) after the encoder is gone */
    return 0;
}

int audio_opus_encode_wav_range(const char *wav_path, size_t start_sample, size_t nsamples,
                                const char *out_path, int bitrate_bps, const atomic_int *cancel,
                                char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    err[0] = '\0';
    if (bitrate_bps < 6000 || bitrate_bps > 256000) {
        snprintf(err, errlen, "invalid bitrate %d (6000-256000 bit/s)", bitrate_bps);
        return -1;
    }
    int in = open(wav_path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT) snprintf(err, errlen, "file not found");
        else snprintf(err, errlen, "cannot open file: %s", strerror(errno));
        return -1;
    }
    struct stat sb;
    size_t data_off = 0, total = 0;
    if (fstat(in, &sb) != 0) {
        snprintf(err, errlen, "cannot open file: %s", strerror(errno));
        close(in);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(in);
        return -1;
    }
    if (wav_data(in, (size_t)sb.st_size, &data_off, &total, err, errlen) != 0) {
        close(in);
        return -1;
    }
    if (nsamples == 0 || start_sample > total || nsamples > total - start_sample) {
        snprintf(err, errlen, "sample range [%zu, %zu) is outside the audio (%zu samples)",
                 start_sample, start_sample + nsamples, total);
        close(in);
        return -1;
    }

    char *tmp = NULL;
    struct sink s = {.fd = tmpfile_beside(out_path, 0600, &tmp)};
    if (s.fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", out_path, strerror(errno));
        close(in);
        return -1;
    }
    int rc = -1, oe = OPE_OK;
    OggOpusComments *com = ope_comments_create();
    OggOpusEnc *enc = NULL;
    unsigned char *raw = xmalloc((size_t)WINDOW * 2);
    opus_int16 *pcm = xmalloc((size_t)WINDOW * sizeof *pcm);
    if (!com) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ope_comments_add(com, "ENCODER", "gpuscribe");
    OpusEncCallbacks cb = {sink_write, sink_close};
    enc = ope_encoder_create_callbacks(&cb, &s, com, AUDIO_RATE, 1, 0, &oe);
    if (!enc) {
        snprintf(err, errlen, "opus encoder: %s", ope_strerror(oe));
        goto out;
    }
    if ((oe = ope_encoder_ctl(enc, OPUS_SET_APPLICATION(GS_OPUS_APPLICATION))) != OPE_OK ||
        (oe = ope_encoder_ctl(enc, OPUS_SET_BITRATE(bitrate_bps))) != OPE_OK ||
        (oe = ope_encoder_ctl(enc, OPUS_SET_VBR(1))) != OPE_OK ||
        (oe = ope_encoder_ctl(enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE))) != OPE_OK ||
        (oe = ope_encoder_ctl(enc, OPUS_SET_COMPLEXITY(AUDIO_OPUS_COMPLEXITY))) != OPE_OK) {
        snprintf(err, errlen, "opus encoder: %s", ope_strerror(oe));
        goto out;
    }
    for (size_t done = 0; done < nsamples;) {
        if (cancel && atomic_load(cancel)) {
            snprintf(err, errlen, "cancelled");
            goto out;
        }
        size_t k = nsamples - done < WINDOW ? nsamples - done : WINDOW, got = 0;
        off_t pos = (off_t)(data_off + (start_sample + done) * 2);
        while (got < k * 2) {
            ssize_t r = pread(in, raw + got, k * 2 - got, pos + (off_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                snprintf(err, errlen, "read error: %s", r < 0 ? strerror(errno)
                                                             : "the file is shorter than its header says");
                goto out;
            }
            got += (size_t)r;
        }
        for (size_t i = 0; i < k; i++) pcm[i] = (opus_int16)(uint16_t)le16(raw + 2 * i);
        if ((oe = ope_encoder_write(enc, pcm, (int)k)) != OPE_OK) {
            if (s.err) snprintf(err, errlen, "cannot write %s: %s", out_path, strerror(s.err));
            else snprintf(err, errlen, "opus encoder: %s", ope_strerror(oe));
            goto out;
        }
        done += k;
    }
    if ((oe = ope_encoder_drain(enc)) != OPE_OK || s.err) {
        if (s.err) snprintf(err, errlen, "cannot write %s: %s", out_path, strerror(s.err));
        else snprintf(err, errlen, "opus encoder: %s", ope_strerror(oe));
        goto out;
    }
    rc = 0;
out:
    if (enc) ope_encoder_destroy(enc);
    if (com) ope_comments_destroy(com);
    free(raw);
    free(pcm);
    close(in);
    if (close(s.fd) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write %s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, out_path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}
