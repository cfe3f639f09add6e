/* ssh_dl: libssh by dlopen. Contract in ssh_dl.h. */
#include "ssh/ssh_dl.h"

#include "core/dlib.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GS_SONAME_SSH
#error "GS_SONAME_SSH must be defined (the Makefile does)"
#endif

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs wide enough pointers");

struct gs_ssh gs_ssh;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_rc = -1;
static char g_err[256];
static atomic_int g_loads;

static void load_once(void)
{
    atomic_fetch_add(&g_loads, 1);
    const char *name = GS_SONAME_SSH;
    const char *test = getenv("GS_SSH_SONAME_TEST");
    if (test && *test) name = test;
    /* libssh initialises itself when loaded (its constructor runs ssh_init) */
    void *h = dlib_open(name, "libssh", g_err, sizeof g_err);
    if (!h) goto fail;
    struct gs_ssh t;
#define GS_SSH_RESOLVE(f)                                                                   \
    {                                                                                       \
        void *p = dlib_sym(h, name, "libssh", #f, g_err, sizeof g_err);                     \
        if (!p) goto fail;                                                                  \
        memcpy(&t.f, &p, sizeof p); /* POSIX: dlsym's pointer is the function's */         \
    }
    GS_SSH_FUNCS(GS_SSH_RESOLVE)
#undef GS_SSH_RESOLVE
    gs_ssh = t;
    g_rc = 0;
    LOG_D("ssh", "libssh loaded: %s", name);
    return;
fail:
    LOG_W("ssh", "%s", g_err);
}

int ssh_dl_load(char *err, size_t errlen)
{
    pthread_once(&g_once, load_once);
    if (g_rc != 0 && err && errlen) snprintf(err, errlen, "%s", g_err);
    return g_rc;
}

int ssh_dl_load_count(void) { return atomic_load(&g_loads); }
