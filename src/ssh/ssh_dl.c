/* ssh_dl: libssh by dlopen. Contract in ssh_dl.h. */
#include "ssh/ssh_dl.h"

#include "core/dlib.h"
#include "core/log.h"

#ifndef GS_SONAME_SSH
#error "GS_SONAME_SSH must be defined (the Makefile does)"
#endif

struct gs_ssh gs_ssh;

static dlib_once g_once = DLIB_ONCE_INIT;

static int load(char *err, size_t errlen)
{
    const char *name = dlib_soname(GS_SONAME_SSH, "GS_SSH_SONAME_TEST");
    /* libssh initialises itself when loaded (its constructor runs ssh_init) */
    void *h = dlib_open(name, "libssh", err, errlen);
    if (!h) return -1;
    struct gs_ssh t;
#define GS_SSH_RESOLVE(f) DLIB_RESOLVE(t, h, name, "libssh", f);
    GS_SSH_FUNCS(GS_SSH_RESOLVE)
#undef GS_SSH_RESOLVE
    gs_ssh = t;
    LOG_D("ssh", "libssh loaded: %s", name);
    return 0;
}

int ssh_dl_load(char *err, size_t errlen) { return dlib_once_run(&g_once, load, err, errlen); }

int ssh_dl_load_count(void) { return dlib_once_loads(&g_once); }
