/* audio/admit: what an upload must pass before it is decoded. Contract in admit.h. */
#include "audio/admit.h"

#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* Why AUDIO_ADMIT_MIN_BYTES_PER_S is 100 bytes per second (0.8 kbit/s): the most compact
 * speech codecs FFmpeg decodes from the containers audio.c accepts stay well above it:
 * Speex narrowband's lowest mode is 2.15 kbit/s (269 B/s), AMR-NB 4.75 kbit/s (594 B/s),
 * Opus 6 kbit/s (750 B/s), MP3 8 kbit/s (1000 B/s), and container overhead only adds to
 * that. Codec2 (down to 0.7 kbit/s) comes in its own container, which audio.c refuses.
 * Discontinuous transmission (Opus/AMR DTX) shrinks silent stretches further, but a file
 * that averages under 100 B/s over more than AUDIO_ADMIT_PLAUSIBLE_S is silence, not speech
 * to transcribe. What does go that low: a FLAC of digital silence (a few bytes per second:
 * 24 h in ~300 KB, decoding to a 2.75 GB WAV) and headers that lie about the length. */

#define SLACK_S 0.5   /* codec priming/padding past the limit, as audio.c allows */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "%.1f" without a trailing ".0" */
static void fmt1(char *out, size_t n, double v, const char *unit)
{
    snprintf(out, n, "%.1f", v);
    size_t l = strlen(out);
    if (l > 2 && strcmp(out + l - 2, ".0") == 0) out[l - 2] = '\0';
    l = strlen(out);
    snprintf(out + l, n - l, " %s", unit);
}

/* a length for people: "36 s", "20.5 min", "24 h" */
static void fmt_len(char *out, size_t n, double s)
{
    if (s >= 3600) fmt1(out, n, s / 3600, "h");
    else if (s >= 60) fmt1(out, n, s / 60, "min");
    else fmt1(out, n, s, "s");
}

/* a size for people: "315 KB", "43.2 MB", "1.4 GB" (1024-based) */
static void fmt_size(char *out, size_t n, long long b)
{
    double v = (double)b;
    if (b < 0) v = 0;
    if (v >= 1024.0 * 1024 * 1024) fmt1(out, n, v / (1024.0 * 1024 * 1024), "GB");
    else if (v >= 10.0 * 1024 * 1024) snprintf(out, n, "%.0f MB", v / (1024.0 * 1024));
    else if (v >= 1024.0 * 1024) fmt1(out, n, v / (1024.0 * 1024), "MB");
    else if (v >= 1024) snprintf(out, n, "%.0f KB", v / 1024);
    else snprintf(out, n, "%lld bytes", b < 0 ? 0 : b);
}

static double limit_of(double max_audio_s)
{
    return max_audio_s > 0 && max_audio_s <= AUDIO_HARD_LIMIT_S ? max_audio_s : AUDIO_HARD_LIMIT_S;
}

int audio_admit_info(const audio_info *info, long long file_size, double max_audio_s,
                     char *err, size_t errlen)
{
    double max_s = limit_of(max_audio_s);
    if (info->src_rate < AUDIO_ADMIT_MIN_RATE || info->src_rate > AUDIO_ADMIT_MAX_RATE) {
        set_err(err, errlen, "sample rate %d Hz is not plausible for speech (accepted: %d-%d Hz)",
                info->src_rate, AUDIO_ADMIT_MIN_RATE, AUDIO_ADMIT_MAX_RATE);
        return AUDIO_ADMIT_BAD;
    }
    double dur = info->duration_s;
    if (!(dur > 0) || !isfinite(dur)) return AUDIO_ADMIT_OK; /* unknown: the decode bounds it */
    char len[32], lim[32], size[32];
    fmt_len(len, sizeof len, dur);
    if (dur > AUDIO_ADMIT_PLAUSIBLE_S && file_size >= 0 &&
        (double)file_size < AUDIO_ADMIT_MIN_BYTES_PER_S * dur) {
        fmt_size(size, sizeof size, file_size);
        set_err(err, errlen, "declared length %s is implausible for a %s file (under %.0f "
                "bytes per second of audio)", len, size, AUDIO_ADMIT_MIN_BYTES_PER_S);
        return AUDIO_ADMIT_BAD;
    }
    if (dur > max_s + SLACK_S) {
        fmt_len(lim, sizeof lim, max_s);
        set_err(err, errlen, "audio is %s%s long; the limit is %s (MAX_AUDIO_HOURS=%g)",
                info->duration_estimated ? "about " : "", len, lim, max_s / 3600);
        return AUDIO_ADMIT_TOO_LONG;
    }
    return AUDIO_ADMIT_OK;
}

long long audio_admit_need_bytes(double duration_s)
{
    if (!(duration_s > 0)) return 0;
    double b = ceil(duration_s * AUDIO_ADMIT_DISK_BYTES_PER_S) + 44; /* + the WAV header */
    return b >= 9e18 ? (long long)9e18 : (long long)b;
}

int audio_admit_space(long long need, long long avail, const char *what, char *err,
                      size_t errlen)
{
    if (avail < 0 || need < 0) return AUDIO_ADMIT_OK;  /* unknown: nothing to go by */
    if (need <= avail && avail - need >= AUDIO_ADMIT_SPARE_BYTES) return AUDIO_ADMIT_OK;
    char n[32], spare[32], a[32];
    fmt_size(n, sizeof n, need);
    fmt_size(spare, sizeof spare, AUDIO_ADMIT_SPARE_BYTES);
    fmt_size(a, sizeof a, avail);
    set_err(err, errlen, "not enough disk space in DATA_DIR to %s: needs %s plus %s to spare, "
            "%s free", what ? what : "prepare this audio", n, spare, a);
    return AUDIO_ADMIT_NO_SPACE;
}

long long audio_admit_free_bytes(const char *dir)
{
    struct statvfs sv;
    if (!dir || statvfs(dir, &sv) != 0) return -1;
    double b = (double)sv.f_bavail * (double)sv.f_frsize;
    return b >= 9e18 ? (long long)9e18 : (long long)b;
}

int audio_admit(const char *path, const char *data_dir, double max_audio_s, audio_info *info,
                char *err, size_t errlen)
{
    audio_info local;
    audio_info *in = info ? info : &local;
    char perr[256] = "";
    int r = audio_probe(path, in, perr, sizeof perr);
    if (r == AUDIO_ERR_UNAVAILABLE) {
        set_err(err, errlen, "the server cannot decode audio: %s", perr);
        return AUDIO_ADMIT_FAULT;
    }
    if (r != 0) {
        set_err(err, errlen, "%s", perr);
        return AUDIO_ADMIT_BAD;
    }
    struct stat sb;
    long long size = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    int st = audio_admit_info(in, size, max_audio_s, err, errlen);
    if (st == AUDIO_ADMIT_OK && data_dir && in->duration_s > 0)
        st = audio_admit_space(audio_admit_need_bytes(in->duration_s),
                               audio_admit_free_bytes(data_dir), "prepare this audio", err,
                               errlen);
    if (st != AUDIO_ADMIT_OK)
        LOG_D("audio", "%s refused (%d): %s: %.1f s%s, %d Hz, %lld bytes", path, st, in->format,
              in->duration_s, in->duration_estimated ? " (estimated)" : "", in->src_rate, size);
    return st;
}

int audio_admit_decode_status(int rc, double max_audio_s, char *err, size_t errlen)
{
    if (rc == 0) return AUDIO_ADMIT_OK;
    const char *e = err ? err : "";
    char msg[256];
    if (rc == AUDIO_ERR_UNAVAILABLE) {
        snprintf(msg, sizeof msg, "%s", e);
        set_err(err, errlen, "the server cannot decode audio: %s", msg);
        return AUDIO_ADMIT_FAULT;
    }
    if (str_starts(e, "cannot write")) {
        if (strstr(e, strerror(ENOSPC)) || strstr(e, strerror(EDQUOT))) {
            set_err(err, errlen, "not enough disk space in DATA_DIR to prepare this audio: the "
                    "disk filled up while decoding it");
            return AUDIO_ADMIT_NO_SPACE;
        }
        return AUDIO_ADMIT_FAULT;
    }
    if (str_starts(e, "audio is longer than the limit") ||
        (str_starts(e, "duration ") && strstr(e, "exceeds the limit"))) {
        double max_s = limit_of(max_audio_s);
        fmt_len(msg, sizeof msg, max_s);
        set_err(err, errlen, "audio is longer than the limit of %s (MAX_AUDIO_HOURS=%g)", msg,
                max_s / 3600);
        return AUDIO_ADMIT_TOO_LONG;
    }
    return AUDIO_ADMIT_BAD;
}
