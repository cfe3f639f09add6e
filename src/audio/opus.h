/* audio/opus: 16 kHz mono speech as Ogg Opus, for the trip through the SSH tunnel to a worker
 * (about 24 kbit/s: ~12 MB per audio hour instead of 115 MB of PCM).
 *
 * - Encoding (opus_enc.c, controller only; libopusenc): a sample range of a 16 kHz mono
 *   16-bit PCM WAV (what audio_write_wav / audio_decode_to_wav write; the data chunk is
 *   located by walking the RIFF chunks, not assumed at byte 44) is read one second at a time
 *   with pread (memory stays bounded whatever the length) and encoded as one Ogg Opus stream:
 *   16 kHz input rate, 1 channel, the given bitrate (VBR), application AUDIO (VOIP recognised no
 *   better: bench/README.md), signal "voice", complexity AUDIO_OPUS_COMPLEXITY (5: a third of
 *   complexity 10's time, bench/README.md). The Ogg stream
 *   carries the pre-skip and the exact end granule, so a decoder returns exactly nsamples.
 * - Decoding (opus_dec.c, worker and controller; libopusfile): any Ogg Opus file (any
 *   channel count: downmixed to mono by averaging; chained links too) to a canonical
 *   44-byte-header WAV, 16 kHz mono 16-bit. opusfile always decodes at 48 kHz and trims the
 *   pre-skip and the end padding from the granule positions; the 48 kHz signal is decimated
 *   by 3 through a linear-phase low-pass FIR (Kaiser-windowed sinc, 241 taps, -6 dB at
 *   7.5 kHz, >= 80 dB stopband from 8 kHz) whose delay is compensated: decoded sample i
 *   lines up with input sample i (within one sample: libopusenc's own 16 -> 48 kHz resampler
 *   leaves the audio ~0.9 sample, 55 us, early) and the length is the encoded length.
 *   Streaming: memory is a few hundred KB whatever the length. Bytes after the stream's last
 *   valid page (opusfile would stop there silently) make the file corrupt, as do damaged
 *   pages anywhere (a gap in the stream); a file cut at a page boundary cannot be told
 *   from a shorter stream.
 * - Outputs are written atomically: a temporary file beside the output (util.h's
 *   tmpfile_beside: ".NAME.<random>.tmp", mode 0600), renamed into place on success, removed
 *   on failure.
 * - Errors: 0 on success; -1 with one clear lowercase sentence in err (err NULL / errlen 0
 *   allowed). Messages in use: "file not found", "cannot open file: <reason>", "not a regular file",
 *   "not a WAV file", "unsupported WAV format (...): expected 16 kHz mono 16-bit PCM",
 *   "WAV file has no data chunk", "sample range [a, b) is outside the audio (N samples)",
 *   "invalid bitrate N (6000-256000 bit/s)", "read error: <reason>",
 *   "cannot write <path>: <reason>", "opus encoder: <libopusenc's message>", "cancelled",
 *   "not an Ogg Opus stream", "corrupt Opus data" (maybe with ": <detail>", e.g. ": the stream
 *   ends at byte N of M"),
 *   "the Opus stream holds no audio", "duration 99999 s exceeds the limit of 14400 s",
 *   "audio is longer than the limit of 14400 s" (found while decoding).
 * - Cancel: *cancel (NULL: never) is polled once per second of audio; when it is nonzero the
 *   call stops, leaves no file behind and fails with "cancelled".
 * Thread-safe: every call is independent (no shared state).
 */
#ifndef GS_AUDIO_OPUS_H
#define GS_AUDIO_OPUS_H

#include <stdatomic.h>
#include <stddef.h>

/* The bitrate the controller encodes at (bench/opus_wer.sh: no WER loss against PCM). */
#define AUDIO_OPUS_BITRATE 24000
#define AUDIO_OPUS_COMPLEXITY 5 /* 0..10; 10 costs ~3x the CPU (70 s per audio hour) */

/* Encode samples [start_sample, start_sample + nsamples) of wav_path (16 kHz mono s16) to an
 * Ogg Opus file at out_path at bitrate_bps (6000-256000). nsamples 0 or a range past the end
 * of the audio is refused. */
int audio_opus_encode_wav_range(const char *wav_path, size_t start_sample, size_t nsamples,
                                const char *out_path, int bitrate_bps, const atomic_int *cancel,
                                char *err, size_t errlen);

/* Decode the Ogg Opus file opus_path to a canonical WAV (44-byte header, 16 kHz mono s16) at
 * wav_path. max_duration_s <= 0 means AUDIO_HARD_LIMIT_S (audio.h); a stream that says it is
 * longer is refused up front, one that turns out longer while decoding is refused then (0.5 s
 * of slack). *nsamples_out (may be NULL) receives the number of 16 kHz samples written. */
int audio_opus_decode_to_wav(const char *opus_path, const char *wav_path, double max_duration_s,
                             size_t *nsamples_out, char *err, size_t errlen);
/* The same, polling *cancel (may be NULL) once per second of audio. */
int audio_opus_decode_to_wav_cancel(const char *opus_path, const char *wav_path,
                                    double max_duration_s, const atomic_int *cancel,
                                    size_t *nsamples_out, char *err, size_t errlen);

/* 1 when the n bytes at head begin an Ogg Opus stream: an Ogg page ("OggS", version 0, the
 * beginning-of-stream flag) whose first packet starts with "OpusHead". 36 bytes are enough
 * for any stream written by an encoder that follows RFC 7845; fewer give 0. */
int audio_is_ogg_opus(const unsigned char *head, size_t n);

#endif
