/* vast_status: what an instance's status on Vast.ai means for provisioning, from the fields
 * the API reports (actual_status, intended_status, status_msg). Pure functions: no state, no
 * I/O, thread-safe.
 *
 *   failed  - it will never reach running: actual_status exited, unknown, offline, stopped or
 *             frozen; intended_status stopped (outbid or stopped by the user); or, while not
 *             running, a status_msg naming an error (case-insensitive "oci runtime", "error",
 *             "failed", "unauthorized", "manifest unknown", "pull access denied", "denied")
 *   running - actual_status running (and not failed)
 *   waiting - anything else: "" (being created), created, loading, ... with no error message
 *
 * The fleet fails an instance whose status is failed (with the reason written here) and
 * leaves it rented: nothing here destroys anything.
 */
#ifndef GS_VAST_STATUS_H
#define GS_VAST_STATUS_H

#include "vast/vast.h"

#include <stddef.h>

typedef enum vast_status_class {
    VAST_STATUS_WAITING,
    VAST_STATUS_RUNNING,
    VAST_STATUS_FAILED,
} vast_status_class;

/* The class of vi's status. For VAST_STATUS_FAILED, why (whylen > 0) gets a user-facing
 * reason naming the instance ("Vast.ai reports instance N exited: ...", "Vast.ai stopped
 * instance N (outbid or stopped)...", "instance N failed to start: <status_msg>"); otherwise
 * why is left as it is. */
vast_status_class vast_status_classify(const vast_instance *vi, char *why, size_t whylen);

/* "waiting", "running" or "failed". */
const char *vast_status_name(vast_status_class c);

#endif
