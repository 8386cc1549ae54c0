/*
 * prune.h - retention on a timer: sse_prune() on the work link every
 * --prune-interval seconds, when the bridge's role may execute it.
 */
#ifndef BRIDGE_PRUNE_H
#define BRIDGE_PRUNE_H

#include <stdint.h>
#include <uv.h>

#include "db.h"

typedef struct prune_counters {
	uint64_t	runs;			/* successful sse_prune calls */
	uint64_t	deleted;		/* events they deleted */
	uint64_t	failures;		/* calls that returned an error */
} prune_counters;

extern prune_counters prune_stats;

/* interval_ms 0: never prune.  The link must outlive prune_stop. */
void		prune_init(uv_loop_t *loop, db_link *work, uint64_t interval_ms);
void		prune_start(void);
void		prune_stop(void);

#endif
