#include "core/gpu.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The few NVML entry points we use, with their documented C signatures. */
typedef int (*nvml_init_fn)(void);
typedef int (*nvml_count_fn)(unsigned int *);
typedef int (*nvml_handle_fn)(unsigned int, void **);
typedef int (*nvml_name_fn)(void *, char *, unsigned int);
typedef int (*nvml_shutdown_fn)(void);

void gpu_probe(gpu_info *out)
{
    memset(out, 0, sizeof *out);
    const char *lib = getenv("GS_NVML_LIB");
    void *h = dlopen(lib && *lib ? lib : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(out->error, sizeof out->error, "NVIDIA driver library (NVML) not found");
        return;
    }
    nvml_init_fn init = (nvml_init_fn)dlsym(h, "nvmlInit_v2");
    nvml_count_fn count = (nvml_count_fn)dlsym(h, "nvmlDeviceGetCount_v2");
    nvml_handle_fn handle = (nvml_handle_fn)dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    nvml_name_fn name = (nvml_name_fn)dlsym(h, "nvmlDeviceGetName");
    nvml_shutdown_fn shutdown = (nvml_shutdown_fn)dlsym(h, "nvmlShutdown");
    if (!init || !count || !shutdown) {
        snprintf(out->error, sizeof out->error, "NVML library lacks the expected functions");
        dlclose(h);
        return;
    }
    int rc = init();
    if (rc != 0) {
        snprintf(out->error, sizeof out->error, "NVML initialisation failed (code %d)", rc);
        dlclose(h);
        return;
    }
    unsigned int n = 0;
    if (count(&n) == 0 && n > 0) {
        out->cuda_available = 1;
        out->count = (int)n;
        void *dev = NULL;
        if (handle && name && handle(0, &dev) == 0 && name(dev, out->name, sizeof out->name) != 0)
            out->name[0] = '\0';
    } else {
        snprintf(out->error, sizeof out->error, "no NVIDIA GPU found");
    }
    shutdown();
    dlclose(h);
}
