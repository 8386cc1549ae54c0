/*
 * metrics.h - counters for GET /metrics (Prometheus text format).
 *
 * Ownership: metrics_render returns a malloc'ed string the caller frees.
 */
#ifndef BRIDGE_METRICS_H
#define BRIDGE_METRICS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "db.h"

/*
 * Why the bridge ended or closed a stream's connection (client_disconnect);
 * the reason label of sse_bridge_disconnects_total.
 */
typedef enum close_reason {
	CLOSE_OOM,					/* an allocation failed */
	CLOSE_SLOW,					/* over --client-queue */
	CLOSE_MEMORY,				/* shed over the hard memory limit */
	CLOSE_DATABASE,				/* a replay page or definition read failed */
	CLOSE_TIMELINE,				/* its position is gone from the log */
	CLOSE_RESUME,				/* cannot go on in place after a reset */
	CLOSE_DEFINITION,			/* a definition that cannot be applied */
	CLOSE_SUBSCRIPTION,			/* its subscription was closed or dropped */
	CLOSE_END_EVENT,			/* a close event on one of its channels */
	CLOSE_AUTH_EXPIRED,			/* the token it opened with expired */
	CLOSE_COUNT
} close_reason;

/* The label value of a reason ("out_of_memory", ...). */
const char *close_reason_name(close_reason r);

typedef struct metrics_counters {
	uint64_t	events_fetched;		/* rows read by live fetches */
	uint64_t	events_sent;		/* event frames queued to clients */
	uint64_t	run_sent;			/* of those live, queued in a batch's run */
	uint64_t	bytes_sent;			/* bytes written to sockets */
	uint64_t	replayed;			/* event frames sent during replays */
	uint64_t	replay_pages;		/* replay pages read from the database */
	uint64_t	slow_drops;			/* clients closed for a full queue */
	uint64_t	resets;				/* reset events sent */
	uint64_t	timelines;			/* timeline changes found by the live link */
	uint64_t	redefinitions;		/* subscription changes applied to streams */
	uint64_t	def_errors;			/* streams ended on a definition they cannot apply */
	uint64_t	connections;		/* accepted connections */
	uint64_t	rejected;			/* 503 over --max-clients */
	uint64_t	mem_refused;		/* 503 over the soft memory limit */
	uint64_t	mem_shed;			/* streams dropped over the hard memory limit */
	uint64_t	alloc_failures;		/* clients closed because an allocation failed */
	uint64_t	queue_peak;			/* largest queue of more than one frame, bytes */
	uint64_t	queue_over;			/* pushes leaving such a queue over --client-queue */
	uint64_t	notices;			/* NOTIFY payloads received */
	uint64_t	disconnects[CLOSE_COUNT];	/* client_disconnect, by reason */
	uint64_t	clients;			/* gauge: open connections (client.c) */
	uint64_t	streams;			/* gauge: streams replaying or live (stream.c) */
	uint64_t	lag_count;
	double		lag_sum;			/* seconds, commit to queued */
	uint64_t	lag_buckets[12];
} metrics_counters;

extern metrics_counters metrics;

/* The database links whose counters and state are shown (borrowed). */
void		metrics_init(const db_link *live, const db_link *work);

/* Everything /metrics shows, gathered before it is printed. */
typedef struct metrics_view {
	metrics_counters c;
	uint64_t	indexed;		/* streams in the fan-out index */
	uint64_t	filter_evals;
	uint64_t	db_reconnects;
	uint64_t	db_timeouts;
	uint64_t	prune_runs;
	uint64_t	prune_deleted;
	uint64_t	prune_failures;
	uint64_t	db_up;
	uint64_t	head_id;
	uint64_t	cache_events;
	uint64_t	mem_limit;
	uint64_t	mem_kind[8];
	uint64_t	injected;
	uint64_t	tokens_verified;	/* auth.c */
	uint64_t	token_cache_hits;
	uint64_t	token_refusals;
	uint64_t	standby;		/* the live link is on a hot standby (replica.c, work.c) */
	uint64_t	replay_polls;
	uint64_t	replay_moves;
	uint64_t	promotions;
	uint64_t	lag_held;
	uint64_t	lag_expired;
} metrics_view;

/*
 * A worker of --workers N shows the whole bridge: fill replaces the view of
 * this process with the sum over every process, and extra (optional) adds
 * series with a worker label.  Both are called from metrics_render.
 */
void		metrics_set_view(void (*fill)(metrics_view *v), void (*extra)(FILE *f));
/* This process's own view (what /metrics shows without metrics_set_view). */
void		metrics_own_view(metrics_view *v);

/* Record commit-to-send lag for one event (created_us = commit time). */
void		metrics_observe_lag(int64_t created_us, int64_t now_us);
char	   *metrics_render(size_t *len);

#endif
