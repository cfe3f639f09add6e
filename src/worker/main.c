/* gpuscribe-worker: the lean worker binary that runs on GPU instances (`make worker`).
 *
 * It holds only what a worker needs: core (config, log, util, gpu), the HTTP server, the
 * worker API (worker.h), the engines that were found at build time, the transcript model and
 * the Vast client for the dead-man switch. It links libmicrohttpd, jansson, libcurl and the
 * engine libraries, never FFmpeg, libssh or SQLite, so it builds on the GPU image itself
 * (remote/setup.sh builds it there from the controller's source bundle) against that image's
 * library versions.
 *
 *   gpuscribe-worker [--listen 127.0.0.1:PORT] [--engine E] [--model M] ...  (as `gpuscribe worker`)
 *   gpuscribe-worker version [--features]    "gpuscribe-worker VERSION" / the engines built in
 */
#include "cli/cli.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

#ifndef GS_VERSION
#define GS_VERSION "dev"
#endif

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version"))) {
        if (argc > 2 && !strcmp(argv[2], "--features")) { /* remote/setup.sh asks */
            char f[128];
            printf("%s\n", engine_features(f, sizeof f));
            return 0;
        }
        printf("gpuscribe-worker %s\n", GS_VERSION);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "worker")) { /* `gpuscribe-worker worker ...` too */
        argc--;
        argv++;
    }
    return cli_worker(argc, argv);
}
