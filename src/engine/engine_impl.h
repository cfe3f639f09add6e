/* engine_impl: what engine.c needs from each backend (private to src/engine/).
 *
 * A backend fills an engine_vtbl. open() returns the backend's state (or NULL with err set)
 * and the model path it resolved (heap, in *model_out) and whether it uses a GPU.
 */
#ifndef GS_ENGINE_IMPL_H
#define GS_ENGINE_IMPL_H

#include "engine/engine.h"

struct engine_vtbl {
    const char *name;
    void *(*open)(const char *model, char **model_out, int *uses_gpu, char *err, size_t errlen);
    transcript *(*transcribe)(void *st, const int16_t *pcm, size_t n, const engine_opts *o,
                              engine_progress_fn cb, void *ud, char *err, size_t errlen);
    void (*close)(void *st);
};

/* NULL when pocketsphinx is not built in (a lean worker built without it). */
extern const struct engine_vtbl *const engine_sphinx_vtbl;
/* NULL when whisper.cpp is not built in. */
extern const struct engine_vtbl *const engine_whisper_vtbl;

/* Whisper model name or path -> a heap path (name "large-v3" ->
 * $GS_MODELS_DIR/ggml-large-v3.bin); NULL model -> the default model. */
char *engine_whisper_model_path(const char *model);

#endif
