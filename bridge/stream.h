/*
 * stream.h - the one owner of a stream's life cycle: open, replay, live,
 * definition change, end.
 *
 * States (stream_set_state in stream.c is the only place that changes them;
 * legal moves are asserted):
 *   OPENING    the open lookup is on the work link
 *   REPLAYING  head sent; catching up from the replay cache or the log
 *   LIVE       in the hub, receiving events as the feed fetches them
 *   ENDED      left the hub and the replay queues; about to be freed
 *   OPENING -> REPLAYING | ENDED;  REPLAYING -> LIVE | ENDED;
 *   LIVE -> ENDED | REPLAYING (a subscription stream after a reset: its
 *   markers up to the new cursor are gone or of a dead timeline, so it
 *   reads its definition there first).
 * A definition change (a `$sub` marker of the stream's subscription, met by
 * the feed in LIVE or by the replay in REPLAYING) keeps the state; a marker
 * with state closed or dropped, or one the bridge cannot apply, ends it.
 *
 * Ownership: a stream belongs to its client (c->st) from ops.open to
 * ops.release; it owns its patterns, filter and subscription id, and at most
 * one database job (st->job; stream_submit is the only place that sets it,
 * and the release cancels it).
 *
 * The entry points below are wired by main.c into client_ops, feed_ops,
 * work_ops and the hub; nothing below this module calls into it directly.
 */
#ifndef BRIDGE_STREAM_H
#define BRIDGE_STREAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "client.h"
#include "db.h"
#include "hub.h"
#include "logread.h"
#include "route.h"

typedef enum stream_state {
	SS_OPENING,
	SS_REPLAYING,
	SS_LIVE,
	SS_ENDED,
	SS_COUNT
} stream_state;

/* Replay scheduling: a stream is in at most one of the two lists. */
enum stream_flags {
	SF_PARKED = 1 << 0,			/* waiting for the live cursor to advance */
	SF_QUEUED = 1 << 1			/* in the replay run queue */
};

typedef struct stream {
	hub_sub		sub;			/* patterns and filter, owned here; first member */
	client	   *owner;
	uint8_t		state;			/* stream_state */
	uint8_t		flags;			/* stream_flags */
	int64_t		sid;			/* subscription's internal id; 0 = ad hoc */
	char	   *sub_id;			/* subscription uuid; NULL = ad hoc */
	int64_t		last_event_id;	/* from the request, -1 = none */
	uint32_t	last_event_fp;	/* its fingerprint (logpos.h) */
	bool		last_event_has_fp;	/* false: a plain id, not checked */
	int64_t		cursor;			/* every matching event <= cursor was queued */
	int64_t		cursor_us;		/* created_us of the row at cursor (logpos.h) */
	size_t		need;			/* REPLAYING: queue room the next frame needs */
	db_job	   *job;			/* the one pending database job, or NULL */
	uint64_t	job_timeline;	/* ring_timeline() when the job was sent */
	int64_t		forked_at;		/* >= 0: resumed from this position of another
								 * timeline; the open is sent again from the start */
	bool		in_group;		/* in its subscription's group (bysid) */
	bool		redef;			/* REPLAYING: reads its definition at cursor
								 * before anything else (after a reset) */
	TAILQ_ENTRY(stream) link;	/* every stream */
	TAILQ_ENTRY(stream) bysid;	/* the streams of one subscription */
	TAILQ_ENTRY(stream) sched;	/* parked list or run queue (flags say which) */
} stream;

/* ---- wired by main.c ---- */

/* client_ops.open: start a stream for rr on c (OPENING); takes rr's patterns. */
void		stream_open(client *c, route_result *rr);
/* client_ops.drained: a write finished; a paused replay may go on. */
void		stream_drained(client *c);
/* client_ops.release: c stops streaming; the stream ends and is freed. */
void		stream_release(client *c);
/* hub callback: a live event for a live stream. */
void		stream_deliver(hub_sub *s, event *ev, bool ends);
/* hub callback: a run of live events (items from..n) for a live stream. */
void		stream_deliver_run(hub_sub *s, const hub_run *run, size_t from);
/* feed_ops */
void		stream_advanced(void);
void		stream_pruned(int64_t from, int64_t through);
void		stream_marker(event *ev);
void		stream_timeline(int64_t fork, int64_t fork_us);
/* work_ops.touch_ids */
char	  **stream_touch_ids(size_t *n);

/*
 * Replays share each loop turn: a turn serves the run queue round-robin,
 * each visit queueing about REPLAY_SLICE_BYTES (or examining
 * REPLAY_SLICE_EVENTS cached events), until REPLAY_TURN_BYTES or
 * REPLAY_TURN_EVENTS are used up (the last slice may go over by a slice).
 */
#define REPLAY_SLICE_BYTES (64u << 10)
#define REPLAY_SLICE_EVENTS 4096u
#define REPLAY_TURN_BYTES (1u << 20)
#define REPLAY_TURN_EVENTS 65536u

/*
 * One turn of replay work (after the turn's live output has been flushed;
 * flush again afterwards).  True when streams are still waiting to run, so
 * the loop must not block in poll.
 */
bool		stream_run(void);

/*
 * True when replays wait in the run queue (the loop must not block in
 * poll): a write that finished at a flush may have resumed one.
 */
bool		stream_waiting(void);

/*
 * Room kept in a replaying client's queue for the control frames (ready,
 * reset) that may follow the last event queued.
 */
#define REPLAY_RESERVE 256u

/* Resume replays that waited for memory, once under the hard limit (mem.h). */
void		stream_mem_check(void);

/* Streams open now (any state but ENDED). */
size_t		stream_count(void);

/* ---- the pieces below are public for the unit tests ---- */

typedef enum stream_decision {
	STREAM_START,				/* 200 and stream from *cursor */
	STREAM_GONE,				/* 204: closed at or before the start point */
	STREAM_NOT_FOUND			/* 404: unknown, expired, or a tombstone without a position */
} stream_decision;

/*
 * Pure check of a resume point against the open answer: true when the
 * client's position belongs to another timeline (docs/design.md,
 * "Timelines"): it carries a fingerprint, lies above pruned_through, and
 * the log has no row there or one with another fingerprint.
 */
bool		stream_resume_forked(const open_info *info, int64_t id, uint32_t fp, bool has_fp);

/* Pure decision: where a stream starts, or why it does not. */
stream_decision stream_decide(const open_info *info, bool is_sub, int64_t last_event_id,
							  int64_t *cursor);

/*
 * A new OPENING stream on c (c->st); takes patterns and filter, copies
 * sub_id.  NULL on OOM (nothing taken).
 */
stream	   *stream_new(client *c, char **patterns, size_t npatterns, sse_filter *filter,
					   const char *sub_id, int64_t last_event_id);

/* OPENING -> REPLAYING: the head, a reset if pruned > cursor, then replay. */
void		stream_begin(stream *st, int64_t cursor, int64_t pruned);

/* Schedule a REPLAYING stream to continue: cache, next page, or ready. */
void		stream_step(stream *st);

#endif
