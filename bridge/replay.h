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

/* Continue a REPLAYING client: cache, next page, or ready. */
void		replay_step(client *c);

/* A page of the log arrived for c; live_at_send = ring_hi() at submit time. */
void		replay_page(client *c, PGresult *res, int64_t live_at_send);

/* The live cursor advanced: step every parked client. */
void		replay_unpark_all(void);
void		replay_unpark(client *c);

/* Replace a stream's patterns and filter from JSON; false if invalid. */
bool		replay_set_spec(stream *st, const char *channels_json, const char *filter_json);

/* SSE frame "event: reset" saying ids from..through were lost. */
frame	   *replay_reset_frame(int64_t from, int64_t through);

#endif
