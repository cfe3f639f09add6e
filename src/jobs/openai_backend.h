/* openai_backend: transcribe through OpenAI's /v1/audio/transcriptions (the optional fallback
 * when no GPU is available; see docs/anchors.md Appendix D).
 *
 * Posts multipart/form-data to {base_url}/audio/transcriptions (or /audio/translations when
 * o->translate): file (the audio as is: flac, mp3, mp4, m4a, ogg, wav, webm; OpenAI caps it
 * at 25 MB), model=whisper-1, response_format=verbose_json, timestamp_granularities[]=segment
 * (+ word when o->word_timestamps), language (when set and not "auto"), prompt, temperature.
 * The verbose_json answer becomes a transcript: segments with avg_logprob, no_speech_prob
 * and compression_ratio; words placed in the segment that holds them; the language name
 * ("english") mapped back to its code ("en"). An answer without segments (other models)
 * becomes one segment over the whole duration.
 *
 * Errors: "openai api error (HTTP 401): <OpenAI's error.message>", "cannot reach the openai
 * api at URL: <reason>", "openai api timed out after N s", "bad response from the openai
 * api: ...", "cannot open FILE: ...". The API key travels only in the Authorization header:
 * it never appears in an error or a log line (it is scrubbed from OpenAI's own messages).
 * 429, 5xx and connection failures are retried (3 attempts in all, backoff 1 s then 2 s, or
 * Retry-After up to 10 s). Thread-safe (one curl handle per call; libcurl is loaded on the
 * first call, core/curl_dl.h).
 */
#ifndef GS_OPENAI_BACKEND_H
#define GS_OPENAI_BACKEND_H

#include <stddef.h>

#include "engine/engine.h"
#include "transcript/transcript.h"

typedef struct openai_limits {
    long connect_timeout_ms; /* 0 = 15 s */
    long timeout_ms;         /* whole request, upload included; 0 = 15 min */
    int max_attempts;        /* 0 = 3 */
    long backoff_ms;         /* first retry delay, doubled each time; 0 = 1000 */
} openai_limits;

transcript *openai_transcribe(const char *base_url, const char *api_key, const char *audio_path,
                              const engine_opts *o, char *err, size_t errlen);
/* The same with explicit limits (lim may be NULL = defaults). */
transcript *openai_transcribe_ex(const char *base_url, const char *api_key,
                                 const char *audio_path, const engine_opts *o,
                                 const openai_limits *lim, char *err, size_t errlen);

#endif
