/*
 * route.c - request validation and dispatch, independent of sockets so that
 * tests and fuzzers can drive it with raw bytes.
 *
 * Invariants: every ROUTE_ERROR carries a 4xx/5xx status, a code and a
 * detail that never echoes more than a bounded slice of the input; a stream
 * is only specified after every pattern, the filter and the Last-Event-ID
 * have been validated, and (ad hoc) every pattern lies inside the public
 * scope.  Validation errors (400) are reported before authorisation (403).
 * A failed allocation is never taken for invalid input: it is a 503 with
 * code "unavailable" wherever it happens.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "route.h"
#include "sse_filter.h"
#include "sse_match.h"

#define ROUTE_EVENTS "/events"

static void
route_error(route_result *out, int status, const char *error, const char *fmt, const char *arg)
{
	out->kind = ROUTE_ERROR;
	out->status = status;
	out->error = error;
	snprintf(out->detail, sizeof(out->detail), fmt, arg ? arg : "");
}

static void
route_unavailable(route_result *out)
{
	route_error(out, 503, "unavailable", "out of memory", NULL);
}

void
route_result_free(route_result *out)
{
	for (size_t i = 0; i < out->npatterns; i++)
		free(out->patterns[i]);
	free(out->patterns);
	sse_filter_free(out->filter);
	out->patterns = NULL;
	out->npatterns = 0;
	out->filter = NULL;
}

bool
route_parse_uuid(const char *s, size_t len, char out[37])
{
	if (len != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		bool		dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
		out[i] = (char) tolower((unsigned char) s[i]);
	}
	out[36] = '\0';
	return true;
}

/* Last-Event-ID: the header wins over the lastEventId parameter. */
static bool
route_event_id(const req *r, const query_params *q, route_result *out)
{
	const char *s = r->last_event_id.set ? r->last_event_id.s : q->last_event_id;
	size_t		len = r->last_event_id.set ? r->last_event_id.len : (s ? strlen(s) : 0);

	query_event_id pos;

	out->last_event_id = -1;
	if (s == NULL)
		return true;
	if (!query_parse_event_id(s, len, &pos)) {
		route_error(out, 400, "bad_last_event_id",
					"Last-Event-ID must be an event id: <id>-<fingerprint> or <id>", NULL);
		return false;
	}
	out->last_event_id = pos.id;
	out->last_event_fp = pos.fp;
	out->last_event_has_fp = pos.has_fp;
	return true;
}

/*
 * The ad hoc filter, compiled: anything the matcher cannot evaluate exactly
 * (not JSON, not an object, beyond a limit of sse_json.h) is a 400.
 */
static bool
route_filter(const query_params *q, route_result *out)
{
	sse_filter *f = NULL;
	const char *msg = NULL;
	sse_json_status st;

	if (q->filter == NULL)
		return true;
	st = sse_filter_compile(q->filter, strlen(q->filter), &f, &msg);
	if (st == SSE_JSON_NOMEM) {
		route_unavailable(out);
		return false;
	}
	if (st != SSE_JSON_OK) {
		route_error(out, 400, "bad_filter", "filter %s", msg ? msg : sse_json_status_message(st));
		return false;
	}
	if (sse_filter_is_empty(f))
		sse_filter_free(f);		/* {} matches everything */
	else
		out->filter = f;
	return true;
}

/*
 * A bad pattern.  "#" starts a URL fragment, which browsers and curl cut
 * off before sending: "channel=job.#" arrives as "job.", and "channel=#"
 * as "".  A pattern that is empty or ends in "." (and is otherwise made of
 * pattern characters, so the detail may quote it) is what such a cut
 * leaves, so its detail says how to write the "#".
 */
static void
route_bad_pattern(route_result *out, const char *p, sse_name_status st)
{
	size_t		len = strlen(p);

	if (st == SSE_NAME_EMPTY || (st == SSE_NAME_EMPTY_SEGMENT && p[len - 1] == '.'))
		snprintf(out->detail, sizeof(out->detail),
				 "bad channel pattern: %s (a # and all after it are cut off as a URL fragment: "
				 "write # as %%23 in a URL, e.g. channel=%s%%23)",
				 sse_name_status_message(st), len <= 64 ? p : "news.");
	else
		snprintf(out->detail, sizeof(out->detail), "bad channel pattern: %s",
				 sse_name_status_message(st));
	out->kind = ROUTE_ERROR;
	out->status = 400;
	out->error = "bad_channel";
}

/* Validate and take every channel pattern; duplicates are dropped. */
static bool
route_patterns(query_params *q, route_result *out)
{
	if (q->nchannels == 0) {
		route_error(out, 400, "bad_channel", "at least one channel parameter is required", NULL);
		return false;
	}
	for (size_t i = 0; i < q->nchannels; i++) {
		const char *p = q->channels[i];
		sse_name_status st = sse_pattern_check(p, strlen(p));

		if (st != SSE_NAME_OK) {
			route_bad_pattern(out, p, st);
			return false;
		}
	}
	out->patterns = calloc(q->nchannels, sizeof(char *));
	if (out->patterns == NULL) {
		route_unavailable(out);
		return false;
	}
	out->npatterns = 0;
	for (size_t i = 0; i < q->nchannels; i++) {
		char	   *p = q->channels[i];
		bool		dup = false;

		for (size_t k = 0; k < out->npatterns && !dup; k++)
			dup = strcmp(out->patterns[k], p) == 0;
		if (dup)
			continue;
		out->patterns[out->npatterns++] = p;
		q->channels[i] = NULL;
	}
	return true;
}

static bool
route_scope(const scope *pub, route_result *out)
{
	for (size_t i = 0; i < out->npatterns; i++) {
		switch (scope_check(pub, out->patterns[i], strlen(out->patterns[i]))) {
			case SCOPE_INSIDE:
				break;
			case SCOPE_OUTSIDE:
				route_error(out, 403, "forbidden", "channel is not public", NULL);
				return false;
			case SCOPE_INTERNAL:
				route_unavailable(out);
				return false;
		}
	}
	return true;
}

static void
route_events(const req *r, const char *qs, size_t qlen, const char *sub, size_t sublen,
			 const scope *pub, route_result *out)
{
	query_params q;
	char		err[128];

	switch (query_parse(qs, qlen, &q, err, sizeof(err))) {
		case QUERY_OK:
			break;
		case QUERY_INVALID:
			route_error(out, 400, "bad_query", "%s", err);
			return;
		case QUERY_INTERNAL:
			route_unavailable(out);
			return;
	}
	if (sub != NULL) {
		if (route_event_id(r, &q, out)) {
			if (!route_parse_uuid(sub, sublen, out->sub_id))
				route_error(out, 404, "not_found", "unknown or expired subscription", NULL);
			else
				out->kind = ROUTE_SUB;
		}
	}
	else if (route_patterns(&q, out) && route_filter(&q, out) &&
			 route_event_id(r, &q, out) && route_scope(pub, out))
		out->kind = ROUTE_ADHOC;
	query_params_free(&q);
}

static bool
route_path_is(const char *path, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(path, want, len) == 0;
}

/* Known path: dispatch on method; returns false if the path is unknown. */
static bool
route_path(const req *r, const char *path, size_t plen, const char *qs, size_t qlen,
		   const scope *pub, route_result *out)
{
	size_t		elen = strlen(ROUTE_EVENTS);
	bool		is_events = route_path_is(path, plen, ROUTE_EVENTS);
	bool		is_sub = plen > elen + 1 && memcmp(path, ROUTE_EVENTS "/", elen + 1) == 0;
	bool		is_health = route_path_is(path, plen, "/healthz");
	bool		is_metrics = route_path_is(path, plen, "/metrics");

	if (!is_events && !is_sub && !is_health && !is_metrics)
		return false;
	if (r->parser.method == HTTP_OPTIONS)
		out->kind = ROUTE_PREFLIGHT;
	else if (r->parser.method != HTTP_GET)
		route_error(out, 405, "method_not_allowed", "use GET", NULL);
	else if (is_health)
		out->kind = ROUTE_HEALTH;
	else if (is_metrics)
		out->kind = ROUTE_METRICS;
	else
		route_events(r, qs, qlen, is_sub ? path + elen + 1 : NULL,
					 is_sub ? plen - elen - 1 : 0, pub, out);
	return true;
}

void
route_request(const req *r, const scope *pub, route_result *out)
{
	struct http_parser_url u;
	const char *path, *qs = "";
	size_t		plen, qlen = 0;

	memset(out, 0, sizeof(*out));
	out->last_event_id = -1;
	http_parser_url_init(&u);
	if (!r->url.set ||
		http_parser_parse_url(r->url.s, r->url.len, r->parser.method == HTTP_CONNECT, &u) != 0 ||
		!(u.field_set & (1 << UF_PATH))) {
		route_error(out, 400, "bad_request", "malformed request target", NULL);
		return;
	}
	path = r->url.s + u.field_data[UF_PATH].off;
	plen = u.field_data[UF_PATH].len;
	if (u.field_set & (1 << UF_QUERY)) {
		qs = r->url.s + u.field_data[UF_QUERY].off;
		qlen = u.field_data[UF_QUERY].len;
	}
	if (!route_path(r, path, plen, qs, qlen, pub, out))
		route_error(out, 404, "not_found", "no such endpoint", NULL);
}
