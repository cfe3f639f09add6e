/* adopt: instances the fleet takes over at start that no boot of this process made
 * (internal to src/fleet, fleet_int.h).
 *
 * VAST_INSTANCE_ID: verified through the API. A row still active is simply resumed by its
 * thread; a failed or destroyed row is brought back (instances_resume), and an instance the
 * store does not know gets a new row (instances_insert_found) with its ledger from Vast's
 * start date (storage) and from its uptime (GPU, when running). It then goes to ssh_wait
 * when running with an SSH address, else loading; setup re-runs only what is missing. An
 * instance Vast.ai says is dead (vast_status.h) is not adopted. Unset, unparsable or without
 * an API key: nothing to do.
 */
#ifndef GS_FLEET_ADOPT_H
#define GS_FLEET_ADOPT_H

#include "fleet/fleet_int.h"

/* One try at VAST_INSTANCE_ID (supervisor thread): 1 done (adopted, already known, or
 * nothing to do), 0 try again later (the store or Vast.ai could not answer). */
int adopt_current_instance(fleet *f);

#endif
