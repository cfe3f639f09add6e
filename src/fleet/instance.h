/* instance: one instance's state machine, run by its own thread (inst_drive), from the
 * store row's state:
 *
 *   requested/creating/loading  wait for Vast.ai to run it (LOADING_TIMEOUT_S), attach our
 *                               key; running with an SSH address -> ssh_wait (30%)
 *   ssh_wait                    connect within SSH_WAIT_MINUTES -> installing (60%)
 *   installing                  the remote setup (remote_setup.h) -> starting_worker (95%)
 *   starting_worker             start the worker, open the supervised tunnel, ask /health
 *                               -> ready (100%)
 *   ready                       watch the tunnel and Vast.ai; a recheck (tunnel down for
 *                               READY_RECHECK_S, or the dispatcher's report) -> starting_worker
 *
 * and failed (inst_fail: the instance stays rented, the error says how to destroy it),
 * destroyed (Vast.ai no longer has it). Every step is idempotent, so a thread started
 * after a controller restart resumes where the row says. Each change goes to the store
 * first (instances_set_state; a row being destroyed stops the thread), then to the inst's
 * snapshot under f->lock, then out as `instance.state`.
 *
 * Internal to src/fleet (fleet_int.h). Functions taking an inst run on its thread.
 */
#ifndef GS_FLEET_INSTANCE_H
#define GS_FLEET_INSTANCE_H

#include "fleet/fleet_int.h"
#include "vast/vast.h"

#include <stdbool.h>

/* The thread body: drives in until its row is final, it is stopped or the fleet stops;
 * then sets in->finished (under f->lock, with a broadcast). */
void *inst_drive(void *arg);

/* failed, destroying, destroyed or orphan: no thread drives such a row. */
bool inst_final_state(const char *state);

/* True once in is stopped or the fleet is stopping (takes f->lock). */
bool inst_should_stop(inst *in);
/* Wait up to s seconds; returns early on stop or recheck. */
void inst_wait(inst *in, double s);

/* Move the row to state (unless it is being destroyed: then the thread stops), update the
 * snapshot and publish `instance.state` (persisted when the state changed). error NULL
 * clears it. A call that changes nothing is a no-op. */
void inst_set_state(inst *in, const char *state, int pct, const char *stage, const char *error);
/* State failed with the reason and how to destroy the (still rented) instance; logged. */
void inst_fail(inst *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The setup log: a line kept in the ring (LOG_KEEP lines), and the ring written to the
 * row's setup_log. */
void inst_log_line(inst *in, const char *line);
void inst_log_persist(inst *in);

/* Ask Vast.ai about the instance: 1 fine (vi_out filled when given; the caller clears it),
 * 0 gone or failed (handled: the row is destroyed or failed), -1 cannot tell now. */
int inst_vast_check(inst *in, vast_instance *vi_out);

/* A session (in->ssh) for install/start steps: 0 ok; -1 handled (state changed or
 * stopping). */
int inst_ensure_ssh(inst *in, row *r);
void inst_ssh_drop(inst *in);

#endif
