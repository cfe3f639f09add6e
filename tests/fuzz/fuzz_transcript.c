/* fuzz_transcript: the transcript store JSON (transcript_from_json_store), which reads what
 * a worker sends back and what the database holds, and every renderer on what it accepts.
 * Property: a transcript that loads serialises to JSON that loads again and serialises to
 * the same text (the builders' clamping is idempotent). */
#include "transcript/transcript.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) return -1;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[256] = "";
    transcript *t = transcript_from_json_store(text, err, sizeof err);
    free(text);
    if (!t) {
        if (!err[0]) abort();
        return 0;
    }
    static const enum transcript_format fmts[] = {TRANSCRIPT_FMT_JSON, TRANSCRIPT_FMT_TEXT,
                                                  TRANSCRIPT_FMT_SRT, TRANSCRIPT_FMT_VTT,
                                                  TRANSCRIPT_FMT_VERBOSE_JSON};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++)
        for (int words = 0; words < 2; words++) free(transcript_render(t, fmts[i], words));
    char *s1 = transcript_to_json_store(t);
    transcript *t2 = transcript_from_json_store(s1, err, sizeof err);
    if (!t2) {
        fprintf(stderr, "own store JSON does not load again: %s\n%s\n", err, s1);
        abort();
    }
    char *s2 = transcript_to_json_store(t2);
    if (strcmp(s1, s2) != 0) {
        fprintf(stderr, "store JSON not stable:\n%s\n%s\n", s1, s2);
        abort();
    }
    free(s1);
    free(s2);
    transcript_free(t2);
    transcript_free(t);
    return 0;
}
