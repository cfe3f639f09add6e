/* image_req: the image requirements table and the offer check (contract in image_req.h). */
#include "vast/image_req.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct image_entry {
    const char *repo;        /* registry host and repository, lower case */
    const char *tag;         /* exact, or "<tag>-<version>" */
    double min_cuda;
    int min_compute_cap;
    double image_gb;         /* unpacked size, an estimate */
};

/* whisper.cpp's main-cuda: Ubuntu 22.04 with the CUDA 13.0 runtime (driver 580+); CUDA 13
 * builds no code for GPUs below compute capability 7.5 (Maxwell, Pascal, Volta). */
static const struct image_entry IMAGES[] = {
    {"ghcr.io/ggml-org/whisper.cpp", "main-cuda", 13.0, 750, 4.0},
};

struct model_entry {
    const char *name;
    double gb;
};

/* File sizes as the model hosts publish them (GB, rounded up). */
static const struct model_entry MODELS[] = {
    {"tiny", 0.08}, {"tiny.en", 0.08}, {"tiny-q5_1", 0.04}, {"tiny.en-q5_1", 0.04},
    {"base", 0.15}, {"base.en", 0.15}, {"base-q5_1", 0.06}, {"base.en-q5_1", 0.06},
    {"small", 0.47}, {"small.en", 0.47}, {"small-q5_1", 0.19}, {"small.en-q5_1", 0.19},
    {"medium", 1.53}, {"medium.en", 1.53}, {"medium-q5_0", 0.54}, {"medium.en-q5_0", 0.54},
    {"large-v1", 3.1}, {"large-v2", 3.1}, {"large-v2-q5_0", 1.1}, {"large-v3", 3.1},
    {"large-v3-q5_0", 1.1}, {"large-v3-turbo", 1.62}, {"large-v3-turbo-q5_0", 0.57},
    {"large-v3-turbo-q8_0", 0.87}, {"parakeet-tdt-0.6b-v3", 1.3},
};
#define LARGEST_MODEL_GB 3.1

double image_req_model_gb(const char *model)
{
    if (!model) return LARGEST_MODEL_GB;
    /* "ggml-large-v3.bin" and "large-v3" are the same model */
    const char *m = strncasecmp(model, "ggml-", 5) == 0 ? model + 5 : model;
    size_t n = strlen(m);
    if (n > 4 && strcasecmp(m + n - 4, ".bin") == 0) n -= 4;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        if (strlen(MODELS[i].name) == n && strncasecmp(MODELS[i].name, m, n) == 0)
            return MODELS[i].gb;
    return LARGEST_MODEL_GB;
}

/* Whether image ("repo:tag", "repo:tag@sha256:...") is e's. */
static bool matches(const struct image_entry *e, const char *image)
{
    size_t rl = strlen(e->repo);
    if (strncasecmp(image, e->repo, rl) != 0 || image[rl] != ':') return false;
    const char *tag = image + rl + 1;
    size_t tl = strcspn(tag, "@");
    size_t el = strlen(e->tag);
    if (tl < el || strncmp(tag, e->tag, el) != 0) return false;
    if (tl == el) return true;
    return tag[el] == '-' && tl > el + 1;   /* a versioned tag: main-cuda-b6123 */
}

static double disk_for(const image_req *r)
{
    return ceil(r->image_gb + r->model_gb + IMAGE_REQ_MARGIN_GB - 1e-9);
}

void image_req_for(const char *image, const char *model, double min_cuda_override,
                   image_req *out)
{
    memset(out, 0, sizeof *out);
    const char *img = image ? image : "";
    if (strlen(img) < sizeof out->image) snprintf(out->image, sizeof out->image, "%s", img);
    else snprintf(out->image, sizeof out->image, "%.*s...", (int)sizeof out->image - 4, img);
    snprintf(out->model, sizeof out->model, "%s", model ? model : "");
    out->image_gb = IMAGE_REQ_UNKNOWN_IMAGE_GB;
    for (size_t i = 0; i < sizeof IMAGES / sizeof IMAGES[0]; i++) {
        if (!matches(&IMAGES[i], img)) continue;
        out->known = true;
        out->min_cuda = IMAGES[i].min_cuda;
        out->min_compute_cap = IMAGES[i].min_compute_cap;
        out->image_gb = IMAGES[i].image_gb;
        break;
    }
    if (!isnan(min_cuda_override) && min_cuda_override >= 0) {
        out->min_cuda = min_cuda_override;
        out->cuda_overridden = true;
    }
    out->model_gb = image_req_model_gb(model && *model ? model : NULL);
    out->min_disk_gb = disk_for(out);
}

/* Whether the n-byte name is in csv before position end, or is r->model. */
static bool counted(const image_req *r, const char *csv, const char *end, const char *name,
                    size_t n)
{
    if (strlen(r->model) == n && strncasecmp(r->model, name, n) == 0) return true;
    for (const char *p = csv; p < end;) {
        const char *q = p + strcspn(p, ",");
        while (p < q && (*p == ' ' || *p == '\t')) p++;
        const char *e = q;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - p) == n && strncasecmp(p, name, n) == 0) return true;
        p = *q ? q + 1 : q;
    }
    return false;
}

void image_req_add_models(image_req *r, const char *csv)
{
    if (!csv) return;
    for (const char *p = csv; *p;) {
        const char *q = p + strcspn(p, ",");
        const char *b = p, *e = q;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t n = (size_t)(e - b);
        if (n > 0 && n < 128 && !counted(r, csv, p, b, n)) {
            char name[128];
            memcpy(name, b, n);
            name[n] = '\0';
            r->model_gb += image_req_model_gb(name);
        }
        p = *q ? q + 1 : q;
    }
    r->min_disk_gb = disk_for(r);
}

void image_req_apply(const image_req *r, vast_search *s)
{
    if (r->min_cuda > s->min_cuda) s->min_cuda = r->min_cuda;
    if (r->min_compute_cap > s->min_compute_cap) s->min_compute_cap = r->min_compute_cap;
    if (r->min_disk_gb > s->min_disk_gb) s->min_disk_gb = r->min_disk_gb;
}

void image_req_fmt_version(double v, char *out, size_t outlen)
{
    if (fabs(v * 10 - round(v * 10)) < 1e-6) snprintf(out, outlen, "%.1f", v);
    else snprintf(out, outlen, "%g", v);
}

static void add_reason(char *reason, size_t len, int n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_reason(char *reason, size_t len, int n, const char *fmt, ...)
{
    if (len == 0) return;
    size_t used = strlen(reason);
    if (n > 0 && used + 2 < len) {
        memcpy(reason + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason + used, len - used, fmt, ap);
    va_end(ap);
}

int image_req_check(const image_req *r, const vast_offer *o, char *reason, size_t reasonlen)
{
    if (reasonlen) reason[0] = '\0';
    int n = 0;
    const char *by = r->cuda_overridden ? "VAST_IMAGE_MIN_CUDA for " : "";
    char have[32], need[32];
    /* Floating-point noise (12.999999) must not exclude a 13.0 host. */
    if (r->min_cuda > 0 && o->cuda_max_good + 1e-6 < r->min_cuda) {
        image_req_fmt_version(r->min_cuda, need, sizeof need);
        if (o->cuda_max_good <= 0)
            add_reason(reason, reasonlen, n, "no CUDA driver (a GPU without CUDA); CUDA %s "
                       "required by %s%s", need, by, r->image);
        else {
            image_req_fmt_version(o->cuda_max_good, have, sizeof have);
            add_reason(reason, reasonlen, n, "CUDA %s < %s required by %s%s", have, need, by,
                       r->image);
        }
        n++;
    }
    if (r->min_compute_cap > 0 && o->compute_cap < r->min_compute_cap) {
        if (o->compute_cap <= 0)
            add_reason(reason, reasonlen, n, "not an NVIDIA GPU (no compute capability); "
                       "compute capability %d.%d required by %s", r->min_compute_cap / 100,
                       r->min_compute_cap % 100 / 10, r->image);
        else
            add_reason(reason, reasonlen, n, "compute capability %d.%d < %d.%d required by %s",
                       o->compute_cap / 100, o->compute_cap % 100 / 10,
                       r->min_compute_cap / 100, r->min_compute_cap % 100 / 10, r->image);
        n++;
    }
    if (r->min_disk_gb > 0 && o->disk_space_gb + 1e-6 < r->min_disk_gb) {
        add_reason(reason, reasonlen, n, "disk %.0f GB < %.0f GB needed by %s with model %s "
                   "(image ~%.1f GB + model %.2f GB + %.0f GB margin)", floor(o->disk_space_gb),
                   r->min_disk_gb, r->image, r->model[0] ? r->model : "(any)", r->image_gb,
                   r->model_gb, IMAGE_REQ_MARGIN_GB);
        n++;
    }
    return n;
}
