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

typedef struct feed_ops {
	/* The live cursor (ring_hi) moved or became valid: parked replays may go on. */
	void		(*advanced)(void);
	/* Events from..through were pruned before the feed read them. */
	void		(*pruned)(int64_t from, int64_t through);
	/* Subscription sid changed (a NOTIFY "s <sid>"). */
	void		(*sub_changed)(int64_t sid);
	/* The link LISTENs again: notices sent while it was down are lost. */
	void		(*relistened)(void);
} feed_ops;

void		feed_init(const feed_ops *ops);
void		feed_start(void);
void		feed_stop(void);

/* Process a NOTIFY payload ("e <maxid>", "s <sid>", anything else). */
void		feed_notify(const char *payload);

#endif
