/* engine_impl: what engine.c needs from each backend (private to src/engine/).
 *
 * A backend fills an engine_vtbl. open() loads the model once for `slots` concurrent
 * callers and returns the backend's state (or NULL with err set), the model path it
 * resolved (heap, in info->model) and where it runs. transcribe() is called with a slot
 * index in [0, slots) that no other thread uses at the same time (engine.c hands slots
 * out), with opts already validated (beam size) and the cancel flag not yet set. After
 * validating its own options it returns engine_short_transcript() for input shorter than
 * ENGINE_MIN_SAMPLES without running the model. It returns a transcript whose times may
 * still run past the audio (engine.c clamps them) or NULL with err set ("cancelled" when
 * cancelled).
 */
#ifndef GS_ENGINE_IMPL_H
#define GS_ENGINE_IMPL_H

#include "engine/engine.h"

struct engine_info {
    char *model;            /* heap: the resolved model path */
    int uses_gpu;
    char device[64];        /* "CPU", "CUDA0", ... */
    const char *word_timing; /* static: "dtw", "tokens", "native" */
};

struct engine_vtbl {
    const char *name;
    void *(*open)(const char *model, int slots, struct engine_info *info, char *err,
                  size_t errlen);
    transcript *(*transcribe)(void *st, int slot, const int16_t *pcm, size_t n,
                              const engine_opts *o, engine_progress_fn cb, void *ud, char *err,
                              size_t errlen);
    void (*close)(void *st);
};

/* NULL when pocketsphinx is not built in (a lean worker built without it). */
extern const struct engine_vtbl *const engine_sphinx_vtbl;
/* NULL when whisper.cpp / libparakeet is not built in. */
extern const struct engine_vtbl *const engine_whisper_vtbl;
extern const struct engine_vtbl *const engine_parakeet_vtbl;

/* Whisper model name or path -> a heap path (name "large-v3" ->
 * $GS_MODELS_DIR/ggml-large-v3.bin); NULL model -> the default model. */
char *engine_whisper_model_path(const char *model);
/* Parakeet model name or path -> a heap path: $GS_MODELS_DIR/ggml-NAME.bin, or
 * ggml-NAME-f16.bin when only that exists; NULL -> "parakeet-tdt-0.6b-v3". */
char *engine_parakeet_model_path(const char *model);
/* $GS_MODELS_DIR, or /workspace/models. */
const char *engine_models_dir(void);

/* Threads for one slot: the CPUs this process may run on, divided among the slots. */
int engine_threads_per_slot(int slots);
/* 1 when *o->cancel is set. */
int engine_cancel_requested(const engine_opts *o);
/* The empty transcript for input under ENGINE_MIN_SAMPLES: language (may be NULL, "auto"
 * counts as NULL), duration n / rate; progress 0 and 1 reported (NULL with "cancelled" when
 * cb asks to stop). */
transcript *engine_short_transcript(const char *language, size_t n, const engine_opts *o,
                                    engine_progress_fn cb, void *ud, char *err, size_t errlen);

#endif
