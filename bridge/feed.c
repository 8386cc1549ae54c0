/*
 * feed.c - live fetches on the LISTENing link.
 *
 * A notification (or the backstop poll) asks for a fetch; while one is in
 * flight further requests only set `again`, so notifications that arrive
 * during a fetch coalesce into the next one.  A full batch fetches again at
 * once.  The live cursor is ring_hi(): it survives reconnects, so after a
 * database restart the first fetch catches up from where it stopped.
 *
 * Timelines: the feed knows the row at its cursor (ring_hi_us).  Every
 * fetch reads from the cursor itself, so its first row is that row; when
 * the cursor is above pruned_through and the row is missing or has another
 * created_at, the log went backwards or was replaced (a restore, a
 * point-in-time recovery, a failover).  The feed then looks for the fork
 * point F, the newest cached row the database still holds unchanged
 * (pruned_through if none), drops the cache, continues after F and reports
 * ops.timeline(F) so the streams above F are reset.
 *
 * On a hot standby the link does not LISTEN (NOTIFY never reaches a
 * standby): replica.c watches the replay position and asks for a fetch
 * when it moves, and LISTENs once the server is promoted.
 *
 * Invariants: at most one fetch, head or fork job is queued or in flight
 * (`inflight`); events are dispatched in id order, each exactly once, and
 * then handed to the replay cache; no event is dispatched from a fetch
 * whose cursor check failed; a `$sub` marker goes to ops.marker instead of
 * the hub, before the next row is dispatched, so the streams of its
 * subscription judge every later row by the new definition; ops.advanced
 * runs after every batch and after the head is read.  Rows are decoded by
 * logread.c only.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "config.h"
#include "feed.h"
#include "hub.h"
#include "log.h"
#include "logread.h"
#include "metrics.h"
#include "replica.h"
#include "ring.h"
#include "shr.h"

static struct {
	db_link    *link;			/* the live link (main.c's); NULL in a worker */
	bool		inflight;
	bool		again;
	uv_timer_t	poll;
	feed_ops	up;
	/* a worker's feed: the shared ring and the way to the supervisor */
	shr		   *ring;
	feed_remote remote;
	uint64_t	off;			/* next record to read */
	uint64_t	covered;		/* records before this are covered by a completed read */
	uint64_t	fetch_head;		/* the ring's head when the last fetch was sent */
} feed;

uint64_t	feed_ring_behind;

static bool
feed_ready(void)
{
	return feed.ring ? feed.remote.ready() : db_link_up(feed.link);
}

/* Send job (inflight is set); false, job freed, when it could not go. */
static bool
feed_send(db_job *job)
{
	feed.inflight = true;
	if (feed.ring == NULL) {
		db_submit(feed.link, job);
		return true;
	}
	feed.fetch_head = shr_head(feed.ring);
	if (feed.remote.submit(job))
		return true;
	feed.inflight = false;
	db_job_free(job);
	return false;
}

static void feed_up(db_link *l);
static void feed_on_notify(db_link *l, const char *payload);

static int64_t
feed_now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}

static void feed_request(void);

static void
feed_head_done(db_job *job, PGresult *res)
{
	int64_t		head, head_us;

	db_job_free(job);
	feed.inflight = false;
	if (res == NULL)
		return;
	if (!logread_head_value(res, &head, &head_us)) {
		log_error("reading the log head failed: %s", PQresultErrorMessage(res));
		return;					/* the backstop poll retries */
	}
	ring_reset(head, head_us);
	if (feed.ring == NULL)
		log_info("live cursor starts at %" PRId64, ring_hi());
	feed.up.advanced();
	if (feed.again)
		feed_request();
	else if (feed.ring != NULL)
		feed_drain();
}

/* The log was pruned past the live cursor: tell the live streams. */
static void
feed_pruned(int64_t pruned)
{
	log_warn("events %" PRId64 "..%" PRId64 " were pruned before the bridge read them",
			 ring_hi() + 1, pruned);
	hub_flush();				/* the events before the gap come before its reset */
	feed.up.pruned(ring_hi() + 1, pruned);
	ring_reset(pruned, LOGPOS_NO_ROW);
}

static void
feed_fork_done(db_job *job, PGresult *res)
{
	int64_t		pruned, id, us, old_hi = ring_hi();

	db_job_free(job);
	feed.inflight = false;
	if (res == NULL)
		return;
	if (!logread_fork_answer(res, &pruned, &id, &us)) {
		log_error("looking for the fork point failed: %s", PQresultErrorMessage(res));
		return;					/* the next fetch checks again */
	}
	if (id < 0 || id <= pruned) {
		/*
		 * No cached row is in the log as it was: the fork point is unknown
		 * (it may be below the prune mark, and streams may hold rows of the
		 * dead timeline down there), so re-base at 0; the next fetch sends
		 * the prune reset.
		 */
		id = 0;
		us = LOGPOS_NO_ROW;
	}
	log_warn("the log was replaced or went back: events after %" PRId64
			 " belong to another timeline; continuing after %" PRId64, id, id);
	if (feed.ring == NULL)
		metrics.timelines++;	/* a worker's: the supervisor counts it */
	if (id > old_hi)
		feed.up.pruned(old_hi + 1, id);
	ring_rebase(id, us);
	feed.up.timeline(id, us);
	feed_request();
}

/* The row at the live cursor changed: find the fork point (the one job). */
static void
feed_fork(void)
{
	size_t		n = ring_count();
	int64_t    *ids = malloc((n + 1) * sizeof(int64_t));
	int64_t    *us = malloc((n + 1) * sizeof(int64_t));
	db_job	   *job = NULL;

	if (ids != NULL && us != NULL) {
		for (size_t i = 0; i < n; i++) {
			ids[i] = ring_at(i)->id;
			us[i] = ring_at(i)->created_us;
		}
		job = logread_fork(ids, us, n, feed_fork_done, NULL);
	}
	free(ids);
	free(us);
	if (job == NULL) {
		log_error("out of memory looking for the fork point; retrying at the next poll");
		return;
	}
	feed_send(job);
}

/* Payload bytes per live fetch (after its first row). */
#define FEED_BATCH_BYTES (4u << 20)

/*
 * Dispatch ev, the event right after the live cursor, and append it to the
 * replay cache (takes ownership).  False when a filter's parse of it ran
 * out of memory: nothing was delivered and ev is freed.
 */
static bool
feed_take(event *ev, int64_t now_us)
{
	/* filters must never see a payload whose parse ran out of memory */
	if (!event_is_marker(ev) && !hub_dispatch(ev)) {
		log_error("out of memory reading an event; reading it again at the next poll");
		event_free(ev);
		return false;
	}
	assert(ev->id > 0);
	if (feed.ring == NULL)
		metrics.events_fetched++;
	if (event_is_marker(ev)) {
		hub_flush();			/* the rows before it, under the old definition */
		feed.up.marker(ev);		/* applied before any later row; never delivered */
	}
	metrics_observe_lag(ev->created_us, now_us);
	if (feed.up.pushed)
		feed.up.pushed(ev);
	ring_push(ev);
	return true;
}

/*
 * One row of a batch: LR_EVENT when it held an event after the cursor,
 * LR_OOM when it could not be read or parsed for the filters (the cursor
 * stays before it).
 */
static logread_row
feed_row(PGresult *res, int i, int64_t now_us)
{
	event	   *ev;
	logread_row r = logread_event(res, i, &ev);

	if (r == LR_NONE)
		return r;
	if (r == LR_EVENT && ev->id <= ring_hi()) {
		event_free(ev);			/* the row at the cursor, already checked */
		return LR_NONE;
	}
	if (r == LR_OOM) {
		log_error("out of memory reading an event; reading it again at the next poll");
		return LR_OOM;
	}
	return feed_take(ev, now_us) ? LR_EVENT : LR_OOM;
}

static void
feed_fetch_done(db_job *job, PGresult *res)
{
	int			rows, got = 0;
	int64_t		pruned, now_us = feed_now_us();
	size_t		bytes = 0;

	db_job_free(job);
	feed.inflight = false;
	if (res == NULL)
		return;
	if (!logread_fetch_ok(res, ring_hi())) {
		log_error("live fetch failed: %s", PQresultStatus(res) == PGRES_TUPLES_OK ?
				  "not an answer for the live cursor" : PQresultErrorMessage(res));
		return;					/* the backstop poll reads again */
	}
	rows = PQntuples(res);
	pruned = logread_pruned(res);
	if (ring_hi() > pruned && logread_us_at(res, ring_hi()) != ring_hi_us()) {
		feed_fork();			/* not one row of this answer is dispatched */
		return;
	}
	if (pruned > ring_hi())
		feed_pruned(pruned);
	hub_batch_begin(cfg.client_queue);
	for (int i = 0; i < rows; i++) {
		logread_row r = feed_row(res, i, now_us);

		if (r == LR_OOM) {
			hub_batch_end();
			feed.up.advanced();
			return;				/* the backstop poll reads on from the cursor */
		}
		if (r == LR_EVENT) {
			got++;
			bytes += logread_payload_bytes(res, i);
		}
	}
	hub_batch_end();
	feed.up.advanced();
	if (got >= (int) cfg.batch || bytes >= FEED_BATCH_BYTES || feed.again)
		feed_request();
	else if (feed.ring != NULL) {
		/* caught up with the log as it was when the ring's head was read */
		if (feed.fetch_head > feed.covered)
			feed.covered = feed.fetch_head;
		feed_drain();
	}
}

static void
feed_request(void)
{
	db_job	   *job;

	if (feed.inflight) {
		feed.again = true;
		return;
	}
	if (!feed_ready())
		return;					/* feed_up fetches after reconnecting */
	feed.again = false;
	if (!ring_valid())
		job = logread_head(feed_head_done, NULL);
	else
		job = logread_fetch(ring_hi(), (int64_t) cfg.batch, FEED_BATCH_BYTES, feed_fetch_done, NULL);
	if (job == NULL)
		return;
	feed_send(job);
}

void
feed_notify(const char *payload)
{
	char	   *end;
	long long	v;

	metrics.notices++;
	if (payload[0] == 's' && payload[1] == ' ')
		return;					/* a hint: the change is a marker, and "e" covers it */
	if (payload[0] == 'e' && payload[1] == ' ') {
		v = strtoll(payload + 2, &end, 10);
		if (*end == '\0' && ring_valid() && v <= ring_hi())
			return;				/* already have it */
	}
	feed_request();
}

static void
feed_on_notify(db_link *l, const char *payload)
{
	(void) l;
	feed_notify(payload);
}

static void
feed_up(db_link *l)
{
	(void) l;
	feed_request();				/* a fetch requeued by the reconnect just sets again */
}

static void
feed_down(db_link *l)
{
	(void) l;
	log_warn("live link lost; streams stay open and catch up after reconnecting");
}

/* replica_ops: the standby replayed more WAL, or was promoted and LISTENs now. */
static void
feed_replayed(void)
{
	feed_request();
}

static void
feed_on_poll(uv_timer_t *t)
{
	(void) t;
	if (feed.ring != NULL)
		feed_drain();
	else
		feed_request();
}

/* ---- a worker's feed: the shared ring ---- */

static bool
feed_at(int64_t id, int64_t us)
{
	return ring_valid() && id == ring_hi() && us == ring_hi_us();
}

/*
 * Apply one record (at offset at) if the cursor is exactly where the
 * supervisor's was before it; skip it if the cursor is past it, or a read
 * of the log that began after it was written has completed.  False: the
 * record must be read again after a fetch from the log (or, for an event
 * whose dispatch ran out of memory, at the next poll).
 */
static bool
feed_apply(uint64_t at, shr_item *it, int64_t now_us, bool *moved)
{
	bool		covered = at < feed.covered;
	int64_t		hi = ring_hi();

	switch (it->kind) {
		case SHR_EVENT:
			if (it->id <= hi || (!feed_at(it->prev_id, it->prev_us) && covered)) {
				event_free(it->ev);
				return true;
			}
			if (!feed_at(it->prev_id, it->prev_us)) {
				event_free(it->ev);
				return false;
			}
			*moved = true;
			return feed_take(it->ev, now_us);
		case SHR_HOLE:
			return it->id <= hi || covered;
		case SHR_PRUNED:
			if (it->id <= hi || (!feed_at(it->prev_id, it->prev_us) && covered))
				return true;
			if (!feed_at(it->prev_id, it->prev_us))
				return false;
			feed_pruned(it->id);
			*moved = true;
			return true;
		case SHR_TIMELINE:
			if (!feed_at(it->prev_id, it->prev_us))
				return covered;
			hub_flush();		/* the events before the fork come before its reset */
			if (it->id > hi)
				feed.up.pruned(hi + 1, it->id);
			ring_rebase(it->id, it->us);
			feed.up.timeline(it->id, it->us);
			*moved = true;
			return true;
		case SHR_PAD:
			return true;
	}
	return true;
}

void
feed_drain(void)
{
	int64_t		now_us = feed_now_us();
	bool		moved = false;

	if (feed.ring == NULL || feed.inflight)
		return;					/* the read in flight drains when it is done */
	if (!ring_valid()) {
		feed_request();			/* the head first */
		return;
	}
	hub_batch_begin(cfg.client_queue);
	for (;;) {
		uint64_t	at = feed.off;
		shr_item	it;
		shr_status	st = shr_read(feed.ring, &feed.off, &it);

		if (st == SHR_EMPTY)
			break;
		if (st == SHR_BEHIND) {
			/* overwritten before it was read: the log has all of it */
			feed_ring_behind++;
			log_warn("fell behind the shared ring; reading the log from %" PRId64, ring_hi());
			feed.off = shr_head(feed.ring);
			feed_request();
			break;
		}
		if (!feed_apply(at, &it, now_us, &moved)) {
			feed.off = at;		/* read it again */
			feed_request();
			break;
		}
	}
	hub_batch_end();
	if (moved)
		feed.up.advanced();
}

void
feed_init_remote(uv_loop_t *loop, shr *ring, const feed_remote *remote, const feed_ops *ops)
{
	assert(ops->advanced && ops->pruned && ops->marker && ops->timeline);
	feed.up = *ops;
	feed.link = NULL;
	feed.ring = ring;
	feed.remote = *remote;
	feed.off = feed.covered = shr_head(ring);
	uv_timer_init(loop, &feed.poll);
}

void
feed_init(uv_loop_t *loop, db_link *live, const feed_ops *ops)
{
	const db_step *steps;
	size_t		n;

	assert(ops->advanced && ops->pruned && ops->marker && ops->timeline);
	feed.up = *ops;
	feed.link = live;
	steps = logread_live_steps(&n);
	db_link_init(live, loop, "live", steps, n,
				 (db_ops) {feed_up, feed_down, feed_on_notify});
	uv_timer_init(loop, &feed.poll);
	replica_init(loop, live, &(replica_ops) {feed_replayed, feed_replayed});
}

void
feed_start(void)
{
	if (feed.ring != NULL) {
		feed_request();			/* the head, then the ring */
		uv_timer_start(&feed.poll, feed_on_poll, cfg.poll_interval_ms, cfg.poll_interval_ms);
		return;
	}
	db_link_start(feed.link);
	uv_timer_start(&feed.poll, feed_on_poll, cfg.poll_interval_ms, cfg.poll_interval_ms);
	replica_start(cfg.replay_poll_ms);
}

void
feed_stop(void)
{
	uv_timer_stop(&feed.poll);
	uv_close((uv_handle_t *) &feed.poll, NULL);
	if (feed.link != NULL) {
		replica_stop();
		db_link_stop(feed.link);
	}
}
