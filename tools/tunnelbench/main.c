/* tunnelbench: drive one src/ssh tunnel for bench/tunnel.sh.
 *
 *   tunnelbench HOST SSH_PORT KEY KNOWN_HOSTS REMOTE_PORT [HEALTH_PATH]
 *
 * Prints "port N" once the tunnel is up, then one line per state change,
 * "state NAME WALLTIME reconnects=N", and runs until SIGTERM or SIGINT. */
#define _GNU_SOURCE
#include "core/log.h"
#include "core/util.h"
#include "ssh/tunnel.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void on_change(void *ud, const tunnel_status *st)
{
    (void)ud;
    printf("state %s %.6f reconnects=%d\n", st->state_name, now_wall(), st->reconnects);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST SSH_PORT KEY KNOWN_HOSTS REMOTE_PORT [HEALTH_PATH]\n", argv[0]);
        return 2;
    }
    log_set_level(LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    sshc_target t = {.host = argv[1], .port = atoi(argv[2]), .user = "root", .key_path = argv[3],
                     .known_hosts = argv[4], .connect_timeout_s = 5};
    char err[512] = "";
    tunnel *tn = tunnel_start(&t, atoi(argv[5]), argc > 6 ? argv[6] : NULL, 0.5, err, sizeof err);
    if (!tn) {
        fprintf(stderr, "tunnelbench: %s\n", err);
        return 1;
    }
    tunnel_on_change(tn, on_change, NULL);
    printf("port %d\n", tunnel_local_port(tn));
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sig = 0;
    sigwait(&set, &sig);
    tunnel_stop(tn);
    return 0;
}
