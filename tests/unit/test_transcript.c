/* Unit tests for src/transcript: builders, clamping, every renderer, escaping, store JSON. */
#include "test.h"

#include "transcript/transcript.h"

#include <jansson.h>
#include <math.h>

/* Three segments: plain text with words, quotes/newlines/"-->" past one hour, and markup
 * characters past ten hours. */
static transcript *sample(void)
{
    transcript *t = transcript_new("en", 36010);
    transcript_segment *s = transcript_add_segment(t, 0, 1.5, "  Hello world.  ");
    segment_add_word(s, 0, 0.5, "Hello", 0.9);
    segment_add_word(s, 0.6, 1.5, " world. ", 0.8);
    transcript_add_segment(t, 3661.25, 3662.0, "He said \"hi\"\n\n  then --> left\r\n");
    transcript_add_segment(t, 36000.5, 36002.0, "Ten hours <b>&");
    return t;
}

TEST(transcript_builders_trim_and_ids)
{
    transcript *t = sample();
    ASSERT_EQ(t->n_segments, 3);
    ASSERT_STR_EQ(t->language, "en");
    ASSERT_EQ(t->segments[0].id, 0);
    ASSERT_EQ(t->segments[2].id, 2);
    ASSERT_STR_EQ(t->segments[0].text, "Hello world.");
    ASSERT_STR_EQ(t->segments[0].words[1].word, "world.");
    ASSERT_TRUE(t->segments[1].confidence < 0);
    segment_update_confidence(&t->segments[0]);
    ASSERT_NEAR(t->segments[0].confidence, 0.85, 1e-12);
    ASSERT_TRUE(isnan(t->segments[1].avg_logprob));
    char *x = transcript_text(t);
    ASSERT_STR_EQ(x, "Hello world. He said \"hi\"\n\n  then --> left Ten hours <b>&");
    free(x);
    transcript_free(t);
}

TEST(transcript_txt_and_json)
{
    transcript *t = sample();
    char *s = transcript_to_txt(t);
    ASSERT_STR_EQ(s, "Hello world. He said \"hi\"\n\n  then --> left Ten hours <b>&\n");
    free(s);
    s = transcript_to_json(t);
    ASSERT_STR_EQ(s, "{\"text\": \"Hello world. He said \\\"hi\\\"\\n\\n  then --> left Ten hours <b>&\"}");
    free(s);
    transcript_free(t);
}

TEST(transcript_srt_exact)
{
    transcript *t = sample();
    char *s = transcript_to_srt(t);
    ASSERT_STR_EQ(s,
                  "1\n00:00:00,000 --> 00:00:01,500\nHello world.\n\n"
                  "2\n01:01:01,250 --> 01:01:02,000\nHe said \"hi\"\nthen -- > left\n\n"
                  "3\n10:00:00,500 --> 10:00:02,000\nTen hours <b>&\n\n");
    free(s);
    transcript_free(t);
}

TEST(transcript_vtt_exact)
{
    transcript *t = sample();
    char *s = transcript_to_vtt(t);
    ASSERT_STR_EQ(s,
                  "WEBVTT\n\n"
                  "00:00:00.000 --> 00:00:01.500\nHello world.\n\n"
                  "01:01:01.250 --> 01:01:02.000\nHe said \"hi\"\nthen --&gt; left\n\n"
                  "10:00:00.500 --> 10:00:02.000\nTen hours &lt;b&gt;&amp;\n\n");
    free(s);
    transcript_free(t);
}

TEST(transcript_cue_text_never_has_arrow_or_blank_line)
{
    transcript *t = transcript_new(NULL, 0);
    transcript_add_segment(t, 0, 1, "a---->b\n \n\n-->\r\r--x");
    transcript_add_segment(t, 1, 2, " \n\n ");  /* blank: no cue */
    transcript_add_segment(t, 2, 3, "last");
    char *s = transcript_to_srt(t);
    ASSERT_STR_EQ(s, "1\n00:00:00,000 --> 00:00:01,000\na---- >b\n-- >\n--x\n\n"
                     "2\n00:00:02,000 --> 00:00:03,000\nlast\n\n");
    /* "-->" only in the timing lines */
    int arrows = 0;
    for (const char *p = s; (p = strstr(p, "-->")) != NULL; p += 3) arrows++;
    ASSERT_EQ(arrows, 2);
    free(s);
    s = transcript_to_vtt(t);
    ASSERT_STR_EQ(s, "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na----&gt;b\n--&gt;\n--x\n\n"
                     "00:00:02.000 --> 00:00:03.000\nlast\n\n");
    free(s);
    transcript_free(t);
}

TEST(transcript_verbose_json_exact)
{
    transcript *t = transcript_new("en", 2);
    transcript_segment *s = transcript_add_segment(t, 0.25, 1.5, "Hi \"there\"");
    segment_add_word(s, 0.25, 0.5, "Hi", 0.5);
    segment_add_word(s, 0.75, 1.5, "\"there\"", -1);
    s->avg_logprob = -0.25;
    s->no_speech_prob = 0.125;
    s->compression_ratio = 1.5;
    char *j = transcript_to_verbose_json(t, 1);
    ASSERT_STR_EQ(j,
        "{\"task\": \"transcribe\", \"language\": \"english\", \"duration\": 2.0, "
        "\"text\": \"Hi \\\"there\\\"\", \"segments\": [{\"id\": 0, \"seek\": 25, "
        "\"start\": 0.25, \"end\": 1.5, \"text\": \"Hi \\\"there\\\"\", \"tokens\": [], "
        "\"temperature\": 0.0, \"avg_logprob\": -0.25, \"compression_ratio\": 1.5, "
        "\"no_speech_prob\": 0.125}], \"words\": [{\"word\": \"Hi\", \"start\": 0.25, "
        "\"end\": 0.5}, {\"word\": \"\\\"there\\\"\", \"start\": 0.75, \"end\": 1.5}]}");
    free(j);
    /* without words; translate task; unknown logprob falls back to log(confidence) */
    t->translated = 1;
    s->avg_logprob = NAN;
    s->confidence = 0.5;
    j = transcript_to_verbose_json(t, 0);
    ASSERT_NOT_CONTAINS(j, "\"words\"");
    ASSERT_CONTAINS(j, "\"task\": \"translate\"");
    ASSERT_CONTAINS(j, "\"avg_logprob\": -0.6931471806");
    free(j);
    transcript_free(t);
}

TEST(transcript_verbose_json_parses_and_rounds)
{
    transcript *t = sample();
    t->temperature = 0.2;
    transcript_segment *s = transcript_add_segment(t, 36003, 36003.1 + 0.2, "x");
    segment_add_word(s, 0.1 + 0.2 + 36003, 36003.3, "x", 1);
    char *j = transcript_to_verbose_json(t, 1);
    json_error_t e;
    json_t *root = json_loads(j, 0, &e);
    ASSERT_NOT_NULL(root);
    ASSERT_EQ(json_array_size(json_object_get(root, "segments")), 4);
    ASSERT_EQ(json_array_size(json_object_get(root, "words")), 3);
    json_t *seg3 = json_array_get(json_object_get(root, "segments"), 3);
    ASSERT_NEAR(json_real_value(json_object_get(seg3, "end")), 36003.3, 1e-9);
    ASSERT_CONTAINS(j, "\"end\": 36003.3,");       /* ms-rounded, no 17-digit noise */
    ASSERT_CONTAINS(j, "\"start\": 3661.25,");
    ASSERT_CONTAINS(j, "\"temperature\": 0.2,");
    ASSERT_NEAR(json_real_value(json_object_get(root, "duration")), 36010, 1e-9);
    ASSERT_STR_EQ(json_string_value(json_object_get(seg3, "text")), "x");
    json_decref(root);
    free(j);
    transcript_free(t);
}

TEST(transcript_clamps_bad_times)
{
    transcript *t = transcript_new(NULL, -5);
    ASSERT_NEAR(t->duration, 0, 0);
    transcript_segment *s = transcript_add_segment(t, 5, 3, "a");   /* end < start */
    ASSERT_NEAR(s->start, 5, 0);
    ASSERT_NEAR(s->end, 5, 0);
    s = transcript_add_segment(t, 4, 6, "b");                       /* overlaps previous */
    ASSERT_NEAR(s->start, 5, 0);
    ASSERT_NEAR(s->end, 6, 0);
    segment_add_word(s, 1, 5.5, "w1", 2.0);                         /* before segment start */
    segment_add_word(s, 5.2, 5.1, "w2", NAN);                       /* before previous word */
    segment_add_word(s, 5.6, 7, "w3", -3);                          /* past segment end */
    ASSERT_NEAR(s->words[0].start, 5, 0);
    ASSERT_NEAR(s->words[0].confidence, 1.0, 0);
    ASSERT_NEAR(s->words[1].start, 5.5, 0);
    ASSERT_NEAR(s->words[1].end, 5.5, 0);
    ASSERT_TRUE(s->words[1].confidence < 0);
    ASSERT_NEAR(s->words[2].start, 5.6, 0);
    ASSERT_NEAR(s->end, 7, 0);                                      /* segment extended */
    s = transcript_add_segment(t, NAN, -INFINITY, "c");
    ASSERT_NEAR(s->start, 7, 0);
    ASSERT_NEAR(s->end, 7, 0);
    ASSERT_NEAR(t->duration, 7, 0);
    /* renderers re-clamp fields edited by hand */
    t->segments[1].start = 1;
    t->segments[1].end = -2;
    t->segments[2].start = INFINITY;
    char *srt = transcript_to_srt(t);
    ASSERT_STR_EQ(srt, "1\n00:00:05,000 --> 00:00:05,000\na\n\n"
                       "2\n00:00:05,000 --> 00:00:05,000\nb\n\n"
                       "3\n00:00:05,000 --> 00:00:07,000\nc\n\n");
    free(srt);
    char *j = transcript_to_verbose_json(t, 1);
    json_t *root = json_loads(j, 0, NULL);
    ASSERT_NOT_NULL(root);
    json_t *words = json_object_get(root, "words");
    double prev = 0;
    size_t i;
    json_t *w;
    json_array_foreach(words, i, w) {
        double a = json_real_value(json_object_get(w, "start"));
        double b = json_real_value(json_object_get(w, "end"));
        ASSERT_TRUE(a >= prev && b >= a && b <= 5.0);
        prev = b;
    }
    json_decref(root);
    free(j);
    transcript_free(t);
}

TEST(transcript_invalid_utf8_is_replaced)
{
    transcript *t = transcript_new("en", 1);
    transcript_add_segment(t, 0, 1, "caf\xc3\xa9 \xff\xfe ok \xe2\x82");
    ASSERT_STR_EQ(t->segments[0].text, "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd ok \xef\xbf\xbd\xef\xbf\xbd");
    free(t->segments[0].text);
    t->segments[0].text = strdup("bad \xc0\xaf");  /* edited by hand: still valid JSON */
    char *j = transcript_to_json(t);
    json_t *root = json_loads(j, 0, NULL);
    ASSERT_NOT_NULL(root);
    json_decref(root);
    free(j);
    transcript_free(t);
}

TEST(transcript_empty)
{
    transcript *t = transcript_new(NULL, 3);
    char *s = transcript_to_txt(t);
    ASSERT_STR_EQ(s, "\n");
    free(s);
    s = transcript_to_json(t);
    ASSERT_STR_EQ(s, "{\"text\": \"\"}");
    free(s);
    s = transcript_to_srt(t);
    ASSERT_STR_EQ(s, "");
    free(s);
    s = transcript_to_vtt(t);
    ASSERT_STR_EQ(s, "WEBVTT\n\n");
    free(s);
    s = transcript_to_verbose_json(t, 1);
    ASSERT_STR_EQ(s, "{\"task\": \"transcribe\", \"language\": \"\", \"duration\": 3.0, "
                     "\"text\": \"\", \"segments\": [], \"words\": []}");
    free(s);
    transcript_free(t);
    transcript_free(NULL);
}

TEST(transcript_store_roundtrip)
{
    transcript *t = transcript_new("de", 12.345678901234567);
    t->translated = 1;
    t->temperature = 0.1 + 0.2;
    transcript_segment *s = transcript_add_segment(t, 0.1 + 0.2, 1.0 / 3.0, "Grüße \"x\"\n-->");
    segment_add_word(s, 0.3, 0.31, "Grüße", 1.0 / 7.0);
    segment_add_word(s, 0.32, 1.0 / 3.0, "x", -1);
    s->avg_logprob = -0.123456789012345678;
    s->no_speech_prob = 0.01;
    s->compression_ratio = 2.5;
    s->confidence = 0.7;
    transcript_add_segment(t, 2, 3, "");  /* empty segment survives */
    char *a = transcript_to_json_store(t);
    char err[256] = "";
    transcript *u = transcript_from_json_store(a, err, sizeof err);
    ASSERT_NOT_NULL(u);
    char *b = transcript_to_json_store(u);
    ASSERT_STR_EQ(a, b);
    ASSERT_STR_EQ(u->language, "de");
    ASSERT_EQ(u->translated, 1);
    ASSERT_TRUE(u->temperature == t->temperature);
    ASSERT_TRUE(u->duration == t->duration);
    ASSERT_EQ(u->n_segments, 2);
    for (size_t i = 0; i < t->n_segments; i++) {
        transcript_segment *x = &t->segments[i], *y = &u->segments[i];
        ASSERT_EQ(x->id, y->id);
        ASSERT_TRUE(x->start == y->start && x->end == y->end);
        ASSERT_STR_EQ(x->text, y->text);
        ASSERT_TRUE(x->confidence == y->confidence);
        ASSERT_TRUE(x->no_speech_prob == y->no_speech_prob);
        ASSERT_TRUE(x->compression_ratio == y->compression_ratio);
        ASSERT_TRUE(x->avg_logprob == y->avg_logprob || (isnan(x->avg_logprob) && isnan(y->avg_logprob)));
        ASSERT_EQ(x->n_words, y->n_words);
        for (size_t k = 0; k < x->n_words; k++) {
            ASSERT_STR_EQ(x->words[k].word, y->words[k].word);
            ASSERT_TRUE(x->words[k].start == y->words[k].start);
            ASSERT_TRUE(x->words[k].end == y->words[k].end);
            ASSERT_TRUE(x->words[k].confidence == y->words[k].confidence);
        }
    }
    /* renderings agree too */
    char *r1 = transcript_to_srt(t), *r2 = transcript_to_srt(u);
    ASSERT_STR_EQ(r1, r2);
    free(r1);
    free(r2);
    free(a);
    free(b);
    transcript_free(t);
    transcript_free(u);
}

TEST(transcript_store_rejects_malformed)
{
    static const char *bad[] = {
        "", "nope", "[]", "{}", "{\"version\":2,\"segments\":[]}",
        "{\"version\":1}",
        "{\"version\":1,\"segments\":{}}",
        "{\"version\":1,\"language\":5,\"segments\":[]}",
        "{\"version\":1,\"duration\":\"x\",\"segments\":[]}",
        "{\"version\":1,\"segments\":[{\"start\":0,\"end\":1}]}",
        "{\"version\":1,\"segments\":[{\"start\":\"0\",\"end\":1,\"text\":\"a\"}]}",
        "{\"version\":1,\"segments\":[{\"start\":0,\"end\":1,\"text\":\"a\",\"words\":[[\"w\",0]]}]}",
        "{\"version\":1,\"segments\":[{\"start\":0,\"end\":1,\"text\":\"a\",\"words\":[[1,0,1,null]]}]}",
        "{\"version\":1,\"segments\":[5]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        transcript *t = transcript_from_json_store(bad[i], err, sizeof err);
        if (t) test_fail(__FILE__, __LINE__, "accepted: %s", bad[i]);
        ASSERT_CONTAINS(err, "transcript JSON");
    }
    char err[256] = "";
    ASSERT_NULL(transcript_from_json_store(NULL, err, sizeof err));
    /* minimal valid form; bad times are clamped on load */
    transcript *t = transcript_from_json_store(
        "{\"version\":1,\"segments\":[{\"start\":-3,\"end\":1,\"text\":\"a\","
        "\"words\":[[\"a\",2,1,null]]},{\"start\":0,\"end\":0.5,\"text\":\"b\"}]}",
        err, sizeof err);
    ASSERT_NOT_NULL(t);
    ASSERT_NULL(t->language);
    ASSERT_NEAR(t->segments[0].start, 0, 0);
    ASSERT_NEAR(t->segments[0].end, 2, 0);
    ASSERT_NEAR(t->segments[1].start, 2, 0);
    ASSERT_NEAR(t->segments[1].end, 2, 0);
    transcript_free(t);
}

TEST(transcript_format_parse_names)
{
    ASSERT_EQ(transcript_format_parse("json"), TRANSCRIPT_FMT_JSON);
    ASSERT_EQ(transcript_format_parse("text"), TRANSCRIPT_FMT_TEXT);
    ASSERT_EQ(transcript_format_parse("txt"), TRANSCRIPT_FMT_TEXT);
    ASSERT_EQ(transcript_format_parse("srt"), TRANSCRIPT_FMT_SRT);
    ASSERT_EQ(transcript_format_parse("vtt"), TRANSCRIPT_FMT_VTT);
    ASSERT_EQ(transcript_format_parse("verbose_json"), TRANSCRIPT_FMT_VERBOSE_JSON);
    ASSERT_EQ(transcript_format_parse("SRT"), TRANSCRIPT_FMT_INVALID);
    ASSERT_EQ(transcript_format_parse("xml"), TRANSCRIPT_FMT_INVALID);
    ASSERT_EQ(transcript_format_parse(""), TRANSCRIPT_FMT_INVALID);
    ASSERT_EQ(transcript_format_parse(NULL), TRANSCRIPT_FMT_INVALID);
    ASSERT_STR_EQ(transcript_format_name(TRANSCRIPT_FMT_SRT), "srt");
    ASSERT_STR_EQ(transcript_format_name(TRANSCRIPT_FMT_INVALID), "invalid");
    ASSERT_STR_EQ(transcript_format_content_type(TRANSCRIPT_FMT_VTT), "text/vtt; charset=utf-8");
    ASSERT_STR_EQ(transcript_format_content_type(TRANSCRIPT_FMT_JSON), "application/json");
    transcript *t = sample();
    ASSERT_NULL(transcript_render(t, TRANSCRIPT_FMT_INVALID, 0));
    char *a = transcript_render(t, TRANSCRIPT_FMT_SRT, 0), *b = transcript_to_srt(t);
    ASSERT_STR_EQ(a, b);
    free(a);
    free(b);
    transcript_free(t);
    ASSERT_STR_EQ(transcript_language_name("fr"), "french");
    ASSERT_STR_EQ(transcript_language_name("xx"), "xx");
}

/* fuzz finding: a word past its segment's end extends the segment; the stored duration must
 * cover it, so that store JSON is stable across a load and a save */
TEST(transcript_store_duration_covers_word_extended_segment)
{
    transcript *t = transcript_new("en", 2.0);
    transcript_segment *s = transcript_add_segment(t, 0, 1.5, "hello");
    segment_add_word(s, 0.5, 9.0, "hello", 0.9);
    char *a = transcript_to_json_store(t);
    char err[128];
    transcript *t2 = transcript_from_json_store(a, err, sizeof err);
    ASSERT_NOT_NULL(t2);
    ASSERT_NEAR(t2->duration, 9.0, 1e-9);
    char *b = transcript_to_json_store(t2);
    ASSERT_STR_EQ(a, b);
    free(a);
    free(b);
    transcript_free(t2);
    transcript_free(t);
}

/* ---- speakers */

static transcript *two_voices(void)
{
    transcript *t = transcript_new("en", 10);
    transcript_segment *s = transcript_add_segment(t, 0, 4, "hello there how are you");
    segment_add_word(s, 0.0, 0.5, "hello", 0.9);
    segment_add_word(s, 0.6, 1.0, "there", 0.9);
    segment_add_word(s, 2.0, 2.4, "how", 0.8);   /* the second voice starts at 1.8 */
    segment_add_word(s, 2.5, 2.8, "are", 0.8);
    segment_add_word(s, 2.9, 3.3, "you", 0.8);
    s = transcript_add_segment(t, 5, 6, "fine");
    segment_add_word(s, 5.0, 6.0, "fine", 0.7);
    return t;
}

static const transcript_turn turns2[] = {{0, 1.8, 0}, {1.8, 4.0, 1}, {4.9, 6.2, 0}};

TEST(transcript_assign_speakers_splits_at_turns)
{
    transcript *t = two_voices();
    transcript_assign_speakers(t, turns2, 3, 2);
    ASSERT_EQ(t->n_speakers, 2);
    ASSERT_EQ(t->n_segments, 3);
    ASSERT_STR_EQ(t->segments[0].text, "hello there");
    ASSERT_EQ(t->segments[0].speaker, 0);
    ASSERT_STR_EQ(t->segments[1].text, "how are you");
    ASSERT_EQ(t->segments[1].speaker, 1);
    ASSERT_EQ(t->segments[1].id, 1);
    ASSERT_NEAR(t->segments[1].start, 2.0, 1e-9);
    ASSERT_NEAR(t->segments[1].end, 4.0, 1e-9);
    ASSERT_EQ(t->segments[2].speaker, 0);
    ASSERT_EQ(t->segments[2].words[0].speaker, 0);
    for (size_t i = 0; i < t->segments[1].n_words; i++) ASSERT_EQ(t->segments[1].words[i].speaker, 1);
    ASSERT_NEAR(t->speakers[0].talk_time, 1.8 + 1.3, 1e-9);
    ASSERT_NEAR(t->speakers[1].talk_time, 2.2, 1e-9);
    /* a word outside every turn goes to the nearest one */
    transcript *u = transcript_new("en", 10);
    segment_add_word(transcript_add_segment(u, 7, 8, "late"), 7, 8, "late", 1);
    transcript_assign_speakers(u, turns2, 3, 2);
    ASSERT_EQ(u->segments[0].speaker, 0);
    transcript_free(u);
    transcript_free(t);
}

TEST(transcript_speaker_renderers)
{
    transcript *t = two_voices();
    transcript_assign_speakers(t, turns2, 3, 2);
    char *txt = transcript_to_txt(t);
    ASSERT_STR_EQ(txt, "Speaker 1: hello there\nSpeaker 2: how are you\nSpeaker 1: fine\n");
    free(txt);
    char *srt = transcript_to_srt(t);
    ASSERT_STR_EQ(srt, "1\n00:00:00,000 --> 00:00:01,000\nSpeaker 1: hello there\n\n"
                       "2\n00:00:02,000 --> 00:00:04,000\nSpeaker 2: how are you\n\n"
                       "3\n00:00:05,000 --> 00:00:06,000\nSpeaker 1: fine\n\n");
    free(srt);
    ASSERT_EQ(transcript_set_speaker_name(t, 1, "Ann <&>"), 0);
    ASSERT_EQ(transcript_set_speaker_name(t, 2, "x"), -1);
    char *vtt = transcript_to_vtt(t);
    ASSERT_STR_EQ(vtt, "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<v Speaker 1>hello there\n\n"
                       "00:00:02.000 --> 00:00:04.000\n<v Ann &lt;&amp;&gt;>how are you\n\n"
                       "00:00:05.000 --> 00:00:06.000\n<v Speaker 1>fine\n\n");
    free(vtt);
    char *vj = transcript_to_verbose_json(t, 1);
    json_t *v = json_loads(vj, 0, NULL);
    ASSERT_STR_EQ(json_string_value(json_object_get(json_array_get(json_object_get(v, "segments"), 1), "speaker")), "Ann <&>");
    ASSERT_EQ(json_integer_value(json_object_get(json_array_get(json_object_get(v, "words"), 2), "speaker_id")), 2);
    ASSERT_EQ(json_array_size(json_object_get(v, "speakers")), 2);
    json_decref(v);
    free(vj);
    char *dj = transcript_to_diarized_json(t);
    json_t *d = json_loads(dj, 0, NULL);
    json_t *s0 = json_array_get(json_object_get(d, "segments"), 0);
    ASSERT_STR_EQ(json_string_value(json_object_get(s0, "type")), "transcript.text.segment");
    ASSERT_STR_EQ(json_string_value(json_object_get(s0, "id")), "seg_0");
    ASSERT_STR_EQ(json_string_value(json_object_get(s0, "speaker")), "Speaker 1");
    ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(d, "usage"), "type")), "duration");
    json_decref(d);
    free(dj);
    ASSERT_EQ(transcript_format_parse("diarized_json"), TRANSCRIPT_FMT_DIARIZED_JSON);
    transcript_free(t);
}

TEST(transcript_speakers_store_roundtrip)
{
    transcript *t = two_voices();
    transcript_assign_speakers(t, turns2, 3, 2);
    transcript_set_speaker_name(t, 0, "Alice");
    char *js = transcript_to_json_store(t);
    char err[128];
    transcript *u = transcript_from_json_store(js, err, sizeof err);
    ASSERT_TRUE(u != NULL);
    ASSERT_EQ(u->n_speakers, 2);
    ASSERT_STR_EQ(u->speakers[0].name, "Alice");
    ASSERT_TRUE(u->speakers[1].name == NULL);
    ASSERT_EQ(u->segments[1].speaker, 1);
    ASSERT_EQ(u->segments[1].words[0].speaker, 1);
    char *js2 = transcript_to_json_store(u);
    ASSERT_STR_EQ(js, js2);
    free(js2);
    free(js);
    transcript_free(u);
    /* an undiarized transcript renders as before: no speaker anywhere */
    transcript *p = two_voices();
    char *txt = transcript_to_txt(p);
    ASSERT_STR_EQ(txt, "hello there how are you fine\n");
    free(txt);
    char *dj = transcript_to_diarized_json(p);
    ASSERT_TRUE(strstr(dj, "\"speaker\": null") != NULL);
    free(dj);
    transcript_free(p);
    transcript_free(t);
}
