/*
 * test_mem.c - allocation failure on the paths that queue output: for every
 * k, the kth allocation of the operation fails (bridge/mem.h's injector,
 * built with -DBRIDGE_FAULT_INJECT and ld --wrap), until the operation runs
 * without reaching k.  Each time the process must not crash, the affected
 * client must be closing (it resumes with Last-Event-ID), nothing may leak
 * (the memory charged returns to where it was; LeakSanitizer at exit), and
 * an unaffected run must deliver everything.  The work link is never
 * started: its queued jobs are answered here with synthetic results.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"
#include "client.h"
#include "config.h"
#include "logpos.h"
#include "mem.h"
#include "metrics.h"
#include "ring.h"
#include "logread.h"
#include "sse_json.h"
#include "stream.h"
#include "work.h"

static uv_loop_t *loop;
static db_link work;			/* never started: its jobs are answered here */

static void
client_closed(void)
{
}

/* A client whose stream replays from cursor (its head already written). */
static client *
mkstream(const char *ch, const char *filter, int64_t cursor)
{
	client	   *c = client_new();
	char	  **pats = calloc(1, sizeof(char *));
	sse_filter *f = NULL;
	const char *msg;

	if (filter != NULL)
		assert_int_equal(sse_filter_compile(filter, strlen(filter), &f, &msg), SSE_JSON_OK);
	assert_non_null(c);
	assert_non_null(pats);
	pats[0] = strdup(ch);
	c->state = CS_OPENING;
	assert_non_null(stream_new(c, pats, 1, f, NULL, -1));
	stream_begin(c->st, cursor, 0);
	c->q.inflight = c->q.n;
	outq_complete(&c->q);
	return c;
}

/* The next job queued on the (never started) work link, or NULL. */
static db_job *
next_job(void)
{
	db_job	   *job = work.head;

	if (job != NULL) {
		work.head = job->next;
		if (work.head == NULL)
			work.tail = NULL;
		job->next = NULL;
	}
	return job;
}

static void
close_all(void)
{
	client	   *c;
	db_job	   *job;

	while ((c = client_first()) != NULL)
		client_close(c);
	client_flush_pending();
	uv_run(loop, UV_RUN_NOWAIT);
	while ((job = next_job()) != NULL)
		job->done(job, NULL);	/* cancelled: only freed */
	assert_int_equal(client_count, 0);
	assert_int_equal(stream_count(), 0);
}

/* Event frames queued to c (not ready/reset), ids strictly increasing. */
static int
queued_events(client *c)
{
	int			n = 0;
	int64_t		last = 0;

	for (uint32_t i = 0; i < c->q.n; i++) {
		frame	   *f = c->q.v[(c->q.head + i) & (c->q.cap - 1)];
		int64_t		id;

		if (f->len > 4 && memcmp(f->data, "id: ", 4) == 0 &&
			sscanf(f->data + 4, "%" SCNd64, &id) == 1 &&
			memmem(f->data, f->len, "\nevent: ready", 13) == NULL &&
			memmem(f->data, f->len, "\nevent: reset", 13) == NULL) {
			assert_true(id > last);
			last = id;
			n++;
		}
	}
	return n;
}

/*
 * A fetch result read from cursor `asked` (NULL: as the server answers a
 * NULL parameter): rows from..from+n-1 on channel "c", odd rows named; n 0:
 * the one row of NULLs after the meta.
 */
static PGresult *
page_from(int64_t pruned, int64_t from, int n, const char *asked)
{
	PGresAttDesc att[7];
	const char *names[7] = {"pruned_through", "id", "channel", "event", "data", "created_us",
	"from_id"};
	PGresult   *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	char		buf[64];

	memset(att, 0, sizeof(att));
	for (int i = 0; i < 7; i++) {
		att[i].name = (char *) names[i];
		att[i].typlen = -1;
	}
	assert_true(PQsetResultAttrs(r, 7, att));
	for (int i = 0; i < (n > 0 ? n : 1); i++) {
		PQsetvalue(r, i, 6, (char *) asked, asked ? (int) strlen(asked) : -1);
	}
	if (n == 0) {
		snprintf(buf, sizeof(buf), "%" PRId64, pruned);
		PQsetvalue(r, 0, 0, buf, (int) strlen(buf));
		for (int k = 1; k < 6; k++)
			PQsetvalue(r, 0, k, NULL, -1);
	}
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%" PRId64, pruned);
		PQsetvalue(r, i, 0, buf, (int) strlen(buf));
		snprintf(buf, sizeof(buf), "%" PRId64, from + i);
		PQsetvalue(r, i, 1, buf, (int) strlen(buf));
		PQsetvalue(r, i, 2, "c", 1);
		PQsetvalue(r, i, 3, i % 2 ? "named" : NULL, i % 2 ? 5 : -1);
		snprintf(buf, sizeof(buf), "{\"k\":%d,\"v\":\"line\\nline\"}", i % 2);
		PQsetvalue(r, i, 4, buf, (int) strlen(buf));
		PQsetvalue(r, i, 5, "0", 1);
	}
	return r;
}

static PGresult *
page(int64_t pruned, int64_t from, int n)
{
	return page_from(pruned, from, n, "0");	/* the streams here start at 0 */
}

/*
 * Every statement the bridge sends is built with its parameters copied:
 * for every k, the kth allocation fails.  A job is then either not made or
 * has every parameter -- never a NULL in place of one (the server would
 * answer a fetch from NULL with an empty page, and the reader would take
 * it as proof that nothing follows its cursor).
 */
static void
test_job_params(void **state)
{
	uint64_t	k, clean = 0;
	char	   *pats[2] = {"a.b", "c.#"};

	(void) state;
	for (k = 1; clean == 0; k++) {
		uint64_t	inj = mem_injected();
		db_job	   *fetch, *open, *sql;
		const char *p2[2] = {"x", "y"};

		mem_fail_at(k);
		fetch = logread_fetch(41, 7, 100, NULL, NULL);
		open = logread_open(NULL, 5, pats, 2, NULL, NULL);
		sql = db_job_sql("SELECT $1, $2", 2, p2, NULL, NULL);
		mem_fail_every(0);
		if (mem_injected() == inj)
			clean = k;
		if (fetch != NULL) {
			assert_int_equal(fetch->nparams, 3);
			assert_non_null(fetch->params[0]);
			assert_non_null(fetch->params[1]);
			assert_non_null(fetch->params[2]);
			assert_string_equal(fetch->params[0], "41");
			assert_string_equal(fetch->params[1], "7");
			assert_string_equal(fetch->params[2], "100");
		}
		if (open != NULL) {
			assert_non_null(open->params[0]);
			assert_non_null(open->params[1]);
			assert_string_equal(open->params[0], "{\"a.b\",\"c.#\"}");
			assert_string_equal(open->params[1], "5");
		}
		if (sql != NULL) {
			assert_non_null(sql->sql);
			assert_non_null(sql->params[0]);
			assert_non_null(sql->params[1]);
		}
		if (clean)
			assert_true(fetch != NULL && open != NULL && sql != NULL);
		db_job_free(fetch);
		db_job_free(open);
		db_job_free(sql);
		assert_true(k < 1000);
	}
	print_message("jobs: %" PRIu64 " allocation points failed one by one\n", clean - 1);
}

/*
 * An empty page proves that nothing follows the cursor it was read from,
 * and nothing about any other: a stream at 0 whose page answer was read
 * from NULL (or another cursor) must not move (the live head is at 1000):
 * its client closes and resumes from 0.  Read from 0, the same page moves
 * it to the head and it goes live.
 */
static void
test_page_for_another_cursor(void **state)
{
	const char *asked[3] = {NULL, "7", "0"};

	(void) state;
	cfg.client_queue = 1 << 20;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1024);
	ring_reset(1000, LOGPOS_NO_ROW);
	for (int i = 0; i < 3; i++) {
		client	   *c = mkstream("c", NULL, 0);
		PGresult   *r = page_from(0, 0, 0, asked[i]);
		db_job	   *job;

		stream_run();
		assert_non_null(job = next_job());
		job->done(job, r);
		PQclear(r);
		while (stream_run())
			;
		if (asked[i] == NULL || strcmp(asked[i], "0") != 0) {
			/* closing (its stream may be gone already), never moved on */
			assert_true(client_gone(c));
			assert_true(c->st == NULL || (c->st->cursor == 0 && c->st->state != SS_LIVE));
		} else {
			assert_false(client_gone(c));
			assert_int_equal(c->st->cursor, 1000);
			assert_int_equal(c->st->state, SS_LIVE);
		}
		close_all();
	}
	ring_shutdown();
	hub_shutdown();
}

/*
 * Replay pages (the path of the reported crash, frame_ref(event_frame(ev))
 * with event_frame failing) to a plain and a filtered stream.
 */
static void
test_page_failures(void **state)
{
	size_t		base = mem_used();
	uint64_t	k, clean = 0;

	(void) state;
	cfg.client_queue = 1 << 20;
	hub_init(stream_deliver);
	ring_init(1 << 20, 1024);
	ring_reset(1000, LOGPOS_NO_ROW);			/* the cache starts after 1000: replay reads pages */
	for (k = 1; clean == 0; k++) {
		client	   *plain = mkstream("c", NULL, 0);
		client	   *filt = mkstream("c", "{\"k\":1}", 0);
		PGresult   *r = page(3, 4, 20);
		uint64_t	inj = mem_injected(), failures = metrics.alloc_failures,
					oom = metrics.disconnects[CLOSE_OOM];
		db_job	   *job;
		int			n1, n2;

		mem_fail_at(k);
		stream_run();			/* each stream asks for a page */
		while ((job = next_job()) != NULL)
			job->done(job, r);
		mem_fail_every(0);
		PQclear(r);
		n1 = queued_events(plain);
		n2 = queued_events(filt);
		if (mem_injected() == inj) {
			clean = k;			/* every allocation succeeded: all delivered */
			assert_int_equal(n1, 20);
			assert_int_equal(n2, 10);
			assert_false(client_gone(plain) || client_gone(filt));
		} else {
			/* a client is closing, or everything it should have is queued */
			assert_true(client_gone(plain) || n1 == 20 || n1 == 0);
			assert_true(client_gone(filt) || n2 == 10 || n2 == 0);
		}
		/* every client closed for the failure was counted, once */
		assert_int_equal(metrics.alloc_failures - failures, client_gone(plain) + client_gone(filt));
		assert_int_equal(metrics.disconnects[CLOSE_OOM] - oom, client_gone(plain) + client_gone(filt));
		close_all();
		assert_int_equal(mem_used(), base);
		assert_true(k < 10000);
	}
	print_message("page: %" PRIu64 " allocation points failed one by one\n", clean - 1);
	ring_shutdown();
	hub_shutdown();
}

/* Live delivery through the hub, and replay from the cache. */
static void
test_live_and_cache_failures(void **state)
{
	size_t		base = mem_used();
	uint64_t	k, clean = 0;

	(void) state;
	cfg.client_queue = 1 << 20;
	for (k = 1; clean == 0; k++) {
		client	   *live, *filt, *rep;
		uint64_t	inj;
		int			n1, n2, n3, sent = 0;

		hub_init(stream_deliver);
		ring_init(1 << 20, 1024);
		ring_reset(-1, LOGPOS_NO_ROW);
		ring_push(event_new(0, 0, "c", 1, NULL, 0, "x", 1));	/* the ring has grown */
		live = mkstream("c", NULL, 0);
		filt = mkstream("c", "{\"k\":1}", 0);
		while (stream_run())
			;
		assert_int_equal(live->st->state, SS_LIVE);
		assert_int_equal(filt->st->state, SS_LIVE);
		rep = mkstream("c", NULL, 0);
		for (int i = 0; i < 2; i++) {
			client	   *c = i ? filt : live;

			c->q.inflight = c->q.n;
			outq_complete(&c->q);
		}
		inj = mem_injected();
		mem_fail_at(k);
		for (int64_t id = 1; id <= 10; id++) {
			char		data[64];
			int			n = snprintf(data, sizeof(data), "{\"k\":%d}", (int) (id % 2));
			event	   *ev = event_new(id, 0, "c", 1, NULL, 0, data, (size_t) n);

			/* as the feed does: a row that cannot be read is read again later */
			if (ev == NULL || !hub_dispatch(ev)) {
				event_free(ev);
				break;
			}
			ring_push(ev);
			sent++;
		}
		while (stream_run())
			;
		mem_fail_every(0);
		n1 = queued_events(live);
		n2 = queued_events(filt);
		n3 = queued_events(rep);
		if (mem_injected() == inj) {
			clean = k;
			assert_int_equal(n1, 10);
			assert_int_equal(n2, 5);
			assert_int_equal(n3, 10);
			assert_int_equal(rep->st->state, SS_LIVE);
		} else {
			/* what was dispatched reached every client, or the client is closing */
			assert_true(client_gone(live) || n1 == sent);
			assert_true(client_gone(filt) || n2 == (sent + 1) / 2);
			assert_true(client_gone(rep) || n3 == sent);
		}
		close_all();
		ring_shutdown();
		hub_shutdown();
		assert_int_equal(mem_used(), base);
		assert_true(k < 10000);
	}
	print_message("live and cache: %" PRIu64 " allocation points failed one by one\n", clean - 1);
}

/*
 * A connection the bridge cannot allocate a client for is answered 503
 * with Retry-After, then closed: an internal failure, not a dropped
 * connection without a byte.
 */
static void
test_adopt_oom(void **state)
{
	int			sv[2];
	char		buf[1024];
	size_t		got = 0;
	ssize_t		n;
	uint64_t	failures = metrics.alloc_failures;

	(void) state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	mem_fail_at(1);				/* the client's own allocation */
	client_adopt(sv[0]);
	mem_fail_at(0);
	assert_int_equal(client_count, 0);
	assert_int_equal(metrics.alloc_failures, failures + 1);
	while (got < sizeof(buf) - 1 && (n = read(sv[1], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t) n;		/* until EOF: the bridge closed its end */
	buf[got] = '\0';
	assert_int_equal(strncmp(buf, "HTTP/1.1 503 ", 13), 0);
	assert_non_null(strstr(buf, "\r\nRetry-After: "));
	assert_non_null(strstr(buf, "\r\nConnection: close\r\n"));
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_failures),
		cmocka_unit_test(test_live_and_cache_failures),
		cmocka_unit_test(test_job_params),
		cmocka_unit_test(test_page_for_another_cursor),
		cmocka_unit_test(test_adopt_oom),
	};
	int			r;

	mem_init();
	loop = uv_default_loop();
	cfg.keepalive_ms = 15000;
	cfg.retry_ms = 3000;
	client_set_ops(&(client_ops) {stream_open, stream_drained, stream_release, client_closed});
	client_init(&(client_env) {.loop = loop, .live = &work, .work = &work});
	work_init(loop, &work, &(work_ops) {NULL});
	r = cmocka_run_group_tests_name("mem", tests, NULL, NULL);
	work_stop();
	uv_run(loop, UV_RUN_NOWAIT);
	if (uv_loop_close(loop) != 0)	/* a handle left open */
		r = 1;
	return r;
}
