/*
 * stream.c - a stream from the open lookup to its end: the opening
 * decision, replay from the replay cache or the log, the hand-over to the
 * hub with `event: ready`, definition changes, and the end.
 *
 * State machine (stream.h): stream_set_state alone changes st->state and
 * runs each state's entry and exit actions:
 *   REPLAYING exit: leave the parked list / run queue
 *   LIVE      entry: join the hub, mark the client unpaced; exit: leave the hub
 *   metrics.streams counts REPLAYING + LIVE.
 * Moves: OPENING -> REPLAYING -> LIVE, any of them -> ENDED, and LIVE ->
 * REPLAYING for a subscription stream after a reset (prune or timeline):
 * with `redef` set it reads its definition at its new cursor (its one job,
 * stream_redef_read) before it replays on.  Its client stays unpaced; a
 * replay queues only what fits anyway.
 *
 * Replay: a REPLAYING stream has a cursor c: every matching event <= c is
 * queued.  stream_step only appends the stream to a FIFO run queue;
 * stream_run, called once per loop turn after that turn's live output was
 * flushed, serves it round-robin with a slice per visit and a budget per
 * turn (stream.h), putting a stream that still has work back at the tail.
 * A visit advances c from the replay cache when the cache covers c
 * (ring_lo <= c), otherwise asks the log for a page of at most the room
 * left in the client's queue (work link).  Replay is paced by the client's
 * drain: a frame is queued only if the queue stays within --client-queue
 * (keeping REPLAY_RESERVE for ready/reset) or is empty, otherwise the
 * stream pauses with st->need set and the client's `drained` resumes it.
 * Over the hard memory limit replays wait (parked; stream_mem_check
 * resumes them).  A stream whose cursor is ahead of the live cursor parks
 * until the feed advances.
 *
 * Invariants (asserted where cheap):
 *  - the hand-over to LIVE happens only with c == ring_hi(), in the same
 *    loop turn as `event: ready`, so no event falls between replay and live;
 *  - a reset is sent whenever pruned_through > c, before anything after it;
 *  - timelines (docs/design.md): cursor_us is the row at c as the stream
 *    read it; a page whose row at c differs, or a replay-cache entry at c
 *    that differs, is not used; a job sent before a timeline change
 *    (ring_timeline) is not used: an open is sent again, a page dropped;
 *  - a stream is in at most one of the parked list and the run queue, and
 *    in neither unless REPLAYING;
 *  - a stream has at most one database job (stream_submit), and a callback
 *    for a cancelled job only frees it;
 *  - hub membership changes only here and never inside hub_dispatch (a
 *    stream that must end asks its client to end at the next flush);
 *  - a subscription stream's patterns and filter are its subscription's
 *    definition valid at its position: taken at the open for where it
 *    starts, replaced only when its reading passes a `$sub` marker of its
 *    sid (stream_marker in LIVE, replay_offer in REPLAYING), and it ends
 *    rather than go on with a definition it could not apply.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "hmap.h"
#include "log.h"
#include "logpos.h"
#include "mem.h"
#include "metrics.h"
#include "preflight.h"
#include "resp.h"
#include "ring.h"
#include "sse_filter.h"
#include "sse_match.h"
#include "stream.h"
#include "subdef.h"
#include "wire.h"
#include "work.h"

TAILQ_HEAD(stream_list, stream);

static struct stream_list streams = TAILQ_HEAD_INITIALIZER(streams);
static struct stream_list parked = TAILQ_HEAD_INITIALIZER(parked);
static struct stream_list runq = TAILQ_HEAD_INITIALIZER(runq);
static size_t nstreams;

/* What one loop turn may still spend on replays. */
typedef struct replay_quota {
	size_t		bytes;
	size_t		events;
} replay_quota;

static const char *const stream_state_names[SS_COUNT] = {
	"opening", "replaying", "live", "ended"
};

/* Legal moves: legal[from] has bit `to` set. */
static const uint8_t legal[SS_COUNT] = {
	[SS_OPENING] = 1 << SS_REPLAYING | 1 << SS_ENDED,
	[SS_REPLAYING] = 1 << SS_LIVE | 1 << SS_ENDED,
	[SS_LIVE] = 1 << SS_REPLAYING | 1 << SS_ENDED,	/* a subscription's reset */
	[SS_ENDED] = 0,
};

static void stream_forget(stream *st);

static void
stream_set_state(stream *st, stream_state to)
{
	stream_state from = (stream_state) st->state;

	assert(legal[from] & (1u << to));
	if (from == SS_REPLAYING)
		stream_forget(st);
	else if (from == SS_LIVE)
		hub_remove(&st->sub);
	st->state = (uint8_t) to;
	metrics.streams += (to == SS_REPLAYING || to == SS_LIVE) -
		(from == SS_REPLAYING || from == SS_LIVE);
	log_debug("stream %p: %s -> %s", (void *) st, stream_state_names[from],
			  stream_state_names[to]);
	if (to == SS_LIVE) {
		assert(!(st->flags & (SF_PARKED | SF_QUEUED)));
		client_set_unpaced(st->owner);
		if (!hub_add(&st->sub))
			client_fail(st->owner, "out of memory adding a subscription to the hub");
	}
}

size_t
stream_count(void)
{
	return nstreams;
}

/* ---- the one database job ---- */

/* Submit job as st's one job; false (job not taken) when job is NULL. */
static bool
stream_submit(stream *st, db_job *job)
{
	assert(st->job == NULL);
	if (job == NULL)
		return false;
	st->job = job;
	st->job_timeline = ring_timeline();
	work_submit(job);
	return true;
}

/*
 * As stream_submit, for an open: answered within --db-timeout or failed
 * (done with res NULL).  False, job freed, when the work link is down.
 */
static bool
stream_submit_now(stream *st, db_job *job)
{
	assert(st->job == NULL && job != NULL);
	st->job = job;
	st->job_timeline = ring_timeline();
	if (work_submit_now(job))
		return true;
	st->job = NULL;
	db_job_free(job);
	return false;
}

/* A job of st finished: free it; NULL when its stream is gone. */
static stream *
stream_claim(db_job *job, int64_t *mark)
{
	stream	   *st = job->owner;

	if (mark != NULL)
		*mark = job->mark;
	if (st != NULL) {
		assert(st->job == job);
		st->job = NULL;
	}
	db_job_free(job);
	return st;
}

/* ---- definitions ---- */

/*
 * Streams by subscription: sid -> sid_group, so a marker met by the feed
 * reaches the streams of its subscription without a scan.  A group exists
 * while it has members.
 */
typedef struct sid_group {
	TAILQ_HEAD(, stream) members;
} sid_group;

static hmap by_sid;

static bool
stream_join_sid(stream *st)
{
	sid_group  *g = hmap_get(&by_sid, &st->sid, sizeof(st->sid));

	if (g == NULL) {
		if ((g = malloc(sizeof(*g))) == NULL)
			return false;
		TAILQ_INIT(&g->members);
		if (!hmap_put(&by_sid, &st->sid, sizeof(st->sid), g)) {
			free(g);
			return false;
		}
	}
	TAILQ_INSERT_TAIL(&g->members, st, bysid);
	st->in_group = true;
	return true;
}

static void
stream_leave_sid(stream *st)
{
	sid_group  *g;

	if (!st->in_group)
		return;
	g = hmap_get(&by_sid, &st->sid, sizeof(st->sid));
	assert(g != NULL);
	TAILQ_REMOVE(&g->members, st, bysid);
	st->in_group = false;
	if (TAILQ_EMPTY(&g->members)) {
		hmap_del(&by_sid, &st->sid, sizeof(st->sid));
		free(g);
	}
	if (by_sid.n == 0)
		hmap_clear(&by_sid);
}

static void
stream_free_spec(stream *st)
{
	for (size_t i = 0; i < st->sub.npatterns; i++)
		free(st->sub.patterns[i]);
	free(st->sub.patterns);
	hub_sub_unprepare(&st->sub);
	sse_filter_free(st->sub.filter);
	st->sub.patterns = NULL;
	st->sub.npatterns = 0;
	st->sub.filter = NULL;
}

/* st takes d's patterns and filter (d is left empty); in LIVE it rejoins the hub. */
static bool
stream_take_def(stream *st, sub_def *d)
{
	bool		live = st->state == SS_LIVE;

	if (live)
		hub_remove(&st->sub);	/* the hub must not see the spec change */
	stream_free_spec(st);
	st->sub.patterns = d->patterns;
	st->sub.npatterns = d->npatterns;
	st->sub.filter = d->filter;
	d->patterns = NULL;
	d->npatterns = 0;
	d->filter = NULL;
	hub_sub_prepare(&st->sub);
	if (live && !hub_add(&st->sub)) {
		client_fail(st->owner, "out of memory adding a subscription to the hub");
		return false;
	}
	return true;
}

/*
 * The stream's reading passed a marker of its subscription: every later
 * event is judged by the marker's definition.  False when the stream ends
 * here (dropped, closed, or a definition the bridge cannot apply: never
 * stream on unfiltered or with the old definition).  A stream that ends at
 * its drop first sends `ready` with the marker's position: its client holds
 * everything up to there, so it resumes at the drop and gets 404 instead of
 * replaying the same empty range again.
 */
static bool
stream_redefine(stream *st, event *marker)
{
	sub_def		d;
	sub_def_status rc;
	const char *why;

	assert(st->state == SS_REPLAYING || st->state == SS_LIVE);
	rc = subdef_parse(marker->data, marker->dlen, st->sid, &d, &why);
	if (rc == SUB_DEF_OOM) {
		client_fail(st->owner, "out of memory applying a subscription change");
		return false;
	}
	if (rc != SUB_DEF_OK) {
		char		detail[200];

		snprintf(detail, sizeof(detail), "subscription change %" PRId64 " cannot be applied (%s)",
				 marker->id, why);
		metrics.def_errors++;
		client_disconnect(st->owner, true, CLOSE_DEFINITION, detail);
		return false;
	}
	if (d.state != SUB_ACTIVE) {
		char		detail[80];

		snprintf(detail, sizeof(detail), "its subscription was %s at %" PRId64,
				 d.state == SUB_CLOSED ? "closed" : "dropped", marker->id);
		if (d.state == SUB_DROPPED)
			client_send(st->owner, wire_ready(marker->id,
											  logpos_fp(marker->id, marker->created_us)));
		subdef_clear(&d);
		client_disconnect(st->owner, true, CLOSE_SUBSCRIPTION, detail);
		return false;
	}
	metrics.redefinitions++;
	return stream_take_def(st, &d);
}

void
stream_marker(event *ev)
{
	int64_t		sid = subdef_sid(ev->data, ev->dlen);
	sid_group  *g = sid > 0 ? hmap_get(&by_sid, &sid, sizeof(sid)) : NULL;
	stream	   *st;

	if (g == NULL)
		return;
	/* live streams now; replays meet the marker in the cache or a page */
	TAILQ_FOREACH(st, &g->members, bysid)
		if (st->state == SS_LIVE && !client_gone(st->owner))
			stream_redefine(st, ev);
}

char	  **
stream_touch_ids(size_t *n)
{
	char	  **ids;
	stream	   *st;
	size_t		k = 0;

	*n = 0;
	TAILQ_FOREACH(st, &streams, link)
		k += st->sub_id != NULL;
	if (k == 0 || (ids = malloc(k * sizeof(char *))) == NULL)
		return NULL;
	TAILQ_FOREACH(st, &streams, link)
		if (st->sub_id != NULL)
			ids[(*n)++] = st->sub_id;
	return ids;
}

/* ---- open ---- */

stream_decision
stream_decide(const open_info *info, bool is_sub, int64_t last_event_id, int64_t *cursor)
{
	int64_t		c;

	if (!info->found || info->expired)
		return STREAM_NOT_FOUND;
	if (is_sub && info->dropped && last_event_id < 0)
		return STREAM_NOT_FOUND;	/* unsubscribed: only readers behind the drop go on */
	if (is_sub)					/* nothing before the creation marker matches */
		c = last_event_id > info->start_id ? last_event_id : info->start_id;
	else
		c = last_event_id >= 0 ? last_event_id : info->head;
	if (c > info->head)
		c = info->head;			/* ids beyond the head do not exist yet */
	if (c < 0)
		c = 0;
	*cursor = c;
	if (info->close_id >= 0 && info->close_id <= c)
		return STREAM_GONE;
	if (info->closed && info->close_id < 0)
		return STREAM_GONE;		/* closed, and the close row was pruned */
	return STREAM_START;
}

stream *
stream_new(client *c, char **patterns, size_t npatterns, sse_filter *filter,
		   const char *sub_id, int64_t last_event_id)
{
	stream	   *st = calloc(1, sizeof(stream));

	assert(c->st == NULL);
	if (st == NULL || (sub_id != NULL && (st->sub_id = strdup(sub_id)) == NULL)) {
		free(st);
		return NULL;
	}
	st->owner = c;
	st->state = SS_OPENING;
	st->last_event_id = last_event_id;
	st->cursor_us = LOGPOS_UNKNOWN;
	st->forked_at = -1;
	st->sub.patterns = patterns;
	st->sub.npatterns = npatterns;
	st->sub.filter = filter;
	hub_sub_prepare(&st->sub);
	TAILQ_INSERT_TAIL(&streams, st, link);
	nstreams++;
	c->st = st;
	return st;
}

/* The stream's position moves to id (the row there has created_us us). */
static void
stream_move(stream *st, int64_t id, int64_t us)
{
	st->cursor = id;
	st->cursor_us = us;
}

/* Ids from..through were pruned: the stream goes on after through. */
static void
stream_send_reset(stream *st, int64_t from, int64_t through)
{
	metrics.resets++;
	client_send(st->owner, wire_reset(from, through, through, 0, false));
	stream_move(st, through, LOGPOS_NO_ROW);
}

/*
 * The client's ids from at+1 up to through belong to another timeline: a
 * timeline reset whose id is at, and the stream goes on after at.
 */
static void
stream_send_timeline(stream *st, int64_t at, int64_t at_us, int64_t through)
{
	metrics.resets++;
	client_send(st->owner, wire_reset(at + 1, through > at ? through : at, at,
									  logpos_fp(at, at_us), true));
	stream_move(st, at, at_us);
}

/* stream_begin; forked_at >= 0: first a timeline reset for that old position. */
static void
stream_begin_at(stream *st, int64_t cursor, int64_t cursor_us, int64_t pruned,
				int64_t forked_at)
{
	char		cors[512];
	client	   *c = st->owner;

	client_send(c, wire_stream_head(resp_cors(c->origin, cors, sizeof(cors)),
									(unsigned long) cfg.retry_ms));
	client_streaming(c);
	if (forked_at >= 0)
		stream_send_timeline(st, cursor, cursor_us, forked_at);
	else
		stream_move(st, cursor, cursor_us);
	if (pruned > cursor)
		stream_send_reset(st, cursor + 1, pruned);
	stream_set_state(st, SS_REPLAYING);
	stream_step(st);
}

void
stream_begin(stream *st, int64_t cursor, int64_t pruned)
{
	stream_begin_at(st, cursor, LOGPOS_UNKNOWN, pruned, -1);
}

bool
stream_resume_forked(const open_info *info, int64_t id, uint32_t fp, bool has_fp)
{
	if (!has_fp || id < 0 || id <= info->pruned)
		return false;			/* unchecked, or nothing left to compare with */
	return info->at_us == LOGPOS_NO_ROW || logpos_fp(id, info->at_us) != fp;
}

/*
 * A subscription stream takes the definition valid where it starts (the
 * open answer's def_pos, which must be where this stream starts: after
 * cursor, or after the prune point when that is later, as stream_begin
 * resets).  False when the client was answered instead.
 */
static bool
stream_opened_def(stream *st, const open_info *info, int64_t cursor)
{
	client	   *c = st->owner;
	int64_t		at = info->pruned > cursor ? info->pruned : cursor;
	sub_def		d;
	const char *why = "no definition at that position";
	sub_def_status rc = SUB_DEF_INVALID;

	if (info->def_json != NULL && info->def_pos == at)
		rc = subdef_parse(info->def_json, strlen(info->def_json), info->sid, &d, &why);
	switch (rc) {
		case SUB_DEF_OK:
			break;
		case SUB_DEF_OOM:
			client_respond_error(c, 503, "unavailable", "out of memory");
			return false;
		case SUB_DEF_INVALID:
			/* never stream unfiltered: refuse, the client cannot fix it */
			log_error("refusing a stream: subscription %" PRId64 " at %" PRId64 ": %s",
					  info->sid, at, why);
			metrics.def_errors++;
			client_respond_error(c, 500, "bad_subscription",
								 "the subscription's definition cannot be applied");
			return false;
	}
	if (d.state != SUB_ACTIVE) {
		if (d.state == SUB_CLOSED)
			client_respond(c, resp_empty(204, c->origin, 0));
		else
			client_respond_error(c, 404, "not_found", "unknown or expired subscription");
		subdef_clear(&d);
		return false;
	}
	st->sid = info->sid;
	if (!stream_join_sid(st)) {
		subdef_clear(&d);
		client_respond_error(c, 503, "unavailable", "out of memory");
		return false;
	}
	stream_take_def(st, &d);	/* OPENING: no hub, cannot fail */
	return true;
}

static void stream_open_done(db_job *job, PGresult *res);

/* Send st's open again (its one job). */
static void
stream_reopen(stream *st)
{
	db_job	   *job = logread_open(st->sub_id, st->last_event_id, st->sub.patterns,
								   st->sub.npatterns, stream_open_done, st);

	if (job == NULL)
		client_respond_error(st->owner, 503, "unavailable", "out of memory");
	else if (!stream_submit_now(st, job))
		client_respond_error(st->owner, 503, "unavailable", preflight_unavailable());
}

/*
 * An owned subscription opens only for a token whose subject is its owner:
 * 401 without a token, 403 for another subject; the stream then ends when
 * the token expires.  One without an owner is a capability: a token that
 * came with the request plays no part in it.
 */
static bool
stream_owner_ok(client *c, const open_info *info)
{
	if (info->owner == NULL) {
		auth_grant_unref(c->grant);
		c->grant = NULL;
		return true;
	}
	if (c->grant == NULL) {
		client_respond_error(c, 401, "unauthorized", "this subscription needs a token of its owner");
		return false;
	}
	if (strcmp(c->grant->sub, info->owner) != 0) {
		client_respond_error(c, 403, "forbidden", "this subscription belongs to another subject");
		return false;
	}
	return true;
}

/* The open answer arrived: 404, 204, 401/403 (owner), or begin replaying. */
static void
stream_opened(stream *st, const open_info *info)
{
	client	   *c = st->owner;
	int64_t		cursor = 0, cursor_us = LOGPOS_UNKNOWN, from = st->last_event_id;
	bool		forked = st->forked_at >= 0 ||
		stream_resume_forked(info, st->last_event_id, st->last_event_fp, st->last_event_has_fp);
	int64_t		forked_at = st->forked_at >= 0 ? st->forked_at : st->last_event_id;

	/*
	 * A position of another timeline: the fork point is unknown, so the
	 * stream starts again from the subscription's start (ad hoc: the start
	 * of the log) after a timeline reset that voids everything the client
	 * holds since then -- what it holds at or below the prune mark may be
	 * of the other timeline too -- and a prune reset if the start was
	 * pruned; it never skips ahead.
	 */
	if (forked)
		from = st->sub_id != NULL ? info->start_id : 0;
	switch (stream_decide(info, st->sub_id != NULL, from, &cursor)) {
		case STREAM_NOT_FOUND:
			client_respond_error(c, 404, "not_found", "unknown or expired subscription");
			return;
		case STREAM_GONE:
			client_respond(c, resp_empty(204, c->origin, 0));
			return;
		case STREAM_START:
			break;
	}
	if (st->sub_id != NULL && !stream_owner_ok(c, info))
		return;
	if (st->sub_id != NULL && forked && st->forked_at < 0) {
		/*
		 * The definition came for the abandoned position: ask again for
		 * the one valid at the subscription's start, where it restarts.
		 */
		st->forked_at = st->last_event_id;
		st->last_event_id = -1;
		stream_reopen(st);
		return;
	}
	if (st->sub_id != NULL && !stream_opened_def(st, info, cursor))
		return;
	if (cursor == info->head)
		cursor_us = info->head_us;
	else if (cursor == st->last_event_id && !forked)
		cursor_us = info->at_us;
	else if (st->sub_id != NULL && cursor == info->start_id)
		cursor_us = info->start_us;
	if (cursor <= info->pruned)
		cursor_us = LOGPOS_NO_ROW;
	if (forked)
		log_info("a client resumed from %" PRId64 " of another timeline; "
				 "starting again after %" PRId64, forked_at, cursor);
	log_debug("stream %p: from %" PRId64, (void *) st, cursor);
	stream_begin_at(st, cursor, cursor_us, info->pruned, forked ? forked_at : -1);
}

static void
stream_open_done(db_job *job, PGresult *res)
{
	stream	   *st = job->owner;
	uint64_t	job_timeline = st ? st->job_timeline : 0;
	open_info	info;

	st = stream_claim(job, NULL);

	if (st == NULL)
		return;
	assert(st->state == SS_OPENING);
	if (res != NULL && job_timeline != ring_timeline()) {
		stream_reopen(st);		/* read before the live link saw the timeline change */
		return;
	}
	if (!logread_open_answer(res, st->sub_id != NULL, &info)) {
		if (res != NULL)
			log_warn("opening a stream failed: %.*s", (int) strcspn(PQresultErrorMessage(res), "\n"),
					 PQresultErrorMessage(res));
		else if (preflight_problem() == NULL)
			log_info("opening a stream failed: no answer from the database within --db-timeout");
		client_respond_error(st->owner, 503, "unavailable", preflight_problem() != NULL
							 ? preflight_unavailable() : "the database lookup failed");
		return;
	}
	stream_opened(st, &info);
	open_info_clear(&info);
}

void
stream_open(client *c, route_result *rr)
{
	stream	   *st = stream_new(c, rr->patterns, rr->npatterns, rr->filter,
								rr->kind == ROUTE_SUB ? rr->sub_id : NULL,
								rr->last_event_id);
	db_job	   *job;

	if (st == NULL) {
		client_respond_error(c, 503, "unavailable", "out of memory");
		return;
	}
	rr->patterns = NULL;		/* the stream owns them now */
	rr->npatterns = 0;
	rr->filter = NULL;
	st->last_event_fp = rr->last_event_fp;
	st->last_event_has_fp = rr->last_event_has_fp;
	job = logread_open(st->sub_id, st->last_event_id, st->sub.patterns, st->sub.npatterns,
					   stream_open_done, st);
	if (job == NULL)
		client_respond_error(c, 503, "unavailable", "out of memory");
	else if (!stream_submit_now(st, job))
		client_respond_error(c, 503, "unavailable", preflight_unavailable());
}

/* ---- end ---- */

void
stream_release(client *c)
{
	stream	   *st = c->st;

	assert(st != NULL && st->owner == c);
	if (st->job != NULL) {
		db_job_cancel(st->job);
		st->job = NULL;
	}
	stream_set_state(st, SS_ENDED);
	assert(!(st->flags & (SF_PARKED | SF_QUEUED)));
	stream_leave_sid(st);
	TAILQ_REMOVE(&streams, st, link);
	nstreams--;
	stream_free_spec(st);
	free(st->sub_id);
	free(st);
	c->st = NULL;
}

/* ---- definition after a reset ---- */

static void stream_redef_done(db_job *job, PGresult *res);

/*
 * A subscription stream after a reset (a prune gap, another timeline): the
 * markers up to its new cursor are gone or were of a dead timeline, so it
 * stops (a LIVE one leaves the hub) and reads the definition valid at its
 * cursor before it replays on, in place: the response goes on.
 */
static void
stream_redef(stream *st)
{
	assert(st->sid != 0 && (st->state == SS_REPLAYING || st->state == SS_LIVE));
	if (st->state == SS_LIVE)
		stream_set_state(st, SS_REPLAYING);
	st->redef = true;
	stream_step(st);			/* a job in flight steps it when it returns */
}

/* Ask for the definition at st's cursor (the open statement; st's one job). */
static void
stream_redef_read(stream *st)
{
	db_job	   *job = logread_open(st->sub_id, st->cursor, st->sub.patterns,
								   st->sub.npatterns, stream_redef_done, st);

	if (job == NULL)
		client_fail(st->owner, "out of memory reading a subscription's definition");
	else
		stream_submit(st, job);
}

/*
 * The definition at st's cursor arrived: apply it and replay on, after a
 * prune reset if the log was pruned past the cursor meanwhile.  Anything
 * else ends the stream and its client resumes through a fresh open, which
 * decides (404, 204, another reset).
 */
static void
stream_redef_done(db_job *job, PGresult *res)
{
	stream	   *st = job->owner;
	uint64_t	job_timeline = st ? st->job_timeline : 0;
	open_info	info;
	sub_def		d;
	const char *why = "no definition at that position";
	sub_def_status rc = SUB_DEF_INVALID;
	int64_t		at;

	st = stream_claim(job, NULL);
	if (st == NULL)
		return;
	assert(st->state == SS_REPLAYING && st->redef);
	if (res != NULL && job_timeline != ring_timeline()) {
		stream_step(st);		/* read before a timeline change: read again */
		return;
	}
	if (!logread_open_answer(res, true, &info)) {
		const char *msg = res ? PQresultErrorMessage(res) : "no answer within --db-timeout";
		char		detail[200];

		snprintf(detail, sizeof(detail), "reading a subscription's definition failed: %.*s",
				 (int) strcspn(msg, "\n"), msg);
		client_disconnect(st->owner, false, CLOSE_DATABASE, detail);
		return;
	}
	at = info.pruned > st->cursor ? info.pruned : st->cursor;
	if (!info.found || info.expired || info.sid != st->sid || info.def_pos != at ||
		(st->cursor > info.pruned && st->cursor_us != LOGPOS_UNKNOWN &&
		 st->cursor_us != LOGPOS_NO_ROW && info.at_us != st->cursor_us)) {
		client_disconnect(st->owner, true, CLOSE_RESUME,
						  "a subscription stream cannot go on in place after its reset");
		open_info_clear(&info);
		return;
	}
	if (info.def_json != NULL)
		rc = subdef_parse(info.def_json, strlen(info.def_json), st->sid, &d, &why);
	open_info_clear(&info);
	if (rc == SUB_DEF_OOM) {
		client_fail(st->owner, "out of memory applying a subscription's definition");
		return;
	}
	if (rc != SUB_DEF_OK) {
		char		detail[200];

		snprintf(detail, sizeof(detail), "subscription %" PRId64 " at %" PRId64 ": %s", st->sid, at, why);
		metrics.def_errors++;
		client_disconnect(st->owner, true, CLOSE_DEFINITION, detail);
		return;
	}
	if (d.state != SUB_ACTIVE) {
		subdef_clear(&d);		/* its client's open answers 204 or 404 */
		client_disconnect(st->owner, true, CLOSE_SUBSCRIPTION, "its subscription is closed or dropped");
		return;
	}
	if (at > st->cursor)
		stream_send_reset(st, st->cursor + 1, at);
	stream_take_def(st, &d);	/* REPLAYING: no hub, cannot fail */
	st->redef = false;
	metrics.redefinitions++;
	stream_step(st);
}

/* ---- live ---- */

/* Queue ev for st; true when it ends the stream. */
static bool
stream_send_event(stream *st, event *ev, bool ends)
{
	frame	   *f = event_frame(ev);

	if (f == NULL) {			/* it resumes from its cursor on reconnect */
		client_fail(st->owner, "out of memory formatting an event");
		return true;
	}
	client_send(st->owner, frame_ref(f));
	stream_move(st, ev->id, ev->created_us);
	metrics.events_sent++;
	if (ends)
		client_disconnect(st->owner, true, CLOSE_END_EVENT, "a close event");
	return ends;
}

void
stream_deliver(hub_sub *s, event *ev, bool ends)
{
	stream	   *st = (stream *) s;

	assert(st->state == SS_LIVE);
	if (client_gone(st->owner))
		return;
	stream_send_event(st, ev, ends);
}

void
stream_deliver_run(hub_sub *s, const hub_run *run, size_t from)
{
	stream	   *st = (stream *) s;
	size_t		sent = from;	/* items handed to the client so far */

	assert(st->state == SS_LIVE && from < run->n);
	for (size_t p = 0; p < run->npieces && !client_gone(st->owner); p++) {
		size_t		start = p > 0 ? run->end[p - 1] : 0;

		if (run->end[p] <= from)
			continue;
		if (start >= from)
			client_send(st->owner, frame_ref(run->pieces[p]));
		else					/* it had the first ones already: the rest one by one */
			for (size_t i = from; i < run->end[p]; i++)
				client_send(st->owner, frame_ref(run->items[i].f));
		sent = run->end[p];
	}
	if (sent > from) {
		stream_move(st, run->items[sent - 1].id, run->items[sent - 1].created_us);
		metrics.events_sent += sent - from;
		metrics.run_sent += sent - from;
	}
}

void
stream_pruned(int64_t from, int64_t through)
{
	frame	   *f = wire_reset(from, through, through, 0, false);
	stream	   *st;

	metrics.resets++;
	TAILQ_FOREACH(st, &streams, link) {
		if (st->state != SS_LIVE)
			continue;
		if (f == NULL) {		/* it learns of the gap when it replays */
			client_fail(st->owner, "out of memory for a reset");
			continue;
		}
		client_send(st->owner, frame_ref(f));
		if (through > st->cursor)
			stream_move(st, through, LOGPOS_NO_ROW);
		/* markers in the gap are lost too: read the definition valid there */
		if (st->sid != 0)
			stream_redef(st);
	}
	frame_unref(f);
}

/*
 * The live link found another timeline forking after `fork`: every stream
 * whose position is above it gets a timeline reset and goes on after fork
 * (LIVE ones through the hub as the feed reads on, REPLAYING ones from the
 * log; a page already sent is dropped when it returns).
 */
void
stream_timeline(int64_t fork, int64_t fork_us)
{
	stream	   *st;

	TAILQ_FOREACH(st, &streams, link) {
		if ((st->state != SS_REPLAYING && st->state != SS_LIVE) || st->cursor <= fork)
			continue;
		stream_send_timeline(st, fork, fork_us, st->cursor);
		/*
		 * A subscription's markers after fork may be of the other timeline:
		 * it reads the definition valid at fork on this one.
		 */
		if (st->sid != 0) {
			stream_redef(st);
			continue;
		}
		if (st->sub.seen > fork)
			st->sub.seen = fork;	/* the hub delivers the new fork+1.. again */
		if (st->state == SS_REPLAYING)
			stream_step(st);
	}
}

/* ---- replay ---- */

/* Set when a replay waits for the charged memory to fall (mem.h). */
static bool mem_waiting;

typedef enum replay_offered {
	RO_SKIPPED,					/* not for st; the cursor moved past it */
	RO_QUEUED,
	RO_FULL,					/* no room in the queue: wait for the drain */
	RO_ENDED					/* a close event ended the stream, or OOM closed it */
} replay_offered;

/* Offer ev to st: queue it if it matches and fits (the cursor moves past it). */
static replay_offered
replay_offer(stream *st, event *ev)
{
	bool		ends;
	frame	   *f;

	if (event_is_marker(ev)) {
		stream_move(st, ev->id, ev->created_us);
		if (st->sid == 0 || subdef_sid(ev->data, ev->dlen) != st->sid)
			return RO_SKIPPED;
		return stream_redefine(st, ev) ? RO_SKIPPED : RO_ENDED;
	}
	if (!hub_matches(&st->sub, ev, &ends)) {
		if (ev->json_oom) {
			client_fail(st->owner, "out of memory parsing a payload for its filter");
			return RO_ENDED;
		}
		stream_move(st, ev->id, ev->created_us);
		return RO_SKIPPED;
	}
	if ((f = event_frame(ev)) == NULL) {
		client_fail(st->owner, "out of memory formatting an event");
		return RO_ENDED;
	}
	if (!client_room(st->owner, f->len + REPLAY_RESERVE)) {
		st->need = f->len + REPLAY_RESERVE;
		return RO_FULL;
	}
	st->need = 0;
	metrics.replayed++;
	return stream_send_event(st, ev, ends) ? RO_ENDED : RO_QUEUED;
}

typedef enum replay_progress {
	RP_CAUGHT_UP,
	RP_PAUSED,					/* queue full: resume on drain */
	RP_SLICED,					/* slice used up: run again at the tail */
	RP_ENDED,
	RP_STALE					/* the cache disagrees at the cursor: wait for the feed */
} replay_progress;

/*
 * Offer st the cached events after its cursor, within its queue budget and
 * one whole slice (so visits are equal and the queue stays fair), charged
 * to turn for what was queued and examined.  A visit always examines at
 * least one event unless the queue is full.
 */
static replay_progress
replay_from_ring(stream *st, replay_quota *turn)
{
	outq	   *q = &st->owner->q;
	size_t		n = ring_count();
	size_t		start = outq_bytes(q), seen = 0, queued;
	replay_progress rp = RP_CAUGHT_UP;
	int64_t		at_us = ring_us_at(st->cursor);

	/* both hold a row at the cursor, and not the same: another timeline */
	if (at_us != LOGPOS_UNKNOWN && at_us != LOGPOS_NO_ROW && st->cursor_us != LOGPOS_UNKNOWN &&
		st->cursor_us != LOGPOS_NO_ROW && at_us != st->cursor_us)
		return RP_STALE;
	for (size_t i = ring_find_after(st->cursor); i < n && rp == RP_CAUGHT_UP; i++) {
		if (seen > 0 && (outq_bytes(q) - start >= REPLAY_SLICE_BYTES ||
						 seen >= REPLAY_SLICE_EVENTS)) {
			rp = RP_SLICED;
			break;
		}
		seen++;
		switch (replay_offer(st, ring_at(i))) {
			case RO_SKIPPED:
			case RO_QUEUED:
				break;
			case RO_FULL:
				rp = RP_PAUSED;
				break;
			case RO_ENDED:
				rp = RP_ENDED;
				break;
		}
	}
	if (rp == RP_CAUGHT_UP)
		stream_move(st, ring_hi(), ring_hi_us());
	queued = outq_bytes(q) > start ? outq_bytes(q) - start : 0;
	turn->bytes -= queued < turn->bytes ? queued : turn->bytes;
	turn->events -= seen < turn->events ? seen : turn->events;
	return rp;
}

static void
replay_go_live(stream *st)
{
	frame	   *f = wire_ready(st->cursor, logpos_fp(st->cursor, st->cursor_us));

	assert(ring_valid() && st->cursor == ring_hi());
	if (f == NULL) {
		client_fail(st->owner, "out of memory for the ready event");
		return;
	}
	client_send(st->owner, f);
	stream_set_state(st, SS_LIVE);
}

static void
replay_park(stream *st)
{
	assert(!(st->flags & SF_QUEUED));
	if (st->flags & SF_PARKED)
		return;
	st->flags |= SF_PARKED;
	TAILQ_INSERT_TAIL(&parked, st, sched);
}

static void
replay_enqueue(stream *st)
{
	assert(!(st->flags & (SF_QUEUED | SF_PARKED)));
	st->flags |= SF_QUEUED;
	TAILQ_INSERT_TAIL(&runq, st, sched);
}

static stream *
replay_dequeue(void)
{
	stream	   *st = TAILQ_FIRST(&runq);

	if (st != NULL) {
		TAILQ_REMOVE(&runq, st, sched);
		st->flags &= (uint8_t) ~SF_QUEUED;
	}
	return st;
}

/* Take st off the parked list or the run queue. */
static void
stream_forget(stream *st)
{
	if (st->flags & SF_PARKED)
		TAILQ_REMOVE(&parked, st, sched);
	else if (st->flags & SF_QUEUED)
		TAILQ_REMOVE(&runq, st, sched);
	st->flags &= (uint8_t) ~(SF_PARKED | SF_QUEUED);
}

void
stream_advanced(void)
{
	stream	   *st;

	while ((st = TAILQ_FIRST(&parked)) != NULL) {
		TAILQ_REMOVE(&parked, st, sched);
		st->flags &= (uint8_t) ~SF_PARKED;
		stream_step(st);
	}
}

/*
 * Paced by the client's drain: a stream runs when its client's queue is
 * empty, or at most half full with room for what it waits to queue next.
 */
static bool
replay_runnable(const stream *st)
{
	const client *c = st->owner;

	return st->state == SS_REPLAYING && !client_gone(c) && st->job == NULL &&
		(c->q.n == 0 || (outq_bytes(&c->q) <= cfg.client_queue / 2 && client_room(c, st->need)));
}

void
stream_mem_check(void)
{
	if (mem_waiting && !mem_over_hard()) {
		mem_waiting = false;
		stream_advanced();
	}
}

void
stream_step(stream *st)
{
	if (replay_runnable(st) && !(st->flags & (SF_QUEUED | SF_PARKED)))
		replay_enqueue(st);
}

void
stream_drained(client *c)
{
	if (c->st != NULL)
		stream_step(c->st);
}

static void stream_page(stream *st);

/* One visit of the run queue; true when st has more to do at once. */
static bool
replay_advance(stream *st, replay_quota *turn)
{
	if (!replay_runnable(st))
		return false;			/* a drain or a page resumes it */
	if (mem_over_hard()) {
		mem_waiting = true;		/* stream_mem_check resumes it */
		replay_park(st);
		return false;
	}
	if (st->redef) {
		stream_redef_read(st);	/* its answer resumes the replay */
		return false;
	}
	if (!ring_valid() || st->cursor > ring_hi()) {
		replay_park(st);
		return false;
	}
	if (st->cursor < ring_lo()) {
		stream_page(st);
		return false;
	}
	switch (replay_from_ring(st, turn)) {
		case RP_CAUGHT_UP:
			if (!client_room(st->owner, REPLAY_RESERVE)) {
				st->need = REPLAY_RESERVE;	/* `ready` waits for the drain */
				return false;
			}
			replay_go_live(st);
			return false;
		case RP_STALE:
			replay_park(st);	/* the live link's next fetch finds the change */
			return false;
		case RP_SLICED:
			return true;
		case RP_PAUSED:
		case RP_ENDED:
			return false;
	}
	return false;
}

bool
stream_run(void)
{
	replay_quota turn = {REPLAY_TURN_BYTES, REPLAY_TURN_EVENTS};
	stream	   *st;

	while (turn.bytes > 0 && turn.events > 0 && (st = replay_dequeue()) != NULL) {
		if (replay_advance(st, &turn))
			replay_enqueue(st);
	}
	return !TAILQ_EMPTY(&runq);
}

bool
stream_waiting(void)
{
	return !TAILQ_EMPTY(&runq);
}

static void
stream_page_done(db_job *job, PGresult *res)
{
	int64_t		live_at_send, live_us = job->mark_us;
	stream	   *st = job->owner;
	uint64_t	job_timeline = st ? st->job_timeline : 0;
	int			rows, got = 0;
	int64_t		pruned;

	st = stream_claim(job, &live_at_send);
	if (st == NULL)
		return;
	assert(st->state == SS_REPLAYING);
	metrics.replay_pages++;
	if (res != NULL && (job_timeline != ring_timeline() || st->redef)) {
		stream_step(st);		/* read before a timeline change or a reset: read again */
		return;
	}
	/* a failed page never moves the cursor: the client resumes from it */
	if (!logread_fetch_ok(res, st->cursor)) {
		const char *msg = res == NULL ? "stopped" :
			PQresultStatus(res) == PGRES_TUPLES_OK ? "not an answer for the cursor" :
			PQresultErrorMessage(res);
		char		detail[200];

		snprintf(detail, sizeof(detail), "replay page failed: %.*s", (int) strcspn(msg, "\n"), msg);
		client_disconnect(st->owner, false, CLOSE_DATABASE, detail);
		return;
	}
	rows = PQntuples(res);
	pruned = logread_pruned(res);
	if (st->cursor > pruned && st->cursor_us != LOGPOS_UNKNOWN &&
		logread_us_at(res, st->cursor) != st->cursor_us) {
		/* the log changed under this replay; its client resumes and is checked */
		client_disconnect(st->owner, false, CLOSE_TIMELINE,
						  "a replay's position is gone from the log (another timeline)");
		return;
	}
	if (pruned > st->cursor) {
		if (!client_room(st->owner, REPLAY_RESERVE)) {
			st->need = REPLAY_RESERVE;	/* read the page again after the drain */
			stream_step(st);
			return;
		}
		stream_send_reset(st, st->cursor + 1, pruned);
		if (st->sid != 0) {		/* its markers in the gap are gone */
			stream_redef(st);
			return;
		}
	}
	for (int i = 0; i < rows; i++) {
		event	   *ev;
		int64_t		id;
		size_t		bound = logread_frame_bound(res, i, &id);
		replay_offered ro;

		if (id <= st->cursor)
			continue;			/* the empty row, or already sent */
		if (!client_room(st->owner, bound + REPLAY_RESERVE)) {
			st->need = bound + REPLAY_RESERVE;
			stream_step(st);	/* the rest is read again after the drain */
			return;
		}
		switch (logread_event(res, i, &ev)) {
			case LR_NONE:
				continue;
			case LR_OOM:
				client_fail(st->owner, "out of memory reading a replay page");
				return;
			case LR_EVENT:
				break;
		}
		got++;
		ro = replay_offer(st, ev);
		event_free(ev);
		if (ro == RO_ENDED)
			return;
		if (ro == RO_FULL) {	/* the bound above makes this rare */
			stream_step(st);
			return;
		}
	}
	/* An empty page proves nothing exists up to what the live link had seen. */
	if (got == 0 && live_at_send > st->cursor)
		stream_move(st, live_at_send, live_us);
	stream_step(st);
}

/* Ask the log for the page after st's cursor (st's one job). */
static void
stream_page(stream *st)
{
	db_job	   *job;

	if (st->job != NULL)
		return;					/* a page is already on its way */
	{
		size_t		used = outq_bytes(&st->owner->q) + REPLAY_RESERVE;

		/* a page brings at most the room left in the queue (and one row) */
		job = logread_fetch(st->cursor, LOGREAD_PAGE_ROWS,
							used < cfg.client_queue ? cfg.client_queue - used : 1,
							stream_page_done, st);
	}
	if (job == NULL) {
		client_fail(st->owner, "out of memory asking for a replay page");
		return;
	}
	job->mark = ring_valid() ? ring_hi() : -1;
	job->mark_us = ring_valid() ? ring_hi_us() : LOGPOS_UNKNOWN;
	stream_submit(st, job);
}
