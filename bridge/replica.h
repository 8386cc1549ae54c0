/*
 * replica.h - the live link on a hot standby: NOTIFY does not reach a
 * standby, so the bridge watches the server's replay position instead and
 * asks the feed to fetch when it moves; when the server is promoted, the
 * link LISTENs like a link on a primary.
 *
 * The watcher knows nothing of the feed: it reports through replica_ops,
 * which feed.c (its owner) sets.
 */
#ifndef BRIDGE_REPLICA_H
#define BRIDGE_REPLICA_H

#include <stdint.h>
#include <uv.h>

#include "db.h"

typedef struct replica_ops {
	void		(*moved)(void);		/* the replay position moved: fetch */
	void		(*promoted)(void);	/* the server left recovery and the link LISTENs */
} replica_ops;

typedef struct replica_counters {
	uint64_t	polls;			/* replay-position queries answered */
	uint64_t	moves;			/* ... that found the position moved */
	uint64_t	promotions;		/* the server was seen leaving recovery */
} replica_counters;

extern replica_counters replica_stats;

/* live: the feed's link (its standby flag is set by the setup, logread.c). */
void		replica_init(uv_loop_t *loop, db_link *live, const replica_ops *ops);
/* Poll every every_ms while the link is up on a standby. */
void		replica_start(uint64_t every_ms);
void		replica_stop(void);

#endif
