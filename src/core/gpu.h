/* gpu: is there a local NVIDIA GPU? Asks NVML, loaded at run time with dlopen
 * (libnvidia-ml.so.1), so the program neither links nor needs it: an absent or failing
 * library simply means no GPU. GS_NVML_LIB overrides the library path (tests point it at a
 * missing file or a fake). Thread-safe; the probe is cheap enough to call at start-up. */
#ifndef GS_GPU_H
#define GS_GPU_H

typedef struct gpu_info {
    int cuda_available;   /* NVML answered and reported at least one device */
    int count;
    char name[96];        /* first device's name, "" when none */
    char error[128];      /* why not, when cuda_available is 0 */
} gpu_info;

void gpu_probe(gpu_info *out);

#endif
