/* engine: speech-to-text engines behind one interface (a vtable per backend).
 *
 *   engine *e = engine_open_slots("auto", NULL, 2, err, sizeof err);  (engine_open: 1 slot)
 *   transcript *t = engine_transcribe(e, pcm, n, &opts, progress, ud, err, sizeof err);
 *   ...
 *   transcript_free(t); engine_close(e);
 *
 * Backends:
 *   "sphinx"   pocketsphinx 5prealpha, CPU, English only. model: a model directory holding
 *              en-us/ (acoustic model), en-us.lm.bin and cmudict-en-us.dict; NULL = the
 *              environment's GS_SPHINX_MODEL_DIR, else /usr/share/pocketsphinx/model/en-us.
 *              GS_SPHINX_JSGF=<file.gram> decodes with that JSGF grammar instead of the LM
 *              (deterministic tests). The audio is split at pauses (energy-based) and each
 *              piece is decoded as one utterance (batch CMN); one segment per piece.
 *   "whisper"  whisper.cpp (only when built with HAVE_WHISPER; otherwise engine_open fails
 *              with "whisper engine not built in (whisper.cpp not installed)"). model: a path
 *              to a ggml file, or a name like "large-v3" -> $GS_MODELS_DIR/ggml-large-v3.bin
 *              (GS_MODELS_DIR defaults to /workspace/models); NULL = "large-v3". Details
 *              (GPU, DTW, VAD, English-only models) at the top of whisper.c.
 *   "parakeet" NVIDIA Parakeet TDT through whisper.cpp's libparakeet (only with
 *              HAVE_PARAKEET). model: a path, or a name like "parakeet-tdt-0.6b-v3" ->
 *              $GS_MODELS_DIR/ggml-parakeet-tdt-0.6b-v3.bin (or ...-f16.bin, the name
 *              ggml-org/parakeet-GGUF publishes); NULL = "parakeet-tdt-0.6b-v3". Language is
 *              detected by the model itself (the transcript's language stays NULL unless the
 *              caller named one); translate and prompt are not supported.
 *   "auto"     parakeet when built in and the model name starts with "parakeet" (and its file
 *              exists); else whisper when built in, its model file exists and an NVIDIA GPU is
 *              present (/dev/nvidia0 or /proc/driver/nvidia/gpus); otherwise sphinx (with the
 *              model argument ignored when it names a whisper/parakeet model).
 *
 * engine_transcribe takes 16 kHz mono s16 PCM. It returns a transcript (caller frees) or
 * NULL with err set; err is exactly "cancelled" when the job was cancelled (the progress
 * callback returned nonzero, or opts->cancel was set). The progress callback (may be NULL)
 * gets fractions in [0, 1], nondecreasing. opts may be NULL (defaults: language auto,
 * greedy, temperature 0, no word timestamps, VAD as the engine was opened with).
 * Every time in the transcript (segments and words, and the duration) lies within
 * [0, n / ENGINE_SAMPLE_RATE]. Input shorter than ENGINE_MIN_SAMPLES (100 ms) gives an
 * empty transcript without running the model. beam_size must be 0 (default) or
 * 1..ENGINE_MAX_BEAM (engine_beam_size_ok), else the call fails with a message.
 *
 * Cancel: when opts->cancel is non-NULL, the engine polls *opts->cancel while it runs
 * (whisper: after every encoder pass and decoder step, so within one encoder pass, under a
 * second on a GPU; parakeet: between its encoder and decoder and between chunks of at most
 * 40 s; sphinx: between pieces of at most 25 s; every engine also while waiting for a free
 * slot) and returns "cancelled". The flag is read with atomic_load: the caller sets it with
 * atomic_store from any thread.
 *
 * Slots and threads: an engine serves up to engine_slots(e) engine_transcribe calls at
 * once from different threads, sharing one loaded model (whisper: one whisper_context and
 * one whisper_state per slot; parakeet: one context, one parakeet_state per slot; sphinx:
 * one independent decoder per slot, since pocketsphinx decoders cannot share a model).
 * A call beyond that blocks until a slot frees (or returns "cancelled" when its cancel flag
 * is set while it waits). Each slot gets about ncpu / slots threads. engine_open,
 * engine_close and the getters are not to be raced with each other; engine_close must not
 * run while a transcribe call is in flight.
 */
#ifndef GS_ENGINE_H
#define GS_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "transcript/transcript.h"

#define ENGINE_SAMPLE_RATE 16000
#define ENGINE_MAX_BEAM 8        /* whisper.cpp decodes with at most 8 decoders */
#define ENGINE_MAX_SLOTS 64
#define ENGINE_MIN_SAMPLES (ENGINE_SAMPLE_RATE / 10) /* shorter input: empty transcript */

typedef struct engine engine; /* opaque */

/* Voice activity detection (whisper only): skip what is not speech before decoding. */
enum engine_vad {
    ENGINE_VAD_DEFAULT = 0, /* as the engine was opened: env VAD=auto|on|off (default auto) */
    ENGINE_VAD_ON,          /* needs a VAD model: fails with a message without one */
    ENGINE_VAD_OFF,
    ENGINE_VAD_AUTO,        /* on when a VAD model is present */
};

typedef struct engine_opts {
    const char *language; /* "en", "auto" or NULL (detect), ... */
    const char *prompt;   /* initial prompt (whisper), may be NULL */
    double temperature;
    int translate;        /* translate to English (whisper; refused by English-only models) */
    int beam_size;        /* 0 = default (greedy), 1..ENGINE_MAX_BEAM; > 1: beam search */
    int word_timestamps;
    enum engine_vad vad;
    const atomic_int *cancel; /* may be NULL; nonzero: stop (see "Cancel" above) */
} engine_opts;

/* Return nonzero to cancel. */
typedef int (*engine_progress_fn)(void *ud, double fraction);

/* name: "sphinx" | "whisper" | "parakeet" | "auto" (NULL = "auto"); model: path or name,
 * may be NULL. NULL with err set on failure (unknown engine, missing model, load error,
 * VAD=on without a VAD model). engine_open is engine_open_slots with 1 slot; slots must be
 * 1..ENGINE_MAX_SLOTS. */
engine *engine_open(const char *name, const char *model, char *err, size_t errlen);
engine *engine_open_slots(const char *name, const char *model, int slots, char *err,
                          size_t errlen);
const char *engine_name(const engine *e);  /* "sphinx", "whisper", "parakeet" (never "auto") */
const char *engine_model(const engine *e); /* the model path in use */
int engine_slots(const engine *e);         /* concurrent transcribe calls served */
/* 1 when the model runs on a GPU: the ggml backend device whisper.cpp / parakeet actually
 * initialised, not merely the presence of a GPU. */
int engine_uses_gpu(const engine *e);
/* The compute device: ggml's device name ("CUDA0", ...) or "CPU". */
const char *engine_device(const engine *e);
/* How word times are made: "dtw" (whisper with the model's alignment heads), "tokens"
 * (whisper's token timestamps), "native" (sphinx and parakeet: the decoder's own). */
const char *engine_word_timing(const engine *e);

/* Transcribe 16 kHz mono s16 PCM (see the contract above). Safe from up to
 * engine_slots(e) threads at once; more callers wait for a slot. */
transcript *engine_transcribe(engine *e, const int16_t *pcm, size_t n, const engine_opts *o,
                              engine_progress_fn cb, void *ud, char *err, size_t errlen);
void engine_close(engine *e);

/* 1 when beam_size is acceptable (0, or 1..ENGINE_MAX_BEAM): for validating requests at
 * their entry point. */
int engine_beam_size_ok(int beam_size);

/* 1 when the whisper / parakeet engine is compiled in. */
int engine_whisper_built_in(void);
int engine_parakeet_built_in(void);
int engine_sphinx_built_in(void);
/* The engines compiled in, space-separated ("sphinx whisper parakeet"), into buf; returns buf. */
const char *engine_features(char *buf, size_t n);

#endif
