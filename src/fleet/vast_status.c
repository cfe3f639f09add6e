#include "fleet/vast_status.h"

#include "core/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0) return true;
    return false;
}

vast_status_class vast_status_classify(const vast_instance *vi, char *why, size_t whylen)
{
    const char *a = vi->actual_status, *m = vi->status_msg;
    static const char *const dead[] = {"exited", "unknown", "offline", "stopped", "frozen"};
    for (size_t i = 0; i < ARRAY_LEN(dead); i++)
        if (!strcmp(a, dead[i])) {
            snprintf(why, whylen, "Vast.ai reports instance %lld %s%s%s", vi->id, a,
                     m[0] ? ": " : "", m);
            return VAST_STATUS_FAILED;
        }
    if (!strcmp(vi->intended_status, "stopped")) {
        snprintf(why, whylen, "Vast.ai stopped instance %lld (outbid or stopped)%s%s", vi->id,
                 m[0] ? ": " : "", m);
        return VAST_STATUS_FAILED;
    }
    if (strcmp(a, "running") != 0 && m[0]) {
        static const char *const errs[] = {"oci runtime", "error", "failed", "unauthorized",
                                           "manifest unknown", "pull access denied", "denied"};
        for (size_t i = 0; i < ARRAY_LEN(errs); i++)
            if (contains_ci(m, errs[i])) {
                snprintf(why, whylen, "instance %lld failed to start: %s", vi->id, m);
                return VAST_STATUS_FAILED;
            }
    }
    return strcmp(a, "running") == 0 ? VAST_STATUS_RUNNING : VAST_STATUS_WAITING;
}

const char *vast_status_name(vast_status_class c)
{
    switch (c) {
    case VAST_STATUS_RUNNING: return "running";
    case VAST_STATUS_FAILED: return "failed";
    case VAST_STATUS_WAITING: break;
    }
    return "waiting";
}
