/*
 * replay.c - opening a stream and catching it up to the live cursor.
 *
 * A REPLAYING client has a cursor c: every matching event <= c is queued.
 * replay_step advances it from the replay cache when the cache covers c
 * (ring_lo <= c), otherwise from the log one page at a time (work link),
 * and stops whenever the client's queue holds replay_budget() bytes (the
 * write callback resumes it).
 *
 * Scheduling: replay_step only appends the client to a FIFO run queue;
 * replay_run, called once per loop turn after that turn's live output was
 * flushed, serves it round-robin with a slice per visit and a budget per
 * turn (replay.h), putting a client that still has work back at the tail.
 * So a loop turn stays short, live events go out every turn, and no
 * replaying client starves.  A client is in at most one of the parked list
 * and the run queue (CF_PARKED, CF_QUEUED), linked through park_next.  When c reaches the live cursor (ring_hi) it sends
 * `event: ready` and joins the hub in the same loop turn, so no event can
 * fall between replay and live.  A client whose cursor is ahead of the live
 * cursor parks until the live link catches up.
 *
 * Invariants: the hand-over to LIVE happens only with c == ring_hi(); a
 * reset is sent whenever pruned_through > c, before anything after it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "replay.h"
#include "resp.h"
#include "ring.h"
#include "sse_filter.h"
#include "sse_match.h"
#include "work.h"

static client *parked;
static struct {
	client	   *head;
	client	   *tail;
} runq;

/* What one loop turn may still spend on replays. */
typedef struct replay_quota {
	size_t		bytes;
	size_t		events;
} replay_quota;

static size_t
replay_budget(void)
{
	size_t		b = cfg.client_queue / 2;

	return b < 4096 ? 4096 : b > (256 << 10) ? (256 << 10) : b;
}

frame *
replay_reset_frame(int64_t from, int64_t through)
{
	metrics.resets++;
	return frame_printf("id: %" PRId64 "\nevent: reset\ndata: {\"lost_from\":%" PRId64
						",\"lost_through\":%" PRId64 "}\n\n", through, from, through);
}

replay_decision
replay_decide(const open_info *info, bool is_sub, int64_t last_event_id, int64_t *cursor)
{
	int64_t		c;

	if (!info->found || info->expired)
		return REPLAY_NOT_FOUND;
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
		return REPLAY_GONE;
	if (info->closed && info->close_id < 0)
		return REPLAY_GONE;		/* closed, and the close row was pruned */
	return REPLAY_STREAM;
}

static void
replay_free_spec(stream *st)
{
	for (size_t i = 0; i < st->sub.npatterns; i++)
		free(st->sub.patterns[i]);
	free(st->sub.patterns);
	hub_sub_unprepare(&st->sub);
	json_decref(st->sub.filter);
	st->sub.patterns = NULL;
	st->sub.npatterns = 0;
	st->sub.filter = NULL;
}

/* Patterns from a JSON array of strings; NULL unless all are valid. */
static char **
replay_patterns(const char *json, size_t *n)
{
	json_t	   *a = json ? json_loads(json, 0, NULL) : NULL;
	char	  **v = NULL;
	size_t		i = 0;

	if (json_is_array(a) && json_array_size(a) > 0 &&
		(v = calloc(json_array_size(a), sizeof(char *))) != NULL) {
		for (; i < json_array_size(a); i++) {
			const char *p = json_string_value(json_array_get(a, i));

			if (p == NULL || sse_pattern_check(p, strlen(p)) != SSE_NAME_OK ||
				(v[i] = strdup(p)) == NULL)
				break;
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

bool
replay_set_spec(stream *st, const char *channels_json, const char *filter_json)
{
	size_t		n;
	char	  **pats = replay_patterns(channels_json, &n);
	json_t	   *f = filter_json ? sse_json_parse(filter_json, strlen(filter_json)) : NULL;

	if (pats == NULL || (f != NULL && !json_is_object(f))) {
		for (size_t i = 0; pats && i < n; i++)
			free(pats[i]);
		free(pats);
		json_decref(f);
		return false;
	}
	replay_free_spec(st);
	st->sub.patterns = pats;
	st->sub.npatterns = n;
	hub_sub_prepare(&st->sub);
	if (f != NULL && json_object_size(f) == 0) {
		json_decref(f);
		f = NULL;
	}
	st->sub.filter = f;
	return true;
}

/* Validate and adopt the subscription's definition; false on bad data. */
static bool
replay_adopt(client *c, const open_info *info)
{
	if (c->st->sub_id == NULL)
		return true;
	c->st->sid = info->sid;
	return replay_set_spec(c->st, info->channels_json, info->filter_json);
}

static void
replay_begin(client *c, const open_info *info, int64_t cursor)
{
	client_send(c, resp_stream_head(c->st->origin, (unsigned long) cfg.retry));
	c->cursor = cursor;
	if (info->pruned > cursor) {
		client_send(c, replay_reset_frame(cursor + 1, info->pruned));
		c->cursor = info->pruned;
	}
	client_set_state(c, CS_REPLAYING);
	replay_step(c);
}

void
replay_open(client *c, open_info *info)
{
	int64_t		cursor = 0;

	switch (replay_decide(info, c->st->sub_id != NULL, c->st->last_event_id, &cursor)) {
		case REPLAY_NOT_FOUND:
			client_respond_error(c, 404, "not_found", "unknown or expired subscription");
			break;
		case REPLAY_GONE:
			client_send(c, resp_empty(204, c->st->origin, 0));
			client_set_state(c, CS_CLOSING);
			break;
		case REPLAY_STREAM:
			if (!replay_adopt(c, info)) {
				log_warn("a subscription has an invalid definition");
				client_respond_error(c, 404, "not_found", "unknown or expired subscription");
				break;
			}
			log_debug("client %p: stream from %" PRId64, (void *) c, cursor);
			/* a change noticed while the open was in flight may be missing */
			if (c->st->sub_id != NULL && c->st->open_changes != work_sub_changes())
				work_reload(c->st->sid);
			replay_begin(c, info, cursor);
			break;
	}
	free(info->channels_json);
	free(info->filter_json);
	info->channels_json = info->filter_json = NULL;
}

/* Queue e for c if it matches; returns true when it ends the stream. */
static bool
replay_offer(client *c, event *ev)
{
	bool		ends;

	c->cursor = ev->id;
	/* "$sub" rows mark subscription changes: passed over, never delivered */
	if (ev->chlen > 0 && ev->channel[0] == '$')
		return false;
	if (!hub_matches(&c->st->sub, ev, &ends))
		return false;
	client_send(c, frame_ref(event_frame(ev)));
	metrics.replayed++;
	metrics.events_sent++;
	if (ends)
		client_end(c);
	return ends;
}

typedef enum replay_progress {
	RP_CAUGHT_UP,
	RP_PAUSED,					/* queue full: resume on write */
	RP_SLICED,					/* slice used up: run again at the tail */
	RP_ENDED
} replay_progress;

/*
 * Offer c the cached events after its cursor, within its queue budget and
 * one whole slice (so visits are equal and the queue stays fair), charged
 * to turn for what was queued and examined.  A visit always examines at
 * least one event unless the queue is full.
 */
static replay_progress
replay_from_ring(client *c, replay_quota *turn)
{
	size_t		n = ring_count(), budget = replay_budget();
	size_t		start = outq_bytes(&c->q), seen = 0, queued;
	replay_progress rp = RP_CAUGHT_UP;

	for (size_t i = ring_find_after(c->cursor); i < n; i++) {
		if (outq_bytes(&c->q) >= budget) {
			rp = RP_PAUSED;
			break;
		}
		if (seen > 0 && (outq_bytes(&c->q) - start >= REPLAY_SLICE_BYTES ||
						 seen >= REPLAY_SLICE_EVENTS)) {
			rp = RP_SLICED;
			break;
		}
		seen++;
		if (replay_offer(c, ring_at(i))) {
			rp = RP_ENDED;
			break;
		}
	}
	if (rp == RP_CAUGHT_UP)
		c->cursor = ring_hi();
	queued = outq_bytes(&c->q) > start ? outq_bytes(&c->q) - start : 0;
	turn->bytes -= queued < turn->bytes ? queued : turn->bytes;
	turn->events -= seen < turn->events ? seen : turn->events;
	return rp;
}

static void
replay_go_live(client *c)
{
	client_send(c, frame_printf("id: %" PRId64 "\nevent: ready\ndata: {\"head\":%" PRId64 "}\n\n",
								c->cursor, c->cursor));
	client_set_state(c, CS_LIVE);
}

static void
replay_park(client *c)
{
	if (c->flags & CF_PARKED)
		return;
	c->flags |= CF_PARKED;
	c->park_next = parked;
	parked = c;
}

static void
replay_enqueue(client *c)
{
	c->flags |= CF_QUEUED;
	c->park_next = NULL;
	if (runq.tail)
		runq.tail->park_next = c;
	else
		runq.head = c;
	runq.tail = c;
}

static client *
replay_dequeue(void)
{
	client	   *c = runq.head;

	if (c == NULL)
		return NULL;
	runq.head = c->park_next;
	if (runq.head == NULL)
		runq.tail = NULL;
	c->park_next = NULL;
	c->flags &= (uint16_t) ~CF_QUEUED;
	return c;
}

void
replay_forget(client *c)
{
	client	   *prev = NULL;

	if (c->flags & CF_PARKED) {
		replay_unpark(c);
		return;
	}
	if (!(c->flags & CF_QUEUED))
		return;
	for (client *p = runq.head; p; prev = p, p = p->park_next) {
		if (p != c)
			continue;
		if (prev)
			prev->park_next = c->park_next;
		else
			runq.head = c->park_next;
		if (runq.tail == c)
			runq.tail = prev;
		break;
	}
	c->park_next = NULL;
	c->flags &= (uint16_t) ~CF_QUEUED;
}

void
replay_unpark(client *c)
{
	for (client **pp = &parked; *pp; pp = &(*pp)->park_next) {
		if (*pp == c) {
			*pp = c->park_next;
			break;
		}
	}
	c->park_next = NULL;
	c->flags &= (uint16_t) ~CF_PARKED;
}

void
replay_unpark_all(void)
{
	client	   *list = parked;

	parked = NULL;
	while (list != NULL) {
		client	   *c = list;

		list = c->park_next;
		c->park_next = NULL;
		c->flags &= (uint16_t) ~CF_PARKED;
		replay_step(c);
	}
}

static bool
replay_runnable(const client *c)
{
	return c->state == CS_REPLAYING && !(c->flags & (CF_ENDING | CF_DOOMED | CF_CLOSED)) &&
		c->st->job == NULL && outq_bytes(&c->q) < replay_budget();
}

void
replay_step(client *c)
{
	if (replay_runnable(c) && !(c->flags & (CF_QUEUED | CF_PARKED)))
		replay_enqueue(c);
}

/* One visit of the run queue; true when c has more to do at once. */
static bool
replay_advance(client *c, replay_quota *turn)
{
	if (!replay_runnable(c))
		return false;			/* a write callback or a page resumes it */
	if (!ring_valid() || c->cursor > ring_hi()) {
		replay_park(c);
		return false;
	}
	if (c->cursor < ring_lo()) {
		work_page(c);
		return false;
	}
	switch (replay_from_ring(c, turn)) {
		case RP_CAUGHT_UP:
			replay_go_live(c);
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
replay_run(void)
{
	replay_quota turn = {REPLAY_TURN_BYTES, REPLAY_TURN_EVENTS};
	client	   *c;

	while (turn.bytes > 0 && turn.events > 0 && (c = replay_dequeue()) != NULL) {
		if (replay_advance(c, &turn))
			replay_enqueue(c);
	}
	return runq.head != NULL;
}

/* One row of a page as a temporary event (NULL for the empty LEFT JOIN row). */
static event *
replay_row(PGresult *res, int row)
{
	if (PQgetisnull(res, row, 1))
		return NULL;
	return event_new(strtoll(PQgetvalue(res, row, 1), NULL, 10),
					 strtoll(PQgetvalue(res, row, 5), NULL, 10),
					 PQgetvalue(res, row, 2), (size_t) PQgetlength(res, row, 2),
					 PQgetisnull(res, row, 3) ? NULL : PQgetvalue(res, row, 3),
					 (size_t) PQgetlength(res, row, 3),
					 PQgetvalue(res, row, 4), (size_t) PQgetlength(res, row, 4));
}

void
replay_page(client *c, PGresult *res, int64_t live_at_send)
{
	int			rows, got = 0;
	int64_t		pruned;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
		log_warn("replay page failed: %s", res ? PQresultErrorMessage(res) : "stopped");
		client_close(c);
		return;
	}
	rows = PQntuples(res);
	pruned = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (pruned > c->cursor) {
		client_send(c, replay_reset_frame(c->cursor + 1, pruned));
		c->cursor = pruned;
	}
	for (int i = 0; i < rows; i++) {
		event	   *ev = replay_row(res, i);
		bool		ended = false;

		if (ev != NULL && ev->id > c->cursor) {
			got++;
			ended = replay_offer(c, ev);
		}
		event_free(ev);
		if (ended)
			return;
	}
	/* An empty page proves nothing exists up to what the live link had seen. */
	if (got == 0 && live_at_send > c->cursor)
		c->cursor = live_at_send;
	replay_step(c);
}
