/*
 * fuzz_http.c - libFuzzer target: raw request bytes through the request
 * parser (split at a fuzzer-chosen point) and the router.  Checks that a
 * finished request always yields a 4xx/5xx error or a valid decision.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "route.h"
#include "scope.h"

static scope *pub;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	req			r;
	route_result rr;
	req_status	st;
	size_t		split;

	if (pub == NULL) {
		char		err[64];

		pub = scope_new("jobs.*,news.#,a.*.c", err, sizeof(err));
	}
	if (size < 1)
		return 0;
	split = data[0] % (size);
	data++;
	size--;
	req_init(&r, 4096);
	st = req_feed(&r, (const char *) data, split < size ? split : size);
	if (st == REQ_MORE && split < size)
		st = req_feed(&r, (const char *) data + split, size - split);
	if (st == REQ_MORE)
		st = req_feed(&r, "", 0);
	if (st == REQ_ERROR) {
		if (r.status != 400 && r.status != 431)
			abort();
	}
	else if (st == REQ_DONE) {
		route_request(&r, pub, &rr);
		if (rr.kind == ROUTE_ERROR && (rr.status < 400 || rr.status > 599))
			abort();
		if (rr.kind == ROUTE_ADHOC && rr.npatterns == 0)
			abort();
		route_result_free(&rr);
	}
	req_free(&r);
	return 0;
}
