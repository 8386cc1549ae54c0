/*
 * test_oom.c - an allocation failure inside the bridge never turns a valid
 * request into a client error.  For every k, the kth allocation of the
 * operation fails (bridge/mem.h's injector: -DBRIDGE_FAULT_INJECT and ld
 * --wrap), until the operation runs without reaching k.  A valid request
 * must then be answered as valid or with 503, never 4xx; the parsers must
 * say "internal", never "invalid"; nothing may leak (LeakSanitizer).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "mem.h"
#include "query.h"
#include "request.h"
#include "resp.h"
#include "route.h"
#include "scope.h"
#include "subdef.h"

#define MAX_K 100000

static const char *const valid_heads[] = {
	"GET /events?channel=pub.a&channel=pub.%23&channel=pub.*.x&filter=%7B%22k%22%3A%5B1%2C%22a%22%5D%7D"
	"&lastEventId=5 HTTP/1.1\r\nHost: t\r\nOrigin: http://a.example\r\nLast-Event-ID: 7-0\r\n\r\n",
	"GET /events?channel=pub.job&channel=pub.job&x=a+b HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /events?channel=pub.%6Aob&filter=%7B%7D HTTP/1.0\r\n\r\n",
	"GET /events/0A2b3c4d-0000-4000-8000-00000000000f?lastEventId=9-0d23ba48 HTTP/1.1\r\nHost: t\r\n\r\n",
	"OPTIONS /events?channel=pub.a HTTP/1.1\r\nHost: t\r\nOrigin: http://a.example\r\n\r\n",
};

static void
parse_head(const char *head, req *r)
{
	req_init(r, 8192);
	assert_int_equal(req_feed(r, head, strlen(head)), REQ_DONE);
}

/* The request head parser: done, or 503 "unavailable"; never 4xx. */
static void
test_request_head(void **state)
{
	(void) state;
	for (size_t h = 0; h < sizeof(valid_heads) / sizeof(valid_heads[0]); h++) {
		uint64_t	k, clean = 0;

		for (k = 1; clean == 0 && k < MAX_K; k++) {
			req			r;
			req_status	st;
			uint64_t	inj = mem_injected();

			req_init(&r, 8192);
			mem_fail_at(k);
			/* byte by byte: every piece is an allocation point */
			st = REQ_MORE;
			for (const char *p = valid_heads[h]; *p && st == REQ_MORE; p++)
				st = req_feed(&r, p, 1);
			mem_fail_every(0);
			if (mem_injected() == inj) {
				clean = k;
				assert_int_equal(st, REQ_DONE);
			} else if (st != REQ_DONE) {
				assert_int_equal(st, REQ_ERROR);
				assert_int_equal(r.status, 503);
				assert_string_equal(r.error, "unavailable");
			}
			req_free(&r);
		}
		assert_true(clean > 0);
		print_message("head %zu: %" PRIu64 " allocation points\n", h, clean - 1);
	}
}

/* Routing a valid request: the stream or response it asks for, or 503. */
static void
test_route(void **state)
{
	char		err[128];
	scope	   *pub = scope_new("pub.#, other.x", err, sizeof(err));

	(void) state;
	assert_non_null(pub);
	for (size_t h = 0; h < sizeof(valid_heads) / sizeof(valid_heads[0]); h++) {
		req			r;
		route_result want;
		uint64_t	k, clean = 0;

		parse_head(valid_heads[h], &r);
		route_request(&r, pub, &want);
		assert_int_not_equal(want.kind, ROUTE_ERROR);
		for (k = 1; clean == 0 && k < MAX_K; k++) {
			route_result rr;
			uint64_t	inj = mem_injected();

			mem_fail_at(k);
			route_request(&r, pub, &rr);
			mem_fail_every(0);
			if (mem_injected() == inj) {
				clean = k;
				assert_int_equal(rr.kind, want.kind);
				assert_int_equal(rr.npatterns, want.npatterns);
			} else if (rr.kind == ROUTE_ERROR) {
				if (rr.status != 503)
					fail_msg("head %zu, allocation %" PRIu64 " failed: %d %s %s",
							 h, k, rr.status, rr.error, rr.detail);
				assert_string_equal(rr.error, "unavailable");
			}
			else
				assert_int_equal(rr.kind, want.kind);
			route_result_free(&rr);
		}
		assert_true(clean > 0);
		print_message("route %zu: %" PRIu64 " allocation points\n", h, clean - 1);
		route_result_free(&want);
		req_free(&r);
	}
	scope_free(pub);
}

/* The query parser: QUERY_OK or QUERY_INTERNAL, never QUERY_INVALID. */
static void
test_query(void **state)
{
	static const char *const qs[] = {
		"channel=a.b&channel=c.%2A&filter=%7B%22k%22%3A1%7D&lastEventId=42&x=y&channel=d+e",
		"&&channel&filter=a+b",
		"channel=%23",
	};

	(void) state;
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		uint64_t	k, clean = 0;

		for (k = 1; clean == 0 && k < MAX_K; k++) {
			query_params p;
			char		err[128];
			query_status st;
			uint64_t	inj = mem_injected();

			mem_fail_at(k);
			st = query_parse(qs[i], strlen(qs[i]), &p, err, sizeof(err));
			mem_fail_every(0);
			if (mem_injected() == inj)
				clean = k;
			if (st == QUERY_OK)
				query_params_free(&p);
			else {
				assert_int_equal(st, QUERY_INTERNAL);
				assert_true(mem_injected() != inj);
				assert_string_equal(err, "out of memory");
			}
		}
		assert_true(clean > 1);
		print_message("query %zu: %" PRIu64 " allocation points\n", i, clean - 1);
	}
}

/* An invalid escape is invalid whether or not memory is short. */
static void
test_query_invalid(void **state)
{
	char	   *out;

	(void) state;
	mem_fail_at(1);
	assert_int_equal(query_decode("a%zz", 4, &out), QUERY_INVALID);
	mem_fail_every(0);
	mem_fail_at(1);
	assert_int_equal(query_decode("ab", 2, &out), QUERY_INTERNAL);
	mem_fail_every(0);
	assert_int_equal(query_decode("a%41", 4, &out), QUERY_OK);
	assert_string_equal(out, "aA");
	free(out);
}

/* The scope check: inside (or outside) as without failures, or INTERNAL. */
static void
test_scope(void **state)
{
	static const char *const cases[][3] = {
		{"pub.#, other.x", "pub.a.*", "in"},
		{"pub.#, other.x", "pub.#", "in"},
		{"pub.#, other.x", "other.*", "out"},
		{"a.*.c, a.b.#", "a.b.c", "in"},
	};

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char		err[128];
		scope	   *s = scope_new(cases[i][0], err, sizeof(err));
		scope_status want = strcmp(cases[i][2], "in") == 0 ? SCOPE_INSIDE : SCOPE_OUTSIDE;
		uint64_t	k, clean = 0;

		assert_non_null(s);
		assert_int_equal(scope_check(s, cases[i][1], strlen(cases[i][1])), want);
		for (k = 1; clean == 0 && k < MAX_K; k++) {
			scope_status st;
			uint64_t	inj = mem_injected();

			mem_fail_at(k);
			st = scope_check(s, cases[i][1], strlen(cases[i][1]));
			mem_fail_every(0);
			if (mem_injected() == inj) {
				clean = k;
				assert_int_equal(st, want);
			} else
				assert_int_equal(st, SCOPE_INTERNAL);
		}
		print_message("scope %zu: %" PRIu64 " allocation points\n", i, clean - 1);
		scope_free(s);
	}
}

/* A subscription's definition: SUB_DEF_OK or SUB_DEF_OOM, never INVALID. */
static void
test_subdef(void **state)
{
	static const char def[] = "{\"sid\": 7, \"channels\": [\"a.*\", \"b.#\"], "
		"\"filter\": {\"k\": [1, \"x\"], \"n\": {\"m\": 2.50}}, \"state\": \"active\"}";
	uint64_t	k, clean = 0;

	(void) state;
	for (k = 1; clean == 0 && k < MAX_K; k++) {
		sub_def		d;
		const char *why;
		sub_def_status st;
		uint64_t	inj = mem_injected();

		mem_fail_at(k);
		st = subdef_parse(def, strlen(def), 7, &d, &why);
		mem_fail_every(0);
		if (mem_injected() == inj) {
			clean = k;
			assert_int_equal(st, SUB_DEF_OK);
		} else if (st != SUB_DEF_OK)
			assert_int_equal(st, SUB_DEF_OOM);
		subdef_clear(&d);
	}
	print_message("subdef: %" PRIu64 " allocation points\n", clean - 1);
}

/* The response builders never return NULL: the 503 stands in. */
static void
test_responses(void **state)
{
	uint64_t	k, clean = 0;

	(void) state;
	for (k = 1; clean == 0 && k < MAX_K; k++) {
		frame	   *f[5];
		uint64_t	inj = mem_injected();

		mem_fail_at(k);
		f[0] = resp_error(400, "bad_query", "a reason", "http://a.example");
		f[1] = resp_body(200, "text/plain", "x", 1, NULL);
		f[2] = resp_busy(NULL, "too many clients");
		f[3] = resp_empty(204, NULL, 1);
		f[4] = resp_public("text/javascript", "y", 1);
		mem_fail_every(0);
		if (mem_injected() == inj)
			clean = k;
		for (int i = 0; i < 5; i++) {
			assert_non_null(f[i]);
			if (resp_is_shared(f[i])) {
				assert_true(mem_injected() != inj);
				assert_memory_equal(f[i]->data, "HTTP/1.1 503 ", 13);
				assert_non_null(memmem(f[i]->data, f[i]->len, "\r\nRetry-After: 5\r\n", 18));
			}
			frame_unref(f[i]);
		}
	}
	print_message("responses: %" PRIu64 " allocation points\n", clean - 1);
}

/* The prebuilt 503: Content-Length matches the JSON body that follows. */
static void
test_oom_frame(void **state)
{
	frame	   *f = resp_oom();
	const char *body = memmem(f->data, f->len, "\r\n\r\n", 4);
	const char *cl = memmem(f->data, f->len, "Content-Length: ", 16);

	(void) state;
	assert_non_null(body);
	assert_non_null(cl);
	body += 4;
	assert_int_equal(strtoul(cl + 16, NULL, 10), f->len - (size_t) (body - f->data));
	assert_memory_equal(body, "{\"error\":\"unavailable\",\"detail\":\"out of memory\"}\n",
						f->len - (size_t) (body - f->data));
	frame_unref(f);
	f = resp_oom();				/* still there after every holder let go */
	assert_true(resp_is_shared(f));
	assert_memory_equal(f->data, "HTTP/1.1 503 ", 13);
	frame_unref(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_head),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_query_invalid),
		cmocka_unit_test(test_scope),
		cmocka_unit_test(test_subdef),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_oom_frame),
	};

	mem_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
