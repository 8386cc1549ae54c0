/*
 * test_sseparse.c - unit tests of test/lib/sseparse.c (cmocka).
 *
 * Every stream is fed whole, cut in two at every byte boundary, and one
 * byte at a time; each way must give the same log of callbacks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sseparse.h"

/* What the callbacks saw, one line each: E id|event|data, C text, R ms. */
typedef struct rec {
	char		log[4096];
	size_t		len;
} rec;

static void
rec_add(sse_parser *ps, const char *kind, const char *a, size_t an,
		const char *b, size_t bn, const char *c, size_t cn)
{
	rec		   *r = ps->arg;
	int			n = snprintf(r->log + r->len, sizeof r->log - r->len, "%s %.*s|%.*s|%.*s\n",
							 kind, (int) an, a, (int) bn, b, (int) cn, c);

	assert_true(n > 0 && (size_t) n < sizeof r->log - r->len);
	r->len += (size_t) n;
}

static void
on_event(sse_parser *ps, const sse_event *ev)
{
	assert_int_equal(strlen(ev->data), ev->data_len);
	rec_add(ps, "E", ev->id, ev->id_len, ev->event, ev->event_len, ev->data, ev->data_len);
}

static void
on_comment(sse_parser *ps, const char *t, size_t n)
{
	rec_add(ps, "C", t, n, "", 0, "", 0);
}

static void
on_retry(sse_parser *ps, long ms)
{
	char		num[32];

	snprintf(num, sizeof num, "%ld", ms);
	rec_add(ps, "R", num, strlen(num), "", 0, "", 0);
}

static const sse_callbacks cbs = {on_event, on_comment, on_retry};

/* Parse s (n bytes) as one stream fed in the pieces cut at cuts[]. */
static void
parse(const char *s, size_t n, const size_t *cuts, int ncuts, rec *r, char *last_id, size_t lcap)
{
	sse_parser	ps;
	size_t		at = 0;

	memset(r, 0, sizeof *r);
	sse_init(&ps, &cbs, r);
	for (int i = 0; i <= ncuts; i++)
	{
		size_t		end = i < ncuts ? cuts[i] : n;

		assert_true(sse_feed(&ps, s + at, end - at));
		at = end;
	}
	snprintf(last_id, lcap, "%s", ps.last_id.p ? ps.last_id.p : "");
	sse_free(&ps);
}

/* Feed s every way; each must log `want` and leave last event ID `want_id`. */
static void
check_stream(const char *s, size_t n, const char *want, const char *want_id)
{
	rec			r;
	char		lid[256];
	size_t	   *cuts = calloc(n + 1, sizeof(size_t));

	assert_non_null(cuts);
	parse(s, n, NULL, 0, &r, lid, sizeof lid);
	assert_string_equal(r.log, want);
	assert_string_equal(lid, want_id);
	for (size_t k = 0; k <= n; k++)
	{
		cuts[0] = k;
		parse(s, n, cuts, 1, &r, lid, sizeof lid);
		if (strcmp(r.log, want) != 0)
			fail_msg("cut at %zu: got\n%s", k, r.log);
		assert_string_equal(lid, want_id);
	}
	for (size_t k = 0; k < n; k++)
		cuts[k] = k + 1;
	parse(s, n, cuts, (int) n, &r, lid, sizeof lid);
	assert_string_equal(r.log, want);
	assert_string_equal(lid, want_id);
	free(cuts);
}

#define CHECK(s, want, id) check_stream(s, sizeof(s) - 1, want, id)

static void
test_line_ends(void **state)
{
	(void) state;
	CHECK("data: lf\n\n", "E |message|lf\n", "");
	CHECK("data: cr\r\r", "E |message|cr\n", "");
	CHECK("data: crlf\r\n\r\n", "E |message|crlf\n", "");
	/* mixed, and a CR then LF counted once, a LF then CR twice */
	CHECK("data: a\r\ndata: b\rdata: c\n\r", "E |message|a\nb\nc\n", "");
	CHECK("data: x\n\rdata: y\r\n\n", "E |message|x\nE |message|y\n", "");
}

static void
test_fields(void **state)
{
	(void) state;
	/* one space after the colon is dropped, no more; no colon = empty value */
	CHECK("data:  two\ndata\ndata:\n\n", "E |message| two\n\n\n", "");
	CHECK("event: ping\ndata: 1\n\ndata: 2\n\n", "E |ping|1\nE |message|2\n", "");
	/* unknown fields and the field name's case */
	CHECK("foo: bar\nData: no\ndata: yes\n\n", "E |message|yes\n", "");
	/* an event type alone is not dispatched and does not leak */
	CHECK("event: lone\n\ndata: d\n\n", "E |message|d\n", "");
}

static void
test_ids(void **state)
{
	(void) state;
	/* id persists over events; data without id keeps the last one */
	CHECK("id: 1\ndata: a\n\ndata: b\n\n", "E 1|message|a\nE 1|message|b\n", "1");
	/* id without data: no event, but the last event ID is set */
	CHECK("id: 7\n\ndata: c\n\n", "E 7|message|c\n", "7");
	CHECK("data: a\n\nid: 9\n\n", "E |message|a\n", "9");
	/* an empty id resets it; an id with NUL is ignored */
	CHECK("id: 3\ndata: a\n\nid\ndata: b\n\n", "E 3|message|a\nE |message|b\n", "");
	CHECK("id: 3\n\nid: 4\0x\ndata: z\n\n", "E 3|message|z\n", "3");
	/* an incomplete event at the end is not dispatched and sets no id */
	CHECK("id: 1\ndata: a\n\nid: 2\ndata: b\n", "E 1|message|a\n", "1");
}

static void
test_comments_retry(void **state)
{
	(void) state;
	CHECK(": keepalive\n\n:\ndata: x\n\n", "C  keepalive||\nC ||\nE |message|x\n", "");
	CHECK("retry: 1500\nretry: 1x\nretry:\nretry: -1\ndata: r\n\n", "R 1500||\nE |message|r\n", "");
}

static void
test_bom(void **state)
{
	(void) state;
	CHECK("\xEF\xBB\xBF" "data: b\n\n", "E |message|b\n", "");
	/* only one BOM is skipped: a second is part of the field name */
	CHECK("\xEF\xBB\xBF\xEF\xBB\xBF" "data: b\n\ndata: c\n\n", "E |message|c\n", "");
	/* a partial BOM is data */
	CHECK("\xEF\xBB" "x\ndata: d\n\n", "E |message|d\n", "");
}

static rec	stop_rec;

static void
on_event_stop(sse_parser *ps, const sse_event *ev)
{
	on_event(ps, ev);
	sse_stop(ps);
}

static void
test_streams(void **state)
{
	static const sse_callbacks stop_cbs = {on_event_stop, NULL, NULL};
	sse_parser	ps;

	(void) state;
	memset(&stop_rec, 0, sizeof stop_rec);
	sse_init(&ps, &cbs, &stop_rec);
	/* a stream cut after the id of an event: that id is not kept */
	assert_true(sse_feed(&ps, "id: 1\ndata: a\n\nid: 2\ndata: b", 28));
	assert_string_equal(ps.last_id.p, "1");
	sse_begin(&ps);
	/* the new stream starts as the bridge's do: retry and an empty line */
	assert_true(sse_feed(&ps, "retry: 10\n\ndata: c\n\n", 20));
	assert_string_equal(ps.last_id.p, "1");
	assert_string_equal(stop_rec.log, "E 1|message|a\nR 10||\nE 1|message|c\n");
	/* a Last-Event-ID given from outside */
	assert_true(sse_set_last_id(&ps, "42", 2));
	sse_begin(&ps);
	assert_true(sse_feed(&ps, "\ndata: d\n\n", 10));
	assert_string_equal(ps.last_id.p, "42");
	sse_free(&ps);

	/* sse_stop() in a callback ends the feed */
	memset(&stop_rec, 0, sizeof stop_rec);
	sse_init(&ps, &stop_cbs, &stop_rec);
	assert_true(sse_feed(&ps, "data: 1\n\ndata: 2\n\n", 18));
	assert_string_equal(stop_rec.log, "E |message|1\n");
	sse_free(&ps);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_comments_retry),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_streams),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
