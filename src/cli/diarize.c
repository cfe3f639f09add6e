/* `gpuscribe diarize FILE.wav [--num-speakers N] [--min-speakers N] [--max-speakers N]`:
 * runs the CPU diarizer on a 16 kHz mono 16-bit WAV and prints
 * {"file", "elapsed_s", "speech_end", "speakers", "turns": [[start, end, speaker], ...]}. */
#include "cli/cli.h"
#include "core/util.h"
#include "diarize/diarize.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_diarize(int argc, char **argv)
{
    const char *file = NULL;
    diarize_opts o = {0};
    for (int i = 1; i < argc; i++) {
        int *dst = NULL;
        if (!strcmp(argv[i], "--num-speakers")) dst = &o.num_speakers;
        else if (!strcmp(argv[i], "--min-speakers")) dst = &o.min_speakers;
        else if (!strcmp(argv[i], "--max-speakers")) dst = &o.max_speakers;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: gpuscribe diarize FILE.wav [--num-speakers N] [--min-speakers N] "
                   "[--max-speakers N]\n");
            return 0;
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
            continue;
        } else {
            fprintf(stderr, "gpuscribe diarize: unknown argument '%s'\n", argv[i]);
            return 2;
        }
        long v;
        if (i + 1 >= argc || parse_long(argv[++i], &v) != 0 || v < 1 || v > DIARIZE_MAX_SPEAKERS) {
            fprintf(stderr, "gpuscribe diarize: %s takes an integer from 1 to %d\n", argv[i - 1],
                    DIARIZE_MAX_SPEAKERS);
            return 2;
        }
        *dst = (int)v;
    }
    if (!file) {
        fprintf(stderr, "usage: gpuscribe diarize FILE.wav [--num-speakers N]\n");
        return 2;
    }
    char err[256];
    if (diarize_opts_check(&o, err, sizeof err) != 0) {
        fprintf(stderr, "gpuscribe diarize: %s\n", err);
        return 2;
    }
    double t0 = now_mono();
    diarize_result r;
    if (diarize_cpu.run(file, &o, NULL, NULL, &r, err, sizeof err) != DIARIZE_OK) {
        fprintf(stderr, "gpuscribe diarize: %s: %s\n", file, err);
        return 1;
    }
    double el = now_mono() - t0;
    double dur = 0;
    json_t *turns = json_array();
    for (size_t i = 0; i < r.n_turns; i++) {
        json_array_append_new(turns, json_pack("[f,f,i]", r.turns[i].start, r.turns[i].end,
                                               r.turns[i].speaker));
        dur = r.turns[i].end;
    }
    json_t *root = json_pack("{s:s,s:f,s:f,s:i,s:o}", "file", file, "elapsed_s", el,
                             "speech_end", dur, "speakers", r.n_speakers, "turns", turns);
    char *s = json_dumps(root, JSON_REAL_PRECISION(6));
    printf("%s\n", s);
    free(s);
    json_decref(root);
    diarize_result_release(&r);
    return 0;
}
