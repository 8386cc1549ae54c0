/*
 * whole.h - /metrics of the whole bridge from any worker (--workers N).
 *
 * Every process publishes what its own /metrics would show into its slot
 * of the shared ring's header (shr.h); a worker's /metrics adds them up:
 * counters and memory are sums over the processes, the database figures
 * and the head are the supervisor's, the largest queue is the largest of
 * any worker.  Per-worker figures follow with a worker label.  A worker
 * that was started again begins its counters at 0.
 */
#ifndef BRIDGE_WHOLE_H
#define BRIDGE_WHOLE_H

#include <stdio.h>

#include "metrics.h"
#include "shr.h"

/* ring: the shared ring; self: this worker's slot (read live, not from the slot). */
void		whole_init(shr *ring, unsigned self);
void		whole_fill(metrics_view *v);
void		whole_extra(FILE *f);

/*
 * Connections the other workers held at their last loop turn: --max-clients
 * is the whole bridge's, whichever worker the kernel hands a connection to.
 */
uint64_t	whole_clients_elsewhere(void);

#endif
