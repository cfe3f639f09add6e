/* sphinx: the pocketsphinx 5prealpha backend (CPU, English).
 *
 * Segmentation: the PCM is split at pauses by frame energy (10 ms frames; a threshold between
 * the noise floor and the speech level; pauses of >= PAUSE_MIN_S end a piece; pieces longer
 * than PIECE_MAX_S are cut at their quietest point). Silent stretches are not decoded. Each
 * piece is decoded as one utterance with full_utt=TRUE (batch CMN). On pocketsphinx-testdata's
 * five librivox clips joined with 1 s gaps this gives WER 0.282 (20/71 words), against 0.324
 * for streaming with live CMN split by ps_get_in_speech; RTF about 0.16 on one core.
 * Each piece gets +-1 LSB of deterministic dither before decoding (see decode_piece).
 *
 * Slots: pocketsphinx decoders cannot share a loaded model, so each slot is a decoder of its
 * own (its own configuration, acoustic model, LM and dictionary: memory grows with slots).
 * Cancel is checked between pieces (at most PIECE_MAX_S of audio each).
 */
#include "engine/engine_impl.h"

#ifndef HAVE_SPHINX

const struct engine_vtbl *const engine_sphinx_vtbl = NULL;

#else

#include "core/util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "engine/sphinx_dl.h" /* pocketsphinx: dlopen in the controller, linked in the worker */

#include <pthread.h>

#define DEFAULT_MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
#define FRAME 160               /* samples per 10 ms analysis frame */
#define PAUSE_MIN_S 0.4         /* a pause at least this long separates pieces */
#define PAD_S 0.2               /* silence kept around each piece */
#define MIN_SPEECH_S 0.08       /* pieces with less speech than this are ignored */
#define PIECE_MAX_S 25.0        /* longer pieces are cut at their quietest frame */
#define SILENCE_LEVEL_DB 25.0   /* frames below this are silent; all of them: the input is silence */

struct sphinx {
    cmd_ln_t *cfg;
    ps_decoder_t *ps;
    int frate;
    char *hmm, *lm, *dict, *jsgf; /* kept alive for cmd_ln */
};

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void sphinx_close(void *vst)
{
    struct sphinx *s = vst;
    if (!s) return;
    if (s->ps) gs_sp.ps_free(s->ps);
    if (s->cfg) gs_sp.cmd_ln_free_r(s->cfg);
    free(s->hmm);
    free(s->lm);
    free(s->dict);
    free(s->jsgf);
    free(s);
}

/* sphinxbase's log file is process-global: "-logfn" made every ps_init fclose and reopen
 * it, so two engines opening at once (JOBS_CONCURRENCY > 1) raced on that FILE (found by
 * make tsan-test). Logging is switched off once instead. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static void quiet_sphinx(void) { gs_sp.err_set_logfp(NULL); }

static struct sphinx *sphinx_open_one(const char *model, char **model_out, char *err,
                                      size_t errlen)
{
    const char *dir = model && *model ? model : getenv("GS_SPHINX_MODEL_DIR");
    if (!dir || !*dir) dir = DEFAULT_MODEL_DIR;
    const char *jsgf = getenv("GS_SPHINX_JSGF");
    if (jsgf && !*jsgf) jsgf = NULL;
    struct sphinx *s = xcalloc(1, sizeof *s);
    s->hmm = xasprintf("%s/en-us", dir);
    s->lm = xasprintf("%s/en-us.lm.bin", dir);
    s->dict = xasprintf("%s/cmudict-en-us.dict", dir);
    if (jsgf) s->jsgf = xstrdup(jsgf);
    if (!is_dir(s->hmm) || !is_file(s->dict) || (!jsgf && !is_file(s->lm))) {
        snprintf(err, errlen, "pocketsphinx model not found in %s (need en-us/, en-us.lm.bin, "
                 "cmudict-en-us.dict)", dir);
        goto fail;
    }
    if (jsgf && !is_file(jsgf)) {
        snprintf(err, errlen, "pocketsphinx grammar %s not found", jsgf);
        goto fail;
    }
    s->cfg = gs_sp.cmd_ln_init(NULL, gs_sp.ps_args(), TRUE, "-hmm", s->hmm, jsgf ? "-jsgf" : "-lm",
                         jsgf ? s->jsgf : s->lm, "-dict", s->dict, NULL);
    if (!s->cfg) {
        snprintf(err, errlen, "pocketsphinx: bad configuration");
        goto fail;
    }
    s->ps = gs_sp.ps_init(s->cfg);
    if (!s->ps) {
        snprintf(err, errlen, "pocketsphinx: cannot load the model in %s%s%s", dir,
                 jsgf ? " with grammar " : "", jsgf ? jsgf : "");
        goto fail;
    }
    s->frate = (int)gs_sp.cmd_ln_int_r(s->cfg, "-frate");
    if (s->frate <= 0) s->frate = 100;
    if (model_out) *model_out = xstrdup(dir);
    return s;
fail:
    sphinx_close(s);
    return NULL;
}

struct sphinx_pool {
    int n;
    struct sphinx **slot;
};

static void sphinx_pool_close(void *vst)
{
    struct sphinx_pool *p = vst;
    if (!p) return;
    for (int i = 0; i < p->n; i++) sphinx_close(p->slot[i]);
    free(p->slot);
    free(p);
}

static void *sphinx_pool_open(const char *model, int slots, struct engine_info *info,
                              char *err, size_t errlen)
{
    if (sphinx_dl_load(err, errlen) != 0) return NULL; /* "... is not installed: apt install ..." */
    pthread_once(&quiet_once, quiet_sphinx);
    struct sphinx_pool *p = xcalloc(1, sizeof *p);
    p->slot = xcalloc((size_t)slots, sizeof *p->slot);
    for (; p->n < slots; p->n++) {
        p->slot[p->n] = sphinx_open_one(model, p->n ? NULL : &info->model, err, errlen);
        if (!p->slot[p->n]) {
            sphinx_pool_close(p);
            return NULL;
        }
    }
    info->uses_gpu = 0;
    info->word_timing = "native";
    return p;
}

/* ---------------------------------------------------------------- segmentation */

typedef struct piece { size_t start, end; } piece; /* sample offsets [start, end) */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Frame energies in dB (10 log10 of the mean square, +1 to stay finite). */
static float *frame_energy(const int16_t *pcm, size_t n, size_t *nf_out)
{
    size_t nf = (n + FRAME - 1) / FRAME;
    float *e = xmalloc((nf ? nf : 1) * sizeof *e);
    for (size_t f = 0; f < nf; f++) {
        size_t a = f * FRAME, b = a + FRAME < n ? a + FRAME : n;
        double sum = 0;
        for (size_t i = a; i < b; i++) sum += (double)pcm[i] * pcm[i];
        e[f] = (float)(10.0 * log10(sum / (double)(b - a) + 1.0));
    }
    *nf_out = nf;
    return e;
}

static void add_piece(piece **v, size_t *nv, size_t *cap, size_t a, size_t b)
{
    if (*nv == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*nv)++] = (piece){a, b};
}

/* Cut frames [fa, fb) into pieces no longer than PIECE_MAX_S, at the quietest frame
 * (energy smoothed over 0.1 s) in the second half of each over-long stretch. */
static void add_limited(piece **v, size_t *nv, size_t *cap, const float *e, size_t fa,
                        size_t fb, size_t n)
{
    const size_t maxf = (size_t)(PIECE_MAX_S * ENGINE_SAMPLE_RATE / FRAME);
    while (fb - fa > maxf) {
        size_t best = fa + maxf, lo = fa + maxf / 2;
        double best_e = INFINITY;
        for (size_t f = lo; f < fa + maxf; f++) {
            double s = 0;
            size_t k0 = f >= 5 ? f - 5 : 0, k1 = f + 5 < fb ? f + 5 : fb;
            for (size_t k = k0; k < k1; k++) s += e[k];
            s /= (double)(k1 - k0);
            if (s <= best_e) { best_e = s; best = f; } /* ties: the latest */
        }
        add_piece(v, nv, cap, fa * FRAME, best * FRAME);
        fa = best;
    }
    size_t end = fb * FRAME < n ? fb * FRAME : n;
    if (end > fa * FRAME) add_piece(v, nv, cap, fa * FRAME, end);
}

/* Split pcm into speech pieces. Returns the count (0 = no speech); *out is heap. */
static size_t split_pieces(const int16_t *pcm, size_t n, piece **out)
{
    piece *v = NULL;
    size_t nv = 0, cap = 0, nf;
    *out = NULL;
    if (n == 0) return 0;
    float *e = frame_energy(pcm, n, &nf);
    float *sorted = xmalloc(nf * sizeof *sorted);
    memcpy(sorted, e, nf * sizeof *sorted);
    qsort(sorted, nf, sizeof *sorted, cmp_float);
    /* the speech level: the 95th percentile of the frames that are not silent (audio that
     * is mostly silence, e.g. a long recording with a few minutes of talk, still has one) */
    size_t loud = nf;
    while (loud > 0 && sorted[loud - 1] >= SILENCE_LEVEL_DB) loud--;
    float floor_db = sorted[nf / 10];
    float hi_db = loud < nf ? sorted[loud + (nf - loud) * 95 / 100] : sorted[nf - 1];
    free(sorted);
    if (hi_db < SILENCE_LEVEL_DB) { free(e); return 0; }
    float thr = floor_db + fmaxf(6.0f, 0.3f * (hi_db - floor_db));
    if (hi_db - floor_db < 6.0f) thr = floor_db - 1.0f; /* no contrast: all speech */

    const size_t pause_f = (size_t)(PAUSE_MIN_S * ENGINE_SAMPLE_RATE / FRAME);
    const size_t pad_f = (size_t)(PAD_S * ENGINE_SAMPLE_RATE / FRAME);
    const size_t min_speech_f = (size_t)(MIN_SPEECH_S * ENGINE_SAMPLE_RATE / FRAME);
    /* walk speech runs; a region ends at a pause >= pause_f frames */
    size_t f = 0;
    while (f < nf) {
        while (f < nf && e[f] < thr) f++;
        if (f >= nf) break;
        size_t rs = f, last_speech = f, nspeech = 0;
        while (f < nf) {
            if (e[f] >= thr) { last_speech = f; nspeech++; f++; continue; }
            if (f - last_speech > pause_f) break;
            f++;
        }
        size_t re = last_speech + 1;
        if (nspeech < min_speech_f) continue;
        size_t prev_end = nv ? v[nv - 1].end / FRAME : 0;
        size_t a = rs > pad_f ? rs - pad_f : 0;
        if (a < prev_end) a = prev_end;
        size_t b = re + pad_f < nf ? re + pad_f : nf;
        add_limited(&v, &nv, &cap, e, a, b, n);
    }
    free(e);
    *out = v;
    return nv;
}

/* ---------------------------------------------------------------- decoding */

static int english(const char *lang)
{
    if (!lang || !*lang || strcasecmp(lang, "auto") == 0 || strcasecmp(lang, "en") == 0 ||
        strcasecmp(lang, "english") == 0)
        return 1;
    return strncasecmp(lang, "en-", 3) == 0 || strncasecmp(lang, "en_", 3) == 0;
}

/* A filler, silence or null token: <s>, </s>, <sil>, [NOISE], ++NOISE++, (NULL) (a grammar's
 * null transition). */
static int is_filler(const char *w)
{
    return !w || !*w || w[0] == '<' || w[0] == '[' || w[0] == '(' ||
           (w[0] == '+' && w[1] == '+');
}

/* Copy w without a trailing "(N)" alternate-pronunciation marker. */
static char *strip_alt(const char *w)
{
    size_t len = strlen(w);
    if (len > 2 && w[len - 1] == ')') {
        const char *open = strrchr(w, '(');
        if (open && open > w) {
            const char *p = open + 1;
            while (p < w + len - 1 && isdigit((unsigned char)*p)) p++;
            if (p == w + len - 1 && p > open + 1) return xstrndup(w, (size_t)(open - w));
        }
    }
    return xstrdup(w);
}

/* Decode one piece; append a segment when it has words. -1 with err on decoder failure. */
static int decode_piece(struct sphinx *s, transcript *t, const int16_t *pcm, piece p,
                        char *err, size_t errlen)
{
    ps_decoder_t *ps = s->ps;
    if (gs_sp.ps_start_utt(ps) < 0) {
        snprintf(err, errlen, "pocketsphinx: cannot start an utterance");
        return -1;
    }
    /* Dither: +-1 LSB of deterministic noise. Digital silence (exact zeros, as in synthetic
     * or edited audio) otherwise breaks pocketsphinx's front end (log of zero energy) and
     * whole utterances decode to nothing. Our own generator, seeded per piece, keeps the
     * output reproducible and thread-safe (sphinxbase's -dither uses a global RNG). */
    size_t len = p.end - p.start;
    int16_t *d = xmalloc(len * sizeof *d);
    uint32_t rng = 0x9E3779B9u ^ (uint32_t)p.start;
    for (size_t i = 0; i < len; i++) {
        rng = rng * 1664525u + 1013904223u;
        int v = pcm[p.start + i] + (int)((rng >> 16) % 3) - 1; /* -1, 0 or +1 */
        d[i] = (int16_t)(v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : v);
    }
    int rc = gs_sp.ps_process_raw(ps, d, len, FALSE, TRUE);
    free(d);
    if (rc < 0) {
        gs_sp.ps_end_utt(ps);
        snprintf(err, errlen, "pocketsphinx: decoding failed");
        return -1;
    }
    if (gs_sp.ps_end_utt(ps) < 0) {
        snprintf(err, errlen, "pocketsphinx: cannot end the utterance");
        return -1;
    }
    double off = (double)p.start / ENGINE_SAMPLE_RATE;
    logmath_t *lmath = gs_sp.ps_get_logmath(ps);
    transcript_segment *seg = NULL;
    buf text;
    buf_init(&text, 0);
    double seg_start = 0, seg_end = 0;
    /* first pass: words into a scratch list (the segment text is known only at the end) */
    struct w { char *word; double start, end, conf; } *words = NULL;
    size_t nw = 0, cap = 0;
    for (ps_seg_t *it = gs_sp.ps_seg_iter(ps); it; it = gs_sp.ps_seg_next(it)) {
        const char *w = gs_sp.ps_seg_word(it);
        if (is_filler(w)) continue;
        int sf = 0, ef = 0;
        int32 ascr, lscr, lback;
        gs_sp.ps_seg_frames(it, &sf, &ef);
        int32 post = gs_sp.ps_seg_prob(it, &ascr, &lscr, &lback);
        double conf = gs_sp.logmath_exp(lmath, post);
        if (!isfinite(conf) || conf < 0) conf = -1;
        if (conf > 1) conf = 1;
        if (nw == cap) {
            cap = cap ? cap * 2 : 16;
            words = xrealloc(words, cap * sizeof *words);
        }
        words[nw].word = strip_alt(w);
        words[nw].start = off + (double)sf / s->frate;
        words[nw].end = off + (double)(ef + 1) / s->frate;
        words[nw].conf = conf;
        if (nw == 0) seg_start = words[nw].start;
        seg_end = words[nw].end;
        if (nw && buf_append(&text, " ", 1) != 0) abort();
        if (buf_append(&text, words[nw].word, strlen(words[nw].word)) != 0) abort();
        nw++;
    }
    if (nw) {
        seg = transcript_add_segment(t, seg_start, seg_end, text.data);
        for (size_t i = 0; i < nw; i++)
            segment_add_word(seg, words[i].start, words[i].end, words[i].word, words[i].conf);
        segment_update_confidence(seg);
    }
    for (size_t i = 0; i < nw; i++) free(words[i].word);
    free(words);
    buf_release(&text);
    return 0;
}

static transcript *sphinx_transcribe(void *vst, int slot, const int16_t *pcm, size_t n,
                                     const engine_opts *o, engine_progress_fn cb, void *ud,
                                     char *err, size_t errlen)
{
    struct sphinx *s = ((struct sphinx_pool *)vst)->slot[slot];
    if (!english(o->language)) {
        snprintf(err, errlen, "the CPU engine (pocketsphinx) only supports English");
        return NULL;
    }
    if (n < ENGINE_MIN_SAMPLES) return engine_short_transcript("en", n, o, cb, ud, err, errlen);
    if (cb && cb(ud, 0.0)) {
        snprintf(err, errlen, "cancelled");
        return NULL;
    }
    piece *pieces = NULL;
    size_t np = split_pieces(pcm, n, &pieces);
    transcript *t = transcript_new("en", (double)n / ENGINE_SAMPLE_RATE);
    t->translated = o->translate != 0;
    t->temperature = 0;
    for (size_t i = 0; i < np; i++) {
        if (decode_piece(s, t, pcm, pieces[i], err, errlen) != 0) goto fail;
        if ((cb && cb(ud, (double)pieces[i].end / (double)n)) || engine_cancel_requested(o)) {
            snprintf(err, errlen, "cancelled");
            goto fail;
        }
    }
    free(pieces);
    if (cb && cb(ud, 1.0)) {
        snprintf(err, errlen, "cancelled");
        transcript_free(t);
        return NULL;
    }
    return t;
fail:
    free(pieces);
    transcript_free(t);
    return NULL;
}

static const struct engine_vtbl sphinx_vtbl = {
    .name = "sphinx",
    .open = sphinx_pool_open,
    .transcribe = sphinx_transcribe,
    .close = sphinx_pool_close,
};
const struct engine_vtbl *const engine_sphinx_vtbl = &sphinx_vtbl;

#endif /* HAVE_SPHINX */
