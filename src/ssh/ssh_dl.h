/* ssh_dl: the libssh functions ssh.c and tunnel.c call, through one table, filled by dlopen
 * on first use.
 *
 * libssh maps OpenSSL's libcrypto (3.5 MB of an idle server's RSS, most of what it maps), and
 * a server with no instance never opens a session. ssh.c and tunnel.c call libssh only as
 * gs_ssh.name(...), and only after ssh_dl_load() succeeded: sshc_connect, the key functions
 * that need libssh and tunnel_start load it. Only the controller uses libssh (the worker
 * never does), so there is no linked variant. The soname is the one libssh-dev's .so link
 * points at (GS_SONAME_SSH, from the Makefile). GS_SSH_SONAME_TEST (tests only) replaces it.
 */
#ifndef GS_SSH_DL_H
#define GS_SSH_DL_H

#include <stddef.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>   /* ssh_send_keepalive */
#include <libssh/sftp.h>

/* every libssh function gpuscribe calls (a missing entry fails the link: libssh is not linked) */
#define GS_SSH_FUNCS(X)                                                                     \
    X(ssh_new) X(ssh_free) X(ssh_options_set) X(ssh_connect) X(ssh_disconnect)              \
    X(ssh_is_connected) X(ssh_get_error) X(ssh_get_fd) X(ssh_get_poll_flags)               \
    X(ssh_set_blocking) X(ssh_set_counters) X(ssh_send_keepalive) X(ssh_userauth_publickey) \
    X(ssh_get_server_publickey) X(ssh_get_publickey_hash) X(ssh_get_fingerprint_hash)      \
    X(ssh_clean_pubkey_hash) X(ssh_string_free_char)                                       \
    X(ssh_key_free) X(ssh_key_type) X(ssh_key_type_to_char) X(ssh_pki_generate)            \
    X(ssh_pki_import_privkey_file) X(ssh_pki_export_privkey_base64)                        \
    X(ssh_pki_export_pubkey_base64)                                                         \
    X(ssh_channel_new) X(ssh_channel_free) X(ssh_channel_close) X(ssh_channel_is_open)      \
    X(ssh_channel_open_session) X(ssh_channel_open_forward) X(ssh_channel_request_exec)    \
    X(ssh_channel_request_send_signal) X(ssh_channel_send_eof) X(ssh_channel_write)        \
    X(ssh_channel_read_nonblocking) X(ssh_channel_window_size)                             \
    X(ssh_set_channel_callbacks) X(ssh_remove_channel_callbacks)                           \
    X(ssh_event_new) X(ssh_event_free) X(ssh_event_add_session) X(ssh_event_remove_session) \
    X(ssh_event_dopoll)                                                                     \
    X(sftp_new) X(sftp_init) X(sftp_free) X(sftp_get_error) X(sftp_open) X(sftp_write)      \
    X(sftp_close) X(sftp_chmod) X(sftp_rename) X(sftp_unlink)

struct gs_ssh {
#define GS_SSH_MEMBER(f) __typeof__(f) *f;
    GS_SSH_FUNCS(GS_SSH_MEMBER)
#undef GS_SSH_MEMBER
};

/* Filled by a successful ssh_dl_load; read only after one. */
extern struct gs_ssh gs_ssh;

/* 0 when libssh is loaded (now or by an earlier call); -1 with e.g. "libssh's libssh.so.4 is
 * not installed: apt install libssh-4" in err (every later call gives the same answer).
 * Thread-safe. */
int ssh_dl_load(char *err, size_t errlen);

/* How many times the loading itself ran (0 or 1). */
int ssh_dl_load_count(void);

#endif
