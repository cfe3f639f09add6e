#include "api/upload.h"
#include "app.h"
#include "audio/admit.h"
#include "audio/audio.h"
#include "core/bgpool.h"
#include "core/log.h"
#include "core/util.h"
#include "jobs/jobs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_FIELDS 16
#define MAX_FIELD_LEN 8192

struct upload {
    app *a;
    http_req *r;
    char *id, *dir, *path, *filename;
    int fd;
    long long size, max;
    int raw;              /* raw audio body, not a form */
    http_form *form;
    int have_file, extra_file, too_big, io_error;
    char *file_key;
    char *keys[MAX_FIELDS];
    buf vals[MAX_FIELDS];
    int nfields;
    double duration;
    int committed;
    struct jobs *waiting_on;
    /* the decode runs on the background pool (app.bg) while the request is suspended; the
     * upload is freed by whichever of the request and the decode lets go last */
    pthread_mutex_t mu;
    int refs;
    bool req_alive;
    int decode;           /* DECODE_* */
    int decode_rc;
    int decode_status;    /* the HTTP status to answer (AUDIO_ADMIT_*), 0 when it decoded */
    char decode_err[256];
};

enum { DECODE_NONE, DECODE_RUNNING, DECODE_DONE };

void api_error(http_req *r, int openai_style, int status, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *safe = log_vredactf(fmt, ap);
    va_end(ap);
    if (!openai_style) {
        http_reply_json(r, status, json_pack("{s:s}", "error", safe));
    } else {
        const char *type = status == 401 ? "authentication_error"
                           : status >= 500 ? "server_error" : "invalid_request_error";
        http_reply_json(r, status, json_pack("{s:{s:s,s:s,s:s?,s:n}}", "error", "message", safe,
                                             "type", type, "param", param, "code"));
    }
    free(safe);
}

static atomic_int uploads_now; /* requests whose upload body is arriving or being handled */

int upload_in_progress(void) { return atomic_load(&uploads_now); }

static void upload_destroy(upload *u)
{
    atomic_fetch_sub(&uploads_now, 1);
    if (u->fd >= 0) close(u->fd);
    http_form_free(u->form);
    if (!u->committed && u->dir) {
        if (u->path) unlink(u->path);
        char *wav = xasprintf("%s/audio.wav", u->dir);
        unlink(wav);
        free(wav);
        rmdir(u->dir);
    }
    for (int i = 0; i < u->nfields; i++) {
        free(u->keys[i]);
        buf_release(&u->vals[i]);
    }
    free(u->file_key);
    free(u->id);
    free(u->dir);
    free(u->path);
    free(u->filename);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

static void upload_unref(upload *u)
{
    pthread_mutex_lock(&u->mu);
    int left = --u->refs;
    pthread_mutex_unlock(&u->mu);
    if (left == 0) upload_destroy(u);
}

/* the request has ended */
static void upload_free(void *p)
{
    upload *u = p;
    if (!u) return;
    if (u->waiting_on) jobs_wait_cancel(u->waiting_on, u->r);
    pthread_mutex_lock(&u->mu);
    u->req_alive = false;
    pthread_mutex_unlock(&u->mu);
    upload_unref(u);
}

static int open_file(upload *u)
{
    if (u->fd >= 0) return 0;
    if (mkdir_p(u->dir, 0700) != 0) { u->io_error = errno; return -1; }
    u->fd = open(u->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) { u->io_error = errno; return -1; }
    return 0;
}

static int write_data(upload *u, const char *data, size_t n)
{
    if ((long long)n > u->max - u->size) {
        u->too_big = 1;
        return -1;
    }
    if (open_file(u) != 0) return -1;
    while (n > 0) {
        ssize_t w = write(u->fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { u->io_error = errno; return -1; }
        data += w;
        n -= (size_t)w;
        u->size += w;
    }
    return 0;
}

static int on_field(void *ud, const char *key, const char *filename, const char *ctype,
                    const char *data, uint64_t off, size_t size)
{
    (void)ctype;
    upload *u = ud;
    if (!key) return 0;
    if (filename) {
        if (!u->have_file) {
            u->have_file = 1;
            u->file_key = xstrdup(key);
            free(u->filename);
            u->filename = xstrdup(filename);
        } else if (strcmp(key, u->file_key) != 0 || off == 0) {
            if (off == 0 && strcmp(key, u->file_key) == 0 && u->size > 0) { u->extra_file = 1; return -1; }
            if (strcmp(key, u->file_key) != 0) { u->extra_file = 1; return -1; }
        }
        return size ? write_data(u, data, size) : (open_file(u) == 0 ? 0 : -1);
    }
    int i = 0;
    for (; i < u->nfields; i++)
        if (strcmp(u->keys[i], key) == 0) break;
    if (i == u->nfields) {
        if (u->nfields >= MAX_FIELDS) return 0; /* ignore extra fields */
        u->keys[i] = xstrdup(key);
        buf_init(&u->vals[i], MAX_FIELD_LEN);
        u->nfields++;
    } else if (off == 0 && u->vals[i].len) {
        /* repeated field (timestamp_granularities[]): join with commas */
        if (buf_append(&u->vals[i], ",", 1) != 0) return -1;
    }
    return buf_append(&u->vals[i], data, size) == 0 ? 0 : -1;
}

int upload_body(http_req *r, const char *data, size_t n, void *appv)
{
    app *a = appv;
    upload *u = http_ctx(r);
    int openai = str_starts(http_path(r), "/v1/");
    if (!u) {
        /* the first call comes with the headers, before any of the body (http.h): a declared
         * length over MAX_UPLOAD_MB, or one that would not fit in DATA_DIR, is refused
         * without reading it (a form's other fields and boundaries may add up to 256 KB) */
        const char *ct = http_header(r, "Content-Type");
        int form = ct && (strncasecmp(ct, "multipart/form-data", 19) == 0 ||
                          strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0);
        const char *cl = http_header(r, "Content-Length");
        if (cl) {
            unsigned long long len = strtoull(cl, NULL, 10);
            long max_mb = config_int(a->cfg, CFG_MAX_UPLOAD_MB);
            if (len > (unsigned long long)max_mb * 1024 * 1024 + (form ? 256 * 1024 : 0)) {
                api_error(r, openai, 413, "file", "upload too large: the limit is %ld MB (MAX_UPLOAD_MB)",
                          max_mb);
                return -1;
            }
            char err[256];
            if (audio_admit_space((long long)len,
                                  audio_admit_free_bytes(config_str(a->cfg, CFG_DATA_DIR)),
                                  "store this upload", err, sizeof err) != 0) {
                api_error(r, openai, 507, NULL, "%s", err);
                return -1;
            }
        }
        u = xcalloc(1, sizeof *u);
        u->a = a;
        u->r = r;
        u->fd = -1;
        u->id = jobs_new_id();
        u->dir = xasprintf("%s/jobs/%s", config_str(a->cfg, CFG_DATA_DIR), u->id);
        u->path = xasprintf("%s/upload", u->dir);
        u->max = (long long)config_int(a->cfg, CFG_MAX_UPLOAD_MB) * 1024 * 1024;
        pthread_mutex_init(&u->mu, NULL);
        u->refs = 1;
        u->req_alive = true;
        atomic_fetch_add(&uploads_now, 1);
        http_set_ctx(r, u, upload_free);
        if (form) {
            u->form = http_form_new(r, on_field, u);
            if (!u->form) {
                api_error(r, openai, 400, NULL, "malformed form upload (multipart boundary missing?)");
                return -1;
            }
        } else {
            u->raw = 1;
            u->have_file = 1;
            const char *fn = http_query(r, "filename");
            u->filename = xstrdup(fn ? fn : "upload");
        }
        if (n == 0) return 0; /* the headers' call: no data yet */
    }
    int rc = u->raw ? write_data(u, data, n) : http_form_feed(u->form, data, n);
    if (rc == 0) return 0;
    if (u->too_big)
        api_error(r, openai, 413, "file", "upload too large: the limit is %ld MB (MAX_UPLOAD_MB)",
                  config_int(a->cfg, CFG_MAX_UPLOAD_MB));
    else if (u->extra_file)
        api_error(r, openai, 400, "file", "send one audio file per request");
    else if (u->io_error)
        api_error(r, openai, 500, NULL, "cannot store the upload: %s", strerror(u->io_error));
    else
        api_error(r, openai, 400, NULL, "malformed form upload");
    return -1;
}

const char *upload_field(const upload *u, const char *name)
{
    if (u->raw) return http_query(u->r, name);
    for (int i = 0; i < u->nfields; i++)
        if (strcmp(u->keys[i], name) == 0) return u->vals[i].data ? u->vals[i].data : "";
    return NULL;
}

const char *upload_id(const upload *u) { return u->id; }
const char *upload_path(const upload *u) { return u->path; }
const char *upload_filename(const upload *u) { return u->filename ? u->filename : "upload"; }
long long upload_size(const upload *u) { return u->size; }
double upload_duration(const upload *u) { return u->duration; }
void upload_commit(upload *u) { u->committed = 1; }
int upload_committed(const upload *u) { return u->committed; }
void upload_set_waiter(upload *u, struct jobs *j, http_req *r)
{
    u->waiting_on = j;
    u->r = r;
}

/* On the background pool: the header probe (container, codec, declared duration, rate,
 * channels), then the request is resumed. The decode itself is the job's preparation
 * (jobs/prepare.c), after the 202. */
static void probe_task(void *arg)
{
    upload *u = arg;
    char err[256] = "";
    /* refused from its headers (audio/admit.h): not audio, bombs, over-long, no disk space */
    double max_s = config_num(u->a->cfg, CFG_MAX_AUDIO_HOURS) * 3600;
    audio_info info;
    int status = audio_admit(u->path, config_str(u->a->cfg, CFG_DATA_DIR), max_s, &info, err,
                             sizeof err);
    pthread_mutex_lock(&u->mu);
    u->decode_rc = status ? -1 : 0;
    u->decode_status = status;
    u->duration = !status && !info.duration_estimated ? info.duration_s : -1;
    snprintf(u->decode_err, sizeof u->decode_err, "%s", err);
    u->decode = DECODE_DONE;
    /* a suspended request stays alive until resumed; upload_free waits for mu */
    if (u->req_alive) http_resume(u->r);
    pthread_mutex_unlock(&u->mu);
    upload_unref(u);
}

upload *upload_finish(http_req *r, void *appv, int openai_style)
{
    app *a = appv;
    upload *u = http_ctx(r);
    if (!u || !u->have_file) {
        api_error(r, openai_style, 400, "file",
                  "no audio file in the request: send multipart/form-data with a 'file' field, "
                  "or the audio itself as the body");
        return NULL;
    }
    pthread_mutex_lock(&u->mu);
    int state = u->decode;
    if (state == DECODE_RUNNING) http_suspend(r); /* not over yet: the task resumes it */
    pthread_mutex_unlock(&u->mu);
    if (state == DECODE_RUNNING) return NULL;
    if (state == DECODE_NONE) {
        if (u->fd >= 0) {
            close(u->fd);
            u->fd = -1;
        } else if (open_file(u) == 0) { /* an empty file part */
            close(u->fd);
            u->fd = -1;
        }
        /* probe off the HTTP threads: suspended before the task can resume it */
        pthread_mutex_lock(&u->mu);
        u->decode = DECODE_RUNNING;
        u->refs++;
        int rc = bgpool_submit(a->bg, probe_task, u);
        if (rc == 0) http_suspend(r);
        else { u->refs--; u->decode = DECODE_NONE; }
        pthread_mutex_unlock(&u->mu);
        if (rc != 0) {
            http_add_header(r, "Retry-After", "2");
            api_error(r, openai_style, 503, NULL,
                      "the server is busy checking other uploads; retry shortly");
        }
        return NULL;
    }
    if (u->decode_status == AUDIO_ADMIT_BAD) {
        api_error(r, openai_style, 400, "file", "invalid audio file '%s': %s", upload_filename(u),
                  u->decode_err);
        return NULL;
    }
    if (u->decode_status != 0) { /* 413 too long, 500 the server's fault, 507 no disk space */
        api_error(r, openai_style, u->decode_status, u->decode_status < 500 ? "file" : NULL,
                  "%s", u->decode_err);
        return NULL;
    }
    return u;
}
