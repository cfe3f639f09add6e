/* whisper: the whisper.cpp backend, compiled only with HAVE_WHISPER (the Makefile defines it
 * when pkg-config finds `whisper`). Without it this file only defines engine_whisper_vtbl as
 * NULL, and engine_open("whisper") reports that the engine is not built in.
 *
 * One whisper_context per engine (so one engine per thread, as engine.h requires). The
 * progress callback is driven by whisper's progress_callback (percent); a nonzero return
 * sets a flag that abort_callback and encoder_begin_callback report to whisper, which then
 * stops at its next check. Word times come from whisper's token timestamps (units of 10 ms):
 * a token whose text starts with a space begins a new word.
 */
#include "engine/engine_impl.h"

#include <stddef.h>

#ifndef HAVE_WHISPER

const struct engine_vtbl *const engine_whisper_vtbl = NULL;

#else

#include "core/log.h"
#include "core/util.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <whisper.h>

struct wh {
    struct whisper_context *ctx;
};

struct wh_run {
    engine_progress_fn cb;
    void *ud;
    volatile int cancelled;
    double last;
};

static void wh_log(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (level != GGML_LOG_LEVEL_ERROR || !text) return;
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (len) LOG_E("whisper", "%.*s", (int)len, text);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void set_log(void) { whisper_log_set(wh_log, NULL); }

static int nvidia_present(void)
{
    struct stat sb;
    return access("/dev/nvidia0", F_OK) == 0 ||
           (stat("/proc/driver/nvidia/gpus", &sb) == 0 && S_ISDIR(sb.st_mode));
}

static void wh_close(void *vst)
{
    struct wh *w = vst;
    if (!w) return;
    if (w->ctx) whisper_free(w->ctx);
    free(w);
}

static void *wh_open(const char *model, char **model_out, int *uses_gpu, char *err,
                     size_t errlen)
{
    pthread_once(&log_once, set_log);
    char *path = engine_whisper_model_path(model);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "whisper model %s not found", path);
        free(path);
        return NULL;
    }
    struct whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = true;
    struct whisper_context *ctx = whisper_init_from_file_with_params(path, cp);
    if (!ctx) {
        snprintf(err, errlen, "whisper: cannot load model %s", path);
        free(path);
        return NULL;
    }
    struct wh *w = xcalloc(1, sizeof *w);
    w->ctx = ctx;
    *model_out = path;
    *uses_gpu = nvidia_present();
    return w;
}

static void on_progress(struct whisper_context *ctx, struct whisper_state *state, int progress,
                        void *user_data)
{
    (void)ctx;
    (void)state;
    struct wh_run *r = user_data;
    if (!r->cb || r->cancelled) return;
    double f = progress / 100.0;
    if (f < r->last) f = r->last;
    if (f > 1) f = 1;
    r->last = f;
    if (r->cb(r->ud, f)) r->cancelled = 1;
}

static bool on_abort(void *user_data)
{
    struct wh_run *r = user_data;
    return r->cancelled != 0;
}

static bool on_encoder_begin(struct whisper_context *ctx, struct whisper_state *state,
                             void *user_data)
{
    (void)ctx;
    (void)state;
    struct wh_run *r = user_data;
    return r->cancelled == 0;
}

static int n_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 8) n = 8;
    return (int)n;
}

/* Words of segment i from its token timestamps. */
static void add_words(struct whisper_context *ctx, int i, transcript_segment *seg)
{
    const whisper_token eot = whisper_token_eot(ctx);
    const int nt = whisper_full_n_tokens(ctx, i);
    buf word;
    buf_init(&word, 0);
    double ws = 0, we = 0, psum = 0;
    int np = 0;
    for (int k = 0; k <= nt; k++) {
        whisper_token_data d = {0};
        const char *txt = NULL;
        if (k < nt) {
            d = whisper_full_get_token_data(ctx, i, k);
            if (d.id >= eot) continue; /* special and timestamp tokens */
            txt = whisper_full_get_token_text(ctx, i, k);
            if (!txt) continue;
        }
        /* flush at the end, or before a token that starts a new word */
        if (k == nt || (txt[0] == ' ' && word.len)) {
            if (word.len) {
                segment_add_word(seg, ws, we, word.data, np ? psum / np : -1);
                word.len = 0;
                word.data[0] = '\0';
            }
            if (k == nt) break;
        }
        if (!word.len) {
            ws = (double)d.t0 / 100.0;
            psum = 0;
            np = 0;
        }
        we = (double)d.t1 / 100.0;
        psum += d.p;
        np++;
        const char *p = word.len ? txt : txt + strspn(txt, " ");
        if (buf_append(&word, p, strlen(p)) != 0) abort();
    }
    buf_release(&word);
}

static transcript *wh_transcribe(void *vst, const int16_t *pcm, size_t n, const engine_opts *o,
                                 engine_progress_fn cb, void *ud, char *err, size_t errlen)
{
    struct wh *w = vst;
    const char *lang = o->language;
    if (!lang || !*lang || strcmp(lang, "auto") == 0) lang = "auto";
    else if (whisper_lang_id(lang) < 0) {
        snprintf(err, errlen, "unknown language '%s'", lang);
        return NULL;
    }
    if (n > (size_t)INT_MAX) {
        snprintf(err, errlen, "audio too long for one whisper call");
        return NULL;
    }
    struct wh_run run = {.cb = cb, .ud = ud, .cancelled = 0, .last = 0};
    if (cb && cb(ud, 0.0)) {
        snprintf(err, errlen, "cancelled");
        return NULL;
    }
    float *f = xmalloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)pcm[i] / 32768.0f;

    int beam = o->beam_size > 1;
    struct whisper_full_params p =
        whisper_full_default_params(beam ? WHISPER_SAMPLING_BEAM_SEARCH : WHISPER_SAMPLING_GREEDY);
    if (beam) p.beam_search.beam_size = o->beam_size;
    p.n_threads = n_threads();
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

    int rc = whisper_full(w->ctx, p, f, (int)n);
    free(f);
    if (run.cancelled) {
        snprintf(err, errlen, "cancelled");
        return NULL;
    }
    if (rc != 0) {
        snprintf(err, errlen, "whisper: decoding failed (%d)", rc);
        return NULL;
    }
    const char *detected = whisper_lang_str(whisper_full_lang_id(w->ctx));
    transcript *t = transcript_new(detected ? detected : (strcmp(lang, "auto") ? lang : NULL),
                                   (double)n / ENGINE_SAMPLE_RATE);
    t->translated = o->translate != 0;
    t->temperature = p.temperature;
    const whisper_token eot = whisper_token_eot(w->ctx);
    const int ns = whisper_full_n_segments(w->ctx);
    for (int i = 0; i < ns; i++) {
        double t0 = (double)whisper_full_get_segment_t0(w->ctx, i) / 100.0;
        double t1 = (double)whisper_full_get_segment_t1(w->ctx, i) / 100.0;
        const char *text = whisper_full_get_segment_text(w->ctx, i);
        transcript_segment *seg = transcript_add_segment(t, t0, t1, text ? text : "");
        seg->no_speech_prob = whisper_full_get_segment_no_speech_prob(w->ctx, i);
        double lp = 0, pp = 0;
        int cnt = 0;
        const int nt = whisper_full_n_tokens(w->ctx, i);
        for (int k = 0; k < nt; k++) {
            whisper_token_data d = whisper_full_get_token_data(w->ctx, i, k);
            if (d.id >= eot) continue;
            lp += d.plog;
            pp += d.p;
            cnt++;
        }
        if (cnt) {
            seg->avg_logprob = lp / cnt;
            seg->confidence = pp / cnt;
        }
        if (o->word_timestamps) add_words(w->ctx, i, seg);
    }
    if (cb && cb(ud, 1.0)) {
        snprintf(err, errlen, "cancelled");
        transcript_free(t);
        return NULL;
    }
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
