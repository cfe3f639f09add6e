#include "engine/engine.h"
#include "engine/engine_impl.h"

#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MODELS_DIR "/workspace/models"
#define DEFAULT_WHISPER_MODEL "large-v3"

struct engine {
    const struct engine_vtbl *vt;
    void *st;
    char *model;
    int uses_gpu;
};

int engine_whisper_built_in(void) { return engine_whisper_vtbl != NULL; }
int engine_sphinx_built_in(void) { return engine_sphinx_vtbl != NULL; }

const char *engine_features(char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", engine_sphinx_vtbl ? "sphinx" : "",
             engine_sphinx_vtbl && engine_whisper_vtbl ? " " : "", engine_whisper_vtbl ? "whisper" : "");
    return buf;
}

static int name_ok(const char *s)
{
    if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

char *engine_whisper_model_path(const char *model)
{
    if (!model || !*model) model = DEFAULT_WHISPER_MODEL;
    size_t len = strlen(model);
    if (strchr(model, '/') || (len > 4 && strcmp(model + len - 4, ".bin") == 0) ||
        !name_ok(model))
        return xstrdup(model);
    const char *dir = getenv("GS_MODELS_DIR");
    if (!dir || !*dir) dir = DEFAULT_MODELS_DIR;
    return xasprintf("%s/ggml-%s.bin", dir, model);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int dir_exists(const char *p)
{
    struct stat sb;
    return p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int nvidia_present(void)
{
    return access("/dev/nvidia0", F_OK) == 0 || dir_exists("/proc/driver/nvidia/gpus");
}

engine *engine_open(const char *name, const char *model, char *err, size_t errlen)
{
    const struct engine_vtbl *vt = NULL;
    if (!name || !*name) name = "auto";
    if (strcmp(name, "sphinx") == 0 || strcmp(name, "pocketsphinx") == 0) {
        if (!engine_sphinx_vtbl) {
            snprintf(err, errlen, "pocketsphinx engine not built in (libpocketsphinx-dev was "
                     "not installed when this program was built)");
            return NULL;
        }
        vt = engine_sphinx_vtbl;
        /* a bare name is a whisper model name (WHISPER_MODEL), not a sphinx model path */
        if (model && !strchr(model, '/')) model = NULL;
    } else if (strcmp(name, "whisper") == 0) {
        if (!engine_whisper_vtbl) {
            snprintf(err, errlen, "whisper engine not built in (whisper.cpp not installed)");
            return NULL;
        }
        vt = engine_whisper_vtbl;
    } else if (strcmp(name, "auto") == 0) {
        if (engine_whisper_vtbl && nvidia_present()) {
            char *path = engine_whisper_model_path(model);
            if (file_exists(path)) vt = engine_whisper_vtbl;
            else LOG_I("engine", "auto: whisper model %s not found, using pocketsphinx", path);
            free(path);
        }
        if (!vt && !engine_sphinx_vtbl) {
            snprintf(err, errlen, "auto: no engine available (whisper needs an NVIDIA GPU and "
                     "its model; pocketsphinx is not built in)");
            return NULL;
        }
        if (!vt) {
            vt = engine_sphinx_vtbl;
            if (!dir_exists(model)) model = NULL; /* a whisper model name means nothing here */
        }
    } else {
        snprintf(err, errlen, "unknown engine '%s' (expected sphinx, whisper or auto)", name);
        return NULL;
    }
    char *model_out = NULL;
    int gpu = 0;
    void *st = vt->open(model, &model_out, &gpu, err, errlen);
    if (!st) {
        free(model_out);
        return NULL;
    }
    engine *e = xcalloc(1, sizeof *e);
    e->vt = vt;
    e->st = st;
    e->model = model_out ? model_out : xstrdup(model ? model : "");
    e->uses_gpu = gpu;
    return e;
}

const char *engine_name(const engine *e) { return e->vt->name; }
const char *engine_model(const engine *e) { return e->model; }
int engine_uses_gpu(const engine *e) { return e->uses_gpu; }

transcript *engine_transcribe(engine *e, const int16_t *pcm, size_t n, const engine_opts *o,
                              engine_progress_fn cb, void *ud, char *err, size_t errlen)
{
    static const engine_opts defaults = {0};
    if (!e) {
        snprintf(err, errlen, "no engine");
        return NULL;
    }
    if (!pcm && n) {
        snprintf(err, errlen, "no audio");
        return NULL;
    }
    if (errlen) err[0] = '\0';
    return e->vt->transcribe(e->st, pcm, n, o ? o : &defaults, cb, ud, err, errlen);
}

void engine_close(engine *e)
{
    if (!e) return;
    e->vt->close(e->st);
    free(e->model);
    free(e);
}
