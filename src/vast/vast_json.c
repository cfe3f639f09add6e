/* vast_json: tolerant readers for Vast's JSON (numbers as strings, nulls, missing fields). */
#include "vast/vast_int.h"

#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const json_t *member(const json_t *obj, const char *key)
{
    if (!obj || !json_is_object(obj) || !key) return NULL;
    return json_object_get(obj, key);
}

/* Parse a whole numeric string, surrounding whitespace allowed. */
static int str_num(const char *s, double *out)
{
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return -1;
    errno = 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s || errno == ERANGE) return -1;
    while (isspace((unsigned char)*end)) end++;
    if (*end || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

int vast_j_value_num(const json_t *v, double *out)
{
    if (!v) return -1;
    switch (json_typeof(v)) {
    case JSON_INTEGER: *out = (double)json_integer_value(v); return 0;
    case JSON_REAL:
        if (!isfinite(json_real_value(v))) return -1;
        *out = json_real_value(v);
        return 0;
    case JSON_TRUE: *out = 1; return 0;
    case JSON_FALSE: *out = 0; return 0;
    case JSON_STRING: return str_num(json_string_value(v), out);
    default: return -1;
    }
}

int vast_j_value_ll(const json_t *v, long long *out)
{
    if (!v) return -1;
    if (json_is_integer(v)) { *out = (long long)json_integer_value(v); return 0; }
    if (json_is_string(v)) {
        /* Prefer an exact integer parse (ids beyond 2^53 stay exact). */
        const char *s = json_string_value(v);
        while (isspace((unsigned char)*s)) s++;
        errno = 0;
        char *end = NULL;
        long long n = strtoll(s, &end, 10);
        if (end != s && errno == 0) {
            const char *e = end;
            while (isspace((unsigned char)*e)) e++;
            if (!*e) { *out = n; return 0; }
        }
    }
    double d;
    if (vast_j_value_num(v, &d) != 0) return -1;
    if (d >= 9.2e18 || d <= -9.2e18) return -1;
    *out = (long long)d;
    return 0;
}

double vast_j_num(const json_t *obj, const char *key, double def)
{
    double d;
    return vast_j_value_num(member(obj, key), &d) == 0 ? d : def;
}

long long vast_j_ll(const json_t *obj, const char *key, long long def)
{
    long long n;
    return vast_j_value_ll(member(obj, key), &n) == 0 ? n : def;
}

int vast_j_int(const json_t *obj, const char *key, int def)
{
    long long n = vast_j_ll(obj, key, def);
    if (n > 2147483647LL || n < -2147483647LL - 1) return def;
    return (int)n;
}

bool vast_j_bool(const json_t *obj, const char *key, bool def)
{
    const json_t *v = member(obj, key);
    if (!v) return def;
    if (json_is_boolean(v)) return json_is_true(v);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) return true;
        if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) return false;
        return def;
    }
    double d;
    if (vast_j_value_num(v, &d) == 0) return d != 0;
    return def;
}

const char *vast_j_cstr(const json_t *obj, const char *key)
{
    const json_t *v = member(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *render(const json_t *v)
{
    if (!v) return xstrdup("");
    if (json_is_string(v)) return xstrdup(json_string_value(v));
    if (json_is_integer(v)) return xasprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v)) return xasprintf("%.17g", json_real_value(v));
    if (json_is_true(v)) return xstrdup("true");
    if (json_is_false(v)) return xstrdup("false");
    return xstrdup("");
}

static void trim_inplace(char *s)
{
    size_t n = strlen(s), i = 0;
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i) memmove(s, s + i, n - i + 1);
}

char *vast_j_strdup(const json_t *obj, const char *key, bool trim)
{
    char *s = render(member(obj, key));
    if (trim) trim_inplace(s);
    return s;
}

void vast_j_strcpy(const json_t *obj, const char *key, char *dst, size_t n)
{
    if (!n) return;
    char *s = vast_j_strdup(obj, key, true);
    snprintf(dst, n, "%s", s);
    free(s);
}
