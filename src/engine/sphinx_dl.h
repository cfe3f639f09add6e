/* sphinx_dl: the pocketsphinx 5prealpha functions sphinx.c calls, through one table.
 *
 * In the controller (built with GS_SPHINX_DLOPEN and the sonames GS_SONAME_SPHINXBASE /
 * GS_SONAME_POCKETSPHINX from the Makefile) libsphinxbase and libpocketsphinx are opened
 * with dlopen when the local engine is first opened, so a server that never transcribes
 * locally maps neither. The lean worker (make worker) links them as before: transcribing is
 * all it does, a missing library should stop it at start, and its source bundle builds on
 * GPU images without the soname lookup; there the table holds the linked functions.
 *
 * sphinx_dl_load() fills `gs_sp` once per process (pthread_once) and returns the first
 * result ever after; sphinx.c calls pocketsphinx only as gs_sp.name(...) after a successful
 * load. GS_SPHINX_SONAME_TEST (tests only) replaces libpocketsphinx's soname.
 */
#ifndef GS_SPHINX_DL_H
#define GS_SPHINX_DL_H

#ifdef HAVE_SPHINX

#include <stddef.h>

#include <pocketsphinx.h>
#include <sphinxbase/err.h>

/* X(library, function); cmd_ln_int32_r is a macro over cmd_ln_int_r. */
#define GS_SPHINX_FUNCS(X)                                                                  \
    X(SPHINXBASE, cmd_ln_init) X(SPHINXBASE, cmd_ln_free_r) X(SPHINXBASE, cmd_ln_int_r)     \
    X(SPHINXBASE, err_set_logfp) X(SPHINXBASE, logmath_exp)                                 \
    X(POCKETSPHINX, ps_args) X(POCKETSPHINX, ps_init) X(POCKETSPHINX, ps_free)              \
    X(POCKETSPHINX, ps_start_utt) X(POCKETSPHINX, ps_process_raw) X(POCKETSPHINX, ps_end_utt) \
    X(POCKETSPHINX, ps_get_in_speech) X(POCKETSPHINX, ps_get_logmath)                       \
    X(POCKETSPHINX, ps_seg_iter) X(POCKETSPHINX, ps_seg_next) X(POCKETSPHINX, ps_seg_word)  \
    X(POCKETSPHINX, ps_seg_frames) X(POCKETSPHINX, ps_seg_prob)

struct gs_sphinx {
#define GS_SP_MEMBER(lib, f) __typeof__(f) *f;
    GS_SPHINX_FUNCS(GS_SP_MEMBER)
#undef GS_SP_MEMBER
};

extern struct gs_sphinx gs_sp;

/* 0 when pocketsphinx is usable; -1 with e.g. "pocketsphinx's libpocketsphinx.so.3 is not
 * installed: apt install libpocketsphinx3" in err (the same answer on every later call).
 * Thread-safe. Linked builds: always 0. */
int sphinx_dl_load(char *err, size_t errlen);

/* How many times the loading itself ran (0 or 1; always 0 when linked). */
int sphinx_dl_load_count(void);

#endif /* HAVE_SPHINX */
#endif
