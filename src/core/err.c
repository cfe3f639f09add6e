#include "core/err.h"

static const struct {
    const char *name;
    int status;
    bool retry;
} kinds[] = {
    [GS_OK] = {"ok", 200, false},
    [GS_E_INVALID] = {"invalid", 400, false},
    [GS_E_NOT_FOUND] = {"not_found", 404, false},
    [GS_E_CONFLICT] = {"conflict", 409, false},
    [GS_E_TOO_LARGE] = {"too_large", 413, false},
    [GS_E_UNSUPPORTED] = {"unsupported", 415, false},
    [GS_E_FORBIDDEN] = {"forbidden", 403, false},
    [GS_E_NO_CREDIT] = {"no_credit", 402, false},
    [GS_E_UNAUTHORIZED] = {"unauthorized", 502, false},
    [GS_E_HOSTKEY] = {"hostkey", 502, false},
    [GS_E_FAILED] = {"failed", 502, false},
    [GS_E_RATE_LIMIT] = {"rate_limit", 503, true},
    [GS_E_BUSY] = {"busy", 503, true},
    [GS_E_NETWORK] = {"network", 502, true},
    [GS_E_TIMEOUT] = {"timeout", 504, true},
    [GS_E_PEER] = {"peer", 502, true},
    [GS_E_PROTOCOL] = {"protocol", 502, true},
    [GS_E_CANCELLED] = {"cancelled", 503, false},
    [GS_E_INTERNAL] = {"internal", 500, false},
};

#define NKINDS (sizeof kinds / sizeof kinds[0])

const char *gs_err_name(gs_err e)
{
    return (unsigned)e < NKINDS ? kinds[e].name : "unknown";
}

int gs_err_http_status(gs_err e)
{
    return (unsigned)e < NKINDS ? kinds[e].status : 500;
}

bool gs_err_retryable(gs_err e)
{
    return (unsigned)e < NKINDS && kinds[e].retry;
}

gs_err gs_err_from_http_status(long status)
{
    switch (status) {
    case 400: case 405: case 422: return GS_E_INVALID;
    case 401: return GS_E_UNAUTHORIZED;
    case 402: return GS_E_NO_CREDIT;
    case 403: return GS_E_FORBIDDEN;
    case 404: case 410: return GS_E_NOT_FOUND;
    case 409: return GS_E_CONFLICT;
    case 413: return GS_E_TOO_LARGE;
    case 415: return GS_E_UNSUPPORTED;
    case 429: return GS_E_RATE_LIMIT;
    case 503: return GS_E_BUSY;
    case 504: return GS_E_TIMEOUT;
    default: break;
    }
    if (status >= 500 && status < 600) return GS_E_PEER;
    if (status >= 400 && status < 500) return GS_E_INVALID;
    return GS_E_PROTOCOL;
}
