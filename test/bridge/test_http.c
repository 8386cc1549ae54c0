/*
 * test_http.c - the HTTP request layer: raw bytes in, status (or stream
 * specification) out, through request.c and route.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "request.h"
#include "route.h"
#include "scope.h"

static scope *pub;

static int
setup(void **state)
{
	char		err[64];

	(void) state;
	pub = scope_new("jobs.*,news.#", err, sizeof(err));
	return pub ? 0 : -1;
}

static int
teardown(void **state)
{
	(void) state;
	scope_free(pub);
	return 0;
}

/* Feed raw in chunks of `step` bytes; return the final status (0 = stream). */
static int
status_of_chunked(const char *raw, size_t step, route_result *rr)
{
	req			r;
	req_status	st = REQ_MORE;
	size_t		len = strlen(raw), off = 0;
	int			status;

	memset(rr, 0, sizeof(*rr));
	req_init(&r, 8192);
	while (st == REQ_MORE && off < len) {
		size_t		n = len - off < step ? len - off : step;

		st = req_feed(&r, raw + off, n);
		off += n;
	}
	if (st == REQ_MORE)
		st = req_feed(&r, "", 0);	/* EOF */
	if (st == REQ_ERROR) {
		status = r.status;
		req_free(&r);
		return status;
	}
	route_request(&r, pub, rr);
	req_free(&r);
	return rr->kind == ROUTE_ERROR ? rr->status : 0;
}

static int
status_of(const char *raw)
{
	route_result rr;
	int			s1 = status_of_chunked(raw, 1 << 20, &rr), s2;

	route_result_free(&rr);
	memset(&rr, 0, sizeof(rr));
	s2 = status_of_chunked(raw, 1, &rr);	/* byte by byte must agree */
	route_result_free(&rr);
	assert_int_equal(s1, s2);
	return s1;
}

#define GET(target) "GET " target " HTTP/1.1\r\nHost: x\r\n\r\n"

static void
test_http_statuses(void **state)
{
	(void) state;
	assert_int_equal(status_of(GET("/events?channel=jobs.1")), 0);
	assert_int_equal(status_of(GET("/events?channel=news.%23")), 0);
	assert_int_equal(status_of(GET("/events?channel=secret")), 403);
	assert_int_equal(status_of(GET("/events?channel=jobs.%23")), 403);
	assert_int_equal(status_of(GET("/events?channel=jobs.1&channel=secret.x")), 403);
	assert_int_equal(status_of(GET("/events?channel=jobs..1")), 400);
	assert_int_equal(status_of(GET("/events?channel=jobs.a*")), 400);
	assert_int_equal(status_of(GET("/events")), 400);
	assert_int_equal(status_of(GET("/events?channel=jobs.1&filter=nope")), 400);
	assert_int_equal(status_of(GET("/events?channel=jobs.1&filter=%5B%5D")), 400);
	assert_int_equal(status_of(GET("/events?channel=jobs.1&lastEventId=x")), 400);
	assert_int_equal(status_of(GET("/events?channel=jobs.1&lastEventId=-3")), 400);
	assert_int_equal(status_of(GET("/events?channel=secret&lastEventId=x")), 400);
	assert_int_equal(status_of(GET("/events/not-a-uuid")), 404);
	assert_int_equal(status_of(GET("/events/6f1d3c1e-98a0-4e0b-9a53-1b2d3c4d5e6f")), 0);
	assert_int_equal(status_of(GET("/nowhere")), 404);
	assert_int_equal(status_of(GET("/healthz")), 0);
	assert_int_equal(status_of(GET("/metrics")), 0);
	assert_int_equal(status_of("POST /events HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
	assert_int_equal(status_of("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
	assert_int_equal(status_of("OPTIONS /events HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	assert_int_equal(status_of("GET /events?channel=jobs.1 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 12x\r\n\r\n"), 400);
}

static void
test_http_malformed(void **state)
{
	(void) state;
	assert_int_equal(status_of("HELLO\r\n\r\n"), 400);
	assert_int_equal(status_of("GET / HTTP/9.9\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\n"), 400);	/* EOF */
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\n\r\n"), 400);	/* no Host */
	assert_int_equal(status_of("GET /healthz HTTP/1.0\r\n\r\n"), 0);		/* 1.0 needs none */
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad\t: y\r\n\r\n"), 400);
	/* whitespace before the colon, with a valid Host: never a silently other header */
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Foo : bar\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /events?channel=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID : 5\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin : o\r\n\r\n"), 400);
	/* smuggling */
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"), 400);
	assert_int_equal(status_of("GET /healthz HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\r\nLast-Event-ID: 1\r\n\r\n"), 400);
}

static void
test_http_too_large(void **state)
{
	char	   *big = malloc(20000);

	(void) state;
	snprintf(big, 20000, "GET /events?channel=%0*d HTTP/1.1\r\n\r\n", 9000, 1);
	assert_int_equal(status_of(big), 431);
	snprintf(big, 20000, "GET /healthz HTTP/1.1\r\nX: %0*d\r\n\r\n", 9000, 1);
	assert_int_equal(status_of(big), 431);
	free(big);
}

static void
test_http_stream_spec(void **state)
{
	route_result rr;
	const char *raw = "GET /events?channel=jobs.1&channel=jobs.1&channel=news.%23&filter=%7B%22a%22%3A1%7D"
		"&lastEventId=5 HTTP/1.1\r\nHost: h\r\nLast-Event-ID:  77 \r\nOrigin: http://o\r\n\r\n";

	(void) state;
	memset(&rr, 0, sizeof(rr));
	assert_int_equal(status_of_chunked(raw, 7, &rr), 0);
	assert_int_equal(rr.kind, ROUTE_ADHOC);
	assert_int_equal(rr.npatterns, 2);		/* duplicates dropped */
	assert_string_equal(rr.patterns[0], "jobs.1");
	assert_string_equal(rr.patterns[1], "news.#");
	assert_int_equal(rr.last_event_id, 77);	/* the header wins */
	assert_non_null(rr.filter);
	route_result_free(&rr);
	memset(&rr, 0, sizeof(rr));
	assert_int_equal(status_of_chunked(GET("/events/6F1D3C1E-98A0-4E0B-9A53-1B2D3C4D5E6F?lastEventId=3"),
									   1000, &rr), 0);
	assert_int_equal(rr.kind, ROUTE_SUB);
	assert_string_equal(rr.sub_id, "6f1d3c1e-98a0-4e0b-9a53-1b2d3c4d5e6f");
	assert_int_equal(rr.last_event_id, 3);
	route_result_free(&rr);
	memset(&rr, 0, sizeof(rr));
	assert_int_equal(status_of_chunked(GET("/events?channel=jobs.1&filter=%7B%7D"), 1000, &rr), 0);
	assert_null(rr.filter);					/* {} matches everything */
	assert_int_equal(rr.last_event_id, -1);
	route_result_free(&rr);
}

static void
test_http_pipelined(void **state)
{
	req			r;

	(void) state;
	req_init(&r, 8192);
	assert_int_equal(req_feed(&r, "GET /healthz HTTP/1.0\r\n\r\nGARBAGE", 33), REQ_DONE);
	assert_int_equal(req_feed(&r, "more", 4), REQ_DONE);	/* not interpreted */
	req_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_statuses),
		cmocka_unit_test(test_http_malformed),
		cmocka_unit_test(test_http_too_large),
		cmocka_unit_test(test_http_stream_spec),
		cmocka_unit_test(test_http_pipelined),
	};

	return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
