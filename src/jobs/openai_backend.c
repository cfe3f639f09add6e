/* openai_backend: see openai_backend.h. */
#define _GNU_SOURCE
#include "jobs/openai_backend.h"

#include "core/httpc.h"
#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include "core/curl_dl.h"
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX ((size_t)64 << 20)

struct oa_resp {
    buf body;
    long retry_after_s;
    char errbuf[CURL_ERROR_SIZE];
};

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct oa_resp *r = ud;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        long v = strtol(p + 12, NULL, 10);
        if (v > 0) r->retry_after_s = v;
    }
    return len;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Copy msg into err with the key, and anything that looks like an OpenAI key (sk-...),
 * replaced by [REDACTED]. */
static void scrub_into(char *err, size_t errlen, const char *prefix, const char *msg,
                       const char *key)
{
    buf b;
    buf_init(&b, 0);
    (void)!buf_appendf(&b, "%s", prefix);
    size_t kl = key ? strlen(key) : 0;
    for (const char *p = msg; *p;) {
        if (kl >= 4 && strncmp(p, key, kl) == 0) {
            (void)!buf_appendf(&b, "[REDACTED]");
            p += kl;
        } else if (strncmp(p, "sk-", 3) == 0 && (p == msg || !isalnum((unsigned char)p[-1]))) {
            (void)!buf_appendf(&b, "[REDACTED]");
            while (*p && !isspace((unsigned char)*p) && *p != '.' && *p != ',' && *p != '"') p++;
        } else {
            (void)!buf_append(&b, p, 1);
            p++;
        }
    }
    char *safe = log_redact(b.data ? b.data : "");
    snprintf(err, errlen, "%s", safe);
    free(safe);
    buf_release(&b);
}

static const char *lang_code(const char *name, char *out, size_t outlen)
{
    if (!name || !*name) return NULL;
    /* already a code? */
    if (strcmp(transcript_language_name(name), name) != 0) return name;
    char c[4];
    for (char a = 'a'; a <= 'z'; a++)
        for (char b = 'a'; b <= 'z'; b++) {
            c[0] = a, c[1] = b, c[2] = '\0';
            if (strcasecmp(transcript_language_name(c), name) == 0) {
                snprintf(out, outlen, "%s", c);
                return out;
            }
        }
    static const char *three[] = {"haw", "yue"};
    for (size_t i = 0; i < ARRAY_LEN(three); i++)
        if (strcasecmp(transcript_language_name(three[i]), name) == 0) {
            snprintf(out, outlen, "%s", three[i]);
            return out;
        }
    return NULL;
}

static double num_or(json_t *v, double def)
{
    return json_is_number(v) ? json_number_value(v) : def;
}

static transcript *parse_verbose(const char *body, const engine_opts *o, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(body, 0, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "bad response from the openai api: not a JSON object");
        json_decref(root);
        return NULL;
    }
    json_t *segs = json_object_get(root, "segments"), *words = json_object_get(root, "words");
    const char *text = json_string_value(json_object_get(root, "text"));
    if (!json_is_array(segs) && !text) {
        snprintf(err, errlen, "bad response from the openai api: no text and no segments");
        json_decref(root);
        return NULL;
    }
    char codebuf[8];
    const char *lang = NULL;
    if (o && o->language && *o->language && strcasecmp(o->language, "auto") != 0)
        lang = o->language;
    else
        lang = lang_code(json_string_value(json_object_get(root, "language")), codebuf,
                         sizeof codebuf);
    double dur = num_or(json_object_get(root, "duration"), 0);
    transcript *t = transcript_new(lang, dur > 0 && isfinite(dur) ? dur : 0);
    t->translated = o && o->translate;
    t->temperature = o ? o->temperature : 0;
    size_t i;
    json_t *s;
    double last_end = 0;
    json_array_foreach(segs, i, s) {
        if (!json_is_object(s)) continue;
        const char *st = json_string_value(json_object_get(s, "text"));
        double a = num_or(json_object_get(s, "start"), last_end);
        double b = num_or(json_object_get(s, "end"), a);
        transcript_segment *seg = transcript_add_segment(t, a, b, st ? st : "");
        seg->avg_logprob = num_or(json_object_get(s, "avg_logprob"), NAN);
        seg->no_speech_prob = num_or(json_object_get(s, "no_speech_prob"), 0);
        seg->compression_ratio = num_or(json_object_get(s, "compression_ratio"), 0);
        double temp = num_or(json_object_get(s, "temperature"), 0);
        if (temp > t->temperature) t->temperature = temp;
        last_end = seg->end;
    }
    if (t->n_segments == 0 && text && *text) {
        double end = dur;
        size_t nw = json_array_size(words);
        if (nw) end = fmax(end, num_or(json_object_get(json_array_get(words, nw - 1), "end"), 0));
        transcript_add_segment(t, 0, end, text);
    }
    if (t->n_segments && json_is_array(words)) {
        size_t k = 0;
        json_t *w;
        json_array_foreach(words, i, w) {
            const char *ws = json_string_value(json_object_get(w, "word"));
            if (!ws) continue;
            double a = num_or(json_object_get(w, "start"), 0);
            double b = num_or(json_object_get(w, "end"), a);
            double mid = (a + b) / 2;
            while (k + 1 < t->n_segments && mid >= t->segments[k + 1].start) k++;
            segment_add_word(&t->segments[k], a, b, ws, -1);
        }
    }
    if (t->duration <= 0 && t->n_segments) t->duration = t->segments[t->n_segments - 1].end;
    json_decref(root);
    return t;
}

static int retryable_curl(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR ||
           cc == CURLE_GOT_NOTHING || cc == CURLE_COULDNT_RESOLVE_HOST ||
           cc == CURLE_PARTIAL_FILE;
}

transcript *openai_transcribe_ex(const char *base_url, const char *api_key,
                                 const char *audio_path, const engine_opts *o,
                                 const openai_limits *lim, char *err, size_t errlen)
{
    openai_limits L = lim ? *lim : (openai_limits){0};
    if (L.connect_timeout_ms <= 0) L.connect_timeout_ms = 15000;
    if (L.timeout_ms <= 0) L.timeout_ms = 15L * 60 * 1000;
    if (L.max_attempts <= 0) L.max_attempts = 3;
    if (L.backoff_ms <= 0) L.backoff_ms = 1000;
    if (!api_key || !*api_key) {
        snprintf(err, errlen, "OPENAI_API_KEY is not set");
        return NULL;
    }
    if (!base_url || !*base_url) base_url = "https://api.openai.com/v1";
    struct stat sb;
    if (stat(audio_path, &sb) != 0) {
        snprintf(err, errlen, "cannot open %s: %s", audio_path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "cannot open %s: not a regular file", audio_path);
        return NULL;
    }
    size_t bl = strlen(base_url);
    while (bl && base_url[bl - 1] == '/') bl--;
    int translate = o && o->translate;
    char *url = xasprintf("%.*s/audio/%s", (int)bl, base_url,
                          translate ? "translations" : "transcriptions");
    char *auth = xasprintf("Authorization: Bearer %s", api_key);
    const char *slash = strrchr(audio_path, '/');
    const char *fname = slash ? slash + 1 : audio_path;

    transcript *t = NULL;
    CURL *c = curl_dl_easy(err, errlen);
    if (!c) goto done;
    long backoff = L.backoff_ms;
    for (int attempt = 1;; attempt++) {
        struct oa_resp r = {0};
        buf_init(&r.body, RESP_MAX);
        gs_curl.curl_easy_reset(c);
        curl_mime *m = gs_curl.curl_mime_init(c);
        curl_mimepart *p = gs_curl.curl_mime_addpart(m);
        gs_curl.curl_mime_name(p, "file");
        gs_curl.curl_mime_filedata(p, audio_path);
        gs_curl.curl_mime_filename(p, fname);
        struct { const char *k; const char *v; } fields[8];
        size_t nf = 0;
        char temp[32];
        snprintf(temp, sizeof temp, "%g", o ? o->temperature : 0.0);
        fields[nf++] = (typeof(fields[0])){"model", "whisper-1"};
        fields[nf++] = (typeof(fields[0])){"response_format", "verbose_json"};
        if (!translate) {
            fields[nf++] = (typeof(fields[0])){"timestamp_granularities[]", "segment"};
            if (o && o->word_timestamps)
                fields[nf++] = (typeof(fields[0])){"timestamp_granularities[]", "word"};
            if (o && o->language && *o->language && strcasecmp(o->language, "auto") != 0)
                fields[nf++] = (typeof(fields[0])){"language", o->language};
        }
        if (o && o->prompt && *o->prompt) fields[nf++] = (typeof(fields[0])){"prompt", o->prompt};
        fields[nf++] = (typeof(fields[0])){"temperature", temp};
        for (size_t i = 0; i < nf; i++) {
            p = gs_curl.curl_mime_addpart(m);
            gs_curl.curl_mime_name(p, fields[i].k);
            gs_curl.curl_mime_data(p, fields[i].v, CURL_ZERO_TERMINATED);
        }
        struct curl_slist *h = gs_curl.curl_slist_append(NULL, auth);
        h = gs_curl.curl_slist_append(h, "Accept: application/json");
        h = gs_curl.curl_slist_append(h, "Expect:");
        httpc_setup(c, url, h, &r.body, r.errbuf);
        gs_curl.curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
        gs_curl.curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, L.connect_timeout_ms);
        gs_curl.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, L.timeout_ms);
        gs_curl.curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        gs_curl.curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
        CURLcode cc = gs_curl.curl_easy_perform(c);
        long status = 0;
        gs_curl.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        gs_curl.curl_slist_free_all(h);
        gs_curl.curl_mime_free(m);
        int retry = 0;
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            snprintf(err, errlen, "openai api timed out after %.0f s", (double)L.timeout_ms / 1000);
        } else if (cc != CURLE_OK) {
            char *msg = xasprintf("cannot reach the openai api at %.*s: %s", (int)bl, base_url,
                                  r.errbuf[0] ? r.errbuf : gs_curl.curl_easy_strerror(cc));
            scrub_into(err, errlen, "", msg, api_key);
            free(msg);
            retry = retryable_curl(cc);
        } else if (status == 200) {
            t = parse_verbose(r.body.data ? r.body.data : "", o, err, errlen);
        } else {
            json_t *j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
            const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
            if (!msg) msg = json_string_value(json_object_get(j, "error"));
            char prefix[64];
            snprintf(prefix, sizeof prefix, "openai api error (HTTP %ld): ", status);
            scrub_into(err, errlen, prefix, msg ? msg : "unexpected response", api_key);
            json_decref(j);
            retry = status == 429 || status >= 500;
        }
        long wait = r.retry_after_s > 0 ? (r.retry_after_s > 10 ? 10000 : r.retry_after_s * 1000)
                                        : backoff;
        buf_release(&r.body);
        if (t || !retry || attempt >= L.max_attempts) break;
        LOG_W("openai", "attempt %d failed (%s); retrying in %.1f s", attempt, err,
              (double)wait / 1000);
        sleep_ms(wait);
        backoff *= 2;
    }
done:
    if (c) gs_curl.curl_easy_cleanup(c);
    free(url);
    free(auth);
    return t;
}

transcript *openai_transcribe(const char *base_url, const char *api_key, const char *audio_path,
                              const engine_opts *o, char *err, size_t errlen)
{
    return openai_transcribe_ex(base_url, api_key, audio_path, o, NULL, err, errlen);
}
