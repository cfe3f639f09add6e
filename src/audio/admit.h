/* audio/admit: the admission policy for an uploaded audio file, decided from its headers
 * (audio_probe: no full decode) before anything is decoded or written, so that a small file
 * cannot make the server decode for hours or fill its disk.
 *
 * audio_admit refuses, in this order, answering the HTTP status the caller replies with:
 *   - what audio_probe refuses (400 with its message; 500 "the server cannot decode audio:
 *     ..." when FFmpeg cannot be loaded);
 *   - a source sample rate outside AUDIO_ADMIT_MIN_RATE..AUDIO_ADMIT_MAX_RATE (400):
 *     "sample rate 1 Hz is not plausible for speech (accepted: 2000-768000 Hz)";
 *   - a declared length over AUDIO_ADMIT_PLAUSIBLE_S whose file holds fewer than
 *     AUDIO_ADMIT_MIN_BYTES_PER_S bytes per declared second (400): no real speech codec is
 *     that small, but a FLAC of digital silence or a forged header is (a "decompression
 *     bomb"): "declared length 24 h is implausible for a 314 KB file (under 100 bytes per
 *     second of audio)";
 *   - a declared (or bitrate-estimated) length over max_audio_s (+0.5 s of codec padding)
 *     (413): "audio is 24 h long; the limit is 12 h (MAX_AUDIO_HOURS=12)" ("about 24 h"
 *     when estimated);
 *   - too little free space in data_dir for what preparing it writes (the 16 kHz s16 WAV,
 *     32000 B/s, then the chunks' Opus files, ~4 KB/s: AUDIO_ADMIT_DISK_BYTES_PER_S) plus
 *     AUDIO_ADMIT_SPARE_BYTES (507): "not enough disk space in DATA_DIR to prepare this
 *     audio: needs 1.4 GB plus 64 MB to spare, 200 MB free".
 * A file whose length is unknown (a streamed webm) skips the length and space checks: its
 * decode stops at max_audio_s, and on a full disk it fails with "cannot write ..." and
 * leaves no temporary file (audio.h), which audio_admit_decode_status maps to 507.
 * The messages written here name the settings (MAX_AUDIO_HOURS, DATA_DIR), never a server
 * path (a decoder's "cannot write '<path>': ..." that is no full disk passes on unchanged).
 * Pure apart from reading the file's headers and statvfs; thread-safe.
 */
#ifndef GS_AUDIO_ADMIT_H
#define GS_AUDIO_ADMIT_H

#include "audio/audio.h"

#include <stddef.h>

/* what audio_admit and audio_admit_decode_status return: 0 or the HTTP status to answer */
#define AUDIO_ADMIT_OK 0
#define AUDIO_ADMIT_BAD 400        /* bad or implausible audio: the file's fault */
#define AUDIO_ADMIT_TOO_LONG 413   /* over max_audio_s (MAX_AUDIO_HOURS) */
#define AUDIO_ADMIT_FAULT 500      /* the server's fault: FFmpeg unavailable, cannot write */
#define AUDIO_ADMIT_NO_SPACE 507   /* not enough free space in DATA_DIR */

#define AUDIO_ADMIT_MIN_RATE 2000
#define AUDIO_ADMIT_MAX_RATE 768000
#define AUDIO_ADMIT_PLAUSIBLE_S 600.0        /* shorter declared lengths skip the floor below */
#define AUDIO_ADMIT_MIN_BYTES_PER_S 100.0    /* see admit.c for why */
#define AUDIO_ADMIT_DISK_BYTES_PER_S 36000.0 /* WAV (32000) + Opus chunks (~4000) */
#define AUDIO_ADMIT_SPARE_BYTES (64LL << 20) /* left free besides what a job needs */

/* Decide whether the file at path may be decoded (see above). max_audio_s: the longest
 * accepted audio (> 0). data_dir: where the decode writes (NULL: no space check). info
 * (optional) receives the probe's result (zeroed when the probe failed). 0 when admitted;
 * else 400, 413, 500 or 507 with one sentence in err. */
int audio_admit(const char *path, const char *data_dir, double max_audio_s, audio_info *info,
                char *err, size_t errlen);

/* The policy alone on a probe's result and the file's size in bytes (no I/O): the rate,
 * plausibility and length checks above. 0, 400 or 413 with err. */
int audio_admit_info(const audio_info *info, long long file_size, double max_audio_s,
                     char *err, size_t errlen);

/* The space check: 0 when avail (bytes free; < 0: unknown, never refused) covers need plus
 * AUDIO_ADMIT_SPARE_BYTES, else 507 with "not enough disk space in DATA_DIR to <what>:
 * needs N plus 64 MB to spare, M free" in err. */
int audio_admit_space(long long need, long long avail, const char *what, char *err,
                      size_t errlen);

/* Bytes an unprivileged writer may still write in dir's file system (statvfs: f_bavail *
 * f_frsize), or -1 when it cannot be read. */
long long audio_admit_free_bytes(const char *dir);

/* What preparing duration_s seconds of audio writes (AUDIO_ADMIT_DISK_BYTES_PER_S each). */
long long audio_admit_need_bytes(double duration_s);

/* Map audio_decode_to_wav's result (rc and its message in err) to the status to answer,
 * rewriting err where the decoder's sentence would not serve the user: 0 for rc 0;
 * AUDIO_ERR_UNAVAILABLE -> 500 "the server cannot decode audio: ..."; "cannot write ..."
 * -> 507 with "not enough disk space in DATA_DIR ..." when the disk (or quota) is full, else
 * 500 as it is; over the limit while decoding -> 413 naming MAX_AUDIO_HOURS; anything else
 * -> 400 (the file's fault) as it is. */
int audio_admit_decode_status(int rc, double max_audio_s, char *err, size_t errlen);

#endif
