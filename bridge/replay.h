/*
 * replay.h - from "stream accepted" to "live": the opening decision, replay
 * from the in-memory cache or from the log in pages, and the hand-over to
 * the hub with `event: ready`.
 *
 * Ownership: replay_open takes ownership of info's strings (it frees them).
 */
#ifndef BRIDGE_REPLAY_H
#define BRIDGE_REPLAY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"

typedef struct open_info {
	bool		found;			/* subscription row exists (ad hoc: true) */
	bool		expired;
	bool		closed;			/* closed_at is set */
	int64_t		sid;
	char	   *channels_json;	/* subscription patterns as a JSON array */
	char	   *filter_json;
	int64_t		start_id;
	int64_t		head;
	int64_t		pruned;
	int64_t		close_id;		/* first close event on a literal pattern, -1 none */
} open_info;

typedef enum replay_decision {
	REPLAY_STREAM,				/* 200 and stream from *cursor */
	REPLAY_GONE,				/* 204: closed at or before the start point */
	REPLAY_NOT_FOUND			/* 404 */
} replay_decision;

/* Pure decision: where a stream starts, or why it does not. */
replay_decision replay_decide(const open_info *info, bool is_sub, int64_t last_event_id,
							  int64_t *cursor);

/* The database answered the open lookup for client c (OPENING). */
void		replay_open(client *c, open_info *info);

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

/* Schedule a REPLAYING client to continue: cache, next page, or ready. */
void		replay_step(client *c);

/*
 * One turn of replay work (after the turn's live output has been flushed;
 * flush again afterwards).  True when clients are still waiting to run, so
 * the loop must not block in poll.
 */
bool		replay_run(void);

/* A page of the log arrived for c; live_at_send = ring_hi() at submit time. */
void		replay_page(client *c, PGresult *res, int64_t live_at_send);

/* The live cursor advanced: step every parked client. */
void		replay_unpark_all(void);
void		replay_unpark(client *c);

/* Take c off the parked list or the run queue (it is closing). */
void		replay_forget(client *c);

/* Replace a stream's patterns and filter from JSON; false if invalid. */
bool		replay_set_spec(stream *st, const char *channels_json, const char *filter_json);

/* SSE frame "event: reset" saying ids from..through were lost. */
frame	   *replay_reset_frame(int64_t from, int64_t through);

#endif
