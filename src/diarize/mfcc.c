/* mfcc.c: sphinxbase's MFCC front end over a WAV file, block by block. Contract in mfcc.h. */
#include "diarize/mfcc.h"

#include "audio/wavfile.h"
#include "core/util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sphinxbase/err.h>
#include <sphinxbase/fe.h>

#define BLOCK (16000 * 10)  /* samples read at once */
#define SHIFT 160           /* samples per 10 ms frame */
#define NCEP (MFCC_DIM + 1) /* c0 .. c19 */

#define FE_FUNCS(X)                                                                          \
    X(cmd_ln_init) X(fe_get_args) X(fe_init_auto_r) X(fe_free) X(fe_start_utt)               \
    X(fe_process_frames) X(fe_end_utt) X(fe_get_output_size) X(err_set_logfp)

static struct {
#define FE_MEMBER(f) __typeof__(f) *f;
    FE_FUNCS(FE_MEMBER)
#undef FE_MEMBER
} fe;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_rc = -1;
static char g_err[256];

#ifdef GS_SPHINX_DLOPEN
#include "core/dlib.h"

static void load_once(void)
{
    void *h = dlib_open(GS_SONAME_SPHINXBASE, "pocketsphinx", g_err, sizeof g_err);
    if (!h) return;
#define FE_RESOLVE(f)                                                                        \
    {                                                                                        \
        void *p = dlib_sym(h, GS_SONAME_SPHINXBASE, "pocketsphinx", #f, g_err, sizeof g_err); \
        if (!p) return;                                                                      \
        memcpy(&fe.f, &p, sizeof p);                                                         \
    }
    FE_FUNCS(FE_RESOLVE)
#undef FE_RESOLVE
    fe.err_set_logfp(NULL); /* the front end's configuration dump is not ours to print */
    g_rc = 0;
}
#else
static void load_once(void)
{
#define FE_LINK(f) fe.f = f;
    FE_FUNCS(FE_LINK)
#undef FE_LINK
    fe.err_set_logfp(NULL);
    g_rc = 0;
}
#endif

void mfcc_feats_release(mfcc_feats *f)
{
    if (!f) return;
    free(f->x);
    free(f->energy_db);
    memset(f, 0, sizeof *f);
}

/* append n frames (NCEP cepstra each) as features */
static void add_frames(mfcc_feats *o, size_t *cap, mfcc_t **cep, int n)
{
    if (o->n + (size_t)n > *cap) {
        while (o->n + (size_t)n > *cap) *cap = *cap ? *cap * 2 : 4096;
        o->x = xrealloc(o->x, *cap * MFCC_DIM * sizeof *o->x);
    }
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < MFCC_DIM; d++) o->x[(o->n) * MFCC_DIM + (size_t)d] = (float)cep[i][d + 1];
        o->n++;
    }
}

int mfcc_file(const char *path, mfcc_feats *out, int (*progress)(void *ud, double f), void *ud,
              char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    pthread_once(&g_once, load_once);
    if (g_rc != 0) {
        snprintf(err, errlen, "%s", g_err);
        return -1;
    }
    wav_file w;
    if (wav_open(&w, path, err, errlen) != 0) return -1;
    if (w.rate != 16000) {
        snprintf(err, errlen, "the audio is %d Hz, not 16000", w.rate);
        wav_close(&w);
        return -1;
    }
    cmd_ln_t *cfg = fe.cmd_ln_init(NULL, fe.fe_get_args(), TRUE, "-samprate", "16000", "-frate",
                                   "100", "-nfilt", "40", "-ncep", "20", "-lowerf", "100",
                                   "-upperf", "7000", "-remove_silence", "no", "-dither", "no",
                                   "-transform", "dct", NULL);
    fe_t *f = cfg ? fe.fe_init_auto_r(cfg) : NULL; /* owns cfg */
    if (!f || fe.fe_get_output_size(f) != NCEP) {
        snprintf(err, errlen, "cannot start sphinxbase's MFCC front end");
        if (f) fe.fe_free(f);
        wav_close(&w);
        return -1;
    }
    int rc = 0;
    int16_t *pcm = xmalloc(BLOCK * sizeof *pcm);
    enum { MAXF = BLOCK / SHIFT + 4 };
    mfcc_t *cbuf = xmalloc((size_t)MAXF * NCEP * sizeof *cbuf);
    mfcc_t *rows[MAXF];
    for (int i = 0; i < MAXF; i++) rows[i] = cbuf + (size_t)i * NCEP;
    size_t cap = 0, ecap = 0, ne = 0, pos = 0;
    double part = 0; /* energy of a frame cut by a block's end */
    size_t part_n = 0;
    fe.fe_start_utt(f);
    for (;;) {
        long got = wav_read(&w, pos, BLOCK, pcm);
        if (got < 0) {
            snprintf(err, errlen, "cannot read '%s'", path);
            rc = -1;
            break;
        }
        if (got == 0) break;
        pos += (size_t)got;
        /* energies of whole 10 ms frames */
        for (long i = 0; i < got; i++) {
            part += (double)pcm[i] * pcm[i];
            if (++part_n == SHIFT) {
                if (ne == ecap) {
                    ecap = ecap ? ecap * 2 : 4096;
                    out->energy_db = xrealloc(out->energy_db, ecap * sizeof *out->energy_db);
                }
                out->energy_db[ne++] = (float)(10 * log10(part / SHIFT / (32768.0 * 32768.0) + 1e-10));
                part = 0;
                part_n = 0;
            }
        }
        const int16 *p = pcm;
        size_t left = (size_t)got;
        while (left > 0) {
            int32 nf = MAXF, idx = 0;
            if (fe.fe_process_frames(f, &p, &left, rows, &nf, &idx) < 0) {
                snprintf(err, errlen, "sphinxbase's MFCC front end failed");
                rc = -1;
                break;
            }
            add_frames(out, &cap, rows, nf);
            if (nf == 0 && left > 0) break; /* fewer samples than a frame: kept for the next */
        }
        if (rc) break;
        if (progress && progress(ud, w.nsamples ? (double)pos / (double)w.nsamples : 1.0)) {
            rc = -2;
            break;
        }
    }
    if (rc == 0) {
        int32 nf = 0;
        fe.fe_end_utt(f, rows[0], &nf);
        add_frames(out, &cap, rows, nf);
        out->duration = (double)pos / 16000.0;
        if (ne < out->n) out->n = ne; /* one energy per feature frame */
    }
    fe.fe_free(f);
    free(cbuf);
    free(pcm);
    wav_close(&w);
    if (rc) mfcc_feats_release(out);
    return rc;
}
