/* dlib: dlopen by soname with actionable errors. Contract in dlib.h. */
#include "core/dlib.h"

#include "core/log.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs code pointers as wide as data pointers");

/* libraries whose Debian package departs from the policy's name */
static const char *const g_pkg_exceptions[][2] = {
    {"libssh.so.4", "libssh-4"},
};

void dlib_package(const char *soname, char *out, size_t n)
{
    if (!n) return;
    for (size_t i = 0; i < sizeof g_pkg_exceptions / sizeof g_pkg_exceptions[0]; i++)
        if (!strcmp(soname, g_pkg_exceptions[i][0])) {
            snprintf(out, n, "%s", g_pkg_exceptions[i][1]);
            return;
        }
    const char *so = strstr(soname, ".so");
    if (!so) {
        snprintf(out, n, "%s", soname);
        return;
    }
    int base = (int)(so - soname);
    const char *ver = so[3] == '.' ? so + 4 : "";
    int dash = base > 0 && isdigit((unsigned char)soname[base - 1]) && *ver;
    snprintf(out, n, "%.*s%s%s", base, soname, dash ? "-" : "", ver);
}

void *dlib_open(const char *soname, const char *what, char *err, size_t errlen)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (h) return h;
    const char *why = dlerror();
    if (!why) why = "unknown error";
    if (!err || !errlen) return NULL;
    /* glibc says "<name>: cannot open shared object file: No such file or directory" */
    if (strstr(why, "cannot open shared object file")) {
        char pkg[128];
        dlib_package(soname, pkg, sizeof pkg);
        snprintf(err, errlen, "%s's %s is not installed: apt install %s", what, soname, pkg);
    } else {
        snprintf(err, errlen, "cannot load %s's %s: %s", what, soname, why);
    }
    return NULL;
}

void *dlib_sym(void *h, const char *soname, const char *what, const char *name, char *err,
               size_t errlen)
{
    dlerror();
    void *p = dlsym(h, name);
    if (!p && err && errlen)
        snprintf(err, errlen, "%s's %s has no symbol %s (another version than the one "
                 "gpuscribe was built for?)", what, soname, name);
    return p;
}

const char *dlib_soname(const char *soname, const char *test_env)
{
    const char *t = getenv(test_env);
    return t && *t ? t : soname;
}

int dlib_sym_into(void *h, const char *soname, const char *what, const char *name, void *slot,
                  size_t slot_size, char *err, size_t errlen)
{
    void *p = dlib_sym(h, soname, what, name, err, errlen);
    if (!p || slot_size != sizeof p) return -1;
    memcpy(slot, &p, sizeof p); /* POSIX: the data pointer dlsym returns is the function's */
    return 0;
}

int dlib_once_run(dlib_once *o, int (*load)(char *err, size_t errlen), char *err, size_t errlen)
{
    if (!atomic_load_explicit(&o->done, memory_order_acquire)) {
        pthread_mutex_lock(&o->mu);
        if (!atomic_load_explicit(&o->done, memory_order_relaxed)) {
            atomic_fetch_add(&o->loads, 1);
            o->err[0] = '\0';
            o->rc = load(o->err, sizeof o->err) == 0 ? 0 : -1;
            /* the handles a failed load opened stay open: closing libraries is not worth the
             * risk, and the load is not retried */
            if (o->rc != 0) LOG_W("dlib", "%s", o->err[0] ? o->err : "cannot load a library");
            atomic_store_explicit(&o->done, 1, memory_order_release);
        }
        pthread_mutex_unlock(&o->mu);
    }
    if (o->rc != 0 && err && errlen) snprintf(err, errlen, "%s", o->err);
    return o->rc;
}

int dlib_once_loads(dlib_once *o) { return atomic_load(&o->loads); }

int dlib_once_ok(dlib_once *o)
{
    return atomic_load_explicit(&o->done, memory_order_acquire) && o->rc == 0;
}
