/* audio/wavfile: random access to the samples of a 16-bit mono PCM WAV file on disk (the
 * files audio_decode_to_wav and audio_write_wav write), window by window: nothing reads a
 * whole file into memory.
 *
 *   wav_file w;
 *   if (wav_open(&w, path, err, sizeof err) == 0) { wav_read(&w, start, n, buf); wav_close(&w); }
 *
 * The RIFF chunks are walked (fmt must be PCM, 16-bit, mono; any rate); a data size of 0 or
 * 0xFFFFFFFF, as a streamed writer may leave it, or one past the end of the file means "to
 * the end". Errors are one sentence: "file not found", "cannot open file: <reason>", "not a
 * 16-bit mono PCM WAV file", "read error: <reason>". A wav_file is used by one thread at a
 * time; files are independent. */
#ifndef GS_AUDIO_WAVFILE_H
#define GS_AUDIO_WAVFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audio/audio.h"

typedef struct wav_file {
    int fd;
    int rate;          /* Hz */
    off_t data_off;    /* first sample's byte offset */
    size_t nsamples;
} wav_file;

int wav_open(wav_file *w, const char *path, char *err, size_t errlen);
/* Read up to n samples from sample `start` into buf (host order). Returns the samples read
 * (fewer at the end of the file, 0 past it), -1 on a read error (errno set). */
long wav_read(wav_file *w, size_t start, size_t n, int16_t *buf);
void wav_close(wav_file *w);

/* Samples [start, start + n) of the file at path (a range past the end is cut at the end)
 * into *out (zeroed first; release with audio_pcm_release; out->rate is the file's). 0, or
 * -1 with err. */
int wav_read_range(const char *path, size_t start, size_t n, audio_pcm *out, char *err,
                   size_t errlen);

#endif
