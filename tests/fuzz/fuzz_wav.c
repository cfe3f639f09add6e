/* fuzz_wav: the worker's WAV header parser (wav_locate in worker/worker.c, reached by
 * including the module, as the unit tests may). The input is the uploaded file.
 * Property: a located data chunk lies inside the file and holds at least one sample. */
#include "../../src/worker/worker.c"

#include <stdint.h>
#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0) fd = memfd_create("fuzz-wav", MFD_CLOEXEC);
    if (fd < 0) abort();
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    size_t off = 0, n = 0;
    char err[256] = "";
    if (wav_locate(fd, &off, &n, err, sizeof err) == 0) {
        if (n == 0 || off > size || n > (size - off) / 2) {
            fprintf(stderr, "data chunk outside the file: off %zu, %zu samples, size %zu\n",
                    off, n, size);
            abort();
        }
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
