/* opusrt: the Opus round trip the controller and the worker make (src/audio/opus.h), for
 * bench/opus_wer.sh: encode a whole 16 kHz mono WAV at a bitrate, decode it back.
 * Usage: opusrt IN.wav BITRATE OUT.opus OUT.wav
 * Prints "samples_in N bytes B samples_out M enc_s S dec_s S". Built by bench/opus_wer.sh,
 * not by make. */
#include "audio/opus.h"

#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: opusrt IN.wav BITRATE OUT.opus OUT.wav\n");
        return 2;
    }
    struct stat sb;
    if (stat(argv[1], &sb) != 0 || sb.st_size < 44) {
        fprintf(stderr, "opusrt: cannot read %s\n", argv[1]);
        return 1;
    }
    /* audio_write_wav / sox write a 44-byte header: the sample count for the whole range */
    size_t n = (size_t)(sb.st_size - 44) / 2, m = 0;
    char err[256];
    double t0 = now_mono();
    if (audio_opus_encode_wav_range(argv[1], 0, n, argv[3], atoi(argv[2]), NULL, err, sizeof err)) {
        fprintf(stderr, "opusrt: encode: %s\n", err);
        return 1;
    }
    double t1 = now_mono();
    if (audio_opus_decode_to_wav(argv[3], argv[4], 0, &m, err, sizeof err)) {
        fprintf(stderr, "opusrt: decode: %s\n", err);
        return 1;
    }
    double t2 = now_mono();
    if (stat(argv[3], &sb) != 0) return 1;
    printf("samples_in %zu bytes %lld samples_out %zu enc_s %.3f dec_s %.3f\n", n,
           (long long)sb.st_size, m, t1 - t0, t2 - t1);
    return 0;
}
