/* transcript: the transcript model (segments with word timings) and its renderers.
 *
 * A transcript has a language code ("en", or NULL when unknown), the audio duration, the task
 * ("transcribe" or "translate"), the decoding temperature, and an ordered list of segments.
 * A segment has an id (0-based, assigned in order), start/end in seconds, its text, an
 * optional average confidence (0..1; < 0 = unknown), optional whisper-style statistics, and
 * an ordered list of words (start, end, word, confidence 0..1 or < 0 = unknown).
 *
 * Invariants kept by the builders (and re-applied by every renderer, since the fields are
 * public and may be edited): times are finite and >= 0; a segment starts no earlier than
 * the previous segment ends; end >= start; words are monotone within their segment and lie
 * inside it (a word past the segment end extends the segment). Bad times are clamped, never
 * rejected.
 *
 * Renderers return heap strings (caller frees), never NULL:
 *   txt           segment texts joined by one space, with a trailing newline
 *   json          {"text": "..."}                         (OpenAI response_format=json)
 *   verbose_json  {"task","language","duration","text","segments":[...],"words":[...]}
 *                 (OpenAI's shape; "words" only when asked for)
 *   srt           1-based cues "HH:MM:SS,mmm --> HH:MM:SS,mmm", a blank line between cues
 *   vtt           "WEBVTT" header, cues "HH:MM:SS.mmm --> HH:MM:SS.mmm"
 *   diarized_json {"task","duration","text","segments":[{"type":"transcript.text.segment",
 *                 "id":"seg_N","start","end","text","speaker"}],"usage":{"type":"duration",
 *                 "seconds"}} (OpenAI's diarized answer; speaker null when unknown)
 * Speakers (when the transcript has them): txt puts each turn on its own line as
 * "Speaker 1: ...", srt starts the cue of each turn with "Speaker 1: ", vtt tags every cue
 * with <v Speaker 1>, verbose_json gives segments and words "speaker" (the label) and
 * "speaker_id" (1-based), plus "speakers": [{"id","name","talk_time"}]. Labels are the
 * speakers' names when renamed.
 * Segments whose text is empty produce no SRT/VTT cue (cue numbers stay contiguous).
 * Cue text never holds a blank line or "-->" (SRT breaks it as "-- >"; VTT escapes & < >).
 *
 * transcript_to_json_store / transcript_from_json_store: our own lossless JSON (every field,
 * doubles at full precision), for the database and for worker -> controller transfer.
 *
 * Thread-safety: a transcript is plain data; do not mutate one from two threads at once.
 */
#ifndef GS_TRANSCRIPT_H
#define GS_TRANSCRIPT_H

#include <stddef.h>

typedef struct transcript_word {
    double start, end;   /* seconds */
    char *word;          /* no surrounding spaces */
    double confidence;   /* 0..1, < 0 = unknown */
    int speaker;         /* index into the transcript's speakers, -1 = unknown */
} transcript_word;

typedef struct transcript_segment {
    int id;
    double start, end;         /* seconds */
    char *text;                /* trimmed */
    double confidence;         /* average word confidence 0..1, < 0 = unknown */
    double avg_logprob;        /* NAN = unknown (verbose_json then uses log(confidence) or 0) */
    double no_speech_prob;     /* 0 when unknown */
    double compression_ratio;  /* 0 when unknown */
    int speaker;               /* index into the transcript's speakers, -1 = unknown */
    transcript_word *words;
    size_t n_words, cap_words;
} transcript_segment;

typedef struct transcript_speaker {
    char *name;          /* set by a rename; NULL = the default label "Speaker <i+1>" */
    double talk_time;    /* seconds of speech */
} transcript_speaker;

typedef struct transcript {
    char *language;      /* ISO-639-1 code, or NULL when unknown */
    double duration;     /* seconds of audio */
    int translated;      /* task: 0 = transcribe, 1 = translate */
    double temperature;
    transcript_segment *segments;
    size_t n_segments, cap_segments;
    transcript_speaker *speakers; /* n_speakers of them (0: not diarized); speaker i has id i */
    size_t n_speakers;
} transcript;

/* A speaker turn from a diarizer: [start, end) seconds, speaker 0-based. */
typedef struct transcript_turn {
    double start, end;
    int speaker;
} transcript_turn;

enum transcript_format {
    TRANSCRIPT_FMT_INVALID = -1,
    TRANSCRIPT_FMT_JSON = 0,
    TRANSCRIPT_FMT_TEXT,
    TRANSCRIPT_FMT_SRT,
    TRANSCRIPT_FMT_VTT,
    TRANSCRIPT_FMT_VERBOSE_JSON,
    TRANSCRIPT_FMT_DIARIZED_JSON,
};

/* language may be NULL. */
transcript *transcript_new(const char *language, double duration);
void transcript_set_language(transcript *t, const char *language);
void transcript_free(transcript *t);

/* Append a segment (text copied and trimmed; times clamped as described above). The
 * returned pointer is valid until the next transcript_add_segment on t. */
transcript_segment *transcript_add_segment(transcript *t, double start, double end,
                                           const char *text);
/* Append a word (copied and trimmed; times clamped into the segment's order). The returned
 * pointer is valid until the next segment_add_word on s. */
transcript_word *segment_add_word(transcript_segment *s, double start, double end,
                                  const char *word, double confidence);
/* Append src's segments and words to dst with offset seconds added to every time (a chunk's
 * transcript into its job's), each time capped at dst's duration when that is set (> 0).
 * Ids continue dst's; the usual clamping keeps the order monotonic. */
void transcript_append(transcript *dst, const transcript *src, double offset);
/* Set the segment's confidence to the mean of its known word confidences (unchanged when
 * none is known). */
void segment_update_confidence(transcript_segment *s);

/* Speakers (diarization): give every word the speaker whose turns overlap it most (the
 * nearest turn when none does), every segment its words' speaker (by duration; its own
 * overlap when it has no words), split segments where the speaker changes between two
 * words (texts rebuilt from the words, ids renumbered), and set t's speakers (n_speakers,
 * talk time from the turns; names kept for ids that existed). turns sorted by start. */
void transcript_assign_speakers(transcript *t, const transcript_turn *turns, size_t n_turns,
                                int n_speakers);
/* The speaker's display name: its name, else "Speaker <id+1>" (written to buf). */
const char *transcript_speaker_label(const transcript *t, int id, char *buf, size_t n);
/* Rename speaker id (NULL or "" = back to the default label). -1 when id is unknown. */
int transcript_set_speaker_name(transcript *t, int id, const char *name);

/* The segment texts joined by one space (no trailing newline). Caller frees. */
char *transcript_text(const transcript *t);

/* "json", "text" (also "txt"), "srt", "vtt", "verbose_json", "diarized_json" -> format; an unknown name or
 * NULL gives TRANSCRIPT_FMT_INVALID. */
enum transcript_format transcript_format_parse(const char *name);
/* The canonical name ("json", "text", ...), or "invalid". */
const char *transcript_format_name(enum transcript_format f);
/* Content-Type for an HTTP response body of this format. */
const char *transcript_format_content_type(enum transcript_format f);

char *transcript_to_txt(const transcript *t);
char *transcript_to_json(const transcript *t);
char *transcript_to_verbose_json(const transcript *t, int with_words);
char *transcript_to_srt(const transcript *t);
char *transcript_to_vtt(const transcript *t);
char *transcript_to_diarized_json(const transcript *t);
/* Dispatch on format (with_words only matters for verbose_json). NULL for an invalid
 * format. */
char *transcript_render(const transcript *t, enum transcript_format f, int with_words);

/* Lossless storage form. from_json_store returns NULL with err set on malformed input. */
char *transcript_to_json_store(const transcript *t);
transcript *transcript_from_json_store(const char *json, char *err, size_t errlen);

/* OpenAI's language name for a code ("en" -> "english"); the code itself when not in the
 * table, "" for NULL. */
const char *transcript_language_name(const char *code);

#endif
