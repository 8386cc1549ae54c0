/*
 * feed.c - live fetches on the LISTENing link.
 *
 * A notification (or the backstop poll) asks for a fetch; while one is in
 * flight further requests only set `again`, so notifications that arrive
 * during a fetch coalesce into the next one.  A full batch fetches again at
 * once.  The live cursor is ring_hi(): it survives reconnects, so after a
 * database restart the first fetch catches up from where it stopped.
 *
 * Invariants: at most one fetch or head job is queued or in flight
 * (`inflight`); events are dispatched in id order, each exactly once, and
 * then handed to the replay cache; parked replays are stepped after every
 * batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "bridge.h"
#include "config.h"
#include "feed.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "replay.h"
#include "ring.h"
#include "work.h"

static struct {
	bool		inflight;
	bool		again;
	uv_timer_t	poll;
} feed;

static void feed_up(db_link *l);
static void feed_on_notify(db_link *l, const char *payload);

static db_step feed_steps[] = {
	{NULL, "LISTEN sse_bridge", NULL},
	{"fetch", NULL, NULL},
	{"head", "SELECT greatest((SELECT max(id) FROM sse_bridge.events), m.pruned_through) "
	 "FROM sse_bridge.meta m", NULL},
};

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
	db_job_free(job);
	feed.inflight = false;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_error("reading the log head failed: %s", PQresultErrorMessage(res));
		return;					/* the backstop poll retries */
	}
	ring_reset(strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	log_info("live cursor starts at %" PRId64, ring_hi());
	replay_unpark_all();
	if (feed.again)
		feed_request();
}

/* The log was pruned past the live cursor: tell every live stream. */
static void
feed_pruned(int64_t pruned)
{
	frame	   *f = replay_reset_frame(ring_hi() + 1, pruned);

	log_warn("events %" PRId64 "..%" PRId64 " were pruned before the bridge read them",
			 ring_hi() + 1, pruned);
	for (client *c = client_list; c && f; c = c->next)
		if (c->state == CS_LIVE)
			client_send(c, frame_ref(f));
	frame_unref(f);
	ring_reset(pruned);
}

static void
feed_row(PGresult *res, int i, int64_t now_us)
{
	event	   *ev;

	if (PQgetisnull(res, i, 1))
		return;
	ev = event_new(strtoll(PQgetvalue(res, i, 1), NULL, 10),
				   strtoll(PQgetvalue(res, i, 5), NULL, 10),
				   PQgetvalue(res, i, 2), (size_t) PQgetlength(res, i, 2),
				   PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3),
				   (size_t) PQgetlength(res, i, 3),
				   PQgetvalue(res, i, 4), (size_t) PQgetlength(res, i, 4));
	if (ev == NULL) {
		log_error("out of memory reading an event; clients will see a gap");
		return;
	}
	if (ev->id <= ring_hi()) {
		event_free(ev);
		return;
	}
	metrics.events_fetched++;
	/* "$sub" rows mark subscription changes: kept in order, never delivered */
	if (ev->chlen == 0 || ev->channel[0] != '$')
		hub_dispatch(ev);
	metrics_observe_lag(ev->created_us, now_us);
	ring_push(ev);
}

static void
feed_fetch_done(db_job *job, PGresult *res)
{
	int			rows, got = 0;
	int64_t		pruned, now_us = feed_now_us();

	db_job_free(job);
	feed.inflight = false;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
		log_error("live fetch failed: %s", PQresultErrorMessage(res));
		return;
	}
	rows = PQntuples(res);
	pruned = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (pruned > ring_hi())
		feed_pruned(pruned);
	for (int i = 0; i < rows; i++) {
		got += !PQgetisnull(res, i, 1);
		feed_row(res, i, now_us);
	}
	replay_unpark_all();
	if (got >= (int) cfg.batch || feed.again)
		feed_request();
}

static void
feed_request(void)
{
	char		cursor[24], limit[24];
	const char *params[2] = {cursor, limit};
	db_job	   *job;

	if (feed.inflight) {
		feed.again = true;
		return;
	}
	if (!db_link_up(&br.live))
		return;					/* feed_up fetches after reconnecting */
	feed.again = false;
	if (!ring_valid())
		job = db_job_new("head", 0, NULL, feed_head_done, NULL);
	else {
		snprintf(cursor, sizeof(cursor), "%" PRId64, ring_hi());
		snprintf(limit, sizeof(limit), "%" PRIu64, cfg.batch);
		job = db_job_new("fetch", 2, params, feed_fetch_done, NULL);
	}
	if (job == NULL)
		return;
	feed.inflight = true;
	db_submit(&br.live, job);
}

void
feed_notify(const char *payload)
{
	char	   *end;
	long long	v;

	if (payload[0] == 's' && payload[1] == ' ') {
		v = strtoll(payload + 2, &end, 10);
		if (*end == '\0' && end != payload + 2)
			work_sub_changed(v);
		return;
	}
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
	work_reload_all();			/* subscription notices sent while down are lost */
}

static void
feed_down(db_link *l)
{
	(void) l;
	log_warn("live link lost; streams stay open and catch up after reconnecting");
}

static void
feed_on_poll(uv_timer_t *t)
{
	(void) t;
	feed_request();
}

void
feed_init(void)
{
	feed_steps[1].sql = work_fetch_sql;
	db_link_init(&br.live, br.loop, "live", feed_steps,
				 sizeof(feed_steps) / sizeof(feed_steps[0]),
				 (db_ops) {feed_up, feed_down, feed_on_notify});
	uv_timer_init(br.loop, &feed.poll);
}

void
feed_start(void)
{
	db_link_start(&br.live);
	uv_timer_start(&feed.poll, feed_on_poll, cfg.poll_interval, cfg.poll_interval);
}

void
feed_stop(void)
{
	uv_timer_stop(&feed.poll);
	uv_close((uv_handle_t *) &feed.poll, NULL);
	db_link_stop(&br.live);
}
