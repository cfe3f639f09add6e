/* ssh_int: what ssh.c shares with tunnel.c (not part of the public API). */
#ifndef GS_SSH_INT_H
#define GS_SSH_INT_H

#include "ssh/ssh.h"

#include "ssh/ssh_dl.h"   /* libssh, called as gs_ssh.name(...) */

struct sshc {
    ssh_session s;
    sftp_session sftp;   /* opened on first upload, kept */
    char *where;         /* "user@host:port" for messages */
};

#endif
