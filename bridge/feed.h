/*
 * feed.h - the live link: LISTEN sse_bridge, fetch new rows in batches,
 * fan them out through the hub and append them to the replay cache.
 *
 * The feed knows nothing of streams; it reports upward through feed_ops,
 * which main.c wires to the stream layer.
 */
#ifndef BRIDGE_FEED_H
#define BRIDGE_FEED_H

#include <stdint.h>
#include <uv.h>

#include "db.h"
#include "event.h"

typedef struct feed_ops {
	/* The live cursor (ring_hi) moved or became valid: parked replays may go on. */
	void		(*advanced)(void);
	/* Events from..through were pruned before the feed read them. */
	void		(*pruned)(int64_t from, int64_t through);
	/* A subscription-change marker, before the rows after it are dispatched. */
	void		(*marker)(event *ev);
	/*
	 * The log went backwards or was replaced (another timeline): ids above
	 * fork may now hold other events.  The replay cache was dropped; the
	 * feed continues after fork.  fork_us: created_us of the row at fork
	 * (LOGPOS_NO_ROW: none).
	 */
	void		(*timeline)(int64_t fork, int64_t fork_us);
} feed_ops;

/* live: the link to LISTEN and fetch on (set up here; it must outlive feed_stop). */
void		feed_init(uv_loop_t *loop, db_link *live, const feed_ops *ops);
void		feed_start(void);
void		feed_stop(void);

/* Process a NOTIFY payload ("e <maxid>"; "s <sid>" is ignored; anything else fetches). */
void		feed_notify(const char *payload);

#endif
