/* vast_int: internals shared by the files of src/vast/ (not for other modules).
 *
 * - Tolerant JSON getters (vast_j_*): Vast sends numbers as numbers or as strings
 *   ("20000", " 1.5 "), nulls where a value is expected, and omits fields. Each getter takes
 *   an object (anything else, or NULL, counts as empty) and a key, and returns the default
 *   when the member is missing, null or not convertible. Strings are never NULL.
 * - vast_request(): one API call with timeouts, retries and error mapping (vast_http.c).
 * - vast_set_error(): fill a vast_error with a printf-style message, scrubbing the key.
 * Thread-safe: nothing here has mutable shared state.
 */
#ifndef GS_VAST_INT_H
#define GS_VAST_INT_H

#include "vast/vast.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct vast_client {
    char *base;           /* no trailing slash */
    char *api_key;        /* "" when none; only for the header and for scrubbing */
    char *auth_header;    /* "Authorization: Bearer ..." or NULL */
    long connect_ms, total_ms;
    int attempts;
    long backoff_base_ms, backoff_max_ms;
};

/* ---- tolerant JSON (vast_json.c) */

/* Convert one value: number, numeric string (whitespace allowed around it), bool (0/1).
 * Returns 0 and sets *out, or -1 (null, missing, junk, not finite). */
int vast_j_value_num(const json_t *v, double *out);
int vast_j_value_ll(const json_t *v, long long *out);

double vast_j_num(const json_t *obj, const char *key, double def);
long long vast_j_ll(const json_t *obj, const char *key, long long def);
int vast_j_int(const json_t *obj, const char *key, int def);
/* true/false, numbers (non-zero = true), strings "true"/"false"/"1"/"0"/"yes"/"no". */
bool vast_j_bool(const json_t *obj, const char *key, bool def);
/* The string member, or NULL when missing/not a string (no conversion, no copy). */
const char *vast_j_cstr(const json_t *obj, const char *key);
/* Heap copy of a member rendered as text (strings as-is, numbers formatted, others "");
 * trim removes surrounding whitespace. Never NULL. */
char *vast_j_strdup(const json_t *obj, const char *key, bool trim);
/* Same into a fixed buffer (truncated, NUL-terminated). */
void vast_j_strcpy(const json_t *obj, const char *key, char *dst, size_t n);

/* ---- transport (vast_http.c) */

enum vast_retry_mode {
    VAST_RETRY_ALL,       /* 429, 502, 503, 504, connection errors and timeouts */
    VAST_RETRY_UNSENT,    /* only when the request certainly did not act: 429, refused, DNS */
};

/* Perform METHOD base+path_query with body (NULL: no body; serialised compactly).
 * Returns 0 when the answer is 2xx JSON without `success: false`; -1 otherwise with *err.
 * *out (may be NULL) receives the parsed answer whenever it was JSON, on error too (so a
 * caller can read e.g. new_contract from an error body); the caller decrefs it. An empty
 * 2xx answer counts as {}. */
int vast_request(vast_client *c, const char *method, const char *path_query,
                 const json_t *body, enum vast_retry_mode mode, json_t **out,
                 vast_error *err);

void vast_set_error(const vast_client *c, vast_error *err, vast_err_kind kind, int status,
                    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Percent-encode s for a query string (RFC 3986 unreserved kept). Heap string. */
char *vast_urlencode(const char *s);

#endif
