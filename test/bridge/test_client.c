/*
 * test_client.c - output queue limits on a client, the opening decision,
 * the replay cache, and the replay scheduler's budget and fairness.  Links
 * the stream layer and what it stands on (run.sh lists the files); the
 * database links are never started.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"
#include "client.h"
#include "config.h"
#include "mem.h"
#include "metrics.h"
#include "ring.h"
#include "sse_filter.h"
#include "stream.h"
#include "work.h"

static uv_loop_t *loop;
static db_link work;			/* never started: its jobs are answered here */
static int	finish_calls;

static void
client_closed(void)
{
	finish_calls++;
}

/*
 * The end of a test whose clients were all closed: the closes complete, no
 * client or stream is left, and the replay cache and the hub are freed.
 */
static void
test_done(void)
{
	client_flush_pending();
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(client_count, 0);
	assert_int_equal(stream_count(), 0);
	ring_shutdown();
	hub_shutdown();
}

/* A streaming client without a stream: only its output queue matters. */
static client *
fake_client(bool unpaced)
{
	client	   *c = client_new();

	assert_non_null(c);
	c->state = CS_STREAMING;
	if (unpaced)
		client_set_unpaced(c);
	return c;
}

static void
test_queue_limit(void **state)
{
	client	   *live = fake_client(true);
	client	   *replaying = fake_client(false);
	frame	   *f = frame_alloc(600);
	uint64_t	drops = metrics.slow_drops;

	(void) state;
	memset(f->data, 'x', f->len);
	cfg.client_queue = 1000;
	client_send(live, frame_ref(f));
	assert_false(live->flags & CF_DOOMED);
	client_send(live, frame_ref(f));			/* 1200 > 1000: not queued */
	assert_true(live->flags & CF_DOOMED);
	assert_int_equal(metrics.slow_drops, drops + 1);
	assert_int_equal(outq_bytes(&live->q), 600);
	client_send(live, frame_ref(f));			/* counted once */
	assert_int_equal(metrics.slow_drops, drops + 1);
	assert_true(client_room(replaying, 5000));	/* empty: one frame of any size */
	for (int i = 0; i < 3; i++)					/* replays pace themselves */
		client_send(replaying, frame_ref(f));
	assert_false(replaying->flags & CF_DOOMED);
	assert_false(client_room(replaying, 1));
	assert_int_equal(f->refs, 5);
	/* the doomed client is closed at the flush, not inside client_send */
	assert_false(live->flags & CF_CLOSED);
	replaying->flags |= CF_DOOMED;
	client_flush_pending();
	assert_true(live->flags & CF_CLOSED);
	uv_run(loop, UV_RUN_NOWAIT);				/* close callbacks free both */
	assert_int_equal(finish_calls, 2);
	assert_int_equal(f->refs, 1);
	assert_int_equal(client_count, 0);
	frame_unref(f);
}

/* A streaming, unpaced client on one end of a socket pair; *peer is the other. */
static client *
socket_client(int *peer)
{
	int			sv[2];
	client	   *c;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	client_adopt(sv[0]);
	c = client_first();			/* the newest */
	assert_non_null(c);
	c->state = CS_STREAMING;
	client_set_unpaced(c);
	*peer = sv[1];
	return c;
}

/*
 * Output goes straight into the socket at the flush: nothing is left in
 * flight waiting for a loop turn.  What the socket does not take goes
 * through one write in flight, and the peer reads every byte in order.
 */
static void
test_direct_write(void **state)
{
	int			peer;
	client	   *c = socket_client(&peer);
	frame	   *f = frame_printf("data: one\n\n");
	frame	   *big = frame_alloc(4 << 20);
	uint64_t	sent = metrics.bytes_sent;
	size_t		total = big->len + f->len, got = 0;
	char		buf[65536];
	ssize_t		n;

	(void) state;
	for (uint32_t i = 0; i < big->len; i++)
		big->data[i] = (char) (i % 251);
	client_send(c, frame_ref(f));
	client_send(c, frame_ref(f));
	client_flush_pending();
	assert_int_equal(c->q.n, 0);
	assert_false(c->flags & CF_WRITING);
	assert_int_equal(metrics.bytes_sent, sent + 2 * f->len);
	n = recv(peer, buf, sizeof(buf), MSG_DONTWAIT);
	assert_int_equal(n, 2 * f->len);
	assert_memory_equal(buf, "data: one\n\ndata: one\n\n", (size_t) n);

	cfg.client_queue = 8 << 20;
	client_send(c, big);
	client_send(c, frame_ref(f));
	client_flush_pending();
	assert_true(c->flags & CF_WRITING);			/* the socket took part of it */
	assert_true(outq_bytes(&c->q) > 0 && outq_bytes(&c->q) < total);
	for (int i = 0; i < 1000000 && got < total; i++) {
		uv_run(loop, UV_RUN_NOWAIT);
		n = recv(peer, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			continue;
		for (ssize_t k = 0; k < n; k++, got++) {
			if (got < (4u << 20))
				assert_int_equal((unsigned char) buf[k], got % 251);
			else
				assert_int_equal(buf[k], f->data[got - (4u << 20)]);
		}
	}
	assert_int_equal(got, total);
	client_flush_pending();
	assert_int_equal(c->q.n, 0);
	assert_false(c->flags & CF_WRITING);
	assert_int_equal(f->refs, 1);
	frame_unref(f);
	client_close(c);
	close(peer);
	test_done();
}

static void
test_decide(void **state)
{
	open_info	i = {.found = true, .head = 100, .pruned = 10, .close_id = -1, .start_id = 40};
	int64_t		cur;

	(void) state;
	assert_int_equal(stream_decide(&i, false, -1, &cur), STREAM_START);
	assert_int_equal(cur, 100);					/* ad hoc: head */
	assert_int_equal(stream_decide(&i, true, -1, &cur), STREAM_START);
	assert_int_equal(cur, 40);					/* subscription: start */
	assert_int_equal(stream_decide(&i, true, 55, &cur), STREAM_START);
	assert_int_equal(cur, 55);
	assert_int_equal(stream_decide(&i, true, 10, &cur), STREAM_START);
	assert_int_equal(cur, 40);					/* nothing before its creation matches */
	assert_int_equal(stream_decide(&i, false, 5000, &cur), STREAM_START);
	assert_int_equal(cur, 100);					/* clamped to the head */
	i.close_id = 60;
	assert_int_equal(stream_decide(&i, true, 59, &cur), STREAM_START);
	assert_int_equal(stream_decide(&i, true, 60, &cur), STREAM_GONE);
	assert_int_equal(stream_decide(&i, false, -1, &cur), STREAM_GONE);
	i.closed = true;			/* a fresh page still replays up to the close */
	assert_int_equal(stream_decide(&i, true, -1, &cur), STREAM_START);
	assert_int_equal(cur, 40);
	assert_int_equal(stream_decide(&i, true, 50, &cur), STREAM_START);
	i.close_id = -1;							/* close row pruned */
	assert_int_equal(stream_decide(&i, true, 50, &cur), STREAM_GONE);
	i.closed = false;
	i.expired = true;
	assert_int_equal(stream_decide(&i, true, 50, &cur), STREAM_NOT_FOUND);
	i.expired = false;
	i.dropped = true;			/* a tombstone: only readers with a position go on */
	assert_int_equal(stream_decide(&i, true, -1, &cur), STREAM_NOT_FOUND);
	assert_int_equal(stream_decide(&i, true, 10, &cur), STREAM_START);
	assert_int_equal(cur, 40);
	assert_int_equal(stream_decide(&i, true, 50, &cur), STREAM_START);
	assert_int_equal(cur, 50);
	i.dropped = false;
	i.found = false;
	assert_int_equal(stream_decide(&i, true, -1, &cur), STREAM_NOT_FOUND);
}

static event *
ev(int64_t id, size_t dlen)
{
	char	   *d = calloc(1, dlen + 1);
	event	   *e;

	memset(d, 'd', dlen);
	e = event_new(id, 0, "c", 1, NULL, 0, d, dlen);
	free(d);
	return e;
}

static void
test_ring(void **state)
{
	(void) state;
	ring_init(4096, 16);
	assert_false(ring_valid());
	ring_reset(10, LOGPOS_NO_ROW);
	assert_true(ring_valid());
	assert_int_equal(ring_lo(), 10);
	assert_int_equal(ring_hi(), 10);
	for (int64_t id = 12; id <= 40; id += 2)
		ring_push(ev(id, 10));
	assert_int_equal(ring_hi(), 40);
	assert_true(ring_count() <= 16);
	assert_int_equal(ring_at(0)->id, ring_lo() + 2);	/* (lo, hi] stays complete */
	assert_int_equal(ring_at(ring_find_after(31))->id, 32);
	assert_int_equal(ring_at(ring_find_after(32))->id, 34);
	assert_int_equal(ring_find_after(40), ring_count());
	ring_push(ev(41, 8000));					/* bigger than the cache */
	assert_int_equal(ring_count(), 0);
	assert_int_equal(ring_lo(), 41);
	assert_int_equal(ring_hi(), 41);
	ring_push(ev(50, 10));
	assert_int_equal(ring_find_after(41), 0);
	ring_shutdown();
}

/* Bytes of the stream head and anything else queued before replaying. */
static size_t head_bytes;

/* A client with a REPLAYING stream of channel ch, queued to run from cursor. */
static client *
replaying_client(const char *ch, int64_t cursor)
{
	client	   *c = client_new();
	char	  **pats = calloc(1, sizeof(char *));

	assert_non_null(c);
	pats[0] = strdup(ch);
	c->state = CS_OPENING;		/* as routing leaves it */
	assert_non_null(stream_new(c, pats, 1, NULL, NULL, -1));
	assert_int_equal(c->st->state, SS_OPENING);
	stream_begin(c->st, cursor, 0);
	assert_int_equal(c->state, CS_STREAMING);
	assert_int_equal(c->st->state, SS_REPLAYING);
	head_bytes = outq_bytes(&c->q);
	stream_step(c->st);
	stream_step(c->st);			/* queued once only */
	return c;
}

/*
 * Each turn of stream_run stays within its budget (plus one frame), serves
 * the queue round-robin so no client falls a slice behind another, and
 * every client reaches the live cursor and goes live.
 */
static void
test_replay_fair(void **state)
{
	enum {NC = 24, NEV = 3000};
	client	   *cs[NC + 2];
	size_t		bytes[NC];
	int			turns = 0;
	bool		more = true;

	(void) state;
	cfg.client_queue = 64 << 20;	/* per-client budget 256 KB */
	hub_init(stream_deliver);
	ring_init(64 << 20, 1 << 16);
	ring_reset(0, LOGPOS_NO_ROW);
	for (int64_t id = 1; id <= NEV; id++)
		ring_push(ev(id, 60));
	for (int i = 0; i < NC; i++)
		cs[i] = replaying_client("c", 0);
	cs[NC] = replaying_client("nothing", 0);	/* examines events, queues none */
	cs[NC + 1] = replaying_client("c", 0);
	assert_int_equal(stream_count(), NC + 2);
	client_close(cs[NC + 1]);	/* closed while queued: leaves the queue */
	assert_int_equal(stream_count(), NC + 1);
	while (more) {
		size_t		before = 0, after = 0, lo = SIZE_MAX, hi = 0;

		for (int i = 0; i < NC; i++)
			before += (bytes[i] = outq_bytes(&cs[i]->q));
		more = stream_run();
		for (int i = 0; i < NC; i++) {
			size_t		b = outq_bytes(&cs[i]->q);

			after += b;
			lo = b < lo ? b : lo;
			hi = b > hi ? b : hi;
		}
		assert_true(after - before <= REPLAY_TURN_BYTES + REPLAY_SLICE_BYTES + 256);
		assert_true(hi - lo <= REPLAY_SLICE_BYTES + 256);
		assert_true(++turns < 1000);
	}
	assert_true(turns > 1);		/* the work was spread over several turns */
	for (int i = 0; i <= NC; i++) {
		assert_int_equal(cs[i]->st->state, SS_LIVE);
		assert_true(cs[i]->flags & CF_UNPACED);
		assert_int_equal(cs[i]->st->cursor, NEV);
		if (i < NC)
			assert_int_equal(outq_bytes(&cs[i]->q), outq_bytes(&cs[0]->q));
		else
			assert_true(outq_bytes(&cs[i]->q) - head_bytes < 100);	/* only `ready` */
	}
	assert_int_equal(hub_count(), NC + 1);
	for (int i = 0; i <= NC; i++)
		client_close(cs[i]);
	client_flush_pending();
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(client_count, 0);
	assert_int_equal(stream_count(), 0);
	assert_int_equal(metrics.streams, 0);
	assert_int_equal(hub_count(), 0);
	ring_shutdown();
	hub_shutdown();
}

/*
 * One stream through its life: OPENING, REPLAYING (with a reset for a
 * pruned start), LIVE (in the hub, unpaced, receiving and reset), then the
 * end at a flush leaves no trace in the hub, the replay queues or the
 * gauges.
 */
static void
test_stream_lifecycle(void **state)
{
	client	   *c = client_new();
	char	  **pats = calloc(1, sizeof(char *));
	stream	   *st;
	event	   *e;
	size_t		q;

	(void) state;
	cfg.client_queue = 1 << 20;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1024);
	ring_reset(8, LOGPOS_NO_ROW);
	pats[0] = strdup("a");
	c->state = CS_OPENING;
	st = stream_new(c, pats, 1, NULL, NULL, -1);
	assert_ptr_equal(c->st, st);
	assert_int_equal(st->state, SS_OPENING);
	assert_int_equal(stream_count(), 1);
	assert_int_equal(metrics.streams, 0);

	stream_begin(st, 3, 8);						/* ids 4..8 were pruned */
	assert_int_equal(st->state, SS_REPLAYING);
	assert_int_equal(st->cursor, 8);
	assert_int_equal(c->state, CS_STREAMING);
	assert_false(c->flags & CF_UNPACED);		/* replays pace themselves */
	assert_int_equal(metrics.streams, 1);
	assert_int_equal(hub_count(), 0);

	assert_false(stream_run());					/* the cache covers 8: live */
	assert_int_equal(st->state, SS_LIVE);
	assert_int_equal(st->cursor, 8);
	assert_true(c->flags & CF_UNPACED);
	assert_int_equal(hub_count(), 1);
	assert_int_equal(metrics.streams, 1);

	q = outq_bytes(&c->q);
	e = event_new(9, 0, "a", 1, NULL, 0, "x", 1);
	hub_dispatch(e);
	ring_push(e);
	assert_int_equal(st->cursor, 9);
	assert_true(outq_bytes(&c->q) > q);
	q = outq_bytes(&c->q);
	stream_pruned(10, 20);						/* live streams get the reset */
	assert_true(outq_bytes(&c->q) > q);

	client_end(c);
	assert_int_equal(st->state, SS_LIVE);		/* ends at the flush, not before */
	client_flush_pending();
	assert_int_equal(c->state, CS_CLOSING);
	assert_null(c->st);
	assert_int_equal(stream_count(), 0);
	assert_int_equal(hub_count(), 0);
	assert_int_equal(metrics.streams, 0);
	client_close(c);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_int_equal(client_count, 0);
	ring_shutdown();
	hub_shutdown();
}

/* Everything queued on c so far, as one string (the caller frees it). */
static char *
queued_text(client *c)
{
	uv_buf_t	bufs[256];
	uint32_t	n = outq_take(&c->q, bufs, 256);
	size_t		len = 0;
	char	   *s;

	for (uint32_t i = 0; i < n; i++)
		len += bufs[i].len;
	s = calloc(1, len + 1);
	assert_non_null(s);
	len = 0;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(s + len, bufs[i].base, bufs[i].len);
		len += bufs[i].len;
	}
	return s;
}

/* A resume point is of another timeline only when it can be checked. */
static void
test_resume_forked(void **state)
{
	open_info	info = {.found = true, .head = 110, .pruned = 10, .at_us = 5000};
	uint32_t	fp = logpos_fp(60, 5000);

	(void) state;
	assert_false(stream_resume_forked(&info, 60, fp, true));	/* same row */
	assert_true(stream_resume_forked(&info, 60, fp ^ 1, true));	/* another row */
	assert_false(stream_resume_forked(&info, 60, fp ^ 1, false));	/* plain id */
	info.at_us = LOGPOS_NO_ROW;
	assert_true(stream_resume_forked(&info, 60, fp, true));	/* no row there */
	assert_true(stream_resume_forked(&info, 120, fp, true));	/* above the head */
	assert_true(stream_resume_forked(&info, 60, 0, true));	/* "-0" above the prune mark */
	assert_false(stream_resume_forked(&info, 10, 0, true));	/* pruned: cannot tell */
	assert_false(stream_resume_forked(&info, 5, fp, true));
	assert_false(stream_resume_forked(&info, -1, 0, false));	/* no Last-Event-ID */
}

/*
 * The live link found a fork at 5: a live stream that had 1..10 gets one
 * timeline reset naming 5 as its id, then the new timeline's 6.. from the
 * hub; a stream at or below the fork gets nothing extra.
 */
static void
test_timeline(void **state)
{
	client	   *c, *low;
	char	   *text;
	char		want[160], pos[LOGPOS_STRLEN];
	event	   *e;

	(void) state;
	cfg.client_queue = 1 << 20;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1024);
	ring_reset(0, LOGPOS_NO_ROW);
	for (int64_t id = 1; id <= 10; id++) {
		e = event_new(id, 1000 + id, "c", 1, NULL, 0, "x", 1);
		ring_push(e);
	}
	c = replaying_client("c", 0);
	low = replaying_client("none", 5);
	while (stream_run())
		;
	assert_int_equal(c->st->state, SS_LIVE);
	assert_int_equal(c->st->cursor, 10);
	assert_int_equal(c->st->cursor_us, 1010);
	text = queued_text(c);
	logpos_format(pos, 10, logpos_fp(10, 1010));
	snprintf(want, sizeof(want), "id: %s\nevent: ready\n", pos);
	assert_non_null(strstr(text, want));
	free(text);
	outq_complete(&c->q);
	free(queued_text(low));
	outq_complete(&low->q);
	low->st->cursor = 5;		/* as if its last event were 5 */

	ring_rebase(5, 1005);
	stream_timeline(5, 1005);
	text = queued_text(c);
	logpos_format(pos, 5, logpos_fp(5, 1005));
	snprintf(want, sizeof(want), "id: %s\nevent: reset\ndata: "
			 "{\"lost_from\":6,\"lost_through\":10,\"timeline\":true}\n\n", pos);
	assert_string_equal(text, want);
	free(text);
	outq_complete(&c->q);
	assert_int_equal(c->st->cursor, 5);
	assert_int_equal(c->st->state, SS_LIVE);
	text = queued_text(low);
	assert_string_equal(text, "");
	free(text);

	e = event_new(6, 2006, "c", 1, NULL, 0, "y", 1);	/* the new timeline's 6 */
	hub_dispatch(e);
	ring_push(e);
	text = queued_text(c);
	logpos_format(pos, 6, logpos_fp(6, 2006));
	snprintf(want, sizeof(want), "id: %s\ndata: y\n\n", pos);
	assert_string_equal(text, want);
	free(text);
	outq_complete(&c->q);

	client_close(c);
	client_close(low);
	test_done();
}

/*
 * The work link's one queued job, taken off the (never started) link, and
 * answered with one row of open_sub columns (bridge/logread.c; NULL for a
 * NULL string).
 */
static void
answer_open(const char *const vals[LOGREAD_OPEN_SUB_COLS])
{
	db_job	   *job = work.head;
	PGresult   *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc attrs[LOGREAD_OPEN_SUB_COLS];

	assert_non_null(job);
	work.head = job->next;
	if (work.head == NULL)
		work.tail = NULL;
	job->next = NULL;
	memset(attrs, 0, sizeof(attrs));
	for (int i = 0; i < LOGREAD_OPEN_SUB_COLS; i++)
		attrs[i].name = (char *) "c";
	assert_true(PQsetResultAttrs(res, LOGREAD_OPEN_SUB_COLS, attrs));
	for (int i = 0; i < LOGREAD_OPEN_SUB_COLS; i++)
		assert_true(PQsetvalue(res, 0, i, (char *) vals[i], vals[i] ? (int) strlen(vals[i]) : -1));
	job->done(job, res);
	PQclear(res);
}

/*
 * A live subscription stream overtaken by a prune goes on in place: after
 * its reset it leaves the hub, reads the definition valid at its new
 * position (the prune went on meanwhile: a second reset), and replays on
 * with it -- the response never ends.
 */
static void
test_sub_redef_after_prune(void **state)
{
	client	   *c = client_new();
	char	  **pats = calloc(1, sizeof(char *));
	const char *const answer[LOGREAD_OPEN_SUB_COLS] = {
		"25", "22", NULL, NULL, NULL, "7", "1", NULL, "f", "f", "22",
		"{\"sid\":7,\"channels\":[\"b\"],\"filter\":{},\"state\":\"active\"}", "f"
	};
	char	   *text;
	stream	   *st;

	(void) state;
	cfg.client_queue = 1 << 20;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1024);
	ring_reset(8, LOGPOS_NO_ROW);
	pats[0] = strdup("a");
	c->state = CS_OPENING;
	st = stream_new(c, pats, 1, NULL, "00000000-0000-0000-0000-000000000007", -1);
	st->sid = 7;
	stream_begin(st, 8, 0);
	while (stream_run())
		;
	assert_int_equal(st->state, SS_LIVE);
	free(queued_text(c));
	outq_complete(&c->q);

	stream_pruned(10, 20);						/* 10..20 are gone */
	assert_int_equal(st->state, SS_REPLAYING);	/* not ended: it goes on */
	assert_true(st->redef);
	assert_int_equal(hub_count(), 0);
	assert_int_equal(st->cursor, 20);
	assert_null(work.head);
	stream_run();								/* its one job: the definition at 20 */
	assert_non_null(st->job);
	answer_open(answer);
	assert_null(st->job);
	assert_false(st->redef);
	assert_string_equal(st->sub.patterns[0], "b");
	assert_int_equal(st->cursor, 22);			/* pruned on to 22 meanwhile */

	ring_rebase(20, LOGPOS_NO_ROW);
	ring_push(event_new(23, 2023, "a", 1, NULL, 0, "old", 3));
	ring_push(event_new(24, 2024, "b", 1, NULL, 0, "new", 3));
	stream_advanced();
	while (stream_run())
		;
	assert_int_equal(st->state, SS_LIVE);
	text = queued_text(c);
	assert_non_null(strstr(text, "event: reset\ndata: {\"lost_from\":10,\"lost_through\":20}"));
	assert_non_null(strstr(text, "event: reset\ndata: {\"lost_from\":21,\"lost_through\":22}"));
	assert_null(strstr(text, "data: old"));		/* judged by the new definition */
	assert_non_null(strstr(text, "data: new"));
	assert_non_null(strstr(strstr(text, "data: new"), "event: ready"));
	free(text);
	outq_complete(&c->q);
	assert_false(c->flags & (CF_DOOMED | CF_ENDING));

	client_close(c);
	test_done();
}

/*
 * Replay is paced by the client's queue: it never holds more than
 * --client-queue bytes, except one event larger than that on its own, and
 * the ready event waits for room too.
 */
static void
test_replay_paced(void **state)
{
	client	   *both[2];
	uint64_t	over = metrics.queue_over;

	(void) state;
	cfg.client_queue = 1000;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1 << 10);
	ring_reset(0, LOGPOS_NO_ROW);
	for (int64_t id = 1; id <= 20; id++)
		ring_push(ev(id, id == 10 ? 3000 : 200));	/* event 10 is over the limit */
	both[0] = replaying_client("c", 0);
	both[1] = replaying_client("c", 9);
	for (int i = 0; i < 2; i++) {				/* the stream heads were written */
		both[i]->q.inflight = both[i]->q.n;
		outq_complete(&both[i]->q);
	}
	stream_run();
	assert_true(outq_bytes(&both[0]->q) <= cfg.client_queue);
	assert_int_equal(both[0]->st->cursor, 3);	/* 3 x 214 bytes + the reserve fit in 1000 */
	assert_int_equal(both[1]->q.n, 1);			/* event 10 alone, 3009 bytes */
	assert_int_equal(both[1]->st->cursor, 10);
	assert_false(stream_run());					/* both wait for their drain */
	for (int round = 0; round < 40 && (both[0]->st->state != SS_LIVE ||
									   both[1]->st->state != SS_LIVE); round++) {
		for (int i = 0; i < 2; i++) {			/* the writes completed */
			both[i]->q.inflight = both[i]->q.n;
			outq_complete(&both[i]->q);
			stream_drained(both[i]);
		}
		stream_run();
		for (int i = 0; i < 2; i++)
			assert_true(both[i]->q.n <= 1 || outq_bytes(&both[i]->q) <= cfg.client_queue);
	}
	assert_int_equal(both[0]->st->state, SS_LIVE);
	assert_int_equal(both[1]->st->state, SS_LIVE);
	assert_int_equal(both[0]->st->cursor, 20);
	assert_int_equal(metrics.queue_over, over);
	for (int i = 0; i < 2; i++)
		client_close(both[i]);
	test_done();
}

/*
 * A replay that stops (queue full) just after passing a subscription
 * marker resumes there: the marker's row is the stream's cursor row, so
 * the cache's check of that row (timelines) agrees and it goes live.
 */
static void
test_replay_past_marker(void **state)
{
	client	   *c;
	char		d[201];
	const char	def[] = "{\"sid\":99}";

	(void) state;
	cfg.client_queue = 1000;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1 << 10);
	ring_reset(0, LOGPOS_NO_ROW);
	memset(d, 'd', 200);
	d[200] = '\0';
	for (int64_t id = 1; id <= 8; id++)
		ring_push(id == 4 ? event_new(id, 1000 + id, "$sub", 4, NULL, 0, def, strlen(def))
				  : event_new(id, 1000 + id, "c", 1, NULL, 0, d, 200));
	c = replaying_client("c", 0);
	c->q.inflight = c->q.n;		/* the stream head was written */
	outq_complete(&c->q);
	stream_run();
	assert_int_equal(c->st->cursor, 4);	/* 1..3 queued, the marker passed, 5 waits */
	assert_int_equal(c->st->cursor_us, 1004);
	for (int round = 0; round < 20 && c->st->state != SS_LIVE; round++) {
		c->q.inflight = c->q.n;
		outq_complete(&c->q);
		stream_drained(c);
		stream_run();
	}
	assert_int_equal(c->st->state, SS_LIVE);
	assert_int_equal(c->st->cursor, 8);
	client_close(c);
	test_done();
}

/* ---- every close a stream starts: one deferred, counted disconnect ---- */

static uint64_t closes_before[CLOSE_COUNT];

static void
closes_mark(void)
{
	memcpy(closes_before, metrics.disconnects, sizeof(closes_before));
}

/*
 * Exactly one disconnect was counted since closes_mark, for why, and c was
 * not closed inside the call: at the next flush c is closed at once
 * (!notify) or its stream ends after its queued bytes (notify: CLOSING);
 * /metrics shows the count under the reason's label.
 */
static void
expect_disconnect(client *c, close_reason why, bool notify)
{
	char		line[128], *text;
	size_t		len;

	for (int r = 0; r < CLOSE_COUNT; r++)
		assert_int_equal(metrics.disconnects[r] - closes_before[r], r == (int) why);
	assert_false(c->flags & CF_CLOSED);			/* deferred to the flush */
	client_flush_pending();
	assert_null(c->st);
	if (notify)
		assert_int_equal(c->state, CS_CLOSING);
	else {
		assert_true(c->flags & CF_CLOSED);
		assert_int_not_equal(c->state, CS_CLOSING);
	}
	text = metrics_render(&len);
	assert_non_null(text);
	snprintf(line, sizeof(line), "\nsse_bridge_disconnects_total{reason=\"%s\"} %" PRIu64 "\n",
			 close_reason_name(why), metrics.disconnects[why]);
	assert_non_null(strstr(text, line));
	free(text);
}

/* The work link's one queued job, taken off the (never started) link. */
static db_job *
take_job(void)
{
	db_job	   *job = work.head;

	assert_non_null(job);
	work.head = job->next;
	if (work.head == NULL)
		work.tail = NULL;
	job->next = NULL;
	return job;
}

/*
 * A replay page read from cursor `from`: one row per id from..through on
 * channel "c", created_us 1000 + id, each repeating the cursor it was read from.
 */
static PGresult *
page_result(int64_t pruned, int64_t from, int64_t through, int64_t first_us)
{
	const char *names[7] = {"pruned_through", "id", "channel", "event", "data", "created_us", "from_id"};
	PGresAttDesc att[7];
	PGresult   *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	char		buf[32];

	memset(att, 0, sizeof(att));
	for (int i = 0; i < 7; i++)
		att[i].name = (char *) names[i];
	assert_true(PQsetResultAttrs(r, 7, att));
	for (int64_t id = from; id <= through; id++) {
		int			row = (int) (id - from);

		snprintf(buf, sizeof(buf), "%" PRId64, pruned);
		assert_true(PQsetvalue(r, row, 0, buf, (int) strlen(buf)));
		snprintf(buf, sizeof(buf), "%" PRId64, id);
		assert_true(PQsetvalue(r, row, 1, buf, (int) strlen(buf)));
		assert_true(PQsetvalue(r, row, 2, "c", 1));
		assert_true(PQsetvalue(r, row, 3, NULL, -1));
		assert_true(PQsetvalue(r, row, 4, "x", 1));
		snprintf(buf, sizeof(buf), "%" PRId64, id == from ? first_us : 1000 + id);
		assert_true(PQsetvalue(r, row, 5, buf, (int) strlen(buf)));
		snprintf(buf, sizeof(buf), "%" PRId64, from);
		assert_true(PQsetvalue(r, row, 6, buf, (int) strlen(buf)));
	}
	return r;
}

/* A live subscription stream (sid 7) on channel "a", overtaken by a prune: its definition read is queued. */
static client *
sub_after_prune(void)
{
	client	   *c = client_new();
	char	  **pats = calloc(1, sizeof(char *));
	stream	   *st;

	ring_reset(8, LOGPOS_NO_ROW);
	pats[0] = strdup("a");
	c->state = CS_OPENING;
	st = stream_new(c, pats, 1, NULL, "00000000-0000-0000-0000-000000000007", -1);
	st->sid = 7;
	stream_begin(st, 8, 0);
	while (stream_run())
		;
	assert_int_equal(st->state, SS_LIVE);
	stream_pruned(10, 20);
	stream_run();
	assert_non_null(st->job);					/* the definition at 20 */
	return c;
}

/* A replaying subscription stream (sid 7) that meets marker data def at 9. */
static client *
sub_meets_marker(const char *def)
{
	client	   *c;

	ring_reset(8, LOGPOS_NO_ROW);
	ring_push(event_new(9, 1009, "$sub", 4, NULL, 0, def, strlen(def)));
	c = replaying_client("c", 8);
	c->st->sid = 7;
	closes_mark();
	stream_run();
	return c;
}

/*
 * Every way the bridge ends or drops a stream is counted under its reason,
 * once, and takes effect at the next flush, never inside the caller.
 */
static void
test_close_reasons(void **state)
{
	frame	   *f = frame_alloc(600);
	client	   *c;
	db_job	   *job;
	PGresult   *r;
	const char *const resume[LOGREAD_OPEN_SUB_COLS] = {	/* another subscription's answer */
		"25", "22", NULL, NULL, NULL, "8", "1", NULL, "f", "f", "22",
		"{\"sid\":8,\"channels\":[\"b\"],\"filter\":{},\"state\":\"active\"}", "f"
	};

	(void) state;
	memset(f->data, 'x', f->len);
	cfg.client_queue = 1000;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1024);

	/* slow: a live client over --client-queue */
	c = fake_client(true);
	client_send(c, frame_ref(f));
	closes_mark();
	client_send(c, frame_ref(f));
	client_send(c, frame_ref(f));				/* counted once */
	expect_disconnect(c, CLOSE_SLOW, false);

	/* out of memory formatting output */
	c = fake_client(true);
	closes_mark();
	client_send(c, NULL);
	expect_disconnect(c, CLOSE_OOM, false);

	/* shed over the hard memory limit */
	c = fake_client(true);
	client_send(c, frame_ref(f));
	mem_set_limit(1000);
	mem_charge(MEM_JSON, 1 << 20);
	closes_mark();
	client_shed();
	mem_release(MEM_JSON, 1 << 20);
	mem_set_limit(0);
	expect_disconnect(c, CLOSE_MEMORY, false);

	/* a close event on the stream's channel */
	cfg.client_queue = 1 << 20;
	ring_reset(8, LOGPOS_NO_ROW);
	c = replaying_client("c", 8);
	while (stream_run())
		;
	assert_int_equal(c->st->state, SS_LIVE);
	closes_mark();
	{
		event	   *e = event_new(9, 1009, "c", 1, "close", 5, "x", 1);

		hub_dispatch(e);
		ring_push(e);
	}
	expect_disconnect(c, CLOSE_END_EVENT, true);

	/* a replay page that failed */
	ring_reset(100, LOGPOS_NO_ROW);				/* the cache starts after 100 */
	c = replaying_client("c", 5);
	stream_run();
	job = take_job();
	closes_mark();
	job->done(job, NULL);
	expect_disconnect(c, CLOSE_DATABASE, false);

	/* a replay page whose row at the cursor is another one (another timeline) */
	c = replaying_client("c", 5);
	c->st->cursor_us = 1005;
	stream_run();
	job = take_job();
	r = page_result(0, 5, 7, 999);
	closes_mark();
	job->done(job, r);
	PQclear(r);
	expect_disconnect(c, CLOSE_TIMELINE, false);

	/* a subscription's definition read that failed, after a reset */
	c = sub_after_prune();
	job = take_job();
	closes_mark();
	job->done(job, NULL);
	expect_disconnect(c, CLOSE_DATABASE, false);

	/* after a reset, an answer the stream cannot go on with in place */
	c = sub_after_prune();
	closes_mark();
	answer_open(resume);
	expect_disconnect(c, CLOSE_RESUME, true);

	/* a subscription change that cannot be applied */
	c = sub_meets_marker("{\"sid\":7,\"channels\":\"b\",\"state\":\"active\"}");
	expect_disconnect(c, CLOSE_DEFINITION, true);

	/* its subscription was dropped */
	c = sub_meets_marker("{\"sid\":7,\"channels\":[\"b\"],\"filter\":{},\"state\":\"dropped\"}");
	expect_disconnect(c, CLOSE_SUBSCRIPTION, true);

	frame_unref(f);
	for (; (c = client_first()) != NULL;)
		client_close(c);
	test_done();
}

/*
 * The sweep visits only the clients whose check is due: 200 idle
 * streaming clients cost nothing at the sweeps between their checks (a
 * sweep over every client visited each one 4 times a second), each gets
 * one keepalive once --keepalive has passed since its last output, and a
 * request head that does not come is answered 408 at its deadline, not
 * before.
 */
#define SWEEP_N 200

static void
test_sweep_visits(void **state)
{
	frame	   *ka = frame_printf(":\n\n");
	client	   *c[SWEEP_N], *slow;
	int			peer[SWEEP_N];
	uint64_t	now, v0;

	(void) state;
	cfg.keepalive_ms = 15000;
	cfg.header_timeout_ms = 10000;
	cfg.client_queue = 1 << 20;
	client_init(&(client_env) {.loop = loop, .keepalive = ka, .live = &work, .work = &work});
	uv_update_time(loop);
	now = uv_now(loop);
	client_sweep(now);
	for (int i = 0; i < SWEEP_N; i++) {
		c[i] = socket_client(&peer[i]);
		c[i]->deadline_ms = now;	/* its last output */
	}
	slow = client_new();		/* READING: its head never comes */
	v0 = client_sweep_visits;
	for (uint64_t t = now + 250; t < now + 10000; t += 250)
		client_sweep(t);
	assert_int_equal(client_sweep_visits, v0);	/* nothing due: nobody visited */
	assert_int_equal(slow->state, CS_READING);
	client_sweep(now + 10000);	/* the header deadline they were accepted with */
	assert_int_equal(client_sweep_visits, v0 + SWEEP_N + 1);
	assert_int_equal(slow->state, CS_CLOSING);
	client_close(slow);			/* its linger is on the loop's clock, not this test's */
	for (int i = 0; i < SWEEP_N; i++)
		assert_int_equal(c[i]->q.n, 0);	/* 10 s idle: no keepalive yet */
	for (uint64_t t = now + 10250; t < now + 15000; t += 250)
		client_sweep(t);
	assert_int_equal(client_sweep_visits, v0 + SWEEP_N + 1);
	client_sweep(now + 15000);
	assert_int_equal(client_sweep_visits, v0 + 2 * SWEEP_N + 1);
	for (int i = 0; i < SWEEP_N; i++) {
		uv_buf_t	b;

		assert_int_equal(c[i]->q.n, 1);	/* its keepalive */
		assert_int_equal(outq_peek(&c[i]->q, &b, 1), 1);
		assert_ptr_equal(b.base, ka->data);
	}
	client_flush_pending();
	for (int i = 0; i < SWEEP_N; i++) {
		char		buf[8];

		assert_int_equal(read(peer[i], buf, sizeof(buf)), 3);
		assert_memory_equal(buf, ":\n\n", 3);
		close(peer[i]);
	}
	for (client *x; (x = client_first()) != NULL;)
		client_close(x);
	test_done();
	client_init(&(client_env) {.loop = loop, .live = &work, .work = &work});
	frame_unref(ka);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_limit),
		cmocka_unit_test(test_direct_write),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_replay_fair),
		cmocka_unit_test(test_stream_lifecycle),
		cmocka_unit_test(test_resume_forked),
		cmocka_unit_test(test_timeline),
		cmocka_unit_test(test_sub_redef_after_prune),
		cmocka_unit_test(test_replay_paced),
		cmocka_unit_test(test_replay_past_marker),
		cmocka_unit_test(test_close_reasons),
		cmocka_unit_test(test_sweep_visits),
	};
	int			r;

	loop = uv_default_loop();
	cfg.keepalive_ms = 15000;
	client_set_ops(&(client_ops) {stream_open, stream_drained, stream_release, client_closed});
	client_init(&(client_env) {.loop = loop, .live = &work, .work = &work});
	work_init(loop, &work, &(work_ops) {NULL});
	metrics_init(&work, &work);
	r = cmocka_run_group_tests_name("client", tests, NULL, NULL);
	work_stop();
	uv_run(loop, UV_RUN_NOWAIT);
	if (uv_loop_close(loop) != 0)	/* a handle left open */
		r = 1;
	return r;
}
