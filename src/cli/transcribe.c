/* cli transcribe: `gpuscribe transcribe FILE [--format json|verbose_json|srt|vtt|txt]
 * [--language en] [--word-timestamps] [-o OUT] [--server URL] [--model M]`.
 *
 * Without --server: decode FILE locally (audio_decode_file), run the engine in-process
 * (ENGINE / --engine, --model), render the format. With --server URL: POST URL/api/jobs
 * (multipart: file, language, response_format), poll GET URL/api/jobs/{id} until the job is
 * done, then GET URL/api/jobs/{id}/transcript?format=FMT; Authorization: Bearer API_TOKEN when
 * configured. A progress bar goes to stderr only when stderr is a terminal. The transcript
 * goes to stdout or, written atomically, to OUT. Exit 0 success, 1 failure, 2 usage. */
#define _GNU_SOURCE
#include "cli/cli.h"

#include "audio/audio.h"
#include "core/config.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/util.h"
#include "engine/engine.h"
#include "transcript/transcript.h"

#include "core/curl_dl.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SERVER_WAIT_MAX_S (48.0 * 3600.0)

static void tr_usage(FILE *out)
{
    fprintf(out,
            "Usage: gpuscribe transcribe FILE [--format json|verbose_json|srt|vtt|txt]\n"
            "                 [--language CODE] [--word-timestamps] [-o OUT] [--server URL]\n"
            "                 [--engine auto|sphinx|whisper] [--model NAME]\n\n"
            "Transcribe FILE (any common audio format). Without --server the engine runs\n"
            "here; with --server URL the file goes to a running `gpuscribe serve` (its\n"
            "API_TOKEN is sent when configured). The transcript goes to stdout or to OUT\n"
            "(default format: txt).\n");
}

/* ---- progress bar (stderr, only on a terminal) */

struct bar {
    int on;
    int last_pct;
    double t0;
};

static void bar_show(struct bar *b, double f, const char *what)
{
    if (!b->on) return;
    int pct = (int)(f * 100 + 0.5);
    if (pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    if (pct == b->last_pct) return;
    b->last_pct = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r%-12s [%s] %3d%% %5.0fs", what, bar, pct, now_mono() - b->t0);
    fflush(stderr);
}

static void bar_end(struct bar *b)
{
    if (b->on && b->last_pct >= 0) fputc('\n', stderr);
}

static int engine_progress(void *ud, double f)
{
    bar_show(ud, f, "transcribing");
    return 0;
}

/* ---- output */

static int emit_raw(const char *out_path, const char *data, size_t len)
{
    if (!out_path || strcmp(out_path, "-") == 0) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
            fprintf(stderr, "gpuscribe transcribe: cannot write to stdout: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    /* a device or fifo (-o /dev/stdout, -o /dev/null) is written through, never replaced */
    struct stat st;
    if (stat(out_path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
        int fd = open(out_path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        int rc = fd < 0 ? -1 : 0;
        for (size_t off = 0; rc == 0 && off < len;) {
            ssize_t w = write(fd, data + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) rc = -1;
            else off += (size_t)w;
        }
        int e = errno;
        if (fd >= 0 && close(fd) != 0 && rc == 0) { rc = -1; e = errno; }
        if (rc != 0) {
            fprintf(stderr, "gpuscribe transcribe: cannot write %s: %s\n", out_path, strerror(e));
            return 1;
        }
        return 0;
    }
    if (write_file_atomic(out_path, data, len, 0644) != 0) {
        if (errno == EINVAL) {
            fprintf(stderr, "gpuscribe transcribe: cannot write %s: it is %s, not a regular file\n",
                    out_path, stat(out_path, &st) == 0 ? file_kind(st.st_mode) : "not a regular file");
            return 1;
        }
        fprintf(stderr, "gpuscribe transcribe: cannot write %s: %s\n", out_path, strerror(errno));
        return 1;
    }
    return 0;
}

static int emit(const char *out_path, const char *data, size_t len)
{
    char *owned = NULL;
    if (len && data[len - 1] != '\n') { /* JSON bodies: end with a newline like text files */
        owned = xmalloc(len + 1);
        memcpy(owned, data, len);
        owned[len++] = '\n';
        data = owned;
    }
    int rc = emit_raw(out_path, data, len);
    free(owned);
    return rc;
}

/* ---- local */

static int run_local(const config *cfg, const char *path, enum transcript_format fmt,
                     const char *lang, const char *model, int words, const char *out_path)
{
    char err[512];
    struct bar b = {.on = isatty(2), .last_pct = -1, .t0 = now_mono()};
    audio_pcm pcm;
    if (audio_decode_file(path, 0, &pcm, err, sizeof err) != 0) {
        fprintf(stderr, "gpuscribe transcribe: %s: %s\n", path, err);
        return 1;
    }
    const char *eng = config_str(cfg, CFG_ENGINE);
    if (!model && strcmp(eng, "sphinx") != 0) model = config_str(cfg, CFG_WHISPER_MODEL);
    engine *e = engine_open(eng, model, err, sizeof err);
    if (!e) {
        audio_pcm_release(&pcm);
        fprintf(stderr, "gpuscribe transcribe: %s\n", err);
        return 1;
    }
    engine_opts o = {.language = lang, .word_timestamps = words};
    double t0 = now_mono();
    transcript *t = engine_transcribe(e, pcm.samples, pcm.nsamples, &o, engine_progress, &b, err,
                                      sizeof err);
    bar_end(&b);
    double secs = now_mono() - t0, audio = (double)pcm.nsamples / AUDIO_RATE;
    audio_pcm_release(&pcm);
    int rc = 1;
    if (!t) {
        fprintf(stderr, "gpuscribe transcribe: %s\n", err);
    } else {
        LOG_D("transcribe", "%.1f s of audio in %.2f s with %s (RTF %.3f)", audio, secs,
              engine_name(e), audio > 0 ? secs / audio : 0);
        char *s = transcript_render(t, fmt, words);
        rc = emit(out_path, s, strlen(s));
        free(s);
        transcript_free(t);
    }
    engine_close(e);
    return rc;
}

/* ---- through a server */

struct http_out {
    long status;
    buf body;
    char errbuf[CURL_ERROR_SIZE];
};

static CURLcode srv_req(CURL *c, const char *url, struct curl_slist *hdr, curl_mime *mime,
                        long timeout_ms, struct http_out *o)
{
    gs_curl.curl_easy_reset(c);
    buf_release(&o->body);
    buf_init(&o->body, (size_t)256 << 20);
    o->status = 0;
    httpc_setup(c, url, hdr, &o->body, o->errbuf);
    gs_curl.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    gs_curl.curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    gs_curl.curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (timeout_ms > 0) gs_curl.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (mime) gs_curl.curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    CURLcode cc = gs_curl.curl_easy_perform(c);
    gs_curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &o->status);
    return cc;
}

static const char *srv_error(const struct http_out *o, char *tmp, size_t tmplen)
{
    json_t *j = json_loads(o->body.data ? o->body.data : "", 0, NULL);
    const char *e = json_string_value(json_object_get(j, "error"));
    snprintf(tmp, tmplen, "%s", e ? e : (o->body.len && o->body.len < 200 ? o->body.data
                                                                           : "unexpected response"));
    json_decref(j);
    return tmp;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int run_server(const config *cfg, const char *server, const char *path,
                      enum transcript_format fmt, const char *lang, const char *out_path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "gpuscribe transcribe: %s: %s\n", path,
                errno == ENOENT ? "file not found" : strerror(errno));
        return 1;
    }
    if (!S_ISREG(sb.st_mode)) {
        fprintf(stderr, "gpuscribe transcribe: %s: not a regular file\n", path);
        return 1;
    }
    size_t bl = strlen(server);
    while (bl && server[bl - 1] == '/') bl--;
    char *base = xstrndup(server, bl);
    int rc = 1;
    char msg[512];
    struct bar b = {.on = isatty(2), .last_pct = -1, .t0 = now_mono()};
    char cerr[256];
    CURL *c = curl_dl_easy(cerr, sizeof cerr);
    if (!c) {
        fprintf(stderr, "gpuscribe transcribe: %s\n", cerr);
        free(base);
        return 1;
    }
    struct http_out o = {0};
    buf_init(&o.body, 0);
    struct curl_slist *hdr = gs_curl.curl_slist_append(NULL, "Expect:");
    if (config_isset(cfg, CFG_API_TOKEN)) {
        char *h = xasprintf("Authorization: Bearer %s", config_str(cfg, CFG_API_TOKEN));
        hdr = gs_curl.curl_slist_append(hdr, h);
        free(h);
    }
    char *url = NULL, *id = NULL;
    json_t *j = NULL;

    /* ---- upload */
    curl_mime *m = gs_curl.curl_mime_init(c);
    curl_mimepart *p = gs_curl.curl_mime_addpart(m);
    gs_curl.curl_mime_name(p, "file");
    gs_curl.curl_mime_filedata(p, path);
    if (lang) {
        p = gs_curl.curl_mime_addpart(m);
        gs_curl.curl_mime_name(p, "language");
        gs_curl.curl_mime_data(p, lang, CURL_ZERO_TERMINATED);
    }
    p = gs_curl.curl_mime_addpart(m);
    gs_curl.curl_mime_name(p, "response_format");
    gs_curl.curl_mime_data(p, transcript_format_name(fmt), CURL_ZERO_TERMINATED);
    url = xasprintf("%s/api/jobs", base);
    if (b.on) fprintf(stderr, "uploading %s...\n", path);
    CURLcode cc = srv_req(c, url, hdr, m, 0, &o);
    gs_curl.curl_mime_free(m);
    if (cc != CURLE_OK) {
        fprintf(stderr, "gpuscribe transcribe: cannot reach the server at %s: %s\n"
                        "Is `gpuscribe serve` running?\n", base,
                o.errbuf[0] ? o.errbuf : gs_curl.curl_easy_strerror(cc));
        goto out;
    }
    if (o.status != 200 && o.status != 201 && o.status != 202) {
        fprintf(stderr, "gpuscribe transcribe: the server refused the file (HTTP %ld): %s\n",
                o.status, srv_error(&o, msg, sizeof msg));
        goto out;
    }
    j = json_loads(o.body.data ? o.body.data : "", 0, NULL);
    json_t *jid = json_object_get(j, "id");
    if (json_is_string(jid)) id = xstrdup(json_string_value(jid));
    else if (json_is_integer(jid)) id = xasprintf("%lld", (long long)json_integer_value(jid));
    if (!id || !*id || strchr(id, '/') || strchr(id, '?')) {
        fprintf(stderr, "gpuscribe transcribe: unexpected answer from the server: no job id\n");
        goto out;
    }

    /* ---- wait */
    free(url);
    url = xasprintf("%s/api/jobs/%s", base, id);
    double t0 = now_mono(), outage = 0;
    for (;;) {
        const char *state = json_string_value(json_object_get(j, "state"));
        double f = json_number_value(json_object_get(j, "progress"));
        if (state && strcmp(state, "done") == 0) break;
        if (state && (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0)) {
            bar_end(&b);
            const char *e = json_string_value(json_object_get(j, "error"));
            fprintf(stderr, "gpuscribe transcribe: job %s %s%s%s\n", id, state, e ? ": " : "",
                    e ? e : "");
            goto out;
        }
        bar_show(&b, f, state && !strcmp(state, "queued") ? "queued" : "transcribing");
        if (now_mono() - t0 > SERVER_WAIT_MAX_S) {
            fprintf(stderr, "gpuscribe transcribe: gave up waiting for job %s\n", id);
            goto out;
        }
        sleep_ms(500);
        cc = srv_req(c, url, hdr, NULL, 15000, &o);
        if (cc != CURLE_OK) {
            if (!outage) outage = now_mono();
            if (now_mono() - outage > 30) {
                bar_end(&b);
                fprintf(stderr, "gpuscribe transcribe: lost the server at %s: %s (job %s)\n",
                        base, o.errbuf[0] ? o.errbuf : gs_curl.curl_easy_strerror(cc), id);
                goto out;
            }
            continue;
        }
        outage = 0;
        if (o.status != 200) {
            bar_end(&b);
            fprintf(stderr, "gpuscribe transcribe: job %s: HTTP %ld: %s\n", id, o.status,
                    srv_error(&o, msg, sizeof msg));
            goto out;
        }
        json_decref(j);
        j = json_loads(o.body.data ? o.body.data : "", 0, NULL);
    }
    bar_show(&b, 1, "transcribing");
    bar_end(&b);

    /* ---- fetch */
    free(url);
    url = xasprintf("%s/api/jobs/%s/transcript?format=%s", base, id, transcript_format_name(fmt));
    cc = srv_req(c, url, hdr, NULL, 120000, &o);
    if (cc != CURLE_OK) {
        fprintf(stderr, "gpuscribe transcribe: cannot fetch the transcript: %s\n",
                o.errbuf[0] ? o.errbuf : gs_curl.curl_easy_strerror(cc));
        goto out;
    }
    if (o.status != 200) {
        fprintf(stderr, "gpuscribe transcribe: cannot fetch the transcript (HTTP %ld): %s\n",
                o.status, srv_error(&o, msg, sizeof msg));
        goto out;
    }
    rc = emit(out_path, o.body.data ? o.body.data : "", o.body.len);
out:
    json_decref(j);
    free(id);
    free(url);
    free(base);
    buf_release(&o.body);
    gs_curl.curl_slist_free_all(hdr);
    gs_curl.curl_easy_cleanup(c);
    return rc;
}

/* ---- entry */

int cli_transcribe(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tr_usage(stdout);
            return 0;
        }
    char err[512];
    char **rest = NULL;
    config *cfg = config_load(argc, argv, &rest, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "gpuscribe transcribe: %s\n", err);
        return 2;
    }
    log_set_level((enum log_level)log_parse_level(config_str(cfg, CFG_LOG_LEVEL)));
    int rc = 2, words = 0;
    const char *file = NULL, *format = "txt", *lang = NULL, *out_path = NULL, *server = NULL,
               *model = NULL;
    for (int i = 0; rest && rest[i]; i++) {
        const char *a = rest[i];
        const char **slot = NULL;
        const char *name = a;
        if (!strcmp(a, "--word-timestamps")) { words = 1; continue; }
        if (!strncmp(a, "--format", 8)) slot = &format, name = "--format";
        else if (!strncmp(a, "--language", 10)) slot = &lang, name = "--language";
        else if (!strncmp(a, "--server", 8)) slot = &server, name = "--server";
        else if (!strncmp(a, "--model", 7)) slot = &model, name = "--model";
        else if (!strcmp(a, "-o") || !strncmp(a, "--output", 8))
            slot = &out_path, name = a[1] == 'o' ? "-o" : "--output";
        if (slot) {
            size_t nl = strlen(name);
            if (a[nl] == '=') *slot = a + nl + 1;
            else if (a[nl] != '\0') slot = NULL; /* e.g. --formats: unknown */
            else if (!rest[i + 1]) {
                fprintf(stderr, "gpuscribe transcribe: %s needs a value\n", name);
                goto out;
            } else {
                *slot = rest[++i];
            }
            if (slot) continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "gpuscribe transcribe: unknown option '%s' (see gpuscribe transcribe "
                            "--help)\n", a);
            goto out;
        }
        if (file) {
            fprintf(stderr, "gpuscribe transcribe: one FILE at a time ('%s' and '%s')\n", file, a);
            goto out;
        }
        file = a;
    }
    if (!file) {
        fprintf(stderr, "gpuscribe transcribe: which FILE? (see gpuscribe transcribe --help)\n");
        goto out;
    }
    enum transcript_format fmt = transcript_format_parse(format);
    if (fmt == TRANSCRIPT_FMT_INVALID) {
        fprintf(stderr, "gpuscribe transcribe: unknown format '%s' (expected json, verbose_json, "
                        "srt, vtt or txt)\n", format);
        goto out;
    }
    if (lang && (!*lang || strlen(lang) > 16)) {
        fprintf(stderr, "gpuscribe transcribe: invalid --language '%s'\n", lang);
        goto out;
    }
    if (server) {
        if (!str_starts(server, "http://") && !str_starts(server, "https://")) {
            fprintf(stderr, "gpuscribe transcribe: --server takes an http:// or https:// URL, "
                            "not '%s'\n", server);
            goto out;
        }
        rc = run_server(cfg, server, file, fmt, lang, out_path);
        curl_dl_cleanup();
    } else {
        rc = run_local(cfg, file, fmt, lang, model, words, out_path);
    }
out:
    free(rest);
    config_free(cfg);
    return rc;
}
