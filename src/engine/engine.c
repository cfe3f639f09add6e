/* engine: the backend table, "auto" selection, the slot pool and the checks every backend
 * shares (beam size, cancel while waiting, times clamped to the audio). See engine.h. */
#define _GNU_SOURCE
#include "engine/engine.h"
#include "engine/engine_impl.h"

#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODELS_DIR "/workspace/models"
#define DEFAULT_WHISPER_MODEL "large-v3"
#define DEFAULT_PARAKEET_MODEL "parakeet-tdt-0.6b-v3"
#define SLOT_POLL_NS 50000000L /* a caller waiting for a slot rechecks its cancel flag */

struct engine {
    const struct engine_vtbl *vt;
    void *st;
    struct engine_info info;
    int slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char busy[ENGINE_MAX_SLOTS];
};

int engine_whisper_built_in(void) { return engine_whisper_vtbl != NULL; }
int engine_sphinx_built_in(void) { return engine_sphinx_vtbl != NULL; }

const char *engine_features(char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", engine_sphinx_vtbl ? "sphinx " : "",
             engine_whisper_vtbl ? "whisper " : "", engine_parakeet_vtbl ? "parakeet " : "");
    size_t len = strlen(buf);
    if (len) buf[len - 1] = '\0';
    return buf;
}

int engine_parakeet_built_in(void) { return engine_parakeet_vtbl != NULL; }
int engine_beam_size_ok(int beam_size) { return beam_size >= 0 && beam_size <= ENGINE_MAX_BEAM; }

int engine_cancel_requested(const engine_opts *o)
{
    return o && o->cancel && atomic_load(o->cancel) != 0;
}

int engine_threads_per_slot(int slots)
{
    long n = 0;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (slots > 1) n /= slots;
    return n < 1 ? 1 : (int)n;
}

const char *engine_models_dir(void)
{
    const char *dir = getenv("GS_MODELS_DIR");
    return dir && *dir ? dir : DEFAULT_MODELS_DIR;
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

static int is_path(const char *model)
{
    size_t len = strlen(model);
    return strchr(model, '/') || (len > 4 && strcmp(model + len - 4, ".bin") == 0) ||
           !name_ok(model);
}

char *engine_whisper_model_path(const char *model)
{
    if (!model || !*model) model = DEFAULT_WHISPER_MODEL;
    if (is_path(model)) return xstrdup(model);
    return xasprintf("%s/ggml-%s.bin", engine_models_dir(), model);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

char *engine_parakeet_model_path(const char *model)
{
    if (!model || !*model) model = DEFAULT_PARAKEET_MODEL;
    if (is_path(model)) return xstrdup(model);
    char *p = xasprintf("%s/ggml-%s.bin", engine_models_dir(), model);
    if (file_exists(p)) return p;
    char *f16 = xasprintf("%s/ggml-%s-f16.bin", engine_models_dir(), model);
    if (file_exists(f16)) {
        free(p);
        return f16;
    }
    free(f16);
    return p;
}

/* A model that names parakeet: "parakeet-...", or a path whose file is (ggml-)parakeet-... */
static int names_parakeet(const char *model)
{
    if (!model) return 0;
    const char *b = strrchr(model, '/');
    b = b ? b + 1 : model;
    if (strncmp(b, "ggml-", 5) == 0) b += 5;
    return strncmp(b, "parakeet", 8) == 0;
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
    return engine_open_slots(name, model, 1, err, errlen);
}

engine *engine_open_slots(const char *name, const char *model, int slots, char *err,
                          size_t errlen)
{
    const struct engine_vtbl *vt = NULL;
    if (!name || !*name) name = "auto";
    if (slots < 1 || slots > ENGINE_MAX_SLOTS) {
        snprintf(err, errlen, "engine slots must be 1..%d (got %d)", ENGINE_MAX_SLOTS, slots);
        return NULL;
    }
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
    } else if (strcmp(name, "parakeet") == 0) {
        if (!engine_parakeet_vtbl) {
            snprintf(err, errlen, "parakeet engine not built in (whisper.cpp's libparakeet "
                     "not installed)");
            return NULL;
        }
        vt = engine_parakeet_vtbl;
    } else if (strcmp(name, "auto") == 0) {
        if (names_parakeet(model)) {
            if (engine_parakeet_vtbl) {
                char *path = engine_parakeet_model_path(model);
                if (file_exists(path)) vt = engine_parakeet_vtbl;
                else LOG_I("engine", "auto: parakeet model %s not found, using pocketsphinx", path);
                free(path);
            } else {
                LOG_I("engine", "auto: parakeet not built in, using pocketsphinx");
            }
        } else if (engine_whisper_vtbl && nvidia_present()) {
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
        snprintf(err, errlen, "unknown engine '%s' (expected sphinx, whisper, parakeet or auto)",
                 name);
        return NULL;
    }
    struct engine_info info = {.word_timing = "native"};
    snprintf(info.device, sizeof info.device, "CPU");
    void *st = vt->open(model, slots, &info, err, errlen);
    if (!st) {
        free(info.model);
        return NULL;
    }
    engine *e = xcalloc(1, sizeof *e);
    e->vt = vt;
    e->st = st;
    e->info = info;
    if (!e->info.model) e->info.model = xstrdup(model ? model : "");
    e->slots = slots;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    LOG_D("engine", "%s: %s on %s, %d slot%s, word times: %s", vt->name, e->info.model,
          e->info.device, slots, slots == 1 ? "" : "s", e->info.word_timing);
    return e;
}

const char *engine_name(const engine *e) { return e->vt->name; }
const char *engine_model(const engine *e) { return e->info.model; }
int engine_uses_gpu(const engine *e) { return e->info.uses_gpu; }
int engine_slots(const engine *e) { return e->slots; }
const char *engine_device(const engine *e) { return e->info.device; }
const char *engine_word_timing(const engine *e) { return e->info.word_timing; }

/* A free slot index, or -1 when the caller's cancel flag was set while it waited. */
static int slot_acquire(engine *e, const engine_opts *o)
{
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (int i = 0; i < e->slots; i++)
            if (!e->busy[i]) {
                e->busy[i] = 1;
                pthread_mutex_unlock(&e->mu);
                return i;
            }
        if (engine_cancel_requested(o)) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SLOT_POLL_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    }
    pthread_mutex_unlock(&e->mu);
    return -1;
}

static void slot_release(engine *e, int i)
{
    pthread_mutex_lock(&e->mu);
    e->busy[i] = 0;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static double clampd(double v, double hi) { return !(v > 0) ? 0 : v > hi ? hi : v; }

/* Every time into [0, dur]; the duration is the audio's. */
static void clamp_times(transcript *t, double dur)
{
    t->duration = dur;
    for (size_t i = 0; i < t->n_segments; i++) {
        transcript_segment *s = &t->segments[i];
        s->start = clampd(s->start, dur);
        s->end = clampd(s->end, dur);
        for (size_t k = 0; k < s->n_words; k++) {
            s->words[k].start = clampd(s->words[k].start, dur);
            s->words[k].end = clampd(s->words[k].end, dur);
        }
    }
}

transcript *engine_short_transcript(const char *language, size_t n, const engine_opts *o,
                                    engine_progress_fn cb, void *ud, char *err, size_t errlen)
{
    if (cb && cb(ud, 0.0)) {
        snprintf(err, errlen, "cancelled");
        return NULL;
    }
    if (language && (!*language || strcmp(language, "auto") == 0)) language = NULL;
    transcript *t = transcript_new(language, (double)n / ENGINE_SAMPLE_RATE);
    t->translated = o->translate != 0;
    t->temperature = 0;
    if (cb && cb(ud, 1.0)) {
        snprintf(err, errlen, "cancelled");
        transcript_free(t);
        return NULL;
    }
    return t;
}

transcript *engine_transcribe(engine *e, const int16_t *pcm, size_t n, const engine_opts *o,
                              engine_progress_fn cb, void *ud, char *err, size_t errlen)
{
    static const engine_opts defaults = {0};
    if (errlen) err[0] = '\0';
    if (!e) {
        snprintf(err, errlen, "no engine");
        return NULL;
    }
    if (!pcm && n) {
        snprintf(err, errlen, "no audio");
        return NULL;
    }
    if (!o) o = &defaults;
    if (!engine_beam_size_ok(o->beam_size)) {
        snprintf(err, errlen, "beam_size must be from 1 to %d (got %d)", ENGINE_MAX_BEAM,
                 o->beam_size);
        return NULL;
    }
    double t0 = now_mono();
    int slot = engine_cancel_requested(o) ? -1 : slot_acquire(e, o);
    transcript *t = NULL;
    if (slot >= 0) {
        t = e->vt->transcribe(e->st, slot, pcm, n, o, cb, ud, err, errlen);
        slot_release(e, slot);
    }
    if (!t && (slot < 0 || engine_cancel_requested(o))) snprintf(err, errlen, "cancelled");
    if (!t && strcmp(err, "cancelled") == 0) {
        LOG_I("engine", "%s: cancelled after %.3f s", e->vt->name, now_mono() - t0);
        return NULL;
    }
    if (!t) {
        if (!err[0]) snprintf(err, errlen, "%s: transcription failed", e->vt->name);
        return NULL;
    }
    clamp_times(t, (double)n / ENGINE_SAMPLE_RATE);
    return t;
}

void engine_close(engine *e)
{
    if (!e) return;
    e->vt->close(e->st);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->info.model);
    free(e);
}
