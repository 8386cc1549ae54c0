/*
 * super.h - the supervisor of --workers N (N >= 2).
 *
 * The supervisor owns all database work: the one live link (LISTEN and the
 * live fetch), the pool of work links (--db-pool) for the workers' opens,
 * replay pages and catch-up reads, touch/expire and retention.  It writes
 * every row it fetches once into the shared ring (shr.h) and wakes the
 * workers; it serves no client.  It starts N workers (this program again,
 * told by SUPER_WORKER_ENV which slot it is and which descriptors it got),
 * starts a new one when one dies, and on SIGTERM asks every worker to drain
 * and exits 0 once they all have.
 */
#ifndef BRIDGE_SUPER_H
#define BRIDGE_SUPER_H

/* "slot,supervisor-pid": set only in a worker's environment. */
#define SUPER_WORKER_ENV "SSE_BRIDGE_INTERNAL_WORKER"

/* A worker's inherited descriptors. */
#define SUPER_FD_LISTEN 3
#define SUPER_FD_IPC 4
#define SUPER_FD_RING 5

#include <stdbool.h>
#include <stdint.h>

/* A worker's deadline for a request: one answered now (no_retry), or one that may wait. */
uint64_t	super_deadline_ms(bool now);

/* Run the supervisor (cfg loaded, cfg.workers >= 2); the exit status. */
int			super_main(int argc, char **argv);

#endif
