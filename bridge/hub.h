/*
 * hub.h - live subscriptions indexed for fan-out.
 *
 * Index: a literal pattern maps straight to its bucket; wildcard patterns
 * are grouped by distinct pattern text and tested once per event per
 * distinct pattern.  Inside a bucket, subscriptions without a filter sit in
 * one list; a filter with a top-level scalar member (k: v) is indexed under
 * (k, v), so an event only visits subscriptions whose key/value it carries;
 * the rest are scanned.  Filters are compiled (sse_json.h) and each event's
 * payload is parsed once into an sse_doc; each candidate is confirmed with
 * sse_filter_eval (linear in the filter; the payload's arrays are hashed
 * once per event), so the index only narrows, except for a filter that is
 * exactly its indexed pair ({k: v} alone; scalars are canonical, so equal
 * encodings mean equal under jsonb): there the lookup decides.  A payload
 * that is not an object, or could not be parsed (beyond a limit), reaches
 * only subscriptions without a filter.  Delivery cost grows with
 * matches, not with subscriptions.  With the index off (--filter-index off)
 * every filtered subscription is scanned, for measuring the baseline.
 *
 * Ownership: a hub_sub is owned by its caller (a client's stream) and must
 * stay valid, with unchanged patterns and filter, between hub_add and
 * hub_remove.  The deliver callback must not call hub_add or hub_remove
 * (defer them); it receives a borrowed event.
 */
#ifndef BRIDGE_HUB_H
#define BRIDGE_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "frame.h"
#include "sse_json.h"

typedef struct hub_entry hub_entry;

/* What hub_matches needs to know about one pattern without rescanning it. */
typedef struct hub_pat {
	uint32_t	len;
	bool		literal;		/* no wildcard: matches only the equal channel */
} hub_pat;

typedef struct hub_sub {
	char	  **patterns;		/* borrowed from the owner */
	size_t		npatterns;
	sse_filter *filter;			/* borrowed, compiled; NULL = match everything */
	hub_pat    *pinfo;			/* owned; one per pattern, or NULL (not prepared) */
	int64_t		seen;			/* last event delivered (dedupes patterns) */
	hub_entry  *entries;		/* one per pattern while added */
} hub_sub;

/*
 * Called once per (subscription, matching event), in id order.  ends is true
 * when the event is a close on one of the subscription's literal patterns.
 */
typedef void (*hub_deliver_fn)(hub_sub *s, event *ev, bool ends);

/*
 * Batches.  Between hub_batch_begin and hub_batch_end, an event for a
 * "solo" subscription is not delivered at once.  A solo subscription has
 * one pattern and no filter (it gets exactly its bucket's events) or a
 * filter that is exactly one indexed key/value pair (exactly its key
 * list's events); its group (the bucket's or the key list's) remembers
 * the event, and hub_flush hands each member the group's whole run in one
 * call.  The run's frames
 * are joined into pieces of at most piece_max bytes (one frame larger than
 * that is a piece alone) when two or more subscriptions share them, so a
 * client queues one frame per piece instead of one per event.  Events are
 * still delivered in id order to every subscription: a solo subscription
 * gets events from its one group only, and a close event (which may end
 * streams) first flushes what is pending.  The caller flushes before
 * anything else that sends to live streams (markers, resets), and
 * hub_add / hub_remove flush first.
 */
typedef struct hub_item {
	frame	   *f;				/* the event's frame (a reference the hub holds) */
	int64_t		id;
	int64_t		created_us;
} hub_item;

typedef struct hub_run {
	const hub_item *items;		/* in id order */
	size_t		n;
	frame	   *const *pieces;	/* piece p joins the frames of items [end[p-1], end[p]) */
	const size_t *end;
	size_t		npieces;
} hub_run;

/*
 * Called once per solo subscription that a flushed run has something for:
 * items [from, n) are new to it (s->seen is already the last id).
 */
typedef void (*hub_deliver_run_fn)(hub_sub *s, const hub_run *run, size_t from);

/*
 * Describe s's patterns in s->pinfo (call after setting them; they must have
 * passed sse_pattern_check) so hub_matches decides literal patterns with a
 * length compare and one memcmp.  Best effort: on OOM pinfo stays NULL and
 * hub_matches takes the general path.  hub_sub_unprepare frees pinfo; call
 * it before changing or freeing the patterns.
 */
void		hub_sub_prepare(hub_sub *s);
void		hub_sub_unprepare(hub_sub *s);

void		hub_init(hub_deliver_fn deliver);
/* Deliver solo subscriptions' events in runs inside batches (NULL: never). */
void		hub_set_run(hub_deliver_run_fn deliver_run);
void		hub_batch_begin(size_t piece_max);
void		hub_flush(void);
void		hub_batch_end(void);

/*
 * Turn the key/value index off (every filter is then evaluated for every
 * event) or on (the default after hub_init).  Only while the hub is empty.
 */
void		hub_set_index(bool use_index);
void		hub_shutdown(void);
bool		hub_add(hub_sub *s);
void		hub_remove(hub_sub *s);
size_t		hub_count(void);

/*
 * Deliver ev to every added subscription that matches it.  False when a
 * filter needed the payload and parsing it ran out of memory: then nothing
 * was delivered.
 */
bool		hub_dispatch(event *ev);

/* The same decision for one subscription, without the index (replays). */
bool		hub_matches(const hub_sub *s, event *ev, bool *ends);

/* Counters for /metrics: filter evaluations and deliveries. */
extern uint64_t hub_filter_evals;

#endif
