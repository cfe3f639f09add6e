/* whisper: the whisper.cpp backend, compiled only with HAVE_WHISPER (the Makefile defines it
 * when pkg-config finds `whisper`). Without it this file only defines engine_whisper_vtbl as
 * NULL, and engine_open("whisper") reports that the engine is not built in.
 *
 * Model and slots: one whisper_context (the weights, loaded once) and one whisper_state per
 * slot; each call runs whisper_full_with_state on its slot's state, with about ncpu / slots
 * threads. GPU: the context asks for one; engine_uses_gpu reports whether ggml has the GPU
 * device whisper.cpp picks (device 0 of type GPU/IGPU) and whisper did not log a failure to
 * initialise it.
 *
 * Cancel: whisper's abort callback (checked between the nodes of every encoder and decoder
 * graph, so within a fraction of a second even on a CPU) reads the caller's cancel flag
 * (engine_opts.cancel) and the flag the progress callback sets when the caller's callback
 * asks to stop (progress itself only comes once per 30 s window). The errors whisper logs
 * for an aborted run are logged at debug; engine.c logs the cancel at info.
 *
 * English-only models (whisper_is_multilingual() == 0, the ".en" models): the language is
 * forced to "en"; another explicit language or translate fails with "model NAME is
 * English-only: ...".
 *
 * Word times: DTW (whisper's dtw_token_timestamps) with the alignment-heads preset of the
 * model when it is known from the file's hyper-parameters (tiny..medium, .en or not, and
 * large-v3 / large-v3-turbo by shape; large-v1/-v2 need "v1"/"v2" in the file name); a
 * model of another shape (distilled, ...) gets token timestamps. DTW needs whisper's flash
 * attention off (whisper itself refuses both), so GS_WHISPER_DTW=0 turns DTW off to keep
 * flash attention. A word starts at its first token's DTW time and ends where the next word
 * starts (the last word of a segment: its last token's timestamp, at least its start).
 * Tokens DTW gave no time fall back to token timestamps.
 *
 * VAD: Silero through whisper.cpp's whisper_vad_* API (whisper_full_with_state itself
 * ignores the vad parameters). The model: $GS_VAD_MODEL, else the newest ggml-silero-*.bin
 * beside the whisper model, else in $GS_MODELS_DIR. Mode: env VAD=auto|on|off at open
 * (default auto: on when a model is found; on without one fails to open), overridable per
 * call (engine_opts.vad). The speech regions (detected in 60 s blocks so that a cancel is
 * seen between blocks) are joined with 0.1 s of silence, decoded in one call, and every time
 * is mapped back to the original audio. No speech: an empty transcript.
 */
#include "engine/engine_impl.h"

#include <stddef.h>

#ifndef HAVE_WHISPER

const struct engine_vtbl *const engine_whisper_vtbl = NULL;

#else

#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ggml-backend.h>
#include <whisper.h>

#define VAD_BLOCK_WINDOWS 1875 /* 60 s of 512-sample silero windows per detect call */
#define VAD_GAP_S 0.1          /* silence between joined speech regions */
#define VAD_PROGRESS 0.05      /* share of the progress range the VAD pass reports */

struct wh {
    struct whisper_context *ctx;
    int slots;
    struct whisper_state **state;
    struct whisper_vad_context **vad; /* per slot, NULL without a VAD model */
    char *vad_model;
    enum engine_vad vad_mode;         /* ENGINE_VAD_ON, _OFF or _AUTO */
    int threads;
    int english_only;
    int dtw;                          /* DTW token times are on */
    char *name;                       /* "tiny.en": for messages */
};

/* one call's cancel state, shared with whisper's callbacks (some run on its threads) */
struct wh_run {
    engine_progress_fn cb;
    void *ud;
    const engine_opts *o;
    atomic_int stop;
    double last, base, scale;
};

/* ---------------------------------------------------------------- logging */

static _Thread_local const struct wh_run *tl_run; /* the call running on this thread */
static _Thread_local int tl_gpu_failed;           /* set while opening */

static int run_stopped(const struct wh_run *r)
{
    return atomic_load(&r->stop) != 0 || engine_cancel_requested(r->o);
}

static void wh_log(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (!text) return;
    if (strstr(text, "failed to initialize") && strstr(text, "backend")) tl_gpu_failed = 1;
    if (level != GGML_LOG_LEVEL_ERROR) return;
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (!len) return;
    if (tl_run && run_stopped(tl_run)) LOG_D("whisper", "%.*s", (int)len, text); /* aborted */
    else LOG_E("whisper", "%.*s", (int)len, text);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void set_log(void) { whisper_log_set(wh_log, NULL); }

/* ---------------------------------------------------------------- model facts */

struct hparams {
    int32_t n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
        n_text_state, n_text_head, n_text_layer, n_mels, ftype;
};

/* The ggml header: magic "ggml" then 11 int32 hyper-parameters. */
static int read_hparams(const char *path, struct hparams *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint32_t magic = 0;
    int32_t v[11];
    int ok = fread(&magic, 4, 1, f) == 1 && magic == 0x67676d6cu && fread(v, 4, 11, f) == 11;
    fclose(f);
    if (!ok) return -1;
    *h = (struct hparams){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]};
    return 0;
}

/* The alignment-heads preset for these shapes (name: the file's base name, for large-v1/v2),
 * or WHISPER_AHEADS_NONE when not known. */
static enum whisper_alignment_heads_preset aheads_preset(const struct hparams *h,
                                                         const char *name)
{
    int en = h->n_vocab == 51864; /* the .en vocabulary; multilingual: 51865, v3: 51866 */
    struct {
        int audio_layer, text_layer, state, mels;
        enum whisper_alignment_heads_preset en, multi;
    } tab[] = {
        {4, 4, 384, 80, WHISPER_AHEADS_TINY_EN, WHISPER_AHEADS_TINY},
        {6, 6, 512, 80, WHISPER_AHEADS_BASE_EN, WHISPER_AHEADS_BASE},
        {12, 12, 768, 80, WHISPER_AHEADS_SMALL_EN, WHISPER_AHEADS_SMALL},
        {24, 24, 1024, 80, WHISPER_AHEADS_MEDIUM_EN, WHISPER_AHEADS_MEDIUM},
        {32, 32, 1280, 128, WHISPER_AHEADS_NONE, WHISPER_AHEADS_LARGE_V3},
        {32, 4, 1280, 128, WHISPER_AHEADS_NONE, WHISPER_AHEADS_LARGE_V3_TURBO},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (h->n_audio_layer == tab[i].audio_layer && h->n_text_layer == tab[i].text_layer &&
            h->n_audio_state == tab[i].state && h->n_text_state == tab[i].state &&
            h->n_mels == tab[i].mels)
            return en ? tab[i].en : tab[i].multi;
    if (!en && h->n_audio_layer == 32 && h->n_text_layer == 32 && h->n_audio_state == 1280 &&
        h->n_mels == 80) {
        if (strstr(name, "large-v1")) return WHISPER_AHEADS_LARGE_V1;
        if (strstr(name, "large-v2")) return WHISPER_AHEADS_LARGE_V2;
    }
    return WHISPER_AHEADS_NONE;
}

/* "/m/ggml-tiny.en.bin" -> "tiny.en" */
static char *display_name(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (strncmp(b, "ggml-", 5) == 0) b += 5;
    size_t len = strlen(b);
    if (len > 4 && strcmp(b + len - 4, ".bin") == 0) len -= 4;
    return xstrndup(b, len);
}

static int is_file(const char *p)
{
    struct stat sb;
    return p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The newest (last by name) ggml-silero-*.bin in dir, or NULL. */
static char *find_vad_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *best = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "ggml-silero-", 12) != 0 || len < 16 ||
            strcmp(de->d_name + len - 4, ".bin") != 0)
            continue;
        if (!best || strcmp(de->d_name, best) > 0) {
            free(best);
            best = xstrdup(de->d_name);
        }
    }
    closedir(d);
    if (!best) return NULL;
    char *p = xasprintf("%s/%s", dir, best);
    free(best);
    if (is_file(p)) return p;
    free(p);
    return NULL;
}

/* The VAD model for a whisper model at path, or NULL; -1 with err when GS_VAD_MODEL names a
 * missing file. */
static int find_vad(const char *path, char **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *env = getenv("GS_VAD_MODEL");
    if (env && *env) {
        if (!is_file(env)) {
            snprintf(err, errlen, "VAD model %s (GS_VAD_MODEL) not found", env);
            return -1;
        }
        *out = xstrdup(env);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    *out = find_vad_in(dir);
    free(dir);
    if (!*out) *out = find_vad_in(engine_models_dir());
    return 0;
}

static int parse_vad_env(enum engine_vad *mode, char *err, size_t errlen)
{
    const char *v = getenv("VAD");
    *mode = ENGINE_VAD_AUTO;
    if (!v || !*v || strcmp(v, "auto") == 0) return 0;
    if (strcmp(v, "on") == 0 || strcmp(v, "1") == 0) *mode = ENGINE_VAD_ON;
    else if (strcmp(v, "off") == 0 || strcmp(v, "0") == 0) *mode = ENGINE_VAD_OFF;
    else {
        snprintf(err, errlen, "VAD must be auto, on or off (got '%s')", v);
        return -1;
    }
    return 0;
}

/* The GPU device whisper.cpp selects for gpu_device 0 (its whisper_backend_init_gpu rule). */
static ggml_backend_dev_t gpu_device(void)
{
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) return d;
    }
    return NULL;
}

/* ---------------------------------------------------------------- open / close */

static void wh_close(void *vst)
{
    struct wh *w = vst;
    if (!w) return;
    for (int i = 0; i < w->slots; i++) {
        if (w->state && w->state[i]) whisper_free_state(w->state[i]);
        if (w->vad && w->vad[i]) whisper_vad_free(w->vad[i]);
    }
    free(w->state);
    free(w->vad);
    if (w->ctx) whisper_free(w->ctx);
    free(w->vad_model);
    free(w->name);
    free(w);
}

static void *wh_open(const char *model, int slots, struct engine_info *info, char *err,
                     size_t errlen)
{
    pthread_once(&log_once, set_log);
    char *path = engine_whisper_model_path(model);
    if (!is_file(path)) {
        snprintf(err, errlen, "whisper model %s not found", path);
        free(path);
        return NULL;
    }
    struct wh *w = xcalloc(1, sizeof *w);
    w->name = display_name(path);
    w->slots = slots;
    w->threads = engine_threads_per_slot(slots);
    if (parse_vad_env(&w->vad_mode, err, errlen) != 0 ||
        find_vad(path, &w->vad_model, err, errlen) != 0)
        goto fail;
    if (w->vad_mode == ENGINE_VAD_ON && !w->vad_model) {
        snprintf(err, errlen, "VAD=on but no VAD model: put ggml-silero-*.bin beside the model "
                 "or set GS_VAD_MODEL");
        goto fail;
    }
    if (w->vad_mode == ENGINE_VAD_OFF) SAFE_FREE(w->vad_model);

    struct whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = true;
    struct hparams hp;
    const char *dtw_env = getenv("GS_WHISPER_DTW");
    int dtw_allowed = !(dtw_env && strcmp(dtw_env, "0") == 0);
    enum whisper_alignment_heads_preset preset =
        read_hparams(path, &hp) == 0 ? aheads_preset(&hp, w->name) : WHISPER_AHEADS_NONE;
    if (dtw_allowed && preset != WHISPER_AHEADS_NONE) {
        cp.dtw_token_timestamps = true;
        cp.dtw_aheads_preset = preset;
        cp.flash_attn = false; /* whisper.cpp does not do DTW with flash attention */
    }
    tl_gpu_failed = 0;
    w->ctx = whisper_init_from_file_with_params_no_state(path, cp);
    if (!w->ctx) {
        snprintf(err, errlen, "whisper: cannot load model %s", path);
        goto fail;
    }
    w->english_only = !whisper_is_multilingual(w->ctx);
    w->dtw = cp.dtw_token_timestamps;
    w->state = xcalloc((size_t)slots, sizeof *w->state);
    w->vad = xcalloc((size_t)slots, sizeof *w->vad);
    for (int i = 0; i < slots; i++) {
        w->state[i] = whisper_init_state(w->ctx);
        if (!w->state[i]) {
            snprintf(err, errlen, "whisper: cannot allocate state %d of %d for %s", i + 1, slots,
                     path);
            goto fail;
        }
        if (w->vad_model) {
            struct whisper_vad_context_params vp = whisper_vad_default_context_params();
            vp.n_threads = w->threads;
            vp.use_gpu = false;
            w->vad[i] = whisper_vad_init_from_file_with_params(w->vad_model, vp);
            if (!w->vad[i]) {
                snprintf(err, errlen, "whisper: cannot load the VAD model %s", w->vad_model);
                goto fail;
            }
        }
    }
    ggml_backend_dev_t dev = gpu_device();
    info->uses_gpu = dev != NULL && !tl_gpu_failed;
    snprintf(info->device, sizeof info->device, "%s",
             info->uses_gpu ? ggml_backend_dev_name(dev) : "CPU");
    info->word_timing = cp.dtw_token_timestamps ? "dtw" : "tokens";
    info->model = path;
    LOG_I("whisper", "%s: %s%s, VAD %s%s, %d thread%s per slot", w->name,
          w->english_only ? "English-only" : "multilingual",
          cp.dtw_token_timestamps ? ", DTW" : "",
          w->vad_model ? (w->vad_mode == ENGINE_VAD_ON ? "on: " : "auto: ") : "off",
          w->vad_model ? w->vad_model : "", w->threads, w->threads == 1 ? "" : "s");
    return w;
fail:
    free(path);
    wh_close(w);
    return NULL;
}

/* ---------------------------------------------------------------- callbacks */

static void report(struct wh_run *r, double f)
{
    if (!r->cb || run_stopped(r)) return;
    f = r->base + r->scale * f;
    if (f < r->last) f = r->last;
    if (f > 1) f = 1;
    r->last = f;
    if (r->cb(r->ud, f)) atomic_store(&r->stop, 1);
}

static void on_progress(struct whisper_context *ctx, struct whisper_state *state, int progress,
                        void *user_data)
{
    (void)ctx;
    (void)state;
    report(user_data, progress / 100.0);
}

static bool on_abort(void *user_data) { return run_stopped(user_data); }

static bool on_encoder_begin(struct whisper_context *ctx, struct whisper_state *state,
                             void *user_data)
{
    (void)ctx;
    (void)state;
    return !run_stopped(user_data);
}

/* ---------------------------------------------------------------- VAD */

/* speech regions: [a, b) in samples of the original audio, placed at c in the joined audio */
struct region { size_t a, b, c; };

/* Speech regions of f (heap in *out; the count, 0 = no speech), -1 on failure or cancel. */
static long vad_regions(struct whisper_vad_context *v, const float *f, size_t n,
                        struct wh_run *r, struct region **out, char *err, size_t errlen)
{
    struct whisper_vad_params vp = whisper_vad_default_params();
    const size_t block = (size_t)VAD_BLOCK_WINDOWS * 512;
    struct region *rg = NULL;
    size_t nr = 0, cap = 0;
    const size_t join = (size_t)(ENGINE_SAMPLE_RATE * 2 * vp.speech_pad_ms / 1000);
    whisper_vad_reset_state(v);
    for (size_t off = 0; off < n; off += block) {
        if (run_stopped(r)) goto fail;
        size_t len = n - off < block ? n - off : block;
        if (!whisper_vad_detect_speech_no_reset(v, f + off, (int)len)) {
            snprintf(err, errlen, "whisper: VAD failed");
            goto fail;
        }
        struct whisper_vad_segments *s = whisper_vad_segments_from_probs(v, vp);
        if (!s) {
            snprintf(err, errlen, "whisper: VAD failed");
            goto fail;
        }
        for (int i = 0; i < whisper_vad_segments_n_segments(s); i++) {
            double t0 = whisper_vad_segments_get_segment_t0(s, i) / 100.0;
            double t1 = whisper_vad_segments_get_segment_t1(s, i) / 100.0;
            size_t a = off + (size_t)fmax(0, t0 * ENGINE_SAMPLE_RATE);
            size_t b = off + (size_t)fmax(0, t1 * ENGINE_SAMPLE_RATE);
            if (b > off + len) b = off + len;
            if (b <= a) continue;
            if (nr && a <= rg[nr - 1].b + join) { /* touching (or split at a block edge) */
                if (b > rg[nr - 1].b) rg[nr - 1].b = b;
                continue;
            }
            if (nr == cap) {
                cap = cap ? cap * 2 : 16;
                rg = xrealloc(rg, cap * sizeof *rg);
            }
            rg[nr++] = (struct region){a, b, 0};
        }
        whisper_vad_free_segments(s);
        report(r, (double)(off + len) / (double)n);
    }
    *out = rg;
    return (long)nr;
fail:
    free(rg);
    return -1;
}

/* Join the regions with VAD_GAP_S of silence (sets each c); heap, length in *nj. */
static float *vad_join(const float *f, struct region *rg, size_t nr, size_t *nj)
{
    const size_t gap = (size_t)(VAD_GAP_S * ENGINE_SAMPLE_RATE);
    size_t total = 0;
    for (size_t i = 0; i < nr; i++) total += rg[i].b - rg[i].a + (i ? gap : 0);
    float *j = xcalloc(total ? total : 1, sizeof *j);
    size_t at = 0;
    for (size_t i = 0; i < nr; i++) {
        if (i) at += gap;
        rg[i].c = at;
        memcpy(j + at, f + rg[i].a, (rg[i].b - rg[i].a) * sizeof *f);
        at += rg[i].b - rg[i].a;
    }
    *nj = total;
    return j;
}

/* A time in the joined audio -> the original audio (a time in a gap: its region's end). */
static double vad_map(const struct region *rg, size_t nr, double t)
{
    if (!nr) return t;
    double s = t * ENGINE_SAMPLE_RATE;
    size_t i = 0;
    while (i + 1 < nr && (double)rg[i + 1].c <= s) i++;
    double in = s - (double)rg[i].c;
    double len = (double)(rg[i].b - rg[i].a);
    if (in < 0) in = 0;
    if (in > len) in = len;
    return ((double)rg[i].a + in) / ENGINE_SAMPLE_RATE;
}

/* ---------------------------------------------------------------- results */

struct tok { double t0, t1, dtw, p; const char *text; };

/* Words of segment i: a token whose text starts with a space begins a new word. */
static void add_words(struct whisper_context *ctx, struct whisper_state *st, int i,
                      transcript_segment *seg, int dtw, const struct region *rg, size_t nr)
{
    const whisper_token eot = whisper_token_eot(ctx);
    const int nt = whisper_full_n_tokens_from_state(st, i);
    struct tok *tk = xcalloc((size_t)nt + 1, sizeof *tk);
    int m = 0;
    for (int k = 0; k < nt; k++) {
        whisper_token_data d = whisper_full_get_token_data_from_state(st, i, k);
        if (d.id >= eot) continue; /* special and timestamp tokens */
        const char *txt = whisper_full_get_token_text_from_state(ctx, st, i, k);
        if (!txt) continue;
        tk[m++] = (struct tok){(double)d.t0 / 100.0, (double)d.t1 / 100.0,
                               dtw && d.t_dtw >= 0 ? (double)d.t_dtw / 100.0 : -1, d.p, txt};
    }
    buf word;
    buf_init(&word, 0);
    for (int k = 0; k < m;) {
        int e = k + 1; /* the word is tokens [k, e) */
        while (e < m && tk[e].text[0] != ' ') e++;
        word.len = 0;
        double psum = 0;
        for (int q = k; q < e; q++) {
            const char *p = q == k ? tk[q].text + strspn(tk[q].text, " ") : tk[q].text;
            if (buf_append(&word, p, strlen(p)) != 0) abort();
            psum += tk[q].p;
        }
        double ws = tk[k].dtw >= 0 ? tk[k].dtw : tk[k].t0;
        double we = tk[e - 1].t1;
        if (tk[k].dtw >= 0 && e < m && tk[e].dtw >= 0) we = tk[e].dtw;
        if (we < ws) we = ws;
        if (word.len)
            segment_add_word(seg, vad_map(rg, nr, ws), vad_map(rg, nr, we), word.data,
                             psum / (e - k));
        k = e;
    }
    buf_release(&word);
    free(tk);
}

static transcript *collect(struct wh *w, struct whisper_state *st, const char *lang, size_t n,
                           const engine_opts *o, float temperature, int dtw,
                           const struct region *rg, size_t nr)
{
    const char *detected = whisper_lang_str(whisper_full_lang_id_from_state(st));
    if (strcmp(lang, "auto") != 0) detected = lang;
    transcript *t = transcript_new(detected, (double)n / ENGINE_SAMPLE_RATE);
    t->translated = o->translate != 0;
    t->temperature = temperature;
    const whisper_token eot = whisper_token_eot(w->ctx);
    const int ns = whisper_full_n_segments_from_state(st);
    for (int i = 0; i < ns; i++) {
        double t0 = (double)whisper_full_get_segment_t0_from_state(st, i) / 100.0;
        double t1 = (double)whisper_full_get_segment_t1_from_state(st, i) / 100.0;
        const char *text = whisper_full_get_segment_text_from_state(st, i);
        transcript_segment *seg = transcript_add_segment(t, vad_map(rg, nr, t0),
                                                         vad_map(rg, nr, t1), text ? text : "");
        seg->no_speech_prob = whisper_full_get_segment_no_speech_prob_from_state(st, i);
        double lp = 0, pp = 0;
        int cnt = 0;
        const int nt = whisper_full_n_tokens_from_state(st, i);
        for (int k = 0; k < nt; k++) {
            whisper_token_data d = whisper_full_get_token_data_from_state(st, i, k);
            if (d.id >= eot) continue;
            lp += d.plog;
            pp += d.p;
            cnt++;
        }
        if (cnt) {
            seg->avg_logprob = lp / cnt;
            seg->confidence = pp / cnt;
        }
        if (o->word_timestamps) add_words(w->ctx, st, i, seg, dtw, rg, nr);
    }
    return t;
}

/* ---------------------------------------------------------------- transcribe */

static transcript *wh_transcribe(void *vst, int slot, const int16_t *pcm, size_t n,
                                 const engine_opts *o, engine_progress_fn cb, void *ud,
                                 char *err, size_t errlen)
{
    struct wh *w = vst;
    struct whisper_state *st = w->state[slot];
    const char *lang = o->language;
    if (!lang || !*lang || strcmp(lang, "auto") == 0) lang = "auto";
    else if (whisper_lang_id(lang) < 0) {
        snprintf(err, errlen, "unknown language '%s'", lang);
        return NULL;
    }
    if (w->english_only) {
        if (o->translate) {
            snprintf(err, errlen, "model %s is English-only: translate is not supported",
                     w->name);
            return NULL;
        }
        if (strcmp(lang, "auto") != 0 && strcmp(lang, "en") != 0) {
            snprintf(err, errlen, "model %s is English-only: language '%s' is not supported",
                     w->name, lang);
            return NULL;
        }
        lang = "en";
    }
    enum engine_vad vm = o->vad == ENGINE_VAD_DEFAULT ? w->vad_mode : o->vad;
    if (vm == ENGINE_VAD_ON && !w->vad_model) {
        snprintf(err, errlen, "VAD requested but no VAD model: put ggml-silero-*.bin beside the "
                 "model or set GS_VAD_MODEL");
        return NULL;
    }
    int vad = vm != ENGINE_VAD_OFF && w->vad_model;
    if (n < ENGINE_MIN_SAMPLES)
        return engine_short_transcript(lang, n, o, cb, ud, err, errlen);
    if (n > (size_t)INT_MAX) {
        snprintf(err, errlen, "audio too long for one whisper call");
        return NULL;
    }
    struct wh_run run = {.cb = cb, .ud = ud, .o = o, .last = 0, .base = 0, .scale = 1};
    atomic_init(&run.stop, 0);
    if (cb && cb(ud, 0.0)) {
        snprintf(err, errlen, "cancelled");
        return NULL;
    }
    float *f = xmalloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)pcm[i] / 32768.0f;

    struct region *rg = NULL;
    size_t nr = 0, nf = n;
    transcript *t = NULL;
    tl_run = &run;
    if (vad) {
        run.scale = VAD_PROGRESS;
        long k = vad_regions(w->vad[slot], f, n, &run, &rg, err, errlen);
        if (k < 0) goto out;
        nr = (size_t)k;
        if (!nr) { /* no speech */
            t = transcript_new(strcmp(lang, "auto") ? lang : NULL, (double)n / ENGINE_SAMPLE_RATE);
            t->translated = o->translate != 0;
            report(&run, 1.0);
            goto out;
        }
        float *j = vad_join(f, rg, nr, &nf);
        free(f);
        f = j;
        run.base = VAD_PROGRESS;
        run.scale = 1 - VAD_PROGRESS;
        if (nf < ENGINE_MIN_SAMPLES) { /* whisper ignores input under 100 ms */
            t = transcript_new(strcmp(lang, "auto") ? lang : NULL, (double)n / ENGINE_SAMPLE_RATE);
            t->translated = o->translate != 0;
            report(&run, 1.0);
            goto out;
        }
    }

    int beam = o->beam_size > 1;
    struct whisper_full_params p =
        whisper_full_default_params(beam ? WHISPER_SAMPLING_BEAM_SEARCH : WHISPER_SAMPLING_GREEDY);
    if (beam) p.beam_search.beam_size = o->beam_size;
    p.n_threads = w->threads;
    p.language = lang;
    p.detect_language = false;
    p.translate = o->translate != 0;
    p.initial_prompt = (o->prompt && *o->prompt) ? o->prompt : NULL;
    if (isfinite(o->temperature) && o->temperature > 0) p.temperature = (float)o->temperature;
    p.token_timestamps = o->word_timestamps != 0;
    p.print_progress = false;
    p.print_realtime = false;
    p.print_timestamps = false;
    p.print_special = false;
    p.progress_callback = on_progress;
    p.progress_callback_user_data = &run;
    p.abort_callback = on_abort;
    p.abort_callback_user_data = &run;
    p.encoder_begin_callback = on_encoder_begin;
    p.encoder_begin_callback_user_data = &run;

    int rc = whisper_full_with_state(w->ctx, st, p, f, (int)nf);
    if (run_stopped(&run)) {
        snprintf(err, errlen, "cancelled");
        goto out;
    }
    if (rc != 0) {
        snprintf(err, errlen, "whisper: decoding failed (%d)", rc);
        goto out;
    }
    t = collect(w, st, lang, n, o, p.temperature, w->dtw, rg, nr);
    if (cb && cb(ud, 1.0)) {
        snprintf(err, errlen, "cancelled");
        transcript_free(t);
        t = NULL;
    }
out:
    tl_run = NULL;
    free(f);
    free(rg);
    return t;
}

static const struct engine_vtbl whisper_vtbl = {
    .name = "whisper",
    .open = wh_open,
    .transcribe = wh_transcribe,
    .close = wh_close,
};

const struct engine_vtbl *const engine_whisper_vtbl = &whisper_vtbl;

#endif /* HAVE_WHISPER */
