/* /api/jobs: upload and queue audio, list and inspect jobs, fetch transcripts, cancel. */
#include "api/api.h"
#include "api/upload.h"
#include "app.h"
#include "audio/audio.h"
#include "audio/peaks.h"
#include "core/log.h"
#include "core/util.h"
#include "diarize/diarize.h"
#include "engine/engine.h"
#include "jobs/jobs.h"

#include <ctype.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Build the job options from the upload's fields; NULL after replying 400. */
json_t *api_job_options(http_req *r, const upload *u, int openai_style)
{
    json_t *o = json_object();
    const char *lang = upload_field(u, "language");
    if (lang && *lang) {
        size_t n = strlen(lang);
        int ok = (n >= 2 && n <= 8) || strcmp(lang, "auto") == 0;
        for (size_t i = 0; i < n; i++) ok &= isalpha((unsigned char)lang[i]) || lang[i] == '-';
        if (!ok) goto bad_lang;
        json_object_set_new(o, "language", json_string(lang));
    }
    const char *fmt = upload_field(u, "response_format");
    if (fmt && *fmt) {
        if (transcript_format_parse(fmt) == TRANSCRIPT_FMT_INVALID) {
            api_error(r, openai_style, 400, "response_format",
                      "unknown response_format '%s' (json, text, srt, vtt, verbose_json, "
                      "diarized_json)", fmt);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "response_format", json_string(fmt));
    }
    const char *prompt = upload_field(u, "prompt");
    if (prompt && *prompt) json_object_set_new(o, "prompt", json_string(prompt));
    const char *model = upload_field(u, "model");
    if (model && *model) {
        size_t n = strlen(model);
        if (n > 64 || strspn(model, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n) {
            api_error(r, openai_style, 400, "model",
                      "invalid model '%.64s' (a name like large-v3, large-v3-turbo or "
                      "parakeet-tdt-0.6b-v3)", model);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "model", json_string(model));
    }
    const char *temp = upload_field(u, "temperature");
    if (temp && *temp) {
        double t;
        if (parse_double(temp, &t) != 0 || t < 0 || t > 1) {
            api_error(r, openai_style, 400, "temperature", "temperature must be a number from 0 to 1");
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "temperature", json_real(t));
    }
    const char *beam = upload_field(u, "beam_size");
    if (beam && *beam) {
        long b;
        if (parse_long(beam, &b) != 0 || b < 1 || b > ENGINE_MAX_BEAM) {
            api_error(r, openai_style, 400, "beam_size", "beam_size must be an integer from 1 to %d",
                      ENGINE_MAX_BEAM);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "beam_size", json_integer(b));
    }
    const char *gran = upload_field(u, "timestamp_granularities[]");
    if (!gran) gran = upload_field(u, "timestamp_granularities");
    const char *words = upload_field(u, "word_timestamps");
    if ((gran && strstr(gran, "word")) || (words && (strcmp(words, "1") == 0 || strcmp(words, "true") == 0)))
        json_object_set_new(o, "word_timestamps", json_true());
    /* speakers: diarize=true (implied by response_format=diarized_json) and the counts */
    const char *dz = upload_field(u, "diarize");
    int diarize = fmt && strcmp(fmt, "diarized_json") == 0;
    if (dz && *dz) {
        if (!strcmp(dz, "true") || !strcmp(dz, "1")) diarize = 1;
        else if (!strcmp(dz, "false") || !strcmp(dz, "0")) diarize = diarize ? -1 : 0;
        else {
            api_error(r, openai_style, 400, "diarize", "diarize must be true or false");
            json_decref(o);
            return NULL;
        }
    }
    if (diarize < 0) {
        api_error(r, openai_style, 400, "diarize",
                  "response_format=diarized_json needs diarize=true (or no diarize field)");
        json_decref(o);
        return NULL;
    }
    static const char *const counts[] = {"num_speakers", "min_speakers", "max_speakers"};
    int cv[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        const char *v = upload_field(u, counts[i]);
        if (!v || !*v) continue;
        long n;
        if (parse_long(v, &n) != 0 || n < 1 || n > DIARIZE_MAX_SPEAKERS) {
            api_error(r, openai_style, 400, counts[i], "%s must be an integer from 1 to %d",
                      counts[i], DIARIZE_MAX_SPEAKERS);
            json_decref(o);
            return NULL;
        }
        if (!diarize) {
            api_error(r, openai_style, 400, counts[i], "%s needs diarize=true", counts[i]);
            json_decref(o);
            return NULL;
        }
        cv[i] = (int)n;
    }
    if (diarize) {
        diarize_opts dopt = {cv[0], cv[1], cv[2]};
        char err[160];
        if (diarize_opts_check(&dopt, err, sizeof err) != 0) {
            api_error(r, openai_style, 400, "num_speakers", "%s", err);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, "diarize", json_true());
        for (int i = 0; i < 3; i++)
            if (cv[i]) json_object_set_new(o, counts[i], json_integer(cv[i]));
    }
    return o;
bad_lang:
    api_error(r, openai_style, 400, "language", "invalid language '%s' (an ISO-639-1 code like 'en', or 'auto')", lang);
    json_decref(o);
    return NULL;
}

/* Submit the validated upload as a job; 0 on success (else replied). */
int api_submit_upload(http_req *r, app *a, upload *u, json_t *opts, int openai_style)
{
    char err[256];
    job_submit s = {
        .filename = upload_filename(u),
        .upload_path = upload_path(u),
        .size_bytes = upload_size(u),
        .duration = upload_duration(u),
        .options = opts,
    };
    if (jobs_submit(a->jobs, upload_id(u), &s, err, sizeof err) != 0) {
        api_error(r, openai_style, 500, NULL, "%s", err);
        return -1;
    }
    upload_commit(u);
    return 0;
}

void api_jobs_create(http_req *r, void *appv)
{
    app *a = appv;
    upload *u = upload_finish(r, a, 0);
    if (!u) return;
    json_t *opts = api_job_options(r, u, 0);
    if (!opts) return;
    int rc = api_submit_upload(r, a, u, opts, 0);
    json_decref(opts);
    if (rc != 0) return;
    char *loc = xasprintf("/api/jobs/%s", upload_id(u));
    http_add_header(r, "Location", loc);
    free(loc);
    json_t *j = jobs_get_json(a->jobs, upload_id(u));
    http_reply_json(r, 202, j ? j : json_pack("{s:s}", "id", upload_id(u)));
}

static int valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 32) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)id[i])) return 0;
    return 1;
}

void api_jobs_list(http_req *r, void *appv)
{
    app *a = appv;
    long limit = 50, offset = 0;
    const char *ls = http_query(r, "limit"), *os = http_query(r, "offset"), *state = http_query(r, "state");
    if (ls && (parse_long(ls, &limit) != 0 || limit < 1 || limit > 500)) {
        http_reply_error(r, 400, "limit must be an integer from 1 to 500");
        return;
    }
    if (os && (parse_long(os, &offset) != 0 || offset < 0 || offset > 1000000000)) {
        http_reply_error(r, 400, "offset must be a non-negative integer");
        return;
    }
    static const char *states[] = {"queued", "running", "done", "failed", "cancelled"};
    if (state) {
        int ok = 0;
        for (size_t i = 0; i < ARRAY_LEN(states); i++) ok |= strcmp(state, states[i]) == 0;
        if (!ok) {
            http_reply_error(r, 400, "unknown state '%s' (queued, running, done, failed, cancelled)", state);
            return;
        }
    }
    http_reply_json(r, 200, jobs_list_json(a->jobs, state, (int)limit, (int)offset));
}

void api_jobs_get(http_req *r, void *appv)
{
    app *a = appv;
    const char *id = http_param(r, "id");
    json_t *j = valid_id(id) ? jobs_get_json(a->jobs, id) : NULL;
    if (!j) {
        http_reply_error(r, 404, "no such job: %s", id);
        return;
    }
    http_reply_json(r, 200, j);
}

void api_jobs_delete(http_req *r, void *appv)
{
    app *a = appv;
    const char *id = http_param(r, "id");
    const char *state = valid_id(id) ? jobs_cancel(a->jobs, id) : NULL;
    if (!state) {
        http_reply_error(r, 404, "no such job: %s", id);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s,s:s}", "id", id, "state", state));
}

/* Reply with a done job's transcript in fmt; also used by /v1. */
void api_reply_transcript(http_req *r, const transcript *t, enum transcript_format fmt, int words)
{
    char *s = transcript_render(t, fmt, words);
    http_reply_data(r, 200, transcript_format_content_type(fmt), s, strlen(s));
    free(s);
}

void api_jobs_transcript(http_req *r, void *appv)
{
    app *a = appv;
    const char *id = http_param(r, "id");
    const char *fs = http_query(r, "format");
    enum transcript_format fmt = transcript_format_parse(fs ? fs : "json");
    if (fmt == TRANSCRIPT_FMT_INVALID) {
        http_reply_error(r, 400, "unknown format '%s' (json, verbose_json, diarized_json, srt, vtt, "
                         "txt)", fs);
        return;
    }
    const char *state = NULL;
    transcript *t = valid_id(id) ? jobs_transcript(a->jobs, id, &state) : NULL;
    if (!t) {
        if (!state) http_reply_error(r, 404, "no such job: %s", id);
        else http_reply_error(r, 409, "job %s has no transcript: it is %s", id, state);
        return;
    }
    const char *w = http_query(r, "words");
    if (fs && strcmp(fs, "txt") == 0) fmt = TRANSCRIPT_FMT_TEXT;
    if (http_query(r, "download")) {
        static const char *ext[] = {"json", "txt", "srt", "vtt", "json"};
        const char *e = ext[0];
        if (fmt == TRANSCRIPT_FMT_TEXT) e = ext[1];
        else if (fmt == TRANSCRIPT_FMT_SRT) e = ext[2];
        else if (fmt == TRANSCRIPT_FMT_VTT) e = ext[3];
        char *cd = xasprintf("attachment; filename=\"transcript-%s.%s\"", id, e);
        http_add_header(r, "Content-Disposition", cd);
        free(cd);
    }
    api_reply_transcript(r, t, fmt, !w || strcmp(w, "0") != 0);
    transcript_free(t);
}

/* PATCH /api/jobs/{id}/speakers {"1": "Alice", "2": null}: rename; answers the speakers */
void api_jobs_speakers(http_req *r, void *appv)
{
    app *a = appv;
    const char *id = http_param(r, "id");
    if (!valid_id(id)) {
        http_reply_error(r, 404, "no such job: %s", id);
        return;
    }
    json_t *body = http_body_json(r);
    if (!body) return;
    if (json_object_size(body) == 0) {
        json_decref(body);
        http_reply_error(r, 400, "send a JSON object mapping speaker ids to names, e.g. "
                                 "{\"1\": \"Alice\"}");
        return;
    }
    char err[256] = "";
    int status = jobs_rename_speakers(a->jobs, id, body, err, sizeof err);
    json_decref(body);
    if (status != 200) {
        http_reply_error(r, status, "%s", err);
        return;
    }
    transcript *t = jobs_transcript(a->jobs, id, NULL);
    json_t *sp = json_array();
    for (size_t i = 0; t && i < t->n_speakers; i++) {
        char b[32];
        json_array_append_new(sp, json_pack("{s:i,s:s,s:f}", "id", (int)i + 1, "name",
                                            transcript_speaker_label(t, (int)i, b, sizeof b),
                                            "talk_time", t->speakers[i].talk_time));
    }
    transcript_free(t);
    http_reply_json(r, 200, json_pack("{s:s,s:o}", "id", id, "speakers", sp));
}

void api_jobs_audio(http_req *r, void *appv)
{
    app *a = appv;
    const char *id = http_param(r, "id");
    if (!valid_id(id)) {
        http_reply_error(r, 404, "no such job: %s", id);
        return;
    }
    char *path = xasprintf("%s/jobs/%s/upload", config_str(a->cfg, CFG_DATA_DIR), id);
    audio_info info;
    char err[128];
    const char *mime = "application/octet-stream";
    if (audio_probe(path, &info, err, sizeof err) == 0) {
        static const struct { const char *fmt, *mime; } m[] = {
            {"wav", "audio/wav"}, {"mp3", "audio/mpeg"}, {"flac", "audio/flac"}, {"ogg", "audio/ogg"},
            {"matroska", "audio/webm"}, {"mov", "audio/mp4"}, {"aac", "audio/aac"}};
        for (size_t i = 0; i < ARRAY_LEN(m); i++)
            if (strcmp(info.format, m[i].fmt) == 0) mime = m[i].mime;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        http_reply_error(r, 404, "no audio for job %s", id);
        return;
    }
    http_reply_fd(r, 200, mime, fd, (size_t)st.st_size);
}

/* ---- GET /api/jobs/{id}/peaks?n=N: the waveform outline of the job's 16 kHz mono audio.wav,
 * computed on the background pool (the file may be hours long) and cached beside it as
 * peaks-N.json (used while it is newer than audio.wav; it goes with the job's directory). */

#define PEAKS_DEFAULT_N 800

typedef struct peaks_job {
    char *dir;        /* DATA_DIR/jobs/<id> */
    char id[40];
    size_t n;
    json_t *result;   /* the reply, or NULL: status/err */
    int status;
    char err[256];
} peaks_job;

static void peaks_job_free(void *p)
{
    peaks_job *j = p;
    free(j->dir);
    json_decref(j->result);
    free(j);
}

static void peaks_work(void *p)
{
    peaks_job *j = p;
    char *wav = xasprintf("%s/audio.wav", j->dir);
    char *cache = xasprintf("%s/peaks-%zu.json", j->dir, j->n);
    struct stat ws, cs;
    if (stat(wav, &ws) != 0) {
        j->status = 404;
        snprintf(j->err, sizeof j->err, "no audio for job %s", j->id);
        goto out;
    }
    if (stat(cache, &cs) == 0 && S_ISREG(cs.st_mode) &&
        (cs.st_mtim.tv_sec > ws.st_mtim.tv_sec ||
         (cs.st_mtim.tv_sec == ws.st_mtim.tv_sec && cs.st_mtim.tv_nsec >= ws.st_mtim.tv_nsec))) {
        json_t *c = json_load_file(cache, 0, NULL);
        if (json_is_object(c) && json_is_array(json_object_get(c, "min"))) {
            json_object_set_new(c, "cached", json_true());
            j->result = c;
            goto out;
        }
        json_decref(c); /* unreadable: computed again and replaced */
    }
    audio_peaks pk;
    char err[128];
    if (audio_peaks_file(wav, j->n, &pk, err, sizeof err) != 0) {
        j->status = 500;
        snprintf(j->err, sizeof j->err, "cannot read the audio of job %s: %s", j->id, err);
        goto out;
    }
    json_t *mn = json_array(), *mx = json_array();
    for (size_t i = 0; i < pk.n; i++) {
        json_array_append_new(mn, json_integer(pk.min[i]));
        json_array_append_new(mx, json_integer(pk.max[i]));
    }
    json_t *res = json_pack("{s:s,s:I,s:i,s:I,s:f,s:o,s:o}", "job_id", j->id, "n", (json_int_t)pk.n,
                            "rate", pk.rate, "samples", (json_int_t)pk.nsamples, "duration",
                            pk.rate > 0 ? (double)pk.nsamples / pk.rate : 0.0, "min", mn, "max", mx);
    audio_peaks_release(&pk);
    char *text = res ? json_dumps(res, JSON_COMPACT) : NULL;
    if (text && write_file_atomic(cache, text, strlen(text), 0600) != 0)
        LOG_W("api", "job %s: cannot cache its peaks in %s", j->id, cache);
    free(text);
    if (res) json_object_set_new(res, "cached", json_false());
    j->result = res;
    if (!res) {
        j->status = 500;
        snprintf(j->err, sizeof j->err, "out of memory");
    }
out:
    free(wav);
    free(cache);
}

void api_jobs_peaks(http_req *r, void *appv)
{
    app *a = appv;
    peaks_job *done = api_deferred(r);
    if (done) {
        if (done->result) http_reply_json(r, 200, json_incref(done->result));
        else http_reply_error(r, done->status, "%s", done->err);
        return;
    }
    const char *id = http_param(r, "id");
    json_t *job = valid_id(id) ? jobs_get_json(a->jobs, id) : NULL;
    if (!job) {
        http_reply_error(r, 404, "no such job: %s", id);
        return;
    }
    json_decref(job);
    long n = PEAKS_DEFAULT_N;
    const char *ns = http_query(r, "n");
    if (ns && (parse_long(ns, &n) != 0 || n < PEAKS_MIN_N || n > PEAKS_MAX_N)) {
        http_reply_error(r, 400, "n must be an integer from %d to %d (peaks across the audio)",
                         PEAKS_MIN_N, PEAKS_MAX_N);
        return;
    }
    peaks_job *j = xcalloc(1, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    j->n = (size_t)n;
    j->dir = xasprintf("%s/jobs/%s", config_str(a->cfg, CFG_DATA_DIR), id);
    api_defer(r, a, j, peaks_work, peaks_job_free);
}
