/* fault: named crash points for tests (TEST-ONLY; never set GS_FAULT in production).
 *
 * GS_FAULT=<name>[,<name>...] in the environment, read once (at the first fault_point or
 * fault_init), arms those points: the process logs "fault: <name>: exiting (GS_FAULT)" and
 * ends at once with _exit(FAULT_EXIT_CODE) when it reaches one, as a kill -9 at that spot
 * would (no atexit handlers, no flush of anything but that line). Without GS_FAULT every
 * fault_point is a cheap no-op.
 *
 * Points: boot_after_insert, boot_after_create (fleet/vastctl.c, see vastctl.h);
 * job_before_stitch (jobs/dispatch.c: every chunk stored done, the job not yet).
 * Failures (fault_armed only, no exit): diarize_fail (jobs/speakers.c: the diarizer fails).
 *
 * Thread-safe: the environment is read once under pthread_once.
 */
#ifndef GS_FAULT_H
#define GS_FAULT_H

#include <stdbool.h>

#define FAULT_EXIT_CODE 70

/* Read GS_FAULT now (main calls it before starting threads; optional). */
void fault_init(void);
/* True when name is armed. */
bool fault_armed(const char *name);
/* End the process here when name is armed. */
void fault_point(const char *name);

#endif
