/* engine: speech-to-text engines behind one interface (a vtable per backend).
 *
 *   engine *e = engine_open("auto", NULL, err, sizeof err);
 *   transcript *t = engine_transcribe(e, pcm, n, &opts, progress, ud, err, sizeof err);
 *   ...
 *   transcript_free(t); engine_close(e);
 *
 * Backends:
 *   "sphinx"  pocketsphinx 5prealpha, CPU, English only. model: a model directory holding
 *             en-us/ (acoustic model), en-us.lm.bin and cmudict-en-us.dict; NULL = the
 *             environment's GS_SPHINX_MODEL_DIR, else /usr/share/pocketsphinx/model/en-us.
 *             GS_SPHINX_JSGF=<file.gram> decodes with that JSGF grammar instead of the LM
 *             (deterministic tests). The audio is split at pauses (energy-based) and each
 *             piece is decoded as one utterance (batch CMN); one segment per piece.
 *   "whisper" whisper.cpp (only when built with HAVE_WHISPER; otherwise engine_open fails
 *             with "whisper engine not built in (whisper.cpp not installed)"). model: a path
 *             to a ggml file, or a name like "large-v3" -> $GS_MODELS_DIR/ggml-large-v3.bin
 *             (GS_MODELS_DIR defaults to /workspace/models); NULL = "large-v3". Uses the GPU
 *             when the library was built with one.
 *   "auto"    whisper when built in, its model file exists and an NVIDIA GPU is present
 *             (/dev/nvidia0 or /proc/driver/nvidia/gpus); otherwise sphinx (with the model
 *             argument ignored when it names a whisper model).
 *
 * engine_transcribe takes 16 kHz mono s16 PCM. It returns a transcript (caller frees) or
 * NULL with err set; err is "cancelled" when the progress callback returned nonzero. The
 * progress callback (may be NULL) gets fractions in [0, 1], nondecreasing. opts may be NULL
 * (defaults: language auto, greedy, temperature 0, no word timestamps). Words are always
 * filled by the sphinx engine; the whisper engine fills them when word_timestamps is set.
 *
 * Thread-safety: not thread-safe per engine instance: use one engine per thread. Separate
 * instances may run in parallel.
 */
#ifndef GS_ENGINE_H
#define GS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "transcript/transcript.h"

#define ENGINE_SAMPLE_RATE 16000

typedef struct engine engine; /* opaque */

typedef struct engine_opts {
    const char *language; /* "en", "auto" or NULL (detect), ... */
    const char *prompt;   /* initial prompt (whisper), may be NULL */
    double temperature;
    int translate;        /* translate to English (whisper) */
    int beam_size;        /* > 1: beam search (whisper) */
    int word_timestamps;
} engine_opts;

/* Return nonzero to cancel. */
typedef int (*engine_progress_fn)(void *ud, double fraction);

/* name: "sphinx" | "whisper" | "auto" (NULL = "auto"); model: path or name, may be NULL.
 * NULL with err set on failure (unknown engine, missing model, load error). */
engine *engine_open(const char *name, const char *model, char *err, size_t errlen);
const char *engine_name(const engine *e);  /* "sphinx" or "whisper" (never "auto") */
const char *engine_model(const engine *e); /* the model path in use */
int engine_uses_gpu(const engine *e);

/* Transcribe 16 kHz mono s16 PCM. Returns a transcript (caller frees) or NULL with err set
 * ("cancelled" when the progress callback asked to stop). Not thread-safe per engine
 * instance: one engine per thread. */
transcript *engine_transcribe(engine *e, const int16_t *pcm, size_t n, const engine_opts *o,
                              engine_progress_fn cb, void *ud, char *err, size_t errlen);
void engine_close(engine *e);

/* 1 when the whisper (pocketsphinx) engine is compiled in. */
int engine_whisper_built_in(void);
int engine_sphinx_built_in(void);
/* The engines compiled in, space-separated ("sphinx whisper"), into buf; returns buf. */
const char *engine_features(char *buf, size_t n);

#endif
