#include "core/fault.h"

#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char armed[256];   /* ",name,name," or "" */

static void read_env(void)
{
    const char *e = getenv("GS_FAULT");
    if (!e || !*e) return;
    snprintf(armed, sizeof armed, ",%s,", e);
    LOG_W("fault", "GS_FAULT=%s is set: test-only crash points are armed", e);
}

void fault_init(void) { pthread_once(&once, read_env); }

bool fault_armed(const char *name)
{
    fault_init();
    if (!armed[0] || !name || !*name || strchr(name, ',')) return false;
    char pat[96];
    snprintf(pat, sizeof pat, ",%s,", name);
    return strstr(armed, pat) != NULL;
}

void fault_point(const char *name)
{
    if (!fault_armed(name)) return;
    LOG_E("fault", "%s: exiting (GS_FAULT)", name);
    _exit(FAULT_EXIT_CODE);
}
