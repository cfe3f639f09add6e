/* fuzz_audio: the audio entry points an upload goes through (audio_probe,
 * audio_decode_file, audio_decode_to_wav) on the input as a file, with a small duration
 * limit. FFmpeg itself is not instrumented; this checks our demuxer whitelist, limits,
 * truncation checks and error paths, and that nothing leaks or overruns.
 * Properties: a failure always says why; a success yields at most the limit (plus slack)
 * of 16 kHz samples, and the WAV written holds exactly what the in-memory decode gives. */
#include "audio/audio.h"
#include "core/log.h"
#include "core/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_S 5.0

static char dir[64], in_path[96], wav_path[96];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/gs-fuzz-audio-XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(in_path, sizeof in_path, "%s/in", dir);
    snprintf(wav_path, sizeof wav_path, "%s/out.wav", dir);
    log_set_level(LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) return -1;
    if (write_file_atomic(in_path, data, size, 0600) != 0) abort();
    char err[256] = "";
    audio_info info;
    if (audio_probe(in_path, &info, err, sizeof err) != 0 && !err[0]) abort();

    audio_pcm pcm;
    err[0] = '\0';
    int rc = audio_decode_file(in_path, MAX_S, &pcm, err, sizeof err);
    if (rc != 0) {
        if (!err[0]) abort();
    } else {
        if (pcm.rate != AUDIO_RATE || (double)pcm.nsamples > (MAX_S + 1.0) * AUDIO_RATE) {
            fprintf(stderr, "decoded %zu samples at %d Hz with a %g s limit\n", pcm.nsamples,
                    pcm.rate, MAX_S);
            abort();
        }
    }
    double dur = -1;
    char err2[256] = "";
    int rc2 = audio_decode_to_wav(in_path, wav_path, MAX_S, &dur, err2, sizeof err2);
    if (rc2 != 0 && !err2[0]) abort();
    if (rc == 0 && rc2 == 0) {
        size_t len = 0;
        char *w = read_file(wav_path, 64u << 20, &len);
        if (!w || len != 44 + pcm.nsamples * 2 ||
            memcmp(w + 44, pcm.samples, pcm.nsamples * 2) != 0) {
            fprintf(stderr, "WAV (%zu bytes) differs from the in-memory decode (%zu samples)\n",
                    len, pcm.nsamples);
            abort();
        }
        free(w);
    }
    if (rc == 0) audio_pcm_release(&pcm);
    unlink(wav_path);
    return 0;
}
