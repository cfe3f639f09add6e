#include "transcript/transcript.h"

#include "core/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Times past this (about 31 years) are clamped, so formatting never overflows. */
#define MAX_TIME_S 1e9

/* ---------------------------------------------------------------- small helpers */

static double clamp_time(double x)
{
    if (!isfinite(x) || x < 0) return 0;
    return x > MAX_TIME_S ? MAX_TIME_S : x;
}

static double dmax(double a, double b) { return a > b ? a : b; }
static double dmin(double a, double b) { return a < b ? a : b; }

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A trimmed heap copy of s with invalid UTF-8 bytes replaced by U+FFFD. */
static char *clean_text(const char *s)
{
    if (!s) s = "";
    while (is_space((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && is_space((unsigned char)s[len - 1])) len--;
    char *out = xmalloc(len * 3 + 1);
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i);
        if (n == 0 || i + n > len) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    return out;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (!n) return 0;
        p += n;
    }
    return 1;
}

/* A JSON string for s, valid even when s is not valid UTF-8 (fields are public). */
static json_t *jstr(const char *s)
{
    if (!s) s = "";
    if (utf8_valid(s)) return json_string(s);
    char *c = clean_text(s);
    json_t *j = json_string(c);
    free(c);
    return j;
}

static void sb_add(buf *b, const char *s, size_t n)
{
    if (buf_append(b, s, n) != 0) abort(); /* unbounded buffer: cannot fail */
}

static void sb_adds(buf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* ---------------------------------------------------------------- builders */

transcript *transcript_new(const char *language, double duration)
{
    transcript *t = xcalloc(1, sizeof *t);
    transcript_set_language(t, language);
    t->duration = clamp_time(duration);
    return t;
}

void transcript_set_language(transcript *t, const char *language)
{
    free(t->language);
    t->language = (language && *language) ? clean_text(language) : NULL;
}

void transcript_free(transcript *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_segments; i++) {
        transcript_segment *s = &t->segments[i];
        for (size_t j = 0; j < s->n_words; j++) free(s->words[j].word);
        free(s->words);
        free(s->text);
    }
    free(t->segments);
    for (size_t i = 0; i < t->n_speakers; i++) free(t->speakers[i].name);
    free(t->speakers);
    free(t->language);
    free(t);
}

transcript_segment *transcript_add_segment(transcript *t, double start, double end,
                                           const char *text)
{
    if (t->n_segments == t->cap_segments) {
        t->cap_segments = t->cap_segments ? t->cap_segments * 2 : 8;
        t->segments = xrealloc(t->segments, t->cap_segments * sizeof *t->segments);
    }
    start = clamp_time(start);
    end = clamp_time(end);
    if (t->n_segments) start = dmax(start, t->segments[t->n_segments - 1].end);
    end = dmax(end, start);
    transcript_segment *s = &t->segments[t->n_segments];
    memset(s, 0, sizeof *s);
    s->id = (int)t->n_segments;
    s->start = start;
    s->end = end;
    s->text = clean_text(text);
    s->confidence = -1;
    s->avg_logprob = NAN;
    s->speaker = -1;
    t->n_segments++;
    if (end > t->duration) t->duration = end;
    return s;
}

transcript_word *segment_add_word(transcript_segment *s, double start, double end,
                                  const char *word, double confidence)
{
    if (s->n_words == s->cap_words) {
        s->cap_words = s->cap_words ? s->cap_words * 2 : 16;
        s->words = xrealloc(s->words, s->cap_words * sizeof *s->words);
    }
    double lower = s->n_words ? s->words[s->n_words - 1].end : s->start;
    start = dmax(clamp_time(start), lower);
    end = dmax(clamp_time(end), start);
    if (end > s->end) s->end = end;
    transcript_word *w = &s->words[s->n_words++];
    w->start = start;
    w->end = end;
    w->word = clean_text(word);
    w->confidence = (isfinite(confidence) && confidence >= 0) ? dmin(confidence, 1.0) : -1;
    w->speaker = -1;
    return w;
}

void transcript_append(transcript *dst, const transcript *src, double offset)
{
    double limit = dst->duration > 0 ? dst->duration : INFINITY;
    for (size_t i = 0; i < src->n_segments; i++) {
        const transcript_segment *in = &src->segments[i];
        transcript_segment *s = transcript_add_segment(dst, dmin(in->start + offset, limit),
                                                       dmin(in->end + offset, limit), in->text);
        s->confidence = in->confidence;
        s->avg_logprob = in->avg_logprob;
        s->no_speech_prob = in->no_speech_prob;
        s->compression_ratio = in->compression_ratio;
        s->speaker = in->speaker;
        for (size_t k = 0; k < in->n_words; k++)
            segment_add_word(s, dmin(in->words[k].start + offset, limit),
                             dmin(in->words[k].end + offset, limit), in->words[k].word,
                             in->words[k].confidence)->speaker = in->words[k].speaker;
    }
}

/* ---------------------------------------------------------------- speakers */

/* the speaker overlapping [a, b) most, else the nearest turn's; -1 without turns */
static int speaker_at(const transcript_turn *turns, size_t n, double a, double b)
{
    double ov[256] = {0};
    int best = -1;
    double best_ov = 0, best_gap = INFINITY;
    int near = -1;
    for (size_t i = 0; i < n; i++) {
        const transcript_turn *u = &turns[i];
        if (u->speaker < 0 || u->speaker >= 256) continue;
        double o = dmin(b, u->end) - dmax(a, u->start);
        if (o > 0) {
            ov[u->speaker] += o;
            if (ov[u->speaker] > best_ov) { best_ov = ov[u->speaker]; best = u->speaker; }
        } else {
            double gap = u->start >= b ? u->start - b : a - u->end;
            if (gap < best_gap) { best_gap = gap; near = u->speaker; }
        }
    }
    return best >= 0 ? best : near;
}

void transcript_assign_speakers(transcript *t, const transcript_turn *turns, size_t n_turns,
                                int n_speakers)
{
    if (n_speakers < 0) n_speakers = 0;
    if (n_speakers > 256) n_speakers = 256;
    /* speakers: names of ids that existed are kept */
    for (size_t i = (size_t)n_speakers; i < t->n_speakers; i++) free(t->speakers[i].name);
    t->speakers = xrealloc(t->speakers, ((size_t)n_speakers + 1) * sizeof *t->speakers);
    for (size_t i = t->n_speakers; i < (size_t)n_speakers; i++) t->speakers[i].name = NULL;
    t->n_speakers = (size_t)n_speakers;
    for (size_t i = 0; i < t->n_speakers; i++) t->speakers[i].talk_time = 0;
    for (size_t i = 0; i < n_turns; i++)
        if (turns[i].speaker >= 0 && turns[i].speaker < n_speakers)
            t->speakers[turns[i].speaker].talk_time += dmax(0, turns[i].end - turns[i].start);
    /* words and segments */
    size_t cap = t->n_segments + 8, n = 0;
    transcript_segment *out = xmalloc(cap * sizeof *out);
    for (size_t i = 0; i < t->n_segments; i++) {
        transcript_segment *s = &t->segments[i];
        if (!n_speakers) {
            s->speaker = -1;
            for (size_t k = 0; k < s->n_words; k++) s->words[k].speaker = -1;
            out[n++] = *s;
            continue;
        }
        for (size_t k = 0; k < s->n_words; k++)
            s->words[k].speaker = speaker_at(turns, n_turns, s->words[k].start, s->words[k].end);
        /* split where the speaker changes */
        size_t k0 = 0;
        int parts = 0;
        while (1) {
            size_t k1 = k0;
            if (s->n_words) {
                while (k1 < s->n_words && s->words[k1].speaker == s->words[k0].speaker) k1++;
            }
            if (n + 1 >= cap) {
                cap *= 2;
                out = xrealloc(out, cap * sizeof *out);
            }
            if (parts == 0 && (k1 == s->n_words)) { /* one speaker: the segment as it is */
                s->speaker = s->n_words ? s->words[0].speaker
                                        : speaker_at(turns, n_turns, s->start, s->end);
                out[n++] = *s;
                break;
            }
            transcript_segment *p = &out[n++];
            *p = *s;
            p->words = xmalloc((k1 - k0) * sizeof *p->words);
            memcpy(p->words, s->words + k0, (k1 - k0) * sizeof *p->words);
            p->n_words = p->cap_words = k1 - k0;
            p->start = parts == 0 ? s->start : p->words[0].start;
            p->end = k1 == s->n_words ? s->end : p->words[p->n_words - 1].end;
            p->speaker = p->words[0].speaker;
            buf b;
            buf_init(&b, 0);
            sb_add(&b, "", 0);
            for (size_t w = 0; w < p->n_words; w++) {
                if (w) sb_add(&b, " ", 1);
                sb_adds(&b, p->words[w].word);
            }
            p->text = buf_take(&b);
            p->confidence = -1;
            segment_update_confidence(p);
            parts++;
            k0 = k1;
            if (k0 == s->n_words) {
                free(s->words);
                free(s->text);
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) out[i].id = (int)i;
    free(t->segments);
    t->segments = out;
    t->n_segments = n;
    t->cap_segments = cap;
}

const char *transcript_speaker_label(const transcript *t, int id, char *buf, size_t n)
{
    if (id >= 0 && (size_t)id < t->n_speakers && t->speakers[id].name && *t->speakers[id].name)
        return t->speakers[id].name;
    snprintf(buf, n, "Speaker %d", id + 1);
    return buf;
}

int transcript_set_speaker_name(transcript *t, int id, const char *name)
{
    if (id < 0 || (size_t)id >= t->n_speakers) return -1;
    free(t->speakers[id].name);
    t->speakers[id].name = name && *name ? clean_text(name) : NULL;
    return 0;
}

void segment_update_confidence(transcript_segment *s)
{
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < s->n_words; i++)
        if (s->words[i].confidence >= 0) { sum += s->words[i].confidence; n++; }
    if (n) s->confidence = sum / (double)n;
}

char *transcript_text(const transcript *t)
{
    buf b;
    buf_init(&b, 0);
    sb_add(&b, "", 0);
    int first = 1;
    for (size_t i = 0; i < t->n_segments; i++) {
        const char *x = t->segments[i].text ? t->segments[i].text : "";
        if (!*x) continue;
        if (!first) sb_add(&b, " ", 1);
        sb_adds(&b, x);
        first = 0;
    }
    return buf_take(&b);
}

/* ---------------------------------------------------------------- formats */

static const struct { const char *name; enum transcript_format f; const char *ctype; } formats[] = {
    {"json", TRANSCRIPT_FMT_JSON, "application/json"},
    {"text", TRANSCRIPT_FMT_TEXT, "text/plain; charset=utf-8"},
    {"srt", TRANSCRIPT_FMT_SRT, "application/x-subrip; charset=utf-8"},
    {"vtt", TRANSCRIPT_FMT_VTT, "text/vtt; charset=utf-8"},
    {"verbose_json", TRANSCRIPT_FMT_VERBOSE_JSON, "application/json"},
    {"diarized_json", TRANSCRIPT_FMT_DIARIZED_JSON, "application/json"},
};

enum transcript_format transcript_format_parse(const char *name)
{
    if (!name) return TRANSCRIPT_FMT_INVALID;
    if (strcmp(name, "txt") == 0) return TRANSCRIPT_FMT_TEXT;
    for (size_t i = 0; i < ARRAY_LEN(formats); i++)
        if (strcmp(name, formats[i].name) == 0) return formats[i].f;
    return TRANSCRIPT_FMT_INVALID;
}

const char *transcript_format_name(enum transcript_format f)
{
    for (size_t i = 0; i < ARRAY_LEN(formats); i++)
        if (formats[i].f == f) return formats[i].name;
    return "invalid";
}

const char *transcript_format_content_type(enum transcript_format f)
{
    for (size_t i = 0; i < ARRAY_LEN(formats); i++)
        if (formats[i].f == f) return formats[i].ctype;
    return "application/octet-stream";
}

/* Normalized times of segment i given the previous segment's normalized end. */
static void norm_seg(const transcript_segment *s, double *prev_end, double *start, double *end)
{
    *start = dmax(clamp_time(s->start), *prev_end);
    *end = dmax(clamp_time(s->end), *start);
    *prev_end = *end;
}

static int has_speakers(const transcript *t) { return t->n_speakers > 0; }

static int seg_speaker(const transcript *t, const transcript_segment *s)
{
    return s->speaker >= 0 && (size_t)s->speaker < t->n_speakers ? s->speaker : -1;
}

/* "Speaker 1" (or the name) as a JSON string, null when unknown */
static json_t *jlabel(const transcript *t, int id)
{
    char b[32];
    if (id < 0 || (size_t)id >= t->n_speakers) return json_null();
    return jstr(transcript_speaker_label(t, id, b, sizeof b));
}

char *transcript_to_txt(const transcript *t)
{
    if (has_speakers(t)) { /* one line per turn: "Speaker 1: ..." */
        buf b;
        buf_init(&b, 0);
        sb_add(&b, "", 0);
        int prev = -2;
        for (size_t i = 0; i < t->n_segments; i++) {
            const transcript_segment *s = &t->segments[i];
            if (!s->text || !*s->text) continue;
            int k = seg_speaker(t, s);
            if (k != prev) {
                char lb[32];
                if (prev != -2) sb_add(&b, "\n", 1);
                if (k >= 0) {
                    sb_adds(&b, transcript_speaker_label(t, k, lb, sizeof lb));
                    sb_adds(&b, ": ");
                }
                prev = k;
            } else {
                sb_add(&b, " ", 1);
            }
            sb_adds(&b, s->text);
        }
        sb_add(&b, "\n", 1);
        return buf_take(&b);
    }
    char *x = transcript_text(t);
    char *r = xasprintf("%s\n", x);
    free(x);
    return r;
}

static char *dump(json_t *root, size_t flags)
{
    char *s = json_dumps(root, flags);
    json_decref(root);
    if (!s) abort(); /* only on out-of-memory */
    char *r = xstrdup(s);
    free(s);
    return r;
}

char *transcript_to_json(const transcript *t)
{
    char *x = transcript_text(t);
    json_t *root = json_object();
    json_object_set_new(root, "text", jstr(x));
    free(x);
    return dump(root, 0);
}

static double ms_round(double x) { return round(x * 1000.0) / 1000.0; }

static const struct { const char *code, *name; } languages[] = {
    {"en", "english"}, {"zh", "chinese"}, {"de", "german"}, {"es", "spanish"},
    {"ru", "russian"}, {"ko", "korean"}, {"fr", "french"}, {"ja", "japanese"},
    {"pt", "portuguese"}, {"tr", "turkish"}, {"pl", "polish"}, {"ca", "catalan"},
    {"nl", "dutch"}, {"ar", "arabic"}, {"sv", "swedish"}, {"it", "italian"},
    {"id", "indonesian"}, {"hi", "hindi"}, {"fi", "finnish"}, {"vi", "vietnamese"},
    {"he", "hebrew"}, {"uk", "ukrainian"}, {"el", "greek"}, {"ms", "malay"},
    {"cs", "czech"}, {"ro", "romanian"}, {"da", "danish"}, {"hu", "hungarian"},
    {"ta", "tamil"}, {"no", "norwegian"}, {"th", "thai"}, {"ur", "urdu"},
    {"hr", "croatian"}, {"bg", "bulgarian"}, {"lt", "lithuanian"}, {"la", "latin"},
    {"mi", "maori"}, {"ml", "malayalam"}, {"cy", "welsh"}, {"sk", "slovak"},
    {"te", "telugu"}, {"fa", "persian"}, {"lv", "latvian"}, {"bn", "bengali"},
    {"sr", "serbian"}, {"az", "azerbaijani"}, {"sl", "slovenian"}, {"kn", "kannada"},
    {"et", "estonian"}, {"mk", "macedonian"}, {"br", "breton"}, {"eu", "basque"},
    {"is", "icelandic"}, {"hy", "armenian"}, {"ne", "nepali"}, {"mn", "mongolian"},
    {"bs", "bosnian"}, {"kk", "kazakh"}, {"sq", "albanian"}, {"sw", "swahili"},
    {"gl", "galician"}, {"mr", "marathi"}, {"pa", "punjabi"}, {"si", "sinhala"},
    {"km", "khmer"}, {"sn", "shona"}, {"yo", "yoruba"}, {"so", "somali"},
    {"af", "afrikaans"}, {"oc", "occitan"}, {"ka", "georgian"}, {"be", "belarusian"},
    {"tg", "tajik"}, {"sd", "sindhi"}, {"gu", "gujarati"}, {"am", "amharic"},
    {"yi", "yiddish"}, {"lo", "lao"}, {"uz", "uzbek"}, {"fo", "faroese"},
    {"ht", "haitian creole"}, {"ps", "pashto"}, {"tk", "turkmen"}, {"nn", "nynorsk"},
    {"mt", "maltese"}, {"sa", "sanskrit"}, {"lb", "luxembourgish"}, {"my", "myanmar"},
    {"bo", "tibetan"}, {"tl", "tagalog"}, {"mg", "malagasy"}, {"as", "assamese"},
    {"tt", "tatar"}, {"haw", "hawaiian"}, {"ln", "lingala"}, {"ha", "hausa"},
    {"ba", "bashkir"}, {"jw", "javanese"}, {"su", "sundanese"}, {"yue", "cantonese"},
};

const char *transcript_language_name(const char *code)
{
    if (!code) return "";
    for (size_t i = 0; i < ARRAY_LEN(languages); i++)
        if (strcmp(code, languages[i].code) == 0) return languages[i].name;
    return code;
}

/* [{"id": 1, "name": "Speaker 1", "talk_time": 12.3}, ...] */
static json_t *speakers_json(const transcript *t)
{
    json_t *a = json_array();
    for (size_t i = 0; i < t->n_speakers; i++)
        json_array_append_new(a, json_pack("{s:i,s:o,s:f}", "id", (int)i + 1, "name",
                                           jlabel(t, (int)i), "talk_time",
                                           ms_round(clamp_time(t->speakers[i].talk_time))));
    return a;
}

char *transcript_to_verbose_json(const transcript *t, int with_words)
{
    json_t *root = json_object();
    json_object_set_new(root, "task", json_string(t->translated ? "translate" : "transcribe"));
    json_object_set_new(root, "language", jstr(transcript_language_name(t->language)));
    double prev = 0, last_end = 0;
    json_t *segs = json_array();
    json_t *words = with_words ? json_array() : NULL;
    for (size_t i = 0; i < t->n_segments; i++) {
        const transcript_segment *s = &t->segments[i];
        double st, en;
        norm_seg(s, &prev, &st, &en);
        last_end = en;
        double alp = s->avg_logprob;
        if (!isfinite(alp)) alp = s->confidence > 0 ? log(s->confidence) : 0;
        json_t *js = json_object();
        json_object_set_new(js, "id", json_integer((json_int_t)i));
        json_object_set_new(js, "seek", json_integer((json_int_t)llround(st * 100.0)));
        json_object_set_new(js, "start", json_real(ms_round(st)));
        json_object_set_new(js, "end", json_real(ms_round(en)));
        json_object_set_new(js, "text", jstr(s->text));
        json_object_set_new(js, "tokens", json_array());
        json_object_set_new(js, "temperature", json_real(t->temperature));
        json_object_set_new(js, "avg_logprob", json_real(alp));
        json_object_set_new(js, "compression_ratio",
                            json_real(isfinite(s->compression_ratio) ? s->compression_ratio : 0));
        json_object_set_new(js, "no_speech_prob",
                            json_real(isfinite(s->no_speech_prob) ? s->no_speech_prob : 0));
        int spk = seg_speaker(t, s);
        if (has_speakers(t)) {
            json_object_set_new(js, "speaker", jlabel(t, spk));
            json_object_set_new(js, "speaker_id", spk >= 0 ? json_integer(spk + 1) : json_null());
        }
        json_array_append_new(segs, js);
        if (words) {
            double wprev = st;
            for (size_t j = 0; j < s->n_words; j++) {
                const transcript_word *w = &s->words[j];
                double ws = dmin(dmax(clamp_time(w->start), wprev), en);
                double we = dmin(dmax(clamp_time(w->end), ws), en);
                wprev = we;
                json_t *jw = json_object();
                json_object_set_new(jw, "word", jstr(w->word));
                json_object_set_new(jw, "start", json_real(ms_round(ws)));
                json_object_set_new(jw, "end", json_real(ms_round(we)));
                if (has_speakers(t)) {
                    int ws_ = w->speaker >= 0 && (size_t)w->speaker < t->n_speakers ? w->speaker : -1;
                    json_object_set_new(jw, "speaker", jlabel(t, ws_));
                    json_object_set_new(jw, "speaker_id", ws_ >= 0 ? json_integer(ws_ + 1) : json_null());
                }
                json_array_append_new(words, jw);
            }
        }
    }
    double dur = dmax(clamp_time(t->duration), last_end);
    json_object_set_new(root, "duration", json_real(ms_round(dur)));
    char *x = transcript_text(t);
    json_object_set_new(root, "text", jstr(x));
    free(x);
    json_object_set_new(root, "segments", segs);
    if (words) json_object_set_new(root, "words", words);
    if (has_speakers(t)) json_object_set_new(root, "speakers", speakers_json(t));
    return dump(root, JSON_REAL_PRECISION(10));
}

char *transcript_to_diarized_json(const transcript *t)
{
    json_t *root = json_object();
    json_object_set_new(root, "task", json_string(t->translated ? "translate" : "transcribe"));
    double prev = 0, last_end = 0;
    json_t *segs = json_array();
    for (size_t i = 0; i < t->n_segments; i++) {
        const transcript_segment *s = &t->segments[i];
        double st, en;
        norm_seg(s, &prev, &st, &en);
        last_end = en;
        if (!s->text || !*s->text) continue;
        char id[32];
        snprintf(id, sizeof id, "seg_%zu", i);
        json_t *js = json_object();
        json_object_set_new(js, "type", json_string("transcript.text.segment"));
        json_object_set_new(js, "id", json_string(id));
        json_object_set_new(js, "start", json_real(ms_round(st)));
        json_object_set_new(js, "end", json_real(ms_round(en)));
        json_object_set_new(js, "text", jstr(s->text));
        json_object_set_new(js, "speaker", jlabel(t, seg_speaker(t, s)));
        json_array_append_new(segs, js);
    }
    double dur = dmax(clamp_time(t->duration), last_end);
    json_object_set_new(root, "duration", json_real(ms_round(dur)));
    char *x = transcript_text(t);
    json_object_set_new(root, "text", jstr(x));
    free(x);
    json_object_set_new(root, "segments", segs);
    json_object_set_new(root, "usage", json_pack("{s:s,s:f}", "type", "duration", "seconds",
                                                 ms_round(dur)));
    return dump(root, JSON_REAL_PRECISION(10));
}

static void add_time(buf *b, double sec, char sep)
{
    long long ms = llround(clamp_time(sec) * 1000.0);
    long long h = ms / 3600000;
    int m = (int)(ms / 60000 % 60), s = (int)(ms / 1000 % 60), f = (int)(ms % 1000);
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%02lld:%02d:%02d%c%03d", h, m, s, sep, f);
    sb_add(b, tmp, (size_t)n);
}

/* Append the cue text of s: one line per non-blank line of text, no "-->" (SRT: "-- >";
 * VTT: & < > escaped). Returns 0 when the text has no visible line (no cue). */
static int cue_text(buf *b, const char *text, int vtt)
{
    const char *p = text ? text : "";
    int lines = 0;
    while (*p) {
        size_t n = strcspn(p, "\r\n");
        size_t a = 0, z = n;
        while (a < z && is_space((unsigned char)p[a])) a++;
        while (z > a && is_space((unsigned char)p[z - 1])) z--;
        if (z > a) {
            if (lines++) sb_add(b, "\n", 1);
            int dashes = 0; /* consecutive '-' just written (SRT) */
            for (size_t i = a; i < z; i++) {
                char c = p[i];
                if (vtt && c == '&') sb_adds(b, "&amp;");
                else if (vtt && c == '<') sb_adds(b, "&lt;");
                else if (vtt && c == '>') sb_adds(b, "&gt;");
                else if (!vtt && c == '>' && dashes >= 2) sb_adds(b, " >");
                else sb_add(b, &c, 1);
                dashes = (c == '-') ? dashes + 1 : 0;
            }
        }
        p += n;
        while (*p == '\r' || *p == '\n') p++;
    }
    return lines > 0;
}

static char *render_cues(const transcript *t, int vtt)
{
    buf b;
    buf_init(&b, 0);
    sb_add(&b, "", 0);
    if (vtt) sb_adds(&b, "WEBVTT\n\n");
    double prev = 0;
    int cue = 0;
    buf text;
    buf_init(&text, 0);
    int prev_spk = -2;
    for (size_t i = 0; i < t->n_segments; i++) {
        double st, en;
        norm_seg(&t->segments[i], &prev, &st, &en);
        text.len = 0;
        int spk = has_speakers(t) ? seg_speaker(t, &t->segments[i]) : -1;
        if (spk >= 0) {
            char lb[32];
            const char *label = transcript_speaker_label(t, spk, lb, sizeof lb);
            if (vtt) { /* a voice tag on every cue */
                sb_adds(&text, "<v ");
                for (const char *c = label; *c; c++) {
                    if (*c == '&') sb_adds(&text, "&amp;");
                    else if (*c == '<') sb_adds(&text, "&lt;");
                    else if (*c == '>') sb_adds(&text, "&gt;");
                    else if (*c == '\n' || *c == '\r') sb_add(&text, " ", 1);
                    else sb_add(&text, c, 1);
                }
                sb_adds(&text, ">");
            } else if (spk != prev_spk) { /* SRT: the name where a turn starts */
                for (const char *c = label; *c; c++)
                    sb_add(&text, (*c == '\n' || *c == '\r') ? " " : c, 1);
                sb_adds(&text, ": ");
            }
        }
        size_t pre = text.len;
        if (!cue_text(&text, t->segments[i].text, vtt) || text.len == pre) {
            text.len = 0;
            continue;
        }
        prev_spk = spk;
        cue++;
        if (!vtt) {
            char num[32];
            int n = snprintf(num, sizeof num, "%d\n", cue);
            sb_add(&b, num, (size_t)n);
        }
        add_time(&b, st, vtt ? '.' : ',');
        sb_adds(&b, " --> ");
        add_time(&b, en, vtt ? '.' : ',');
        sb_add(&b, "\n", 1);
        sb_add(&b, text.data, text.len);
        sb_adds(&b, "\n\n");
    }
    buf_release(&text);
    return buf_take(&b);
}

char *transcript_to_srt(const transcript *t) { return render_cues(t, 0); }
char *transcript_to_vtt(const transcript *t) { return render_cues(t, 1); }

char *transcript_render(const transcript *t, enum transcript_format f, int with_words)
{
    switch (f) {
    case TRANSCRIPT_FMT_JSON: return transcript_to_json(t);
    case TRANSCRIPT_FMT_TEXT: return transcript_to_txt(t);
    case TRANSCRIPT_FMT_SRT: return transcript_to_srt(t);
    case TRANSCRIPT_FMT_VTT: return transcript_to_vtt(t);
    case TRANSCRIPT_FMT_VERBOSE_JSON: return transcript_to_verbose_json(t, with_words);
    case TRANSCRIPT_FMT_DIARIZED_JSON: return transcript_to_diarized_json(t);
    case TRANSCRIPT_FMT_INVALID: break;
    }
    return NULL;
}

/* ---------------------------------------------------------------- storage JSON
 *
 * {"version":1,"language":"en"|null,"duration":D,"task":"transcribe"|"translate",
 *  "temperature":T,"segments":[{"id":0,"start":S,"end":E,"text":"...",
 *  "confidence":C|null,"avg_logprob":L|null,"no_speech_prob":P,"compression_ratio":R,
 *  "speaker":K (optional),"words":[["word",S,E,C|null(,K)],...]},...],
 *  "speakers":[{"name":N|null,"talk_time":T},...] (optional: diarized)}
 * Speaker indexes K out of the speakers' range are dropped when loading.
 */

#define STORE_VERSION 1

static json_t *jreal_or_null(double x, int known)
{
    return known && isfinite(x) ? json_real(x) : json_null();
}

char *transcript_to_json_store(const transcript *t)
{
    json_t *root = json_object();
    json_object_set_new(root, "version", json_integer(STORE_VERSION));
    json_object_set_new(root, "language", t->language ? jstr(t->language) : json_null());
    /* a word past its segment's end extends the segment (segment_add_word) but cannot
     * raise t->duration: keep duration >= every segment end, as loading would make it */
    double dur = clamp_time(t->duration);
    for (size_t i = 0; i < t->n_segments; i++) dur = dmax(dur, clamp_time(t->segments[i].end));
    json_object_set_new(root, "duration", json_real(dur));
    json_object_set_new(root, "task", json_string(t->translated ? "translate" : "transcribe"));
    json_object_set_new(root, "temperature",
                        json_real(isfinite(t->temperature) ? t->temperature : 0));
    json_t *segs = json_array();
    for (size_t i = 0; i < t->n_segments; i++) {
        const transcript_segment *s = &t->segments[i];
        json_t *js = json_object();
        json_object_set_new(js, "id", json_integer(s->id));
        json_object_set_new(js, "start", json_real(clamp_time(s->start)));
        json_object_set_new(js, "end", json_real(clamp_time(s->end)));
        json_object_set_new(js, "text", jstr(s->text));
        json_object_set_new(js, "confidence", jreal_or_null(s->confidence, s->confidence >= 0));
        json_object_set_new(js, "avg_logprob", jreal_or_null(s->avg_logprob, 1));
        json_object_set_new(js, "no_speech_prob",
                            json_real(isfinite(s->no_speech_prob) ? s->no_speech_prob : 0));
        json_object_set_new(js, "compression_ratio",
                            json_real(isfinite(s->compression_ratio) ? s->compression_ratio : 0));
        if (s->speaker >= 0) json_object_set_new(js, "speaker", json_integer(s->speaker));
        json_t *jw = json_array();
        for (size_t j = 0; j < s->n_words; j++) {
            const transcript_word *w = &s->words[j];
            json_t *a = json_pack("[o,f,f,o]", jstr(w->word), clamp_time(w->start),
                                  clamp_time(w->end),
                                  jreal_or_null(w->confidence, w->confidence >= 0));
            if (w->speaker >= 0) json_array_append_new(a, json_integer(w->speaker));
            json_array_append_new(jw, a);
        }
        json_object_set_new(js, "words", jw);
        json_array_append_new(segs, js);
    }
    json_object_set_new(root, "segments", segs);
    if (t->n_speakers) {
        json_t *sp = json_array();
        for (size_t i = 0; i < t->n_speakers; i++)
            json_array_append_new(sp, json_pack("{s:o,s:f}", "name",
                                                t->speakers[i].name ? jstr(t->speakers[i].name)
                                                                    : json_null(),
                                                "talk_time", clamp_time(t->speakers[i].talk_time)));
        json_object_set_new(root, "speakers", sp);
    }
    return dump(root, JSON_COMPACT);
}

/* A number (integer or real) or null (-> dflt). -1 when neither. */
static int get_num(json_t *j, double dflt, double *out)
{
    if (!j || json_is_null(j)) { *out = dflt; return 0; }
    if (!json_is_number(j)) return -1;
    *out = json_number_value(j);
    return 0;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); goto fail; } while (0)

transcript *transcript_from_json_store(const char *json, char *err, size_t errlen)
{
    json_error_t jerr;
    transcript *t = NULL;
    json_t *root = json_loads(json ? json : "", 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "transcript JSON: %s (line %d)", jerr.text, jerr.line);
        return NULL;
    }
    if (!json_is_object(root)) FAIL("transcript JSON: not an object");
    json_t *v = json_object_get(root, "version");
    if (!json_is_integer(v) || json_integer_value(v) != STORE_VERSION)
        FAIL("transcript JSON: unsupported version");
    json_t *lang = json_object_get(root, "language");
    if (lang && !json_is_null(lang) && !json_is_string(lang))
        FAIL("transcript JSON: language must be a string or null");
    double dur, temp;
    if (get_num(json_object_get(root, "duration"), 0, &dur) != 0)
        FAIL("transcript JSON: duration must be a number");
    if (get_num(json_object_get(root, "temperature"), 0, &temp) != 0)
        FAIL("transcript JSON: temperature must be a number");
    json_t *task = json_object_get(root, "task");
    if (task && !json_is_string(task)) FAIL("transcript JSON: task must be a string");
    json_t *segs = json_object_get(root, "segments");
    if (!json_is_array(segs)) FAIL("transcript JSON: segments must be an array");

    json_t *spk = json_object_get(root, "speakers");
    if (spk && !json_is_array(spk)) FAIL("transcript JSON: speakers must be an array");
    t = transcript_new(json_is_string(lang) ? json_string_value(lang) : NULL, 0);
    if (json_array_size(spk)) {
        size_t ns = json_array_size(spk) > 256 ? 256 : json_array_size(spk);
        t->speakers = xcalloc(ns, sizeof *t->speakers);
        t->n_speakers = ns;
        for (size_t k = 0; k < ns; k++) {
            json_t *o = json_array_get(spk, k), *nm = json_object_get(o, "name");
            double tt;
            if (!json_is_object(o) || (nm && !json_is_null(nm) && !json_is_string(nm)) ||
                get_num(json_object_get(o, "talk_time"), 0, &tt) != 0)
                FAIL("transcript JSON: speaker %zu is malformed", k);
            t->speakers[k].name = json_is_string(nm) ? clean_text(json_string_value(nm)) : NULL;
            t->speakers[k].talk_time = clamp_time(tt);
        }
    }
    t->translated = task && strcmp(json_string_value(task), "translate") == 0;
    t->temperature = temp;
    size_t i;
    json_t *js;
    json_array_foreach(segs, i, js) {
        double st, en, conf, alp, nsp, cr;
        json_t *text = json_object_get(js, "text");
        if (!json_is_object(js) || !json_is_string(text) ||
            get_num(json_object_get(js, "start"), 0, &st) != 0 ||
            get_num(json_object_get(js, "end"), 0, &en) != 0 ||
            get_num(json_object_get(js, "confidence"), -1, &conf) != 0 ||
            get_num(json_object_get(js, "avg_logprob"), NAN, &alp) != 0 ||
            get_num(json_object_get(js, "no_speech_prob"), 0, &nsp) != 0 ||
            get_num(json_object_get(js, "compression_ratio"), 0, &cr) != 0)
            FAIL("transcript JSON: segment %zu is malformed", i);
        json_t *jw = json_object_get(js, "words");
        if (jw && !json_is_array(jw)) FAIL("transcript JSON: segment %zu words malformed", i);
        transcript_segment *s = transcript_add_segment(t, st, en, json_string_value(text));
        s->avg_logprob = alp;
        s->no_speech_prob = nsp;
        s->compression_ratio = cr;
        json_t *ss = json_object_get(js, "speaker");
        if (json_is_integer(ss) && json_integer_value(ss) >= 0 &&
            (size_t)json_integer_value(ss) < t->n_speakers)
            s->speaker = (int)json_integer_value(ss);
        size_t k;
        json_t *w;
        json_array_foreach(jw, k, w) {
            double ws, we, wc;
            json_t *word = json_array_get(w, 0);
            if (!json_is_array(w) || json_array_size(w) < 4 || json_array_size(w) > 5 ||
                !json_is_string(word) ||
                get_num(json_array_get(w, 1), 0, &ws) != 0 ||
                get_num(json_array_get(w, 2), 0, &we) != 0 ||
                get_num(json_array_get(w, 3), -1, &wc) != 0)
                FAIL("transcript JSON: segment %zu word %zu is malformed", i, k);
            transcript_word *tw = segment_add_word(s, ws, we, json_string_value(word), wc);
            json_t *wk = json_array_get(w, 4);
            if (json_is_integer(wk) && json_integer_value(wk) >= 0 &&
                (size_t)json_integer_value(wk) < t->n_speakers)
                tw->speaker = (int)json_integer_value(wk);
        }
        /* after the words: segment_add_word never touches the confidence */
        s->confidence = (isfinite(conf) && conf >= 0) ? dmin(conf, 1.0) : -1;
    }
    /* the builders may have raised the duration to the last segment end; keep the larger */
    t->duration = dmax(t->duration, clamp_time(dur));
    json_decref(root);
    return t;
fail:
    transcript_free(t);
    json_decref(root);
    return NULL;
}
