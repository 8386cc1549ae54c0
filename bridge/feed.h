/*
 * feed.h - the live link: LISTEN sse_bridge, fetch new rows in batches,
 * append them to the replay cache and fan them out through the hub.
 */
#ifndef BRIDGE_FEED_H
#define BRIDGE_FEED_H

void		feed_init(void);
void		feed_start(void);
void		feed_stop(void);

/* Process a NOTIFY payload ("e <maxid>", "s <sid>", anything else). */
void		feed_notify(const char *payload);

#endif
