/* parakeet: NVIDIA Parakeet TDT through whisper.cpp's libparakeet (include/parakeet.h),
 * compiled only with HAVE_PARAKEET (the Makefile defines it when pkg-config finds
 * `parakeet`). Without it this file only defines engine_parakeet_vtbl as NULL.
 *
 * Model and slots: one parakeet_context (weights loaded once, no default state) and one
 * parakeet_state per slot (parakeet_full_with_state), about ncpu / slots threads each.
 * GPU as in whisper.c: the ggml GPU device libparakeet picks, unless it logged a failure.
 *
 * Chunks: libparakeet encodes a whole call at once (memory grows with the square of its
 * length, and it reports progress only at its start and end), so the audio is cut into
 * chunks of at most CHUNK_MAX_S (and the model's audio context), each cut at the quietest
 * 100 ms in the chunk's last third; each chunk is one call (no_context), progress is
 * reported after each, and cancel is checked between chunks and inside the compute graphs
 * (abort callback). Times: token t0/t1 are 10 ms frames from the chunk's start.
 *
 * Words: a token flagged is_word_start begins a word (punctuation joins the word before);
 * a word spans its first token's t0 to its last token's t1. Segments end after a word that
 * ends a sentence (. ? !) and at chunk ends. The model detects the language itself and
 * does not report it: the transcript's language is the caller's, else NULL. translate is
 * refused; prompt and beam_size are ignored (greedy TDT decoding).
 */
#include "engine/engine_impl.h"

#include <stddef.h>

#ifndef HAVE_PARAKEET

const struct engine_vtbl *const engine_parakeet_vtbl = NULL;

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

#include <ggml-backend.h>
#include <parakeet.h>

#define CHUNK_MAX_S 40.0
#define QUIET_WIN 1600 /* 100 ms: the unit the chunk cut looks for */

struct pk {
    struct parakeet_context *ctx;
    int slots;
    struct parakeet_state **state;
    int threads;
    size_t chunk_max; /* samples */
};

struct pk_run {
    engine_progress_fn cb;
    void *ud;
    const engine_opts *o;
    atomic_int stop;
    double last;
};

static _Thread_local const struct pk_run *tl_run;
static _Thread_local int tl_gpu_failed;

static int run_stopped(const struct pk_run *r)
{
    return atomic_load(&r->stop) != 0 || engine_cancel_requested(r->o);
}

static void pk_log(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (!text) return;
    if (strstr(text, "failed to initialize") && strstr(text, "backend")) tl_gpu_failed = 1;
    if (level != GGML_LOG_LEVEL_ERROR) return;
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    if (!len) return;
    if (tl_run && run_stopped(tl_run)) LOG_D("parakeet", "%.*s", (int)len, text);
    else LOG_E("parakeet", "%.*s", (int)len, text);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void set_log(void) { parakeet_log_set(pk_log, NULL); }

static ggml_backend_dev_t gpu_device(void)
{
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) return d;
    }
    return NULL;
}

static void pk_close(void *vst)
{
    struct pk *k = vst;
    if (!k) return;
    for (int i = 0; i < k->slots; i++)
        if (k->state && k->state[i]) parakeet_free_state(k->state[i]);
    free(k->state);
    if (k->ctx) parakeet_free(k->ctx);
    free(k);
}

static void *pk_open(const char *model, int slots, struct engine_info *info, char *err,
                     size_t errlen)
{
    pthread_once(&log_once, set_log);
    char *path = engine_parakeet_model_path(model);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "parakeet model %s not found", path);
        free(path);
        return NULL;
    }
    struct pk *k = xcalloc(1, sizeof *k);
    k->slots = slots;
    k->threads = engine_threads_per_slot(slots);
    struct parakeet_context_params cp = parakeet_context_default_params();
    cp.use_gpu = true;
    cp.gpu_device = 0;
    tl_gpu_failed = 0;
    k->ctx = parakeet_init_from_file_with_params_no_state(path, cp);
    if (!k->ctx) {
        snprintf(err, errlen, "parakeet: cannot load model %s", path);
        goto fail;
    }
    k->state = xcalloc((size_t)slots, sizeof *k->state);
    for (int i = 0; i < slots; i++) {
        k->state[i] = parakeet_init_state(k->ctx);
        if (!k->state[i]) {
            snprintf(err, errlen, "parakeet: cannot allocate state %d of %d for %s", i + 1,
                     slots, path);
            goto fail;
        }
    }
    k->chunk_max = (size_t)(CHUNK_MAX_S * ENGINE_SAMPLE_RATE);
    int actx = parakeet_model_n_audio_ctx(k->ctx); /* mel frames of 10 ms */
    if (actx > 20 && (size_t)(actx - 10) * PARAKEET_HOP_LENGTH < k->chunk_max)
        k->chunk_max = (size_t)(actx - 10) * PARAKEET_HOP_LENGTH;
    ggml_backend_dev_t dev = gpu_device();
    info->uses_gpu = dev != NULL && !tl_gpu_failed;
    snprintf(info->device, sizeof info->device, "%s",
             info->uses_gpu ? ggml_backend_dev_name(dev) : "CPU");
    info->word_timing = "native";
    info->model = path;
    return k;
fail:
    free(path);
    pk_close(k);
    return NULL;
}

static bool on_abort(void *user_data) { return run_stopped(user_data); }

static bool on_encoder_begin(struct parakeet_context *ctx, struct parakeet_state *state,
                             void *user_data)
{
    (void)ctx;
    (void)state;
    return !run_stopped(user_data);
}

/* The end of the chunk starting at off: n, or the quietest 100 ms in the last third of
 * [off, off + max). */
static size_t chunk_end(const int16_t *pcm, size_t n, size_t off, size_t max)
{
    if (n - off <= max) return n;
    size_t lo = off + max * 2 / 3, hi = off + max - QUIET_WIN, best = off + max;
    double best_e = INFINITY;
    for (size_t a = lo; a <= hi; a += QUIET_WIN / 2) {
        double e = 0;
        for (size_t i = a; i < a + QUIET_WIN; i++) e += (double)pcm[i] * pcm[i];
        if (e < best_e) {
            best_e = e;
            best = a + QUIET_WIN / 2;
        }
    }
    return best;
}

static int sentence_end(const char *w)
{
    size_t len = strlen(w);
    return len && (w[len - 1] == '.' || w[len - 1] == '?' || w[len - 1] == '!');
}

/* pending words of the current segment */
struct pword { double start, end, conf; char *text; };
struct pending { struct pword *v; size_t n, cap; };

static void flush_segment(transcript *t, struct pending *pw)
{
    if (!pw->n) return;
    buf text;
    buf_init(&text, 0);
    for (size_t i = 0; i < pw->n; i++) {
        if (i && buf_append(&text, " ", 1) != 0) abort();
        if (buf_append(&text, pw->v[i].text, strlen(pw->v[i].text)) != 0) abort();
    }
    transcript_segment *seg =
        transcript_add_segment(t, pw->v[0].start, pw->v[pw->n - 1].end, text.data);
    for (size_t i = 0; i < pw->n; i++) {
        segment_add_word(seg, pw->v[i].start, pw->v[i].end, pw->v[i].text, pw->v[i].conf);
        free(pw->v[i].text);
    }
    segment_update_confidence(seg);
    buf_release(&text);
    pw->n = 0;
}

static void push_word(transcript *t, struct pending *pw, buf *w, double s, double e,
                      double conf)
{
    const char *txt = w->data + strspn(w->data, " ");
    if (*txt) {
        if (pw->n == pw->cap) {
            pw->cap = pw->cap ? pw->cap * 2 : 32;
            pw->v = xrealloc(pw->v, pw->cap * sizeof *pw->v);
        }
        pw->v[pw->n++] = (struct pword){s, e < s ? s : e, conf, xstrdup(txt)};
        if (sentence_end(txt)) flush_segment(t, pw);
    }
    w->len = 0;
    w->data[0] = '\0';
}

/* Words of the last call on st, times offset by off seconds. */
static void add_chunk(struct pk *k, struct parakeet_state *st, double off, transcript *t,
                      struct pending *pw)
{
    buf w;
    buf_init(&w, 0);
    double ws = 0, we = 0, psum = 0;
    int np = 0;
    const int ns = parakeet_full_n_segments_from_state(st);
    for (int i = 0; i < ns; i++) {
        const int nt = parakeet_full_n_tokens_from_state(st, i);
        for (int j = 0; j < nt; j++) {
            parakeet_token_data d = parakeet_full_get_token_data_from_state(st, i, j);
            const char *piece = parakeet_token_to_str(k->ctx, d.id);
            if (!piece) continue;
            char txt[256];
            parakeet_token_to_text(piece, false, txt, (int)sizeof txt);
            if (!txt[0]) continue; /* control pieces */
            if ((d.is_word_start || txt[0] == ' ') && w.len) {
                push_word(t, pw, &w, ws, we, psum / np);
            }
            if (!w.len) {
                ws = off + (double)d.t0 / 100.0;
                psum = 0;
                np = 0;
            }
            we = off + (double)d.t1 / 100.0;
            psum += d.p;
            np++;
            if (buf_append(&w, txt, strlen(txt)) != 0) abort();
        }
    }
    if (w.len) push_word(t, pw, &w, ws, we, psum / np);
    flush_segment(t, pw);
    buf_release(&w);
}

static transcript *pk_transcribe(void *vst, int slot, const int16_t *pcm, size_t n,
                                 const engine_opts *o, engine_progress_fn cb, void *ud,
                                 char *err, size_t errlen)
{
    struct pk *k = vst;
    struct parakeet_state *st = k->state[slot];
    if (o->translate) {
        snprintf(err, errlen, "the parakeet engine does not translate");
        return NULL;
    }
    const char *lang = o->language && *o->language && strcmp(o->language, "auto") ? o->language
                                                                                 : NULL;
    if (n < ENGINE_MIN_SAMPLES) return engine_short_transcript(lang, n, o, cb, ud, err, errlen);
    struct pk_run run = {.cb = cb, .ud = ud, .o = o, .last = 0};
    atomic_init(&run.stop, 0);
    if (cb && cb(ud, 0.0)) {
        snprintf(err, errlen, "cancelled");
        return NULL;
    }
    transcript *t = transcript_new(lang, (double)n / ENGINE_SAMPLE_RATE);
    t->translated = 0;
    t->temperature = 0;
    struct pending pw = {0};
    float *f = xmalloc(k->chunk_max * sizeof *f);
    tl_run = &run;
    for (size_t off = 0; off < n;) {
        size_t end = chunk_end(pcm, n, off, k->chunk_max);
        size_t len = end - off;
        if (len < ENGINE_MIN_SAMPLES) break; /* a tail under 100 ms */
        for (size_t i = 0; i < len; i++) f[i] = (float)pcm[off + i] / 32768.0f;
        struct parakeet_full_params p = parakeet_full_default_params(PARAKEET_SAMPLING_GREEDY);
        p.n_threads = k->threads;
        p.no_context = true;
        p.abort_callback = on_abort;
        p.abort_callback_user_data = &run;
        p.encoder_begin_callback = on_encoder_begin;
        p.encoder_begin_callback_user_data = &run;
        int rc = parakeet_full_with_state(k->ctx, st, p, f, (int)len);
        if (run_stopped(&run)) {
            snprintf(err, errlen, "cancelled");
            goto fail;
        }
        if (rc != 0) {
            snprintf(err, errlen, "parakeet: decoding failed (%d)", rc);
            goto fail;
        }
        add_chunk(k, st, (double)off / ENGINE_SAMPLE_RATE, t, &pw);
        off = end;
        if (cb && cb(ud, (double)off / (double)n)) {
            snprintf(err, errlen, "cancelled");
            goto fail;
        }
    }
    tl_run = NULL;
    free(f);
    free(pw.v);
    if (cb && cb(ud, 1.0)) {
        snprintf(err, errlen, "cancelled");
        transcript_free(t);
        return NULL;
    }
    return t;
fail:
    tl_run = NULL;
    for (size_t i = 0; i < pw.n; i++) free(pw.v[i].text);
    free(pw.v);
    free(f);
    transcript_free(t);
    return NULL;
}

static const struct engine_vtbl parakeet_vtbl = {
    .name = "parakeet",
    .open = pk_open,
    .transcribe = pk_transcribe,
    .close = pk_close,
};

const struct engine_vtbl *const engine_parakeet_vtbl = &parakeet_vtbl;

#endif /* HAVE_PARAKEET */
