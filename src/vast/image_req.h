/* image_req: what a container image needs from a Vast.ai host, and whether an offer has it.
 *
 * Contract:
 * - image_req_for(image, model, min_cuda_override, out) fills *out from a small built-in
 *   table. An image matches an entry when its repository (registry host included, compared
 *   without case) is the entry's and its tag is the entry's tag or a versioned form of it
 *   ("<tag>-<anything>", e.g. main-cuda-b6123), with or without a "@sha256:..." digest
 *   after the tag. A bare digest (repo@sha256:...) names no tag and is unknown, as is any
 *   image not in the table: it has no CUDA or compute-capability requirement.
 *   ghcr.io/ggml-org/whisper.cpp:main-cuda (CUDA 13.0 runtime, which dropped GPUs below
 *   compute capability 7.5) needs cuda_max_good >= 13.0 and compute_cap >= 750.
 * - min_cuda_override (VAST_IMAGE_MIN_CUDA): NAN keeps the table's CUDA minimum; a number
 *   >= 0 replaces it for any image, known or not (0: no CUDA requirement). The compute
 *   capability always comes from the table.
 * - Disk: the image's size (the table's estimate, IMAGE_REQ_UNKNOWN_IMAGE_GB when unknown)
 *   + the model's (image_req_model_gb; with image_req_add_models, the preloaded ones too)
 *   + IMAGE_REQ_MARGIN_GB, rounded up to a whole GB.
 * - image_req_apply tightens a search with the requirements: every bound becomes the
 *   stricter of the caller's and the image's, so a caller's filter can tighten them but
 *   never loosen them.
 * - image_req_check says whether an offer meets them, with one reason per unmet
 *   requirement ("CUDA 12.4 < 13.0 required by ghcr.io/ggml-org/whisper.cpp:main-cuda").
 * - Pure functions of their arguments: no allocation, no I/O, thread-safe.
 */
#ifndef GS_IMAGE_REQ_H
#define GS_IMAGE_REQ_H

#include "vast/vast.h"

#include <stdbool.h>
#include <stddef.h>

#define IMAGE_REQ_MARGIN_GB 2.0         /* worker build, uploads, logs */
#define IMAGE_REQ_UNKNOWN_IMAGE_GB 5.0  /* an image the table does not know */

typedef struct image_req {
    char image[160];        /* the image as given (shortened with "..." when longer) */
    char model[64];         /* the model the disk is sized for ("" when none) */
    bool known;             /* the table has the image */
    bool cuda_overridden;   /* min_cuda comes from VAST_IMAGE_MIN_CUDA */
    double min_cuda;        /* cuda_max_good >= this; 0: none */
    int min_compute_cap;    /* compute_cap (CC x 100) >= this; 0: none */
    double image_gb, model_gb; /* the estimates the disk is made of */
    double min_disk_gb;     /* disk_space >= this */
} image_req;

/* Model file size in GB (decimal): whisper.cpp ggml models by name ("large-v3",
 * "ggml-large-v3.bin", "large-v3-turbo-q5_0", ...) and parakeet-tdt-0.6b-v3. An unknown or
 * empty name counts as the largest known model, so the disk is never too small. */
double image_req_model_gb(const char *model);

void image_req_for(const char *image, const char *model, double min_cuda_override,
                   image_req *out);

/* Add the models of a comma-separated list (MODELS_PRELOAD; NULL or "" adds nothing) to the
 * disk: model_gb grows by each one's size (image_req_model_gb; blanks skipped, a name that is
 * r->model or already listed counted once), min_disk_gb is recomputed. */
void image_req_add_models(image_req *r, const char *csv);

/* Tighten s: min_cuda, min_compute_cap and min_disk_gb become at least the image's. */
void image_req_apply(const image_req *r, vast_search *s);

/* 0 when the offer fits; else the number of unmet requirements, their reasons joined with
 * "; " in reason (always NUL-terminated when reasonlen > 0). */
int image_req_check(const image_req *r, const vast_offer *o, char *reason, size_t reasonlen);

/* "13.0", "12.4", "12.45": a version with at least one decimal. */
void image_req_fmt_version(double v, char *out, size_t outlen);

#endif
