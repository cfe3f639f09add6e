/* keys: the SSH keys the fleet relies on (internal to src/fleet, fleet_int.h).
 *
 * - The app's key pair (sshc_app_key in DATA_DIR/ssh) is registered once as an account key
 *   on Vast.ai; its id is kept in DATA_DIR/ssh/vast_key_id as "<API base URL> <id>" (a key
 *   registered with another URL is registered again). Failing that, it is still attached to
 *   each instance.
 * - Each instance gets the key attached through the API (its row's ssh_key_id records it);
 *   attaching again is harmless, so it is retried while SSH refuses our key.
 * - Host keys are pinned under the alias "vast-<id>" in DATA_DIR/ssh/known_hosts: the first
 *   key an instance presents is kept, a different one later is refused (the instance fails),
 *   and the pin is forgotten when the instance is destroyed.
 */
#ifndef GS_FLEET_KEYS_H
#define GS_FLEET_KEYS_H

#include "fleet/fleet_int.h"
#include "ssh/ssh.h"

#include <stddef.h>

/* Register the app's key on the account unless that is done (f->account_key_id > 0) or
 * there is no API key. Supervisor thread only; network: one call at most. */
void keys_register_account(fleet *f);
/* Attach the app's key to in's instance; on success the row records it and r->key_attached
 * is set (a failure is logged at debug level: the next step tries again). */
void keys_attach(inst *in, row *r);
/* The SSH target of in's instance at r's address, pinned under "vast-<id>" (alias holds
 * that name; t points into r, alias and the fleet). */
void keys_target(inst *in, const row *r, sshc_target *t, char *alias, size_t alen);
/* Forget vid's pinned host key (logged when that fails). */
void keys_forget_host(fleet *f, const char *vid);

#endif
