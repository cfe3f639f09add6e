/* diarize.c: the CPU diarizer: MFCC features (mfcc.c), then the core (cluster.c). */
#include "diarize/diarize.h"
#include "diarize/mfcc.h"

#include <stdio.h>
#include <string.h>

struct prog {
    diarize_progress_fn fn;
    void *ud;
};

/* the features are the first 70% of the run */
static int feat_progress(void *ud, double f)
{
    struct prog *p = ud;
    return p->fn ? p->fn(p->ud, 0.7 * f) : 0;
}

static int cpu_run(const char *wav_path, const diarize_opts *o, diarize_progress_fn progress,
                   void *ud, diarize_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (diarize_opts_check(o, err, errlen) != 0) return DIARIZE_FAILED;
    struct prog p = {progress, ud};
    mfcc_feats f;
    int rc = mfcc_file(wav_path, &f, feat_progress, &p, err, errlen);
    if (rc == -2) return DIARIZE_STOPPED;
    if (rc != 0) return DIARIZE_FAILED;
    rc = diarize_frames(f.x, f.energy_db, f.n, MFCC_DIM, o, progress, ud, out, err, errlen);
    mfcc_feats_release(&f);
    return rc;
}

const diarizer diarize_cpu = {"cpu", cpu_run};
