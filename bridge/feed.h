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
	/*
	 * Optional (a supervisor's): ev is about to enter the replay cache,
	 * after the dispatch (borrowed for the call).
	 */
	void		(*pushed)(const event *ev);
} feed_ops;

/*
 * A worker's feed (--workers 2 or more) has no link of its own: it reads
 * the supervisor's shared ring and, when it is not exactly at a record's
 * position (it started, fell behind, or the record is a hole), reads the
 * log by position through the supervisor with the same fetch as the live
 * link.  submit takes the job (false: not taken, the supervisor is gone);
 * ready says whether requests can be sent.
 */
typedef struct feed_remote {
	bool		(*ready)(void);
	bool		(*submit)(db_job *job);
} feed_remote;

/* live: the link to LISTEN and fetch on (set up here; it must outlive feed_stop). */
void		feed_init(uv_loop_t *loop, db_link *live, const feed_ops *ops);
/* A worker's feed on the shared ring (struct shr, shr.h). */
struct shr;
void		feed_init_remote(uv_loop_t *loop, struct shr *ring, const feed_remote *remote,
							 const feed_ops *ops);
/* The ring has new records (a wake from the supervisor). */
void		feed_drain(void);
/* Times a worker fell behind the ring and read the log instead. */
extern uint64_t feed_ring_behind;
void		feed_start(void);
void		feed_stop(void);

/* Process a NOTIFY payload ("e <maxid>"; "s <sid>" is ignored; anything else fetches). */
void		feed_notify(const char *payload);

#endif
