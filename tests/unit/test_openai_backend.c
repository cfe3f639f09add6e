/* Unit tests for src/jobs/openai_backend against a canned OpenAI server (our own http module
 * on loopback) that checks the multipart fields and the Authorization header: verbose_json
 * parsing (segments, words, language names), OpenAI's error shape with the key scrubbed,
 * retries on 500/429, no retry on 401, timeouts, malformed answers, text-only answers,
 * translations, unreachable servers. */
#define _GNU_SOURCE
#include "test.h"

#include "core/util.h"
#include "http/http.h"
#include "jobs/openai_backend.h"

#include <curl/curl.h>
#include <pthread.h>
#include <unistd.h>

#define KEY "sk-test-abcdef0123456789"
#define CLIP "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"

enum fake_mode { FAKE_OK, FAKE_500_ONCE, FAKE_429, FAKE_401, FAKE_SLOW, FAKE_GARBAGE, FAKE_TEXT_ONLY };

/* F is the fake's state: its handler runs on the server's threads (a timed-out request's may
 * still run while the test goes on), so both sides take F_mu; the test reads F after its
 * requests have ended. */
static pthread_mutex_t F_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    enum fake_mode mode;
    int calls;
    char path[128];
    char auth[128];
    json_t *fields;     /* name -> [values] */
    char file_name[128];
    size_t file_len;
    int file_is_wav;
} F;

static const char *VERBOSE =
    "{\"task\":\"transcribe\",\"language\":\"english\",\"duration\":3.0,"
    "\"text\":\"He was not an ill disposed young man.\",\"segments\":["
    "{\"id\":0,\"seek\":0,\"start\":0.0,\"end\":1.4,\"text\":\" He was not\",\"tokens\":[1,2],"
    "\"temperature\":0.0,\"avg_logprob\":-0.25,\"compression_ratio\":1.1,\"no_speech_prob\":0.01},"
    "{\"id\":1,\"seek\":140,\"start\":1.4,\"end\":3.0,\"text\":\" an ill disposed young man.\","
    "\"tokens\":[3],\"temperature\":0.2,\"avg_logprob\":-0.5,\"compression_ratio\":1.3,"
    "\"no_speech_prob\":0.02}],"
    "\"words\":[{\"word\":\"He\",\"start\":0.0,\"end\":0.3},{\"word\":\"was\",\"start\":0.3,\"end\":0.6},"
    "{\"word\":\"not\",\"start\":0.6,\"end\":1.3},{\"word\":\"an\",\"start\":1.5,\"end\":1.6},"
    "{\"word\":\"ill\",\"start\":1.6,\"end\":1.9},{\"word\":\"disposed\",\"start\":1.9,\"end\":2.4},"
    "{\"word\":\"young\",\"start\":2.4,\"end\":2.7},{\"word\":\"man\",\"start\":2.7,\"end\":3.0}],"
    "\"usage\":{\"type\":\"duration\",\"seconds\":3}}";

/* Parse a multipart/form-data body into F.fields / F.file_*; 0 on success. */
static int parse_multipart(const char *ctype, const char *body, size_t len)
{
    const char *bp = ctype ? strstr(ctype, "boundary=") : NULL;
    if (!bp) return -1;
    char *delim = xasprintf("--%s", bp + 9);
    size_t dl = strlen(delim);
    const char *end = body + len;
    const char *p = memmem(body, len, delim, dl);
    while (p) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break; /* closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') break;
        p += 2;
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend) break;
        char *hdrs = xstrndup(p, (size_t)(hend - p));
        const char *content = hend + 4;
        const char *next = memmem(content, (size_t)(end - content), delim, dl);
        if (!next) { free(hdrs); break; }
        size_t clen = (size_t)(next - content) - 2; /* minus the CRLF before the delimiter */
        char name[128] = "", fname[128] = "";
        const char *n = strstr(hdrs, " name=\"");
        if (n) sscanf(n + 7, "%127[^\"]", name);
        const char *fnp = strstr(hdrs, "filename=\"");
        if (fnp) sscanf(fnp + 10, "%127[^\"]", fname);
        if (fnp) {
            snprintf(F.file_name, sizeof F.file_name, "%s", fname);
            F.file_len = clen;
            F.file_is_wav = clen > 12 && memcmp(content, "RIFF", 4) == 0;
        } else if (name[0]) {
            json_t *arr = json_object_get(F.fields, name);
            if (!arr) {
                arr = json_array();
                json_object_set_new(F.fields, name, arr);
            }
            json_array_append_new(arr, json_stringn(content, clen));
        }
        free(hdrs);
        p = next;
    }
    free(delim);
    return 0;
}

static void transcriptions(http_req *r)
{
    F.calls++;
    snprintf(F.path, sizeof F.path, "%s", http_path(r));
    const char *auth = http_header(r, "Authorization");
    snprintf(F.auth, sizeof F.auth, "%s", auth ? auth : "");
    json_decref(F.fields);
    F.fields = json_object();
    size_t len;
    const char *body = http_body(r, &len);
    if (parse_multipart(http_header(r, "Content-Type"), body, len) != 0) {
        http_reply_data(r, 400, "application/json", "{\"error\":{\"message\":\"not multipart\"}}", 37);
        return;
    }
    if (!auth || strcmp(auth, "Bearer " KEY) != 0 || F.mode == FAKE_401) {
        const char *m = "{\"error\":{\"message\":\"Incorrect API key provided: " KEY
                        ". You can find your API key at https://platform.openai.com/account/api-keys.\","
                        "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}";
        http_reply_data(r, 401, "application/json", m, strlen(m));
        return;
    }
    if ((F.mode == FAKE_500_ONCE && F.calls == 1) || F.mode == FAKE_429) {
        const char *m = F.mode == FAKE_429
                            ? "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}"
                            : "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}";
        http_reply_data(r, F.mode == FAKE_429 ? 429 : 500, "application/json", m, strlen(m));
        return;
    }
    if (F.mode == FAKE_SLOW) {
        pthread_mutex_unlock(&F_mu);
        usleep(1500 * 1000);
        pthread_mutex_lock(&F_mu);
    }
    if (F.mode == FAKE_GARBAGE) {
        http_reply_data(r, 200, "application/json", "<html>oops</html>", 17);
        return;
    }
    if (F.mode == FAKE_TEXT_ONLY) {
        const char *m = "{\"text\":\"hello from a text only model\",\"duration\":2.5}";
        http_reply_data(r, 200, "application/json", m, strlen(m));
        return;
    }
    http_reply_data(r, 200, "application/json", VERBOSE, strlen(VERBOSE));
}

static void h_transcriptions(http_req *r, void *app)
{
    (void)app;
    pthread_mutex_lock(&F_mu);
    transcriptions(r);
    pthread_mutex_unlock(&F_mu);
}

static void fake_set(enum fake_mode mode, int reset_calls)
{
    pthread_mutex_lock(&F_mu);
    F.mode = mode;
    if (reset_calls) F.calls = 0;
    pthread_mutex_unlock(&F_mu);
}

static int fake_calls(void)
{
    pthread_mutex_lock(&F_mu);
    int n = F.calls;
    pthread_mutex_unlock(&F_mu);
    return n;
}

static const http_route fake_routes[] = {
    {"POST", "/v1/audio/transcriptions", h_transcriptions, 0, NULL, "fake", "fake", NULL},
    {"POST", "/v1/audio/translations", h_transcriptions, 0, NULL, "fake", "fake", NULL},
};

static http_server *fake_start(enum fake_mode mode, char **base)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fake_set(mode, 0);
    char err[256];
    http_config c = {.host = "127.0.0.1", .port = 0, .threads = 2};
    http_server *s = http_server_start(&c, fake_routes, ARRAY_LEN(fake_routes), NULL, err, sizeof err);
    if (!s) test_fail(__FILE__, __LINE__, "fake server: %s", err);
    *base = xasprintf("http://127.0.0.1:%d/v1", http_server_port(s));
    return s;
}

static void fake_stop(http_server *s, char *base)
{
    http_server_stop(s);
    free(base);
    json_decref(F.fields);
    F.fields = NULL;
    curl_global_cleanup();
}

static const char *field(const char *name, size_t i)
{
    return json_string_value(json_array_get(json_object_get(F.fields, name), i));
}

static const openai_limits FAST = {.backoff_ms = 20, .timeout_ms = 10000};

/* ---------------------------------------------------------------- tests */

TEST(openai_verbose_json_with_words)
{
    char *base;
    http_server *s = fake_start(FAKE_OK, &base);
    char err[512] = "";
    engine_opts o = {.language = "en", .prompt = "Austen, Dashwood", .temperature = 0.2,
                     .word_timestamps = 1};
    transcript *t = openai_transcribe(base, KEY, CLIP, &o, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "openai_transcribe: %s", err);
    /* what went over the wire */
    ASSERT_EQ(fake_calls(), 1);
    ASSERT_STR_EQ(F.path, "/v1/audio/transcriptions");
    ASSERT_STR_EQ(F.auth, "Bearer " KEY);
    ASSERT_STR_EQ(field("model", 0), "whisper-1");
    ASSERT_STR_EQ(field("response_format", 0), "verbose_json");
    ASSERT_STR_EQ(field("timestamp_granularities[]", 0), "segment");
    ASSERT_STR_EQ(field("timestamp_granularities[]", 1), "word");
    ASSERT_STR_EQ(field("language", 0), "en");
    ASSERT_STR_EQ(field("prompt", 0), "Austen, Dashwood");
    ASSERT_STR_EQ(field("temperature", 0), "0.2");
    ASSERT_STR_EQ(F.file_name, "sense_and_sensibility_01_austen_64kb-0880.wav");
    ASSERT_EQ(F.file_len, 95724);
    ASSERT_TRUE(F.file_is_wav);
    /* what came back */
    ASSERT_STR_EQ(t->language, "en");
    ASSERT_NEAR(t->duration, 3.0, 1e-9);
    ASSERT_NEAR(t->temperature, 0.2, 1e-9);
    ASSERT_EQ(t->n_segments, 2);
    ASSERT_STR_EQ(t->segments[0].text, "He was not");
    ASSERT_STR_EQ(t->segments[1].text, "an ill disposed young man.");
    ASSERT_NEAR(t->segments[0].avg_logprob, -0.25, 1e-12);
    ASSERT_NEAR(t->segments[1].compression_ratio, 1.3, 1e-12);
    ASSERT_NEAR(t->segments[1].no_speech_prob, 0.02, 1e-12);
    ASSERT_EQ(t->segments[0].n_words, 3);
    ASSERT_EQ(t->segments[1].n_words, 5);
    ASSERT_STR_EQ(t->segments[1].words[4].word, "man");
    ASSERT_NEAR(t->segments[1].words[4].end, 3.0, 1e-9);
    char *srt = transcript_to_srt(t);
    ASSERT_CONTAINS(srt, "1\n00:00:00,000 --> 00:00:01,400\nHe was not\n");
    free(srt);
    transcript_free(t);
    fake_stop(s, base);
}

TEST(openai_defaults_and_language_name)
{
    char *base;
    http_server *s = fake_start(FAKE_OK, &base);
    char err[512] = "";
    engine_opts o = {.language = "auto"};
    transcript *t = openai_transcribe(base, KEY, CLIP, &o, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_NULL(json_object_get(F.fields, "language"));   /* auto: let OpenAI detect */
    ASSERT_NULL(json_object_get(F.fields, "prompt"));
    ASSERT_EQ(json_array_size(json_object_get(F.fields, "timestamp_granularities[]")), 1);
    ASSERT_STR_EQ(field("temperature", 0), "0");
    ASSERT_STR_EQ(t->language, "en");                      /* "english" -> "en" */
    transcript_free(t);
    t = openai_transcribe(base, KEY, CLIP, NULL, err, sizeof err); /* NULL opts */
    ASSERT_NOT_NULL(t);
    transcript_free(t);
    fake_stop(s, base);
}

TEST(openai_error_shape_key_scrubbed)
{
    char *base;
    http_server *s = fake_start(FAKE_401, &base);
    char err[512] = "";
    ASSERT_NULL(openai_transcribe_ex(base, KEY, CLIP, NULL, &FAST, err, sizeof err));
    ASSERT_CONTAINS(err, "openai api error (HTTP 401): Incorrect API key provided: [REDACTED]");
    ASSERT_NOT_CONTAINS(err, KEY);
    ASSERT_NOT_CONTAINS(err, "abcdef0123456789");
    ASSERT_EQ(fake_calls(), 1); /* 401 is not retried */
    /* a wrong key: the fake refuses it, and neither key shows */
    ASSERT_NULL(openai_transcribe_ex(base, "sk-wrong-999999999", CLIP, NULL, &FAST, err, sizeof err));
    ASSERT_NOT_CONTAINS(err, "sk-wrong");
    ASSERT_NOT_CONTAINS(err, KEY);
    ASSERT_NULL(openai_transcribe(base, "", CLIP, NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "OPENAI_API_KEY is not set");
    ASSERT_NULL(openai_transcribe(base, KEY, "/nonexistent.wav", NULL, err, sizeof err));
    ASSERT_CONTAINS(err, "cannot open /nonexistent.wav");
    fake_stop(s, base);
}

TEST(openai_retries_5xx_and_429)
{
    char *base;
    http_server *s = fake_start(FAKE_500_ONCE, &base);
    char err[512] = "";
    transcript *t = openai_transcribe_ex(base, KEY, CLIP, NULL, &FAST, err, sizeof err);
    if (!t) test_fail(__FILE__, __LINE__, "%s", err);
    ASSERT_EQ(fake_calls(), 2);
    transcript_free(t);
    fake_set(FAKE_429, 1);
    ASSERT_NULL(openai_transcribe_ex(base, KEY, CLIP, NULL, &FAST, err, sizeof err));
    ASSERT_EQ(fake_calls(), 3);
    ASSERT_CONTAINS(err, "openai api error (HTTP 429): Rate limit reached");
    fake_stop(s, base);
}

TEST(openai_timeout_and_bad_answers)
{
    char *base;
    http_server *s = fake_start(FAKE_SLOW, &base);
    char err[512] = "";
    openai_limits lim = {.timeout_ms = 300, .backoff_ms = 20};
    ASSERT_NULL(openai_transcribe_ex(base, KEY, CLIP, NULL, &lim, err, sizeof err));
    ASSERT_CONTAINS(err, "timed out"); /* the answer takes 1.5 s: cut by the 300 ms limit */
    ASSERT_TRUE(fake_calls() <= 1);     /* a timeout is not retried */
    fake_set(FAKE_GARBAGE, 0);
    ASSERT_NULL(openai_transcribe_ex(base, KEY, CLIP, NULL, &FAST, err, sizeof err));
    ASSERT_CONTAINS(err, "bad response from the openai api");
    fake_set(FAKE_TEXT_ONLY, 0);
    engine_opts o = {.language = "fr", .word_timestamps = 1};
    transcript *t = openai_transcribe_ex(base, KEY, CLIP, &o, &FAST, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_EQ(t->n_segments, 1);
    ASSERT_STR_EQ(t->segments[0].text, "hello from a text only model");
    ASSERT_NEAR(t->segments[0].end, 2.5, 1e-9);
    ASSERT_STR_EQ(t->language, "fr");
    transcript_free(t);
    fake_stop(s, base);
}

TEST(openai_translate_and_unreachable)
{
    char *base;
    http_server *s = fake_start(FAKE_OK, &base);
    char err[512] = "";
    engine_opts o = {.language = "de", .translate = 1, .word_timestamps = 1};
    transcript *t = openai_transcribe(base, KEY, CLIP, &o, err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_STR_EQ(F.path, "/v1/audio/translations");
    ASSERT_NULL(json_object_get(F.fields, "language"));
    ASSERT_NULL(json_object_get(F.fields, "timestamp_granularities[]"));
    ASSERT_TRUE(t->translated);
    transcript_free(t);
    fake_stop(s, base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ASSERT_NULL(openai_transcribe_ex("http://127.0.0.1:1/v1", KEY, CLIP, NULL, &FAST, err, sizeof err));
    ASSERT_CONTAINS(err, "cannot reach the openai api at http://127.0.0.1:1/v1");
    ASSERT_NOT_CONTAINS(err, KEY);
    curl_global_cleanup();
}
