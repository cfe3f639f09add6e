/* audio: probe and decode untrusted audio files to 16 kHz mono signed 16-bit PCM (FFmpeg).
 *
 * - Input is read through our own file descriptor (no FFmpeg protocols, no URLs, no nested
 *   opens: playlist/concat-style demuxers cannot reach other files or the network). The
 *   container is detected from the content only; the file name and extension are ignored.
 *   Only common audio/media containers are accepted (wav/w64/rf64, flac, mp3, mp4/m4a/mov,
 *   ogg (vorbis, opus, flac), matroska/webm, adts aac, aiff, caf, au, amr, asf/wma,
 *   wavpack, ac3, avi, mpeg-ts); anything else is "unrecognised or corrupt audio data".
 * - Errors: every function that takes err writes one clear lowercase sentence there (never
 *   a partial result; errlen 0 / err NULL allowed). Messages in use:
 *     "file not found", "cannot open file: <reason>", "not a regular file", "file is empty",
 *     "unrecognised or corrupt audio data", "unsupported container format: <name>",
 *     "not an audio file: no audio stream", "unsupported audio codec: <name>",
 *     "duration 99999 s exceeds the limit of 14400 s",
 *     "audio is longer than the limit of 14400 s" (found while decoding),
 *     "truncated or corrupt audio: no audio could be decoded",
 *     "truncated or corrupt audio: decoded 2.2 s of the declared 4.5 s",
 *     "read error: <reason>", "out of memory", and from audio_decode_to_wav
 *     "cannot write '<wav_path>': <reason>" / "cannot write the decoded audio: <reason>" (the
 *     server's fault, e.g. "No space left on device" when the disk fills up mid-decode: the
 *     decode stops there and its temporary file is removed).
 * - Truncation: when the container declares its duration (not a bitrate estimate) and the
 *   decode yields less than 90% of it (minus 0.5 s), the file is refused as truncated.
 * - Limits: audio_decode_file refuses files longer than max_duration_s up front when the
 *   duration is known, and stops while decoding otherwise (0.5 s of slack for codec
 *   priming/padding). max_duration_s <= 0 means AUDIO_HARD_LIMIT_S. Memory used is about
 *   32 KB per second of audio plus FFmpeg's working set (~30 MB).
 * - FFmpeg is not linked: it is opened with dlopen on the first probe or decode
 *   (audio/ffmpeg_dl.h). When it cannot be loaded every function here returns
 *   AUDIO_ERR_UNAVAILABLE with e.g. "FFmpeg's libavformat.so.59 is not installed: apt install
 *   libavformat59" in err: the server's fault, not the file's.
 * - FFmpeg's own log output is routed to our log at debug level (tag "ffmpeg").
 * Thread-safe: every call is independent (no shared state besides the one-time log hook).
 */
#ifndef GS_AUDIO_H
#define GS_AUDIO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIO_RATE 16000
#define AUDIO_HARD_LIMIT_S (24.0 * 3600.0)
#define AUDIO_ERR_UNAVAILABLE (-2)   /* FFmpeg's libraries cannot be loaded (see above) */

typedef struct audio_pcm {
    int16_t *samples;   /* heap, mono, AUDIO_RATE Hz; release with audio_pcm_release */
    size_t nsamples;
    int rate;           /* always AUDIO_RATE */
} audio_pcm;

typedef struct audio_info {
    double duration_s;      /* < 0 when the container does not say (e.g. streamed webm) */
    int duration_estimated; /* 1 when duration_s is only a bitrate estimate */
    char format[32];        /* demuxer short name: "wav", "mp3", "mov", "ogg", "matroska"... */
    char codec[32];         /* "pcm_s16le", "mp3", "aac", "vorbis", "opus", "flac"... */
    int src_rate;
    int src_channels;
} audio_info;

/* Probe without decoding the whole file: container, codec, duration, source rate/channels.
 * 0 on success; -1 with a message in err on failure (AUDIO_ERR_UNAVAILABLE: no FFmpeg). */
int audio_probe(const char *path, audio_info *info, char *err, size_t errlen);

/* Decode the whole file (first/best audio stream) to AUDIO_RATE mono s16 into *out (zeroed
 * first; caller releases on success, nothing to release on failure). See the header comment
 * for limits and refusals. 0 on success, -1 with a message in err. */
int audio_decode_file(const char *path, double max_duration_s, audio_pcm *out, char *err,
                      size_t errlen);

void audio_pcm_release(audio_pcm *p);
/* Decode like audio_decode_file, but stream the 16 kHz mono s16 samples into a WAV file at
 * wav_path (written atomically) instead of memory: memory stays bounded whatever the length.
 * *duration_out (optional) receives the decoded duration in seconds. */
int audio_decode_to_wav(const char *path, const char *wav_path, double max_duration_s,
                        double *duration_out, char *err, size_t errlen);

/* audio_decode_to_wav with a cancel flag (polled between packets: the call returns -1 with
 * err "cancelled" within a packet's decode once *cancel is nonzero) and a progress callback
 * (fraction of the declared duration decoded, called every ~5 s of audio; only when the
 * container declares a duration). ctl and both fields may be NULL. */
typedef struct audio_decode_ctl {
    const atomic_int *cancel;
    void (*progress)(void *ud, double fraction);
    void *ud;
} audio_decode_ctl;
int audio_decode_to_wav_ctl(const char *path, const char *wav_path, double max_duration_s,
                            const audio_decode_ctl *ctl, double *duration_out, char *err,
                            size_t errlen);

/* Write pcm as a canonical 44-byte-header RIFF/WAVE file, 16-bit mono at p->rate. Writes to a
 * temporary file beside path and renames it into place. 0 on success, -1 with errno set
 * (EINVAL for a bad pcm, EFBIG when over the 4 GiB RIFF limit). */
int audio_write_wav(const char *path, const audio_pcm *p);

#endif
