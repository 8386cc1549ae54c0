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
 *    stream that must end asks its client to end at the next flush).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "logpos.h"
#include "mem.h"
#include "metrics.h"
#include "resp.h"
#include "ring.h"
#include "sse_filter.h"
#include "sse_match.h"
#include "stream.h"
#include "wire.h"
#include "work.h"

TAILQ_HEAD(stream_list, stream);

static struct stream_list streams = TAILQ_HEAD_INITIALIZER(streams);
static struct stream_list parked = TAILQ_HEAD_INITIALIZER(parked);
static struct stream_list runq = TAILQ_HEAD_INITIALIZER(runq);
static size_t nstreams;

/*
 * Subscription changes noticed so far.  A change notice for a stream whose
 * open is still in flight finds no stream with that sid yet and is dropped,
 * so an open records this count when it is sent, and the answer reloads the
 * definition if the count moved.  The reload runs on the work link after
 * the open, so it sees the change.
 */
static uint64_t sub_changes;

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
	[SS_LIVE] = 1 << SS_ENDED,
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
		if (!hub_add(&st->sub)) {
			log_error("out of memory adding a subscription to the hub");
			client_doom(st->owner);
		}
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
stream_claim(db_job *job, int64_t *aux)
{
	stream	   *st = job->owner;

	if (aux != NULL)
		*aux = job->aux;
	if (st != NULL) {
		assert(st->job == job);
		st->job = NULL;
	}
	db_job_free(job);
	return st;
}

/* ---- definitions ---- */

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

/* Patterns from a JSON array of strings; NULL unless all are valid. */
static char **
stream_patterns(const char *json, size_t *n, bool *oom)
{
	uint64_t	fails = mem_json_failures();
	json_t	   *a = json ? json_loads(json, 0, NULL) : NULL;
	char	  **v = NULL;
	size_t		i = 0;

	*oom = json == NULL || (a == NULL && mem_json_failures() != fails);
	if (json_is_array(a) && json_array_size(a) > 0 &&
		!(*oom = (v = calloc(json_array_size(a), sizeof(char *))) == NULL)) {
		for (; i < json_array_size(a); i++) {
			const char *p = json_string_value(json_array_get(a, i));

			if (p == NULL || sse_pattern_check(p, strlen(p)) != SSE_NAME_OK)
				break;
			if ((v[i] = strdup(p)) == NULL) {
				*oom = true;
				break;
			}
		}
		if (i < json_array_size(a)) {
			while (i > 0)
				free(v[--i]);
			free(v);
			v = NULL;
		}
	}
	*n = i;
	json_decref(a);
	return v;
}

spec_status
stream_set_spec(stream *st, const char *channels_json, const char *filter_json,
				const char **why)
{
	size_t		n;
	bool		pats_oom;
	char	  **pats = stream_patterns(channels_json, &n, &pats_oom);
	sse_filter *f = NULL;
	sse_json_status fs = SSE_JSON_OK;
	const char *msg = NULL;

	*why = NULL;
	/* a filter the matcher cannot evaluate exactly refuses the stream */
	if (filter_json != NULL)
		fs = sse_filter_compile(filter_json, strlen(filter_json), &f, &msg);
	if (pats == NULL || fs != SSE_JSON_OK) {
		for (size_t i = 0; pats && i < n; i++)
			free(pats[i]);
		free(pats);
		sse_filter_free(f);
		*why = fs != SSE_JSON_OK ? msg : pats_oom ? "out of memory" : "invalid channel patterns";
		if (fs == SSE_JSON_NOMEM || (pats == NULL && pats_oom))
			return SPEC_NOMEM;	/* never fall back to no filter */
		return fs != SSE_JSON_OK ? SPEC_BAD_FILTER : SPEC_BAD_CHANNELS;
	}
	stream_free_spec(st);
	st->sub.patterns = pats;
	st->sub.npatterns = n;
	hub_sub_prepare(&st->sub);
	if (f != NULL && sse_filter_is_empty(f)) {
		sse_filter_free(f);
		f = NULL;
	}
	st->sub.filter = f;
	return SPEC_OK;
}

/* A definition change: REPLAYING or LIVE keeps its state; false if invalid. */
static bool
stream_redefine(stream *st, const open_info *info)
{
	bool		live = st->state == SS_LIVE;
	const char *why;
	spec_status ss;

	assert(st->state == SS_REPLAYING || st->state == SS_LIVE);
	if (live)
		hub_remove(&st->sub);	/* the hub must not see the spec change */
	ss = stream_set_spec(st, info->channels_json, info->filter_json, &why);
	if (ss != SPEC_OK)
		log_warn("ending a stream: its subscription's new definition cannot be used: %s", why);
	if (live && !hub_add(&st->sub))
		client_doom(st->owner);
	return ss == SPEC_OK;
}

/*
 * Subscription reloads.  A change notice ("s <sid>", which any database
 * role can send) costs O(1): it only records a hint.  At most one reload
 * query is in flight; it asks for at most RELOAD_PAGE of the subscriptions
 * in use among the hints, and whatever arrives meanwhile waits as the one
 * pending set for the next query.  Hints for subscriptions no stream uses
 * are dropped when the query is built; when more than RELOAD_HINTS pile up
 * (or the live link relistened) the pending set becomes "every subscription
 * in use", reloaded a page at a time in sid order.  The query goes out at
 * the next flush, after the opens already queued on the work link, so a
 * notification flood costs one bounded query at a time and never holds
 * opens back by more than one such query.
 */
#define RELOAD_PAGE 1000
#define RELOAD_HINTS 4096

static struct {
	int64_t		hint[RELOAD_HINTS];
	size_t		nhint;
	bool		all;			/* every sid in use above all_after */
	int64_t		all_after;
	bool		inflight;
	int64_t	   *sent;			/* sorted sids of the query in flight */
	size_t		nsent;
} rl;

static int
stream_cmp_sid(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a,
				y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* Sort and drop duplicates; returns the new length. */
static size_t
sid_unique(int64_t *v, size_t n)
{
	size_t		k = 0;

	qsort(v, n, sizeof(*v), stream_cmp_sid);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || v[i] != v[k - 1])
			v[k++] = v[i];
	return k;
}

static bool
sid_member(const int64_t *v, size_t n, int64_t sid)
{
	return n > 0 && bsearch(&sid, v, n, sizeof(*v), stream_cmp_sid) != NULL;
}

/* Record that sid may have changed. */
static void
stream_reload(int64_t sid)
{
	if (rl.all && sid > rl.all_after)
		return;					/* the pending sweep covers it */
	if (rl.nhint == RELOAD_HINTS) {
		rl.all = true;			/* too many: sweep every subscription in use */
		rl.all_after = 0;
		rl.nhint = 0;
		return;
	}
	rl.hint[rl.nhint++] = sid;
}

/* Apply a reloaded (or vanished, info->found false) definition to st. */
static void
stream_apply(stream *st, const open_info *info)
{
	if (!info->found || info->expired) {
		log_info("ending a stream: its subscription was dropped or expired");
		client_end(st->owner);
	} else if (!stream_redefine(st, info))
		client_end(st->owner);
}

static void
stream_reload_done(db_job *job, PGresult *res)
{
	int			rows;
	int64_t    *got = NULL;
	open_info  *infos = NULL;
	stream	   *st;

	db_job_free(job);
	rl.inflight = false;
	if (res == NULL || !logread_reload_ok(res)) {
		if (res != NULL)
			log_warn("reloading subscriptions failed: %s", PQresultErrorMessage(res));
		for (size_t i = 0; i < rl.nsent; i++)
			stream_reload(rl.sent[i]);	/* try them again */
		goto out;
	}
	rows = PQntuples(res);
	if (rows > 0 && ((got = malloc((size_t) rows * sizeof(*got))) == NULL ||
					 (infos = calloc((size_t) rows, sizeof(*infos))) == NULL)) {
		log_error("out of memory applying reloaded subscriptions");
		for (size_t i = 0; i < rl.nsent; i++)
			stream_reload(rl.sent[i]);
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		logread_reload_row(res, i, &infos[i]);
		got[i] = infos[i].sid;	/* ORDER BY sid: sorted */
	}
	TAILQ_FOREACH(st, &streams, link) {
		const int64_t *hit;
		open_info	gone = {.found = false};

		if (st->sid == 0 || (st->state != SS_REPLAYING && st->state != SS_LIVE) ||
			!sid_member(rl.sent, rl.nsent, st->sid))
			continue;
		hit = rows > 0 ? bsearch(&st->sid, got, (size_t) rows, sizeof(*got), stream_cmp_sid) : NULL;
		stream_apply(st, hit ? &infos[hit - got] : &gone);
	}
	for (int i = 0; i < rows; i++)
		open_info_clear(&infos[i]);
out:
	free(got);
	free(infos);
	free(rl.sent);
	rl.sent = NULL;
	rl.nsent = 0;
}

/* Send the pending reload if none is in flight (called at every flush). */
static void
stream_reload_kick(void)
{
	size_t		nuse = 0, n = 0, take;
	int64_t    *use, *c;
	stream	   *st;
	db_job	   *job;

	if (rl.inflight || (!rl.all && rl.nhint == 0))
		return;
	TAILQ_FOREACH(st, &streams, link)
		nuse += st->sid != 0;
	if (nuse == 0) {
		rl.all = false;
		rl.nhint = 0;
		return;
	}
	use = malloc(nuse * sizeof(*use));
	c = malloc((nuse + rl.nhint) * sizeof(*c));
	if (use == NULL || c == NULL) {
		free(use);
		free(c);
		return;					/* the next flush tries again */
	}
	nuse = 0;
	TAILQ_FOREACH(st, &streams, link)
		if (st->sid != 0)
			use[nuse++] = st->sid;
	nuse = sid_unique(use, nuse);
	for (size_t i = 0; rl.all && i < nuse; i++)
		if (use[i] > rl.all_after)
			c[n++] = use[i];
	for (size_t i = 0; i < rl.nhint; i++)
		if (sid_member(use, nuse, rl.hint[i]))
			c[n++] = rl.hint[i];
	free(use);
	n = sid_unique(c, n);
	take = n < RELOAD_PAGE ? n : RELOAD_PAGE;
	/* what is not sent stays pending: the rest of the sweep, or hints */
	rl.nhint = 0;
	if (n > take && rl.all)
		rl.all_after = c[take - 1];
	else {
		for (size_t i = take; i < n; i++)
			rl.hint[rl.nhint++] = c[i];
		rl.all = false;
	}
	if (take == 0 || (job = logread_reload(c, take, stream_reload_done)) == NULL) {
		if (take > 0)
			for (size_t i = 0; i < take; i++)
				stream_reload(c[i]);
		free(c);
		return;
	}
	rl.sent = c;
	rl.nsent = take;
	rl.inflight = true;
	metrics.sub_reloads++;
	work_submit(job);
}

void
stream_sub_changed(int64_t sid)
{
	sub_changes++;
	if (sid > 0)
		stream_reload(sid);
}

/* Notices may have been lost while the link was down: reload everything in use. */
void
stream_relistened(void)
{
	sub_changes++;				/* the opens in flight re-check as well */
	rl.all = true;
	rl.all_after = 0;
	rl.nhint = 0;
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
	if (last_event_id >= 0)
		c = last_event_id;
	else
		c = is_sub ? info->start_id : info->head;
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
									(unsigned long) cfg.retry));
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

/* The open answer arrived: 404, 204, or begin replaying. */
static void
stream_opened(stream *st, const open_info *info)
{
	client	   *c = st->owner;
	int64_t		cursor = 0, cursor_us = LOGPOS_UNKNOWN, from = st->last_event_id;
	bool		forked = stream_resume_forked(info, st->last_event_id, st->last_event_fp,
											  st->last_event_has_fp);

	/*
	 * A position of another timeline: the fork point is unknown, so the
	 * stream starts again from the subscription's start (ad hoc: the oldest
	 * retained row) after a timeline reset; it never skips ahead.
	 */
	if (forked)
		from = st->sub_id != NULL ? info->start_id : info->pruned;
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
	if (st->sub_id != NULL) {
		st->sid = info->sid;
		const char *why;

		switch (stream_set_spec(st, info->channels_json, info->filter_json, &why)) {
			case SPEC_OK:
				break;
			case SPEC_NOMEM:
				client_respond_error(c, 503, "unavailable", "out of memory");
				return;
			case SPEC_BAD_FILTER:
				/* never stream unfiltered: refuse, the client cannot fix it */
				log_warn("refusing a stream: its subscription's filter %s", why);
				client_respond_error(c, 500, "bad_subscription",
									 "the subscription's filter cannot be evaluated");
				return;
			case SPEC_BAD_CHANNELS:
				log_warn("a subscription has an invalid definition");
				client_respond_error(c, 404, "not_found", "unknown or expired subscription");
				return;
		}
		/* a change noticed while the open was in flight may be missing */
		if (st->open_changes != sub_changes)
			stream_reload(st->sid);
	}
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
				 "starting again after %" PRId64, st->last_event_id, cursor);
	log_debug("stream %p: from %" PRId64, (void *) st, cursor);
	stream_begin_at(st, cursor, cursor_us, info->pruned, forked ? st->last_event_id : -1);
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
		/* read before the live link saw the timeline change: ask again */
		db_job	   *again = logread_open(st->sub_id, st->sub.patterns, st->sub.npatterns,
										 st->last_event_id, stream_open_done, st);

		if (again == NULL)
			client_respond_error(st->owner, 503, "unavailable", "out of memory");
		else if (!stream_submit_now(st, again))
			client_respond_error(st->owner, 503, "unavailable", "the database is unavailable");
		return;
	}
	if (!logread_open_answer(res, st->sub_id != NULL, &info)) {
		if (res != NULL)
			log_warn("opening a stream failed: %.*s", (int) strcspn(PQresultErrorMessage(res), "\n"),
					 PQresultErrorMessage(res));
		else
			log_info("opening a stream failed: no answer from the database within --db-timeout");
		client_respond_error(st->owner, 503, "unavailable", "the database lookup failed");
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
	st->open_changes = sub_changes;
	job = logread_open(st->sub_id, st->sub.patterns, st->sub.npatterns, st->last_event_id,
					   stream_open_done, st);
	if (job == NULL)
		client_respond_error(c, 503, "unavailable", "out of memory");
	else if (!stream_submit_now(st, job))
		client_respond_error(c, 503, "unavailable", "the database is unavailable");
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
	TAILQ_REMOVE(&streams, st, link);
	nstreams--;
	stream_free_spec(st);
	free(st->sub_id);
	free(st);
	c->st = NULL;
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
		client_end(st->owner);
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

	if (event_is_marker(ev) || !hub_matches(&st->sub, ev, &ends)) {
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

	stream_reload_kick();
	while (turn.bytes > 0 && turn.events > 0 && (st = replay_dequeue()) != NULL) {
		if (replay_advance(st, &turn))
			replay_enqueue(st);
	}
	return !TAILQ_EMPTY(&runq);
}

static void
stream_page_done(db_job *job, PGresult *res)
{
	int64_t		live_at_send, live_us = job->aux2;
	stream	   *st = job->owner;
	uint64_t	job_timeline = st ? st->job_timeline : 0;
	int			rows, got = 0;
	int64_t		pruned;

	st = stream_claim(job, &live_at_send);
	if (st == NULL)
		return;
	assert(st->state == SS_REPLAYING);
	metrics.replay_pages++;
	if (!logread_fetch_ok(res)) {
		log_warn("replay page failed: %s", res ? PQresultErrorMessage(res) : "stopped");
		client_close(st->owner);
		return;
	}
	if (job_timeline != ring_timeline()) {
		stream_step(st);		/* read before a timeline change: read again */
		return;
	}
	rows = PQntuples(res);
	pruned = logread_pruned(res);
	if (st->cursor > pruned && st->cursor_us != LOGPOS_UNKNOWN &&
		logread_us_at(res, st->cursor) != st->cursor_us) {
		/* the log changed under this replay; its client resumes and is checked */
		log_info("a replay's position is gone from the log (another timeline); closing it");
		client_close(st->owner);
		return;
	}
	if (pruned > st->cursor) {
		if (!client_room(st->owner, REPLAY_RESERVE)) {
			st->need = REPLAY_RESERVE;	/* read the page again after the drain */
			stream_step(st);
			return;
		}
		stream_send_reset(st, st->cursor + 1, pruned);
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
		client_close(st->owner);
		return;
	}
	job->aux = ring_valid() ? ring_hi() : -1;
	job->aux2 = ring_valid() ? ring_hi_us() : LOGPOS_UNKNOWN;
	stream_submit(st, job);
}
