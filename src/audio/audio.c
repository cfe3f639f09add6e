/* audio: FFmpeg-based probe/decode to 16 kHz mono s16. Contract in audio.h. */
#include "audio/audio.h"

#include "core/log.h"
#include "core/util.h"

#include "audio/ffmpeg_dl.h"   /* FFmpeg: headers at build time, the libraries by dlopen */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IO_BUF_SIZE 32768
/* Demuxers we let loose on untrusted uploads (av_match_list syntax). */
#define FORMAT_WHITELIST \
    "wav,w64,flac,mp3,mov,ogg,matroska,aac,aiff,caf,au,amr,asf,wv,ac3,eac3,avi,mpegts"
#define LIMIT_SLACK_S 0.5   /* codec priming/padding allowed past max_duration_s */
#define TRUNC_FRACTION 0.9  /* decoded below this share of the declared duration: truncated */

/* ---- errors */

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

/* strerror with a lowercase first letter, for our lowercase messages. */
static const char *lc_strerror(int e, char *tmp, size_t n)
{
    snprintf(tmp, n, "%s", strerror(e));
    if (tmp[0] && !(tmp[0] == 'I' && tmp[1] == '/')) tmp[0] = (char)tolower((unsigned char)tmp[0]);
    return tmp;
}

/* ---- FFmpeg log hook */

static void av_log_cb(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING || log_get_level() < LOG_DEBUG) return;
    char line[512];
    int print_prefix = 1;
    gs_ff.av_log_format_line2(avcl, level, fmt, vl, line, (int)sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    if (n) LOG_D("ffmpeg", "%s", line);
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
    gs_ff.av_log_set_level(AV_LOG_WARNING);
    gs_ff.av_log_set_callback(av_log_cb);
}

/* ---- decoder state */

struct dec {
    int fd;
    int io_errno;           /* errno of the last failed read/seek on fd */
    int64_t size;
    AVIOContext *pb;
    AVFormatContext *ic;
    AVCodecContext *cc;
    SwrContext *swr;
    AVPacket *pkt;
    AVFrame *frm;
    int stream;
    AVChannelLayout in_layout;  /* what swr was set up for */
    int in_fmt, in_rate;
    int ndecerr;
    int loaded;             /* FFmpeg loaded (gs_ff usable) */
};

struct out {
    int16_t *s;
    size_t n, cap, max;
    FILE *sink;        /* when set, samples are written out as they come (bounded memory) */
    size_t flushed;    /* samples already written to sink */
    int io_err;
    const audio_decode_ctl *ctl; /* cancel flag and progress callback (may be NULL) */
};

#define SINK_CHUNK ((size_t)AUDIO_RATE * 4)

static int out_flush(struct out *o)
{
    if (!o->sink || o->n == 0) return 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (fwrite(o->s, 2, o->n, o->sink) != o->n) { o->io_err = errno ? errno : EIO; return -1; }
#else
    for (size_t i = 0; i < o->n; i++) {
        unsigned char b[2] = {(unsigned char)(o->s[i] & 0xff), (unsigned char)((uint16_t)o->s[i] >> 8)};
        if (fwrite(b, 1, 2, o->sink) != 2) { o->io_err = errno ? errno : EIO; return -1; }
    }
#endif
    o->flushed += o->n;
    o->n = 0;
    return 0;
}

static int io_read(void *opaque, uint8_t *buf, int n)
{
    struct dec *d = opaque;
    ssize_t r;
    do r = read(d->fd, buf, (size_t)n); while (r < 0 && errno == EINTR);
    if (r < 0) {
        d->io_errno = errno;
        return AVERROR(errno);
    }
    return r == 0 ? AVERROR_EOF : (int)r;
}

static int64_t io_seek(void *opaque, int64_t off, int whence)
{
    struct dec *d = opaque;
    if (whence & AVSEEK_SIZE) return d->size;
    whence &= ~AVSEEK_FORCE;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return AVERROR(EINVAL);
    off_t r = lseek(d->fd, (off_t)off, whence);
    if (r < 0) {
        d->io_errno = errno;
        return AVERROR(errno);
    }
    return (int64_t)r;
}

/* Demuxers must never open anything besides the file we handed them. */
static int deny_io_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags,
                        AVDictionary **options)
{
    (void)s; (void)pb; (void)flags; (void)options;
    LOG_D("audio", "refused nested open of '%s'", url ? url : "");
    return AVERROR(EPERM);
}

static void dec_close(struct dec *d)
{
    if (!d->loaded) { /* FFmpeg could not be loaded: nothing of it was allocated */
        if (d->fd >= 0) close(d->fd);
        d->fd = -1;
        return;
    }
    gs_ff.swr_free(&d->swr);
    gs_ff.av_frame_free(&d->frm);
    gs_ff.av_packet_free(&d->pkt);
    gs_ff.avcodec_free_context(&d->cc);
    gs_ff.avformat_close_input(&d->ic);
    if (d->pb) {
        gs_ff.av_freep(&d->pb->buffer);
        gs_ff.avio_context_free(&d->pb);
    }
    gs_ff.av_channel_layout_uninit(&d->in_layout);
    if (d->fd >= 0) close(d->fd);
    d->fd = -1;
}

static int read_failed(struct dec *d, char *err, size_t errlen)
{
    char tmp[128];
    if (!d->io_errno) return 0;
    set_err(err, errlen, "read error: %s", lc_strerror(d->io_errno, tmp, sizeof tmp));
    return 1;
}

/* Open path, detect the container from its content, find the best audio stream. */
static int dec_open(struct dec *d, const char *path, char *err, size_t errlen)
{
    char tmp[128];
    memset(d, 0, sizeof *d);
    d->fd = -1;
    d->stream = -1;
    if (ffmpeg_dl_load(err, errlen) != 0) return AUDIO_ERR_UNAVAILABLE;
    d->loaded = 1;
    pthread_once(&g_once, init_once);

    if (!path || !*path) {
        set_err(err, errlen, "file not found");
        return -1;
    }
    d->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (d->fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) set_err(err, errlen, "file not found");
        else set_err(err, errlen, "cannot open file: %s", lc_strerror(errno, tmp, sizeof tmp));
        return -1;
    }
    struct stat sb;
    if (fstat(d->fd, &sb) != 0) {
        set_err(err, errlen, "cannot open file: %s", lc_strerror(errno, tmp, sizeof tmp));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "not a regular file");
        return -1;
    }
    if (sb.st_size == 0) {
        set_err(err, errlen, "file is empty");
        return -1;
    }
    d->size = (int64_t)sb.st_size;

    unsigned char *iobuf = gs_ff.av_malloc(IO_BUF_SIZE);
    if (!iobuf) goto oom;
    d->pb = gs_ff.avio_alloc_context(iobuf, IO_BUF_SIZE, 0, d, io_read, NULL, io_seek);
    if (!d->pb) {
        gs_ff.av_free(iobuf);
        goto oom;
    }

    /* Probe from the content alone: an empty name gives no extension hint. */
    const AVInputFormat *fmt = NULL;
    int r = gs_ff.av_probe_input_buffer2(d->pb, &fmt, "", NULL, 0, 0);
    if (r < 0 || !fmt) {
        if (!read_failed(d, err, errlen)) set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }
    if (gs_ff.av_match_list(fmt->name, FORMAT_WHITELIST, ',') <= 0) {
        LOG_D("audio", "%s: refused container '%s'", path, fmt->name);
        set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }

    d->ic = gs_ff.avformat_alloc_context();
    if (!d->ic) goto oom;
    d->ic->pb = d->pb;
    d->ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    d->ic->io_open = deny_io_open;
    AVDictionary *opts = NULL;
    gs_ff.av_dict_set(&opts, "format_whitelist", FORMAT_WHITELIST, 0);
    r = gs_ff.avformat_open_input(&d->ic, "", fmt, &opts);   /* frees ic on failure */
    gs_ff.av_dict_free(&opts);
    if (r < 0) {
        if (r == AVERROR(ENOMEM)) goto oom;
        if (!read_failed(d, err, errlen)) set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }
    r = gs_ff.avformat_find_stream_info(d->ic, NULL);
    if (r < 0) {
        if (r == AVERROR(ENOMEM)) goto oom;
        if (!read_failed(d, err, errlen)) set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }

    if (d->ic->nb_streams == 0) {   /* e.g. an mp4 cut inside its index */
        set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }
    const AVCodec *codec = NULL;
    r = gs_ff.av_find_best_stream(d->ic, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (r == AVERROR_DECODER_NOT_FOUND) {
        const char *name = "unknown";
        for (unsigned i = 0; i < d->ic->nb_streams; i++)
            if (d->ic->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) {
                name = gs_ff.avcodec_get_name(d->ic->streams[i]->codecpar->codec_id);
                break;
            }
        set_err(err, errlen, "unsupported audio codec: %s", name);
        return -1;
    }
    if (r < 0) {
        set_err(err, errlen, "not an audio file: no audio stream");
        return -1;
    }
    d->stream = r;
    const AVCodecParameters *par = d->ic->streams[r]->codecpar;
    if (par->sample_rate <= 0 || par->ch_layout.nb_channels <= 0) {
        set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }
    for (unsigned i = 0; i < d->ic->nb_streams; i++)
        if ((int)i != d->stream) d->ic->streams[i]->discard = AVDISCARD_ALL;
    return 0;

oom:
    set_err(err, errlen, "out of memory");
    return -1;
}

/* Declared duration of the chosen stream in seconds, -1 when unknown. */
static double dec_duration(const struct dec *d, int *estimated)
{
    const AVStream *st = d->ic->streams[d->stream];
    double dur = -1;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->time_base.den > 0)
        dur = (double)st->duration * av_q2d(st->time_base);
    else if (d->ic->duration != AV_NOPTS_VALUE && d->ic->duration > 0)
        dur = (double)d->ic->duration / AV_TIME_BASE;
    if (estimated)
        *estimated = dur >= 0 && d->ic->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE;
    return dur;
}

static void copy_name(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    /* First entry of a list such as "mov,mp4,m4a,3gp,3g2,mj2". */
    for (; src && src[i] && src[i] != ',' && i + 1 < n; i++) dst[i] = src[i];
    dst[i] = '\0';
}

int audio_probe(const char *path, audio_info *info, char *err, size_t errlen)
{
    struct dec d;
    memset(info, 0, sizeof *info);
    int r = dec_open(&d, path, err, errlen);
    if (r != 0) {
        dec_close(&d);
        return r == AUDIO_ERR_UNAVAILABLE ? r : -1;
    }
    const AVCodecParameters *par = d.ic->streams[d.stream]->codecpar;
    info->duration_s = dec_duration(&d, &info->duration_estimated);
    copy_name(info->format, sizeof info->format, d.ic->iformat->name);
    copy_name(info->codec, sizeof info->codec, gs_ff.avcodec_get_name(par->codec_id));
    info->src_rate = par->sample_rate;
    info->src_channels = par->ch_layout.nb_channels;
    dec_close(&d);
    return 0;
}

/* ---- decoding */

static int out_reserve(struct out *o, size_t extra)
{
    if (o->n + extra <= o->cap) return 0;
    if (o->sink && o->n && out_flush(o) != 0) return -1;
    if (o->n + extra <= o->cap) return 0;
    size_t cap = o->cap ? o->cap * 2 : AUDIO_RATE;
    if (cap < o->n + extra) cap = o->n + extra;
    int16_t *s = realloc(o->s, cap * sizeof *s);
    if (!s) return -1;
    o->s = s;
    o->cap = cap;
    return 0;
}

/* Run the resampler on (data, nin) (NULL/0 = flush) and append its output. */
static int resample(struct dec *d, struct out *o, const uint8_t **data, int nin, char *err,
                    size_t errlen)
{
    for (;;) {
        int want = gs_ff.swr_get_out_samples(d->swr, nin);
        if (want < 0) {
            set_err(err, errlen, "unrecognised or corrupt audio data");
            return -1;
        }
        want += 32;
        if (out_reserve(o, (size_t)want) != 0) {
            if (o->io_err) /* flushing to the sink failed: e.g. the disk is full */
                set_err(err, errlen, "cannot write the decoded audio: %s", strerror(o->io_err));
            else
                set_err(err, errlen, "out of memory");
            return -1;
        }
        uint8_t *dst = (uint8_t *)(o->s + o->n);
        int got = gs_ff.swr_convert(d->swr, &dst, want, data, nin);
        if (got < 0) {
            set_err(err, errlen, "unrecognised or corrupt audio data");
            return -1;
        }
        o->n += (size_t)got;
        if (o->flushed + o->n > o->max) {
            set_err(err, errlen, "audio is longer than the limit of %.0f s",
                    (double)o->max / AUDIO_RATE - LIMIT_SLACK_S);
            return -1;
        }
        if (data || got == 0) return 0;   /* input consumed; or flush done */
    }
}

static int put_frame(struct dec *d, struct out *o, const AVFrame *f, char *err, size_t errlen)
{
    if (f->nb_samples <= 0) return 0;
    AVChannelLayout lay = {0};
    int r = f->ch_layout.nb_channels > 0 ? gs_ff.av_channel_layout_copy(&lay, &f->ch_layout)
                                          : gs_ff.av_channel_layout_copy(&lay, &d->cc->ch_layout);
    if (r < 0) {
        gs_ff.av_channel_layout_uninit(&lay);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if (lay.nb_channels <= 0 || f->sample_rate <= 0 || f->format < 0) {
        gs_ff.av_channel_layout_uninit(&lay);
        set_err(err, errlen, "unrecognised or corrupt audio data");
        return -1;
    }
    if (lay.order == AV_CHANNEL_ORDER_UNSPEC) {
        int nch = lay.nb_channels;
        gs_ff.av_channel_layout_uninit(&lay);
        gs_ff.av_channel_layout_default(&lay, nch);
    }
    if (d->swr && (gs_ff.av_channel_layout_compare(&lay, &d->in_layout) != 0 ||
                   f->format != d->in_fmt || f->sample_rate != d->in_rate)) {
        /* Parameters changed mid-stream: drain the old resampler, then start afresh. */
        LOG_D("audio", "stream parameters changed mid-stream (%d Hz -> %d Hz)", d->in_rate,
              f->sample_rate);
        if (resample(d, o, NULL, 0, err, errlen) != 0) {
            gs_ff.av_channel_layout_uninit(&lay);
            return -1;
        }
        gs_ff.swr_free(&d->swr);
    }
    if (!d->swr) {
        AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
        r = gs_ff.swr_alloc_set_opts2(&d->swr, &mono, AV_SAMPLE_FMT_S16, AUDIO_RATE, &lay,
                                (enum AVSampleFormat)f->format, f->sample_rate, 0, NULL);
        if (r >= 0) r = gs_ff.swr_init(d->swr);
        if (r < 0) {
            gs_ff.swr_free(&d->swr);
            gs_ff.av_channel_layout_uninit(&lay);
            set_err(err, errlen, r == AVERROR(ENOMEM) ? "out of memory"
                                                       : "unrecognised or corrupt audio data");
            return -1;
        }
        gs_ff.av_channel_layout_uninit(&d->in_layout);
        d->in_layout = lay;   /* ownership moves */
        lay = (AVChannelLayout){0};
        d->in_fmt = f->format;
        d->in_rate = f->sample_rate;
    }
    gs_ff.av_channel_layout_uninit(&lay);
    return resample(d, o, (const uint8_t **)f->extended_data, f->nb_samples, err, errlen);
}

/* Take every frame the decoder has ready. */
static int drain(struct dec *d, struct out *o, char *err, size_t errlen)
{
    for (;;) {
        int r = gs_ff.avcodec_receive_frame(d->cc, d->frm);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r == AVERROR(ENOMEM)) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        if (r < 0) {
            d->ndecerr++;
            return 0;
        }
        r = put_frame(d, o, d->frm, err, errlen);
        gs_ff.av_frame_unref(d->frm);
        if (r != 0) return -1;
    }
}

static int decode_all(struct dec *d, double max_s, struct out *o, char *err, size_t errlen)
{
    int estimated = 0;
    double dur = dec_duration(d, &estimated);
    if (dur > 0 && !estimated && dur > max_s + LIMIT_SLACK_S) {
        set_err(err, errlen, "duration %.0f s exceeds the limit of %.0f s", dur, max_s);
        return -1;
    }
    o->max = (size_t)((max_s + LIMIT_SLACK_S) * AUDIO_RATE);
    double guess = dur > 0 ? (dur < max_s ? dur : max_s) + 1.0 : 60.0;
    if (out_reserve(o, o->sink ? SINK_CHUNK : (size_t)(guess * AUDIO_RATE)) != 0) {
        set_err(err, errlen, "out of memory");
        return -1;
    }

    const AVStream *st = d->ic->streams[d->stream];
    const AVCodec *codec = gs_ff.avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) {
        set_err(err, errlen, "unsupported audio codec: %s", gs_ff.avcodec_get_name(st->codecpar->codec_id));
        return -1;
    }
    d->cc = gs_ff.avcodec_alloc_context3(codec);
    d->pkt = gs_ff.av_packet_alloc();
    d->frm = gs_ff.av_frame_alloc();
    if (!d->cc || !d->pkt || !d->frm) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    int r = gs_ff.avcodec_parameters_to_context(d->cc, st->codecpar);
    if (r >= 0) {
        d->cc->pkt_timebase = st->time_base;
        d->cc->thread_count = 1;
        r = gs_ff.avcodec_open2(d->cc, codec, NULL);
    }
    if (r < 0) {
        set_err(err, errlen, r == AVERROR(ENOMEM) ? "out of memory"
                                                   : "unrecognised or corrupt audio data");
        return -1;
    }

    int demux_err = 0;
    double last_report = -1;
    for (;;) {
        if (o->ctl && o->ctl->cancel && atomic_load(o->ctl->cancel)) {
            set_err(err, errlen, "cancelled");
            return -1;
        }
        if (o->ctl && o->ctl->progress && dur > 0) {
            double done = (double)(o->flushed + o->n) / AUDIO_RATE;
            if (done - last_report >= 5.0) {
                last_report = done;
                o->ctl->progress(o->ctl->ud, done >= dur ? 1.0 : done / dur);
            }
        }
        r = gs_ff.av_read_frame(d->ic, d->pkt);
        if (r < 0) {
            if (r != AVERROR_EOF) demux_err = r;
            break;
        }
        int fail = 0;
        if (d->pkt->stream_index == d->stream) {
            r = gs_ff.avcodec_send_packet(d->cc, d->pkt);
            if (r == AVERROR(ENOMEM)) {
                set_err(err, errlen, "out of memory");
                fail = 1;
            } else if (r < 0) {
                d->ndecerr++;   /* a damaged packet: skip it */
            } else if (drain(d, o, err, errlen) != 0) {
                fail = 1;
            }
        }
        gs_ff.av_packet_unref(d->pkt);
        if (fail) return -1;
    }
    if (read_failed(d, err, errlen)) return -1;
    if (demux_err && o->flushed + o->n == 0) {
        set_err(err, errlen, "truncated or corrupt audio: no audio could be decoded");
        return -1;
    }
    if (demux_err) {
        char msg[AV_ERROR_MAX_STRING_SIZE];
        gs_ff.av_strerror(demux_err, msg, sizeof msg);
        LOG_D("audio", "demuxer stopped early: %s", msg);
    }
    /* Flush the decoder, then the resampler. */
    if (gs_ff.avcodec_send_packet(d->cc, NULL) >= 0 && drain(d, o, err, errlen) != 0) return -1;
    if (d->swr && resample(d, o, NULL, 0, err, errlen) != 0) return -1;

    if (out_flush(o) != 0) {
        set_err(err, errlen, "cannot write the decoded audio: %s", strerror(o->io_err));
        return -1;
    }
    if (o->flushed + o->n == 0) {
        set_err(err, errlen, "truncated or corrupt audio: no audio could be decoded");
        return -1;
    }
    double got = (double)(o->flushed + o->n) / AUDIO_RATE;
    if (dur > 0 && !estimated && got < TRUNC_FRACTION * dur - 0.5) {
        set_err(err, errlen, "truncated or corrupt audio: decoded %.1f s of the declared %.1f s",
                got, dur);
        return -1;
    }
    if (d->ndecerr) LOG_D("audio", "%d damaged packets/frames skipped", d->ndecerr);
    return 0;
}

int audio_decode_file(const char *path, double max_duration_s, audio_pcm *out, char *err,
                      size_t errlen)
{
    struct dec d;
    struct out o = {0};
    memset(out, 0, sizeof *out);
    if (!(max_duration_s > 0) || max_duration_s > AUDIO_HARD_LIMIT_S)
        max_duration_s = AUDIO_HARD_LIMIT_S;
    double t0 = now_mono();
    int r = dec_open(&d, path, err, errlen);
    if (r == 0) r = decode_all(&d, max_duration_s, &o, err, errlen);
    dec_close(&d);
    if (r != 0) {
        free(o.s);
        return r == AUDIO_ERR_UNAVAILABLE ? r : -1;
    }
    if (o.cap > o.n + AUDIO_RATE) {   /* give back an over-estimate */
        int16_t *s = realloc(o.s, o.n * sizeof *s);
        if (s) o.s = s;
    }
    out->samples = o.s;
    out->nsamples = o.n;
    out->rate = AUDIO_RATE;
    LOG_D("audio", "decoded %.2f s of audio in %.3f s", (double)o.n / AUDIO_RATE, now_mono() - t0);
    return 0;
}

void audio_pcm_release(audio_pcm *p)
{
    if (!p) return;
    free(p->samples);
    p->samples = NULL;
    p->nsamples = 0;
}

/* ---- WAV writer */

static void wav_header(unsigned char h[44], uint32_t data_bytes, uint32_t rate);

static void put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int audio_write_wav(const char *path, const audio_pcm *p)
{
    if (!path || !p || (p->nsamples && !p->samples) || p->rate <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (p->nsamples > (UINT32_MAX - 36) / 2) {
        errno = EFBIG;
        return -1;
    }
    unsigned char h[44];
    wav_header(h, (uint32_t)(p->nsamples * 2), (uint32_t)p->rate);

    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wbx");
    if (!f) {
        int e = errno;
        free(tmp);
        errno = e;
        return -1;
    }
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (ok && p->nsamples) ok = fwrite(p->samples, 2, p->nsamples, f) == p->nsamples;
#else
    for (size_t i = 0; ok && i < p->nsamples; i++) {
        unsigned char b[2];
        put_le16(b, (uint16_t)p->samples[i]);
        ok = fwrite(b, 1, 2, f) == 2;
    }
#endif
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        free(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    free(tmp);
    return 0;
}

static void wav_header(unsigned char h[44], uint32_t data_bytes, uint32_t rate)
{
    memcpy(h, "RIFF", 4);
    put_le32(h + 4, 36 + data_bytes);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le32(h + 16, 16);       /* fmt chunk size */
    put_le16(h + 20, 1);        /* PCM */
    put_le16(h + 22, 1);        /* mono */
    put_le32(h + 24, rate);
    put_le32(h + 28, rate * 2); /* byte rate */
    put_le16(h + 32, 2);        /* block align */
    put_le16(h + 34, 16);       /* bits per sample */
    memcpy(h + 36, "data", 4);
    put_le32(h + 40, data_bytes);
}

int audio_decode_to_wav(const char *path, const char *wav_path, double max_duration_s,
                        double *duration_out, char *err, size_t errlen)
{
    return audio_decode_to_wav_ctl(path, wav_path, max_duration_s, NULL, duration_out, err, errlen);
}

int audio_decode_to_wav_ctl(const char *path, const char *wav_path, double max_duration_s,
                            const audio_decode_ctl *ctl, double *duration_out, char *err,
                            size_t errlen)
{
    if (!(max_duration_s > 0) || max_duration_s > AUDIO_HARD_LIMIT_S)
        max_duration_s = AUDIO_HARD_LIMIT_S;
    if (max_duration_s > (double)(UINT32_MAX - 36) / 2 / AUDIO_RATE)
        max_duration_s = (double)(UINT32_MAX - 36) / 2 / AUDIO_RATE;
    char *tmp = xasprintf("%s.tmp.%ld", wav_path, (long)getpid());
    struct out o = {0};
    o.ctl = ctl;
    o.sink = fopen(tmp, "wbx");
    if (!o.sink) {
        set_err(err, errlen, "cannot write '%s': %s", wav_path, strerror(errno));
        free(tmp);
        return -1;
    }
    unsigned char h[44];
    wav_header(h, 0, AUDIO_RATE);
    int r = fwrite(h, 1, sizeof h, o.sink) == sizeof h ? 0 : -1;
    if (r == 0) {
        struct dec d;
        r = dec_open(&d, path, err, errlen); /* dec_close is due even when it fails */
        if (r == 0) r = decode_all(&d, max_duration_s, &o, err, errlen);
        dec_close(&d);
    } else {
        set_err(err, errlen, "cannot write '%s': %s", wav_path, strerror(errno));
    }
    size_t total = o.flushed + o.n;
    if (r == 0) {
        wav_header(h, (uint32_t)(total * 2), AUDIO_RATE);
        if (fseek(o.sink, 0, SEEK_SET) != 0 || fwrite(h, 1, sizeof h, o.sink) != sizeof h) {
            set_err(err, errlen, "cannot write '%s': %s", wav_path, strerror(errno));
            r = -1;
        }
    }
    if (fclose(o.sink) != 0 && r == 0) {
        set_err(err, errlen, "cannot write '%s': %s", wav_path, strerror(errno));
        r = -1;
    }
    if (r == 0 && rename(tmp, wav_path) != 0) {
        set_err(err, errlen, "cannot write '%s': %s", wav_path, strerror(errno));
        r = -1;
    }
    if (r != 0) unlink(tmp);
    else if (duration_out) *duration_out = (double)total / AUDIO_RATE;
    free(o.s);
    free(tmp);
    return r;
}
